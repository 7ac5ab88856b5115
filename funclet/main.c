/* easyfaas-funclet: the privileged container manager. Flags, start-up checks, the event loop
 * and signals; the work itself is in container.c (lifecycle) and rpc_handlers.c (methods). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/options.h"
#include "common/sched_policy.h"
#include "funclet/cgroup.h"
#include "funclet/container.h"
#include "funclet/capacity.h"
#include "funclet/funclet.h"
#include "funclet/hostmnt.h"
#include "funclet/lock.h"
#include "funclet/parts.h"
#include "funclet/pool.h"
#include "funclet/rpc_handlers.h"
#include "funclet/sandbox.h"
#include "funclet/server.h"
#include "funclet/spawn.h"

static const char usage_line[] = "easyfaas-funclet [OPTIONS]";
static const char description[] =
    "Creates, warms up, resets and destroys the user containers of an EasyFaaS pod "
    "(namespaces, cgroups, root file system, network) on request of the controller, over "
    "JSON-RPC on a Unix socket, and keeps a pool of cold ones ready. Runs as root.";

struct flags {
    char *data_dir;
    char *socket;
    char *code_root;
    char *runtime_dir;
    int64_t sandbox_uid;
    int64_t sandbox_gid;
    int64_t max_containers;
    char *cgroup_parent;
    uint64_t tmp_size;
    char *cgroup_root;
    bool seccomp;
    bool cgroup_ns;
    int64_t rlimit_nofile;
    char *rlimit_nproc;
    char *userns;
    char *userns_base;
    int64_t pool_size;
    char *prestart;
    char *container_sched_policy;
    uint64_t cold_memory;
    int64_t cold_pids;
    uint64_t reserved_memory;
    char *bridge_name;
    char *bridge_cidr;
    char *log_level;
};

static struct ef_funclet funclet;
static uv_signal_t sig_chld, sig_term, sig_int;
/* The locks of the data dir and of the host id range (lock.h): held until the process ends. */
static int data_dir_lock = -1;
static int userns_lock = -1;

/* Makes `path` absolute and canonical; it must exist. */
static int canonical(const char *path, const char *what, char **ret, ef_error *err)
{
    char *real = realpath(path, NULL);
    if (!real)
        return ef_error_set_errno(err, -errno, "%s %s", what, path);
    *ret = real;
    return 0;
}

/* Creates `path` with `mode` if missing and enforces the mode: these directories hold sockets
 * that only root may reach. */
static int private_dir(const char *path, ef_error *err)
{
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return ef_error_set_errno(err, -errno, "cannot create %s", path);
    struct stat st;
    if (lstat(path, &st) < 0)
        return ef_error_set_errno(err, -errno, "cannot stat %s", path);
    if (!S_ISDIR(st.st_mode))
        return ef_error_set(err, -ENOTDIR, "%s is not a directory", path);
    if ((st.st_mode & 07777) != 0700 && chmod(path, 0700) < 0)
        return ef_error_set_errno(err, -errno, "cannot chmod %s", path);
    return 0;
}

/* cfg.rlimit_nproc until setup_userns() resolves "auto". */
#define NPROC_AUTO UINT64_MAX

/* A flag that takes "auto" or a number from `min` to `max` (`what` names the number in the
 * error: "a number", "a host id"). *ret_auto tells which; *ret is set for a number only. */
static int parse_auto_or_number(const char *text, const char *flag, const char *what, long long min,
                                long long max, bool *ret_auto, long long *ret, ef_error *err)
{
    if (strcmp(text, "auto") == 0) {
        *ret_auto = true;
        return 0;
    }
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end || v < min || v > max)
        return ef_error_set(err, -EINVAL, "%s must be auto or %s from %lld to %lld, not '%.40s'",
                            flag, what, min, max, text);
    *ret_auto = false;
    *ret = v;
    return 0;
}

static int setup_config(const struct flags *fl, struct ef_funclet_config *cfg, ef_error *err)
{
    /* What can be checked on the text alone is, before anything is created. */
    const size_t sun_path_max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
    if (fl->socket && fl->socket[0] != '/')
        return ef_error_set(err, -EINVAL, "--socket must be an absolute path");
    if (fl->socket && strlen(fl->socket) > sun_path_max)
        return ef_error_set(err, -ENAMETOOLONG,
                            "--socket %.60s... is %zu bytes long; a Unix socket path has at most "
                            "%zu",
                            fl->socket, strlen(fl->socket), sun_path_max);
    int r = ef_private_data_dir(fl->data_dir, "the functions' code and the containers' state", err);
    if (r < 0)
        return r;
    r = canonical(fl->data_dir, "data dir", &cfg->data_dir, err);
    if (r < 0)
        return r;
    cfg->run_dir = ef_path_join(cfg->data_dir, "run");
    cfg->containers_dir = cfg->run_dir ? ef_path_join(cfg->run_dir, "containers") : NULL;
    cfg->dev_dir = cfg->containers_dir ? ef_path_join(cfg->containers_dir, EF_HOSTMNT_DEV) : NULL;
    if (!cfg->containers_dir || !cfg->dev_dir)
        return ef_error_set(err, -ENOMEM, "out of memory");
    if ((r = private_dir(cfg->run_dir, err)) < 0)
        return r;
    /* Before anything of the data dir is touched: start-up recycling would destroy the
     * containers of a funclet that runs on it. */
    if ((r = ef_lock_data_dir(cfg->run_dir, cfg->data_dir, &data_dir_lock, err)) < 0)
        return r;
    if ((r = private_dir(cfg->containers_dir, err)) < 0)
        return r;

    if (fl->socket) {
        cfg->socket_path = strdup(fl->socket);
    } else {
        cfg->socket_path = ef_path_join(cfg->run_dir, "funclet.sock");
    }
    if (!cfg->socket_path)
        return ef_error_set(err, -ENOMEM, "out of memory");
    /* The directory of a socket given by --socket is created private when missing; an existing
     * one is the operator's choice. */
    cleanup_free char *sock_dir = strdup(cfg->socket_path);
    if (!sock_dir)
        return ef_error_set(err, -ENOMEM, "out of memory");
    *strrchr(sock_dir, '/') = '\0';
    if (sock_dir[0] && (r = ef_mkdir_p(sock_dir, 0700, err)) < 0)
        return r;

    cleanup_free char *code_default = ef_path_join(cfg->data_dir, "code");
    cleanup_free char *runtime_default = ef_path_join(cfg->data_dir, "runtime");
    if (!code_default || !runtime_default)
        return ef_error_set(err, -ENOMEM, "out of memory");
    const char *code_root = fl->code_root ? fl->code_root : code_default;
    if (!fl->code_root && (r = ef_mkdir_p(code_root, 0755, err)) < 0)
        return r;
    if ((r = canonical(code_root, "code root", &cfg->code_root, err)) < 0)
        return r;
    const char *runtime = fl->runtime_dir ? fl->runtime_dir : runtime_default;
    if ((r = canonical(runtime, "runtime dir", &cfg->runtime_dir, err)) < 0)
        return r;
    cleanup_free char *runner = ef_path_join(cfg->runtime_dir, "bin/easyfaas-runner");
    if (!runner)
        return ef_error_set(err, -ENOMEM, "out of memory");
    if (access(runner, X_OK) < 0)
        return ef_error_set_errno(err, -errno,
                                  "the runtime dir has no runner: %s (install it with "
                                  "'easyfaas-runner prepare --dest %s')",
                                  runner, cfg->runtime_dir);

    /* The longest socket path funclet will bind must fit in sockaddr_un. */
    size_t longest = strlen(cfg->containers_dir) + 1 + EF_CONTAINER_ID_LEN + strlen("/runner.sock");
    if (longest >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return ef_error_set(err, -ENAMETOOLONG,
                            "data dir %s is too long: runner socket paths would exceed %zu bytes",
                            cfg->data_dir, sizeof(((struct sockaddr_un *)0)->sun_path) - 1);

    cfg->sandbox_uid = (uid_t)fl->sandbox_uid;
    cfg->sandbox_gid = (gid_t)fl->sandbox_gid;
    cfg->max_containers = (size_t)fl->max_containers;
    cfg->cgroup_parent = strdup(fl->cgroup_parent);
    if (!cfg->cgroup_parent)
        return ef_error_set(err, -ENOMEM, "out of memory");
    if (fl->tmp_size < (1u << 20) || fl->tmp_size > (64ull << 30))
        return ef_error_set(err, -EINVAL, "--tmp-size must be between 1M and 64G");
    cfg->tmp_size = fl->tmp_size;
    cfg->cgroup_root = strdup(fl->cgroup_root);
    if (!cfg->cgroup_root)
        return ef_error_set(err, -ENOMEM, "out of memory");
    if (cfg->cgroup_root[0] != '/')
        return ef_error_set(err, -EINVAL, "--cgroup-root must be an absolute path");
    cfg->seccomp = fl->seccomp;
    cfg->cgroup_ns = fl->cgroup_ns;
    cfg->rlimit_nofile = (uint64_t)fl->rlimit_nofile;
    if (ef_userns_parse_mode(fl->userns, &cfg->userns_mode) < 0)
        return ef_error_set(err, -EINVAL, "--userns must be auto, on or off, not '%.40s'",
                            fl->userns);
    /* auto: the lowest free range from the default on, found when the range is claimed. */
    long long base = EF_USERNS_BASE_DEFAULT;
    r = parse_auto_or_number(fl->userns_base, "--userns-base", "a host id", 1, 4294967294LL,
                             &cfg->userns_base_auto, &base, err);
    if (r < 0)
        return r;
    cfg->userns_base = (uint32_t)base;
    /* auto: resolved once the user namespace is decided (setup_userns). */
    bool nproc_auto = false;
    long long nproc = 0;
    r = parse_auto_or_number(fl->rlimit_nproc, "--rlimit-nproc", "a number", 0, 4194304,
                             &nproc_auto, &nproc, err);
    if (r < 0)
        return r;
    cfg->rlimit_nproc = nproc_auto ? NPROC_AUTO : (uint64_t)nproc;
    cfg->pool_size = (size_t)fl->pool_size;
    if (strcmp(fl->prestart, "python") == 0)
        cfg->prestart_python = true;
    else if (strcmp(fl->prestart, "none") != 0)
        return ef_error_set(err, -EINVAL, "--prestart must be python or none, not '%.32s'",
                            fl->prestart);
    r = ef_sched_policy_parse(fl->container_sched_policy, "--container-sched-policy",
                              &cfg->container_sched_policy, err);
    if (r < 0)
        return r;
    if (fl->cold_memory < (8u << 20) || fl->cold_memory > ((uint64_t)EF_MEMORY_MB_MIN << 20))
        return ef_error_set(err, -EINVAL, "--cold-memory must be between 8M and %dM",
                            EF_MEMORY_MB_MIN);
    cfg->cold_memory_mb = fl->cold_memory >> 20;
    cfg->cold_pids_max = (uint64_t)fl->cold_pids;
    cfg->reserved_memory = fl->reserved_memory;
    cfg->bridge_name = strdup(fl->bridge_name);
    cfg->bridge_cidr = strdup(fl->bridge_cidr);
    if (!cfg->bridge_name || !cfg->bridge_cidr)
        return ef_error_set(err, -ENOMEM, "out of memory");
    return 0;
}

/* Claims the containers' host id range on this host (lock.h), so that two funclets never map
 * the same host ids: their containers would share RLIMIT_NPROC and the ownership of each
 * other's files. With --userns-base auto the range is the lowest free one, and cfg->userns_base
 * is set to it. Another funclet's overlapping range stops funclet (with auto: no free range
 * left); a lock directory that cannot be made (a read-only /run in a container) is a warning,
 * since the check is a safeguard and a container's /run is private to it anyway. */
static int claim_userns_range(struct ef_funclet_config *cfg, ef_error *err)
{
    ef_error e;
    int r = cfg->userns_base_auto
                ? ef_lock_userns_auto(EF_USERNS_BASE_DEFAULT, cfg->max_containers, EF_USERNS_RANGE,
                                      &cfg->userns_base, &userns_lock, &e)
                : ef_lock_userns(cfg->userns_base, cfg->max_containers, EF_USERNS_RANGE,
                                 &userns_lock, &e);
    if (r == -EBUSY)
        return ef_error_set(err, r, "%s", e.msg);
    if (r < 0)
        ef_warn("the containers' host ids are not claimed, so another funclet on this host "
                "could use them too: %s",
                e.msg);
    return 0;
}

/* Decides whether containers get a user namespace (--userns), probing the kernel unless it is
 * off, and sets up the id ranges. With "auto", a failed probe is one warning and containers go
 * without; with "on" it stops funclet. */
static int probe_userns(struct ef_funclet *f, ef_error *err)
{
    struct ef_funclet_config *cfg = &f->cfg;
    cfg->userns = false;
    if (cfg->userns_mode == EF_USERNS_OFF)
        return 0;
    ef_error e;
    int r = 0;
    if (cfg->sandbox_uid >= EF_USERNS_RANGE || cfg->sandbox_gid >= EF_USERNS_RANGE)
        r = ef_error_set(&e, -ERANGE,
                         "--sandbox-uid and --sandbox-gid must be below %u to lie in a "
                         "container's range of ids",
                         EF_USERNS_RANGE);
    /* The configuration errors above and a range another funclet holds stop funclet whatever
     * the mode; only what the kernel refuses lets "auto" go on without. The claim comes first:
     * with --userns-base auto it decides the base. */
    if (r < 0)
        return ef_error_set(err, r, "%s", e.msg);
    r = claim_userns_range(cfg, err);
    if (r < 0)
        return r;
    r = ef_userns_slots_init(&f->userns_slots, cfg->userns_base, cfg->max_containers, &e);
    if (r < 0) {
        close(userns_lock);
        userns_lock = -1;
        return ef_error_set(err, r, "%s", e.msg);
    }
    r = ef_userns_probe(cfg->userns_base, &e);
    if (r < 0) {
        ef_userns_slots_free(&f->userns_slots);
        close(userns_lock);
        userns_lock = -1;
        if (cfg->userns_mode == EF_USERNS_ON)
            return ef_error_set(err, r,
                                "--userns on: containers cannot have a user namespace "
                                "here: %s",
                                e.msg);
        ef_warn("user namespaces do not work here (%s): containers run without one "
                "(--userns off silences this)",
                e.msg);
        return 0;
    }
    cfg->userns = true;
    return 0;
}

/* The user namespace decided, and what follows from it: with one, every container's sandbox
 * user is a host uid of its own, so RLIMIT_NPROC limits that container alone and is on by
 * default; without, the sandbox uid is shared by all containers and a limit would be shared
 * too, so it stays unset unless asked for. */
static int setup_userns(struct ef_funclet *f, ef_error *err)
{
    int r = probe_userns(f, err);
    if (r < 0)
        return r;
    if (f->cfg.rlimit_nproc != NPROC_AUTO)
        return 0;
    uint64_t nproc = 0;
    if (f->cfg.userns) {
        /* Never above funclet's own hard limit (4096 in some container engines' defaults): a
         * child in a user namespace could not raise it, and its create would fail. */
        struct rlimit rl;
        nproc = EF_USERNS_NPROC_DEFAULT;
        if (getrlimit(RLIMIT_NPROC, &rl) == 0 && rl.rlim_max != RLIM_INFINITY &&
            rl.rlim_max < nproc)
            nproc = rl.rlim_max;
    }
    f->cfg.rlimit_nproc = nproc;
    return 0;
}

/* Makes sure --cgroup-parent can hold the containers' cgroups by creating and removing one
 * below it, as every container create will: a name that is taken by a file (cgroup.procs) or
 * that the kernel refuses would otherwise fail every create, and the pool would retry forever. */
static int check_cgroup_parent(struct ef_funclet *f, ef_error *err)
{
    /* Named after the process: funclets that share the parent may start at the same time. */
    char probe_id[32];
    snprintf(probe_id, sizeof(probe_id), "funclet-check-%d", (int)getpid());
    struct ef_cgroup_limits limits = {
        .memory_bytes = f->cfg.cold_memory_mb << 20,
        .pids_max = f->cfg.cold_pids_max,
    };
    struct ef_cgroup *cg = NULL;
    ef_error e;
    int r = ef_cgroup_create(f->cgroups, probe_id, &limits, &cg, &e);
    if (r == 0) {
        r = ef_cgroup_destroy(cg, &e);
        ef_cgroup_free(cg);
    }
    if (r < 0)
        return ef_error_set(err, r,
                            "--cgroup-parent '%s' cannot hold the containers' cgroups (%s): name "
                            "a cgroup directory below funclet's own cgroup, or a new name",
                            f->cfg.cgroup_parent, e.msg);
    return 0;
}

/* The node's memory for containers: physical memory, or funclet's own cgroup limit when that
 * is lower (funclet running in a container), minus the reserve. */
static int setup_capacity(struct ef_funclet *f, ef_error *err)
{
    struct sysinfo si;
    uint64_t total = 0, limit = 0;
    if (sysinfo(&si) == 0)
        total = (uint64_t)si.totalram * si.mem_unit;
    if (ef_cgroup_memory_limit(f->cgroups, &limit) < 0)
        limit = 0;
    f->memory_total_mb = (limit && limit < total ? limit : total) >> 20;
    f->capacity_mb = ef_capacity_mb(total, limit, f->cfg.reserved_memory);
    if (f->capacity_mb < f->cfg.cold_memory_mb)
        return ef_error_set(
            err, -EINVAL,
            "--reserved-memory %llu MB leaves %llu MB of the node's %llu MB for "
            "containers, less than one cold container (--cold-memory %llu MB)",
            (unsigned long long)(f->cfg.reserved_memory >> 20), (unsigned long long)f->capacity_mb,
            (unsigned long long)f->memory_total_mb, (unsigned long long)f->cfg.cold_memory_mb);
    return 0;
}

static void free_config(struct ef_funclet_config *cfg)
{
    free(cfg->data_dir);
    free(cfg->run_dir);
    free(cfg->containers_dir);
    free(cfg->dev_dir);
    free(cfg->socket_path);
    free(cfg->code_root);
    free(cfg->runtime_dir);
    free(cfg->cgroup_parent);
    free(cfg->cgroup_root);
    free(cfg->bridge_name);
    free(cfg->bridge_cidr);
}

static void on_exited(struct ef_funclet *f, struct ef_container *c)
{
    if (!c->pooled) {
        ef_funclet_notify_exited(f, c);
        return;
    }
    /* A spare nobody knows of: replace it quietly. */
    char id[sizeof(c->id)];
    memcpy(id, c->id, sizeof(id));
    ef_warn("container %s: the runner of a pool spare ended", id);
    ef_error e;
    if (ef_container_destroy(f, c, &e) < 0)
        ef_error("%s", e.msg);
    else
        ef_info("container %s destroyed", id);
}

static void on_oom(struct ef_funclet *f, struct ef_container *c)
{
    ef_funclet_notify_oom(f, c);
}

static void on_sigchld(uv_signal_t *handle, int signum)
{
    (void)handle;
    (void)signum;
    ef_container_reap(&funclet);
}

static void shutdown_funclet(void)
{
    struct ef_funclet *f = &funclet;
    if (f->shutting_down)
        return;
    f->shutting_down = true;
    ef_container_destroy_all(f);
    ef_pool_close(f);
    /* One being made is removed once made, before the loop ends (then the cgroups and
     * run/containers are released in main). */
    ef_parts_discard(f);
    /* Only a bridge this funclet made goes (a start-up that failed early made none). */
    if (f->network.bridge_index)
        ef_network_cleanup(&f->network);
    if (f->server) {
        ef_server_close(f->server);
        f->server = NULL;
    }
    uv_close((uv_handle_t *)&sig_chld, NULL);
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
}

/* After the loop has ended, when nothing runs on a pool thread any more: the containers'
 * cgroups parent and run/containers are let go. */
static void release_after_loop(void)
{
    struct ef_funclet *f = &funclet;
    ef_sandbox_spawn_ns_close();
    if (f->containers_root_mounted)
        ef_hostmnt_release_root(f->cfg.containers_dir);
    f->containers_root_mounted = false;
    ef_cgroup_manager_close(f->cgroups);
    f->cgroups = NULL;
}

static void on_sigterm(uv_signal_t *handle, int signum)
{
    (void)handle;
    ef_info("received %s: destroying %zu containers and stopping", sigabbrev_np(signum),
            funclet.n_containers);
    shutdown_funclet();
}

/* Makes sure fds 0-2 are open, so that no socket funclet opens later becomes "stderr". */
static void ensure_stdio(void)
{
    for (int fd = 0; fd < 3; fd++) {
        if (fcntl(fd, F_GETFD) < 0) {
            int n = open("/dev/null", O_RDWR);
            if (n >= 0 && n != fd) {
                dup2(n, fd);
                close(n);
            }
        }
    }
}

int main(int argc, char **argv)
{
    struct flags fl = {
        .data_dir = "/var/lib/easyfaas",
        .sandbox_uid = 1001,
        .sandbox_gid = 1001,
        .max_containers = 64,
        .cgroup_parent = "easyfaas",
        .tmp_size = 512ull << 20,
        .cgroup_root = "/sys/fs/cgroup",
        .seccomp = true,
        .cgroup_ns = true,
        .rlimit_nofile = 1024,
        .rlimit_nproc = "auto",
        .userns = "auto",
        .userns_base = "auto",
        .pool_size = 4,
        .prestart = "python",
        .container_sched_policy = "batch",
        .cold_memory = 32ull << 20,
        .cold_pids = 64,
        .reserved_memory = 256ull << 20,
        .bridge_name = "easyfaas0",
        .bridge_cidr = "172.31.0.0/24",
        .log_level = "info",
    };
    const struct ef_option opts[] = {
        {"data-dir", EF_OPT_STRING, &fl.data_dir, "DIR",
         "Data directory (run/, code/ and runtime/ below it)", 0, 0},
        {"socket", EF_OPT_STRING, &fl.socket, "PATH",
         "RPC socket, created mode 0600 (default: <data-dir>/run/funclet.sock)", 0, 0},
        {"code-root", EF_OPT_STRING, &fl.code_root, "DIR",
         "Directory every code_dir must lie below (default: <data-dir>/code)", 0, 0},
        {"runtime-dir", EF_OPT_STRING, &fl.runtime_dir, "DIR",
         "Runtimes, mounted read-only at /var/runtime; must hold bin/easyfaas-runner (default: "
         "<data-dir>/runtime)",
         0, 0},
        {"sandbox-uid", EF_OPT_INT, &fl.sandbox_uid, "N",
         "Unprivileged uid the user's code runs as; below 65536 when containers have a user "
         "namespace (--userns), as it is an id inside their range",
         1, 4294967294LL},
        {"sandbox-gid", EF_OPT_INT, &fl.sandbox_gid, "N",
         "Unprivileged gid the user's code runs as; below 65536 with a user namespace", 1,
         4294967294LL},
        {"max-containers", EF_OPT_INT, &fl.max_containers, "N",
         "Most containers that may exist at once", 1, 4096},
        {"cgroup-parent", EF_OPT_STRING, &fl.cgroup_parent, "NAME",
         "Cgroup below funclet's own one that holds the containers' cgroups (1-64 letters, "
         "digits, '_', '.', '-'; created when missing, checked at start)",
         0, 0},
        {"tmp-size", EF_OPT_SIZE, &fl.tmp_size, "SIZE",
         "Size of each container's /tmp (and /dev/shm) tmpfs, 1M to 64G", 0, 0},
        {"cgroup-root", EF_OPT_STRING, &fl.cgroup_root, "DIR",
         "Where the cgroup file system is mounted (cgroup v2, or the v1 hierarchies below it)", 0,
         0},
        {"seccomp", EF_OPT_BOOL, &fl.seccomp, NULL,
         "Run every container under the seccomp filter (--seccomp=false turns it off)", 0, 0},
        {"cgroup-ns", EF_OPT_BOOL, &fl.cgroup_ns, NULL,
         "Give every container its own cgroup namespace (--cgroup-ns=false turns it off)", 0, 0},
        {"rlimit-nofile", EF_OPT_INT, &fl.rlimit_nofile, "N",
         "Most open files per process in a container (RLIMIT_NOFILE, soft and hard)", 16, 1048576},
        {"rlimit-nproc", EF_OPT_STRING, &fl.rlimit_nproc, "N|auto",
         "RLIMIT_NPROC of the container's processes (0: unset). It counts the processes of one "
         "host uid: with a user namespace that uid is the container's own, so auto means 4096; "
         "without, every container shares the sandbox uid and auto means 0, leaving the "
         "per-container limit to pids_max",
         0, 0},
        {"userns", EF_OPT_STRING, &fl.userns, "auto|on|off",
         "Give every container a user namespace with its own range of 65536 host uids and gids "
         "(the runner is root only inside it). auto: when a probe at start shows that the kernel "
         "allows it, else without one; on: refuse to start without; off: never",
         0, 0},
        {"userns-base", EF_OPT_STRING, &fl.userns_base, "N|auto",
         "First host uid/gid of the containers' ranges: container slot K maps uid 0 to N + "
         "K*65536, so funclet uses N to N + max-containers*65536 - 1, claimed host-wide in "
         "/run/easyfaas/userns.lock, and refuses to start when another funclet holds part of it. "
         "auto: the lowest range from 1000000 on that no other funclet on this host holds (mount "
         "the host's /run/easyfaas into a funclet that runs in a container, or it sees only its "
         "own claims)",
         0, 0},
        {"pool-size", EF_OPT_INT, &fl.pool_size, "N",
         "Cold containers kept ready for the next warmup (0: create each on demand)", 0, 1024},
        {"prestart", EF_OPT_STRING, &fl.prestart, "RUNTIME",
         "python (default): the runner of each pool spare starts a Python runtime ahead, handed "
         "to the first Python function warmed in it, so that its cold start skips the "
         "interpreter's start; none: runtimes start when a function does",
         0, 0},
        {"container-sched-policy", EF_OPT_STRING, &fl.container_sched_policy, "POLICY",
         "CPU scheduling policy of every process of a container (the runner, the runtime, the "
         "function). batch: a process woken up does not preempt the running one, so each "
         "hand-off of an invocation costs one context switch instead of two (same CPU share); "
         "other: the kernel's default, with wake-up preemption",
         0, 0},
        {"cold-memory", EF_OPT_SIZE, &fl.cold_memory, "SIZE",
         "Memory limit of a cold container (the runner waiting), 8M to 64M; a warmup raises it", 0,
         0},
        {"cold-pids", EF_OPT_INT, &fl.cold_pids, "N", "Pids limit of a cold container", 16, 65536},
        {"reserved-memory", EF_OPT_SIZE, &fl.reserved_memory, "SIZE",
         "Memory of the node (or of funclet's own cgroup) never given to containers", 0, 0},
        {"bridge-name", EF_OPT_STRING, &fl.bridge_name, "NAME",
         "Bridge of the containers warmed up with network \"bridge\" (created when first needed, "
         "marked as this data dir's; 1-15 letters, digits, '_', '.', '-'). Two funclets on one "
         "host need distinct names",
         0, 0},
        {"bridge-cidr", EF_OPT_STRING, &fl.bridge_cidr, "CIDR",
         "Their IPv4 network, /16 to /29: the bridge takes the first address, containers the "
         "others. Two funclets on one host need distinct networks",
         0, 0},
        {"log-level", EF_OPT_STRING, &fl.log_level, "LEVEL", "debug, info, warn or error", 0, 0},
        {0},
    };

    ef_error err;
    ef_error_clear(&err);
    int next = 0;
    int r = ef_options_parse(usage_line, description, opts, argc, argv, 1, &next, &err);
    if (r == 1)
        return 0;
    if (r < 0) {
        fprintf(stderr, "easyfaas-funclet: %s\n", err.msg);
        return 2;
    }
    if (next != argc) {
        fprintf(stderr, "easyfaas-funclet: unexpected argument '%.200s' (see --help)\n",
                argv[next]);
        return 2;
    }
    enum ef_log_level level;
    if (ef_log_parse_level(fl.log_level, &level) < 0) {
        fprintf(stderr, "easyfaas-funclet: invalid --log-level '%s'\n", fl.log_level);
        return 2;
    }
    ef_log_init("funclet", level);
    ensure_stdio();
    signal(SIGPIPE, SIG_IGN);
    umask(022);

    if (geteuid() != 0) {
        ef_error("funclet must run as root: it creates namespaces, cgroups and mounts");
        return 1;
    }
    struct ef_funclet *f = &funclet;
    f->loop = uv_default_loop();
    f->on_oom = on_oom;
    f->on_exit = on_exited;
    f->network.host_netns = -1;
    if (setup_config(&fl, &f->cfg, &err) < 0 ||
        (f->cfg.seccomp && ef_seccomp_filter_build(&f->seccomp, &err) < 0) ||
        setup_userns(f, &err) < 0 ||
        ef_cgroup_manager_open(f->cfg.cgroup_root, f->cfg.cgroup_parent, &f->cgroups, &err) < 0 ||
        check_cgroup_parent(f, &err) < 0 || setup_capacity(f, &err) < 0 ||
        ef_host_facts_probe(&f->host_facts, &err) < 0 ||
        ef_network_init(&f->network, f->cfg.bridge_name, f->cfg.bridge_cidr, f->cfg.data_dir,
                        &err) < 0) {
        ef_error("%s", err.msg);
        ef_cgroup_manager_close(f->cgroups);
        ef_network_free(&f->network);
        ef_seccomp_filter_free(&f->seccomp);
        free_config(&f->cfg);
        ef_userns_slots_free(&f->userns_slots);
        return 1;
    }
    if (!f->cfg.seccomp)
        ef_warn("--seccomp=false: containers run without a seccomp filter");
    if (f->cfg.userns && ef_sched_policy_current() == SCHED_IDLE)
        ef_warn("funclet runs under SCHED_IDLE: containers with a user namespace keep it, since "
                "leaving it needs CAP_SYS_NICE of the host (--container-sched-policy %s applies "
                "only without one)",
                ef_sched_policy_name(f->cfg.container_sched_policy));
    /* What a previous funclet left: mounts below run/containers first (they would keep its
     * directories busy), then the containers' cgroups and directories, its bridge. */
    ef_hostmnt_release_root(f->cfg.containers_dir);
    ef_container_remove_orphans(f);
    ef_network_cleanup(&f->network);
    if (ef_hostmnt_prepare_root(f->cfg.containers_dir, &err) < 0 ||
        ef_hostmnt_make_dev(f->cfg.containers_dir, f->host_facts.dev, f->host_facts.n_dev, &err) <
            0) {
        ef_hostmnt_release_root(f->cfg.containers_dir);
        ef_error("%s", err.msg);
        ef_cgroup_manager_close(f->cgroups);
        ef_network_free(&f->network);
        ef_seccomp_filter_free(&f->seccomp);
        free_config(&f->cfg);
        ef_userns_slots_free(&f->userns_slots);
        return 1;
    }
    f->containers_root_mounted = true;
    /* Children are cloned from a copy of this mount namespace without the containers' mounts
     * (spawn.h), taken now that run/containers and its /dev tree are mounted. */
    if (ef_sandbox_spawn_ns_open(f->cfg.dev_dir, &err) < 0)
        ef_warn("containers are cloned from funclet's own mount namespace, so each create copies "
                "every container's mounts: %s",
                err.msg);

    static const struct ef_rpc_handlers handlers = {.on_request = ef_funclet_on_request};
    uv_signal_init(f->loop, &sig_chld);
    uv_signal_init(f->loop, &sig_term);
    uv_signal_init(f->loop, &sig_int);
    bool signals_ok = uv_signal_start(&sig_chld, on_sigchld, SIGCHLD) == 0 &&
                      uv_signal_start(&sig_term, on_sigterm, SIGTERM) == 0 &&
                      uv_signal_start(&sig_int, on_sigterm, SIGINT) == 0;
    /* Now that libuv's handlers are installed: the sandbox child drops them first thing. */
    ef_sandbox_changed_signals(&f->changed_signals);
    int own_policy = ef_sched_policy_current();
    int own_nice = getpriority(PRIO_PROCESS, 0);
    f->raised_priority = ef_sched_policy_realtime(own_policy) || own_nice < 0;
    if (f->raised_priority)
        ef_warn("funclet runs under the scheduling policy %s at nice %d: its containers leave "
                "it for %s at nice 0",
                ef_sched_policy_name(own_policy), own_nice,
                ef_sched_policy_name(f->cfg.container_sched_policy));
    if (!signals_ok ||
        ef_server_start(f->loop, f->cfg.socket_path, &handlers, f, &f->server, &err) < 0 ||
        ef_pool_open(f, &err) < 0) {
        ef_error("%s", err.msg[0] ? err.msg : "cannot install signal handlers");
        shutdown_funclet();
        uv_run(f->loop, UV_RUN_DEFAULT);
        release_after_loop();
        uv_loop_close(f->loop);
        ef_network_free(&f->network);
        ef_seccomp_filter_free(&f->seccomp);
        free_config(&f->cfg);
        ef_userns_slots_free(&f->userns_slots);
        return 1;
    }
    char userns[96] = "off";
    if (f->cfg.userns)
        snprintf(userns, sizeof(userns), "on, host ids %u-%llu", (unsigned)f->cfg.userns_base,
                 (unsigned long long)f->cfg.userns_base +
                     (unsigned long long)f->cfg.max_containers * EF_USERNS_RANGE - 1);
    ef_info("listening on %s (cgroup v%d, seccomp %s, user namespaces %s, rlimit-nproc %llu, "
            "code root %s, runtime %s, max %zu containers, pool %zu, capacity %llu of %llu MB)",
            f->cfg.socket_path, ef_cgroup_manager_version(f->cgroups),
            f->cfg.seccomp ? "on" : "off", userns, (unsigned long long)f->cfg.rlimit_nproc,
            f->cfg.code_root, f->cfg.runtime_dir, f->cfg.max_containers, f->cfg.pool_size,
            (unsigned long long)f->capacity_mb, (unsigned long long)f->memory_total_mb);

    /* The host side of the first container made ahead (parts.h). */
    ef_parts_prepare(f);
    uv_run(f->loop, UV_RUN_DEFAULT);
    release_after_loop();
    r = uv_loop_close(f->loop);
    if (r < 0)
        ef_warn("event loop closed with handles still open: %s", uv_strerror(r));
    ef_network_free(&f->network);
    ef_seccomp_filter_free(&f->seccomp);
    free_config(&f->cfg);
    ef_userns_slots_free(&f->userns_slots);
    ef_info("stopped");
    return 0;
}
