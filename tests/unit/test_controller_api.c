/* The controller's HTTP API, served for real on port 0 with no funclet running: function
 * creation and lookup, Lambda's error shapes, the request size limit, and what an invocation
 * gets while funclet is away. */
#include <errno.h>
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

#include "controller/base64.h"
#include "controller/codestore.h"
#include "test_controller_harness.h"

static struct harness H;

static int setup(void **state)
{
    (void)state;
    memset(&H, 0, sizeof(H));
    harness_start(&H, 64 * 1024, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    harness_stop(&H, false);
    return 0;
}

static struct http_response post(const char *path, const char *body, const char *headers)
{
    struct http_response r;
    assert_int_equal(http_request(H.port, "POST", path, headers, body, strlen(body), &r), 0);
    return r;
}

static struct http_response get(const char *path)
{
    struct http_response r;
    assert_int_equal(http_request(H.port, "GET", path, NULL, NULL, 0, &r), 0);
    return r;
}

static void test_create_function_shape(void **state)
{
    (void)state;
    size_t zlen = 0;
    void *zip =
        make_zip1("lambda_function.py", "def lambda_handler(e, c):\n    return e\n", false, &zlen);
    char *b64 = ef_base64_encode(zip, zlen);
    char *body = NULL;
    assert_true(asprintf(&body,
                         "{\"FunctionName\":\"hello\",\"Runtime\":\"python3.12\","
                         "\"Handler\":\"lambda_function.lambda_handler\",\"Role\":\"r\","
                         "\"Description\":\"greets\",\"Environment\":{\"Variables\":{\"GREETING\":"
                         "\"hi\"}},\"Code\":{\"ZipFile\":\"%s\"}}",
                         b64) > 0);
    struct http_response r = post("/2015-03-31/functions", body, NULL);
    if (r.status != 201)
        fail_msg("create: %d %s", r.status, r.body);
    char *ct = http_header(&r, "Content-Type");
    assert_string_equal(ct, "application/json");
    free(ct);

    cJSON *j = cJSON_Parse(r.body);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "FunctionName")->valuestring, "hello");
    assert_string_equal(cJSON_GetObjectItem(j, "FunctionArn")->valuestring,
                        "arn:aws:lambda:us-east-1:000000000000:function:hello");
    assert_string_equal(cJSON_GetObjectItem(j, "Runtime")->valuestring, "python3.12");
    assert_string_equal(cJSON_GetObjectItem(j, "Handler")->valuestring,
                        "lambda_function.lambda_handler");
    assert_int_equal(cJSON_GetObjectItem(j, "CodeSize")->valuedouble, (double)zlen);
    assert_int_equal(cJSON_GetObjectItem(j, "MemorySize")->valuedouble, 128); /* default */
    assert_int_equal(cJSON_GetObjectItem(j, "Timeout")->valuedouble, 3);      /* default */
    assert_string_equal(cJSON_GetObjectItem(j, "Description")->valuestring, "greets");
    assert_string_equal(cJSON_GetObjectItem(j, "Version")->valuestring, "$LATEST");
    assert_string_equal(cJSON_GetObjectItem(j, "State")->valuestring, "Active");
    assert_string_equal(cJSON_GetObjectItem(j, "LastUpdateStatus")->valuestring, "Successful");
    assert_string_equal(cJSON_GetObjectItem(j, "PackageType")->valuestring, "Zip");
    cJSON *vars = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "Environment"), "Variables");
    assert_string_equal(cJSON_GetObjectItem(vars, "GREETING")->valuestring, "hi");

    /* CodeSha256 is the base64 of the zip's digest, as Lambda reports it. */
    unsigned char digest[EF_SHA256_LEN];
    ef_sha256(zip, zlen, digest);
    char *want = ef_base64_encode(digest, sizeof(digest));
    assert_string_equal(cJSON_GetObjectItem(j, "CodeSha256")->valuestring, want);
    free(want);

    /* LastModified looks like 2026-11-27T06:30:00.000+0000. */
    char *lm = strdup(cJSON_GetObjectItem(j, "LastModified")->valuestring);
    int y, mo, d, hh, mm, ss, ms;
    char tz[8];
    assert_int_equal(
        sscanf(lm, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%5s", &y, &mo, &d, &hh, &mm, &ss, &ms, tz), 8);
    assert_string_equal(tz, "+0000");
    assert_int_equal(strlen(lm), 28);
    cJSON_Delete(j);
    http_response_free(&r);

    /* The code landed where funclet will look for it, readable by anyone. */
    char hex[EF_SHA256_HEX_LEN + 1];
    ef_sha256_hex(zip, zlen, hex);
    char *p = NULL;
    assert_true(asprintf(&p, "%s/code/extracted/%s/lambda_function.py", H.dir, hex) > 0);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    free(p);
    assert_true(asprintf(&p, "%s/code/zips/%s.zip", H.dir, hex) > 0);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_size, (off_t)zlen);
    free(p);

    /* The same name again conflicts. */
    r = post("/2015-03-31/functions", body, NULL);
    expect_lambda_error(&r, 409, "ResourceConflictException", "hello");

    /* GetFunction returns the configuration and a code location. */
    r = get("/2015-03-31/functions/hello");
    assert_int_equal(r.status, 200);
    j = cJSON_Parse(r.body);
    cJSON *conf = cJSON_GetObjectItem(j, "Configuration");
    assert_string_equal(cJSON_GetObjectItem(conf, "FunctionName")->valuestring, "hello");
    assert_string_equal(cJSON_GetObjectItem(conf, "LastModified")->valuestring, lm);
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(j, "Code"), "RepositoryType")->valuestring, "S3");
    cJSON_Delete(j);
    http_response_free(&r);

    /* ... also when named by its ARN, percent-encoded as SDKs send it. */
    r = get("/2015-03-31/functions/"
            "arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Ahello");
    assert_int_equal(r.status, 200);
    http_response_free(&r);

    free(lm);
    free(body);
    free(b64);
    free(zip);
}

static void test_create_validation_errors(void **state)
{
    (void)state;
    char *b = create_body("f1", "python2.7", "lambda_function.lambda_handler", 3);
    struct http_response r = post("/2015-03-31/functions", b, NULL);
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "python2.7");
    free(b);

    b = create_body("bad name", "python3.12", "lambda_function.lambda_handler", 3);
    r = post("/2015-03-31/functions", b, NULL);
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "functionName");
    free(b);

    b = create_body("f1", "python3.12", "nohandlerdot", 3);
    r = post("/2015-03-31/functions", b, NULL);
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "nohandlerdot");
    free(b);

    b = create_body("f1", "python3.12", "m.h", 901);
    r = post("/2015-03-31/functions", b, NULL);
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "timeout");
    free(b);

    r = post("/2015-03-31/functions",
             "{\"FunctionName\":\"f1\",\"Runtime\":\"python3.12\",\"Handler\":\"m.h\","
             "\"Code\":{\"ZipFile\":\"***not base64***\"}}",
             NULL);
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "base64");

    /* Valid base64 of something that is not a zip. */
    r = post("/2015-03-31/functions",
             "{\"FunctionName\":\"f1\",\"Runtime\":\"python3.12\",\"Handler\":\"m.h\","
             "\"Code\":{\"ZipFile\":\"aGVsbG8gd29ybGQ=\"}}",
             NULL);
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "Could not unzip");

    r = post("/2015-03-31/functions",
             "{\"FunctionName\":\"f1\",\"Runtime\":\"python3.12\",\"Handler\":\"m.h\","
             "\"MemorySize\":64,\"Code\":{\"ZipFile\":\"aGVsbG8=\"}}",
             NULL);
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "memorySize");

    r = post("/2015-03-31/functions",
             "{\"FunctionName\":\"f1\",\"Runtime\":\"python3.12\",\"Handler\":\"m.h\"}", NULL);
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "Code");

    r = post("/2015-03-31/functions", "{not json", NULL);
    expect_lambda_error(&r, 400, "InvalidRequestContentException", "json");

    /* One JSON document and nothing after it; no NUL inside a string, which would cut the name
     * (or an environment value) short. */
    b = create_body("f1", "python3.12", "lambda_function.lambda_handler", 3);
    char *trailing = malloc(strlen(b) + 16);
    sprintf(trailing, "%s GARBAGE", b);
    r = post("/2015-03-31/functions", trailing, NULL);
    expect_lambda_error(&r, 400, "InvalidRequestContentException", "follows the JSON value");
    free(trailing);
    free(b);
    b = create_body("f1\\u0000evil", "python3.12", "lambda_function.lambda_handler", 3);
    r = post("/2015-03-31/functions", b, NULL);
    expect_lambda_error(&r, 400, "InvalidRequestContentException", "NUL");
    free(b);

    /* Numbers no int64_t holds are refused, not converted. */
    r = post("/2015-03-31/functions",
             "{\"FunctionName\":\"f1\",\"Runtime\":\"python3.12\",\"Handler\":\"m.h\","
             "\"MemorySize\":1e400,\"Code\":{\"ZipFile\":\"aGVsbG8=\"}}",
             NULL);
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "MemorySize");

    /* None of these created anything. */
    r = get("/2015-03-31/functions/f1");
    expect_lambda_error(&r, 404, "ResourceNotFoundException",
                        "Function not found: arn:aws:lambda:us-east-1:000000000000:function:f1");
}

/* "Variables": null is no variables, on create and on update: it once stored the text "null",
 * which no container could run. */
static void test_environment_null(void **state)
{
    (void)state;
    char *b = create_body("envnull", "python3.12", "lambda_function.lambda_handler", 3);
    char *with_null = malloc(strlen(b) + 64);
    sprintf(with_null, "{\"Environment\":{\"Variables\":null},%s", b + 1);
    struct http_response r = post("/2015-03-31/functions", with_null, NULL);
    if (r.status != 201)
        fail_msg("create: %d %s", r.status, r.body);
    http_response_free(&r);
    free(with_null);
    free(b);
    for (int round = 0; round < 2; round++) {
        if (round == 1) {
            struct http_response u;
            const char *body = "{\"Environment\":{\"Variables\":null}}";
            assert_int_equal(http_request(H.port, "PUT",
                                          "/2015-03-31/functions/envnull/configuration", NULL, body,
                                          strlen(body), &u),
                             0);
            assert_int_equal(u.status, 200);
            http_response_free(&u);
        }
        r = get("/2015-03-31/functions/envnull/configuration");
        assert_int_equal(r.status, 200);
        cJSON *j = cJSON_Parse(r.body);
        const cJSON *vars = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "Environment"), "Variables");
        if (vars && !cJSON_IsObject(vars))
            fail_msg("Variables is not an object: %s", r.body);
        cJSON_Delete(j);
        http_response_free(&r);
    }
}

static void test_request_too_large(void **state)
{
    (void)state;
    /* The harness limits bodies to 64 KiB. */
    size_t n = 100 * 1024;
    char *big = malloc(n + 1);
    memset(big, 'a', n);
    big[0] = '"';
    big[n - 1] = '"';
    big[n] = '\0';
    struct http_response r;
    assert_int_equal(
        http_request(H.port, "POST", "/2015-03-31/functions/hello/invocations", NULL, big, n, &r),
        0);
    expect_lambda_error(&r, 413, "RequestTooLargeException", "65536");
    free(big);

    /* The server is still serving. */
    r = get("/healthz");
    assert_int_equal(r.status, 200);
    http_response_free(&r);
}

static void test_invoke_without_funclet(void **state)
{
    (void)state;
    struct http_response r = post("/2015-03-31/functions/nope/invocations", "{}", NULL);
    expect_lambda_error(&r, 404, "ResourceNotFoundException", "function:nope");
    r = post("/v1/functions/nope/invocations", "{}", NULL);
    expect_lambda_error(&r, 404, "ResourceNotFoundException", "function:nope");

    char *b = create_body("fn", "python3.12", "lambda_function.lambda_handler", 3);
    r = post("/2015-03-31/functions", b, NULL);
    assert_int_equal(r.status, 201);
    http_response_free(&r);
    free(b);

    r = post("/2015-03-31/functions/fn/invocations", "{\"a\":1}", NULL);
    expect_lambda_error(&r, 503, "ServiceException", "funclet");
    r = post("/v1/functions/fn/invocations", "", NULL);
    expect_lambda_error(&r, 503, "ServiceException", "funclet");

    /* Lambda accepts only JSON events, one document each. */
    r = post("/2015-03-31/functions/fn/invocations", "not json", NULL);
    expect_lambda_error(&r, 400, "InvalidRequestContentException", "json");
    r = post("/2015-03-31/functions/fn/invocations", "{} trailing garbage",
             "X-Amz-Invocation-Type: DryRun\r\n");
    expect_lambda_error(&r, 400, "InvalidRequestContentException", "json");

    /* Versions and aliases do not exist yet. */
    r = post("/2015-03-31/functions/fn/invocations?Qualifier=prod", "{}", NULL);
    expect_lambda_error(&r, 404, "ResourceNotFoundException", "fn");

    /* A dry run checks the function and the payload without running anything. */
    r = post("/2015-03-31/functions/fn/invocations", "{}", "X-Amz-Invocation-Type: DryRun\r\n");
    assert_int_equal(r.status, 204);
    char *version = http_header(&r, "X-Amz-Executed-Version");
    assert_non_null(version);
    assert_string_equal(version, "$LATEST");
    free(version);
    http_response_free(&r);

    /* An accepted event names the version it will run, as every invocation does. */
    r = post("/2015-03-31/functions/fn/invocations", "{}", "X-Amz-Invocation-Type: Event\r\n");
    assert_int_equal(r.status, 202);
    version = http_header(&r, "X-Amz-Executed-Version");
    assert_non_null(version);
    assert_string_equal(version, "$LATEST");
    free(version);
    http_response_free(&r);
}

static void test_healthz_runtimes_and_routing(void **state)
{
    (void)state;
    struct http_response r = get("/healthz");
    assert_int_equal(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    assert_string_equal(cJSON_GetObjectItem(j, "status")->valuestring, "ok");
    assert_string_equal(cJSON_GetObjectItem(j, "funclet")->valuestring, "disconnected");
    cJSON_Delete(j);
    http_response_free(&r);

    /* An error message quoting bytes that are not UTF-8 keeps the JSON body valid UTF-8. */
    r = get("/2015-03-31/functions/%FF");
    assert_true(r.status >= 400 && r.status < 500);
    assert_null(memchr(r.body, 0xFF, r.body_len));
    assert_non_null(strstr(r.body, "\xEF\xBF\xBD"));
    http_response_free(&r);

    /* A query no handler should read: a NUL, or a parameter given twice. */
    r = get("/2015-03-31/functions?MaxItems=1%00garbage");
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "NUL");
    r = get("/2015-03-31/functions?MaxItems=1&MaxItems=2");
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "more than once");

    r = get("/v1/runtimes");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "[]");
    http_response_free(&r);

    r = get("/no/such/route");
    expect_lambda_error(&r, 404, "UnrecognizedClientException", "/no/such/route");
    r = post("/healthz", "{}", NULL);
    expect_lambda_error(&r, 405, "UnrecognizedClientException", "POST");
    r = get("/2015-03-31/functions/x/invocations");
    expect_lambda_error(&r, 405, "UnrecognizedClientException", "GET");
    r = get("/2015-03-31/functions/x/other");
    expect_lambda_error(&r, 404, "UnrecognizedClientException", NULL);
}

static void test_restart_keeps_functions(void **state)
{
    (void)state;
    char *b = create_body("kept", "provided.al2023", "bootstrap", 5);
    struct http_response r = post("/2015-03-31/functions", b, NULL);
    assert_int_equal(r.status, 201);
    http_response_free(&r);
    free(b);

    harness_stop(&H, true);
    harness_start(&H, 64 * 1024, NULL);

    r = get("/2015-03-31/functions/kept");
    assert_int_equal(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    cJSON *conf = cJSON_GetObjectItem(j, "Configuration");
    assert_string_equal(cJSON_GetObjectItem(conf, "Runtime")->valuestring, "provided.al2023");
    assert_int_equal(cJSON_GetObjectItem(conf, "Timeout")->valuedouble, 5);
    cJSON_Delete(j);
    http_response_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_function_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_validation_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_environment_null, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invoke_without_funclet, setup, teardown),
        cmocka_unit_test_setup_teardown(test_healthz_runtimes_and_routing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_keeps_functions, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
