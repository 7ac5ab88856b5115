/* Function store tests: SQLite on disk in a temporary directory. */
#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "controller/codestore.h"
#include "controller/store.h"

static char tmpdir[64];
static char dbpath[128];

static int setup(void **state)
{
    (void)state;
    strcpy(tmpdir, "/tmp/ef-store-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    snprintf(dbpath, sizeof(dbpath), "%s/controller.db", tmpdir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(ef_rm_rf(tmpdir, NULL), 0);
    return 0;
}

static struct ef_function sample(const char *name)
{
    struct ef_function fn = {
        .name = (char *)name,
        .runtime = "python3.12",
        .handler = "lambda_function.lambda_handler",
        .memory_mb = 256,
        .timeout_s = 30,
        .environment = "{\"A\":\"1\"}",
        .description = "a test function",
        .code_sha256_hex = "1b55714191d1069e5bd9f72d5fe3fec86ed668be2572bb6854210416f3f84679",
        .code_size = 296,
        .last_modified = "2026-11-27T06:30:00.000+0000",
        .config_hash = "c0ffee",
        .container_concurrency = 3,
        .network = EF_FN_NETWORK_BRIDGE,
    };
    return fn;
}

static void assert_same(const struct ef_function *a, const struct ef_function *b)
{
    assert_string_equal(a->name, b->name);
    assert_string_equal(a->runtime, b->runtime);
    assert_string_equal(a->handler, b->handler);
    assert_int_equal(a->memory_mb, b->memory_mb);
    assert_int_equal(a->timeout_s, b->timeout_s);
    assert_string_equal(a->environment, b->environment);
    assert_string_equal(a->description, b->description);
    assert_string_equal(a->code_sha256_hex, b->code_sha256_hex);
    assert_int_equal(a->code_size, b->code_size);
    assert_string_equal(a->last_modified, b->last_modified);
    assert_string_equal(a->config_hash, b->config_hash);
    assert_int_equal(a->container_concurrency, b->container_concurrency);
    assert_int_equal(a->network, b->network);
}

static void test_insert_get_conflict_reopen(void **state)
{
    (void)state;
    ef_store *s = NULL;
    ef_error err = {0};
    assert_int_equal(ef_store_open(dbpath, &s, &err), 0);

    struct ef_function *got = NULL;
    assert_int_equal(ef_store_get_function(s, "hello", &got, &err), -ENOENT);
    assert_null(got);

    struct ef_function fn = sample("hello");
    assert_int_equal(ef_store_insert_function(s, &fn, &err), 0);
    assert_int_equal(ef_store_get_function(s, "hello", &got, &err), 0);
    assert_same(got, &fn);
    ef_function_free(got);

    /* The same name again is a conflict, and the first record is untouched. */
    struct ef_function other = sample("hello");
    other.runtime = "provided.al2023";
    assert_int_equal(ef_store_insert_function(s, &other, &err), -EEXIST);
    assert_non_null(strstr(err.msg, "hello"));
    struct ef_function second = sample("second");
    assert_int_equal(ef_store_insert_function(s, &second, &err), 0);
    ef_store_close(s);

    /* What was acknowledged survives closing and reopening. */
    s = NULL;
    assert_int_equal(ef_store_open(dbpath, &s, &err), 0);
    assert_int_equal(ef_store_get_function(s, "hello", &got, &err), 0);
    assert_same(got, &fn);
    ef_function_free(got);
    assert_int_equal(ef_store_get_function(s, "second", &got, &err), 0);
    ef_function_free(got);
    ef_store_close(s);
}

static void test_durability_settings(void **state)
{
    (void)state;
    ef_store *s = NULL;
    ef_error err = {0};
    assert_int_equal(ef_store_open(dbpath, &s, &err), 0);
    struct ef_function fn = sample("durable");
    assert_int_equal(ef_store_insert_function(s, &fn, &err), 0);

    /* Environment variables may be secrets: only the owner reads the database. */
    struct stat sb;
    assert_int_equal(stat(dbpath, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);

    /* A second connection sees the committed row and the database in WAL mode. */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode;", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT memory_mb FROM functions WHERE name='durable';",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 256);
    sqlite3_finalize(st);
    sqlite3_close(db);
    ef_store_close(s);
}

static void test_survives_process_crash(void **state)
{
    (void)state;
    /* The child acknowledges an insert and is killed without closing the database: the row
     * lives only in the WAL, which the next open must recover. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        ef_store *s = NULL;
        struct ef_function fn = sample("crashy");
        if (ef_store_open(dbpath, &s, NULL) < 0 || ef_store_insert_function(s, &fn, NULL) < 0)
            _exit(1);
        kill(getpid(), SIGKILL);
        _exit(2);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    char wal[160];
    snprintf(wal, sizeof(wal), "%s-wal", dbpath);
    assert_int_equal(access(wal, F_OK), 0); /* not checkpointed: the crash was real */

    ef_store *s = NULL;
    ef_error err = {0};
    assert_int_equal(ef_store_open(dbpath, &s, &err), 0);
    struct ef_function *got = NULL;
    assert_int_equal(ef_store_get_function(s, "crashy", &got, &err), 0);
    struct ef_function want = sample("crashy");
    assert_same(got, &want);
    ef_function_free(got);
    ef_store_close(s);
}

static void test_open_errors(void **state)
{
    (void)state;
    ef_store *s = NULL;
    ef_error err = {0};
    char bad[160];
    snprintf(bad, sizeof(bad), "%s/missing-dir/controller.db", tmpdir);
    assert_true(ef_store_open(bad, &s, &err) < 0);
    assert_null(s);
    assert_non_null(strstr(err.msg, "missing-dir"));

    /* A file that is not a database is reported, not trusted. */
    char junk[160];
    snprintf(junk, sizeof(junk), "%s/junk.db", tmpdir);
    char garbage[4096];
    memset(garbage, 'g', sizeof(garbage));
    assert_int_equal(ef_write_file_atomic(junk, garbage, sizeof(garbage), 0600, NULL), 0);
    assert_true(ef_store_open(junk, &s, &err) < 0);
    assert_null(s);
}

static void test_config_hash(void **state)
{
    (void)state;
    struct ef_function a = sample("h");
    a.config_hash = NULL;
    assert_int_equal(ef_function_compute_config_hash(&a), 0);
    assert_int_equal(strlen(a.config_hash), 64);

    /* Every setting a container depends on changes the hash; the description and the role
     * do not. */
    struct ef_function b = sample("h");
    b.config_hash = NULL;
    b.description = "other words";
    b.role = "arn:aws:iam::123456789012:role/other";
    assert_int_equal(ef_function_compute_config_hash(&b), 0);
    assert_string_equal(a.config_hash, b.config_hash);
    free(b.config_hash);

    const char *changes[] = {"runtime",      "handler",     "memory",
                             "timeout",      "environment", "container concurrency",
                             "network none", "network host"};
    for (size_t i = 0; i < EF_ARRAY_SIZE(changes); i++) {
        struct ef_function c = sample("h");
        c.config_hash = NULL;
        switch (i) {
        case 0:
            c.runtime = "python3.13";
            break;
        case 1:
            c.handler = "other.handler";
            break;
        case 2:
            c.memory_mb = 512;
            break;
        case 3:
            c.timeout_s = 31;
            break;
        case 4:
            c.environment = "{\"A\":\"2\"}";
            break;
        case 5:
            c.container_concurrency = 4;
            break;
        case 6:
            c.network = EF_FN_NETWORK_NONE;
            break;
        case 7:
            c.network = EF_FN_NETWORK_HOST;
            break;
        }
        assert_int_equal(ef_function_compute_config_hash(&c), 0);
        if (strcmp(a.config_hash, c.config_hash) == 0)
            fail_msg("changing %s kept the config hash", changes[i]);
        free(c.config_hash);
    }
    free(a.config_hash);

    /* With the defaults (concurrency 1, network none) the hash is the one computed before
     * either setting existed, so containers of functions stored then still match. */
    struct ef_function d = sample("h");
    d.config_hash = NULL;
    d.container_concurrency = 1;
    d.network = EF_FN_NETWORK_NONE;
    assert_int_equal(ef_function_compute_config_hash(&d), 0);
    /* (Split where a hex digit follows the separator's escape.) */
    const char old_text[] = "python3.12\x1flambda_function.lambda_handler\x1f"
                            "256\x1f"
                            "30\x1f{\"A\":\"1\"}";
    char old_hex[EF_SHA256_HEX_LEN + 1];
    ef_sha256_hex(old_text, strlen(old_text), old_hex);
    assert_string_equal(d.config_hash, old_hex);
    free(d.config_hash);
}

static void test_network_names(void **state)
{
    (void)state;
    const enum ef_function_network modes[] = {EF_FN_NETWORK_NONE, EF_FN_NETWORK_BRIDGE,
                                              EF_FN_NETWORK_HOST};
    const char *names[] = {"none", "bridge", "host"};
    for (size_t i = 0; i < EF_ARRAY_SIZE(modes); i++) {
        enum ef_function_network m = EF_FN_NETWORK_HOST;
        assert_string_equal(ef_function_network_name(modes[i]), names[i]);
        assert_int_equal(ef_function_network_parse(names[i], &m), 0);
        assert_int_equal(m, modes[i]);
    }
    const char *bad[] = {NULL, "", "None", "HOST", "bridge ", "container", "nonee"};
    for (size_t i = 0; i < EF_ARRAY_SIZE(bad); i++) {
        enum ef_function_network m = EF_FN_NETWORK_BRIDGE;
        assert_int_equal(ef_function_network_parse(bad[i], &m), -EINVAL);
        assert_int_equal(m, EF_FN_NETWORK_BRIDGE); /* untouched */
    }
}

static int count_code(const char *hex, void *user)
{
    (void)hex;
    (*(int *)user)++;
    return 0;
}

static void test_versions(void **state)
{
    (void)state;
    ef_store *s = NULL;
    ef_error err = {0};
    assert_int_equal(ef_store_open(dbpath, &s, &err), 0);
    struct ef_function fn = sample("v");
    assert_int_equal(ef_store_insert_function(s, &fn, &err), 0);

    /* The first publish snapshots $LATEST as version 1, with its own description and time. */
    struct ef_function *v = NULL;
    bool created = false;
    assert_int_equal(ef_store_publish_version(s, "v", "first", NULL, "2026-11-27T07:00:00.000+0000",
                                              &v, &created, &err),
                     0);
    assert_true(created);
    assert_string_equal(v->version, "1");
    assert_string_equal(v->description, "first");
    assert_string_equal(v->last_modified, "2026-11-27T07:00:00.000+0000");
    assert_string_equal(v->code_sha256_hex, fn.code_sha256_hex);
    assert_int_equal(v->memory_mb, 256);
    assert_int_equal(v->container_concurrency, 3);
    assert_int_equal(v->network, EF_FN_NETWORK_BRIDGE);
    ef_function_free(v);

    /* Nothing changed: Lambda hands back the newest version instead of a new one. */
    assert_int_equal(ef_store_publish_version(s, "v", NULL, NULL, "x", &v, &created, &err), 0);
    assert_false(created);
    assert_string_equal(v->version, "1");
    ef_function_free(v);

    /* Change $LATEST; version 1 keeps what it had. */
    struct ef_function changed = sample("v");
    changed.memory_mb = 512;
    changed.container_concurrency = 8;
    changed.network = EF_FN_NETWORK_HOST;
    changed.config_hash = "other";
    changed.code_sha256_hex = "2b55714191d1069e5bd9f72d5fe3fec86ed668be2572bb6854210416f3f84679";
    assert_int_equal(ef_store_update_function(s, &changed, &err), 0);
    struct ef_function *got = NULL;
    assert_int_equal(ef_store_get_function_version(s, "v", "1", &got, &err), 0);
    assert_int_equal(got->memory_mb, 256);
    assert_int_equal(got->container_concurrency, 3);
    assert_int_equal(got->network, EF_FN_NETWORK_BRIDGE);
    assert_string_equal(got->version, "1");
    ef_function_free(got);
    assert_int_equal(ef_store_get_function_version(s, "v", "$LATEST", &got, &err), 0);
    assert_int_equal(got->memory_mb, 512);
    assert_int_equal(got->container_concurrency, 8);
    assert_int_equal(got->network, EF_FN_NETWORK_HOST);
    assert_string_equal(got->version, "$LATEST");
    ef_function_free(got);
    assert_int_equal(ef_store_get_function_version(s, "v", NULL, &got, &err), 0);
    ef_function_free(got);

    /* A CodeSha256 that is not $LATEST's is a failed precondition. */
    assert_int_equal(
        ef_store_publish_version(s, "v", NULL, fn.code_sha256_hex, "x", &v, NULL, &err), -ESTALE);
    assert_int_equal(
        ef_store_publish_version(s, "v", NULL, changed.code_sha256_hex, "x", &v, NULL, &err), 0);
    assert_string_equal(v->version, "2");
    assert_string_equal(v->description, "a test function"); /* $LATEST's */
    ef_function_free(v);

    /* Deleted numbers are never reused. */
    assert_int_equal(ef_store_delete_version(s, "v", 2, &err), 0);
    assert_int_equal(ef_store_delete_version(s, "v", 2, &err), -ENOENT);
    assert_int_equal(ef_store_get_function_version(s, "v", "2", &got, &err), -ENOENT);
    assert_int_equal(ef_store_publish_version(s, "v", NULL, NULL, "x", &v, &created, &err), 0);
    assert_true(created);
    assert_string_equal(v->version, "3");
    ef_function_free(v);

    /* Unknown versions, aliases and functions. */
    assert_int_equal(ef_store_get_function_version(s, "v", "7", &got, &err), -ENOENT);
    assert_int_equal(ef_store_get_function_version(s, "v", "prod", &got, &err), -ENOENT);
    assert_int_equal(ef_store_get_function_version(s, "v", "0", &got, &err), -ENOENT);
    assert_int_equal(ef_store_get_function_version(s, "nope", "1", &got, &err), -ENOENT);
    assert_int_equal(ef_store_publish_version(s, "nope", NULL, NULL, "x", &v, NULL, &err), -ENOENT);
    assert_int_equal(ef_store_update_function(s,
                                              &(struct ef_function){.name = "nope",
                                                                    .runtime = "r",
                                                                    .handler = "h",
                                                                    .environment = "{}",
                                                                    .description = "",
                                                                    .code_sha256_hex = "x",
                                                                    .last_modified = "x",
                                                                    .config_hash = "x"},
                                              &err),
                     -ENOENT);

    /* Every code a version or $LATEST uses is reported once. */
    int codes = 0;
    assert_int_equal(ef_store_for_each_code(s, count_code, &codes, &err), 0);
    assert_int_equal(codes, 2);

    /* Deleting the function takes its versions along; a new function of that name starts at 1. */
    assert_int_equal(ef_store_delete_function(s, "v", &err), 0);
    assert_int_equal(ef_store_delete_function(s, "v", &err), -ENOENT);
    assert_int_equal(ef_store_get_function_version(s, "v", "1", &got, &err), -ENOENT);
    codes = 0;
    assert_int_equal(ef_store_for_each_code(s, count_code, &codes, &err), 0);
    assert_int_equal(codes, 0);
    assert_int_equal(ef_store_insert_function(s, &fn, &err), 0);
    assert_int_equal(ef_store_publish_version(s, "v", NULL, NULL, "x", &v, NULL, &err), 0);
    assert_string_equal(v->version, "1");
    ef_function_free(v);
    ef_store_close(s);
}

static void test_list_pages(void **state)
{
    (void)state;
    ef_store *s = NULL;
    ef_error err = {0};
    assert_int_equal(ef_store_open(dbpath, &s, &err), 0);
    const char *names[] = {"delta", "alpha", "echo", "charlie", "bravo"};
    for (size_t i = 0; i < 5; i++) {
        struct ef_function fn = sample(names[i]);
        assert_int_equal(ef_store_insert_function(s, &fn, &err), 0);
    }
    struct ef_function *v = NULL;
    assert_int_equal(ef_store_publish_version(s, "bravo", NULL, NULL, "x", &v, NULL, &err), 0);
    ef_function_free(v);

    /* $LATEST only, in name order, two at a time. */
    const char *want[] = {"alpha", "bravo", "charlie", "delta", "echo"};
    const char *after = NULL;
    char last[32] = "";
    size_t seen = 0;
    for (int page_no = 0; page_no < 3; page_no++) {
        struct ef_function_page page = {0};
        assert_int_equal(ef_store_list(s, NULL, false, after, 0, 2, &page, &err), 0);
        for (size_t i = 0; i < page.n; i++) {
            assert_string_equal(page.items[i]->name, want[seen++]);
            assert_string_equal(page.items[i]->version, "$LATEST");
        }
        assert_int_equal(page.more, page_no < 2);
        snprintf(last, sizeof(last), "%s", page.items[page.n - 1]->name);
        after = last;
        ef_function_page_free(&page);
    }
    assert_int_equal(seen, 5);

    /* All versions: bravo's $LATEST sorts before its version 1; a page may end between them. */
    struct ef_function_page page = {0};
    assert_int_equal(ef_store_list(s, NULL, true, NULL, 0, 2, &page, &err), 0);
    assert_int_equal(page.n, 2);
    assert_string_equal(page.items[1]->name, "bravo");
    assert_string_equal(page.items[1]->version, "$LATEST");
    ef_function_page_free(&page);
    assert_int_equal(ef_store_list(s, NULL, true, "bravo", 0, 50, &page, &err), 0);
    assert_int_equal(page.n, 4);
    assert_string_equal(page.items[0]->name, "bravo");
    assert_string_equal(page.items[0]->version, "1");
    assert_false(page.more);
    ef_function_page_free(&page);

    /* One function's versions. */
    assert_int_equal(ef_store_list(s, "bravo", true, NULL, 0, 50, &page, &err), 0);
    assert_int_equal(page.n, 2);
    assert_string_equal(page.items[0]->version, "$LATEST");
    assert_string_equal(page.items[1]->version, "1");
    ef_function_page_free(&page);
    assert_int_equal(ef_store_list(s, "zulu", true, NULL, 0, 50, &page, &err), 0);
    assert_int_equal(page.n, 0);
    ef_function_page_free(&page);
    ef_store_close(s);
}

static void test_concurrency(void **state)
{
    (void)state;
    ef_store *s = NULL;
    ef_error err = {0};
    assert_int_equal(ef_store_open(dbpath, &s, &err), 0);
    struct ef_function a = sample("a"), b = sample("b");
    assert_int_equal(ef_store_insert_function(s, &a, &err), 0);
    assert_int_equal(ef_store_insert_function(s, &b, &err), 0);

    struct ef_function *got = NULL;
    assert_int_equal(ef_store_get_function(s, "a", &got, &err), 0);
    assert_false(got->has_reserved_concurrency);
    ef_function_free(got);

    assert_int_equal(ef_store_set_concurrency(s, "a", true, 0, &err), 0);
    assert_int_equal(ef_store_set_concurrency(s, "b", true, 40, &err), 0);
    assert_int_equal(ef_store_set_concurrency(s, "c", true, 1, &err), -ENOENT);
    assert_int_equal(ef_store_get_function(s, "a", &got, &err), 0);
    assert_true(got->has_reserved_concurrency);
    assert_int_equal(got->reserved_concurrency, 0);
    ef_function_free(got);

    /* Versions share the function's setting. */
    struct ef_function *v = NULL;
    assert_int_equal(ef_store_publish_version(s, "b", NULL, NULL, "x", &v, NULL, &err), 0);
    assert_true(v->has_reserved_concurrency);
    assert_int_equal(v->reserved_concurrency, 40);
    ef_function_free(v);

    int64_t total = -1;
    assert_int_equal(ef_store_reserved_concurrency_total(s, NULL, &total, &err), 0);
    assert_int_equal(total, 40);
    assert_int_equal(ef_store_reserved_concurrency_total(s, "b", &total, &err), 0);
    assert_int_equal(total, 0);

    /* It survives a reopen, and removing it is remembered too. */
    ef_store_close(s);
    assert_int_equal(ef_store_open(dbpath, &s, &err), 0);
    assert_int_equal(ef_store_get_function(s, "b", &got, &err), 0);
    assert_int_equal(got->reserved_concurrency, 40);
    ef_function_free(got);
    assert_int_equal(ef_store_set_concurrency(s, "b", false, 0, &err), 0);
    assert_int_equal(ef_store_get_function(s, "b", &got, &err), 0);
    assert_false(got->has_reserved_concurrency);
    ef_function_free(got);
    ef_store_close(s);
}

static void test_migration_keeps_rows(void **state)
{
    (void)state;
    /* A database as the first controller release wrote it: the functions table alone, schema
     * version 0. */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "CREATE TABLE functions (name TEXT PRIMARY KEY NOT NULL, runtime TEXT NOT "
                     "NULL, handler TEXT NOT NULL, memory_mb INTEGER NOT NULL, timeout_s INTEGER "
                     "NOT NULL, environment TEXT NOT NULL, description TEXT NOT NULL, "
                     "code_sha256_hex TEXT NOT NULL, code_size INTEGER NOT NULL, last_modified "
                     "TEXT NOT NULL, config_hash TEXT NOT NULL) WITHOUT ROWID;"
                     "INSERT INTO functions VALUES ('old', 'python3.12', 'm.h', 256, 30, '{}', "
                     "'kept', 'abc', 10, '2026-01-01T00:00:00.000+0000', 'cfg');",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);

    ef_store *s = NULL;
    ef_error err = {0};
    assert_int_equal(ef_store_open(dbpath, &s, &err), 0);
    struct ef_function *got = NULL;
    assert_int_equal(ef_store_get_function(s, "old", &got, &err), 0);
    assert_string_equal(got->description, "kept");
    assert_string_equal(got->version, "$LATEST");
    assert_false(got->has_reserved_concurrency);
    assert_int_equal(got->container_concurrency, 1); /* the default of the new column */
    assert_int_equal(got->network, EF_FN_NETWORK_NONE);
    ef_function_free(got);
    struct ef_function *v = NULL;
    assert_int_equal(ef_store_publish_version(s, "old", NULL, NULL, "x", &v, NULL, &err), 0);
    assert_string_equal(v->version, "1");
    assert_int_equal(v->container_concurrency, 1);
    assert_int_equal(v->network, EF_FN_NETWORK_NONE);
    ef_function_free(v);
    ef_store_close(s);

    /* Opening again migrates nothing more and loses nothing. */
    assert_int_equal(ef_store_open(dbpath, &s, &err), 0);
    assert_int_equal(ef_store_get_function_version(s, "old", "1", &got, &err), 0);
    ef_function_free(got);
    ef_store_close(s);

    /* A database from a newer controller is refused rather than misread. */
    assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99;", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(ef_store_open(dbpath, &s, &err), -EPROTO);
    assert_non_null(strstr(err.msg, "99"));
}

/* A database as schema version 3 left it (per-container concurrency, no network mode): its
 * functions and versions get network none, and the new column takes the other modes after. */
static void test_migration_from_v3(void **state)
{
    (void)state;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
    const char *v3 =
        "CREATE TABLE functions (name TEXT PRIMARY KEY NOT NULL, runtime TEXT NOT NULL, handler "
        "TEXT NOT NULL, memory_mb INTEGER NOT NULL, timeout_s INTEGER NOT NULL, environment TEXT "
        "NOT NULL, description TEXT NOT NULL, code_sha256_hex TEXT NOT NULL, code_size INTEGER "
        "NOT NULL, last_modified TEXT NOT NULL, config_hash TEXT NOT NULL, reserved_concurrency "
        "INTEGER, last_version INTEGER NOT NULL DEFAULT 0, container_concurrency INTEGER NOT "
        "NULL DEFAULT 1) WITHOUT ROWID;"
        "CREATE TABLE function_versions (function_name TEXT NOT NULL, version INTEGER NOT NULL, "
        "runtime TEXT NOT NULL, handler TEXT NOT NULL, memory_mb INTEGER NOT NULL, timeout_s "
        "INTEGER NOT NULL, environment TEXT NOT NULL, description TEXT NOT NULL, "
        "code_sha256_hex TEXT NOT NULL, code_size INTEGER NOT NULL, last_modified TEXT NOT NULL, "
        "config_hash TEXT NOT NULL, container_concurrency INTEGER NOT NULL DEFAULT 1, PRIMARY "
        "KEY (function_name, version)) WITHOUT ROWID;"
        "CREATE INDEX function_versions_code ON function_versions (code_sha256_hex);"
        "INSERT INTO functions VALUES ('f3', 'python3.12', 'm.h', 256, 30, '{}', 'kept', 'abc', "
        "10, '2026-01-01T00:00:00.000+0000', 'cfg', 5, 1, 4);"
        "INSERT INTO function_versions VALUES ('f3', 1, 'python3.12', 'm.h', 128, 30, '{}', "
        "'v1', 'abc', 10, '2026-01-01T00:00:00.000+0000', 'cfg1', 2);"
        "PRAGMA user_version = 3;";
    assert_int_equal(sqlite3_exec(db, v3, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    ef_store *s = NULL;
    ef_error err = {0};
    assert_int_equal(ef_store_open(dbpath, &s, &err), 0);
    struct ef_function *got = NULL;
    assert_int_equal(ef_store_get_function(s, "f3", &got, &err), 0);
    assert_string_equal(got->description, "kept");
    assert_string_equal(got->config_hash, "cfg");
    assert_int_equal(got->container_concurrency, 4);
    assert_int_equal(got->reserved_concurrency, 5);
    assert_int_equal(got->network, EF_FN_NETWORK_NONE);
    assert_string_equal(got->role, EF_DEFAULT_ROLE);
    ef_function_free(got);
    assert_int_equal(ef_store_get_function_version(s, "f3", "1", &got, &err), 0);
    assert_int_equal(got->memory_mb, 128);
    assert_int_equal(got->container_concurrency, 2);
    assert_int_equal(got->network, EF_FN_NETWORK_NONE);
    ef_function_free(got);

    /* The migrated $LATEST takes a mode, keeps it over a reopen, and publishes it. */
    assert_int_equal(ef_store_get_function(s, "f3", &got, &err), 0);
    got->network = EF_FN_NETWORK_BRIDGE;
    assert_int_equal(ef_function_compute_config_hash(got), 0);
    assert_int_equal(ef_store_update_function(s, got, &err), 0);
    ef_function_free(got);
    ef_store_close(s);
    assert_int_equal(ef_store_open(dbpath, &s, &err), 0);
    assert_int_equal(ef_store_get_function(s, "f3", &got, &err), 0);
    assert_int_equal(got->network, EF_FN_NETWORK_BRIDGE);
    ef_function_free(got);
    bool created = false;
    assert_int_equal(ef_store_publish_version(s, "f3", NULL, NULL, "x", &got, &created, &err), 0);
    assert_true(created); /* the mode is in the config hash: not version 1 again */
    assert_string_equal(got->version, "2");
    assert_int_equal(got->network, EF_FN_NETWORK_BRIDGE);
    ef_function_free(got);
    ef_store_close(s);

    /* The column admits the three names only, whoever writes it. */
    assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
    int user_version = -1;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version;", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    user_version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    assert_int_equal(user_version, 5);
    assert_int_equal(
        sqlite3_exec(db, "UPDATE functions SET network = 'container';", NULL, NULL, NULL),
        SQLITE_CONSTRAINT);
    assert_int_equal(
        sqlite3_exec(db, "UPDATE function_versions SET network = 'HOST';", NULL, NULL, NULL),
        SQLITE_CONSTRAINT);
    sqlite3_close(db);
}

/* Reads are served from a cache; every kind of write is seen by the next read. */
static void test_reads_follow_writes(void **state)
{
    (void)state;
    ef_store *s = NULL;
    ef_error err = {0};
    assert_int_equal(ef_store_open(dbpath, &s, &err), 0);
    struct ef_function fn = sample("c");
    assert_int_equal(ef_store_insert_function(s, &fn, &err), 0);
    struct ef_function *got = NULL;
    for (int i = 0; i < 2; i++) { /* the second read is the cached one */
        assert_int_equal(ef_store_get_function(s, "c", &got, &err), 0);
        assert_same(&fn, got);
        ef_function_free(got);
    }
    fn.memory_mb = 1024;
    assert_int_equal(ef_store_update_function(s, &fn, &err), 0);
    assert_int_equal(ef_store_get_function(s, "c", &got, &err), 0);
    assert_int_equal(got->memory_mb, 1024);
    ef_function_free(got);
    assert_int_equal(ef_store_set_concurrency(s, "c", true, 7, &err), 0);
    assert_int_equal(ef_store_get_function(s, "c", &got, &err), 0);
    assert_true(got->has_reserved_concurrency);
    assert_int_equal(got->reserved_concurrency, 7);
    ef_function_free(got);
    assert_int_equal(ef_store_publish_version(s, "c", NULL, NULL, "x", &got, NULL, &err), 0);
    ef_function_free(got);
    assert_int_equal(ef_store_get_function_version(s, "c", "1", &got, &err), 0);
    ef_function_free(got);
    assert_int_equal(ef_store_delete_version(s, "c", 1, &err), 0);
    assert_int_equal(ef_store_get_function_version(s, "c", "1", &got, &err), -ENOENT);
    assert_int_equal(ef_store_delete_function(s, "c", &err), 0);
    assert_int_equal(ef_store_get_function(s, "c", &got, &err), -ENOENT);
    ef_store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_insert_get_conflict_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_durability_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_survives_process_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test(test_config_hash),
        cmocka_unit_test(test_network_names),
        cmocka_unit_test_setup_teardown(test_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_keeps_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_from_v3, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reads_follow_writes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
