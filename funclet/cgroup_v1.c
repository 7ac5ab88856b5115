/* The cgroup v1 backend, through libcgroup. Each controller is its own hierarchy, so a
 * container's cgroups are one libcgroup `struct cgroup` per controller, each named below
 * funclet's own cgroup in that hierarchy. */
#include <errno.h>
#include <inttypes.h>
#include <libcgroup.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "funclet/cgroup_backend.h"

/* The controllers a container gets: the memory limit and the pids limit. */
enum { CTL_MEMORY, CTL_PIDS, CTL_COUNT };
static const char *const ctl_names[CTL_COUNT] = {"memory", "pids"};

/* How long to wait for a cgroup to empty after SIGKILL, and for the kernel to let it go. */
#define SWEEP_ATTEMPTS 500
#define SWEEP_DELAY_NS (10 * 1000 * 1000)

struct v1_manager {
    struct ef_cgroup_manager base;
    char *mount[CTL_COUNT]; /* "/sys/fs/cgroup/memory" */
    char *own[CTL_COUNT];   /* funclet's own cgroup, without leading '/': "process_api/…", "" */
    char *base_name[CTL_COUNT]; /* "<own>/<parent>" */
};

struct v1_cgroup {
    struct ef_cgroup base;
    struct cgroup *cg[CTL_COUNT];
    char *path[CTL_COUNT]; /* host directory */
    bool exists[CTL_COUNT];
};

static const struct ef_cgroup_ops v1_ops;

static void sleep_ns(long ns)
{
    struct timespec ts = {0, ns};
    nanosleep(&ts, NULL);
}

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
    for (int i = 0; i < CTL_COUNT; i++) {
        if (m->mount[i] && m->base_name[i]) {
            /* Only an empty parent goes: another funclet on the host may share it. */
            struct cgroup *cg = cgroup_new_cgroup(m->base_name[i]);
            if (cg && cgroup_add_controller(cg, ctl_names[i]))
                cgroup_delete_cgroup_ext(cg, CGFLAG_DELETE_EMPTY_ONLY);
            if (cg)
                cgroup_free(&cg);
        }
        free(m->mount[i]);
        free(m->own[i]);
        free(m->base_name[i]);
    }
    free(m);
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
        r = cgroup_get_subsys_mount_point(ctl_names[i], &m->mount[i]);
        if (r != 0) {
            v1_close(&m->base);
            return ef_error_set(err, -ENOTSUP, "the cgroup v1 '%s' controller is not mounted: %s",
                                ctl_names[i], cg_strerror(r));
        }
        char *own = NULL;
        r = cgroup_get_current_controller_path(getpid(), ctl_names[i], &own);
        if (r != 0 || !own) {
            v1_close(&m->base);
            return ef_error_set(err, cg_errno(r),
                                "cannot read funclet's own '%s' cgroup from /proc/self/cgroup: %s",
                                ctl_names[i], cg_strerror(r));
        }
        const char *rel = own;
        while (*rel == '/')
            rel++;
        m->own[i] = strdup(rel);
        free(own);
        if (!m->own[i] ||
            asprintf(&m->base_name[i], "%s%s%s", m->own[i], m->own[i][0] ? "/" : "", parent) < 0) {
            m->base_name[i] = NULL;
            v1_close(&m->base);
            return ef_error_set(err, -ENOMEM, "out of memory");
        }
    }
    *ret = &m->base;
    return 0;
}

static void v1_free(struct ef_cgroup *base)
{
    struct v1_cgroup *c = (struct v1_cgroup *)base;
    for (int i = 0; i < CTL_COUNT; i++) {
        if (c->cg[i])
            cgroup_free(&c->cg[i]);
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
        cleanup_free char *name = NULL;
        if (asprintf(&name, "%s/%s", m->base_name[i], id) < 0) {
            name = NULL;
            goto oom;
        }
        if (asprintf(&c->path[i], "%s/%s", m->mount[i], name) < 0) {
            c->path[i] = NULL;
            goto oom;
        }
        c->cg[i] = cgroup_new_cgroup(name);
        if (!c->cg[i] || !cgroup_add_controller(c->cg[i], ctl_names[i]))
            goto oom;
    }
    *ret = c;
    return 0;
oom:
    v1_free(&c->base);
    return ef_error_set(err, -ENOMEM, "out of memory");
}

/* Removes the directories that exist; retried briefly because the kernel may still hold a
 * cgroup for a moment after its last task has gone. */
static int v1_destroy(struct ef_cgroup *base, ef_error *err)
{
    struct v1_cgroup *c = (struct v1_cgroup *)base;
    for (int i = 0; i < CTL_COUNT; i++) {
        if (!c->exists[i])
            continue;
        for (int attempt = 0;; attempt++) {
            /* EMPTY_ONLY: never let libcgroup migrate leftover tasks to the parent. Its return
             * value does not say whether the directory went, so that is checked directly. */
            cgroup_delete_cgroup_ext(c->cg[i], CGFLAG_DELETE_EMPTY_ONLY);
            if (access(c->path[i], F_OK) < 0 && errno == ENOENT)
                break;
            if (attempt == SWEEP_ATTEMPTS) {
                int e = rmdir(c->path[i]) < 0 ? -errno : -EBUSY;
                if (e == -ENOENT)
                    break;
                return ef_error_set_errno(err, e, "cannot remove cgroup %s", c->path[i]);
            }
            sleep_ns(SWEEP_DELAY_NS);
        }
        c->exists[i] = false;
    }
    return 0;
}

static int set_values(struct v1_cgroup *c, uint64_t memory_bytes, uint64_t pids_max)
{
    struct cgroup_controller *mem = cgroup_get_controller(c->cg[CTL_MEMORY], "memory");
    struct cgroup_controller *pids = cgroup_get_controller(c->cg[CTL_PIDS], "pids");
    if (!mem || !pids)
        return ECGFAIL;
    int r = cgroup_add_value_uint64(mem, "memory.limit_in_bytes", memory_bytes);
    if (r == 0)
        r = cgroup_add_value_uint64(pids, "pids.max", pids_max);
    return r;
}

static int v1_create(struct ef_cgroup_manager *base, const char *id, uint64_t memory_bytes,
                     uint64_t pids_max, struct ef_cgroup **ret, ef_error *err)
{
    struct v1_manager *m = (struct v1_manager *)base;
    struct v1_cgroup *c = NULL;
    int r = v1_new(m, id, &c, err);
    if (r < 0)
        return r;
    r = set_values(c, memory_bytes, pids_max);
    if (r != 0) {
        v1_free(&c->base);
        return ef_error_set(err, cg_errno(r), "cannot set cgroup limits of %s: %s", id,
                            cg_strerror(r));
    }
    for (int i = 0; i < CTL_COUNT; i++) {
        /* libcgroup creates the missing parents (the --cgroup-parent cgroup) and writes the
         * values added above. */
        r = cgroup_create_cgroup(c->cg[i], 0);
        c->exists[i] = access(c->path[i], F_OK) == 0;
        if (r != 0) {
            int e = cg_errno(r);
            ef_error_set(err, e, "cannot create cgroup %s: %s", c->path[i], cg_strerror(r));
            ef_error tmp;
            v1_destroy(&c->base, &tmp);
            v1_free(&c->base);
            return e;
        }
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
        c->exists[i] = access(c->path[i], F_OK) == 0;
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
        int r = cgroup_attach_task_pid(c->cg[i], pid);
        if (r != 0)
            return ef_error_set(err, cg_errno(r), "cannot move process %d into cgroup %s: %s",
                                (int)pid, c->path[i], cg_strerror(r));
    }
    return 0;
}

/* Sends SIGKILL to every process listed in `path`/cgroup.procs; returns how many were listed,
 * or a negative errno. A missing cgroup counts as empty. */
static int kill_listed(const char *path)
{
    char file[4096];
    snprintf(file, sizeof(file), "%s/cgroup.procs", path);
    cleanup_fclose FILE *f = fopen(file, "re");
    if (!f)
        return errno == ENOENT ? 0 : -errno;
    int n = 0;
    long pid;
    while (fscanf(f, "%ld", &pid) == 1) {
        if (pid > 0)
            kill((pid_t)pid, SIGKILL);
        n++;
    }
    return n;
}

static int v1_kill_all(struct ef_cgroup *base, ef_error *err)
{
    struct v1_cgroup *c = (struct v1_cgroup *)base;
    for (int attempt = 0; attempt <= SWEEP_ATTEMPTS; attempt++) {
        int listed = 0;
        for (int i = 0; i < CTL_COUNT; i++) {
            if (!c->exists[i])
                continue;
            int n = kill_listed(c->path[i]);
            if (n < 0)
                return ef_error_set_errno(err, n, "cannot read %s/cgroup.procs", c->path[i]);
            listed += n;
        }
        if (listed == 0)
            return 0;
        sleep_ns(SWEEP_DELAY_NS);
    }
    return ef_error_set(err, -EBUSY, "processes remain in cgroup %s after SIGKILL",
                        c->path[CTL_PIDS]);
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
    char file[4096];
    snprintf(file, sizeof(file), "%s/%s%smemory.limit_in_bytes", m->mount[CTL_MEMORY],
             m->own[CTL_MEMORY], m->own[CTL_MEMORY][0] ? "/" : "");
    cleanup_fclose FILE *f = fopen(file, "re");
    if (!f)
        return -errno;
    uint64_t v;
    if (fscanf(f, "%" SCNu64, &v) != 1)
        return -EIO;
    *ret_bytes = v;
    return 0;
}

static const struct ef_cgroup_ops v1_ops = {
    .name = "cgroup v1 (libcgroup)",
    .version = 1,
    .create = v1_create,
    .open = v1_open_existing,
    .attach = v1_attach,
    .kill_all = v1_kill_all,
    .destroy = v1_destroy,
    .path = v1_path,
    .free = v1_free,
    .memory_limit = v1_memory_limit,
    .close = v1_close,
};
