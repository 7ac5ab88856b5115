#include "controller/lambda_errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/cleanup.h"
#include "controller/request_id.h"
#include "rapi/log_capture.h"

static void respond_error(ef_http_exchange *ex, const char *request_id, int status,
                          const char *type, const char *reason, const char *message)
{
    char rid[EF_REQUEST_ID_LEN + 1];
    if (!request_id) {
        ef_request_id_new(rid);
        request_id = rid;
    }
    /* Messages quote what the client sent (a name from the path, a header): bytes that are not
     * UTF-8 would make the JSON body invalid, so they become U+FFFD. */
    cleanup_free char *clean = NULL;
    if (!ef_utf8_is_clean(message, strlen(message)) &&
        (clean = ef_utf8_sanitize(message, strlen(message), false)))
        message = clean;
    cleanup_cjson cJSON *body = cJSON_CreateObject();
    cleanup_free char *text = NULL;
    if (body) {
        cJSON_AddStringToObject(body, "Type", status >= 500 ? "Service" : "User");
        cJSON_AddStringToObject(body, "message", message);
        if (reason)
            cJSON_AddStringToObject(body, "Reason", reason);
        text = cJSON_PrintUnformatted(body);
    }
    struct ef_http_header headers[] = {
        {"x-amzn-ErrorType", type},
        {"x-amzn-RequestId", request_id},
    };
    /* Without memory for the JSON, the status and headers still tell the client what happened. */
    ef_http_respond(ex, status, headers, EF_ARRAY_SIZE(headers), "application/json",
                    text ? text : "{}", text ? strlen(text) : 2);
}

void ef_lambda_error(ef_http_exchange *ex, const char *request_id, int status, const char *type,
                     const char *fmt, ...)
{
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    respond_error(ex, request_id, status, type, NULL, message);
}

void ef_lambda_error_reason(ef_http_exchange *ex, const char *request_id, int status,
                            const char *type, const char *reason, const char *fmt, ...)
{
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    respond_error(ex, request_id, status, type, reason, message);
}

void ef_lambda_protocol_error(ef_http_exchange *ex, int status, const char *message, void *user)
{
    (void)user;
    if (status == 413 || status == 431)
        respond_error(ex, NULL, status, "RequestTooLargeException", NULL, message);
    else
        respond_error(ex, NULL, status, "InvalidRequestContentException", NULL, message);
}

void ef_lambda_respond_json(ef_http_exchange *ex, int status, const char *request_id, cJSON *json)
{
    char rid[EF_REQUEST_ID_LEN + 1];
    if (!request_id) {
        ef_request_id_new(rid);
        request_id = rid;
    }
    cleanup_free char *text = json ? cJSON_PrintUnformatted(json) : NULL;
    cJSON_Delete(json);
    if (!text) {
        respond_error(ex, request_id, 500, "ServiceException", NULL, "out of memory");
        return;
    }
    struct ef_http_header headers[] = {{"x-amzn-RequestId", request_id}};
    ef_http_respond(ex, status, headers, EF_ARRAY_SIZE(headers), "application/json", text,
                    strlen(text));
}
