/* Addresses of the bridge network: the CIDR given by --bridge-cidr, its first host address for
 * the bridge (the containers' gateway) and the others handed to containers one at a time. Pure
 * (no system calls), unit-tested. Addresses are IPv4 in host byte order. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

/* The narrowest and widest networks accepted: a /29 still has five container addresses, a /16
 * is 65533 of them. */
#define EF_IPAM_PREFIX_MIN 16
#define EF_IPAM_PREFIX_MAX 29

struct ef_ipam {
    uint32_t network; /* the network address (host bits zero) */
    unsigned prefix;
    uint32_t count;  /* addresses of the network, network and broadcast included */
    uint8_t *used;   /* one bit per address */
    uint32_t next;   /* where the search for a free address starts */
    uint32_t n_used; /* container addresses handed out */
};

/* Parses "a.b.c.d/len" (len EF_IPAM_PREFIX_MIN..MAX, host bits zero). */
int ef_ipam_parse_cidr(const char *cidr, uint32_t *ret_network, unsigned *ret_prefix,
                       ef_error *err);

/* Sets up the allocator for `cidr`; the network, gateway and broadcast addresses are never
 * handed out. Free with ef_ipam_free. */
int ef_ipam_init(struct ef_ipam *ipam, const char *cidr, ef_error *err);

/* Frees the allocator. */
void ef_ipam_free(struct ef_ipam *ipam);

/* The bridge's own address: the first host address of the network. */
uint32_t ef_ipam_gateway(const struct ef_ipam *ipam);

/* Hands out a free address (the lowest after the last one handed out, wrapping around, so that
 * an address is not reused at once). -ENOSPC when all are taken. */
int ef_ipam_alloc(struct ef_ipam *ipam, uint32_t *ret_addr);

/* Returns `addr` to the pool; an address not handed out is ignored. */
void ef_ipam_release(struct ef_ipam *ipam, uint32_t addr);

/* How many container addresses the network has in all. */
uint32_t ef_ipam_capacity(const struct ef_ipam *ipam);

/* Formats `addr` as dotted quad into `buf` (at least 16 bytes). */
void ef_ipam_format(uint32_t addr, char *buf, size_t len);
