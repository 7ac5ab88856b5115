/* A fake funclet for the controller's protocol unit tests: a test peer on the harness's funclet
 * socket that answers container.create with a fake runner on a real RPC socket of its own and
 * container.destroy by closing it, and counts what the controller asked for. The runners answer
 * runtime.start themselves ({"pid": 2}) unless the test answers it; `invoke` is always the test's.
 * Each container has a `mode`, an integer whose meaning is the test's (how its runner answers).
 * Everything here runs on, or hands over to, the harness's loop thread. */
#pragma once

#include <stdbool.h>

#include "common/rpc.h"
#include "test_controller_harness.h"

/* The containers whose invocations fake_counts counts one by one (c1..c8). */
#define FAKE_COUNTED_CONTAINERS 8

struct fake_funclet;

struct fake_container {
    struct fake_funclet *funclet;
    char id[16]; /* "c1", "c2"... in order of creation */
    char sock[160];
    ef_rpc_server *srv;
    ef_rpc_conn *conn; /* the controller's last connection to the runner; NULL once destroyed */
    int mode;
    int invokes;
    bool destroyed;
    struct fake_container *next;
};

/* How a test's runners answer. */
struct fake_runner_ops {
    /* Answers `invoke` on `fc` (required); the counts have gone up already. */
    void (*invoke)(struct fake_container *fc, ef_rpc_conn *conn, ef_rpc_request *req,
                   const cJSON *params);
    /* Answers runtime.start and returns true, or returns false to leave the fake's answer
     * ({"pid": 2}). May be NULL. */
    bool (*start)(struct fake_container *fc, ef_rpc_request *req, const cJSON *params);
};

struct fake_funclet {
    struct harness *h;
    const struct fake_runner_ops *ops;
    ef_rpc_server *srv;
    int creates, destroys, invokes;
    int new_mode; /* of the containers created from now on */
    struct fake_container *containers;
};

/* What the fake has seen, read on the loop thread. */
struct fake_counts {
    int creates, destroys, invokes;
    int invokes_of[FAKE_COUNTED_CONTAINERS]; /* of c1..c8 */
};

/* Zeroes `f` and `h` (but for h->async and h->sched, the test's settings), then starts the
 * harness with the fake listening on its funclet socket before the controller starts. Uses
 * h->user and h->on_stopped. */
void fake_funclet_start(struct fake_funclet *f, struct harness *h,
                        const struct fake_runner_ops *ops);

/* Stops the harness (the fake's sockets close on its loop) and frees the containers. */
void fake_funclet_stop(struct fake_funclet *f);

/* The counts as they are now. */
struct fake_counts fake_funclet_counts(struct fake_funclet *f);

/* Waits up to a second for at least `n` destroys; returns the number of destroys then. */
int fake_funclet_wait_destroys(struct fake_funclet *f, int n);

/* Sets the mode of the containers created from now on. */
void fake_funclet_set_new_mode(struct fake_funclet *f, int mode);

/* Sets the mode of the container `id`. */
void fake_funclet_set_mode(struct fake_funclet *f, const char *id, int mode);

/* The runner of `id` says, on the controller's connection, that its runtime ended. Fails the
 * test when it cannot be sent. */
void fake_funclet_send_exited(struct fake_funclet *f, const char *id, const char *status);

/* Sends runtime.exited with pid 2 and `status` ("exit status 0") on `conn`, as a runner does
 * when its runtime ends; fails the test when it cannot be sent. For use on the loop thread. */
void fake_runner_exited(ef_rpc_conn *conn, const char *status);

/* A runner's answer to `invoke`: the function returned `payload` (JSON text) and printed
 * nothing. */
cJSON *fake_ok_answer(const char *payload);
