/* A libuv loop on a background thread for unit tests (loop_thread.h). */
#include "loop_thread.h"

static void on_wake(uv_async_t *a)
{
    struct loop_thread *lt = a->data;
    uv_mutex_lock(&lt->lock);
    if (lt->call && !lt->call_done) {
        lt->call(lt->call_arg);
        lt->call_done = true;
        uv_cond_broadcast(&lt->cond);
    }
    bool stop = lt->stop;
    uv_mutex_unlock(&lt->lock);
    if (stop) {
        if (lt->on_stop)
            lt->on_stop(lt->on_stop_arg);
        uv_close((uv_handle_t *)&lt->wake, NULL);
    }
}

static void loop_main(void *arg)
{
    struct loop_thread *lt = arg;
    uv_run(&lt->loop, UV_RUN_DEFAULT);
}

int loop_thread_init(struct loop_thread *lt)
{
    *lt = (struct loop_thread){0};
    int r = uv_loop_init(&lt->loop);
    if (r < 0)
        return r;
    uv_mutex_init(&lt->lock);
    uv_cond_init(&lt->cond);
    uv_async_init(&lt->loop, &lt->wake, on_wake);
    lt->wake.data = lt;
    return 0;
}

int loop_thread_run(struct loop_thread *lt, void (*on_stop)(void *arg), void *arg)
{
    lt->on_stop = on_stop;
    lt->on_stop_arg = arg;
    return uv_thread_create(&lt->thread, loop_main, lt);
}

void loop_thread_call(struct loop_thread *lt, void (*fn)(void *arg), void *arg)
{
    uv_mutex_lock(&lt->lock);
    lt->call = fn;
    lt->call_arg = arg;
    lt->call_done = false;
    uv_async_send(&lt->wake);
    while (!lt->call_done)
        uv_cond_wait(&lt->cond, &lt->lock);
    lt->call = NULL;
    uv_mutex_unlock(&lt->lock);
}

int loop_thread_stop(struct loop_thread *lt)
{
    uv_mutex_lock(&lt->lock);
    lt->stop = true;
    uv_mutex_unlock(&lt->lock);
    uv_async_send(&lt->wake);
    uv_thread_join(&lt->thread);
    int r = uv_loop_close(&lt->loop);
    uv_mutex_destroy(&lt->lock);
    uv_cond_destroy(&lt->cond);
    return r;
}
