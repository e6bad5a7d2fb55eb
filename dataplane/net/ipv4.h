/*
 * ipv4.h - IPv4 input checks and output (with routing to on-link or gateway).
 *
 * Input drops, each with its counter: short frame, version, header length,
 * total length beyond the frame, bad checksum, fragments (Sluice never needs
 * them: TCP uses MSS and DF, on both sides, and path-MTU limits come by
 * ICMP "fragmentation needed" (tcp_frag_needed_l4); no reassembly, so no
 * reassembly memory to exhaust), TTL 0, martian source (broadcast, multicast,
 * 0.0.0.0, loopback), not our address, options (we accept and skip them for
 * ICMP/TCP; malformed ones are dropped), unknown protocol.
 *
 * Checksums: the receive path honours the port's RX checksum flags in the
 * mbuf (ol_flags) as DPDK defines them. IP header: RTE_MBUF_F_RX_IP_CKSUM_BAD
 * drops (ip_drop_cksum); _GOOD and _NONE (field wrong, integrity verified)
 * skip the software check (ip_cksum_offload_ok); _UNKNOWN, what most
 * virtual ports give, means we check in software. TCP does the same with
 * the L4 flags (tcp_input.c); ICMP is always checked in software (the L4
 * flags do not cover it).
 */
#ifndef SLUICE_IPV4_H
#define SLUICE_IPV4_H

#include <stdint.h>

#include <rte_byteorder.h>
#include <rte_ip.h>

struct rte_mbuf;
struct net_stack;

/* Result of validating an IPv4 header; each maps to one drop counter. */
enum ipv4_check {
	IPV4_OK = 0,
	IPV4_BAD_SHORT,		/* fewer than 20 bytes */
	IPV4_BAD_VERSION,
	IPV4_BAD_HDRLEN,	/* IHL < 5 or beyond the data */
	IPV4_BAD_LEN,		/* total length < IHL or > the data */
	IPV4_BAD_CKSUM,
	IPV4_BAD_FRAG,		/* MF set or offset non-zero */
	IPV4_BAD_TTL,		/* TTL 0 */
	IPV4_BAD_SRC,		/* martian source address */
	IPV4_BAD_OPTIONS,	/* malformed option list */
};

/*
 * Check an IPv4 header of a datagram with `avail` bytes available (the frame
 * after the Ethernet header). Pure: no counters, no I/O.
 */
enum ipv4_check ipv4_check(const struct rte_ipv4_hdr *ip, uint32_t avail);

/* Entry from eth: m's data starts at the IP header. Consumes m. */
void ipv4_input(struct net_stack *ns, struct rte_mbuf *m);

/*
 * Send an L4 payload to dst. m's data starts at the L4 header, with at least
 * IPV4_OUT_HEADROOM bytes of headroom; ipv4_output prepends the IP header
 * (DF set, TTL 64, checksum) and the Ethernet header, picks the next hop
 * (on-link or gateway) and resolves it. The L4 checksum is the caller's.
 * Consumes m. Returns 0, or -ENETUNREACH/-ENOBUFS (m freed either way).
 */
#define IPV4_OUT_HEADROOM (sizeof(struct rte_ether_hdr) + sizeof(struct rte_ipv4_hdr))
int ipv4_output(struct net_stack *ns, struct rte_mbuf *m, rte_be32_t dst,
		uint8_t proto);

/* True when dst is reachable on-link (same subnet as our address). */
int ipv4_on_link(const struct net_stack *ns, rte_be32_t dst);

#endif
