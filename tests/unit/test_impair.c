/*
 * test_impair.c - the seeded impairment used by the loss/reorder tests:
 * rates come out near what was asked, runs repeat for a seed, nothing leaks,
 * corruption voids the port's checksum verdicts, push_drop_every drops
 * exactly every Nth TCP segment with PSH and nothing else.
 */
#include <criterion/criterion.h>

#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>

#include "dataplane/impair.h"
#include "tests/support/heap_mempool.h"

static unsigned run(struct impair_conf *c, struct rte_mempool *mp, unsigned bursts,
		    uint32_t *sig)
{
	struct impair im;
	unsigned out = 0;

	impair_init(&im, c, true, 0, mp);
	*sig = 0;
	for (unsigned b = 0; b < bursts; b++) {
		struct rte_mbuf *pkts[32 * 2 + 1];
		for (unsigned i = 0; i < 32; i++) {
			pkts[i] = rte_pktmbuf_alloc(mp);
			cr_assert_not_null(pkts[i]);
			uint32_t *p = (uint32_t *)rte_pktmbuf_append(pkts[i], 64);
			memset(p, 0, 64);
			p[0] = b * 32 + i;	/* sequence number in the first word */
		}
		uint16_t n = impair_burst(&im, pkts, 32, 65, b * 1000ull);
		for (unsigned i = 0; i < n; i++) {
			*sig = *sig * 31 + *rte_pktmbuf_mtod(pkts[i], uint32_t *);
			rte_pktmbuf_free(pkts[i]);
		}
		out += n;
	}
	rte_pktmbuf_free(impair_release(&im, 0, true));
	return out;
}

Test(impair, rates_are_close_and_runs_repeat)
{
	struct rte_mempool *mp = heap_mempool_create("imp", 256, 256);
	struct impair_conf c = { .seed = 42 };
	uint32_t s1, s2, s3;

	c.rx.drop = 20000;	/* 2% */
	unsigned got = run(&c, mp, 1000, &s1);	/* 32,000 packets */
	cr_assert(got > 32000 * 0.97 && got < 32000 * 0.99, "2%% drop left %u", got);
	cr_assert_eq(run(&c, mp, 1000, &s2), got);
	cr_assert_eq(s1, s2, "same seed, same run");
	c.seed = 43;
	run(&c, mp, 1000, &s3);
	cr_assert_neq(s1, s3, "another seed, another run");

	c.rx.drop = 0;
	c.rx.dup = 10000;	/* 1% */
	got = run(&c, mp, 1000, &s1);
	cr_assert(got > 32000 * 1.005 && got < 32000 * 1.015, "1%% dup gave %u", got);
	cr_assert_eq(heap_mempool_avail(mp), 256, "mbuf leak");
	heap_mempool_free(mp);
}

Test(impair, reorder_keeps_every_packet_and_corrupt_changes_bytes)
{
	struct rte_mempool *mp = heap_mempool_create("imp", 256, 256);
	struct impair_conf c = { .seed = 7 };
	struct impair im;
	unsigned seen[64] = { 0 }, swapped = 0;

	c.rx.reorder = 300000;	/* 30% */
	impair_init(&im, &c, true, 0, mp);
	struct rte_mbuf *pkts[65];
	for (unsigned i = 0; i < 32; i++) {
		pkts[i] = rte_pktmbuf_alloc(mp);
		*(uint32_t *)rte_pktmbuf_append(pkts[i], 64) = i;
	}
	uint16_t n = impair_burst(&im, pkts, 32, 65, 0);
	struct rte_mbuf *held = impair_release(&im, 0, true);
	if (held)
		pkts[n++] = held;
	cr_assert_eq(n, 32, "reorder must not lose packets");
	for (unsigned i = 0; i < n; i++) {
		uint32_t v = *rte_pktmbuf_mtod(pkts[i], uint32_t *);
		seen[v]++;
		if (v != i)
			swapped++;
		rte_pktmbuf_free(pkts[i]);
	}
	for (unsigned i = 0; i < 32; i++)
		cr_assert_eq(seen[i], 1);
	cr_assert_gt(swapped, 0);
	cr_assert_eq(im.stats.reordered > 0, 1);

	/* Corruption flips exactly one bit past the Ethernet header. */
	struct impair_conf cc = { .seed = 9 };
	cc.rx.corrupt = IMPAIR_PPM;
	impair_init(&im, &cc, true, 0, mp);
	struct rte_mbuf *m = rte_pktmbuf_alloc(mp);
	uint8_t *p = (uint8_t *)rte_pktmbuf_append(m, 100);
	memset(p, 0, 100);
	cr_assert_eq(impair_burst(&im, &m, 1, 1, 0), 1);
	unsigned bits = 0;
	for (unsigned i = 0; i < 100; i++) {
		bits += (unsigned)__builtin_popcount(p[i]);
		if (i < 14)
			cr_assert_eq(p[i], 0);
	}
	cr_assert_eq(bits, 1);
	rte_pktmbuf_free(m);

	/* A port's checksum verdicts do not survive it: back to UNKNOWN, so
	 * the stack checks in software (it takes GOOD and NONE on trust). */
	m = rte_pktmbuf_alloc(mp);
	memset(rte_pktmbuf_append(m, 100), 0, 100);
	m->ol_flags |= RTE_MBUF_F_RX_IP_CKSUM_GOOD | RTE_MBUF_F_RX_L4_CKSUM_NONE |
		       RTE_MBUF_F_RX_RSS_HASH;
	cr_assert_eq(impair_burst(&im, &m, 1, 1, 0), 1);
	cr_assert_eq(m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK, RTE_MBUF_F_RX_IP_CKSUM_UNKNOWN);
	cr_assert_eq(m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK, RTE_MBUF_F_RX_L4_CKSUM_UNKNOWN);
	cr_assert(m->ol_flags & RTE_MBUF_F_RX_RSS_HASH, "other flags kept");
	rte_pktmbuf_free(m);
	cr_assert_eq(heap_mempool_avail(mp), 256, "mbuf leak");
	heap_mempool_free(mp);
}

Test(impair, rate_parsing)
{
	cr_assert_eq(impair_parse_rate("2%"), 20000);
	cr_assert_eq(impair_parse_rate("0.5%"), 5000);
	cr_assert_eq(impair_parse_rate("100%"), 1000000);
	cr_assert_eq(impair_parse_rate("1500"), 1500);
	cr_assert_eq(impair_parse_rate("0"), 0);
	cr_assert_eq(impair_parse_rate("101%"), -1);
	cr_assert_eq(impair_parse_rate("-1"), -1);
	cr_assert_eq(impair_parse_rate("2%%"), -1);
	cr_assert_eq(impair_parse_rate("abc"), -1);
	cr_assert_eq(impair_parse_rate(""), -1);
	cr_assert_eq(impair_parse_rate("1.5"), -1);
}

/* An Ethernet/IPv4/TCP frame with the given TCP flags; id in the IP id. */
static struct rte_mbuf *tcp_frame(struct rte_mempool *mp, uint8_t flags, uint16_t id)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(mp);
	cr_assert_not_null(m);
	uint8_t *p = (uint8_t *)rte_pktmbuf_append(m, 14 + 20 + 20 + 10);
	memset(p, 0, 64);
	p[12] = 0x08;
	p[14] = 0x45;
	p[14 + 4] = (uint8_t)(id >> 8);
	p[14 + 5] = (uint8_t)id;
	p[14 + 9] = 6;
	p[14 + 20 + 12] = 0x50;
	p[14 + 20 + 13] = flags;
	return m;
}

Test(impair, push_drop_every_is_exact)
{
	struct rte_mempool *mp = heap_mempool_create("imppsh", 256, 256);
	struct impair_conf c = { .seed = 1 };
	struct impair im;

	c.tx.push_drop_every = 3;
	cr_assert(impair_conf_active(&c));
	impair_init(&im, &c, false, 0, mp);
	unsigned kept_push = 0, kept_ack = 0, dropped_ids = 0;
	for (uint16_t b = 0; b < 10; b++) {
		struct rte_mbuf *pkts[8 * 2 + 1];
		for (uint16_t i = 0; i < 8; i++)	/* PSH|ACK, then a pure ACK */
			pkts[i] = tcp_frame(mp, i % 2 ? 0x10 : 0x18, (uint16_t)(b * 8 + i));
		uint16_t n = impair_burst(&im, pkts, 8, 17, 0);
		for (uint16_t i = 0; i < n; i++) {
			const uint8_t *p = rte_pktmbuf_mtod(pkts[i], const uint8_t *);
			if (p[14 + 20 + 13] & 0x08)
				kept_push++;
			else
				kept_ack++;
			rte_pktmbuf_free(pkts[i]);
		}
		dropped_ids += 8 - n;
	}
	/* 40 PSH segments: the 3rd, 6th, ... 39th dropped (13); 40 ACKs kept */
	cr_assert_eq(kept_ack, 40);
	cr_assert_eq(kept_push, 27);
	cr_assert_eq(dropped_ids, 13);
	cr_assert_eq(im.stats.dropped, 13);
	cr_assert_eq(heap_mempool_avail(mp), 256, "mbuf leak");
	heap_mempool_free(mp);
}

/* A TX frame asking the port for its checksums (TX offload) is corrupted
 * only after they are computed here: otherwise the port would cover the
 * flipped bit with valid checksums and the peer would take the damage. */
Test(impair, tx_corruption_is_not_hidden_by_checksum_offload)
{
	struct rte_mempool *mp = heap_mempool_create("imp_txck", 64, 2048);
	struct impair_conf cc = { .seed = 11 };
	struct impair im;

	cr_assert_not_null(mp);
	cc.tx.corrupt = IMPAIR_PPM;
	impair_init(&im, &cc, false, 0, mp);
	for (unsigned k = 0; k < 50; k++) {
		struct rte_mbuf *m = rte_pktmbuf_alloc(mp);
		uint8_t *p = (uint8_t *)rte_pktmbuf_append(m, 14 + 20 + 20 + 33);
		struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(p + 14);
		struct rte_tcp_hdr *th = (struct rte_tcp_hdr *)(ip + 1);

		memset(p, 0, 14 + 20 + 20 + 33);
		for (unsigned i = 0; i < 33; i++)
			p[54 + i] = (uint8_t)(k * 7 + i);
		ip->version_ihl = RTE_IPV4_VHL_DEF;
		ip->total_length = rte_cpu_to_be_16(20 + 20 + 33);
		ip->time_to_live = 64;
		ip->next_proto_id = IPPROTO_TCP;
		ip->src_addr = rte_cpu_to_be_32(0xc6120002);
		ip->dst_addr = rte_cpu_to_be_32(0xc6120001);
		th->data_off = 5 << 4;
		th->sent_seq = rte_cpu_to_be_32(k);
		/* as the stack leaves it for the port (net_stack.h) */
		m->l2_len = 14;
		m->l3_len = 20;
		m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_TCP_CKSUM;
		th->cksum = rte_ipv4_phdr_cksum(ip, m->ol_flags);
		cr_assert_eq(impair_burst(&im, &m, 1, 1, 0), 1);
		cr_assert_eq(m->ol_flags & (RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_L4_MASK), 0,
			     "the port must not recompute a corrupted frame's checksums");
		/* One flipped bit: the IP or the TCP checksum shows it. */
		cr_assert(rte_raw_cksum(ip, 20) != 0xffff || rte_ipv4_udptcp_cksum(ip, th) != 0,
			  "frame %u: corruption undetectable", k);
		rte_pktmbuf_free(m);
	}
	cr_assert_eq(im.stats.corrupted, 50);
	cr_assert_eq(heap_mempool_avail(mp), 64, "mbuf leak");
	heap_mempool_free(mp);
}
