#include "controller/housekeeping.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "controller/controller.h"
#include "controller/metrics.h"
#include "controller/pool.h"
#include "controller/scheduler.h"
#include "controller/store.h"

/* The tick: often enough for short --idle-timeout and --health-interval settings, never more
 * than ten times a second. */
#define TICK_MAX_MS 1000
#define TICK_MIN_MS 100
/* A runner answers a ping from its event loop at once; two seconds of silence is a wedged (or
 * stopped) process, not a busy one: invocations run in the runtime, not in the runner's loop.
 * Two pings in a row must go unanswered: libuv runs expired timers before it reads, so after a
 * stall of the controller's own loop one answer may still be waiting unread. */
#define PING_TIMEOUT_MS  2000
#define PINGS_UNANSWERED 2
#define LIST_TIMEOUT_MS  5000

struct ef_housekeeping {
    struct ef_controller *ctl;
    uv_timer_t timer;
    bool timer_open;
    bool closed;
    bool free_on_close;      /* freed before its timer had closed: the close callback frees it */
    uint64_t last_health_ms; /* monotonic */
    unsigned lists_in_flight;
    long cold; /* funclet's pooled cold containers at the last list; -1 before */
};

/* One container.list request: what the answer is compared with. */
struct list_req {
    struct ef_housekeeping *hk;
    uint64_t seq; /* the pool's arrivals when it was sent */
    bool resync;  /* after a (re)connection: unknown containers are given back */
};

static void on_tick(uv_timer_t *t);

int ef_housekeeping_start(struct ef_controller *ctl, struct ef_housekeeping **ret_hk, ef_error *err)
{
    struct ef_housekeeping *hk = calloc(1, sizeof(*hk));
    if (!hk)
        return ef_error_set(err, -ENOMEM, "out of memory");
    hk->ctl = ctl;
    hk->cold = -1;
    hk->last_health_ms = ef_now_monotonic_ms();
    const struct ef_sched_config *cfg = ef_sched_config(ctl->sched);
    unsigned tick = cfg->idle_timeout_ms < cfg->health_interval_ms ? cfg->idle_timeout_ms
                                                                   : cfg->health_interval_ms;
    tick /= 2;
    if (tick > TICK_MAX_MS)
        tick = TICK_MAX_MS;
    if (tick < TICK_MIN_MS)
        tick = TICK_MIN_MS;
    uv_timer_init(ctl->loop, &hk->timer);
    hk->timer.data = hk;
    hk->timer_open = true;
    uv_timer_start(&hk->timer, on_tick, tick, tick);
    *ret_hk = hk;
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct ef_housekeeping *hk = h->data;
    hk->timer_open = false;
    if (hk->free_on_close)
        free(hk);
}

void ef_housekeeping_close(struct ef_housekeeping *hk)
{
    if (!hk || hk->closed)
        return;
    hk->closed = true;
    uv_timer_stop(&hk->timer);
    uv_close((uv_handle_t *)&hk->timer, on_timer_closed);
}

void ef_housekeeping_free(struct ef_housekeeping *hk)
{
    if (!hk)
        return;
    ef_housekeeping_close(hk);
    if (hk->timer_open)
        hk->free_on_close = true;
    else
        free(hk);
}

long ef_housekeeping_cold_containers(const struct ef_housekeeping *hk)
{
    return hk ? hk->cold : -1;
}

/* ---- replacing dead containers ---- */

static void on_reborn(struct ef_container *c, const ef_error *err, void *user)
{
    struct ef_controller *ctl = user;
    if (!c) {
        /* funclet going away takes its containers along: not worth a warning. */
        if (err->code == -ENOTCONN || err->code == -ESHUTDOWN)
            ef_info("did not replace a dead container: %s", err->msg);
        else
            ef_warn("could not replace a dead container: %s", err->msg);
        return;
    }
    c->reborn = true;
    ef_metrics_container_reborn(ctl->metrics);
    ef_info("container %s replaces a dead one of function %s (version %s)", c->id, c->function_name,
            c->version);
    ef_pool_release(c); /* warm and idle: the next invocation finds it */
}

void ef_housekeeping_reborn(struct ef_housekeeping *hk, const char *function, const char *version,
                            const char *key, bool died_unused)
{
    if (!hk || hk->closed)
        return;
    struct ef_controller *ctl = hk->ctl;
    if (ctl->shutting_down || !ef_funclet_connected(ctl->funclet))
        return;
    if (died_unused) {
        ef_warn("not replacing the container of function %s (version %s) again: its replacement "
                "died before serving an invocation",
                function, version);
        return;
    }
    struct ef_function *fn = NULL;
    ef_error err = {0};
    if (ef_store_get_function_version(ctl->store, function, version, &fn, &err) < 0)
        return; /* deleted meanwhile: nothing to replace */
    cleanup_free char *current = ef_pool_function_key(fn);
    if (!current || strcmp(current, key) != 0) {
        ef_function_free(fn);
        return; /* updated meanwhile: the next invocation starts the new identity */
    }
    int r = ef_pool_spawn(ctl, fn, key, on_reborn, ctl, &err);
    ef_function_free(fn);
    if (r < 0)
        ef_warn("could not replace a dead container of function %s: %s", function, err.msg);
}

/* ---- health checks ---- */

static void ping(struct ef_container *c);

static void on_ping(ef_rpc_conn *conn, const cJSON *result, const struct ef_rpc_error *error,
                    void *user)
{
    (void)conn;
    (void)result;
    struct ef_container *c = user; /* alive: its connection's on_close runs after this */
    c->ping_in_flight = false;
    /* Any answer, "method not found" included, comes from a live event loop. A closed connection
     * is the pool's business (on_close); a busy container has its invocation's deadline. */
    if (!error || error->code != EF_RPC_ERR_TIMEOUT) {
        c->pings_unanswered = 0;
        return;
    }
    if (!c->in_pool || c->state != EF_CONTAINER_IDLE) {
        c->pings_unanswered = 0; /* busy now: its invocation's deadline and watch cover it */
        return;
    }
    if (++c->pings_unanswered < PINGS_UNANSWERED) {
        ping(c);
        return;
    }
    char why[160];
    snprintf(why, sizeof(why), "its runner did not answer %d health checks of %d ms",
             PINGS_UNANSWERED, PING_TIMEOUT_MS);
    ef_warn("container %s of function %s: %s", c->id, c->function_name, why);
    ef_pool_discard_dead(c, why);
}

static void ping(struct ef_container *c)
{
    if (!c->conn || c->ping_in_flight)
        return;
    if (ef_rpc_call(c->conn, "runner.ping", NULL, PING_TIMEOUT_MS, on_ping, c) == 0)
        c->ping_in_flight = true;
    else
        c->pings_unanswered = 0;
}

/* The answer's entry for container `id`, or NULL. */
static const cJSON *list_entry(const cJSON *list, const char *id)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, list)
    {
        const cJSON *eid = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (cJSON_IsString(eid) && strcmp(eid->valuestring, id) == 0)
            return e;
    }
    return NULL;
}

static const char *entry_string(const cJSON *e, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, name);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* Compares funclet's list with the pool: containers funclet no longer has, or lists as exited,
 * are dropped; on a re-sync, warm containers funclet has and the pool does not know (left by a
 * previous controller, or whose destroy could not be sent) are destroyed. funclet's own cold
 * pool and containers it is still creating are its business. */
static void compare(struct ef_housekeeping *hk, const cJSON *list, const struct list_req *rq)
{
    struct ef_controller *ctl = hk->ctl;
    long cold = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, list)
    {
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "pooled")) &&
            strcmp(entry_string(e, "state"), "cold") == 0)
            cold++;
    }
    hk->cold = cold;

    struct ef_container *c, *next;
    for (c = ctl->pool.head; c; c = next) {
        next = c->next;
        if (c->seq > rq->seq)
            continue; /* it arrived after the list was asked for */
        const cJSON *entry = list_entry(list, c->id);
        if (!entry) {
            ef_pool_discard(c, "funclet no longer has it");
        } else if (strcmp(entry_string(entry, "state"), "exited") == 0) {
            ef_pool_discard_dead(c, "funclet lists its runner as exited");
        }
    }
    if (!rq->resync)
        return;
    cJSON_ArrayForEach(e, list)
    {
        const char *id = entry_string(e, "id");
        const char *state = entry_string(e, "state");
        if (!id[0] || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "pooled")) ||
            ef_pool_find(&ctl->pool, id))
            continue;
        if (strcmp(state, "warm") != 0 && strcmp(state, "cold") != 0 &&
            strcmp(state, "exited") != 0)
            continue;
        ef_info("container %s (%s) is not this controller's; giving it back to funclet", id, state);
        ef_pool_destroy_unknown(ctl, id);
    }
}

static void on_list(ef_rpc_conn *conn, const cJSON *result, const struct ef_rpc_error *error,
                    void *user)
{
    (void)conn;
    struct list_req *rq = user;
    struct ef_housekeeping *hk = rq->hk;
    hk->lists_in_flight--;
    if (error) {
        if (error->code != EF_RPC_ERR_CLOSED)
            ef_warn("funclet's container.list failed: %s", error->message);
        ef_metrics_funclet_error(hk->ctl->metrics, "container.list");
    } else if (!hk->closed && !hk->ctl->shutting_down) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(result, "containers");
        if (cJSON_IsArray(list))
            compare(hk, list, rq);
        else
            ef_warn("funclet's container.list answer has no containers array");
    }
    free(rq);
}

static void send_list(struct ef_housekeeping *hk, bool resync)
{
    struct list_req *rq = malloc(sizeof(*rq));
    if (!rq)
        return;
    rq->hk = hk;
    rq->seq = hk->ctl->pool.seq;
    rq->resync = resync;
    if (ef_funclet_call(hk->ctl->funclet, "container.list", NULL, LIST_TIMEOUT_MS, on_list, rq) <
        0) {
        free(rq);
        return;
    }
    hk->lists_in_flight++;
}

void ef_housekeeping_funclet_connected(struct ef_housekeeping *hk)
{
    if (!hk || hk->closed)
        return;
    send_list(hk, true);
}

static void health_check(struct ef_housekeeping *hk)
{
    if (hk->lists_in_flight == 0)
        send_list(hk, false);
    for (struct ef_container *c = hk->ctl->pool.head; c; c = c->next)
        if (c->state == EF_CONTAINER_IDLE)
            ping(c);
}

/* ---- the tick ---- */

static void cool_down(struct ef_housekeeping *hk, uint64_t now)
{
    struct ef_controller *ctl = hk->ctl;
    const struct ef_sched_config *cfg = ef_sched_config(ctl->sched);
    struct ef_container *c, *next;
    for (c = ctl->pool.head; c; c = next) {
        next = c->next;
        if (c->state != EF_CONTAINER_IDLE || now - c->idle_since < cfg->idle_timeout_ms)
            continue;
        char why[120];
        snprintf(why, sizeof(why), "idle for %llu ms (--idle-timeout %u ms)",
                 (unsigned long long)(now - c->idle_since), cfg->idle_timeout_ms);
        ef_metrics_container_retired(ctl->metrics, EF_RETIRE_IDLE);
        ef_pool_retire(c, why, cfg->cooldown_reset);
    }
}

static void on_tick(uv_timer_t *t)
{
    struct ef_housekeeping *hk = t->data;
    struct ef_controller *ctl = hk->ctl;
    if (hk->closed || ctl->shutting_down)
        return;
    uint64_t now = ef_now_monotonic_ms();
    cool_down(hk, now);
    const struct ef_sched_config *cfg = ef_sched_config(ctl->sched);
    if (now - hk->last_health_ms >= cfg->health_interval_ms) {
        hk->last_health_ms = now;
        health_check(hk);
    }
    /* Memory may have been freed outside the controller's view (another client of funclet, a
     * container that ended): let invocations waiting for capacity try again. */
    if (ef_sched_capacity_wanted(ctl->sched))
        ef_sched_capacity_changed(ctl->sched);
}
