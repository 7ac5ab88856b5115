#include "test_controller_harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include <cmocka.h>

#include <cjson/cJSON.h>

#include "common/fsutil.h"
#include "common/log.h"
#include "controller/base64.h"

static void on_wake(uv_async_t *a)
{
    struct harness *h = a->data;
    uv_mutex_lock(&h->lock);
    void (*fn)(struct harness *, void *) = h->call_fn;
    void *arg = h->call_arg;
    h->call_fn = NULL;
    uv_mutex_unlock(&h->lock);

    if (fn) {
        fn(h, arg);
        uv_mutex_lock(&h->lock);
        h->call_done = true;
        uv_cond_signal(&h->done);
        uv_mutex_unlock(&h->lock);
    }
}

static void loop_thread(void *arg)
{
    struct harness *h = arg;
    uv_run(&h->loop, UV_RUN_DEFAULT);
}

static void on_controller_stopped(struct harness *h)
{
    uv_close((uv_handle_t *)&h->wake, NULL);
    if (h->on_stopped)
        h->on_stopped(h);
}

void harness_start(struct harness *h, size_t max_request_size, void (*on_loop)(struct harness *h))
{
    ef_log_init("controller-test", getenv("EF_TEST_DEBUG") ? EF_LOG_DEBUG : EF_LOG_ERROR);
    if (!h->dir[0]) {
        strcpy(h->dir, "/tmp/ef-ctl-test-XXXXXX");
        assert_non_null(mkdtemp(h->dir));
    }
    if (!h->funclet_socket[0])
        snprintf(h->funclet_socket, sizeof(h->funclet_socket), "%s/funclet.sock", h->dir);
    assert_int_equal(uv_loop_init(&h->loop), 0);
    assert_int_equal(uv_mutex_init(&h->lock), 0);
    assert_int_equal(uv_cond_init(&h->done), 0);
    assert_int_equal(uv_async_init(&h->loop, &h->wake, on_wake), 0);
    h->wake.data = h;

    if (on_loop)
        on_loop(h);
    struct ef_controller_config config = {
        .data_dir = h->dir,
        .listen = "127.0.0.1",
        .port = 0,
        .funclet_socket = h->funclet_socket,
        .max_request_size = max_request_size ? max_request_size : 6u * 1024 * 1024,
        .max_code_request_size = h->max_code_request_size,
        .auth_keys_path = h->auth_keys_path,
        .metrics_token_path = h->metrics_token_path,
        .allow_host_network = h->allow_host_network,
        .async = h->async,
        .sched = h->sched,
    };
    ef_error err = {0};
    if (ef_controller_start(&h->ctl, &h->loop, &config, &err) < 0)
        fail_msg("controller did not start: %s", err.msg);
    h->port = ef_http_server_port(h->ctl.http);
    assert_true(h->port > 0);
    assert_int_equal(uv_thread_create(&h->thread, loop_thread, h), 0);
}

void harness_on_loop(struct harness *h, void (*fn)(struct harness *h, void *arg), void *arg)
{
    uv_mutex_lock(&h->lock);
    h->call_fn = fn;
    h->call_arg = arg;
    h->call_done = false;
    uv_async_send(&h->wake);
    while (!h->call_done)
        uv_cond_wait(&h->done, &h->lock);
    uv_mutex_unlock(&h->lock);
}

/* ef_controller_stop's on_stopped has no user pointer of its own; the harness is found from
 * the controller, which is its member. */
static void stopped_trampoline(struct ef_controller *ctl)
{
    struct harness *h = (struct harness *)((char *)ctl - offsetof(struct harness, ctl));
    on_controller_stopped(h);
}

static void request_stop(struct harness *h, void *arg)
{
    (void)arg;
    ef_controller_stop(&h->ctl, stopped_trampoline);
}

void harness_stop(struct harness *h, bool keep_dir)
{
    harness_on_loop(h, request_stop, NULL);
    assert_int_equal(uv_thread_join(&h->thread), 0);
    ef_controller_free(&h->ctl);
    assert_int_equal(uv_loop_close(&h->loop), 0);
    uv_mutex_destroy(&h->lock);
    uv_cond_destroy(&h->done);
    if (!keep_dir) {
        assert_int_equal(ef_rm_rf(h->dir, NULL), 0);
        h->dir[0] = '\0';
    }
    h->funclet_socket[0] = '\0';
}

int http_request(int port, const char *method, const char *path, const char *headers,
                 const char *body, size_t body_len, struct http_response *ret)
{
    memset(ret, 0, sizeof(*ret));
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    char *req = NULL;
    int n = asprintf(&req,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "Content-Length: %zu\r\n%s\r\n",
                     method, path, body_len, headers ? headers : "");
    assert_true(n > 0);
    /* A server that refuses the body early may close before it is all sent; the response is
     * what matters, so send errors are not fatal. */
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) == n && body_len > 0) {
        size_t off = 0;
        while (off < body_len) {
            ssize_t k = send(fd, body + off, body_len - off, MSG_NOSIGNAL);
            if (k <= 0)
                break;
            off += (size_t)k;
        }
    }
    free(req);

    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        ssize_t k = recv(fd, buf + len, cap - len - 1, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        len += (size_t)k;
    }
    close(fd);
    buf[len] = '\0';
    char *sep = strstr(buf, "\r\n\r\n");
    if (!sep || sscanf(buf, "HTTP/1.1 %d", &ret->status) != 1) {
        free(buf);
        return -EPROTO;
    }
    ret->head = strndup(buf, (size_t)(sep - buf) + 2);
    ret->body_len = len - (size_t)(sep + 4 - buf);
    ret->body = malloc(ret->body_len + 1);
    memcpy(ret->body, sep + 4, ret->body_len);
    ret->body[ret->body_len] = '\0';
    free(buf);
    return 0;
}

char *http_header(const struct http_response *r, const char *name)
{
    size_t nl = strlen(name);
    for (const char *line = strstr(r->head, "\r\n"); line && line[2];
         line = strstr(line + 2, "\r\n")) {
        const char *l = line + 2;
        if (strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
            const char *v = l + nl + 1;
            while (*v == ' ')
                v++;
            const char *end = strstr(v, "\r\n");
            return strndup(v, end ? (size_t)(end - v) : strlen(v));
        }
    }
    return NULL;
}

void http_response_free(struct http_response *r)
{
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

void *make_zip1(const char *name, const char *content, bool exec, size_t *ret_len)
{
    zip_error_t zerr;
    zip_error_init(&zerr);
    zip_source_t *mem = zip_source_buffer_create(NULL, 0, 0, &zerr);
    assert_non_null(mem);
    zip_source_keep(mem);
    zip_t *za = zip_open_from_source(mem, ZIP_TRUNCATE, &zerr);
    assert_non_null(za);
    zip_source_t *src = zip_source_buffer(za, content, strlen(content), 0);
    zip_int64_t idx = zip_file_add(za, name, src, ZIP_FL_ENC_UTF_8);
    assert_true(idx >= 0);
    mode_t mode = S_IFREG | (exec ? 0755 : 0644);
    zip_file_set_external_attributes(za, (zip_uint64_t)idx, 0, ZIP_OPSYS_UNIX,
                                     (zip_uint32_t)mode << 16);
    /* A fixed modification time: the same content makes the same zip, and so the same sha256,
     * whenever it is made (libzip would stamp the current time, in 2-second steps). */
    assert_int_equal(zip_file_set_mtime(za, (zip_uint64_t)idx, 1700000000, 0), 0);
    assert_int_equal(zip_close(za), 0);

    assert_int_equal(zip_source_open(mem), 0);
    zip_stat_t st;
    assert_int_equal(zip_source_stat(mem, &st), 0);
    void *data = malloc(st.size);
    assert_int_equal(zip_source_read(mem, data, st.size), (zip_int64_t)st.size);
    zip_source_close(mem);
    zip_source_free(mem);
    zip_error_fini(&zerr);
    *ret_len = st.size;
    return data;
}

char *create_body(const char *name, const char *runtime, const char *handler, int timeout_s)
{
    size_t len = 0;
    void *zip = make_zip1("lambda_function.py",
                          "def lambda_handler(event, context):\n"
                          "    return event\n",
                          false, &len);
    char *b64 = ef_base64_encode(zip, len);
    free(zip);
    char *body = NULL;
    assert_true(asprintf(&body,
                         "{\"FunctionName\":\"%s\",\"Runtime\":\"%s\",\"Handler\":\"%s\","
                         "\"Role\":\"arn:aws:iam::123456789012:role/x\",\"Timeout\":%d,"
                         "\"Code\":{\"ZipFile\":\"%s\"}}",
                         name, runtime, handler, timeout_s, b64) > 0);
    free(b64);
    return body;
}

void expect_lambda_error(struct http_response *r, int status, const char *type, const char *needle)
{
    if (r->status != status)
        fail_msg("expected %d %s, got %d: %s", status, type, r->status, r->body);
    char *t = http_header(r, "x-amzn-ErrorType");
    assert_non_null(t);
    if (strcmp(t, type) != 0)
        fail_msg("expected %s, got %s: %s", type, t, r->body);
    free(t);
    char *rid = http_header(r, "x-amzn-RequestId");
    assert_non_null(rid);
    assert_int_equal(strlen(rid), 36);
    free(rid);
    cJSON *j = cJSON_Parse(r->body);
    assert_non_null(j);
    cJSON *kind = cJSON_GetObjectItem(j, "Type");
    cJSON *msg = cJSON_GetObjectItem(j, "message");
    assert_true(cJSON_IsString(kind) && cJSON_IsString(msg));
    assert_string_equal(kind->valuestring, status >= 500 ? "Service" : "User");
    if (needle && !strstr(msg->valuestring, needle))
        fail_msg("message '%s' lacks '%s'", msg->valuestring, needle);
    cJSON_Delete(j);
    http_response_free(r);
}

cJSON *event_status(struct harness *h, const char *rid)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/invocations/%s", rid);
    struct http_response r;
    assert_int_equal(http_request(h->port, "GET", path, NULL, NULL, 0, &r), 0);
    if (r.status != 200)
        fail_msg("GET %s: %d %s", path, r.status, r.body ? r.body : "");
    cJSON *doc = cJSON_Parse(r.body);
    assert_non_null(doc);
    http_response_free(&r);
    return doc;
}

const char *json_str(const cJSON *doc, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

double json_num(const cJSON *doc, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, key);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

void harness_create_function(struct harness *h, const char *name, const char *body)
{
    struct http_response r;
    assert_int_equal(
        http_request(h->port, "POST", "/2015-03-31/functions", NULL, body, strlen(body), &r), 0);
    if (r.status != 201)
        fail_msg("create %s: %d %s", name, r.status, r.body);
    http_response_free(&r);
}
