#include "funclet/mount_plan.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"

const char *const ef_sandbox_etc_files[] = {"hosts",     "resolv.conf", "nsswitch.conf",
                                            "localtime", "ld.so.cache", NULL};
const char *const ef_sandbox_etc_dirs[] = {"ssl", "ca-certificates", "alternatives", NULL};
const char *const ef_sandbox_toplevel_dirs[] = {"bin",   "sbin",   "lib", "lib32",
                                                "lib64", "libx32", NULL};
/* The device nodes bound from the host into the container's /dev. */
const char *const ef_sandbox_dev_nodes[] = {"null",    "zero", "full", "random",
                                            "urandom", "tty",  NULL};

/* What the kernel shows in /proc about the host (its memory, keys, timers, hardware) that a
 * function has no use for. */
const char *const ef_sandbox_masked_paths[] = {"/proc/acpi",          "/proc/asound",
                                               "/proc/kcore",         "/proc/keys",
                                               "/proc/latency_stats", "/proc/timer_list",
                                               "/proc/timer_stats",   "/proc/sched_debug",
                                               "/proc/scsi",          NULL};
/* Kernel settings under /proc that are writable by root and not namespaced. */
const char *const ef_sandbox_readonly_paths[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger", NULL};

/* Read-only and without set-uid or device files: how every host tree is shown to user code. */
#define RO_BIND (MS_RDONLY | MS_NOSUID | MS_NODEV)

int ef_host_link_into_usr(const char *link)
{
    const char *rest = NULL;
    if (strncmp(link, "usr/", 4) == 0)
        rest = link + 4;
    else if (strncmp(link, "/usr/", 5) == 0)
        rest = link + 5;
    return rest && *rest && !strstr(link, "..");
}

int ef_host_facts_probe(struct ef_host_facts *ret, ef_error *err)
{
    struct ef_host_facts f;
    memset(&f, 0, sizeof(f));

    for (size_t i = 0; ef_sandbox_toplevel_dirs[i]; i++) {
        const char *name = ef_sandbox_toplevel_dirs[i];
        char path[64];
        snprintf(path, sizeof(path), "/%s", name);
        struct stat st;
        enum ef_host_dir_kind kind = EF_HOST_ABSENT;
        char link[64] = "";
        if (lstat(path, &st) == 0) {
            if (S_ISDIR(st.st_mode)) {
                kind = EF_HOST_DIR;
            } else if (S_ISLNK(st.st_mode)) {
                ssize_t n = readlink(path, link, sizeof(link) - 1);
                if (n > 0 && (size_t)n < sizeof(link) - 1) {
                    link[n] = '\0';
                    if (ef_host_link_into_usr(link))
                        kind = EF_HOST_SYMLINK;
                }
            }
        } else if (errno != ENOENT) {
            return ef_error_set_errno(err, -errno, "cannot inspect %s", path);
        }
        if (kind == EF_HOST_ABSENT)
            continue;
        f.toplevel[f.n_toplevel].name = name;
        f.toplevel[f.n_toplevel].kind = kind;
        memcpy(f.toplevel[f.n_toplevel].link, link, sizeof(link));
        f.n_toplevel++;
    }

    /* stat (not lstat): /etc/localtime and /etc/resolv.conf are often symlinks, and the bind
     * mount follows them; a dangling one is simply left out. */
    for (int pass = 0; pass < 2; pass++) {
        const char *const *names = pass == 0 ? ef_sandbox_etc_files : ef_sandbox_etc_dirs;
        for (size_t i = 0; names[i]; i++) {
            char path[PATH_MAX];
            snprintf(path, sizeof(path), "/etc/%s", names[i]);
            struct stat st;
            if (stat(path, &st) < 0)
                continue;
            bool is_dir = S_ISDIR(st.st_mode);
            if (pass == 0 ? !S_ISREG(st.st_mode) : !is_dir)
                continue;
            f.etc[f.n_etc].name = names[i];
            f.etc[f.n_etc].is_dir = is_dir;
            f.n_etc++;
        }
    }

    /* Lambda's images are Amazon Linux, where /bin/sh is bash, and custom runtimes (the AWS
     * tutorial's bootstrap among them) rely on it with `#!/bin/sh` and bash syntax. Where the
     * host's sh is another shell below /usr, containers see bash in its place. */
    char sh[PATH_MAX];
    if (realpath("/bin/sh", sh) && strncmp(sh, "/usr/", 5) == 0 &&
        strlen(sh) < sizeof(f.sh_target) && strcmp(sh, "/usr/bin/bash") != 0 &&
        access("/usr/bin/bash", X_OK) == 0)
        snprintf(f.sh_target, sizeof(f.sh_target), "%s", sh);

    for (size_t i = 0; ef_sandbox_dev_nodes[i] && f.n_dev < EF_HOST_DEV_MAX; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/dev/%s", ef_sandbox_dev_nodes[i]);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISCHR(st.st_mode))
            f.dev[f.n_dev++] = ef_sandbox_dev_nodes[i];
    }
    *ret = f;
    return 0;
}

static struct ef_mount_entry *plan_add(struct ef_mount_plan *plan, enum ef_mount_kind kind,
                                       const char *source, const char *target, unsigned long flags,
                                       const char *data)
{
    if (plan->n == plan->cap) {
        size_t cap = plan->cap ? plan->cap * 2 : 32;
        struct ef_mount_entry *e = realloc(plan->entries, cap * sizeof(*e));
        if (!e)
            return NULL;
        plan->entries = e;
        plan->cap = cap;
    }
    struct ef_mount_entry *e = &plan->entries[plan->n];
    memset(e, 0, sizeof(*e));
    e->kind = kind;
    e->flags = flags;
    e->source = source ? strdup(source) : NULL;
    e->target = strdup(target);
    e->data = data ? strdup(data) : NULL;
    if ((source && !e->source) || !e->target || (data && !e->data)) {
        free(e->source);
        free(e->target);
        free(e->data);
        return NULL;
    }
    plan->n++;
    return e;
}

/* The generated /etc/passwd and /etc/group: root and the sandbox user, whose home is /tmp (the
 * only writable directory). */
static int users_files(const struct ef_sandbox_config *cfg, char **ret_passwd, char **ret_group)
{
    char *passwd = NULL, *group = NULL;
    if (asprintf(&passwd,
                 "root:x:0:0:root:/root:/usr/sbin/nologin\n"
                 "sbx_user:x:%u:%u:sandbox user:/tmp:/usr/sbin/nologin\n",
                 (unsigned)cfg->sandbox_uid, (unsigned)cfg->sandbox_gid) < 0)
        return -ENOMEM;
    if (asprintf(&group, "root:x:0:\nsbx_user:x:%u:\n", (unsigned)cfg->sandbox_gid) < 0) {
        free(passwd);
        return -ENOMEM;
    }
    *ret_passwd = passwd;
    *ret_group = group;
    return 0;
}

static int build(const struct ef_sandbox_config *cfg, const struct ef_host_facts *facts,
                 struct ef_mount_plan *plan)
{
    char buf[PATH_MAX];
    struct ef_mount_entry *e;

#define ADD(...)                                                                                   \
    do {                                                                                           \
        if (!(e = plan_add(plan, __VA_ARGS__)))                                                    \
            return -ENOMEM;                                                                        \
    } while (0)

    /* The host's programs and libraries. */
    ADD(EF_MOUNT_BIND, "/usr", "/usr", RO_BIND, NULL);
    e->source_is_dir = true;
    for (size_t i = 0; i < facts->n_toplevel; i++) {
        snprintf(buf, sizeof(buf), "/%s", facts->toplevel[i].name);
        if (facts->toplevel[i].kind == EF_HOST_SYMLINK) {
            ADD(EF_MOUNT_SYMLINK, facts->toplevel[i].link, buf, 0, NULL);
        } else if (facts->toplevel[i].kind == EF_HOST_DIR) {
            ADD(EF_MOUNT_BIND, buf, buf, RO_BIND, NULL);
            e->source_is_dir = true;
        }
    }

    if (facts->sh_target[0]) {
        ADD(EF_MOUNT_BIND, "/usr/bin/bash", facts->sh_target, RO_BIND, NULL);
        e->source_is_dir = false;
    }

    /* A minimal /etc: name resolution, time zone, the loader cache and CA certificates. */
    for (size_t i = 0; i < facts->n_etc; i++) {
        snprintf(buf, sizeof(buf), "/etc/%s", facts->etc[i].name);
        ADD(EF_MOUNT_BIND, buf, buf, RO_BIND | MS_NOEXEC, NULL);
        e->source_is_dir = facts->etc[i].is_dir;
    }
    cleanup_free char *passwd = NULL;
    cleanup_free char *group = NULL;
    int r = users_files(cfg, &passwd, &group);
    if (r < 0)
        return r;
    ADD(EF_MOUNT_FILE, NULL, "/etc/passwd", 0, passwd);
    e->mode = 0644;
    ADD(EF_MOUNT_FILE, NULL, "/etc/group", 0, group);
    e->mode = 0644;

    /* The runtimes, read-only. The function's code and the writable /tmp come later, through
     * the shared placeholders: funclet mounts them on the host side of the container's mnt/ and
     * they propagate here. The placeholders themselves are read-only. */
    ADD(EF_MOUNT_BIND, cfg->runtime_dir, "/var/runtime", RO_BIND, NULL);
    e->source_is_dir = true;
    snprintf(buf, sizeof(buf), "%s/task", cfg->shared_dir);
    ADD(EF_MOUNT_BIND, buf, "/var/task", RO_BIND, NULL);
    e->source_is_dir = true;
    snprintf(buf, sizeof(buf), "%s/tmp", cfg->shared_dir);
    ADD(EF_MOUNT_BIND, buf, "/tmp", RO_BIND, NULL);
    e->source_is_dir = true;

    ADD(EF_MOUNT_PROC, NULL, "/proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    for (size_t i = 0; ef_sandbox_masked_paths[i]; i++)
        ADD(EF_MOUNT_MASK, NULL, ef_sandbox_masked_paths[i], 0, NULL);
    for (size_t i = 0; ef_sandbox_readonly_paths[i]; i++)
        ADD(EF_MOUNT_RDONLY, NULL, ef_sandbox_readonly_paths[i],
            MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);

    /* A minimal /dev: the few harmless device nodes of the host (facts->dev), the fd links and
     * shm/, made once by funclet (ef_hostmnt_make_dev; a container cannot mknod) and bound
     * read-only; without nodev, since the nodes are opened through it. Then shared memory. */
    ADD(EF_MOUNT_BIND, cfg->dev_dir, "/dev", MS_RDONLY | MS_NOSUID | MS_NOEXEC, NULL);
    e->source_is_dir = true;
    snprintf(buf, sizeof(buf), "%s/shm", cfg->shared_dir);
    ADD(EF_MOUNT_BIND, buf, "/dev/shm", RO_BIND | MS_NOEXEC, NULL);
    e->source_is_dir = true;

    /* Last: nothing may be added to the root afterwards. */
    ADD(EF_MOUNT_REMOUNT, NULL, "/", MS_RDONLY | MS_NOSUID | MS_NODEV, NULL);
#undef ADD
    return 0;
}

int ef_mount_plan_build(const struct ef_sandbox_config *cfg, const struct ef_host_facts *facts,
                        struct ef_mount_plan *ret, ef_error *err)
{
    struct ef_mount_plan plan = {0};
    if (!cfg->shared_dir || cfg->shared_dir[0] != '/' || !cfg->runtime_dir ||
        cfg->runtime_dir[0] != '/' || !cfg->dev_dir || cfg->dev_dir[0] != '/')
        return ef_error_set(err, -EINVAL,
                            "the shared, runtime and /dev directories must be absolute paths");
    if (strlen(cfg->shared_dir) + sizeof("/task") > PATH_MAX)
        return ef_error_set(err, -ENAMETOOLONG, "the shared directory %s is too long",
                            cfg->shared_dir);
    int r = build(cfg, facts, &plan);
    if (r < 0) {
        ef_mount_plan_free(&plan);
        return ef_error_set_errno(err, r, "cannot build the mount plan");
    }
    *ret = plan;
    return 0;
}

void ef_mount_plan_free(struct ef_mount_plan *plan)
{
    for (size_t i = 0; i < plan->n; i++) {
        free(plan->entries[i].source);
        free(plan->entries[i].target);
        free(plan->entries[i].data);
    }
    free(plan->entries);
    plan->entries = NULL;
    plan->n = plan->cap = 0;
}

const struct ef_mount_entry *ef_mount_plan_find(const struct ef_mount_plan *plan,
                                                const char *target)
{
    for (size_t i = 0; i < plan->n; i++) {
        if (strcmp(plan->entries[i].target, target) == 0)
            return &plan->entries[i];
    }
    return NULL;
}
