/* The cgroup v1 backend. Each controller is its own hierarchy, so a container has one cgroup per
 * controller, each below funclet's own cgroup in that hierarchy. memory and pids are required;
 * cpu (weight and quota) and freezer (a race-free kill) are used when the host mounts them.
 *
 * libcgroup finds the hierarchies and funclet's place in them at start. The per-container
 * operations (mkdir, interface-file writes, attach, rmdir) are plain file-system calls: through
 * libcgroup each of them re-read /proc/mounts and a create chowned every interface file, which
 * measured 26 reads of /proc/mounts and 72 chowns per container and dominated creation time. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libcgroup.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "funclet/cgroup_backend.h"
#include "funclet/cgroup_parse.h"

enum { CTL_MEMORY, CTL_PIDS, CTL_CPU, CTL_FREEZER, CTL_COUNT };
static const char *const ctl_names[CTL_COUNT] = {"memory", "pids", "cpu", "freezer"};
static const bool ctl_required[CTL_COUNT] = {true, true, false, false};

struct v1_manager {
    struct ef_cgroup_manager base;
    bool present[CTL_COUNT];
    char *mount[CTL_COUNT]; /* "/sys/fs/cgroup/memory" */
    char *own[CTL_COUNT];   /* funclet's own cgroup, without leading '/': "process_api/…", "" */
    char *base_name[CTL_COUNT];   /* "<own>/<parent>" */
    char *parent_path[CTL_COUNT]; /* "<mount>/<own>/<parent>" */
    char *anchor;                 /* the empty frozen cgroup, see freeze_anchor() */
    bool has_memsw;               /* swap accounting: memory.memsw.limit_in_bytes exists */
};

struct v1_cgroup {
    struct ef_cgroup base;
    char *name[CTL_COUNT]; /* libcgroup name: "<own>/<parent>/<id>" */
    char *path[CTL_COUNT]; /* host directory */
    bool exists[CTL_COUNT];
};

static const struct ef_cgroup_ops v1_ops;

/* libcgroup logs by itself; route it into funclet's log. Its warnings are mostly noise from
 * directory walks ("fts_read failed"), so only its errors are shown by default. */
static void libcgroup_log(void *userdata, int level, const char *fmt, va_list ap)
{
    (void)userdata;
    char buf[512];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    size_t len = strlen(buf);
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
        buf[--len] = '\0';
    ef_log(level == CGROUP_LOG_ERROR ? EF_LOG_WARN : EF_LOG_DEBUG, "libcgroup: %s", buf);
}

/* Turns a libcgroup error into a negative errno. */
static int cg_errno(int ret)
{
    if (ret == ECGOTHER) {
        int e = cgroup_get_last_errno();
        return e > 0 ? -e : -EIO;
    }
    if (ret == ECGROUPNOTEXIST)
        return -ENOENT;
    if (ret == ECGROUPNOTALLOWED || ret == ECGROUPNOTOWNER)
        return -EPERM;
    return -EIO;
}

static const char *cg_strerror(int ret)
{
    if (ret == ECGOTHER)
        return strerror(cgroup_get_last_errno());
    return cgroup_strerror(ret);
}

static void v1_close(struct ef_cgroup_manager *base)
{
    struct v1_manager *m = (struct v1_manager *)base;
    if (m->anchor) {
        /* An empty cgroup goes whether frozen or not. */
        rmdir(m->anchor);
        free(m->anchor);
    }
    for (int i = 0; i < CTL_COUNT; i++) {
        /* Only an empty parent goes (rmdir refuses others): another funclet on the host may
         * share it. */
        if (m->present[i] && m->parent_path[i])
            rmdir(m->parent_path[i]);
        free(m->mount[i]);
        free(m->own[i]);
        free(m->base_name[i]);
        free(m->parent_path[i]);
    }
    free(m);
}

static int open_controller(struct v1_manager *m, int i, const char *parent, ef_error *err)
{
    int r = cgroup_get_subsys_mount_point(ctl_names[i], &m->mount[i]);
    if (r != 0) {
        m->mount[i] = NULL;
        if (!ctl_required[i])
            return 0;
        return ef_error_set(err, -ENOTSUP, "the cgroup v1 '%s' controller is not mounted: %s",
                            ctl_names[i], cg_strerror(r));
    }
    char *own = NULL;
    r = cgroup_get_current_controller_path(getpid(), ctl_names[i], &own);
    if (r != 0 || !own)
        return ef_error_set(err, cg_errno(r),
                            "cannot read funclet's own '%s' cgroup from /proc/self/cgroup: %s",
                            ctl_names[i], cg_strerror(r));
    const char *rel = own;
    while (*rel == '/')
        rel++;
    m->own[i] = strdup(rel);
    free(own);
    if (!m->own[i] ||
        asprintf(&m->base_name[i], "%s%s%s", m->own[i], m->own[i][0] ? "/" : "", parent) < 0) {
        m->base_name[i] = NULL;
        return ef_error_set(err, -ENOMEM, "out of memory");
    }
    if (asprintf(&m->parent_path[i], "%s/%s", m->mount[i], m->base_name[i]) < 0) {
        m->parent_path[i] = NULL;
        return ef_error_set(err, -ENOMEM, "out of memory");
    }
    m->present[i] = true;
    if (mkdir(m->parent_path[i], 0755) < 0 && errno != EEXIST)
        return ef_error_set_errno(err, -errno, "cannot create cgroup %s", m->parent_path[i]);
    return 0;
}

/* The v1 freezer switches a kernel-wide static key on when the first cgroup freezes and off
 * when the last one thaws, and each switch patches kernel text on every CPU (milliseconds on a
 * virtual machine: measured as most of a container reset). An empty cgroup that stays frozen
 * keeps the key on for funclet's lifetime, so freezing a container for a reset or a destroy
 * costs microseconds. Best effort: without it everything works, only slower. */
static void freeze_anchor(struct v1_manager *m)
{
    if (!m->present[CTL_FREEZER] ||
        asprintf(&m->anchor, "%s/%s", m->parent_path[CTL_FREEZER], EF_CGROUP_ANCHOR) < 0) {
        m->anchor = NULL;
        return;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/freezer.state", m->anchor);
    int fd = -1;
    if ((mkdir(m->anchor, 0755) == 0 || errno == EEXIST) &&
        (fd = open(path, O_WRONLY | O_CLOEXEC)) >= 0 && write(fd, "FROZEN", 6) == 6) {
        close(fd);
        return;
    }
    ef_debug("cannot keep %s frozen: %s", m->anchor, strerror(errno));
    if (fd >= 0)
        close(fd);
    rmdir(m->anchor);
    free(m->anchor);
    m->anchor = NULL;
}

int ef_cgroup_v1_open(const char *parent, struct ef_cgroup_manager **ret, ef_error *err)
{
    cgroup_set_logger(libcgroup_log, CGROUP_LOG_ERROR, NULL);
    int r = cgroup_init();
    if (r != 0)
        return ef_error_set(err, cg_errno(r), "cannot initialise libcgroup: %s", cg_strerror(r));

    struct v1_manager *m = calloc(1, sizeof(*m));
    if (!m)
        return ef_error_set(err, -ENOMEM, "out of memory");
    m->base.ops = &v1_ops;
    for (int i = 0; i < CTL_COUNT; i++) {
        r = open_controller(m, i, parent, err);
        if (r < 0) {
            v1_close(&m->base);
            return r;
        }
    }
    char probe[PATH_MAX];
    snprintf(probe, sizeof(probe), "%s/memory.memsw.limit_in_bytes", m->mount[CTL_MEMORY]);
    m->has_memsw = access(probe, F_OK) == 0;
    freeze_anchor(m);
    *ret = &m->base;
    return 0;
}

static void v1_free(struct ef_cgroup *base)
{
    struct v1_cgroup *c = (struct v1_cgroup *)base;
    for (int i = 0; i < CTL_COUNT; i++) {
        free(c->name[i]);
        free(c->path[i]);
    }
    free(c);
}

/* The handle for container `id`, with nothing created yet. */
static int v1_new(struct v1_manager *m, const char *id, struct v1_cgroup **ret, ef_error *err)
{
    struct v1_cgroup *c = calloc(1, sizeof(*c));
    if (!c)
        return ef_error_set(err, -ENOMEM, "out of memory");
    c->base.m = &m->base;
    for (int i = 0; i < CTL_COUNT; i++) {
        if (!m->present[i])
            continue;
        if (asprintf(&c->name[i], "%s/%s", m->base_name[i], id) < 0 ||
            asprintf(&c->path[i], "%s/%s", m->mount[i], c->name[i]) < 0) {
            c->path[i] = NULL;
            v1_free(&c->base);
            return ef_error_set(err, -ENOMEM, "out of memory");
        }
    }
    *ret = c;
    return 0;
}

/* Writes one interface file with a single write(2): cgroupfs acts on each write. One value per
 * call, because the order of some writes matters (memory.memsw.limit_in_bytes may never be
 * below memory.limit_in_bytes). */
static int set_value(struct v1_cgroup *c, int i, const char *file, const char *value, ef_error *err)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", c->path[i], file) >= (int)sizeof(path))
        return ef_error_set(err, -ENAMETOOLONG, "cgroup path %s/%s is too long", c->path[i], file);
    cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return ef_error_set_errno(err, -errno, "cannot open %s", path);
    size_t len = strlen(value);
    ssize_t n;
    do {
        n = write(fd, value, len);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return ef_error_set_errno(err, -errno, "cannot write '%s' to %s", value, path);
    if ((size_t)n != len)
        return ef_error_set(err, -EIO, "short write of '%s' to %s", value, path);
    return 0;
}

static int set_u64(struct v1_cgroup *c, int i, const char *file, uint64_t v, ef_error *err)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%" PRIu64, v);
    return set_value(c, i, file, buf, err);
}

static int v1_set_limits(struct ef_cgroup *base, const struct ef_cgroup_limits *l, ef_error *err)
{
    struct v1_cgroup *c = (struct v1_cgroup *)base;
    struct v1_manager *m = (struct v1_manager *)base->m;
    /* v1 has no "max"; the largest page-aligned value means unlimited. */
    uint64_t mem = l->memory_bytes == UINT64_MAX ? (uint64_t)INT64_MAX & ~4095ull : l->memory_bytes;
    int r;
    if (m->has_memsw) {
        /* memsw (memory + swap) equal to the memory limit means no swap. It must never be below
         * the memory limit, so the order depends on whether the limit grows. */
        char cur[32];
        uint64_t old = 0;
        if (ef_cgroup_read(c->path[CTL_MEMORY], "memory.limit_in_bytes", cur, sizeof(cur)) > 0)
            old = strtoull(cur, NULL, 10);
        bool grow = mem > old;
        r = set_u64(c, CTL_MEMORY, grow ? "memory.memsw.limit_in_bytes" : "memory.limit_in_bytes",
                    mem, err);
        if (r == 0)
            r = set_u64(c, CTL_MEMORY,
                        grow ? "memory.limit_in_bytes" : "memory.memsw.limit_in_bytes", mem, err);
    } else {
        /* Without swap accounting the limit covers memory only: the container's pages must not
         * spill into swap beyond it. */
        r = set_u64(c, CTL_MEMORY, "memory.limit_in_bytes", mem, err);
        if (r == 0) {
            ef_error ignored;
            set_value(c, CTL_MEMORY, "memory.swappiness", "0", &ignored);
        }
    }
    if (r < 0)
        return r;
    char v[32];
    ef_cgroup_format_max(l->pids_max, v, sizeof(v));
    if ((r = set_value(c, CTL_PIDS, "pids.max", v, err)) < 0)
        return r;
    if (m->present[CTL_CPU]) {
        uint32_t weight = l->cpu_weight ? l->cpu_weight : 100;
        snprintf(v, sizeof(v), "%" PRId64, ef_cgroup_cpu_quota_us(l->cpu_millicores));
        if ((r = set_u64(c, CTL_CPU, "cpu.shares", ef_cgroup_weight_to_shares(weight), err)) < 0 ||
            (r = set_u64(c, CTL_CPU, "cpu.cfs_period_us", EF_CGROUP_CPU_PERIOD_US, err)) < 0 ||
            (r = set_value(c, CTL_CPU, "cpu.cfs_quota_us", v, err)) < 0)
            return r;
    }
    return 0;
}

/* Removes the directories that exist; retried briefly because the kernel may still hold a
 * cgroup for a moment after its last task has gone. rmdir(2) never moves leftover tasks
 * anywhere: a cgroup with tasks stays (EBUSY). */
static int v1_destroy(struct ef_cgroup *base, ef_error *err)
{
    struct v1_cgroup *c = (struct v1_cgroup *)base;
    for (int i = 0; i < CTL_COUNT; i++) {
        if (!c->exists[i])
            continue;
        for (int attempt = 0;; attempt++) {
            if (rmdir(c->path[i]) == 0 || errno == ENOENT)
                break;
            if (errno != EBUSY || attempt == EF_CGROUP_WAIT_ATTEMPTS)
                return ef_error_set_errno(err, -errno, "cannot remove cgroup %s", c->path[i]);
            ef_cgroup_pause_n(attempt);
        }
        c->exists[i] = false;
    }
    return 0;
}

static int v1_create(struct ef_cgroup_manager *base, const char *id,
                     const struct ef_cgroup_limits *l, struct ef_cgroup **ret, ef_error *err)
{
    struct v1_manager *m = (struct v1_manager *)base;
    struct v1_cgroup *c = NULL;
    int r = v1_new(m, id, &c, err);
    if (r < 0)
        return r;
    for (int i = 0; i < CTL_COUNT && r == 0; i++) {
        if (!m->present[i])
            continue;
        int e = mkdir(c->path[i], 0755) == 0 ? 0 : -errno;
        if (e == -ENOENT) {
            /* The --cgroup-parent cgroup is made at start; someone removed it meanwhile. */
            if (mkdir(m->parent_path[i], 0755) == 0 || errno == EEXIST)
                e = mkdir(c->path[i], 0755) == 0 ? 0 : -errno;
        }
        c->exists[i] = e == 0;
        if (e < 0)
            r = ef_error_set_errno(err, e, "cannot create cgroup %s", c->path[i]);
    }
    if (r == 0)
        r = v1_set_limits(&c->base, l, err);
    if (r < 0) {
        ef_error tmp;
        v1_destroy(&c->base, &tmp);
        v1_free(&c->base);
        return r;
    }
    *ret = &c->base;
    return 0;
}

static int v1_open_existing(struct ef_cgroup_manager *base, const char *id, struct ef_cgroup **ret,
                            ef_error *err)
{
    struct v1_manager *m = (struct v1_manager *)base;
    struct v1_cgroup *c = NULL;
    int r = v1_new(m, id, &c, err);
    if (r < 0)
        return r;
    bool any = false;
    for (int i = 0; i < CTL_COUNT; i++) {
        c->exists[i] = m->present[i] && access(c->path[i], F_OK) == 0;
        any = any || c->exists[i];
    }
    if (!any) {
        v1_free(&c->base);
        c = NULL;
    }
    *ret = c ? &c->base : NULL;
    return 0;
}

static int v1_attach(struct ef_cgroup *base, pid_t pid, ef_error *err)
{
    struct v1_cgroup *c = (struct v1_cgroup *)base;
    for (int i = 0; i < CTL_COUNT; i++) {
        if (!c->exists[i])
            continue;
        char v[32];
        snprintf(v, sizeof(v), "%d", (int)pid);
        int r = set_value(c, i, "cgroup.procs", v, err);
        if (r < 0)
            return r;
    }
    return 0;
}

static int v1_freeze(struct ef_cgroup *base, bool frozen, ef_error *err)
{
    struct v1_cgroup *c = (struct v1_cgroup *)base;
    if (!c->exists[CTL_FREEZER])
        return ef_error_set(err, -ENOTSUP, "the cgroup v1 freezer controller is not mounted");
    const char *want = frozen ? "FROZEN" : "THAWED";
    int r = set_value(c, CTL_FREEZER, "freezer.state", want, err);
    if (r < 0)
        return r;
    /* The state reads FREEZING until every task has stopped. */
    for (int attempt = 0; attempt <= EF_CGROUP_WAIT_ATTEMPTS; attempt++) {
        char state[32];
        if (ef_cgroup_read(c->path[CTL_FREEZER], "freezer.state", state, sizeof(state)) > 0 &&
            strncmp(state, want, strlen(want)) == 0)
            return 0;
        ef_cgroup_pause_n(attempt);
    }
    /* A freeze that did not complete is undone: a group left FREEZING keeps the tasks it did
     * stop stopped, and a task frozen by the v1 freezer cannot die, not even of SIGKILL. */
    if (frozen) {
        ef_error ignored;
        set_value(c, CTL_FREEZER, "freezer.state", "THAWED", &ignored);
    }
    return ef_error_set(err, -EBUSY, "cgroup %s did not become %s", c->path[CTL_FREEZER], want);
}

static int v1_kill_all(struct ef_cgroup *base, ef_error *err)
{
    struct v1_cgroup *c = (struct v1_cgroup *)base;
    /* Usually the container's PID 1 is gone and the kernel has ended the rest of its pid
     * namespace: nothing to freeze. */
    int listed = 0;
    for (int i = 0; i < CTL_COUNT; i++) {
        if (c->exists[i])
            listed += ef_cgroup_count_procs(c->path[i]);
    }
    if (listed == 0)
        return 0;
    /* Frozen, the processes cannot fork while they are killed one by one; a task frozen by
     * the v1 freezer only dies once thawed. */
    ef_error ignored;
    bool frozen = c->exists[CTL_FREEZER] && v1_freeze(base, true, &ignored) == 0;
    for (int i = 0; i < CTL_COUNT; i++) {
        if (c->exists[i])
            ef_cgroup_kill_listed(c->path[i]);
    }
    if (frozen)
        v1_freeze(base, false, &ignored);
    for (int attempt = 0; attempt <= EF_CGROUP_WAIT_ATTEMPTS; attempt++) {
        listed = 0;
        for (int i = 0; i < CTL_COUNT; i++) {
            if (!c->exists[i])
                continue;
            int n = ef_cgroup_kill_listed(c->path[i]);
            if (n < 0)
                return ef_error_set_errno(err, n, "cannot read %s/cgroup.procs", c->path[i]);
            listed += n;
        }
        if (listed == 0)
            return 0;
        ef_cgroup_pause_n(attempt);
    }
    return ef_error_set(err, -EBUSY, "processes remain in cgroup %s after SIGKILL",
                        c->path[CTL_PIDS]);
}

static int v1_oom_watch(struct ef_cgroup *base, int *ret_fd, ef_error *err)
{
    struct v1_cgroup *c = (struct v1_cgroup *)base;
    const char *dir = c->path[CTL_MEMORY];
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/memory.oom_control", dir);
    cleanup_close int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0)
        return ef_error_set_errno(err, -errno, "eventfd");
    cleanup_close int cfd = open(path, O_RDONLY | O_CLOEXEC);
    if (cfd < 0)
        return ef_error_set_errno(err, -errno, "cannot open %s", path);
    /* "<eventfd> <fd of memory.oom_control>" registers for OOM notifications (cgroup-v1
     * memory.rst, "Memory thresholds"); the kernel keeps what it needs of the second fd. The
     * eventfd also fires when the cgroup is removed. */
    char reg[64];
    snprintf(reg, sizeof(reg), "%d %d", efd, cfd);
    snprintf(path, sizeof(path), "%s/cgroup.event_control", dir);
    cleanup_close int ctl = open(path, O_WRONLY | O_CLOEXEC);
    if (ctl < 0 || write(ctl, reg, strlen(reg)) < 0)
        return ef_error_set_errno(err, -errno, "cannot register for OOM events in %s", path);
    *ret_fd = steal_fd(&efd);
    return 0;
}

static int v1_oom_kills(struct ef_cgroup *base, uint64_t *ret)
{
    struct v1_cgroup *c = (struct v1_cgroup *)base;
    char buf[256];
    int r = ef_cgroup_read(c->path[CTL_MEMORY], "memory.oom_control", buf, sizeof(buf));
    if (r < 0)
        return r;
    return ef_cgroup_keyed_value(buf, "oom_kill", ret);
}

static const char *v1_path(const struct ef_cgroup *base, const char *controller)
{
    const struct v1_cgroup *c = (const struct v1_cgroup *)base;
    for (int i = 0; i < CTL_COUNT; i++) {
        if (strcmp(controller, ctl_names[i]) == 0)
            return c->path[i];
    }
    return NULL;
}

static int v1_memory_limit(struct ef_cgroup_manager *base, uint64_t *ret_bytes)
{
    struct v1_manager *m = (struct v1_manager *)base;
    char dir[PATH_MAX], buf[32];
    snprintf(dir, sizeof(dir), "%s/%s", m->mount[CTL_MEMORY], m->own[CTL_MEMORY]);
    int r = ef_cgroup_read(dir, "memory.limit_in_bytes", buf, sizeof(buf));
    if (r < 0)
        return r;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    if (errno || end == buf)
        return -EIO;
    /* An unlimited v1 cgroup reads as a huge page-aligned number. */
    *ret_bytes = v >= ((uint64_t)INT64_MAX & ~4095ull) ? UINT64_MAX : v;
    return 0;
}

static const struct ef_cgroup_ops v1_ops = {
    .name = "cgroup v1 (libcgroup)",
    .version = 1,
    .create = v1_create,
    .open = v1_open_existing,
    .set_limits = v1_set_limits,
    .attach = v1_attach,
    .freeze = v1_freeze,
    .kill_all = v1_kill_all,
    .destroy = v1_destroy,
    .oom_watch = v1_oom_watch,
    .oom_kills = v1_oom_kills,
    .path = v1_path,
    .free = v1_free,
    .memory_limit = v1_memory_limit,
    .close = v1_close,
};
