/* Code collection against invocations that wait (controller/code_lane.c): an invocation queued
 * for the node-wide limit has no container in the pool yet, and an update of its function's code
 * followed by a collection once removed the code it was admitted with; when its slot came, its
 * container could not be started ("the code of this function is missing"). The real controller
 * runs with a fake funclet whose runners the test drives, and --max-concurrency 1. */
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

#include "controller/base64.h"
#include "controller/code_lane.h"
#include "controller/scheduler.h"
#include "fake_funclet.h"
#include "test_controller_harness.h"

static struct harness H;
static struct fake_funclet F;
static struct ef_sched_config sched;
static ef_rpc_request *held_invoke; /* event {"hold": true}: answered by the test */

static void runner_invoke(struct fake_container *fc, ef_rpc_conn *conn, ef_rpc_request *req,
                          const cJSON *params)
{
    (void)fc;
    (void)conn;
    const char *payload = cJSON_GetObjectItem(params, "payload")->valuestring;
    if (strstr(payload, "hold"))
        held_invoke = req;
    else
        ef_rpc_reply(req, fake_ok_answer("{\"ran\":true}"));
}

static const struct fake_runner_ops runner_ops = {.invoke = runner_invoke};

static int setup(void **state)
{
    (void)state;
    held_invoke = NULL;
    memset(&H, 0, sizeof(H));
    ef_sched_config_defaults(&sched);
    sched.max_concurrency = 1;
    sched.queue_wait_ms = 60000;
    H.sched = &sched;
    fake_funclet_start(&F, &H, &runner_ops);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fake_funclet_stop(&F);
    return 0;
}

/* A function whose code is its own (code is stored by content: two functions created with the
 * same zip share it, and a collection would keep it for the other). */
static void create_function(const char *name)
{
    size_t zlen = 0;
    char source[128];
    snprintf(source, sizeof(source), "def lambda_handler(e, c):\n    return '%s'\n", name);
    void *zip = make_zip1("lambda_function.py", source, false, &zlen);
    char *b64 = ef_base64_encode(zip, zlen);
    free(zip);
    char *b = NULL;
    assert_true(asprintf(&b,
                         "{\"FunctionName\":\"%s\",\"Runtime\":\"python3.12\",\"Handler\":"
                         "\"lambda_function.lambda_handler\",\"Timeout\":30,\"Code\":{"
                         "\"ZipFile\":\"%s\"}}",
                         name, b64) > 0);
    free(b64);
    harness_create_function(&H, name, b);
    free(b);
}

/* An invocation from another thread, so that the test goes on while it waits. */
struct call {
    const char *name, *event;
    uv_thread_t thread;
    struct http_response r;
};

static void call_thread(void *arg)
{
    struct call *c = arg;
    char path[128];
    snprintf(path, sizeof(path), "/2015-03-31/functions/%s/invocations", c->name);
    assert_int_equal(http_request(H.port, "POST", path, NULL, c->event, strlen(c->event), &c->r),
                     0);
}

static void read_queued(struct harness *h, void *arg)
{
    (void)h;
    *(bool *)arg = held_invoke != NULL && ef_sched_in_flight(H.ctl.sched) == 1;
}

static void count_queued(const char *function, unsigned in_flight, unsigned queued, void *user)
{
    (void)in_flight;
    if (strcmp(function, "waiter") == 0)
        *(unsigned *)user = queued;
}

static void read_waiter_queued(struct harness *h, void *arg)
{
    *(unsigned *)arg = 0;
    ef_sched_for_each_function(h->ctl.sched, count_queued, arg);
}

static void read_collections(struct harness *h, void *arg)
{
    *(unsigned *)arg = ef_code_lane_collections(h->ctl.code_lane);
}

static void answer_held(struct harness *h, void *arg)
{
    (void)h;
    (void)arg;
    ef_rpc_reply(held_invoke, fake_ok_answer("{\"ran\":true}"));
    held_invoke = NULL;
}

static void test_queued_invocation_keeps_its_code(void **state)
{
    (void)state;
    create_function("holder");
    create_function("waiter");
    /* "holder" takes the node's only slot and keeps it. */
    struct call hold = {.name = "holder", .event = "{\"hold\": true}"};
    assert_int_equal(uv_thread_create(&hold.thread, call_thread, &hold), 0);
    bool held = false;
    for (int i = 0; i < 200 && !held; i++) {
        harness_on_loop(&H, read_queued, &held);
        if (!held)
            usleep(20 * 1000);
    }
    assert_true(held);
    /* "waiter" queues for it, admitted with its first code. */
    struct call wait = {.name = "waiter", .event = "{}"};
    assert_int_equal(uv_thread_create(&wait.thread, call_thread, &wait), 0);
    unsigned queued = 0;
    for (int i = 0; i < 200 && queued == 0; i++) {
        harness_on_loop(&H, read_waiter_queued, &queued);
        if (queued == 0)
            usleep(20 * 1000);
    }
    assert_int_equal(queued, 1);

    /* Its code is replaced; the collection that follows must keep the old one. */
    unsigned before = 0, after = 0;
    harness_on_loop(&H, read_collections, &before);
    size_t zlen = 0;
    void *zip =
        make_zip1("lambda_function.py", "def lambda_handler(e, c):\n    return 2\n", false, &zlen);
    char *b64 = ef_base64_encode(zip, zlen);
    char *body = NULL;
    assert_true(asprintf(&body, "{\"ZipFile\":\"%s\"}", b64) > 0);
    struct http_response r;
    assert_int_equal(http_request(H.port, "PUT", "/2015-03-31/functions/waiter/code", NULL, body,
                                  strlen(body), &r),
                     0);
    assert_int_equal(r.status, 200);
    http_response_free(&r);
    free(body);
    free(b64);
    free(zip);
    for (int i = 0; i < 200 && after <= before; i++) {
        usleep(20 * 1000);
        harness_on_loop(&H, read_collections, &after);
    }
    assert_true(after > before);

    /* The slot comes free: the queued invocation starts its container with its code. */
    harness_on_loop(&H, answer_held, NULL);
    assert_int_equal(uv_thread_join(&hold.thread), 0);
    assert_int_equal(hold.r.status, 200);
    http_response_free(&hold.r);
    assert_int_equal(uv_thread_join(&wait.thread), 0);
    if (wait.r.status != 200)
        fail_msg("the queued invocation: %d %s", wait.r.status, wait.r.body);
    http_response_free(&wait.r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_queued_invocation_keeps_its_code, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
