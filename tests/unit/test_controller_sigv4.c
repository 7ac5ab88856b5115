/* SigV4: the signer against AWS's published Signature Version 4 test suite (credentials
 * AKIDEXAMPLE, 2015-08-30T12:36:00Z, us-east-1, service "service"), then request verification
 * (auth.c) and the auth keys file. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fsutil.h"
#include "controller/auth.h"
#include "controller/sigv4.h"

#define SECRET    "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define AMZ_DATE  "20150830T123600Z"
#define HOST      "example.amazonaws.com"
#define TEST_TIME ((time_t)1440938160) /* 2015-08-30T12:36:00Z */

struct vector {
    const char *name;
    const char *method;
    const char *path;
    const char *query;
    struct ef_http_header extra[3]; /* besides host and x-amz-date */
    const char *signed_headers;
    const char *body;
    const char *signature;
};

/* The test suite's cases, with the signatures AWS publishes for them. */
static const struct vector vectors[] = {
    {"get-vanilla",
     "GET",
     "/",
     "",
     {{0}},
     "host;x-amz-date",
     "",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
    {"get-vanilla-query-order-key-case",
     "GET",
     "/",
     "Param2=value2&Param1=value1",
     {{0}},
     "host;x-amz-date",
     "",
     "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
    {"get-vanilla-query-order-key",
     "GET",
     "/",
     "Param1=value2&Param1=Value1",
     {{0}},
     "host;x-amz-date",
     "",
     "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1"},
    {"get-vanilla-query-unreserved",
     "GET",
     "/",
     "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz="
     "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
     {{0}},
     "host;x-amz-date",
     "",
     "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"},
    {"get-vanilla-utf8-query",
     "GET",
     "/",
     "%E1%88%B4=bar",
     {{0}},
     "host;x-amz-date",
     "",
     "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"},
    {"get-unreserved",
     "GET",
     "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
     "",
     {{0}},
     "host;x-amz-date",
     "",
     "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"},
    {"get-utf8",
     "GET",
     "/\xe1\x88\xb4",
     "",
     {{0}},
     "host;x-amz-date",
     "",
     "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"},
    {"get-space",
     "GET",
     "/example space/",
     "",
     {{0}},
     "host;x-amz-date",
     "",
     "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"},
    {"get-slashes",
     "GET",
     "//example//",
     "",
     {{0}},
     "host;x-amz-date",
     "",
     "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84"},
    {"get-slash-dot-slash",
     "GET",
     "/./",
     "",
     {{0}},
     "host;x-amz-date",
     "",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
    {"get-relative-relative",
     "GET",
     "/example1/example2/../..",
     "",
     {{0}},
     "host;x-amz-date",
     "",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
    {"get-header-value-trim",
     "GET",
     "/",
     "",
     {{"My-Header1", " value1 "}, {"My-Header2", "\"a   b   c\""}},
     "host;my-header1;my-header2;x-amz-date",
     "",
     "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"},
    {"get-header-key-duplicate",
     "GET",
     "/",
     "",
     {{"My-Header1", "value2"}, {"My-Header1", "value2"}, {"My-Header1", "value1"}},
     "host;my-header1;x-amz-date",
     "",
     "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"},
    {"post-vanilla",
     "POST",
     "/",
     "",
     {{0}},
     "host;x-amz-date",
     "",
     "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
    {"post-header-value-case",
     "POST",
     "/",
     "",
     {{"My-Header1", "VALUE1"}},
     "host;my-header1;x-amz-date",
     "",
     "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"},
    {"post-vanilla-query",
     "POST",
     "/",
     "Param1=value1",
     {{0}},
     "host;x-amz-date",
     "",
     "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"},
    {"post-vanilla-query-nonunreserved",
     "POST",
     "/",
     "%40%23%24%25%5E=&%2B=%2F%2C%3F%3E%3C%60%22%3B%3A%5C%7C%5D%5B%7B%7D",
     {{0}},
     "host;x-amz-date",
     "",
     "66c82657c86e26fb25238d0e69f011edc4c6df5ae71119d7cb98ed9b87393c1e"},
    {"post-x-www-form-urlencoded",
     "POST",
     "/",
     "",
     {{"Content-Type", "application/x-www-form-urlencoded"}},
     "content-type;host;x-amz-date",
     "Param1=value1",
     "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"},
    {"post-x-www-form-urlencoded-parameters",
     "POST",
     "/",
     "",
     {{"Content-Type", "application/x-www-form-urlencoded; charset=utf8"}},
     "content-type;host;x-amz-date",
     "Param1=value1",
     "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe"},
    {"post-sts-header-before",
     "POST",
     "/",
     "",
     {{"X-Amz-Security-Token",
       "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXm"
       "xfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0"
       "KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZ"
       "bqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="}},
     "host;x-amz-date;x-amz-security-token",
     "",
     "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"},
};

/* Builds the header list of a vector: Host, X-Amz-Date and its extras. */
static size_t vector_headers(const struct vector *v, struct ef_http_header *out)
{
    size_t n = 0;
    out[n++] = (struct ef_http_header){"Host", HOST};
    out[n++] = (struct ef_http_header){"X-Amz-Date", AMZ_DATE};
    for (size_t i = 0; i < 3 && v->extra[i].name; i++)
        out[n++] = v->extra[i];
    return n;
}

static void sign_vector(const struct vector *v, char sig[EF_SIGV4_HEX_LEN + 1])
{
    struct ef_http_header headers[5];
    size_t n = vector_headers(v, headers);
    char hash[EF_SIGV4_HEX_LEN + 1];
    ef_sigv4_payload_hash(v->body, strlen(v->body), hash);
    char *creq = NULL;
    ef_error err = {0};
    if (ef_sigv4_canonical_request(v->method, v->path, v->query, headers, n, v->signed_headers,
                                   hash, &creq, &err) < 0)
        fail_msg("%s: %s", v->name, err.msg);
    char *sts = ef_sigv4_string_to_sign(AMZ_DATE, "20150830/us-east-1/service/aws4_request", creq);
    assert_non_null(sts);
    ef_sigv4_signature(SECRET, "20150830", "us-east-1", "service", sts, sig);
    free(creq);
    free(sts);
}

static void test_aws_test_suite(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        char sig[EF_SIGV4_HEX_LEN + 1];
        sign_vector(&vectors[i], sig);
        if (strcmp(sig, vectors[i].signature) != 0)
            fail_msg("%s: signature %s, AWS publishes %s", vectors[i].name, sig,
                     vectors[i].signature);
    }
}

static void test_canonical_request_and_string_to_sign(void **state)
{
    (void)state;
    /* get-vanilla-query-order-key: the suite's .creq and .sts files, byte for byte. */
    struct ef_http_header headers[] = {{"Host", HOST}, {"X-Amz-Date", AMZ_DATE}};
    char hash[EF_SIGV4_HEX_LEN + 1];
    ef_sigv4_payload_hash("", 0, hash);
    assert_string_equal(hash, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    char *creq = NULL;
    assert_int_equal(ef_sigv4_canonical_request("GET", "/", "Param1=value2&Param1=Value1", headers,
                                                2, "host;x-amz-date", hash, &creq, NULL),
                     0);
    assert_string_equal(creq, "GET\n/\nParam1=Value1&Param1=value2\nhost:example.amazonaws.com\n"
                              "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
                              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    char *sts = ef_sigv4_string_to_sign(AMZ_DATE, "20150830/us-east-1/service/aws4_request", creq);
    assert_string_equal(sts, "AWS4-HMAC-SHA256\n20150830T123600Z\n"
                             "20150830/us-east-1/service/aws4_request\n"
                             "704b4cef673542d84cdff252633f065e8daeba5f168b77116f8b1bcaf3d38f89");
    free(creq);
    free(sts);

    /* What the AWS SDKs send for Lambda: the ARN in the path is already percent-encoded once,
     * and the canonical URI encodes it again. */
    char *uri = ef_sigv4_canonical_uri(
        "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Af");
    assert_string_equal(uri, "/2015-03-31/functions/"
                             "arn%253Aaws%253Alambda%253Aus-east-1%253A000000000000%253Afunction%"
                             "253Af");
    free(uri);
    uri = ef_sigv4_canonical_uri("/2015-03-31/functions/");
    assert_string_equal(uri, "/2015-03-31/functions/");
    free(uri);
    char *q = ef_sigv4_canonical_query("Qualifier=%24LATEST&MaxItems=2&Marker=");
    assert_string_equal(q, "Marker=&MaxItems=2&Qualifier=%24LATEST");
    free(q);

    /* A signed header the request lacks is an error, not an empty value. */
    ef_error err = {0};
    assert_int_equal(ef_sigv4_canonical_request("GET", "/", "", headers, 2, "host;x-amz-missing",
                                                hash, &creq, &err),
                     -EINVAL);
    assert_non_null(strstr(err.msg, "x-amz-missing"));
}

static void test_parse_authorization(void **state)
{
    (void)state;
    struct ef_sigv4_authorization a;
    ef_error err = {0};
    assert_int_equal(
        ef_sigv4_parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/lambda/aws4_request, "
            "SignedHeaders=host;x-amz-date, "
            "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            &a, &err),
        0);
    assert_string_equal(a.access_key, "AKIDEXAMPLE");
    assert_string_equal(a.date, "20150830");
    assert_string_equal(a.region, "us-east-1");
    assert_string_equal(a.service, "lambda");
    assert_string_equal(a.scope, "20150830/us-east-1/lambda/aws4_request");
    assert_string_equal(a.signed_headers, "host;x-amz-date");

    const char *bad[] = {
        "AWS AKIDEXAMPLE:abc",
        "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/lambda/aws4_request, "
        "SignedHeaders=host",
        "AWS4-HMAC-SHA256 Credential=AKID/2015/us-east-1/lambda/aws4_request, SignedHeaders=host, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/lambda/aws5_request, "
        "SignedHeaders=host, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/lambda/aws4_request, "
        "SignedHeaders=host, Signature=xyz",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (ef_sigv4_parse_authorization(bad[i], &a, &err) == 0)
            fail_msg("accepted '%s'", bad[i]);
}

/* ---- verification ---- */

struct signed_request {
    struct ef_http_header headers[6];
    size_t n;
    char authz[512];
    struct ef_http_request req;
};

/* Signs POST /2015-03-31/functions/f/invocations?Qualifier=1 with body `body` as an SDK would,
 * by key `id`/`secret`, at `when`, for `service`. */
/* A request signed as a client would sign it; with `x_name`, one more header, signed when
 * `signed_list` names it. */
static void make_signed_x(struct signed_request *s, const char *id, const char *secret,
                          const char *amz_date, const char *service, const char *body,
                          const char *x_name, const char *x_value, const char *signed_list)
{
    memset(s, 0, sizeof(*s));
    s->headers[s->n++] = (struct ef_http_header){"Host", "127.0.0.1:8080"};
    s->headers[s->n++] = (struct ef_http_header){"X-Amz-Date", amz_date};
    s->headers[s->n++] = (struct ef_http_header){"Content-Type", "application/json"};
    if (x_name)
        s->headers[s->n++] = (struct ef_http_header){x_name, x_value};
    s->req.method = "POST";
    s->req.path = "/2015-03-31/functions/f/invocations";
    s->req.query = "Qualifier=1";
    s->req.body = body;
    s->req.body_len = strlen(body);
    char hash[EF_SIGV4_HEX_LEN + 1], sig[EF_SIGV4_HEX_LEN + 1], scope[128];
    ef_sigv4_payload_hash(body, strlen(body), hash);
    char *creq = NULL;
    assert_int_equal(ef_sigv4_canonical_request(s->req.method, s->req.path, s->req.query,
                                                s->headers, s->n, signed_list, hash, &creq, NULL),
                     0);
    snprintf(scope, sizeof(scope), "%.8s/us-east-1/%s/aws4_request", amz_date, service);
    char *sts = ef_sigv4_string_to_sign(amz_date, scope, creq);
    char date[9];
    snprintf(date, sizeof(date), "%.8s", amz_date);
    ef_sigv4_signature(secret, date, "us-east-1", service, sts, sig);
    free(creq);
    free(sts);
    snprintf(s->authz, sizeof(s->authz),
             "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s", id, scope,
             signed_list, sig);
    s->headers[s->n++] = (struct ef_http_header){"Authorization", s->authz};
    s->req.headers = s->headers;
    s->req.n_headers = s->n;
}

static void make_signed(struct signed_request *s, const char *id, const char *secret,
                        const char *amz_date, const char *service, const char *body)
{
    make_signed_x(s, id, secret, amz_date, service, body, NULL, NULL,
                  "content-type;host;x-amz-date");
}

static char keyfile[64];

static ef_auth_keys *load_test_keys(void)
{
    strcpy(keyfile, "/tmp/ef-keys-XXXXXX");
    int fd = mkstemp(keyfile);
    assert_true(fd >= 0);
    const char text[] = "# operators\nAKIDEXAMPLE " SECRET "\n\nSECOND second-secret\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    ef_auth_keys *keys = NULL;
    ef_error err = {0};
    if (ef_auth_keys_load(keyfile, &keys, &err) < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(ef_auth_keys_count(keys), 2);
    unlink(keyfile);
    return keys;
}

static void expect_denied(const ef_auth_keys *keys, const struct ef_http_request *req, time_t now,
                          const char *type, const char *needle)
{
    const char *got = NULL;
    ef_error err = {0};
    assert_int_equal(ef_auth_verify(keys, req, now, &got, &err), -EACCES);
    assert_string_equal(got, type);
    if (needle && !strstr(err.msg, needle))
        fail_msg("message '%s' lacks '%s'", err.msg, needle);
}

static void test_verify(void **state)
{
    (void)state;
    ef_auth_keys *keys = load_test_keys();
    struct signed_request s;
    const char *type = NULL;
    ef_error err = {0};

    make_signed(&s, "AKIDEXAMPLE", SECRET, AMZ_DATE, "lambda", "{\"a\":1}");
    assert_int_equal(ef_auth_verify(keys, &s.req, TEST_TIME, &type, &err), 0);
    /* Clock skew up to 15 minutes either way is fine, beyond it is not. */
    assert_int_equal(ef_auth_verify(keys, &s.req, TEST_TIME + 14 * 60, &type, &err), 0);
    assert_int_equal(ef_auth_verify(keys, &s.req, TEST_TIME - 14 * 60, &type, &err), 0);
    expect_denied(keys, &s.req, TEST_TIME + 16 * 60, "InvalidSignatureException",
                  "Signature expired");
    expect_denied(keys, &s.req, TEST_TIME - 16 * 60, "InvalidSignatureException",
                  "not yet current");

    /* The second key works too. */
    make_signed(&s, "SECOND", "second-secret", AMZ_DATE, "lambda", "{}");
    assert_int_equal(ef_auth_verify(keys, &s.req, TEST_TIME, &type, &err), 0);

    /* A wrong secret, an unknown key, another service. */
    make_signed(&s, "AKIDEXAMPLE", "not-the-secret", AMZ_DATE, "lambda", "{}");
    expect_denied(keys, &s.req, TEST_TIME, "InvalidSignatureException", "does not match");
    make_signed(&s, "NOBODY", SECRET, AMZ_DATE, "lambda", "{}");
    expect_denied(keys, &s.req, TEST_TIME, "UnrecognizedClientException", "security token");
    make_signed(&s, "AKIDEXAMPLE", SECRET, AMZ_DATE, "s3", "{}");
    expect_denied(keys, &s.req, TEST_TIME, "InvalidSignatureException", "'lambda'");

    /* Anything changed after signing: the body, the query, the path, a signed header. */
    make_signed(&s, "AKIDEXAMPLE", SECRET, AMZ_DATE, "lambda", "{\"a\":1}");
    s.req.body = "{\"a\":2}";
    expect_denied(keys, &s.req, TEST_TIME, "InvalidSignatureException", "does not match");
    make_signed(&s, "AKIDEXAMPLE", SECRET, AMZ_DATE, "lambda", "{}");
    s.req.query = "Qualifier=2";
    expect_denied(keys, &s.req, TEST_TIME, "InvalidSignatureException", NULL);
    make_signed(&s, "AKIDEXAMPLE", SECRET, AMZ_DATE, "lambda", "{}");
    s.req.path = "/2015-03-31/functions/g/invocations";
    expect_denied(keys, &s.req, TEST_TIME, "InvalidSignatureException", NULL);
    make_signed(&s, "AKIDEXAMPLE", SECRET, AMZ_DATE, "lambda", "{}");
    s.headers[2].value = "text/plain";
    expect_denied(keys, &s.req, TEST_TIME, "InvalidSignatureException", NULL);

    /* A declared payload hash must be the body's. */
    make_signed_x(&s, "AKIDEXAMPLE", SECRET, AMZ_DATE, "lambda", "{}", "X-Amz-Content-SHA256",
                  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                  "content-type;host;x-amz-content-sha256;x-amz-date");
    expect_denied(keys, &s.req, TEST_TIME, "InvalidSignatureException", "x-amz-content-sha256");

    /* Every X-Amz-* header must be signed: one added to a signed request is refused, the same
     * one signed is fine. */
    make_signed(&s, "AKIDEXAMPLE", SECRET, AMZ_DATE, "lambda", "{}");
    s.headers[s.n - 1] = (struct ef_http_header){"X-Amz-Invocation-Type", "DryRun"};
    s.headers[s.n++] = (struct ef_http_header){"Authorization", s.authz};
    s.req.n_headers = s.n;
    expect_denied(keys, &s.req, TEST_TIME, "IncompleteSignatureException",
                  "X-Amz-Invocation-Type must be signed");
    make_signed_x(&s, "AKIDEXAMPLE", SECRET, AMZ_DATE, "lambda", "{}", "X-Amz-Invocation-Type",
                  "DryRun", "content-type;host;x-amz-date;x-amz-invocation-type");
    assert_int_equal(ef_auth_verify(keys, &s.req, TEST_TIME, &type, &err), 0);

    /* SignedHeaders lists each name once, sorted: repeats would make the request scan its
     * headers once per repeat. */
    make_signed_x(&s, "AKIDEXAMPLE", SECRET, AMZ_DATE, "lambda", "{}", NULL, NULL,
                  "content-type;host;x-amz-date");
    snprintf(s.authz, sizeof(s.authz),
             "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/lambda/aws4_request, "
             "SignedHeaders=content-type;host;host;x-amz-date, Signature=%064d",
             0);
    expect_denied(keys, &s.req, TEST_TIME, "IncompleteSignatureException", "once, in sorted");
    snprintf(s.authz, sizeof(s.authz),
             "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/lambda/aws4_request, "
             "SignedHeaders=host;content-type;x-amz-date, Signature=%064d",
             0);
    expect_denied(keys, &s.req, TEST_TIME, "IncompleteSignatureException", "once, in sorted");

    /* No signature at all, and no date. */
    struct ef_http_request bare = {.method = "GET", .path = "/", .query = "", .body = ""};
    expect_denied(keys, &bare, TEST_TIME, "MissingAuthenticationTokenException",
                  "Missing Authentication Token");
    make_signed(&s, "AKIDEXAMPLE", SECRET, AMZ_DATE, "lambda", "{}");
    s.headers[1].name = "X-Not-Date";
    expect_denied(keys, &s.req, TEST_TIME, "IncompleteSignatureException", "X-Amz-Date");

    /* A credential scope dated another day than the request. */
    make_signed(&s, "AKIDEXAMPLE", SECRET, AMZ_DATE, "lambda", "{}");
    char *at = strstr(s.authz, "20150830/");
    memcpy(at, "20150829", 8);
    expect_denied(keys, &s.req, TEST_TIME, "InvalidSignatureException", "Credential scope");
    ef_auth_keys_free(keys);
}

static void test_verify_with_date_header(void **state)
{
    (void)state;
    /* Without X-Amz-Date the HTTP Date header dates the request; the string to sign then
     * carries it in ISO 8601 basic form. */
    ef_auth_keys *keys = load_test_keys();
    struct ef_http_header headers[3] = {{"Host", HOST}, {"Date", "Sun, 30 Aug 2015 12:36:00 GMT"}};
    char hash[EF_SIGV4_HEX_LEN + 1], sig[EF_SIGV4_HEX_LEN + 1], authz[400];
    ef_sigv4_payload_hash("", 0, hash);
    char *creq = NULL;
    assert_int_equal(
        ef_sigv4_canonical_request("GET", "/", "", headers, 2, "date;host", hash, &creq, NULL), 0);
    char *sts = ef_sigv4_string_to_sign(AMZ_DATE, "20150830/us-east-1/lambda/aws4_request", creq);
    ef_sigv4_signature(SECRET, "20150830", "us-east-1", "lambda", sts, sig);
    snprintf(authz, sizeof(authz),
             "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/lambda/aws4_request, "
             "SignedHeaders=date;host, Signature=%s",
             sig);
    headers[2] = (struct ef_http_header){"Authorization", authz};
    struct ef_http_request req = {
        .method = "GET", .path = "/", .query = "", .headers = headers, .n_headers = 3, .body = ""};
    const char *type = NULL;
    ef_error err = {0};
    if (ef_auth_verify(keys, &req, TEST_TIME, &type, &err) < 0)
        fail_msg("%s: %s", type, err.msg);
    free(creq);
    free(sts);
    ef_auth_keys_free(keys);
}

static void write_keys(const char *text, mode_t mode)
{
    strcpy(keyfile, "/tmp/ef-keys-XXXXXX");
    int fd = mkstemp(keyfile);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static void test_key_file_checks(void **state)
{
    (void)state;
    ef_auth_keys *keys = NULL;
    ef_error err = {0};

    /* Readable by others: refused, and the message says how to fix it. */
    write_keys("AKID secret\n", 0644);
    assert_int_equal(ef_auth_keys_load(keyfile, &keys, &err), -EPERM);
    assert_non_null(strstr(err.msg, "chmod 600"));
    assert_null(keys);
    unlink(keyfile);
    write_keys("AKID secret\n", 0640);
    assert_int_equal(ef_auth_keys_load(keyfile, &keys, &err), -EPERM);
    unlink(keyfile);

    /* Malformed lines name their number. */
    write_keys("AKID secret\nonly-one-field\n", 0600);
    assert_int_equal(ef_auth_keys_load(keyfile, &keys, &err), -EINVAL);
    assert_non_null(strstr(err.msg, ":2:"));
    unlink(keyfile);
    write_keys("AKID secret extra\n", 0600);
    assert_int_equal(ef_auth_keys_load(keyfile, &keys, &err), -EINVAL);
    unlink(keyfile);
    write_keys("AK/ID secret\n", 0600);
    assert_int_equal(ef_auth_keys_load(keyfile, &keys, &err), -EINVAL);
    unlink(keyfile);

    /* No key at all. */
    write_keys("# nothing here\n\n", 0600);
    assert_int_equal(ef_auth_keys_load(keyfile, &keys, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "no key"));
    unlink(keyfile);

    /* A symlink is not followed, a missing file is reported. */
    write_keys("AKID secret\r\n", 0600);
    char link[80];
    snprintf(link, sizeof(link), "%s.link", keyfile);
    assert_int_equal(symlink(keyfile, link), 0);
    assert_true(ef_auth_keys_load(link, &keys, &err) < 0);
    unlink(link);
    assert_int_equal(ef_auth_keys_load(keyfile, &keys, &err), 0); /* CRLF is fine */
    assert_int_equal(ef_auth_keys_count(keys), 1);
    ef_auth_keys_free(keys);
    unlink(keyfile);
    assert_int_equal(ef_auth_keys_load(keyfile, &keys, &err), -ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aws_test_suite),
        cmocka_unit_test(test_canonical_request_and_string_to_sign),
        cmocka_unit_test(test_parse_authorization),
        cmocka_unit_test(test_verify),
        cmocka_unit_test(test_verify_with_date_header),
        cmocka_unit_test(test_key_file_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
