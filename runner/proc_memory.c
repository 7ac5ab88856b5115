/* Peak resident memory of a process, from /proc/<pid>/status. */
#define _GNU_SOURCE
#include "runner/proc_memory.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"

/* /proc/<pid>/status is about 1.5 KiB; VmHWM is in its first half. */
#define STATUS_READ_MAX 8192

bool ef_parse_vmhwm_kb(const char *status_text, long *ret_kb)
{
    for (const char *line = status_text; line && *line;) {
        if (strncmp(line, "VmHWM:", 6) == 0) {
            const char *p = line + 6;
            while (*p == ' ' || *p == '\t')
                p++;
            if (*p < '0' || *p > '9')
                return false;
            errno = 0;
            char *end = NULL;
            long kb = strtol(p, &end, 10);
            if (errno != 0 || kb < 0 || strncmp(end, " kB", 3) != 0)
                return false;
            *ret_kb = kb;
            return true;
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return false;
}

bool ef_proc_peak_rss_kb(pid_t pid, long *ret_kb)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    char buf[STATUS_READ_MAX];
    size_t len = 0;
    while (len < sizeof(buf) - 1) {
        ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return ef_parse_vmhwm_kb(buf, ret_kb);
}
