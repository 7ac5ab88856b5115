/* The locks a funclet holds for its whole life, so that two funclets never share what only one
 * may own:
 *
 *   <data-dir>/run/funclet.lock   the data dir: its containers, mounts and socket. A second
 *                                 funclet on the same data dir refuses to start before it
 *                                 touches anything (start-up recycling would destroy the first
 *                                 one's containers);
 *   /run/easyfaas/userns.lock     the host uid/gid range of the containers' user namespaces:
 *                                 the bytes [base, base + span) of the file stand for the ids,
 *                                 so that any overlap of two ranges conflicts, not only equal
 *                                 --userns-base values.
 *
 * Both are POSIX record locks (fcntl F_SETLK) rather than flock(2): the kernel reports the
 * holder's pid and range (F_GETLK), which the refusal names, and releases them when the
 * process dies, however it dies. A record lock belongs to the process: it is not inherited by
 * the containers' sandbox children, and it is released when the process closes any fd of the
 * file, which funclet opens once and keeps open. Every fd is O_CLOEXEC. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"

/* The host-wide directory of the locks funclets on one host share (created 0700). A funclet in
 * a container sees the container's own /run unless the host's directory is mounted there. */
#define EF_LOCK_HOST_DIR    "/run/easyfaas"
#define EF_LOCK_USERNS_FILE EF_LOCK_HOST_DIR "/userns.lock"

/* Takes the lock of the data dir whose run directory (0700, existing) is `run_dir`; `data_dir`
 * only names it in the error. Returns 0 with the lock's fd in *ret_fd (keep it open for the
 * process's life), or -EBUSY with "another funclet (pid N) runs on data dir ..." when another
 * process holds it, or another negative errno. */
int ef_lock_data_dir(const char *run_dir, const char *data_dir, int *ret_fd, ef_error *err);

/* The pid of the process that holds the lock of `data_dir` (a funclet running on it), or 0 when
 * none does (no lock file, or nobody holds it). Takes nothing. */
pid_t ef_lock_data_dir_holder(const char *data_dir);

/* Claims the host ids [base, base + count * range) in EF_LOCK_USERNS_FILE (creating the
 * directory 0700 and the file 0600 when missing). Returns 0 with the lock's fd in *ret_fd, or
 * -EBUSY with an error naming the other funclet's pid and ids, and a free --userns-base to use
 * instead where one follows them, or another negative errno. */
int ef_lock_userns(uint32_t base, uint64_t count, uint32_t range, int *ret_fd, ef_error *err);

/* --userns-base auto: claims the lowest free range of count * range host ids from `first` on,
 * past the ranges other funclets on this host hold, and returns its first id in *ret_base and
 * the lock's fd in *ret_fd. -EBUSY when no range up to the last valid id is free, or another
 * negative errno (then the caller may fall back to `first` unclaimed, as ef_lock_userns's
 * callers do when the lock directory cannot be made). */
int ef_lock_userns_auto(uint32_t first, uint64_t count, uint32_t range, uint32_t *ret_base,
                        int *ret_fd, ef_error *err);
