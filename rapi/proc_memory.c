/* Peak resident memory of a process, from /proc/<pid>/status. */
#define _GNU_SOURCE
#include "rapi/proc_memory.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* The status file of the process measured last stays open: a measurement is then one pread(2)
 * from offset 0 (a seq_file produces the text anew at offset 0) instead of open + read + read +
 * close, and the runner measures twice per invocation. The fd belongs to the process it was
 * opened for; once that process is gone reads fail with ESRCH, and the file is opened again by
 * pid, so a reused pid is never read through a stale fd. The runner is one thread. */
static pid_t open_pid;
static int open_fd = -1;

static void forget(void)
{
    if (open_fd >= 0)
        close(open_fd);
    open_fd = -1;
    open_pid = 0;
}

static ssize_t read_status(pid_t pid, char *buf, size_t size)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (open_fd < 0 || open_pid != pid) {
            forget();
            char path[64];
            snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
            open_fd = open(path, O_RDONLY | O_CLOEXEC);
            if (open_fd < 0)
                return -1;
            open_pid = pid;
        }
        ssize_t n;
        do
            n = pread(open_fd, buf, size, 0);
        while (n < 0 && errno == EINTR);
        if (n > 0)
            return n;
        forget(); /* the process went away: look the pid up once more */
    }
    return -1;
}

bool ef_proc_fd_peak_rss_kb(int fd, long *ret_kb)
{
    char buf[STATUS_READ_MAX];
    ssize_t n;
    do
        n = pread(fd, buf, sizeof(buf) - 1, 0);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    return ef_parse_vmhwm_kb(buf, ret_kb);
}

bool ef_proc_peak_rss_kb(pid_t pid, long *ret_kb)
{
    char buf[STATUS_READ_MAX];
    ssize_t n = read_status(pid, buf, sizeof(buf) - 1);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    return ef_parse_vmhwm_kb(buf, ret_kb);
}
