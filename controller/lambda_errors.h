/* Service errors in Lambda's wire format: status code, header `x-amzn-ErrorType: <Type>`,
 * header `x-amzn-RequestId`, and a JSON body `{"Type": "User"|"Service", "message": "..."}`
 * (Type is "Service" for 5xx). */
#pragma once

#include <cjson/cJSON.h>

#include "common/http.h"

/* Responds with an error and ends the exchange. `request_id` may be NULL (a new one is made). */
void ef_lambda_error(ef_http_exchange *ex, const char *request_id, int status, const char *type,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The same, adding `"Reason": reason` to the body (429 TooManyRequestsException carries one). */
void ef_lambda_error_reason(ef_http_exchange *ex, const char *request_id, int status,
                            const char *type, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* The http server's on_protocol_error hook: 413 and 431 become RequestTooLargeException, other
 * statuses InvalidRequestContentException. */
void ef_lambda_protocol_error(ef_http_exchange *ex, int status, const char *message, void *user);

/* Responds 200 (or `status`) with a JSON document `json` (consumed) and extra headers. */
void ef_lambda_respond_json(ef_http_exchange *ex, int status, const char *request_id, cJSON *json);
