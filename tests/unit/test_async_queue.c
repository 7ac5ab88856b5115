/* The async invocation queue on a real SQLite database in a temporary directory: enqueue,
 * claim order, retry scheduling, dead letters, per-function order, recovery after a process was
 * killed mid-delivery, the retention sweep, and two handles writing at once; plus the retry
 * policy and the duration parser. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>

#include "common/fsutil.h"
#include "controller/async_policy.h"
#include "controller/async_queue.h"
#include "controller/duration.h"

static char tmpdir[64];
static char dbpath[128];

/* A fixed "now" far from 0, so that ages are computed on realistic numbers. */
#define T0 1800000000000LL

static const struct ef_async_policy policy3 = {
    .max_attempts = 3, .retry_delay_ms = 1000, .max_age_ms = 6 * 3600 * 1000LL};

static int setup(void **state)
{
    (void)state;
    strcpy(tmpdir, "/tmp/ef-async-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    snprintf(dbpath, sizeof(dbpath), "%s/controller.db", tmpdir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(ef_rm_rf(tmpdir, NULL), 0);
    return 0;
}

static ef_async_queue *open_queue(enum ef_async_ordering ordering, bool fsync_commits)
{
    ef_async_queue *q = NULL;
    ef_error err = {0};
    if (ef_async_queue_open(dbpath, ordering, fsync_commits, &q, &err) < 0)
        fail_msg("open: %s", err.msg);
    return q;
}

/* Inserts one event "<id>" for `fn` with payload {"n": <n>}, accepted at `t`. */
static void enqueue1(ef_async_queue *q, const char *id, const char *fn, int n, int64_t t)
{
    char payload[32];
    snprintf(payload, sizeof(payload), "{\"n\": %d}", n);
    struct ef_async_new_event e = {
        .request_id = id,
        .function_name = fn,
        .qualifier = "$LATEST",
        .payload = payload,
        .payload_len = strlen(payload),
        .created_ms = t,
    };
    ef_error err = {0};
    if (ef_async_queue_enqueue(q, &e, 1, &err) < 0)
        fail_msg("enqueue: %s", err.msg);
}

/* Claims at `now`; returns NULL when nothing is due. */
static struct ef_async_event *claim(ef_async_queue *q, int64_t now, const struct ef_async_policy *p)
{
    struct ef_async_event *ev = NULL;
    ef_error err = {0};
    int r = ef_async_queue_claim(q, now, p, &ev, &err);
    if (r == -ENOENT)
        return NULL;
    if (r < 0)
        fail_msg("claim: %s", err.msg);
    return ev;
}

static void finish(ef_async_queue *q, const struct ef_async_event *ev, int64_t now,
                   const struct ef_async_outcome *o)
{
    ef_error err = {0};
    if (ef_async_queue_finish(q, ev->seq, now, o, &err) < 0)
        fail_msg("finish: %s", err.msg);
}

static struct ef_async_event *get(ef_async_queue *q, const char *id)
{
    struct ef_async_event *ev = NULL;
    ef_error err = {0};
    if (ef_async_queue_get(q, id, &ev, &err) < 0)
        fail_msg("get %s: %s", id, err.msg);
    return ev;
}

static void test_policy(void **state)
{
    (void)state;
    struct ef_async_step s;
    /* Function errors: 1 s after the first attempt, 2 s after the second, then a dead letter. */
    ef_async_policy_after_failure(&policy3, EF_ASYNC_FUNCTION_ERROR, 1, 0, T0, T0, &s);
    assert_false(s.dead_letter);
    assert_int_equal(s.next_attempt_ms, T0 + 1000);
    ef_async_policy_after_failure(&policy3, EF_ASYNC_FUNCTION_ERROR, 2, 0, T0, T0 + 50, &s);
    assert_false(s.dead_letter);
    assert_int_equal(s.next_attempt_ms, T0 + 50 + 2000);
    ef_async_policy_after_failure(&policy3, EF_ASYNC_FUNCTION_ERROR, 3, 0, T0, T0, &s);
    assert_true(s.dead_letter);
    assert_string_equal(s.condition, EF_ASYNC_RETRIES_EXHAUSTED);
    /* With a limit on retries after refusals, throttling counts against it too. */
    const struct ef_async_policy limited = {
        .max_attempts = 3, .retry_delay_ms = 1000, .max_age_ms = 3600000, .max_refusals = 2};
    ef_async_policy_after_failure(&limited, EF_ASYNC_REFUSED, 0, 2, T0, T0, &s);
    assert_false(s.dead_letter);
    ef_async_policy_after_failure(&limited, EF_ASYNC_REFUSED, 0, 3, T0, T0, &s);
    assert_true(s.dead_letter);
    assert_string_equal(s.condition, EF_ASYNC_RETRIES_EXHAUSTED);
    /* Without one, the 50th refusal is retried still (until the event's age ends it). */
    ef_async_policy_after_failure(&policy3, EF_ASYNC_REFUSED, 0, 50, T0, T0, &s);
    assert_false(s.dead_letter);
    /* No retries at all. */
    const struct ef_async_policy once = {
        .max_attempts = 1, .retry_delay_ms = 1000, .max_age_ms = 3600000};
    ef_async_policy_after_failure(&once, EF_ASYNC_FUNCTION_ERROR, 1, 0, T0, T0, &s);
    assert_true(s.dead_letter);
    /* Refusals never use up attempts: 1 s, 2 s, 4 s … capped at 5 min, until the max age. */
    ef_async_policy_after_failure(&once, EF_ASYNC_REFUSED, 0, 1, T0, T0, &s);
    assert_false(s.dead_letter);
    assert_int_equal(s.next_attempt_ms, T0 + 1000);
    ef_async_policy_after_failure(&policy3, EF_ASYNC_REFUSED, 2, 3, T0, T0, &s);
    assert_int_equal(s.next_attempt_ms, T0 + 4000);
    ef_async_policy_after_failure(&policy3, EF_ASYNC_REFUSED, 0, 60, T0, T0, &s);
    assert_int_equal(s.next_attempt_ms, T0 + EF_ASYNC_THROTTLE_BACKOFF_MAX_MS);
    /* A next attempt beyond the max age is a dead letter now. */
    ef_async_policy_after_failure(&policy3, EF_ASYNC_REFUSED, 0, 10, T0,
                                  T0 + 6 * 3600 * 1000LL - 10, &s);
    assert_true(s.dead_letter);
    assert_string_equal(s.condition, EF_ASYNC_EVENT_AGE_EXCEEDED);
    assert_true(ef_async_policy_expired(&policy3, T0, T0 + 6 * 3600 * 1000LL));
    assert_false(ef_async_policy_expired(&policy3, T0, T0 + 6 * 3600 * 1000LL - 1));
}

static void test_duration(void **state)
{
    (void)state;
    uint64_t ms = 0;
    assert_int_equal(ef_parse_duration_ms("250ms", &ms, NULL), 0);
    assert_int_equal(ms, 250);
    assert_int_equal(ef_parse_duration_ms("90", &ms, NULL), 0);
    assert_int_equal(ms, 90000);
    assert_int_equal(ef_parse_duration_ms("6h", &ms, NULL), 0);
    assert_int_equal(ms, 6 * 3600 * 1000ULL);
    assert_int_equal(ef_parse_duration_ms("14d", &ms, NULL), 0);
    assert_int_equal(ms, 14 * 24 * 3600 * 1000ULL);
    ef_error err = {0};
    const char *bad[] = {"",      "s", "-1s", "1.5s", "10 s", "3w", "99999999999999999999",
                         "4000d", NULL};
    for (size_t i = 0; bad[i]; i++) {
        if (ef_parse_duration_ms(bad[i], &ms, &err) != -EINVAL)
            fail_msg("'%s' was accepted as a duration", bad[i]);
    }
    assert_non_null(strstr(err.msg, "is not a duration"));
    assert_int_equal(ef_parse_duration_ms(NULL, &ms, NULL), -EINVAL);
}

static void test_enqueue_claim_in_order(void **state)
{
    (void)state;
    ef_async_queue *q = open_queue(EF_ASYNC_OLDEST_FIRST, true);
    struct ef_async_new_event batch[3];
    const char *ids[] = {"id-1", "id-2", "id-3"};
    for (int i = 0; i < 3; i++)
        batch[i] = (struct ef_async_new_event){.request_id = ids[i],
                                               .function_name = "fn",
                                               .qualifier = i == 2 ? "7" : "$LATEST",
                                               .payload = "{\"a\": 1}",
                                               .payload_len = 8,
                                               .created_ms = T0};
    assert_int_equal(ef_async_queue_enqueue(q, batch, 3, NULL), 0);

    struct ef_async_event *ev = get(q, "id-2");
    assert_int_equal(ev->status, EF_EVENT_QUEUED);
    assert_string_equal(ef_async_status_name(ev->status), "queued");
    assert_int_equal(ev->attempts, 0);
    assert_int_equal(ev->created_ms, T0);
    assert_null(ev->payload); /* lookups leave the payload out */
    ef_async_event_free(ev);
    struct ef_async_event *missing = NULL;
    assert_int_equal(ef_async_queue_get(q, "nope", &missing, NULL), -ENOENT);

    /* Not due before it was accepted. */
    assert_null(claim(q, T0 - 1, &policy3));
    for (int i = 0; i < 3; i++) {
        ev = claim(q, T0, &policy3);
        assert_non_null(ev);
        assert_string_equal(ev->request_id, ids[i]);
        assert_int_equal(ev->status, EF_EVENT_RUNNING);
        assert_int_equal(ev->attempts, 1);
        assert_string_equal(ev->payload, "{\"a\": 1}");
        assert_int_equal(ev->payload_len, 8);
        assert_string_equal(ev->qualifier, i == 2 ? "7" : "$LATEST");
        ef_async_event_free(ev);
    }
    assert_null(claim(q, T0 + 1000000, &policy3));
    int64_t due = 0;
    assert_int_equal(ef_async_queue_next_due(q, &due, NULL), -ENOENT);
    ev = get(q, "id-1");
    assert_int_equal(ev->status, EF_EVENT_RUNNING);
    ef_async_event_free(ev);

    /* A request id is unique, and a batch goes in whole or not at all. */
    struct ef_async_new_event dup[2] = {batch[0], batch[0]};
    dup[0].request_id = "id-4";
    ef_error err = {0};
    assert_int_equal(ef_async_queue_enqueue(q, dup, 2, &err), -EEXIST);
    assert_non_null(strstr(err.msg, "id-1"));
    assert_int_equal(ef_async_queue_get(q, "id-4", &missing, NULL), -ENOENT);
    ef_async_queue_close(q);
}

static void test_retries_then_dead_letter(void **state)
{
    (void)state;
    ef_async_queue *q = open_queue(EF_ASYNC_OLDEST_FIRST, false);
    enqueue1(q, "ev", "fn", 1, T0);
    const char *doc = "{\"errorMessage\": \"boom\", \"errorType\": \"ValueError\"}";
    for (int attempt = 1; attempt <= 3; attempt++) {
        int64_t now = T0 + (attempt - 1) * 10000;
        struct ef_async_event *ev = claim(q, now, &policy3);
        assert_non_null(ev);
        assert_int_equal(ev->attempts, attempt);
        struct ef_async_outcome o = {
            .status = attempt < 3 ? EF_EVENT_FAILED : EF_EVENT_DEAD_LETTERED,
            .next_attempt_ms = now + 1000 * attempt,
            .condition = EF_ASYNC_RETRIES_EXHAUSTED,
            .error_type = "ValueError",
            .error_message = "boom",
            .result = doc,
            .result_len = strlen(doc),
        };
        finish(q, ev, now + 5, &o);
        ef_async_event_free(ev);
        if (attempt < 3) {
            /* Waiting for its retry: not claimable before the time, claimable at it. */
            struct ef_async_event *st = get(q, "ev");
            assert_int_equal(st->status, EF_EVENT_FAILED);
            assert_int_equal(st->next_attempt_ms, now + 1000 * attempt);
            assert_string_equal(st->error_type, "ValueError");
            ef_async_event_free(st);
            assert_null(claim(q, now + 1000 * attempt - 1, &policy3));
            int64_t due = 0;
            assert_int_equal(ef_async_queue_next_due(q, &due, NULL), 0);
            assert_int_equal(due, now + 1000 * attempt);
        }
    }
    struct ef_async_event *st = get(q, "ev");
    assert_int_equal(st->status, EF_EVENT_DEAD_LETTERED);
    assert_string_equal(ef_async_status_name(st->status), "dead-lettered");
    assert_int_equal(st->attempts, 3);
    assert_string_equal(st->condition, EF_ASYNC_RETRIES_EXHAUSTED);
    assert_string_equal(st->result, doc);
    assert_int_equal(st->result_size, (int64_t)strlen(doc));
    ef_async_event_free(st);
    /* Finished: nothing is due, and finishing it again is refused. */
    assert_null(claim(q, T0 + 100000, &policy3));
    struct ef_async_outcome again = {.status = EF_EVENT_SUCCEEDED};
    assert_int_equal(ef_async_queue_finish(q, 1, T0, &again, NULL), -ESTALE);

    struct ef_async_page page = {0};
    assert_int_equal(ef_async_queue_dead_letters(q, "fn", NULL, 0, 10, &page, NULL), 0);
    assert_int_equal(page.n, 1);
    assert_false(page.more);
    assert_string_equal(page.items[0]->payload, "{\"n\": 1}");
    assert_string_equal(page.items[0]->error_message, "boom");
    ef_async_page_free(&page);
    int64_t counts[5];
    assert_int_equal(ef_async_queue_counts(q, counts, NULL), 0);
    assert_int_equal(counts[EF_EVENT_DEAD_LETTERED], 1);
    assert_int_equal(counts[EF_EVENT_QUEUED] + counts[EF_EVENT_RUNNING] + counts[EF_EVENT_FAILED],
                     0);
    ef_async_queue_close(q);
}

static void test_refusal_and_success(void **state)
{
    (void)state;
    ef_async_queue *q = open_queue(EF_ASYNC_OLDEST_FIRST, false);
    enqueue1(q, "ev", "fn", 1, T0);
    struct ef_async_event *ev = claim(q, T0, &policy3);
    struct ef_async_outcome refused = {
        .status = EF_EVENT_QUEUED,
        .next_attempt_ms = T0 + 1000,
        .error_type = "TooManyRequestsException",
        .error_message = "Rate Exceeded.",
    };
    finish(q, ev, T0, &refused);
    ef_async_event_free(ev);
    ev = get(q, "ev");
    /* The refused attempt is given back. */
    assert_int_equal(ev->status, EF_EVENT_QUEUED);
    assert_int_equal(ev->attempts, 0);
    assert_int_equal(ev->refusals, 1);
    assert_string_equal(ev->error_type, "TooManyRequestsException");
    ef_async_event_free(ev);

    ev = claim(q, T0 + 1000, &policy3);
    assert_int_equal(ev->attempts, 1);
    struct ef_async_outcome ok = {.status = EF_EVENT_SUCCEEDED, .result = "42", .result_len = 2};
    finish(q, ev, T0 + 1500, &ok);
    ef_async_event_free(ev);
    ev = get(q, "ev");
    assert_int_equal(ev->status, EF_EVENT_SUCCEEDED);
    assert_int_equal(ev->attempts, 1);
    assert_int_equal(ev->refusals, 1);
    assert_string_equal(ev->result, "42");
    assert_null(ev->error_type); /* a success clears the last failure */
    assert_int_equal(ev->updated_ms, T0 + 1500);
    ef_async_event_free(ev);

    /* A result too large to keep is recorded by size only. */
    enqueue1(q, "big", "fn", 2, T0);
    ev = claim(q, T0 + 2000, &policy3);
    struct ef_async_outcome big = {.status = EF_EVENT_SUCCEEDED, .result_size = 9000000};
    finish(q, ev, T0 + 2000, &big);
    ef_async_event_free(ev);
    ev = get(q, "big");
    assert_null(ev->result);
    assert_int_equal(ev->result_size, 9000000);
    ef_async_event_free(ev);
    ef_async_queue_close(q);
}

static void test_expired_and_exhausted_at_claim(void **state)
{
    (void)state;
    ef_async_queue *q = open_queue(EF_ASYNC_OLDEST_FIRST, false);
    const struct ef_async_policy short_age = {
        .max_attempts = 3, .retry_delay_ms = 1000, .max_age_ms = 5000};
    enqueue1(q, "old", "fn", 1, T0);
    enqueue1(q, "young", "fn", 2, T0 + 4000);
    struct ef_async_event *ev = claim(q, T0 + 5000, &short_age);
    assert_string_equal(ev->request_id, "old");
    assert_int_equal(ev->status, EF_EVENT_DEAD_LETTERED);
    assert_string_equal(ev->condition, EF_ASYNC_EVENT_AGE_EXCEEDED);
    assert_int_equal(ev->attempts, 0);
    ef_async_event_free(ev);
    /* It never ran, so no attempt left an error: the dead letter still says why. */
    ev = get(q, "old");
    assert_null(ev->error_type);
    assert_non_null(ev->error_message);
    assert_non_null(strstr(ev->error_message, "--async-max-age"));
    ef_async_event_free(ev);
    ev = claim(q, T0 + 5000, &short_age);
    assert_string_equal(ev->request_id, "young");
    assert_int_equal(ev->status, EF_EVENT_RUNNING);
    ef_async_event_free(ev);
    ef_async_queue_close(q);
}

/* Per-function order: one event of a function at a time, in acceptance order, through retries;
 * other functions are not held up. */
static void test_per_function_order(void **state)
{
    (void)state;
    ef_async_queue *q = open_queue(EF_ASYNC_PER_FUNCTION, true);
    enqueue1(q, "a1", "a", 1, T0);
    enqueue1(q, "a2", "a", 2, T0);
    enqueue1(q, "b1", "b", 1, T0 + 1);
    enqueue1(q, "a3", "a", 3, T0 + 2);
    struct ef_async_event *a1 = claim(q, T0 + 10, &policy3);
    struct ef_async_event *b1 = claim(q, T0 + 10, &policy3);
    assert_string_equal(a1->request_id, "a1");
    assert_string_equal(b1->request_id, "b1");
    assert_null(claim(q, T0 + 10, &policy3)); /* a2 waits for a1 */

    struct ef_async_outcome retry = {
        .status = EF_EVENT_FAILED, .next_attempt_ms = T0 + 1000, .error_type = "Unhandled"};
    finish(q, a1, T0 + 20, &retry);
    assert_null(claim(q, T0 + 999, &policy3)); /* a1's retry is not due, a2 still waits */
    ef_async_event_free(a1);
    a1 = claim(q, T0 + 1000, &policy3);
    assert_string_equal(a1->request_id, "a1");
    assert_int_equal(a1->attempts, 2);
    struct ef_async_outcome ok = {.status = EF_EVENT_SUCCEEDED, .result = "{}", .result_len = 2};
    finish(q, a1, T0 + 1100, &ok);
    finish(q, b1, T0 + 1100, &ok);
    struct ef_async_event *a2 = claim(q, T0 + 1100, &policy3);
    assert_string_equal(a2->request_id, "a2");
    assert_null(claim(q, T0 + 1100, &policy3));
    /* A dead letter also lets the next one go. */
    struct ef_async_outcome dead = {.status = EF_EVENT_DEAD_LETTERED,
                                    .condition = EF_ASYNC_RETRIES_EXHAUSTED,
                                    .error_type = "Unhandled"};
    finish(q, a2, T0 + 1200, &dead);
    struct ef_async_event *a3 = claim(q, T0 + 1200, &policy3);
    assert_string_equal(a3->request_id, "a3");
    finish(q, a3, T0 + 1300, &ok);
    ef_async_event_free(a1);
    ef_async_event_free(b1);
    ef_async_event_free(a2);
    ef_async_event_free(a3);
    ef_async_queue_close(q);

    /* The ordering can change between runs: recovery recomputes what is due. */
    q = open_queue(EF_ASYNC_PER_FUNCTION, true);
    enqueue1(q, "c1", "c", 1, T0);
    enqueue1(q, "c2", "c", 2, T0);
    ef_async_queue_close(q);
    q = open_queue(EF_ASYNC_OLDEST_FIRST, true);
    assert_int_equal(ef_async_queue_recover(q, T0, EF_ASYNC_INTERRUPTED_DEAD_LETTER, NULL, NULL),
                     0);
    struct ef_async_event *c1 = claim(q, T0 + 5000, &policy3);
    struct ef_async_event *c2 = claim(q, T0 + 5000, &policy3);
    assert_non_null(c1);
    assert_non_null(c2); /* both run at once in oldest-first order */
    assert_string_equal(c2->request_id, "c2");
    ef_async_event_free(c1);
    ef_async_event_free(c2);
    ef_async_queue_close(q);
}

/* In a child process (as a controller under kill -9): enqueues r1 and r2 for "f", claims r1
 * and dies without finishing it. */
static void kill_during_delivery(enum ef_async_ordering ordering)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        ef_async_queue *q = NULL;
        if (ef_async_queue_open(dbpath, ordering, false, &q, NULL) < 0)
            _exit(2);
        struct ef_async_new_event e[2] = {
            {.request_id = "r1",
             .function_name = "f",
             .qualifier = "$LATEST",
             .payload = "1",
             .payload_len = 1,
             .created_ms = T0},
            {.request_id = "r2",
             .function_name = "f",
             .qualifier = "$LATEST",
             .payload = "2",
             .payload_len = 1,
             .created_ms = T0},
        };
        struct ef_async_event *ev = NULL;
        if (ef_async_queue_enqueue(q, e, 2, NULL) < 0 ||
            ef_async_queue_claim(q, T0, &policy3, &ev, NULL) < 0 || strcmp(ev->request_id, "r1"))
            _exit(3);
        raise(SIGKILL);
        _exit(4);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

/* The default: an event whose attempt a kill interrupted is a dead letter at the next start
 * (condition Interrupted), never claimed again; the events that were only queued are delivered
 * as usual. Its function's next event goes on, in per-function order too. */
static void test_recovery_dead_letters_interrupted(void **state)
{
    (void)state;
    enum ef_async_ordering orders[] = {EF_ASYNC_OLDEST_FIRST, EF_ASYNC_PER_FUNCTION};
    for (size_t i = 0; i < 2; i++) {
        kill_during_delivery(orders[i]);
        ef_async_queue *q = open_queue(orders[i], false);
        int64_t interrupted = -1, counts[5];
        assert_int_equal(ef_async_queue_recover(q, T0 + 100, EF_ASYNC_INTERRUPTED_DEAD_LETTER,
                                                &interrupted, NULL),
                         0);
        assert_int_equal(interrupted, 1);
        struct ef_async_event *ev = get(q, "r1");
        assert_int_equal(ev->status, EF_EVENT_DEAD_LETTERED);
        assert_int_equal(ev->attempts, 1);
        assert_string_equal(ev->condition, EF_ASYNC_INTERRUPTED);
        assert_string_equal(ev->error_type, "Controller.Interrupted");
        assert_non_null(strstr(ev->error_message, "may or may not have run"));
        assert_non_null(strstr(ev->error_message, "attempt 1"));
        assert_int_equal(ev->updated_ms, T0 + 100);
        ef_async_event_free(ev);
        /* It is listed with the dead letters, payload included, for an operator to replay. */
        struct ef_async_page page = {0};
        assert_int_equal(ef_async_queue_dead_letters(q, "f", NULL, 0, 10, &page, NULL), 0);
        assert_int_equal(page.n, 1);
        assert_string_equal(page.items[0]->request_id, "r1");
        assert_string_equal(page.items[0]->payload, "1");
        ef_async_page_free(&page);
        /* r2 runs once; r1 never again. */
        ev = claim(q, T0 + 100, &policy3);
        assert_non_null(ev);
        assert_string_equal(ev->request_id, "r2");
        assert_int_equal(ev->attempts, 1);
        struct ef_async_outcome ok = {.status = EF_EVENT_SUCCEEDED, .result = "2", .result_len = 1};
        finish(q, ev, T0 + 150, &ok);
        ef_async_event_free(ev);
        assert_null(claim(q, T0 + 10000000, &policy3));
        assert_int_equal(ef_async_queue_counts(q, counts, NULL), 0);
        assert_int_equal(counts[EF_EVENT_DEAD_LETTERED], 1);
        assert_int_equal(counts[EF_EVENT_SUCCEEDED], 1);
        assert_int_equal(counts[EF_EVENT_RUNNING], 0);
        /* A second start finds nothing interrupted. */
        ef_async_queue_close(q);
        q = open_queue(orders[i], false);
        assert_int_equal(ef_async_queue_recover(q, T0 + 200, EF_ASYNC_INTERRUPTED_DEAD_LETTER,
                                                &interrupted, NULL),
                         0);
        assert_int_equal(interrupted, 0);
        ef_async_queue_close(q);
        assert_int_equal(ef_rm_rf(tmpdir, NULL), 0);
        assert_int_equal(mkdir(tmpdir, 0700), 0);
    }
}

/* --async-interrupted retry: the interrupted event is requeued with the attempt counted
 * (at least once); the last attempt interrupted this way makes it a dead letter. */
static void test_recovery_retries_interrupted(void **state)
{
    (void)state;
    kill_during_delivery(EF_ASYNC_OLDEST_FIRST);
    ef_async_queue *q = open_queue(EF_ASYNC_OLDEST_FIRST, false);
    int64_t requeued = -1;
    assert_int_equal(
        ef_async_queue_recover(q, T0 + 100, EF_ASYNC_INTERRUPTED_RETRY, &requeued, NULL), 0);
    assert_int_equal(requeued, 1);
    struct ef_async_event *ev = get(q, "r1");
    assert_int_equal(ev->status, EF_EVENT_QUEUED);
    assert_int_equal(ev->attempts, 1);
    assert_null(ev->condition);
    assert_string_equal(ev->error_type, "Controller.Interrupted");
    assert_non_null(strstr(ev->error_message, "attempt 1"));
    ef_async_event_free(ev);
    /* The interrupted one is due again first (at the recovery time, after r2's acceptance);
     * r2 is untouched. */
    ev = claim(q, T0 + 100, &policy3);
    assert_string_equal(ev->request_id, "r2");
    assert_int_equal(ev->attempts, 1);
    ef_async_event_free(ev);
    ev = claim(q, T0 + 100, &policy3);
    assert_string_equal(ev->request_id, "r1");
    assert_int_equal(ev->attempts, 2);
    ef_async_event_free(ev);
    ef_async_queue_close(q);

    /* Both are running again; with a single attempt allowed, an interrupted one is a dead
     * letter at its next claim. */
    q = open_queue(EF_ASYNC_OLDEST_FIRST, false);
    assert_int_equal(
        ef_async_queue_recover(q, T0 + 200, EF_ASYNC_INTERRUPTED_RETRY, &requeued, NULL), 0);
    assert_int_equal(requeued, 2);
    const struct ef_async_policy once = {
        .max_attempts = 1, .retry_delay_ms = 1, .max_age_ms = 6 * 3600 * 1000LL};
    for (int i = 0; i < 2; i++) {
        ev = claim(q, T0 + 200, &once);
        assert_int_equal(ev->status, EF_EVENT_DEAD_LETTERED);
        assert_string_equal(ev->condition, EF_ASYNC_RETRIES_EXHAUSTED);
        ef_async_event_free(ev);
    }
    assert_null(claim(q, T0 + 200, &once));
    /* An unknown mode is refused, not guessed. */
    ef_error err = {0};
    assert_int_equal(ef_async_queue_recover(q, T0, (enum ef_async_interrupted)7, NULL, &err),
                     -EINVAL);
    ef_async_queue_close(q);
}

/* An attempt given back (never sent: an orderly stop caught it waiting) is not counted and
 * leaves nothing for recovery; a retry given back stays `failed` with its last error. */
static void test_release_unsent_attempt(void **state)
{
    (void)state;
    ef_async_queue *q = open_queue(EF_ASYNC_PER_FUNCTION, false);
    enqueue1(q, "a1", "a", 1, T0);
    enqueue1(q, "a2", "a", 2, T0);
    struct ef_async_event *ev = claim(q, T0, &policy3);
    assert_string_equal(ev->request_id, "a1");
    assert_int_equal(ef_async_queue_release(q, ev->seq, T0 + 10, NULL), 0);
    ef_error err = {0};
    assert_int_equal(ef_async_queue_release(q, ev->seq, T0 + 10, &err), -ESTALE);
    struct ef_async_event *got = get(q, "a1");
    assert_int_equal(got->status, EF_EVENT_QUEUED);
    assert_int_equal(got->attempts, 0);
    assert_int_equal(got->refusals, 0);
    ef_async_event_free(got);
    int64_t interrupted = -1;
    assert_int_equal(
        ef_async_queue_recover(q, T0 + 20, EF_ASYNC_INTERRUPTED_DEAD_LETTER, &interrupted, NULL),
        0);
    assert_int_equal(interrupted, 0);
    /* Per-function order holds: a1 again, not a2. */
    ef_async_event_free(ev);
    ev = claim(q, T0 + 20, &policy3);
    assert_string_equal(ev->request_id, "a1");
    assert_int_equal(ev->attempts, 1);
    struct ef_async_outcome failed = {.status = EF_EVENT_FAILED,
                                      .next_attempt_ms = T0 + 1000,
                                      .error_type = "ValueError",
                                      .error_message = "no"};
    finish(q, ev, T0 + 30, &failed);
    ef_async_event_free(ev);
    assert_null(claim(q, T0 + 500, &policy3));
    ev = claim(q, T0 + 1000, &policy3);
    assert_string_equal(ev->request_id, "a1");
    assert_int_equal(ev->attempts, 2);
    assert_int_equal(ef_async_queue_release(q, ev->seq, T0 + 1010, NULL), 0);
    got = get(q, "a1");
    assert_int_equal(got->status, EF_EVENT_FAILED);
    assert_int_equal(got->attempts, 1);
    assert_string_equal(got->error_type, "ValueError");
    ef_async_event_free(got);
    ef_async_event_free(ev);
    ef_async_queue_close(q);
}

static void test_sweep(void **state)
{
    (void)state;
    ef_async_queue *q = open_queue(EF_ASYNC_OLDEST_FIRST, true);
    struct ef_async_outcome ok = {.status = EF_EVENT_SUCCEEDED, .result = "1", .result_len = 1};
    struct ef_async_outcome dead = {.status = EF_EVENT_DEAD_LETTERED,
                                    .condition = EF_ASYNC_RETRIES_EXHAUSTED,
                                    .error_type = "Unhandled"};
    /* Three succeeded at T0, T0+10, T0+20; two dead letters at T0, T0+20; one running and one
     * queued, both old. */
    const char *ids[] = {"s1", "s2", "s3", "d1", "d2", "running", "waiting"};
    for (int i = 0; i < 7; i++)
        enqueue1(q, ids[i], "fn", i, T0 - 1000000);
    for (int i = 0; i < 5; i++) {
        struct ef_async_event *ev =
            claim(q, T0,
                  &(struct ef_async_policy){
                      .max_attempts = 3, .retry_delay_ms = 1, .max_age_ms = 1LL << 40});
        assert_string_equal(ev->request_id, ids[i]);
        int64_t when = T0 + (i == 0 || i == 3 ? 0 : i == 1 ? 10 : 20);
        finish(q, ev, when, i < 3 ? &ok : &dead);
        ef_async_event_free(ev);
    }
    struct ef_async_event *running = claim(
        q, T0,
        &(struct ef_async_policy){.max_attempts = 3, .retry_delay_ms = 1, .max_age_ms = 1LL << 40});
    assert_string_equal(running->request_id, "running");
    ef_async_event_free(running);

    size_t n_ok = 9, n_dead = 9;
    /* Succeeded before T0+15, dead letters before T0+5; at most 1 row first. */
    assert_int_equal(ef_async_queue_sweep(q, T0 + 15, T0 + 5, 1, &n_ok, &n_dead, NULL), 0);
    assert_int_equal(n_ok + n_dead, 1);
    assert_int_equal(ef_async_queue_sweep(q, T0 + 15, T0 + 5, 100, &n_ok, &n_dead, NULL), 0);
    assert_int_equal(n_ok + n_dead, 2);
    int64_t counts[5];
    assert_int_equal(ef_async_queue_counts(q, counts, NULL), 0);
    assert_int_equal(counts[EF_EVENT_SUCCEEDED], 1);
    assert_int_equal(counts[EF_EVENT_DEAD_LETTERED], 1);
    assert_int_equal(counts[EF_EVENT_RUNNING], 1);
    assert_int_equal(counts[EF_EVENT_QUEUED], 1);
    struct ef_async_event *ev = NULL;
    assert_int_equal(ef_async_queue_get(q, "s1", &ev, NULL), -ENOENT);
    assert_int_equal(ef_async_queue_get(q, "d1", &ev, NULL), -ENOENT);
    ev = get(q, "s3");
    ef_async_event_free(ev);
    ev = get(q, "d2");
    ef_async_event_free(ev);
    /* Unfinished events are never swept, however old. */
    assert_int_equal(ef_async_queue_sweep(q, T0 + 1000000, T0 + 1000000, 100, &n_ok, &n_dead, NULL),
                     0);
    assert_int_equal(n_ok + n_dead, 2);
    ev = get(q, "running");
    assert_int_equal(ev->status, EF_EVENT_RUNNING);
    ef_async_event_free(ev);
    ev = get(q, "waiting");
    assert_int_equal(ev->status, EF_EVENT_QUEUED);
    ef_async_event_free(ev);
    ef_async_queue_close(q);
}

static void test_dead_letter_pages(void **state)
{
    (void)state;
    ef_async_queue *q = open_queue(EF_ASYNC_OLDEST_FIRST, true);
    const struct ef_async_policy once = {
        .max_attempts = 1, .retry_delay_ms = 1, .max_age_ms = 1LL << 40};
    struct ef_async_outcome dead = {.status = EF_EVENT_DEAD_LETTERED,
                                    .condition = EF_ASYNC_RETRIES_EXHAUSTED,
                                    .error_type = "Unhandled"};
    for (int i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof(id), "d%d", i);
        enqueue1(q, id, i == 2 ? "other" : "fn", i, T0 + i);
    }
    enqueue1(q, "alive", "fn", 9, T0 + 9);
    for (int i = 0; i < 5; i++) {
        struct ef_async_event *ev = claim(q, T0 + 100, &once);
        finish(q, ev, T0 + 100, &dead);
        ef_async_event_free(ev);
    }
    struct ef_async_page page = {0};
    assert_int_equal(ef_async_queue_dead_letters(q, "fn", NULL, 0, 2, &page, NULL), 0);
    assert_int_equal(page.n, 2);
    assert_true(page.more);
    assert_string_equal(page.items[0]->request_id, "d0");
    assert_string_equal(page.items[1]->request_id, "d1");
    int64_t marker = page.items[1]->seq;
    ef_async_page_free(&page);
    assert_int_equal(ef_async_queue_dead_letters(q, "fn", NULL, marker, 2, &page, NULL), 0);
    assert_int_equal(page.n, 2);
    assert_false(page.more);
    assert_string_equal(page.items[0]->request_id, "d3");
    assert_string_equal(page.items[1]->request_id, "d4");
    assert_string_equal(page.items[1]->payload, "{\"n\": 4}");
    ef_async_page_free(&page);
    assert_int_equal(ef_async_queue_dead_letters(q, "fn", "3", 0, 10, &page, NULL), 0);
    assert_int_equal(page.n, 0);
    ef_async_page_free(&page);
    assert_int_equal(ef_async_queue_dead_letters(q, "other", "$LATEST", 0, 10, &page, NULL), 0);
    assert_int_equal(page.n, 1);
    ef_async_page_free(&page);
    bool has = false;
    assert_int_equal(ef_async_queue_has_function(q, "fn", &has, NULL), 0);
    assert_true(has);
    assert_int_equal(ef_async_queue_has_function(q, "nobody", &has, NULL), 0);
    assert_false(has);
    ef_async_queue_close(q);
}

/* The controller's two handles: one thread commits batches with fsync while another claims and
 * finishes; SQLite's lock with the busy timeout keeps them apart, and every event is claimed
 * exactly once. */
#define WRITER_BATCHES 40
#define WRITER_BATCH   10

static void writer_thread(void *arg)
{
    ef_async_queue *q = arg;
    static char ids[WRITER_BATCHES * WRITER_BATCH][16];
    for (int b = 0; b < WRITER_BATCHES; b++) {
        struct ef_async_new_event e[WRITER_BATCH];
        for (int i = 0; i < WRITER_BATCH; i++) {
            int n = b * WRITER_BATCH + i;
            snprintf(ids[n], sizeof(ids[n]), "w%d", n);
            e[i] = (struct ef_async_new_event){.request_id = ids[n],
                                               .function_name = n % 2 ? "odd" : "even",
                                               .qualifier = "$LATEST",
                                               .payload = "{}",
                                               .payload_len = 2,
                                               .created_ms = T0};
        }
        ef_error err = {0};
        if (ef_async_queue_enqueue(q, e, WRITER_BATCH, &err) < 0)
            fail_msg("writer: %s", err.msg);
    }
}

static void test_two_handles_at_once(void **state)
{
    (void)state;
    ef_async_queue *lane = open_queue(EF_ASYNC_OLDEST_FIRST, true);
    ef_async_queue *loop = open_queue(EF_ASYNC_OLDEST_FIRST, false);
    uv_thread_t t;
    assert_int_equal(uv_thread_create(&t, writer_thread, lane), 0);
    static bool seen[WRITER_BATCHES * WRITER_BATCH];
    int claimed = 0;
    struct ef_async_outcome ok = {.status = EF_EVENT_SUCCEEDED, .result = "{}", .result_len = 2};
    for (int spins = 0; claimed < WRITER_BATCHES * WRITER_BATCH && spins < 200000; spins++) {
        struct ef_async_event *ev = claim(loop, T0, &policy3);
        if (!ev)
            continue;
        int n = atoi(ev->request_id + 1);
        assert_false(seen[n]);
        seen[n] = true;
        claimed++;
        finish(loop, ev, T0, &ok);
        ef_async_event_free(ev);
    }
    assert_int_equal(uv_thread_join(&t), 0);
    assert_int_equal(claimed, WRITER_BATCHES * WRITER_BATCH);
    int64_t counts[5];
    assert_int_equal(ef_async_queue_counts(loop, counts, NULL), 0);
    assert_int_equal(counts[EF_EVENT_SUCCEEDED], WRITER_BATCHES * WRITER_BATCH);
    ef_async_queue_close(lane);
    ef_async_queue_close(loop);
}

static off_t wal_size(void)
{
    char wal[160];
    snprintf(wal, sizeof(wal), "%s-wal", dbpath);
    struct stat st;
    return stat(wal, &st) == 0 ? st.st_size : 0;
}

/* The loop's handle checkpoints nothing itself: it reports how far its commits have grown the
 * WAL, and a checkpoint by the other handle lets the WAL start over, cut back to its size limit.
 * Claims and refusals alone (no new event committed) are what grew it without bound before. */
static void test_wal_checkpointed_by_other_handle(void **state)
{
    (void)state;
    ef_async_queue *lane = open_queue(EF_ASYNC_OLDEST_FIRST, true);
    ef_async_queue *loop = open_queue(EF_ASYNC_OLDEST_FIRST, false);
    for (int i = 0; i < 200; i++) {
        char id[16];
        snprintf(id, sizeof(id), "e%d", i);
        enqueue1(lane, id, "fn", i, T0);
    }
    /* Refusal after refusal: every cycle is two commits on the loop's handle. */
    const struct ef_async_outcome refused = {
        .status = EF_EVENT_QUEUED, .next_attempt_ms = T0, .error_type = "TooManyRequestsException"};
    int cycles = 0;
    while (ef_async_queue_wal_pages(loop) < 1000) {
        struct ef_async_event *ev = claim(loop, T0, &policy3);
        assert_non_null(ev);
        finish(loop, ev, T0, &refused);
        ef_async_event_free(ev);
        assert_true(++cycles < 100000);
    }
    off_t grown = wal_size();
    assert_true(grown >= 1000 * 4096);

    ef_error err = {0};
    assert_int_equal(ef_async_queue_checkpoint(lane, &err), 0);
    /* The next commit starts the WAL over: few pages, and a file no larger than the limit. */
    struct ef_async_event *ev = claim(loop, T0, &policy3);
    assert_non_null(ev);
    finish(loop, ev, T0, &refused);
    ef_async_event_free(ev);
    assert_true(ef_async_queue_wal_pages(loop) < 100);
    /* Nothing was lost on the way. */
    int64_t counts[5];
    assert_int_equal(ef_async_queue_counts(loop, counts, NULL), 0);
    assert_int_equal(counts[EF_EVENT_QUEUED], 200);
    ef_async_queue_close(lane);
    ef_async_queue_close(loop);
}

static void test_newer_schema_refused(void **state)
{
    (void)state;
    ef_async_queue *q = open_queue(EF_ASYNC_OLDEST_FIRST, true);
    ef_async_queue_close(q);
    /* A database written by a newer controller. */
    pid_t pid = fork();
    if (pid == 0) {
        execlp("/usr/bin/python3", "python3", "-c",
               "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); "
               "c.execute('UPDATE async_schema SET version = 99'); c.commit()",
               dbpath, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) == 127)
        skip(); /* no python3 to write the database with */
    assert_int_equal(WEXITSTATUS(status), 0);
    ef_error err = {0};
    q = NULL;
    assert_int_equal(ef_async_queue_open(dbpath, EF_ASYNC_OLDEST_FIRST, true, &q, &err), -EPROTO);
    assert_null(q);
    assert_non_null(strstr(err.msg, "newer"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy),
        cmocka_unit_test(test_duration),
        cmocka_unit_test_setup_teardown(test_enqueue_claim_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retries_then_dead_letter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusal_and_success, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_and_exhausted_at_claim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_per_function_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recovery_dead_letters_interrupted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recovery_retries_interrupted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_unsent_attempt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_letter_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_handles_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_checkpointed_by_other_handle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
