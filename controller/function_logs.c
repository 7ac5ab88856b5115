/* Per-function log files with size-based rotation, and Lambda's framing of an invocation. */
#include "controller/function_logs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fsutil.h"

/* A function name (1–140 characters of [A-Za-z0-9_-]) is safe as a file name as it is. */
#define NAME_MAX_LEN 140
/* A file can outgrow max_file_size by one entry; what a tail reads of one file is bounded by
 * this much more, so that a file grown by hand cannot make a read unbounded. */
#define READ_SLACK (1024u * 1024u)

/* Open files are kept for the functions logged to most recently: an append is then one
 * write(2) instead of stat + open + write + close, which on a busy node is most of what logging
 * an invocation costs. The file's size is tracked as it is written; the path is looked at again
 * (a stat) at most once a second, so that a file an operator moved or removed is reopened
 * rather than written to where nobody reads it. */
#define OPEN_FILES    16
#define REVALIDATE_MS 1000

struct open_file {
    char function[NAME_MAX_LEN + 1]; /* "" for a free entry */
    int fd;
    uint64_t size; /* bytes in the file, as far as this process knows */
    dev_t dev;
    ino_t ino;
    uint64_t checked_ms; /* when the path was last found to be this file */
    uint64_t used;       /* ordinal of the last append, for eviction */
};

struct ef_function_logs {
    char *dir;
    uint64_t max_file_size;
    unsigned files;
    uint64_t appends;
    struct open_file open[OPEN_FILES];
};

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void open_file_close(struct open_file *f)
{
    if (f->function[0])
        close(f->fd);
    f->function[0] = '\0';
    f->fd = -1;
}

static int check_name(const char *function, ef_error *err)
{
    size_t len = strlen(function);
    if (len == 0 || len > NAME_MAX_LEN)
        return ef_error_set(err, -EINVAL, "function name '%.64s' cannot name a log file", function);
    for (size_t i = 0; i < len; i++) {
        char c = function[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return ef_error_set(err, -EINVAL, "function name '%.64s' cannot name a log file",
                                function);
    }
    return 0;
}

int ef_function_logs_open(const char *dir, uint64_t max_file_size, unsigned files,
                          ef_function_logs **ret_logs, ef_error *err)
{
    if (max_file_size == 0)
        max_file_size = EF_FUNCTION_LOGS_DEFAULT_SIZE;
    if (files == 0)
        files = EF_FUNCTION_LOGS_DEFAULT_FILES;
    if (max_file_size < EF_FUNCTION_LOGS_MIN_SIZE || max_file_size > EF_FUNCTION_LOGS_MAX_SIZE)
        return ef_error_set(err, -EINVAL, "the log file size must be between %u and %u bytes",
                            EF_FUNCTION_LOGS_MIN_SIZE, EF_FUNCTION_LOGS_MAX_SIZE);
    if (files > EF_FUNCTION_LOGS_MAX_FILES)
        return ef_error_set(err, -EINVAL, "at most %d log files can be kept per function",
                            EF_FUNCTION_LOGS_MAX_FILES);
    /* The functions' output is their users' data: only root may read it. A directory an older
     * controller created 0750 is made private too. */
    int r = ef_mkdir_p(dir, 0700, err);
    if (r < 0)
        return r;
    struct stat st;
    if (stat(dir, &st) < 0)
        return ef_error_set_errno(err, -errno, "cannot inspect %s", dir);
    if ((st.st_mode & 077) && chmod(dir, st.st_mode & 07700) < 0)
        return ef_error_set_errno(err, -errno, "cannot make %s private", dir);
    struct ef_function_logs *logs = calloc(1, sizeof(*logs));
    if (!logs || !(logs->dir = strdup(dir))) {
        free(logs);
        return ef_error_set(err, -ENOMEM, "out of memory");
    }
    logs->max_file_size = max_file_size;
    logs->files = files;
    *ret_logs = logs;
    return 0;
}

void ef_function_logs_close(ef_function_logs *logs)
{
    if (!logs)
        return;
    for (unsigned i = 0; i < OPEN_FILES; i++)
        open_file_close(&logs->open[i]);
    free(logs->dir);
    free(logs);
}

/* The path of the function's file number `i` (0 is the current one, i > 0 the rotated ones). */
static void file_path(const ef_function_logs *logs, const char *function, unsigned i, char *buf,
                      size_t len)
{
    if (i == 0)
        snprintf(buf, len, "%s/%s.log", logs->dir, function);
    else
        snprintf(buf, len, "%s/%s.log.%u", logs->dir, function, i);
}

/* Shifts <f>.log.N-2 → .N-1, …, <f>.log → <f>.log.1, dropping the oldest. */
static int rotate(const ef_function_logs *logs, const char *function, ef_error *err)
{
    char from[PATH_MAX], to[PATH_MAX];
    if (logs->files == 1) {
        file_path(logs, function, 0, from, sizeof(from));
        if (unlink(from) < 0 && errno != ENOENT)
            return ef_error_set_errno(err, -errno, "cannot remove %s", from);
        return 0;
    }
    for (unsigned i = logs->files - 1; i > 0; i--) {
        file_path(logs, function, i - 1, from, sizeof(from));
        file_path(logs, function, i, to, sizeof(to));
        if (rename(from, to) < 0 && errno != ENOENT)
            return ef_error_set_errno(err, -errno, "cannot rotate %s to %s", from, to);
    }
    return 0;
}

/* The entry of `function`'s open file, or a free (or the least recently used, closed) one. */
static struct open_file *open_file_slot(ef_function_logs *logs, const char *function)
{
    struct open_file *lru = &logs->open[0];
    for (unsigned i = 0; i < OPEN_FILES; i++) {
        struct open_file *f = &logs->open[i];
        if (f->function[0] && strcmp(f->function, function) == 0)
            return f;
        if (!f->function[0] || (lru->function[0] && f->used < lru->used))
            lru = f;
    }
    open_file_close(lru);
    return lru;
}

/* Opens the function's current file into `f`. */
static int open_file_open(struct open_file *f, const char *function, const char *path,
                          ef_error *err)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
    if (fd < 0)
        return ef_error_set_errno(err, -errno, "cannot open %s", path);
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int r = ef_error_set_errno(err, -errno, "cannot stat %s", path);
        close(fd);
        return r;
    }
    /* A file an older controller created 0640 is made private as it is next written; the
     * rotated ones keep the mode they had. */
    if ((st.st_mode & 077) && fchmod(fd, st.st_mode & 07700) < 0) {
        int r = ef_error_set_errno(err, -errno, "cannot make %s private", path);
        close(fd);
        return r;
    }
    snprintf(f->function, sizeof(f->function), "%s", function);
    f->fd = fd;
    f->size = (uint64_t)st.st_size;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    f->checked_ms = monotonic_ms();
    return 0;
}

int ef_function_logs_append(ef_function_logs *logs, const char *function, const char *text,
                            size_t len, ef_error *err)
{
    int r = check_name(function, err);
    if (r < 0)
        return r;
    char path[PATH_MAX];
    file_path(logs, function, 0, path, sizeof(path));
    struct open_file *f = open_file_slot(logs, function);
    if (f->function[0] && monotonic_ms() - f->checked_ms >= REVALIDATE_MS) {
        struct stat st;
        if (stat(path, &st) == 0 && st.st_dev == f->dev && st.st_ino == f->ino) {
            f->size = (uint64_t)st.st_size; /* another writer may have appended */
            f->checked_ms = monotonic_ms();
        } else {
            open_file_close(f);
        }
    }
    if (!f->function[0] && (r = open_file_open(f, function, path, err)) < 0)
        return r;
    if (f->size > 0 && f->size + len > logs->max_file_size) {
        open_file_close(f);
        r = rotate(logs, function, err);
        if (r < 0)
            return r;
        if ((r = open_file_open(f, function, path, err)) < 0)
            return r;
    }
    f->used = ++logs->appends;
    while (len > 0) {
        ssize_t n = write(f->fd, text, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = ef_error_set_errno(err, -errno, "cannot write %s", path);
            open_file_close(f);
            return r;
        }
        text += n;
        len -= (size_t)n;
        f->size += (uint64_t)n;
    }
    return 0;
}

/* Reads at most the last `max` bytes of a file. -ENOENT when it does not exist. */
static int read_file_tail(const char *path, size_t max, char **ret_data, size_t *ret_len,
                          ef_error *err)
{
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
    if (fd < 0)
        return errno == ENOENT ? -ENOENT : ef_error_set_errno(err, -errno, "cannot open %s", path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return ef_error_set_errno(err, -errno, "cannot stat %s", path);
    if (!S_ISREG(st.st_mode))
        return ef_error_set(err, -EINVAL, "%s is not a regular file", path);
    size_t want = (uint64_t)st.st_size > max ? max : (size_t)st.st_size;
    off_t off = st.st_size - (off_t)want;
    cleanup_free char *buf = malloc(want + 1);
    if (!buf)
        return ef_error_set(err, -ENOMEM, "out of memory");
    size_t got = 0;
    while (got < want) {
        ssize_t n = pread(fd, buf + got, want - got, off + (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return ef_error_set_errno(err, -errno, "cannot read %s", path);
        if (n == 0)
            break; /* truncated meanwhile */
        got += (size_t)n;
    }
    buf[got] = '\0';
    *ret_data = steal_pointer(&buf);
    *ret_len = got;
    return 0;
}

/* Where the last *need lines of data[0..len) begin; *need is lowered by the lines found. */
static size_t last_lines_start(const char *data, size_t len, size_t *need)
{
    if (len == 0 || *need == 0)
        return len;
    /* A final line without its newline still counts as a line. */
    size_t end = data[len - 1] == '\n' ? len - 1 : len;
    size_t found = 0;
    for (size_t i = end; i > 0; i--) {
        if (data[i - 1] == '\n') {
            found++;
            if (found == *need) {
                *need = 0;
                return i;
            }
        }
    }
    *need -= found + 1; /* the first line of the file, which has no newline before it */
    return 0;
}

int ef_function_logs_tail(ef_function_logs *logs, const char *function, size_t lines,
                          char **ret_text, size_t *ret_len, ef_error *err)
{
    int r = check_name(function, err);
    if (r < 0)
        return r;
    if (lines > EF_FUNCTION_LOGS_MAX_TAIL)
        lines = EF_FUNCTION_LOGS_MAX_TAIL;

    /* Newest file first, until enough lines are found. */
    char *parts[EF_FUNCTION_LOGS_MAX_FILES] = {0};
    size_t starts[EF_FUNCTION_LOGS_MAX_FILES] = {0}, lens[EF_FUNCTION_LOGS_MAX_FILES] = {0};
    unsigned n = 0;
    bool any = false;
    size_t need = lines, total = 0;
    size_t cap = logs->max_file_size + READ_SLACK;
    for (unsigned i = 0; i < logs->files && need > 0; i++) {
        char path[PATH_MAX];
        file_path(logs, function, i, path, sizeof(path));
        char *data = NULL;
        size_t len = 0;
        r = read_file_tail(path, cap, &data, &len, err);
        if (r == -ENOENT)
            continue;
        if (r < 0)
            goto out;
        any = true;
        starts[n] = last_lines_start(data, len, &need);
        lens[n] = len - starts[n];
        parts[n++] = data;
        total += lens[n - 1];
    }
    if (!any) {
        r = -ENOENT;
        goto out;
    }
    char *text = malloc(total + 1);
    if (!text) {
        r = ef_error_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    size_t o = 0;
    for (unsigned i = n; i > 0; i--) {
        memcpy(text + o, parts[i - 1] + starts[i - 1], lens[i - 1]);
        o += lens[i - 1];
    }
    text[o] = '\0';
    *ret_text = text;
    *ret_len = o;
    r = 0;
out:
    for (unsigned i = 0; i < n; i++)
        free(parts[i]);
    return r;
}

char *ef_function_log_frame(const struct ef_log_report *rep)
{
    const char *out = rep->output ? rep->output : "";
    size_t out_len = strlen(out);
    bool out_nl = out_len > 0 && out[out_len - 1] != '\n';
    /* Billed Duration is the duration as printed rounded up to the next millisecond (at least
     * 1), so the two never disagree: 1.004 ms prints as 1.00 and bills 1. */
    char duration[48];
    double ms = rep->duration_ms > 0 && rep->duration_ms < 1e12 ? rep->duration_ms : 0.0;
    snprintf(duration, sizeof(duration), "%.2f", ms);
    double printed = strtod(duration, NULL);
    unsigned long long billed = (unsigned long long)printed;
    if ((double)billed < printed)
        billed++;
    if (billed == 0)
        billed = 1;

    char memory[48] = "", init[48] = "", status[160] = "";
    if (rep->max_memory_used_mb >= 0)
        snprintf(memory, sizeof(memory), "\tMax Memory Used: %lld MB", rep->max_memory_used_mb);
    if (rep->init_ms > 0)
        snprintf(init, sizeof(init), "\tInit Duration: %.2f ms", rep->init_ms);
    if (rep->status && rep->error_type)
        snprintf(status, sizeof(status), "\tStatus: %s\tError Type: %.100s", rep->status,
                 rep->error_type);
    else if (rep->status)
        snprintf(status, sizeof(status), "\tStatus: %s", rep->status);

    char *text = NULL;
    int n =
        asprintf(&text,
                 "START RequestId: %s Version: %s\n"
                 "%s%s%s%s"
                 "END RequestId: %s\n"
                 "REPORT RequestId: %s\tDuration: %s ms\tBilled Duration: %llu ms\t"
                 "Memory Size: %lld MB%s%s%s\t\n",
                 rep->request_id, rep->version ? rep->version : "$LATEST", out, out_nl ? "\n" : "",
                 rep->extra ? rep->extra : "", rep->extra ? "\n" : "", rep->request_id,
                 rep->request_id, duration, billed, rep->memory_size_mb, memory, init, status);
    return n < 0 ? NULL : text;
}
