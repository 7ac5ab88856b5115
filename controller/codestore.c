#include "controller/codestore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/log.h"

#define TMP_PREFIX ".tmp-"

const struct ef_zip_limits ef_zip_default_limits = {
    .max_unzipped = EF_CODE_MAX_UNZIPPED,
    .max_entries = EF_CODE_MAX_ENTRIES,
};

static const char bad_zip_msg[] =
    "Could not unzip uploaded file. Please check your file, then try to upload again.";

void ef_sha256(const void *data, size_t len, unsigned char digest[EF_SHA256_LEN])
{
    unsigned int n = EF_SHA256_LEN;
    EVP_Digest(data, len, digest, &n, EVP_sha256(), NULL);
}

static void to_hex(const unsigned char d[EF_SHA256_LEN], char hex[EF_SHA256_HEX_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < EF_SHA256_LEN; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 0xf];
    }
    hex[EF_SHA256_HEX_LEN] = '\0';
}

void ef_sha256_hex(const void *data, size_t len, char hex[EF_SHA256_HEX_LEN + 1])
{
    unsigned char d[EF_SHA256_LEN];
    ef_sha256(data, len, d);
    to_hex(d, hex);
}

char *ef_codestore_extracted_path(const char *code_root, const char *hex)
{
    char *p = NULL;
    if (asprintf(&p, "%s/extracted/%s", code_root, hex) < 0)
        return NULL;
    return p;
}

static char *zip_path(const char *code_root, const char *hex)
{
    char *p = NULL;
    if (asprintf(&p, "%s/zips/%s.zip", code_root, hex) < 0)
        return NULL;
    return p;
}

/* mkdir that also fixes the mode against the umask, so the tree is readable by the container's
 * unprivileged user whatever umask the controller runs with. */
static int make_dir(const char *path, bool exist_ok, ef_error *err)
{
    if (mkdir(path, 0755) < 0) {
        struct stat st;
        if (errno != EEXIST || !exist_ok)
            return ef_error_set_errno(err, -errno, "cannot create directory %s", path);
        if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode))
            return ef_error_set(err, -EINVAL, "%s. Entry %s conflicts with a file.", bad_zip_msg,
                                path);
        return 0;
    }
    if (chmod(path, 0755) < 0)
        return ef_error_set_errno(err, -errno, "cannot chmod %s", path);
    return 0;
}

int ef_codestore_init(const char *code_root, ef_error *err)
{
    /* Whatever mode an existing directory had, the container's user must be able to read the
     * extracted code through the mount (only the mounted directory's own mode counts there, not
     * the host path's). The zips are never mounted: only root may read them. */
    static const struct {
        const char *name;
        mode_t mode;
    } subdirs[] = {{"", 0755}, {"/zips", 0700}, {"/extracted", 0755}};
    int r = ef_mkdir_p(code_root, 0755, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < EF_ARRAY_SIZE(subdirs); i++) {
        cleanup_free char *p = NULL;
        if (asprintf(&p, "%s%s", code_root, subdirs[i].name) < 0)
            return ef_error_set(err, -ENOMEM, "out of memory");
        r = make_dir(p, true, err);
        if (r < 0)
            return r;
        if (chmod(p, subdirs[i].mode) < 0)
            return ef_error_set_errno(err, -errno, "cannot chmod %s", p);
    }

    /* An extraction interrupted by a crash leaves its temporary directory behind. */
    cleanup_free char *extracted = NULL;
    if (asprintf(&extracted, "%s/extracted", code_root) < 0)
        return ef_error_set(err, -ENOMEM, "out of memory");
    DIR *d = opendir(extracted);
    if (!d)
        return ef_error_set_errno(err, -errno, "cannot open %s", extracted);
    struct dirent *de;
    r = 0;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) != 0)
            continue;
        cleanup_free char *p = ef_path_join(extracted, de->d_name);
        if (!p) {
            r = ef_error_set(err, -ENOMEM, "out of memory");
            break;
        }
        /* What a crash left half-made is removed; one that cannot be (a tree from before the
         * depth limit, too deep to remove with the descriptors at hand) must not keep the
         * controller from starting: it is named .tmp-*, so nothing ever uses it. */
        ef_error rm_err = {0};
        if (ef_rm_rf(p, &rm_err) < 0)
            ef_warn("cannot remove the leftover %s: %s; remove it by hand", p, rm_err.msg);
    }
    closedir(d);
    return r;
}

/* Turns an entry name into a safe relative path: backslashes (written by some Windows tools)
 * become slashes, empty and "." components are dropped, and absolute names or ".." components
 * are rejected. Returns the malloc'd path ("" for the root itself) or NULL with `err` set. */
static char *sanitize_name(const char *name, bool *ret_is_dir, ef_error *err)
{
    size_t len = strlen(name);
    if (len == 0) {
        ef_error_set(err, -EINVAL, "%s Entry with an empty name.", bad_zip_msg);
        return NULL;
    }
    if (len > EF_CODE_MAX_NAME) {
        ef_error_set(err, -EINVAL, "%s Entry name '%.100s...' is longer than %u bytes.",
                     bad_zip_msg, name, EF_CODE_MAX_NAME);
        return NULL;
    }
    if (name[0] == '/' || name[0] == '\\') {
        ef_error_set(err, -EINVAL, "%s Entry '%.200s' has an absolute path.", bad_zip_msg, name);
        return NULL;
    }
    char *out = malloc(len + 1);
    if (!out) {
        ef_error_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    size_t o = 0;
    unsigned depth = 0;
    const char *p = name;
    while (*p) {
        size_t n = strcspn(p, "/\\");
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            ef_error_set(err, -EINVAL, "%s Entry '%.200s' points outside the package (\"..\").",
                         bad_zip_msg, name);
            free(out);
            return NULL;
        }
        if (n > 0 && !(n == 1 && p[0] == '.')) {
            depth++;
            if (o > 0)
                out[o++] = '/';
            memcpy(out + o, p, n);
            o += n;
        }
        p += n;
        if (*p)
            p++;
    }
    out[o] = '\0';
    *ret_is_dir = name[len - 1] == '/' || name[len - 1] == '\\';
    /* Directories only: a file's own name is not a level. */
    unsigned dirs = *ret_is_dir || depth == 0 ? depth : depth - 1;
    if (dirs > EF_CODE_MAX_DEPTH) {
        ef_error_set(err, -EINVAL, "%s Entry '%.200s' is nested more than %u directories deep.",
                     bad_zip_msg, name, EF_CODE_MAX_DEPTH);
        free(out);
        return NULL;
    }
    return out;
}

/* Creates every missing parent directory of `rel` below `root`, counting those it creates in
 * *created. */
static int make_parents(const char *root, const char *rel, unsigned *created, ef_error *err)
{
    char path[PATH_MAX * 2];
    size_t rl = strlen(root);
    if (rl + 1 + strlen(rel) + 1 > sizeof(path))
        return ef_error_set(err, -EINVAL, "%s Entry name is too long.", bad_zip_msg);
    memcpy(path, root, rl);
    path[rl] = '/';
    strcpy(path + rl + 1, rel);
    for (char *s = path + rl + 1; (s = strchr(s, '/')) != NULL; s++) {
        *s = '\0';
        bool existed = access(path, F_OK) == 0;
        int r = make_dir(path, true, err);
        *s = '/';
        if (r < 0)
            return r;
        if (!existed)
            (*created)++;
    }
    return 0;
}

static int extract_file(zip_t *za, zip_uint64_t index, const char *path, mode_t mode,
                        uint64_t declared, uint64_t *total, const struct ef_zip_limits *limits,
                        const char *name, ef_error *err)
{
    /* O_EXCL: a second entry of the same name is refused rather than silently replacing the
     * first. O_NOFOLLOW: belt and braces, the tree holds no symlinks. */
    cleanup_close int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) {
        if (errno == EEXIST || errno == ENOTDIR || errno == EISDIR || errno == ELOOP)
            return ef_error_set(err, -EINVAL,
                                "%s Entry '%.200s' is duplicated or conflicts "
                                "with another entry.",
                                bad_zip_msg, name);
        return ef_error_set_errno(err, -errno, "cannot create %s", path);
    }
    if (fchmod(fd, mode) < 0)
        return ef_error_set_errno(err, -errno, "cannot chmod %s", path);

    zip_file_t *zf = zip_fopen_index(za, index, 0);
    if (!zf)
        return ef_error_set(err, -EINVAL, "%s Entry '%.200s': %s", bad_zip_msg, name,
                            zip_strerror(za));
    char buf[64 * 1024];
    uint64_t got = 0;
    int r = 0;
    for (;;) {
        zip_int64_t n = zip_fread(zf, buf, sizeof(buf));
        if (n < 0) {
            r = ef_error_set(err, -EINVAL, "%s Entry '%.200s': %s", bad_zip_msg, name,
                             zip_file_strerror(zf));
            break;
        }
        if (n == 0)
            break;
        got += (uint64_t)n;
        *total += (uint64_t)n;
        /* The sizes in the directory were checked already; this guards against an entry that
         * inflates beyond what it declares. */
        if (got > declared || *total > limits->max_unzipped) {
            r = ef_error_set(err, -EINVAL, "Unzipped size must be smaller than %llu bytes",
                             (unsigned long long)limits->max_unzipped);
            break;
        }
        for (zip_int64_t w = 0; w < n;) {
            ssize_t k = write(fd, buf + w, (size_t)(n - w));
            if (k < 0) {
                if (errno == EINTR)
                    continue;
                r = ef_error_set_errno(err, -errno, "cannot write %s", path);
                break;
            }
            w += k;
        }
        if (r < 0)
            break;
    }
    zip_fclose(zf);
    return r;
}

/* Extracts every entry of an open archive into `dest`. */
static int extract_archive(zip_t *za, const char *dest, const struct ef_zip_limits *limits,
                           ef_error *err)
{
    zip_int64_t n = zip_get_num_entries(za, 0);
    if (n < 0)
        return ef_error_set(err, -EINVAL, "%s", bad_zip_msg);
    if ((uint64_t)n > limits->max_entries)
        return ef_error_set(err, -EINVAL, "The zip has %lld entries; at most %u are allowed",
                            (long long)n, limits->max_entries);

    /* Check every name, type and the declared sizes before writing anything. */
    uint64_t declared_total = 0;
    for (zip_int64_t i = 0; i < n; i++) {
        zip_stat_t st;
        if (zip_stat_index(za, (zip_uint64_t)i, 0, &st) < 0 || !(st.valid & ZIP_STAT_NAME))
            return ef_error_set(err, -EINVAL, "%s", bad_zip_msg);
        if (st.valid & ZIP_STAT_SIZE) {
            declared_total += st.size;
            if (declared_total > limits->max_unzipped)
                return ef_error_set(err, -EINVAL, "Unzipped size must be smaller than %llu bytes",
                                    (unsigned long long)limits->max_unzipped);
        }
    }

    uint64_t total = 0;
    uint64_t made = 0;
    for (zip_int64_t i = 0; i < n; i++) {
        zip_uint64_t idx = (zip_uint64_t)i;
        zip_stat_t st;
        if (zip_stat_index(za, idx, 0, &st) < 0)
            return ef_error_set(err, -EINVAL, "%s", bad_zip_msg);
        bool is_dir = false;
        cleanup_free char *rel = sanitize_name(st.name, &is_dir, err);
        if (!rel)
            return err ? err->code : -EINVAL;

        zip_uint8_t opsys = ZIP_OPSYS_DEFAULT;
        zip_uint32_t attr = 0;
        mode_t mode = 0;
        if (zip_file_get_external_attributes(za, idx, 0, &opsys, &attr) == 0 &&
            opsys == ZIP_OPSYS_UNIX) {
            mode = (mode_t)(attr >> 16);
            if (S_ISLNK(mode))
                return ef_error_set(err, -EINVAL,
                                    "%s Entry '%.200s' is a symbolic link; links are not "
                                    "allowed.",
                                    bad_zip_msg, st.name);
            if (S_ISDIR(mode))
                is_dir = true;
            else if ((mode & S_IFMT) != 0 && !S_ISREG(mode))
                return ef_error_set(err, -EINVAL,
                                    "%s Entry '%.200s' is not a regular file or directory.",
                                    bad_zip_msg, st.name);
        }
        if (rel[0] == '\0') {
            if (is_dir)
                continue; /* "./" names the root itself */
            return ef_error_set(err, -EINVAL, "%s Entry '%.200s' has no file name.", bad_zip_msg,
                                st.name);
        }

        unsigned made_now = 0;
        int r = make_parents(dest, rel, &made_now, err);
        if (r < 0)
            return r;
        cleanup_free char *path = ef_path_join(dest, rel);
        if (!path)
            return ef_error_set(err, -ENOMEM, "out of memory");
        /* What is made counts, files and directories, those the names imply included: a zip of
         * few entries with deep names would otherwise make any number of directories. A
         * directory listed after the files in it was made already and is not counted twice. */
        made_now += !is_dir || access(path, F_OK) != 0;
        made += made_now;
        if (made > limits->max_entries)
            return ef_error_set(err, -EINVAL,
                                "The zip makes more than %u files and directories (counting "
                                "the directories its names imply)",
                                limits->max_entries);
        if (is_dir) {
            r = make_dir(path, true, err);
        } else {
            mode_t fmode = (mode & 0111) ? 0755 : 0644;
            uint64_t declared = (st.valid & ZIP_STAT_SIZE) ? st.size : limits->max_unzipped;
            r = extract_file(za, idx, path, fmode, declared, &total, limits, st.name, err);
        }
        if (r < 0)
            return r;
    }
    return 0;
}

int ef_zip_extract_buffer(const void *zip, size_t len, const char *dest,
                          const struct ef_zip_limits *limits, ef_error *err)
{
    zip_error_t zerr;
    zip_error_init(&zerr);
    zip_source_t *src = zip_source_buffer_create(zip, len, 0, &zerr);
    if (!src) {
        zip_error_fini(&zerr);
        return ef_error_set(err, -ENOMEM, "out of memory");
    }
    zip_t *za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &zerr);
    if (!za) {
        zip_source_free(src);
        int r = ef_error_set(err, -EINVAL, "%s (%s)", bad_zip_msg, zip_error_strerror(&zerr));
        zip_error_fini(&zerr);
        return r;
    }
    zip_error_fini(&zerr);
    int r = extract_archive(za, dest, limits, err);
    zip_discard(za); /* also frees src */
    return r;
}

static int extract_file_zip(const char *zpath, const char *dest, const struct ef_zip_limits *limits,
                            ef_error *err)
{
    int zerrno = 0;
    zip_t *za = zip_open(zpath, ZIP_RDONLY | ZIP_CHECKCONS, &zerrno);
    if (!za) {
        zip_error_t ze;
        zip_error_init_with_code(&ze, zerrno);
        int r = ef_error_set(err, -EIO, "cannot open %s: %s", zpath, zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return r;
    }
    int r = extract_archive(za, dest, limits, err);
    zip_discard(za);
    return r;
}

/* Extracts (from memory when `zip` is given, else from `zpath`) into a temporary directory and
 * renames it to `final`. Losing a race to another extraction of the same code is success. */
static int extract_to(const char *code_root, const char *hex, const void *zip, size_t len,
                      const char *zpath, const char *final, const struct ef_zip_limits *limits,
                      ef_error *err)
{
    cleanup_free char *tmpl = NULL;
    if (asprintf(&tmpl, "%s/extracted/" TMP_PREFIX "%s-XXXXXX", code_root, hex) < 0)
        return ef_error_set(err, -ENOMEM, "out of memory");
    if (!mkdtemp(tmpl))
        return ef_error_set_errno(err, -errno, "cannot create a directory in %s/extracted",
                                  code_root);

    int r = zip ? ef_zip_extract_buffer(zip, len, tmpl, limits, err)
                : extract_file_zip(zpath, tmpl, limits, err);
    if (r == 0 && chmod(tmpl, 0755) < 0)
        r = ef_error_set_errno(err, -errno, "cannot chmod %s", tmpl);
    if (r == 0) {
        /* One syncfs() makes the whole tree durable before it becomes visible under its final
         * name, instead of an fsync per file. */
        cleanup_close int dfd = open(tmpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || syncfs(dfd) < 0)
            r = ef_error_set_errno(err, -errno, "cannot sync %s", tmpl);
    }
    if (r == 0 && rename(tmpl, final) < 0) {
        if (errno != EEXIST && errno != ENOTEMPTY)
            r = ef_error_set_errno(err, -errno, "cannot rename %s to %s", tmpl, final);
    }
    if (r < 0 || access(tmpl, F_OK) == 0)
        ef_rm_rf(tmpl, NULL);
    if (r == 0) {
        cleanup_free char *parent = NULL;
        if (asprintf(&parent, "%s/extracted", code_root) >= 0) {
            cleanup_close int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (pfd >= 0)
                fsync(pfd);
        }
    }
    return r;
}

int ef_codestore_put(const char *code_root, const void *zip, size_t len,
                     const struct ef_zip_limits *limits, char ret_hex[EF_SHA256_HEX_LEN + 1],
                     unsigned char ret_digest[EF_SHA256_LEN], ef_error *err)
{
    unsigned char digest[EF_SHA256_LEN];
    char hex[EF_SHA256_HEX_LEN + 1];
    ef_sha256(zip, len, digest);
    to_hex(digest, hex);

    cleanup_free char *final = ef_codestore_extracted_path(code_root, hex);
    cleanup_free char *zpath = zip_path(code_root, hex);
    if (!final || !zpath)
        return ef_error_set(err, -ENOMEM, "out of memory");

    /* Extracting first validates the zip, so an invalid one is never stored. */
    struct stat st;
    int r;
    if (stat(final, &st) < 0) {
        r = extract_to(code_root, hex, zip, len, NULL, final, limits, err);
        if (r < 0)
            return r;
    }
    if (stat(zpath, &st) < 0 || (uint64_t)st.st_size != len) {
        r = ef_write_file_atomic(zpath, zip, len, 0600, err);
        if (r < 0)
            return r;
    }
    memcpy(ret_hex, hex, sizeof(hex));
    if (ret_digest)
        memcpy(ret_digest, digest, sizeof(digest));
    return 0;
}

int ef_codestore_ensure_extracted(const char *code_root, const char *hex,
                                  const struct ef_zip_limits *limits, ef_error *err)
{
    cleanup_free char *final = ef_codestore_extracted_path(code_root, hex);
    cleanup_free char *zpath = zip_path(code_root, hex);
    if (!final || !zpath)
        return ef_error_set(err, -ENOMEM, "out of memory");
    struct stat st;
    if (stat(final, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    if (stat(zpath, &st) < 0)
        return ef_error_set_errno(err, -errno, "the code of this function is missing (%s)", zpath);
    return extract_to(code_root, hex, NULL, 0, zpath, final, limits, err);
}

static bool is_hex_name(const char *s, size_t len)
{
    if (len != EF_SHA256_HEX_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* Adds `hex` to the list unless it is there already (lists are short: one entry per code). */
static int list_add(char ***list, size_t *n, size_t *cap, const char *hex, size_t len)
{
    for (size_t i = 0; i < *n; i++)
        if (strncmp((*list)[i], hex, len) == 0)
            return 0;
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        char **grown = realloc(*list, ncap * sizeof(*grown));
        if (!grown)
            return -ENOMEM;
        *list = grown;
        *cap = ncap;
    }
    char *copy = strndup(hex, len);
    if (!copy)
        return -ENOMEM;
    (*list)[(*n)++] = copy;
    return 0;
}

int ef_codestore_list(const char *code_root, char ***ret_hexes, size_t *ret_n, ef_error *err)
{
    static const char *const subdirs[] = {"zips", "extracted"};
    char **list = NULL;
    size_t n = 0, cap = 0;
    int r = 0;
    for (size_t s = 0; r == 0 && s < EF_ARRAY_SIZE(subdirs); s++) {
        cleanup_free char *dir = ef_path_join(code_root, subdirs[s]);
        if (!dir) {
            r = ef_error_set(err, -ENOMEM, "out of memory");
            break;
        }
        DIR *d = opendir(dir);
        if (!d) {
            r = ef_error_set_errno(err, -errno, "cannot open %s", dir);
            break;
        }
        struct dirent *de;
        while (r == 0 && (de = readdir(d)) != NULL) {
            size_t len = strlen(de->d_name);
            if (s == 0 && len > 4 && strcmp(de->d_name + len - 4, ".zip") == 0)
                len -= 4;
            if (is_hex_name(de->d_name, len) && list_add(&list, &n, &cap, de->d_name, len) < 0)
                r = ef_error_set(err, -ENOMEM, "out of memory");
        }
        closedir(d);
    }
    if (r < 0) {
        for (size_t i = 0; i < n; i++)
            free(list[i]);
        free(list);
        return r;
    }
    *ret_hexes = list;
    *ret_n = n;
    return 0;
}

int ef_codestore_remove(const char *code_root, const char *hex, ef_error *err)
{
    if (!is_hex_name(hex, strlen(hex)))
        return ef_error_set(err, -EINVAL, "'%.80s' is not a code sha256", hex);
    cleanup_free char *final = ef_codestore_extracted_path(code_root, hex);
    cleanup_free char *zpath = zip_path(code_root, hex);
    cleanup_free char *doomed = NULL;
    if (!final || !zpath ||
        asprintf(&doomed, "%s/extracted/" TMP_PREFIX "gc-%s-XXXXXX", code_root, hex) < 0)
        return ef_error_set(err, -ENOMEM, "out of memory");

    /* A name of its own (what an interrupted removal left behind is removed at start, or
     * stays a harmless .tmp- entry): the tree is renamed over the empty directory made here. */
    if (!mkdtemp(doomed))
        return ef_error_set_errno(err, -errno, "cannot create a directory like %s", doomed);
    if (rename(final, doomed) < 0 && errno != ENOENT) {
        int e = errno;
        rmdir(doomed);
        return ef_error_set_errno(err, -e, "cannot rename %s", final);
    }
    if (unlink(zpath) < 0 && errno != ENOENT)
        return ef_error_set_errno(err, -errno, "cannot remove %s", zpath);
    return ef_rm_rf(doomed, err);
}
