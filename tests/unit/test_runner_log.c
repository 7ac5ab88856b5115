/* The runner's log capture on literal bytes: the 64 KiB ring, "since the invocation was handed
 * out", and the UTF-8 cleaning that lets any output travel in a JSON string. Also the params of
 * `invoke`. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "runner/invocations.h"
#include "runner/log_capture.h"

static void test_ring_since_mark(void **state)
{
    (void)state;
    static struct ef_log_ring ring;
    memset(&ring, 0, sizeof(ring));
    ef_log_ring_append(&ring, "before\n", 7);
    uint64_t mark = ring.total;
    ef_log_ring_append(&ring, "during ", 7);
    ef_log_ring_append(&ring, "the invocation\n", 15);
    char *s = ef_log_ring_since(&ring, mark);
    assert_string_equal(s, "during the invocation\n");
    free(s);
    /* Nothing new since the end. */
    s = ef_log_ring_since(&ring, ring.total);
    assert_string_equal(s, "");
    free(s);
}

static void test_ring_keeps_the_last_bytes(void **state)
{
    (void)state;
    static struct ef_log_ring ring;
    memset(&ring, 0, sizeof(ring));
    /* Numbered bytes in odd-sized pieces, wrapping the ring several times. */
    static char all[EF_LOG_TAIL_MAX * 2 + 1000];
    for (size_t i = 0; i < sizeof(all); i++)
        all[i] = (char)('a' + i % 26);
    for (size_t off = 0; off < sizeof(all);) {
        size_t n = off % 7 == 0 ? 1234 : 77;
        if (off + n > sizeof(all))
            n = sizeof(all) - off;
        ef_log_ring_append(&ring, all + off, n);
        off += n;
    }
    assert_int_equal(ring.total, sizeof(all));
    char *s = ef_log_ring_since(&ring, 0);
    assert_int_equal(strlen(s), EF_LOG_TAIL_MAX);
    assert_memory_equal(s, all + sizeof(all) - EF_LOG_TAIL_MAX, EF_LOG_TAIL_MAX);
    free(s);
    /* One append larger than the ring. */
    static char big[EF_LOG_TAIL_MAX + 5000];
    memset(big, 'x', sizeof(big));
    big[sizeof(big) - 1] = 'E';
    ef_log_ring_append(&ring, big, sizeof(big));
    s = ef_log_ring_since(&ring, 0);
    assert_int_equal(strlen(s), EF_LOG_TAIL_MAX);
    assert_int_equal(s[EF_LOG_TAIL_MAX - 1], 'E');
    free(s);
}

static void test_tail_does_not_start_mid_character(void **state)
{
    (void)state;
    static struct ef_log_ring ring;
    memset(&ring, 0, sizeof(ring));
    /* "é" is two bytes: more than the ring's worth of them leaves half a character at the
     * tail's front. */
    for (unsigned i = 0; i < EF_LOG_TAIL_MAX / 2 + 50; i++)
        ef_log_ring_append(&ring, "\xc3\xa9", 2);
    char *s = ef_log_ring_since(&ring, 0);
    assert_true(ef_utf8_is_clean(s, strlen(s)));
    assert_int_equal((unsigned char)s[0], 0xc3);
    assert_int_equal(strlen(s), EF_LOG_TAIL_MAX);
    free(s);
    ef_log_ring_append(&ring, "x", 1); /* now the tail starts on a continuation byte */
    s = ef_log_ring_since(&ring, 0);
    assert_int_equal((unsigned char)s[0], 0xc3);
    assert_int_equal(strlen(s), EF_LOG_TAIL_MAX - 1);
    free(s);
}

static void test_utf8_sanitize(void **state)
{
    (void)state;
    struct {
        const char *in;
        size_t len;
        const char *out;
    } cases[] = {
        {"plain", 5, "plain"},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14,
         "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
        {"a\0b", 3,
         "a\xef\xbf\xbd"
         "b"},                                                       /* NUL */
        {"\xff", 1, "\xef\xbf\xbd"},                                 /* never valid */
        {"\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd"},                 /* overlong '/' */
        {"\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* surrogate */
        {"\xf4\x90\x80\x80", 4,
         "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* > U+10FFFF */
        {"\xe2\x82", 2, "\xef\xbf\xbd\xef\xbf\xbd"},          /* truncated */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *s = ef_utf8_sanitize(cases[i].in, cases[i].len, false);
        assert_string_equal(s, cases[i].out);
        assert_true(ef_utf8_is_clean(s, strlen(s)));
        assert_int_equal(ef_utf8_is_clean(cases[i].in, cases[i].len),
                         strcmp(cases[i].in, cases[i].out) == 0 &&
                             strlen(cases[i].in) == cases[i].len);
        /* Whatever it was, it now survives a JSON round trip unchanged. */
        cJSON *j = cJSON_CreateString(s);
        char *text = cJSON_PrintUnformatted(j);
        cJSON *back = cJSON_Parse(text);
        assert_string_equal(back->valuestring, s);
        cJSON_Delete(back);
        free(text);
        cJSON_Delete(j);
        free(s);
    }
}

static int parse_invoke(const char *json, struct ef_invocation **inv, ef_error *err)
{
    cJSON *p = cJSON_Parse(json);
    assert_non_null(p);
    int r = ef_invocation_parse(p, 1800000000000LL, "arn:default", inv, err);
    cJSON_Delete(p);
    return r;
}

static void test_invoke_params(void **state)
{
    (void)state;
    struct ef_invocation *inv = NULL;
    ef_error err = {0};
    assert_int_equal(parse_invoke("{\"request_id\":\"0f1e-2d3c\",\"payload\":\"{\\\"a\\\":1}\","
                                  "\"deadline_ms\":1700000000123,"
                                  "\"invoked_function_arn\":\"arn:aws:lambda:x\"}",
                                  &inv, &err),
                     0);
    assert_string_equal(inv->request_id, "0f1e-2d3c");
    assert_string_equal(inv->payload, "{\"a\":1}");
    assert_int_equal(inv->payload_len, 7);
    assert_true(inv->deadline_ms == 1700000000123LL);
    assert_string_equal(inv->arn, "arn:aws:lambda:x");
    ef_invocation_free(inv);

    inv = NULL;
    assert_int_equal(parse_invoke("{\"request_id\":\"r\",\"payload\":\"\"}", &inv, &err), 0);
    assert_true(inv->deadline_ms == 1800000000000LL);
    assert_string_equal(inv->arn, "arn:default");
    ef_invocation_free(inv);

    const char *bad[][2] = {
        {"{\"payload\":\"{}\"}", "request_id"},
        {"{\"request_id\":\"\",\"payload\":\"{}\"}", "request_id"},
        {"{\"request_id\":\"a/b\",\"payload\":\"{}\"}", "request_id"},
        {"{\"request_id\":\"a\\r\\nX: y\",\"payload\":\"{}\"}", "request_id"},
        {"{\"request_id\":\"r\"}", "payload"},
        {"{\"request_id\":\"r\",\"payload\":{}}", "payload"},
        {"{\"request_id\":\"r\",\"payload\":\"{}\",\"deadline_ms\":\"soon\"}", "deadline_ms"},
        {"{\"request_id\":\"r\",\"payload\":\"{}\",\"deadline_ms\":1700000000}", "deadline_ms"},
        {"{\"request_id\":\"r\",\"payload\":\"{}\",\"invoked_function_arn\":\"a b\"}",
         "invoked_function_arn"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        inv = NULL;
        assert_int_equal(parse_invoke(bad[i][0], &inv, &err), -EINVAL);
        assert_null(inv);
        if (!strstr(err.msg, bad[i][1]))
            fail_msg("'%s': message '%s' does not name %s", bad[i][0], err.msg, bad[i][1]);
    }
    char id[EF_REQUEST_ID_MAX + 2];
    memset(id, 'a', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    assert_false(ef_request_id_valid(id, strlen(id)));
    assert_true(ef_request_id_valid(id, EF_REQUEST_ID_MAX));
}

static void test_payload_limit(void **state)
{
    (void)state;
    size_t n = EF_PAYLOAD_MAX + 1;
    char *big = malloc(n + 1);
    memset(big, 'x', n);
    big[n] = '\0';
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "request_id", "r");
    cJSON_AddStringToObject(p, "payload", big);
    struct ef_invocation *inv = NULL;
    ef_error err = {0};
    assert_int_equal(ef_invocation_parse(p, 0, "arn", &inv, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "payload"));
    big[n - 1] = '\0';
    cJSON_ReplaceItemInObject(p, "payload", cJSON_CreateString(big));
    assert_int_equal(ef_invocation_parse(p, 0, "arn", &inv, &err), 0);
    ef_invocation_free(inv);
    cJSON_Delete(p);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_since_mark),
        cmocka_unit_test(test_ring_keeps_the_last_bytes),
        cmocka_unit_test(test_tail_does_not_start_mid_character),
        cmocka_unit_test(test_utf8_sanitize),
        cmocka_unit_test(test_invoke_params),
        cmocka_unit_test(test_payload_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
