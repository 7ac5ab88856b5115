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

/* The first line of `data` that is neither blank nor a comment, trimmed, NUL-terminated in
 * place; NULL when there is none. */
static char *first_line(char *data)
{
    for (char *line = data, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        line += strspn(line, " \t");
        size_t len = strlen(line);
        while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
            line[--len] = '\0';
        if (len > 0 && *line != '#')
            return line;
    }
    return NULL;
}

int ef_metrics_token_load(const char *path, ef_metrics_token **ret_token, ef_error *err)
{
    char *data = NULL;
    size_t len = 0;
    int r = ef_read_secret_file(path, "metrics token file", TOKEN_FILE_MAX, &data, &len, err);
    if (r < 0)
        return r;
    const char *line = first_line(data);
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

bool ef_metrics_token_matches(const ef_metrics_token *token, const struct ef_http_request *req)
{
    static const char scheme[] = "Bearer ";
    const char *auth = ef_http_request_header(req, "Authorization");
    if (!auth || strncasecmp(auth, scheme, sizeof(scheme) - 1) != 0)
        return false;
    const char *given = auth + sizeof(scheme) - 1;
    given += strspn(given, " ");
    size_t len = strcspn(given, " \t");
    if (given[len + strspn(given + len, " \t")] != '\0')
        return false; /* more than one word */
    /* The lengths may differ in time; the token's content may not. */
    return len == token->len && CRYPTO_memcmp(given, token->value, len) == 0;
}
