/* What the runner resets between two runtimes of one container: the log capture, started again
 * on a new pipe while the previous pipe's poll handle is still closing (on a real libuv loop),
 * and the invocation state (terminal failure, finished ids, peak memory). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "rapi/invocations.h"
#include "rapi/log_capture.h"

/* Runs the loop until the ring holds `want` bytes (or a second has passed). */
static void run_until(uv_loop_t *loop, struct ef_log_capture *cap, uint64_t want)
{
    for (int i = 0; i < 1000 && cap->ring.total < want; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        if (cap->ring.total < want)
            usleep(1000);
    }
    assert_int_equal(cap->ring.total, want);
}

static void test_capture_restarts_while_closing(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    static struct ef_log_capture cap;
    ef_log_capture_init(&cap);
    ef_error err = {0};

    int p1[2], p2[2];
    assert_int_equal(pipe2(p1, O_NONBLOCK | O_CLOEXEC), 0);
    assert_int_equal(ef_log_capture_start(&cap, &loop, p1[0], -1, &err), 0);
    assert_int_equal(write(p1[1], "one\n", 4), 4);
    run_until(&loop, &cap, 4);

    /* The first runtime's late output stays unread: the reset drops it with the ring. */
    assert_int_equal(write(p1[1], "late\n", 5), 5);
    ef_log_capture_reset(&cap);
    assert_int_equal(cap.ring.total, 0);
    assert_null(cap.poll[0]);
    assert_int_equal(cap.fd[0], -1);

    /* Started again before the loop has run the old handle's close callback. */
    assert_int_equal(pipe2(p2, O_NONBLOCK | O_CLOEXEC), 0);
    assert_int_equal(ef_log_capture_start(&cap, &loop, p2[0], -1, &err), 0);
    assert_int_equal(write(p2[1], "two\n", 4), 4);
    run_until(&loop, &cap, 4);
    char *s = ef_log_ring_since(&cap.ring, 0);
    assert_string_equal(s, "two\n");
    free(s);

    /* A start on a capture still reading closes the old stream first. */
    int p3[2];
    assert_int_equal(pipe2(p3, O_NONBLOCK | O_CLOEXEC), 0);
    assert_int_equal(ef_log_capture_start(&cap, &loop, p3[0], -1, &err), 0);
    assert_int_equal(fcntl(p2[0], F_GETFD), -1); /* closed by the capture */
    assert_int_equal(write(p3[1], "three\n", 6), 6);
    run_until(&loop, &cap, 10);

    ef_log_capture_close(&cap);
    close(p1[1]);
    close(p2[1]);
    close(p3[1]);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_invocations_reset(void **state)
{
    (void)state;
    static struct ef_invocations invs;
    ef_invocations_init(&invs, NULL);
    invs.max_in_flight = 8;
    invs.log_consumed = 500;
    invs.runtime_pid = 1234;
    invs.peak_rss_kb = 50000;
    memcpy(invs.recent[0], "req-1", 6);
    invs.recent_next = 1;
    ef_invocations_fail_exit(&invs, "signal: killed");
    assert_true(invs.failed);
    assert_true(ef_invocations_finished_recently(&invs, "req-1", 5));

    ef_invocations_reset(&invs, "the runtime was replaced");
    assert_false(invs.failed);
    assert_null(invs.fail_type);
    assert_null(invs.fail_exit);
    assert_false(ef_invocations_finished_recently(&invs, "req-1", 5));
    assert_int_equal(invs.log_consumed, 0);
    assert_int_equal(invs.runtime_pid, 0);
    assert_int_equal(invs.peak_rss_kb, 0);
    assert_int_equal(invs.max_in_flight, 1);

    /* A new invocation is queued for the new runtime instead of meeting the old failure. */
    cJSON *params = cJSON_Parse("{\"request_id\":\"req-1\",\"payload\":\"{}\"}");
    struct ef_invocation *inv = NULL;
    ef_error err = {0};
    assert_int_equal(ef_invocation_parse(params, 1, "arn", &inv, &err), 0);
    cJSON_Delete(params);
    assert_int_equal(ef_invocations_submit(&invs, inv), 0);
    assert_int_equal(invs.queued.n, 1);
    assert_ptr_equal(ef_invocations_next(&invs), inv);
    assert_ptr_equal(ef_invocations_find(&invs, "req-1", 5), inv);
    /* Taken off by hand: it holds no RPC request to answer. */
    invs.in_flight.head = invs.in_flight.tail = NULL;
    invs.in_flight.n = 0;
    ef_invocation_free(inv);
    ef_invocations_free(&invs, "done");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_capture_restarts_while_closing),
        cmocka_unit_test(test_invocations_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
