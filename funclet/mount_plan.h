/* The container's root file system as data: the list of mounts, directories, symlinks and
 * generated files that sandbox.c applies, in order, inside the child's mount namespace.
 *
 * Building the plan is pure (no system calls): the facts about the host it needs (which of /bin,
 * /lib, … are symlinks into /usr, which /etc files exist) are gathered separately by
 * ef_host_facts_probe(), so the plan is unit-tested on literal facts without root. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"

enum ef_mount_kind {
    EF_MOUNT_BIND,    /* bind `source` on `target`, then remount with `flags` */
    EF_MOUNT_TMPFS,   /* a new tmpfs with options `data` */
    EF_MOUNT_PROC,    /* a new proc for the container's pid namespace */
    EF_MOUNT_SYMLINK, /* `target` -> `source` */
    EF_MOUNT_FILE,    /* a file with contents `data` and mode `mode` */
    EF_MOUNT_REMOUNT, /* change the per-mount `flags` of the mount at `target` */
    EF_MOUNT_MASK,    /* hide `target` if it exists: /dev/null over a file, an empty read-only
                       * tmpfs over a directory */
    EF_MOUNT_RDONLY,  /* bind `target` (if it exists) onto itself and remount it with `flags` */
};

struct ef_mount_entry {
    enum ef_mount_kind kind;
    char *source;        /* host path (BIND) or link text (SYMLINK); NULL otherwise */
    char *target;        /* absolute path inside the container */
    unsigned long flags; /* MS_* flags of the mount (for BIND: applied by the remount) */
    char *data;          /* tmpfs options (TMPFS) or file contents (FILE); may be NULL */
    bool source_is_dir;  /* BIND: the mount point to create is a directory, else a file */
    mode_t mode;         /* FILE: permission bits */
};

struct ef_mount_plan {
    struct ef_mount_entry *entries;
    size_t n;
    size_t cap;
};

/* One top-level directory of the host's root that programs expect (bin, lib, lib64, …). */
enum ef_host_dir_kind {
    EF_HOST_ABSENT,
    EF_HOST_DIR,     /* a real directory: bound read-only */
    EF_HOST_SYMLINK, /* a symlink into /usr (merged /usr): recreated as the same symlink */
};

#define EF_HOST_TOPLEVEL_MAX 8
#define EF_HOST_ETC_MAX      16
#define EF_HOST_DEV_MAX      8

struct ef_host_facts {
    struct {
        const char *name; /* "bin", "lib64", … */
        enum ef_host_dir_kind kind;
        char link[64]; /* EF_HOST_SYMLINK: the link text, e.g. "usr/lib64" */
    } toplevel[EF_HOST_TOPLEVEL_MAX];
    size_t n_toplevel;
    struct {
        const char *name; /* "hosts", "ssl", … (below /etc) */
        bool is_dir;
    } etc[EF_HOST_ETC_MAX];
    size_t n_etc;
    const char *dev[EF_HOST_DEV_MAX]; /* character devices present below /dev: "null", … */
    size_t n_dev;
    /* Where the host's /bin/sh really lives when it is not bash (Debian: "/usr/bin/dash"), and
     * bash exists at /usr/bin/bash; "" otherwise. See ef_host_facts_probe. */
    char sh_target[64];
};

/* What the container is built from. */
struct ef_sandbox_config {
    const char *shared_dir;  /* host path of the container's mnt/ (hostmnt.h): its task/, tmp/
                              * and shm/ are bound on /var/task, /tmp and /dev/shm, where funclet
                              * later mounts the code and fresh tmpfs instances */
    const char *runtime_dir; /* host path bound read-only at /var/runtime */
    const char *dev_dir;     /* host path of the /dev tree (ef_hostmnt_make_dev), bound
                              * read-only at /dev */
    uid_t sandbox_uid;
    gid_t sandbox_gid;
};

/* The /etc entries that are bound from the host when present, and the top-level directories
 * that are recreated; ef_host_facts_probe() looks for exactly these. */
extern const char *const ef_sandbox_etc_files[];
extern const char *const ef_sandbox_etc_dirs[];
extern const char *const ef_sandbox_toplevel_dirs[];
extern const char *const ef_sandbox_dev_nodes[];
/* The /proc paths hidden from the container and those made read-only, as the OCI runtime
 * specification's defaults (runc, crun, Docker) have them. */
extern const char *const ef_sandbox_masked_paths[];
extern const char *const ef_sandbox_readonly_paths[];

/* True when a top-level symlink's text points into /usr ("usr/lib" or "/usr/lib"), without any
 * ".." component: only such a link is recreated in the container. */
int ef_host_link_into_usr(const char *link);

/* Looks at the host's root (lstat/readlink of /bin, /lib, …; stat of the /etc entries and of the
 * device nodes) and fills *ret. A top-level symlink that does not point into /usr is treated as
 * absent: following it could expose an arbitrary host directory. */
int ef_host_facts_probe(struct ef_host_facts *ret, ef_error *err);

/* Builds the plan for one container. On success *ret holds the entries (free with
 * ef_mount_plan_free); on failure returns a negative errno and *ret is empty. */
int ef_mount_plan_build(const struct ef_sandbox_config *cfg, const struct ef_host_facts *facts,
                        struct ef_mount_plan *ret, ef_error *err);

/* Frees the entries of `plan` and empties it. */
void ef_mount_plan_free(struct ef_mount_plan *plan);

/* Returns the entry whose target is `target`, or NULL (used by tests and for error messages). */
const struct ef_mount_entry *ef_mount_plan_find(const struct ef_mount_plan *plan,
                                                const char *target);
