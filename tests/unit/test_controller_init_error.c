/* The controller against runners whose runtime failed its init (docs/rpc.md, `invoke`: the
 * "init_error" and "late" marks), over real sockets: the real controller, a test peer playing
 * funclet and the runners. Covered: a container whose answer says its init failed is never handed
 * out again, even before runtime.exited arrives (which then discards it); an invocation that
 * reached a warm container after the init error had been answered to another one ("late", not
 * delivered) is placed once more, on a new container; one that the runtime took ("delivered"), one
 * that started the container itself, and one already placed again get the init error. */
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

#include "common/rpc.h"
#include "test_controller_harness.h"

/* How a fake runner answers `invoke`. */
enum mode {
    MODE_OK,          /* {"container": "<id>"} */
    MODE_INIT_ERROR,  /* the init error that this invocation waited for */
    MODE_LATE,        /* the init error, answered before to another invocation: late */
    MODE_LATE_HANDED, /* late, but the runtime took it (delivered): must not run again */
};

struct fake_container {
    char id[16];
    char sock[160];
    ef_rpc_server *srv;
    ef_rpc_conn *conn; /* the controller's connection, for runtime.exited */
    enum mode mode;
    int invokes;
    bool destroyed;
    struct fake_container *next;
};

static struct harness H;
static struct {
    ef_rpc_server *funclet;
    int creates, destroys;
    enum mode new_mode; /* of the containers created from now on */
    struct fake_container *containers;
} F;

static const char init_doc[] =
    "{\"errorMessage\":\"Unable to import module 'app'\",\"errorType\":\"Runtime."
    "ImportModuleError\"}";

static void runner_invoke(struct fake_container *fc, ef_rpc_request *req)
{
    fc->invokes++;
    cJSON *r = cJSON_CreateObject();
    if (fc->mode == MODE_OK) {
        char payload[64];
        snprintf(payload, sizeof(payload), "{\"container\":\"%s\"}", fc->id);
        cJSON_AddStringToObject(r, "status", "ok");
        cJSON_AddStringToObject(r, "payload", payload);
        cJSON_AddStringToObject(r, "log", "");
        cJSON_AddTrueToObject(r, "delivered");
    } else {
        cJSON_AddStringToObject(r, "status", "error");
        cJSON_AddStringToObject(r, "error_type", "Runtime.ImportModuleError");
        cJSON_AddStringToObject(r, "payload", init_doc);
        cJSON_AddStringToObject(r, "log", "");
        cJSON_AddBoolToObject(r, "delivered", fc->mode == MODE_LATE_HANDED);
        cJSON_AddTrueToObject(r, "init_error");
        if (fc->mode != MODE_INIT_ERROR)
            cJSON_AddTrueToObject(r, "late");
    }
    ef_rpc_reply(req, r);
}

static void runner_request(ef_rpc_conn *conn, ef_rpc_request *req, const char *method,
                           const cJSON *params, void *user)
{
    (void)params;
    struct fake_container *fc = user;
    fc->conn = conn;
    if (strcmp(method, "runtime.start") == 0) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddNumberToObject(r, "pid", 2);
        ef_rpc_reply(req, r);
    } else if (strcmp(method, "invoke") == 0) {
        runner_invoke(fc, req);
    } else {
        ef_rpc_reply_error(req, EF_RPC_METHOD_NOT_FOUND, NULL, "no method %s", method);
    }
}

static const struct ef_rpc_handlers runner_handlers = {.on_request = runner_request};

static void funclet_request(ef_rpc_conn *conn, ef_rpc_request *req, const char *method,
                            const cJSON *params, void *user)
{
    (void)conn;
    (void)user;
    if (strcmp(method, "container.create") == 0) {
        struct fake_container *fc = calloc(1, sizeof(*fc));
        F.creates++;
        fc->mode = F.new_mode;
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
        for (struct fake_container *fc = F.containers; fc; fc = fc->next) {
            if (cJSON_IsString(id) && strcmp(fc->id, id->valuestring) == 0 && !fc->destroyed) {
                fc->destroyed = true;
                fc->conn = NULL;
                F.destroys++;
                ef_rpc_server_close(fc->srv);
                fc->srv = NULL;
                ef_rpc_reply(req, NULL);
                return;
            }
        }
        ef_rpc_reply_error(req, EF_RPC_ERR_NOT_FOUND, NULL, "no container");
    } else {
        ef_rpc_reply_error(req, EF_RPC_METHOD_NOT_FOUND, NULL, "no method %s", method);
    }
}

static const struct ef_rpc_handlers funclet_handlers = {.on_request = funclet_request};

static void fake_listen(struct harness *h)
{
    ef_error err = {0};
    if (ef_rpc_server_listen(&h->loop, h->funclet_socket, -1, 0600, &funclet_handlers, NULL,
                             &F.funclet, &err) < 0)
        fail_msg("funclet socket: %s", err.msg);
}

static void fake_stop(struct harness *h)
{
    (void)h;
    if (F.funclet)
        ef_rpc_server_close(F.funclet);
    F.funclet = NULL;
    for (struct fake_container *fc = F.containers; fc; fc = fc->next)
        if (fc->srv) {
            ef_rpc_server_close(fc->srv);
            fc->srv = NULL;
        }
}

static int setup(void **state)
{
    (void)state;
    memset(&H, 0, sizeof(H));
    memset(&F, 0, sizeof(F));
    H.on_stopped = fake_stop;
    harness_start(&H, 0, fake_listen);
    char *b = create_body("fn", "python3.12", "app.handler", 3);
    struct http_response r;
    assert_int_equal(http_request(H.port, "POST", "/2015-03-31/functions", NULL, b, strlen(b), &r),
                     0);
    if (r.status != 201)
        fail_msg("create fn: %d %s", r.status, r.body);
    http_response_free(&r);
    free(b);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    harness_stop(&H, false);
    while (F.containers) {
        struct fake_container *fc = F.containers;
        F.containers = fc->next;
        free(fc);
    }
    return 0;
}

/* ---- helpers (every F access happens on the loop thread) ---- */

struct state {
    int creates, destroys;
    int invokes[8]; /* of c1..c8 */
};

static void read_state(struct harness *h, void *arg)
{
    (void)h;
    struct state *s = arg;
    memset(s, 0, sizeof(*s));
    s->creates = F.creates;
    s->destroys = F.destroys;
    for (struct fake_container *fc = F.containers; fc; fc = fc->next) {
        int n = atoi(fc->id + 1);
        if (n >= 1 && n <= 8)
            s->invokes[n - 1] = fc->invokes;
    }
}

static struct state state_now(void)
{
    struct state s;
    harness_on_loop(&H, read_state, &s);
    return s;
}

static void set_new_mode(struct harness *h, void *arg)
{
    (void)h;
    F.new_mode = *(enum mode *)arg;
}

struct mode_of {
    const char *id;
    enum mode mode;
};

static void set_mode_of(struct harness *h, void *arg)
{
    (void)h;
    const struct mode_of *m = arg;
    for (struct fake_container *fc = F.containers; fc; fc = fc->next)
        if (strcmp(fc->id, m->id) == 0)
            fc->mode = m->mode;
}

static void new_mode(enum mode mode)
{
    harness_on_loop(&H, set_new_mode, &mode);
}

static void mode_of(const char *id, enum mode mode)
{
    struct mode_of m = {id, mode};
    harness_on_loop(&H, set_mode_of, &m);
}

/* The runner of `id` says that its runtime ended. */
static void send_exited(struct harness *h, void *arg)
{
    (void)h;
    for (struct fake_container *fc = F.containers; fc; fc = fc->next) {
        if (strcmp(fc->id, (const char *)arg) != 0 || !fc->conn)
            continue;
        cJSON *n = cJSON_CreateObject();
        cJSON_AddNumberToObject(n, "pid", 2);
        cJSON_AddStringToObject(n, "status", "exit status 1");
        assert_int_equal(ef_rpc_notify(fc->conn, "runtime.exited", n), 0);
    }
}

static struct http_response invoke(void)
{
    struct http_response r;
    assert_int_equal(
        http_request(H.port, "POST", "/2015-03-31/functions/fn/invocations", NULL, "{}", 2, &r), 0);
    assert_int_equal(r.status, 200);
    return r;
}

/* Invokes; expects success and returns the id of the container that served it (static). */
static const char *invoke_ok(void)
{
    static char container[16];
    struct http_response r = invoke();
    char *fe = http_header(&r, "X-Amz-Function-Error");
    if (fe)
        fail_msg("the invocation failed: %s", r.body);
    cJSON *j = cJSON_Parse(r.body);
    snprintf(container, sizeof(container), "%s", cJSON_GetObjectItem(j, "container")->valuestring);
    cJSON_Delete(j);
    http_response_free(&r);
    return container;
}

/* Invokes; expects the init error as the function's error, as Lambda answers it. */
static void invoke_init_error(void)
{
    struct http_response r = invoke();
    char *fe = http_header(&r, "X-Amz-Function-Error");
    assert_non_null(fe);
    assert_string_equal(fe, "Unhandled");
    free(fe);
    cJSON *j = cJSON_Parse(r.body);
    assert_string_equal(cJSON_GetObjectItem(j, "errorType")->valuestring,
                        "Runtime.ImportModuleError");
    cJSON_Delete(j);
    http_response_free(&r);
}

/* ---- tests ---- */

static void test_failed_init_is_never_handed_out_again(void **state)
{
    (void)state;
    new_mode(MODE_INIT_ERROR);
    invoke_init_error();
    /* runtime.exited has not arrived: c1 is idle, but its runtime will never serve. The next
     * invocation runs an init of its own, on a new container. */
    invoke_init_error();
    struct state s = state_now();
    assert_int_equal(s.creates, 2);
    assert_int_equal(s.invokes[0], 1);
    assert_int_equal(s.invokes[1], 1);
    assert_int_equal(s.destroys, 0);
    /* runtime.exited then discards it, as for any runtime that ended. */
    harness_on_loop(&H, send_exited, "c1");
    for (int i = 0; i < 100 && state_now().destroys < 1; i++)
        usleep(10 * 1000);
    assert_int_equal(state_now().destroys, 1);
    /* And a function that works again gets a container of its own, never c1 or c2. */
    new_mode(MODE_OK);
    assert_string_equal(invoke_ok(), "c3");
    assert_string_equal(invoke_ok(), "c3");
}

static void test_late_invocation_is_placed_again(void **state)
{
    (void)state;
    assert_string_equal(invoke_ok(), "c1");
    /* c1's runtime failed its init after another invocation was answered: this one, sent to
     * the warm c1, is late and was never delivered; it runs on a new container instead. */
    mode_of("c1", MODE_LATE);
    assert_string_equal(invoke_ok(), "c2");
    struct state s = state_now();
    assert_int_equal(s.creates, 2);
    assert_int_equal(s.invokes[0], 2);
    assert_int_equal(s.invokes[1], 1);
    /* c1 takes nothing more. */
    assert_string_equal(invoke_ok(), "c2");
    assert_int_equal(state_now().invokes[0], 2);
}

static void test_late_but_delivered_is_not_run_again(void **state)
{
    (void)state;
    assert_string_equal(invoke_ok(), "c1");
    /* The runtime took it: running it again elsewhere could run it twice. */
    mode_of("c1", MODE_LATE_HANDED);
    invoke_init_error();
    struct state s = state_now();
    assert_int_equal(s.creates, 1);
    assert_int_equal(s.invokes[0], 2);
}

static void test_placed_again_only_once(void **state)
{
    (void)state;
    assert_string_equal(invoke_ok(), "c1");
    mode_of("c1", MODE_LATE);
    new_mode(MODE_LATE);
    /* The new container answers late too: the second answer stands, no third container. */
    invoke_init_error();
    struct state s = state_now();
    assert_int_equal(s.creates, 2);
    assert_int_equal(s.invokes[1], 1);
}

static void test_cold_invocation_keeps_its_init_error(void **state)
{
    (void)state;
    /* An invocation that started its container waited for that init, late or not: it gets its
     * error and is not placed again. */
    new_mode(MODE_LATE);
    invoke_init_error();
    assert_int_equal(state_now().creates, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_failed_init_is_never_handed_out_again, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_late_invocation_is_placed_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_but_delivered_is_not_run_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_placed_again_only_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cold_invocation_keeps_its_init_error, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
