#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int ef_error_set(ef_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

int ef_error_set_errno(ef_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < sizeof(err->msg))
            snprintf(err->msg + n, sizeof(err->msg) - (size_t)n, ": %s", strerror(-code));
        err->code = code;
    }
    return code;
}

void ef_error_clear(ef_error *err)
{
    if (err) {
        err->code = 0;
        err->msg[0] = '\0';
    }
}
