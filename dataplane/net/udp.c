/*
 * udp.c - UDP sockets, input, output and port unreachable. See udp.h.
 */
#include "dataplane/net/udp.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_udp.h>

#include "dataplane/net/cksum.h"
#include "dataplane/net/icmp.h"
#include "dataplane/net/icmp6.h"
#include "dataplane/net/ipv4.h"
#include "dataplane/net/ipv6.h"
#include "dataplane/net/net_stack.h"

#define UDP_HDR_LEN 8u

const char *const udp_stat_names[] = { UDP_STATS(STATS_NAME) };
const unsigned udp_stat_count = STATS_COUNT(udp_stat_names);

/* One queued datagram: the mbuf (data at the payload) and its source. */
struct udp_qent {
	struct rte_mbuf *m;
	struct net_addr from;
	rte_be16_t fport;
};

/*
 * A socket. Sockets on the same local port share a hash bucket's chain
 * (next: slot index, -1 ends it). The receive queue is a ring of
 * conf.rxq_dgrams entries in the stack's qents block.
 */
struct udp_sock {
	struct udp_stack *us;
	bool used;
	rte_be16_t lport, rport;	/* rport 0: unconnected */
	struct net_addr raddr;		/* all zero when unconnected */
	int next;
	struct udp_qent *q;
	unsigned qhead, qlen;
	uint32_t qbytes;
	udp_readable_fn cb;
	void *user;
};

struct udp_stack {
	struct net_stack *ns;
	struct udp_conf conf;
	struct udp_sock *socks;		/* conf.max_socks slots */
	unsigned *free_idx;		/* stack of free slot indices */
	unsigned nfree;
	int *bucket;			/* by local port: first slot, -1: none */
	unsigned bucket_mask;
	struct udp_qent *qents;		/* max_socks * rxq_dgrams */
	unsigned held;			/* mbufs in all receive queues */
	uint64_t k0, k1;		/* keys the ephemeral port choice */
	uint64_t port_seq;
	struct icmp_bucket unreach;	/* port unreachable rate */
	struct udp_stats stats;
};

void udp_conf_default(struct udp_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->max_socks = 256;
	c->rxq_dgrams = 64;
	c->rxq_bytes = 256 * 1024;
	c->rxq_mbufs = 2048;
	c->port_lo = 32768;
	c->port_hi = 60999;
	c->icmp_rate = 100;
	c->icmp_burst = 20;
}

/* ---- ephemeral port choice: SipHash-2-4 of a counter, keyed by the secret ---- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND do { \
	v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
	v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2; \
	v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0; \
	v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); } while (0)

/* SipHash-2-4 of one 64-bit word: unpredictable without the key. */
static uint64_t prf64(uint64_t k0, uint64_t k1, uint64_t m)
{
	uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1;
	uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
	uint64_t b = (uint64_t)8 << 56;

	v3 ^= m; SIPROUND; SIPROUND; v0 ^= m;
	v3 ^= b; SIPROUND; SIPROUND; v0 ^= b;
	v2 ^= 0xff;
	SIPROUND; SIPROUND; SIPROUND; SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

static void udp_input_l4(void *ctx, struct rte_mbuf *m, const struct rte_ipv4_hdr *ip);
static void udp_input6_l4(void *ctx, struct rte_mbuf *m, const struct rte_ipv6_hdr *ip);

/* ---- set-up ---- */

struct udp_stack *udp_stack_create(struct net_stack *ns, const struct udp_conf *conf)
{
	struct udp_stack *us;
	unsigned nb = 1;

	if (conf->max_socks == 0 || conf->max_socks > (1u << 20) || conf->rxq_dgrams == 0 ||
	    conf->rxq_dgrams > (1u << 16) || conf->rxq_bytes == 0 || conf->rxq_mbufs == 0 ||
	    conf->port_lo == 0 || conf->port_hi < conf->port_lo)
		return NULL;
	us = calloc(1, sizeof(*us));
	if (!us)
		return NULL;
	us->ns = ns;
	us->conf = *conf;
	while (nb < conf->max_socks)
		nb <<= 1;
	us->socks = calloc(conf->max_socks, sizeof(*us->socks));
	us->free_idx = calloc(conf->max_socks, sizeof(*us->free_idx));
	us->bucket = malloc(nb * sizeof(*us->bucket));
	us->qents = calloc((size_t)conf->max_socks * conf->rxq_dgrams, sizeof(*us->qents));
	if (!us->socks || !us->free_idx || !us->bucket || !us->qents) {
		udp_stack_destroy(us);
		return NULL;
	}
	us->bucket_mask = nb - 1;
	for (unsigned i = 0; i < nb; i++)
		us->bucket[i] = -1;
	for (unsigned i = 0; i < conf->max_socks; i++) {
		us->socks[i].us = us;
		us->socks[i].q = &us->qents[(size_t)i * conf->rxq_dgrams];
		us->free_idx[i] = conf->max_socks - 1 - i;
	}
	us->nfree = conf->max_socks;
	memcpy(&us->k0, conf->secret, 8);
	memcpy(&us->k1, conf->secret + 8, 8);
	icmp_bucket_init(&us->unreach, conf->icmp_rate, conf->icmp_burst, ns->now_ns);
	ns->udp_input = udp_input_l4;
	ns->udp_input6 = udp_input6_l4;
	ns->udp_ctx = us;
	return us;
}

void udp_stack_destroy(struct udp_stack *us)
{
	if (!us)
		return;
	if (us->socks) {
		for (unsigned i = 0; i < us->conf.max_socks; i++)
			if (us->socks[i].used)
				udp_close(&us->socks[i]);
	}
	if (us->ns && us->ns->udp_ctx == us) {
		us->ns->udp_input = NULL;
		us->ns->udp_input6 = NULL;
		us->ns->udp_ctx = NULL;
	}
	free(us->socks);
	free(us->free_idx);
	free(us->bucket);
	free(us->qents);
	free(us);
}

const struct udp_stats *udp_stack_stats(const struct udp_stack *us)
{
	return &us->stats;
}

unsigned udp_stack_sock_count(const struct udp_stack *us)
{
	return us->conf.max_socks - us->nfree;
}

unsigned udp_stack_mbufs_held(const struct udp_stack *us)
{
	return us->held;
}

unsigned udp_max_payload_af(const struct udp_stack *us, uint8_t family)
{
	unsigned iph = family == NET_AF_INET6 ? sizeof(struct rte_ipv6_hdr)
					       : sizeof(struct rte_ipv4_hdr);
	unsigned mtu = us->ns->addr.mtu;
	unsigned room = rte_pktmbuf_data_room_size(us->ns->pool);
	unsigned by_mtu = mtu > iph + UDP_HDR_LEN ? mtu - iph - UDP_HDR_LEN : 0;
	unsigned by_mbuf = room > RTE_PKTMBUF_HEADROOM + UDP_HDR_LEN ?
			   room - RTE_PKTMBUF_HEADROOM - UDP_HDR_LEN : 0;
	return by_mtu < by_mbuf ? by_mtu : by_mbuf;
}

/* ---- the socket table ---- */

static int *bucket_of(struct udp_stack *us, rte_be16_t lport)
{
	uint16_t p = rte_be_to_cpu_16(lport);
	return &us->bucket[(p ^ (p >> 7)) & us->bucket_mask];
}

/* The socket for a datagram to lport from raddr:rport: the one connected
 * to exactly that peer, else the unconnected one on lport, else NULL. */
static struct udp_sock *lookup(struct udp_stack *us, rte_be16_t lport,
			       const struct net_addr *raddr, rte_be16_t rport)
{
	struct udp_sock *wild = NULL;

	for (int i = *bucket_of(us, lport); i >= 0; i = us->socks[i].next) {
		struct udp_sock *s = &us->socks[i];
		if (s->lport != lport)
			continue;
		if (s->rport == 0)
			wild = s;
		else if (s->rport == rport && net_addr_eq(&s->raddr, raddr))
			return s;
	}
	return wild;
}

/* Is lport taken for a new socket with this peer (raddr 0: unconnected)?
 * Each (local port, peer) pair has at most one socket, and each local port
 * at most one unconnected socket; connected sockets and the unconnected one
 * share a port (the connected ones take their peers' datagrams). */
static bool port_taken(struct udp_stack *us, rte_be16_t lport, const struct net_addr *raddr,
		       rte_be16_t rport)
{
	for (int i = *bucket_of(us, lport); i >= 0; i = us->socks[i].next) {
		const struct udp_sock *s = &us->socks[i];
		if (s->lport == lport && s->rport == rport && net_addr_eq(&s->raddr, raddr))
			return true;
	}
	return false;
}

/* Any socket at all on lport? (Ephemeral ports are never shared.) */
static bool port_used(struct udp_stack *us, rte_be16_t lport)
{
	for (int i = *bucket_of(us, lport); i >= 0; i = us->socks[i].next)
		if (us->socks[i].lport == lport)
			return true;
	return false;
}

/* A random free ephemeral port whose replies come back here, or 0. */
static rte_be16_t pick_port(struct udp_stack *us, const struct net_addr *raddr,
			    rte_be16_t rport)
{
	const struct udp_conf *cf = &us->conf;
	uint32_t range = (uint32_t)cf->port_hi - cf->port_lo + 1;
	uint32_t start = (uint32_t)(prf64(us->k0, us->k1, us->port_seq++) % range);
	struct net_addr la;
	/* Unconnected, or no address of the peer's family (udp_send will
	 * fail): the reply's tuple is unknown, so no filter. */
	bool filter = rport && cf->port_ok && net_local_addr(us->ns, raddr->family, &la);

	for (uint32_t n = 0; n < range; n++) {
		uint16_t p = (uint16_t)(cf->port_lo + (start + n) % range);
		rte_be16_t lp = rte_cpu_to_be_16(p);
		if (port_used(us, lp))
			continue;
		if (filter && !cf->port_ok(cf->port_ok_ctx, &la, lp, raddr, rport))
			continue;
		return lp;
	}
	return 0;
}

int udp_open_addr(struct udp_stack *us, rte_be16_t lport, const struct net_addr *peer,
		  rte_be16_t rport, struct udp_sock **out)
{
	struct net_addr zero;
	const struct net_addr *raddr = &zero;
	struct udp_sock *s;
	int *b;

	*out = NULL;
	memset(&zero, 0, sizeof(zero));
	if (peer && !net_addr_is_zero(peer))
		raddr = peer;
	if (net_addr_is_zero(raddr) != (rport == 0))
		return -EINVAL;
	if (rport && raddr->family != NET_AF_INET && raddr->family != NET_AF_INET6)
		return -EINVAL;
	if (us->nfree == 0) {
		us->stats.sock_table_full++;
		return -ENFILE;
	}
	if (lport == 0) {
		lport = pick_port(us, raddr, rport);
		if (lport == 0) {
			us->stats.port_exhausted++;
			return -EADDRNOTAVAIL;
		}
	} else if (port_taken(us, lport, raddr, rport)) {
		us->stats.port_in_use++;
		return -EADDRINUSE;
	}
	s = &us->socks[us->free_idx[--us->nfree]];
	s->used = true;
	s->lport = lport;
	s->raddr = *raddr;
	s->rport = rport;
	s->qhead = s->qlen = 0;
	s->qbytes = 0;
	s->cb = NULL;
	s->user = NULL;
	b = bucket_of(us, lport);
	s->next = *b;
	*b = (int)(s - us->socks);
	us->stats.sock_opened++;
	*out = s;
	return 0;
}

int udp_open(struct udp_stack *us, rte_be16_t lport, rte_be32_t raddr, rte_be16_t rport,
	     struct udp_sock **out)
{
	struct net_addr a = net_addr_v4(raddr);

	return udp_open_addr(us, lport, raddr ? &a : NULL, rport, out);
}

void udp_close(struct udp_sock *s)
{
	struct udp_stack *us = s->us;
	int idx = (int)(s - us->socks);
	int *p;

	if (!s->used)
		return;
	while (s->qlen) {
		struct udp_qent *e = &s->q[s->qhead];
		us->held -= e->m->nb_segs;
		rte_pktmbuf_free(e->m);
		s->qhead = (s->qhead + 1) % us->conf.rxq_dgrams;
		s->qlen--;
	}
	for (p = bucket_of(us, s->lport); *p >= 0; p = &us->socks[*p].next) {
		if (*p == idx) {
			*p = s->next;
			break;
		}
	}
	s->used = false;
	s->cb = NULL;
	s->user = NULL;
	us->free_idx[us->nfree++] = (unsigned)idx;
	us->stats.sock_closed++;
}

void udp_set_callback(struct udp_sock *s, udp_readable_fn cb, void *user)
{
	s->cb = cb;
	s->user = user;
}

void *udp_get_user(const struct udp_sock *s)
{
	return s->user;
}

rte_be16_t udp_local_port(const struct udp_sock *s)
{
	return s->lport;
}

unsigned udp_pending(const struct udp_sock *s)
{
	return s->qlen;
}

/* ---- checksums ---- */

/* Fold a raw sum (16-bit words as they lie in memory, at most 0xffff)
 * with the pseudo-header, summed the same way. One formula for both
 * families: an IPv4 net_addr's words 1..3 are zero, and IPv6's 32-bit
 * upper-layer length (RFC 8200 8.1) sums as the 16-bit one when it fits
 * 16 bits, as a UDP length does. 0xffff: the datagram verifies. */
static uint16_t fold_pseudo(uint32_t sum, const struct net_addr *src, const struct net_addr *dst,
			    uint16_t ulen)
{
	for (unsigned i = 0; i < 4; i++) {
		sum += (src->w[i] >> 16) + (src->w[i] & 0xFFFF);
		sum += (dst->w[i] >> 16) + (dst->w[i] & 0xFFFF);
	}
	sum += rte_cpu_to_be_16(IPPROTO_UDP);
	sum += rte_cpu_to_be_16(ulen);
	while (sum >> 16)
		sum = (sum & 0xFFFF) + (sum >> 16);
	return (uint16_t)sum;
}

/* The port's verdict first (see udp.h), else verify in software. */
static bool cksum_ok(struct udp_stack *us, const struct rte_mbuf *m, const struct net_addr *src,
		     const struct net_addr *dst, rte_be16_t field, uint16_t ulen)
{
	uint64_t f = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;
	uint16_t raw;

	if (field == 0 && net_addr_is_v6(src)) {
		/* IPv6 forbids it (RFC 8200 8.1: the checksum is mandatory) */
		us->stats.drop_cksum++;
		return false;
	}
	if (field == 0) {		/* the sender computed none */
		us->stats.cksum_none++;
		return true;
	}
	if (f == RTE_MBUF_F_RX_L4_CKSUM_BAD) {
		us->stats.drop_cksum++;
		return false;
	}
	if (f != RTE_MBUF_F_RX_L4_CKSUM_UNKNOWN) {
		us->stats.cksum_offload_ok++;
		return true;
	}
	if (net_cksum_mbuf(m, 0, ulen, &raw) != 0 ||
	    fold_pseudo(raw, src, dst, ulen) != 0xFFFF) {
		us->stats.drop_cksum++;
		return false;
	}
	return true;
}

/* ---- input ---- */

/* No socket: count, maybe answer port unreachable (ICMP for IPv4, ip4;
 * ICMPv6 for IPv6, ip6; one of them is NULL). m is not consumed. */
static void no_port(struct udp_stack *us, const struct rte_mbuf *m, const struct rte_ipv4_hdr *ip4,
		    const struct rte_ipv6_hdr *ip6)
{
	int rc;

	us->stats.drop_no_port++;
	rc = ip4 ? icmp_send_unreach(us->ns, &us->unreach, m, ip4, ICMP_UNREACH_PORT)
		 : icmp6_send_port_unreach(us->ns, &us->unreach, m, ip6);
	switch (rc) {
	case 0:
		us->stats.unreach_sent++;
		break;
	case -EPERM:
		us->stats.unreach_suppressed++;
		break;
	case -EAGAIN:
		us->stats.unreach_limited++;
		break;
	default:		/* no buffer or route: net counters have it */
		break;
	}
}

/* One datagram of either family: src/dst from its IP header, ip4 or ip6
 * that header (port unreachable quotes it; the other NULL). m's data
 * at the UDP header, cut to the IP payload. Consumes m. */
static void udp_input_common(struct udp_stack *us, struct rte_mbuf *m, const struct net_addr *src,
			     const struct net_addr *dst, const struct rte_ipv4_hdr *ip4,
			     const struct rte_ipv6_hdr *ip6)
{
	const struct rte_udp_hdr *uh;
	struct udp_sock *s;
	struct udp_qent *e;
	uint32_t plen = rte_pktmbuf_pkt_len(m);	/* ipv4 cut it to the IP length */
	uint16_t ulen;
	bool was_empty;

	/* Headers sit in the first segment (as ipv4.c and tcp_input.c have it). */
	if (plen < UDP_HDR_LEN || rte_pktmbuf_data_len(m) < UDP_HDR_LEN) {
		us->stats.drop_len++;
		goto drop;
	}
	uh = rte_pktmbuf_mtod(m, const struct rte_udp_hdr *);
	ulen = rte_be_to_cpu_16(uh->dgram_len);
	if (ulen < UDP_HDR_LEN || ulen > plen) {
		us->stats.drop_len++;
		goto drop;
	}
	if (ulen < plen)
		rte_pktmbuf_trim(m, (uint16_t)(plen - ulen));
	if (!cksum_ok(us, m, src, dst, uh->dgram_cksum, ulen))
		goto drop;
	s = lookup(us, uh->dst_port, src, uh->src_port);
	if (!s) {
		no_port(us, m, ip4, ip6);
		goto drop;
	}
	if (s->qlen == us->conf.rxq_dgrams ||
	    s->qbytes + (ulen - UDP_HDR_LEN) > us->conf.rxq_bytes ||
	    us->held + m->nb_segs > us->conf.rxq_mbufs) {
		us->stats.drop_rxq_full++;
		goto drop;
	}
	e = &s->q[(s->qhead + s->qlen) % us->conf.rxq_dgrams];
	e->from = *src;
	e->fport = uh->src_port;
	rte_pktmbuf_adj(m, UDP_HDR_LEN);	/* in the first segment: checked above */
	e->m = m;
	was_empty = s->qlen == 0;
	s->qlen++;
	s->qbytes += ulen - UDP_HDR_LEN;
	us->held += m->nb_segs;
	us->stats.rx++;
	us->stats.rx_bytes += ulen - UDP_HDR_LEN;
	if (was_empty && s->cb)
		s->cb(s, s->user);	/* may close s: not touched after */
	return;
drop:
	rte_pktmbuf_free(m);
}

static void udp_input_l4(void *ctx, struct rte_mbuf *m, const struct rte_ipv4_hdr *ip)
{
	struct net_addr src = net_addr_v4(ip->src_addr), dst = net_addr_v4(ip->dst_addr);

	udp_input_common(ctx, m, &src, &dst, ip, NULL);
}

/* ipv6.c has checked the header, skipped extension headers and cut m to
 * the upper-layer length. */
static void udp_input6_l4(void *ctx, struct rte_mbuf *m, const struct rte_ipv6_hdr *ip)
{
	struct net_addr src = net_addr_v6(ip->src_addr), dst = net_addr_v6(ip->dst_addr);

	udp_input_common(ctx, m, &src, &dst, NULL, ip);
}

int udp_recv(struct udp_sock *s, void *buf, size_t cap, rte_be32_t *from, rte_be16_t *fport)
{
	struct net_addr a;
	int n = udp_recv_addr(s, buf, cap, from ? &a : NULL, fport);

	/* an IPv6 source has no IPv4 form: 0 (use udp_recv_addr) */
	if (n >= 0 && from)
		*from = a.family == NET_AF_INET ? a.v4 : 0;
	return n;
}

int udp_recv_addr(struct udp_sock *s, void *buf, size_t cap, struct net_addr *from,
		  rte_be16_t *fport)
{
	struct udp_stack *us = s->us;
	struct udp_qent *e;
	struct rte_mbuf *m;
	size_t n = 0;

	if (!s->used || s->qlen == 0)
		return -EAGAIN;
	e = &s->q[s->qhead];
	m = e->m;
	if (from)
		*from = e->from;
	if (fport)
		*fport = e->fport;
	for (const struct rte_mbuf *seg = m; seg && n < cap; seg = seg->next) {
		size_t k = seg->data_len < cap - n ? seg->data_len : cap - n;
		memcpy((uint8_t *)buf + n, rte_pktmbuf_mtod(seg, const uint8_t *), k);
		n += k;
	}
	if (rte_pktmbuf_pkt_len(m) > n)
		us->stats.rx_truncated++;
	s->qhead = (s->qhead + 1) % us->conf.rxq_dgrams;
	s->qlen--;
	s->qbytes -= rte_pktmbuf_pkt_len(m);
	us->held -= m->nb_segs;
	rte_pktmbuf_free(m);
	return (int)n;
}

/* ---- output ---- */

int udp_send(struct udp_sock *s, rte_be32_t dst, rte_be16_t dport,
	     const struct iovec *iov, int n)
{
	struct net_addr a = net_addr_v4(dst);

	return udp_send_addr(s, dst ? &a : NULL, dport, iov, n);
}

int udp_send_addr(struct udp_sock *s, const struct net_addr *to, rte_be16_t dport,
		  const struct iovec *iov, int n)
{
	struct udp_stack *us = s->us;
	struct net_stack *ns = us->ns;
	struct net_addr dst, src;
	struct rte_udp_hdr *uh;
	struct rte_mbuf *m;
	size_t len = 0;
	unsigned maxp, headroom;
	uint8_t *p;
	uint16_t ck;
	int rc;

	if (!s->used)
		return -EBADF;
	memset(&dst, 0, sizeof(dst));
	if (to)
		dst = *to;
	if (net_addr_is_zero(&dst) && dport == 0) {
		dst = s->raddr;
		dport = s->rport;
	} else if (s->rport && (!net_addr_eq(&dst, &s->raddr) || dport != s->rport)) {
		return -EISCONN;
	}
	if (net_addr_is_zero(&dst) || dport == 0)
		return -EDESTADDRREQ;
	if (!net_local_addr(ns, dst.family, &src)) {
		us->stats.tx_noroute++;		/* no address of that family */
		return -ENETUNREACH;
	}
	if (net_addr_is_v6(&dst) && ipv6_is_link_local(dst.v6))
		src = net_addr_v6(ns->ll6);	/* as ipv6_output would choose */
	maxp = udp_max_payload_af(us, dst.family);
	headroom = net_addr_is_v6(&dst) ? IPV6_OUT_HEADROOM : IPV4_OUT_HEADROOM;
	for (int i = 0; i < n; i++) {
		len += iov[i].iov_len;
		if (len > maxp) {
			us->stats.tx_too_big++;
			return -EMSGSIZE;
		}
	}
	m = rte_pktmbuf_alloc(ns->pool);
	if (!m) {
		us->stats.tx_nombuf++;
		ns->stats.tx_nombuf++;
		return -ENOBUFS;
	}
	p = (uint8_t *)rte_pktmbuf_append(m, (uint16_t)(UDP_HDR_LEN + len));
	if (!p || rte_pktmbuf_headroom(m) < headroom) {
		rte_pktmbuf_free(m);
		us->stats.tx_too_big++;
		return -EMSGSIZE;
	}
	uh = (struct rte_udp_hdr *)p;
	uh->src_port = s->lport;
	uh->dst_port = dport;
	uh->dgram_len = rte_cpu_to_be_16((uint16_t)(UDP_HDR_LEN + len));
	uh->dgram_cksum = 0;
	p += UDP_HDR_LEN;
	for (int i = 0; i < n; i++) {
		if (iov[i].iov_len)
			memcpy(p, iov[i].iov_base, iov[i].iov_len);
		p += iov[i].iov_len;
	}
	ck = (uint16_t)~fold_pseudo(rte_raw_cksum(uh, UDP_HDR_LEN + len), &src, &dst,
				    (uint16_t)(UDP_HDR_LEN + len));
	uh->dgram_cksum = ck == 0 ? 0xFFFF : ck;	/* 0 would mean "none" */
	if (net_addr_is_v6(&dst))
		rc = ipv6_output(ns, m, dst.v6, src.v6, IPPROTO_UDP, 0);
	else
		rc = ipv4_output(ns, m, dst.v4, IPPROTO_UDP);
	if (rc < 0) {
		us->stats.tx_noroute++;
		return rc;
	}
	us->stats.tx++;
	us->stats.tx_bytes += len;
	return (int)len;
}
