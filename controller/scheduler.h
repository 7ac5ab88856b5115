/* Admission of invocations: per-function reserved concurrency, the node-wide concurrency limit,
 * and bounded per-function wait queues (docs/scheduler.md).
 *
 * An invocation holds a "slot" from the moment it may run until it completes (its cold start
 * included). It gets one at once when its function is below its reserved concurrency (if any),
 * the node is below --max-concurrency and nobody of its function is waiting; otherwise it waits
 * in its function's FIFO queue (at most --queue-depth entries, at most --queue-wait long). An
 * invocation that had a slot but found no container and no memory to start one gives its slot
 * back and waits at the head of the queue for capacity. Only a full queue or an expired wait
 * throttles (429).
 *
 * Queues are served from one deferred timer, never from inside the callback that freed a slot,
 * so completions never recurse into new invocations. All of it runs on the loop thread. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

struct ef_controller;
struct ef_scheduler;
struct ef_sched_fn;

/* The scheduler's settings (main.c's flags). */
struct ef_sched_config {
    unsigned queue_depth;        /* per function; 0: no queueing, throttle at once */
    unsigned queue_wait_ms;      /* longest wait in a queue */
    unsigned max_concurrency;    /* node-wide invocations in flight */
    unsigned idle_timeout_ms;    /* idle warm containers older than this are cooled down */
    unsigned health_interval_ms; /* between health checks of idle runners and funclet's list */
    bool cooldown_reset; /* cool down with container.reset into funclet's pool, not destroy */
};

#define EF_SCHED_DEFAULT_QUEUE_DEPTH        100
#define EF_SCHED_DEFAULT_QUEUE_WAIT_MS      10000
#define EF_SCHED_DEFAULT_MAX_CONCURRENCY    1000
#define EF_SCHED_DEFAULT_IDLE_TIMEOUT_MS    60000
#define EF_SCHED_DEFAULT_HEALTH_INTERVAL_MS 10000
/* Upper bounds of the flags, so that a typo cannot make a queue hold a million requests. */
#define EF_SCHED_MAX_QUEUE_DEPTH     100000
#define EF_SCHED_MAX_QUEUE_WAIT_MS   900000
#define EF_SCHED_MAX_CONCURRENCY     100000
#define EF_SCHED_MAX_IDLE_TIMEOUT_MS 86400000

/* Lambda's reasons for a 429 TooManyRequestsException. */
#define EF_REASON_RESERVED "ReservedFunctionConcurrentInvocationLimitExceeded"
#define EF_REASON_NODE     "ConcurrentInvocationLimitExceeded"
/* Beyond Lambda's list: an Event refused because the node's async backlog is full
 * (--async-max-queued, or too many bytes waiting for their commit). */
#define EF_REASON_ASYNC_QUEUE "AsyncQueueLimitExceeded"

/* Fills `cfg` with the defaults above. */
void ef_sched_config_defaults(struct ef_sched_config *cfg);

/* Fills `cfg` from the controller's flags: --queue-depth, --max-concurrency (already
 * range-checked integers), --queue-wait, --idle-timeout, --health-interval (durations as
 * duration.h reads them) and --cooldown ("destroy" or "reset"). -EINVAL with `err` naming the
 * flag when one is out of range. */
int ef_sched_config_parse(struct ef_sched_config *cfg, int64_t queue_depth, int64_t max_concurrency,
                          const char *queue_wait, const char *idle_timeout,
                          const char *health_interval, const char *cooldown, ef_error *err);

/* One invocation's place in the scheduler, embedded in the invocation (invoke.c). The caller
 * sets `key`, `run` and `rejected` before ef_sched_admit(); the rest is the scheduler's. */
struct ef_sched_ticket {
    struct ef_sched_ticket *prev, *next; /* in its function's queue */
    struct ef_sched_fn *fn;              /* set by ef_sched_admit() */
    const char *key;                     /* the function identity (pool.h), owned by the caller */
    uint64_t seq;                        /* admission order: a queue is sorted by it */
    uint64_t deadline_ms;                /* loop time after which a wait throttles */
    bool queued;                         /* waiting in the queue */
    bool holds_slot;                     /* admitted and not yet released */
    bool wants_capacity;                 /* waiting because no container could be obtained */
    /* Called from the scheduler's timer when a queued ticket gets its slot: place it now. */
    void (*run)(struct ef_sched_ticket *t);
    /* Called from the scheduler's timer (or ef_sched_close) when a queued ticket gives up:
     * `status` 429 with `reason` (EF_REASON_*), or 503 while stopping (reason NULL). The ticket
     * is out of the scheduler; the caller completes and frees its invocation. */
    void (*rejected)(struct ef_sched_ticket *t, int status, const char *reason,
                     const char *message);
};

/* Creates the scheduler of `ctl` (its timer on ctl->loop). Returns 0 or -ENOMEM. */
int ef_sched_new(struct ef_controller *ctl, const struct ef_sched_config *cfg,
                 struct ef_scheduler **ret_sched, ef_error *err);

/* The settings in force. */
const struct ef_sched_config *ef_sched_config(const struct ef_scheduler *s);

/* Admits an invocation of `function` (its reserved concurrency: `has_reserved`, `reserved`).
 * Returns 0 when it holds a slot and the caller places it now; 1 when it is queued (`run` or
 * `rejected` follows later); or, with `err` set, -EDQUOT (reserved concurrency reached and the
 * queue full, or a reserved concurrency of 0: 429 EF_REASON_RESERVED), -EAGAIN (node-wide limit
 * and the queue full: 429 EF_REASON_NODE), -ESHUTDOWN (stopping) or -ENOMEM. */
int ef_sched_admit(struct ef_scheduler *s, struct ef_sched_ticket *t, const char *function,
                   bool has_reserved, int64_t reserved, ef_error *err);

/* The admitted invocation found no container and no capacity for a new one: it gives its slot
 * back and waits at the head of its function's queue until capacity may have been freed
 * (ef_sched_capacity_changed) or its deadline passes. Returns 0, or -EAGAIN with `err` set when
 * queueing is off (--queue-depth 0) or its deadline has passed: the caller throttles it
 * (429 EF_REASON_NODE); -ESHUTDOWN when the controller is stopping (503). */
int ef_sched_wait_capacity(struct ef_scheduler *s, struct ef_sched_ticket *t, ef_error *err);

/* The invocation is over (or its client went away while it was queued): frees its slot or
 * takes it out of its queue. Harmless on a ticket that holds nothing. */
void ef_sched_release(struct ef_scheduler *s, struct ef_sched_ticket *t);

/* Something may have freed capacity (a container went idle, was destroyed or reset): tickets
 * waiting for capacity are retried, from the timer. */
void ef_sched_capacity_changed(struct ef_scheduler *s);

/* Whether some ticket is waiting for capacity. */
bool ef_sched_capacity_wanted(const struct ef_scheduler *s);

/* Invocations holding a slot, node-wide. */
unsigned ef_sched_in_flight(const struct ef_scheduler *s);

/* Calls `cb` for every function with an invocation in flight or queued. */
void ef_sched_for_each_function(const struct ef_scheduler *s,
                                void (*cb)(const char *function, unsigned in_flight,
                                           unsigned queued, void *user),
                                void *user);

/* Rejects every queued ticket with 503 and closes the timer; the scheduler admits nothing
 * afterwards (-ESHUTDOWN). Part of the controller's stop. */
void ef_sched_close(struct ef_scheduler *s);

/* Frees the scheduler (closing it first if needed; then its memory goes when the loop has closed
 * its timer). NULL is fine. */
void ef_sched_free(struct ef_scheduler *s);
