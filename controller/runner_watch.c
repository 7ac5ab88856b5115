/* The check on a runner past an invocation's Timeout: see runner_watch.h. */
#include "controller/runner_watch.h"

#include <stdbool.h>
#include <stdlib.h>

#include "common/log.h"
#include "common/rpc.h"
#include "controller/pool.h"

struct ef_runner_watch {
    uv_timer_t timer;
    struct ef_container *c;
    void (*wedged)(void *user);
    void *user;
    bool stopped;        /* the invocation was answered: nothing more to say */
    bool ping_in_flight; /* its answer (or silence) is still to come */
    bool timer_open;     /* the timer's close callback has not run yet */
    bool closing;        /* uv_close was called on the timer */
    unsigned unanswered; /* pings in a row that went unanswered */
};

static void watch_maybe_free(struct ef_runner_watch *w)
{
    if (w->stopped && !w->ping_in_flight && !w->timer_open)
        free(w);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct ef_runner_watch *w = h->data;
    w->timer_open = false;
    watch_maybe_free(w);
}

static void send_ping(struct ef_runner_watch *w);

static void on_ping(ef_rpc_conn *conn, const cJSON *result, const struct ef_rpc_error *error,
                    void *user)
{
    (void)conn;
    (void)result;
    struct ef_runner_watch *w = user;
    w->ping_in_flight = false;
    /* Any answer, an error included, comes from a live event loop; a closed connection is
     * reported to the invocation itself. The container is still allocated: the connection's
     * pending calls are answered before its on_close frees it. */
    if (!w->stopped && error && error->code == EF_RPC_ERR_TIMEOUT) {
        /* libuv runs expired timers before it reads: after a stall of the controller's own
         * loop, an answer already waiting in the socket would count as silence. The next ping
         * is answered after that read. */
        if (++w->unanswered < EF_RUNNER_WATCH_PINGS) {
            send_ping(w);
        } else {
            ef_warn("container %s of function %s: its runner did not answer %d pings of %d ms "
                    "while an invocation was past its Timeout",
                    w->c->id, w->c->function_name, EF_RUNNER_WATCH_PINGS, EF_RUNNER_WATCH_PING_MS);
            w->stopped = true;
            w->wedged(w->user);
        }
    }
    watch_maybe_free(w);
}

static void send_ping(struct ef_runner_watch *w)
{
    if (w->c->conn &&
        ef_rpc_call(w->c->conn, "runner.ping", NULL, EF_RUNNER_WATCH_PING_MS, on_ping, w) == 0)
        w->ping_in_flight = true;
}

static void on_overdue(uv_timer_t *t)
{
    struct ef_runner_watch *w = t->data;
    if (!w->stopped)
        send_ping(w);
}

struct ef_runner_watch *ef_runner_watch_start(uv_loop_t *loop, struct ef_container *c,
                                              uint64_t after_ms, void (*wedged)(void *user),
                                              void *user)
{
    struct ef_runner_watch *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->c = c;
    w->wedged = wedged;
    w->user = user;
    uv_timer_init(loop, &w->timer);
    w->timer.data = w;
    w->timer_open = true;
    uv_timer_start(&w->timer, on_overdue, after_ms, 0);
    return w;
}

void ef_runner_watch_stop(struct ef_runner_watch *w)
{
    if (!w)
        return;
    w->stopped = true;
    if (!w->closing) {
        w->closing = true;
        uv_close((uv_handle_t *)&w->timer, on_timer_closed);
    }
}
