/*
 * nd.c - IPv6 Neighbor Discovery: the neighbour cache, NS/NA/RA handling
 * and next-hop resolution. See nd.h.
 */
#include "dataplane/net/nd.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <rte_ip.h>
#include <rte_mbuf.h>

#include "common/clock.h"
#include "dataplane/net/icmp6.h"
#include "dataplane/net/ipv6.h"
#include "dataplane/net/net_stack.h"

#define ND_PROBE_LIMIT 16	/* slots looked at before giving up */
#define ND_TICK_MAX 64		/* entries changed per nd_tick (bounded work) */

/* Option types (RFC 4861 4.6). */
#define ND_OPT_SLLA 1
#define ND_OPT_TLLA 2

void nd_conf_default(struct nd_conf *c)
{
	c->entries = 1024;
	c->pending = 8;
	c->reachable_ns = 30 * NS_PER_SEC;
	c->retrans_ns = 1 * NS_PER_SEC;
	c->delay_ns = 5 * NS_PER_SEC;
	c->gc_ns = 600 * NS_PER_SEC;
	c->max_probes = 3;
}

int nd_cache_init(struct nd_cache *c, const struct nd_conf *conf)
{
	unsigned n = 1;
	while (n < (conf->entries ? conf->entries : 1) && n < (1u << 20))
		n <<= 1;
	memset(c, 0, sizeof(*c));
	c->conf = *conf;
	if (c->conf.pending > ND_PENDING_MAX)
		c->conf.pending = ND_PENDING_MAX;
	if (c->conf.max_probes == 0)
		c->conf.max_probes = 1;
	c->slots = calloc(n, sizeof(*c->slots));
	if (!c->slots)
		return -ENOMEM;
	c->mask = n - 1;
	return 0;
}

static void drop_pending(struct nd_entry *e)
{
	for (unsigned i = 0; i < e->npending; i++)
		rte_pktmbuf_free(e->pending[i]);
	e->npending = 0;
}

void nd_cache_fini(struct nd_cache *c)
{
	if (!c->slots)
		return;
	for (unsigned i = 0; i <= c->mask; i++)
		if (c->slots[i].state != ND_FREE)
			drop_pending(&c->slots[i]);
	free(c->slots);
	c->slots = NULL;
}

static unsigned slot_of(const struct nd_cache *c, const uint8_t ip[16])
{
	uint32_t w[4];
	memcpy(w, ip, 16);
	uint32_t h = (w[0] ^ w[1] ^ w[2] ^ w[3]) * 0x9e3779b1u;
	return (h ^ (h >> 15)) & c->mask;
}

struct nd_entry *nd_cache_find(struct nd_cache *c, const uint8_t ip[16])
{
	unsigned i = slot_of(c, ip);
	for (unsigned k = 0; k <= c->mask && k < ND_PROBE_LIMIT; k++) {
		struct nd_entry *e = &c->slots[(i + k) & c->mask];
		if (e->state != ND_FREE && memcmp(e->ip, ip, 16) == 0)
			return e;
	}
	return NULL;
}

/* Remove e, keeping probe chains intact (the table uses tombstone-free
 * linear probing with a bounded probe length: re-insert the followers). */
static void entry_remove(struct nd_cache *c, struct nd_entry *e)
{
	unsigned hole = (unsigned)(e - c->slots), j = hole;

	drop_pending(e);
	memset(e, 0, sizeof(*e));
	c->used--;
	for (unsigned k = 1; k <= c->mask && k < ND_PROBE_LIMIT; k++) {
		j = (j + 1) & c->mask;
		struct nd_entry *f = &c->slots[j];
		if (f->state == ND_FREE)
			break;
		unsigned home = slot_of(c, f->ip);
		/* can f move up to the hole? only if the hole lies on its
		 * probe path (nearer its home than where it is) */
		if (((hole - home) & c->mask) < ((j - home) & c->mask)) {
			c->slots[hole] = *f;
			memset(f, 0, sizeof(*f));
			hole = j;
		}
	}
}

/* A new entry for ip (state FREE on return: the caller fills it). A full
 * probe path evicts a STALE entry met on it (never INCOMPLETE/PROBE ones
 * that have frames or probes out). NULL: no room (counted). */
static struct nd_entry *entry_new(struct net_stack *ns, const uint8_t ip[16])
{
	struct nd_cache *c = &ns->nd;
	unsigned i = slot_of(c, ip);
	struct nd_entry *victim = NULL;
	for (unsigned k = 0; k <= c->mask && k < ND_PROBE_LIMIT; k++) {
		struct nd_entry *e = &c->slots[(i + k) & c->mask];
		if (e->state == ND_FREE) {
			memcpy(e->ip, ip, 16);
			c->used++;
			return e;
		}
		if (!victim && e->state == ND_STALE)
			victim = e;
	}
	if (!victim) {
		ns->stats.nd_cache_full++;
		return NULL;
	}
	drop_pending(victim);
	memset(victim, 0, sizeof(*victim));
	memcpy(victim->ip, ip, 16);
	return victim;
}

static void send_pending(struct net_stack *ns, struct nd_entry *e)
{
	struct rte_mbuf *out[ND_PENDING_MAX];
	unsigned n = e->npending;
	memcpy(out, e->pending, n * sizeof(out[0]));
	e->npending = 0;
	for (unsigned i = 0; i < n; i++) {
		struct rte_ether_hdr *eh = rte_pktmbuf_mtod(out[i], struct rte_ether_hdr *);
		eh->dst_addr = e->mac;
		net_tx_frame(ns, out[i]);
	}
}

struct nd_entry *nd_learn(struct net_stack *ns, const uint8_t ip[16],
			  const struct rte_ether_addr *mac, bool is_na, bool solicited,
			  bool override)
{
	struct nd_cache *c = &ns->nd;
	struct nd_entry *e = nd_cache_find(c, ip);
	uint64_t now = ns->now_ns;

	if (!is_na) {
		/* NS / RA source link-layer option (RFC 4861 7.2.3, 6.3.4):
		 * create STALE, or STALE when the address changed */
		if (!e) {
			e = entry_new(ns, ip);
			if (!e)
				return NULL;
			e->mac = *mac;
			e->state = ND_STALE;
			e->used_ns = now;
			return e;
		}
		if (e->state == ND_INCOMPLETE) {
			e->mac = *mac;
			e->state = ND_STALE;
			e->used_ns = now;
			send_pending(ns, e);
		} else if (!rte_is_same_ether_addr(&e->mac, mac)) {
			e->mac = *mac;
			e->state = ND_STALE;
		}
		return e;
	}
	/* NA (RFC 4861 7.2.5): no entry, nothing to do */
	if (!e)
		return NULL;
	if (e->state == ND_INCOMPLETE) {
		e->mac = *mac;
		e->probes = 0;
		e->used_ns = now;
		if (solicited) {
			e->state = ND_REACHABLE;
			e->timer_ns = now + c->conf.reachable_ns;
		} else {
			e->state = ND_STALE;
		}
		send_pending(ns, e);
		return e;
	}
	bool same = rte_is_same_ether_addr(&e->mac, mac);
	if (!override && !same) {
		if (e->state == ND_REACHABLE)
			e->state = ND_STALE;
		return e;
	}
	e->mac = *mac;
	if (solicited) {
		e->state = ND_REACHABLE;
		e->probes = 0;
		e->timer_ns = now + c->conf.reachable_ns;
	} else if (!same) {
		e->state = ND_STALE;
	}
	return e;
}

bool nd_default_router(const struct net_stack *ns, uint8_t out[16])
{
	if (!ipv6_is_unspecified(ns->addr.gateway6)) {
		memcpy(out, ns->addr.gateway6, 16);
		return true;
	}
	if (ns->nd.router_until > ns->now_ns) {
		memcpy(out, ns->nd.router, 16);
		return true;
	}
	return false;
}

void nd_resolve_and_send(struct net_stack *ns, struct rte_mbuf *m, const uint8_t nexthop[16])
{
	struct rte_ether_hdr *eh = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct nd_cache *c = &ns->nd;
	struct nd_entry *e;

	if (ipv6_is_multicast(nexthop)) {
		ipv6_mcast_mac(nexthop, &eh->dst_addr);
		net_tx_frame(ns, m);
		return;
	}
	e = nd_cache_find(c, nexthop);
	if (e && e->state != ND_INCOMPLETE) {
		e->used_ns = ns->now_ns;
		if (e->state == ND_STALE) {
			e->state = ND_DELAY;
			e->timer_ns = ns->now_ns + c->conf.delay_ns;
		}
		eh->dst_addr = e->mac;
		net_tx_frame(ns, m);
		return;
	}
	if (!e) {
		e = entry_new(ns, nexthop);
		if (!e) {
			rte_pktmbuf_free(m);
			return;
		}
		e->state = ND_INCOMPLETE;
		e->probes = 1;
		e->timer_ns = ns->now_ns + c->conf.retrans_ns;
		nd_send_ns(ns, nexthop, NULL);
	}
	if (e->npending >= c->conf.pending) {
		ns->stats.nd_pending_overflow++;
		rte_pktmbuf_free(m);
		return;
	}
	e->pending[e->npending++] = m;
}

void nd_tick(struct net_stack *ns)
{
	struct nd_cache *c = &ns->nd;
	uint64_t now = ns->now_ns;
	unsigned work = 0;

	if (c->used == 0)
		return;
	for (unsigned i = 0; i <= c->mask && work < ND_TICK_MAX; i++) {
		struct nd_entry *e = &c->slots[i];
		switch (e->state) {
		case ND_INCOMPLETE:
		case ND_PROBE:
			if (e->timer_ns > now)
				break;
			work++;
			if (e->probes >= c->conf.max_probes) {
				if (e->state == ND_INCOMPLETE)
					ns->stats.nd_pending_expired += e->npending;
				ns->stats.nd_unreachable++;
				entry_remove(c, e);
				i--;	/* a follower may have moved here */
				break;
			}
			e->probes++;
			e->timer_ns = now + c->conf.retrans_ns;
			nd_send_ns(ns, e->ip, e->state == ND_PROBE ? &e->mac : NULL);
			break;
		case ND_REACHABLE:
			if (e->timer_ns <= now)
				e->state = ND_STALE;
			break;
		case ND_DELAY:
			if (e->timer_ns > now)
				break;
			work++;
			e->state = ND_PROBE;
			e->probes = 1;
			e->timer_ns = now + c->conf.retrans_ns;
			nd_send_ns(ns, e->ip, &e->mac);
			break;
		case ND_STALE:
			if (now - e->used_ns > c->conf.gc_ns) {
				work++;
				entry_remove(c, e);
				i--;
			}
			break;
		default:
			break;
		}
	}
	if (c->router_until && c->router_until <= now)
		c->router_until = 0;
}

/* ---- packets ---- */

/* An NS or NA: ICMPv6 header (4) + reserved/flags (4) + target (16) +
 * one link-layer address option (8). */
#define ND_MSG_LEN 32

static void nd_send(struct net_stack *ns, uint8_t type, const uint8_t target[16],
		    const uint8_t dst[16], const uint8_t *src, uint32_t flags, uint8_t opt_type,
		    const struct rte_ether_addr *l2dst)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(ns->pool);
	uint8_t *p;

	if (!m) {
		ns->stats.tx_nombuf++;
		return;
	}
	p = (uint8_t *)rte_pktmbuf_append(m, ND_MSG_LEN);
	if (!p || rte_pktmbuf_headroom(m) < IPV6_OUT_HEADROOM) {
		ns->stats.tx_nombuf++;
		rte_pktmbuf_free(m);
		return;
	}
	memset(p, 0, ND_MSG_LEN);
	p[0] = type;
	flags = rte_cpu_to_be_32(flags);
	memcpy(p + 4, &flags, 4);
	memcpy(p + 8, target, 16);
	p[24] = opt_type;
	p[25] = 1;	/* 8 bytes */
	memcpy(p + 26, &ns->addr.mac, 6);
	const uint8_t *s = src ? src : (ns->addr.ip6_ok ? ns->addr.ip6 : ns->ll6);
	uint16_t ck = ipv6_l4_cksum(m, 0, ND_MSG_LEN, s, dst, IPPROTO_ICMPV6);
	memcpy(p + 2, &ck, 2);
	if (l2dst) {
		/* unicast probe to a known MAC: no resolution (it is what we
		 * are checking) */
		struct rte_ipv6_hdr *ip = (struct rte_ipv6_hdr *)rte_pktmbuf_prepend(m, sizeof(*ip));
		struct rte_ether_hdr *eh = (struct rte_ether_hdr *)rte_pktmbuf_prepend(m, sizeof(*eh));
		if (!ip || !eh) {
			ns->stats.tx_nombuf++;
			rte_pktmbuf_free(m);
			return;
		}
		ip = (struct rte_ipv6_hdr *)(eh + 1);
		ip->vtc_flow = rte_cpu_to_be_32(6u << 28);
		ip->payload_len = rte_cpu_to_be_16(ND_MSG_LEN);
		ip->proto = IPPROTO_ICMPV6;
		ip->hop_limits = 255;
		memcpy(ip->src_addr, s, 16);
		memcpy(ip->dst_addr, dst, 16);
		eh->src_addr = ns->addr.mac;
		eh->dst_addr = *l2dst;
		eh->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6);
		ns->stats.ip6_tx++;
		net_tx_frame(ns, m);
		return;
	}
	ipv6_output(ns, m, dst, s, IPPROTO_ICMPV6, 255);
}

void nd_send_ns(struct net_stack *ns, const uint8_t target[16], const struct rte_ether_addr *mac)
{
	uint8_t dst[16];
	const uint8_t *src;

	if (mac)
		memcpy(dst, target, 16);
	else
		ipv6_solicited_node(target, dst);
	/* the source: link-local for link-local targets, else our global */
	src = ipv6_is_link_local(target) || !ns->addr.ip6_ok ? ns->ll6 : ns->addr.ip6;
	ns->stats.nd_tx_ns++;
	nd_send(ns, ICMP6_ND_NS, target, dst, src, 0, ND_OPT_SLLA, mac);
}

/* Walk the options after the fixed part (off..len): the first link-layer
 * address option of type want into *mac. Returns -1 when malformed (an
 * option of length 0, or running past the end: RFC 4861 drops those). */
static int find_lla(const uint8_t *p, uint32_t off, uint32_t len, uint8_t want,
		    struct rte_ether_addr *mac, bool *found)
{
	*found = false;
	while (off + 2 <= len) {
		uint32_t olen = (uint32_t)p[off + 1] * 8;
		if (olen == 0 || off + olen > len)
			return -1;
		if (p[off] == want && olen >= 8 && !*found) {
			memcpy(mac, p + off + 2, 6);
			*found = true;
		}
		off += olen;
	}
	return off == len ? 0 : -1;
}

/* The ICMPv6 message, contiguous (ND messages are small; a chained one
 * is copied into buf). */
static const uint8_t *msg_bytes(const struct rte_mbuf *m, uint32_t len, uint8_t *buf)
{
	return rte_pktmbuf_read(m, 0, len, buf);
}

#define ND_MAX_MSG 1280

void nd_input_ns(struct net_stack *ns, struct rte_mbuf *m, const uint8_t src[16],
		 const uint8_t dst[16], uint32_t len)
{
	uint8_t buf[ND_MAX_MSG];
	const uint8_t *p;
	struct rte_ether_addr mac;
	bool has_lla;
	uint8_t target[16], to[16];

	ns->stats.nd_rx_ns++;
	if (len < 24 || len > ND_MAX_MSG || !(p = msg_bytes(m, len, buf)) ||
	    find_lla(p, 24, len, ND_OPT_SLLA, &mac, &has_lla) != 0) {
		ns->stats.nd_drop_format++;
		goto out;
	}
	memcpy(target, p + 8, 16);
	if (ipv6_is_multicast(target) || !ipv6_is_ours(ns, target)) {
		ns->stats.nd_drop_format++;	/* not a target of ours */
		goto out;
	}
	if (ipv6_is_unspecified(src)) {
		/* DAD probe (RFC 4862 5.4.3): must go to the solicited-node
		 * group and carry no link-layer option; we do not defend */
		if (has_lla || !ipv6_is_multicast(dst))
			ns->stats.nd_drop_format++;
		else
			ns->stats.nd_dad_conflict++;
		goto out;
	}
	if (has_lla)
		nd_learn(ns, src, &mac, false, false, false);
	if (ns->nd_snoop)
		goto out;	/* a copy: the lcore that got it answers */
	/* RFC 4861 7.2.4: solicited NA, router flag off, override on, to the
	 * solicitor, with our link-layer address */
	memcpy(to, src, 16);
	ns->stats.nd_tx_na++;
	nd_send(ns, ICMP6_ND_NA, target, to, target, 0x60000000u, ND_OPT_TLLA, NULL);
out:
	rte_pktmbuf_free(m);
}

void nd_input_na(struct net_stack *ns, struct rte_mbuf *m, const uint8_t src[16], uint32_t len)
{
	uint8_t buf[ND_MAX_MSG];
	const uint8_t *p;
	struct rte_ether_addr mac;
	bool has_lla;
	uint32_t flags;

	(void)src;
	ns->stats.nd_rx_na++;
	if (len < 24 || len > ND_MAX_MSG || !(p = msg_bytes(m, len, buf)) ||
	    find_lla(p, 24, len, ND_OPT_TLLA, &mac, &has_lla) != 0 ||
	    ipv6_is_multicast(p + 8)) {
		ns->stats.nd_drop_format++;
		goto out;
	}
	memcpy(&flags, p + 4, 4);
	flags = rte_be_to_cpu_32(flags);
	if (ipv6_is_ours(ns, p + 8)) {
		ns->stats.nd_dad_conflict++;	/* someone else claims our address */
		goto out;
	}
	if (has_lla)
		nd_learn(ns, p + 8, &mac, true, flags & 0x40000000u, flags & 0x20000000u);
out:
	rte_pktmbuf_free(m);
}

void nd_input_ra(struct net_stack *ns, struct rte_mbuf *m, const uint8_t src[16], uint32_t len)
{
	uint8_t buf[ND_MAX_MSG];
	const uint8_t *p;
	struct rte_ether_addr mac;
	bool has_lla;
	uint16_t lifetime;

	ns->stats.nd_rx_ra++;
	/* RFC 4861 6.1.2: from a link-local source, at least 16 bytes */
	if (len < 16 || len > ND_MAX_MSG || !ipv6_is_link_local(src) ||
	    !(p = msg_bytes(m, len, buf)) ||
	    find_lla(p, 16, len, ND_OPT_SLLA, &mac, &has_lla) != 0) {
		ns->stats.nd_drop_format++;
		goto out;
	}
	if (p[4])
		ns->nd.cur_hop_limit = p[4];
	memcpy(&lifetime, p + 6, 2);
	lifetime = rte_be_to_cpu_16(lifetime);
	if (has_lla)
		nd_learn(ns, src, &mac, false, false, false);
	if (lifetime == 0) {
		/* "not a default router" (any more) */
		if (ns->nd.router_until && memcmp(ns->nd.router, src, 16) == 0)
			ns->nd.router_until = 0;
	} else {
		if (!ns->nd.router_until || memcmp(ns->nd.router, src, 16) != 0)
			ns->stats.nd_router_learned++;
		memcpy(ns->nd.router, src, 16);
		ns->nd.router_until = ns->now_ns + (uint64_t)lifetime * NS_PER_SEC;
	}
out:
	rte_pktmbuf_free(m);
}
