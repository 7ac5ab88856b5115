#define _GNU_SOURCE
/* `easyfaas-runner init`: PID 1 of a user container.
 *
 * A small init in the manner of bubblewrap's do_init: it reaps every child (orphans included),
 * forwards SIGTERM to the runtime and exits after a short grace period. Around that it serves
 * JSON-RPC on the listening socket funclet passes (runtime.start, invoke; the runtime.exited
 * notification) and the Lambda Runtime API to the runtime it starts, and ends invocations at
 * their deadline. Everything runs on one libuv loop.
 *
 * A runner outlives its runtime: once the runtime has ended (on its own, at a deadline, or killed
 * by funclet's container.reset), a new runtime.start starts a fresh one, possibly of another
 * function, with nothing of the previous one kept (invocations, output, configuration, Runtime
 * API connections). */
#define _GNU_SOURCE
#include "runner/runner.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "common/cpulist.h"
#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/options.h"
#include "common/rpc.h"
#include "rapi/invocations.h"
#include "runner/prestart.h"
#include "rapi/log_capture.h"
#include "rapi/runtime_api.h"
#include "runner/spawn.h"

/* How long the runtime gets between SIGTERM and SIGKILL when the runner is stopped. */
#define SHUTDOWN_GRACE_MS 1000
/* How long a runtime that reported an init error has to exit on its own before it is killed. */
#define INIT_ERROR_GRACE_MS 100
/* How long an invocation without a deadline_ms may wait for a runtime that has not polled yet,
 * on top of its Timeout: Lambda's limit for a function's init phase. */
#define INIT_ALLOWANCE_MS 10000
/* How long runtime.handover waits for the runtime's next poll. */
#define HANDOVER_WAIT_MS 200

/* A JSON-RPC client (the controller) that gets the runtime.exited notification. */
struct rpc_peer {
    struct rpc_peer *next;
    ef_rpc_conn *conn;
};

struct runner {
    uv_loop_t *loop;
    struct ef_spawn_settings settings;
    ef_rpc_server *rpc;
    struct ef_runtime_api api;
    struct ef_invocations invs;
    struct ef_log_capture capture;
    uv_signal_t sig_chld, sig_term, sig_int, sig_usr1;
    uv_timer_t grace;
    uv_timer_t init_grace; /* after an init error: the runtime's time to exit on its own */
    pid_t init_failed_pid; /* the runtime that reported it */
    uv_timer_t deadline;   /* armed at the earliest deadline of a pending invocation */
    struct rpc_peer *peers;
    struct ef_prestart prestart; /* a Python runtime waiting for its function (--prestart) */
    bool prestart_python;        /* --prestart python: also again after each reset */

    bool started; /* runtime.start succeeded and no new runtime is being set up */
    /* runtime.handover gave the runtime's connection and output to the controller, which
     * serves its invocations until the runtime ends (docs/handover.md). */
    bool handed_over;
    /* runtime.handover asked while the runtime had no /next poll waiting yet (a runtime that
     * polls only after its post's 202): answered when the poll arrives, or refused after
     * HANDOVER_WAIT_MS. */
    ef_rpc_request *handover_req;
    uv_timer_t handover_wait;
    pid_t runtime_pid; /* > 0 while the runtime runs (until reaped) */
    unsigned runtimes; /* runtimes started so far, for the log */
    int api_port_flag; /* --api-port as given (0: any free port) */
    struct ef_runtime_config config;
    char *default_arn;
    bool stopping;
    bool closed;
};

static void close_everything(struct runner *r);

/* ---- the runtime ------------------------------------------------------------------------ */

/* Kills the runtime's process group and, when we are the container's PID 1, every other process
 * of the container: whatever the runtime started, even in a session of its own, must not run on
 * once the runtime is gone. kill(-1) from PID 1 of a pid namespace reaches that namespace only;
 * outside a container (tests) it would reach the whole host, so it is not used there. */
static void kill_runtime_and_descendants(pid_t pid)
{
    if (pid > 0) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
    }
    if (getpid() == 1)
        kill(-1, SIGKILL);
}

/* Refuses a runtime.handover that waits for the runtime's poll (see `handover_req`). */
static void refuse_waiting_handover(struct runner *r, const char *why)
{
    if (!r->handover_req)
        return;
    uv_timer_stop(&r->handover_wait);
    ef_rpc_reply_error(steal_pointer(&r->handover_req), EF_RPC_ERR_BUSY, NULL,
                       "runtime.handover: %s", why);
}

/* Tells every client (the controller) that the runtime is gone, so that it does not send this
 * container another invocation; but not `quiet`, the client that is starting the next runtime. */
static void notify_runtime_exited(struct runner *r, pid_t pid, const char *how, ef_rpc_conn *quiet)
{
    for (struct rpc_peer *p = r->peers; p; p = p->next) {
        if (p->conn == quiet)
            continue;
        cJSON *params = cJSON_CreateObject();
        if (!params || !cJSON_AddNumberToObject(params, "pid", pid) ||
            !cJSON_AddStringToObject(params, "status", how)) {
            cJSON_Delete(params);
            ef_warn("cannot tell the controller that the runtime ended: out of memory");
            return;
        }
        if (ef_rpc_notify(p->conn, "runtime.exited", params) < 0)
            ef_debug("a client connection closed before runtime.exited could be sent");
    }
}

/* The runtime has been reaped with `status`. `quiet` (may be NULL) is a client not to notify. */
static void on_runtime_exit(struct runner *r, int status, ef_rpc_conn *quiet)
{
    char how[64];
    ef_format_wait_status(status, how, sizeof(how));
    pid_t pid = r->runtime_pid;
    r->runtime_pid = 0;
    r->invs.runtime_pid = 0;
    r->handed_over = false;
    refuse_waiting_handover(r, "the runtime ended");
    if (r->stopping)
        ef_info("runtime (pid %d) ended: %s", (int)pid, how);
    else if (r->invs.failed && r->invs.fail_doc)
        ef_info("runtime (pid %d) ended: %s; invocations now fail with its init error %s", (int)pid,
                how, r->invs.fail_type ? r->invs.fail_type : "");
    else
        ef_warn("runtime (pid %d) ended: %s; invocations now fail with Runtime.ExitError", (int)pid,
                how);
    kill_runtime_and_descendants(pid);
    /* Its last words belong to the invocations it leaves unanswered. */
    ef_log_capture_drain(&r->capture);
    ef_invocations_fail_exit(&r->invs, how);
    if (!r->stopping)
        notify_runtime_exited(r, pid, how, quiet);
    if (r->stopping)
        close_everything(r);
}

/* ---- deadlines -------------------------------------------------------------------------- */

static void arm_deadline(struct runner *r);

/* A draining runtime has no invocation left (invocations.h): it ends now. */
static void on_drained(void *user)
{
    struct runner *r = user;
    if (r->runtime_pid <= 0)
        return;
    ef_warn("killing the runtime (pid %d): an invocation timed out in it and the last other "
            "invocation has ended",
            (int)r->runtime_pid);
    kill_runtime_and_descendants(r->runtime_pid);
}

static void on_init_grace_over(uv_timer_t *t)
{
    struct runner *r = t->data;
    if (r->runtime_pid <= 0 || r->runtime_pid != r->init_failed_pid)
        return; /* it exited on its own (its status is reported), or a new one runs */
    ef_warn("killing the runtime (pid %d) after its init error: only a new runtime runs init "
            "again",
            (int)r->runtime_pid);
    kill_runtime_and_descendants(r->runtime_pid);
}

/* The runtime reported an init error (invocations.h): it may poll on or sleep, but it cannot
 * serve, so it ends rather than keep the container failing with that error. A runtime that
 * exits by itself after reporting (the bundled ones do) gets INIT_ERROR_GRACE_MS for that, so
 * that its own exit status is what runtime.exited reports; then it is killed. Its exit sends
 * runtime.exited, and the controller replaces the container: the next invocation runs init
 * again, as Lambda resets the environment after a failed init. */
static void on_init_failed(void *user)
{
    struct runner *r = user;
    if (r->runtime_pid <= 0 || r->closed)
        return;
    r->init_failed_pid = r->runtime_pid;
    uv_timer_start(&r->init_grace, on_init_grace_over, INIT_ERROR_GRACE_MS, 0);
}

static void on_deadline(uv_timer_t *t)
{
    struct runner *r = t->data;
    size_t n = ef_invocations_expire(&r->invs, (long long)ef_now_monotonic_ms());
    if (n > 0 && r->runtime_pid > 0 && !r->invs.draining) {
        /* As in Lambda, a timed-out invocation ends its runtime: the handler may still be
         * running and must not go on. Other invocations the runtime already has (several per
         * container) are not made to fail with it: the runtime takes no new one and ends when
         * the last of them ends, which their own deadlines bound. With none, it ends now
         * (on_drained). The controller recycles the container. */
        size_t left = ef_invocations_pending(&r->invs);
        if (left > 0)
            ef_warn("%zu invocation(s) reached their deadline: the runtime (pid %d) takes no new "
                    "invocation and ends once the %zu it has end",
                    n, (int)r->runtime_pid, left);
        else
            ef_warn("%zu invocation(s) reached their deadline", n);
        ef_invocations_drain(&r->invs);
    }
    arm_deadline(r);
}

/* Arms the deadline timer at the earliest deadline of a pending invocation (or stops it). */
static void arm_deadline(struct runner *r)
{
    if (!r->closed)
        ef_invocations_arm_deadline(&r->invs, &r->deadline, on_deadline);
}

/* A hand-out set an invocation's deadline (invocations.h). */
static void on_deadline_set(void *user)
{
    struct runner *r = user;
    if (!r->closed)
        arm_deadline(r);
}

static void on_sigchld(uv_signal_t *h, int signum)
{
    struct runner *r = h->data;
    (void)signum;
    /* As PID 1 we inherit every orphan of the container: reap until nothing is left. */
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid < 0 && errno == EINTR)
            continue;
        if (pid <= 0)
            break;
        if (pid == r->runtime_pid)
            on_runtime_exit(r, status, NULL);
        else if (!ef_prestart_reaped(&r->prestart, pid))
            ef_debug("reaped process %d", (int)pid);
    }
}

/* Starts a Python runtime ahead (--prestart python) when none runs and none waits. */
static void prestart_again(struct runner *r)
{
    if (!r->prestart_python || r->stopping || r->closed || r->runtime_pid > 0 ||
        r->prestart.pid > 0)
        return;
    ef_error err = {0};
    if (ef_prestart_start(&r->prestart, &r->settings, &err) < 0)
        ef_warn("cannot start a Python runtime ahead: %s", err.msg);
}

/* SIGUSR1 from funclet: a reset of the container is complete (every process but this one has
 * ended, /tmp is new), so the container is a cold spare again; with --prestart python it gets a
 * runtime started ahead, like a new spare. Not earlier: a process started while the reset still
 * kills would be killed too. */
static void on_reset_done(uv_signal_t *h, int signum)
{
    (void)signum;
    prestart_again(h->data);
}

static void on_grace_over(uv_timer_t *t)
{
    struct runner *r = t->data;
    if (r->runtime_pid <= 0)
        return;
    ef_warn("runtime (pid %d) still running %d ms after SIGTERM: killing it", (int)r->runtime_pid,
            SHUTDOWN_GRACE_MS);
    kill(-r->runtime_pid, SIGKILL);
    kill(r->runtime_pid, SIGKILL);
    /* SIGKILL cannot be refused: wait for it here rather than for one more loop turn. */
    int status;
    pid_t pid;
    do
        pid = waitpid(r->runtime_pid, &status, 0);
    while (pid < 0 && errno == EINTR);
    if (pid == r->runtime_pid)
        on_runtime_exit(r, status, NULL);
    else
        close_everything(r);
}

static void on_stop_signal(uv_signal_t *h, int signum)
{
    struct runner *r = h->data;
    if (r->stopping)
        return;
    r->stopping = true;
    if (r->runtime_pid <= 0) {
        ef_info("received %s: exiting", strsignal(signum));
        close_everything(r);
        return;
    }
    ef_info("received %s: stopping the runtime (pid %d)", strsignal(signum), (int)r->runtime_pid);
    kill(-r->runtime_pid, SIGTERM);
    kill(r->runtime_pid, SIGTERM);
    uv_timer_start(&r->grace, on_grace_over, SHUTDOWN_GRACE_MS, 0);
}

/* ---- RPC methods ------------------------------------------------------------------------ */

/* Reaps the runtime now if it has ended but its SIGCHLD has not been handled yet: funclet's
 * container.reset kills it from outside, asynchronously to this loop, and its next client may
 * be faster than the signal. `quiet` is that client, which must not hear of the old runtime's
 * end as if it were the one it is starting. */
static void reap_ended_runtime(struct runner *r, ef_rpc_conn *quiet)
{
    if (r->runtime_pid <= 0)
        return;
    int status;
    pid_t pid;
    do
        pid = waitpid(r->runtime_pid, &status, WNOHANG);
    while (pid < 0 && errno == EINTR);
    if (pid == r->runtime_pid)
        on_runtime_exit(r, status, quiet);
}

/* Forgets everything of the previous runtime, which has ended: its invocations (all answered at
 * its exit), its output, its configuration, and the Runtime API's connections, closed with the
 * server so that no poll of the old runtime that the loop has not yet seen end can take an
 * invocation meant for the new one. The Runtime API is started again by ensure_runtime_api(). */
static void forget_previous_runtime(struct runner *r)
{
    r->started = false;
    r->handed_over = false;
    refuse_waiting_handover(r, "the runtime was replaced");
    ef_invocations_reset(&r->invs, "the runtime was replaced");
    ef_log_capture_reset(&r->capture);
    ef_runtime_config_free(&r->config);
    memset(&r->config, 0, sizeof(r->config));
    free(r->default_arn);
    r->default_arn = NULL;
    ef_runtime_api_close(&r->api);
}

static void on_poll_parked(void *user);

/* Starts serving the Runtime API on `port` (0: any free one). */
static int start_runtime_api(struct runner *r, int port, ef_error *err)
{
    int rc = ef_runtime_api_start(&r->api, r->loop, port, &r->invs, err);
    if (rc < 0)
        return rc;
    r->api.on_poll_parked = on_poll_parked;
    r->api.on_poll_parked_user = r;
    r->settings.api_port = ef_runtime_api_port(&r->api);
    return 0;
}

/* Serves the Runtime API if it is not served (after forget_previous_runtime()). */
static int ensure_runtime_api(struct runner *r, ef_error *err)
{
    return r->api.server ? 0 : start_runtime_api(r, r->api_port_flag, err);
}

/* The error data of a runtime that could not be started (docs/rpc.md, `runtime.start`):
 * {"step": "execve", "errno": "ENOENT", "path": "/var/task/bootstrap"}, so that the client tells
 * the function's own fault (its bootstrap) from the pod's without reading the message. NULL when
 * memory runs out: the error is sent without data then. */
static cJSON *start_failure_data(const struct ef_spawn_failure *f, const char *path)
{
    const char *name = strerrorname_np(f->err);
    char number[24];
    if (!name) {
        snprintf(number, sizeof(number), "%d", f->err);
        name = number;
    }
    cJSON *data = cJSON_CreateObject();
    if (!data || !cJSON_AddStringToObject(data, "step", f->step) ||
        !cJSON_AddStringToObject(data, "errno", name) ||
        !cJSON_AddStringToObject(data, "path", path)) {
        cJSON_Delete(data);
        return NULL;
    }
    return data;
}

static void rpc_runtime_start(struct runner *r, ef_rpc_conn *conn, ef_rpc_request *req,
                              const cJSON *params)
{
    reap_ended_runtime(r, conn);
    if (r->runtime_pid > 0) {
        ef_rpc_reply_error(req, EF_RPC_ERR_BUSY, NULL,
                           "the runtime of function %s (pid %d) is still running: a new runtime "
                           "starts only once it has ended (reset the container first)",
                           r->config.function_name, (int)r->runtime_pid);
        return;
    }
    ef_error err = {0};
    struct ef_runtime_config cfg;
    if (ef_runtime_config_parse(params, &cfg, &err) < 0) {
        ef_rpc_reply_error(req, EF_RPC_INVALID_PARAMS, NULL, "runtime.start: %s", err.msg);
        return;
    }
    if (r->started) {
        ef_info("the runtime of function %s has ended: starting a new runtime for function %s",
                r->config.function_name, cfg.function_name);
        forget_previous_runtime(r);
    }
    if (ensure_runtime_api(r, &err) < 0) {
        ef_error("runtime.start for function %s failed: %s", cfg.function_name, err.msg);
        ef_runtime_config_free(&cfg);
        ef_rpc_reply_error(req, EF_RPC_ERR_SYSTEM, NULL, "%s", err.msg);
        return;
    }
    cleanup_free char *path = NULL;
    if (ef_runtime_bootstrap_path(cfg.runtime, &r->settings, &path, &err) < 0) {
        ef_runtime_config_free(&cfg);
        ef_rpc_reply_error(req, EF_RPC_INVALID_PARAMS, NULL, "runtime.start: %s", err.msg);
        return;
    }
    if (cfg.environment) {
        const cJSON *v;
        cJSON_ArrayForEach(v, cfg.environment)
        {
            if (ef_runtime_env_reserved(v->string))
                ef_warn("function %s: environment variable %s is reserved and was ignored",
                        cfg.function_name, v->string);
        }
    }
    char **env = NULL;
    pid_t pid = 0;
    int log_fd = -1;
    bool adopted = false;
    struct ef_spawn_failure failure = {0};
    int rc = ef_runtime_build_env(&cfg, &r->settings, &env, &err);
    if (rc == 0 && ef_prestart_fits(&r->prestart, &cfg)) {
        ef_error why = {0};
        adopted = ef_prestart_adopt(&r->prestart, env, &pid, &log_fd, &why) == 0;
        if (!adopted)
            ef_warn("function %s: %s; starting a new runtime", cfg.function_name, why.msg);
    }
    if (rc == 0 && !adopted) {
        /* A runtime started ahead that does not fit this function is of no further use. */
        ef_prestart_discard(&r->prestart);
        rc = ef_runtime_spawn_ex(path, env, &r->settings, -1, &pid, &log_fd, &failure, &err);
    }
    ef_strv_free(env);
    if (rc == 0) {
        rc = ef_log_capture_start(&r->capture, r->loop, log_fd, -1, &err);
        if (rc < 0) {
            /* A runtime whose output nobody reads would block; do not leave it running. */
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
        }
    }
    if (rc < 0) {
        ef_error("runtime.start for function %s failed: %s", cfg.function_name, err.msg);
        ef_runtime_config_free(&cfg);
        ef_rpc_reply_error(req, EF_RPC_ERR_SYSTEM,
                           failure.step ? start_failure_data(&failure, path) : NULL, "%s", err.msg);
        return;
    }
    r->started = true;
    r->runtimes++;
    r->runtime_pid = pid;
    r->invs.runtime_pid = pid;
    r->invs.max_in_flight = (unsigned)cfg.max_concurrency;
    r->config = cfg;
    if (asprintf(&r->default_arn, "arn:aws:lambda:us-east-1:000000000000:function:%s",
                 cfg.function_name) < 0)
        r->default_arn = NULL;
    ef_info("runtime %s %s for function %s (version %s, handler %s, %ld MB, concurrency "
            "%ld): pid %d, runtime %u of this runner",
            cfg.runtime, adopted ? "(started ahead) given" : "started", cfg.function_name,
            cfg.function_version, cfg.handler, cfg.memory_mb, cfg.max_concurrency, (int)pid,
            r->runtimes);
    cJSON *res = cJSON_CreateObject();
    if (res)
        cJSON_AddNumberToObject(res, "pid", pid);
    ef_rpc_reply(req, res);
}

/* Why the runtime's connection cannot be handed over now, or NULL. */
static const char *handover_refusal(const struct runner *r)
{
    if (!r->started || r->runtime_pid <= 0)
        return "no runtime runs";
    if (r->handed_over)
        return "it is handed over already";
    if (r->invs.max_in_flight != 1)
        return "the runtime serves several invocations at once";
    if (r->invs.failed || r->invs.draining)
        return "the runtime has failed or is draining after a timeout";
    if (ef_invocations_pending(&r->invs) > 0)
        return "invocations are pending";
    return NULL;
}

/* runtime.handover (docs/handover.md): passes the runtime's Runtime API connection, with its
 * /next poll waiting, the read end of its output pipe and its open /proc/<pid>/status to the
 * caller, which serves its invocations from then on. The answer carries the output written
 * since the last invocation ("log"), which belongs to the next one. Whatever fails before the
 * descriptors are sent leaves everything as it was. */
static void rpc_runtime_handover(struct runner *r, ef_rpc_request *req);

/* Answers a runtime.handover that waited for the runtime's poll, if one did: now, from the
 * loop's timer (a poll arrived, or the wait is over, `timed_out`). */
static void on_handover_wait(uv_timer_t *t)
{
    struct runner *r = t->data;
    ef_rpc_request *req = r->handover_req;
    r->handover_req = NULL;
    if (!req)
        return;
    if (r->api.waiters || !r->api.server)
        rpc_runtime_handover(r, req);
    else
        ef_rpc_reply_error(req, EF_RPC_ERR_BUSY, NULL,
                           "runtime.handover: the runtime did not poll within %d ms",
                           HANDOVER_WAIT_MS);
}

/* The runtime's poll has arrived: a waiting runtime.handover is served on the next turn. */
static void on_poll_parked(void *user)
{
    struct runner *r = user;
    if (r->handover_req)
        uv_timer_start(&r->handover_wait, on_handover_wait, 0, 0);
}

static void rpc_runtime_handover(struct runner *r, ef_rpc_request *req)
{
    const char *why = r->handover_req ? "it is asked already" : handover_refusal(r);
    if (why) {
        ef_rpc_reply_error(req, EF_RPC_ERR_BUSY, NULL, "runtime.handover: %s", why);
        return;
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)r->runtime_pid);
    int status_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (status_fd < 0) {
        ef_rpc_reply_error(req, EF_RPC_ERR_SYSTEM, NULL, "runtime.handover: cannot open %s: %s",
                           path, strerror(errno));
        return;
    }
    ef_error err = {0};
    int conn_fd = -1;
    int rc = ef_runtime_api_hand_over(&r->api, &conn_fd, &err);
    if (rc == -EAGAIN) {
        /* Its post was answered before its next poll came: wait for that, briefly. */
        close(status_fd);
        r->handover_req = req;
        uv_timer_start(&r->handover_wait, on_handover_wait, HANDOVER_WAIT_MS, 0);
        return;
    }
    if (rc < 0) {
        close(status_fd);
        ef_rpc_reply_error(req, EF_RPC_ERR_BUSY, NULL, "runtime.handover: %s", err.msg);
        return;
    }
    int log_fd = ef_log_capture_detach(&r->capture);
    cleanup_free char *pending =
        log_fd >= 0 ? ef_log_ring_excerpt(&r->capture.ring, r->invs.log_consumed) : NULL;
    cJSON *res = cJSON_CreateObject();
    if (log_fd < 0 || !pending || !res || !cJSON_AddStringToObject(res, "log", pending) ||
        !cJSON_AddNumberToObject(res, "peak_rss_kb", (double)r->invs.peak_rss_kb)) {
        cJSON_Delete(res);
        ef_rpc_reply_error(req, EF_RPC_ERR_SYSTEM, NULL, "runtime.handover: %s",
                           log_fd < 0 ? "the runtime's output pipe has ended" : "out of memory");
        goto take_back;
    }
    int fds[3] = {conn_fd, log_fd, status_fd};
    if (ef_rpc_reply_fds(req, res, fds, 3) < 0)
        goto take_back;
    /* The caller has its own copies now. */
    r->invs.log_consumed = r->capture.ring.total;
    r->handed_over = true;
    close(conn_fd);
    close(log_fd);
    close(status_fd);
    ef_debug("runtime (pid %d): its connection and output are handed over to the controller",
             (int)r->runtime_pid);
    return;

take_back:
    close(status_fd);
    if (log_fd >= 0 && ef_log_capture_start(&r->capture, r->loop, log_fd, -1, &err) < 0)
        ef_warn("the runtime's output is no longer captured: %s", err.msg);
    if (ef_runtime_api_take_back(&r->api, conn_fd, &err) < 0)
        ef_warn("the runtime's connection is lost: %s", err.msg);
}

/* runtime.kill: ends the runtime (its exit is reported with runtime.exited); what the
 * controller asks for when an invocation it served through a handover timed out. */
static void rpc_runtime_kill(struct runner *r, ef_rpc_request *req, const cJSON *params)
{
    const cJSON *reason = cJSON_GetObjectItemCaseSensitive(params, "reason");
    if (r->runtime_pid <= 0) {
        ef_rpc_reply_error(req, EF_RPC_ERR_NOT_FOUND, NULL, "runtime.kill: no runtime runs");
        return;
    }
    ef_warn("killing the runtime (pid %d) as the controller asks: %s", (int)r->runtime_pid,
            cJSON_IsString(reason) ? reason->valuestring : "no reason given");
    kill_runtime_and_descendants(r->runtime_pid);
    ef_rpc_reply(req, NULL);
}

static void rpc_invoke(struct runner *r, ef_rpc_request *req, const cJSON *params)
{
    if (!r->started) {
        ef_rpc_reply_error(req, EF_RPC_ERR_BUSY, NULL,
                           "the runtime is not started: call runtime.start first");
        return;
    }
    if (r->handed_over) {
        ef_rpc_reply_error(req, EF_RPC_ERR_BUSY, NULL,
                           "the runtime's connection is handed over: its invocations go to the "
                           "one it was handed to");
        return;
    }
    const char *arn = r->default_arn ? r->default_arn : "arn:aws:lambda:us-east-1:000000000000";
    if (ef_invocations_accept(&r->invs, req, params, r->config.timeout_s * 1000LL,
                              INIT_ALLOWANCE_MS, arn) == 0)
        arm_deadline(r);
}

/* Remembers a client connection for notifications (once). */
static void remember_peer(struct runner *r, ef_rpc_conn *conn)
{
    for (struct rpc_peer *p = r->peers; p; p = p->next)
        if (p->conn == conn)
            return;
    struct rpc_peer *p = calloc(1, sizeof(*p));
    if (!p) {
        ef_warn("out of memory: a client will not hear of the runtime's exit");
        return;
    }
    p->conn = conn;
    p->next = r->peers;
    r->peers = p;
}

static void on_rpc_close(ef_rpc_conn *conn, void *user)
{
    struct runner *r = user;
    for (struct rpc_peer **pp = &r->peers; *pp; pp = &(*pp)->next) {
        if ((*pp)->conn == conn) {
            struct rpc_peer *p = *pp;
            *pp = p->next;
            free(p);
            return;
        }
    }
}

static void on_rpc_request(ef_rpc_conn *conn, ef_rpc_request *req, const char *method,
                           const cJSON *params, void *user)
{
    struct runner *r = user;
    remember_peer(r, conn);
    if (r->stopping) {
        ef_rpc_reply_error(req, EF_RPC_ERR_BUSY, NULL, "the runner is shutting down");
        return;
    }
    if (strcmp(method, "runtime.start") == 0)
        rpc_runtime_start(r, conn, req, params);
    else if (strcmp(method, "invoke") == 0)
        rpc_invoke(r, req, params);
    else if (strcmp(method, "runtime.handover") == 0)
        rpc_runtime_handover(r, req);
    else if (strcmp(method, "runtime.kill") == 0)
        rpc_runtime_kill(r, req, params);
    else
        ef_rpc_reply_error(req, EF_RPC_METHOD_NOT_FOUND, NULL,
                           "method '%s' not found: the runner serves runtime.start, invoke, "
                           "runtime.handover and runtime.kill",
                           method);
}

/* ---- setup and teardown ----------------------------------------------------------------- */

static void close_everything(struct runner *r)
{
    if (r->closed)
        return;
    r->closed = true;
    ef_prestart_discard(&r->prestart);
    ef_invocations_free(&r->invs, "the runner is shutting down");
    if (r->rpc) {
        ef_rpc_server_close(r->rpc);
        r->rpc = NULL;
    }
    ef_runtime_api_close(&r->api);
    ef_log_capture_close(&r->capture);
    uv_close((uv_handle_t *)&r->sig_chld, NULL);
    uv_close((uv_handle_t *)&r->sig_term, NULL);
    uv_close((uv_handle_t *)&r->sig_int, NULL);
    uv_close((uv_handle_t *)&r->sig_usr1, NULL);
    uv_close((uv_handle_t *)&r->grace, NULL);
    uv_close((uv_handle_t *)&r->init_grace, NULL);
    uv_close((uv_handle_t *)&r->deadline, NULL);
    refuse_waiting_handover(r, "the runner is shutting down");
    uv_close((uv_handle_t *)&r->handover_wait, NULL);
}

/* Checks that `fd` is a listening stream socket and keeps it from the runtime. */
static int check_rpc_fd(int fd, ef_error *err)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return ef_error_set_errno(err, -errno, "--rpc-fd %d is not open", fd);
    if (!S_ISSOCK(st.st_mode))
        return ef_error_set(err, -ENOTSOCK, "--rpc-fd %d is not a socket", fd);
    int listening = 0;
    socklen_t len = sizeof(listening);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 || !listening)
        return ef_error_set(err, -EINVAL, "--rpc-fd %d is not a listening socket", fd);
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return ef_error_set_errno(err, -errno, "cannot set FD_CLOEXEC on --rpc-fd %d", fd);
    return 0;
}

static const struct ef_rpc_handlers rpc_handlers = {
    .on_request = on_rpc_request,
    .on_close = on_rpc_close,
};

/* Starts one of the signal handles, which run() initialised all at once (close_everything
 * closes every one of them, also after a failure here). */
static int start_signal(struct runner *r, uv_signal_t *h, uv_signal_cb cb, int signum,
                        ef_error *err)
{
    h->data = r;
    int rc = uv_signal_start(h, cb, signum);
    if (rc < 0)
        return ef_error_set(err, rc, "cannot handle %s: %s", strsignal(signum), uv_strerror(rc));
    return 0;
}

static int run(struct runner *r, int rpc_fd, int api_port, bool prestart, ef_error *err)
{
    int rc = check_rpc_fd(rpc_fd, err);
    if (rc < 0)
        return rc;

    /* Handlers first: a runtime must never exist without someone to reap it. */
    uv_timer_init(r->loop, &r->grace);
    r->grace.data = r;
    uv_timer_init(r->loop, &r->init_grace);
    r->init_grace.data = r;
    uv_timer_init(r->loop, &r->deadline);
    r->deadline.data = r;
    uv_timer_init(r->loop, &r->handover_wait);
    r->handover_wait.data = r;
    uv_signal_init(r->loop, &r->sig_chld);
    uv_signal_init(r->loop, &r->sig_term);
    uv_signal_init(r->loop, &r->sig_int);
    uv_signal_init(r->loop, &r->sig_usr1);
    rc = start_signal(r, &r->sig_chld, on_sigchld, SIGCHLD, err);
    if (rc == 0)
        rc = start_signal(r, &r->sig_term, on_stop_signal, SIGTERM, err);
    if (rc == 0)
        rc = start_signal(r, &r->sig_int, on_stop_signal, SIGINT, err);
    if (rc == 0)
        rc = start_signal(r, &r->sig_usr1, on_reset_done, SIGUSR1, err);
    if (rc == 0)
        rc = start_runtime_api(r, api_port, err);
    if (rc == 0)
        rc = ef_rpc_server_listen(r->loop, NULL, rpc_fd, 0, &rpc_handlers, r, &r->rpc, err);
    if (rc < 0) {
        close_everything(r);
        uv_run(r->loop, UV_RUN_DEFAULT);
        return rc;
    }
    ef_info("ready: JSON-RPC on fd %d, Runtime API on 127.0.0.1:%d, runtime as uid %u gid %u",
            rpc_fd, r->settings.api_port, (unsigned)r->settings.uid, (unsigned)r->settings.gid);
    /* Only a cold start's speed depends on it: a failure is logged, not fatal. */
    r->prestart_python = prestart;
    prestart_again(r);
    uv_run(r->loop, UV_RUN_DEFAULT);
    return 0;
}

static const char init_usage[] =
    "easyfaas-runner init --rpc-fd FD --uid N --gid N [--api-port PORT] [--runtime-dir DIR] "
    "[--task-dir DIR] [--prestart python|none]";
static const char init_description[] =
    "Runs as PID 1 of a user container (funclet sets up its namespaces and root file system, "
    "then executes this); it also works as an ordinary process. It reaps every process of the "
    "container and serves JSON-RPC on the listening Unix socket passed as --rpc-fd: "
    "runtime.start starts the runtime's bootstrap (python3.* -> RUNTIME_DIR/python/bootstrap, "
    "nodejs* -> RUNTIME_DIR/node/bootstrap, provided.* -> TASK_DIR/bootstrap) as --uid/--gid "
    "without capabilities, with "
    "no_new_privs, in TASK_DIR, with Lambda's environment; invoke hands an event to the runtime "
    "and answers with its result and the last 64 KiB of its output, or at its deadline (the "
    "runtime then takes no new invocation and is killed once the others it has have ended). Once "
    "the runtime has ended, runtime.start starts a new one, possibly "
    "of another function. The runtime talks to the "
    "Lambda Runtime API served on 127.0.0.1:PORT. SIGTERM or SIGINT stops the runtime (SIGTERM, "
    "then SIGKILL after 1 s) and exits 0.";

int ef_runner_init(int argc, char **argv, int start)
{
    int64_t rpc_fd = -1, uid = -1, gid = -1, api_port = 9001;
    const char *runtime_dir = "/var/runtime", *task_dir = "/var/task", *log_level = "info",
               *prestart = "none", *cpus = NULL;
    const struct ef_option opts[] = {
        {"rpc-fd", EF_OPT_INT, &rpc_fd, "FD",
         "Inherited listening Unix socket for JSON-RPC (required; funclet passes 3).", 0, 1 << 20},
        {"uid", EF_OPT_INT, &uid, "N", "User id the runtime runs as (required; not 0).", 1,
         4294967294LL},
        {"gid", EF_OPT_INT, &gid, "N", "Group id the runtime runs as (required; not 0).", 1,
         4294967294LL},
        {"api-port", EF_OPT_INT, &api_port, "PORT",
         "TCP port of the Runtime API on 127.0.0.1; 0 picks a free one.", 0, 65535},
        {"runtime-dir", EF_OPT_STRING, &runtime_dir, "DIR",
         "Where the runtimes are (LAMBDA_RUNTIME_DIR).", 0, 0},
        {"task-dir", EF_OPT_STRING, &task_dir, "DIR",
         "The function's code and the runtime's working directory (LAMBDA_TASK_ROOT).", 0, 0},
        {"log-level", EF_OPT_STRING, &log_level, "LEVEL",
         "debug, info, warn or error; debug also logs the runtime's output.", 0, 0},
        {"prestart", EF_OPT_STRING, &prestart, "RUNTIME",
         "python: start a Python runtime at once, to be handed to the first python3.* function "
         "whose environment does not change how an interpreter starts (a cold container "
         "then skips the interpreter's start); none (the default): start runtimes on "
         "runtime.start only.",
         0, 0},
        {"cpus", EF_OPT_STRING, &cpus, "LIST",
         "The CPUs the runner and its runtimes may run on, as a list such as 0-3,6: set first "
         "thing (funclet holds the runner on one CPU through its exec and passes the set it "
         "had). Default: keep the inherited set.",
         0, 0},
        {NULL, 0, NULL, NULL, NULL, 0, 0},
    };
    ef_error err = {0};
    int next = argc;
    int rc = ef_options_parse(init_usage, init_description, opts, argc, argv, start, &next, &err);
    if (rc == 1)
        return 0;
    if (rc < 0) {
        fprintf(stderr, "easyfaas-runner init: %s\n", err.msg);
        return 1;
    }
    enum ef_log_level level;
    const char *problem = NULL;
    if (next < argc)
        problem = "unexpected arguments after the flags";
    else if (rpc_fd < 0)
        problem = "--rpc-fd FD is required";
    else if (uid < 0 || gid < 0)
        problem = "--uid N and --gid N are required";
    else if (runtime_dir[0] != '/' || task_dir[0] != '/')
        problem = "--runtime-dir and --task-dir must be absolute paths";
    else if (ef_log_parse_level(log_level, &level) < 0)
        problem = "--log-level must be debug, info, warn or error";
    else if (strcmp(prestart, "python") != 0 && strcmp(prestart, "none") != 0)
        problem = "--prestart must be python or none";
    if (problem) {
        fprintf(stderr, "easyfaas-runner init: %s; see --help\n", problem);
        return 1;
    }
    cpu_set_t cpu_set;
    if (cpus && ef_cpulist_parse(cpus, &cpu_set, &err) < 0) {
        fprintf(stderr, "easyfaas-runner init: --cpus: %s\n", err.msg);
        return 1;
    }
    /* As PID 1 of a container, whose hostname funclet sets to the container's id, the log lines
     * (funclet's log gathers every runner's) say which container they come from. */
    static char log_name[80] = "runner";
    char host[65];
    if (getpid() == 1 && gethostname(host, sizeof(host)) == 0 && host[0])
        snprintf(log_name, sizeof(log_name), "runner:%s", host);
    ef_log_init(log_name, level);
    /* Before any runtime starts, since they inherit it. */
    if (cpus && sched_setaffinity(0, sizeof(cpu_set), &cpu_set) < 0) {
        /* funclet held this process on one CPU: any CPU the kernel allows (it intersects the
         * set with the cpuset) is better than staying there. */
        int e = errno;
        CPU_ZERO(&cpu_set);
        for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
            CPU_SET(cpu, &cpu_set);
        bool widened = sched_setaffinity(0, sizeof(cpu_set), &cpu_set) == 0;
        ef_warn("cannot run on CPUs %s: %s; %s", cpus, strerror(e),
                widened ? "running on every CPU allowed instead" : "staying on the one CPU held");
    }
    /* Outside a container (tests, development) we are not PID 1; becoming a subreaper makes the
     * runtime's orphans ours to reap all the same. */
    if (getpid() != 1 && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
        ef_warn("cannot become a child subreaper: %s", strerror(errno));
    /* A peer that hangs up must not kill us through SIGPIPE; write errors are handled. */
    signal(SIGPIPE, SIG_IGN);

    struct runner r = {
        .api_port_flag = (int)api_port,
        .settings =
            {
                .runtime_dir = runtime_dir,
                .task_dir = task_dir,
                .api_port = (int)api_port,
                .uid = (uid_t)uid,
                .gid = (gid_t)gid,
            },
    };
    uv_loop_t loop;
    uv_loop_init(&loop);
    r.loop = &loop;
    ef_log_capture_init(&r.capture);
    ef_invocations_init(&r.invs, &r.capture);
    r.invs.on_deadline_set = on_deadline_set;
    r.invs.on_deadline_set_user = &r;
    r.invs.on_drained = on_drained;
    r.invs.on_drained_user = &r;
    r.invs.on_init_failed = on_init_failed;
    r.invs.on_init_failed_user = &r;

    ef_prestart_init(&r.prestart);
    rc = run(&r, (int)rpc_fd, (int)api_port, strcmp(prestart, "python") == 0, &err);
    if (rc < 0)
        ef_error("%s", err.msg);
    ef_runtime_config_free(&r.config);
    free(r.default_arn);
    int closed = uv_loop_close(&loop);
    if (closed != 0)
        ef_warn("event loop closed with handles still open: %s", uv_strerror(closed));
    return rc < 0 ? 1 : 0;
}
