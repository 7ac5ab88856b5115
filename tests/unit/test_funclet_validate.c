/* Validation of funclet's RPC parameters, on a real temporary code root (symlinks, files and
 * directories), without root. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fsutil.h"
#include "funclet/validate.h"

static char tmp[64];        /* the test's directory */
static char root[PATH_MAX]; /* canonical code root below it */

static const char *at(const char *rel)
{
    static char buf[4][PATH_MAX];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof(buf[i]), "%s/%s", tmp, rel);
    return buf[i];
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmp, sizeof(tmp), "/tmp/ef-test-validate-XXXXXX");
    if (!mkdtemp(tmp))
        return -1;
    if (mkdir(at("code"), 0755) < 0 || mkdir(at("code/fn"), 0755) < 0 ||
        mkdir(at("outside"), 0755) < 0)
        return -1;
    FILE *f = fopen(at("code/file"), "w");
    if (!f)
        return -1;
    fclose(f);
    if (symlink("/etc", at("code/escape")) < 0 || symlink("fn", at("code/alias")) < 0 ||
        symlink("../outside", at("code/up")) < 0)
        return -1;
    return realpath(at("code"), root) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return ef_rm_rf(tmp, NULL);
}

/* Parses `json` and validates it as container.create params. */
static int create(const char *json, struct ef_create_params *p, ef_error *err)
{
    cJSON *params = cJSON_Parse(json);
    assert_non_null(params);
    memset(p, 0, sizeof(*p));
    ef_error_clear(err);
    int r = ef_validate_create_params(params, root, p, err);
    cJSON_Delete(params);
    return r;
}

/* Validates create params built from a code_dir and extra members. */
static int create_dir(const char *dir, const char *extra, struct ef_create_params *p, ef_error *err)
{
    char json[PATH_MAX + 256];
    snprintf(json, sizeof(json), "{\"code_dir\":\"%s\"%s}", dir, extra);
    return create(json, p, err);
}

static void assert_rejected(const char *dir, const char *extra, const char *expect)
{
    struct ef_create_params p;
    ef_error err;
    assert_int_equal(create_dir(dir, extra, &p, &err), -EINVAL);
    assert_null(p.spec.code_dir);
    if (!strstr(err.msg, expect))
        fail_msg("message '%s' does not contain '%s'", err.msg, expect);
}

static void test_create_ok(void **state)
{
    (void)state;
    struct ef_create_params p;
    ef_error err;
    assert_int_equal(create_dir(at("code/fn"), ",\"memory_mb\":128", &p, &err), 0);
    char want[PATH_MAX + 8];
    snprintf(want, sizeof(want), "%s/fn", root);
    assert_string_equal(p.spec.code_dir, want);
    assert_int_equal(p.spec.memory_mb, 128);
    assert_int_equal(p.spec.pids_max, EF_PIDS_MAX_DEFAULT);
    ef_create_params_free(&p);

    assert_int_equal(create_dir(at("code/fn"), ",\"memory_mb\":64,\"pids_max\":16", &p, &err), 0);
    assert_int_equal(p.spec.memory_mb, 64);
    assert_int_equal(p.spec.pids_max, 16);
    ef_create_params_free(&p);

    assert_int_equal(create_dir(at("code/fn"), ",\"memory_mb\":10240,\"pids_max\":65536", &p, &err),
                     0);
    assert_int_equal(p.spec.memory_mb, 10240);
    assert_int_equal(p.spec.pids_max, 65536);
    assert_int_equal(p.spec.cpu_millicores, 0);
    ef_create_params_free(&p);

    assert_int_equal(
        create_dir(at("code/fn"), ",\"memory_mb\":128,\"cpu_millicores\":1500", &p, &err), 0);
    assert_int_equal(p.spec.cpu_millicores, 1500);
    ef_create_params_free(&p);
}

/* A symlink that stays inside the code root is resolved and accepted. */
static void test_create_symlink_inside(void **state)
{
    (void)state;
    struct ef_create_params p;
    ef_error err;
    assert_int_equal(create_dir(at("code/alias"), ",\"memory_mb\":128", &p, &err), 0);
    char want[PATH_MAX + 8];
    snprintf(want, sizeof(want), "%s/fn", root);
    assert_string_equal(p.spec.code_dir, want);
    ef_create_params_free(&p);
}

static void test_create_code_dir_rejected(void **state)
{
    (void)state;
    assert_rejected("fn", ",\"memory_mb\":128", "not an absolute path");
    assert_rejected("", ",\"memory_mb\":128", "must not be empty");
    assert_rejected("/etc", ",\"memory_mb\":128", "is not below the code root");
    assert_rejected(at("outside"), ",\"memory_mb\":128", "is not below the code root");
    /* The root itself would expose every function's code. */
    assert_rejected(at("code"), ",\"memory_mb\":128", "is not below the code root");
    assert_rejected(at("code/escape"), ",\"memory_mb\":128", "resolves to '/etc'");
    assert_rejected(at("code/up"), ",\"memory_mb\":128", "which is not below the code root");
    assert_rejected(at("code/fn/../../outside"), ",\"memory_mb\":128", "not below the code root");
    assert_rejected(at("code/missing"), ",\"memory_mb\":128", "No such file or directory");
    assert_rejected(at("code/file"), ",\"memory_mb\":128", "is not a directory");
}

static void test_create_numbers_rejected(void **state)
{
    (void)state;
    const char *fn = at("code/fn");
    assert_rejected(fn, "", "missing parameter 'memory_mb'");
    assert_rejected(fn, ",\"memory_mb\":63", "'memory_mb' must be between 64 and 10240, got 63");
    assert_rejected(fn, ",\"memory_mb\":10241", "must be between 64 and 10240");
    assert_rejected(fn, ",\"memory_mb\":-128", "must be between 64 and 10240");
    assert_rejected(fn, ",\"memory_mb\":1e300", "must be between 64 and 10240");
    assert_rejected(fn, ",\"memory_mb\":128.5", "'memory_mb' must be an integer");
    assert_rejected(fn, ",\"memory_mb\":\"128\"", "'memory_mb' must be an integer");
    assert_rejected(fn, ",\"memory_mb\":null", "'memory_mb' must be an integer");
    assert_rejected(fn, ",\"memory_mb\":128,\"pids_max\":15", "'pids_max' must be between 16");
    assert_rejected(fn, ",\"memory_mb\":128,\"pids_max\":65537", "'pids_max' must be between");
    assert_rejected(fn, ",\"memory_mb\":128,\"pids_max\":true", "'pids_max' must be an integer");
    assert_rejected(fn, ",\"memory_mb\":128,\"cpu_millicores\":5",
                    "must be 0 (no quota) or between 10");
    assert_rejected(fn, ",\"memory_mb\":128,\"cpu_millicores\":64001",
                    "'cpu_millicores' must be between");
    assert_rejected(fn, ",\"memory_mb\":128,\"cpu_millicores\":-1",
                    "'cpu_millicores' must be between");
}

static void test_create_shape_rejected(void **state)
{
    (void)state;
    struct ef_create_params p;
    ef_error err;
    assert_int_equal(create("[]", &p, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "params must be an object"));
    assert_int_equal(create("{\"memory_mb\":128}", &p, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "'memory_mb' needs 'code_dir'"));
    assert_int_equal(create("{\"code_dir\":5,\"memory_mb\":128}", &p, &err), -EINVAL);
    assert_string_equal(err.msg, "parameter 'code_dir' must be a string");
    assert_rejected(at("code/fn"), ",\"memory_mb\":128,\"memory\":256",
                    "unknown parameter 'memory'");
    /* No params at all: a cold container. */
    memset(&p, 0xff, sizeof(p));
    assert_int_equal(ef_validate_create_params(NULL, root, &p, &err), 0);
    assert_false(p.warm);
    assert_null(p.spec.code_dir);
}

/* Without code_dir: a cold container, with network none (default) or host. */
static void test_create_cold(void **state)
{
    (void)state;
    struct ef_create_params p;
    ef_error err;
    assert_int_equal(create("{}", &p, &err), 0);
    assert_false(p.warm);
    assert_int_equal(p.network, EF_NETWORK_NONE);
    assert_int_equal(create("{\"network\":\"host\"}", &p, &err), 0);
    assert_int_equal(p.network, EF_NETWORK_HOST);
    assert_int_equal(create("{\"network\":\"none\"}", &p, &err), 0);
    assert_int_equal(p.network, EF_NETWORK_NONE);
    assert_int_equal(create("{\"network\":\"bridge\"}", &p, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "'bridge' is chosen at warmup"));
    assert_int_equal(create("{\"network\":\"overlay\"}", &p, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "must be \"none\", \"bridge\" or \"host\", got 'overlay'"));
    assert_int_equal(create("{\"network\":1}", &p, &err), -EINVAL);
    assert_string_equal(err.msg, "parameter 'network' must be a string");
    assert_int_equal(create("{\"pids_max\":100}", &p, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "'pids_max' needs 'code_dir'"));
    assert_int_equal(create("{\"identity\":{}}", &p, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "'identity' needs 'code_dir'"));
}

#define SHA "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define IDENTITY                                                                                   \
    "\"identity\":{\"name\":\"my-fn_1\",\"version\":\"$LATEST\",\"code_sha256\":\"" SHA            \
    "\",\"config_hash\":\"c0ffee\"}"

/* Parses `tmpl` with its one "%s" replaced by `dir` as acquire params. */
static int acquire(const char *tmpl, const char *dir, struct ef_warm_spec *spec, ef_error *err)
{
    char json[PATH_MAX + 1024];
    const char *hole = strstr(tmpl, "%s");
    assert_non_null(hole);
    snprintf(json, sizeof(json), "%.*s%s%s", (int)(hole - tmpl), tmpl, dir, hole + 2);
    cJSON *params = cJSON_Parse(json);
    assert_non_null(params);
    memset(spec, 0, sizeof(*spec));
    int r = ef_validate_acquire_params(params, root, spec, err);
    cJSON_Delete(params);
    return r;
}

static void test_acquire(void **state)
{
    (void)state;
    struct ef_warm_spec spec;
    ef_error err;
    const char *fn = at("code/fn");
    assert_int_equal(
        acquire("{\"code_dir\":\"%s\",\"memory_mb\":256," IDENTITY "}", fn, &spec, &err), 0);
    assert_true(spec.has_identity);
    assert_string_equal(spec.identity.name, "my-fn_1");
    assert_string_equal(spec.identity.version, "$LATEST");
    assert_string_equal(spec.identity.code_sha256, SHA);
    assert_string_equal(spec.identity.config_hash, "c0ffee");
    assert_int_equal(spec.network, EF_NETWORK_NONE);
    assert_int_equal(spec.memory_mb, 256);
    ef_warm_spec_free(&spec);

    assert_int_equal(acquire("{\"code_dir\":\"%s\",\"memory_mb\":256,\"network\":\"bridge\","
                             "\"cpu_millicores\":250," IDENTITY "}",
                             fn, &spec, &err),
                     0);
    assert_int_equal(spec.network, EF_NETWORK_BRIDGE);
    assert_int_equal(spec.cpu_millicores, 250);
    ef_warm_spec_free(&spec);

    /* The identity is required, complete and well-formed. */
    static const char *const bad[][2] = {
        {"{\"code_dir\":\"%s\",\"memory_mb\":128}", "missing parameter 'identity'"},
        {"{\"code_dir\":\"%s\",\"memory_mb\":128,\"identity\":\"fn\"}",
         "parameter 'identity' must be an object"},
        {"{\"code_dir\":\"%s\",\"memory_mb\":128,\"identity\":{\"name\":\"f\"}}",
         "missing parameter 'identity.version'"},
        {"{\"code_dir\":\"%s\",\"memory_mb\":128,\"identity\":{\"name\":\"f g\",\"version\":"
         "\"1\",\"code_sha256\":\"" SHA "\",\"config_hash\":\"h\"}}",
         "'identity.name' may only hold"},
        {"{\"code_dir\":\"%s\",\"memory_mb\":128,\"identity\":{\"name\":\"f\",\"version\":"
         "\"1\",\"code_sha256\":\"abc\",\"config_hash\":\"h\"}}",
         "'identity.code_sha256' must be 64 to 64 characters"},
        {"{\"code_dir\":\"%s\",\"memory_mb\":128,\"identity\":{\"name\":\"f\",\"version\":"
         "\"1\",\"code_sha256\":\"" SHA "\",\"config_hash\":\"\"}}",
         "'identity.config_hash' must be 1 to 128 characters"},
        {"{\"code_dir\":\"%s\",\"memory_mb\":128,\"identity\":{\"name\":\"f\",\"version\":"
         "\"1\",\"code_sha256\":"
         "\"0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef\","
         "\"config_hash\":\"h\"}}",
         "must be 64 lowercase hex digits"},
        {"{\"code_dir\":\"%s\",\"memory_mb\":128,\"identity\":{\"name\":\"f\",\"version\":"
         "\"1\",\"code_sha256\":\"" SHA "\",\"config_hash\":\"h\",\"extra\":1}}",
         "identity: unknown parameter 'extra'"},
        {"{\"code_dir\":\"%s\",\"memory_mb\":128,\"network\":\"vpc\"," IDENTITY "}",
         "parameter 'network' must be"},
        {"{\"code_dir\":\"%s\"," IDENTITY "}", "missing parameter 'memory_mb'"},
        {"{\"code_dir\":\"%s\",\"memory_mb\":128,\"id\":\"c0123456789ab\"," IDENTITY "}",
         "unknown parameter 'id'"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(acquire(bad[i][0], fn, &spec, &err), -EINVAL);
        assert_null(spec.code_dir);
        if (!strstr(err.msg, bad[i][1]))
            fail_msg("%s: message '%s' does not contain '%s'", bad[i][0], err.msg, bad[i][1]);
    }
    /* A code_dir outside the code root is refused as for create. */
    assert_int_equal(
        acquire("{\"code_dir\":\"%s\",\"memory_mb\":128," IDENTITY "}", "/etc", &spec, &err),
        -EINVAL);
    assert_non_null(strstr(err.msg, "is not below the code root"));
}

static void test_warmup_params(void **state)
{
    (void)state;
    struct ef_warm_spec spec;
    ef_error err;
    const char *id = NULL;
    char json[PATH_MAX + 512];
    snprintf(json, sizeof(json),
             "{\"id\":\"c0123456789ab\",\"code_dir\":\"%s\",\"memory_mb\":512,"
             "\"pids_max\":64," IDENTITY "}",
             at("code/alias"));
    cJSON *p = cJSON_Parse(json);
    assert_int_equal(ef_validate_warmup_params(p, root, &id, &spec, &err), 0);
    assert_string_equal(id, "c0123456789ab");
    char want[PATH_MAX + 8];
    snprintf(want, sizeof(want), "%s/fn", root);
    assert_string_equal(spec.code_dir, want);
    assert_int_equal(spec.pids_max, 64);
    ef_warm_spec_free(&spec);
    assert_null(spec.code_dir);
    cJSON_Delete(p);

    static const char *const bad[][2] = {
        {"{\"code_dir\":\"/x\",\"memory_mb\":128}", "missing parameter 'id'"},
        {"{\"id\":\"../../x\",\"code_dir\":\"/x\",\"memory_mb\":128}", "invalid container id"},
        {"{\"id\":\"c0123456789ab\",\"memory_mb\":128," IDENTITY "}",
         "missing parameter 'code_dir'"},
        {"{\"id\":\"c0123456789ab\",\"release\":true}", "unknown parameter 'release'"},
        {"[]", "params must be an object"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        p = cJSON_Parse(bad[i][0]);
        assert_non_null(p);
        memset(&spec, 0, sizeof(spec));
        assert_int_equal(ef_validate_warmup_params(p, root, &id, &spec, &err), -EINVAL);
        assert_null(spec.code_dir);
        if (!strstr(err.msg, bad[i][1]))
            fail_msg("%s: message '%s' does not contain '%s'", bad[i][0], err.msg, bad[i][1]);
        cJSON_Delete(p);
    }
}

static void test_reset_params(void **state)
{
    (void)state;
    ef_error err;
    const char *id = NULL;
    bool release = true;
    cJSON *p = cJSON_Parse("{\"id\":\"c0123456789ab\"}");
    assert_int_equal(ef_validate_reset_params(p, &id, &release, &err), 0);
    assert_string_equal(id, "c0123456789ab");
    assert_false(release);
    cJSON_Delete(p);
    p = cJSON_Parse("{\"id\":\"c0123456789ab\",\"release\":true}");
    assert_int_equal(ef_validate_reset_params(p, &id, &release, &err), 0);
    assert_true(release);
    cJSON_Delete(p);

    static const char *const bad[][2] = {
        {"{}", "missing parameter 'id'"},
        {"{\"id\":\"c0123456789ab\",\"release\":1}", "'release' must be true or false"},
        {"{\"id\":\"c0123456789ab\",\"force\":true}", "unknown parameter 'force'"},
        {"null", "params must be an object"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        p = cJSON_Parse(bad[i][0]);
        assert_int_equal(ef_validate_reset_params(p, &id, &release, &err), -EINVAL);
        if (!strstr(err.msg, bad[i][1]))
            fail_msg("%s: message '%s' does not contain '%s'", bad[i][0], err.msg, bad[i][1]);
        cJSON_Delete(p);
    }
}

static void test_container_id(void **state)
{
    (void)state;
    ef_error err;
    assert_int_equal(ef_validate_container_id("c0123456789ab", &err), 0);
    assert_int_equal(ef_validate_container_id("cabcdefabcdef", &err), 0);
    const char *bad[] = {"",
                         "c",
                         "c0123456789a",
                         "c0123456789abc",
                         "d0123456789ab",
                         "c0123456789AB",
                         "c0123456789g0",
                         "../../../etc",
                         "c012345/789ab",
                         "c0123456789a\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(ef_validate_container_id(bad[i], &err), -EINVAL);
        assert_non_null(strstr(err.msg, "invalid container id"));
    }
    /* A long id is quoted only in part. */
    char longid[400];
    memset(longid, 'a', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    assert_int_equal(ef_validate_container_id(longid, &err), -EINVAL);
    assert_true(strlen(err.msg) < 150);
}

static void test_destroy_params(void **state)
{
    (void)state;
    ef_error err;
    const char *id = NULL;
    cJSON *p = cJSON_Parse("{\"id\":\"c0123456789ab\"}");
    assert_int_equal(ef_validate_destroy_params(p, &id, &err), 0);
    assert_string_equal(id, "c0123456789ab");
    cJSON_Delete(p);

    const char *bad[][2] = {
        {"{}", "missing parameter 'id'"},
        {"{\"id\":7}", "parameter 'id' must be a string"},
        {"{\"id\":\"x\"}", "invalid container id 'x'"},
        {"{\"id\":\"c0123456789ab\",\"force\":true}", "unknown parameter 'force'"},
        {"\"c0123456789ab\"", "params must be an object"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        p = cJSON_Parse(bad[i][0]);
        assert_non_null(p);
        assert_int_equal(ef_validate_destroy_params(p, &id, &err), -EINVAL);
        if (!strstr(err.msg, bad[i][1]))
            fail_msg("%s: message '%s' does not contain '%s'", bad[i][0], err.msg, bad[i][1]);
        cJSON_Delete(p);
    }
}

static void test_no_params(void **state)
{
    (void)state;
    ef_error err;
    assert_int_equal(ef_validate_no_params(NULL, "node.info", &err), 0);
    const char *ok[] = {"null", "{}", "[]"};
    for (size_t i = 0; i < 3; i++) {
        cJSON *p = cJSON_Parse(ok[i]);
        assert_int_equal(ef_validate_no_params(p, "node.info", &err), 0);
        cJSON_Delete(p);
    }
    const char *bad[] = {"{\"a\":1}", "[1]", "3", "\"x\""};
    for (size_t i = 0; i < 4; i++) {
        cJSON *p = cJSON_Parse(bad[i]);
        assert_int_equal(ef_validate_no_params(p, "container.list", &err), -EINVAL);
        assert_string_equal(err.msg, "container.list takes no parameters");
        cJSON_Delete(p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_ok),
        cmocka_unit_test(test_create_symlink_inside),
        cmocka_unit_test(test_create_code_dir_rejected),
        cmocka_unit_test(test_create_numbers_rejected),
        cmocka_unit_test(test_create_shape_rejected),
        cmocka_unit_test(test_create_cold),
        cmocka_unit_test(test_acquire),
        cmocka_unit_test(test_warmup_params),
        cmocka_unit_test(test_reset_params),
        cmocka_unit_test(test_container_id),
        cmocka_unit_test(test_destroy_params),
        cmocka_unit_test(test_no_params),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
