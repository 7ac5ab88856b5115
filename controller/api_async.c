/* Event invocations, their status and dead letters over HTTP (docs/async.md). */
#include "controller/api_async.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "controller/api.h"
#include "controller/async_worker.h"
#include "controller/controller.h"
#include "controller/lambda_errors.h"
#include "controller/request_id.h"
#include "controller/scheduler.h"
#include "controller/store.h"

#define INVOCATIONS_PREFIX "/v1/invocations/"
#define FUNCTIONS_PREFIX   "/v1/functions/"
#define DEAD_LETTERS       "/dead-letters"
/* Dead letters per page: the default and the most a page holds. */
#define DEAD_LETTERS_PAGE     50
#define DEAD_LETTERS_PAGE_MAX 100

void ef_api_invoke_event(struct ef_controller *ctl, ef_http_exchange *ex, const char *request_id,
                         struct ef_function *fn, const char *payload, size_t payload_len)
{
    if (payload_len > EF_ASYNC_MAX_PAYLOAD) {
        ef_function_free(fn);
        ef_lambda_error(ex, request_id, 413, "RequestTooLargeException",
                        "Request must be smaller than %d bytes for the InvokeFunction operation "
                        "with InvocationType Event (this one has %zu)",
                        EF_ASYNC_MAX_PAYLOAD, payload_len);
        return;
    }
    ef_error err = {0};
    int r = ctl->async ? ef_async_submit(ctl->async, ex, request_id, fn, payload, payload_len, &err)
                       : ef_error_set(&err, -ESHUTDOWN, "asynchronous invocations are not running");
    ef_function_free(fn);
    if (r == 0)
        return; /* answered 202 once committed */
    if (r == -ENOBUFS)
        ef_lambda_error_reason(ex, request_id, 429, "TooManyRequestsException",
                               EF_REASON_ASYNC_QUEUE, "%s", err.msg);
    else if (r == -ESHUTDOWN)
        ef_lambda_error(ex, request_id, 503, "ServiceException", "%s", err.msg);
    else
        ef_lambda_error(ex, request_id, 500, "ServiceException", "%s", err.msg);
}

/* Epoch milliseconds as Lambda's timestamps, "2026-11-27T06:30:00.000+0000". */
static void format_ms(int64_t ms, char out[40])
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 40 - n, ".%03d+0000", (int)(ms % 1000));
}

static bool add_time(cJSON *o, const char *key, int64_t ms)
{
    char buf[40];
    format_ms(ms, buf);
    return cJSON_AddStringToObject(o, key, buf) != NULL;
}

static bool add_string_or_null(cJSON *o, const char *key, const char *s)
{
    return s ? cJSON_AddStringToObject(o, key, s) != NULL : cJSON_AddNullToObject(o, key) != NULL;
}

/* A document the function returned (or an event): embedded as JSON when it is JSON, else as a
 * string; null when absent. */
static bool add_document(cJSON *o, const char *key, const char *text, size_t len)
{
    if (!text)
        return cJSON_AddNullToObject(o, key) != NULL;
    cJSON *doc = cJSON_ParseWithLength(text, len);
    if (!doc)
        doc = cJSON_CreateString(text);
    return doc && cJSON_AddItemToObject(o, key, doc);
}

/* The document shared by the status and the dead-letter listing; NULL when memory runs out. */
static cJSON *event_json(const struct ef_async_event *ev, bool with_payload)
{
    cJSON *o = cJSON_CreateObject();
    bool pending = ev->status == EF_EVENT_QUEUED || ev->status == EF_EVENT_FAILED;
    bool ok = o && cJSON_AddStringToObject(o, "RequestId", ev->request_id) &&
              cJSON_AddStringToObject(o, "FunctionName", ev->function_name) &&
              cJSON_AddStringToObject(o, "Qualifier", ev->qualifier) &&
              cJSON_AddStringToObject(o, "Status", ef_async_status_name(ev->status)) &&
              cJSON_AddNumberToObject(o, "Attempts", (double)ev->attempts) &&
              cJSON_AddNumberToObject(o, "Refusals", (double)ev->refusals) &&
              (!with_payload || add_document(o, "Payload", ev->payload, ev->payload_len)) &&
              add_document(o, "Result", ev->result, ev->result_len) &&
              cJSON_AddNumberToObject(o, "ResultSize", (double)ev->result_size) &&
              add_string_or_null(o, "ErrorType", ev->error_type) &&
              add_string_or_null(o, "ErrorMessage", ev->error_message) &&
              add_string_or_null(o, "Condition", ev->condition) &&
              add_time(o, "CreatedAt", ev->created_ms) &&
              add_time(o, "UpdatedAt", ev->updated_ms) &&
              (!pending || add_time(o, "NextAttemptAt", ev->next_attempt_ms));
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* A request id as this controller makes them: a lower-case UUID. */
static bool valid_request_id(const char *s)
{
    if (strlen(s) != EF_REQUEST_ID_LEN)
        return false;
    for (size_t i = 0; i < EF_REQUEST_ID_LEN; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        char c = s[i];
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

static void get_invocation(struct ef_controller *ctl, ef_http_exchange *ex, const char *id)
{
    if (!valid_request_id(id)) {
        ef_lambda_error(ex, NULL, 400, "InvalidParameterValueException",
                        "'%.60s' is not a request id: an x-amzn-RequestId is a lower-case UUID",
                        id);
        return;
    }
    struct ef_async_event *ev = NULL;
    ef_error err = {0};
    int r = ef_async_queue_get(ef_async_reader(ctl->async), id, &ev, &err);
    if (r == -ENOENT) {
        ef_lambda_error(ex, NULL, 404, "ResourceNotFoundException",
                        "Invocation %s not found: only Event invocations are recorded, and "
                        "succeeded ones only for --async-retention after they ended",
                        id);
        return;
    }
    if (r < 0) {
        ef_lambda_error(ex, NULL, 500, "ServiceException", "%s", err.msg);
        return;
    }
    cJSON *doc = event_json(ev, false);
    ef_async_event_free(ev);
    if (!doc) {
        ef_lambda_error(ex, NULL, 500, "ServiceException", "out of memory");
        return;
    }
    ef_lambda_respond_json(ex, 200, NULL, doc);
}

/* ?limit= (1–100) and ?marker= (the NextMarker of the previous page). Answers 400 and returns -1
 * when either is invalid. */
static int page_params(ef_http_exchange *ex, const struct ef_http_request *req, size_t *ret_limit,
                       int64_t *ret_after)
{
    cleanup_free char *limit = ef_http_query_param(req->query, "limit");
    cleanup_free char *marker = ef_http_query_param(req->query, "marker");
    *ret_limit = DEAD_LETTERS_PAGE;
    *ret_after = 0;
    if (limit) {
        char *end = NULL;
        long v = strtol(limit, &end, 10);
        if (!limit[0] || *end || v < 1 || v > DEAD_LETTERS_PAGE_MAX) {
            ef_lambda_error(ex, NULL, 400, "InvalidParameterValueException",
                            "limit must be a whole number from 1 to %d", DEAD_LETTERS_PAGE_MAX);
            return -1;
        }
        *ret_limit = (size_t)v;
    }
    if (marker) {
        char *end = NULL;
        long long v = strtoll(marker, &end, 10);
        if (!marker[0] || *end || v < 1) {
            ef_lambda_error(ex, NULL, 400, "InvalidParameterValueException",
                            "marker must be the NextMarker of the previous page");
            return -1;
        }
        *ret_after = v;
    }
    return 0;
}

static void list_dead_letters(struct ef_controller *ctl, ef_http_exchange *ex,
                              const struct ef_http_request *req, const char *name,
                              const char *qualifier)
{
    size_t limit;
    int64_t after;
    if (page_params(ex, req, &limit, &after) < 0)
        return;
    ef_async_queue *q = ef_async_reader(ctl->async);
    ef_error err = {0};
    struct ef_async_page page = {0};
    int r = ef_async_queue_dead_letters(q, name, qualifier, after, limit, &page, &err);
    if (r == 0 && page.n == 0 && after == 0) {
        /* An empty list for a name that is neither a function nor in the queue is a 404, as
         * for any other call on an unknown function. */
        struct ef_function *fn = NULL;
        bool known = false;
        r = ef_store_get_function(ctl->store, name, &fn, &err);
        ef_function_free(fn);
        if (r == -ENOENT)
            r = ef_async_queue_has_function(q, name, &known, &err);
        else if (r == 0)
            known = true;
        if (r == 0 && !known) {
            ef_async_page_free(&page);
            ef_api_function_not_found(ex, name);
            return;
        }
    }
    if (r < 0) {
        ef_async_page_free(&page);
        ef_lambda_error(ex, NULL, 500, "ServiceException", "%s", err.msg);
        return;
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON *items = doc ? cJSON_AddArrayToObject(doc, "DeadLetters") : NULL;
    bool ok = items != NULL;
    for (size_t i = 0; ok && i < page.n; i++) {
        cJSON *item = event_json(page.items[i], true);
        ok = item && cJSON_AddItemToArray(items, item);
    }
    if (ok && page.more) {
        char marker[32];
        snprintf(marker, sizeof(marker), "%" PRId64, page.items[page.n - 1]->seq);
        ok = cJSON_AddStringToObject(doc, "NextMarker", marker) != NULL;
    }
    ef_async_page_free(&page);
    if (!ok) {
        cJSON_Delete(doc);
        ef_lambda_error(ex, NULL, 500, "ServiceException", "out of memory");
        return;
    }
    ef_lambda_respond_json(ex, 200, NULL, doc);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

bool ef_api_async_route(struct ef_controller *ctl, ef_http_exchange *ex,
                        const struct ef_http_request *req)
{
    const char *path = req->path;
    bool invocation = strncmp(path, INVOCATIONS_PREFIX, strlen(INVOCATIONS_PREFIX)) == 0;
    bool dead_letters = !invocation &&
                        strncmp(path, FUNCTIONS_PREFIX, strlen(FUNCTIONS_PREFIX)) == 0 &&
                        ends_with(path, DEAD_LETTERS);
    if (!invocation && !dead_letters)
        return false;
    if (strcmp(req->method, "GET") != 0) {
        ef_lambda_error(ex, NULL, 405, "UnrecognizedClientException",
                        "Method %s is not allowed on %.200s; use GET", req->method, path);
        return true;
    }
    if (!ctl->async) {
        ef_lambda_error(ex, NULL, 503, "ServiceException",
                        "asynchronous invocations are not running");
        return true;
    }
    if (invocation) {
        get_invocation(ctl, ex, path + strlen(INVOCATIONS_PREFIX));
        return true;
    }
    const char *seg = path + strlen(FUNCTIONS_PREFIX);
    size_t seg_len = strlen(seg) - strlen(DEAD_LETTERS);
    if (seg_len == 0 || memchr(seg, '/', seg_len)) {
        ef_lambda_error(ex, NULL, 404, "UnrecognizedClientException",
                        "No API operation for %s %.200s", req->method, path);
        return true;
    }
    cleanup_free char *name = NULL;
    cleanup_free char *qualifier = NULL;
    if (ef_api_resolve_function_ref(ex, req, seg, seg_len, &name, &qualifier) < 0)
        return true;
    list_dead_letters(ctl, ex, req, name, qualifier);
    return true;
}
