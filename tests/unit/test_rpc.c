/* JSON-RPC tests over real Unix sockets on one libuv loop.
 *
 * Most tests join two ef_rpc_conns with a socketpair. The protocol-error tests drive one side
 * by hand through a plain blocking fd, to send bytes the library would never produce. Every
 * test ends with uv_loop_close() == 0 so a leaked handle fails it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "common/rpc.h"
#include "common/rpc_frame.h"

#define MAX_HELD 16

/* One side of a connection: what it received and how it behaves. */
struct side {
    ef_rpc_conn *conn;
    const char *name;
    /* Behaviour on requests: answer at once (echo params), or hold them for the test. */
    bool hold;
    bool close_after_held; /* close the conn once max_held requests are held */
    int max_held;
    int reply_reverse_at; /* once this many are held, answer them all, last first */
    ef_rpc_request *held[MAX_HELD];
    cJSON *held_params[MAX_HELD];
    int n_held;
    /* Observations. */
    int requests;
    int notifications;
    char last_notification[64];
    cJSON *last_notification_params;
    int closed;
    int results_before_close; /* how many result callbacks had run when on_close ran */
};

/* The state of one test. */
struct ctx {
    uv_loop_t loop;
    uv_timer_t watchdog;
    struct side a, b;
    int results;  /* result callbacks run (on side a) */
    int expected; /* when `results` reaches it, `on_all_done` runs */
    void (*on_all_done)(struct ctx *);
    char tmpdir[64];
};

static struct ctx *g; /* the running test's context, for callbacks without a user pointer */

static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    fail_msg("test did not finish within its time limit");
}

static void ctx_init(struct ctx *c)
{
    memset(c, 0, sizeof(*c));
    g = c;
    assert_int_equal(uv_loop_init(&c->loop), 0);
    uv_timer_init(&c->loop, &c->watchdog);
    uv_timer_start(&c->watchdog, on_watchdog, 10000, 0);
    /* The watchdog must not keep the loop alive: the test ends when its connections close. */
    uv_unref((uv_handle_t *)&c->watchdog);
    c->a.name = "a";
    c->b.name = "b";
}

static void ctx_finish(struct ctx *c)
{
    uv_close((uv_handle_t *)&c->watchdog, NULL);
    assert_int_equal(uv_run(&c->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&c->loop), 0);
    cJSON_Delete(c->a.last_notification_params);
    cJSON_Delete(c->b.last_notification_params);
    g = NULL;
}

static struct side *side_of(void *user)
{
    return (struct side *)user;
}

static cJSON *steal_held_params(struct side *s, int i)
{
    cJSON *p = s->held_params[i];
    s->held_params[i] = NULL;
    return p;
}

static void on_request(ef_rpc_conn *conn, ef_rpc_request *req, const char *method,
                       const cJSON *params, void *user)
{
    struct side *s = side_of(user);
    s->requests++;
    assert_ptr_equal(ef_rpc_request_conn(req), conn);
    if (strcmp(method, "fail") == 0) {
        cJSON *data = cJSON_CreateObject();
        cJSON_AddStringToObject(data, "id", "c9");
        ef_rpc_reply_error(req, EF_RPC_ERR_NOT_FOUND, data, "container '%s' not found", "c9");
        return;
    }
    if (strcmp(method, "ping") == 0) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "pong", s->name);
        cJSON_AddNumberToObject(r, "notifications_seen", s->notifications);
        ef_rpc_reply(req, r);
        return;
    }
    if (strcmp(method, "echo") != 0) {
        ef_rpc_reply_error(req, EF_RPC_METHOD_NOT_FOUND, NULL, "method '%s' not found", method);
        return;
    }
    if (s->hold) {
        assert_true(s->n_held < MAX_HELD);
        s->held_params[s->n_held] = params ? cJSON_Duplicate(params, 1) : NULL;
        s->held[s->n_held++] = req;
        if (s->reply_reverse_at && s->n_held == s->reply_reverse_at) {
            for (int i = s->n_held - 1; i >= 0; i--) {
                ef_rpc_reply(s->held[i], steal_held_params(s, i));
                s->held[i] = NULL;
            }
            s->n_held = 0;
        }
        if (s->close_after_held && s->n_held == s->max_held)
            ef_rpc_conn_close(conn); /* from inside on_request */
        return;
    }
    ef_rpc_reply(req, params ? cJSON_Duplicate(params, 1) : NULL);
}

static void on_notification(ef_rpc_conn *conn, const char *method, const cJSON *params, void *user)
{
    (void)conn;
    struct side *s = side_of(user);
    s->notifications++;
    snprintf(s->last_notification, sizeof(s->last_notification), "%s", method);
    cJSON_Delete(s->last_notification_params);
    s->last_notification_params = params ? cJSON_Duplicate(params, 1) : NULL;
}

static void on_close(ef_rpc_conn *conn, void *user)
{
    (void)conn;
    struct side *s = side_of(user);
    s->closed++;
    s->results_before_close = g ? g->results : 0;
    s->conn = NULL;
    /* Requests still held belong to us: their connection is gone, replying only frees them. */
    for (int i = 0; i < s->n_held; i++) {
        if (s->held[i]) {
            assert_null(ef_rpc_request_conn(s->held[i]));
            ef_rpc_reply(s->held[i], cJSON_CreateString("too late"));
            s->held[i] = NULL;
        }
        cJSON_Delete(steal_held_params(s, i));
    }
}

static const struct ef_rpc_handlers handlers = {
    .on_request = on_request,
    .on_notification = on_notification,
    .on_close = on_close,
};

/* Joins sides a and b of `c` with a socketpair. */
static void connect_pair(struct ctx *c)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ef_error err = {0};
    assert_int_equal(ef_rpc_conn_open_fd(&c->loop, sv[0], &handlers, &c->a, &c->a.conn, &err), 0);
    assert_int_equal(ef_rpc_conn_open_fd(&c->loop, sv[1], &handlers, &c->b, &c->b.conn, &err), 0);
    assert_ptr_equal(ef_rpc_conn_get_user(c->a.conn), &c->a);
}

/* Counts a result callback and closes side a when all expected ones ran; b then sees EOF. */
static void result_done(struct ctx *c)
{
    c->results++;
    if (c->results == c->expected) {
        if (c->on_all_done)
            c->on_all_done(c);
        else if (c->a.conn)
            ef_rpc_conn_close(c->a.conn);
    }
}

static void on_closed_result(ef_rpc_conn *conn, const cJSON *result, const struct ef_rpc_error *e,
                             void *user)
{
    (void)user;
    assert_null(result);
    assert_non_null(e);
    assert_int_equal(e->code, EF_RPC_ERR_CLOSED);
    assert_non_null(strstr(e->message, "connection closed"));
    /* The connection is closing: new calls are refused, without a callback, and their params
     * are still consumed (valgrind checks that). */
    assert_true(ef_rpc_call(conn, "echo", cJSON_CreateObject(), 0, on_closed_result, NULL) < 0);
    assert_true(ef_rpc_notify(conn, "note", cJSON_CreateObject()) < 0);
    g->results++;
}

/* ---- request/response matching ---- */

static void on_echo_result(ef_rpc_conn *conn, const cJSON *result, const struct ef_rpc_error *e,
                           void *user)
{
    (void)conn;
    intptr_t n = (intptr_t)user;
    assert_null(e);
    assert_non_null(result);
    if (n < 0) {
        /* A request without params is answered with `{}` by ef_rpc_reply(req, NULL). */
        assert_true(cJSON_IsObject(result));
        assert_null(result->child);
    } else {
        const cJSON *got = cJSON_GetObjectItemCaseSensitive(result, "n");
        assert_true(cJSON_IsNumber(got));
        assert_int_equal(got->valueint, n);
    }
    result_done(g);
}

static cJSON *params_n(int n)
{
    cJSON *p = cJSON_CreateObject();
    cJSON_AddNumberToObject(p, "n", n);
    return p;
}

static void test_out_of_order(void **state)
{
    (void)state;
    struct ctx c;
    ctx_init(&c);
    connect_pair(&c);
    c.b.hold = true;
    c.b.reply_reverse_at = 4;
    c.expected = 4;
    for (intptr_t i = 1; i <= 3; i++)
        assert_int_equal(
            ef_rpc_call(c.a.conn, "echo", params_n((int)i), 5000, on_echo_result, (void *)i), 0);
    assert_int_equal(ef_rpc_call(c.a.conn, "echo", NULL, 0, on_echo_result, (void *)(intptr_t)-1),
                     0);
    assert_int_equal(uv_run(&c.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(c.results, 4);
    assert_int_equal(c.b.requests, 4);
    assert_int_equal(c.a.closed, 1);
    assert_int_equal(c.b.closed, 1);
    ctx_finish(&c);
}

/* Messages far larger than a socket buffer, sent back to back: the first goes out partly at
 * once and the rest is queued; the later ones must queue behind it, in order, intact. */
#define LARGE_MESSAGE_BYTES (3u * 1024u * 1024u)

static void on_large_result(ef_rpc_conn *conn, const cJSON *result, const struct ef_rpc_error *e,
                            void *user)
{
    (void)conn;
    intptr_t n = (intptr_t)user;
    assert_null(e);
    const cJSON *got = cJSON_GetObjectItemCaseSensitive(result, "n");
    assert_true(cJSON_IsNumber(got));
    assert_int_equal(got->valueint, n);
    /* Results arrive in the order of the calls, as b answers each request at once. */
    assert_int_equal(g->results + 1, n);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(result, "s");
    assert_true(cJSON_IsString(s));
    size_t len = strlen(s->valuestring);
    assert_int_equal(len, LARGE_MESSAGE_BYTES);
    for (size_t i = 0; i < len; i++)
        if (s->valuestring[i] != (char)('a' + (i + (size_t)n) % 26))
            fail_msg("byte %zu of result %d is wrong", i, (int)n);
    result_done(g);
}

static void test_large_messages(void **state)
{
    (void)state;
    struct ctx c;
    ctx_init(&c);
    connect_pair(&c);
    c.expected = 3;
    char *filler = malloc(LARGE_MESSAGE_BYTES + 1);
    assert_non_null(filler);
    for (intptr_t n = 1; n <= 3; n++) {
        for (size_t i = 0; i < LARGE_MESSAGE_BYTES; i++)
            filler[i] = (char)('a' + (i + (size_t)n) % 26);
        filler[LARGE_MESSAGE_BYTES] = '\0';
        cJSON *p = params_n((int)n);
        cJSON_AddStringToObject(p, "s", filler);
        assert_int_equal(ef_rpc_call(c.a.conn, "echo", p, 5000, on_large_result, (void *)n), 0);
    }
    free(filler);
    assert_int_equal(uv_run(&c.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(c.results, 3);
    assert_int_equal(c.b.requests, 3);
    assert_int_equal(c.a.closed, 1);
    assert_int_equal(c.b.closed, 1);
    ctx_finish(&c);
}

/* ---- error objects ---- */

static void on_error_result(ef_rpc_conn *conn, const cJSON *result, const struct ef_rpc_error *e,
                            void *user)
{
    (void)conn;
    int want = (int)(intptr_t)user;
    assert_null(result);
    assert_non_null(e);
    assert_int_equal(e->code, want);
    if (want == EF_RPC_ERR_NOT_FOUND) {
        assert_string_equal(e->message, "container 'c9' not found");
        assert_non_null(e->data);
        assert_string_equal(cJSON_GetObjectItem(e->data, "id")->valuestring, "c9");
    } else {
        assert_string_equal(e->message, "method 'no.such' not found");
        assert_null(e->data);
    }
    result_done(g);
}

static void test_error_objects(void **state)
{
    (void)state;
    struct ctx c;
    ctx_init(&c);
    connect_pair(&c);
    c.expected = 2;
    assert_int_equal(ef_rpc_call(c.a.conn, "fail", NULL, 5000, on_error_result,
                                 (void *)(intptr_t)EF_RPC_ERR_NOT_FOUND),
                     0);
    assert_int_equal(ef_rpc_call(c.a.conn, "no.such", cJSON_CreateArray(), 5000, on_error_result,
                                 (void *)(intptr_t)EF_RPC_METHOD_NOT_FOUND),
                     0);
    assert_int_equal(uv_run(&c.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(c.results, 2);
    ctx_finish(&c);
}

/* ---- notifications, both ways ---- */

static void on_ping_result(ef_rpc_conn *conn, const cJSON *result, const struct ef_rpc_error *e,
                           void *user)
{
    (void)conn;
    assert_null(e);
    assert_string_equal(cJSON_GetObjectItem(result, "pong")->valuestring, (const char *)user);
    /* Messages arrive in order: the notification sent before the call was seen first. */
    assert_int_equal(cJSON_GetObjectItem(result, "notifications_seen")->valueint, 1);
    result_done(g);
}

static void test_notifications(void **state)
{
    (void)state;
    struct ctx c;
    ctx_init(&c);
    connect_pair(&c);
    c.expected = 2;
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "id", "c1");
    cJSON_AddStringToObject(p, "status", "exit status 1");
    assert_int_equal(ef_rpc_notify(c.a.conn, "container.exited", p), 0);
    assert_int_equal(ef_rpc_call(c.a.conn, "ping", NULL, 5000, on_ping_result, "b"), 0);
    assert_int_equal(ef_rpc_notify(c.b.conn, "hello", NULL), 0);
    assert_int_equal(ef_rpc_call(c.b.conn, "ping", NULL, 5000, on_ping_result, "a"), 0);
    assert_int_equal(uv_run(&c.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(c.results, 2);
    assert_int_equal(c.b.notifications, 1);
    assert_string_equal(c.b.last_notification, "container.exited");
    assert_string_equal(cJSON_GetObjectItem(c.b.last_notification_params, "status")->valuestring,
                        "exit status 1");
    assert_int_equal(c.a.notifications, 1);
    assert_string_equal(c.a.last_notification, "hello");
    assert_null(c.a.last_notification_params);
    ctx_finish(&c);
}

/* ---- timeouts and late replies ---- */

static uint64_t timeout_started;
static int echo_timeouts;

static void on_late_ping(ef_rpc_conn *conn, const cJSON *result, const struct ef_rpc_error *e,
                         void *user)
{
    (void)conn;
    (void)user;
    assert_null(e);
    assert_non_null(result);
    /* The late answer to the timed-out call came before this one and was dropped. */
    assert_int_equal(echo_timeouts, 1);
    result_done(g);
}

static void on_timeout_result(ef_rpc_conn *conn, const cJSON *result, const struct ef_rpc_error *e,
                              void *user)
{
    (void)user;
    assert_null(result);
    assert_non_null(e);
    assert_int_equal(e->code, EF_RPC_ERR_TIMEOUT);
    assert_string_equal(e->message, "no response to 'echo' within 50 ms");
    assert_true(uv_now(&g->loop) - timeout_started >= 50);
    echo_timeouts++;
    /* Now the peer answers, too late; then a fresh call shows the connection still works. */
    assert_int_equal(g->b.n_held, 1);
    ef_rpc_reply(g->b.held[0], params_n(1));
    g->b.held[0] = NULL;
    cJSON_Delete(steal_held_params(&g->b, 0));
    g->b.n_held = 0;
    assert_int_equal(ef_rpc_call(conn, "ping", NULL, 5000, on_late_ping, NULL), 0);
    g->results++;
}

static void test_timeout_and_late_reply(void **state)
{
    (void)state;
    struct ctx c;
    ctx_init(&c);
    connect_pair(&c);
    c.b.hold = true;
    c.expected = 2;
    echo_timeouts = 0;
    uv_update_time(&c.loop);
    timeout_started = uv_now(&c.loop);
    assert_int_equal(ef_rpc_call(c.a.conn, "echo", params_n(1), 50, on_timeout_result, NULL), 0);
    assert_int_equal(uv_run(&c.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(echo_timeouts, 1);
    assert_int_equal(c.results, 2);
    ctx_finish(&c);
}

/* ---- pending calls when the peer closes ---- */

static void test_closed_pending_calls(void **state)
{
    (void)state;
    struct ctx c;
    ctx_init(&c);
    connect_pair(&c);
    /* b holds three requests, then closes its side from inside on_request. */
    c.b.hold = true;
    c.b.close_after_held = true;
    c.b.max_held = 3;
    assert_int_equal(ef_rpc_call(c.a.conn, "echo", params_n(1), 0, on_closed_result, NULL), 0);
    assert_int_equal(ef_rpc_call(c.a.conn, "echo", params_n(2), 0, on_closed_result, NULL), 0);
    assert_int_equal(ef_rpc_call(c.a.conn, "echo", params_n(3), 10000, on_closed_result, NULL), 0);
    assert_int_equal(uv_run(&c.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(c.results, 3);
    assert_int_equal(c.a.closed, 1);
    /* on_close runs after every pending call's callback. */
    assert_int_equal(c.a.results_before_close, 3);
    assert_int_equal(c.b.closed, 1);
    ctx_finish(&c);
}

static void on_any_result(ef_rpc_conn *conn, const cJSON *result, const struct ef_rpc_error *e,
                          void *user)
{
    (void)conn;
    (void)user;
    assert_null(e);
    assert_non_null(result);
    result_done(g);
}

static void close_twice(struct ctx *c)
{
    ef_rpc_conn_close(c->a.conn);
    ef_rpc_conn_close(c->a.conn);
}

static void test_close_in_result_callback(void **state)
{
    (void)state;
    struct ctx c;
    ctx_init(&c);
    connect_pair(&c);
    c.expected = 1;
    c.on_all_done = close_twice;
    /* The second call is still pending when the first one's callback closes the connection. */
    c.b.hold = true;
    c.b.max_held = 0;
    assert_int_equal(ef_rpc_call(c.a.conn, "ping", NULL, 0, on_any_result, NULL), 0);
    assert_int_equal(ef_rpc_call(c.a.conn, "echo", params_n(2), 0, on_closed_result, NULL), 0);
    assert_int_equal(uv_run(&c.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(c.results, 2);
    assert_int_equal(c.a.closed, 1);
    assert_int_equal(c.b.closed, 1);
    ctx_finish(&c);
}

/* ---- protocol errors, from a hand-driven peer ---- */

static void write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        assert_true(w > 0);
        p += w;
        n -= (size_t)w;
    }
}

static void raw_send(int fd, const char *payload)
{
    uint8_t h[EF_RPC_FRAME_HEADER];
    ef_frame_header(h, (uint32_t)strlen(payload));
    write_all(fd, h, sizeof(h));
    write_all(fd, payload, strlen(payload));
}

/* Runs the loop until `fd` is readable (or has hung up). */
static void pump_until_readable(struct ctx *c, int fd)
{
    for (int i = 0; i < 2000; i++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 0) > 0)
            return;
        uv_run(&c->loop, UV_RUN_NOWAIT);
        poll(&p, 1, 5);
    }
    fail_msg("nothing arrived on the raw socket");
}

static void read_all(int fd, void *buf, size_t n)
{
    char *p = buf;
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        assert_true(r > 0);
        p += r;
        n -= (size_t)r;
    }
}

/* Reads one frame the library sent and parses it. */
static cJSON *raw_recv(struct ctx *c, int fd)
{
    pump_until_readable(c, fd);
    uint8_t h[EF_RPC_FRAME_HEADER];
    read_all(fd, h, sizeof(h));
    uint32_t n = ((uint32_t)h[0] << 24) | ((uint32_t)h[1] << 16) | ((uint32_t)h[2] << 8) | h[3];
    assert_true(n > 0 && n < 65536);
    char *buf = malloc(n + 1);
    read_all(fd, buf, n);
    buf[n] = '\0';
    cJSON *m = cJSON_Parse(buf);
    assert_non_null(m);
    free(buf);
    return m;
}

static void raw_expect_eof(struct ctx *c, int fd)
{
    pump_until_readable(c, fd);
    char b;
    assert_int_equal(read(fd, &b, 1), 0);
}

static void expect_error_null_id(struct ctx *c, int fd, int code)
{
    cJSON *m = raw_recv(c, fd);
    assert_string_equal(cJSON_GetObjectItem(m, "jsonrpc")->valuestring, "2.0");
    cJSON *id = cJSON_GetObjectItem(m, "id");
    assert_non_null(id);
    assert_true(cJSON_IsNull(id));
    cJSON *e = cJSON_GetObjectItem(m, "error");
    assert_int_equal(cJSON_GetObjectItem(e, "code")->valueint, code);
    assert_true(cJSON_IsString(cJSON_GetObjectItem(e, "message")));
    cJSON_Delete(m);
}

/* Side b is a library connection; the returned fd is its peer, driven by hand. */
static int connect_raw(struct ctx *c)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(ef_rpc_conn_open_fd(&c->loop, sv[1], &handlers, &c->b, &c->b.conn, NULL), 0);
    return sv[0];
}

static void test_garbage_frames(void **state)
{
    (void)state;
    struct ctx c;
    ctx_init(&c);
    int fd = connect_raw(&c);

    raw_send(fd, "this is not json");
    expect_error_null_id(&c, fd, EF_RPC_PARSE_ERROR);
    raw_send(fd, "[1,2]");
    expect_error_null_id(&c, fd, EF_RPC_INVALID_REQUEST);
    raw_send(fd, "{\"jsonrpc\":\"1.0\",\"id\":3,\"method\":\"ping\"}");
    expect_error_null_id(&c, fd, EF_RPC_INVALID_REQUEST);
    raw_send(fd, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":7}");
    expect_error_null_id(&c, fd, EF_RPC_INVALID_REQUEST);
    raw_send(fd, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"echo\",\"params\":3}");
    expect_error_null_id(&c, fd, EF_RPC_INVALID_REQUEST);
    /* Responses nobody asked for, and error reports about our own frames, are not answered:
     * the next frame we read is the answer to the ping. */
    raw_send(fd, "{\"jsonrpc\":\"2.0\",\"id\":99,\"result\":{}}");
    raw_send(fd, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"x\"}}");
    raw_send(fd, "{\"jsonrpc\":\"2.0\",\"id\":\"s1\",\"method\":\"ping\"}");
    cJSON *m = raw_recv(&c, fd);
    assert_string_equal(cJSON_GetObjectItem(m, "id")->valuestring, "s1");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(m, "result"), "pong")->valuestring,
                        "b");
    cJSON_Delete(m);
    assert_int_equal(c.b.closed, 0);

    close(fd);
    assert_int_equal(uv_run(&c.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(c.b.closed, 1);
    ctx_finish(&c);
}

static void test_oversize_frame_closes(void **state)
{
    (void)state;
    /* Declared lengths above the default maximum, above a lowered one, and zero. */
    const uint32_t lengths[] = {EF_RPC_DEFAULT_MAX_MESSAGE + 1, 1025, 0};
    for (size_t i = 0; i < EF_ARRAY_SIZE(lengths); i++) {
        struct ctx c;
        ctx_init(&c);
        int fd = connect_raw(&c);
        if (lengths[i] == 1025) {
            ef_rpc_conn_set_max_message(c.b.conn, 1024);
            /* Outgoing messages are held to the same limit. */
            cJSON *big = cJSON_CreateObject();
            char filler[2000];
            memset(filler, 'x', sizeof(filler) - 1);
            filler[sizeof(filler) - 1] = '\0';
            cJSON_AddStringToObject(big, "s", filler);
            assert_int_equal(ef_rpc_call(c.b.conn, "echo", big, 0, on_any_result, NULL), -EMSGSIZE);
        }
        uint8_t h[EF_RPC_FRAME_HEADER];
        ef_frame_header(h, lengths[i]);
        write_all(fd, h, sizeof(h));
        write_all(fd, "{\"jsonrpc\"", 10);
        raw_expect_eof(&c, fd);
        close(fd);
        assert_int_equal(uv_run(&c.loop, UV_RUN_DEFAULT), 0);
        assert_int_equal(c.b.closed, 1);
        ctx_finish(&c);
    }
}

static void test_truncated_at_eof(void **state)
{
    (void)state;
    struct ctx c;
    ctx_init(&c);
    int fd = connect_raw(&c);
    /* b calls the raw peer, which starts an answer and hangs up halfway through it. */
    assert_int_equal(ef_rpc_call(c.b.conn, "echo", params_n(1), 0, on_closed_result, NULL), 0);
    cJSON *req = raw_recv(&c, fd);
    assert_string_equal(cJSON_GetObjectItem(req, "method")->valuestring, "echo");
    assert_int_equal(cJSON_GetObjectItem(req, "id")->valueint, 1);
    cJSON_Delete(req);
    const char *answer = "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}";
    uint8_t h[EF_RPC_FRAME_HEADER];
    ef_frame_header(h, (uint32_t)strlen(answer));
    write_all(fd, h, sizeof(h));
    write_all(fd, answer, 10);
    close(fd);
    assert_int_equal(uv_run(&c.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(c.results, 1);
    assert_int_equal(c.b.closed, 1);
    ctx_finish(&c);
}

/* ---- servers ---- */

static ef_rpc_server *server;

static void on_server_ping(ef_rpc_conn *conn, const cJSON *result, const struct ef_rpc_error *e,
                           void *user)
{
    (void)conn;
    (void)user;
    assert_null(e);
    assert_string_equal(cJSON_GetObjectItem(result, "pong")->valuestring, "b");
    g->results++;
    /* Closing the server closes the connection it accepted; ours then sees EOF. */
    ef_rpc_server_close(server);
    ef_rpc_server_close(server);
}

static void on_connected(ef_rpc_conn *conn, int status, void *user)
{
    struct side *s = side_of(user);
    assert_int_equal(status, 0);
    assert_non_null(conn);
    s->conn = conn;
    assert_int_equal(ef_rpc_call(conn, "ping", NULL, 5000, on_server_ping, NULL), 0);
}

static void on_connect_failed(ef_rpc_conn *conn, int status, void *user)
{
    (void)user;
    assert_null(conn);
    assert_int_equal(status, UV_ENOENT);
    g->results++;
}

static void make_tmpdir(struct ctx *c)
{
    snprintf(c->tmpdir, sizeof(c->tmpdir), "/tmp/ef-test-rpc-XXXXXX");
    assert_non_null(mkdtemp(c->tmpdir));
}

static void test_server_path(void **state)
{
    (void)state;
    struct ctx c;
    ctx_init(&c);
    make_tmpdir(&c);
    char path[100], file[100];
    snprintf(path, sizeof(path), "%s/rpc.sock", c.tmpdir);
    snprintf(file, sizeof(file), "%s/file", c.tmpdir);

    /* A stale socket from an earlier run is replaced. */
    int stale = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    assert_int_equal(bind(stale, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(stale);

    /* A permissive umask does not widen the socket's mode. */
    mode_t old = umask(0);
    ef_error err = {0};
    assert_int_equal(ef_rpc_server_listen(&c.loop, path, -1, 0600, &handlers, &c.b, &server, &err),
                     0);
    umask(old);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);

    /* Something that is not a socket is never removed. */
    FILE *f = fopen(file, "we");
    assert_non_null(f);
    fclose(f);
    ef_rpc_server *other = NULL;
    assert_int_equal(ef_rpc_server_listen(&c.loop, file, -1, 0600, &handlers, &c.b, &other, &err),
                     -EEXIST);
    assert_non_null(strstr(err.msg, "not a socket"));
    assert_int_equal(ef_rpc_server_listen(&c.loop, NULL, -1, 0600, &handlers, &c.b, &other, &err),
                     -EINVAL);
    assert_null(other);

    assert_int_equal(ef_rpc_connect(&c.loop, path, &handlers, &c.a, on_connected, &err), 0);
    assert_int_equal(uv_run(&c.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(c.b.requests, 1);
    assert_int_equal(c.b.closed, 1);
    assert_int_equal(c.a.closed, 1);
    /* The server removed its socket. */
    assert_int_equal(stat(path, &st), -1);
    assert_int_equal(errno, ENOENT);

    /* Connecting where nothing listens fails through the callback, with no conn to close. */
    c.results = 0;
    assert_int_equal(ef_rpc_connect(&c.loop, path, &handlers, &c.a, on_connect_failed, &err), 0);
    assert_int_equal(uv_run(&c.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(c.results, 1);
    assert_int_equal(c.a.closed, 1);

    unlink(file);
    assert_int_equal(rmdir(c.tmpdir), 0);
    ctx_finish(&c);
}

static void test_server_listen_fd(void **state)
{
    (void)state;
    struct ctx c;
    ctx_init(&c);
    make_tmpdir(&c);
    char path[100];
    snprintf(path, sizeof(path), "%s/runner.sock", c.tmpdir);
    /* As funclet hands the runner its socket: bound and listening before the program starts. */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 8), 0);
    ef_error err = {0};
    assert_int_equal(ef_rpc_server_listen(&c.loop, NULL, fd, 0, &handlers, &c.b, &server, &err), 0);
    assert_int_equal(ef_rpc_connect(&c.loop, path, &handlers, &c.a, on_connected, &err), 0);
    assert_int_equal(uv_run(&c.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(c.results, 1);
    assert_int_equal(c.a.closed, 1);
    assert_int_equal(c.b.closed, 1);
    /* The fd was the server's and is closed with it. */
    assert_int_equal(fcntl(fd, F_GETFD), -1);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(c.tmpdir), 0);
    ctx_finish(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_out_of_order),
        cmocka_unit_test(test_large_messages),
        cmocka_unit_test(test_error_objects),
        cmocka_unit_test(test_notifications),
        cmocka_unit_test(test_timeout_and_late_reply),
        cmocka_unit_test(test_closed_pending_calls),
        cmocka_unit_test(test_close_in_result_callback),
        cmocka_unit_test(test_garbage_frames),
        cmocka_unit_test(test_oversize_frame_closes),
        cmocka_unit_test(test_truncated_at_eof),
        cmocka_unit_test(test_server_path),
        cmocka_unit_test(test_server_listen_fd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
