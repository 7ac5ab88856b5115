/* The controller's watch on a runner past an invocation's Timeout (controller/runner_watch.h),
 * against a runner side made of a real ef_rpc connection over a socketpair on one libuv loop:
 * a runner that answers its ping is left alone, however late the invocation; one that answers
 * neither of two pings is reported wedged, once; one that misses the first ping but answers the
 * second is not; a watch stopped before it fires sends nothing. Every test ends with
 * uv_loop_close() == 0, so a leaked timer or watch handle fails it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/rpc.h"
#include "controller/pool.h"
#include "controller/runner_watch.h"

#define MAX_HELD 4

/* The runner's side: counts pings and answers them, or holds the first `silent` of them. */
struct runner {
    unsigned pings;
    unsigned silent;
    ef_rpc_request *held[MAX_HELD];
    unsigned n_held;
};

struct fixture {
    uv_loop_t loop;
    ef_rpc_conn *controller_side;
    ef_rpc_conn *runner_side;
    struct runner runner;
    struct ef_container c;
    char id[16], function_name[16];
    unsigned wedged;
    uint64_t wedged_after_ms;
    uint64_t started_ms;
    uv_timer_t guard;
};

static void on_runner_request(ef_rpc_conn *conn, ef_rpc_request *req, const char *method,
                              const cJSON *params, void *user)
{
    (void)conn;
    (void)params;
    struct runner *r = user;
    assert_string_equal(method, "runner.ping");
    if (r->pings++ < r->silent && r->n_held < MAX_HELD)
        r->held[r->n_held++] = req; /* answered at the end, long after the caller gave up */
    else
        ef_rpc_reply(req, NULL);
}

static const struct ef_rpc_handlers runner_handlers = {.on_request = on_runner_request};
static const struct ef_rpc_handlers controller_handlers = {0};

static void on_wedged(void *user)
{
    struct fixture *f = user;
    f->wedged++;
    f->wedged_after_ms = uv_now(&f->loop) - f->started_ms;
}

static void on_guard(uv_timer_t *t)
{
    uv_stop(t->loop);
}

static void fixture_open(struct fixture *f, unsigned silent)
{
    memset(f, 0, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ef_error err = {0};
    assert_int_equal(
        ef_rpc_conn_open_fd(&f->loop, sv[0], &controller_handlers, f, &f->controller_side, &err),
        0);
    f->runner.silent = silent;
    assert_int_equal(
        ef_rpc_conn_open_fd(&f->loop, sv[1], &runner_handlers, &f->runner, &f->runner_side, &err),
        0);
    snprintf(f->id, sizeof(f->id), "c0ffee");
    snprintf(f->function_name, sizeof(f->function_name), "fn");
    f->c.id = f->id;
    f->c.function_name = f->function_name;
    f->c.conn = f->controller_side;
    uv_timer_init(&f->loop, &f->guard);
    f->started_ms = uv_now(&f->loop);
}

/* Runs the loop until uv_stop (the guard, after `ms`). */
static void run_for(struct fixture *f, uint64_t ms)
{
    uv_timer_start(&f->guard, on_guard, ms, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
}

static void fixture_close(struct fixture *f)
{
    for (unsigned i = 0; i < f->runner.n_held; i++)
        ef_rpc_reply(f->runner.held[i], NULL);
    ef_rpc_conn_close(f->controller_side);
    ef_rpc_conn_close(f->runner_side);
    uv_close((uv_handle_t *)&f->guard, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

/* A live runner (a late poll, a long init): its ping is answered, nothing is reported, and no
 * second ping is sent. */
static void test_live_runner_is_left_alone(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f, 0);
    struct ef_runner_watch *w = ef_runner_watch_start(&f.loop, &f.c, 10, on_wedged, &f);
    assert_non_null(w);
    run_for(&f, 2 * EF_RUNNER_WATCH_PING_MS + 500);
    assert_int_equal(f.runner.pings, 1);
    assert_int_equal(f.wedged, 0);
    ef_runner_watch_stop(w);
    fixture_close(&f);
}

/* A runner that answers neither ping is wedged: reported once, after both timeouts. */
static void test_silent_runner_is_wedged(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f, MAX_HELD);
    struct ef_runner_watch *w = ef_runner_watch_start(&f.loop, &f.c, 10, on_wedged, &f);
    assert_non_null(w);
    run_for(&f, EF_RUNNER_WATCH_PINGS * EF_RUNNER_WATCH_PING_MS + 1500);
    assert_int_equal(f.runner.pings, EF_RUNNER_WATCH_PINGS);
    assert_int_equal(f.wedged, 1);
    assert_true(f.wedged_after_ms >= EF_RUNNER_WATCH_PINGS * EF_RUNNER_WATCH_PING_MS);
    ef_runner_watch_stop(w); /* as the invocation's answer does */
    fixture_close(&f);
}

/* One missed ping (as after a stall of the controller's loop) is not enough. */
static void test_one_missed_ping_is_not_wedged(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f, 1);
    struct ef_runner_watch *w = ef_runner_watch_start(&f.loop, &f.c, 10, on_wedged, &f);
    assert_non_null(w);
    run_for(&f, EF_RUNNER_WATCH_PINGS * EF_RUNNER_WATCH_PING_MS + 1500);
    assert_int_equal(f.runner.pings, 2);
    assert_int_equal(f.wedged, 0);
    ef_runner_watch_stop(w);
    fixture_close(&f);
}

/* An invocation answered before its Timeout: the watch never pings; a stop while a ping is in
 * flight leaves the ping's answer with nothing to report. */
static void test_stopped_watch_stays_quiet(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f, MAX_HELD);
    ef_runner_watch_stop(ef_runner_watch_start(&f.loop, &f.c, 50, on_wedged, &f));
    run_for(&f, 200);
    assert_int_equal(f.runner.pings, 0);
    struct ef_runner_watch *w = ef_runner_watch_start(&f.loop, &f.c, 10, on_wedged, &f);
    run_for(&f, 100);
    assert_int_equal(f.runner.pings, 1);
    ef_runner_watch_stop(w);
    ef_runner_watch_stop(NULL);
    run_for(&f, EF_RUNNER_WATCH_PINGS * EF_RUNNER_WATCH_PING_MS + 500);
    assert_int_equal(f.runner.pings, 1);
    assert_int_equal(f.wedged, 0);
    fixture_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_live_runner_is_left_alone),
        cmocka_unit_test(test_silent_runner_is_wedged),
        cmocka_unit_test(test_one_missed_ping_is_not_wedged),
        cmocka_unit_test(test_stopped_watch_stays_quiet),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
