/* The handover of a runtime's connection (docs/handover.md) without a container: two real
 * Runtime APIs of rapi/ on one libuv loop in a background thread, the "runner's" listening on
 * loopback and the "controller's" serving only what it adopts, each with its own invocation
 * queue and log capture; and the JSON-RPC pieces the handover rides on (descriptors with an
 * answer, local requests). The test thread plays the runtime with one keep-alive connection and
 * writes its output into a pipe.
 *
 * Covered: an invocation served by the runner, the connection and the output pipe handed over,
 * the next invocation served by the other side on the same connection with its own log (and
 * the output written in between); the refusals (a connection that carried one request only,
 * two connections, bytes behind the poll) leaving the runner serving as before; descriptors
 * passed with an RPC answer and taken in order; local requests answered through their callback
 * and cancelled without one. */
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
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/rpc.h"
#include "rapi/invocations.h"
#include "rapi/log_capture.h"
#include "rapi/runtime_api.h"

#include "loop_thread.h"

/* One side that serves the runtime: the runner's (listening) or the controller's (adopting). */
struct side {
    struct ef_runtime_api api;
    struct ef_invocations invs;
    struct ef_log_capture capture;
};

static struct {
    struct loop_thread lt;

    struct side runner, controller;
    bool adopted;
    int port;
    int out_fd; /* the runtime's end of its output pipe */
    /* Answers of invocations, as the local requests' callbacks saw them (loop thread). */
    cJSON *answers[8];
    int n_answers;
} L;

static void on_stop(void *arg)
{
    (void)arg;
    struct side *sides[2] = {&L.runner, &L.controller};
    for (int i = 0; i < 2; i++) {
        ef_invocations_free(&sides[i]->invs, "the test is over");
        ef_runtime_api_close(&sides[i]->api);
        ef_log_capture_close(&sides[i]->capture);
    }
}

/* Runs fn(arg) on the loop thread and waits for it. */
static void on_loop(void (*fn)(void *arg), void *arg)
{
    loop_thread_call(&L.lt, fn, arg);
}

/* ---- invocations, submitted with local requests (loop thread) ---- */

static void on_answer(ef_rpc_conn *conn, const cJSON *result, const struct ef_rpc_error *error,
                      void *user)
{
    (void)user;
    assert_null(conn);
    cJSON *copy = result ? cJSON_Duplicate(result, 1) : cJSON_CreateString(error->message);
    uv_mutex_lock(&L.lt.lock);
    if (L.n_answers < (int)EF_ARRAY_SIZE(L.answers))
        L.answers[L.n_answers++] = copy;
    else
        cJSON_Delete(copy);
    uv_mutex_unlock(&L.lt.lock);
}

struct submit {
    struct side *side;
    const char *request_id;
};

static void submit(void *arg)
{
    struct submit *s = arg;
    cJSON *params = cJSON_CreateObject();
    cJSON_AddStringToObject(params, "request_id", s->request_id);
    cJSON_AddStringToObject(params, "payload", "{\"n\":1}");
    ef_error err = {0};
    struct ef_invocation *inv = NULL;
    assert_int_equal(ef_invocation_parse(params, (long long)ef_now_epoch_ms() + 60000,
                                         "arn:aws:lambda:us-east-1:000000000000:function:t", &inv,
                                         &err),
                     0);
    cJSON_Delete(params);
    inv->req = ef_rpc_request_local(on_answer, NULL);
    assert_non_null(inv->req);
    assert_int_equal(ef_invocations_submit(&s->side->invs, inv), 0);
}

/* Waits for the n-th answer (1-based) and returns it (owned by L). */
static const cJSON *await_answer(int n)
{
    for (int i = 0; i < 500; i++) {
        uv_mutex_lock(&L.lt.lock);
        const cJSON *a = L.n_answers >= n ? L.answers[n - 1] : NULL;
        uv_mutex_unlock(&L.lt.lock);
        if (a)
            return a;
        usleep(10000);
    }
    fail_msg("no answer number %d", n);
    return NULL;
}

static const char *str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- the runtime: one keep-alive connection ---- */

static int runtime_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)L.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void send_text(int fd, const char *text)
{
    size_t len = strlen(text);
    while (len > 0) {
        ssize_t n = send(fd, text, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        assert_true(n > 0);
        text += n;
        len -= (size_t)n;
    }
}

static const char next_request[] = "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n"
                                   "Host: 127.0.0.1\r\n\r\n";

/* What the runtime has received and not read yet, and whether the 202 to its last post is
 * still to come: the Runtime API holds it back to send it with the answer to the poll
 * pipelined behind the post (or before the connection changes hands). */
static struct {
    char buf[16384];
    size_t len;
    bool post_answer_due;
} RX;

/* Reads one response (head and Content-Length body) into buf; returns its status. `segments`
 * (may be NULL) counts the receives it took. */
static int read_response_counted(int fd, char *buf, size_t size, int *segments)
{
    for (;;) {
        RX.buf[RX.len] = '\0';
        char *end = strstr(RX.buf, "\r\n\r\n");
        if (end) {
            const char *cl = strcasestr(RX.buf, "Content-Length:");
            size_t body = cl && cl < end ? strtoul(cl + 15, NULL, 10) : 0;
            size_t total = (size_t)(end + 4 - RX.buf) + body;
            if (RX.len >= total) {
                assert_true(total < size);
                memcpy(buf, RX.buf, total);
                buf[total] = '\0';
                memmove(RX.buf, RX.buf + total, RX.len - total);
                RX.len -= total;
                return atoi(buf + 9);
            }
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        assert_int_equal(poll(&pfd, 1, 5000), 1);
        ssize_t n = read(fd, RX.buf + RX.len, sizeof(RX.buf) - RX.len - 1);
        assert_true(n > 0);
        RX.len += (size_t)n;
        if (segments)
            (*segments)++;
    }
}

static int read_response(int fd, char *buf, size_t size)
{
    return read_response_counted(fd, buf, size, NULL);
}

/* Takes the event waiting on the connection (behind the 202 to the last post, if that is still
 * due) and answers it with `body`, then polls again, as the bundled runtimes do (post and poll
 * in one write). Returns how many receives the 202 and the event took. */
static int serve_one(int fd, const char *request_id, const char *output, const char *body)
{
    char buf[8192];
    int segments = 0;
    if (RX.post_answer_due)
        assert_int_equal(read_response_counted(fd, buf, sizeof(buf), &segments), 202);
    assert_int_equal(read_response_counted(fd, buf, sizeof(buf), &segments), 200);
    assert_int_equal(RX.len, 0); /* nothing arrives unasked */
    char want[200];
    snprintf(want, sizeof(want), "Lambda-Runtime-Aws-Request-Id: %s\r\n", request_id);
    assert_non_null(strstr(buf, want));
    if (output)
        assert_int_equal(write(L.out_fd, output, strlen(output)), (ssize_t)strlen(output));
    char post[1024];
    snprintf(post, sizeof(post),
             "POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             "Content-Length: %zu\r\n\r\n%s%s",
             request_id, strlen(body), body, next_request);
    send_text(fd, post);
    RX.post_answer_due = true;
    return segments;
}

/* A runtime connected to the runner's side that has served invocation r1 there and polls
 * again on the same connection: what qualifies for a handover. Returns its socket. */
static int runtime_after_one_invocation(void)
{
    int fd = runtime_connect();
    send_text(fd, next_request);
    struct submit s1 = {&L.runner, "r1"};
    on_loop(submit, &s1);
    serve_one(fd, "r1", NULL, "1");
    assert_string_equal(str(await_answer(1), "status"), "ok");
    return fd;
}

/* ---- the handover itself (loop thread) ---- */

static int handover_result;

static void hand_over(void *arg)
{
    (void)arg;
    ef_error err = {0};
    int conn_fd = -1;
    handover_result = ef_runtime_api_hand_over(&L.runner.api, &conn_fd, &err);
    if (handover_result < 0)
        return;
    int log_fd = ef_log_capture_detach(&L.runner.capture);
    assert_true(log_fd >= 0);
    /* What the runtime wrote since its last invocation travels with it (the runner's answer
     * carries it as "log"). */
    char *pending = ef_log_ring_excerpt(&L.runner.capture.ring, L.runner.invs.log_consumed);
    assert_non_null(pending);
    ef_log_ring_append(&L.controller.capture.ring, pending, strlen(pending));
    free(pending);
    assert_int_equal(ef_log_capture_start(&L.controller.capture, &L.lt.loop, log_fd, -1, &err), 0);
    assert_int_equal(ef_runtime_api_adopt(&L.controller.api, &L.lt.loop, &L.controller.invs,
                                          conn_fd, NULL, NULL, &err),
                     0);
    L.adopted = true;
}

/* ---- setup ---- */

static void start(void *arg)
{
    int log_fd = *(int *)arg;
    ef_error err = {0};
    assert_int_equal(ef_runtime_api_start(&L.runner.api, &L.lt.loop, 0, &L.runner.invs, &err), 0);
    L.port = ef_runtime_api_port(&L.runner.api);
    assert_int_equal(ef_log_capture_start(&L.runner.capture, &L.lt.loop, log_fd, -1, &err), 0);
}

static int setup(void **state)
{
    (void)state;
    memset(&L, 0, sizeof(L));
    memset(&RX, 0, sizeof(RX));
    assert_int_equal(loop_thread_init(&L.lt), 0);
    struct side *sides[2] = {&L.runner, &L.controller};
    for (int i = 0; i < 2; i++) {
        ef_log_capture_init(&sides[i]->capture);
        ef_invocations_init(&sides[i]->invs, &sides[i]->capture);
    }
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
    L.out_fd = p[1];
    assert_int_equal(loop_thread_run(&L.lt, on_stop, NULL), 0);
    on_loop(start, &p[0]);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    close(L.out_fd);
    /* Every handle was closed: a leak fails here. */
    assert_int_equal(loop_thread_stop(&L.lt), 0);
    for (int i = 0; i < L.n_answers; i++)
        cJSON_Delete(L.answers[i]);
    return 0;
}

/* ---- tests ---- */

static void test_handover_serves_the_same_connection(void **state)
{
    (void)state;
    int fd = runtime_connect();
    send_text(fd, next_request);
    struct submit s1 = {&L.runner, "r1"};
    on_loop(submit, &s1);
    serve_one(fd, "r1", "one\n", "\"first\"");
    const cJSON *a1 = await_answer(1);
    assert_string_equal(str(a1, "status"), "ok");
    assert_string_equal(str(a1, "payload"), "\"first\"");
    assert_string_equal(str(a1, "log"), "one\n");

    /* Written while no invocation runs: it belongs to the next one, on the other side. */
    assert_int_equal(write(L.out_fd, "idle\n", 5), 5);
    usleep(50000);
    on_loop(hand_over, NULL);
    assert_int_equal(handover_result, 0);
    /* The runner's 202 to the post, held for the poll's answer, went out before the
     * connection changed hands. */
    char buf[4096];
    assert_int_equal(read_response(fd, buf, sizeof(buf)), 202);
    RX.post_answer_due = false;

    struct submit s2 = {&L.controller, "r2"};
    on_loop(submit, &s2);
    assert_int_equal(serve_one(fd, "r2", "two\n", "\"second\""), 1);
    const cJSON *a2 = await_answer(2);
    assert_string_equal(str(a2, "status"), "ok");
    assert_string_equal(str(a2, "payload"), "\"second\"");
    assert_string_equal(str(a2, "log"), "idle\ntwo\n");

    /* The runner's side no longer holds the connection: what is submitted there stays queued,
     * and the runtime goes on taking the other side's invocations. */
    struct submit s3 = {&L.runner, "r3"};
    on_loop(submit, &s3);
    struct submit s4 = {&L.controller, "r4"};
    on_loop(submit, &s4);
    /* The 202 to the post of r2 went out with r4, in one segment. */
    assert_int_equal(serve_one(fd, "r4", NULL, "\"fourth\""), 1);
    assert_string_equal(str(await_answer(3), "payload"), "\"fourth\"");
    uv_mutex_lock(&L.lt.lock);
    assert_int_equal(L.n_answers, 3);
    uv_mutex_unlock(&L.lt.lock);
    close(fd);
}

static void test_handover_refused_after_one_request(void **state)
{
    (void)state;
    /* A runtime that polls on a fresh connection (one per request) never qualifies. */
    int fd = runtime_connect();
    send_text(fd, next_request);
    usleep(50000);
    on_loop(hand_over, NULL);
    assert_int_equal(handover_result, -EBUSY);
    /* The runner still serves it. */
    struct submit s1 = {&L.runner, "r1"};
    on_loop(submit, &s1);
    serve_one(fd, "r1", NULL, "1");
    assert_string_equal(str(await_answer(1), "status"), "ok");
    /* Now it has kept its connection: granted. */
    on_loop(hand_over, NULL);
    assert_int_equal(handover_result, 0);
    close(fd);
}

static void test_handover_refused_with_two_connections(void **state)
{
    (void)state;
    int fd = runtime_after_one_invocation();
    int other = runtime_connect();
    usleep(50000);
    on_loop(hand_over, NULL);
    assert_int_equal(handover_result, -EBUSY);
    close(other);
    usleep(50000);
    on_loop(hand_over, NULL);
    assert_int_equal(handover_result, 0);
    close(fd);
}

static void test_handover_refused_with_bytes_behind_the_poll(void **state)
{
    (void)state;
    int fd = runtime_after_one_invocation();
    /* A second poll pipelined behind the waiting one: the new owner would not see it. */
    send_text(fd, next_request);
    usleep(50000);
    on_loop(hand_over, NULL);
    assert_int_equal(handover_result, -EBUSY);
    /* Nothing changed hands: the runner answers the waiting poll. */
    struct submit s2 = {&L.runner, "r2"};
    on_loop(submit, &s2);
    char buf[4096];
    assert_int_equal(read_response(fd, buf, sizeof(buf)), 202);
    assert_int_equal(read_response(fd, buf, sizeof(buf)), 200);
    assert_non_null(strstr(buf, "Lambda-Runtime-Aws-Request-Id: r2\r\n"));
    close(fd);
}

/* ---- JSON-RPC: descriptors with an answer, local requests ---- */

static struct {
    ef_rpc_conn *server, *client;
    int pipe_w; /* passed by the server with its answer */
    int got[3];
    int n_got;
    bool answered;
} R;

static void on_server_request(ef_rpc_conn *conn, ef_rpc_request *req, const char *method,
                              const cJSON *params, void *user)
{
    (void)conn;
    (void)method;
    (void)params;
    (void)user;
    int fds[2] = {R.pipe_w, R.pipe_w};
    assert_int_equal(ef_rpc_reply_fds(req, cJSON_CreateObject(), fds, 2), 0);
}

static void on_client_answer(ef_rpc_conn *conn, const cJSON *result,
                             const struct ef_rpc_error *error, void *user)
{
    (void)user;
    assert_null(error);
    assert_non_null(result);
    while (R.n_got < 3 && ef_rpc_conn_take_fd(conn, &R.got[R.n_got]) == 0)
        R.n_got++;
    R.answered = true;
    ef_rpc_conn_close(R.client);
    ef_rpc_conn_close(R.server);
}

static const struct ef_rpc_handlers server_handlers = {.on_request = on_server_request};
static const struct ef_rpc_handlers client_handlers = {.receive_fds = true};

static void test_rpc_answer_with_descriptors(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    memset(&R, 0, sizeof(R));
    int sv[2], p[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    R.pipe_w = p[1];
    ef_error err = {0};
    assert_int_equal(ef_rpc_conn_open_fd(&loop, sv[0], &server_handlers, NULL, &R.server, &err), 0);
    assert_int_equal(ef_rpc_conn_open_fd(&loop, sv[1], &client_handlers, NULL, &R.client, &err), 0);
    assert_int_equal(ef_rpc_call(R.client, "give", NULL, 5000, on_client_answer, NULL), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_true(R.answered);
    assert_int_equal(R.n_got, 2);
    /* Each is a working copy of the pipe's write end. */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(fcntl(R.got[i], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
        assert_int_equal(write(R.got[i], "x", 1), 1);
        close(R.got[i]);
    }
    char buf[4];
    assert_int_equal(read(p[0], buf, sizeof(buf)), 2);
    close(p[0]);
    close(p[1]);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static int local_calls;
static char local_seen[128];

static void on_local(ef_rpc_conn *conn, const cJSON *result, const struct ef_rpc_error *error,
                     void *user)
{
    assert_null(conn);
    assert_ptr_equal(user, &local_calls);
    local_calls++;
    if (error)
        snprintf(local_seen, sizeof(local_seen), "error %d %s", error->code, error->message);
    else
        snprintf(local_seen, sizeof(local_seen), "result %s", str(result, "status"));
}

static void test_local_requests(void **state)
{
    (void)state;
    local_calls = 0;
    ef_rpc_request *req = ef_rpc_request_local(on_local, &local_calls);
    cJSON *res = cJSON_CreateObject();
    cJSON_AddStringToObject(res, "status", "ok");
    ef_rpc_reply(req, res);
    assert_int_equal(local_calls, 1);
    assert_string_equal(local_seen, "result ok");

    req = ef_rpc_request_local(on_local, &local_calls);
    ef_rpc_reply_error(req, EF_RPC_ERR_BUSY, NULL, "busy %d", 7);
    assert_int_equal(local_calls, 2);
    assert_string_equal(local_seen, "error -32011 busy 7");

    req = ef_rpc_request_local(on_local, &local_calls);
    assert_null(ef_rpc_request_conn(req));
    ef_rpc_request_local_cancel(req);
    assert_int_equal(local_calls, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_handover_serves_the_same_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handover_refused_after_one_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handover_refused_with_two_connections, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_handover_refused_with_bytes_behind_the_poll, setup,
                                        teardown),
        cmocka_unit_test(test_rpc_answer_with_descriptors),
        cmocka_unit_test(test_local_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
