/* The runner's log capture on literal bytes: the 64 KiB ring, "since the invocation was handed
 * out" (with the line that tells what a wrapped ring dropped), and the UTF-8 cleaning that lets
 * any output travel in a JSON string. Also the params of `invoke`, the rule that sends a body as
 * "payload" or "payload_b64" and its base64, and the percent-decoding of a request id in a
 * Runtime API path. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "rapi/invocations.h"
#include "rapi/log_capture.h"
#include "rapi/payload.h"
#include "rapi/runtime_api.h"

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

static void test_excerpt_says_what_was_dropped(void **state)
{
    (void)state;
    static struct ef_log_ring ring;
    memset(&ring, 0, sizeof(ring));
    /* Within the ring: the same as ef_log_ring_since, no note. */
    ef_log_ring_append(&ring, "idle\n", 5);
    char *s = ef_log_ring_excerpt(&ring, 0);
    assert_string_equal(s, "idle\n");
    free(s);
    /* 100000 bytes since the mark: the note says how many of them are gone, and the note and
     * the tail together fit in the ring's size. */
    static char big[100000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)('a' + i % 26);
    ef_log_ring_append(&ring, big, sizeof(big) - 4);
    ef_log_ring_append(&ring, "END\n", 4);
    s = ef_log_ring_excerpt(&ring, 5);
    size_t len = strlen(s);
    assert_true(len <= EF_LOG_TAIL_MAX);
    unsigned long long dropped = 0;
    assert_int_equal(sscanf(s,
                            "[easyfaas] %llu bytes of output before this line were dropped: a "
                            "log keeps the last 64 KiB\n",
                            &dropped),
                     1);
    const char *tail = strchr(s, '\n') + 1;
    /* What is dropped and what is kept add up to what was written. */
    assert_int_equal(dropped + strlen(tail), sizeof(big));
    assert_memory_equal(tail, big + dropped, strlen(tail) - 4);
    assert_string_equal(s + len - 4, "END\n");
    free(s);
}

static void test_payload_rule_and_base64(void **state)
{
    (void)state;
    /* Text: UTF-8 with tabs, newlines and carriage returns. */
    assert_true(ef_payload_is_text("", 0));
    assert_true(ef_payload_is_text("{\"a\":\"h\xc3\xa9\"}\t\r\n", 14));
    /* Not text: another control byte, a NUL, invalid UTF-8, a surrogate. */
    assert_false(ef_payload_is_text("a\x1b[0m", 5));
    assert_false(ef_payload_is_text("a\0b", 3));
    assert_false(ef_payload_is_text("\x7f\x01", 2));
    assert_false(ef_payload_is_text("\xff", 1));
    assert_false(ef_payload_is_text("\xed\xa0\x80", 3));
    assert_true(ef_payload_is_text("\x7f", 1));

    /* RFC 4648's test vectors, and every byte value. */
    const char *vectors[][2] = {{"", ""},
                                {"f", "Zg=="},
                                {"fo", "Zm8="},
                                {"foo", "Zm9v"},
                                {"foob", "Zm9vYg=="},
                                {"fooba", "Zm9vYmE="},
                                {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        char *b = ef_payload_base64(vectors[i][0], strlen(vectors[i][0]));
        assert_string_equal(b, vectors[i][1]);
        free(b);
    }
    char *b = ef_payload_base64("\x00\xff\xfe\x10", 4);
    assert_string_equal(b, "AP/+EA==");
    free(b);

    /* In an answer: one of the two members, never both. */
    cJSON *a = cJSON_CreateObject();
    char *keep = (char *)"x";
    assert_true(ef_payload_add(a, "\"ok\"", 4, &keep));
    assert_null(keep);
    assert_string_equal(cJSON_GetObjectItem(a, "payload")->valuestring, "\"ok\"");
    assert_null(cJSON_GetObjectItem(a, "payload_b64"));
    cJSON_Delete(a);
    a = cJSON_CreateObject();
    assert_true(ef_payload_add(a, "\x01\xff", 2, &keep));
    assert_non_null(keep);
    assert_string_equal(cJSON_GetObjectItem(a, "payload_b64")->valuestring, "Af8=");
    assert_null(cJSON_GetObjectItem(a, "payload"));
    cJSON_Delete(a);
    free(keep);
}

static void test_decode_request_id(void **state)
{
    (void)state;
    char id[EF_REQUEST_ID_MAX + 1];
    size_t len = 0;
    ef_error err = {0};
    const char *ok[][2] = {
        {"b6c2%2D41a0", "b6c2-41a0"},
        {"b6c2%2d41a0", "b6c2-41a0"},
        {"plain-id_1.2:3", "plain-id_1.2:3"},
        {"%41%42", "AB"},
        {"%3A", ":"},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_int_equal(
            ef_runtime_api_decode_id(ok[i][0], strlen(ok[i][0]), id, sizeof(id), &len, &err), 0);
        assert_string_equal(id, ok[i][1]);
        assert_int_equal(len, strlen(ok[i][1]));
    }
    const char *bad[] = {"a%2",   "a%",  "%zz1", "a%g0",   "a%2F", "a%00b",
                         "a%20b", "a b", "%25",  "%C3%A9", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        len = 99;
        assert_int_equal(
            ef_runtime_api_decode_id(bad[i], strlen(bad[i]), id, sizeof(id), &len, &err), -EINVAL);
        assert_int_equal(len, 99);
        assert_non_null(strstr(err.msg, "request id"));
    }
    /* The length limit applies to the decoded id: 128 characters, however they are escaped. */
    char seg[3 * EF_REQUEST_ID_MAX + 4];
    for (int i = 0; i < EF_REQUEST_ID_MAX; i++)
        memcpy(seg + 3 * i, "%61", 3);
    assert_int_equal(
        ef_runtime_api_decode_id(seg, 3 * EF_REQUEST_ID_MAX, id, sizeof(id), &len, &err), 0);
    assert_int_equal(len, EF_REQUEST_ID_MAX);
    memcpy(seg + 3 * EF_REQUEST_ID_MAX, "a", 1);
    assert_int_equal(
        ef_runtime_api_decode_id(seg, 3 * EF_REQUEST_ID_MAX + 1, id, sizeof(id), &len, &err),
        -EINVAL);
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
        cmocka_unit_test(test_excerpt_says_what_was_dropped),
        cmocka_unit_test(test_payload_rule_and_base64),
        cmocka_unit_test(test_decode_request_id),
        cmocka_unit_test(test_utf8_sanitize),
        cmocka_unit_test(test_invoke_params),
        cmocka_unit_test(test_payload_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
