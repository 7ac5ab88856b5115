#include "funclet/parts.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "funclet/container.h"
#include "funclet/funclet.h"
#include "funclet/hostmnt.h"

/* Binds and listens on the runner's socket before the container exists, so that the controller
 * can connect as soon as the container is handed out; the runner inherits the listening fd. */
static int listen_runner_socket(const char *path, int *ret_fd, ef_error *err)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(addr.sun_path))
        return ef_error_set(err, -ENAMETOOLONG, "socket path %s is longer than %zu bytes", path,
                            sizeof(addr.sun_path) - 1);
    strcpy(addr.sun_path, path);
    cleanup_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ef_error_set_errno(err, -errno, "socket");
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
        return ef_error_set_errno(err, -errno, "bind %s", path);
    /* The directory is 0700, so nobody can reach the socket before the chmod. */
    if (chmod(path, 0600) < 0)
        return ef_error_set_errno(err, -errno, "chmod %s", path);
    if (listen(fd, 128) < 0)
        return ef_error_set_errno(err, -errno, "listen %s", path);
    *ret_fd = steal_fd(&fd);
    return 0;
}

/* The paths of the parts in <containers_dir>/<name>. */
static int set_paths(struct ef_container_parts *p, const char *containers_dir, const char *name)
{
    char *dir = ef_path_join(containers_dir, name);
    char *sock = dir ? ef_path_join(dir, "runner.sock") : NULL;
    char *mnt = dir ? ef_path_join(dir, "mnt") : NULL;
    char *rootfs = dir ? ef_path_join(dir, "rootfs") : NULL;
    if (!dir || !sock || !mnt || !rootfs) {
        free(dir);
        free(sock);
        free(mnt);
        free(rootfs);
        return -ENOMEM;
    }
    free(p->dir);
    free(p->runner_socket);
    free(p->mnt_dir);
    free(p->rootfs);
    p->dir = dir;
    p->runner_socket = sock;
    p->mnt_dir = mnt;
    p->rootfs = rootfs;
    return 0;
}

void ef_container_parts_free(struct ef_container_parts *p)
{
    if (p->runner_fd >= 0)
        close(p->runner_fd);
    p->runner_fd = -1;
    ef_cgroup_free(p->cgroup);
    p->cgroup = NULL;
    free(p->dir);
    free(p->runner_socket);
    free(p->mnt_dir);
    free(p->rootfs);
    p->dir = p->runner_socket = p->mnt_dir = p->rootfs = NULL;
}

int ef_container_parts_remove(struct ef_container_parts *p, ef_error *err)
{
    int ret = 0;
    ef_error e;
    if (p->runner_fd >= 0)
        close(p->runner_fd);
    p->runner_fd = -1;
    if (p->cgroup) {
        int r = ef_cgroup_destroy(p->cgroup, &e);
        if (r < 0 && ret == 0)
            ret = ef_error_set(err, r, "%s", e.msg);
    }
    if (p->mnt_dir) {
        int r = ef_hostmnt_remove(p->mnt_dir, &e);
        if (r < 0 && ret == 0)
            ret = ef_error_set(err, r, "%s", e.msg);
    }
    if (p->dir) {
        int r = ef_rm_rf(p->dir, &e);
        if (r < 0 && ret == 0)
            ret = ef_error_set(err, r, "%s", e.msg);
    }
    ef_container_parts_free(p);
    return ret;
}

int ef_container_parts_make(const char *containers_dir, const char *name, const char *id,
                            struct ef_cgroup_manager *m, const struct ef_cgroup_limits *limits,
                            struct ef_container_parts *p, ef_error *err)
{
    memset(p, 0, sizeof(*p));
    p->runner_fd = -1;
    snprintf(p->id, sizeof(p->id), "%s", id);
    if (set_paths(p, containers_dir, name) < 0)
        return ef_error_set(err, -ENOMEM, "out of memory");
    if (mkdir(p->dir, 0700) < 0) {
        int r = ef_error_set_errno(err, -errno, "mkdir %s", p->dir);
        /* Not ours (an id collision with a leftover): leave it and its contents alone. */
        ef_container_parts_free(p);
        return r;
    }
    int r = listen_runner_socket(p->runner_socket, &p->runner_fd, err);
    if (r == 0) {
        r = ef_hostmnt_create(p->mnt_dir, err);
        /* Not created: nothing of it to remove. */
        if (r < 0) {
            free(p->mnt_dir);
            p->mnt_dir = NULL;
        }
    }
    if (r == 0 && mkdir(p->rootfs, 0755) < 0)
        r = ef_error_set_errno(err, -errno, "mkdir %s", p->rootfs);
    if (r == 0 && m)
        r = ef_cgroup_create(m, id, limits, &p->cgroup, err);
    if (r < 0) {
        ef_error undo;
        if (ef_container_parts_remove(p, &undo) < 0)
            ef_error("container %s: cleanup after a failed create: %s", id, undo.msg);
    }
    return r;
}

bool ef_parts_ahead_id(const char *name, char id[EF_CONTAINER_ID_LEN + 1])
{
    if (name[0] != EF_PARTS_AHEAD_MARK || strlen(name) != EF_CONTAINER_ID_LEN)
        return false;
    snprintf(id, EF_CONTAINER_ID_LEN + 1, "c%s", name + 1);
    ef_error e;
    return ef_validate_container_id(id, &e) == 0;
}

/* ---- the set made ahead -------------------------------------------------------------------- */

struct ef_parts_ahead {
    uv_work_t work;
    struct ef_funclet *f;
    struct ef_cgroup_limits limits;
    char id[EF_CONTAINER_ID_LEN + 1];   /* written on the loop only */
    char name[EF_CONTAINER_ID_LEN + 1]; /* the hidden name */
    struct ef_container_parts parts;
    int result; /* of the making, on the pool thread */
    ef_error err;
    bool busy;  /* being made */
    bool ready; /* made: parts are there to take */
};

static void make_ahead(uv_work_t *w)
{
    struct ef_parts_ahead *a = w->data;
    a->result = ef_container_parts_make(a->f->cfg.containers_dir, a->name, a->id, a->f->cgroups,
                                        &a->limits, &a->parts, &a->err);
}

static void made_ahead(uv_work_t *w, int status)
{
    struct ef_parts_ahead *a = w->data;
    struct ef_funclet *f = a->f;
    a->busy = false;
    if (status == 0 && a->result == 0)
        a->ready = true;
    else if (status == 0)
        /* The next create makes its parts itself and queues another try. */
        ef_warn("cannot make a container's parts ahead: %s", a->err.msg);
    if (f->shutting_down)
        ef_parts_discard(f);
}

void ef_parts_prepare(struct ef_funclet *f)
{
    if (f->shutting_down)
        return;
    struct ef_parts_ahead *a = f->parts_ahead;
    if (!a) {
        if (!(a = calloc(1, sizeof(*a))))
            return;
        a->f = f;
        a->work.data = a;
        a->parts.runner_fd = -1;
        f->parts_ahead = a;
    }
    if (a->busy || a->ready)
        return;
    ef_error e;
    char id[EF_CONTAINER_ID_LEN + 1];
    if (ef_container_new_id(f, id, &e) < 0)
        return;
    memcpy(a->id, id, sizeof(a->id));
    a->name[0] = EF_PARTS_AHEAD_MARK;
    memcpy(a->name + 1, a->id + 1, EF_CONTAINER_ID_LEN);
    a->limits = ef_container_cold_limits(f);
    a->result = 0;
    if (uv_queue_work(f->loop, &a->work, make_ahead, made_ahead) == 0)
        a->busy = true;
}

bool ef_parts_take(struct ef_funclet *f, struct ef_container_parts *p)
{
    struct ef_parts_ahead *a = f->parts_ahead;
    if (!a || !a->ready)
        return false;
    a->ready = false;
    *p = a->parts;
    memset(&a->parts, 0, sizeof(a->parts));
    a->parts.runner_fd = -1;
    /* The new paths first, so that a failure leaves the set as it is, to be removed. */
    struct ef_container_parts renamed = {.runner_fd = -1};
    ef_error e;
    if (set_paths(&renamed, f->cfg.containers_dir, p->id) < 0) {
        ef_error_set(&e, -ENOMEM, "out of memory");
    } else if (renameat2(AT_FDCWD, p->dir, AT_FDCWD, renamed.dir, RENAME_NOREPLACE) < 0) {
        /* A directory of that name that is not ours stays as it is. */
        ef_error_set_errno(&e, -errno, "rename %s to %s", p->dir, renamed.dir);
        ef_container_parts_free(&renamed);
    } else {
        free(p->dir);
        free(p->runner_socket);
        free(p->mnt_dir);
        free(p->rootfs);
        p->dir = renamed.dir;
        p->runner_socket = renamed.runner_socket;
        p->mnt_dir = renamed.mnt_dir;
        p->rootfs = renamed.rootfs;
        return true;
    }
    ef_warn("container %s: cannot use the parts made ahead: %s", p->id, e.msg);
    ef_error undo;
    if (ef_container_parts_remove(p, &undo) < 0)
        ef_error("container %s: %s", p->id, undo.msg);
    return false;
}

bool ef_parts_has_id(const struct ef_funclet *f, const char *id)
{
    const struct ef_parts_ahead *a = f->parts_ahead;
    return a && (a->busy || a->ready) && strcmp(a->id, id) == 0;
}

void ef_parts_discard(struct ef_funclet *f)
{
    struct ef_parts_ahead *a = f->parts_ahead;
    if (!a || a->busy)
        return;
    if (a->ready) {
        a->ready = false;
        ef_error e;
        if (ef_container_parts_remove(&a->parts, &e) < 0)
            ef_error("container parts made ahead (%s): %s", a->parts.id, e.msg);
    }
    free(a);
    f->parts_ahead = NULL;
}
