/*
 * test_udp.c - UDP on one stack (heap mempool, no EAL): input checks with
 * every drop counted (length, checksum incl. the zero checksum and the
 * port's RX flags), port unreachable with its rate limit and the cases that
 * must never get one, receive-queue bounds, demultiplexing of connected and
 * unconnected sockets, ephemeral ports that satisfy port_ok, and output
 * with a correct checksum; the same over IPv6 on hand-built frames (the
 * checksum is mandatory there: zero and bad ones dropped), replies sent
 * with the IPv6 pseudo-header checksum. Every test ends with no mbuf out
 * of the pool.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>

#include <rte_tcp.h>
#include <rte_udp.h>

#include "common/clock.h"
#include "dataplane/net/cksum.h"
#include "dataplane/net/icmp.h"
#include "dataplane/net/ipv4.h"
#include "dataplane/net/ipv6.h"
#include "dataplane/net/nd.h"
#include "dataplane/net/net_stack.h"
#include "dataplane/net/tcp.h"
#include "dataplane/net/udp.h"
#include "tests/support/net_harness.h"

#define PEER "198.18.0.1"	/* the harness's gateway; learned in ARP */
#define PEER2 "198.18.0.7"

static struct net_harness h;
static struct udp_stack *us;
static struct udp_conf uc;

static void learn(const char *ip)
{
	cr_assert_not_null(arp_cache_learn(&h.ns.arp, harness_ip(ip), &harness_peer_mac,
					   h.ns.now_ns, true));
}

static void start(void)
{
	us = udp_stack_create(&h.ns, &uc);
	cr_assert_not_null(us);
}

static void setup(void)
{
	harness_init(&h, NULL);
	h.ns.now_ns = 1000 * NS_PER_SEC;
	learn(PEER);
	learn(PEER2);
	udp_conf_default(&uc);
	for (unsigned i = 0; i < 16; i++)
		uc.secret[i] = (uint8_t)(i * 31 + 7);
}

static void teardown(void)
{
	udp_stack_destroy(us);
	us = NULL;
	cr_expect_eq(harness_fini(&h), 0, "mbuf leak");
}

/* A crafted datagram. */
struct dg {
	const char *src;
	uint16_t sport, dport;		/* host order */
	const void *data;
	uint16_t len;
	int ulen_delta;			/* added to the UDP length field */
	bool bad_cksum, zero_cksum;
	uint64_t ol_flags;
	const struct rte_ether_addr *eth_dst;	/* NULL: ours */
};

static uint16_t build(uint8_t *buf, const struct dg *d)
{
	uint8_t l4[2048];
	struct rte_udp_hdr *uh = (struct rte_udp_hdr *)l4;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(buf + sizeof(struct rte_ether_hdr));
	uint16_t n;

	uh->src_port = rte_cpu_to_be_16(d->sport);
	uh->dst_port = rte_cpu_to_be_16(d->dport);
	uh->dgram_len = rte_cpu_to_be_16((uint16_t)(8 + d->len + d->ulen_delta));
	uh->dgram_cksum = 0;
	if (d->len)
		memcpy(l4 + 8, d->data, d->len);
	n = harness_build_ipv4(buf, harness_ip(d->src), harness_ip("198.18.0.2"), IPPROTO_UDP,
			       l4, (uint16_t)(8 + d->len));
	uh = (struct rte_udp_hdr *)(ip + 1);
	if (!d->zero_cksum && d->ulen_delta == 0)
		uh->dgram_cksum = rte_ipv4_udptcp_cksum(ip, uh);
	if (d->bad_cksum)
		uh->dgram_cksum ^= 0x4242;
	if (d->eth_dst)
		((struct rte_ether_hdr *)buf)->dst_addr = *d->eth_dst;
	return n;
}

static void inject(const struct dg *d)
{
	uint8_t buf[2048];
	uint16_t n = build(buf, d);
	struct rte_mbuf *m = harness_frame(&h, buf, n);
	m->ol_flags |= d->ol_flags;
	net_input(&h.ns, m);
}

static struct udp_sock *open_sock(uint16_t lport, const char *raddr, uint16_t rport)
{
	struct udp_sock *s;
	int rc = udp_open(us, rte_cpu_to_be_16(lport), raddr ? harness_ip(raddr) : 0,
			  rte_cpu_to_be_16(rport), &s);
	cr_assert_eq(rc, 0, "udp_open %u: %d", lport, rc);
	return s;
}

/* Pull one datagram and check its bytes and source. */
static void expect_dgram(struct udp_sock *s, const char *text, const char *from, uint16_t fport)
{
	char buf[2048];
	rte_be32_t a;
	rte_be16_t p;
	int n = udp_recv(s, buf, sizeof(buf), &a, &p);

	cr_assert_eq(n, (int)strlen(text), "got %d bytes", n);
	cr_assert_eq(memcmp(buf, text, (size_t)n), 0);
	cr_assert_eq(a, harness_ip(from));
	cr_assert_eq(rte_be_to_cpu_16(p), fport);
}

TestSuite(udp_input, .init = setup, .fini = teardown);

Test(udp_input, checksums_verified_and_zero_means_none)
{
	struct udp_sock *s;
	char buf[64];

	start();
	s = open_sock(53, NULL, 0);
	inject(&(struct dg){ .src = PEER, .sport = 1000, .dport = 53, .data = "good", .len = 4 });
	expect_dgram(s, "good", PEER, 1000);
	inject(&(struct dg){ .src = PEER, .sport = 1000, .dport = 53, .data = "bad!", .len = 4,
			     .bad_cksum = true });
	cr_assert_eq(udp_stack_stats(us)->drop_cksum, 1);
	cr_assert_eq(udp_recv(s, buf, sizeof(buf), NULL, NULL), -EAGAIN);
	/* An odd length: the pad byte of the sum must be right too. */
	inject(&(struct dg){ .src = PEER, .sport = 1000, .dport = 53, .data = "odd", .len = 3 });
	expect_dgram(s, "odd", PEER, 1000);
	/* A zero checksum field: the sender computed none (RFC 768). */
	inject(&(struct dg){ .src = PEER, .sport = 1000, .dport = 53, .data = "none", .len = 4,
			     .zero_cksum = true });
	expect_dgram(s, "none", PEER, 1000);
	cr_assert_eq(udp_stack_stats(us)->cksum_none, 1);
	cr_assert_eq(udp_stack_stats(us)->drop_cksum, 1);
	cr_assert_eq(udp_stack_stats(us)->rx, 3);
	cr_assert_eq(h.ntx, 0, "nothing answered");
}

Test(udp_input, rx_checksum_flags_honoured)
{
	struct udp_sock *s;

	start();
	s = open_sock(53, NULL, 0);
	/* GOOD and NONE: the port verified it, ours is skipped (so even a
	 * wrong field passes: a kernel's partial checksum looks like that). */
	inject(&(struct dg){ .src = PEER, .sport = 1, .dport = 53, .data = "g", .len = 1,
			     .bad_cksum = true, .ol_flags = RTE_MBUF_F_RX_L4_CKSUM_GOOD });
	expect_dgram(s, "g", PEER, 1);
	inject(&(struct dg){ .src = PEER, .sport = 1, .dport = 53, .data = "n", .len = 1,
			     .bad_cksum = true, .ol_flags = RTE_MBUF_F_RX_L4_CKSUM_NONE });
	expect_dgram(s, "n", PEER, 1);
	cr_assert_eq(udp_stack_stats(us)->cksum_offload_ok, 2);
	/* BAD drops a datagram whose field is right. */
	inject(&(struct dg){ .src = PEER, .sport = 1, .dport = 53, .data = "b", .len = 1,
			     .ol_flags = RTE_MBUF_F_RX_L4_CKSUM_BAD });
	cr_assert_eq(udp_pending(s), 0);
	cr_assert_eq(udp_stack_stats(us)->drop_cksum, 1);
	/* UNKNOWN: checked here. */
	inject(&(struct dg){ .src = PEER, .sport = 1, .dport = 53, .data = "u", .len = 1,
			     .bad_cksum = true, .ol_flags = RTE_MBUF_F_RX_L4_CKSUM_UNKNOWN });
	cr_assert_eq(udp_stack_stats(us)->drop_cksum, 2);
	cr_assert_eq(udp_pending(s), 0);
}

Test(udp_input, bad_lengths_dropped_and_long_ip_payload_cut)
{
	struct udp_sock *s;
	uint8_t buf[256];
	uint16_t n;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(buf + sizeof(struct rte_ether_hdr));
	struct rte_udp_hdr *uh = (struct rte_udp_hdr *)(ip + 1);

	start();
	s = open_sock(53, NULL, 0);
	/* Length field beyond the IP payload, and below the header size. */
	inject(&(struct dg){ .src = PEER, .sport = 1, .dport = 53, .data = "abcd", .len = 4,
			     .ulen_delta = 1 });
	inject(&(struct dg){ .src = PEER, .sport = 1, .dport = 53, .data = "abcd", .len = 4,
			     .ulen_delta = -5 });
	cr_assert_eq(udp_stack_stats(us)->drop_len, 2);
	/* An IP payload shorter than a UDP header. */
	n = harness_build_ipv4(buf, harness_ip(PEER), harness_ip("198.18.0.2"), IPPROTO_UDP,
			       "\x00\x01\x00\x35", 4);
	net_input(&h.ns, harness_frame(&h, buf, n));
	cr_assert_eq(udp_stack_stats(us)->drop_len, 3);
	/* A length field shorter than the IP payload: the datagram ends
	 * there (the rest is cut off, as in Linux). The checksum covers the
	 * UDP length only. */
	n = build(buf, &(struct dg){ .src = PEER, .sport = 7, .dport = 53, .data = "keepjunk",
				     .len = 8 });
	uh->dgram_len = rte_cpu_to_be_16(8 + 4);
	uh->dgram_cksum = 0;
	ip->total_length = rte_cpu_to_be_16(20 + 8 + 4);
	uh->dgram_cksum = rte_ipv4_udptcp_cksum(ip, uh);
	ip->total_length = rte_cpu_to_be_16(20 + 8 + 8);
	net_input(&h.ns, harness_frame(&h, buf, n));
	expect_dgram(s, "keep", PEER, 7);
	cr_assert_eq(udp_stack_stats(us)->drop_cksum, 0);
	cr_assert_eq(h.ntx, 0);
}

/* The ICMP error in h.tx[i]: checks it and that it quotes `quoted`. */
static void expect_unreach(unsigned i, const uint8_t *quoted_frame, const char *to)
{
	struct rte_mbuf *r = h.tx[i];
	const struct rte_ether_hdr *eh = rte_pktmbuf_mtod(r, const struct rte_ether_hdr *);
	const struct rte_ipv4_hdr *ip = (const struct rte_ipv4_hdr *)(eh + 1);
	const uint8_t *icmp = (const uint8_t *)(ip + 1);
	unsigned ilen = rte_pktmbuf_pkt_len(r) - 34;

	cr_assert_eq(ipv4_check(ip, rte_pktmbuf_pkt_len(r) - 14), IPV4_OK);
	cr_assert_eq(ip->next_proto_id, IPPROTO_ICMP);
	cr_assert_eq(ip->dst_addr, harness_ip(to));
	cr_assert_eq(ip->src_addr, harness_ip("198.18.0.2"));
	cr_assert(rte_is_same_ether_addr(&eh->dst_addr, &harness_peer_mac));
	cr_assert_eq(ilen, 8 + 20 + 8, "ICMP header + IP header + 8 bytes");
	cr_assert_eq(icmp[0], 3, "destination unreachable");
	cr_assert_eq(icmp[1], 3, "port unreachable");
	cr_assert_eq(rte_raw_cksum(icmp, ilen), 0xffff, "ICMP checksum");
	cr_assert_eq(memcmp(icmp + 8, quoted_frame + 14, 28), 0, "quotes IP header + 8 bytes");
}

Test(udp_input, closed_port_gets_port_unreachable)
{
	uint8_t buf[256];
	struct dg d = { .src = PEER, .sport = 4000, .dport = 9, .data = "hello", .len = 5 };

	start();
	build(buf, &d);
	inject(&d);
	cr_assert_eq(h.ntx, 1);
	expect_unreach(0, buf, PEER);
	cr_assert_eq(udp_stack_stats(us)->drop_no_port, 1);
	cr_assert_eq(udp_stack_stats(us)->unreach_sent, 1);
	cr_assert_eq(h.ns.stats.icmp_tx_unreach, 1);
	/* A connected socket on the port does not take other peers' datagrams. */
	open_sock(9, PEER2, 53);
	harness_clear_tx(&h);
	inject(&d);
	cr_assert_eq(h.ntx, 1);
	expect_unreach(0, buf, PEER);
}

Test(udp_input, unreachables_rate_limited_per_lcore)
{
	struct dg d = { .src = PEER, .sport = 4000, .dport = 9, .data = "x", .len = 1 };

	uc.icmp_rate = 10;	/* one per 100 ms */
	uc.icmp_burst = 3;
	start();
	for (unsigned i = 0; i < 10; i++)
		inject(&d);
	cr_assert_eq(h.ntx, 3, "the burst, then nothing");
	cr_assert_eq(udp_stack_stats(us)->unreach_sent, 3);
	cr_assert_eq(udp_stack_stats(us)->unreach_limited, 7);
	cr_assert_eq(udp_stack_stats(us)->drop_no_port, 10);
	h.ns.now_ns += 99 * NS_PER_MS;
	inject(&d);
	cr_assert_eq(h.ntx, 3, "99 ms earn no token");
	h.ns.now_ns += 1 * NS_PER_MS;
	inject(&d);
	inject(&d);
	cr_assert_eq(h.ntx, 4, "100 ms earn one");
	h.ns.now_ns += 3600 * NS_PER_SEC;
	for (unsigned i = 0; i < 10; i++)
		inject(&d);
	cr_assert_eq(h.ntx, 7, "an hour of silence refills only the burst");
	cr_assert_eq(udp_stack_stats(us)->unreach_limited, 7 + 1 + 1 + 7);
}

Test(udp_input, rate_zero_sends_none)
{
	uc.icmp_rate = 0;
	start();
	inject(&(struct dg){ .src = PEER, .sport = 4000, .dport = 9, .data = "x", .len = 1 });
	cr_assert_eq(h.ntx, 0);
	cr_assert_eq(udp_stack_stats(us)->unreach_limited, 1);
}

Test(udp_input, never_unreachable_for_broadcast_multicast_or_icmp)
{
	uint8_t buf[256];
	uint16_t n;
	struct rte_mbuf *m;
	struct icmp_bucket b;
	const struct rte_ether_addr mcast = { { 0x01, 0x00, 0x5e, 0x00, 0x00, 0x01 } };
	const struct rte_ether_addr bcast = { { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff } };
	struct rte_ipv4_hdr *ip;

	start();
	/* From our subnet's broadcast address (a smurf's trick): counted,
	 * suppressed, and no token spent. */
	inject(&(struct dg){ .src = "198.18.0.255", .sport = 1, .dport = 9, .data = "x",
			     .len = 1 });
	cr_assert_eq(h.ntx, 0);
	cr_assert_eq(udp_stack_stats(us)->unreach_suppressed, 1);
	cr_assert_eq(udp_stack_stats(us)->drop_no_port, 1);

	/* icmp_send_unreach itself, on datagrams eth_input would not even
	 * pass up: link-layer broadcast and multicast, IP multicast, ICMP. */
	icmp_bucket_init(&b, 1000, 1000, h.ns.now_ns);
	const struct { const struct rte_ether_addr *eth; const char *dst; uint8_t proto;
		       int want; } cases[] = {
		{ &mcast, "198.18.0.2", IPPROTO_UDP, -EPERM },
		{ &bcast, "198.18.0.2", IPPROTO_UDP, -EPERM },
		{ NULL, "224.0.0.251", IPPROTO_UDP, -EPERM },
		{ NULL, "198.18.0.255", IPPROTO_UDP, -EPERM },
		{ NULL, "198.18.0.2", IPPROTO_ICMP, -EPERM },
		{ NULL, "198.18.0.2", IPPROTO_UDP, 0 },	/* the control case */
	};
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		n = build(buf, &(struct dg){ .src = PEER, .sport = 1, .dport = 9, .data = "x",
					     .len = 1, .eth_dst = cases[i].eth });
		ip = (struct rte_ipv4_hdr *)(buf + 14);
		ip->dst_addr = harness_ip(cases[i].dst);
		ip->next_proto_id = cases[i].proto;
		m = harness_frame(&h, buf, n);
		rte_pktmbuf_adj(m, 34);
		cr_assert_eq(icmp_send_unreach(&h.ns, &b, m, rte_pktmbuf_mtod_offset(m,
			     const struct rte_ipv4_hdr *, -20), ICMP_UNREACH_PORT), cases[i].want,
			     "case %u", i);
		rte_pktmbuf_free(m);
	}
	cr_assert_eq(h.ntx, 1, "only the control case answered");
	/* Only the control case spent a token. */
	cr_assert_eq(b.credit_ns, b.cap_ns - b.cost_ns);
}

Test(udp_input, receive_queue_bounded_and_overflow_counted)
{
	struct udp_sock *s, *t;
	char big[400];

	uc.rxq_dgrams = 4;
	uc.rxq_bytes = 1000;
	uc.rxq_mbufs = 6;
	start();
	s = open_sock(53, NULL, 0);
	for (unsigned i = 0; i < 6; i++)
		inject(&(struct dg){ .src = PEER, .sport = 1, .dport = 53, .data = "d", .len = 1 });
	cr_assert_eq(udp_pending(s), 4, "datagram bound");
	cr_assert_eq(udp_stack_stats(us)->drop_rxq_full, 2);
	cr_assert_eq(udp_stack_mbufs_held(us), 4);
	for (unsigned i = 0; i < 4; i++)
		expect_dgram(s, "d", PEER, 1);
	cr_assert_eq(udp_stack_mbufs_held(us), 0);

	/* Byte bound: two 400-byte datagrams fit in 1000, the third not. */
	memset(big, 'b', sizeof(big));
	for (unsigned i = 0; i < 3; i++)
		inject(&(struct dg){ .src = PEER, .sport = 1, .dport = 53, .data = big,
				     .len = sizeof(big) });
	cr_assert_eq(udp_pending(s), 2, "byte bound");
	cr_assert_eq(udp_stack_stats(us)->drop_rxq_full, 3);

	/* The lcore-wide mbuf bound: 2 held, 4 more fit, across sockets. */
	t = open_sock(54, NULL, 0);
	for (unsigned i = 0; i < 6; i++)
		inject(&(struct dg){ .src = PEER, .sport = 1, .dport = 54, .data = "e", .len = 1 });
	cr_assert_eq(udp_pending(t), 4);
	cr_assert_eq(udp_stack_mbufs_held(us), 6);
	cr_assert_eq(udp_stack_stats(us)->drop_rxq_full, 5);
	/* Closing frees what is queued (teardown checks the pool). */
	udp_close(t);
	cr_assert_eq(udp_stack_mbufs_held(us), 2);
	cr_assert_eq(udp_stack_sock_count(us), 1);
}

/* A readable callback that counts and (optionally) drains. */
struct rd { unsigned calls; bool drain; unsigned got; };
static void on_readable(struct udp_sock *s, void *user)
{
	struct rd *r = user;
	char buf[64];
	r->calls++;
	while (r->drain && udp_recv(s, buf, sizeof(buf), NULL, NULL) >= 0)
		r->got++;
}

Test(udp_input, readable_callback_is_edge_triggered)
{
	struct udp_sock *s;
	struct rd r = { 0 };
	char buf[64];

	start();
	s = open_sock(53, NULL, 0);
	udp_set_callback(s, on_readable, &r);
	cr_assert_eq(udp_get_user(s), &r);
	inject(&(struct dg){ .src = PEER, .sport = 1, .dport = 53, .data = "1", .len = 1 });
	inject(&(struct dg){ .src = PEER, .sport = 1, .dport = 53, .data = "2", .len = 1 });
	cr_assert_eq(r.calls, 1, "only when the queue was empty");
	cr_assert_eq(udp_recv(s, buf, sizeof(buf), NULL, NULL), 1);
	cr_assert_eq(udp_recv(s, buf, sizeof(buf), NULL, NULL), 1);
	inject(&(struct dg){ .src = PEER, .sport = 1, .dport = 53, .data = "3", .len = 1 });
	cr_assert_eq(r.calls, 2);
	r.drain = true;
	cr_assert_eq(udp_recv(s, buf, sizeof(buf), NULL, NULL), 1);
	inject(&(struct dg){ .src = PEER, .sport = 1, .dport = 53, .data = "4", .len = 1 });
	cr_assert_eq(r.got, 1);
}

Test(udp_input, recv_truncates_to_the_buffer)
{
	struct udp_sock *s;
	char buf[8];

	start();
	s = open_sock(53, NULL, 0);
	inject(&(struct dg){ .src = PEER, .sport = 1, .dport = 53, .data = "0123456789",
			     .len = 10 });
	cr_assert_eq(udp_recv(s, buf, 4, NULL, NULL), 4);
	cr_assert_eq(memcmp(buf, "0123", 4), 0);
	cr_assert_eq(udp_stack_stats(us)->rx_truncated, 1);
	cr_assert_eq(udp_recv(s, buf, sizeof(buf), NULL, NULL), -EAGAIN, "the rest is gone");
}

Test(udp_input, multi_segment_datagram)
{
	struct udp_sock *s;
	uint8_t buf[2048], out[2048];
	uint8_t data[1000];
	uint16_t n;
	struct rte_mbuf *m, *m2;

	for (unsigned i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 13 + 5);
	start();
	s = open_sock(53, NULL, 0);
	n = build(buf, &(struct dg){ .src = PEER, .sport = 3, .dport = 53, .data = data,
				     .len = sizeof(data) });
	/* Split after the UDP header plus 101 bytes (odd: the checksum's
	 * word alignment crosses the segment boundary). */
	m = harness_frame(&h, buf, 42 + 101);
	m2 = harness_frame(&h, buf + 42 + 101, (uint16_t)(n - 42 - 101));
	cr_assert_eq(rte_pktmbuf_chain(m, m2), 0);
	net_input(&h.ns, m);
	cr_assert_eq(udp_pending(s), 1, "drops: ip len %lu cksum %lu udp len %lu cksum %lu",
		     h.ns.stats.ip_drop_len, h.ns.stats.ip_drop_cksum,
		     udp_stack_stats(us)->drop_len, udp_stack_stats(us)->drop_cksum);
	cr_assert_eq(udp_stack_mbufs_held(us), 2);
	cr_assert_eq(udp_recv(s, out, sizeof(out), NULL, NULL), (int)sizeof(data));
	cr_assert_eq(memcmp(out, data, sizeof(data)), 0);
}

TestSuite(udp_sock, .init = setup, .fini = teardown);

Test(udp_sock, connected_and_unconnected_demux)
{
	struct udp_sock *any, *conn, *s;

	start();
	any = open_sock(53, NULL, 0);
	conn = open_sock(53, PEER, 5353);
	inject(&(struct dg){ .src = PEER, .sport = 5353, .dport = 53, .data = "c", .len = 1 });
	inject(&(struct dg){ .src = PEER, .sport = 5354, .dport = 53, .data = "p", .len = 1 });
	inject(&(struct dg){ .src = PEER2, .sport = 5353, .dport = 53, .data = "a", .len = 1 });
	cr_assert_eq(udp_pending(conn), 1);
	cr_assert_eq(udp_pending(any), 2);
	expect_dgram(conn, "c", PEER, 5353);
	expect_dgram(any, "p", PEER, 5354);
	expect_dgram(any, "a", PEER2, 5353);
	/* Binding rules. */
	cr_assert_eq(udp_open(us, rte_cpu_to_be_16(53), 0, 0, &s), -EADDRINUSE);
	cr_assert_eq(udp_open(us, rte_cpu_to_be_16(53), harness_ip(PEER),
			      rte_cpu_to_be_16(5353), &s), -EADDRINUSE, "same peer twice");
	cr_assert_eq(udp_open(us, rte_cpu_to_be_16(53), harness_ip(PEER),
			      rte_cpu_to_be_16(5354), &s), 0, "another peer");
	cr_assert_eq(udp_open(us, rte_cpu_to_be_16(60), harness_ip(PEER), 0, &s), -EINVAL);
	cr_assert_eq(udp_stack_stats(us)->port_in_use, 2);
	/* Closing the unconnected one: only the connected peers still get in. */
	udp_close(any);
	inject(&(struct dg){ .src = PEER2, .sport = 5353, .dport = 53, .data = "a", .len = 1 });
	cr_assert_eq(udp_stack_stats(us)->drop_no_port, 1);
	inject(&(struct dg){ .src = PEER, .sport = 5353, .dport = 53, .data = "c", .len = 1 });
	expect_dgram(conn, "c", PEER, 5353);
}

/* port_ok for the tests: only ports that are 1 mod 4 (as if 4 lcores);
 * records the tuple it was asked about. */
struct pok { unsigned calls; rte_be32_t laddr, raddr; rte_be16_t rport; };
static bool port_ok_mod4(void *ctx, const struct net_addr *laddr, rte_be16_t lport,
			 const struct net_addr *raddr, rte_be16_t rport)
{
	struct pok *p = ctx;
	p->calls++;
	cr_assert_eq(laddr->family, NET_AF_INET);
	cr_assert_eq(raddr->family, NET_AF_INET);
	p->laddr = laddr->v4;
	p->raddr = raddr->v4;
	p->rport = rport;
	return rte_be_to_cpu_16(lport) % 4 == 1;
}

Test(udp_sock, ephemeral_ports_satisfy_port_ok_and_are_random)
{
	struct pok pok = { 0 };
	struct udp_sock *s[64];
	uint16_t ports[64];
	unsigned sequential = 0;

	uc.port_ok = port_ok_mod4;
	uc.port_ok_ctx = &pok;
	start();
	for (unsigned i = 0; i < 64; i++) {
		s[i] = open_sock(0, PEER, 53);
		ports[i] = rte_be_to_cpu_16(udp_local_port(s[i]));
		cr_assert(ports[i] >= uc.port_lo && ports[i] <= uc.port_hi);
		cr_assert_eq(ports[i] % 4, 1, "port %u fails port_ok", ports[i]);
		for (unsigned j = 0; j < i; j++)
			cr_assert_neq(ports[i], ports[j], "ephemeral ports are never shared");
		if (i && (ports[i] == ports[i - 1] + 4 || ports[i] == ports[i - 1] + 1))
			sequential++;
	}
	cr_assert_lt(sequential, 8, "ports look sequential (%u of 63)", sequential);
	cr_assert_eq(pok.laddr, harness_ip("198.18.0.2"));
	cr_assert_eq(pok.raddr, harness_ip(PEER));
	cr_assert_eq(pok.rport, rte_cpu_to_be_16(53));
	/* A reply to an ephemeral port reaches its socket. */
	inject(&(struct dg){ .src = PEER, .sport = 53, .dport = ports[5], .data = "r", .len = 1 });
	expect_dgram(s[5], "r", PEER, 53);
	/* Another secret, other ports. */
	{
		struct udp_conf c2 = uc;
		struct net_harness h2;
		struct udp_stack *us2;
		struct udp_sock *x;
		unsigned same = 0;

		harness_init(&h2, NULL);
		c2.secret[0] ^= 1;
		us2 = udp_stack_create(&h2.ns, &c2);
		cr_assert_not_null(us2);
		for (unsigned i = 0; i < 16; i++) {
			cr_assert_eq(udp_open(us2, 0, harness_ip(PEER), rte_cpu_to_be_16(53), &x), 0);
			same += rte_be_to_cpu_16(udp_local_port(x)) == ports[i];
		}
		cr_assert_lt(same, 4);
		udp_stack_destroy(us2);
		cr_assert_eq(harness_fini(&h2), 0);
	}
}

Test(udp_sock, ephemeral_port_exhaustion)
{
	struct pok pok = { 0 };
	struct udp_sock *s;

	uc.port_lo = 1000;
	uc.port_hi = 1007;	/* 1001 and 1005 pass port_ok_mod4 */
	uc.port_ok = port_ok_mod4;
	uc.port_ok_ctx = &pok;
	start();
	open_sock(0, PEER, 53);
	open_sock(0, PEER, 53);
	cr_assert_eq(udp_open(us, 0, harness_ip(PEER), rte_cpu_to_be_16(53), &s), -EADDRNOTAVAIL);
	cr_assert_eq(udp_stack_stats(us)->port_exhausted, 1);
}

Test(udp_sock, socket_table_full)
{
	struct udp_sock *s;

	uc.max_socks = 2;
	start();
	open_sock(1, NULL, 0);
	open_sock(2, NULL, 0);
	cr_assert_eq(udp_open(us, rte_cpu_to_be_16(3), 0, 0, &s), -ENFILE);
	cr_assert_eq(udp_stack_stats(us)->sock_table_full, 1);
}

TestSuite(udp_output, .init = setup, .fini = teardown);

/* The UDP datagram in h.tx[i]: checks IP, the checksum, returns payload. */
static const uint8_t *sent_dgram(unsigned i, const char *to, uint16_t sport, uint16_t dport,
				 unsigned *len, uint16_t *cksum)
{
	struct rte_mbuf *r = h.tx[i];
	const struct rte_ether_hdr *eh = rte_pktmbuf_mtod(r, const struct rte_ether_hdr *);
	const struct rte_ipv4_hdr *ip = (const struct rte_ipv4_hdr *)(eh + 1);
	const struct rte_udp_hdr *uh = (const struct rte_udp_hdr *)(ip + 1);
	unsigned ulen = rte_pktmbuf_pkt_len(r) - 34;
	uint32_t sum;

	cr_assert_eq(ipv4_check(ip, rte_pktmbuf_pkt_len(r) - 14), IPV4_OK);
	cr_assert_eq(ip->next_proto_id, IPPROTO_UDP);
	cr_assert_eq(ip->dst_addr, harness_ip(to));
	cr_assert_eq(rte_be_to_cpu_16(uh->src_port), sport);
	cr_assert_eq(rte_be_to_cpu_16(uh->dst_port), dport);
	cr_assert_eq(rte_be_to_cpu_16(uh->dgram_len), ulen);
	cr_assert_neq(uh->dgram_cksum, 0, "a checksum is always sent");
	/* pseudo-header + datagram sum to 0xffff */
	sum = rte_raw_cksum(uh, ulen);
	sum += rte_raw_cksum(&ip->src_addr, 8);
	sum += rte_cpu_to_be_16(IPPROTO_UDP) + rte_cpu_to_be_16((uint16_t)ulen);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	cr_assert_eq(sum, 0xffff, "UDP checksum");
	*len = ulen - 8;
	*cksum = uh->dgram_cksum;
	return (const uint8_t *)(uh + 1);
}

Test(udp_output, datagram_built_with_checksum)
{
	struct udp_sock *s;
	struct iovec iov[3] = { { "DNS ", 4 }, { "", 0 }, { "query!", 6 } };
	unsigned len;
	uint16_t ck;
	const uint8_t *p;

	start();
	s = open_sock(4444, PEER, 53);
	cr_assert_eq(udp_send(s, 0, 0, iov, 3), 10);
	cr_assert_eq(h.ntx, 1);
	p = sent_dgram(0, PEER, 4444, 53, &len, &ck);
	cr_assert_eq(len, 10);
	cr_assert_eq(memcmp(p, "DNS query!", 10), 0);
	cr_assert_eq(udp_stack_stats(us)->tx, 1);
	cr_assert_eq(udp_stack_stats(us)->tx_bytes, 10);
	/* The largest datagram fits one 1500-byte frame; one more byte not. */
	{
		static char big[1473];
		struct iovec b = { big, 1472 };
		cr_assert_eq(udp_max_payload_af(us, NET_AF_INET), 1472);
		cr_assert_eq(udp_send(s, 0, 0, &b, 1), 1472);
		b.iov_len = 1473;
		cr_assert_eq(udp_send(s, 0, 0, &b, 1), -EMSGSIZE);
		cr_assert_eq(udp_stack_stats(us)->tx_too_big, 1);
	}
	/* A connected socket sends only to its peer; unconnected needs one. */
	cr_assert_eq(udp_send(s, harness_ip(PEER2), rte_cpu_to_be_16(53), iov, 1), -EISCONN);
	s = open_sock(4445, NULL, 0);
	cr_assert_eq(udp_send(s, 0, 0, iov, 1), -EDESTADDRREQ);
	cr_assert_eq(udp_send(s, harness_ip(PEER2), rte_cpu_to_be_16(5353), iov, 1), 4);
	cr_assert_eq(h.ntx, 3);
	sent_dgram(2, PEER2, 4445, 5353, &len, &ck);
	/* Off-link without a gateway: no route. */
	h.ns.addr.gateway = 0;
	cr_assert_eq(udp_send(s, harness_ip("192.0.2.1"), rte_cpu_to_be_16(53), iov, 1),
		     -ENETUNREACH);
	cr_assert_eq(udp_stack_stats(us)->tx_noroute, 1);
}

Test(udp_output, computed_zero_checksum_sent_as_ffff)
{
	struct udp_sock *s;
	uint8_t data[2] = { 0, 0 };
	struct iovec iov = { data, 2 };
	unsigned len;
	uint16_t ck, c0;

	start();
	s = open_sock(4444, PEER, 53);
	/* With two zero bytes the checksum is c0; a word equal to c0 makes
	 * the sum 0xffff, whose complement is 0: sent as 0xffff instead. */
	cr_assert_eq(udp_send(s, 0, 0, &iov, 1), 2);
	sent_dgram(0, PEER, 4444, 53, &len, &c0);
	memcpy(data, &c0, 2);
	cr_assert_eq(udp_send(s, 0, 0, &iov, 1), 2);
	sent_dgram(1, PEER, 4444, 53, &len, &ck);
	cr_assert_eq(ck, 0xffff);
}

Test(udp_output, waits_for_arp_then_leaves)
{
	struct udp_sock *s;
	struct iovec iov = { "q", 1 };

	start();
	s = open_sock(4444, "198.18.0.99", 53);	/* on-link, not in ARP */
	cr_assert_eq(udp_send(s, 0, 0, &iov, 1), 1);
	cr_assert_eq(h.ntx, 1, "an ARP request, the datagram held");
	cr_assert_eq(h.ns.stats.arp_tx_request, 1);
}

/* ---- IPv6 ---- */

/* Ours: 2001:db8::2/64; peers 2001:db8::1 and ::7, on-link, in ND. */
static const uint8_t OUR6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 2 };
static const uint8_t PEER6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };
static const uint8_t PEER6B[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 7 };

static void setup6(void)
{
	setup();
	h.ns.addr.ip6_ok = true;
	memcpy(h.ns.addr.ip6, OUR6, 16);
	h.ns.addr.prefix6 = 64;
	cr_assert_not_null(nd_learn(&h.ns, PEER6, &harness_peer_mac, false, false, false));
	cr_assert_not_null(nd_learn(&h.ns, PEER6B, &harness_peer_mac, false, false, false));
}

/* An IPv6 UDP frame from src:sport to us:dport. The checksum comes from
 * DPDK's rte_ipv6_udptcp_cksum (not ours); bad flips bits in it, zero
 * leaves the field 0. */
static void inject6(const uint8_t src[16], uint16_t sport, uint16_t dport, const char *text,
		    bool bad, bool zero)
{
	uint8_t buf[2048];
	struct rte_ether_hdr *eh = (struct rte_ether_hdr *)buf;
	struct rte_ipv6_hdr *ip = (struct rte_ipv6_hdr *)(eh + 1);
	struct rte_udp_hdr *uh = (struct rte_udp_hdr *)(ip + 1);
	uint16_t len = (uint16_t)strlen(text);

	memset(buf, 0, sizeof(buf));
	eh->dst_addr = harness_our_mac;
	eh->src_addr = harness_peer_mac;
	eh->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6);
	ip->vtc_flow = rte_cpu_to_be_32(6u << 28);
	ip->payload_len = rte_cpu_to_be_16((uint16_t)(8 + len));
	ip->proto = IPPROTO_UDP;
	ip->hop_limits = 64;
	memcpy(ip->src_addr, src, 16);
	memcpy(ip->dst_addr, OUR6, 16);
	uh->src_port = rte_cpu_to_be_16(sport);
	uh->dst_port = rte_cpu_to_be_16(dport);
	uh->dgram_len = rte_cpu_to_be_16((uint16_t)(8 + len));
	memcpy(uh + 1, text, len);
	uh->dgram_cksum = zero ? 0 : rte_ipv6_udptcp_cksum(ip, uh);
	if (bad)
		uh->dgram_cksum ^= 0x4242;
	net_input(&h.ns, harness_frame(&h, buf, (uint16_t)(14 + 40 + 8 + len)));
}

static void expect_dgram6(struct udp_sock *s, const char *text, const uint8_t from[16],
			  uint16_t fport)
{
	char buf[2048];
	struct net_addr a;
	rte_be16_t p;
	int n = udp_recv_addr(s, buf, sizeof(buf), &a, &p);

	cr_assert_eq(n, (int)strlen(text), "got %d bytes", n);
	cr_assert_eq(memcmp(buf, text, (size_t)n), 0);
	cr_assert_eq(a.family, NET_AF_INET6);
	cr_assert_eq(memcmp(a.v6, from, 16), 0, "the IPv6 source");
	cr_assert_eq(rte_be_to_cpu_16(p), fport);
}

TestSuite(udp6, .init = setup6, .fini = teardown);

Test(udp6, received_with_checksum_checked_and_zero_forbidden)
{
	struct udp_sock *s;
	char buf[64];
	rte_be32_t a4 = 1;

	start();
	s = open_sock(53, NULL, 0);
	inject6(PEER6, 1000, 53, "good", false, false);
	expect_dgram6(s, "good", PEER6, 1000);
	inject6(PEER6, 1000, 53, "odd", false, false);	/* pad byte of the sum */
	expect_dgram6(s, "odd", PEER6, 1000);
	inject6(PEER6, 1000, 53, "bad!", true, false);
	cr_assert_eq(udp_stack_stats(us)->drop_cksum, 1);
	/* A zero field: "none" over IPv4, forbidden over IPv6 (RFC 8200 8.1). */
	inject6(PEER6, 1000, 53, "none", false, true);
	cr_assert_eq(udp_stack_stats(us)->drop_cksum, 2);
	cr_assert_eq(udp_stack_stats(us)->cksum_none, 0);
	cr_assert_eq(udp_recv(s, buf, sizeof(buf), NULL, NULL), -EAGAIN);
	cr_assert_eq(udp_stack_stats(us)->rx, 2);
	/* The IPv4 form of recv gives 0 for an IPv6 source. */
	inject6(PEER6, 1000, 53, "v4?", false, false);
	cr_assert_eq(udp_recv(s, buf, sizeof(buf), &a4, NULL), 3);
	cr_assert_eq(a4, 0);
	cr_assert_eq(h.ntx, 0, "nothing answered");
	cr_assert_eq(h.ns.stats.ip6_drop_proto, 0, "UDP is served over IPv6");
}

Test(udp6, connected_demux_and_closed_port)
{
	struct udp_sock *wild, *conn, *conn4, *s;
	struct net_addr p6 = net_addr_v6(PEER6), p6b = net_addr_v6(PEER6B);
	struct net_addr p4 = net_addr_v4(harness_ip(PEER));

	start();
	wild = open_sock(53, NULL, 0);
	cr_assert_eq(udp_open_addr(us, rte_cpu_to_be_16(53), &p6, rte_cpu_to_be_16(1000), &conn),
		     0);
	cr_assert_eq(udp_open_addr(us, rte_cpu_to_be_16(53), &p4, rte_cpu_to_be_16(1000),
				   &conn4), 0);
	cr_assert_eq(udp_open_addr(us, rte_cpu_to_be_16(53), &p6, rte_cpu_to_be_16(1000), &s),
		     -EADDRINUSE);
	inject6(PEER6, 1000, 53, "mine", false, false);
	inject6(PEER6B, 1000, 53, "other", false, false);
	inject6(PEER6, 1001, 53, "port", false, false);
	expect_dgram6(conn, "mine", PEER6, 1000);
	expect_dgram6(wild, "other", PEER6B, 1000);
	expect_dgram6(wild, "port", PEER6, 1001);
	cr_assert_eq(udp_pending(conn4), 0, "the IPv4 peer's socket gets no IPv6 datagram");
	cr_assert_eq(h.ntx, 0);
	(void)p6b;
}

/* A closed port over IPv6: ICMPv6 destination unreachable, port
 * unreachable (RFC 4443 3.1), quoting the datagram, checksum right;
 * under the same rate limit as IPv4's. */
Test(udp6, closed_port_gets_icmpv6_port_unreachable)
{
	const struct rte_ether_hdr *eh;
	const struct rte_ipv6_hdr *ip;
	const uint8_t *ic;
	uint32_t plen;

	uc.icmp_burst = 2;
	uc.icmp_rate = 1;
	start();
	inject6(PEER6, 1000, 54, "closed", false, false);
	cr_assert_eq(udp_stack_stats(us)->drop_no_port, 1);
	cr_assert_eq(udp_stack_stats(us)->unreach_sent, 1);
	cr_assert_eq(h.ntx, 1);
	eh = rte_pktmbuf_mtod(h.tx[0], const struct rte_ether_hdr *);
	ip = (const struct rte_ipv6_hdr *)(eh + 1);
	ic = (const uint8_t *)(ip + 1);
	plen = rte_be_to_cpu_16(ip->payload_len);
	cr_assert_eq(eh->ether_type, rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6));
	cr_assert_eq(ip->proto, IPPROTO_ICMPV6);
	cr_assert_eq(memcmp(ip->dst_addr, PEER6, 16), 0);
	cr_assert_eq(memcmp(ip->src_addr, OUR6, 16), 0);
	cr_assert_eq(ic[0], 1, "destination unreachable");
	cr_assert_eq(ic[1], 4, "port unreachable");
	cr_assert_eq(plen, 8 + 40 + 8 + 6, "the whole datagram quoted");
	cr_assert_eq(ipv6_l4_cksum(h.tx[0], 14 + 40, plen, ip->src_addr, ip->dst_addr,
				   IPPROTO_ICMPV6), 0, "ICMPv6 checksum");
	cr_assert_eq(memcmp(ic + 8 + 8, PEER6, 16), 0, "the quoted header's source");
	cr_assert_eq(ic[8 + 40 + 2], 0);
	cr_assert_eq(ic[8 + 40 + 3], 54, "the quoted destination port");
	cr_assert_eq(memcmp(ic + 8 + 48, "closed", 6), 0);
	/* the bucket: one more, then limited */
	inject6(PEER6, 1000, 54, "again", false, false);
	inject6(PEER6, 1000, 54, "third", false, false);
	cr_assert_eq(udp_stack_stats(us)->unreach_sent, 2);
	cr_assert_eq(udp_stack_stats(us)->unreach_limited, 1);
	cr_assert_eq(h.ntx, 2);
}

/* The IPv6 UDP datagram in h.tx[i]; verifies the checksum with DPDK's. */
static const uint8_t *sent_dgram6(unsigned i, const uint8_t to[16], uint16_t dport,
				  unsigned *len)
{
	struct rte_mbuf *r = h.tx[i];
	const struct rte_ether_hdr *eh = rte_pktmbuf_mtod(r, const struct rte_ether_hdr *);
	const struct rte_ipv6_hdr *ip = (const struct rte_ipv6_hdr *)(eh + 1);
	const struct rte_udp_hdr *uh = (const struct rte_udp_hdr *)(ip + 1);

	cr_assert_eq(eh->ether_type, rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6));
	cr_assert_eq(ip->proto, IPPROTO_UDP);
	cr_assert_eq(memcmp(ip->src_addr, OUR6, 16), 0);
	cr_assert_eq(memcmp(ip->dst_addr, to, 16), 0);
	cr_assert_eq(rte_pktmbuf_pkt_len(r), 14 + 40 + rte_be_to_cpu_16(ip->payload_len));
	cr_assert_eq(rte_be_to_cpu_16(uh->dgram_len), rte_be_to_cpu_16(ip->payload_len));
	cr_assert_eq(rte_be_to_cpu_16(uh->dst_port), dport);
	cr_assert_neq(uh->dgram_cksum, 0);
	{	/* pseudo-header (DPDK's) + datagram sum to 0xffff */
		uint32_t sum = rte_ipv6_phdr_cksum(ip, 0);
		sum += rte_raw_cksum(uh, rte_be_to_cpu_16(uh->dgram_len));
		while (sum >> 16)
			sum = (sum & 0xffff) + (sum >> 16);
		cr_assert_eq(sum, 0xffff, "UDP/IPv6 checksum");
	}
	*len = rte_be_to_cpu_16(uh->dgram_len) - 8u;
	return (const uint8_t *)(uh + 1);
}

Test(udp6, sent_with_the_ipv6_pseudo_header_checksum)
{
	struct udp_sock *s;
	struct net_addr p6 = net_addr_v6(PEER6), p6b = net_addr_v6(PEER6B);
	struct iovec iov[2] = { { "AAAA ", 5 }, { "query", 5 } };
	static char big[1500];
	struct iovec b = { big, 1452 };
	unsigned len;
	const uint8_t *p;

	start();
	cr_assert_eq(udp_open_addr(us, 0, &p6, rte_cpu_to_be_16(53), &s), 0);
	cr_assert_eq(udp_send_addr(s, NULL, 0, iov, 2), 10);
	cr_assert_eq(h.ntx, 1);
	p = sent_dgram6(0, PEER6, 53, &len);
	cr_assert_eq(len, 10);
	cr_assert_eq(memcmp(p, "AAAA query", 10), 0);
	cr_assert_eq(udp_send_addr(s, &p6b, rte_cpu_to_be_16(53), iov, 1), -EISCONN);
	/* MTU 1500 less 40 + 8 bytes of headers. */
	cr_assert_eq(udp_max_payload_af(us, NET_AF_INET6), 1452);
	cr_assert_eq(udp_send_addr(s, NULL, 0, &b, 1), 1452);
	sent_dgram6(1, PEER6, 53, &len);
	cr_assert_eq(len, 1452);
	b.iov_len = 1453;
	cr_assert_eq(udp_send_addr(s, NULL, 0, &b, 1), -EMSGSIZE);
	/* A reply from the peer comes back to the connected socket. */
	inject6(PEER6, 53, rte_be_to_cpu_16(udp_local_port(s)), "answer", false, false);
	expect_dgram6(s, "answer", PEER6, 53);
	/* Without an IPv6 address, no IPv6 datagram. */
	h.ns.addr.ip6_ok = false;
	cr_assert_eq(udp_send_addr(s, NULL, 0, iov, 1), -ENETUNREACH);
	cr_assert_eq(h.ntx, 2);
}

static struct net_addr seen_laddr, seen_raddr;
static bool port_ok_record(void *ctx, const struct net_addr *laddr, rte_be16_t lport,
			   const struct net_addr *raddr, rte_be16_t rport)
{
	(void)ctx;
	(void)lport;
	(void)rport;
	seen_laddr = *laddr;
	seen_raddr = *raddr;
	return true;
}

Test(udp6, ephemeral_port_filter_sees_the_ipv6_tuple)
{
	struct udp_sock *s;
	struct net_addr p6 = net_addr_v6(PEER6), our = net_addr_v6(OUR6);

	uc.port_ok = port_ok_record;
	start();
	cr_assert_eq(udp_open_addr(us, 0, &p6, rte_cpu_to_be_16(53), &s), 0);
	cr_assert(net_addr_eq(&seen_laddr, &our), "our IPv6 address as the local one");
	cr_assert(net_addr_eq(&seen_raddr, &p6));
}

TestSuite(cksum, .init = setup, .fini = teardown);

/* net_cksum_mbuf over chains split anywhere (odd offsets included) equals
 * the sum of the same bytes in one buffer. DPDK 22.11's rte_raw_cksum_mbuf
 * fails this for a segment boundary at an odd offset (see cksum.h). */
Test(cksum, chains_split_anywhere)
{
	uint8_t data[3000];
	uint64_t rng = 0x9e3779b97f4a7c15ull;

	for (unsigned i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 131 + (i >> 3));
	for (unsigned round = 0; round < 500; round++) {
		unsigned len, off, nseg, cut[4], at = 0;
		struct rte_mbuf *m = NULL;
		uint16_t got, want;

		rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
		len = 1 + (unsigned)(rng % 1800);
		nseg = 1 + (unsigned)((rng >> 20) % 4);
		off = (unsigned)((rng >> 30) % 5);
		for (unsigned k = 0; k + 1 < nseg; k++)
			cut[k] = (unsigned)((rng >> (34 + 7 * k)) % (len + off + 1));
		cut[nseg - 1] = len + off;
		for (unsigned k = 1; k < nseg; k++)	/* sort the cuts */
			for (unsigned j = k; j > 0 && cut[j - 1] > cut[j]; j--) {
				unsigned t = cut[j]; cut[j] = cut[j - 1]; cut[j - 1] = t;
			}
		for (unsigned k = 0; k < nseg; k++) {
			struct rte_mbuf *seg = rte_pktmbuf_alloc(h.pool);
			cr_assert_not_null(seg);
			memcpy(rte_pktmbuf_append(seg, (uint16_t)(cut[k] - at)), data + at, cut[k] - at);
			at = cut[k];
			if (!m)
				m = seg;
			else
				cr_assert_eq(rte_pktmbuf_chain(m, seg), 0);
		}
		want = rte_raw_cksum(data + off, len);
		cr_assert_eq(net_cksum_mbuf(m, off, len, &got), 0);
		cr_assert_eq(got, want, "round %u: len %u off %u segs %u", round, len, off, nseg);
		cr_assert_eq(net_cksum_mbuf(m, off, len + 1, &got), -1, "beyond the chain");
		rte_pktmbuf_free(m);
	}
}

/* net_raw_cksum (16 octets a step) gives rte_raw_cksum's value for every
 * length up to past a jumbo frame and every alignment: random octets, and
 * all-ones and all-zero runs, where the carries and the 0 / 0xffff
 * representations of zero would show. */
Test(cksum, net_raw_cksum_is_rte_raw_cksum)
{
	static uint8_t data[9100 + 16];
	uint64_t rng = 0x2545f4914f6cdd1dull;

	for (unsigned fill = 0; fill < 3; fill++) {
		for (unsigned i = 0; i < sizeof(data); i++) {
			rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
			data[i] = fill == 0 ? (uint8_t)rng : fill == 1 ? 0xff : 0;
		}
		for (unsigned len = 0; len <= 9100; len += len < 300 ? 1 : 97)
			for (unsigned a = 0; a < 16; a++)
				cr_assert_eq(net_raw_cksum(data + a, len), rte_raw_cksum(data + a, len),
					     "fill %u len %u align %u", fill, len, a);
	}
}

/* TCP sums chains the same way: a SYN carrying data, split at an odd
 * offset, is taken (DPDK's rte_raw_cksum_mbuf failed it). */
Test(cksum, tcp_segment_split_at_an_odd_offset)
{
	struct tcp_conf tc;
	struct tcp_stack *ts;
	uint8_t l4[20 + 300], buf[2048];
	struct rte_tcp_hdr *th = (struct rte_tcp_hdr *)l4;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(buf + 14);
	struct rte_mbuf *m, *m2;
	uint16_t n;

	tcp_conf_default(&tc);
	memset(tc.secret, 5, sizeof(tc.secret));
	ts = tcp_stack_create(&h.ns, &tc);
	cr_assert_not_null(ts);
	cr_assert_not_null(tcp_listen(ts, rte_cpu_to_be_16(25), &(struct tcp_callbacks){ 0 },
				      NULL));
	memset(l4, 0xff, sizeof(l4));
	memset(th, 0, sizeof(*th));
	th->src_port = rte_cpu_to_be_16(40000);
	th->dst_port = rte_cpu_to_be_16(25);
	th->sent_seq = rte_cpu_to_be_32(1000);
	th->data_off = 5 << 4;
	th->tcp_flags = RTE_TCP_SYN_FLAG;
	th->rx_win = rte_cpu_to_be_16(65535);
	n = harness_build_ipv4(buf, harness_ip(PEER), harness_ip("198.18.0.2"), IPPROTO_TCP, l4,
			       sizeof(l4));
	th = (struct rte_tcp_hdr *)(ip + 1);
	th->cksum = rte_ipv4_udptcp_cksum(ip, th);
	m = harness_frame(&h, buf, 14 + 20 + 20 + 51);
	m2 = harness_frame(&h, buf + 14 + 20 + 20 + 51, (uint16_t)(n - 14 - 20 - 20 - 51));
	cr_assert_eq(rte_pktmbuf_chain(m, m2), 0);
	net_input(&h.ns, m);
	cr_assert_eq(tcp_stack_stats(ts)->drop_cksum, 0, "checksum of the chain");
	cr_assert_eq(h.ntx, 1, "a SYN-ACK");
	tcp_stack_destroy(ts);
}

/* ICMP too: an echo request split at an odd offset is answered, and the
 * reply (the same chain) carries a checksum that verifies. */
Test(cksum, icmp_echo_split_at_an_odd_offset)
{
	uint8_t buf[2048], flat[2048];
	uint16_t n = harness_build_echo(buf, harness_ip(PEER), 7, 600);
	struct rte_mbuf *m = harness_frame(&h, buf, 14 + 20 + 8 + 101);
	struct rte_mbuf *m2 = harness_frame(&h, buf + 14 + 20 + 8 + 101,
					    (uint16_t)(n - 14 - 20 - 8 - 101));
	const uint8_t *r;

	cr_assert_eq(rte_pktmbuf_chain(m, m2), 0);
	net_input(&h.ns, m);
	cr_assert_eq(h.ns.stats.icmp_drop_cksum, 0);
	cr_assert_eq(h.ntx, 1, "an echo reply");
	r = rte_pktmbuf_read(h.tx[0], 0, rte_pktmbuf_pkt_len(h.tx[0]), flat);
	cr_assert_not_null(r);
	cr_assert_eq(r[34], 0, "echo reply");
	cr_assert_eq(rte_raw_cksum(r + 34, rte_pktmbuf_pkt_len(h.tx[0]) - 34), 0xffff,
		     "reply checksum");
}
