/* CPU sets as lists ("0-3,6"), the notation of /sys/devices/system/cpu/online and taskset -c:
 * how funclet hands a runner the CPUs it may use (funclet/sandbox.c, runner init --cpus).
 * Includers define _GNU_SOURCE, for cpu_set_t. */
#pragma once

#include <sched.h>
#include <stddef.h>

#include "common/error.h"

/* The longest list a cpu_set_t can need: every other CPU of CPU_SETSIZE, "0,2,4,...". */
#define EF_CPULIST_MAX (CPU_SETSIZE * 5)

/* Writes `set` as a list into buf (ranges of consecutive CPUs, comma-separated). Allocates
 * nothing and calls no library function that could, so a child that shares funclet's memory
 * may use it. Returns the length, or -ENOSPC when `len` is too small; an empty set is "". */
int ef_cpulist_format(const cpu_set_t *set, char *buf, size_t len);

/* Parses a list ("0-3,6"; no spaces, CPUs below CPU_SETSIZE, ranges ascending) into *ret.
 * An empty list or any other text is -EINVAL with a message naming the problem. */
int ef_cpulist_parse(const char *text, cpu_set_t *ret, ef_error *err);
