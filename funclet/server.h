/* funclet's RPC server: the listening socket and the set of connected clients, which
 * notifications (container.exited) are broadcast to. Accepting is done here rather than by
 * ef_rpc_server_listen because funclet needs to know every connection as it opens. */
#pragma once

#include <cjson/cJSON.h>
#include <uv.h>

#include "common/error.h"
#include "common/rpc.h"

struct ef_server;

/* At most this many clients at once; more are refused (closed at once). */
#define EF_SERVER_MAX_CLIENTS 64

/* Listens on `path` (created mode 0600; a stale socket there is replaced, one that a running
 * process still answers on is an error). Requests and notifications go to `handlers` with
 * `user`; on_close of `handlers` is called too. */
int ef_server_start(uv_loop_t *loop, const char *path, const struct ef_rpc_handlers *handlers,
                    void *user, struct ef_server **ret, ef_error *err);

/* Sends a notification to every connected client; `params` is not consumed. */
void ef_server_broadcast(struct ef_server *s, const char *method, const cJSON *params);

/* Stops listening, unlinks the socket and closes every client; the server is freed once all
 * of them have closed. */
void ef_server_close(struct ef_server *s);
