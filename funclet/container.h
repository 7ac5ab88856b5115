/* Container lifecycle on the parent (funclet) side, one state machine per container:
 *
 *   CREATING ──▶ COLD ──warmup──▶ WARM ──reset──▶ RESETTING ──▶ COLD ...
 *      (child builds its root)         (WARMING)          (processes dying)
 *
 * and, from any state, destroy (DESTROYING, then gone). CREATING and RESETTING last across
 * turns of the event loop; a request that finds a container in them (or in a state that
 * forbids it) gets -EBUSY, which the RPC layer answers as -32011. WARMING and DESTROYING are
 * held only within one call. A runner that ends on its own marks the container `exited`
 * whatever its state; such a container can only be destroyed.
 *
 * A cold container is generic: namespaces, cgroups with the base limits, a root file system
 * whose /var/task is empty, the runner waiting for runtime.start. Warmup mounts the function's
 * code on /var/task through the container's shared mount point (hostmnt.h), sets its limits and
 * network; reset takes all of that away again and gives the container a fresh /tmp. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"
#include "funclet/cgroup.h"
#include "funclet/funclet.h"
#include "funclet/network.h"
#include "funclet/validate.h"

enum ef_container_state {
    EF_CONTAINER_CREATING,
    EF_CONTAINER_COLD,
    EF_CONTAINER_WARMING,
    EF_CONTAINER_WARM,
    EF_CONTAINER_RESETTING,
    EF_CONTAINER_DESTROYING,
};

struct ef_container_op;

struct ef_container {
    struct ef_container *next;
    struct ef_funclet *funclet;
    char id[EF_CONTAINER_ID_LEN + 1];
    pid_t pid; /* host pid of the runner (PID 1 of the container); 0 before clone */
    enum ef_container_state state;
    bool exited;     /* the runner ended and was reaped; only destroy is left */
    int wait_status; /* when exited: as from waitpid */
    bool pooled;     /* one of funclet's cold spares, not handed to any client yet */
    bool was_warm;   /* has served a function: its runner has (or may have) run a runtime */
    bool own_netns;  /* false: created with network "host" */
    int netns_fd;    /* the container's network namespace; -1 without one */
    enum ef_network_mode network;     /* while warm */
    struct ef_network_attachment net; /* network "bridge" while warm */
    int64_t memory_mb; /* current limits: the base while cold, the function's while warm */
    int64_t pids_max;
    int64_t cpu_millicores;
    char *code_dir; /* canonical; while warm */
    bool has_identity;
    struct ef_identity identity; /* while warm, when the client gave one */
    char *dir;                   /* <run>/containers/<id> */
    char *runner_socket;         /* <dir>/runner.sock */
    char *mnt_dir;               /* <dir>/mnt: the shared mount point (hostmnt.h) */
    struct ef_cgroup *cgroup;
    struct ef_oom_watch *oom_watch;   /* NULL when the kernel offers no OOM events */
    struct ef_exit_watch *exit_watch; /* the runner's pidfd; NULL without pidfds or once reaped */
    uint64_t oom_kills;               /* the cgroup's OOM kill counter when last looked at */
    bool oom_killed;                  /* a process was OOM-killed since the last warmup */
    struct ef_container_op *op;       /* the asynchronous step in progress, if any */
    int userns_slot;                  /* its range of host ids (userns.h); -1 without a userns */
    uint32_t userns_id;               /* host id of uid and gid 0 inside, with a userns */
};

/* The errors with a meaning in funclet's protocol (-EBUSY: busy, -ENOSPC: no capacity,
 * -EINVAL: invalid params) are only returned where funclet itself decided so; a system call
 * that happens to fail with one of them is reported as this (-EIO, a system error). */
static inline int ef_container_system_error(int r)
{
    return r == -EBUSY || r == -ENOSPC || r == -EINVAL ? -EIO : r;
}

/* How long container creation waits for the child to exec the runner, and a reset for the
 * function's processes to die. */
#define EF_CONTAINER_START_TIMEOUT_MS 10000
#define EF_CONTAINER_RESET_TIMEOUT_MS 5000

/* Called once an asynchronous create or reset ends: with the container and r == 0, or with
 * c == NULL, r < 0 and `err` saying why (the container no longer exists then). */
typedef void (*ef_container_done_cb)(struct ef_funclet *f, struct ef_container *c, int r,
                                     const ef_error *err, void *user);

/* How a container is created. */
struct ef_container_create_opts {
    bool own_netns; /* false: network "host" */
    bool pooled;    /* a spare of funclet's pool */
};

/* Starts creating a cold container and adds it to f->containers (state CREATING). Returns 0
 * and calls `cb` once the runner runs (or creation failed), or a negative errno with `err` set
 * (nothing left behind; `cb` is never called). It takes the host-side parts made ahead (parts.h)
 * when they are ready, else makes them; the child builds its root while the loop runs. */
int ef_container_create(struct ef_funclet *f, const struct ef_container_create_opts *opts,
                        ef_container_done_cb cb, void *user, struct ef_container **ret,
                        ef_error *err);

/* Specialises a cold container for a function: limits, code on /var/task, network. -EBUSY when
 * it is not cold (or exited), -ENOSPC when the node's memory capacity or the bridge's addresses
 * do not suffice, -EINVAL when the network mode does not fit how it was created. On failure the
 * container is cold again. */
int ef_container_warmup(struct ef_funclet *f, struct ef_container *c,
                        const struct ef_warm_spec *spec, ef_error *err);

/* Starts returning a cold or warm container to a clean cold state: every process but the
 * runner killed, code unmounted, a fresh /tmp and /dev/shm, no veth, base limits. With
 * `release` it then goes back to the pool, or is destroyed when the pool is full or when it has
 * been warm (see reset_done in container.c). Returns 0
 * and calls `cb` once done, or -EBUSY (not cold or warm, or exited) with `err` set. A reset
 * that fails destroys the container; `cb` then gets NULL and the reason. */
int ef_container_reset(struct ef_funclet *f, struct ef_container *c, bool release,
                       ef_container_done_cb cb, void *user, ef_error *err);

/* Kills the container's processes, reaps the runner, removes its cgroups, mounts, network and
 * directory, then unlinks and frees `c`. An asynchronous step in progress is cancelled first
 * (its callback gets -ECANCELED). On failure `c` stays listed (exited) so that the destroy can
 * be repeated, and `err` says what remained. */
int ef_container_destroy(struct ef_funclet *f, struct ef_container *c, ef_error *err);

/* Destroys every container (shutdown); failures are logged. */
void ef_container_destroy_all(struct ef_funclet *f);

/* A random container id ("c" and 12 hex digits) that no container and no set of parts made
 * ahead has. */
int ef_container_new_id(const struct ef_funclet *f, char id[EF_CONTAINER_ID_LEN + 1],
                        ef_error *err);

/* The limits of a cold container (--cold-memory, --cold-pids). */
struct ef_cgroup_limits ef_container_cold_limits(const struct ef_funclet *f);

/* The container with this id, or NULL. */
struct ef_container *ef_container_find(const struct ef_funclet *f, const char *id);

/* "creating", "cold", "warming", "warm", "resetting", "destroying", or "exited". */
const char *ef_container_state_name(const struct ef_container *c);

/* The memory (MiB) every container holds together: each one's current limit. */
uint64_t ef_container_allocated_mb(const struct ef_funclet *f);

/* Reaps every child that has ended (WNOHANG), for SIGCHLD; for each container runner among them,
 * marks the container exited and calls f->on_exit (not for a container still being created: its
 * creation fails instead). A runner with a pidfd is usually reaped through it first (see
 * exit_watch.h), with the same outcome. */
void ef_container_reap(struct ef_funclet *f);

/* Reads the container's OOM kill counter; when it grew, marks the container and calls
 * f->on_oom. */
void ef_container_check_oom(struct ef_funclet *f, struct ef_container *c);

/* Removes what a previous funclet left in run/containers/: the cgroups of those ids and the
 * directories (mounts there are gone already: see ef_hostmnt_prepare_root). Failures are
 * logged. */
void ef_container_remove_orphans(struct ef_funclet *f);
