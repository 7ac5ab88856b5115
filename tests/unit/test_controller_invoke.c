/* The scheduler end to end over real sockets: the real controller (HTTP, pool, invoke,
 * funclet client) against a test peer that speaks funclet's and the runner's side of
 * docs/rpc.md. The peer's runner answers `invoke` according to the event's "mode", so each test
 * drives one path: success, function error, timeout, runtime exit, runner crash, funclet's
 * container.exited, capacity, client disconnect, funclet coming up late. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/rpc.h"
#include "controller/base64.h"
#include "test_controller_harness.h"

struct fake_container {
    struct fake *fake;
    char id[16];
    char sock[160];
    ef_rpc_server *srv;
    ef_rpc_request *pending; /* an invoke left unanswered on purpose */
    bool destroyed;
    struct fake_container *next;
};

struct fake {
    ef_rpc_server *funclet;
    ef_rpc_conn *ctl_conn;
    int creates, destroys, live, max_containers;
    char last_code_dir[PATH_MAX];
    int64_t last_memory;
    cJSON *last_start;
    struct fake_container *containers;
};

struct delayed {
    uv_timer_t timer;
    ef_rpc_request *req;
    cJSON *result;
};

static struct harness H;
static struct fake F;

/* ---- the runner's side ---- */

static cJSON *ok_result(struct fake_container *fc, const char *request_id)
{
    char payload[256], log[128];
    snprintf(payload, sizeof(payload), "{\"container\":\"%s\",\"request_id\":\"%s\"}", fc->id,
             request_id);
    snprintf(log, sizeof(log), "log line from %s\n", fc->id);
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "status", "ok");
    cJSON_AddStringToObject(r, "payload", payload);
    cJSON_AddStringToObject(r, "log", log);
    return r;
}

static cJSON *error_result(const char *type, const char *payload)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "status", "error");
    cJSON_AddStringToObject(r, "error_type", type);
    cJSON_AddStringToObject(r, "payload", payload);
    cJSON_AddStringToObject(r, "log", "Traceback (most recent call last):\n");
    return r;
}

static void on_delay_closed(uv_handle_t *h)
{
    free(h);
}

static void on_delay(uv_timer_t *t)
{
    struct delayed *d = (struct delayed *)t;
    ef_rpc_reply(d->req, d->result);
    uv_close((uv_handle_t *)t, on_delay_closed);
}

static void runner_invoke(struct fake_container *fc, ef_rpc_request *req, const cJSON *params)
{
    const cJSON *rid = cJSON_GetObjectItem(params, "request_id");
    const cJSON *payload = cJSON_GetObjectItem(params, "payload");
    const cJSON *deadline = cJSON_GetObjectItem(params, "deadline_ms");
    const cJSON *arn = cJSON_GetObjectItem(params, "invoked_function_arn");
    if (!cJSON_IsString(rid) || !cJSON_IsString(payload) || !cJSON_IsNumber(deadline) ||
        !cJSON_IsString(arn) || strncmp(arn->valuestring, "arn:aws:lambda:", 15) != 0) {
        ef_rpc_reply_error(req, EF_RPC_INVALID_PARAMS, NULL, "bad invoke params");
        return;
    }
    cJSON *event = cJSON_Parse(payload->valuestring);
    const cJSON *m = cJSON_GetObjectItem(event, "mode");
    const char *mode = cJSON_IsString(m) ? m->valuestring : "ok";

    if (strcmp(mode, "ok") == 0) {
        ef_rpc_reply(req, ok_result(fc, rid->valuestring));
    } else if (strcmp(mode, "error") == 0) {
        ef_rpc_reply(req, error_result("ValueError",
                                       "{\"errorMessage\":\"boom\",\"errorType\":\"ValueError\","
                                       "\"stackTrace\":[]}"));
    } else if (strcmp(mode, "exit") == 0) {
        ef_rpc_reply(req, error_result("Runtime.ExitError",
                                       "{\"errorType\":\"Runtime.ExitError\",\"errorMessage\":"
                                       "\"Runtime exited with error: exit status 1\"}"));
    } else if (strcmp(mode, "sleep") == 0) {
        fc->pending = req;
    } else if (strcmp(mode, "crash") == 0) {
        /* The runner dies: its socket and connections go away. */
        ef_rpc_server_close(fc->srv);
        fc->srv = NULL;
        ef_rpc_reply_error(req, EF_RPC_INTERNAL_ERROR, NULL, "not sent: the connection is gone");
    } else if (strcmp(mode, "exit_notify") == 0) {
        fc->pending = req;
        cJSON *n = cJSON_CreateObject();
        cJSON_AddStringToObject(n, "id", fc->id);
        cJSON_AddNumberToObject(n, "pid", 4242);
        cJSON_AddStringToObject(n, "status", "exit status 1");
        assert_int_equal(ef_rpc_notify(fc->fake->ctl_conn, "container.exited", n), 0);
    } else if (strcmp(mode, "delay") == 0) {
        struct delayed *d = calloc(1, sizeof(*d));
        d->req = req;
        d->result = ok_result(fc, rid->valuestring);
        uv_timer_init(&H.loop, &d->timer);
        uv_timer_start(&d->timer, on_delay, 400, 0);
    } else {
        ef_rpc_reply_error(req, EF_RPC_INVALID_PARAMS, NULL, "unknown mode %s", mode);
    }
    cJSON_Delete(event);
}

static void runner_request(ef_rpc_conn *conn, ef_rpc_request *req, const char *method,
                           const cJSON *params, void *user)
{
    (void)conn;
    struct fake_container *fc = user;
    if (strcmp(method, "runtime.start") == 0) {
        cJSON_Delete(fc->fake->last_start);
        fc->fake->last_start = cJSON_Duplicate(params, 1);
        cJSON *r = cJSON_CreateObject();
        cJSON_AddNumberToObject(r, "pid", 7);
        ef_rpc_reply(req, r);
    } else if (strcmp(method, "invoke") == 0) {
        runner_invoke(fc, req, params);
    } else {
        ef_rpc_reply_error(req, EF_RPC_METHOD_NOT_FOUND, NULL, "no method %s", method);
    }
}

static const struct ef_rpc_handlers runner_handlers = {.on_request = runner_request};

/* ---- funclet's side ---- */

static struct fake_container *find_container(const char *id)
{
    for (struct fake_container *fc = F.containers; fc; fc = fc->next)
        if (strcmp(fc->id, id) == 0)
            return fc;
    return NULL;
}

static void kill_container(struct fake_container *fc)
{
    if (fc->srv) {
        ef_rpc_server_close(fc->srv);
        fc->srv = NULL;
    }
    if (fc->pending) {
        ef_rpc_reply_error(fc->pending, EF_RPC_INTERNAL_ERROR, NULL, "container killed");
        fc->pending = NULL;
    }
}

static void funclet_request(ef_rpc_conn *conn, ef_rpc_request *req, const char *method,
                            const cJSON *params, void *user)
{
    (void)user;
    F.ctl_conn = conn;
    if (strcmp(method, "container.create") == 0) {
        const cJSON *code_dir = cJSON_GetObjectItem(params, "code_dir");
        const cJSON *mem = cJSON_GetObjectItem(params, "memory_mb");
        if (!cJSON_IsString(code_dir) || !cJSON_IsNumber(mem)) {
            ef_rpc_reply_error(req, EF_RPC_INVALID_PARAMS, NULL, "bad params");
            return;
        }
        snprintf(F.last_code_dir, sizeof(F.last_code_dir), "%s", code_dir->valuestring);
        F.last_memory = (int64_t)mem->valuedouble;
        if (F.max_containers && F.live >= F.max_containers) {
            ef_rpc_reply_error(req, EF_RPC_ERR_NO_CAPACITY, NULL, "--max-containers (%d) reached",
                               F.max_containers);
            return;
        }
        struct fake_container *fc = calloc(1, sizeof(*fc));
        fc->fake = &F;
        F.creates++;
        F.live++;
        snprintf(fc->id, sizeof(fc->id), "c%d", F.creates);
        snprintf(fc->sock, sizeof(fc->sock), "%s/runner-%d.sock", H.dir, F.creates);
        ef_error err = {0};
        if (ef_rpc_server_listen(&H.loop, fc->sock, -1, 0600, &runner_handlers, fc, &fc->srv,
                                 &err) < 0)
            fail_msg("runner socket: %s", err.msg);
        fc->next = F.containers;
        F.containers = fc;
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "id", fc->id);
        cJSON_AddNumberToObject(r, "pid", 1000 + F.creates);
        cJSON_AddStringToObject(r, "runner_socket", fc->sock);
        ef_rpc_reply(req, r);
    } else if (strcmp(method, "container.destroy") == 0) {
        const cJSON *id = cJSON_GetObjectItem(params, "id");
        struct fake_container *fc = cJSON_IsString(id) ? find_container(id->valuestring) : NULL;
        if (!fc || fc->destroyed) {
            ef_rpc_reply_error(req, EF_RPC_ERR_NOT_FOUND, NULL, "no container");
            return;
        }
        fc->destroyed = true;
        F.destroys++;
        F.live--;
        kill_container(fc);
        ef_rpc_reply(req, NULL);
    } else {
        ef_rpc_reply_error(req, EF_RPC_METHOD_NOT_FOUND, NULL, "no method %s", method);
    }
}

static const struct ef_rpc_handlers funclet_handlers = {.on_request = funclet_request};

static void fake_listen(struct harness *h)
{
    ef_error err = {0};
    if (ef_rpc_server_listen(&h->loop, h->funclet_socket, -1, 0600, &funclet_handlers, &F,
                             &F.funclet, &err) < 0)
        fail_msg("funclet socket: %s", err.msg);
}

static void fake_listen_on_loop(struct harness *h, void *arg)
{
    (void)arg;
    fake_listen(h);
}

/* Runs on the loop once the controller has stopped: the peer goes away too. */
static void fake_stop(struct harness *h)
{
    (void)h;
    if (F.funclet)
        ef_rpc_server_close(F.funclet);
    F.funclet = NULL;
    for (struct fake_container *fc = F.containers; fc; fc = fc->next)
        kill_container(fc);
}

/* A copy of the peer's counters, taken on the loop thread. */
struct snapshot {
    int creates, destroys, live;
};

static void take_snapshot(struct harness *h, void *arg)
{
    (void)h;
    struct snapshot *s = arg;
    s->creates = F.creates;
    s->destroys = F.destroys;
    s->live = F.live;
}

static struct snapshot snap(void)
{
    struct snapshot s;
    harness_on_loop(&H, take_snapshot, &s);
    return s;
}

static void start(bool with_funclet)
{
    memset(&H, 0, sizeof(H));
    memset(&F, 0, sizeof(F));
    H.on_stopped = fake_stop;
    harness_start(&H, 0, with_funclet ? fake_listen : NULL);
}

static void stop(void)
{
    harness_stop(&H, false);
    while (F.containers) {
        struct fake_container *fc = F.containers;
        F.containers = fc->next;
        free(fc);
    }
    cJSON_Delete(F.last_start);
    F.last_start = NULL;
}

static int setup(void **state)
{
    (void)state;
    start(true);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    stop();
    return 0;
}

/* ---- helpers ---- */

static void create_fn(const char *name, int timeout_s)
{
    char *b = create_body(name, "python3.12", "lambda_function.lambda_handler", timeout_s);
    struct http_response r;
    assert_int_equal(http_request(H.port, "POST", "/2015-03-31/functions", NULL, b, strlen(b), &r),
                     0);
    if (r.status != 201)
        fail_msg("create %s: %d %s", name, r.status, r.body);
    http_response_free(&r);
    free(b);
}

static struct http_response invoke(const char *name, const char *event, const char *headers)
{
    char path[128];
    snprintf(path, sizeof(path), "/2015-03-31/functions/%s/invocations", name);
    struct http_response r;
    assert_int_equal(http_request(H.port, "POST", path, headers, event, strlen(event), &r), 0);
    return r;
}

/* Invokes successfully and returns which container served it (malloc'd). */
static char *invoke_ok(const char *name)
{
    struct http_response r = invoke(name, "{\"mode\":\"ok\"}", NULL);
    if (r.status != 200)
        fail_msg("invoke %s: %d %s", name, r.status, r.body);
    char *fe = http_header(&r, "X-Amz-Function-Error");
    assert_null(fe);
    cJSON *j = cJSON_Parse(r.body);
    assert_non_null(j);
    char *c = strdup(cJSON_GetObjectItem(j, "container")->valuestring);
    cJSON_Delete(j);
    http_response_free(&r);
    return c;
}

/* Asserts a function error (200 + X-Amz-Function-Error: Unhandled) and returns its document. */
static cJSON *expect_function_error(struct http_response *r)
{
    if (r->status != 200)
        fail_msg("expected 200, got %d: %s", r->status, r->body);
    char *fe = http_header(r, "X-Amz-Function-Error");
    assert_non_null(fe);
    assert_string_equal(fe, "Unhandled");
    free(fe);
    cJSON *j = cJSON_Parse(r->body);
    assert_non_null(j);
    http_response_free(r);
    return j;
}

static cJSON *runtimes(void)
{
    struct http_response r;
    assert_int_equal(http_request(H.port, "GET", "/v1/runtimes", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    assert_true(cJSON_IsArray(j));
    http_response_free(&r);
    return j;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- tests ---- */

static void test_warm_reuse_and_log_tail(void **state)
{
    (void)state;
    create_fn("echo", 3);
    struct http_response r = invoke("echo", "{\"mode\":\"ok\"}", "X-Amz-Log-Type: Tail\r\n");
    assert_int_equal(r.status, 200);
    char *rid = http_header(&r, "x-amzn-RequestId");
    char *ver = http_header(&r, "X-Amz-Executed-Version");
    char *ct = http_header(&r, "Content-Type");
    char *log64 = http_header(&r, "X-Amz-Log-Result");
    assert_non_null(rid);
    assert_string_equal(ver, "$LATEST");
    assert_string_equal(ct, "application/json");
    assert_non_null(log64);
    cJSON *j = cJSON_Parse(r.body);
    assert_string_equal(cJSON_GetObjectItem(j, "container")->valuestring, "c1");
    /* The runner got the same request id the client sees. */
    assert_string_equal(cJSON_GetObjectItem(j, "request_id")->valuestring, rid);
    cJSON_Delete(j);

    unsigned char *log = NULL;
    size_t loglen = 0;
    assert_int_equal(ef_base64_decode(log64, strlen(log64), &log, &loglen), 0);
    char want[256];
    snprintf(want, sizeof(want),
             "START RequestId: %s Version: $LATEST\nlog line from c1\nEND "
             "RequestId: %s\nREPORT RequestId: %s\tDuration: ",
             rid, rid, rid);
    if (strncmp((char *)log, want, strlen(want)) != 0)
        fail_msg("log tail:\n%s", log);
    assert_non_null(strstr((char *)log, "\tBilled Duration: "));
    assert_non_null(strstr((char *)log, "\tMemory Size: 128 MB"));
    assert_non_null(strstr((char *)log, "\tInit Duration: ")); /* a cold start */
    assert_int_equal(log[loglen - 1], '\n');
    free(log);
    free(log64);
    free(ct);
    free(ver);
    free(rid);
    http_response_free(&r);

    /* What the container was asked for. */
    char real[PATH_MAX];
    assert_non_null(realpath(H.dir, real));
    assert_int_equal(strncmp(F.last_code_dir, real, strlen(real)), 0);
    assert_non_null(strstr(F.last_code_dir, "/code/extracted/"));
    assert_int_equal(F.last_memory, 128);
    cJSON *sp = F.last_start;
    assert_string_equal(cJSON_GetObjectItem(sp, "function_name")->valuestring, "echo");
    assert_string_equal(cJSON_GetObjectItem(sp, "function_version")->valuestring, "$LATEST");
    assert_string_equal(cJSON_GetObjectItem(sp, "handler")->valuestring,
                        "lambda_function.lambda_handler");
    assert_string_equal(cJSON_GetObjectItem(sp, "runtime")->valuestring, "python3.12");
    assert_int_equal(cJSON_GetObjectItem(sp, "memory_mb")->valuedouble, 128);
    assert_int_equal(cJSON_GetObjectItem(sp, "timeout_s")->valuedouble, 3);
    assert_true(cJSON_IsObject(cJSON_GetObjectItem(sp, "environment")));

    /* The second invocation is warm: same container, no new create, no Init Duration. */
    r = invoke("echo", "", "X-Amz-Log-Type: Tail\r\n");
    assert_int_equal(r.status, 200);
    j = cJSON_Parse(r.body);
    assert_string_equal(cJSON_GetObjectItem(j, "container")->valuestring, "c1");
    cJSON_Delete(j);
    log64 = http_header(&r, "X-Amz-Log-Result");
    assert_int_equal(ef_base64_decode(log64, strlen(log64), &log, &loglen), 0);
    assert_null(strstr((char *)log, "Init Duration"));
    free(log);
    free(log64);
    http_response_free(&r);

    /* The EasyFaaS-style path reaches the same warm container. */
    assert_int_equal(
        http_request(H.port, "POST", "/v1/functions/echo/invocations", NULL, "{}", 2, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"c1\""));
    http_response_free(&r);

    struct snapshot s = snap();
    assert_int_equal(s.creates, 1);
    assert_int_equal(s.destroys, 0);

    j = runtimes();
    assert_int_equal(cJSON_GetArraySize(j), 1);
    cJSON *c = cJSON_GetArrayItem(j, 0);
    assert_string_equal(cJSON_GetObjectItem(c, "id")->valuestring, "c1");
    assert_string_equal(cJSON_GetObjectItem(c, "state")->valuestring, "idle");
    assert_string_equal(cJSON_GetObjectItem(c, "function")->valuestring, "echo");
    assert_true(cJSON_GetObjectItem(c, "last_used_ms")->valuedouble > 1.7e12);
    cJSON_Delete(j);

    /* Stopping destroys every container through funclet before exiting. */
    stop();
    assert_int_equal(F.destroys, 1);
    start(true);
}

static void test_functions_do_not_share_containers(void **state)
{
    (void)state;
    create_fn("fa", 3);
    create_fn("fb", 3);
    char *a = invoke_ok("fa");
    char *b = invoke_ok("fb");
    assert_string_not_equal(a, b);
    char *a2 = invoke_ok("fa");
    assert_string_equal(a, a2);
    free(a);
    free(a2);
    free(b);
    assert_int_equal(snap().creates, 2);
}

static void test_function_error_keeps_container(void **state)
{
    (void)state;
    create_fn("err", 3);
    struct http_response r = invoke("err", "{\"mode\":\"error\"}", NULL);
    char *rid = http_header(&r, "x-amzn-RequestId");
    assert_non_null(rid);
    free(rid);
    cJSON *j = expect_function_error(&r);
    assert_string_equal(cJSON_GetObjectItem(j, "errorType")->valuestring, "ValueError");
    assert_string_equal(cJSON_GetObjectItem(j, "errorMessage")->valuestring, "boom");
    cJSON_Delete(j);
    char *c = invoke_ok("err");
    assert_string_equal(c, "c1");
    free(c);
    struct snapshot s = snap();
    assert_int_equal(s.creates, 1);
    assert_int_equal(s.destroys, 0);
}

static void test_timeout_destroys_container(void **state)
{
    (void)state;
    create_fn("slow", 1);
    double t0 = now_s();
    struct http_response r = invoke("slow", "{\"mode\":\"sleep\"}", NULL);
    double elapsed = now_s() - t0;
    char *rid = http_header(&r, "x-amzn-RequestId");
    cJSON *j = expect_function_error(&r);
    /* Lambda's shape: "<timestamp> <request id> Task timed out after 1.00 seconds". */
    const char *msg = cJSON_GetObjectItem(j, "errorMessage")->valuestring;
    char suffix[128];
    snprintf(suffix, sizeof(suffix), "Z %s Task timed out after 1.00 seconds", rid);
    if (strlen(msg) != 23 + strlen(suffix) || strcmp(msg + 23, suffix) != 0)
        fail_msg("timeout message: '%s'", msg);
    assert_null(cJSON_GetObjectItem(j, "errorType"));
    cJSON_Delete(j);
    free(rid);
    assert_true(elapsed >= 1.4 && elapsed < 3.0);

    struct snapshot s = snap();
    assert_int_equal(s.destroys, 1);
    cJSON *rt = runtimes();
    assert_int_equal(cJSON_GetArraySize(rt), 0);
    cJSON_Delete(rt);

    /* The next invocation gets a fresh container. */
    char *c = invoke_ok("slow");
    assert_string_equal(c, "c2");
    free(c);
}

static void test_runtime_exit_destroys_container(void **state)
{
    (void)state;
    create_fn("exits", 3);
    struct http_response r = invoke("exits", "{\"mode\":\"exit\"}", NULL);
    cJSON *j = expect_function_error(&r);
    assert_string_equal(cJSON_GetObjectItem(j, "errorType")->valuestring, "Runtime.ExitError");
    cJSON_Delete(j);
    assert_int_equal(snap().destroys, 1);
    char *c = invoke_ok("exits");
    assert_string_equal(c, "c2");
    free(c);
}

static void test_runner_crash(void **state)
{
    (void)state;
    create_fn("crashes", 3);
    struct http_response r = invoke("crashes", "{\"mode\":\"crash\"}", NULL);
    char *rid = http_header(&r, "x-amzn-RequestId");
    cJSON *j = expect_function_error(&r);
    assert_string_equal(cJSON_GetObjectItem(j, "errorType")->valuestring, "Runtime.ExitError");
    char want[160];
    snprintf(want, sizeof(want), "RequestId: %s Error: Runtime exited without providing a reason",
             rid);
    assert_string_equal(cJSON_GetObjectItem(j, "errorMessage")->valuestring, want);
    cJSON_Delete(j);
    free(rid);
    assert_int_equal(snap().destroys, 1);
    char *c = invoke_ok("crashes");
    assert_string_equal(c, "c2");
    free(c);
}

static void kill_runner(struct harness *h, void *arg)
{
    (void)h;
    struct fake_container *fc = find_container(arg);
    assert_non_null(fc);
    ef_rpc_server_close(fc->srv);
    fc->srv = NULL;
}

static void test_idle_runner_dies(void **state)
{
    (void)state;
    create_fn("idle", 3);
    char *c = invoke_ok("idle");
    assert_string_equal(c, "c1");
    free(c);
    /* The runner goes away while its container is idle: the pool drops it at once. */
    harness_on_loop(&H, kill_runner, "c1");
    for (int i = 0; i < 300; i++) {
        cJSON *j = runtimes();
        int n = cJSON_GetArraySize(j);
        cJSON_Delete(j);
        if (n == 0)
            break;
        usleep(10 * 1000);
    }
    cJSON *j = runtimes();
    assert_int_equal(cJSON_GetArraySize(j), 0);
    cJSON_Delete(j);
    assert_int_equal(snap().destroys, 1);
    c = invoke_ok("idle");
    assert_string_equal(c, "c2");
    free(c);
}

static void test_container_exited_notification(void **state)
{
    (void)state;
    create_fn("dies", 3);
    char *c = invoke_ok("dies"); /* c1 is warm, and funclet's connection is known */
    free(c);
    struct http_response r = invoke("dies", "{\"mode\":\"exit_notify\"}", NULL);
    cJSON *j = expect_function_error(&r);
    assert_string_equal(cJSON_GetObjectItem(j, "errorType")->valuestring, "Runtime.ExitError");
    assert_non_null(strstr(cJSON_GetObjectItem(j, "errorMessage")->valuestring, "exit status 1"));
    cJSON_Delete(j);
    assert_int_equal(snap().destroys, 1);
    c = invoke_ok("dies");
    assert_string_equal(c, "c2");
    free(c);
}

struct bg_invoke {
    uv_thread_t thread;
    const char *name;
    const char *event;
    struct http_response r;
};

static void bg_invoke_run(void *arg)
{
    struct bg_invoke *b = arg;
    char path[128];
    snprintf(path, sizeof(path), "/2015-03-31/functions/%s/invocations", b->name);
    http_request(H.port, "POST", path, NULL, b->event, strlen(b->event), &b->r);
}

/* Waits until the pool holds `n` containers in `state`. */
static void wait_for_state(int n, const char *state)
{
    for (int i = 0; i < 300; i++) {
        cJSON *j = runtimes();
        int k = 0;
        cJSON *c;
        cJSON_ArrayForEach(c, j)
        {
            if (strcmp(cJSON_GetObjectItem(c, "state")->valuestring, state) == 0)
                k++;
        }
        cJSON_Delete(j);
        if (k == n)
            return;
        usleep(10 * 1000);
    }
    fail_msg("the pool never had %d %s container(s)", n, state);
}

static void set_max_containers(struct harness *h, void *arg)
{
    (void)h;
    F.max_containers = *(int *)arg;
}

static void test_no_capacity_is_429(void **state)
{
    (void)state;
    int one = 1;
    harness_on_loop(&H, set_max_containers, &one);
    create_fn("busy", 3);
    struct bg_invoke b = {.name = "busy", .event = "{\"mode\":\"delay\"}"};
    assert_int_equal(uv_thread_create(&b.thread, bg_invoke_run, &b), 0);
    wait_for_state(1, "busy");

    /* The only container is busy and funclet has no room for another one. */
    struct http_response r = invoke("busy", "{\"mode\":\"ok\"}", NULL);
    assert_int_equal(r.status, 429);
    char *t = http_header(&r, "x-amzn-ErrorType");
    assert_string_equal(t, "TooManyRequestsException");
    free(t);
    cJSON *j = cJSON_Parse(r.body);
    assert_string_equal(cJSON_GetObjectItem(j, "Reason")->valuestring,
                        "ConcurrentInvocationLimitExceeded");
    cJSON_Delete(j);
    http_response_free(&r);

    assert_int_equal(uv_thread_join(&b.thread), 0);
    assert_int_equal(b.r.status, 200);
    http_response_free(&b.r);
    /* Once it is free again, the container serves. */
    char *c = invoke_ok("busy");
    assert_string_equal(c, "c1");
    free(c);
}

static void test_client_disconnect_returns_container(void **state)
{
    (void)state;
    create_fn("gone", 3);
    /* Send an invocation and hang up at once. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)H.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    const char req[] = "POST /2015-03-31/functions/gone/invocations HTTP/1.1\r\nHost: x\r\n"
                       "Content-Length: 16\r\n\r\n{\"mode\":\"delay\"}";
    assert_int_equal(send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL), (ssize_t)(sizeof(req) - 1));
    wait_for_state(1, "busy");
    close(fd);

    /* The invocation completes unread and its container goes back to idle. */
    wait_for_state(1, "idle");
    char *c = invoke_ok("gone");
    assert_string_equal(c, "c1");
    free(c);
    struct snapshot s = snap();
    assert_int_equal(s.creates, 1);
    assert_int_equal(s.destroys, 0);
}

static void test_funclet_comes_up_late(void **state)
{
    (void)state;
    stop();
    start(false);
    create_fn("late", 3);
    struct http_response r = invoke("late", "{}", NULL);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "funclet"));
    http_response_free(&r);

    harness_on_loop(&H, fake_listen_on_loop, NULL);
    /* The controller retries every second. */
    bool connected = false;
    for (int i = 0; i < 300 && !connected; i++) {
        assert_int_equal(http_request(H.port, "GET", "/healthz", NULL, NULL, 0, &r), 0);
        connected = strstr(r.body, "\"connected\"") != NULL;
        http_response_free(&r);
        if (!connected)
            usleep(10 * 1000);
    }
    assert_true(connected);
    char *c = invoke_ok("late");
    assert_string_equal(c, "c1");
    free(c);
}

static void test_stop_during_invocation(void **state)
{
    (void)state;
    create_fn("stuck", 30);
    struct bg_invoke b = {.name = "stuck", .event = "{\"mode\":\"sleep\"}"};
    assert_int_equal(uv_thread_create(&b.thread, bg_invoke_run, &b), 0);
    wait_for_state(1, "busy");

    /* Stopping does not wait for the 30 s timeout: the client is disconnected and the busy
     * container destroyed at once. */
    double t0 = now_s();
    stop();
    assert_true(now_s() - t0 < 2.0);
    assert_int_equal(F.destroys, 1);
    assert_int_equal(uv_thread_join(&b.thread), 0);
    assert_int_not_equal(b.r.status, 200);
    http_response_free(&b.r);
    start(true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_warm_reuse_and_log_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_functions_do_not_share_containers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_function_error_keeps_container, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_destroys_container, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runtime_exit_destroys_container, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runner_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_runner_dies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_container_exited_notification, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_capacity_is_429, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_disconnect_returns_container, setup, teardown),
        cmocka_unit_test_setup_teardown(test_funclet_comes_up_late, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_during_invocation, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
