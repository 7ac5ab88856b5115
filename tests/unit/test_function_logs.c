/* The controller's function log store on a real directory: Lambda's framing of an invocation,
 * appends, size-based rotation, and reading back the last lines across rotated files. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fsutil.h"
#include "controller/function_logs.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/ef-logs-test.XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(ef_rm_rf(dir, NULL), 0);
    return 0;
}

static off_t file_size(const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/logs/%s", dir, name);
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static ef_function_logs *open_logs(uint64_t size, unsigned files)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/logs", dir);
    ef_function_logs *logs = NULL;
    ef_error err = {0};
    assert_int_equal(ef_function_logs_open(path, size, files, &logs, &err), 0);
    return logs;
}

static void test_frame(void **state)
{
    (void)state;
    struct ef_log_report rep = {
        .request_id = "r-1",
        .output = "hello\nworld",
        .duration_ms = 12.345,
        .init_ms = 101.5,
        .memory_size_mb = 256,
        .max_memory_used_mb = 41,
    };
    char *text = ef_function_log_frame(&rep);
    assert_string_equal(text, "START RequestId: r-1 Version: $LATEST\n"
                              "hello\nworld\n"
                              "END RequestId: r-1\n"
                              "REPORT RequestId: r-1\tDuration: 12.35 ms\tBilled Duration: 13 ms\t"
                              "Memory Size: 256 MB\tMax Memory Used: 41 MB\t"
                              "Init Duration: 101.50 ms\t\n");
    free(text);

    /* A timeout: the platform's line after the output, Status in REPORT; no memory figure. */
    struct ef_log_report t = {
        .request_id = "r-2",
        .output = "working\n",
        .extra = "2026-01-01T00:00:03.000Z r-2 Task timed out after 3.00 seconds",
        .status = "timeout",
        .duration_ms = 3000.0,
        .memory_size_mb = 128,
        .max_memory_used_mb = -1,
    };
    text = ef_function_log_frame(&t);
    assert_string_equal(text, "START RequestId: r-2 Version: $LATEST\n"
                              "working\n"
                              "2026-01-01T00:00:03.000Z r-2 Task timed out after 3.00 seconds\n"
                              "END RequestId: r-2\n"
                              "REPORT RequestId: r-2\tDuration: 3000.00 ms\tBilled Duration: "
                              "3000 ms\tMemory Size: 128 MB\tStatus: timeout\t\n");
    free(text);

    /* A crash, with no output at all; a sub-millisecond run bills 1 ms. */
    struct ef_log_report c = {
        .request_id = "r-3",
        .extra = "RequestId: r-3 Error: Runtime exited with error: signal: killed\n"
                 "Runtime.ExitError",
        .status = "error",
        .error_type = "Runtime.ExitError",
        .duration_ms = 0.2,
        .memory_size_mb = 128,
        .max_memory_used_mb = 7,
    };
    text = ef_function_log_frame(&c);
    assert_string_equal(text, "START RequestId: r-3 Version: $LATEST\n"
                              "RequestId: r-3 Error: Runtime exited with error: signal: killed\n"
                              "Runtime.ExitError\n"
                              "END RequestId: r-3\n"
                              "REPORT RequestId: r-3\tDuration: 0.20 ms\tBilled Duration: 1 ms\t"
                              "Memory Size: 128 MB\tMax Memory Used: 7 MB\tStatus: error\t"
                              "Error Type: Runtime.ExitError\t\n");
    free(text);
}

/* Billed Duration rounds up the duration as printed: a duration just above a whole
 * millisecond that prints as one (1.004 -> 1.00) bills that millisecond, not the next. */
static void test_billed_matches_printed_duration(void **state)
{
    (void)state;
    static const struct {
        double ms;
        const char *expect;
    } cases[] = {
        {1.004, "\tDuration: 1.00 ms\tBilled Duration: 1 ms\t"},
        {1.006, "\tDuration: 1.01 ms\tBilled Duration: 2 ms\t"},
        {2999.999, "\tDuration: 3000.00 ms\tBilled Duration: 3000 ms\t"},
        {0.004, "\tDuration: 0.00 ms\tBilled Duration: 1 ms\t"},
        {-1, "\tDuration: 0.00 ms\tBilled Duration: 1 ms\t"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ef_log_report rep = {.request_id = "r",
                                    .duration_ms = cases[i].ms,
                                    .memory_size_mb = 128,
                                    .max_memory_used_mb = -1};
        char *text = ef_function_log_frame(&rep);
        assert_non_null(text);
        if (!strstr(text, cases[i].expect))
            fail_msg("%.3f ms: %s", cases[i].ms, text);
        free(text);
    }
}

/* Appends entry number i: "entry <i> line <j>\n" for j in 0..lines-1. */
static void append_entry(ef_function_logs *logs, const char *fn, int i, int lines)
{
    char buf[4096];
    size_t len = 0;
    for (int j = 0; j < lines; j++)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "entry %04d line %d\n", i, j);
    ef_error err = {0};
    assert_int_equal(ef_function_logs_append(logs, fn, buf, len, &err), 0);
}

static void test_rotation_and_tail(void **state)
{
    (void)state;
    ef_function_logs *logs = open_logs(4096, 3);
    ef_error err = {0};
    char *text = NULL;
    size_t len = 0;
    /* No log yet. */
    assert_int_equal(ef_function_logs_tail(logs, "fn", 10, &text, &len, &err), -ENOENT);

    /* 200 entries of 5 lines (18 bytes each): ~18 KB through 4 KB files, kept 3 deep. */
    for (int i = 0; i < 200; i++)
        append_entry(logs, "fn", i, 5);
    assert_true(file_size("fn.log") > 0 && file_size("fn.log") <= 4096);
    assert_true(file_size("fn.log.1") > 4096 - 90 && file_size("fn.log.1") <= 4096);
    assert_true(file_size("fn.log.2") > 4096 - 90 && file_size("fn.log.2") <= 4096);
    assert_int_equal(file_size("fn.log.3"), -1);

    /* The last 3 lines come from the current file. */
    assert_int_equal(ef_function_logs_tail(logs, "fn", 3, &text, &len, &err), 0);
    assert_string_equal(text, "entry 0199 line 2\nentry 0199 line 3\nentry 0199 line 4\n");
    assert_int_equal(len, strlen(text));
    free(text);

    /* Enough lines to need the rotated files: contiguous and in order, oldest first. */
    size_t want = 400;
    assert_int_equal(ef_function_logs_tail(logs, "fn", want, &text, &len, &err), 0);
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    assert_int_equal(lines, want);
    assert_memory_equal(text, "entry 0120 line 0\n", 18);
    assert_string_equal(text + len - 18, "entry 0199 line 4\n");
    int prev_entry = 119, prev_line = 4;
    for (char *p = text; *p; p = strchr(p, '\n') + 1) {
        int e, l;
        assert_int_equal(sscanf(p, "entry %d line %d", &e, &l), 2);
        assert_true((e == prev_entry && l == prev_line + 1) ||
                    (e == prev_entry + 1 && l == 0 && prev_line == 4));
        prev_entry = e;
        prev_line = l;
    }
    free(text);

    /* Asking for more than is kept returns everything kept (the oldest entries are gone). */
    assert_int_equal(ef_function_logs_tail(logs, "fn", 10000, &text, &len, &err), 0);
    assert_int_equal((off_t)len,
                     file_size("fn.log") + file_size("fn.log.1") + file_size("fn.log.2"));
    assert_null(strstr(text, "entry 0000 "));
    free(text);

    /* Functions have separate files. */
    append_entry(logs, "other", 1, 1);
    assert_int_equal(ef_function_logs_tail(logs, "other", 100, &text, &len, &err), 0);
    assert_string_equal(text, "entry 0001 line 0\n");
    free(text);
    ef_function_logs_close(logs);
}

static void test_single_file_and_large_entry(void **state)
{
    (void)state;
    ef_function_logs *logs = open_logs(4096, 1);
    for (int i = 0; i < 100; i++)
        append_entry(logs, "one", i, 4);
    assert_true(file_size("one.log") <= 4096);
    assert_int_equal(file_size("one.log.1"), -1);
    /* An entry larger than a file is kept whole, in a file of its own. */
    char *big = malloc(10000);
    memset(big, 'x', 9999);
    big[9999] = '\n';
    ef_error err = {0};
    assert_int_equal(ef_function_logs_append(logs, "one", big, 10000, &err), 0);
    assert_int_equal(file_size("one.log"), 10000);
    free(big);
    append_entry(logs, "one", 1, 1);
    assert_int_equal(file_size("one.log"), 18);
    ef_function_logs_close(logs);
}

static void test_bad_names_and_settings(void **state)
{
    (void)state;
    ef_function_logs *logs = open_logs(0, 0); /* the defaults */
    ef_error err = {0};
    char *text = NULL;
    size_t len;
    assert_int_equal(ef_function_logs_append(logs, "../escape", "x\n", 2, &err), -EINVAL);
    assert_int_equal(ef_function_logs_append(logs, "", "x\n", 2, &err), -EINVAL);
    assert_int_equal(ef_function_logs_tail(logs, "a/b", 1, &text, &len, &err), -EINVAL);
    ef_function_logs_close(logs);

    char path[128];
    snprintf(path, sizeof(path), "%s/logs", dir);
    assert_int_equal(ef_function_logs_open(path, 100, 3, &logs, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "size"));
    assert_int_equal(ef_function_logs_open(path, 4096, EF_FUNCTION_LOGS_MAX_FILES + 1, &logs, &err),
                     -EINVAL);
}

/* Files are kept open between appends: more functions than the controller keeps open all get
 * their entries, and a file an operator removes is written again (found within a second). */
static void test_open_files(void **state)
{
    (void)state;
    ef_function_logs *logs = open_logs(0, 0);
    ef_error err = {0};
    char name[32];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 40; i++) {
            snprintf(name, sizeof(name), "fn%d", i);
            assert_int_equal(ef_function_logs_append(logs, name, "line\n", 5, &err), 0);
        }
    }
    for (int i = 0; i < 40; i++) {
        char file[40];
        snprintf(file, sizeof(file), "fn%d.log", i);
        assert_int_equal(file_size(file), 10);
    }

    char path[256];
    snprintf(path, sizeof(path), "%s/logs/fn0.log", dir);
    assert_int_equal(ef_function_logs_append(logs, "fn0", "a\n", 2, &err), 0);
    assert_int_equal(unlink(path), 0);
    usleep(1100 * 1000);
    assert_int_equal(ef_function_logs_append(logs, "fn0", "b\n", 2, &err), 0);
    assert_int_equal(file_size("fn0.log"), 2);
    ef_function_logs_close(logs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame),
        cmocka_unit_test(test_billed_matches_printed_duration),
        cmocka_unit_test_setup_teardown(test_rotation_and_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_single_file_and_large_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_names_and_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_files, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
