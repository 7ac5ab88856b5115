/* A Python runtime started ahead of its function: see prestart.h. */
#define _GNU_SOURCE
#include "runner/prestart.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"

/* Variables that change how an interpreter or the C library start: a function that sets one
 * needs an interpreter started with it. */
static const char *const startup_prefixes[] = {"PYTHON", "LD_", "LC_", "MALLOC_", NULL};
static const char *const startup_names[] = {"LANG", "LANGUAGE", "TZ", "GLIBC_TUNABLES", NULL};

void ef_prestart_init(struct ef_prestart *p)
{
    p->pid = 0;
    p->config_fd = -1;
    p->log_fd = -1;
}

static void close_fds(struct ef_prestart *p)
{
    if (p->config_fd >= 0)
        close(p->config_fd);
    if (p->log_fd >= 0)
        close(p->log_fd);
    p->config_fd = p->log_fd = -1;
}

int ef_prestart_start(struct ef_prestart *p, const struct ef_spawn_settings *s, ef_error *err)
{
    cleanup_free char *path = NULL;
    int r = ef_runtime_bootstrap_path("python3", s, &path, err);
    if (r < 0)
        return r;
    if (access(path, X_OK) < 0)
        return ef_error_set_errno(err, -errno, "no Python runtime to start ahead at %s", path);

    /* Lambda's base environment of a Python function, with placeholders for the function: the
     * runtime replaces all of it with what it is handed. */
    struct ef_runtime_config cfg = {
        .function_name = "prestart",
        .function_version = "$LATEST",
        .handler = "prestart.handler",
        .runtime = "python3",
        .memory_mb = 128,
        .timeout_s = 3,
        .max_concurrency = 1,
    };
    char **base = NULL;
    r = ef_runtime_build_env(&cfg, s, &base, err);
    if (r < 0)
        return r;
    size_t n = 0;
    while (base[n])
        n++;
    char **env = calloc(n + 2, sizeof(*env));
    if (!env) {
        ef_strv_free(base);
        return ef_error_set(err, -ENOMEM, "out of memory");
    }
    memcpy(env, base, n * sizeof(*env));
    env[n] = "EF_PRESTART_FD=3";

    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        r = ef_error_set_errno(err, -errno, "cannot make the prestart's configuration pipe");
        free(env);
        ef_strv_free(base);
        return r;
    }
    pid_t pid = 0;
    int log_fd = -1;
    r = ef_runtime_spawn(path, env, s, pipefd[0], &pid, &log_fd, err);
    free(env);
    ef_strv_free(base);
    close(pipefd[0]);
    if (r < 0) {
        close(pipefd[1]);
        return r;
    }
    p->pid = pid;
    p->config_fd = pipefd[1];
    p->log_fd = log_fd;
    ef_info("a Python runtime waits for its function (pid %d)", (int)pid);
    return 0;
}

static bool startup_variable(const char *name)
{
    for (const char *const *x = startup_prefixes; *x; x++)
        if (strncmp(name, *x, strlen(*x)) == 0)
            return true;
    for (const char *const *x = startup_names; *x; x++)
        if (strcmp(name, *x) == 0)
            return true;
    return false;
}

bool ef_prestart_fits(const struct ef_prestart *p, const struct ef_runtime_config *cfg)
{
    if (p->pid <= 0 || strncmp(cfg->runtime, "python3", 7) != 0)
        return false;
    const cJSON *v;
    cJSON_ArrayForEach(v, cfg->environment)
    {
        if (v->string && startup_variable(v->string))
            return false;
    }
    return true;
}

/* Writes all of `buf`; the configuration is far smaller than a pipe's buffer, so this does not
 * wait for the runtime. */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int ef_prestart_adopt(struct ef_prestart *p, char *const *env, pid_t *ret_pid, int *ret_log_fd,
                      ef_error *err)
{
    cleanup_cjson cJSON *doc = cJSON_CreateObject();
    cJSON *vars = doc ? cJSON_AddObjectToObject(doc, "env") : NULL;
    bool ok = vars != NULL;
    for (char *const *e = env; ok && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        cleanup_free char *name = strndup(*e, (size_t)(eq - *e));
        ok = name && cJSON_AddStringToObject(vars, name, eq + 1);
    }
    cleanup_free char *text = ok ? cJSON_PrintUnformatted(doc) : NULL;
    if (!text) {
        ef_prestart_discard(p);
        return ef_error_set(err, -ENOMEM, "out of memory");
    }
    int r = write_all(p->config_fd, text, strlen(text));
    if (r < 0) {
        ef_prestart_discard(p);
        return ef_error_set_errno(err, r, "cannot hand the waiting Python runtime its function");
    }
    close(p->config_fd);
    *ret_pid = p->pid;
    *ret_log_fd = p->log_fd;
    ef_prestart_init(p);
    return 0;
}

void ef_prestart_discard(struct ef_prestart *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    close_fds(p);
    ef_prestart_init(p);
}

bool ef_prestart_reaped(struct ef_prestart *p, pid_t pid)
{
    if (p->pid <= 0 || pid != p->pid)
        return false;
    ef_info("the Python runtime started ahead (pid %d) ended before its function came", (int)pid);
    close_fds(p);
    ef_prestart_init(p);
    return true;
}
