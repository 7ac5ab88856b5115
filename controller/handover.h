/* Warm invocations without the runner in the middle (docs/handover.md).
 *
 * Once a container that serves one invocation at a time has answered its first invocation, the
 * controller asks its runner for the runtime's Runtime API connection (runtime.handover): the
 * runner passes the connection, with the runtime's GET /next poll waiting on it, the read end
 * of the runtime's output pipe and its open /proc/<pid>/status. From then on the controller
 * serves that connection with the runner's own Runtime API code (rapi/): it hands events to the
 * runtime, takes /response and /error, frames each invocation's log and enforces the deadline.
 * An invocation then wakes two processes (controller, runtime) instead of three.
 *
 * The runner keeps the runtime's process: it reaps it and reports its exit (runtime.exited),
 * which fails what is in flight here with Runtime.ExitError as the runner would, and kills it
 * when asked (runtime.kill: a timeout, an init error). The handover lasts until the runtime ends
 * or the container leaves the pool. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "common/rpc.h"

struct ef_container;
struct ef_handover;

/* After an invocation's answer: asks the runner of `c` for a handover when `c` qualifies (the
 * controller's --runtime-handover is on, `c` is idle, serves one invocation at a time and its
 * runner has refused fewer than three times). Invocations placed on `c` while the answer is on its
 * way wait for it (ef_handover_park). */
void ef_handover_ask(struct ef_container *c);

/* True while a runtime.handover call of `c` is unanswered. */
bool ef_handover_pending(const struct ef_container *c);

/* Runs `send(user, usable)` once the pending runtime.handover call of `c` is answered, either
 * way (or its connection closed). With `usable` the invocation is then sent through the
 * handover or to the runner; without, the container cannot serve (the runtime's connection was
 * lost on the way) and the invocation, which never reached it, goes elsewhere. One invocation
 * at most waits per container (it serves one at a time). */
void ef_handover_park(struct ef_container *c, void (*send)(void *user, bool usable), void *user);

/* True while the handover serves the runtime (not closing, its connection not lost). */
bool ef_handover_serving(const struct ef_handover *h);

/* Sends an `invoke` (params as docs/rpc.md, consumed) through the handover; `timeout_ms` is the
 * function's Timeout, counted from the hand-out. `cb` gets the answer the runner would have
 * given, with conn NULL, always later (never from inside this call). Returns 0, or a negative
 * errno when the invocation was not taken (`cb` does not run): the runtime has failed or is
 * draining, the handover is closing, or memory ran out. */
int ef_handover_invoke(struct ef_handover *h, cJSON *params, long long timeout_ms,
                       ef_rpc_result_cb cb, void *user);

/* The runner reported the runtime's end (`how`: "exit status 1", "signal: killed"): what it
 * wrote last joins the log, and every invocation in flight fails with Runtime.ExitError. */
void ef_handover_runtime_exited(struct ef_handover *h, const char *how);

/* Ends the handover (the container leaves the pool): on the next turn of the loop, invocations
 * still in flight fail as if the runtime had ended (`how`), the connection, the pipe and the
 * status file are closed, and the container is released from it (ef_pool_handover_gone). Safe
 * to call more than once. */
void ef_handover_close(struct ef_handover *h, const char *how);
