#include "funclet/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "common/log.h"

#define CHILD_STACK_SIZE (256 * 1024)
/* Clones at once: one per thread of libuv's pool (4 unless UV_THREADPOOL_SIZE says otherwise);
 * a further one waits for a stack. */
#define CHILD_STACKS 4

struct spawn_job {
    uv_work_t work;
    struct ef_sandbox_args args; /* plan, rootfs and hostname point into the job */
    struct ef_mount_plan plan;
    char *rootfs;
    char *hostname;
    char *mnt_dir;
    int clone_flags;
};

/* The mount namespace children are cloned from (see spawn.h) and funclet's own, to return to;
 * -1 when children are cloned from funclet's own. */
static int spawn_ns_fd = -1;
static int home_ns_fd = -1;
/* This pool thread has a file system context (root, cwd, umask) of its own, which setns() into
 * another mount namespace needs. */
static __thread bool own_fs_context;

/* The children's stacks, funclet's memory shared with each child: mapped once (with a guard page
 * below, so that an overflow faults instead of overwriting funclet's memory) and kept, since an
 * munmap per create would interrupt every CPU running one of funclet's threads. */
static char *child_stacks[CHILD_STACKS];
static unsigned stacks_in_use; /* bit i: child_stacks[i] */
static pthread_mutex_t stacks_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stack_freed = PTHREAD_COND_INITIALIZER;

/* Returns the index of a stack for this thread's clone, or -1 (errno set) when none can be
 * mapped. */
static int take_stack(void)
{
    pthread_mutex_lock(&stacks_lock);
    while (stacks_in_use == (1u << CHILD_STACKS) - 1)
        pthread_cond_wait(&stack_freed, &stacks_lock);
    int i = 0;
    while (stacks_in_use & (1u << i))
        i++;
    if (!child_stacks[i]) {
        long page = sysconf(_SC_PAGESIZE);
        char *p = mmap(NULL, CHILD_STACK_SIZE + (size_t)page, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (p == MAP_FAILED || mprotect(p, (size_t)page, PROT_NONE) < 0) {
            int e = errno;
            if (p != MAP_FAILED)
                munmap(p, CHILD_STACK_SIZE + (size_t)page);
            pthread_mutex_unlock(&stacks_lock);
            errno = e;
            return -1;
        }
        child_stacks[i] = p + page;
    }
    stacks_in_use |= 1u << i;
    pthread_mutex_unlock(&stacks_lock);
    return i;
}

static void give_back_stack(int i)
{
    pthread_mutex_lock(&stacks_lock);
    stacks_in_use &= ~(1u << i);
    pthread_cond_signal(&stack_freed);
    pthread_mutex_unlock(&stacks_lock);
}

/* Whether the caller still waits on its end of the sync socket. */
static bool caller_waits(int sync_fd)
{
    struct pollfd p = {.fd = sync_fd, .events = 0};
    return !(poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR)));
}

static void job_free(struct spawn_job *job)
{
    if (job->args.sync_fd >= 0)
        close(job->args.sync_fd);
    if (job->args.runner_fd >= 0)
        close(job->args.runner_fd);
    if (job->args.mnt_tree_fd >= 0)
        close(job->args.mnt_tree_fd);
    ef_mount_plan_free(&job->plan);
    free(job->rootfs);
    free(job->hostname);
    free(job->mnt_dir);
    free(job);
}

static void report_clone_failure(int fd, int err, const char *step)
{
    struct ef_sandbox_report r;
    memset(&r, 0, sizeof(r));
    r.err = err;
    snprintf(r.msg, sizeof(r.msg), "%s", step);
    ssize_t n = write(fd, &r, sizeof(r));
    (void)n;
}

/* Makes this pool thread's mount namespace `fd`'s. */
static int enter_mount_ns(int fd)
{
    if (!own_fs_context) {
        if (unshare(CLONE_FS) < 0)
            return -1;
        own_fs_context = true;
    }
    return setns(fd, CLONE_NEWNS);
}

/* On a thread of the pool: returns once the child has exec'd the runner or ended. */
static void spawn_work(uv_work_t *w)
{
    struct spawn_job *job = w->data;
    int stack = take_stack();
    if (stack < 0) {
        report_clone_failure(job->args.sync_fd, errno, "map a stack for the sandbox");
        goto out;
    }
    /* The caller gave up (a start timeout, a destroy) while this waited: no child. */
    if (!caller_waits(job->args.sync_fd))
        goto give_back;

    /* The child's mount namespace is a copy of this thread's. */
    bool away = job->args.mnt_tree_fd >= 0;
    if (away && enter_mount_ns(spawn_ns_fd) < 0) {
        report_clone_failure(job->args.sync_fd, errno, "enter the spawn mount namespace");
        goto give_back;
    }

    /* No signal handler may run on this thread while a child shares its TLS, and none may cut
     * the vfork wait short; the child starts with this mask and drops funclet's handlers before
     * it unblocks. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int dumpable = prctl(PR_GET_DUMPABLE);
    pid_t pid = clone(ef_sandbox_child, child_stacks[stack] + CHILD_STACK_SIZE,
                      job->clone_flags | CLONE_VM | CLONE_VFORK | SIGCHLD, &job->args);
    int e = errno;
    /* A child that changed its ids (root of its user namespace) made the memory it shares,
     * funclet's, non-dumpable: no core dump of funclet would be written. */
    if (dumpable == 1 && prctl(PR_GET_DUMPABLE) != 1)
        prctl(PR_SET_DUMPABLE, 1);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0)
        report_clone_failure(job->args.sync_fd, e, "clone");
    /* Back home: the host side of containers (parts.c) is made on these threads too. */
    if (away && setns(home_ns_fd, CLONE_NEWNS) < 0)
        ef_error("a pool thread cannot return to funclet's mount namespace: %s", strerror(errno));
give_back:
    give_back_stack(stack);
out:
    /* The child's own copies closed at its exec; with these the caller sees end-of-file. */
    close(job->args.sync_fd);
    close(job->args.runner_fd);
    job->args.sync_fd = job->args.runner_fd = -1;
    if (job->args.mnt_tree_fd >= 0)
        close(job->args.mnt_tree_fd);
    job->args.mnt_tree_fd = -1;
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
        if (args->mnt_tree_fd >= 0)
            close(args->mnt_tree_fd);
        return ef_error_set(err, -ENOMEM, "out of memory");
    }
    job->args = *args;
    job->plan = *plan;
    memset(plan, 0, sizeof(*plan));
    job->args.plan = &job->plan;
    job->rootfs = strdup(args->rootfs);
    job->hostname = strdup(args->hostname);
    job->mnt_dir = args->mnt_tree_fd >= 0 ? strdup(args->mnt_dir) : NULL;
    job->clone_flags = clone_flags;
    job->work.data = job;
    if (!job->rootfs || !job->hostname || (args->mnt_tree_fd >= 0 && !job->mnt_dir)) {
        job_free(job);
        return ef_error_set(err, -ENOMEM, "out of memory");
    }
    job->args.rootfs = job->rootfs;
    job->args.hostname = job->hostname;
    job->args.mnt_dir = job->mnt_dir;
    int r = uv_queue_work(loop, &job->work, spawn_work, spawn_done);
    if (r < 0) {
        job_free(job);
        return ef_error_set(err, -EIO, "cannot queue the clone: %s", uv_strerror(r));
    }
    return 0;
}

/* The thread that makes the spawn namespace: a copy of funclet's, taken now. */
static void *make_spawn_ns(void *arg)
{
    int *ret = arg;
    *ret = -errno;
    if (unshare(CLONE_FS | CLONE_NEWNS) < 0) {
        *ret = -errno;
        return NULL;
    }
    int fd = open("/proc/thread-self/ns/mnt", O_RDONLY | O_CLOEXEC);
    *ret = fd < 0 ? -errno : fd;
    return NULL;
}

int ef_sandbox_spawn_ns_open(const char *probe_mount, ef_error *err)
{
    /* The copy a container's child attaches: only where detached copies of mounts exist
     * (open_tree, Linux 5.2). */
    int probe = open_tree(AT_FDCWD, probe_mount, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (probe < 0)
        return ef_error_set_errno(err, -errno, "open_tree %s", probe_mount);
    close(probe);
    int home = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
    if (home < 0)
        return ef_error_set_errno(err, -errno, "open /proc/self/ns/mnt");
    int spawn = -EIO;
    pthread_t t;
    int r = pthread_create(&t, NULL, make_spawn_ns, &spawn);
    if (r != 0) {
        close(home);
        return ef_error_set_errno(err, -r, "cannot start a thread");
    }
    pthread_join(t, NULL);
    if (spawn < 0) {
        close(home);
        return ef_error_set_errno(err, spawn, "cannot make the spawn mount namespace");
    }
    home_ns_fd = home;
    spawn_ns_fd = spawn;
    return 0;
}

bool ef_sandbox_spawn_ns_ready(void)
{
    return spawn_ns_fd >= 0;
}

void ef_sandbox_spawn_ns_close(void)
{
    if (spawn_ns_fd >= 0)
        close(spawn_ns_fd);
    if (home_ns_fd >= 0)
        close(home_ns_fd);
    spawn_ns_fd = home_ns_fd = -1;
}
