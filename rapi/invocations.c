/* Queue and state of the invocations; answers the `invoke` RPC requests. */
#define _GNU_SOURCE
#include "rapi/invocations.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "rapi/payload.h"
#include "rapi/proc_memory.h"

bool ef_request_id_valid(const char *id, size_t len)
{
    if (len == 0 || len > EF_REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.' || c == ':';
        if (!ok)
            return false;
    }
    return true;
}

/* A header value: printable ASCII (spaces allowed inside), `max` bytes at most. */
static bool header_value_valid(const char *s, size_t max, bool allow_space)
{
    size_t len = strlen(s);
    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c > 0x7e || c < 0x20 || (c == 0x20 && !allow_space))
            return false;
    }
    return true;
}

/* Reads an optional header-bound string parameter into *ret (NULL when absent). */
static int get_header_param(const cJSON *params, const char *name, const char **ret, ef_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, name);
    *ret = NULL;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsString(v) || !header_value_valid(v->valuestring, EF_INVOKE_HEADER_MAX, true))
        return ef_error_set(err, -EINVAL,
                            "%s must be 1 to %u bytes of printable ASCII (JSON text with "
                            "non-ASCII characters \\u-escaped)",
                            name, EF_INVOKE_HEADER_MAX);
    *ret = v->valuestring;
    return 0;
}

int ef_invocation_parse(const cJSON *params, long long default_deadline_ms, const char *default_arn,
                        struct ef_invocation **ret_inv, ef_error *err)
{
    if (!cJSON_IsObject(params))
        return ef_error_set(err, -EINVAL, "params must be an object");

    const cJSON *id = cJSON_GetObjectItemCaseSensitive(params, "request_id");
    if (!cJSON_IsString(id) || !ef_request_id_valid(id->valuestring, strlen(id->valuestring)))
        return ef_error_set(err, -EINVAL,
                            "request_id must be a string of 1 to %d characters from "
                            "[A-Za-z0-9._:-]",
                            EF_REQUEST_ID_MAX);

    const cJSON *payload = cJSON_GetObjectItemCaseSensitive(params, "payload");
    if (!cJSON_IsString(payload))
        return ef_error_set(err, -EINVAL, "payload must be a string (the event)");
    size_t payload_len = strlen(payload->valuestring);
    if (payload_len > EF_PAYLOAD_MAX)
        return ef_error_set(err, -EINVAL, "payload is %zu bytes, more than the limit of %u",
                            payload_len, EF_PAYLOAD_MAX);

    long long deadline = default_deadline_ms;
    const cJSON *dl = cJSON_GetObjectItemCaseSensitive(params, "deadline_ms");
    if (dl) {
        /* Epoch milliseconds between 2001 and 2286: anything else is a unit mistake. */
        if (!cJSON_IsNumber(dl) || dl->valuedouble < 1e12 || dl->valuedouble > 1e13 ||
            dl->valuedouble != (double)(long long)dl->valuedouble)
            return ef_error_set(err, -EINVAL,
                                "deadline_ms must be an integer, milliseconds since the epoch");
        deadline = (long long)dl->valuedouble;
    }

    const char *arn = default_arn;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(params, "invoked_function_arn");
    if (a) {
        if (!cJSON_IsString(a) || !header_value_valid(a->valuestring, EF_ARN_MAX, false))
            return ef_error_set(err, -EINVAL,
                                "invoked_function_arn must be 1 to %d printable ASCII characters "
                                "without spaces",
                                EF_ARN_MAX);
        arn = a->valuestring;
    }
    const char *client_context = NULL, *cognito_identity = NULL;
    int r = get_header_param(params, "client_context", &client_context, err);
    if (r == 0)
        r = get_header_param(params, "cognito_identity", &cognito_identity, err);
    if (r < 0)
        return r;

    struct ef_invocation *inv = calloc(1, sizeof(*inv));
    if (!inv)
        return ef_error_set(err, -ENOMEM, "out of memory");
    snprintf(inv->request_id, sizeof(inv->request_id), "%s", id->valuestring);
    inv->payload = malloc(payload_len + 1);
    inv->arn = strdup(arn);
    inv->client_context = client_context ? strdup(client_context) : NULL;
    inv->cognito_identity = cognito_identity ? strdup(cognito_identity) : NULL;
    if (!inv->payload || !inv->arn || (client_context && !inv->client_context) ||
        (cognito_identity && !inv->cognito_identity)) {
        ef_invocation_free(inv);
        return ef_error_set(err, -ENOMEM, "out of memory");
    }
    memcpy(inv->payload, payload->valuestring, payload_len + 1);
    inv->payload_len = payload_len;
    inv->deadline_ms = deadline;
    inv->expires_ms = (long long)ef_now_monotonic_ms() + (deadline - (long long)ef_now_epoch_ms());
    inv->received_ns = uv_hrtime();
    *ret_inv = inv;
    return 0;
}

void ef_invocation_free(struct ef_invocation *inv)
{
    if (!inv)
        return;
    free(inv->payload);
    free(inv->arn);
    free(inv->client_context);
    free(inv->cognito_identity);
    free(inv);
}

void ef_invocations_init(struct ef_invocations *invs, struct ef_log_capture *capture)
{
    memset(invs, 0, sizeof(*invs));
    invs->capture = capture;
    invs->max_in_flight = 1;
    invs->runtime_status_fd = -1;
}

int ef_invocations_accept(struct ef_invocations *invs, ef_rpc_request *req, const cJSON *params,
                          long long timeout_ms, long long allowance_ms, const char *default_arn)
{
    ef_error err = {0};
    struct ef_invocation *inv = NULL;
    /* Without a deadline_ms the Timeout counts from the hand-out; until then the invocation
     * waits at most `allowance_ms` more for a runtime that is still starting. */
    long long deadline = (long long)ef_now_epoch_ms() + timeout_ms + allowance_ms;
    if (ef_invocation_parse(params, deadline, default_arn, &inv, &err) < 0) {
        ef_rpc_reply_error(req, EF_RPC_INVALID_PARAMS, NULL, "invoke: %s", err.msg);
        return -EINVAL;
    }
    if (!cJSON_GetObjectItemCaseSensitive(params, "deadline_ms"))
        inv->timeout_ms = timeout_ms;
    inv->req = req;
    int rc = ef_invocations_submit(invs, inv);
    if (rc == 0)
        return 0;
    inv->req = NULL;
    if (rc == -ESHUTDOWN) {
        /* Sent before the caller heard of the timeout: the event never reached the runtime, so
         * the caller may run it elsewhere; "draining" in the error's data says so. */
        cJSON *data = cJSON_CreateObject();
        if (data && !cJSON_AddTrueToObject(data, "draining")) {
            cJSON_Delete(data);
            data = NULL;
        }
        ef_rpc_reply_error(req, EF_RPC_ERR_BUSY, data,
                           "invoke: an invocation timed out in this runtime, which takes no new "
                           "invocation and ends once those it has end: send %s to another "
                           "container",
                           inv->request_id);
    } else if (rc == -EEXIST)
        ef_rpc_reply_error(req, EF_RPC_INVALID_PARAMS, NULL,
                           "invoke: request_id %s is already queued or in flight", inv->request_id);
    else
        ef_rpc_reply_error(req, EF_RPC_ERR_NO_CAPACITY, NULL,
                           "invoke: %d invocations are already queued", EF_QUEUE_MAX);
    ef_invocation_free(inv);
    return rc;
}

static void list_append(struct ef_invocation_list *l, struct ef_invocation *inv)
{
    inv->next = NULL;
    inv->prev = l->tail;
    if (l->tail)
        l->tail->next = inv;
    else
        l->head = inv;
    l->tail = inv;
    l->n++;
}

static void list_remove(struct ef_invocation_list *l, struct ef_invocation *inv)
{
    if (inv->prev)
        inv->prev->next = inv->next;
    else
        l->head = inv->next;
    if (inv->next)
        inv->next->prev = inv->prev;
    else
        l->tail = inv->prev;
    inv->prev = inv->next = NULL;
    l->n--;
}

static struct ef_invocation *list_find(const struct ef_invocation_list *l, const char *id,
                                       size_t len)
{
    for (struct ef_invocation *i = l->head; i; i = i->next)
        if (strlen(i->request_id) == len && memcmp(i->request_id, id, len) == 0)
            return i;
    return NULL;
}

/* The capture's byte count after reading what the pipes hold (0 without a capture). */
static uint64_t current_mark(struct ef_invocations *invs)
{
    return invs->capture ? ef_log_capture_mark(invs->capture) : 0;
}

/* The invocation's log, which ends now; NULL without a capture or memory. Output nobody's log
 * has held yet goes to exactly one invocation, so that it is neither lost nor shown twice: an
 * invocation handed out while none was in flight starts where the last log ended (its
 * log_mark); one never handed out gets that output only when none is in flight (the runtime
 * failed at start-up: its output says why), else nothing, being no part of what runs. */
static char *take_log(struct ef_invocations *invs, const struct ef_invocation *inv, bool delivered)
{
    if (!invs->capture)
        return NULL;
    /* Output written right before the runtime posted must not be lost: read it now. */
    uint64_t end = current_mark(invs);
    uint64_t from = end;
    if (delivered)
        from = inv->log_mark;
    else if (invs->in_flight.n == 0)
        from = invs->log_consumed;
    if (end > invs->log_consumed)
        invs->log_consumed = end;
    return ef_log_ring_excerpt(&invs->capture->ring, from);
}

/* The runtime's peak memory in MB (rounded up), or -1 when it was never measured. */
static long peak_memory_mb(struct ef_invocations *invs)
{
    long kb;
    bool measured = invs->runtime_status_fd >= 0
                        ? ef_proc_fd_peak_rss_kb(invs->runtime_status_fd, &kb)
                        : invs->runtime_pid > 0 && ef_proc_peak_rss_kb(invs->runtime_pid, &kb);
    if (measured && kb > invs->peak_rss_kb)
        invs->peak_rss_kb = kb;
    if (invs->peak_rss_kb <= 0)
        return -1;
    return (invs->peak_rss_kb + 1023) / 1024;
}

static const char *const status_names[] = {
    [EF_INVOCATION_OK] = "ok",
    [EF_INVOCATION_ERROR] = "error",
    [EF_INVOCATION_TIMEOUT] = "timeout",
};

/* Marks of an answer with the terminal failure (docs/rpc.md, `invoke`). */
enum {
    ANSWER_INIT_ERROR = 1 << 0, /* "init_error": the runtime's init failed; it never serves */
    ANSWER_LATE = 1 << 1,       /* "late": the failure was answered before this one arrived */
};

/* Sends the `invoke` answer and frees the invocation, which is in no list any more.
 * `delivered` says whether the runtime ever received the event: the controller retries an
 * invocation that met a dead runtime before it was handed out. `marks` are ANSWER_* flags. */
static void answer(struct ef_invocations *invs, struct ef_invocation *inv,
                   enum ef_invocation_status status, const char *error_type, const char *payload,
                   size_t len, bool with_log, bool delivered, unsigned marks)
{
    cleanup_free char *log = with_log ? take_log(invs, inv, delivered) : NULL;
    long memory_mb = peak_memory_mb(invs);
    /* Time spent waiting for the runtime to poll: its init on a cold start, which the caller
     * bills apart from the function's duration. Microseconds are plenty. */
    double wait_ms = -1;
    if (delivered && inv->handed_ns >= inv->received_ns)
        wait_ms = (double)((inv->handed_ns - inv->received_ns) / 1000u) / 1000.0;

    cleanup_free char *b64 = NULL;
    cleanup_cjson cJSON *res = cJSON_CreateObject();
    bool ok =
        res && cJSON_AddStringToObject(res, "status", status_names[status]) &&
        ef_payload_add(res, payload, len, &b64) &&
        (!error_type || cJSON_AddStringToObject(res, "error_type", error_type)) &&
        cJSON_AddStringToObject(res, "log", log ? log : "") &&
        cJSON_AddBoolToObject(res, "delivered", delivered) &&
        (!(marks & ANSWER_INIT_ERROR) || cJSON_AddTrueToObject(res, "init_error")) &&
        (!(marks & ANSWER_LATE) || cJSON_AddTrueToObject(res, "late")) &&
        (wait_ms < 0 || cJSON_AddNumberToObject(res, "wait_ms", wait_ms)) &&
        (memory_mb < 0 || cJSON_AddNumberToObject(res, "max_memory_used_mb", (double)memory_mb));
    /* The payload item refers to `payload` or `b64`: both live until the answer is sent. */
    if (ok)
        ef_rpc_reply(inv->req, steal_pointer(&res));
    else
        ef_rpc_reply_error(inv->req, EF_RPC_INTERNAL_ERROR, NULL,
                           "out of memory building the answer to invocation %s", inv->request_id);
    inv->req = NULL;

    memcpy(invs->recent[invs->recent_next], inv->request_id, sizeof(inv->request_id));
    invs->recent_next = (invs->recent_next + 1) % EF_RECENT_IDS;
    ef_invocation_free(inv);
}

char *ef_exit_error_doc(const char *request_id, const char *how)
{
    cleanup_cjson cJSON *doc = cJSON_CreateObject();
    char msg[EF_REQUEST_ID_MAX + 256];
    snprintf(msg, sizeof(msg), "RequestId: %s Error: Runtime exited with error: %s", request_id,
             how);
    if (!doc || !cJSON_AddStringToObject(doc, "errorType", "Runtime.ExitError") ||
        !cJSON_AddStringToObject(doc, "errorMessage", msg))
        return NULL;
    return cJSON_PrintUnformatted(doc);
}

/* Answers one invocation with the recorded terminal failure. `late`: it arrived after the
 * failure had been answered to another invocation (see ef_invocations.fail_answered). */
static void answer_failure(struct ef_invocations *invs, struct ef_invocation *inv, bool with_log,
                           bool delivered, bool late)
{
    /* The strings are NULL only after an allocation failure while recording the failure. */
    const char *type = invs->fail_type ? invs->fail_type : "Runtime.Unknown";
    unsigned marks = late ? ANSWER_LATE : 0;
    invs->fail_answered++;
    if (invs->fail_doc) {
        answer(invs, inv, EF_INVOCATION_ERROR, type, invs->fail_doc, strlen(invs->fail_doc),
               with_log, delivered, marks | ANSWER_INIT_ERROR);
        return;
    }
    cleanup_free char *doc =
        ef_exit_error_doc(inv->request_id, invs->fail_exit ? invs->fail_exit : "unknown");
    const char *d = doc ? doc : "{\"errorType\":\"Runtime.ExitError\"}";
    answer(invs, inv, EF_INVOCATION_ERROR, type, d, strlen(d), with_log, delivered, marks);
}

static void notify_ready(struct ef_invocations *invs)
{
    if (invs->on_queued)
        invs->on_queued(invs->on_queued_user);
}

/* Runs on_drained once when a draining runtime has nothing left to serve. */
static void check_drained(struct ef_invocations *invs)
{
    if (!invs->draining || invs->drained || invs->queued.n > 0 || invs->in_flight.n > 0)
        return;
    invs->drained = true;
    if (invs->on_drained)
        invs->on_drained(invs->on_drained_user);
}

int ef_invocations_submit(struct ef_invocations *invs, struct ef_invocation *inv)
{
    /* Before the failure: a drained runtime is killed, and the refusal tells the caller more
     * (the event may go to another container) than the exit would. */
    if (invs->draining)
        return -ESHUTDOWN;
    if (invs->failed) {
        /* With its log: the runtime may have failed before any invocation arrived (an init
         * error in its first milliseconds), and what it wrote then says why. Such a first
         * invocation is the one the init was for; one arriving after the failure was already
         * answered is late: its caller may place it elsewhere for an init of its own. */
        answer_failure(invs, inv, true, false, invs->fail_answered > 0);
        return 0;
    }
    size_t len = strlen(inv->request_id);
    if (list_find(&invs->queued, inv->request_id, len) ||
        list_find(&invs->in_flight, inv->request_id, len))
        return -EEXIST;
    if (invs->queued.n >= EF_QUEUE_MAX)
        return -ENOSPC;
    inv->in_flight = false;
    list_append(&invs->queued, inv);
    notify_ready(invs);
    return 0;
}

struct ef_invocation *ef_invocations_next(struct ef_invocations *invs)
{
    struct ef_invocation *inv = invs->queued.head;
    unsigned max = invs->max_in_flight ? invs->max_in_flight : 1;
    if (!inv || invs->in_flight.n >= max)
        return NULL;
    list_remove(&invs->queued, inv);
    inv->in_flight = true;
    /* The function's time starts when its runtime takes the event, as in Lambda, where the
     * runtime's start and the handler's import are the init phase, timed apart. */
    bool deadline_set = inv->timeout_ms > 0;
    if (deadline_set) {
        inv->deadline_ms = (long long)ef_now_epoch_ms() + inv->timeout_ms;
        inv->expires_ms = (long long)ef_now_monotonic_ms() + inv->timeout_ms;
    }
    inv->handed_ns = uv_hrtime();
    /* With none in flight, what the runtime wrote since the last log ended (its start-up on a
     * cold start; a background thread's output, a late print) is nobody's yet: it comes first
     * in this log. Otherwise the invocations in flight hold it, and this one starts here, so
     * that it is shown once. */
    inv->log_mark = invs->in_flight.n == 0 ? invs->log_consumed : current_mark(invs);
    /* Measured here too when it never was: a runtime that dies during its first invocation can
     * no longer be asked. Later, the measurement at the previous answer stands in (the peak only
     * grows, and it saves a read of /proc per invocation). */
    if (invs->peak_rss_kb <= 0)
        peak_memory_mb(invs);
    list_append(&invs->in_flight, inv);
    /* Once it is in a list: the hook re-arms the timer at the earliest deadline of the lists. */
    if (deadline_set && invs->on_deadline_set)
        invs->on_deadline_set(invs->on_deadline_set_user);
    return inv;
}

struct ef_invocation *ef_invocations_find(struct ef_invocations *invs, const char *id, size_t len)
{
    return list_find(&invs->in_flight, id, len);
}

bool ef_invocations_finished_recently(const struct ef_invocations *invs, const char *id, size_t len)
{
    if (len > EF_REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < EF_RECENT_IDS; i++)
        if (invs->recent[i][0] && strlen(invs->recent[i]) == len &&
            memcmp(invs->recent[i], id, len) == 0)
            return true;
    return false;
}

void ef_invocations_finish(struct ef_invocations *invs, struct ef_invocation *inv,
                           const char *error_type, const char *payload, size_t len)
{
    bool was_in_flight = inv->in_flight;
    list_remove(inv->in_flight ? &invs->in_flight : &invs->queued, inv);
    answer(invs, inv, error_type ? EF_INVOCATION_ERROR : EF_INVOCATION_OK, error_type, payload, len,
           true, was_in_flight, 0);
    notify_ready(invs);
    check_drained(invs);
}

bool ef_invocations_fail_oversized(struct ef_invocations *invs, const char *id, size_t len)
{
    struct ef_invocation *inv = NULL;
    if (id)
        inv = list_find(&invs->in_flight, id, len);
    else if (invs->in_flight.n == 1)
        inv = invs->in_flight.head;
    if (!inv)
        return false;
    char doc[256];
    snprintf(doc, sizeof(doc),
             "{\"errorMessage\":\"Response payload size exceeded maximum allowed payload size "
             "(%u bytes).\",\"errorType\":\"Function.ResponseSizeTooLarge\"}",
             EF_RESPONSE_MAX);
    ef_invocations_finish(invs, inv, "Function.ResponseSizeTooLarge", doc, strlen(doc));
    return true;
}

/* Answers one invocation whose deadline has passed. */
static void answer_timeout(struct ef_invocations *invs, struct ef_invocation *inv)
{
    char doc[EF_REQUEST_ID_MAX + 160];
    snprintf(doc, sizeof(doc),
             "{\"errorMessage\":\"RequestId: %s Error: Task timed out\",\"errorType\":"
             "\"Sandbox.Timedout\"}",
             inv->request_id);
    answer(invs, inv, EF_INVOCATION_TIMEOUT, "Sandbox.Timedout", doc, strlen(doc), true,
           inv->in_flight, 0);
}

size_t ef_invocations_expire(struct ef_invocations *invs, long long now_ms)
{
    size_t n = 0;
    struct ef_invocation_list *lists[] = {&invs->in_flight, &invs->queued};
    for (size_t l = 0; l < EF_ARRAY_SIZE(lists); l++) {
        struct ef_invocation *inv = lists[l]->head;
        while (inv) {
            struct ef_invocation *next = inv->next;
            if (inv->expires_ms <= now_ms) {
                list_remove(lists[l], inv);
                answer_timeout(invs, inv);
                n++;
            }
            inv = next;
        }
    }
    if (n > 0) {
        notify_ready(invs);
        check_drained(invs);
    }
    return n;
}

void ef_invocations_drain(struct ef_invocations *invs)
{
    invs->draining = true;
    check_drained(invs);
}

size_t ef_invocations_pending(const struct ef_invocations *invs)
{
    return invs->queued.n + invs->in_flight.n;
}

long long ef_invocations_next_deadline(const struct ef_invocations *invs)
{
    long long next = 0;
    const struct ef_invocation_list *lists[] = {&invs->in_flight, &invs->queued};
    for (size_t l = 0; l < EF_ARRAY_SIZE(lists); l++)
        for (const struct ef_invocation *inv = lists[l]->head; inv; inv = inv->next)
            if (next == 0 || inv->expires_ms < next)
                next = inv->expires_ms;
    return next;
}

void ef_invocations_arm_deadline(const struct ef_invocations *invs, uv_timer_t *timer,
                                 uv_timer_cb cb)
{
    long long next = ef_invocations_next_deadline(invs);
    if (next == 0) {
        uv_timer_stop(timer);
        return;
    }
    long long now = (long long)ef_now_monotonic_ms();
    uv_timer_start(timer, cb, next > now ? (uint64_t)(next - now) : 0, 0);
}

/* Fails every queued and in-flight invocation with the recorded failure. */
static void fail_everything(struct ef_invocations *invs)
{
    struct ef_invocation *inv;
    while ((inv = invs->in_flight.head)) {
        list_remove(&invs->in_flight, inv);
        answer_failure(invs, inv, true, true, false);
    }
    while ((inv = invs->queued.head)) {
        list_remove(&invs->queued, inv);
        answer_failure(invs, inv, true, false, false);
    }
}

void ef_invocations_fail_init(struct ef_invocations *invs, const char *error_type, const char *doc)
{
    bool first = !invs->failed;
    if (first) {
        invs->fail_type = strdup(error_type);
        invs->fail_doc = strdup(doc);
        invs->failed = true;
    }
    fail_everything(invs);
    if (first && invs->on_init_failed)
        invs->on_init_failed(invs->on_init_failed_user);
}

void ef_invocations_fail_exit(struct ef_invocations *invs, const char *how)
{
    if (!invs->failed) {
        invs->fail_type = strdup("Runtime.ExitError");
        invs->fail_exit = strdup(how);
        invs->failed = true;
    }
    fail_everything(invs);
}

void ef_invocations_abort(struct ef_invocations *invs, int code, const char *message)
{
    struct ef_invocation_list *lists[2] = {&invs->in_flight, &invs->queued};
    for (int i = 0; i < 2; i++) {
        struct ef_invocation *inv;
        while ((inv = lists[i]->head)) {
            list_remove(lists[i], inv);
            ef_rpc_reply_error(inv->req, code, NULL, "%s", message);
            inv->req = NULL;
            ef_invocation_free(inv);
        }
    }
}

void ef_invocations_free(struct ef_invocations *invs, const char *how)
{
    ef_invocations_fail_exit(invs, how);
    free(invs->fail_type);
    free(invs->fail_doc);
    free(invs->fail_exit);
    invs->fail_type = invs->fail_doc = invs->fail_exit = NULL;
    invs->failed = false;
    invs->fail_answered = 0;
}

void ef_invocations_reset(struct ef_invocations *invs, const char *how)
{
    ef_invocations_free(invs, how);
    memset(invs->recent, 0, sizeof(invs->recent));
    invs->recent_next = 0;
    invs->log_consumed = 0;
    invs->draining = false;
    invs->drained = false;
    invs->runtime_pid = 0;
    invs->peak_rss_kb = 0;
    invs->max_in_flight = 1;
}
