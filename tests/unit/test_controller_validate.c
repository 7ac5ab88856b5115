/* CreateFunction parameter validation and base64, on literal values. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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

static void test_node_handlers(void **state)
{
    (void)state;
    ef_error err = {0};
    assert_int_equal(ef_validate_handler("nodejs20.x", "index.handler", &err), 0);
    assert_int_equal(ef_validate_handler("nodejs20.x", "src/handlers/deep.handler", &err), 0);
    assert_int_equal(ef_validate_handler("nodejs20.x", "bootstrap", &err), -EINVAL);
    assert_true(ef_runtime_is_node("nodejs22.x"));
    assert_true(ef_runtime_is_custom("provided.al2023"));
    assert_false(ef_runtime_is_custom("python3.12"));
}

/* Parses `ref` and checks the name and qualifier it gives. */
static void expect_ref(const char *ref, const char *name, const char *qualifier)
{
    char *n = NULL, *q = NULL;
    ef_error err = {0};
    if (ef_parse_function_ref(ref, &n, &q, &err) < 0)
        fail_msg("'%s' refused: %s", ref, err.msg);
    assert_string_equal(n, name);
    if (qualifier)
        assert_string_equal(q, qualifier);
    else
        assert_null(q);
    free(n);
    free(q);
}

static void test_function_refs(void **state)
{
    (void)state;
    expect_ref("my-function", "my-function", NULL);
    expect_ref("my-function:1", "my-function", "1");
    expect_ref("my-function:$LATEST", "my-function", "$LATEST");
    expect_ref("123456789012:function:my-function", "my-function", NULL);
    expect_ref("123456789012:function:my-function:prod", "my-function", "prod");
    expect_ref("arn:aws:lambda:us-west-2:123456789012:function:my-function", "my-function", NULL);
    expect_ref("arn:aws:lambda:us-east-1:000000000000:function:f:7", "f", "7");
    expect_ref("arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:f", "f", NULL);
    expect_ref("arn:aws-cn:lambda:cn-north-1:123456789012:function:f", "f", NULL);

    /* An ARN may be up to 140 characters, the name inside it at most 64. */
    char ref[200], name64[65];
    memset(name64, 'n', 64);
    name64[64] = '\0';
    snprintf(ref, sizeof(ref), "arn:aws:lambda:us-east-1:123456789012:function:%s:%s", name64,
             "abcdefghijklmnopqrstuv");
    assert_true(strlen(ref) <= 140);
    expect_ref(ref, name64, "abcdefghijklmnopqrstuv");

    char *n = NULL, *q = NULL;
    ef_error err = {0};
    const char *bad[] = {
        "",
        "a b",
        "f:",
        "f:1:2",
        "f:bad.qualifier",
        "arn:aws:lambda:us-east-1:123456789012:function:",
        "arn:aws:s3:us-east-1:123456789012:function:f",
        "arn:aws:lambda:useast1:123456789012:function:f",
        "arn:aws:lambda:us-east-1:1234:function:f",
        "arn:aws:lambda:us-east-1:123456789012:layer:f",
        "arn:aws:lambda:us-east-1:123456789012:function:f:1:2",
        "12345:function:f",
        "123456789012:function:f:1:2",
        "arn:gcp:lambda:us-east-1:123456789012:function:f",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (ef_parse_function_ref(bad[i], &n, &q, &err) != -EINVAL)
            fail_msg("accepted '%s'", bad[i]);
        assert_true(err.msg[0] != '\0');
    }
    /* 141 characters is over the limit, whatever they are. */
    char longref[160];
    memset(longref, 'x', 141);
    longref[141] = '\0';
    assert_int_equal(ef_parse_function_ref(longref, &n, &q, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "140"));
    /* A plain name over 64 characters names the limit of a name. */
    char long_name[70];
    memset(long_name, 'y', 65);
    long_name[65] = '\0';
    assert_int_equal(ef_parse_function_ref(long_name, &n, &q, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "64"));
}

static void test_qualifiers_and_listing(void **state)
{
    (void)state;
    ef_error err = {0};
    assert_int_equal(ef_validate_qualifier("$LATEST", &err), 0);
    assert_int_equal(ef_validate_qualifier("12", &err), 0);
    assert_int_equal(ef_validate_qualifier("prod_v-2", &err), 0);
    assert_int_equal(ef_validate_qualifier("", &err), -EINVAL);
    assert_int_equal(ef_validate_qualifier("a.b", &err), -EINVAL);
    char q[130];
    memset(q, 'q', 129);
    q[129] = '\0';
    assert_int_equal(ef_validate_qualifier(q, &err), -EINVAL);

    int64_t v = 0;
    assert_int_equal(ef_parse_max_items("1", &v, &err), 0);
    assert_int_equal(v, 1);
    assert_int_equal(ef_parse_max_items("10000", &v, &err), 0);
    assert_int_equal(ef_parse_max_items("0", &v, &err), -EINVAL);
    assert_int_equal(ef_parse_max_items("10001", &v, &err), -EINVAL);
    assert_int_equal(ef_parse_max_items("-1", &v, &err), -EINVAL);
    assert_int_equal(ef_parse_max_items("2x", &v, &err), -EINVAL);
    assert_int_equal(ef_parse_max_items("", &v, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "maxItems"));

    /* Reservations must leave 100 of the account's 1000 unreserved. */
    assert_int_equal(ef_validate_reserved_concurrency(0, 0, &err), 0);
    assert_int_equal(ef_validate_reserved_concurrency(900, 0, &err), 0);
    assert_int_equal(ef_validate_reserved_concurrency(901, 0, &err), -EINVAL);
    assert_int_equal(ef_validate_reserved_concurrency(500, 400, &err), 0);
    assert_int_equal(ef_validate_reserved_concurrency(500, 401, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "UnreservedConcurrentExecution"));
    assert_int_equal(ef_validate_reserved_concurrency(-1, 0, &err), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_function_names), cmocka_unit_test(test_runtimes),
        cmocka_unit_test(test_handlers),       cmocka_unit_test(test_memory_and_timeout),
        cmocka_unit_test(test_environment),    cmocka_unit_test(test_description),
        cmocka_unit_test(test_base64),         cmocka_unit_test(test_node_handlers),
        cmocka_unit_test(test_function_refs),  cmocka_unit_test(test_qualifiers_and_listing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
