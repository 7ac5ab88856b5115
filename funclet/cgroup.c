#include "funclet/cgroup.h"

#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "funclet/cgroup_backend.h"

static bool exists(const char *root, const char *name, bool want_dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", root, name);
    struct stat st;
    return stat(path, &st) == 0 && (want_dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode));
}

enum ef_cgroup_layout ef_cgroup_detect(const char *root)
{
    /* Only the unified hierarchy has cgroup.controllers at its top; a hybrid host mounts it at
     * <root>/unified, where it holds no controllers while v1 hierarchies own them. */
    if (exists(root, "cgroup.controllers", false))
        return EF_CGROUP_V2;
    if (exists(root, "memory", true) || exists(root, "pids", true))
        return exists(root, "unified/cgroup.controllers", false) ? EF_CGROUP_HYBRID : EF_CGROUP_V1;
    return EF_CGROUP_NONE;
}

static int valid_parent(const char *parent)
{
    size_t len = strlen(parent);
    if (len == 0 || len > 64 || strcmp(parent, ".") == 0 || strcmp(parent, "..") == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (!isalnum((unsigned char)parent[i]) && !strchr("_.-", parent[i]))
            return 0;
    }
    return 1;
}

int ef_cgroup_manager_open(const char *root, const char *parent, struct ef_cgroup_manager **ret,
                           ef_error *err)
{
    if (!valid_parent(parent))
        return ef_error_set(err, -EINVAL,
                            "invalid cgroup parent '%s': use 1-64 letters, digits, '_', '.' or "
                            "'-'",
                            parent);
    switch (ef_cgroup_detect(root)) {
    case EF_CGROUP_V2:
        return ef_cgroup_v2_open(root, NULL, parent, NULL, ret, err);
    case EF_CGROUP_V1:
    case EF_CGROUP_HYBRID:
        return ef_cgroup_v1_open(parent, ret, err);
    case EF_CGROUP_NONE:
        break;
    }
    return ef_error_set(err, -ENOTSUP,
                        "no cgroup file system at %s: mount cgroup2 there (or the v1 memory and "
                        "pids hierarchies below it), or point --cgroup-root at it",
                        root);
}

int ef_cgroup_manager_version(const struct ef_cgroup_manager *m)
{
    return m->ops->version;
}

int ef_cgroup_memory_limit(struct ef_cgroup_manager *m, uint64_t *ret_bytes)
{
    return m->ops->memory_limit(m, ret_bytes);
}

void ef_cgroup_manager_close(struct ef_cgroup_manager *m)
{
    if (m)
        m->ops->close(m);
}

int ef_cgroup_create(struct ef_cgroup_manager *m, const char *id,
                     const struct ef_cgroup_limits *limits, struct ef_cgroup **ret, ef_error *err)
{
    return m->ops->create(m, id, limits, ret, err);
}

int ef_cgroup_set_limits(struct ef_cgroup *cg, const struct ef_cgroup_limits *limits, ef_error *err)
{
    return cg->m->ops->set_limits(cg, limits, err);
}

int ef_cgroup_attach(struct ef_cgroup *cg, pid_t pid, ef_error *err)
{
    return cg->m->ops->attach(cg, pid, err);
}

int ef_cgroup_freeze(struct ef_cgroup *cg, bool frozen, ef_error *err)
{
    return cg->m->ops->freeze(cg, frozen, err);
}

int ef_cgroup_kill_all(struct ef_cgroup *cg, ef_error *err)
{
    return cg->m->ops->kill_all(cg, err);
}

int ef_cgroup_destroy(struct ef_cgroup *cg, ef_error *err)
{
    return cg->m->ops->destroy(cg, err);
}

int ef_cgroup_oom_watch(struct ef_cgroup *cg, int *ret_fd, ef_error *err)
{
    return cg->m->ops->oom_watch(cg, ret_fd, err);
}

void ef_cgroup_oom_drain(int fd)
{
    char buf[4096];
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
}

int ef_cgroup_oom_kills(struct ef_cgroup *cg, uint64_t *ret)
{
    return cg->m->ops->oom_kills(cg, ret);
}

const char *ef_cgroup_path(const struct ef_cgroup *cg, const char *controller)
{
    return cg->m->ops->path(cg, controller);
}

void ef_cgroup_free(struct ef_cgroup *cg)
{
    if (cg)
        cg->m->ops->free(cg);
}

int ef_cgroup_remove_stale(struct ef_cgroup_manager *m, const char *id, ef_error *err)
{
    struct ef_cgroup *cg = NULL;
    int r = m->ops->open(m, id, &cg, err);
    if (r < 0)
        return r;
    if (!cg)
        return 0;
    r = ef_cgroup_kill_all(cg, err);
    if (r >= 0)
        r = ef_cgroup_destroy(cg, err);
    ef_cgroup_free(cg);
    return r;
}

void ef_cgroup_pause_n(int attempt)
{
    long us = EF_CGROUP_WAIT_DELAY_MS * 1000L;
    if (attempt < 8)
        us = 50L << attempt;
    if (us > EF_CGROUP_WAIT_DELAY_MS * 1000L)
        us = EF_CGROUP_WAIT_DELAY_MS * 1000L;
    struct timespec ts = {0, us * 1000L};
    nanosleep(&ts, NULL);
}

int ef_cgroup_read(const char *dir, const char *name, char *buf, size_t len)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t off = 0;
    while (off + 1 < len) {
        ssize_t n = read(fd, buf + off, len - 1 - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        off += (size_t)n;
    }
    buf[off] = '\0';
    return (int)off;
}

/* Calls `fn` for each pid in `dir`/cgroup.procs; returns how many were listed. */
static int for_each_proc(const char *dir, void (*fn)(pid_t pid))
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
    cleanup_fclose FILE *f = fopen(path, "re");
    if (!f)
        return errno == ENOENT ? 0 : -errno;
    int n = 0;
    long pid;
    while (fscanf(f, "%ld", &pid) == 1) {
        if (pid > 0 && fn)
            fn((pid_t)pid);
        n++;
    }
    return n;
}

static void kill_one(pid_t pid)
{
    kill(pid, SIGKILL);
}

int ef_cgroup_kill_listed(const char *dir)
{
    return for_each_proc(dir, kill_one);
}

/* Whether `pid` has exited: gone, or a zombie waiting for its parent ("Z", or "X" while it is
 * being released). */
static bool process_dead(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return true;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    if (n <= 0)
        return true;
    buf[n] = '\0';
    /* "pid (comm) S ...": comm may hold spaces and parentheses, the state follows the last ')'. */
    const char *close = strrchr(buf, ')');
    return !close || close[1] != ' ' || close[2] == 'Z' || close[2] == 'X';
}

int ef_cgroup_kill_listed_except(const char *dir, pid_t keep, bool kill_them)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
    cleanup_fclose FILE *f = fopen(path, "re");
    if (!f)
        return errno == ENOENT ? 0 : -errno;
    int alive = 0;
    long pid;
    while (fscanf(f, "%ld", &pid) == 1) {
        if (pid <= 0 || pid == keep || process_dead((pid_t)pid))
            continue;
        if (kill_them)
            kill((pid_t)pid, SIGKILL);
        alive++;
    }
    return alive;
}

int ef_cgroup_kill_others(struct ef_cgroup *cg, pid_t keep, bool *ret_frozen, ef_error *err)
{
    const char *dir = ef_cgroup_path(cg, "pids");
    if (!dir)
        return ef_error_set(err, -ENOENT, "the container has no pids cgroup");
    ef_error e;
    bool frozen = ef_cgroup_freeze(cg, true, &e) == 0;
    *ret_frozen = frozen;
    int n = ef_cgroup_kill_listed_except(dir, keep, true);
    if (frozen && ef_cgroup_freeze(cg, false, &e) < 0)
        return ef_error_set(err, e.code, "%s", e.msg);
    if (n < 0)
        return ef_error_set_errno(err, n, "cannot read %s/cgroup.procs", dir);
    return n;
}

int ef_cgroup_others_left(struct ef_cgroup *cg, pid_t keep)
{
    const char *dir = ef_cgroup_path(cg, "pids");
    return dir ? ef_cgroup_kill_listed_except(dir, keep, false) : -ENOENT;
}

int ef_cgroup_count_procs(const char *dir)
{
    return for_each_proc(dir, NULL);
}
