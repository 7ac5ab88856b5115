/* Small file-system helpers shared by the three programs. All fds are O_CLOEXEC. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

#include "common/error.h"

/* Creates `path` and its missing parents with `mode`; an existing directory is fine. */
int ef_mkdir_p(const char *path, mode_t mode, ef_error *err);

/* Makes the directory `path` (its missing parents 0755) private to its owner: created 0700, or
 * the group's and others' access taken away from an existing one, with an INFO line naming what
 * it `holds`, since an operator may have shared it on purpose. */
int ef_private_data_dir(const char *path, const char *holds, ef_error *err);

/* Removes `path` recursively without following symlinks and without crossing mount points
 * (a mount point inside is an error, -EBUSY). A missing path is success. */
int ef_rm_rf(const char *path, ef_error *err);

/* Writes `len` bytes to `path` atomically: a temporary file in the same directory, fsync,
 * rename, fsync of the directory. */
int ef_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
                         ef_error *err);

/* Reads a whole file of at most `max` bytes into a NUL-terminated buffer (*ret_data, freed by
 * the caller); -EFBIG when it is larger. */
int ef_read_file(const char *path, size_t max, char **ret_data, size_t *ret_len, ef_error *err);

/* Copies a regular file atomically (as ef_write_file_atomic) keeping the given mode. */
int ef_copy_file_atomic(const char *src, const char *dst, mode_t mode, ef_error *err);

/* Returns a newly allocated "a/b" (one slash between the parts). NULL on allocation failure. */
char *ef_path_join(const char *a, const char *b);

/* True when `path` (which must already be canonical, see realpath(3)) equals `root` or lies
 * below it. */
int ef_path_is_below(const char *path, const char *root);

/* Monotonic clock in milliseconds and wall clock (epoch) in milliseconds. */
unsigned long long ef_now_monotonic_ms(void);
unsigned long long ef_now_epoch_ms(void);
