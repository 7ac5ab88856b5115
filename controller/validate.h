/* Validation of the management API's parameters, on plain values so it is unit-tested without
 * I/O.
 *
 * Every function returns 0 or -EINVAL and fills `err` with the message the user sees, in
 * Lambda's wording where Lambda has one ("Value 'x' at 'runtime' failed to satisfy
 * constraint: ..."). */
#pragma once

#include <cjson/cJSON.h>
#include <stdint.h>

#include "common/error.h"

#define EF_FUNCTION_NAME_MAX     64
#define EF_FUNCTION_REF_MAX      140 /* a name given as a full or partial ARN */
#define EF_QUALIFIER_MAX         128
#define EF_HANDLER_MAX           128
#define EF_DESCRIPTION_MAX       256
#define EF_MEMORY_MIN_MB         128
#define EF_MEMORY_MAX_MB         10240
#define EF_MEMORY_DEFAULT_MB     128
#define EF_TIMEOUT_MIN_S         1
#define EF_TIMEOUT_MAX_S         900
#define EF_TIMEOUT_DEFAULT_S     3
#define EF_ENVIRONMENT_MAX_BYTES 4096
/* Lambda's limit on a zip uploaded in the request (base64 makes the request ~4/3 larger). */
#define EF_CODE_MAX_ZIPPED (50u * 1024 * 1024)
/* ListFunctions and ListVersionsByFunction return at most this many items per page, whatever
 * MaxItems asks for, as Lambda does. */
#define EF_LIST_PAGE_MAX 50
/* Lambda's default account concurrency and the part of it that reservations must leave free:
 * the sum of all reserved concurrency may not exceed 1000 - 100. */
#define EF_ACCOUNT_CONCURRENCY        1000
#define EF_UNRESERVED_CONCURRENCY_MIN 100

/* A function name: 1–64 characters of [A-Za-z0-9_-]. */
int ef_validate_function_name(const char *name, ef_error *err);

/* A runtime this pod can run: python3.8 … python3.14, provided, provided.al2,
 * provided.al2023. */
int ef_validate_runtime(const char *runtime, ef_error *err);

/* True for the python3.* runtimes (their handler is "module.function"). */
int ef_runtime_is_python(const char *runtime);

/* True for the nodejs*.x runtimes (their handler is "file.export"). */
int ef_runtime_is_node(const char *runtime);

/* True for the provided* (custom) runtimes: they run /var/task/bootstrap, and the handler is
 * only passed to it as _HANDLER. */
int ef_runtime_is_custom(const char *runtime);

/* A handler: 1–128 non-whitespace characters; for python and node runtimes "file.function"
 * where the module path may contain '/' and neither part is empty. */
int ef_validate_handler(const char *runtime, const char *handler, ef_error *err);

/* PerExecutionEnvironmentMaxConcurrency: invocations one container serves at once. */
#define EF_CONTAINER_CONCURRENCY_MAX 64

/* PerExecutionEnvironmentMaxConcurrency, 1–EF_CONTAINER_CONCURRENCY_MAX. */
int ef_validate_container_concurrency(int64_t n, ef_error *err);

/* MemorySize in MB, 128–10240. */
int ef_validate_memory(int64_t memory_mb, ef_error *err);

/* Timeout in seconds, 1–900. */
int ef_validate_timeout(int64_t timeout_s, ef_error *err);

/* Environment.Variables: an object (NULL means none) whose keys match [a-zA-Z][a-zA-Z0-9_]*
 * and are not among Lambda's reserved names (AWS_REGION, _HANDLER, ...),
 * whose values are strings, and whose keys and values add up to at most 4 KB. */
int ef_validate_environment(const cJSON *variables, ef_error *err);

/* Description: at most 256 bytes. */
int ef_validate_description(const char *description, ef_error *err);

/* A function reference as the API accepts it in a path or a body: a name ("my-function"), a name
 * with a qualifier ("my-function:1"), a partial ARN ("123456789012:function:my-function[:q]") or
 * a full ARN ("arn:aws:lambda:us-east-1:123456789012:function:my-function[:q]"); at most 140
 * characters, the name itself at most 64. On success *ret_name and *ret_qualifier (NULL when
 * none) are malloc'd. -EINVAL with Lambda's message otherwise; -ENOMEM. */
int ef_parse_function_ref(const char *ref, char **ret_name, char **ret_qualifier, ef_error *err);

/* A qualifier: 1–128 characters of [a-zA-Z0-9$_-]. */
int ef_validate_qualifier(const char *qualifier, ef_error *err);

/* MaxItems of a listing: a decimal integer 1–10000 (pages are then capped at EF_LIST_PAGE_MAX
 * by the caller). */
int ef_parse_max_items(const char *text, int64_t *ret_value, ef_error *err);

/* ReservedConcurrentExecutions: at least 0, and with what other functions reserve
 * (`reserved_elsewhere`) it must leave EF_UNRESERVED_CONCURRENCY_MIN of EF_ACCOUNT_CONCURRENCY
 * unreserved. */
int ef_validate_reserved_concurrency(int64_t value, int64_t reserved_elsewhere, ef_error *err);
