#include "funclet/hostmnt.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "funclet/mountinfo.h"

static const char *const subdirs[] = {EF_HOSTMNT_TASK, EF_HOSTMNT_TMP, EF_HOSTMNT_SHM};

static int sub_path(char *buf, size_t len, const char *mnt_dir, const char *sub, ef_error *err)
{
    if (snprintf(buf, len, "%s/%s", mnt_dir, sub) >= (int)len)
        return ef_error_set(err, -ENAMETOOLONG, "path %s/%s is too long", mnt_dir, sub);
    return 0;
}

/* Unmounts every mount at or below `dir`, most recent first. */
static int unmount_below(const char *dir, bool include_self, ef_error *err)
{
    cleanup_free char *text = NULL;
    int r = ef_read_file("/proc/self/mountinfo", 64u << 20, &text, NULL, err);
    if (r < 0)
        return r;
    char **paths = NULL;
    size_t n = 0;
    r = ef_mountinfo_below(text, dir, include_self, &paths, &n, err);
    if (r < 0)
        return r;
    int ret = 0;
    for (size_t i = 0; i < n; i++) {
        /* A parent detached earlier took its children with it: EINVAL and ENOENT mean gone. */
        if (umount2(paths[i], MNT_DETACH | UMOUNT_NOFOLLOW) < 0 && errno != EINVAL &&
            errno != ENOENT && ret == 0)
            ret = ef_error_set_errno(err, -errno, "cannot unmount %s", paths[i]);
    }
    ef_mountinfo_free(paths);
    return ret;
}

int ef_hostmnt_prepare_root(const char *containers_dir, ef_error *err)
{
    int r = unmount_below(containers_dir, true, err);
    if (r < 0)
        return r;
    if (mount(containers_dir, containers_dir, NULL, MS_BIND, NULL) < 0)
        return ef_error_set_errno(err, -errno, "cannot bind %s onto itself", containers_dir);
    if (mount(NULL, containers_dir, NULL, MS_PRIVATE, NULL) < 0) {
        int e = -errno;
        umount2(containers_dir, MNT_DETACH);
        return ef_error_set_errno(err, e, "cannot make %s a private mount", containers_dir);
    }
    return 0;
}

void ef_hostmnt_release_root(const char *containers_dir)
{
    ef_error e;
    if (unmount_below(containers_dir, true, &e) < 0) {
        ef_warn("%s", e.msg);
        return;
    }
    cleanup_free char *dev = ef_path_join(containers_dir, EF_HOSTMNT_DEV);
    if (dev && rmdir(dev) < 0 && errno != ENOENT)
        ef_warn("cannot remove %s: %s", dev, strerror(errno));
}

/* Fills the /dev tree through `dfd`. */
static int fill_dev(int dfd, const char *const *dev_names, size_t n, ef_error *err)
{
    for (size_t i = 0; i < n; i++) {
        char host[64];
        snprintf(host, sizeof(host), "/dev/%s", dev_names[i]);
        struct stat st;
        if (stat(host, &st) < 0 || !S_ISCHR(st.st_mode))
            return ef_error_set_errno(err, -errno, "cannot inspect %s", host);
        /* fchmodat: funclet's umask would otherwise take the write bits of /dev/null. */
        if (mknodat(dfd, dev_names[i], S_IFCHR | (st.st_mode & 0777), st.st_rdev) < 0 ||
            fchmodat(dfd, dev_names[i], st.st_mode & 0777, 0) < 0)
            return ef_error_set_errno(err, -errno, "cannot make the device node %s", dev_names[i]);
    }
    static const char *const links[][2] = {{"fd", "/proc/self/fd"},
                                           {"stdin", "/proc/self/fd/0"},
                                           {"stdout", "/proc/self/fd/1"},
                                           {"stderr", "/proc/self/fd/2"}};
    for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
        if (symlinkat(links[i][1], dfd, links[i][0]) < 0)
            return ef_error_set_errno(err, -errno, "cannot make the link /dev/%s", links[i][0]);
    }
    if (mkdirat(dfd, EF_HOSTMNT_SHM, 0755) < 0)
        return ef_error_set_errno(err, -errno, "cannot make /dev/shm");
    return 0;
}

int ef_hostmnt_make_dev(const char *containers_dir, const char *const *dev_names, size_t n,
                        ef_error *err)
{
    cleanup_free char *dir = ef_path_join(containers_dir, EF_HOSTMNT_DEV);
    if (!dir)
        return ef_error_set(err, -ENOMEM, "out of memory");
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return ef_error_set_errno(err, -errno, "mkdir %s", dir);
    static const char opts[] = "size=16k,nr_inodes=32,mode=0755";
    /* Not over one a previous start could not unmount. */
    if (umount2(dir, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
        return ef_error_set_errno(err, -errno, "cannot unmount the old %s", dir);
    if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NOEXEC, opts) < 0)
        return ef_error_set_errno(err, -errno, "cannot mount a tmpfs on %s", dir);
    cleanup_close int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    int r = dfd < 0 ? ef_error_set_errno(err, -errno, "open %s", dir) : 0;
    if (r == 0)
        r = fill_dev(dfd, dev_names, n, err);
    if (r == 0 && mount(NULL, dir, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC, opts) < 0)
        r = ef_error_set_errno(err, -errno, "cannot make %s read-only", dir);
    if (r < 0)
        umount2(dir, MNT_DETACH);
    return r;
}

int ef_hostmnt_create(const char *mnt_dir, ef_error *err)
{
    if (mkdir(mnt_dir, 0755) < 0)
        return ef_error_set_errno(err, -errno, "mkdir %s", mnt_dir);
    /* A few directories fit in a few KiB; noexec and nodev because nothing is meant to be run
     * or opened from the placeholders themselves. */
    if (mount("tmpfs", mnt_dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "size=16k,nr_inodes=16,mode=0755") < 0) {
        int e = -errno;
        rmdir(mnt_dir);
        return ef_error_set_errno(err, e, "cannot mount a tmpfs on %s", mnt_dir);
    }
    int r = 0;
    char path[PATH_MAX];
    for (size_t i = 0; i < EF_ARRAY_SIZE(subdirs) && r == 0; i++) {
        r = sub_path(path, sizeof(path), mnt_dir, subdirs[i], err);
        if (r == 0 && mkdir(path, 0755) < 0)
            r = ef_error_set_errno(err, -errno, "mkdir %s", path);
    }
    /* Shared: the container's copy joins the peer group at clone() and becomes its slave. */
    if (r == 0 && mount(NULL, mnt_dir, NULL, MS_SHARED, NULL) < 0)
        r = ef_error_set_errno(err, -errno, "cannot make %s a shared mount", mnt_dir);
    if (r < 0) {
        umount2(mnt_dir, MNT_DETACH);
        rmdir(mnt_dir);
    }
    return r;
}

int ef_hostmnt_mount_tmpfs(const char *mnt_dir, const char *sub, uint64_t size, bool noexec,
                           ef_error *err)
{
    char path[PATH_MAX], opts[64];
    int r = sub_path(path, sizeof(path), mnt_dir, sub, err);
    if (r < 0)
        return r;
    snprintf(opts, sizeof(opts), "mode=1777,size=%llu", (unsigned long long)size);
    unsigned long flags = MS_NOSUID | MS_NODEV | (noexec ? MS_NOEXEC : 0);
    if (mount("tmpfs", path, "tmpfs", flags, opts) < 0)
        return ef_error_set_errno(err, -errno, "cannot mount a tmpfs on %s", path);
    return 0;
}

/* Opens `code_dir` as an O_PATH fd and checks, on the fd, that it is strictly below
 * `code_root`. */
static int open_confined(const char *code_dir, const char *code_root, int *ret_fd, ef_error *err)
{
    cleanup_close int fd = open(code_dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return ef_error_set_errno(err, -errno, "cannot open %s", code_dir);
    char link[64], real[PATH_MAX];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, real, sizeof(real) - 1);
    if (n < 0)
        return ef_error_set_errno(err, -errno, "readlink %s", link);
    real[n] = '\0';
    if (!ef_path_is_below(real, code_root) || strcmp(real, code_root) == 0)
        return ef_error_set(err, -EXDEV, "%s now resolves to %s, outside %s", code_dir, real,
                            code_root);
    *ret_fd = steal_fd(&fd);
    return 0;
}

/* Without the new mount API: bind on a private staging directory next to `mnt_dir` (under the
 * private containers root, so the bind propagates nowhere), make it read-only, move it. */
static int bind_code_legacy(int fd, const char *mnt_dir, const char *target, ef_error *err)
{
    char stage[PATH_MAX], link[64];
    if (snprintf(stage, sizeof(stage), "%s.stage", mnt_dir) >= (int)sizeof(stage))
        return ef_error_set(err, -ENAMETOOLONG, "path %s.stage is too long", mnt_dir);
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    if (mkdir(stage, 0700) < 0 && errno != EEXIST)
        return ef_error_set_errno(err, -errno, "mkdir %s", stage);
    int r = 0;
    if (mount(link, stage, NULL, MS_BIND, NULL) < 0)
        r = ef_error_set_errno(err, -errno, "cannot bind the code on %s", stage);
    else if (mount(NULL, stage, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV,
                   NULL) < 0 ||
             mount(stage, target, NULL, MS_MOVE, NULL) < 0) {
        r = ef_error_set_errno(err, -errno, "cannot move the read-only code onto %s", target);
        umount2(stage, MNT_DETACH);
    }
    rmdir(stage);
    return r;
}

int ef_hostmnt_bind_code(const char *mnt_dir, const char *code_dir, const char *code_root,
                         ef_error *err)
{
    char target[PATH_MAX];
    int r = sub_path(target, sizeof(target), mnt_dir, EF_HOSTMNT_TASK, err);
    if (r < 0)
        return r;
    cleanup_close int fd = -1;
    r = open_confined(code_dir, code_root, &fd, err);
    if (r < 0)
        return r;
    cleanup_close int tree = open_tree(fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
    if (tree < 0 && errno == ENOSYS)
        return bind_code_legacy(fd, mnt_dir, target, err);
    if (tree < 0)
        return ef_error_set_errno(err, -errno, "cannot clone a mount of %s", code_dir);
    struct mount_attr attr = {
        .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
    };
    if (mount_setattr(tree, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0) {
        if (errno == ENOSYS)
            return bind_code_legacy(fd, mnt_dir, target, err);
        return ef_error_set_errno(err, -errno, "cannot make the mount of %s read-only", code_dir);
    }
    /* Attached below the shared mnt_dir, it propagates, read-only, into the container. */
    if (move_mount(tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
        return ef_error_set_errno(err, -errno, "cannot mount %s on %s", code_dir, target);
    return 0;
}

int ef_hostmnt_unmount(const char *mnt_dir, const char *sub, ef_error *err)
{
    char path[PATH_MAX];
    int r = sub_path(path, sizeof(path), mnt_dir, sub, err);
    if (r < 0)
        return r;
    /* Lazily: the container's processes are gone, but the kernel may still hold a reference
     * for a moment. Repeated in case something was mounted twice. */
    for (int i = 0; i < 8; i++) {
        if (umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) < 0) {
            if (errno == EINVAL)
                return 0;
            return ef_error_set_errno(err, -errno, "cannot unmount %s", path);
        }
    }
    return ef_error_set(err, -EBUSY, "%s still has mounts after 8 unmounts", path);
}

int ef_hostmnt_remove(const char *mnt_dir, ef_error *err)
{
    struct stat st;
    if (lstat(mnt_dir, &st) < 0)
        return errno == ENOENT ? 0 : ef_error_set_errno(err, -errno, "cannot inspect %s", mnt_dir);
    /* A lazy unmount takes every mount on top of mnt_dir along. */
    if (umount2(mnt_dir, MNT_DETACH | UMOUNT_NOFOLLOW) < 0 && errno != EINVAL)
        return ef_error_set_errno(err, -errno, "cannot unmount %s", mnt_dir);
    char path[PATH_MAX];
    for (size_t i = 0; i < EF_ARRAY_SIZE(subdirs); i++) {
        if (sub_path(path, sizeof(path), mnt_dir, subdirs[i], NULL) == 0)
            rmdir(path);
    }
    if (rmdir(mnt_dir) < 0 && errno != ENOENT)
        return ef_error_set_errno(err, -errno, "cannot remove %s", mnt_dir);
    return 0;
}
