/* The cgroup backends, held to the same behaviour by one table of tests run against each: v1 on
 * the real kernel (root, v1 memory and pids hierarchies; skipped otherwise) and v2 on a fake
 * cgroupfs tree in a temporary directory (tests/unit/fake_cgroupfs.c imitates the kernel's side
 * of mkdir, rmdir and writes). Then what only v2 does (delegation, nesting) and the layout
 * detection, on fake trees. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "fake_cgroupfs.h"
#include "funclet/cgroup.h"
#include "funclet/cgroup_parse.h"

/* ---- the backends under test ---------------------------------------------------------- */

struct fixture;

/* One expected value of an interface file after create. */
struct limit_file {
    const char *controller;
    const char *file;
    const char *want;
};

struct backend {
    const char *name;
    int (*open)(struct fixture *fx);
    void (*trigger_oom)(struct fixture *fx, struct ef_cgroup *cg);
    const char *freeze_controller, *freeze_file, *frozen, *thawed;
    struct limit_file limits[6];  /* for limits_128 below */
    struct limit_file resized[3]; /* for limits_256 below */
};

struct fixture {
    const struct backend *b;
    struct ef_cgroup_manager *m;
    char tmp[64];
    char parent[64];
    int n; /* ids handed out */
};

static const struct ef_cgroup_limits limits_128 = {
    .memory_bytes = 128ull << 20, .pids_max = 100, .cpu_millicores = 500, .cpu_weight = 50};
static const struct ef_cgroup_limits limits_256 = {
    .memory_bytes = 256ull << 20, .pids_max = 200, .cpu_millicores = 0, .cpu_weight = 100};

static const char *next_id(struct fixture *fx)
{
    static char id[32];
    snprintf(id, sizeof(id), "c%012d", ++fx->n + 100 * (int)(getpid() % 1000));
    return id;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* A child that waits to be killed; it is attached by the test. */
static pid_t sleeper(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        for (;;)
            pause();
    }
    assert_true(pid > 0);
    return pid;
}

/* Reaps `pid`, which must have died of SIGKILL. */
static void assert_killed(pid_t pid)
{
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
}

static bool lists_pid(const char *dir, pid_t pid)
{
    char procs[4096];
    snprintf(procs, sizeof(procs), "%s", fake_cgroupfs_read(dir, "cgroup.procs"));
    for (char *save = NULL, *tok = strtok_r(procs, "\n", &save); tok;
         tok = strtok_r(NULL, "\n", &save))
        if (atoi(tok) == pid)
            return true;
    return false;
}

/* v1: the real kernel. */
static int v1_open(struct fixture *fx)
{
    if (geteuid() != 0)
        return 77;
    enum ef_cgroup_layout l = ef_cgroup_detect("/sys/fs/cgroup");
    if (l != EF_CGROUP_V1 && l != EF_CGROUP_HYBRID)
        return 77;
    snprintf(fx->parent, sizeof(fx->parent), "ef-utest-%d", (int)getpid());
    ef_error e;
    if (ef_cgroup_v1_open(fx->parent, &fx->m, &e) < 0) {
        print_error("%s\n", e.msg);
        return -1;
    }
    return 0;
}

/* A child in the cgroup allocates twice its limit and is OOM-killed by the kernel. */
static void v1_trigger_oom(struct fixture *fx, struct ef_cgroup *cg)
{
    (void)fx;
    int go[2];
    assert_int_equal(pipe(go), 0);
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        close(go[1]);
        if (read(go[0], &c, 1) != 1)
            _exit(1);
        for (int i = 0; i < 64; i++) {
            char *p = malloc(1 << 20);
            if (!p)
                _exit(2);
            memset(p, 1, 1 << 20);
        }
        _exit(0);
    }
    close(go[0]);
    ef_error e;
    assert_int_equal(ef_cgroup_attach(cg, pid, &e), 0);
    assert_int_equal(write(go[1], "x", 1), 1);
    close(go[1]);
    assert_killed(pid);
}

/* v2: a fake tree where funclet runs in /service (with its own process listed). */
static int v2_open(struct fixture *fx)
{
    snprintf(fx->tmp, sizeof(fx->tmp), "/tmp/ef-test-cgroup-XXXXXX");
    if (!mkdtemp(fx->tmp))
        return -1;
    snprintf(fx->parent, sizeof(fx->parent), "easyfaas");
    if (fake_cgroupfs_init(fx->tmp, "cpuset cpu io memory pids", "/service", "") < 0)
        return -1;
    ef_error e;
    if (ef_cgroup_v2_open(fx->tmp, "0::/service\n", fx->parent, fake_cgroupfs_hooks(), &fx->m, &e) <
        0) {
        print_error("%s\n", e.msg);
        return -1;
    }
    return 0;
}

/* The kernel counts the kill in memory.events (and notifies a modification). */
static void v2_trigger_oom(struct fixture *fx, struct ef_cgroup *cg)
{
    (void)fx;
    assert_int_equal(fake_cgroupfs_set(ef_cgroup_path(cg, "memory"), "memory.events",
                                       "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"),
                     0);
}

static const struct backend backends[] = {
    {
        .name = "v1",
        .open = v1_open,
        .trigger_oom = v1_trigger_oom,
        .freeze_controller = "freezer",
        .freeze_file = "freezer.state",
        .frozen = "FROZEN",
        .thawed = "THAWED",
        .limits =
            {
                {"memory", "memory.limit_in_bytes", "134217728"},
                {"memory", "memory.memsw.limit_in_bytes", "134217728"},
                {"pids", "pids.max", "100"},
                {"cpu", "cpu.cfs_quota_us", "50000"},
                {"cpu", "cpu.cfs_period_us", "100000"},
                {"cpu", "cpu.shares", "1286"},
            },
        .resized =
            {
                {"memory", "memory.limit_in_bytes", "268435456"},
                {"pids", "pids.max", "200"},
                {"cpu", "cpu.cfs_quota_us", "-1"},
            },
    },
    {
        .name = "v2",
        .open = v2_open,
        .trigger_oom = v2_trigger_oom,
        .freeze_controller = "memory",
        .freeze_file = "cgroup.freeze",
        .frozen = "1",
        .thawed = "0",
        .limits =
            {
                {"memory", "memory.max", "134217728"},
                {"memory", "memory.swap.max", "0"},
                {"pids", "pids.max", "100"},
                {"cpu", "cpu.max", "50000 100000"},
                {"cpu", "cpu.weight", "50"},
                {"memory", "memory.max", "134217728"},
            },
        .resized =
            {
                {"memory", "memory.max", "268435456"},
                {"pids", "pids.max", "200"},
                {"cpu", "cpu.max", "max 100000"},
            },
    },
};

static int setup_backend(void **state, const struct backend *b)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    fx->b = b;
    int r = b->open(fx);
    if (r != 0) {
        free(fx);
        *state = NULL;
        return r == 77 ? 0 : -1;
    }
    *state = fx;
    return 0;
}

static int setup_v1(void **state)
{
    return setup_backend(state, &backends[0]);
}

static int setup_v2(void **state)
{
    return setup_backend(state, &backends[1]);
}

static int teardown_backend(void **state)
{
    struct fixture *fx = *state;
    if (!fx)
        return 0;
    ef_cgroup_manager_close(fx->m);
    if (fx->tmp[0]) {
        ef_error e;
        ef_rm_rf(fx->tmp, &e);
    }
    free(fx);
    return 0;
}

static struct fixture *fixture(void **state)
{
    struct fixture *fx = *state;
    if (!fx)
        skip();
    return fx;
}

static void expect_files(const struct ef_cgroup *cg, const struct limit_file *files, size_t n)
{
    for (size_t i = 0; i < n && files[i].file; i++) {
        const char *dir = ef_cgroup_path(cg, files[i].controller);
        if (!dir)
            continue; /* an optional v1 controller this host does not mount */
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", dir, files[i].file);
        if (access(path, F_OK) < 0 && strstr(files[i].file, "memsw"))
            continue; /* no swap accounting on this kernel */
        const char *got = fake_cgroupfs_read(dir, files[i].file);
        if (strcmp(got, files[i].want) != 0)
            fail_msg("%s is '%s', want '%s'", path, got, files[i].want);
    }
}

/* ---- the shared behaviour ------------------------------------------------------------- */

static void test_create_writes_limits(void **state)
{
    struct fixture *fx = fixture(state);
    struct ef_cgroup *cg = NULL;
    ef_error e;
    assert_int_equal(ef_cgroup_create(fx->m, next_id(fx), &limits_128, &cg, &e), 0);
    expect_files(cg, fx->b->limits, EF_ARRAY_SIZE(fx->b->limits));
    assert_int_equal(ef_cgroup_set_limits(cg, &limits_256, &e), 0);
    expect_files(cg, fx->b->resized, EF_ARRAY_SIZE(fx->b->resized));
    /* Shrinking again: on v1 memsw must follow memory down, never the other way round. */
    assert_int_equal(ef_cgroup_set_limits(cg, &limits_128, &e), 0);
    expect_files(cg, fx->b->limits, 2);
    assert_int_equal(ef_cgroup_destroy(cg, &e), 0);
    ef_cgroup_free(cg);
}

static void test_attach_kill_destroy(void **state)
{
    struct fixture *fx = fixture(state);
    struct ef_cgroup *cg = NULL;
    ef_error e;
    assert_int_equal(ef_cgroup_create(fx->m, next_id(fx), &limits_128, &cg, &e), 0);
    char mem[PATH_MAX], pids[PATH_MAX];
    snprintf(mem, sizeof(mem), "%s", ef_cgroup_path(cg, "memory"));
    snprintf(pids, sizeof(pids), "%s", ef_cgroup_path(cg, "pids"));
    assert_true(is_dir(mem) && is_dir(pids));

    pid_t a = sleeper(), b = sleeper();
    assert_int_equal(ef_cgroup_attach(cg, a, &e), 0);
    assert_int_equal(ef_cgroup_attach(cg, b, &e), 0);
    assert_true(lists_pid(mem, a) && lists_pid(mem, b));
    assert_true(lists_pid(pids, a));

    /* A cgroup with processes cannot be removed. */
    assert_int_equal(ef_cgroup_kill_all(cg, &e), 0);
    assert_killed(a);
    assert_killed(b);
    assert_false(lists_pid(mem, a));
    assert_int_equal(ef_cgroup_destroy(cg, &e), 0);
    assert_false(is_dir(mem));
    assert_false(is_dir(pids));
    /* Destroy is repeatable. */
    assert_int_equal(ef_cgroup_destroy(cg, &e), 0);
    ef_cgroup_free(cg);
}

static void test_remove_stale(void **state)
{
    struct fixture *fx = fixture(state);
    struct ef_cgroup *cg = NULL;
    ef_error e;
    const char *id = next_id(fx);
    char saved[32];
    snprintf(saved, sizeof(saved), "%s", id);
    assert_int_equal(ef_cgroup_create(fx->m, saved, &limits_128, &cg, &e), 0);
    char mem[PATH_MAX];
    snprintf(mem, sizeof(mem), "%s", ef_cgroup_path(cg, "memory"));
    pid_t a = sleeper();
    assert_int_equal(ef_cgroup_attach(cg, a, &e), 0);
    /* As after a crash of funclet: the handle is gone, the kernel objects are not. */
    ef_cgroup_free(cg);
    assert_int_equal(ef_cgroup_remove_stale(fx->m, saved, &e), 0);
    assert_killed(a);
    assert_false(is_dir(mem));
    /* Nothing left is no error. */
    assert_int_equal(ef_cgroup_remove_stale(fx->m, saved, &e), 0);
}

static void test_freeze(void **state)
{
    struct fixture *fx = fixture(state);
    struct ef_cgroup *cg = NULL;
    ef_error e;
    assert_int_equal(ef_cgroup_create(fx->m, next_id(fx), &limits_128, &cg, &e), 0);
    const char *dir = ef_cgroup_path(cg, fx->b->freeze_controller);
    if (!dir) {
        ef_cgroup_destroy(cg, &e);
        ef_cgroup_free(cg);
        skip();
    }
    pid_t a = sleeper();
    assert_int_equal(ef_cgroup_attach(cg, a, &e), 0);
    assert_int_equal(ef_cgroup_freeze(cg, true, &e), 0);
    assert_string_equal(fake_cgroupfs_read(dir, fx->b->freeze_file), fx->b->frozen);
    assert_int_equal(ef_cgroup_freeze(cg, false, &e), 0);
    assert_string_equal(fake_cgroupfs_read(dir, fx->b->freeze_file), fx->b->thawed);
    assert_int_equal(ef_cgroup_kill_all(cg, &e), 0);
    assert_killed(a);
    assert_int_equal(ef_cgroup_destroy(cg, &e), 0);
    ef_cgroup_free(cg);
}

/* A reset kills everything but the container's PID 1. */
static void test_kill_others(void **state)
{
    struct fixture *fx = fixture(state);
    struct ef_cgroup *cg = NULL;
    ef_error e;
    assert_int_equal(ef_cgroup_create(fx->m, next_id(fx), &limits_128, &cg, &e), 0);
    const char *procs = ef_cgroup_path(cg, "pids");
    pid_t keep = sleeper(), b = sleeper(), c = sleeper();
    assert_int_equal(ef_cgroup_attach(cg, keep, &e), 0);
    assert_int_equal(ef_cgroup_attach(cg, b, &e), 0);
    assert_int_equal(ef_cgroup_attach(cg, c, &e), 0);

    bool frozen = false;
    assert_int_equal(ef_cgroup_others_left(cg, keep), 2);
    /* Counting sends nothing. */
    assert_int_equal(kill(b, 0), 0);
    assert_int_equal(ef_cgroup_kill_others(cg, keep, &frozen, &e), 2);
    assert_true(frozen);
    assert_killed(b);
    assert_killed(c);
    /* Reaped (or, on the fake tree, still listed but gone): nothing but `keep` is left. */
    assert_int_equal(ef_cgroup_others_left(cg, keep), 0);
    assert_int_equal(kill(keep, 0), 0);
    assert_true(lists_pid(procs, keep));
    /* Not left frozen. */
    const char *fdir = ef_cgroup_path(cg, fx->b->freeze_controller);
    if (fdir)
        assert_string_equal(fake_cgroupfs_read(fdir, fx->b->freeze_file), fx->b->thawed);
    /* Nothing else to kill is fine, and harmless to `keep`. */
    assert_int_equal(ef_cgroup_kill_others(cg, keep, &frozen, &e), 0);
    assert_int_equal(kill(keep, 0), 0);

    assert_int_equal(ef_cgroup_kill_all(cg, &e), 0);
    assert_killed(keep);
    assert_int_equal(ef_cgroup_destroy(cg, &e), 0);
    ef_cgroup_free(cg);
}

/* v1 keeps an empty cgroup frozen for its lifetime (so that freezing a container does not
 * switch the kernel's freezer static key each time) and removes it when closed. */
static void test_v1_freeze_anchor(void **state)
{
    (void)state;
    if (geteuid() != 0 ||
        (ef_cgroup_detect("/sys/fs/cgroup") != EF_CGROUP_V1 &&
         ef_cgroup_detect("/sys/fs/cgroup") != EF_CGROUP_HYBRID) ||
        access("/sys/fs/cgroup/freezer", F_OK) < 0)
        skip();
    char *text = NULL;
    ef_error e;
    assert_int_equal(ef_read_file("/proc/self/cgroup", 65536, &text, NULL, &e), 0);
    const char *line = strstr(text, ":freezer:");
    assert_non_null(line);
    char own[1024];
    snprintf(own, sizeof(own), "%.*s", (int)strcspn(line + 9, "\n"), line + 9);
    free(text);
    char parent[64], anchor[PATH_MAX];
    snprintf(parent, sizeof(parent), "ef-utest-anchor-%d", (int)getpid());
    snprintf(anchor, sizeof(anchor), "/sys/fs/cgroup/freezer%s/%s/%s", strcmp(own, "/") ? own : "",
             parent, EF_CGROUP_ANCHOR);
    struct ef_cgroup_manager *m = NULL;
    assert_int_equal(ef_cgroup_v1_open(parent, &m, &e), 0);
    assert_true(is_dir(anchor));
    assert_string_equal(fake_cgroupfs_read(anchor, "freezer.state"), "FROZEN");
    ef_cgroup_manager_close(m);
    assert_false(is_dir(anchor));
    *strrchr(anchor, '/') = '\0';
    assert_false(is_dir(anchor));
}

static void test_oom(void **state)
{
    struct fixture *fx = fixture(state);
    struct ef_cgroup *cg = NULL;
    ef_error e;
    struct ef_cgroup_limits small = limits_128;
    small.memory_bytes = 16ull << 20;
    assert_int_equal(ef_cgroup_create(fx->m, next_id(fx), &small, &cg, &e), 0);
    uint64_t kills = 99;
    assert_int_equal(ef_cgroup_oom_kills(cg, &kills), 0);
    assert_int_equal(kills, 0);
    int fd = -1;
    assert_int_equal(ef_cgroup_oom_watch(cg, &fd, &e), 0);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 0), 0);

    fx->b->trigger_oom(fx, cg);
    assert_int_equal(poll(&p, 1, 5000), 1);
    ef_cgroup_oom_drain(fd);
    assert_int_equal(poll(&p, 1, 0), 0);
    assert_int_equal(ef_cgroup_oom_kills(cg, &kills), 0);
    assert_int_equal(kills, 1);
    close(fd);
    assert_int_equal(ef_cgroup_kill_all(cg, &e), 0);
    assert_int_equal(ef_cgroup_destroy(cg, &e), 0);
    ef_cgroup_free(cg);
}

static void test_memory_limit(void **state)
{
    struct fixture *fx = fixture(state);
    uint64_t limit = 0;
    assert_int_equal(ef_cgroup_memory_limit(fx->m, &limit), 0);
    assert_true(limit > 0);
}

/* ---- v2 only: delegation, nesting, refusals -------------------------------------------- */

static char v2dir[64];

static int setup_dir(void **state)
{
    (void)state;
    snprintf(v2dir, sizeof(v2dir), "/tmp/ef-test-cgroup2-XXXXXX");
    return mkdtemp(v2dir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    (void)state;
    ef_error e;
    ef_rm_rf(v2dir, &e);
    return 0;
}

static const char *at(const char *rel)
{
    static char buf[4][PATH_MAX];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof(buf[i]), "%s/%s", v2dir, rel);
    return buf[i];
}

/* funclet's own cgroup holds processes (funclet itself): they move into <own>/funclet so that
 * the controllers can be delegated; the parent cgroup delegates them further. */
static void test_v2_delegation_and_nesting(void **state)
{
    (void)state;
    ef_error e;
    char root[PATH_MAX];
    snprintf(root, sizeof(root), "%s/a", v2dir);
    assert_int_equal(mkdir(root, 0755), 0);
    assert_int_equal(
        fake_cgroupfs_init(root, "cpu memory pids io", "/kubepods/pod1/box", "4242\n4343"), 0);
    struct ef_cgroup_manager *m = NULL;
    assert_int_equal(
        ef_cgroup_v2_open(root, "0::/kubepods/pod1/box\n", "ef", fake_cgroupfs_hooks(), &m, &e), 0);
    assert_int_equal(ef_cgroup_manager_version(m), 2);
    const char *own = at("a/kubepods/pod1/box");
    assert_string_equal(fake_cgroupfs_read(own, "cgroup.procs"), "");
    assert_string_equal(fake_cgroupfs_read(at("a/kubepods/pod1/box/funclet"), "cgroup.procs"),
                        "4242\n4343");
    assert_string_equal(fake_cgroupfs_read(own, "cgroup.subtree_control"), "memory pids cpu");
    assert_string_equal(fake_cgroupfs_read(at("a/kubepods/pod1/box/ef"), "cgroup.subtree_control"),
                        "memory pids cpu");

    struct ef_cgroup *cg = NULL;
    assert_int_equal(ef_cgroup_create(m, "c000000000001", &limits_128, &cg, &e), 0);
    assert_string_equal(ef_cgroup_path(cg, "memory"), at("a/kubepods/pod1/box/ef/c000000000001"));
    assert_string_equal(ef_cgroup_path(cg, "pids"), ef_cgroup_path(cg, "cpu"));
    assert_int_equal(ef_cgroup_destroy(cg, &e), 0);
    ef_cgroup_free(cg);
    ef_cgroup_manager_close(m);
    /* The parent went with the manager, as it was empty; funclet's leaf stays. */
    assert_false(is_dir(at("a/kubepods/pod1/box/ef")));
    assert_true(is_dir(at("a/kubepods/pod1/box/funclet")));
}

/* In the root cgroup (funclet as a host service without delegation) nothing moves. */
static void test_v2_root_cgroup(void **state)
{
    (void)state;
    ef_error e;
    char root[PATH_MAX];
    snprintf(root, sizeof(root), "%s/b", v2dir);
    assert_int_equal(mkdir(root, 0755), 0);
    assert_int_equal(fake_cgroupfs_init(root, "memory pids", "/", "1\n77"), 0);
    struct ef_cgroup_manager *m = NULL;
    assert_int_equal(ef_cgroup_v2_open(root, "0::/\n", "ef", fake_cgroupfs_hooks(), &m, &e), 0);
    assert_false(is_dir(at("b/funclet")));
    uint64_t limit = 0;
    assert_int_equal(ef_cgroup_memory_limit(m, &limit), 0);
    assert_true(limit == UINT64_MAX);
    /* Without the cpu controller no CPU file is written, and create still works. */
    struct ef_cgroup *cg = NULL;
    assert_int_equal(ef_cgroup_create(m, "c000000000002", &limits_128, &cg, &e), 0);
    assert_string_equal(fake_cgroupfs_read(ef_cgroup_path(cg, "memory"), "memory.max"),
                        "134217728");
    assert_int_equal(access(at("b/ef/c000000000002/cpu.max"), F_OK), -1);
    assert_int_equal(ef_cgroup_destroy(cg, &e), 0);
    ef_cgroup_free(cg);
    ef_cgroup_manager_close(m);
}

static void test_v2_refusals(void **state)
{
    (void)state;
    ef_error e;
    char root[PATH_MAX];
    snprintf(root, sizeof(root), "%s/c", v2dir);
    assert_int_equal(mkdir(root, 0755), 0);
    assert_int_equal(fake_cgroupfs_init(root, "cpu io", "/svc", ""), 0);
    struct ef_cgroup_manager *m = NULL;
    assert_int_equal(ef_cgroup_v2_open(root, "0::/svc\n", "ef", fake_cgroupfs_hooks(), &m, &e),
                     -ENOTSUP);
    assert_non_null(strstr(e.msg, "'memory' controller is not available"));
    /* A v1-only /proc/self/cgroup has no unified line. */
    assert_int_equal(ef_cgroup_v2_open(root, "4:memory:/x\n", "ef", fake_cgroupfs_hooks(), &m, &e),
                     -ENOENT);
    /* funclet's cgroup does not exist below this root. */
    assert_int_equal(
        ef_cgroup_v2_open(root, "0::/elsewhere\n", "ef", fake_cgroupfs_hooks(), &m, &e), -ENOENT);
    assert_non_null(strstr(e.msg, "cgroup.controllers"));
}

static void test_v2_memory_limit_of_own_cgroup(void **state)
{
    (void)state;
    ef_error e;
    char root[PATH_MAX];
    snprintf(root, sizeof(root), "%s/d", v2dir);
    assert_int_equal(mkdir(root, 0755), 0);
    assert_int_equal(fake_cgroupfs_init(root, "memory pids", "/pod", ""), 0);
    assert_int_equal(fake_cgroupfs_set(at("d/pod"), "memory.max", "2147483648\n"), 0);
    struct ef_cgroup_manager *m = NULL;
    assert_int_equal(ef_cgroup_v2_open(root, "0::/pod\n", "ef", fake_cgroupfs_hooks(), &m, &e), 0);
    uint64_t limit = 0;
    assert_int_equal(ef_cgroup_memory_limit(m, &limit), 0);
    assert_true(limit == 2147483648ull);
    ef_cgroup_manager_close(m);
}

static void test_detect(void **state)
{
    (void)state;
    assert_int_equal(mkdir(at("v2"), 0755), 0);
    assert_int_equal(fake_cgroupfs_set(at("v2"), "cgroup.controllers", "memory pids"), 0);
    assert_int_equal(ef_cgroup_detect(at("v2")), EF_CGROUP_V2);

    assert_int_equal(mkdir(at("hybrid"), 0755), 0);
    assert_int_equal(mkdir(at("hybrid/memory"), 0755), 0);
    assert_int_equal(mkdir(at("hybrid/unified"), 0755), 0);
    assert_int_equal(fake_cgroupfs_set(at("hybrid/unified"), "cgroup.controllers", ""), 0);
    assert_int_equal(ef_cgroup_detect(at("hybrid")), EF_CGROUP_HYBRID);

    assert_int_equal(mkdir(at("v1"), 0755), 0);
    assert_int_equal(mkdir(at("v1/pids"), 0755), 0);
    assert_int_equal(ef_cgroup_detect(at("v1")), EF_CGROUP_V1);

    assert_int_equal(mkdir(at("none"), 0755), 0);
    assert_int_equal(ef_cgroup_detect(at("none")), EF_CGROUP_NONE);
    assert_int_equal(ef_cgroup_detect(at("missing")), EF_CGROUP_NONE);
    /* Whatever this host has, it is not nothing. */
    assert_int_not_equal(ef_cgroup_detect("/sys/fs/cgroup"), EF_CGROUP_NONE);
}

#define SHARED(fn)                                                                                 \
    {"v1: " #fn, fn, setup_v1, teardown_backend, NULL},                                            \
    {                                                                                              \
        "v2: " #fn, fn, setup_v2, teardown_backend, NULL                                           \
    }

int main(void)
{
    const struct CMUnitTest shared[] = {
        SHARED(test_create_writes_limits), SHARED(test_attach_kill_destroy),
        SHARED(test_remove_stale),         SHARED(test_freeze),
        SHARED(test_kill_others),          SHARED(test_oom),
        SHARED(test_memory_limit),
    };
    const struct CMUnitTest v2[] = {
        cmocka_unit_test(test_v2_delegation_and_nesting),
        cmocka_unit_test(test_v2_root_cgroup),
        cmocka_unit_test(test_v2_refusals),
        cmocka_unit_test(test_v2_memory_limit_of_own_cgroup),
        cmocka_unit_test(test_detect),
        cmocka_unit_test(test_v1_freeze_anchor),
    };
    int failed = cmocka_run_group_tests_name("backends", shared, NULL, NULL);
    failed += cmocka_run_group_tests_name("v2", v2, setup_dir, teardown_dir);
    return failed ? 1 : 0;
}
