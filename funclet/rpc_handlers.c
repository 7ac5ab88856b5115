#include "funclet/rpc_handlers.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/sysinfo.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "funclet/cgroup.h"
#include "funclet/container.h"
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

/* The memory the node can give to containers: physical memory, or funclet's own cgroup limit
 * when that is lower (funclet running in a container). */
static uint64_t memory_total_mb(struct ef_funclet *f)
{
    struct sysinfo si;
    uint64_t total = 0;
    if (sysinfo(&si) == 0)
        total = (uint64_t)si.totalram * si.mem_unit;
    uint64_t limit;
    if (ef_cgroup_memory_limit(f->cgroups, &limit) == 0 && limit < total)
        total = limit;
    return total >> 20;
}

static void node_info(struct ef_funclet *f, ef_rpc_request *req, const cJSON *params)
{
    ef_error e;
    if (ef_validate_no_params(params, "node.info", &e) < 0) {
        ef_rpc_reply_error(req, EF_RPC_INVALID_PARAMS, NULL, "%s", e.msg);
        return;
    }
    cJSON *r = cJSON_CreateObject();
    if (r &&
        (!cJSON_AddNumberToObject(r, "cgroup_version", ef_cgroup_manager_version(f->cgroups)) ||
         !cJSON_AddNumberToObject(r, "memory_total_mb", (double)memory_total_mb(f)) ||
         !cJSON_AddNumberToObject(r, "containers", (double)f->n_containers) ||
         !cJSON_AddNumberToObject(r, "max_containers", (double)f->cfg.max_containers))) {
        cJSON_Delete(r);
        r = NULL;
    }
    reply(req, "node.info", r);
}

static void container_create(struct ef_funclet *f, ef_rpc_request *req, const cJSON *params)
{
    ef_error e;
    struct ef_create_params p;
    if (ef_validate_create_params(params, f->cfg.code_root, &p, &e) < 0) {
        ef_rpc_reply_error(req, e.code == -ENOMEM ? EF_RPC_INTERNAL_ERROR : EF_RPC_INVALID_PARAMS,
                           NULL, "%s", e.msg);
        return;
    }
    if (f->shutting_down) {
        ef_create_params_free(&p);
        ef_rpc_reply_error(req, EF_RPC_ERR_BUSY, NULL, "funclet is shutting down");
        return;
    }
    if (f->n_containers >= f->cfg.max_containers) {
        ef_create_params_free(&p);
        ef_rpc_reply_error(req, EF_RPC_ERR_NO_CAPACITY, NULL,
                           "container limit reached: %zu containers exist (--max-containers)",
                           f->n_containers);
        return;
    }
    struct ef_container *c = NULL;
    int r = ef_container_create(f, &p, &c, &e);
    ef_create_params_free(&p);
    if (r < 0) {
        ef_error("%s", e.msg);
        ef_rpc_reply_error(req, EF_RPC_ERR_SYSTEM, NULL, "%s", e.msg);
        return;
    }
    ef_info("container %s created: pid %d, memory %lld MB, pids %lld, cpu %lld millicores, code "
            "%s, cgroup %s",
            c->id, (int)c->pid, (long long)c->memory_mb, (long long)c->pids_max,
            (long long)c->cpu_millicores, c->code_dir, ef_cgroup_path(c->cgroup, "memory"));
    cJSON *res = cJSON_CreateObject();
    if (res && (!cJSON_AddStringToObject(res, "id", c->id) ||
                !cJSON_AddNumberToObject(res, "pid", c->pid) ||
                !cJSON_AddStringToObject(res, "runner_socket", c->runner_socket))) {
        cJSON_Delete(res);
        res = NULL;
    }
    reply(req, "container.create", res);
}

static void container_destroy(struct ef_funclet *f, ef_rpc_request *req, const cJSON *params)
{
    ef_error e;
    const char *id = NULL;
    if (ef_validate_destroy_params(params, &id, &e) < 0) {
        ef_rpc_reply_error(req, EF_RPC_INVALID_PARAMS, NULL, "%s", e.msg);
        return;
    }
    struct ef_container *c = ef_container_find(f, id);
    if (!c) {
        ef_rpc_reply_error(req, EF_RPC_ERR_NOT_FOUND, NULL, "container '%s' not found", id);
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
    cJSON *o = cJSON_CreateObject();
    if (o && cJSON_AddStringToObject(o, "id", c->id) && cJSON_AddNumberToObject(o, "pid", c->pid) &&
        cJSON_AddStringToObject(o, "state",
                                c->state == EF_CONTAINER_RUNNING ? "running" : "exited") &&
        cJSON_AddNumberToObject(o, "memory_mb", (double)c->memory_mb) &&
        cJSON_AddStringToObject(o, "code_dir", c->code_dir) &&
        cJSON_AddBoolToObject(o, "oom_killed", c->oom_killed))
        return o;
    cJSON_Delete(o);
    return NULL;
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
