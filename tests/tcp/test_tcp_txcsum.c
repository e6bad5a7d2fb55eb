/*
 * test_tcp_txcsum.c - TX checksum offload: on a port that computes the IPv4
 * and TCP checksums (net_stack tx_ip_cksum, tx_tcp_cksum), each segment
 * leaves flagged for it (RTE_MBUF_F_TX_IPV4 | _IP_CKSUM | _TCP_CKSUM,
 * l2_len 14, l3_len 20) with the IP checksum 0 and the pseudo-header sum
 * in the TCP field, as DPDK requires; what the device would then compute
 * (net_tx_cksum_finish, also what impair.c does before corrupting) gives
 * valid checksums. Without the offload every segment carries its final
 * checksums and no request. SYN-ACKs (options) and data of odd length.
 */
#include <criterion/criterion.h>
#include <string.h>

#include <rte_ip.h>
#include <rte_tcp.h>

#include "dataplane/net/cksum.h"
#include "tests/tcp/tcp_test.h"

#define SP 40000
#define LP 25

static struct tnode N;
static struct tapp A;

static void setup(void)
{
	tnode_init(&N, "txcsum", OUR_IP, 2, NULL);
	tnode_learn(&N, PEER_IP, 9);
	tapp_init(&A, 1 << 20);
}

static void teardown(void)
{
	unsigned leaked = tnode_fini(&N);
	tapp_fini(&A);
	cr_expect_eq(leaked, 0, "mbufs leaked: %u", leaked);
}

TestSuite(tcp_txcsum, .init = setup, .fini = teardown, .timeout = 30);

static void inj(uint32_t seq, uint32_t ack, uint8_t flags, const void *data, uint16_t len,
		const uint8_t *opts, uint8_t olen)
{
	struct tseg s = { .seq = seq, .ack = ack, .flags = flags, .wnd = 65535,
			  .sport = SP, .dport = LP, .opts = opts, .optlen = olen,
			  .data = data, .len = len };
	tinject(&N, PEER_IP, &s);
}

static struct rte_ipv4_hdr *ip_of(struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod_offset(m, struct rte_ipv4_hdr *, sizeof(struct rte_ether_hdr));
}

static struct rte_tcp_hdr *tcp_of(struct rte_mbuf *m)
{
	return (struct rte_tcp_hdr *)(ip_of(m) + 1);
}

static bool valid(struct rte_mbuf *m)
{
	return rte_raw_cksum(ip_of(m), sizeof(struct rte_ipv4_hdr)) == 0xffff &&
	       rte_ipv4_udptcp_cksum(ip_of(m), tcp_of(m)) == 0;	/* sums to 0 when right */
}

/* The last captured segment, checked for the offload request; then
 * finished as the device would and checked valid. */
static void check_offloaded(struct rte_mbuf *m, const char *what)
{
	const uint64_t want = RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM |
			      RTE_MBUF_F_TX_TCP_CKSUM;

	cr_assert_eq(m->ol_flags & want, want, "%s: offload flags", what);
	cr_assert_eq(m->l2_len, sizeof(struct rte_ether_hdr), "%s", what);
	cr_assert_eq(m->l3_len, sizeof(struct rte_ipv4_hdr), "%s", what);
	cr_assert_eq(ip_of(m)->hdr_checksum, 0, "%s: IP checksum left to the port", what);
	cr_assert_eq(tcp_of(m)->cksum, rte_ipv4_phdr_cksum(ip_of(m), 0),
		     "%s: TCP field holds the pseudo-header sum", what);
	cr_assert_eq(net_tx_cksum_finish(m), 0);
	cr_assert_eq(m->ol_flags & (RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_L4_MASK), 0);
	cr_assert(valid(m), "%s: checksums valid once the port computed them", what);
}

static void exchange(bool offload)
{
	static const char odd[] = "250 2.0.0 odd length reply\r\n!";	/* 30 bytes */
	uint8_t o[40];
	struct tout r;
	struct rte_mbuf *m;
	unsigned ol;
	uint32_t iss;

	N.ns.tx_ip_cksum = N.ns.tx_tcp_cksum = offload;
	cr_assert(tcp_listen(N.ts, rte_cpu_to_be_16(LP), &tapp_cb, &A));
	ol = topts_syn(o, 1460, 7, true, true, 5000, 0);
	inj(1000, 0, TCP_SYN, NULL, 0, o, (uint8_t)ol);
	cr_assert_eq(N.ntx, 1);
	m = N.tx[0];
	if (offload)
		check_offloaded(m, "SYN-ACK");
	else {
		cr_assert_eq(m->ol_flags & (RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_L4_MASK), 0);
		cr_assert(valid(m), "SYN-ACK checksums computed in software");
	}
	cr_assert(tpop(&N, &r));
	iss = r.seq;
	inj(1001, iss + 1, TCP_ACK, NULL, 0, o, (uint8_t)topts_ts(o, 5001, r.opt.tsval));
	cr_assert_eq(A.accepted, 1);
	cr_assert_eq(tcp_send(A.conn, odd, sizeof(odd) - 1), sizeof(odd) - 1);
	cr_assert_eq(N.ntx, 1);
	m = N.tx[0];
	if (offload)
		check_offloaded(m, "odd-length data");
	else
		cr_assert(valid(m), "data checksums computed in software");
	cr_assert(tpop(&N, &r));
	cr_assert_eq(r.len, sizeof(odd) - 1);
	cr_assert_eq(N.ns.stats.tcp_tx_cksum_offload, offload ? 2 : 0);
	cr_assert_eq(N.ns.stats.ip_tx_cksum_offload, offload ? 2 : 0);
}

Test(tcp_txcsum, offloaded_segments_are_flagged_and_complete)
{
	exchange(true);
}

Test(tcp_txcsum, without_offload_checksums_are_final)
{
	exchange(false);
}
