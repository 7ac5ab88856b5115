/* PutFunctionConcurrency, GetFunctionConcurrency and DeleteFunctionConcurrency: a function's
 * reserved concurrency, stored with the function and shared by all its versions. Reserving 0
 * throttles every invocation (429, as in Lambda); enforcing larger limits is the scheduler's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "controller/api.h"
#include "controller/controller.h"
#include "controller/function_config.h"
#include "controller/lambda_errors.h"
#include "controller/request_id.h"
#include "controller/store.h"
#include "controller/validate.h"

static void respond_concurrency(ef_http_exchange *ex, const char *rid, bool has_value,
                                int64_t value)
{
    cJSON *doc = cJSON_CreateObject();
    if (doc && has_value &&
        !cJSON_AddNumberToObject(doc, "ReservedConcurrentExecutions", (double)value)) {
        cJSON_Delete(doc);
        doc = NULL;
    }
    ef_lambda_respond_json(ex, 200, rid, doc);
}

void ef_api_put_concurrency(struct ef_controller *ctl, ef_http_exchange *ex,
                            const struct ef_http_request *req, const char *name,
                            const char *qualifier)
{
    char rid[EF_REQUEST_ID_LEN + 1];
    ef_request_id_new(rid);
    if (ef_api_reject_qualifier(ex, "PutFunctionConcurrency", name, qualifier) < 0)
        return;
    cleanup_cjson cJSON *body = ef_api_body_object(ex, rid, req, false);
    if (!body)
        return;
    int64_t value = 0;
    if (!ef_json_has(body, "ReservedConcurrentExecutions") ||
        ef_json_get_int(body, "ReservedConcurrentExecutions", &value) < 0) {
        ef_lambda_error(ex, rid, 400, "InvalidParameterValueException",
                        "ReservedConcurrentExecutions (an integer) is required");
        return;
    }

    ef_error err = {0};
    struct ef_function *fn = NULL;
    int r = ef_store_get_function(ctl->store, name, &fn, &err);
    ef_function_free(fn);
    if (r == -ENOENT) {
        ef_api_function_not_found(ex, name);
        return;
    }
    int64_t elsewhere = 0;
    if (r == 0)
        r = ef_store_reserved_concurrency_total(ctl->store, name, &elsewhere, &err);
    if (r < 0) {
        ef_lambda_error(ex, rid, 500, "ServiceException", "%s", err.msg);
        return;
    }
    if (ef_validate_reserved_concurrency(value, elsewhere, &err) < 0) {
        ef_lambda_error(ex, rid, 400, "InvalidParameterValueException", "%s", err.msg);
        return;
    }
    r = ef_store_set_concurrency(ctl->store, name, true, value, &err);
    if (r == -ENOENT) {
        ef_api_function_not_found(ex, name);
        return;
    }
    if (r < 0) {
        ef_lambda_error(ex, rid, 500, "ServiceException", "%s", err.msg);
        return;
    }
    ef_info("reserved concurrency of function %s set to %lld", name, (long long)value);
    respond_concurrency(ex, rid, true, value);
}

void ef_api_get_concurrency(struct ef_controller *ctl, ef_http_exchange *ex, const char *name,
                            const char *qualifier)
{
    if (ef_api_reject_qualifier(ex, "GetFunctionConcurrency", name, qualifier) < 0)
        return;
    struct ef_function *fn = NULL;
    if (ef_api_load_function(ctl, ex, NULL, name, &fn) < 0)
        return;
    respond_concurrency(ex, NULL, fn->has_reserved_concurrency, fn->reserved_concurrency);
    ef_function_free(fn);
}

void ef_api_delete_concurrency(struct ef_controller *ctl, ef_http_exchange *ex, const char *name,
                               const char *qualifier)
{
    if (ef_api_reject_qualifier(ex, "DeleteFunctionConcurrency", name, qualifier) < 0)
        return;
    ef_error err = {0};
    int r = ef_store_set_concurrency(ctl->store, name, false, 0, &err);
    if (r == -ENOENT) {
        ef_api_function_not_found(ex, name);
        return;
    }
    if (r < 0) {
        ef_lambda_error(ex, NULL, 500, "ServiceException", "%s", err.msg);
        return;
    }
    ef_info("reserved concurrency of function %s removed", name);
    char rid[EF_REQUEST_ID_LEN + 1];
    ef_request_id_new(rid);
    struct ef_http_header headers[] = {{"x-amzn-RequestId", rid}};
    ef_http_respond(ex, 204, headers, EF_ARRAY_SIZE(headers), NULL, "", 0);
}
