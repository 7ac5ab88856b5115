/* The user namespace ranges (funclet/userns.c): the --userns modes, slot allocation (lowest free
 * first, exhaustion, reuse, across bitmap words), the host ids of a slot and the uid_map text.
 * No root needed. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "funclet/userns.h"

static void test_modes(void **state)
{
    (void)state;
    enum ef_userns_mode m = EF_USERNS_OFF;
    assert_int_equal(ef_userns_parse_mode("auto", &m), 0);
    assert_int_equal(m, EF_USERNS_AUTO);
    assert_int_equal(ef_userns_parse_mode("on", &m), 0);
    assert_int_equal(m, EF_USERNS_ON);
    assert_int_equal(ef_userns_parse_mode("off", &m), 0);
    assert_int_equal(m, EF_USERNS_OFF);
    static const char *const bad[] = {"", "ON", "yes", "auto ", "1", "of"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        m = EF_USERNS_ON;
        assert_int_equal(ef_userns_parse_mode(bad[i], &m), -EINVAL);
        assert_int_equal(m, EF_USERNS_ON); /* untouched on failure */
    }
}

static void test_slots_order_and_reuse(void **state)
{
    (void)state;
    struct ef_userns_slots s;
    ef_error err;
    assert_int_equal(ef_userns_slots_init(&s, EF_USERNS_BASE_DEFAULT, 3, &err), 0);
    assert_int_equal(ef_userns_slot_take(&s), 0);
    assert_int_equal(ef_userns_slot_take(&s), 1);
    assert_int_equal(ef_userns_slot_take(&s), 2);
    assert_int_equal(ef_userns_slot_take(&s), -ENOSPC);
    assert_true(ef_userns_slot_taken(&s, 1));

    /* A destroyed container's range goes to the next one; the lowest free comes first. */
    ef_userns_slot_put(&s, 1);
    assert_false(ef_userns_slot_taken(&s, 1));
    ef_userns_slot_put(&s, 0);
    assert_int_equal(ef_userns_slot_take(&s), 0);
    assert_int_equal(ef_userns_slot_take(&s), 1);
    assert_int_equal(ef_userns_slot_take(&s), -ENOSPC);

    /* Out of range or already free: ignored, nothing else changes. */
    ef_userns_slot_put(&s, -1);
    ef_userns_slot_put(&s, 3);
    ef_userns_slot_put(&s, 1000);
    assert_false(ef_userns_slot_taken(&s, -1));
    assert_false(ef_userns_slot_taken(&s, 3));
    assert_int_equal(ef_userns_slot_take(&s), -ENOSPC);
    ef_userns_slot_put(&s, 2);
    ef_userns_slot_put(&s, 2);
    assert_int_equal(ef_userns_slot_take(&s), 2);
    ef_userns_slots_free(&s);
    assert_null(s.bits);
}

/* More slots than one 64-bit word, and a count that is not a multiple of 64: the spare bits of
 * the last word are never handed out. */
static void test_slots_across_words(void **state)
{
    (void)state;
    struct ef_userns_slots s;
    ef_error err;
    assert_int_equal(ef_userns_slots_init(&s, 100000, 130, &err), 0);
    for (int i = 0; i < 130; i++)
        assert_int_equal(ef_userns_slot_take(&s), i);
    assert_int_equal(ef_userns_slot_take(&s), -ENOSPC);
    ef_userns_slot_put(&s, 64);
    ef_userns_slot_put(&s, 127);
    ef_userns_slot_put(&s, 129);
    assert_int_equal(ef_userns_slot_take(&s), 64);
    assert_int_equal(ef_userns_slot_take(&s), 127);
    assert_int_equal(ef_userns_slot_take(&s), 129);
    assert_int_equal(ef_userns_slot_take(&s), -ENOSPC);
    ef_userns_slots_free(&s);
}

static void test_host_ids(void **state)
{
    (void)state;
    struct ef_userns_slots s;
    ef_error err;
    assert_int_equal(ef_userns_slots_init(&s, 1000000, 4096, &err), 0);
    assert_int_equal(ef_userns_slot_host_id(&s, 0), 1000000);
    assert_int_equal(ef_userns_slot_host_id(&s, 1), 1000000 + 65536);
    assert_int_equal(ef_userns_slot_host_id(&s, 4095), 1000000u + 4095u * 65536u);
    /* Consecutive slots are disjoint and adjacent. */
    for (int i = 0; i + 1 < 4096; i += 97)
        assert_int_equal(ef_userns_slot_host_id(&s, i + 1) - ef_userns_slot_host_id(&s, i),
                         EF_USERNS_RANGE);
    ef_userns_slots_free(&s);
}

static void test_slots_bounds(void **state)
{
    (void)state;
    struct ef_userns_slots s;
    ef_error err;
    assert_int_equal(ef_userns_slots_init(&s, 0, 4, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "--userns-base must not be 0"));
    /* The last range must end at 4294967294 at the latest. */
    uint32_t last_fit = 4294967295u - 2u * EF_USERNS_RANGE;
    assert_int_equal(ef_userns_slots_init(&s, last_fit, 2, &err), 0);
    assert_int_equal(ef_userns_slot_host_id(&s, 1) + EF_USERNS_RANGE - 1, 4294967294u);
    ef_userns_slots_free(&s);
    assert_int_equal(ef_userns_slots_init(&s, last_fit + 1, 2, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "leaves no room for 2 ranges"));
    assert_int_equal(ef_userns_slots_init(&s, 1000000, 0, &err), -EINVAL);
}

static void test_map_text(void **state)
{
    (void)state;
    char buf[64];
    assert_int_equal(ef_userns_map_text(1000000, buf, sizeof(buf)), 16);
    assert_string_equal(buf, "0 1000000 65536\n");
    assert_int_equal(ef_userns_map_text(1065536, buf, sizeof(buf)), 16);
    assert_string_equal(buf, "0 1065536 65536\n");
    /* Never the identity map of the host, whatever the base. */
    assert_int_equal(ef_userns_map_text(1, buf, sizeof(buf)), 10);
    assert_string_equal(buf, "0 1 65536\n");
    assert_int_equal(ef_userns_map_text(4294967295u - EF_USERNS_RANGE, buf, sizeof(buf)), 19);
    assert_string_equal(buf, "0 4294901759 65536\n");
    assert_int_equal(ef_userns_map_text(4294967295u - EF_USERNS_RANGE + 1, buf, sizeof(buf)),
                     -ERANGE);
    /* Too small a buffer is an error, not a truncated map. */
    assert_int_equal(ef_userns_map_text(1000000, buf, 15), -ENAMETOOLONG);
    assert_int_equal(ef_userns_map_text(1000000, buf, 16), -ENAMETOOLONG);
    assert_int_equal(ef_userns_map_text(1000000, buf, 17), 16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_modes),
        cmocka_unit_test(test_slots_order_and_reuse),
        cmocka_unit_test(test_slots_across_words),
        cmocka_unit_test(test_host_ids),
        cmocka_unit_test(test_slots_bounds),
        cmocka_unit_test(test_map_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
