/* The funclet daemon's shared state: its configuration (from the command line) and the objects
 * its modules operate on. One instance lives in main.c for the whole run; only the loop's
 * thread touches it (the pool threads of spawn.c only clone), so nothing here is locked. */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "funclet/mount_plan.h"
#include "funclet/network.h"
#include "funclet/seccomp.h"
#include "funclet/userns.h"

struct ef_cgroup_manager;
struct ef_container;
struct ef_pool;
struct ef_parts_ahead;
struct ef_server;
struct ef_funclet;

/* Called when the kernel's OOM killer has killed a process of container `c`. */
typedef void (*ef_funclet_oom_cb)(struct ef_funclet *f, struct ef_container *c);
/* Called for a runner that ended on its own (not through destroy) once it has been reaped. */
typedef void (*ef_funclet_exit_cb)(struct ef_funclet *f, struct ef_container *c);

struct ef_funclet_config {
    char *data_dir;       /* absolute */
    char *run_dir;        /* <data>/run, mode 0700 */
    char *containers_dir; /* <data>/run/containers, one directory per container */
    char *dev_dir;        /* <containers_dir>/.dev, the /dev every container binds */
    char *socket_path;    /* funclet's own RPC socket */
    char *code_root;      /* canonical (realpath); every code_dir must lie below it */
    char *runtime_dir;    /* canonical; mounted read-only at /var/runtime */
    uid_t sandbox_uid;
    gid_t sandbox_gid;
    size_t max_containers;
    char *cgroup_parent;    /* the cgroup below funclet's own one that holds every container */
    uint64_t tmp_size;      /* bytes of the /tmp (and /dev/shm) tmpfs of each container */
    char *cgroup_root;      /* where the cgroup file system is mounted (/sys/fs/cgroup) */
    bool seccomp;           /* install the seccomp filter (--seccomp=false turns it off) */
    bool cgroup_ns;         /* give each container its own cgroup namespace */
    uint64_t rlimit_nofile; /* RLIMIT_NOFILE of the container's processes */
    uint64_t rlimit_nproc;  /* RLIMIT_NPROC of the sandbox user; 0 leaves it unset */
    enum ef_userns_mode userns_mode; /* --userns as given */
    bool userns;                     /* containers get a user namespace (after the probe) */
    uint32_t userns_base;            /* host id of uid 0 in the first container's range */
    bool userns_base_auto;           /* --userns-base auto: the lowest free range, once claimed */
    size_t pool_size;                /* cold containers kept ready */
    bool prestart_python;            /* the runners of pool spares start a Python runtime ahead */
    int container_sched_policy;      /* SCHED_BATCH or SCHED_OTHER, for every container process */
    uint64_t cold_memory_mb;         /* memory limit of a cold container (MiB) */
    uint64_t cold_pids_max;          /* pids limit of a cold container */
    uint64_t reserved_memory;        /* bytes of the node's memory never given to containers */
    char *bridge_name;               /* the bridge of network "bridge" */
    char *bridge_cidr;               /* its network; the bridge has the first address */
};

struct ef_funclet {
    uv_loop_t *loop;
    struct ef_funclet_config cfg;
    struct ef_cgroup_manager *cgroups;
    struct ef_container *containers; /* singly linked, newest first */
    size_t n_containers;
    struct ef_server *server;
    struct ef_seccomp_filter seccomp; /* compiled at start; empty when cfg.seccomp is off */
    struct ef_host_facts host_facts;  /* the host's root layout, probed once at start */
    uint64_t memory_total_mb;         /* MemTotal, or funclet's own cgroup limit when lower */
    uint64_t capacity_mb;             /* memory_total_mb minus the reserve: what containers get */
    struct ef_network network;
    struct ef_pool *pool;
    struct ef_parts_ahead *parts_ahead;  /* the next container's host side (parts.h) */
    struct ef_userns_slots userns_slots; /* the containers' host id ranges, when cfg.userns */
    bool containers_root_mounted;        /* run/containers is funclet's private bind mount */
    sigset_t changed_signals;            /* not SIG_DFL in funclet: the sandbox resets them */
    bool raised_priority; /* funclet runs real-time or at a negative nice, which no container
                           * may inherit (sandbox.h, drop_priority) */
    ef_funclet_oom_cb on_oom;
    ef_funclet_exit_cb on_exit;
    bool shutting_down;
};
