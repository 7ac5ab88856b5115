/* A Python runtime started ahead of its function (`runner init --prestart python`): in a cold
 * container of funclet's pool the interpreter starts, imports the bootstrap and waits on a pipe
 * (its fd 3, EF_PRESTART_FD=3) for the environment of the function it will serve. runtime.start
 * of a Python function then hands it that environment instead of starting an interpreter, so a
 * cold start does not wait for Python to start. A function whose environment would change how
 * the interpreter starts (PYTHON*, LD_*, LANG, LC_*, TZ, ...) gets a new interpreter, as does a
 * function of another runtime; the waiting one is then ended. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "common/error.h"
#include "runner/spawn.h"

struct ef_prestart {
    pid_t pid;     /* > 0 while a runtime waits for its function */
    int config_fd; /* write end of its configuration pipe */
    int log_fd;    /* read end of its stdout and stderr */
};

/* An empty prestart (nothing waiting). */
void ef_prestart_init(struct ef_prestart *p);

/* Starts <runtime_dir>/python/bootstrap as ef_runtime_spawn() starts runtimes, with Lambda's
 * base environment and EF_PRESTART_FD=3. Returns 0, or a negative errno with `err` set. */
int ef_prestart_start(struct ef_prestart *p, const struct ef_spawn_settings *s, ef_error *err);

/* Whether the waiting runtime can serve `cfg`: one waits, `cfg` is a python3.* function, and
 * its environment names none of the variables an interpreter reads as it starts. */
bool ef_prestart_fits(const struct ef_prestart *p, const struct ef_runtime_config *cfg);

/* Hands the waiting runtime its environment (`env`, as ef_runtime_build_env() makes it) and
 * gives it up to the caller: its pid and output pipe. Returns 0, or a negative errno with `err`
 * set (the waiting runtime is ended then). */
int ef_prestart_adopt(struct ef_prestart *p, char *const *env, pid_t *ret_pid, int *ret_log_fd,
                      ef_error *err);

/* Ends the waiting runtime, if any (SIGKILL, reaped). */
void ef_prestart_discard(struct ef_prestart *p);

/* For the SIGCHLD handler: true (and the prestart forgotten) when `pid` was the waiting
 * runtime. */
bool ef_prestart_reaped(struct ef_prestart *p, pid_t pid);
