#include "controller/store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "controller/codestore.h"

/* Function records read recently, so that a warm invocation does not cost an SQLite read
 * transaction (two fcntl locks and a page lookup). The controller is the only writer of the
 * functions tables and every write goes through this file, which empties the cache as it
 * begins (a read inside a write's transaction, in publish, reads a row the write has not
 * changed yet); the cache can therefore never serve a record the database no longer has. */
#define CACHE_ENTRIES 64

struct cached_function {
    struct ef_function *fn; /* NULL: a free entry */
    int64_t version;        /* 0 for $LATEST */
    uint64_t used;
};

struct ef_store {
    sqlite3 *db;
    /* The statements of the invocation path stay prepared; management calls prepare theirs. */
    sqlite3_stmt *insert;
    sqlite3_stmt *get_latest;
    sqlite3_stmt *get_version;
    struct cached_function cache[CACHE_ENTRIES];
    uint64_t cache_clock;
};

static void cache_clear(ef_store *store)
{
    for (unsigned i = 0; i < CACHE_ENTRIES; i++) {
        ef_function_free(store->cache[i].fn);
        store->cache[i].fn = NULL;
    }
}

/* Schema migrations: step i brings a database from user_version i to i + 1. A database written
 * before versions existed has user_version 0 and the functions table already; step 0 is
 * idempotent so that it and a fresh database take the same path. Later steps are appended,
 * never edited. */
static const char *const migrations[] = {
    /* 0 → 1: functions. */
    "CREATE TABLE IF NOT EXISTS functions ("
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
    ") WITHOUT ROWID;",
    /* 1 → 2: published versions and reserved concurrency. */
    "ALTER TABLE functions ADD COLUMN reserved_concurrency INTEGER;"
    "ALTER TABLE functions ADD COLUMN last_version INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE function_versions ("
    " function_name TEXT NOT NULL,"
    " version INTEGER NOT NULL,"
    " runtime TEXT NOT NULL,"
    " handler TEXT NOT NULL,"
    " memory_mb INTEGER NOT NULL,"
    " timeout_s INTEGER NOT NULL,"
    " environment TEXT NOT NULL,"
    " description TEXT NOT NULL,"
    " code_sha256_hex TEXT NOT NULL,"
    " code_size INTEGER NOT NULL,"
    " last_modified TEXT NOT NULL,"
    " config_hash TEXT NOT NULL,"
    " PRIMARY KEY (function_name, version)"
    ") WITHOUT ROWID;"
    "CREATE INDEX function_versions_code ON function_versions (code_sha256_hex);",
    /* 2 → 3: invocations one container serves at once. */
    "ALTER TABLE functions ADD COLUMN container_concurrency INTEGER NOT NULL DEFAULT 1;"
    "ALTER TABLE function_versions ADD COLUMN container_concurrency INTEGER NOT NULL DEFAULT 1;",
    /* 3 → 4: the network mode; every function stored before it had none. */
    "ALTER TABLE functions ADD COLUMN network TEXT NOT NULL DEFAULT 'none'"
    " CHECK (network IN ('none', 'bridge', 'host'));"
    "ALTER TABLE function_versions ADD COLUMN network TEXT NOT NULL DEFAULT 'none'"
    " CHECK (network IN ('none', 'bridge', 'host'));",
    /* 4 → 5: the execution role as the caller gave it (Lambda echoes it); functions stored before
     * show the placeholder they were always reported with. */
    "ALTER TABLE functions ADD COLUMN role TEXT NOT NULL DEFAULT '" EF_DEFAULT_ROLE "';"
    "ALTER TABLE function_versions ADD COLUMN role TEXT NOT NULL DEFAULT '" EF_DEFAULT_ROLE "';",
};

#define SCHEMA_VERSION ((int)EF_ARRAY_SIZE(migrations))

/* Every query that returns function records selects these columns in this order. */
#define RECORD_COLUMNS                                                                             \
    "runtime, handler, memory_mb, timeout_s, environment, description, code_sha256_hex, "          \
    "code_size, last_modified, config_hash, container_concurrency, network, role"

static const char insert_sql[] =
    "INSERT INTO functions (name, " RECORD_COLUMNS ") "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14);";

static const char get_latest_sql[] = "SELECT name, 0, " RECORD_COLUMNS ", reserved_concurrency "
                                     "FROM functions WHERE name = ?1;";

static const char get_version_sql[] =
    "SELECT v.function_name, v.version, v.runtime, v.handler, v.memory_mb, v.timeout_s, "
    "v.environment, v.description, v.code_sha256_hex, v.code_size, v.last_modified, "
    "v.config_hash, v.container_concurrency, v.network, v.role, f.reserved_concurrency "
    "FROM function_versions v JOIN functions f ON f.name = v.function_name "
    "WHERE v.function_name = ?1 AND v.version = ?2;";

static const char list_sql[] =
    "SELECT name, vnum, " RECORD_COLUMNS ", reserved_concurrency FROM ("
    " SELECT name, 0 AS vnum, " RECORD_COLUMNS ", reserved_concurrency FROM functions"
    " UNION ALL"
    " SELECT v.function_name, v.version, v.runtime, v.handler, v.memory_mb, v.timeout_s,"
    " v.environment, v.description, v.code_sha256_hex, v.code_size, v.last_modified,"
    " v.config_hash, v.container_concurrency, v.network, v.role, f.reserved_concurrency"
    " FROM function_versions v JOIN functions f ON f.name = v.function_name"
    ") WHERE (?1 IS NULL OR name = ?1) AND (?2 OR vnum = 0)"
    " AND (name > ?3 OR (name = ?3 AND vnum > ?4))"
    " ORDER BY name, vnum LIMIT ?5;";

static int db_error(ef_error *err, sqlite3 *db, const char *what)
{
    return ef_error_set(err, -EIO, "%s: %s", what, db ? sqlite3_errmsg(db) : "out of memory");
}

static int exec(sqlite3 *db, const char *sql, ef_error *err)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int r = ef_error_set(err, -EIO, "cannot run '%.200s': %s", sql, msg ? msg : "unknown");
        sqlite3_free(msg);
        return r;
    }
    return 0;
}

/* Ends a transaction begun with exec("BEGIN IMMEDIATE"): commits when r == 0, else rolls back
 * and returns r unchanged. */
static int end_transaction(ef_store *s, int r, ef_error *err)
{
    if (r == 0)
        return exec(s->db, "COMMIT;", err);
    exec(s->db, "ROLLBACK;", NULL);
    return r;
}

static sqlite3_stmt *prepare(ef_store *s, const char *sql, ef_error *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        db_error(err, s->db, "cannot prepare a statement");
        return NULL;
    }
    return st;
}

static void finalizep(sqlite3_stmt **st)
{
    sqlite3_finalize(*st);
}
#define cleanup_stmt __attribute__((cleanup(finalizep)))

void ef_store_close(ef_store *store)
{
    if (!store)
        return;
    cache_clear(store);
    sqlite3_finalize(store->insert);
    sqlite3_finalize(store->get_latest);
    sqlite3_finalize(store->get_version);
    sqlite3_close(store->db);
    free(store);
}

static int read_user_version(sqlite3 *db, int *ret, ef_error *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version;", -1, &st, NULL) != SQLITE_OK)
        return db_error(err, db, "cannot read the schema version");
    int r = 0;
    if (sqlite3_step(st) == SQLITE_ROW)
        *ret = sqlite3_column_int(st, 0);
    else
        r = db_error(err, db, "cannot read the schema version");
    sqlite3_finalize(st);
    return r;
}

/* Brings the schema to SCHEMA_VERSION in one transaction, so a crash mid-way leaves the old
 * schema intact. */
static int migrate(ef_store *s, ef_error *err)
{
    int r = exec(s->db, "BEGIN IMMEDIATE;", err);
    if (r < 0)
        return r;
    int version = 0;
    r = read_user_version(s->db, &version, err);
    if (r == 0 && version > SCHEMA_VERSION)
        r = ef_error_set(err, -EPROTO,
                         "the database has schema version %d, newer than the %d this controller "
                         "knows; run a newer controller",
                         version, SCHEMA_VERSION);
    for (int v = version; r == 0 && v < SCHEMA_VERSION; v++)
        r = exec(s->db, migrations[v], err);
    if (r == 0 && version < SCHEMA_VERSION) {
        char sql[64];
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d;", SCHEMA_VERSION);
        r = exec(s->db, sql, err);
    }
    return end_transaction(s, r, err);
}

/* Takes the group's and others' access to the open file `fd` away. */
static int tighten_fd(int fd, const char *path, ef_error *err)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return ef_error_set_errno(err, -errno, "cannot inspect %s", path);
    if ((st.st_mode & 077) && fchmod(fd, st.st_mode & 07700) < 0)
        return ef_error_set_errno(err, -errno, "cannot make %s private", path);
    return 0;
}

/* The database holds the functions' environment variables, which are often secrets: it is
 * created 0600, and SQLite gives its -wal and -shm files the mode of the database as it creates
 * them. A database (or a -wal or -shm a crash left behind) that an older controller created
 * with a wider mode is made private too. */
static int private_database(const char *path, ef_error *err)
{
    cleanup_close int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return ef_error_set_errno(err, -errno, "cannot open database %s", path);
    int r = tighten_fd(fd, path, err);
    for (size_t i = 0; r == 0 && i < 2; i++) {
        cleanup_free char *side = NULL;
        if (asprintf(&side, "%s%s", path, i == 0 ? "-wal" : "-shm") < 0)
            return ef_error_set(err, -ENOMEM, "out of memory");
        cleanup_close int sfd = open(side, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (sfd < 0 && errno != ENOENT)
            return ef_error_set_errno(err, -errno, "cannot open %s", side);
        if (sfd >= 0)
            r = tighten_fd(sfd, side, err);
    }
    return r;
}

int ef_store_open(const char *path, ef_store **ret_store, ef_error *err)
{
    ef_store *s = calloc(1, sizeof(*s));
    if (!s)
        return ef_error_set(err, -ENOMEM, "out of memory");

    int r = private_database(path, err);
    if (r < 0) {
        free(s);
        return r;
    }

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
    r = migrate(s, err);
    if (r < 0)
        goto fail;

    if (!(s->insert = prepare(s, insert_sql, err)) ||
        !(s->get_latest = prepare(s, get_latest_sql, err)) ||
        !(s->get_version = prepare(s, get_version_sql, err))) {
        r = err ? err->code : -EIO;
        goto fail;
    }
    *ret_store = s;
    return 0;

fail:
    ef_store_close(s);
    return r;
}

/* Binds name and the record columns as ?1 … ?14. */
static void bind_record(sqlite3_stmt *st, const struct ef_function *fn)
{
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
    sqlite3_bind_int64(st, 12, fn->container_concurrency);
    sqlite3_bind_text(st, 13, ef_function_network_name(fn->network), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 14, fn->role ? fn->role : EF_DEFAULT_ROLE, -1, SQLITE_STATIC);
}

int ef_store_insert_function(ef_store *store, const struct ef_function *fn, ef_error *err)
{
    cache_clear(store);
    sqlite3_stmt *st = store->insert;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    bind_record(st, fn);

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
    free(fn->version);
    free(fn->runtime);
    free(fn->handler);
    free(fn->environment);
    free(fn->description);
    free(fn->code_sha256_hex);
    free(fn->last_modified);
    free(fn->config_hash);
    free(fn->role);
    free(fn);
}

const char *ef_function_version(const struct ef_function *fn)
{
    return fn->version ? fn->version : EF_VERSION_LATEST;
}

int64_t ef_version_number(const char *version)
{
    if (!version || strcmp(version, EF_VERSION_LATEST) == 0)
        return 0;
    /* "01" is not how a version is named; only the canonical decimal form is. */
    if (!*version || version[0] == '0' || strlen(version) > 16)
        return -1;
    int64_t n = 0;
    for (const char *p = version; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        n = n * 10 + (*p - '0');
    }
    return n >= 1 && n <= ((int64_t)1 << 53) ? n : -1;
}

const char *ef_function_network_name(enum ef_function_network mode)
{
    switch (mode) {
    case EF_FN_NETWORK_BRIDGE:
        return "bridge";
    case EF_FN_NETWORK_HOST:
        return "host";
    case EF_FN_NETWORK_NONE:
    default:
        return "none";
    }
}

int ef_function_network_parse(const char *name, enum ef_function_network *ret_mode)
{
    static const enum ef_function_network modes[] = {EF_FN_NETWORK_NONE, EF_FN_NETWORK_BRIDGE,
                                                     EF_FN_NETWORK_HOST};
    for (size_t i = 0; name && i < EF_ARRAY_SIZE(modes); i++) {
        if (strcmp(name, ef_function_network_name(modes[i])) == 0) {
            *ret_mode = modes[i];
            return 0;
        }
    }
    return -EINVAL;
}

/* Reads a row of (name, version number, RECORD_COLUMNS, reserved_concurrency). */
static struct ef_function *read_record(sqlite3_stmt *st)
{
    struct ef_function *fn = calloc(1, sizeof(*fn));
    if (!fn)
        return NULL;
    int64_t vnum = sqlite3_column_int64(st, 1);
    fn->name = column_strdup(st, 0);
    if (vnum == 0)
        fn->version = strdup(EF_VERSION_LATEST);
    else if (asprintf(&fn->version, "%" PRId64, vnum) < 0)
        fn->version = NULL;
    fn->runtime = column_strdup(st, 2);
    fn->handler = column_strdup(st, 3);
    fn->memory_mb = sqlite3_column_int64(st, 4);
    fn->timeout_s = sqlite3_column_int64(st, 5);
    fn->environment = column_strdup(st, 6);
    fn->description = column_strdup(st, 7);
    fn->code_sha256_hex = column_strdup(st, 8);
    fn->code_size = sqlite3_column_int64(st, 9);
    fn->last_modified = column_strdup(st, 10);
    fn->config_hash = column_strdup(st, 11);
    fn->container_concurrency = sqlite3_column_int64(st, 12);
    /* The column's CHECK admits only the three names; were another ever read, the function
     * would get the most isolated mode rather than more network than it was given. */
    fn->network = EF_FN_NETWORK_NONE;
    ef_function_network_parse((const char *)sqlite3_column_text(st, 13), &fn->network);
    fn->role = column_strdup(st, 14);
    fn->has_reserved_concurrency = sqlite3_column_type(st, 15) != SQLITE_NULL;
    fn->reserved_concurrency = sqlite3_column_int64(st, 15);
    if (!fn->name || !fn->version || !fn->runtime || !fn->handler || !fn->environment ||
        !fn->description || !fn->code_sha256_hex || !fn->last_modified || !fn->config_hash ||
        !fn->role) {
        ef_function_free(fn);
        return NULL;
    }
    return fn;
}

/* Steps a bound lookup statement that returns at most one record. */
static int fetch_one(ef_store *store, sqlite3_stmt *st, const char *what,
                     struct ef_function **ret_fn, ef_error *err)
{
    int rc = sqlite3_step(st);
    int r = 0;
    if (rc == SQLITE_DONE) {
        r = ef_error_set(err, -ENOENT, "Function not found: %s", what);
    } else if (rc != SQLITE_ROW) {
        r = db_error(err, store->db, "cannot read function");
    } else {
        struct ef_function *fn = read_record(st);
        if (!fn)
            r = ef_error_set(err, -ENOMEM, "out of memory");
        else
            *ret_fn = fn;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return r;
}

static char *strdup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* A deep copy of a function record; NULL when memory runs out. */
static struct ef_function *function_dup(const struct ef_function *fn)
{
    struct ef_function *c = malloc(sizeof(*c));
    if (!c)
        return NULL;
    *c = *fn;
    c->name = strdup_or_null(fn->name);
    c->version = strdup_or_null(fn->version);
    c->runtime = strdup_or_null(fn->runtime);
    c->handler = strdup_or_null(fn->handler);
    c->environment = strdup_or_null(fn->environment);
    c->description = strdup_or_null(fn->description);
    c->code_sha256_hex = strdup_or_null(fn->code_sha256_hex);
    c->last_modified = strdup_or_null(fn->last_modified);
    c->config_hash = strdup_or_null(fn->config_hash);
    c->role = strdup_or_null(fn->role ? fn->role : EF_DEFAULT_ROLE);
    if (!c->name || !c->version || !c->runtime || !c->handler || !c->environment ||
        !c->description || !c->code_sha256_hex || !c->last_modified || !c->config_hash ||
        !c->role) {
        ef_function_free(c);
        return NULL;
    }
    return c;
}

/* A copy of the cached record of `name` version `n`; NULL when it is not cached. */
static struct ef_function *cache_get(ef_store *store, const char *name, int64_t n)
{
    for (unsigned i = 0; i < CACHE_ENTRIES; i++) {
        struct cached_function *e = &store->cache[i];
        if (e->fn && e->version == n && strcmp(e->fn->name, name) == 0) {
            e->used = ++store->cache_clock;
            return function_dup(e->fn);
        }
    }
    return NULL;
}

/* Keeps a copy of `fn` (version `n`), in place of the least recently used entry if need be. */
static void cache_put(ef_store *store, const struct ef_function *fn, int64_t n)
{
    struct cached_function *slot = &store->cache[0];
    for (unsigned i = 0; i < CACHE_ENTRIES; i++) {
        struct cached_function *e = &store->cache[i];
        if (!e->fn) {
            slot = e;
            break;
        }
        if (e->used < slot->used)
            slot = e;
    }
    struct ef_function *copy = function_dup(fn);
    if (!copy)
        return; /* only the cache loses */
    ef_function_free(slot->fn);
    slot->fn = copy;
    slot->version = n;
    slot->used = ++store->cache_clock;
}

/* Reads `name` version `n` (0: $LATEST) through the cache. */
static int get_cached(ef_store *store, const char *name, int64_t n, struct ef_function **ret_fn,
                      ef_error *err)
{
    struct ef_function *fn = cache_get(store, name, n);
    if (fn) {
        *ret_fn = fn;
        return 0;
    }
    sqlite3_stmt *st = n == 0 ? store->get_latest : store->get_version;
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    char what[128];
    if (n == 0) {
        snprintf(what, sizeof(what), "%s", name);
    } else {
        sqlite3_bind_int64(st, 2, n);
        snprintf(what, sizeof(what), "%s:%" PRId64, name, n);
    }
    int r = fetch_one(store, st, what, ret_fn, err);
    if (r == 0)
        cache_put(store, *ret_fn, n);
    return r;
}

int ef_store_get_function(ef_store *store, const char *name, struct ef_function **ret_fn,
                          ef_error *err)
{
    return get_cached(store, name, 0, ret_fn, err);
}

int ef_store_get_function_version(ef_store *store, const char *name, const char *qualifier,
                                  struct ef_function **ret_fn, ef_error *err)
{
    int64_t n = ef_version_number(qualifier);
    if (n < 0)
        return ef_error_set(err, -ENOENT, "Function not found: %s:%s", name, qualifier);
    return get_cached(store, name, n, ret_fn, err);
}

int ef_store_update_function(ef_store *store, const struct ef_function *fn, ef_error *err)
{
    cache_clear(store);
    cleanup_stmt sqlite3_stmt *st = prepare(
        store,
        "UPDATE functions SET runtime = ?2, handler = ?3, memory_mb = ?4, timeout_s = ?5, "
        "environment = ?6, description = ?7, code_sha256_hex = ?8, code_size = ?9, "
        "last_modified = ?10, config_hash = ?11, container_concurrency = ?12, network = ?13, "
        "role = ?14 WHERE name = ?1;",
        err);
    if (!st)
        return -EIO;
    bind_record(st, fn);
    if (sqlite3_step(st) != SQLITE_DONE)
        return db_error(err, store->db, "cannot update function");
    if (sqlite3_changes(store->db) == 0)
        return ef_error_set(err, -ENOENT, "Function not found: %s", fn->name);
    return 0;
}

/* Runs a statement with ?1 = name (and ?2 = n when n >= 0) and returns the number of rows it
 * changed, or a negative errno. */
static int run_changes(ef_store *store, const char *sql, const char *name, int64_t n, ef_error *err)
{
    cleanup_stmt sqlite3_stmt *st = prepare(store, sql, err);
    if (!st)
        return -EIO;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (n >= 0)
        sqlite3_bind_int64(st, 2, n);
    if (sqlite3_step(st) != SQLITE_DONE)
        return db_error(err, store->db, "cannot change the store");
    return sqlite3_changes(store->db);
}

int ef_store_delete_function(ef_store *store, const char *name, ef_error *err)
{
    cache_clear(store);
    int r = exec(store->db, "BEGIN IMMEDIATE;", err);
    if (r < 0)
        return r;
    r = run_changes(store, "DELETE FROM function_versions WHERE function_name = ?1;", name, -1,
                    err);
    if (r >= 0)
        r = run_changes(store, "DELETE FROM functions WHERE name = ?1;", name, -1, err);
    if (r == 0)
        r = ef_error_set(err, -ENOENT, "Function not found: %s", name);
    return end_transaction(store, r < 0 ? r : 0, err);
}

int ef_store_delete_version(ef_store *store, const char *name, int64_t version, ef_error *err)
{
    cache_clear(store);
    int r = run_changes(store,
                        "DELETE FROM function_versions WHERE function_name = ?1 AND version = ?2;",
                        name, version, err);
    if (r == 0)
        return ef_error_set(err, -ENOENT, "Function not found: %s:%" PRId64, name, version);
    return r < 0 ? r : 0;
}

/* Inside publish's transaction: the newest version's number, or 0 when there is none, and
 * whether it has `latest`'s code and configuration. */
static int newest_version(ef_store *store, const struct ef_function *latest, int64_t *ret_n,
                          bool *ret_same, ef_error *err)
{
    cleanup_stmt sqlite3_stmt *st =
        prepare(store,
                "SELECT version, code_sha256_hex = ?2 AND config_hash = ?3 FROM function_versions "
                "WHERE function_name = ?1 ORDER BY version DESC LIMIT 1;",
                err);
    if (!st)
        return -EIO;
    sqlite3_bind_text(st, 1, latest->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, latest->code_sha256_hex, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, latest->config_hash, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    *ret_n = 0;
    *ret_same = false;
    if (rc == SQLITE_ROW) {
        *ret_n = sqlite3_column_int64(st, 0);
        *ret_same = sqlite3_column_int(st, 1) != 0;
    } else if (rc != SQLITE_DONE) {
        return db_error(err, store->db, "cannot read versions");
    }
    return 0;
}

static int insert_version(ef_store *store, const struct ef_function *latest, int64_t n,
                          const char *description, const char *last_modified, ef_error *err)
{
    cleanup_stmt sqlite3_stmt *st =
        prepare(store,
                "INSERT INTO function_versions (function_name, version, " RECORD_COLUMNS ") "
                "SELECT name, ?2, runtime, handler, memory_mb, timeout_s, environment, ?3, "
                "code_sha256_hex, code_size, ?4, config_hash, container_concurrency, network, "
                "role FROM functions "
                "WHERE name = ?1;",
                err);
    if (!st)
        return -EIO;
    sqlite3_bind_text(st, 1, latest->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, n);
    sqlite3_bind_text(st, 3, description, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, last_modified, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return db_error(err, store->db, "cannot store the version");
    int r = run_changes(store, "UPDATE functions SET last_version = ?2 WHERE name = ?1;",
                        latest->name, n, err);
    return r < 0 ? r : 0;
}

/* The number of the last version ever published (deleted ones included). */
static int last_version(ef_store *store, const char *name, int64_t *ret, ef_error *err)
{
    cleanup_stmt sqlite3_stmt *st =
        prepare(store, "SELECT last_version FROM functions WHERE name = ?1;", err);
    if (!st)
        return -EIO;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW)
        return db_error(err, store->db, "cannot read the version counter");
    *ret = sqlite3_column_int64(st, 0);
    return 0;
}

int ef_store_publish_version(ef_store *store, const char *name, const char *description,
                             const char *expected_sha256_hex, const char *last_modified,
                             struct ef_function **ret_fn, bool *ret_created, ef_error *err)
{
    cache_clear(store);
    int r = exec(store->db, "BEGIN IMMEDIATE;", err);
    if (r < 0)
        return r;
    struct ef_function *latest = NULL;
    int64_t newest = 0, counter = 0, n = 0;
    bool same = false;
    r = ef_store_get_function(store, name, &latest, err);
    if (r == 0 && expected_sha256_hex && strcmp(expected_sha256_hex, latest->code_sha256_hex) != 0)
        r = ef_error_set(err, -ESTALE,
                         "CodeSha256 does not match the code of $LATEST of function %s; it was "
                         "updated since",
                         name);
    if (r == 0)
        r = newest_version(store, latest, &newest, &same, err);
    if (r == 0 && same) {
        n = newest;
    } else if (r == 0) {
        r = last_version(store, name, &counter, err);
        n = (counter > newest ? counter : newest) + 1;
        if (r == 0)
            r = insert_version(store, latest, n, description ? description : latest->description,
                               last_modified, err);
    }
    ef_function_free(latest);
    r = end_transaction(store, r, err);
    if (r < 0)
        return r;
    if (ret_created)
        *ret_created = !same;
    char version[32];
    snprintf(version, sizeof(version), "%" PRId64, n);
    return ef_store_get_function_version(store, name, version, ret_fn, err);
}

int ef_store_set_concurrency(ef_store *store, const char *name, bool has_value, int64_t value,
                             ef_error *err)
{
    cache_clear(store);
    cleanup_stmt sqlite3_stmt *st =
        prepare(store, "UPDATE functions SET reserved_concurrency = ?2 WHERE name = ?1;", err);
    if (!st)
        return -EIO;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (has_value)
        sqlite3_bind_int64(st, 2, value);
    else
        sqlite3_bind_null(st, 2);
    if (sqlite3_step(st) != SQLITE_DONE)
        return db_error(err, store->db, "cannot store the concurrency setting");
    if (sqlite3_changes(store->db) == 0)
        return ef_error_set(err, -ENOENT, "Function not found: %s", name);
    return 0;
}

int ef_store_reserved_concurrency_total(ef_store *store, const char *except_name,
                                        int64_t *ret_total, ef_error *err)
{
    cleanup_stmt sqlite3_stmt *st = prepare(store,
                                            "SELECT COALESCE(SUM(reserved_concurrency), 0) FROM "
                                            "functions WHERE ?1 IS NULL OR name <> ?1;",
                                            err);
    if (!st)
        return -EIO;
    if (except_name)
        sqlite3_bind_text(st, 1, except_name, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW)
        return db_error(err, store->db, "cannot sum the reserved concurrency");
    *ret_total = sqlite3_column_int64(st, 0);
    return 0;
}

void ef_function_page_free(struct ef_function_page *page)
{
    for (size_t i = 0; i < page->n; i++)
        ef_function_free(page->items[i]);
    free(page->items);
    page->items = NULL;
    page->n = 0;
}

int ef_store_list(ef_store *store, const char *name, bool all_versions, const char *after_name,
                  int64_t after_version, size_t max_items, struct ef_function_page *ret_page,
                  ef_error *err)
{
    struct ef_function_page page = {0};
    cleanup_stmt sqlite3_stmt *st = prepare(store, list_sql, err);
    if (!st)
        return -EIO;
    if (name)
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, all_versions);
    sqlite3_bind_text(st, 3, after_name ? after_name : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, after_name ? after_version : -1);
    /* One row more than asked tells whether another page follows. */
    sqlite3_bind_int64(st, 5, (int64_t)max_items + 1);

    page.items = calloc(max_items + 1, sizeof(*page.items));
    if (!page.items)
        return ef_error_set(err, -ENOMEM, "out of memory");
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (page.n == max_items) {
            page.more = true;
            break;
        }
        struct ef_function *fn = read_record(st);
        if (!fn) {
            ef_function_page_free(&page);
            return ef_error_set(err, -ENOMEM, "out of memory");
        }
        page.items[page.n++] = fn;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        ef_function_page_free(&page);
        return db_error(err, store->db, "cannot list functions");
    }
    *ret_page = page;
    return 0;
}

int ef_store_for_each_code(ef_store *store, int (*cb)(const char *hex, void *user), void *user,
                           ef_error *err)
{
    cleanup_stmt sqlite3_stmt *st = prepare(store,
                                            "SELECT code_sha256_hex FROM functions UNION "
                                            "SELECT code_sha256_hex FROM function_versions;",
                                            err);
    if (!st)
        return -EIO;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *hex = sqlite3_column_text(st, 0);
        if (!hex)
            continue;
        int r = cb((const char *)hex, user);
        if (r < 0)
            return r;
    }
    if (rc != SQLITE_DONE)
        return db_error(err, store->db, "cannot list the code in use");
    return 0;
}

int ef_function_compute_config_hash(struct ef_function *fn)
{
    /* Fields are separated by a byte that none of them can contain (all are validated text).
     * The per-container concurrency and the network mode join only when they are not the
     * default, so that the hashes of functions stored before they existed stay what they were;
     * the mode is spelled "network=…", which no concurrency number can be confused with. */
    char concurrency[32] = "";
    if (fn->container_concurrency > 1)
        snprintf(concurrency, sizeof(concurrency), "\x1f%lld",
                 (long long)fn->container_concurrency);
    char network[32] = "";
    if (fn->network != EF_FN_NETWORK_NONE)
        snprintf(network, sizeof(network), "\x1fnetwork=%s", ef_function_network_name(fn->network));
    cleanup_free char *text = NULL;
    if (asprintf(&text, "%s\x1f%s\x1f%lld\x1f%lld\x1f%s%s%s", fn->runtime, fn->handler,
                 (long long)fn->memory_mb, (long long)fn->timeout_s, fn->environment, concurrency,
                 network) < 0)
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
