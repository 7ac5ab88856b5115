/* Synchronous invocation: admission by the scheduler (scheduler.h: reserved concurrency, the
 * node's limit, per-function queues), then pick a warm container of the function (or start one,
 * reclaiming idle containers of other functions when the node is out of capacity), send the
 * runner's `invoke`, enforce the function's timeout, and map what comes back onto Lambda's
 * outcomes (Runtime.OutOfMemory for a runtime killed when funclet reports an OOM kill in its
 * container, see ef_invoke_container_oom). The container returns to the pool afterwards, or is
 * destroyed when it timed out, its runtime exited, or its runner went away. An invocation that met
 * a warm container whose runtime had already died (the runner answers "delivered": false) is moved
 * once to a fresh container. Every invocation that reached the function leaves its entry in the
 * function's log (function_logs.h). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"

struct ef_controller;
struct ef_function;
struct ef_invocation;

enum ef_invoke_status {
    EF_INVOKE_OK,             /* 200, payload is the function's result */
    EF_INVOKE_FUNCTION_ERROR, /* 200 + X-Amz-Function-Error: Unhandled, payload is the error */
    EF_INVOKE_SERVICE_ERROR,  /* http_status + error_type + message */
};

struct ef_invoke_outcome {
    enum ef_invoke_status status;
    const char *payload;
    size_t payload_len;
    const char *log;         /* runtime output during the invocation (may be NULL) */
    double duration_ms;      /* from sending `invoke` to its answer, less the runner's wait_ms */
    double init_ms;          /* cold start: the container's start plus wait_ms; else 0 */
    long long max_memory_mb; /* the runtime's peak memory as the runner measured it; -1 unknown */
    /* The invocation's entry in the function's log (START … REPORT), as appended to
     * <data>/logs/<name>.log; NULL for service errors or when memory ran out. */
    const char *framed_log;
    int http_status;
    const char *error_type;
    const char *reason; /* 429's Reason (EF_REASON_* of scheduler.h); NULL otherwise */
    const char *message;
};

/* Receives the outcome; everything in it is valid during the call only. */
typedef void (*ef_invoke_done_cb)(const struct ef_invoke_outcome *outcome, void *user);

/* What an invocation may carry besides its event (all optional, NULL when absent). */
struct ef_invoke_extra {
    /* Lambda-Runtime-Client-Context: the JSON document of X-Amz-Client-Context, decoded from
     * base64, as printable ASCII (see docs/rpc.md, `invoke`). */
    const char *client_context;
    const char *cognito_identity; /* Lambda-Runtime-Cognito-Identity, JSON */
    /* The invocation's log entry is appended before `done` is called, not after: for a caller
     * that stores the outcome durably (an asynchronous event), so that a crash between the two
     * never leaves an outcome whose run is missing from the function's log. */
    bool log_before_done;
};

/* As ef_invoke_start, with the extra fields of `extra` (may be NULL; copied). */
int ef_invoke_start_ex(struct ef_controller *ctl, struct ef_function *fn, const char *request_id,
                       const char *payload, size_t payload_len, const struct ef_invoke_extra *extra,
                       ef_invoke_done_cb done, void *user, struct ef_invocation **ret_inv,
                       ef_error *err);

/* Starts invoking `fn` (consumed in every case) with `payload` (copied) under `request_id`.
 * Returns 0 and calls `done` later, exactly once unless detached; or a negative errno with `err`
 * set and `done` never called: -EDQUOT or -EAGAIN (throttled at once: 429 with the Reason
 * ef_invoke_throttle_reason() gives), -ENOTCONN or -ESHUTDOWN (503), another errno (500).
 * An invocation that has to wait (its function's queue) completes later like any other, with a
 * 429 outcome (`reason` set) if its wait ends without a slot. */
int ef_invoke_start(struct ef_controller *ctl, struct ef_function *fn, const char *request_id,
                    const char *payload, size_t payload_len, ef_invoke_done_cb done, void *user,
                    struct ef_invocation **ret_inv, ef_error *err);

/* The 429 Reason for an error code of ef_invoke_start (-EDQUOT:
 * "ReservedFunctionConcurrentInvocationLimitExceeded", -EAGAIN:
 * "ConcurrentInvocationLimitExceeded"); NULL for the codes that are no throttle. */
const char *ef_invoke_throttle_reason(int code);

/* The HTTP client went away: the invocation still runs to its end (the container then returns
 * to the pool), but `done` is no longer called. One still waiting in a queue is dropped at once
 * (`inv` is freed). */
void ef_invoke_detach(struct ef_invocation *inv);

/* Whether `invoke` was sent to a runner for this invocation (at least once): until then the
 * function cannot have seen the event, so a caller that abandons it may deliver it again
 * (async_worker.c, at an orderly stop). */
bool ef_invoke_sent(const struct ef_invocation *inv);

/* funclet reported (container.oom) that the kernel's OOM killer killed a process of container
 * `id`: an invocation whose runtime was killed there is answered with Runtime.OutOfMemory, now if
 * its answer is waiting for this report, or when its answer arrives if the container is busy. */
void ef_invoke_container_oom(struct ef_controller *ctl, const char *id);

/* Returns the malloc'd ARN of a function, "arn:aws:lambda:us-east-1:000000000000:function:<name>".
 */
char *ef_function_arn(const char *name);
