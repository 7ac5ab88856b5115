/* Removes what a function left in its container's IPC namespace; see ipc_clear.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* setns, unshare */
#endif
#include "funclet/ipc_clear.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <linux/mount.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"

union semun_arg {
    int val;
    struct semid_ds *buf;
    unsigned short *array;
    struct seminfo *info;
};

/* In the child, which is a copy of a threaded process: system calls only, no allocation. */

static int clear_sysv(void)
{
    int n = 0;
    struct shm_info shm;
    int max = shmctl(0, SHM_INFO, (struct shmid_ds *)(void *)&shm);
    for (int i = 0; i <= max; i++) {
        struct shmid_ds ds;
        int id = shmctl(i, SHM_STAT, &ds);
        if (id >= 0 && shmctl(id, IPC_RMID, NULL) == 0)
            n++;
    }
    struct msginfo msg;
    max = msgctl(0, MSG_INFO, (struct msqid_ds *)(void *)&msg);
    for (int i = 0; i <= max; i++) {
        struct msqid_ds ds;
        int id = msgctl(i, MSG_STAT, &ds);
        if (id >= 0 && msgctl(id, IPC_RMID, NULL) == 0)
            n++;
    }
    struct seminfo sem;
    union semun_arg arg = {.info = &sem};
    max = semctl(0, 0, SEM_INFO, arg);
    for (int i = 0; i <= max; i++) {
        struct semid_ds ds;
        arg.buf = &ds;
        int id = semctl(i, 0, SEM_STAT, arg);
        if (id >= 0 && semctl(id, 0, IPC_RMID) == 0)
            n++;
    }
    return n;
}

struct linux_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

/* POSIX message queues are the files of the namespace's mqueue file system, which the child
 * mounts detached (fsopen + fsmount: no mount point, nothing another process could see).
 * A kernel without POSIX queues (ENODEV) has none to remove. */
static int clear_posix_queues(void)
{
    int fs = (int)syscall(SYS_fsopen, "mqueue", FSOPEN_CLOEXEC);
    if (fs < 0)
        return errno == ENODEV ? 0 : -errno;
    if (syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
        int e = errno;
        close(fs);
        return -e;
    }
    int mnt = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, 0);
    close(fs);
    if (mnt < 0)
        return -errno;
    int dir = openat(mnt, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    close(mnt);
    if (dir < 0)
        return -errno;
    int n = 0;
    char buf[4096] __attribute__((aligned(8)));
    for (;;) {
        long got = syscall(SYS_getdents64, dir, buf, sizeof(buf));
        if (got <= 0)
            break;
        for (long off = 0; off < got;) {
            struct linux_dirent64 *d = (struct linux_dirent64 *)(void *)(buf + off);
            off += d->d_reclen;
            if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
                continue;
            if (unlinkat(dir, d->d_name, 0) == 0)
                n++;
        }
    }
    close(dir);
    return n;
}

/* What the child found: the objects removed, and why the POSIX queues could not be looked at
 * (0 when they could). */
struct clear_result {
    int removed;
    int posix_error;
};

static struct clear_result clear_in_namespace(int ns_fd)
{
    struct clear_result res = {0, 0};
    if (setns(ns_fd, CLONE_NEWIPC) < 0) {
        res.removed = -errno;
        return res;
    }
    res.removed = clear_sysv();
    int posix = clear_posix_queues();
    if (posix < 0)
        res.posix_error = posix;
    else
        res.removed += posix;
    return res;
}

int ef_ipc_clear(pid_t pid, ef_error *err)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/ns/ipc", (int)pid);
    cleanup_close int ns_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (ns_fd < 0)
        return ef_error_set_errno(err, -errno, "cannot open %s", path);
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return ef_error_set_errno(err, -errno, "cannot make a pipe");
    pid_t child = fork();
    if (child < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        return ef_error_set_errno(err, -e, "cannot fork to clear the IPC namespace");
    }
    if (child == 0) {
        close(fds[0]);
        struct clear_result result = clear_in_namespace(ns_fd);
        ssize_t w = write(fds[1], &result, sizeof(result));
        _exit(w == (ssize_t)sizeof(result) ? 0 : 1);
    }
    close(fds[1]);
    struct clear_result result = {0, 0};
    ssize_t got;
    do
        got = read(fds[0], &result, sizeof(result));
    while (got < 0 && errno == EINTR);
    close(fds[0]);
    int status;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
    if (got != (ssize_t)sizeof(result))
        return ef_error_set(err, -EIO, "the child clearing %s ended without an answer", path);
    if (result.removed < 0)
        return ef_error_set_errno(err, result.removed,
                                  "cannot clear the IPC namespace of process %d", (int)pid);
    /* The System V objects are gone; a host where the POSIX queues cannot be looked at keeps
     * pooling containers, and says so once. */
    static bool warned;
    if (result.posix_error < 0 && !warned) {
        warned = true;
        ef_warn("cannot look for the POSIX message queues a function left in its container: "
                "%s; they may outlive a reset",
                strerror(-result.posix_error));
    }
    return result.removed;
}
