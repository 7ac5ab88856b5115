/* A check on a runner that lets an invocation run past its Timeout.
 *
 * An invocation sent through the runner (rather than over a handed-over connection) has its
 * Timeout counted by the runner from the moment the runtime takes the event, and the runner
 * answers with Lambda's timeout when it passes. The controller's own deadline for that call must
 * also cover the runtime's init and a late poll (Timeout + 10 s + 500 ms), so a runner that is
 * wedged (stopped, or its loop stuck) would hold the caller that long. The watch closes that gap
 * without guessing: once the invocation is 500 ms past its Timeout, it pings the runner
 * (runner.ping, answered from the runner's event loop at once). An answer means the runner is
 * alive and will report (a late poll, a long init); two pings in a row unanswered for 2 s each
 * mean it is wedged, and the watch says so. One watch per invocation; it goes when the
 * invocation is answered. */
#pragma once

#include <stdint.h>
#include <uv.h>

struct ef_container;
struct ef_runner_watch;

/* How long a runner has to answer each of the watch's pings (as for the health checks), and how
 * many in a row must go unanswered. */
#define EF_RUNNER_WATCH_PING_MS 2000
#define EF_RUNNER_WATCH_PINGS   2

/* Starts a watch on container `c`'s runner: `after_ms` from now it pings the runner, and if the
 * ping goes unanswered, calls wedged(user) (once). NULL when out of memory (nothing watched). */
struct ef_runner_watch *ef_runner_watch_start(uv_loop_t *loop, struct ef_container *c,
                                              uint64_t after_ms, void (*wedged)(void *user),
                                              void *user);

/* Ends the watch (the invocation was answered): `wedged` is not called any more. NULL is fine. */
void ef_runner_watch_stop(struct ef_runner_watch *w);
