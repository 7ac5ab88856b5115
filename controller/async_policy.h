/* The retry policy of asynchronous invocations, as Lambda documents it, kept apart from the
 * queue and the event loop so that it is tested on plain numbers.
 *
 * A failure is one of two kinds:
 *   - a function error (the handler raised, timed out or its runtime exited): the attempt counts,
 *     and after `max_attempts` attempts (1 + --async-max-retries) the event is dead-lettered
 *     (condition RetriesExhausted). Retry k waits retry_delay_ms × 2^(k-1): with Lambda's 60 s,
 *     one minute and then two.
 *   - a refusal (throttling, 429; a service error, 5xx; the function never ran): the attempt does
 *     not count, and the event is tried again with a backoff of 1 s doubling up to 5 min, for as
 *     long as its maximum age allows (Lambda's policy) — or, with `max_refusals` set
 *     (--async-max-throttle-retries), only that many times, after which it is dead-lettered
 *     (condition RetriesExhausted).
 * Either way, an event whose next attempt would start after created + max_age_ms is
 * dead-lettered now (condition EventAgeExceeded) rather than left to wait for nothing. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* A refused attempt is retried after 1 s, then 2 s, 4 s, … up to this. */
#define EF_ASYNC_THROTTLE_BACKOFF_MIN_MS 1000
#define EF_ASYNC_THROTTLE_BACKOFF_MAX_MS (5 * 60 * 1000)

/* Dead-letter conditions, named as in Lambda's destination records (the last two are this
 * pod's). */
#define EF_ASYNC_RETRIES_EXHAUSTED  "RetriesExhausted"
#define EF_ASYNC_EVENT_AGE_EXCEEDED "EventAgeExceeded"
#define EF_ASYNC_FUNCTION_NOT_FOUND "FunctionNotFound"
/* The controller stopped during an attempt, which may or may not have reached the function
 * (--async-interrupted dead-letter). */
#define EF_ASYNC_INTERRUPTED "Interrupted"
/* The ErrorType of an interrupted attempt. */
#define EF_ASYNC_INTERRUPTED_ERROR "Controller.Interrupted"

struct ef_async_policy {
    int64_t max_attempts;   /* 1–3: the first attempt and up to two retries */
    int64_t retry_delay_ms; /* delay before the first retry after a function error */
    int64_t max_age_ms;     /* an event older than this is never attempted again */
    int64_t max_refusals;   /* retries after refusals; 0: no limit but the age (Lambda's) */
};

enum ef_async_failure {
    EF_ASYNC_FUNCTION_ERROR, /* the attempt reached the function: it counts */
    EF_ASYNC_REFUSED,        /* 429 or 5xx before the function ran: it does not count */
};

/* What to do with an event after a failed attempt. */
struct ef_async_step {
    bool dead_letter;
    const char *condition;   /* when dead_letter: one of the EF_ASYNC_* conditions above */
    int64_t next_attempt_ms; /* otherwise: when to try again (epoch ms) */
};

/* Decides the next step after a failure at `now_ms` of an event accepted at `created_ms` that has
 * made `attempts` counted attempts (this one included when it counts) and been refused
 * `refusals` times (this one included when it was a refusal). */
void ef_async_policy_after_failure(const struct ef_async_policy *p, enum ef_async_failure kind,
                                   int64_t attempts, int64_t refusals, int64_t created_ms,
                                   int64_t now_ms, struct ef_async_step *ret_step);

/* True when an event accepted at `created_ms` is too old to be attempted at `now_ms`. */
bool ef_async_policy_expired(const struct ef_async_policy *p, int64_t created_ms, int64_t now_ms);
