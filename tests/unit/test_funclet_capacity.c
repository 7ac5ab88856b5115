/* The node's memory capacity and what a request may take of it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "funclet/capacity.h"

#define MB (1ull << 20)

static void test_capacity(void **state)
{
    (void)state;
    /* MemTotal alone, when the cgroup has no limit (v1 reports a huge number, v2 "max"). */
    assert_int_equal(ef_capacity_mb(8192 * MB, UINT64_MAX, 256 * MB), 7936);
    assert_int_equal(ef_capacity_mb(8192 * MB, 0, 256 * MB), 7936);
    /* funclet in a container (a pod): its own limit is lower than the node. */
    assert_int_equal(ef_capacity_mb(65536 * MB, 4096 * MB, 256 * MB), 3840);
    /* A limit above physical memory changes nothing. */
    assert_int_equal(ef_capacity_mb(4096 * MB, 65536 * MB, 0), 4096);
    /* The reserve may take everything. */
    assert_int_equal(ef_capacity_mb(512 * MB, UINT64_MAX, 512 * MB), 0);
    assert_int_equal(ef_capacity_mb(512 * MB, 256 * MB, 1024 * MB), 0);
    /* Partial megabytes round down. */
    assert_int_equal(ef_capacity_mb(1024 * MB + 12345, UINT64_MAX, 0), 1024);
}

static void test_allows(void **state)
{
    (void)state;
    /* 1000 MB capacity, 900 allocated of which this container holds 32 (cold). */
    assert_true(ef_capacity_allows(1000, 900, 32, 132));
    assert_false(ef_capacity_allows(1000, 900, 32, 133));
    /* A new container (current 0). */
    assert_true(ef_capacity_allows(1000, 900, 0, 100));
    assert_false(ef_capacity_allows(1000, 900, 0, 101));
    /* Shrinking always works, even over capacity (after a capacity change). */
    assert_true(ef_capacity_allows(1000, 1200, 512, 32));
    /* Already over capacity: growing does not. */
    assert_false(ef_capacity_allows(1000, 1200, 32, 64));
    /* No overflow with huge numbers. */
    assert_false(ef_capacity_allows(1000, 0, 0, UINT64_MAX));
    assert_true(ef_capacity_allows(UINT64_MAX, 10, 0, UINT64_MAX - 10));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_capacity),
        cmocka_unit_test(test_allows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
