/* The bearer token of GET /metrics: see metrics_token.h. */
#include "controller/metrics_token.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "controller/auth.h"

#define TOKEN_FILE_MAX (64 * 1024)

struct ef_metrics_token {
    size_t len;
    char value[];
};

int ef_metrics_token_load(const char *path, ef_metrics_token **ret_token, ef_error *err)
{
    char *data = NULL;
    size_t len = 0;
    int r = ef_read_secret_file(path, "metrics token file", TOKEN_FILE_MAX, &data, &len, err);
    if (r < 0)
        return r;
    char *cursor = data;
    unsigned lineno = 0;
    const char *line = ef_secret_next_line(&cursor, &lineno);
    size_t n = line ? strlen(line) : 0;
    bool printable = true;
    for (size_t i = 0; i < n; i++)
        printable = printable && line[i] > ' ' && line[i] < 0x7f;
    if (!line)
        r = ef_error_set(err, -EINVAL, "the metrics token file %s holds no token", path);
    else if (!printable)
        r = ef_error_set(err, -EINVAL,
                         "the token in %s must be printable ASCII without spaces or tabs", path);
    else if (n < EF_METRICS_TOKEN_MIN || n > EF_METRICS_TOKEN_MAX)
        r = ef_error_set(err, -EINVAL,
                         "the token in %s has %zu characters; it must have between %d and %d", path,
                         n, EF_METRICS_TOKEN_MIN, EF_METRICS_TOKEN_MAX);
    ef_metrics_token *token = r == 0 ? malloc(sizeof(*token) + n + 1) : NULL;
    if (r == 0 && !token)
        r = ef_error_set(err, -ENOMEM, "out of memory");
    if (r == 0) {
        token->len = n;
        memcpy(token->value, line, n + 1);
        *ret_token = token;
    }
    ef_secret_free(data, len);
    return r;
}

void ef_metrics_token_free(ef_metrics_token *token)
{
    if (!token)
        return;
    OPENSSL_cleanse(token->value, token->len);
    free(token);
}

enum ef_metrics_token_check ef_metrics_token_check(const ef_metrics_token *token,
                                                   const struct ef_http_request *req)
{
    static const char scheme[] = "Bearer ";
    const char *auth = ef_http_request_header(req, "Authorization");
    if (!auth || !*auth)
        return EF_METRICS_TOKEN_MISSING;
    if (strncasecmp(auth, scheme, sizeof(scheme) - 1) != 0)
        return EF_METRICS_TOKEN_OTHER;
    const char *given = auth + sizeof(scheme) - 1;
    given += strspn(given, " ");
    size_t len = strcspn(given, " \t");
    if (given[len + strspn(given + len, " \t")] != '\0')
        return EF_METRICS_TOKEN_WRONG; /* more than one word */
    /* The lengths may differ in time; the token's content may not. */
    return len == token->len && CRYPTO_memcmp(given, token->value, len) == 0
               ? EF_METRICS_TOKEN_OK
               : EF_METRICS_TOKEN_WRONG;
}
