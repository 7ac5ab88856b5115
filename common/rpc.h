/* JSON-RPC 2.0 over Unix stream sockets on libuv — the one implementation used by the
 * controller, funclet and runner.
 *
 * A connection is symmetric: either side may send requests and notifications, and must answer
 * requests it receives. Outgoing calls carry an integer id matched against responses and a
 * per-call timeout. Incoming requests are answered, possibly later, through the
 * `ef_rpc_request` handle given to the request callback.
 *
 * Ownership: an `ef_rpc_conn` is freed by the library after its on_close callback has run;
 * never free it yourself, call ef_rpc_conn_close(). Every call's callback runs exactly once:
 * with the result, with an error object from the peer, with EF_RPC_ERR_TIMEOUT, or with
 * EF_RPC_ERR_CLOSED when the connection ends first. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "common/error.h"

/* Stable error codes. -32700..-32603 are JSON-RPC's own; the rest are this project's. */
enum ef_rpc_code {
    EF_RPC_PARSE_ERROR = -32700,
    EF_RPC_INVALID_REQUEST = -32600,
    EF_RPC_METHOD_NOT_FOUND = -32601,
    EF_RPC_INVALID_PARAMS = -32602,
    EF_RPC_INTERNAL_ERROR = -32603,

    EF_RPC_ERR_TIMEOUT = -32000,     /* local: no response within the call's timeout */
    EF_RPC_ERR_CLOSED = -32001,      /* local: connection closed before the response */
    EF_RPC_ERR_NOT_FOUND = -32010,   /* the object named in params does not exist */
    EF_RPC_ERR_BUSY = -32011,        /* the object is in a state that forbids the request */
    EF_RPC_ERR_NO_CAPACITY = -32012, /* memory, container or other limit reached */
    EF_RPC_ERR_SYSTEM = -32013,      /* a system call failed; message says which and why */
};

typedef struct ef_rpc_conn ef_rpc_conn;
typedef struct ef_rpc_request ef_rpc_request;
typedef struct ef_rpc_server ef_rpc_server;

/* An error as received from the peer (or made locally for timeouts and closed connections). */
struct ef_rpc_error {
    int code;
    const char *message;
    const cJSON *data; /* may be NULL */
};

struct ef_rpc_handlers {
    /* A request arrived. `params` is owned by the library and valid during the callback only
     * (cJSON_Duplicate what you keep). Answer exactly once with ef_rpc_reply*(). */
    void (*on_request)(ef_rpc_conn *conn, ef_rpc_request *req, const char *method,
                       const cJSON *params, void *user);
    /* A notification (no id) arrived. May be NULL. */
    void (*on_notification)(ef_rpc_conn *conn, const char *method, const cJSON *params, void *user);
    /* The connection is closing (peer hung up, protocol error, or ef_rpc_conn_close). Runs once,
     * after every pending call's callback. May be NULL. */
    void (*on_close)(ef_rpc_conn *conn, void *user);
    /* The peer may send descriptors (SCM_RIGHTS) with its messages: they are kept, in order,
     * for ef_rpc_conn_take_fd. Without this they are closed as they arrive. */
    bool receive_fds;
};

/* The most descriptors one message carries. */
#define EF_RPC_MAX_FDS 8

/* Result callback of an outgoing call. Exactly one of `result` and `error` is non-NULL; both are
 * owned by the library and valid during the callback only. */
typedef void (*ef_rpc_result_cb)(ef_rpc_conn *conn, const cJSON *result,
                                 const struct ef_rpc_error *error, void *user);

typedef void (*ef_rpc_connect_cb)(ef_rpc_conn *conn, int status, void *user);

/* Connects to the Unix socket at `path`. `cb` runs with status 0 and the open connection, or a
 * negative libuv error and conn NULL (nothing to close then). */
int ef_rpc_connect(uv_loop_t *loop, const char *path, const struct ef_rpc_handlers *handlers,
                   void *user, ef_rpc_connect_cb cb, ef_error *err);

/* Wraps an already connected stream socket fd (e.g. from socketpair or accept). */
int ef_rpc_conn_open_fd(uv_loop_t *loop, int fd, const struct ef_rpc_handlers *handlers, void *user,
                        ef_rpc_conn **ret_conn, ef_error *err);

/* Limits the size of a message either way (default EF_RPC_DEFAULT_MAX_MESSAGE). */
void ef_rpc_conn_set_max_message(ef_rpc_conn *conn, size_t max);

/* Sends a request. `params` (may be NULL) is consumed. A timeout of 0 means none.
 * Returns 0, or a negative errno when the connection is already closing (cb is not called). */
int ef_rpc_call(ef_rpc_conn *conn, const char *method, cJSON *params, unsigned timeout_ms,
                ef_rpc_result_cb cb, void *user);

/* Sends a notification; `params` is consumed. */
int ef_rpc_notify(ef_rpc_conn *conn, const char *method, cJSON *params);

/* Answers a request with `result` (consumed; NULL sends `{}`) and frees `req`. */
void ef_rpc_reply(ef_rpc_request *req, cJSON *result);

/* Answers a request with `result` (consumed) and `nfds` descriptors (1..EF_RPC_MAX_FDS, sent
 * with the answer's first bytes; the caller keeps its own copies). When they cannot go now
 * (other messages are still queued, or the connection is closing) the request is answered with
 * EF_RPC_ERR_BUSY instead and a negative errno is returned. `req` is freed either way. */
int ef_rpc_reply_fds(ef_rpc_request *req, cJSON *result, const int *fds, size_t nfds);

/* Takes the oldest descriptor received on a connection opened with `receive_fds` (a copy,
 * close-on-exec, the caller's to close). Descriptors arrive no later than the first bytes of the
 * message they came with, so a result callback finds that message's descriptors here.
 * Returns 0, or -ENOENT when none is waiting. */
int ef_rpc_conn_take_fd(ef_rpc_conn *conn, int *ret_fd);

/* Closes every descriptor received and not taken. The connection also does so by itself when
 * more than EF_RPC_MAX_FDS wait after the messages that came with them were handled. */
void ef_rpc_conn_drop_fds(ef_rpc_conn *conn);

/* A request that is answered in this process: ef_rpc_reply and ef_rpc_reply_error on it run
 * `cb` (with conn NULL; the result or error is valid during the call only) instead of sending
 * anything, then free it. NULL when out of memory. */
ef_rpc_request *ef_rpc_request_local(ef_rpc_result_cb cb, void *user);

/* Frees a local request that will not be answered (its callback never runs). */
void ef_rpc_request_local_cancel(ef_rpc_request *req);

/* Answers a request with an error object and frees `req`. `data` (may be NULL) is consumed. */
void ef_rpc_reply_error(ef_rpc_request *req, int code, cJSON *data, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The connection a request came on, or NULL when that connection has closed (replying is then
 * still required, to free the request, and sends nothing). */
ef_rpc_conn *ef_rpc_request_conn(const ef_rpc_request *req);

/* Starts closing; pending calls get EF_RPC_ERR_CLOSED, then on_close runs, then the conn is
 * freed. Safe to call more than once and from inside callbacks. */
void ef_rpc_conn_close(ef_rpc_conn *conn);

void ef_rpc_conn_set_user(ef_rpc_conn *conn, void *user);
void *ef_rpc_conn_get_user(const ef_rpc_conn *conn);

/* Listens on a Unix socket. When `path` is given it is (re)created with `mode` (e.g. 0600) and
 * unlinked by ef_rpc_server_close; when `listen_fd` >= 0 that already-listening socket is used
 * instead and `path` must be NULL. Each accepted connection gets `handlers` and `user`. */
int ef_rpc_server_listen(uv_loop_t *loop, const char *path, int listen_fd, unsigned mode,
                         const struct ef_rpc_handlers *handlers, void *user,
                         ef_rpc_server **ret_server, ef_error *err);

/* Stops accepting and closes every connection it accepted; the server is freed asynchronously
 * by the loop. */
void ef_rpc_server_close(ef_rpc_server *server);
