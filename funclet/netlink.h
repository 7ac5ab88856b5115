/* rtnetlink requests over libmnl: links (loopback up, a bridge, veth pairs, bridge port
 * isolation), addresses and routes. A socket acts in the network namespace it was opened in,
 * which is how funclet configures a container's namespace (network.c opens one there). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

struct mnl_socket;

/* An open rtnetlink socket. */
struct ef_netlink {
    struct mnl_socket *nl;
    unsigned portid;
    unsigned seq;
};

/* Opens and binds a socket in the caller's current network namespace. */
int ef_netlink_open(struct ef_netlink *n, ef_error *err);

/* Closes the socket; a closed one is fine. */
void ef_netlink_close(struct ef_netlink *n);

/* The index of interface `name`; -ENODEV when there is none. */
int ef_netlink_link_index(struct ef_netlink *n, const char *name, unsigned *ret_index,
                          ef_error *err);

/* The longest interface alias with its NUL (the kernel's IFALIASZ). */
#define EF_NETLINK_ALIAS_MAX 256

/* Sets the alias (IFLA_IFALIAS, `ip link set X alias ...`) of interface `index`, a free text
 * the kernel keeps with the interface; funclet marks its bridge with it. */
int ef_netlink_link_set_alias(struct ef_netlink *n, unsigned index, const char *alias,
                              ef_error *err);

/* The index and the alias ("" when it has none) of interface `name`; -ENODEV when there is no
 * such interface. The alias is cut to `len` - 1 bytes. */
int ef_netlink_link_alias(struct ef_netlink *n, const char *name, unsigned *ret_index,
                          char *ret_alias, size_t len, ef_error *err);

/* Sets interface `index` up. */
int ef_netlink_link_set_up(struct ef_netlink *n, unsigned index, ef_error *err);

/* Creates bridge `name`, up. -EEXIST when the name is taken. */
int ef_netlink_bridge_add(struct ef_netlink *n, const char *name, ef_error *err);

/* Creates a veth pair: `name` here, up and enslaved to bridge `master`, and `peer_name` in the
 * network namespace of `peer_netns_fd` (down). */
int ef_netlink_veth_add(struct ef_netlink *n, const char *name, unsigned master,
                        const char *peer_name, int peer_netns_fd, ef_error *err);

/* Marks bridge port `index` isolated (IFLA_BRPORT_ISOLATED): the bridge forwards nothing between
 * two isolated ports, only between a port and the bridge itself (or a port that is not). */
int ef_netlink_port_isolate(struct ef_netlink *n, unsigned index, ef_error *err);

/* Deletes interface `name` (a veth takes its peer along); -ENODEV when there is none. */
int ef_netlink_link_del(struct ef_netlink *n, const char *name, ef_error *err);

/* Adds IPv4 address `addr`/`prefix` (host byte order) to interface `index`. */
int ef_netlink_addr_add(struct ef_netlink *n, unsigned index, uint32_t addr, unsigned prefix,
                        ef_error *err);

/* Adds the default IPv4 route via `gateway` (host byte order) on interface `index`. */
int ef_netlink_route_default(struct ef_netlink *n, unsigned index, uint32_t gateway, ef_error *err);

typedef void (*ef_netlink_link_cb)(const char *name, unsigned index, unsigned master, void *user);

/* Calls `cb` for every interface of the namespace with its name, index and master (0: none). */
int ef_netlink_links(struct ef_netlink *n, ef_netlink_link_cb cb, void *user, ef_error *err);
