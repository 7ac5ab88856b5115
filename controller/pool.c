#include "controller/pool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "controller/codestore.h"
#include "controller/controller.h"
#include "controller/handover.h"
#include "controller/housekeeping.h"
#include "controller/metrics.h"
#include "controller/scheduler.h"
#include "controller/store.h"
#include "controller/validate.h"

/* funclet answers container.create once the runner is accepting; creating namespaces, cgroups
 * and a rootfs takes milliseconds, so 10 s means something is wrong. */
#define CREATE_TIMEOUT_MS  10000
#define DESTROY_TIMEOUT_MS 5000
/* A reset waits up to 5 s for the container's processes to die (docs/rpc.md). */
#define RESET_TIMEOUT_MS 10000
/* runtime.start answers once the bootstrap is spawned, not when it is ready. */
#define START_TIMEOUT_MS 10000

/* An invocation that waits for a container being started for another one (ef_pool_join_spawn). */
struct spawn_waiter {
    struct spawn_waiter *next;
    ef_spawn_cb cb;
    void *user;
};

struct ef_pool_spawn {
    struct ef_pool_spawn *prev_spawn, *next_spawn; /* ef_pool.spawns */
    struct spawn_waiter *waiters, **waiters_tail;
    unsigned promised; /* slots promised: the spawner's and its waiters' */
    struct ef_controller *ctl;
    struct ef_container *c;
    cJSON *start_params; /* runtime.start's params, sent once connected */
    char *function_name;
    char *version;
    int64_t memory_mb;
    unsigned max_in_flight; /* the function's per-container concurrency */
    enum ef_function_network network;
    char *key;
    /* A provided runtime's bootstrap as the controller extracted it (<code dir>/bootstrap), to
     * tell a missing one from one that cannot run; NULL for the other runtimes. */
    char *bootstrap;
    ef_spawn_cb cb;
    void *user;
};

struct destroy_req {
    struct ef_controller *ctl;
    char id[];
};

void ef_pool_init(struct ef_pool *pool)
{
    pool->spawns = NULL;
    pool->head = NULL;
    pool->count = 0;
    pool->seq = 0;
    pool->oom_holds = NULL;
}

char *ef_pool_function_key(const struct ef_function *fn)
{
    char *key = NULL;
    if (asprintf(&key, "%s\n%s\n%s\n%s", fn->name, ef_function_version(fn), fn->code_sha256_hex,
                 fn->config_hash) < 0)
        return NULL;
    return key;
}

static void list_unlink(struct ef_pool *pool, struct ef_container *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        pool->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void list_push_front(struct ef_pool *pool, struct ef_container *c)
{
    c->prev = NULL;
    c->next = pool->head;
    if (pool->head)
        pool->head->prev = c;
    pool->head = c;
}

static void container_free(struct ef_container *c)
{
    free(c->id);
    free(c->runner_socket);
    free(c->function_name);
    free(c->version);
    free(c->key);
    free(c->address);
    free(c->exit_status);
    free(c);
}

/* Frees a container once nothing refers to it any more. */
static void container_maybe_free(struct ef_container *c)
{
    if (!c->in_pool && !c->conn && !c->connecting && !c->handover)
        container_free(c);
}

void ef_pool_handover_gone(struct ef_container *c)
{
    c->handover = NULL;
    container_maybe_free(c);
}

/* Whether `c` can take one more invocation: never one whose runtime has exited, has failed its
 * init, or is draining after a timeout. */
static bool serves_more(const struct ef_container *c)
{
    return !c->runtime_exited && !c->init_failed && !c->timed_out;
}

/* Whether `c` can take one more invocation of `key` now. */
static bool has_slot(const struct ef_container *c, const char *key)
{
    return (c->state == EF_CONTAINER_IDLE ||
            (c->state == EF_CONTAINER_BUSY && c->in_flight < c->max_in_flight)) &&
           serves_more(c) && strcmp(c->key, key) == 0;
}

struct ef_container *ef_pool_take_slot(struct ef_pool *pool, const char *key)
{
    struct ef_container *idle = NULL;
    for (struct ef_container *c = pool->head; c; c = c->next) {
        if (!has_slot(c, key))
            continue;
        if (c->state == EF_CONTAINER_BUSY) {
            idle = c; /* packing: a container already serving comes first */
            break;
        }
        if (!idle) {
            idle = c; /* idle ones are in most recently used order */
            /* Containers of one key share their concurrency (it is part of the key): with one
             * invocation each, no busy one has room, and the first idle one is the answer. */
            if (c->max_in_flight <= 1)
                break;
        }
    }
    if (idle) {
        idle->state = EF_CONTAINER_BUSY;
        idle->in_flight++;
    }
    return idle;
}

bool ef_pool_has_slot(const struct ef_pool *pool, const char *key)
{
    for (const struct ef_container *c = pool->head; c; c = c->next)
        if (has_slot(c, key))
            return true;
    return false;
}

struct ef_container *ef_pool_find(struct ef_pool *pool, const char *id)
{
    for (struct ef_container *c = pool->head; c; c = c->next)
        if (strcmp(c->id, id) == 0)
            return c;
    return NULL;
}

void ef_pool_release(struct ef_container *c)
{
    if (!c->in_pool)
        return;
    struct ef_pool *pool = &c->ctl->pool;
    c->last_used_ms = ef_now_epoch_ms();
    if (c->in_flight > 0)
        c->in_flight--;
    if (c->in_flight == 0 && (c->runtime_exited || c->timed_out)) {
        /* Its last invocations answered before the runtime's end was reported, or after one
         * timed out (the runner kills the runtime now): nothing more can run in it. */
        ef_pool_discard(c,
                        c->runtime_exited ? "its runtime exited" : "an invocation timed out in it");
        ef_sched_capacity_changed(c->ctl->sched);
        return;
    }
    if (c->in_flight == 0) {
        c->state = EF_CONTAINER_IDLE;
        c->idle_since = ef_now_monotonic_ms();
        list_unlink(pool, c);
        list_push_front(pool, c);
    }
    /* An invocation waiting for capacity may take it, or reclaim it for another function. */
    ef_sched_capacity_changed(c->ctl->sched);
}

static void on_destroyed(ef_rpc_conn *conn, const cJSON *result, const struct ef_rpc_error *error,
                         void *user)
{
    (void)conn;
    (void)result;
    struct destroy_req *d = user;
    struct ef_controller *ctl = d->ctl;
    if (!error) {
        ef_info("container %s destroyed", d->id);
    } else if (error->code == EF_RPC_ERR_NOT_FOUND) {
        ef_info("container %s was already gone", d->id);
    } else {
        ef_warn("cannot destroy container %s: %s", d->id, error->message);
        ef_metrics_funclet_error(ctl->metrics, "container.destroy");
    }
    /* Its memory is free now: an invocation waiting for capacity may start. */
    ef_sched_capacity_changed(ctl->sched);
    ctl->pending_destroys--;
    free(d);
    ef_controller_check_stopped(ctl);
}

static void send_destroy(struct ef_controller *ctl, const char *id)
{
    size_t len = strlen(id);
    struct destroy_req *d = malloc(sizeof(*d) + len + 1);
    cJSON *params = cJSON_CreateObject();
    if (!d || !params || !cJSON_AddStringToObject(params, "id", id)) {
        free(d);
        cJSON_Delete(params);
        ef_error("cannot destroy container %s: out of memory", id);
        return;
    }
    d->ctl = ctl;
    memcpy(d->id, id, len + 1);
    int r = ef_funclet_call(ctl->funclet, "container.destroy", params, DESTROY_TIMEOUT_MS,
                            on_destroyed, d);
    if (r < 0) {
        /* funclet removes what a previous connection left behind when it restarts. */
        ef_warn("cannot destroy container %s now: funclet is not connected", id);
        free(d);
        return;
    }
    ctl->pending_destroys++;
}

/* Takes a container out of the pool and closes its runner connection (whose on_close frees it). */
static void pool_remove(struct ef_container *c)
{
    struct ef_pool *pool = &c->ctl->pool;
    list_unlink(pool, c);
    pool->count--;
    c->in_pool = false;
    /* Its invocations in flight are answered on the next turn of the loop, the container
     * staying allocated until then (ef_pool_handover_gone). */
    if (c->handover)
        ef_handover_close(c->handover, "the container was removed from the pool");
    if (c->conn)
        ef_rpc_conn_close(c->conn); /* its on_close frees the container */
    else
        container_maybe_free(c);
}

void ef_pool_discard(struct ef_container *c, const char *why)
{
    if (!c->in_pool)
        return;
    ef_info("discarding container %s of function %s: %s", c->id, c->function_name, why);
    send_destroy(c->ctl, c->id);
    pool_remove(c);
}

void ef_pool_discard_dead(struct ef_container *c, const char *why)
{
    if (!c->in_pool)
        return;
    struct ef_controller *ctl = c->ctl;
    /* A container whose init failed is not replaced: the replacement would fail it too. */
    bool idle = c->state == EF_CONTAINER_IDLE && !c->init_failed;
    bool unused = c->reborn && c->invocations == 0;
    /* Copies: discarding may free the container. */
    cleanup_free char *name = idle ? strdup(c->function_name) : NULL;
    cleanup_free char *version = idle ? strdup(c->version) : NULL;
    cleanup_free char *key = idle ? strdup(c->key) : NULL;
    ef_metrics_container_retired(ctl->metrics, EF_RETIRE_UNHEALTHY);
    ef_pool_discard(c, why);
    /* After the destroy, so that funclet has its memory back for the replacement. */
    if (name && version && key)
        ef_housekeeping_reborn(ctl->housekeeping, name, version, key, unused);
}

void ef_pool_destroy_unknown(struct ef_controller *ctl, const char *id)
{
    send_destroy(ctl, id);
}

struct reset_req {
    struct ef_controller *ctl;
    char id[];
};

static void on_reset(ef_rpc_conn *conn, const cJSON *result, const struct ef_rpc_error *error,
                     void *user)
{
    (void)conn;
    struct reset_req *rq = user;
    struct ef_controller *ctl = rq->ctl;
    if (!error) {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(result, "state");
        ef_info("container %s cooled down: %s", rq->id,
                cJSON_IsString(st) && strcmp(st->valuestring, "destroyed") == 0
                    ? "destroyed, funclet's pool being full"
                    : "back in funclet's cold pool");
    } else {
        ef_warn("cannot reset container %s (%s); destroying it", rq->id, error->message);
        ef_metrics_funclet_error(ctl->metrics, "container.reset");
        if (error->code != EF_RPC_ERR_NOT_FOUND && error->code != EF_RPC_ERR_CLOSED)
            send_destroy(ctl, rq->id);
    }
    ctl->pending_destroys--;
    free(rq);
    ef_sched_capacity_changed(ctl->sched);
    ef_controller_check_stopped(ctl);
}

/* Asks funclet to reset a container into its cold pool; destroys it when that cannot be sent. */
static void send_reset(struct ef_controller *ctl, const char *id)
{
    size_t len = strlen(id);
    struct reset_req *rq = malloc(sizeof(*rq) + len + 1);
    cJSON *params = cJSON_CreateObject();
    if (!rq || !params || !cJSON_AddStringToObject(params, "id", id) ||
        !cJSON_AddBoolToObject(params, "release", true)) {
        free(rq);
        cJSON_Delete(params);
        send_destroy(ctl, id);
        return;
    }
    rq->ctl = ctl;
    memcpy(rq->id, id, len + 1);
    if (ef_funclet_call(ctl->funclet, "container.reset", params, RESET_TIMEOUT_MS, on_reset, rq) <
        0) {
        ef_warn("cannot cool container %s down now: funclet is not connected", id);
        free(rq);
        return;
    }
    ctl->pending_destroys++; /* a stop waits for it like for a destroy */
}

void ef_pool_retire(struct ef_container *c, const char *why, bool reset)
{
    if (!c->in_pool)
        return;
    ef_info("retiring container %s of function %s: %s", c->id, c->function_name, why);
    /* The runner's connection closes first: the container is funclet's again, and whoever
     * warms it next connects anew. */
    if (reset)
        send_reset(c->ctl, c->id);
    else
        send_destroy(c->ctl, c->id);
    pool_remove(c);
}

unsigned ef_pool_reclaim(struct ef_pool *pool, const char *key, int64_t need_mb)
{
    unsigned n = 0;
    int64_t freed = 0;
    while (n == 0 || freed < need_mb) {
        /* The least recently used idle container of another identity. */
        struct ef_container *lru = NULL;
        for (struct ef_container *c = pool->head; c; c = c->next)
            if (c->state == EF_CONTAINER_IDLE && strcmp(c->key, key) != 0 &&
                (!lru || c->idle_since <= lru->idle_since))
                lru = c;
        if (!lru)
            break;
        char why[200];
        snprintf(why, sizeof(why), "the node is out of capacity and its %lld MB are needed",
                 (long long)lru->memory_mb);
        freed += lru->memory_mb;
        n++;
        ef_metrics_container_retired(lru->ctl->metrics, EF_RETIRE_RECLAIM);
        ef_pool_discard(lru, why);
    }
    return n;
}

void ef_pool_discard_all(struct ef_pool *pool)
{
    while (pool->head)
        ef_pool_discard(pool->head, "the controller is stopping");
}

void ef_pool_container_exited(struct ef_pool *pool, const char *id, const char *status)
{
    struct ef_container *c = ef_pool_find(pool, id);
    if (!c) {
        ef_debug("container %s exited (%s); not in the pool", id, status);
        return;
    }
    free(c->exit_status);
    c->exit_status = strdup(status);
    char why[160];
    snprintf(why, sizeof(why), "its runner exited (%s)", status);
    ef_pool_discard_dead(c, why);
}

static void format_iso(uint64_t epoch_ms, char *buf, size_t len)
{
    time_t secs = (time_t)(epoch_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03uZ", (unsigned)(epoch_ms % 1000));
}

cJSON *ef_pool_to_json(const struct ef_pool *pool)
{
    static const char *const names[] = {"starting", "idle", "busy"};
    uint64_t now = ef_now_monotonic_ms();
    cJSON *arr = cJSON_CreateArray();
    if (!arr)
        return NULL;
    for (const struct ef_container *c = pool->head; c; c = c->next) {
        char when[40];
        format_iso(c->last_used_ms, when, sizeof(when));
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddStringToObject(o, "id", c->id) ||
            !cJSON_AddStringToObject(
                o, "state",
                c->state == EF_CONTAINER_BUSY && c->timed_out ? "draining" : names[c->state]) ||
            !cJSON_AddStringToObject(o, "function", c->function_name) ||
            !cJSON_AddStringToObject(o, "version", c->version) ||
            !cJSON_AddNumberToObject(o, "memory_mb", (double)c->memory_mb) ||
            !cJSON_AddNumberToObject(o, "invocations", c->invocations) ||
            !cJSON_AddNumberToObject(o, "in_flight", c->in_flight) ||
            !cJSON_AddNumberToObject(o, "max_in_flight", c->max_in_flight) ||
            !cJSON_AddStringToObject(o, "network", c->network) ||
            !cJSON_AddBoolToObject(o, "handover", ef_handover_serving(c->handover)) ||
            (c->address && !cJSON_AddStringToObject(o, "address", c->address)) ||
            !cJSON_AddNumberToObject(o, "last_used_ms", (double)c->last_used_ms) ||
            !cJSON_AddStringToObject(o, "last_used", when) ||
            (c->state == EF_CONTAINER_IDLE &&
             !cJSON_AddNumberToObject(o, "idle_ms",
                                      (double)(now > c->idle_since ? now - c->idle_since : 0)))) {
            cJSON_Delete(o);
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

/* ---- runner connection ---- */

static void on_runner_request(ef_rpc_conn *conn, ef_rpc_request *req, const char *method,
                              const cJSON *params, void *user)
{
    (void)conn;
    (void)params;
    (void)user;
    ef_rpc_reply_error(req, EF_RPC_METHOD_NOT_FOUND, NULL, "the controller serves no method '%s'",
                       method);
}

/* runtime.exited: the runtime of this container is gone (it crashed, or exited after an
 * unhandled error). An idle container is discarded at once, so the next invocation does not meet
 * a dead runtime; a busy one is discarded when its invocation's answer arrives. */
static void on_runner_notification(ef_rpc_conn *conn, const char *method, const cJSON *params,
                                   void *user)
{
    (void)conn;
    struct ef_container *c = user;
    if (strcmp(method, "runtime.exited") != 0) {
        ef_debug("container %s sent an unknown notification '%s'", c->id, method);
        return;
    }
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(params, "status");
    const char *how = cJSON_IsString(st) ? st->valuestring : "unknown";
    c->runtime_exited = true;
    if (!c->exit_status)
        c->exit_status = strdup(how);
    /* What the runner would have done with invocations in flight: they fail with the exit. */
    if (c->handover) {
        ef_handover_runtime_exited(c->handover, how);
        ef_handover_close(c->handover, "its runtime exited");
    }
    /* Not replaced: a runtime that ends on its own (e.g. after an unhandled error) would only
     * make a replacement cold-start for nothing; the next invocation starts one if needed. */
    if (c->state == EF_CONTAINER_IDLE) {
        char why[160];
        snprintf(why, sizeof(why), "its runtime exited (%s)", how);
        ef_pool_discard(c, why);
    }
}

static void on_runner_close(ef_rpc_conn *conn, void *user)
{
    (void)conn;
    struct ef_container *c = user;
    c->conn = NULL;
    /* Both discards free it, the connection being gone. An idle container that loses its runner
     * unasked has died, and is replaced; a busy one's invocation reports the exit. */
    if (c->in_pool && c->state == EF_CONTAINER_IDLE)
        ef_pool_discard_dead(c, "its runner connection closed");
    else if (c->in_pool)
        ef_pool_discard(c, "its runner connection closed");
    else
        container_maybe_free(c);
}

static const struct ef_rpc_handlers runner_handlers = {
    .on_request = on_runner_request,
    .on_notification = on_runner_notification,
    .on_close = on_runner_close,
    .receive_fds = true, /* runtime.handover */
};

/* ---- spawning ---- */

static void spawn_free(struct ef_pool_spawn *sp)
{
    cJSON_Delete(sp->start_params);
    free(sp->function_name);
    free(sp->version);
    free(sp->key);
    free(sp->bootstrap);
    free(sp);
}

/* Hands the container (or the failure) to the invocations that joined the spawn. */
static void serve_waiters(struct spawn_waiter *w, struct ef_container *c, const ef_error *err)
{
    while (w) {
        struct spawn_waiter *next = w->next;
        if (c && c->in_pool && serves_more(c) && c->in_flight < c->max_in_flight) {
            c->state = EF_CONTAINER_BUSY;
            c->in_flight++;
            w->cb(c, NULL, w->user);
        } else {
            ef_error gone = {.code = -EAGAIN};
            if (!err)
                snprintf(gone.msg, sizeof(gone.msg),
                         "the container started for this invocation went away before serving it");
            w->cb(NULL, err ? err : &gone, w->user);
        }
        free(w);
        w = next;
    }
}

static void spawn_finish(struct ef_pool_spawn *sp, struct ef_container *c, const ef_error *err)
{
    struct ef_controller *ctl = sp->ctl;
    struct ef_pool *pool = &ctl->pool;
    if (c)
        c->spawn = NULL;
    if (sp->prev_spawn)
        sp->prev_spawn->next_spawn = sp->next_spawn;
    else
        pool->spawns = sp->next_spawn;
    if (sp->next_spawn)
        sp->next_spawn->prev_spawn = sp->prev_spawn;
    ctl->pending_spawns--;
    struct spawn_waiter *waiters = steal_pointer(&sp->waiters);
    sp->cb(c, err, sp->user);
    /* Whatever the spawner did with the container (a failed send discards it), it is still
     * allocated here: a started container is freed only after its runner connection's
     * asynchronous close. serve_waiters() hands out only one that is still in the pool. */
    serve_waiters(waiters, c, err);
    spawn_free(sp);
    ef_controller_check_stopped(ctl);
}

bool ef_pool_join_spawn(struct ef_pool *pool, const char *key, ef_spawn_cb cb, void *user)
{
    for (struct ef_pool_spawn *sp = pool->spawns; sp; sp = sp->next_spawn) {
        if (sp->promised >= sp->max_in_flight ||
            (sp->c && (!sp->c->in_pool || !serves_more(sp->c))) ||
            strcmp(sp->key ? sp->key : sp->c->key, key) != 0)
            continue; /* full, already lost, failed or draining, or another function's */
        struct spawn_waiter *w = calloc(1, sizeof(*w));
        if (!w)
            return false;
        w->cb = cb;
        w->user = user;
        *sp->waiters_tail = w;
        sp->waiters_tail = &w->next;
        sp->promised++;
        return true;
    }
    return false;
}

static void spawn_fail(struct ef_pool_spawn *sp, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void spawn_fail(struct ef_pool_spawn *sp, int code, const char *fmt, ...)
{
    ef_error err = {.code = code};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err.msg, sizeof(err.msg), fmt, ap);
    va_end(ap);
    /* Detach first: discarding may free a container that has no connection. */
    struct ef_container *c = steal_pointer(&sp->c);
    if (c) {
        c->spawn = NULL;
        ef_pool_discard(c, err.msg);
    }
    spawn_finish(sp, NULL, &err);
}

/* A spawn whose container left the pool meanwhile (stop, or funclet reported its exit). */
static bool spawn_abandoned(struct ef_pool_spawn *sp)
{
    if (sp->c->in_pool)
        return false;
    if (sp->ctl->shutting_down)
        spawn_fail(sp, -ESHUTDOWN, "the controller is stopping");
    else
        spawn_fail(sp, -EIO, "container %s exited while starting (%s)", sp->c->id,
                   sp->c->exit_status ? sp->c->exit_status : "runner connection closed");
    return true;
}

/* Whether a failed runtime.start is the function's own fault, and why as Lambda words it. The
 * runner answers a runtime it could not start with -32013 and the data {"step", "errno", "path"}
 * (docs/rpc.md); for a provided runtime, step "execve" with ENOENT, EACCES or ENOEXEC is the
 * function's `bootstrap` (missing, not executable, a directory, an interpreter line naming
 * nothing, not a program): Lambda's Runtime.InvalidEntrypoint. Anything else (a step before
 * execve, the runtimes of the pod, memory, an answer without data) stays a service failure.
 * Fills `why` ("Couldn't find valid bootstrap(s): [/var/task/bootstrap]" or "fork/exec
 * /var/task/bootstrap: permission denied") and returns true when it is the function's. */
static bool invalid_entrypoint(const struct ef_pool_spawn *sp, const struct ef_rpc_error *error,
                               char *why, size_t len)
{
    static const struct {
        const char *name; /* the errno's name, as the runner sends it */
        const char *go;   /* as Lambda's own runtime interface (Go) words it */
    } causes[] = {
        {"ENOENT", "no such file or directory"},
        {"EACCES", "permission denied"},
        {"ENOEXEC", "exec format error"},
    };
    if (!sp->bootstrap || error->code != EF_RPC_ERR_SYSTEM || !cJSON_IsObject(error->data))
        return false;
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(error->data, "step");
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(error->data, "errno");
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(error->data, "path");
    if (!cJSON_IsString(step) || strcmp(step->valuestring, "execve") != 0 || !cJSON_IsString(err) ||
        !cJSON_IsString(path) || path->valuestring[0] != '/' || strlen(path->valuestring) > 4096)
        return false;
    for (size_t i = 0; i < EF_ARRAY_SIZE(causes); i++) {
        if (strcmp(err->valuestring, causes[i].name) != 0)
            continue;
        /* ENOENT also comes from an interpreter line naming a missing program: only a
         * bootstrap that is not there at all is "not found". */
        if (i == 0 && faccessat(AT_FDCWD, sp->bootstrap, F_OK, AT_SYMLINK_NOFOLLOW) < 0 &&
            errno == ENOENT)
            snprintf(why, len, "Couldn't find valid bootstrap(s): [%s]", path->valuestring);
        else
            snprintf(why, len, "fork/exec %s: %s", path->valuestring, causes[i].go);
        return true;
    }
    return false;
}

static void on_runtime_started(ef_rpc_conn *conn, const cJSON *result,
                               const struct ef_rpc_error *error, void *user)
{
    (void)conn;
    (void)result;
    struct ef_pool_spawn *sp = user;
    if (spawn_abandoned(sp))
        return;
    if (error && error->code == EF_RPC_ERR_BUSY) {
        /* funclet hands out a reset container only once its runner has reaped the previous
         * runtime, so this is a runner that cannot start a second runtime (an older runner in
         * the runtimes volume) or one whose runtime outlived the reset. */
        spawn_fail(sp, -EAGAIN,
                   "the runner of container %s refused to start the runtime as its previous "
                   "runtime is still running or it cannot start a second one: %s",
                   sp->c->id, error->message);
        return;
    }
    char why[400];
    if (error && invalid_entrypoint(sp, error, why, sizeof(why))) {
        /* The container itself is fine, but it is discarded all the same (spawn_fail): it was
         * warmed up for this function, and a reset would cost about what a new one does. */
        spawn_fail(sp, -ENOEXEC, "%s", why);
        return;
    }
    if (error) {
        spawn_fail(sp, -EIO, "runtime.start failed in container %s: %s", sp->c->id, error->message);
        return;
    }
    sp->c->state = EF_CONTAINER_BUSY;
    sp->c->in_flight = 1;
    ef_info("container %s started for function %s", sp->c->id, sp->c->function_name);
    spawn_finish(sp, sp->c, NULL);
}

static void on_runner_connected(ef_rpc_conn *conn, int status, void *user)
{
    struct ef_container *c = user;
    struct ef_pool_spawn *sp = c->spawn; /* a spawn ends only in callbacks after this one */
    c->connecting = false;
    c->conn = conn;
    if (spawn_abandoned(sp)) {
        if (conn)
            ef_rpc_conn_close(conn);
        else
            container_maybe_free(c);
        return;
    }
    if (status < 0) {
        spawn_fail(sp, -EIO, "cannot connect to the runner of container %s at %s: %s", c->id,
                   c->runner_socket, uv_strerror(status));
        return;
    }
    int r = ef_rpc_call(conn, "runtime.start", steal_pointer(&sp->start_params), START_TIMEOUT_MS,
                        on_runtime_started, sp);
    if (r < 0)
        spawn_fail(sp, r, "cannot send runtime.start to container %s: %s", c->id, strerror(-r));
}

static void on_created(ef_rpc_conn *conn, const cJSON *result, const struct ef_rpc_error *error,
                       void *user)
{
    (void)conn;
    struct ef_pool_spawn *sp = user;
    struct ef_controller *ctl = sp->ctl;
    if (error) {
        ef_metrics_funclet_error(ctl->metrics, "container.create");
        if (error->code == EF_RPC_ERR_NO_CAPACITY)
            spawn_fail(sp, -ENOSPC, "Rate Exceeded. No capacity for another container: %s",
                       error->message);
        else if (error->code == EF_RPC_ERR_CLOSED)
            spawn_fail(sp, -ENOTCONN, "funclet went away while creating a container");
        else
            spawn_fail(sp, -EIO, "funclet could not create a container: %s", error->message);
        return;
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(result, "id");
    const cJSON *sock = cJSON_GetObjectItemCaseSensitive(result, "runner_socket");
    if (!cJSON_IsString(id) || !cJSON_IsString(sock)) {
        spawn_fail(sp, -EPROTO, "funclet's container.create result lacks id or runner_socket");
        return;
    }
    /* A container on another network than the function's must never run it. A result without
     * "network" is taken for the default, none, and is therefore refused for the other modes. */
    const char *want = ef_function_network_name(sp->network);
    const cJSON *network = cJSON_GetObjectItemCaseSensitive(result, "network");
    const cJSON *address = cJSON_GetObjectItemCaseSensitive(result, "address");
    const char *got = cJSON_IsString(network) ? network->valuestring : "none";
    if (strcmp(got, want) != 0) {
        send_destroy(ctl, id->valuestring);
        spawn_fail(sp, -EPROTO, "funclet created container %s with network %.16s instead of %s",
                   id->valuestring, got, want);
        return;
    }

    struct ef_container *c = calloc(1, sizeof(*c));
    if (!c || !(c->id = strdup(id->valuestring)) ||
        !(c->runner_socket = strdup(sock->valuestring)) ||
        (cJSON_IsString(address) && !(c->address = strdup(address->valuestring)))) {
        if (c)
            container_free(c);
        /* The container exists at funclet's; do not leak it. */
        send_destroy(ctl, id->valuestring);
        spawn_fail(sp, -ENOMEM, "out of memory");
        return;
    }
    c->ctl = ctl;
    c->function_name = steal_pointer(&sp->function_name);
    c->version = steal_pointer(&sp->version);
    c->key = steal_pointer(&sp->key);
    c->memory_mb = sp->memory_mb;
    c->max_in_flight = sp->max_in_flight;
    c->network = ef_function_network_name(sp->network);
    c->state = EF_CONTAINER_STARTING;
    c->last_used_ms = ef_now_epoch_ms();
    c->idle_since = ef_now_monotonic_ms();
    c->seq = ++ctl->pool.seq;
    c->in_pool = true;
    c->spawn = sp;
    list_push_front(&ctl->pool, c);
    ctl->pool.count++;
    sp->c = c;
    ef_debug("container %s created for function %s", c->id, c->function_name);

    if (ctl->shutting_down) {
        spawn_fail(sp, -ESHUTDOWN, "the controller is stopping");
        return;
    }
    ef_error err = {0};
    c->connecting = true;
    int r =
        ef_rpc_connect(ctl->loop, c->runner_socket, &runner_handlers, c, on_runner_connected, &err);
    if (r < 0) {
        c->connecting = false;
        spawn_fail(sp, r, "cannot connect to the runner of container %s: %s", c->id, err.msg);
    }
}

static cJSON *runtime_start_params(const struct ef_function *fn)
{
    cleanup_cjson cJSON *p = cJSON_CreateObject();
    cJSON *env = cJSON_Parse(fn->environment);
    if (!p || !env || !cJSON_IsObject(env)) {
        cJSON_Delete(env);
        return NULL;
    }
    cJSON_AddItemToObject(p, "environment", env);
    if (!cJSON_AddStringToObject(p, "function_name", fn->name) ||
        !cJSON_AddStringToObject(p, "function_version", ef_function_version(fn)) ||
        !cJSON_AddStringToObject(p, "handler", fn->handler) ||
        !cJSON_AddStringToObject(p, "runtime", fn->runtime) ||
        !cJSON_AddNumberToObject(p, "memory_mb", (double)fn->memory_mb) ||
        !cJSON_AddNumberToObject(p, "timeout_s", (double)fn->timeout_s) ||
        !cJSON_AddNumberToObject(p, "max_concurrency", (double)fn->container_concurrency))
        return NULL;
    return steal_pointer(&p);
}

int ef_pool_spawn(struct ef_controller *ctl, const struct ef_function *fn, const char *key,
                  ef_spawn_cb cb, void *user, ef_error *err)
{
    if (ctl->shutting_down)
        return ef_error_set(err, -ESHUTDOWN, "the controller is stopping");
    /* A function stored with host while the operator allowed it keeps the setting after a restart
     * without --allow-host-network; it is then not started rather than given the pod's network
     * behind the operator's back. */
    if (fn->network == EF_FN_NETWORK_HOST && !ctl->allow_host_network)
        return ef_error_set(err, -EPERM,
                            "function %s has NetworkMode host, which this controller does not "
                            "allow: change its NetworkMode, or start the controller with "
                            "--allow-host-network",
                            fn->name);
    if (!ef_funclet_connected(ctl->funclet))
        return ef_error_set(err, -ENOTCONN,
                            "funclet is not reachable at %s; retrying every second. No container "
                            "can be started until it is back: retry the invocation shortly",
                            ef_funclet_path(ctl->funclet));

    int r = ef_codestore_ensure_extracted(ctl->code_root, fn->code_sha256_hex,
                                          &ef_zip_default_limits, err);
    /* A full disk is the node's fault, not a lack of capacity for containers, which -ENOSPC
     * means to the callers of the pool (a 429 after a wait): it is an error of the service. */
    if (r == -ENOSPC)
        r = err->code = -EIO;
    if (r < 0)
        return r;
    cleanup_free char *code_dir = ef_codestore_extracted_path(ctl->code_root, fn->code_sha256_hex);
    cleanup_cjson cJSON *params = cJSON_CreateObject();
    struct ef_pool_spawn *sp = calloc(1, sizeof(*sp));
    /* funclet warms one of its cold spares up with the code (container.create with a code_dir
     * is container.acquire) and records whose it is, shown by container.list. */
    cJSON *identity = params ? cJSON_AddObjectToObject(params, "identity") : NULL;
    if (!code_dir || !params || !sp || !cJSON_AddStringToObject(params, "code_dir", code_dir) ||
        !cJSON_AddNumberToObject(params, "memory_mb", (double)fn->memory_mb) ||
        !cJSON_AddStringToObject(params, "network", ef_function_network_name(fn->network)) ||
        !identity || !cJSON_AddStringToObject(identity, "name", fn->name) ||
        !cJSON_AddStringToObject(identity, "version", ef_function_version(fn)) ||
        !cJSON_AddStringToObject(identity, "code_sha256", fn->code_sha256_hex) ||
        !cJSON_AddStringToObject(identity, "config_hash", fn->config_hash) ||
        !(sp->start_params = runtime_start_params(fn)) || !(sp->function_name = strdup(fn->name)) ||
        !(sp->version = strdup(ef_function_version(fn))) || !(sp->key = strdup(key))) {
        if (sp)
            spawn_free(sp);
        return ef_error_set(err, -ENOMEM, "out of memory");
    }
    if (ef_runtime_is_custom(fn->runtime) &&
        asprintf(&sp->bootstrap, "%s/bootstrap", code_dir) < 0) {
        sp->bootstrap = NULL;
        spawn_free(sp);
        return ef_error_set(err, -ENOMEM, "out of memory");
    }
    sp->ctl = ctl;
    sp->memory_mb = fn->memory_mb;
    sp->max_in_flight = fn->container_concurrency > 1 ? (unsigned)fn->container_concurrency : 1;
    sp->network = fn->network;
    sp->cb = cb;
    sp->user = user;
    sp->promised = 1;
    sp->waiters_tail = &sp->waiters;
    r = ef_funclet_call(ctl->funclet, "container.create", steal_pointer(&params), CREATE_TIMEOUT_MS,
                        on_created, sp);
    if (r < 0) {
        spawn_free(sp);
        return ef_error_set(err, r, "cannot ask funclet for a container: %s", strerror(-r));
    }
    ctl->pending_spawns++;
    sp->next_spawn = ctl->pool.spawns;
    if (ctl->pool.spawns)
        ctl->pool.spawns->prev_spawn = sp;
    ctl->pool.spawns = sp;
    return 0;
}
