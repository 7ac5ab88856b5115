#include "controller/scheduler.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/log.h"
#include "controller/controller.h"
#include "controller/duration.h"
#include "controller/name_map.h"
#include "controller/pool.h"

/* The scheduling state of one function name (reserved concurrency is shared by its versions).
 * Freed by the timer once nothing is in flight or queued: a ticket refers to its function only
 * while it holds a slot or waits, so nothing points at an empty one. */
struct ef_sched_fn {
    struct ef_sched_ticket *head, *tail; /* the queue, in admission order */
    unsigned queued;
    unsigned in_flight;
    bool has_reserved;
    int64_t reserved;
    char name[];
};

struct ef_scheduler {
    struct ef_controller *ctl;
    struct ef_sched_config cfg;
    struct ef_name_map fns; /* name -> struct ef_sched_fn */
    uv_timer_t timer;       /* serves the queues, expires waits, frees empty functions */
    bool timer_open;
    bool closed;
    bool free_on_close;    /* freed before its timer had closed: the close callback frees it */
    bool in_timer;         /* functions are not freed while the timer (or close) holds a snapshot */
    bool pump_due;         /* the timer is due at once */
    bool capacity_blocked; /* the last attempt to obtain a container found no capacity */
    unsigned in_flight;    /* slots held, node-wide */
    unsigned queued;       /* tickets waiting, node-wide */
    unsigned capacity_waiters;
    uint64_t seq;                  /* admission order */
    struct ef_sched_fn **snapshot; /* scratch for the timer: the functions with a queue */
    size_t snapshot_cap;
};

void ef_sched_config_defaults(struct ef_sched_config *cfg)
{
    cfg->queue_depth = EF_SCHED_DEFAULT_QUEUE_DEPTH;
    cfg->queue_wait_ms = EF_SCHED_DEFAULT_QUEUE_WAIT_MS;
    cfg->max_concurrency = EF_SCHED_DEFAULT_MAX_CONCURRENCY;
    cfg->idle_timeout_ms = EF_SCHED_DEFAULT_IDLE_TIMEOUT_MS;
    cfg->health_interval_ms = EF_SCHED_DEFAULT_HEALTH_INTERVAL_MS;
    /* Reset: the runner starts a new runtime in a recycled container, and funclet keeps it as
     * a spare for any function, which saves creating one. */
    cfg->cooldown_reset = true;
}

/* Reads duration flag `flag` into *ret_ms, within [min_ms, max_ms]. */
static int parse_duration(const char *flag, const char *text, uint64_t min_ms, uint64_t max_ms,
                          unsigned *ret_ms, ef_error *err)
{
    uint64_t ms = 0;
    ef_error e = {0};
    if (ef_parse_duration_ms(text, &ms, &e) < 0)
        return ef_error_set(err, -EINVAL, "--%s: %s", flag, e.msg);
    if (ms < min_ms || ms > max_ms)
        return ef_error_set(err, -EINVAL, "--%s must be between %llu ms and %llu ms, not %s", flag,
                            (unsigned long long)min_ms, (unsigned long long)max_ms, text);
    *ret_ms = (unsigned)ms;
    return 0;
}

int ef_sched_config_parse(struct ef_sched_config *cfg, int64_t queue_depth, int64_t max_concurrency,
                          const char *queue_wait, const char *idle_timeout,
                          const char *health_interval, const char *cooldown, ef_error *err)
{
    ef_sched_config_defaults(cfg);
    if (queue_depth < 0 || queue_depth > EF_SCHED_MAX_QUEUE_DEPTH)
        return ef_error_set(err, -EINVAL, "--queue-depth must be between 0 and %d",
                            EF_SCHED_MAX_QUEUE_DEPTH);
    if (max_concurrency < 1 || max_concurrency > EF_SCHED_MAX_CONCURRENCY)
        return ef_error_set(err, -EINVAL, "--max-concurrency must be between 1 and %d",
                            EF_SCHED_MAX_CONCURRENCY);
    cfg->queue_depth = (unsigned)queue_depth;
    cfg->max_concurrency = (unsigned)max_concurrency;
    int r;
    if ((r = parse_duration("queue-wait", queue_wait, 1, EF_SCHED_MAX_QUEUE_WAIT_MS,
                            &cfg->queue_wait_ms, err)) < 0 ||
        (r = parse_duration("idle-timeout", idle_timeout, 1000, EF_SCHED_MAX_IDLE_TIMEOUT_MS,
                            &cfg->idle_timeout_ms, err)) < 0 ||
        (r = parse_duration("health-interval", health_interval, 1000, 3600 * 1000,
                            &cfg->health_interval_ms, err)) < 0)
        return r;
    if (strcmp(cooldown, "destroy") == 0)
        cfg->cooldown_reset = false;
    else if (strcmp(cooldown, "reset") == 0)
        cfg->cooldown_reset = true;
    else
        return ef_error_set(err, -EINVAL, "--cooldown must be destroy or reset, not '%s'",
                            cooldown);
    return 0;
}

int ef_sched_new(struct ef_controller *ctl, const struct ef_sched_config *cfg,
                 struct ef_scheduler **ret_sched, ef_error *err)
{
    struct ef_scheduler *s = calloc(1, sizeof(*s));
    if (!s)
        return ef_error_set(err, -ENOMEM, "out of memory");
    s->ctl = ctl;
    s->cfg = *cfg;
    if (s->cfg.max_concurrency == 0)
        s->cfg.max_concurrency = EF_SCHED_DEFAULT_MAX_CONCURRENCY;
    ef_name_map_init(&s->fns);
    uv_timer_init(ctl->loop, &s->timer);
    s->timer.data = s;
    s->timer_open = true;
    *ret_sched = s;
    return 0;
}

const struct ef_sched_config *ef_sched_config(const struct ef_scheduler *s)
{
    return &s->cfg;
}

static void on_timer(uv_timer_t *timer);

/* Makes the timer run at the next turn of the loop. */
static void schedule_pump(struct ef_scheduler *s)
{
    if (!s->timer_open || s->closed)
        return;
    s->pump_due = true;
    uv_timer_start(&s->timer, on_timer, 0, 0);
}

static bool slot_free(const struct ef_scheduler *s, const struct ef_sched_fn *fn)
{
    if (s->in_flight >= s->cfg.max_concurrency)
        return false;
    return !fn->has_reserved || (int64_t)fn->in_flight < fn->reserved;
}

static bool reserved_blocks(const struct ef_sched_fn *fn)
{
    return fn->has_reserved && (int64_t)fn->in_flight >= fn->reserved;
}

static void take_slot(struct ef_scheduler *s, struct ef_sched_ticket *t)
{
    t->holds_slot = true;
    t->fn->in_flight++;
    s->in_flight++;
}

static void give_slot(struct ef_scheduler *s, struct ef_sched_ticket *t)
{
    if (!t->holds_slot)
        return;
    t->holds_slot = false;
    t->fn->in_flight--;
    s->in_flight--;
}

static void dequeue(struct ef_scheduler *s, struct ef_sched_ticket *t)
{
    struct ef_sched_fn *fn = t->fn;
    if (t->prev)
        t->prev->next = t->next;
    else
        fn->head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        fn->tail = t->prev;
    t->prev = t->next = NULL;
    t->queued = false;
    fn->queued--;
    s->queued--;
    if (t->wants_capacity) {
        t->wants_capacity = false;
        if (--s->capacity_waiters == 0)
            s->capacity_blocked = false; /* nobody left to wait for a change */
    }
}

/* Inserts a ticket into its function's queue by admission order: a new arrival goes last, a
 * ticket that gave its slot back goes where it was. Every ticket's deadline is its admission
 * time plus the one queue wait of the scheduler, so the queue is in deadline order as well:
 * expiry looks at the head only. */
static void enqueue(struct ef_scheduler *s, struct ef_sched_ticket *t)
{
    struct ef_sched_fn *fn = t->fn;
    struct ef_sched_ticket *after = fn->tail;
    while (after && after->seq > t->seq)
        after = after->prev;
    t->prev = after;
    t->next = after ? after->next : fn->head;
    if (t->next)
        t->next->prev = t;
    else
        fn->tail = t;
    if (after)
        after->next = t;
    else
        fn->head = t;
    t->queued = true;
    fn->queued++;
    s->queued++;
}

static struct ef_sched_fn *fn_get(struct ef_scheduler *s, const char *name)
{
    struct ef_sched_fn *fn = ef_name_map_get(&s->fns, name);
    if (fn)
        return fn;
    size_t len = strlen(name);
    fn = calloc(1, sizeof(*fn) + len + 1);
    if (!fn)
        return NULL;
    memcpy(fn->name, name, len + 1);
    if (ef_name_map_put(&s->fns, name, fn) < 0) {
        free(fn);
        return NULL;
    }
    return fn;
}

/* Frees a function's state once nothing is in flight or queued for it (later, at the end of the
 * timer, when the timer is running). */
static void fn_maybe_free(struct ef_scheduler *s, struct ef_sched_fn *fn)
{
    if (s->in_timer || fn->in_flight || fn->queued)
        return;
    ef_name_map_remove(&s->fns, fn->name);
    free(fn);
}

/* The 429 for a ticket that cannot wait (any longer): whose limit holds it back. */
static int throttle(struct ef_scheduler *s, const struct ef_sched_ticket *t, bool expired,
                    const char **ret_reason, ef_error *err)
{
    const struct ef_sched_fn *fn = t->fn;
    char waited[96];
    if (expired)
        snprintf(waited, sizeof(waited), "no slot came free within %u ms (--queue-wait)",
                 s->cfg.queue_wait_ms);
    else
        snprintf(waited, sizeof(waited), "its queue is full (%u waiting, --queue-depth %u)",
                 fn->queued, s->cfg.queue_depth);
    if (t->wants_capacity) {
        *ret_reason = EF_REASON_NODE;
        if (s->cfg.queue_depth == 0)
            return ef_error_set(err, -EAGAIN,
                                "Rate Exceeded. No container could be started for function '%s': "
                                "the node has no memory or container left for it, and "
                                "--queue-depth 0 lets no invocation wait for one",
                                fn->name);
        return ef_error_set(err, -EAGAIN,
                            "Rate Exceeded. No container could be started for function '%s': the "
                            "node has no memory or container left for it, and none came free "
                            "within %u ms (--queue-wait)",
                            fn->name, s->cfg.queue_wait_ms);
    }
    if (reserved_blocks(fn)) {
        *ret_reason = EF_REASON_RESERVED;
        if (fn->reserved == 0)
            return ef_error_set(err, -EDQUOT,
                                "Rate Exceeded. Function '%s' has a reserved concurrency of 0, "
                                "which throttles every invocation",
                                fn->name);
        return ef_error_set(err, -EDQUOT,
                            "Rate Exceeded. Function '%s' runs its reserved concurrency of %lld "
                            "invocations and %s",
                            fn->name, (long long)fn->reserved, waited);
    }
    *ret_reason = EF_REASON_NODE;
    return ef_error_set(err, -EAGAIN,
                        "Rate Exceeded. The node runs its limit of %u concurrent invocations "
                        "(--max-concurrency) and for function '%s' %s",
                        s->cfg.max_concurrency, fn->name, waited);
}

/* Whether a queued invocation could take a free slot at once: the head of a queue whose
 * function is below its reservation and that does not wait for capacity (memory, not a slot,
 * holds those back). Called with a slot free at the node. */
static bool waiter_for_slot(const struct ef_scheduler *s)
{
    if (s->queued == s->capacity_waiters)
        return false;
    size_t bucket = 0;
    struct ef_name_entry *pos = NULL, *e;
    while ((e = ef_name_map_next(&s->fns, &bucket, &pos)) != NULL) {
        const struct ef_sched_fn *fn = e->value;
        if (fn->head && !fn->head->wants_capacity && slot_free(s, fn))
            return true;
    }
    return false;
}

int ef_sched_admit(struct ef_scheduler *s, struct ef_sched_ticket *t, const char *function,
                   bool has_reserved, int64_t reserved, ef_error *err)
{
    if (s->closed)
        return ef_error_set(err, -ESHUTDOWN, "the controller is stopping");
    struct ef_sched_fn *fn = fn_get(s, function);
    if (!fn)
        return ef_error_set(err, -ENOMEM, "out of memory");
    /* The stored setting of the latest invocation is the one in force. */
    fn->has_reserved = has_reserved;
    fn->reserved = reserved;
    t->fn = fn;
    t->seq = ++s->seq;
    t->deadline_ms = uv_now(s->ctl->loop) + s->cfg.queue_wait_ms;
    t->queued = t->holds_slot = t->wants_capacity = false;
    /* Straight to a slot unless its function has a queue, or an invocation of another function
     * waits that could take that slot now (one queued for the node-wide limit, which would
     * otherwise see every newcomer take the slot it waits for). Then it queues, and the timer
     * serves all in admission order. */
    if (fn->queued == 0 && slot_free(s, fn) && !waiter_for_slot(s)) {
        take_slot(s, t);
        return 0;
    }
    const char *reason;
    if ((has_reserved && reserved == 0) || fn->queued >= s->cfg.queue_depth) {
        int r = throttle(s, t, false, &reason, err);
        t->fn = NULL;
        fn_maybe_free(s, fn);
        return r;
    }
    enqueue(s, t);
    /* Someone may be queued while a slot is free (the timer has not served the queue yet). */
    schedule_pump(s);
    return 1;
}

int ef_sched_wait_capacity(struct ef_scheduler *s, struct ef_sched_ticket *t, ef_error *err)
{
    t->wants_capacity = true;
    if (s->closed)
        return ef_error_set(err, -ESHUTDOWN, "the controller is stopping");
    if (s->cfg.queue_depth == 0 || uv_now(s->ctl->loop) >= t->deadline_ms) {
        const char *reason;
        return throttle(s, t, true, &reason, err);
    }
    give_slot(s, t);
    enqueue(s, t);
    s->capacity_waiters++;
    s->capacity_blocked = true;
    /* The slot it gave back may serve an invocation that finds a warm container. */
    schedule_pump(s);
    return 0;
}

void ef_sched_release(struct ef_scheduler *s, struct ef_sched_ticket *t)
{
    struct ef_sched_fn *fn = t->fn;
    if (!fn)
        return;
    if (t->queued)
        dequeue(s, t);
    t->wants_capacity = false;
    give_slot(s, t);
    t->fn = NULL;
    /* A freed slot may start a queued invocation, of this function or (node-wide limit) any. */
    if (s->queued > 0)
        schedule_pump(s);
    fn_maybe_free(s, fn);
}

void ef_sched_capacity_changed(struct ef_scheduler *s)
{
    if (!s)
        return;
    s->capacity_blocked = false;
    if (s->queued > 0)
        schedule_pump(s);
}

bool ef_sched_capacity_wanted(const struct ef_scheduler *s)
{
    return s && s->capacity_waiters > 0;
}

unsigned ef_sched_in_flight(const struct ef_scheduler *s)
{
    return s ? s->in_flight : 0;
}

void ef_sched_for_each_function(const struct ef_scheduler *s,
                                void (*cb)(const char *function, unsigned in_flight,
                                           unsigned queued, void *user),
                                void *user)
{
    if (!s)
        return;
    size_t bucket = 0;
    struct ef_name_entry *pos = NULL, *e;
    while ((e = ef_name_map_next(&s->fns, &bucket, &pos)) != NULL) {
        const struct ef_sched_fn *fn = e->value;
        if (fn->in_flight || fn->queued)
            cb(fn->name, fn->in_flight, fn->queued, user);
    }
}

/* ---- the timer ---- */

/* Whether the head of `fn`'s queue can start now: a slot is free for it and, while the node is
 * out of capacity, it finds an idle warm container of its identity (so that a burst does not
 * hammer funclet with requests it must refuse). */
static bool head_can_start(const struct ef_scheduler *s, const struct ef_sched_fn *fn)
{
    const struct ef_sched_ticket *t = fn->head;
    return t && slot_free(s, fn) &&
           (!s->capacity_blocked || ef_pool_has_slot(&s->ctl->pool, t->key));
}

/* Gives queued tickets their slots in admission order across every function, while slots are
 * free: a slot freed under the node-wide limit goes to the invocation that has waited longest,
 * whichever function it is of. At most the tickets queued on entry are served: one that goes
 * back to wait is not retried without end in the same turn. */
static void serve(struct ef_scheduler *s, size_t n)
{
    unsigned budget = s->queued;
    while (budget-- > 0 && !s->closed) {
        struct ef_sched_fn *first = NULL;
        for (size_t i = 0; i < n; i++) {
            struct ef_sched_fn *fn = s->snapshot[i];
            if (head_can_start(s, fn) && (!first || fn->head->seq < first->head->seq))
                first = fn;
        }
        if (!first)
            return;
        struct ef_sched_ticket *t = first->head;
        dequeue(s, t);
        take_slot(s, t);
        t->run(t); /* may complete (and release) the ticket at once */
    }
}

/* Throttles the tickets of `fn` whose wait is over. */
static void expire(struct ef_scheduler *s, struct ef_sched_fn *fn, uint64_t now)
{
    struct ef_sched_ticket *t = fn->head, *next;
    for (; t; t = next) {
        next = t->next;
        if (t->deadline_ms > now)
            break; /* the queue is in deadline order too (see enqueue): the rest wait on */
        bool capacity = t->wants_capacity;
        dequeue(s, t);
        t->wants_capacity = capacity;
        const char *reason;
        ef_error err = {0};
        throttle(s, t, true, &reason, &err);
        t->wants_capacity = false;
        t->fn = NULL;
        t->rejected(t, 429, reason, err.msg);
        /* The callback may have completed other tickets of this queue; start over. */
        next = fn->head;
    }
}

/* The functions with a queue, copied so that callbacks may add functions meanwhile. Functions
 * are only freed at the end of the timer, so the pointers stay valid. */
static size_t take_snapshot(struct ef_scheduler *s)
{
    size_t n = 0;
    size_t bucket = 0;
    struct ef_name_entry *pos = NULL, *e;
    while ((e = ef_name_map_next(&s->fns, &bucket, &pos)) != NULL) {
        struct ef_sched_fn *fn = e->value;
        if (!fn->queued)
            continue;
        if (n == s->snapshot_cap) {
            size_t cap = s->snapshot_cap ? s->snapshot_cap * 2 : 16;
            struct ef_sched_fn **a = realloc(s->snapshot, cap * sizeof(*a));
            if (!a)
                break; /* the others are served at the next turn */
            s->snapshot = a;
            s->snapshot_cap = cap;
        }
        s->snapshot[n++] = fn;
    }
    return n;
}

static void sweep(struct ef_scheduler *s)
{
    size_t bucket = 0;
    struct ef_name_entry *pos = NULL, *e;
    while ((e = ef_name_map_next(&s->fns, &bucket, &pos)) != NULL) {
        struct ef_sched_fn *fn = e->value;
        if (fn->in_flight == 0 && fn->queued == 0) {
            ef_name_map_remove(&s->fns, fn->name);
            free(fn);
        }
    }
}

static void on_timer(uv_timer_t *timer)
{
    struct ef_scheduler *s = timer->data;
    s->pump_due = false;
    if (s->closed)
        return;
    uint64_t now = uv_now(s->ctl->loop);
    s->in_timer = true;
    size_t n = take_snapshot(s);
    for (size_t i = 0; i < n; i++)
        expire(s, s->snapshot[i], now);
    serve(s, n);
    s->in_timer = false;
    sweep(s);
    if (s->pump_due || s->closed)
        return; /* re-armed for the next turn by a callback */
    /* Sleep until the earliest wait ends. */
    uint64_t first = UINT64_MAX;
    size_t bucket = 0;
    struct ef_name_entry *pos = NULL, *e;
    while ((e = ef_name_map_next(&s->fns, &bucket, &pos)) != NULL) {
        const struct ef_sched_fn *fn = e->value;
        if (fn->head && fn->head->deadline_ms < first)
            first = fn->head->deadline_ms; /* the earliest of its queue */
    }
    if (first != UINT64_MAX)
        uv_timer_start(&s->timer, on_timer, first > now ? first - now : 1, 0);
}

static void sched_destroy(struct ef_scheduler *s)
{
    size_t bucket = 0;
    struct ef_name_entry *pos = NULL, *e;
    while ((e = ef_name_map_next(&s->fns, &bucket, &pos)) != NULL)
        free(e->value);
    ef_name_map_clear(&s->fns);
    free(s->snapshot);
    free(s);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct ef_scheduler *s = h->data;
    s->timer_open = false;
    if (s->free_on_close)
        sched_destroy(s);
}

void ef_sched_close(struct ef_scheduler *s)
{
    if (!s || s->closed)
        return;
    s->closed = true;
    /* Reject from a snapshot: the callbacks complete invocations, which release tickets. */
    s->in_timer = true;
    size_t n = take_snapshot(s);
    for (size_t i = 0; i < n; i++) {
        struct ef_sched_fn *fn = s->snapshot[i];
        while (fn->head) {
            struct ef_sched_ticket *t = fn->head;
            dequeue(s, t);
            t->fn = NULL;
            t->rejected(t, 503, NULL,
                        "the controller is stopping; the invocation did not run, retry it");
        }
    }
    s->in_timer = false;
    sweep(s);
    if (s->timer_open) {
        uv_timer_stop(&s->timer);
        uv_close((uv_handle_t *)&s->timer, on_timer_closed);
    }
}

void ef_sched_free(struct ef_scheduler *s)
{
    if (!s)
        return;
    ef_sched_close(s);
    if (s->timer_open)
        s->free_on_close = true;
    else
        sched_destroy(s);
}
