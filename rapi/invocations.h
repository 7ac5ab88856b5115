/* The invocations of one runner: queued (waiting for the runtime's next /next poll), in flight
 * (handed out, waiting for /response or /error; at most `max_in_flight` at once), the
 * terminal failure that ends them all (an /init/error post or the runtime's exit), and the
 * drain after a timeout: the runtime takes no new invocation and ends once those it has end.
 *
 * Every invocation holds the `invoke` RPC request it answers; it is answered exactly once, by
 * ef_invocations_finish(), by its deadline (ef_invocations_expire) or by a failure, and the
 * invocation is freed then. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "common/error.h"
#include "common/rpc.h"
#include "rapi/log_capture.h"

#define EF_REQUEST_ID_MAX 128
#define EF_ARN_MAX        256
/* Lambda's limit for a synchronous event. */
#define EF_PAYLOAD_MAX (6u * 1024u * 1024u)
/* Lambda's limit for a function's response: 6 MiB + 100 bytes, the figure its Runtime API and
 * its Function.ResponseSizeTooLarge message quote. */
#define EF_RESPONSE_MAX (6u * 1024u * 1024u + 100u)
/* The client context and Cognito identity travel in headers of the /next answer. Lambda's own
 * limit on the client context is 3583 bytes of base64; this is the runner's bound. */
#define EF_INVOKE_HEADER_MAX (16u * 1024u)
/* Invocations a runner keeps queued at once; the controller's concurrency limits are far lower. */
#define EF_QUEUE_MAX 1024
/* How many finished request ids are remembered to tell "already responded" from "unknown". */
#define EF_RECENT_IDS 64

struct ef_invocation {
    struct ef_invocation *prev, *next;
    bool in_flight;
    char request_id[EF_REQUEST_ID_MAX + 1];
    char *payload; /* the event, NUL-terminated */
    size_t payload_len;
    long long deadline_ms; /* epoch milliseconds: what the runtime is told */
    /* The same deadline on the monotonic clock (ef_now_monotonic_ms), which is what enforces it:
     * a step of the wall clock (NTP, a resumed VM) neither times invocations out at once nor
     * lets them run past their Timeout. */
    long long expires_ms;
    /* > 0: the deadline is this long after the hand-out (set then); until then deadline_ms
     * bounds the wait for a runtime that is still starting. */
    long long timeout_ms;
    char *arn;
    char *client_context;   /* Lambda-Runtime-Client-Context, NULL when none */
    char *cognito_identity; /* Lambda-Runtime-Cognito-Identity, NULL when none */
    ef_rpc_request *req;    /* answered when the invocation ends */
    /* Capture byte count where its log starts, set when handed out: where the previous
     * invocation's log ended when none was in flight (so that what the runtime wrote in between
     * is in this log), else the count then. */
    uint64_t log_mark;
    uint64_t received_ns; /* uv_hrtime() when the `invoke` arrived */
    uint64_t handed_ns;   /* uv_hrtime() when the runtime took it from /next; 0 until then */
};

/* How an invocation ended: the `status` of its `invoke` answer. */
enum ef_invocation_status {
    EF_INVOCATION_OK,      /* "ok": the runtime posted /response */
    EF_INVOCATION_ERROR,   /* "error": /error, /init/error, the runtime's exit, a response too large
                            */
    EF_INVOCATION_TIMEOUT, /* "timeout": its deadline passed first */
};

struct ef_invocation_list {
    struct ef_invocation *head, *tail;
    size_t n;
};

struct ef_invocations {
    struct ef_invocation_list queued, in_flight;
    char recent[EF_RECENT_IDS][EF_REQUEST_ID_MAX + 1];
    size_t recent_next;

    /* Terminal failure: once set, every invocation fails with it. */
    bool failed;
    char *fail_type; /* error_type of the failure */
    char *fail_doc;  /* the error document of an init error; NULL for an exit */
    char *fail_exit; /* "exit status 1" / "signal: killed" for an exit */
    /* Invocations answered with the failure so far. One that arrives when this is above 0 is
     * "late" in its answer (docs/rpc.md): the caller sent it only because that earlier answer
     * had not reached it yet, so it never waited for this runtime's init. */
    unsigned fail_answered;

    struct ef_log_capture *capture;
    /* The capture byte count up to which the runtime's output is in a log already answered:
     * output after it and before the next hand-out was written while no invocation was in
     * flight, and goes to the next invocation handed out. */
    uint64_t log_consumed;
    /* Runs when an invocation may be handed out (one was queued, or one in flight ended), so
     * that a parked /next poll can take it. */
    void (*on_queued)(void *user);
    void *on_queued_user;
    /* Runs when a hand-out set an invocation's deadline (its timeout_ms), so that the deadline
     * timer is armed again. */
    void (*on_deadline_set)(void *user);
    void *on_deadline_set_user;

    /* Set by ef_invocations_drain() when an invocation timed out: a handler may still be running,
     * so the runtime takes no new invocation (ef_invocations_submit refuses) and is ended once
     * the invocations it already has, queued or in flight, have ended on their own. */
    bool draining;
    bool drained; /* on_drained has run for this drain */
    /* Runs once while draining, when nothing is queued or in flight any more. */
    void (*on_drained)(void *user);
    void *on_drained_user;
    /* Runs once when an init error is recorded, after the invocations were answered with it:
     * the runtime is of no further use and is ended, so that the container is replaced and the
     * next invocation runs init again (as Lambda resets the environment after an init error). */
    void (*on_init_failed)(void *user);
    void *on_init_failed_user;

    unsigned max_in_flight; /* 0 is taken as 1 */
    pid_t runtime_pid;      /* whose peak memory is reported; 0 when none */
    /* >= 0: the runtime's open /proc/<pid>/status, read instead of runtime_pid's (a runtime in
     * another pid namespace); the caller owns it. ef_invocations_init sets -1. */
    int runtime_status_fd;
    long peak_rss_kb; /* the highest VmHWM seen, kept after the runtime is gone */
};

/* True when `id` is a usable request id: 1..EF_REQUEST_ID_MAX characters of [A-Za-z0-9._:-]
 * (it travels in URL paths and HTTP headers). */
bool ef_request_id_valid(const char *id, size_t len);

/* Parses the params of `invoke` into a new invocation (not yet queued; `req` unset). A missing
 * deadline_ms means `default_deadline_ms`, a missing invoked_function_arn `default_arn`;
 * client_context and cognito_identity are optional printable-ASCII strings of at most
 * EF_INVOKE_HEADER_MAX bytes. Returns 0, -EINVAL (message names the parameter) or -ENOMEM. */
int ef_invocation_parse(const cJSON *params, long long default_deadline_ms, const char *default_arn,
                        struct ef_invocation **ret_inv, ef_error *err);

/* Frees an invocation that holds no request (one that failed validation). */
void ef_invocation_free(struct ef_invocation *inv);

void ef_invocations_init(struct ef_invocations *invs, struct ef_log_capture *capture);

/* Takes ownership of `inv` (whose `req` is set). After a terminal failure it is answered at
 * once with that failure, marked "late" when the failure was already answered to another
 * invocation (see `fail_answered`). Returns 0, or -ESHUTDOWN (the runtime is draining after a
 * timeout: it takes no new invocation), -EEXIST (its request id is queued or in flight) or -ENOSPC
 * (the queue is full); `inv` stays the caller's then. */
int ef_invocations_submit(struct ef_invocations *invs, struct ef_invocation *inv);

/* Serves an `invoke` request (docs/rpc.md): parses `params` and submits the invocation, whose
 * Timeout (`timeout_ms`) counts from its hand-out when params have no deadline_ms; until then it
 * waits at most `allowance_ms` more. `default_arn` stands in for a missing invoked_function_arn.
 * Returns 0 when it was submitted (`req` is answered when it ends); otherwise `req` has been
 * answered with the reason (a draining runtime's refusal says so in its data) and a negative
 * errno is returned. */
int ef_invocations_accept(struct ef_invocations *invs, ef_rpc_request *req, const cJSON *params,
                          long long timeout_ms, long long allowance_ms, const char *default_arn);

/* Hands out the oldest queued invocation: it moves in flight and its log starts here, or, when
 * no other invocation is in flight, where the last answered log ended: what the runtime wrote
 * while idle (its start-up output, for the first one) comes first in it. NULL when nothing is
 * queued or `max_in_flight` invocations are already in flight. */
struct ef_invocation *ef_invocations_next(struct ef_invocations *invs);

/* The in-flight invocation with this id, or NULL. */
struct ef_invocation *ef_invocations_find(struct ef_invocations *invs, const char *id, size_t len);

/* True when an invocation with this id finished recently. */
bool ef_invocations_finished_recently(const struct ef_invocations *invs, const char *id,
                                      size_t len);

/* Answers the invocation's `invoke` with status "ok" (error_type NULL) or "error", the payload
 * (`len` bytes with a NUL after them; as "payload" or "payload_b64", see ef_payload_add), its
 * log and, when it was handed out, "wait_ms", then frees it. Runs the on_queued hook, as the
 * invocation's place in flight is free again. */
void ef_invocations_finish(struct ef_invocations *invs, struct ef_invocation *inv,
                           const char *error_type, const char *payload, size_t len);

/* Fails an invocation in flight with Function.ResponseSizeTooLarge, for a response body the
 * Runtime API refused as too large: the one with request id `id` (`len` bytes) when the refused
 * request named it, else the only one in flight. Returns true when one was failed; false when
 * the id is not in flight, or without an id when none or several are (the body cannot be
 * attributed then). */
bool ef_invocations_fail_oversized(struct ef_invocations *invs, const char *id, size_t len);

/* Answers every invocation (queued or in flight) whose deadline is at or before `now_ms`
 * (ef_now_monotonic_ms) with status "timeout" and its log. Returns how many were answered. */
size_t ef_invocations_expire(struct ef_invocations *invs, long long now_ms);

/* Starts the drain after a timeout (see `draining`); runs on_drained at once when nothing is
 * queued or in flight. Calling it again while draining does nothing more. */
void ef_invocations_drain(struct ef_invocations *invs);

/* How many invocations are queued or in flight. */
size_t ef_invocations_pending(const struct ef_invocations *invs);

/* The earliest deadline of any pending invocation (monotonic ms, as ef_now_monotonic_ms), or 0
 * when there is none. */
long long ef_invocations_next_deadline(const struct ef_invocations *invs);

/* Starts `timer` with `cb` at the earliest deadline of a pending invocation (at once when it has
 * passed), or stops it when none is pending. */
void ef_invocations_arm_deadline(const struct ef_invocations *invs, uv_timer_t *timer,
                                 uv_timer_cb cb);

/* Records an init error (`doc` is the error document) as the terminal failure, unless one is
 * already recorded, and fails every queued and in-flight invocation with it; then, the first
 * time, runs on_init_failed. Every answer carrying an init error has "init_error": true, so that
 * the caller hands the container no new invocation. */
void ef_invocations_fail_init(struct ef_invocations *invs, const char *error_type, const char *doc);

/* Records the runtime's exit (`how` is "exit status N" or "signal: NAME") as the terminal
 * failure, unless one is already recorded, and fails every invocation with
 * Runtime.ExitError. */
void ef_invocations_fail_exit(struct ef_invocations *invs, const char *how);

/* Builds the Runtime.ExitError document for one request (malloc'd; NULL on allocation failure):
 * {"errorType":"Runtime.ExitError","errorMessage":"RequestId: <id> Error: Runtime exited with
 * error: <how>"}. */
char *ef_exit_error_doc(const char *request_id, const char *how);

/* Answers every queued and in-flight invocation with the RPC error `code` and `message`, as a
 * closed connection would (the caller's view: the runtime went away with the container). */
void ef_invocations_abort(struct ef_invocations *invs, int code, const char *message);

/* Fails whatever is left (as an exit with `how`) and frees the failure record. */
void ef_invocations_free(struct ef_invocations *invs, const char *how);

/* Makes the invocations ready for a new runtime after the previous one ended: whatever is still
 * queued or in flight fails (as an exit with `how`), and the terminal failure, the drain, the
 * recently finished ids, the peak memory and the log position are forgotten (the caller empties
 * the capture with ef_log_capture_reset). The capture and the hooks stay; `runtime_pid` and
 * `max_in_flight` are the caller's to set. */
void ef_invocations_reset(struct ef_invocations *invs, const char *how);
