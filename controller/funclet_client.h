/* The controller's connection to funclet (docs/rpc.md, "funclet methods").
 *
 * It connects at start and, whenever funclet is unreachable, retries every second, logging one
 * line when the state changes (not one per attempt). While disconnected, calls fail at once
 * with -ENOTCONN so that the API can answer 503. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <uv.h>

#include "common/error.h"
#include "common/rpc.h"

typedef struct ef_funclet_client ef_funclet_client;

struct ef_funclet_events {
    /* funclet reported that a container's runner ended on its own. */
    void (*on_container_exited)(const char *id, const char *status, void *user);
    /* funclet reported that the kernel's OOM killer killed a process of a container
     * (container.oom). May be NULL. */
    void (*on_container_oom)(const char *id, void *user);
    /* The connection is up (at start or again): runs before any call can be sent on it. May be
     * NULL. */
    void (*on_connected)(void *user);
    /* An open connection was lost (not called at ef_funclet_client_stop). May be NULL. */
    void (*on_disconnected)(void *user);
};

/* Starts connecting to `socket_path`. The client is freed by ef_funclet_client_stop(). */
int ef_funclet_client_start(uv_loop_t *loop, const char *socket_path,
                            const struct ef_funclet_events *events, void *user,
                            ef_funclet_client **ret_client, ef_error *err);

/* The socket path it connects to ("" for NULL). */
const char *ef_funclet_path(const ef_funclet_client *client);

/* Whether the connection to funclet is up. */
bool ef_funclet_connected(const ef_funclet_client *client);

/* Sends a request to funclet (see ef_rpc_call; `params` is consumed). Returns -ENOTCONN when
 * not connected, and then `cb` is not called. */
int ef_funclet_call(ef_funclet_client *client, const char *method, cJSON *params,
                    unsigned timeout_ms, ef_rpc_result_cb cb, void *user);

/* Closes the connection and stops retrying; pending calls complete with EF_RPC_ERR_CLOSED. The
 * client is freed once its handles have closed. */
void ef_funclet_client_stop(ef_funclet_client *client);
