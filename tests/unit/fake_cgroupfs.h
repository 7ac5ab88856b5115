/* A fake cgroup v2 file system for unit tests: a plain directory tree plus the ef_cgroup_fs
 * hooks (funclet/cgroup.h) that imitate what the kernel does on mkdir, rmdir and writes of
 * interface files (cgroup-v2.rst): a new cgroup gets its interface files, controllers follow
 * the parent's cgroup.subtree_control, "no internal processes", cgroup.procs moves a process,
 * cgroup.kill SIGKILLs the listed (real) processes, cgroup.freeze updates cgroup.events. */
#pragma once

#include "funclet/cgroup.h"

/* Creates a fake root below the directory `dir` (which must exist), offering `controllers`
 * ("memory pids cpu"), with a cgroup at `own` ("/" or "/a/b") whose cgroup.procs lists
 * `own_procs` (may be ""). */
int fake_cgroupfs_init(const char *dir, const char *controllers, const char *own,
                       const char *own_procs);

/* The hooks to pass to ef_cgroup_v2_open. */
const struct ef_cgroup_fs *fake_cgroupfs_hooks(void);

/* Reads `dir`/`name` into a static buffer without its trailing newline ("" when missing). */
const char *fake_cgroupfs_read(const char *dir, const char *name);

/* Writes `value` into `dir`/`name` as the kernel would update a file it owns (memory.events). */
int fake_cgroupfs_set(const char *dir, const char *name, const char *value);
