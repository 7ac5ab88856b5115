/* The HTTP side of asynchronous invocations (docs/async.md): the Event branch of Invoke, the
 * status of an event (GET /v1/invocations/{request-id}) and a function's dead letters
 * (GET /v1/functions/{name}/dead-letters). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "common/http.h"

struct ef_controller;
struct ef_function;

/* Invoke with X-Amz-Invocation-Type: Event, once the function is resolved and the event checked
 * to be JSON: 413 beyond Lambda's 256 KB, else 202 with `request_id` once the event is
 * committed to the queue (429 when the backlog is full). `fn` is consumed. */
void ef_api_invoke_event(struct ef_controller *ctl, ef_http_exchange *ex, const char *request_id,
                         struct ef_function *fn, const char *payload, size_t payload_len);

/* Serves the request and returns true when its path is one of the async API's; returns false
 * (without answering) for any other path. */
bool ef_api_async_route(struct ef_controller *ctl, ef_http_exchange *ex,
                        const struct ef_http_request *req);
