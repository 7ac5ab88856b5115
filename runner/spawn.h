/* Starting the runtime's bootstrap: its configuration (the params of `runtime.start`), its
 * environment (Lambda's), and the process itself, as the unprivileged user with no capabilities
 * and no_new_privs. Parsing and environment construction are pure, for unit tests. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/error.h"

#define EF_FUNCTION_NAME_MAX 140
#define EF_HANDLER_MAX       128
#define EF_RUNTIME_NAME_MAX  64
/* Limits on the function's own variables (Lambda allows 4 KiB in total; the controller
 * enforces that, this is the runner's own bound). */
#define EF_ENV_MAX_VARS  256
#define EF_ENV_MAX_BYTES (64u * 1024u)

/* The params of `runtime.start`, validated. Strings are owned. */
struct ef_runtime_config {
    char *function_name;
    char *function_version;
    char *handler;
    char *runtime;
    long memory_mb;
    long timeout_s;
    long max_concurrency; /* invocations served at once, 1..EF_MAX_CONCURRENCY_LIMIT */
    cJSON *environment;   /* object of strings; NULL when none */
};

/* The highest max_concurrency runtime.start accepts: invocations one container serves at once. */
#define EF_MAX_CONCURRENCY_LIMIT 64

/* Where the runtime runs: the runner's own settings. */
struct ef_spawn_settings {
    const char *runtime_dir; /* /var/runtime */
    const char *task_dir;    /* /var/task */
    int api_port;
    uid_t uid;
    gid_t gid;
};

/* Parses and validates `runtime.start` params into *ret (untouched on failure). Returns 0 or
 * -EINVAL with a message naming the parameter, or -ENOMEM. */
int ef_runtime_config_parse(const cJSON *params, struct ef_runtime_config *ret, ef_error *err);

void ef_runtime_config_free(struct ef_runtime_config *cfg);

/* The bootstrap for a runtime name: `python3*` → <runtime_dir>/python/bootstrap, `nodejs*` →
 * <runtime_dir>/node/bootstrap, `provided*` → <task_dir>/bootstrap. Returns 0 with a malloc'd path,
 * or -EINVAL for an unknown runtime. */
int ef_runtime_bootstrap_path(const char *runtime, const struct ef_spawn_settings *s,
                              char **ret_path, ef_error *err);

/* True for the variables the runner sets that a function's own variables cannot override:
 * AWS_LAMBDA_RUNTIME_API, _HANDLER, LAMBDA_TASK_ROOT, LAMBDA_RUNTIME_DIR, the
 * AWS_LAMBDA_FUNCTION_* and AWS_LAMBDA_LOG_* identity, AWS_EXECUTION_ENV,
 * AWS_LAMBDA_INITIALIZATION_TYPE, AWS_LAMBDA_MAX_CONCURRENCY and _X_AMZN_TRACE_ID. (TZ, LANG, PATH,
 * LD_LIBRARY_PATH, HOME and the region may be overridden, as Lambda allows for all but the region;
 * the region is allowed here because there is no real one to protect.) */
bool ef_runtime_env_reserved(const char *name);

/* Builds the bootstrap's environment: Lambda's variables (AWS_LAMBDA_MAX_CONCURRENCY only when
 * max_concurrency is above 1), then the function's own (those named by ef_runtime_env_reserved
 * are skipped; others replace a default of the same name). Returns 0
 * and a NULL-terminated, malloc'd "NAME=value" vector (free with ef_strv_free), or -ENOMEM. */
int ef_runtime_build_env(const struct ef_runtime_config *cfg, const struct ef_spawn_settings *s,
                         char ***ret_env, ef_error *err);

/* Returns the value of `name` in an environment vector, or NULL. */
const char *ef_strv_env_get(char *const *env, const char *name);

void ef_strv_free(char **v);

/* Formats a wait status the way Go's os/exec does (and Lambda reports it): "exit status 3",
 * "signal: killed", "signal: segmentation fault"; "signal 77" for signals without a name. */
void ef_format_wait_status(int status, char *buf, size_t len);

/* Starts `path` with `env`, cwd <task_dir>, as uid/gid with no supplementary groups, an empty
 * capability set (bounding set dropped, ambient cleared), no_new_privs, in a new session, stdin
 * /dev/null, stdout and stderr on one pipe (so that their lines keep their order), and no other
 * fds but `pass_fd` (when >= 0), which the runtime gets as fd 3. Returns 0 once exec has
 * succeeded, with the pid and the pipe's read end (nonblocking, close-on-exec); or a negative
 * errno with `err` naming the step that failed (nothing is left running then). */
int ef_runtime_spawn(const char *path, char *const *env, const struct ef_spawn_settings *s,
                     int pass_fd, pid_t *ret_pid, int *ret_log_fd, ef_error *err);

/* Where a start failed, for a caller that tells its causes apart without reading the message:
 * `step` is a static name ("execve", "setresuid", "chdir to the task dir", "fork", ...) and
 * `err` the positive errno of that step. */
struct ef_spawn_failure {
    const char *step;
    int err;
};

/* As ef_runtime_spawn(), and on failure also fills *ret_failure (when not NULL) with the step
 * that failed and its errno; *ret_failure is untouched on success. */
int ef_runtime_spawn_ex(const char *path, char *const *env, const struct ef_spawn_settings *s,
                        int pass_fd, pid_t *ret_pid, int *ret_log_fd,
                        struct ef_spawn_failure *ret_failure, ef_error *err);
