/* File-system helpers, on real temporary directories. The mount-point cases need root (to
 * mount a tmpfs) and are skipped without it. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fsutil.h"

static char tmp[64];

static int setup(void **state)
{
    (void)state;
    snprintf(tmp, sizeof(tmp), "/tmp/ef-test-fsutil-XXXXXX");
    return mkdtemp(tmp) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return ef_rm_rf(tmp, NULL);
}

/* Returns a path below the test's directory (static buffer, one per call site is enough). */
static const char *at(const char *rel)
{
    static char bufs[8][256];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof(bufs[0]), "%s/%s", tmp, rel);
    return b;
}

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "we");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

/* ---- mkdir_p ---- */

static void test_mkdir_p(void **state)
{
    (void)state;
    mode_t old = umask(0);
    ef_error err = {0};
    assert_int_equal(ef_mkdir_p(at("a/b//c/"), 0750, &err), 0);
    struct stat st;
    assert_int_equal(stat(at("a/b/c"), &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0750);
    assert_int_equal(stat(at("a"), &st), 0);
    assert_int_equal(st.st_mode & 07777, 0750);
    umask(old);

    /* Existing directories are fine. */
    assert_int_equal(ef_mkdir_p(at("a/b/c"), 0700, &err), 0);
    assert_int_equal(ef_mkdir_p(tmp, 0700, &err), 0);

    /* A file in the way is an error that names it. */
    put(at("a/file"), "x");
    assert_int_equal(ef_mkdir_p(at("a/file/sub"), 0700, &err), -ENOTDIR);
    assert_non_null(strstr(err.msg, "a/file"));
    assert_int_equal(ef_mkdir_p(at("a/file"), 0700, &err), -ENOTDIR);
    assert_int_equal(ef_mkdir_p("", 0700, &err), -EINVAL);
}

/* ---- rm_rf ---- */

static void test_rm_rf_tree_and_symlinks(void **state)
{
    (void)state;
    ef_error err = {0};
    /* Something outside the tree that symlinks inside point at: it must survive. */
    assert_int_equal(ef_mkdir_p(at("outside/dir"), 0755, NULL), 0);
    put(at("outside/dir/keep"), "keep");
    put(at("outside/file"), "keep");

    assert_int_equal(ef_mkdir_p(at("tree/x/y/z"), 0755, NULL), 0);
    put(at("tree/f"), "1");
    put(at("tree/x/y/z/deep"), "2");
    assert_int_equal(symlink(at("outside/dir"), at("tree/link-to-dir")), 0);
    assert_int_equal(symlink(at("outside/file"), at("tree/x/link-to-file")), 0);
    assert_int_equal(symlink("/nonexistent", at("tree/dangling")), 0);
    assert_int_equal(mkfifo(at("tree/fifo"), 0600), 0);
    assert_int_equal(ef_mkdir_p(at("tree/empty/sub"), 0755, NULL), 0);

    assert_int_equal(ef_rm_rf(at("tree"), &err), 0);
    assert_false(exists(at("tree")));
    assert_true(exists(at("outside/dir/keep")));
    assert_true(exists(at("outside/file")));

    /* A symlink given as the path is removed itself, not what it points to. */
    assert_int_equal(symlink(at("outside/dir"), at("link")), 0);
    assert_int_equal(ef_rm_rf(at("link"), &err), 0);
    assert_false(exists(at("link")));
    assert_true(exists(at("outside/dir/keep")));

    /* A plain file; a missing path is success. */
    assert_int_equal(ef_rm_rf(at("outside/file"), &err), 0);
    assert_false(exists(at("outside/file")));
    assert_int_equal(ef_rm_rf(at("does/not/exist"), &err), 0);
}

static void test_rm_rf_refuses_mount_points(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        skip();
    }
    /* Mounts made in a private mount namespace vanish with this process, even if it fails. */
    if (unshare(CLONE_NEWNS) < 0 || mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0) {
        skip();
    }
    ef_error err = {0};
    assert_int_equal(ef_mkdir_p(at("tree/mnt"), 0755, NULL), 0);
    assert_int_equal(ef_mkdir_p(at("tree/bind"), 0755, NULL), 0);
    assert_int_equal(ef_mkdir_p(at("code"), 0755, NULL), 0);
    put(at("code/handler.py"), "def handler(e, c): return 1\n");
    put(at("tree/before"), "x");

    /* A different file system (st_dev differs). */
    if (mount("tmpfs", at("tree/mnt"), "tmpfs", 0, "size=1m") < 0) {
        skip();
    }
    put(at("tree/mnt/precious"), "data");
    assert_int_equal(ef_rm_rf(at("tree"), &err), -EBUSY);
    assert_non_null(strstr(err.msg, "tree/mnt"));
    assert_non_null(strstr(err.msg, "mounted"));
    assert_true(exists(at("tree/mnt/precious")));
    assert_int_equal(umount(at("tree/mnt")), 0);

    /* A bind mount of the same file system (same st_dev, different mount): how a container
     * sees its code. */
    assert_int_equal(mount(at("code"), at("tree/bind"), "none", MS_BIND, NULL), 0);
    assert_int_equal(ef_rm_rf(at("tree"), &err), -EBUSY);
    assert_non_null(strstr(err.msg, "tree/bind"));
    assert_true(exists(at("code/handler.py")));
    assert_int_equal(umount(at("tree/bind")), 0);

    /* Without the mounts the tree goes. */
    assert_int_equal(ef_rm_rf(at("tree"), &err), 0);
    assert_false(exists(at("tree")));
    assert_true(exists(at("code/handler.py")));
}

/* ---- atomic writes and reads ---- */

static void test_write_and_read(void **state)
{
    (void)state;
    ef_error err = {0};
    const char *p = at("state.json");
    assert_int_equal(ef_write_file_atomic(p, "{\"a\":1}", 7, 0640, &err), 0);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);

    char *data = NULL;
    size_t len = 0;
    assert_int_equal(ef_read_file(p, 1024, &data, &len, &err), 0);
    assert_int_equal(len, 7);
    assert_string_equal(data, "{\"a\":1}");
    free(data);

    /* Replacing keeps no temporary file behind. */
    assert_int_equal(ef_write_file_atomic(p, "new", 3, 0600, &err), 0);
    assert_int_equal(ef_read_file(p, 3, &data, &len, &err), 0); /* exactly max is fine */
    assert_string_equal(data, "new");
    free(data);
    assert_int_equal(count_entries(tmp), 1);

    /* Binary content and an empty file. */
    assert_int_equal(ef_write_file_atomic(p, "a\0b", 3, 0600, &err), 0);
    assert_int_equal(ef_read_file(p, 10, &data, &len, &err), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(data, "a\0b", 4);
    free(data);
    assert_int_equal(ef_write_file_atomic(p, "", 0, 0600, &err), 0);
    assert_int_equal(ef_read_file(p, 10, &data, &len, &err), 0);
    assert_int_equal(len, 0);
    assert_string_equal(data, "");
    free(data);

    /* Too large. */
    assert_int_equal(ef_write_file_atomic(p, "0123456789", 10, 0600, &err), 0);
    data = NULL;
    assert_int_equal(ef_read_file(p, 9, &data, &len, &err), -EFBIG);
    assert_null(data);
    assert_non_null(strstr(err.msg, "larger than 9 bytes"));

    /* Errors name the path. */
    assert_int_equal(ef_read_file(at("missing"), 10, &data, &len, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "missing"));
    assert_int_equal(ef_write_file_atomic(at("no/such/dir/f"), "x", 1, 0600, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "no/such/dir"));
    assert_int_equal(ef_read_file(tmp, 10, &data, &len, &err), -EISDIR);
}

static void test_read_proc_file(void **state)
{
    (void)state;
    /* /proc files report a size of zero; the content is read anyway, and limited anyway. */
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(ef_read_file("/proc/self/status", 1 << 20, &data, &len, NULL), 0);
    assert_true(len > 100);
    assert_non_null(strstr(data, "Pid:"));
    assert_int_equal(strlen(data), len);
    free(data);
    data = NULL;
    assert_int_equal(ef_read_file("/proc/self/status", 16, &data, &len, NULL), -EFBIG);
    assert_null(data);
}

static void test_copy_file(void **state)
{
    (void)state;
    ef_error err = {0};
    /* Larger than one copy buffer. */
    size_t n = 200000;
    char *big = malloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)(i * 7);
    assert_int_equal(ef_write_file_atomic(at("src"), big, n, 0600, &err), 0);
    assert_int_equal(ef_copy_file_atomic(at("src"), at("dst"), 0755, &err), 0);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(ef_read_file(at("dst"), n, &data, &len, &err), 0);
    assert_int_equal(len, n);
    assert_memory_equal(data, big, n);
    free(data);
    free(big);
    struct stat st;
    assert_int_equal(stat(at("dst"), &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    assert_int_equal(count_entries(tmp), 2);

    assert_int_equal(ef_copy_file_atomic(tmp, at("dst2"), 0600, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "not a regular file"));
    assert_int_equal(ef_copy_file_atomic(at("nope"), at("dst2"), 0600, &err), -ENOENT);
    assert_false(exists(at("dst2")));
}

/* ---- paths ---- */

static void expect_join(const char *a, const char *b, const char *want)
{
    char *p = ef_path_join(a, b);
    assert_non_null(p);
    assert_string_equal(p, want);
    free(p);
}

static void test_path_join(void **state)
{
    (void)state;
    expect_join("a", "b", "a/b");
    expect_join("a/", "b", "a/b");
    expect_join("a//", "//b", "a/b");
    expect_join("/", "b", "/b");
    expect_join("/", "/b/c", "/b/c");
    expect_join("/srv/data", "run/funclet.sock", "/srv/data/run/funclet.sock");
    expect_join("", "b", "b");
    expect_join("a", "", "a");
}

static void test_path_is_below(void **state)
{
    (void)state;
    assert_true(ef_path_is_below("/srv/code", "/srv/code"));
    assert_true(ef_path_is_below("/srv/code/f1", "/srv/code"));
    assert_true(ef_path_is_below("/srv/code/f1", "/srv/code/"));
    assert_true(ef_path_is_below("/srv/code/a/b", "/srv"));
    assert_true(ef_path_is_below("/anything", "/"));
    /* A string prefix is not enough: the boundary must be a '/'. */
    assert_false(ef_path_is_below("/srv/code2", "/srv/code"));
    assert_false(ef_path_is_below("/srv/cod", "/srv/code"));
    assert_false(ef_path_is_below("/srv", "/srv/code"));
    assert_false(ef_path_is_below("/etc/passwd", "/srv/code"));
    assert_false(ef_path_is_below("relative", "/"));
    assert_false(ef_path_is_below("/srv", ""));
}

/* ---- clocks ---- */

static void test_clocks(void **state)
{
    (void)state;
    unsigned long long m1 = ef_now_monotonic_ms();
    struct timespec d = {.tv_sec = 0, .tv_nsec = 20 * 1000 * 1000};
    nanosleep(&d, NULL);
    unsigned long long m2 = ef_now_monotonic_ms();
    assert_true(m2 >= m1 + 20);
    assert_true(m2 < m1 + 5000);

    unsigned long long e = ef_now_epoch_ms();
    unsigned long long now = (unsigned long long)time(NULL) * 1000ull;
    assert_true(e + 2000 >= now && e <= now + 2000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mkdir_p, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rm_rf_tree_and_symlinks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rm_rf_refuses_mount_points, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_and_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_proc_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy_file, setup, teardown),
        cmocka_unit_test(test_path_join),
        cmocka_unit_test(test_path_is_below),
        cmocka_unit_test(test_clocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
