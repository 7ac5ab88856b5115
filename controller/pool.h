/* The warm-container pool: every container this controller created through funclet, and their
 * lifecycle (create → connect to the runner → runtime.start → busy ⇄ idle → destroy).
 *
 * A container serves exactly one function identity (its `key`: name, code sha256 and config
 * hash) and one invocation at a time. Idle containers are kept most recently used first, so the
 * warmest one is reused. A container struct is freed only once it has left the pool and its
 * runner connection has closed (in that connection's on_close), so callbacks still holding it
 * stay safe. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "common/rpc.h"

struct ef_controller;
struct ef_function;

enum ef_container_state {
    EF_CONTAINER_STARTING, /* being created, connected to, or started */
    EF_CONTAINER_IDLE,
    EF_CONTAINER_BUSY,
};

struct ef_container {
    struct ef_container *prev, *next; /* pool list: idle ones most recently used first */
    struct ef_controller *ctl;
    char *id;            /* funclet's container id */
    char *runner_socket; /* the runner's JSON-RPC socket */
    char *function_name;
    char *key;         /* function identity, see ef_pool_function_key() */
    ef_rpc_conn *conn; /* to the runner; NULL until connected and after it closed */
    enum ef_container_state state;
    uint64_t last_used_ms; /* wall clock, epoch ms */
    char *exit_status;     /* set when funclet reported the runner's exit ("exit status 1") */
    void *spawn;           /* the spawn in progress while STARTING */
    bool in_pool;
    bool connecting; /* an ef_rpc_connect() to the runner has not called back yet */
};

struct ef_pool {
    struct ef_container *head;
    unsigned count;
};

/* Called once a spawn ends: with the started container (state BUSY, reserved for the caller)
 * and err NULL, or with c NULL and err saying why. err->code is -ENOTCONN (funclet unavailable),
 * -ESHUTDOWN (controller stopping), -ENOSPC (funclet's container limit), or another negative
 * errno (a failure to create or start the container). */
typedef void (*ef_spawn_cb)(struct ef_container *c, const ef_error *err, void *user);

/* Initialises an empty pool. */
void ef_pool_init(struct ef_pool *pool);

/* Returns the malloc'd identity key of a function: "<name>\n<code sha256>\n<config hash>". */
char *ef_pool_function_key(const struct ef_function *fn);

/* Takes the most recently used idle container with `key`, marks it BUSY and returns it; NULL
 * when there is none. */
struct ef_container *ef_pool_take_idle(struct ef_pool *pool, const char *key);

/* Finds a container by funclet id (any state); NULL when it is not in the pool. */
struct ef_container *ef_pool_find(struct ef_pool *pool, const char *id);

/* Returns a BUSY container to the pool as the most recently used idle one. */
void ef_pool_release(struct ef_container *c);

/* Removes a container from the pool for good: asks funclet to destroy it (once) and closes the
 * runner connection. `why` is logged. Calling it again is harmless. */
void ef_pool_discard(struct ef_container *c, const char *why);

/* Discards every container (shutdown). */
void ef_pool_discard_all(struct ef_pool *pool);

/* funclet reported that container `id` exited: record the status and discard it, which fails
 * its in-flight invocation (the runner connection closes). */
void ef_pool_container_exited(struct ef_pool *pool, const char *id, const char *status);

/* Creates and starts a new container for `fn`. Returns 0 and calls `cb` later, or a negative
 * errno (codes as for ef_spawn_cb) with `err` set and `cb` never called. */
int ef_pool_spawn(struct ef_controller *ctl, const struct ef_function *fn, const char *key,
                  ef_spawn_cb cb, void *user, ef_error *err);

/* The pool as a JSON array of {id, state, function, last_used_ms}. NULL on allocation failure. */
cJSON *ef_pool_to_json(const struct ef_pool *pool);
