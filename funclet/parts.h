/* The host side of a container, made before its clone: its directory in run/containers (0700)
 * with the listening runner socket, the shared mount point mnt/ (hostmnt.h) and the rootfs/
 * mount point, and its cgroups with the cold limits.
 *
 * One set is made ahead, on a thread of libuv's pool, whenever none is ready (at start and after
 * each create has taken it), so that container.create starts with the clone and funclet's loop
 * is free for the child's first packet rather than busy with directories on the data dir's file
 * system and cgroup v1 mkdirs (together about half a millisecond on the reference machine).
 * The set made ahead lives under a hidden name, the container id with '.' for its leading 'c'
 * (".0123456789ab" for "c0123456789ab"), so that run/containers lists containers only; it takes
 * its container's name by one rename(2) when a create takes it. Its cgroups carry the id from
 * the start. A funclet that dies leaves it to the next start's orphan removal, like a container;
 * one that stops removes it. */
#pragma once

#include <stdbool.h>

#include "common/error.h"
#include "funclet/cgroup.h"
#include "funclet/validate.h"

struct ef_funclet;

/* The first character of the hidden name of a set made ahead. */
#define EF_PARTS_AHEAD_MARK '.'

struct ef_container_parts {
    char id[EF_CONTAINER_ID_LEN + 1];
    char *dir;                /* <containers_dir>/<name> */
    char *runner_socket;      /* <dir>/runner.sock */
    char *mnt_dir;            /* <dir>/mnt */
    char *rootfs;             /* <dir>/rootfs */
    int runner_fd;            /* the listening runner socket; -1 once taken */
    struct ef_cgroup *cgroup; /* NULL when made without */
};

/* Makes the parts of container `id` in <containers_dir>/<name> (name: the id, or its hidden
 * name; neither may point into *p), with its cgroups from `m` with `limits` unless `m` is
 * NULL. Safe on any thread. On failure nothing of them is left, except a directory of that
 * name that existed before (not ours: left alone). */
int ef_container_parts_make(const char *containers_dir, const char *name, const char *id,
                            struct ef_cgroup_manager *m, const struct ef_cgroup_limits *limits,
                            struct ef_container_parts *p, ef_error *err);

/* Removes what exists of the parts (cgroups, mounts, socket, directory) and frees them. */
int ef_container_parts_remove(struct ef_container_parts *p, ef_error *err);

/* Frees the memory and the fd of the parts, leaving them on the system. */
void ef_container_parts_free(struct ef_container_parts *p);

/* The set made ahead. Queues the making of one unless one is ready or under way, or funclet is
 * shutting down. */
void ef_parts_prepare(struct ef_funclet *f);

/* Takes the set made ahead, renamed to its container's name, into *p; false when none is
 * ready (or it could not be renamed: then it is removed). */
bool ef_parts_take(struct ef_funclet *f, struct ef_container_parts *p);

/* Whether `id` is the id of the set made ahead or under way. */
bool ef_parts_has_id(const struct ef_funclet *f, const char *id);

/* At shutdown: removes the ready set; one under way is removed when it is made. */
void ef_parts_discard(struct ef_funclet *f);

/* The container id of a hidden name of a set made ahead ("." + 12 hex digits) into `id`; false
 * for any other name. */
bool ef_parts_ahead_id(const char *name, char id[EF_CONTAINER_ID_LEN + 1]);
