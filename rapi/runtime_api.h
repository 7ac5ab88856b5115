/* The Lambda Runtime API (2018-06-01) that the runtime's bootstrap talks to, on
 * 127.0.0.1:<port>:
 *
 *   GET  /2018-06-01/runtime/invocation/next          long poll; the event and its headers
 *   POST /2018-06-01/runtime/invocation/{id}/response the result      → 202
 *   POST /2018-06-01/runtime/invocation/{id}/error    an error doc    → 202
 *   POST /2018-06-01/runtime/init/error               failed to start → 202
 *
 * The /next answer carries Lambda-Runtime-Aws-Request-Id, -Deadline-Ms, -Invoked-Function-Arn,
 * -Trace-Id and, when the invocation has them, -Client-Context and -Cognito-Identity. Up to
 * `max_in_flight` polls are served at once (AWS_LAMBDA_MAX_CONCURRENCY); further polls wait.
 *
 * The {id} may be percent-encoded. As Lambda's Runtime API answers: an unknown or malformed id
 * gets 400 InvalidRequestID, a second answer for
 * one id 403 InvalidStateTransition, a body above 6 MiB + 100 bytes 413 RequestEntityTooLarge
 * (and the invocation in flight fails with Function.ResponseSizeTooLarge), other paths 404. */
#pragma once

#include <stddef.h>
#include <uv.h>

#include "common/error.h"
#include "common/http.h"
#include "rapi/invocations.h"

enum ef_rapi_route {
    EF_RAPI_NOT_FOUND = 0,
    EF_RAPI_NEXT,
    EF_RAPI_RESPONSE,
    EF_RAPI_ERROR,
    EF_RAPI_INIT_ERROR,
};

/* Routes a request. For RESPONSE and ERROR, *ret_id and *ret_id_len are the {id} segment of
 * `path` (not copied; not yet checked to be a known id). A known path with the wrong method is
 * EF_RAPI_NOT_FOUND, as is an empty id. */
enum ef_rapi_route ef_runtime_api_route(const char *method, const char *path, const char **ret_id,
                                        size_t *ret_id_len);

/* Decodes the {id} segment of a path (`len` bytes, as ef_runtime_api_route returns it): each %XX
 * escape (hex digits of either case) becomes its byte, as runtime clients that escape every
 * path segment send it. Returns 0 with the id NUL-terminated in `buf` (`size` at least
 * EF_REQUEST_ID_MAX + 1) and its length in *ret_len; -EINVAL, with a message, for a malformed
 * escape or an id that ef_request_id_valid refuses once decoded. */
int ef_runtime_api_decode_id(const char *seg, size_t len, char *buf, size_t size, size_t *ret_len,
                             ef_error *err);

/* Normalises an error posted by the runtime. The type is `header_type` (the
 * Lambda-Runtime-Function-Error-Type header) when given, else the body's "errorType", else
 * "Unhandled". A body that is a JSON object is the document as is; anything else becomes
 * {"errorMessage": <body as text>, "errorType": <type>}. Returns 0 with both strings malloc'd,
 * or -ENOMEM. */
int ef_runtime_error_doc(const char *body, size_t len, const char *header_type, char **ret_doc,
                         char **ret_type);

/* Fills `buf` (at least 64 bytes) with a fresh X-Ray style trace id,
 * "Root=1-<8 hex time>-<24 hex>;Parent=<16 hex>;Sampled=0". */
void ef_make_trace_id(char *buf, size_t len);

struct ef_rapi_waiter;

struct ef_runtime_api {
    ef_http_server *server;
    struct ef_invocations *invs;
    struct ef_rapi_waiter *waiters; /* parked /next polls, oldest first */
    /* ef_runtime_api_adopt: runs when the adopted connection has closed (the runtime's end, or a
     * request refused with a close), which leaves this API without a runtime to serve. */
    void (*on_connection_lost)(void *user);
    void *on_connection_lost_user;
    /* Runs when a /next poll is parked (no invocation was waiting for it); set after start. It
     * runs inside the server's request handler: act on it from a later turn of the loop. */
    void (*on_poll_parked)(void *user);
    void *on_poll_parked_user;
};

/* Serves the API on 127.0.0.1:`port` (0 picks a free port, see ef_http_server_port) and
 * registers itself as `invs`' on_queued hook, so that parked polls get new invocations. */
int ef_runtime_api_start(struct ef_runtime_api *api, uv_loop_t *loop, int port,
                         struct ef_invocations *invs, ef_error *err);

/* Serves one runtime connection handed over by another Runtime API (ef_runtime_api_hand_over),
 * instead of listening: its pending GET /next poll is parked here as if it had just arrived,
 * and takes the next invocation submitted to `invs`. Takes `fd` (closed on failure too). */
int ef_runtime_api_adopt(struct ef_runtime_api *api, uv_loop_t *loop, struct ef_invocations *invs,
                         int fd, void (*on_connection_lost)(void *user), void *user, ef_error *err);

/* Gives up the runtime's connection, to be served elsewhere (ef_runtime_api_adopt): allowed
 * when it is the only connection, it carries the one parked /next poll, it has carried an
 * earlier request (the runtime keeps its connection) and nothing follows the poll. Returns 0
 * with the socket in *ret_fd (the caller's); the poll is forgotten here without an answer. The
 * server keeps listening: a runtime that connects again is served here. -EAGAIN: no poll is
 * waiting (yet); -EBUSY: another condition does not hold. */
int ef_runtime_api_hand_over(struct ef_runtime_api *api, int *ret_fd, ef_error *err);

/* Serves again a connection that ef_runtime_api_hand_over gave up and that could not be handed
 * on: its /next poll is parked again. Takes `fd` (closed on failure too). */
int ef_runtime_api_take_back(struct ef_runtime_api *api, int fd, ef_error *err);

/* The port actually listened on. */
int ef_runtime_api_port(const struct ef_runtime_api *api);

/* Stops serving; parked polls are aborted by the server. */
void ef_runtime_api_close(struct ef_runtime_api *api);
