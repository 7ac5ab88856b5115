#include "controller/api.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "controller/controller.h"
#include "controller/lambda_errors.h"
#include "controller/validate.h"

#define FUNCTIONS_PREFIX "/2015-03-31/functions"
#define V1_PREFIX        "/v1/functions/"
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

static void runtimes(struct ef_controller *ctl, ef_http_exchange *ex)
{
    ef_lambda_respond_json(ex, 200, NULL, ef_pool_to_json(&ctl->pool));
}

/* Resolves the {name} of a path — a name, "name:qualifier", a partial ARN
 * "123456789012:function:name" or a full ARN — into the function name and its qualifier.
 * Answers the request itself and returns -1 when the name is not valid. */
static int resolve_name(ef_http_exchange *ex, const struct ef_http_request *req,
                        const char *segment, size_t len, char **ret_name, char **ret_qualifier)
{
    cleanup_free char *decoded = decode_segment(segment, len);
    if (!decoded) {
        ef_lambda_error(ex, NULL, 400, "InvalidParameterValueException",
                        "The function name in %.200s is not validly percent-encoded", req->path);
        return -1;
    }
    char *name = decoded;
    const char *marker = strstr(name, ":function:");
    if (marker)
        name = (char *)marker + strlen(":function:");
    char *colon = strchr(name, ':');
    const char *qualifier = NULL;
    if (colon) {
        *colon = '\0';
        qualifier = colon + 1;
    }
    ef_error err = {0};
    if (ef_validate_function_name(name, &err) < 0) {
        ef_lambda_error(ex, NULL, 400, "InvalidParameterValueException", "%s", err.msg);
        return -1;
    }
    cleanup_free char *q = ef_http_query_param(req->query, "Qualifier");
    if (q && qualifier && strcmp(q, qualifier) != 0) {
        ef_lambda_error(ex, NULL, 400, "InvalidParameterValueException",
                        "The derived qualifier from the function name does not match the "
                        "specified qualifier.");
        return -1;
    }
    *ret_name = strdup(name);
    *ret_qualifier = q ? steal_pointer(&q) : qualifier ? strdup(qualifier) : NULL;
    if (!*ret_name) {
        free(*ret_qualifier);
        ef_lambda_error(ex, NULL, 500, "ServiceException", "out of memory");
        return -1;
    }
    return 0;
}

/* Routes "{name}" and "{name}/invocations" below /2015-03-31/functions/ or /v1/functions/. */
static void route_function(struct ef_controller *ctl, ef_http_exchange *ex,
                           const struct ef_http_request *req, const char *rest, bool v1)
{
    const char *slash = strchr(rest, '/');
    size_t seg_len = slash ? (size_t)(slash - rest) : strlen(rest);
    const char *tail = slash ? slash + 1 : NULL;
    bool invocations = tail && strcmp(tail, INVOCATIONS) == 0;

    if (seg_len == 0 || (tail && !invocations) || (v1 && !invocations)) {
        not_found(ex, req);
        return;
    }
    bool is_post = strcmp(req->method, "POST") == 0;
    bool is_get = strcmp(req->method, "GET") == 0;
    if (invocations ? !is_post : !is_get) {
        method_not_allowed(ex, req, invocations ? "POST" : "GET");
        return;
    }

    cleanup_free char *name = NULL;
    cleanup_free char *qualifier = NULL;
    if (resolve_name(ex, req, rest, seg_len, &name, &qualifier) < 0)
        return;
    if (invocations)
        ef_api_invoke(ctl, ex, req, name, qualifier);
    else if (qualifier && strcmp(qualifier, "$LATEST") != 0)
        ef_api_function_not_found(ex, name); /* versions and aliases come later */
    else
        ef_api_get_function(ctl, ex, name);
}

void ef_api_handle(ef_http_exchange *ex, const struct ef_http_request *req, void *user)
{
    struct ef_controller *ctl = user;
    const char *path = req->path;

    if (strcmp(path, "/healthz") == 0) {
        if (strcmp(req->method, "GET") != 0)
            method_not_allowed(ex, req, "GET");
        else
            healthz(ctl, ex);
    } else if (strcmp(path, "/v1/runtimes") == 0) {
        if (strcmp(req->method, "GET") != 0)
            method_not_allowed(ex, req, "GET");
        else
            runtimes(ctl, ex);
    } else if (strcmp(path, FUNCTIONS_PREFIX) == 0 || strcmp(path, FUNCTIONS_PREFIX "/") == 0) {
        if (strcmp(req->method, "POST") != 0)
            method_not_allowed(ex, req, "POST");
        else
            ef_api_create_function(ctl, ex, req);
    } else if (strncmp(path, FUNCTIONS_PREFIX "/", strlen(FUNCTIONS_PREFIX "/")) == 0) {
        route_function(ctl, ex, req, path + strlen(FUNCTIONS_PREFIX "/"), false);
    } else if (strncmp(path, V1_PREFIX, strlen(V1_PREFIX)) == 0) {
        route_function(ctl, ex, req, path + strlen(V1_PREFIX), true);
    } else {
        not_found(ex, req);
    }
}
