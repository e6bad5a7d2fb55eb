/*
 * icmp.c - ICMP echo reply and destination unreachable. See icmp.h.
 */
#include "dataplane/net/icmp.h"

#include <errno.h>
#include <string.h>

#include <rte_ether.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

#include "dataplane/net/cksum.h"
#include "dataplane/net/ipv4.h"
#include "dataplane/net/net_stack.h"

#define ICMP_DEST_UNREACH 3	/* type (rte_icmp.h defines only echo) */

/* Internet checksum over a possibly multi-segment mbuf from offset 0. */
static uint16_t mbuf_cksum(const struct rte_mbuf *m)
{
	uint16_t ck = 0;
	if (net_cksum_mbuf(m, 0, rte_pktmbuf_pkt_len(m), &ck) < 0)
		return 0xffff;
	return ck;
}

/*
 * "Fragmentation needed" (RFC 1191): the quote must be one of our own
 * datagrams (IPv4, from our address, a whole header and 8 bytes after it,
 * in the first segment); TCP's handler checks the rest (RFC 5927).
 */
static void frag_needed(struct net_stack *ns, const struct rte_mbuf *m)
{
	const uint8_t *p = rte_pktmbuf_mtod(m, const uint8_t *);
	uint32_t len = rte_pktmbuf_data_len(m);
	const struct rte_ipv4_hdr *q;
	uint32_t qhl;

	ns->stats.icmp_rx_frag_needed++;
	if (len < 8 + sizeof(*q) + 8) {
		ns->stats.icmp_drop_quote++;
		return;
	}
	q = (const struct rte_ipv4_hdr *)(p + 8);
	qhl = (uint32_t)(q->version_ihl & 0x0f) * 4;
	if ((q->version_ihl >> 4) != 4 || qhl < sizeof(*q) || len < 8 + qhl + 8 ||
	    q->src_addr != ns->addr.ip || q->next_proto_id != IPPROTO_TCP ||
	    !ns->tcp_frag_needed) {
		ns->stats.icmp_drop_quote++;
		return;
	}
	ns->tcp_frag_needed(ns->tcp_ctx, (uint16_t)(p[6] << 8 | p[7]), q, p + 8 + qhl);
}

void icmp_input(struct net_stack *ns, struct rte_mbuf *m, const struct rte_ipv4_hdr *ip)
{
	struct rte_icmp_hdr *ih;
	rte_be32_t src = ip->src_addr;

	ns->stats.icmp_rx++;
	if (rte_pktmbuf_data_len(m) < sizeof(*ih)) {
		ns->stats.icmp_drop_short++;
		goto drop;
	}
	if (mbuf_cksum(m) != 0xffff) {
		ns->stats.icmp_drop_cksum++;
		goto drop;
	}
	ih = rte_pktmbuf_mtod(m, struct rte_icmp_hdr *);
	if (ih->icmp_type == ICMP_DEST_UNREACH && ih->icmp_code == ICMP_UNREACH_NEEDFRAG) {
		frag_needed(ns, m);
		goto drop;
	}
	if (ih->icmp_type != RTE_IP_ICMP_ECHO_REQUEST || ih->icmp_code != 0) {
		ns->stats.icmp_drop_type++;
		goto drop;
	}
	ns->stats.icmp_rx_echo++;

	/* Turn the request into the reply in place: type 0, fresh checksum. */
	ih->icmp_type = RTE_IP_ICMP_ECHO_REPLY;
	ih->icmp_cksum = 0;
	ih->icmp_cksum = (uint16_t)~mbuf_cksum(m);
	if (ih->icmp_cksum == 0)
		ih->icmp_cksum = 0xffff;

	/* Reuse the buffer: drop what is before the ICMP header, output
	 * prepends fresh IPv4 and Ethernet headers into the headroom. */
	if (ipv4_output(ns, m, src, IPPROTO_ICMP) == 0)
		ns->stats.icmp_tx_echo_reply++;
	return;
drop:
	rte_pktmbuf_free(m);
}

void icmp_bucket_init(struct icmp_bucket *b, unsigned per_sec, unsigned burst,
		      uint64_t now_ns)
{
	memset(b, 0, sizeof(*b));
	if (per_sec == 0 || burst == 0)
		return;		/* cost 0: never any credit */
	b->cost_ns = 1000000000ull / per_sec;
	if (b->cost_ns == 0)
		b->cost_ns = 1;
	b->cap_ns = b->cost_ns * burst;
	b->credit_ns = b->cap_ns;
	b->last_ns = now_ns;
}

bool icmp_bucket_take(struct icmp_bucket *b, uint64_t now_ns)
{
	if (b->cost_ns == 0)
		return false;
	if (now_ns > b->last_ns) {
		uint64_t add = now_ns - b->last_ns;
		b->credit_ns = add >= b->cap_ns - b->credit_ns ? b->cap_ns : b->credit_ns + add;
		b->last_ns = now_ns;
	}
	if (b->credit_ns < b->cost_ns)
		return false;
	b->credit_ns -= b->cost_ns;
	return true;
}

/* Does the address name one host? (Not zero, loopback, multicast, class E
 * or limited broadcast, nor the directed broadcast of our subnet.) */
static bool one_host(const struct net_stack *ns, rte_be32_t a_be)
{
	uint32_t a = rte_be_to_cpu_32(a_be);
	uint32_t mask = rte_be_to_cpu_32(ns->addr.netmask);

	if (a == 0 || (a >> 24) == 127 || (a >> 28) >= 0xe)
		return false;
	if (mask && mask != 0xffffffffu && (a & ~mask) == ~mask &&
	    (a & mask) == (rte_be_to_cpu_32(ns->addr.ip) & mask))
		return false;
	return true;
}

/* May we answer this datagram with an ICMP error? (See icmp.h.) */
static bool error_allowed(const struct net_stack *ns, const struct rte_mbuf *m,
			  const struct rte_ipv4_hdr *ip)
{
	const uint8_t *l3 = (const uint8_t *)ip;
	const struct rte_ether_hdr *eh;

	if (ip->next_proto_id == IPPROTO_ICMP)
		return false;
	if (ip->dst_addr != ns->addr.ip || !one_host(ns, ip->src_addr))
		return false;
	if (rte_be_to_cpu_16(ip->fragment_offset) & RTE_IPV4_HDR_OFFSET_MASK)
		return false;
	/* The link-layer destination: frames come through eth_input, which
	 * leaves the Ethernet header in the buffer just before the IP one.
	 * (eth_input already drops IP in broadcast frames; this keeps the
	 * rule true whoever calls.) Without one in the buffer, no answer. */
	if (l3 < (const uint8_t *)m->buf_addr + sizeof(*eh))
		return false;
	eh = (const struct rte_ether_hdr *)(l3 - sizeof(*eh));
	if (!rte_is_unicast_ether_addr(&eh->dst_addr))
		return false;
	return true;
}

int icmp_send_unreach(struct net_stack *ns, struct icmp_bucket *b, const struct rte_mbuf *m,
		      const struct rte_ipv4_hdr *ip, uint8_t code)
{
	unsigned ihl = rte_ipv4_hdr_len(ip);
	unsigned quote = rte_pktmbuf_pkt_len(m) < 8 ? rte_pktmbuf_pkt_len(m) : 8;
	unsigned len = sizeof(struct rte_icmp_hdr) + ihl + quote;
	struct rte_icmp_hdr *ih;
	struct rte_mbuf *r;
	uint8_t *p;
	int rc;

	if (!error_allowed(ns, m, ip))
		return -EPERM;
	if (!icmp_bucket_take(b, ns->now_ns))
		return -EAGAIN;
	r = rte_pktmbuf_alloc(ns->pool);
	if (!r) {
		ns->stats.tx_nombuf++;
		return -ENOBUFS;
	}
	p = (uint8_t *)rte_pktmbuf_append(r, (uint16_t)len);
	if (!p || rte_pktmbuf_headroom(r) < IPV4_OUT_HEADROOM) {
		ns->stats.tx_nombuf++;
		rte_pktmbuf_free(r);
		return -ENOBUFS;
	}
	ih = (struct rte_icmp_hdr *)p;
	memset(ih, 0, sizeof(*ih));	/* identifier/sequence: "unused", zero */
	ih->icmp_type = ICMP_DEST_UNREACH;
	ih->icmp_code = code;
	memcpy(p + sizeof(*ih), ip, ihl);
	if (quote) {
		/* rte_pktmbuf_read copies only when the bytes span segments */
		const void *q = rte_pktmbuf_read(m, 0, quote, p + sizeof(*ih) + ihl);
		if (!q) {
			rte_pktmbuf_free(r);
			return -ENOBUFS;
		}
		if (q != p + sizeof(*ih) + ihl)
			memcpy(p + sizeof(*ih) + ihl, q, quote);
	}
	ih->icmp_cksum = (uint16_t)~rte_raw_cksum(p, len);
	rc = ipv4_output(ns, r, ip->src_addr, IPPROTO_ICMP);
	if (rc == 0)
		ns->stats.icmp_tx_unreach++;
	return rc;
}
