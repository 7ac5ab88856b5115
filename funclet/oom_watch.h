/* Watching a container's cgroup for OOM kills from the event loop: a uv_poll on the fd of
 * ef_cgroup_oom_watch (an eventfd on cgroup v1, an inotify watch of memory.events on v2). The
 * callback only says "look again"; the caller compares the kill counter with what it saw last,
 * since the fd also fires for events that are not kills (cgroup removal, other counters).
 *
 * The v1 event fires when the cgroup enters OOM, before the OOM killer has chosen and counted
 * its victim, so after each event the callback runs again a few times over the next second. */
#pragma once

#include <uv.h>

#include "common/error.h"

struct ef_oom_watch;

typedef void (*ef_oom_watch_cb)(void *user);

/* Starts polling `fd` (taken over: closed by ef_oom_watch_stop, or at once on failure). */
int ef_oom_watch_start(uv_loop_t *loop, int fd, ef_oom_watch_cb cb, void *user,
                       struct ef_oom_watch **ret, ef_error *err);

/* Stops the callback at once; the fd is closed and the watch freed once libuv has closed the
 * handle. NULL is fine. */
void ef_oom_watch_stop(struct ef_oom_watch *w);
