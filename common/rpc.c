/* JSON-RPC 2.0 connections and servers on libuv Unix pipes.
 *
 * Lifetime rules, which every function below keeps:
 * - A connection is freed only in the close callback of its pipe, after its pending calls have
 *   been failed with EF_RPC_ERR_CLOSED and on_close has run. No callback of ours is ever running
 *   on a connection when it is freed, so ef_rpc_conn_close() is safe from inside any of them.
 * - Once closing, a connection sends nothing more: calls and notifications fail with -EPIPE and
 *   replies just free the request.
 * - Each outgoing call with a timeout owns a uv_timer; the call record is freed in that timer's
 *   close callback, after the result callback has run exactly once. */
#define _GNU_SOURCE
#include "common/rpc.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/rpc_frame.h"

#define READ_BUF_SIZE (64u * 1024u)
/* Inbound requests a connection may leave unanswered at once; beyond that the peer is told
 * it has no capacity rather than letting it grow our memory without bound. */
#define MAX_INBOUND_REQUESTS 4096
/* A peer that stops reading must not make us buffer without bound either. */
#define MIN_WRITE_QUEUE_LIMIT (1u * 1024u * 1024u)

struct pending_call {
    uv_timer_t timer; /* first member: the timer's close callback frees the record */
    bool has_timer;
    ef_rpc_conn *conn;
    int64_t id;
    unsigned timeout_ms;
    char *method;
    ef_rpc_result_cb cb;
    void *user;
    struct pending_call *prev, *next;
};

struct ef_rpc_request {
    ef_rpc_conn *conn; /* NULL once the connection has closed, and for a local request */
    cJSON *id;
    struct ef_rpc_request *prev, *next;
    ef_rpc_result_cb local_cb; /* a local request's answer goes here (ef_rpc_request_local) */
    void *local_user;
};

struct ef_rpc_conn {
    uv_pipe_t pipe; /* first member: callbacks cast the handle back to the connection */
    uv_loop_t *loop;
    struct ef_rpc_handlers handlers;
    void *user;
    struct ef_frame_decoder dec;
    size_t max_message;
    char *readbuf;
    int64_t next_id;
    bool closing;
    struct pending_call *calls;
    struct ef_rpc_request *requests;
    unsigned n_requests;
    ef_rpc_server *server;
    ef_rpc_conn *srv_prev, *srv_next;
};

struct ef_rpc_server {
    uv_pipe_t pipe; /* first member */
    uv_loop_t *loop;
    struct ef_rpc_handlers handlers;
    void *user;
    char *path; /* unlinked on close; NULL in listen_fd mode */
    bool closing;
    ef_rpc_conn *conns;
};

struct write_req {
    uv_write_t req;
    uint8_t header[EF_RPC_FRAME_HEADER];
    char *body;
};

struct connect_req {
    uv_connect_t req;
    ef_rpc_conn *conn;
    ef_rpc_connect_cb cb;
    void *user;
};

static void on_call_timeout(uv_timer_t *t);

/* ---- connection basics ---- */

static ef_rpc_conn *conn_new(uv_loop_t *loop, const struct ef_rpc_handlers *handlers, void *user)
{
    ef_rpc_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    if (uv_pipe_init(loop, &c->pipe, handlers && handlers->receive_fds) < 0) {
        free(c);
        return NULL;
    }
    c->loop = loop;
    if (handlers)
        c->handlers = *handlers;
    c->user = user;
    c->max_message = EF_RPC_DEFAULT_MAX_MESSAGE;
    ef_frame_decoder_init(&c->dec, c->max_message);
    c->next_id = 1;
    return c;
}

static void free_call(struct pending_call *call)
{
    free(call->method);
    free(call);
}

static void on_call_timer_closed(uv_handle_t *h)
{
    free_call((struct pending_call *)h);
}

static void release_call(struct pending_call *call)
{
    if (call->has_timer)
        uv_close((uv_handle_t *)&call->timer, on_call_timer_closed);
    else
        free_call(call);
}

static void unlink_call(ef_rpc_conn *c, struct pending_call *call)
{
    if (call->prev)
        call->prev->next = call->next;
    else
        c->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    call->prev = call->next = NULL;
}

/* Delivers the outcome of a call exactly once: unlinks it, schedules its record to be freed,
 * then runs the callback (which may close the connection or start new calls). */
static void finish_call(struct pending_call *call, const cJSON *result,
                        const struct ef_rpc_error *error)
{
    ef_rpc_conn *c = call->conn;
    ef_rpc_result_cb cb = call->cb;
    void *user = call->user;

    unlink_call(c, call);
    if (call->has_timer)
        uv_timer_stop(&call->timer);
    release_call(call);
    if (cb)
        cb(c, result, error, user);
}

static void unlink_request(ef_rpc_conn *c, struct ef_rpc_request *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        c->requests = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
    c->n_requests--;
}

static void on_conn_closed(uv_handle_t *h)
{
    ef_rpc_conn *c = (ef_rpc_conn *)h;

    /* Requests still unanswered stay valid for their owners, who must reply to free them. */
    while (c->requests) {
        struct ef_rpc_request *r = c->requests;
        unlink_request(c, r);
        r->conn = NULL;
    }
    while (c->calls) {
        struct pending_call *call = c->calls;
        char msg[256];
        snprintf(msg, sizeof(msg), "connection closed before the response to '%s'", call->method);
        struct ef_rpc_error e = {.code = EF_RPC_ERR_CLOSED, .message = msg, .data = NULL};
        finish_call(call, NULL, &e);
    }
    if (c->server) {
        ef_rpc_server *s = c->server;
        if (c->srv_prev)
            c->srv_prev->srv_next = c->srv_next;
        else
            s->conns = c->srv_next;
        if (c->srv_next)
            c->srv_next->srv_prev = c->srv_prev;
        c->server = NULL;
    }
    if (c->handlers.on_close)
        c->handlers.on_close(c, c->user);
    ef_frame_decoder_free(&c->dec);
    free(c->readbuf);
    free(c);
}

void ef_rpc_conn_close(ef_rpc_conn *conn)
{
    if (!conn || conn->closing)
        return;
    conn->closing = true;
    uv_close((uv_handle_t *)&conn->pipe, on_conn_closed);
}

void ef_rpc_conn_set_max_message(ef_rpc_conn *conn, size_t max)
{
    if (!max)
        max = EF_RPC_DEFAULT_MAX_MESSAGE;
    conn->max_message = max;
    conn->dec.max_message = max;
}

void ef_rpc_conn_set_user(ef_rpc_conn *conn, void *user)
{
    conn->user = user;
}

void *ef_rpc_conn_get_user(const ef_rpc_conn *conn)
{
    return conn->user;
}

/* ---- sending ---- */

static void on_write(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    ef_rpc_conn *c = (ef_rpc_conn *)req->handle;

    free(w->body);
    free(w);
    if (status < 0 && status != UV_ECANCELED) {
        ef_debug("rpc: write failed, closing the connection: %s", uv_strerror(status));
        ef_rpc_conn_close(c);
    }
}

/* Serialises `msg` (not consumed) and sends it as one frame, header and body in one write.
 * uv_try_write sends it at once when the socket has room, which is the common case; only what
 * it could not send is queued with uv_write. That spares the write request whose completion
 * costs libuv an extra epoll_ctl and a loop iteration per message. */
/* Sends descriptors with the first bytes of a frame: one sendmsg(2), made only when nothing is
 * queued before it (else the descriptors would overtake earlier frames). Returns the bytes sent
 * (at least 1: the descriptors went with them), or a negative errno with nothing sent. */
static ssize_t send_with_fds(ef_rpc_conn *c, uv_buf_t *bufs, const int *fds, size_t nfds)
{
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe) > 0)
        return -EAGAIN;
    uv_os_fd_t sock;
    int r = uv_fileno((uv_handle_t *)&c->pipe, &sock);
    if (r < 0)
        return r;
    struct iovec iov[2] = {{bufs[0].base, bufs[0].len}, {bufs[1].base, bufs[1].len}};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * EF_RPC_MAX_FDS)];
    } control;
    memset(&control, 0, sizeof(control));
    struct msghdr msg = {
        .msg_iov = iov,
        .msg_iovlen = 2,
        .msg_control = control.buf,
        .msg_controllen = CMSG_SPACE(sizeof(int) * nfds),
    };
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
    ssize_t n;
    do
        n = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

/* Sends one message, with `nfds` descriptors when nfds > 0. */
static int send_json_fds(ef_rpc_conn *c, const cJSON *msg, const int *fds, size_t nfds)
{
    if (c->closing)
        return -EPIPE;
    char *text = cJSON_PrintUnformatted(msg);
    if (!text)
        return -ENOMEM;
    size_t n = strlen(text);
    if (n > c->max_message || n > UINT32_MAX) {
        free(text);
        return -EMSGSIZE;
    }
    uint8_t header[EF_RPC_FRAME_HEADER];
    ef_frame_header(header, (uint32_t)n);
    uv_buf_t bufs[2] = {uv_buf_init((char *)header, EF_RPC_FRAME_HEADER),
                        uv_buf_init(text, (unsigned)n)};
    int sent;
    if (nfds > 0) {
        ssize_t out = send_with_fds(c, bufs, fds, nfds);
        if (out < 0) {
            free(text);
            return (int)out; /* nothing went out: the connection is as it was */
        }
        sent = (int)out;
    } else {
        /* UV_EAGAIN also when writes are already queued: then this one queues behind them. */
        sent = uv_try_write((uv_stream_t *)&c->pipe, bufs, 2);
    }
    if (sent < 0 && sent != UV_EAGAIN) {
        free(text);
        ef_debug("rpc: write failed, closing the connection: %s", uv_strerror(sent));
        ef_rpc_conn_close(c);
        return sent;
    }
    size_t done = sent > 0 ? (size_t)sent : 0;
    if (done == EF_RPC_FRAME_HEADER + n) {
        free(text);
        return 0;
    }

    struct write_req *w = malloc(sizeof(*w));
    if (!w) {
        free(text);
        /* Part of the frame may be out: the stream cannot be used any more. */
        if (done > 0)
            ef_rpc_conn_close(c);
        return -ENOMEM;
    }
    w->body = text;
    memcpy(w->header, header, sizeof(header));
    uv_buf_t rest[2];
    unsigned nrest = 0;
    if (done < EF_RPC_FRAME_HEADER)
        rest[nrest++] =
            uv_buf_init((char *)w->header + done, (unsigned)(EF_RPC_FRAME_HEADER - done));
    size_t body_done = done > EF_RPC_FRAME_HEADER ? done - EF_RPC_FRAME_HEADER : 0;
    rest[nrest++] = uv_buf_init(text + body_done, (unsigned)(n - body_done));
    int r = uv_write(&w->req, (uv_stream_t *)&c->pipe, rest, nrest, on_write);
    if (r < 0) {
        free(text);
        free(w);
        ef_debug("rpc: write failed, closing the connection: %s", uv_strerror(r));
        ef_rpc_conn_close(c);
        return r;
    }
    size_t limit = c->max_message * 4;
    if (limit < MIN_WRITE_QUEUE_LIMIT)
        limit = MIN_WRITE_QUEUE_LIMIT;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe) > limit) {
        ef_debug("rpc: the peer is not reading (%zu bytes queued), closing the connection",
                 uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe));
        ef_rpc_conn_close(c);
    }
    return 0;
}

static int send_json(ef_rpc_conn *c, const cJSON *msg)
{
    return send_json_fds(c, msg, NULL, 0);
}

static cJSON *new_message(void)
{
    cJSON *m = cJSON_CreateObject();
    if (m && !cJSON_AddStringToObject(m, "jsonrpc", "2.0")) {
        cJSON_Delete(m);
        return NULL;
    }
    return m;
}

/* Sends an error response; `id` (not consumed) may be NULL for `"id": null`, `data` is
 * consumed. */
static int send_error(ef_rpc_conn *c, const cJSON *id, int code, cJSON *data, const char *message)
{
    cleanup_cjson cJSON *m = new_message();
    cJSON *e = cJSON_CreateObject();
    if (!m || !e) {
        cJSON_Delete(e);
        cJSON_Delete(data);
        return -ENOMEM;
    }
    cJSON_AddItemToObject(m, "id", id ? cJSON_Duplicate(id, 1) : cJSON_CreateNull());
    cJSON_AddItemToObject(m, "error", e);
    cJSON_AddNumberToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", message);
    if (data)
        cJSON_AddItemToObject(e, "data", data);
    return send_json(c, m);
}

int ef_rpc_call(ef_rpc_conn *conn, const char *method, cJSON *params, unsigned timeout_ms,
                ef_rpc_result_cb cb, void *user)
{
    cleanup_cjson cJSON *p = params;
    if (conn->closing)
        return -EPIPE;

    cleanup_cjson cJSON *m = new_message();
    struct pending_call *call = calloc(1, sizeof(*call));
    if (!m || !call || !(call->method = strdup(method))) {
        if (call)
            free_call(call);
        return -ENOMEM;
    }
    call->conn = conn;
    call->id = conn->next_id++;
    call->cb = cb;
    call->user = user;
    cJSON_AddNumberToObject(m, "id", (double)call->id);
    cJSON_AddStringToObject(m, "method", method);
    if (p)
        cJSON_AddItemToObject(m, "params", steal_pointer(&p));

    int r = send_json(conn, m);
    if (r < 0) {
        free_call(call);
        return r;
    }
    if (timeout_ms > 0) {
        /* uv_timer_init cannot fail on Unix; the record is freed in the timer's close callback
         * from now on. */
        uv_timer_init(conn->loop, &call->timer);
        call->has_timer = true;
    }
    call->next = conn->calls;
    if (conn->calls)
        conn->calls->prev = call;
    conn->calls = call;
    if (call->has_timer) {
        call->timeout_ms = timeout_ms;
        uv_timer_start(&call->timer, on_call_timeout, timeout_ms, 0);
    }
    return 0;
}

int ef_rpc_notify(ef_rpc_conn *conn, const char *method, cJSON *params)
{
    cleanup_cjson cJSON *p = params;
    if (conn->closing)
        return -EPIPE;
    cleanup_cjson cJSON *m = new_message();
    if (!m)
        return -ENOMEM;
    cJSON_AddStringToObject(m, "method", method);
    if (p)
        cJSON_AddItemToObject(m, "params", steal_pointer(&p));
    return send_json(conn, m);
}

/* ---- replies ---- */

static void free_request(struct ef_rpc_request *req)
{
    if (req->conn)
        unlink_request(req->conn, req);
    cJSON_Delete(req->id);
    free(req);
}

void ef_rpc_request_local_cancel(ef_rpc_request *req)
{
    if (req)
        free_request(req);
}

ef_rpc_request *ef_rpc_request_local(ef_rpc_result_cb cb, void *user)
{
    ef_rpc_request *req = calloc(1, sizeof(*req));
    if (!req)
        return NULL;
    req->local_cb = cb;
    req->local_user = user;
    return req;
}

void ef_rpc_reply(ef_rpc_request *req, cJSON *result)
{
    cleanup_cjson cJSON *res = result;
    if (!req)
        return;
    if (req->local_cb) {
        if (!res)
            res = cJSON_CreateObject();
        if (res) {
            req->local_cb(NULL, res, NULL, req->local_user);
        } else {
            struct ef_rpc_error e = {.code = EF_RPC_INTERNAL_ERROR, .message = "out of memory"};
            req->local_cb(NULL, NULL, &e, req->local_user);
        }
        free_request(req);
        return;
    }
    ef_rpc_conn *c = req->conn;
    if (c && !c->closing) {
        cleanup_cjson cJSON *m = new_message();
        if (m) {
            cJSON_AddItemToObject(m, "id", cJSON_Duplicate(req->id, 1));
            cJSON_AddItemToObject(m, "result", res ? steal_pointer(&res) : cJSON_CreateObject());
            int r = send_json(c, m);
            /* The caller is waiting for an answer: say why there is none. */
            if (r == -EMSGSIZE)
                send_error(c, req->id, EF_RPC_INTERNAL_ERROR, NULL,
                           "the result is larger than the maximum message size");
        }
    }
    free_request(req);
}

void ef_rpc_reply_error(ef_rpc_request *req, int code, cJSON *data, const char *fmt, ...)
{
    cleanup_cjson cJSON *d = data;
    if (!req)
        return;
    if (req->local_cb) {
        cleanup_free char *msg = NULL;
        va_list ap;
        va_start(ap, fmt);
        int n = vasprintf(&msg, fmt, ap);
        va_end(ap);
        struct ef_rpc_error e = {.code = code, .message = n < 0 ? "error" : msg, .data = d};
        req->local_cb(NULL, NULL, &e, req->local_user);
        free_request(req);
        return;
    }
    ef_rpc_conn *c = req->conn;
    if (c && !c->closing) {
        cleanup_free char *msg = NULL;
        va_list ap;
        va_start(ap, fmt);
        int n = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (n < 0)
            msg = NULL;
        int r = send_error(c, req->id, code, steal_pointer(&d), msg ? msg : "error");
        if (r == -EMSGSIZE)
            send_error(c, req->id, code, NULL, "error (details too large to send)");
    }
    free_request(req);
}

int ef_rpc_reply_fds(ef_rpc_request *req, cJSON *result, const int *fds, size_t nfds)
{
    cleanup_cjson cJSON *res = result;
    ef_rpc_conn *c = req->conn;
    int r = -EPIPE;
    if (nfds == 0 || nfds > EF_RPC_MAX_FDS)
        r = -EINVAL;
    else if (c && !c->closing) {
        cleanup_cjson cJSON *m = new_message();
        if (!m)
            r = -ENOMEM;
        else {
            cJSON_AddItemToObject(m, "id", cJSON_Duplicate(req->id, 1));
            cJSON_AddItemToObject(m, "result", steal_pointer(&res));
            r = send_json_fds(c, m, fds, nfds);
        }
    }
    if (r == 0) {
        free_request(req);
        return 0;
    }
    ef_rpc_reply_error(req, EF_RPC_ERR_BUSY, NULL, "cannot pass descriptors now: %s", strerror(-r));
    return r;
}

int ef_rpc_conn_take_fd(ef_rpc_conn *c, int *ret_fd)
{
    if (!c->pipe.ipc || uv_pipe_pending_count(&c->pipe) == 0)
        return -ENOENT;
    uv_pipe_t *tmp = malloc(sizeof(*tmp));
    if (!tmp)
        return -ENOMEM;
    int r = uv_pipe_init(c->loop, tmp, 0);
    if (r == 0)
        r = uv_accept((uv_stream_t *)&c->pipe, (uv_stream_t *)tmp);
    uv_os_fd_t fd = -1;
    if (r == 0)
        r = uv_fileno((uv_handle_t *)tmp, &fd);
    int copy = -1;
    if (r == 0 && (copy = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0)
        r = -errno;
    /* The handle only carried the descriptor out of libuv's queue; the copy is the caller's. */
    uv_close((uv_handle_t *)tmp, (uv_close_cb)free);
    if (r < 0)
        return r;
    *ret_fd = copy;
    return 0;
}

void ef_rpc_conn_drop_fds(ef_rpc_conn *c)
{
    int fd;
    while (ef_rpc_conn_take_fd(c, &fd) == 0)
        close(fd);
}

ef_rpc_conn *ef_rpc_request_conn(const ef_rpc_request *req)
{
    if (!req->conn || req->conn->closing)
        return NULL;
    return req->conn;
}

/* ---- receiving ---- */

static void on_call_timeout(uv_timer_t *t)
{
    struct pending_call *call = (struct pending_call *)t;
    char msg[256];
    snprintf(msg, sizeof(msg), "no response to '%s' within %u ms", call->method, call->timeout_ms);
    struct ef_rpc_error e = {.code = EF_RPC_ERR_TIMEOUT, .message = msg, .data = NULL};
    finish_call(call, NULL, &e);
}

static struct pending_call *find_call(ef_rpc_conn *c, int64_t id)
{
    for (struct pending_call *call = c->calls; call; call = call->next)
        if (call->id == id)
            return call;
    return NULL;
}

static void handle_response(ef_rpc_conn *c, const cJSON *msg)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(msg, "error");
    const cJSON *result = cJSON_GetObjectItemCaseSensitive(msg, "result");

    if (!cJSON_IsNumber(id) || id->valuedouble != floor(id->valuedouble) || id->valuedouble < 1 ||
        id->valuedouble > 9007199254740992.0) {
        if (cJSON_IsObject(error)) {
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(error, "message");
            ef_debug("rpc: the peer reported an error without a call id: %s",
                     cJSON_IsString(m) ? m->valuestring : "(no message)");
        } else {
            ef_debug("rpc: ignoring a response without a valid id");
        }
        return;
    }
    int64_t n = (int64_t)id->valuedouble;
    struct pending_call *call = find_call(c, n);
    if (!call) {
        ef_debug("rpc: ignoring a response with unknown id %lld", (long long)n);
        return;
    }
    if (error) {
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(error, "code");
        const cJSON *message = cJSON_GetObjectItemCaseSensitive(error, "message");
        struct ef_rpc_error e = {
            .code = cJSON_IsNumber(code) ? code->valueint : EF_RPC_INTERNAL_ERROR,
            .message = cJSON_IsString(message) ? message->valuestring
                                               : "malformed error object from the peer",
            .data = cJSON_GetObjectItemCaseSensitive(error, "data"),
        };
        finish_call(call, NULL, &e);
    } else {
        finish_call(call, result, NULL);
    }
}

static void handle_request(ef_rpc_conn *c, const cJSON *id, const char *method, const cJSON *params)
{
    if (c->n_requests >= MAX_INBOUND_REQUESTS || !c->handlers.on_request) {
        if (!c->handlers.on_request)
            send_error(c, id, EF_RPC_METHOD_NOT_FOUND, NULL, "this peer accepts no requests");
        else
            send_error(c, id, EF_RPC_ERR_NO_CAPACITY, NULL,
                       "too many requests awaiting an answer on this connection");
        return;
    }
    struct ef_rpc_request *r = calloc(1, sizeof(*r));
    if (!r || !(r->id = cJSON_Duplicate(id, 1))) {
        free(r);
        send_error(c, id, EF_RPC_INTERNAL_ERROR, NULL, "out of memory");
        return;
    }
    r->conn = c;
    r->next = c->requests;
    if (c->requests)
        c->requests->prev = r;
    c->requests = r;
    c->n_requests++;
    c->handlers.on_request(c, r, method, params, c->user);
}

static void handle_message(ef_rpc_conn *c, const char *text, size_t len)
{
    cleanup_cjson cJSON *msg = cJSON_ParseWithLength(text, len);
    if (!msg) {
        send_error(c, NULL, EF_RPC_PARSE_ERROR, NULL, "parse error: the message is not JSON");
        return;
    }
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(msg, "jsonrpc");
    if (!cJSON_IsObject(msg) || !cJSON_IsString(ver) || strcmp(ver->valuestring, "2.0") != 0) {
        send_error(c, NULL, EF_RPC_INVALID_REQUEST, NULL,
                   "invalid request: not a JSON-RPC 2.0 object");
        return;
    }
    const cJSON *method = cJSON_GetObjectItemCaseSensitive(msg, "method");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(msg, "params");

    if (!method) {
        /* Never answer a response, even a malformed one: two peers would trade errors forever. */
        if (cJSON_HasObjectItem(msg, "result") || cJSON_HasObjectItem(msg, "error"))
            handle_response(c, msg);
        else
            send_error(c, NULL, EF_RPC_INVALID_REQUEST, NULL,
                       "invalid request: no method, result or error");
        return;
    }
    if (!cJSON_IsString(method)) {
        send_error(c, NULL, EF_RPC_INVALID_REQUEST, NULL,
                   "invalid request: method must be a string");
        return;
    }
    if (params && !cJSON_IsObject(params) && !cJSON_IsArray(params)) {
        send_error(c, NULL, EF_RPC_INVALID_REQUEST, NULL,
                   "invalid request: params must be an object or an array");
        return;
    }
    if (!id) {
        if (c->handlers.on_notification)
            c->handlers.on_notification(c, method->valuestring, params, c->user);
        return;
    }
    if (!cJSON_IsNumber(id) && !cJSON_IsString(id) && !cJSON_IsNull(id)) {
        send_error(c, NULL, EF_RPC_INVALID_REQUEST, NULL,
                   "invalid request: id must be a number, a string or null");
        return;
    }
    handle_request(c, id, method->valuestring, params);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    ef_rpc_conn *c = (ef_rpc_conn *)h;
    (void)suggested;
    if (!c->readbuf)
        c->readbuf = malloc(READ_BUF_SIZE);
    *buf = uv_buf_init(c->readbuf, c->readbuf ? READ_BUF_SIZE : 0);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    ef_rpc_conn *c = (ef_rpc_conn *)s;

    if (nread < 0) {
        /* EOF, also in the middle of a frame: the peer is gone and a truncated message cannot
         * be completed. */
        if (nread != UV_EOF)
            ef_debug("rpc: read failed, closing the connection: %s", uv_strerror((int)nread));
        ef_rpc_conn_close(c);
        return;
    }
    if (nread == 0 || c->closing)
        return;
    int r = ef_frame_decoder_feed(&c->dec, buf->base, (size_t)nread);
    while (r >= 0 && !c->closing) {
        char *text = NULL;
        size_t len = 0;
        r = ef_frame_decoder_next(&c->dec, &text, &len);
        if (r <= 0)
            break;
        handle_message(c, text, len);
        free(text);
    }
    /* Every complete message has been handled: descriptors beyond what one message carries were
     * sent with messages that took none, and are not kept. */
    if (c->pipe.ipc && !c->closing && uv_pipe_pending_count(&c->pipe) > EF_RPC_MAX_FDS) {
        ef_debug("rpc: the peer sent descriptors nobody took; closing them");
        ef_rpc_conn_drop_fds(c);
    }
    if (r < 0 && !c->closing) {
        ef_debug("rpc: %s, closing the connection",
                 r == -EMSGSIZE ? "the peer sent a frame of zero or excessive length"
                                : strerror(-r));
        ef_rpc_conn_close(c);
    }
}

static int conn_start(ef_rpc_conn *c)
{
    return uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
}

/* Frees a connection that was never handed to the caller: no on_close for it. */
static void conn_discard(ef_rpc_conn *c)
{
    c->handlers.on_close = NULL;
    c->closing = true;
    uv_close((uv_handle_t *)&c->pipe, on_conn_closed);
}

static int set_cloexec(int fd)
{
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
        return -errno;
    return 0;
}

/* ---- opening connections ---- */

int ef_rpc_conn_open_fd(uv_loop_t *loop, int fd, const struct ef_rpc_handlers *handlers, void *user,
                        ef_rpc_conn **ret_conn, ef_error *err)
{
    int r = set_cloexec(fd);
    if (r < 0)
        return ef_error_set_errno(err, r, "cannot use fd %d for RPC", fd);
    ef_rpc_conn *c = conn_new(loop, handlers, user);
    if (!c)
        return ef_error_set_errno(err, -ENOMEM, "cannot allocate an RPC connection");
    r = uv_pipe_open(&c->pipe, fd);
    if (r < 0) {
        conn_discard(c);
        return ef_error_set(err, r, "cannot use fd %d for RPC: %s", fd, uv_strerror(r));
    }
    r = conn_start(c);
    if (r < 0) {
        /* The fd now belongs to the pipe and is closed with it. */
        conn_discard(c);
        return ef_error_set(err, r, "cannot read from fd %d: %s", fd, uv_strerror(r));
    }
    *ret_conn = c;
    return 0;
}

static void on_connect(uv_connect_t *req, int status)
{
    struct connect_req *cr = (struct connect_req *)req;
    ef_rpc_conn *c = cr->conn;
    ef_rpc_connect_cb cb = cr->cb;
    void *user = cr->user;
    free(cr);

    if (status == 0)
        status = conn_start(c);
    if (status < 0) {
        conn_discard(c);
        cb(NULL, status, user);
        return;
    }
    cb(c, 0, user);
}

static int check_socket_path(const char *path, ef_error *err)
{
    struct sockaddr_un sa;
    if (!path || !*path)
        return ef_error_set(err, -EINVAL, "no socket path given");
    if (strlen(path) >= sizeof(sa.sun_path))
        return ef_error_set(err, -ENAMETOOLONG, "socket path '%s' is too long (at most %zu bytes)",
                            path, sizeof(sa.sun_path) - 1);
    return 0;
}

int ef_rpc_connect(uv_loop_t *loop, const char *path, const struct ef_rpc_handlers *handlers,
                   void *user, ef_rpc_connect_cb cb, ef_error *err)
{
    int r = check_socket_path(path, err);
    if (r < 0)
        return r;
    ef_rpc_conn *c = conn_new(loop, handlers, user);
    struct connect_req *cr = malloc(sizeof(*cr));
    if (!c || !cr) {
        free(cr);
        if (c)
            conn_discard(c);
        return ef_error_set_errno(err, -ENOMEM, "cannot connect to %s", path);
    }
    cr->conn = c;
    cr->cb = cb;
    cr->user = user;
    /* libuv creates the socket with SOCK_CLOEXEC. */
    uv_pipe_connect(&cr->req, &c->pipe, path, on_connect);
    return 0;
}

/* ---- servers ---- */

static void on_server_closed(uv_handle_t *h)
{
    ef_rpc_server *s = (ef_rpc_server *)h;
    free(s->path);
    free(s);
}

static void on_connection(uv_stream_t *stream, int status)
{
    ef_rpc_server *s = (ef_rpc_server *)stream;
    if (status < 0) {
        ef_debug("rpc: accept failed: %s", uv_strerror(status));
        return;
    }
    ef_rpc_conn *c = conn_new(s->loop, &s->handlers, s->user);
    if (!c) {
        ef_debug("rpc: out of memory accepting a connection");
        return;
    }
    /* libuv accepts with SOCK_CLOEXEC. */
    int r = uv_accept(stream, (uv_stream_t *)&c->pipe);
    if (r == 0)
        r = conn_start(c);
    if (r < 0) {
        ef_debug("rpc: accept failed: %s", uv_strerror(r));
        conn_discard(c);
        return;
    }
    c->server = s;
    c->srv_next = s->conns;
    if (s->conns)
        s->conns->srv_prev = c;
    s->conns = c;
}

/* Removes a stale socket left by an earlier run, but never anything that is not a socket. */
static int remove_stale_socket(const char *path, ef_error *err)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        return ef_error_set_errno(err, -errno, "cannot stat %s", path);
    }
    if (!S_ISSOCK(st.st_mode))
        return ef_error_set(err, -EEXIST, "%s exists and is not a socket; remove it first", path);
    if (unlink(path) < 0 && errno != ENOENT)
        return ef_error_set_errno(err, -errno, "cannot remove stale socket %s", path);
    return 0;
}

int ef_rpc_server_listen(uv_loop_t *loop, const char *path, int listen_fd, unsigned mode,
                         const struct ef_rpc_handlers *handlers, void *user,
                         ef_rpc_server **ret_server, ef_error *err)
{
    int r;
    bool bound = false;
    if ((path == NULL) == (listen_fd < 0))
        return ef_error_set(err, -EINVAL, "give either a socket path or a listening fd");
    if (path) {
        r = check_socket_path(path, err);
        if (r < 0)
            return r;
        r = remove_stale_socket(path, err);
        if (r < 0)
            return r;
    } else {
        r = set_cloexec(listen_fd);
        if (r < 0)
            return ef_error_set_errno(err, r, "cannot use listening fd %d", listen_fd);
    }

    ef_rpc_server *s = calloc(1, sizeof(*s));
    if (!s)
        return ef_error_set_errno(err, -ENOMEM, "cannot allocate an RPC server");
    if (path && !(s->path = strdup(path))) {
        free(s);
        return ef_error_set_errno(err, -ENOMEM, "cannot allocate an RPC server");
    }
    s->loop = loop;
    if (handlers)
        s->handlers = *handlers;
    s->user = user;
    uv_pipe_init(loop, &s->pipe, 0);

    if (path) {
        /* The umask makes bind() create the socket with at most `mode`, so it is never briefly
         * reachable by others; chmod then sets exactly `mode`. The umask is process-wide (but
         * for a funclet pool thread that has entered the spawn mount namespace, which has its own
         * copy): the servers start before any other thread of the programs exists (funclet's
         * clones run on libuv's pool later), so nothing else creates files meanwhile. */
        mode_t old = umask(~(mode_t)mode & 0777);
        r = uv_pipe_bind(&s->pipe, path);
        umask(old);
        if (r < 0) {
            ef_error_set(err, r, "cannot bind %s: %s", path, uv_strerror(r));
            goto fail;
        }
        bound = true;
        if (chmod(path, (mode_t)mode) < 0) {
            r = ef_error_set_errno(err, -errno, "cannot chmod %s", path);
            goto fail;
        }
    } else {
        r = uv_pipe_open(&s->pipe, listen_fd);
        if (r < 0) {
            ef_error_set(err, r, "cannot use listening fd %d: %s", listen_fd, uv_strerror(r));
            goto fail;
        }
    }
    r = uv_listen((uv_stream_t *)&s->pipe, 128, on_connection);
    if (r < 0) {
        ef_error_set(err, r, "cannot listen on %s: %s", path ? path : "the given fd",
                     uv_strerror(r));
        goto fail;
    }
    *ret_server = s;
    return 0;

fail:
    if (bound)
        unlink(path);
    uv_close((uv_handle_t *)&s->pipe, on_server_closed);
    return r;
}

void ef_rpc_server_close(ef_rpc_server *server)
{
    if (!server || server->closing)
        return;
    server->closing = true;
    /* Detach first: the server's memory may be freed before the connections' close callbacks
     * run. */
    while (server->conns) {
        ef_rpc_conn *c = server->conns;
        server->conns = c->srv_next;
        if (server->conns)
            server->conns->srv_prev = NULL;
        c->server = NULL;
        c->srv_prev = c->srv_next = NULL;
        ef_rpc_conn_close(c);
    }
    if (server->path)
        unlink(server->path);
    uv_close((uv_handle_t *)&server->pipe, on_server_closed);
}
