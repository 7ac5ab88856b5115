/* The bridge network's addresses: CIDR parsing, the gateway, allocation order, exhaustion and
 * release. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "funclet/ipam.h"

static uint32_t ip(unsigned a, unsigned b, unsigned c, unsigned d)
{
    return (a << 24) | (b << 16) | (c << 8) | d;
}

static void test_parse(void **state)
{
    (void)state;
    uint32_t net;
    unsigned prefix;
    ef_error err;
    assert_int_equal(ef_ipam_parse_cidr("172.31.0.0/24", &net, &prefix, &err), 0);
    assert_int_equal(net, ip(172, 31, 0, 0));
    assert_int_equal(prefix, 24);
    assert_int_equal(ef_ipam_parse_cidr("10.200.0.0/16", &net, &prefix, &err), 0);
    assert_int_equal(prefix, 16);
    assert_int_equal(ef_ipam_parse_cidr("192.168.7.8/29", &net, &prefix, &err), 0);

    static const char *const bad[][2] = {
        {"172.31.0.0", "is not a CIDR"},
        {"172.31.0.0/", "no valid prefix length"},
        {"172.31.0.0/2x", "no valid prefix length"},
        {"172.31.0.0/124", "no valid prefix length"},
        {"172.31.0.0/8", "must be 16 to 29"},
        {"172.31.0.0/30", "must be 16 to 29"},
        {"172.31.0.1/24", "host bits set: the network is 172.31.0.0/24"},
        {"172.31.0/24", "is not an IPv4 address"},
        {"fd00::/64", "is not an IPv4 address"},
        {"", "is not a CIDR"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(ef_ipam_parse_cidr(bad[i][0], &net, &prefix, &err), -EINVAL);
        if (!strstr(err.msg, bad[i][1]))
            fail_msg("'%s': message '%s' does not contain '%s'", bad[i][0], err.msg, bad[i][1]);
    }
}

static void test_alloc_release(void **state)
{
    (void)state;
    struct ef_ipam ipam;
    ef_error err;
    assert_int_equal(ef_ipam_init(&ipam, "10.9.8.0/29", &err), 0);
    assert_int_equal(ef_ipam_gateway(&ipam), ip(10, 9, 8, 1));
    /* .0 network, .1 gateway, .7 broadcast: .2 to .6 for containers. */
    assert_int_equal(ef_ipam_capacity(&ipam), 5);
    uint32_t a[5], extra;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(ef_ipam_alloc(&ipam, &a[i]), 0);
        assert_int_equal(a[i], ip(10, 9, 8, 2 + (unsigned)i));
    }
    assert_int_equal(ipam.n_used, 5);
    assert_int_equal(ef_ipam_alloc(&ipam, &extra), -ENOSPC);

    /* A released address comes back, but only after the search has moved on. */
    ef_ipam_release(&ipam, a[1]);
    assert_int_equal(ipam.n_used, 4);
    assert_int_equal(ef_ipam_alloc(&ipam, &extra), 0);
    assert_int_equal(extra, a[1]);
    ef_ipam_release(&ipam, a[0]);
    ef_ipam_release(&ipam, a[3]);
    assert_int_equal(ef_ipam_alloc(&ipam, &extra), 0);
    assert_int_equal(extra, a[3]);
    assert_int_equal(ef_ipam_alloc(&ipam, &extra), 0);
    assert_int_equal(extra, a[0]);

    /* Addresses that were never handed out, or are not a container's, are ignored. */
    uint32_t used = ipam.n_used;
    ef_ipam_release(&ipam, ip(10, 9, 8, 1));
    ef_ipam_release(&ipam, ip(10, 9, 8, 7));
    ef_ipam_release(&ipam, ip(10, 9, 8, 0));
    ef_ipam_release(&ipam, ip(10, 9, 9, 2));
    ef_ipam_release(&ipam, ip(10, 9, 7, 255));
    assert_int_equal(ipam.n_used, used);
    assert_int_equal(ef_ipam_alloc(&ipam, &extra), -ENOSPC);
    ef_ipam_free(&ipam);
}

static void test_large_network(void **state)
{
    (void)state;
    struct ef_ipam ipam;
    ef_error err;
    assert_int_equal(ef_ipam_init(&ipam, "10.200.0.0/16", &err), 0);
    assert_int_equal(ef_ipam_capacity(&ipam), 65533);
    uint32_t a = 0;
    for (int i = 0; i < 300; i++)
        assert_int_equal(ef_ipam_alloc(&ipam, &a), 0);
    /* Past .255 of the first /24: the network is one range. */
    assert_int_equal(a, ip(10, 200, 1, 45));
    ef_ipam_free(&ipam);
}

static void test_format(void **state)
{
    (void)state;
    char buf[16];
    ef_ipam_format(ip(172, 31, 0, 254), buf, sizeof(buf));
    assert_string_equal(buf, "172.31.0.254");
    ef_ipam_format(ip(255, 255, 255, 255), buf, sizeof(buf));
    assert_string_equal(buf, "255.255.255.255");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_alloc_release),
        cmocka_unit_test(test_large_network),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
