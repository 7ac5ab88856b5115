/* The controller's HTTP API: authentication and routing (api.c) and one file per group of
 * handlers: api_functions.c (CreateFunction, GetFunction, GetFunctionConfiguration,
 * ListFunctions, DeleteFunction), api_update.c (UpdateFunctionCode,
 * UpdateFunctionConfiguration), api_versions.c (PublishVersion, ListVersionsByFunction),
 * api_concurrency.c (Put/Get/DeleteFunctionConcurrency), api_invoke.c (Invoke).
 *
 * Handlers receive the function's name and the qualifier already parsed from the path (a name,
 * "name:qualifier", a partial or a full ARN) and the ?Qualifier= query; `qualifier` is NULL
 * when neither gave one. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/http.h"

struct ef_controller;
struct ef_function;
struct ef_function_page;

/* The ef_http_handler_cb of the controller; `user` is the struct ef_controller. */
void ef_api_handle(ef_http_exchange *ex, const struct ef_http_request *req, void *user);

/* POST /2015-03-31/functions */
void ef_api_create_function(struct ef_controller *ctl, ef_http_exchange *ex,
                            const struct ef_http_request *req);

/* GET /2015-03-31/functions/ (?Marker=, ?MaxItems=, ?FunctionVersion=ALL) */
void ef_api_list_functions(struct ef_controller *ctl, ef_http_exchange *ex,
                           const struct ef_http_request *req);

/* GET /2015-03-31/functions/{name} */
void ef_api_get_function(struct ef_controller *ctl, ef_http_exchange *ex, const char *name,
                         const char *qualifier);

/* GET /2015-03-31/functions/{name}/configuration */
void ef_api_get_function_configuration(struct ef_controller *ctl, ef_http_exchange *ex,
                                       const char *name, const char *qualifier);

/* DELETE /2015-03-31/functions/{name}; with a version qualifier, deletes that version only. */
void ef_api_delete_function(struct ef_controller *ctl, ef_http_exchange *ex, const char *name,
                            const char *qualifier);

/* PUT /2015-03-31/functions/{name}/code */
void ef_api_update_function_code(struct ef_controller *ctl, ef_http_exchange *ex,
                                 const struct ef_http_request *req, const char *name,
                                 const char *qualifier);

/* PUT /2015-03-31/functions/{name}/configuration */
void ef_api_update_function_configuration(struct ef_controller *ctl, ef_http_exchange *ex,
                                          const struct ef_http_request *req, const char *name,
                                          const char *qualifier);

/* POST /2015-03-31/functions/{name}/versions */
void ef_api_publish_version(struct ef_controller *ctl, ef_http_exchange *ex,
                            const struct ef_http_request *req, const char *name,
                            const char *qualifier);

/* GET /2015-03-31/functions/{name}/versions (?Marker=, ?MaxItems=) */
void ef_api_list_versions(struct ef_controller *ctl, ef_http_exchange *ex,
                          const struct ef_http_request *req, const char *name,
                          const char *qualifier);

/* PUT /2017-10-31/functions/{name}/concurrency */
void ef_api_put_concurrency(struct ef_controller *ctl, ef_http_exchange *ex,
                            const struct ef_http_request *req, const char *name,
                            const char *qualifier);

/* GET /2019-09-30/functions/{name}/concurrency (and the 2017-10-31 path) */
void ef_api_get_concurrency(struct ef_controller *ctl, ef_http_exchange *ex, const char *name,
                            const char *qualifier);

/* DELETE /2017-10-31/functions/{name}/concurrency */
void ef_api_delete_concurrency(struct ef_controller *ctl, ef_http_exchange *ex, const char *name,
                               const char *qualifier);

/* POST /2015-03-31/functions/{name}/invocations and POST /v1/functions/{name}/invocations.
 * `qualifier` is the version or alias asked for (NULL when none). */
void ef_api_invoke(struct ef_controller *ctl, ef_http_exchange *ex,
                   const struct ef_http_request *req, const char *name, const char *qualifier);

/* Answers every synchronous invocation still waiting with 503 ServiceException ("the controller
 * is stopping") and lets go of it; the invocations themselves are detached (invoke.h). Called by
 * an orderly stop before the containers are destroyed. */
void ef_api_invoke_stop(struct ef_controller *ctl);

/* Lambda's FunctionConfiguration document for a stored function version (FunctionArn qualified
 * for a numbered version); NULL when memory runs out. */
cJSON *ef_api_function_configuration(const struct ef_function *fn);

/* Resolves the percent-encoded {name} segment of a path (`len` bytes: a name, "name:qualifier",
 * a partial or a full ARN) and ?Qualifier= into the function name and qualifier (NULL when none),
 * both malloc'd. Answers 400 itself and returns -1 when they are not valid. */
int ef_api_resolve_function_ref(ef_http_exchange *ex, const struct ef_http_request *req,
                                const char *segment, size_t len, char **ret_name,
                                char **ret_qualifier);

/* Answers 404 ResourceNotFoundException for a function name, in Lambda's words. */
void ef_api_function_not_found(ef_http_exchange *ex, const char *name);

/* Reads $LATEST of function `name` into *ret_fn (free it with ef_function_free). Answers 404
 * (no such function) or 500 (the store failed; `rid` names the request) itself and returns -1;
 * 0 when the function was read. */
int ef_api_load_function(struct ef_controller *ctl, ef_http_exchange *ex, const char *rid,
                         const char *name, struct ef_function **ret_fn);

/* In a handler whose request id is `rid`: answers 400 InvalidParameterValueException
 * "<field> must be <type>" and returns from the handler. */
#define EF_API_BAD_TYPE(field, type)                                                               \
    do {                                                                                           \
        ef_lambda_error(ex, rid, 400, "InvalidParameterValueException", "%s must be " type,        \
                        field);                                                                    \
        return;                                                                                    \
    } while (0)

/* Answers 404 ResourceNotFoundException for a qualified function ("…:function:name:7"), or for
 * the function itself when `qualifier` is NULL. */
void ef_api_version_not_found(ef_http_exchange *ex, const char *name, const char *qualifier);

/* Answers 400 when a call that works on $LATEST only (or on the function as a whole) was given a
 * qualifier other than $LATEST; returns -1 then, 0 when the call may proceed. */
int ef_api_reject_qualifier(ef_http_exchange *ex, const char *operation, const char *name,
                            const char *qualifier);

/* Parses the management call's body as one JSON object (json_body.h: nothing after it, no NUL in
 * its strings); an empty body is {} when `empty_is_object`. Answers 400
 * InvalidRequestContentException and returns NULL otherwise. */
cJSON *ef_api_body_object(ef_http_exchange *ex, const char *rid, const struct ef_http_request *req,
                          bool empty_is_object);

/* Discards the idle warm containers of function `name` whose identity no longer exists (its code
 * or configuration was updated, a version was deleted, the function was deleted), then queues a
 * collection of the code nothing refers to any more. Busy containers finish their invocation
 * first (their code is kept until a later collection). */
void ef_api_function_changed(struct ef_controller *ctl, const char *name);

/* Decodes a base64 ZipFile. Answers the request (400 for invalid base64 or an empty zip, 413
 * beyond Lambda's 50 MB zipped) and returns -1, or returns 0 with the malloc'd zip. */
int ef_api_decode_zip(ef_http_exchange *ex, const char *request_id, const char *b64,
                      unsigned char **ret_zip, size_t *ret_len);

/* Reads a listing's MaxItems (default and cap EF_LIST_PAGE_MAX); answers 400 and returns -1 when
 * it is invalid. */
int ef_api_page_size(ef_http_exchange *ex, const struct ef_http_request *req, size_t *ret_size);

/* Parses a listing's Marker, "<name>" or "<name>:<version>" as the listings hand them out in
 * NextMarker (version 0 is $LATEST). Answers 400 and returns -1 when it is not one. */
int ef_api_parse_marker(ef_http_exchange *ex, const char *marker, char **ret_name,
                        int64_t *ret_version);

/* Answers a listing page (consumed) as {"<key>": [FunctionConfiguration...], "NextMarker": …};
 * the marker carries the version when `marker_with_version`. */
void ef_api_respond_page(ef_http_exchange *ex, struct ef_function_page *page, const char *key,
                         bool qualify_latest, bool marker_with_version);
