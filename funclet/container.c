#include "funclet/container.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "funclet/capacity.h"
#include "funclet/cgroup.h"
#include "funclet/cgroup_parse.h"
#include "funclet/hostmnt.h"
#include "funclet/ipc_clear.h"
#include "funclet/mount_plan.h"
#include "funclet/exit_watch.h"
#include "funclet/oom_watch.h"
#include "funclet/parts.h"
#include "funclet/pool.h"
#include "funclet/sandbox.h"
#include "funclet/spawn.h"
#include "funclet/userns.h"
#include "funclet/wait_status.h"

#define CLONE_FLAGS (CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC)
/* How often a reset looks whether the function's processes are gone. */
#define RESET_POLL_MS 1

enum op_kind { OP_CREATE, OP_RESET };

/* An asynchronous step of one container: waiting for its child to exec the runner (CREATING)
 * or for its processes to die (RESETTING). It outlives the container when the container is
 * destroyed meanwhile: it is freed once libuv has closed its handles. */
struct ef_container_op {
    enum op_kind kind;
    struct ef_funclet *f;
    struct ef_container *c; /* NULL once detached */
    uv_poll_t poll;         /* OP_CREATE: the sync socket is readable */
    uv_timer_t timer;       /* OP_CREATE: the start timeout; OP_RESET: the next look */
    int open_handles;
    int sync_fd;
    unsigned long long deadline_ms;
    bool release;
    bool started; /* OP_CREATE: the child's first packet came */
    bool built;   /* OP_CREATE: its root is built, its /tmp and /dev/shm are mounted */
    bool reset;   /* OP_CREATE: the child ended with a byte of ours unread (ECONNRESET) */
    bool frozen;  /* OP_RESET: the kill happened frozen; otherwise it is repeated */
    ef_container_done_cb cb;
    void *user;
};

static const char *const state_names[] = {
    [EF_CONTAINER_CREATING] = "creating",   [EF_CONTAINER_COLD] = "cold",
    [EF_CONTAINER_WARMING] = "warming",     [EF_CONTAINER_WARM] = "warm",
    [EF_CONTAINER_RESETTING] = "resetting", [EF_CONTAINER_DESTROYING] = "destroying",
};

const char *ef_container_state_name(const struct ef_container *c)
{
    return c->exited ? "exited" : state_names[c->state];
}

uint64_t ef_container_allocated_mb(const struct ef_funclet *f)
{
    uint64_t sum = 0;
    for (const struct ef_container *c = f->containers; c; c = c->next)
        sum += (uint64_t)c->memory_mb;
    return sum;
}

int ef_container_new_id(const struct ef_funclet *f, char id[EF_CONTAINER_ID_LEN + 1], ef_error *err)
{
    static const char hex[] = "0123456789abcdef";
    for (int attempt = 0; attempt < 16; attempt++) {
        unsigned char rnd[(EF_CONTAINER_ID_LEN - 1) / 2];
        if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
            return ef_error_set_errno(err, -errno, "getrandom");
        id[0] = 'c';
        for (size_t i = 0; i < sizeof(rnd); i++) {
            id[1 + 2 * i] = hex[rnd[i] >> 4];
            id[2 + 2 * i] = hex[rnd[i] & 15];
        }
        id[EF_CONTAINER_ID_LEN] = '\0';
        if (!ef_container_find(f, id) && !ef_parts_has_id(f, id))
            return 0;
    }
    return ef_error_set(err, -EEXIST, "cannot find an unused container id");
}

static void container_free(struct ef_container *c)
{
    if (!c)
        return;
    /* Only now is every process that ran with the range's ids gone (the cgroups are empty and
     * removed), so the next container may have it. */
    if (c->userns_slot >= 0)
        ef_userns_slot_put(&c->funclet->userns_slots, c->userns_slot);
    ef_oom_watch_stop(c->oom_watch);
    ef_exit_watch_stop(c->exit_watch);
    ef_cgroup_free(c->cgroup);
    if (c->netns_fd >= 0)
        close(c->netns_fd);
    free(c->code_dir);
    free(c->dir);
    free(c->runner_socket);
    free(c->mnt_dir);
    free(c);
}

static void unlink_container(struct ef_funclet *f, struct ef_container *c)
{
    for (struct ef_container **p = &f->containers; *p; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            f->n_containers--;
            ef_pool_kick(f);
            return;
        }
    }
}

/* ---- asynchronous steps ------------------------------------------------------------------ */

static void op_handle_closed(uv_handle_t *h)
{
    struct ef_container_op *op = h->data;
    if (--op->open_handles > 0)
        return;
    if (op->sync_fd >= 0)
        close(op->sync_fd);
    free(op);
}

static struct ef_container_op *op_new(struct ef_funclet *f, struct ef_container *c,
                                      enum op_kind kind, ef_container_done_cb cb, void *user)
{
    struct ef_container_op *op = calloc(1, sizeof(*op));
    if (!op)
        return NULL;
    op->kind = kind;
    op->f = f;
    op->c = c;
    op->sync_fd = -1;
    op->cb = cb;
    op->user = user;
    uv_timer_init(f->loop, &op->timer);
    op->timer.data = op;
    op->open_handles = 1;
    c->op = op;
    return op;
}

/* Detaches the step from its container and lets libuv close its handles. */
static void op_close(struct ef_container_op *op)
{
    /* A create's end, however it went: the host side of the next container is made now, while
     * the answer goes out, and not earlier, so that it takes no CPU from this one's child. */
    if (op->kind == OP_CREATE)
        ef_parts_prepare(op->f);
    if (op->c)
        op->c->op = NULL;
    op->c = NULL;
    uv_close((uv_handle_t *)&op->timer, op_handle_closed);
    if (op->kind == OP_CREATE && op->open_handles > 1)
        uv_close((uv_handle_t *)&op->poll, op_handle_closed);
}

/* Ends the step and reports to its owner; `c` is the container on success, else NULL. */
static void op_complete(struct ef_container_op *op, struct ef_container *c, int r,
                        const ef_error *err)
{
    struct ef_funclet *f = op->f;
    ef_container_done_cb cb = op->cb;
    void *user = op->user;
    op_close(op);
    if (cb)
        cb(f, c, r, err, user);
}

/* ---- teardown and destroy ---------------------------------------------------------------- */

/* Waits for the runner (or the failed child) to end, retrying on EINTR. */
static void reap(struct ef_container *c)
{
    int status;
    pid_t r;
    do {
        r = waitpid(c->pid, &status, 0);
    } while (r < 0 && errno == EINTR);
    if (r == c->pid) {
        c->exited = true;
        c->wait_status = status;
    } else if (r < 0 && errno == ECHILD) {
        c->exited = true;
    }
}

/* Undoes whatever of the container exists, in reverse order of creation; the first failure is
 * recorded in `err` but the remaining steps still run. A part that is gone is forgotten, so a
 * repeated call only retries what is left. */
static int teardown(struct ef_funclet *f, struct ef_container *c, ef_error *err)
{
    int ret = 0;
    ef_error e;
    /* The kill below is no OOM event to report. */
    ef_oom_watch_stop(c->oom_watch);
    c->oom_watch = NULL;
    if (ef_network_detach(&f->network, &c->net, &e) < 0 && ret == 0)
        ret = ef_error_set(err, e.code, "%s", e.msg);
    if (c->netns_fd >= 0) {
        close(c->netns_fd);
        c->netns_fd = -1;
    }
    if (c->pid > 0 && !c->exited) {
        /* SIGKILL to PID 1 of the namespace: the kernel then kills every process in it. The
         * runner is funclet's unreaped child, so its pid cannot have been reused. */
        if (kill(c->pid, SIGKILL) < 0 && errno != ESRCH && ret == 0)
            ret = ef_error_set_errno(err, -errno, "kill %d", (int)c->pid);
        reap(c);
    }
    if (c->cgroup) {
        int r = ef_cgroup_kill_all(c->cgroup, &e);
        if (r >= 0)
            r = ef_cgroup_destroy(c->cgroup, &e);
        if (r < 0) {
            if (ret == 0)
                ret = ef_error_set(err, r, "%s", e.msg);
        } else {
            ef_cgroup_free(c->cgroup);
            c->cgroup = NULL;
        }
    }
    if (c->mnt_dir) {
        int r = ef_hostmnt_remove(c->mnt_dir, &e);
        if (r < 0 && ret == 0)
            ret = ef_error_set(err, r, "%s", e.msg);
    }
    if (c->runner_socket && unlink(c->runner_socket) < 0 && errno != ENOENT && ret == 0)
        ret = ef_error_set_errno(err, -errno, "unlink %s", c->runner_socket);
    if (c->dir) {
        int r = ef_rm_rf(c->dir, &e);
        if (r < 0 && ret == 0)
            ret = ef_error_set(err, r, "%s", e.msg);
    }
    return ret;
}

int ef_container_destroy(struct ef_funclet *f, struct ef_container *c, ef_error *err)
{
    if (c->op) {
        ef_error why;
        ef_error_set(&why, -ECANCELED, "container %s was destroyed while %s", c->id,
                     ef_container_state_name(c));
        op_complete(c->op, NULL, -ECANCELED, &why);
    }
    c->state = EF_CONTAINER_DESTROYING;
    ef_error e;
    int r = teardown(f, c, &e);
    if (r < 0)
        return ef_error_set(err, r, "container %s: %s", c->id, e.msg);
    unlink_container(f, c);
    container_free(c);
    return 0;
}

void ef_container_destroy_all(struct ef_funclet *f)
{
    /* By id, from a snapshot: the callback of a cancelled step may destroy others. */
    size_t n = 0;
    for (struct ef_container *c = f->containers; c; c = c->next)
        n++;
    char(*ids)[EF_CONTAINER_ID_LEN + 1] = calloc(n ? n : 1, sizeof(*ids));
    if (!ids) {
        ef_error("cannot destroy the containers: out of memory");
        return;
    }
    size_t i = 0;
    for (struct ef_container *c = f->containers; c && i < n; c = c->next)
        memcpy(ids[i++], c->id, sizeof(ids[0]));
    for (i = 0; i < n; i++) {
        struct ef_container *c = ef_container_find(f, ids[i]);
        if (!c)
            continue;
        ef_error e;
        if (ef_container_destroy(f, c, &e) < 0)
            ef_error("%s", e.msg);
        else
            ef_info("container %s destroyed", ids[i]);
    }
    free(ids);
}

/* Tears a container down after a failed asynchronous step and tells the step's owner. */
static void op_fail(struct ef_container_op *op, int r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void op_fail(struct ef_container_op *op, int r, const char *fmt, ...)
{
    struct ef_funclet *f = op->f;
    struct ef_container *c = op->c;
    ef_error e = {.code = r};
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(e.msg, sizeof(e.msg), "container %s: ", c->id);
    vsnprintf(e.msg + n, sizeof(e.msg) - (size_t)n, fmt, ap);
    va_end(ap);
    ef_container_done_cb cb = op->cb;
    void *user = op->user;
    bool was_created = c->state != EF_CONTAINER_CREATING;
    op_close(op);
    ef_error undo;
    c->state = EF_CONTAINER_DESTROYING;
    if (teardown(f, c, &undo) < 0) {
        ef_error("container %s: cleanup after a failure: %s", c->id, undo.msg);
    } else {
        if (was_created)
            ef_info("container %s destroyed after a failure: %s", c->id, e.msg);
        unlink_container(f, c);
        container_free(c);
    }
    if (cb)
        cb(f, NULL, r, &e, user);
}

/* ---- create ------------------------------------------------------------------------------ */

void ef_container_check_oom(struct ef_funclet *f, struct ef_container *c)
{
    uint64_t kills;
    if (!c->cgroup || ef_cgroup_oom_kills(c->cgroup, &kills) < 0 || kills <= c->oom_kills)
        return;
    c->oom_kills = kills;
    c->oom_killed = true;
    if (f->on_oom)
        f->on_oom(f, c);
}

static void on_oom_event(void *user)
{
    struct ef_container *c = user;
    ef_container_check_oom(c->funclet, c);
}

/* Without OOM events the container still works; an OOM kill then shows only in the counter,
 * which is read again when the runner exits. */
static void watch_oom(struct ef_funclet *f, struct ef_container *c)
{
    ef_error e;
    int fd = -1;
    int r = ef_cgroup_oom_watch(c->cgroup, &fd, &e);
    if (r >= 0)
        r = ef_oom_watch_start(f->loop, fd, on_oom_event, c, &c->oom_watch, &e);
    if (r < 0)
        ef_warn("container %s: OOM kills will not be reported at once: %s", c->id, e.msg);
    uint64_t kills;
    if (ef_cgroup_oom_kills(c->cgroup, &kills) == 0)
        c->oom_kills = kills;
}

/* A fresh /tmp and /dev/shm through the shared mount point. */
static int mount_scratch(struct ef_funclet *f, struct ef_container *c, ef_error *err)
{
    int r = ef_hostmnt_mount_tmpfs(c->mnt_dir, EF_HOSTMNT_TMP, f->cfg.tmp_size, false, err);
    if (r == 0)
        r = ef_hostmnt_mount_tmpfs(c->mnt_dir, EF_HOSTMNT_SHM, f->cfg.tmp_size, true, err);
    return r;
}

/* The runner runs (its /tmp and /dev/shm were mounted once the root was built). */
static void create_done(struct ef_container_op *op)
{
    struct ef_container *c = op->c;
    if (!op->built) {
        op_fail(op, -EPROTO, "the runner started before the sandbox said its root was built");
        return;
    }
    c->state = EF_CONTAINER_COLD;
    op_complete(op, c, 0, NULL);
}

static void on_create_timeout(uv_timer_t *t)
{
    struct ef_container_op *op = t->data;
    if (op->c)
        op_fail(op, -ETIMEDOUT, "the sandbox did not start within %d ms",
                EF_CONTAINER_START_TIMEOUT_MS);
}

/* The runner (PID 1) is the container: when user code exhausts the memory limit the OOM killer
 * must pick the code, never the runner. The runner raises its children to 1000; funclet exempts
 * the runner outright, from here because in a user namespace the child lacks CAP_SYS_RESOURCE
 * of the host. Without that capability (funclet in some containers) the write fails and the
 * runner stays at 0, which the children's 1000 still outranks.
 *
 * Through the legacy oom_adj (-17 is -1000 there): a write of oom_score_adj by a holder of
 * CAP_SYS_RESOURCE also sets the floor below which the process and its children may not go
 * without that capability, and every child would inherit -1000 as its floor; user code could
 * then exempt itself from the OOM killer. The legacy file sets the value and leaves the floor at
 * 0. */
static void protect_runner(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/oom_adj", (int)pid);
    cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd >= 0 && write(fd, "-17", 3) < 0) {
        /* best effort, see above */
    }
}

static void runner_ended(struct ef_funclet *f, struct ef_container *c, int status);

/* The runner's pidfd is readable: it has ended. */
static void on_runner_pidfd(void *user)
{
    struct ef_container *c = user;
    int status = 0;
    int r = ef_exit_watch_reap(c->exit_watch, &status);
    if (r == 1) {
        runner_ended(c->funclet, c, status);
    } else if (r < 0 && r != -ECHILD) {
        /* SIGCHLD still reaps it. */
        ef_warn("container %s: waitid on the runner's pidfd: %s", c->id, strerror(-r));
    }
}

/* Starts the child in its namespaces (spawn.h) with its root built on `rootfs`; it reports on
 * *ret_sync_fd, the parent's end of the sync socket. Takes `plan` and *runner_fd. */
static int start_child(struct ef_funclet *f, struct ef_container *c, struct ef_mount_plan *plan,
                       const char *rootfs, int *runner_fd, int *ret_sync_fd, ef_error *err)
{
    cleanup_close int child_runner_fd = steal_fd(runner_fd);
    /* Cloned from the spawn namespace (spawn.h), the child's namespace gets a copy of its shared
     * mount point from there. */
    cleanup_close int mnt_tree_fd = -1;
    if (ef_sandbox_spawn_ns_ready()) {
        mnt_tree_fd = open_tree(AT_FDCWD, c->mnt_dir, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        if (mnt_tree_fd < 0)
            return ef_error_set_errno(err, -errno, "open_tree %s", c->mnt_dir);
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return ef_error_set_errno(err, -errno, "socketpair");
    cleanup_close int parent_fd = sv[0];
    cleanup_close int child_fd = sv[1];
    /* The child's pid comes with its first packet: the clone happens on another thread. */
    int one = 1;
    if (setsockopt(parent_fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0 ||
        fcntl(parent_fd, F_SETFL, O_NONBLOCK) < 0)
        return ef_error_set_errno(err, -errno, "set up the sync socket");

    struct ef_sandbox_args args = {
        .rootfs = rootfs,
        .hostname = c->id,
        .sync_fd = steal_fd(&child_fd),
        .runner_fd = steal_fd(&child_runner_fd),
        .sandbox_uid = f->cfg.sandbox_uid,
        .sandbox_gid = f->cfg.sandbox_gid,
        .cgroup_ns = f->cfg.cgroup_ns,
        .userns = c->userns_slot >= 0,
        .own_netns = c->own_netns,
        /* A spare waits for a function it does not know yet: its runner starts the runtime
         * most functions use ahead, so that a cold start skips the interpreter's start. */
        .prestart = c->pooled && f->cfg.prestart_python,
        .rlimit_nofile = f->cfg.rlimit_nofile,
        .sched_policy = f->cfg.container_sched_policy,
        .drop_priority = f->raised_priority,
        .rlimit_nproc = f->cfg.rlimit_nproc,
        .seccomp = f->cfg.seccomp ? &f->seccomp : NULL,
        .changed_signals = f->changed_signals,
    };
    int flags =
        CLONE_FLAGS | (c->own_netns ? CLONE_NEWNET : 0) | (c->userns_slot >= 0 ? CLONE_NEWUSER : 0);
    int r = ef_sandbox_spawn(f->loop, &args, plan, flags, steal_fd(&mnt_tree_fd), c->mnt_dir, err);
    if (r < 0)
        return r;
    *ret_sync_fd = steal_fd(&parent_fd);
    return 0;
}

/* Sends one byte to the waiting child (sandbox.h). A child that failed meanwhile has closed its
 * end: its report, or the end-of-file, is what on_sync_readable() reads next and tells. */
static int tell_child(struct ef_container *c, ef_error *err)
{
    char byte = 1;
    if (write(c->op->sync_fd, &byte, 1) == 1 || errno == EPIPE || errno == ECONNRESET)
        return 0;
    return ef_error_set_errno(err, -errno, "start the sandbox");
}

/* Whether the child has sent a report of the step that failed, or ended: its next packet is
 * longer than a byte (not EF_SANDBOX_BUILT), or there is none to come. */
static bool child_has_reported(const struct ef_container *c)
{
    struct ef_sandbox_report report;
    ssize_t n = recv(c->op->sync_fd, &report, sizeof(report), MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || n > 1 || (n < 0 && errno == ECONNRESET);
}

/* The child runs in its namespaces and waits for its maps; it builds its root while it is put
 * into its cgroups (sandbox.h). `pidfd` (taken; -1 without pidfds) is the child's own, sent with
 * its first packet: a pid alone could have been reaped and reused by now, a pidfd cannot. */
static int child_started(struct ef_funclet *f, struct ef_container *c, pid_t pid, int pidfd,
                         ef_error *err)
{
    if (pid <= 0) {
        if (pidfd >= 0)
            close(pidfd);
        return ef_error_set(err, -EPROTO, "the sandbox sent no pid");
    }
    if (pidfd >= 0) {
        /* Alive now means its pid is still its own until this loop reaps it. */
        if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0) {
            close(pidfd);
            return ef_error_set(err, -ECHILD, "the sandbox ended before it started");
        }
        ef_error e;
        if (ef_exit_watch_start(f->loop, pidfd, on_runner_pidfd, c, &c->exit_watch, &e) < 0)
            ef_warn("container %s: %s; its runner is reaped from SIGCHLD", c->id, e.msg);
    }
    c->pid = pid;
    /* Two bytes: the maps are written, so the child builds its root while this loop puts it
     * into its cgroups; then it is in them. */
    int r = c->userns_slot >= 0 ? ef_userns_write_maps(pid, c->userns_id, err) : 0;
    if (r == 0)
        r = tell_child(c, err);
    if (r == 0)
        r = ef_cgroup_attach(c->cgroup, pid, err);
    /* The child does what needs no map meanwhile (sandbox.c), then builds its root; one that
     * failed there has sent its report, or ended: that, read next, says why rather than this
     * step on a child gone. */
    if (r < 0 && child_has_reported(c))
        return 0;
    if (r < 0)
        return r;
    protect_runner(pid);
    r = tell_child(c, err);
    if (r < 0)
        return r;
    /* While the child builds its root: what needs only its pid and cgroups. */
    if (c->own_netns) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
        c->netns_fd = open(path, O_RDONLY | O_CLOEXEC);
        /* ENOENT: the child has ended already; its report says why. */
        if (c->netns_fd < 0 && errno != ENOENT)
            return ef_error_set_errno(err, -errno, "cannot open %s", path);
    }
    watch_oom(f, c);
    return 0;
}

/* Reads and handles one packet of the child (see on_sync_readable); true when more are to come
 * and the step goes on. */
static bool read_sync_packet(struct ef_container_op *op, int status)
{
    struct ef_sandbox_report report;
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int))];
    } control;
    struct iovec iov = {.iov_base = &report, .iov_len = sizeof(report)};
    struct msghdr msg = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = &control,
        .msg_controllen = sizeof(control),
    };
    ssize_t n = recvmsg(op->sync_fd, &msg, MSG_CMSG_CLOEXEC);
    /* A child that ended with a byte of ours unread leaves ECONNRESET, which the kernel reports
     * before what it had sent: its report, or the end-of-file, comes with the next read. */
    if (n < 0 && errno == ECONNRESET) {
        op->reset = true;
        msg.msg_controllen = sizeof(control);
        n = recvmsg(op->sync_fd, &msg, MSG_CMSG_CLOEXEC);
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        /* libuv stops watching after an error: nothing more would come. */
        if (status < 0)
            op_fail(op, -EIO, "waiting for the sandbox: %s", uv_strerror(status));
        return false;
    }
    if (n < 0) {
        op_fail(op, -errno, "read from the sandbox: %s", strerror(errno));
        return false;
    }
    /* Its credentials come with every packet (SO_PASSCRED); its pidfd with the first. */
    pid_t pid = 0;
    int pidfd = -1;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET)
            continue;
        if (cm->cmsg_type == SCM_CREDENTIALS && cm->cmsg_len >= CMSG_LEN(sizeof(struct ucred))) {
            struct ucred cred;
            memcpy(&cred, CMSG_DATA(cm), sizeof(cred));
            pid = cred.pid;
        } else if (cm->cmsg_type == SCM_RIGHTS) {
            size_t nfds = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < nfds; i++) {
                int fd;
                memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
                if (pidfd < 0 && i == 0)
                    pidfd = fd;
                else
                    close(fd);
            }
        }
    }
    if (n == 1 && !op->started && *(char *)&report == EF_SANDBOX_STARTED) {
        op->started = true;
        ef_error e;
        int r = child_started(op->f, op->c, pid, pidfd, &e);
        if (r < 0)
            op_fail(op, r, "%s", e.msg);
        return r == 0;
    }
    if (pidfd >= 0)
        close(pidfd);
    /* The root is built: its /tmp and /dev/shm are binds of mnt/tmp and mnt/shm now, so fresh
     * tmpfs instances mounted there propagate into them, while the child goes on to its exec. */
    if (n == 1 && op->started && !op->built && *(char *)&report == EF_SANDBOX_BUILT) {
        op->built = true;
        ef_error e;
        int r = mount_scratch(op->f, op->c, &e);
        if (r < 0)
            op_fail(op, r, "%s", e.msg);
        return r == 0;
    }
    if (n > 0) {
        report.msg[sizeof(report.msg) - 1] = '\0';
        int e = report.err > 0 ? report.err : EIO;
        op_fail(op, -e, "%s: %s", report.msg, strerror(e));
        return false;
    }
    if (!op->started) {
        op_fail(op, -ECHILD, "the sandbox ended before it started");
        return false;
    }
    /* A byte of ours went unread: the child ended before its exec, without a report. */
    if (op->reset) {
        op_fail(op, -ECHILD, "the sandbox ended before its exec");
        return false;
    }
    if (op->c->exited) {
        char how[64];
        ef_wait_status_string(op->c->wait_status, how, sizeof(how));
        op_fail(op, -ECHILD, "the runner ended as it started: %s", how);
        return false;
    }
    create_done(op);
    return false;
}

/* The child's packets: EF_SANDBOX_STARTED with its credentials and its pidfd, EF_SANDBOX_BUILT,
 * then end-of-file once the runner was exec'd, or a report of the step that failed. */
static void on_sync_readable(uv_poll_t *h, int status, int events)
{
    struct ef_container_op *op = h->data;
    (void)events;
    if (!op->c)
        return;
    /* UV_EBADF is libuv's word for POLLERR: the socket's error (ECONNRESET, the child ended
     * with a byte of ours unread), behind which its packets, its report or end-of-file still
     * wait. libuv watches no more after it, so everything is read now. */
    if (status < 0 && status != UV_EBADF) {
        op_fail(op, -EIO, "waiting for the sandbox: %s", uv_strerror(status));
        return;
    }
    while (read_sync_packet(op, status) && status < 0 && op->c) {
    }
}

struct ef_cgroup_limits ef_container_cold_limits(const struct ef_funclet *f)
{
    return (struct ef_cgroup_limits){
        .memory_bytes = f->cfg.cold_memory_mb << 20,
        .pids_max = f->cfg.cold_pids_max,
        .cpu_millicores = 0,
        .cpu_weight = ef_cgroup_weight_for_memory(f->cfg.cold_memory_mb),
    };
}

/* Everything up to the running child, in the container's parts (made ahead, with their cgroups,
 * or just now, without); on failure the caller tears down what exists. */
static int start_container(struct ef_funclet *f, struct ef_container *c,
                           struct ef_container_parts *parts, int *ret_sync_fd, ef_error *err)
{
    struct ef_sandbox_config sc = {
        .shared_dir = c->mnt_dir,
        .runtime_dir = f->cfg.runtime_dir,
        .dev_dir = f->cfg.dev_dir,
        .sandbox_uid = f->cfg.sandbox_uid,
        .sandbox_gid = f->cfg.sandbox_gid,
    };
    struct ef_mount_plan plan = {0};
    int r = ef_mount_plan_build(&sc, &f->host_facts, &plan, err);
    if (r < 0)
        return r;
    r = start_child(f, c, &plan, parts->rootfs, &parts->runner_fd, ret_sync_fd, err);
    ef_mount_plan_free(&plan);
    if (r < 0 || c->cgroup)
        return r;
    /* Parts made just now: the clone first, a pool thread makes it while this loop creates the
     * cgroups, which the child needs only once it has started (child_started). */
    struct ef_cgroup_limits limits = ef_container_cold_limits(f);
    r = ef_cgroup_create(f->cgroups, c->id, &limits, &c->cgroup, err);
    if (r < 0) {
        /* The child, if it was made, reads end-of-file and ends. */
        close(*ret_sync_fd);
        *ret_sync_fd = -1;
    }
    return r;
}

int ef_container_create(struct ef_funclet *f, const struct ef_container_create_opts *opts,
                        ef_container_done_cb cb, void *user, struct ef_container **ret,
                        ef_error *err)
{
    struct ef_container *c = calloc(1, sizeof(*c));
    if (!c)
        return ef_error_set(err, -ENOMEM, "out of memory");
    c->netns_fd = -1;
    c->userns_slot = -1;
    c->funclet = f;
    c->state = EF_CONTAINER_CREATING;
    c->own_netns = opts->own_netns;
    c->pooled = opts->pooled;
    c->network = opts->own_netns ? EF_NETWORK_NONE : EF_NETWORK_HOST;
    c->memory_mb = (int64_t)f->cfg.cold_memory_mb;
    c->pids_max = (int64_t)f->cfg.cold_pids_max;
    ef_error e;
    ef_error_clear(&e);
    int sync_fd = -1;
    int r = 0;
    /* The parts made ahead, else made now (without the cgroups: start_container). */
    struct ef_container_parts parts = {.runner_fd = -1};
    if (!ef_parts_take(f, &parts)) {
        r = ef_container_new_id(f, c->id, &e);
        if (r == 0)
            r = ef_container_parts_make(f->cfg.containers_dir, c->id, c->id, NULL, NULL, &parts,
                                        &e);
        if (r < 0)
            goto fail;
    }
    memcpy(c->id, parts.id, sizeof(c->id));
    c->dir = parts.dir;
    c->runner_socket = parts.runner_socket;
    c->mnt_dir = parts.mnt_dir;
    c->cgroup = parts.cgroup;
    parts.dir = parts.runner_socket = parts.mnt_dir = NULL;
    parts.cgroup = NULL;
    if (f->cfg.userns) {
        /* One slot per container and --max-containers slots: none can be missing. */
        r = ef_userns_slot_take(&f->userns_slots);
        if (r < 0) {
            r = ef_error_set(&e, -EIO, "no free range of host uids for its user namespace");
            goto fail;
        }
        c->userns_slot = r;
        c->userns_id = ef_userns_slot_host_id(&f->userns_slots, r);
    }
    r = start_container(f, c, &parts, &sync_fd, &e);
    ef_container_parts_free(&parts);
    if (r < 0)
        goto fail;

    struct ef_container_op *op = op_new(f, c, OP_CREATE, cb, user);
    if (!op) {
        close(sync_fd);
        r = ef_error_set(&e, -ENOMEM, "out of memory");
        goto fail;
    }
    op->sync_fd = sync_fd;
    op->poll.data = op;
    if (uv_poll_init(f->loop, &op->poll, sync_fd) == 0) {
        op->open_handles++;
        r = uv_poll_start(&op->poll, UV_READABLE, on_sync_readable);
    } else {
        r = -EIO;
    }
    if (r == 0)
        r = uv_timer_start(&op->timer, on_create_timeout, EF_CONTAINER_START_TIMEOUT_MS, 0);
    if (r < 0) {
        op_close(op);
        r = ef_error_set(&e, -EIO, "cannot watch the sandbox: %s", uv_strerror(r));
        goto fail;
    }
    c->next = f->containers;
    f->containers = c;
    f->n_containers++;
    *ret = c;
    return 0;

fail:
    ef_container_parts_free(&parts);
    ef_error_set(err, r, "container %s: %s", c->id, e.msg);
    ef_error undo;
    if (teardown(f, c, &undo) < 0) {
        ef_error("container %s: cleanup after a failed create: %s", c->id, undo.msg);
        /* Something of it may still run with those ids: the range is not handed out again. */
        c->userns_slot = -1;
    }
    container_free(c);
    ef_parts_prepare(f);
    return r;
}

/* ---- warmup ------------------------------------------------------------------------------ */

static int check_usable(const struct ef_container *c, const char *what, ef_error *err)
{
    if (c->exited) {
        char how[64];
        ef_wait_status_string(c->wait_status, how, sizeof(how));
        return ef_error_set(err, -EBUSY,
                            "container %s cannot be %s: its runner ended (%s); "
                            "destroy it",
                            c->id, what, how);
    }
    return 0;
}

/* Back to the base limits and no code: the part of a cold state warmup changes. */
static int make_cold(struct ef_funclet *f, struct ef_container *c, ef_error *err)
{
    ef_error e;
    int ret = 0;
    if (ef_network_detach(&f->network, &c->net, &e) < 0)
        ret = ef_error_set(err, e.code, "%s", e.msg);
    if (ef_hostmnt_unmount(c->mnt_dir, EF_HOSTMNT_TASK, &e) < 0 && ret == 0)
        ret = ef_error_set(err, e.code, "%s", e.msg);
    struct ef_cgroup_limits limits = ef_container_cold_limits(f);
    if (ef_cgroup_set_limits(c->cgroup, &limits, &e) < 0 && ret == 0)
        ret = ef_error_set(err, e.code, "%s", e.msg);
    if (ret == 0) {
        c->memory_mb = (int64_t)f->cfg.cold_memory_mb;
        c->pids_max = (int64_t)f->cfg.cold_pids_max;
        c->cpu_millicores = 0;
    }
    free(c->code_dir);
    c->code_dir = NULL;
    c->has_identity = false;
    memset(&c->identity, 0, sizeof(c->identity));
    c->network = c->own_netns ? EF_NETWORK_NONE : EF_NETWORK_HOST;
    return ret;
}

int ef_container_warmup(struct ef_funclet *f, struct ef_container *c,
                        const struct ef_warm_spec *spec, ef_error *err)
{
    int r = check_usable(c, "warmed up", err);
    if (r < 0)
        return r;
    if (c->state != EF_CONTAINER_COLD)
        return ef_error_set(
            err, -EBUSY, "container %s is %s: only a cold container can be warmed up%s", c->id,
            ef_container_state_name(c), c->state == EF_CONTAINER_WARM ? " (reset it first)" : "");
    if (spec->network == EF_NETWORK_HOST && c->own_netns)
        return ef_error_set(err, -EINVAL,
                            "container %s has a network namespace of its own: network 'host' "
                            "needs a container created with network 'host'",
                            c->id);
    if (spec->network != EF_NETWORK_HOST && !c->own_netns)
        return ef_error_set(err, -EINVAL,
                            "container %s shares the pod's network (created with network "
                            "'host'): it cannot be given network '%s'",
                            c->id, ef_network_mode_name(spec->network));
    uint64_t allocated = ef_container_allocated_mb(f);
    if (!ef_capacity_allows(f->capacity_mb, allocated, (uint64_t)c->memory_mb,
                            (uint64_t)spec->memory_mb))
        return ef_error_set(err, -ENOSPC,
                            "not enough memory on this node for %lld MB: %llu of %llu MB are "
                            "allocated (capacity = memory minus --reserved-memory)",
                            (long long)spec->memory_mb, (unsigned long long)allocated,
                            (unsigned long long)f->capacity_mb);
    char *code_dir = strdup(spec->code_dir);
    if (!code_dir)
        return ef_error_set(err, -ENOMEM, "out of memory");

    c->state = EF_CONTAINER_WARMING;
    ef_error e;
    struct ef_cgroup_limits limits = {
        .memory_bytes = (uint64_t)spec->memory_mb << 20,
        .pids_max = (uint64_t)spec->pids_max,
        .cpu_millicores = (uint32_t)spec->cpu_millicores,
        .cpu_weight = ef_cgroup_weight_for_memory((uint64_t)spec->memory_mb),
    };
    bool in_network = false;
    r = ef_cgroup_set_limits(c->cgroup, &limits, &e);
    if (r == 0)
        r = ef_hostmnt_bind_code(c->mnt_dir, code_dir, f->cfg.code_root, &e);
    if (r == 0 && spec->network == EF_NETWORK_BRIDGE) {
        in_network = true;
        r = ef_network_attach(&f->network, c->id, c->netns_fd, &c->net, &e);
    }
    if (r < 0) {
        free(code_dir);
        ef_error undo;
        if (make_cold(f, c, &undo) < 0)
            ef_warn("container %s: undoing a failed warmup: %s", c->id, undo.msg);
        c->state = EF_CONTAINER_COLD;
        /* Only the bridge's addresses running out is a capacity problem. */
        bool out_of_addresses = r == -ENOSPC && in_network;
        return ef_error_set(err, out_of_addresses ? r : ef_container_system_error(r),
                            "container %s: %s", c->id, e.msg);
    }
    c->memory_mb = spec->memory_mb;
    c->pids_max = spec->pids_max;
    c->cpu_millicores = spec->cpu_millicores;
    free(c->code_dir);
    c->code_dir = code_dir;
    c->has_identity = spec->has_identity;
    c->identity = spec->identity;
    c->network = spec->network;
    c->oom_killed = false;
    c->was_warm = true;
    if (c->pooled) {
        c->pooled = false;
        ef_pool_kick(f);
    }
    c->state = EF_CONTAINER_WARM;
    return 0;
}

/* ---- reset ------------------------------------------------------------------------------- */

/* Whether the runner still has a child, even a zombie: until it has reaped the runtime it has
 * not noticed the runtime's end. Needs CONFIG_PROC_CHILDREN; without it there is nothing to
 * wait for. */
static bool runner_has_children(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return false;
    bool any = false;
    struct dirent *de;
    while (!any && (de = readdir(d))) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        char file[PATH_MAX], buf[16];
        snprintf(file, sizeof(file), "/proc/%d/task/%s/children", (int)pid, de->d_name);
        cleanup_close int fd = open(file, O_RDONLY | O_CLOEXEC);
        any = fd >= 0 && read(fd, buf, sizeof(buf)) > 0;
    }
    closedir(d);
    return any;
}

static void reset_done(struct ef_container_op *op)
{
    struct ef_funclet *f = op->f;
    struct ef_container *c = op->c;
    ef_error e;
    /* The old /tmp and /dev/shm go first: their pages are charged to the container and cannot
     * be reclaimed (there is no swap), so the memory limit could not shrink to the base size
     * while they exist. */
    int r = ef_hostmnt_unmount(c->mnt_dir, EF_HOSTMNT_TMP, &e);
    if (r == 0)
        r = ef_hostmnt_unmount(c->mnt_dir, EF_HOSTMNT_SHM, &e);
    /* What the function left in the container's IPC namespace goes too (ipc_clear.h): the next
     * runtime may be another function's. */
    if (r == 0 && (r = ef_ipc_clear(c->pid, &e)) > 0)
        ef_debug("container %s: removed %d IPC object(s) the function left", c->id, r);
    if (r > 0)
        r = 0;
    if (r == 0)
        r = make_cold(f, c, &e);
    if (r == 0)
        r = mount_scratch(f, c, &e);
    if (r < 0) {
        op_fail(op, r, "reset: %s", e.msg);
        return;
    }
    c->state = EF_CONTAINER_COLD;
    c->oom_killed = false;
    if (op->release) {
        /* A spare must take any function's runtime.start: the runner starts a new runtime
         * once the previous one has ended, and the reset has waited until the runner reaped
         * it, so a container that has been warm is as good a spare as a new one. Spares all
         * have their own network namespace. */
        size_t creating = 0;
        if (c->own_netns && ef_pool_count(f, &creating) + creating < f->cfg.pool_size) {
            c->pooled = true;
        } else {
            ef_container_done_cb cb = op->cb;
            void *user = op->user;
            bool c_own_netns = c->own_netns;
            op_close(op);
            char id[sizeof(c->id)];
            memcpy(id, c->id, sizeof(id));
            if (ef_container_destroy(f, c, &e) < 0) {
                ef_error("%s", e.msg);
                if (cb)
                    cb(f, NULL, e.code, &e, user);
                return;
            }
            ef_info("container %s destroyed after its reset: %s", id,
                    c_own_netns ? "the pool is full"
                                : "a container without its own network is never pooled");
            if (cb)
                cb(f, NULL, 0, NULL, user);
            return;
        }
    }
    /* The runner starts a Python runtime ahead again, as in a new spare, if it was started to
     * (--prestart python); only now, since the reset kills whatever else runs in the cgroup. A
     * runner without the handler ignores the signal (PID 1 of its namespace). */
    if (f->cfg.prestart_python && kill(c->pid, SIGUSR1) < 0)
        ef_debug("container %s: SIGUSR1 to the runner: %s", c->id, strerror(errno));
    op_complete(op, c, 0, NULL);
}

static void on_reset_tick(uv_timer_t *t)
{
    struct ef_container_op *op = t->data;
    struct ef_container *c = op->c;
    if (!c)
        return;
    if (c->exited) {
        char how[64];
        ef_wait_status_string(c->wait_status, how, sizeof(how));
        op_fail(op, -ECHILD, "the runner ended during the reset (%s)", how);
        return;
    }
    int n;
    if (op->frozen) {
        n = ef_cgroup_others_left(c->cgroup, c->pid);
    } else {
        ef_error e;
        n = ef_cgroup_kill_others(c->cgroup, c->pid, &op->frozen, &e);
    }
    if (n < 0) {
        op_fail(op, n, "reset: cannot list the processes: %s", strerror(-n));
        return;
    }
    if (n == 0 && !runner_has_children(c->pid)) {
        uv_timer_stop(&op->timer);
        reset_done(op);
        return;
    }
    if (ef_now_monotonic_ms() >= op->deadline_ms)
        op_fail(op, -EBUSY, "reset: processes remain %d ms after SIGKILL",
                EF_CONTAINER_RESET_TIMEOUT_MS);
}

int ef_container_reset(struct ef_funclet *f, struct ef_container *c, bool release,
                       ef_container_done_cb cb, void *user, ef_error *err)
{
    int r = check_usable(c, "reset", err);
    if (r < 0)
        return r;
    if (c->state != EF_CONTAINER_COLD && c->state != EF_CONTAINER_WARM)
        return ef_error_set(err, -EBUSY, "container %s is %s: try again when it is done", c->id,
                            ef_container_state_name(c));
    struct ef_container_op *op = op_new(f, c, OP_RESET, cb, user);
    if (!op)
        return ef_error_set(err, -ENOMEM, "out of memory");
    op->release = release;
    op->deadline_ms = ef_now_monotonic_ms() + EF_CONTAINER_RESET_TIMEOUT_MS;
    c->state = EF_CONTAINER_RESETTING;
    ef_error e;
    r = ef_cgroup_kill_others(c->cgroup, c->pid, &op->frozen, &e);
    if (r < 0) {
        /* Checked again at the first tick, which gives up at the deadline. */
        ef_warn("container %s: reset: %s", c->id, e.msg);
    }
    /* Never answered within this call: the runner has to reap what died first, and a second
     * request on the same container meanwhile must meet RESETTING. */
    uv_timer_start(&op->timer, on_reset_tick, 0, RESET_POLL_MS);
    return 0;
}

/* ---- lookup, reaping, orphans ------------------------------------------------------------- */

struct ef_container *ef_container_find(const struct ef_funclet *f, const char *id)
{
    for (struct ef_container *c = f->containers; c; c = c->next) {
        if (strcmp(c->id, id) == 0)
            return c;
    }
    return NULL;
}

/* The runner of `c` has been reaped with `status`, by whichever path saw it first. */
static void runner_ended(struct ef_funclet *f, struct ef_container *c, int status)
{
    c->exited = true;
    c->wait_status = status;
    ef_exit_watch_stop(c->exit_watch);
    c->exit_watch = NULL;
    ef_container_check_oom(f, c);
    if (c->state != EF_CONTAINER_CREATING && f->on_exit)
        f->on_exit(f, c);
}

void ef_container_reap(struct ef_funclet *f)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid < 0 && errno == EINTR)
            continue;
        if (pid <= 0)
            return;
        struct ef_container *c = f->containers;
        while (c && !(c->pid == pid && !c->exited))
            c = c->next;
        if (!c) {
            ef_debug("reaped process %d, which is no container's runner", (int)pid);
            continue;
        }
        runner_ended(f, c, status);
    }
}

void ef_container_remove_orphans(struct ef_funclet *f)
{
    DIR *d = opendir(f->cfg.containers_dir);
    if (!d) {
        if (errno != ENOENT)
            ef_warn("cannot read %s: %s", f->cfg.containers_dir, strerror(errno));
        return;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
            strcmp(de->d_name, EF_HOSTMNT_DEV) == 0)
            continue;
        ef_error e;
        /* A container's, or the host side of one made ahead under its hidden name. */
        char id[EF_CONTAINER_ID_LEN + 1];
        if (!ef_parts_ahead_id(de->d_name, id)) {
            if (ef_validate_container_id(de->d_name, &e) < 0) {
                ef_warn("leaving unknown entry %s/%s alone", f->cfg.containers_dir, de->d_name);
                continue;
            }
            memcpy(id, de->d_name, sizeof(id));
        }
        if (ef_cgroup_remove_stale(f->cgroups, id, &e) < 0) {
            ef_error("orphan container %s: %s", de->d_name, e.msg);
            continue;
        }
        cleanup_free char *dir = ef_path_join(f->cfg.containers_dir, de->d_name);
        if (!dir || ef_rm_rf(dir, &e) < 0) {
            ef_error("orphan container %s: %s", de->d_name, dir ? e.msg : "out of memory");
            continue;
        }
        ef_info("removed orphan container %s left by a previous run", de->d_name);
    }
    closedir(d);
}
