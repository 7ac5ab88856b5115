#include "controller/request_id.h"

#include <errno.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

int ef_request_id_new(char out[EF_REQUEST_ID_LEN + 1])
{
    unsigned char b[16];
    int r = 0;
    if (RAND_bytes(b, sizeof(b)) != 1) {
        memset(b, 0, sizeof(b));
        r = -EIO;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, EF_REQUEST_ID_LEN + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
    return r;
}
