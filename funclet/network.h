/* Network modes of warm containers (docs/rpc.md, "network"):
 *
 *   none    the container's own network namespace (made with the pool) with only loopback;
 *   bridge  that namespace plus a veth pair: "eth0" inside with an address of --bridge-cidr and
 *           a default route via the bridge's address, "ve<id>" on funclet's bridge. Every port
 *           is isolated (IFLA_BRPORT_ISOLATED), so containers reach the bridge address (the pod)
 *           and, through the operator's NAT, the outside, but never each other;
 *   host    no network namespace at all (decided when the container is created).
 *
 * The bridge is created at the first bridge warmup and deleted at shutdown; one a previous
 * funclet of the same data dir left is deleted at start. Everything goes over rtnetlink
 * (netlink.c).
 *
 * Ownership: the bridge name is host-wide, so funclet marks the bridge it creates with its
 * data dir, as the interface's alias "easyfaas:<canonical data dir>" (`ip link show` lists it),
 * and deletes a bridge of its name (with the veths on it) only when the mark is its own. A
 * bridge of that name found at a bridge warmup is
 *   - marked by this data dir: a leftover, deleted and created anew;
 *   - marked by another data dir whose funclet is not running (no one holds its lock, lock.h):
 *     taken over the same way;
 *   - marked by a running funclet, or not made by funclet at all: left alone, and the warmup
 *     fails with an error that says so (choose another --bridge-name).
 * Two funclets on one host therefore need distinct --bridge-name (and --bridge-cidr) values to
 * both use network "bridge"; one that never warms a bridge container never touches a bridge. */
#pragma once

#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "funclet/ipam.h"

/* Room for the bridge's mark, as for an interface alias (the kernel's IFALIASZ). */
#define EF_NETWORK_MARK_MAX 256

struct ef_network {
    char bridge[IFNAMSIZ];
    char cidr[32];
    char mark[EF_NETWORK_MARK_MAX]; /* "easyfaas:<data dir>": the alias of our bridge */
    struct ef_ipam ipam;
    unsigned bridge_index; /* 0 until funclet has created the bridge */
    int host_netns;        /* funclet's own network namespace (fd) */
};

/* A container's place on the bridge. */
struct ef_network_attachment {
    char veth[IFNAMSIZ]; /* host side; "" when not attached */
    uint32_t addr;       /* host byte order */
};

/* Checks the bridge name (1-15 of letters, digits, '_', '.', '-') and the CIDR, and opens
 * funclet's own network namespace; `data_dir` (canonical) makes the bridge's mark. Touches no
 * interface. */
int ef_network_init(struct ef_network *n, const char *bridge, const char *cidr,
                    const char *data_dir, ef_error *err);

/* Deletes the bridge and its ports if they exist and the bridge carries our mark (at start: a
 * previous funclet's of this data dir; at shutdown: ours); a bridge of the name that is not
 * ours is left alone, with a warning. Failures are logged. */
void ef_network_cleanup(struct ef_network *n);

/* Closes what ef_network_init opened. */
void ef_network_free(struct ef_network *n);

/* Gives the container of `id`, whose network namespace is `netns_fd`, an address and a veth on
 * the bridge (creating the bridge first if needed). -ENOSPC when the CIDR is exhausted; -EEXIST
 * when the bridge's name is another running funclet's or not funclet's (see above). Nothing is
 * left behind on failure. */
int ef_network_attach(struct ef_network *n, const char *id, int netns_fd,
                      struct ef_network_attachment *ret, ef_error *err);

/* Removes the veth pair and returns the address. An empty attachment is fine. */
int ef_network_detach(struct ef_network *n, struct ef_network_attachment *a, ef_error *err);
