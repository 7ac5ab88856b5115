/* The body of an `invoke` answer: JSON text, or base64 for anything else. */
#define _GNU_SOURCE
#include "rapi/payload.h"

#include <stdint.h>
#include <stdlib.h>

#include "common/cleanup.h"
#include "rapi/log_capture.h"

bool ef_payload_is_text(const char *data, size_t len)
{
    /* Control bytes become six-byte \u00XX escapes in JSON: a 6 MiB body of them would not fit
     * in an RPC frame, where its base64 takes 8 MiB. */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)data[i];
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            return false;
    }
    return ef_utf8_is_clean(data, len);
}

char *ef_payload_base64(const void *data, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *in = data;
    if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
        return NULL;
    char *out = malloc((len + 2) / 3 * 4 + 1);
    if (!out)
        return NULL;
    char *o = out;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *o++ = alphabet[v >> 18];
        *o++ = alphabet[(v >> 12) & 63];
        *o++ = alphabet[(v >> 6) & 63];
        *o++ = alphabet[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        *o++ = alphabet[v >> 18];
        *o++ = alphabet[(v >> 12) & 63];
        *o++ = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    *o = '\0';
    return out;
}

/* Adds a string item that refers to `text` (see ef_payload_add). */
static bool add_reference(cJSON *answer, const char *name, const char *text)
{
    cJSON *item = cJSON_CreateStringReference(text);
    if (!item || !cJSON_AddItemToObject(answer, name, item)) {
        cJSON_Delete(item);
        return false;
    }
    return true;
}

bool ef_payload_add(cJSON *answer, const char *data, size_t len, char **ret_b64)
{
    *ret_b64 = NULL;
    if (ef_payload_is_text(data, len))
        return add_reference(answer, "payload", data);
    cleanup_free char *b64 = ef_payload_base64(data, len);
    if (!b64 || !add_reference(answer, "payload_b64", b64))
        return false;
    *ret_b64 = steal_pointer(&b64);
    return true;
}
