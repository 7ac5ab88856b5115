/* Starts a sandbox child (sandbox.h) without copying funclet's address space.
 *
 * The child is cloned with CLONE_VM | CLONE_VFORK from a thread of libuv's pool: it runs on
 * funclet's memory until its exec of the runner, so that no page tables are copied at the
 * clone, the child takes no copy-on-write faults and the exec tears down nothing (on a
 * paravirtualised guest these three are most of a container's start). CLONE_VFORK suspends
 * only the cloning thread, so funclet's loop runs on meanwhile: it writes the child's uid and
 * gid maps, puts it into its cgroups and sends the go byte as before (sandbox.h), and a child
 * that hangs is still killed by the loop's start timeout.
 *
 * Up to 4 clones run at once, each on a stack of its own, mapped once and kept. The thread stays
 * in clone() until the child has exec'd or ended; the child's parent-death signal is tied to
 * that thread, which libuv keeps for the life of the process. A clone that fails is reported on
 * the sync socket as a struct ef_sandbox_report, like a failure of the child itself.
 *
 * The spawn namespace. A child's mount namespace starts as a copy of the cloning thread's, and
 * funclet's own holds the shared mount point and its mounts (code, /tmp, /dev/shm) of every
 * container it runs: each child would copy them all and detach them again with its old root,
 * so that a create slows with the number of containers. So children are cloned from a mount
 * namespace made at start as a copy of funclet's (a recursive slave of it: with
 * run/containers/.dev, none of the containers' mounts, since run/containers is private, and
 * without /sys and the dozen cgroup hierarchies below it, which no container is built from).
 * For each clone the thread enters it (setns, which needs CAP_SYS_ADMIN and CAP_SYS_CHROOT),
 * attaches there a detached copy of the container's shared mount point (open_tree, a peer of
 * funclet's, so what funclet mounts there later still reaches the container), clones, detaches
 * the copy and returns to funclet's namespace. The child's namespace thus gets the mount point
 * the way it got every mount before: copied, and in a user namespace locked and a slave. Where
 * the start-up probe fails (a kernel before 5.2, a missing capability) or entering fails for a
 * clone, children are cloned from funclet's own namespace, with a warning. The copy is taken at
 * start: a mount that is private in funclet's namespace and changes later is not seen by new
 * containers (the host's shared mounts are). */
#pragma once

#include <stdbool.h>
#include <uv.h>

#include "common/error.h"
#include "funclet/mount_plan.h"
#include "funclet/sandbox.h"

/* Queues the clone of a sandbox child with `args` and the namespace `clone_flags`. Takes
 * ownership of `plan` (args->plan is set to it), of args->sync_fd, args->runner_fd and
 * `mnt_tree_fd` in every case; copies args->rootfs, args->hostname and `mnt_dir`;
 * args->seccomp must outlive the loop. With `mnt_tree_fd` (an open_tree copy of the container's
 * shared mount point at `mnt_dir`; -1: none) the child is cloned from the spawn namespace.
 * The caller waits on its end of the sync socket: first the child's "started" packet
 * (EF_SANDBOX_STARTED with the child's pidfd; its pid comes with SO_PASSCRED), then the packets
 * of sandbox.h and a report or end-of-file.
 * When the caller closes its end before the clone, no child is made. */
int ef_sandbox_spawn(uv_loop_t *loop, const struct ef_sandbox_args *args,
                     struct ef_mount_plan *plan, int clone_flags, int mnt_tree_fd,
                     const char *mnt_dir, ef_error *err);

/* Makes the spawn namespace, a copy of funclet's mount namespace as it is now, and tries there
 * what each clone does, with a copy of `probe_mount` (a mount point). Without it (an error),
 * children are cloned from funclet's own namespace. */
int ef_sandbox_spawn_ns_open(const char *probe_mount, ef_error *err);

/* Whether children are cloned from the spawn namespace: a create then passes a mnt_tree_fd. */
bool ef_sandbox_spawn_ns_ready(void);

void ef_sandbox_spawn_ns_close(void);
