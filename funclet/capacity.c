#include "funclet/capacity.h"

uint64_t ef_capacity_mb(uint64_t mem_total_bytes, uint64_t cgroup_limit_bytes,
                        uint64_t reserved_bytes)
{
    uint64_t total = mem_total_bytes;
    if (cgroup_limit_bytes != 0 && cgroup_limit_bytes < total)
        total = cgroup_limit_bytes;
    if (reserved_bytes >= total)
        return 0;
    return (total - reserved_bytes) >> 20;
}

bool ef_capacity_allows(uint64_t capacity_mb, uint64_t allocated_mb, uint64_t current_mb,
                        uint64_t wanted_mb)
{
    if (wanted_mb <= current_mb)
        return true;
    uint64_t others = allocated_mb >= current_mb ? allocated_mb - current_mb : 0;
    return others <= capacity_mb && wanted_mb <= capacity_mb - others;
}
