/* Base64 (RFC 4648, standard alphabet, padded) on OpenSSL's EVP encoder. */
#pragma once

#include <stddef.h>

/* Decodes `len` bytes of base64 text. Whitespace between groups is ignored; any other character
 * outside the alphabet, or bad padding, is -EINVAL. On success *ret_data is a malloc'd buffer of
 * *ret_len bytes (NUL-terminated for convenience), freed by the caller. */
int ef_base64_decode(const char *text, size_t len, unsigned char **ret_data, size_t *ret_len);

/* Encodes `len` bytes as one line of padded base64 without newlines. Returns a malloc'd
 * NUL-terminated string, or NULL when memory runs out. */
char *ef_base64_encode(const void *data, size_t len);
