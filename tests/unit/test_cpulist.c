/* CPU lists: formatting the sets funclet hands a runner and parsing them back. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/cpulist.h"

static void set_of(cpu_set_t *set, const int *cpus, size_t n)
{
    CPU_ZERO(set);
    for (size_t i = 0; i < n; i++)
        CPU_SET(cpus[i], set);
}

static void expect_format(const int *cpus, size_t n, const char *want)
{
    cpu_set_t set;
    set_of(&set, cpus, n);
    char buf[EF_CPULIST_MAX];
    assert_int_equal(ef_cpulist_format(&set, buf, sizeof(buf)), (int)strlen(want));
    assert_string_equal(buf, want);
    /* And back. */
    cpu_set_t parsed;
    ef_error err = {0};
    assert_int_equal(ef_cpulist_parse(buf, &parsed, &err), 0);
    assert_true(CPU_EQUAL(&set, &parsed));
}

static void test_format_ranges_and_singles(void **state)
{
    (void)state;
    expect_format((int[]){0}, 1, "0");
    expect_format((int[]){0, 1}, 2, "0-1");
    expect_format((int[]){0, 1, 2, 3, 6}, 5, "0-3,6");
    expect_format((int[]){1, 3, 5, 6, 7, 100}, 6, "1,3,5-7,100");
    expect_format((int[]){CPU_SETSIZE - 1}, 1, "1023");
}

static void test_format_every_other_cpu_fits(void **state)
{
    (void)state;
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu += 2)
        CPU_SET(cpu, &set);
    char buf[EF_CPULIST_MAX];
    int n = ef_cpulist_format(&set, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(strncmp(buf, "0,2,4,", 6), 0);
    cpu_set_t parsed;
    ef_error err = {0};
    assert_int_equal(ef_cpulist_parse(buf, &parsed, &err), 0);
    assert_true(CPU_EQUAL(&set, &parsed));
}

static void test_format_reports_a_short_buffer(void **state)
{
    (void)state;
    cpu_set_t set;
    set_of(&set, (int[]){0, 1, 2, 3, 6}, 5);
    char buf[5]; /* "0-3,6" needs 6 */
    assert_int_equal(ef_cpulist_format(&set, buf, sizeof(buf)), -ENOSPC);
    char ok[6];
    assert_int_equal(ef_cpulist_format(&set, ok, sizeof(ok)), 5);
    assert_string_equal(ok, "0-3,6");
    CPU_ZERO(&set);
    assert_int_equal(ef_cpulist_format(&set, ok, sizeof(ok)), 0);
    assert_string_equal(ok, "");
}

static void expect_rejected(const char *text, const char *fragment)
{
    cpu_set_t set;
    ef_error err = {0};
    assert_int_equal(ef_cpulist_parse(text, &set, &err), -EINVAL);
    if (!strstr(err.msg, fragment))
        fail_msg("\"%s\": message \"%s\" lacks \"%s\"", text, err.msg, fragment);
}

static void test_parse_rejects_bad_lists(void **state)
{
    (void)state;
    expect_rejected("", "empty");
    expect_rejected("a", "expected CPU numbers");
    expect_rejected("3-1", "ascending");
    expect_rejected("0,", "expected CPU numbers");
    expect_rejected("0;1", "unexpected \";\"");
    expect_rejected("1024", "below 1024");
    expect_rejected("99999999999999999999", "below 1024");
    expect_rejected("-1", "expected CPU numbers");
    expect_rejected("0 1", "unexpected \" \"");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_ranges_and_singles),
        cmocka_unit_test(test_format_every_other_cpu_fits),
        cmocka_unit_test(test_format_reports_a_short_buffer),
        cmocka_unit_test(test_parse_rejects_bad_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
