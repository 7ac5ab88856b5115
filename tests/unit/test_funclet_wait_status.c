/* How funclet describes a runner's end in container.exited, on real child processes. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "funclet/wait_status.h"

/* Runs a child that exits with `code`, or kills itself with `sig` when sig != 0. */
static int child_status(int code, int sig)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (sig) {
            /* No core file for the SIGSEGV case. */
            struct rlimit rl = {0, 0};
            setrlimit(RLIMIT_CORE, &rl);
            signal(sig, SIG_DFL);
            raise(sig);
        }
        _exit(code);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static void test_exit(void **state)
{
    (void)state;
    char buf[64];
    ef_wait_status_string(child_status(0, 0), buf, sizeof(buf));
    assert_string_equal(buf, "exit status 0");
    ef_wait_status_string(child_status(3, 0), buf, sizeof(buf));
    assert_string_equal(buf, "exit status 3");
}

static void test_signals(void **state)
{
    (void)state;
    char buf[64];
    ef_wait_status_string(child_status(0, SIGKILL), buf, sizeof(buf));
    assert_string_equal(buf, "signal: killed");
    ef_wait_status_string(child_status(0, SIGTERM), buf, sizeof(buf));
    assert_string_equal(buf, "signal: terminated");
    ef_wait_status_string(child_status(0, SIGSEGV), buf, sizeof(buf));
    assert_string_equal(buf, "signal: segmentation fault");
}

static void test_truncates(void **state)
{
    (void)state;
    char buf[10];
    ef_wait_status_string(child_status(0, SIGSEGV), buf, sizeof(buf));
    assert_string_equal(buf, "signal: s");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exit),
        cmocka_unit_test(test_signals),
        cmocka_unit_test(test_truncates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
