/* Frame decoder tests on literal byte strings: no I/O involved. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/rpc_frame.h"

/* Appends one frame for `payload` to `out` at *pos. */
static void put_frame(char *out, size_t *pos, const char *payload)
{
    uint8_t h[EF_RPC_FRAME_HEADER];
    size_t n = strlen(payload);
    ef_frame_header(h, (uint32_t)n);
    memcpy(out + *pos, h, sizeof(h));
    memcpy(out + *pos + sizeof(h), payload, n);
    *pos += sizeof(h) + n;
}

static void expect_frame(struct ef_frame_decoder *d, const char *want)
{
    char *msg = NULL;
    size_t len = 0;
    assert_int_equal(ef_frame_decoder_next(d, &msg, &len), 1);
    assert_int_equal(len, strlen(want));
    assert_string_equal(msg, want);
    free(msg);
}

static void expect_none(struct ef_frame_decoder *d)
{
    char *msg = NULL;
    size_t len = 0;
    assert_int_equal(ef_frame_decoder_next(d, &msg, &len), 0);
    assert_null(msg);
}

static void test_header_round_trip(void **state)
{
    (void)state;
    uint8_t h[EF_RPC_FRAME_HEADER];
    ef_frame_header(h, 0x01020304u);
    assert_int_equal(h[0], 1);
    assert_int_equal(h[1], 2);
    assert_int_equal(h[2], 3);
    assert_int_equal(h[3], 4);
    ef_frame_header(h, 0xfffffffeu);
    assert_int_equal(h[0], 0xff);
    assert_int_equal(h[3], 0xfe);

    /* The decoder reads what the header helper writes. */
    struct ef_frame_decoder d;
    ef_frame_decoder_init(&d, 0);
    assert_int_equal(d.max_message, EF_RPC_DEFAULT_MAX_MESSAGE);
    char buf[64];
    size_t pos = 0;
    put_frame(buf, &pos, "{\"a\":1}");
    assert_int_equal(ef_frame_decoder_feed(&d, buf, pos), 0);
    expect_frame(&d, "{\"a\":1}");
    expect_none(&d);
    ef_frame_decoder_free(&d);
}

static void test_split_byte_by_byte(void **state)
{
    (void)state;
    struct ef_frame_decoder d;
    ef_frame_decoder_init(&d, 1024);
    char buf[256];
    size_t pos = 0;
    put_frame(buf, &pos, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"}");
    put_frame(buf, &pos, "[]");
    int frames = 0;
    for (size_t i = 0; i < pos; i++) {
        assert_int_equal(ef_frame_decoder_feed(&d, buf + i, 1), 0);
        char *msg = NULL;
        size_t len;
        int r = ef_frame_decoder_next(&d, &msg, &len);
        assert_true(r == 0 || r == 1);
        if (r == 1) {
            frames++;
            /* A frame is complete exactly at its last byte. */
            if (frames == 1) {
                assert_int_equal(i,
                                 4 + strlen("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"}") - 1);
                assert_string_equal(msg, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"}");
            } else {
                assert_int_equal(i, pos - 1);
                assert_string_equal(msg, "[]");
            }
            free(msg);
        }
    }
    assert_int_equal(frames, 2);
    expect_none(&d);
    ef_frame_decoder_free(&d);
}

static void test_coalesced(void **state)
{
    (void)state;
    struct ef_frame_decoder d;
    ef_frame_decoder_init(&d, 1024);
    char buf[256];
    size_t pos = 0;
    put_frame(buf, &pos, "1");
    put_frame(buf, &pos, "\"two\"");
    put_frame(buf, &pos, "{\"three\":3}");
    /* Plus the first half of a fourth frame. */
    size_t before = pos;
    put_frame(buf, &pos, "{\"four\":4}");
    assert_int_equal(ef_frame_decoder_feed(&d, buf, before + 6), 0);
    expect_frame(&d, "1");
    expect_frame(&d, "\"two\"");
    expect_frame(&d, "{\"three\":3}");
    expect_none(&d);
    assert_int_equal(ef_frame_decoder_feed(&d, buf + before + 6, pos - before - 6), 0);
    expect_frame(&d, "{\"four\":4}");
    expect_none(&d);
    ef_frame_decoder_free(&d);
}

static void test_many_frames_reuse_buffer(void **state)
{
    (void)state;
    /* Thousands of small frames through one decoder: each comes out intact and in order. */
    struct ef_frame_decoder d;
    ef_frame_decoder_init(&d, 64);
    for (int round = 0; round < 50; round++) {
        char buf[4096];
        size_t pos = 0;
        char payload[32];
        for (int i = 0; i < 100; i++) {
            snprintf(payload, sizeof(payload), "%d", round * 100 + i);
            put_frame(buf, &pos, payload);
        }
        /* Feed in odd-sized pieces. */
        for (size_t off = 0; off < pos; off += 37) {
            size_t n = pos - off < 37 ? pos - off : 37;
            assert_int_equal(ef_frame_decoder_feed(&d, buf + off, n), 0);
        }
        for (int i = 0; i < 100; i++) {
            snprintf(payload, sizeof(payload), "%d", round * 100 + i);
            expect_frame(&d, payload);
        }
        expect_none(&d);
    }
    ef_frame_decoder_free(&d);
}

static void test_oversize(void **state)
{
    (void)state;
    struct ef_frame_decoder d;
    ef_frame_decoder_init(&d, 100);
    uint8_t h[EF_RPC_FRAME_HEADER];
    ef_frame_header(h, 101);
    /* Three header bytes are not enough to judge. */
    assert_int_equal(ef_frame_decoder_feed(&d, (const char *)h, 3), 0);
    assert_int_equal(ef_frame_decoder_feed(&d, (const char *)h + 3, 1), -EMSGSIZE);
    char *msg = NULL;
    size_t len;
    assert_int_equal(ef_frame_decoder_next(&d, &msg, &len), -EMSGSIZE);
    assert_null(msg);
    ef_frame_decoder_free(&d);

    /* Exactly the maximum is fine. */
    ef_frame_decoder_init(&d, 100);
    char big[4 + 100];
    ef_frame_header((uint8_t *)big, 100);
    memset(big + 4, 'x', 100);
    assert_int_equal(ef_frame_decoder_feed(&d, big, sizeof(big)), 0);
    assert_int_equal(ef_frame_decoder_next(&d, &msg, &len), 1);
    assert_int_equal(len, 100);
    assert_int_equal(strlen(msg), 100);
    free(msg);
    ef_frame_decoder_free(&d);

    /* A huge declared length (a hostile peer) is refused before any of it is buffered. */
    ef_frame_decoder_init(&d, 0);
    ef_frame_header(h, 0xffffffffu);
    assert_int_equal(ef_frame_decoder_feed(&d, (const char *)h, 4), -EMSGSIZE);
    ef_frame_decoder_free(&d);

    /* An oversize frame after a good one shows up when it becomes the next frame. */
    ef_frame_decoder_init(&d, 100);
    char buf[64];
    size_t pos = 0;
    put_frame(buf, &pos, "{}");
    ef_frame_header((uint8_t *)buf + pos, 5000);
    pos += 4;
    assert_int_equal(ef_frame_decoder_feed(&d, buf, pos), 0);
    expect_frame(&d, "{}");
    assert_int_equal(ef_frame_decoder_next(&d, &msg, &len), -EMSGSIZE);
    ef_frame_decoder_free(&d);
}

static void test_zero_length(void **state)
{
    (void)state;
    struct ef_frame_decoder d;
    ef_frame_decoder_init(&d, 100);
    const char zero[4] = {0, 0, 0, 0};
    assert_int_equal(ef_frame_decoder_feed(&d, zero, 4), -EMSGSIZE);
    char *msg = NULL;
    size_t len;
    assert_int_equal(ef_frame_decoder_next(&d, &msg, &len), -EMSGSIZE);
    ef_frame_decoder_free(&d);
}

static void test_garbage_bytes(void **state)
{
    (void)state;
    /* Text that was never framed: "GET " reads as a length of 0x47455420 (about 1.1 GB). */
    struct ef_frame_decoder d;
    ef_frame_decoder_init(&d, 0);
    const char *http = "GET / HTTP/1.1\r\n\r\n";
    assert_int_equal(ef_frame_decoder_feed(&d, http, strlen(http)), -EMSGSIZE);
    ef_frame_decoder_free(&d);

    /* A well-framed payload of arbitrary bytes (including NUL) is returned as is: judging
     * JSON is the caller's job. */
    ef_frame_decoder_init(&d, 0);
    char buf[4 + 5];
    ef_frame_header((uint8_t *)buf, 5);
    memcpy(buf + 4, "\x01\x00\xff{z", 5);
    assert_int_equal(ef_frame_decoder_feed(&d, buf, sizeof(buf)), 0);
    char *msg = NULL;
    size_t len;
    assert_int_equal(ef_frame_decoder_next(&d, &msg, &len), 1);
    assert_int_equal(len, 5);
    assert_memory_equal(msg, "\x01\x00\xff{z", 5);
    assert_int_equal(msg[5], '\0');
    free(msg);
    ef_frame_decoder_free(&d);
}

static void test_truncated(void **state)
{
    (void)state;
    struct ef_frame_decoder d;
    ef_frame_decoder_init(&d, 100);
    char buf[64];
    size_t pos = 0;
    put_frame(buf, &pos, "{\"truncated\":true}");
    assert_int_equal(ef_frame_decoder_feed(&d, buf, pos - 1), 0);
    expect_none(&d);
    expect_none(&d);
    /* Only the header. */
    ef_frame_decoder_free(&d);
    ef_frame_decoder_init(&d, 100);
    assert_int_equal(ef_frame_decoder_feed(&d, buf, 2), 0);
    expect_none(&d);
    ef_frame_decoder_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_round_trip), cmocka_unit_test(test_split_byte_by_byte),
        cmocka_unit_test(test_coalesced),         cmocka_unit_test(test_many_frames_reuse_buffer),
        cmocka_unit_test(test_oversize),          cmocka_unit_test(test_zero_length),
        cmocka_unit_test(test_garbage_bytes),     cmocka_unit_test(test_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
