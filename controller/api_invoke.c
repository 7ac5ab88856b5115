/* Invoke, on Lambda's path and on the EasyFaaS-style /v1 path. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "controller/api.h"
#include "controller/json_body.h"
#include "controller/api_async.h" /* async: the Event branch */
#include "controller/base64.h"
#include "controller/controller.h"
#include "controller/invoke.h"
#include "controller/lambda_errors.h"
#include "controller/request_id.h"
#include "controller/scheduler.h"
#include "controller/store.h"

/* Lambda returns at most the last 4 KB of the log in X-Amz-Log-Result. */
#define LOG_TAIL_MAX 4096
/* Lambda's limit on X-Amz-Client-Context (base64). */
#define CLIENT_CONTEXT_MAX 3583

/* A synchronous invocation waiting for its answer; linked in ctl->api_invocations so that an
 * orderly stop can answer it (ef_api_invoke_stop). */
struct ef_api_invocation {
    struct ef_controller *ctl;
    struct ef_api_invocation *prev, *next;
    bool linked;
    ef_http_exchange *ex;
    char request_id[EF_REQUEST_ID_LEN + 1];
    char *function_name;
    char *version; /* the version that runs, for X-Amz-Executed-Version */
    struct ef_invocation *inv;
    bool want_log;
};

static void invoke_ctx_link(struct ef_api_invocation *ctx)
{
    struct ef_controller *ctl = ctx->ctl;
    ctx->prev = NULL;
    ctx->next = ctl->api_invocations;
    if (ctx->next)
        ctx->next->prev = ctx;
    ctl->api_invocations = ctx;
    ctx->linked = true;
}

static void invoke_ctx_free(struct ef_api_invocation *ctx)
{
    if (ctx->linked) {
        if (ctx->prev)
            ctx->prev->next = ctx->next;
        else
            ctx->ctl->api_invocations = ctx->next;
        if (ctx->next)
            ctx->next->prev = ctx->prev;
    }
    free(ctx->function_name);
    free(ctx->version);
    free(ctx);
}

/* The last 4 KB of the invocation's log entry (START … REPORT, as kept in the function's log),
 * base64-encoded (malloc'd); NULL when there is none or memory runs out. */
static char *log_result(const struct ef_invoke_outcome *o)
{
    if (!o->framed_log)
        return NULL;
    const char *tail = o->framed_log;
    size_t len = strlen(tail);
    if (len > LOG_TAIL_MAX) {
        tail += len - LOG_TAIL_MAX;
        len = LOG_TAIL_MAX;
    }
    return ef_base64_encode(tail, len);
}

/* Appends the code point `cp` as a JSON \u escape (two for a surrogate pair). */
static size_t put_u_escape(char *out, unsigned cp)
{
    if (cp < 0x10000)
        return (size_t)sprintf(out, "\\u%04x", cp);
    cp -= 0x10000;
    return (size_t)sprintf(out, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
}

/* Rewrites compact JSON text (as cJSON prints it: control characters already escaped, other
 * non-ASCII characters as raw UTF-8 inside strings) into printable ASCII by \u-escaping every
 * non-ASCII character, so that it can travel in an HTTP header to the runtime. NULL when the
 * text is not valid UTF-8 or memory runs out. */
static char *json_to_ascii(const char *text)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t len = strlen(text);
    char *out = malloc(len * 6 + 1); /* a 1-byte character grows to at most 6 bytes */
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        unsigned char b = s[i];
        if (b < 0x80) {
            out[o++] = (char)b;
            i++;
            continue;
        }
        size_t n = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc2 ? 2 : 0;
        if (n == 0 || b > 0xf4 || i + n > len) {
            free(out);
            return NULL;
        }
        unsigned cp = b & (0xff >> (n + 1));
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                free(out);
                return NULL;
            }
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        static const unsigned min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            free(out);
            return NULL;
        }
        o += put_u_escape(out + o, cp);
        i += n;
    }
    out[o] = '\0';
    return out;
}

/* X-Amz-Client-Context: up to 3583 bytes of base64 holding a JSON object, handed to the
 * function as Lambda-Runtime-Client-Context. Returns 0 with *ret_json (malloc'd printable-ASCII
 * JSON, or NULL when the header is absent), or -EINVAL with `msg` filled. */
static int client_context_from_header(const struct ef_http_request *req, char **ret_json, char *msg,
                                      size_t msg_len)
{
    *ret_json = NULL;
    const char *h = ef_http_request_header(req, "X-Amz-Client-Context");
    if (!h || !h[0])
        return 0;
    if (strlen(h) > CLIENT_CONTEXT_MAX) {
        snprintf(msg, msg_len,
                 "X-Amz-Client-Context is %zu bytes long; Lambda allows at most %d bytes of "
                 "base64",
                 strlen(h), CLIENT_CONTEXT_MAX);
        return -EINVAL;
    }
    cleanup_free unsigned char *raw = NULL;
    size_t raw_len = 0;
    cleanup_cjson cJSON *doc = NULL;
    if (ef_base64_decode(h, strlen(h), &raw, &raw_len) == 0)
        doc = cJSON_ParseWithLength((const char *)raw, raw_len);
    if (!cJSON_IsObject(doc)) {
        snprintf(msg, msg_len, "X-Amz-Client-Context must be a base64-encoded JSON object");
        return -EINVAL;
    }
    cleanup_free char *compact = cJSON_PrintUnformatted(doc);
    *ret_json = compact ? json_to_ascii(compact) : NULL;
    if (!*ret_json) {
        snprintf(msg, msg_len,
                 "X-Amz-Client-Context must be a base64-encoded JSON object in "
                 "UTF-8");
        return -EINVAL;
    }
    return 0;
}

static void on_invoke_done(const struct ef_invoke_outcome *o, void *user)
{
    struct ef_api_invocation *ctx = user;
    ef_http_exchange *ex = ctx->ex;

    if (o->status == EF_INVOKE_SERVICE_ERROR) {
        ef_warn("invocation %s of %s failed: %s", ctx->request_id, ctx->function_name, o->message);
        if (o->http_status == 429)
            ef_lambda_error_reason(ex, ctx->request_id, 429, o->error_type,
                                   o->reason ? o->reason : EF_REASON_NODE, "%s", o->message);
        else
            ef_lambda_error(ex, ctx->request_id, o->http_status, o->error_type, "%s", o->message);
        invoke_ctx_free(ctx);
        return;
    }

    struct ef_http_header headers[4];
    size_t n = 0;
    headers[n++] = (struct ef_http_header){"X-Amz-Executed-Version", ctx->version};
    headers[n++] = (struct ef_http_header){"x-amzn-RequestId", ctx->request_id};
    if (o->status == EF_INVOKE_FUNCTION_ERROR)
        headers[n++] = (struct ef_http_header){"X-Amz-Function-Error", "Unhandled"};
    cleanup_free char *logb64 = ctx->want_log ? log_result(o) : NULL;
    if (logb64)
        headers[n++] = (struct ef_http_header){"X-Amz-Log-Result", logb64};
    ef_http_respond(ex, 200, headers, n, "application/json", o->payload, o->payload_len);
    invoke_ctx_free(ctx);
}

static void on_client_gone(ef_http_exchange *ex, void *user)
{
    (void)ex;
    struct ef_api_invocation *ctx = user;
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

    const char *type = ef_http_request_header(req, "X-Amz-Invocation-Type");
    bool dry_run = false;
    bool event = type && strcmp(type, "Event") == 0; /* async: queued (api_async.c) */
    if (type && strcmp(type, "DryRun") == 0) {
        dry_run = true;
    } else if (type && !event && strcmp(type, "RequestResponse") != 0) {
        ef_lambda_error(ex, rid, 400, "InvalidParameterValueException",
                        "X-Amz-Invocation-Type must be RequestResponse, Event or DryRun");
        return;
    }

    struct ef_function *fn = NULL;
    ef_error err = {0};
    /* The qualifier names $LATEST or a published version (store.h); there are no aliases. */
    int r = ef_store_get_function_version(ctl->store, name, qualifier, &fn, &err);
    if (r == -ENOENT) {
        bool latest = !qualifier || strcmp(qualifier, EF_VERSION_LATEST) == 0;
        ef_api_version_not_found(ex, name, latest ? NULL : qualifier);
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
        /* The event goes to the function as sent: a NUL in one of its strings is the
         * function's business, but it must be one JSON document. */
        const char *why = NULL;
        cJSON *check = ef_json_parse_body(payload, payload_len, true, &why);
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

    /* async: Event invocations are stored and answered 202 (api_async.c, docs/async.md). */
    if (event) {
        ef_api_invoke_event(ctl, ex, rid, fn, payload, payload_len);
        return;
    }

    char cc_msg[160];
    cleanup_free char *client_context = NULL;
    if (client_context_from_header(req, &client_context, cc_msg, sizeof(cc_msg)) < 0) {
        ef_function_free(fn);
        ef_lambda_error(ex, rid, 400, "InvalidRequestContentException", "%s", cc_msg);
        return;
    }

    if (dry_run) {
        /* The version that would run, as on every invocation. */
        struct ef_http_header headers[] = {{"x-amzn-RequestId", rid},
                                           {"X-Amz-Executed-Version", ef_function_version(fn)}};
        ef_http_respond(ex, 204, headers, 2, NULL, "", 0);
        ef_function_free(fn);
        return;
    }
    /* Reserved concurrency (0 throttles every invocation, as in Lambda), the node's limit and
     * the queues are the scheduler's (scheduler.h). */
    struct ef_api_invocation *ctx = calloc(1, sizeof(*ctx));
    if (!ctx || !(ctx->function_name = strdup(name)) ||
        !(ctx->version = strdup(ef_function_version(fn)))) {
        if (ctx)
            free(ctx->function_name);
        free(ctx);
        ef_function_free(fn);
        ef_lambda_error(ex, rid, 500, "ServiceException", "out of memory");
        return;
    }
    ctx->ctl = ctl;
    ctx->ex = ex;
    memcpy(ctx->request_id, rid, sizeof(rid));
    const char *log_type = ef_http_request_header(req, "X-Amz-Log-Type");
    ctx->want_log = log_type && strcasecmp(log_type, "Tail") == 0;

    const struct ef_invoke_extra extra = {.client_context = client_context};
    invoke_ctx_link(ctx);
    r = ef_invoke_start_ex(ctl, fn, rid, payload, payload_len, &extra, on_invoke_done, ctx,
                           &ctx->inv, &err);
    if (r < 0) {
        invoke_ctx_free(ctx);
        const char *reason = ef_invoke_throttle_reason(r);
        if (reason) {
            ef_info("invocation %s of %s throttled: %s", rid, name, err.msg);
            ef_lambda_error_reason(ex, rid, 429, "TooManyRequestsException", reason, "%s", err.msg);
            return;
        }
        int status = (r == -ENOTCONN || r == -ESHUTDOWN) ? 503 : 500;
        ef_warn("invocation %s of %s failed: %s", rid, name, err.msg);
        ef_lambda_error(ex, rid, status, "ServiceException", "%s", err.msg);
        return;
    }
    ef_http_exchange_on_abort(ex, on_client_gone, ctx);
}

void ef_api_invoke_stop(struct ef_controller *ctl)
{
    while (ctl->api_invocations) {
        struct ef_api_invocation *ctx = ctl->api_invocations;
        /* Its container is about to be destroyed, which would fail it as if the function had
         * crashed; the client learns instead that the service gave up, and may retry. */
        ef_invoke_detach(ctx->inv);
        ef_info("invocation %s of %s is answered 503: the controller is stopping", ctx->request_id,
                ctx->function_name);
        ef_lambda_error(ctx->ex, ctx->request_id, 503, "ServiceException",
                        "the controller is stopping; the invocation was cut off, try again");
        invoke_ctx_free(ctx);
    }
}
