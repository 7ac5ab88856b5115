/* Invoke, on Lambda's path and on the EasyFaaS-style /v1 path. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "controller/api.h"
#include "controller/base64.h"
#include "controller/controller.h"
#include "controller/invoke.h"
#include "controller/lambda_errors.h"
#include "controller/request_id.h"
#include "controller/store.h"

/* Lambda returns at most the last 4 KB of the log in X-Amz-Log-Result. */
#define LOG_TAIL_MAX 4096

struct invoke_ctx {
    ef_http_exchange *ex;
    char request_id[EF_REQUEST_ID_LEN + 1];
    char *function_name;
    struct ef_invocation *inv;
    bool want_log;
    int64_t memory_mb;
};

static void invoke_ctx_free(struct invoke_ctx *ctx)
{
    free(ctx->function_name);
    free(ctx);
}

/* Frames the runtime's output as Lambda's CloudWatch lines, keeps the last 4 KB and returns it
 * base64-encoded (malloc'd), or NULL when memory runs out. Max Memory Used is not measured yet,
 * so that field is left out rather than invented. */
static char *log_result(const struct invoke_ctx *ctx, const struct ef_invoke_outcome *o)
{
    const char *log = o->log ? o->log : "";
    size_t loglen = strlen(log);
    bool nl = loglen > 0 && log[loglen - 1] != '\n';
    unsigned long long billed = (unsigned long long)o->duration_ms;
    if ((double)billed < o->duration_ms)
        billed++;
    if (billed == 0)
        billed = 1;
    char init[64] = "";
    if (o->init_ms > 0)
        snprintf(init, sizeof(init), "\tInit Duration: %.2f ms", o->init_ms);

    cleanup_free char *text = NULL;
    int n = asprintf(&text,
                     "START RequestId: %s Version: $LATEST\n%s%s"
                     "END RequestId: %s\n"
                     "REPORT RequestId: %s\tDuration: %.2f ms\tBilled Duration: %llu ms\t"
                     "Memory Size: %lld MB%s\t\n",
                     ctx->request_id, log, nl ? "\n" : "", ctx->request_id, ctx->request_id,
                     o->duration_ms, billed, (long long)ctx->memory_mb, init);
    if (n < 0)
        return NULL;
    size_t len = (size_t)n;
    const char *tail = text;
    if (len > LOG_TAIL_MAX) {
        tail = text + (len - LOG_TAIL_MAX);
        len = LOG_TAIL_MAX;
    }
    return ef_base64_encode(tail, len);
}

static void on_invoke_done(const struct ef_invoke_outcome *o, void *user)
{
    struct invoke_ctx *ctx = user;
    ef_http_exchange *ex = ctx->ex;

    if (o->status == EF_INVOKE_SERVICE_ERROR) {
        ef_warn("invocation %s of %s failed: %s", ctx->request_id, ctx->function_name, o->message);
        if (o->http_status == 429)
            ef_lambda_error_reason(ex, ctx->request_id, 429, o->error_type,
                                   "ConcurrentInvocationLimitExceeded", "%s", o->message);
        else
            ef_lambda_error(ex, ctx->request_id, o->http_status, o->error_type, "%s", o->message);
        invoke_ctx_free(ctx);
        return;
    }

    struct ef_http_header headers[4];
    size_t n = 0;
    headers[n++] = (struct ef_http_header){"X-Amz-Executed-Version", "$LATEST"};
    headers[n++] = (struct ef_http_header){"x-amzn-RequestId", ctx->request_id};
    if (o->status == EF_INVOKE_FUNCTION_ERROR)
        headers[n++] = (struct ef_http_header){"X-Amz-Function-Error", "Unhandled"};
    cleanup_free char *logb64 = ctx->want_log ? log_result(ctx, o) : NULL;
    if (logb64)
        headers[n++] = (struct ef_http_header){"X-Amz-Log-Result", logb64};
    ef_http_respond(ex, 200, headers, n, "application/json", o->payload, o->payload_len);
    invoke_ctx_free(ctx);
}

static void on_client_gone(ef_http_exchange *ex, void *user)
{
    (void)ex;
    struct invoke_ctx *ctx = user;
    /* The invocation keeps running, and its container returns to the pool; only the answer
     * has nowhere to go. */
    ef_info("the client of invocation %s went away; it completes unread", ctx->request_id);
    ef_invoke_detach(ctx->inv);
    invoke_ctx_free(ctx);
}

void ef_api_invoke(struct ef_controller *ctl, ef_http_exchange *ex,
                   const struct ef_http_request *req, const char *name, const char *qualifier)
{
    char rid[EF_REQUEST_ID_LEN + 1];
    ef_request_id_new(rid);

    if (qualifier && strcmp(qualifier, "$LATEST") != 0) {
        ef_api_function_not_found(ex, name); /* versions and aliases come later */
        return;
    }
    const char *type = ef_http_request_header(req, "X-Amz-Invocation-Type");
    bool dry_run = false;
    if (type && strcmp(type, "DryRun") == 0) {
        dry_run = true;
    } else if (type && strcmp(type, "RequestResponse") != 0) {
        ef_lambda_error(ex, rid, 400, "InvalidParameterValueException",
                        strcmp(type, "Event") == 0
                            ? "Asynchronous invocation (X-Amz-Invocation-Type: Event) is not "
                              "supported yet; use RequestResponse"
                            : "X-Amz-Invocation-Type must be RequestResponse, Event or DryRun");
        return;
    }

    struct ef_function *fn = NULL;
    ef_error err = {0};
    int r = ef_store_get_function(ctl->store, name, &fn, &err);
    if (r == -ENOENT) {
        ef_api_function_not_found(ex, name);
        return;
    }
    if (r < 0) {
        ef_lambda_error(ex, rid, 500, "ServiceException", "%s", err.msg);
        return;
    }

    /* Lambda accepts only JSON events; an empty body is the empty object. */
    const char *payload = req->body;
    size_t payload_len = req->body_len;
    if (payload_len == 0) {
        payload = "{}";
        payload_len = 2;
    } else {
        cJSON *check = cJSON_ParseWithLength(payload, payload_len);
        bool valid = check != NULL;
        cJSON_Delete(check);
        if (!valid || memchr(payload, '\0', payload_len) != NULL) {
            ef_function_free(fn);
            ef_lambda_error(ex, rid, 400, "InvalidRequestContentException",
                            "Could not parse request body into json: the event must be a JSON "
                            "document");
            return;
        }
    }

    if (dry_run) {
        ef_function_free(fn);
        struct ef_http_header headers[] = {{"x-amzn-RequestId", rid}};
        ef_http_respond(ex, 204, headers, 1, NULL, "", 0);
        return;
    }

    struct invoke_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!ctx || !(ctx->function_name = strdup(name))) {
        free(ctx);
        ef_function_free(fn);
        ef_lambda_error(ex, rid, 500, "ServiceException", "out of memory");
        return;
    }
    ctx->ex = ex;
    memcpy(ctx->request_id, rid, sizeof(rid));
    const char *log_type = ef_http_request_header(req, "X-Amz-Log-Type");
    ctx->want_log = log_type && strcasecmp(log_type, "Tail") == 0;
    ctx->memory_mb = fn->memory_mb;

    r = ef_invoke_start(ctl, fn, rid, payload, payload_len, on_invoke_done, ctx, &ctx->inv, &err);
    if (r < 0) {
        invoke_ctx_free(ctx);
        int status = (r == -ENOTCONN || r == -ESHUTDOWN) ? 503 : 500;
        ef_warn("invocation %s of %s failed: %s", rid, name, err.msg);
        ef_lambda_error(ex, rid, status, "ServiceException", "%s", err.msg);
        return;
    }
    ef_http_exchange_on_abort(ex, on_client_gone, ctx);
}
