#include "controller/duration.h"

#include <errno.h>
#include <string.h>

#define TEN_YEARS_MS (10ULL * 366 * 24 * 3600 * 1000)

int ef_parse_duration_ms(const char *text, uint64_t *ret_ms, ef_error *err)
{
    static const struct {
        const char *suffix;
        uint64_t ms;
    } units[] = {{"", 1000},       {"ms", 1},          {"s", 1000},
                 {"m", 60 * 1000}, {"h", 3600 * 1000}, {"d", 24 * 3600 * 1000}};
    const char *p = text;
    uint64_t n = 0;
    if (!text || *p < '0' || *p > '9')
        goto bad;
    for (; *p >= '0' && *p <= '9'; p++) {
        n = n * 10 + (uint64_t)(*p - '0');
        if (n > TEN_YEARS_MS)
            goto bad;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(p, units[i].suffix) != 0)
            continue;
        if (n > TEN_YEARS_MS / units[i].ms)
            goto bad;
        *ret_ms = n * units[i].ms;
        return 0;
    }
bad:
    return ef_error_set(err, -EINVAL,
                        "'%.40s' is not a duration: use a whole number with ms, s, m, h or d "
                        "(e.g. 90s, 6h), at most 10 years",
                        text ? text : "");
}
