/* Container cgroups behind a small interface, so that the v1 backend (one directory per
 * controller, through libcgroup) and the v2 backend (one unified directory, plain file writes)
 * are interchangeable, as crun's cgroup managers are. The backend is chosen once, at start, from
 * what the host mounts (ef_cgroup_detect).
 *
 * Every container gets one cgroup per controller (v1) or one cgroup (v2), named
 * <own>/<parent>/<id>, where <own> is funclet's own cgroup (read from /proc/self/cgroup: with
 * cgroup v1 it differs per controller) and <parent> is --cgroup-parent. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"

struct ef_cgroup_manager;
struct ef_cgroup; /* the cgroups of one container */

/* The name of the empty, always frozen cgroup the v1 backend keeps below <parent> (see
 * cgroup_v1.c); it is not a container. */
#define EF_CGROUP_ANCHOR "frozen-anchor"

/* The limits of one container. */
struct ef_cgroup_limits {
    uint64_t memory_bytes;   /* hard limit; swap is not allowed on top of it */
    uint64_t pids_max;       /* most tasks (processes and threads) */
    uint32_t cpu_millicores; /* CFS quota in thousandths of a CPU; 0 = no quota */
    uint32_t cpu_weight;     /* 1-10000 (v2 cpu.weight; v1 cpu.shares is derived); 0 = default */
};

/* What the host offers, as found by ef_cgroup_detect. */
enum ef_cgroup_layout {
    EF_CGROUP_NONE,   /* no usable cgroup file system */
    EF_CGROUP_V1,     /* legacy: every controller is a v1 hierarchy */
    EF_CGROUP_HYBRID, /* v1 controllers plus an empty unified tree at <root>/unified */
    EF_CGROUP_V2,     /* the unified hierarchy at <root> itself, with controllers */
};

/* Hooks for the three operations whose effect cgroupfs implements in the kernel: making a cgroup
 * (the kernel fills it with interface files), removing one (only when it has no process), and
 * writing an interface file (which acts: moves a process, kills, freezes). The v2 backend uses
 * mkdir(2), rmdir(2) and write(2) when no hooks are given; the unit tests pass hooks that imitate
 * the kernel on a plain directory tree. Each returns 0 or a negative errno. */
struct ef_cgroup_fs {
    int (*mkdir)(const char *path, void *user);
    int (*rmdir)(const char *path, void *user);
    int (*write)(const char *path, const char *data, void *user);
    void *user;
};

/* What a backend implements. Callers use the ef_cgroup_* functions below. */
struct ef_cgroup_ops {
    const char *name;
    int version;
    int (*create)(struct ef_cgroup_manager *m, const char *id, const struct ef_cgroup_limits *l,
                  struct ef_cgroup **ret, ef_error *err);
    int (*open)(struct ef_cgroup_manager *m, const char *id, struct ef_cgroup **ret, ef_error *err);
    int (*set_limits)(struct ef_cgroup *cg, const struct ef_cgroup_limits *l, ef_error *err);
    int (*attach)(struct ef_cgroup *cg, pid_t pid, ef_error *err);
    int (*freeze)(struct ef_cgroup *cg, bool frozen, ef_error *err);
    int (*kill_all)(struct ef_cgroup *cg, ef_error *err);
    int (*destroy)(struct ef_cgroup *cg, ef_error *err);
    int (*oom_watch)(struct ef_cgroup *cg, int *ret_fd, ef_error *err);
    int (*oom_kills)(struct ef_cgroup *cg, uint64_t *ret);
    const char *(*path)(const struct ef_cgroup *cg, const char *controller);
    void (*free)(struct ef_cgroup *cg);
    int (*memory_limit)(struct ef_cgroup_manager *m, uint64_t *ret_bytes);
    void (*close)(struct ef_cgroup_manager *m);
};

/* Looks at the cgroup file system mounted at `root` (normally /sys/fs/cgroup): v2 when `root`
 * itself is the unified hierarchy (it has cgroup.controllers), hybrid when the v1 memory
 * hierarchy exists next to <root>/unified, v1 when it exists alone. */
enum ef_cgroup_layout ef_cgroup_detect(const char *root);

/* Detects the layout below `root` and opens the matching backend (the v1 backend on hybrid
 * hosts). `parent` is the --cgroup-parent name (a single path component). Fails with -ENOTSUP
 * when the memory or pids controller is missing. */
int ef_cgroup_manager_open(const char *root, const char *parent, struct ef_cgroup_manager **ret,
                           ef_error *err);

/* Opens the v2 backend on the unified hierarchy mounted at `root`, nesting below the cgroup
 * named by `self_cgroup` (the text of /proc/self/cgroup, whose "0::/path" line is used; NULL
 * reads the file). `fs` may be NULL (real system calls). Enables the controllers in the
 * subtree_control of funclet's own cgroup and of <own>/<parent>; when funclet's own cgroup holds
 * processes (the kernel then refuses to enable controllers) they are moved into the leaf
 * <own>/funclet first. */
int ef_cgroup_v2_open(const char *root, const char *self_cgroup, const char *parent,
                      const struct ef_cgroup_fs *fs, struct ef_cgroup_manager **ret, ef_error *err);

/* Opens the v1 backend (libcgroup; one hierarchy per controller: memory and pids required, cpu
 * and freezer used when mounted). */
int ef_cgroup_v1_open(const char *parent, struct ef_cgroup_manager **ret, ef_error *err);

/* 1 or 2. */
int ef_cgroup_manager_version(const struct ef_cgroup_manager *m);

/* The memory limit of funclet's own cgroup in bytes (UINT64_MAX when unlimited). */
int ef_cgroup_memory_limit(struct ef_cgroup_manager *m, uint64_t *ret_bytes);

/* Removes the parent cgroups where they are empty (another funclet may still use them) and
 * frees the manager. NULL is fine. */
void ef_cgroup_manager_close(struct ef_cgroup_manager *m);

/* Creates the cgroups of container `id` with the given limits. Nothing is left behind on
 * failure. */
int ef_cgroup_create(struct ef_cgroup_manager *m, const char *id,
                     const struct ef_cgroup_limits *limits, struct ef_cgroup **ret, ef_error *err);

/* Changes the limits of an existing container (a resize at warmup or reset). */
int ef_cgroup_set_limits(struct ef_cgroup *cg, const struct ef_cgroup_limits *limits,
                         ef_error *err);

/* Moves process `pid` into every cgroup of the container. */
int ef_cgroup_attach(struct ef_cgroup *cg, pid_t pid, ef_error *err);

/* Freezes (true) or thaws (false) every process of the container and waits until the kernel
 * reports the new state. -ENOTSUP when the host has no freezer. */
int ef_cgroup_freeze(struct ef_cgroup *cg, bool frozen, ef_error *err);

/* Kills every process in the container's cgroups (cgroup.kill on v2; freeze, SIGKILL, thaw
 * otherwise) and waits until they are empty (-EBUSY if they do not empty within a few
 * seconds). */
int ef_cgroup_kill_all(struct ef_cgroup *cg, ef_error *err);

/* Kills every process of the container but `keep` (its PID 1, the runner): freezes the
 * cgroup so that nothing can fork, exit or be reaped meanwhile (so no listed pid can be reused
 * before it is signalled), SIGKILLs the others, thaws (a task frozen by the v1 freezer only
 * dies once thawed). *ret_frozen says whether the freeze worked; without a freezer the
 * processes are killed one by one, which a fork loop could outrun, and the caller calls this
 * again until nothing is left. Returns how many other processes were alive, or a negative
 * errno. */
int ef_cgroup_kill_others(struct ef_cgroup *cg, pid_t keep, bool *ret_frozen, ef_error *err);

/* How many processes besides `keep` the container still lists alive (zombies and vanished
 * processes do not count), or a negative errno. Sends nothing. */
int ef_cgroup_others_left(struct ef_cgroup *cg, pid_t keep);

/* Removes the container's cgroup directories; they must be empty (ef_cgroup_kill_all). On
 * failure the cgroup stays valid so that the call can be repeated. */
int ef_cgroup_destroy(struct ef_cgroup *cg, ef_error *err);

/* Returns in *ret_fd (close-on-exec, non-blocking; the caller owns it) an fd that becomes
 * readable when the kernel may have OOM-killed a process of the container: an eventfd
 * registered on memory.oom_control (v1) or an inotify watch of memory.events (v2). After it
 * fires, drain it (ef_cgroup_oom_drain) and compare ef_cgroup_oom_kills with the last count. */
int ef_cgroup_oom_watch(struct ef_cgroup *cg, int *ret_fd, ef_error *err);

/* Reads whatever is pending on an fd from ef_cgroup_oom_watch, so that it stops being
 * readable until the next event. */
void ef_cgroup_oom_drain(int fd);

/* How many processes of the container the kernel's OOM killer has killed so far (the oom_kill
 * counter of memory.oom_control or memory.events). */
int ef_cgroup_oom_kills(struct ef_cgroup *cg, uint64_t *ret);

/* The host path of the container's cgroup for `controller` ("memory", "pids", "cpu",
 * "freezer"; any of them on v2, where there is one directory), or NULL. */
const char *ef_cgroup_path(const struct ef_cgroup *cg, const char *controller);

/* Frees the handle; the kernel objects are untouched. NULL is fine. */
void ef_cgroup_free(struct ef_cgroup *cg);

/* Kills and removes whatever cgroups a previous run left for container `id`. A container with
 * no cgroups is success. */
int ef_cgroup_remove_stale(struct ef_cgroup_manager *m, const char *id, ef_error *err);
