/*
 * ipv6.c - IPv6 header checks, extension headers, demultiplexing and
 * output. See ipv6.h.
 */
#include "dataplane/net/ipv6.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

#include "dataplane/net/cksum.h"
#include "dataplane/net/icmp6.h"
#include "dataplane/net/nd.h"
#include "dataplane/net/net_stack.h"

#define IPV6_DEFAULT_HOPS 64
#define EXT_HOPOPTS 0
#define EXT_ROUTING 43
#define EXT_FRAGMENT 44
#define EXT_DSTOPTS 60

static const uint8_t all_nodes[16] = { 0xff, 0x02, [15] = 0x01 };
static const uint8_t loopback[16] = { [15] = 0x01 };

void ipv6_solicited_node(const uint8_t a[16], uint8_t out[16])
{
	static const uint8_t pfx[13] = { 0xff, 0x02, [11] = 0x01, [12] = 0xff };
	memcpy(out, pfx, 13);
	memcpy(out + 13, a + 13, 3);
}

void ipv6_mcast_mac(const uint8_t a[16], struct rte_ether_addr *mac)
{
	mac->addr_bytes[0] = 0x33;
	mac->addr_bytes[1] = 0x33;
	memcpy(&mac->addr_bytes[2], a + 12, 4);
}

void ipv6_link_local(const struct rte_ether_addr *mac, uint8_t out[16])
{
	const uint8_t *b = mac->addr_bytes;
	memset(out, 0, 16);
	out[0] = 0xfe;
	out[1] = 0x80;
	out[8] = b[0] ^ 0x02;	/* the universal/local bit, inverted */
	out[9] = b[1];
	out[10] = b[2];
	out[11] = 0xff;
	out[12] = 0xfe;
	out[13] = b[3];
	out[14] = b[4];
	out[15] = b[5];
}

bool ipv6_is_ours(const struct net_stack *ns, const uint8_t a[16])
{
	return memcmp(a, ns->ll6, 16) == 0 ||
	       (ns->addr.ip6_ok && memcmp(a, ns->addr.ip6, 16) == 0);
}

bool ipv6_on_link(const struct net_stack *ns, const uint8_t dst[16])
{
	unsigned bits = ns->addr.prefix6, i;

	if (ipv6_is_link_local(dst))
		return true;
	if (!ns->addr.ip6_ok)
		return false;
	for (i = 0; bits >= 8; i++, bits -= 8)
		if (dst[i] != ns->addr.ip6[i])
			return false;
	if (bits && ((dst[i] ^ ns->addr.ip6[i]) & (0xff00 >> bits) & 0xff))
		return false;
	return true;
}

uint16_t ipv6_l4_cksum(const struct rte_mbuf *m, uint32_t off, uint32_t len,
		       const uint8_t src[16], const uint8_t dst[16], uint8_t proto)
{
	uint16_t raw;
	uint32_t sum;

	if (net_cksum_mbuf(m, off, len, &raw) != 0)
		return 0xffff;	/* cannot be right: callers treat non-0 as bad */
	sum = raw + ipv6_addr_sum(src, dst);
	sum += rte_cpu_to_be_16(proto);
	sum += rte_cpu_to_be_16((uint16_t)len);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* Hop-by-hop / destination options: well-formed, and none whose type's
 * top two bits ask for the packet to be discarded when not understood
 * (RFC 8200 4.2; we understand only Pad1 and PadN). */
static enum ipv6_check options_ok(const uint8_t *p, unsigned len)
{
	unsigned i = 2;
	while (i < len) {
		uint8_t type = p[i];
		if (type == 0) {	/* Pad1 */
			i++;
			continue;
		}
		if (i + 2 > len || i + 2u + p[i + 1] > len)
			return IPV6_BAD_EXT;
		if (type != 1 && (type >> 6) != 0)
			return IPV6_BAD_OPTIONS;
		i += 2u + p[i + 1];
	}
	return IPV6_OK;
}

enum ipv6_check ipv6_check(const struct rte_ipv6_hdr *ip, uint32_t avail, uint8_t *proto,
			   uint32_t *l4off, uint32_t *l4len)
{
	const uint8_t *base = (const uint8_t *)ip;
	uint32_t plen, end, off = sizeof(*ip);
	uint8_t nh;

	if (avail < sizeof(*ip))
		return IPV6_BAD_SHORT;
	if ((rte_be_to_cpu_32(ip->vtc_flow) >> 28) != 6)
		return IPV6_BAD_VERSION;
	plen = rte_be_to_cpu_16(ip->payload_len);
	end = sizeof(*ip) + plen;
	if (end > avail)
		return IPV6_BAD_LEN;	/* a jumbogram (payload length 0) too */
	if (ipv6_is_multicast(ip->src_addr) || memcmp(ip->src_addr, loopback, 16) == 0)
		return IPV6_BAD_SRC;
	nh = ip->proto;
	for (unsigned n = 0;; n++) {
		uint32_t hlen;
		enum ipv6_check c;

		switch (nh) {
		case EXT_HOPOPTS:
		case EXT_DSTOPTS:
		case EXT_ROUTING:
			if (n >= IPV6_MAX_EXT || (nh == EXT_HOPOPTS && n != 0) || off + 8 > end)
				return IPV6_BAD_EXT;
			hlen = ((uint32_t)base[off + 1] + 1) * 8;
			if (off + hlen > end)
				return IPV6_BAD_EXT;
			if (nh == EXT_ROUTING) {
				if (base[off + 3] != 0)
					return IPV6_BAD_ROUTING;
			} else if ((c = options_ok(base + off, hlen)) != IPV6_OK) {
				return c;
			}
			nh = base[off];
			off += hlen;
			break;
		case EXT_FRAGMENT:
			return IPV6_BAD_FRAG;
		default:
			*proto = nh;
			*l4off = off;
			*l4len = end - off;
			return IPV6_OK;
		}
	}
}

static void count_bad(struct net_stack *ns, enum ipv6_check c)
{
	switch (c) {
	case IPV6_BAD_SHORT:	ns->stats.ip6_drop_short++; break;
	case IPV6_BAD_VERSION:	ns->stats.ip6_drop_version++; break;
	case IPV6_BAD_LEN:	ns->stats.ip6_drop_len++; break;
	case IPV6_BAD_SRC:	ns->stats.ip6_drop_src++; break;
	case IPV6_BAD_EXT:	ns->stats.ip6_drop_ext_chain++; break;
	case IPV6_BAD_OPTIONS:	ns->stats.ip6_drop_options++; break;
	case IPV6_BAD_ROUTING:	ns->stats.ip6_drop_routing++; break;
	case IPV6_BAD_FRAG:	ns->stats.ip6_drop_frag++; break;
	case IPV6_OK:		break;
	}
}

/* Is dst one we take: our unicast addresses, all-nodes, or the
 * solicited-node group of one of our addresses? */
static bool dst_ok(const struct net_stack *ns, const uint8_t dst[16])
{
	uint8_t sn[16];

	if (!ipv6_is_multicast(dst))
		return ipv6_is_ours(ns, dst);
	if (memcmp(dst, all_nodes, 16) == 0)
		return true;
	ipv6_solicited_node(ns->ll6, sn);
	if (memcmp(dst, sn, 16) == 0)
		return true;
	if (!ns->addr.ip6_ok)
		return false;
	ipv6_solicited_node(ns->addr.ip6, sn);
	return memcmp(dst, sn, 16) == 0;
}

void ipv6_input(struct net_stack *ns, struct rte_mbuf *m)
{
	const struct rte_ipv6_hdr *ip;
	enum ipv6_check c;
	uint8_t proto = 0;
	uint32_t l4off = 0, l4len = 0, first = rte_pktmbuf_data_len(m);

	ns->stats.ip6_rx++;
	if (!ns->addr.ip6_ok) {
		/* no address6: IPv6 is off, link-local included */
		ns->stats.ip6_drop_not_for_us++;
		goto drop;
	}
	/* Headers must sit in the first segment, as for IPv4: check them
	 * against it, the payload length against the chain. */
	ip = rte_pktmbuf_mtod(m, const struct rte_ipv6_hdr *);
	c = ipv6_check(ip, first, &proto, &l4off, &l4len);
	if (c == IPV6_BAD_LEN && first < rte_pktmbuf_pkt_len(m)) {
		c = ipv6_check(ip, rte_pktmbuf_pkt_len(m), &proto, &l4off, &l4len);
		if (c == IPV6_OK && l4off > first)
			c = IPV6_BAD_EXT;
	}
	if (c != IPV6_OK) {
		count_bad(ns, c);
		goto drop;
	}
	if (!dst_ok(ns, ip->dst_addr)) {
		ns->stats.ip6_drop_not_for_us++;
		goto drop;
	}
	if (ipv6_is_multicast(ip->dst_addr)) {
		ns->stats.ip6_mcast_rx++;
		if (proto != IPPROTO_ICMPV6) {
			ns->stats.ip6_drop_not_for_us++;	/* no multicast service */
			goto drop;
		}
	}
	/* The unspecified source: only a DAD probe (an NS) carries it. */
	if (ipv6_is_unspecified(ip->src_addr) && proto != IPPROTO_ICMPV6) {
		ns->stats.ip6_drop_src++;
		goto drop;
	}
	/* Cut Ethernet padding beyond the payload, then the headers. */
	if (rte_pktmbuf_pkt_len(m) > l4off + l4len)
		rte_pktmbuf_trim(m, rte_pktmbuf_pkt_len(m) - (l4off + l4len));
	rte_pktmbuf_adj(m, (uint16_t)l4off);

	switch (proto) {
	case IPPROTO_ICMPV6:
		icmp6_input(ns, m, ip, l4len);
		return;
	case IPPROTO_TCP:
		if (ns->tcp_input6) {
			ns->tcp_input6(ns->tcp_ctx, m, ip);
			return;
		}
		break;
	case IPPROTO_UDP:
		if (ns->udp_input6) {
			ns->udp_input6(ns->udp_ctx, m, ip);
			return;
		}
		break;
	default:
		break;
	}
	ns->stats.ip6_drop_proto++;
drop:
	rte_pktmbuf_free(m);
}

int ipv6_output(struct net_stack *ns, struct rte_mbuf *m, const uint8_t dst[16],
		const uint8_t *src, uint8_t proto, uint8_t hop_limit)
{
	struct rte_ipv6_hdr *ip;
	struct rte_ether_hdr *eh;
	uint8_t nexthop[16];
	uint32_t plen = rte_pktmbuf_pkt_len(m);

	if (!src) {
		if (ipv6_is_link_local(dst) || ipv6_is_multicast(dst) || !ns->addr.ip6_ok)
			src = ns->ll6;
		else
			src = ns->addr.ip6;
	}
	if (ipv6_is_multicast(dst) || ipv6_on_link(ns, dst))
		memcpy(nexthop, dst, 16);
	else if (!ns->addr.ip6_ok || !nd_default_router(ns, nexthop)) {
		ns->stats.ip6_tx_noroute++;
		rte_pktmbuf_free(m);
		return -ENETUNREACH;
	}
	if (plen + sizeof(*ip) > ns->addr.mtu) {
		ns->stats.ip6_tx_noroute++;	/* we never fragment */
		rte_pktmbuf_free(m);
		return -EMSGSIZE;
	}
	ip = (struct rte_ipv6_hdr *)rte_pktmbuf_prepend(m, sizeof(*ip));
	if (!ip) {
		ns->stats.tx_nombuf++;
		rte_pktmbuf_free(m);
		return -ENOBUFS;
	}
	ip->vtc_flow = rte_cpu_to_be_32(6u << 28);
	ip->payload_len = rte_cpu_to_be_16((uint16_t)plen);
	ip->proto = proto;
	ip->hop_limits = hop_limit ? hop_limit :
			 ns->nd.cur_hop_limit ? ns->nd.cur_hop_limit : IPV6_DEFAULT_HOPS;
	memmove(ip->src_addr, src, 16);
	memmove(ip->dst_addr, dst, 16);
	m->l2_len = sizeof(struct rte_ether_hdr);
	m->l3_len = sizeof(*ip);
	eh = (struct rte_ether_hdr *)rte_pktmbuf_prepend(m, sizeof(*eh));
	if (!eh) {
		ns->stats.tx_nombuf++;
		rte_pktmbuf_free(m);
		return -ENOBUFS;
	}
	eh->src_addr = ns->addr.mac;
	eh->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6);
	ns->stats.ip6_tx++;
	nd_resolve_and_send(ns, m, nexthop);
	return 0;
}
