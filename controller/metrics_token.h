/* A bearer token for GET /metrics, for `--metrics-token FILE`.
 *
 * Without the flag /metrics is open, as /healthz is, even with --auth-keys: Prometheus and
 * similar scrapers cannot sign requests with SigV4. With it, a scrape must send
 * `Authorization: Bearer <token>` (Prometheus: `authorization: {credentials_file: ...}`), or be
 * signed by one of the --auth-keys. The file holds the token on its first line that is neither
 * blank nor a '#' comment; like the keys file it must be readable by its owner only (0600). */
#pragma once

#include <stdbool.h>

#include "common/error.h"
#include "common/http.h"

/* Tokens shorter than this are refused at start: a scrape credential must not be guessable. */
#define EF_METRICS_TOKEN_MIN 16
#define EF_METRICS_TOKEN_MAX 4096

typedef struct ef_metrics_token ef_metrics_token;

/* Loads the token. -EPERM for a file group or others can read, -EINVAL for a file without a
 * token or with one shorter than EF_METRICS_TOKEN_MIN or holding characters other than printable
 * ASCII without spaces; `err` says which. */
int ef_metrics_token_load(const char *path, ef_metrics_token **ret_token, ef_error *err);

/* Frees (and wipes) the token; NULL is fine. */
void ef_metrics_token_free(ef_metrics_token *token);

/* What the request's Authorization header is to the token (compared in constant time). */
enum ef_metrics_token_check {
    EF_METRICS_TOKEN_OK,      /* "Bearer <the token>" */
    EF_METRICS_TOKEN_MISSING, /* no header, or an empty one */
    EF_METRICS_TOKEN_WRONG,   /* "Bearer" with anything else */
    EF_METRICS_TOKEN_OTHER,   /* another scheme (a SigV4 signature, say) */
};
enum ef_metrics_token_check ef_metrics_token_check(const ef_metrics_token *token,
                                                   const struct ef_http_request *req);
