/* Reading /proc/self/mountinfo: which mount points lie at or below a directory, in the order in
 * which they can be unmounted. Pure (parses text), so it is unit-tested on literal input; the
 * recycling in hostmnt.c feeds it the real file. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"

/* Unescapes a mountinfo path field in place: the kernel writes space, tab, newline and
 * backslash as \040, \011, \012 and \134. Returns -EINVAL on a malformed escape. */
int ef_mountinfo_unescape(char *field);

/* Lists the mount points in `text` (the contents of a mountinfo file) that equal `dir` (when
 * `include_self`) or lie below it, in an order in which each can be unmounted before the mount
 * it sits on: deepest path first, and of mounts stacked at one path the later listed first. `dir`
 * must be canonical. On success *ret_paths is a NULL-terminated array of malloc'd strings (free
 * with ef_mountinfo_free) and *ret_n its length. A line that does not parse is -EINVAL. */
int ef_mountinfo_below(const char *text, const char *dir, bool include_self, char ***ret_paths,
                       size_t *ret_n, ef_error *err);

/* Frees an array from ef_mountinfo_below. NULL is fine. */
void ef_mountinfo_free(char **paths);
