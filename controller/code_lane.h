/* The code lane: every change to the code store — storing an uploaded zip, removing code no
 * function uses any more — runs on libuv's thread pool, one job at a time, in the order asked.
 *
 * One at a time is what makes garbage collection safe without locks: while a removal runs no
 * upload can be reusing the same extracted tree, and the set of code in use is computed on the
 * loop thread right before the removal starts, after every earlier upload has been committed to
 * the store. Code a container still runs (an in-flight invocation of the old code after an
 * update) is kept, and so is everything while a container is being started (its code is not
 * in the pool yet); a later collection, retried on a timer, removes it.
 *
 * Uploads are hashed, extracted and fsync'ed off the loop, so a 250 MB package never stalls the
 * API; serialising them costs parallel uploads some latency, which management calls can afford. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"
#include "controller/codestore.h"

struct ef_controller;
typedef struct ef_code_lane ef_code_lane;

/* Reports a stored upload on the loop thread: r == 0 with the code's sha256 (`hex`), or a
 * negative errno with `err` (-EINVAL: the zip is invalid, unsafe or over a limit). */
typedef void (*ef_code_upload_cb)(struct ef_controller *ctl, int r, const ef_error *err,
                                  const char *hex, void *user);

/* Creates the lane of `ctl`. Its retry timer is created on ctl->loop when first needed. */
int ef_code_lane_new(struct ef_controller *ctl, ef_code_lane **ret_lane, ef_error *err);

/* Stops collecting (the controller is stopping) and closes the retry timer. Queued uploads still
 * run, so that their callbacks are called. */
void ef_code_lane_close(ef_code_lane *lane);

/* Frees the lane once the loop has finished (after uv_run returned); NULL is fine. */
void ef_code_lane_free(ef_code_lane *lane);

/* Queues storing the zip `zip` of `len` bytes (consumed, freed with free()) for function `name`.
 * `done` is called exactly once, on the loop thread, after the zip is stored or refused; the
 * caller commits the store change in it, before the lane starts its next job. */
int ef_code_lane_upload(ef_code_lane *lane, const char *name, unsigned char *zip, size_t len,
                        ef_code_upload_cb done, void *user, ef_error *err);

/* True while an upload for function `name` is queued or running. */
bool ef_code_lane_busy(const ef_code_lane *lane, const char *name);

/* Queues a collection: every code on disk that no function or version refers to, no container
 * uses and no invocation holds is removed. Collections asked while one is already queued are
 * merged. */
void ef_code_lane_collect(ef_code_lane *lane);

/* An invocation holds the code (sha256 `hex`) it will run from its start to its end, so that a
 * collection after an update or a delete never removes the code of an invocation still queued
 * or waiting for a container (which has none in the pool yet). Returns 0 or -ENOMEM. */
int ef_code_lane_hold(ef_code_lane *lane, const char *hex);

/* Gives back one hold of ef_code_lane_hold; a collection then may remove the code. NULL lane is
 * fine (the controller is going). */
void ef_code_lane_release(ef_code_lane *lane, const char *hex);

/* Counters for tests and logs: collections run and codes removed since start. */
unsigned ef_code_lane_collections(const ef_code_lane *lane);
unsigned ef_code_lane_removed(const ef_code_lane *lane);
