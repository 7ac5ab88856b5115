/* The scheduler's admission logic (scheduler.c) on a real libuv loop, the name map it keeps its
 * functions in (name_map.c), and the metrics' text (metrics.c). No funclet is involved: the
 * tickets stand for invocations, and what the scheduler decides is what is checked. The
 * scheduler's behaviour through a real pod is tested by tests/integration/scheduler_*.sh. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "controller/controller.h"
#include "controller/invoke.h"
#include "controller/metrics.h"
#include "controller/name_map.h"
#include "controller/scheduler.h"

struct test_ticket {
    struct ef_sched_ticket t; /* first */
    int runs;
    int rejected_status;
    const char *reason;
    char message[512];
    int order; /* when it ran, 1, 2, ... */
};

static uv_loop_t loop;
static struct ef_controller ctl;
static int run_counter;

static void on_run(struct ef_sched_ticket *t)
{
    struct test_ticket *tt = (struct test_ticket *)t;
    tt->runs++;
    tt->order = ++run_counter;
}

static void on_rejected(struct ef_sched_ticket *t, int status, const char *reason,
                        const char *message)
{
    struct test_ticket *tt = (struct test_ticket *)t;
    tt->rejected_status = status;
    tt->reason = reason;
    snprintf(tt->message, sizeof(tt->message), "%s", message);
}

static void ticket_init(struct test_ticket *tt)
{
    memset(tt, 0, sizeof(*tt));
    tt->t.key = "f\n$LATEST\nsha\nhash";
    tt->t.run = on_run;
    tt->t.rejected = on_rejected;
}

static struct ef_scheduler *start(unsigned depth, unsigned wait_ms, unsigned max_concurrency)
{
    memset(&ctl, 0, sizeof(ctl));
    assert_int_equal(uv_loop_init(&loop), 0);
    ctl.loop = &loop;
    ef_pool_init(&ctl.pool);
    struct ef_sched_config cfg;
    ef_sched_config_defaults(&cfg);
    cfg.queue_depth = depth;
    cfg.queue_wait_ms = wait_ms;
    cfg.max_concurrency = max_concurrency;
    struct ef_scheduler *s = NULL;
    assert_int_equal(ef_sched_new(&ctl, &cfg, &s, NULL), 0);
    ctl.sched = s;
    run_counter = 0;
    return s;
}

static void finish(struct ef_scheduler *s)
{
    ef_sched_free(s);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    /* A leaked handle would make this fail. */
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* Lets the scheduler's timer serve the queues once. */
static void turn(void)
{
    uv_run(&loop, UV_RUN_NOWAIT);
}

static void test_reserved_limit_without_queue(void **state)
{
    (void)state;
    struct ef_scheduler *s = start(0, 1000, 100);
    struct test_ticket a, b, c;
    ticket_init(&a);
    ticket_init(&b);
    ticket_init(&c);
    ef_error err = {0};
    assert_int_equal(ef_sched_admit(s, &a.t, "f", true, 2, &err), 0);
    assert_int_equal(ef_sched_admit(s, &b.t, "f", true, 2, &err), 0);
    /* The third is beyond the limit, and nothing may wait. */
    assert_int_equal(ef_sched_admit(s, &c.t, "f", true, 2, &err), -EDQUOT);
    assert_non_null(strstr(err.msg, "reserved concurrency of 2"));
    assert_non_null(strstr(err.msg, "--queue-depth 0"));
    assert_int_equal(ef_sched_in_flight(s), 2);
    /* Another function is not limited by f's reservation. */
    struct test_ticket g;
    ticket_init(&g);
    assert_int_equal(ef_sched_admit(s, &g.t, "g", false, 0, &err), 0);
    ef_sched_release(s, &a.t);
    ticket_init(&c);
    assert_int_equal(ef_sched_admit(s, &c.t, "f", true, 2, &err), 0);
    ef_sched_release(s, &b.t);
    ef_sched_release(s, &c.t);
    ef_sched_release(s, &g.t);
    assert_int_equal(ef_sched_in_flight(s), 0);
    /* Releasing twice is harmless. */
    ef_sched_release(s, &g.t);
    finish(s);
}

static void test_reserved_zero_throttles(void **state)
{
    (void)state;
    struct ef_scheduler *s = start(10, 1000, 100);
    struct test_ticket a;
    ticket_init(&a);
    ef_error err = {0};
    assert_int_equal(ef_sched_admit(s, &a.t, "f", true, 0, &err), -EDQUOT);
    assert_non_null(strstr(err.msg, "reserved concurrency of 0"));
    assert_string_equal(ef_invoke_throttle_reason(-EDQUOT), EF_REASON_RESERVED);
    finish(s);
}

static void test_queue_is_fifo(void **state)
{
    (void)state;
    struct ef_scheduler *s = start(3, 10000, 100);
    struct test_ticket running, q[4];
    ticket_init(&running);
    ef_error err = {0};
    assert_int_equal(ef_sched_admit(s, &running.t, "f", true, 1, &err), 0);
    for (int i = 0; i < 3; i++) {
        ticket_init(&q[i]);
        assert_int_equal(ef_sched_admit(s, &q[i].t, "f", true, 1, &err), 1);
    }
    /* The queue is full: the next one is throttled at once. */
    ticket_init(&q[3]);
    assert_int_equal(ef_sched_admit(s, &q[3].t, "f", true, 1, &err), -EDQUOT);
    assert_non_null(strstr(err.msg, "queue is full (3 waiting, --queue-depth 3)"));
    turn();
    assert_int_equal(q[0].runs, 0); /* no slot yet */

    /* Each release starts the next in order, from the timer, not inside the release. */
    ef_sched_release(s, &running.t);
    assert_int_equal(q[0].runs, 0);
    turn();
    assert_int_equal(q[0].runs, 1);
    assert_int_equal(q[1].runs, 0);
    ef_sched_release(s, &q[0].t);
    turn();
    ef_sched_release(s, &q[1].t);
    turn();
    assert_int_equal(q[1].order, 2);
    assert_int_equal(q[2].order, 3);
    ef_sched_release(s, &q[2].t);
    assert_int_equal(ef_sched_in_flight(s), 0);
    finish(s);
}

static void test_wait_expires(void **state)
{
    (void)state;
    struct ef_scheduler *s = start(5, 50, 100);
    struct test_ticket running, waiting;
    ticket_init(&running);
    ticket_init(&waiting);
    ef_error err = {0};
    assert_int_equal(ef_sched_admit(s, &running.t, "f", true, 1, &err), 0);
    assert_int_equal(ef_sched_admit(s, &waiting.t, "f", true, 1, &err), 1);
    uint64_t t0 = uv_now(&loop);
    while (waiting.rejected_status == 0)
        uv_run(&loop, UV_RUN_ONCE);
    uv_update_time(&loop);
    assert_true(uv_now(&loop) - t0 >= 50);
    assert_int_equal(waiting.rejected_status, 429);
    assert_string_equal(waiting.reason, EF_REASON_RESERVED);
    assert_non_null(strstr(waiting.message, "within 50 ms (--queue-wait)"));
    assert_int_equal(waiting.runs, 0);
    /* The rejected ticket is out of the scheduler: releasing it changes nothing. */
    ef_sched_release(s, &waiting.t);
    assert_int_equal(ef_sched_in_flight(s), 1);
    ef_sched_release(s, &running.t);
    finish(s);
}

static void test_node_limit(void **state)
{
    (void)state;
    struct ef_scheduler *s = start(0, 1000, 2);
    struct test_ticket a, b, c;
    ticket_init(&a);
    ticket_init(&b);
    ticket_init(&c);
    ef_error err = {0};
    assert_int_equal(ef_sched_admit(s, &a.t, "f", false, 0, &err), 0);
    assert_int_equal(ef_sched_admit(s, &b.t, "g", false, 0, &err), 0);
    assert_int_equal(ef_sched_admit(s, &c.t, "h", true, 10, &err), -EAGAIN);
    assert_non_null(strstr(err.msg, "limit of 2 concurrent invocations (--max-concurrency)"));
    ef_sched_release(s, &a.t);
    ef_sched_release(s, &b.t);
    finish(s);
}

static void test_node_limit_queue_serves_other_functions(void **state)
{
    (void)state;
    struct ef_scheduler *s = start(5, 10000, 1);
    struct test_ticket a, b;
    ticket_init(&a);
    ticket_init(&b);
    ef_error err = {0};
    assert_int_equal(ef_sched_admit(s, &a.t, "f", false, 0, &err), 0);
    assert_int_equal(ef_sched_admit(s, &b.t, "g", false, 0, &err), 1);
    ef_sched_release(s, &a.t); /* f's slot frees the node for g */
    turn();
    assert_int_equal(b.runs, 1);
    ef_sched_release(s, &b.t);
    finish(s);
}

/* A slot freed under the node-wide limit goes to the invocation that has waited longest,
 * whatever the functions' names (they once were served in the order of the name map's
 * buckets), and a newcomer does not take it while others wait. */
static void test_node_limit_serves_in_admission_order(void **state)
{
    (void)state;
    for (int pair = 0; pair < 40; pair++) {
        struct ef_scheduler *s = start(5, 10000, 1);
        char first_fn[16], second_fn[16], third_fn[16];
        snprintf(first_fn, sizeof(first_fn), "fn%d", pair * 7 + 1);
        snprintf(second_fn, sizeof(second_fn), "fn%d", pair * 13 + 2);
        snprintf(third_fn, sizeof(third_fn), "late%d", pair);
        struct test_ticket holder, first, second, newcomer;
        ticket_init(&holder);
        ticket_init(&first);
        ticket_init(&second);
        ticket_init(&newcomer);
        ef_error err = {0};
        assert_int_equal(ef_sched_admit(s, &holder.t, "holder", false, 0, &err), 0);
        assert_int_equal(ef_sched_admit(s, &first.t, first_fn, false, 0, &err), 1);
        assert_int_equal(ef_sched_admit(s, &second.t, second_fn, false, 0, &err), 1);
        ef_sched_release(s, &holder.t);
        /* The slot is free until the timer runs: a newcomer still queues behind the others. */
        assert_int_equal(ef_sched_admit(s, &newcomer.t, third_fn, false, 0, &err), 1);
        turn();
        assert_int_equal(first.runs, 1);
        assert_int_equal(second.runs, 0);
        ef_sched_release(s, &first.t);
        turn();
        assert_int_equal(second.runs, 1);
        assert_int_equal(newcomer.runs, 0);
        ef_sched_release(s, &second.t);
        turn();
        assert_int_equal(newcomer.runs, 1);
        ef_sched_release(s, &newcomer.t);
        finish(s);
    }
}

static void test_capacity_wait(void **state)
{
    (void)state;
    struct ef_scheduler *s = start(5, 10000, 100);
    struct test_ticket a, b, c;
    ticket_init(&a);
    ticket_init(&b);
    ticket_init(&c);
    ef_error err = {0};
    assert_int_equal(ef_sched_admit(s, &a.t, "f", true, 1, &err), 0);
    assert_int_equal(ef_sched_admit(s, &b.t, "f", true, 1, &err), 1);
    /* a found no capacity: it gives its slot back and waits ahead of b, which came later. */
    assert_int_equal(ef_sched_wait_capacity(s, &a.t, &err), 0);
    assert_true(ef_sched_capacity_wanted(s));
    assert_int_equal(ef_sched_in_flight(s), 0);
    turn();
    /* While the node is out of capacity (and no idle container could serve), nobody starts. */
    assert_int_equal(a.runs, 0);
    assert_int_equal(b.runs, 0);
    ef_sched_capacity_changed(s);
    turn();
    assert_int_equal(a.runs, 1);
    assert_int_equal(b.runs, 0); /* a holds f's only slot again */
    assert_false(ef_sched_capacity_wanted(s));
    ef_sched_release(s, &a.t);
    turn();
    assert_int_equal(b.runs, 1);
    ef_sched_release(s, &b.t);

    /* An invocation waiting for capacity (memory) does not hold back another function's
     * newcomer, which may fit: it takes its slot at once. One of a function that waits for its
     * own reservation does not either. */
    ticket_init(&a);
    ticket_init(&b);
    ticket_init(&c);
    assert_int_equal(ef_sched_admit(s, &a.t, "big", false, 0, &err), 0);
    assert_int_equal(ef_sched_wait_capacity(s, &a.t, &err), 0);
    assert_int_equal(ef_sched_admit(s, &b.t, "small", false, 0, &err), 0);
    struct test_ticket r1, r2;
    ticket_init(&r1);
    ticket_init(&r2);
    assert_int_equal(ef_sched_admit(s, &r1.t, "reserved", true, 1, &err), 0);
    assert_int_equal(ef_sched_admit(s, &r2.t, "reserved", true, 1, &err), 1);
    assert_int_equal(ef_sched_admit(s, &c.t, "other", false, 0, &err), 0);
    ef_sched_release(s, &r1.t);
    ef_sched_release(s, &r2.t);
    ef_sched_release(s, &b.t);
    ef_sched_release(s, &c.t);
    ef_sched_release(s, &a.t);

    /* Without a queue, no capacity is an immediate 429. */
    finish(s);
    s = start(0, 10000, 100);
    ticket_init(&c);
    assert_int_equal(ef_sched_admit(s, &c.t, "f", false, 0, &err), 0);
    assert_int_equal(ef_sched_wait_capacity(s, &c.t, &err), -EAGAIN);
    assert_non_null(strstr(err.msg, "no memory or container left"));
    ef_sched_release(s, &c.t);
    finish(s);
}

static void test_close_rejects_queued(void **state)
{
    (void)state;
    struct ef_scheduler *s = start(5, 10000, 100);
    struct test_ticket a, b;
    ticket_init(&a);
    ticket_init(&b);
    ef_error err = {0};
    assert_int_equal(ef_sched_admit(s, &a.t, "f", true, 1, &err), 0);
    assert_int_equal(ef_sched_admit(s, &b.t, "f", true, 1, &err), 1);
    ef_sched_close(s);
    assert_int_equal(b.rejected_status, 503);
    assert_null(b.reason);
    struct test_ticket c;
    ticket_init(&c);
    assert_int_equal(ef_sched_admit(s, &c.t, "f", true, 1, &err), -ESHUTDOWN);
    /* The invocation in flight still ends normally. */
    ef_sched_release(s, &a.t);
    finish(s);
}

static void test_config_parse(void **state)
{
    (void)state;
    struct ef_sched_config cfg;
    ef_error err = {0};
    assert_int_equal(ef_sched_config_parse(&cfg, 0, 5, "250ms", "2s", "1s", "reset", &err), 0);
    assert_int_equal(cfg.queue_depth, 0);
    assert_int_equal(cfg.max_concurrency, 5);
    assert_int_equal(cfg.queue_wait_ms, 250);
    assert_int_equal(cfg.idle_timeout_ms, 2000);
    assert_int_equal(cfg.health_interval_ms, 1000);
    assert_true(cfg.cooldown_reset);
    assert_int_equal(ef_sched_config_parse(&cfg, 1, 5, "10s", "500ms", "1s", "destroy", &err),
                     -EINVAL);
    assert_non_null(strstr(err.msg, "--idle-timeout"));
    assert_int_equal(ef_sched_config_parse(&cfg, 1, 5, "soon", "60s", "1s", "destroy", &err),
                     -EINVAL);
    assert_non_null(strstr(err.msg, "--queue-wait"));
    assert_int_equal(ef_sched_config_parse(&cfg, 1, 5, "1s", "60s", "1s", "keep", &err), -EINVAL);
    assert_non_null(strstr(err.msg, "--cooldown"));
    assert_int_equal(ef_sched_config_parse(&cfg, -1, 5, "1s", "60s", "1s", "destroy", &err),
                     -EINVAL);
    assert_int_equal(ef_sched_config_parse(&cfg, 1, 0, "1s", "60s", "1s", "destroy", &err),
                     -EINVAL);
}

static void test_name_map(void **state)
{
    (void)state;
    struct ef_name_map m;
    ef_name_map_init(&m);
    assert_null(ef_name_map_get(&m, "x"));
    assert_null(ef_name_map_remove(&m, "x"));
    static int values[1000];
    char name[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "fn-%d", i);
        assert_int_equal(ef_name_map_put(&m, name, &values[i]), 0);
    }
    assert_int_equal(m.count, 1000);
    /* Replacing keeps the count. */
    assert_int_equal(ef_name_map_put(&m, "fn-7", &values[8]), 0);
    assert_int_equal(m.count, 1000);
    assert_ptr_equal(ef_name_map_get(&m, "fn-7"), &values[8]);
    assert_ptr_equal(ef_name_map_get(&m, "fn-999"), &values[999]);
    /* Iterating while removing every other entry visits each entry once. */
    size_t bucket = 0, seen = 0;
    struct ef_name_entry *pos = NULL, *e;
    while ((e = ef_name_map_next(&m, &bucket, &pos)) != NULL) {
        int n = atoi(e->name + 3);
        seen++;
        if (n % 2 == 0)
            assert_non_null(ef_name_map_remove(&m, e->name));
    }
    assert_int_equal(seen, 1000);
    assert_int_equal(m.count, 500);
    assert_null(ef_name_map_get(&m, "fn-2"));
    assert_ptr_equal(ef_name_map_get(&m, "fn-3"), &values[3]);
    ef_name_map_clear(&m);
    assert_int_equal(m.count, 0);
    assert_null(ef_name_map_get(&m, "fn-3"));
}

static void test_metrics_text(void **state)
{
    (void)state;
    memset(&ctl, 0, sizeof(ctl));
    ef_pool_init(&ctl.pool);
    assert_int_equal(ef_metrics_new(&ctl.metrics), 0);
    ef_metrics_invocation(ctl.metrics, "fn", EF_OUTCOME_SUCCESS, 0.003);
    ef_metrics_invocation(ctl.metrics, "fn", EF_OUTCOME_SUCCESS, 2.0);
    ef_metrics_invocation(ctl.metrics, "fn", EF_OUTCOME_THROTTLED, -1);
    ef_metrics_invocation(ctl.metrics, "a\"b", EF_OUTCOME_ERROR, 0.5);
    ef_metrics_cold_start(ctl.metrics, "fn");
    ef_metrics_funclet_error(ctl.metrics, "container.create");
    ef_metrics_funclet_error(ctl.metrics, "container.create");
    ef_metrics_set_async_backlog(ctl.metrics, 7);
    ef_metrics_set_async_dead_letters(ctl.metrics, 2);
    ef_metrics_async_event(ctl.metrics, EF_ASYNC_DEAD_LETTERED);
    size_t len = 0;
    char *text = ef_metrics_render(&ctl, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    static const char *const want[] = {
        "# TYPE easyfaas_invocations_total counter\n",
        "easyfaas_invocations_total{function=\"fn\",outcome=\"success\"} 2\n",
        "easyfaas_invocations_total{function=\"fn\",outcome=\"throttled\"} 1\n",
        "easyfaas_invocations_total{function=\"a\\\"b\",outcome=\"error\"} 1\n",
        "# TYPE easyfaas_invocation_duration_seconds histogram\n",
        "easyfaas_invocation_duration_seconds_bucket{function=\"fn\",le=\"0.0025\"} 0\n",
        "easyfaas_invocation_duration_seconds_bucket{function=\"fn\",le=\"0.005\"} 1\n",
        "easyfaas_invocation_duration_seconds_bucket{function=\"fn\",le=\"2.5\"} 2\n",
        "easyfaas_invocation_duration_seconds_bucket{function=\"fn\",le=\"+Inf\"} 2\n",
        "easyfaas_invocation_duration_seconds_sum{function=\"fn\"} 2.003000\n",
        "easyfaas_invocation_duration_seconds_count{function=\"fn\"} 2\n",
        "easyfaas_cold_starts_total{function=\"fn\"} 1\n",
        "easyfaas_containers{state=\"warm\"} 0\n",
        "easyfaas_funclet_up 0\n",
        "easyfaas_funclet_rpc_errors_total{method=\"container.create\"} 2\n",
        "easyfaas_async_backlog 7\n",
        "easyfaas_async_dead_letters 2\n",
        "easyfaas_async_events_total{event=\"dead_lettered\"} 1\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!strstr(text, want[i]))
            fail_msg("missing '%s' in:\n%s", want[i], text);
    /* Function series come sorted by name: "a\"b" before "fn". */
    assert_true(strstr(text, "function=\"a\\\"b\"") < strstr(text, "function=\"fn\""));
    /* No cold count before funclet's list was seen. */
    assert_null(strstr(text, "state=\"cold\""));
    free(text);
    ef_metrics_free(ctl.metrics);
    ctl.metrics = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reserved_limit_without_queue),
        cmocka_unit_test(test_reserved_zero_throttles),
        cmocka_unit_test(test_queue_is_fifo),
        cmocka_unit_test(test_wait_expires),
        cmocka_unit_test(test_node_limit),
        cmocka_unit_test(test_node_limit_queue_serves_other_functions),
        cmocka_unit_test(test_node_limit_serves_in_admission_order),
        cmocka_unit_test(test_capacity_wait),
        cmocka_unit_test(test_close_rejects_queued),
        cmocka_unit_test(test_config_parse),
        cmocka_unit_test(test_name_map),
        cmocka_unit_test(test_metrics_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
