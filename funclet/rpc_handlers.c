#include "funclet/rpc_handlers.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "funclet/capacity.h"
#include "funclet/cgroup.h"
#include "funclet/container.h"
#include "funclet/ipam.h"
#include "funclet/pool.h"
#include "funclet/server.h"
#include "funclet/validate.h"
#include "funclet/wait_status.h"

/* Replies with `result`, or with an internal error when building it ran out of memory. */
static void reply(ef_rpc_request *req, const char *method, cJSON *result)
{
    if (!result) {
        ef_rpc_reply_error(req, EF_RPC_INTERNAL_ERROR, NULL, "%s: out of memory", method);
        return;
    }
    ef_rpc_reply(req, result);
}

/* The JSON-RPC error code of a failure (see ef_container_system_error). */
static int rpc_code(int r)
{
    switch (r) {
    case -EINVAL:
        return EF_RPC_INVALID_PARAMS;
    case -EBUSY:
        return EF_RPC_ERR_BUSY;
    case -ENOSPC:
        return EF_RPC_ERR_NO_CAPACITY;
    case -ENOMEM:
        return EF_RPC_INTERNAL_ERROR;
    default:
        return EF_RPC_ERR_SYSTEM;
    }
}

static void reply_failure(ef_rpc_request *req, int r, const ef_error *e)
{
    /* Refusals are the client's business; failures of the system are also funclet's. */
    if (rpc_code(r) == EF_RPC_ERR_SYSTEM || rpc_code(r) == EF_RPC_INTERNAL_ERROR)
        ef_error("%s", e->msg);
    ef_rpc_reply_error(req, rpc_code(r), NULL, "%s", e->msg);
}

static void node_info(struct ef_funclet *f, ef_rpc_request *req, const cJSON *params)
{
    ef_error e;
    if (ef_validate_no_params(params, "node.info", &e) < 0) {
        ef_rpc_reply_error(req, EF_RPC_INVALID_PARAMS, NULL, "%s", e.msg);
        return;
    }
    uint64_t allocated = ef_container_allocated_mb(f);
    size_t creating = 0;
    size_t cold = ef_pool_count(f, &creating);
    cJSON *r = cJSON_CreateObject();
    cJSON *pool = cJSON_CreateObject();
    cJSON *net = cJSON_CreateObject();
    if (r && pool && net &&
        (!cJSON_AddNumberToObject(r, "cgroup_version", ef_cgroup_manager_version(f->cgroups)) ||
         !cJSON_AddNumberToObject(r, "memory_total_mb", (double)f->memory_total_mb) ||
         !cJSON_AddNumberToObject(r, "reserved_mb", (double)(f->cfg.reserved_memory >> 20)) ||
         !cJSON_AddNumberToObject(r, "capacity_mb", (double)f->capacity_mb) ||
         !cJSON_AddNumberToObject(r, "allocated_mb", (double)allocated) ||
         !cJSON_AddNumberToObject(
             r, "free_mb", (double)(allocated < f->capacity_mb ? f->capacity_mb - allocated : 0)) ||
         !cJSON_AddNumberToObject(r, "containers", (double)f->n_containers) ||
         !cJSON_AddNumberToObject(r, "max_containers", (double)f->cfg.max_containers) ||
         !cJSON_AddNumberToObject(pool, "size", (double)f->cfg.pool_size) ||
         !cJSON_AddNumberToObject(pool, "cold", (double)cold) ||
         !cJSON_AddNumberToObject(pool, "creating", (double)creating) ||
         !cJSON_AddNumberToObject(pool, "cold_memory_mb", (double)f->cfg.cold_memory_mb) ||
         !cJSON_AddStringToObject(net, "bridge", f->network.bridge) ||
         !cJSON_AddStringToObject(net, "cidr", f->network.cidr) ||
         !cJSON_AddNumberToObject(net, "addresses_used", (double)f->network.ipam.n_used))) {
        cJSON_Delete(r);
        r = NULL;
    }
    if (r) {
        cJSON_AddItemToObject(r, "pool", steal_pointer(&pool));
        cJSON_AddItemToObject(r, "network", steal_pointer(&net));
    }
    cJSON_Delete(pool);
    cJSON_Delete(net);
    reply(req, "node.info", r);
}

/* What every answer that hands out a container carries. */
static cJSON *handout_json(const struct ef_container *c)
{
    cleanup_cjson cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddStringToObject(o, "id", c->id) ||
        !cJSON_AddNumberToObject(o, "pid", c->pid) ||
        !cJSON_AddStringToObject(o, "runner_socket", c->runner_socket) ||
        !cJSON_AddStringToObject(o, "state", ef_container_state_name(c)) ||
        !cJSON_AddStringToObject(o, "network", ef_network_mode_name(c->network)))
        return NULL;
    if (c->net.veth[0]) {
        char addr[16], gw[16];
        ef_ipam_format(c->net.addr, addr, sizeof(addr));
        ef_ipam_format(ef_ipam_gateway(&c->funclet->network.ipam), gw, sizeof(gw));
        if (!cJSON_AddStringToObject(o, "address", addr) ||
            !cJSON_AddStringToObject(o, "gateway", gw))
            return NULL;
    }
    return steal_pointer(&o);
}

static void log_warm(const struct ef_container *c, const char *how)
{
    ef_info("container %s warm%s: function %s, memory %lld MB, pids %lld, cpu %lld millicores, "
            "network %s, code %s",
            c->id, how, c->has_identity ? c->identity.name : "(no identity)",
            (long long)c->memory_mb, (long long)c->pids_max, (long long)c->cpu_millicores,
            ef_network_mode_name(c->network), c->code_dir);
}

/* An asynchronous request: answered in the callback of the container step. */
struct pending {
    ef_rpc_request *req;
    const char *method;
};

static struct pending *pending_new(ef_rpc_request *req, const char *method)
{
    struct pending *p = calloc(1, sizeof(*p));
    if (p) {
        p->req = req;
        p->method = method;
    }
    return p;
}

static void on_handed_out(struct ef_funclet *f, struct ef_container *c, int r, const ef_error *err,
                          void *user)
{
    (void)f;
    struct pending *p = user;
    if (!c) {
        reply_failure(p->req, r == -ECANCELED ? -EIO : r, err);
    } else {
        if (c->state == EF_CONTAINER_WARM)
            log_warm(c, "");
        else
            ef_info("container %s created: pid %d, cold, network %s", c->id, (int)c->pid,
                    ef_network_mode_name(c->network));
        reply(p->req, p->method, handout_json(c));
    }
    free(p);
}

/* Makes room for one more container: under --max-containers and within the memory capacity,
 * evicting spares of the pool if needed. */
static int make_room(struct ef_funclet *f, uint64_t memory_mb, ef_error *err)
{
    if (f->n_containers >= f->cfg.max_containers && !ef_pool_evict(f))
        return ef_error_set(err, -ENOSPC,
                            "container limit reached: %zu containers exist (--max-containers)",
                            f->n_containers);
    while (!ef_capacity_allows(f->capacity_mb, ef_container_allocated_mb(f), 0, memory_mb)) {
        if (!ef_pool_evict(f))
            return ef_error_set(err, -ENOSPC,
                                "not enough memory on this node for another container: %llu of "
                                "%llu MB are allocated",
                                (unsigned long long)ef_container_allocated_mb(f),
                                (unsigned long long)f->capacity_mb);
    }
    return 0;
}

static void acquire(struct ef_funclet *f, ef_rpc_request *req, const struct ef_warm_spec *spec,
                    const char *method)
{
    struct pending *p = pending_new(req, method);
    if (!p) {
        ef_rpc_reply_error(req, EF_RPC_INTERNAL_ERROR, NULL, "%s: out of memory", method);
        return;
    }
    ef_error e;
    int r = ef_pool_acquire(f, spec, on_handed_out, p, &e);
    if (r < 0) {
        free(p);
        reply_failure(req, r, &e);
    }
}

static void container_create(struct ef_funclet *f, ef_rpc_request *req, const cJSON *params)
{
    ef_error e;
    struct ef_create_params p;
    int r = ef_validate_create_params(params, f->cfg.code_root, &p, &e);
    if (r < 0) {
        reply_failure(req, r, &e);
        return;
    }
    if (f->shutting_down) {
        ef_create_params_free(&p);
        ef_rpc_reply_error(req, EF_RPC_ERR_BUSY, NULL, "funclet is shutting down");
        return;
    }
    if (p.warm) {
        /* The compatible form: exactly container.acquire. */
        acquire(f, req, &p.spec, "container.create");
        ef_create_params_free(&p);
        return;
    }
    ef_create_params_free(&p);
    if ((r = make_room(f, f->cfg.cold_memory_mb, &e)) < 0) {
        reply_failure(req, r, &e);
        return;
    }
    struct pending *pd = pending_new(req, "container.create");
    struct ef_container_create_opts opts = {.own_netns = p.network != EF_NETWORK_HOST};
    struct ef_container *c = NULL;
    if (!pd) {
        ef_rpc_reply_error(req, EF_RPC_INTERNAL_ERROR, NULL, "container.create: out of memory");
        return;
    }
    r = ef_container_create(f, &opts, on_handed_out, pd, &c, &e);
    if (r < 0) {
        free(pd);
        reply_failure(req, ef_container_system_error(r), &e);
    }
}

static void container_acquire(struct ef_funclet *f, ef_rpc_request *req, const cJSON *params)
{
    ef_error e;
    struct ef_warm_spec spec;
    int r = ef_validate_acquire_params(params, f->cfg.code_root, &spec, &e);
    if (r < 0) {
        reply_failure(req, r, &e);
        return;
    }
    acquire(f, req, &spec, "container.acquire");
    ef_warm_spec_free(&spec);
}

/* The container named by a validated id, or an answer that it does not exist. */
static struct ef_container *lookup(struct ef_funclet *f, ef_rpc_request *req, const char *id)
{
    struct ef_container *c = ef_container_find(f, id);
    if (!c)
        ef_rpc_reply_error(req, EF_RPC_ERR_NOT_FOUND, NULL, "container '%s' not found", id);
    return c;
}

static void container_warmup(struct ef_funclet *f, ef_rpc_request *req, const cJSON *params)
{
    ef_error e;
    struct ef_warm_spec spec;
    const char *id = NULL;
    int r = ef_validate_warmup_params(params, f->cfg.code_root, &id, &spec, &e);
    if (r < 0) {
        reply_failure(req, r, &e);
        return;
    }
    struct ef_container *c = lookup(f, req, id);
    if (c) {
        r = ef_container_warmup(f, c, &spec, &e);
        if (r < 0) {
            reply_failure(req, r, &e);
        } else {
            log_warm(c, "");
            reply(req, "container.warmup", handout_json(c));
        }
    }
    ef_warm_spec_free(&spec);
}

static void on_reset(struct ef_funclet *f, struct ef_container *c, int r, const ef_error *err,
                     void *user)
{
    (void)f;
    struct pending *p = user;
    if (r < 0) {
        reply_failure(p->req, r == -ECANCELED ? -EIO : ef_container_system_error(r), err);
    } else {
        cJSON *res = cJSON_CreateObject();
        if (res && c) {
            ef_info("container %s reset: cold%s", c->id, c->pooled ? ", back in the pool" : "");
            if (!cJSON_AddStringToObject(res, "state", "cold") ||
                !cJSON_AddBoolToObject(res, "pooled", c->pooled)) {
                cJSON_Delete(res);
                res = NULL;
            }
        } else if (res && !cJSON_AddStringToObject(res, "state", "destroyed")) {
            cJSON_Delete(res);
            res = NULL;
        }
        reply(p->req, p->method, res);
    }
    free(p);
}

static void container_reset(struct ef_funclet *f, ef_rpc_request *req, const cJSON *params)
{
    ef_error e;
    const char *id = NULL;
    bool release = false;
    int r = ef_validate_reset_params(params, &id, &release, &e);
    if (r < 0) {
        reply_failure(req, r, &e);
        return;
    }
    struct ef_container *c = lookup(f, req, id);
    if (!c)
        return;
    struct pending *p = pending_new(req, "container.reset");
    if (!p) {
        ef_rpc_reply_error(req, EF_RPC_INTERNAL_ERROR, NULL, "container.reset: out of memory");
        return;
    }
    r = ef_container_reset(f, c, release, on_reset, p, &e);
    if (r < 0) {
        free(p);
        reply_failure(req, r, &e);
    }
}

static void container_destroy(struct ef_funclet *f, ef_rpc_request *req, const cJSON *params)
{
    ef_error e;
    const char *id = NULL;
    if (ef_validate_destroy_params(params, &id, &e) < 0) {
        ef_rpc_reply_error(req, EF_RPC_INVALID_PARAMS, NULL, "%s", e.msg);
        return;
    }
    struct ef_container *c = lookup(f, req, id);
    if (!c)
        return;
    if (c->state == EF_CONTAINER_CREATING || c->state == EF_CONTAINER_RESETTING) {
        ef_rpc_reply_error(req, EF_RPC_ERR_BUSY, NULL,
                           "container %s is %s: try again when it is done", c->id,
                           ef_container_state_name(c));
        return;
    }
    char cid[sizeof(c->id)];
    memcpy(cid, c->id, sizeof(cid));
    if (ef_container_destroy(f, c, &e) < 0) {
        ef_error("%s", e.msg);
        ef_rpc_reply_error(req, EF_RPC_ERR_SYSTEM, NULL, "%s", e.msg);
        return;
    }
    ef_info("container %s destroyed", cid);
    ef_rpc_reply(req, NULL);
}

static cJSON *container_json(const struct ef_container *c)
{
    cleanup_cjson cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddStringToObject(o, "id", c->id) ||
        !cJSON_AddNumberToObject(o, "pid", c->pid) ||
        !cJSON_AddStringToObject(o, "state", ef_container_state_name(c)) ||
        !cJSON_AddBoolToObject(o, "pooled", c->pooled) ||
        !cJSON_AddStringToObject(o, "network", ef_network_mode_name(c->network)) ||
        !cJSON_AddNumberToObject(o, "memory_mb", (double)c->memory_mb) ||
        !cJSON_AddNumberToObject(o, "pids_max", (double)c->pids_max) ||
        !cJSON_AddNumberToObject(o, "cpu_millicores", (double)c->cpu_millicores) ||
        !cJSON_AddBoolToObject(o, "oom_killed", c->oom_killed))
        return NULL;
    if (c->code_dir && !cJSON_AddStringToObject(o, "code_dir", c->code_dir))
        return NULL;
    if (c->net.veth[0]) {
        char addr[16];
        ef_ipam_format(c->net.addr, addr, sizeof(addr));
        if (!cJSON_AddStringToObject(o, "address", addr) ||
            !cJSON_AddStringToObject(o, "veth", c->net.veth))
            return NULL;
    }
    if (c->has_identity) {
        cJSON *id = cJSON_AddObjectToObject(o, "identity");
        if (!id || !cJSON_AddStringToObject(id, "name", c->identity.name) ||
            !cJSON_AddStringToObject(id, "version", c->identity.version) ||
            !cJSON_AddStringToObject(id, "code_sha256", c->identity.code_sha256) ||
            !cJSON_AddStringToObject(id, "config_hash", c->identity.config_hash))
            return NULL;
    }
    return steal_pointer(&o);
}

static void container_list(struct ef_funclet *f, ef_rpc_request *req, const cJSON *params)
{
    ef_error e;
    if (ef_validate_no_params(params, "container.list", &e) < 0) {
        ef_rpc_reply_error(req, EF_RPC_INVALID_PARAMS, NULL, "%s", e.msg);
        return;
    }
    cleanup_cjson cJSON *r = cJSON_CreateObject();
    cJSON *list = r ? cJSON_AddArrayToObject(r, "containers") : NULL;
    if (!list) {
        reply(req, "container.list", NULL);
        return;
    }
    for (const struct ef_container *c = f->containers; c; c = c->next) {
        cJSON *o = container_json(c);
        if (!o || !cJSON_AddItemToArray(list, o)) {
            cJSON_Delete(o);
            reply(req, "container.list", NULL);
            return;
        }
    }
    reply(req, "container.list", steal_pointer(&r));
}

void ef_funclet_on_request(ef_rpc_conn *conn, ef_rpc_request *req, const char *method,
                           const cJSON *params, void *user)
{
    struct ef_funclet *f = user;
    (void)conn;
    static const struct {
        const char *name;
        void (*fn)(struct ef_funclet *f, ef_rpc_request *req, const cJSON *params);
    } methods[] = {
        {"node.info", node_info},
        {"container.create", container_create},
        {"container.acquire", container_acquire},
        {"container.warmup", container_warmup},
        {"container.reset", container_reset},
        {"container.destroy", container_destroy},
        {"container.list", container_list},
    };
    for (size_t i = 0; i < EF_ARRAY_SIZE(methods); i++) {
        if (strcmp(method, methods[i].name) == 0) {
            methods[i].fn(f, req, params);
            return;
        }
    }
    ef_rpc_reply_error(req, EF_RPC_METHOD_NOT_FOUND, NULL, "method '%.64s' not found", method);
}

void ef_funclet_notify_exited(struct ef_funclet *f, struct ef_container *c)
{
    char status[64];
    ef_wait_status_string(c->wait_status, status, sizeof(status));
    ef_info("container %s: runner (pid %d) ended: %s", c->id, (int)c->pid, status);
    if (!f->server)
        return;
    cleanup_cjson cJSON *p = cJSON_CreateObject();
    if (!p || !cJSON_AddStringToObject(p, "id", c->id) ||
        !cJSON_AddNumberToObject(p, "pid", c->pid) ||
        !cJSON_AddStringToObject(p, "status", status)) {
        ef_error("container %s: cannot build container.exited: out of memory", c->id);
        return;
    }
    ef_server_broadcast(f->server, "container.exited", p);
}

void ef_funclet_notify_oom(struct ef_funclet *f, struct ef_container *c)
{
    ef_warn("container %s: the OOM killer killed a process (memory limit %lld MB, %llu kills so "
            "far)",
            c->id, (long long)c->memory_mb, (unsigned long long)c->oom_kills);
    if (!f->server)
        return;
    cleanup_cjson cJSON *p = cJSON_CreateObject();
    if (!p || !cJSON_AddStringToObject(p, "id", c->id) ||
        !cJSON_AddNumberToObject(p, "oom_kills", (double)c->oom_kills)) {
        ef_error("container %s: cannot build container.oom: out of memory", c->id);
        return;
    }
    ef_server_broadcast(f->server, "container.oom", p);
}
