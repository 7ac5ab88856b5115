/* Capture of the runtime's stdout and stderr into a ring of the last 64 KiB. */
#define _GNU_SOURCE
#include "rapi/log_capture.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"

/* One poll callback reads at most this much, so a chatty runtime cannot starve the loop. */
#define READ_CHUNK       (64u * 1024u)
#define READS_PER_WAKEUP 4
/* A drain stops after this much even if the runtime keeps writing as fast as we read. */
#define DRAIN_LIMIT (1u * 1024u * 1024u)

/* The first pipe carries stdout and stderr together (see ef_runtime_spawn). */
static const char *const stream_name[2] = {"output", "stderr"};

void ef_log_ring_append(struct ef_log_ring *ring, const char *data, size_t len)
{
    /* Only the tail can survive, so skip what would be overwritten anyway. */
    if (len > EF_LOG_TAIL_MAX) {
        ring->total += len - EF_LOG_TAIL_MAX;
        data += len - EF_LOG_TAIL_MAX;
        len = EF_LOG_TAIL_MAX;
    }
    while (len > 0) {
        size_t pos = ring->total % EF_LOG_TAIL_MAX;
        size_t n = EF_LOG_TAIL_MAX - pos;
        if (n > len)
            n = len;
        memcpy(ring->buf + pos, data, n);
        ring->total += n;
        data += n;
        len -= n;
    }
}

/* A sanitized copy of the last `avail` (at most EF_LOG_TAIL_MAX) bytes appended; `cut` when the
 * bytes before them are lost, so that a sequence they cut in two is dropped. */
static char *ring_tail(const struct ef_log_ring *ring, uint64_t avail, bool cut)
{
    /* The bytes may wrap around the end of the ring: make them contiguous first. */
    cleanup_free char *tmp = malloc(avail ? (size_t)avail : 1);
    if (!tmp)
        return NULL;
    size_t start = (size_t)((ring->total - avail) % EF_LOG_TAIL_MAX);
    size_t first = EF_LOG_TAIL_MAX - start;
    if (first > avail)
        first = (size_t)avail;
    memcpy(tmp, ring->buf + start, first);
    memcpy(tmp + first, ring->buf, (size_t)avail - first);
    return ef_utf8_sanitize(tmp, (size_t)avail, cut);
}

char *ef_log_ring_since(const struct ef_log_ring *ring, uint64_t mark)
{
    uint64_t avail = mark < ring->total ? ring->total - mark : 0;
    if (avail > EF_LOG_TAIL_MAX)
        return ring_tail(ring, EF_LOG_TAIL_MAX, true);
    return ring_tail(ring, avail, false);
}

/* Room kept for the line that says how much was dropped. */
#define DROPPED_NOTE_MAX 128

char *ef_log_ring_excerpt(const struct ef_log_ring *ring, uint64_t mark)
{
    uint64_t avail = mark < ring->total ? ring->total - mark : 0;
    if (avail <= EF_LOG_TAIL_MAX)
        return ring_tail(ring, avail, false);
    uint64_t keep = EF_LOG_TAIL_MAX - DROPPED_NOTE_MAX;
    char note[DROPPED_NOTE_MAX];
    int n = snprintf(note, sizeof(note),
                     "[easyfaas] %llu bytes of output before this line were dropped: a log keeps "
                     "the last 64 KiB\n",
                     (unsigned long long)(avail - keep));
    cleanup_free char *tail = ring_tail(ring, keep, true);
    if (!tail || n < 0)
        return NULL;
    size_t tail_len = strlen(tail);
    char *out = malloc((size_t)n + tail_len + 1);
    if (!out)
        return NULL;
    memcpy(out, note, (size_t)n);
    memcpy(out + n, tail, tail_len + 1);
    return out;
}

/* Length of the well-formed UTF-8 sequence at s[0..len), or 0 when it is not one. */
static size_t utf8_seq_len(const unsigned char *s, size_t len)
{
    unsigned char b = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */

    if (b < 0x80)
        return b == 0 ? 0 : 1;
    if (b >= 0xC2 && b <= 0xDF)
        n = 2;
    else if (b >= 0xE0 && b <= 0xEF) {
        n = 3;
        if (b == 0xE0)
            lo = 0xA0; /* overlong */
        else if (b == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (b >= 0xF0 && b <= 0xF4) {
        n = 4;
        if (b == 0xF0)
            lo = 0x90; /* overlong */
        else if (b == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else
        return 0;
    if (len < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

bool ef_utf8_is_clean(const char *data, size_t len)
{
    const unsigned char *s = (const unsigned char *)data;
    size_t i = 0;
    while (i < len) {
        size_t n = utf8_seq_len(s + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

char *ef_utf8_sanitize(const char *data, size_t len, bool cut_front)
{
    const unsigned char *s = (const unsigned char *)data;
    size_t i = 0;
    if (cut_front)
        while (i < len && i < 3 && (s[i] & 0xC0) == 0x80)
            i++;
    /* Each bad byte grows to the three bytes of U+FFFD at most. */
    char *out = malloc((len - i) * 3 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    while (i < len) {
        size_t n = utf8_seq_len(s + i, len - i);
        if (n == 0) {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
            continue;
        }
        memcpy(out + o, s + i, n);
        o += n;
        i += n;
    }
    out[o] = '\0';
    return out;
}

void ef_log_capture_init(struct ef_log_capture *cap)
{
    memset(cap, 0, sizeof(*cap));
    cap->fd[0] = cap->fd[1] = -1;
}

static void on_poll_closed(uv_handle_t *h)
{
    free(h);
}

static void close_stream(struct ef_log_capture *cap, int i)
{
    if (cap->poll[i]) {
        /* libuv calls no callback of a handle after uv_close(): the capture may start a new
         * stream at once, with a new handle, while this one is still closing. */
        uv_close((uv_handle_t *)cap->poll[i], on_poll_closed);
        cap->poll[i] = NULL;
    }
    if (cap->fd[i] >= 0) {
        close(cap->fd[i]);
        cap->fd[i] = -1;
    }
}

/* Reads stream `i` until EAGAIN, EOF or `budget` bytes; closes it on EOF or error. */
static void read_stream(struct ef_log_capture *cap, int i, size_t budget)
{
    char buf[READ_CHUNK];
    size_t got = 0;
    while (cap->fd[i] >= 0 && got < budget) {
        ssize_t n = read(cap->fd[i], buf, sizeof(buf));
        if (n > 0) {
            ef_log_ring_append(&cap->ring, buf, (size_t)n);
            if (ef_log_enabled(EF_LOG_DEBUG))
                ef_debug("runtime %s: %.*s", stream_name[i], (int)n, buf);
            got += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        /* EOF: every writer (the runtime and whatever it started) has closed its end. */
        if (n < 0)
            ef_warn("cannot read the runtime's %s: %s", stream_name[i], strerror(errno));
        close_stream(cap, i);
    }
}

static void on_readable(uv_poll_t *handle, int status, int events)
{
    struct ef_log_capture *cap = handle->data;
    int i = handle == cap->poll[0] ? 0 : 1;
    (void)events;
    if (status < 0 && status != UV_EBADF)
        ef_warn("polling the runtime's %s failed: %s", stream_name[i], uv_strerror(status));
    read_stream(cap, i, READ_CHUNK * READS_PER_WAKEUP);
}

int ef_log_capture_start(struct ef_log_capture *cap, uv_loop_t *loop, int out_fd, int err_fd,
                         ef_error *err)
{
    /* Whatever a previous start left open is not this runtime's to read. */
    ef_log_capture_close(cap);
    cap->fd[0] = out_fd;
    cap->fd[1] = err_fd;
    for (int i = 0; i < 2; i++) {
        if (cap->fd[i] < 0)
            continue;
        uv_poll_t *h = malloc(sizeof(*h));
        if (!h) {
            ef_log_capture_close(cap);
            return ef_error_set(err, -ENOMEM, "out of memory");
        }
        int r = uv_poll_init(loop, h, cap->fd[i]);
        if (r < 0) {
            free(h);
            ef_log_capture_close(cap);
            return ef_error_set(err, r, "cannot poll the runtime's %s: %s", stream_name[i],
                                uv_strerror(r));
        }
        cap->poll[i] = h;
        h->data = cap;
        r = uv_poll_start(h, UV_READABLE | UV_DISCONNECT, on_readable);
        if (r < 0) {
            ef_log_capture_close(cap);
            return ef_error_set(err, r, "cannot poll the runtime's %s: %s", stream_name[i],
                                uv_strerror(r));
        }
    }
    return 0;
}

void ef_log_capture_drain(struct ef_log_capture *cap)
{
    for (int i = 0; i < 2; i++)
        read_stream(cap, i, DRAIN_LIMIT);
}

uint64_t ef_log_capture_mark(struct ef_log_capture *cap)
{
    ef_log_capture_drain(cap);
    return cap->ring.total;
}

void ef_log_capture_close(struct ef_log_capture *cap)
{
    for (int i = 0; i < 2; i++)
        close_stream(cap, i);
}

int ef_log_capture_detach(struct ef_log_capture *cap)
{
    if (cap->fd[0] < 0 || cap->fd[1] >= 0)
        return -EINVAL;
    read_stream(cap, 0, DRAIN_LIMIT);
    if (cap->fd[0] < 0)
        return -EPIPE; /* it ended while being drained */
    int fd = cap->fd[0];
    cap->fd[0] = -1;
    close_stream(cap, 0);
    return fd;
}

void ef_log_capture_reset(struct ef_log_capture *cap)
{
    ef_log_capture_close(cap);
    memset(&cap->ring, 0, sizeof(cap->ring));
}
