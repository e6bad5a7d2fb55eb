/*
 * icmp6.c - ICMPv6 input: echo, packet too big, ND hand-off. See icmp6.h.
 */
#include "dataplane/net/icmp6.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include <rte_ip.h>
#include <rte_mbuf.h>

#include "dataplane/net/icmp.h"
#include "dataplane/net/ipv6.h"
#include "dataplane/net/nd.h"
#include "dataplane/net/net_stack.h"

static void echo_reply(struct net_stack *ns, struct rte_mbuf *m, const uint8_t src[16],
		       const uint8_t dst[16], uint32_t len)
{
	uint8_t to[16], from[16];
	uint8_t *p;

	memcpy(to, src, 16);
	memcpy(from, dst, 16);
	if (rte_pktmbuf_data_len(m) < 4) {
		ns->stats.icmp6_drop_short++;
		rte_pktmbuf_free(m);
		return;
	}
	p = rte_pktmbuf_mtod(m, uint8_t *);
	p[0] = ICMP6_ECHO_REPLY;
	p[1] = 0;
	p[2] = p[3] = 0;
	uint16_t ck = ipv6_l4_cksum(m, 0, len, from, to, IPPROTO_ICMPV6);
	memcpy(p + 2, &ck, 2);
	/* m still carries the request's offload flags and lengths */
	m->ol_flags = 0;
	ns->stats.icmp6_tx_echo_reply++;
	ipv6_output(ns, m, to, from, IPPROTO_ICMPV6, 0);
}

int icmp6_send_port_unreach(struct net_stack *ns, struct icmp_bucket *b,
			    const struct rte_mbuf *m, const struct rte_ipv6_hdr *ip)
{
	const uint8_t *start = (const uint8_t *)ip;
	const uint8_t *l4 = rte_pktmbuf_mtod(m, const uint8_t *);
	uint32_t hdrs, total, qlen;
	struct rte_mbuf *r;
	uint8_t *p, to[16], from[16];
	uint16_t ck;

	if (ipv6_is_unspecified(ip->src_addr) || ipv6_is_multicast(ip->src_addr) ||
	    ipv6_is_multicast(ip->dst_addr))
		return -EPERM;
	/* the headers must still sit in m's buffer, before its data */
	if (start < (const uint8_t *)m->buf_addr || start + sizeof(*ip) > l4)
		return -EPERM;
	if (!icmp_bucket_take(b, ns->now_ns))
		return -EAGAIN;
	hdrs = (uint32_t)(l4 - start);
	total = hdrs + rte_pktmbuf_pkt_len(m);
	/* the error must fit the IPv6 minimum MTU (RFC 4443 2.4 c) */
	qlen = total < IPV6_MIN_MTU - sizeof(struct rte_ipv6_hdr) - 8 ?
	       total : IPV6_MIN_MTU - (uint32_t)sizeof(struct rte_ipv6_hdr) - 8;
	r = rte_pktmbuf_alloc(ns->pool);
	if (!r) {
		ns->stats.tx_nombuf++;
		return -ENOBUFS;
	}
	p = (uint8_t *)rte_pktmbuf_append(r, (uint16_t)(8 + qlen));
	if (!p || rte_pktmbuf_headroom(r) < IPV6_OUT_HEADROOM) {
		rte_pktmbuf_free(r);
		return -ENOBUFS;
	}
	memset(p, 0, 8);
	p[0] = ICMP6_DST_UNREACH;
	p[1] = ICMP6_UNREACH_PORT;
	memcpy(p + 8, start, qlen < hdrs ? qlen : hdrs);
	if (qlen > hdrs) {
		const void *q = rte_pktmbuf_read(m, 0, qlen - hdrs, p + 8 + hdrs);
		if (!q) {
			rte_pktmbuf_free(r);
			return -ENOBUFS;
		}
		if (q != p + 8 + hdrs)
			memcpy(p + 8 + hdrs, q, qlen - hdrs);
	}
	memcpy(to, ip->src_addr, 16);
	memcpy(from, ip->dst_addr, 16);
	ck = ipv6_l4_cksum(r, 0, 8 + qlen, from, to, IPPROTO_ICMPV6);
	memcpy(p + 2, &ck, 2);
	return ipv6_output(ns, r, to, from, IPPROTO_ICMPV6, 0);
}

/* RFC 4443 3.2: type 2, the MTU, then as much of our datagram as fits. */
static void too_big(struct net_stack *ns, const struct rte_mbuf *m, uint32_t len)
{
	uint8_t buf[8 + sizeof(struct rte_ipv6_hdr) + 8];
	const uint8_t *p;
	const struct rte_ipv6_hdr *q;
	uint32_t mtu;

	ns->stats.icmp6_rx_too_big++;
	if (len < sizeof(buf) || !(p = rte_pktmbuf_read(m, 0, sizeof(buf), buf))) {
		ns->stats.icmp6_drop_quote++;
		return;
	}
	memcpy(&mtu, p + 4, 4);
	mtu = rte_be_to_cpu_32(mtu);
	q = (const struct rte_ipv6_hdr *)(p + 8);
	if ((rte_be_to_cpu_32(q->vtc_flow) >> 28) != 6 || q->proto != IPPROTO_TCP ||
	    !ipv6_is_ours(ns, q->src_addr) || !ns->tcp_pkt_too_big) {
		ns->stats.icmp6_drop_quote++;
		return;
	}
	ns->tcp_pkt_too_big(ns->tcp_ctx, mtu, q, p + 8 + sizeof(*q));
}

void icmp6_input(struct net_stack *ns, struct rte_mbuf *m, const struct rte_ipv6_hdr *ip,
		 uint32_t len)
{
	uint8_t hb[4];
	const uint8_t *h;

	ns->stats.icmp6_rx++;
	if (len < 4 || !(h = rte_pktmbuf_read(m, 0, 4, hb))) {
		ns->stats.icmp6_drop_short++;
		goto drop;
	}
	if (ipv6_l4_cksum(m, 0, len, ip->src_addr, ip->dst_addr, IPPROTO_ICMPV6) != 0) {
		ns->stats.icmp6_drop_cksum++;
		goto drop;
	}
	switch (h[0]) {
	case ICMP6_ECHO_REQUEST:
		if (h[1] != 0 || len < 8 || ipv6_is_multicast(ip->dst_addr) ||
		    ipv6_is_unspecified(ip->src_addr)) {
			ns->stats.icmp6_drop_type++;
			goto drop;
		}
		ns->stats.icmp6_rx_echo++;
		echo_reply(ns, m, ip->src_addr, ip->dst_addr, len);
		return;
	case ICMP6_PKT_TOO_BIG:
		too_big(ns, m, len);
		goto drop;
	case ICMP6_ND_RA:
	case ICMP6_ND_NS:
	case ICMP6_ND_NA:
		if (ip->hop_limits != 255) {
			ns->stats.nd_drop_hoplimit++;
			goto drop;
		}
		if (h[1] != 0) {
			ns->stats.nd_drop_format++;
			goto drop;
		}
		if (h[0] == ICMP6_ND_NS)
			nd_input_ns(ns, m, ip->src_addr, ip->dst_addr, len);
		else if (h[0] == ICMP6_ND_NA)
			nd_input_na(ns, m, ip->src_addr, len);
		else
			nd_input_ra(ns, m, ip->src_addr, len);
		return;
	default:
		ns->stats.icmp6_drop_type++;
		break;
	}
drop:
	rte_pktmbuf_free(m);
}
