/* Scheduling policies: the flag values both daemons accept, and that the policy set for a
 * thread is the one the kernel reports for it and for the threads it starts afterwards. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/sched_policy.h"

static void test_parse(void **state)
{
    (void)state;
    ef_error err = {0};
    int policy = -1;
    assert_int_equal(ef_sched_policy_parse("batch", "--sched-policy", &policy, &err), 0);
    assert_int_equal(policy, SCHED_BATCH);
    assert_int_equal(ef_sched_policy_parse("other", "--sched-policy", &policy, &err), 0);
    assert_int_equal(policy, SCHED_OTHER);
    assert_string_equal(ef_sched_policy_name(SCHED_BATCH), "batch");
    assert_string_equal(ef_sched_policy_name(SCHED_OTHER), "other");
    assert_string_equal(ef_sched_policy_name(SCHED_IDLE), "idle");
    assert_string_equal(ef_sched_policy_name(SCHED_FIFO), "fifo");
    assert_string_equal(ef_sched_policy_name(12345), "unknown");
    assert_true(ef_sched_policy_realtime(SCHED_FIFO) && ef_sched_policy_realtime(SCHED_RR));
    assert_false(ef_sched_policy_realtime(SCHED_BATCH) || ef_sched_policy_realtime(SCHED_IDLE));
}

static void test_parse_rejects_others(void **state)
{
    (void)state;
    const char *bad[] = {"", "BATCH", "fifo", "idle", "batch ", "rr"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ef_error err = {0};
        int policy = 42;
        assert_int_equal(ef_sched_policy_parse(bad[i], "--container-sched-policy", &policy, &err),
                         -EINVAL);
        assert_int_equal(policy, 42);
        assert_non_null(strstr(err.msg, "--container-sched-policy must be batch or other"));
    }
}

static void *report_policy(void *arg)
{
    *(int *)arg = sched_getscheduler(0);
    return NULL;
}

static int policy_of_new_thread(void)
{
    pthread_t t;
    int policy = -1;
    assert_int_equal(pthread_create(&t, NULL, report_policy, &policy), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    return policy;
}

/* SCHED_BATCH and back needs no privilege. */
static void test_apply_and_inherit(void **state)
{
    (void)state;
    ef_error err = {0};
    int before = sched_getscheduler(0);
    assert_int_equal(ef_sched_policy_apply(SCHED_BATCH, &err), 0);
    assert_int_equal(sched_getscheduler(0), SCHED_BATCH);
    assert_int_equal(policy_of_new_thread(), SCHED_BATCH);
    assert_int_equal(ef_sched_policy_apply(SCHED_OTHER, &err), 0);
    assert_int_equal(sched_getscheduler(0), SCHED_OTHER);
    assert_int_equal(policy_of_new_thread(), SCHED_OTHER);
    /* A policy the kernel refuses is an error that names it. */
    assert_int_equal(ef_sched_policy_apply(12345, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "cannot set the scheduling policy unknown"));
    assert_int_equal(ef_sched_policy_apply(before, &err), 0);
}

/* Runs `check` in a child process, whose policy changes stay its own, and asserts that it
 * exits 0 (a non-zero status names the step that failed). */
static void in_child(int (*check)(void))
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(check());
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static const struct sched_param prio0 = {.sched_priority = 0};

static int keeps_reset_on_fork(void)
{
    ef_error err = {0};
    if (sched_setscheduler(0, SCHED_OTHER | SCHED_RESET_ON_FORK, &prio0) < 0)
        return 2;
    if (ef_sched_policy_apply(SCHED_BATCH, &err) != 0)
        return 3;
    if (sched_getscheduler(0) != (SCHED_BATCH | SCHED_RESET_ON_FORK))
        return 4;
    return ef_sched_policy_current() == SCHED_BATCH ? 0 : 5;
}

/* A thread started with SCHED_RESET_ON_FORK keeps the flag: clearing it needs CAP_SYS_NICE,
 * which a controller in a container has not. */
static void test_apply_keeps_reset_on_fork(void **state)
{
    (void)state;
    in_child(keeps_reset_on_fork);
}

static int keeps_idle(void)
{
    ef_error err = {0};
    if (sched_setscheduler(0, SCHED_IDLE, &prio0) < 0)
        return 2;
    /* An RLIMIT_NICE of 20 or more would let it leave SCHED_IDLE without the capability. */
    const struct rlimit no_nice = {.rlim_cur = 0, .rlim_max = 0};
    if (setrlimit(RLIMIT_NICE, &no_nice) < 0)
        return 7;
    /* Root drops its capabilities by becoming nobody. */
    if (geteuid() == 0 &&
        (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0))
        return 3;
    if (ef_sched_policy_apply(SCHED_BATCH, &err) != 1)
        return 4;
    if (sched_getscheduler(0) != SCHED_IDLE)
        return 5;
    return ef_sched_policy_current() == SCHED_IDLE ? 0 : 6;
}

/* Without CAP_SYS_NICE (and RLIMIT_NICE below 20) a thread cannot leave SCHED_IDLE: it keeps it,
 * and the caller learns so from the result 1 rather than an error. */
static void test_apply_keeps_idle_without_privilege(void **state)
{
    (void)state;
    in_child(keeps_idle);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_parse_rejects_others),
        cmocka_unit_test(test_apply_and_inherit),
        cmocka_unit_test(test_apply_keeps_reset_on_fork),
        cmocka_unit_test(test_apply_keeps_idle_without_privilege),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
