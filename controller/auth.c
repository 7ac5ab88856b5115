#include "controller/auth.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "controller/sigv4.h"

#define KEY_FILE_MAX (1024 * 1024)
#define FIELD_MAX    128

struct auth_key {
    char id[FIELD_MAX + 1];
    char secret[FIELD_MAX + 1];
};

struct ef_auth_keys {
    struct auth_key *keys;
    size_t n;
};

void ef_auth_keys_free(ef_auth_keys *keys)
{
    if (!keys)
        return;
    if (keys->keys)
        OPENSSL_cleanse(keys->keys, keys->n * sizeof(*keys->keys));
    free(keys->keys);
    free(keys);
}

size_t ef_auth_keys_count(const ef_auth_keys *keys)
{
    return keys ? keys->n : 0;
}

/* Reads one whitespace-delimited field of at most FIELD_MAX bytes; returns its length, 0 at the
 * end of the line, or -1 when it is too long. */
static int next_field(char **p, char *out)
{
    while (**p == ' ' || **p == '\t')
        (*p)++;
    size_t n = 0;
    while (**p && **p != ' ' && **p != '\t') {
        if (n == FIELD_MAX)
            return -1;
        out[n++] = *(*p)++;
    }
    out[n] = '\0';
    return (int)n;
}

static int parse_line(char *line, struct auth_key *key)
{
    char *p = line;
    char extra[FIELD_MAX + 1];
    if (next_field(&p, key->id) <= 0 || next_field(&p, key->secret) <= 0 ||
        next_field(&p, extra) != 0)
        return -1;
    for (const char *c = key->id; *c; c++)
        if (!isalnum((unsigned char)*c))
            return -1;
    for (const char *c = key->secret; *c; c++)
        if (!isgraph((unsigned char)*c))
            return -1;
    return 0;
}

int ef_read_secret_file(const char *path, const char *what, size_t max, char **ret_data,
                        size_t *ret_len, ef_error *err)
{
    /* O_NONBLOCK: a FIFO at that path must not hang the start (it is refused below). */
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return ef_error_set_errno(err, -errno, "cannot open the %s %s", what, path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return ef_error_set_errno(err, -errno, "cannot stat %s", path);
    if (!S_ISREG(st.st_mode))
        return ef_error_set(err, -EINVAL, "the %s %s is not a regular file", what, path);
    if (st.st_mode & 077)
        return ef_error_set(err, -EPERM,
                            "the %s %s has mode %04o; its secrets must be readable by its owner "
                            "only (chmod 600 %s)",
                            what, path, (unsigned)(st.st_mode & 07777), path);
    if ((uint64_t)st.st_size > max)
        return ef_error_set(err, -EFBIG, "the %s %s is larger than %zu bytes", what, path, max);
    /* Read from the descriptor just checked, into one buffer that is never reallocated (so no
     * copy of a secret is left unwiped); one byte more than the size tells a file that grew. */
    size_t cap = (size_t)st.st_size + 1;
    char *buf = malloc(cap + 1);
    if (!buf)
        return ef_error_set(err, -ENOMEM, "out of memory");
    size_t len = 0;
    int r = 0;
    while (len < cap) {
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = ef_error_set_errno(err, -errno, "cannot read %s", path);
            break;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (r == 0 && len == cap)
        r = ef_error_set(err, -EAGAIN, "the %s %s changed while it was read", what, path);
    if (r < 0) {
        ef_secret_free(buf, cap + 1);
        return r;
    }
    buf[len] = '\0';
    *ret_data = buf;
    *ret_len = len;
    return 0;
}

void ef_secret_free(char *data, size_t len)
{
    if (data)
        OPENSSL_cleanse(data, len);
    free(data);
}

char *ef_secret_next_line(char **cursor, unsigned *lineno)
{
    for (char *line = *cursor, *next; line && *line; line = next) {
        (*lineno)++;
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        *cursor = next;
        line += strspn(line, " \t");
        size_t len = strlen(line);
        while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
            line[--len] = '\0';
        if (len > 0 && *line != '#')
            return line;
    }
    *cursor = NULL;
    return NULL;
}

int ef_auth_keys_load(const char *path, ef_auth_keys **ret_keys, ef_error *err)
{
    char *data = NULL;
    size_t len = 0;
    int r = ef_read_secret_file(path, "auth keys file", KEY_FILE_MAX, &data, &len, err);
    if (r < 0)
        return r;
    ef_auth_keys *keys = calloc(1, sizeof(*keys));
    size_t cap = 1;
    for (size_t i = 0; i < len; i++)
        cap += data[i] == '\n';
    if (!keys || !(keys->keys = calloc(cap, sizeof(*keys->keys)))) {
        free(keys);
        ef_secret_free(data, len);
        return ef_error_set(err, -ENOMEM, "out of memory");
    }

    unsigned lineno = 0;
    r = 0;
    char *cursor = data, *line;
    while ((line = ef_secret_next_line(&cursor, &lineno)) != NULL) {
        if (parse_line(line, &keys->keys[keys->n]) < 0) {
            r = ef_error_set(err, -EINVAL,
                             "%s:%u: the line is not 'ACCESS_KEY_ID SECRET' (an alphanumeric "
                             "key id and a secret without spaces, each at most %d characters)",
                             path, lineno, FIELD_MAX);
            break;
        }
        keys->n++;
    }
    ef_secret_free(data, len);
    if (r == 0 && keys->n == 0)
        r = ef_error_set(err, -EINVAL, "the auth keys file %s holds no key", path);
    if (r < 0) {
        ef_auth_keys_free(keys);
        return r;
    }
    *ret_keys = keys;
    return 0;
}

static const struct auth_key *find_key(const ef_auth_keys *keys, const char *id)
{
    for (size_t i = 0; i < keys->n; i++)
        if (strcmp(keys->keys[i].id, id) == 0)
            return &keys->keys[i];
    return NULL;
}

/* Parses "YYYYMMDDTHHMMSSZ". */
static int parse_amz_date(const char *s, time_t *ret)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (strlen(s) != 16 || s[8] != 'T' || s[15] != 'Z')
        return -1;
    for (int i = 0; i < 15; i++)
        if (i != 8 && !isdigit((unsigned char)s[i]))
            return -1;
    if (sscanf(s, "%4d%2d%2dT%2d%2d%2dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec) != 6)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60)
        return -1;
    *ret = timegm(&tm);
    return 0;
}

/* Parses an HTTP date, "Sun, 30 Aug 2015 12:36:00 GMT". */
static int parse_http_date(const char *s, time_t *ret)
{
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    char wday[4], mon[4], zone[4];
    if (sscanf(s, "%3s, %2d %3s %4d %2d:%2d:%2d %3s", wday, &tm.tm_mday, mon, &tm.tm_year,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, zone) != 8 ||
        strcmp(zone, "GMT") != 0)
        return -1;
    tm.tm_mon = -1;
    for (int i = 0; i < 12; i++)
        if (strcmp(mon, months[i]) == 0)
            tm.tm_mon = i;
    if (tm.tm_mon < 0)
        return -1;
    tm.tm_year -= 1900;
    *ret = timegm(&tm);
    return 0;
}

static void format_amz_date(time_t t, char out[17])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

static int deny(const char **ret_type, const char *type, ef_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int deny(const char **ret_type, const char *type, ef_error *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
        err->code = -EACCES;
    }
    *ret_type = type;
    return -EACCES;
}

static bool signed_headers_include(const char *list, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *semi = strchr(p, ';');
        size_t l = semi ? (size_t)(semi - p) : strlen(p);
        if (l == nl && strncmp(p, name, nl) == 0)
            return true;
        p = semi ? semi + 1 : NULL;
    }
    return false;
}

static const char incomplete[] = "IncompleteSignatureException";
static const char invalid[] = "InvalidSignatureException";

/* What the checks of a request's head found, for the checks of its body. */
struct head_check {
    struct ef_sigv4_authorization a;
    const struct auth_key *key;
    const char *xdate; /* X-Amz-Date, NULL when the time came from Date */
    char amz_date[17];
};

/* Everything a signature needs but the body: the Authorization header, the key, the signed
 * headers, the date and the scope. */
static int check_head(const ef_auth_keys *keys, const struct ef_http_request *req, time_t now,
                      struct head_check *h, const char **ret_type, ef_error *err)
{
    const char *authz = ef_http_request_header(req, "Authorization");
    if (!authz)
        return deny(ret_type, "MissingAuthenticationTokenException", err,
                    "Missing Authentication Token: this endpoint requires requests signed with "
                    "AWS Signature Version 4 (the Authorization header)");

    struct ef_sigv4_authorization *a = &h->a;
    ef_error perr = {0};
    if (ef_sigv4_parse_authorization(authz, a, &perr) < 0)
        return deny(ret_type, incomplete, err, "%s", perr.msg);
    if (!signed_headers_include(a->signed_headers, "host"))
        return deny(ret_type, incomplete, err,
                    "The Host header must be signed (SignedHeaders=%.200s)", a->signed_headers);
    /* The X-Amz-* headers change what a request does (X-Amz-Invocation-Type, X-Amz-Log-Type,
     * X-Amz-Client-Context): unsigned, they could be added to a captured request. The AWS SDKs
     * and the CLI sign every one they send. */
    for (size_t i = 0; i < req->n_headers; i++) {
        const char *name = req->headers[i].name;
        if (strncasecmp(name, "x-amz-", 6) != 0)
            continue;
        char lower[128];
        size_t nl = strlen(name);
        if (nl >= sizeof(lower))
            return deny(ret_type, incomplete, err, "The header %.100s... is not signed", name);
        for (size_t j = 0; j <= nl; j++)
            lower[j] = (char)tolower((unsigned char)name[j]);
        if (!signed_headers_include(a->signed_headers, lower))
            return deny(ret_type, incomplete, err,
                        "The header %s must be signed, as every X-Amz-* header of the request "
                        "(SignedHeaders=%.200s)",
                        name, a->signed_headers);
    }

    const struct auth_key *key = find_key(keys, a->access_key);
    if (!key)
        return deny(ret_type, "UnrecognizedClientException", err,
                    "The security token included in the request is invalid.");

    /* The request's time: X-Amz-Date, else Date. */
    time_t when;
    char *amz_date = h->amz_date;
    const char *xdate = ef_http_request_header(req, "X-Amz-Date");
    const char *hdate = ef_http_request_header(req, "Date");
    if (xdate) {
        if (parse_amz_date(xdate, &when) < 0)
            return deny(ret_type, incomplete, err,
                        "X-Amz-Date '%.40s' is not in the form YYYYMMDD'T'HHMMSS'Z'", xdate);
    } else if (hdate) {
        if (parse_http_date(hdate, &when) < 0)
            return deny(ret_type, incomplete, err, "Date '%.60s' is not an HTTP date", hdate);
    } else {
        return deny(ret_type, incomplete, err,
                    "Authorization header requires existence of either a 'X-Amz-Date' or a "
                    "'Date' header.");
    }
    format_amz_date(when, amz_date);
    char now_text[17], bound[17];
    format_amz_date(now, now_text);
    if (when < now - EF_AUTH_MAX_SKEW_S) {
        format_amz_date(now - EF_AUTH_MAX_SKEW_S, bound);
        return deny(ret_type, invalid, err,
                    "Signature expired: %s is now earlier than %s (%s - 15 min.)", amz_date, bound,
                    now_text);
    }
    if (when > now + EF_AUTH_MAX_SKEW_S) {
        format_amz_date(now + EF_AUTH_MAX_SKEW_S, bound);
        return deny(ret_type, invalid, err,
                    "Signature not yet current: %s is still later than %s (%s + 15 min.)", amz_date,
                    bound, now_text);
    }
    if (strncmp(a->date, amz_date, 8) != 0)
        return deny(ret_type, invalid, err,
                    "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
                    "date from HTTP: '%s' != '%.8s', from '%s'.",
                    a->date, amz_date, amz_date);
    if (strcmp(a->service, "lambda") != 0)
        return deny(ret_type, invalid, err,
                    "Credential should be scoped to correct service: 'lambda'. ");
    h->key = key;
    h->xdate = xdate;
    return 0;
}

int ef_auth_check_head(const ef_auth_keys *keys, const struct ef_http_request *req, time_t now,
                       const char **ret_type, ef_error *err)
{
    struct head_check h;
    return check_head(keys, req, now, &h, ret_type, err);
}

int ef_auth_verify(const ef_auth_keys *keys, const struct ef_http_request *req, time_t now,
                   const char **ret_type, ef_error *err)
{
    struct head_check h;
    int r = check_head(keys, req, now, &h, ret_type, err);
    if (r < 0)
        return r;
    const struct ef_sigv4_authorization *a = &h.a;

    /* The payload hash: what the client declares, which must then be the body's. */
    char body_hash[EF_SIGV4_HEX_LEN + 1];
    ef_sigv4_payload_hash(req->body ? req->body : "", req->body_len, body_hash);
    const char *declared = ef_http_request_header(req, "x-amz-content-sha256");
    if (declared && strcasecmp(declared, body_hash) != 0)
        return deny(ret_type, invalid, err,
                    "The provided 'x-amz-content-sha256' header does not match what was "
                    "computed.");

    cleanup_free char *creq = NULL;
    ef_error cerr = {0};
    r = ef_sigv4_canonical_request(req->method, req->path, req->query, req->headers, req->n_headers,
                                   a->signed_headers, declared ? declared : body_hash, &creq,
                                   &cerr);
    if (r == -ENOMEM)
        return ef_error_set(err, r, "out of memory");
    if (r < 0)
        return deny(ret_type, incomplete, err, "%s", cerr.msg);
    /* The time in the string to sign is the header's own text when it is X-Amz-Date. */
    cleanup_free char *sts =
        ef_sigv4_string_to_sign(h.xdate ? h.xdate : h.amz_date, a->scope, creq);
    if (!sts)
        return ef_error_set(err, -ENOMEM, "out of memory");
    char want[EF_SIGV4_HEX_LEN + 1];
    ef_sigv4_signature(h.key->secret, a->date, a->region, a->service, sts, want);
    char got[EF_SIGV4_HEX_LEN + 1];
    for (size_t i = 0; i <= EF_SIGV4_HEX_LEN; i++)
        got[i] = (char)tolower((unsigned char)a->signature[i]);
    if (CRYPTO_memcmp(want, got, EF_SIGV4_HEX_LEN) != 0)
        return deny(ret_type, invalid, err,
                    "The request signature we calculated does not match the signature you "
                    "provided. Check your AWS Secret Access Key and signing method. Consult the "
                    "service documentation for details.");
    return 0;
}
