/* The node's memory as funclet hands it out (pure arithmetic, unit-tested): its capacity is the
 * smaller of physical memory and funclet's own memory cgroup limit, minus --reserved-memory;
 * every container holds its current memory limit (the base size while cold, the function's
 * MemorySize while warm) against it, and no request may make the sum exceed it. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* Capacity in MiB from MemTotal and the cgroup limit (bytes; UINT64_MAX or 0 when unlimited or
 * unknown) minus `reserved_bytes`; 0 when the reserve takes everything. */
uint64_t ef_capacity_mb(uint64_t mem_total_bytes, uint64_t cgroup_limit_bytes,
                        uint64_t reserved_bytes);

/* Whether one container may go from `current_mb` to `wanted_mb` while `allocated_mb` (which
 * includes `current_mb`) is handed out of `capacity_mb`. Shrinking is always allowed. */
bool ef_capacity_allows(uint64_t capacity_mb, uint64_t allocated_mb, uint64_t current_mb,
                        uint64_t wanted_mb);
