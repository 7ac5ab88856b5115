/* Body limits of the controller's routes, decided from the request line and headers before any
 * of a body is read (the http server's body_limit hook), and the 413 answers in Lambda's words.
 *
 *   CreateFunction, UpdateFunctionCode      --max-code-request-size (a base64 zip, 70 MiB)
 *   Invoke (both paths)                     --max-request-size (6 MiB)
 *   Invoke with X-Amz-Invocation-Type Event 256 KB (EF_ASYNC_MAX_PAYLOAD), or less as above
 *   every other request                     EF_API_SMALL_BODY_LIMIT
 *
 * So a client can make the controller hold the large code limit only on the two routes that
 * need it, and never more than a route's limit on any connection. docs/api.md lists them. */
#pragma once

#include <stddef.h>

#include "common/http.h"

/* The body limit of every route that carries no code and no event. Their largest legitimate
 * bodies are UpdateFunctionConfiguration's (a 4 KB Environment, which JSON escapes can make
 * 24 KB, a 256-character Description and a few small members) and PutFunctionConcurrency's
 * and PublishVersion's, a few hundred bytes; 1 MiB leaves room for any client's formatting
 * while keeping what an unauthenticated client can make the controller buffer small. */
#define EF_API_SMALL_BODY_LIMIT (1024u * 1024u)

/* The http server's body_limit hook; `user` is the struct ef_controller. */
size_t ef_api_body_limit(const struct ef_http_request *req, void *user);

/* The http server's on_protocol_error hook; `user` is the struct ef_controller. A body over its
 * limit on an invocation or code route is answered 413 RequestTooLargeException "Request must
 * be smaller than N bytes for the <Operation> operation", as Lambda words it; everything else
 * goes to ef_lambda_protocol_error. */
void ef_api_protocol_error(ef_http_exchange *ex, int status, const char *message, void *user);
