/* Starting the runtime's bootstrap with Lambda's environment and without privileges. */
#define _GNU_SOURCE
#include "runner/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef __NR_close_range
#define __NR_close_range 436
#endif

#define ENV_NAME_MAX 256

void ef_runtime_config_free(struct ef_runtime_config *cfg)
{
    free(cfg->function_name);
    free(cfg->function_version);
    free(cfg->handler);
    free(cfg->runtime);
    cJSON_Delete(cfg->environment);
    memset(cfg, 0, sizeof(*cfg));
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

static bool function_name_valid(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > EF_FUNCTION_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!name_char(s[i]))
            return false;
    return true;
}

static bool version_valid(const char *s)
{
    size_t len = strlen(s);
    if (strcmp(s, "$LATEST") == 0)
        return true;
    if (len == 0 || len > 10)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* Lambda's handler rule: no whitespace; we also refuse control characters. */
static bool handler_valid(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > EF_HANDLER_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

static bool runtime_name_valid(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > EF_RUNTIME_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-'))
            return false;
    }
    return true;
}

static bool env_name_valid(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > ENV_NAME_MAX || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

/* Reads an optional integer parameter in [min, max]. */
static int get_int(const cJSON *params, const char *name, bool required, long def, long min,
                   long max, long *ret, ef_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, name);
    if (!v) {
        if (required)
            return ef_error_set(err, -EINVAL, "%s is required", name);
        *ret = def;
        return 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(long)v->valuedouble ||
        v->valuedouble < (double)min || v->valuedouble > (double)max)
        return ef_error_set(err, -EINVAL, "%s must be an integer from %ld to %ld", name, min, max);
    *ret = (long)v->valuedouble;
    return 0;
}

static int check_environment(const cJSON *env, ef_error *err)
{
    if (!cJSON_IsObject(env))
        return ef_error_set(err, -EINVAL, "environment must be an object of strings");
    size_t n = 0, bytes = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, env)
    {
        if (!env_name_valid(v->string))
            return ef_error_set(err, -EINVAL,
                                "environment: '%.64s' is not a valid variable name (letters, "
                                "digits and '_', not starting with a digit, at most %d)",
                                v->string, ENV_NAME_MAX);
        if (!cJSON_IsString(v))
            return ef_error_set(err, -EINVAL, "environment: the value of %s must be a string",
                                v->string);
        n++;
        bytes += strlen(v->string) + strlen(v->valuestring) + 2;
    }
    if (n > EF_ENV_MAX_VARS)
        return ef_error_set(err, -EINVAL, "environment: %zu variables, more than the limit of %d",
                            n, EF_ENV_MAX_VARS);
    if (bytes > EF_ENV_MAX_BYTES)
        return ef_error_set(err, -EINVAL, "environment: %zu bytes, more than the limit of %u",
                            bytes, EF_ENV_MAX_BYTES);
    return 0;
}

int ef_runtime_config_parse(const cJSON *params, struct ef_runtime_config *ret, ef_error *err)
{
    if (!cJSON_IsObject(params))
        return ef_error_set(err, -EINVAL, "params must be an object");

    const cJSON *name = cJSON_GetObjectItemCaseSensitive(params, "function_name");
    if (!cJSON_IsString(name) || !function_name_valid(name->valuestring))
        return ef_error_set(err, -EINVAL,
                            "function_name must be 1 to %d characters from [A-Za-z0-9_-]",
                            EF_FUNCTION_NAME_MAX);
    const cJSON *version = cJSON_GetObjectItemCaseSensitive(params, "function_version");
    if (version && (!cJSON_IsString(version) || !version_valid(version->valuestring)))
        return ef_error_set(err, -EINVAL, "function_version must be \"$LATEST\" or a number");
    const cJSON *handler = cJSON_GetObjectItemCaseSensitive(params, "handler");
    if (!cJSON_IsString(handler) || !handler_valid(handler->valuestring))
        return ef_error_set(err, -EINVAL, "handler must be 1 to %d characters without whitespace",
                            EF_HANDLER_MAX);
    const cJSON *runtime = cJSON_GetObjectItemCaseSensitive(params, "runtime");
    if (!cJSON_IsString(runtime) || !runtime_name_valid(runtime->valuestring))
        return ef_error_set(err, -EINVAL,
                            "runtime must be a runtime name such as \"python3.11\" or "
                            "\"provided.al2023\"");
    long memory_mb, timeout_s;
    int r = get_int(params, "memory_mb", true, 0, 64, 10240, &memory_mb, err);
    if (r < 0)
        return r;
    r = get_int(params, "timeout_s", false, 3, 1, 900, &timeout_s, err);
    if (r < 0)
        return r;
    long max_concurrency;
    r = get_int(params, "max_concurrency", false, 1, 1, EF_MAX_CONCURRENCY_LIMIT, &max_concurrency,
                err);
    if (r < 0)
        return r;
    const cJSON *env = cJSON_GetObjectItemCaseSensitive(params, "environment");
    if (env && !cJSON_IsNull(env)) {
        r = check_environment(env, err);
        if (r < 0)
            return r;
    } else
        env = NULL;

    struct ef_runtime_config c = {
        .function_name = strdup(name->valuestring),
        .function_version = strdup(version ? version->valuestring : "$LATEST"),
        .handler = strdup(handler->valuestring),
        .runtime = strdup(runtime->valuestring),
        .memory_mb = memory_mb,
        .timeout_s = timeout_s,
        .max_concurrency = max_concurrency,
        .environment = env ? cJSON_Duplicate(env, true) : NULL,
    };
    if (!c.function_name || !c.function_version || !c.handler || !c.runtime ||
        (env && !c.environment)) {
        ef_runtime_config_free(&c);
        return ef_error_set(err, -ENOMEM, "out of memory");
    }
    *ret = c;
    return 0;
}

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

int ef_runtime_bootstrap_path(const char *runtime, const struct ef_spawn_settings *s,
                              char **ret_path, ef_error *err)
{
    char *path = NULL;
    int r;
    if (has_prefix(runtime, "python3"))
        r = asprintf(&path, "%s/python/bootstrap", s->runtime_dir);
    else if (has_prefix(runtime, "nodejs"))
        r = asprintf(&path, "%s/node/bootstrap", s->runtime_dir);
    else if (has_prefix(runtime, "provided"))
        r = asprintf(&path, "%s/bootstrap", s->task_dir);
    else
        return ef_error_set(
            err, -EINVAL,
            "runtime '%s' is not supported here (python3.*, nodejs* and provided.* are)", runtime);
    if (r < 0)
        return ef_error_set(err, -ENOMEM, "out of memory");
    *ret_path = path;
    return 0;
}

static const char *const reserved_names[] = {
    "AWS_LAMBDA_RUNTIME_API",
    "_HANDLER",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_MAX_CONCURRENCY",
    "_X_AMZN_TRACE_ID",
};

bool ef_runtime_env_reserved(const char *name)
{
    for (size_t i = 0; i < EF_ARRAY_SIZE(reserved_names); i++)
        if (strcmp(name, reserved_names[i]) == 0)
            return true;
    return false;
}

void ef_strv_free(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

const char *ef_strv_env_get(char *const *env, const char *name)
{
    size_t n = strlen(name);
    for (char *const *p = env; *p; p++)
        if (strncmp(*p, name, n) == 0 && (*p)[n] == '=')
            return *p + n + 1;
    return NULL;
}

/* A growing NULL-terminated vector of "NAME=value" strings. */
struct envv {
    char **v;
    size_t n, cap;
};

/* Sets `name` to `value`, replacing an earlier entry of the same name. */
static int envv_set(struct envv *e, const char *name, const char *value)
{
    char *entry = NULL;
    if (asprintf(&entry, "%s=%s", name, value) < 0)
        return -ENOMEM;
    size_t nlen = strlen(name);
    for (size_t i = 0; i < e->n; i++)
        if (strncmp(e->v[i], name, nlen) == 0 && e->v[i][nlen] == '=') {
            free(e->v[i]);
            e->v[i] = entry;
            return 0;
        }
    if (e->n + 2 > e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 32;
        char **nv = realloc(e->v, cap * sizeof(*nv));
        if (!nv) {
            free(entry);
            return -ENOMEM;
        }
        e->v = nv;
        e->cap = cap;
    }
    e->v[e->n++] = entry;
    e->v[e->n] = NULL;
    return 0;
}

/* Lambda's log stream names look like "2024/01/31/[$LATEST]0123456789abcdef0123456789abcdef". */
static void make_log_stream_name(const char *version, char *buf, size_t len)
{
    unsigned char rnd[16];
    if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd)) {
        unsigned long long seed =
            (unsigned long long)time(NULL) ^ ((unsigned long long)getpid() << 32);
        for (size_t i = 0; i < sizeof(rnd); i++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            rnd[i] = (unsigned char)(seed >> 56);
        }
    }
    char hex[33];
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(buf, len, "%04d/%02d/%02d/[%s]%s", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             version, hex);
}

int ef_runtime_build_env(const struct ef_runtime_config *cfg, const struct ef_spawn_settings *s,
                         char ***ret_env, ef_error *err)
{
    char api[64], memory[32], group[EF_FUNCTION_NAME_MAX + 16], stream[128];
    char exec_env[EF_RUNTIME_NAME_MAX + 16];
    cleanup_free char *path = NULL, *ld_path = NULL;
    snprintf(api, sizeof(api), "127.0.0.1:%d", s->api_port);
    snprintf(memory, sizeof(memory), "%ld", cfg->memory_mb);
    snprintf(group, sizeof(group), "/aws/lambda/%s", cfg->function_name);
    snprintf(exec_env, sizeof(exec_env), "AWS_Lambda_%s", cfg->runtime);
    make_log_stream_name(cfg->function_version, stream, sizeof(stream));
    if (asprintf(&path, "/usr/local/bin:/usr/bin:/bin:%s/bin", s->runtime_dir) < 0 ||
        asprintf(&ld_path, "%s/lib:%s/lib", s->task_dir, s->runtime_dir) < 0)
        return ef_error_set(err, -ENOMEM, "out of memory");

    const char *base[][2] = {
        {"AWS_LAMBDA_RUNTIME_API", api},
        {"_HANDLER", cfg->handler},
        {"LAMBDA_TASK_ROOT", s->task_dir},
        {"LAMBDA_RUNTIME_DIR", s->runtime_dir},
        {"AWS_LAMBDA_FUNCTION_NAME", cfg->function_name},
        {"AWS_LAMBDA_FUNCTION_VERSION", cfg->function_version},
        {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory},
        {"AWS_LAMBDA_LOG_GROUP_NAME", group},
        {"AWS_LAMBDA_LOG_STREAM_NAME", stream},
        {"AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"},
        {"AWS_REGION", "us-east-1"},
        {"AWS_DEFAULT_REGION", "us-east-1"},
        {"TZ", ":UTC"},
        {"LANG", "en_US.UTF-8"},
        {"PATH", path},
        {"LD_LIBRARY_PATH", ld_path},
        {"HOME", "/tmp"},
    };

    struct envv e = {0};
    int r = 0;
    for (size_t i = 0; i < EF_ARRAY_SIZE(base) && r == 0; i++)
        r = envv_set(&e, base[i][0], base[i][1]);
    /* Lambda sets AWS_EXECUTION_ENV for its managed runtimes only, not for custom ones. */
    if (r == 0 && !has_prefix(cfg->runtime, "provided"))
        r = envv_set(&e, "AWS_EXECUTION_ENV", exec_env);
    /* A runtime that sees it may poll /next that many times at once. */
    if (r == 0 && cfg->max_concurrency > 1) {
        char conc[24];
        snprintf(conc, sizeof(conc), "%ld", cfg->max_concurrency);
        r = envv_set(&e, "AWS_LAMBDA_MAX_CONCURRENCY", conc);
    }
    const cJSON *v;
    if (cfg->environment)
        cJSON_ArrayForEach(v, cfg->environment)
        {
            if (r < 0)
                break;
            if (!cJSON_IsString(v) || ef_runtime_env_reserved(v->string))
                continue;
            r = envv_set(&e, v->string, v->valuestring);
        }
    if (r < 0) {
        ef_strv_free(e.v);
        return ef_error_set(err, -ENOMEM, "out of memory");
    }
    *ret_env = e.v;
    return 0;
}

/* Go's names for Linux signals (syscall/zerrors_linux_amd64.go), which Lambda's messages use. */
static const char *const signal_names[] = {
    [SIGHUP] = "hangup",
    [SIGINT] = "interrupt",
    [SIGQUIT] = "quit",
    [SIGILL] = "illegal instruction",
    [SIGTRAP] = "trace/breakpoint trap",
    [SIGABRT] = "aborted",
    [SIGBUS] = "bus error",
    [SIGFPE] = "floating point exception",
    [SIGKILL] = "killed",
    [SIGUSR1] = "user defined signal 1",
    [SIGSEGV] = "segmentation fault",
    [SIGUSR2] = "user defined signal 2",
    [SIGPIPE] = "broken pipe",
    [SIGALRM] = "alarm clock",
    [SIGTERM] = "terminated",
    [SIGSTKFLT] = "stack fault",
    [SIGCHLD] = "child exited",
    [SIGCONT] = "continued",
    [SIGSTOP] = "stopped (signal)",
    [SIGTSTP] = "stopped",
    [SIGTTIN] = "stopped (tty input)",
    [SIGTTOU] = "stopped (tty output)",
    [SIGURG] = "urgent I/O condition",
    [SIGXCPU] = "CPU time limit exceeded",
    [SIGXFSZ] = "file size limit exceeded",
    [SIGVTALRM] = "virtual timer expired",
    [SIGPROF] = "profiling timer expired",
    [SIGWINCH] = "window changed",
    [SIGIO] = "I/O possible",
    [SIGPWR] = "power failure",
    [SIGSYS] = "bad system call",
};

void ef_format_wait_status(int status, char *buf, size_t len)
{
    if (WIFEXITED(status)) {
        snprintf(buf, len, "exit status %d", WEXITSTATUS(status));
        return;
    }
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char *core = WCOREDUMP(status) ? " (core dumped)" : "";
        if (sig > 0 && (size_t)sig < EF_ARRAY_SIZE(signal_names) && signal_names[sig])
            snprintf(buf, len, "signal: %s%s", signal_names[sig], core);
        else
            snprintf(buf, len, "signal: signal %d%s", sig, core);
        return;
    }
    snprintf(buf, len, "unknown wait status 0x%x", (unsigned)status);
}

/* What the child reports through the status pipe when a step before exec fails. */
struct child_failure {
    int step;
    int err;
};

enum child_step {
    STEP_SIGNALS,
    STEP_SETSID,
    STEP_DUP2,
    STEP_OOM_SCORE,
    STEP_NO_NEW_PRIVS,
    STEP_AMBIENT_CLEAR,
    STEP_SETGROUPS,
    STEP_SETRESGID,
    STEP_SETRESUID,
    STEP_CAPSET,
    STEP_PDEATHSIG,
    STEP_CHDIR,
    STEP_CLOSE_FDS,
    STEP_EXECVE,
};

static const char *const step_names[] = {
    [STEP_SIGNALS] = "resetting signals",
    [STEP_SETSID] = "setsid",
    [STEP_DUP2] = "dup2 of stdin/stdout/stderr",
    [STEP_OOM_SCORE] = "resetting oom_score_adj",
    [STEP_NO_NEW_PRIVS] = "prctl(PR_SET_NO_NEW_PRIVS)",
    [STEP_AMBIENT_CLEAR] = "prctl(PR_CAP_AMBIENT_CLEAR_ALL)",
    [STEP_SETGROUPS] = "setgroups",
    [STEP_SETRESGID] = "setresgid",
    [STEP_SETRESUID] = "setresuid",
    [STEP_CAPSET] = "capset",
    [STEP_PDEATHSIG] = "prctl(PR_SET_PDEATHSIG)",
    [STEP_CHDIR] = "chdir to the task dir",
    [STEP_CLOSE_FDS] = "closing inherited fds",
    [STEP_EXECVE] = "execve",
};

/* The signals whose disposition the runner changed (a handler, or ignored), found before the
 * first spawn: the loop installs its handlers at start and never changes them afterwards. */
static int changed_signals[_NSIG];
static unsigned n_changed_signals;
static bool parent_prepared;

/* Done once, in the runner, for every runtime it will start: it saves each child dozens of
 * system calls, which a container's seccomp filter makes dearer still.
 *  - Find the signals whose disposition is not the default.
 *  - Empty the runner's capability bounding set (its own permitted and effective sets stay as
 *    they are): a runtime can then never gain a capability by exec, whatever it runs. This
 *    needs CAP_SETPCAP, which the runner has as root in its container. */
static int prepare_parent(ef_error *err)
{
    if (parent_prepared)
        return 0;
    n_changed_signals = 0;
    for (int sig = 1; sig < _NSIG; sig++) {
        struct sigaction sa;
        if (sigaction(sig, NULL, &sa) == 0 && sa.sa_handler != SIG_DFL)
            changed_signals[n_changed_signals++] = sig;
    }
    for (int cap = 0; cap < 64; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
            if (errno == EINVAL)
                break; /* past the kernel's last capability */
            return ef_error_set_errno(
                err, -errno, "cannot empty the capability bounding set (capability %d)", cap);
        }
    }
    parent_prepared = true;
    return 0;
}

/* Child side: async-signal-safe calls only (no allocation) until execve. Never returns. */
static void __attribute__((noreturn))
child_exec(const char *path, char *const *env, const struct ef_spawn_settings *s, int devnull,
           int out_w, int status_w, int pass_fd, pid_t parent)
{
    struct child_failure f = {0};
    sigset_t all;

    /* Handlers installed by the loop must not run here, and an ignored signal would stay
     * ignored across exec: those (found once by the parent) go back to the default. execve
     * resets every other disposition itself. */
    for (unsigned i = 0; i < n_changed_signals; i++) {
        struct sigaction sa = {.sa_handler = SIG_DFL};
        sigaction(changed_signals[i], &sa, NULL);
    }
    sigemptyset(&all);
    if (sigprocmask(SIG_SETMASK, &all, NULL) < 0) {
        f.step = STEP_SIGNALS;
        goto fail;
    }
    if (setsid() < 0) {
        f.step = STEP_SETSID;
        goto fail;
    }
    /* stdout and stderr share one pipe, so that their lines reach the log in the order they
     * were written, as in Lambda's log stream. */
    if (dup2(devnull, 0) < 0 || dup2(out_w, 1) < 0 || dup2(out_w, 2) < 0) {
        f.step = STEP_DUP2;
        goto fail;
    }
    /* The passed fd becomes 3: the status pipe moves out of its way first if need be. dup2
     * onto a new number leaves the copy open across exec; the same number needs its
     * close-on-exec flag cleared. */
    if (pass_fd >= 0 && status_w == 3 && pass_fd != 3)
        status_w = fcntl(3, F_DUPFD_CLOEXEC, 4);
    if (pass_fd >= 0 &&
        (status_w < 0 || (pass_fd == 3 ? fcntl(3, F_SETFD, 0) : dup2(pass_fd, 3)) < 0)) {
        f.step = STEP_DUP2;
        goto fail;
    }
    umask(022);
    /* The user's code is the OOM killer's first choice, so that exhausting the container's
     * memory ends the code and never the runner (PID 1, the container itself). Raising the
     * value needs no privilege. */
    int oom_fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (oom_fd >= 0) {
        if (write(oom_fd, "1000", 4) < 0) {
            f.step = STEP_OOM_SCORE;
            goto fail;
        }
        close(oom_fd);
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        f.step = STEP_NO_NEW_PRIVS;
        goto fail;
    }
    /* The bounding set is empty already: the parent dropped it from its own (see
     * prepare_parent), and the child inherits it. */
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) {
        f.step = STEP_AMBIENT_CLEAR;
        goto fail;
    }
    if (setgroups(0, NULL) < 0) {
        f.step = STEP_SETGROUPS;
        goto fail;
    }
    if (setresgid(s->gid, s->gid, s->gid) < 0) {
        f.step = STEP_SETRESGID;
        goto fail;
    }
    if (setresuid(s->uid, s->uid, s->uid) < 0) {
        f.step = STEP_SETRESUID;
        goto fail;
    }
    /* setresuid away from 0 already cleared the permitted and effective sets; the inheritable
     * set survives it, so clear everything explicitly. */
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof(data));
    if (syscall(SYS_capset, &hdr, data) < 0) {
        f.step = STEP_CAPSET;
        goto fail;
    }
    /* When the runner runs as an ordinary process (not PID 1), the runtime must not outlive
     * it. Set after setresuid, which clears the setting. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) {
        f.step = STEP_PDEATHSIG;
        goto fail;
    }
    if (getppid() != parent)
        _exit(127);
    /* As the user, so that a task dir it cannot enter fails here and not later. */
    if (chdir(s->task_dir) < 0) {
        f.step = STEP_CHDIR;
        goto fail;
    }
    /* Everything but 0-2 closes on exec, the status pipe included (that EOF is our success
     * signal). */
    unsigned first = pass_fd >= 0 ? 4 : 3;
    if (syscall(__NR_close_range, first, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
        struct rlimit rl;
        int max = 65536;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
            rl.rlim_cur < 1048576)
            max = (int)rl.rlim_cur;
        for (int fd = (int)first; fd < max; fd++)
            fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    char *argv[] = {(char *)path, NULL};
    execve(path, argv, env);
    f.step = STEP_EXECVE;
fail:
    f.err = errno;
    while (write(status_w, &f, sizeof(f)) < 0 && errno == EINTR)
        ;
    _exit(127);
}

/* What the child needs, on the parent's stack: the child shares the parent's memory until it
 * execs (see ef_runtime_spawn). */
struct child_args {
    const char *path;
    char *const *env;
    const struct ef_spawn_settings *s;
    int devnull, out_w, status_w, pass_fd;
    pid_t parent;
};

static int child_main(void *arg)
{
    const struct child_args *a = arg;
    child_exec(a->path, a->env, a->s, a->devnull, a->out_w, a->status_w, a->pass_fd, a->parent);
}

/* The child's stack while it shares the runner's memory: one is enough, since the runner waits
 * for each child to exec before it starts another. */
#define CHILD_STACK_SIZE (256 * 1024)
static void *child_stack;

static void close_pair(int p[2])
{
    for (int i = 0; i < 2; i++)
        if (p[i] >= 0) {
            close(p[i]);
            p[i] = -1;
        }
}

/* Records the failed step for ef_runtime_spawn_ex()'s caller and returns `code`. */
static int spawn_failed(struct ef_spawn_failure *ret_failure, const char *step, int code)
{
    if (ret_failure) {
        ret_failure->step = step;
        ret_failure->err = -code;
    }
    return code;
}

int ef_runtime_spawn(const char *path, char *const *env, const struct ef_spawn_settings *s,
                     int pass_fd, pid_t *ret_pid, int *ret_log_fd, ef_error *err)
{
    return ef_runtime_spawn_ex(path, env, s, pass_fd, ret_pid, ret_log_fd, NULL, err);
}

int ef_runtime_spawn_ex(const char *path, char *const *env, const struct ef_spawn_settings *s,
                        int pass_fd, pid_t *ret_pid, int *ret_log_fd,
                        struct ef_spawn_failure *ret_failure, ef_error *err)
{
    int out[2] = {-1, -1}, status[2] = {-1, -1};
    cleanup_close int devnull = -1;
    int r = prepare_parent(err);
    if (r < 0)
        return spawn_failed(ret_failure, "emptying the capability bounding set", r);

    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(status, O_CLOEXEC) < 0) {
        r = -errno;
        close_pair(out);
        close_pair(status);
        return spawn_failed(ret_failure, "pipe2",
                            ef_error_set_errno(err, r, "cannot create the runtime's pipes"));
    }
    devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull < 0) {
        r = -errno;
        close_pair(out);
        close_pair(status);
        return spawn_failed(ret_failure, "opening /dev/null",
                            ef_error_set_errno(err, r, "cannot open /dev/null"));
    }

    /* Blocked across fork so that no signal reaches the loop's handlers in the child, where
     * they would write into the loop's signal pipe shared with us. */
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    /* The child shares the runner's memory and the runner sleeps until it has exec'd (or
     * failed): no copy of the runner's page tables, which on a paravirtualised machine is most
     * of what a fork costs. child_exec() uses its own stack and locals only, and nothing that
     * locks (no allocation), as a vfork child must. */
    if (!child_stack) {
        void *stack = mmap(NULL, CHILD_STACK_SIZE, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (stack != MAP_FAILED)
            child_stack = stack;
    }
    struct child_args args = {
        .path = path,
        .env = env,
        .s = s,
        .devnull = devnull,
        .out_w = out[1],
        .status_w = status[1],
        .pass_fd = pass_fd,
        .parent = getpid(),
    };
    pid_t pid;
    if (child_stack)
        pid = clone(child_main, (char *)child_stack + CHILD_STACK_SIZE,
                    CLONE_VM | CLONE_VFORK | SIGCHLD, &args);
    else if ((pid = fork()) == 0)
        child_exec(path, env, s, devnull, out[1], status[1], pass_fd, args.parent);
    r = -errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(out[1]);
    close(status[1]);
    out[1] = status[1] = -1;
    if (pid < 0) {
        close_pair(out);
        close_pair(status);
        return spawn_failed(ret_failure, "fork",
                            ef_error_set_errno(err, r, "cannot start %s: fork", path));
    }

    struct child_failure f;
    ssize_t n;
    do
        n = read(status[0], &f, sizeof(f));
    while (n < 0 && errno == EINTR);
    close_pair(status);
    if (n != 0) {
        /* The child failed before exec (or the status read itself failed): it is gone or
         * about to be; reap it so it is not mistaken for the runtime later. */
        if (n != (ssize_t)sizeof(f)) {
            f.step = STEP_EXECVE;
            f.err = n < 0 ? errno : EIO;
            kill(pid, SIGKILL);
        }
        if (f.err <= 0)
            f.err = EIO;
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        close_pair(out);
        const char *step = f.step >= 0 && (size_t)f.step < EF_ARRAY_SIZE(step_names)
                               ? step_names[f.step]
                               : "setup";
        return spawn_failed(
            ret_failure, step,
            ef_error_set(err, -f.err, "cannot start %s: %s: %s", path, step, strerror(f.err)));
    }

    if (fcntl(out[0], F_SETFL, O_NONBLOCK) < 0) {
        r = -errno;
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        close_pair(out);
        return spawn_failed(
            ret_failure, "fcntl(O_NONBLOCK)",
            ef_error_set_errno(err, r, "cannot make the runtime's pipes nonblocking"));
    }
    *ret_pid = pid;
    *ret_log_fd = out[0];
    return 0;
}
