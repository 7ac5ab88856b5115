/* How the runner words a runtime's end: wait statuses of real processes, formatted as Lambda
 * (and Go's os/exec) do, and the Runtime.ExitError document. Also the runtime's peak memory
 * (VmHWM) for REPORT's Max Memory Used, from literal /proc status text and a real process. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "rapi/invocations.h"
#include "rapi/proc_memory.h"
#include "runner/spawn.h"

/* Runs a child that ends with exit(code) (sig == 0) or by signal `sig`; returns its status. */
static int real_status(int code, int sig)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* No core files from the tests. */
        struct rlimit rl = {0, 0};
        setrlimit(RLIMIT_CORE, &rl);
        if (sig) {
            signal(sig, SIG_DFL);
            kill(getpid(), sig);
            pause();
        }
        _exit(code);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static void expect_status(int status, const char *want)
{
    char buf[64];
    ef_format_wait_status(status, buf, sizeof(buf));
    assert_string_equal(buf, want);
}

static void test_exit_codes(void **state)
{
    (void)state;
    expect_status(real_status(0, 0), "exit status 0");
    expect_status(real_status(1, 0), "exit status 1");
    expect_status(real_status(3, 0), "exit status 3");
    expect_status(real_status(255, 0), "exit status 255");
}

static void test_signals(void **state)
{
    (void)state;
    expect_status(real_status(0, SIGKILL), "signal: killed");
    expect_status(real_status(0, SIGTERM), "signal: terminated");
    expect_status(real_status(0, SIGSEGV), "signal: segmentation fault");
    expect_status(real_status(0, SIGABRT), "signal: aborted");
    expect_status(real_status(0, SIGINT), "signal: interrupt");
    /* Real-time signals have no name. */
    char want[32];
    snprintf(want, sizeof(want), "signal: signal %d", SIGRTMIN + 2);
    expect_status(real_status(0, SIGRTMIN + 2), want);
}

static void test_small_buffer_is_safe(void **state)
{
    (void)state;
    char buf[8];
    ef_format_wait_status(real_status(0, SIGSEGV), buf, sizeof(buf));
    assert_int_equal(strlen(buf), sizeof(buf) - 1);
}

static void test_exit_error_document(void **state)
{
    (void)state;
    char *doc = ef_exit_error_doc("abc-123", "exit status 3");
    assert_non_null(doc);
    cJSON *j = cJSON_Parse(doc);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "errorType")->valuestring, "Runtime.ExitError");
    assert_string_equal(cJSON_GetObjectItem(j, "errorMessage")->valuestring,
                        "RequestId: abc-123 Error: Runtime exited with error: exit status 3");
    assert_int_equal(cJSON_GetArraySize(j), 2);
    cJSON_Delete(j);
    free(doc);

    doc = ef_exit_error_doc("r", "signal: killed");
    j = cJSON_Parse(doc);
    assert_string_equal(cJSON_GetObjectItem(j, "errorMessage")->valuestring,
                        "RequestId: r Error: Runtime exited with error: signal: killed");
    cJSON_Delete(j);
    free(doc);
}

static void test_peak_memory(void **state)
{
    (void)state;
    long kb = -1;
    assert_true(ef_parse_vmhwm_kb("Name:\tpython3\nVmPeak:\t  30000 kB\nVmHWM:\t   12345 kB\n"
                                  "VmRSS:\t 1000 kB\n",
                                  &kb));
    assert_int_equal(kb, 12345);
    /* A zombie's status has no memory lines; malformed values are refused. */
    assert_false(ef_parse_vmhwm_kb("Name:\tx\nState:\tZ (zombie)\n", &kb));
    assert_false(ef_parse_vmhwm_kb("VmHWM:\t  -5 kB\n", &kb));
    assert_false(ef_parse_vmhwm_kb("VmHWM:\t  12 MB\n", &kb));
    assert_false(ef_parse_vmhwm_kb("VmHWM:\n", &kb));
    assert_false(ef_parse_vmhwm_kb("", &kb));
    /* This process: it touched at least the 8 MiB below, so its peak is at least that. */
    char *block = malloc(8u << 20);
    assert_non_null(block);
    volatile char *touch = block; /* so that the writes cannot be optimised away */
    for (size_t i = 0; i < (8u << 20); i += 4096)
        touch[i] = 1;
    assert_true(ef_proc_peak_rss_kb(getpid(), &kb));
    assert_true(kb >= 8 * 1024);
    free(block);
    assert_false(ef_proc_peak_rss_kb(0x7ffffff0, &kb));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exit_codes),           cmocka_unit_test(test_signals),
        cmocka_unit_test(test_small_buffer_is_safe), cmocka_unit_test(test_exit_error_document),
        cmocka_unit_test(test_peak_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
