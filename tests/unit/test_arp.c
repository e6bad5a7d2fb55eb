/*
 * test_arp.c - ARP cache (bound, aging, pending queue) and ARP on the wire.
 */
#include <criterion/criterion.h>

#include "common/clock.h"
#include "dataplane/net/arp.h"
#include "dataplane/net/ipv4.h"
#include "dataplane/net/net_stack.h"
#include "tests/support/net_harness.h"

static struct arp_conf small_conf(unsigned entries, unsigned pending)
{
	struct arp_conf c;
	arp_conf_default(&c);
	c.entries = entries;
	c.pending = pending;
	c.reachable_ns = 10 * NS_PER_SEC;
	c.retry_ns = NS_PER_SEC;
	c.max_retries = 3;
	return c;
}

static rte_be32_t ip_n(unsigned n)
{
	return rte_cpu_to_be_32(0xC6120000u + n);	/* 198.18.x.y */
}

Test(arp_cache, learn_find_and_age)
{
	struct arp_conf conf = small_conf(16, 4);
	struct arp_cache c;
	struct rte_ether_addr mac = { { 2, 1, 2, 3, 4, 5 } };

	cr_assert_eq(arp_cache_init(&c, &conf), 0);
	cr_assert_null(arp_cache_find(&c, ip_n(7)));
	cr_assert_not_null(arp_cache_learn(&c, ip_n(7), &mac, 0, true));
	struct arp_entry *e = arp_cache_find(&c, ip_n(7));
	cr_assert_not_null(e);
	cr_assert_eq(e->state, ARP_REACHABLE);
	cr_assert(rte_is_same_ether_addr(&e->mac, &mac));

	/* Refresh without create does nothing for unknown addresses. */
	cr_assert_null(arp_cache_learn(&c, ip_n(8), &mac, 0, false));
	cr_assert_null(arp_cache_find(&c, ip_n(8)));

	/* Still there just before its lifetime ends, gone after. */
	cr_assert_eq(arp_cache_age(&c, 10 * NS_PER_SEC - 1, NULL, NULL, NULL), 0);
	cr_assert_not_null(arp_cache_find(&c, ip_n(7)));
	cr_assert_eq(arp_cache_age(&c, 10 * NS_PER_SEC, NULL, NULL, NULL), 1);
	cr_assert_null(arp_cache_find(&c, ip_n(7)));
	cr_assert_eq(c.used, 0);
	arp_cache_fini(&c);
}

/*
 * Every neighbour of a /24 fits a cache sized well above 256. The addresses
 * differ only in their last octet, the high byte of the integer a
 * little-endian CPU reads from network order: a hash blind to those bits
 * piles a whole subnet on a few home slots, and past ARP_PROBE_LIMIT
 * probes the cache refuses the rest (an ARP storm of on-link senders then
 * locked the real neighbours out for the reachable lifetime).
 */
Test(arp_cache, a_whole_subnet_fits)
{
	struct arp_conf conf = small_conf(1024, 4);
	struct arp_cache c;
	struct rte_ether_addr mac = { { 2, 1, 2, 3, 4, 5 } };
	unsigned got = 0;

	cr_assert_eq(arp_cache_init(&c, &conf), 0);
	for (unsigned n = 1; n < 255; n++)
		if (arp_cache_learn(&c, ip_n(n), &mac, 0, true))
			got++;
	cr_assert_eq(got, 254, "%u of the 254 addresses of 198.18.0.0/24 cached", got);
	for (unsigned n = 1; n < 255; n++)
		cr_assert_not_null(arp_cache_find(&c, ip_n(n)), "198.18.0.%u", n);
	arp_cache_fini(&c);
}

Test(arp_cache, bounded_and_never_evicts_live_entries)
{
	struct arp_conf conf = small_conf(16, 4);
	struct arp_cache c;
	struct rte_ether_addr mac = { { 2, 1, 2, 3, 4, 5 } };
	unsigned learned = 0, refused = 0;

	cr_assert_eq(arp_cache_init(&c, &conf), 0);
	for (unsigned i = 0; i < 1000; i++) {
		if (arp_cache_learn(&c, ip_n(i), &mac, 0, true))
			learned++;
		else
			refused++;
	}
	cr_assert_leq(c.used, 16, "cache grew past its bound: %u", c.used);
	cr_assert_eq(c.used, learned > 16 ? 16 : learned);
	cr_assert_gt(refused, 0);
	/* Every entry found is one we learned and is intact. */
	for (unsigned i = 0; i <= c.mask; i++)
		if (c.slots[i].state == ARP_REACHABLE)
			cr_assert_eq(arp_cache_find(&c, c.slots[i].ip), &c.slots[i]);
	/* Once expired, the slots are reusable by newcomers. */
	cr_assert_not_null(arp_cache_learn(&c, ip_n(5000), &mac, 11 * NS_PER_SEC, true));
	arp_cache_fini(&c);
}

static void count_resend(void *ctx, rte_be32_t ip)
{
	(void)ip;
	++*(unsigned *)ctx;
}

Test(arp_cache, pending_queue_bound_retries_and_expiry)
{
	struct net_harness h;
	struct arp_conf conf = small_conf(16, 4);
	uint8_t buf[64] = { 0 };
	unsigned resends = 0;

	harness_init(&h, &conf);
	struct arp_entry *e = arp_cache_get_incomplete(&h.ns.arp, ip_n(9), 0);
	cr_assert_not_null(e);
	cr_assert_eq(e->state, ARP_INCOMPLETE);
	for (unsigned i = 0; i < 4; i++)
		cr_assert(arp_entry_hold(&h.ns.arp, e, harness_frame(&h, buf, sizeof(buf))));
	struct rte_mbuf *extra = harness_frame(&h, buf, sizeof(buf));
	cr_assert_not(arp_entry_hold(&h.ns.arp, e, extra), "queue must be bounded");
	rte_pktmbuf_free(extra);

	/* Retries every retry_ns until max_retries, then the entry and its frames go. */
	uint64_t expired = 0;
	for (uint64_t t = 0; t <= 5 * NS_PER_SEC; t += NS_PER_SEC / 2)
		arp_cache_age(&h.ns.arp, t, count_resend, &resends, &expired);
	cr_assert_eq(resends, 3, "resent %u times", resends);
	cr_assert_eq(expired, 4);
	cr_assert_null(arp_cache_find(&h.ns.arp, ip_n(9)));
	cr_assert_eq(harness_fini(&h), 0, "mbuf leak");
}

Test(arp_wire, answers_request_for_our_address_only)
{
	struct net_harness h;
	uint8_t buf[128];
	static const struct rte_ether_addr bcast = { { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff } };

	harness_init(&h, NULL);
	uint16_t n = harness_build_arp(buf, RTE_ARP_OP_REQUEST, &harness_peer_mac,
				       harness_ip("198.18.0.1"), harness_ip("198.18.0.2"), &bcast);
	net_input(&h.ns, harness_frame(&h, buf, n));
	cr_assert_eq(h.ntx, 1);
	const struct rte_ether_hdr *eh = rte_pktmbuf_mtod(h.tx[0], const struct rte_ether_hdr *);
	const struct rte_arp_hdr *ah = (const struct rte_arp_hdr *)(eh + 1);
	cr_assert(rte_is_same_ether_addr(&eh->dst_addr, &harness_peer_mac));
	cr_assert_eq(rte_be_to_cpu_16(ah->arp_opcode), RTE_ARP_OP_REPLY);
	cr_assert(rte_is_same_ether_addr(&ah->arp_data.arp_sha, &harness_our_mac));
	cr_assert_eq(ah->arp_data.arp_sip, harness_ip("198.18.0.2"));
	cr_assert_eq(ah->arp_data.arp_tip, harness_ip("198.18.0.1"));
	/* The requester was learned (it asked us). */
	cr_assert_not_null(arp_cache_find(&h.ns.arp, harness_ip("198.18.0.1")));
	harness_clear_tx(&h);

	/* A request for someone else: no reply, nothing learned, counted. */
	n = harness_build_arp(buf, RTE_ARP_OP_REQUEST, &harness_peer_mac,
			      harness_ip("198.18.0.7"), harness_ip("198.18.0.9"), &bcast);
	net_input(&h.ns, harness_frame(&h, buf, n));
	cr_assert_eq(h.ntx, 0);
	cr_assert_null(arp_cache_find(&h.ns.arp, harness_ip("198.18.0.7")));
	cr_assert_eq(h.ns.stats.arp_drop_not_for_us, 1);

	/* Malformed: wrong hardware length. */
	n = harness_build_arp(buf, RTE_ARP_OP_REQUEST, &harness_peer_mac,
			      harness_ip("198.18.0.1"), harness_ip("198.18.0.2"), &bcast);
	((struct rte_arp_hdr *)(buf + sizeof(struct rte_ether_hdr)))->arp_hlen = 8;
	net_input(&h.ns, harness_frame(&h, buf, n));
	cr_assert_eq(h.ns.stats.arp_drop_format, 1);
	/* Truncated. */
	net_input(&h.ns, harness_frame(&h, buf, sizeof(struct rte_ether_hdr) + 10));
	cr_assert_eq(h.ns.stats.arp_drop_short, 1);
	cr_assert_eq(h.ntx, 0);
	cr_assert_eq(harness_fini(&h), 0, "mbuf leak");
}

Test(arp_wire, output_waits_for_resolution_then_flushes)
{
	struct net_harness h;
	uint8_t buf[128];
	static const struct rte_ether_addr peer = { { 2, 9, 9, 9, 9, 9 } };

	harness_init(&h, NULL);
	/* Three datagrams to an unresolved on-link host: one request goes out,
	 * the datagrams wait. */
	for (int i = 0; i < 3; i++) {
		struct rte_mbuf *m = rte_pktmbuf_alloc(h.pool);
		rte_pktmbuf_append(m, 8);
		cr_assert_eq(ipv4_output(&h.ns, m, harness_ip("198.18.0.50"), IPPROTO_UDP), 0);
	}
	cr_assert_eq(h.ntx, 1, "exactly one ARP request, got %u frames", h.ntx);
	cr_assert_eq(h.ns.stats.arp_tx_request, 1);
	harness_clear_tx(&h);

	/* The reply arrives: the three datagrams leave, addressed to it. */
	uint16_t n = harness_build_arp(buf, RTE_ARP_OP_REPLY, &peer, harness_ip("198.18.0.50"),
				       harness_ip("198.18.0.2"), &harness_our_mac);
	net_input(&h.ns, harness_frame(&h, buf, n));
	cr_assert_eq(h.ntx, 3);
	for (unsigned i = 0; i < 3; i++) {
		const struct rte_ether_hdr *eh = rte_pktmbuf_mtod(h.tx[i], const struct rte_ether_hdr *);
		cr_assert(rte_is_same_ether_addr(&eh->dst_addr, &peer));
	}
	/* Off-link destinations go via the gateway. */
	harness_clear_tx(&h);
	struct rte_mbuf *m = rte_pktmbuf_alloc(h.pool);
	rte_pktmbuf_append(m, 8);
	ipv4_output(&h.ns, m, harness_ip("203.0.113.5"), IPPROTO_UDP);
	cr_assert_eq(h.ntx, 1);
	const struct rte_ether_hdr *eh = rte_pktmbuf_mtod(h.tx[0], const struct rte_ether_hdr *);
	const struct rte_arp_hdr *ah = (const struct rte_arp_hdr *)(eh + 1);
	cr_assert_eq(rte_be_to_cpu_16(eh->ether_type), RTE_ETHER_TYPE_ARP);
	cr_assert_eq(ah->arp_data.arp_tip, harness_ip("198.18.0.1"));
	cr_assert_eq(harness_fini(&h), 0, "mbuf leak");
}
