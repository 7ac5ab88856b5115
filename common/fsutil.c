#define _GNU_SOURCE
#include "common/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"

/* ---- directories ---- */

static int mkdir_one(const char *path, mode_t mode, ef_error *err)
{
    if (mkdir(path, mode) == 0)
        return 0;
    int e = errno;
    struct stat st;
    if (e == EEXIST) {
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            return 0;
        return ef_error_set(err, -ENOTDIR,
                            "cannot create directory %s: it exists and is not a "
                            "directory",
                            path);
    }
    return ef_error_set_errno(err, -e, "cannot create directory %s", path);
}

int ef_mkdir_p(const char *path, mode_t mode, ef_error *err)
{
    if (!path || !*path)
        return ef_error_set(err, -EINVAL, "cannot create a directory with an empty path");
    cleanup_free char *p = strdup(path);
    if (!p)
        return ef_error_set_errno(err, -ENOMEM, "cannot create directory %s", path);

    /* Create each prefix ending before a '/', skipping the root and repeated slashes. */
    for (char *s = p + 1; *s; s++) {
        if (*s != '/' || s[-1] == '/')
            continue;
        *s = '\0';
        int r = mkdir_one(p, mode, err);
        *s = '/';
        if (r < 0)
            return r;
    }
    return mkdir_one(p, mode, err);
}

int ef_private_data_dir(const char *path, const char *holds, ef_error *err)
{
    int r = mkdir(path, 0700) < 0 ? -errno : 0;
    if (r == -ENOENT) {
        cleanup_free char *parent = strdup(path);
        if (!parent)
            return ef_error_set(err, -ENOMEM, "out of memory");
        char *slash = strrchr(parent, '/');
        if (slash && slash != parent) {
            *slash = '\0';
            if ((r = ef_mkdir_p(parent, 0755, err)) < 0)
                return r;
        }
        r = mkdir(path, 0700) < 0 ? -errno : 0;
    }
    if (r < 0 && r != -EEXIST)
        return ef_error_set_errno(err, r, "cannot create the directory %s", path);
    struct stat st;
    if (stat(path, &st) < 0)
        return ef_error_set_errno(err, -errno, "cannot inspect %s", path);
    if (!S_ISDIR(st.st_mode))
        return ef_error_set(err, -ENOTDIR, "%s is not a directory", path);
    mode_t mode = st.st_mode & 07777;
    if (!(mode & 077))
        return 0;
    mode_t private_mode = mode & ~(mode_t)077;
    if (chmod(path, private_mode) < 0)
        return ef_error_set_errno(err, -errno,
                                  "cannot take the group's and others' access to %s (mode %04o) "
                                  "away; it holds %s",
                                  path, (unsigned)mode, holds);
    ef_info("data dir %s was mode %04o, open to other users; made it %04o, since it holds %s", path,
            (unsigned)mode, (unsigned)private_mode, holds);
    return 0;
}

/* Identifies a file system mount: st_dev alone misses a bind mount of the same file system,
 * which is exactly what a container's code directory is, so the mount id is compared too when
 * the kernel reports it. */
struct mount_ident {
    uint64_t dev_major, dev_minor;
    uint64_t mnt_id;
    bool has_mnt_id;
};

static int stat_at(int dfd, const char *name, struct mount_ident *ret_id, mode_t *ret_mode)
{
    struct statx stx;
    unsigned mask = STATX_TYPE;
#ifdef STATX_MNT_ID
    mask |= STATX_MNT_ID;
#endif
    if (statx(dfd, name, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | (*name ? 0 : AT_EMPTY_PATH), mask,
              &stx) < 0)
        return -errno;
    ret_id->dev_major = stx.stx_dev_major;
    ret_id->dev_minor = stx.stx_dev_minor;
    ret_id->has_mnt_id = false;
    ret_id->mnt_id = 0;
#ifdef STATX_MNT_ID
    if (stx.stx_mask & STATX_MNT_ID) {
        ret_id->has_mnt_id = true;
        ret_id->mnt_id = stx.stx_mnt_id;
    }
#endif
    *ret_mode = stx.stx_mode;
    return 0;
}

static bool same_mount(const struct mount_ident *a, const struct mount_ident *b)
{
    if (a->dev_major != b->dev_major || a->dev_minor != b->dev_minor)
        return false;
    if (a->has_mnt_id && b->has_mnt_id && a->mnt_id != b->mnt_id)
        return false;
    return true;
}

/* Empties the directory open as `dfd` (consumed). `path` names it in error messages. */
static int rm_contents(int dfd, const char *path, const struct mount_ident *top, ef_error *err)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        int e = errno;
        close(dfd);
        return ef_error_set_errno(err, -e, "cannot read directory %s", path);
    }
    int r = 0;
    struct dirent *de;
    while (r == 0) {
        errno = 0;
        de = readdir(d);
        if (!de) {
            if (errno)
                r = ef_error_set_errno(err, -errno, "cannot read directory %s", path);
            break;
        }
        const char *name = de->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;

        struct mount_ident id;
        mode_t mode;
        int s = stat_at(dirfd(d), name, &id, &mode);
        if (s == -ENOENT)
            continue;
        if (s < 0) {
            r = ef_error_set_errno(err, s, "cannot stat %s/%s", path, name);
            break;
        }
        if (!S_ISDIR(mode)) {
            if (unlinkat(dirfd(d), name, 0) < 0 && errno != ENOENT)
                r = ef_error_set_errno(err, -errno, "cannot remove %s/%s", path, name);
            continue;
        }
        if (!same_mount(&id, top)) {
            r = ef_error_set(err, -EBUSY,
                             "refusing to remove %s/%s: a file system is mounted there", path,
                             name);
            break;
        }
        cleanup_free char *child = NULL;
        if (asprintf(&child, "%s/%s", path, name) < 0) {
            r = ef_error_set_errno(err, -ENOMEM, "cannot remove %s/%s", path, name);
            break;
        }
        int cfd = openat(dirfd(d), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (cfd < 0) {
            r = ef_error_set_errno(err, -errno, "cannot open directory %s", child);
            break;
        }
        r = rm_contents(cfd, child, top, err);
        if (r == 0 && unlinkat(dirfd(d), name, AT_REMOVEDIR) < 0 && errno != ENOENT)
            r = ef_error_set_errno(err, -errno, "cannot remove directory %s", child);
    }
    closedir(d);
    return r;
}

int ef_rm_rf(const char *path, ef_error *err)
{
    if (!path || !*path)
        return ef_error_set(err, -EINVAL, "cannot remove an empty path");
    struct stat st;
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        return ef_error_set_errno(err, -errno, "cannot stat %s", path);
    }
    if (!S_ISDIR(st.st_mode)) {
        if (unlink(path) < 0 && errno != ENOENT)
            return ef_error_set_errno(err, -errno, "cannot remove %s", path);
        return 0;
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return ef_error_set_errno(err, -errno, "cannot open directory %s", path);
    struct mount_ident top;
    mode_t mode;
    int r = stat_at(fd, "", &top, &mode);
    if (r < 0) {
        close(fd);
        return ef_error_set_errno(err, r, "cannot stat %s", path);
    }
    r = rm_contents(fd, path, &top, err);
    if (r < 0)
        return r;
    if (rmdir(path) < 0 && errno != ENOENT)
        return ef_error_set_errno(err, -errno, "cannot remove directory %s", path);
    return 0;
}

/* ---- files ---- */

/* Splits `path` into a newly allocated directory part ("." when there is none). */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

static int fsync_dir_of(const char *path, ef_error *err)
{
    cleanup_free char *dir = dir_of(path);
    if (!dir)
        return ef_error_set_errno(err, -ENOMEM, "cannot sync the directory of %s", path);
    cleanup_close int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0)
        return ef_error_set_errno(err, -errno, "cannot sync directory %s", dir);
    return 0;
}

/* Creates the temporary file next to `path` that an atomic write renames into place. */
static int atomic_open(const char *path, mode_t mode, char **ret_tmp, ef_error *err)
{
    cleanup_free char *dir = dir_of(path);
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!*base)
        return ef_error_set(err, -EISDIR, "cannot write %s: the path names a directory", path);
    cleanup_free char *tmp = NULL;
    if (!dir || asprintf(&tmp, "%s/.%s.tmpXXXXXX", dir, base) < 0)
        return ef_error_set_errno(err, -ENOMEM, "cannot write %s", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return ef_error_set_errno(err, -errno, "cannot create a temporary file for %s", path);
    if (fchmod(fd, mode) < 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return ef_error_set_errno(err, -e, "cannot set the mode of %s", tmp);
    }
    *ret_tmp = steal_pointer(&tmp);
    return fd;
}

/* Syncs and closes `fd` (always), renames `tmp` over `path` and syncs the directory; the
 * temporary file is removed on failure. */
static int atomic_commit(int fd, const char *tmp, const char *path, ef_error *err)
{
    int r = 0;
    if (fsync(fd) < 0)
        r = ef_error_set_errno(err, -errno, "cannot sync %s", tmp);
    if (close(fd) < 0 && r == 0)
        r = ef_error_set_errno(err, -errno, "cannot write %s", tmp);
    if (r == 0 && rename(tmp, path) < 0)
        r = ef_error_set_errno(err, -errno, "cannot rename %s to %s", tmp, path);
    if (r < 0) {
        unlink(tmp);
        return r;
    }
    return fsync_dir_of(path, err);
}

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int ef_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode, ef_error *err)
{
    cleanup_free char *tmp = NULL;
    int fd = atomic_open(path, mode, &tmp, err);
    if (fd < 0)
        return fd;
    int r = write_all(fd, data, len);
    if (r < 0) {
        close(fd);
        unlink(tmp);
        return ef_error_set_errno(err, r, "cannot write %s", tmp);
    }
    return atomic_commit(fd, tmp, path, err);
}

int ef_read_file(const char *path, size_t max, char **ret_data, size_t *ret_len, ef_error *err)
{
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return ef_error_set_errno(err, -errno, "cannot open %s", path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return ef_error_set_errno(err, -errno, "cannot stat %s", path);
    if (S_ISDIR(st.st_mode))
        return ef_error_set(err, -EISDIR, "cannot read %s: it is a directory", path);
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max)
        return ef_error_set(err, -EFBIG, "%s is larger than %zu bytes", path, max);

    /* Files in /proc and /sys report a size of 0, so read until EOF whatever fstat said. */
    size_t cap = S_ISREG(st.st_mode) && st.st_size > 0 ? (size_t)st.st_size + 1 : 4096;
    if (cap > max + 1)
        cap = max + 1;
    cleanup_free char *buf = malloc(cap + 1);
    if (!buf)
        return ef_error_set_errno(err, -ENOMEM, "cannot read %s", path);
    size_t len = 0;
    for (;;) {
        if (len == cap) {
            if (cap > max)
                return ef_error_set(err, -EFBIG, "%s is larger than %zu bytes", path, max);
            size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            char *nb = realloc(buf, ncap + 1);
            if (!nb)
                return ef_error_set_errno(err, -ENOMEM, "cannot read %s", path);
            buf = nb;
            cap = ncap;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return ef_error_set_errno(err, -errno, "cannot read %s", path);
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > max)
        return ef_error_set(err, -EFBIG, "%s is larger than %zu bytes", path, max);
    buf[len] = '\0';
    *ret_data = steal_pointer(&buf);
    if (ret_len)
        *ret_len = len;
    return 0;
}

int ef_copy_file_atomic(const char *src, const char *dst, mode_t mode, ef_error *err)
{
    cleanup_close int in = open(src, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (in < 0)
        return ef_error_set_errno(err, -errno, "cannot open %s", src);
    struct stat st;
    if (fstat(in, &st) < 0)
        return ef_error_set_errno(err, -errno, "cannot stat %s", src);
    if (!S_ISREG(st.st_mode))
        return ef_error_set(err, -EINVAL, "cannot copy %s: not a regular file", src);

    cleanup_free char *tmp = NULL;
    int fd = atomic_open(dst, mode, &tmp, err);
    if (fd < 0)
        return fd;
    char buf[65536];
    for (;;) {
        ssize_t n = read(in, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        int r = n < 0 ? -errno : 0;
        if (r == 0 && n > 0)
            r = write_all(fd, buf, (size_t)n);
        if (r < 0) {
            close(fd);
            unlink(tmp);
            return ef_error_set_errno(err, r, "cannot copy %s to %s", src, tmp);
        }
        if (n == 0)
            break;
    }
    return atomic_commit(fd, tmp, dst, err);
}

/* ---- paths ---- */

char *ef_path_join(const char *a, const char *b)
{
    size_t la = strlen(a);
    while (la > 1 && a[la - 1] == '/')
        la--;
    while (*b == '/')
        b++;
    if (la == 0)
        return strdup(b);
    if (*b == '\0')
        return strndup(a, la);
    bool slash = a[la - 1] != '/'; /* a is "/" */
    char *out = NULL;
    if (asprintf(&out, "%.*s%s%s", (int)la, a, slash ? "/" : "", b) < 0)
        return NULL;
    return out;
}

int ef_path_is_below(const char *path, const char *root)
{
    size_t n = strlen(root);
    while (n > 1 && root[n - 1] == '/')
        n--;
    if (n == 1 && root[0] == '/')
        return path[0] == '/';
    if (n == 0 || strncmp(path, root, n) != 0)
        return 0;
    return path[n] == '\0' || path[n] == '/';
}

/* ---- clocks ---- */

static unsigned long long clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (unsigned long long)ts.tv_sec * 1000ull + (unsigned long long)ts.tv_nsec / 1000000ull;
}

unsigned long long ef_now_monotonic_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

unsigned long long ef_now_epoch_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}
