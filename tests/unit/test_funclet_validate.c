/* Validation of funclet's RPC parameters, on a real temporary code root (symlinks, files and
 * directories), without root. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
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
    assert_null(p.code_dir);
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
    assert_string_equal(p.code_dir, want);
    assert_int_equal(p.memory_mb, 128);
    assert_int_equal(p.pids_max, EF_PIDS_MAX_DEFAULT);
    ef_create_params_free(&p);

    assert_int_equal(create_dir(at("code/fn"), ",\"memory_mb\":64,\"pids_max\":16", &p, &err), 0);
    assert_int_equal(p.memory_mb, 64);
    assert_int_equal(p.pids_max, 16);
    ef_create_params_free(&p);

    assert_int_equal(create_dir(at("code/fn"), ",\"memory_mb\":10240,\"pids_max\":65536", &p, &err),
                     0);
    assert_int_equal(p.memory_mb, 10240);
    assert_int_equal(p.pids_max, 65536);
    assert_int_equal(p.cpu_millicores, 0);
    ef_create_params_free(&p);

    assert_int_equal(
        create_dir(at("code/fn"), ",\"memory_mb\":128,\"cpu_millicores\":1500", &p, &err), 0);
    assert_int_equal(p.cpu_millicores, 1500);
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
    assert_string_equal(p.code_dir, want);
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
    assert_string_equal(err.msg, "missing parameter 'code_dir'");
    assert_int_equal(create("{\"code_dir\":5,\"memory_mb\":128}", &p, &err), -EINVAL);
    assert_string_equal(err.msg, "parameter 'code_dir' must be a string");
    assert_rejected(at("code/fn"), ",\"memory_mb\":128,\"memory\":256",
                    "unknown parameter 'memory'");
    assert_int_equal(ef_validate_create_params(NULL, root, &p, &err), -EINVAL);
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
        cmocka_unit_test(test_container_id),
        cmocka_unit_test(test_destroy_params),
        cmocka_unit_test(test_no_params),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
