#include "controller/validate.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"

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

int ef_runtime_is_node(const char *runtime)
{
    return runtime && strncmp(runtime, "nodejs", 6) == 0;
}

int ef_runtime_is_custom(const char *runtime)
{
    return runtime && strncmp(runtime, "provided", 8) == 0;
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
    if (ef_runtime_is_python(runtime) || ef_runtime_is_node(runtime)) {
        /* The python and node runtimes load everything before the last dot as a module path
         * and call the attribute after it. */
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

int ef_validate_container_concurrency(int64_t n, ef_error *err)
{
    if (n < 1 || n > EF_CONTAINER_CONCURRENCY_MAX)
        return ef_error_set(err, -EINVAL,
                            "1 validation error detected: Value '%lld' at "
                            "'perExecutionEnvironmentMaxConcurrency' failed to satisfy "
                            "constraint: Member must be between 1 and %d",
                            (long long)n, EF_CONTAINER_CONCURRENCY_MAX);
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

/* Lambda's own wording for a malformed function reference. */
static int bad_function_ref(const char *ref, ef_error *err)
{
    return ef_error_set(err, -EINVAL,
                        "1 validation error detected: Value '%.150s' at 'functionName' failed to "
                        "satisfy constraint: Member must satisfy regular expression pattern: "
                        "(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?"
                        "(\\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?",
                        ref);
}

static bool all_digits(const char *s, size_t n)
{
    if (strlen(s) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* A region such as "us-east-1" or "us-gov-west-1": [a-z]{2}(-gov)?-[a-z]+-[0-9]. */
static bool valid_region(const char *r)
{
    if (!islower((unsigned char)r[0]) || !islower((unsigned char)r[1]) || r[2] != '-')
        return false;
    const char *p = r + 3;
    if (strncmp(p, "gov-", 4) == 0)
        p += 4;
    const char *start = p;
    while (islower((unsigned char)*p))
        p++;
    return p > start && p[0] == '-' && isdigit((unsigned char)p[1]) && p[2] == '\0';
}

int ef_parse_function_ref(const char *ref, char **ret_name, char **ret_qualifier, ef_error *err)
{
    if (!ref || !*ref)
        return ef_error_set(err, -EINVAL, "FunctionName is required");
    if (strlen(ref) > EF_FUNCTION_REF_MAX)
        return ef_error_set(err, -EINVAL,
                            "1 validation error detected: Value '%.80s...' at 'functionName' "
                            "failed to satisfy constraint: Member must have length less than or "
                            "equal to %d",
                            ref, EF_FUNCTION_REF_MAX);

    cleanup_free char *copy = strdup(ref);
    if (!copy)
        return ef_error_set(err, -ENOMEM, "out of memory");
    /* Split on ':' into at most 9 fields; more is malformed whatever they hold. */
    char *fields[9];
    size_t n = 0;
    char *save = copy;
    for (;;) {
        if (n == EF_ARRAY_SIZE(fields))
            return bad_function_ref(ref, err);
        fields[n++] = save;
        char *colon = strchr(save, ':');
        if (!colon)
            break;
        *colon = '\0';
        save = colon + 1;
    }

    const char *name, *qualifier = NULL;
    if (strcmp(fields[0], "arn") == 0) {
        /* arn:<partition>:lambda:<region>:<account>:function:<name>[:<qualifier>] */
        if ((n != 7 && n != 8) || strncmp(fields[1], "aws", 3) != 0 ||
            strcmp(fields[2], "lambda") != 0 || !valid_region(fields[3]) ||
            !all_digits(fields[4], 12) || strcmp(fields[5], "function") != 0)
            return bad_function_ref(ref, err);
        for (const char *p = fields[1] + 3; *p; p++)
            if (!isalpha((unsigned char)*p) && *p != '-')
                return bad_function_ref(ref, err);
        name = fields[6];
        qualifier = n == 8 ? fields[7] : NULL;
    } else if (n >= 3 && strcmp(fields[1], "function") == 0) {
        /* <account>:function:<name>[:<qualifier>] */
        if (n > 4 || !all_digits(fields[0], 12))
            return bad_function_ref(ref, err);
        name = fields[2];
        qualifier = n == 4 ? fields[3] : NULL;
    } else {
        /* <name>[:<qualifier>] */
        if (n > 2)
            return bad_function_ref(ref, err);
        name = fields[0];
        qualifier = n == 2 ? fields[1] : NULL;
    }
    int r = ef_validate_function_name(name, err);
    if (r < 0)
        return r;
    if (qualifier) {
        r = ef_validate_qualifier(qualifier, err);
        if (r < 0)
            return r;
    }
    char *rn = strdup(name);
    char *rq = qualifier ? strdup(qualifier) : NULL;
    if (!rn || (qualifier && !rq)) {
        free(rn);
        free(rq);
        return ef_error_set(err, -ENOMEM, "out of memory");
    }
    *ret_name = rn;
    *ret_qualifier = rq;
    return 0;
}

int ef_validate_qualifier(const char *qualifier, ef_error *err)
{
    size_t len = qualifier ? strlen(qualifier) : 0;
    if (len == 0 || len > EF_QUALIFIER_MAX)
        return ef_error_set(err, -EINVAL,
                            "1 validation error detected: Value '%.140s' at 'qualifier' failed to "
                            "satisfy constraint: Member must have length between 1 and %d",
                            qualifier ? qualifier : "", EF_QUALIFIER_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)qualifier[i];
        if (!isalnum(c) && c != '$' && c != '_' && c != '-')
            return ef_error_set(err, -EINVAL,
                                "1 validation error detected: Value '%s' at 'qualifier' failed to "
                                "satisfy constraint: Member must satisfy regular expression "
                                "pattern: (|[a-zA-Z0-9$_-]+)",
                                qualifier);
    }
    return 0;
}

int ef_parse_max_items(const char *text, int64_t *ret_value, ef_error *err)
{
    int64_t v = 0;
    bool ok = text && *text && strlen(text) <= 6;
    for (const char *p = text; ok && *p; p++) {
        if (*p < '0' || *p > '9')
            ok = false;
        else
            v = v * 10 + (*p - '0');
    }
    if (!ok || v < 1 || v > 10000)
        return ef_error_set(err, -EINVAL,
                            "1 validation error detected: Value '%.20s' at 'maxItems' failed to "
                            "satisfy constraint: Member must be an integer between 1 and 10000",
                            text ? text : "");
    *ret_value = v;
    return 0;
}

int ef_validate_reserved_concurrency(int64_t value, int64_t reserved_elsewhere, ef_error *err)
{
    if (value < 0)
        return ef_error_set(err, -EINVAL,
                            "1 validation error detected: Value '%lld' at "
                            "'reservedConcurrentExecutions' failed to satisfy constraint: Member "
                            "must have value greater than or equal to 0",
                            (long long)value);
    if (value + reserved_elsewhere > EF_ACCOUNT_CONCURRENCY - EF_UNRESERVED_CONCURRENCY_MIN)
        return ef_error_set(err, -EINVAL,
                            "Specified ReservedConcurrentExecutions for function decreases "
                            "account's UnreservedConcurrentExecution below its minimum value of "
                            "[%d].",
                            EF_UNRESERVED_CONCURRENCY_MIN);
    return 0;
}
