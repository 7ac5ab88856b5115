#include "funclet/validate.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/cleanup.h"
#include "common/fsutil.h"

/* Reads an integer parameter. A JSON number is a double in cJSON, so the value is checked to be
 * finite and integral before it is converted, and the range is checked on the double so that
 * huge values cannot overflow the conversion. */
static int get_int_param(const cJSON *params, const char *name, bool required, int64_t def,
                         int64_t min, int64_t max, int64_t *ret, ef_error *err)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(params, name);
    if (!item) {
        if (required)
            return ef_error_set(err, -EINVAL, "missing parameter '%s'", name);
        *ret = def;
        return 0;
    }
    if (!cJSON_IsNumber(item))
        return ef_error_set(err, -EINVAL, "parameter '%s' must be an integer", name);
    double d = item->valuedouble;
    if (!isfinite(d) || d != floor(d))
        return ef_error_set(err, -EINVAL, "parameter '%s' must be an integer", name);
    if (d < (double)min || d > (double)max)
        return ef_error_set(err, -EINVAL, "parameter '%s' must be between %lld and %lld, got %.0f",
                            name, (long long)min, (long long)max, d);
    *ret = (int64_t)d;
    return 0;
}

/* Rejects members other than those listed, so that a misspelt parameter is reported instead of
 * being silently replaced by its default. */
static int check_known_members(const cJSON *params, const char *const *known, size_t n,
                               ef_error *err)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, params)
    {
        bool ok = false;
        for (size_t i = 0; i < n && !ok; i++)
            ok = item->string && strcmp(item->string, known[i]) == 0;
        if (!ok)
            return ef_error_set(err, -EINVAL, "unknown parameter '%s'",
                                item->string ? item->string : "");
    }
    return 0;
}

static int resolve_code_dir(const char *code_dir, const char *code_root, char **ret, ef_error *err)
{
    if (code_dir[0] == '\0')
        return ef_error_set(err, -EINVAL, "parameter 'code_dir' must not be empty");
    if (strlen(code_dir) >= PATH_MAX)
        return ef_error_set(err, -EINVAL, "parameter 'code_dir' is longer than %d bytes",
                            PATH_MAX - 1);
    if (code_dir[0] != '/')
        return ef_error_set(err, -EINVAL, "code_dir '%s' is not an absolute path", code_dir);

    cleanup_free char *real = realpath(code_dir, NULL);
    if (!real) {
        int e = errno;
        if (e == ENOMEM)
            return ef_error_set(err, -ENOMEM, "out of memory");
        return ef_error_set(err, -EINVAL, "code_dir '%s': %s", code_dir, strerror(e));
    }
    if (!ef_path_is_below(real, code_root) || strcmp(real, code_root) == 0) {
        if (strcmp(real, code_dir) != 0)
            return ef_error_set(err, -EINVAL,
                                "code_dir '%s' resolves to '%s', which is not below the code "
                                "root '%s'",
                                code_dir, real, code_root);
        return ef_error_set(err, -EINVAL, "code_dir '%s' is not below the code root '%s'", code_dir,
                            code_root);
    }
    struct stat st;
    if (stat(real, &st) < 0)
        return ef_error_set(err, -EINVAL, "code_dir '%s': %s", code_dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return ef_error_set(err, -EINVAL, "code_dir '%s' is not a directory", code_dir);
    *ret = steal_pointer(&real);
    return 0;
}

/* Reads the required "id" parameter and checks its form. */
static int get_id_param(const cJSON *params, const char **ret_id, ef_error *err)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(params, "id");
    if (!id)
        return ef_error_set(err, -EINVAL, "missing parameter 'id'");
    if (!cJSON_IsString(id) || !id->valuestring)
        return ef_error_set(err, -EINVAL, "parameter 'id' must be a string");
    int r = ef_validate_container_id(id->valuestring, err);
    if (r < 0)
        return r;
    *ret_id = id->valuestring;
    return 0;
}

const char *ef_network_mode_name(enum ef_network_mode mode)
{
    switch (mode) {
    case EF_NETWORK_NONE:
        return "none";
    case EF_NETWORK_BRIDGE:
        return "bridge";
    case EF_NETWORK_HOST:
        return "host";
    }
    return "?";
}

/* Reads the optional "network" parameter; `allow_bridge` is false where the mode cannot apply
 * (a cold container gets its veth only at warmup). */
static int get_network_param(const cJSON *params, bool allow_bridge, enum ef_network_mode *ret,
                             ef_error *err)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(params, "network");
    if (!item) {
        *ret = EF_NETWORK_NONE;
        return 0;
    }
    if (!cJSON_IsString(item) || !item->valuestring)
        return ef_error_set(err, -EINVAL, "parameter 'network' must be a string");
    const char *v = item->valuestring;
    if (strcmp(v, "none") == 0)
        *ret = EF_NETWORK_NONE;
    else if (strcmp(v, "host") == 0)
        *ret = EF_NETWORK_HOST;
    else if (strcmp(v, "bridge") == 0 && allow_bridge)
        *ret = EF_NETWORK_BRIDGE;
    else if (strcmp(v, "bridge") == 0)
        return ef_error_set(err, -EINVAL,
                            "network 'bridge' is chosen at warmup: create the container with "
                            "'none' and warm it up with 'bridge'");
    else
        return ef_error_set(err, -EINVAL,
                            "parameter 'network' must be \"none\", \"bridge\" or \"host\", got "
                            "'%.32s'",
                            v);
    return 0;
}

/* Copies one string member of the identity after checking its length and characters. */
static int identity_field(const cJSON *obj, const char *name, const char *allowed, size_t min,
                          size_t max, char *dst, ef_error *err)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!item)
        return ef_error_set(err, -EINVAL, "missing parameter 'identity.%s'", name);
    if (!cJSON_IsString(item) || !item->valuestring)
        return ef_error_set(err, -EINVAL, "parameter 'identity.%s' must be a string", name);
    const char *v = item->valuestring;
    size_t len = strlen(v);
    if (len < min || len > max)
        return ef_error_set(err, -EINVAL, "parameter 'identity.%s' must be %zu to %zu characters",
                            name, min, max);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (!(ch < 128 && (isalnum(ch) || strchr(allowed, ch))))
            return ef_error_set(err, -EINVAL,
                                "parameter 'identity.%s' may only hold letters, digits and '%s'",
                                name, allowed);
    }
    memcpy(dst, v, len + 1);
    return 0;
}

static int get_identity_param(const cJSON *params, bool required, struct ef_warm_spec *spec,
                              ef_error *err)
{
    static const char *const known[] = {"name", "version", "code_sha256", "config_hash"};
    const cJSON *obj = cJSON_GetObjectItemCaseSensitive(params, "identity");
    if (!obj) {
        if (required)
            return ef_error_set(err, -EINVAL, "missing parameter 'identity'");
        spec->has_identity = false;
        return 0;
    }
    if (!cJSON_IsObject(obj))
        return ef_error_set(err, -EINVAL,
                            "parameter 'identity' must be an object with 'name', 'version', "
                            "'code_sha256' and 'config_hash'");
    ef_error e;
    int r = check_known_members(obj, known, EF_ARRAY_SIZE(known), &e);
    if (r < 0)
        return ef_error_set(err, r, "identity: %s", e.msg);
    struct ef_identity *id = &spec->identity;
    if ((r = identity_field(obj, "name", "-_.:", 1, EF_IDENTITY_NAME_MAX, id->name, err)) < 0 ||
        (r = identity_field(obj, "version", "$-_.", 1, EF_IDENTITY_VERSION_MAX, id->version, err)) <
            0 ||
        (r = identity_field(obj, "code_sha256", "", EF_IDENTITY_SHA256_LEN, EF_IDENTITY_SHA256_LEN,
                            id->code_sha256, err)) < 0 ||
        (r = identity_field(obj, "config_hash", "-_.:+/=", 1, EF_IDENTITY_HASH_MAX, id->config_hash,
                            err)) < 0)
        return r;
    for (const char *c = id->code_sha256; *c; c++) {
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
            return ef_error_set(err, -EINVAL,
                                "parameter 'identity.code_sha256' must be 64 lowercase hex digits");
    }
    spec->has_identity = true;
    return 0;
}

/* Reads what a warm container needs; the caller has checked the member names. */
static int get_spec(const cJSON *params, const char *code_root, bool identity_required,
                    struct ef_warm_spec *ret, ef_error *err)
{
    const cJSON *dir = cJSON_GetObjectItemCaseSensitive(params, "code_dir");
    if (!dir)
        return ef_error_set(err, -EINVAL, "missing parameter 'code_dir'");
    if (!cJSON_IsString(dir) || !dir->valuestring)
        return ef_error_set(err, -EINVAL, "parameter 'code_dir' must be a string");

    struct ef_warm_spec spec;
    memset(&spec, 0, sizeof(spec));
    int r = get_int_param(params, "memory_mb", true, 0, EF_MEMORY_MB_MIN, EF_MEMORY_MB_MAX,
                          &spec.memory_mb, err);
    if (r < 0)
        return r;
    r = get_int_param(params, "pids_max", false, EF_PIDS_MAX_DEFAULT, EF_PIDS_MAX_MIN,
                      EF_PIDS_MAX_MAX, &spec.pids_max, err);
    if (r < 0)
        return r;
    r = get_int_param(params, "cpu_millicores", false, 0, 0, EF_CPU_MILLICORES_MAX,
                      &spec.cpu_millicores, err);
    if (r < 0)
        return r;
    if (spec.cpu_millicores > 0 && spec.cpu_millicores < EF_CPU_MILLICORES_MIN)
        return ef_error_set(err, -EINVAL,
                            "parameter 'cpu_millicores' must be 0 (no quota) or between %d and "
                            "%d, got %lld",
                            EF_CPU_MILLICORES_MIN, EF_CPU_MILLICORES_MAX,
                            (long long)spec.cpu_millicores);
    if ((r = get_network_param(params, true, &spec.network, err)) < 0 ||
        (r = get_identity_param(params, identity_required, &spec, err)) < 0)
        return r;

    /* Last: the only check that touches the file system, and the only allocation. */
    r = resolve_code_dir(dir->valuestring, code_root, &spec.code_dir, err);
    if (r < 0)
        return r;
    *ret = spec;
    return 0;
}

static const char *const spec_members[] = {"code_dir",       "memory_mb", "pids_max",
                                           "cpu_millicores", "network",   "identity"};

int ef_validate_create_params(const cJSON *params, const char *code_root,
                              struct ef_create_params *ret, ef_error *err)
{
    if (!params || cJSON_IsNull(params)) {
        memset(ret, 0, sizeof(*ret));
        ret->network = EF_NETWORK_NONE;
        return 0;
    }
    if (!cJSON_IsObject(params))
        return ef_error_set(err, -EINVAL,
                            "params must be an object: {} or {\"network\"} for a cold container, "
                            "or with 'code_dir' and 'memory_mb' for a warm one");
    int r = check_known_members(params, spec_members, EF_ARRAY_SIZE(spec_members), err);
    if (r < 0)
        return r;
    struct ef_create_params p;
    memset(&p, 0, sizeof(p));
    if (!cJSON_GetObjectItemCaseSensitive(params, "code_dir")) {
        /* A cold container has the base limits; a function's limits come with its code. */
        static const char *const warm_only[] = {"memory_mb", "pids_max", "cpu_millicores",
                                                "identity"};
        for (size_t i = 0; i < EF_ARRAY_SIZE(warm_only); i++) {
            if (cJSON_GetObjectItemCaseSensitive(params, warm_only[i]))
                return ef_error_set(err, -EINVAL,
                                    "parameter '%s' needs 'code_dir': a container without code "
                                    "is cold and has the base limits",
                                    warm_only[i]);
        }
        r = get_network_param(params, false, &p.network, err);
        if (r < 0)
            return r;
        *ret = p;
        return 0;
    }
    r = get_spec(params, code_root, false, &p.spec, err);
    if (r < 0)
        return r;
    p.warm = true;
    p.network = p.spec.network;
    *ret = p;
    return 0;
}

void ef_create_params_free(struct ef_create_params *p)
{
    ef_warm_spec_free(&p->spec);
}

int ef_validate_acquire_params(const cJSON *params, const char *code_root, struct ef_warm_spec *ret,
                               ef_error *err)
{
    if (!cJSON_IsObject(params))
        return ef_error_set(err, -EINVAL,
                            "params must be an object with 'code_dir', 'memory_mb' and "
                            "'identity'");
    int r = check_known_members(params, spec_members, EF_ARRAY_SIZE(spec_members), err);
    if (r < 0)
        return r;
    return get_spec(params, code_root, true, ret, err);
}

int ef_validate_warmup_params(const cJSON *params, const char *code_root, const char **ret_id,
                              struct ef_warm_spec *ret, ef_error *err)
{
    static const char *const known[] = {
        "id", "code_dir", "memory_mb", "pids_max", "cpu_millicores", "network", "identity"};
    if (!cJSON_IsObject(params))
        return ef_error_set(err, -EINVAL,
                            "params must be an object with 'id', 'code_dir', 'memory_mb' and "
                            "'identity'");
    int r = check_known_members(params, known, EF_ARRAY_SIZE(known), err);
    if (r < 0)
        return r;
    const char *id = NULL;
    if ((r = get_id_param(params, &id, err)) < 0)
        return r;
    if ((r = get_spec(params, code_root, true, ret, err)) < 0)
        return r;
    *ret_id = id;
    return 0;
}

void ef_warm_spec_free(struct ef_warm_spec *spec)
{
    free(spec->code_dir);
    spec->code_dir = NULL;
}

int ef_validate_reset_params(const cJSON *params, const char **ret_id, bool *ret_release,
                             ef_error *err)
{
    static const char *const known[] = {"id", "release"};
    if (!cJSON_IsObject(params))
        return ef_error_set(err, -EINVAL, "params must be an object with 'id'");
    int r = check_known_members(params, known, EF_ARRAY_SIZE(known), err);
    if (r < 0)
        return r;
    const char *id = NULL;
    if ((r = get_id_param(params, &id, err)) < 0)
        return r;
    const cJSON *rel = cJSON_GetObjectItemCaseSensitive(params, "release");
    if (rel && !cJSON_IsBool(rel))
        return ef_error_set(err, -EINVAL, "parameter 'release' must be true or false");
    *ret_id = id;
    *ret_release = rel && cJSON_IsTrue(rel);
    return 0;
}

int ef_validate_container_id(const char *id, ef_error *err)
{
    size_t len = strlen(id);
    bool ok = len == EF_CONTAINER_ID_LEN && id[0] == 'c';
    for (size_t i = 1; ok && i < len; i++)
        ok = (id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f');
    if (!ok) {
        /* Quote at most a bounded prefix: the id comes from the peer. */
        return ef_error_set(err, -EINVAL,
                            "invalid container id '%.40s%s': expected 'c' and 12 lowercase hex "
                            "digits",
                            id, len > 40 ? "..." : "");
    }
    return 0;
}

int ef_validate_destroy_params(const cJSON *params, const char **ret_id, ef_error *err)
{
    static const char *const known[] = {"id"};
    if (!cJSON_IsObject(params))
        return ef_error_set(err, -EINVAL, "params must be an object with 'id'");
    int r = check_known_members(params, known, EF_ARRAY_SIZE(known), err);
    if (r < 0)
        return r;
    return get_id_param(params, ret_id, err);
}

int ef_validate_no_params(const cJSON *params, const char *method, ef_error *err)
{
    if (!params || cJSON_IsNull(params))
        return 0;
    if ((cJSON_IsObject(params) || cJSON_IsArray(params)) && !params->child)
        return 0;
    return ef_error_set(err, -EINVAL, "%s takes no parameters", method);
}
