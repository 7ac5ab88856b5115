/* The controller's process-wide state and its start/stop sequence.
 *
 * One `struct ef_controller` lives for the whole process (main.c) or for one test. Every module
 * of the controller receives it and reads the parts it needs; all of it is touched on the loop
 * thread only. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/error.h"
#include "common/http.h"
#include "controller/async_worker.h" /* async */
#include "controller/funclet_client.h"
#include "controller/pool.h"
#include "controller/scheduler.h" /* scheduler */
#include "controller/store.h"

struct ef_controller_config {
    const char *data_dir;       /* holds controller.db and code/ */
    const char *listen;         /* IPv4 or IPv6 literal */
    int port;                   /* 0 picks a free port (tests) */
    const char *funclet_socket; /* path of funclet's JSON-RPC socket */
    size_t max_request_size;    /* largest invocation payload accepted */
    /* Largest body of CreateFunction and UpdateFunctionCode, which carry the zip in base64 (other
     * routes: api_limits.h); 0: EF_DEFAULT_MAX_CODE_REQUEST_SIZE. Never below max_request_size. */
    size_t max_code_request_size;
    /* File of "ACCESS_KEY_ID SECRET" lines (mode 0600); NULL: SigV4 signatures are not checked. */
    const char *auth_keys_path;
    /* File holding the bearer token GET /metrics requires (mode 0600, metrics_token.h); NULL:
     * /metrics is open. */
    const char *metrics_token_path;
    /* Functions may have NetworkMode host, i.e. the pod's own network (--allow-host-network). */
    bool allow_host_network;
    /* Function logs (<data>/logs, see function_logs.h): a file is rotated at this size (0:
     * 1 MiB) and this many files are kept per function (0: 3). */
    uint64_t log_max_size;
    unsigned log_files;
    /* async: Event invocations (async_worker.h); zero fields take the defaults. */
    struct ef_async_config async;
    /* scheduler: queues, limits, keep-alive and health checks (scheduler.h); NULL: defaults. */
    const struct ef_sched_config *sched;
    /* Warm invocations of containers that serve one at a time skip the runner (handover.h). */
    bool runtime_handover;
};

/* Room for a 50 MB zip in base64 (69,905,068 bytes) and the rest of the JSON document. */
#define EF_DEFAULT_MAX_CODE_REQUEST_SIZE (70u * 1024 * 1024)

struct ef_controller {
    uv_loop_t *loop;
    char *data_dir;
    char *code_root; /* <data>/code: funclet's --code-root */
    size_t max_request_size;
    size_t max_code_request_size;
    struct ef_auth_keys *auth_keys;         /* NULL: requests are not authenticated */
    struct ef_metrics_token *metrics_token; /* NULL: GET /metrics is open */
    bool allow_host_network;                /* NetworkMode host is accepted and started */
    bool runtime_handover;                  /* --runtime-handover on (handover.h) */
    struct ef_code_lane *code_lane;
    struct ef_function_logs *logs; /* every function's log, <data>/logs */
    ef_store *store;
    struct ef_async *async; /* async: the Event queue and its delivery (async_worker.h) */
    ef_funclet_client *funclet;
    ef_http_server *http;
    struct ef_pool pool;
    struct ef_scheduler *sched;           /* scheduler: admission and queues (scheduler.h) */
    struct ef_housekeeping *housekeeping; /* scheduler: keep-alive, health (housekeeping.h) */
    struct ef_metrics *metrics;           /* scheduler: GET /metrics (metrics.h) */
    /* Synchronous invocations waiting for their answer (api_invoke.c). */
    struct ef_api_invocation *api_invocations;
    /* <data>/controller.lock and <funclet socket>.controller.lock, flock'ed for the process's
     * lifetime so that a second controller on either refuses to start; -1 when not held. */
    int data_lock_fd;
    int funclet_lock_fd;

    bool shutting_down;
    unsigned pending_destroys; /* container.destroy calls not answered yet */
    unsigned pending_spawns;   /* containers being created or started */
    uv_timer_t shutdown_timer;
    bool shutdown_timer_open;
    void (*on_stopped)(struct ef_controller *ctl);
};

/* Locks the data dir (and, where it can, funclet's socket) against a second controller, opens
 * the store, prepares the code directories, starts connecting to funclet and starts serving
 * HTTP. On failure everything already set up is released and `err` says what failed (-EBUSY:
 * another controller holds the data dir or the funclet socket). */
int ef_controller_start(struct ef_controller *ctl, uv_loop_t *loop,
                        const struct ef_controller_config *config, ef_error *err);

/* Begins the orderly stop: no new HTTP requests, synchronous invocations still waiting are
 * answered 503 ServiceException, other requests with their handler may still be answered (for
 * ~5 s), every container this controller created is destroyed through funclet (waiting at most
 * ~5 s for the answers), then every handle is closed.
 * `on_stopped` (may be NULL) runs once nothing of the controller is left on the loop except what
 * uv_run() will finish closing; the caller then lets uv_run() return and calls
 * ef_controller_free(). Safe to call more than once. */
void ef_controller_stop(struct ef_controller *ctl, void (*on_stopped)(struct ef_controller *ctl));

/* Releases what ef_controller_start() allocated outside the loop (the store, strings). Call it
 * after uv_run() has returned. */
void ef_controller_free(struct ef_controller *ctl);

/* Called by the pool whenever a destroy or a spawn finishes, so a pending stop can complete. */
void ef_controller_check_stopped(struct ef_controller *ctl);
