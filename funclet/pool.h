/* funclet's pool of cold spares and container.acquire.
 *
 * At start funclet creates --pool-size cold containers and keeps that many ready as they are
 * handed out or destroyed: a top-up runs on the loop (a timer), never more than a couple of
 * creations at once, each blocking the loop only for its clone() and cgroups. A failing
 * creation (a missing runner, no memory) backs off from 1 s to 30 s instead of spinning. The
 * pool never exceeds --max-containers or the node's memory capacity; a new container needed
 * for a request may evict a spare instead. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"
#include "funclet/funclet.h"
#include "funclet/validate.h"

struct ef_container;

/* Sets up the pool on f->loop and schedules the first top-up. */
int ef_pool_open(struct ef_funclet *f, ef_error *err);

/* Stops topping up; the pool is freed once its timer has closed. NULL pool is fine. */
void ef_pool_close(struct ef_funclet *f);

/* Schedules a top-up on the next turn of the loop (unless creation is backing off). */
void ef_pool_kick(struct ef_funclet *f);

/* How many spares are ready (cold); *ret_creating (may be NULL) gets how many are being
 * created. */
size_t ef_pool_count(const struct ef_funclet *f, size_t *ret_creating);

/* Takes a ready spare out of the pool (it is no longer "pooled"), or NULL. */
struct ef_container *ef_pool_take(struct ef_funclet *f);

/* Destroys one ready spare to make room for another container; false when there is none. */
bool ef_pool_evict(struct ef_funclet *f);

/* Called once an acquire ends: with the warm container and r == 0, or c == NULL and `err`. */
typedef void (*ef_acquire_cb)(struct ef_funclet *f, struct ef_container *c, int r,
                              const ef_error *err, void *user);

/* A warm container for `spec`: a spare warmed up at once when the pool has one (network none
 * or bridge), else a new container created and then warmed up. Returns 0 and calls `cb` (maybe
 * before returning), or a negative errno with `err` (-ENOSPC: no memory or container left;
 * -EBUSY: shutting down; -EINVAL, or what warmup returned) and `cb` is never called. */
int ef_pool_acquire(struct ef_funclet *f, const struct ef_warm_spec *spec, ef_acquire_cb cb,
                    void *user, ef_error *err);
