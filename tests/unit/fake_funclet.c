/* The fake funclet and its fake runners (fake_funclet.h). The harness's on_loop and on_stopped
 * hooks have no argument of their own, so the fake is found from h->user. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_funclet.h"

static struct fake_container *find(struct fake_funclet *f, const char *id)
{
    for (struct fake_container *fc = f->containers; fc; fc = fc->next)
        if (strcmp(fc->id, id) == 0)
            return fc;
    return NULL;
}

static int notify_exited(ef_rpc_conn *conn, const char *status)
{
    cJSON *n = cJSON_CreateObject();
    cJSON_AddNumberToObject(n, "pid", 2);
    cJSON_AddStringToObject(n, "status", status);
    return ef_rpc_notify(conn, "runtime.exited", n);
}

void fake_runner_exited(ef_rpc_conn *conn, const char *status)
{
    assert_int_equal(notify_exited(conn, status), 0);
}

/* ---- the runners ---- */

static void runner_request(ef_rpc_conn *conn, ef_rpc_request *req, const char *method,
                           const cJSON *params, void *user)
{
    struct fake_container *fc = user;
    struct fake_funclet *f = fc->funclet;
    fc->conn = conn;
    if (strcmp(method, "runtime.start") == 0) {
        if (f->ops->start && f->ops->start(fc, req, params))
            return;
        cJSON *r = cJSON_CreateObject();
        cJSON_AddNumberToObject(r, "pid", 2);
        ef_rpc_reply(req, r);
    } else if (strcmp(method, "invoke") == 0) {
        f->invokes++;
        fc->invokes++;
        f->ops->invoke(fc, conn, req, params);
    } else {
        ef_rpc_reply_error(req, EF_RPC_METHOD_NOT_FOUND, NULL, "no method %s", method);
    }
}

static const struct ef_rpc_handlers runner_handlers = {.on_request = runner_request};

/* ---- the funclet ---- */

static void container_create(struct fake_funclet *f, ef_rpc_request *req)
{
    struct fake_container *fc = calloc(1, sizeof(*fc));
    assert_non_null(fc);
    f->creates++;
    fc->funclet = f;
    fc->mode = f->new_mode;
    snprintf(fc->id, sizeof(fc->id), "c%d", f->creates);
    snprintf(fc->sock, sizeof(fc->sock), "%s/runner-%d.sock", f->h->dir, f->creates);
    ef_error err = {0};
    if (ef_rpc_server_listen(&f->h->loop, fc->sock, -1, 0600, &runner_handlers, fc, &fc->srv,
                             &err) < 0)
        fail_msg("runner socket: %s", err.msg);
    fc->next = f->containers;
    f->containers = fc;
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "id", fc->id);
    cJSON_AddNumberToObject(r, "pid", 1000 + f->creates);
    cJSON_AddStringToObject(r, "runner_socket", fc->sock);
    ef_rpc_reply(req, r);
}

static void container_destroy(struct fake_funclet *f, ef_rpc_request *req, const cJSON *params)
{
    const cJSON *id = cJSON_GetObjectItem(params, "id");
    struct fake_container *fc = cJSON_IsString(id) ? find(f, id->valuestring) : NULL;
    if (!fc || fc->destroyed) {
        ef_rpc_reply_error(req, EF_RPC_ERR_NOT_FOUND, NULL, "no container");
        return;
    }
    fc->destroyed = true;
    fc->conn = NULL;
    f->destroys++;
    ef_rpc_server_close(fc->srv);
    fc->srv = NULL;
    ef_rpc_reply(req, NULL);
}

static void funclet_request(ef_rpc_conn *conn, ef_rpc_request *req, const char *method,
                            const cJSON *params, void *user)
{
    (void)conn;
    struct fake_funclet *f = user;
    if (strcmp(method, "container.create") == 0)
        container_create(f, req);
    else if (strcmp(method, "container.destroy") == 0)
        container_destroy(f, req, params);
    else
        ef_rpc_reply_error(req, EF_RPC_METHOD_NOT_FOUND, NULL, "no method %s", method);
}

static const struct ef_rpc_handlers funclet_handlers = {.on_request = funclet_request};

static void fake_listen(struct harness *h)
{
    struct fake_funclet *f = h->user;
    ef_error err = {0};
    if (ef_rpc_server_listen(&h->loop, h->funclet_socket, -1, 0600, &funclet_handlers, f, &f->srv,
                             &err) < 0)
        fail_msg("funclet socket: %s", err.msg);
}

/* Closes every socket of the fake, so that the harness finds the loop empty. */
static void fake_close(struct harness *h)
{
    struct fake_funclet *f = h->user;
    if (f->srv)
        ef_rpc_server_close(f->srv);
    f->srv = NULL;
    for (struct fake_container *fc = f->containers; fc; fc = fc->next)
        if (fc->srv) {
            ef_rpc_server_close(fc->srv);
            fc->srv = NULL;
        }
}

void fake_funclet_start(struct fake_funclet *f, struct harness *h,
                        const struct fake_runner_ops *ops)
{
    struct ef_async_config async = h->async;
    const struct ef_sched_config *sched = h->sched;
    memset(f, 0, sizeof(*f));
    memset(h, 0, sizeof(*h));
    h->async = async;
    h->sched = sched;
    f->h = h;
    f->ops = ops;
    h->user = f;
    h->on_stopped = fake_close;
    harness_start(h, 0, fake_listen);
}

void fake_funclet_stop(struct fake_funclet *f)
{
    harness_stop(f->h, false);
    while (f->containers) {
        struct fake_container *fc = f->containers;
        f->containers = fc->next;
        free(fc);
    }
}

/* ---- calls from the test thread ---- */

static void read_counts(struct harness *h, void *arg)
{
    struct fake_funclet *f = h->user;
    struct fake_counts *c = arg;
    memset(c, 0, sizeof(*c));
    c->creates = f->creates;
    c->destroys = f->destroys;
    c->invokes = f->invokes;
    for (struct fake_container *fc = f->containers; fc; fc = fc->next) {
        int n = atoi(fc->id + 1);
        if (n >= 1 && n <= FAKE_COUNTED_CONTAINERS)
            c->invokes_of[n - 1] = fc->invokes;
    }
}

struct fake_counts fake_funclet_counts(struct fake_funclet *f)
{
    struct fake_counts c;
    harness_on_loop(f->h, read_counts, &c);
    return c;
}

int fake_funclet_wait_destroys(struct fake_funclet *f, int n)
{
    int destroys = fake_funclet_counts(f).destroys;
    for (int i = 0; i < 50 && destroys < n; i++) {
        usleep(20 * 1000);
        destroys = fake_funclet_counts(f).destroys;
    }
    return destroys;
}

struct mode_of {
    const char *id; /* NULL: the containers created from now on */
    int mode;
    bool found;
};

/* Runs on the loop thread; the test thread fails the test for an unknown id, as cmocka's
 * failures belong on the thread that runs the test. */
static void set_mode(struct harness *h, void *arg)
{
    struct fake_funclet *f = h->user;
    struct mode_of *m = arg;
    if (!m->id) {
        f->new_mode = m->mode;
        m->found = true;
        return;
    }
    struct fake_container *fc = find(f, m->id);
    if (fc)
        fc->mode = m->mode;
    m->found = fc != NULL;
}

void fake_funclet_set_new_mode(struct fake_funclet *f, int mode)
{
    struct mode_of m = {NULL, mode, false};
    harness_on_loop(f->h, set_mode, &m);
}

void fake_funclet_set_mode(struct fake_funclet *f, const char *id, int mode)
{
    struct mode_of m = {id, mode, false};
    harness_on_loop(f->h, set_mode, &m);
    if (!m.found)
        fail_msg("no container %s", id);
}

struct exited {
    const char *id, *status;
    int rc;
};

static void send_exited(struct harness *h, void *arg)
{
    struct exited *e = arg;
    struct fake_container *fc = find(h->user, e->id);
    e->rc = fc && fc->conn ? notify_exited(fc->conn, e->status) : -ENOTCONN;
}

void fake_funclet_send_exited(struct fake_funclet *f, const char *id, const char *status)
{
    struct exited e = {id, status, 0};
    harness_on_loop(f->h, send_exited, &e);
    if (e.rc < 0)
        fail_msg("runtime.exited of %s: %s", id, strerror(-e.rc));
}

cJSON *fake_ok_answer(const char *payload)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "status", "ok");
    cJSON_AddStringToObject(r, "payload", payload);
    cJSON_AddStringToObject(r, "log", "");
    cJSON_AddBoolToObject(r, "delivered", true);
    return r;
}
