/* The runner's `runtime.start` params and the runtime's environment, on literal inputs. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "runner/spawn.h"

static const struct ef_spawn_settings settings = {
    .runtime_dir = "/var/runtime",
    .task_dir = "/var/task",
    .api_port = 9001,
    .uid = 1001,
    .gid = 1001,
};

/* Parses `json` as runtime.start params; returns the result code. */
static int parse(const char *json, struct ef_runtime_config *cfg, ef_error *err)
{
    cJSON *p = cJSON_Parse(json);
    assert_non_null(p);
    int r = ef_runtime_config_parse(p, cfg, err);
    cJSON_Delete(p);
    return r;
}

static char **build(const char *json)
{
    struct ef_runtime_config cfg;
    ef_error err = {0};
    assert_int_equal(parse(json, &cfg, &err), 0);
    char **env = NULL;
    assert_int_equal(ef_runtime_build_env(&cfg, &settings, &env, &err), 0);
    ef_runtime_config_free(&cfg);
    return env;
}

static size_t count(char **env, const char *name)
{
    size_t n = 0, len = strlen(name);
    for (char **p = env; *p; p++)
        if (strncmp(*p, name, len) == 0 && (*p)[len] == '=')
            n++;
    return n;
}

static void test_lambda_environment(void **state)
{
    (void)state;
    char **env = build("{\"function_name\":\"hello\",\"function_version\":\"7\","
                       "\"handler\":\"app.handler\",\"runtime\":\"python3.11\","
                       "\"memory_mb\":512,\"timeout_s\":10}");
    assert_string_equal(ef_strv_env_get(env, "AWS_LAMBDA_RUNTIME_API"), "127.0.0.1:9001");
    assert_string_equal(ef_strv_env_get(env, "_HANDLER"), "app.handler");
    assert_string_equal(ef_strv_env_get(env, "LAMBDA_TASK_ROOT"), "/var/task");
    assert_string_equal(ef_strv_env_get(env, "LAMBDA_RUNTIME_DIR"), "/var/runtime");
    assert_string_equal(ef_strv_env_get(env, "AWS_LAMBDA_FUNCTION_NAME"), "hello");
    assert_string_equal(ef_strv_env_get(env, "AWS_LAMBDA_FUNCTION_VERSION"), "7");
    assert_string_equal(ef_strv_env_get(env, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"), "512");
    assert_string_equal(ef_strv_env_get(env, "AWS_LAMBDA_LOG_GROUP_NAME"), "/aws/lambda/hello");
    const char *stream = ef_strv_env_get(env, "AWS_LAMBDA_LOG_STREAM_NAME");
    assert_non_null(stream);
    /* YYYY/MM/DD/[7]<32 hex> */
    assert_int_equal(strlen(stream), 11 + 3 + 32);
    assert_memory_equal(stream + 10, "/[7]", 4);
    assert_string_equal(ef_strv_env_get(env, "AWS_REGION"), "us-east-1");
    assert_string_equal(ef_strv_env_get(env, "AWS_DEFAULT_REGION"), "us-east-1");
    assert_string_equal(ef_strv_env_get(env, "AWS_EXECUTION_ENV"), "AWS_Lambda_python3.11");
    assert_string_equal(ef_strv_env_get(env, "TZ"), ":UTC");
    assert_string_equal(ef_strv_env_get(env, "LANG"), "en_US.UTF-8");
    assert_string_equal(ef_strv_env_get(env, "PATH"),
                        "/usr/local/bin:/usr/bin:/bin:/var/runtime/bin");
    assert_string_equal(ef_strv_env_get(env, "LD_LIBRARY_PATH"), "/var/task/lib:/var/runtime/lib");
    assert_string_equal(ef_strv_env_get(env, "HOME"), "/tmp");
    /* Nothing of the runner's own environment leaks in. */
    assert_null(ef_strv_env_get(env, "USER"));
    assert_null(ef_strv_env_get(env, "PWD"));
    ef_strv_free(env);
}

static void test_defaults(void **state)
{
    (void)state;
    struct ef_runtime_config cfg;
    ef_error err = {0};
    assert_int_equal(parse("{\"function_name\":\"f\",\"handler\":\"h.h\",\"runtime\":"
                           "\"provided.al2023\",\"memory_mb\":128}",
                           &cfg, &err),
                     0);
    assert_string_equal(cfg.function_version, "$LATEST");
    assert_int_equal(cfg.timeout_s, 3);
    assert_null(cfg.environment);
    char **env = NULL;
    assert_int_equal(ef_runtime_build_env(&cfg, &settings, &env, &err), 0);
    /* Custom runtimes get no AWS_EXECUTION_ENV, as in Lambda. */
    assert_null(ef_strv_env_get(env, "AWS_EXECUTION_ENV"));
    /* One invocation at a time unless the function allows more. */
    assert_int_equal(cfg.max_concurrency, 1);
    assert_null(ef_strv_env_get(env, "AWS_LAMBDA_MAX_CONCURRENCY"));
    ef_strv_free(env);
    ef_runtime_config_free(&cfg);
}

static void test_max_concurrency(void **state)
{
    (void)state;
    char **env = build("{\"function_name\":\"f\",\"handler\":\"h.h\",\"runtime\":"
                       "\"provided.al2023\",\"memory_mb\":128,\"max_concurrency\":8,"
                       "\"environment\":{\"AWS_LAMBDA_MAX_CONCURRENCY\":\"99\"}}");
    assert_string_equal(ef_strv_env_get(env, "AWS_LAMBDA_MAX_CONCURRENCY"), "8");
    assert_int_equal(count(env, "AWS_LAMBDA_MAX_CONCURRENCY"), 1);
    ef_strv_free(env);
    /* A function's own variable cannot pretend to a concurrency the runner does not serve. */
    env = build("{\"function_name\":\"f\",\"handler\":\"h.h\",\"runtime\":\"python3.11\","
                "\"memory_mb\":128,\"environment\":{\"AWS_LAMBDA_MAX_CONCURRENCY\":\"4\"}}");
    assert_null(ef_strv_env_get(env, "AWS_LAMBDA_MAX_CONCURRENCY"));
    ef_strv_free(env);
}

static void test_user_variables_cannot_override_reserved(void **state)
{
    (void)state;
    char **env = build(
        "{\"function_name\":\"hello\",\"handler\":\"app.handler\",\"runtime\":\"python3.12\","
        "\"memory_mb\":128,\"environment\":{\"AWS_LAMBDA_RUNTIME_API\":\"10.0.0.1:80\","
        "\"_HANDLER\":\"evil.handler\",\"LAMBDA_TASK_ROOT\":\"/evil\","
        "\"AWS_LAMBDA_FUNCTION_NAME\":\"other\",\"AWS_LAMBDA_FUNCTION_MEMORY_SIZE\":\"99999\","
        "\"MY_VAR\":\"x=y\",\"TZ\":\"Europe/Paris\",\"PATH\":\"/opt/bin\",\"EMPTY\":\"\"}}");
    assert_string_equal(ef_strv_env_get(env, "AWS_LAMBDA_RUNTIME_API"), "127.0.0.1:9001");
    assert_string_equal(ef_strv_env_get(env, "_HANDLER"), "app.handler");
    assert_string_equal(ef_strv_env_get(env, "LAMBDA_TASK_ROOT"), "/var/task");
    assert_string_equal(ef_strv_env_get(env, "AWS_LAMBDA_FUNCTION_NAME"), "hello");
    assert_string_equal(ef_strv_env_get(env, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"), "128");
    assert_int_equal(count(env, "_HANDLER"), 1);
    assert_int_equal(count(env, "AWS_LAMBDA_RUNTIME_API"), 1);
    assert_int_equal(count(env, "LAMBDA_TASK_ROOT"), 1);
    /* The function's own variables are there; the unreserved defaults may be replaced. */
    assert_string_equal(ef_strv_env_get(env, "MY_VAR"), "x=y");
    assert_string_equal(ef_strv_env_get(env, "EMPTY"), "");
    assert_string_equal(ef_strv_env_get(env, "TZ"), "Europe/Paris");
    assert_int_equal(count(env, "TZ"), 1);
    assert_string_equal(ef_strv_env_get(env, "PATH"), "/opt/bin");
    ef_strv_free(env);

    assert_true(ef_runtime_env_reserved("AWS_LAMBDA_RUNTIME_API"));
    assert_true(ef_runtime_env_reserved("_HANDLER"));
    assert_true(ef_runtime_env_reserved("LAMBDA_TASK_ROOT"));
    assert_false(ef_runtime_env_reserved("TZ"));
    assert_false(ef_runtime_env_reserved("_HANDLERX"));
}

static void expect_invalid(const char *json, const char *needle)
{
    struct ef_runtime_config cfg;
    memset(&cfg, 0xAA, sizeof(cfg));
    struct ef_runtime_config before = cfg;
    ef_error err = {0};
    assert_int_equal(parse(json, &cfg, &err), -EINVAL);
    if (!strstr(err.msg, needle))
        fail_msg("message '%s' does not name '%s'", err.msg, needle);
    /* Untouched on failure. */
    assert_memory_equal(&cfg, &before, sizeof(cfg));
}

static void test_invalid_params(void **state)
{
    (void)state;
    expect_invalid("[]", "object");
    expect_invalid("{\"handler\":\"a.b\",\"runtime\":\"python3.11\",\"memory_mb\":128}",
                   "function_name");
    expect_invalid("{\"function_name\":\"a/b\",\"handler\":\"a.b\",\"runtime\":\"python3.11\","
                   "\"memory_mb\":128}",
                   "function_name");
    expect_invalid("{\"function_name\":\"f\",\"function_version\":\"v1\",\"handler\":\"a.b\","
                   "\"runtime\":\"python3.11\",\"memory_mb\":128}",
                   "function_version");
    expect_invalid("{\"function_name\":\"f\",\"handler\":\"a b\",\"runtime\":\"python3.11\","
                   "\"memory_mb\":128}",
                   "handler");
    expect_invalid("{\"function_name\":\"f\",\"handler\":\"a.b\",\"runtime\":\"Python 3\","
                   "\"memory_mb\":128}",
                   "runtime");
    expect_invalid("{\"function_name\":\"f\",\"handler\":\"a.b\",\"runtime\":\"python3.11\"}",
                   "memory_mb");
    expect_invalid("{\"function_name\":\"f\",\"handler\":\"a.b\",\"runtime\":\"python3.11\","
                   "\"memory_mb\":10241}",
                   "memory_mb");
    expect_invalid("{\"function_name\":\"f\",\"handler\":\"a.b\",\"runtime\":\"python3.11\","
                   "\"memory_mb\":128.5}",
                   "memory_mb");
    expect_invalid("{\"function_name\":\"f\",\"handler\":\"a.b\",\"runtime\":\"python3.11\","
                   "\"memory_mb\":128,\"timeout_s\":901}",
                   "timeout_s");
    expect_invalid("{\"function_name\":\"f\",\"handler\":\"a.b\",\"runtime\":\"python3.11\","
                   "\"memory_mb\":128,\"environment\":[]}",
                   "environment");
    expect_invalid("{\"function_name\":\"f\",\"handler\":\"a.b\",\"runtime\":\"python3.11\","
                   "\"memory_mb\":128,\"max_concurrency\":0}",
                   "max_concurrency");
    expect_invalid("{\"function_name\":\"f\",\"handler\":\"a.b\",\"runtime\":\"python3.11\","
                   "\"memory_mb\":128,\"max_concurrency\":65}",
                   "max_concurrency");
    expect_invalid("{\"function_name\":\"f\",\"handler\":\"a.b\",\"runtime\":\"python3.11\","
                   "\"memory_mb\":128,\"environment\":{\"A\":1}}",
                   "A");
    expect_invalid("{\"function_name\":\"f\",\"handler\":\"a.b\",\"runtime\":\"python3.11\","
                   "\"memory_mb\":128,\"environment\":{\"1A\":\"x\"}}",
                   "1A");
    expect_invalid("{\"function_name\":\"f\",\"handler\":\"a.b\",\"runtime\":\"python3.11\","
                   "\"memory_mb\":128,\"environment\":{\"A=B\":\"x\"}}",
                   "A=B");
}

static void test_environment_size_limit(void **state)
{
    (void)state;
    size_t big = EF_ENV_MAX_BYTES + 10;
    char *value = malloc(big + 1);
    memset(value, 'v', big);
    value[big] = '\0';
    cJSON *p = cJSON_Parse("{\"function_name\":\"f\",\"handler\":\"a.b\",\"runtime\":"
                           "\"python3.11\",\"memory_mb\":128,\"environment\":{}}");
    cJSON_AddStringToObject(cJSON_GetObjectItem(p, "environment"), "BIG", value);
    struct ef_runtime_config cfg;
    ef_error err = {0};
    assert_int_equal(ef_runtime_config_parse(p, &cfg, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "bytes"));
    cJSON_Delete(p);
    free(value);
}

static void test_bootstrap_paths(void **state)
{
    (void)state;
    char *path = NULL;
    ef_error err = {0};
    assert_int_equal(ef_runtime_bootstrap_path("python3.11", &settings, &path, &err), 0);
    assert_string_equal(path, "/var/runtime/python/bootstrap");
    free(path);
    assert_int_equal(ef_runtime_bootstrap_path("python3.9", &settings, &path, &err), 0);
    assert_string_equal(path, "/var/runtime/python/bootstrap");
    free(path);
    assert_int_equal(ef_runtime_bootstrap_path("provided.al2023", &settings, &path, &err), 0);
    assert_string_equal(path, "/var/task/bootstrap");
    free(path);
    assert_int_equal(ef_runtime_bootstrap_path("provided", &settings, &path, &err), 0);
    assert_string_equal(path, "/var/task/bootstrap");
    free(path);
    path = NULL;
    assert_int_equal(ef_runtime_bootstrap_path("nodejs20.x", &settings, &path, &err), 0);
    assert_string_equal(path, "/var/runtime/node/bootstrap");
    free(path);
    path = NULL;
    assert_int_equal(ef_runtime_bootstrap_path("ruby3.2", &settings, &path, &err), -EINVAL);
    assert_null(path);
    assert_non_null(strstr(err.msg, "ruby3.2"));
    assert_int_equal(ef_runtime_bootstrap_path("python2.7", &settings, &path, &err), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lambda_environment),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_max_concurrency),
        cmocka_unit_test(test_user_variables_cannot_override_reserved),
        cmocka_unit_test(test_invalid_params),
        cmocka_unit_test(test_environment_size_limit),
        cmocka_unit_test(test_bootstrap_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
