/* The container's mount plan, built from literal host facts (no root, no mounts), and the probe
 * of the real host's layout. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "funclet/mount_plan.h"

static const struct ef_sandbox_config cfg = {
    .shared_dir = "/data/run/containers/c0123456789ab/mnt",
    .runtime_dir = "/data/runtime",
    .dev_dir = "/data/run/containers/.dev",
    .sandbox_uid = 1001,
    .sandbox_gid = 1002,
};

/* A merged-/usr host (Debian 12) with every /etc entry and device node. */
static struct ef_host_facts merged_facts(void)
{
    struct ef_host_facts f;
    memset(&f, 0, sizeof(f));
    const char *names[] = {"bin", "sbin", "lib", "lib64"};
    for (size_t i = 0; i < 4; i++) {
        f.toplevel[i].name = names[i];
        f.toplevel[i].kind = EF_HOST_SYMLINK;
        snprintf(f.toplevel[i].link, sizeof(f.toplevel[i].link), "usr/%s", names[i]);
    }
    f.n_toplevel = 4;
    const char *files[] = {"hosts", "resolv.conf", "nsswitch.conf", "localtime", "ld.so.cache"};
    for (size_t i = 0; i < 5; i++)
        f.etc[f.n_etc++].name = files[i];
    f.etc[f.n_etc].name = "ssl";
    f.etc[f.n_etc++].is_dir = true;
    const char *devs[] = {"null", "zero", "full", "random", "urandom", "tty"};
    for (size_t i = 0; i < 6; i++)
        f.dev[f.n_dev++] = devs[i];
    return f;
}

static const struct ef_mount_entry *find(const struct ef_mount_plan *p, const char *target)
{
    const struct ef_mount_entry *e = ef_mount_plan_find(p, target);
    if (!e)
        fail_msg("no entry for %s", target);
    return e;
}

static size_t index_of(const struct ef_mount_plan *p, const struct ef_mount_entry *e)
{
    return (size_t)(e - p->entries);
}

static void test_merged_usr(void **state)
{
    (void)state;
    struct ef_host_facts facts = merged_facts();
    struct ef_mount_plan plan;
    ef_error err;
    assert_int_equal(ef_mount_plan_build(&cfg, &facts, &plan, &err), 0);

    const struct ef_mount_entry *usr = find(&plan, "/usr");
    assert_int_equal(usr->kind, EF_MOUNT_BIND);
    assert_string_equal(usr->source, "/usr");
    assert_true(usr->source_is_dir);
    assert_int_equal(usr->flags, MS_RDONLY | MS_NOSUID | MS_NODEV);

    const struct ef_mount_entry *bin = find(&plan, "/bin");
    assert_int_equal(bin->kind, EF_MOUNT_SYMLINK);
    assert_string_equal(bin->source, "usr/bin");
    assert_string_equal(find(&plan, "/lib64")->source, "usr/lib64");
    assert_null(ef_mount_plan_find(&plan, "/lib32"));
    ef_mount_plan_free(&plan);
    assert_int_equal(plan.n, 0);
    assert_null(plan.entries);
}

/* Hosts without merged /usr get read-only binds of the real directories. */
static void test_split_usr(void **state)
{
    (void)state;
    struct ef_host_facts facts = merged_facts();
    facts.toplevel[0].kind = EF_HOST_DIR; /* /bin */
    facts.toplevel[2].kind = EF_HOST_DIR; /* /lib */
    struct ef_mount_plan plan;
    ef_error err;
    assert_int_equal(ef_mount_plan_build(&cfg, &facts, &plan, &err), 0);
    const struct ef_mount_entry *bin = find(&plan, "/bin");
    assert_int_equal(bin->kind, EF_MOUNT_BIND);
    assert_string_equal(bin->source, "/bin");
    assert_true(bin->source_is_dir);
    assert_int_equal(bin->flags, MS_RDONLY | MS_NOSUID | MS_NODEV);
    assert_int_equal(find(&plan, "/lib")->kind, EF_MOUNT_BIND);
    assert_int_equal(find(&plan, "/sbin")->kind, EF_MOUNT_SYMLINK);
    ef_mount_plan_free(&plan);
}

static void test_etc(void **state)
{
    (void)state;
    struct ef_host_facts facts = merged_facts();
    facts.n_etc = 2; /* only hosts and resolv.conf exist */
    struct ef_mount_plan plan;
    ef_error err;
    assert_int_equal(ef_mount_plan_build(&cfg, &facts, &plan, &err), 0);

    const struct ef_mount_entry *hosts = find(&plan, "/etc/hosts");
    assert_int_equal(hosts->kind, EF_MOUNT_BIND);
    assert_string_equal(hosts->source, "/etc/hosts");
    assert_false(hosts->source_is_dir);
    assert_int_equal(hosts->flags, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC);
    assert_non_null(ef_mount_plan_find(&plan, "/etc/resolv.conf"));
    assert_null(ef_mount_plan_find(&plan, "/etc/ssl"));
    assert_null(ef_mount_plan_find(&plan, "/etc/ld.so.cache"));
    /* Nothing else of the host's /etc: no shadow, no passwd with host users. */
    for (size_t i = 0; i < plan.n; i++) {
        if (plan.entries[i].kind == EF_MOUNT_BIND && plan.entries[i].source &&
            strncmp(plan.entries[i].source, "/etc/", 5) == 0)
            assert_true(strcmp(plan.entries[i].source, "/etc/hosts") == 0 ||
                        strcmp(plan.entries[i].source, "/etc/resolv.conf") == 0);
    }

    const struct ef_mount_entry *passwd = find(&plan, "/etc/passwd");
    assert_int_equal(passwd->kind, EF_MOUNT_FILE);
    assert_int_equal(passwd->mode, 0644);
    assert_string_equal(passwd->data, "root:x:0:0:root:/root:/usr/sbin/nologin\n"
                                      "sbx_user:x:1001:1002:sandbox user:/tmp:/usr/sbin/nologin\n");
    const struct ef_mount_entry *group = find(&plan, "/etc/group");
    assert_string_equal(group->data, "root:x:0:\nsbx_user:x:1002:\n");
    ef_mount_plan_free(&plan);

    /* A directory entry is bound as a directory. */
    facts = merged_facts();
    assert_int_equal(ef_mount_plan_build(&cfg, &facts, &plan, &err), 0);
    assert_true(find(&plan, "/etc/ssl")->source_is_dir);
    ef_mount_plan_free(&plan);
}

/* /var/task, /tmp and /dev/shm are read-only binds of the shared placeholders: the code and the
 * tmpfs instances arrive later by propagation (hostmnt.h). */
static void test_code_and_runtime(void **state)
{
    (void)state;
    struct ef_host_facts facts = merged_facts();
    struct ef_mount_plan plan;
    ef_error err;
    assert_int_equal(ef_mount_plan_build(&cfg, &facts, &plan, &err), 0);

    const struct ef_mount_entry *task = find(&plan, "/var/task");
    assert_int_equal(task->kind, EF_MOUNT_BIND);
    assert_string_equal(task->source, "/data/run/containers/c0123456789ab/mnt/task");
    assert_true(task->source_is_dir);
    assert_int_equal(task->flags, MS_RDONLY | MS_NOSUID | MS_NODEV);

    const struct ef_mount_entry *rt = find(&plan, "/var/runtime");
    assert_string_equal(rt->source, "/data/runtime");
    assert_int_equal(rt->flags, MS_RDONLY | MS_NOSUID | MS_NODEV);
    ef_mount_plan_free(&plan);
}

static void test_tmp_proc_dev(void **state)
{
    (void)state;
    struct ef_host_facts facts = merged_facts();
    struct ef_mount_plan plan;
    ef_error err;
    assert_int_equal(ef_mount_plan_build(&cfg, &facts, &plan, &err), 0);

    const struct ef_mount_entry *tmp = find(&plan, "/tmp");
    assert_int_equal(tmp->kind, EF_MOUNT_BIND);
    assert_string_equal(tmp->source, "/data/run/containers/c0123456789ab/mnt/tmp");
    assert_true(tmp->source_is_dir);
    assert_int_equal(tmp->flags, MS_RDONLY | MS_NOSUID | MS_NODEV);

    const struct ef_mount_entry *proc = find(&plan, "/proc");
    assert_int_equal(proc->kind, EF_MOUNT_PROC);
    assert_int_equal(proc->flags, MS_NOSUID | MS_NODEV | MS_NOEXEC);

    /* funclet's /dev tree (its nodes, links and shm/ are made once, hostmnt.c), read-only, but
     * without MS_NODEV: its device nodes must stay usable. No node is bound one by one. */
    const struct ef_mount_entry *dev = find(&plan, "/dev");
    assert_int_equal(dev->kind, EF_MOUNT_BIND);
    assert_string_equal(dev->source, "/data/run/containers/.dev");
    assert_true(dev->source_is_dir);
    assert_int_equal(dev->flags, MS_RDONLY | MS_NOSUID | MS_NOEXEC);
    assert_null(ef_mount_plan_find(&plan, "/dev/null"));
    assert_null(ef_mount_plan_find(&plan, "/dev/fd"));

    const struct ef_mount_entry *shm = find(&plan, "/dev/shm");
    assert_int_equal(shm->kind, EF_MOUNT_BIND);
    assert_string_equal(shm->source, "/data/run/containers/c0123456789ab/mnt/shm");
    assert_int_equal(shm->flags, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC);
    assert_true(index_of(&plan, dev) < index_of(&plan, shm));
    ef_mount_plan_free(&plan);
}

/* The OCI default masked and read-only /proc paths, applied after /proc is mounted; /sys is
 * not in the container at all. */
static void test_proc_masks(void **state)
{
    (void)state;
    struct ef_host_facts facts = merged_facts();
    struct ef_mount_plan plan;
    ef_error err;
    assert_int_equal(ef_mount_plan_build(&cfg, &facts, &plan, &err), 0);
    size_t proc = index_of(&plan, find(&plan, "/proc"));
    static const char *const masked[] = {
        "/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
        "/proc/acpi",  "/proc/scsi", "/proc/asound",     "/proc/latency_stats"};
    for (size_t i = 0; i < sizeof(masked) / sizeof(masked[0]); i++) {
        const struct ef_mount_entry *e = find(&plan, masked[i]);
        assert_int_equal(e->kind, EF_MOUNT_MASK);
        assert_true(index_of(&plan, e) > proc);
    }
    static const char *const readonly[] = {"/proc/sys", "/proc/sysrq-trigger", "/proc/irq",
                                           "/proc/bus", "/proc/fs"};
    for (size_t i = 0; i < sizeof(readonly) / sizeof(readonly[0]); i++) {
        const struct ef_mount_entry *e = find(&plan, readonly[i]);
        assert_int_equal(e->kind, EF_MOUNT_RDONLY);
        assert_int_equal(e->flags, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC);
        assert_true(index_of(&plan, e) > proc);
    }
    for (size_t i = 0; i < plan.n; i++)
        assert_false(strncmp(plan.entries[i].target, "/sys", 4) == 0);
    ef_mount_plan_free(&plan);
}

/* The root ends read-only, after everything has been put in place. */
static void test_ends_read_only(void **state)
{
    (void)state;
    struct ef_host_facts facts = merged_facts();
    struct ef_mount_plan plan;
    ef_error err;
    assert_int_equal(ef_mount_plan_build(&cfg, &facts, &plan, &err), 0);
    const struct ef_mount_entry *last = &plan.entries[plan.n - 1];
    assert_int_equal(last->kind, EF_MOUNT_REMOUNT);
    assert_string_equal(last->target, "/");
    assert_int_equal(last->flags & MS_RDONLY, MS_RDONLY);

    /* Every target is absolute, no bind exposes a host run/ directory (where the control
     * sockets live) other than the container's own placeholders below its mnt/ and funclet's
     * /dev tree, both read-only, and no mount is made over an earlier entry, which it would
     * hide: /dev comes before /dev/shm, not after. */
    size_t shared_len = strlen(cfg.shared_dir);
    for (size_t i = 0; i < plan.n; i++) {
        const struct ef_mount_entry *e = &plan.entries[i];
        assert_true(e->target[0] == '/');
        assert_null(strstr(e->target, ".."));
        if (e->source && e->kind == EF_MOUNT_BIND && strcmp(e->source, cfg.dev_dir) == 0) {
            assert_true(e->flags & MS_RDONLY);
        } else if (e->source && e->kind == EF_MOUNT_BIND && strstr(e->source, "/run/")) {
            assert_int_equal(strncmp(e->source, cfg.shared_dir, shared_len), 0);
            assert_true(e->source[shared_len] == '/' && e->source[shared_len + 1] != '\0');
            assert_true(e->flags & MS_RDONLY);
        }
        for (size_t j = i + 1; j < plan.n; j++) {
            const struct ef_mount_entry *later = &plan.entries[j];
            if (later->kind == EF_MOUNT_REMOUNT || later->kind == EF_MOUNT_SYMLINK ||
                later->kind == EF_MOUNT_FILE)
                continue;
            size_t len = strlen(later->target);
            if (strncmp(e->target, later->target, len) == 0 &&
                (e->target[len] == '/' || e->target[len] == '\0'))
                fail_msg("%s is mounted over the earlier %s", later->target, e->target);
        }
    }
    ef_mount_plan_free(&plan);
}

/* Where the host's sh is not bash, bash is bound read-only over it, after /usr is in place. */
static void test_sh_is_bash(void **state)
{
    (void)state;
    struct ef_mount_plan plan;
    ef_error err;
    struct ef_host_facts facts = merged_facts();
    assert_int_equal(ef_mount_plan_build(&cfg, &facts, &plan, &err), 0);
    assert_null(ef_mount_plan_find(&plan, "/usr/bin/dash"));
    ef_mount_plan_free(&plan);

    snprintf(facts.sh_target, sizeof(facts.sh_target), "/usr/bin/dash");
    assert_int_equal(ef_mount_plan_build(&cfg, &facts, &plan, &err), 0);
    const struct ef_mount_entry *sh = find(&plan, "/usr/bin/dash");
    assert_int_equal(sh->kind, EF_MOUNT_BIND);
    assert_string_equal(sh->source, "/usr/bin/bash");
    assert_false(sh->source_is_dir);
    assert_true(sh->flags & MS_RDONLY);
    assert_true(index_of(&plan, sh) > index_of(&plan, find(&plan, "/usr")));
    ef_mount_plan_free(&plan);
}

static void test_bad_config(void **state)
{
    (void)state;
    struct ef_host_facts facts = merged_facts();
    struct ef_mount_plan plan = {0};
    ef_error err;
    struct ef_sandbox_config bad = cfg;
    bad.shared_dir = "relative/mnt";
    assert_int_equal(ef_mount_plan_build(&bad, &facts, &plan, &err), -EINVAL);
    assert_int_equal(plan.n, 0);
    assert_non_null(strstr(err.msg, "absolute"));
    bad = cfg;
    bad.runtime_dir = NULL;
    assert_int_equal(ef_mount_plan_build(&bad, &facts, &plan, &err), -EINVAL);
    bad = cfg;
    bad.dev_dir = "run/containers/.dev";
    assert_int_equal(ef_mount_plan_build(&bad, &facts, &plan, &err), -EINVAL);
    char longdir[PATH_MAX];
    memset(longdir, 'a', sizeof(longdir) - 1);
    longdir[0] = '/';
    longdir[sizeof(longdir) - 1] = '\0';
    bad = cfg;
    bad.shared_dir = longdir;
    assert_int_equal(ef_mount_plan_build(&bad, &facts, &plan, &err), -ENAMETOOLONG);
}

static void test_link_into_usr(void **state)
{
    (void)state;
    assert_true(ef_host_link_into_usr("usr/lib"));
    assert_true(ef_host_link_into_usr("/usr/lib64"));
    assert_false(ef_host_link_into_usr("usr/"));
    assert_false(ef_host_link_into_usr("usr/../etc"));
    assert_false(ef_host_link_into_usr("/etc"));
    assert_false(ef_host_link_into_usr("/usrx/lib"));
    assert_false(ef_host_link_into_usr("/var/lib"));
}

/* The probe on the real host agrees with what lstat says. */
static void test_probe_host(void **state)
{
    (void)state;
    struct ef_host_facts facts;
    ef_error err;
    assert_int_equal(ef_host_facts_probe(&facts, &err), 0);
    for (size_t i = 0; i < facts.n_toplevel; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/%s", facts.toplevel[i].name);
        struct stat st;
        assert_int_equal(lstat(path, &st), 0);
        if (facts.toplevel[i].kind == EF_HOST_DIR)
            assert_true(S_ISDIR(st.st_mode));
        else
            assert_true(S_ISLNK(st.st_mode) && ef_host_link_into_usr(facts.toplevel[i].link));
    }
    for (size_t i = 0; i < facts.n_etc; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/etc/%s", facts.etc[i].name);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(S_ISDIR(st.st_mode), facts.etc[i].is_dir);
    }
    /* /dev/null exists on every Linux host this runs on. */
    assert_true(facts.n_dev > 0);
    assert_string_equal(facts.dev[0], "null");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merged_usr),    cmocka_unit_test(test_split_usr),
        cmocka_unit_test(test_etc),           cmocka_unit_test(test_code_and_runtime),
        cmocka_unit_test(test_tmp_proc_dev),  cmocka_unit_test(test_ends_read_only),
        cmocka_unit_test(test_bad_config),    cmocka_unit_test(test_sh_is_bash),
        cmocka_unit_test(test_link_into_usr), cmocka_unit_test(test_probe_host),
        cmocka_unit_test(test_proc_masks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
