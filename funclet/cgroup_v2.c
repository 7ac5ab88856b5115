/* The cgroup v2 backend: one directory per container in the unified hierarchy, driven by plain
 * writes of its interface files (Documentation/admin-guide/cgroup-v2.rst):
 *
 *   memory.max       hard limit in bytes, "max" for none; above it the OOM killer runs
 *   memory.swap.max  "0": no swap on top of memory.max (absent without swap accounting)
 *   pids.max         most tasks
 *   cpu.max          "QUOTA PERIOD" in microseconds, "max PERIOD" for no quota
 *   cpu.weight       1-10000, default 100: the share of CPU time under contention
 *   cgroup.procs     writing a pid moves that process (all its threads) in
 *   cgroup.freeze    "1" freezes every process below, "0" thaws; cgroup.events shows "frozen 1"
 *   cgroup.kill      "1" SIGKILLs every process below (Linux 5.14)
 *   memory.events    "oom_kill N" counts the processes the OOM killer took
 *
 * Controllers are only available in a cgroup when its parent lists them in
 * cgroup.subtree_control, and the kernel refuses to enable them in a non-root cgroup that holds
 * processes itself ("no internal processes"), hence the leaf funclet moves itself into. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "funclet/cgroup_backend.h"
#include "funclet/cgroup_parse.h"

/* The leaf below funclet's own cgroup that its processes move into when that cgroup must
 * delegate controllers. */
#define SELF_LEAF "funclet"

struct v2_manager {
    struct ef_cgroup_manager base;
    struct ef_cgroup_fs fs;
    char *own_dir;    /* funclet's own cgroup on the host */
    char *parent_dir; /* <own>/<parent> */
    bool has_cpu;
};

struct v2_cgroup {
    struct ef_cgroup base;
    char *dir;
    bool exists;
};

static const struct ef_cgroup_ops v2_ops;

static int sys_mkdir(const char *path, void *user)
{
    (void)user;
    return mkdir(path, 0755) < 0 ? -errno : 0;
}

static int sys_rmdir(const char *path, void *user)
{
    (void)user;
    return rmdir(path) < 0 ? -errno : 0;
}

/* One write(2) of the whole value: cgroupfs acts on each write separately. */
static int sys_write(const char *path, const char *data, void *user)
{
    (void)user;
    cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = strlen(data);
    ssize_t n;
    do {
        n = write(fd, data, len);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    return (size_t)n == len ? 0 : -EIO;
}

static int write_file(struct v2_manager *m, const char *dir, const char *name, const char *value,
                      ef_error *err)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return ef_error_set(err, -ENAMETOOLONG, "cgroup path %s/%s is too long", dir, name);
    int r = m->fs.write(path, value, m->fs.user);
    if (r < 0)
        return ef_error_set_errno(err, r, "cannot write '%s' to %s", value, path);
    return 0;
}

static bool has_file(const char *dir, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

/* Makes `controllers` (a "+memory +pids" list) available to the children of `dir`, unless
 * cgroup.subtree_control already lists every one. */
static int enable_controllers(struct v2_manager *m, const char *dir, const char *controllers,
                              ef_error *err)
{
    char cur[512];
    int r = ef_cgroup_read(dir, "cgroup.subtree_control", cur, sizeof(cur));
    if (r < 0)
        return ef_error_set_errno(err, r, "cannot read %s/cgroup.subtree_control", dir);
    bool all = true;
    char want[128];
    snprintf(want, sizeof(want), "%s", controllers);
    for (char *save = NULL, *tok = strtok_r(want, " ", &save); tok;
         tok = strtok_r(NULL, " ", &save))
        all = all && ef_cgroup_list_has(cur, tok + 1);
    if (all)
        return 0;
    return write_file(m, dir, "cgroup.subtree_control", controllers, err);
}

/* Moves every process of funclet's own cgroup into its leaf, so that the cgroup may delegate
 * controllers. */
static int move_into_leaf(struct v2_manager *m, ef_error *err)
{
    cleanup_free char *leaf = ef_path_join(m->own_dir, SELF_LEAF);
    if (!leaf)
        return ef_error_set(err, -ENOMEM, "out of memory");
    int r = m->fs.mkdir(leaf, m->fs.user);
    if (r < 0 && r != -EEXIST)
        return ef_error_set_errno(err, r, "cannot create cgroup %s", leaf);
    char procs[8192];
    r = ef_cgroup_read(m->own_dir, "cgroup.procs", procs, sizeof(procs));
    if (r < 0)
        return ef_error_set_errno(err, r, "cannot read %s/cgroup.procs", m->own_dir);
    for (char *save = NULL, *tok = strtok_r(procs, "\n", &save); tok;
         tok = strtok_r(NULL, "\n", &save)) {
        /* A process that ended meanwhile is no obstacle. */
        ef_error e;
        r = write_file(m, leaf, "cgroup.procs", tok, &e);
        if (r < 0 && r != -ESRCH)
            return ef_error_set(err, r, "%s", e.msg);
    }
    return 0;
}

static void v2_close(struct ef_cgroup_manager *base)
{
    struct v2_manager *m = (struct v2_manager *)base;
    /* Only an empty parent goes: another funclet on the host may share it. */
    if (m->parent_dir)
        m->fs.rmdir(m->parent_dir, m->fs.user);
    free(m->own_dir);
    free(m->parent_dir);
    free(m);
}

static int v2_setup(struct v2_manager *m, const char *root, const char *self_text,
                    const char *parent, ef_error *err)
{
    cleanup_free char *own = NULL;
    int r = ef_proc_cgroup_path(self_text, NULL, &own, err);
    if (r < 0)
        return r;
    m->own_dir = strcmp(own, "/") == 0 ? strdup(root) : ef_path_join(root, own + 1);
    m->parent_dir = m->own_dir ? ef_path_join(m->own_dir, parent) : NULL;
    if (!m->parent_dir)
        return ef_error_set(err, -ENOMEM, "out of memory");

    char avail[512];
    r = ef_cgroup_read(m->own_dir, "cgroup.controllers", avail, sizeof(avail));
    if (r < 0)
        return ef_error_set_errno(err, r,
                                  "cannot read %s/cgroup.controllers (is funclet's own "
                                  "cgroup delegated to it?)",
                                  m->own_dir);
    static const char *const required[] = {"memory", "pids"};
    for (size_t i = 0; i < EF_ARRAY_SIZE(required); i++) {
        if (!ef_cgroup_list_has(avail, required[i]))
            return ef_error_set(err, -ENOTSUP,
                                "the cgroup v2 '%s' controller is not available in %s (it lists "
                                "'%.100s'): enable it in the parent's cgroup.subtree_control",
                                required[i], m->own_dir, avail);
    }
    m->has_cpu = ef_cgroup_list_has(avail, "cpu");
    const char *ctls = m->has_cpu ? "+memory +pids +cpu" : "+memory +pids";

    ef_error e;
    r = enable_controllers(m, m->own_dir, ctls, &e);
    if (r == -EBUSY) {
        r = move_into_leaf(m, err);
        if (r < 0)
            return r;
        r = enable_controllers(m, m->own_dir, ctls, &e);
    }
    if (r < 0)
        return ef_error_set(err, r, "%s", e.msg);
    r = m->fs.mkdir(m->parent_dir, m->fs.user);
    if (r < 0 && r != -EEXIST)
        return ef_error_set_errno(err, r, "cannot create cgroup %s", m->parent_dir);
    return enable_controllers(m, m->parent_dir, ctls, err);
}

int ef_cgroup_v2_open(const char *root, const char *self_cgroup, const char *parent,
                      const struct ef_cgroup_fs *fs, struct ef_cgroup_manager **ret, ef_error *err)
{
    cleanup_free char *self_text = NULL;
    if (!self_cgroup) {
        int r = ef_read_file("/proc/self/cgroup", 65536, &self_text, NULL, err);
        if (r < 0)
            return r;
        self_cgroup = self_text;
    }
    struct v2_manager *m = calloc(1, sizeof(*m));
    if (!m)
        return ef_error_set(err, -ENOMEM, "out of memory");
    m->base.ops = &v2_ops;
    m->fs = fs ? *fs
               : (struct ef_cgroup_fs){.mkdir = sys_mkdir, .rmdir = sys_rmdir, .write = sys_write};
    int r = v2_setup(m, root, self_cgroup, parent, err);
    if (r < 0) {
        v2_close(&m->base);
        return r;
    }
    *ret = &m->base;
    return 0;
}

static void v2_free(struct ef_cgroup *base)
{
    struct v2_cgroup *c = (struct v2_cgroup *)base;
    free(c->dir);
    free(c);
}

static int v2_new(struct v2_manager *m, const char *id, struct v2_cgroup **ret, ef_error *err)
{
    struct v2_cgroup *c = calloc(1, sizeof(*c));
    if (!c || !(c->dir = ef_path_join(m->parent_dir, id))) {
        free(c);
        return ef_error_set(err, -ENOMEM, "out of memory");
    }
    c->base.m = &m->base;
    *ret = c;
    return 0;
}

static int v2_set_limits(struct ef_cgroup *base, const struct ef_cgroup_limits *l, ef_error *err)
{
    struct v2_cgroup *c = (struct v2_cgroup *)base;
    struct v2_manager *m = (struct v2_manager *)base->m;
    char v[64];
    ef_cgroup_format_max(l->memory_bytes, v, sizeof(v));
    int r = write_file(m, c->dir, "memory.max", v, err);
    if (r < 0)
        return r;
    /* Without swap accounting the file does not exist and there is no swap to forbid. */
    if (has_file(c->dir, "memory.swap.max") &&
        (r = write_file(m, c->dir, "memory.swap.max", "0", err)) < 0)
        return r;
    ef_cgroup_format_max(l->pids_max, v, sizeof(v));
    if ((r = write_file(m, c->dir, "pids.max", v, err)) < 0)
        return r;
    if (m->has_cpu) {
        ef_cgroup_format_cpu_max(l->cpu_millicores, v, sizeof(v));
        if ((r = write_file(m, c->dir, "cpu.max", v, err)) < 0)
            return r;
        snprintf(v, sizeof(v), "%u", l->cpu_weight ? l->cpu_weight : 100);
        if ((r = write_file(m, c->dir, "cpu.weight", v, err)) < 0)
            return r;
    }
    return 0;
}

/* Removes the directory, retried briefly because the kernel may still count a process that has
 * been killed but not yet released. */
static int v2_destroy(struct ef_cgroup *base, ef_error *err)
{
    struct v2_cgroup *c = (struct v2_cgroup *)base;
    struct v2_manager *m = (struct v2_manager *)base->m;
    if (!c->exists)
        return 0;
    for (int attempt = 0;; attempt++) {
        int r = m->fs.rmdir(c->dir, m->fs.user);
        if (r == 0 || r == -ENOENT)
            break;
        if (r != -EBUSY || attempt == EF_CGROUP_WAIT_ATTEMPTS)
            return ef_error_set_errno(err, r, "cannot remove cgroup %s", c->dir);
        ef_cgroup_pause_n(attempt);
    }
    c->exists = false;
    return 0;
}

static int v2_create(struct ef_cgroup_manager *base, const char *id,
                     const struct ef_cgroup_limits *l, struct ef_cgroup **ret, ef_error *err)
{
    struct v2_manager *m = (struct v2_manager *)base;
    struct v2_cgroup *c = NULL;
    int r = v2_new(m, id, &c, err);
    if (r < 0)
        return r;
    r = m->fs.mkdir(c->dir, m->fs.user);
    if (r < 0) {
        ef_error_set_errno(err, r, "cannot create cgroup %s", c->dir);
        v2_free(&c->base);
        return r;
    }
    c->exists = true;
    r = v2_set_limits(&c->base, l, err);
    if (r < 0) {
        ef_error tmp;
        v2_destroy(&c->base, &tmp);
        v2_free(&c->base);
        return r;
    }
    *ret = &c->base;
    return 0;
}

static int v2_open_existing(struct ef_cgroup_manager *base, const char *id, struct ef_cgroup **ret,
                            ef_error *err)
{
    struct v2_manager *m = (struct v2_manager *)base;
    struct v2_cgroup *c = NULL;
    int r = v2_new(m, id, &c, err);
    if (r < 0)
        return r;
    c->exists = access(c->dir, F_OK) == 0;
    if (!c->exists) {
        v2_free(&c->base);
        *ret = NULL;
        return 0;
    }
    *ret = &c->base;
    return 0;
}

static int v2_attach(struct ef_cgroup *base, pid_t pid, ef_error *err)
{
    struct v2_cgroup *c = (struct v2_cgroup *)base;
    char v[32];
    snprintf(v, sizeof(v), "%d", (int)pid);
    return write_file((struct v2_manager *)base->m, c->dir, "cgroup.procs", v, err);
}

static int v2_freeze(struct ef_cgroup *base, bool frozen, ef_error *err)
{
    struct v2_cgroup *c = (struct v2_cgroup *)base;
    if (!has_file(c->dir, "cgroup.freeze"))
        return ef_error_set(err, -ENOTSUP, "%s has no cgroup.freeze (Linux 5.2 or later)", c->dir);
    int r =
        write_file((struct v2_manager *)base->m, c->dir, "cgroup.freeze", frozen ? "1" : "0", err);
    if (r < 0)
        return r;
    /* Freezing completes asynchronously; cgroup.events says when. */
    for (int attempt = 0; attempt <= EF_CGROUP_WAIT_ATTEMPTS; attempt++) {
        char events[256];
        uint64_t v;
        if (ef_cgroup_read(c->dir, "cgroup.events", events, sizeof(events)) >= 0 &&
            ef_cgroup_keyed_value(events, "frozen", &v) == 0 && v == (frozen ? 1 : 0))
            return 0;
        ef_cgroup_pause_n(attempt);
    }
    return ef_error_set(err, -EBUSY, "cgroup %s did not become %s", c->dir,
                        frozen ? "frozen" : "thawed");
}

static int v2_kill_all(struct ef_cgroup *base, ef_error *err)
{
    struct v2_cgroup *c = (struct v2_cgroup *)base;
    struct v2_manager *m = (struct v2_manager *)base->m;
    if (!c->exists)
        return 0;
    bool has_kill = has_file(c->dir, "cgroup.kill");
    if (has_kill) {
        int r = write_file(m, c->dir, "cgroup.kill", "1", err);
        if (r < 0 && r != -ENOENT)
            return r;
    } else {
        /* Frozen processes cannot fork while they are being killed one by one. */
        ef_error ignored;
        bool frozen = v2_freeze(base, true, &ignored) == 0;
        ef_cgroup_kill_listed(c->dir);
        if (frozen)
            v2_freeze(base, false, &ignored);
    }
    for (int attempt = 0; attempt <= EF_CGROUP_WAIT_ATTEMPTS; attempt++) {
        int n = has_kill ? ef_cgroup_count_procs(c->dir) : ef_cgroup_kill_listed(c->dir);
        if (n < 0)
            return ef_error_set_errno(err, n, "cannot read %s/cgroup.procs", c->dir);
        if (n == 0)
            return 0;
        ef_cgroup_pause_n(attempt);
    }
    return ef_error_set(err, -EBUSY, "processes remain in cgroup %s after SIGKILL", c->dir);
}

static int v2_oom_watch(struct ef_cgroup *base, int *ret_fd, ef_error *err)
{
    struct v2_cgroup *c = (struct v2_cgroup *)base;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/memory.events", c->dir);
    /* The kernel notifies a modification of memory.events whenever a counter changes. */
    cleanup_close int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (fd < 0)
        return ef_error_set_errno(err, -errno, "inotify_init1");
    if (inotify_add_watch(fd, path, IN_MODIFY) < 0)
        return ef_error_set_errno(err, -errno, "cannot watch %s", path);
    *ret_fd = steal_fd(&fd);
    return 0;
}

static int v2_oom_kills(struct ef_cgroup *base, uint64_t *ret)
{
    struct v2_cgroup *c = (struct v2_cgroup *)base;
    char events[512];
    int r = ef_cgroup_read(c->dir, "memory.events", events, sizeof(events));
    if (r < 0)
        return r;
    return ef_cgroup_keyed_value(events, "oom_kill", ret);
}

static const char *v2_path(const struct ef_cgroup *base, const char *controller)
{
    (void)controller;
    return ((const struct v2_cgroup *)base)->dir;
}

static int v2_memory_limit(struct ef_cgroup_manager *base, uint64_t *ret_bytes)
{
    struct v2_manager *m = (struct v2_manager *)base;
    char v[64];
    int r = ef_cgroup_read(m->own_dir, "memory.max", v, sizeof(v));
    if (r == -ENOENT) {
        /* The root cgroup has no limit file. */
        *ret_bytes = UINT64_MAX;
        return 0;
    }
    if (r < 0)
        return r;
    if (strncmp(v, "max", 3) == 0) {
        *ret_bytes = UINT64_MAX;
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || end == v)
        return -EIO;
    *ret_bytes = n;
    return 0;
}

static const struct ef_cgroup_ops v2_ops = {
    .name = "cgroup v2",
    .version = 2,
    .create = v2_create,
    .open = v2_open_existing,
    .set_limits = v2_set_limits,
    .attach = v2_attach,
    .freeze = v2_freeze,
    .kill_all = v2_kill_all,
    .destroy = v2_destroy,
    .oom_watch = v2_oom_watch,
    .oom_kills = v2_oom_kills,
    .path = v2_path,
    .free = v2_free,
    .memory_limit = v2_memory_limit,
    .close = v2_close,
};
