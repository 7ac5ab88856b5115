#include "controller/invoke.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <uv.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "controller/controller.h"
#include "controller/pool.h"
#include "controller/request_id.h"
#include "controller/store.h"

/* The runner has this long beyond the function's timeout to report on its own before the
 * controller declares the invocation timed out. */
#define INVOKE_GRACE_MS 500

struct ef_invocation {
    struct ef_controller *ctl;
    struct ef_function *fn;
    char *key;
    char request_id[EF_REQUEST_ID_LEN + 1];
    char *payload;
    struct ef_container *c;
    uint64_t t_spawn_ns; /* when a cold start began, 0 when warm */
    uint64_t t_invoke_ns;
    double init_ms;
    ef_invoke_done_cb done; /* NULL once detached */
    void *user;
};

char *ef_function_arn(const char *name)
{
    char *arn = NULL;
    if (asprintf(&arn, "arn:aws:lambda:us-east-1:000000000000:function:%s", name) < 0)
        return NULL;
    return arn;
}

static void invocation_free(struct ef_invocation *inv)
{
    ef_function_free(inv->fn);
    free(inv->key);
    free(inv->payload);
    free(inv);
}

static void complete(struct ef_invocation *inv, const struct ef_invoke_outcome *o)
{
    if (inv->done)
        inv->done(o, inv->user);
    invocation_free(inv);
}

static void complete_service_error(struct ef_invocation *inv, int status, const char *type,
                                   const char *message)
{
    struct ef_invoke_outcome o = {
        .status = EF_INVOKE_SERVICE_ERROR,
        .http_status = status,
        .error_type = type,
        .message = message,
    };
    complete(inv, &o);
}

/* Completes with a function error whose document is {"errorMessage": ..., "errorType": ...}
 * (errorType omitted when NULL, as Lambda does for timeouts). */
static void complete_function_error(struct ef_invocation *inv, double duration_ms,
                                    const char *error_type, const char *message)
{
    cleanup_cjson cJSON *doc = cJSON_CreateObject();
    cleanup_free char *text = NULL;
    if (doc && cJSON_AddStringToObject(doc, "errorMessage", message) &&
        (!error_type || cJSON_AddStringToObject(doc, "errorType", error_type)))
        text = cJSON_PrintUnformatted(doc);
    if (!text) {
        complete_service_error(inv, 500, "ServiceException", "out of memory");
        return;
    }
    struct ef_invoke_outcome o = {
        .status = EF_INVOKE_FUNCTION_ERROR,
        .payload = text,
        .payload_len = strlen(text),
        .duration_ms = duration_ms,
        .init_ms = inv->init_ms,
    };
    complete(inv, &o);
}

static void format_now_iso(char *buf, size_t len)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03dZ", (int)(tv.tv_usec / 1000));
}

static void on_invoke_result(ef_rpc_conn *conn, const cJSON *result,
                             const struct ef_rpc_error *error, void *user)
{
    (void)conn;
    struct ef_invocation *inv = user;
    struct ef_container *c = steal_pointer(&inv->c);
    double duration_ms = (double)(uv_hrtime() - inv->t_invoke_ns) / 1e6;

    if (error && error->code == EF_RPC_ERR_TIMEOUT) {
        char when[64], msg[200];
        format_now_iso(when, sizeof(when));
        snprintf(msg, sizeof(msg), "%s %s Task timed out after %lld.00 seconds", when,
                 inv->request_id, (long long)inv->fn->timeout_s);
        ef_pool_discard(c, "the invocation timed out");
        complete_function_error(inv, duration_ms, NULL, msg);
        return;
    }
    if (error && error->code == EF_RPC_ERR_CLOSED) {
        char msg[256];
        if (c->exit_status)
            snprintf(msg, sizeof(msg), "RequestId: %s Error: Runtime exited with error: %s",
                     inv->request_id, c->exit_status);
        else
            snprintf(msg, sizeof(msg),
                     "RequestId: %s Error: Runtime exited without providing a reason",
                     inv->request_id);
        ef_pool_discard(c, "its runner went away during an invocation");
        complete_function_error(inv, duration_ms, "Runtime.ExitError", msg);
        return;
    }
    if (error) {
        char msg[600];
        snprintf(msg, sizeof(msg), "the runner of container %s refused the invocation: %s", c->id,
                 error->message);
        ef_pool_discard(c, msg);
        complete_service_error(inv, 500, "ServiceException", msg);
        return;
    }

    const cJSON *status = cJSON_GetObjectItemCaseSensitive(result, "status");
    const cJSON *payload = cJSON_GetObjectItemCaseSensitive(result, "payload");
    const cJSON *error_type = cJSON_GetObjectItemCaseSensitive(result, "error_type");
    const cJSON *log = cJSON_GetObjectItemCaseSensitive(result, "log");
    bool ok = cJSON_IsString(status) && strcmp(status->valuestring, "ok") == 0;
    bool failed = cJSON_IsString(status) && strcmp(status->valuestring, "error") == 0;
    if ((!ok && !failed) || !cJSON_IsString(payload)) {
        ef_pool_discard(c, "its runner answered invoke without status or payload");
        complete_service_error(inv, 500, "ServiceException",
                               "the runner's answer to the invocation was malformed");
        return;
    }
    if (failed && cJSON_IsString(error_type) &&
        strcmp(error_type->valuestring, "Runtime.ExitError") == 0)
        ef_pool_discard(c, "its runtime exited");
    else
        ef_pool_release(c);

    struct ef_invoke_outcome o = {
        .status = ok ? EF_INVOKE_OK : EF_INVOKE_FUNCTION_ERROR,
        .payload = payload->valuestring,
        .payload_len = strlen(payload->valuestring),
        .log = cJSON_IsString(log) ? log->valuestring : NULL,
        .duration_ms = duration_ms,
        .init_ms = inv->init_ms,
    };
    complete(inv, &o);
}

/* Sends `invoke` to a BUSY container reserved for this invocation. */
static int send_invoke(struct ef_invocation *inv, struct ef_container *c)
{
    const struct ef_function *fn = inv->fn;
    cleanup_free char *arn = ef_function_arn(fn->name);
    cleanup_cjson cJSON *p = cJSON_CreateObject();
    if (!arn || !p || !cJSON_AddStringToObject(p, "request_id", inv->request_id) ||
        !cJSON_AddStringToObject(p, "payload", inv->payload) ||
        !cJSON_AddNumberToObject(p, "deadline_ms",
                                 (double)(ef_now_epoch_ms() + (uint64_t)fn->timeout_s * 1000)) ||
        !cJSON_AddStringToObject(p, "invoked_function_arn", arn))
        return -ENOMEM;
    if (!c->conn)
        return -EPIPE;
    inv->t_invoke_ns = uv_hrtime();
    unsigned timeout_ms = (unsigned)fn->timeout_s * 1000 + INVOKE_GRACE_MS;
    int r = ef_rpc_call(c->conn, "invoke", steal_pointer(&p), timeout_ms, on_invoke_result, inv);
    if (r < 0)
        return r;
    inv->c = c;
    return 0;
}

static void on_spawned(struct ef_container *c, const ef_error *err, void *user)
{
    struct ef_invocation *inv = user;
    if (!c) {
        switch (err->code) {
        case -ENOTCONN:
        case -ESHUTDOWN:
            complete_service_error(inv, 503, "ServiceException", err->msg);
            break;
        case -ENOSPC:
            complete_service_error(inv, 429, "TooManyRequestsException", err->msg);
            break;
        default:
            complete_service_error(inv, 500, "ServiceException", err->msg);
            break;
        }
        return;
    }
    inv->init_ms = (double)(uv_hrtime() - inv->t_spawn_ns) / 1e6;
    int r = send_invoke(inv, c);
    if (r < 0) {
        char msg[200];
        snprintf(msg, sizeof(msg), "cannot send the invocation to container %s: %s", c->id,
                 strerror(-r));
        ef_pool_discard(c, msg);
        complete_service_error(inv, 500, "ServiceException", msg);
    }
}

int ef_invoke_start(struct ef_controller *ctl, struct ef_function *fn, const char *request_id,
                    const char *payload, size_t payload_len, ef_invoke_done_cb done, void *user,
                    struct ef_invocation **ret_inv, ef_error *err)
{
    struct ef_invocation *inv = calloc(1, sizeof(*inv));
    if (!inv) {
        ef_function_free(fn);
        return ef_error_set(err, -ENOMEM, "out of memory");
    }
    inv->ctl = ctl;
    inv->fn = fn;
    inv->done = done;
    inv->user = user;
    snprintf(inv->request_id, sizeof(inv->request_id), "%s", request_id);
    inv->key = ef_pool_function_key(fn);
    inv->payload = malloc(payload_len + 1);
    if (!inv->key || !inv->payload) {
        invocation_free(inv);
        return ef_error_set(err, -ENOMEM, "out of memory");
    }
    memcpy(inv->payload, payload, payload_len);
    inv->payload[payload_len] = '\0';

    /* Warm path: a container whose runner connection is already closing cannot take the call;
     * it is dropped and the next one tried. */
    struct ef_container *c;
    while ((c = ef_pool_take_idle(&ctl->pool, inv->key)) != NULL) {
        int r = send_invoke(inv, c);
        if (r == 0) {
            *ret_inv = inv;
            return 0;
        }
        if (r == -ENOMEM) {
            ef_pool_release(c);
            invocation_free(inv);
            return ef_error_set(err, -ENOMEM, "out of memory");
        }
        ef_pool_discard(c, "its runner connection is closing");
    }

    inv->t_spawn_ns = uv_hrtime();
    int r = ef_pool_spawn(ctl, fn, inv->key, on_spawned, inv, err);
    if (r < 0) {
        invocation_free(inv);
        return r;
    }
    *ret_inv = inv;
    return 0;
}

void ef_invoke_detach(struct ef_invocation *inv)
{
    inv->done = NULL;
    inv->user = NULL;
}
