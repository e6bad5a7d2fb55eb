/*
 * ipv6.h - IPv6 input checks, extension headers, demultiplexing and output
 * (with routing to on-link, the configured gateway6 or the default router
 * learned from router advertisements).
 *
 * Without a configured address (net_addr_conf.ip6_ok false) IPv6 is off:
 * every datagram is counted in ip6_drop_not_for_us, nothing is answered.
 *
 * Addresses: our configured global address (net_addr_conf.ip6/prefix6) and
 * a link-local one, fe80::/64 with the modified EUI-64 of the port's MAC
 * (RFC 4291 2.5.1), which Neighbor Discovery with routers uses. Accepted
 * destinations: either of those, their solicited-node multicast groups
 * (ff02::1:ffXX:XXXX) and all-nodes (ff02::1); everything else is counted
 * (ip6_drop_not_for_us). Static configuration, no DAD (the operator owns
 * the address); a DAD probe (source ::) for one of our addresses is
 * counted (nd_dad_conflict) and not answered, as RFC 4862 5.4.3 has an
 * address owner that does not defend do.
 *
 * Input drops, each with its counter: shorter than the fixed header,
 * version not 6, payload length beyond the frame, multicast or unspecified
 * (except in a DAD probe) or loopback source, not for us, and extension
 * headers: hop-by-hop options and destination options are skipped (their
 * options are not acted on: we are a host, RFC 8200 4.2 lets unknown
 * options with the "skip" action bits pass; an option whose bits say
 * "discard" drops the packet, counted ip6_drop_options), a routing header
 * with segments left is dropped (ip6_drop_routing: RFC 8200 4.4 would have
 * us answer with an ICMP parameter problem; we only count), fragments are
 * dropped (ip6_drop_frag: as in IPv4, TCP has MSS and PMTU, so nothing we
 * speak needs them), an unknown next header, ESP or AH is dropped
 * (ip6_drop_proto). At most IPV6_MAX_EXT extension headers are walked;
 * more are dropped (ip6_drop_ext_chain). The hop limit is not checked for
 * packets delivered to us (RFC 8200: it is for forwarders), but Neighbor
 * Discovery requires 255 (icmp6.c).
 *
 * Output: ipv6_output prepends the fixed header (hop limit 64, or the
 * router's advertised current hop limit) and the Ethernet header, chooses
 * the next hop and resolves it through the neighbour cache (nd.h).
 */
#ifndef SLUICE_IPV6_H
#define SLUICE_IPV6_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_ether.h>
#include <rte_ip.h>

struct rte_mbuf;
struct net_stack;

#define IPV6_MAX_EXT 4		/* extension headers walked per packet */
#define IPV6_MIN_MTU 1280	/* RFC 8200 5 */

/* Result of validating an IPv6 datagram; each maps to one drop counter. */
enum ipv6_check {
	IPV6_OK = 0,
	IPV6_BAD_SHORT,		/* fewer than 40 bytes */
	IPV6_BAD_VERSION,
	IPV6_BAD_LEN,		/* payload length beyond the data */
	IPV6_BAD_SRC,		/* multicast / loopback source */
	IPV6_BAD_EXT,		/* extension header truncated or chain too long */
	IPV6_BAD_OPTIONS,	/* an option whose type says discard */
	IPV6_BAD_ROUTING,	/* routing header with segments left */
	IPV6_BAD_FRAG,		/* fragment header */
};

/*
 * Check a datagram of `avail` bytes (after the Ethernet header) and walk
 * its extension headers. On IPV6_OK: *proto is the upper-layer protocol,
 * *l4off the offset of its header, *l4len its length (payload length less
 * the extension headers). Pure: no counters, no I/O.
 */
enum ipv6_check ipv6_check(const struct rte_ipv6_hdr *ip, uint32_t avail, uint8_t *proto,
			   uint32_t *l4off, uint32_t *l4len);

/* Entry from eth: m's data starts at the IPv6 header. Consumes m. */
void ipv6_input(struct net_stack *ns, struct rte_mbuf *m);

/*
 * Send an L4 payload to dst (16 bytes). m's data starts at the L4 header
 * with at least IPV6_OUT_HEADROOM bytes of headroom; the L4 checksum is the
 * caller's (ipv6_phdr_sum helps). src: NULL for our global address (the
 * link-local one for link-local destinations), else that source. Consumes
 * m. Returns 0, or -ENETUNREACH/-EMSGSIZE/-ENOBUFS (m freed).
 */
#define IPV6_OUT_HEADROOM (sizeof(struct rte_ether_hdr) + sizeof(struct rte_ipv6_hdr))
int ipv6_output(struct net_stack *ns, struct rte_mbuf *m, const uint8_t dst[16],
		const uint8_t *src, uint8_t proto, uint8_t hop_limit);

/* Raw (uncomplemented, memory-order) sum of the pseudo-header's addresses,
 * for an upper-layer checksum (add next header and length as for IPv4). */
static inline uint32_t ipv6_addr_sum(const uint8_t src[16], const uint8_t dst[16])
{
	uint32_t sum = 0;
	for (unsigned i = 0; i < 16; i += 2) {
		uint16_t a, b;
		__builtin_memcpy(&a, src + i, 2);
		__builtin_memcpy(&b, dst + i, 2);
		sum += (uint32_t)a + b;
	}
	return sum;
}

/* Complemented upper-layer checksum of len bytes of m from off (chain
 * allowed), pseudo-header included. 0 is returned as is. */
uint16_t ipv6_l4_cksum(const struct rte_mbuf *m, uint32_t off, uint32_t len,
		       const uint8_t src[16], const uint8_t dst[16], uint8_t proto);

/* Address helpers. */
static inline bool ipv6_is_multicast(const uint8_t a[16]) { return a[0] == 0xff; }
static inline bool ipv6_is_link_local(const uint8_t a[16])
{
	return a[0] == 0xfe && (a[1] & 0xc0) == 0x80;
}
static inline bool ipv6_is_unspecified(const uint8_t a[16])
{
	static const uint8_t z[16];
	return __builtin_memcmp(a, z, 16) == 0;
}
/* ff02::1:ffXX:XXXX for a (RFC 4291 2.7.1). */
void ipv6_solicited_node(const uint8_t a[16], uint8_t out[16]);
/* 33:33 + the last 4 bytes of a multicast address (RFC 2464 7). */
void ipv6_mcast_mac(const uint8_t a[16], struct rte_ether_addr *mac);
/* fe80::/64 with the modified EUI-64 of mac. */
void ipv6_link_local(const struct rte_ether_addr *mac, uint8_t out[16]);
/* Does dst lie in our configured prefix (or is it link-local)? */
bool ipv6_on_link(const struct net_stack *ns, const uint8_t dst[16]);
/* Is a one of our unicast addresses (global or link-local)? */
bool ipv6_is_ours(const struct net_stack *ns, const uint8_t a[16]);

#endif
