/* HTTP/1.1 server on libuv + llhttp (see http.h for the contract).
 *
 * Every connection owns one parser, one exchange (a connection serves one request at a time)
 * and a few growable buffers that are reused from request to request, so a keep-alive
 * connection costs no allocation per request once its buffers have grown. All reads land in a
 * single read buffer owned by the server; bytes that cannot be parsed yet (a pipelined request
 * behind a pending one) are copied into the connection's input buffer.
 *
 * A connection moves through these states:
 *   READING  - parsing; the idle timeout applies, and a request that has begun must arrive in
 *              time: its head within the header timeout of its first byte, its body at a
 *              minimum rate (a client trickling bytes would otherwise hold its connection, and
 *              with enough of them every connection, for as long as it likes).
 *   HANDLING - a complete request is with the handler; reads are only buffered so that a
 *              client that disconnects is noticed (long-poll abort).
 *   WRITING  - the response is being written; parsing resumes when the write completes.
 *              A response the handler allows to wait (ef_http_exchange_hold_for_next) with
 *              a whole request pipelined behind it is held instead (`held`) and goes out in
 *              one write with the next response.
 *   LINGER   - the response was the last one: our side is shut down and input is discarded
 *              until the client closes, so that unread request bytes do not turn our close
 *              into a reset that destroys the response before the client has read it.
 *
 * One repeating timer per server enforces the idle, request and linger deadlines of all
 * connections, which is cheaper than a timer per connection. At the connection limit, a new
 * connection takes the place of the one whose unfinished request began longest ago (a second
 * at least), rather than being turned away. */
#define _GNU_SOURCE /* memmem */
#include "common/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MAX_BODY         (6u * 1024 * 1024)
#define DEFAULT_MAX_HEADER_BYTES (64u * 1024)
/* Header fields per request, beyond which 431: what scans them (SigV4's canonical headers) then
 * stays cheap, whatever the byte limit lets through. */
#define MAX_HEADER_FIELDS         256
#define DEFAULT_IDLE_TIMEOUT_MS   60000u
#define DEFAULT_HEADER_TIMEOUT_MS 20000u
/* A body gets this long from the end of its head, and more for every byte that arrives: it
 * must come at BODY_MIN_RATE bytes per second at least (Apache's mod_reqtimeout works alike). */
#define BODY_TIMEOUT_MS 20000u
#define BODY_MIN_RATE   (16u * 1024)
/* At the connection limit, an unfinished request younger than this is not cut off for a new
 * connection. */
#define EVICT_MIN_AGE_MS        1000u
#define DEFAULT_MAX_CONNECTIONS 1024u
#define LISTEN_BACKLOG          1024
#define READ_BUFFER_SIZE        (64 * 1024)
/* How much a client may send ahead of a pending request before we stop reading it. */
#define PIPELINE_BUFFER_LIMIT (256 * 1024)
/* Buffers larger than this are released after a request instead of being kept for the next. */
#define KEEP_BUFFER_LIMIT (256 * 1024)
/* The most reserved for a body on the strength of its Content-Length alone: a client may declare
 * a large body and send nothing, and an idle connection must not hold memory for it. */
#define BODY_PREALLOC_LIMIT (64 * 1024)
#define LINGER_MS           2000u
/* The most held back by ef_http_exchange_hold_for_next: more is written at once. */
#define HOLD_LIMIT (16 * 1024)

enum conn_state {
    CONN_READING,
    CONN_HANDLING,
    CONN_WRITING,
    CONN_LINGER,
};

struct buf {
    char *data;
    size_t len;
    size_t cap;
};

/* A header as offsets into the connection's arena, which may move while it grows. */
struct header_ref {
    uint32_t name;
    uint32_t value;
};

struct conn;

struct ef_http_exchange {
    struct conn *conn;
    struct ef_http_request req;
    ef_http_abort_cb abort_cb;
    void *abort_user;
    bool active;     /* handed to the handler and not yet responded to or aborted */
    bool keep_alive; /* the client allows another request on this connection */
    bool head;       /* HEAD request: the response has no body */
    bool hold;       /* ef_http_exchange_hold_for_next */
};

struct conn {
    uv_tcp_t tcp; /* first member: the handle pointer is the connection pointer */
    ef_http_server *server;
    struct conn *prev, *next;
    llhttp_t parser;
    enum conn_state state;
    bool closing;
    bool close_after;    /* close once the current response is written */
    bool eof;            /* the client has closed its side */
    bool read_stopped;   /* reading paused because the pipeline buffer is full */
    bool resume_pending; /* written; its next pipelined request waits for the idle phase */
    struct conn *resume_next;
    unsigned long requests; /* requests handed to the handler so far */
    bool detached;          /* ef_http_exchange_detach gave its socket away */
    /* The first `held` bytes of `out` are responses not written yet: they go out with the
     * response to the request pipelined behind them (ef_http_exchange_hold_for_next). */
    size_t held;
    int err_status;          /* status chosen by a parser callback that failed (413, 431) */
    const char *err_message; /* why a parser callback refused a request (400) */
    uint64_t last_active;
    uint64_t request_started; /* when the request being parsed began; 0 between requests */
    uint64_t body_deadline;   /* when its body must be complete (extended as bytes arrive) */

    /* The request being parsed: URL and header strings, NUL-terminated, in `arena`. */
    struct buf arena;
    size_t seg_start; /* where the string being collected starts in the arena */
    size_t url_off;
    size_t query_off; /* arena offset of the query (the URL's '?' is cut), SIZE_MAX when none */
    bool have_url;
    bool headers_done;   /* the request line and headers of the current request are complete */
    size_t body_limit;   /* the current request's body limit (body_limit hook or max_body) */
    size_t body_expect;  /* its Content-Length, or its limit for a chunked body */
    size_t pending_name; /* arena offset of the header name awaiting its value */
    struct header_ref *refs;
    size_t n_refs, cap_refs;
    struct ef_http_header *headers;
    size_t cap_headers;
    struct buf body;

    struct buf in;  /* received but not yet parsed */
    struct buf out; /* the response being written */

    ef_http_exchange ex;
    uv_write_t write_req;
    uv_shutdown_t shutdown_req;
};

struct ef_http_server {
    uv_tcp_t listener; /* unused by a server made with ef_http_server_new */
    bool has_listener;
    uv_timer_t sweep;
    /* Connections whose response is written and whose next pipelined request is to be parsed
     * from the loop's idle phase rather than from inside the handler that responded. */
    uv_idle_t resume;
    struct conn *resume_head;
    uv_loop_t *loop;
    struct ef_http_server_config config;
    ef_http_handler_cb handler;
    void *user;
    int port;
    bool closing;
    /* ef_http_server_shutdown(): pending exchanges are still answered; the handles close with
     * the last connection, or at drain_deadline at the latest. */
    bool draining;
    bool handles_closed;
    uint64_t drain_deadline;
    unsigned n_conns;
    unsigned n_handles; /* open handles; the server is freed when the last one has closed */
    struct conn *conns;
    unsigned linger_ms;
    time_t date_sec;
    char date[40];
    char read_buffer[READ_BUFFER_SIZE];
};

static const char empty_string[] = "";
static const char continue_response[] = "HTTP/1.1 100 Continue\r\n\r\n";

static void conn_feed(struct conn *c, const char *data, size_t len);
static bool conn_flush_held(struct conn *c);

static void on_continue_written(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

/* Sends "100 Continue": at once when the socket takes it, as it nearly always does, else with a
 * write of its own (behind any write still queued, so the order holds). Not a request kept in
 * the connection: a client may pipeline requests that each expect 100-continue, and the next
 * could come while the previous 100's write is still queued, which would reuse a request libuv
 * still holds (and corrupt its write queue: the controller crashed of it). */
static int send_continue(struct conn *c)
{
    size_t len = sizeof(continue_response) - 1;
    uv_buf_t b = uv_buf_init((char *)continue_response, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)len)
        return 0;
    if (n < 0 && n != UV_EAGAIN)
        return n;
    size_t done = n > 0 ? (size_t)n : 0;
    uv_write_t *req = malloc(sizeof(*req));
    if (!req)
        return -ENOMEM;
    b = uv_buf_init((char *)continue_response + done, (unsigned)(len - done));
    int r = uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, on_continue_written);
    if (r < 0)
        free(req);
    return r;
}
static void conn_write_out(struct conn *c, bool may_hold);

/* ---- small buffers ---------------------------------------------------------------------- */

/* Like buf_reserve, but doubling stops at `ceiling` (when that is enough): a body whose final
 * size is known, or bounded, is not given up to twice the memory it needs. */
static int buf_reserve_upto(struct buf *b, size_t extra, size_t ceiling)
{
    if (b->cap - b->len >= extra)
        return 0;
    size_t want = b->len + extra;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < want)
        cap *= 2;
    if (cap > ceiling && ceiling >= want)
        cap = ceiling;
    char *p = realloc(b->data, cap);
    if (!p)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

static int buf_reserve(struct buf *b, size_t extra)
{
    return buf_reserve_upto(b, extra, SIZE_MAX);
}

static int buf_append(struct buf *b, const void *data, size_t len)
{
    int r = buf_reserve(b, len);
    if (r < 0)
        return r;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

static void buf_release_if_large(struct buf *b)
{
    if (b->cap > KEEP_BUFFER_LIMIT) {
        free(b->data);
        b->data = NULL;
        b->cap = 0;
        b->len = 0;
    }
}

static void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->cap = b->len = 0;
}

/* ---- handle bookkeeping ----------------------------------------------------------------- */

static void server_handle_closed(ef_http_server *s)
{
    if (--s->n_handles == 0 && s->closing)
        free(s);
}

static void on_server_handle_close(uv_handle_t *h)
{
    server_handle_closed(h->data);
}

/* Closes the timer and the idle handle; the listener is closed when `closing` is set. */
static void server_close_handles(ef_http_server *s)
{
    if (s->handles_closed)
        return;
    s->handles_closed = true;
    uv_close((uv_handle_t *)&s->sweep, on_server_handle_close);
    uv_close((uv_handle_t *)&s->resume, on_server_handle_close);
}

static void on_conn_close(uv_handle_t *h)
{
    struct conn *c = (struct conn *)h;
    ef_http_server *s = c->server;
    buf_free(&c->arena);
    buf_free(&c->body);
    buf_free(&c->in);
    buf_free(&c->out);
    free(c->refs);
    free(c->headers);
    free(c);
    server_handle_closed(s);
}

static void on_reject_close(uv_handle_t *h)
{
    ef_http_server *s = h->data;
    free(h);
    server_handle_closed(s);
}

/* Closes the connection; a pending exchange is aborted first. The memory lives on until the
 * close callback, so callers up the stack may still look at `c->closing`. */
static void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    /* Held responses are owed to the client: they go out if the socket takes them now. */
    if (!c->detached)
        conn_flush_held(c);
    c->closing = true;
    ef_http_server *s = c->server;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    s->n_conns--;
    /* A draining server is done with its last connection. */
    if (s->draining && s->n_conns == 0)
        server_close_handles(s);
    if (c->resume_pending) {
        for (struct conn **p = &s->resume_head; *p; p = &(*p)->resume_next) {
            if (*p == c) {
                *p = c->resume_next;
                break;
            }
        }
        c->resume_pending = false;
    }

    if (c->ex.active) {
        ef_http_abort_cb cb = c->ex.abort_cb;
        void *user = c->ex.abort_user;
        c->ex.active = false;
        c->ex.abort_cb = NULL;
        if (cb)
            cb(&c->ex, user);
    }
    uv_close((uv_handle_t *)&c->tcp, on_conn_close);
    if (!s->closing && !c->detached && s->config.on_connection_closed)
        s->config.on_connection_closed(s->user);
}

/* ---- responses -------------------------------------------------------------------------- */

const char *ef_http_status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

static char *put_uint(char *p, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* Copies a header value, turning bytes that would end the header line into spaces so that a
 * value that came from user data cannot inject headers. */
static char *put_value(char *p, const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char ch = v[i];
        *p++ = (ch == '\r' || ch == '\n') ? ' ' : ch;
    }
    return p;
}

static bool valid_header_name(const char *name, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch <= ' ' || ch >= 127 || ch == ':')
            return false;
    }
    return true;
}

/* Headers the server writes itself; a second copy from the caller would make the response
 * ambiguous (two Content-Lengths are a framing error for the client). */
static bool server_owned_header(const char *name, size_t n)
{
    switch (n) {
    case 4:
        return strcasecmp(name, "date") == 0;
    case 10:
        return strcasecmp(name, "connection") == 0;
    case 14:
        return strcasecmp(name, "content-length") == 0;
    case 17:
        return strcasecmp(name, "transfer-encoding") == 0;
    default:
        return false;
    }
}

/* The Date header value, formatted once per second. */
static const char *server_date(ef_http_server *s)
{
    time_t now = time(NULL);
    if (now != s->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(s->date, sizeof(s->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        s->date_sec = now;
    }
    return s->date;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = req->handle->data;
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    c->last_active = uv_now(c->server->loop);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

static void conn_resume_reading(struct conn *c)
{
    if (c->read_stopped) {
        c->read_stopped = false;
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
            conn_close(c);
    }
}

/* The response in `out` has been written completely (or is held for the next one): on to the
 * next request, or to LINGER. */
static void conn_written(struct conn *c)
{
    c->last_active = uv_now(c->server->loop);
    if (!c->held) {
        buf_release_if_large(&c->out);
        c->out.len = 0;
    }
    buf_release_if_large(&c->body);

    if (c->close_after) {
        if (c->held) {
            /* Held for a pipelined request that the client's end or a shutdown has since
             * dropped: the held responses are written first, and this runs again after. */
            c->state = CONN_WRITING;
            conn_write_out(c, false);
            return;
        }
        if (c->eof) {
            conn_close(c);
            return;
        }
        c->state = CONN_LINGER;
        c->in.len = 0;
        if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
            conn_close(c);
            return;
        }
        conn_resume_reading(c);
        return;
    }

    c->state = CONN_READING;
    conn_resume_reading(c);
    if (!c->closing && c->in.len > 0)
        conn_feed(c, c->in.data, c->in.len);
}

static void on_write(uv_write_t *req, int status)
{
    struct conn *c = req->handle->data;
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    conn_written(c);
}

static void on_resume(uv_idle_t *idle)
{
    ef_http_server *s = idle->data;
    /* The connections queued so far, once each: one that is answered at once and queued again
     * waits for the next turn of the loop, so that a client pipelining many small requests does
     * not keep the others waiting (the idle handle keeps the loop from blocking meanwhile). */
    struct conn *list = s->resume_head;
    s->resume_head = NULL;
    while (list) {
        struct conn *c = list;
        list = c->resume_next;
        c->resume_next = NULL;
        if (!c->resume_pending)
            continue; /* closed by an earlier one's handler (conn_close clears the flag) */
        c->resume_pending = false;
        conn_written(c);
    }
    if (!s->resume_head)
        uv_idle_stop(idle);
}

/* Parses the request pipelined behind the one just answered from the loop's idle phase (which,
 * while it is pending, keeps the loop from blocking) rather than from inside the handler that is
 * responding now. */
static void conn_resume_later(struct conn *c)
{
    ef_http_server *s = c->server;
    c->state = CONN_WRITING; /* what arrives meanwhile is buffered, not parsed */
    c->resume_pending = true;
    c->resume_next = s->resume_head;
    s->resume_head = c;
    uv_idle_start(&s->resume, on_resume);
}

/* Whether the response in `out` is held back to go out with the next one: its handler allows it,
 * a whole request head is already waiting behind this one (a client that pipelines waits for
 * both answers; the empty lines some clients send after a body are not a request: a request
 * line starts with its method's first letter), and what is held stays small. */
static bool conn_holds_response(const struct conn *c, bool allowed)
{
    return allowed && !c->close_after && c->out.len <= HOLD_LIMIT && c->in.len >= 4 &&
           c->in.data[0] >= 'A' && c->in.data[0] <= 'Z' &&
           memmem(c->in.data, c->in.len, "\r\n\r\n", 4) != NULL;
}

/* Writes the held responses, if any, as far as the socket takes them without waiting; returns
 * whether all of them went out. */
static bool conn_flush_held(struct conn *c)
{
    if (!c->held)
        return true;
    uv_buf_t held = uv_buf_init(c->out.data, (unsigned)c->held);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &held, 1);
    if (n <= 0)
        return false;
    /* What went out is not sent again. */
    memmove(c->out.data, c->out.data + n, c->out.len - (size_t)n);
    c->out.len -= (size_t)n;
    c->held -= (size_t)n;
    return c->held == 0;
}

/* Writes the response in `out` (behind any held ones). Most responses fit in the socket buffer:
 * uv_try_write sends them at once, without the write request whose completion costs libuv an
 * extra epoll_ctl and a loop iteration. When pipelined requests are waiting, the next one is
 * parsed from the loop's idle phase. What does not fit goes through uv_write. */
static void conn_write_out(struct conn *c, bool may_hold)
{
    if (conn_holds_response(c, may_hold)) {
        c->held = c->out.len;
        conn_resume_later(c);
        return;
    }
    c->held = 0;
    size_t done = 0;
    uv_buf_t all = uv_buf_init(c->out.data, (unsigned)c->out.len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &all, 1);
    if (n < 0 && n != UV_EAGAIN) {
        conn_close(c);
        return;
    }
    if (n > 0)
        done = (size_t)n;
    if (done == c->out.len) {
        if (c->in.len == 0) {
            conn_written(c);
            return;
        }
        conn_resume_later(c);
        return;
    }
    uv_buf_t rest = uv_buf_init(c->out.data + done, (unsigned)(c->out.len - done));
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &rest, 1, on_write) < 0)
        conn_close(c);
}

void ef_http_respond(ef_http_exchange *ex, int status, const struct ef_http_header *headers,
                     size_t n_headers, const char *content_type, const void *body, size_t len)
{
    struct conn *c = ex->conn;
    if (!ex->active)
        return;
    ex->active = false;
    ex->abort_cb = NULL;
    ex->abort_user = NULL;
    if (c->closing || c->state != CONN_HANDLING)
        return;
    ef_http_server *s = c->server;

    if (status < 200 || status > 999)
        status = 500;
    /* 204 and 304 carry neither a body nor a Content-Length (RFC 9110 8.6). */
    bool bodyless = status == 204 || status == 304;
    bool send_body = !bodyless && !ex->head && len > 0;
    c->close_after = c->close_after || !ex->keep_alive || s->closing;

    const char *reason = ef_http_status_text(status);
    size_t reason_len = strlen(reason);
    size_t ct_len = content_type ? strlen(content_type) : 0;
    if (len > UINT32_MAX) {
        /* uv_buf_t lengths are 32-bit; no response of the programs comes near this. */
        status = 500;
        reason = ef_http_status_text(status);
        reason_len = strlen(reason);
        len = 0;
        send_body = false;
    }
    /* The fixed lines (status line without the reason, Content-Type, Content-Length, Date,
     * Connection) take at most 160 bytes. */
    size_t need = 256 + reason_len + ct_len + (send_body ? len : 0);
    for (size_t i = 0; i < n_headers; i++)
        need += strlen(headers[i].name) + strlen(headers[i].value) + 4;

    c->out.len = c->held; /* this response goes out behind the held ones */
    if (buf_reserve(&c->out, need) < 0) {
        conn_close(c);
        return;
    }
    char *p = c->out.data + c->held;
    p = PUT_LIT(p, "HTTP/1.1 ");
    p = put_uint(p, (uint64_t)status);
    *p++ = ' ';
    p = put(p, reason, reason_len);
    p = PUT_LIT(p, "\r\n");
    for (size_t i = 0; i < n_headers; i++) {
        size_t nl = strlen(headers[i].name);
        if (!valid_header_name(headers[i].name, nl) || server_owned_header(headers[i].name, nl))
            continue;
        p = put(p, headers[i].name, nl);
        p = PUT_LIT(p, ": ");
        p = put_value(p, headers[i].value, strlen(headers[i].value));
        p = PUT_LIT(p, "\r\n");
    }
    if (content_type) {
        p = PUT_LIT(p, "Content-Type: ");
        p = put_value(p, content_type, ct_len);
        p = PUT_LIT(p, "\r\n");
    }
    if (!bodyless) {
        p = PUT_LIT(p, "Content-Length: ");
        p = put_uint(p, (uint64_t)len);
        p = PUT_LIT(p, "\r\n");
    }
    const char *date = server_date(s);
    p = PUT_LIT(p, "Date: ");
    p = put(p, date, strlen(date));
    p = c->close_after ? PUT_LIT(p, "\r\nConnection: close\r\n\r\n")
                       : PUT_LIT(p, "\r\nConnection: keep-alive\r\n\r\n");
    size_t head_len = (size_t)(p - c->out.data);
    /* The body is copied behind the head so that the caller's buffer is free at once, and the
     * response goes out in one write. */
    if (send_body)
        memcpy(p, body, len);
    c->out.len = head_len + (send_body ? len : 0);

    c->state = CONN_WRITING;
    c->last_active = uv_now(s->loop);
    conn_write_out(c, ex->hold);
}

const struct ef_http_request *ef_http_exchange_request(const ef_http_exchange *ex)
{
    return &ex->req;
}

void ef_http_exchange_on_abort(ef_http_exchange *ex, ef_http_abort_cb cb, void *user)
{
    ex->abort_cb = cb;
    ex->abort_user = user;
}

void ef_http_exchange_hold_for_next(ef_http_exchange *ex)
{
    ex->hold = true;
}

unsigned long ef_http_exchange_requests(const ef_http_exchange *ex)
{
    return ex->conn->requests;
}

int ef_http_exchange_detach(ef_http_exchange *ex, int *ret_fd, ef_error *err)
{
    struct conn *c = ex->conn;
    if (!ex->active || c->closing || c->state != CONN_HANDLING)
        return ef_error_set(err, -EINVAL, "the exchange is not waiting for its response");
    /* The new owner starts reading the socket where this server stopped: nothing may be in
     * this server's hands but the request being detached. */
    if (c->in.len > 0 || c->eof || c->close_after)
        return ef_error_set(err, -EBUSY,
                            "the client sent more than the pending request, or is closing");
    /* The answers held for coalescing precede the detached request's on the wire. */
    if (!conn_flush_held(c))
        return ef_error_set(err, -EBUSY, "the responses held for the client cannot be written now");
    uv_os_fd_t fd;
    int r = uv_fileno((uv_handle_t *)&c->tcp, &fd);
    if (r < 0)
        return ef_error_set(err, r, "the connection has no socket: %s", uv_strerror(r));
    int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (copy < 0)
        return ef_error_set_errno(err, -errno, "cannot duplicate the connection's socket");
    /* The handler gave the exchange up: closing the connection aborts nothing, and since the
     * copy keeps the socket open the client sees no end of the connection. */
    ex->active = false;
    ex->abort_cb = NULL;
    c->detached = true;
    conn_close(c);
    *ret_fd = copy;
    return 0;
}

/* Appends `s` to `p` as the contents of a JSON string. */
static char *put_json_string(char *p, const char *end, const char *s)
{
    for (; *s && p + 6 < end; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            *p++ = '\\';
            *p++ = (char)ch;
        } else if (ch < 0x20) {
            p += snprintf(p, (size_t)(end - p), "\\u%04x", ch);
        } else {
            *p++ = (char)ch;
        }
    }
    return p;
}

static int conn_fill_request(struct conn *c);

static void conn_protocol_error(struct conn *c, int status, const char *message)
{
    ef_http_server *s = c->server;
    static const struct ef_http_request no_request = {
        .method = empty_string,
        .path = empty_string,
        .query = empty_string,
        .headers = NULL,
        .n_headers = 0,
        .body = empty_string,
        .body_len = 0,
    };
    /* Past the headers (a body over its limit) the hook may look at what was asked, so that it
     * words the refusal for the operation. */
    if (!c->headers_done || conn_fill_request(c) < 0)
        c->ex.req = no_request;
    c->headers_done = false;
    c->ex.active = true;
    c->ex.keep_alive = false;
    c->ex.head = false;
    c->ex.hold = false;
    c->ex.abort_cb = NULL;
    c->close_after = true;
    c->state = CONN_HANDLING;
    c->in.len = 0;

    if (s->config.on_protocol_error) {
        s->config.on_protocol_error(&c->ex, status, message, s->user);
    } else {
        char json[512];
        char *end = json + sizeof(json);
        char *p = PUT_LIT(json, "{\"message\":\"");
        p = put_json_string(p, end - 3, message);
        p = PUT_LIT(p, "\"}");
        ef_http_respond(&c->ex, status, NULL, 0, "application/json", json, (size_t)(p - json));
    }
    /* A hook that neither answered nor took ownership would leave the client hanging. */
    if (!c->closing && c->ex.active && !c->ex.abort_cb)
        conn_close(c);
}

/* ---- parsing ---------------------------------------------------------------------------- */

static int arena_add(struct conn *c, const char *at, size_t len)
{
    if (c->arena.len + len > c->server->config.max_header_bytes) {
        c->err_status = 431;
        return -1;
    }
    if (buf_append(&c->arena, at, len) < 0) {
        c->err_status = 500;
        return -1;
    }
    return 0;
}

/* Ends the string being collected and returns its offset, or -1 on failure. */
static long arena_end_segment(struct conn *c)
{
    size_t start = c->seg_start;
    if (arena_add(c, "", 1) < 0)
        return -1;
    c->seg_start = c->arena.len;
    return (long)start;
}

static int on_message_begin(llhttp_t *p)
{
    struct conn *c = p->data;
    c->request_started = uv_now(c->server->loop);
    c->arena.len = 0;
    c->seg_start = 0;
    c->have_url = false;
    c->headers_done = false;
    c->n_refs = 0;
    c->body.len = 0;
    c->body_limit = c->server->config.max_body;
    c->err_status = 0;
    c->err_message = NULL;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    return arena_add(p->data, at, len);
}

static int on_url_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    long off = arena_end_segment(c);
    if (off < 0)
        return -1;
    c->url_off = (size_t)off;
    c->have_url = true;
    return 0;
}

static int on_header_data(llhttp_t *p, const char *at, size_t len)
{
    return arena_add(p->data, at, len);
}

/* RFC 9110 token characters; llhttp 8 lets some others (such as a space) through. */
static bool is_tchar(unsigned char ch)
{
    if (ch >= 'a' && ch <= 'z')
        return true;
    if (ch >= 'A' && ch <= 'Z')
        return true;
    if (ch >= '0' && ch <= '9')
        return true;
    return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static int on_header_field_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    if (c->arena.len == c->seg_start) {
        c->err_message = "empty header name";
        return -1;
    }
    for (size_t i = c->seg_start; i < c->arena.len; i++) {
        if (!is_tchar((unsigned char)c->arena.data[i])) {
            c->err_message = "invalid character in a header name";
            return -1;
        }
    }
    long off = arena_end_segment(c);
    if (off < 0)
        return -1;
    c->pending_name = (size_t)off;
    return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    /* llhttp drops leading whitespace only; trailing whitespace is not part of the value. */
    while (c->arena.len > c->seg_start &&
           (c->arena.data[c->arena.len - 1] == ' ' || c->arena.data[c->arena.len - 1] == '\t'))
        c->arena.len--;
    long off = arena_end_segment(c);
    if (off < 0)
        return -1;
    /* Trailers of a chunked body are not headers of the request: the body limit and the
     * routing were decided without them, and a handler must not see what they did not. */
    if (c->headers_done)
        return 0;
    if (c->n_refs == MAX_HEADER_FIELDS) {
        c->err_status = 431;
        return -1;
    }
    if (c->n_refs == c->cap_refs) {
        size_t cap = c->cap_refs ? c->cap_refs * 2 : 16;
        struct header_ref *r = realloc(c->refs, cap * sizeof(*r));
        if (!r) {
            c->err_status = 500;
            return -1;
        }
        c->refs = r;
        c->cap_refs = cap;
    }
    c->refs[c->n_refs++] = (struct header_ref){(uint32_t)c->pending_name, (uint32_t)off};
    return 0;
}

/* Points the exchange's request at the parsed request line and headers (the body is left
 * empty). Called again at the end of the message, as trailers of a chunked body may have moved
 * the arena. */
static int conn_fill_request(struct conn *c)
{
    if (c->n_refs > c->cap_headers) {
        struct ef_http_header *h = realloc(c->headers, c->n_refs * sizeof(*h));
        if (!h)
            return -ENOMEM;
        c->headers = h;
        c->cap_headers = c->n_refs;
    }
    for (size_t i = 0; i < c->n_refs; i++) {
        c->headers[i].name = c->arena.data + c->refs[i].name;
        c->headers[i].value = c->arena.data + c->refs[i].value;
    }
    struct ef_http_request *req = &c->ex.req;
    req->method = llhttp_method_name((llhttp_method_t)c->parser.method);
    req->path = c->arena.data + c->url_off;
    req->query = c->query_off == SIZE_MAX ? empty_string : c->arena.data + c->query_off;
    req->headers = c->headers;
    req->n_headers = c->n_refs;
    req->body = empty_string;
    req->body_len = 0;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    ef_http_server *s = c->server;
    if (!c->have_url) {
        c->err_status = 400;
        return -1;
    }
    char *url = c->arena.data + c->url_off;
    char *q = strchr(url, '?');
    if (q) {
        *q = '\0';
        c->query_off = (size_t)(q + 1 - c->arena.data);
    } else {
        c->query_off = SIZE_MAX;
    }
    c->headers_done = true;
    c->body_deadline = uv_now(s->loop) + BODY_TIMEOUT_MS;

    /* The limit is decided before any of the body is read, so that a body the route would
     * refuse anyway is never buffered. */
    c->body_limit = s->config.max_body;
    if (s->config.body_limit) {
        if (conn_fill_request(c) < 0) {
            c->err_status = 500;
            return -1;
        }
        size_t limit = s->config.body_limit(&c->ex.req, s->user);
        if (limit < c->body_limit)
            c->body_limit = limit;
    }
    c->body_expect = c->body_limit;
    if (p->flags & F_CONTENT_LENGTH) {
        if (p->content_length > c->body_limit) {
            c->err_status = 413;
            return -1;
        }
        c->body_expect = (size_t)p->content_length;
        /* Memory follows the bytes that arrive: only a small body is reserved in full. */
        size_t first = c->body_expect < BODY_PREALLOC_LIMIT ? c->body_expect : BODY_PREALLOC_LIMIT;
        if (buf_reserve_upto(&c->body, first + 1, c->body_expect + 1) < 0) {
            c->err_status = 500;
            return -1;
        }
    }
    for (size_t i = 0; i < c->n_refs; i++) {
        if (strcasecmp(c->arena.data + c->refs[i].name, "expect") == 0 &&
            strcasecmp(c->arena.data + c->refs[i].value, "100-continue") == 0) {
            /* The client waits for this before sending the body (curl does for large ones).
             * A response held for this request goes first, or the client would take the 100
             * for the earlier request's; one the socket does not take now fails the request. */
            if (!conn_flush_held(c)) {
                c->err_status = 500;
                c->err_message = "the answer to the previous request cannot be written";
                return -1;
            }
            if (send_continue(c) < 0) {
                c->err_status = 500;
                return -1;
            }
            break;
        }
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    if (c->body.len + len > c->body_limit) {
        c->err_status = 413;
        return -1;
    }
    /* One byte more for the NUL that on_message_complete adds. */
    if (buf_reserve_upto(&c->body, len + 1, c->body_expect + 1) < 0) {
        c->err_status = 500;
        return -1;
    }
    memcpy(c->body.data + c->body.len, at, len);
    c->body.len += len;
    c->body_deadline += (uint64_t)len * 1000 / BODY_MIN_RATE;
    return 0;
}

/* Builds the request the handler sees and pauses the parser until it has been answered. */
static int on_message_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    if (!c->headers_done) {
        c->err_status = 400;
        return -1;
    }
    if (conn_fill_request(c) < 0) {
        c->err_status = 500;
        return -1;
    }
    /* The request now belongs to the handler; a later protocol error is another request's. */
    c->headers_done = false;
    struct ef_http_request *req = &c->ex.req;
    if (c->body.data) {
        c->body.data[c->body.len] = '\0'; /* on_body and on_headers_complete reserved this byte */
        req->body = c->body.data;
    } else {
        req->body = empty_string;
    }
    req->body_len = c->body.len;

    c->ex.keep_alive = llhttp_should_keep_alive(p) && !p->upgrade;
    c->ex.head = p->method == HTTP_HEAD;
    return HPE_PAUSED;
}

static const llhttp_settings_t parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_data,
    .on_header_value = on_header_data,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_url_complete = on_url_complete,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value_complete = on_header_value_complete,
};

static void conn_dispatch(struct conn *c)
{
    ef_http_server *s = c->server;
    c->state = CONN_HANDLING;
    c->request_started = 0;
    c->close_after = !c->ex.keep_alive;
    if (c->close_after)
        c->in.len = 0; /* nothing after this request will be parsed */
    c->ex.active = true;
    c->ex.abort_cb = NULL;
    c->ex.abort_user = NULL;
    c->ex.hold = false;
    c->requests++;
    s->handler(&c->ex, &c->ex.req, s->user);
}

/* Parses `data`, which is either fresh input or the connection's own input buffer. */
static void conn_feed(struct conn *c, const char *data, size_t len)
{
    bool from_in = data == c->in.data;
    enum llhttp_errno e = llhttp_execute(&c->parser, data, len);
    if (e == HPE_OK) {
        if (from_in)
            c->in.len = 0;
        return;
    }
    if (e == HPE_PAUSED) {
        const char *pos = llhttp_get_error_pos(&c->parser);
        size_t rest = len - (size_t)(pos - data);
        llhttp_resume(&c->parser);
        if (from_in) {
            memmove(c->in.data, pos, rest);
            c->in.len = rest;
        } else if (rest > 0 && buf_append(&c->in, pos, rest) < 0) {
            conn_close(c);
            return;
        }
        conn_dispatch(c);
        return;
    }
    if (from_in)
        c->in.len = 0;

    char message[160];
    int status = c->err_status ? c->err_status : 400;
    switch (status) {
    case 413:
        snprintf(message, sizeof(message), "request body is larger than the limit of %zu bytes",
                 c->body_limit);
        break;
    case 431:
        snprintf(message, sizeof(message), "request headers are larger than the limit of %zu bytes",
                 c->server->config.max_header_bytes);
        break;
    case 500:
        snprintf(message, sizeof(message), "out of memory while reading the request");
        break;
    default:
        snprintf(message, sizeof(message), "malformed HTTP request: %s",
                 c->err_message ? c->err_message : llhttp_get_error_reason(&c->parser));
        break;
    }
    conn_protocol_error(c, status, message);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct conn *c = (struct conn *)h;
    /* One buffer serves every connection: libuv hands each read to on_read before it asks
     * for the next buffer, and on_read copies whatever it must keep. */
    buf->base = c->server->read_buffer;
    buf->len = sizeof(c->server->read_buffer);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = (struct conn *)stream;
    if (c->closing || nread == 0)
        return;
    if (nread < 0) {
        c->eof = true;
        /* A client that only half-closed still gets the response being written. */
        if (nread == UV_EOF && c->state == CONN_WRITING) {
            c->close_after = true;
            return;
        }
        conn_close(c);
        return;
    }
    switch (c->state) {
    case CONN_READING:
        c->last_active = uv_now(c->server->loop);
        conn_feed(c, buf->base, (size_t)nread);
        break;
    case CONN_HANDLING:
    case CONN_WRITING:
        if (c->close_after)
            break;
        if (buf_append(&c->in, buf->base, (size_t)nread) < 0) {
            conn_close(c);
            break;
        }
        if (c->in.len >= PIPELINE_BUFFER_LIMIT) {
            uv_read_stop(stream);
            c->read_stopped = true;
        }
        break;
    case CONN_LINGER:
        break;
    }
}

/* ---- server ----------------------------------------------------------------------------- */

/* Whether the request `c` is reading has missed its deadline: its head the header timeout from
 * its first byte, its body the minimum rate. */
static bool request_overdue(const ef_http_server *s, const struct conn *c, uint64_t now)
{
    if (!c->request_started)
        return false;
    if (c->headers_done)
        return now >= c->body_deadline;
    return now - c->request_started >= s->config.header_timeout_ms;
}

/* At the connection limit: the connection whose unfinished request began longest ago, at least
 * EVICT_MIN_AGE_MS ago, or NULL. Connections between requests, or with a request being handled
 * or answered, are never taken. */
static struct conn *eviction_candidate(ef_http_server *s)
{
    uint64_t now = uv_now(s->loop);
    struct conn *oldest = NULL;
    for (struct conn *c = s->conns; c; c = c->next) {
        if (c->state != CONN_READING || !c->request_started ||
            now - c->request_started < EVICT_MIN_AGE_MS)
            continue;
        if (!oldest || c->request_started < oldest->request_started)
            oldest = c;
    }
    return oldest;
}

static void on_sweep(uv_timer_t *t)
{
    ef_http_server *s = t->data;
    uint64_t now = uv_now(s->loop);
    if (s->draining && now >= s->drain_deadline) {
        /* The grace period is over: exchanges still unanswered are aborted. */
        while (s->conns)
            conn_close(s->conns);
        return;
    }
    struct conn *next;
    for (struct conn *c = s->conns; c; c = next) {
        next = c->next;
        uint64_t idle = now - c->last_active;
        switch (c->state) {
        case CONN_READING:
            if (idle >= s->config.idle_timeout_ms || request_overdue(s, c, now))
                conn_close(c);
            break;
        case CONN_WRITING:
            /* libuv reports a write when it is complete, not as it goes: a large response to
             * a slow reader gets the idle timeout plus its size at the minimum rate. */
            if (idle >= s->config.idle_timeout_ms + (uint64_t)c->out.len * 1000 / BODY_MIN_RATE)
                conn_close(c);
            break;
        case CONN_LINGER:
            if (idle >= s->linger_ms)
                conn_close(c);
            break;
        case CONN_HANDLING:
            break; /* a long poll may legitimately wait for a long time */
        }
    }
}

static void reject_connection(ef_http_server *s)
{
    uv_tcp_t *t = malloc(sizeof(*t));
    if (!t)
        return;
    uv_tcp_init(s->loop, t);
    t->data = s;
    s->n_handles++;
    (void)uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)t);
    uv_close((uv_handle_t *)t, on_reject_close);
}

/* A new connection of `s` with its TCP handle initialised (not yet open), or NULL. */
static struct conn *conn_new(ef_http_server *s)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->server = s;
    uv_tcp_init(s->loop, &c->tcp);
    c->tcp.data = c;
    c->ex.conn = c;
    s->n_handles++;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    c->state = CONN_READING;
    c->last_active = uv_now(s->loop);
    llhttp_init(&c->parser, HTTP_REQUEST, &parser_settings);
    c->parser.data = c;
    return c;
}

static void on_connection(uv_stream_t *listener, int status)
{
    ef_http_server *s = listener->data;
    if (status < 0 || s->closing)
        return;
    if (s->n_conns >= s->config.max_connections) {
        struct conn *victim = eviction_candidate(s);
        if (!victim) {
            reject_connection(s);
            return;
        }
        conn_close(victim);
    }
    struct conn *c = conn_new(s);
    if (!c) {
        reject_connection(s);
        return;
    }
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        conn_close(c);
}

static void server_start_timers(ef_http_server *s);

/* A server with its configuration (defaults filled in) and no handles yet. */
static ef_http_server *server_alloc(uv_loop_t *loop, const struct ef_http_server_config *config,
                                    ef_http_handler_cb handler, void *user)
{
    ef_http_server *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->loop = loop;
    s->handler = handler;
    s->user = user;
    if (config)
        s->config = *config;
    if (!s->config.max_body)
        s->config.max_body = DEFAULT_MAX_BODY;
    if (!s->config.max_header_bytes)
        s->config.max_header_bytes = DEFAULT_MAX_HEADER_BYTES;
    if (!s->config.idle_timeout_ms)
        s->config.idle_timeout_ms = DEFAULT_IDLE_TIMEOUT_MS;
    if (!s->config.header_timeout_ms)
        s->config.header_timeout_ms = DEFAULT_HEADER_TIMEOUT_MS;
    if (!s->config.max_connections)
        s->config.max_connections = DEFAULT_MAX_CONNECTIONS;
    s->linger_ms = s->config.idle_timeout_ms < LINGER_MS ? s->config.idle_timeout_ms : LINGER_MS;
    return s;
}

int ef_http_server_listen(uv_loop_t *loop, const char *host, int port,
                          const struct ef_http_server_config *config, ef_http_handler_cb handler,
                          void *user, ef_http_server **ret_server, ef_error *err)
{
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
        struct sockaddr_storage ss;
    } addr;
    socklen_t addr_len;
    int r;

    if (!host || !handler || port < 0 || port > 65535)
        return ef_error_set(err, -EINVAL, "invalid HTTP listen address '%s:%d'",
                            host ? host : "(null)", port);
    memset(&addr, 0, sizeof(addr));
    if (strchr(host, ':')) {
        r = uv_ip6_addr(host, port, &addr.in6);
        addr_len = sizeof(addr.in6);
    } else {
        r = uv_ip4_addr(host, port, &addr.in4);
        addr_len = sizeof(addr.in4);
    }
    if (r < 0)
        return ef_error_set(err, -EINVAL,
                            "invalid HTTP listen address '%s': expected an IPv4 or IPv6 literal",
                            host);

    /* The socket is made here rather than by libuv so that a failed bind leaves no handle
     * behind that the caller would have to run the loop to close. */
    int fd = socket(addr.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return ef_error_set_errno(err, -errno, "cannot create a socket for %s:%d", host, port);
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, &addr.sa, addr_len) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        r = -errno;
        close(fd);
        return ef_error_set_errno(err, r, "cannot listen on %s:%d", host, port);
    }
    struct sockaddr_storage bound;
    socklen_t bound_len = sizeof(bound);
    if (getsockname(fd, (struct sockaddr *)&bound, &bound_len) < 0) {
        r = -errno;
        close(fd);
        return ef_error_set_errno(err, r, "cannot read the address bound for %s:%d", host, port);
    }

    ef_http_server *s = server_alloc(loop, config, handler, user);
    if (!s) {
        close(fd);
        return ef_error_set(err, -ENOMEM, "out of memory creating the HTTP server");
    }
    s->has_listener = true;
    s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);

    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    s->n_handles++;
    r = uv_tcp_open(&s->listener, fd);
    if (r < 0)
        close(fd); /* the handle only owns the socket once it has been opened */
    else
        r = uv_listen((uv_stream_t *)&s->listener, LISTEN_BACKLOG, on_connection);
    if (r < 0) {
        /* The handle needs the loop to run once more before it is gone and `s` is freed. */
        s->closing = true;
        uv_close((uv_handle_t *)&s->listener, on_server_handle_close);
        return ef_error_set(err, r, "cannot listen on %s:%d: %s", host, port, uv_strerror(r));
    }
    server_start_timers(s);
    *ret_server = s;
    return 0;
}

int ef_http_server_new(uv_loop_t *loop, const struct ef_http_server_config *config,
                       ef_http_handler_cb handler, void *user, ef_http_server **ret_server,
                       ef_error *err)
{
    if (!handler)
        return ef_error_set(err, -EINVAL, "an HTTP server needs a handler");
    ef_http_server *s = server_alloc(loop, config, handler, user);
    if (!s)
        return ef_error_set(err, -ENOMEM, "out of memory creating the HTTP server");
    server_start_timers(s);
    *ret_server = s;
    return 0;
}

int ef_http_server_adopt(ef_http_server *s, int fd, const char *pending, size_t len, ef_error *err)
{
    if (s->closing)
        return ef_error_set(err, -ESHUTDOWN, "the HTTP server is closing");
    if (s->n_conns >= s->config.max_connections)
        return ef_error_set(err, -EMFILE, "the HTTP server has %u connections already", s->n_conns);
    struct conn *c = conn_new(s);
    if (!c)
        return ef_error_set(err, -ENOMEM, "out of memory adopting a connection");
    int r = uv_tcp_open(&c->tcp, fd);
    if (r < 0) {
        /* The handle does not own the socket: the caller keeps it. */
        conn_close(c);
        return ef_error_set(err, r, "cannot adopt socket %d: %s", fd, uv_strerror(r));
    }
    uv_tcp_nodelay(&c->tcp, 1);
    r = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (r < 0) {
        /* The handle owns the socket now: closing it closes the socket. */
        conn_close(c);
        return ef_error_set(err, -ECONNABORTED, "cannot read adopted socket: %s", uv_strerror(r));
    }
    if (len > 0)
        conn_feed(c, pending, len);
    return 0;
}

static void server_start_timers(ef_http_server *s)
{
    unsigned interval = s->config.idle_timeout_ms / 4;
    if (interval < 10)
        interval = 10;
    if (interval > 1000)
        interval = 1000;
    uv_timer_init(s->loop, &s->sweep);
    s->sweep.data = s;
    s->n_handles++;
    uv_timer_start(&s->sweep, on_sweep, interval, interval);
    uv_unref((uv_handle_t *)&s->sweep);
    uv_idle_init(s->loop, &s->resume);
    s->resume.data = s;
    s->n_handles++;
}

int ef_http_server_port(const ef_http_server *server)
{
    return server->port;
}

unsigned ef_http_server_connections(const ef_http_server *server)
{
    return server->n_conns;
}

void ef_http_server_close(ef_http_server *server)
{
    if (!server || server->closing)
        return;
    server->closing = true;
    if (server->has_listener)
        uv_close((uv_handle_t *)&server->listener, on_server_handle_close);
    server_close_handles(server);
    while (server->conns)
        conn_close(server->conns);
}

void ef_http_server_shutdown(ef_http_server *server, unsigned grace_ms)
{
    if (!server || server->closing)
        return;
    server->closing = true;
    server->draining = true;
    server->drain_deadline = uv_now(server->loop) + grace_ms;
    if (server->has_listener)
        uv_close((uv_handle_t *)&server->listener, on_server_handle_close);
    struct conn *next;
    for (struct conn *c = server->conns; c; c = next) {
        next = c->next;
        switch (c->state) {
        case CONN_READING:
            /* Idle between requests, or a request not complete yet that no handler has seen:
             * nothing is owed to the client. */
            conn_close(c);
            break;
        case CONN_HANDLING:
        case CONN_WRITING:
            /* The answer (being written, or still to come from the handler) is the last one on
             * this connection; what the client sent behind it is dropped. */
            c->close_after = true;
            c->in.len = 0;
            break;
        case CONN_LINGER:
            break;
        }
    }
    if (server->n_conns == 0)
        server_close_handles(server);
}

/* ---- request helpers -------------------------------------------------------------------- */

const char *ef_http_request_header(const struct ef_http_request *req, const char *name)
{
    for (size_t i = 0; i < req->n_headers; i++) {
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    }
    return NULL;
}

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Decodes one form-encoded byte at s[*i] (advancing *i); a malformed escape stays literal. */
/* One character of a percent-encoded query, as SigV4 canonicalises it (RFC 3986): '+' is a '+',
 * not a space, so that what a handler reads is what the client signed. */
static char decode_at(const char *s, size_t n, size_t *i)
{
    char ch = s[*i];
    if (ch == '%' && *i + 2 < n) {
        int hi = hex_value(s[*i + 1]), lo = hex_value(s[*i + 2]);
        if (hi >= 0 && lo >= 0) {
            *i += 3;
            return (char)(hi * 16 + lo);
        }
    }
    (*i)++;
    return ch;
}

/* Whether the decoded key of the pair at `p` (key_len bytes) equals the decoded key at `q`. */
static bool same_key(const char *p, size_t p_len, const char *q, size_t q_len)
{
    size_t i = 0, j = 0;
    while (i < p_len && j < q_len)
        if (decode_at(p, p_len, &i) != decode_at(q, q_len, &j))
            return false;
    return i == p_len && j == q_len;
}

static size_t key_length(const char *pair, size_t pair_len)
{
    const char *eq = memchr(pair, '=', pair_len);
    return eq ? (size_t)(eq - pair) : pair_len;
}

bool ef_http_query_valid(const char *query, const char **ret_why)
{
    if (!query)
        return true;
    for (const char *p = query; *p;) {
        const char *amp = strchr(p, '&');
        size_t pair_len = amp ? (size_t)(amp - p) : strlen(p);
        for (size_t i = 0; i < pair_len;) {
            if (decode_at(p, pair_len, &i) == '\0') {
                *ret_why = "a query parameter holds a NUL character (%00)";
                return false;
            }
        }
        size_t key_len = key_length(p, pair_len);
        for (const char *q = amp ? amp + 1 : NULL; q && *q;) {
            const char *next = strchr(q, '&');
            size_t q_len = next ? (size_t)(next - q) : strlen(q);
            if (same_key(p, key_len, q, key_length(q, q_len))) {
                *ret_why = "a query parameter is given more than once";
                return false;
            }
            q = next ? next + 1 : NULL;
        }
        if (!amp)
            break;
        p = amp + 1;
    }
    return true;
}

char *ef_http_query_param(const char *query, const char *name)
{
    if (!query || !name)
        return NULL;
    size_t name_len = strlen(name);
    const char *p = query;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t pair_len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', pair_len);
        size_t key_len = eq ? (size_t)(eq - p) : pair_len;

        /* Compare the decoded key with `name` without allocating. */
        size_t i = 0, j = 0;
        bool match = true;
        while (i < key_len) {
            char ch = decode_at(p, key_len, &i);
            if (j >= name_len || ch != name[j]) {
                match = false;
                break;
            }
            j++;
        }
        if (match && j == name_len) {
            const char *v = eq ? eq + 1 : p + pair_len;
            size_t v_len = (size_t)(p + pair_len - v);
            char *out = malloc(v_len + 1);
            if (!out)
                return NULL;
            size_t k = 0, o = 0;
            while (k < v_len)
                out[o++] = decode_at(v, v_len, &k);
            out[o] = '\0';
            return out;
        }
        if (!amp)
            break;
        p = amp + 1;
    }
    return NULL;
}
