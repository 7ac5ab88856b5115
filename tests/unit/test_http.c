/* Tests of the HTTP server (common/http.c): a real server on 127.0.0.1 with an ephemeral port,
 * driven by a raw TCP client running in a second thread while the test thread runs the loop.
 * The client thread never calls cmocka; it records its first failed check, which the test
 * thread asserts on after the loop has ended. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>

#include "common/http.h"

enum handler_mode {
    MODE_ECHO,    /* answer at once with a description of the request */
    MODE_ASYNC,   /* answer from a timer 50 ms later */
    MODE_PENDING, /* never answer; wait for the client to go away */
    MODE_STATUS,  /* answer with the status given in the X-Status header */
    /* /wait is left pending; /stop shuts the server down (ef_http_server_shutdown with
     * grace_ms), answers itself and, when answer_pending is set, the pending /wait; anything
     * else is echoed. */
    MODE_SHUTDOWN,
    /* /wait is answered from a timer 100 ms later, /park never (it waits for the client to go
     * away); anything else is echoed, and with hold_for_next its answer may wait for the next
     * request's. */
    MODE_COALESCE,
};

struct fixture {
    uv_loop_t loop;
    ef_http_server *server;
    struct ef_http_server_config config;
    enum handler_mode mode;
    int port;
    uv_async_t done;
    uv_timer_t timer;
    bool timer_used;
    ef_http_exchange *pending;
    pthread_t thread;
    void (*client)(struct fixture *f);
    atomic_int handled;
    atomic_int aborted;
    atomic_int aborted_by_close; /* aborts that happened because the server closed */
    atomic_int protocol_errors;
    atomic_int last_error_status;
    bool server_closing;
    bool server_shut; /* ef_http_server_shutdown was called: the server is no longer ours */
    unsigned grace_ms;
    bool answer_pending;
    bool hold_for_next; /* MODE_COALESCE: echoed answers may wait for the next request's */
    int kept_fd;        /* a client socket left open until the loop has ended */
    /* What the body_limit and protocol error hooks saw (written on the loop thread, read once
     * the loop has ended). */
    atomic_int limit_calls;
    char limit_seen[256];
    char error_seen[256];
    char failure[512];
};

/* ---- client side (runs in the client thread) ------------------------------------------- */

#define CHECK(f, cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            if (!(f)->failure[0])                                                                  \
                snprintf((f)->failure, sizeof((f)->failure), "%s:%d: check failed: %s", __FILE__,  \
                         __LINE__, #cond);                                                         \
            return;                                                                                \
        }                                                                                          \
    } while (0)

struct reader {
    int fd;
    char buf[8 * 1024 * 1024];
    size_t len;
};

struct response {
    int status;
    char head[16384];
    char *body; /* malloc'd, NUL-terminated */
    size_t body_len;
};

static int client_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool send_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static bool send_str(int fd, const char *s)
{
    return send_all(fd, s, strlen(s));
}

/* Reads more bytes into the reader; false on EOF, error or timeout. */
static bool reader_fill(struct reader *r)
{
    if (r->len == sizeof(r->buf))
        return false;
    ssize_t n;
    do
        n = recv(r->fd, r->buf + r->len, sizeof(r->buf) - r->len, 0);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return false;
    r->len += (size_t)n;
    return true;
}

static void reader_consume(struct reader *r, size_t n)
{
    memmove(r->buf, r->buf + n, r->len - n);
    r->len -= n;
}

static const char *find_header(const char *head, const char *name, char *value, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *line = strstr(head, "\r\n"); line; line = strstr(line, "\r\n")) {
        line += 2;
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            const char *end = strstr(v, "\r\n");
            size_t n = end ? (size_t)(end - v) : strlen(v);
            if (n >= cap)
                n = cap - 1;
            memcpy(value, v, n);
            value[n] = '\0';
            return value;
        }
    }
    return NULL;
}

/* Reads one response (head and, unless `head_only`, its Content-Length body); false if none
 * arrives complete. */
static bool read_response_ex(struct reader *r, struct response *resp, bool head_only)
{
    memset(resp, 0, sizeof(*resp));
    char *end;
    while (!(end = memmem(r->buf, r->len, "\r\n\r\n", 4))) {
        if (!reader_fill(r))
            return false;
    }
    size_t head_len = (size_t)(end - r->buf) + 4;
    if (head_len >= sizeof(resp->head))
        return false;
    memcpy(resp->head, r->buf, head_len);
    resp->head[head_len] = '\0';
    reader_consume(r, head_len);
    if (sscanf(resp->head, "HTTP/1.1 %d ", &resp->status) != 1)
        return false;
    char cl[32];
    size_t len = 0;
    if (!head_only && find_header(resp->head, "Content-Length", cl, sizeof(cl)))
        len = strtoul(cl, NULL, 10);
    resp->body = malloc(len + 1);
    while (r->len < len) {
        if (!reader_fill(r)) {
            free(resp->body);
            resp->body = NULL;
            return false;
        }
    }
    memcpy(resp->body, r->buf, len);
    resp->body[len] = '\0';
    resp->body_len = len;
    reader_consume(r, len);
    return true;
}

static bool read_response(struct reader *r, struct response *resp)
{
    return read_response_ex(r, resp, false);
}

/* True when the server closes the connection (EOF or reset) within the receive timeout. */
static bool wait_closed(struct reader *r)
{
    for (;;) {
        char tmp[4096];
        ssize_t n = recv(r->fd, tmp, sizeof(tmp), 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return true;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return false;
    }
}

static bool wait_for(atomic_int *counter, int value)
{
    for (int i = 0; i < 500; i++) {
        if (atomic_load(counter) >= value)
            return true;
        usleep(10000);
    }
    return false;
}

static struct reader *reader_new(struct fixture *f)
{
    struct reader *r = calloc(1, sizeof(*r));
    r->fd = client_connect(f->port);
    return r;
}

static void reader_free(struct reader *r)
{
    if (r->fd >= 0)
        close(r->fd);
    free(r);
}

/* ---- server side (runs on the loop) ----------------------------------------------------- */

static void echo(ef_http_exchange *ex, const struct ef_http_request *req)
{
    char *body = malloc(req->body_len + 512);
    int n = snprintf(body, 512, "%s %s ?%s len=%zu body=", req->method, req->path, req->query,
                     req->body_len);
    memcpy(body + n, req->body, req->body_len);
    const char *t = ef_http_request_header(req, "X-Test");
    char count[16];
    snprintf(count, sizeof(count), "%zu", req->n_headers);
    struct ef_http_header headers[] = {
        {"X-Header-Count", count},
        {"X-Test-Echo", t ? t : "(none)"},
    };
    ef_http_respond(ex, 200, headers, 2, "text/plain", body, (size_t)n + req->body_len);
    free(body);
}

static void on_abort(ef_http_exchange *ex, void *user)
{
    struct fixture *f = user;
    assert_ptr_equal(ex, f->pending);
    f->pending = NULL;
    if (f->server_closing)
        atomic_fetch_add(&f->aborted_by_close, 1);
    atomic_fetch_add(&f->aborted, 1);
}

static void on_timer(uv_timer_t *t)
{
    struct fixture *f = t->data;
    if (f->pending) {
        ef_http_exchange *ex = f->pending;
        f->pending = NULL;
        ef_http_respond(ex, 202, NULL, 0, "text/plain", "later", 5);
    }
}

/* Answers `ex` with 202 "later" from a timer `ms` from now. */
static void answer_later(struct fixture *f, ef_http_exchange *ex, uint64_t ms)
{
    f->pending = ex;
    ef_http_exchange_on_abort(ex, on_abort, f);
    if (!f->timer_used) {
        uv_timer_init(&f->loop, &f->timer);
        f->timer.data = f;
        f->timer_used = true;
    }
    uv_timer_start(&f->timer, on_timer, ms, 0);
}

static void handler(ef_http_exchange *ex, const struct ef_http_request *req, void *user)
{
    struct fixture *f = user;
    atomic_fetch_add(&f->handled, 1);
    switch (f->mode) {
    case MODE_ECHO:
        echo(ex, req);
        break;
    case MODE_ASYNC:
        answer_later(f, ex, 50);
        break;
    case MODE_COALESCE:
        if (strcmp(req->path, "/wait") == 0) {
            answer_later(f, ex, 100);
        } else if (strcmp(req->path, "/park") == 0) {
            f->pending = ex;
            ef_http_exchange_on_abort(ex, on_abort, f);
        } else {
            if (f->hold_for_next)
                ef_http_exchange_hold_for_next(ex);
            echo(ex, req);
        }
        break;
    case MODE_PENDING:
        f->pending = ex;
        ef_http_exchange_on_abort(ex, on_abort, f);
        break;
    case MODE_SHUTDOWN:
        if (strcmp(req->path, "/wait") == 0) {
            f->pending = ex;
            ef_http_exchange_on_abort(ex, on_abort, f);
        } else if (strcmp(req->path, "/stop") == 0) {
            f->server_shut = true;
            f->server_closing = true;
            ef_http_server_shutdown(f->server, f->grace_ms);
            ef_http_respond(ex, 200, NULL, 0, "text/plain", "stopping", 8);
            if (f->answer_pending && f->pending) {
                ef_http_exchange *w = f->pending;
                f->pending = NULL;
                ef_http_respond(w, 503, NULL, 0, "text/plain", "stopped", 7);
            }
        } else {
            echo(ex, req);
        }
        break;
    case MODE_STATUS: {
        const char *s = ef_http_request_header(req, "X-Status");
        /* Headers the server owns, or that would inject a line, must not get through. */
        const struct ef_http_header h[] = {
            {"Content-Length", "999"},
            {"X-Injected", "a\r\nSet-Cookie: x=1"},
            {"Bad Name", "x"},
        };
        ef_http_respond(ex, s ? atoi(s) : 200, h, 3, NULL, "body", 4);
        break;
    }
    }
}

static void custom_protocol_error(ef_http_exchange *ex, int status, const char *message, void *user)
{
    struct fixture *f = user;
    atomic_fetch_add(&f->protocol_errors, 1);
    atomic_store(&f->last_error_status, status);
    const struct ef_http_request *req = ef_http_exchange_request(ex);
    snprintf(f->error_seen, sizeof(f->error_seen), "%s %s ?%s headers=%zu body=%zu", req->method,
             req->path, req->query, req->n_headers, req->body_len);
    char body[256];
    int n = snprintf(body, sizeof(body), "custom %d: %s", status, message);
    struct ef_http_header h[] = {{"x-amzn-ErrorType", "RequestTooLargeException"}};
    ef_http_respond(ex, status, h, 1, "text/plain", body, (size_t)n);
}

/* Bodies of /small may have 16 bytes, of anything else what max_body allows. */
static size_t route_body_limit(const struct ef_http_request *req, void *user)
{
    struct fixture *f = user;
    atomic_fetch_add(&f->limit_calls, 1);
    const char *t = ef_http_request_header(req, "X-Test");
    snprintf(f->limit_seen, sizeof(f->limit_seen), "%s %s ?%s X-Test=%s body=%zu", req->method,
             req->path, req->query, t ? t : "(none)", req->body_len);
    return strcmp(req->path, "/small") == 0 ? 16 : SIZE_MAX;
}

static void on_done(uv_async_t *a)
{
    struct fixture *f = a->data;
    f->server_closing = true;
    if (!f->server_shut)
        ef_http_server_close(f->server);
    uv_close((uv_handle_t *)&f->done, NULL);
    if (f->timer_used)
        uv_close((uv_handle_t *)&f->timer, NULL);
}

static void *client_main(void *arg)
{
    struct fixture *f = arg;
    f->client(f);
    uv_async_send(&f->done);
    return NULL;
}

static void fixture_init(struct fixture *f)
{
    memset(f, 0, sizeof(*f));
    f->mode = MODE_ECHO;
}

/* Serves until the client function has finished, then closes everything and checks that no
 * handle was left open and that the client's checks passed. */
static void run(struct fixture *f, void (*client)(struct fixture *f))
{
    ef_error err = {0};
    assert_int_equal(uv_loop_init(&f->loop), 0);
    int r =
        ef_http_server_listen(&f->loop, "127.0.0.1", 0, &f->config, handler, f, &f->server, &err);
    if (r < 0)
        fail_msg("listen: %s", err.msg);
    f->port = ef_http_server_port(f->server);
    assert_true(f->port > 0);
    f->client = client;
    assert_int_equal(uv_async_init(&f->loop, &f->done, on_done), 0);
    f->done.data = f;
    assert_int_equal(pthread_create(&f->thread, NULL, client_main, f), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    pthread_join(f->thread, NULL);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    if (f->failure[0])
        fail_msg("%s", f->failure);
}

/* ---- tests ------------------------------------------------------------------------------ */

static void client_simple_get(struct fixture *f)
{
    struct reader *r = reader_new(f);
    CHECK(f, r->fd >= 0);
    CHECK(f, send_str(r->fd, "GET /hello/world?x=1&y=2 HTTP/1.1\r\nHost: a\r\n\r\n"));
    struct response resp;
    CHECK(f, read_response(r, &resp));
    CHECK(f, resp.status == 200);
    CHECK(f, strncmp(resp.head, "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK(f, strcmp(resp.body, "GET /hello/world ?x=1&y=2 len=0 body=") == 0);
    char v[128];
    CHECK(f, find_header(resp.head, "Content-Type", v, sizeof(v)) && !strcmp(v, "text/plain"));
    CHECK(f, find_header(resp.head, "Connection", v, sizeof(v)) && !strcmp(v, "keep-alive"));
    CHECK(f, find_header(resp.head, "Date", v, sizeof(v)) && strstr(v, "GMT"));
    CHECK(f, find_header(resp.head, "X-Header-Count", v, sizeof(v)) && !strcmp(v, "1"));
    free(resp.body);
    reader_free(r);
}

static void test_simple_get(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    run(&f, client_simple_get);
    assert_int_equal(atomic_load(&f.handled), 1);
}

static void client_post_body(struct fixture *f)
{
    struct reader *r = reader_new(f);
    CHECK(f, r->fd >= 0);
    CHECK(f, send_str(r->fd, "POST /invoke HTTP/1.1\r\nContent-Length: 11\r\n"
                             "Content-Type: application/json\r\n\r\nhello world"));
    struct response resp;
    CHECK(f, read_response(r, &resp));
    CHECK(f, resp.status == 200);
    CHECK(f, strcmp(resp.body, "POST /invoke ? len=11 body=hello world") == 0);
    free(resp.body);

    /* A chunked body of the same text arrives joined. */
    CHECK(f, send_str(r->fd, "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"));
    CHECK(f, read_response(r, &resp));
    CHECK(f, strcmp(resp.body, "POST /c ? len=11 body=hello world") == 0);
    free(resp.body);

    /* Trailers are not headers: the handler sees only what came before the body. */
    CHECK(f, send_str(r->fd, "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "5\r\nhello\r\n0\r\nX-Test: trailer\r\n\r\n"));
    CHECK(f, read_response(r, &resp));
    char seen[64];
    CHECK(f,
          find_header(resp.head, "X-Test-Echo", seen, sizeof(seen)) && strcmp(seen, "(none)") == 0);
    CHECK(f,
          find_header(resp.head, "X-Header-Count", seen, sizeof(seen)) && strcmp(seen, "1") == 0);
    CHECK(f, strcmp(resp.body, "POST /c ? len=5 body=hello") == 0);
    free(resp.body);

    /* A body with a NUL byte keeps its full length. */
    CHECK(f, send_all(r->fd, "PUT /n HTTP/1.1\r\nContent-Length: 3\r\n\r\na\0b", 42));
    CHECK(f, read_response(r, &resp));
    CHECK(f, resp.body_len == strlen("PUT /n ? len=3 body=") + 3);
    CHECK(f, memcmp(resp.body + resp.body_len - 3, "a\0b", 3) == 0);
    free(resp.body);
    reader_free(r);
}

static void test_post_body(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    run(&f, client_post_body);
    assert_int_equal(atomic_load(&f.handled), 4);
}

static void client_keep_alive(struct fixture *f)
{
    struct reader *r = reader_new(f);
    CHECK(f, r->fd >= 0);
    struct response resp;
    for (int i = 0; i < 3; i++) {
        char req[128];
        snprintf(req, sizeof(req), "GET /seq/%d HTTP/1.1\r\nHost: a\r\n\r\n", i);
        CHECK(f, send_str(r->fd, req));
        CHECK(f, read_response(r, &resp));
        char want[64];
        snprintf(want, sizeof(want), "GET /seq/%d ? len=0 body=", i);
        CHECK(f, strcmp(resp.body, want) == 0);
        free(resp.body);
    }
    reader_free(r);
}

static void test_keep_alive(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    run(&f, client_keep_alive);
    assert_int_equal(atomic_load(&f.handled), 3);
}

static void client_pipelined(struct fixture *f)
{
    struct reader *r = reader_new(f);
    CHECK(f, r->fd >= 0);
    CHECK(f, send_str(r->fd, "GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
                             "POST /two HTTP/1.1\r\nContent-Length: 3\r\nX-Test: t2\r\n\r\nabc"
                             "GET /three?q HTTP/1.1\r\nHost: a\r\n\r\n"));
    struct response resp;
    CHECK(f, read_response(r, &resp));
    CHECK(f, strcmp(resp.body, "GET /one ? len=0 body=") == 0);
    free(resp.body);
    CHECK(f, read_response(r, &resp));
    CHECK(f, strcmp(resp.body, "POST /two ? len=3 body=abc") == 0);
    char v[64];
    CHECK(f, find_header(resp.head, "X-Test-Echo", v, sizeof(v)) && !strcmp(v, "t2"));
    free(resp.body);
    CHECK(f, read_response(r, &resp));
    CHECK(f, strcmp(resp.body, "GET /three ?q len=0 body=") == 0);
    free(resp.body);
    reader_free(r);
}

static void test_pipelined(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    run(&f, client_pipelined);
    assert_int_equal(atomic_load(&f.handled), 3);
}

static void client_byte_by_byte(struct fixture *f)
{
    struct reader *r = reader_new(f);
    CHECK(f, r->fd >= 0);
    const char *req = "POST /split?k=v HTTP/1.1\r\nHost: example\r\n"
                      "X-Test: a value split over many reads\r\n"
                      "Content-Length: 10\r\n\r\n0123456789";
    for (const char *p = req; *p; p++) {
        CHECK(f, send_all(r->fd, p, 1));
        usleep(200);
    }
    struct response resp;
    CHECK(f, read_response(r, &resp));
    CHECK(f, strcmp(resp.body, "POST /split ?k=v len=10 body=0123456789") == 0);
    char v[64];
    CHECK(f, find_header(resp.head, "X-Test-Echo", v, sizeof(v)) &&
                 !strcmp(v, "a value split over many reads"));
    CHECK(f, find_header(resp.head, "X-Header-Count", v, sizeof(v)) && !strcmp(v, "3"));
    free(resp.body);
    reader_free(r);
}

static void test_byte_by_byte(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    run(&f, client_byte_by_byte);
    assert_int_equal(atomic_load(&f.handled), 1);
}

static void client_header_case(struct fixture *f)
{
    struct reader *r = reader_new(f);
    CHECK(f, r->fd >= 0);
    CHECK(f, send_str(r->fd, "GET / HTTP/1.1\r\nx-tEsT:   padded value  \r\n\r\n"));
    struct response resp;
    CHECK(f, read_response(r, &resp));
    char v[64];
    CHECK(f, find_header(resp.head, "X-Test-Echo", v, sizeof(v)) && !strcmp(v, "padded value"));
    free(resp.body);
    reader_free(r);
}

static void test_header_case_insensitive(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    run(&f, client_header_case);

    const struct ef_http_header h[] = {{"Content-Type", "a"}, {"X-Amz-Invocation-Type", "Event"}};
    const struct ef_http_request req = {.headers = h, .n_headers = 2};
    assert_string_equal(ef_http_request_header(&req, "content-type"), "a");
    assert_string_equal(ef_http_request_header(&req, "X-AMZ-INVOCATION-TYPE"), "Event");
    assert_null(ef_http_request_header(&req, "X-Amz"));
}

static void test_query_param(void **state)
{
    (void)state;
    const char *q = "Qualifier=%24LATEST&msg=hello%20world+again&bad=%zz%4&empty=&flag"
                    "&na%6De=encoded-key&dup=1&dup=2";
    struct {
        const char *name;
        const char *want;
    } cases[] = {
        {"Qualifier", "$LATEST"},
        {"msg", "hello world+again"},
        {"bad", "%zz%4"},
        {"empty", ""},
        {"flag", ""},
        {"name", "encoded-key"},
        {"dup", "1"},
        {"missing", NULL},
        {"Qual", NULL},
        {"qualifier", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *v = ef_http_query_param(q, cases[i].name);
        if (cases[i].want) {
            assert_non_null(v);
            assert_string_equal(v, cases[i].want);
        } else {
            assert_null(v);
        }
        free(v);
    }
    assert_null(ef_http_query_param("", "a"));
    char *v = ef_http_query_param("a=%41%42", "a");
    assert_string_equal(v, "AB");
    free(v);

    const char *why = NULL;
    assert_true(ef_http_query_valid(NULL, &why));
    assert_true(ef_http_query_valid("", &why));
    assert_true(ef_http_query_valid("Marker=a%2Bb&MaxItems=2&flag", &why));
    assert_false(ef_http_query_valid("MaxItems=1%00garbage", &why));
    assert_non_null(strstr(why, "NUL"));
    assert_false(ef_http_query_valid("Qualifier=1&x=2&Qualifier=2", &why));
    assert_non_null(strstr(why, "more than once"));
    /* The same key however it is encoded. */
    assert_false(ef_http_query_valid("MaxItems=1&Max%49tems=2", &why));
    assert_false(ef_http_query_valid("a%00b=1", &why));
}

static void client_413_content_length(struct fixture *f)
{
    struct reader *r = reader_new(f);
    CHECK(f, r->fd >= 0);
    /* Only the head is sent: the answer must come before the body. */
    CHECK(f, send_str(r->fd, "POST /big HTTP/1.1\r\nContent-Length: 100\r\n\r\n"));
    struct response resp;
    CHECK(f, read_response(r, &resp));
    CHECK(f, resp.status == 413);
    CHECK(f, strstr(resp.body, "\"message\":\"request body is larger than the limit of 16 bytes"));
    char v[64];
    CHECK(f,
          find_header(resp.head, "Content-Type", v, sizeof(v)) && !strcmp(v, "application/json"));
    CHECK(f, find_header(resp.head, "Connection", v, sizeof(v)) && !strcmp(v, "close"));
    free(resp.body);
    CHECK(f, wait_closed(r));
    reader_free(r);

    /* A body at the limit is accepted. */
    r = reader_new(f);
    CHECK(f, send_str(r->fd, "POST /ok HTTP/1.1\r\nContent-Length: 16\r\n\r\n0123456789abcdef"));
    CHECK(f, read_response(r, &resp));
    CHECK(f, resp.status == 200);
    free(resp.body);
    reader_free(r);
}

static void test_413_content_length(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    f.config.max_body = 16;
    run(&f, client_413_content_length);
    assert_int_equal(atomic_load(&f.handled), 1);
}

static void client_413_chunked(struct fixture *f)
{
    struct reader *r = reader_new(f);
    CHECK(f, r->fd >= 0);
    CHECK(f, send_str(r->fd, "POST /big HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "a\r\n0123456789\r\n"));
    usleep(20000);
    CHECK(f, send_str(r->fd, "a\r\n0123456789\r\n"));
    struct response resp;
    CHECK(f, read_response(r, &resp));
    CHECK(f, resp.status == 413);
    free(resp.body);
    CHECK(f, wait_closed(r));
    reader_free(r);
}

static void test_413_chunked(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    f.config.max_body = 16;
    run(&f, client_413_chunked);
    assert_int_equal(atomic_load(&f.handled), 0);
}

static void client_400_garbage(struct fixture *f)
{
    struct reader *r = reader_new(f);
    CHECK(f, r->fd >= 0);
    CHECK(f, send_str(r->fd, "\x01\x02 garbage that is not HTTP\r\n\r\n"));
    struct response resp;
    CHECK(f, read_response(r, &resp));
    CHECK(f, resp.status == 400);
    CHECK(f, strstr(resp.body, "malformed HTTP request"));
    free(resp.body);
    CHECK(f, wait_closed(r));
    reader_free(r);

    /* A bad header after a good request line is also refused. */
    r = reader_new(f);
    CHECK(f, send_str(r->fd, "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n"));
    CHECK(f, read_response(r, &resp));
    CHECK(f, resp.status == 400);
    free(resp.body);
    CHECK(f, wait_closed(r));
    reader_free(r);
}

static void test_400_garbage(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    run(&f, client_400_garbage);
    assert_int_equal(atomic_load(&f.handled), 0);
}

static void client_431(struct fixture *f)
{
    struct reader *r = reader_new(f);
    CHECK(f, r->fd >= 0);
    char big[3000];
    memset(big, 'v', sizeof(big));
    big[sizeof(big) - 1] = '\0';
    CHECK(f, send_str(r->fd, "GET / HTTP/1.1\r\nX-Big: "));
    CHECK(f, send_str(r->fd, big));
    CHECK(f, send_str(r->fd, "\r\n\r\n"));
    struct response resp;
    CHECK(f, read_response(r, &resp));
    CHECK(f, resp.status == 431);
    CHECK(f, strstr(resp.head, "Request Header Fields Too Large"));
    free(resp.body);
    CHECK(f, wait_closed(r));
    reader_free(r);
}

static void test_431(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    f.config.max_header_bytes = 1024;
    run(&f, client_431);
    assert_int_equal(atomic_load(&f.handled), 0);
}

/* 256 header fields are taken, 257 are not, however few bytes they take. */
static void client_many_headers(struct fixture *f)
{
    for (int n = 256; n <= 257; n++) {
        struct reader *r = reader_new(f);
        CHECK(f, r->fd >= 0);
        CHECK(f, send_str(r->fd, "GET / HTTP/1.1\r\nHost: h\r\n"));
        for (int i = 2; i < n; i++) /* with Host and Connection, n fields */
            CHECK(f, send_str(r->fd, "a:\r\n"));
        CHECK(f, send_str(r->fd, "Connection: close\r\n\r\n"));
        struct response resp;
        CHECK(f, read_response(r, &resp));
        CHECK(f, resp.status == (n == 256 ? 200 : 431));
        free(resp.body);
        reader_free(r);
    }
}

static void test_431_header_fields(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    run(&f, client_many_headers);
    assert_int_equal(atomic_load(&f.handled), 1);
}

static void client_async(struct fixture *f)
{
    struct reader *r = reader_new(f);
    CHECK(f, r->fd >= 0);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    /* The second request waits behind the first, which is answered late. */
    CHECK(f, send_str(r->fd, "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n"));
    struct response resp;
    CHECK(f, read_response(r, &resp));
    clock_gettime(CLOCK_MONOTONIC, &b);
    long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    CHECK(f, resp.status == 202);
    CHECK(f, strstr(resp.head, "202 Accepted"));
    CHECK(f, strcmp(resp.body, "later") == 0);
    CHECK(f, ms >= 45);
    free(resp.body);
    CHECK(f, read_response(r, &resp));
    CHECK(f, resp.status == 202);
    free(resp.body);
    reader_free(r);
}

static void test_async_response(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    f.mode = MODE_ASYNC;
    run(&f, client_async);
    assert_int_equal(atomic_load(&f.handled), 2);
    assert_int_equal(atomic_load(&f.aborted), 0);
}

static void client_abort(struct fixture *f)
{
    struct reader *r = reader_new(f);
    CHECK(f, r->fd >= 0);
    CHECK(f, send_str(r->fd, "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n\r\n"));
    CHECK(f, wait_for(&f->handled, 1));
    close(r->fd);
    r->fd = -1;
    CHECK(f, wait_for(&f->aborted, 1));
    reader_free(r);
}

static void test_abort_on_disconnect(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    f.mode = MODE_PENDING;
    run(&f, client_abort);
    assert_int_equal(atomic_load(&f.aborted), 1);
    assert_int_equal(atomic_load(&f.aborted_by_close), 0);
}

static void client_pending_at_close(struct fixture *f)
{
    struct reader *r = reader_new(f);
    CHECK(f, r->fd >= 0);
    CHECK(f, send_str(r->fd, "GET /next HTTP/1.1\r\n\r\n"));
    CHECK(f, wait_for(&f->handled, 1));
    /* The connection stays open: closing the server must abort the exchange. */
    f->kept_fd = r->fd;
    r->fd = -1;
    reader_free(r);
}

static void test_abort_on_server_close(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    f.mode = MODE_PENDING;
    run(&f, client_pending_at_close);
    close(f.kept_fd);
    assert_int_equal(atomic_load(&f.aborted), 1);
    assert_int_equal(atomic_load(&f.aborted_by_close), 1);
}

/* An idle keep-alive connection, a pending exchange and the request that shuts the server down:
 * the idle one is closed, the others are answered with Connection: close and then closed, and
 * no new connection is accepted. */
static void client_shutdown(struct fixture *f)
{
    struct reader *idle = reader_new(f);
    CHECK(f, idle->fd >= 0);
    CHECK(f, send_str(idle->fd, "GET /idle HTTP/1.1\r\n\r\n"));
    struct response resp;
    CHECK(f, read_response(idle, &resp));
    CHECK(f, resp.status == 200);
    free(resp.body);

    struct reader *w = reader_new(f);
    CHECK(f, w->fd >= 0);
    CHECK(f, send_str(w->fd, "GET /wait HTTP/1.1\r\n\r\n"));
    CHECK(f, wait_for(&f->handled, 2));

    struct reader *stop = reader_new(f);
    CHECK(f, stop->fd >= 0);
    CHECK(f, send_str(stop->fd, "GET /stop HTTP/1.1\r\n\r\n"));
    char v[64];
    CHECK(f, read_response(stop, &resp));
    CHECK(f, resp.status == 200);
    CHECK(f, find_header(resp.head, "Connection", v, sizeof(v)) && !strcmp(v, "close"));
    free(resp.body);
    CHECK(f, wait_closed(stop));

    if (f->answer_pending) {
        CHECK(f, read_response(w, &resp));
        CHECK(f, resp.status == 503);
        CHECK(f, strcmp(resp.body, "stopped") == 0);
        CHECK(f, find_header(resp.head, "Connection", v, sizeof(v)) && !strcmp(v, "close"));
        free(resp.body);
    }
    /* Unanswered, the exchange is aborted once the grace period is over. */
    CHECK(f, wait_closed(w));
    CHECK(f, wait_closed(idle));
    CHECK(f, client_connect(f->port) < 0);
    reader_free(idle);
    reader_free(w);
    reader_free(stop);
}

static void test_shutdown_answers_pending(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    f.mode = MODE_SHUTDOWN;
    f.grace_ms = 10000;
    f.answer_pending = true;
    run(&f, client_shutdown);
    assert_int_equal(atomic_load(&f.aborted), 0);
    assert_int_equal(atomic_load(&f.handled), 3);
}

static void test_shutdown_grace_ends(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    f.mode = MODE_SHUTDOWN;
    f.grace_ms = 200;
    run(&f, client_shutdown);
    assert_int_equal(atomic_load(&f.aborted), 1);
    assert_int_equal(atomic_load(&f.aborted_by_close), 1);
}

static void client_connection_close(struct fixture *f)
{
    struct reader *r = reader_new(f);
    CHECK(f, r->fd >= 0);
    CHECK(f, send_str(r->fd, "GET /bye HTTP/1.1\r\nConnection: close\r\n\r\n"
                             "GET /ignored HTTP/1.1\r\n\r\n"));
    struct response resp;
    CHECK(f, read_response(r, &resp));
    CHECK(f, resp.status == 200);
    char v[64];
    CHECK(f, find_header(resp.head, "Connection", v, sizeof(v)) && !strcmp(v, "close"));
    free(resp.body);
    CHECK(f, wait_closed(r));
    reader_free(r);

    /* HTTP/1.0 without keep-alive also closes. */
    r = reader_new(f);
    CHECK(f, send_str(r->fd, "GET /old HTTP/1.0\r\n\r\n"));
    CHECK(f, read_response(r, &resp));
    CHECK(f, find_header(resp.head, "Connection", v, sizeof(v)) && !strcmp(v, "close"));
    free(resp.body);
    CHECK(f, wait_closed(r));
    reader_free(r);
}

static void test_connection_close(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    run(&f, client_connection_close);
    assert_int_equal(atomic_load(&f.handled), 2);
}

static void client_protocol_error_hook(struct fixture *f)
{
    struct reader *r = reader_new(f);
    CHECK(f, r->fd >= 0);
    CHECK(f, send_str(r->fd, "POST / HTTP/1.1\r\nContent-Length: 999\r\n\r\n"));
    struct response resp;
    CHECK(f, read_response(r, &resp));
    CHECK(f, resp.status == 413);
    CHECK(f, strncmp(resp.body, "custom 413: request body is larger", 34) == 0);
    char v[64];
    CHECK(f, find_header(resp.head, "x-amzn-ErrorType", v, sizeof(v)) &&
                 !strcmp(v, "RequestTooLargeException"));
    CHECK(f, find_header(resp.head, "Connection", v, sizeof(v)) && !strcmp(v, "close"));
    free(resp.body);
    CHECK(f, wait_closed(r));
    reader_free(r);
}

static void test_protocol_error_hook(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    f.config.max_body = 100;
    f.config.on_protocol_error = custom_protocol_error;
    run(&f, client_protocol_error_hook);
    assert_int_equal(atomic_load(&f.protocol_errors), 1);
    assert_int_equal(atomic_load(&f.last_error_status), 413);
}

static void client_idle_timeout(struct fixture *f)
{
    struct reader *r = reader_new(f);
    CHECK(f, r->fd >= 0);
    CHECK(f, send_str(r->fd, "GET / HTTP/1.1\r\n\r\n"));
    struct response resp;
    CHECK(f, read_response(r, &resp));
    free(resp.body);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    CHECK(f, wait_closed(r));
    clock_gettime(CLOCK_MONOTONIC, &b);
    long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    CHECK(f, ms >= 60 && ms < 2000);
    reader_free(r);
}

static void test_idle_timeout(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    f.config.idle_timeout_ms = 100;
    run(&f, client_idle_timeout);
}

static void client_max_connections(struct fixture *f)
{
    struct reader *a = reader_new(f);
    CHECK(f, a->fd >= 0);
    CHECK(f, send_str(a->fd, "GET /a HTTP/1.1\r\n\r\n"));
    struct response resp;
    CHECK(f, read_response(a, &resp));
    free(resp.body);
    /* The second connection is accepted by the kernel and then closed by the server. */
    struct reader *b = reader_new(f);
    CHECK(f, b->fd >= 0);
    CHECK(f, wait_closed(b));
    reader_free(b);
    /* The first one still works. */
    CHECK(f, send_str(a->fd, "GET /a2 HTTP/1.1\r\n\r\n"));
    CHECK(f, read_response(a, &resp));
    CHECK(f, strcmp(resp.body, "GET /a2 ? len=0 body=") == 0);
    free(resp.body);
    reader_free(a);
}

static void test_max_connections(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    f.config.max_connections = 1;
    run(&f, client_max_connections);
    assert_int_equal(atomic_load(&f.handled), 2);
}

/* A client that trickles its request head, a byte now and then, is never idle for the idle
 * timeout, but its head must be complete within the header timeout of its first byte. */
static void client_header_timeout(struct fixture *f)
{
    struct reader *r = reader_new(f);
    CHECK(f, r->fd >= 0);
    const char *head = "GET /slow HTTP/1.1\r\nX-Slow: ";
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool closed = false;
    for (int i = 0; i < 60 && !closed; i++) {
        char byte[2] = {head[i % strlen(head)], '\0'};
        if (!send_str(r->fd, byte))
            closed = true;
        usleep(100 * 1000);
        char tmp[64];
        ssize_t n = recv(r->fd, tmp, sizeof(tmp), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            closed = true;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    CHECK(f, closed);
    /* 1 s of header timeout, and the sweep's 1 s at most on top. */
    CHECK(f, seconds >= 0.9 && seconds < 3.5);
    reader_free(r);
}

static void test_header_timeout(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    f.config.header_timeout_ms = 1000;
    run(&f, client_header_timeout);
    assert_int_equal(atomic_load(&f.handled), 0);
}

/* At the connection limit a new connection takes the place of the one whose unfinished request
 * began longest ago, and is served; a connection between requests is not taken. */
static void client_evict_unfinished(struct fixture *f)
{
    struct reader *idle = reader_new(f);
    CHECK(f, idle->fd >= 0);
    CHECK(f, send_str(idle->fd, "GET /first HTTP/1.1\r\n\r\n"));
    struct response resp;
    CHECK(f, read_response(idle, &resp));
    free(resp.body);
    struct reader *slow = reader_new(f);
    CHECK(f, slow->fd >= 0);
    CHECK(f, send_str(slow->fd, "GET /never-finished HT"));
    usleep(1200 * 1000);
    struct reader *fresh = reader_new(f);
    CHECK(f, fresh->fd >= 0);
    CHECK(f, send_str(fresh->fd, "GET /fresh HTTP/1.1\r\n\r\n"));
    CHECK(f, read_response(fresh, &resp));
    CHECK(f, strcmp(resp.body, "GET /fresh ? len=0 body=") == 0);
    free(resp.body);
    CHECK(f, wait_closed(slow));
    /* The connection between requests still works. */
    CHECK(f, send_str(idle->fd, "GET /again HTTP/1.1\r\n\r\n"));
    CHECK(f, read_response(idle, &resp));
    free(resp.body);
    reader_free(fresh);
    reader_free(slow);
    reader_free(idle);
}

static void test_evict_unfinished(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    f.config.max_connections = 2;
    run(&f, client_evict_unfinished);
    assert_int_equal(atomic_load(&f.handled), 3);
}

static void client_status_rules(struct fixture *f)
{
    struct reader *r = reader_new(f);
    CHECK(f, r->fd >= 0);
    struct response resp;
    char v[64];
    /* 204 has neither body nor Content-Length. */
    CHECK(f, send_str(r->fd, "POST /x HTTP/1.1\r\nX-Status: 204\r\nContent-Length: 0\r\n\r\n"));
    CHECK(f, read_response(r, &resp));
    CHECK(f, resp.status == 204);
    CHECK(f, !find_header(resp.head, "Content-Length", v, sizeof(v)));
    free(resp.body);
    /* HEAD gets the length of the body it does not get. */
    CHECK(f, send_str(r->fd, "HEAD /x HTTP/1.1\r\nX-Status: 404\r\n\r\n"));
    CHECK(f, read_response_ex(r, &resp, true));
    CHECK(f, resp.status == 404);
    CHECK(f, find_header(resp.head, "Content-Length", v, sizeof(v)) && !strcmp(v, "4"));
    free(resp.body);
    /* No body bytes followed: the next response starts right away. */
    CHECK(f, send_str(r->fd, "GET /x HTTP/1.1\r\nX-Status: 201\r\n\r\n"));
    CHECK(f, read_response(r, &resp));
    CHECK(f, resp.status == 201 && strcmp(resp.body, "body") == 0);
    CHECK(f,
          find_header(resp.head, "X-Injected", v, sizeof(v)) && !strcmp(v, "a  Set-Cookie: x=1"));
    CHECK(f, !find_header(resp.head, "Set-Cookie", v, sizeof(v)));
    CHECK(f, !strstr(resp.head, "Bad Name"));
    CHECK(f,
          strstr(resp.head, "Content-Length: 4\r\n") && !strstr(resp.head, "Content-Length: 999"));
    free(resp.body);
    reader_free(r);

    /* Expect: 100-continue is answered before the body is sent. */
    r = reader_new(f);
    CHECK(f,
          send_str(r->fd, "POST /e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"));
    CHECK(f, read_response(r, &resp));
    CHECK(f, resp.status == 100);
    free(resp.body);
    CHECK(f, send_str(r->fd, "hi"));
    CHECK(f, read_response(r, &resp));
    CHECK(f, resp.status == 200);
    free(resp.body);
    reader_free(r);
}

/* Two pipelined requests that each expect 100-continue, the first ending exactly where the
 * server's 64 KiB read buffer ends: the server answers the first and reads the second in the
 * same turn of the loop, while the first 100's write may still be queued. The 100 was once sent
 * with one write request kept per connection, which the second reused while libuv still held
 * it: the process crashed (a function's runtime could bring the controller down so). */
static void client_two_continues(struct fixture *f)
{
    for (int round = 0; round < 20; round++) {
        struct reader *r = reader_new(f);
        CHECK(f, r->fd >= 0);
        int big = 4 << 20;
        setsockopt(r->fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
        const size_t total = 64 * 1024;
        char head[160];
        /* The body length is what makes the request end at `total`; its digits count too. */
        size_t body = 0;
        int head_len = 0;
        for (;;) {
            head_len = snprintf(head, sizeof(head),
                                "POST /one HTTP/1.1\r\nExpect: 100-continue\r\n"
                                "Content-Length: %zu\r\n\r\n",
                                body);
            if (body == total - (size_t)head_len)
                break;
            body = total - (size_t)head_len;
        }
        static const char second[] = "POST /two HTTP/1.1\r\nExpect: 100-continue\r\n"
                                     "Content-Length: 1\r\n\r\nx";
        size_t len = total + sizeof(second) - 1;
        char *all = malloc(len);
        memcpy(all, head, (size_t)head_len);
        memset(all + head_len, 'b', body);
        memcpy(all + total, second, sizeof(second) - 1);
        CHECK(f, send(r->fd, all, len, 0) == (ssize_t)len);
        free(all);
        int statuses[4], n = 0;
        struct response resp;
        while (n < 4 && read_response(r, &resp)) {
            statuses[n++] = resp.status;
            free(resp.body);
        }
        CHECK(f, n == 4);
        CHECK(f,
              statuses[0] == 100 && statuses[1] == 200 && statuses[2] == 100 && statuses[3] == 200);
        reader_free(r);
    }
}

static void test_two_continues(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    run(&f, client_two_continues);
    assert_int_equal(atomic_load(&f.handled), 40);
}

static void test_status_rules(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    f.mode = MODE_STATUS;
    run(&f, client_status_rules);
}

static void client_large_body(struct fixture *f)
{
    struct reader *r = reader_new(f);
    CHECK(f, r->fd >= 0);
    size_t n = 5 * 1024 * 1024;
    char *body = malloc(n);
    for (size_t i = 0; i < n; i++)
        body[i] = (char)('a' + i % 26);
    char head[128];
    snprintf(head, sizeof(head), "POST /big HTTP/1.1\r\nContent-Length: %zu\r\n\r\n", n);
    bool sent = send_str(r->fd, head) && send_all(r->fd, body, n);
    struct response resp = {0};
    bool got = sent && read_response(r, &resp);
    size_t prefix = strlen("POST /big ? len=5242880 body=");
    bool same = got && resp.body_len == prefix + n && memcmp(resp.body + prefix, body, n) == 0;
    free(body);
    free(resp.body);
    CHECK(f, sent && got && same);
    reader_free(r);
}

static void test_large_body(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    run(&f, client_large_body);
    assert_int_equal(atomic_load(&f.handled), 1);
}

static void client_upgrade(struct fixture *f)
{
    struct reader *r = reader_new(f);
    CHECK(f, r->fd >= 0);
    /* Upgrades are not supported: the request is answered and the connection closed, and the
     * bytes after it are never parsed as HTTP. */
    CHECK(f, send_str(r->fd, "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                             "GET /not-http HTTP/1.1\r\n\r\n"));
    struct response resp;
    CHECK(f, read_response(r, &resp));
    CHECK(f, strcmp(resp.body, "GET /ws ? len=0 body=") == 0);
    free(resp.body);
    CHECK(f, wait_closed(r));
    reader_free(r);
}

static void test_upgrade_closes(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    run(&f, client_upgrade);
    assert_int_equal(atomic_load(&f.handled), 1);
}

static void test_status_text(void **state)
{
    (void)state;
    assert_string_equal(ef_http_status_text(200), "OK");
    assert_string_equal(ef_http_status_text(404), "Not Found");
    assert_string_equal(ef_http_status_text(413), "Payload Too Large");
    assert_string_equal(ef_http_status_text(429), "Too Many Requests");
    assert_string_equal(ef_http_status_text(431), "Request Header Fields Too Large");
    assert_string_equal(ef_http_status_text(502), "Bad Gateway");
    assert_string_equal(ef_http_status_text(799), "Unknown");
}

static void test_listen_errors(void **state)
{
    (void)state;
    uv_loop_t loop;
    ef_error err = {0};
    ef_http_server *s = NULL;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(ef_http_server_listen(&loop, "not-an-ip", 0, NULL, handler, NULL, &s, &err),
                     -EINVAL);
    assert_non_null(strstr(err.msg, "not-an-ip"));
    assert_null(s);

    /* A port in use is reported with the address. */
    assert_int_equal(ef_http_server_listen(&loop, "127.0.0.1", 0, NULL, handler, NULL, &s, &err),
                     0);
    int port = ef_http_server_port(s);
    ef_http_server *s2 = NULL;
    assert_int_equal(
        ef_http_server_listen(&loop, "127.0.0.1", port, NULL, handler, NULL, &s2, &err),
        -EADDRINUSE);
    assert_non_null(strstr(err.msg, "cannot listen on 127.0.0.1:"));
    assert_null(s2);
    ef_http_server_close(s);

    /* IPv6 literals are accepted where the host has IPv6. */
    s = NULL;
    int r = ef_http_server_listen(&loop, "::1", 0, NULL, handler, NULL, &s, &err);
    if (r == 0) {
        assert_true(ef_http_server_port(s) > 0);
        ef_http_server_close(s);
    } else {
        assert_true(r == -EADDRNOTAVAIL || r == -EAFNOSUPPORT);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* Sends `request` on `r` (a connection that may have served others), expects the answer
 * `status` with `body_part` in its body and the connection closed after it; frees `r`. */
static void expect_refused(struct fixture *f, struct reader *r, const char *request, int status,
                           const char *body_part)
{
    struct response resp = {0};
    bool ok = r->fd >= 0 && send_str(r->fd, request) && read_response(r, &resp) &&
              resp.status == status && strstr(resp.body, body_part) && wait_closed(r);
    if (!ok && !f->failure[0])
        snprintf(f->failure, sizeof(f->failure), "%.120s: expected %d with '%s', got %d: %.120s",
                 request, status, body_part, resp.status, resp.body ? resp.body : "");
    free(resp.body);
    reader_free(r);
}

static void client_body_limit_hook(struct fixture *f)
{
    /* Only the head is sent, declaring far more than the route allows: the 413 must come
     * without the body, and without a 100 Continue that would invite it. */
    expect_refused(f, reader_new(f),
                   "POST /small?x=1 HTTP/1.1\r\nX-Test: seen\r\n"
                   "Expect: 100-continue\r\nContent-Length: 60000000\r\n\r\n",
                   413, "custom 413: request body is larger than the limit of 16 bytes");

    /* The same on another route is within max_body and is served, with its body. */
    struct reader *r = reader_new(f);
    struct response resp;
    CHECK(f, send_str(r->fd, "POST /other HTTP/1.1\r\nContent-Length: 100\r\n\r\n"));
    char body[100];
    memset(body, 'b', sizeof(body));
    CHECK(f, send_all(r->fd, body, sizeof(body)));
    CHECK(f, read_response(r, &resp));
    CHECK(f, resp.status == 200);
    CHECK(f, strstr(resp.body, "POST /other ? len=100 body=bbbb"));
    free(resp.body);

    /* On a keep-alive connection each request gets its own route's limit: exactly 16 bytes. */
    CHECK(f, send_str(r->fd, "POST /small HTTP/1.1\r\nContent-Length: 16\r\n\r\n0123456789abcdef"));
    CHECK(f, read_response(r, &resp));
    CHECK(f, resp.status == 200);
    free(resp.body);

    /* Above max_body a route's own limit does not help. */
    expect_refused(f, r, "POST /other HTTP/1.1\r\nContent-Length: 1025\r\n\r\n", 413,
                   "limit of 1024 bytes");

    /* A chunked body is refused once it passes the route's limit; the rest is never sent. */
    expect_refused(f, reader_new(f),
                   "POST /small HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "a\r\n0123456789\r\na\r\n0123456789\r\n",
                   413, "limit of 16 bytes");
}

static void test_body_limit_hook(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    f.config.max_body = 1024;
    f.config.body_limit = route_body_limit;
    f.config.on_protocol_error = custom_protocol_error;
    run(&f, client_body_limit_hook);
    assert_int_equal(atomic_load(&f.handled), 2);
    assert_int_equal(atomic_load(&f.limit_calls), 5);
    assert_int_equal(atomic_load(&f.protocol_errors), 3);
    /* The hook saw the last request's line and headers, and no body. */
    assert_string_equal(f.limit_seen, "POST /small ? X-Test=(none) body=0");
    /* The protocol error hook sees the request that was refused. */
    assert_string_equal(f.error_seen, "POST /small ? headers=1 body=0");
}

static void client_hook_sees_request(struct fixture *f)
{
    expect_refused(f, reader_new(f),
                   "PUT /small?a=b HTTP/1.1\r\nX-Test: x\r\nContent-Length: 17\r\n\r\n", 413, "");
}

static void test_protocol_error_sees_request(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    f.config.body_limit = route_body_limit;
    f.config.on_protocol_error = custom_protocol_error;
    run(&f, client_hook_sees_request);
    assert_string_equal(f.limit_seen, "PUT /small ?a=b X-Test=x body=0");
    assert_string_equal(f.error_seen, "PUT /small ?a=b headers=2 body=0");
}

static size_t heap_in_use(void)
{
    struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;
}

static void client_no_prealloc(struct fixture *f)
{
    struct reader *r = reader_new(f);
    CHECK(f, r->fd >= 0);
    /* Declaring 6 MB and sending nothing must not make the server hold 6 MB. */
    size_t before = heap_in_use();
    CHECK(f, send_str(r->fd, "POST /big HTTP/1.1\r\nContent-Length: 6000000\r\n\r\n"));
    usleep(100000);
    size_t after = heap_in_use();
    CHECK(f, after < before + 512 * 1024);
    reader_free(r);
}

static void test_no_prealloc(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    f.config.max_body = 8 * 1024 * 1024;
    run(&f, client_no_prealloc);
    assert_int_equal(atomic_load(&f.handled), 0);
}

static long elapsed_ms(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

/* A post and a long poll pipelined behind it, as a Lambda runtime sends them. */
static const char post_then_wait[] = "POST /post HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"
                                     "GET /wait HTTP/1.1\r\n\r\n";

static void client_coalesced(struct fixture *f)
{
    struct reader *r = reader_new(f);
    CHECK(f, r->fd >= 0);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    CHECK(f, send_str(r->fd, post_then_wait));
    /* The post's answer is held until the poll's (100 ms later): both arrive in one segment,
     * so the first receive has both. */
    CHECK(f, reader_fill(r));
    CHECK(f, elapsed_ms(&start) >= 95);
    struct response resp;
    CHECK(f, memmem(r->buf, r->len, "later", 5) != NULL);
    CHECK(f, read_response(r, &resp));
    CHECK(f, resp.status == 200 && strcmp(resp.body, "POST /post ? len=2 body=hi") == 0);
    free(resp.body);
    CHECK(f, read_response(r, &resp));
    CHECK(f, resp.status == 202 && strcmp(resp.body, "later") == 0);
    free(resp.body);
    CHECK(f, r->len == 0);

    /* Nothing pipelined (only the empty lines some clients send after a body): written at
     * once, since nothing would ever come to send it with. */
    CHECK(f, send_str(r->fd, "POST /alone HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi\r\n\r\n"));
    CHECK(f, read_response(r, &resp));
    CHECK(f, resp.status == 200 && strcmp(resp.body, "POST /alone ? len=2 body=hi") == 0);
    free(resp.body);

    /* A request that waits for 100 Continue behind a held answer gets it after that answer. */
    CHECK(f, send_str(r->fd, "POST /post HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"
                             "POST /two HTTP/1.1\r\nContent-Length: 3\r\n"
                             "Expect: 100-continue\r\n\r\n"));
    CHECK(f, read_response(r, &resp));
    CHECK(f, resp.status == 200 && strcmp(resp.body, "POST /post ? len=2 body=hi") == 0);
    free(resp.body);
    CHECK(f, read_response_ex(r, &resp, true));
    CHECK(f, resp.status == 100);
    free(resp.body);
    CHECK(f, send_str(r->fd, "abc"));
    CHECK(f, read_response(r, &resp));
    CHECK(f, resp.status == 200 && strcmp(resp.body, "POST /two ? len=3 body=abc") == 0);
    free(resp.body);

    /* Requests answered at once go out together, in order. */
    CHECK(f, send_str(r->fd, "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n"
                             "GET /c HTTP/1.1\r\n\r\n"));
    const char *want[] = {"GET /a ? len=0 body=", "GET /b ? len=0 body=", "GET /c ? len=0 body="};
    for (int i = 0; i < 3; i++) {
        CHECK(f, read_response(r, &resp));
        CHECK(f, strcmp(resp.body, want[i]) == 0);
        free(resp.body);
    }
    reader_free(r);
}

static void test_hold_for_next(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    f.mode = MODE_COALESCE;
    f.hold_for_next = true;
    run(&f, client_coalesced);
    assert_int_equal(atomic_load(&f.handled), 8);
}

static void client_not_coalesced(struct fixture *f)
{
    struct reader *r = reader_new(f);
    CHECK(f, r->fd >= 0);
    /* The request behind is never answered: a held answer would never arrive (the read gives
     * up after its 5 s timeout). */
    CHECK(f, send_str(r->fd, "POST /post HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"
                             "GET /park HTTP/1.1\r\n\r\n"));
    struct response resp;
    CHECK(f, read_response(r, &resp));
    CHECK(f, resp.status == 200 && strcmp(resp.body, "POST /post ? len=2 body=hi") == 0);
    free(resp.body);
    CHECK(f, r->len == 0);
    reader_free(r);
}

static void test_no_hold_unless_asked(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    f.mode = MODE_COALESCE;
    run(&f, client_not_coalesced);
    assert_int_equal(atomic_load(&f.aborted), 1);
}

static void client_held_then_gone(struct fixture *f)
{
    struct reader *r = reader_new(f);
    CHECK(f, r->fd >= 0);
    CHECK(f, send_str(r->fd, "POST /post HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"
                             "GET /park HTTP/1.1\r\n\r\n"));
    CHECK(f, wait_for(&f->handled, 2));
    /* The client stops sending; the poll is aborted, and the held answer still goes out. */
    CHECK(f, shutdown(r->fd, SHUT_WR) == 0);
    struct response resp;
    CHECK(f, read_response(r, &resp));
    CHECK(f, resp.status == 200 && strcmp(resp.body, "POST /post ? len=2 body=hi") == 0);
    free(resp.body);
    CHECK(f, wait_closed(r));
    CHECK(f, wait_for(&f->aborted, 1));
    reader_free(r);
}

static void test_held_answer_written_at_close(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    f.mode = MODE_COALESCE;
    f.hold_for_next = true;
    run(&f, client_held_then_gone);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_post_body),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_header_case_insensitive),
        cmocka_unit_test(test_query_param),
        cmocka_unit_test(test_413_content_length),
        cmocka_unit_test(test_413_chunked),
        cmocka_unit_test(test_400_garbage),
        cmocka_unit_test(test_431),
        cmocka_unit_test(test_431_header_fields),
        cmocka_unit_test(test_async_response),
        cmocka_unit_test(test_abort_on_disconnect),
        cmocka_unit_test(test_abort_on_server_close),
        cmocka_unit_test(test_shutdown_answers_pending),
        cmocka_unit_test(test_shutdown_grace_ends),
        cmocka_unit_test(test_connection_close),
        cmocka_unit_test(test_protocol_error_hook),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_max_connections),
        cmocka_unit_test(test_header_timeout),
        cmocka_unit_test(test_evict_unfinished),
        cmocka_unit_test(test_status_rules),
        cmocka_unit_test(test_two_continues),
        cmocka_unit_test(test_large_body),
        cmocka_unit_test(test_upgrade_closes),
        cmocka_unit_test(test_status_text),
        cmocka_unit_test(test_listen_errors),
        cmocka_unit_test(test_body_limit_hook),
        cmocka_unit_test(test_protocol_error_sees_request),
        cmocka_unit_test(test_no_prealloc),
        cmocka_unit_test(test_hold_for_next),
        cmocka_unit_test(test_no_hold_unless_asked),
        cmocka_unit_test(test_held_answer_written_at_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
