/* Parsing of /proc/self/mountinfo for the recycling of run/containers: which mount points lie
 * below a directory, in an order in which they can be unmounted; escapes; malformed input. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/fsutil.h"
#include "funclet/mountinfo.h"

/* The layout funclet makes: its private bind of run/containers, a container's shared mnt/ with
 * the code, /tmp and /dev/shm on it, plus unrelated mounts, one of them a sibling whose name
 * starts like the directory. */
static const char sample[] =
    "21 26 0:20 / /proc rw,relatime - proc proc rw\n"
    "26 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
    "90 26 254:0 /data/run/containers /data/run/containers rw,relatime - ext4 /dev/vda rw\n"
    "91 90 0:63 / /data/run/containers/c1/mnt rw,nosuid shared:3 - tmpfs tmpfs rw,size=16k\n"
    "92 91 0:76 / /data/run/containers/c1/mnt/tmp rw shared:6 - tmpfs tmpfs rw\n"
    "93 91 0:77 / /data/run/containers/c1/mnt/shm rw shared:7 - tmpfs tmpfs rw\n"
    "94 91 254:0 /data/code/x /data/run/containers/c1/mnt/task ro shared:8 - ext4 /dev/vda rw\n"
    "95 26 0:80 / /data/run/containers2 rw - tmpfs tmpfs rw\n"
    "96 26 0:81 / /data/run/containers/with\\040space rw - tmpfs tmpfs rw\n";

static void test_below_in_unmount_order(void **state)
{
    (void)state;
    char **paths = NULL;
    size_t n = 0;
    ef_error err;
    assert_int_equal(ef_mountinfo_below(sample, "/data/run/containers", true, &paths, &n, &err), 0);
    assert_int_equal(n, 6);
    /* Deepest first, so that every mount comes before the one it sits on. */
    assert_string_equal(paths[0], "/data/run/containers/c1/mnt/task");
    assert_string_equal(paths[1], "/data/run/containers/c1/mnt/shm");
    assert_string_equal(paths[2], "/data/run/containers/c1/mnt/tmp");
    assert_string_equal(paths[3], "/data/run/containers/c1/mnt");
    assert_string_equal(paths[4], "/data/run/containers/with space");
    assert_string_equal(paths[5], "/data/run/containers");
    assert_null(paths[6]);
    ef_mountinfo_free(paths);

    /* Without the directory itself; and a sibling with a common prefix is never below. */
    assert_int_equal(ef_mountinfo_below(sample, "/data/run/containers", false, &paths, &n, &err),
                     0);
    assert_int_equal(n, 5);
    for (size_t i = 0; i < n; i++)
        assert_true(strncmp(paths[i], "/data/run/containers/", 21) == 0);
    ef_mountinfo_free(paths);

    assert_int_equal(ef_mountinfo_below(sample, "/nowhere", true, &paths, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_null(paths[0]);
    ef_mountinfo_free(paths);
    ef_mountinfo_free(NULL);
}

/* The kernel's listing is not always the order of mounting (here /proc before /); mounts
 * stacked at one path come off the later one first. */
static void test_order_by_depth(void **state)
{
    (void)state;
    static const char text[] = "21 26 0:20 / /x/proc rw - proc proc rw\n"
                               "26 1 254:0 / /x rw - ext4 /dev/vda rw\n"
                               "30 26 0:30 / /x/a/b rw - tmpfs a rw\n"
                               "31 26 0:31 / /x/a rw - tmpfs b rw\n"
                               "32 31 0:32 / /x/a rw - tmpfs c rw\n";
    char **paths = NULL;
    size_t n = 0;
    ef_error err;
    assert_int_equal(ef_mountinfo_below(text, "/x", true, &paths, &n, &err), 0);
    assert_int_equal(n, 5);
    assert_string_equal(paths[0], "/x/a/b");
    assert_string_equal(paths[1], "/x/a"); /* the one of 32, listed later */
    assert_string_equal(paths[2], "/x/a");
    assert_string_equal(paths[3], "/x/proc");
    assert_string_equal(paths[4], "/x");
    ef_mountinfo_free(paths);
}

static void test_unescape(void **state)
{
    (void)state;
    char a[] = "/a\\040b\\011c\\012d\\134e";
    assert_int_equal(ef_mountinfo_unescape(a), 0);
    assert_string_equal(a, "/a b\tc\nd\\e");
    char plain[] = "/plain/path";
    assert_int_equal(ef_mountinfo_unescape(plain), 0);
    assert_string_equal(plain, "/plain/path");
    char bad1[] = "/a\\04";
    assert_int_equal(ef_mountinfo_unescape(bad1), -EINVAL);
    char bad2[] = "/a\\0x9";
    assert_int_equal(ef_mountinfo_unescape(bad2), -EINVAL);
    char bad3[] = "/a\\000";
    assert_int_equal(ef_mountinfo_unescape(bad3), -EINVAL);
}

static void test_malformed(void **state)
{
    (void)state;
    char **paths = NULL;
    size_t n = 0;
    ef_error err;
    assert_int_equal(ef_mountinfo_below("21 26 0:20 /\n", "/", true, &paths, &n, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "line 1"));
    assert_int_equal(ef_mountinfo_below("26 1 254:0 / / rw - ext4 x rw\n1 2 3 4 relative x\n", "/",
                                        true, &paths, &n, &err),
                     -EINVAL);
    assert_non_null(strstr(err.msg, "line 2"));
    /* Empty input and a missing final newline are fine. */
    assert_int_equal(ef_mountinfo_below("", "/", true, &paths, &n, &err), 0);
    assert_int_equal(n, 0);
    ef_mountinfo_free(paths);
    assert_int_equal(
        ef_mountinfo_below("26 1 254:0 / / rw - ext4 x rw", "/", true, &paths, &n, &err), 0);
    assert_int_equal(n, 1);
    ef_mountinfo_free(paths);
}

/* The real file of this process parses, and "/" is listed. */
static void test_real_mountinfo(void **state)
{
    (void)state;
    char *text = NULL;
    ef_error err;
    assert_int_equal(ef_read_file("/proc/self/mountinfo", 64u << 20, &text, NULL, &err), 0);
    char **paths = NULL;
    size_t n = 0;
    assert_int_equal(ef_mountinfo_below(text, "/", true, &paths, &n, &err), 0);
    assert_true(n >= 1);
    assert_string_equal(paths[n - 1], "/");
    ef_mountinfo_free(paths);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_below_in_unmount_order),
        cmocka_unit_test(test_order_by_depth),
        cmocka_unit_test(test_unescape),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_real_mountinfo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
