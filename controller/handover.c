/* Warm invocations served on a runtime connection that its runner handed over (handover.h). */
#include "controller/handover.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
/* What runtime.handover passes, in this order. */
enum { FD_CONNECTION, FD_OUTPUT, FD_STATUS, HANDOVER_FDS };

struct ef_handover {
    struct ef_container *c;
    struct ef_invocations invs;
    struct ef_runtime_api api;
    struct ef_log_capture capture; /* last: it holds the 64 KiB ring */
    uv_timer_t deadline;           /* the earliest deadline of an invocation in flight */
    uv_timer_t teardown;           /* ef_handover_close: the next turn of the loop */
    unsigned open_handles;         /* the two timers; the handover is freed when both closed */
    int status_fd;
    char *default_arn;
    char *close_how;
    bool closing;
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
    /* Answers whatever is left: their callbacks still find the container, which is released
     * only below. */
    ef_invocations_free(&h->invs, h->close_how ? h->close_how : "the container was removed");
    ef_runtime_api_close(&h->api);
    ef_log_capture_close(&h->capture);
    if (h->status_fd >= 0)
        close(h->status_fd);
    h->status_fd = -1;
    struct ef_container *c = h->c;
    h->c = NULL;
    uv_close((uv_handle_t *)&h->deadline, on_timer_closed);
    uv_close((uv_handle_t *)&h->teardown, on_timer_closed);
    ef_pool_handover_gone(c);
}

void ef_handover_close(struct ef_handover *h, const char *how)
{
    if (!h || h->closing)
        return;
    h->closing = true;
    h->close_how = how ? strdup(how) : NULL;
    uv_timer_stop(&h->deadline);
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
    if (h->closing)
        return;
    long long next = ef_invocations_next_deadline(&h->invs);
    if (next == 0) {
        uv_timer_stop(&h->deadline);
        return;
    }
    long long now = (long long)ef_now_epoch_ms();
    uv_timer_start(&h->deadline, on_deadline, next > now ? (uint64_t)(next - now) : 0, 0);
}

static void on_deadline(uv_timer_t *t)
{
    struct ef_handover *h = t->data;
    if (h->closing)
        return;
    size_t n = ef_invocations_expire(&h->invs, (long long)ef_now_epoch_ms());
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
    h->deadline.data = h->teardown.data = h;
    h->open_handles = 2;
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
    return ef_runtime_api_adopt(&h->api, loop, &h->invs, fds[FD_CONNECTION], err);
}

/* Runs the invocation that waited for the answer, if one did. */
static void send_parked(struct ef_container *c)
{
    void (*send)(void *) = c->parked_send;
    void *user = c->parked_user;
    c->parked_send = NULL;
    c->parked_user = NULL;
    if (send)
        send(user);
}

static void on_handover_answer(ef_rpc_conn *conn, const cJSON *result,
                               const struct ef_rpc_error *error, void *user)
{
    struct ef_container *c = user;
    c->handover_pending = false;
    if (error) {
        /* Refused for good: the runtime does not qualify (one connection per request, several
         * connections), or the runner predates runtime.handover. */
        c->handover_refused = true;
        ef_debug("container %s keeps its runner on the invocation path: %s", c->id, error->message);
        send_parked(c);
        return;
    }
    int fds[HANDOVER_FDS];
    int n = 0;
    while (n < HANDOVER_FDS && ef_rpc_conn_take_fd(conn, &fds[n]) == 0)
        n++;
    ef_error err = {0};
    struct ef_handover *h = NULL;
    if (n < HANDOVER_FDS) {
        for (int i = 0; i < n; i++)
            close(fds[i]);
        ef_error_set(&err, -EPROTO, "the runner's answer carried %d descriptors, not %d", n,
                     HANDOVER_FDS);
    } else if (!c->in_pool) {
        /* Removed while the answer was on its way: the runtime ends with its container. */
        for (int i = 0; i < n; i++)
            close(fds[i]);
        send_parked(c);
        return;
    } else if (handover_open(c, fds, result, &h, &err) == 0) {
        c->handover = h;
        ef_debug("container %s: its runtime's connection is served by the controller", c->id);
        send_parked(c);
        return;
    }
    /* The runner gave the runtime's connection away: without it the runtime cannot serve. */
    char why[600];
    snprintf(why, sizeof(why), "the handover of its runtime failed: %s", err.msg);
    ef_warn("container %s: %s", c->id, why);
    c->handover_refused = true;
    if (h) {
        c->handover = h;
        ef_handover_close(h, why);
    }
    if (c->state == EF_CONTAINER_IDLE)
        ef_pool_discard(c, why);
    else
        c->runtime_exited = true; /* the parked invocation goes elsewhere */
    send_parked(c);
}

void ef_handover_ask(struct ef_container *c)
{
    if (!c->ctl->runtime_handover || c->handover || c->handover_pending || c->handover_refused ||
        !c->in_pool || c->state != EF_CONTAINER_IDLE || c->max_in_flight != 1 || !c->conn ||
        c->runtime_exited || c->init_failed || c->timed_out)
        return;
    if (ef_rpc_call(c->conn, "runtime.handover", NULL, HANDOVER_TIMEOUT_MS, on_handover_answer,
                    c) == 0)
        c->handover_pending = true;
}

bool ef_handover_pending(const struct ef_container *c)
{
    return c->handover_pending;
}

void ef_handover_park(struct ef_container *c, void (*send)(void *user), void *user)
{
    c->parked_send = send;
    c->parked_user = user;
}
