#include "controller/function_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "common/cleanup.h"
#include "controller/base64.h"
#include "controller/codestore.h"
#include "controller/store.h"

/* The account and region every ARN of this pod names. Clients may send any account or region in
 * an ARN; the function name is what identifies a function here. */
#define ARN_PREFIX "arn:aws:lambda:us-east-1:000000000000:function:"

char *ef_function_qualified_arn(const char *name, const char *qualifier)
{
    char *arn = NULL;
    int n = qualifier ? asprintf(&arn, ARN_PREFIX "%s:%s", name, qualifier)
                      : asprintf(&arn, ARN_PREFIX "%s", name);
    return n < 0 ? NULL : arn;
}

char *ef_function_version_arn(const struct ef_function *fn)
{
    const char *v = ef_function_version(fn);
    return ef_function_qualified_arn(fn->name, strcmp(v, EF_VERSION_LATEST) == 0 ? NULL : v);
}

cJSON *ef_function_configuration_json(const struct ef_function *fn, bool qualify_latest)
{
    const char *version = ef_function_version(fn);
    cleanup_cjson cJSON *c = cJSON_CreateObject();
    cleanup_free char *arn =
        qualify_latest ? ef_function_qualified_arn(fn->name, version) : ef_function_version_arn(fn);
    cleanup_free char *sha_b64 = NULL;
    unsigned char digest[EF_SHA256_LEN];

    /* Lambda's CodeSha256 is the base64 of the digest; the store keeps it in hex. */
    if (strlen(fn->code_sha256_hex) != EF_SHA256_HEX_LEN)
        return NULL;
    for (size_t i = 0; i < EF_SHA256_LEN; i++) {
        unsigned v = 0;
        if (sscanf(fn->code_sha256_hex + 2 * i, "%2x", &v) != 1)
            return NULL;
        digest[i] = (unsigned char)v;
    }
    sha_b64 = ef_base64_encode(digest, sizeof(digest));

    cJSON *vars = cJSON_Parse(fn->environment);
    cJSON *env = cJSON_CreateObject();
    if (!c || !arn || !sha_b64 || !vars || !env) {
        cJSON_Delete(vars);
        cJSON_Delete(env);
        return NULL;
    }
    cJSON_AddItemToObject(env, "Variables", vars);
    cJSON_AddItemToObject(c, "Environment", env);
    cJSON *arch = cJSON_CreateArray();
    if (!arch)
        return NULL;
    cJSON_AddItemToObject(c, "Architectures", arch);
    cJSON *storage = cJSON_AddObjectToObject(c, "EphemeralStorage");
    if (!cJSON_AddStringToObject(c, "FunctionName", fn->name) ||
        !cJSON_AddStringToObject(c, "FunctionArn", arn) ||
        !cJSON_AddStringToObject(c, "Runtime", fn->runtime) ||
        !cJSON_AddStringToObject(c, "Role", fn->role ? fn->role : EF_DEFAULT_ROLE) ||
        !cJSON_AddStringToObject(c, "Handler", fn->handler) ||
        !cJSON_AddNumberToObject(c, "CodeSize", (double)fn->code_size) ||
        !cJSON_AddStringToObject(c, "Description", fn->description) ||
        !cJSON_AddNumberToObject(c, "Timeout", (double)fn->timeout_s) ||
        !cJSON_AddNumberToObject(c, "MemorySize", (double)fn->memory_mb) ||
        !cJSON_AddNumberToObject(c, EF_CONTAINER_CONCURRENCY_FIELD,
                                 (double)fn->container_concurrency) ||
        !cJSON_AddStringToObject(c, EF_NETWORK_MODE_FIELD, ef_function_network_name(fn->network)) ||
        !cJSON_AddStringToObject(c, "LastModified", fn->last_modified) ||
        !cJSON_AddStringToObject(c, "CodeSha256", sha_b64) ||
        !cJSON_AddStringToObject(c, "Version", version) ||
        !cJSON_AddStringToObject(c, "State", "Active") ||
        !cJSON_AddStringToObject(c, "LastUpdateStatus", "Successful") ||
        !cJSON_AddStringToObject(c, "PackageType", "Zip") || !storage ||
        !cJSON_AddNumberToObject(storage, "Size", 512) ||
        !cJSON_AddItemToArray(arch, cJSON_CreateString("x86_64")))
        return NULL;
    return steal_pointer(&c);
}

int ef_validate_role(const char *role, ef_error *err)
{
    size_t n = strlen(role);
    bool printable = n > 0 && n <= EF_ROLE_MAX;
    for (size_t i = 0; printable && i < n; i++)
        printable = role[i] >= 0x20 && role[i] < 0x7f;
    if (!printable)
        return ef_error_set(err, -EINVAL,
                            "1 validation error detected: Value at 'role' failed to satisfy "
                            "constraint: Member must have length between 1 and %d and consist "
                            "of printable ASCII characters (an IAM role ARN)",
                            EF_ROLE_MAX);
    return 0;
}

int ef_validate_network_mode(const char *value, bool allow_host, enum ef_function_network *ret_mode,
                             ef_error *err)
{
    enum ef_function_network mode;
    if (ef_function_network_parse(value, &mode) < 0)
        return ef_error_set(err, -EINVAL,
                            "1 validation error detected: Value '%.32s' at 'networkMode' failed "
                            "to satisfy constraint: Member must satisfy enum value set: [none, "
                            "bridge, host]",
                            value ? value : "");
    if (mode == EF_FN_NETWORK_HOST && !allow_host)
        return ef_error_set(err, -EINVAL,
                            "NetworkMode host gives the function the pod's own network, from "
                            "which it reaches everything the pod can, and this controller does "
                            "not allow it: use none or bridge, or have the operator start the "
                            "controller with --allow-host-network (for trusted functions only)");
    *ret_mode = mode;
    return 0;
}

char *ef_format_last_modified(void)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    char *s = NULL;
    if (asprintf(&s, "%04d-%02d-%02dT%02d:%02d:%02d.%03ld+0000", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(tv.tv_usec / 1000)) < 0)
        return NULL;
    return s;
}

bool ef_json_has(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return v && !cJSON_IsNull(v);
}

int ef_json_get_string(const cJSON *obj, const char *name, const char **ret)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsString(v))
        return -1;
    *ret = v->valuestring;
    return 0;
}

int ef_json_get_int(const cJSON *obj, const char *name, int64_t *ret)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v || cJSON_IsNull(v))
        return 0;
    /* Beyond ±2^53 a double no longer holds every integer, and no parameter is that large. The
     * range is checked before the conversion, which is undefined for what int64_t cannot hold
     * (1e400 is infinity to cJSON). */
    if (!cJSON_IsNumber(v) || !(v->valuedouble <= 9007199254740992.0) ||
        !(v->valuedouble >= -9007199254740992.0) ||
        v->valuedouble != (double)(int64_t)v->valuedouble)
        return -1;
    *ret = (int64_t)v->valuedouble;
    return 0;
}

int ef_json_get_bool(const cJSON *obj, const char *name, bool *ret)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsBool(v))
        return -1;
    *ret = cJSON_IsTrue(v);
    return 0;
}

int ef_config_request_read(const cJSON *body, struct ef_config_request *req,
                           const char **ret_member, const char **ret_type)
{
    static const char *const string_members[] = {"Runtime", "Handler", "Description",
                                                 EF_NETWORK_MODE_FIELD, "Role"};
    const char **strings[] = {&req->runtime, &req->handler, &req->description, &req->network,
                              &req->role};
    static const char *const int_members[] = {"MemorySize", "Timeout",
                                              EF_CONTAINER_CONCURRENCY_FIELD};
    int64_t *ints[] = {&req->memory_mb, &req->timeout_s, &req->concurrency};
    bool *has[] = {&req->has_memory, &req->has_timeout, &req->has_concurrency};

    memset(req, 0, sizeof(*req));
    for (size_t i = 0; i < EF_ARRAY_SIZE(string_members); i++) {
        if (ef_json_get_string(body, string_members[i], strings[i]) < 0) {
            *ret_member = string_members[i];
            *ret_type = "a string";
            return -1;
        }
    }
    for (size_t i = 0; i < EF_ARRAY_SIZE(int_members); i++) {
        *has[i] = ef_json_has(body, int_members[i]);
        if (ef_json_get_int(body, int_members[i], ints[i]) < 0) {
            *ret_member = int_members[i];
            *ret_type = "an integer";
            return -1;
        }
    }
    const cJSON *env = cJSON_GetObjectItemCaseSensitive(body, "Environment");
    req->has_environment = env && !cJSON_IsNull(env);
    if (req->has_environment) {
        if (!cJSON_IsObject(env)) {
            *ret_member = "Environment";
            *ret_type = "an object";
            return -1;
        }
        req->variables = cJSON_GetObjectItemCaseSensitive(env, "Variables");
    }
    return 0;
}
