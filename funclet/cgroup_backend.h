/* What the cgroup backends share with cgroup.c; not used elsewhere. A backend embeds these
 * structs as the first member of its own, the way crun's managers do. */
#pragma once

#include "funclet/cgroup.h"

struct ef_cgroup_manager {
    const struct ef_cgroup_ops *ops;
};

struct ef_cgroup {
    struct ef_cgroup_manager *m;
};

/* Opens the cgroup v1 backend (libcgroup; one hierarchy per controller). */
int ef_cgroup_v1_open(const char *parent, struct ef_cgroup_manager **ret, ef_error *err);
