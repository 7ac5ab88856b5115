/* Synchronous invocation: pick a warm container of the function (or start one), send the
 * runner's `invoke`, enforce the function's timeout, and map what comes back onto Lambda's
 * outcomes. The container returns to the pool afterwards, or is destroyed when it timed out,
 * its runtime exited, or its runner went away. */
#pragma once

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
    const char *log;    /* runtime output during the invocation (may be NULL) */
    double duration_ms; /* from sending `invoke` to its answer */
    double init_ms;     /* container start time on a cold start, else 0 */
    int http_status;
    const char *error_type;
    const char *message;
};

/* Receives the outcome; everything in it is valid during the call only. */
typedef void (*ef_invoke_done_cb)(const struct ef_invoke_outcome *outcome, void *user);

/* Starts invoking `fn` (consumed in every case) with `payload` (copied) under `request_id`.
 * Returns 0 and calls `done` later, exactly once unless detached; or a negative errno with `err`
 * set and `done` never called: -ENOTCONN or -ESHUTDOWN (503), another errno (500). */
int ef_invoke_start(struct ef_controller *ctl, struct ef_function *fn, const char *request_id,
                    const char *payload, size_t payload_len, ef_invoke_done_cb done, void *user,
                    struct ef_invocation **ret_inv, ef_error *err);

/* The HTTP client went away: the invocation still runs to its end (the container then returns
 * to the pool), but `done` is no longer called. */
void ef_invoke_detach(struct ef_invocation *inv);

/* Returns the malloc'd ARN of a function, "arn:aws:lambda:us-east-1:000000000000:function:<name>".
 */
char *ef_function_arn(const char *name);
