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
#include "funclet/lock.h"
#include "funclet/netlink.h"

/* The interface name inside the container. */
#define PEER_NAME "eth0"
/* What the alias of a funclet's bridge starts with; the data dir follows. */
#define MARK_PREFIX "easyfaas:"

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

int ef_network_init(struct ef_network *n, const char *bridge, const char *cidr,
                    const char *data_dir, ef_error *err)
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
    int len = snprintf(n->mark, sizeof(n->mark), "%s%s", MARK_PREFIX, data_dir);
    if (len < 0 || (size_t)len >= sizeof(n->mark)) {
        ef_ipam_free(&n->ipam);
        return ef_error_set(err, -ENAMETOOLONG, "data dir %.60s... is too long to mark a bridge",
                            data_dir);
    }
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
    unsigned bridge; /* the bridge's index */
    char names[256][IFNAMSIZ];
    size_t n;
};

static void collect(const char *name, unsigned index, unsigned master, void *user)
{
    struct port_list *l = user;
    (void)index;
    if (master == l->bridge && l->n < EF_ARRAY_SIZE(l->names))
        snprintf(l->names[l->n++], IFNAMSIZ, "%s", name);
}

/* Deletes bridge `index` of our name and every port on it: a port's veth would survive its
 * bridge, and the container behind it is gone. Failures are logged. */
static void remove_bridge(struct ef_network *n, struct ef_netlink *nl, unsigned index)
{
    ef_error e;
    struct port_list *l = calloc(1, sizeof(*l));
    if (!l)
        return;
    l->bridge = index;
    if (ef_netlink_links(nl, collect, l, &e) < 0)
        ef_warn("network cleanup: %s", e.msg);
    for (size_t i = 0; i < l->n; i++) {
        if (ef_netlink_link_del(nl, l->names[i], &e) < 0 && e.code != -ENODEV)
            ef_warn("network cleanup: %s", e.msg);
        else
            ef_info("removed veth %s from bridge %s", l->names[i], n->bridge);
    }
    free(l);
    if (ef_netlink_link_del(nl, n->bridge, &e) < 0 && e.code != -ENODEV)
        ef_warn("network cleanup: %s", e.msg);
    else
        ef_info("removed bridge %s", n->bridge);
}

/* Who owns the bridge of our name, from its alias `alias`. */
enum owner { OWNER_US, OWNER_STALE, OWNER_LIVE, OWNER_FOREIGN };

/* Decides from the alias; for another data dir's mark, whether a funclet holds that data dir's
 * lock now (*ret_pid). */
static enum owner owner_of(const struct ef_network *n, const char *alias, pid_t *ret_pid)
{
    *ret_pid = 0;
    if (strcmp(alias, n->mark) == 0)
        return OWNER_US;
    if (strncmp(alias, MARK_PREFIX, strlen(MARK_PREFIX)) != 0 || alias[strlen(MARK_PREFIX)] != '/')
        return OWNER_FOREIGN;
    *ret_pid = ef_lock_data_dir_holder(alias + strlen(MARK_PREFIX));
    return *ret_pid ? OWNER_LIVE : OWNER_STALE;
}

/* The error of a bridge warmup that finds the name taken by someone else. */
static int taken_error(const struct ef_network *n, enum owner o, const char *alias, pid_t pid,
                       ef_error *err)
{
    if (o == OWNER_LIVE)
        return ef_error_set(err, -EEXIST,
                            "bridge %s belongs to the funclet (pid %d) of data dir %s: give this "
                            "funclet another --bridge-name and --bridge-cidr",
                            n->bridge, (int)pid, alias + strlen(MARK_PREFIX));
    return ef_error_set(err, -EEXIST,
                        "bridge %s exists and was not made by funclet (alias '%.80s'): delete it "
                        "(ip link del %s) or give funclet another --bridge-name",
                        n->bridge, alias, n->bridge);
}

void ef_network_cleanup(struct ef_network *n)
{
    cleanup_nl struct ef_netlink nl = {0};
    ef_error e;
    if (ef_netlink_open(&nl, &e) < 0) {
        ef_warn("network cleanup: %s", e.msg);
        return;
    }
    n->bridge_index = 0;
    unsigned index = 0;
    char alias[EF_NETLINK_ALIAS_MAX];
    int r = ef_netlink_link_alias(&nl, n->bridge, &index, alias, sizeof(alias), &e);
    if (r == -ENODEV)
        return;
    if (r < 0) {
        ef_warn("network cleanup: %s", e.msg);
        return;
    }
    pid_t pid;
    enum owner o = owner_of(n, alias, &pid);
    if (o == OWNER_US) {
        remove_bridge(n, &nl, index);
        return;
    }
    /* Said once at start, so that the operator learns it before a bridge warmup fails. */
    taken_error(n, o, alias, pid, &e);
    if (o == OWNER_STALE)
        ef_info("bridge %s belongs to data dir %s, whose funclet is not running: the first "
                "bridge warmup takes it over",
                n->bridge, alias + strlen(MARK_PREFIX));
    else
        ef_warn("%s (left alone; warmups with network bridge fail meanwhile)", e.msg);
}

/* Makes way for our bridge when bridge_add found the name taken: deletes a leftover of ours or
 * of a funclet that is gone, refuses otherwise. */
static int reclaim_bridge(struct ef_network *n, struct ef_netlink *nl, ef_error *err)
{
    unsigned index = 0;
    char alias[EF_NETLINK_ALIAS_MAX];
    int r = ef_netlink_link_alias(nl, n->bridge, &index, alias, sizeof(alias), err);
    if (r == -ENODEV)
        return 0; /* gone meanwhile */
    if (r < 0)
        return r;
    pid_t pid;
    enum owner o = owner_of(n, alias, &pid);
    if (o == OWNER_LIVE || o == OWNER_FOREIGN)
        return taken_error(n, o, alias, pid, err);
    if (o == OWNER_STALE)
        ef_info("taking over bridge %s of data dir %s, whose funclet is not running", n->bridge,
                alias + strlen(MARK_PREFIX));
    remove_bridge(n, nl, index);
    return 0;
}

/* Creates the bridge with the gateway address, once. */
static int ensure_bridge(struct ef_network *n, struct ef_netlink *nl, ef_error *err)
{
    if (n->bridge_index)
        return 0;
    unsigned index = 0;
    int r = ef_netlink_bridge_add(nl, n->bridge, err);
    if (r == -EEXIST && (r = reclaim_bridge(n, nl, err)) == 0)
        r = ef_netlink_bridge_add(nl, n->bridge, err);
    if (r == 0)
        r = ef_netlink_link_index(nl, n->bridge, &index, err);
    /* The mark first: until it is set, no other funclet deletes the bridge, but none takes it
     * for its own either. */
    if (r == 0)
        r = ef_netlink_link_set_alias(nl, index, n->mark, err);
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
    ef_info("created bridge %s with address %s/%u (alias %s)", n->bridge, gw, n->ipam.prefix,
            n->mark);
    return 0;
}

/* Opens a netlink socket inside the network namespace `netns_fd`: the socket keeps acting
 * there after funclet has switched back to its own namespace. setns() moves the calling thread
 * only, and only the loop's thread does this, so nothing else of funclet runs in the
 * container's namespace (the pool threads of spawn.c clone from funclet's own). */
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
