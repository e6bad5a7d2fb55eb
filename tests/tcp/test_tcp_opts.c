/*
 * test_tcp_opts.c - option parsing on malformed input (zero length, length
 * past the header, truncated), unknown options, header checks (bad data
 * offset, bad checksum, SYN+FIN), the port's RX checksum flags honoured,
 * and option building round trips.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "tests/tcp/tcp_test.h"

Test(tcp_opts, parse_good)
{
	uint8_t p[40];
	unsigned n = topts_syn(p, 1460, 7, true, true, 11, 22);
	struct tcp_opts o;
	cr_assert_eq(tcp_opt_parse(p, n, true, &o), TCP_OPT_OK);
	cr_expect(o.mss_ok && o.mss == 1460);
	cr_expect(o.ws_ok && o.ws == 7);
	cr_expect(o.sack_perm);
	cr_expect(o.ts_ok && o.tsval == 11 && o.tsecr == 22);
	/* SYN-only options are ignored on other segments */
	cr_assert_eq(tcp_opt_parse(p, n, false, &o), TCP_OPT_OK);
	cr_expect(!o.mss_ok && !o.ws_ok && !o.sack_perm && o.ts_ok);
}

Test(tcp_opts, malformed)
{
	struct tcp_opts o;
	const uint8_t zero_len[] = { 2, 0, 5, 0 };
	cr_expect_eq(tcp_opt_parse(zero_len, 4, true, &o), TCP_OPT_MALFORMED);
	const uint8_t one_len[] = { 30, 1, 1, 1 };
	cr_expect_eq(tcp_opt_parse(one_len, 4, true, &o), TCP_OPT_MALFORMED);
	const uint8_t past_end[] = { 1, 1, 8, 10, 0, 0, 0, 0 };
	cr_expect_eq(tcp_opt_parse(past_end, 8, true, &o), TCP_OPT_MALFORMED);
	const uint8_t truncated[] = { 1, 1, 1, 2 };	/* kind, no length byte */
	cr_expect_eq(tcp_opt_parse(truncated, 4, true, &o), TCP_OPT_MALFORMED);
}

Test(tcp_opts, unknown_and_wrong_length_known)
{
	struct tcp_opts o;
	/* unknown kind 99 length 6, then MSS */
	const uint8_t unk[] = { 99, 6, 1, 2, 3, 4, 2, 4, 0x05, 0xb4 };
	cr_assert_eq(tcp_opt_parse(unk, sizeof(unk), true, &o), TCP_OPT_OK);
	cr_expect(o.mss_ok && o.mss == 1460);
	/* MSS with length 3 is ignored, parsing goes on */
	const uint8_t badmss[] = { 2, 3, 5, 1, 1, 3, 3, 4 };
	cr_assert_eq(tcp_opt_parse(badmss, sizeof(badmss), true, &o), TCP_OPT_OK);
	cr_expect(!o.mss_ok);
	cr_expect(o.ws_ok && o.ws == 4);
	/* EOL stops parsing: garbage after it is not looked at */
	const uint8_t eol[] = { 0, 2, 0, 0 };
	cr_expect_eq(tcp_opt_parse(eol, 4, true, &o), TCP_OPT_OK);
	/* SACK blocks */
	const uint8_t sack[] = { 1, 1, 5, 18, 0, 0, 0, 10, 0, 0, 0, 20, 0, 0, 0, 30, 0, 0, 0, 40 };
	cr_assert_eq(tcp_opt_parse(sack, sizeof(sack), false, &o), TCP_OPT_OK);
	cr_expect_eq(o.nsack, 2);
	cr_expect_eq(o.sack[1].start, 30);
	cr_expect_eq(o.sack[1].end, 40);
}

Test(tcp_opts, build_roundtrip)
{
	struct tcp_opt_out w;
	memset(&w, 0, sizeof(w));
	w.ts_ok = true;
	w.tsval = 5;
	w.tsecr = 6;
	w.nsack = 4;
	for (int i = 0; i < 4; i++) {
		w.sack[i].start = (uint32_t)(100 * i);
		w.sack[i].end = (uint32_t)(100 * i + 50);
	}
	uint8_t p[TCP_OPT_MAX];
	unsigned n = tcp_opt_build(p, &w);
	cr_expect_leq(n, TCP_OPT_MAX);
	cr_expect_eq(n % 4, 0);
	struct tcp_opts o;
	cr_assert_eq(tcp_opt_parse(p, n, false, &o), TCP_OPT_OK);
	cr_expect(o.ts_ok && o.tsval == 5 && o.tsecr == 6);
	cr_expect_eq(o.nsack, 3, "3 SACK blocks fit next to timestamps");
	w.syn = true;
	w.mss = 1460;
	w.ws_ok = true;
	w.ws = 7;
	w.sack_perm = true;
	n = tcp_opt_build(p, &w);
	cr_expect_eq(n, 20);
	cr_assert_eq(tcp_opt_parse(p, n, true, &o), TCP_OPT_OK);
	cr_expect(o.mss == 1460 && o.ws == 7 && o.sack_perm && o.ts_ok);
}

static struct tnode N;
static struct tapp A;

static void setup(void)
{
	tnode_init(&N, "opts", OUR_IP, 2, NULL);
	tnode_learn(&N, PEER_IP, 9);
	tapp_init(&A, 4096);
	cr_assert(tcp_listen(N.ts, rte_cpu_to_be_16(25), &tapp_cb, &A));
}

static void teardown(void)
{
	unsigned leaked = tnode_fini(&N);
	tapp_fini(&A);
	cr_expect_eq(leaked, 0);
}

Test(tcp_opts, malformed_segments_dropped, .init = setup, .fini = teardown)
{
	const uint8_t zero_len[] = { 2, 0, 5, 0 };
	struct tseg s = { .seq = 1, .flags = TCP_SYN, .wnd = 1000, .sport = 4000, .dport = 25,
			  .opts = zero_len, .optlen = 4 };
	tinject(&N, PEER_IP, &s);
	cr_expect_eq(tpending(&N), 0);
	cr_expect_eq(tcp_stack_stats(N.ts)->drop_bad_opt, 1);
	/* option length running past the header */
	const uint8_t past[] = { 2, 4, 5, 0xb4, 8, 10, 0, 0 };
	s.opts = past;
	s.optlen = 8;
	tinject(&N, PEER_IP, &s);
	cr_expect_eq(tcp_stack_stats(N.ts)->drop_bad_opt, 2);
	/* data offset beyond the segment */
	s.opts = NULL;
	s.optlen = 0;
	s.doff_override = 15;
	tinject(&N, PEER_IP, &s);
	cr_expect_eq(tcp_stack_stats(N.ts)->drop_bad_off, 1);
	/* data offset below 5 */
	s.doff_override = 3;
	tinject(&N, PEER_IP, &s);
	cr_expect_eq(tcp_stack_stats(N.ts)->drop_bad_off, 2);
	s.doff_override = 0;
	/* bad checksum */
	s.bad_cksum = true;
	tinject(&N, PEER_IP, &s);
	cr_expect_eq(tcp_stack_stats(N.ts)->drop_cksum, 1);
	s.bad_cksum = false;
	/* SYN+FIN, SYN+RST */
	s.flags = TCP_SYN | TCP_FIN;
	tinject(&N, PEER_IP, &s);
	s.flags = TCP_SYN | TCP_RST;
	tinject(&N, PEER_IP, &s);
	cr_expect_eq(tcp_stack_stats(N.ts)->drop_bad_flags, 2);
	cr_expect_eq(tpending(&N), 0);
	cr_expect_eq(tcp_stack_conn_count(N.ts), 0);
	/* an unknown option is fine */
	const uint8_t unk[] = { 99, 4, 0, 0 };
	s.flags = TCP_SYN;
	s.opts = unk;
	s.optlen = 4;
	tinject(&N, PEER_IP, &s);
	cr_expect_eq(tpending(&N), 1);
	tnode_clear(&N);
}

/* One SYN from peer port sport; true if it drew a SYN-ACK. */
static bool syn_answered(uint16_t sport, bool partial, bool bad, uint64_t flags)
{
	struct tseg s = { .seq = 1, .flags = TCP_SYN, .wnd = 1000, .sport = sport, .dport = 25,
			  .partial_cksum = partial, .bad_cksum = bad, .ol_flags = flags };
	tinject(&N, PEER_IP, &s);
	struct tout r;
	bool got = tpop(&N, &r) && r.flags == (TCP_SYN | TCP_ACK) && r.dport == sport;
	tnode_clear(&N);
	return got;
}

Test(tcp_opts, rx_checksum_flags_honoured, .init = setup, .fini = teardown)
{
	const struct tcp_stats *st = tcp_stack_stats(N.ts);
	/* a kernel's SYN with offload on: only the pseudo-header sum in the
	 * field. With no word from the port it fails our check... */
	cr_expect(!syn_answered(4000, true, false, RTE_MBUF_F_RX_L4_CKSUM_UNKNOWN));
	cr_expect_eq(st->drop_cksum, 1);
	/* ...but a port that says NONE (integrity verified, field not
	 * filled in) is believed */
	cr_expect(syn_answered(4001, true, false, RTE_MBUF_F_RX_L4_CKSUM_NONE),
		  "partial checksum with L4_CKSUM_NONE is taken");
	cr_expect_eq(st->cksum_offload_ok, 1);
	/* GOOD: no software check (a wrong field would have failed it) */
	cr_expect(syn_answered(4002, false, true, RTE_MBUF_F_RX_L4_CKSUM_GOOD));
	cr_expect_eq(st->cksum_offload_ok, 2);
	/* BAD: dropped even though the field is right */
	cr_expect(!syn_answered(4003, false, false, RTE_MBUF_F_RX_L4_CKSUM_BAD));
	cr_expect_eq(st->drop_cksum, 2);
	/* UNKNOWN: checked in software, as always */
	cr_expect(syn_answered(4004, false, false, RTE_MBUF_F_RX_L4_CKSUM_UNKNOWN));
	cr_expect(!syn_answered(4005, false, true, RTE_MBUF_F_RX_L4_CKSUM_UNKNOWN));
	cr_expect_eq(st->drop_cksum, 3);
	cr_expect_eq(st->cksum_offload_ok, 2);
	/* the IP flags are not the L4 ones: IP GOOD alone leaves TCP to us */
	cr_expect(!syn_answered(4006, true, false, RTE_MBUF_F_RX_IP_CKSUM_GOOD));
	cr_expect_eq(st->drop_cksum, 4);
	cr_expect_eq(tcp_stack_conn_count(N.ts), 3, "4001, 4002, 4004 half-open");
}
