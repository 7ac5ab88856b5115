/* The runner's Runtime API handler without a container: the real HTTP server of runtime_api.c
 * on a loopback port and the real invocation queue, fed by `invoke` JSON-RPC requests over a
 * socketpair, on a libuv loop in a background thread. The test thread plays the two peers with
 * blocking sockets: the controller (JSON-RPC frames) and the runtime (HTTP on the Runtime API).
 *
 * Covered: /next long polls and their headers (client context, Cognito identity, deadline, ARN,
 * trace id), /response and /error, Lambda's status codes for an unknown id (400), a second answer
 * (403) and an oversized response (413, with the invocation failing as
 * Function.ResponseSizeTooLarge), per-container concurrency (max_in_flight polls served at once,
 * the next one parked until one ends), deadlines, init errors and the runtime's exit (with
 * "delivered" telling which invocations never reached it), percent-encoded request ids, bodies
 * that are not text coming back byte-exact as "payload_b64" (a 6 MiB one within the RPC frame),
 * "wait_ms" on cold and warm hand-outs, and, with a real log capture on a pipe, what the runtime
 * writes between invocations reaching the next one's log. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/rpc.h"
#include "common/rpc_frame.h"
#include "rapi/invocations.h"
#include "rapi/runtime_api.h"

#include "loop_thread.h"

/* ---- the loop thread: Runtime API + invocation queue + the runner's side of `invoke` ---- */

static struct {
    struct loop_thread lt;

    struct ef_runtime_api api;
    struct ef_invocations invs;
    struct ef_log_capture capture;
    int out_fd;       /* the runtime's end of the captured pipe (setup_capture); -1 without */
    int init_failed;  /* times on_init_failed ran */
    ef_rpc_conn *rpc; /* the runner's end of the socketpair */
    int port;
} L;

static void on_rpc_request(ef_rpc_conn *conn, ef_rpc_request *req, const char *method,
                           const cJSON *params, void *user)
{
    (void)conn;
    (void)user;
    if (strcmp(method, "invoke") != 0) {
        ef_rpc_reply_error(req, EF_RPC_METHOD_NOT_FOUND, NULL, "no method %s", method);
        return;
    }
    ef_error err = {0};
    struct ef_invocation *inv = NULL;
    long long deadline = (long long)ef_now_epoch_ms() + 60000;
    if (ef_invocation_parse(params, deadline, "arn:aws:lambda:us-east-1:000000000000:function:t",
                            &inv, &err) < 0) {
        ef_rpc_reply_error(req, EF_RPC_INVALID_PARAMS, NULL, "%s", err.msg);
        return;
    }
    inv->req = req;
    if (ef_invocations_submit(&L.invs, inv) < 0) {
        inv->req = NULL;
        ef_invocation_free(inv);
        ef_rpc_reply_error(req, EF_RPC_INVALID_PARAMS, NULL, "duplicate");
    }
}

static const struct ef_rpc_handlers rpc_handlers = {.on_request = on_rpc_request};

static void on_stop(void *arg)
{
    (void)arg;
    ef_invocations_free(&L.invs, "the test is over");
    ef_runtime_api_close(&L.api);
    ef_log_capture_close(&L.capture);
    ef_rpc_conn_close(L.rpc);
}

/* Runs fn(arg) on the loop thread and waits for it. */
static void on_loop(void (*fn)(void *arg), void *arg)
{
    loop_thread_call(&L.lt, fn, arg);
}

/* ---- the controller's side: blocking JSON-RPC frames ---- */

static int ctl_fd = -1;
static int next_id = 1;
/* Answers that arrived while another one was awaited. */
static cJSON *stash[32];

static void write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        assert_true(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

/* Reads exactly len bytes; false on timeout or EOF. */
static bool read_exact(int fd, void *buf, size_t len, int timeout_ms)
{
    char *p = buf;
    while (len > 0) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, timeout_ms) <= 0)
            return false;
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* Sends an `invoke` request; returns its id. `extra` is more JSON members (may be ""). */
static int send_invoke(const char *request_id, const char *payload_json_string, const char *extra)
{
    int id = next_id++;
    char *msg = NULL;
    int len = asprintf(&msg,
                       "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"invoke\",\"params\":{"
                       "\"request_id\":\"%s\",\"payload\":%s%s}}",
                       id, request_id, payload_json_string, extra);
    assert_true(len > 0);
    uint8_t header[EF_RPC_FRAME_HEADER];
    ef_frame_header(header, (uint32_t)len);
    write_all(ctl_fd, header, sizeof(header));
    write_all(ctl_fd, msg, (size_t)len);
    free(msg);
    return id;
}

/* Waits for the answer to request `id` (its "result", or the whole message for an error);
 * NULL when none comes within timeout_ms. */
static cJSON *await_answer(int id, int timeout_ms)
{
    for (size_t i = 0; i < EF_ARRAY_SIZE(stash); i++) {
        const cJSON *sid = stash[i] ? cJSON_GetObjectItem(stash[i], "id") : NULL;
        if (sid && (int)sid->valuedouble == id) {
            cJSON *m = stash[i];
            stash[i] = NULL;
            cJSON *res = cJSON_DetachItemFromObject(m, "result");
            if (res) {
                cJSON_Delete(m);
                return res;
            }
            return m;
        }
    }
    for (;;) {
        uint8_t header[EF_RPC_FRAME_HEADER];
        if (!read_exact(ctl_fd, header, sizeof(header), timeout_ms))
            return NULL;
        uint32_t len = ((uint32_t)header[0] << 24) | ((uint32_t)header[1] << 16) |
                       ((uint32_t)header[2] << 8) | header[3];
        char *buf = malloc(len + 1);
        assert_non_null(buf);
        assert_true(read_exact(ctl_fd, buf, len, 5000));
        buf[len] = '\0';
        cJSON *m = cJSON_Parse(buf);
        free(buf);
        assert_non_null(m);
        const cJSON *mid = cJSON_GetObjectItem(m, "id");
        if (mid && (int)mid->valuedouble == id) {
            cJSON *res = cJSON_DetachItemFromObject(m, "result");
            if (res) {
                cJSON_Delete(m);
                return res;
            }
            return m;
        }
        size_t i = 0;
        while (i < EF_ARRAY_SIZE(stash) && stash[i])
            i++;
        assert_true(i < EF_ARRAY_SIZE(stash));
        stash[i] = m;
    }
}

static const char *str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItem(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- the runtime's side: blocking HTTP/1.1 ---- */

struct reply {
    int status;
    char head[8192];
    char *body;
    size_t body_len;
};

/* Sends a request (Connection: close) and returns the socket, for http_read. With `headers_only`
 * the body is announced in Content-Length but not sent. */
static int http_send(const char *method, const char *path, const char *extra_headers,
                     const char *body, size_t len, bool headers_only)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)L.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    char head[1024];
    int n = snprintf(head, sizeof(head),
                     "%s /2018-06-01/runtime/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Connection: close\r\nContent-Length: %zu\r\n%s\r\n",
                     method, path, len, extra_headers ? extra_headers : "");
    write_all(fd, head, (size_t)n);
    if (!headers_only && len > 0)
        write_all(fd, body, len);
    return fd;
}

/* Reads the whole response; false when nothing complete arrives within timeout_ms. */
static bool http_read(int fd, int timeout_ms, struct reply *r)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, timeout_ms) <= 0) {
            free(buf);
            return false;
        }
        if (len + 4096 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    char *end = strstr(buf, "\r\n\r\n");
    assert_non_null(end);
    size_t head_len = (size_t)(end - buf);
    assert_true(head_len < sizeof(r->head));
    memcpy(r->head, buf, head_len);
    r->head[head_len] = '\0';
    r->status = atoi(buf + 9);
    r->body_len = len - head_len - 4;
    r->body = malloc(r->body_len + 1);
    memcpy(r->body, end + 4, r->body_len);
    r->body[r->body_len] = '\0';
    free(buf);
    close(fd);
    return true;
}

static void http(const char *method, const char *path, const char *headers, const char *body,
                 struct reply *r)
{
    int fd = http_send(method, path, headers, body, body ? strlen(body) : 0, false);
    assert_true(http_read(fd, 5000, r));
}

/* A response header's value, copied into buf; NULL when absent. */
static const char *header(const struct reply *r, const char *name, char *buf, size_t len)
{
    size_t nlen = strlen(name);
    for (const char *line = strstr(r->head, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
        const char *p = line + 2;
        if (strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            p += nlen + 1;
            while (*p == ' ')
                p++;
            const char *e = strstr(p, "\r\n");
            size_t vlen = e ? (size_t)(e - p) : strlen(p);
            if (vlen >= len)
                vlen = len - 1;
            memcpy(buf, p, vlen);
            buf[vlen] = '\0';
            return buf;
        }
    }
    return NULL;
}

static void reply_free(struct reply *r)
{
    free(r->body);
    r->body = NULL;
}

/* ---- setup ---- */

static void start_api(void *arg)
{
    (void)arg;
    ef_error err = {0};
    assert_int_equal(ef_runtime_api_start(&L.api, &L.lt.loop, 0, &L.invs, &err), 0);
    L.port = ef_runtime_api_port(&L.api);
}

static void set_max_in_flight(void *arg)
{
    L.invs.max_in_flight = *(unsigned *)arg;
}

static void on_init_failed(void *user)
{
    (void)user;
    L.init_failed++;
}

static int setup(void **state)
{
    (void)state;
    memset(&L, 0, sizeof(L));
    L.out_fd = -1;
    ef_log_capture_init(&L.capture);
    memset(stash, 0, sizeof(stash));
    next_id = 1;
    assert_int_equal(loop_thread_init(&L.lt), 0);
    ef_invocations_init(&L.invs, NULL);
    L.invs.on_init_failed = on_init_failed;
    /* The test process stands in for the runtime whose peak memory is reported. */
    L.invs.runtime_pid = getpid();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ef_error err = {0};
    assert_int_equal(ef_rpc_conn_open_fd(&L.lt.loop, sv[0], &rpc_handlers, NULL, &L.rpc, &err), 0);
    ctl_fd = sv[1];
    assert_int_equal(loop_thread_run(&L.lt, on_stop, NULL), 0);
    on_loop(start_api, NULL);
    return 0;
}

static void start_capture(void *arg)
{
    int fd = *(int *)arg;
    ef_error err = {0};
    assert_int_equal(ef_log_capture_start(&L.capture, &L.lt.loop, fd, -1, &err), 0);
    L.invs.capture = &L.capture;
}

/* setup, and the runtime's output captured from a pipe that the test writes to as L.out_fd. */
static int setup_capture(void **state)
{
    setup(state);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
    L.out_fd = p[1];
    on_loop(start_capture, &p[0]);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (L.out_fd >= 0)
        close(L.out_fd);
    /* Every handle was closed: a leak fails here. */
    assert_int_equal(loop_thread_stop(&L.lt), 0);
    close(ctl_fd);
    for (size_t i = 0; i < EF_ARRAY_SIZE(stash); i++)
        cJSON_Delete(stash[i]);
    return 0;
}

/* ---- tests ---- */

static void test_next_response_and_headers(void **state)
{
    (void)state;
    char h[512];
    long long before = (long long)ef_now_epoch_ms();
    int id =
        send_invoke("req-1", "\"{\\\"k\\\":\\\"h\\u00e9\\\"}\"",
                    ",\"deadline_ms\":4102444800000,\"invoked_function_arn\":\"arn:aws:lambda:"
                    "us-east-1:123456789012:function:f\",\"client_context\":\"{\\\"custom\\\":"
                    "{\\\"k\\\":\\\"\\\\u00e9\\\"}}\",\"cognito_identity\":\"{\\\"cognitoIdentit"
                    "yId\\\":\\\"id-1\\\"}\"");
    struct reply r;
    http("GET", "invocation/next", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"k\":\"h\xc3\xa9\"}");
    assert_string_equal(header(&r, "Lambda-Runtime-Aws-Request-Id", h, sizeof(h)), "req-1");
    assert_string_equal(header(&r, "Lambda-Runtime-Deadline-Ms", h, sizeof(h)), "4102444800000");
    assert_string_equal(header(&r, "Lambda-Runtime-Invoked-Function-Arn", h, sizeof(h)),
                        "arn:aws:lambda:us-east-1:123456789012:function:f");
    assert_string_equal(header(&r, "Lambda-Runtime-Client-Context", h, sizeof(h)),
                        "{\"custom\":{\"k\":\"\\u00e9\"}}");
    assert_string_equal(header(&r, "Lambda-Runtime-Cognito-Identity", h, sizeof(h)),
                        "{\"cognitoIdentityId\":\"id-1\"}");
    assert_non_null(header(&r, "Lambda-Runtime-Trace-Id", h, sizeof(h)));
    assert_true(strncmp(h, "Root=1-", 7) == 0);
    reply_free(&r);

    http("POST", "invocation/req-1/response", NULL, "\"done\"", &r);
    assert_int_equal(r.status, 202);
    reply_free(&r);
    cJSON *a = await_answer(id, 5000);
    assert_non_null(a);
    assert_string_equal(str(a, "status"), "ok");
    assert_string_equal(str(a, "payload"), "\"done\"");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(a, "delivered")));
    const cJSON *mem = cJSON_GetObjectItem(a, "max_memory_used_mb");
    assert_true(cJSON_IsNumber(mem) && mem->valuedouble >= 1);
    cJSON_Delete(a);

    /* Lambda's answers to the runtime's mistakes. */
    http("POST", "invocation/req-1/response", NULL, "{}", &r);
    assert_int_equal(r.status, 403);
    assert_non_null(strstr(r.body, "\"InvalidStateTransition\""));
    reply_free(&r);
    http("POST", "invocation/req-1/error", NULL, "{}", &r);
    assert_int_equal(r.status, 403);
    reply_free(&r);
    http("POST", "invocation/nobody/response", NULL, "{}", &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "\"InvalidRequestID\""));
    reply_free(&r);

    /* Without the optional fields, their headers are absent. */
    id = send_invoke("req-2", "\"{}\"", "");
    http("GET", "invocation/next", NULL, NULL, &r);
    assert_null(header(&r, "Lambda-Runtime-Client-Context", h, sizeof(h)));
    assert_null(header(&r, "Lambda-Runtime-Cognito-Identity", h, sizeof(h)));
    long long deadline = atoll(header(&r, "Lambda-Runtime-Deadline-Ms", h, sizeof(h)));
    assert_true(deadline >= before + 59000 && deadline <= (long long)ef_now_epoch_ms() + 60000);
    reply_free(&r);
    http("POST", "invocation/req-2/error", "Lambda-Runtime-Function-Error-Type: MyError\r\n",
         "{\"errorMessage\":\"bad\"}", &r);
    assert_int_equal(r.status, 202);
    reply_free(&r);
    a = await_answer(id, 5000);
    assert_string_equal(str(a, "status"), "error");
    assert_string_equal(str(a, "error_type"), "MyError");
    assert_string_equal(str(a, "payload"), "{\"errorMessage\":\"bad\"}");
    cJSON_Delete(a);
}

static void test_bad_invoke_params(void **state)
{
    (void)state;
    int id = send_invoke("req-x", "\"{}\"", ",\"client_context\":\"line\\nbreak\"");
    cJSON *a = await_answer(id, 5000);
    const cJSON *e = cJSON_GetObjectItem(a, "error");
    assert_non_null(e);
    assert_int_equal((int)cJSON_GetObjectItem(e, "code")->valuedouble, EF_RPC_INVALID_PARAMS);
    assert_non_null(strstr(str(e, "message"), "client_context"));
    cJSON_Delete(a);
    id = send_invoke("req-y", "\"{}\"", ",\"cognito_identity\":7");
    a = await_answer(id, 5000);
    assert_non_null(cJSON_GetObjectItem(a, "error"));
    cJSON_Delete(a);
}

static void test_oversized_response(void **state)
{
    (void)state;
    int id = send_invoke("big-1", "\"{}\"", "");
    struct reply r;
    http("GET", "invocation/next", NULL, NULL, &r);
    reply_free(&r);
    /* One byte above Lambda's 6 MiB + 100: refused before the body is read. */
    int fd = http_send("POST", "invocation/big-1/response", NULL, NULL, EF_RESPONSE_MAX + 1, true);
    assert_true(http_read(fd, 5000, &r));
    assert_int_equal(r.status, 413);
    assert_non_null(strstr(r.body, "\"RequestEntityTooLarge\""));
    assert_non_null(strstr(r.body, "6291556"));
    reply_free(&r);
    cJSON *a = await_answer(id, 5000);
    assert_string_equal(str(a, "status"), "error");
    assert_string_equal(str(a, "error_type"), "Function.ResponseSizeTooLarge");
    assert_non_null(strstr(str(a, "payload"), "exceeded maximum allowed payload size (6291556"));
    cJSON_Delete(a);

    /* Exactly the limit is fine. */
    id = send_invoke("big-2", "\"{}\"", "");
    http("GET", "invocation/next", NULL, NULL, &r);
    reply_free(&r);
    char *body = malloc(EF_RESPONSE_MAX + 1);
    memset(body, 'x', EF_RESPONSE_MAX);
    body[0] = body[EF_RESPONSE_MAX - 1] = '"';
    body[EF_RESPONSE_MAX] = '\0';
    fd = http_send("POST", "invocation/big-2/response", NULL, body, EF_RESPONSE_MAX, false);
    free(body);
    assert_true(http_read(fd, 10000, &r));
    assert_int_equal(r.status, 202);
    reply_free(&r);
    a = await_answer(id, 10000);
    assert_string_equal(str(a, "status"), "ok");
    assert_int_equal(strlen(str(a, "payload")), EF_RESPONSE_MAX);
    cJSON_Delete(a);
}

static void test_concurrency(void **state)
{
    (void)state;
    unsigned two = 2;
    on_loop(set_max_in_flight, &two);
    int ids[3];
    ids[0] = send_invoke("c-1", "\"1\"", "");
    ids[1] = send_invoke("c-2", "\"2\"", "");
    ids[2] = send_invoke("c-3", "\"3\"", "");
    /* Three polls at once: two are served, the third waits for a free place. */
    int fds[3];
    for (int i = 0; i < 3; i++)
        fds[i] = http_send("GET", "invocation/next", NULL, NULL, 0, false);
    struct reply r;
    int served = 0, parked = -1;
    bool got1 = false, got2 = false;
    for (int i = 0; i < 3; i++) {
        if (!http_read(fds[i], 1000, &r)) {
            assert_int_equal(parked, -1);
            parked = i;
            continue;
        }
        char h[64];
        header(&r, "Lambda-Runtime-Aws-Request-Id", h, sizeof(h));
        got1 |= strcmp(h, "c-1") == 0;
        got2 |= strcmp(h, "c-2") == 0;
        served++;
        reply_free(&r);
    }
    assert_int_equal(served, 2);
    assert_true(got1 && got2);
    assert_true(parked >= 0);
    /* Both in flight answer out of order; the first to end makes room for the parked poll. */
    struct reply p;
    http("POST", "invocation/c-2/response", NULL, "\"two\"", &p);
    assert_int_equal(p.status, 202);
    reply_free(&p);
    assert_true(http_read(fds[parked], 5000, &r));
    char h2[64];
    assert_string_equal(header(&r, "Lambda-Runtime-Aws-Request-Id", h2, sizeof(h2)), "c-3");
    assert_string_equal(r.body, "3");
    reply_free(&r);
    cJSON *a = await_answer(ids[1], 5000);
    assert_string_equal(str(a, "payload"), "\"two\"");
    cJSON_Delete(a);
    http("POST", "invocation/c-3/response", NULL, "\"three\"", &p);
    reply_free(&p);
    http("POST", "invocation/c-1/response", NULL, "\"one\"", &p);
    reply_free(&p);
    a = await_answer(ids[0], 5000);
    assert_string_equal(str(a, "payload"), "\"one\"");
    cJSON_Delete(a);
    a = await_answer(ids[2], 5000);
    assert_string_equal(str(a, "payload"), "\"three\"");
    cJSON_Delete(a);
}

/* With several invocations in flight, a response refused as too large fails the one its path
 * names, at once, and leaves the other alone. */
static void test_oversized_response_concurrent(void **state)
{
    (void)state;
    unsigned two = 2;
    on_loop(set_max_in_flight, &two);
    int first = send_invoke("o-1", "\"1\"", "");
    int second = send_invoke("o-2", "\"2\"", "");
    struct reply r;
    http("GET", "invocation/next", NULL, NULL, &r);
    reply_free(&r);
    http("GET", "invocation/next", NULL, NULL, &r);
    reply_free(&r);
    int fd = http_send("POST", "invocation/o-2/response", NULL, NULL, EF_RESPONSE_MAX + 1, true);
    assert_true(http_read(fd, 5000, &r));
    assert_int_equal(r.status, 413);
    reply_free(&r);
    cJSON *a = await_answer(second, 5000);
    assert_string_equal(str(a, "status"), "error");
    assert_string_equal(str(a, "error_type"), "Function.ResponseSizeTooLarge");
    cJSON_Delete(a);
    http("POST", "invocation/o-1/response", NULL, "\"one\"", &r);
    assert_int_equal(r.status, 202);
    reply_free(&r);
    a = await_answer(first, 5000);
    assert_string_equal(str(a, "status"), "ok");
    assert_string_equal(str(a, "payload"), "\"one\"");
    cJSON_Delete(a);
}

static void expire_now(void *arg)
{
    *(size_t *)arg = ef_invocations_expire(&L.invs, (long long)ef_now_monotonic_ms());
}

static void next_deadline(void *arg)
{
    *(long long *)arg = ef_invocations_next_deadline(&L.invs);
}

static void test_deadlines(void **state)
{
    (void)state;
    long long now = (long long)ef_now_epoch_ms();
    long long mono_before = (long long)ef_now_monotonic_ms();
    char extra[96];
    snprintf(extra, sizeof(extra), ",\"deadline_ms\":%lld", now + 100);
    int late = send_invoke("d-1", "\"{}\"", extra);
    snprintf(extra, sizeof(extra), ",\"deadline_ms\":%lld", now + 3600000);
    int queued = send_invoke("d-2", "\"{}\"", extra);
    struct reply r;
    http("GET", "invocation/next", NULL, NULL, &r); /* d-1 in flight, d-2 queued */
    reply_free(&r);
    long long next = 0;
    on_loop(next_deadline, &next);
    /* On the monotonic clock: 100 ms after the deadline was read, give or take the reading (and
     * a preemption on the way). */
    long long mono_after = (long long)ef_now_monotonic_ms();
    assert_true(next >= mono_before + 100 - 50 && next <= mono_after + 100 + 50);
    usleep(150 * 1000);
    size_t n = 0;
    on_loop(expire_now, &n);
    assert_int_equal(n, 1);
    cJSON *a = await_answer(late, 5000);
    assert_string_equal(str(a, "status"), "timeout");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(a, "delivered")));
    cJSON_Delete(a);
    on_loop(next_deadline, &next);
    assert_true(next >= mono_before + 3600000 - 50 && next <= mono_after + 3600000 + 50);
    /* The runtime's late answer is refused; the queued one is handed out now. */
    http("POST", "invocation/d-1/response", NULL, "{}", &r);
    assert_int_equal(r.status, 403);
    reply_free(&r);
    http("GET", "invocation/next", NULL, NULL, &r);
    char h[64];
    assert_string_equal(header(&r, "Lambda-Runtime-Aws-Request-Id", h, sizeof(h)), "d-2");
    reply_free(&r);
    http("POST", "invocation/d-2/response", NULL, "{}", &r);
    reply_free(&r);
    a = await_answer(queued, 5000);
    assert_string_equal(str(a, "status"), "ok");
    cJSON_Delete(a);
}

static double wait_ms_of(const cJSON *a)
{
    const cJSON *w = cJSON_GetObjectItem(a, "wait_ms");
    assert_true(cJSON_IsNumber(w));
    return w->valuedouble;
}

static void fail_exit(void *arg)
{
    ef_invocations_fail_exit(&L.invs, (const char *)arg);
}

static void test_exit_tells_what_was_delivered(void **state)
{
    (void)state;
    int handed = send_invoke("e-1", "\"{}\"", "");
    int queued = send_invoke("e-2", "\"{}\"", "");
    struct reply r;
    http("GET", "invocation/next", NULL, NULL, &r);
    reply_free(&r);
    on_loop(fail_exit, "signal: killed");
    cJSON *a = await_answer(handed, 5000);
    assert_string_equal(str(a, "error_type"), "Runtime.ExitError");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(a, "delivered")));
    assert_true(wait_ms_of(a) >= 0);
    assert_non_null(strstr(str(a, "payload"), "Runtime exited with error: signal: killed"));
    assert_null(cJSON_GetObjectItem(a, "init_error")); /* an exit is no init error */
    cJSON_Delete(a);
    a = await_answer(queued, 5000);
    assert_string_equal(str(a, "error_type"), "Runtime.ExitError");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(a, "delivered")));
    assert_null(cJSON_GetObjectItem(a, "late"));
    /* Never handed out: no wait to tell. */
    assert_null(cJSON_GetObjectItem(a, "wait_ms"));
    cJSON_Delete(a);
    /* After the exit, an invocation is answered at once and was never delivered. */
    int late = send_invoke("e-3", "\"{}\"", "");
    a = await_answer(late, 5000);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(a, "delivered")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(a, "late")));
    cJSON_Delete(a);
}

static int init_failed_count(void)
{
    int n;
    uv_mutex_lock(&L.lt.lock);
    n = L.init_failed;
    uv_mutex_unlock(&L.lt.lock);
    return n;
}

static void test_init_error(void **state)
{
    (void)state;
    int id = send_invoke("i-1", "\"{}\"", "");
    struct reply r;
    http("POST", "init/error", "Lambda-Runtime-Function-Error-Type: Runtime.ImportModuleError\r\n",
         "{\"errorMessage\":\"Unable to import module 'app'\",\"errorType\":\"Runtime."
         "ImportModuleError\"}",
         &r);
    assert_int_equal(r.status, 202);
    reply_free(&r);
    cJSON *a = await_answer(id, 5000);
    assert_string_equal(str(a, "status"), "error");
    assert_string_equal(str(a, "error_type"), "Runtime.ImportModuleError");
    assert_non_null(strstr(str(a, "payload"), "Unable to import module 'app'"));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(a, "delivered")));
    /* Marked as the init error, and not late: this invocation waited for that init. */
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(a, "init_error")));
    assert_null(cJSON_GetObjectItem(a, "late"));
    cJSON_Delete(a);
    /* One sent after that answer gets the same error, marked late: it never waited for the
     * init, and its caller may place it elsewhere. */
    id = send_invoke("i-2", "\"{}\"", "");
    a = await_answer(id, 5000);
    assert_string_equal(str(a, "error_type"), "Runtime.ImportModuleError");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(a, "init_error")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(a, "late")));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(a, "delivered")));
    cJSON_Delete(a);
    /* The runner is told once to end the runtime, also when the runtime posts again. */
    assert_int_equal(init_failed_count(), 1);
    http("POST", "init/error", NULL, "{\"errorType\":\"Again\"}", &r);
    assert_int_equal(r.status, 202);
    reply_free(&r);
    assert_int_equal(init_failed_count(), 1);
}

/* ---- percent-encoded ids, binary bodies, wait_ms, output between invocations ---- */

/* Decodes standard base64 (the test's own decoder, to check the runner's encoder). */
static unsigned char *b64_decode(const char *text, size_t *ret_len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t len = strlen(text);
    assert_int_equal(len % 4, 0);
    unsigned char *out = malloc(len / 4 * 3 + 1);
    assert_non_null(out);
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        uint32_t v = 0;
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            char c = text[i + k];
            v <<= 6;
            if (c == '=') {
                assert_true(i + 4 == len && k >= 2);
                pad++;
                continue;
            }
            assert_int_equal(pad, 0);
            const char *at = strchr(alphabet, c);
            assert_true(at && c);
            v |= (uint32_t)(at - alphabet);
        }
        out[o++] = (unsigned char)(v >> 16);
        if (pad < 2)
            out[o++] = (unsigned char)(v >> 8);
        if (pad < 1)
            out[o++] = (unsigned char)v;
    }
    *ret_len = o;
    return out;
}

/* Hands out `rid` (already sent) to a poll and posts `body` (`len` bytes) to its `what`
 * ("response" or "error"); the post must be accepted. */
static void run_to(const char *rid, const char *what, const char *body, size_t len)
{
    struct reply r;
    http("GET", "invocation/next", NULL, NULL, &r);
    char h[160];
    assert_string_equal(header(&r, "Lambda-Runtime-Aws-Request-Id", h, sizeof(h)), rid);
    reply_free(&r);
    char path[200];
    snprintf(path, sizeof(path), "invocation/%s/%s", rid, what);
    int fd = http_send("POST", path, NULL, body, len, false);
    assert_true(http_read(fd, 10000, &r));
    assert_int_equal(r.status, 202);
    reply_free(&r);
}

static void test_percent_encoded_ids(void **state)
{
    (void)state;
    int id = send_invoke("b6c2-41a0", "\"{}\"", "");
    struct reply r;
    http("GET", "invocation/next", NULL, NULL, &r);
    reply_free(&r);
    /* Malformed escapes and ids that are not valid once decoded: 400, the invocation runs on. */
    const char *bad[] = {"invocation/b6c2%2/response", "invocation/b6c2%zz41a0/response",
                         "invocation/b6c2%2F41a0/response", "invocation/b6c2%00/error",
                         "invocation/%/response"};
    for (size_t i = 0; i < EF_ARRAY_SIZE(bad); i++) {
        http("POST", bad[i], NULL, "{}", &r);
        assert_int_equal(r.status, 400);
        assert_non_null(strstr(r.body, "\"InvalidRequestID\""));
        assert_non_null(strstr(r.body, "request id"));
        reply_free(&r);
    }
    /* Every byte escaped, hex digits of both cases. */
    http("POST", "invocation/%62%36%63%32%2D%34%31%61%30/response", NULL, "\"pct\"", &r);
    assert_int_equal(r.status, 202);
    reply_free(&r);
    cJSON *a = await_answer(id, 5000);
    assert_string_equal(str(a, "status"), "ok");
    assert_string_equal(str(a, "payload"), "\"pct\"");
    cJSON_Delete(a);
    /* The decoded id is the one that already responded. */
    http("POST", "invocation/b6c2%2d41a0/error", NULL, "{}", &r);
    assert_int_equal(r.status, 403);
    reply_free(&r);
}

static void test_binary_payloads(void **state)
{
    (void)state;
    /* Text, with tabs, newlines, carriage returns and non-ASCII characters: "payload". */
    const char text[] = "{\"t\":\"h\xc3\xa9\tl\xe2\x82\xac\"}\r\n";
    int id = send_invoke("t-1", "\"{}\"", "");
    run_to("t-1", "response", text, strlen(text));
    cJSON *a = await_answer(id, 5000);
    assert_string_equal(str(a, "payload"), text);
    assert_null(cJSON_GetObjectItem(a, "payload_b64"));
    cJSON_Delete(a);

    /* NUL, other control bytes, invalid UTF-8 (a lone continuation byte, an overlong form, a
     * truncated sequence): "payload_b64" with the exact bytes, and no "payload". */
    const char bin[] = "\x00\x01\x1b[0m\xff\xfe\x80h\xc3\xa9\xc0\xaf\xe2\x82";
    size_t bin_len = sizeof(bin) - 1;
    id = send_invoke("b-1", "\"{}\"", "");
    run_to("b-1", "response", bin, bin_len);
    a = await_answer(id, 5000);
    assert_string_equal(str(a, "status"), "ok");
    assert_null(cJSON_GetObjectItem(a, "payload"));
    size_t len = 0;
    unsigned char *got = b64_decode(str(a, "payload_b64"), &len);
    assert_int_equal(len, bin_len);
    assert_memory_equal(got, bin, bin_len);
    free(got);
    cJSON_Delete(a);

    /* An error document (a JSON object) whose strings are not UTF-8 is sent as it came too. */
    const char doc[] = "{\"errorType\":\"Bin\",\"errorMessage\":\"\xff\x01\"}";
    id = send_invoke("b-2", "\"{}\"", "");
    run_to("b-2", "error", doc, sizeof(doc) - 1);
    a = await_answer(id, 5000);
    assert_string_equal(str(a, "status"), "error");
    assert_string_equal(str(a, "error_type"), "Bin");
    got = b64_decode(str(a, "payload_b64"), &len);
    assert_int_equal(len, sizeof(doc) - 1);
    assert_memory_equal(got, doc, len);
    free(got);
    cJSON_Delete(a);
}

/* The largest response the Runtime API takes, all control bytes: as \u0001 escapes it would be
 * 36 MiB, far above the 16 MiB RPC frame; as base64 it is 8 MiB and comes back whole. */
static void test_large_control_byte_body(void **state)
{
    (void)state;
    char *body = malloc(EF_RESPONSE_MAX);
    assert_non_null(body);
    for (size_t i = 0; i < EF_RESPONSE_MAX; i++)
        body[i] = (char)(1 + i % 31);
    int id = send_invoke("big-b", "\"{}\"", "");
    run_to("big-b", "response", body, EF_RESPONSE_MAX);
    cJSON *a = await_answer(id, 20000);
    assert_non_null(a);
    assert_string_equal(str(a, "status"), "ok");
    assert_null(cJSON_GetObjectItem(a, "error"));
    size_t len = 0;
    unsigned char *got = b64_decode(str(a, "payload_b64"), &len);
    assert_int_equal(len, EF_RESPONSE_MAX);
    assert_memory_equal(got, body, EF_RESPONSE_MAX);
    free(got);
    free(body);
    cJSON_Delete(a);
}

static void test_wait_ms(void **state)
{
    (void)state;
    /* Cold: the runtime polls 300 ms after the invoke arrived. */
    int id = send_invoke("w-1", "\"{}\"", "");
    usleep(300 * 1000);
    run_to("w-1", "response", "{}", 2);
    cJSON *a = await_answer(id, 5000);
    double w = wait_ms_of(a);
    assert_true(w >= 290 && w < 5000);
    /* Milliseconds with at most 3 decimals. */
    assert_true(w * 1000 == (double)(long long)(w * 1000 + 0.5));
    cJSON_Delete(a);

    /* Warm: the poll is parked when the invoke arrives, and the response takes 300 ms, which
     * is the function's time, not the wait's. */
    int fd = http_send("GET", "invocation/next", NULL, NULL, 0, false);
    usleep(100 * 1000);
    id = send_invoke("w-2", "\"{}\"", "");
    struct reply r;
    assert_true(http_read(fd, 5000, &r));
    reply_free(&r);
    usleep(300 * 1000);
    http("POST", "invocation/w-2/response", NULL, "{}", &r);
    reply_free(&r);
    a = await_answer(id, 5000);
    w = wait_ms_of(a);
    assert_true(w >= 0 && w < 100);
    cJSON_Delete(a);
}

/* Reads the capture now, so that output the test wrote is in the ring before the next step
 * (otherwise the loop reads it whenever its poll fires). */
static void drain_capture(void *arg)
{
    (void)arg;
    ef_log_capture_drain(&L.capture);
}

/* Writes `s` as the runtime's output, and waits until the runner has read it. */
static void runtime_prints(const char *s)
{
    write_all(L.out_fd, s, strlen(s));
    on_loop(drain_capture, NULL);
}

static void test_output_between_invocations(void **state)
{
    (void)state;
    runtime_prints("starting\n");
    int id = send_invoke("l-1", "\"{}\"", "");
    struct reply r;
    http("GET", "invocation/next", NULL, NULL, &r);
    reply_free(&r);
    runtime_prints("during l-1\n");
    http("POST", "invocation/l-1/response", NULL, "{}", &r);
    reply_free(&r);
    cJSON *a = await_answer(id, 5000);
    assert_string_equal(str(a, "log"), "starting\nduring l-1\n");
    cJSON_Delete(a);

    /* Idle: a background printer and a late print. They are read at once, as the pipes are read
     * all the time, and still reach the next invocation's log, before its own output. */
    runtime_prints("bg-tick\n");
    runtime_prints("bg-tick\n");
    id = send_invoke("l-2", "\"{}\"", "");
    http("GET", "invocation/next", NULL, NULL, &r);
    reply_free(&r);
    runtime_prints("during l-2\n");
    http("POST", "invocation/l-2/response", NULL, "{}", &r);
    reply_free(&r);
    a = await_answer(id, 5000);
    assert_string_equal(str(a, "log"), "bg-tick\nbg-tick\nduring l-2\n");
    cJSON_Delete(a);

    /* Two handed out at once after an idle spell: the idle output goes to the first only. */
    unsigned two = 2;
    on_loop(set_max_in_flight, &two);
    runtime_prints("idle\n");
    int id1 = send_invoke("l-3", "\"{}\"", "");
    int id2 = send_invoke("l-4", "\"{}\"", "");
    http("GET", "invocation/next", NULL, NULL, &r);
    reply_free(&r);
    http("GET", "invocation/next", NULL, NULL, &r);
    reply_free(&r);
    runtime_prints("both\n");
    http("POST", "invocation/l-3/response", NULL, "{}", &r);
    reply_free(&r);
    runtime_prints("l-4 alone\n");
    http("POST", "invocation/l-4/response", NULL, "{}", &r);
    reply_free(&r);
    a = await_answer(id1, 5000);
    assert_string_equal(str(a, "log"), "idle\nboth\n");
    cJSON_Delete(a);
    a = await_answer(id2, 5000);
    assert_string_equal(str(a, "log"), "both\nl-4 alone\n");
    cJSON_Delete(a);

    /* More idle output than the ring holds: the log says how much was dropped, keeps the rest
     * and ends with the invocation's own output. */
    static char chunk[10001];
    memset(chunk, 'z', sizeof(chunk) - 2);
    chunk[sizeof(chunk) - 2] = '\n';
    for (int i = 0; i < 10; i++)
        runtime_prints(chunk);
    id = send_invoke("l-5", "\"{}\"", "");
    http("GET", "invocation/next", NULL, NULL, &r);
    reply_free(&r);
    runtime_prints("during l-5\n");
    http("POST", "invocation/l-5/response", NULL, "{}", &r);
    reply_free(&r);
    a = await_answer(id, 5000);
    const char *log = str(a, "log");
    unsigned long long dropped = 0;
    assert_int_equal(
        sscanf(log, "[easyfaas] %llu bytes of output before this line were dropped", &dropped), 1);
    const char *kept = strchr(log, '\n') + 1;
    assert_int_equal(dropped + strlen(kept), 100000 + strlen("during l-5\n"));
    assert_true(strlen(log) <= EF_LOG_TAIL_MAX);
    assert_string_equal(log + strlen(log) - 11, "during l-5\n");
    cJSON_Delete(a);
}

/* A runtime that fails at init before taking an invocation: the queued invocation's log is what
 * it wrote, once; one queued behind it gets nothing more. */
static void test_init_error_output(void **state)
{
    (void)state;
    runtime_prints("loading app\nTraceback: boom\n");
    int id1 = send_invoke("f-1", "\"{}\"", "");
    int id2 = send_invoke("f-2", "\"{}\"", "");
    struct reply r;
    http("POST", "init/error", NULL, "{\"errorType\":\"Runtime.ImportModuleError\"}", &r);
    reply_free(&r);
    cJSON *a = await_answer(id1, 5000);
    assert_string_equal(str(a, "log"), "loading app\nTraceback: boom\n");
    assert_null(cJSON_GetObjectItem(a, "wait_ms"));
    cJSON_Delete(a);
    a = await_answer(id2, 5000);
    assert_string_equal(str(a, "log"), "");
    cJSON_Delete(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_next_response_and_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_invoke_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_response_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadlines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exit_tells_what_was_delivered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_percent_encoded_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_payloads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_control_byte_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_ms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_between_invocations, setup_capture, teardown),
        cmocka_unit_test_setup_teardown(test_init_error_output, setup_capture, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
