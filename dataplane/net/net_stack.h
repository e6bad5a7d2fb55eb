/*
 * net_stack.h - one lcore's network stack: its addresses, caches, counters,
 * and the narrow interface to packet I/O.
 *
 * Each worker lcore owns exactly one struct net_stack and nothing in it is
 * touched by any other thread, so no locks are needed on the packet path.
 * The protocol modules (eth, arp, ipv4, icmp, udp, tcp_*) take a net_stack and
 * work on rte_mbufs, but never call EAL or ethdev: frames leave through the
 * stack's tx hook and buffers come from its mempool. In production the hook
 * appends to the lcore's TX burst; in tests it captures the frame, and the
 * pool is a heap pool (tests/support/heap_mempool.h), so the whole stack runs
 * inside Criterion and libFuzzer with no EAL.
 *
 * Conventions: IPv4 addresses are rte_be32_t (network order) everywhere;
 * ports too. Times are nanoseconds on the stack's own clock, now_ns, which the
 * poll loop sets once per burst (no clock reads per packet).
 */
#ifndef SLUICE_NET_STACK_H
#define SLUICE_NET_STACK_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_byteorder.h>
#include <rte_ether.h>
#include <rte_mbuf.h>

#include "common/stats.h"
#include "dataplane/net/arp.h"
#include "dataplane/net/net_addr.h"
#include "dataplane/net/nd.h"

/* Counters of the link and network layers, one set per lcore. */
#define NET_STATS(X)                                                        \
	X(rx_frames) X(rx_bytes) X(tx_frames) X(tx_bytes) X(tx_nombuf)      \
	X(eth_drop_short) X(eth_drop_not_for_us) X(eth_drop_ethertype)      \
	X(eth_drop_vlan)                                                    \
	X(arp_rx_request) X(arp_rx_reply) X(arp_tx_request) X(arp_tx_reply) \
	X(arp_drop_short) X(arp_drop_format) X(arp_drop_not_for_us)         \
	X(arp_pending_overflow) X(arp_pending_expired) X(arp_cache_full)    \
	X(ip_rx) X(ip_drop_short) X(ip_drop_version) X(ip_drop_hdrlen)      \
	X(ip_drop_len) X(ip_drop_cksum) X(ip_drop_frag) X(ip_drop_ttl)      \
	X(ip_drop_src) X(ip_drop_not_for_us) X(ip_drop_options)             \
	X(ip_drop_proto) X(ip_tx) X(ip_tx_noroute) X(ip_cksum_offload_ok)   \
	X(ip_tx_cksum_offload) X(tcp_tx_cksum_offload)                      \
	X(icmp_rx) X(icmp_rx_echo) X(icmp_tx_echo_reply) X(icmp_drop_short) \
	X(icmp_drop_cksum) X(icmp_drop_type) X(icmp_tx_unreach)            \
	X(icmp_rx_frag_needed) X(icmp_drop_quote)                           \
	X(udp_rx) X(udp_drop)                                               \
	X(ip6_rx) X(ip6_drop_short) X(ip6_drop_version) X(ip6_drop_len)     \
	X(ip6_drop_src) X(ip6_drop_not_for_us) X(ip6_drop_ext_chain)        \
	X(ip6_drop_options) X(ip6_drop_routing) X(ip6_drop_frag)            \
	X(ip6_drop_proto) X(ip6_tx) X(ip6_tx_noroute) X(ip6_mcast_rx)       \
	X(icmp6_rx) X(icmp6_drop_short) X(icmp6_drop_cksum)                 \
	X(icmp6_drop_type) X(icmp6_rx_echo) X(icmp6_tx_echo_reply)          \
	X(icmp6_rx_too_big) X(icmp6_drop_quote)                             \
	X(nd_rx_ns) X(nd_rx_na) X(nd_rx_ra) X(nd_tx_ns) X(nd_tx_na)         \
	X(nd_drop_hoplimit) X(nd_drop_format) X(nd_dad_conflict)            \
	X(nd_cache_full) X(nd_pending_overflow) X(nd_pending_expired)       \
	X(nd_unreachable) X(nd_router_learned)

struct net_stats {
	NET_STATS(STATS_FIELD)
};
extern const char *const net_stat_names[];
extern const unsigned net_stat_count;

/* Where this stack lives on the network. */
struct net_addr_conf {
	struct rte_ether_addr mac;
	rte_be32_t ip;		/* our address */
	rte_be32_t netmask;
	rte_be32_t gateway;	/* 0: no default route (on-link only) */
	uint16_t mtu;		/* IP MTU, e.g. 1500 (both families) */
	/* IPv6 (ipv6.h). ip6_ok false: the stack has no IPv6 address */
	bool ip6_ok;
	uint8_t ip6[16];	/* our (global) address */
	uint8_t prefix6;	/* its on-link prefix length */
	uint8_t gateway6[16];	/* all zero: the default router comes from
				 * router advertisements */
};

/*
 * Handler for one IP protocol. Receives the mbuf with data_off at the L4
 * header (the IPv4 header is still in the buffer before it; ip points at it)
 * and owns it from then on.
 */
struct rte_ipv4_hdr;
typedef void (*net_l4_input_fn)(void *ctx, struct rte_mbuf *m,
				const struct rte_ipv4_hdr *ip);

/*
 * ICMP "fragmentation needed" (type 3 code 4) about a datagram we sent:
 * mtu is the next-hop MTU the router reported (RFC 1191; 0 if it gave
 * none), quoted the IPv4 header of our datagram as the router quoted it,
 * l4 the first 8 bytes after it (icmp.c checked they are there).
 */
typedef void (*net_frag_needed_fn)(void *ctx, uint16_t mtu, const struct rte_ipv4_hdr *quoted,
				   const uint8_t *l4);

/* The same for IPv6: m's data at the upper-layer header (extension
 * headers skipped), its length m's pkt_len; ip the fixed header. */
struct rte_ipv6_hdr;
typedef void (*net_l4_input6_fn)(void *ctx, struct rte_mbuf *m,
				 const struct rte_ipv6_hdr *ip);

/* ICMPv6 "packet too big" (RFC 4443 3.2) about a datagram we sent: mtu as
 * reported, quoted our datagram's fixed header, l4 the first 8 bytes of
 * its upper-layer header (only when no extension header came between;
 * we send none). */
typedef void (*net_pkt_too_big_fn)(void *ctx, uint32_t mtu, const struct rte_ipv6_hdr *quoted,
				   const uint8_t *l4);

/* Frame transmit hook: takes ownership of a complete Ethernet frame. */
typedef void (*net_tx_fn)(void *ctx, struct rte_mbuf *m);

struct net_stack {
	struct net_addr_conf addr;
	struct rte_mempool *pool;	/* where outgoing frames come from */
	net_tx_fn tx;
	void *tx_ctx;
	uint64_t now_ns;		/* set by the poll loop once per burst */
	/* The port computes these checksums on transmit (port.h): the stack
	 * leaves the field to it (IP: 0; TCP: the pseudo-header sum) and
	 * flags the mbuf. Off unless the port has the offload. */
	bool tx_ip_cksum, tx_tcp_cksum;
	unsigned lcore;			/* owning lcore (for logs and steering) */

	struct arp_cache arp;
	struct nd_cache nd;		/* IPv6 neighbours (nd.h) */
	uint8_t ll6[16];		/* our link-local address (from the MAC) */
	bool nd_snoop;			/* in net_input_copy: learn, never answer */

	net_l4_input_fn tcp_input;	/* NULL: TCP segments are dropped */
	void *tcp_ctx;
	net_frag_needed_fn tcp_frag_needed;	/* ICMP "fragmentation needed"
						 * quoting TCP (tcp_ctx); NULL: ignored */
	net_l4_input6_fn tcp_input6;	/* TCP over IPv6 (tcp_ctx); NULL: dropped */
	net_pkt_too_big_fn tcp_pkt_too_big;	/* ICMPv6 packet too big quoting
						 * TCP (tcp_ctx); NULL: ignored */
	net_l4_input_fn udp_input;	/* NULL: UDP datagrams are dropped */
	void *udp_ctx;
	net_l4_input6_fn udp_input6;	/* UDP over IPv6 (udp_ctx); NULL: dropped */

	struct net_stats stats;
};

/* Our address of the given family into *a; false when we have none. */
static inline bool net_local_addr(const struct net_stack *ns, uint8_t family,
				  struct net_addr *a)
{
	if (family == NET_AF_INET6) {
		if (!ns->addr.ip6_ok)
			return false;
		*a = net_addr_v6(ns->addr.ip6);
		return true;
	}
	if (family != NET_AF_INET || ns->addr.ip == 0)
		return false;
	*a = net_addr_v4(ns->addr.ip);
	return true;
}

/*
 * Set up a stack. arp_entries/arp_pending bound the ARP cache and the
 * per-entry pending queue. Returns 0, or -errno.
 */
int net_stack_init(struct net_stack *ns, const struct net_addr_conf *addr,
		   struct rte_mempool *pool, net_tx_fn tx, void *tx_ctx,
		   const struct arp_conf *arp);
void net_stack_fini(struct net_stack *ns);

/* Entry point for every received frame; consumes m. */
void net_input(struct net_stack *ns, struct rte_mbuf *m);

/*
 * Entry point for a copy of a frame that another lcore received (ARP and
 * IPv6 Neighbor Discovery, which every lcore's cache must learn from):
 * learns, never answers. Consumes m.
 */
void net_input_copy(struct net_stack *ns, struct rte_mbuf *m);

/* Timers: ARP aging and pending-queue expiry. Call every few ms. */
void net_tick(struct net_stack *ns);

/* Hand a frame to the port, counting it. Consumes m. */
void net_tx_frame(struct net_stack *ns, struct rte_mbuf *m);

#endif
