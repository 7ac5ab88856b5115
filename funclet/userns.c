#include "funclet/userns.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"

/* The highest valid id; (uid_t)-1 means "unchanged" to the kernel. */
#define ID_MAX 4294967294u

int ef_userns_parse_mode(const char *text, enum ef_userns_mode *ret)
{
    if (strcmp(text, "auto") == 0)
        *ret = EF_USERNS_AUTO;
    else if (strcmp(text, "on") == 0)
        *ret = EF_USERNS_ON;
    else if (strcmp(text, "off") == 0)
        *ret = EF_USERNS_OFF;
    else
        return -EINVAL;
    return 0;
}

int ef_userns_slots_init(struct ef_userns_slots *s, uint32_t base, size_t n, ef_error *err)
{
    if (base == 0)
        return ef_error_set(err, -EINVAL,
                            "--userns-base must not be 0: host root would be a container's root");
    if (n == 0 || (uint64_t)base + (uint64_t)n * EF_USERNS_RANGE - 1 > ID_MAX)
        return ef_error_set(err, -EINVAL,
                            "--userns-base %u leaves no room for %zu ranges of %u ids below "
                            "4294967295: lower it or --max-containers",
                            (unsigned)base, n, EF_USERNS_RANGE);
    uint64_t *bits = calloc((n + 63) / 64, sizeof(*bits));
    if (!bits)
        return ef_error_set(err, -ENOMEM, "out of memory");
    s->bits = bits;
    s->n = n;
    s->base = base;
    return 0;
}

void ef_userns_slots_free(struct ef_userns_slots *s)
{
    free(s->bits);
    s->bits = NULL;
    s->n = 0;
}

int ef_userns_slot_take(struct ef_userns_slots *s)
{
    for (size_t w = 0; w < (s->n + 63) / 64; w++) {
        if (s->bits[w] == UINT64_MAX)
            continue;
        size_t i = w * 64 + (size_t)__builtin_ctzll(~s->bits[w]);
        if (i >= s->n)
            break;
        s->bits[w] |= 1ull << (i % 64);
        return (int)i;
    }
    return -ENOSPC;
}

bool ef_userns_slot_taken(const struct ef_userns_slots *s, int slot)
{
    return slot >= 0 && (size_t)slot < s->n && (s->bits[slot / 64] >> (slot % 64)) & 1;
}

void ef_userns_slot_put(struct ef_userns_slots *s, int slot)
{
    if (slot >= 0 && (size_t)slot < s->n)
        s->bits[slot / 64] &= ~(1ull << (slot % 64));
}

uint32_t ef_userns_slot_host_id(const struct ef_userns_slots *s, int slot)
{
    return s->base + (uint32_t)slot * EF_USERNS_RANGE;
}

int ef_userns_map_text(uint32_t host_id, char *buf, size_t len)
{
    if ((uint64_t)host_id + EF_USERNS_RANGE - 1 > ID_MAX)
        return -ERANGE;
    int n = snprintf(buf, len, "0 %u %u\n", (unsigned)host_id, EF_USERNS_RANGE);
    if (n < 0 || (size_t)n >= len)
        return -ENAMETOOLONG;
    return n;
}

static int write_map(pid_t pid, const char *file, const char *text, size_t len, ef_error *err)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
    cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return ef_error_set_errno(err, -errno, "cannot open %s", path);
    /* The kernel takes a map in a single write, or not at all. */
    ssize_t n = write(fd, text, len);
    if (n < 0)
        return ef_error_set_errno(err, -errno, "cannot write %s (\"%.*s\")", path,
                                  (int)(len ? len - 1 : 0), text);
    if ((size_t)n != len)
        return ef_error_set(err, -EIO, "short write to %s", path);
    return 0;
}

int ef_userns_write_maps(pid_t pid, uint32_t host_id, ef_error *err)
{
    char text[64];
    int n = ef_userns_map_text(host_id, text, sizeof(text));
    if (n < 0)
        return ef_error_set(err, n, "host ids %u.. do not fit below 4294967295", host_id);
    int r = write_map(pid, "uid_map", text, (size_t)n, err);
    if (r == 0)
        r = write_map(pid, "gid_map", text, (size_t)n, err);
    return r;
}

/* ---- the probe --------------------------------------------------------------------------- */

struct probe_report {
    int32_t err; /* positive errno */
    char step[96];
};

#define PROBE_STACK_SIZE (64 * 1024)

static void probe_fail(int fd, const char *step)
{
    struct probe_report r = {.err = errno};
    snprintf(r.step, sizeof(r.step), "%s", step);
    ssize_t n = write(fd, &r, sizeof(r));
    (void)n;
    _exit(1);
}

/* The child: the steps of a container's sandbox child that depend on the user namespace. */
static int probe_child(void *arg)
{
    int fd = *(int *)arg;
    char go;
    if (read(fd, &go, 1) != 1)
        _exit(1);
    if (setresgid(0, 0, 0) < 0)
        probe_fail(fd, "setresgid to root inside");
    if (setgroups(0, NULL) < 0)
        probe_fail(fd, "setgroups");
    if (setresuid(0, 0, 0) < 0)
        probe_fail(fd, "setresuid to root inside");
    if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
        probe_fail(fd, "make / a recursive slave mount");
    /* Over /proc itself, in this private mount namespace: the kernel allows a new proc only
     * where the one it can see is fully visible, which is what a container needs too. */
    if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        probe_fail(fd, "mount a new /proc");
    _exit(0);
}

static int check_max_user_namespaces(ef_error *err)
{
    cleanup_close int fd = open("/proc/sys/user/max_user_namespaces", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0; /* an older kernel without the knob */
    char buf[32];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    if (strtoll(buf, NULL, 10) <= 0)
        return ef_error_set(err, -ENOSPC,
                            "user namespaces are disabled (/proc/sys/user/max_user_namespaces "
                            "is 0)");
    return 0;
}

int ef_userns_probe(uint32_t host_id, ef_error *err)
{
    int r = check_max_user_namespaces(err);
    if (r < 0)
        return r;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return ef_error_set_errno(err, -errno, "socketpair");
    cleanup_close int parent_fd = sv[0];
    cleanup_close int child_fd = sv[1];
    cleanup_free char *stack = malloc(PROBE_STACK_SIZE);
    if (!stack)
        return ef_error_set(err, -ENOMEM, "out of memory");
    int flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC |
                CLONE_NEWNET | SIGCHLD;
    pid_t pid = clone(probe_child, stack + PROBE_STACK_SIZE, flags, &child_fd);
    if (pid < 0)
        return ef_error_set_errno(err, -errno, "cannot clone into a new user namespace");
    close(steal_fd(&child_fd));
    r = ef_userns_write_maps(pid, host_id, err);
    if (r == 0) {
        char go = 1;
        if (write(parent_fd, &go, 1) != 1)
            r = ef_error_set_errno(err, -errno, "cannot start the probe");
    }
    if (r < 0)
        kill(pid, SIGKILL);
    struct probe_report rep;
    ssize_t n = r == 0 ? read(parent_fd, &rep, sizeof(rep)) : 0;
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (r < 0)
        return r;
    if (n == (ssize_t)sizeof(rep)) {
        rep.step[sizeof(rep.step) - 1] = '\0';
        int e = rep.err > 0 ? rep.err : EIO;
        return ef_error_set(err, -e, "in a new user namespace: %s: %s", rep.step, strerror(e));
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return ef_error_set(err, -EIO, "the user namespace probe ended abnormally (status %d)",
                            status);
    return 0;
}
