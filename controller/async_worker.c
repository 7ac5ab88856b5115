/* Delivery of asynchronous events: claims, invocations through ef_invoke_start, outcomes and
 * retries; and the service's start and stop. */
#include "controller/async_worker.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "controller/async_internal.h"
#include "controller/controller.h"
#include "controller/function_config.h"
#include "controller/invoke.h"
#include "controller/metrics.h"
#include "controller/store.h"
#include "rapi/log_capture.h"

/* After the queue itself failed (a disk error), claims are tried again this much later. */
#define QUEUE_ERROR_RETRY_MS 1000
/* An outcome the queue could not record is recorded again this much later, for at most this
 * many tries (10 min); then it is left to the next start, which handles it as interrupted. */
#define HELD_RETRY_MS  1000
#define HELD_MAX_TRIES 600
/* A pump claims at most this many events before it lets the loop serve others: events refused
 * at once (reserved concurrency 0, a full function queue) take no delivery slot, and a large
 * backlog of them would otherwise be claimed in one go. */
#define PUMP_BATCH 64
/* When the loop's own commits (claims and outcomes) have left this many pages in the WAL, the
 * lane checkpoints it: what SQLite's autocheckpoint does, off the loop. */
#define CHECKPOINT_PAGES 1000
/* The retention sweep runs every retention / 4, within these bounds. */
#define SWEEP_INTERVAL_MIN_MS 1000
#define SWEEP_INTERVAL_MAX_MS (60 * 1000)

struct delivery {
    struct delivery *prev, *next;
    struct ef_async *a;
    struct ef_async_event *ev;
    struct ef_invocation *inv;
};

/* An outcome the queue could not record (a disk error, or its write lock held past the busy
 * timeout): kept in memory with copies of what it says, holding its delivery slot, and recorded
 * again every HELD_RETRY_MS until it is, so that neither the result nor the event's place in its
 * function's order is lost. */
struct held_outcome {
    struct held_outcome *next;
    unsigned tries;
    struct ef_async_event *ev; /* seq, request_id, function_name, attempts */
    struct ef_async_outcome o;
    char *error_type, *error_message, *result; /* o's strings */
};

static bool record_held(struct ef_async *a);
static void free_held(struct ef_async *a);

int64_t ef_async_now_ms(void)
{
    return (int64_t)ef_now_epoch_ms();
}

static void apply_defaults(struct ef_async_config *c)
{
    if (c->concurrency == 0)
        c->concurrency = EF_ASYNC_DEFAULT_CONCURRENCY;
    if (c->concurrency > EF_ASYNC_MAX_CONCURRENCY)
        c->concurrency = EF_ASYNC_MAX_CONCURRENCY;
    if (c->max_attempts == 0)
        c->max_attempts = EF_ASYNC_DEFAULT_MAX_ATTEMPTS;
    if (c->max_attempts > EF_ASYNC_DEFAULT_MAX_ATTEMPTS)
        c->max_attempts = EF_ASYNC_DEFAULT_MAX_ATTEMPTS;
    if (c->retry_delay_ms == 0)
        c->retry_delay_ms = EF_ASYNC_DEFAULT_RETRY_DELAY;
    if (c->max_age_ms == 0)
        c->max_age_ms = EF_ASYNC_DEFAULT_MAX_AGE;
    if (c->retention_ms == 0)
        c->retention_ms = EF_ASYNC_DEFAULT_RETENTION;
    if (c->dead_letter_retention_ms == 0)
        c->dead_letter_retention_ms = EF_ASYNC_DEFAULT_DL_RETENTION;
    if (c->max_queued == 0)
        c->max_queued = EF_ASYNC_DEFAULT_MAX_QUEUED;
}

int ef_async_open(struct ef_controller *ctl, const char *db_path,
                  const struct ef_async_config *config, struct ef_async **ret_async, ef_error *err)
{
    struct ef_async *a = calloc(1, sizeof(*a));
    if (!a)
        return ef_error_set(err, -ENOMEM, "out of memory");
    a->ctl = ctl;
    a->cfg = *config;
    apply_defaults(&a->cfg);
    a->policy = (struct ef_async_policy){
        .max_attempts = a->cfg.max_attempts,
        .retry_delay_ms = (int64_t)a->cfg.retry_delay_ms,
        .max_age_ms = (int64_t)a->cfg.max_age_ms,
        .max_refusals = a->cfg.max_refusals,
    };
    a->pending_tail = &a->pending;

    int64_t interrupted = 0, counts[5] = {0};
    int r = ef_async_queue_open(db_path, a->cfg.ordering, false, &a->q, err);
    if (r == 0)
        r = ef_async_queue_open(db_path, a->cfg.ordering, true, &a->lane_q, err);
    if (r == 0)
        r = ef_async_queue_recover(a->q, ef_async_now_ms(), a->cfg.interrupted, &interrupted, err);
    if (r == 0)
        r = ef_async_queue_counts(a->q, counts, err);
    if (r < 0) {
        ef_async_free(a);
        return r;
    }
    a->stats.backlog = counts[EF_EVENT_QUEUED] + counts[EF_EVENT_RUNNING] + counts[EF_EVENT_FAILED];
    a->stats.dead_letters = counts[EF_EVENT_DEAD_LETTERED];
    a->stats.interrupted = (uint64_t)interrupted;
    if (interrupted > 0 && a->cfg.interrupted == EF_ASYNC_INTERRUPTED_RETRY)
        ef_warn("%lld async event(s) were running when the controller last stopped; they are "
                "delivered again (their interrupted attempt counts; --async-interrupted retry)",
                (long long)interrupted);
    else if (interrupted > 0)
        ef_warn("%lld async event(s) were running when the controller last stopped and may or "
                "may not have run; they are dead letters now (condition %s; "
                "--async-interrupted dead-letter)",
                (long long)interrupted, EF_ASYNC_INTERRUPTED);
    if (a->cfg.interrupted == EF_ASYNC_INTERRUPTED_DEAD_LETTER)
        a->stats.dead_lettered = (uint64_t)interrupted;
    if (a->stats.backlog > 0)
        ef_info("async queue: %lld unfinished event(s) to deliver", (long long)a->stats.backlog);
    *ret_async = a;
    return 0;
}

void ef_async_publish(struct ef_async *a)
{
    ef_metrics_set_async_backlog(a->ctl->metrics, (uint64_t)a->stats.backlog);
    ef_metrics_set_async_dead_letters(a->ctl->metrics, (uint64_t)a->stats.dead_letters);
}

static void on_held_timer(uv_timer_t *t);

static void on_due_timer(uv_timer_t *t)
{
    ef_async_pump(t->data);
}

static void on_sweep_timer(uv_timer_t *t)
{
    struct ef_async *a = t->data;
    a->sweep_wanted = true;
    ef_async_lane_kick(a);
}

void ef_async_run(struct ef_async *a)
{
    uv_timer_init(a->ctl->loop, &a->due_timer);
    a->due_timer.data = a;
    uv_timer_init(a->ctl->loop, &a->sweep_timer);
    a->sweep_timer.data = a;
    uv_timer_init(a->ctl->loop, &a->held_timer);
    a->held_timer.data = a;
    a->running = true;
    uint64_t every = a->cfg.retention_ms / 4;
    if (a->cfg.dead_letter_retention_ms / 4 < every)
        every = a->cfg.dead_letter_retention_ms / 4;
    if (every < SWEEP_INTERVAL_MIN_MS)
        every = SWEEP_INTERVAL_MIN_MS;
    if (every > SWEEP_INTERVAL_MAX_MS)
        every = SWEEP_INTERVAL_MAX_MS;
    /* The first sweep at start removes what expired while the controller was down. */
    uv_timer_start(&a->sweep_timer, on_sweep_timer, 0, every);
    /* The interrupted events dead-lettered by ef_async_open became dead letters in this run;
     * the metrics did not exist yet then. */
    for (uint64_t i = 0; i < a->stats.dead_lettered; i++)
        ef_metrics_async_event(a->ctl->metrics, EF_ASYNC_DEAD_LETTERED);
    ef_async_publish(a);
    ef_async_pump(a);
}

static void unlink_delivery(struct ef_async *a, struct delivery *d)
{
    if (d->prev)
        d->prev->next = d->next;
    else
        a->deliveries = d->next;
    if (d->next)
        d->next->prev = d->prev;
    a->in_flight--;
    a->stats.in_flight = a->in_flight;
}

static void delivery_free(struct delivery *d)
{
    ef_async_event_free(d->ev);
    free(d);
}

void ef_async_stop(struct ef_async *a)
{
    if (!a || a->stopping)
        return;
    a->stopping = true;
    if (a->running) {
        uv_close((uv_handle_t *)&a->due_timer, NULL);
        uv_close((uv_handle_t *)&a->sweep_timer, NULL);
        uv_close((uv_handle_t *)&a->held_timer, NULL);
    }
    /* Outcomes not recorded yet get a last try; what still fails stays `running` for the next
     * start, which handles it as interrupted. */
    if (a->held && !record_held(a)) {
        for (struct held_outcome *h = a->held; h; h = h->next)
            ef_warn("stopping without the outcome of event %s recorded; the next start handles "
                    "it as interrupted",
                    h->ev->request_id);
        free_held(a);
    }
    /* The containers are about to be destroyed, which would fail these invocations as if the
     * function had failed. One whose invocation was not sent yet (waiting for a concurrency
     * slot or a container; the controller sends nothing once it is stopping) cannot have run:
     * its attempt is given back and it runs at the next start as if never tried. One that was
     * sent is cut off at an unknown point: it stays `running`, and the next start handles it
     * as interrupted (--async-interrupted), exactly as after a crash. */
    unsigned released = 0, interrupted = 0;
    int64_t now = ef_async_now_ms();
    while (a->deliveries) {
        struct delivery *d = a->deliveries;
        unlink_delivery(a, d);
        bool sent = ef_invoke_sent(d->inv);
        ef_invoke_detach(d->inv);
        ef_error err = {0};
        if (!sent && ef_async_queue_release(a->q, d->ev->seq, now, &err) == 0) {
            released++;
        } else {
            if (!sent)
                ef_error("cannot give back the attempt of event %s: %s; the next start handles "
                         "it as interrupted",
                         d->ev->request_id, err.msg);
            interrupted++;
        }
        delivery_free(d);
    }
    if (released)
        ef_info("stopping: %u async delivery(ies) not yet sent to the function are queued again",
                released);
    if (interrupted)
        ef_warn("stopping with %u async delivery(ies) sent to the function and not finished; "
                "the next start handles them as interrupted (by its --async-interrupted)",
                interrupted);
    ef_async_intake_drain(a);
}

void ef_async_free(struct ef_async *a)
{
    if (!a)
        return;
    free_held(a);
    ef_async_intake_drain(a);
    ef_async_queue_close(a->q);
    ef_async_queue_close(a->lane_q);
    free(a);
}

ef_async_queue *ef_async_reader(struct ef_async *a)
{
    return a->q;
}

const struct ef_async_config *ef_async_settings(const struct ef_async *a)
{
    return &a->cfg;
}

void ef_async_get_stats(const struct ef_async *a, struct ef_async_stats *ret_stats)
{
    *ret_stats = a->stats;
}

/* Asks the lane for a checkpoint when the loop's commits have grown the WAL. */
static void checkpoint_if_grown(struct ef_async *a)
{
    if (!a->checkpoint_wanted && ef_async_queue_wal_pages(a->q) >= CHECKPOINT_PAGES) {
        a->checkpoint_wanted = true;
        ef_async_lane_kick(a);
    }
}

/* Counts and logs an outcome the queue has recorded. */
static void account(struct ef_async *a, const struct ef_async_event *ev,
                    const struct ef_async_outcome *o)
{
    switch (o->status) {
    case EF_EVENT_SUCCEEDED:
        a->stats.backlog--;
        a->stats.succeeded++;
        ef_metrics_async_event(a->ctl->metrics, EF_ASYNC_DELIVERED);
        ef_debug("event %s of %s succeeded (attempt %lld)", ev->request_id, ev->function_name,
                 (long long)ev->attempts);
        break;
    case EF_EVENT_DEAD_LETTERED:
        a->stats.backlog--;
        a->stats.dead_letters++;
        a->stats.dead_lettered++;
        if (!o->refused)
            ef_metrics_async_event(a->ctl->metrics, EF_ASYNC_DELIVERED);
        ef_metrics_async_event(a->ctl->metrics, EF_ASYNC_DEAD_LETTERED);
        ef_warn("event %s of %s dead-lettered (%s) after %lld attempt(s): %s: %s", ev->request_id,
                ev->function_name, o->condition,
                (long long)(o->refused ? ev->attempts - 1 : ev->attempts),
                o->error_type ? o->error_type : "-", o->error_message ? o->error_message : "");
        break;
    case EF_EVENT_FAILED:
        a->stats.retries++;
        ef_metrics_async_event(a->ctl->metrics, EF_ASYNC_DELIVERED);
        ef_metrics_async_event(a->ctl->metrics, EF_ASYNC_RETRIED);
        ef_info("event %s of %s failed attempt %lld (%s); retrying in %lld ms", ev->request_id,
                ev->function_name, (long long)ev->attempts, o->error_type,
                (long long)(o->next_attempt_ms - ef_async_now_ms()));
        break;
    default:
        a->stats.refusals++;
        ef_metrics_async_event(a->ctl->metrics, EF_ASYNC_RETRIED);
        ef_info("event %s of %s was refused (%s: %s); retrying in %lld ms", ev->request_id,
                ev->function_name, o->error_type, o->error_message ? o->error_message : "",
                (long long)(o->next_attempt_ms - ef_async_now_ms()));
        break;
    }
    ef_async_publish(a);
}

static void held_free(struct held_outcome *h)
{
    ef_async_event_free(h->ev);
    free(h->error_type);
    free(h->error_message);
    free(h->result);
    free(h);
}

static void drop_held(struct ef_async *a, struct held_outcome **link);

static void free_held(struct ef_async *a)
{
    while (a->held)
        drop_held(a, &a->held);
}

static char *dup_or_null(const char *s, bool *ok)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *ok = false;
    return d;
}

/* Keeps outcome `o` of event `ev` to record later (see struct held_outcome); false when memory
 * ran out, which leaves the event `running` for the next start to handle as interrupted. */
static bool hold(struct ef_async *a, const struct ef_async_event *ev,
                 const struct ef_async_outcome *o)
{
    struct held_outcome *h = calloc(1, sizeof(*h));
    if (!h)
        return false;
    bool ok = true;
    h->o = *o;
    h->ev = calloc(1, sizeof(*h->ev));
    if (h->ev) {
        h->ev->seq = ev->seq;
        h->ev->attempts = ev->attempts;
        h->ev->request_id = dup_or_null(ev->request_id, &ok);
        h->ev->function_name = dup_or_null(ev->function_name, &ok);
    }
    h->o.error_type = h->error_type = dup_or_null(o->error_type, &ok);
    h->o.error_message = h->error_message = dup_or_null(o->error_message, &ok);
    if (o->result) {
        h->result = malloc(o->result_len + 1);
        if (h->result) {
            memcpy(h->result, o->result, o->result_len);
            h->result[o->result_len] = '\0';
        }
        h->o.result = h->result;
        ok = ok && h->result;
    }
    if (!ok || !h->ev) {
        held_free(h);
        return false;
    }
    h->next = a->held;
    a->held = h;
    a->in_flight++;
    a->stats.in_flight = a->in_flight;
    if (a->running && !a->stopping && !uv_is_active((uv_handle_t *)&a->held_timer))
        uv_timer_start(&a->held_timer, on_held_timer, HELD_RETRY_MS, 0);
    return true;
}

/* Records the outcome of the running event `ev`. When the queue cannot, the outcome is held and
 * recorded again later (hold); only if even that fails does the event stay `running` until the
 * next start, which handles it as interrupted (--async-interrupted). */
static void finish(struct ef_async *a, const struct ef_async_event *ev,
                   const struct ef_async_outcome *o)
{
    ef_error err = {0};
    int r = ef_async_queue_finish(a->q, ev->seq, ef_async_now_ms(), o, &err);
    checkpoint_if_grown(a);
    if (r == 0) {
        account(a, ev, o);
    } else if (r == -ESTALE) {
        ef_error("the outcome of event %s came after it was finished: %s", ev->request_id, err.msg);
    } else if (hold(a, ev, o)) {
        ef_error("cannot record the outcome of event %s: %s; trying again every %d ms",
                 ev->request_id, err.msg, HELD_RETRY_MS);
    } else {
        ef_error("cannot record the outcome of event %s: %s; out of memory to keep it, the next "
                 "start handles it as interrupted",
                 ev->request_id, err.msg);
    }
}

static void drop_held(struct ef_async *a, struct held_outcome **link)
{
    struct held_outcome *h = *link;
    *link = h->next;
    a->in_flight--;
    a->stats.in_flight = a->in_flight;
    held_free(h);
}

/* Records the held outcomes again, without waiting for a lock another writer holds (the loop
 * must not block on it once per outcome); stops at the first that still fails, as the others
 * would. True when none is left. */
static bool record_held(struct ef_async *a)
{
    ef_async_queue_set_busy_timeout(a->q, 0);
    struct held_outcome **link = &a->held;
    while (*link) {
        struct held_outcome *h = *link;
        ef_error err = {0};
        int r = ef_async_queue_finish(a->q, h->ev->seq, ef_async_now_ms(), &h->o, &err);
        if (r == 0) {
            ef_info("recorded the held outcome of event %s", h->ev->request_id);
            account(a, h->ev, &h->o);
        } else if (r != -ESTALE && ++h->tries < HELD_MAX_TRIES) {
            break;
        } else if (r != -ESTALE) {
            ef_error("giving up recording the outcome of event %s after %u tries: %s; the next "
                     "start handles it as interrupted",
                     h->ev->request_id, h->tries, err.msg);
        }
        drop_held(a, link);
    }
    ef_async_queue_set_busy_timeout(a->q, EF_ASYNC_BUSY_TIMEOUT_MS);
    checkpoint_if_grown(a);
    return a->held == NULL;
}

static void on_held_timer(uv_timer_t *t)
{
    struct ef_async *a = t->data;
    if (!record_held(a)) {
        uv_update_time(a->ctl->loop);
        uv_timer_start(&a->held_timer, on_held_timer, HELD_RETRY_MS, 0);
    }
    ef_async_pump(a);
}

/* The attempt was refused before the function ran (throttled, or a service error). */
static void refused(struct ef_async *a, const struct ef_async_event *ev, const char *type,
                    const char *message)
{
    struct ef_async_step step;
    ef_async_policy_after_failure(&a->policy, EF_ASYNC_REFUSED, ev->attempts - 1, ev->refusals + 1,
                                  ev->created_ms, ef_async_now_ms(), &step);
    struct ef_async_outcome o = {
        .status = step.dead_letter ? EF_EVENT_DEAD_LETTERED : EF_EVENT_QUEUED,
        .next_attempt_ms = step.next_attempt_ms,
        .condition = step.condition,
        .error_type = type,
        .error_message = message,
        .refused = true,
    };
    finish(a, ev, &o);
}

/* Whether a result can be kept as the event's Result: at most EF_ASYNC_MAX_RESULT bytes of
 * UTF-8 without NUL bytes. The queue keeps results as SQLite TEXT and the status embeds them in
 * JSON, so a binary result (one the runner sent as payload_b64) is not kept, only its size, as an
 * oversized one is: Result null, ResultSize its bytes (docs/async.md). */
static bool keep_result(const char *s, size_t len)
{
    return len <= EF_ASYNC_MAX_RESULT && ef_utf8_is_clean(s, len);
}

/* The attempt failed after its event was sent to the function, for a reason of the pod's (the
 * runner stopped answering, its answer was unreadable): the function may have run, so the
 * attempt counts, as a function error's does, and the event is not run again uncounted. */
static void sent_then_failed(struct ef_async *a, const struct ef_async_event *ev, const char *type,
                             const char *message)
{
    struct ef_async_step step;
    ef_async_policy_after_failure(&a->policy, EF_ASYNC_FUNCTION_ERROR, ev->attempts, ev->refusals,
                                  ev->created_ms, ef_async_now_ms(), &step);
    struct ef_async_outcome o = {
        .status = step.dead_letter ? EF_EVENT_DEAD_LETTERED : EF_EVENT_FAILED,
        .next_attempt_ms = step.next_attempt_ms,
        .condition = step.condition,
        .error_type = type ? type : "ServiceException",
        .error_message = message,
    };
    finish(a, ev, &o);
}

/* The function's error document names the error: {"errorType": ..., "errorMessage": ...}. */
static void function_failed(struct ef_async *a, const struct ef_async_event *ev,
                            const struct ef_invoke_outcome *io)
{
    cleanup_cjson cJSON *doc = cJSON_ParseWithLength(io->payload, io->payload_len);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(doc, "errorType");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(doc, "errorMessage");
    struct ef_async_step step;
    ef_async_policy_after_failure(&a->policy, EF_ASYNC_FUNCTION_ERROR, ev->attempts, ev->refusals,
                                  ev->created_ms, ef_async_now_ms(), &step);
    bool keep = keep_result(io->payload, io->payload_len);
    struct ef_async_outcome o = {
        .status = step.dead_letter ? EF_EVENT_DEAD_LETTERED : EF_EVENT_FAILED,
        .next_attempt_ms = step.next_attempt_ms,
        .condition = step.condition,
        /* Lambda reports an error without a type (a timeout) as "Unhandled". */
        .error_type = cJSON_IsString(type) ? type->valuestring : "Unhandled",
        .error_message = cJSON_IsString(msg) ? msg->valuestring : NULL,
        .result = keep ? io->payload : NULL,
        .result_len = keep ? io->payload_len : 0,
        .result_size = (int64_t)io->payload_len,
    };
    finish(a, ev, &o);
}

static void on_delivered(const struct ef_invoke_outcome *io, void *user)
{
    struct delivery *d = user;
    struct ef_async *a = d->a;
    unlink_delivery(a, d);
    if (io->status == EF_INVOKE_OK) {
        bool keep = keep_result(io->payload, io->payload_len);
        struct ef_async_outcome o = {
            .status = EF_EVENT_SUCCEEDED,
            .result = keep ? io->payload : NULL,
            .result_len = keep ? io->payload_len : 0,
            .result_size = (int64_t)io->payload_len,
        };
        finish(a, d->ev, &o);
    } else if (io->status == EF_INVOKE_FUNCTION_ERROR) {
        function_failed(a, d->ev, io);
    } else if (io->status == EF_INVOKE_SERVICE_ERROR && ef_invoke_sent(d->inv)) {
        sent_then_failed(a, d->ev, io->error_type, io->message);
    } else {
        refused(a, d->ev, io->error_type, io->message);
    }
    delivery_free(d);
    ef_async_pump(a);
}

/* Starts the attempt of a claimed (running) event; `ev` is consumed. */
static void deliver(struct ef_async *a, struct ef_async_event *ev)
{
    struct ef_function *fn = NULL;
    ef_error err = {0};
    int r =
        ef_store_get_function_version(a->ctl->store, ev->function_name, ev->qualifier, &fn, &err);
    if (r == -ENOENT) {
        /* The function or version was deleted after the event was accepted: it can never run. */
        cleanup_free char *arn = ef_function_qualified_arn(ev->function_name, ev->qualifier);
        char msg[400];
        snprintf(msg, sizeof(msg), "Function not found: %s", arn ? arn : ev->function_name);
        struct ef_async_outcome o = {
            .status = EF_EVENT_DEAD_LETTERED,
            .condition = EF_ASYNC_FUNCTION_NOT_FOUND,
            .error_type = "ResourceNotFoundException",
            .error_message = msg,
            .refused = true,
        };
        finish(a, ev, &o);
        ef_async_event_free(ev);
        return;
    }
    if (r < 0) {
        refused(a, ev, "ServiceException", err.msg);
        ef_async_event_free(ev);
        return;
    }
    /* Reserved concurrency 0 throttles every invocation, as in Lambda (api_concurrency.c). */
    if (fn->has_reserved_concurrency && fn->reserved_concurrency == 0) {
        ef_function_free(fn);
        refused(a, ev, "TooManyRequestsException",
                "Rate Exceeded. (ReservedFunctionConcurrentInvocationLimitExceeded)");
        ef_async_event_free(ev);
        return;
    }

    struct delivery *d = calloc(1, sizeof(*d));
    if (!d) {
        ef_function_free(fn);
        refused(a, ev, "ServiceException", "out of memory");
        ef_async_event_free(ev);
        return;
    }
    d->a = a;
    d->ev = ev;
    d->next = a->deliveries;
    if (a->deliveries)
        a->deliveries->prev = d;
    a->deliveries = d;
    a->in_flight++;
    a->stats.in_flight = a->in_flight;
    ef_debug("delivering event %s to %s:%s (attempt %lld)", ev->request_id, ev->function_name,
             ev->qualifier, (long long)ev->attempts);
    /* The event keeps its request id on every attempt, as in Lambda: the handler's
     * context.aws_request_id is the x-amzn-RequestId the client got with its 202. */
    /* Its outcome is stored as soon as it is known: the run's log entry goes first, so that a
     * crash in between never leaves a stored outcome without its run in the function's log. */
    const struct ef_invoke_extra extra = {.log_before_done = true};
    r = ef_invoke_start_ex(a->ctl, fn, ev->request_id, ev->payload, ev->payload_len, &extra,
                           on_delivered, d, &d->inv, &err);
    if (r < 0) {
        /* Throttled at once (the function's limit and queue are full), or funclet is away. */
        unlink_delivery(a, d);
        refused(a, ev,
                ef_invoke_throttle_reason(r) ? "TooManyRequestsException" : "ServiceException",
                err.msg);
        delivery_free(d);
    }
}

/* Arms the due timer for the next event that falls due, unless every slot is busy (a finishing
 * delivery pumps again then). */
static void arm_due_timer(struct ef_async *a)
{
    if (a->in_flight >= a->cfg.concurrency) {
        uv_timer_stop(&a->due_timer);
        return;
    }
    int64_t due = 0;
    ef_error err = {0};
    int r = ef_async_queue_next_due(a->q, &due, &err);
    if (r == -ENOENT) {
        uv_timer_stop(&a->due_timer);
        return;
    }
    int64_t wait = QUEUE_ERROR_RETRY_MS;
    if (r < 0)
        ef_error("cannot read the async queue: %s", err.msg);
    else
        wait = due - ef_async_now_ms();
    /* A due event that could not be claimed just now would otherwise spin the loop. */
    if (wait < 1)
        wait = 1;
    uv_timer_start(&a->due_timer, on_due_timer, (uint64_t)wait, 0);
}

void ef_async_pump(struct ef_async *a)
{
    if (!a->running || a->stopping)
        return;
    /* ef_invoke_start never calls back synchronously, but a re-entrant pump must not claim
     * past the limit should that change. */
    if (a->pumping) {
        a->pump_again = true;
        return;
    }
    a->pumping = true;
    unsigned claimed = 0;
    do {
        a->pump_again = false;
        while (a->in_flight < a->cfg.concurrency && !a->stopping) {
            if (claimed++ == PUMP_BATCH) {
                /* The rest on a later turn of the loop, after what else is waiting. */
                a->pumping = false;
                uv_timer_start(&a->due_timer, on_due_timer, 0, 0);
                checkpoint_if_grown(a);
                return;
            }
            struct ef_async_event *ev = NULL;
            ef_error err = {0};
            int r = ef_async_queue_claim(a->q, ef_async_now_ms(), &a->policy, &ev, &err);
            if (r == -ENOENT)
                break;
            if (r < 0) {
                ef_error("cannot claim an async event: %s", err.msg);
                uv_timer_start(&a->due_timer, on_due_timer, QUEUE_ERROR_RETRY_MS, 0);
                a->pumping = false;
                return;
            }
            if (ev->status == EF_EVENT_DEAD_LETTERED) {
                a->stats.backlog--;
                a->stats.dead_letters++;
                a->stats.dead_lettered++;
                ef_metrics_async_event(a->ctl->metrics, EF_ASYNC_DEAD_LETTERED);
                ef_async_publish(a);
                ef_warn("event %s of %s dead-lettered (%s) after %lld attempt(s)", ev->request_id,
                        ev->function_name, ev->condition, (long long)ev->attempts);
                ef_async_event_free(ev);
                continue;
            }
            deliver(a, ev);
        }
    } while (a->pump_again && !a->stopping);
    a->pumping = false;
    if (!a->stopping) {
        arm_due_timer(a);
        checkpoint_if_grown(a);
    }
}
