#include "funclet/spawn.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHILD_STACK_SIZE (256 * 1024)

struct spawn_job {
    uv_work_t work;
    struct ef_sandbox_args args; /* plan, rootfs and hostname point into the job */
    struct ef_mount_plan plan;
    char *rootfs;
    char *hostname;
    int clone_flags;
};

/* The children run on it one at a time: it is funclet's memory, shared with the child. */
static char child_stack[CHILD_STACK_SIZE] __attribute__((aligned(64)));
static pthread_mutex_t child_stack_lock = PTHREAD_MUTEX_INITIALIZER;

static void job_free(struct spawn_job *job)
{
    if (job->args.sync_fd >= 0)
        close(job->args.sync_fd);
    if (job->args.runner_fd >= 0)
        close(job->args.runner_fd);
    ef_mount_plan_free(&job->plan);
    free(job->rootfs);
    free(job->hostname);
    free(job);
}

static void report_clone_failure(int fd, int err)
{
    struct ef_sandbox_report r;
    memset(&r, 0, sizeof(r));
    r.err = err;
    snprintf(r.msg, sizeof(r.msg), "clone");
    ssize_t n = write(fd, &r, sizeof(r));
    (void)n;
}

/* On a thread of the pool: returns once the child has exec'd the runner or ended. */
static void spawn_work(uv_work_t *w)
{
    struct spawn_job *job = w->data;
    /* The caller gave up (a start timeout, a destroy) before the clone: no child. */
    struct pollfd p = {.fd = job->args.sync_fd, .events = 0};
    if (poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR)))
        goto out;

    /* No signal handler may run on this thread while the child shares its stack and TLS, and
     * none may cut the vfork wait short; the child starts with this mask and clears it itself
     * before its exec. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_mutex_lock(&child_stack_lock);
    pid_t pid = clone(ef_sandbox_child, child_stack + CHILD_STACK_SIZE,
                      job->clone_flags | CLONE_VM | CLONE_VFORK | SIGCHLD, &job->args);
    int e = errno;
    pthread_mutex_unlock(&child_stack_lock);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0)
        report_clone_failure(job->args.sync_fd, e);
out:
    /* The child's own copies closed at its exec; with these the caller sees end-of-file. */
    close(job->args.sync_fd);
    close(job->args.runner_fd);
    job->args.sync_fd = job->args.runner_fd = -1;
}

/* On the loop, after the clone (or after a cancellation). */
static void spawn_done(uv_work_t *w, int status)
{
    (void)status;
    job_free(w->data);
}

int ef_sandbox_spawn(uv_loop_t *loop, const struct ef_sandbox_args *args,
                     struct ef_mount_plan *plan, int clone_flags, ef_error *err)
{
    struct spawn_job *job = calloc(1, sizeof(*job));
    if (!job) {
        ef_mount_plan_free(plan);
        close(args->sync_fd);
        close(args->runner_fd);
        return ef_error_set(err, -ENOMEM, "out of memory");
    }
    job->args = *args;
    job->plan = *plan;
    memset(plan, 0, sizeof(*plan));
    job->args.plan = &job->plan;
    job->rootfs = strdup(args->rootfs);
    job->hostname = strdup(args->hostname);
    job->clone_flags = clone_flags;
    job->work.data = job;
    if (!job->rootfs || !job->hostname) {
        job_free(job);
        return ef_error_set(err, -ENOMEM, "out of memory");
    }
    job->args.rootfs = job->rootfs;
    job->args.hostname = job->hostname;
    int r = uv_queue_work(loop, &job->work, spawn_work, spawn_done);
    if (r < 0) {
        job_free(job);
        return ef_error_set(err, -EIO, "cannot queue the clone: %s", uv_strerror(r));
    }
    return 0;
}
