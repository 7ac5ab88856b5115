/* The error convention.
 *
 * A function that can fail returns `int`: 0 on success or a negative errno. Where an operator
 * needs the cause, it also takes an optional `ef_error *err` (may be NULL) and fills it with the
 * code and a message that says what was wrong, e.g. "cannot create cgroup
 * /sys/fs/cgroup/memory/easyfaas/c1: Permission denied". */
#pragma once

#include <stddef.h>

typedef struct ef_error {
    int code;      /* negative errno, 0 when unset */
    char msg[512]; /* human-readable cause */
} ef_error;

/* Records `code` (a negative errno) and a formatted message in `err` if it is not NULL, and
 * returns `code`, so that `return ef_error_set(err, -EINVAL, "bad id '%s'", id);` works. */
int ef_error_set(ef_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like ef_error_set, and appends ": <strerror(-code)>" to the message. */
int ef_error_set_errno(ef_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Clears `err` (code 0, empty message). */
void ef_error_clear(ef_error *err);
