/* Validation of CreateFunction's parameters, on plain values so it is unit-tested without I/O.
 *
 * Every function returns 0 or -EINVAL and fills `err` with the message the user sees, in
 * Lambda's wording where Lambda has one ("Value 'x' at 'runtime' failed to satisfy
 * constraint: ..."). */
#pragma once

#include <cjson/cJSON.h>
#include <stdint.h>

#include "common/error.h"

#define EF_FUNCTION_NAME_MAX     64
#define EF_HANDLER_MAX           128
#define EF_DESCRIPTION_MAX       256
#define EF_MEMORY_MIN_MB         128
#define EF_MEMORY_MAX_MB         10240
#define EF_MEMORY_DEFAULT_MB     128
#define EF_TIMEOUT_MIN_S         1
#define EF_TIMEOUT_MAX_S         900
#define EF_TIMEOUT_DEFAULT_S     3
#define EF_ENVIRONMENT_MAX_BYTES 4096

/* A function name: 1–64 characters of [A-Za-z0-9_-]. */
int ef_validate_function_name(const char *name, ef_error *err);

/* A runtime this pod can run: python3.8 … python3.14, provided, provided.al2,
 * provided.al2023. */
int ef_validate_runtime(const char *runtime, ef_error *err);

/* True for the python3.* runtimes (their handler is "module.function"). */
int ef_runtime_is_python(const char *runtime);

/* A handler: 1–128 non-whitespace characters; for python runtimes "file.function" where the
 * module path may contain '/' and neither part is empty. */
int ef_validate_handler(const char *runtime, const char *handler, ef_error *err);

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
