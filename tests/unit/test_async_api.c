/* Event invocations through the controller's real HTTP API on port 0, with no funclet: the 202
 * after the durable commit, Lambda's limits and errors, the status and dead-letter routes, a
 * throttled event giving its attempt back, an event whose function was deleted, and events
 * surviving a restart of the controller. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "controller/async_worker.h"
#include "test_controller_harness.h"

static struct harness H;

static int setup(void **state)
{
    (void)state;
    memset(&H, 0, sizeof(H));
    harness_start(&H, 0, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    harness_stop(&H, false);
    return 0;
}

static struct http_response request(const char *method, const char *path, const char *headers,
                                    const char *body, size_t len)
{
    struct http_response r;
    assert_int_equal(http_request(H.port, method, path, headers, body, len, &r), 0);
    return r;
}

static void expect_status(struct http_response *r, int status, const char *type)
{
    if (r->status != status)
        fail_msg("expected %d, got %d: %.300s", status, r->status, r->body ? r->body : "");
    if (type) {
        char *t = http_header(r, "x-amzn-ErrorType");
        assert_non_null(t);
        assert_string_equal(t, type);
        free(t);
    }
}

static void create_function(const char *name)
{
    char *b = create_body(name, "python3.12", "lambda_function.lambda_handler", 3);
    struct http_response r = request("POST", "/2015-03-31/functions", NULL, b, strlen(b));
    free(b);
    expect_status(&r, 201, NULL);
    http_response_free(&r);
}

/* Sends an Event invocation; returns the request id (malloc'd) after asserting 202. */
static char *send_event(const char *path, const char *body)
{
    struct http_response r =
        request("POST", path, "X-Amz-Invocation-Type: Event\r\n", body, strlen(body));
    expect_status(&r, 202, NULL);
    assert_int_equal(r.body_len, 0);
    char *rid = http_header(&r, "x-amzn-RequestId");
    assert_non_null(rid);
    assert_int_equal(strlen(rid), 36);
    http_response_free(&r);
    return rid;
}

static cJSON *status_of(const char *rid)
{
    return event_status(&H, rid);
}

/* Polls the status of `rid` until `pred` holds (at most ~10 s); returns the last document. */
static cJSON *wait_status(const char *rid, bool (*pred)(const cJSON *doc))
{
    for (int i = 0; i < 200; i++) {
        cJSON *doc = status_of(rid);
        if (pred(doc))
            return doc;
        cJSON_Delete(doc);
        usleep(50 * 1000);
    }
    cJSON *doc = status_of(rid);
    char *text = cJSON_Print(doc);
    fail_msg("the event never reached the expected state: %s", text);
    return NULL;
}

static bool throttled(const cJSON *doc)
{
    return json_num(doc, "Refusals") >= 1;
}

static bool dead_lettered(const cJSON *doc)
{
    return json_str(doc, "Status") && strcmp(json_str(doc, "Status"), "dead-lettered") == 0;
}

static void test_event_is_accepted_and_durable(void **state)
{
    (void)state;
    create_function("fn");
    /* Reserved concurrency 0: every delivery is throttled, so the event stays in the queue. */
    const char *conc = "{\"ReservedConcurrentExecutions\": 0}";
    struct http_response r =
        request("PUT", "/2017-10-31/functions/fn/concurrency", NULL, conc, strlen(conc));
    expect_status(&r, 200, NULL);
    http_response_free(&r);

    char *rid = send_event("/2015-03-31/functions/fn/invocations", "{\"n\": 1}");
    char *rid2 = send_event("/v1/functions/fn/invocations?Qualifier=%24LATEST", "{\"n\": 2}");
    cJSON *doc = wait_status(rid, throttled);
    assert_string_equal(json_str(doc, "RequestId"), rid);
    assert_string_equal(json_str(doc, "FunctionName"), "fn");
    assert_string_equal(json_str(doc, "Qualifier"), "$LATEST");
    assert_string_equal(json_str(doc, "Status"), "queued");
    assert_int_equal((int)json_num(doc, "Attempts"), 0); /* a throttled attempt is given back */
    assert_string_equal(json_str(doc, "ErrorType"), "TooManyRequestsException");
    assert_non_null(json_str(doc, "CreatedAt"));
    assert_non_null(json_str(doc, "NextAttemptAt"));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(doc, "Result")));
    cJSON_Delete(doc);

    /* Acknowledged events survive a restart of the controller. */
    harness_stop(&H, true);
    harness_start(&H, 0, NULL);
    doc = status_of(rid2);
    assert_string_equal(json_str(doc, "Status"), "queued");
    cJSON_Delete(doc);
    doc = status_of(rid);
    assert_string_equal(json_str(doc, "FunctionName"), "fn");
    cJSON_Delete(doc);
    free(rid);
    free(rid2);
}

static void test_limits_and_errors(void **state)
{
    (void)state;
    create_function("fn");
    const char *path = "/2015-03-31/functions/fn/invocations";
    const char *ev = "X-Amz-Invocation-Type: Event\r\n";

    /* Exactly 256 KB of JSON is accepted; one byte more is 413. */
    size_t n = EF_ASYNC_MAX_PAYLOAD;
    char *big = malloc(n + 2);
    big[0] = '"';
    memset(big + 1, 'x', n - 2);
    big[n - 1] = '"';
    big[n] = '\0';
    struct http_response r = request("POST", path, ev, big, n);
    expect_status(&r, 202, NULL);
    http_response_free(&r);
    big[n - 1] = 'x';
    big[n] = '"';
    big[n + 1] = '\0';
    r = request("POST", path, ev, big, n + 1);
    expect_status(&r, 413, "RequestTooLargeException");
    assert_non_null(strstr(r.body, "262144"));
    http_response_free(&r);
    free(big);

    r = request("POST", "/2015-03-31/functions/nope/invocations", ev, "{}", 2);
    expect_status(&r, 404, "ResourceNotFoundException");
    http_response_free(&r);
    r = request("POST", "/2015-03-31/functions/fn/invocations?Qualifier=9", ev, "{}", 2);
    expect_status(&r, 404, "ResourceNotFoundException");
    http_response_free(&r);
    r = request("POST", path, ev, "{not json", 9);
    expect_status(&r, 400, "InvalidRequestContentException");
    http_response_free(&r);
    r = request("POST", path, "X-Amz-Invocation-Type: Later\r\n", "{}", 2);
    expect_status(&r, 400, "InvalidParameterValueException");
    http_response_free(&r);
}

static void test_status_and_dead_letter_routes(void **state)
{
    (void)state;
    create_function("fn");
    struct http_response r = request("GET", "/v1/invocations/not-a-uuid", NULL, NULL, 0);
    expect_status(&r, 400, "InvalidParameterValueException");
    http_response_free(&r);
    r = request("GET", "/v1/invocations/00000000-0000-4000-8000-000000000000", NULL, NULL, 0);
    expect_status(&r, 404, "ResourceNotFoundException");
    http_response_free(&r);
    r = request("DELETE", "/v1/invocations/00000000-0000-4000-8000-000000000000", NULL, NULL, 0);
    expect_status(&r, 405, NULL);
    http_response_free(&r);

    r = request("GET", "/v1/functions/nofn/dead-letters", NULL, NULL, 0);
    expect_status(&r, 404, "ResourceNotFoundException");
    http_response_free(&r);
    r = request("GET", "/v1/functions/fn/dead-letters", NULL, NULL, 0);
    expect_status(&r, 200, NULL);
    assert_string_equal(r.body, "{\"DeadLetters\":[]}");
    http_response_free(&r);
    const char *bad[] = {"?limit=0", "?limit=101", "?limit=x", "?marker=abc", "?marker=-1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char path[128];
        snprintf(path, sizeof(path), "/v1/functions/fn/dead-letters%s", bad[i]);
        r = request("GET", path, NULL, NULL, 0);
        expect_status(&r, 400, "InvalidParameterValueException");
        http_response_free(&r);
    }
    r = request("GET", "/v1/functions/bad%20name/dead-letters", NULL, NULL, 0);
    expect_status(&r, 400, "InvalidParameterValueException");
    http_response_free(&r);
}

/* An event whose function is deleted before it runs can never run: it becomes a dead letter
 * at once (FunctionNotFound), still listed under the function's name. */
static void test_deleted_function_dead_letters(void **state)
{
    (void)state;
    create_function("gone");
    const char *conc = "{\"ReservedConcurrentExecutions\": 0}";
    struct http_response r =
        request("PUT", "/2017-10-31/functions/gone/concurrency", NULL, conc, strlen(conc));
    expect_status(&r, 200, NULL);
    http_response_free(&r);
    char *rid = send_event("/2015-03-31/functions/gone/invocations", "{\"keep\": \"me\"}");
    cJSON *doc = wait_status(rid, throttled);
    cJSON_Delete(doc);
    r = request("DELETE", "/2015-03-31/functions/gone", NULL, NULL, 0);
    expect_status(&r, 204, NULL);
    http_response_free(&r);

    doc = wait_status(rid, dead_lettered);
    assert_string_equal(json_str(doc, "Condition"), "FunctionNotFound");
    assert_string_equal(json_str(doc, "ErrorType"), "ResourceNotFoundException");
    assert_int_equal((int)json_num(doc, "Attempts"), 0);
    cJSON_Delete(doc);

    r = request("GET", "/v1/functions/gone/dead-letters?limit=5", NULL, NULL, 0);
    expect_status(&r, 200, NULL);
    doc = cJSON_Parse(r.body);
    http_response_free(&r);
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(doc, "DeadLetters");
    assert_int_equal(cJSON_GetArraySize(items), 1);
    const cJSON *item = cJSON_GetArrayItem(items, 0);
    assert_string_equal(json_str(item, "RequestId"), rid);
    const cJSON *payload = cJSON_GetObjectItemCaseSensitive(item, "Payload");
    assert_string_equal(json_str(payload, "keep"), "me");
    assert_null(cJSON_GetObjectItemCaseSensitive(doc, "NextMarker"));
    cJSON_Delete(doc);
    free(rid);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_event_is_accepted_and_durable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_and_dead_letter_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deleted_function_dead_letters, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
