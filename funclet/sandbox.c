#include "funclet/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/cpulist.h"
#include "funclet/seccomp.h"

/* The child runs on funclet's memory (clone with CLONE_VM | CLONE_VFORK, spawn.h) and on the
 * TLS of the pool thread that cloned it, while funclet's other threads run on. So nothing here
 * allocates or takes a lock (malloc, stdio, libmnl): a child killed while holding one would
 * leave it held in funclet. Credentials change through raw system calls, since glibc's wrappers
 * would try to change those of funclet's threads too. It only ever ends in execve or _exit. */

/* Per child: children cloned at once run on different pool threads, whose TLS each uses. */
static __thread int sync_fd = -1;

static void report(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(int err, const char *fmt, ...)
{
    struct ef_sandbox_report r;
    memset(&r, 0, sizeof(r));
    r.err = err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r.msg, sizeof(r.msg), fmt, ap);
    va_end(ap);
    ssize_t n = write(sync_fd, &r, sizeof(r));
    (void)n;
}

/* Reports the failed step with the current errno and ends the child. */
#define FAIL(...)                                                                                  \
    do {                                                                                           \
        report(errno, __VA_ARGS__);                                                                \
        _exit(127);                                                                                \
    } while (0)

/* Creates `path`; its parents only when it is missing them, since walking every component
 * from / for each of the plan's entries costs more than the mounts themselves. */
static void make_dir(const char *path)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return;
    if (errno != ENOENT)
        FAIL("mkdir %s", path);
    char p[PATH_MAX];
    if (snprintf(p, sizeof(p), "%s", path) >= (int)sizeof(p)) {
        errno = ENAMETOOLONG;
        FAIL("mkdir %s", path);
    }
    /* Each prefix ending before a '/', then the whole path. */
    for (char *s = p + 1; *s; s++) {
        if (*s != '/' || s[-1] == '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) < 0 && errno != EEXIST)
            FAIL("mkdir %s", p);
        *s = '/';
    }
    if (mkdir(p, 0755) < 0 && errno != EEXIST)
        FAIL("mkdir %s", p);
}

static void make_parent(const char *path)
{
    char parent[PATH_MAX];
    snprintf(parent, sizeof(parent), "%s", path);
    char *slash = strrchr(parent, '/');
    if (!slash || slash == parent)
        return;
    *slash = '\0';
    make_dir(parent);
}

static void make_file(const char *path, const char *target, const char *data, mode_t mode)
{
    /* The parent is made only when it is missing: most entries share theirs. */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0 && errno == ENOENT) {
        make_parent(path);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    }
    if (fd < 0)
        FAIL("create %s", target);
    size_t len = data ? strlen(data) : 0, off = 0;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            FAIL("write %s", target);
        }
        off += (size_t)n;
    }
    if (fchmod(fd, mode) < 0)
        FAIL("chmod %s", target);
    close(fd);
}

/* An empty file to mount a file over, in one system call; one that exists (inside an earlier
 * bind) is mounted over in place. */
static void make_mount_point_file(const char *path, const char *target)
{
    if (mknod(path, S_IFREG | 0644, 0) == 0 || errno == EEXIST)
        return;
    if (errno != ENOENT)
        FAIL("create %s", target);
    make_parent(path);
    if (mknod(path, S_IFREG | 0644, 0) < 0 && errno != EEXIST)
        FAIL("create %s", target);
}

/* Whether `path` exists; a kernel without the /proc entry simply has nothing to hide. */
static bool exists(const char *path)
{
    struct stat st;
    if (lstat(path, &st) == 0)
        return true;
    if (errno != ENOENT)
        FAIL("inspect %s", path);
    return false;
}

static void mask(const char *path, const char *target)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return;
        FAIL("inspect %s", target);
    }
    if (S_ISDIR(st.st_mode)) {
        if (mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  "size=4k,mode=0555") < 0)
            FAIL("mask %s", target);
    } else if (mount("/dev/null", path, NULL, MS_BIND, NULL) < 0) {
        FAIL("mask %s", target);
    }
}

/* The per-mount flags of the mount at `path` that a less privileged mount namespace cannot
 * clear: the kernel locks them on every mount it copies into a user namespace, and a remount
 * that leaves one out fails with EPERM. */
static unsigned long locked_flags(const char *path, const char *target)
{
    struct statvfs sv;
    if (statvfs(path, &sv) < 0)
        FAIL("statvfs %s", target);
    return (sv.f_flag & ST_RDONLY ? MS_RDONLY : 0) | (sv.f_flag & ST_NOSUID ? MS_NOSUID : 0) |
           (sv.f_flag & ST_NODEV ? MS_NODEV : 0) | (sv.f_flag & ST_NOEXEC ? MS_NOEXEC : 0);
}

/* Applies one entry below the current directory (the new root). `source_fd` is an O_PATH fd of
 * a BIND entry's source opened before the switch to root inside a user namespace, else -1. */
static void apply(const struct ef_sandbox_args *a, const struct ef_mount_entry *e, int source_fd)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), ".%s", e->target) >= (int)sizeof(path)) {
        errno = ENAMETOOLONG;
        FAIL("mount point for %s", e->target);
    }
    switch (e->kind) {
    case EF_MOUNT_BIND: {
        if (e->source_is_dir)
            make_dir(path);
        else
            make_mount_point_file(path, e->target);
        char fd_path[64];
        const char *source = e->source;
        if (source_fd >= 0) {
            snprintf(fd_path, sizeof(fd_path), "/proc/self/fd/%d", source_fd);
            source = fd_path;
        }
        if (mount(source, path, NULL, MS_BIND, NULL) < 0)
            FAIL("mount %s on %s", e->source, e->target);
        /* A bind mount ignores every flag but MS_REC; read-only and the others take a
         * remount of the new mount point. */
        unsigned long flags = e->flags | (a->userns ? locked_flags(path, e->target) : 0);
        if (mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | flags, NULL) < 0)
            FAIL("remount %s with restricted flags", e->target);
        break;
    }
    case EF_MOUNT_TMPFS:
        make_dir(path);
        if (mount("tmpfs", path, "tmpfs", e->flags, e->data) < 0)
            FAIL("mount tmpfs on %s", e->target);
        break;
    case EF_MOUNT_PROC:
        make_dir(path);
        if (mount("proc", path, "proc", e->flags, NULL) < 0)
            FAIL("mount proc on %s", e->target);
        break;
    case EF_MOUNT_SYMLINK: {
        int r = symlink(e->source, path);
        if (r < 0 && errno == ENOENT) {
            make_parent(path);
            r = symlink(e->source, path);
        }
        if (r < 0)
            FAIL("symlink %s -> %s", e->target, e->source);
        break;
    }
    case EF_MOUNT_FILE:
        make_file(path, e->target, e->data, e->mode);
        break;
    case EF_MOUNT_REMOUNT:
        if (mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | e->flags, NULL) < 0)
            FAIL("remount %s", e->target);
        break;
    case EF_MOUNT_MASK:
        mask(path, e->target);
        break;
    case EF_MOUNT_RDONLY:
        if (!exists(path))
            break;
        if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0)
            FAIL("bind %s onto itself", e->target);
        if (mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | e->flags, NULL) < 0)
            FAIL("remount %s read-only", e->target);
        break;
    }
}

static void set_death_signal(void)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        FAIL("prctl PR_SET_PDEATHSIG");
}

/* Opens every BIND source as an O_PATH fd while the child is still host root: the sources below
 * funclet's data directory (the runtimes, the container's mnt/) may sit below directories that
 * only host root may enter, and a mount of /proc/self/fd/N reaches them without a path walk.
 * Fills `fds` with one fd (or -1) per plan entry. */
static void open_sources(const struct ef_mount_plan *plan, int fds[EF_SANDBOX_MAX_ENTRIES])
{
    if (plan->n > EF_SANDBOX_MAX_ENTRIES) {
        errno = E2BIG;
        FAIL("a mount plan of %zu entries", plan->n);
    }
    for (size_t i = 0; i < plan->n; i++) {
        const struct ef_mount_entry *e = &plan->entries[i];
        fds[i] = -1;
        if (e->kind == EF_MOUNT_BIND && (fds[i] = open(e->source, O_PATH | O_CLOEXEC)) < 0)
            FAIL("open %s", e->source);
    }
}

/* Becomes uid and gid 0 of the user namespace (host id `base`), with the namespace's full
 * capabilities still (they are only dropped when root *of the namespace* leaves uid 0), and no
 * supplementary group of funclet's. */
static void become_root_inside(void)
{
    if (syscall(SYS_setresgid, 0, 0, 0) < 0)
        FAIL("setresgid to root of the user namespace");
    if (syscall(SYS_setgroups, 0, NULL) < 0)
        FAIL("drop the supplementary groups");
    if (syscall(SYS_setresuid, 0, 0, 0) < 0)
        FAIL("setresuid to root of the user namespace");
    /* A change of credentials clears the parent-death signal: set it again, then make sure
     * funclet did not end in between (its end of the sync socket would be closed). */
    set_death_signal();
    struct pollfd p = {.fd = sync_fd, .events = POLLIN};
    if (poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR)))
        _exit(127);
}

/* Moves `fd` to a number of at least 10 (close-on-exec), so that arranging fds 0-3 later
 * cannot overwrite it. */
static int move_high(int fd, const char *what)
{
    int n = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    if (n < 0)
        FAIL("duplicate the %s", what);
    close(fd);
    return n;
}

/* Closes every fd but 0-2, the sync socket and the runner socket (both at 10 or above). The
 * child starts with a copy of funclet's fd table: the sync sockets of other creates in flight
 * among them, whose end-of-file (their creates' answer) would otherwise wait for this child's
 * exec, and other containers' pidfds and namespace fds. */
static void close_other_fds(int runner_fd)
{
    unsigned lo = (unsigned)(sync_fd < runner_fd ? sync_fd : runner_fd);
    unsigned hi = (unsigned)(sync_fd < runner_fd ? runner_fd : sync_fd);
    unsigned ranges[3][2] = {{3, lo - 1}, {lo + 1, hi - 1}, {hi + 1, ~0U}};
    for (size_t i = 0; i < 3; i++) {
        if (ranges[i][0] > ranges[i][1])
            continue;
        if (syscall(SYS_close_range, ranges[i][0], ranges[i][1], 0) == 0)
            continue;
        unsigned last = ranges[i][1] < 65535 ? ranges[i][1] : 65535;
        for (unsigned fd = ranges[i][0]; fd <= last; fd++)
            close((int)fd);
    }
}

static void setup_fds(int runner_fd)
{
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0)
        FAIL("open /dev/null");
    /* Out of the way of fd 3, which the dup2 below fills. */
    null = move_high(null, "/dev/null");
    /* stdin is empty; stdout joins stderr, which is funclet's log, so that the runner's own
     * lines end up there. dup2 clears close-on-exec on the new numbers. */
    if (dup2(null, STDIN_FILENO) < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
        FAIL("set up stdin and stdout");
    if (dup2(runner_fd, EF_RUNNER_RPC_FD) < 0)
        FAIL("pass the runner socket as fd %d", EF_RUNNER_RPC_FD);
    close(null);
    close(runner_fd);
    /* Nothing else reaches the runner: funclet's fds were closed first thing
     * (close_other_fds), and the sync socket and every fd opened since are close-on-exec. */
}

static void set_limit(int resource, const char *name, uint64_t value)
{
    struct rlimit rl = {.rlim_cur = value, .rlim_max = value};
    if (value && setrlimit(resource, &rl) < 0)
        FAIL("setrlimit %s %llu", name, (unsigned long long)value);
}

/* Soft and hard alike: the runtime, which runs without privileges, cannot raise them. */
static void set_rlimits(const struct ef_sandbox_args *a)
{
    set_limit(RLIMIT_NOFILE, "RLIMIT_NOFILE", a->rlimit_nofile);
    set_limit(RLIMIT_NPROC, "RLIMIT_NPROC", a->rlimit_nproc);
    /* Whatever funclet's own limits: without CAP_SYS_NICE of the host, these are what lets a
     * process take a real-time policy (SCHED_FIFO, SCHED_RR, which a busy loop would hold a
     * CPU with) or a nice level below 0. Zero allows neither. */
    const struct rlimit none = {.rlim_cur = 0, .rlim_max = 0};
    if (setrlimit(RLIMIT_RTPRIO, &none) < 0)
        FAIL("setrlimit RLIMIT_RTPRIO 0");
    if (setrlimit(RLIMIT_NICE, &none) < 0)
        FAIL("setrlimit RLIMIT_NICE 0");
}

/* The child starts with every signal blocked (spawn.c) and funclet's dispositions: its handlers
 * (libuv's, for SIGCHLD, SIGTERM, SIGINT) would run here, on funclet's memory, and a signal meant
 * for this child would reach funclet's loop. Each is set to SIG_IGN first, which discards one
 * that is pending, then to SIG_DFL; ignored ones (SIGPIPE) would otherwise stay ignored across
 * the exec. funclet found them once at start, which spares a system call per signal here. */
static void drop_signal_handlers(const sigset_t *changed)
{
    for (int sig = 1; sig < NSIG; sig++) {
        if (sigismember(changed, sig) == 1) {
            signal(sig, SIG_IGN);
            signal(sig, SIG_DFL);
        }
    }
}

static void unblock_signals(void)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

void ef_sandbox_changed_signals(sigset_t *ret)
{
    sigemptyset(ret);
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction sa;
        if (sig != SIGKILL && sig != SIGSTOP && sigaction(sig, NULL, &sa) == 0 &&
            sa.sa_handler != SIG_DFL)
            sigaddset(ret, sig);
    }
}

/* Keeps this process on the CPU it runs on through its exec, and writes the CPUs it may use
 * (funclet's affinity) into `cpus` for the runner, which takes them back first thing (runner
 * init --cpus). At exec the scheduler moves a process to the idlest CPU, which on an idle
 * machine is another one: a hand-over through the stopper thread that, on a paravirtualised
 * guest, was the largest part of the exec (~0.6 ms of a create's median, measured). Best
 * effort: without it the runner simply keeps the set it has. */
static bool hold_cpu_for_exec(char *cpus, size_t len)
{
    cpu_set_t allowed, one;
    /* Not sched_getcpu(): glibc reads it from the rseq area of the thread that cloned us. */
    unsigned cpu;
    if (syscall(SYS_getcpu, &cpu, NULL, NULL) < 0 || cpu >= CPU_SETSIZE ||
        sched_getaffinity(0, sizeof(allowed), &allowed) < 0 ||
        ef_cpulist_format(&allowed, cpus, len) <= 0)
        return false;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    return sched_setaffinity(0, sizeof(one), &one) == 0;
}

/* The first packet: the parent learns this process's pid from its credentials and gets its
 * pidfd with it, so that a later process with the same pid is never taken for it. A kernel
 * without pidfd_open (before 5.3) sends the byte alone. */
static void send_started(void)
{
    char started = EF_SANDBOX_STARTED;
    struct iovec iov = {.iov_base = &started, .iov_len = 1};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    int pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    if (pidfd >= 0) {
        memset(&control, 0, sizeof(control));
        msg.msg_control = &control;
        msg.msg_controllen = sizeof(control);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &pidfd, sizeof(int));
    }
    if (sendmsg(sync_fd, &msg, MSG_NOSIGNAL) != 1)
        _exit(127);
    if (pidfd >= 0)
        close(pidfd);
}

/* Waits for the parent's next byte on the sync socket; end-of-file means it gave up. */
static void wait_for_parent(void)
{
    char byte;
    ssize_t n;
    do {
        n = read(sync_fd, &byte, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1)
        _exit(127);
}

/* Sets loopback up in the container's own network namespace, with an ioctl: netlink through
 * libmnl would allocate. */
static void loopback_up(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        FAIL("socket for lo");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    strcpy(ifr.ifr_name, "lo");
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
        FAIL("read the flags of lo");
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
        FAIL("set lo up");
    close(fd);
}

int ef_sandbox_child(void *arg)
{
    const struct ef_sandbox_args *a = arg;
    drop_signal_handlers(&a->changed_signals);
    sync_fd = move_high(a->sync_fd, "sync socket");
    int runner_fd = move_high(a->runner_fd, "runner socket");
    close_other_fds(runner_fd);
    /* Before funclet puts this process into its cgroups, which it does once it has the
     * "started" packet: cgroup v1's cpu controller refuses a real-time task in a group without a
     * real-time budget. And no user code may inherit a real-time policy or a negative nice. */
    if (a->drop_priority) {
        const struct sched_param param = {.sched_priority = 0};
        if (sched_setscheduler(0, SCHED_OTHER, &param) < 0)
            FAIL("leave funclet's real-time scheduling policy");
        if (getpriority(PRIO_PROCESS, 0) < 0 && setpriority(PRIO_PROCESS, 0, 0) < 0)
            FAIL("leave funclet's negative nice level");
    }

    send_started();

    /* What needs no uid or gid map comes first, while funclet writes them. If funclet dies, so
     * does the container. */
    set_death_signal();
    if (setsid() < 0)
        FAIL("setsid");

    /* In the pod's network namespace (network "host") loopback is not the container's to
     * touch. */
    if (a->own_netns)
        loopback_up();
    if (sethostname(a->hostname, strlen(a->hostname)) < 0)
        FAIL("sethostname %s", a->hostname);

    /* Mounts made from here on must not propagate back to the host, while the host's
     * unmounts still reach this namespace. */
    if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
        FAIL("make / a recursive slave mount");
    int source_fds[EF_SANDBOX_MAX_ENTRIES];
    if (a->userns)
        open_sources(a->plan, source_fds);

    /* In a user namespace, the maps must be written before the root tmpfs (owned by uid 0
     * inside) and the switch to root inside. */
    wait_for_parent();

    /* Owned by root inside: in a user namespace, uid 0 of the container. Every path of the
     * plan is then taken relative to it. */
    if (mount("tmpfs", a->rootfs, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m,uid=0,gid=0") <
        0)
        FAIL("mount the root tmpfs on %s", a->rootfs);
    if (chdir(a->rootfs) < 0)
        FAIL("chdir %s", a->rootfs);
    if (a->userns)
        become_root_inside();
    for (size_t i = 0; i < a->plan->n; i++)
        apply(a, &a->plan->entries[i], a->userns ? source_fds[i] : -1);
    for (size_t i = 0; a->userns && i < a->plan->n; i++) {
        if (source_fds[i] >= 0)
            close(source_fds[i]);
    }

    /* The root's binds of mnt/tmp and mnt/shm exist: funclet mounts the fresh tmpfs instances
     * there meanwhile (they propagate into /tmp and /dev/shm). */
    char built = EF_SANDBOX_BUILT;
    if (write(sync_fd, &built, 1) != 1)
        _exit(127);

    /* pivot_root(".", ".") stacks the old root on the new one; detaching it leaves only the
     * new root, with no path back to the host's tree. */
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        FAIL("pivot_root to %s", a->rootfs);
    if (umount2(".", MNT_DETACH) < 0)
        FAIL("detach the old root");
    if (chdir("/") < 0)
        FAIL("chdir /");

    setup_fds(runner_fd);
    unblock_signals();
    umask(022);
    set_rlimits(a);

    /* The runner may only run within the container's limits: wait until the parent has put
     * this process into its cgroups, which it did while the root was being built. Then a cgroup
     * namespace rooted at them makes the container's /proc/self/cgroup read "/" and hides where
     * on the host it is. */
    wait_for_parent();
    if (a->cgroup_ns && unshare(CLONE_NEWCGROUP) < 0)
        FAIL("unshare the cgroup namespace");
    /* Only now: the steps above keep funclet's policy (SCHED_OTHER if funclet's was raised),
     * with which this child's wake-ups were measured. The runner and all it starts inherit this one
     * (common/sched_policy.h). A funclet run under SCHED_IDLE passes it on: in a user namespace the
     * child lacks the CAP_SYS_NICE that leaving it needs (funclet warns at start), and it is the
     * lower one. */
    const struct sched_param param = {.sched_priority = 0};
    if (sched_setscheduler(0, a->sched_policy, &param) < 0 &&
        !(errno == EPERM && sched_getscheduler(0) == SCHED_IDLE))
        FAIL("set the scheduling policy");

    char uid[16], gid[16], fd[16];
    snprintf(uid, sizeof(uid), "%u", (unsigned)a->sandbox_uid);
    snprintf(gid, sizeof(gid), "%u", (unsigned)a->sandbox_gid);
    snprintf(fd, sizeof(fd), "%d", EF_RUNNER_RPC_FD);
    /* Sharing the pod's network, the Runtime API cannot take the fixed port 9001 (another
     * container or the pod may hold it): the runner picks a free one and advertises it to the
     * runtime in AWS_LAMBDA_RUNTIME_API. */
    char *argv[16];
    size_t argc = 0;
    argv[argc++] = "easyfaas-runner";
    argv[argc++] = "init";
    argv[argc++] = "--rpc-fd";
    argv[argc++] = fd;
    argv[argc++] = "--uid";
    argv[argc++] = uid;
    argv[argc++] = "--gid";
    argv[argc++] = gid;
    argv[argc++] = "--prestart";
    argv[argc++] = a->prestart ? "python" : "none";
    if (!a->own_netns) {
        argv[argc++] = "--api-port";
        argv[argc++] = "0";
    }
    char cpus[EF_CPULIST_MAX];
    if (hold_cpu_for_exec(cpus, sizeof(cpus))) {
        argv[argc++] = "--cpus";
        argv[argc++] = cpus;
    }
    argv[argc] = NULL;
    /* funclet's environment is not the container's business. */
    char *const envp[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                          NULL};
    /* Last, so that every step above could still use what the filter denies (mount,
     * pivot_root); the runner and everything it starts inherit it. */
    if (a->seccomp) {
        int r = ef_seccomp_filter_install(a->seccomp);
        if (r < 0) {
            errno = -r;
            FAIL("install the seccomp filter");
        }
    }
    execve(EF_RUNNER_PATH, argv, envp);
    FAIL("exec %s", EF_RUNNER_PATH);
}
