#include "funclet/ipam.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ef_ipam_parse_cidr(const char *cidr, uint32_t *ret_network, unsigned *ret_prefix, ef_error *err)
{
    char addr[32];
    const char *slash = strchr(cidr, '/');
    if (!slash || (size_t)(slash - cidr) >= sizeof(addr))
        return ef_error_set(err, -EINVAL, "'%.40s' is not a CIDR such as 172.31.0.0/24", cidr);
    memcpy(addr, cidr, (size_t)(slash - cidr));
    addr[slash - cidr] = '\0';
    struct in_addr in;
    if (inet_pton(AF_INET, addr, &in) != 1)
        return ef_error_set(err, -EINVAL, "'%s' in '%.40s' is not an IPv4 address", addr, cidr);
    const char *p = slash + 1;
    unsigned prefix = 0;
    if (!*p || strlen(p) > 2)
        return ef_error_set(err, -EINVAL, "'%.40s' has no valid prefix length", cidr);
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return ef_error_set(err, -EINVAL, "'%.40s' has no valid prefix length", cidr);
        prefix = prefix * 10 + (unsigned)(*p - '0');
    }
    if (prefix < EF_IPAM_PREFIX_MIN || prefix > EF_IPAM_PREFIX_MAX)
        return ef_error_set(err, -EINVAL, "the prefix length of '%.40s' must be %d to %d", cidr,
                            EF_IPAM_PREFIX_MIN, EF_IPAM_PREFIX_MAX);
    uint32_t net = ntohl(in.s_addr);
    uint32_t mask = ~0u << (32 - prefix);
    if (net & ~mask)
        return ef_error_set(err, -EINVAL,
                            "'%.40s' has host bits set: the network is %u.%u.%u.%u/%u", cidr,
                            (net & mask) >> 24, ((net & mask) >> 16) & 255,
                            ((net & mask) >> 8) & 255, (net & mask) & 255, prefix);
    *ret_network = net;
    *ret_prefix = prefix;
    return 0;
}

int ef_ipam_init(struct ef_ipam *ipam, const char *cidr, ef_error *err)
{
    uint32_t net;
    unsigned prefix;
    int r = ef_ipam_parse_cidr(cidr, &net, &prefix, err);
    if (r < 0)
        return r;
    memset(ipam, 0, sizeof(*ipam));
    ipam->network = net;
    ipam->prefix = prefix;
    ipam->count = 1u << (32 - prefix);
    ipam->used = calloc((ipam->count + 7) / 8, 1);
    if (!ipam->used)
        return ef_error_set(err, -ENOMEM, "out of memory");
    /* Network address, gateway (the bridge) and broadcast are never a container's. */
    ipam->used[0] |= 3;
    ipam->used[(ipam->count - 1) / 8] |= (uint8_t)(1u << ((ipam->count - 1) % 8));
    ipam->next = 2;
    return 0;
}

void ef_ipam_free(struct ef_ipam *ipam)
{
    free(ipam->used);
    ipam->used = NULL;
}

uint32_t ef_ipam_gateway(const struct ef_ipam *ipam)
{
    return ipam->network + 1;
}

uint32_t ef_ipam_capacity(const struct ef_ipam *ipam)
{
    return ipam->count - 3;
}

static bool taken(const struct ef_ipam *ipam, uint32_t i)
{
    return ipam->used[i / 8] & (1u << (i % 8));
}

int ef_ipam_alloc(struct ef_ipam *ipam, uint32_t *ret_addr)
{
    for (uint32_t n = 0; n < ipam->count; n++) {
        uint32_t i = (ipam->next + n) % ipam->count;
        if (taken(ipam, i))
            continue;
        ipam->used[i / 8] |= (uint8_t)(1u << (i % 8));
        ipam->next = (i + 1) % ipam->count;
        ipam->n_used++;
        *ret_addr = ipam->network + i;
        return 0;
    }
    return -ENOSPC;
}

void ef_ipam_release(struct ef_ipam *ipam, uint32_t addr)
{
    uint32_t i = addr - ipam->network;
    if (addr < ipam->network || i >= ipam->count || i < 2 || i == ipam->count - 1 ||
        !taken(ipam, i))
        return;
    ipam->used[i / 8] &= (uint8_t) ~(1u << (i % 8));
    ipam->n_used--;
}

void ef_ipam_format(uint32_t addr, char *buf, size_t len)
{
    snprintf(buf, len, "%u.%u.%u.%u", addr >> 24, (addr >> 16) & 255, (addr >> 8) & 255,
             addr & 255);
}
