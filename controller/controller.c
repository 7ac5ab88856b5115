/* Start-up and orderly stop of the controller's parts. */
#include "controller/controller.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "controller/api.h"
#include "controller/api_limits.h"
#include "controller/auth.h"
#include "controller/code_lane.h"
#include "controller/codestore.h"
#include "controller/function_logs.h"
#include "controller/housekeeping.h" /* scheduler */
#include "controller/invoke.h"
#include "controller/metrics.h" /* scheduler */
#include "controller/metrics_token.h"

/* How long a stop waits for funclet to confirm that the containers are destroyed. */
#define STOP_TIMEOUT_MS 5000

static void on_container_exited(const char *id, const char *status, void *user)
{
    struct ef_controller *ctl = user;
    ef_pool_container_exited(&ctl->pool, id, status);
}

static void on_container_oom(const char *id, void *user)
{
    struct ef_controller *ctl = user;
    ef_invoke_container_oom(ctl, id);
}

/* scheduler: re-sync the pool with what funclet has, before anything else is sent to it. */
static void on_funclet_connected(void *user)
{
    struct ef_controller *ctl = user;
    ef_housekeeping_funclet_connected(ctl->housekeeping);
}

static void on_funclet_disconnected(void *user)
{
    struct ef_controller *ctl = user;
    ef_metrics_funclet_disconnect(ctl->metrics);
}

/* Takes an exclusive flock on `path` (created when missing) for as long as the returned fd
 * stays open, and writes this process's pid into it so that a second controller can name the
 * first. Returns the fd; -EBUSY when another process holds the lock, with *ret_holder the pid
 * found in the file (0 when there is none); another negative errno when the file cannot be
 * opened. */
static int lock_file(const char *path, pid_t *ret_holder)
{
    cleanup_close int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return -errno;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno != EWOULDBLOCK)
            return -errno;
        char buf[24] = "";
        ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
        *ret_holder = n > 0 ? (pid_t)strtol(buf, NULL, 10) : 0;
        return -EBUSY;
    }
    char buf[24];
    int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
    /* The pid is only a hint for the message of a second controller; the lock is what counts. */
    if (ftruncate(fd, 0) == 0 && pwrite(fd, buf, (size_t)n, 0) < 0)
        ef_debug("cannot write the pid into %s: %s", path, strerror(errno));
    return steal_fd(&fd);
}

/* Two controllers on one data dir would share controller.db and the async queue, and the
 * second one's resync with funclet would give the first one's warm containers back; two on one
 * funclet socket (with different data dirs) would do the latter. The data dir's lock is
 * required. The socket's lock file sits next to the socket and is taken when its directory can
 * be written (funclet may not have created it yet: then the check is skipped). */
static int lock_instance(struct ef_controller *ctl, const char *funclet_socket, ef_error *err)
{
    cleanup_free char *data_lock = ef_path_join(ctl->data_dir, "controller.lock");
    cleanup_free char *sock_lock = NULL;
    if (!data_lock || asprintf(&sock_lock, "%s.controller.lock", funclet_socket) < 0)
        return ef_error_set(err, -ENOMEM, "out of memory");
    pid_t holder = 0;
    int fd = lock_file(data_lock, &holder);
    if (fd == -EBUSY)
        return ef_error_set(err, -EBUSY,
                            "another controller (pid %d) is running on the data dir %s (it "
                            "holds %s); stop it, or give this one another --data-dir",
                            (int)holder, ctl->data_dir, data_lock);
    if (fd < 0)
        return ef_error_set_errno(err, fd, "cannot lock %s", data_lock);
    ctl->data_lock_fd = fd;

    holder = 0;
    fd = lock_file(sock_lock, &holder);
    if (fd == -EBUSY)
        return ef_error_set(err, -EBUSY,
                            "another controller (pid %d) is using the funclet socket %s (it "
                            "holds %s); a funclet serves one controller: give this one its own "
                            "funclet and --funclet-socket",
                            (int)holder, funclet_socket, sock_lock);
    if (fd < 0) {
        ef_debug("cannot lock %s (%s); a second controller on this funclet socket would not be "
                 "detected",
                 sock_lock, strerror(-fd));
        return 0;
    }
    ctl->funclet_lock_fd = fd;
    return 0;
}

/* Whether `host` (an IPv4 or IPv6 literal) is a loopback address, which only this machine (or
 * this pod's network namespace) can reach. */
static bool loopback_address(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
    return false;
}

static const struct ef_funclet_events funclet_events = {
    .on_container_exited = on_container_exited,
    .on_container_oom = on_container_oom,
    .on_connected = on_funclet_connected,
    .on_disconnected = on_funclet_disconnected,
};

int ef_controller_start(struct ef_controller *ctl, uv_loop_t *loop,
                        const struct ef_controller_config *config, ef_error *err)
{
    cleanup_free char *db_path = NULL;
    memset(ctl, 0, sizeof(*ctl));
    ctl->data_lock_fd = -1;
    ctl->funclet_lock_fd = -1;
    ctl->loop = loop;
    ctl->max_request_size = config->max_request_size;
    ctl->allow_host_network = config->allow_host_network;
    ctl->runtime_handover = config->runtime_handover;
    /* The server's body limit is the larger one; invocations are held to theirs in api.c. */
    ctl->max_code_request_size = config->max_code_request_size ? config->max_code_request_size
                                                               : EF_DEFAULT_MAX_CODE_REQUEST_SIZE;
    if (ctl->max_code_request_size < ctl->max_request_size)
        ctl->max_code_request_size = ctl->max_request_size;
    ef_pool_init(&ctl->pool);

    int r = ef_private_data_dir(config->data_dir,
                                "the functions' environment variables, code and logs", err);
    if (r < 0)
        goto fail;
    /* funclet checks code_dir against its --code-root after realpath, so the paths handed to it
     * must be absolute and canonical. */
    ctl->data_dir = realpath(config->data_dir, NULL);
    if (!ctl->data_dir) {
        r = ef_error_set_errno(err, -errno, "cannot resolve %s", config->data_dir);
        goto fail;
    }
    /* Before anything in the data dir is opened or changed. */
    r = lock_instance(ctl, config->funclet_socket, err);
    if (r < 0)
        goto fail;
    ctl->code_root = ef_path_join(ctl->data_dir, "code");
    db_path = ef_path_join(ctl->data_dir, "controller.db");
    if (!ctl->code_root || !db_path) {
        r = ef_error_set(err, -ENOMEM, "out of memory");
        goto fail;
    }
    r = ef_codestore_init(ctl->code_root, err);
    if (r < 0)
        goto fail;
    r = ef_code_lane_new(ctl, &ctl->code_lane, err);
    if (r < 0)
        goto fail;
    if (config->auth_keys_path) {
        r = ef_auth_keys_load(config->auth_keys_path, &ctl->auth_keys, err);
        if (r < 0)
            goto fail;
    }
    if (config->metrics_token_path) {
        r = ef_metrics_token_load(config->metrics_token_path, &ctl->metrics_token, err);
        if (r < 0)
            goto fail;
    }
    {
        cleanup_free char *logs_dir = ef_path_join(ctl->data_dir, "logs");
        if (!logs_dir) {
            r = ef_error_set(err, -ENOMEM, "out of memory");
            goto fail;
        }
        r = ef_function_logs_open(logs_dir, config->log_max_size, config->log_files, &ctl->logs,
                                  err);
        if (r < 0)
            goto fail;
    }
    r = ef_store_open(db_path, &ctl->store, err);
    if (r < 0)
        goto fail;
    /* async: the Event queue shares controller.db; events a crash left running are
     * dead-lettered or requeued (--async-interrupted). */
    r = ef_async_open(ctl, db_path, &config->async, &ctl->async, err);
    if (r < 0)
        goto fail;
    /* scheduler: before anything can invoke or connect to funclet. */
    {
        struct ef_sched_config sched_defaults;
        ef_sched_config_defaults(&sched_defaults);
        if (ef_metrics_new(&ctl->metrics) < 0) {
            r = ef_error_set(err, -ENOMEM, "out of memory");
            goto fail;
        }
        r = ef_sched_new(ctl, config->sched ? config->sched : &sched_defaults, &ctl->sched, err);
        if (r < 0)
            goto fail;
        r = ef_housekeeping_start(ctl, &ctl->housekeeping, err);
        if (r < 0)
            goto fail;
    }

    /* max_body is the largest limit of any route; each request gets its route's limit once its
     * headers are in, before its body is read (api_limits.h). */
    struct ef_http_server_config http = {
        .max_body = ctl->max_code_request_size,
        .on_protocol_error = ef_api_protocol_error,
        .body_limit = ef_api_body_limit,
    };
    r = ef_http_server_listen(loop, config->listen, config->port, &http, ef_api_handle, ctl,
                              &ctl->http, err);
    if (r < 0)
        goto fail;
    r = ef_funclet_client_start(loop, config->funclet_socket, &funclet_events, ctl, &ctl->funclet,
                                err);
    if (r < 0) {
        ef_http_server_close(ctl->http);
        ctl->http = NULL;
        goto fail;
    }
    uv_timer_init(loop, &ctl->shutdown_timer);
    ctl->shutdown_timer.data = ctl;
    ctl->shutdown_timer_open = true;
    bool v6 = strchr(config->listen, ':') != NULL;
    ef_info("listening on http://%s%s%s:%d (data dir %s)", v6 ? "[" : "", config->listen,
            v6 ? "]" : "", ef_http_server_port(ctl->http), ctl->data_dir);
    if (ctl->auth_keys)
        ef_info("requests must be signed (SigV4) with one of %zu key(s) from %s",
                ef_auth_keys_count(ctl->auth_keys), config->auth_keys_path);
    else if (!loopback_address(config->listen))
        ef_warn("the API listens on %s without --auth-keys: anyone who can reach port %d can "
                "create functions and run code in this pod; give --auth-keys, or listen on "
                "loopback only",
                config->listen, ef_http_server_port(ctl->http));
    if (ctl->metrics_token)
        ef_info("GET /metrics needs the bearer token from %s%s", config->metrics_token_path,
                ctl->auth_keys ? " (or a SigV4 signature)" : "");
    /* Code left unreferenced by a crash between storing a zip and committing its function. */
    ef_code_lane_collect(ctl->code_lane);
    ef_async_run(ctl->async); /* async: start delivering */
    return 0;

fail:
    ef_controller_free(ctl);
    return r;
}

static void on_shutdown_timer_closed(uv_handle_t *h)
{
    (void)h;
}

/* Everything asked of funclet is answered (or the wait is over): close what is left. */
static void finish_stop(struct ef_controller *ctl)
{
    if (!ctl->shutdown_timer_open)
        return;
    ctl->shutdown_timer_open = false;
    uv_timer_stop(&ctl->shutdown_timer);
    uv_close((uv_handle_t *)&ctl->shutdown_timer, on_shutdown_timer_closed);
    ef_funclet_client_stop(ctl->funclet);
    ctl->funclet = NULL;
    ef_info("stopped");
    if (ctl->on_stopped)
        ctl->on_stopped(ctl);
}

static void on_stop_timeout(uv_timer_t *t)
{
    struct ef_controller *ctl = t->data;
    ef_warn("funclet did not confirm %u container destroy(s) and %u start(s) within %d ms; "
            "stopping anyway",
            ctl->pending_destroys, ctl->pending_spawns, STOP_TIMEOUT_MS);
    finish_stop(ctl);
}

void ef_controller_check_stopped(struct ef_controller *ctl)
{
    if (ctl->shutting_down && ctl->pending_destroys == 0 && ctl->pending_spawns == 0)
        finish_stop(ctl);
}

void ef_controller_stop(struct ef_controller *ctl, void (*on_stopped)(struct ef_controller *ctl))
{
    if (ctl->shutting_down)
        return;
    ctl->shutting_down = true;
    ctl->on_stopped = on_stopped;
    ef_info("stopping: destroying %u container(s)", ctl->pool.count);
    /* async: before the containers go, so that deliveries in flight are left for the next
     * start instead of failing. */
    ef_async_stop(ctl->async);
    if (ctl->http) {
        /* No new requests; a request whose answer is coming (an Event being stored, code being
         * written) still gets it, for as long as the stop waits for funclet. The server frees
         * itself once its last connection is closed. */
        ef_http_server_shutdown(ctl->http, STOP_TIMEOUT_MS);
        ctl->http = NULL;
    }
    /* Before the containers go: their invocations would otherwise fail as if the function had
     * crashed, or (the old way) the client's connection would just be closed. */
    ef_api_invoke_stop(ctl);
    ef_code_lane_close(ctl->code_lane);
    /* scheduler: queued invocations get 503, housekeeping ends, before the containers go. */
    ef_sched_close(ctl->sched);
    ef_housekeeping_close(ctl->housekeeping);
    ef_pool_discard_all(&ctl->pool);
    uv_timer_start(&ctl->shutdown_timer, on_stop_timeout, STOP_TIMEOUT_MS, 0);
    ef_controller_check_stopped(ctl);
}

void ef_controller_free(struct ef_controller *ctl)
{
    ef_code_lane_free(ctl->code_lane);
    ctl->code_lane = NULL;
    ef_auth_keys_free(ctl->auth_keys);
    ctl->auth_keys = NULL;
    ef_metrics_token_free(ctl->metrics_token);
    ctl->metrics_token = NULL;
    ef_function_logs_close(ctl->logs);
    ctl->logs = NULL;
    ef_async_free(ctl->async); /* async */
    ctl->async = NULL;
    ef_housekeeping_free(ctl->housekeeping); /* scheduler */
    ctl->housekeeping = NULL;
    ef_sched_free(ctl->sched); /* scheduler */
    ctl->sched = NULL;
    ef_metrics_free(ctl->metrics); /* scheduler */
    ctl->metrics = NULL;
    ef_store_close(ctl->store);
    ctl->store = NULL;
    free(ctl->data_dir);
    ctl->data_dir = NULL;
    free(ctl->code_root);
    ctl->code_root = NULL;
    /* Last: the data dir is free for the next controller only once this one has let go. */
    if (ctl->funclet_lock_fd >= 0)
        close(ctl->funclet_lock_fd);
    ctl->funclet_lock_fd = -1;
    if (ctl->data_lock_fd >= 0)
        close(ctl->data_lock_fd);
    ctl->data_lock_fd = -1;
}
