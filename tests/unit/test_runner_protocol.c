/* The controller's side of the runner protocol (docs/rpc.md, "runner methods"), over real
 * sockets: the real controller against a test peer playing funclet and the runners. Covered:
 * the runtime.exited notification (an idle container is never handed out again), the one retry
 * on a fresh container of an invocation that met a dead runtime before it was delivered (and
 * only then), an invocation refused by a runner draining after a timeout placed again elsewhere
 * (a bounded number of times), the "timeout" status with the runtime's output, X-Amz-Client-Context
 * passed on as client_context, Max Memory Used in REPORT, the function log read back with GET
 * /v1/functions/{name}/logs, a binary result sent as payload_b64 returned byte for byte (and a
 * malformed one refused; an Event's kept by size only), Duration and Init Duration split by the
 * runner's wait_ms, and a runtime.start that failed on the function's bootstrap answered as
 * Runtime.InvalidEntrypoint. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "controller/base64.h"
#include "fake_funclet.h"
#include "test_controller_harness.h"

/* How a fake runner answers `invoke` (the containers' fake_container.mode). */
enum mode {
    MODE_LIVE,     /* as the event's "mode" says */
    MODE_DEAD,     /* as a runtime that exited before it (delivered: false) */
    MODE_DRAINING, /* refused, as by a runner draining after a timeout */
};

static struct harness H;
static struct fake_funclet F;
static cJSON *last_invoke; /* the params of the last invoke */

/* ---- the runners ---- */

static cJSON *answer(const char *status, const char *type, const char *payload, const char *log,
                     bool delivered)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "status", status);
    cJSON_AddStringToObject(r, "payload", payload);
    if (type)
        cJSON_AddStringToObject(r, "error_type", type);
    cJSON_AddStringToObject(r, "log", log);
    cJSON_AddBoolToObject(r, "delivered", delivered);
    cJSON_AddNumberToObject(r, "max_memory_used_mb", 33);
    return r;
}

/* The bytes of a binary result: every byte value, NUL included, over `len` bytes. */
static unsigned char *binary_body(size_t len)
{
    unsigned char *b = malloc(len);
    for (size_t i = 0; i < len; i++)
        b[i] = (unsigned char)(i * 7 + i / 256);
    return b;
}

/* The answers of the modes that test payload_b64 and wait_ms; false for other modes. The
 * runner's work is simulated by a sleep before the answer ("sleep_ms"), of which it says it
 * waited "wait_ms" before its runtime took the event. */
static bool binary_answer(ef_rpc_request *req, const char *mode, const cJSON *event)
{
    const cJSON *sleep_ms = cJSON_GetObjectItem(event, "sleep_ms");
    const cJSON *wait_ms = cJSON_GetObjectItem(event, "wait_ms");
    const cJSON *size = cJSON_GetObjectItem(event, "size");
    if (cJSON_IsNumber(sleep_ms))
        usleep((useconds_t)sleep_ms->valueint * 1000);
    cJSON *r = NULL;
    if (strcmp(mode, "b64") == 0 || strcmp(mode, "b64_error") == 0) {
        size_t len = cJSON_IsNumber(size) ? (size_t)size->valuedouble : 1000;
        unsigned char *b = binary_body(len);
        char *text = ef_base64_encode(b, len);
        free(b);
        r = answer(strcmp(mode, "b64") == 0 ? "ok" : "error", NULL, "", "binary\n", true);
        cJSON_DeleteItemFromObject(r, "payload");
        cJSON_AddStringToObject(r, "payload_b64", text);
        free(text);
    } else if (strncmp(mode, "b64_bad:", 8) == 0) {
        r = answer("ok", NULL, "", "", true);
        cJSON_DeleteItemFromObject(r, "payload");
        cJSON_AddStringToObject(r, "payload_b64", mode + 8);
    } else if (strcmp(mode, "b64_both") == 0) {
        r = answer("ok", NULL, "{}", "", true);
        cJSON_AddStringToObject(r, "payload_b64", "e30=");
    } else if (strcmp(mode, "text") == 0) {
        r = answer("ok", NULL, "{\"done\":true}", "", true);
    } else {
        return false;
    }
    if (cJSON_IsNumber(wait_ms))
        cJSON_AddNumberToObject(r, "wait_ms", wait_ms->valuedouble);
    ef_rpc_reply(req, r);
    return true;
}

static void runner_invoke(struct fake_container *fc, ef_rpc_conn *conn, ef_rpc_request *req,
                          const cJSON *params)
{
    cJSON_Delete(last_invoke);
    last_invoke = cJSON_Duplicate(params, 1);
    if (fc->mode == MODE_DRAINING) {
        cJSON *data = cJSON_CreateObject();
        cJSON_AddTrueToObject(data, "draining");
        ef_rpc_reply_error(req, EF_RPC_ERR_BUSY, data, "an invocation timed out in this runtime");
        return;
    }
    if (fc->mode == MODE_DEAD) {
        ef_rpc_reply(req,
                     answer("error", "Runtime.ExitError",
                            "{\"errorType\":\"Runtime.ExitError\",\"errorMessage\":\"RequestId:"
                            " x Error: Runtime exited with error: exit status 0\"}",
                            "", false));
        return;
    }
    cJSON *event = cJSON_Parse(cJSON_GetObjectItem(params, "payload")->valuestring);
    const cJSON *m = cJSON_GetObjectItem(event, "mode");
    const char *mode = cJSON_IsString(m) ? m->valuestring : "ok";
    if (binary_answer(req, mode, event)) {
        cJSON_Delete(event);
        return;
    }
    char payload[64], log[64];
    snprintf(payload, sizeof(payload), "{\"container\":\"%s\"}", fc->id);
    snprintf(log, sizeof(log), "line from %s\n", fc->id);
    if (strcmp(mode, "timeout") == 0) {
        ef_rpc_reply(req, answer("timeout", "Sandbox.Timedout", "{}", "working on it\n", true));
    } else {
        ef_rpc_reply(req, answer("ok", NULL, payload, log, true));
        if (strcmp(mode, "exit_after") == 0) {
            /* The runtime ends right after answering; the runner says so. */
            fake_runner_exited(conn, "exit status 0");
        }
    }
    cJSON_Delete(event);
}

/* Functions named for it fail to start, as the runner words it and with its error data
 * (runner/init.c, docs/rpc.md); "old" ones with the words only. Others start. */
static bool runner_start(struct fake_container *fc, ef_rpc_request *req, const cJSON *params)
{
    (void)fc;
    const char *name = cJSON_GetObjectItem(params, "function_name")->valuestring;
    /* A runner that cannot start another runtime (its previous one still runs). */
    if (strncmp(name, "busy", 4) == 0) {
        ef_rpc_reply_error(req, EF_RPC_ERR_BUSY, NULL, "a runtime is still running");
        return true;
    }
    static const struct {
        const char *prefix, *step, *errno_name, *text;
    } failures[] = {
        {"noboot", "execve", "ENOENT", "No such file or directory"},
        {"noexec", "execve", "EACCES", "Permission denied"},
        {"badarch", "execve", "ENOEXEC", "Exec format error"},
        {"nouser", "setresuid", "EPERM", "Operation not permitted"},
        {"old", "execve", "ENOENT", "No such file or directory"},
    };
    for (size_t i = 0; i < sizeof(failures) / sizeof(failures[0]); i++) {
        if (strncmp(name, failures[i].prefix, strlen(failures[i].prefix)) != 0)
            continue;
        const char *path =
            strstr(name, "py") ? "/var/runtime/python/bootstrap" : "/var/task/bootstrap";
        cJSON *data = NULL;
        if (strcmp(failures[i].prefix, "old") != 0) {
            data = cJSON_CreateObject();
            cJSON_AddStringToObject(data, "step", failures[i].step);
            cJSON_AddStringToObject(data, "errno", failures[i].errno_name);
            cJSON_AddStringToObject(data, "path", path);
        }
        ef_rpc_reply_error(req, EF_RPC_ERR_SYSTEM, data, "cannot start %s: %s: %s", path,
                           failures[i].step, failures[i].text);
        return true;
    }
    return false;
}

static const struct fake_runner_ops runner_ops = {.invoke = runner_invoke, .start = runner_start};

static int setup(void **state)
{
    (void)state;
    fake_funclet_start(&F, &H, &runner_ops);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fake_funclet_stop(&F);
    cJSON_Delete(last_invoke);
    last_invoke = NULL;
    return 0;
}

/* ---- helpers ---- */

static void copy_client_context(struct harness *h, void *arg)
{
    (void)h;
    const cJSON *cc = cJSON_GetObjectItem(last_invoke, "client_context");
    snprintf(arg, 256, "%s", cJSON_IsString(cc) ? cc->valuestring : "(none)");
}

static void create_fn_as(const char *name, const char *runtime, int timeout_s)
{
    char *b = create_body(name, runtime, "lambda_function.lambda_handler", timeout_s);
    harness_create_function(&H, name, b);
    free(b);
}

static void create_fn(const char *name, int timeout_s)
{
    create_fn_as(name, "python3.12", timeout_s);
}

static struct http_response invoke(const char *name, const char *event, const char *headers)
{
    char path[128];
    snprintf(path, sizeof(path), "/2015-03-31/functions/%s/invocations", name);
    struct http_response r;
    assert_int_equal(http_request(H.port, "POST", path, headers, event, strlen(event), &r), 0);
    return r;
}

/* Invokes with `event`, expects success, returns the container that served it (static). */
static const char *invoke_ok(const char *name, const char *event)
{
    static char container[16];
    struct http_response r = invoke(name, event, NULL);
    if (r.status != 200)
        fail_msg("invoke %s: %d %s", name, r.status, r.body);
    char *fe = http_header(&r, "X-Amz-Function-Error");
    if (fe)
        fail_msg("invoke %s failed: %s", name, r.body);
    cJSON *j = cJSON_Parse(r.body);
    snprintf(container, sizeof(container), "%s", cJSON_GetObjectItem(j, "container")->valuestring);
    cJSON_Delete(j);
    http_response_free(&r);
    return container;
}

static void get(const char *path, struct http_response *r)
{
    assert_int_equal(http_request(H.port, "GET", path, NULL, NULL, 0, r), 0);
}

/* ---- tests ---- */

static void test_runtime_exited_notice_retires_idle_container(void **state)
{
    (void)state;
    create_fn("fn", 3);
    assert_string_equal(invoke_ok("fn", "{\"mode\":\"exit_after\"}"), "c1");
    /* c1 announced its runtime's end after answering: the next call goes elsewhere at once. */
    fake_funclet_wait_destroys(&F, 1);
    assert_string_equal(invoke_ok("fn", "{}"), "c2");
    struct fake_counts c = fake_funclet_counts(&F);
    assert_int_equal(c.creates, 2);
    assert_int_equal(c.destroys, 1);
    assert_int_equal(c.invokes, 2); /* c1 was never sent the second invocation */
}

static void test_invocation_moves_once_from_a_dead_runtime(void **state)
{
    (void)state;
    create_fn("fn", 3);
    assert_string_equal(invoke_ok("fn", "{}"), "c1");
    /* c1's runtime died and the notice has not arrived: c1 answers "not delivered". */
    fake_funclet_set_mode(&F, "c1", MODE_DEAD);
    assert_string_equal(invoke_ok("fn", "{}"), "c2");
    struct fake_counts c = fake_funclet_counts(&F);
    assert_int_equal(c.creates, 2);
    assert_int_equal(c.destroys, 1);
    assert_int_equal(c.invokes, 3);

    /* Only once: when the fresh container is dead too, the caller gets the runtime's exit. */
    fake_funclet_set_mode(&F, "c2", MODE_DEAD);
    fake_funclet_set_new_mode(&F, MODE_DEAD);
    struct http_response r = invoke("fn", "{}", NULL);
    assert_int_equal(r.status, 200);
    char *fe = http_header(&r, "X-Amz-Function-Error");
    assert_non_null(fe);
    free(fe);
    assert_non_null(strstr(r.body, "Runtime.ExitError"));
    http_response_free(&r);
    c = fake_funclet_counts(&F);
    assert_int_equal(c.creates, 3);
    assert_int_equal(c.invokes, 5);

    /* A cold container's own failure is not retried: it is this invocation's result. */
    create_fn("cold", 3);
    r = invoke("cold", "{}", NULL);
    assert_non_null(strstr(r.body, "Runtime.ExitError"));
    http_response_free(&r);
    c = fake_funclet_counts(&F);
    assert_int_equal(c.creates, 4);
    assert_int_equal(c.invokes, 6);
}

static void test_invocation_refused_by_a_draining_runner_goes_elsewhere(void **state)
{
    (void)state;
    create_fn("fn", 3);
    assert_string_equal(invoke_ok("fn", "{}"), "c1");
    /* An invocation timed out in c1 and its runner drains; this invocation was sent before the
     * controller heard of it. The runner refuses it: it runs on a new container, and c1, with
     * nothing left in flight, is destroyed. */
    fake_funclet_set_mode(&F, "c1", MODE_DRAINING);
    assert_string_equal(invoke_ok("fn", "{}"), "c2");
    struct fake_counts c = fake_funclet_counts(&F);
    assert_int_equal(c.creates, 2);
    assert_int_equal(c.invokes, 3);
    assert_int_equal(fake_funclet_wait_destroys(&F, 1), 1);

    /* Bounded: when every container refuses, the caller gets a service error, not a loop. */
    fake_funclet_set_mode(&F, "c2", MODE_DRAINING);
    fake_funclet_set_new_mode(&F, MODE_DRAINING);
    struct http_response r = invoke("fn", "{}", NULL);
    assert_int_equal(r.status, 500);
    assert_non_null(strstr(r.body, "ending after a timeout"));
    http_response_free(&r);
    c = fake_funclet_counts(&F);
    assert_int_equal(c.creates, 5); /* c2 refused, then c3, c4 and c5 */
    assert_int_equal(c.invokes, 7);
}

static void test_timeout_status_keeps_the_output(void **state)
{
    (void)state;
    create_fn("slow", 1);
    struct http_response r = invoke("slow", "{\"mode\":\"timeout\"}", "X-Amz-Log-Type: Tail\r\n");
    assert_int_equal(r.status, 200);
    char *fe = http_header(&r, "X-Amz-Function-Error");
    assert_string_equal(fe, "Unhandled");
    free(fe);
    cJSON *doc = cJSON_Parse(r.body);
    const char *msg = cJSON_GetObjectItem(doc, "errorMessage")->valuestring;
    assert_non_null(strstr(msg, " Task timed out after 1.00 seconds"));
    assert_null(cJSON_GetObjectItem(doc, "errorType"));
    cJSON_Delete(doc);
    char *b64 = http_header(&r, "X-Amz-Log-Result");
    assert_non_null(b64);
    unsigned char *log = NULL;
    size_t len = 0;
    assert_int_equal(ef_base64_decode(b64, strlen(b64), &log, &len), 0);
    assert_non_null(strstr((char *)log, "working on it\n"));
    assert_non_null(strstr((char *)log, "Task timed out after 1.00 seconds\nEND RequestId: "));
    assert_non_null(strstr((char *)log, "\tStatus: timeout\t"));
    free(log);
    free(b64);
    http_response_free(&r);
    assert_int_equal(fake_funclet_wait_destroys(&F, 1), 1);
}

static void test_client_context(void **state)
{
    (void)state;
    create_fn("fn", 3);
    const char *doc = "{\n  \"custom\": {\"k\": \"v\xc3\xa9 \xf0\x9f\x98\x80\"},\n  \"env\": {}\n}";
    char *b64 = ef_base64_encode(doc, strlen(doc));
    char headers[512], cc[256];
    snprintf(headers, sizeof(headers), "X-Amz-Client-Context: %s\r\n", b64);
    free(b64);
    struct http_response r = invoke("fn", "{}", headers);
    assert_int_equal(r.status, 200);
    http_response_free(&r);
    harness_on_loop(&H, copy_client_context, cc);
    /* Compact, and printable ASCII: it travels to the runtime in a header. */
    assert_string_equal(cc, "{\"custom\":{\"k\":\"v\\u00e9 \\ud83d\\ude00\"},\"env\":{}}");
    r = invoke("fn", "{}", NULL);
    http_response_free(&r);
    harness_on_loop(&H, copy_client_context, cc);
    assert_string_equal(cc, "(none)");

    const char *bad[] = {
        "X-Amz-Client-Context: not base64!\r\n",
        "X-Amz-Client-Context: WzEsMl0=\r\n",     /* [1,2]: not an object */
        "X-Amz-Client-Context: eyJhIjoi/yJ9\r\n", /* {"a":"\xff"}: not UTF-8 */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = invoke("fn", "{}", bad[i]);
        assert_int_equal(r.status, 400);
        char *type = http_header(&r, "x-amzn-ErrorType");
        assert_string_equal(type, "InvalidRequestContentException");
        free(type);
        http_response_free(&r);
    }
    /* Lambda's limit is 3583 bytes of base64. */
    char *big = malloc(4000);
    memset(big, 'A', 3584);
    big[3584] = '\0';
    char *h = NULL;
    assert_true(asprintf(&h, "X-Amz-Client-Context: %s\r\n", big) > 0);
    r = invoke("fn", "{}", h);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "3583"));
    http_response_free(&r);
    free(h);
    free(big);
}

static void test_function_log(void **state)
{
    (void)state;
    create_fn("fn", 3);
    create_fn("quiet", 3);
    struct http_response r;
    get("/v1/functions/fn/logs", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0); /* created, never run */
    http_response_free(&r);

    for (int i = 0; i < 3; i++) {
        r = invoke("fn", "{}", "X-Amz-Log-Type: Tail\r\n");
        assert_int_equal(r.status, 200);
        http_response_free(&r);
    }
    r = invoke("fn", "{}", "X-Amz-Log-Type: Tail\r\n");
    char *b64 = http_header(&r, "X-Amz-Log-Result");
    char *rid = http_header(&r, "x-amzn-RequestId");
    http_response_free(&r);
    unsigned char *tail = NULL;
    size_t tail_len = 0;
    assert_int_equal(ef_base64_decode(b64, strlen(b64), &tail, &tail_len), 0);

    get("/v1/functions/fn/logs?tail=100", &r);
    assert_int_equal(r.status, 200);
    char *ct = http_header(&r, "Content-Type");
    assert_non_null(strstr(ct, "text/plain"));
    free(ct);
    /* Four entries of four lines: START, the output, END, REPORT... */
    size_t lines = 0;
    for (size_t i = 0; i < r.body_len; i++)
        lines += r.body[i] == '\n';
    assert_int_equal(lines, 16);
    assert_true(strncmp(r.body, "START RequestId: ", 17) == 0);
    assert_non_null(strstr(r.body, "line from c1\nEND RequestId: "));
    assert_non_null(strstr(r.body, "\tMemory Size: 128 MB\tMax Memory Used: 33 MB\t"));
    /* ...and the Tail of the last invocation is the end of the stored log. */
    assert_true(r.body_len >= tail_len);
    assert_memory_equal(r.body + r.body_len - tail_len, tail, tail_len);
    assert_non_null(strstr((char *)tail, rid));
    http_response_free(&r);
    free(tail);
    free(b64);
    free(rid);

    get("/v1/functions/fn/logs?tail=2", &r);
    assert_int_equal(r.status, 200);
    assert_true(strncmp(r.body, "END RequestId: ", 15) == 0);
    assert_non_null(strstr(r.body, "\nREPORT RequestId: "));
    http_response_free(&r);

    const char *bad[] = {"?tail=0", "?tail=x", "?tail=10001", "?tail=-1", "?tail="};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char path[64];
        snprintf(path, sizeof(path), "/v1/functions/fn/logs%s", bad[i]);
        get(path, &r);
        assert_int_equal(r.status, 400);
        http_response_free(&r);
    }
    get("/v1/functions/nosuch/logs", &r);
    assert_int_equal(r.status, 404);
    http_response_free(&r);
    get("/v1/functions/bad%2Fname/logs", &r);
    assert_int_equal(r.status, 400);
    http_response_free(&r);
    assert_int_equal(http_request(H.port, "POST", "/v1/functions/fn/logs", NULL, "", 0, &r), 0);
    assert_int_equal(r.status, 405);
    http_response_free(&r);
    get("/v1/functions/quiet/logs?tail=5", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    http_response_free(&r);
}

/* The REPORT line of an invocation's Tail (X-Amz-Log-Result), malloc'd. */
static char *report_of(struct http_response *r)
{
    char *b64 = http_header(r, "X-Amz-Log-Result");
    assert_non_null(b64);
    unsigned char *log = NULL;
    size_t len = 0;
    assert_int_equal(ef_base64_decode(b64, strlen(b64), &log, &len), 0);
    free(b64);
    char *rep = strstr((char *)log, "REPORT RequestId: ");
    assert_non_null(rep);
    char *line = strdup(rep);
    free(log);
    return line;
}

/* The value of REPORT's `field` ("Duration: "), or -1 when it is absent. */
static double report_field(const char *report, const char *field)
{
    char key[64];
    snprintf(key, sizeof(key), "\t%s", field);
    const char *at = strstr(report, key);
    return at ? strtod(at + strlen(key), NULL) : -1;
}

static void test_binary_payload(void **state)
{
    (void)state;
    create_fn("bin", 3);
    /* 3,000,000 bytes of every value: as JSON text (\u0001 and so on) it would not fit the
     * runner's message; as base64 it does, and comes back exactly. */
    struct http_response r = invoke("bin", "{\"mode\":\"b64\",\"size\":3000000}", NULL);
    assert_int_equal(r.status, 200);
    char *fe = http_header(&r, "X-Amz-Function-Error");
    assert_null(fe);
    unsigned char *want = binary_body(3000000);
    assert_int_equal(r.body_len, 3000000);
    assert_memory_equal(r.body, want, 3000000);
    free(want);
    http_response_free(&r);

    /* A function error whose document is binary: the bytes, as a function error. */
    r = invoke("bin", "{\"mode\":\"b64_error\",\"size\":300}", "X-Amz-Log-Type: Tail\r\n");
    assert_int_equal(r.status, 200);
    fe = http_header(&r, "X-Amz-Function-Error");
    assert_string_equal(fe, "Unhandled");
    free(fe);
    want = binary_body(300);
    assert_int_equal(r.body_len, 300);
    assert_memory_equal(r.body, want, 300);
    free(want);
    /* The log is the runtime's output as before. */
    char *b64 = http_header(&r, "X-Amz-Log-Result");
    unsigned char *log = NULL;
    size_t len = 0;
    assert_int_equal(ef_base64_decode(b64, strlen(b64), &log, &len), 0);
    assert_non_null(strstr((char *)log, "\nbinary\nEND RequestId: "));
    free(log);
    free(b64);
    http_response_free(&r);
    /* An empty body is empty base64. */
    r = invoke("bin", "{\"mode\":\"b64\",\"size\":0}", NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    http_response_free(&r);
    struct fake_counts c = fake_funclet_counts(&F);
    assert_int_equal(c.creates, 1);
    assert_int_equal(c.destroys, 0);

    /* A malformed answer is the runner's fault: 500, and its container goes. */
    const char *bad[] = {
        "{\"mode\":\"b64_bad:not base64!\"}", "{\"mode\":\"b64_bad:QUJD RA==\"}",
        "{\"mode\":\"b64_bad:QUJDRA\"}",      "{\"mode\":\"b64_bad:QU=DRA==\"}",
        "{\"mode\":\"b64_bad:QUJDR===\"}",    "{\"mode\":\"b64_both\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = invoke("bin", bad[i], NULL);
        expect_lambda_error(&r, 500, "ServiceException", "malformed");
        assert_int_equal(fake_funclet_wait_destroys(&F, (int)i + 1), (int)i + 1);
    }
    /* A well-formed one after them still works, on a new container. */
    r = invoke("bin", "{\"mode\":\"b64_bad:QUJDRA==\"}", NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 4);
    assert_memory_equal(r.body, "ABCD", 4);
    http_response_free(&r);
}

static void test_wait_ms_is_init(void **state)
{
    (void)state;
    create_fn("slowinit", 3);
    const char *tail = "X-Amz-Log-Type: Tail\r\n";
    /* Cold: the runner waited 300 of its 400 ms for the runtime's init. */
    struct http_response r =
        invoke("slowinit", "{\"mode\":\"text\",\"sleep_ms\":400,\"wait_ms\":300}", tail);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"done\":true}");
    char *rep = report_of(&r);
    double d = report_field(rep, "Duration: "), init = report_field(rep, "Init Duration: ");
    double billed = report_field(rep, "Billed Duration: ");
    if (d < 100 || d > 250 || init < 300)
        fail_msg("cold: Duration %.2f, Init Duration %.2f: %s", d, init, rep);
    assert_true(billed >= d && billed < d + 1);
    free(rep);
    http_response_free(&r);

    /* Warm: no init, and a wait (here none) is not counted. */
    r = invoke("slowinit", "{\"mode\":\"text\",\"sleep_ms\":100,\"wait_ms\":0}", tail);
    rep = report_of(&r);
    d = report_field(rep, "Duration: ");
    if (d < 100 || d > 250 || report_field(rep, "Init Duration: ") >= 0)
        fail_msg("warm: %s", rep);
    free(rep);
    http_response_free(&r);

    /* An older runner without wait_ms: the round trip, as before. */
    r = invoke("slowinit", "{\"mode\":\"text\",\"sleep_ms\":200}", tail);
    rep = report_of(&r);
    d = report_field(rep, "Duration: ");
    if (d < 200 || d > 350)
        fail_msg("no wait_ms: %s", rep);
    free(rep);
    http_response_free(&r);

    /* A wait longer than the round trip is cut to it (no negative Duration); a wait that is
     * not a number is ignored. */
    r = invoke("slowinit", "{\"mode\":\"text\",\"sleep_ms\":10,\"wait_ms\":99999}", tail);
    rep = report_of(&r);
    assert_non_null(strstr(rep, "\tDuration: 0.00 ms\tBilled Duration: 1 ms\t"));
    free(rep);
    http_response_free(&r);
    r = invoke("slowinit", "{\"mode\":\"text\",\"sleep_ms\":100,\"wait_ms\":-5}", tail);
    rep = report_of(&r);
    d = report_field(rep, "Duration: ");
    if (d < 100)
        fail_msg("negative wait_ms: %s", rep);
    free(rep);
    http_response_free(&r);
}

/* Invokes `name`, expects Runtime.InvalidEntrypoint with `message` after "Error: ". */
static void expect_invalid_entrypoint(const char *name, const char *message)
{
    struct http_response r = invoke(name, "{}", "X-Amz-Log-Type: Tail\r\n");
    if (r.status != 200)
        fail_msg("%s: %d %s", name, r.status, r.body);
    char *fe = http_header(&r, "X-Amz-Function-Error");
    assert_string_equal(fe, "Unhandled");
    free(fe);
    char *rid = http_header(&r, "x-amzn-RequestId");
    cJSON *doc = cJSON_Parse(r.body);
    assert_string_equal(cJSON_GetObjectItem(doc, "errorType")->valuestring,
                        "Runtime.InvalidEntrypoint");
    char want[512];
    snprintf(want, sizeof(want), "RequestId: %s Error: %s", rid, message);
    assert_string_equal(cJSON_GetObjectItem(doc, "errorMessage")->valuestring, want);
    cJSON_Delete(doc);
    char *rep = report_of(&r);
    assert_non_null(strstr(rep, "\tStatus: error\tError Type: Runtime.InvalidEntrypoint"));
    assert_true(report_field(rep, "Init Duration: ") > 0);
    free(rep);
    free(rid);
    http_response_free(&r);
}

static void test_invalid_entrypoint(void **state)
{
    (void)state;
    create_fn_as("noboot", "provided.al2023", 3);
    create_fn_as("noexec", "provided.al2023", 3);
    create_fn_as("badarch", "provided.al2", 3);
    create_fn_as("nouser", "provided.al2023", 3);
    create_fn_as("noboot-py", "python3.12", 3);
    create_fn_as("oldboot", "provided.al2023", 3);
    expect_invalid_entrypoint("noboot", "Couldn't find valid bootstrap(s): [/var/task/bootstrap]");
    expect_invalid_entrypoint("noexec", "fork/exec /var/task/bootstrap: permission denied");
    expect_invalid_entrypoint("badarch", "fork/exec /var/task/bootstrap: exec format error");
    /* Each failed start discarded its container: none is kept as if it were healthy. */
    fake_funclet_wait_destroys(&F, 3);
    struct fake_counts c = fake_funclet_counts(&F);
    assert_int_equal(c.creates, 3);
    assert_int_equal(c.destroys, 3);
    assert_int_equal(c.invokes, 0);
    /* Again: a new container each time, as Lambda tries the init again. */
    expect_invalid_entrypoint("noboot", "Couldn't find valid bootstrap(s): [/var/task/bootstrap]");
    assert_int_equal(fake_funclet_counts(&F).creates, 4);

    /* Not the function's fault: a step before execve, or the pod's own Python runtime. */
    struct http_response r = invoke("nouser", "{}", NULL);
    expect_lambda_error(&r, 500, "ServiceException", "setresuid: Operation not permitted");
    r = invoke("noboot-py", "{}", NULL);
    expect_lambda_error(&r, 500, "ServiceException",
                        "/var/runtime/python/bootstrap: execve: No such file or directory");
    /* The cause is read from the error's data, never from its words: without data, the same
     * message is the service's failure. */
    r = invoke("oldboot", "{}", NULL);
    expect_lambda_error(&r, 500, "ServiceException",
                        "/var/task/bootstrap: execve: No such file or directory");

    /* Runners that refuse to start the runtime, on the container and on the one tried next:
     * the service's failure (500), not a throttle the client should back off from (429). */
    create_fn_as("busyfn", "python3.12", 3);
    r = invoke("busyfn", "{}", NULL);
    expect_lambda_error(&r, 500, "ServiceException", "refused to start the runtime");

    /* The function's log has the error, as Lambda's has. */
    get("/v1/functions/noexec/logs?tail=10", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "Error: fork/exec /var/task/bootstrap: permission denied\n"
                                   "Runtime.InvalidEntrypoint\nEND RequestId: "));
    http_response_free(&r);
}

/* Sends `event` as an Event invocation of `name` and returns its status document once it has
 * succeeded. */
static cJSON *event_result(const char *name, const char *event)
{
    struct http_response r = invoke(name, event, "X-Amz-Invocation-Type: Event\r\n");
    assert_int_equal(r.status, 202);
    char *rid = http_header(&r, "x-amzn-RequestId");
    http_response_free(&r);
    char path[128];
    snprintf(path, sizeof(path), "/v1/invocations/%s", rid);
    free(rid);
    for (int i = 0; i < 250; i++) {
        get(path, &r);
        assert_int_equal(r.status, 200);
        cJSON *doc = cJSON_Parse(r.body);
        http_response_free(&r);
        if (strcmp(cJSON_GetObjectItem(doc, "Status")->valuestring, "succeeded") == 0)
            return doc;
        cJSON_Delete(doc);
        usleep(20 * 1000);
    }
    fail_msg("event %s did not succeed", event);
    return NULL;
}

static void test_binary_event_result(void **state)
{
    (void)state;
    create_fn("bin", 3);
    /* A binary result is not kept as text: Result null, ResultSize its bytes. */
    cJSON *doc = event_result("bin", "{\"mode\":\"b64\",\"size\":1000}");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(doc, "Result")));
    assert_int_equal(cJSON_GetObjectItem(doc, "ResultSize")->valueint, 1000);
    cJSON_Delete(doc);
    /* UTF-8 sent as base64 (the runner does so for control bytes) is kept as it is. */
    doc = event_result("bin", "{\"mode\":\"b64_bad:4pyTAQ==\"}"); /* U+2713, then 0x01 */
    const cJSON *res = cJSON_GetObjectItem(doc, "Result");
    assert_true(cJSON_IsString(res));
    assert_string_equal(res->valuestring, "\xe2\x9c\x93\x01");
    assert_int_equal(cJSON_GetObjectItem(doc, "ResultSize")->valueint, 4);
    cJSON_Delete(doc);
    /* Text results as before. */
    doc = event_result("bin", "{\"mode\":\"text\"}");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "Result"), "done")));
    cJSON_Delete(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_runtime_exited_notice_retires_idle_container, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_invocation_moves_once_from_a_dead_runtime, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_invocation_refused_by_a_draining_runner_goes_elsewhere,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_status_keeps_the_output, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_context, setup, teardown),
        cmocka_unit_test_setup_teardown(test_function_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_payload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_event_result, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_ms_is_init, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_entrypoint, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
