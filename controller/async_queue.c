#include "controller/async_queue.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"

/* Schema migrations of the queue's tables: step i brings `async_schema.version` from i to i + 1.
 * Steps are appended, never edited. The function store versions its own tables with
 * PRAGMA user_version; the two never touch each other's tables. */
static const char *const migrations[] = {
    /* 0 → 1. `active` is 1 while the event is unfinished (queued, running, failed): it is what
     * per-function ordering looks at. `due_ms` is set only on events a claim may take, so that
     * the claim is one index lookup in both orderings. */
    "CREATE TABLE async_events ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " request_id TEXT NOT NULL UNIQUE,"
    " function_name TEXT NOT NULL,"
    " qualifier TEXT NOT NULL,"
    " payload TEXT NOT NULL,"
    " status INTEGER NOT NULL,"
    " active INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL,"
    " refusals INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL,"
    " next_attempt_ms INTEGER NOT NULL,"
    " due_ms INTEGER,"
    " result TEXT,"
    " result_size INTEGER NOT NULL DEFAULT 0,"
    " error_type TEXT,"
    " error_message TEXT,"
    " condition TEXT"
    ");"
    "CREATE INDEX async_events_due ON async_events (due_ms, seq);"
    "CREATE INDEX async_events_function ON async_events (function_name, active, seq);"
    "CREATE INDEX async_events_dead ON async_events (function_name, status, seq);"
    "CREATE INDEX async_events_age ON async_events (status, updated_ms);",
};

#define SCHEMA_VERSION ((int)EF_ARRAY_SIZE(migrations))

/* Every query that returns events selects these columns in this order, then the payload when
 * it is wanted. */
#define EVENT_COLUMNS                                                                              \
    "seq, request_id, function_name, qualifier, status, attempts, refusals, created_ms, "          \
    "updated_ms, next_attempt_ms, result, error_type, error_message, condition, result_size"
#define PAYLOAD_COLUMN 15

enum stmt_id {
    ST_INSERT,
    ST_FUNCTION_ACTIVE,
    ST_CLAIM_SELECT,
    ST_MARK_RUNNING,
    ST_DEAD_LETTER,
    ST_PROMOTE,
    ST_FINISH,
    ST_NEXT_DUE,
    ST_GET,
    ST_DEAD_LIST,
    ST_SWEEP,
    ST_COUNTS,
    ST_HAS_FUNCTION,
    ST_COUNT_
};

static const char *const stmt_sql[ST_COUNT_] = {
    [ST_INSERT] = "INSERT INTO async_events (request_id, function_name, qualifier, payload, "
                  "status, active, attempts, refusals, created_ms, updated_ms, next_attempt_ms, "
                  "due_ms) VALUES (?1, ?2, ?3, ?4, 0, 1, 0, 0, ?5, ?5, ?5, ?6);",
    [ST_FUNCTION_ACTIVE] = "SELECT 1 FROM async_events WHERE function_name = ?1 AND active = 1 "
                           "LIMIT 1;",
    [ST_CLAIM_SELECT] = "SELECT " EVENT_COLUMNS ", payload FROM async_events "
                        "WHERE due_ms <= ?1 ORDER BY due_ms, seq LIMIT 1;",
    [ST_MARK_RUNNING] = "UPDATE async_events SET status = 1, attempts = attempts + 1, "
                        "due_ms = NULL, updated_ms = ?2 WHERE seq = ?1;",
    [ST_DEAD_LETTER] = "UPDATE async_events SET status = 4, active = 0, due_ms = NULL, "
                       "updated_ms = ?2, condition = ?3, "
                       "error_message = COALESCE(error_message, ?4) WHERE seq = ?1;",
    [ST_PROMOTE] = "UPDATE async_events SET due_ms = next_attempt_ms WHERE seq = "
                   "(SELECT seq FROM async_events WHERE function_name = ?1 AND active = 1 "
                   "ORDER BY seq LIMIT 1) AND status IN (0, 2);",
    [ST_FINISH] = "UPDATE async_events SET status = ?2, active = ?3, due_ms = ?4, "
                  "next_attempt_ms = ?5, updated_ms = ?6, attempts = attempts - ?7, "
                  "refusals = refusals + ?7, condition = ?8, error_type = ?9, "
                  "error_message = ?10, result = CASE WHEN ?12 THEN ?11 ELSE result END, "
                  "result_size = CASE WHEN ?12 THEN ?13 ELSE result_size END "
                  "WHERE seq = ?1 AND status = 1;",
    [ST_NEXT_DUE] = "SELECT MIN(due_ms) FROM async_events;",
    [ST_GET] = "SELECT " EVENT_COLUMNS " FROM async_events WHERE request_id = ?1;",
    [ST_DEAD_LIST] = "SELECT " EVENT_COLUMNS ", payload FROM async_events "
                     "WHERE function_name = ?1 AND status = 4 AND seq > ?2 "
                     "AND (?3 IS NULL OR qualifier = ?3) ORDER BY seq LIMIT ?4;",
    [ST_SWEEP] = "DELETE FROM async_events WHERE seq IN (SELECT seq FROM async_events "
                 "WHERE status = ?1 AND updated_ms < ?2 LIMIT ?3);",
    [ST_COUNTS] = "SELECT status, COUNT(*) FROM async_events GROUP BY status;",
    [ST_HAS_FUNCTION] = "SELECT 1 FROM async_events WHERE function_name = ?1 LIMIT 1;",
};

/* What the WAL file is cut back to after a burst grew it (64 MiB). */
#define WAL_SIZE_LIMIT "67108864"

struct ef_async_queue {
    sqlite3 *db;
    enum ef_async_ordering ordering;
    sqlite3_stmt *stmts[ST_COUNT_];
    int wal_pages; /* frames in the WAL after this handle's last commit */
};

static int on_wal_commit(void *arg, sqlite3 *db, const char *name, int pages)
{
    (void)db;
    (void)name;
    ((ef_async_queue *)arg)->wal_pages = pages;
    return SQLITE_OK;
}

const char *ef_async_status_name(enum ef_async_status status)
{
    switch (status) {
    case EF_EVENT_QUEUED:
        return "queued";
    case EF_EVENT_RUNNING:
        return "running";
    case EF_EVENT_FAILED:
        return "failed";
    case EF_EVENT_SUCCEEDED:
        return "succeeded";
    case EF_EVENT_DEAD_LETTERED:
        return "dead-lettered";
    }
    return "unknown";
}

static int db_error(ef_error *err, sqlite3 *db, const char *what)
{
    return ef_error_set(err, -EIO, "%s: %s", what, db ? sqlite3_errmsg(db) : "out of memory");
}

static int exec(sqlite3 *db, const char *sql, ef_error *err)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int r = ef_error_set(err, -EIO, "the async queue cannot run '%.120s': %s", sql,
                             msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return r;
    }
    return 0;
}

/* Write transactions take the write lock at BEGIN, so that no statement inside them can fail
 * with SQLITE_BUSY half-way (the busy timeout applies to BEGIN IMMEDIATE). */
static int begin(ef_async_queue *q, ef_error *err)
{
    return exec(q->db, "BEGIN IMMEDIATE;", err);
}

/* Commits when r == 0, else rolls back and returns r unchanged. */
static int end(ef_async_queue *q, int r, ef_error *err)
{
    if (r == 0)
        return exec(q->db, "COMMIT;", err);
    exec(q->db, "ROLLBACK;", NULL);
    return r;
}

/* The cached statement `id`, reset and unbound; NULL with `err` set when it cannot be prepared. */
static sqlite3_stmt *stmt(ef_async_queue *q, enum stmt_id id, ef_error *err)
{
    sqlite3_stmt *st = q->stmts[id];
    if (!st) {
        if (sqlite3_prepare_v3(q->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) !=
            SQLITE_OK) {
            db_error(err, q->db, "the async queue cannot prepare a statement");
            return NULL;
        }
        q->stmts[id] = st;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return st;
}

/* Runs a statement that returns no row; resets it so that it holds no lock. */
static int step_done(ef_async_queue *q, sqlite3_stmt *st, const char *what, ef_error *err)
{
    int rc = sqlite3_step(st);
    int r = rc == SQLITE_DONE ? 0 : db_error(err, q->db, what);
    sqlite3_reset(st);
    return r;
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s, size_t len)
{
    if (s)
        sqlite3_bind_text(st, i, s, (int)len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static void bind_str(sqlite3_stmt *st, int i, const char *s)
{
    bind_text_or_null(st, i, s, s ? strlen(s) : 0);
}

void ef_async_queue_close(ef_async_queue *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < ST_COUNT_; i++)
        sqlite3_finalize(q->stmts[i]);
    sqlite3_close(q->db);
    free(q);
}

static int read_schema_version(ef_async_queue *q, int *ret, ef_error *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(q->db, "SELECT MAX(version) FROM async_schema;", -1, &st, NULL) !=
        SQLITE_OK)
        return db_error(err, q->db, "cannot read the async queue's schema version");
    int r = 0;
    if (sqlite3_step(st) == SQLITE_ROW)
        *ret = sqlite3_column_int(st, 0); /* NULL (no row yet) reads as 0 */
    else
        r = db_error(err, q->db, "cannot read the async queue's schema version");
    sqlite3_finalize(st);
    return r;
}

/* Brings the queue's tables to SCHEMA_VERSION in one transaction. */
static int migrate(ef_async_queue *q, ef_error *err)
{
    int r = begin(q, err);
    if (r < 0)
        return r;
    int version = 0;
    r = exec(q->db, "CREATE TABLE IF NOT EXISTS async_schema (version INTEGER NOT NULL);", err);
    if (r == 0)
        r = read_schema_version(q, &version, err);
    if (r == 0 && version > SCHEMA_VERSION)
        r = ef_error_set(err, -EPROTO,
                         "the async queue has schema version %d, newer than the %d this "
                         "controller knows; run a newer controller",
                         version, SCHEMA_VERSION);
    for (int v = version; r == 0 && v < SCHEMA_VERSION; v++)
        r = exec(q->db, migrations[v], err);
    if (r == 0 && version < SCHEMA_VERSION) {
        char sql[96];
        snprintf(sql, sizeof(sql),
                 "DELETE FROM async_schema; INSERT INTO async_schema VALUES (%d);", SCHEMA_VERSION);
        r = exec(q->db, sql, err);
    }
    return end(q, r, err);
}

int ef_async_queue_open(const char *path, enum ef_async_ordering ordering, bool fsync_commits,
                        ef_async_queue **ret_queue, ef_error *err)
{
    ef_async_queue *q = calloc(1, sizeof(*q));
    if (!q)
        return ef_error_set(err, -ENOMEM, "out of memory");
    q->ordering = ordering;

    /* The events are users' data: the database is created 0600, as the store does (SQLite gives
     * its -wal and -shm files the same mode). */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        free(q);
        return ef_error_set_errno(err, -errno, "cannot open database %s", path);
    }
    close(fd);

    int r;
    /* NOMUTEX: a handle is used by one thread at a time (see the header). */
    int rc = sqlite3_open_v2(
        path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        r = ef_error_set(err, -EIO, "cannot open database %s: %s", path,
                         q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(q->db, 1);
    /* The loop's handle may have to wait for the thread pool's commit (an fsync, or a
     * checkpoint), and the other way round. */
    sqlite3_busy_timeout(q->db, EF_ASYNC_BUSY_TIMEOUT_MS);
    r = exec(q->db, "PRAGMA journal_mode=WAL;", err);
    if (r == 0)
        r = exec(q->db, fsync_commits ? "PRAGMA synchronous=FULL;" : "PRAGMA synchronous=NORMAL;",
                 err);
    /* Checkpoints (copying the WAL into the database, with fsyncs) are left to the fsync'ing
     * handle, which runs off the event loop: the loop's handle only notes how long the WAL has
     * grown (ef_async_queue_wal_pages), and its owner asks the other handle for a checkpoint
     * (ef_async_queue_checkpoint). Without that, claims and outcomes alone, with no new event
     * committed, would grow the WAL without bound. */
    if (r == 0 && !fsync_commits) {
        r = exec(q->db, "PRAGMA wal_autocheckpoint=0;", err);
        sqlite3_wal_hook(q->db, on_wal_commit, q);
    }
    /* A WAL that grew in a burst is cut back to this size once a checkpoint let it restart. */
    if (r == 0)
        r = exec(q->db, "PRAGMA journal_size_limit=" WAL_SIZE_LIMIT ";", err);
    if (r == 0)
        r = migrate(q, err);
    if (r < 0)
        goto fail;
    *ret_queue = q;
    return 0;

fail:
    ef_async_queue_close(q);
    return r;
}

static char *column_dup(sqlite3_stmt *st, int i, size_t *ret_len)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    size_t len = (size_t)sqlite3_column_bytes(st, i);
    if (ret_len)
        *ret_len = len;
    if (!t)
        return NULL;
    char *s = malloc(len + 1);
    if (s) {
        memcpy(s, t, len);
        s[len] = '\0';
    }
    return s;
}

void ef_async_event_free(struct ef_async_event *ev)
{
    if (!ev)
        return;
    free(ev->request_id);
    free(ev->function_name);
    free(ev->qualifier);
    free(ev->payload);
    free(ev->result);
    free(ev->error_type);
    free(ev->error_message);
    free(ev->condition);
    free(ev);
}

/* Reads the current row (EVENT_COLUMNS, and the payload when `with_payload`). */
static int read_event(sqlite3_stmt *st, bool with_payload, struct ef_async_event **ret_ev,
                      ef_error *err)
{
    struct ef_async_event *ev = calloc(1, sizeof(*ev));
    if (!ev)
        return ef_error_set(err, -ENOMEM, "out of memory");
    ev->seq = sqlite3_column_int64(st, 0);
    ev->request_id = column_dup(st, 1, NULL);
    ev->function_name = column_dup(st, 2, NULL);
    ev->qualifier = column_dup(st, 3, NULL);
    ev->status = (enum ef_async_status)sqlite3_column_int(st, 4);
    ev->attempts = sqlite3_column_int64(st, 5);
    ev->refusals = sqlite3_column_int64(st, 6);
    ev->created_ms = sqlite3_column_int64(st, 7);
    ev->updated_ms = sqlite3_column_int64(st, 8);
    ev->next_attempt_ms = sqlite3_column_int64(st, 9);
    bool ok = ev->request_id && ev->function_name && ev->qualifier;
    if (sqlite3_column_type(st, 10) != SQLITE_NULL)
        ok = ok && (ev->result = column_dup(st, 10, &ev->result_len)) != NULL;
    if (sqlite3_column_type(st, 11) != SQLITE_NULL)
        ok = ok && (ev->error_type = column_dup(st, 11, NULL)) != NULL;
    if (sqlite3_column_type(st, 12) != SQLITE_NULL)
        ok = ok && (ev->error_message = column_dup(st, 12, NULL)) != NULL;
    if (sqlite3_column_type(st, 13) != SQLITE_NULL)
        ok = ok && (ev->condition = column_dup(st, 13, NULL)) != NULL;
    ev->result_size = sqlite3_column_int64(st, 14);
    if (with_payload)
        ok = ok && (ev->payload = column_dup(st, PAYLOAD_COLUMN, &ev->payload_len)) != NULL;
    if (!ok) {
        ef_async_event_free(ev);
        return ef_error_set(err, -ENOMEM, "out of memory");
    }
    *ret_ev = ev;
    return 0;
}

int ef_async_queue_enqueue(ef_async_queue *q, const struct ef_async_new_event *events, size_t n,
                           ef_error *err)
{
    int r = begin(q, err);
    if (r < 0)
        return r;
    for (size_t i = 0; r == 0 && i < n; i++) {
        const struct ef_async_new_event *e = &events[i];
        bool due = true;
        if (q->ordering == EF_ASYNC_PER_FUNCTION) {
            /* Behind an unfinished event of the same function, an event waits for its turn. */
            sqlite3_stmt *st = stmt(q, ST_FUNCTION_ACTIVE, err);
            if (!st) {
                r = -EIO;
                break;
            }
            bind_str(st, 1, e->function_name);
            int rc = sqlite3_step(st);
            sqlite3_reset(st);
            if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
                r = db_error(err, q->db, "cannot look at the function's queue");
                break;
            }
            due = rc == SQLITE_DONE;
        }
        sqlite3_stmt *st = stmt(q, ST_INSERT, err);
        if (!st) {
            r = -EIO;
            break;
        }
        bind_str(st, 1, e->request_id);
        bind_str(st, 2, e->function_name);
        bind_str(st, 3, e->qualifier);
        sqlite3_bind_text(st, 4, e->payload, (int)e->payload_len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, e->created_ms);
        if (due)
            sqlite3_bind_int64(st, 6, e->created_ms);
        else
            sqlite3_bind_null(st, 6);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc == SQLITE_CONSTRAINT_UNIQUE)
            r = ef_error_set(err, -EEXIST, "an event with request id %s is already queued",
                             e->request_id);
        else if (rc != SQLITE_DONE)
            r = db_error(err, q->db, "cannot store the event");
    }
    return end(q, r, err);
}

/* Per-function order: the function's next unfinished event becomes due. */
static int promote_next(ef_async_queue *q, const char *function_name, ef_error *err)
{
    if (q->ordering != EF_ASYNC_PER_FUNCTION)
        return 0;
    sqlite3_stmt *st = stmt(q, ST_PROMOTE, err);
    if (!st)
        return -EIO;
    bind_str(st, 1, function_name);
    return step_done(q, st, "cannot schedule the function's next event", err);
}

/* Inside the claim's transaction: turns the claimed row into a dead letter. `why` becomes its
 * ErrorMessage when no attempt left one (an event that never ran has none). */
static int dead_letter_in_claim(ef_async_queue *q, struct ef_async_event *ev, int64_t now_ms,
                                const char *condition, const char *why, ef_error *err)
{
    sqlite3_stmt *st = stmt(q, ST_DEAD_LETTER, err);
    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, ev->seq);
    sqlite3_bind_int64(st, 2, now_ms);
    bind_str(st, 3, condition);
    bind_str(st, 4, why);
    int r = step_done(q, st, "cannot dead-letter the event", err);
    if (r == 0)
        r = promote_next(q, ev->function_name, err);
    if (r == 0) {
        ev->condition = strdup(condition);
        if (!ev->condition)
            return ef_error_set(err, -ENOMEM, "out of memory");
        ev->status = EF_EVENT_DEAD_LETTERED;
        ev->updated_ms = now_ms;
        if (!ev->error_message) {
            ev->error_message = strdup(why);
            if (!ev->error_message)
                return ef_error_set(err, -ENOMEM, "out of memory");
        }
    }
    return r;
}

/* Whether any event is due, read without the write lock: a claim that finds nothing (the common
 * case when the loop looks after every commit and every delivery) then never waits for a commit
 * in progress on the other connection. */
static int any_due(ef_async_queue *q, int64_t now_ms, ef_error *err)
{
    int64_t due = 0;
    int r = ef_async_queue_next_due(q, &due, err);
    if (r < 0)
        return r;
    return due <= now_ms ? 0 : -ENOENT;
}

int ef_async_queue_claim(ef_async_queue *q, int64_t now_ms, const struct ef_async_policy *policy,
                         struct ef_async_event **ret_ev, ef_error *err)
{
    int r = any_due(q, now_ms, err);
    if (r < 0)
        return r;
    r = begin(q, err);
    if (r < 0)
        return r;
    struct ef_async_event *ev = NULL;
    sqlite3_stmt *st = stmt(q, ST_CLAIM_SELECT, err);
    if (!st) {
        r = -EIO;
        goto out;
    }
    sqlite3_bind_int64(st, 1, now_ms);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        r = -ENOENT;
    else if (rc != SQLITE_ROW)
        r = db_error(err, q->db, "cannot look for a due event");
    else
        r = read_event(st, true, &ev, err);
    sqlite3_reset(st);
    if (r < 0)
        goto out;

    if (ef_async_policy_expired(policy, ev->created_ms, now_ms)) {
        r = dead_letter_in_claim(q, ev, now_ms, EF_ASYNC_EVENT_AGE_EXCEEDED,
                                 "The event was not delivered within the maximum event age "
                                 "(--async-max-age).",
                                 err);
    } else if (ev->attempts >= policy->max_attempts) {
        /* Only an attempt interrupted by a restart leaves an event due with no attempt left. */
        r = dead_letter_in_claim(q, ev, now_ms, EF_ASYNC_RETRIES_EXHAUSTED,
                                 "Every attempt was made; the last one was interrupted by a stop "
                                 "of the controller.",
                                 err);
    } else {
        st = stmt(q, ST_MARK_RUNNING, err);
        if (!st) {
            r = -EIO;
            goto out;
        }
        sqlite3_bind_int64(st, 1, ev->seq);
        sqlite3_bind_int64(st, 2, now_ms);
        r = step_done(q, st, "cannot mark the event running", err);
        if (r == 0) {
            ev->status = EF_EVENT_RUNNING;
            ev->attempts++;
            ev->updated_ms = now_ms;
        }
    }
out:
    r = end(q, r, err);
    if (r < 0) {
        ef_async_event_free(ev);
        return r;
    }
    *ret_ev = ev;
    return 0;
}

int ef_async_queue_finish(ef_async_queue *q, int64_t seq, int64_t now_ms,
                          const struct ef_async_outcome *o, ef_error *err)
{
    bool final = o->status == EF_EVENT_SUCCEEDED || o->status == EF_EVENT_DEAD_LETTERED;
    bool again = o->status == EF_EVENT_FAILED || o->status == EF_EVENT_QUEUED;
    if (!final && !again)
        return ef_error_set(err, -EINVAL, "an attempt cannot end in state %s",
                            ef_async_status_name(o->status));
    bool refused = o->refused || o->status == EF_EVENT_QUEUED;
    /* A refusal keeps the last function error's document, which says more than a throttle. */
    bool set_result = o->result || !refused;

    int r = begin(q, err);
    if (r < 0)
        return r;
    cleanup_free char *function_name = NULL;
    sqlite3_stmt *st = stmt(q, ST_FINISH, err);
    if (!st) {
        r = -EIO;
        goto out;
    }
    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_int(st, 2, (int)o->status);
    sqlite3_bind_int(st, 3, final ? 0 : 1);
    if (again)
        sqlite3_bind_int64(st, 4, o->next_attempt_ms);
    else
        sqlite3_bind_null(st, 4);
    sqlite3_bind_int64(st, 5, again ? o->next_attempt_ms : 0);
    sqlite3_bind_int64(st, 6, now_ms);
    sqlite3_bind_int(st, 7, refused ? 1 : 0);
    bind_str(st, 8, o->status == EF_EVENT_DEAD_LETTERED ? o->condition : NULL);
    bind_str(st, 9, o->error_type);
    bind_str(st, 10, o->error_message);
    bind_text_or_null(st, 11, o->result, o->result_len);
    sqlite3_bind_int(st, 12, set_result ? 1 : 0);
    sqlite3_bind_int64(st, 13, o->result ? (int64_t)o->result_len : o->result_size);
    r = step_done(q, st, "cannot record the attempt", err);
    if (r == 0 && sqlite3_changes(q->db) == 0)
        r = ef_error_set(err, -ESTALE, "event %lld is not running", (long long)seq);
    if (r == 0 && final && q->ordering == EF_ASYNC_PER_FUNCTION) {
        /* The finished event's function: its next event is due now. */
        sqlite3_stmt *g = NULL;
        if (sqlite3_prepare_v2(q->db, "SELECT function_name FROM async_events WHERE seq = ?1;", -1,
                               &g, NULL) != SQLITE_OK) {
            r = db_error(err, q->db, "cannot read the event");
            goto out;
        }
        sqlite3_bind_int64(g, 1, seq);
        if (sqlite3_step(g) == SQLITE_ROW)
            function_name = column_dup(g, 0, NULL);
        sqlite3_finalize(g);
        r = function_name ? promote_next(q, function_name, err)
                          : ef_error_set(err, -ENOMEM, "out of memory");
    }
out:
    return end(q, r, err);
}

/* What recovery does to the rows left `running`, by mode. ?1 is the time, ?2 the condition
 * (unused when retrying: an unused number below the highest still binds), ?3 the error type. */
static const char *const recover_sql[] = {
    [EF_ASYNC_INTERRUPTED_DEAD_LETTER] =
        "UPDATE async_events SET status = 4, active = 0, due_ms = NULL, next_attempt_ms = 0, "
        "updated_ms = ?1, condition = ?2, error_type = ?3, error_message = 'the controller "
        "stopped while this event was being delivered (attempt ' || attempts || '); it may or "
        "may not have run' WHERE status = 1;",
    [EF_ASYNC_INTERRUPTED_RETRY] =
        "UPDATE async_events SET status = 0, next_attempt_ms = ?1, updated_ms = ?1, "
        "error_type = ?3, error_message = 'the controller stopped during attempt ' || attempts "
        "|| '; the function may have run; the event is delivered again' WHERE status = 1;",
};

int ef_async_queue_recover(ef_async_queue *q, int64_t now_ms, enum ef_async_interrupted mode,
                           int64_t *ret_interrupted, ef_error *err)
{
    if (mode != EF_ASYNC_INTERRUPTED_DEAD_LETTER && mode != EF_ASYNC_INTERRUPTED_RETRY)
        return ef_error_set(err, -EINVAL, "unknown handling %d of interrupted events", (int)mode);
    int r = begin(q, err);
    if (r < 0)
        return r;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(q->db, recover_sql[mode], -1, &st, NULL) != SQLITE_OK) {
        r = db_error(err, q->db, "cannot prepare the recovery");
        goto out;
    }
    sqlite3_bind_int64(st, 1, now_ms);
    bind_str(st, 2, EF_ASYNC_INTERRUPTED);
    bind_str(st, 3, EF_ASYNC_INTERRUPTED_ERROR);
    r = step_done(q, st, "cannot recover interrupted events", err);
    int64_t interrupted = r == 0 ? sqlite3_changes(q->db) : 0;
    sqlite3_finalize(st);
    if (r < 0)
        goto out;
    /* Which events are due depends on the ordering, which may differ from the last run's; in
     * per-function order, a function whose interrupted event was dead-lettered moves on to its
     * next one here. */
    if (q->ordering == EF_ASYNC_OLDEST_FIRST)
        r = exec(q->db,
                 "UPDATE async_events SET due_ms = CASE WHEN status IN (0, 2) "
                 "THEN next_attempt_ms END WHERE active = 1;",
                 err);
    else
        r = exec(q->db,
                 "UPDATE async_events SET due_ms = NULL WHERE active = 1;"
                 "UPDATE async_events SET due_ms = next_attempt_ms WHERE status IN (0, 2) AND "
                 "seq IN (SELECT MIN(seq) FROM async_events WHERE active = 1 "
                 "GROUP BY function_name);",
                 err);
    if (r == 0 && ret_interrupted)
        *ret_interrupted = interrupted;
out:
    return end(q, r, err);
}

int ef_async_queue_release(ef_async_queue *q, int64_t seq, int64_t now_ms, ef_error *err)
{
    int r = begin(q, err);
    if (r < 0)
        return r;
    sqlite3_stmt *st = NULL;
    /* Back to `failed` when an earlier attempt reached the function (its retry was what was
     * claimed), else to `queued`. In per-function order the event is its function's oldest
     * unfinished one, so making it due keeps the order. */
    if (sqlite3_prepare_v2(q->db,
                           "UPDATE async_events SET status = CASE WHEN attempts > 1 THEN 2 ELSE 0 "
                           "END, attempts = attempts - 1, next_attempt_ms = ?2, due_ms = ?2, "
                           "updated_ms = ?2 WHERE seq = ?1 AND status = 1;",
                           -1, &st, NULL) != SQLITE_OK) {
        r = db_error(err, q->db, "cannot prepare the release of an attempt");
        goto out;
    }
    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_int64(st, 2, now_ms);
    r = step_done(q, st, "cannot give the attempt back", err);
    if (r == 0 && sqlite3_changes(q->db) == 0)
        r = ef_error_set(err, -ESTALE, "event %lld is not running", (long long)seq);
    sqlite3_finalize(st);
out:
    return end(q, r, err);
}

int ef_async_queue_next_due(ef_async_queue *q, int64_t *ret_ms, ef_error *err)
{
    sqlite3_stmt *st = stmt(q, ST_NEXT_DUE, err);
    if (!st)
        return -EIO;
    int r;
    if (sqlite3_step(st) != SQLITE_ROW)
        r = db_error(err, q->db, "cannot find the next due event");
    else if (sqlite3_column_type(st, 0) == SQLITE_NULL)
        r = -ENOENT;
    else {
        *ret_ms = sqlite3_column_int64(st, 0);
        r = 0;
    }
    sqlite3_reset(st);
    return r;
}

int ef_async_queue_get(ef_async_queue *q, const char *request_id, struct ef_async_event **ret_ev,
                       ef_error *err)
{
    sqlite3_stmt *st = stmt(q, ST_GET, err);
    if (!st)
        return -EIO;
    bind_str(st, 1, request_id);
    int rc = sqlite3_step(st);
    int r;
    if (rc == SQLITE_DONE)
        r = -ENOENT;
    else if (rc != SQLITE_ROW)
        r = db_error(err, q->db, "cannot look the invocation up");
    else
        r = read_event(st, false, ret_ev, err);
    sqlite3_reset(st);
    return r;
}

void ef_async_page_free(struct ef_async_page *page)
{
    for (size_t i = 0; i < page->n; i++)
        ef_async_event_free(page->items[i]);
    free(page->items);
    page->items = NULL;
    page->n = 0;
}

int ef_async_queue_dead_letters(ef_async_queue *q, const char *name, const char *qualifier,
                                int64_t after_seq, size_t limit, struct ef_async_page *ret_page,
                                ef_error *err)
{
    struct ef_async_page page = {0};
    page.items = calloc(limit ? limit : 1, sizeof(*page.items));
    if (!page.items)
        return ef_error_set(err, -ENOMEM, "out of memory");
    sqlite3_stmt *st = stmt(q, ST_DEAD_LIST, err);
    if (!st) {
        free(page.items);
        return -EIO;
    }
    bind_str(st, 1, name);
    sqlite3_bind_int64(st, 2, after_seq);
    bind_str(st, 3, qualifier);
    sqlite3_bind_int64(st, 4, (int64_t)limit + 1); /* one more tells whether a page follows */
    int r = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (page.n == limit) {
            page.more = true;
            break;
        }
        r = read_event(st, true, &page.items[page.n], err);
        if (r < 0)
            break;
        page.n++;
    }
    if (r == 0 && rc != SQLITE_ROW && rc != SQLITE_DONE)
        r = db_error(err, q->db, "cannot list the dead letters");
    sqlite3_reset(st);
    if (r < 0) {
        ef_async_page_free(&page);
        return r;
    }
    *ret_page = page;
    return 0;
}

/* Deletes up to `max_rows` rows in `status` last updated before `before_ms`. */
static int sweep_status(ef_async_queue *q, enum ef_async_status status, int64_t before_ms,
                        size_t max_rows, size_t *ret_n, ef_error *err)
{
    *ret_n = 0;
    if (max_rows == 0)
        return 0;
    sqlite3_stmt *st = stmt(q, ST_SWEEP, err);
    if (!st)
        return -EIO;
    sqlite3_bind_int(st, 1, (int)status);
    sqlite3_bind_int64(st, 2, before_ms);
    sqlite3_bind_int64(st, 3, (int64_t)max_rows);
    int r = step_done(q, st, "cannot delete old events", err);
    if (r == 0)
        *ret_n = (size_t)sqlite3_changes(q->db);
    return r;
}

void ef_async_queue_set_busy_timeout(ef_async_queue *q, int ms)
{
    sqlite3_busy_timeout(q->db, ms);
}

int ef_async_queue_wal_pages(const ef_async_queue *q)
{
    return q->wal_pages;
}

int ef_async_queue_checkpoint(ef_async_queue *q, ef_error *err)
{
    int rc = sqlite3_wal_checkpoint_v2(q->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY)
        return db_error(err, q->db, "cannot checkpoint the async queue's WAL");
    return 0;
}

int ef_async_queue_sweep(ef_async_queue *q, int64_t succeeded_before_ms, int64_t dead_before_ms,
                         size_t max_rows, size_t *ret_succeeded, size_t *ret_dead, ef_error *err)
{
    int r = begin(q, err);
    if (r < 0)
        return r;
    size_t ok = 0, dead = 0;
    r = sweep_status(q, EF_EVENT_SUCCEEDED, succeeded_before_ms, max_rows, &ok, err);
    if (r == 0)
        r = sweep_status(q, EF_EVENT_DEAD_LETTERED, dead_before_ms, max_rows - ok, &dead, err);
    r = end(q, r, err);
    if (r < 0)
        return r;
    *ret_succeeded = ok;
    *ret_dead = dead;
    return 0;
}

int ef_async_queue_counts(ef_async_queue *q, int64_t ret_counts[5], ef_error *err)
{
    int64_t counts[5] = {0};
    sqlite3_stmt *st = stmt(q, ST_COUNTS, err);
    if (!st)
        return -EIO;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int s = sqlite3_column_int(st, 0);
        if (s >= 0 && s < 5)
            counts[s] = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return db_error(err, q->db, "cannot count the events");
    memcpy(ret_counts, counts, sizeof(counts));
    return 0;
}

int ef_async_queue_has_function(ef_async_queue *q, const char *name, bool *ret_has, ef_error *err)
{
    sqlite3_stmt *st = stmt(q, ST_HAS_FUNCTION, err);
    if (!st)
        return -EIO;
    bind_str(st, 1, name);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_error(err, q->db, "cannot look for the function's events");
    *ret_has = rc == SQLITE_ROW;
    return 0;
}
