#include "funclet/pool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "funclet/capacity.h"
#include "funclet/container.h"

/* Spares created at once: one child builds its root on the other CPU while the loop goes on. */
#define PARALLEL_CREATES 2
#define BACKOFF_MIN_MS   1000
#define BACKOFF_MAX_MS   30000

struct ef_pool {
    struct ef_funclet *f;
    uv_timer_t timer;
    size_t creating;
    unsigned backoff_ms; /* > 0 while creation is failing */
};

static void on_timer(uv_timer_t *t);

int ef_pool_open(struct ef_funclet *f, ef_error *err)
{
    struct ef_pool *p = calloc(1, sizeof(*p));
    if (!p)
        return ef_error_set(err, -ENOMEM, "out of memory");
    p->f = f;
    uv_timer_init(f->loop, &p->timer);
    p->timer.data = p;
    f->pool = p;
    ef_pool_kick(f);
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

void ef_pool_close(struct ef_funclet *f)
{
    if (!f->pool)
        return;
    uv_close((uv_handle_t *)&f->pool->timer, on_closed);
    f->pool = NULL;
}

void ef_pool_kick(struct ef_funclet *f)
{
    struct ef_pool *p = f->pool;
    if (!p || f->shutting_down || p->backoff_ms)
        return;
    uv_timer_start(&p->timer, on_timer, 0, 0);
}

size_t ef_pool_count(const struct ef_funclet *f, size_t *ret_creating)
{
    size_t ready = 0, creating = 0;
    for (const struct ef_container *c = f->containers; c; c = c->next) {
        if (!c->pooled || c->exited)
            continue;
        if (c->state == EF_CONTAINER_COLD)
            ready++;
        else if (c->state == EF_CONTAINER_CREATING)
            creating++;
    }
    if (ret_creating)
        *ret_creating = creating;
    return ready;
}

struct ef_container *ef_pool_take(struct ef_funclet *f)
{
    for (struct ef_container *c = f->containers; c; c = c->next) {
        if (c->pooled && !c->exited && c->state == EF_CONTAINER_COLD) {
            c->pooled = false;
            ef_pool_kick(f);
            return c;
        }
    }
    return NULL;
}

bool ef_pool_evict(struct ef_funclet *f)
{
    struct ef_container *c = ef_pool_take(f);
    if (!c)
        return false;
    ef_error e;
    char id[sizeof(c->id)];
    memcpy(id, c->id, sizeof(id));
    if (ef_container_destroy(f, c, &e) < 0) {
        ef_error("%s", e.msg);
        return false;
    }
    ef_info("container %s destroyed: a spare made room for another container", id);
    return true;
}

static void schedule_backoff(struct ef_pool *p)
{
    p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (p->backoff_ms > BACKOFF_MAX_MS)
        p->backoff_ms = BACKOFF_MAX_MS;
    uv_timer_start(&p->timer, on_timer, p->backoff_ms, 0);
}

static void on_created(struct ef_funclet *f, struct ef_container *c, int r, const ef_error *err,
                       void *user)
{
    struct ef_pool *p = user;
    p->creating--;
    if (f->shutting_down || f->pool != p)
        return;
    if (r < 0) {
        if (r == -ECANCELED)
            return;
        if (!p->backoff_ms)
            ef_error("pool: cannot create a spare container: %s; retrying with backoff", err->msg);
        schedule_backoff(p);
        return;
    }
    if (p->backoff_ms)
        ef_info("pool: creating spare containers works again");
    p->backoff_ms = 0;
    ef_info("container %s created: pool spare, pid %d", c->id, (int)c->pid);
    ef_pool_kick(f);
}

static void on_timer(uv_timer_t *t)
{
    struct ef_pool *p = t->data;
    struct ef_funclet *f = p->f;
    size_t creating = 0;
    size_t ready = ef_pool_count(f, &creating);
    while (!f->shutting_down && ready + creating < f->cfg.pool_size &&
           p->creating < PARALLEL_CREATES && f->n_containers < f->cfg.max_containers &&
           ef_capacity_allows(f->capacity_mb, ef_container_allocated_mb(f), 0,
                              f->cfg.cold_memory_mb)) {
        struct ef_container_create_opts opts = {.own_netns = true, .pooled = true};
        struct ef_container *c = NULL;
        ef_error e;
        if (ef_container_create(f, &opts, on_created, p, &c, &e) < 0) {
            if (!p->backoff_ms)
                ef_error("pool: cannot create a spare container: %s; retrying with backoff", e.msg);
            schedule_backoff(p);
            return;
        }
        p->creating++;
        creating++;
    }
}

/* ---- acquire ----------------------------------------------------------------------------- */

struct acquire {
    struct ef_warm_spec spec; /* code_dir owned */
    ef_acquire_cb cb;
    void *user;
};

static void acquire_free(struct acquire *a)
{
    ef_warm_spec_free(&a->spec);
    free(a);
}

static void on_acquire_created(struct ef_funclet *f, struct ef_container *c, int r,
                               const ef_error *err, void *user)
{
    struct acquire *a = user;
    if (r < 0) {
        a->cb(f, NULL, ef_container_system_error(r), err, a->user);
        acquire_free(a);
        return;
    }
    ef_info("container %s created: pid %d, for an acquire", c->id, (int)c->pid);
    ef_error e;
    r = ef_container_warmup(f, c, &a->spec, &e);
    if (r < 0) {
        ef_error undo;
        char id[sizeof(c->id)];
        memcpy(id, c->id, sizeof(id));
        if (ef_container_destroy(f, c, &undo) < 0)
            ef_error("%s", undo.msg);
        else
            ef_info("container %s destroyed: its warmup failed", id);
        a->cb(f, NULL, r, &e, a->user);
        acquire_free(a);
        return;
    }
    a->cb(f, c, 0, NULL, a->user);
    acquire_free(a);
}

int ef_pool_acquire(struct ef_funclet *f, const struct ef_warm_spec *spec, ef_acquire_cb cb,
                    void *user, ef_error *err)
{
    if (f->shutting_down)
        return ef_error_set(err, -EBUSY, "funclet is shutting down");
    if (spec->network != EF_NETWORK_HOST) {
        struct ef_container *c = ef_pool_take(f);
        if (c) {
            int r = ef_container_warmup(f, c, spec, err);
            if (r < 0) {
                /* Still cold and clean: back to the pool. */
                c->pooled = true;
                return r;
            }
            cb(f, c, 0, NULL, user);
            return 0;
        }
    }
    /* A new container: it must fit, counting the function's memory from the start. */
    if (f->n_containers >= f->cfg.max_containers && !ef_pool_evict(f))
        return ef_error_set(err, -ENOSPC,
                            "container limit reached: %zu containers exist (--max-containers)",
                            f->n_containers);
    uint64_t allocated = ef_container_allocated_mb(f);
    while (!ef_capacity_allows(f->capacity_mb, allocated, 0, (uint64_t)spec->memory_mb) &&
           ef_pool_evict(f))
        allocated = ef_container_allocated_mb(f);
    if (!ef_capacity_allows(f->capacity_mb, allocated, 0, (uint64_t)spec->memory_mb))
        return ef_error_set(err, -ENOSPC,
                            "not enough memory on this node for %lld MB: %llu of %llu MB are "
                            "allocated (capacity = memory minus --reserved-memory)",
                            (long long)spec->memory_mb, (unsigned long long)allocated,
                            (unsigned long long)f->capacity_mb);
    struct acquire *a = calloc(1, sizeof(*a));
    if (!a)
        return ef_error_set(err, -ENOMEM, "out of memory");
    a->spec = *spec;
    a->spec.code_dir = strdup(spec->code_dir);
    a->cb = cb;
    a->user = user;
    if (!a->spec.code_dir) {
        free(a);
        return ef_error_set(err, -ENOMEM, "out of memory");
    }
    struct ef_container_create_opts opts = {.own_netns = spec->network != EF_NETWORK_HOST};
    struct ef_container *c = NULL;
    int r = ef_container_create(f, &opts, on_acquire_created, a, &c, err);
    if (r < 0) {
        acquire_free(a);
        return ef_container_system_error(r);
    }
    return 0;
}
