#define _GNU_SOURCE
#include "common/cpulist.h"

#include <errno.h>
#include <stdbool.h>

/* Appends the decimal `n` at buf[*pos]; false when it does not fit (with a NUL after it). */
static bool put_number(char *buf, size_t len, size_t *pos, int n)
{
    char digits[12];
    size_t k = 0;
    do {
        digits[k++] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0);
    if (*pos + k + 1 > len)
        return false;
    while (k > 0)
        buf[(*pos)++] = digits[--k];
    buf[*pos] = '\0';
    return true;
}

static bool put_char(char *buf, size_t len, size_t *pos, char c)
{
    if (*pos + 2 > len)
        return false;
    buf[(*pos)++] = c;
    buf[*pos] = '\0';
    return true;
}

int ef_cpulist_format(const cpu_set_t *set, char *buf, size_t len)
{
    if (len == 0)
        return -ENOSPC;
    size_t pos = 0;
    buf[0] = '\0';
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, set))
            continue;
        int last = cpu;
        while (last + 1 < CPU_SETSIZE && CPU_ISSET(last + 1, set))
            last++;
        if ((pos > 0 && !put_char(buf, len, &pos, ',')) || !put_number(buf, len, &pos, cpu))
            return -ENOSPC;
        if (last > cpu && (!put_char(buf, len, &pos, '-') || !put_number(buf, len, &pos, last)))
            return -ENOSPC;
        cpu = last;
    }
    return (int)pos;
}

/* Reads a CPU number at *p; -1 when there is none or it is out of range. */
static int read_cpu(const char **p)
{
    if (**p < '0' || **p > '9')
        return -1;
    long n = 0;
    while (**p >= '0' && **p <= '9') {
        n = n * 10 + (**p - '0');
        if (n >= CPU_SETSIZE)
            return -1;
        (*p)++;
    }
    return (int)n;
}

int ef_cpulist_parse(const char *text, cpu_set_t *ret, ef_error *err)
{
    CPU_ZERO(ret);
    const char *p = text;
    if (!*p)
        return ef_error_set(err, -EINVAL, "an empty CPU list");
    for (;;) {
        int first = read_cpu(&p);
        int last = first;
        if (first >= 0 && *p == '-') {
            p++;
            last = read_cpu(&p);
        }
        if (first < 0 || last < first)
            return ef_error_set(err, -EINVAL,
                                "CPU list \"%s\": expected CPU numbers below %d or ascending "
                                "ranges such as 0-3, separated by commas",
                                text, CPU_SETSIZE);
        for (int cpu = first; cpu <= last; cpu++)
            CPU_SET(cpu, ret);
        if (*p == '\0')
            return 0;
        if (*p++ != ',')
            return ef_error_set(err, -EINVAL, "CPU list \"%s\": unexpected \"%c\"", text, p[-1]);
    }
}
