/* Request ids: well-formed version 4 UUIDs, and no two alike across more ids than one draw of
 * random bytes serves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "controller/request_id.h"

#define COUNT 5000

static int compare(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_format_and_uniqueness(void **state)
{
    (void)state;
    char(*ids)[EF_REQUEST_ID_LEN + 1] = calloc(COUNT, sizeof(*ids));
    assert_non_null(ids);
    for (size_t i = 0; i < COUNT; i++) {
        assert_int_equal(ef_request_id_new(ids[i]), 0);
        const char *id = ids[i];
        assert_int_equal(strlen(id), EF_REQUEST_ID_LEN);
        for (size_t j = 0; j < EF_REQUEST_ID_LEN; j++) {
            if (j == 8 || j == 13 || j == 18 || j == 23)
                assert_int_equal(id[j], '-');
            else
                assert_non_null(strchr("0123456789abcdef", id[j]));
        }
        assert_int_equal(id[14], '4');           /* version 4 */
        assert_non_null(strchr("89ab", id[19])); /* RFC 4122 variant */
    }
    qsort(ids, COUNT, sizeof(*ids), compare);
    for (size_t i = 1; i < COUNT; i++)
        assert_string_not_equal(ids[i - 1], ids[i]);
    free(ids);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_and_uniqueness),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
