/* The pure cgroup helpers on literal strings: /proc/self/cgroup lines of v1, v2 and hybrid
 * hosts, flat-keyed interface files, and the conversions of limits into file values. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "funclet/cgroup_parse.h"

/* This machine's hybrid layout: each controller in its own hierarchy, memory elsewhere. */
static const char hybrid[] = "9:name=systemd:/\n"
                             "8:pids:/\n"
                             "6:freezer:/\n"
                             "4:memory:/process_api/9f31\n"
                             "2:cpuacct:/\n"
                             "1:cpu,cpuacct:/user.slice\n"
                             "0::/\n";

static void expect_path(const char *text, const char *controller, const char *want)
{
    char *path = NULL;
    ef_error e;
    int r = ef_proc_cgroup_path(text, controller, &path, &e);
    if (r != 0)
        fail_msg("%s: %s", controller ? controller : "unified", e.msg);
    assert_string_equal(path, want);
    free(path);
}

static void expect_error(const char *text, const char *controller, int want)
{
    char *path = NULL;
    ef_error e;
    assert_int_equal(ef_proc_cgroup_path(text, controller, &path, &e), want);
    assert_null(path);
    assert_true(e.msg[0] != '\0');
}

static void test_proc_cgroup_v1(void **state)
{
    (void)state;
    expect_path(hybrid, "memory", "/process_api/9f31");
    expect_path(hybrid, "pids", "/");
    expect_path(hybrid, "cpu", "/user.slice"); /* co-mounted "cpu,cpuacct" */
    expect_path(hybrid, "cpuacct", "/");       /* the first line that lists it */
    expect_path(hybrid, "name=systemd", "/");
    expect_path(hybrid, NULL, "/");
    expect_error(hybrid, "blkio", -ENOENT);
    /* "cpu" is not "cpuacct", nor a prefix match. */
    expect_error("2:cpuacct:/\n", "cpu", -ENOENT);
}

static void test_proc_cgroup_v2(void **state)
{
    (void)state;
    expect_path("0::/some/path\n", NULL, "/some/path");
    expect_path("0::/kubepods.slice/pod-1.slice/cri-containerd-ab.scope", NULL,
                "/kubepods.slice/pod-1.slice/cri-containerd-ab.scope");
    expect_path("0::/", NULL, "/");
    /* Only the line with id 0 and no controllers is the unified one. */
    expect_error("1:name=systemd:/x\n", NULL, -ENOENT);
    expect_error("", NULL, -ENOENT);
    expect_error("0::relative\n", NULL, -EINVAL);
    expect_error("0::/a/../../etc\n", NULL, -EINVAL);
    expect_error("garbage\n", NULL, -EINVAL);
    /* A cgroup whose name merely contains dots is fine. */
    expect_path("0::/a/..b/c..\n", NULL, "/a/..b/c..");
}

static void test_keyed_value(void **state)
{
    (void)state;
    const char *events = "low 0\nhigh 12\nmax 7\noom 2\noom_kill 1\noom_group_kill 0\n";
    uint64_t v = 0;
    assert_int_equal(ef_cgroup_keyed_value(events, "oom_kill", &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(ef_cgroup_keyed_value(events, "oom", &v), 0);
    assert_int_equal(v, 2);
    assert_int_equal(ef_cgroup_keyed_value(events, "high", &v), 0);
    assert_int_equal(v, 12);
    assert_int_equal(ef_cgroup_keyed_value(events, "oom_group", &v), -ENOENT);
    assert_int_equal(ef_cgroup_keyed_value("oom_kill x\n", "oom_kill", &v), -EINVAL);
    assert_int_equal(ef_cgroup_keyed_value("oom_kill 3", "oom_kill", &v), 0);
    assert_int_equal(v, 3);
    /* v1 memory.oom_control */
    const char *oom_control = "oom_kill_disable 0\nunder_oom 0\noom_kill 5\n";
    assert_int_equal(ef_cgroup_keyed_value(oom_control, "oom_kill", &v), 0);
    assert_int_equal(v, 5);
    assert_int_equal(ef_cgroup_keyed_value("populated 1\nfrozen 0\n", "frozen", &v), 0);
    assert_int_equal(v, 0);
}

static void test_list_has(void **state)
{
    (void)state;
    assert_true(ef_cgroup_list_has("cpuset cpu io memory pids\n", "cpu"));
    assert_true(ef_cgroup_list_has("cpuset cpu io memory pids\n", "pids"));
    assert_false(ef_cgroup_list_has("cpuset io memory\n", "cpu"));
    assert_false(ef_cgroup_list_has("", "memory"));
    assert_false(ef_cgroup_list_has("memory", ""));
}

static void test_formats(void **state)
{
    (void)state;
    char buf[64];
    ef_cgroup_format_max(UINT64_MAX, buf, sizeof(buf));
    assert_string_equal(buf, "max");
    ef_cgroup_format_max(134217728, buf, sizeof(buf));
    assert_string_equal(buf, "134217728");
    ef_cgroup_format_cpu_max(0, buf, sizeof(buf));
    assert_string_equal(buf, "max 100000");
    ef_cgroup_format_cpu_max(1500, buf, sizeof(buf));
    assert_string_equal(buf, "150000 100000");
    /* Below the kernel's 1 ms minimum the quota is raised to it. */
    ef_cgroup_format_cpu_max(5, buf, sizeof(buf));
    assert_string_equal(buf, "1000 100000");
    assert_int_equal(ef_cgroup_cpu_quota_us(0), -1);
    assert_int_equal(ef_cgroup_cpu_quota_us(250), 25000);
}

static void test_weights(void **state)
{
    (void)state;
    /* The ends and the defaults of both scales line up. */
    assert_int_equal(ef_cgroup_weight_to_shares(1), 2);
    assert_int_equal(ef_cgroup_weight_to_shares(10000), 262144);
    assert_int_equal(ef_cgroup_weight_to_shares(100), 2597);
    assert_int_equal(ef_cgroup_weight_to_shares(0), 2);
    assert_int_equal(ef_cgroup_weight_to_shares(20000), 262144);
    assert_int_equal(ef_cgroup_weight_for_memory(1024), 100);
    assert_int_equal(ef_cgroup_weight_for_memory(128), 12);
    assert_int_equal(ef_cgroup_weight_for_memory(1), 1);
    assert_int_equal(ef_cgroup_weight_for_memory(10240), 1000);
    assert_int_equal(ef_cgroup_weight_for_memory(1ull << 40), 10000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proc_cgroup_v1), cmocka_unit_test(test_proc_cgroup_v2),
        cmocka_unit_test(test_keyed_value),    cmocka_unit_test(test_list_has),
        cmocka_unit_test(test_formats),        cmocka_unit_test(test_weights),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
