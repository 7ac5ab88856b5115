/* Every function's log, kept in the data dir: <data>/logs/<function>.log, framed as Lambda's
 * CloudWatch stream is (START / the runtime's output / END / REPORT per invocation), with
 * size-based rotation (<function>.log.1, .log.2, ...), and read back by its last lines.
 *
 * Writes are plain appends (O_APPEND) from the loop thread to files kept open for the most
 * recently logged functions; a log entry is small (the runner sends at most 64 KiB of output
 * per invocation), so a write costs no more than the invocation's own RPC. See docs/logs.md. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/http.h"

struct ef_controller;

#define EF_FUNCTION_LOGS_DEFAULT_SIZE  (1024u * 1024u)
#define EF_FUNCTION_LOGS_DEFAULT_FILES 3
/* The bounds of --log-max-size and --log-files. */
#define EF_FUNCTION_LOGS_MIN_SIZE  (4u * 1024u)
#define EF_FUNCTION_LOGS_MAX_SIZE  (1024u * 1024u * 1024u)
#define EF_FUNCTION_LOGS_MAX_FILES 100
/* The most lines one read returns (GET .../logs?tail=N). */
#define EF_FUNCTION_LOGS_MAX_TAIL 10000

typedef struct ef_function_logs ef_function_logs;

/* Opens (creating it 0700 if needed, and taking the group's and others' access away from an
 * existing one) the log directory `dir`; log files are created 0600. A file is rotated before an
 * append would take it past `max_file_size` bytes (0: the default, 1 MiB); `files` files are kept
 * per function, the current one included (0: the default, 3). */
int ef_function_logs_open(const char *dir, uint64_t max_file_size, unsigned files,
                          ef_function_logs **ret_logs, ef_error *err);

/* Frees the store; NULL is fine. */
void ef_function_logs_close(ef_function_logs *logs);

/* Appends `len` bytes to the function's log, rotating first when needed. The function name must
 * be a valid Lambda function name (it names the file). */
int ef_function_logs_append(ef_function_logs *logs, const char *function, const char *text,
                            size_t len, ef_error *err);

/* Returns the last `lines` lines (at most EF_FUNCTION_LOGS_MAX_TAIL) of the function's log,
 * across its rotated files, oldest first, as a malloc'd NUL-terminated string. -ENOENT when the
 * function has no log at all. */
int ef_function_logs_tail(ef_function_logs *logs, const char *function, size_t lines,
                          char **ret_text, size_t *ret_len, ef_error *err);

/* One invocation's entry, as Lambda frames it. */
struct ef_log_report {
    const char *request_id;
    const char *version;    /* "$LATEST" when NULL */
    const char *output;     /* the runtime's output during the invocation; may be NULL */
    const char *extra;      /* a line the platform adds after the output (timeout, exit); or NULL */
    const char *status;     /* "timeout" or "error" for REPORT's Status field; NULL when fine */
    const char *error_type; /* REPORT's Error Type (with status "error"); may be NULL */
    double duration_ms;
    double init_ms; /* > 0 on a cold start: REPORT's Init Duration */
    long long memory_size_mb;
    long long max_memory_used_mb; /* < 0 when unknown: the field is left out */
};

/* Builds the entry (malloc'd, NUL-terminated, ends with a newline):
 *   START RequestId: <id> Version: $LATEST
 *   <output, with a newline added when it lacks one>
 *   <extra>
 *   END RequestId: <id>
 *   REPORT RequestId: <id>\tDuration: 1.23 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\t
 *     Max Memory Used: 40 MB\tInit Duration: 100.00 ms\tStatus: timeout\t
 * NULL when memory runs out. */
char *ef_function_log_frame(const struct ef_log_report *r);

/* GET /v1/functions/{name}/logs?tail=N: the last N lines (default 100, at most
 * EF_FUNCTION_LOGS_MAX_TAIL) of the function's log as text/plain (api_logs.c). */
void ef_api_function_logs(struct ef_controller *ctl, ef_http_exchange *ex,
                          const struct ef_http_request *req, const char *name);
