/* The funclet daemon's shared state: its configuration (from the command line) and the objects
 * its modules operate on. One instance lives in main.c for the whole run; the loop is
 * single-threaded, so nothing here is locked. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "funclet/seccomp.h"

struct ef_cgroup_manager;
struct ef_container;
struct ef_server;
struct ef_funclet;

/* Called when the kernel's OOM killer has killed a process of container `c`. */
typedef void (*ef_funclet_oom_cb)(struct ef_funclet *f, struct ef_container *c);

struct ef_funclet_config {
    char *data_dir;       /* absolute */
    char *run_dir;        /* <data>/run, mode 0700 */
    char *containers_dir; /* <data>/run/containers, one directory per container */
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
};

struct ef_funclet {
    uv_loop_t *loop;
    struct ef_funclet_config cfg;
    struct ef_cgroup_manager *cgroups;
    struct ef_container *containers; /* singly linked, newest first */
    size_t n_containers;
    struct ef_server *server;
    struct ef_seccomp_filter seccomp; /* compiled at start; empty when cfg.seccomp is off */
    ef_funclet_oom_cb on_oom;
    bool shutting_down;
};
