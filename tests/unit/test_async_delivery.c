/* Delivery of Event invocations through the real controller and a fake funclet whose runners the
 * test drives (fake_funclet.h): how each way an attempt can end is counted, and what happens to
 * an outcome the queue cannot record at once.
 *   - An attempt that failed after its event was sent, for a reason of the pod's (here, a
 *     runner's answer the controller cannot read), may have run the function: it counts as an
 *     attempt, and the event is dead-lettered after its retries instead of running again
 *     uncounted.
 *   - An outcome that arrives while the queue's database is locked past its busy timeout is held
 *     and recorded once the lock is gone: the result is not lost and the event does not stay
 *     `running`. */
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
#include <sqlite3.h>

#include "fake_funclet.h"
#include "test_controller_harness.h"

static struct harness H;
static struct fake_funclet F;
/* An invoke the test answers later (event {"mode": "hold"}), on the loop thread. */
static ef_rpc_request *held_invoke;

static void runner_invoke(struct fake_container *fc, ef_rpc_conn *conn, ef_rpc_request *req,
                          const cJSON *params)
{
    (void)fc;
    (void)conn;
    cJSON *event = cJSON_Parse(cJSON_GetObjectItem(params, "payload")->valuestring);
    const cJSON *m = cJSON_GetObjectItem(event, "mode");
    const char *mode = cJSON_IsString(m) ? m->valuestring : "ok";
    if (strcmp(mode, "hold") == 0) {
        held_invoke = req;
    } else if (strcmp(mode, "garbled") == 0) {
        /* An answer with no status the controller knows. */
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "status", "bogus");
        ef_rpc_reply(req, r);
    } else {
        ef_rpc_reply(req, fake_ok_answer("{\"done\":true}"));
    }
    cJSON_Delete(event);
}

static const struct fake_runner_ops runner_ops = {.invoke = runner_invoke};

static int setup(void **state)
{
    (void)state;
    held_invoke = NULL;
    memset(&H, 0, sizeof(H));
    /* Retries 100 ms and 200 ms after a counted failure. */
    H.async.retry_delay_ms = 100;
    fake_funclet_start(&F, &H, &runner_ops);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fake_funclet_stop(&F);
    return 0;
}

static void create_function(const char *name)
{
    char *b = create_body(name, "python3.12", "lambda_function.lambda_handler", 3);
    harness_create_function(&H, name, b);
    free(b);
}

static char *send_event(const char *name, const char *body)
{
    char path[128];
    snprintf(path, sizeof(path), "/2015-03-31/functions/%s/invocations", name);
    struct http_response r;
    assert_int_equal(http_request(H.port, "POST", path, "X-Amz-Invocation-Type: Event\r\n", body,
                                  strlen(body), &r),
                     0);
    assert_int_equal(r.status, 202);
    char *rid = http_header(&r, "x-amzn-RequestId");
    assert_non_null(rid);
    http_response_free(&r);
    return rid;
}

static cJSON *status_of(const char *rid)
{
    return event_status(&H, rid);
}

/* Polls until the event's Status is `status` (at most `seconds`); returns the document. */
static cJSON *wait_status(const char *rid, const char *status, int seconds)
{
    for (int i = 0; i < seconds * 20; i++) {
        cJSON *doc = status_of(rid);
        if (json_str(doc, "Status") && strcmp(json_str(doc, "Status"), status) == 0)
            return doc;
        cJSON_Delete(doc);
        usleep(50 * 1000);
    }
    cJSON *doc = status_of(rid);
    char *text = cJSON_PrintUnformatted(doc);
    fail_msg("event %s never became %s: %s", rid, status, text);
    return NULL;
}

static void test_sent_then_failed_counts_as_attempt(void **state)
{
    (void)state;
    create_function("garbled");
    char *rid = send_event("garbled", "{\"mode\": \"garbled\"}");
    cJSON *doc = wait_status(rid, "dead-lettered", 10);
    assert_int_equal((int)json_num(doc, "Attempts"), 3);
    assert_int_equal((int)json_num(doc, "Refusals"), 0);
    assert_string_equal(json_str(doc, "Condition"), "RetriesExhausted");
    assert_string_equal(json_str(doc, "ErrorType"), "ServiceException");
    /* Each attempt reached a runner: three invokes, no more. */
    assert_int_equal(fake_funclet_counts(&F).invokes, 3);
    cJSON_Delete(doc);
    free(rid);
}

static void answer_held(struct harness *h, void *arg)
{
    (void)h;
    (void)arg;
    ef_rpc_reply(held_invoke, fake_ok_answer("{\"held\":true}"));
    held_invoke = NULL;
}

static void is_held(struct harness *h, void *arg)
{
    (void)h;
    *(bool *)arg = held_invoke != NULL;
}

static void test_outcome_held_while_database_locked(void **state)
{
    (void)state;
    create_function("held");
    char *rid = send_event("held", "{\"mode\": \"hold\"}");
    bool held = false;
    for (int i = 0; i < 200 && !held; i++) {
        harness_on_loop(&H, is_held, &held);
        if (!held)
            usleep(20 * 1000);
    }
    assert_true(held);

    /* Another process's writer holds the database while the outcome arrives: the controller's
     * write waits its 5 s busy timeout and fails. */
    char db[128];
    snprintf(db, sizeof(db), "%s/controller.db", H.dir);
    sqlite3 *other = NULL;
    assert_int_equal(sqlite3_open(db, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE;", NULL, NULL, NULL), SQLITE_OK);
    harness_on_loop(&H, answer_held, NULL);
    sleep(7);
    cJSON *doc = status_of(rid);
    assert_string_equal(json_str(doc, "Status"), "running");
    cJSON_Delete(doc);
    assert_int_equal(sqlite3_exec(other, "COMMIT;", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);

    /* The held outcome is recorded within a second or so of the lock going away. */
    doc = wait_status(rid, "succeeded", 5);
    assert_int_equal((int)json_num(doc, "Attempts"), 1);
    const cJSON *result = cJSON_GetObjectItemCaseSensitive(doc, "Result");
    char *text = cJSON_PrintUnformatted(result);
    assert_non_null(strstr(text, "held"));
    free(text);
    cJSON_Delete(doc);
    free(rid);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sent_then_failed_counts_as_attempt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outcome_held_while_database_locked, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
