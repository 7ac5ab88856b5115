#include "common/options.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct ef_option *find_option(const struct ef_option *opts, const char *name,
                                           size_t len)
{
    for (const struct ef_option *o = opts; o && o->name; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
            return o;
    return NULL;
}

static int parse_int(const struct ef_option *o, const char *value, ef_error *err)
{
    bool ranged = o->min != 0 || o->max != 0;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    bool ok =
        *value != '\0' && !isspace((unsigned char)*value) && end && *end == '\0' && errno == 0;
    if (ok && ranged && (v < o->min || v > o->max))
        ok = false;
    if (!ok) {
        if (ranged)
            return ef_error_set(err, -EINVAL,
                                "--%s: expected an integer between %" PRId64 " and %" PRId64
                                ", got '%s'",
                                o->name, o->min, o->max, value);
        return ef_error_set(err, -EINVAL, "--%s: expected an integer, got '%s'", o->name, value);
    }
    *(int64_t *)o->target = v;
    return 0;
}

/* Formats a byte count with the largest suffix that divides it exactly, as a user would type
 * it back ("64M" rather than "67108864"). */
static void format_size(char *buf, size_t len, uint64_t v)
{
    static const char suffix[] = {'G', 'M', 'K'};
    static const unsigned shift[] = {30, 20, 10};
    for (size_t i = 0; i < sizeof(suffix); i++) {
        if (v && (v & ((UINT64_C(1) << shift[i]) - 1)) == 0) {
            snprintf(buf, len, "%" PRIu64 "%c", v >> shift[i], suffix[i]);
            return;
        }
    }
    snprintf(buf, len, "%" PRIu64, v);
}

static int parse_size(const struct ef_option *o, const char *value, ef_error *err)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = 0;
    bool ok = isdigit((unsigned char)*value);
    if (ok) {
        v = strtoull(value, &end, 10);
        ok = errno == 0;
    }
    unsigned shift = 0;
    if (ok && *end) {
        switch (toupper((unsigned char)*end)) {
        case 'K':
            shift = 10;
            break;
        case 'M':
            shift = 20;
            break;
        case 'G':
            shift = 30;
            break;
        default:
            ok = false;
        }
        /* "64M", also "64MB" and "64MiB", as people write them. */
        if (ok) {
            const char *rest = end + 1;
            ok = *rest == '\0' || strcasecmp(rest, "B") == 0 || strcasecmp(rest, "iB") == 0;
        }
    }
    if (ok && shift && v > (UINT64_MAX >> shift))
        ok = false;
    if (!ok)
        return ef_error_set(err, -EINVAL,
                            "--%s: expected a size in bytes, optionally with a suffix K, M or "
                            "G (such as 512K, 64M or 2G), got '%s'",
                            o->name, value);
    uint64_t bytes = (uint64_t)v << shift;
    if ((o->min != 0 || o->max != 0) && (bytes < (uint64_t)o->min || bytes > (uint64_t)o->max)) {
        char lo[32], hi[32];
        format_size(lo, sizeof(lo), (uint64_t)o->min);
        format_size(hi, sizeof(hi), (uint64_t)o->max);
        return ef_error_set(err, -EINVAL, "--%s: expected a size between %s and %s, got '%s'",
                            o->name, lo, hi, value);
    }
    *(uint64_t *)o->target = bytes;
    return 0;
}

static int parse_bool(const struct ef_option *o, const char *value, ef_error *err)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(value, yes[i]) == 0) {
            *(bool *)o->target = true;
            return 0;
        }
        if (strcasecmp(value, no[i]) == 0) {
            *(bool *)o->target = false;
            return 0;
        }
    }
    return ef_error_set(err, -EINVAL, "--%s: expected true or false, got '%s'", o->name, value);
}

int ef_options_parse(const char *usage_line, const char *description, const struct ef_option *opts,
                     int argc, char **argv, int start, int *ret_next, ef_error *err)
{
    int i = start;
    for (; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            ef_options_usage(stdout, usage_line, description, opts);
            return 1;
        }
        if (strcmp(arg, "--") == 0) {
            /* The conventional end of flags: what follows is positional even if it starts with
             * dashes. */
            i++;
            break;
        }
        if (strncmp(arg, "--", 2) != 0)
            break;

        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const struct ef_option *o = find_option(opts, name, len);
        if (!o)
            return ef_error_set(err, -EINVAL, "unknown flag --%.*s; see --help", (int)len, name);

        if (o->type == EF_OPT_BOOL) {
            if (!eq) {
                *(bool *)o->target = true;
                continue;
            }
            int r = parse_bool(o, eq + 1, err);
            if (r < 0)
                return r;
            continue;
        }

        const char *value;
        if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            return ef_error_set(err, -EINVAL, "--%s: missing value (%s); see --help", o->name,
                                o->metavar ? o->metavar : "VALUE");
        }

        int r = 0;
        switch (o->type) {
        case EF_OPT_STRING:
            *(const char **)o->target = value;
            break;
        case EF_OPT_INT:
            r = parse_int(o, value, err);
            break;
        case EF_OPT_SIZE:
            r = parse_size(o, value, err);
            break;
        case EF_OPT_BOOL:
            break;
        }
        if (r < 0)
            return r;
    }
    if (ret_next)
        *ret_next = i;
    return 0;
}

static const char *default_metavar(enum ef_option_type type)
{
    switch (type) {
    case EF_OPT_INT:
        return "N";
    case EF_OPT_SIZE:
        return "SIZE";
    default:
        return "VALUE";
    }
}

void ef_options_usage(FILE *out, const char *usage_line, const char *description,
                      const struct ef_option *opts)
{
    fprintf(out, "Usage: %s\n", usage_line ? usage_line : "");
    if (description && *description)
        fprintf(out, "\n%s\n", description);
    fprintf(out, "\nOptions:\n");

    /* Align the help texts in one column after the longest "--name METAVAR". */
    size_t width = strlen("-h, --help");
    for (const struct ef_option *o = opts; o && o->name; o++) {
        size_t w = 2 + strlen(o->name);
        if (o->type != EF_OPT_BOOL)
            w += 1 + strlen(o->metavar ? o->metavar : default_metavar(o->type));
        if (w > width)
            width = w;
    }

    for (const struct ef_option *o = opts; o && o->name; o++) {
        char left[256];
        if (o->type == EF_OPT_BOOL)
            snprintf(left, sizeof(left), "--%s", o->name);
        else
            snprintf(left, sizeof(left), "--%s %s", o->name,
                     o->metavar ? o->metavar : default_metavar(o->type));
        fprintf(out, "  %-*s  %s", (int)width, left, o->help ? o->help : "");

        /* The range checked by the parser is shown with the default, so that the help text
         * never has to repeat (and drift from) the table: "(1 to 4096, default: 64)". */
        char range[80] = "", num[32];
        const char *def = NULL;
        bool ranged = o->min != 0 || o->max != 0;
        switch (o->type) {
        case EF_OPT_STRING:
            def = *(const char *const *)o->target; /* none when NULL */
            break;
        case EF_OPT_INT:
            if (ranged)
                snprintf(range, sizeof(range), "%" PRId64 " to %" PRId64, o->min, o->max);
            snprintf(num, sizeof(num), "%" PRId64, *(const int64_t *)o->target);
            def = num;
            break;
        case EF_OPT_SIZE:
            if (ranged) {
                char lo[32], hi[32];
                format_size(lo, sizeof(lo), (uint64_t)o->min);
                format_size(hi, sizeof(hi), (uint64_t)o->max);
                snprintf(range, sizeof(range), "%s to %s", lo, hi);
            }
            format_size(num, sizeof(num), *(const uint64_t *)o->target);
            def = num;
            break;
        case EF_OPT_BOOL:
            def = *(const bool *)o->target ? "true" : "false";
            break;
        }
        if (range[0] && def)
            fprintf(out, " (%s, default: %s)", range, def);
        else if (range[0])
            fprintf(out, " (%s)", range);
        else if (def)
            fprintf(out, " (default: %s)", def);
        fputc('\n', out);
    }
    fprintf(out, "  %-*s  %s\n", (int)width, "-h, --help", "Show this help and exit.");
}
