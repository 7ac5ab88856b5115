/* Function store tests: SQLite on disk in a temporary directory. */
#include <errno.h>
#include <setjmp.h>
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

#include "common/fsutil.h"
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

    /* Every setting a container depends on changes the hash; the description does not. */
    struct ef_function b = sample("h");
    b.config_hash = NULL;
    b.description = "other words";
    assert_int_equal(ef_function_compute_config_hash(&b), 0);
    assert_string_equal(a.config_hash, b.config_hash);
    free(b.config_hash);

    const char *changes[] = {"runtime", "handler", "memory", "timeout", "environment"};
    for (size_t i = 0; i < 5; i++) {
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
        }
        assert_int_equal(ef_function_compute_config_hash(&c), 0);
        if (strcmp(a.config_hash, c.config_hash) == 0)
            fail_msg("changing %s kept the config hash", changes[i]);
        free(c.config_hash);
    }
    free(a.config_hash);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_insert_get_conflict_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_durability_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_survives_process_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test(test_config_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
