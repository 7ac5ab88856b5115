#include "funclet/cgroup.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/cleanup.h"
#include "funclet/cgroup_backend.h"

#define UNIFIED_CONTROLLERS "/sys/fs/cgroup/cgroup.controllers"

/* cgroup v2 is in use when the unified hierarchy is mounted at /sys/fs/cgroup itself and
 * offers controllers; a hybrid host mounts an empty one at /sys/fs/cgroup/unified instead. */
static int detect_v2(void)
{
    cleanup_fclose FILE *f = fopen(UNIFIED_CONTROLLERS, "re");
    if (!f)
        return 0;
    int c;
    while ((c = fgetc(f)) != EOF) {
        if (!isspace(c))
            return 1;
    }
    return 0;
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

int ef_cgroup_manager_open(const char *parent, struct ef_cgroup_manager **ret, ef_error *err)
{
    if (!valid_parent(parent))
        return ef_error_set(err, -EINVAL,
                            "invalid cgroup parent '%s': use 1-64 letters, digits, '_', '.' or "
                            "'-'",
                            parent);
    if (detect_v2())
        return ef_error_set(err, -ENOTSUP,
                            "cgroup v2 detected (%s lists controllers): the cgroup v2 backend is "
                            "not implemented yet; boot with cgroup v1 (hybrid) hierarchies",
                            UNIFIED_CONTROLLERS);
    return ef_cgroup_v1_open(parent, ret, err);
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

int ef_cgroup_create(struct ef_cgroup_manager *m, const char *id, uint64_t memory_bytes,
                     uint64_t pids_max, struct ef_cgroup **ret, ef_error *err)
{
    return m->ops->create(m, id, memory_bytes, pids_max, ret, err);
}

int ef_cgroup_attach(struct ef_cgroup *cg, pid_t pid, ef_error *err)
{
    return cg->m->ops->attach(cg, pid, err);
}

int ef_cgroup_kill_all(struct ef_cgroup *cg, ef_error *err)
{
    return cg->m->ops->kill_all(cg, err);
}

int ef_cgroup_destroy(struct ef_cgroup *cg, ef_error *err)
{
    return cg->m->ops->destroy(cg, err);
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
