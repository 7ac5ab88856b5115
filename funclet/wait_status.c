#include "funclet/wait_status.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

void ef_wait_status_string(int status, char *buf, size_t len)
{
    if (len == 0)
        return;
    if (WIFEXITED(status)) {
        snprintf(buf, len, "exit status %d", WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
        /* sigdescr_np is neither localised nor stateful, unlike strsignal. */
        const char *d = sigdescr_np(WTERMSIG(status));
        if (d) {
            int n = snprintf(buf, len, "signal: %s", d);
            size_t end = n < 0 ? 0 : ((size_t)n < len ? (size_t)n : len - 1);
            for (size_t i = strlen("signal: "); i < end; i++)
                buf[i] = (char)tolower((unsigned char)buf[i]);
        } else {
            snprintf(buf, len, "signal: %d", WTERMSIG(status));
        }
    } else {
        snprintf(buf, len, "unknown status 0x%x", (unsigned)status);
    }
}
