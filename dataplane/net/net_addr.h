/*
 * net_addr.h - an IP address of either family, as one value type.
 *
 * TCP (tuples, the connection table, ISNs, cookies), the port_ok filters
 * and the socket-ish APIs name addresses with struct net_addr, so one
 * implementation serves IPv4 and IPv6. The layout is fixed and has no
 * padding holes, and every byte not used by the family is zero (make
 * values only with net_addr_v4/net_addr_v6, or zero the struct first):
 * equality is then a compare of five 32-bit words with no branch on the
 * family, and a hash may fold the four address words (an IPv4 address
 * folds to itself, so the IPv4 table hash is what it was before).
 *
 * Addresses are in network order: v4 as rte_be32_t, v6 as 16 bytes.
 */
#ifndef SLUICE_NET_ADDR_H
#define SLUICE_NET_ADDR_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <rte_byteorder.h>

#define NET_AF_INET 4
#define NET_AF_INET6 6

struct net_addr {
	uint8_t family;		/* NET_AF_INET or NET_AF_INET6 (0: none) */
	uint8_t zero_[3];	/* always 0 */
	union {
		rte_be32_t v4;	/* NET_AF_INET: w[1..3] are 0 */
		uint8_t v6[16];	/* NET_AF_INET6 */
		uint32_t w[4];
	};
};

static inline struct net_addr net_addr_v4(rte_be32_t a)
{
	struct net_addr x;
	memset(&x, 0, sizeof(x));
	x.family = NET_AF_INET;
	x.v4 = a;
	return x;
}

static inline struct net_addr net_addr_v6(const uint8_t a[16])
{
	struct net_addr x;
	memset(&x, 0, sizeof(x));
	x.family = NET_AF_INET6;
	memcpy(x.v6, a, 16);
	return x;
}

static inline bool net_addr_is_v6(const struct net_addr *a)
{
	return a->family == NET_AF_INET6;
}

/* The unspecified address (0.0.0.0 or ::), or no address at all. */
static inline bool net_addr_is_zero(const struct net_addr *a)
{
	return (a->w[0] | a->w[1] | a->w[2] | a->w[3]) == 0;
}

/* Same family and address (branch-free). */
static inline bool net_addr_eq(const struct net_addr *a, const struct net_addr *b)
{
	return ((uint32_t)(a->family ^ b->family) | (a->w[0] ^ b->w[0]) |
		(a->w[1] ^ b->w[1]) | (a->w[2] ^ b->w[2]) | (a->w[3] ^ b->w[3])) == 0;
}

/* The four address words xored: an IPv4 address folds to itself. */
static inline uint32_t net_addr_fold(const struct net_addr *a)
{
	return a->w[0] ^ a->w[1] ^ a->w[2] ^ a->w[3];
}

/* Text form (inet_ntop; IPv6 without brackets) into buf (>= 46 bytes);
 * "?" for no family. Returns buf. Not for the packet path. */
const char *net_addr_str(const struct net_addr *a, char *buf, unsigned len);
#define NET_ADDR_STRLEN 46

#endif
