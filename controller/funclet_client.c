#include "controller/funclet_client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define RETRY_MS 1000

struct ef_funclet_client {
    uv_loop_t *loop;
    char *path;
    struct ef_funclet_events events;
    void *user;
    ef_rpc_conn *conn; /* the open connection, NULL when down */
    uv_timer_t retry;
    bool timer_open; /* the retry timer still needs closing */
    bool connecting; /* an ef_rpc_connect() has not called back yet */
    bool stopping;
    bool reported_down; /* the last state logged was "unavailable" */
};

static void try_connect(ef_funclet_client *c);

/* Frees the client once nothing on the loop refers to it any more. */
static void maybe_free(ef_funclet_client *c)
{
    if (!c->stopping || c->timer_open || c->conn || c->connecting)
        return;
    free(c->path);
    free(c);
}

static void on_timer_closed(uv_handle_t *h)
{
    ef_funclet_client *c = h->data;
    c->timer_open = false;
    maybe_free(c);
}

static void on_retry(uv_timer_t *t)
{
    try_connect(t->data);
}

static void schedule_retry(ef_funclet_client *c)
{
    if (!c->stopping)
        uv_timer_start(&c->retry, on_retry, RETRY_MS, 0);
}

static void on_notification(ef_rpc_conn *conn, const char *method, const cJSON *params, void *user)
{
    (void)conn;
    ef_funclet_client *c = user;
    if (strcmp(method, "container.oom") == 0) {
        const cJSON *oid = cJSON_GetObjectItemCaseSensitive(params, "id");
        if (!cJSON_IsString(oid)) {
            ef_warn("funclet sent container.oom without an id; ignored");
            return;
        }
        ef_debug("funclet reports an OOM kill in container %s", oid->valuestring);
        if (c->events.on_container_oom)
            c->events.on_container_oom(oid->valuestring, c->user);
        return;
    }
    if (strcmp(method, "container.exited") != 0)
        return;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(params, "id");
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(params, "status");
    if (!cJSON_IsString(id)) {
        ef_warn("funclet sent container.exited without an id; ignored");
        return;
    }
    if (c->events.on_container_exited)
        c->events.on_container_exited(
            id->valuestring, cJSON_IsString(status) ? status->valuestring : "unknown", c->user);
}

static void on_request(ef_rpc_conn *conn, ef_rpc_request *req, const char *method,
                       const cJSON *params, void *user)
{
    (void)conn;
    (void)params;
    (void)user;
    ef_rpc_reply_error(req, EF_RPC_METHOD_NOT_FOUND, NULL, "the controller serves no method '%s'",
                       method);
}

static void on_close(ef_rpc_conn *conn, void *user)
{
    (void)conn;
    ef_funclet_client *c = user;
    c->conn = NULL;
    if (c->stopping) {
        maybe_free(c);
        return;
    }
    ef_warn("lost the connection to funclet at %s; retrying every %d s", c->path, RETRY_MS / 1000);
    c->reported_down = true;
    schedule_retry(c);
    if (c->events.on_disconnected)
        c->events.on_disconnected(c->user);
}

static const struct ef_rpc_handlers handlers = {
    .on_request = on_request,
    .on_notification = on_notification,
    .on_close = on_close,
};

static void on_connected(ef_rpc_conn *conn, int status, void *user)
{
    ef_funclet_client *c = user;
    c->connecting = false;
    if (c->stopping) {
        if (conn) {
            c->conn = conn;
            ef_rpc_conn_close(conn); /* on_close frees the client */
        } else {
            maybe_free(c);
        }
        return;
    }
    if (status < 0) {
        if (!c->reported_down)
            ef_warn("funclet is unavailable at %s (%s); retrying every %d s", c->path,
                    uv_strerror(status), RETRY_MS / 1000);
        c->reported_down = true;
        schedule_retry(c);
        return;
    }
    c->conn = conn;
    c->reported_down = false;
    ef_info("connected to funclet at %s", c->path);
    if (c->events.on_connected)
        c->events.on_connected(c->user);
}

static void try_connect(ef_funclet_client *c)
{
    if (c->stopping || c->conn || c->connecting)
        return;
    ef_error err = {0};
    c->connecting = true;
    if (ef_rpc_connect(c->loop, c->path, &handlers, c, on_connected, &err) < 0) {
        c->connecting = false;
        if (!c->reported_down)
            ef_warn("cannot connect to funclet: %s; retrying every %d s", err.msg, RETRY_MS / 1000);
        c->reported_down = true;
        schedule_retry(c);
    }
}

int ef_funclet_client_start(uv_loop_t *loop, const char *socket_path,
                            const struct ef_funclet_events *events, void *user,
                            ef_funclet_client **ret_client, ef_error *err)
{
    ef_funclet_client *c = calloc(1, sizeof(*c));
    if (!c || !(c->path = strdup(socket_path))) {
        free(c);
        return ef_error_set(err, -ENOMEM, "out of memory");
    }
    c->loop = loop;
    if (events)
        c->events = *events;
    c->user = user;
    uv_timer_init(loop, &c->retry);
    c->retry.data = c;
    c->timer_open = true;
    try_connect(c);
    *ret_client = c;
    return 0;
}

const char *ef_funclet_path(const ef_funclet_client *client)
{
    return client ? client->path : "";
}

bool ef_funclet_connected(const ef_funclet_client *client)
{
    return client && client->conn != NULL;
}

int ef_funclet_call(ef_funclet_client *client, const char *method, cJSON *params,
                    unsigned timeout_ms, ef_rpc_result_cb cb, void *user)
{
    if (!client || !client->conn) {
        cJSON_Delete(params);
        return -ENOTCONN;
    }
    return ef_rpc_call(client->conn, method, params, timeout_ms, cb, user);
}

void ef_funclet_client_stop(ef_funclet_client *client)
{
    if (!client || client->stopping)
        return;
    client->stopping = true;
    uv_timer_stop(&client->retry);
    uv_close((uv_handle_t *)&client->retry, on_timer_closed);
    if (client->conn)
        ef_rpc_conn_close(client->conn);
}
