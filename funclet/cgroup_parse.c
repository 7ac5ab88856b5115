#include "funclet/cgroup_parse.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* True when the comma-separated `list` holds `word`. */
static bool comma_list_has(const char *list, size_t len, const char *word)
{
    size_t wlen = strlen(word);
    const char *p = list, *end = list + len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        size_t n = comma ? (size_t)(comma - p) : (size_t)(end - p);
        if (n == wlen && memcmp(p, word, n) == 0)
            return true;
        p += n + 1;
    }
    return false;
}

static bool path_ok(const char *path, size_t len)
{
    if (len == 0 || path[0] != '/')
        return false;
    for (size_t i = 0; i + 1 < len; i++) {
        /* A ".." component, which a real kernel never shows, could lead outside the mount. */
        if (path[i] == '.' && path[i + 1] == '.' && (i == 0 || path[i - 1] == '/') &&
            (i + 2 == len || path[i + 2] == '/'))
            return false;
    }
    return true;
}

int ef_proc_cgroup_path(const char *text, const char *controller, char **ret_path, ef_error *err)
{
    const char *line = text;
    while (line && *line) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        const char *c1 = memchr(line, ':', len);
        const char *c2 = c1 ? memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - line)) : NULL;
        if (len > 0 && !c2)
            return ef_error_set(err, -EINVAL, "malformed /proc/self/cgroup line '%.*s'",
                                (int)(len > 100 ? 100 : len), line);
        if (c2) {
            const char *ctl = c1 + 1;
            size_t ctl_len = (size_t)(c2 - ctl);
            bool match = controller ? comma_list_has(ctl, ctl_len, controller)
                                    : (ctl_len == 0 && c1 - line == 1 && line[0] == '0');
            if (match) {
                const char *path = c2 + 1;
                size_t plen = len - (size_t)(path - line);
                if (!path_ok(path, plen))
                    return ef_error_set(err, -EINVAL,
                                        "unusable cgroup path '%.*s' in "
                                        "/proc/self/cgroup",
                                        (int)(plen > 200 ? 200 : plen), path);
                char *p = strndup(path, plen);
                if (!p)
                    return ef_error_set(err, -ENOMEM, "out of memory");
                *ret_path = p;
                return 0;
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    return ef_error_set(err, -ENOENT, "/proc/self/cgroup has no line for %s",
                        controller ? controller : "the unified hierarchy");
}

int ef_cgroup_keyed_value(const char *text, const char *key, uint64_t *ret)
{
    size_t klen = strlen(key);
    const char *line = text;
    while (line && *line) {
        const char *nl = strchr(line, '\n');
        if (strncmp(line, key, klen) == 0 && line[klen] == ' ') {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(line + klen + 1, &end, 10);
            if (errno || end == line + klen + 1 || (*end != '\n' && *end != '\0'))
                return -EINVAL;
            *ret = v;
            return 0;
        }
        line = nl ? nl + 1 : NULL;
    }
    return -ENOENT;
}

bool ef_cgroup_list_has(const char *text, const char *word)
{
    size_t wlen = strlen(word);
    const char *p = text;
    while (*p) {
        while (*p == ' ' || *p == '\n' || *p == '\t')
            p++;
        const char *start = p;
        while (*p && *p != ' ' && *p != '\n' && *p != '\t')
            p++;
        if ((size_t)(p - start) == wlen && wlen > 0 && memcmp(start, word, wlen) == 0)
            return true;
    }
    return false;
}

void ef_cgroup_format_max(uint64_t v, char *buf, size_t len)
{
    if (v == UINT64_MAX)
        snprintf(buf, len, "max");
    else
        snprintf(buf, len, "%" PRIu64, v);
}

void ef_cgroup_format_cpu_max(uint32_t millicores, char *buf, size_t len)
{
    int64_t quota = ef_cgroup_cpu_quota_us(millicores);
    if (quota < 0)
        snprintf(buf, len, "max %d", EF_CGROUP_CPU_PERIOD_US);
    else
        snprintf(buf, len, "%" PRId64 " %d", quota, EF_CGROUP_CPU_PERIOD_US);
}

int64_t ef_cgroup_cpu_quota_us(uint32_t millicores)
{
    if (millicores == 0)
        return -1;
    /* The kernel refuses a quota below 1 ms. */
    int64_t q = (int64_t)millicores * EF_CGROUP_CPU_PERIOD_US / 1000;
    return q < 1000 ? 1000 : q;
}

uint64_t ef_cgroup_weight_to_shares(uint32_t weight)
{
    if (weight < 1)
        weight = 1;
    if (weight > 10000)
        weight = 10000;
    return 2 + ((uint64_t)(weight - 1) * 262142) / 9999;
}

uint32_t ef_cgroup_weight_for_memory(uint64_t memory_mb)
{
    uint64_t w = memory_mb * 100 / 1024;
    if (w < 1)
        w = 1;
    if (w > 10000)
        w = 10000;
    return (uint32_t)w;
}
