#include "controller/request_id.h"

#include <errno.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* Random bytes are drawn from the CSPRNG for 256 ids at once: each RAND_bytes call costs a
 * getpid(2) (OpenSSL's fork check) and a lock, more than the bytes themselves. Ids stay
 * unpredictable, which matters because a request id is the name under which an asynchronous
 * invocation's result can be read back (GET /v1/invocations/{id}). The controller is one thread
 * and never forks, so the buffer needs neither a lock nor a fork check of its own. */
#define IDS_PER_DRAW 256

static unsigned char pool[16 * IDS_PER_DRAW];
static size_t pool_left; /* bytes of `pool` not handed out yet, from its end */

int ef_request_id_new(char out[EF_REQUEST_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    int r = 0;
    if (pool_left < sizeof(b)) {
        if (RAND_bytes(pool, sizeof(pool)) == 1 ||
            getrandom(pool, sizeof(pool), 0) == (ssize_t)sizeof(pool))
            pool_left = sizeof(pool);
        else
            r = -EIO;
    }
    if (r == 0) {
        pool_left -= sizeof(b);
        memcpy(b, pool + pool_left, sizeof(b));
        memset(pool + pool_left, 0, sizeof(b)); /* an id is not left behind in memory */
    } else {
        /* No randomness at all: ids must still differ, or one request could read another's
         * result. The time and a counter make them unique, though no longer unpredictable. */
        static uint64_t counter;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t hi = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec, lo = ++counter;
        memcpy(b, &hi, 8);
        memcpy(b + 8, &lo, 8);
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    char *p = out;
    for (size_t i = 0; i < sizeof(b); i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[b[i] >> 4];
        *p++ = hex[b[i] & 0x0f];
    }
    *p = '\0';
    return r;
}
