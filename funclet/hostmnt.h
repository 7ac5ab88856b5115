/* The host side of a container's changeable mounts.
 *
 * Every container has `run/containers/<id>/mnt`: a small tmpfs in funclet's mount namespace,
 * made shared, with the empty directories task/, tmp/ and shm/. The container is cloned while
 * that mount is shared, makes its copy a slave, and binds those directories onto /var/task, /tmp
 * and /dev/shm. From then on whatever funclet mounts on (or unmounts from) mnt/task, mnt/tmp or
 * mnt/shm propagates into the running container: the function's code at warmup, a fresh tmpfs
 * at every reset. Nothing the container mounts travels back (it is a slave).
 *
 * `run/containers` itself is a private bind mount, so that none of this propagates further into
 * the host's other mount namespaces. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define EF_HOSTMNT_TASK "task"
#define EF_HOSTMNT_TMP  "tmp"
#define EF_HOSTMNT_SHM  "shm"
/* Below run/containers, next to the containers' directories (it is no container id). */
#define EF_HOSTMNT_DEV ".dev"

/* Unmounts whatever a previous funclet left at or below `containers_dir` and makes it a private
 * bind mount of itself. */
int ef_hostmnt_prepare_root(const char *containers_dir, ef_error *err);

/* Unmounts everything at or below `containers_dir` (shutdown, after every container is gone;
 * and on start, for what a crashed funclet left) and removes the /dev tree's directory.
 * Failures are logged. */
void ef_hostmnt_release_root(const char *containers_dir);

/* The /dev every container binds read-only (at `containers_dir`/EF_HOSTMNT_DEV): a small tmpfs,
 * read-only once filled, with the `n` character devices of `dev_names` below /dev (each made
 * with the host's mode and device number), the fd, stdin, stdout and stderr links into
 * /proc/self/fd and an empty shm/ for the container's /dev/shm. Made once at start rather than
 * per container, which spared some 70 system calls of every create. Its nodes are opened through
 * it, so it is the one mount here without nodev. Removed with the containers root. */
int ef_hostmnt_make_dev(const char *containers_dir, const char *const *dev_names, size_t n,
                        ef_error *err);

/* Creates `mnt_dir` with its tmpfs, the task/tmp/shm directories and shared propagation. Nothing
 * is left behind on failure. */
int ef_hostmnt_create(const char *mnt_dir, ef_error *err);

/* Mounts a new tmpfs of `size` bytes (mode 1777, nosuid, nodev; noexec if asked) on
 * `mnt_dir`/`sub`. */
int ef_hostmnt_mount_tmpfs(const char *mnt_dir, const char *sub, uint64_t size, bool noexec,
                           ef_error *err);

/* Binds `code_dir` read-only (nosuid, nodev) on `mnt_dir`/task. The directory is opened with
 * O_PATH|O_NOFOLLOW and the mount is made from that fd after checking that it still resolves
 * strictly below `code_root`, so a symlink swapped in after validation cannot redirect the mount
 * to another host path. Uses open_tree + mount_setattr + move_mount, so that the mount is
 * read-only before it propagates; on kernels without them, a bind on a private staging point,
 * a read-only remount and a move. */
int ef_hostmnt_bind_code(const char *mnt_dir, const char *code_dir, const char *code_root,
                         ef_error *err);

/* Unmounts (lazily) whatever is mounted on `mnt_dir`/`sub`; nothing mounted is success. */
int ef_hostmnt_unmount(const char *mnt_dir, const char *sub, ef_error *err);

/* Unmounts `mnt_dir` with everything on it and removes the directory. A missing `mnt_dir` is
 * success. */
int ef_hostmnt_remove(const char *mnt_dir, ef_error *err);
