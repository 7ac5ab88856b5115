/* Watching a runner (PID 1 of a container) for its end through a pidfd: the fd that the child
 * opens on itself and sends with its first packet (sandbox.h) names that one process for good,
 * so its readiness and the waitid(P_PIDFD) that reaps it can never concern another process that
 * was given the same pid later. Where the kernel has no pidfd_open (before 5.3), containers have
 * no watch and their runners are reaped from SIGCHLD alone (ef_container_reap), which also reaps
 * every other child. */
#pragma once

#include <uv.h>

#include "common/error.h"

struct ef_exit_watch;

typedef void (*ef_exit_watch_cb)(void *user);

/* Polls `pidfd` (taken over: closed by ef_exit_watch_stop, or at once on failure) and calls `cb`
 * when the process has ended. */
int ef_exit_watch_start(uv_loop_t *loop, int pidfd, ef_exit_watch_cb cb, void *user,
                        struct ef_exit_watch **ret, ef_error *err);

/* Reaps the watched process if it has ended, without blocking: 1 and its wait status (as from
 * waitpid) in *status when it was reaped now, 0 while it runs, -ECHILD when it was reaped
 * already (by waitpid elsewhere), another negative errno on error. */
int ef_exit_watch_reap(struct ef_exit_watch *w, int *status);

/* Stops the callback at once; the fd is closed and the watch freed once libuv has closed the
 * handle. NULL is fine. */
void ef_exit_watch_stop(struct ef_exit_watch *w);
