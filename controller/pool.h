/* The warm-container pool: every container this controller created through funclet, and their
 * lifecycle (create → connect to the runner → runtime.start → busy ⇄ idle → destroy).
 *
 * A container serves exactly one function identity (its `key`: name, version, code sha256 and
 * config hash) and up to the function's per-container concurrency of invocations at once
 * (PerExecutionEnvironmentMaxConcurrency, 1 by default). A new invocation goes to a container
 * that already serves some and has a free slot, else to the most recently used idle one, so
 * that the fewest containers stay warm and the warmest is reused. A container struct is freed only
 * once it has left the pool and its runner connection has closed (in that connection's on_close),
 * so callbacks still holding it stay safe. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "common/rpc.h"

struct ef_controller;
struct ef_function;
struct ef_pool_spawn;
struct ef_invocation;

enum ef_container_state {
    EF_CONTAINER_STARTING, /* being created, connected to, or started */
    EF_CONTAINER_IDLE,     /* no invocation in flight */
    EF_CONTAINER_BUSY,     /* at least one invocation in flight */
};

struct ef_container {
    struct ef_container *prev, *next; /* pool list: idle ones most recently used first */
    struct ef_controller *ctl;
    char *id;            /* funclet's container id */
    char *runner_socket; /* the runner's JSON-RPC socket */
    char *function_name;
    char *version;     /* the function version it runs ("$LATEST", "1", ...) */
    char *key;         /* function identity, see ef_pool_function_key() */
    ef_rpc_conn *conn; /* to the runner; NULL until connected and after it closed */
    enum ef_container_state state;
    int64_t memory_mb;      /* the memory funclet holds for it */
    uint64_t last_used_ms;  /* wall clock, epoch ms */
    uint64_t idle_since;    /* monotonic ms: when it last became idle (or was created) */
    uint64_t seq;           /* order of arrival in the pool (see ef_pool.seq) */
    unsigned invocations;   /* invocations it has served */
    unsigned in_flight;     /* invocations it serves now (BUSY while above 0) */
    unsigned max_in_flight; /* the function's per-container concurrency */
    const char *network;    /* its network mode's name (static): "none", "bridge" or "host" */
    char *address;          /* bridge: its eth0 address as funclet reported it; else NULL */
    char *exit_status;      /* set when funclet reported the runner's exit ("exit status 1") */
    /* The runner reported (runtime.exited) that the runtime is gone: never handed out again. */
    bool runtime_exited;
    void *spawn; /* the spawn in progress while STARTING */
    bool in_pool;
    bool connecting;           /* an ef_rpc_connect() to the runner has not called back yet */
    bool ping_in_flight;       /* a health check of the runner has not been answered yet */
    unsigned pings_unanswered; /* health checks in a row its runner did not answer */
    bool reborn;               /* started to replace an idle container that died (housekeeping.h) */
    /* One of its invocations timed out: it is draining. It takes no new invocation (neither
     * ef_pool_take_slot, ef_pool_has_slot nor ef_pool_join_spawn hands it out), the others in
     * flight (per-container concurrency) run to their own end, and the last one's
     * ef_pool_release discards it; the runner kills the runtime then (docs/rpc.md). */
    bool timed_out;
    bool oom_killed; /* funclet reported an OOM kill in it (container.oom), see invoke.c */
    /* An invoke answer said that its runtime's init failed ("init_error", docs/rpc.md): the
     * runtime will never serve, so the container takes no new invocation (like `timed_out`)
     * and is discarded once its runtime has ended (runtime.exited), as Lambda starts a new
     * environment, with a new init, for the next invocation. */
    bool init_failed;
    /* A watch found its runner wedged during an invocation (runner_watch.h): discarded. */
    bool runner_wedged;
    /* The runner handed the runtime's connection over (handover.h): invocations go through it
     * instead of the runner. NULL when not (yet), and once the handover has closed. */
    struct ef_handover *handover;
    bool handover_pending;      /* runtime.handover is asked and not answered yet */
    bool handover_refused;      /* not asked again: this container keeps its runner's path */
    unsigned handover_refusals; /* runtime.handover refused so far */
    /* The invocation placed while runtime.handover was pending: sent once it is answered. */
    void (*parked_send)(void *user, bool usable);
    void *parked_user;
};

struct ef_pool {
    struct ef_container *head;
    struct ef_pool_spawn *spawns; /* containers being started (ef_pool_spawn), newest first */
    unsigned count;
    /* Arrivals counted: a container whose seq is above that of a container.list request arrived
     * after the request was sent, so its absence from the answer means nothing. */
    uint64_t seq;
    /* Invocations whose runtime was killed, waiting briefly for funclet's container.oom to tell
     * an OOM kill from another (invoke.c). */
    struct ef_invocation *oom_holds;
};

typedef void (*ef_spawn_cb)(struct ef_container *c, const ef_error *err, void *user);

/* The handover of `c` has closed (handover.h): the container no longer waits for it before it
 * is freed. */
void ef_pool_handover_gone(struct ef_container *c);

/* Initialises an empty pool. */
void ef_pool_init(struct ef_pool *pool);

/* Returns the malloc'd identity key of a function version:
 * "<name>\n<version>\n<code sha256>\n<config hash>". */
char *ef_pool_function_key(const struct ef_function *fn);

/* Takes a slot for one invocation in a started container with `key` whose runtime has not
 * exited, has not failed its init and is not draining after a timeout: one that already serves
 * invocations and has a free slot, else the most recently used idle one. Marks it BUSY and returns
 * it; NULL when there is none. */
struct ef_container *ef_pool_take_slot(struct ef_pool *pool, const char *key);

/* Finds a container by funclet id (any state); NULL when it is not in the pool. */
struct ef_container *ef_pool_find(struct ef_pool *pool, const char *id);

/* Whether a container with `key` whose runtime has not exited, has not failed its init and is not
 * draining after a timeout has a free slot. */
bool ef_pool_has_slot(const struct ef_pool *pool, const char *key);

/* Gives back the slot of one invocation; a container with none left in flight becomes the most
 * recently used idle one, or is discarded when its runtime exited or one of its invocations
 * timed out (`timed_out`). One whose init failed (`init_failed`) stays idle without being handed
 * out until runtime.exited discards it. */
void ef_pool_release(struct ef_container *c);

/* Removes a container from the pool for good: asks funclet to destroy it (once) and closes the
 * runner connection. `why` is logged. Calling it again is harmless. */
void ef_pool_discard(struct ef_container *c, const char *why);

/* Discards a container found dead (its runner or runtime ended, or it failed a health check),
 * counting it as unhealthy; an idle one is replaced by a new warm container of the same
 * identity (ef_housekeeping_reborn), unless its init had failed (a new one would fail it too). */
void ef_pool_discard_dead(struct ef_container *c, const char *why);

/* Asks funclet to destroy a container the pool does not hold (found by a re-sync). */
void ef_pool_destroy_unknown(struct ef_controller *ctl, const char *id);

/* Gives an idle container up (idle cool-down): with `reset`, funclet's container.reset with
 * "release" puts it back into funclet's cold pool (destroyed when that fails); otherwise it is
 * destroyed. Like ef_pool_discard() for the pool. */
void ef_pool_retire(struct ef_container *c, const char *why, bool reset);

/* Frees capacity for a container of `key` needing `need_mb`: gives up the least recently used
 * idle containers of other identities (other functions, or stale versions of this one) until
 * their memory adds up to `need_mb` (at least one). Returns how many were given up; funclet
 * handles their destroys before any request sent after this call. */
unsigned ef_pool_reclaim(struct ef_pool *pool, const char *key, int64_t need_mb);

/* Discards every container (shutdown). */
void ef_pool_discard_all(struct ef_pool *pool);

/* funclet reported that container `id` exited: record the status and discard it, which fails
 * its in-flight invocation (the runner connection closes). */
void ef_pool_container_exited(struct ef_pool *pool, const char *id, const char *status);

/* Creates and starts a new container for `fn`. Returns 0 and calls `cb` later, or a negative
 * errno (codes as for ef_spawn_cb) with `err` set and `cb` never called. A container whose
 * runner refuses runtime.start as busy (one recycled through funclet's pool whose runner still
 * has a runtime, or an older runner that starts only one) fails with -EAGAIN: a new spawn may
 * succeed. A provided runtime whose `bootstrap` is missing or cannot be executed fails with
 * -ENOEXEC and Lambda's wording of the cause as the message ("Couldn't find valid bootstrap(s):
 * [/var/task/bootstrap]"): the function's error (Runtime.InvalidEntrypoint), not the service's. */
int ef_pool_spawn(struct ef_controller *ctl, const struct ef_function *fn, const char *key,
                  ef_spawn_cb cb, void *user, ef_error *err);

/* Joins a container of `key` that is being started (and has not failed its init) and has a slot
 * nobody was promised yet (its
 * function serves several invocations per container): returns true, and `cb` is called once
 * the start ends, with the container and a slot taken for the caller, or NULL and the error
 * (-EAGAIN when the container went away first: a spawn of one's own may succeed). Returns false
 * when there is no such container. During a burst, this keeps N invocations from starting N
 * containers that could each serve all of them. */
bool ef_pool_join_spawn(struct ef_pool *pool, const char *key, ef_spawn_cb cb, void *user);

/* The pool as a JSON array of {id, state ("starting", "idle", "busy", or "draining": busy, and
 * taking no new invocation after one timed out), function, version, memory_mb, invocations,
 * in_flight, max_in_flight, last_used_ms, last_used (ISO 8601), idle_ms (idle ones)}. NULL on
 * allocation failure. */
cJSON *ef_pool_to_json(const struct ef_pool *pool);
