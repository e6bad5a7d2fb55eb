/*
 * arp.c - ARP cache (bounded, aging, pending queue) and ARP packet handling.
 *
 * See arp.h for the cache's shape. The table never grows: when full, a new
 * address may take the slot of an expired entry or of the oldest INCOMPLETE
 * one met on its probe path; otherwise it is refused and counted.
 */
#include "dataplane/net/arp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <rte_arp.h>
#include <rte_mbuf.h>

#include "common/clock.h"
#include "dataplane/net/eth.h"
#include "dataplane/net/net_stack.h"

#define ARP_PROBE_LIMIT 16	/* slots looked at before giving up */

void arp_conf_default(struct arp_conf *c)
{
	c->entries = 1024;
	c->pending = 8;
	c->reachable_ns = 300 * NS_PER_SEC;
	c->retry_ns = 1 * NS_PER_SEC;
	c->max_retries = 3;
}

static unsigned round_pow2(unsigned v)
{
	unsigned p = 1;
	while (p < v && p < (1u << 20))
		p <<= 1;
	return p;
}

int arp_cache_init(struct arp_cache *c, const struct arp_conf *conf)
{
	unsigned n = round_pow2(conf->entries ? conf->entries : 1);

	memset(c, 0, sizeof(*c));
	c->conf = *conf;
	if (c->conf.pending > ARP_PENDING_MAX)
		c->conf.pending = ARP_PENDING_MAX;
	c->slots = calloc(n, sizeof(*c->slots));
	if (!c->slots)
		return -ENOMEM;
	c->mask = n - 1;
	return 0;
}

static void entry_drop_pending(struct arp_entry *e)
{
	for (unsigned i = 0; i < e->npending; i++)
		rte_pktmbuf_free(e->pending[i]);
	e->npending = 0;
}

static void entry_clear(struct arp_cache *c, struct arp_entry *e)
{
	entry_drop_pending(e);
	memset(e, 0, sizeof(*e));
	c->used--;
}

void arp_cache_fini(struct arp_cache *c)
{
	if (!c->slots)
		return;
	for (unsigned i = 0; i <= c->mask; i++)
		if (c->slots[i].state != ARP_FREE)
			entry_drop_pending(&c->slots[i]);
	free(c->slots);
	c->slots = NULL;
}

/*
 * Every bit of the address reaches the low bits the table indexes by:
 * neighbours differ in their last octets, which a plain multiplicative
 * hash of the network-order word (the high byte on a little-endian CPU)
 * never carried there, so a /24 piled onto four home slots. MurmurHash3's
 * 32-bit finalizer mixes them all.
 */
static unsigned hash_ip(rte_be32_t ip)
{
	uint32_t h = rte_be_to_cpu_32(ip);

	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

struct arp_entry *arp_cache_find(struct arp_cache *c, rte_be32_t ip)
{
	unsigned i = hash_ip(ip);
	for (unsigned n = 0; n < ARP_PROBE_LIMIT; n++, i++) {
		struct arp_entry *e = &c->slots[i & c->mask];
		if (e->state != ARP_FREE && e->ip == ip)
			return e;
	}
	return NULL;
}

/*
 * Find a slot for ip: its own entry, else a free slot, else a victim on the
 * probe path (an expired entry first, else the INCOMPLETE one with the
 * earliest deadline). REACHABLE live entries are never evicted by a newcomer.
 */
static struct arp_entry *slot_for(struct arp_cache *c, rte_be32_t ip, uint64_t now_ns)
{
	struct arp_entry *free_slot = NULL, *victim = NULL;
	unsigned i = hash_ip(ip);

	for (unsigned n = 0; n < ARP_PROBE_LIMIT; n++, i++) {
		struct arp_entry *e = &c->slots[i & c->mask];
		if (e->state == ARP_FREE) {
			if (!free_slot)
				free_slot = e;
			continue;
		}
		if (e->ip == ip)
			return e;
		if (e->state == ARP_REACHABLE && e->expire_ns <= now_ns)
			victim = e;
		else if (e->state == ARP_INCOMPLETE && !victim)
			victim = e;
	}
	if (free_slot)
		return free_slot;
	if (victim) {
		entry_clear(c, victim);
		return victim;
	}
	return NULL;
}

static void entry_claim(struct arp_cache *c, struct arp_entry *e, rte_be32_t ip)
{
	if (e->state == ARP_FREE) {
		memset(e, 0, sizeof(*e));
		e->ip = ip;
		c->used++;
	}
}

struct arp_entry *arp_cache_learn(struct arp_cache *c, rte_be32_t ip,
				  const struct rte_ether_addr *mac,
				  uint64_t now_ns, bool create)
{
	struct arp_entry *e = create ? slot_for(c, ip, now_ns) : arp_cache_find(c, ip);

	if (!e)
		return NULL;
	entry_claim(c, e, ip);
	e->state = ARP_REACHABLE;
	e->retries = 0;
	e->mac = *mac;
	e->expire_ns = now_ns + c->conf.reachable_ns;
	return e;
}

struct arp_entry *arp_cache_get_incomplete(struct arp_cache *c, rte_be32_t ip,
					   uint64_t now_ns)
{
	struct arp_entry *e = slot_for(c, ip, now_ns);

	if (!e)
		return NULL;
	if (e->state == ARP_FREE) {
		entry_claim(c, e, ip);
		e->state = ARP_INCOMPLETE;
		e->retries = 0;
		e->expire_ns = now_ns;	/* due for its first request now */
	}
	return e;
}

bool arp_entry_hold(struct arp_cache *c, struct arp_entry *e, struct rte_mbuf *m)
{
	if (e->npending >= c->conf.pending)
		return false;
	e->pending[e->npending++] = m;
	return true;
}

unsigned arp_entry_take_pending(struct arp_entry *e, struct rte_mbuf **out)
{
	unsigned n = e->npending;
	memcpy(out, e->pending, n * sizeof(*out));
	e->npending = 0;
	return n;
}

unsigned arp_cache_age(struct arp_cache *c, uint64_t now_ns,
		       void (*resend)(void *ctx, rte_be32_t ip), void *ctx,
		       uint64_t *expired)
{
	unsigned removed = 0;

	for (unsigned i = 0; i <= c->mask; i++) {
		struct arp_entry *e = &c->slots[i];
		if (e->state == ARP_FREE || e->expire_ns > now_ns)
			continue;
		if (e->state == ARP_REACHABLE) {
			entry_clear(c, e);
			removed++;
		} else if (e->retries >= c->conf.max_retries) {
			if (expired)
				*expired += e->npending;
			entry_clear(c, e);
			removed++;
		} else {
			e->retries++;
			e->expire_ns = now_ns + c->conf.retry_ns;
			if (resend)
				resend(ctx, e->ip);
		}
	}
	/* Removing may break a probe chain: entries stay findable because
	 * lookups scan the full probe window rather than stopping at a hole. */
	return removed;
}

/* ---- packet side ---- */

static void arp_send(struct net_stack *ns, uint16_t op, rte_be32_t tip,
		     const struct rte_ether_addr *tha, const struct rte_ether_addr *eth_dst)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(ns->pool);
	struct rte_ether_hdr *eh;
	struct rte_arp_hdr *ah;

	if (!m) {
		ns->stats.tx_nombuf++;
		return;
	}
	eh = (struct rte_ether_hdr *)rte_pktmbuf_append(m, sizeof(*eh) + sizeof(*ah));
	if (!eh) {
		rte_pktmbuf_free(m);
		ns->stats.tx_nombuf++;
		return;
	}
	ah = (struct rte_arp_hdr *)(eh + 1);
	eh->dst_addr = *eth_dst;
	eh->src_addr = ns->addr.mac;
	eh->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP);
	ah->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
	ah->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	ah->arp_hlen = RTE_ETHER_ADDR_LEN;
	ah->arp_plen = 4;
	ah->arp_opcode = rte_cpu_to_be_16(op);
	ah->arp_data.arp_sha = ns->addr.mac;
	ah->arp_data.arp_sip = ns->addr.ip;
	ah->arp_data.arp_tha = *tha;
	ah->arp_data.arp_tip = tip;
	if (op == RTE_ARP_OP_REQUEST)
		ns->stats.arp_tx_request++;
	else
		ns->stats.arp_tx_reply++;
	net_tx_frame(ns, m);
}

void arp_send_request(struct net_stack *ns, rte_be32_t target)
{
	static const struct rte_ether_addr zero = { { 0 } };
	static const struct rte_ether_addr bcast = { { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff } };
	arp_send(ns, RTE_ARP_OP_REQUEST, target, &zero, &bcast);
}

/* Send what was waiting on a freshly resolved entry. */
static void flush_pending(struct net_stack *ns, struct arp_entry *e)
{
	struct rte_mbuf *out[ARP_PENDING_MAX];
	unsigned n = arp_entry_take_pending(e, out);

	for (unsigned i = 0; i < n; i++) {
		struct rte_ether_hdr *eh = rte_pktmbuf_mtod(out[i], struct rte_ether_hdr *);
		eh->dst_addr = e->mac;
		net_tx_frame(ns, out[i]);
	}
}

/* ARP input; `answer` false for a copy another lcore also received. */
static void arp_process(struct net_stack *ns, struct rte_mbuf *m, bool answer)
{
	const struct rte_arp_hdr *ah;
	struct rte_ether_addr sha;
	rte_be32_t sip, tip;
	uint16_t op;
	bool for_us;
	struct arp_entry *e;

	if (rte_pktmbuf_data_len(m) < sizeof(*ah)) {
		ns->stats.arp_drop_short++;
		goto out;
	}
	ah = rte_pktmbuf_mtod(m, const struct rte_arp_hdr *);
	op = rte_be_to_cpu_16(ah->arp_opcode);
	if (ah->arp_hardware != rte_cpu_to_be_16(RTE_ARP_HRD_ETHER) ||
	    ah->arp_protocol != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) ||
	    ah->arp_hlen != RTE_ETHER_ADDR_LEN || ah->arp_plen != 4 ||
	    (op != RTE_ARP_OP_REQUEST && op != RTE_ARP_OP_REPLY) ||
	    !rte_is_unicast_ether_addr(&ah->arp_data.arp_sha)) {
		ns->stats.arp_drop_format++;
		goto out;
	}
	sha = ah->arp_data.arp_sha;
	sip = ah->arp_data.arp_sip;
	tip = ah->arp_data.arp_tip;
	for_us = tip == ns->addr.ip;

	if (answer) {
		if (op == RTE_ARP_OP_REQUEST)
			ns->stats.arp_rx_request++;
		else
			ns->stats.arp_rx_reply++;
	}

	/*
	 * RFC 826: update an existing mapping from any ARP packet; create one
	 * only when the packet is addressed to us. Source 0.0.0.0 is a probe
	 * (RFC 5227) and teaches nothing.
	 */
	if (sip != 0) {
		e = arp_cache_find(&ns->arp, sip);
		if (e || for_us) {
			bool was_incomplete = e && e->state == ARP_INCOMPLETE;
			e = arp_cache_learn(&ns->arp, sip, &sha, ns->now_ns, for_us);
			if (!e && for_us)
				ns->stats.arp_cache_full++;
			if (e && was_incomplete)
				flush_pending(ns, e);
		}
	}
	if (!answer)
		goto out;
	if (!for_us) {
		ns->stats.arp_drop_not_for_us++;
		goto out;
	}
	if (op == RTE_ARP_OP_REQUEST)
		arp_send(ns, RTE_ARP_OP_REPLY, sip, &sha, &sha);
out:
	rte_pktmbuf_free(m);
}

void arp_input(struct net_stack *ns, struct rte_mbuf *m)
{
	arp_process(ns, m, true);
}

void arp_snoop(struct net_stack *ns, struct rte_mbuf *m)
{
	arp_process(ns, m, false);
}

void arp_resolve_and_send(struct net_stack *ns, struct rte_mbuf *m, rte_be32_t nexthop)
{
	struct arp_entry *e = arp_cache_find(&ns->arp, nexthop);
	struct rte_ether_hdr *eh = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);

	if (e && e->state == ARP_REACHABLE) {
		eh->dst_addr = e->mac;
		net_tx_frame(ns, m);
		return;
	}
	if (!e) {
		e = arp_cache_get_incomplete(&ns->arp, nexthop, ns->now_ns);
		if (!e) {
			ns->stats.arp_cache_full++;
			rte_pktmbuf_free(m);
			return;
		}
	}
	if (!arp_entry_hold(&ns->arp, e, m)) {
		ns->stats.arp_pending_overflow++;
		rte_pktmbuf_free(m);
	}
	if (e->retries == 0 && e->expire_ns <= ns->now_ns) {
		/* First frame for this address: ask at once. */
		e->retries = 1;
		e->expire_ns = ns->now_ns + ns->arp.conf.retry_ns;
		arp_send_request(ns, nexthop);
	}
}
