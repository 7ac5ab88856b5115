/* Handlers of the Lambda Runtime API. */
#define _GNU_SOURCE
#include "rapi/runtime_api.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"

#define API_PREFIX "/2018-06-01/runtime/"
/* An error type longer than this is cut: it ends up in a header of the user-facing API. */
#define ERROR_TYPE_MAX 128
/* A /next poll may wait for hours in a warm idle container, and a handler may run for 15
 * minutes between two requests of the runtime's keep-alive connection. */
#define API_IDLE_TIMEOUT_MS (3600u * 1000u)

struct ef_rapi_waiter {
    struct ef_rapi_waiter *next, *prev;
    ef_http_exchange *ex;
    struct ef_runtime_api *api;
};

enum ef_rapi_route ef_runtime_api_route(const char *method, const char *path, const char **ret_id,
                                        size_t *ret_id_len)
{
    size_t plen = strlen(API_PREFIX);
    if (strncmp(path, API_PREFIX, plen) != 0)
        return EF_RAPI_NOT_FOUND;
    const char *rest = path + plen;
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;

    if (strcmp(rest, "invocation/next") == 0)
        return get ? EF_RAPI_NEXT : EF_RAPI_NOT_FOUND;
    if (strcmp(rest, "init/error") == 0)
        return post ? EF_RAPI_INIT_ERROR : EF_RAPI_NOT_FOUND;
    if (strncmp(rest, "invocation/", 11) != 0 || !post)
        return EF_RAPI_NOT_FOUND;
    const char *id = rest + 11;
    const char *slash = strchr(id, '/');
    if (!slash || slash == id)
        return EF_RAPI_NOT_FOUND;
    enum ef_rapi_route route;
    if (strcmp(slash, "/response") == 0)
        route = EF_RAPI_RESPONSE;
    else if (strcmp(slash, "/error") == 0)
        route = EF_RAPI_ERROR;
    else
        return EF_RAPI_NOT_FOUND;
    *ret_id = id;
    *ret_id_len = (size_t)(slash - id);
    return route;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int ef_runtime_api_decode_id(const char *seg, size_t len, char *buf, size_t size, size_t *ret_len,
                             ef_error *err)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = seg[i];
        if (c == '%') {
            int hi = i + 2 < len ? hex_value(seg[i + 1]) : -1;
            int lo = hi >= 0 ? hex_value(seg[i + 2]) : -1;
            if (lo < 0)
                return ef_error_set(err, -EINVAL,
                                    "the request id in the path has a malformed %%-escape at "
                                    "byte %zu: %% must be followed by two hex digits",
                                    i + 1);
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        /* A longer id is invalid anyway: stop before the buffer ends. */
        if (o + 1 >= size || o >= EF_REQUEST_ID_MAX) {
            o = EF_REQUEST_ID_MAX + 1;
            break;
        }
        buf[o++] = c;
    }
    if (o > EF_REQUEST_ID_MAX || !ef_request_id_valid(buf, o))
        return ef_error_set(err, -EINVAL,
                            "the request id in the path, once %%-decoded, must be 1 to %d "
                            "characters from [A-Za-z0-9._:-]",
                            EF_REQUEST_ID_MAX);
    buf[o] = '\0';
    *ret_len = o;
    return 0;
}

/* Cuts an error type to ERROR_TYPE_MAX bytes of valid UTF-8 on one line: it goes into the
 * function log's REPORT line ("Error Type: ...") and the async queue, where a line break from
 * the function's errorType would forge log lines. Control characters become spaces. */
static char *clean_type(const char *type)
{
    size_t len = strlen(type);
    if (len > ERROR_TYPE_MAX)
        len = ERROR_TYPE_MAX;
    char *clean = ef_utf8_sanitize(type, len, false);
    for (char *p = clean; p && *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    return clean;
}

int ef_runtime_error_doc(const char *body, size_t len, const char *header_type, char **ret_doc,
                         char **ret_type)
{
    cleanup_cjson cJSON *parsed = cJSON_ParseWithLength(body, len);
    bool is_object = cJSON_IsObject(parsed);
    const char *type = "Unhandled";
    if (header_type && header_type[0])
        type = header_type;
    else if (is_object) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(parsed, "errorType");
        if (cJSON_IsString(t) && t->valuestring[0])
            type = t->valuestring;
    }
    cleanup_free char *clean = clean_type(type);
    if (!clean)
        return -ENOMEM;

    cleanup_free char *doc = NULL;
    if (is_object) {
        doc = malloc(len + 1);
        if (!doc)
            return -ENOMEM;
        memcpy(doc, body, len);
        doc[len] = '\0';
    } else {
        cleanup_free char *msg = ef_utf8_sanitize(body, len, false);
        cleanup_cjson cJSON *o = cJSON_CreateObject();
        if (!msg || !o || !cJSON_AddStringToObject(o, "errorMessage", msg) ||
            !cJSON_AddStringToObject(o, "errorType", clean))
            return -ENOMEM;
        doc = cJSON_PrintUnformatted(o);
        if (!doc)
            return -ENOMEM;
    }
    *ret_doc = steal_pointer(&doc);
    *ret_type = steal_pointer(&clean);
    return 0;
}

/* Trace ids need to be unlikely to repeat, not secret: the random bytes for 200 of them are drawn
 * at once, so that an invocation does not cost a getrandom(2). */
#define RANDOM_POOL 4000

static void fill_random(void *buf, size_t len)
{
    static unsigned char pool[RANDOM_POOL];
    static size_t left;
    if (len > sizeof(pool))
        len = sizeof(pool);
    if (left < len && getrandom(pool, sizeof(pool), GRND_NONBLOCK) == (ssize_t)sizeof(pool))
        left = sizeof(pool);
    if (left >= len) {
        left -= len;
        memcpy(buf, pool + left, len);
        return;
    }
    /* No entropy yet (very early boot): trace ids only need to be unlikely to repeat. */
    static unsigned long long state;
    if (!state)
        state = (unsigned long long)time(NULL) ^ ((unsigned long long)getpid() << 20);
    unsigned char *p = buf;
    for (size_t i = 0; i < len; i++) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        p[i] = (unsigned char)(state >> 56);
    }
}

static void hex(char *out, const unsigned char *in, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void ef_make_trace_id(char *buf, size_t len)
{
    unsigned char rnd[20];
    char root[25], parent[17];
    fill_random(rnd, sizeof(rnd));
    hex(root, rnd, 12);
    hex(parent, rnd + 12, 8);
    snprintf(buf, len, "Root=1-%08lx-%s;Parent=%s;Sampled=0",
             (unsigned long)time(NULL) & 0xffffffffUL, root, parent);
}

/* Answers with a JSON body. */
static void respond_json(ef_http_exchange *ex, int status, const char *body)
{
    ef_http_respond(ex, status, NULL, 0, "application/json", body, strlen(body));
}

/* The 202 to the post of an invocation's outcome. A runtime that has pipelined its next poll
 * behind the post waits for that poll's answer anyway: the 202 goes out with it, in one write
 * (and one wake-up of the runtime), rather than on its own. */
static void respond_accepted(ef_http_exchange *ex)
{
    ef_http_exchange_hold_for_next(ex);
    respond_json(ex, 202, "{\"status\":\"OK\"}");
}

/* Answers with Lambda's error shape {"errorMessage","errorType"}. */
static void respond_error(ef_http_exchange *ex, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void respond_error(ef_http_exchange *ex, int status, const char *type, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cleanup_cjson cJSON *o = cJSON_CreateObject();
    cleanup_free char *body = NULL;
    if (o && cJSON_AddStringToObject(o, "errorMessage", msg) &&
        cJSON_AddStringToObject(o, "errorType", type))
        body = cJSON_PrintUnformatted(o);
    respond_json(ex, status, body ? body : "{}");
}

/* Sends an invocation to a /next poll. */
static void hand_out(ef_http_exchange *ex, struct ef_invocation *inv)
{
    char deadline[32], trace[96];
    snprintf(deadline, sizeof(deadline), "%lld", inv->deadline_ms);
    ef_make_trace_id(trace, sizeof(trace));
    struct ef_http_header headers[6] = {
        {"Lambda-Runtime-Aws-Request-Id", inv->request_id},
        {"Lambda-Runtime-Deadline-Ms", deadline},
        {"Lambda-Runtime-Invoked-Function-Arn", inv->arn},
        {"Lambda-Runtime-Trace-Id", trace},
    };
    size_t n = 4;
    /* Lambda sends these two only when the invocation carries them. */
    if (inv->client_context)
        headers[n++] =
            (struct ef_http_header){"Lambda-Runtime-Client-Context", inv->client_context};
    if (inv->cognito_identity)
        headers[n++] =
            (struct ef_http_header){"Lambda-Runtime-Cognito-Identity", inv->cognito_identity};
    ef_debug("invocation %s handed to the runtime", inv->request_id);
    ef_http_respond(ex, 200, headers, n, "application/json", inv->payload, inv->payload_len);
}

static void waiter_unlink(struct ef_runtime_api *api, struct ef_rapi_waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        api->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    free(w);
}

static void on_waiter_abort(ef_http_exchange *ex, void *user)
{
    struct ef_rapi_waiter *w = user;
    (void)ex;
    waiter_unlink(w->api, w);
}

/* on_queued hook: gives queued invocations to parked polls, oldest first, as long as fewer than
 * max_in_flight are in flight. */
static void serve_waiters(void *user)
{
    struct ef_runtime_api *api = user;
    while (api->waiters) {
        struct ef_invocation *inv = ef_invocations_next(api->invs);
        if (!inv)
            return;
        struct ef_rapi_waiter *w = api->waiters;
        ef_http_exchange *ex = w->ex;
        waiter_unlink(api, w);
        hand_out(ex, inv);
    }
}

static void handle_next(struct ef_runtime_api *api, ef_http_exchange *ex)
{
    struct ef_invocation *inv = ef_invocations_next(api->invs);
    if (inv) {
        hand_out(ex, inv);
        return;
    }
    struct ef_rapi_waiter *w = calloc(1, sizeof(*w));
    if (!w) {
        respond_error(ex, 500, "ServiceException", "out of memory");
        return;
    }
    w->ex = ex;
    w->api = api;
    /* Append, so that the oldest poll is served first. */
    struct ef_rapi_waiter **pp = &api->waiters, *prev = NULL;
    while (*pp) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    w->prev = prev;
    *pp = w;
    ef_http_exchange_on_abort(ex, on_waiter_abort, w);
    if (api->on_poll_parked)
        api->on_poll_parked(api->on_poll_parked_user);
}

/* Finds the in-flight invocation or answers the runtime's mistake. */
static struct ef_invocation *lookup(struct ef_runtime_api *api, ef_http_exchange *ex,
                                    const char *id, size_t len)
{
    struct ef_invocation *inv = ef_invocations_find(api->invs, id, len);
    if (inv)
        return inv;
    int shown = len > EF_REQUEST_ID_MAX ? EF_REQUEST_ID_MAX : (int)len;
    if (ef_invocations_finished_recently(api->invs, id, len))
        respond_error(ex, 403, "InvalidStateTransition",
                      "Invocation %.*s already responded: only one response or error is "
                      "accepted per invocation",
                      shown, id);
    else
        respond_error(ex, 400, "InvalidRequestID", "Invalid request ID: %.*s is not in flight",
                      shown, id);
    return NULL;
}

static void handle_response(struct ef_runtime_api *api, ef_http_exchange *ex,
                            const struct ef_http_request *req, const char *id, size_t len)
{
    struct ef_invocation *inv = lookup(api, ex, id, len);
    if (!inv)
        return;
    ef_debug("invocation %s: response of %zu bytes", inv->request_id, req->body_len);
    ef_invocations_finish(api->invs, inv, NULL, req->body, req->body_len);
    respond_accepted(ex);
}

static void handle_error(struct ef_runtime_api *api, ef_http_exchange *ex,
                         const struct ef_http_request *req, const char *id, size_t len)
{
    struct ef_invocation *inv = lookup(api, ex, id, len);
    if (!inv)
        return;
    cleanup_free char *doc = NULL, *type = NULL;
    const char *header = ef_http_request_header(req, "Lambda-Runtime-Function-Error-Type");
    if (ef_runtime_error_doc(req->body, req->body_len, header, &doc, &type) < 0) {
        respond_error(ex, 500, "ServiceException", "out of memory");
        return;
    }
    ef_debug("invocation %s: error %s", inv->request_id, type);
    ef_invocations_finish(api->invs, inv, type, doc, strlen(doc));
    respond_accepted(ex);
}

static void handle_init_error(struct ef_runtime_api *api, ef_http_exchange *ex,
                              const struct ef_http_request *req)
{
    cleanup_free char *doc = NULL, *type = NULL;
    const char *header = ef_http_request_header(req, "Lambda-Runtime-Function-Error-Type");
    if (ef_runtime_error_doc(req->body, req->body_len, header, &doc, &type) < 0) {
        respond_error(ex, 500, "ServiceException", "out of memory");
        return;
    }
    ef_info("the runtime reported an init error: %s: %.300s", type, doc);
    ef_invocations_fail_init(api->invs, type, doc);
    respond_json(ex, 202, "{\"status\":\"OK\"}");
}

static void on_request(ef_http_exchange *ex, const struct ef_http_request *req, void *user)
{
    struct ef_runtime_api *api = user;
    const char *seg = NULL;
    size_t seg_len = 0;
    enum ef_rapi_route route = ef_runtime_api_route(req->method, req->path, &seg, &seg_len);
    char id[EF_REQUEST_ID_MAX + 1];
    size_t id_len = 0;
    if (route == EF_RAPI_RESPONSE || route == EF_RAPI_ERROR) {
        ef_error err = {0};
        if (ef_runtime_api_decode_id(seg, seg_len, id, sizeof(id), &id_len, &err) < 0) {
            respond_error(ex, 400, "InvalidRequestID", "Invalid request ID: %s", err.msg);
            return;
        }
    }
    switch (route) {
    case EF_RAPI_NEXT:
        handle_next(api, ex);
        return;
    case EF_RAPI_RESPONSE:
        handle_response(api, ex, req, id, id_len);
        return;
    case EF_RAPI_ERROR:
        handle_error(api, ex, req, id, id_len);
        return;
    case EF_RAPI_INIT_ERROR:
        handle_init_error(api, ex, req);
        return;
    case EF_RAPI_NOT_FOUND:
        break;
    }
    respond_error(ex, 404, "NotFound", "no Runtime API route for %s %.200s", req->method,
                  req->path);
}

static void respond_protocol_error(ef_http_exchange *ex, int status, const char *message,
                                   struct ef_runtime_api *api)
{
    if (status == 413) {
        /* A response too large for Lambda is the function's error: fail it now, as Lambda does,
         * rather than at its deadline. The refused request's line names the invocation (a
         * /response or /error post); a body refused without one can only be attributed when a
         * single invocation is in flight. */
        const struct ef_http_request *req = ef_http_exchange_request(ex);
        const char *seg = NULL;
        size_t seg_len = 0;
        enum ef_rapi_route route = ef_runtime_api_route(req->method, req->path, &seg, &seg_len);
        char id[EF_REQUEST_ID_MAX + 1];
        size_t id_len = 0;
        bool named = route == EF_RAPI_RESPONSE || route == EF_RAPI_ERROR;
        /* A path that names no valid id attributes the body to nobody. */
        bool attributable =
            !named || ef_runtime_api_decode_id(seg, seg_len, id, sizeof(id), &id_len, NULL) == 0;
        if (attributable && ef_invocations_fail_oversized(api->invs, named ? id : NULL, id_len))
            ef_info("the runtime posted a body above %u bytes: the invocation in flight failed "
                    "with Function.ResponseSizeTooLarge",
                    EF_RESPONSE_MAX);
        respond_error(ex, 413, "RequestEntityTooLarge",
                      "Exceeded maximum allowed payload size (%u bytes).", EF_RESPONSE_MAX);
        return;
    }
    const char *type = "InvalidRequest";
    if (status == 431)
        type = "RequestHeaderFieldsTooLarge";
    respond_error(ex, status, type, "%s", message);
}

static void on_protocol_error(ef_http_exchange *ex, int status, const char *message, void *user)
{
    struct ef_runtime_api *api = user;
    respond_protocol_error(ex, status, message, api);
    /* The answer ends the connection (after a linger): an adopted one is lost now, so that no
     * invocation is handed to it meanwhile. */
    if (api->on_connection_lost)
        api->on_connection_lost(api->on_connection_lost_user);
}

int ef_runtime_api_start(struct ef_runtime_api *api, uv_loop_t *loop, int port,
                         struct ef_invocations *invs, ef_error *err)
{
    memset(api, 0, sizeof(*api));
    api->invs = invs;
    const struct ef_http_server_config config = {
        .max_body = EF_RESPONSE_MAX,
        .idle_timeout_ms = API_IDLE_TIMEOUT_MS,
        .max_connections = 64,
        .on_protocol_error = on_protocol_error,
    };
    int r =
        ef_http_server_listen(loop, "127.0.0.1", port, &config, on_request, api, &api->server, err);
    if (r < 0)
        return r;
    invs->on_queued = serve_waiters;
    invs->on_queued_user = api;
    return 0;
}

/* The request a connection handed over was waiting on: the poll that the new server parks. */
static const char next_poll[] =
    "GET " API_PREFIX "invocation/next HTTP/1.1\r\nHost: handover\r\n\r\n";

static void on_adopted_connection_closed(void *user)
{
    struct ef_runtime_api *api = user;
    if (api->on_connection_lost)
        api->on_connection_lost(api->on_connection_lost_user);
}

int ef_runtime_api_adopt(struct ef_runtime_api *api, uv_loop_t *loop, struct ef_invocations *invs,
                         int fd, void (*on_connection_lost)(void *user), void *user, ef_error *err)
{
    memset(api, 0, sizeof(*api));
    api->invs = invs;
    api->on_connection_lost = on_connection_lost;
    api->on_connection_lost_user = user;
    const struct ef_http_server_config config = {
        .max_body = EF_RESPONSE_MAX,
        .idle_timeout_ms = API_IDLE_TIMEOUT_MS,
        .max_connections = 1,
        .on_protocol_error = on_protocol_error,
        .on_connection_closed = on_adopted_connection_closed,
    };
    int r = ef_http_server_new(loop, &config, on_request, api, &api->server, err);
    if (r < 0) {
        close(fd);
        return r;
    }
    invs->on_queued = serve_waiters;
    invs->on_queued_user = api;
    r = ef_http_server_adopt(api->server, fd, next_poll, sizeof(next_poll) - 1, err);
    if (r < 0) {
        if (r != -ECONNABORTED)
            close(fd);
        ef_runtime_api_close(api);
    }
    return r;
}

int ef_runtime_api_hand_over(struct ef_runtime_api *api, int *ret_fd, ef_error *err)
{
    struct ef_rapi_waiter *w = api->waiters;
    if (!w)
        return ef_error_set(err, -EAGAIN, "the runtime has no /next poll waiting");
    if (w->next)
        return ef_error_set(err, -EBUSY, "the runtime has more than one /next poll waiting");
    if (ef_http_server_connections(api->server) != 1)
        return ef_error_set(err, -EBUSY, "the runtime has %u connections open, not one",
                            ef_http_server_connections(api->server));
    /* A runtime that opens a connection per request would post its answer to this server,
     * which no longer knows the invocation: only one that kept its connection qualifies. */
    if (ef_http_exchange_requests(w->ex) < 2)
        return ef_error_set(err, -EBUSY,
                            "the runtime has not yet reused its connection for a second request");
    int r = ef_http_exchange_detach(w->ex, ret_fd, err);
    if (r < 0)
        return r;
    waiter_unlink(api, w);
    return 0;
}

int ef_runtime_api_take_back(struct ef_runtime_api *api, int fd, ef_error *err)
{
    int r = ef_http_server_adopt(api->server, fd, next_poll, sizeof(next_poll) - 1, err);
    if (r < 0 && r != -ECONNABORTED)
        close(fd);
    return r;
}

int ef_runtime_api_port(const struct ef_runtime_api *api)
{
    return ef_http_server_port(api->server);
}

void ef_runtime_api_close(struct ef_runtime_api *api)
{
    if (api->invs) {
        api->invs->on_queued = NULL;
        api->invs->on_queued_user = NULL;
    }
    if (api->server) {
        ef_http_server_close(api->server);
        api->server = NULL;
    }
}
