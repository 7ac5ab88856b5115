/* Container cgroups behind a small interface, so that the v1 backend (one directory per
 * controller) and a v2 backend (one unified directory) are interchangeable, as crun's
 * cgroup managers are. The backend is chosen once, at start, from what the host mounts.
 *
 * Every container gets one cgroup per controller, named <own>/<parent>/<id>, where <own> is
 * funclet's own cgroup for that controller (read from /proc/self/cgroup: with cgroup v1 it
 * differs per controller) and <parent> is --cgroup-parent. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"

struct ef_cgroup_manager;
struct ef_cgroup; /* the cgroups of one container */

/* What a backend implements. Callers use the ef_cgroup_* functions below. */
struct ef_cgroup_ops {
    const char *name;
    int version;
    int (*create)(struct ef_cgroup_manager *m, const char *id, uint64_t memory_bytes,
                  uint64_t pids_max, struct ef_cgroup **ret, ef_error *err);
    int (*open)(struct ef_cgroup_manager *m, const char *id, struct ef_cgroup **ret, ef_error *err);
    int (*attach)(struct ef_cgroup *cg, pid_t pid, ef_error *err);
    int (*kill_all)(struct ef_cgroup *cg, ef_error *err);
    int (*destroy)(struct ef_cgroup *cg, ef_error *err);
    const char *(*path)(const struct ef_cgroup *cg, const char *controller);
    void (*free)(struct ef_cgroup *cg);
    int (*memory_limit)(struct ef_cgroup_manager *m, uint64_t *ret_bytes);
    void (*close)(struct ef_cgroup_manager *m);
};

/* Detects the cgroup version and opens the matching backend. `parent` is the --cgroup-parent
 * name (a single path component). Fails with -ENOTSUP when the host uses cgroup v2 (that
 * backend is not implemented yet), or when the memory or pids controller is missing. */
int ef_cgroup_manager_open(const char *parent, struct ef_cgroup_manager **ret, ef_error *err);

/* 1 or 2. */
int ef_cgroup_manager_version(const struct ef_cgroup_manager *m);

/* The memory limit of funclet's own cgroup in bytes (UINT64_MAX when unlimited). */
int ef_cgroup_memory_limit(struct ef_cgroup_manager *m, uint64_t *ret_bytes);

/* Removes the parent cgroups where they are empty (another funclet may still use them) and
 * frees the manager. */
void ef_cgroup_manager_close(struct ef_cgroup_manager *m);

/* Creates the cgroups of container `id` with the given limits. Nothing is left behind on
 * failure. */
int ef_cgroup_create(struct ef_cgroup_manager *m, const char *id, uint64_t memory_bytes,
                     uint64_t pids_max, struct ef_cgroup **ret, ef_error *err);

/* Moves process `pid` into every cgroup of the container. */
int ef_cgroup_attach(struct ef_cgroup *cg, pid_t pid, ef_error *err);

/* Sends SIGKILL to every process in the container's cgroups, repeatedly, until they are empty
 * (-EBUSY if they do not empty within a few seconds). */
int ef_cgroup_kill_all(struct ef_cgroup *cg, ef_error *err);

/* Removes the container's cgroup directories; they must be empty (ef_cgroup_kill_all). On
 * failure the cgroup stays valid so that the call can be repeated. */
int ef_cgroup_destroy(struct ef_cgroup *cg, ef_error *err);

/* The host path of the container's cgroup for `controller` ("memory", "pids"), or NULL. */
const char *ef_cgroup_path(const struct ef_cgroup *cg, const char *controller);

/* Frees the handle; the kernel objects are untouched. NULL is fine. */
void ef_cgroup_free(struct ef_cgroup *cg);

/* Kills and removes whatever cgroups a previous run left for container `id`. A container with
 * no cgroups is success. */
int ef_cgroup_remove_stale(struct ef_cgroup_manager *m, const char *id, ef_error *err);
