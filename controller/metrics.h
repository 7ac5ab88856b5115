/* The controller's metrics, served by GET /metrics in Prometheus' text format (version 0.0.4).
 *
 * Counters and histograms are kept here as events happen; gauges of the pool and the queues are
 * read from their owners when a scrape renders them. Every series and what feeds it is listed in
 * docs/scheduler.md ("Metrics"). Everything runs on the loop thread.
 *
 * Hooks for other parts of the controller (each takes ctl->metrics; NULL is ignored, so a part
 * may call them before or without metrics):
 *  - ef_metrics_set_async_backlog() / ef_metrics_set_async_dead_letters(): the async queue sets
 *    the number of events waiting for delivery and of dead letters held, whenever they change
 *    (or periodically); exposed as the gauges easyfaas_async_backlog and
 *    easyfaas_async_dead_letters.
 *  - ef_metrics_async_event(): one event's progress (accepted, delivered, retried,
 *    dead-lettered), exposed as the counter easyfaas_async_events_total{event=...}.
 *  - ef_metrics_invocation(): invoke.c records every synchronous invocation it completes; async
 *    deliveries go through invoke.c too, so they are counted there as well. */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct ef_controller;
struct ef_metrics;

/* How an invocation ended, the `outcome` label of easyfaas_invocations_total. */
enum ef_metrics_outcome {
    EF_OUTCOME_SUCCESS,       /* 200, the function's result */
    EF_OUTCOME_ERROR,         /* 200 + X-Amz-Function-Error: the function failed */
    EF_OUTCOME_TIMEOUT,       /* the function ran into its Timeout */
    EF_OUTCOME_THROTTLED,     /* 429: concurrency limit, full queue or expired wait */
    EF_OUTCOME_SERVICE_ERROR, /* 5xx: funclet unreachable, a container could not start, ... */
    EF_OUTCOME_COUNT,
};

/* Why the controller gave a container up, the `reason` label of
 * easyfaas_containers_retired_total. */
enum ef_metrics_retire {
    EF_RETIRE_IDLE,      /* idle longer than --idle-timeout */
    EF_RETIRE_RECLAIM,   /* its memory was needed for another function */
    EF_RETIRE_UNHEALTHY, /* dead or wedged runner, found by a health check or a notification */
    EF_RETIRE_COUNT,
};

/* Progress of an asynchronous event, the `event` label of easyfaas_async_events_total. */
enum ef_metrics_async {
    EF_ASYNC_ACCEPTED,      /* stored durably and answered 202 */
    EF_ASYNC_DELIVERED,     /* ran to an answer (success or function error) */
    EF_ASYNC_RETRIED,       /* a delivery attempt failed and another is scheduled */
    EF_ASYNC_DEAD_LETTERED, /* every attempt failed; kept as a dead letter */
    EF_ASYNC_COUNT,
};

/* Allocates empty metrics. Returns 0 or -ENOMEM. */
int ef_metrics_new(struct ef_metrics **ret_metrics);

/* Frees them; NULL is fine. */
void ef_metrics_free(struct ef_metrics *m);

/* Counts an invocation of `function` and, when `duration_s` >= 0 (the function ran), adds its
 * duration to the function's histogram. */
void ef_metrics_invocation(struct ef_metrics *m, const char *function,
                           enum ef_metrics_outcome outcome, double duration_s);

/* Counts a cold start of `function` (a container was started for an invocation). */
void ef_metrics_cold_start(struct ef_metrics *m, const char *function);

/* Counts a failed call to funclet (`method` as sent, e.g. "container.create"), whatever the
 * cause: an error answer, a timeout or a lost connection. */
void ef_metrics_funclet_error(struct ef_metrics *m, const char *method);

/* Counts a lost connection to funclet. */
void ef_metrics_funclet_disconnect(struct ef_metrics *m);

/* Counts a container the controller gave up for `why`. */
void ef_metrics_container_retired(struct ef_metrics *m, enum ef_metrics_retire why);

/* Counts a container started to replace an idle one that died (docs/scheduler.md). */
void ef_metrics_container_reborn(struct ef_metrics *m);

/* Sets the number of asynchronous events stored and not yet delivered. */
void ef_metrics_set_async_backlog(struct ef_metrics *m, uint64_t events);

/* Sets the number of dead letters held. */
void ef_metrics_set_async_dead_letters(struct ef_metrics *m, uint64_t letters);

/* Counts one step of an asynchronous event. */
void ef_metrics_async_event(struct ef_metrics *m, enum ef_metrics_async event);

/* Renders every metric (ctl->metrics plus the gauges of ctl's pool, scheduler and funclet
 * connection) as Prometheus text. Returns the malloc'd text (its length in *ret_len), or NULL
 * when memory runs out. */
char *ef_metrics_render(const struct ef_controller *ctl, size_t *ret_len);
