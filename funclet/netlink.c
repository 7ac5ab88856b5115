#include "funclet/netlink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Large enough for a dump of every link of a busy host in one datagram at a time. */
#define NL_BUFSIZE 32768

int ef_netlink_open(struct ef_netlink *n, ef_error *err)
{
    memset(n, 0, sizeof(*n));
    n->nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
    if (!n->nl)
        return ef_error_set_errno(err, -errno, "cannot open a netlink socket");
    if (mnl_socket_bind(n->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
        int e = -errno;
        ef_netlink_close(n);
        return ef_error_set_errno(err, e, "cannot bind a netlink socket");
    }
    n->portid = mnl_socket_get_portid(n->nl);
    n->seq = (unsigned)time(NULL);
    return 0;
}

void ef_netlink_close(struct ef_netlink *n)
{
    if (n->nl)
        mnl_socket_close(n->nl);
    n->nl = NULL;
}

/* Sends the request in `buf` and reads answers until its acknowledgement (or the end of a dump),
 * passing data messages to `cb`. Returns 0 or the negative errno the kernel answered. */
static int talk(struct ef_netlink *n, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
    unsigned seq = ++n->seq;
    nlh->nlmsg_seq = seq;
    nlh->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
    while (mnl_socket_sendto(n->nl, nlh, nlh->nlmsg_len) < 0) {
        if (errno != EINTR)
            return -errno;
    }
    char buf[NL_BUFSIZE];
    for (;;) {
        ssize_t len = mnl_socket_recvfrom(n->nl, buf, sizeof(buf));
        /* A signal (a runner's SIGCHLD during a shutdown) interrupts the wait, not the
         * request: the answer is still coming. */
        if (len < 0 && errno == EINTR)
            continue;
        if (len < 0)
            return -errno;
        int r = mnl_cb_run(buf, (size_t)len, seq, n->portid, cb, data);
        if (r < 0)
            return errno > 0 ? -errno : -EIO;
        if (r == MNL_CB_STOP)
            return 0;
    }
}

static struct nlmsghdr *new_request(char *buf, uint16_t type, uint16_t flags)
{
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = flags;
    return nlh;
}

static struct ifinfomsg *put_ifinfo(struct nlmsghdr *nlh, unsigned char family, unsigned index)
{
    struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
    ifm->ifi_family = family;
    ifm->ifi_index = (int)index;
    return ifm;
}

static int link_cb(const struct nlmsghdr *nlh, void *data)
{
    unsigned *ret = data;
    const struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);
    if (nlh->nlmsg_type == RTM_NEWLINK)
        *ret = (unsigned)ifm->ifi_index;
    return MNL_CB_OK;
}

int ef_netlink_link_index(struct ef_netlink *n, const char *name, unsigned *ret_index,
                          ef_error *err)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = new_request(buf, RTM_GETLINK, 0);
    put_ifinfo(nlh, AF_UNSPEC, 0);
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    unsigned index = 0;
    int r = talk(n, nlh, link_cb, &index);
    if (r == 0 && index == 0)
        r = -ENODEV;
    if (r < 0)
        return ef_error_set_errno(err, r == -ENOENT ? -ENODEV : r, "cannot find interface %s",
                                  name);
    *ret_index = index;
    return 0;
}

int ef_netlink_link_set_alias(struct ef_netlink *n, unsigned index, const char *alias,
                              ef_error *err)
{
    if (strlen(alias) >= EF_NETLINK_ALIAS_MAX)
        return ef_error_set(err, -ENAMETOOLONG, "interface alias '%.40s...' is too long", alias);
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = new_request(buf, RTM_NEWLINK, 0);
    put_ifinfo(nlh, AF_UNSPEC, index);
    mnl_attr_put_strz(nlh, IFLA_IFALIAS, alias);
    int r = talk(n, nlh, NULL, NULL);
    if (r < 0)
        return ef_error_set_errno(err, r, "cannot set the alias of interface %u", index);
    return 0;
}

struct alias_ctx {
    unsigned index;
    char *buf;
    size_t len;
};

static int alias_attr_cb(const struct nlattr *attr, void *data)
{
    struct alias_ctx *ctx = data;
    if (mnl_attr_get_type(attr) == IFLA_IFALIAS &&
        mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0)
        snprintf(ctx->buf, ctx->len, "%s", mnl_attr_get_str(attr));
    return MNL_CB_OK;
}

static int alias_cb(const struct nlmsghdr *nlh, void *data)
{
    struct alias_ctx *ctx = data;
    if (nlh->nlmsg_type != RTM_NEWLINK)
        return MNL_CB_OK;
    const struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);
    ctx->index = (unsigned)ifm->ifi_index;
    mnl_attr_parse(nlh, sizeof(*ifm), alias_attr_cb, ctx);
    return MNL_CB_OK;
}

int ef_netlink_link_alias(struct ef_netlink *n, const char *name, unsigned *ret_index,
                          char *ret_alias, size_t len, ef_error *err)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = new_request(buf, RTM_GETLINK, 0);
    put_ifinfo(nlh, AF_UNSPEC, 0);
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    char alias[EF_NETLINK_ALIAS_MAX] = "";
    struct alias_ctx ctx = {0, alias, sizeof(alias)};
    int r = talk(n, nlh, alias_cb, &ctx);
    if (r == 0 && ctx.index == 0)
        r = -ENODEV;
    if (r < 0)
        return ef_error_set_errno(err, r == -ENOENT ? -ENODEV : r, "cannot find interface %s",
                                  name);
    *ret_index = ctx.index;
    snprintf(ret_alias, len, "%s", alias);
    return 0;
}

int ef_netlink_link_set_up(struct ef_netlink *n, unsigned index, ef_error *err)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = new_request(buf, RTM_NEWLINK, 0);
    struct ifinfomsg *ifm = put_ifinfo(nlh, AF_UNSPEC, index);
    ifm->ifi_flags = IFF_UP;
    ifm->ifi_change = IFF_UP;
    int r = talk(n, nlh, NULL, NULL);
    if (r < 0)
        return ef_error_set_errno(err, r, "cannot set interface %u up", index);
    return 0;
}

int ef_netlink_bridge_add(struct ef_netlink *n, const char *name, ef_error *err)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = new_request(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
    struct ifinfomsg *ifm = put_ifinfo(nlh, AF_UNSPEC, 0);
    ifm->ifi_flags = IFF_UP;
    ifm->ifi_change = IFF_UP;
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    struct nlattr *info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
    mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "bridge");
    mnl_attr_nest_end(nlh, info);
    int r = talk(n, nlh, NULL, NULL);
    if (r < 0)
        return ef_error_set_errno(err, r, "cannot create bridge %s", name);
    return 0;
}

int ef_netlink_veth_add(struct ef_netlink *n, const char *name, unsigned master,
                        const char *peer_name, int peer_netns_fd, ef_error *err)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = new_request(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
    struct ifinfomsg *ifm = put_ifinfo(nlh, AF_UNSPEC, 0);
    ifm->ifi_flags = IFF_UP;
    ifm->ifi_change = IFF_UP;
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    mnl_attr_put_u32(nlh, IFLA_MASTER, master);
    struct nlattr *info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
    mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
    struct nlattr *data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
    struct nlattr *peer = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
    /* The peer's attributes follow an ifinfomsg of its own, as in `ip link add type veth`. */
    put_ifinfo(nlh, AF_UNSPEC, 0);
    mnl_attr_put_strz(nlh, IFLA_IFNAME, peer_name);
    mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t)peer_netns_fd);
    mnl_attr_nest_end(nlh, peer);
    mnl_attr_nest_end(nlh, data);
    mnl_attr_nest_end(nlh, info);
    int r = talk(n, nlh, NULL, NULL);
    if (r < 0)
        return ef_error_set_errno(err, r, "cannot create veth pair %s/%s", name, peer_name);
    return 0;
}

int ef_netlink_port_isolate(struct ef_netlink *n, unsigned index, ef_error *err)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    /* As `bridge link set dev X isolated on`: the bridge family's port attributes. */
    struct nlmsghdr *nlh = new_request(buf, RTM_SETLINK, 0);
    put_ifinfo(nlh, AF_BRIDGE, index);
    struct nlattr *prot = mnl_attr_nest_start(nlh, IFLA_PROTINFO | NLA_F_NESTED);
    mnl_attr_put_u8(nlh, IFLA_BRPORT_ISOLATED, 1);
    mnl_attr_nest_end(nlh, prot);
    int r = talk(n, nlh, NULL, NULL);
    if (r < 0)
        return ef_error_set_errno(err, r, "cannot isolate bridge port %u", index);
    return 0;
}

int ef_netlink_link_del(struct ef_netlink *n, const char *name, ef_error *err)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = new_request(buf, RTM_DELLINK, 0);
    put_ifinfo(nlh, AF_UNSPEC, 0);
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    int r = talk(n, nlh, NULL, NULL);
    if (r < 0)
        return ef_error_set_errno(err, r == -ENOENT ? -ENODEV : r, "cannot delete interface %s",
                                  name);
    return 0;
}

int ef_netlink_addr_add(struct ef_netlink *n, unsigned index, uint32_t addr, unsigned prefix,
                        ef_error *err)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = new_request(buf, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
    struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
    ifa->ifa_family = AF_INET;
    ifa->ifa_prefixlen = (unsigned char)prefix;
    ifa->ifa_scope = RT_SCOPE_UNIVERSE;
    ifa->ifa_index = index;
    uint32_t be = htonl(addr);
    uint32_t brd = htonl(addr | (prefix < 32 ? ~0u >> prefix : 0));
    mnl_attr_put_u32(nlh, IFA_LOCAL, be);
    mnl_attr_put_u32(nlh, IFA_ADDRESS, be);
    mnl_attr_put_u32(nlh, IFA_BROADCAST, brd);
    int r = talk(n, nlh, NULL, NULL);
    if (r < 0)
        return ef_error_set_errno(err, r, "cannot add address to interface %u", index);
    return 0;
}

int ef_netlink_route_default(struct ef_netlink *n, unsigned index, uint32_t gateway, ef_error *err)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = new_request(buf, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
    struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
    rtm->rtm_family = AF_INET;
    rtm->rtm_dst_len = 0;
    rtm->rtm_table = RT_TABLE_MAIN;
    rtm->rtm_protocol = RTPROT_BOOT;
    rtm->rtm_scope = RT_SCOPE_UNIVERSE;
    rtm->rtm_type = RTN_UNICAST;
    mnl_attr_put_u32(nlh, RTA_GATEWAY, htonl(gateway));
    mnl_attr_put_u32(nlh, RTA_OIF, index);
    int r = talk(n, nlh, NULL, NULL);
    if (r < 0)
        return ef_error_set_errno(err, r, "cannot add the default route");
    return 0;
}

struct links_ctx {
    ef_netlink_link_cb cb;
    void *user;
};

static int links_attr_cb(const struct nlattr *attr, void *data)
{
    const struct nlattr **tb = data;
    int type = mnl_attr_get_type(attr);
    if (type == IFLA_IFNAME && mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0)
        tb[IFLA_IFNAME] = attr;
    else if (type == IFLA_MASTER && mnl_attr_validate(attr, MNL_TYPE_U32) >= 0)
        tb[IFLA_MASTER] = attr;
    return MNL_CB_OK;
}

static int links_cb(const struct nlmsghdr *nlh, void *data)
{
    struct links_ctx *ctx = data;
    if (nlh->nlmsg_type != RTM_NEWLINK)
        return MNL_CB_OK;
    const struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);
    const struct nlattr *tb[IFLA_MAX + 1] = {0};
    mnl_attr_parse(nlh, sizeof(*ifm), links_attr_cb, tb);
    if (tb[IFLA_IFNAME])
        ctx->cb(mnl_attr_get_str(tb[IFLA_IFNAME]), (unsigned)ifm->ifi_index,
                tb[IFLA_MASTER] ? mnl_attr_get_u32(tb[IFLA_MASTER]) : 0, ctx->user);
    return MNL_CB_OK;
}

int ef_netlink_links(struct ef_netlink *n, ef_netlink_link_cb cb, void *user, ef_error *err)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = new_request(buf, RTM_GETLINK, NLM_F_DUMP);
    put_ifinfo(nlh, AF_UNSPEC, 0);
    struct links_ctx ctx = {cb, user};
    int r = talk(n, nlh, links_cb, &ctx);
    if (r < 0)
        return ef_error_set_errno(err, r, "cannot list the network interfaces");
    return 0;
}
