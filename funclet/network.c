#include "funclet/network.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "funclet/netlink.h"

/* The interface name inside the container. */
#define PEER_NAME "eth0"

static void cleanup_netlink(struct ef_netlink *n)
{
    ef_netlink_close(n);
}
#define cleanup_nl __attribute__((cleanup(cleanup_netlink)))

static bool valid_ifname(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len >= IFNAMSIZ || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!isalnum((unsigned char)name[i]) && !strchr("_.-", name[i]))
            return false;
    }
    return true;
}

int ef_network_init(struct ef_network *n, const char *bridge, const char *cidr, ef_error *err)
{
    memset(n, 0, sizeof(*n));
    n->host_netns = -1;
    if (!valid_ifname(bridge))
        return ef_error_set(err, -EINVAL,
                            "invalid bridge name '%.40s': use 1-15 letters, digits, '_', '.' or "
                            "'-'",
                            bridge);
    if (strlen(cidr) >= sizeof(n->cidr))
        return ef_error_set(err, -EINVAL, "'%.40s' is not a CIDR such as 172.31.0.0/24", cidr);
    int r = ef_ipam_init(&n->ipam, cidr, err);
    if (r < 0)
        return r;
    snprintf(n->bridge, sizeof(n->bridge), "%s", bridge);
    snprintf(n->cidr, sizeof(n->cidr), "%s", cidr);
    n->host_netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (n->host_netns < 0) {
        r = ef_error_set_errno(err, -errno, "cannot open funclet's network namespace");
        ef_ipam_free(&n->ipam);
        return r;
    }
    return 0;
}

void ef_network_free(struct ef_network *n)
{
    ef_ipam_free(&n->ipam);
    if (n->host_netns >= 0)
        close(n->host_netns);
    n->host_netns = -1;
}

struct port_list {
    unsigned bridge; /* index of our bridge, 0 if absent */
    const char *bridge_name;
    char names[256][IFNAMSIZ];
    size_t n;
    unsigned masters[256];
};

static void collect(const char *name, unsigned index, unsigned master, void *user)
{
    struct port_list *l = user;
    if (strcmp(name, l->bridge_name) == 0)
        l->bridge = index;
    if (master && l->n < EF_ARRAY_SIZE(l->names)) {
        snprintf(l->names[l->n], IFNAMSIZ, "%s", name);
        l->masters[l->n++] = master;
    }
}

void ef_network_cleanup(struct ef_network *n)
{
    cleanup_nl struct ef_netlink nl = {0};
    ef_error e;
    if (ef_netlink_open(&nl, &e) < 0) {
        ef_warn("network cleanup: %s", e.msg);
        return;
    }
    struct port_list *l = calloc(1, sizeof(*l));
    if (!l)
        return;
    l->bridge_name = n->bridge;
    if (ef_netlink_links(&nl, collect, l, &e) < 0) {
        ef_warn("network cleanup: %s", e.msg);
        free(l);
        return;
    }
    if (l->bridge) {
        /* A port's veth would survive its bridge; the container behind it is gone. */
        for (size_t i = 0; i < l->n; i++) {
            if (l->masters[i] != l->bridge)
                continue;
            if (ef_netlink_link_del(&nl, l->names[i], &e) < 0 && e.code != -ENODEV)
                ef_warn("network cleanup: %s", e.msg);
            else
                ef_info("removed veth %s from bridge %s", l->names[i], n->bridge);
        }
        if (ef_netlink_link_del(&nl, n->bridge, &e) < 0 && e.code != -ENODEV)
            ef_warn("network cleanup: %s", e.msg);
        else
            ef_info("removed bridge %s", n->bridge);
    }
    n->bridge_index = 0;
    free(l);
}

/* Creates the bridge with the gateway address, once. */
static int ensure_bridge(struct ef_network *n, struct ef_netlink *nl, ef_error *err)
{
    if (n->bridge_index)
        return 0;
    unsigned index = 0;
    int r = ef_netlink_bridge_add(nl, n->bridge, err);
    if (r == 0)
        r = ef_netlink_link_index(nl, n->bridge, &index, err);
    if (r == 0)
        r = ef_netlink_addr_add(nl, index, ef_ipam_gateway(&n->ipam), n->ipam.prefix, err);
    if (r < 0) {
        ef_error ignored;
        if (index)
            ef_netlink_link_del(nl, n->bridge, &ignored);
        return r;
    }
    n->bridge_index = index;
    char gw[16];
    ef_ipam_format(ef_ipam_gateway(&n->ipam), gw, sizeof(gw));
    ef_info("created bridge %s with address %s/%u", n->bridge, gw, n->ipam.prefix);
    return 0;
}

/* Opens a netlink socket inside the network namespace `netns_fd`: the socket keeps acting
 * there after funclet has switched back to its own namespace. funclet is single-threaded, so
 * nothing else runs while it is in the container's namespace. */
static int open_in_netns(struct ef_network *n, int netns_fd, struct ef_netlink *ret, ef_error *err)
{
    if (setns(netns_fd, CLONE_NEWNET) < 0)
        return ef_error_set_errno(err, -errno, "cannot enter the container's network namespace");
    int r = ef_netlink_open(ret, err);
    if (setns(n->host_netns, CLONE_NEWNET) < 0) {
        /* Every later bridge, veth and route would land in the container: stop here. */
        ef_error("cannot return to funclet's network namespace: %s", strerror(errno));
        abort();
    }
    return r;
}

/* Address, link up and default route of eth0 inside the container. */
static int configure_peer(struct ef_network *n, int netns_fd, uint32_t addr, ef_error *err)
{
    cleanup_nl struct ef_netlink nl = {0};
    int r = open_in_netns(n, netns_fd, &nl, err);
    if (r < 0)
        return r;
    unsigned index = 0;
    if ((r = ef_netlink_link_index(&nl, PEER_NAME, &index, err)) < 0 ||
        (r = ef_netlink_addr_add(&nl, index, addr, n->ipam.prefix, err)) < 0 ||
        (r = ef_netlink_link_set_up(&nl, index, err)) < 0 ||
        (r = ef_netlink_route_default(&nl, index, ef_ipam_gateway(&n->ipam), err)) < 0)
        return r;
    return 0;
}

int ef_network_attach(struct ef_network *n, const char *id, int netns_fd,
                      struct ef_network_attachment *ret, ef_error *err)
{
    cleanup_nl struct ef_netlink nl = {0};
    int r = ef_netlink_open(&nl, err);
    if (r < 0)
        return r;
    if ((r = ensure_bridge(n, &nl, err)) < 0)
        return r;
    struct ef_network_attachment a = {0};
    if (ef_ipam_alloc(&n->ipam, &a.addr) < 0)
        return ef_error_set(err, -ENOSPC, "every address of %s is taken (%u containers)", n->cidr,
                            ef_ipam_capacity(&n->ipam));
    /* "ve" and the 12 hex digits of the id: 14 characters, within IFNAMSIZ. */
    snprintf(a.veth, sizeof(a.veth), "ve%s", id + 1);
    r = ef_netlink_veth_add(&nl, a.veth, n->bridge_index, PEER_NAME, netns_fd, err);
    if (r < 0) {
        ef_ipam_release(&n->ipam, a.addr);
        return r;
    }
    unsigned index = 0;
    if ((r = ef_netlink_link_index(&nl, a.veth, &index, err)) == 0 &&
        (r = ef_netlink_port_isolate(&nl, index, err)) == 0)
        r = configure_peer(n, netns_fd, a.addr, err);
    if (r < 0) {
        ef_error ignored;
        ef_netlink_link_del(&nl, a.veth, &ignored);
        ef_ipam_release(&n->ipam, a.addr);
        return r;
    }
    *ret = a;
    return 0;
}

int ef_network_detach(struct ef_network *n, struct ef_network_attachment *a, ef_error *err)
{
    if (!a->veth[0])
        return 0;
    cleanup_nl struct ef_netlink nl = {0};
    int r = ef_netlink_open(&nl, err);
    if (r == 0) {
        r = ef_netlink_link_del(&nl, a->veth, err);
        if (r == -ENODEV)
            r = 0; /* the container's namespace went first and took the pair along */
    }
    if (r < 0)
        return r;
    ef_ipam_release(&n->ipam, a->addr);
    a->veth[0] = '\0';
    a->addr = 0;
    return 0;
}
