#include "funclet/lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fsutil.h"

#define LOCK_FILE_NAME "funclet.lock"
/* The highest valid id; (uid_t)-1 means "unchanged" to the kernel. */
#define ID_MAX 4294967294ull

/* Who holds a lock that conflicts with ours. */
struct holder {
    pid_t pid;
    uint64_t start;
    uint64_t len; /* 0: to the end of the file */
};

/* Takes a write lock on [start, start + len) of the open file `fd` (len 0: all of it). 0, or
 * -EBUSY with *ret filled when another process holds an overlapping lock. */
static int take(int fd, uint64_t start, uint64_t len, struct holder *ret)
{
    /* Twice at most: a holder that lets go between F_SETLK and F_GETLK leaves nothing to name,
     * and the second F_SETLK then succeeds (or names the next holder). */
    for (int attempt = 0; attempt < 2; attempt++) {
        struct flock fl = {
            .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = (off_t)start, .l_len = (off_t)len};
        if (fcntl(fd, F_SETLK, &fl) == 0)
            return 0;
        if (errno != EAGAIN && errno != EACCES)
            return -errno;
        fl = (struct flock){
            .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = (off_t)start, .l_len = (off_t)len};
        if (fcntl(fd, F_GETLK, &fl) < 0)
            return -errno;
        if (fl.l_type != F_UNLCK) {
            *ret = (struct holder){fl.l_pid, (uint64_t)fl.l_start, (uint64_t)fl.l_len};
            return -EBUSY;
        }
    }
    *ret = (struct holder){0, start, len};
    return -EBUSY;
}

static int open_lock_file(const char *path, int *ret_fd, ef_error *err)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return ef_error_set_errno(err, -errno, "cannot open the lock file %s", path);
    *ret_fd = fd;
    return 0;
}

int ef_lock_data_dir(const char *run_dir, const char *data_dir, int *ret_fd, ef_error *err)
{
    cleanup_free char *path = ef_path_join(run_dir, LOCK_FILE_NAME);
    if (!path)
        return ef_error_set(err, -ENOMEM, "out of memory");
    cleanup_close int fd = -1;
    int r = open_lock_file(path, &fd, err);
    if (r < 0)
        return r;
    struct holder h;
    r = take(fd, 0, 0, &h);
    if (r == -EBUSY) {
        char pid[32] = "";
        if (h.pid > 0)
            snprintf(pid, sizeof(pid), " (pid %d)", (int)h.pid);
        return ef_error_set(err, -EBUSY,
                            "another funclet%s runs on data dir %s (it holds %s): stop it first, "
                            "or give this one another --data-dir",
                            pid, data_dir, path);
    }
    if (r < 0)
        return ef_error_set_errno(err, r, "cannot lock %s", path);
    *ret_fd = steal_fd(&fd);
    return 0;
}

pid_t ef_lock_data_dir_holder(const char *data_dir)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/run/%s", data_dir, LOCK_FILE_NAME) >= (int)sizeof(path))
        return 0;
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return 0;
    /* F_GETLK asks without taking: it reports a write lock of another process, if any. */
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(fd, F_GETLK, &fl) < 0 || fl.l_type == F_UNLCK)
        return 0;
    return fl.l_pid > 0 ? fl.l_pid : 1;
}

/* Creates the host-wide lock directory, root's alone. */
static int host_dir(ef_error *err)
{
    if (mkdir(EF_LOCK_HOST_DIR, 0700) < 0 && errno != EEXIST)
        return ef_error_set_errno(err, -errno, "cannot create %s", EF_LOCK_HOST_DIR);
    struct stat st;
    if (lstat(EF_LOCK_HOST_DIR, &st) < 0)
        return ef_error_set_errno(err, -errno, "cannot stat %s", EF_LOCK_HOST_DIR);
    if (!S_ISDIR(st.st_mode))
        return ef_error_set(err, -ENOTDIR, "%s is not a directory", EF_LOCK_HOST_DIR);
    /* A container engine that made it for a hostPath volume made it 0755: root's alone. */
    if (st.st_uid == 0 && (st.st_mode & 077) && chmod(EF_LOCK_HOST_DIR, 0700) < 0)
        return ef_error_set_errno(err, -errno, "cannot chmod %s to 0700", EF_LOCK_HOST_DIR);
    return 0;
}

/* Opens EF_LOCK_USERNS_FILE, making its directory when missing, for a claim of `span` ids. */
static int open_userns_lock(uint64_t span, int *ret_fd, ef_error *err)
{
    if (span == 0)
        return ef_error_set(err, -EINVAL, "an empty range of host ids");
    int r = host_dir(err);
    if (r < 0)
        return r;
    return open_lock_file(EF_LOCK_USERNS_FILE, ret_fd, err);
}

int ef_lock_userns(uint32_t base, uint64_t count, uint32_t range, int *ret_fd, ef_error *err)
{
    uint64_t span = count * range;
    cleanup_close int fd = -1;
    int r = open_userns_lock(span, &fd, err);
    if (r < 0)
        return r;
    struct holder h;
    r = take(fd, base, span, &h);
    if (r == -EBUSY) {
        char theirs[96] = "";
        char hint[64] = "";
        uint64_t next = h.start + h.len;
        if (h.pid > 0 && h.len > 0)
            snprintf(theirs, sizeof(theirs), " (pid %d, ids %llu-%llu)", (int)h.pid,
                     (unsigned long long)h.start, (unsigned long long)(next - 1));
        else if (h.pid > 0)
            snprintf(theirs, sizeof(theirs), " (pid %d)", (int)h.pid);
        /* The first base past the other range, where this funclet's range still fits. */
        if (h.len > 0 && next + span - 1 <= ID_MAX)
            snprintf(hint, sizeof(hint), " (e.g. %llu)", (unsigned long long)next);
        return ef_error_set(err, -EBUSY,
                            "the host ids %u-%llu of the containers' user namespaces "
                            "(--userns-base %u, %llu ranges of %u) overlap those of another "
                            "funclet on this host%s: pick another --userns-base%s or a smaller "
                            "--max-containers",
                            (unsigned)base, (unsigned long long)(base + span - 1), (unsigned)base,
                            (unsigned long long)count, (unsigned)range, theirs, hint);
    }
    if (r < 0)
        return ef_error_set_errno(err, r, "cannot lock %s", EF_LOCK_USERNS_FILE);
    *ret_fd = steal_fd(&fd);
    return 0;
}

int ef_lock_userns_auto(uint32_t first, uint64_t count, uint32_t range, uint32_t *ret_base,
                        int *ret_fd, ef_error *err)
{
    uint64_t span = count * range;
    if (first == 0)
        return ef_error_set(err, -EINVAL, "host id 0 cannot start a range");
    cleanup_close int fd = -1;
    int r = open_userns_lock(span, &fd, err);
    if (r < 0)
        return r;
    /* Each refusal names a range that overlaps ours; the next try starts past its end, so the
     * base only grows and the loop ends at the end of the id space. */
    uint64_t base = first;
    while (base + span - 1 <= ID_MAX) {
        struct holder h;
        r = take(fd, base, span, &h);
        if (r == 0) {
            *ret_base = (uint32_t)base;
            *ret_fd = steal_fd(&fd);
            return 0;
        }
        if (r != -EBUSY)
            return ef_error_set_errno(err, r, "cannot lock %s", EF_LOCK_USERNS_FILE);
        if (h.len == 0)
            break; /* a lock to the end of the file: nothing is free past it */
        base = h.start + h.len > base ? h.start + h.len : base + 1;
    }
    return ef_error_set(err, -EBUSY,
                        "no range of %llu host ids from %u on is free of other funclets' on this "
                        "host (%s): give a smaller --max-containers or an explicit --userns-base",
                        (unsigned long long)span, (unsigned)first, EF_LOCK_USERNS_FILE);
}
