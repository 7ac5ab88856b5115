/* The controller against runners whose runtime failed its init (docs/rpc.md, `invoke`: the
 * "init_error" and "late" marks), over real sockets: the real controller, a test peer playing
 * funclet and the runners. Covered: a container whose answer says its init failed is never handed
 * out again, even before runtime.exited arrives (which then discards it); an invocation that
 * reached a warm container after the init error had been answered to another one ("late", not
 * delivered) is placed once more, on a new container; one that the runtime took ("delivered"), one
 * that started the container itself, and one already placed again get the init error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fake_funclet.h"
#include "test_controller_harness.h"

/* How a fake runner answers `invoke` (the containers' fake_container.mode). */
enum mode {
    MODE_OK,          /* {"container": "<id>"} */
    MODE_INIT_ERROR,  /* the init error that this invocation waited for */
    MODE_LATE,        /* the init error, answered before to another invocation: late */
    MODE_LATE_HANDED, /* late, but the runtime took it (delivered): must not run again */
};

static struct harness H;
static struct fake_funclet F;

static const char init_doc[] =
    "{\"errorMessage\":\"Unable to import module 'app'\",\"errorType\":\"Runtime."
    "ImportModuleError\"}";

static void runner_invoke(struct fake_container *fc, ef_rpc_conn *conn, ef_rpc_request *req,
                          const cJSON *params)
{
    (void)conn;
    (void)params;
    cJSON *r = cJSON_CreateObject();
    if (fc->mode == MODE_OK) {
        char payload[64];
        snprintf(payload, sizeof(payload), "{\"container\":\"%s\"}", fc->id);
        cJSON_AddStringToObject(r, "status", "ok");
        cJSON_AddStringToObject(r, "payload", payload);
        cJSON_AddStringToObject(r, "log", "");
        cJSON_AddTrueToObject(r, "delivered");
    } else {
        cJSON_AddStringToObject(r, "status", "error");
        cJSON_AddStringToObject(r, "error_type", "Runtime.ImportModuleError");
        cJSON_AddStringToObject(r, "payload", init_doc);
        cJSON_AddStringToObject(r, "log", "");
        cJSON_AddBoolToObject(r, "delivered", fc->mode == MODE_LATE_HANDED);
        cJSON_AddTrueToObject(r, "init_error");
        if (fc->mode != MODE_INIT_ERROR)
            cJSON_AddTrueToObject(r, "late");
    }
    ef_rpc_reply(req, r);
}

static const struct fake_runner_ops runner_ops = {.invoke = runner_invoke};

static int setup(void **state)
{
    (void)state;
    fake_funclet_start(&F, &H, &runner_ops);
    char *b = create_body("fn", "python3.12", "app.handler", 3);
    struct http_response r;
    assert_int_equal(http_request(H.port, "POST", "/2015-03-31/functions", NULL, b, strlen(b), &r),
                     0);
    if (r.status != 201)
        fail_msg("create fn: %d %s", r.status, r.body);
    http_response_free(&r);
    free(b);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fake_funclet_stop(&F);
    return 0;
}

/* ---- helpers ---- */

static struct http_response invoke(void)
{
    struct http_response r;
    assert_int_equal(
        http_request(H.port, "POST", "/2015-03-31/functions/fn/invocations", NULL, "{}", 2, &r), 0);
    assert_int_equal(r.status, 200);
    return r;
}

/* Invokes; expects success and returns the id of the container that served it (static). */
static const char *invoke_ok(void)
{
    static char container[16];
    struct http_response r = invoke();
    char *fe = http_header(&r, "X-Amz-Function-Error");
    if (fe)
        fail_msg("the invocation failed: %s", r.body);
    cJSON *j = cJSON_Parse(r.body);
    snprintf(container, sizeof(container), "%s", cJSON_GetObjectItem(j, "container")->valuestring);
    cJSON_Delete(j);
    http_response_free(&r);
    return container;
}

/* Invokes; expects the init error as the function's error, as Lambda answers it. */
static void invoke_init_error(void)
{
    struct http_response r = invoke();
    char *fe = http_header(&r, "X-Amz-Function-Error");
    assert_non_null(fe);
    assert_string_equal(fe, "Unhandled");
    free(fe);
    cJSON *j = cJSON_Parse(r.body);
    assert_string_equal(cJSON_GetObjectItem(j, "errorType")->valuestring,
                        "Runtime.ImportModuleError");
    cJSON_Delete(j);
    http_response_free(&r);
}

/* Invokes once, served by c1, whose runner then answers in `mode`. */
static void warm_c1(enum mode mode)
{
    assert_string_equal(invoke_ok(), "c1");
    fake_funclet_set_mode(&F, "c1", mode);
}

/* Asserts that `creates` containers were created and that c<n> was invoked `invokes` times. */
static void expect_created_and_invoked(int creates, int n, int invokes)
{
    struct fake_counts c = fake_funclet_counts(&F);
    assert_int_equal(c.creates, creates);
    assert_int_equal(c.invokes_of[n - 1], invokes);
}

/* ---- tests ---- */

static void test_failed_init_is_never_handed_out_again(void **state)
{
    (void)state;
    fake_funclet_set_new_mode(&F, MODE_INIT_ERROR);
    invoke_init_error();
    /* runtime.exited has not arrived: c1 is idle, but its runtime will never serve. The next
     * invocation runs an init of its own, on a new container. */
    invoke_init_error();
    struct fake_counts c = fake_funclet_counts(&F);
    assert_int_equal(c.creates, 2);
    assert_int_equal(c.invokes_of[0], 1);
    assert_int_equal(c.invokes_of[1], 1);
    assert_int_equal(c.destroys, 0);
    /* runtime.exited then discards it, as for any runtime that ended. */
    fake_funclet_send_exited(&F, "c1", "exit status 1");
    assert_int_equal(fake_funclet_wait_destroys(&F, 1), 1);
    /* And a function that works again gets a container of its own, never c1 or c2. */
    fake_funclet_set_new_mode(&F, MODE_OK);
    assert_string_equal(invoke_ok(), "c3");
    assert_string_equal(invoke_ok(), "c3");
}

static void test_late_invocation_is_placed_again(void **state)
{
    (void)state;
    /* c1's runtime failed its init after another invocation was answered: this one, sent to
     * the warm c1, is late and was never delivered; it runs on a new container instead. */
    warm_c1(MODE_LATE);
    assert_string_equal(invoke_ok(), "c2");
    struct fake_counts c = fake_funclet_counts(&F);
    assert_int_equal(c.creates, 2);
    assert_int_equal(c.invokes_of[0], 2);
    assert_int_equal(c.invokes_of[1], 1);
    /* c1 takes nothing more. */
    assert_string_equal(invoke_ok(), "c2");
    assert_int_equal(fake_funclet_counts(&F).invokes_of[0], 2);
}

static void test_late_but_delivered_is_not_run_again(void **state)
{
    (void)state;
    /* The runtime took it: running it again elsewhere could run it twice. */
    warm_c1(MODE_LATE_HANDED);
    invoke_init_error();
    expect_created_and_invoked(1, 1, 2);
}

static void test_placed_again_only_once(void **state)
{
    (void)state;
    warm_c1(MODE_LATE);
    fake_funclet_set_new_mode(&F, MODE_LATE);
    /* The new container answers late too: the second answer stands, no third container. */
    invoke_init_error();
    expect_created_and_invoked(2, 2, 1);
}

static void test_cold_invocation_keeps_its_init_error(void **state)
{
    (void)state;
    /* An invocation that started its container waited for that init, late or not: it gets its
     * error and is not placed again. */
    fake_funclet_set_new_mode(&F, MODE_LATE);
    invoke_init_error();
    assert_int_equal(fake_funclet_counts(&F).creates, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_failed_init_is_never_handed_out_again, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_late_invocation_is_placed_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_but_delivered_is_not_run_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_placed_again_only_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cold_invocation_keeps_its_init_error, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
