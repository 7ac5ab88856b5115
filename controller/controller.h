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
#include "controller/funclet_client.h"
#include "controller/pool.h"
#include "controller/store.h"

struct ef_controller_config {
    const char *data_dir;       /* holds controller.db and code/ */
    const char *listen;         /* IPv4 or IPv6 literal */
    int port;                   /* 0 picks a free port (tests) */
    const char *funclet_socket; /* path of funclet's JSON-RPC socket */
    size_t max_request_size;    /* largest HTTP request body accepted */
};

struct ef_controller {
    uv_loop_t *loop;
    char *data_dir;
    char *code_root; /* <data>/code: funclet's --code-root */
    size_t max_request_size;
    ef_store *store;
    ef_funclet_client *funclet;
    ef_http_server *http;
    struct ef_pool pool;

    bool shutting_down;
    unsigned pending_destroys; /* container.destroy calls not answered yet */
    unsigned pending_spawns;   /* containers being created or started */
    uv_timer_t shutdown_timer;
    bool shutdown_timer_open;
    void (*on_stopped)(struct ef_controller *ctl);
};

/* Opens the store, prepares the code directories, starts connecting to funclet and starts
 * serving HTTP. On failure everything already set up is released and `err` says what failed. */
int ef_controller_start(struct ef_controller *ctl, uv_loop_t *loop,
                        const struct ef_controller_config *config, ef_error *err);

/* Begins the orderly stop: no new HTTP requests, every container this controller created is
 * destroyed through funclet (waiting at most ~5 s for the answers), then every handle is closed.
 * `on_stopped` (may be NULL) runs once nothing of the controller is left on the loop except what
 * uv_run() will finish closing; the caller then lets uv_run() return and calls
 * ef_controller_free(). Safe to call more than once. */
void ef_controller_stop(struct ef_controller *ctl, void (*on_stopped)(struct ef_controller *ctl));

/* Releases what ef_controller_start() allocated outside the loop (the store, strings). Call it
 * after uv_run() has returned. */
void ef_controller_free(struct ef_controller *ctl);

/* Called by the pool whenever a destroy or a spawn finishes, so a pending stop can complete. */
void ef_controller_check_stopped(struct ef_controller *ctl);
