/*
 * test_ipv6.c - the IPv6 path on built frames: header and extension-header
 * checks (each bad frame counted under its own name, never answered),
 * ICMPv6 checksums and echo, Neighbor Discovery (NS/NA, hop limit 255,
 * DAD probes, the neighbour cache's states, timers and bounds), and the
 * default router from router advertisements.
 */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <string.h>

#include "common/clock.h"
#include "dataplane/net/icmp6.h"
#include "dataplane/net/ipv6.h"
#include "dataplane/net/nd.h"
#include "tests/support/net_harness.h"

static struct net_harness h;

/* Ours: 2001:db8::2/64; the peer: 2001:db8::1 on-link; a router fe80::1. */
static const uint8_t OUR[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 2 };
static const uint8_t PEER[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };
static const uint8_t FAR[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 1, [15] = 5 };
static const uint8_t ROUTER[16] = { 0xfe, 0x80, [15] = 1 };
static const struct rte_ether_addr ROUTER_MAC = { { 0x02, 0, 0, 0, 0, 0xee } };

static void setup(void)
{
	harness_init(&h, NULL);
	h.ns.addr.ip6_ok = true;
	memcpy(h.ns.addr.ip6, OUR, 16);
	h.ns.addr.prefix6 = 64;
	h.ns.now_ns = 1000 * NS_PER_SEC;
}

static void teardown(void)
{
	cr_expect_eq(harness_fini(&h), 0, "mbufs leaked");
}

TestSuite(ipv6, .init = setup, .fini = teardown);

/* A frame: Ethernet (to l2dst, from the peer's MAC) + IPv6 + ext (raw
 * extension bytes, first_nh their first next-header value) + payload.
 * With an ICMPv6 payload (nh 58) its checksum is filled in. */
static uint16_t build6(uint8_t *buf, const struct rte_ether_addr *l2dst, const uint8_t src[16],
		       const uint8_t dst[16], uint8_t hops, uint8_t first_nh, const uint8_t *ext,
		       uint16_t extlen, uint8_t nh, const void *payload, uint16_t plen)
{
	struct rte_ether_hdr *eh = (struct rte_ether_hdr *)buf;
	struct rte_ipv6_hdr *ip = (struct rte_ipv6_hdr *)(eh + 1);
	uint8_t *l4 = (uint8_t *)(ip + 1) + extlen;

	eh->dst_addr = *l2dst;
	eh->src_addr = harness_peer_mac;
	eh->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6);
	ip->vtc_flow = rte_cpu_to_be_32(6u << 28);
	ip->payload_len = rte_cpu_to_be_16((uint16_t)(extlen + plen));
	ip->proto = extlen ? first_nh : nh;
	ip->hop_limits = hops;
	memcpy(ip->src_addr, src, 16);
	memcpy(ip->dst_addr, dst, 16);
	if (extlen)
		memcpy(ip + 1, ext, extlen);
	memcpy(l4, payload, plen);
	if (nh == IPPROTO_ICMPV6 && plen >= 4) {
		uint32_t sum = ipv6_addr_sum(src, dst) + rte_cpu_to_be_16(IPPROTO_ICMPV6) +
			       rte_cpu_to_be_16(plen);
		l4[2] = l4[3] = 0;
		sum += rte_raw_cksum(l4, plen);
		while (sum >> 16)
			sum = (sum & 0xffff) + (sum >> 16);
		uint16_t ck = (uint16_t)~sum;
		memcpy(l4 + 2, &ck, 2);
	}
	return (uint16_t)(sizeof(*eh) + sizeof(*ip) + extlen + plen);
}

static uint16_t echo_req(uint8_t *p, uint16_t seq, uint16_t datalen)
{
	memset(p, 0, 8 + datalen);
	p[0] = ICMP6_ECHO_REQUEST;
	p[4] = 0x12;
	p[5] = 0x34;
	p[6] = (uint8_t)(seq >> 8);
	p[7] = (uint8_t)seq;
	for (unsigned i = 0; i < datalen; i++)
		p[8 + i] = (uint8_t)(i * 7 + seq);
	return (uint16_t)(8 + datalen);
}

/* NS / NA body: type, flags, target, and a link-layer option (opt 0: none). */
static uint16_t nd_msg(uint8_t *p, uint8_t type, uint32_t flags, const uint8_t target[16],
		       uint8_t opt, const struct rte_ether_addr *mac)
{
	memset(p, 0, 32);
	p[0] = type;
	flags = rte_cpu_to_be_32(flags);
	memcpy(p + 4, &flags, 4);
	memcpy(p + 8, target, 16);
	if (!opt)
		return 24;
	p[24] = opt;
	p[25] = 1;
	memcpy(p + 26, mac, 6);
	return 32;
}

static void inject(const uint8_t *buf, uint16_t len)
{
	net_input(&h.ns, harness_frame(&h, buf, len));
}

/* The i-th captured frame as IPv6: checks Ethernet type, our source MAC,
 * and the ICMPv6 checksum when it carries ICMPv6. */
static const struct rte_ipv6_hdr *sent6(unsigned i, struct rte_ether_addr *l2dst)
{
	cr_assert_lt(i, h.ntx);
	struct rte_mbuf *m = h.tx[i];
	const struct rte_ether_hdr *eh = rte_pktmbuf_mtod(m, const struct rte_ether_hdr *);
	cr_assert_eq(eh->ether_type, rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6));
	cr_assert(rte_is_same_ether_addr(&eh->src_addr, &harness_our_mac));
	if (l2dst)
		*l2dst = eh->dst_addr;
	const struct rte_ipv6_hdr *ip = (const struct rte_ipv6_hdr *)(eh + 1);
	uint32_t plen = rte_be_to_cpu_16(ip->payload_len);
	cr_assert_eq(rte_pktmbuf_pkt_len(m), sizeof(*eh) + sizeof(*ip) + plen);
	if (ip->proto == IPPROTO_ICMPV6)
		cr_assert_eq(ipv6_l4_cksum(m, sizeof(*eh) + sizeof(*ip), plen, ip->src_addr,
					   ip->dst_addr, IPPROTO_ICMPV6), 0,
			     "ICMPv6 checksum of what we sent");
	return ip;
}

static const uint8_t *icmp_of(const struct rte_ipv6_hdr *ip) { return (const uint8_t *)(ip + 1); }

static struct rte_ether_addr our_sn_mac(void)
{
	uint8_t sn[16];
	struct rte_ether_addr m;
	ipv6_solicited_node(OUR, sn);
	ipv6_mcast_mac(sn, &m);
	return m;
}

/* Echo to our address from an unresolved peer: the reply waits for ND
 * (a multicast NS to the peer's solicited-node group, hop limit 255, our
 * MAC in the option), goes out once the solicited NA comes, byte for
 * byte the request's data, checksum right. */
Test(ipv6, echo_reply_after_neighbour_solicitation)
{
	uint8_t buf[1600], icmp[1500], na[64];
	uint16_t n = build6(buf, &harness_our_mac, PEER, OUR, 64, 0, NULL, 0, IPPROTO_ICMPV6,
			    icmp, echo_req(icmp, 1, 100));
	inject(buf, n);
	cr_assert_eq(h.ns.stats.icmp6_rx_echo, 1);
	cr_assert_eq(h.ntx, 1, "only the NS: the reply is held");
	struct rte_ether_addr l2;
	const struct rte_ipv6_hdr *ns6 = sent6(0, &l2);
	uint8_t sn[16];
	ipv6_solicited_node(PEER, sn);
	cr_expect_eq(memcmp(ns6->dst_addr, sn, 16), 0, "to the solicited-node group");
	cr_expect_eq(l2.addr_bytes[0], 0x33);
	cr_expect_eq(ns6->hop_limits, 255);
	cr_expect_eq(memcmp(ns6->src_addr, OUR, 16), 0);
	cr_expect_eq(icmp_of(ns6)[0], ICMP6_ND_NS);
	cr_expect_eq(memcmp(icmp_of(ns6) + 8, PEER, 16), 0, "target");
	cr_expect_eq(icmp_of(ns6)[24], 1, "source link-layer option");
	cr_expect_eq(memcmp(icmp_of(ns6) + 26, &harness_our_mac, 6), 0);
	harness_clear_tx(&h);

	n = build6(buf, &harness_our_mac, PEER, OUR, 255, 0, NULL, 0, IPPROTO_ICMPV6, na,
		   nd_msg(na, ICMP6_ND_NA, 0x60000000u, PEER, 2, &harness_peer_mac));
	inject(buf, n);
	cr_assert_eq(h.ntx, 1, "the held reply");
	const struct rte_ipv6_hdr *r = sent6(0, &l2);
	cr_expect(rte_is_same_ether_addr(&l2, &harness_peer_mac));
	cr_expect_eq(memcmp(r->dst_addr, PEER, 16), 0);
	cr_expect_eq(memcmp(r->src_addr, OUR, 16), 0);
	cr_expect_eq(icmp_of(r)[0], ICMP6_ECHO_REPLY);
	cr_expect_eq(rte_be_to_cpu_16(r->payload_len), 108);
	cr_expect_eq(memcmp(icmp_of(r) + 4, icmp + 4, 104), 0, "id, seq and data echoed");
	struct nd_entry *e = nd_cache_find(&h.ns.nd, PEER);
	cr_assert_not_null(e);
	cr_expect_eq(e->state, ND_REACHABLE);
	cr_expect_eq(h.ns.stats.icmp6_tx_echo_reply, 1);
}

#define EXPECT_DROP6(len, counter)                                               \
	do {                                                                     \
		uint64_t before = h.ns.stats.counter;                            \
		inject(buf, (len));                                              \
		cr_assert_eq(h.ns.stats.counter, before + 1, "%s", #counter);    \
		cr_assert_eq(h.ntx, 0, "%s: nothing sent", #counter);            \
	} while (0)

Test(ipv6, bad_frames_are_counted_and_dropped)
{
	uint8_t buf[1600], icmp[256], ext[64];
	uint16_t il = echo_req(icmp, 2, 16), n;
	static const uint8_t mcast_src[16] = { 0xff, 0x02, [15] = 1 };
	static const uint8_t other[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 9 };

	/* the peer is known, so a reply would go straight out */
	nd_learn(&h.ns, PEER, &harness_peer_mac, false, false, false);

	n = build6(buf, &harness_our_mac, PEER, OUR, 64, 0, NULL, 0, IPPROTO_ICMPV6, icmp, il);
	buf[14 + 40 + 2] ^= 0x55;	/* checksum */
	EXPECT_DROP6(n, icmp6_drop_cksum);
	n = build6(buf, &harness_our_mac, PEER, OUR, 64, 0, NULL, 0, IPPROTO_ICMPV6, icmp, il);
	EXPECT_DROP6(n - 1, ip6_drop_len);	/* truncated: payload length says more */
	EXPECT_DROP6(14 + 39, ip6_drop_short);
	buf[14] = 0x45;
	EXPECT_DROP6(n, ip6_drop_version);
	n = build6(buf, &harness_our_mac, mcast_src, OUR, 64, 0, NULL, 0, IPPROTO_ICMPV6, icmp, il);
	EXPECT_DROP6(n, ip6_drop_src);
	n = build6(buf, &harness_our_mac, PEER, other, 64, 0, NULL, 0, IPPROTO_ICMPV6, icmp, il);
	EXPECT_DROP6(n, ip6_drop_not_for_us);
	n = build6(buf, &harness_our_mac, PEER, OUR, 64, 0, NULL, 0, 253, icmp, il);
	EXPECT_DROP6(n, ip6_drop_proto);	/* unknown upper layer */
	n = build6(buf, &harness_our_mac, PEER, OUR, 64, 0, NULL, 0, IPPROTO_UDP, icmp, il);
	EXPECT_DROP6(n, ip6_drop_proto);	/* UDP over IPv6: not served */

	/* a fragment header */
	memset(ext, 0, 8);
	ext[0] = IPPROTO_ICMPV6;
	ext[3] = 1;	/* more fragments */
	n = build6(buf, &harness_our_mac, PEER, OUR, 64, 44, ext, 8, IPPROTO_ICMPV6, icmp, il);
	EXPECT_DROP6(n, ip6_drop_frag);
	/* destination options with an option whose type says "discard" */
	memset(ext, 0, 8);
	ext[0] = IPPROTO_ICMPV6;
	ext[2] = 0x80;	/* unknown, action 10 */
	ext[3] = 4;
	n = build6(buf, &harness_our_mac, PEER, OUR, 64, 60, ext, 8, IPPROTO_ICMPV6, icmp, il);
	EXPECT_DROP6(n, ip6_drop_options);
	/* an option running past its header */
	ext[2] = 0x1e;
	ext[3] = 9;
	n = build6(buf, &harness_our_mac, PEER, OUR, 64, 60, ext, 8, IPPROTO_ICMPV6, icmp, il);
	EXPECT_DROP6(n, ip6_drop_ext_chain);
	/* a routing header with segments left */
	memset(ext, 0, 8);
	ext[0] = IPPROTO_ICMPV6;
	ext[3] = 1;
	n = build6(buf, &harness_our_mac, PEER, OUR, 64, 43, ext, 8, IPPROTO_ICMPV6, icmp, il);
	EXPECT_DROP6(n, ip6_drop_routing);
	/* five destination-options headers: beyond IPV6_MAX_EXT */
	memset(ext, 0, 40);
	for (unsigned i = 0; i < 5; i++)
		ext[8 * i] = i < 4 ? 60 : IPPROTO_ICMPV6;
	n = build6(buf, &harness_our_mac, PEER, OUR, 64, 60, ext, 40, IPPROTO_ICMPV6, icmp, il);
	EXPECT_DROP6(n, ip6_drop_ext_chain);
	/* hop-by-hop anywhere but first */
	memset(ext, 0, 16);
	ext[0] = 0;
	ext[8] = IPPROTO_ICMPV6;
	n = build6(buf, &harness_our_mac, PEER, OUR, 64, 60, ext, 16, IPPROTO_ICMPV6, icmp, il);
	EXPECT_DROP6(n, ip6_drop_ext_chain);
	/* echo to a multicast group: not answered */
	static const uint8_t all[16] = { 0xff, 0x02, [15] = 1 };
	static const struct rte_ether_addr all_mac = { { 0x33, 0x33, 0, 0, 0, 1 } };
	n = build6(buf, &all_mac, PEER, all, 64, 0, NULL, 0, IPPROTO_ICMPV6, icmp, il);
	EXPECT_DROP6(n, icmp6_drop_type);
	/* a multicast group that is not ours */
	static const uint8_t grp[16] = { 0xff, 0x02, [15] = 2 };
	static const struct rte_ether_addr grp_mac = { { 0x33, 0x33, 0, 0, 0, 2 } };
	n = build6(buf, &grp_mac, PEER, grp, 64, 0, NULL, 0, IPPROTO_ICMPV6, icmp, il);
	EXPECT_DROP6(n, ip6_drop_not_for_us);

	/* and the same echo, well formed, with a hop-by-hop PadN header, is
	 * answered: the counters above were not luck */
	memset(ext, 0, 8);
	ext[0] = IPPROTO_ICMPV6;
	ext[2] = 1;	/* PadN */
	ext[3] = 4;
	n = build6(buf, &harness_our_mac, PEER, OUR, 64, 0, ext, 8, IPPROTO_ICMPV6, icmp, il);
	inject(buf, n);
	cr_assert_eq(h.ntx, 1);
	cr_expect_eq(icmp_of(sent6(0, NULL))[0], ICMP6_ECHO_REPLY);
}

/* ND messages must come with hop limit 255 (RFC 4861 7.1.1). */
Test(ipv6, nd_with_hop_limit_below_255_is_dropped)
{
	uint8_t buf[256], m[64];
	uint16_t n = build6(buf, &harness_our_mac, PEER, OUR, 254, 0, NULL, 0, IPPROTO_ICMPV6, m,
			    nd_msg(m, ICMP6_ND_NS, 0, OUR, 1, &harness_peer_mac));
	EXPECT_DROP6(n, nd_drop_hoplimit);
	cr_expect_null(nd_cache_find(&h.ns.nd, PEER), "nothing learned from it");
	n = build6(buf, &harness_our_mac, PEER, OUR, 64, 0, NULL, 0, IPPROTO_ICMPV6, m,
		   nd_msg(m, ICMP6_ND_NA, 0x60000000u, PEER, 2, &harness_peer_mac));
	EXPECT_DROP6(n, nd_drop_hoplimit);
}

/* An NS for our address, to our solicited-node group: a solicited NA with
 * override, our MAC as target link-layer address, to the solicitor, who
 * is now a known neighbour. NS for another address: no answer. A DAD
 * probe (source ::) for ours: counted, not answered. */
Test(ipv6, neighbour_solicitation_is_answered)
{
	uint8_t buf[256], m[64], sn[16];
	struct rte_ether_addr snmac = our_sn_mac(), l2;
	ipv6_solicited_node(OUR, sn);

	uint16_t n = build6(buf, &snmac, PEER, sn, 255, 0, NULL, 0, IPPROTO_ICMPV6, m,
			    nd_msg(m, ICMP6_ND_NS, 0, OUR, 1, &harness_peer_mac));
	inject(buf, n);
	cr_assert_eq(h.ntx, 1);
	const struct rte_ipv6_hdr *na = sent6(0, &l2);
	cr_expect(rte_is_same_ether_addr(&l2, &harness_peer_mac));
	cr_expect_eq(na->hop_limits, 255);
	cr_expect_eq(memcmp(na->dst_addr, PEER, 16), 0);
	cr_expect_eq(memcmp(na->src_addr, OUR, 16), 0);
	const uint8_t *p = icmp_of(na);
	cr_expect_eq(p[0], ICMP6_ND_NA);
	cr_expect_eq(p[4], 0x60, "solicited and override, not router");
	cr_expect_eq(memcmp(p + 8, OUR, 16), 0);
	cr_expect_eq(p[24], 2);
	cr_expect_eq(memcmp(p + 26, &harness_our_mac, 6), 0);
	struct nd_entry *e = nd_cache_find(&h.ns.nd, PEER);
	cr_assert_not_null(e);
	/* learned STALE from the option (RFC 4861 7.2.3); our NA went
	 * through the entry, which moved it to DELAY (7.3.3) */
	cr_expect_eq(e->state, ND_DELAY);
	cr_expect(rte_is_same_ether_addr(&e->mac, &harness_peer_mac));
	harness_clear_tx(&h);

	static const uint8_t other[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 9 };
	n = build6(buf, &harness_our_mac, PEER, OUR, 255, 0, NULL, 0, IPPROTO_ICMPV6, m,
		   nd_msg(m, ICMP6_ND_NS, 0, other, 1, &harness_peer_mac));
	EXPECT_DROP6(n, nd_drop_format);

	static const uint8_t unspec[16];
	n = build6(buf, &snmac, unspec, sn, 255, 0, NULL, 0, IPPROTO_ICMPV6, m,
		   nd_msg(m, ICMP6_ND_NS, 0, OUR, 0, NULL));
	EXPECT_DROP6(n, nd_dad_conflict);
	/* a malformed option (length 0) */
	n = build6(buf, &snmac, PEER, sn, 255, 0, NULL, 0, IPPROTO_ICMPV6, m,
		   nd_msg(m, ICMP6_ND_NS, 0, OUR, 1, &harness_peer_mac));
	buf[14 + 40 + 25] = 0;
	{
		/* fix the checksum for the changed byte */
		uint8_t body[32];
		memcpy(body, buf + 14 + 40, 32);
		n = build6(buf, &snmac, PEER, sn, 255, 0, NULL, 0, IPPROTO_ICMPV6, body, 32);
	}
	EXPECT_DROP6(n, nd_drop_format);
}

/* Off-link destinations need a router: none at first (no gateway6), then
 * the one a router advertisement names, until it says lifetime 0. */
Test(ipv6, router_advertisement_gives_the_default_route)
{
	uint8_t buf[256], icmp[64], ra[64];
	uint16_t il = echo_req(icmp, 3, 8), n;

	n = build6(buf, &harness_our_mac, FAR, OUR, 64, 0, NULL, 0, IPPROTO_ICMPV6, icmp, il);
	inject(buf, n);
	cr_expect_eq(h.ns.stats.ip6_tx_noroute, 1, "no router yet");
	cr_expect_eq(h.ntx, 0);

	memset(ra, 0, sizeof(ra));
	ra[0] = ICMP6_ND_RA;
	ra[4] = 60;		/* current hop limit */
	ra[6] = 0x07;		/* router lifetime 1800 s */
	ra[7] = 0x08;
	ra[16] = 1;		/* source link-layer address */
	ra[17] = 1;
	memcpy(ra + 18, &ROUTER_MAC, 6);
	static const uint8_t all[16] = { 0xff, 0x02, [15] = 1 };
	static const struct rte_ether_addr all_mac = { { 0x33, 0x33, 0, 0, 0, 1 } };
	n = build6(buf, &all_mac, ROUTER, all, 255, 0, NULL, 0, IPPROTO_ICMPV6, ra, 24);
	inject(buf, n);
	cr_assert_eq(h.ns.stats.nd_router_learned, 1);
	cr_assert_eq(h.ntx, 0);

	n = build6(buf, &harness_our_mac, FAR, OUR, 64, 0, NULL, 0, IPPROTO_ICMPV6, icmp, il);
	inject(buf, n);
	cr_assert_eq(h.ntx, 1, "answered through the router");
	struct rte_ether_addr l2;
	const struct rte_ipv6_hdr *r = sent6(0, &l2);
	cr_expect(rte_is_same_ether_addr(&l2, &ROUTER_MAC));
	cr_expect_eq(memcmp(r->dst_addr, FAR, 16), 0);
	cr_expect_eq(r->hop_limits, 60, "the router's hop limit");
	harness_clear_tx(&h);

	/* an RA from a global source is not an RA (RFC 4861 6.1.2) */
	n = build6(buf, &all_mac, PEER, all, 255, 0, NULL, 0, IPPROTO_ICMPV6, ra, 24);
	EXPECT_DROP6(n, nd_drop_format);

	ra[6] = ra[7] = 0;	/* lifetime 0: no longer a default router */
	n = build6(buf, &all_mac, ROUTER, all, 255, 0, NULL, 0, IPPROTO_ICMPV6, ra, 24);
	inject(buf, n);
	n = build6(buf, &harness_our_mac, FAR, OUR, 64, 0, NULL, 0, IPPROTO_ICMPV6, icmp, il);
	inject(buf, n);
	cr_expect_eq(h.ns.stats.ip6_tx_noroute, 2);
	cr_expect_eq(h.ntx, 0);
}

/* gateway6 configured: used without any RA. */
Test(ipv6, configured_gateway6)
{
	uint8_t buf[256], icmp[64];
	memcpy(h.ns.addr.gateway6, ROUTER, 16);
	nd_learn(&h.ns, ROUTER, &ROUTER_MAC, false, false, false);
	uint16_t n = build6(buf, &harness_our_mac, FAR, OUR, 64, 0, NULL, 0, IPPROTO_ICMPV6,
			    icmp, echo_req(icmp, 4, 8));
	inject(buf, n);
	cr_assert_eq(h.ntx, 1);
	struct rte_ether_addr l2;
	sent6(0, &l2);
	cr_expect(rte_is_same_ether_addr(&l2, &ROUTER_MAC));
}

/* Reachability: REACHABLE for 30 s, then STALE; a frame sent moves it to
 * DELAY; 5 s later PROBE with unicast NS (to the known MAC) every second;
 * three unanswered: the neighbour is gone. A solicited NA during PROBE
 * makes it REACHABLE again. */
Test(ipv6, neighbour_unreachability_detection)
{
	uint8_t buf[256], m[64], icmp[64];
	struct nd_entry *e;
	nd_learn(&h.ns, PEER, &harness_peer_mac, false, false, false);	/* STALE */
	e = nd_cache_find(&h.ns.nd, PEER);
	cr_assert_not_null(e);
	/* a solicited NA confirms it */
	uint16_t n = build6(buf, &harness_our_mac, PEER, OUR, 255, 0, NULL, 0, IPPROTO_ICMPV6,
			    m, nd_msg(m, ICMP6_ND_NA, 0x40000000u, PEER, 0, NULL));
	inject(buf, n);
	cr_expect_eq(e->state, ND_STALE, "an NA without the option changes nothing we rely on");
	n = build6(buf, &harness_our_mac, PEER, OUR, 255, 0, NULL, 0, IPPROTO_ICMPV6, m,
		   nd_msg(m, ICMP6_ND_NA, 0x40000000u, PEER, 2, &harness_peer_mac));
	inject(buf, n);
	cr_assert_eq(e->state, ND_REACHABLE);

	h.ns.now_ns += 31 * NS_PER_SEC;
	net_tick(&h.ns);
	cr_expect_eq(e->state, ND_STALE);
	n = build6(buf, &harness_our_mac, PEER, OUR, 64, 0, NULL, 0, IPPROTO_ICMPV6, icmp,
		   echo_req(icmp, 5, 8));
	inject(buf, n);
	cr_assert_eq(h.ntx, 1, "STALE still sends");
	cr_expect_eq(e->state, ND_DELAY);
	harness_clear_tx(&h);
	h.ns.now_ns += 5 * NS_PER_SEC;
	net_tick(&h.ns);
	cr_expect_eq(e->state, ND_PROBE);
	cr_assert_eq(h.ntx, 1);
	struct rte_ether_addr l2;
	const struct rte_ipv6_hdr *p = sent6(0, &l2);
	cr_expect_eq(icmp_of(p)[0], ICMP6_ND_NS);
	cr_expect(rte_is_same_ether_addr(&l2, &harness_peer_mac), "unicast probe");
	cr_expect_eq(memcmp(p->dst_addr, PEER, 16), 0);
	harness_clear_tx(&h);
	uint64_t unreach = h.ns.stats.nd_unreachable;
	for (int i = 0; i < 3; i++) {
		h.ns.now_ns += NS_PER_SEC;
		net_tick(&h.ns);
	}
	cr_expect_eq(h.ntx, 2, "two more probes");
	cr_expect_eq(h.ns.stats.nd_unreachable, unreach + 1);
	cr_expect_null(nd_cache_find(&h.ns.nd, PEER), "unreachable: removed");
}

/* An unanswered resolution: NS every second, three in all, then the held
 * frames are dropped and counted; the hold queue is bounded. */
Test(ipv6, incomplete_entry_bounds_and_expiry)
{
	uint8_t buf[256], icmp[64];
	for (uint16_t i = 0; i < 20; i++) {
		uint16_t n = build6(buf, &harness_our_mac, PEER, OUR, 64, 0, NULL, 0,
				    IPPROTO_ICMPV6, icmp, echo_req(icmp, i, 8));
		inject(buf, n);
	}
	unsigned held = h.ns.nd.conf.pending;
	cr_expect_eq(h.ns.stats.nd_pending_overflow, 20 - held);
	cr_expect_eq(h.ntx, 1, "one NS, not one per frame");
	for (int i = 0; i < 4; i++) {
		h.ns.now_ns += NS_PER_SEC;
		net_tick(&h.ns);
	}
	cr_expect_eq(h.ntx, 3, "three solicitations in all");
	cr_expect_eq(h.ns.stats.nd_pending_expired, held);
	cr_expect_null(nd_cache_find(&h.ns.nd, PEER));
}

/* The cache never grows: a flood of solicitations from 1000 sources into
 * a 16-slot table keeps at most 16 entries and every lookup consistent. */
Test(ipv6, neighbour_cache_is_bounded)
{
	harness_fini(&h);
	struct arp_conf ac;
	arp_conf_default(&ac);
	ac.entries = 16;
	harness_init(&h, &ac);
	h.ns.addr.ip6_ok = true;
	memcpy(h.ns.addr.ip6, OUR, 16);
	h.ns.addr.prefix6 = 64;
	uint8_t buf[256], m[64], sn[16];
	struct rte_ether_addr snmac = our_sn_mac();
	ipv6_solicited_node(OUR, sn);
	for (unsigned i = 0; i < 1000; i++) {
		uint8_t src[16];
		memcpy(src, PEER, 16);
		src[13] = (uint8_t)(i >> 8);
		src[14] = (uint8_t)i;
		src[15] = 7;
		uint16_t n = build6(buf, &snmac, src, sn, 255, 0, NULL, 0, IPPROTO_ICMPV6, m,
				    nd_msg(m, ICMP6_ND_NS, 0, OUR, 1, &harness_peer_mac));
		inject(buf, n);
		harness_clear_tx(&h);
		cr_assert_leq(h.ns.nd.used, 16);
	}
	cr_expect_eq(h.ns.stats.nd_rx_ns, 1000);
	cr_expect_eq(h.ns.stats.nd_tx_na, 1000, "each one answered");
	unsigned found = 0;
	for (unsigned i = 0; i <= h.ns.nd.mask; i++)
		if (h.ns.nd.slots[i].state != ND_FREE) {
			found++;
			cr_expect_eq(nd_cache_find(&h.ns.nd, h.ns.nd.slots[i].ip),
				     &h.ns.nd.slots[i]);
		}
	cr_expect_eq(found, h.ns.nd.used);
}

/* No address6: IPv6 is off, the link-local address included: nothing is
 * answered, everything is counted. */
Test(ipv6, no_address6_means_no_ipv6)
{
	uint8_t buf[256], icmp[64], m[64], sn[16];
	uint8_t ll[16];
	h.ns.addr.ip6_ok = false;
	ipv6_link_local(&harness_our_mac, ll);
	nd_learn(&h.ns, PEER, &harness_peer_mac, false, false, false);
	uint16_t n = build6(buf, &harness_our_mac, PEER, ll, 64, 0, NULL, 0, IPPROTO_ICMPV6,
			    icmp, echo_req(icmp, 9, 8));
	EXPECT_DROP6(n, eth_drop_ethertype);
	ipv6_solicited_node(ll, sn);
	struct rte_ether_addr snmac;
	ipv6_mcast_mac(sn, &snmac);
	n = build6(buf, &snmac, PEER, sn, 255, 0, NULL, 0, IPPROTO_ICMPV6, m,
		   nd_msg(m, ICMP6_ND_NS, 0, ll, 1, &harness_peer_mac));
	EXPECT_DROP6(n, eth_drop_ethertype);
	cr_expect_eq(h.ns.stats.nd_rx_ns, 0);
}
