/* Warm invocations served on a runtime connection that its runner handed over (handover.h). */
#include "controller/handover.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "controller/controller.h"
#include "controller/pool.h"
#include "rapi/invocations.h"
#include "rapi/log_capture.h"
#include "rapi/runtime_api.h"

/* The runner answers runtime.handover at once; a slower answer means it is stuck. */
#define HANDOVER_TIMEOUT_MS 5000
/* A runner that refuses this often (its runtime did not have its next poll waiting in time, or
 * opens a connection per request) is not asked again for that container. */
#define MAX_REFUSALS 3
/* After the runtime's connection closed during an invocation: how long the runner has to report
 * the runtime's exit (with its status) before the runtime is ended. */
#define LOST_GRACE_MS 1000
/* What runtime.handover passes, in this order. */
enum { FD_CONNECTION, FD_OUTPUT, FD_STATUS, HANDOVER_FDS };

struct ef_handover {
    struct ef_container *c;
    struct ef_invocations invs;
    struct ef_runtime_api api;
    struct ef_log_capture capture; /* with its 64 KiB ring: the handover is heap-allocated */
    uv_timer_t deadline;           /* the earliest deadline of an invocation in flight */
    uv_timer_t teardown;           /* ef_handover_close: the next turn of the loop */
    uv_timer_t lost;               /* the connection closed with an invocation in flight */
    unsigned open_handles;         /* the timers; the handover is freed when all have closed */
    int status_fd;
    char *default_arn;
    char *close_how;
    bool closing;
    bool connection_lost; /* the runtime's connection has closed */
};

/* ---- teardown ---------------------------------------------------------------------------- */

static void on_timer_closed(uv_handle_t *handle)
{
    struct ef_handover *h = handle->data;
    if (--h->open_handles == 0) {
        free(h->default_arn);
        free(h->close_how);
        free(h);
    }
}

static void on_teardown(uv_timer_t *t)
{
    struct ef_handover *h = t->data;
    /* Whatever is left is answered as the runner's closed connection would answer it (the
     * caller then tells an OOM kill from another end, docs/rpc.md); the callbacks still find
     * the container, which is released only below. */
    ef_invocations_abort(&h->invs, EF_RPC_ERR_CLOSED,
                         h->close_how ? h->close_how : "the container was removed");
    ef_invocations_free(&h->invs, "the container was removed");
    ef_runtime_api_close(&h->api);
    ef_log_capture_close(&h->capture);
    if (h->status_fd >= 0)
        close(h->status_fd);
    h->status_fd = -1;
    struct ef_container *c = h->c;
    h->c = NULL;
    uv_close((uv_handle_t *)&h->deadline, on_timer_closed);
    uv_close((uv_handle_t *)&h->teardown, on_timer_closed);
    uv_close((uv_handle_t *)&h->lost, on_timer_closed);
    ef_pool_handover_gone(c);
}

void ef_handover_close(struct ef_handover *h, const char *how)
{
    if (!h || h->closing)
        return;
    h->closing = true;
    h->close_how = how ? strdup(how) : NULL;
    uv_timer_stop(&h->deadline);
    uv_timer_stop(&h->lost);
    uv_timer_start(&h->teardown, on_teardown, 0, 0);
}

/* ---- the runtime's end ------------------------------------------------------------------- */

/* Asks the runner to end the runtime; its exit comes back as runtime.exited. */
static void kill_runtime(struct ef_handover *h, const char *reason)
{
    struct ef_container *c = h->c;
    if (!c || !c->conn)
        return;
    cJSON *params = cJSON_CreateObject();
    if (!params || !cJSON_AddStringToObject(params, "reason", reason)) {
        cJSON_Delete(params);
        ef_warn("container %s: cannot ask its runner to end the runtime: out of memory", c->id);
        return;
    }
    if (ef_rpc_call(c->conn, "runtime.kill", params, HANDOVER_TIMEOUT_MS, NULL, NULL) < 0)
        ef_debug("container %s: its runner connection is closing", c->id);
}

/* A timed-out invocation's runtime ends once nothing else is in flight (invocations.h). */
static void on_drained(void *user)
{
    kill_runtime(user, "an invocation timed out in it");
}

/* After an init error the runtime cannot serve; the runner gives one that reports it on its own
 * some time to exit by itself, but here nothing else is in flight to wait for. */
static void on_init_failed(void *user)
{
    kill_runtime(user, "it reported an init error");
}

static void on_lost_grace_over(uv_timer_t *t)
{
    struct ef_handover *h = t->data;
    struct ef_container *c = h->c;
    if (h->closing)
        return;
    if (ef_invocations_pending(&h->invs) > 0)
        kill_runtime(h, "it closed its Runtime API connection during an invocation");
    else if (c->in_pool && c->state == EF_CONTAINER_IDLE)
        ef_pool_discard(c, "its runtime closed its Runtime API connection");
}

/* The runtime's connection has closed: the runtime exits (runtime.exited follows), the whole
 * container died (its runner's connection closes too), the runtime closed the connection
 * itself, or a request of its was refused with a close (a body above 6 MiB). On the runner's
 * path it would connect again to the runner's own server; here the container serves no further
 * invocation. For LOST_GRACE_MS the news of the runtime's or the runner's end may come and be
 * handled as on the runner's path (an exit status for the invocation in flight; a dead idle
 * container replaced); after that the runtime is ended (an invocation in flight fails with
 * that) or the idle container discarded. */
static void on_connection_lost(void *user)
{
    struct ef_handover *h = user;
    struct ef_container *c = h->c;
    if (h->closing || h->connection_lost)
        return;
    h->connection_lost = true;
    c->runtime_exited = true; /* handed out no more; discarded once idle */
    if (h->invs.in_flight.n == 0 && h->invs.queued.n > 0)
        /* Queued ones never reached the runtime: answered as undelivered, they go to another
         * container (invoke.c). */
        ef_invocations_fail_exit(&h->invs, "its Runtime API connection closed");
    if (ef_invocations_pending(&h->invs) > 0)
        ef_info("container %s: its runtime closed its Runtime API connection during an "
                "invocation",
                c->id);
    uv_timer_start(&h->lost, on_lost_grace_over, LOST_GRACE_MS, 0);
}

bool ef_handover_serving(const struct ef_handover *h)
{
    return h && !h->closing && !h->connection_lost;
}

void ef_handover_runtime_exited(struct ef_handover *h, const char *how)
{
    if (h->closing)
        return;
    /* Its last words belong to the invocations it leaves unanswered. */
    ef_log_capture_drain(&h->capture);
    ef_invocations_fail_exit(&h->invs, how);
}

/* ---- deadlines --------------------------------------------------------------------------- */

static void on_deadline(uv_timer_t *t);

/* Arms the deadline timer at the earliest deadline of an invocation (or stops it). */
static void arm_deadline(struct ef_handover *h)
{
    if (!h->closing)
        ef_invocations_arm_deadline(&h->invs, &h->deadline, on_deadline);
}

static void on_deadline(uv_timer_t *t)
{
    struct ef_handover *h = t->data;
    if (h->closing)
        return;
    size_t n = ef_invocations_expire(&h->invs, (long long)ef_now_monotonic_ms());
    if (n > 0 && !h->invs.draining && !h->closing) {
        /* As in the runner: a timed-out invocation ends its runtime (on_drained). */
        ef_warn("container %s: %zu invocation(s) reached their deadline", h->c->id, n);
        ef_invocations_drain(&h->invs);
    }
    arm_deadline(h);
}

static void on_deadline_set(void *user)
{
    arm_deadline(user);
}

/* ---- invocations ------------------------------------------------------------------------- */

int ef_handover_invoke(struct ef_handover *h, cJSON *params, long long timeout_ms,
                       ef_rpc_result_cb cb, void *user)
{
    cleanup_cjson cJSON *p = params;
    /* A failed runtime would answer at once, from inside this call: refused instead, as a
     * closed connection is. */
    if (h->closing || h->invs.failed || h->invs.draining)
        return -EPIPE;
    ef_error err = {0};
    struct ef_invocation *inv = NULL;
    long long deadline = (long long)ef_now_epoch_ms() + timeout_ms;
    int r = ef_invocation_parse(p, deadline, h->default_arn, &inv, &err);
    if (r < 0) {
        ef_warn("container %s: invocation refused: %s", h->c->id, err.msg);
        return r;
    }
    /* The Timeout counts from the hand-out, as in the runner. */
    if (!cJSON_GetObjectItemCaseSensitive(p, "deadline_ms"))
        inv->timeout_ms = timeout_ms;
    inv->req = ef_rpc_request_local(cb, user);
    if (!inv->req) {
        ef_invocation_free(inv);
        return -ENOMEM;
    }
    r = ef_invocations_submit(&h->invs, inv);
    if (r < 0) {
        ef_rpc_request_local_cancel(steal_pointer(&inv->req));
        ef_invocation_free(inv);
        return r;
    }
    arm_deadline(h);
    return 0;
}

/* ---- taking the connection --------------------------------------------------------------- */

/* Serves the descriptors runtime.handover passed (they are the handover's from now on, also on
 * failure). `result` is the runner's answer: the output written since the last invocation and
 * the runtime's peak memory so far. */
static int handover_open(struct ef_container *c, const int fds[HANDOVER_FDS], const cJSON *result,
                         struct ef_handover **ret, ef_error *err)
{
    uv_loop_t *loop = c->ctl->loop;
    struct ef_handover *h = calloc(1, sizeof(*h));
    if (!h || asprintf(&h->default_arn, "arn:aws:lambda:us-east-1:000000000000:function:%s",
                       c->function_name) < 0) {
        free(h);
        for (int i = 0; i < HANDOVER_FDS; i++)
            close(fds[i]);
        return ef_error_set(err, -ENOMEM, "out of memory");
    }
    h->c = c;
    h->status_fd = fds[FD_STATUS];
    uv_timer_init(loop, &h->deadline);
    uv_timer_init(loop, &h->teardown);
    uv_timer_init(loop, &h->lost);
    h->deadline.data = h->teardown.data = h->lost.data = h;
    h->open_handles = 3;
    ef_log_capture_init(&h->capture);
    ef_invocations_init(&h->invs, &h->capture);
    h->invs.max_in_flight = 1;
    h->invs.runtime_status_fd = h->status_fd;
    const cJSON *peak = cJSON_GetObjectItemCaseSensitive(result, "peak_rss_kb");
    if (cJSON_IsNumber(peak) && peak->valuedouble > 0)
        h->invs.peak_rss_kb = (long)peak->valuedouble;
    /* What the runtime wrote since its last invocation goes to its next one, as in the runner. */
    const cJSON *log = cJSON_GetObjectItemCaseSensitive(result, "log");
    if (cJSON_IsString(log))
        ef_log_ring_append(&h->capture.ring, log->valuestring, strlen(log->valuestring));
    h->invs.on_deadline_set = on_deadline_set;
    h->invs.on_deadline_set_user = h;
    h->invs.on_drained = on_drained;
    h->invs.on_drained_user = h;
    h->invs.on_init_failed = on_init_failed;
    h->invs.on_init_failed_user = h;
    *ret = h;
    int r = ef_log_capture_start(&h->capture, loop, fds[FD_OUTPUT], -1, err);
    if (r < 0) {
        close(fds[FD_CONNECTION]);
        return r;
    }
    return ef_runtime_api_adopt(&h->api, loop, &h->invs, fds[FD_CONNECTION], on_connection_lost, h,
                                err);
}

/* Runs the invocation that waited for the answer, if one did. */
static void send_parked(struct ef_container *c, bool usable)
{
    void (*send)(void *, bool) = c->parked_send;
    void *user = c->parked_user;
    c->parked_send = NULL;
    c->parked_user = NULL;
    if (send)
        send(user, usable);
}

/* The runner may have given the runtime's connection away without the controller taking it:
 * the container cannot serve any more. */
static void give_up_container(struct ef_container *c, const char *why)
{
    ef_warn("container %s: %s", c->id, why);
    c->handover_refused = true;
    c->runtime_exited = true;
    if (c->state == EF_CONTAINER_IDLE)
        ef_pool_discard(c, why);
    send_parked(c, false);
}

/* Checks that the descriptors are what runtime.handover passes, and makes the pipe
 * nonblocking (the capture reads it until EAGAIN). */
static int check_fds(const int fds[HANDOVER_FDS], ef_error *err)
{
    static const mode_t kinds[HANDOVER_FDS] = {S_IFSOCK, S_IFIFO, S_IFREG};
    static const char *const names[HANDOVER_FDS] = {"connection", "output pipe", "status file"};
    for (int i = 0; i < HANDOVER_FDS; i++) {
        struct stat st;
        if (fstat(fds[i], &st) < 0 || (st.st_mode & S_IFMT) != kinds[i])
            return ef_error_set(err, -EPROTO, "the runner passed something else as the %s",
                                names[i]);
    }
    int flags = fcntl(fds[FD_OUTPUT], F_GETFL);
    if (flags < 0 || fcntl(fds[FD_OUTPUT], F_SETFL, flags | O_NONBLOCK) < 0)
        return ef_error_set_errno(err, -errno, "cannot make the output pipe nonblocking");
    return 0;
}

static void on_handover_answer(ef_rpc_conn *conn, const cJSON *result,
                               const struct ef_rpc_error *error, void *user)
{
    struct ef_container *c = user;
    c->handover_pending = false;
    if (error && (error->code == EF_RPC_ERR_TIMEOUT || error->code == EF_RPC_ERR_CLOSED)) {
        /* No answer: the runner may have passed the connection, in an answer still on its way. */
        char why[300];
        snprintf(why, sizeof(why), "its runner did not answer runtime.handover: %s",
                 error->message);
        give_up_container(c, why);
        return;
    }
    if (error) {
        /* Refused: the runtime's next poll had not arrived yet, it opens a connection per
         * request, or the runner predates runtime.handover. */
        if (++c->handover_refusals >= MAX_REFUSALS || error->code == EF_RPC_METHOD_NOT_FOUND)
            c->handover_refused = true;
        ef_debug("container %s keeps its runner on the invocation path (%s): %s", c->id,
                 c->handover_refused ? "for good" : "for now", error->message);
        send_parked(c, !c->runtime_exited);
        return;
    }
    int fds[HANDOVER_FDS];
    int n = 0;
    while (n < HANDOVER_FDS && ef_rpc_conn_take_fd(conn, &fds[n]) == 0)
        n++;
    ef_rpc_conn_drop_fds(conn); /* none other is expected */
    ef_error err = {0};
    struct ef_handover *h = NULL;
    if (n < HANDOVER_FDS || !c->in_pool || check_fds(fds, &err) < 0) {
        for (int i = 0; i < n; i++)
            close(fds[i]);
        if (n < HANDOVER_FDS)
            ef_error_set(&err, -EPROTO, "the runner's answer carried %d descriptors, not %d", n,
                         HANDOVER_FDS);
    } else if (handover_open(c, fds, result, &h, &err) == 0) {
        c->handover = h;
        ef_debug("container %s: its runtime's connection is served by the controller", c->id);
        send_parked(c, true);
        return;
    }
    if (h) {
        c->handover = h;
        ef_handover_close(h, "the handover failed");
    }
    if (!c->in_pool) {
        /* Removed while the answer was on its way: the runtime ends with its container. */
        send_parked(c, false);
        return;
    }
    char why[600];
    snprintf(why, sizeof(why), "the handover of its runtime failed: %s", err.msg);
    give_up_container(c, why);
}

void ef_handover_ask(struct ef_container *c)
{
    if (!c->ctl->runtime_handover || c->handover || c->handover_pending || c->handover_refused ||
        !c->in_pool || c->state != EF_CONTAINER_IDLE || c->max_in_flight != 1 || !c->conn ||
        c->runtime_exited || c->init_failed || c->timed_out)
        return;
    /* No other message carries descriptors: any waiting now are strays, not this answer's. */
    ef_rpc_conn_drop_fds(c->conn);
    if (ef_rpc_call(c->conn, "runtime.handover", NULL, HANDOVER_TIMEOUT_MS, on_handover_answer,
                    c) == 0)
        c->handover_pending = true;
}

bool ef_handover_pending(const struct ef_container *c)
{
    return c->handover_pending;
}

void ef_handover_park(struct ef_container *c, void (*send)(void *user, bool usable), void *user)
{
    c->parked_send = send;
    c->parked_user = user;
}
