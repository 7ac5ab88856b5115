/* CreateFunction parameter validation and base64, on literal values. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "controller/base64.h"
#include "controller/validate.h"

static void test_function_names(void **state)
{
    (void)state;
    ef_error err = {0};
    assert_int_equal(ef_validate_function_name("hello", &err), 0);
    assert_int_equal(ef_validate_function_name("a-B_9", &err), 0);
    char max[65];
    memset(max, 'x', 64);
    max[64] = '\0';
    assert_int_equal(ef_validate_function_name(max, &err), 0);

    char over[66];
    memset(over, 'x', 65);
    over[65] = '\0';
    assert_int_equal(ef_validate_function_name(over, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "64"));
    assert_int_equal(ef_validate_function_name("", &err), -EINVAL);
    assert_int_equal(ef_validate_function_name(NULL, &err), -EINVAL);
    assert_int_equal(ef_validate_function_name("a b", &err), -EINVAL);
    assert_int_equal(ef_validate_function_name("../etc", &err), -EINVAL);
    assert_int_equal(ef_validate_function_name("name:1", &err), -EINVAL);
    assert_non_null(strstr(err.msg, "name:1"));
}

static void test_runtimes(void **state)
{
    (void)state;
    ef_error err = {0};
    const char *good[] = {"python3.8",  "python3.9",    "python3.10",     "python3.11",
                          "python3.12", "python3.13",   "nodejs20.x",     "nodejs22.x",
                          "provided",   "provided.al2", "provided.al2023"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_int_equal(ef_validate_runtime(good[i], &err), 0);

    const char *bad[] = {"python2.7",  "python3",         "python3.99", "nodejs21.x",
                         "Python3.11", "provided.al2024", "java21",     ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(ef_validate_runtime(bad[i], &err), -EINVAL);
        if (*bad[i])
            assert_non_null(strstr(err.msg, bad[i])); /* the message names the runtime */
    }
    assert_int_equal(ef_validate_runtime(NULL, &err), -EINVAL);
    assert_true(ef_runtime_is_python("python3.12"));
    assert_false(ef_runtime_is_python("provided.al2"));
}

static void test_handlers(void **state)
{
    (void)state;
    ef_error err = {0};
    assert_int_equal(ef_validate_handler("python3.12", "lambda_function.lambda_handler", &err), 0);
    assert_int_equal(ef_validate_handler("python3.12", "pkg/mod.handler", &err), 0);
    assert_int_equal(ef_validate_handler("python3.12", "nodot", &err), -EINVAL);
    assert_non_null(strstr(err.msg, "nodot"));
    assert_int_equal(ef_validate_handler("python3.12", ".handler", &err), -EINVAL);
    assert_int_equal(ef_validate_handler("python3.12", "mod.", &err), -EINVAL);
    assert_int_equal(ef_validate_handler("python3.12", "../x.h", &err), -EINVAL);
    assert_int_equal(ef_validate_handler("python3.12", "/abs.h", &err), -EINVAL);
    assert_int_equal(ef_validate_handler("python3.12", "a b.c", &err), -EINVAL);
    assert_int_equal(ef_validate_handler("python3.12", "", &err), -EINVAL);
    assert_int_equal(ef_validate_handler("python3.12", NULL, &err), -EINVAL);

    /* A custom runtime's handler is free-form but still one word. */
    assert_int_equal(ef_validate_handler("provided.al2023", "bootstrap", &err), 0);
    assert_int_equal(ef_validate_handler("provided", "function.handler", &err), 0);
    assert_int_equal(ef_validate_handler("provided", "two words", &err), -EINVAL);

    char longh[130];
    memset(longh, 'a', 129);
    longh[10] = '.';
    longh[129] = '\0';
    assert_int_equal(ef_validate_handler("python3.12", longh, &err), -EINVAL);
    longh[128] = '\0';
    assert_int_equal(ef_validate_handler("python3.12", longh, &err), 0);
}

static void test_memory_and_timeout(void **state)
{
    (void)state;
    ef_error err = {0};
    assert_int_equal(ef_validate_memory(128, &err), 0);
    assert_int_equal(ef_validate_memory(10240, &err), 0);
    assert_int_equal(ef_validate_memory(127, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "127"));
    assert_int_equal(ef_validate_memory(10241, &err), -EINVAL);
    assert_int_equal(ef_validate_memory(-1, &err), -EINVAL);

    assert_int_equal(ef_validate_timeout(1, &err), 0);
    assert_int_equal(ef_validate_timeout(900, &err), 0);
    assert_int_equal(ef_validate_timeout(0, &err), -EINVAL);
    assert_int_equal(ef_validate_timeout(901, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "901"));
}

static void test_environment(void **state)
{
    (void)state;
    ef_error err = {0};
    assert_int_equal(ef_validate_environment(NULL, &err), 0);

    cJSON *vars = cJSON_Parse("{\"A\":\"1\",\"b_2\":\"two\"}");
    assert_int_equal(ef_validate_environment(vars, &err), 0);
    cJSON_Delete(vars);

    const char *bad[] = {
        "[\"A\"]",                /* not an object */
        "{\"A\":1}",              /* not a string */
        "{\"1A\":\"x\"}",         /* bad key */
        "{\"A-B\":\"x\"}",        /* bad key */
        "{\"AWS_REGION\":\"x\"}", /* reserved */
        "{\"_HANDLER\":\"x\"}",   /* reserved */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        vars = cJSON_Parse(bad[i]);
        assert_non_null(vars);
        assert_int_equal(ef_validate_environment(vars, &err), -EINVAL);
        cJSON_Delete(vars);
    }

    /* 4 KB of keys and values is allowed, one byte more is not. */
    char *value = malloc(4096);
    memset(value, 'v', 4095 - 1);
    value[4094] = '\0';
    vars = cJSON_CreateObject();
    cJSON_AddStringToObject(vars, "AB", value); /* 2 + 4094 = 4096 */
    assert_int_equal(ef_validate_environment(vars, &err), 0);
    cJSON_AddStringToObject(vars, "C", "");
    assert_int_equal(ef_validate_environment(vars, &err), -EINVAL); /* 4097 */
    assert_non_null(strstr(err.msg, "4KB"));
    cJSON_Delete(vars);
    free(value);
}

static void test_description(void **state)
{
    (void)state;
    ef_error err = {0};
    char d[258];
    memset(d, 'd', 257);
    d[257] = '\0';
    assert_int_equal(ef_validate_description(d, &err), -EINVAL);
    d[256] = '\0';
    assert_int_equal(ef_validate_description(d, &err), 0);
    assert_int_equal(ef_validate_description(NULL, &err), 0);
}

static void test_base64(void **state)
{
    (void)state;
    unsigned char *out = NULL;
    size_t len = 0;
    assert_int_equal(ef_base64_decode("aGVsbG8=", 8, &out, &len), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(out, "hello", 5);
    free(out);

    /* Line breaks, as `base64` wraps its output, are accepted. */
    assert_int_equal(ef_base64_decode("aGVs\nbG8h\n", 10, &out, &len), 0);
    assert_int_equal(len, 6);
    assert_memory_equal(out, "hello!", 6);
    free(out);

    assert_int_equal(ef_base64_decode("aGVsbG8", 7, &out, &len), -EINVAL); /* truncated */
    assert_int_equal(ef_base64_decode("aGV*bG8=", 8, &out, &len), -EINVAL);
    assert_int_equal(ef_base64_decode("aGVs-bG8", 8, &out, &len), -EINVAL);
    assert_int_equal(ef_base64_decode("not base64!", 11, &out, &len), -EINVAL);

    const unsigned char bin[] = {0, 0xff, 0x10, 0x80, 0x7f};
    char *enc = ef_base64_encode(bin, sizeof(bin));
    assert_string_equal(enc, "AP8QgH8=");
    assert_int_equal(ef_base64_decode(enc, strlen(enc), &out, &len), 0);
    assert_int_equal(len, sizeof(bin));
    assert_memory_equal(out, bin, sizeof(bin));
    free(out);
    free(enc);

    enc = ef_base64_encode("", 0);
    assert_string_equal(enc, "");
    free(enc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_function_names), cmocka_unit_test(test_runtimes),
        cmocka_unit_test(test_handlers),       cmocka_unit_test(test_memory_and_timeout),
        cmocka_unit_test(test_environment),    cmocka_unit_test(test_description),
        cmocka_unit_test(test_base64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
