#include "controller/store.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "controller/codestore.h"

struct ef_store {
    sqlite3 *db;
    sqlite3_stmt *insert;
    sqlite3_stmt *get;
};

static const char schema[] = "CREATE TABLE IF NOT EXISTS functions ("
                             " name TEXT PRIMARY KEY NOT NULL,"
                             " runtime TEXT NOT NULL,"
                             " handler TEXT NOT NULL,"
                             " memory_mb INTEGER NOT NULL,"
                             " timeout_s INTEGER NOT NULL,"
                             " environment TEXT NOT NULL,"
                             " description TEXT NOT NULL,"
                             " code_sha256_hex TEXT NOT NULL,"
                             " code_size INTEGER NOT NULL,"
                             " last_modified TEXT NOT NULL,"
                             " config_hash TEXT NOT NULL"
                             ") WITHOUT ROWID;";

static const char insert_sql[] =
    "INSERT INTO functions (name, runtime, handler, memory_mb, timeout_s, environment, "
    "description, code_sha256_hex, code_size, last_modified, config_hash) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11);";

static const char get_sql[] =
    "SELECT name, runtime, handler, memory_mb, timeout_s, environment, description, "
    "code_sha256_hex, code_size, last_modified, config_hash FROM functions WHERE name = ?1;";

static int db_error(ef_error *err, sqlite3 *db, const char *what)
{
    return ef_error_set(err, -EIO, "%s: %s", what, db ? sqlite3_errmsg(db) : "out of memory");
}

static int exec(sqlite3 *db, const char *sql, ef_error *err)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int r = ef_error_set(err, -EIO, "cannot run '%s': %s", sql, msg ? msg : "unknown");
        sqlite3_free(msg);
        return r;
    }
    return 0;
}

void ef_store_close(ef_store *store)
{
    if (!store)
        return;
    sqlite3_finalize(store->insert);
    sqlite3_finalize(store->get);
    sqlite3_close(store->db);
    free(store);
}

int ef_store_open(const char *path, ef_store **ret_store, ef_error *err)
{
    ef_store *s = calloc(1, sizeof(*s));
    if (!s)
        return ef_error_set(err, -ENOMEM, "out of memory");

    /* The database holds the functions' environment variables, which are often secrets: create
     * it 0600 (SQLite gives its -wal and -shm files the same mode). */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        free(s);
        return ef_error_set_errno(err, -errno, "cannot open database %s", path);
    }
    close(fd);

    int r;
    int rc = sqlite3_open_v2(
        path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        r = ef_error_set(err, -EIO, "cannot open database %s: %s", path,
                         s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    /* Another process holding the database (a second controller on the same data dir) makes
     * statements wait a little rather than fail at once. */
    sqlite3_busy_timeout(s->db, 2000);

    /* journal_mode answers with a row naming the mode it ended up in; WAL can be refused (e.g.
     * on a file system without shared memory), and then the default rollback journal with
     * synchronous=FULL is just as durable. */
    r = exec(s->db, "PRAGMA journal_mode=WAL;", err);
    if (r < 0)
        goto fail;
    r = exec(s->db, "PRAGMA synchronous=FULL;", err);
    if (r < 0)
        goto fail;
    r = exec(s->db, schema, err);
    if (r < 0)
        goto fail;

    if (sqlite3_prepare_v2(s->db, insert_sql, -1, &s->insert, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, get_sql, -1, &s->get, NULL) != SQLITE_OK) {
        r = db_error(err, s->db, "cannot prepare statements");
        goto fail;
    }
    *ret_store = s;
    return 0;

fail:
    ef_store_close(s);
    return r;
}

int ef_store_insert_function(ef_store *store, const struct ef_function *fn, ef_error *err)
{
    sqlite3_stmt *st = store->insert;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    sqlite3_bind_text(st, 1, fn->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, fn->runtime, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, fn->handler, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, fn->memory_mb);
    sqlite3_bind_int64(st, 5, fn->timeout_s);
    sqlite3_bind_text(st, 6, fn->environment, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, fn->description, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, fn->code_sha256_hex, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 9, fn->code_size);
    sqlite3_bind_text(st, 10, fn->last_modified, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 11, fn->config_hash, -1, SQLITE_STATIC);

    /* A single INSERT in autocommit mode is its own transaction. */
    int rc = sqlite3_step(st);
    int r = 0;
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        r = ef_error_set(err, -EEXIST, "Function already exist: %s", fn->name);
    else if (rc != SQLITE_DONE)
        r = db_error(err, store->db, "cannot store function");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return r;
}

static char *column_strdup(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return strdup(t ? (const char *)t : "");
}

void ef_function_free(struct ef_function *fn)
{
    if (!fn)
        return;
    free(fn->name);
    free(fn->runtime);
    free(fn->handler);
    free(fn->environment);
    free(fn->description);
    free(fn->code_sha256_hex);
    free(fn->last_modified);
    free(fn->config_hash);
    free(fn);
}

int ef_store_get_function(ef_store *store, const char *name, struct ef_function **ret_fn,
                          ef_error *err)
{
    sqlite3_stmt *st = store->get;
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);

    int rc = sqlite3_step(st);
    int r = 0;
    if (rc == SQLITE_DONE) {
        r = ef_error_set(err, -ENOENT, "Function not found: %s", name);
    } else if (rc != SQLITE_ROW) {
        r = db_error(err, store->db, "cannot read function");
    } else {
        struct ef_function *fn = calloc(1, sizeof(*fn));
        if (fn) {
            fn->name = column_strdup(st, 0);
            fn->runtime = column_strdup(st, 1);
            fn->handler = column_strdup(st, 2);
            fn->memory_mb = sqlite3_column_int64(st, 3);
            fn->timeout_s = sqlite3_column_int64(st, 4);
            fn->environment = column_strdup(st, 5);
            fn->description = column_strdup(st, 6);
            fn->code_sha256_hex = column_strdup(st, 7);
            fn->code_size = sqlite3_column_int64(st, 8);
            fn->last_modified = column_strdup(st, 9);
            fn->config_hash = column_strdup(st, 10);
        }
        if (!fn || !fn->name || !fn->runtime || !fn->handler || !fn->environment ||
            !fn->description || !fn->code_sha256_hex || !fn->last_modified || !fn->config_hash) {
            ef_function_free(fn);
            r = ef_error_set(err, -ENOMEM, "out of memory");
        } else {
            *ret_fn = fn;
        }
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return r;
}

int ef_function_compute_config_hash(struct ef_function *fn)
{
    /* Fields are separated by a byte that none of them can contain (all are validated text). */
    cleanup_free char *text = NULL;
    if (asprintf(&text, "%s\x1f%s\x1f%lld\x1f%lld\x1f%s", fn->runtime, fn->handler,
                 (long long)fn->memory_mb, (long long)fn->timeout_s, fn->environment) < 0)
        return -ENOMEM;
    char hex[EF_SHA256_HEX_LEN + 1];
    ef_sha256_hex(text, strlen(text), hex);
    char *copy = strdup(hex);
    if (!copy)
        return -ENOMEM;
    free(fn->config_hash);
    fn->config_hash = copy;
    return 0;
}
