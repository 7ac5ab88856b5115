#include "funclet/mountinfo.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/fsutil.h"

int ef_mountinfo_unescape(char *field)
{
    char *out = field;
    for (const char *in = field; *in;) {
        if (*in != '\\') {
            *out++ = *in++;
            continue;
        }
        int v = 0;
        for (int i = 1; i <= 3; i++) {
            if (in[i] < '0' || in[i] > '7')
                return -EINVAL;
            v = v * 8 + (in[i] - '0');
        }
        if (v == 0 || v > 255)
            return -EINVAL;
        *out++ = (char)v;
        in += 4;
    }
    *out = '\0';
    return 0;
}

/* The fifth space-separated field of a mountinfo line (the mount point), copied and unescaped. */
static int mount_point(const char *line, size_t len, char **ret)
{
    const char *p = line, *end = line + len;
    for (int field = 0; field < 4; field++) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        if (!sp)
            return -EINVAL;
        p = sp + 1;
    }
    const char *sp = memchr(p, ' ', (size_t)(end - p));
    if (!sp || sp == p)
        return -EINVAL;
    char *mp = strndup(p, (size_t)(sp - p));
    if (!mp)
        return -ENOMEM;
    if (ef_mountinfo_unescape(mp) < 0 || mp[0] != '/') {
        free(mp);
        return -EINVAL;
    }
    *ret = mp;
    return 0;
}

struct entry {
    char *path;
    size_t index; /* in the kernel's listing */
    size_t depth; /* path components */
};

static int unmount_order(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    if (x->depth != y->depth)
        return x->depth > y->depth ? -1 : 1;
    return x->index > y->index ? -1 : x->index < y->index;
}

void ef_mountinfo_free(char **paths)
{
    if (!paths)
        return;
    for (char **p = paths; *p; p++)
        free(*p);
    free(paths);
}

int ef_mountinfo_below(const char *text, const char *dir, bool include_self, char ***ret_paths,
                       size_t *ret_n, ef_error *err)
{
    char **paths = calloc(1, sizeof(char *));
    size_t n = 0, lineno = 0;
    if (!paths)
        return ef_error_set(err, -ENOMEM, "out of memory");
    for (const char *line = text; *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        lineno++;
        if (len > 0) {
            char *mp = NULL;
            int r = mount_point(line, len, &mp);
            if (r < 0) {
                ef_mountinfo_free(paths);
                if (r == -ENOMEM)
                    return ef_error_set(err, r, "out of memory");
                return ef_error_set(err, r, "mountinfo line %zu does not parse", lineno);
            }
            bool self = strcmp(mp, dir) == 0;
            if (ef_path_is_below(mp, dir) && (!self || include_self)) {
                char **grown = realloc(paths, (n + 2) * sizeof(char *));
                if (!grown) {
                    free(mp);
                    ef_mountinfo_free(paths);
                    return ef_error_set(err, -ENOMEM, "out of memory");
                }
                paths = grown;
                paths[n++] = mp;
                paths[n] = NULL;
            } else {
                free(mp);
            }
        }
        line = nl ? nl + 1 : line + len;
    }
    /* A mount sits on one whose mount point is a prefix of its own (or the same path, stacked
     * on it and listed later): deeper paths first, and the later of two at one path first.
     * The kernel's listing order alone is not enough (it is not always the order of mounting). */
    struct entry *e = calloc(n ? n : 1, sizeof(*e));
    if (!e) {
        ef_mountinfo_free(paths);
        return ef_error_set(err, -ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        e[i].path = paths[i];
        e[i].index = i;
        for (const char *c = paths[i]; *c; c++)
            e[i].depth += *c == '/' && c[1] != '\0';
    }
    qsort(e, n, sizeof(*e), unmount_order);
    for (size_t i = 0; i < n; i++)
        paths[i] = e[i].path;
    free(e);
    *ret_paths = paths;
    *ret_n = n;
    return 0;
}
