/* Request authentication with AWS Signature Version 4, for `--auth-keys FILE`.
 *
 * The file holds one "ACCESS_KEY_ID SECRET" pair per line (blank lines and lines starting with
 * '#' are ignored). It must be a regular file that neither group nor others can read or write
 * (mode 0600 or stricter), else the controller refuses to start: the secrets sign every request.
 *
 * A request is accepted when its Authorization header is an AWS4-HMAC-SHA256 signature by one
 * of the keys, its X-Amz-Date (or Date) is within 15 minutes of the controller's clock, the
 * credential scope's date matches that date, the scope names the "lambda" service, the signed
 * headers include Host, and the payload hash (x-amz-content-sha256 when sent, which must then
 * match the body) is that of the body received. Any region is accepted: the pod has one. */
#pragma once

#include <time.h>

#include "common/error.h"
#include "common/http.h"

/* How far a request's date may be from the controller's clock, as AWS allows. */
#define EF_AUTH_MAX_SKEW_S (15 * 60)

typedef struct ef_auth_keys ef_auth_keys;

/* Reads a file of secrets (at most `max` bytes) into a malloc'd, NUL-terminated buffer. It must
 * be a regular file that neither group nor others can read or write (mode 0600 or stricter):
 * -EPERM otherwise, with a message that says `chmod 600`; `what` names the file in messages
 * ("auth keys file"). Free the buffer with ef_secret_free, which wipes it. */
int ef_read_secret_file(const char *path, const char *what, size_t max, char **ret_data,
                        size_t *ret_len, ef_error *err);
void ef_secret_free(char *data, size_t len);

/* The next line of such a file (read from *cursor, which it advances) that is neither blank nor a
 * '#' comment, trimmed of surrounding spaces, tabs and '\r' and NUL-terminated in place; NULL at
 * the end. *lineno counts the lines read, for messages. */
char *ef_secret_next_line(char **cursor, unsigned *lineno);

/* Loads and checks the key file. -EPERM when its mode lets group or others in, -EINVAL when a
 * line is malformed or there is no key at all; `err` names the file and the line. */
int ef_auth_keys_load(const char *path, ef_auth_keys **ret_keys, ef_error *err);

/* Frees the keys (wiping the secrets); NULL is fine. */
void ef_auth_keys_free(ef_auth_keys *keys);

/* The number of keys loaded. */
size_t ef_auth_keys_count(const ef_auth_keys *keys);

/* Verifies a request at time `now`. Returns 0 when it is validly signed; otherwise -EACCES with
 * *ret_type set to Lambda's error type (MissingAuthenticationTokenException,
 * IncompleteSignatureException, UnrecognizedClientException or InvalidSignatureException, all
 * answered with 403) and `err` holding the message; -ENOMEM. */
int ef_auth_verify(const ef_auth_keys *keys, const struct ef_http_request *req, time_t now,
                   const char **ret_type, ef_error *err);

/* The checks of ef_auth_verify that need no body (the Authorization header, the key, the signed
 * headers, the date and the scope), with its answers: the controller makes them when a request's
 * headers are complete, so that it reads no body of a request it will refuse anyway. */
int ef_auth_check_head(const ef_auth_keys *keys, const struct ef_http_request *req, time_t now,
                       const char **ret_type, ef_error *err);
