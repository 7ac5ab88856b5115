/* Asynchronous invocations (X-Amz-Invocation-Type: Event): intake and delivery.
 *
 * Intake (async_intake.c): an accepted event is answered 202 only once it is committed to the
 * queue with synchronous=FULL (fsync'ed). Commits run on libuv's thread pool, one at a time;
 * events that arrive meanwhile wait in memory and go into the next commit together (group
 * commit), so the loop never waits for an fsync and a burst costs one fsync per batch, not per
 * event. The same lane runs the periodic retention sweep.
 *
 * Delivery (async_worker.c): up to `concurrency` events at once, claimed oldest due first (or
 * one per function in acceptance order, see async_queue.h), each invoked through ef_invoke_start
 * exactly like a synchronous invocation, under the event's request id. The outcome is recorded
 * and retried by the policy of async_policy.h. docs/async.md describes it for users.
 *
 * Everything here runs on the loop thread except the lane's jobs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/http.h"
#include "controller/async_queue.h"

struct ef_controller;
struct ef_function;
struct ef_async;

/* Lambda's limit on an asynchronous invocation's event. */
#define EF_ASYNC_MAX_PAYLOAD 262144
/* The largest function result kept with an event; a larger one is recorded by size only. */
#define EF_ASYNC_MAX_RESULT 262144

/* Defaults of struct ef_async_config (a zero field takes its default). */
#define EF_ASYNC_DEFAULT_CONCURRENCY  4
#define EF_ASYNC_DEFAULT_MAX_ATTEMPTS 3              /* Lambda's: the first attempt and 2 retries */
#define EF_ASYNC_DEFAULT_RETRY_DELAY  (60 * 1000ULL) /* Lambda's 1 min, then 2 */
#define EF_ASYNC_DEFAULT_MAX_AGE      (6 * 3600 * 1000ULL)       /* Lambda's 6 h */
#define EF_ASYNC_DEFAULT_RETENTION    (24 * 3600 * 1000ULL)      /* succeeded events */
#define EF_ASYNC_DEFAULT_DL_RETENTION (14 * 24 * 3600 * 1000ULL) /* dead letters */
#define EF_ASYNC_DEFAULT_MAX_QUEUED   100000
#define EF_ASYNC_MAX_CONCURRENCY      1024
#define EF_ASYNC_MAX_REFUSALS         1000

struct ef_async_config {
    unsigned concurrency;              /* deliveries in flight at once, 1–1024 */
    unsigned max_attempts;             /* 1–3: 1 + --async-max-retries */
    uint64_t retry_delay_ms;           /* before the first retry after a function error */
    unsigned max_refusals;             /* retries after throttling; 0: until max_age_ms */
    uint64_t max_age_ms;               /* events older than this are dead-lettered */
    uint64_t retention_ms;             /* succeeded events are deleted this long after */
    uint64_t dead_letter_retention_ms; /* dead letters are deleted this long after */
    uint64_t max_queued;               /* unfinished events accepted at most; beyond: 429 */
    enum ef_async_ordering ordering;
    /* Events whose attempt a crash or a stop interrupted after it was sent: dead-lettered (the
     * default, zero) or retried (--async-interrupted). */
    enum ef_async_interrupted interrupted;
};

/* Counters for logs and metrics. */
struct ef_async_stats {
    int64_t backlog;        /* unfinished events: queued, waiting for a retry, or running */
    int64_t in_flight;      /* deliveries running now */
    int64_t dead_letters;   /* dead letters kept */
    uint64_t accepted;      /* events acknowledged with 202 since start */
    uint64_t succeeded;     /* since start */
    uint64_t dead_lettered; /* since start */
    uint64_t retries;       /* attempts scheduled after a function error, since start */
    uint64_t refusals;      /* attempts refused (throttled, 5xx) since start */
    uint64_t interrupted;   /* events found running at start (dead-lettered or requeued) */
};

/* Opens the queue in the database at `db_path` (two connections: one for the loop, one for the
 * thread pool) and dead-letters or requeues the events a previous run left running, as
 * `config->interrupted` says. No loop handle is created yet. `config` is copied, zero fields
 * taking their defaults. */
int ef_async_open(struct ef_controller *ctl, const char *db_path,
                  const struct ef_async_config *config, struct ef_async **ret_async, ef_error *err);

/* Starts delivering (timers on ctl->loop, the first claims). Call once, after ef_async_open. */
void ef_async_run(struct ef_async *a);

/* Stops for good: no new claims. A delivery in flight whose invocation was not sent yet
 * (waiting for a slot or a container) is given back to the queue, its attempt not counted, and
 * runs at the next start as if never tried; one that was sent is detached and stays `running`,
 * so that the next start treats it as interrupted (`interrupted`: a dead letter, or retried).
 * Events not yet committed are answered 503. A commit in progress completes (and is answered)
 * while the loop runs out. NULL is fine. */
void ef_async_stop(struct ef_async *a);

/* Closes the queue once the loop has finished (after uv_run returned). NULL is fine. */
void ef_async_free(struct ef_async *a);

/* Accepts an event for `fn` (not consumed): answers `ex` 202 with `request_id` once it is
 * committed, or 500 if the commit fails. Returns 0, or without answering: -ENOBUFS when the
 * backlog is full (the caller answers 429), -ESHUTDOWN when stopping, -ENOMEM. */
int ef_async_submit(struct ef_async *a, ef_http_exchange *ex, const char *request_id,
                    const struct ef_function *fn, const char *payload, size_t payload_len,
                    ef_error *err);

/* The queue handle of the loop thread, for lookups by the API. */
ef_async_queue *ef_async_reader(struct ef_async *a);

/* The settings in effect (defaults applied). */
const struct ef_async_config *ef_async_settings(const struct ef_async *a);

/* Current counters. */
void ef_async_get_stats(const struct ef_async *a, struct ef_async_stats *ret_stats);
