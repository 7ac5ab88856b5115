/* The child side of container creation: everything between clone() and exec of the runner,
 * run inside the new namespaces. The child builds the root file system from a mount plan
 * (mount_plan.h), pivots into it and execs `runner init` as PID 1.
 *
 * Once in its cgroups it unshares a cgroup namespace; right before the exec it installs the
 * seccomp filter, which the runner and everything it starts inherit.
 *
 * In a user namespace (`userns`), the parent writes the child's uid and gid maps before the
 * go byte. The child starts as host root without a mapping; meanwhile it does what needs no map
 * (session, hostname, loopback, `/` a slave) and opens every bind source while it still is host
 * root (funclet's directories are 0700 root). After the go byte it mounts the root tmpfs (owned
 * by uid 0 inside, which needs the map), enters it, becomes root inside (host id `base`) and
 * builds the rest as that user, so that what it creates on the tmpfs belongs to the container.
 *
 * Protocol on `sync_fd` (a SOCK_SEQPACKET socket, close-on-exec): the child first sends one
 * packet of the single byte EF_SANDBOX_STARTED with its own pidfd (SCM_RIGHTS; the parent, with
 * SO_PASSCRED, learns the child's pid from it and checks with the pidfd that the pid is still
 * the child's: the clone runs on another thread, spawn.h). A child that fails before the go byte
 * sends its report then. The parent answers with two bytes:
 * the first once the uid and gid maps are written (at once without a user namespace), which lets
 * the child build its root, the second once the child is in its cgroups, which the child waits
 * for right before its cgroup namespace, the seccomp filter and the exec. Once its root is built
 * (before pivot_root) it sends the byte EF_SANDBOX_BUILT, upon which the parent mounts the fresh
 * /tmp and /dev/shm, while the child goes on. The cgroup attach, a
 * slow write on cgroup v1, so overlaps the root's construction; what the kernel allocates for
 * that root (mounts, the small files on its tmpfs) is charged to funclet's cgroups. Then either
 * the child sends one struct ef_sandbox_report naming the step that failed and exits, or its
 * exec succeeds and the parent reads end-of-file. */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "funclet/mount_plan.h"

struct ef_seccomp_filter;

/* Where the runner is inside the container, and the fd its listening socket gets. */
#define EF_RUNNER_PATH   "/var/runtime/bin/easyfaas-runner"
#define EF_RUNNER_RPC_FD 3

/* The child's first packet on the sync socket, and the one once its root is built. */
#define EF_SANDBOX_STARTED 'S'
#define EF_SANDBOX_BUILT   'B'
/* The most mount plan entries a child applies (a plan has about 60). */
#define EF_SANDBOX_MAX_ENTRIES 512

struct ef_sandbox_report {
    int32_t err; /* positive errno */
    char msg[500];
};

struct ef_sandbox_args {
    const struct ef_mount_plan *plan;
    const char *rootfs;   /* host-side directory the root tmpfs is mounted on */
    const char *hostname; /* the container id */
    int sync_fd;
    int runner_fd; /* the listening runner socket; becomes fd 3 */
    uid_t sandbox_uid;
    gid_t sandbox_gid;
    bool cgroup_ns; /* unshare a cgroup namespace once in the cgroups */
    bool userns;    /* cloned with CLONE_NEWUSER; the parent writes the maps before the go byte */
    bool own_netns; /* cloned with CLONE_NEWNET: bring loopback up; else the runner's Runtime API
                     * takes a free port of the pod's network */
    bool prestart;  /* the runner starts a Python runtime ahead (--prestart python) */
    uint64_t rlimit_nofile; /* 0: inherit funclet's */
    uint64_t rlimit_nproc;  /* 0: inherit funclet's */
    int sched_policy;   /* SCHED_BATCH or SCHED_OTHER (common/sched_policy.h), inherited by all */
    bool drop_priority; /* funclet runs real-time or at a negative nice: first thing, the child
                         * goes to SCHED_OTHER at nice 0 */
    const struct ef_seccomp_filter *seccomp; /* installed right before exec; NULL: none */
    sigset_t changed_signals;                /* not SIG_DFL in funclet: reset first thing */
};

/* The signals whose disposition is not SIG_DFL in the calling process (for changed_signals):
 * called once the process has installed its handlers. */
void ef_sandbox_changed_signals(sigset_t *ret);

/* The clone() entry point; `arg` is a struct ef_sandbox_args. Never returns on success (the
 * runner is exec'd); returns the exit code of the child otherwise. */
int ef_sandbox_child(void *arg);
