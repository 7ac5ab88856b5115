#include "controller/invoke.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <uv.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "controller/base64.h"
#include "controller/code_lane.h"
#include "controller/controller.h"
#include "controller/function_config.h"
#include "controller/function_logs.h"
#include "controller/metrics.h"
#include "controller/handover.h"
#include "controller/pool.h"
#include "controller/request_id.h"
#include "controller/runner_watch.h"
#include "controller/scheduler.h"
#include "controller/store.h"

/* The runner has this long beyond the function's timeout to report on its own before the
 * controller declares the invocation timed out. */
#define INVOKE_GRACE_MS 500
/* What the runner allows a runtime that has not polled yet, on top of the Timeout (Lambda's
 * init limit; runner/init.c). */
#define INIT_ALLOWANCE_MS 10000
/* How often one invocation is placed again after reaching a container whose runner was
 * draining after a timeout: each such container takes no more calls, so even a second is rare;
 * beyond three, something is wrong. */
#define MAX_REDIRECTS 3
/* Rounds of reclaiming other functions' idle containers one placement may go through before it
 * waits for capacity: each round frees at least the memory the function needs, so more than a
 * couple means funclet's capacity is taken by something else. */
#define MAX_RECLAIM_ROUNDS 3
/* How long the answer for a runtime killed by SIGKILL waits for funclet's container.oom: the
 * runner's answer and funclet's notification travel on two sockets, and funclet sees the kill
 * counter within milliseconds of the kill (docs/rpc.md). */
#define OOM_WAIT_MS 100
/* How the runner words an exit by SIGKILL, the OOM killer's signal. */
#define KILLED_STATUS "signal: killed"

struct ef_invocation {
    struct ef_sched_ticket ticket; /* its place in the scheduler (first: see from_ticket) */
    struct ef_controller *ctl;
    struct ef_function *fn;
    char *key;
    char request_id[EF_REQUEST_ID_LEN + 1];
    char *payload;
    char *client_context;   /* NULL when none */
    char *cognito_identity; /* NULL when none */
    struct ef_container *c;
    /* Sent through the runner: the check on it past the Timeout (runner_watch.h). */
    struct ef_runner_watch *watch;
    uint64_t t_spawn_ns; /* when a cold start began, 0 when warm */
    uint64_t t_invoke_ns;
    double init_ms;
    bool warm;          /* the container came from the idle pool */
    bool retried;       /* already moved once to a fresh container */
    bool respawned;     /* already started again after a runner refused runtime.start */
    unsigned redirects; /* placed again after reaching a container draining after a timeout */
    unsigned reclaims;  /* reclaim rounds in the current placement */
    bool waited_for_capacity;
    bool code_held;         /* ef_code_lane_hold of fn's code */
    bool log_before_done;   /* ef_invoke_extra */
    ef_invoke_done_cb done; /* NULL once detached */
    void *user;

    /* A runtime that ended under the invocation: how it is answered (complete_exit), kept while
     * the answer waits for container.oom. */
    struct {
        char *doc;     /* the Runtime.ExitError document */
        char *message; /* its errorMessage */
        char *log;     /* the runtime's output, NULL when none */
        long long memory_mb;
        double duration_ms;
        char container[64];         /* funclet's id of the container it ran in */
        struct ef_invocation *next; /* in ctl->pool.oom_holds while held */
        bool timer_open;            /* the timer is initialised and not yet closed */
        uv_timer_t timer;
    } exit;
};

char *ef_function_arn(const char *name)
{
    char *arn = NULL;
    if (asprintf(&arn, "arn:aws:lambda:us-east-1:000000000000:function:%s", name) < 0)
        return NULL;
    return arn;
}

static struct ef_invocation *from_ticket(struct ef_sched_ticket *t)
{
    return (struct ef_invocation *)((char *)t - offsetof(struct ef_invocation, ticket));
}

const char *ef_invoke_throttle_reason(int code)
{
    if (code == -EDQUOT)
        return EF_REASON_RESERVED;
    if (code == -EAGAIN)
        return EF_REASON_NODE;
    return NULL;
}

static void on_exit_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

/* Frees an invocation, giving its concurrency slot (or its place in a queue) back. */
static void invocation_free(struct ef_invocation *inv)
{
    ef_runner_watch_stop(steal_pointer(&inv->watch));
    ef_sched_release(inv->ctl->sched, &inv->ticket);
    if (inv->code_held)
        ef_code_lane_release(inv->ctl->code_lane, inv->fn->code_sha256_hex);
    ef_function_free(inv->fn);
    free(inv->key);
    free(inv->payload);
    free(inv->client_context);
    free(inv->cognito_identity);
    free(inv->exit.doc);
    free(inv->exit.message);
    free(inv->exit.log);
    if (inv->exit.timer_open) {
        /* The struct holds the timer: it goes with the timer's close callback. */
        inv->exit.timer_open = false;
        uv_close((uv_handle_t *)&inv->exit.timer, on_exit_timer_closed);
        return;
    }
    free(inv);
}

/* How an invocation that reached its function ended, for its log entry. */
struct log_note {
    const char *extra;      /* a line after the output (the timeout or exit message) */
    const char *status;     /* REPORT's Status: "timeout" or "error"; NULL when fine */
    const char *error_type; /* REPORT's Error Type */
};

/* Appends the invocation's entry to the function's log, and hands it to the caller in
 * o->framed_log (for X-Amz-Log-Result). Service errors never reached the function: no entry. */
/* Counts the invocation in the metrics by how it ended. */
static void record(struct ef_invocation *inv, const struct ef_invoke_outcome *o,
                   const struct log_note *note)
{
    enum ef_metrics_outcome outcome;
    if (o->status == EF_INVOKE_SERVICE_ERROR)
        outcome = o->http_status == 429 ? EF_OUTCOME_THROTTLED : EF_OUTCOME_SERVICE_ERROR;
    else if (note && note->status && strcmp(note->status, "timeout") == 0)
        outcome = EF_OUTCOME_TIMEOUT;
    else if (o->status == EF_INVOKE_FUNCTION_ERROR)
        outcome = EF_OUTCOME_ERROR;
    else
        outcome = EF_OUTCOME_SUCCESS;
    double duration_s = o->status == EF_INVOKE_SERVICE_ERROR ? -1 : o->duration_ms / 1000.0;
    ef_metrics_invocation(inv->ctl->metrics, inv->fn->name, outcome, duration_s);
}

/* Appends an invocation's framed log entry (NULL: none) to its function's log. */
static void append_log(const struct ef_invocation *inv, const char *framed)
{
    ef_error err = {0};
    if (framed && inv->ctl->logs &&
        ef_function_logs_append(inv->ctl->logs, inv->fn->name, framed, strlen(framed), &err) < 0)
        ef_warn("cannot keep the log of invocation %s: %s", inv->request_id, err.msg);
}

static void complete_logged(struct ef_invocation *inv, struct ef_invoke_outcome *o,
                            const struct log_note *note)
{
    record(inv, o, note);
    cleanup_free char *framed = NULL;
    if (o->status != EF_INVOKE_SERVICE_ERROR) {
        struct ef_log_report rep = {
            .request_id = inv->request_id,
            .version = inv->fn->version,
            .output = o->log,
            .extra = note ? note->extra : NULL,
            .status = note ? note->status : NULL,
            .error_type = note ? note->error_type : NULL,
            .duration_ms = o->duration_ms,
            .init_ms = o->init_ms,
            .memory_size_mb = inv->fn->memory_mb,
            .max_memory_used_mb = o->max_memory_mb,
        };
        framed = ef_function_log_frame(&rep);
        o->framed_log = framed;
    }
    /* Normally after the answer, so that the caller does not wait for the write; still before
     * the loop reads another request, so a later GET .../logs finds the entry. */
    if (inv->log_before_done)
        append_log(inv, framed);
    if (inv->done)
        inv->done(o, inv->user);
    if (!inv->log_before_done)
        append_log(inv, framed);
    invocation_free(inv);
}

static void complete(struct ef_invocation *inv, struct ef_invoke_outcome *o)
{
    complete_logged(inv, o, NULL);
}

static void complete_service_error_reason(struct ef_invocation *inv, int status, const char *type,
                                          const char *reason, const char *message)
{
    struct ef_invoke_outcome o = {
        .status = EF_INVOKE_SERVICE_ERROR,
        .http_status = status,
        .error_type = type,
        .reason = reason,
        .message = message,
    };
    complete(inv, &o);
}

static void complete_service_error(struct ef_invocation *inv, int status, const char *type,
                                   const char *message)
{
    complete_service_error_reason(inv, status, type, NULL, message);
}

/* Completes with a function error whose document is {"errorMessage": ..., "errorType": ...}
 * (errorType omitted when NULL, as Lambda does for timeouts). `log` is the runtime's output, when
 * the runner sent it; `note` how the log entry ends. */
static void complete_function_error(struct ef_invocation *inv, double duration_ms,
                                    const char *error_type, const char *message, const char *log,
                                    long long max_memory_mb, const struct log_note *note)
{
    cleanup_cjson cJSON *doc = cJSON_CreateObject();
    cleanup_free char *text = NULL;
    if (doc && cJSON_AddStringToObject(doc, "errorMessage", message) &&
        (!error_type || cJSON_AddStringToObject(doc, "errorType", error_type)))
        text = cJSON_PrintUnformatted(doc);
    if (!text) {
        complete_service_error(inv, 500, "ServiceException", "out of memory");
        return;
    }
    struct ef_invoke_outcome o = {
        .status = EF_INVOKE_FUNCTION_ERROR,
        .payload = text,
        .payload_len = strlen(text),
        .log = log,
        .duration_ms = duration_ms,
        .init_ms = inv->init_ms,
        .max_memory_mb = max_memory_mb,
    };
    complete_logged(inv, &o, note);
}

/* Completes an invocation whose runtime ended under it (inv->exit is filled). An end by the
 * kernel's OOM killer is Lambda's Runtime.OutOfMemory, worded as Lambda does ("RequestId: <id>
 * Error: Runtime exited with error: signal: killed"), with the function's whole memory as its
 * Max Memory Used (the container reached its limit); any other end is Runtime.ExitError with the
 * runner's document. Either is logged after the runtime's last output, message then type. */
static void complete_exit(struct ef_invocation *inv, bool oom)
{
    const char *type = oom ? "Runtime.OutOfMemory" : "Runtime.ExitError";
    const char *doc = inv->exit.doc, *message = inv->exit.message;
    long long memory_mb = inv->exit.memory_mb;
    char oom_message[EF_REQUEST_ID_LEN + 96];
    cleanup_free char *oom_doc = NULL;
    if (oom) {
        snprintf(oom_message, sizeof(oom_message),
                 "RequestId: %s Error: Runtime exited with error: " KILLED_STATUS, inv->request_id);
        cleanup_cjson cJSON *o = cJSON_CreateObject();
        if (o && cJSON_AddStringToObject(o, "errorType", type) &&
            cJSON_AddStringToObject(o, "errorMessage", oom_message))
            oom_doc = cJSON_PrintUnformatted(o);
        if (!oom_doc) {
            complete_service_error(inv, 500, "ServiceException", "out of memory");
            return;
        }
        doc = oom_doc;
        message = oom_message;
        if (memory_mb < inv->fn->memory_mb)
            memory_mb = inv->fn->memory_mb;
        ef_info("invocation %s of %s ran out of memory (%lld MB) in container %s", inv->request_id,
                inv->fn->name, (long long)inv->fn->memory_mb, inv->exit.container);
    }
    cleanup_free char *extra = NULL;
    if (asprintf(&extra, "%s\n%s", message, type) < 0)
        extra = NULL;
    struct ef_invoke_outcome o = {
        .status = EF_INVOKE_FUNCTION_ERROR,
        .payload = doc,
        .payload_len = strlen(doc),
        .log = inv->exit.log,
        .duration_ms = inv->exit.duration_ms,
        .init_ms = inv->init_ms,
        .max_memory_mb = memory_mb,
    };
    const struct log_note note = {.extra = extra, .status = "error", .error_type = type};
    complete_logged(inv, &o, &note);
}

/* Takes the list link of a held invocation out of ctl->pool.oom_holds. */
static void unhold(struct ef_invocation *inv)
{
    struct ef_invocation **pp = &inv->ctl->pool.oom_holds;
    while (*pp && *pp != inv)
        pp = &(*pp)->exit.next;
    if (*pp)
        *pp = inv->exit.next;
    inv->exit.next = NULL;
}

static void on_oom_wait_over(uv_timer_t *t)
{
    struct ef_invocation *inv = t->data;
    unhold(inv);
    complete_exit(inv, false);
}

/* Waits up to OOM_WAIT_MS for funclet's container.oom (ef_invoke_container_oom) before answering
 * as an exit: a timer, never a wait on the loop. */
static void hold_for_oom(struct ef_invocation *inv)
{
    if (!inv->exit.timer_open) {
        uv_timer_init(inv->ctl->loop, &inv->exit.timer);
        inv->exit.timer.data = inv;
        inv->exit.timer_open = true;
    }
    if (uv_timer_start(&inv->exit.timer, on_oom_wait_over, OOM_WAIT_MS, 0) < 0) {
        complete_exit(inv, false);
        return;
    }
    inv->exit.next = inv->ctl->pool.oom_holds;
    inv->ctl->pool.oom_holds = inv;
}

/* Records how the runtime ended under the invocation, in container `c` (discarded here, being
 * dead), and answers: at once as Runtime.OutOfMemory when funclet has already reported an OOM
 * kill in the container; after a short wait for that report when the end may be one (a SIGKILL,
 * or a runner that went away without a status); at once as Runtime.ExitError otherwise. `doc`
 * NULL builds the Runtime.ExitError document from `message`. */
static void finish_exit(struct ef_invocation *inv, struct ef_container *c, const char *doc,
                        const char *message, const char *log, long long memory_mb,
                        double duration_ms, bool maybe_oom, const char *why)
{
    bool oom = c->oom_killed;
    /* A timeout in the container does not end this invocation: the runner kills a draining
     * runtime only once its last invocation has ended. So an exit here is the runtime's own
     * (a crash, or the OOM killer, which a handler still running after its timeout may well
     * provoke), and it is reported like any other. */
    if (c->timed_out)
        ef_info("invocation %s: the runtime ended while its container was draining after another "
                "invocation timed out",
                inv->request_id);
    snprintf(inv->exit.container, sizeof(inv->exit.container), "%s", c->id);
    ef_pool_discard(c, why);
    cleanup_free char *built = NULL;
    if (!doc) {
        cleanup_cjson cJSON *o = cJSON_CreateObject();
        if (o && cJSON_AddStringToObject(o, "errorType", "Runtime.ExitError") &&
            cJSON_AddStringToObject(o, "errorMessage", message))
            built = cJSON_PrintUnformatted(o);
        doc = built;
    }
    inv->exit.doc = doc ? strdup(doc) : NULL;
    inv->exit.message = strdup(message);
    inv->exit.log = log ? strdup(log) : NULL;
    inv->exit.memory_mb = memory_mb;
    inv->exit.duration_ms = duration_ms;
    if (!inv->exit.doc || !inv->exit.message || (log && !inv->exit.log)) {
        complete_service_error(inv, 500, "ServiceException", "out of memory");
        return;
    }
    if (oom)
        complete_exit(inv, true);
    else if (maybe_oom && !inv->ctl->shutting_down)
        hold_for_oom(inv);
    else
        complete_exit(inv, false);
}

void ef_invoke_container_oom(struct ef_controller *ctl, const char *id)
{
    struct ef_container *c = ef_pool_find(&ctl->pool, id);
    /* Only a kill during an invocation is that invocation's: an idle container's was of a
     * process left running, and the next invocation must not be blamed for it. */
    if (c && c->state == EF_CONTAINER_BUSY)
        c->oom_killed = true;
    struct ef_invocation *inv = ctl->pool.oom_holds;
    while (inv) {
        struct ef_invocation *next = inv->exit.next;
        if (strcmp(inv->exit.container, id) == 0) {
            unhold(inv);
            complete_exit(inv, true);
        }
        inv = next;
    }
}

/* Whether `text` ends with `suffix`. */
static bool ends_with(const char *text, const char *suffix)
{
    size_t n = strlen(text), m = strlen(suffix);
    return n >= m && strcmp(text + n - m, suffix) == 0;
}

static void format_now_iso(char *buf, size_t len)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03dZ", (int)(tv.tv_usec / 1000));
}

static void on_spawned(struct ef_container *c, const ef_error *err, void *user);
static int spawn(struct ef_invocation *inv, ef_error *err);

/* The invocation ran into its deadline (the runner said so, or did not answer in time): Lambda's
 * timeout error. The handler may still be running, so the container is not used again: it
 * drains (c->timed_out) — the other invocations in flight in it (per-container concurrency) run
 * to their own end, and the last of them discards it (ef_pool_release); with none, that is
 * now. */
static void complete_timeout(struct ef_invocation *inv, struct ef_container *c, double duration_ms,
                             const char *log, long long max_memory_mb)
{
    char when[64], msg[200];
    format_now_iso(when, sizeof(when));
    snprintf(msg, sizeof(msg), "%s %s Task timed out after %lld.00 seconds", when, inv->request_id,
             (long long)inv->fn->timeout_s);
    if (c->in_flight > 1 && c->in_pool)
        ef_info("invocation %s timed out in container %s: it takes no new invocation and is "
                "discarded once the %u others in flight end",
                inv->request_id, c->id, c->in_flight - 1);
    c->timed_out = true;
    ef_pool_release(c);
    const struct log_note note = {.extra = msg, .status = "timeout"};
    complete_function_error(inv, duration_ms, NULL, msg, log, max_memory_mb, &note);
}

/* Maps a failed spawn onto the service error the caller sees. Only the scheduler throttles
 * (429, a full queue or a wait that ran out): a runner that refused a new runtime twice
 * (-EAGAIN) or a start that failed is the service's error, not a reason for the client to back
 * off. */
static void complete_spawn_failure(struct ef_invocation *inv, const ef_error *err)
{
    switch (err->code) {
    case -ENOTCONN:
    case -ESHUTDOWN:
        complete_service_error(inv, 503, "ServiceException", err->msg);
        break;
    default:
        complete_service_error(inv, 500, "ServiceException", err->msg);
        break;
    }
}

/* The container could not start the function's runtime because of the function's own code: a
 * provided runtime's `bootstrap` that is missing or cannot be executed (ef_pool_spawn's -ENOEXEC,
 * whose message says why as Lambda words it). Lambda answers that as the function's error,
 * Runtime.InvalidEntrypoint, and logs it; the container was discarded by the pool. */
static void complete_invalid_entrypoint(struct ef_invocation *inv, const ef_error *err)
{
    static const char type[] = "Runtime.InvalidEntrypoint";
    inv->init_ms = (double)(uv_hrtime() - inv->t_spawn_ns) / 1e6;
    char message[EF_REQUEST_ID_LEN + sizeof(err->msg) + 32];
    snprintf(message, sizeof(message), "RequestId: %s Error: %s", inv->request_id, err->msg);
    cleanup_free char *extra = NULL;
    if (asprintf(&extra, "%s\n%s", message, type) < 0)
        extra = NULL;
    ef_info("invocation %s of %s: %s (%s)", inv->request_id, inv->fn->name, err->msg, type);
    const struct log_note note = {.extra = extra, .status = "error", .error_type = type};
    complete_function_error(inv, 0, type, message, NULL, -1, &note);
}

/* The runtime of a warm container had died before this invocation reached it (the runner's
 * runtime.exited notification was still on its way): the invocation never ran, so it is moved
 * once to a fresh container instead of failing. */
static void retry_on_fresh_container(struct ef_invocation *inv)
{
    ef_info("invocation %s met a container whose runtime had already exited; retrying it on a "
            "new container",
            inv->request_id);
    inv->retried = true;
    ef_error err = {0};
    if (spawn(inv, &err) < 0)
        complete_spawn_failure(inv, &err);
}

static int place(struct ef_invocation *inv, ef_error *err);

/* The invocation was sent to a warm container (one serving several invocations at once) whose
 * runtime had failed its init, and another invocation had already been answered with that error
 * when it arrived (the runner said "late"): it never waited for that init, so, as Lambda runs
 * init again for the next invocation, it is placed once more (never on that container) instead
 * of getting the error of another invocation's init. The runtime never took it: at most once
 * holds. Invocations that started the container or joined its start share its init, and its
 * error. */
static void retry_after_init_error(struct ef_invocation *inv)
{
    ef_info("invocation %s reached a container whose runtime had already failed its init; "
            "placing it again",
            inv->request_id);
    inv->retried = true;
    inv->init_ms = 0;
    ef_error err = {0};
    if (place(inv, &err) < 0)
        complete_spawn_failure(inv, &err);
}

/* Whether the runner refused the invocation because its runtime is draining after a timeout
 * (docs/rpc.md): the event never reached the runtime. A busy refusal from a container the
 * controller already knows to be draining is one too, even without the data (a runner short of
 * memory may send the error bare): discarding the container would end its other invocations. */
static bool refused_as_draining(const struct ef_container *c, const struct ef_rpc_error *error)
{
    return error->code == EF_RPC_ERR_BUSY &&
           (c->timed_out ||
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(error->data, "draining")));
}

/* The invocation was sent to container `c` before the controller learned that an invocation
 * timed out in it, and its runner refused it: it gives its slot back (the container drains)
 * and is placed again, on another warm container or a new one. */
static void redirect_from_draining(struct ef_invocation *inv, struct ef_container *c)
{
    c->timed_out = true;
    ef_pool_release(c);
    if (++inv->redirects > MAX_REDIRECTS) {
        complete_service_error(inv, 500, "ServiceException",
                               "the invocation reached several containers that were ending after "
                               "a timeout; retry it");
        return;
    }
    ef_info("invocation %s reached container %s after an invocation timed out in it; placing it "
            "again",
            inv->request_id, c->id);
    ef_error err = {0};
    if (place(inv, &err) < 0)
        complete_spawn_failure(inv, &err);
}

/* Whether `text` (of `len` bytes) is padded base64 of the standard alphabet and nothing else: no
 * whitespace, a length that is a multiple of 4, '=' only as the last one or two characters.
 * ef_base64_decode() is lenient with whitespace; a runner's answer must be exact. */
static bool strict_base64(const char *text, size_t len)
{
    if (len % 4 != 0)
        return false;
    size_t pad = 0;
    while (pad < 2 && pad < len && text[len - 1 - pad] == '=')
        pad++;
    for (size_t i = 0; i < len - pad; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '+' || ch == '/'))
            return false;
    }
    return true;
}

/* The function's answer (result, error document, or the runner's own document) as bytes: the
 * "payload" string, or the decoded "payload_b64" that the runner sends instead for a body that
 * is not text (not UTF-8, or with control bytes other than tab, newline and return; docs/rpc.md).
 * On success *ret_payload and *ret_len are the bytes (NUL-terminated; a decoded body may hold NUL
 * bytes), pointing into `result` or into *ret_owned (malloc'd, for the caller to free). Returns
 * -EPROTO with *ret_why saying what the answer lacks, or -ENOMEM. */
static int answer_payload(const cJSON *result, const char **ret_payload, size_t *ret_len,
                          char **ret_owned, const char **ret_why)
{
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(result, "payload");
    const cJSON *b64 = cJSON_GetObjectItemCaseSensitive(result, "payload_b64");
    if (text && b64) {
        *ret_why = "exactly one of payload and payload_b64 (it sent both)";
        return -EPROTO;
    }
    if (cJSON_IsString(text)) {
        *ret_payload = text->valuestring;
        *ret_len = strlen(text->valuestring);
        return 0;
    }
    if (!cJSON_IsString(b64)) {
        *ret_why = "a payload";
        return -EPROTO;
    }
    size_t len = strlen(b64->valuestring);
    unsigned char *bytes = NULL;
    size_t n = 0;
    int r = strict_base64(b64->valuestring, len)
                ? ef_base64_decode(b64->valuestring, len, &bytes, &n)
                : -EINVAL;
    if (r == -ENOMEM)
        return r;
    if (r < 0) {
        *ret_why = "valid base64 in payload_b64";
        return -EPROTO;
    }
    *ret_payload = (const char *)bytes;
    *ret_len = n;
    *ret_owned = (char *)bytes;
    return 0;
}

/* The runner's answer says (wait_ms) how long the invocation waited in the runner before its
 * runtime took the event: a cold start's runtime init (a module's imports), or a worker slot
 * with per-container concurrency. Lambda counts that apart from Duration, so the handler's
 * Duration is the round trip less the wait, and on a cold start the wait joins the container's
 * start in Init Duration. An answer without wait_ms (an older runner) keeps the round trip. */
static double handler_duration(struct ef_invocation *inv, const cJSON *result, double round_trip)
{
    const cJSON *wait = cJSON_GetObjectItemCaseSensitive(result, "wait_ms");
    if (!cJSON_IsNumber(wait) || !(wait->valuedouble >= 0))
        return round_trip;
    double wait_ms = wait->valuedouble < round_trip ? wait->valuedouble : round_trip;
    if (!inv->warm)
        inv->init_ms += wait_ms;
    return round_trip - wait_ms;
}

static void on_invoke_result(ef_rpc_conn *conn, const cJSON *result,
                             const struct ef_rpc_error *error, void *user)
{
    (void)conn;
    struct ef_invocation *inv = user;
    struct ef_container *c = steal_pointer(&inv->c);
    double duration_ms = (double)(uv_hrtime() - inv->t_invoke_ns) / 1e6;
    ef_runner_watch_stop(steal_pointer(&inv->watch));

    if (error && error->code == EF_RPC_ERR_TIMEOUT) {
        complete_timeout(inv, c, duration_ms, NULL, -1);
        return;
    }
    if (error && error->code == EF_RPC_ERR_CLOSED && c->runner_wedged) {
        /* A watch found the runner wedged and discarded the container: past its Timeout, the
         * invocation timed out; before it, the container failed under it. */
        if (duration_ms >= (double)inv->fn->timeout_s * 1000)
            complete_timeout(inv, c, duration_ms, NULL, -1);
        else
            complete_service_error(inv, 500, "ServiceException",
                                   "the runner of the function's container stopped answering");
        return;
    }
    if (error && error->code == EF_RPC_ERR_CLOSED) {
        char msg[256];
        if (c->exit_status)
            snprintf(msg, sizeof(msg), "RequestId: %s Error: Runtime exited with error: %s",
                     inv->request_id, c->exit_status);
        else
            snprintf(msg, sizeof(msg),
                     "RequestId: %s Error: Runtime exited without providing a reason",
                     inv->request_id);
        /* The OOM killer may have taken the runner itself (funclet then reports the OOM before
         * the runner's exit, but the connection may close before either arrives). */
        bool maybe_oom = !c->exit_status || strcmp(c->exit_status, KILLED_STATUS) == 0;
        finish_exit(inv, c, NULL, msg, NULL, -1, duration_ms, maybe_oom,
                    "its runner went away during an invocation");
        return;
    }
    if (error && refused_as_draining(c, error)) {
        redirect_from_draining(inv, c);
        return;
    }
    if (error) {
        char msg[600];
        snprintf(msg, sizeof(msg), "the runner of container %s refused the invocation: %s", c->id,
                 error->message);
        ef_pool_discard(c, msg);
        complete_service_error(inv, 500, "ServiceException", msg);
        return;
    }

    const cJSON *status = cJSON_GetObjectItemCaseSensitive(result, "status");
    const cJSON *error_type = cJSON_GetObjectItemCaseSensitive(result, "error_type");
    const cJSON *log = cJSON_GetObjectItemCaseSensitive(result, "log");
    const cJSON *memory = cJSON_GetObjectItemCaseSensitive(result, "max_memory_used_mb");
    /* Missing means delivered: a runner that does not say cannot have its call repeated. */
    bool delivered = !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(result, "delivered"));
    bool ok = cJSON_IsString(status) && strcmp(status->valuestring, "ok") == 0;
    bool failed = cJSON_IsString(status) && strcmp(status->valuestring, "error") == 0;
    bool timed_out = cJSON_IsString(status) && strcmp(status->valuestring, "timeout") == 0;
    cleanup_free char *owned = NULL;
    const char *payload = NULL, *bad = "a status";
    size_t payload_len = 0;
    int r = ok || failed || timed_out ? answer_payload(result, &payload, &payload_len, &owned, &bad)
                                      : -EPROTO;
    if (r == -ENOMEM) {
        /* The container is fine; only this answer is lost. */
        ef_pool_release(c);
        complete_service_error(inv, 500, "ServiceException",
                               "out of memory while decoding the function's result");
        return;
    }
    if (r < 0) {
        char why[160];
        snprintf(why, sizeof(why), "its runner answered invoke without %s", bad);
        ef_pool_discard(c, why);
        complete_service_error(inv, 500, "ServiceException",
                               "the runner's answer to the invocation was malformed");
        return;
    }
    duration_ms = handler_duration(inv, result, duration_ms);
    const char *log_text = cJSON_IsString(log) ? log->valuestring : NULL;
    long long memory_mb =
        cJSON_IsNumber(memory) && memory->valuedouble >= 0 ? (long long)memory->valuedouble : -1;
    if (timed_out) {
        complete_timeout(inv, c, duration_ms, log_text, memory_mb);
        return;
    }
    /* "late": the runner had already answered another invocation with this failure when this
     * one arrived (docs/rpc.md). */
    bool late = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "late"));
    if (failed && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "init_error"))) {
        /* The runtime failed its init and will never serve: from now on the container takes
         * no invocation, and runtime.exited discards it. */
        if (!c->init_failed)
            ef_info("container %s of function %s: its runtime's init failed (%s); it takes no "
                    "new invocation",
                    c->id, c->function_name,
                    cJSON_IsString(error_type) ? error_type->valuestring : "no error type");
        c->init_failed = true;
        if (late && !delivered && inv->warm && !inv->retried) {
            ef_pool_release(c);
            retry_after_init_error(inv);
            return;
        }
    }
    bool exited = failed && cJSON_IsString(error_type) &&
                  strcmp(error_type->valuestring, "Runtime.ExitError") == 0;
    if (exited && !delivered && inv->warm && !inv->retried) {
        ef_pool_discard(c, "its runtime had exited before the invocation reached it");
        retry_on_fresh_container(inv);
        return;
    }
    if (exited) {
        cleanup_cjson cJSON *doc = cJSON_ParseWithLength(payload, payload_len);
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, "errorMessage");
        const char *msg = cJSON_IsString(m) ? m->valuestring : "";
        finish_exit(inv, c, payload, msg, log_text, memory_mb, duration_ms,
                    ends_with(msg, KILLED_STATUS), "its runtime exited");
        return;
    }
    /* An OOM kill that the runtime survived (a process it started) ends with the last
     * invocation in flight: another one may still be about to report the runtime's end. */
    if (c->in_flight <= 1)
        c->oom_killed = false;
    ef_pool_release(c);
    /* The runtime has served: its next invocations may skip the runner. */
    ef_handover_ask(c);

    struct ef_invoke_outcome o = {
        .status = ok ? EF_INVOKE_OK : EF_INVOKE_FUNCTION_ERROR,
        .payload = payload,
        .payload_len = payload_len,
        .log = log_text,
        .duration_ms = duration_ms,
        .init_ms = inv->init_ms,
        .max_memory_mb = memory_mb,
    };
    complete(inv, &o);
}

/* Starts a container for the invocation. */
static void on_joined(struct ef_container *c, const ef_error *err, void *user);

/* A started container did not take the invocation it has a slot for: out of memory leaves the
 * container as it is (other invocations may be using it); a closing connection ends it. */
static void send_failed(struct ef_invocation *inv, struct ef_container *c, int r)
{
    char msg[200];
    snprintf(msg, sizeof(msg), "cannot send the invocation to container %s: %s", c->id,
             strerror(-r));
    if (r == -ENOMEM)
        ef_pool_release(c);
    else
        ef_pool_discard(c, msg);
    complete_service_error(inv, 500, "ServiceException", msg);
}

/* Starts a container for the invocation, or joins one being started for its function that has
 * room for it (functions serving several invocations per container): every way to a new
 * container goes through here, so that a burst, or the retries after a failed start, start
 * one container per N invocations and not one each. */
static int spawn(struct ef_invocation *inv, ef_error *err)
{
    inv->warm = false;
    inv->t_spawn_ns = uv_hrtime();
    if (ef_pool_join_spawn(&inv->ctl->pool, inv->key, on_joined, inv))
        return 0;
    return ef_pool_spawn(inv->ctl, inv->fn, inv->key, on_spawned, inv, err);
}

/* funclet had no capacity for a container of this function: reclaim idle containers of other
 * functions (least recently used first) and try again, or, with nothing left to reclaim, wait in
 * the function's queue until capacity is freed. */
static void out_of_capacity(struct ef_invocation *inv, const ef_error *why)
{
    struct ef_controller *ctl = inv->ctl;
    unsigned n = 0;
    /* Another invocation of the function may have started a container with room for this one
     * meanwhile: joining it reclaims nothing. */
    if (ef_pool_join_spawn(&ctl->pool, inv->key, on_joined, inv)) {
        inv->warm = false;
        inv->t_spawn_ns = uv_hrtime();
        return;
    }
    if (inv->reclaims < MAX_RECLAIM_ROUNDS &&
        (n = ef_pool_reclaim(&ctl->pool, inv->key, inv->fn->memory_mb)) > 0) {
        inv->reclaims++;
        ef_info("invocation %s of %s: no capacity (%s); reclaimed %u idle container(s) of other "
                "functions, starting again",
                inv->request_id, inv->fn->name, why->msg, n);
        ef_error err = {0};
        if (spawn(inv, &err) < 0)
            complete_spawn_failure(inv, &err);
        return;
    }
    ef_error err = {0};
    int r = ef_sched_wait_capacity(ctl->sched, &inv->ticket, &err);
    if (r == -ESHUTDOWN) {
        complete_service_error(inv, 503, "ServiceException", err.msg);
        return;
    }
    if (r < 0) {
        complete_service_error_reason(inv, 429, "TooManyRequestsException", EF_REASON_NODE,
                                      err.msg);
        return;
    }
    /* One line per invocation, not one per retry. */
    if (!inv->waited_for_capacity)
        ef_info("invocation %s of %s waits for capacity: %s", inv->request_id, inv->fn->name,
                why->msg);
    inv->waited_for_capacity = true;
}

static void on_runner_wedged(void *user);

/* Sends the invocation to its container `c` (inv->c): through the runtime connection its runner
 * handed over (handover.h), or to the runner. */
static int transmit(struct ef_invocation *inv, struct ef_container *c)
{
    const struct ef_function *fn = inv->fn;
    cleanup_free char *arn = ef_function_version_arn(fn); /* ":<n>" for a published version */
    cleanup_cjson cJSON *p = cJSON_CreateObject();
    if (!arn || !p || !cJSON_AddStringToObject(p, "request_id", inv->request_id) ||
        !cJSON_AddStringToObject(p, "payload", inv->payload) ||
        !cJSON_AddStringToObject(p, "invoked_function_arn", arn) ||
        (inv->client_context &&
         !cJSON_AddStringToObject(p, "client_context", inv->client_context)) ||
        (inv->cognito_identity &&
         !cJSON_AddStringToObject(p, "cognito_identity", inv->cognito_identity)))
        return -ENOMEM;
    if (!c->conn)
        return -EPIPE;
    inv->t_invoke_ns = uv_hrtime();
    if (c->handover)
        return ef_handover_invoke(c->handover, steal_pointer(&p), fn->timeout_s * 1000LL,
                                  on_invoke_result, inv);
    /* The runner counts the Timeout from the moment the runtime takes the event (no
     * deadline_ms is sent) and waits up to INIT_ALLOWANCE_MS more for a runtime that is still
     * starting; the call's own limit covers both. */
    unsigned timeout_ms = (unsigned)fn->timeout_s * 1000 + INIT_ALLOWANCE_MS + INVOKE_GRACE_MS;
    int r = ef_rpc_call(c->conn, "invoke", steal_pointer(&p), timeout_ms, on_invoke_result, inv);
    if (r == 0) /* a wedged runner is found sooner (runner_watch.h); none when out of memory */
        inv->watch = ef_runner_watch_start(inv->ctl->loop, c,
                                           (uint64_t)fn->timeout_s * 1000 + INVOKE_GRACE_MS,
                                           on_runner_wedged, inv);
    return r;
}

/* The invocation is past its Timeout and its runner does not answer pings: the container is
 * discarded (counted as unhealthy), and the connection's close answers the invocations in flight
 * there (on_invoke_result). */
static void on_runner_wedged(void *user)
{
    struct ef_invocation *inv = user;
    if (!inv->c)
        return;
    inv->c->runner_wedged = true;
    ef_pool_discard_dead(inv->c, "its runner stopped answering while an invocation was past its "
                                 "Timeout");
}

/* An invocation that waited for its container's runtime.handover answer goes now: to that
 * container, or, when the container cannot serve any more (handover.h), once to a new one, as it
 * never reached the runtime. */
static void send_parked(void *user, bool usable)
{
    struct ef_invocation *inv = user;
    struct ef_container *c = inv->c;
    int r = usable ? transmit(inv, c) : -EPIPE;
    if (r == 0)
        return;
    inv->c = NULL;
    if (usable || inv->retried) {
        send_failed(inv, c, r);
        return;
    }
    ef_pool_release(c); /* its runtime is marked gone: released, it is discarded */
    retry_on_fresh_container(inv);
}

/* Sends `invoke` to a BUSY container reserved for this invocation. */
static int send_invoke(struct ef_invocation *inv, struct ef_container *c)
{
    if (ef_handover_pending(c)) {
        inv->c = c;
        c->invocations++;
        ef_handover_park(c, send_parked, inv);
        return 0;
    }
    int r = transmit(inv, c);
    if (r < 0)
        return r;
    inv->c = c;
    c->invocations++;
    return 0;
}

static void on_spawned(struct ef_container *c, const ef_error *err, void *user)
{
    struct ef_invocation *inv = user;
    if (!c && err->code == -ENOSPC) {
        out_of_capacity(inv, err);
        return;
    }
    if (!c && err->code == -EAGAIN && !inv->respawned) {
        /* A recycled container whose runner refused a new runtime (an older runner, or a
         * runtime that outlived the reset): one more try, on whatever funclet hands out next. */
        inv->respawned = true;
        ef_warn("invocation %s: %s; starting another container", inv->request_id, err->msg);
        ef_error e2 = {0};
        if (spawn(inv, &e2) < 0)
            complete_spawn_failure(inv, &e2);
        return;
    }
    if (!c && err->code == -ENOEXEC) {
        complete_invalid_entrypoint(inv, err);
        return;
    }
    if (!c) {
        complete_spawn_failure(inv, err);
        return;
    }
    ef_metrics_cold_start(inv->ctl->metrics, inv->fn->name);
    inv->init_ms = (double)(uv_hrtime() - inv->t_spawn_ns) / 1e6;
    int r = send_invoke(inv, c);
    if (r < 0)
        send_failed(inv, c, r);
}

/* The container started for another invocation, which this one joined (ef_pool_join_spawn),
 * is ready with a slot for it; or its start failed, which is handled as a start of its own. */
static void on_joined(struct ef_container *c, const ef_error *err, void *user)
{
    struct ef_invocation *inv = user;
    if (!c) {
        on_spawned(NULL, err, inv);
        return;
    }
    inv->init_ms = (double)(uv_hrtime() - inv->t_spawn_ns) / 1e6;
    int r = send_invoke(inv, c);
    if (r < 0)
        send_failed(inv, c, r);
}

/* Places an invocation that holds a concurrency slot: the most recently used idle warm container
 * of its identity, or a new one. A warm container whose runner connection is already closing
 * cannot take the call; it is dropped and the next one tried. */
static int place(struct ef_invocation *inv, ef_error *err)
{
    struct ef_container *c;
    inv->reclaims = 0;
    while ((c = ef_pool_take_slot(&inv->ctl->pool, inv->key)) != NULL) {
        int r = send_invoke(inv, c);
        if (r == 0) {
            inv->warm = true;
            return 0;
        }
        if (r == -ENOMEM) {
            ef_pool_release(c);
            return ef_error_set(err, -ENOMEM, "out of memory");
        }
        ef_pool_discard(c, "its runner connection is closing");
    }
    return spawn(inv, err);
}

/* The scheduler's timer gave a queued invocation its slot. */
static void on_ticket_run(struct ef_sched_ticket *t)
{
    struct ef_invocation *inv = from_ticket(t);
    ef_error err = {0};
    if (place(inv, &err) < 0)
        complete_spawn_failure(inv, &err);
}

/* A queued invocation waited too long (429) or the controller is stopping (503). */
static void on_ticket_rejected(struct ef_sched_ticket *t, int status, const char *reason,
                               const char *message)
{
    struct ef_invocation *inv = from_ticket(t);
    complete_service_error_reason(inv, status,
                                  status == 429 ? "TooManyRequestsException" : "ServiceException",
                                  reason, message);
}

int ef_invoke_start(struct ef_controller *ctl, struct ef_function *fn, const char *request_id,
                    const char *payload, size_t payload_len, ef_invoke_done_cb done, void *user,
                    struct ef_invocation **ret_inv, ef_error *err)
{
    return ef_invoke_start_ex(ctl, fn, request_id, payload, payload_len, NULL, done, user, ret_inv,
                              err);
}

int ef_invoke_start_ex(struct ef_controller *ctl, struct ef_function *fn, const char *request_id,
                       const char *payload, size_t payload_len, const struct ef_invoke_extra *extra,
                       ef_invoke_done_cb done, void *user, struct ef_invocation **ret_inv,
                       ef_error *err)
{
    struct ef_invocation *inv = calloc(1, sizeof(*inv));
    if (!inv) {
        ef_function_free(fn);
        return ef_error_set(err, -ENOMEM, "out of memory");
    }
    inv->ctl = ctl;
    inv->fn = fn;
    inv->done = done;
    inv->user = user;
    snprintf(inv->request_id, sizeof(inv->request_id), "%s", request_id);
    inv->key = ef_pool_function_key(fn);
    inv->payload = malloc(payload_len + 1);
    inv->log_before_done = extra && extra->log_before_done;
    if (extra && extra->client_context)
        inv->client_context = strdup(extra->client_context);
    if (extra && extra->cognito_identity)
        inv->cognito_identity = strdup(extra->cognito_identity);
    inv->code_held = inv->payload && ef_code_lane_hold(ctl->code_lane, fn->code_sha256_hex) == 0;
    if (!inv->key || !inv->payload || !inv->code_held ||
        (extra && extra->client_context && !inv->client_context) ||
        (extra && extra->cognito_identity && !inv->cognito_identity)) {
        invocation_free(inv);
        return ef_error_set(err, -ENOMEM, "out of memory");
    }
    memcpy(inv->payload, payload, payload_len);
    inv->payload[payload_len] = '\0';

    inv->ticket.key = inv->key;
    inv->ticket.run = on_ticket_run;
    inv->ticket.rejected = on_ticket_rejected;
    int r = ef_sched_admit(ctl->sched, &inv->ticket, fn->name, fn->has_reserved_concurrency,
                           fn->reserved_concurrency, err);
    if (r == 0)
        r = place(inv, err);
    if (r < 0) {
        bool throttled = ef_invoke_throttle_reason(r) != NULL;
        ef_metrics_invocation(ctl->metrics, fn->name,
                              throttled ? EF_OUTCOME_THROTTLED : EF_OUTCOME_SERVICE_ERROR, -1);
        invocation_free(inv);
        return r;
    }
    *ret_inv = inv; /* placed, or queued (r == 1) */
    return 0;
}

void ef_invoke_detach(struct ef_invocation *inv)
{
    /* Still waiting in a queue: nothing ran, so nothing needs finishing. */
    if (inv->ticket.queued) {
        ef_debug("invocation %s left its queue: its client went away", inv->request_id);
        invocation_free(inv);
        return;
    }
    inv->done = NULL;
    inv->user = NULL;
}

bool ef_invoke_sent(const struct ef_invocation *inv)
{
    /* Set just before the call is written, and never cleared: a redirect or a retry on a fresh
     * container after a send counts as sent, which errs on the side of "may have run". */
    return inv->t_invoke_ns != 0;
}
