/* The controller's HTTP API: routing (api.c) and one file per group of handlers
 * (api_functions.c: CreateFunction, GetFunction; api_invoke.c: Invoke). */
#pragma once

#include <cjson/cJSON.h>

#include "common/http.h"

struct ef_controller;
struct ef_function;

/* The ef_http_handler_cb of the controller; `user` is the struct ef_controller. */
void ef_api_handle(ef_http_exchange *ex, const struct ef_http_request *req, void *user);

/* POST /2015-03-31/functions */
void ef_api_create_function(struct ef_controller *ctl, ef_http_exchange *ex,
                            const struct ef_http_request *req);

/* GET /2015-03-31/functions/{name} */
void ef_api_get_function(struct ef_controller *ctl, ef_http_exchange *ex, const char *name);

/* POST /2015-03-31/functions/{name}/invocations and POST /v1/functions/{name}/invocations.
 * `qualifier` is the version or alias asked for (NULL when none). */
void ef_api_invoke(struct ef_controller *ctl, ef_http_exchange *ex,
                   const struct ef_http_request *req, const char *name, const char *qualifier);

/* Lambda's FunctionConfiguration document for a stored function; NULL when memory runs out. */
cJSON *ef_api_function_configuration(const struct ef_function *fn);

/* Answers 404 ResourceNotFoundException for a function name, in Lambda's words. */
void ef_api_function_not_found(ef_http_exchange *ex, const char *name);
