/* Code store tests on real zips built with libzip in a temporary directory. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include <cmocka.h>

#include "common/fsutil.h"
#include "controller/codestore.h"

enum kind { FILE_ENTRY, EXEC_ENTRY, DIR_ENTRY, LINK_ENTRY };

struct entry {
    const char *name;
    enum kind kind;
    const char *data; /* file contents or link target */
};

struct zipbuf {
    void *data;
    size_t len;
};

static char tmpdir[64];

static int setup(void **state)
{
    (void)state;
    strcpy(tmpdir, "/tmp/ef-codestore-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    /* A strict umask proves that the extracted modes do not depend on it. */
    umask(077);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(ef_rm_rf(tmpdir, NULL), 0);
    return 0;
}

static char *tpath(const char *rel)
{
    char *p = NULL;
    assert_true(asprintf(&p, "%s/%s", tmpdir, rel) > 0);
    return p;
}

/* Builds a zip in memory with libzip. Entries are written with the names given, unsanitised,
 * as a hostile client would. */
static struct zipbuf make_zip(const struct entry *entries, size_t n)
{
    char *path = tpath("build.zip");
    unlink(path);
    int zerr = 0;
    zip_t *za = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &zerr);
    assert_non_null(za);
    for (size_t i = 0; i < n; i++) {
        const struct entry *e = &entries[i];
        zip_int64_t idx;
        if (e->kind == DIR_ENTRY) {
            idx = zip_dir_add(za, e->name, ZIP_FL_ENC_UTF_8);
        } else {
            const char *d = e->data ? e->data : "";
            zip_source_t *src = zip_source_buffer(za, d, strlen(d), 0);
            assert_non_null(src);
            idx = zip_file_add(za, e->name, src, ZIP_FL_ENC_UTF_8);
        }
        assert_true(idx >= 0);
        mode_t mode = e->kind == DIR_ENTRY    ? (S_IFDIR | 0755)
                      : e->kind == EXEC_ENTRY ? (S_IFREG | 0755)
                      : e->kind == LINK_ENTRY ? (S_IFLNK | 0777)
                                              : (S_IFREG | 0644);
        assert_int_equal(zip_file_set_external_attributes(za, (zip_uint64_t)idx, 0, ZIP_OPSYS_UNIX,
                                                          (zip_uint32_t)mode << 16),
                         0);
    }
    assert_int_equal(zip_close(za), 0);

    struct zipbuf zb = {0};
    char *data = NULL;
    assert_int_equal(ef_read_file(path, 1u << 30, &data, &zb.len, NULL), 0);
    zb.data = data;
    unlink(path);
    free(path);
    return zb;
}

static mode_t mode_of(const char *dir, const char *rel)
{
    char *p = NULL;
    assert_true(asprintf(&p, "%s/%s", dir, rel) > 0);
    struct stat st;
    int r = lstat(p, &st);
    free(p);
    if (r < 0)
        return 0;
    return st.st_mode;
}

static char *fresh_dir(const char *name)
{
    char *p = tpath(name);
    ef_rm_rf(p, NULL);
    assert_int_equal(mkdir(p, 0755), 0);
    return p;
}

static bool dir_is_empty(const char *path)
{
    DIR *d = opendir(path);
    assert_non_null(d);
    struct dirent *de;
    bool empty = true;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            empty = false;
    closedir(d);
    return empty;
}

static void test_extract_tree_with_modes(void **state)
{
    (void)state;
    const struct entry entries[] = {
        {"lambda_function.py", FILE_ENTRY, "def h(e, c):\n    return 1\n"},
        {"bootstrap", EXEC_ENTRY, "#!/bin/sh\n"},
        {"pkg/", DIR_ENTRY, NULL},
        {"pkg/mod.py", FILE_ENTRY, "x = 1\n"},
        {"deep/er/file.txt", FILE_ENTRY, "no directory entries for its parents"},
        {"./dot/./x", FILE_ENTRY, "dots are dropped"},
    };
    struct zipbuf zb = make_zip(entries, sizeof(entries) / sizeof(entries[0]));
    char *dest = fresh_dir("out");
    ef_error err = {0};
    assert_int_equal(ef_zip_extract_buffer(zb.data, zb.len, dest, &ef_zip_default_limits, &err), 0);

    assert_int_equal(mode_of(dest, "lambda_function.py"), S_IFREG | 0644);
    assert_int_equal(mode_of(dest, "bootstrap"), S_IFREG | 0755);
    assert_int_equal(mode_of(dest, "pkg"), S_IFDIR | 0755);
    assert_int_equal(mode_of(dest, "pkg/mod.py"), S_IFREG | 0644);
    assert_int_equal(mode_of(dest, "deep"), S_IFDIR | 0755);
    assert_int_equal(mode_of(dest, "deep/er"), S_IFDIR | 0755);
    assert_int_equal(mode_of(dest, "dot/x"), S_IFREG | 0644);

    char *p = NULL, *data = NULL;
    size_t len = 0;
    assert_true(asprintf(&p, "%s/pkg/mod.py", dest) > 0);
    assert_int_equal(ef_read_file(p, 1024, &data, &len, NULL), 0);
    assert_string_equal(data, "x = 1\n");
    free(data);
    free(p);
    free(dest);
    free(zb.data);
}

static void expect_rejected(const struct entry *entries, size_t n, const char *needle)
{
    struct zipbuf zb = make_zip(entries, n);
    char *dest = fresh_dir("out");
    ef_error err = {0};
    assert_int_equal(ef_zip_extract_buffer(zb.data, zb.len, dest, &ef_zip_default_limits, &err),
                     -EINVAL);
    if (!strstr(err.msg, needle))
        fail_msg("message '%s' lacks '%s'", err.msg, needle);
    /* Nothing escaped the destination. */
    char *outside = tpath("x");
    assert_int_equal(access(outside, F_OK), -1);
    assert_int_equal(access("/x-ef-codestore-abs", F_OK), -1);
    free(outside);
    free(dest);
    free(zb.data);
}

static void test_zip_slip_rejected(void **state)
{
    (void)state;
    const struct entry dotdot[] = {{"ok.txt", FILE_ENTRY, "fine"}, {"../x", FILE_ENTRY, "evil"}};
    expect_rejected(dotdot, 2, "..");
    const struct entry nested[] = {{"a/../../x", FILE_ENTRY, "evil"}};
    expect_rejected(nested, 1, "..");
    const struct entry backslash[] = {{"a\\..\\..\\x", FILE_ENTRY, "evil"}};
    expect_rejected(backslash, 1, "..");
    const struct entry abs[] = {{"/x-ef-codestore-abs", FILE_ENTRY, "evil"}};
    expect_rejected(abs, 1, "absolute");
}

static void test_symlink_rejected(void **state)
{
    (void)state;
    const struct entry link[] = {{"etc", LINK_ENTRY, "/etc"}, {"etc/passwd", FILE_ENTRY, "x"}};
    expect_rejected(link, 2, "symbolic link");
}

static void test_duplicate_rejected(void **state)
{
    (void)state;
    const struct entry dup[] = {{"a", FILE_ENTRY, "1"}, {"./a", FILE_ENTRY, "2"}};
    expect_rejected(dup, 2, "duplicated");
    const struct entry conflict[] = {{"a", FILE_ENTRY, "1"}, {"a/b", FILE_ENTRY, "2"}};
    expect_rejected(conflict, 2, "conflicts");
}

static void test_not_a_zip(void **state)
{
    (void)state;
    char *dest = fresh_dir("out");
    ef_error err = {0};
    const char junk[] = "this is not a zip file at all";
    assert_int_equal(ef_zip_extract_buffer(junk, sizeof(junk), dest, &ef_zip_default_limits, &err),
                     -EINVAL);
    assert_non_null(strstr(err.msg, "Could not unzip"));
    free(dest);
}

static void test_entry_count_cap(void **state)
{
    (void)state;
    /* The real cap: 10,000 entries pass, 10,001 do not. */
    size_t n = EF_CODE_MAX_ENTRIES + 1;
    struct entry *entries = calloc(n, sizeof(*entries));
    char(*names)[16] = calloc(n, sizeof(*names));
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof(names[i]), "f%zu", i);
        entries[i] = (struct entry){names[i], FILE_ENTRY, ""};
    }
    struct zipbuf zb = make_zip(entries, n);
    char *dest = fresh_dir("out");
    ef_error err = {0};
    assert_int_equal(ef_zip_extract_buffer(zb.data, zb.len, dest, &ef_zip_default_limits, &err),
                     -EINVAL);
    assert_non_null(strstr(err.msg, "10000"));
    assert_true(dir_is_empty(dest)); /* checked before anything is written */
    free(zb.data);

    zb = make_zip(entries, n - 1);
    assert_int_equal(ef_rm_rf(dest, NULL), 0);
    assert_int_equal(mkdir(dest, 0755), 0);
    assert_int_equal(ef_zip_extract_buffer(zb.data, zb.len, dest, &ef_zip_default_limits, &err), 0);
    assert_int_equal(mode_of(dest, "f9999"), S_IFREG | 0644);
    free(zb.data);
    free(dest);
    free(names);
    free(entries);
}

/* Names are at most EF_CODE_MAX_DEPTH directories deep and EF_CODE_MAX_NAME bytes long, and
 * the directories they imply count against the entry cap: a few kilobytes of zip once made
 * trees too deep to remove (one descriptor per level) and hundreds of thousands of
 * directories. */
static void test_depth_and_implied_directories(void **state)
{
    (void)state;
    /* A file below 64 directories, and a directory 64 deep, are fine. */
    char deep[2 * EF_CODE_MAX_DEPTH + 8] = "";
    for (unsigned i = 0; i < EF_CODE_MAX_DEPTH; i++)
        strcat(deep, "d/");
    char deep_file[sizeof(deep) + 2];
    snprintf(deep_file, sizeof(deep_file), "%sf", deep);
    struct entry ok[] = {{deep, DIR_ENTRY, NULL}, {deep_file, FILE_ENTRY, "x"}};
    struct zipbuf zb = make_zip(ok, 2);
    char *dest = fresh_dir("deep");
    ef_error err = {0};
    assert_int_equal(ef_zip_extract_buffer(zb.data, zb.len, dest, &ef_zip_default_limits, &err), 0);
    free(zb.data);
    free(dest);

    /* One level more, for a file or for a directory, is not. */
    char deeper_file[sizeof(deep) + 4];
    snprintf(deeper_file, sizeof(deeper_file), "d/%sf", deep);
    struct entry too_deep[] = {{deeper_file, FILE_ENTRY, "x"}};
    expect_rejected(too_deep, 1, "nested more than 64 directories deep");
    char deeper_dir[sizeof(deep) + 4];
    snprintf(deeper_dir, sizeof(deeper_dir), "d/%s", deep);
    struct entry too_deep_dir[] = {{deeper_dir, DIR_ENTRY, NULL}};
    expect_rejected(too_deep_dir, 1, "nested more than 64 directories deep");

    char longname[EF_CODE_MAX_NAME + 2];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    struct entry too_long[] = {{longname, FILE_ENTRY, "x"}};
    expect_rejected(too_long, 1, "longer than 1024 bytes");

    /* 3 entries under a cap of 10, but their names imply 9 directories: 12 in all. */
    struct entry implied[] = {
        {"a/b/c/1", FILE_ENTRY, "x"}, {"d/e/f/2", FILE_ENTRY, "x"}, {"g/h/i/3", FILE_ENTRY, "x"}};
    zb = make_zip(implied, 3);
    dest = fresh_dir("implied");
    const struct ef_zip_limits ten = {.max_unzipped = EF_CODE_MAX_UNZIPPED, .max_entries = 10};
    assert_int_equal(ef_zip_extract_buffer(zb.data, zb.len, dest, &ten, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "more than 10 files and directories"));
    const struct ef_zip_limits twelve = {.max_unzipped = EF_CODE_MAX_UNZIPPED, .max_entries = 12};
    assert_int_equal(ef_rm_rf(dest, NULL), 0);
    assert_int_equal(mkdir(dest, 0755), 0);
    assert_int_equal(ef_zip_extract_buffer(zb.data, zb.len, dest, &twelve, &err), 0);
    free(zb.data);
    free(dest);

    /* Directories listed after the files in them count once: 2 directories and a file. */
    struct entry late_dirs[] = {
        {"a/b/f", FILE_ENTRY, "x"}, {"a/b/", DIR_ENTRY, NULL}, {"a/", DIR_ENTRY, NULL}};
    zb = make_zip(late_dirs, 3);
    dest = fresh_dir("late");
    const struct ef_zip_limits three = {.max_unzipped = EF_CODE_MAX_UNZIPPED, .max_entries = 3};
    assert_int_equal(ef_zip_extract_buffer(zb.data, zb.len, dest, &three, &err), 0);
    free(zb.data);
    free(dest);
}

static void test_size_cap(void **state)
{
    (void)state;
    /* Lower limits keep the test fast; the same code path enforces the 250 MB default. */
    const struct ef_zip_limits small = {.max_unzipped = 1000, .max_entries = 100};
    char *big = malloc(1001);
    memset(big, 'z', 1000);
    big[1000] = '\0';
    const struct entry e1[] = {{"big", FILE_ENTRY, big}};
    struct zipbuf zb = make_zip(e1, 1);
    char *dest = fresh_dir("out");
    ef_error err = {0};
    assert_int_equal(ef_zip_extract_buffer(zb.data, zb.len, dest, &small, &err), 0);
    free(zb.data);

    big[999] = '\0';
    const struct entry e2[] = {{"a", FILE_ENTRY, big}, {"b", FILE_ENTRY, "xx"}}; /* 1001 */
    zb = make_zip(e2, 2);
    free(dest);
    dest = fresh_dir("out");
    assert_int_equal(ef_zip_extract_buffer(zb.data, zb.len, dest, &small, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "Unzipped size must be smaller than 1000 bytes"));
    assert_true(dir_is_empty(dest));
    free(zb.data);
    free(dest);
    free(big);
}

static void test_default_size_cap(void **state)
{
    (void)state;
    /* 251 MB of zeros compress to a few hundred KB: a zip bomb the default cap must refuse. */
    size_t n = (size_t)EF_CODE_MAX_UNZIPPED + 1024 * 1024;
    char *zeros = calloc(1, n + 1);
    memset(zeros, 'a', n);
    const struct entry e[] = {{"bomb", FILE_ENTRY, zeros}};
    struct zipbuf zb = make_zip(e, 1);
    free(zeros);
    assert_true(zb.len < 2 * 1024 * 1024);
    char *dest = fresh_dir("out");
    ef_error err = {0};
    assert_int_equal(ef_zip_extract_buffer(zb.data, zb.len, dest, &ef_zip_default_limits, &err),
                     -EINVAL);
    assert_non_null(strstr(err.msg, "262144000"));
    assert_true(dir_is_empty(dest));
    free(zb.data);
    free(dest);
}

static void test_put_and_cache(void **state)
{
    (void)state;
    char *root = tpath("code");
    ef_error err = {0};
    assert_int_equal(ef_codestore_init(root, &err), 0);
    assert_int_equal(mode_of(root, "extracted"), S_IFDIR | 0755);

    const struct entry entries[] = {{"index.py", FILE_ENTRY, "print(1)\n"}};
    struct zipbuf zb = make_zip(entries, 1);
    char hex[EF_SHA256_HEX_LEN + 1], want[EF_SHA256_HEX_LEN + 1];
    unsigned char digest[EF_SHA256_LEN];
    ef_sha256_hex(zb.data, zb.len, want);
    assert_int_equal(
        ef_codestore_put(root, zb.data, zb.len, &ef_zip_default_limits, hex, digest, &err), 0);
    assert_string_equal(hex, want);

    char *zpath = NULL;
    assert_true(asprintf(&zpath, "%s/zips/%s.zip", root, hex) > 0);
    char *stored = NULL;
    size_t slen = 0;
    assert_int_equal(ef_read_file(zpath, 1u << 20, &stored, &slen, NULL), 0);
    assert_int_equal(slen, zb.len);
    assert_memory_equal(stored, zb.data, slen);
    free(stored);

    char *ex = ef_codestore_extracted_path(root, hex);
    assert_int_equal(mode_of(ex, ""), S_IFDIR | 0755);
    assert_int_equal(mode_of(ex, "index.py"), S_IFREG | 0644);

    /* The same code again is served from the cache: a marker file in the extracted tree
     * survives. */
    char *marker = NULL;
    assert_true(asprintf(&marker, "%s/marker", ex) > 0);
    assert_int_equal(ef_write_file_atomic(marker, "m", 1, 0644, NULL), 0);
    assert_int_equal(
        ef_codestore_put(root, zb.data, zb.len, &ef_zip_default_limits, hex, NULL, &err), 0);
    assert_int_equal(access(marker, F_OK), 0);

    /* A removed extraction is rebuilt from the stored zip. */
    assert_int_equal(ef_rm_rf(ex, NULL), 0);
    assert_int_equal(ef_codestore_ensure_extracted(root, hex, &ef_zip_default_limits, &err), 0);
    assert_int_equal(mode_of(ex, "index.py"), S_IFREG | 0644);
    assert_int_equal(access(marker, F_OK), -1);

    /* Unknown code cannot be extracted. */
    assert_true(ef_codestore_ensure_extracted(root, "00", &ef_zip_default_limits, &err) < 0);

    /* An invalid zip leaves nothing behind: no stored zip, no temporary directory. */
    const struct entry evil[] = {{"../evil", FILE_ENTRY, "x"}};
    struct zipbuf bad = make_zip(evil, 1);
    char badhex[EF_SHA256_HEX_LEN + 1];
    ef_sha256_hex(bad.data, bad.len, badhex);
    assert_int_equal(
        ef_codestore_put(root, bad.data, bad.len, &ef_zip_default_limits, hex, NULL, &err),
        -EINVAL);
    char *badzip = NULL;
    assert_true(asprintf(&badzip, "%s/zips/%s.zip", root, badhex) > 0);
    assert_int_equal(access(badzip, F_OK), -1);
    char *extracted = NULL;
    assert_true(asprintf(&extracted, "%s/extracted", root) > 0);
    DIR *d = opendir(extracted);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.' || strncmp(de->d_name, ".tmp-", 5) == 0)
            n++;
    closedir(d);
    assert_int_equal(n, 1); /* only the good function's tree */

    /* init removes what an interrupted extraction left. */
    char *leftover = NULL;
    assert_true(asprintf(&leftover, "%s/.tmp-abc-123456/sub", extracted) > 0);
    assert_int_equal(ef_mkdir_p(leftover, 0755, NULL), 0);
    assert_int_equal(ef_codestore_init(root, &err), 0);
    assert_int_equal(access(leftover, F_OK), -1);
    assert_int_equal(mode_of(ex, "index.py"), S_IFREG | 0644);

    free(leftover);
    free(extracted);
    free(badzip);
    free(bad.data);
    free(marker);
    free(ex);
    free(zpath);
    free(zb.data);
    free(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_extract_tree_with_modes),
        cmocka_unit_test(test_zip_slip_rejected),
        cmocka_unit_test(test_symlink_rejected),
        cmocka_unit_test(test_duplicate_rejected),
        cmocka_unit_test(test_not_a_zip),
        cmocka_unit_test(test_entry_count_cap),
        cmocka_unit_test(test_depth_and_implied_directories),
        cmocka_unit_test(test_size_cap),
        cmocka_unit_test(test_default_size_cap),
        cmocka_unit_test(test_put_and_cache),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
