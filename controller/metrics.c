#include "controller/metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/controller.h"
#include "controller/handover.h"
#include "controller/housekeeping.h"
#include "controller/name_map.h"
#include "controller/pool.h"
#include "controller/scheduler.h"

/* Upper bounds (seconds) of the duration histogram's buckets, from a warm no-op to Lambda's
 * longest timeout. */
static const double bucket_le[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                   1,     2.5,    5,     10,   30,    60,   300, 900};
#define N_BUCKETS (sizeof(bucket_le) / sizeof(bucket_le[0]))

/* Functions get their own series up to this many names; later ones share OTHER_FUNCTION, so that
 * creating functions without end cannot grow a scrape without end. */
#define MAX_FUNCTIONS  10000
#define OTHER_FUNCTION "(other)"
/* Distinct funclet methods counted by name; more (there are fewer) share "other". */
#define MAX_METHODS 16

static const char *const outcome_names[EF_OUTCOME_COUNT] = {
    "success", "error", "timeout", "throttled", "service_error",
};
static const char *const retire_names[EF_RETIRE_COUNT] = {"idle", "reclaim", "unhealthy"};
static const char *const async_names[EF_ASYNC_COUNT] = {
    "accepted",
    "delivered",
    "retried",
    "dead_lettered",
};

struct fn_metrics {
    uint64_t outcomes[EF_OUTCOME_COUNT];
    uint64_t buckets[N_BUCKETS]; /* durations in (le[i-1], le[i]]; above the last: count only */
    uint64_t count;
    double sum;
    uint64_t cold_starts;
    char name[];
};

struct ef_metrics {
    struct ef_name_map fns; /* name -> struct fn_metrics */
    struct {
        char method[40];
        uint64_t n;
    } funclet_errors[MAX_METHODS];
    size_t n_methods;
    uint64_t funclet_disconnects;
    uint64_t retired[EF_RETIRE_COUNT];
    uint64_t reborn;
    uint64_t async_backlog;
    uint64_t async_dead_letters;
    uint64_t async_events[EF_ASYNC_COUNT];
};

int ef_metrics_new(struct ef_metrics **ret_metrics)
{
    struct ef_metrics *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    ef_name_map_init(&m->fns);
    *ret_metrics = m;
    return 0;
}

void ef_metrics_free(struct ef_metrics *m)
{
    if (!m)
        return;
    size_t bucket = 0;
    struct ef_name_entry *pos = NULL, *e;
    while ((e = ef_name_map_next(&m->fns, &bucket, &pos)) != NULL)
        free(e->value);
    ef_name_map_clear(&m->fns);
    free(m);
}

static struct fn_metrics *fn_get(struct ef_metrics *m, const char *name)
{
    struct fn_metrics *f = ef_name_map_get(&m->fns, name);
    if (f)
        return f;
    if (m->fns.count >= MAX_FUNCTIONS) {
        name = OTHER_FUNCTION;
        if ((f = ef_name_map_get(&m->fns, name)) != NULL)
            return f;
    }
    size_t len = strlen(name);
    f = calloc(1, sizeof(*f) + len + 1);
    if (!f)
        return NULL;
    memcpy(f->name, name, len + 1);
    if (ef_name_map_put(&m->fns, name, f) < 0) {
        free(f);
        return NULL;
    }
    return f;
}

void ef_metrics_invocation(struct ef_metrics *m, const char *function,
                           enum ef_metrics_outcome outcome, double duration_s)
{
    struct fn_metrics *f = m ? fn_get(m, function) : NULL;
    if (!f || outcome >= EF_OUTCOME_COUNT)
        return;
    f->outcomes[outcome]++;
    if (duration_s < 0)
        return;
    for (size_t i = 0; i < N_BUCKETS; i++) {
        if (duration_s <= bucket_le[i]) {
            f->buckets[i]++;
            break;
        }
    }
    f->count++;
    f->sum += duration_s;
}

void ef_metrics_cold_start(struct ef_metrics *m, const char *function)
{
    struct fn_metrics *f = m ? fn_get(m, function) : NULL;
    if (f)
        f->cold_starts++;
}

void ef_metrics_funclet_error(struct ef_metrics *m, const char *method)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_methods; i++) {
        if (strcmp(m->funclet_errors[i].method, method) == 0) {
            m->funclet_errors[i].n++;
            return;
        }
    }
    size_t i = m->n_methods;
    if (i == MAX_METHODS) {
        i = MAX_METHODS - 1; /* the last one becomes "other" */
        snprintf(m->funclet_errors[i].method, sizeof(m->funclet_errors[i].method), "other");
    } else {
        snprintf(m->funclet_errors[i].method, sizeof(m->funclet_errors[i].method), "%s", method);
        m->n_methods++;
    }
    m->funclet_errors[i].n++;
}

void ef_metrics_funclet_disconnect(struct ef_metrics *m)
{
    if (m)
        m->funclet_disconnects++;
}

void ef_metrics_container_retired(struct ef_metrics *m, enum ef_metrics_retire why)
{
    if (m && why < EF_RETIRE_COUNT)
        m->retired[why]++;
}

void ef_metrics_container_reborn(struct ef_metrics *m)
{
    if (m)
        m->reborn++;
}

void ef_metrics_set_async_backlog(struct ef_metrics *m, uint64_t events)
{
    if (m)
        m->async_backlog = events;
}

void ef_metrics_set_async_dead_letters(struct ef_metrics *m, uint64_t letters)
{
    if (m)
        m->async_dead_letters = letters;
}

void ef_metrics_async_event(struct ef_metrics *m, enum ef_metrics_async event)
{
    if (m && event < EF_ASYNC_COUNT)
        m->async_events[event]++;
}

/* ---- rendering ---- */

struct buf {
    char *data;
    size_t len, cap;
    bool failed;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct buf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        char *d = realloc(b->data, cap);
        if (!d) {
            b->failed = true;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
}

/* A label value with \, " and newline escaped, as the text format requires. */
static const char *label(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    for (; *s && o + 3 < cap; s++) {
        if (*s == '\\' || *s == '"') {
            out[o++] = '\\';
            out[o++] = *s;
        } else if (*s == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *s;
        }
    }
    out[o] = '\0';
    return out;
}

static void family(struct buf *b, const char *name, const char *type, const char *help)
{
    put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The function series in a stable order (sorted by name), so that scrapes diff cleanly. */
static int cmp_fn(const void *a, const void *b)
{
    return strcmp((*(struct fn_metrics *const *)a)->name, (*(struct fn_metrics *const *)b)->name);
}

static struct fn_metrics **sorted_functions(const struct ef_metrics *m)
{
    struct fn_metrics **v = malloc((m->fns.count + 1) * sizeof(*v));
    if (!v)
        return NULL;
    size_t n = 0, bucket = 0;
    struct ef_name_entry *pos = NULL, *e;
    while ((e = ef_name_map_next(&m->fns, &bucket, &pos)) != NULL)
        v[n++] = e->value;
    qsort(v, n, sizeof(*v), cmp_fn);
    v[n] = NULL;
    return v;
}

static void render_functions(struct buf *b, const struct ef_metrics *m)
{
    struct fn_metrics **fns = sorted_functions(m);
    if (!fns) {
        b->failed = true;
        return;
    }
    char l[300];
    family(b, "easyfaas_invocations_total", "counter",
           "Invocations by function and outcome (success, error: the function failed, timeout, "
           "throttled: 429, service_error: 5xx).");
    for (struct fn_metrics **f = fns; *f; f++)
        for (int o = 0; o < EF_OUTCOME_COUNT; o++)
            if ((*f)->outcomes[o])
                put(b, "easyfaas_invocations_total{function=\"%s\",outcome=\"%s\"} %llu\n",
                    label((*f)->name, l, sizeof(l)), outcome_names[o],
                    (unsigned long long)(*f)->outcomes[o]);

    family(b, "easyfaas_invocation_duration_seconds", "histogram",
           "How long functions ran: from handing the event to the runner to its answer.");
    for (struct fn_metrics **f = fns; *f; f++) {
        if (!(*f)->count)
            continue;
        label((*f)->name, l, sizeof(l));
        uint64_t cumulative = 0;
        for (size_t i = 0; i < N_BUCKETS; i++) {
            cumulative += (*f)->buckets[i];
            put(b, "easyfaas_invocation_duration_seconds_bucket{function=\"%s\",le=\"%g\"} %llu\n",
                l, bucket_le[i], (unsigned long long)cumulative);
        }
        put(b, "easyfaas_invocation_duration_seconds_bucket{function=\"%s\",le=\"+Inf\"} %llu\n", l,
            (unsigned long long)(*f)->count);
        put(b, "easyfaas_invocation_duration_seconds_sum{function=\"%s\"} %.6f\n", l, (*f)->sum);
        put(b, "easyfaas_invocation_duration_seconds_count{function=\"%s\"} %llu\n", l,
            (unsigned long long)(*f)->count);
    }

    family(b, "easyfaas_cold_starts_total", "counter",
           "Containers started for an invocation of the function (no warm one was idle).");
    for (struct fn_metrics **f = fns; *f; f++)
        if ((*f)->cold_starts)
            put(b, "easyfaas_cold_starts_total{function=\"%s\"} %llu\n",
                label((*f)->name, l, sizeof(l)), (unsigned long long)(*f)->cold_starts);
    free(fns);
}

struct queue_walk {
    struct buf *b;
    bool queues; /* the queue depth pass, else in flight */
};

static void put_function_gauge(const char *function, unsigned in_flight, unsigned queued,
                               void *user)
{
    struct queue_walk *w = user;
    char l[300];
    if (w->queues)
        put(w->b, "easyfaas_function_queue_depth{function=\"%s\"} %u\n",
            label(function, l, sizeof(l)), queued);
    else
        put(w->b, "easyfaas_function_invocations_in_flight{function=\"%s\"} %u\n",
            label(function, l, sizeof(l)), in_flight);
}

static void sum_queued(const char *function, unsigned in_flight, unsigned queued, void *user)
{
    (void)function;
    (void)in_flight;
    *(unsigned *)user += queued;
}

static void render_pool(struct buf *b, const struct ef_controller *ctl)
{
    unsigned idle = 0, busy = 0, draining = 0, starting = 0, handed_over = 0;
    for (const struct ef_container *c = ctl->pool.head; c; c = c->next) {
        if (ef_handover_serving(c->handover))
            handed_over++;
        if (c->state == EF_CONTAINER_IDLE)
            idle++;
        else if (c->state == EF_CONTAINER_BUSY && c->timed_out)
            draining++;
        else if (c->state == EF_CONTAINER_BUSY)
            busy++;
        else
            starting++;
    }
    family(b, "easyfaas_containers", "gauge",
           "Containers by state: warm (idle, specialised for a function), busy, draining (busy "
           "with the last invocations of a container where one timed out; it takes no new ones), "
           "starting (as the controller holds them), and cold (funclet's pool at the last health "
           "check).");
    put(b, "easyfaas_containers{state=\"warm\"} %u\n", idle);
    put(b, "easyfaas_containers{state=\"busy\"} %u\n", busy);
    put(b, "easyfaas_containers{state=\"draining\"} %u\n", draining);
    put(b, "easyfaas_containers{state=\"starting\"} %u\n", starting);
    long cold = ef_housekeeping_cold_containers(ctl->housekeeping);
    if (cold >= 0)
        put(b, "easyfaas_containers{state=\"cold\"} %ld\n", cold);
    family(b, "easyfaas_containers_handed_over", "gauge",
           "Warm containers whose runtime's connection the controller serves, their runner off "
           "the invocation path (runtime handover).");
    put(b, "easyfaas_containers_handed_over %u\n", handed_over);

    unsigned queued = 0;
    ef_sched_for_each_function(ctl->sched, sum_queued, &queued);
    family(b, "easyfaas_invocations_in_flight", "gauge",
           "Invocations holding a concurrency slot (running or starting a container).");
    put(b, "easyfaas_invocations_in_flight %u\n", ef_sched_in_flight(ctl->sched));
    family(b, "easyfaas_queued_invocations", "gauge",
           "Invocations waiting in the per-function queues, node-wide.");
    put(b, "easyfaas_queued_invocations %u\n", queued);
    struct queue_walk w = {.b = b, .queues = false};
    family(b, "easyfaas_function_invocations_in_flight", "gauge",
           "Invocations of the function holding a concurrency slot.");
    ef_sched_for_each_function(ctl->sched, put_function_gauge, &w);
    w.queues = true;
    family(b, "easyfaas_function_queue_depth", "gauge",
           "Invocations of the function waiting in its queue (reserved concurrency, node limit "
           "or capacity).");
    ef_sched_for_each_function(ctl->sched, put_function_gauge, &w);
}

static void render_operations(struct buf *b, const struct ef_controller *ctl,
                              const struct ef_metrics *m)
{
    family(b, "easyfaas_funclet_up", "gauge",
           "Whether the controller is connected to funclet (1) or not (0).");
    put(b, "easyfaas_funclet_up %d\n", ef_funclet_connected(ctl->funclet) ? 1 : 0);
    family(b, "easyfaas_funclet_disconnects_total", "counter",
           "Times the connection to funclet was lost.");
    put(b, "easyfaas_funclet_disconnects_total %llu\n", (unsigned long long)m->funclet_disconnects);
    family(b, "easyfaas_funclet_rpc_errors_total", "counter",
           "Calls to funclet that failed (error answer, timeout or lost connection), by method.");
    for (size_t i = 0; i < m->n_methods; i++)
        put(b, "easyfaas_funclet_rpc_errors_total{method=\"%s\"} %llu\n",
            m->funclet_errors[i].method, (unsigned long long)m->funclet_errors[i].n);

    family(b, "easyfaas_containers_retired_total", "counter",
           "Warm containers the controller gave up, by reason (idle: keep-alive over, reclaim: "
           "memory needed elsewhere, unhealthy: dead or wedged runner).");
    for (int i = 0; i < EF_RETIRE_COUNT; i++)
        put(b, "easyfaas_containers_retired_total{reason=\"%s\"} %llu\n", retire_names[i],
            (unsigned long long)m->retired[i]);
    family(b, "easyfaas_containers_reborn_total", "counter",
           "Warm containers started to replace an idle one that died.");
    put(b, "easyfaas_containers_reborn_total %llu\n", (unsigned long long)m->reborn);

    family(b, "easyfaas_async_backlog", "gauge",
           "Asynchronous events stored and not yet delivered.");
    put(b, "easyfaas_async_backlog %llu\n", (unsigned long long)m->async_backlog);
    family(b, "easyfaas_async_dead_letters", "gauge",
           "Dead letters held: events whose every delivery attempt failed.");
    put(b, "easyfaas_async_dead_letters %llu\n", (unsigned long long)m->async_dead_letters);
    family(b, "easyfaas_async_events_total", "counter",
           "Asynchronous events by step (accepted, delivered, retried, dead_lettered).");
    for (int i = 0; i < EF_ASYNC_COUNT; i++)
        put(b, "easyfaas_async_events_total{event=\"%s\"} %llu\n", async_names[i],
            (unsigned long long)m->async_events[i]);
}

char *ef_metrics_render(const struct ef_controller *ctl, size_t *ret_len)
{
    struct buf b = {.cap = 16384};
    b.data = malloc(b.cap);
    if (!b.data)
        return NULL;
    b.data[0] = '\0';
    static const struct ef_metrics empty;
    const struct ef_metrics *m = ctl->metrics ? ctl->metrics : &empty;
    render_functions(&b, m);
    render_pool(&b, ctl);
    render_operations(&b, ctl, m);
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    *ret_len = b.len;
    return b.data;
}
