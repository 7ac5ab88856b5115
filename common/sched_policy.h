/* The CPU scheduling policy of the processes on the invocation path: the controller, and every
 * process of a container (funclet sets it in the container's first process; the runner, the
 * runtime and the function inherit it).
 *
 * "batch" (SCHED_BATCH, the default of both daemons) is SCHED_OTHER with the same CPU share and
 * nice levels, except that a process woken up does not preempt the one running: it waits for
 * the running one to block or to use up its time slice. Each hand-off of an invocation
 * (controller -> runner -> runtime and back) wakes the next process while the sender still has
 * a system call or two to make before it sleeps. Under SCHED_OTHER the woken process preempts
 * it, and the sender is switched in again only to go to sleep: two context switches where one
 * does. docs/performance.md has the figures. "other" (SCHED_OTHER) restores wake-up
 * preemption, for an operator who wants the controller to preempt CPU-bound functions at once. */
#pragma once

#include <stdbool.h>

#include "common/error.h"

/* Parses "batch" or "other" into SCHED_BATCH or SCHED_OTHER; anything else is -EINVAL with a
 * message naming `flag` (the command-line flag it came from). */
int ef_sched_policy_parse(const char *name, const char *flag, int *ret_policy, ef_error *err);

/* "batch", "other", "idle", "fifo", "rr" or "deadline"; "unknown" for any other number. */
const char *ef_sched_policy_name(int policy);

/* The calling thread's policy without its SCHED_RESET_ON_FORK flag; -1 when it cannot be read. */
int ef_sched_policy_current(void);

/* Whether `policy` is a real-time one (SCHED_FIFO, SCHED_RR, SCHED_DEADLINE). */
bool ef_sched_policy_realtime(int policy);

/* Sets the calling thread's policy (priority 0), keeping its SCHED_RESET_ON_FORK flag (clearing
 * it needs CAP_SYS_NICE). Threads it creates afterwards inherit the policy, so a daemon calls
 * this before it starts any. Returns 0, or 1 when the thread runs SCHED_IDLE and may not leave
 * it (leaving it needs CAP_SYS_NICE): it keeps that lower policy, and the caller says so. Other
 * failures are a negative errno with `err` filled. */
int ef_sched_policy_apply(int policy, ef_error *err);
