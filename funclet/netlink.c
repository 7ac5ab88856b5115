#include "funclet/netlink.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void cleanup_mnl(struct mnl_socket **nl)
{
    if (*nl)
        mnl_socket_close(*nl);
}

int ef_netlink_link_up(const char *ifname, ef_error *err)
{
    unsigned index = if_nametoindex(ifname);
    if (index == 0)
        return ef_error_set_errno(err, -errno, "cannot find network interface %s", ifname);

    __attribute__((cleanup(cleanup_mnl))) struct mnl_socket *nl =
        mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
    if (!nl)
        return ef_error_set_errno(err, -errno, "cannot open a netlink socket");
    if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0)
        return ef_error_set_errno(err, -errno, "cannot bind a netlink socket");

    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = RTM_NEWLINK;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    unsigned seq = (unsigned)time(NULL);
    nlh->nlmsg_seq = seq;
    struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
    ifm->ifi_family = AF_UNSPEC;
    ifm->ifi_index = (int)index;
    ifm->ifi_flags = IFF_UP;
    ifm->ifi_change = IFF_UP;

    if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
        return ef_error_set_errno(err, -errno, "cannot send RTM_NEWLINK for %s", ifname);
    ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
    if (n < 0)
        return ef_error_set_errno(err, -errno, "no answer to RTM_NEWLINK for %s", ifname);
    /* The acknowledgement is an NLMSG_ERROR with error 0; mnl_cb_run turns a non-zero one into
     * -1 with errno set. */
    unsigned portid = mnl_socket_get_portid(nl);
    if (mnl_cb_run(buf, (size_t)n, seq, portid, NULL, NULL) < 0)
        return ef_error_set_errno(err, -errno, "cannot set %s up", ifname);
    return 0;
}
