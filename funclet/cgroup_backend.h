/* What the cgroup backends share with cgroup.c; not used elsewhere. A backend embeds these
 * structs as the first member of its own, the way crun's managers do. */
#pragma once

#include <stddef.h>

#include "funclet/cgroup.h"

struct ef_cgroup_manager {
    const struct ef_cgroup_ops *ops;
};

struct ef_cgroup {
    struct ef_cgroup_manager *m;
};

/* How often, and how far apart, a backend looks again while waiting for the kernel: a cgroup
 * to empty after SIGKILL, to let go of its directory, to report frozen (5 s in all). */
#define EF_CGROUP_WAIT_ATTEMPTS 500
#define EF_CGROUP_WAIT_DELAY_MS 10

/* Sleeps before look number `attempt` + 1: 50 us, doubling up to EF_CGROUP_WAIT_DELAY_MS, so that
 * the common case (the kernel is done within microseconds) does not cost a whole delay. */
void ef_cgroup_pause_n(int attempt);

/* Reads the small file `dir`/`name` into `buf` (NUL-terminated, trailing newline kept).
 * Returns the length or a negative errno. */
int ef_cgroup_read(const char *dir, const char *name, char *buf, size_t len);

/* Sends SIGKILL to every process listed in `dir`/cgroup.procs; returns how many were listed,
 * or a negative errno. A missing cgroup counts as empty. */
int ef_cgroup_kill_listed(const char *dir);

/* Counts the processes listed in `dir`/cgroup.procs but `keep` that are alive (not zombies),
 * sending each SIGKILL when `kill_them`; a negative errno when the file cannot be read. */
int ef_cgroup_kill_listed_except(const char *dir, pid_t keep, bool kill_them);

/* Counts the processes listed in `dir`/cgroup.procs (0 when the cgroup is gone). */
int ef_cgroup_count_procs(const char *dir);
