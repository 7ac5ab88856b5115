/* Logging: one line per event, to stderr.
 *
 * Format: `2026-11-27T06:30:00.123Z controller[1234] INFO message`.
 * Library code returns errors instead of logging; the programs' top levels log. */
#pragma once

#include <stdarg.h>

enum ef_log_level {
    EF_LOG_DEBUG = 0,
    EF_LOG_INFO = 1,
    EF_LOG_WARN = 2,
    EF_LOG_ERROR = 3,
};

/* Sets the program name shown on every line and the lowest level written. */
void ef_log_init(const char *program, enum ef_log_level level);

/* Parses "debug", "info", "warn" or "error" into *ret_level; returns 0 or -EINVAL. */
int ef_log_parse_level(const char *name, enum ef_log_level *ret_level);

/* Returns whether a message at `level` would be written. */
int ef_log_enabled(enum ef_log_level level);

/* Writes one line; a trailing newline in `fmt` is not needed. Newlines inside the message are
 * replaced by spaces so that every event stays on one line. */
void ef_log(enum ef_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ef_logv(enum ef_log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

#define ef_debug(...) ef_log(EF_LOG_DEBUG, __VA_ARGS__)
#define ef_info(...)  ef_log(EF_LOG_INFO, __VA_ARGS__)
#define ef_warn(...)  ef_log(EF_LOG_WARN, __VA_ARGS__)
#define ef_error(...) ef_log(EF_LOG_ERROR, __VA_ARGS__)
