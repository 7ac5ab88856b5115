/* The controller's periodic housekeeping, one timer in the manner of redis' serverCron
 * (docs/scheduler.md):
 *  - idle keep-alive: idle warm containers unused for --idle-timeout are cooled down (destroyed,
 *    or with --cooldown reset put back into funclet's cold pool);
 *  - health checks every --health-interval: every idle runner is probed (`runner.ping`; any
 *    answer, even "method not found", shows that its loop is alive) and funclet's container.list
 *    is compared with the pool; a runner that does not answer, or a container funclet no longer
 *    has or lists as exited, is destroyed, and an idle one that died is replaced ("reborn");
 *  - after every (re)connection to funclet, the pool is re-synced from container.list: the
 *    controller drops the containers funclet no longer has and gives back (destroys) those it
 *    does not know that are not in funclet's cold pool;
 *  - invocations waiting for capacity are retried, since memory may have been freed outside.
 * Containers are only marked or unlinked in callbacks; their memory is freed by the pool when
 * their runner connection has closed, never inside the callback that found them dead. */
#pragma once

#include <stdbool.h>

#include "common/error.h"

struct ef_controller;
struct ef_housekeeping;

/* Starts the timer of `ctl` (ctl->loop; settings from ctl's scheduler). */
int ef_housekeeping_start(struct ef_controller *ctl, struct ef_housekeeping **ret_hk,
                          ef_error *err);

/* Stops the timer (the controller's stop); harmless twice or on NULL. */
void ef_housekeeping_close(struct ef_housekeeping *hk);

/* Frees it (closing it first if needed; then its memory goes when the loop has closed its
 * timer). NULL is fine. */
void ef_housekeeping_free(struct ef_housekeeping *hk);

/* The connection to funclet is (again) up: re-syncs the pool from container.list. Must be called
 * before anything else is sent on the new connection, so that the list shows nothing the
 * controller asked for on it. */
void ef_housekeeping_funclet_connected(struct ef_housekeeping *hk);

/* An idle container of `function` `version` (identity `key`) died (its runner or runtime ended,
 * or it failed a health check) and was discarded: starts a replacement warm container for the
 * same identity if it still exists, unless the dead one was itself a replacement that died
 * before serving anything (`died_unused`), which would only repeat. */
void ef_housekeeping_reborn(struct ef_housekeeping *hk, const char *function, const char *version,
                            const char *key, bool died_unused);

/* The cold containers in funclet's pool at the last container.list; -1 before the first. */
long ef_housekeeping_cold_containers(const struct ef_housekeeping *hk);
