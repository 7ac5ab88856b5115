/* Pure helpers of the cgroup backends: parsing /proc/self/cgroup and the kernel's interface
 * files, and converting limits into the values the files take. No system calls, so they are
 * unit-tested on literal strings. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

/* The CFS period funclet uses for a CPU quota (100 ms, the kernel's default). */
#define EF_CGROUP_CPU_PERIOD_US 100000

/* Finds the cgroup path of a hierarchy in the text of /proc/<pid>/cgroup ("ID:CONTROLLERS:PATH"
 * lines). `controller` NULL selects the unified (v2) line "0::PATH"; otherwise the v1 line whose
 * comma-separated controller list holds `controller` ("memory", "name=systemd"). On success
 * *ret_path is a malloc'd absolute path ("/" for the root). -ENOENT when no line matches,
 * -EINVAL when a line is malformed or the path is not absolute or contains "..". */
int ef_proc_cgroup_path(const char *text, const char *controller, char **ret_path, ef_error *err);

/* Reads the value of `key` in a flat-keyed interface file ("key value" per line, as
 * memory.events, memory.oom_control and cgroup.events are). -ENOENT when the key is absent,
 * -EINVAL when its value is not a number. */
int ef_cgroup_keyed_value(const char *text, const char *key, uint64_t *ret);

/* True when the space-separated list (cgroup.controllers, cgroup.subtree_control) holds
 * `word`. */
bool ef_cgroup_list_has(const char *text, const char *word);

/* The value written to memory.max, pids.max and the like: the number, or "max" for
 * UINT64_MAX. */
void ef_cgroup_format_max(uint64_t v, char *buf, size_t len);

/* The value of cpu.max: "QUOTA PERIOD" for `millicores` (0 = "max PERIOD"). */
void ef_cgroup_format_cpu_max(uint32_t millicores, char *buf, size_t len);

/* The v1 cpu.cfs_quota_us for `millicores`: -1 for none. */
int64_t ef_cgroup_cpu_quota_us(uint32_t millicores);

/* The v1 cpu.shares (2-262144) equal to a v2 cpu.weight (1-10000), by the conversion runc and
 * crun use, so that both backends divide CPU time alike. */
uint64_t ef_cgroup_weight_to_shares(uint32_t weight);

/* The default cpu.weight of a container of `memory_mb`: proportional to its memory (100, the
 * kernel's default, per GiB), clamped to 1-10000, so that CPU time is shared as memory is. */
uint32_t ef_cgroup_weight_for_memory(uint64_t memory_mb);
