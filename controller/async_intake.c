/* Intake of asynchronous events: group commit on the thread pool, and the retention sweep, both
 * on one lane (one job at a time, with the lane's own connection). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "controller/async_internal.h"
#include "controller/controller.h"
#include "controller/lambda_errors.h"
#include "controller/metrics.h"
#include "controller/store.h"

/* One commit takes at most this many events or bytes of payload: a batch is one transaction,
 * and the loop's own writes (claims, outcomes) wait for the lock while it is written and
 * fsync'ed, so it is kept to a few milliseconds. */
#define BATCH_MAX_EVENTS 256
#define BATCH_MAX_BYTES  (2u * 1024 * 1024)
/* Payload bytes held in memory waiting for a commit; beyond this, events are refused (429)
 * rather than letting a burst grow the process without bound. */
#define PENDING_MAX_BYTES (64u * 1024 * 1024)
/* A sweep deletes in transactions of this many rows, at most this many transactions per run,
 * so that it never holds the write lock for long. */
#define SWEEP_CHUNK      1000
#define SWEEP_MAX_CHUNKS 100

static void item_free(struct intake_item *it)
{
    free(it->function_name);
    free(it->qualifier);
    free(it->payload);
    free(it);
}

static void on_item_abort(ef_http_exchange *ex, void *user)
{
    (void)ex;
    struct intake_item *it = user;
    /* The event is still committed (or was already): only the answer has nowhere to go. */
    it->ex = NULL;
}

int ef_async_submit(struct ef_async *a, ef_http_exchange *ex, const char *request_id,
                    const struct ef_function *fn, const char *payload, size_t payload_len,
                    ef_error *err)
{
    if (a->stopping)
        return ef_error_set(err, -ESHUTDOWN, "the controller is stopping");
    int64_t waiting = a->stats.backlog + (int64_t)a->pending_n + (int64_t)a->committing_n;
    if ((uint64_t)waiting >= a->cfg.max_queued)
        return ef_error_set(err, -ENOBUFS,
                            "the async queue holds %lld unfinished events, as many as "
                            "--async-max-queued allows; try again later",
                            (long long)waiting);
    if (a->pending_bytes + payload_len > PENDING_MAX_BYTES)
        return ef_error_set(err, -ENOBUFS,
                            "events arrive faster than they can be stored; try again later");

    struct intake_item *it = calloc(1, sizeof(*it));
    if (!it)
        return ef_error_set(err, -ENOMEM, "out of memory");
    it->a = a;
    it->ex = ex;
    snprintf(it->request_id, sizeof(it->request_id), "%s", request_id);
    it->function_name = strdup(fn->name);
    it->qualifier = strdup(ef_function_version(fn));
    it->payload = malloc(payload_len + 1);
    if (!it->function_name || !it->qualifier || !it->payload) {
        item_free(it);
        return ef_error_set(err, -ENOMEM, "out of memory");
    }
    memcpy(it->payload, payload, payload_len);
    it->payload[payload_len] = '\0';
    it->payload_len = payload_len;
    it->created_ms = ef_async_now_ms();

    *a->pending_tail = it;
    a->pending_tail = &it->next;
    a->pending_n++;
    a->pending_bytes += payload_len;
    ef_http_exchange_on_abort(ex, on_item_abort, it);
    ef_async_lane_kick(a);
    return 0;
}

static void commit_work(uv_work_t *w)
{
    struct lane_job *job = w->data;
    struct ef_async_new_event *events = calloc(job->n_items, sizeof(*events));
    if (!events) {
        job->r = ef_error_set(&job->err, -ENOMEM, "out of memory");
        return;
    }
    size_t i = 0;
    for (struct intake_item *it = job->items; it; it = it->next, i++)
        events[i] = (struct ef_async_new_event){
            .request_id = it->request_id,
            .function_name = it->function_name,
            .qualifier = it->qualifier,
            .payload = it->payload,
            .payload_len = it->payload_len,
            .created_ms = it->created_ms,
        };
    job->r = ef_async_queue_enqueue(job->a->lane_q, events, job->n_items, &job->err);
    free(events);
}

static void upkeep_work(uv_work_t *w)
{
    struct lane_job *job = w->data;
    struct ef_async *a = job->a;
    if (job->checkpoint)
        job->checkpoint_r = ef_async_queue_checkpoint(a->lane_q, &job->checkpoint_err);
    if (!job->sweep)
        return;
    int64_t ok_before = job->now_ms - (int64_t)a->cfg.retention_ms;
    int64_t dead_before = job->now_ms - (int64_t)a->cfg.dead_letter_retention_ms;
    for (int i = 0; i < SWEEP_MAX_CHUNKS; i++) {
        size_t ok = 0, dead = 0;
        job->r = ef_async_queue_sweep(a->lane_q, ok_before, dead_before, SWEEP_CHUNK, &ok, &dead,
                                      &job->err);
        if (job->r < 0)
            return;
        job->swept_succeeded += ok;
        job->swept_dead += dead;
        if (ok + dead < SWEEP_CHUNK)
            return;
    }
}

static void commit_done(struct ef_async *a, struct lane_job *job)
{
    a->committing_n = 0;
    if (job->r < 0)
        ef_error("cannot store %zu async event(s): %s", job->n_items, job->err.msg);
    struct intake_item *it = job->items;
    while (it) {
        struct intake_item *next = it->next;
        if (job->r == 0) {
            a->stats.accepted++;
            a->stats.backlog++;
            ef_metrics_async_event(a->ctl->metrics, EF_ASYNC_ACCEPTED);
            ef_debug("accepted event %s for %s:%s (%zu bytes)", it->request_id, it->function_name,
                     it->qualifier, it->payload_len);
        }
        if (it->ex && job->r == 0) {
            /* The version is resolved at acceptance: the event runs that one. */
            struct ef_http_header headers[] = {{"x-amzn-RequestId", it->request_id},
                                               {"X-Amz-Executed-Version", it->qualifier}};
            ef_http_respond(it->ex, 202, headers, 2, NULL, "", 0);
        } else if (it->ex) {
            ef_lambda_error(it->ex, it->request_id, 500, "ServiceException",
                            "the event could not be stored: %s", job->err.msg);
        }
        item_free(it);
        it = next;
    }
    if (job->r == 0)
        ef_async_publish(a);
}

static void lane_after(uv_work_t *w, int status)
{
    struct lane_job *job = w->data;
    struct ef_async *a = job->a;
    a->job = NULL;
    if (status < 0 && job->r == 0)
        job->r = ef_error_set(&job->err, status, "the job did not run: %s", uv_strerror(status));
    bool committed = false;
    if (job->sweep || job->checkpoint) {
        if (job->checkpoint_r < 0)
            ef_warn("the async queue's checkpoint failed: %s", job->checkpoint_err.msg);
        if (job->r < 0)
            ef_warn("the async retention sweep failed: %s", job->err.msg);
        a->stats.dead_letters -= (int64_t)job->swept_dead;
        ef_async_publish(a);
        if (job->swept_succeeded || job->swept_dead)
            ef_info("retention sweep deleted %zu succeeded event(s) and %zu dead letter(s)",
                    job->swept_succeeded, job->swept_dead);
    } else {
        committed = job->r == 0;
        commit_done(a, job);
    }
    free(job);
    ef_async_lane_kick(a);
    if (committed)
        ef_async_pump(a);
}

void ef_async_lane_kick(struct ef_async *a)
{
    if (a->job || (!a->pending && ((!a->sweep_wanted && !a->checkpoint_wanted) || a->stopping)))
        return;
    struct lane_job *job = calloc(1, sizeof(*job));
    if (!job) {
        ef_error("out of memory starting an async queue job; retrying at the next event");
        return;
    }
    job->a = a;
    job->work.data = job;
    uv_work_cb work;
    if (a->pending) {
        /* Take the oldest events, up to a batch. */
        size_t bytes = 0;
        struct intake_item **tail = &job->items;
        while (a->pending && job->n_items < BATCH_MAX_EVENTS &&
               (job->n_items == 0 || bytes + a->pending->payload_len <= BATCH_MAX_BYTES)) {
            struct intake_item *it = a->pending;
            a->pending = it->next;
            it->next = NULL;
            *tail = it;
            tail = &it->next;
            bytes += it->payload_len;
            job->n_items++;
        }
        if (!a->pending)
            a->pending_tail = &a->pending;
        a->pending_n -= job->n_items;
        a->pending_bytes -= bytes;
        a->committing_n = job->n_items;
        work = commit_work;
    } else {
        job->sweep = a->sweep_wanted;
        job->checkpoint = a->checkpoint_wanted;
        a->sweep_wanted = a->checkpoint_wanted = false;
        job->now_ms = ef_async_now_ms();
        work = upkeep_work;
    }
    a->job = job;
    int r = uv_queue_work(a->ctl->loop, &job->work, work, lane_after);
    if (r < 0) {
        /* Cannot happen with a valid loop; answer rather than leave clients hanging. */
        job->r = ef_error_set(&job->err, r, "cannot start the job: %s", uv_strerror(r));
        a->job = NULL;
        if (!job->sweep && !job->checkpoint)
            commit_done(a, job);
        free(job);
    }
}

void ef_async_intake_drain(struct ef_async *a)
{
    struct intake_item *it = a->pending;
    a->pending = NULL;
    a->pending_tail = &a->pending;
    a->pending_n = 0;
    a->pending_bytes = 0;
    while (it) {
        struct intake_item *next = it->next;
        if (it->ex)
            ef_lambda_error(it->ex, it->request_id, 503, "ServiceException",
                            "the controller is stopping; the event was not accepted");
        item_free(it);
        it = next;
    }
}
