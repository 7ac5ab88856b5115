/* Body limits by route (api_limits.h). The routes are recognised here the way api.c routes
 * them, but only as far as the limit needs: a request that api.c then refuses (404, 405) was
 * read with at most the limit of the route it looked like. */
#include "controller/api_limits.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "controller/async_worker.h"
#include "controller/auth.h"
#include "controller/controller.h"
#include "controller/lambda_errors.h"

#define FUNCTIONS_PREFIX "/2015-03-31/functions"
#define V1_PREFIX        "/v1/functions/"

enum body_route {
    ROUTE_OTHER,
    ROUTE_CREATE_FUNCTION,
    ROUTE_UPDATE_CODE,
    ROUTE_INVOKE,
    ROUTE_INVOKE_EVENT,
};

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* True when `rest` is "{name}/{tail}" with a non-empty name. */
static bool name_then(const char *rest, const char *tail)
{
    const char *slash = strchr(rest, '/');
    return slash && slash != rest && strcmp(slash + 1, tail) == 0;
}

static enum body_route classify(const struct ef_http_request *req)
{
    const char *path = req->path;
    bool post = strcmp(req->method, "POST") == 0;
    bool invoke = false;
    if (strcmp(path, FUNCTIONS_PREFIX) == 0 || strcmp(path, FUNCTIONS_PREFIX "/") == 0)
        return post ? ROUTE_CREATE_FUNCTION : ROUTE_OTHER;
    if (has_prefix(path, FUNCTIONS_PREFIX "/")) {
        const char *rest = path + strlen(FUNCTIONS_PREFIX "/");
        if (strcmp(req->method, "PUT") == 0 && name_then(rest, "code"))
            return ROUTE_UPDATE_CODE;
        invoke = post && name_then(rest, "invocations");
    } else if (has_prefix(path, V1_PREFIX)) {
        invoke = post && name_then(path + strlen(V1_PREFIX), "invocations");
    }
    if (!invoke)
        return ROUTE_OTHER;
    /* api_invoke.c reads the first X-Amz-Invocation-Type too, so both agree on the type. */
    const char *type = ef_http_request_header(req, "X-Amz-Invocation-Type");
    return type && strcmp(type, "Event") == 0 ? ROUTE_INVOKE_EVENT : ROUTE_INVOKE;
}

static size_t route_limit(const struct ef_controller *ctl, enum body_route route)
{
    switch (route) {
    case ROUTE_CREATE_FUNCTION:
    case ROUTE_UPDATE_CODE:
        return ctl->max_code_request_size;
    case ROUTE_INVOKE:
        return ctl->max_request_size;
    case ROUTE_INVOKE_EVENT:
        return ctl->max_request_size < EF_ASYNC_MAX_PAYLOAD ? ctl->max_request_size
                                                            : EF_ASYNC_MAX_PAYLOAD;
    case ROUTE_OTHER:
        break;
    }
    return EF_API_SMALL_BODY_LIMIT;
}

/* With --auth-keys, whether the request fails a check that needs no body (no or a malformed
 * signature, an unknown key, a stale date): its body is then not read at all. The open routes
 * (/healthz, /metrics) take no body. */
static bool refused_before_body(const struct ef_controller *ctl, const struct ef_http_request *req,
                                const char **ret_type, ef_error *err)
{
    if (!ctl->auth_keys || strcmp(req->path, "/healthz") == 0 || strcmp(req->path, "/metrics") == 0)
        return false;
    const char *type = NULL;
    return ef_auth_check_head(ctl->auth_keys, req, time(NULL), ret_type ? ret_type : &type, err) ==
           -EACCES;
}

size_t ef_api_body_limit(const struct ef_http_request *req, void *user)
{
    ef_error err = {0};
    if (refused_before_body(user, req, NULL, &err))
        return 0;
    return route_limit(user, classify(req));
}

void ef_api_protocol_error(ef_http_exchange *ex, int status, const char *message, void *user)
{
    const struct ef_controller *ctl = user;
    const struct ef_http_request *req = ef_http_exchange_request(ex);
    /* A body refused because its request is refused anyway: the refusal is the answer. */
    const char *type = NULL;
    ef_error err = {0};
    if (status == 413 && refused_before_body(ctl, req, &type, &err)) {
        ef_info("refused %s %.200s: %s: %s", req->method, req->path, type, err.msg);
        ef_lambda_error(ex, NULL, 403, type, "%s", err.msg);
        return;
    }
    enum body_route route = status == 413 ? classify(req) : ROUTE_OTHER;
    size_t limit = route_limit(ctl, route);
    const char *operation = NULL;
    switch (route) {
    case ROUTE_CREATE_FUNCTION:
        operation = "CreateFunction";
        break;
    case ROUTE_UPDATE_CODE:
        operation = "UpdateFunctionCode";
        break;
    case ROUTE_INVOKE:
        operation = "InvokeFunction";
        break;
    case ROUTE_INVOKE_EVENT:
        /* Below 256 KB the synchronous limit is the one that refused it, as before the event
         * limit could apply. */
        if (limit < EF_ASYNC_MAX_PAYLOAD) {
            operation = "InvokeFunction";
            break;
        }
        {
            const char *cl = ef_http_request_header(req, "Content-Length");
            if (cl)
                ef_lambda_error(ex, NULL, 413, "RequestTooLargeException",
                                "Request must be smaller than %zu bytes for the InvokeFunction "
                                "operation with InvocationType Event (this one has %llu)",
                                limit, strtoull(cl, NULL, 10));
            else
                ef_lambda_error(ex, NULL, 413, "RequestTooLargeException",
                                "Request must be smaller than %zu bytes for the InvokeFunction "
                                "operation with InvocationType Event",
                                limit);
        }
        return;
    case ROUTE_OTHER:
        break;
    }
    if (!operation) {
        ef_lambda_protocol_error(ex, status, message, user);
        return;
    }
    ef_lambda_error(ex, NULL, 413, "RequestTooLargeException",
                    "Request must be smaller than %zu bytes for the %s operation", limit,
                    operation);
}
