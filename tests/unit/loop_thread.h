/* A libuv loop on a background thread, for unit tests whose test thread plays blocking peers
 * (a runtime's HTTP client, a controller's JSON-RPC frames) against real servers on the loop.
 * The test thread runs code on the loop with loop_thread_call and waits for it. */
#pragma once

#include <stdbool.h>
#include <uv.h>

struct loop_thread {
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t wake;
    uv_mutex_t lock; /* also for the test's own state shared with the loop thread */
    uv_cond_t cond;
    void (*call)(void *arg);
    void *call_arg;
    bool call_done;
    bool stop;
    void (*on_stop)(void *arg); /* closes the test's handles on the loop thread */
    void *on_stop_arg;
};

/* Initialises the loop (0, or a libuv error); the test may add its handles to lt->loop before
 * loop_thread_run. */
int loop_thread_init(struct loop_thread *lt);

/* Starts running the loop on its thread (0, or a libuv error). `on_stop(arg)` runs there at
 * loop_thread_stop and must close every handle the test opened on the loop. */
int loop_thread_run(struct loop_thread *lt, void (*on_stop)(void *arg), void *arg);

/* Runs fn(arg) on the loop thread and returns once it has run. */
void loop_thread_call(struct loop_thread *lt, void (*fn)(void *arg), void *arg);

/* Runs on_stop, waits for the loop to end and closes it; returns uv_loop_close's result (0, or
 * UV_EBUSY when a handle was left open). */
int loop_thread_stop(struct loop_thread *lt);
