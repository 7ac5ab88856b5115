#include "funclet/oom_watch.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "funclet/cgroup.h"

/* When to look again after an event, in ms after the previous look. */
static const uint64_t recheck_ms[] = {10, 90, 900};

struct ef_oom_watch {
    uv_poll_t poll;   /* first: the handle's pointer is the watch's */
    uv_timer_t timer; /* the rechecks */
    int fd;
    int open_handles;
    size_t next_recheck;
    ef_oom_watch_cb cb;
    void *user;
};

static void on_closed(uv_handle_t *h)
{
    struct ef_oom_watch *w = h->data;
    if (--w->open_handles > 0)
        return;
    close(w->fd);
    free(w);
}

static void on_recheck(uv_timer_t *t)
{
    struct ef_oom_watch *w = t->data;
    if (w->cb)
        w->cb(w->user);
    if (++w->next_recheck < EF_ARRAY_SIZE(recheck_ms))
        uv_timer_start(&w->timer, on_recheck, recheck_ms[w->next_recheck], 0);
}

static void on_event(uv_poll_t *h, int status, int events)
{
    (void)events;
    struct ef_oom_watch *w = h->data;
    ef_cgroup_oom_drain(w->fd);
    if (status < 0 || !w->cb)
        return;
    w->cb(w->user);
    w->next_recheck = 0;
    uv_timer_start(&w->timer, on_recheck, recheck_ms[0], 0);
}

int ef_oom_watch_start(uv_loop_t *loop, int fd, ef_oom_watch_cb cb, void *user,
                       struct ef_oom_watch **ret, ef_error *err)
{
    struct ef_oom_watch *w = calloc(1, sizeof(*w));
    if (!w) {
        close(fd);
        return ef_error_set(err, -ENOMEM, "out of memory");
    }
    w->fd = fd;
    w->cb = cb;
    w->user = user;
    int r = uv_poll_init(loop, &w->poll, fd);
    if (r < 0) {
        close(fd);
        free(w);
        return ef_error_set(err, r, "cannot poll the OOM event fd: %s", uv_strerror(r));
    }
    uv_timer_init(loop, &w->timer);
    w->poll.data = w->timer.data = w;
    w->open_handles = 2;
    r = uv_poll_start(&w->poll, UV_READABLE, on_event);
    if (r < 0) {
        ef_oom_watch_stop(w);
        return ef_error_set(err, r, "cannot poll the OOM event fd: %s", uv_strerror(r));
    }
    *ret = w;
    return 0;
}

void ef_oom_watch_stop(struct ef_oom_watch *w)
{
    if (!w)
        return;
    w->cb = NULL;
    uv_close((uv_handle_t *)&w->poll, on_closed);
    uv_close((uv_handle_t *)&w->timer, on_closed);
}
