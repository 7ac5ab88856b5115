/* HTTP/1.1 server on libuv + llhttp, shared by the controller's API and the runner's Runtime
 * API.
 *
 * One request at a time per connection: after a request is complete the server stops reading
 * that connection until the handler has responded (pipelined bytes are kept and parsed later).
 * Keep-alive follows HTTP/1.1 rules. Accepted sockets have TCP_NODELAY, and every response is
 * written with one write (head and body in one buffer).
 *
 * Malformed requests get 400, a body above its limit gets 413, headers above max_header_bytes
 * get 431; the connection is then closed. The `on_protocol_error` hook lets a program shape
 * those error bodies (the controller uses Lambda's error format).
 *
 * A body's limit is decided per request once its headers are complete (the `body_limit` hook,
 * else `max_body`): a Content-Length above it is refused before a byte of the body is read, a
 * chunked body as soon as it passes it. Memory for a body grows with what has arrived, never
 * with what a client declares. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "common/error.h"

struct ef_http_header {
    const char *name;
    const char *value;
};

struct ef_http_request {
    const char *method; /* "GET", "POST", ... */
    const char *path;   /* URL path without the query, not percent-decoded */
    const char *query;  /* text after '?', "" when none */
    const struct ef_http_header *headers;
    size_t n_headers;
    const char *body; /* NUL-terminated for convenience; may contain NULs */
    size_t body_len;
};

typedef struct ef_http_server ef_http_server;
typedef struct ef_http_exchange ef_http_exchange;

/* Called once per complete request. `req` stays valid until the exchange is responded to or
 * aborted. A handler that responds later must register an abort callback first. */
typedef void (*ef_http_handler_cb)(ef_http_exchange *ex, const struct ef_http_request *req,
                                   void *user);

/* Called when the client's connection goes away before the response was sent. The exchange is
 * freed right after this returns; drop every pointer to it. */
typedef void (*ef_http_abort_cb)(ef_http_exchange *ex, void *user);

struct ef_http_server_config {
    size_t max_body;          /* the largest body of any request; 0: 6 MiB */
    size_t max_header_bytes;  /* 0: 64 KiB */
    unsigned idle_timeout_ms; /* keep-alive idle close; 0: 60 s */
    /* A request's head must arrive within this of its first byte, and its body at 16 KiB/s at
     * least after a first 20 s; else the connection is closed. 0: 20 s. */
    unsigned header_timeout_ms;
    unsigned max_connections; /* 0: 1024 */
    /* Shapes the answer to a malformed or oversized request; must call ef_http_respond. NULL
     * sends `{"message": "..."}` as application/json. */
    void (*on_protocol_error)(ef_http_exchange *ex, int status, const char *message, void *user);
    /* Decides the largest body accepted for one request, from its request line and headers
     * (`req` has method, path, query and headers; its body is empty). Called once per request
     * when the headers are complete, before any of the body is read; the result is capped at
     * max_body. NULL: every request may have max_body. */
    size_t (*body_limit)(const struct ef_http_request *req, void *user);
    /* Called when a connection closes (the client's end, an error, an idle timeout, a refused
     * request), but not when the server itself closes it (ef_http_server_close) or a handler
     * detaches it (ef_http_exchange_detach). May be NULL. */
    void (*on_connection_closed)(void *user);
};

/* Binds `host:port` (IPv4 or IPv6 literal) and starts serving. */
int ef_http_server_listen(uv_loop_t *loop, const char *host, int port,
                          const struct ef_http_server_config *config, ef_http_handler_cb handler,
                          void *user, ef_http_server **ret_server, ef_error *err);

/* A server without a listener: it serves the connections given to ef_http_server_adopt. */
int ef_http_server_new(uv_loop_t *loop, const struct ef_http_server_config *config,
                       ef_http_handler_cb handler, void *user, ef_http_server **ret_server,
                       ef_error *err);

/* Serves an already connected TCP socket as if it had been accepted, and parses `pending` (`len`
 * bytes, may be 0) as the first bytes received on it: a connection taken over from another
 * server (ef_http_exchange_detach) with the request that server had read. The handler may run
 * before this returns. On success the server owns `fd`; on failure the caller still does,
 * except for -ECONNABORTED (the socket was taken and is closed). */
int ef_http_server_adopt(ef_http_server *server, int fd, const char *pending, size_t len,
                         ef_error *err);

/* The port actually bound (useful with port 0 in tests). */
int ef_http_server_port(const ef_http_server *server);

/* How many connections the server has open. */
unsigned ef_http_server_connections(const ef_http_server *server);

/* Stops listening and closes every connection (pending exchanges are aborted). The server is
 * freed once all its handles have closed. */
void ef_http_server_close(ef_http_server *server);

/* Stops listening and closes the idle connections, but lets every exchange already with its
 * handler be answered: that response is the connection's last (Connection: close), and the
 * connection closes once it is written. After `grace_ms` whatever is left is closed as by
 * ef_http_server_close() (pending exchanges are aborted). The server frees itself once its last
 * connection has closed; the caller drops its pointer now and calls neither this nor
 * ef_http_server_close() on it again. */
void ef_http_server_shutdown(ef_http_server *server, unsigned grace_ms);

/* Lets the response to `ex` wait for the response to the request pipelined behind it, if a whole
 * one has already arrived, and go out with it in one write: one system call and one segment
 * fewer. Only for a response the client has nothing to do with before it gets the next one
 * (the 202 to a Lambda runtime's post of an invocation's answer, sent together with its poll
 * for the next invocation): the held response waits as long as the next request does. Call
 * before ef_http_respond. */
void ef_http_exchange_hold_for_next(ef_http_exchange *ex);

/* Looks up a request header, case-insensitively; NULL when absent. */
const char *ef_http_request_header(const struct ef_http_request *req, const char *name);

/* Finds `name` in a query string and returns a malloc'd, percent-decoded value, or NULL. '+' is
 * a '+' (RFC 3986, as SigV4 signs it), not a space. */
char *ef_http_query_param(const char *query, const char *name);

/* False, with *ret_why, for a query that no handler should read: a NUL in a decoded key or value
 * (which would cut a C string short), or a parameter given twice (ef_http_query_param takes the
 * first, and a signature stays valid when the copies are reordered). The query's length is
 * bounded by the header limit; the check is quadratic in its parameters only. */
bool ef_http_query_valid(const char *query, const char **ret_why);

/* Sends the response and ends the exchange (it is freed; do not touch it afterwards).
 * Content-Length, Connection and Date are added by the server; `headers` must not contain them.
 * `content_type` may be NULL for no Content-Type. */
void ef_http_respond(ef_http_exchange *ex, int status, const struct ef_http_header *headers,
                     size_t n_headers, const char *content_type, const void *body, size_t len);

/* The request of an exchange. In on_protocol_error it holds the request line and headers when
 * the error came after them (a body above its limit), and empty strings and no headers when the
 * request was refused before its headers were complete. */
const struct ef_http_request *ef_http_exchange_request(const ef_http_exchange *ex);

/* Registers the abort callback for a response that will be sent later. */
void ef_http_exchange_on_abort(ef_http_exchange *ex, ef_http_abort_cb cb, void *user);

/* How many requests the exchange's connection has carried, this one included. */
unsigned long ef_http_exchange_requests(const ef_http_exchange *ex);

/* Takes the exchange's connection out of the server without answering: returns a duplicate of
 * its socket (close-on-exec) in *ret_fd and closes the connection here without a word to the
 * client and without running the abort callback. The exchange is gone afterwards. Refused
 * (-EBUSY) when the client sent anything beyond this request, or is closing: the new owner
 * must start at a request boundary. */
int ef_http_exchange_detach(ef_http_exchange *ex, int *ret_fd, ef_error *err);

/* The standard reason phrase for a status code ("OK", "Not Found", ...). */
const char *ef_http_status_text(int status);
