/* Capture of the runtime's stdout and stderr.
 *
 * Both pipes are read (nonblocking, through uv_poll and our own read()) into one ring that keeps
 * the last EF_LOG_TAIL_MAX bytes of the combined stream and a running byte count. An invocation
 * remembers the count when it is handed out and, when it ends, takes what was written since, so
 * its "log" is the runtime's output during that invocation (at most the last 64 KiB: the
 * controller keeps that in the function's log file and returns the last 4 KB of it in
 * X-Amz-Log-Result). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/error.h"

#define EF_LOG_TAIL_MAX (64u * 1024u)

struct ef_log_ring {
    char buf[EF_LOG_TAIL_MAX];
    uint64_t total; /* bytes ever appended; buf[total % EF_LOG_TAIL_MAX] is the next slot */
};

/* Appends bytes; only the last EF_LOG_TAIL_MAX survive. */
void ef_log_ring_append(struct ef_log_ring *ring, const char *data, size_t len);

/* Returns a malloc'd, NUL-terminated copy of what was appended after the byte count was `mark`
 * (at most the last EF_LOG_TAIL_MAX bytes), made valid UTF-8 by ef_utf8_sanitize. NULL on
 * allocation failure. */
char *ef_log_ring_since(const struct ef_log_ring *ring, uint64_t mark);

/* Like ef_log_ring_since, but when bytes after `mark` were already overwritten, the copy starts
 * with a line that says how many were dropped:
 *   "[easyfaas] N bytes of output before this line were dropped: a log keeps the last 64 KiB\n"
 * and that line and the tail after it together take at most EF_LOG_TAIL_MAX bytes (before
 * invalid bytes grow to U+FFFD). NULL on allocation failure. */
char *ef_log_ring_excerpt(const struct ef_log_ring *ring, uint64_t mark);

/* Returns a malloc'd NUL-terminated string holding `data` as valid UTF-8 that can travel in a
 * JSON string: every NUL byte and every byte that is not part of a well-formed sequence
 * (overlong forms, surrogates and code points above U+10FFFF included) becomes U+FFFD. With
 * `cut_front`, continuation bytes at the very start (left over from a sequence cut off by a
 * tail) are dropped instead. NULL on allocation failure. */
char *ef_utf8_sanitize(const char *data, size_t len, bool cut_front);

/* True when `data` is well-formed UTF-8 without NUL bytes. */
bool ef_utf8_is_clean(const char *data, size_t len);

struct ef_log_capture {
    /* One allocation per started stream, freed by its close callback: a capture that is closed
     * and started again (a new runtime after the previous one ended) never reuses a handle that
     * libuv is still closing. NULL when not polling. */
    uv_poll_t *poll[2];
    int fd[2]; /* read ends of the stdout and stderr pipes; -1 when closed */
    struct ef_log_ring ring;
};

/* Prepares an idle capture (no pipes yet). */
void ef_log_capture_init(struct ef_log_capture *cap);

/* Starts reading the pipe read ends (err_fd may be -1 when stdout and stderr share out_fd),
 * which must be nonblocking and close-on-exec; the capture owns them from now on, also on
 * failure. */
int ef_log_capture_start(struct ef_log_capture *cap, uv_loop_t *loop, int out_fd, int err_fd,
                         ef_error *err);

/* Reads whatever the pipes hold right now (until EAGAIN), so that output written just before a
 * response was posted is captured before the invocation's log is taken. */
void ef_log_capture_drain(struct ef_log_capture *cap);

/* The running byte count after a drain: the mark an invocation takes when handed out. */
uint64_t ef_log_capture_mark(struct ef_log_capture *cap);

/* Stops reading and closes the pipes (the poll handles close through the loop). The capture may
 * be started again at once. */
void ef_log_capture_close(struct ef_log_capture *cap);

/* Hands the capture's single pipe (one started with err_fd -1) over to another reader: reads
 * what it holds now, stops polling it and returns its read end, which the capture no longer
 * owns. The ring keeps what was read. Returns -EINVAL when the capture has no single pipe, or
 * -EPIPE when the pipe ended while being read. */
int ef_log_capture_detach(struct ef_log_capture *cap);

/* Closes the pipes without reading what is left in them and empties the ring, so that nothing
 * of the previous runtime's output reaches the next runtime's invocations. The capture may be
 * started again at once. */
void ef_log_capture_reset(struct ef_log_capture *cap);
