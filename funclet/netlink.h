/* The network setup of a container, over rtnetlink (libmnl). Runs in the child, inside the new
 * network namespace. */
#pragma once

#include "common/error.h"

/* Sets the interface `ifname` (e.g. "lo") up in the caller's network namespace and waits for
 * the kernel's acknowledgement. */
int ef_netlink_link_up(const char *ifname, ef_error *err);
