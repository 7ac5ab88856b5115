#include "funclet/validate.h"

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

int ef_validate_create_params(const cJSON *params, const char *code_root,
                              struct ef_create_params *ret, ef_error *err)
{
    static const char *const known[] = {"code_dir", "memory_mb", "pids_max", "cpu_millicores"};
    if (!cJSON_IsObject(params))
        return ef_error_set(err, -EINVAL,
                            "params must be an object with 'code_dir' and "
                            "'memory_mb'");
    int r = check_known_members(params, known, EF_ARRAY_SIZE(known), err);
    if (r < 0)
        return r;

    const cJSON *dir = cJSON_GetObjectItemCaseSensitive(params, "code_dir");
    if (!dir)
        return ef_error_set(err, -EINVAL, "missing parameter 'code_dir'");
    if (!cJSON_IsString(dir) || !dir->valuestring)
        return ef_error_set(err, -EINVAL, "parameter 'code_dir' must be a string");

    int64_t memory_mb, pids_max;
    r = get_int_param(params, "memory_mb", true, 0, EF_MEMORY_MB_MIN, EF_MEMORY_MB_MAX, &memory_mb,
                      err);
    if (r < 0)
        return r;
    r = get_int_param(params, "pids_max", false, EF_PIDS_MAX_DEFAULT, EF_PIDS_MAX_MIN,
                      EF_PIDS_MAX_MAX, &pids_max, err);
    if (r < 0)
        return r;
    int64_t cpu = 0;
    r = get_int_param(params, "cpu_millicores", false, 0, 0, EF_CPU_MILLICORES_MAX, &cpu, err);
    if (r < 0)
        return r;
    if (cpu > 0 && cpu < EF_CPU_MILLICORES_MIN)
        return ef_error_set(err, -EINVAL,
                            "parameter 'cpu_millicores' must be 0 (no quota) or between %d and "
                            "%d, got %lld",
                            EF_CPU_MILLICORES_MIN, EF_CPU_MILLICORES_MAX, (long long)cpu);

    char *real = NULL;
    r = resolve_code_dir(dir->valuestring, code_root, &real, err);
    if (r < 0)
        return r;
    ret->code_dir = real;
    ret->memory_mb = memory_mb;
    ret->pids_max = pids_max;
    ret->cpu_millicores = cpu;
    return 0;
}

void ef_create_params_free(struct ef_create_params *p)
{
    free(p->code_dir);
    p->code_dir = NULL;
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
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(params, "id");
    if (!id)
        return ef_error_set(err, -EINVAL, "missing parameter 'id'");
    if (!cJSON_IsString(id) || !id->valuestring)
        return ef_error_set(err, -EINVAL, "parameter 'id' must be a string");
    r = ef_validate_container_id(id->valuestring, err);
    if (r < 0)
        return r;
    *ret_id = id->valuestring;
    return 0;
}

int ef_validate_no_params(const cJSON *params, const char *method, ef_error *err)
{
    if (!params || cJSON_IsNull(params))
        return 0;
    if ((cJSON_IsObject(params) || cJSON_IsArray(params)) && !params->child)
        return 0;
    return ef_error_set(err, -EINVAL, "%s takes no parameters", method);
}
