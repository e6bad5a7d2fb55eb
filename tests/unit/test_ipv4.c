/*
 * test_ipv4.c - IPv4 header validation, and the receive path end to end
 * (Ethernet -> IPv4 -> ICMP echo) with every drop counted and the port's
 * RX checksum flags honoured.
 */
#include <criterion/criterion.h>

#include <string.h>

#include "dataplane/net/ipv4.h"
#include "dataplane/net/net_stack.h"
#include "tests/support/net_harness.h"

static struct rte_ipv4_hdr good_hdr(void)
{
	struct rte_ipv4_hdr ip;
	memset(&ip, 0, sizeof(ip));
	ip.version_ihl = RTE_IPV4_VHL_DEF;
	ip.total_length = rte_cpu_to_be_16(40);
	ip.time_to_live = 64;
	ip.next_proto_id = IPPROTO_TCP;
	ip.src_addr = harness_ip("198.18.0.1");
	ip.dst_addr = harness_ip("198.18.0.2");
	ip.hdr_checksum = rte_ipv4_cksum(&ip);
	return ip;
}

static void recksum(struct rte_ipv4_hdr *ip)
{
	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);	/* reads IHL*4 bytes */
}

Test(ipv4_check, accepts_a_good_header)
{
	struct rte_ipv4_hdr ip = good_hdr();
	cr_assert_eq(ipv4_check(&ip, 40), IPV4_OK);
}

Test(ipv4_check, rejects_each_defect)
{
	struct rte_ipv4_hdr ip;

	ip = good_hdr();
	cr_assert_eq(ipv4_check(&ip, 19), IPV4_BAD_SHORT);
	ip.version_ihl = 0x65; recksum(&ip);
	cr_assert_eq(ipv4_check(&ip, 40), IPV4_BAD_VERSION);
	ip = good_hdr(); ip.version_ihl = 0x44; recksum(&ip);
	cr_assert_eq(ipv4_check(&ip, 40), IPV4_BAD_HDRLEN);
	ip = good_hdr(); ip.version_ihl = 0x4f;	/* 60 > 40 avail; checked before the checksum */
	cr_assert_eq(ipv4_check(&ip, 40), IPV4_BAD_HDRLEN);
	ip = good_hdr(); ip.total_length = rte_cpu_to_be_16(41); recksum(&ip);
	cr_assert_eq(ipv4_check(&ip, 40), IPV4_BAD_LEN);
	ip = good_hdr(); ip.total_length = rte_cpu_to_be_16(10); recksum(&ip);
	cr_assert_eq(ipv4_check(&ip, 40), IPV4_BAD_LEN);
	ip = good_hdr(); ip.hdr_checksum ^= 1;
	cr_assert_eq(ipv4_check(&ip, 40), IPV4_BAD_CKSUM);
	ip = good_hdr(); ip.fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG); recksum(&ip);
	cr_assert_eq(ipv4_check(&ip, 40), IPV4_BAD_FRAG);
	ip = good_hdr(); ip.fragment_offset = rte_cpu_to_be_16(8); recksum(&ip);
	cr_assert_eq(ipv4_check(&ip, 40), IPV4_BAD_FRAG);
	ip = good_hdr(); ip.fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG); recksum(&ip);
	cr_assert_eq(ipv4_check(&ip, 40), IPV4_OK, "DF alone is fine");
	ip = good_hdr(); ip.time_to_live = 0; recksum(&ip);
	cr_assert_eq(ipv4_check(&ip, 40), IPV4_BAD_TTL);
	const char *martians[] = { "0.0.0.0", "127.0.0.1", "224.0.0.1", "255.255.255.255", "240.0.0.1" };
	for (unsigned i = 0; i < 5; i++) {
		ip = good_hdr(); ip.src_addr = harness_ip(martians[i]); recksum(&ip);
		cr_assert_eq(ipv4_check(&ip, 40), IPV4_BAD_SRC, "%s", martians[i]);
	}
}

Test(ipv4_check, options_are_walked)
{
	uint8_t buf[60];
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)buf;

	*ip = good_hdr();
	ip->version_ihl = 0x46;	/* 24 bytes: 4 of options */
	ip->total_length = rte_cpu_to_be_16(44);
	memcpy(buf + 20, "\x01\x01\x01\x00", 4);	/* NOP NOP NOP EOL */
	recksum(ip);
	cr_assert_eq(ipv4_check(ip, 44), IPV4_OK);
	memcpy(buf + 20, "\x07\x09\x04\x00", 4);	/* length 9 runs past the header */
	recksum(ip);
	cr_assert_eq(ipv4_check(ip, 44), IPV4_BAD_OPTIONS);
	memcpy(buf + 20, "\x07\x01\x00\x00", 4);	/* length 1 is impossible */
	recksum(ip);
	cr_assert_eq(ipv4_check(ip, 44), IPV4_BAD_OPTIONS);
}

Test(ipv4_path, echo_request_gets_a_correct_reply)
{
	struct net_harness h;
	uint8_t buf[1600];
	static const uint16_t sizes[] = { 0, 56, 1400, 1472 };

	harness_init(&h, NULL);
	/* Learn the peer first so the reply leaves at once. */
	arp_cache_learn(&h.ns.arp, harness_ip("198.18.0.1"), &harness_peer_mac, 0, true);
	for (unsigned i = 0; i < 4; i++) {
		uint16_t n = harness_build_echo(buf, harness_ip("198.18.0.1"), (uint16_t)i, sizes[i]);
		net_input(&h.ns, harness_frame(&h, buf, n));
		cr_assert_eq(h.ntx, 1, "size %u", sizes[i]);
		struct rte_mbuf *r = h.tx[0];
		cr_assert_eq(rte_pktmbuf_pkt_len(r), n);
		const struct rte_ether_hdr *eh = rte_pktmbuf_mtod(r, const struct rte_ether_hdr *);
		const struct rte_ipv4_hdr *ip = (const struct rte_ipv4_hdr *)(eh + 1);
		const struct rte_icmp_hdr *ih = (const struct rte_icmp_hdr *)(ip + 1);
		cr_assert(rte_is_same_ether_addr(&eh->dst_addr, &harness_peer_mac));
		cr_assert_eq(ipv4_check(ip, n - sizeof(*eh)), IPV4_OK);
		cr_assert_eq(ip->dst_addr, harness_ip("198.18.0.1"));
		cr_assert_eq(ip->src_addr, harness_ip("198.18.0.2"));
		cr_assert_eq(ih->icmp_type, RTE_IP_ICMP_ECHO_REPLY);
		cr_assert_eq(rte_raw_cksum(ih, n - sizeof(*eh) - sizeof(*ip)), 0xffff, "ICMP checksum");
		cr_assert_eq(memcmp(ih + 1, buf + 42, sizes[i]), 0, "payload echoed");
		harness_clear_tx(&h);
	}
	cr_assert_eq(h.ns.stats.icmp_tx_echo_reply, 4);
	cr_assert_eq(harness_fini(&h), 0, "mbuf leak");
}

/* Send a crafted frame; expect no reply and `counter` to go up by one. */
#define EXPECT_DROP(h, bytes, len, counter)                                      \
	do {                                                                     \
		uint64_t before = (h).ns.stats.counter;                          \
		net_input(&(h).ns, harness_frame(&(h), (bytes), (len)));         \
		cr_assert_eq((h).ns.stats.counter, before + 1, "%s", #counter); \
		cr_assert_eq((h).ntx, 0, "%s: no reply expected", #counter);    \
	} while (0)

Test(ipv4_path, garbage_is_counted_and_dropped)
{
	struct net_harness h;
	uint8_t buf[1600], bad[1600];
	uint16_t n;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(bad + sizeof(struct rte_ether_hdr));

	harness_init(&h, NULL);
	arp_cache_learn(&h.ns.arp, harness_ip("198.18.0.1"), &harness_peer_mac, 0, true);
	n = harness_build_echo(buf, harness_ip("198.18.0.1"), 1, 56);

	EXPECT_DROP(h, buf, 10, eth_drop_short);
	memcpy(bad, buf, n); bad[0] = 0x02; bad[5] = 0x77;	/* other unicast MAC */
	EXPECT_DROP(h, bad, n, eth_drop_not_for_us);
	memcpy(bad, buf, n); bad[12] = 0x88; bad[13] = 0xb5;	/* local experimental */
	EXPECT_DROP(h, bad, n, eth_drop_ethertype);
	memcpy(bad, buf, n); bad[12] = 0x86; bad[13] = 0xdd;	/* IPv6, and we have none */
	EXPECT_DROP(h, bad, n, eth_drop_ethertype);
	memcpy(bad, buf, n); bad[12] = 0x81; bad[13] = 0x00;	/* VLAN */
	EXPECT_DROP(h, bad, n, eth_drop_vlan);
	EXPECT_DROP(h, buf, 14 + 12, ip_drop_short);
	memcpy(bad, buf, n); ip->hdr_checksum ^= 0x0100;
	EXPECT_DROP(h, bad, n, ip_drop_cksum);
	memcpy(bad, buf, n); ip->total_length = rte_cpu_to_be_16(3000); recksum(ip);
	EXPECT_DROP(h, bad, n, ip_drop_len);
	memcpy(bad, buf, n); ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG); recksum(ip);
	EXPECT_DROP(h, bad, n, ip_drop_frag);
	memcpy(bad, buf, n); ip->dst_addr = harness_ip("198.18.0.3"); recksum(ip);
	EXPECT_DROP(h, bad, n, ip_drop_not_for_us);
	memcpy(bad, buf, n); ip->next_proto_id = 47; recksum(ip);	/* GRE */
	EXPECT_DROP(h, bad, n, ip_drop_proto);
	memcpy(bad, buf, n); bad[34 + 2] ^= 0xff;			/* ICMP checksum */
	EXPECT_DROP(h, bad, n, icmp_drop_cksum);
	memcpy(bad, buf, n); ip->time_to_live = 0; recksum(ip);
	EXPECT_DROP(h, bad, n, ip_drop_ttl);

	/* Ethernet padding after a short datagram is trimmed, not an error. */
	n = harness_build_echo(buf, harness_ip("198.18.0.1"), 2, 0);
	memset(buf + n, 0xee, 60 - n);
	net_input(&h.ns, harness_frame(&h, buf, 60));
	cr_assert_eq(h.ntx, 1);
	cr_assert_eq(rte_pktmbuf_pkt_len(h.tx[0]), n);
	cr_assert_eq(harness_fini(&h), 0, "mbuf leak");
}

/* Send a frame whose mbuf carries the port's RX flags; returns the replies. */
static unsigned send_flagged(struct net_harness *h, const uint8_t *bytes, uint16_t len,
			     uint64_t flags)
{
	struct rte_mbuf *m = harness_frame(h, bytes, len);
	m->ol_flags |= flags;
	net_input(&h->ns, m);
	unsigned n = h->ntx;
	harness_clear_tx(h);
	return n;
}

Test(ipv4_path, rx_checksum_flags_honoured)
{
	struct net_harness h;
	uint8_t buf[1600], bad[1600];
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(bad + sizeof(struct rte_ether_hdr));

	harness_init(&h, NULL);
	arp_cache_learn(&h.ns.arp, harness_ip("198.18.0.1"), &harness_peer_mac, 0, true);
	uint16_t n = harness_build_echo(buf, harness_ip("198.18.0.1"), 1, 56);
	memcpy(bad, buf, n);
	ip->hdr_checksum ^= 0x0100;	/* a wrong header checksum */
	/* UNKNOWN (what af_packet, tap and memif give): checked here */
	cr_assert_eq(send_flagged(&h, bad, n, RTE_MBUF_F_RX_IP_CKSUM_UNKNOWN), 0);
	cr_assert_eq(h.ns.stats.ip_drop_cksum, 1);
	/* GOOD: the port checked it; ours is skipped (so the wrong field passes) */
	cr_assert_eq(send_flagged(&h, bad, n, RTE_MBUF_F_RX_IP_CKSUM_GOOD), 1);
	cr_assert_eq(h.ns.stats.ip_cksum_offload_ok, 1);
	/* NONE: the field is not valid but the header's integrity is verified */
	cr_assert_eq(send_flagged(&h, bad, n, RTE_MBUF_F_RX_IP_CKSUM_NONE), 1);
	cr_assert_eq(h.ns.stats.ip_cksum_offload_ok, 2);
	/* BAD: dropped, though the field is right */
	cr_assert_eq(send_flagged(&h, buf, n, RTE_MBUF_F_RX_IP_CKSUM_BAD), 0);
	cr_assert_eq(h.ns.stats.ip_drop_cksum, 2);
	cr_assert_eq(h.ns.stats.icmp_tx_echo_reply, 2);
	/* every other header check still runs under GOOD */
	memcpy(bad, buf, n);
	ip->time_to_live = 0;
	cr_assert_eq(send_flagged(&h, bad, n, RTE_MBUF_F_RX_IP_CKSUM_GOOD), 0);
	cr_assert_eq(h.ns.stats.ip_drop_ttl, 1);
	/* ICMP is checked in software whatever the L4 flags say */
	memcpy(bad, buf, n);
	bad[34 + 2] ^= 0xff;
	cr_assert_eq(send_flagged(&h, bad, n,
				  RTE_MBUF_F_RX_IP_CKSUM_GOOD | RTE_MBUF_F_RX_L4_CKSUM_GOOD), 0);
	cr_assert_eq(h.ns.stats.icmp_drop_cksum, 1);
	cr_assert_eq(harness_fini(&h), 0, "mbuf leak");
}

Test(ipv4_path, random_frames_never_crash_or_leak)
{
	struct net_harness h;
	uint8_t buf[1600];
	uint64_t rng = 0x1234567;

	harness_init(&h, NULL);
	for (int round = 0; round < 20000; round++) {
		uint16_t n = harness_build_echo(buf, harness_ip("198.18.0.1"), 1, 64);
		/* Mutate a few bytes of a valid frame, and sometimes its length. */
		for (int k = 0; k < 4; k++) {
			rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
			buf[rng % n] ^= (uint8_t)(rng >> 32);
		}
		if (rng & 1)
			n = (uint16_t)(1 + (rng >> 8) % n);
		net_input(&h.ns, harness_frame(&h, buf, n));
		harness_clear_tx(&h);
		h.ns.now_ns += 1000000;	/* 1 ms a frame: ARP retries and expiry run */
		net_tick(&h.ns);
	}
	cr_assert_gt(h.ns.stats.rx_frames, 0);
	cr_assert_eq(harness_fini(&h), 0, "mbuf leak");
}
