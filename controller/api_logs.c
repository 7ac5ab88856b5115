/* GET /v1/functions/{name}/logs?tail=N: the last lines of a function's log (docs/logs.md). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "controller/api.h"
#include "controller/controller.h"
#include "controller/function_logs.h"
#include "controller/lambda_errors.h"
#include "controller/store.h"

#define DEFAULT_TAIL 100

/* Parses ?tail=N: 1..EF_FUNCTION_LOGS_MAX_TAIL, DEFAULT_TAIL when absent. */
static int parse_tail(const char *query, size_t *ret)
{
    cleanup_free char *v = ef_http_query_param(query, "tail");
    if (!v) {
        *ret = DEFAULT_TAIL;
        return 0;
    }
    if (!v[0] || strlen(v) > 6)
        return -EINVAL;
    size_t n = 0;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        n = n * 10 + (size_t)(*p - '0');
    }
    if (n < 1 || n > EF_FUNCTION_LOGS_MAX_TAIL)
        return -EINVAL;
    *ret = n;
    return 0;
}

void ef_api_function_logs(struct ef_controller *ctl, ef_http_exchange *ex,
                          const struct ef_http_request *req, const char *name)
{
    size_t lines;
    if (parse_tail(req->query, &lines) < 0) {
        ef_lambda_error(ex, NULL, 400, "InvalidParameterValueException",
                        "tail must be a number of lines from 1 to %d", EF_FUNCTION_LOGS_MAX_TAIL);
        return;
    }
    if (!ctl->logs) {
        ef_lambda_error(ex, NULL, 500, "ServiceException", "the log store is not available");
        return;
    }
    ef_error err = {0};
    cleanup_free char *text = NULL;
    size_t len = 0;
    int r = ef_function_logs_tail(ctl->logs, name, lines, &text, &len, &err);
    if (r == -ENOENT) {
        /* A function that exists but never ran has an empty log; an unknown name is a 404.
         * The log of a deleted function stays readable, as Lambda's log groups do. */
        struct ef_function *fn = NULL;
        ef_error serr = {0};
        int s = ef_store_get_function(ctl->store, name, &fn, &serr);
        ef_function_free(fn);
        if (s == -ENOENT) {
            ef_api_function_not_found(ex, name);
            return;
        }
        if (s < 0) {
            ef_lambda_error(ex, NULL, 500, "ServiceException", "%s", serr.msg);
            return;
        }
        r = 0;
    }
    if (r < 0) {
        ef_warn("cannot read the log of function %s: %s", name, err.msg);
        ef_lambda_error(ex, NULL, 500, "ServiceException", "cannot read the log: %s", err.msg);
        return;
    }
    ef_http_respond(ex, 200, NULL, 0, "text/plain; charset=utf-8", text ? text : "", len);
}
