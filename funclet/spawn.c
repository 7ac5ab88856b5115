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
    char *mnt_dir;   /* where the copy of the container's shared mount point goes in S */
    int mnt_tree_fd; /* that copy (open_tree); -1: the child is cloned from funclet's namespace */
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
    if (job->mnt_tree_fd >= 0)
        close(job->mnt_tree_fd);
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

/* Returns this pool thread to funclet's mount namespace. A thread left in the spawn namespace
 * would make the next container's host side (parts.c) where funclet cannot see it: funclet
 * stops rather than go on so. */
static void return_home(void)
{
    if (setns(home_ns_fd, CLONE_NEWNS) < 0) {
        ef_error("a pool thread cannot return to funclet's mount namespace: %s", strerror(errno));
        abort();
    }
}

/* Enters the spawn namespace and attaches there the copy of the container's shared mount
 * point, so that the child's namespace, copied from it, has it as a copy of its own: locked and
 * a slave in a user namespace, as any mount copied into one. False (logged) when that fails:
 * the child is then cloned from funclet's namespace, which has every container's mounts. */
static bool enter_spawn_ns(const struct spawn_job *job)
{
    if (!own_fs_context) {
        if (unshare(CLONE_FS) < 0) {
            ef_warn("a pool thread cannot have a file system context of its own: %s",
                    strerror(errno));
            return false;
        }
        own_fs_context = true;
    }
    if (setns(spawn_ns_fd, CLONE_NEWNS) < 0) {
        ef_warn("cannot enter the spawn mount namespace: %s", strerror(errno));
        return false;
    }
    if (move_mount(job->mnt_tree_fd, "", AT_FDCWD, job->mnt_dir, MOVE_MOUNT_F_EMPTY_PATH) < 0) {
        ef_warn("cannot attach %s in the spawn mount namespace: %s", job->mnt_dir, strerror(errno));
        return_home();
        return false;
    }
    return true;
}

/* After the clone: the copy goes again, and the thread goes home. Made private first: it is a
 * peer of funclet's mount point, and detaching it with what funclet mounted there meanwhile
 * (the container's /tmp) would unmount those in funclet's namespace and the container too. */
static void leave_spawn_ns(const struct spawn_job *job)
{
    if (mount(NULL, job->mnt_dir, NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
        ef_warn("cannot make %s private in the spawn mount namespace: %s", job->mnt_dir,
                strerror(errno));
    } else if (umount2(job->mnt_dir, MNT_DETACH) < 0) {
        ef_warn("cannot detach %s in the spawn mount namespace: %s", job->mnt_dir, strerror(errno));
    }
    return_home();
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
    bool away = job->mnt_tree_fd >= 0 && enter_spawn_ns(job);

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
    /* The child's own copies closed at its exec; with these the caller sees end-of-file. */
    close(job->args.sync_fd);
    close(job->args.runner_fd);
    job->args.sync_fd = job->args.runner_fd = -1;
    if (away)
        leave_spawn_ns(job);
give_back:
    give_back_stack(stack);
out:
    if (job->args.sync_fd >= 0) {
        close(job->args.sync_fd);
        close(job->args.runner_fd);
        job->args.sync_fd = job->args.runner_fd = -1;
    }
    if (job->mnt_tree_fd >= 0)
        close(job->mnt_tree_fd);
    job->mnt_tree_fd = -1;
}

/* On the loop, after the clone (or after a cancellation). */
static void spawn_done(uv_work_t *w, int status)
{
    (void)status;
    job_free(w->data);
}

int ef_sandbox_spawn(uv_loop_t *loop, const struct ef_sandbox_args *args,
                     struct ef_mount_plan *plan, int clone_flags, int mnt_tree_fd,
                     const char *mnt_dir, ef_error *err)
{
    struct spawn_job *job = calloc(1, sizeof(*job));
    if (!job) {
        ef_mount_plan_free(plan);
        close(args->sync_fd);
        close(args->runner_fd);
        if (mnt_tree_fd >= 0)
            close(mnt_tree_fd);
        return ef_error_set(err, -ENOMEM, "out of memory");
    }
    job->args = *args;
    job->plan = *plan;
    memset(plan, 0, sizeof(*plan));
    job->args.plan = &job->plan;
    job->rootfs = strdup(args->rootfs);
    job->hostname = strdup(args->hostname);
    job->mnt_tree_fd = mnt_tree_fd;
    job->mnt_dir = mnt_tree_fd >= 0 ? strdup(mnt_dir) : NULL;
    job->clone_flags = clone_flags;
    job->work.data = job;
    if (!job->rootfs || !job->hostname || (mnt_tree_fd >= 0 && !job->mnt_dir)) {
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

struct spawn_ns_probe {
    const char *probe_mount;
    int home_fd;
    int ret; /* the spawn namespace's fd, or a negative errno */
    const char *step;
};

/* The thread that makes the spawn namespace, a copy of funclet's taken now, and tries in it
 * what every clone will do: attach a detached copy of a mount and return home. */
static void *make_spawn_ns(void *arg)
{
    struct spawn_ns_probe *p = arg;
    p->step = "unshare the mount namespace";
    if (unshare(CLONE_FS | CLONE_NEWNS) < 0) {
        p->ret = -errno;
        return NULL;
    }
    /* What the host unmounts (or mounts) below its shared mounts later reaches it too; nothing
     * goes the other way. */
    p->step = "make it a recursive slave";
    if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0) {
        p->ret = -errno;
        return NULL;
    }
    /* What no container is built from, and each clone would copy and detach again: /sys and
     * what is mounted below it (on cgroup v1 a dozen hierarchies). */
    if (umount2("/sys", MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT) {
        p->step = "detach /sys from it";
        p->ret = -errno;
        return NULL;
    }
    p->step = "open it";
    int fd = open("/proc/thread-self/ns/mnt", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        p->ret = -errno;
        return NULL;
    }
    p->step = "attach a copy of a mount in it";
    int tree = open_tree(AT_FDCWD, p->probe_mount, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    int r = tree < 0 ? -1 : move_mount(tree, "", AT_FDCWD, p->probe_mount, MOVE_MOUNT_F_EMPTY_PATH);
    if (r == 0) {
        p->step = "detach it";
        r = umount2(p->probe_mount, MNT_DETACH);
    }
    if (r == 0) {
        p->step = "return to funclet's namespace";
        r = setns(p->home_fd, CLONE_NEWNS);
    }
    p->ret = r < 0 ? -errno : fd;
    if (tree >= 0)
        close(tree);
    if (r < 0)
        close(fd);
    return NULL;
}

int ef_sandbox_spawn_ns_open(const char *probe_mount, ef_error *err)
{
    int home = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
    if (home < 0)
        return ef_error_set_errno(err, -errno, "open /proc/self/ns/mnt");
    struct spawn_ns_probe p = {.probe_mount = probe_mount, .home_fd = home, .ret = -EIO};
    pthread_t t;
    int r = pthread_create(&t, NULL, make_spawn_ns, &p);
    if (r != 0) {
        close(home);
        return ef_error_set_errno(err, -r, "cannot start a thread");
    }
    pthread_join(t, NULL);
    if (p.ret < 0) {
        close(home);
        return ef_error_set_errno(err, p.ret, "spawn mount namespace: cannot %s", p.step);
    }
    home_ns_fd = home;
    spawn_ns_fd = p.ret;
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
