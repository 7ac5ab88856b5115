/* The durable queue of asynchronous invocations (X-Amz-Invocation-Type: Event): a table in the
 * controller's SQLite database (<data>/controller.db, next to the function store's tables, with
 * its own schema version in `async_schema`).
 *
 * Every event is one row, numbered in the order it was accepted (`seq`, never reused), that goes
 * through these states:
 *
 *   queued ──claim──▶ running ──▶ succeeded
 *     ▲                 │ ├─────▶ dead-lettered (retries exhausted, too old, function gone)
 *     └─ due again ─────┘ └─────▶ failed (a function error; the next attempt is scheduled)
 *                                   └── due again ──▶ running …
 *
 * A refused attempt (throttled, the function never ran) goes back to `queued` and gives its
 * attempt back. An event is claimable when it is due (`due_ms` ≤ now); claims take the event
 * that has been due longest, oldest accepted first among equals. With per-function ordering only
 * the oldest unfinished event of each function is ever due, so a function's events run one at a
 * time in the order they were accepted.
 *
 * Crash safety: claiming marks the row `running` and counts the attempt in one transaction
 * before the caller invokes anything, so a row still `running` at the next start is an attempt
 * that was interrupted and may or may not have reached the function. ef_async_queue_recover()
 * then either dead-letters it at once (condition Interrupted: each event runs at most once per
 * attempt, and none is lost) or queues it again with its attempt counted (at least once, as
 * Lambda does), as the operator chose. An attempt the caller knows it never sent is given back
 * with ef_async_queue_release() instead, so that it is neither counted nor dead-lettered.
 *
 * A handle is one SQLite connection; use it from one thread at a time (the controller has one
 * on the loop thread and one on the thread pool, which SQLite serialises with its write lock,
 * waiting up to 5 s for it). Handles opened with `fsync_commits` commit with synchronous=FULL:
 * the WAL is fsync'ed before COMMIT returns, so a row survives a power loss from then on. The
 * others commit with synchronous=NORMAL: a commit survives a crash of the process (the WAL is
 * written before COMMIT returns) but a power loss may roll back the newest ones — which can only
 * make an event run again, never lose it, as long as events are inserted through an fsync'ing
 * handle. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "controller/async_policy.h"

typedef struct ef_async_queue ef_async_queue;

enum ef_async_status {
    EF_EVENT_QUEUED = 0,
    EF_EVENT_RUNNING = 1,
    EF_EVENT_FAILED = 2, /* the last attempt failed; another one is scheduled */
    EF_EVENT_SUCCEEDED = 3,
    EF_EVENT_DEAD_LETTERED = 4,
};

enum ef_async_ordering {
    EF_ASYNC_OLDEST_FIRST, /* any due event, several of one function at once */
    EF_ASYNC_PER_FUNCTION, /* one event of a function at a time, in acceptance order */
};

/* "queued", "running", "failed", "succeeded", "dead-lettered". */
const char *ef_async_status_name(enum ef_async_status status);

/* Opens a handle on the database at `path` (creating the tables if needed). Every handle on one
 * database must use the same ordering; ef_async_queue_recover() brings the rows to it. */
int ef_async_queue_open(const char *path, enum ef_async_ordering ordering, bool fsync_commits,
                        ef_async_queue **ret_queue, ef_error *err);

/* Closes a handle; NULL is fine. */
void ef_async_queue_close(ef_async_queue *q);

/* An event to insert. */
struct ef_async_new_event {
    const char *request_id; /* unique: the x-amzn-RequestId answered with 202 */
    const char *function_name;
    const char *qualifier; /* "$LATEST" or a version number */
    const char *payload;   /* the event, JSON */
    size_t payload_len;
    int64_t created_ms; /* when it was accepted (epoch ms); due at once */
};

/* Inserts `n` events in one transaction: all of them or, on failure, none. */
int ef_async_queue_enqueue(ef_async_queue *q, const struct ef_async_new_event *events, size_t n,
                           ef_error *err);

/* One event as stored. Every pointer is owned by the struct (ef_async_event_free). */
struct ef_async_event {
    int64_t seq;
    char *request_id;
    char *function_name;
    char *qualifier;
    char *payload; /* NULL unless asked for */
    size_t payload_len;
    enum ef_async_status status;
    int64_t attempts; /* attempts that reached or may have reached the function */
    int64_t refusals; /* attempts refused before the function ran (throttling, 5xx) */
    int64_t created_ms, updated_ms;
    int64_t next_attempt_ms; /* queued and failed events: when they are tried (again) */
    char *result;            /* the last response or error document; NULL when none or omitted */
    size_t result_len;
    int64_t result_size; /* the size of that document, also when it was too large to keep */
    char *error_type;    /* the last failure's type; NULL after a success */
    char *error_message; /* the last failure's message */
    char *condition;     /* dead-lettered events: why (async_policy.h) */
};

void ef_async_event_free(struct ef_async_event *ev);

/* Claims the event due longest at `now_ms`, in one transaction. Returns -ENOENT when none is
 * due, else 0 with *ret_ev (payload included) in one of two states:
 *   - EF_EVENT_RUNNING: its attempt is counted; the caller delivers it and reports the outcome
 *     with ef_async_queue_finish();
 *   - EF_EVENT_DEAD_LETTERED: it was older than the policy's max age, or had used all its
 *     attempts (an attempt interrupted by a restart); it is now a dead letter, and the caller
 *     only reports it and claims again. */
int ef_async_queue_claim(ef_async_queue *q, int64_t now_ms, const struct ef_async_policy *policy,
                         struct ef_async_event **ret_ev, ef_error *err);

/* How an attempt ended, for ef_async_queue_finish(). */
struct ef_async_outcome {
    /* SUCCEEDED, DEAD_LETTERED, FAILED (a function error, tried again at next_attempt_ms) or
     * QUEUED (refused before the function ran: tried again at next_attempt_ms, the attempt given
     * back). */
    enum ef_async_status status;
    int64_t next_attempt_ms;
    const char *condition;     /* DEAD_LETTERED */
    const char *error_type;    /* NULL for SUCCEEDED */
    const char *error_message; /* may be NULL */
    const char *result;        /* may be NULL */
    size_t result_len;
    int64_t result_size; /* with result NULL: the size of a document too large to keep */
    /* The attempt never reached the function: attempts - 1, refusals + 1 (also with a
     * dead letter that follows a refusal). Implied by QUEUED. */
    bool refused;
};

/* Records how the attempt of the running event `seq` ended, in one transaction; in per-function
 * order, a final state makes the function's next event due. -ESTALE when the event is not
 * running (it was finished already). */
int ef_async_queue_finish(ef_async_queue *q, int64_t seq, int64_t now_ms,
                          const struct ef_async_outcome *outcome, ef_error *err);

/* What becomes of an event whose attempt was interrupted (found `running` at start). */
enum ef_async_interrupted {
    /* A dead letter at once (condition Interrupted, ErrorType Controller.Interrupted): never
     * run again, so an event runs at most once per attempt the policy allows. The default. */
    EF_ASYNC_INTERRUPTED_DEAD_LETTER = 0,
    /* Queued again with its attempt counted (at least once, Lambda's behaviour); when that was
     * its last attempt, its next claim dead-letters it (RetriesExhausted). */
    EF_ASYNC_INTERRUPTED_RETRY,
};

/* At start, before any claim: every event left `running` by a crash or a stop is handled as
 * `mode` says (its interrupted attempt stays counted either way); which events are due is
 * recomputed for the handle's ordering. *ret_interrupted (may be NULL) gets the number of
 * events that were found running. */
int ef_async_queue_recover(ef_async_queue *q, int64_t now_ms, enum ef_async_interrupted mode,
                           int64_t *ret_interrupted, ef_error *err);

/* Gives back the attempt of the running event `seq` when its invocation was never sent (an
 * orderly stop caught it waiting for a slot or a container): the event is queued again as it
 * was before its claim, due at `now_ms`, its attempt not counted and its last error kept.
 * -ESTALE when the event is not running. */
int ef_async_queue_release(ef_async_queue *q, int64_t seq, int64_t now_ms, ef_error *err);

/* When the next event falls due (epoch ms; maybe in the past). -ENOENT when none is waiting. */
int ef_async_queue_next_due(ef_async_queue *q, int64_t *ret_ms, ef_error *err);

/* Looks an event up by request id (without its payload). -ENOENT when unknown. */
int ef_async_queue_get(ef_async_queue *q, const char *request_id, struct ef_async_event **ret_ev,
                       ef_error *err);

/* A page of dead letters. */
struct ef_async_page {
    struct ef_async_event **items;
    size_t n;
    bool more; /* another page follows the last item (its seq is the marker) */
};

void ef_async_page_free(struct ef_async_page *page);

/* Lists the dead letters of function `name` (only those of `qualifier` when it is not NULL), in
 * acceptance order after seq `after_seq` (0: from the first), at most `limit`, with payloads. */
int ef_async_queue_dead_letters(ef_async_queue *q, const char *name, const char *qualifier,
                                int64_t after_seq, size_t limit, struct ef_async_page *ret_page,
                                ef_error *err);

/* Deletes succeeded events last updated before `succeeded_before_ms` and dead letters last
 * updated before `dead_before_ms`, at most `max_rows` in all, in one transaction. Unfinished
 * events are never deleted. *ret_succeeded and *ret_dead get how many of each went. */
int ef_async_queue_sweep(ef_async_queue *q, int64_t succeeded_before_ms, int64_t dead_before_ms,
                         size_t max_rows, size_t *ret_succeeded, size_t *ret_dead, ef_error *err);

/* How long a handle waits for the other's write lock (a commit's fsync, a checkpoint). */
#define EF_ASYNC_BUSY_TIMEOUT_MS 5000

/* Changes that wait (0: a locked database fails at once, with -EIO). */
void ef_async_queue_set_busy_timeout(ef_async_queue *q, int ms);

/* The loop's handle (opened without fsync'd commits, which checkpoints nothing itself): how many
 * pages its last commit left in the WAL. Its owner asks the other handle for a checkpoint when
 * this grows (async_worker.c), so that the WAL does not grow without bound while no new event is
 * committed. */
int ef_async_queue_wal_pages(const ef_async_queue *q);

/* Copies what it can of the WAL into the database without waiting for anyone (a passive
 * checkpoint); for the handle that fsyncs, which runs off the event loop. */
int ef_async_queue_checkpoint(ef_async_queue *q, ef_error *err);

/* Row counts per state (indexed by enum ef_async_status). */
int ef_async_queue_counts(ef_async_queue *q, int64_t ret_counts[5], ef_error *err);

/* Whether function `name` has any event in the queue (any state). */
int ef_async_queue_has_function(ef_async_queue *q, const char *name, bool *ret_has, ef_error *err);
