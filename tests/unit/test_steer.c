/*
 * test_steer.c - software flow steering: UDP is steered by its 4-tuple like
 * TCP (both directions of a flow to one lcore), fragments and other
 * protocols stay where they arrive, and a UDP socket's ephemeral port chosen
 * with steer_owns brings its replies back to the lcore that opened it.
 */
#include <criterion/criterion.h>

#include <string.h>

#include <rte_tcp.h>
#include <rte_udp.h>

#include "dataplane/net/udp.h"
#include "dataplane/steer.h"
#include "tests/support/net_harness.h"

#define NW 4

static struct net_harness h;
static struct steer st[NW];

static void setup(void)
{
	harness_init(&h, NULL);
	for (unsigned w = 0; w < NW; w++)
		steer_init(&st[w], w, NW, NULL, NULL);
}

static void teardown(void)
{
	cr_expect_eq(harness_fini(&h), 0, "mbuf leak");
}

TestSuite(steer, .init = setup, .fini = teardown);

/* A frame from src:sport to 198.18.0.2:dport with an 8-byte L4 header. */
static struct rte_mbuf *frame(uint8_t proto, const char *src, uint16_t sport, uint16_t dport,
			      uint16_t l4len, uint16_t frag)
{
	uint8_t l4[64] = { 0 }, buf[128];
	rte_be16_t *ports = (rte_be16_t *)l4;
	uint16_t n;

	ports[0] = rte_cpu_to_be_16(sport);
	ports[1] = rte_cpu_to_be_16(dport);
	n = harness_build_ipv4(buf, harness_ip(src), harness_ip("198.18.0.2"), proto, l4, l4len);
	((struct rte_ipv4_hdr *)(buf + 14))->fragment_offset = rte_cpu_to_be_16(frag);
	return harness_frame(&h, buf, n);
}

/* steer_classify as worker `self`, as the owner's number. */
static unsigned owner_seen_by(unsigned self, struct rte_mbuf *m)
{
	int to = steer_classify(&st[self], m);
	cr_assert(to == STEER_LOCAL || (to >= 0 && to < NW), "classify gave %d", to);
	return to == STEER_LOCAL ? self : (unsigned)to;
}

Test(steer, udp_steered_by_its_four_tuple_like_tcp)
{
	unsigned per_worker[NW] = { 0 };

	for (uint16_t p = 1000; p < 1400; p++) {
		struct rte_mbuf *u = frame(IPPROTO_UDP, "198.18.0.1", p, 53, 8, 0);
		struct rte_mbuf *t = frame(IPPROTO_TCP, "198.18.0.1", p, 53, 20, 0);
		unsigned want = steer_owner(&st[0], harness_ip("198.18.0.1"),
					    harness_ip("198.18.0.2"), rte_cpu_to_be_16(p),
					    rte_cpu_to_be_16(53));
		for (unsigned self = 0; self < NW; self++) {
			cr_assert_eq(owner_seen_by(self, u), want, "UDP port %u seen by %u", p, self);
			cr_assert_eq(owner_seen_by(self, t), want, "TCP port %u", p);
		}
		/* Symmetric: the other direction hashes alike. */
		cr_assert_eq(steer_owner(&st[0], harness_ip("198.18.0.2"), harness_ip("198.18.0.1"),
					 rte_cpu_to_be_16(53), rte_cpu_to_be_16(p)), want);
		per_worker[want]++;
		rte_pktmbuf_free(u);
		rte_pktmbuf_free(t);
	}
	for (unsigned w = 0; w < NW; w++)
		cr_assert_gt(per_worker[w], 50, "worker %u owns %u of 400 flows", w, per_worker[w]);
}

Test(steer, fragments_icmp_and_runts_stay_local)
{
	static const struct { uint8_t proto; uint16_t l4len, frag; const char *what; } c[] = {
		{ IPPROTO_UDP, 8, RTE_IPV4_HDR_MF_FLAG, "first fragment" },
		{ IPPROTO_UDP, 8, 185, "later fragment" },
		{ IPPROTO_TCP, 20, 3, "TCP fragment" },
		{ IPPROTO_ICMP, 8, 0, "ICMP" },
		{ IPPROTO_UDP, 3, 0, "UDP without its ports" },
		{ 47, 8, 0, "GRE" },
	};

	for (unsigned i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		for (uint16_t p = 1000; p < 1040; p++) {
			struct rte_mbuf *m = frame(c[i].proto, "198.18.0.1", p, 53, c[i].l4len,
						   c[i].frag);
			for (unsigned self = 0; self < NW; self++)
				cr_assert_eq(steer_classify(&st[self], m), STEER_LOCAL, "%s",
					     c[i].what);
			rte_pktmbuf_free(m);
		}
	}
}

Test(steer, udp_ephemeral_ports_bring_replies_home)
{
	for (unsigned self = 0; self < NW; self++) {
		struct udp_conf uc;
		struct udp_stack *us;

		udp_conf_default(&uc);
		uc.secret[0] = (uint8_t)self;
		uc.port_ok = steer_owns;
		uc.port_ok_ctx = &st[self];
		us = udp_stack_create(&h.ns, &uc);
		cr_assert_not_null(us);
		for (unsigned i = 0; i < 32; i++) {
			struct udp_sock *s;
			struct rte_mbuf *reply;
			const char *server = i % 2 ? "198.18.0.1" : "192.0.2.53";

			cr_assert_eq(udp_open(us, 0, harness_ip(server), rte_cpu_to_be_16(53), &s), 0);
			reply = frame(IPPROTO_UDP, server, 53,
				      rte_be_to_cpu_16(udp_local_port(s)), 8, 0);
			/* whoever receives it sends it to `self` */
			for (unsigned rx = 0; rx < NW; rx++)
				cr_assert_eq(owner_seen_by(rx, reply), self);
			rte_pktmbuf_free(reply);
		}
		udp_stack_destroy(us);
	}
}

/* The device's RSS hash, when the port hashes as we do, decides the owner
 * without a software Toeplitz computation: a frame flagged
 * RTE_MBUF_F_RX_RSS_HASH goes where hash.rss says (counted in hw_hash);
 * without the flag, or on a port whose hash is not ours, software decides. */
Test(steer, device_rss_hash_used_when_the_port_gives_ours)
{
	for (uint16_t p = 1000; p < 1100; p++) {
		struct rte_mbuf *t = frame(IPPROTO_TCP, "198.18.0.1", p, 25, 20, 0);
		uint32_t sw = steer_hash(harness_ip("198.18.0.1"), harness_ip("198.18.0.2"),
					 rte_cpu_to_be_16(p), rte_cpu_to_be_16(25));
		unsigned want_sw = st[0].reta[sw % STEER_RETA_SIZE];
		/* A device hash that names another owner than software would:
		 * proof of which one was used. */
		uint32_t hw = sw + 1;
		unsigned want_hw = st[0].reta[hw % STEER_RETA_SIZE];

		cr_assert_neq(want_hw, want_sw);
		t->hash.rss = hw;
		/* Not flagged: software, even with hw_hash on. */
		steer_use_hw_hash(&st[0], true);
		cr_assert_eq(owner_seen_by(0, t), want_sw);
		/* Flagged, but the port's hash is not ours: software. */
		t->ol_flags |= RTE_MBUF_F_RX_RSS_HASH;
		steer_use_hw_hash(&st[0], false);
		cr_assert_eq(owner_seen_by(0, t), want_sw);
		/* Flagged on a port hashing like us: the device's hash. */
		steer_use_hw_hash(&st[0], true);
		cr_assert_eq(owner_seen_by(0, t), want_hw, "port %u", p);
		rte_pktmbuf_free(t);
	}
	cr_assert_eq(st[0].stats.hw_hash, 100);
	steer_use_hw_hash(&st[0], false);
}

/* An IPv6 frame src -> dst, next header nh, with 8 bytes of L4 (ports, or
 * an ICMPv6 type). */
static struct rte_mbuf *frame6(const uint8_t src[16], const uint8_t dst[16], uint8_t nh,
			       uint16_t sport, uint16_t dport, uint8_t icmp_type)
{
	uint8_t buf[14 + 40 + 8] = { 0 };
	struct rte_ipv6_hdr *ip = (struct rte_ipv6_hdr *)(buf + 14);
	rte_be16_t *ports = (rte_be16_t *)(ip + 1);

	buf[12] = 0x86;
	buf[13] = 0xdd;
	ip->vtc_flow = rte_cpu_to_be_32(6u << 28);
	ip->payload_len = rte_cpu_to_be_16(8);
	ip->proto = nh;
	ip->hop_limits = 255;
	memcpy(ip->src_addr, src, 16);
	memcpy(ip->dst_addr, dst, 16);
	ports[0] = rte_cpu_to_be_16(sport);
	ports[1] = rte_cpu_to_be_16(dport);
	if (nh == IPPROTO_ICMPV6)
		((uint8_t *)(ip + 1))[0] = icmp_type;
	return harness_frame(&h, buf, sizeof(buf));
}

/* IPv6: both directions of a TCP flow hash alike (the key is symmetric
 * over 128-bit addresses too), every worker agrees on the owner, an
 * active open's port chosen with steer_owns comes back to its lcore, and
 * Neighbor Discovery goes to every lcore while echo stays local. */
Test(steer, ipv6_flows_steered_and_nd_copied_to_all)
{
	static const uint8_t a[16] = { 0xfd, 0, 0, 0x5c, [15] = 1 };
	static const uint8_t b[16] = { 0xfd, 0, 0, 0x5c, [15] = 2 };
	unsigned seen[NW] = { 0 };
	for (uint16_t p = 30000; p < 30400; p++) {
		uint32_t fwd = steer_hash6(a, b, rte_cpu_to_be_16(p), rte_cpu_to_be_16(25));
		uint32_t rev = steer_hash6(b, a, rte_cpu_to_be_16(25), rte_cpu_to_be_16(p));
		cr_assert_eq(fwd, rev, "symmetric");
		struct rte_mbuf *m = frame6(a, b, IPPROTO_TCP, p, 25, 0);
		unsigned want = st[0].reta[fwd % STEER_RETA_SIZE];
		for (unsigned w = 0; w < NW; w++)
			cr_assert_eq(owner_seen_by(w, m), want);
		seen[want]++;
		rte_pktmbuf_free(m);
		struct net_addr la = net_addr_v6(b), ra = net_addr_v6(a);
		cr_assert(steer_owns(&st[want], &la, rte_cpu_to_be_16(25), &ra,
				     rte_cpu_to_be_16(p)));
	}
	for (unsigned w = 0; w < NW; w++)
		cr_expect_gt(seen[w], 50, "worker %u got %u of 400 flows", w, seen[w]);
	for (uint8_t t = 133; t <= 137; t++) {
		struct rte_mbuf *m = frame6(a, b, IPPROTO_ICMPV6, 0, 0, t);
		cr_expect_eq(steer_classify(&st[1], m), STEER_ALL, "ND type %u", t);
		rte_pktmbuf_free(m);
	}
	struct rte_mbuf *m = frame6(a, b, IPPROTO_ICMPV6, 0, 0, 128);
	cr_expect_eq(steer_classify(&st[1], m), STEER_LOCAL, "echo stays");
	rte_pktmbuf_free(m);
}
