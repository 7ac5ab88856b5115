#include "funclet/exit_watch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

struct ef_exit_watch {
    uv_poll_t poll;
    int pidfd;
    ef_exit_watch_cb cb;
    void *user;
};

static void on_closed(uv_handle_t *h)
{
    struct ef_exit_watch *w = h->data;
    close(w->pidfd);
    free(w);
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    (void)events;
    struct ef_exit_watch *w = h->data;
    /* A pidfd stays readable once its process has ended: one report is enough. */
    uv_poll_stop(&w->poll);
    if (status == 0 && w->cb)
        w->cb(w->user);
}

int ef_exit_watch_start(uv_loop_t *loop, int pidfd, ef_exit_watch_cb cb, void *user,
                        struct ef_exit_watch **ret, ef_error *err)
{
    struct ef_exit_watch *w = calloc(1, sizeof(*w));
    if (!w) {
        close(pidfd);
        return ef_error_set(err, -ENOMEM, "out of memory");
    }
    w->pidfd = pidfd;
    w->cb = cb;
    w->user = user;
    int r = uv_poll_init(loop, &w->poll, pidfd);
    if (r < 0) {
        close(pidfd);
        free(w);
        return ef_error_set(err, r, "cannot poll the runner's pidfd: %s", uv_strerror(r));
    }
    w->poll.data = w;
    r = uv_poll_start(&w->poll, UV_READABLE, on_readable);
    if (r < 0) {
        ef_exit_watch_stop(w);
        return ef_error_set(err, r, "cannot poll the runner's pidfd: %s", uv_strerror(r));
    }
    *ret = w;
    return 0;
}

int ef_exit_watch_reap(struct ef_exit_watch *w, int *status)
{
    siginfo_t info;
    memset(&info, 0, sizeof(info));
    int r;
    do {
        r = waitid(P_PIDFD, (id_t)w->pidfd, &info, WEXITED | WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    if (info.si_pid == 0)
        return 0;
    /* The same encoding as waitpid's status, which the rest of funclet reads with W* macros. */
    switch (info.si_code) {
    case CLD_EXITED:
        *status = (info.si_status & 0xff) << 8;
        break;
    case CLD_DUMPED:
        *status = (info.si_status & 0x7f) | 0x80;
        break;
    default: /* CLD_KILLED */
        *status = info.si_status & 0x7f;
        break;
    }
    return 1;
}

void ef_exit_watch_stop(struct ef_exit_watch *w)
{
    if (!w)
        return;
    w->cb = NULL;
    uv_close((uv_handle_t *)&w->poll, on_closed);
}
