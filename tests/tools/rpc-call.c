/* ef-rpc-call: makes one JSON-RPC call on a Unix socket, for shell tests.
 *
 *   ef-rpc-call [--timeout MS] [--notifications N] SOCKET METHOD [PARAMS_JSON]
 *
 * Prints the result as compact JSON on stdout and exits 0; prints the error object on stderr
 * and exits 2 when the call fails (including a timeout); exits 1 when it cannot connect or the
 * arguments are wrong. With --notifications N it then prints up to N notifications, one
 * {"method": ..., "params": ...} per line, waiting at most the timeout for them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/options.h"
#include "common/rpc.h"

struct state {
    uv_loop_t *loop;
    ef_rpc_conn *conn;
    uv_timer_t wait_timer;
    bool timer_used;
    const char *socket_path;
    const char *method;
    cJSON *params;
    unsigned timeout_ms;
    int64_t want_notifications;
    bool have_result;
    int printed;
    cJSON *early; /* notifications that came before the result, printed after it */
    int exit_code;
};

static void print_line(FILE *f, const cJSON *j)
{
    char *s = cJSON_PrintUnformatted(j);
    if (s) {
        fprintf(f, "%s\n", s);
        fflush(f);
        free(s);
    }
}

static void finish(struct state *st)
{
    if (st->timer_used)
        uv_timer_stop(&st->wait_timer);
    ef_rpc_conn_close(st->conn);
}

static void print_notification(struct state *st, const cJSON *n)
{
    if (st->printed < st->want_notifications) {
        print_line(stdout, n);
        st->printed++;
    }
    if (st->printed >= st->want_notifications)
        finish(st);
}

static void on_wait_timeout(uv_timer_t *t)
{
    struct state *st = t->data;
    fprintf(stderr, "ef-rpc-call: %d of %lld notifications arrived\n", st->printed,
            (long long)st->want_notifications);
    finish(st);
}

static void on_result(ef_rpc_conn *conn, const cJSON *result, const struct ef_rpc_error *error,
                      void *user)
{
    (void)conn;
    struct state *st = user;
    if (error) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "code", error->code);
        cJSON_AddStringToObject(e, "message", error->message ? error->message : "");
        if (error->data)
            cJSON_AddItemToObject(e, "data", cJSON_Duplicate(error->data, 1));
        print_line(stderr, e);
        cJSON_Delete(e);
        st->exit_code = 2;
        finish(st);
        return;
    }
    print_line(stdout, result);
    st->exit_code = 0;
    st->have_result = true;
    if (st->want_notifications <= 0) {
        finish(st);
        return;
    }
    const cJSON *n;
    cJSON_ArrayForEach(n, st->early)
    {
        if (st->printed < st->want_notifications)
            print_notification(st, n);
    }
    if (st->printed >= st->want_notifications)
        return;
    if (st->timeout_ms) {
        uv_timer_init(st->loop, &st->wait_timer);
        st->wait_timer.data = st;
        st->timer_used = true;
        uv_timer_start(&st->wait_timer, on_wait_timeout, st->timeout_ms, 0);
    }
}

static void on_notification(ef_rpc_conn *conn, const char *method, const cJSON *params, void *user)
{
    (void)conn;
    struct state *st = user;
    if (st->want_notifications <= 0)
        return;
    cJSON *n = cJSON_CreateObject();
    cJSON_AddStringToObject(n, "method", method);
    cJSON_AddItemToObject(n, "params", params ? cJSON_Duplicate(params, 1) : cJSON_CreateNull());
    if (st->have_result) {
        print_notification(st, n);
        cJSON_Delete(n);
    } else {
        cJSON_AddItemToArray(st->early, n);
    }
}

static void on_request(ef_rpc_conn *conn, ef_rpc_request *req, const char *method,
                       const cJSON *params, void *user)
{
    (void)conn;
    (void)params;
    (void)user;
    ef_rpc_reply_error(req, EF_RPC_METHOD_NOT_FOUND, NULL, "method '%s' not found", method);
}

static void on_close(ef_rpc_conn *conn, void *user)
{
    (void)conn;
    struct state *st = user;
    st->conn = NULL;
    if (st->timer_used) {
        uv_close((uv_handle_t *)&st->wait_timer, NULL);
        st->timer_used = false;
    }
}

static void on_connected(ef_rpc_conn *conn, int status, void *user)
{
    struct state *st = user;
    if (status < 0) {
        fprintf(stderr, "ef-rpc-call: cannot connect to %s: %s\n", st->socket_path,
                uv_strerror(status));
        st->exit_code = 1;
        return;
    }
    st->conn = conn;
    int r = ef_rpc_call(conn, st->method, st->params, st->timeout_ms, on_result, st);
    st->params = NULL;
    if (r < 0) {
        fprintf(stderr, "ef-rpc-call: cannot send the call: %s\n", strerror(-r));
        st->exit_code = 1;
        ef_rpc_conn_close(conn);
    }
}

int main(int argc, char **argv)
{
    int64_t timeout = 30000, notifications = 0;
    const struct ef_option opts[] = {
        {"timeout", EF_OPT_INT, &timeout, "MS", "Milliseconds to wait for the answer.", 1, 3600000},
        {"notifications", EF_OPT_INT, &notifications, "N",
         "After the result, print up to N notifications, one per line.", 0, 1000000},
        {0},
    };
    const char *usage =
        "ef-rpc-call [--timeout MS] [--notifications N] SOCKET METHOD [PARAMS_JSON]";
    const char *desc = "Makes one JSON-RPC call on a Unix socket and prints the result.";
    ef_error err = {0};
    int next = 0;
    int r = ef_options_parse(usage, desc, opts, argc, argv, 1, &next, &err);
    if (r == 1)
        return 0;
    if (r < 0) {
        fprintf(stderr, "ef-rpc-call: %s\n", err.msg);
        return 1;
    }
    if (argc - next < 2 || argc - next > 3) {
        fprintf(stderr, "ef-rpc-call: expected SOCKET METHOD [PARAMS_JSON]; see --help\n");
        return 1;
    }

    struct state st = {
        .socket_path = argv[next],
        .method = argv[next + 1],
        .timeout_ms = (unsigned)timeout,
        .want_notifications = notifications,
        .exit_code = 1,
        .early = cJSON_CreateArray(),
    };
    if (argc - next == 3) {
        st.params = cJSON_Parse(argv[next + 2]);
        if (!st.params) {
            fprintf(stderr, "ef-rpc-call: PARAMS_JSON is not valid JSON: %s\n", argv[next + 2]);
            cJSON_Delete(st.early);
            return 1;
        }
    }

    uv_loop_t loop;
    uv_loop_init(&loop);
    st.loop = &loop;
    static const struct ef_rpc_handlers handlers = {
        .on_request = on_request,
        .on_notification = on_notification,
        .on_close = on_close,
    };
    r = ef_rpc_connect(&loop, argv[next], &handlers, &st, on_connected, &err);
    if (r < 0) {
        fprintf(stderr, "ef-rpc-call: %s\n", err.msg);
        cJSON_Delete(st.params);
        st.params = NULL;
    } else {
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(&loop);
    cJSON_Delete(st.params);
    cJSON_Delete(st.early);
    return st.exit_code;
}
