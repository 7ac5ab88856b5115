#include "funclet/container.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "funclet/cgroup.h"
#include "funclet/cgroup_parse.h"
#include "funclet/mount_plan.h"
#include "funclet/oom_watch.h"
#include "funclet/sandbox.h"
#include "funclet/wait_status.h"

#define CHILD_STACK_SIZE (1024 * 1024)
#define CLONE_FLAGS      (CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET)

static int new_id(const struct ef_funclet *f, char id[EF_CONTAINER_ID_LEN + 1], ef_error *err)
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
        if (!ef_container_find(f, id))
            return 0;
    }
    return ef_error_set(err, -EEXIST, "cannot find an unused container id");
}

/* Binds and listens on the runner's socket before the container exists, so that the controller
 * can connect as soon as create answers; the runner inherits the listening fd. */
static int listen_runner_socket(const char *path, int *ret_fd, ef_error *err)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(addr.sun_path))
        return ef_error_set(err, -ENAMETOOLONG, "socket path %s is longer than %zu bytes", path,
                            sizeof(addr.sun_path) - 1);
    strcpy(addr.sun_path, path);
    cleanup_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ef_error_set_errno(err, -errno, "socket");
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
        return ef_error_set_errno(err, -errno, "bind %s", path);
    /* The directory is 0700, so nobody can reach the socket before the chmod. */
    if (chmod(path, 0600) < 0)
        return ef_error_set_errno(err, -errno, "chmod %s", path);
    if (listen(fd, 128) < 0)
        return ef_error_set_errno(err, -errno, "listen %s", path);
    *ret_fd = steal_fd(&fd);
    return 0;
}

static void container_free(struct ef_container *c)
{
    if (!c)
        return;
    ef_oom_watch_stop(c->oom_watch);
    ef_cgroup_free(c->cgroup);
    free(c->code_dir);
    free(c->dir);
    free(c->runner_socket);
    free(c);
}

/* Waits for the runner (or the failed child) to end, retrying on EINTR. */
static void reap(struct ef_container *c)
{
    int status;
    pid_t r;
    do {
        r = waitpid(c->pid, &status, 0);
    } while (r < 0 && errno == EINTR);
    if (r == c->pid) {
        c->state = EF_CONTAINER_EXITED;
        c->wait_status = status;
    } else if (r < 0 && errno == ECHILD) {
        c->state = EF_CONTAINER_EXITED;
    }
}

/* Undoes whatever of the container exists, in reverse order of creation; the first failure is
 * recorded in `err` but the remaining steps still run. A part that is gone is forgotten, so a
 * repeated call only retries what is left. */
static int teardown(struct ef_container *c, ef_error *err)
{
    int ret = 0;
    ef_error e;
    /* The kill below is no OOM event to report. */
    ef_oom_watch_stop(c->oom_watch);
    c->oom_watch = NULL;
    if (c->pid > 0 && c->state == EF_CONTAINER_RUNNING) {
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
    if (c->runner_socket && unlink(c->runner_socket) < 0 && errno != ENOENT && ret == 0)
        ret = ef_error_set_errno(err, -errno, "unlink %s", c->runner_socket);
    if (c->dir) {
        int r = ef_rm_rf(c->dir, &e);
        if (r < 0 && ret == 0)
            ret = ef_error_set(err, r, "%s", e.msg);
    }
    return ret;
}

/* Waits for the child's report: end-of-file when the runner was exec'd, or the failed step. */
static int wait_child(int sync_fd, ef_error *err)
{
    unsigned long long deadline = ef_now_monotonic_ms() + EF_CONTAINER_START_TIMEOUT_MS;
    for (;;) {
        unsigned long long now = ef_now_monotonic_ms();
        if (now >= deadline)
            return ef_error_set(err, -ETIMEDOUT, "the sandbox did not start within %d ms",
                                EF_CONTAINER_START_TIMEOUT_MS);
        struct pollfd p = {.fd = sync_fd, .events = POLLIN};
        int r = poll(&p, 1, (int)(deadline - now));
        if (r < 0 && errno != EINTR)
            return ef_error_set_errno(err, -errno, "poll");
        if (r <= 0)
            continue;
        struct ef_sandbox_report report;
        ssize_t n = read(sync_fd, &report, sizeof(report));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return ef_error_set_errno(err, -errno, "read from the sandbox");
        if (n == 0)
            return 0;
        report.msg[sizeof(report.msg) - 1] = '\0';
        return ef_error_set_errno(err, report.err > 0 ? -report.err : -EIO, "%s", report.msg);
    }
}

/* Starts the child in its namespaces, puts it into the cgroups and lets it build its root. */
static int start_child(struct ef_funclet *f, struct ef_container *c,
                       const struct ef_mount_plan *plan, int runner_fd, ef_error *err)
{
    cleanup_free char *rootfs = ef_path_join(c->dir, "rootfs");
    if (!rootfs)
        return ef_error_set(err, -ENOMEM, "out of memory");
    if (mkdir(rootfs, 0755) < 0)
        return ef_error_set_errno(err, -errno, "mkdir %s", rootfs);

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return ef_error_set_errno(err, -errno, "socketpair");
    cleanup_close int parent_fd = sv[0];
    cleanup_close int child_fd = sv[1];

    struct ef_sandbox_args args = {
        .plan = plan,
        .rootfs = rootfs,
        .hostname = c->id,
        .sync_fd = child_fd,
        .runner_fd = runner_fd,
        .sandbox_uid = f->cfg.sandbox_uid,
        .sandbox_gid = f->cfg.sandbox_gid,
        .cgroup_ns = f->cfg.cgroup_ns,
        .rlimit_nofile = f->cfg.rlimit_nofile,
        .rlimit_nproc = f->cfg.rlimit_nproc,
        .seccomp = f->cfg.seccomp ? &f->seccomp : NULL,
    };
    void *stack = mmap(NULL, CHILD_STACK_SIZE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED)
        return ef_error_set_errno(err, -errno, "mmap the child stack");
    /* Without CLONE_VM the child runs on its own copy of this mapping. */
    pid_t pid =
        clone(ef_sandbox_child, (char *)stack + CHILD_STACK_SIZE, CLONE_FLAGS | SIGCHLD, &args);
    int clone_errno = errno;
    munmap(stack, CHILD_STACK_SIZE);
    if (pid < 0)
        return ef_error_set_errno(err, -clone_errno, "clone");
    c->pid = pid;
    close(steal_fd(&child_fd));

    int r = ef_cgroup_attach(c->cgroup, pid, err);
    if (r < 0)
        return r;
    char go = 1;
    if (write(parent_fd, &go, 1) != 1)
        return ef_error_set_errno(err, -errno, "start the sandbox");
    return wait_child(parent_fd, err);
}

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

int ef_container_create(struct ef_funclet *f, const struct ef_create_params *params,
                        struct ef_container **ret, ef_error *err)
{
    struct ef_container *c = calloc(1, sizeof(*c));
    if (!c)
        return ef_error_set(err, -ENOMEM, "out of memory");
    ef_error e;
    ef_error_clear(&e);
    cleanup_close int runner_fd = -1;
    struct ef_mount_plan plan = {0};
    int r = new_id(f, c->id, &e);
    if (r < 0)
        goto fail;
    c->funclet = f;
    c->memory_mb = params->memory_mb;
    c->pids_max = params->pids_max;
    c->cpu_millicores = params->cpu_millicores;
    c->code_dir = strdup(params->code_dir);
    c->dir = ef_path_join(f->cfg.containers_dir, c->id);
    c->runner_socket = c->dir ? ef_path_join(c->dir, "runner.sock") : NULL;
    if (!c->code_dir || !c->dir || !c->runner_socket) {
        r = ef_error_set(&e, -ENOMEM, "out of memory");
        goto fail;
    }

    if (mkdir(c->dir, 0700) < 0) {
        r = ef_error_set_errno(&e, -errno, "mkdir %s", c->dir);
        /* Not ours (an id collision with a leftover): leave it and its socket alone. */
        free(c->dir);
        c->dir = NULL;
        free(c->runner_socket);
        c->runner_socket = NULL;
        goto fail;
    }
    r = listen_runner_socket(c->runner_socket, &runner_fd, &e);
    if (r < 0)
        goto fail;

    struct ef_sandbox_config sc = {
        .code_dir = c->code_dir,
        .code_root = f->cfg.code_root,
        .runtime_dir = f->cfg.runtime_dir,
        .tmp_size = f->cfg.tmp_size,
        .sandbox_uid = f->cfg.sandbox_uid,
        .sandbox_gid = f->cfg.sandbox_gid,
    };
    struct ef_host_facts facts;
    r = ef_host_facts_probe(&facts, &e);
    if (r >= 0)
        r = ef_mount_plan_build(&sc, &facts, &plan, &e);
    if (r < 0)
        goto fail;

    struct ef_cgroup_limits limits = {
        .memory_bytes = (uint64_t)c->memory_mb << 20,
        .pids_max = (uint64_t)c->pids_max,
        .cpu_millicores = (uint32_t)c->cpu_millicores,
        .cpu_weight = ef_cgroup_weight_for_memory((uint64_t)c->memory_mb),
    };
    r = ef_cgroup_create(f->cgroups, c->id, &limits, &c->cgroup, &e);
    if (r < 0)
        goto fail;
    r = start_child(f, c, &plan, runner_fd, &e);
    if (r < 0)
        goto fail;
    watch_oom(f, c);

    ef_mount_plan_free(&plan);
    c->next = f->containers;
    f->containers = c;
    f->n_containers++;
    *ret = c;
    return 0;

fail:
    ef_mount_plan_free(&plan);
    ef_error_set(err, r, "container %s: %s", c->id, e.msg);
    ef_error undo;
    if (teardown(c, &undo) < 0)
        ef_error("container %s: cleanup after a failed create: %s", c->id, undo.msg);
    container_free(c);
    return r;
}

static void unlink_container(struct ef_funclet *f, struct ef_container *c)
{
    for (struct ef_container **p = &f->containers; *p; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            f->n_containers--;
            return;
        }
    }
}

int ef_container_destroy(struct ef_funclet *f, struct ef_container *c, ef_error *err)
{
    ef_error e;
    int r = teardown(c, &e);
    if (r < 0)
        return ef_error_set(err, r, "container %s: %s", c->id, e.msg);
    unlink_container(f, c);
    container_free(c);
    return 0;
}

void ef_container_destroy_all(struct ef_funclet *f)
{
    struct ef_container *c = f->containers;
    while (c) {
        struct ef_container *next = c->next;
        ef_error e;
        char id[sizeof(c->id)];
        memcpy(id, c->id, sizeof(id));
        if (ef_container_destroy(f, c, &e) < 0)
            ef_error("%s", e.msg);
        else
            ef_info("container %s destroyed", id);
        c = next;
    }
}

struct ef_container *ef_container_find(const struct ef_funclet *f, const char *id)
{
    for (struct ef_container *c = f->containers; c; c = c->next) {
        if (strcmp(c->id, id) == 0)
            return c;
    }
    return NULL;
}

void ef_container_reap(struct ef_funclet *f, ef_container_exit_cb cb, void *user)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid < 0 && errno == EINTR)
            continue;
        if (pid <= 0)
            return;
        struct ef_container *c = f->containers;
        while (c && !(c->pid == pid && c->state == EF_CONTAINER_RUNNING))
            c = c->next;
        if (!c) {
            ef_debug("reaped process %d, which is no container's runner", (int)pid);
            continue;
        }
        c->state = EF_CONTAINER_EXITED;
        c->wait_status = status;
        ef_container_check_oom(f, c);
        if (cb)
            cb(f, c, user);
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
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        ef_error e;
        if (ef_validate_container_id(de->d_name, &e) < 0) {
            ef_warn("leaving unknown entry %s/%s alone", f->cfg.containers_dir, de->d_name);
            continue;
        }
        if (ef_cgroup_remove_stale(f->cgroups, de->d_name, &e) < 0) {
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
