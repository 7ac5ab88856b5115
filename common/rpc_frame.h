/* JSON-RPC message framing, without any I/O, so it is unit-tested on byte strings.
 *
 * A frame is a 4-byte big-endian payload length followed by that many bytes of compact JSON.
 * A declared length above the decoder's maximum (or zero) is a protocol error: the peer is
 * broken or hostile, and the connection is closed. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define EF_RPC_FRAME_HEADER        4
#define EF_RPC_DEFAULT_MAX_MESSAGE (16u * 1024u * 1024u)

struct ef_frame_decoder {
    char *buf;    /* bytes received; those before `start` were already returned */
    size_t len;   /* valid bytes in buf */
    size_t start; /* offset of the first byte not yet returned (avoids a memmove per frame) */
    size_t cap;
    size_t max_message;
};

void ef_frame_decoder_init(struct ef_frame_decoder *d, size_t max_message);
void ef_frame_decoder_free(struct ef_frame_decoder *d);

/* Appends received bytes. Returns 0, -ENOMEM, or -EMSGSIZE when the pending frame declares a
 * length of zero or above max_message (checked as soon as the 4 header bytes are in). */
int ef_frame_decoder_feed(struct ef_frame_decoder *d, const char *data, size_t len);

/* Takes the next complete frame. Returns 1 and a malloc'd NUL-terminated copy of the payload in
 * *ret_msg (length in *ret_len), 0 when more bytes are needed, or -EMSGSIZE as above. */
int ef_frame_decoder_next(struct ef_frame_decoder *d, char **ret_msg, size_t *ret_len);

/* Writes the 4-byte header for a payload of `len` bytes. */
void ef_frame_header(uint8_t header[EF_RPC_FRAME_HEADER], uint32_t len);
