/* funclet's RPC methods (docs/rpc.md): node.info, container.create, container.acquire,
 * container.warmup, container.reset, container.destroy, container.list, and the
 * container.exited and container.oom notifications. Requests that wait for a container step
 * (create, acquire, reset) are answered from its callback. */
#pragma once

#include <cjson/cJSON.h>

#include "common/rpc.h"
#include "funclet/funclet.h"

struct ef_container;

/* The on_request handler; `user` is the struct ef_funclet. Every request is validated before
 * anything touches the kernel, and answered exactly once (maybe later). */
void ef_funclet_on_request(ef_rpc_conn *conn, ef_rpc_request *req, const char *method,
                           const cJSON *params, void *user);

/* Logs that the runner of `c` ended and sends container.exited to every client. */
void ef_funclet_notify_exited(struct ef_funclet *f, struct ef_container *c);

/* Logs that the OOM killer took a process of `c` and sends container.oom to every client. */
void ef_funclet_notify_oom(struct ef_funclet *f, struct ef_container *c);
