#include "common/rpc_frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Above this capacity an emptied buffer is released, so that one large message does not pin
 * its memory for the life of the connection. */
#define FRAME_KEEP_CAP (256u * 1024u)

void ef_frame_decoder_init(struct ef_frame_decoder *d, size_t max_message)
{
    d->buf = NULL;
    d->len = 0;
    d->start = 0;
    d->cap = 0;
    d->max_message = max_message ? max_message : EF_RPC_DEFAULT_MAX_MESSAGE;
}

void ef_frame_decoder_free(struct ef_frame_decoder *d)
{
    free(d->buf);
    d->buf = NULL;
    d->len = d->start = d->cap = 0;
}

static uint32_t read_be32(const char *p)
{
    const uint8_t *u = (const uint8_t *)p;
    return ((uint32_t)u[0] << 24) | ((uint32_t)u[1] << 16) | ((uint32_t)u[2] << 8) | u[3];
}

/* Checks the header of the frame at `start`, if all of it has arrived. */
static int check_pending_header(const struct ef_frame_decoder *d)
{
    if (d->len - d->start < EF_RPC_FRAME_HEADER)
        return 0;
    uint32_t n = read_be32(d->buf + d->start);
    if (n == 0 || n > d->max_message)
        return -EMSGSIZE;
    return 0;
}

int ef_frame_decoder_feed(struct ef_frame_decoder *d, const char *data, size_t len)
{
    if (len == 0)
        return check_pending_header(d);

    /* Drop what was already returned before growing, so the buffer only ever holds one
     * incomplete frame plus the latest read. */
    if (d->start > 0 && d->len + len > d->cap) {
        memmove(d->buf, d->buf + d->start, d->len - d->start);
        d->len -= d->start;
        d->start = 0;
    }
    if (d->len + len > d->cap) {
        size_t want = d->cap ? d->cap : 4096;
        while (want < d->len + len) {
            if (want > SIZE_MAX / 2)
                return -ENOMEM;
            want *= 2;
        }
        char *nb = realloc(d->buf, want);
        if (!nb)
            return -ENOMEM;
        d->buf = nb;
        d->cap = want;
    }
    memcpy(d->buf + d->len, data, len);
    d->len += len;
    return check_pending_header(d);
}

int ef_frame_decoder_next(struct ef_frame_decoder *d, char **ret_msg, size_t *ret_len)
{
    size_t avail = d->len - d->start;
    if (avail < EF_RPC_FRAME_HEADER)
        return 0;
    uint32_t n = read_be32(d->buf + d->start);
    if (n == 0 || n > d->max_message)
        return -EMSGSIZE;
    if (avail - EF_RPC_FRAME_HEADER < n)
        return 0;

    char *msg = malloc((size_t)n + 1);
    if (!msg)
        return -ENOMEM;
    memcpy(msg, d->buf + d->start + EF_RPC_FRAME_HEADER, n);
    msg[n] = '\0';
    d->start += EF_RPC_FRAME_HEADER + (size_t)n;
    if (d->start == d->len) {
        d->start = d->len = 0;
        if (d->cap > FRAME_KEEP_CAP) {
            free(d->buf);
            d->buf = NULL;
            d->cap = 0;
        }
    }
    *ret_msg = msg;
    if (ret_len)
        *ret_len = n;
    return 1;
}

void ef_frame_header(uint8_t header[EF_RPC_FRAME_HEADER], uint32_t len)
{
    header[0] = (uint8_t)(len >> 24);
    header[1] = (uint8_t)(len >> 16);
    header[2] = (uint8_t)(len >> 8);
    header[3] = (uint8_t)len;
}
