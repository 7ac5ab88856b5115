#include "controller/sigv4.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/cleanup.h"

/* A growing NUL-terminated string; `failed` latches an allocation failure so that callers check
 * once at the end. */
struct sbuf {
    char *data;
    size_t len, cap;
    bool failed;
};

static void sb_append(struct sbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) {
            b->failed = true;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void sb_puts(struct sbuf *b, const char *s)
{
    sb_append(b, s, strlen(s));
}

/* Hands the string over (NULL after a failed allocation). */
static char *sb_steal(struct sbuf *b)
{
    if (b->failed || !b->data) {
        free(b->data);
        b->data = NULL;
        return b->failed ? NULL : strdup("");
    }
    char *s = b->data;
    b->data = NULL;
    return s;
}

static bool unreserved(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

/* Appends `n` bytes percent-encoded with the unreserved set (and '/' kept when `keep_slash`). */
static void sb_uri_encode(struct sbuf *b, const char *s, size_t n, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c) || (keep_slash && c == '/')) {
            sb_append(b, (const char *)&s[i], 1);
        } else {
            char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
            sb_append(b, esc, 3);
        }
    }
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes `n` bytes into a malloc'd buffer (*ret_len bytes). A '%' that does not start
 * a valid escape stays a literal '%'; '+' stays '+', as AWS canonicalises it. */
static char *uri_decode(const char *s, size_t n, size_t *ret_len)
{
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
            (lo = hexval((unsigned char)s[i + 2])) >= 0) {
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    *ret_len = o;
    return out;
}

char *ef_sigv4_canonical_uri(const char *path)
{
    if (!path || !*path)
        return strdup("/");
    /* Remove "." and ".." segments and empty ones (repeated slashes), keeping a leading and a
     * trailing slash, as the AWS SDKs normalise the path before signing it. */
    size_t len = strlen(path);
    const char **segs = calloc(len + 1, sizeof(*segs));
    size_t *lens = calloc(len + 1, sizeof(*lens));
    if (!segs || !lens) {
        free(segs);
        free(lens);
        return NULL;
    }
    size_t n = 0;
    const char *p = path;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t sl = slash ? (size_t)(slash - p) : strlen(p);
        if (sl == 2 && p[0] == '.' && p[1] == '.') {
            if (n > 0)
                n--;
        } else if (sl > 0 && !(sl == 1 && p[0] == '.')) {
            segs[n] = p;
            lens[n] = sl;
            n++;
        }
        if (!slash)
            break;
        p = slash + 1;
    }
    struct sbuf b = {0};
    if (path[0] == '/')
        sb_puts(&b, "/");
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            sb_puts(&b, "/");
        sb_uri_encode(&b, segs[i], lens[i], false);
    }
    if (path[len - 1] == '/' && n > 0)
        sb_puts(&b, "/");
    free(segs);
    free(lens);
    if (b.len == 0)
        sb_puts(&b, "/");
    return sb_steal(&b);
}

struct qparam {
    char *key; /* encoded */
    char *value;
};

static int qparam_cmp(const void *a, const void *b)
{
    const struct qparam *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : strcmp(x->value, y->value);
}

/* Decodes and re-encodes `n` bytes with the unreserved set. */
static char *reencode(const char *s, size_t n)
{
    size_t dlen = 0;
    cleanup_free char *d = uri_decode(s, n, &dlen);
    if (!d)
        return NULL;
    struct sbuf b = {0};
    sb_uri_encode(&b, d, dlen, false);
    return sb_steal(&b);
}

char *ef_sigv4_canonical_query(const char *query)
{
    if (!query || !*query)
        return strdup("");
    size_t count = 1;
    for (const char *p = query; *p; p++)
        count += *p == '&';
    struct qparam *params = calloc(count, sizeof(*params));
    if (!params)
        return NULL;
    size_t n = 0;
    bool ok = true;
    const char *p = query;
    for (;;) {
        const char *amp = strchr(p, '&');
        size_t pl = amp ? (size_t)(amp - p) : strlen(p);
        if (pl > 0) {
            const char *eq = memchr(p, '=', pl);
            size_t kl = eq ? (size_t)(eq - p) : pl;
            params[n].key = reencode(p, kl);
            params[n].value = eq ? reencode(eq + 1, pl - kl - 1) : strdup("");
            ok = ok && params[n].key && params[n].value;
            n++;
        }
        if (!amp)
            break;
        p = amp + 1;
    }
    struct sbuf b = {0};
    if (ok) {
        qsort(params, n, sizeof(*params), qparam_cmp);
        for (size_t i = 0; i < n; i++) {
            if (i > 0)
                sb_puts(&b, "&");
            sb_puts(&b, params[i].key);
            sb_puts(&b, "=");
            sb_puts(&b, params[i].value);
        }
    }
    for (size_t i = 0; i < n; i++) {
        free(params[i].key);
        free(params[i].value);
    }
    free(params);
    if (!ok) {
        free(b.data);
        return NULL;
    }
    return sb_steal(&b);
}

/* Appends a header value trimmed, with every run of spaces or tabs inside collapsed to one
 * space. */
static void sb_header_value(struct sbuf *b, const char *v)
{
    while (*v == ' ' || *v == '\t')
        v++;
    bool pending_space = false;
    for (; *v; v++) {
        if (*v == ' ' || *v == '\t') {
            pending_space = true;
            continue;
        }
        if (pending_space)
            sb_puts(b, " ");
        pending_space = false;
        sb_append(b, v, 1);
    }
}

int ef_sigv4_canonical_headers(const struct ef_http_header *headers, size_t n_headers,
                               const char *signed_headers, char **ret_text, ef_error *err)
{
    struct sbuf b = {0};
    const char *p = signed_headers;
    if (!p || !*p)
        return ef_error_set(err, -EINVAL, "SignedHeaders is empty");
    char previous[128] = "";
    for (;;) {
        const char *semi = strchr(p, ';');
        size_t nl = semi ? (size_t)(semi - p) : strlen(p);
        char name[128];
        if (nl == 0 || nl >= sizeof(name)) {
            free(b.data);
            return ef_error_set(err, -EINVAL, "SignedHeaders holds an empty or overlong name");
        }
        memcpy(name, p, nl);
        name[nl] = '\0';
        for (size_t i = 0; i < nl; i++) {
            if (isupper((unsigned char)name[i])) {
                free(b.data);
                return ef_error_set(err, -EINVAL,
                                    "SignedHeaders must list lower-case header names, not '%s'",
                                    name);
            }
        }
        /* Sorted and each name once, as signers write it: a repeated name would only make the
         * request scan its headers again. */
        if (previous[0] && strcmp(name, previous) <= 0) {
            free(b.data);
            return ef_error_set(err, -EINVAL,
                                "SignedHeaders must list each header once, in sorted order: '%s' "
                                "follows '%s'",
                                name, previous);
        }
        memcpy(previous, name, nl + 1);
        sb_puts(&b, name);
        sb_puts(&b, ":");
        bool found = false;
        for (size_t i = 0; i < n_headers; i++) {
            if (strcasecmp(headers[i].name, name) != 0)
                continue;
            if (found)
                sb_puts(&b, ",");
            sb_header_value(&b, headers[i].value);
            found = true;
        }
        if (!found) {
            free(b.data);
            return ef_error_set(err, -EINVAL,
                                "The request signature covers header '%s', which the request "
                                "does not have",
                                name);
        }
        sb_puts(&b, "\n");
        if (!semi)
            break;
        p = semi + 1;
    }
    char *text = sb_steal(&b);
    if (!text)
        return ef_error_set(err, -ENOMEM, "out of memory");
    *ret_text = text;
    return 0;
}

int ef_sigv4_canonical_request(const char *method, const char *path, const char *query,
                               const struct ef_http_header *headers, size_t n_headers,
                               const char *signed_headers, const char *payload_hash,
                               char **ret_text, ef_error *err)
{
    cleanup_free char *hdrs = NULL;
    int r = ef_sigv4_canonical_headers(headers, n_headers, signed_headers, &hdrs, err);
    if (r < 0)
        return r;
    cleanup_free char *uri = ef_sigv4_canonical_uri(path);
    cleanup_free char *q = ef_sigv4_canonical_query(query);
    if (!uri || !q)
        return ef_error_set(err, -ENOMEM, "out of memory");
    char *text = NULL;
    if (asprintf(&text, "%s\n%s\n%s\n%s\n%s\n%s", method, uri, q, hdrs, signed_headers,
                 payload_hash) < 0)
        return ef_error_set(err, -ENOMEM, "out of memory");
    *ret_text = text;
    return 0;
}

static void to_hex(const unsigned char *d, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = '\0';
}

void ef_sigv4_payload_hash(const void *data, size_t len, char ret_hex[EF_SIGV4_HEX_LEN + 1])
{
    unsigned char d[32];
    unsigned int n = sizeof(d);
    EVP_Digest(data, len, d, &n, EVP_sha256(), NULL);
    to_hex(d, sizeof(d), ret_hex);
}

char *ef_sigv4_string_to_sign(const char *amz_date, const char *scope,
                              const char *canonical_request)
{
    char hash[EF_SIGV4_HEX_LEN + 1];
    ef_sigv4_payload_hash(canonical_request, strlen(canonical_request), hash);
    char *s = NULL;
    if (asprintf(&s, EF_SIGV4_ALGORITHM "\n%s\n%s\n%s", amz_date, scope, hash) < 0)
        return NULL;
    return s;
}

static void hmac(const void *key, size_t key_len, const char *data, unsigned char out[32])
{
    unsigned int n = 32;
    HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)data, strlen(data), out, &n);
}

void ef_sigv4_signature(const char *secret, const char *date, const char *region,
                        const char *service, const char *string_to_sign,
                        char ret_hex[EF_SIGV4_HEX_LEN + 1])
{
    cleanup_free char *k = NULL;
    unsigned char k_date[32], k_region[32], k_service[32], k_signing[32], sig[32];
    if (asprintf(&k, "AWS4%s", secret) < 0) {
        /* No memory: a signature of zeros never matches a real one. */
        memset(ret_hex, '0', EF_SIGV4_HEX_LEN);
        ret_hex[EF_SIGV4_HEX_LEN] = '\0';
        return;
    }
    hmac(k, strlen(k), date, k_date);
    hmac(k_date, 32, region, k_region);
    hmac(k_region, 32, service, k_service);
    hmac(k_service, 32, "aws4_request", k_signing);
    hmac(k_signing, 32, string_to_sign, sig);
    to_hex(sig, sizeof(sig), ret_hex);
}

/* Copies `n` bytes into a fixed buffer; false when they do not fit. */
static bool copy_field(char *dst, size_t cap, const char *src, size_t n)
{
    if (n == 0 || n >= cap)
        return false;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return true;
}

static int parse_credential(const char *v, size_t n, struct ef_sigv4_authorization *a,
                            ef_error *err)
{
    /* <access key>/<date>/<region>/<service>/aws4_request */
    const char *parts[5];
    size_t lens[5];
    size_t k = 0;
    const char *p = v, *end = v + n;
    while (k < 5) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        parts[k] = p;
        lens[k] = slash ? (size_t)(slash - p) : (size_t)(end - p);
        k++;
        if (!slash)
            break;
        p = slash + 1;
    }
    if (k != 5 || parts[4] + lens[4] != end || lens[4] != strlen("aws4_request") ||
        memcmp(parts[4], "aws4_request", lens[4]) != 0)
        return ef_error_set(err, -EINVAL,
                            "Credential should be scoped to a valid region, not '%.*s'. "
                            "Credential must have exactly 5 slash-delimited elements, e.g. "
                            "keyid/date/region/service/term",
                            (int)(n > 200 ? 200 : n), v);
    if (!copy_field(a->access_key, sizeof(a->access_key), parts[0], lens[0]) ||
        !copy_field(a->date, sizeof(a->date), parts[1], lens[1]) || lens[1] != 8 ||
        !copy_field(a->region, sizeof(a->region), parts[2], lens[2]) ||
        !copy_field(a->service, sizeof(a->service), parts[3], lens[3]))
        return ef_error_set(err, -EINVAL, "Credential is malformed: '%.*s'",
                            (int)(n > 200 ? 200 : n), v);
    for (size_t i = 0; i < 8; i++)
        if (!isdigit((unsigned char)a->date[i]))
            return ef_error_set(err, -EINVAL, "Credential date '%s' is not YYYYMMDD", a->date);
    size_t scope_len = (size_t)(end - parts[1]);
    if (!copy_field(a->scope, sizeof(a->scope), parts[1], scope_len))
        return ef_error_set(err, -EINVAL, "Credential scope is too long");
    return 0;
}

int ef_sigv4_parse_authorization(const char *value, struct ef_sigv4_authorization *ret,
                                 ef_error *err)
{
    struct ef_sigv4_authorization a;
    memset(&a, 0, sizeof(a));
    size_t alg_len = strlen(EF_SIGV4_ALGORITHM);
    if (strncmp(value, EF_SIGV4_ALGORITHM, alg_len) != 0 ||
        (value[alg_len] != ' ' && value[alg_len] != '\t'))
        return ef_error_set(err, -EPROTONOSUPPORT,
                            "Only the AWS4-HMAC-SHA256 signature (Signature Version 4) is "
                            "supported");
    bool have_cred = false, have_signed = false, have_sig = false;
    const char *p = value + alg_len;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            break;
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        const char *eq = memchr(p, '=', n);
        if (!eq)
            return ef_error_set(err, -EINVAL,
                                "Authorization header component '%.*s' is not key=value",
                                (int)(n > 100 ? 100 : n), p);
        size_t kl = (size_t)(eq - p);
        const char *v = eq + 1;
        size_t vl = n - kl - 1;
        int r = 0;
        if (kl == 10 && strncmp(p, "Credential", kl) == 0) {
            r = parse_credential(v, vl, &a, err);
            have_cred = true;
        } else if (kl == 13 && strncmp(p, "SignedHeaders", kl) == 0) {
            if (!copy_field(a.signed_headers, sizeof(a.signed_headers), v, vl))
                r = ef_error_set(err, -EINVAL, "SignedHeaders is empty or too long");
            have_signed = true;
        } else if (kl == 9 && strncmp(p, "Signature", kl) == 0) {
            if (!copy_field(a.signature, sizeof(a.signature), v, vl) || vl != EF_SIGV4_HEX_LEN)
                r = ef_error_set(err, -EINVAL, "Signature must be 64 hexadecimal digits");
            for (size_t i = 0; r == 0 && i < vl; i++)
                if (hexval((unsigned char)v[i]) < 0)
                    r = ef_error_set(err, -EINVAL, "Signature must be 64 hexadecimal digits");
            have_sig = true;
        }
        if (r < 0)
            return r;
        p += comma ? (size_t)(comma - p) : strlen(p);
    }
    const char *missing = !have_cred     ? "Credential"
                          : !have_signed ? "SignedHeaders"
                          : !have_sig    ? "Signature"
                                         : NULL;
    if (missing)
        return ef_error_set(err, -EINVAL,
                            "Authorization header requires '%s' parameter. Authorization=%.200s",
                            missing, value);
    *ret = a;
    return 0;
}
