/* Container lifecycle on the parent (funclet) side: create (directory, runner socket, cgroups,
 * clone, wait for the child), destroy (kill, reap, sweep, remove), reaping of runners that end
 * on their own, and removal of what a previous run left behind. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"
#include "funclet/funclet.h"
#include "funclet/validate.h"

enum ef_container_state {
    EF_CONTAINER_RUNNING,
    EF_CONTAINER_EXITED, /* the runner ended and was reaped; waiting for container.destroy */
};

struct ef_container {
    struct ef_container *next;
    struct ef_funclet *funclet;
    char id[EF_CONTAINER_ID_LEN + 1];
    pid_t pid; /* host pid of the runner (PID 1 of the container); 0 before clone */
    enum ef_container_state state;
    int wait_status; /* EF_CONTAINER_EXITED: as from waitpid */
    int64_t memory_mb;
    int64_t pids_max;
    int64_t cpu_millicores;
    char *code_dir;      /* canonical */
    char *dir;           /* <run>/containers/<id> */
    char *runner_socket; /* <dir>/runner.sock */
    struct ef_cgroup *cgroup;
    struct ef_oom_watch *oom_watch; /* NULL when the kernel offers no OOM events */
    uint64_t oom_kills;             /* the cgroup's OOM kill counter when last looked at */
    bool oom_killed;                /* at least one process was OOM-killed */
};

/* How long container creation waits for the child to exec the runner. */
#define EF_CONTAINER_START_TIMEOUT_MS 10000

/* Creates a container from validated params and adds it to f->containers. On failure every
 * part created so far is undone and `err` says which step failed, prefixed by the container id.
 * Blocks the loop while the child builds the root (milliseconds). */
int ef_container_create(struct ef_funclet *f, const struct ef_create_params *params,
                        struct ef_container **ret, ef_error *err);

/* Kills the container's processes, reaps the runner, removes the cgroups, the runner socket and
 * the directory, then unlinks and frees `c`. On failure `c` stays listed (as exited) so the
 * destroy can be repeated, and `err` says what remained. */
int ef_container_destroy(struct ef_funclet *f, struct ef_container *c, ef_error *err);

/* Destroys every container (shutdown); failures are logged. */
void ef_container_destroy_all(struct ef_funclet *f);

/* The container with this id, or NULL. */
struct ef_container *ef_container_find(const struct ef_funclet *f, const char *id);

/* Called for each runner found dead by ef_container_reap(). */
typedef void (*ef_container_exit_cb)(struct ef_funclet *f, struct ef_container *c, void *user);

/* Reaps every child that has ended (waitpid(-1, WNOHANG) until none is left), marks the
 * containers whose runner ended as exited and calls `cb` for each. */
void ef_container_reap(struct ef_funclet *f, ef_container_exit_cb cb, void *user);

/* Reads the container's OOM kill counter; when it grew, records it (oom_killed) and calls
 * f->on_oom. Called when the cgroup's OOM event fires and before an exit is reported, so that
 * an OOM kill of the runner itself is reported before its exit. */
void ef_container_check_oom(struct ef_funclet *f, struct ef_container *c);

/* Removes the containers a previous run left in the containers directory: their cgroups
 * (killing what still runs there) and their directories. Failures are logged. */
void ef_container_remove_orphans(struct ef_funclet *f);
