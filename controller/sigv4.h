/* AWS Signature Version 4 (AWS4-HMAC-SHA256), the computation only: canonical request, string
 * to sign and signature, as AWS documents them for services other than S3 (path segments are
 * URI-encoded twice, dot segments and repeated slashes are normalised away). No I/O and no
 * clock, so it is unit-tested against AWS's published test vectors; auth.c applies it to HTTP
 * requests. */
#pragma once

#include <stddef.h>

#include "common/error.h"
#include "common/http.h"

#define EF_SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define EF_SIGV4_HEX_LEN   64

/* The parts of an `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…,
 * Signature=…` header. */
struct ef_sigv4_authorization {
    char access_key[129];
    char date[9]; /* YYYYMMDD of the credential scope */
    char region[64];
    char service[64];
    char scope[256];           /* "<date>/<region>/<service>/aws4_request" */
    char signed_headers[1024]; /* lower-case names separated by ';' */
    char signature[EF_SIGV4_HEX_LEN + 1];
};

/* Parses an Authorization header value. -EINVAL with AWS's message when it is not a well-formed
 * AWS4-HMAC-SHA256 authorization (-EPROTONOSUPPORT when it names another algorithm). */
int ef_sigv4_parse_authorization(const char *value, struct ef_sigv4_authorization *ret,
                                 ef_error *err);

/* The canonical URI of a request path exactly as received (already percent-encoded once). NULL
 * when memory runs out. */
char *ef_sigv4_canonical_uri(const char *path);

/* The canonical query string of the raw query (text after '?', may be ""): parameters decoded
 * and re-encoded with the unreserved set, sorted by name then value. NULL when memory runs out. */
char *ef_sigv4_canonical_query(const char *query);

/* The canonical headers block ("name:value\n" for each signed header, values trimmed, inner
 * runs of spaces collapsed, repeated headers joined with ','). -EINVAL when a signed header is
 * missing from the request, or the list is not sorted lower-case names. */
int ef_sigv4_canonical_headers(const struct ef_http_header *headers, size_t n_headers,
                               const char *signed_headers, char **ret_text, ef_error *err);

/* The whole canonical request. `payload_hash` is the hex SHA-256 of the body (or what
 * x-amz-content-sha256 says). Errors as for ef_sigv4_canonical_headers. */
int ef_sigv4_canonical_request(const char *method, const char *path, const char *query,
                               const struct ef_http_header *headers, size_t n_headers,
                               const char *signed_headers, const char *payload_hash,
                               char **ret_text, ef_error *err);

/* "AWS4-HMAC-SHA256\n<amz_date>\n<scope>\n<hex sha256 of canonical_request>". NULL when memory
 * runs out. */
char *ef_sigv4_string_to_sign(const char *amz_date, const char *scope,
                              const char *canonical_request);

/* The signature: HMAC-SHA256 chain "AWS4"+secret → date → region → service → "aws4_request",
 * then HMAC of the string to sign, in lower-case hex. */
void ef_sigv4_signature(const char *secret, const char *date, const char *region,
                        const char *service, const char *string_to_sign,
                        char ret_hex[EF_SIGV4_HEX_LEN + 1]);

/* Hex SHA-256 of `len` bytes (the payload hash of a request). */
void ef_sigv4_payload_hash(const void *data, size_t len, char ret_hex[EF_SIGV4_HEX_LEN + 1]);
