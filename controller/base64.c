#include "controller/base64.h"

#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdlib.h>

#include "common/cleanup.h"

/* OpenSSL's decoder also stops quietly at '-' (the start of a PEM trailer); user input gets
 * the strict alphabet instead. */
static bool valid_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/' || c == '=' || c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int ef_base64_decode(const char *text, size_t len, unsigned char **ret_data, size_t *ret_len)
{
    for (size_t i = 0; i < len; i++)
        if (!valid_char((unsigned char)text[i]))
            return -EINVAL;

    /* EVP_DecodeUpdate takes an int length; feed the text in chunks so that inputs above 2 GiB
     * (which the HTTP layer never lets through anyway) cannot overflow it. */
    const size_t chunk = 1u << 20;
    cleanup_free unsigned char *out = malloc(len / 4 * 3 + 4);
    if (!out)
        return -ENOMEM;
    EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
    if (!ctx)
        return -ENOMEM;
    EVP_DecodeInit(ctx);

    size_t total = 0;
    int r = 0;
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        int outl = 0;
        if (EVP_DecodeUpdate(ctx, out + total, &outl, (const unsigned char *)text + off, (int)n) <
            0) {
            r = -EINVAL;
            break;
        }
        total += (size_t)outl;
    }
    if (r == 0) {
        int outl = 0;
        if (EVP_DecodeFinal(ctx, out + total, &outl) < 0)
            r = -EINVAL;
        else
            total += (size_t)outl;
    }
    EVP_ENCODE_CTX_free(ctx);
    if (r < 0)
        return r;
    out[total] = '\0';
    *ret_data = steal_pointer(&out);
    *ret_len = total;
    return 0;
}

char *ef_base64_encode(const void *data, size_t len)
{
    if (len > (size_t)INT_MAX / 4 * 3)
        return NULL;
    char *out = malloc((len + 2) / 3 * 4 + 1);
    if (!out)
        return NULL;
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}
