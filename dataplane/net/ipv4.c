/*
 * ipv4.c - IPv4 header checks, demultiplexing and output. See ipv4.h.
 */
#include "dataplane/net/ipv4.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>

#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

#include "dataplane/net/arp.h"
#include "dataplane/net/icmp.h"
#include "dataplane/net/net_stack.h"

#define IPV4_DEFAULT_TTL 64

/* Options: walk the list; only its well-formedness matters to us. */
static int options_ok(const uint8_t *opt, unsigned len)
{
	unsigned i = 0;
	while (i < len) {
		uint8_t type = opt[i];
		if (type == 0)		/* end of option list */
			return 1;
		if (type == 1) {	/* no-operation */
			i++;
			continue;
		}
		if (i + 1 >= len || opt[i + 1] < 2 || i + opt[i + 1] > len)
			return 0;
		i += opt[i + 1];
	}
	return 1;
}

static int martian_source(rte_be32_t src_be)
{
	uint32_t src = rte_be_to_cpu_32(src_be);
	return src == 0 || src == 0xffffffffu ||
	       (src >> 24) == 127 ||		/* loopback */
	       (src >> 28) == 0xe ||		/* multicast */
	       (src >> 28) == 0xf;		/* class E / limited broadcast */
}

/* ipv4_check, with the header checksum verified only if verify_cksum (the
 * port may have verified it already: see ipv4_input). */
static enum ipv4_check check_hdr(const struct rte_ipv4_hdr *ip, uint32_t avail,
				 bool verify_cksum)
{
	unsigned ihl, total;

	if (avail < sizeof(*ip))
		return IPV4_BAD_SHORT;
	if ((ip->version_ihl >> 4) != 4)
		return IPV4_BAD_VERSION;
	ihl = (ip->version_ihl & 0xf) * 4u;
	if (ihl < sizeof(*ip) || ihl > avail)
		return IPV4_BAD_HDRLEN;
	total = rte_be_to_cpu_16(ip->total_length);
	if (total < ihl || total > avail)
		return IPV4_BAD_LEN;
	if (verify_cksum && rte_raw_cksum(ip, ihl) != 0xffff)
		return IPV4_BAD_CKSUM;
	if (rte_be_to_cpu_16(ip->fragment_offset) &
	    (RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK))
		return IPV4_BAD_FRAG;
	if (ip->time_to_live == 0)
		return IPV4_BAD_TTL;
	if (martian_source(ip->src_addr))
		return IPV4_BAD_SRC;
	if (ihl > sizeof(*ip) && !options_ok((const uint8_t *)(ip + 1), ihl - sizeof(*ip)))
		return IPV4_BAD_OPTIONS;
	return IPV4_OK;
}

enum ipv4_check ipv4_check(const struct rte_ipv4_hdr *ip, uint32_t avail)
{
	return check_hdr(ip, avail, true);
}

static void count_bad(struct net_stack *ns, enum ipv4_check c)
{
	switch (c) {
	case IPV4_BAD_SHORT:	ns->stats.ip_drop_short++; break;
	case IPV4_BAD_VERSION:	ns->stats.ip_drop_version++; break;
	case IPV4_BAD_HDRLEN:	ns->stats.ip_drop_hdrlen++; break;
	case IPV4_BAD_LEN:	ns->stats.ip_drop_len++; break;
	case IPV4_BAD_CKSUM:	ns->stats.ip_drop_cksum++; break;
	case IPV4_BAD_FRAG:	ns->stats.ip_drop_frag++; break;
	case IPV4_BAD_TTL:	ns->stats.ip_drop_ttl++; break;
	case IPV4_BAD_SRC:	ns->stats.ip_drop_src++; break;
	case IPV4_BAD_OPTIONS:	ns->stats.ip_drop_options++; break;
	case IPV4_OK:		break;
	}
}

void ipv4_input(struct net_stack *ns, struct rte_mbuf *m)
{
	const struct rte_ipv4_hdr *ip;
	enum ipv4_check c;
	unsigned ihl, total;
	uint64_t csf = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
	bool verify;

	ns->stats.ip_rx++;
	/* The port's verdict on the header checksum, as DPDK defines it: BAD
	 * drops; GOOD, or NONE (the field is wrong but the header's integrity
	 * was verified), skips our check; UNKNOWN (most virtual ports) has us
	 * check in software. */
	if (csf == RTE_MBUF_F_RX_IP_CKSUM_BAD) {
		ns->stats.ip_drop_cksum++;
		goto drop;
	}
	verify = csf == RTE_MBUF_F_RX_IP_CKSUM_UNKNOWN;
	/* Headers must sit in the first segment (true for every PMD we use
	 * with standard MTU; a jumbo chain's later segments carry payload). */
	ip = rte_pktmbuf_mtod(m, const struct rte_ipv4_hdr *);
	c = check_hdr(ip, rte_pktmbuf_data_len(m) < rte_pktmbuf_pkt_len(m)
			      ? rte_pktmbuf_data_len(m) : rte_pktmbuf_pkt_len(m), verify);
	if (c == IPV4_BAD_LEN && rte_pktmbuf_data_len(m) < rte_pktmbuf_pkt_len(m)) {
		/* Datagram spans segments: check length against the chain. */
		c = check_hdr(ip, rte_pktmbuf_pkt_len(m), verify);
		if (c == IPV4_OK && (ip->version_ihl & 0xf) * 4u > rte_pktmbuf_data_len(m))
			c = IPV4_BAD_HDRLEN;
	}
	if (c != IPV4_OK) {
		count_bad(ns, c);
		goto drop;
	}
	if (!verify)
		ns->stats.ip_cksum_offload_ok++;
	if (ip->dst_addr != ns->addr.ip) {
		ns->stats.ip_drop_not_for_us++;
		goto drop;
	}
	ihl = (ip->version_ihl & 0xf) * 4u;
	total = rte_be_to_cpu_16(ip->total_length);
	/* Cut Ethernet padding (and any trailing junk) beyond total length. */
	if (rte_pktmbuf_pkt_len(m) > total)
		rte_pktmbuf_trim(m, rte_pktmbuf_pkt_len(m) - total);
	rte_pktmbuf_adj(m, (uint16_t)ihl);

	switch (ip->next_proto_id) {
	case IPPROTO_ICMP:
		icmp_input(ns, m, ip);
		return;
	case IPPROTO_TCP:
		if (ns->tcp_input) {
			ns->tcp_input(ns->tcp_ctx, m, ip);
			return;
		}
		break;
	case IPPROTO_UDP:
		ns->stats.udp_rx++;
		if (ns->udp_input) {
			ns->udp_input(ns->udp_ctx, m, ip);
			return;
		}
		ns->stats.udp_drop++;
		rte_pktmbuf_free(m);
		return;
	default:
		break;
	}
	ns->stats.ip_drop_proto++;
drop:
	rte_pktmbuf_free(m);
}

int ipv4_on_link(const struct net_stack *ns, rte_be32_t dst)
{
	return (dst & ns->addr.netmask) == (ns->addr.ip & ns->addr.netmask);
}

int ipv4_output(struct net_stack *ns, struct rte_mbuf *m, rte_be32_t dst, uint8_t proto)
{
	struct rte_ipv4_hdr *ip;
	struct rte_ether_hdr *eh;
	rte_be32_t nexthop;
	uint32_t len = rte_pktmbuf_pkt_len(m) + sizeof(*ip);

	if (ipv4_on_link(ns, dst))
		nexthop = dst;
	else if (ns->addr.gateway)
		nexthop = ns->addr.gateway;
	else {
		ns->stats.ip_tx_noroute++;
		rte_pktmbuf_free(m);
		return -ENETUNREACH;
	}
	if (len > ns->addr.mtu) {
		/* We never fragment: callers size segments by MSS/MTU. */
		ns->stats.ip_tx_noroute++;
		rte_pktmbuf_free(m);
		return -EMSGSIZE;
	}
	ip = (struct rte_ipv4_hdr *)rte_pktmbuf_prepend(m, sizeof(*ip));
	if (!ip) {
		ns->stats.tx_nombuf++;
		rte_pktmbuf_free(m);
		return -ENOBUFS;
	}
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->type_of_service = 0;
	ip->total_length = rte_cpu_to_be_16((uint16_t)len);
	ip->packet_id = 0;	/* DF set: the ID has no use (RFC 6864) */
	ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
	ip->time_to_live = IPV4_DEFAULT_TTL;
	ip->next_proto_id = proto;
	ip->src_addr = ns->addr.ip;
	ip->dst_addr = dst;
	ip->hdr_checksum = 0;
	m->l2_len = sizeof(struct rte_ether_hdr);
	m->l3_len = sizeof(*ip);
	if (ns->tx_ip_cksum) {
		m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM;
		ns->stats.ip_tx_cksum_offload++;
	} else {
		ip->hdr_checksum = rte_ipv4_cksum(ip);
	}

	eh = (struct rte_ether_hdr *)rte_pktmbuf_prepend(m, sizeof(*eh));
	if (!eh) {
		ns->stats.tx_nombuf++;
		rte_pktmbuf_free(m);
		return -ENOBUFS;
	}
	eh->src_addr = ns->addr.mac;
	eh->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	ns->stats.ip_tx++;
	arp_resolve_and_send(ns, m, nexthop);
	return 0;
}
