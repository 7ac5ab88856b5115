#include "fake_cgroupfs.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "funclet/cgroup_parse.h"

static char root[PATH_MAX];

static void join(char *buf, size_t len, const char *dir, const char *name)
{
    snprintf(buf, len, "%s/%s", dir, name);
}

int fake_cgroupfs_set(const char *dir, const char *name, const char *value)
{
    char path[PATH_MAX];
    join(path, sizeof(path), dir, name);
    FILE *f = fopen(path, "we");
    if (!f)
        return -errno;
    fputs(value, f);
    return fclose(f) == 0 ? 0 : -EIO;
}

const char *fake_cgroupfs_read(const char *dir, const char *name)
{
    static char buf[4096];
    char path[PATH_MAX];
    join(path, sizeof(path), dir, name);
    buf[0] = '\0';
    FILE *f = fopen(path, "re");
    if (!f)
        return buf;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && buf[n - 1] == '\n')
        buf[--n] = '\0';
    return buf;
}

/* The interface files of a new cgroup: the core ones, and those of each controller the parent
 * delegates. */
static int populate(const char *dir, const char *controllers, bool is_root)
{
    int r = fake_cgroupfs_set(dir, "cgroup.procs", "");
    if (!r)
        r = fake_cgroupfs_set(dir, "cgroup.controllers", controllers);
    if (!r)
        r = fake_cgroupfs_set(dir, "cgroup.subtree_control", "");
    if (is_root)
        return r;
    if (!r)
        r = fake_cgroupfs_set(dir, "cgroup.events", "populated 0\nfrozen 0\n");
    if (!r)
        r = fake_cgroupfs_set(dir, "cgroup.freeze", "0");
    if (!r)
        r = fake_cgroupfs_set(dir, "cgroup.kill", "");
    if (!r && ef_cgroup_list_has(controllers, "memory")) {
        r = fake_cgroupfs_set(dir, "memory.max", "max");
        if (!r)
            r = fake_cgroupfs_set(dir, "memory.swap.max", "max");
        if (!r)
            r = fake_cgroupfs_set(dir, "memory.events",
                                  "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n");
    }
    if (!r && ef_cgroup_list_has(controllers, "pids"))
        r = fake_cgroupfs_set(dir, "pids.max", "max");
    if (!r && ef_cgroup_list_has(controllers, "cpu")) {
        r = fake_cgroupfs_set(dir, "cpu.max", "max 100000");
        if (!r)
            r = fake_cgroupfs_set(dir, "cpu.weight", "100");
    }
    return r;
}

int fake_cgroupfs_init(const char *dir, const char *controllers, const char *own,
                       const char *own_procs)
{
    snprintf(root, sizeof(root), "%s", dir);
    int r = populate(root, controllers, true);
    if (r < 0)
        return r;
    fake_cgroupfs_set(root, "cgroup.subtree_control", controllers);
    /* Every cgroup on the way to `own` delegates all controllers, as systemd's Delegate=yes
     * does for a service. */
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s", root);
    char rel[PATH_MAX];
    snprintf(rel, sizeof(rel), "%s", own);
    for (char *save = NULL, *tok = strtok_r(rel, "/", &save); tok;
         tok = strtok_r(NULL, "/", &save)) {
        size_t len = strlen(path);
        snprintf(path + len, sizeof(path) - len, "/%s", tok);
        if (mkdir(path, 0755) < 0 || populate(path, controllers, false) < 0)
            return -errno;
        fake_cgroupfs_set(path, "cgroup.subtree_control", controllers);
    }
    fake_cgroupfs_set(path, "cgroup.subtree_control", "");
    return fake_cgroupfs_set(path, "cgroup.procs", own_procs);
}

static void parent_of(const char *path, char *buf, size_t len)
{
    snprintf(buf, len, "%s", path);
    char *slash = strrchr(buf, '/');
    if (slash)
        *slash = '\0';
}

static int fake_mkdir(const char *path, void *user)
{
    (void)user;
    char parent[PATH_MAX];
    parent_of(path, parent, sizeof(parent));
    if (mkdir(path, 0755) < 0)
        return -errno;
    char controllers[512];
    snprintf(controllers, sizeof(controllers), "%s",
             fake_cgroupfs_read(parent, "cgroup.subtree_control"));
    return populate(path, controllers, false);
}

static bool has_child_dirs(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return false;
    struct dirent *de;
    bool found = false;
    while ((de = readdir(d)) && !found)
        found = de->d_type == DT_DIR && strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
    closedir(d);
    return found;
}

static int fake_rmdir(const char *path, void *user)
{
    (void)user;
    struct stat st;
    if (stat(path, &st) < 0)
        return -errno;
    if (fake_cgroupfs_read(path, "cgroup.procs")[0] || has_child_dirs(path))
        return -EBUSY;
    ef_error e;
    return ef_rm_rf(path, &e);
}

/* Removes `pid` from every cgroup.procs below `dir`. */
static void unlist(const char *dir, const char *pid)
{
    char procs[4096], out[4096] = "";
    snprintf(procs, sizeof(procs), "%s", fake_cgroupfs_read(dir, "cgroup.procs"));
    bool changed = false;
    for (char *save = NULL, *tok = strtok_r(procs, "\n", &save); tok;
         tok = strtok_r(NULL, "\n", &save)) {
        if (strcmp(tok, pid) == 0) {
            changed = true;
            continue;
        }
        strncat(out, tok, sizeof(out) - strlen(out) - 2);
        strcat(out, "\n");
    }
    if (changed)
        fake_cgroupfs_set(dir, "cgroup.procs", out);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_type != DT_DIR || !strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char sub[PATH_MAX];
        join(sub, sizeof(sub), dir, de->d_name);
        unlist(sub, pid);
    }
    closedir(d);
}

static int write_procs(const char *dir, const char *data)
{
    char *end;
    long pid = strtol(data, &end, 10);
    if (end == data || pid <= 0 || (*end && *end != '\n'))
        return -EINVAL;
    char p[32];
    snprintf(p, sizeof(p), "%ld", pid);
    unlist(root, p);
    char procs[4096];
    snprintf(procs, sizeof(procs), "%s", fake_cgroupfs_read(dir, "cgroup.procs"));
    size_t len = strlen(procs);
    snprintf(procs + len, sizeof(procs) - len, "%s%s\n", len ? "\n" : "", p);
    fake_cgroupfs_set(dir, "cgroup.events", "populated 1\nfrozen 0\n");
    return fake_cgroupfs_set(dir, "cgroup.procs", procs);
}

static int write_subtree_control(const char *dir, const char *data)
{
    if (strcmp(dir, root) != 0 && fake_cgroupfs_read(dir, "cgroup.procs")[0])
        return -EBUSY;
    char avail[512], cur[512], buf[512];
    snprintf(avail, sizeof(avail), "%s", fake_cgroupfs_read(dir, "cgroup.controllers"));
    snprintf(cur, sizeof(cur), "%s", fake_cgroupfs_read(dir, "cgroup.subtree_control"));
    snprintf(buf, sizeof(buf), "%s", data);
    for (char *save = NULL, *tok = strtok_r(buf, " ", &save); tok;
         tok = strtok_r(NULL, " ", &save)) {
        if ((tok[0] != '+' && tok[0] != '-') || !ef_cgroup_list_has(avail, tok + 1))
            return -EINVAL;
        if (tok[0] == '+' && !ef_cgroup_list_has(cur, tok + 1)) {
            size_t len = strlen(cur);
            snprintf(cur + len, sizeof(cur) - len, "%s%s", len ? " " : "", tok + 1);
        }
    }
    return fake_cgroupfs_set(dir, "cgroup.subtree_control", cur);
}

static int fake_write(const char *path, const char *data, void *user)
{
    (void)user;
    struct stat st;
    if (stat(path, &st) < 0)
        return -errno;
    char dir[PATH_MAX];
    parent_of(path, dir, sizeof(dir));
    const char *name = strrchr(path, '/') + 1;
    if (strcmp(name, "cgroup.procs") == 0)
        return write_procs(dir, data);
    if (strcmp(name, "cgroup.subtree_control") == 0)
        return write_subtree_control(dir, data);
    if (strcmp(name, "cgroup.kill") == 0) {
        if (strcmp(data, "1") != 0)
            return -EINVAL;
        char procs[4096];
        snprintf(procs, sizeof(procs), "%s", fake_cgroupfs_read(dir, "cgroup.procs"));
        for (char *save = NULL, *tok = strtok_r(procs, "\n", &save); tok;
             tok = strtok_r(NULL, "\n", &save))
            kill((pid_t)atoi(tok), SIGKILL);
        fake_cgroupfs_set(dir, "cgroup.events", "populated 0\nfrozen 0\n");
        return fake_cgroupfs_set(dir, "cgroup.procs", "");
    }
    if (strcmp(name, "cgroup.freeze") == 0) {
        if (strcmp(data, "0") != 0 && strcmp(data, "1") != 0)
            return -EINVAL;
        bool populated = fake_cgroupfs_read(dir, "cgroup.procs")[0] != '\0';
        char events[64];
        snprintf(events, sizeof(events), "populated %d\nfrozen %s\n", populated, data);
        fake_cgroupfs_set(dir, "cgroup.events", events);
    }
    return fake_cgroupfs_set(dir, name, data);
}

const struct ef_cgroup_fs *fake_cgroupfs_hooks(void)
{
    static const struct ef_cgroup_fs hooks = {
        .mkdir = fake_mkdir, .rmdir = fake_rmdir, .write = fake_write};
    return &hooks;
}
