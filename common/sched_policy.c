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
    case SCHED_IDLE:
        return "idle";
    case SCHED_FIFO:
        return "fifo";
    case SCHED_RR:
        return "rr";
#ifdef SCHED_DEADLINE
    case SCHED_DEADLINE:
        return "deadline";
#endif
    default:
        return "unknown";
    }
}

int ef_sched_policy_current(void)
{
    int policy = sched_getscheduler(0);
    return policy < 0 ? -1 : policy & ~SCHED_RESET_ON_FORK;
}

bool ef_sched_policy_realtime(int policy)
{
#ifdef SCHED_DEADLINE
    if (policy == SCHED_DEADLINE)
        return true;
#endif
    return policy == SCHED_FIFO || policy == SCHED_RR;
}

int ef_sched_policy_apply(int policy, ef_error *err)
{
    const struct sched_param param = {.sched_priority = 0};
    int current = sched_getscheduler(0);
    int reset_on_fork = current >= 0 ? current & SCHED_RESET_ON_FORK : 0;
    if (sched_setscheduler(0, policy | reset_on_fork, &param) == 0)
        return 0;
    int r = -errno;
    if (r == -EPERM && current >= 0 && (current & ~SCHED_RESET_ON_FORK) == SCHED_IDLE)
        return 1;
    return ef_error_set_errno(err, r, "cannot set the scheduling policy %s",
                              ef_sched_policy_name(policy));
}
