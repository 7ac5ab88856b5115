#include "controller/validate.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

static const char *const runtimes[] = {
    "python3.8",  "python3.9",    "python3.10",      "python3.11", "python3.12",
    "python3.13", "python3.14",   "nodejs18.x",      "nodejs20.x", "nodejs22.x",
    "provided",   "provided.al2", "provided.al2023",
};

#define RUNTIME_LIST                                                                               \
    "[python3.8, python3.9, python3.10, python3.11, python3.12, python3.13, python3.14, "          \
    "nodejs18.x, nodejs20.x, nodejs22.x, provided, provided.al2, provided.al2023]"

int ef_validate_function_name(const char *name, ef_error *err)
{
    if (!name || !*name)
        return ef_error_set(err, -EINVAL, "FunctionName is required");
    size_t len = strlen(name);
    if (len > EF_FUNCTION_NAME_MAX)
        return ef_error_set(err, -EINVAL,
                            "1 validation error detected: Value '%.80s...' at 'functionName' "
                            "failed to satisfy constraint: Member must have length less than or "
                            "equal to %d",
                            name, EF_FUNCTION_NAME_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!isalnum(c) && c != '_' && c != '-')
            return ef_error_set(err, -EINVAL,
                                "1 validation error detected: Value '%s' at 'functionName' failed "
                                "to satisfy constraint: Member must satisfy regular expression "
                                "pattern: [a-zA-Z0-9-_]+",
                                name);
    }
    return 0;
}

int ef_runtime_is_python(const char *runtime)
{
    return runtime && strncmp(runtime, "python3.", 8) == 0;
}

int ef_validate_runtime(const char *runtime, ef_error *err)
{
    if (!runtime || !*runtime)
        return ef_error_set(err, -EINVAL, "Runtime is required; valid runtimes: " RUNTIME_LIST);
    for (size_t i = 0; i < sizeof(runtimes) / sizeof(runtimes[0]); i++)
        if (strcmp(runtime, runtimes[i]) == 0)
            return 0;
    return ef_error_set(err, -EINVAL,
                        "1 validation error detected: Value '%.64s' at 'runtime' failed to "
                        "satisfy constraint: Member must satisfy enum value set: " RUNTIME_LIST,
                        runtime);
}

int ef_validate_handler(const char *runtime, const char *handler, ef_error *err)
{
    if (!handler || !*handler)
        return ef_error_set(err, -EINVAL, "Handler is required for runtime %s", runtime);
    size_t len = strlen(handler);
    if (len > EF_HANDLER_MAX)
        return ef_error_set(err, -EINVAL,
                            "1 validation error detected: Value at 'handler' failed to satisfy "
                            "constraint: Member must have length less than or equal to %d",
                            EF_HANDLER_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)handler[i];
        if (isspace(c) || iscntrl(c))
            return ef_error_set(err, -EINVAL,
                                "1 validation error detected: Value '%s' at 'handler' failed to "
                                "satisfy constraint: Member must satisfy regular expression "
                                "pattern: [^\\s]+",
                                handler);
    }
    if (ef_runtime_is_python(runtime)) {
        /* The python runtime imports everything before the last dot as a module path and calls
         * the attribute after it. */
        const char *dot = strrchr(handler, '.');
        if (!dot || dot == handler || dot[1] == '\0' || dot[-1] == '/' || handler[0] == '/' ||
            strstr(handler, "..") != NULL)
            return ef_error_set(err, -EINVAL,
                                "Handler '%s' is not valid for runtime %s: expected "
                                "<module>.<function>, e.g. lambda_function.lambda_handler",
                                handler, runtime);
    }
    return 0;
}

int ef_validate_memory(int64_t memory_mb, ef_error *err)
{
    if (memory_mb < EF_MEMORY_MIN_MB || memory_mb > EF_MEMORY_MAX_MB)
        return ef_error_set(err, -EINVAL,
                            "1 validation error detected: Value '%lld' at 'memorySize' failed to "
                            "satisfy constraint: Member must be between %d and %d MB",
                            (long long)memory_mb, EF_MEMORY_MIN_MB, EF_MEMORY_MAX_MB);
    return 0;
}

int ef_validate_timeout(int64_t timeout_s, ef_error *err)
{
    if (timeout_s < EF_TIMEOUT_MIN_S || timeout_s > EF_TIMEOUT_MAX_S)
        return ef_error_set(err, -EINVAL,
                            "1 validation error detected: Value '%lld' at 'timeout' failed to "
                            "satisfy constraint: Member must be between %d and %d seconds",
                            (long long)timeout_s, EF_TIMEOUT_MIN_S, EF_TIMEOUT_MAX_S);
    return 0;
}

/* Lambda's reserved variables: the runtime sets them, and a function overriding them (the
 * Runtime API address above all) would break its own runtime. */
static const char *const reserved_env[] = {
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
};

static bool reserved_env_key(const char *key)
{
    for (size_t i = 0; i < sizeof(reserved_env) / sizeof(reserved_env[0]); i++)
        if (strcmp(key, reserved_env[i]) == 0)
            return true;
    return false;
}

static bool valid_env_key(const char *key)
{
    if (!isalpha((unsigned char)key[0]))
        return false;
    for (const char *p = key + 1; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_')
            return false;
    return true;
}

int ef_validate_environment(const cJSON *variables, ef_error *err)
{
    if (!variables || cJSON_IsNull(variables))
        return 0;
    if (!cJSON_IsObject(variables))
        return ef_error_set(err, -EINVAL, "Environment.Variables must be an object of strings");

    size_t total = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, variables)
    {
        if (!valid_env_key(v->string))
            return ef_error_set(err, -EINVAL,
                                "Environment variable name '%.64s' is not valid: it must match "
                                "[a-zA-Z][a-zA-Z0-9_]*",
                                v->string);
        if (reserved_env_key(v->string))
            return ef_error_set(err, -EINVAL,
                                "Lambda was unable to configure your environment variables "
                                "because the environment variables you have provided contains "
                                "reserved keys that are currently not supported for "
                                "modification. Reserved keys used in this request: %s",
                                v->string);
        if (!cJSON_IsString(v))
            return ef_error_set(err, -EINVAL,
                                "Environment variable '%.64s' must have a string value", v->string);
        total += strlen(v->string) + strlen(v->valuestring);
        if (total > EF_ENVIRONMENT_MAX_BYTES)
            return ef_error_set(err, -EINVAL,
                                "Lambda was unable to configure your environment variables "
                                "because the environment variables you have provided exceeded "
                                "the 4KB limit");
    }
    return 0;
}

int ef_validate_description(const char *description, ef_error *err)
{
    if (description && strlen(description) > EF_DESCRIPTION_MAX)
        return ef_error_set(err, -EINVAL,
                            "1 validation error detected: Value at 'description' failed to "
                            "satisfy constraint: Member must have length less than or equal to "
                            "%d",
                            EF_DESCRIPTION_MAX);
    return 0;
}
