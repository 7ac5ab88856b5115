#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *log_program = "easyfaas";
static enum ef_log_level log_threshold = EF_LOG_INFO;

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void ef_log_init(const char *program, enum ef_log_level level)
{
    log_program = program;
    log_threshold = level;
}

int ef_log_parse_level(const char *name, enum ef_log_level *ret_level)
{
    static const struct {
        const char *name;
        enum ef_log_level level;
    } table[] = {
        {"debug", EF_LOG_DEBUG},  {"info", EF_LOG_INFO},   {"warn", EF_LOG_WARN},
        {"warning", EF_LOG_WARN}, {"error", EF_LOG_ERROR},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (strcasecmp(name, table[i].name) == 0) {
            *ret_level = table[i].level;
            return 0;
        }
    }
    return -EINVAL;
}

int ef_log_enabled(enum ef_log_level level)
{
    return level >= log_threshold;
}

void ef_logv(enum ef_log_level level, const char *fmt, va_list ap)
{
    if (!ef_log_enabled(level))
        return;

    int saved_errno = errno;
    char line[4096];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d] %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (long)(tv.tv_usec / 1000), log_program, (int)getpid(), level_names[level]);
    if (n < 0)
        n = 0;
    size_t head = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    vsnprintf(line + head, sizeof(line) - head - 1, fmt, ap);

    /* One event, one line: fold embedded newlines. */
    size_t len = strlen(line);
    for (size_t i = head; i < len; i++) {
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    }
    line[len++] = '\n';
    /* A single write keeps lines from different processes sharing stderr whole. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
    errno = saved_errno;
}

void ef_log(enum ef_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ef_logv(level, fmt, ap);
    va_end(ap);
}
