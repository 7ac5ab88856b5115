/* User namespaces for containers (`--userns auto|on|off`).
 *
 * With a user namespace, every container gets a range of EF_USERNS_RANGE host uids and gids of
 * its own: uid 0 inside (the runner) is host uid `base + slot * EF_USERNS_RANGE`, the sandbox
 * user N inside is that plus N. The slots are numbered 0 .. --max-containers - 1, taken at
 * create (lowest free first) and given back when the container is destroyed, so a range is
 * reused only once no process of the previous container is left.
 *
 * funclet writes the maps from the parent while the child waits for its go byte
 * (ef_userns_write_maps), before the child does anything that needs a mapped id. It leaves
 * /proc/<pid>/setgroups at "allow": funclet writes gid_map with CAP_SETGID in its own
 * namespace, so "deny" is not required, and the runner needs setgroups(0, NULL) to drop the
 * supplementary groups the child inherited from funclet (host gids, which would otherwise stay
 * with the function's processes).
 *
 * The slot arithmetic and the map text are pure and unit-tested without root; the probe and the
 * map writes are system calls. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"

/* Host ids per container: the 16-bit id space a program expects (0-65535, nobody = 65534). */
#define EF_USERNS_RANGE        65536u
#define EF_USERNS_BASE_DEFAULT 1000000u
/* RLIMIT_NPROC of a container's processes when the user namespace is on and --rlimit-nproc is
 * not given. */
#define EF_USERNS_NPROC_DEFAULT 4096u

enum ef_userns_mode {
    EF_USERNS_AUTO, /* use it when the probe at start succeeds */
    EF_USERNS_ON,   /* refuse to start when it does not */
    EF_USERNS_OFF,
};

/* Parses "auto", "on" or "off". -EINVAL for anything else. */
int ef_userns_parse_mode(const char *text, enum ef_userns_mode *ret);

/* Which slots are taken. */
struct ef_userns_slots {
    uint64_t *bits; /* bit i set: slot i is taken */
    size_t n;       /* number of slots */
    uint32_t base;  /* host uid and gid of uid 0 in slot 0 */
};

/* Sets up `n` free slots starting at host id `base`. -EINVAL (with `err`) when base is 0 or the
 * last range would reach past uid 4294967294 (4294967295 is the invalid id); -ENOMEM. */
int ef_userns_slots_init(struct ef_userns_slots *s, uint32_t base, size_t n, ef_error *err);

/* Frees the bitmap. */
void ef_userns_slots_free(struct ef_userns_slots *s);

/* Takes the lowest free slot and returns its number, or -ENOSPC when all are taken. */
int ef_userns_slot_take(struct ef_userns_slots *s);

/* Gives `slot` back; a slot out of range or already free is ignored. */
void ef_userns_slot_put(struct ef_userns_slots *s, int slot);

/* Whether `slot` is taken. */
bool ef_userns_slot_taken(const struct ef_userns_slots *s, int slot);

/* The host id that uid (and gid) 0 of `slot` maps to. */
uint32_t ef_userns_slot_host_id(const struct ef_userns_slots *s, int slot);

/* Writes the uid_map/gid_map line that maps ids 0..EF_USERNS_RANGE-1 inside onto
 * `host_id`..: "0 <host_id> 65536\n". Returns its length, or -ENAMETOOLONG when `len` is too
 * small, or -ERANGE when the range would pass uid 4294967294. */
int ef_userns_map_text(uint32_t host_id, char *buf, size_t len);

/* Writes /proc/<pid>/uid_map and gid_map of a child that waits in a new user namespace. */
int ef_userns_write_maps(pid_t pid, uint32_t host_id, ef_error *err);

/* Whether a container can live in a user namespace here: /proc/sys/user/max_user_namespaces is
 * not 0, a child can be cloned into new user, pid, mount, uts, ipc and net namespaces, its maps
 * (onto `host_id`..) can be written, it can become root inside and mount a new /proc (which the
 * kernel refuses when the /proc it can see is partly covered, as in a container runtime with
 * masked /proc paths). 0, or a negative errno with `err` naming the step that failed. Blocks
 * for the child's short life (a few milliseconds); call it once, at start. */
int ef_userns_probe(uint32_t host_id, ef_error *err);
