/* The management API served for real (port 0, real SQLite and code store, no funclet):
 * listing and paging, GetFunctionConfiguration, updates, versions and qualifiers, deletion and
 * the code garbage it leaves, concurrency, request size limits, the 409 of an update in
 * progress, and SigV4 authentication with --auth-keys. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "controller/base64.h"
#include "controller/codestore.h"
#include "controller/sigv4.h"
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

static struct http_response call(const char *method, const char *path, const char *body)
{
    struct http_response r;
    assert_int_equal(http_request(H.port, method, path, NULL, body, body ? strlen(body) : 0, &r),
                     0);
    return r;
}

/* Asserts the status and returns the parsed JSON body (freed by the caller). */
static cJSON *expect_json(struct http_response *r, int status)
{
    if (r->status != status)
        fail_msg("expected %d, got %d: %s", status, r->status, r->body);
    cJSON *j = cJSON_Parse(r->body);
    if (!j)
        fail_msg("not JSON: %s", r->body);
    http_response_free(r);
    return j;
}

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(o, key);
    if (!cJSON_IsString(v))
        fail_msg("%s is not a string", key);
    return v->valuestring;
}

static void create(const char *name, const char *code)
{
    size_t len = 0;
    void *zip = make_zip1("lambda_function.py", code, false, &len);
    char *b64 = ef_base64_encode(zip, len);
    char *body = NULL;
    assert_true(asprintf(&body,
                         "{\"FunctionName\":\"%s\",\"Runtime\":\"python3.12\","
                         "\"Handler\":\"lambda_function.lambda_handler\",\"Role\":\"r\","
                         "\"Code\":{\"ZipFile\":\"%s\"}}",
                         name, b64) > 0);
    struct http_response r = call("POST", "/2015-03-31/functions", body);
    if (r.status != 201)
        fail_msg("create %s: %d %s", name, r.status, r.body);
    http_response_free(&r);
    free(body);
    free(b64);
    free(zip);
}

/* The hex sha256 of the zip make_zip1 builds for `code`. */
static void code_hex(const char *code, char hex[EF_SHA256_HEX_LEN + 1])
{
    size_t len = 0;
    void *zip = make_zip1("lambda_function.py", code, false, &len);
    ef_sha256_hex(zip, len, hex);
    free(zip);
}

static bool code_on_disk(const char *hex)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/code/zips/%s.zip", H.dir, hex);
    bool zip = access(p, F_OK) == 0;
    snprintf(p, sizeof(p), "%s/code/extracted/%s", H.dir, hex);
    return zip || access(p, F_OK) == 0;
}

/* Collections run on the thread pool after the answer; wait for the outcome. */
static void wait_code_gone(const char *hex)
{
    for (int i = 0; i < 200 && code_on_disk(hex); i++)
        usleep(10000);
    if (code_on_disk(hex))
        fail_msg("code %s is still on disk", hex);
}

static void test_list_paging(void **state)
{
    (void)state;
    const char *names[] = {"echo", "alpha", "delta", "bravo", "charlie"};
    for (size_t i = 0; i < 5; i++)
        create(names[i], "def lambda_handler(e, c):\n    return 1\n");

    /* Pages of two, in name order, linked by NextMarker. */
    const char *want[] = {"alpha", "bravo", "charlie", "delta", "echo"};
    size_t seen = 0;
    char path[256] = "/2015-03-31/functions/?MaxItems=2";
    for (int page = 0; page < 3; page++) {
        struct http_response r = call("GET", path, NULL);
        cJSON *j = expect_json(&r, 200);
        cJSON *fns = cJSON_GetObjectItem(j, "Functions");
        cJSON *f;
        cJSON_ArrayForEach(f, fns)
        {
            assert_string_equal(str(f, "FunctionName"), want[seen++]);
            assert_string_equal(str(f, "Version"), "$LATEST");
        }
        cJSON *next = cJSON_GetObjectItem(j, "NextMarker");
        if (page < 2) {
            assert_true(cJSON_IsString(next));
            snprintf(path, sizeof(path), "/2015-03-31/functions/?MaxItems=2&Marker=%s",
                     next->valuestring);
        } else {
            assert_null(next);
        }
        cJSON_Delete(j);
    }
    assert_int_equal(seen, 5);

    /* Without MaxItems everything fits in one page; without the slash too. */
    struct http_response r = call("GET", "/2015-03-31/functions", NULL);
    cJSON *j = expect_json(&r, 200);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "Functions")), 5);
    assert_null(cJSON_GetObjectItem(j, "NextMarker"));
    cJSON_Delete(j);

    r = call("GET", "/2015-03-31/functions/?MaxItems=0", NULL);
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "maxItems");
    r = call("GET", "/2015-03-31/functions/?MaxItems=lots", NULL);
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "maxItems");
    r = call("GET", "/2015-03-31/functions/?Marker=not%20a%20marker", NULL);
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "Marker");
    r = call("GET", "/2015-03-31/functions/?FunctionVersion=SOME", NULL);
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "ALL");
    r = call("DELETE", "/2015-03-31/functions/", NULL);
    expect_lambda_error(&r, 405, "UnrecognizedClientException", "GET or POST");
}

static void test_versions_and_qualifiers(void **state)
{
    (void)state;
    create("v", "def lambda_handler(e, c):\n    return 1\n");

    struct http_response r = call("GET", "/2015-03-31/functions/v/configuration", NULL);
    cJSON *j = expect_json(&r, 200);
    assert_string_equal(str(j, "Version"), "$LATEST");
    assert_string_equal(str(j, "FunctionArn"), "arn:aws:lambda:us-east-1:000000000000:function:v");
    cJSON_Delete(j);

    r = call("GET", "/2015-03-31/functions/v/configuration?Qualifier=1", NULL);
    expect_lambda_error(&r, 404, "ResourceNotFoundException", "function:v:1");

    /* PublishVersion without a body, then again: nothing changed, the same version. */
    r = call("POST", "/2015-03-31/functions/v/versions", NULL);
    j = expect_json(&r, 201);
    assert_string_equal(str(j, "Version"), "1");
    assert_string_equal(str(j, "FunctionArn"),
                        "arn:aws:lambda:us-east-1:000000000000:function:v:1");
    char sha[64];
    snprintf(sha, sizeof(sha), "%s", str(j, "CodeSha256"));
    cJSON_Delete(j);
    r = call("POST", "/2015-03-31/functions/v/versions", "{\"Description\":\"again\"}");
    j = expect_json(&r, 201);
    assert_string_equal(str(j, "Version"), "1");
    cJSON_Delete(j);

    /* A new configuration makes the next publish a new version; version 1 is unchanged. */
    r = call("PUT", "/2015-03-31/functions/v/configuration",
             "{\"MemorySize\":512,\"Timeout\":30,\"Description\":\"bigger\","
             "\"Environment\":{\"Variables\":{\"K\":\"v\"}}}");
    j = expect_json(&r, 200);
    assert_int_equal(cJSON_GetObjectItem(j, "MemorySize")->valueint, 512);
    assert_int_equal(cJSON_GetObjectItem(j, "Timeout")->valueint, 30);
    assert_string_equal(str(j, "Description"), "bigger");
    assert_string_equal(
        str(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "Environment"), "Variables"), "K"), "v");
    cJSON_Delete(j);
    char body[200];
    snprintf(body, sizeof(body), "{\"CodeSha256\":\"%s\",\"Description\":\"second\"}", sha);
    r = call("POST", "/2015-03-31/functions/v/versions", body);
    j = expect_json(&r, 201);
    assert_string_equal(str(j, "Version"), "2");
    assert_string_equal(str(j, "Description"), "second");
    cJSON_Delete(j);
    r = call("POST", "/2015-03-31/functions/v/versions",
             "{\"CodeSha256\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}");
    expect_lambda_error(&r, 412, "PreconditionFailedException", "CodeSHA256");

    /* Every way of naming version 1 finds it. */
    const char *paths[] = {
        "/2015-03-31/functions/v/configuration?Qualifier=1",
        "/2015-03-31/functions/v%3A1/configuration",
        "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Av%3A1/"
        "configuration",
        "/2015-03-31/functions/123456789012%3Afunction%3Av/configuration?Qualifier=1",
    };
    for (size_t i = 0; i < 4; i++) {
        r = call("GET", paths[i], NULL);
        j = expect_json(&r, 200);
        assert_string_equal(str(j, "Version"), "1");
        assert_int_equal(cJSON_GetObjectItem(j, "MemorySize")->valueint, 128);
        cJSON_Delete(j);
    }
    r = call("GET", "/2015-03-31/functions/v?Qualifier=2", NULL);
    j = expect_json(&r, 200);
    assert_string_equal(str(cJSON_GetObjectItem(j, "Configuration"), "Version"), "2");
    cJSON_Delete(j);

    r = call("GET", "/2015-03-31/functions/v%3A1?Qualifier=2", NULL);
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "qualifier");
    r = call("GET", "/2015-03-31/functions/v?Qualifier=a.b", NULL);
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "qualifier");
    r = call("GET", "/2015-03-31/functions/v?Qualifier=prod", NULL);
    expect_lambda_error(&r, 404, "ResourceNotFoundException", "function:v:prod");
    r = call("POST", "/2015-03-31/functions/v/invocations?Qualifier=9", "{}");
    expect_lambda_error(&r, 404, "ResourceNotFoundException", "function:v:9");
    r = call("PUT", "/2015-03-31/functions/v%3A1/configuration", "{\"Timeout\":5}");
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "immutable");

    /* ListVersionsByFunction: $LATEST first, then 1 and 2, paged. */
    r = call("GET", "/2015-03-31/functions/v/versions?MaxItems=2", NULL);
    j = expect_json(&r, 200);
    cJSON *vs = cJSON_GetObjectItem(j, "Versions");
    assert_int_equal(cJSON_GetArraySize(vs), 2);
    assert_string_equal(str(cJSON_GetArrayItem(vs, 0), "Version"), "$LATEST");
    assert_string_equal(str(cJSON_GetArrayItem(vs, 0), "FunctionArn"),
                        "arn:aws:lambda:us-east-1:000000000000:function:v:$LATEST");
    assert_string_equal(str(cJSON_GetArrayItem(vs, 1), "Version"), "1");
    char next[128];
    snprintf(next, sizeof(next), "/2015-03-31/functions/v/versions?Marker=%s",
             str(j, "NextMarker"));
    cJSON_Delete(j);
    r = call("GET", next, NULL);
    j = expect_json(&r, 200);
    vs = cJSON_GetObjectItem(j, "Versions");
    assert_int_equal(cJSON_GetArraySize(vs), 1);
    assert_string_equal(str(cJSON_GetArrayItem(vs, 0), "Version"), "2");
    assert_null(cJSON_GetObjectItem(j, "NextMarker"));
    cJSON_Delete(j);

    /* ListFunctions with FunctionVersion=ALL shows the versions too. */
    r = call("GET", "/2015-03-31/functions/?FunctionVersion=ALL", NULL);
    j = expect_json(&r, 200);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "Functions")), 3);
    cJSON_Delete(j);

    /* Deleting: $LATEST alone cannot go, a version can (once), an alias does not exist. */
    r = call("DELETE", "/2015-03-31/functions/v?Qualifier=$LATEST", NULL);
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "$LATEST");
    r = call("DELETE", "/2015-03-31/functions/v?Qualifier=1", NULL);
    assert_int_equal(r.status, 204);
    http_response_free(&r);
    r = call("DELETE", "/2015-03-31/functions/v%3A1", NULL);
    expect_lambda_error(&r, 404, "ResourceNotFoundException", "function:v:1");
    r = call("DELETE", "/2015-03-31/functions/v?Qualifier=live", NULL);
    expect_lambda_error(&r, 404, "ResourceNotFoundException", "function:v:live");
    r = call("POST", "/2015-03-31/functions/v/versions", NULL);
    j = expect_json(&r, 201);
    assert_string_equal(str(j, "Version"), "2"); /* unchanged since 2 */
    cJSON_Delete(j);

    r = call("GET", "/2015-03-31/functions/nope/versions", NULL);
    expect_lambda_error(&r, 404, "ResourceNotFoundException", "function:nope");
    r = call("POST", "/2015-03-31/functions/nope/versions", NULL);
    expect_lambda_error(&r, 404, "ResourceNotFoundException", "function:nope");
}

static void test_updates_and_garbage(void **state)
{
    (void)state;
    const char *old_code = "def lambda_handler(e, c):\n    return 'old'\n";
    const char *new_code = "def lambda_handler(e, c):\n    return 'new'\n";
    char old_hex[EF_SHA256_HEX_LEN + 1], new_hex[EF_SHA256_HEX_LEN + 1];
    code_hex(old_code, old_hex);
    code_hex(new_code, new_hex);
    create("u", old_code);
    assert_true(code_on_disk(old_hex));

    /* Invalid configurations change nothing. */
    struct http_response r =
        call("PUT", "/2015-03-31/functions/u/configuration", "{\"MemorySize\":64}");
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "memorySize");
    r = call("PUT", "/2015-03-31/functions/u/configuration", "{\"Timeout\":901}");
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "timeout");
    r = call("PUT", "/2015-03-31/functions/u/configuration", "{\"Runtime\":\"cobol85\"}");
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "cobol85");
    r = call("PUT", "/2015-03-31/functions/u/configuration", "{\"Handler\":\"nodot\"}");
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "nodot");
    r = call("PUT", "/2015-03-31/functions/u/configuration",
             "{\"Environment\":{\"Variables\":{\"AWS_REGION\":\"x\"}}}");
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "reserved");
    r = call("PUT", "/2015-03-31/functions/u/configuration", "{\"MemorySize\":\"big\"}");
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "MemorySize");
    r = call("PUT", "/2015-03-31/functions/u/configuration", "[]");
    expect_lambda_error(&r, 400, "InvalidRequestContentException", "json");
    r = call("PUT", "/2015-03-31/functions/ghost/configuration", "{\"Timeout\":5}");
    expect_lambda_error(&r, 404, "ResourceNotFoundException", "function:ghost");
    r = call("GET", "/2015-03-31/functions/u/configuration", NULL);
    cJSON *j = expect_json(&r, 200);
    assert_int_equal(cJSON_GetObjectItem(j, "MemorySize")->valueint, 128);
    cJSON_Delete(j);

    /* A runtime change is checked against the handler the function keeps. */
    r = call("PUT", "/2015-03-31/functions/u/configuration",
             "{\"Runtime\":\"provided.al2023\",\"Environment\":{}}");
    j = expect_json(&r, 200);
    assert_string_equal(str(j, "Runtime"), "provided.al2023");
    assert_string_equal(str(j, "Handler"), "lambda_function.lambda_handler");
    cJSON_Delete(j);

    /* UpdateFunctionCode: DryRun stores nothing, a real one swaps the code and the old zip goes
     * once nothing refers to it. */
    size_t len = 0;
    void *zip = make_zip1("lambda_function.py", new_code, false, &len);
    char *b64 = ef_base64_encode(zip, len);
    char *body = NULL;
    assert_true(asprintf(&body, "{\"ZipFile\":\"%s\",\"DryRun\":true}", b64) > 0);
    r = call("PUT", "/2015-03-31/functions/u/code", body);
    j = expect_json(&r, 200);
    cJSON_Delete(j);
    assert_false(code_on_disk(new_hex));
    free(body);

    assert_true(asprintf(&body, "{\"ZipFile\":\"%s\",\"Publish\":true}", b64) > 0);
    r = call("PUT", "/2015-03-31/functions/u/code", body);
    j = expect_json(&r, 200);
    assert_string_equal(str(j, "Version"), "1");
    assert_int_equal(cJSON_GetObjectItem(j, "CodeSize")->valuedouble, (double)len);
    cJSON_Delete(j);
    assert_true(code_on_disk(new_hex));
    wait_code_gone(old_hex);

    r = call("PUT", "/2015-03-31/functions/ghost/code", body);
    expect_lambda_error(&r, 404, "ResourceNotFoundException", "function:ghost");
    r = call("PUT", "/2015-03-31/functions/u%3A1/code", body);
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "immutable");
    free(body);
    r = call("PUT", "/2015-03-31/functions/u/code", "{\"ZipFile\":\"!!!\"}");
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "base64");
    r = call("PUT", "/2015-03-31/functions/u/code", "{\"S3Bucket\":\"b\",\"S3Key\":\"k\"}");
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "S3");
    r = call("PUT", "/2015-03-31/functions/u/code", "{\"ZipFile\":\"aGVsbG8=\"}");
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "unzip");

    /* Version 1 still refers to the new code: deleting $LATEST's reference alone keeps it. The
     * function's deletion drops both, and the code goes. */
    r = call("DELETE", "/2015-03-31/functions/u", NULL);
    assert_int_equal(r.status, 204);
    http_response_free(&r);
    wait_code_gone(new_hex);
    r = call("GET", "/2015-03-31/functions/u", NULL);
    expect_lambda_error(&r, 404, "ResourceNotFoundException", "function:u");
    r = call("GET", "/2015-03-31/functions/u?Qualifier=1", NULL);
    expect_lambda_error(&r, 404, "ResourceNotFoundException", "function:u:1");
    r = call("DELETE", "/2015-03-31/functions/u", NULL);
    expect_lambda_error(&r, 404, "ResourceNotFoundException", "function:u");
    free(b64);
    free(zip);
}

static void test_concurrency(void **state)
{
    (void)state;
    create("c", "def lambda_handler(e, c):\n    return 1\n");
    create("d", "def lambda_handler(e, c):\n    return 1\n");

    struct http_response r = call("GET", "/2019-09-30/functions/c/concurrency", NULL);
    cJSON *j = expect_json(&r, 200);
    assert_null(cJSON_GetObjectItem(j, "ReservedConcurrentExecutions"));
    cJSON_Delete(j);

    r = call("PUT", "/2017-10-31/functions/c/concurrency", "{\"ReservedConcurrentExecutions\":5}");
    j = expect_json(&r, 200);
    assert_int_equal(cJSON_GetObjectItem(j, "ReservedConcurrentExecutions")->valueint, 5);
    cJSON_Delete(j);
    r = call("GET", "/2019-09-30/functions/c/concurrency", NULL);
    j = expect_json(&r, 200);
    assert_int_equal(cJSON_GetObjectItem(j, "ReservedConcurrentExecutions")->valueint, 5);
    cJSON_Delete(j);
    r = call("GET", "/2017-10-31/functions/c/concurrency", NULL);
    j = expect_json(&r, 200);
    assert_int_equal(cJSON_GetObjectItem(j, "ReservedConcurrentExecutions")->valueint, 5);
    cJSON_Delete(j);
    r = call("GET", "/2015-03-31/functions/c", NULL);
    j = expect_json(&r, 200);
    assert_int_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(j, "Concurrency"), "ReservedConcurrentExecutions")
            ->valueint,
        5);
    cJSON_Delete(j);

    /* 900 may be reserved in all; c holds 5 of them. */
    r = call("PUT", "/2017-10-31/functions/d/concurrency",
             "{\"ReservedConcurrentExecutions\":896}");
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "UnreservedConcurrentExecution");
    r = call("PUT", "/2017-10-31/functions/d/concurrency",
             "{\"ReservedConcurrentExecutions\":895}");
    assert_int_equal(r.status, 200);
    http_response_free(&r);
    r = call("PUT", "/2017-10-31/functions/d/concurrency", "{\"ReservedConcurrentExecutions\":-1}");
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "greater than or equal to 0");
    r = call("PUT", "/2017-10-31/functions/d/concurrency", "{}");
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "ReservedConcurrentExecutions");
    r = call("PUT", "/2017-10-31/functions/ghost/concurrency",
             "{\"ReservedConcurrentExecutions\":1}");
    expect_lambda_error(&r, 404, "ResourceNotFoundException", "function:ghost");
    r = call("PUT", "/2019-09-30/functions/c/concurrency", "{\"ReservedConcurrentExecutions\":1}");
    expect_lambda_error(&r, 405, "UnrecognizedClientException", "GET");

    /* Zero throttles every invocation, with Lambda's reason; a dry run still checks out. */
    r = call("PUT", "/2017-10-31/functions/c/concurrency", "{\"ReservedConcurrentExecutions\":0}");
    http_response_free(&r);
    r = call("POST", "/2015-03-31/functions/c/invocations", "{}");
    assert_int_equal(r.status, 429);
    j = cJSON_Parse(r.body);
    assert_string_equal(str(j, "Reason"), "ReservedFunctionConcurrentInvocationLimitExceeded");
    cJSON_Delete(j);
    expect_lambda_error(&r, 429, "TooManyRequestsException", "Rate Exceeded");

    r = call("DELETE", "/2017-10-31/functions/c/concurrency", NULL);
    assert_int_equal(r.status, 204);
    http_response_free(&r);
    r = call("GET", "/2019-09-30/functions/c/concurrency", NULL);
    j = expect_json(&r, 200);
    assert_null(cJSON_GetObjectItem(j, "ReservedConcurrentExecutions"));
    cJSON_Delete(j);
    r = call("DELETE", "/2017-10-31/functions/ghost/concurrency", NULL);
    expect_lambda_error(&r, 404, "ResourceNotFoundException", "function:ghost");
    /* Without a reservation the invocation goes on (and meets the missing funclet). */
    r = call("POST", "/2015-03-31/functions/c/invocations", "{}");
    expect_lambda_error(&r, 503, "ServiceException", "funclet");
}

static void test_size_limits(void **state)
{
    (void)state;
    /* Management bodies may exceed the invocation limit (64 KiB here), up to their own. */
    harness_stop(&H, false);
    memset(&H, 0, sizeof(H));
    H.max_code_request_size = 1024 * 1024;
    harness_start(&H, 64 * 1024, NULL);

    size_t n = 200 * 1024;
    char *big = malloc(n + 64);
    int k = snprintf(big, n + 64,
                     "{\"FunctionName\":\"big\",\"Runtime\":\"python3.12\","
                     "\"Handler\":\"m.h\",\"Code\":{\"ZipFile\":\"");
    memset(big + k, 'A', n - (size_t)k - 4);
    strcpy(big + n - 4, "\"}}");
    struct http_response r;
    assert_int_equal(
        http_request(H.port, "POST", "/2015-03-31/functions", NULL, big, strlen(big), &r), 0);
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "unzip");

    /* The same size as an invocation is over its limit, on both invoke paths. */
    memset(big, ' ', n);
    memcpy(big, "{}", 2);
    assert_int_equal(
        http_request(H.port, "POST", "/2015-03-31/functions/big/invocations", NULL, big, n, &r), 0);
    expect_lambda_error(&r, 413, "RequestTooLargeException", "65536 bytes for the InvokeFunction");
    assert_int_equal(
        http_request(H.port, "POST", "/v1/functions/big/invocations", NULL, big, n, &r), 0);
    expect_lambda_error(&r, 413, "RequestTooLargeException", "InvokeFunction");
    free(big);

    /* Beyond the management limit the server itself refuses. */
    n = 1100 * 1024;
    big = calloc(1, n);
    assert_int_equal(http_request(H.port, "POST", "/2015-03-31/functions", NULL, big, n, &r), 0);
    expect_lambda_error(&r, 413, "RequestTooLargeException", NULL);
    free(big);
}

static void test_zip_over_50mb(void **state)
{
    (void)state;
    /* The default management limit (70 MiB) admits the base64 of a 51 MiB zip, which Lambda's
     * 50 MB limit on zipped code then refuses. */
    size_t zip_len = 51u * 1024 * 1024;
    size_t b64_len = (zip_len + 2) / 3 * 4;
    char *body = malloc(b64_len + 256);
    int k = snprintf(body, 256,
                     "{\"FunctionName\":\"huge\",\"Runtime\":\"python3.12\","
                     "\"Handler\":\"m.h\",\"Code\":{\"ZipFile\":\"");
    memset(body + k, 'A', b64_len);
    strcpy(body + k + b64_len, "\"}}");
    struct http_response r;
    assert_int_equal(
        http_request(H.port, "POST", "/2015-03-31/functions", NULL, body, strlen(body), &r), 0);
    expect_lambda_error(&r, 413, "RequestTooLargeException", "52428800");
    free(body);
    r = call("GET", "/2015-03-31/functions/huge", NULL);
    expect_lambda_error(&r, 404, "ResourceNotFoundException", NULL);
}

/* ---- 409 while an update is in progress ---- */

/* Work that holds a thread of libuv's pool until released, so that the code lane's upload
 * stays queued for as long as the test needs. */
struct blocker {
    uv_work_t work;
    uv_sem_t *release;
};

static uv_sem_t release_sem;
static struct blocker blockers[4];

static void block_work(uv_work_t *w)
{
    struct blocker *b = (struct blocker *)w;
    uv_sem_wait(b->release);
}

static void block_after(uv_work_t *w, int status)
{
    (void)w;
    (void)status;
}

static void start_blockers(struct harness *h, void *arg)
{
    (void)arg;
    for (int i = 0; i < 4; i++) {
        blockers[i].release = &release_sem;
        assert_int_equal(uv_queue_work(&h->loop, &blockers[i].work, block_work, block_after), 0);
    }
}

/* Sends a request without waiting for its answer; returns the socket. */
static int send_only(const char *method, const char *path, const char *body)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)H.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    char *req = NULL;
    int n = asprintf(&req,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     method, path, strlen(body), body);
    assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    free(req);
    return fd;
}

static int read_status(int fd)
{
    char buf[4096];
    size_t len = 0;
    ssize_t k;
    while (len < sizeof(buf) - 1 && (k = recv(fd, buf + len, sizeof(buf) - 1 - len, 0)) > 0)
        len += (size_t)k;
    buf[len] = '\0';
    close(fd);
    int status = 0;
    assert_int_equal(sscanf(buf, "HTTP/1.1 %d", &status), 1);
    return status;
}

static void test_update_in_progress(void **state)
{
    (void)state;
    create("busy", "def lambda_handler(e, c):\n    return 1\n");
    assert_int_equal(uv_sem_init(&release_sem, 0), 0);
    harness_on_loop(&H, start_blockers, NULL);

    size_t len = 0;
    void *zip =
        make_zip1("lambda_function.py", "def lambda_handler(e, c):\n    return 2\n", false, &len);
    char *b64 = ef_base64_encode(zip, len);
    char *body = NULL;
    assert_true(asprintf(&body, "{\"ZipFile\":\"%s\"}", b64) > 0);
    int fd = send_only("PUT", "/2015-03-31/functions/busy/code", body);

    /* Until the upload is stored, other changes to the function are refused. */
    struct http_response r;
    for (int i = 0; i < 100; i++) {
        r = call("PUT", "/2015-03-31/functions/busy/configuration", "{\"Timeout\":9}");
        if (r.status == 409)
            break;
        http_response_free(&r); /* the upload request was not read yet */
        usleep(10000);
    }
    expect_lambda_error(&r, 409, "ResourceConflictException", "update is in progress");
    r = call("PUT", "/2015-03-31/functions/busy/code", body);
    expect_lambda_error(&r, 409, "ResourceConflictException", "function:busy");
    r = call("POST", "/2015-03-31/functions/busy/versions", NULL);
    expect_lambda_error(&r, 409, "ResourceConflictException", NULL);
    /* Reading and other functions are not held up. */
    r = call("GET", "/2015-03-31/functions/busy", NULL);
    assert_int_equal(r.status, 200);
    http_response_free(&r);

    for (int i = 0; i < 4; i++)
        uv_sem_post(&release_sem);
    assert_int_equal(read_status(fd), 200);
    r = call("PUT", "/2015-03-31/functions/busy/configuration", "{\"Timeout\":9}");
    assert_int_equal(r.status, 200);
    http_response_free(&r);
    free(body);
    free(b64);
    free(zip);
}

/* ---- authentication ---- */

/* Sends a request signed with `id`/`secret` at the current time, as an SDK would. */
static struct http_response signed_call(const char *method, const char *path, const char *id,
                                        const char *secret)
{
    char amz_date[17];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(amz_date, sizeof(amz_date), "%Y%m%dT%H%M%SZ", &tm);
    char *p = strdup(path);
    char *q = strchr(p, '?');
    if (q)
        *q++ = '\0';
    struct ef_http_header headers[] = {{"Host", "127.0.0.1"}, {"X-Amz-Date", amz_date}};
    char hash[EF_SIGV4_HEX_LEN + 1], sig[EF_SIGV4_HEX_LEN + 1], scope[64];
    ef_sigv4_payload_hash("", 0, hash);
    char *creq = NULL;
    assert_int_equal(ef_sigv4_canonical_request(method, p, q ? q : "", headers, 2,
                                                "host;x-amz-date", hash, &creq, NULL),
                     0);
    snprintf(scope, sizeof(scope), "%.8s/eu-west-1/lambda/aws4_request", amz_date);
    char *sts = ef_sigv4_string_to_sign(amz_date, scope, creq);
    char date[9];
    snprintf(date, sizeof(date), "%.8s", amz_date);
    ef_sigv4_signature(secret, date, "eu-west-1", "lambda", sts, sig);
    char *extra = NULL;
    assert_true(asprintf(&extra,
                         "X-Amz-Date: %s\r\nAuthorization: AWS4-HMAC-SHA256 Credential=%s/%s, "
                         "SignedHeaders=host;x-amz-date, Signature=%s\r\n",
                         amz_date, id, scope, sig) > 0);
    struct http_response r;
    assert_int_equal(http_request(H.port, method, path, extra, NULL, 0, &r), 0);
    free(extra);
    free(creq);
    free(sts);
    free(p);
    return r;
}

/* A file made with mkstemp from `tmpl`, holding `text`, with `mode`. */
static void secret_file(char *tmpl, const char *text, mode_t mode)
{
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

/* The controller refuses to start with these secret files (either may be NULL): error `code`,
 * a message with `needle`. */
static void expect_start_refused(const char *keys_path, const char *token_path, int code,
                                 const char *needle)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct ef_controller ctl;
    char dir[] = "/tmp/ef-ctl-secret-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct ef_controller_config config = {.data_dir = dir,
                                          .listen = "127.0.0.1",
                                          .funclet_socket = "/nonexistent/funclet.sock",
                                          .max_request_size = 64 * 1024,
                                          .auth_keys_path = keys_path,
                                          .metrics_token_path = token_path};
    ef_error err = {0};
    assert_int_equal(ef_controller_start(&ctl, &loop, &config, &err), code);
    if (!strstr(err.msg, needle))
        fail_msg("'%s' lacks '%s'", err.msg, needle);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_auth(void **state)
{
    (void)state;
    harness_stop(&H, false);
    memset(&H, 0, sizeof(H));
    /* A key file others can read keeps the controller from starting. */
    char keys[] = "/tmp/ef-keys-XXXXXX";
    secret_file(keys, "AKIDPOD podsecret\n", 0644);
    expect_start_refused(keys, NULL, -EPERM, "chmod 600");
    assert_int_equal(chmod(keys, 0600), 0);
    H.auth_keys_path = keys;
    harness_start(&H, 64 * 1024, NULL);
    unlink(keys); /* read at start only */

    struct http_response r = call("GET", "/2015-03-31/functions/", NULL);
    expect_lambda_error(&r, 403, "MissingAuthenticationTokenException",
                        "Missing Authentication Token");
    r = call("POST", "/2015-03-31/functions/f/invocations", "{}");
    expect_lambda_error(&r, 403, "MissingAuthenticationTokenException", NULL);
    r = call("GET", "/v1/runtimes", NULL);
    expect_lambda_error(&r, 403, "MissingAuthenticationTokenException", NULL);
    r = call("GET", "/healthz", NULL); /* probes stay open */
    assert_int_equal(r.status, 200);
    http_response_free(&r);
    r = call("GET", "/metrics", NULL); /* and scrapes, without --metrics-token */
    assert_int_equal(r.status, 200);
    http_response_free(&r);

    r = signed_call("GET", "/2015-03-31/functions/?MaxItems=5", "AKIDPOD", "podsecret");
    cJSON *j = expect_json(&r, 200);
    assert_non_null(cJSON_GetObjectItem(j, "Functions"));
    cJSON_Delete(j);
    r = signed_call("GET", "/2015-03-31/functions/nope", "AKIDPOD", "podsecret");
    expect_lambda_error(&r, 404, "ResourceNotFoundException", NULL);
    r = signed_call("GET", "/2015-03-31/functions/", "AKIDPOD", "wrongsecret");
    expect_lambda_error(&r, 403, "InvalidSignatureException", "signature");
    r = signed_call("GET", "/2015-03-31/functions/", "AKIDOTHER", "podsecret");
    expect_lambda_error(&r, 403, "UnrecognizedClientException", "security token");

    /* An unsigned request is refused when its headers are in, before any of its body is read:
     * an unsigned client cannot make the controller buffer a code route's 70 MiB. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)H.port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    const char head[] = "POST /2015-03-31/functions HTTP/1.1\r\nHost: x\r\n"
                        "Content-Length: 10000000\r\n\r\n";
    assert_int_equal(send(fd, head, strlen(head), 0), (ssize_t)strlen(head));
    char answer[4096];
    ssize_t n = recv(fd, answer, sizeof(answer) - 1, 0);
    close(fd);
    if (n <= 0)
        fail_msg("no answer to an unsigned request before its body");
    answer[n] = '\0';
    assert_non_null(strstr(answer, "HTTP/1.1 403"));
    assert_non_null(strstr(answer, "MissingAuthenticationTokenException"));
}

/* GET /metrics with an Authorization header. */
static struct http_response metrics_with(const char *authorization)
{
    char *extra = NULL;
    assert_true(asprintf(&extra, "Authorization: %s\r\n", authorization) > 0);
    struct http_response r;
    assert_int_equal(http_request(H.port, "GET", "/metrics", extra, NULL, 0, &r), 0);
    free(extra);
    return r;
}

/* --metrics-token: GET /metrics needs the bearer token, or with --auth-keys a signature; other
 * routes are not opened by the token; a readable or short token keeps the controller down. */
static void test_metrics_token(void **state)
{
    (void)state;
    harness_stop(&H, false);
    memset(&H, 0, sizeof(H));
    char loose[] = "/tmp/ef-token-XXXXXX", shorter[] = "/tmp/ef-token-XXXXXX";
    char spaced[] = "/tmp/ef-token-XXXXXX", empty[] = "/tmp/ef-token-XXXXXX";
    secret_file(loose, "0123456789abcdef-scrape\n", 0644);
    secret_file(shorter, "0123456789\n", 0600);
    secret_file(spaced, "0123456789 abcdef-scrape\n", 0600);
    secret_file(empty, "# no token\n\n", 0600);
    expect_start_refused(NULL, loose, -EPERM, "chmod 600");
    expect_start_refused(NULL, shorter, -EINVAL, "between 16 and 4096");
    expect_start_refused(NULL, spaced, -EINVAL, "without spaces");
    expect_start_refused(NULL, empty, -EINVAL, "holds no token");
    expect_start_refused(NULL, "/nonexistent/token", -ENOENT, "cannot open the metrics token file");
    /* A FIFO is refused, not waited on. */
    char fifo[64];
    snprintf(fifo, sizeof(fifo), "/tmp/ef-token-fifo-%d", (int)getpid());
    assert_int_equal(mkfifo(fifo, 0600), 0);
    expect_start_refused(NULL, fifo, -EINVAL, "is not a regular file");
    unlink(fifo);
    unlink(loose);
    unlink(shorter);
    unlink(spaced);
    unlink(empty);

    char keys[] = "/tmp/ef-keys-XXXXXX", token[] = "/tmp/ef-token-XXXXXX";
    secret_file(keys, "AKIDPOD podsecret\n", 0600);
    secret_file(token, "# the scrape token\n  0123456789abcdef-scrape \n", 0600);
    H.auth_keys_path = keys;
    H.metrics_token_path = token;
    harness_start(&H, 64 * 1024, NULL);
    unlink(keys); /* read at start only */
    unlink(token);

    struct http_response r = call("GET", "/metrics", NULL);
    expect_lambda_error(&r, 403, "MissingAuthenticationTokenException", "Bearer");
    r = metrics_with("Bearer 0123456789abcdef-scrapX");
    expect_lambda_error(&r, 403, "UnrecognizedClientException", "bearer token");
    r = metrics_with("Bearer 0123456789abcdef-scrape extra");
    expect_lambda_error(&r, 403, "UnrecognizedClientException", NULL);
    r = metrics_with("Bearer 0123456789abcdef-scrap");
    expect_lambda_error(&r, 403, "UnrecognizedClientException", NULL);
    r = metrics_with("bearer  0123456789abcdef-scrape");
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "# TYPE easyfaas_"));
    http_response_free(&r);
    r = signed_call("GET", "/metrics", "AKIDPOD", "podsecret");
    assert_int_equal(r.status, 200);
    http_response_free(&r);
    r = signed_call("GET", "/metrics", "AKIDPOD", "wrongsecret");
    expect_lambda_error(&r, 403, "InvalidSignatureException", NULL);
    /* The token opens /metrics only. */
    struct http_response other;
    assert_int_equal(http_request(H.port, "GET", "/v1/runtimes",
                                  "Authorization: Bearer 0123456789abcdef-scrape\r\n", NULL, 0,
                                  &other),
                     0);
    assert_int_equal(other.status, 403);
    http_response_free(&other);
    r = call("GET", "/healthz", NULL);
    assert_int_equal(r.status, 200);
    http_response_free(&r);

    /* The token without --auth-keys: the rest of the API is open, a signature does not open
     * /metrics, an empty header is no header. */
    harness_stop(&H, false);
    memset(&H, 0, sizeof(H));
    char alone[] = "/tmp/ef-token-XXXXXX";
    secret_file(alone, "0123456789abcdef-scrape\n", 0600);
    H.metrics_token_path = alone;
    harness_start(&H, 64 * 1024, NULL);
    unlink(alone);
    r = metrics_with("Bearer 0123456789abcdef-scrape");
    assert_int_equal(r.status, 200);
    http_response_free(&r);
    r = signed_call("GET", "/metrics", "AKIDPOD", "podsecret");
    expect_lambda_error(&r, 403, "UnrecognizedClientException", NULL);
    r = metrics_with("");
    expect_lambda_error(&r, 403, "MissingAuthenticationTokenException", NULL);
    r = call("GET", "/v1/runtimes", NULL);
    assert_int_equal(r.status, 200);
    http_response_free(&r);
}

/* A body of CreateFunction for `name` (python3.12, a one-line handler) with `extra` members. */
static char *create_body_with(const char *name, const char *extra)
{
    size_t len = 0;
    void *zip =
        make_zip1("lambda_function.py", "def lambda_handler(e, c):\n    return 1\n", false, &len);
    char *b64 = ef_base64_encode(zip, len);
    char *body = NULL;
    assert_true(asprintf(&body,
                         "{\"FunctionName\":\"%s\",\"Runtime\":\"python3.12\","
                         "\"Handler\":\"lambda_function.lambda_handler\","
                         "\"Code\":{\"ZipFile\":\"%s\"}%s}",
                         name, b64, extra) > 0);
    free(b64);
    free(zip);
    return body;
}

static struct http_response create_with(const char *name, const char *extra)
{
    char *body = create_body_with(name, extra);
    struct http_response r = call("POST", "/2015-03-31/functions", body);
    free(body);
    return r;
}

/* Role: the caller's value reported back (a placeholder without one), any printable name of up
 * to 2048 characters, changed by an update, kept by a version. (That it is no part of the
 * container identity is test_controller_store's test_config_hash.) */
static void test_role(void **state)
{
    (void)state;
    struct http_response r = create_with("norole", "");
    cJSON_Delete(expect_json(&r, 201));
    r = call("GET", "/2015-03-31/functions/norole/configuration", NULL);
    cJSON *j = expect_json(&r, 200);
    assert_string_equal(str(j, "Role"), "arn:aws:iam::000000000000:role/easyfaas");
    cJSON_Delete(j);

    const char *role = "arn:aws:iam::123456789012:role/service-role/my-fn_role+x=y,z.@-";
    char extra[160];
    snprintf(extra, sizeof(extra), ",\"Role\":\"%s\"", role);
    r = create_with("withrole", extra);
    j = expect_json(&r, 201);
    assert_string_equal(str(j, "Role"), role);
    cJSON_Delete(j);

    /* Any printable name is taken (Lambda would want an IAM role ARN); empty, control
     * characters and more than 2048 characters are not. */
    r = create_with("anyrole", ",\"Role\":\"r\"");
    j = expect_json(&r, 201);
    assert_string_equal(str(j, "Role"), "r");
    cJSON_Delete(j);
    r = create_with("badrole", ",\"Role\":\"\"");
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "at 'role'");
    r = create_with("badrole", ",\"Role\":\"a\\u0001b\"");
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "at 'role'");
    char *long_role = malloc(2100 + 32);
    strcpy(long_role, ",\"Role\":\"");
    memset(long_role + strlen(long_role), 'a', 2049);
    strcpy(long_role + 9 + 2049, "\"");
    r = create_with("badrole", long_role);
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "between 1 and 2048");
    free(long_role);
    r = create_with("badrole", ",\"Role\":7");
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "Role must be a string");

    /* An update changes it. */
    r = call("PUT", "/2015-03-31/functions/norole/configuration",
             "{\"Role\":\"arn:aws-cn:iam::123456789012:role/other\"}");
    j = expect_json(&r, 200);
    assert_string_equal(str(j, "Role"), "arn:aws-cn:iam::123456789012:role/other");
    cJSON_Delete(j);
    r = call("PUT", "/2015-03-31/functions/norole/configuration", "{\"Role\":\"\"}");
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "at 'role'");
    r = call("POST", "/2015-03-31/functions/norole/versions", "{}");
    j = expect_json(&r, 201);
    assert_string_equal(str(j, "Role"), "arn:aws-cn:iam::123456789012:role/other");
    cJSON_Delete(j);
}

/* The NetworkMode of `path`'s FunctionConfiguration. */
static void expect_network(const char *path, const char *mode)
{
    struct http_response r = call("GET", path, NULL);
    cJSON *j = expect_json(&r, 200);
    assert_string_equal(str(j, "NetworkMode"), mode);
    cJSON_Delete(j);
}

/* NetworkMode: validated, "none" by default, stored, returned, published with a version, kept
 * over a restart; "host" only with --allow-host-network. */
static void test_network_mode(void **state)
{
    (void)state;
    create("plain", "def lambda_handler(e, c):\n    return 1\n");
    expect_network("/2015-03-31/functions/plain/configuration", "none");

    struct http_response r = create_with("br", ",\"NetworkMode\":\"bridge\"");
    cJSON *j = expect_json(&r, 201);
    assert_string_equal(str(j, "NetworkMode"), "bridge");
    cJSON_Delete(j);
    r = call("GET", "/2015-03-31/functions/br", NULL);
    j = expect_json(&r, 200);
    assert_string_equal(str(cJSON_GetObjectItem(j, "Configuration"), "NetworkMode"), "bridge");
    cJSON_Delete(j);

    /* Bad values, and host without the flag, create nothing. */
    r = create_with("bad", ",\"NetworkMode\":\"Bridge\"");
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "at 'networkMode'");
    r = create_with("bad", ",\"NetworkMode\":\"container\"");
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "[none, bridge, host]");
    r = create_with("bad", ",\"NetworkMode\":\"\"");
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "networkMode");
    r = create_with("bad", ",\"NetworkMode\":1");
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "NetworkMode must be a string");
    r = create_with("bad", ",\"NetworkMode\":\"host\"");
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "--allow-host-network");
    r = call("GET", "/2015-03-31/functions/bad", NULL);
    expect_lambda_error(&r, 404, "ResourceNotFoundException", NULL);

    /* An update sets it, other updates keep it, refused values change nothing. */
    r = call("PUT", "/2015-03-31/functions/plain/configuration", "{\"NetworkMode\":\"bridge\"}");
    j = expect_json(&r, 200);
    assert_string_equal(str(j, "NetworkMode"), "bridge");
    cJSON_Delete(j);
    r = call("PUT", "/2015-03-31/functions/plain/configuration", "{\"Timeout\":7}");
    j = expect_json(&r, 200);
    assert_string_equal(str(j, "NetworkMode"), "bridge");
    cJSON_Delete(j);
    r = call("PUT", "/2015-03-31/functions/plain/configuration", "{\"NetworkMode\":\"host\"}");
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "--allow-host-network");
    r = call("PUT", "/2015-03-31/functions/plain/configuration",
             "{\"NetworkMode\":\"nat\",\"Timeout\":9}");
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "networkMode");
    expect_network("/2015-03-31/functions/plain/configuration", "bridge");

    /* A version keeps the mode it was published with; changing the mode is a new
     * configuration, so the next publish is a new version. */
    r = call("POST", "/2015-03-31/functions/plain/versions", NULL);
    j = expect_json(&r, 201);
    assert_string_equal(str(j, "Version"), "1");
    assert_string_equal(str(j, "NetworkMode"), "bridge");
    cJSON_Delete(j);
    r = call("PUT", "/2015-03-31/functions/plain/configuration", "{\"NetworkMode\":\"none\"}");
    http_response_free(&r);
    r = call("POST", "/2015-03-31/functions/plain/versions", NULL);
    j = expect_json(&r, 201);
    assert_string_equal(str(j, "Version"), "2");
    assert_string_equal(str(j, "NetworkMode"), "none");
    cJSON_Delete(j);
    expect_network("/2015-03-31/functions/plain/configuration?Qualifier=1", "bridge");
    r = call("GET", "/2015-03-31/functions/plain/versions", NULL);
    j = expect_json(&r, 200);
    const cJSON *versions = cJSON_GetObjectItem(j, "Versions");
    assert_int_equal(cJSON_GetArraySize(versions), 3);
    assert_string_equal(str(cJSON_GetArrayItem(versions, 1), "NetworkMode"), "bridge");
    cJSON_Delete(j);

    /* With --allow-host-network host is accepted; what was stored survives the restart. */
    harness_stop(&H, true);
    H.allow_host_network = true;
    harness_start(&H, 64 * 1024, NULL);
    expect_network("/2015-03-31/functions/br/configuration", "bridge");
    expect_network("/2015-03-31/functions/plain/configuration?Qualifier=1", "bridge");
    r = create_with("hosted", ",\"NetworkMode\":\"host\"");
    j = expect_json(&r, 201);
    assert_string_equal(str(j, "NetworkMode"), "host");
    cJSON_Delete(j);
    r = call("PUT", "/2015-03-31/functions/br/configuration", "{\"NetworkMode\":\"host\"}");
    j = expect_json(&r, 200);
    assert_string_equal(str(j, "NetworkMode"), "host");
    cJSON_Delete(j);

    /* Without the flag again, a stored host function is not started, and says why. */
    harness_stop(&H, true);
    H.allow_host_network = false;
    harness_start(&H, 64 * 1024, NULL);
    expect_network("/2015-03-31/functions/hosted/configuration", "host");
    r = call("POST", "/2015-03-31/functions/hosted/invocations", "{}");
    expect_lambda_error(&r, 500, "ServiceException", "--allow-host-network");
    /* Moving it off host needs no flag. */
    r = call("PUT", "/2015-03-31/functions/hosted/configuration", "{\"NetworkMode\":\"none\"}");
    j = expect_json(&r, 200);
    assert_string_equal(str(j, "NetworkMode"), "none");
    cJSON_Delete(j);
}

static void test_routing(void **state)
{
    (void)state;
    struct http_response r = call("PATCH", "/2015-03-31/functions/x", NULL);
    expect_lambda_error(&r, 405, "UnrecognizedClientException", "GET or DELETE");
    r = call("GET", "/2015-03-31/functions/x/code", NULL);
    expect_lambda_error(&r, 405, "UnrecognizedClientException", "PUT");
    r = call("DELETE", "/2015-03-31/functions/x/versions", NULL);
    expect_lambda_error(&r, 405, "UnrecognizedClientException", "GET or POST");
    r = call("GET", "/2015-03-31/functions/x/y/z", NULL);
    expect_lambda_error(&r, 404, "UnrecognizedClientException", NULL);
    r = call("GET", "/2017-10-31/functions/x/other", NULL);
    expect_lambda_error(&r, 404, "UnrecognizedClientException", NULL);
    r = call("GET", "/2015-03-31/functions/bad%20name", NULL);
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "functionName");
    r = call("GET", "/2015-03-31/functions/arn%3Aaws%3As3%3A%3A%3Abucket", NULL);
    expect_lambda_error(&r, 400, "InvalidParameterValueException", "functionName");
}

int main(void)
{
    /* test_update_in_progress occupies the whole thread pool; fix its size. */
    setenv("UV_THREADPOOL_SIZE", "4", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_list_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_versions_and_qualifiers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_updates_and_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zip_over_50mb, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_in_progress, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_role, setup, teardown),
        cmocka_unit_test_setup_teardown(test_network_mode, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
