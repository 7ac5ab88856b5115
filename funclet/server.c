#include "funclet/server.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"

struct ef_server {
    uv_poll_t poll; /* readable: a client is waiting to be accepted */
    uv_loop_t *loop;
    int fd;
    char *path;
    struct ef_rpc_handlers user_handlers;
    void *user;
    ef_rpc_conn *clients[EF_SERVER_MAX_CLIENTS];
    size_t n_clients;
    int pending; /* the poll handle plus every client not yet closed */
    bool closing;
};

static void release(struct ef_server *s)
{
    if (--s->pending > 0)
        return;
    free(s->path);
    free(s);
}

static void forward_request(ef_rpc_conn *conn, ef_rpc_request *req, const char *method,
                            const cJSON *params, void *user)
{
    struct ef_server *s = user;
    s->user_handlers.on_request(conn, req, method, params, s->user);
}

static void forward_notification(ef_rpc_conn *conn, const char *method, const cJSON *params,
                                 void *user)
{
    struct ef_server *s = user;
    if (s->user_handlers.on_notification)
        s->user_handlers.on_notification(conn, method, params, s->user);
}

static void client_closed(ef_rpc_conn *conn, void *user)
{
    struct ef_server *s = user;
    for (size_t i = 0; i < s->n_clients; i++) {
        if (s->clients[i] == conn) {
            s->clients[i] = s->clients[--s->n_clients];
            break;
        }
    }
    if (s->user_handlers.on_close)
        s->user_handlers.on_close(conn, s->user);
    ef_debug("client disconnected (%zu left)", s->n_clients);
    release(s);
}

static const struct ef_rpc_handlers wrapped = {
    .on_request = forward_request,
    .on_notification = forward_notification,
    .on_close = client_closed,
};

static void on_readable(uv_poll_t *handle, int status, int events)
{
    struct ef_server *s = handle->data;
    (void)events;
    if (status < 0) {
        ef_error("RPC socket %s: %s", s->path, uv_strerror(status));
        return;
    }
    for (;;) {
        int fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                ef_error("accept on %s: %s", s->path, strerror(errno));
            return;
        }
        if (s->n_clients == EF_SERVER_MAX_CLIENTS) {
            ef_warn("refusing a client: %d are connected already", EF_SERVER_MAX_CLIENTS);
            close(fd);
            continue;
        }
        ef_rpc_conn *conn = NULL;
        ef_error e;
        if (ef_rpc_conn_open_fd(s->loop, fd, &wrapped, s, &conn, &e) < 0) {
            ef_error("cannot serve a client: %s", e.msg);
            close(fd);
            continue;
        }
        s->clients[s->n_clients++] = conn;
        s->pending++;
        ef_debug("client connected (%zu now)", s->n_clients);
    }
}

/* A socket file at `path` that still accepts connections belongs to a running server. */
static bool socket_in_use(const struct sockaddr_un *addr)
{
    cleanup_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    return fd >= 0 && connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) == 0;
}

int ef_server_start(uv_loop_t *loop, const char *path, const struct ef_rpc_handlers *handlers,
                    void *user, struct ef_server **ret, ef_error *err)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(addr.sun_path))
        return ef_error_set(err, -ENAMETOOLONG, "socket path %s is longer than %zu bytes", path,
                            sizeof(addr.sun_path) - 1);
    strcpy(addr.sun_path, path);

    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return ef_error_set(err, -EEXIST, "%s exists and is not a socket", path);
        if (socket_in_use(&addr))
            return ef_error_set(err, -EADDRINUSE,
                                "%s is in use: is another funclet running on this data dir?", path);
        if (unlink(path) < 0)
            return ef_error_set_errno(err, -errno, "cannot remove stale socket %s", path);
    }

    cleanup_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return ef_error_set_errno(err, -errno, "socket");
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
        return ef_error_set_errno(err, -errno, "cannot bind %s", path);
    if (chmod(path, 0600) < 0 || listen(fd, 64) < 0) {
        int e = -errno;
        unlink(path);
        return ef_error_set_errno(err, e, "cannot listen on %s", path);
    }

    struct ef_server *s = calloc(1, sizeof(*s));
    if (!s || !(s->path = strdup(path))) {
        free(s);
        unlink(path);
        return ef_error_set(err, -ENOMEM, "out of memory");
    }
    s->loop = loop;
    s->user_handlers = *handlers;
    s->user = user;
    s->pending = 1;
    int r = uv_poll_init(loop, &s->poll, fd);
    if (r == 0)
        r = uv_poll_start(&s->poll, UV_READABLE, on_readable);
    if (r < 0) {
        unlink(path);
        free(s->path);
        free(s);
        return ef_error_set(err, -EIO, "cannot watch %s: %s", path, uv_strerror(r));
    }
    s->poll.data = s;
    s->fd = steal_fd(&fd);
    *ret = s;
    return 0;
}

void ef_server_broadcast(struct ef_server *s, const char *method, const cJSON *params)
{
    for (size_t i = 0; i < s->n_clients; i++) {
        cJSON *copy = cJSON_Duplicate(params, 1);
        if (!copy || ef_rpc_notify(s->clients[i], method, copy) < 0)
            ef_warn("could not send %s to a client", method);
    }
}

static void poll_closed(uv_handle_t *handle)
{
    struct ef_server *s = handle->data;
    close(s->fd);
    release(s);
}

void ef_server_close(struct ef_server *s)
{
    if (s->closing)
        return;
    s->closing = true;
    unlink(s->path);
    /* Closing a client removes it from the array (in its on_close), possibly at once. */
    ef_rpc_conn *clients[EF_SERVER_MAX_CLIENTS];
    size_t n = s->n_clients;
    memcpy(clients, s->clients, n * sizeof(clients[0]));
    for (size_t i = 0; i < n; i++)
        ef_rpc_conn_close(clients[i]);
    uv_close((uv_handle_t *)&s->poll, poll_closed);
}
