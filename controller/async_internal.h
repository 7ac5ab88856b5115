/* What async_intake.c and async_worker.c share: struct ef_async. Not for other modules. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "controller/async_policy.h"
#include "controller/async_queue.h"
#include "controller/async_worker.h"
#include "controller/request_id.h"

/* An event waiting for its commit. */
struct intake_item {
    struct intake_item *next;
    struct ef_async *a;
    ef_http_exchange *ex; /* NULL once the client went away */
    char request_id[EF_REQUEST_ID_LEN + 1];
    char *function_name;
    char *qualifier;
    char *payload;
    size_t payload_len;
    int64_t created_ms;
};

/* The lane's current job, run on the thread pool with the lane's own queue handle. */
struct lane_job {
    uv_work_t work;
    struct ef_async *a;
    bool sweep;       /* a retention sweep, else a commit of `items` */
    bool checkpoint;  /* with or without a sweep: a checkpoint of the WAL */
    int checkpoint_r; /* its result, reported apart from the sweep's */
    ef_error checkpoint_err;
    struct intake_item *items; /* the batch (commit) */
    size_t n_items;
    int64_t now_ms;         /* sweep: the time the cut-offs are computed from */
    size_t swept_succeeded; /* sweep results */
    size_t swept_dead;
    int r;
    ef_error err;
};

struct delivery;
struct held_outcome;

struct ef_async {
    struct ef_controller *ctl;
    struct ef_async_config cfg;
    struct ef_async_policy policy;
    ef_async_queue *q;      /* loop thread only */
    ef_async_queue *lane_q; /* the lane's job only (one at a time, on the thread pool) */

    /* Intake: events not yet in a commit, oldest first. */
    struct intake_item *pending, **pending_tail;
    size_t pending_n, pending_bytes;
    size_t committing_n;  /* events in the commit running now */
    struct lane_job *job; /* the job running on the thread pool; NULL when the lane is idle */
    bool sweep_wanted;
    bool checkpoint_wanted; /* the loop's commits have grown the WAL (async_worker.c) */

    /* Delivery. */
    struct delivery *deliveries; /* in flight */
    unsigned in_flight;
    bool pumping, pump_again;
    uv_timer_t due_timer;   /* the next event falls due */
    uv_timer_t sweep_timer; /* periodic retention sweep */
    /* Outcomes the queue could not record yet, each holding its delivery slot (async_worker.c),
     * and the timer that records them again. */
    struct held_outcome *held;
    uv_timer_t held_timer;
    bool running; /* ef_async_run was called: the timers exist */
    bool stopping;

    struct ef_async_stats stats;
};

/* async_intake.c: starts the lane's next job when it is idle (a commit first, then a sweep or a
 * checkpoint). */
void ef_async_lane_kick(struct ef_async *a);

/* async_intake.c: answers and frees every event still waiting for a commit (stop). */
void ef_async_intake_drain(struct ef_async *a);

/* async_worker.c: claims and starts deliveries while there is room, then arms the due timer. */
void ef_async_pump(struct ef_async *a);

/* async_worker.c: hands the backlog and dead-letter gauges to the metrics (metrics.h). */
void ef_async_publish(struct ef_async *a);

/* Epoch milliseconds, as stored in the queue. */
int64_t ef_async_now_ms(void);
