#define _GNU_SOURCE
#include "common/sched_policy.h"

#include <errno.h>
#include <sched.h>
#include <string.h>

int ef_sched_policy_parse(const char *name, const char *flag, int *ret_policy, ef_error *err)
{
    if (strcmp(name, "batch") == 0) {
        *ret_policy = SCHED_BATCH;
        return 0;
    }
    if (strcmp(name, "other") == 0) {
        *ret_policy = SCHED_OTHER;
        return 0;
    }
    return ef_error_set(err, -EINVAL, "%s must be batch or other, not '%.40s'", flag, name);
}

const char *ef_sched_policy_name(int policy)
{
    switch (policy) {
    case SCHED_BATCH:
        return "batch";
    case SCHED_OTHER:
        return "other";
    default:
        return "unknown";
    }
}

int ef_sched_policy_apply(int policy, ef_error *err)
{
    const struct sched_param param = {.sched_priority = 0};
    if (sched_setscheduler(0, policy, &param) < 0)
        return ef_error_set_errno(err, -errno, "cannot set the scheduling policy %s",
                                  ef_sched_policy_name(policy));
    return 0;
}
