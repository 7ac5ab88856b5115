#include "controller/api.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "controller/api_async.h" /* async routes */
#include "controller/auth.h"
#include "controller/controller.h"
#include "controller/function_logs.h"
#include "controller/lambda_errors.h"
#include "controller/metrics.h" /* scheduler: GET /metrics */
#include "controller/metrics_token.h"
#include "controller/validate.h"

#define FUNCTIONS_PREFIX "/2015-03-31/functions"
#define V1_PREFIX        "/v1/functions/"
#define CONCURRENCY_PUT  "/2017-10-31/functions/"
#define CONCURRENCY_GET  "/2019-09-30/functions/"
#define INVOCATIONS      "invocations"

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Percent-decodes `len` bytes of a path segment; NULL when malformed or it decodes to a NUL. */
static char *decode_segment(const char *s, size_t len)
{
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        int hi = i + 2 < len ? hexval((unsigned char)s[i + 1]) : -1;
        int lo = i + 2 < len ? hexval((unsigned char)s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            free(out);
            return NULL;
        }
        out[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    out[o] = '\0';
    return out;
}

static void method_not_allowed(ef_http_exchange *ex, const struct ef_http_request *req,
                               const char *allowed)
{
    ef_lambda_error(ex, NULL, 405, "UnrecognizedClientException",
                    "Method %s is not allowed on %.200s; use %s", req->method, req->path, allowed);
}

static void not_found(ef_http_exchange *ex, const struct ef_http_request *req)
{
    ef_lambda_error(ex, NULL, 404, "UnrecognizedClientException", "No API operation for %s %.200s",
                    req->method, req->path);
}

static void healthz(struct ef_controller *ctl, ef_http_exchange *ex)
{
    cJSON *o = cJSON_CreateObject();
    if (o) {
        cJSON_AddStringToObject(o, "status", "ok");
        cJSON_AddStringToObject(o, "funclet",
                                ef_funclet_connected(ctl->funclet) ? "connected" : "disconnected");
    }
    ef_lambda_respond_json(ex, 200, NULL, o);
}

/* GET /metrics: Prometheus' text format (metrics.h). */
static void metrics(struct ef_controller *ctl, ef_http_exchange *ex)
{
    size_t len = 0;
    cleanup_free char *text = ef_metrics_render(ctl, &len);
    if (!text) {
        ef_lambda_error(ex, NULL, 500, "ServiceException", "out of memory");
        return;
    }
    ef_http_respond(ex, 200, NULL, 0, "text/plain; version=0.0.4; charset=utf-8", text, len);
}

static void runtimes(struct ef_controller *ctl, ef_http_exchange *ex)
{
    ef_lambda_respond_json(ex, 200, NULL, ef_pool_to_json(&ctl->pool));
}

/* Resolves the {name} of a path — a name, "name:qualifier", a partial ARN
 * "123456789012:function:name" or a full ARN — into the function name and its qualifier (from
 * the name or from ?Qualifier=). Answers the request itself and returns -1 when the name is not
 * valid. */
static int resolve_name(ef_http_exchange *ex, const struct ef_http_request *req,
                        const char *segment, size_t len, char **ret_name, char **ret_qualifier)
{
    cleanup_free char *decoded = decode_segment(segment, len);
    if (!decoded) {
        ef_lambda_error(ex, NULL, 400, "InvalidParameterValueException",
                        "The function name in %.200s is not validly percent-encoded", req->path);
        return -1;
    }
    cleanup_free char *name = NULL;
    cleanup_free char *qualifier = NULL;
    ef_error err = {0};
    int r = ef_parse_function_ref(decoded, &name, &qualifier, &err);
    cleanup_free char *q = r == 0 ? ef_http_query_param(req->query, "Qualifier") : NULL;
    if (r == 0 && q && ef_validate_qualifier(q, &err) < 0)
        r = -EINVAL;
    if (r == -ENOMEM) {
        ef_lambda_error(ex, NULL, 500, "ServiceException", "out of memory");
        return -1;
    }
    if (r < 0) {
        ef_lambda_error(ex, NULL, 400, "InvalidParameterValueException", "%s", err.msg);
        return -1;
    }
    if (q && qualifier && strcmp(q, qualifier) != 0) {
        ef_lambda_error(ex, NULL, 400, "InvalidParameterValueException",
                        "The derived qualifier from the function name does not match the "
                        "specified qualifier.");
        return -1;
    }
    *ret_name = steal_pointer(&name);
    *ret_qualifier = q ? steal_pointer(&q) : steal_pointer(&qualifier);
    return 0;
}

/* Splits "{name}[/{tail}]" below a prefix. Returns false (after answering 404) when the name is
 * empty or the tail has more segments. */
static bool split_rest(ef_http_exchange *ex, const struct ef_http_request *req, const char *rest,
                       size_t *ret_seg_len, const char **ret_tail)
{
    const char *slash = strchr(rest, '/');
    *ret_seg_len = slash ? (size_t)(slash - rest) : strlen(rest);
    *ret_tail = slash ? slash + 1 : NULL;
    if (*ret_seg_len == 0 || (*ret_tail && strchr(*ret_tail, '/'))) {
        not_found(ex, req);
        return false;
    }
    return true;
}

static bool is(const struct ef_http_request *req, const char *method)
{
    return strcmp(req->method, method) == 0;
}

/* Routes below /2015-03-31/functions/: "{name}", "{name}/configuration", "{name}/code",
 * "{name}/versions" and "{name}/invocations". */
static void route_function(struct ef_controller *ctl, ef_http_exchange *ex,
                           const struct ef_http_request *req, const char *rest)
{
    size_t seg_len;
    const char *tail;
    if (!split_rest(ex, req, rest, &seg_len, &tail))
        return;
    const char *allowed;
    if (!tail)
        allowed = is(req, "GET") || is(req, "DELETE") ? NULL : "GET or DELETE";
    else if (strcmp(tail, "configuration") == 0)
        allowed = is(req, "GET") || is(req, "PUT") ? NULL : "GET or PUT";
    else if (strcmp(tail, "code") == 0)
        allowed = is(req, "PUT") ? NULL : "PUT";
    else if (strcmp(tail, "versions") == 0)
        allowed = is(req, "GET") || is(req, "POST") ? NULL : "GET or POST";
    else if (strcmp(tail, INVOCATIONS) == 0)
        allowed = is(req, "POST") ? NULL : "POST";
    else {
        not_found(ex, req);
        return;
    }
    if (allowed) {
        method_not_allowed(ex, req, allowed);
        return;
    }
    /* Invocation payloads were held to --max-request-size (or the Event limit) by the server
     * before their body was read (api_limits.c). */
    cleanup_free char *name = NULL;
    cleanup_free char *qualifier = NULL;
    if (resolve_name(ex, req, rest, seg_len, &name, &qualifier) < 0)
        return;
    if (!tail && is(req, "GET"))
        ef_api_get_function(ctl, ex, name, qualifier);
    else if (!tail)
        ef_api_delete_function(ctl, ex, name, qualifier);
    else if (strcmp(tail, "configuration") == 0 && is(req, "GET"))
        ef_api_get_function_configuration(ctl, ex, name, qualifier);
    else if (strcmp(tail, "configuration") == 0)
        ef_api_update_function_configuration(ctl, ex, req, name, qualifier);
    else if (strcmp(tail, "code") == 0)
        ef_api_update_function_code(ctl, ex, req, name, qualifier);
    else if (strcmp(tail, "versions") == 0 && is(req, "GET"))
        ef_api_list_versions(ctl, ex, req, name, qualifier);
    else if (strcmp(tail, "versions") == 0)
        ef_api_publish_version(ctl, ex, req, name, qualifier);
    else
        ef_api_invoke(ctl, ex, req, name, qualifier);
}

/* Routes "{name}/concurrency" below /2017-10-31/functions/ (PUT, DELETE, GET) and
 * /2019-09-30/functions/ (GET, where current SDKs send GetFunctionConcurrency). */
static void route_concurrency(struct ef_controller *ctl, ef_http_exchange *ex,
                              const struct ef_http_request *req, const char *rest, bool get_only)
{
    size_t seg_len;
    const char *tail;
    if (!split_rest(ex, req, rest, &seg_len, &tail))
        return;
    if (!tail || strcmp(tail, "concurrency") != 0) {
        not_found(ex, req);
        return;
    }
    if (get_only ? !is(req, "GET") : !is(req, "GET") && !is(req, "PUT") && !is(req, "DELETE")) {
        method_not_allowed(ex, req, get_only ? "GET" : "PUT, GET or DELETE");
        return;
    }
    cleanup_free char *name = NULL;
    cleanup_free char *qualifier = NULL;
    if (resolve_name(ex, req, rest, seg_len, &name, &qualifier) < 0)
        return;
    if (is(req, "PUT"))
        ef_api_put_concurrency(ctl, ex, req, name, qualifier);
    else if (is(req, "DELETE"))
        ef_api_delete_concurrency(ctl, ex, name, qualifier);
    else
        ef_api_get_concurrency(ctl, ex, name, qualifier);
}

/* POST /v1/functions/{name}/invocations, the EasyFaaS-style invoke. */
static void route_v1_invoke(struct ef_controller *ctl, ef_http_exchange *ex,
                            const struct ef_http_request *req, const char *rest)
{
    size_t seg_len;
    const char *tail;
    if (!split_rest(ex, req, rest, &seg_len, &tail))
        return;
    if (!tail || strcmp(tail, INVOCATIONS) != 0) {
        not_found(ex, req);
        return;
    }
    if (!is(req, "POST")) {
        method_not_allowed(ex, req, "POST");
        return;
    }
    cleanup_free char *name = NULL;
    cleanup_free char *qualifier = NULL;
    if (resolve_name(ex, req, rest, seg_len, &name, &qualifier) < 0)
        return;
    ef_api_invoke(ctl, ex, req, name, qualifier);
}

/* GET /v1/functions/{name}/logs: the function's log (function_logs.h, docs/logs.md). */
static void route_logs(struct ef_controller *ctl, ef_http_exchange *ex,
                       const struct ef_http_request *req, const char *rest)
{
    size_t len = strlen(rest);
    size_t seg_len = len > strlen("/logs") ? len - strlen("/logs") : 0;
    if (seg_len == 0 || memchr(rest, '/', seg_len)) {
        not_found(ex, req);
        return;
    }
    if (strcmp(req->method, "GET") != 0) {
        method_not_allowed(ex, req, "GET");
        return;
    }
    cleanup_free char *name = NULL;
    cleanup_free char *qualifier = NULL;
    if (resolve_name(ex, req, rest, seg_len, &name, &qualifier) < 0)
        return;
    ef_api_function_logs(ctl, ex, req, name);
}

/* With --auth-keys, every request but the probes (/healthz, /metrics: what load balancers and
 * Prometheus scrape, unsigned) must carry a valid SigV4 signature. With --metrics-token,
 * /metrics needs that bearer token (or a signature). Answers 403 and returns false otherwise. */
static bool authenticated(struct ef_controller *ctl, ef_http_exchange *ex,
                          const struct ef_http_request *req)
{
    bool metrics = strcmp(req->path, "/metrics") == 0;
    if (metrics && ctl->metrics_token) {
        enum ef_metrics_token_check check = ef_metrics_token_check(ctl->metrics_token, req);
        if (check == EF_METRICS_TOKEN_OK)
            return true;
        /* Another scheme may still be a valid signature. */
        if (!ctl->auth_keys || check != EF_METRICS_TOKEN_OTHER) {
            bool missing = check == EF_METRICS_TOKEN_MISSING;
            ef_info("refused %s %.200s: %s", req->method, req->path,
                    missing ? "no bearer token" : "not the bearer token of --metrics-token");
            if (!missing)
                ef_lambda_error(ex, NULL, 403, "UnrecognizedClientException",
                                "The bearer token is not the one GET /metrics needs");
            else
                ef_lambda_error(ex, NULL, 403, "MissingAuthenticationTokenException",
                                "Missing Authentication Token: GET /metrics needs "
                                "'Authorization: Bearer <token>'");
            return false;
        }
    } else if (!ctl->auth_keys || strcmp(req->path, "/healthz") == 0 || metrics) {
        return true;
    }
    const char *type = NULL;
    ef_error err = {0};
    int r = ef_auth_verify(ctl->auth_keys, req, time(NULL), &type, &err);
    if (r == 0)
        return true;
    if (r == -EACCES) {
        ef_info("refused %s %.200s: %s: %s", req->method, req->path, type, err.msg);
        ef_lambda_error(ex, NULL, 403, type, "%s", err.msg);
    } else {
        ef_lambda_error(ex, NULL, 500, "ServiceException", "%s", err.msg);
    }
    return false;
}

void ef_api_handle(ef_http_exchange *ex, const struct ef_http_request *req, void *user)
{
    struct ef_controller *ctl = user;
    const char *path = req->path;

    if (!authenticated(ctl, ex, req))
        return;
    const char *why = NULL;
    if (!ef_http_query_valid(req->query, &why)) {
        ef_lambda_error(ex, NULL, 400, "InvalidParameterValueException", "%s", why);
        return;
    }
    if (strcmp(path, "/healthz") == 0) {
        if (strcmp(req->method, "GET") != 0)
            method_not_allowed(ex, req, "GET");
        else
            healthz(ctl, ex);
    } else if (strcmp(path, "/metrics") == 0) {
        if (strcmp(req->method, "GET") != 0)
            method_not_allowed(ex, req, "GET");
        else
            metrics(ctl, ex);
    } else if (strcmp(path, "/v1/runtimes") == 0) {
        if (strcmp(req->method, "GET") != 0)
            method_not_allowed(ex, req, "GET");
        else
            runtimes(ctl, ex);
    } else if (strcmp(path, FUNCTIONS_PREFIX) == 0 || strcmp(path, FUNCTIONS_PREFIX "/") == 0) {
        if (is(req, "POST"))
            ef_api_create_function(ctl, ex, req);
        else if (is(req, "GET"))
            ef_api_list_functions(ctl, ex, req);
        else
            method_not_allowed(ex, req, "GET or POST");
    } else if (strncmp(path, FUNCTIONS_PREFIX "/", strlen(FUNCTIONS_PREFIX "/")) == 0) {
        route_function(ctl, ex, req, path + strlen(FUNCTIONS_PREFIX "/"));
    } else if (strncmp(path, CONCURRENCY_PUT, strlen(CONCURRENCY_PUT)) == 0) {
        route_concurrency(ctl, ex, req, path + strlen(CONCURRENCY_PUT), false);
    } else if (strncmp(path, CONCURRENCY_GET, strlen(CONCURRENCY_GET)) == 0) {
        route_concurrency(ctl, ex, req, path + strlen(CONCURRENCY_GET), true);
    } else if (ef_api_async_route(ctl, ex, req)) {
        /* async: /v1/invocations/{id}, /v1/functions/{name}/dead-letters (api_async.c) */
    } else if (strncmp(path, V1_PREFIX, strlen(V1_PREFIX)) == 0 && strlen(path) > 5 &&
               strcmp(path + strlen(path) - 5, "/logs") == 0) {
        route_logs(ctl, ex, req, path + strlen(V1_PREFIX));
    } else if (strncmp(path, V1_PREFIX, strlen(V1_PREFIX)) == 0) {
        route_v1_invoke(ctl, ex, req, path + strlen(V1_PREFIX));
    } else {
        not_found(ex, req);
    }
}

/* async: the resolver, for the routes of api_async.c. */
int ef_api_resolve_function_ref(ef_http_exchange *ex, const struct ef_http_request *req,
                                const char *segment, size_t len, char **ret_name,
                                char **ret_qualifier)
{
    return resolve_name(ex, req, segment, len, ret_name, ret_qualifier);
}
