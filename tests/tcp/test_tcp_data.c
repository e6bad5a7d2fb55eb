/*
 * test_tcp_data.c - data transfer against a crafted peer: retransmission
 * timing (RFC 6298 backoff, Karn), fast retransmit/NewReno recovery,
 * zero-window persist probes, out-of-order reassembly and SACK blocks,
 * delayed ACKs, send-buffer back-pressure and writable, receive window
 * closing/reopening, sender SWS avoidance, SACK-based recovery (RFC 6675),
 * Tail Loss Probe (RFC 8985: PTO timing, one probe, a SACKed probe starting
 * recovery, D-SACK, off), path MTU
 * (ICMP fragmentation needed lowers the MSS, with RFC 5927 checks).
 */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <string.h>

#include <rte_ether.h>
#include <rte_ip.h>

#include "tests/tcp/tcp_test.h"

#define SP 40000
#define LP 25

static struct tnode N;
static struct tapp A;
static uint32_t ISS;	/* ours */
#define PISN 1000u	/* theirs */

static void inj_full(uint32_t seq, uint32_t ack, uint8_t flags, uint16_t wnd,
		     const void *data, uint16_t len, const uint8_t *o, uint8_t ol)
{
	struct tseg s = { .seq = seq, .ack = ack, .flags = flags, .wnd = wnd,
			  .sport = SP, .dport = LP, .data = data, .len = len,
			  .opts = o, .optlen = ol };
	tinject(&N, PEER_IP, &s);
}

static void inj(uint32_t seq, uint32_t ack, uint8_t flags, const void *data, uint16_t len)
{
	inj_full(seq, ack, flags, 65535, data, len, NULL, 0);
}

/* Passive open, no options except MSS 1000 (so segments are 1000 bytes),
 * peer window 65535 unscaled. */
static void open_conn(const struct tcp_conf *cf)
{
	tnode_init(&N, "data", OUR_IP, 2, cf);
	tnode_learn(&N, PEER_IP, 9);
	tapp_init(&A, 4 << 20);
	cr_assert(tcp_listen(N.ts, rte_cpu_to_be_16(LP), &tapp_cb, &A));
	uint8_t o[40];
	unsigned ol = topts_syn(o, 1000, -1, true, false, 0, 0);
	inj_full(PISN, 0, TCP_SYN, 65535, NULL, 0, o, (uint8_t)ol);
	struct tout r;
	cr_assert(tpop(&N, &r));
	ISS = r.seq;
	inj(PISN + 1, ISS + 1, TCP_ACK, NULL, 0);
	cr_assert_eq(A.accepted, 1);
}

static void setup(void) { open_conn(NULL); }

static void teardown(void)
{
	unsigned leaked = tnode_fini(&N);
	tapp_fini(&A);
	cr_expect_eq(leaked, 0, "mbufs leaked: %u", leaked);
}

TestSuite(tcp_data, .init = setup, .fini = teardown, .timeout = 30);

static uint8_t pattern[1 << 20];

static void fill_pattern(void)
{
	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = (uint8_t)(i * 131 + (i >> 9));
}

Test(tcp_data, segments_respect_mss_and_window)
{
	fill_pattern();
	cr_expect_eq(tcp_send(A.conn, pattern, 20000), 20000);
	struct tout r;
	unsigned n = 0;
	uint32_t next = ISS + 1;
	while (tpop(&N, &r)) {
		cr_expect_eq(r.seq, next);
		cr_expect_leq(r.len, 1000);
		cr_expect_eq(memcmp(r.data, pattern + (r.seq - ISS - 1), r.len), 0);
		next += r.len;
		n++;
	}
	cr_expect_eq(n, 10, "initial window of 10 segments (RFC 6928)");
	/* acking them releases more (slow start) */
	inj(PISN + 1, next, TCP_ACK, NULL, 0);
	n = 0;
	while (tpop(&N, &r))
		n++;
	cr_expect_eq(n, 10, "cwnd 20 after 10 acked, 10 in flight before -> 10 more? got %u", n);
}

Test(tcp_data, rto_backoff_and_karn)
{
	fill_pattern();
	cr_expect_eq(tcp_send(A.conn, pattern, 500), 500);
	struct tout r;
	cr_assert(tpop(&N, &r));
	cr_expect_eq(r.len, 500);
	uint64_t rto = NS_PER_SEC;	/* initial RTO, no sample yet */
	for (int k = 0; k < 5; k++) {
		tadvance(&N, rto - NS_PER_MS);
		cr_expect_eq(tpending(&N), 0, "no retransmit before RTO %d", k);
		tadvance(&N, 2 * NS_PER_MS);
		cr_assert(tpop(&N, &r), "retransmit %d", k);
		cr_expect_eq(r.seq, ISS + 1);
		cr_expect_eq(r.len, 500);
		rto *= 2;
	}
	cr_expect_eq(tcp_stack_stats(N.ts)->rto_fires, 5);
	/* Karn: the ACK of a retransmitted segment gives no RTT sample, so the
	 * backed-off RTO stays for the next segment */
	tadvance(&N, 10 * NS_PER_MS);
	inj(PISN + 1, ISS + 501, TCP_ACK, NULL, 0);
	struct tcp_conn_info i;
	tcp_get_info(A.conn, &i);
	cr_expect_eq(i.srtt_ns, 0, "no sample from retransmitted data");
	cr_expect_eq(i.rto_ns, 32 * NS_PER_SEC);
	/* a fresh segment, acked without retransmission: sample taken */
	cr_expect_eq(tcp_send(A.conn, pattern, 100), 100);
	cr_assert(tpop(&N, &r));
	tadvance(&N, 50 * NS_PER_MS);
	inj(PISN + 1, ISS + 601, TCP_ACK, NULL, 0);
	tcp_get_info(A.conn, &i);
	cr_expect_eq(i.srtt_ns, 50 * NS_PER_MS);
	/* RTO = srtt + 4 * rttvar = 50 + 100 = 150 ms, clamped to rto_min 200 */
	cr_expect_eq(i.rto_ns, 200 * NS_PER_MS);
}

Test(tcp_data, r2_gives_up)
{
	struct tcp_conf cf;
	tconf(&cf);
	cf.r2 = 3;
	tnode_fini(&N);
	tapp_fini(&A);
	open_conn(&cf);
	cr_expect_eq(tcp_send(A.conn, "x", 1), 1);
	for (int k = 0; k < 5; k++)
		tadvance(&N, 20 * NS_PER_SEC);
	cr_expect_eq(A.closed, 1);
	cr_expect_eq(A.reason, TCP_CLOSE_TIMEOUT);
	cr_expect_eq(tcp_stack_stats(N.ts)->retransmits, 3);
}

Test(tcp_data, fast_retransmit_newreno)
{
	fill_pattern();
	cr_expect_eq(tcp_send(A.conn, pattern, 10000), 10000);
	struct tout r;
	unsigned n = 0;
	while (tpop(&N, &r))
		n++;
	cr_assert_eq(n, 10);
	/* segment 1 (bytes 0..999) is lost: three dupacks */
	inj(PISN + 1, ISS + 1, TCP_ACK, NULL, 0);
	inj(PISN + 1, ISS + 1, TCP_ACK, NULL, 0);
	cr_expect_eq(tpending(&N), 0);
	inj(PISN + 1, ISS + 1, TCP_ACK, NULL, 0);
	cr_assert(tpop(&N, &r));
	cr_expect_eq(r.seq, ISS + 1, "fast retransmit of the first segment");
	cr_expect_eq(r.len, 1000);
	cr_expect_eq(tcp_stack_stats(N.ts)->fast_retransmits, 1);
	struct tcp_conn_info i;
	tcp_get_info(A.conn, &i);
	cr_expect_eq(i.ssthresh, 5000);
	cr_expect_eq(i.cwnd, 5000 + 3000);
	/* partial ACK (segment 5 also lost): retransmit it at once */
	tnode_clear(&N);
	inj(PISN + 1, ISS + 1 + 4000, TCP_ACK, NULL, 0);
	cr_assert(tpop(&N, &r));
	cr_expect_eq(r.seq, ISS + 1 + 4000);
	cr_expect_eq(tcp_stack_stats(N.ts)->fast_retransmits, 1, "one recovery episode");
	/* full ACK ends recovery: cwnd deflates to ssthresh */
	tnode_clear(&N);
	inj(PISN + 1, ISS + 1 + 10000, TCP_ACK, NULL, 0);
	tcp_get_info(A.conn, &i);
	cr_expect_leq(i.cwnd, 5000);
	cr_expect_eq(tcp_stack_stats(N.ts)->rto_fires, 0);
}

Test(tcp_data, zero_window_persist)
{
	fill_pattern();
	/* the peer closes its window */
	inj_full(PISN + 1, ISS + 1, TCP_ACK, 0, NULL, 0, NULL, 0);
	cr_expect_eq(tcp_send(A.conn, pattern, 3000), 3000);
	cr_expect_eq(tpending(&N), 0, "nothing sent into a zero window");
	uint64_t d = 1 * NS_PER_SEC;	/* persist starts at the RTO */
	struct tout r;
	for (int k = 0; k < 4; k++) {
		tadvance(&N, d + NS_PER_MS);
		cr_assert(tpop(&N, &r), "probe %d", k);
		cr_expect_eq(r.seq, ISS, "probe: seq = snd_una - 1 (Linux style)");
		cr_expect_eq(r.len, 0);
		cr_expect_eq(tpending(&N), 0);
		/* still zero window */
		inj_full(PISN + 1, ISS + 1, TCP_ACK, 0, NULL, 0, NULL, 0);
		d *= 2;
	}
	cr_expect_eq(tcp_stack_stats(N.ts)->persist_probes, 4);
	cr_expect_eq(A.closed, 0, "probes answered: never give up");
	/* window opens */
	inj_full(PISN + 1, ISS + 1, TCP_ACK, 65535, NULL, 0, NULL, 0);
	unsigned got = 0;
	while (tpop(&N, &r))
		got += r.len;
	cr_expect_eq(got, 3000);
}

Test(tcp_data, sender_sws_waits_for_window)
{
	fill_pattern();
	/* fill the window exactly: 65535 in flight allowed by cwnd? no: cwnd
	 * 10000; ack in steps with a tiny window */
	inj_full(PISN + 1, ISS + 1, TCP_ACK, 300, NULL, 0, NULL, 0);
	cr_expect_eq(tcp_send(A.conn, pattern, 5000), 5000);
	/* max window seen is 65535: 300 is below half and below MSS; but
	 * nothing is in flight so the persist timer overrides after RTO */
	cr_expect_eq(tpending(&N), 0);
	tadvance(&N, NS_PER_SEC + NS_PER_MS);
	struct tout r;
	cr_assert(tpop(&N, &r));
	cr_expect_eq(r.len, 300);
}

Test(tcp_data, ooo_reassembly_and_sack)
{
	/* SACK is on (setup offered it); bytes 0-99 missing */
	char buf[400];
	for (int i = 0; i < 400; i++)
		buf[i] = (char)('a' + i % 26);
	inj(PISN + 1 + 100, ISS + 1, TCP_ACK, buf + 100, 100);
	struct tout r;
	cr_assert(tpop(&N, &r));
	cr_expect_eq(r.ack, PISN + 1, "dup ACK at once");
	cr_expect_eq(r.opt.nsack, 1);
	cr_expect_eq(r.opt.sack[0].start, PISN + 101);
	cr_expect_eq(r.opt.sack[0].end, PISN + 201);
	inj(PISN + 1 + 300, ISS + 1, TCP_ACK, buf + 300, 100);
	cr_assert(tpop(&N, &r));
	cr_expect_eq(r.opt.nsack, 2);
	cr_expect_eq(r.opt.sack[0].start, PISN + 301, "most recent block first");
	/* overlapping duplicate of part of the second block */
	inj(PISN + 1 + 150, ISS + 1, TCP_ACK, buf + 150, 100);
	cr_assert(tpop(&N, &r));
	cr_expect_eq(r.opt.nsack, 2);
	cr_expect_eq(A.rxlen, 0);
	/* fill the first hole: delivered up to the next one (250) */
	inj(PISN + 1, ISS + 1, TCP_ACK, buf, 100);
	cr_expect_eq(A.rxlen, 250);
	cr_assert(tpop(&N, &r));
	cr_expect_eq(r.ack, PISN + 251, "hole filled: ACK at once");
	cr_expect_eq(r.opt.nsack, 1);
	/* and the last hole */
	inj(PISN + 1 + 200, ISS + 1, TCP_ACK, buf + 200, 100);
	cr_expect_eq(A.rxlen, 400);
	cr_expect_eq(memcmp(A.rx, buf, 400), 0);
	cr_assert(tpop(&N, &r));
	cr_expect_eq(r.ack, PISN + 401);
	cr_expect_eq(r.opt.nsack, 0);
	cr_expect_geq(tcp_stack_stats(N.ts)->ooo_queued, 3);
}

Test(tcp_data, ooo_queue_bounded)
{
	struct tcp_conf cf;
	tconf(&cf);
	cf.ooo_max_segs = 4;
	tnode_fini(&N);
	tapp_fini(&A);
	open_conn(&cf);
	char b[10] = "0123456789";
	for (uint32_t k = 1; k <= 10; k++)
		inj(PISN + 1 + 20 * k, ISS + 1, TCP_ACK, b, 10);
	cr_expect_eq(tcp_stack_stats(N.ts)->ooo_queued, 4);
	cr_expect_eq(tcp_stack_stats(N.ts)->ooo_dropped, 6);
	struct tcp_conn_info i;
	tcp_get_info(A.conn, &i);
	cr_expect_eq(i.ooo_segs, 4);
	tnode_clear(&N);
}

/* conf.mbuf_budget counts out-of-order mbufs too: new out-of-order
 * segments are dropped at the budget, in-order data is still taken, a
 * connection stopped by the budget (with an empty send queue) gets
 * writable() once reassembly frees mbufs, and abort returns the count to 0. */
Test(tcp_data, ooo_and_send_share_mbuf_budget)
{
	struct tcp_conf cf;
	tconf(&cf);
	cf.mbuf_budget = 4;
	tnode_fini(&N);
	tapp_fini(&A);
	open_conn(&cf);
	char b[20] = "0123456789abcdefghij";
	for (uint32_t k = 1; k <= 10; k++)
		inj(PISN + 1 + 20 * k, ISS + 1, TCP_ACK, b, 10);
	const struct tcp_stats *st = tcp_stack_stats(N.ts);
	cr_expect_eq(st->ooo_queued, 4);
	cr_expect_eq(st->ooo_dropped, 6, "dropped at the budget: %llu",
		     (unsigned long long)st->ooo_dropped);
	cr_expect_eq(tcp_stack_mbufs_held(N.ts), 4);
	/* the budget is full: nothing can be queued for sending */
	cr_expect_eq(tcp_send(A.conn, b, 20), 0);
	cr_expect_eq(st->sndbuf_budget_waits, 1);
	cr_expect_eq(tcp_send_space(A.conn), cf.sndbuf, "own queue empty");
	cr_expect_eq(A.writable, 0, "no callback from inside tcp_send");
	tnode_clear(&N);
	/* in-order data is taken at the budget; it fills the hole, the first
	 * run drains to the application and frees one mbuf */
	inj(PISN + 1, ISS + 1, TCP_ACK, b, 20);
	cr_expect_eq(A.rxlen, 30);
	cr_expect_eq(tcp_stack_mbufs_held(N.ts), 3);
	cr_expect_eq(A.writable, 1, "writable() once the budget has room");
	cr_expect_eq(tcp_send(A.conn, b, 20), 20);
	cr_expect_eq(tcp_stack_mbufs_held(N.ts), 4);
	struct tout r;
	cr_assert(tpop(&N, &r));
	while (r.len == 0)
		cr_assert(tpop(&N, &r));
	cr_expect_eq(r.seq, ISS + 1);
	cr_expect_eq(r.len, 20);
	tnode_clear(&N);
	/* the data acked: its mbuf goes */
	inj(PISN + 31, ISS + 21, TCP_ACK, NULL, 0);
	cr_expect_eq(tcp_stack_mbufs_held(N.ts), 3);
	tcp_abort(A.conn);
	cr_expect_eq(tcp_stack_mbufs_held(N.ts), 0, "abort frees the OOO queue");
	tnode_clear(&N);
}

Test(tcp_data, ooo_fin_waits_for_hole)
{
	inj(PISN + 1 + 5, ISS + 1, TCP_ACK | TCP_FIN, "world", 5);
	cr_expect_eq(A.eof, 0);
	inj(PISN + 1, ISS + 1, TCP_ACK, "hello", 5);
	cr_expect_eq(A.rxlen, 10);
	cr_expect_eq(A.eof, 1);
	cr_expect_eq(tcp_get_state(A.conn), TCP_CLOSE_WAIT);
	tnode_clear(&N);
}

Test(tcp_data, trims_overlap_and_window)
{
	inj(PISN + 1, ISS + 1, TCP_ACK, "abcdef", 6);
	/* retransmission overlapping old and new bytes */
	inj(PISN + 1 + 3, ISS + 1, TCP_ACK, "defghi", 6);
	cr_expect_eq(A.rxlen, 9);
	cr_expect_eq(memcmp(A.rx, "abcdefghi", 9), 0);
	/* an entirely old segment: ACK, no delivery */
	tnode_clear(&N);
	inj(PISN + 1, ISS + 1, TCP_ACK, "abc", 3);
	cr_expect_eq(A.rxlen, 9);
	struct tout r;
	cr_assert(tpop(&N, &r));
	cr_expect_eq(r.ack, PISN + 10);
}

Test(tcp_data, delayed_ack)
{
	char b[1000];
	memset(b, 'x', sizeof(b));
	inj(PISN + 1, ISS + 1, TCP_ACK, b, 1000);
	cr_expect_eq(tpending(&N), 0, "first segment: ACK delayed");
	inj(PISN + 1001, ISS + 1, TCP_ACK, b, 1000);
	struct tout r;
	cr_assert(tpop(&N, &r), "second full segment: ACK now");
	cr_expect_eq(r.ack, PISN + 2001);
	inj(PISN + 2001, ISS + 1, TCP_ACK, b, 10);
	cr_expect_eq(tpending(&N), 0);
	tadvance(&N, 39 * NS_PER_MS);
	cr_expect_eq(tpending(&N), 0);
	tadvance(&N, 2 * NS_PER_MS);
	cr_assert(tpop(&N, &r), "delayed ACK timer (40 ms)");
	cr_expect_eq(r.ack, PISN + 2011);
	cr_expect_eq(tcp_stack_stats(N.ts)->delayed_acks, 1);
}

Test(tcp_data, receive_window_closes_and_reopens)
{
	struct tcp_conf cf;
	tconf(&cf);
	cf.rcvbuf = 4000;
	tnode_fini(&N);
	tapp_fini(&A);
	open_conn(&cf);
	A.manual_recved = true;
	char b[1000];
	memset(b, 'y', sizeof(b));
	for (uint32_t k = 0; k < 4; k++)
		inj(PISN + 1 + 1000 * k, ISS + 1, TCP_ACK, b, 1000);
	struct tout r;
	uint16_t last_wnd = 0xFFFF;
	while (tpop(&N, &r))
		last_wnd = r.wnd;
	cr_expect_eq(last_wnd, 0, "window closed: the application holds 4000 bytes");
	/* beyond the window: dropped, ACKed */
	inj(PISN + 4001, ISS + 1, TCP_ACK, b, 1000);
	cr_expect_eq(A.rxlen, 4000);
	cr_assert(tpop(&N, &r));
	cr_expect_eq(r.ack, PISN + 4001);
	cr_expect_eq(r.wnd, 0);
	/* the application consumes: a window update goes out */
	tcp_recved(A.conn, 4000);
	cr_assert(tpop(&N, &r));
	cr_expect_eq(r.wnd, 4000);
}

Test(tcp_data, send_buffer_backpressure)
{
	struct tcp_conf cf;
	tconf(&cf);
	cf.sndbuf = 8000;
	tnode_fini(&N);
	tapp_fini(&A);
	open_conn(&cf);
	fill_pattern();
	cr_expect_eq(tcp_send(A.conn, pattern, 20000), 8000);
	cr_expect_eq(tcp_send_space(A.conn), 0);
	cr_expect_eq(tcp_send(A.conn, pattern, 10), 0);
	tnode_clear(&N);
	inj(PISN + 1, ISS + 1 + 3000, TCP_ACK, NULL, 0);
	cr_expect_eq(A.writable, 1);
	cr_expect_eq(tcp_send_space(A.conn), 3000);
	tnode_clear(&N);
}

Test(tcp_data, ack_of_unsent_data_challenged)
{
	cr_expect_eq(tcp_send(A.conn, "abc", 3), 3);
	tnode_clear(&N);
	inj(PISN + 1, ISS + 1 + 100, TCP_ACK, NULL, 0);
	struct tout r;
	cr_assert(tpop(&N, &r));
	cr_expect_eq(r.ack, PISN + 1);
	cr_expect_eq(r.seq, ISS + 4);
	struct tcp_conn_info i;
	tcp_get_info(A.conn, &i);
	cr_expect_eq(i.snd_una, ISS + 1, "bogus ACK ignored");
}

static unsigned sack_opt(uint8_t *p, uint32_t s1, uint32_t e1, uint32_t s2, uint32_t e2)
{
	unsigned n = 0;
	unsigned k = s2 != e2 ? 2 : 1;
	p[n++] = 1; p[n++] = 1; p[n++] = 5; p[n++] = (uint8_t)(2 + 8 * k);
	uint32_t v[4] = { s1, e1, s2, e2 };
	for (unsigned i = 0; i < 2 * k; i++) {
		p[n++] = (uint8_t)(v[i] >> 24); p[n++] = (uint8_t)(v[i] >> 16);
		p[n++] = (uint8_t)(v[i] >> 8); p[n++] = (uint8_t)v[i];
	}
	return n;
}

Test(tcp_data, sack_recovery_rfc6675)
{
	fill_pattern();
	struct tcp_conn_info i;
	tcp_get_info(A.conn, &i);
	cr_assert(i.sack_ok);
	cr_expect_eq(tcp_send(A.conn, pattern, 10000), 10000);
	struct tout r;
	unsigned n = 0;
	while (tpop(&N, &r))
		n++;
	cr_assert_eq(n, 10);
	uint32_t b = ISS + 1;	/* byte 0 */
	uint8_t o[40];
	/* segment 1 lost; 2, 3, 4 arrive: three dupacks with growing SACK */
	for (uint32_t k = 2; k <= 4; k++) {
		inj_full(PISN + 1, b, TCP_ACK, 65535, NULL, 0, o,
			 (uint8_t)sack_opt(o, b + 1000, b + 1000 * k, 0, 0));
		if (k < 4)
			cr_expect_eq(tpending(&N), 0, "k=%u", k);
	}
	cr_assert(tpop(&N, &r));
	cr_expect_eq(r.seq, b, "the hole is retransmitted");
	cr_expect_eq(r.len, 1000);
	cr_expect_eq(tpending(&N), 0, "pipe (7000) exceeds cwnd (5000): nothing else");
	cr_expect_eq(tcp_stack_stats(N.ts)->sack_recoveries, 1);
	tcp_get_info(A.conn, &i);
	cr_expect_eq(i.cwnd, 5000);
	cr_expect_eq(i.ssthresh, 5000);
	/* the retransmission fills the hole: cumulative ACK to 4000; segments
	 * 6..10 arrived but 5 did not */
	inj_full(PISN + 1, b + 4000, TCP_ACK, 65535, NULL, 0, o,
		 (uint8_t)sack_opt(o, b + 5000, b + 10000, 0, 0));
	cr_assert(tpop(&N, &r));
	cr_expect_eq(r.seq, b + 4000, "segment 5 is lost: resent at once, no RTO");
	cr_expect_eq(r.len, 1000);
	cr_expect_eq(tpending(&N), 0, "SACKed segments are never resent");
	/* all acked: recovery ends, cwnd = ssthresh */
	inj(PISN + 1, b + 10000, TCP_ACK, NULL, 0);
	tcp_get_info(A.conn, &i);
	cr_expect_eq(i.cwnd, 5000);
	cr_expect_eq(tcp_stack_stats(N.ts)->rto_fires, 0);
	cr_expect_eq(tcp_stack_stats(N.ts)->retransmits, 2);
}

Test(tcp_data, sack_loss_detected_by_sack_alone)
{
	fill_pattern();
	cr_expect_eq(tcp_send(A.conn, pattern, 5000), 5000);
	struct tout r;
	while (tpop(&N, &r))
		;
	uint32_t b = ISS + 1;
	/* one dupack SACKing segments 3-5 (not enough for recovery by count,
	 * but 3000 bytes SACKed makes segment 1 IsLost -> recovery) */
	uint8_t o[40];
	inj_full(PISN + 1, b, TCP_ACK, 65535, NULL, 0, o,
		 (uint8_t)sack_opt(o, b + 2000, b + 5000, 0, 0));
	cr_assert(tpop(&N, &r));
	cr_expect_eq(r.seq, b, "IsLost(snd_una) triggers recovery on SACK alone");
	/* rule 1 also covers segment 2 (a hole below the SACKed bytes) */
	cr_assert(tpop(&N, &r));
	cr_expect_eq(r.seq, b + 1000);
	cr_expect_eq(tpending(&N), 0);
}

/* Both sequence spaces wrap past 2^32 mid-transfer. */
Test(tcp_data, sequence_wraparound)
{
	tnode_fini(&N);
	tapp_fini(&A);
	tnode_init(&N, "wrap", OUR_IP, 2, NULL);
	tnode_learn(&N, PEER_IP, 9);
	tapp_init(&A, 1 << 20);
	/* choose the clock so that our ISS is just below 2^32 */
	struct tcp_tuple t = { net_addr_v4(tip(OUR_IP)), net_addr_v4(tip(PEER_IP)), rte_cpu_to_be_16(LP),
			       rte_cpu_to_be_16(SP) };
	N.ts->now = 0;
	uint32_t h = tcp_isn(N.ts, &t);
	N.ns.now_ns = (uint64_t)(uint32_t)(0xFFFFF000u - h) * 4000u;
	cr_assert(tcp_listen(N.ts, rte_cpu_to_be_16(LP), &tapp_cb, &A));
	const uint32_t P = 0xFFFFFC00u;	/* peer ISN */
	uint8_t o[40];
	inj_full(P, 0, TCP_SYN, 65535, NULL, 0, o,
		 (uint8_t)topts_syn(o, 1000, -1, true, false, 0, 0));
	struct tout r;
	cr_assert(tpop(&N, &r));
	ISS = r.seq;
	cr_expect_eq(ISS, 0xFFFFF000u);
	inj(P + 1, ISS + 1, TCP_ACK, NULL, 0);
	cr_assert_eq(A.accepted, 1);
	fill_pattern();
	/* receive 6 segments across the wrap, the 3rd one late */
	for (uint32_t k = 0; k < 6; k++) {
		if (k == 2)
			continue;
		inj(P + 1 + 1000 * k, ISS + 1, TCP_ACK, pattern + 1000 * k, 1000);
	}
	cr_expect_eq(A.rxlen, 2000);
	inj(P + 1 + 2000, ISS + 1, TCP_ACK, pattern + 2000, 1000);
	cr_expect_eq(A.rxlen, 6000);
	cr_expect_eq(memcmp(A.rx, pattern, 6000), 0);
	tnode_clear(&N);
	/* send 8000 across our wrap; lose the second segment */
	cr_expect_eq(tcp_send(A.conn, pattern, 8000), 8000);
	uint32_t next = ISS + 1;
	unsigned n = 0;
	while (tpop(&N, &r)) {
		cr_expect_eq(r.seq, next);
		cr_expect_eq(memcmp(r.data, pattern + (uint32_t)(r.seq - ISS - 1), r.len), 0);
		next += r.len;
		n++;
	}
	cr_expect_eq(n, 8);
	for (int k = 0; k < 3; k++)
		inj_full(P + 6001, ISS + 1 + 1000, TCP_ACK, 65535, NULL, 0, o,
			 (uint8_t)sack_opt(o, ISS + 1 + 2000, ISS + 1 + 2000 + 1000 * (k + 1), 0, 0));
	cr_assert(tpop(&N, &r));
	cr_expect_eq(r.seq, ISS + 1 + 1000);
	inj(P + 6001, ISS + 1 + 8000, TCP_ACK, NULL, 0);
	struct tcp_conn_info i;
	tcp_get_info(A.conn, &i);
	cr_expect_eq(i.snd_una, ISS + 8001);
	cr_expect_eq(i.sndq_bytes, 0);
	tnode_clear(&N);
}

Test(tcp_data, limited_transmit_rfc3042)
{
	fill_pattern();
	cr_expect_eq(tcp_send(A.conn, pattern, 14000), 14000);
	struct tout r;
	unsigned n = 0;
	while (tpop(&N, &r))
		n++;
	cr_assert_eq(n, 10, "cwnd: 10 segments");
	inj(PISN + 1, ISS + 1, TCP_ACK, NULL, 0);
	cr_assert(tpop(&N, &r), "first dupack: one new segment");
	cr_expect_eq(r.seq, ISS + 1 + 10000);
	cr_expect_eq(tpending(&N), 0);
	inj(PISN + 1, ISS + 1, TCP_ACK, NULL, 0);
	cr_assert(tpop(&N, &r), "second dupack: another");
	cr_expect_eq(r.seq, ISS + 1 + 11000);
	cr_expect_eq(tpending(&N), 0);
	inj(PISN + 1, ISS + 1, TCP_ACK, NULL, 0);
	cr_assert(tpop(&N, &r), "third: fast retransmit");
	cr_expect_eq(r.seq, ISS + 1);
	tnode_clear(&N);
}

/* ---- Tail Loss Probe (RFC 8985 7) ---------------------------------------- */

/* One exchange with a 10 ms RTT so that SRTT = 10 ms (RTO: the 200 ms
 * floor); returns the next sequence number to send. */
static uint32_t tlp_prime(void)
{
	struct tout r;
	cr_expect_eq(tcp_send(A.conn, pattern, 100), 100);
	cr_assert(tpop(&N, &r));
	tadvance(&N, 10 * NS_PER_MS);
	inj(PISN + 1, ISS + 101, TCP_ACK, NULL, 0);
	struct tcp_conn_info i;
	tcp_get_info(A.conn, &i);
	cr_assert_eq(i.srtt_ns, 10 * NS_PER_MS);
	cr_assert_eq(i.rto_ns, 200 * NS_PER_MS);
	tnode_clear(&N);
	return ISS + 101;
}

/* A lone reply is lost: the probe resends it after PTO = 2 * SRTT + the
 * one-segment ACK allowance (40 ms) = 60 ms, not after the 200 ms RTO. */
Test(tcp_data, tlp_resends_a_lost_lone_segment_after_pto)
{
	fill_pattern();
	uint32_t seq = tlp_prime();
	struct tout r;
	cr_expect_eq(tcp_send(A.conn, "250 2.0.0 Ok\r\n", 14), 14);
	cr_assert(tpop(&N, &r));	/* lost on the way */
	cr_expect_eq(r.seq, seq);
	tadvance(&N, 59 * NS_PER_MS);
	cr_expect_eq(tpending(&N), 0, "nothing before the PTO");
	tadvance(&N, 2 * NS_PER_MS);
	cr_assert(tpop(&N, &r), "the probe at ~60 ms");
	cr_expect_eq(r.seq, seq);
	cr_expect_eq(r.len, 14);
	cr_expect_eq(memcmp(r.data, "250 2.0.0 Ok\r\n", 14), 0);
	const struct tcp_stats *st = tcp_stack_stats(N.ts);
	cr_expect_eq(st->tlp_probes, 1);
	cr_expect_eq(st->rto_fires, 0);
	/* its ACK completes the exchange: a loss the probe repaired */
	struct tcp_conn_info i0, i;
	tcp_get_info(A.conn, &i0);
	tadvance(&N, 10 * NS_PER_MS);
	inj(PISN + 1, seq + 14, TCP_ACK, NULL, 0);
	tcp_get_info(A.conn, &i);
	cr_expect_eq(i.snd_una, seq + 14);
	cr_expect_eq(st->tlp_recovered, 1);
	cr_expect_lt(i.cwnd, i0.cwnd, "window reduced: %u -> %u", i0.cwnd, i.cwnd);
	cr_expect_leq(i.ssthresh, tcp_max32((i0.cwnd + 14) / 2, 2 * i0.mss), "halved once");
	/* and nothing more is sent: no RTO later */
	tadvance(&N, 1000 * NS_PER_MS);
	cr_expect_eq(tpending(&N), 0);
	cr_expect_eq(st->rto_fires, 0);
}

/* With several segments out the PTO is 2 * SRTT (20 ms); the probe is the
 * last segment; a second loss of it waits for the RTO (one probe only). */
Test(tcp_data, tlp_probes_once_then_the_rto)
{
	fill_pattern();
	uint32_t seq = tlp_prime();
	struct tout r;
	cr_expect_eq(tcp_send(A.conn, pattern, 3000), 3000);
	unsigned n = 0;
	while (tpop(&N, &r))
		n++;
	cr_assert_eq(n, 3);	/* all three lost */
	tadvance(&N, 19 * NS_PER_MS);
	cr_expect_eq(tpending(&N), 0);
	tadvance(&N, 2 * NS_PER_MS);
	cr_assert(tpop(&N, &r), "the probe at ~20 ms");
	cr_expect_eq(r.seq, seq + 2000, "the last segment");
	cr_expect_eq(r.len, 1000);
	cr_expect_eq(tpending(&N), 0, "one probe");
	/* the probe is lost too: the RTO (200 ms after the probe) takes over */
	tadvance(&N, 198 * NS_PER_MS);
	cr_expect_eq(tpending(&N), 0, "no second probe");
	tadvance(&N, 4 * NS_PER_MS);
	cr_assert(tpop(&N, &r));
	cr_expect_eq(r.seq, seq, "RTO: back to snd_una");
	cr_expect_eq(tcp_stack_stats(N.ts)->rto_fires, 1);
	cr_expect_eq(tcp_stack_stats(N.ts)->tlp_probes, 1);
}

/* The probe (the last of three lost segments) arrives and is SACKed: the
 * holes below it were sent a PTO earlier, so they are lost (RACK's rule):
 * SACK recovery starts at once instead of after the RTO. */
Test(tcp_data, tlp_sacked_probe_starts_recovery)
{
	fill_pattern();
	uint32_t seq = tlp_prime();
	struct tout r;
	cr_expect_eq(tcp_send(A.conn, pattern, 3000), 3000);
	while (tpop(&N, &r))
		;	/* all three lost */
	tadvance(&N, 21 * NS_PER_MS);
	cr_assert(tpop(&N, &r), "the probe");
	cr_expect_eq(r.seq, seq + 2000);
	/* its ACK: nothing new acked, the probe SACKed */
	uint8_t o[12] = { 1, 1, 5, 10 };
	uint32_t b[2] = { rte_cpu_to_be_32(seq + 2000), rte_cpu_to_be_32(seq + 3000) };
	memcpy(o + 4, b, 8);
	tadvance(&N, 10 * NS_PER_MS);
	inj_full(PISN + 1, seq, TCP_ACK, 65535, NULL, 0, o, 12);
	cr_assert(tpop(&N, &r), "the first hole resent at once");
	cr_expect_eq(r.seq, seq);
	cr_expect_eq(r.len, 1000);
	const struct tcp_stats *st = tcp_stack_stats(N.ts);
	cr_expect_eq(st->sack_recoveries, 1);
	cr_expect_eq(st->tlp_recovered, 1);
	/* the partial ACK brings the second hole; the full ACK ends it */
	tnode_clear(&N);
	inj_full(PISN + 1, seq + 1000, TCP_ACK, 65535, NULL, 0, o, 12);
	cr_assert(tpop(&N, &r), "the second hole");
	cr_expect_eq(r.seq, seq + 1000);
	inj(PISN + 1, seq + 3000, TCP_ACK, NULL, 0);
	struct tcp_conn_info i;
	tcp_get_info(A.conn, &i);
	cr_expect_eq(i.snd_una, seq + 3000);
	cr_expect_eq(st->rto_fires, 0);
	cr_expect_eq(st->tlp_probes, 1);
}

/* A probe the peer did not need (its ACK was late) is reported by D-SACK:
 * no loss, the window is kept. */
Test(tcp_data, tlp_spurious_probe_keeps_the_window)
{
	fill_pattern();
	uint32_t seq = tlp_prime();
	struct tout r;
	cr_expect_eq(tcp_send(A.conn, pattern, 500), 500);
	cr_assert(tpop(&N, &r));
	tadvance(&N, 61 * NS_PER_MS);
	cr_assert(tpop(&N, &r), "the probe");
	struct tcp_conn_info i0, i;
	tcp_get_info(A.conn, &i0);
	/* the ACK with a D-SACK block for the duplicate (RFC 2883) */
	uint8_t o[12] = { 1, 1, 5, 10 };
	uint32_t b[2] = { rte_cpu_to_be_32(seq), rte_cpu_to_be_32(seq + 500) };
	memcpy(o + 4, b, 8);
	inj_full(PISN + 1, seq + 500, TCP_ACK, 65535, NULL, 0, o, 12);
	tcp_get_info(A.conn, &i);
	cr_expect_eq(i.snd_una, seq + 500);
	cr_expect_eq(tcp_stack_stats(N.ts)->tlp_spurious, 1);
	cr_expect_eq(tcp_stack_stats(N.ts)->tlp_recovered, 0);
	cr_expect_geq(i.cwnd, i0.cwnd, "window kept: %u -> %u", i0.cwnd, i.cwnd);
}

/* [tcp] tail_loss_probe = no: the lost reply waits for the RTO floor. */
Test(tcp_data, tlp_off_waits_for_the_rto)
{
	struct tcp_conf cf;
	tconf(&cf);
	cf.tlp = false;
	tnode_fini(&N);
	tapp_fini(&A);
	open_conn(&cf);
	fill_pattern();
	uint32_t seq = tlp_prime();
	struct tout r;
	cr_expect_eq(tcp_send(A.conn, "250 2.0.0 Ok\r\n", 14), 14);
	cr_assert(tpop(&N, &r));
	tadvance(&N, 199 * NS_PER_MS);
	cr_expect_eq(tpending(&N), 0);
	tadvance(&N, 2 * NS_PER_MS);
	cr_assert(tpop(&N, &r));
	cr_expect_eq(r.seq, seq);
	cr_expect_eq(tcp_stack_stats(N.ts)->rto_fires, 1);
	cr_expect_eq(tcp_stack_stats(N.ts)->tlp_probes, 0);
}

/* ---- Path MTU: ICMP "fragmentation needed" (RFC 1191, RFC 5927) ---------- */

/* A router's type 3 code 4 quoting our segment: next-hop MTU mtu, the
 * quoted datagram qlen bytes long, from our port 25 (lport) to the peer's
 * port (rport), sequence number seq. */
static void inj_frag_needed(uint16_t mtu, uint16_t qlen, uint16_t lport, uint16_t rport,
			    uint32_t seq)
{
	uint8_t buf[128];
	memset(buf, 0, sizeof(buf));
	struct rte_ether_hdr *eh = (struct rte_ether_hdr *)buf;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eh + 1);
	uint8_t *ic = (uint8_t *)(ip + 1);
	struct rte_ipv4_hdr *q = (struct rte_ipv4_hdr *)(ic + 8);
	uint8_t *qt = (uint8_t *)(q + 1);
	eh->dst_addr = N.ns.addr.mac;
	eh->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	ic[0] = 3;
	ic[1] = 4;
	ic[6] = (uint8_t)(mtu >> 8);
	ic[7] = (uint8_t)mtu;
	q->version_ihl = RTE_IPV4_VHL_DEF;
	q->total_length = rte_cpu_to_be_16(qlen);
	q->time_to_live = 63;
	q->next_proto_id = IPPROTO_TCP;
	q->src_addr = N.ns.addr.ip;
	q->dst_addr = tip(PEER_IP);
	qt[0] = (uint8_t)(lport >> 8); qt[1] = (uint8_t)lport;
	qt[2] = (uint8_t)(rport >> 8); qt[3] = (uint8_t)rport;
	qt[4] = (uint8_t)(seq >> 24); qt[5] = (uint8_t)(seq >> 16);
	qt[6] = (uint8_t)(seq >> 8); qt[7] = (uint8_t)seq;
	unsigned iclen = 8 + 20 + 8;
	uint16_t ck = (uint16_t)~rte_raw_cksum(ic, iclen);
	memcpy(ic + 2, &ck, 2);
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->total_length = rte_cpu_to_be_16((uint16_t)(20 + iclen));
	ip->time_to_live = 64;
	ip->next_proto_id = IPPROTO_ICMP;
	ip->src_addr = tip("198.18.0.77");	/* a router on the path */
	ip->dst_addr = N.ns.addr.ip;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	unsigned flen = 14 + 20 + iclen;
	struct rte_mbuf *m = rte_pktmbuf_alloc(N.pool);
	cr_assert_not_null(m);
	memcpy(rte_pktmbuf_append(m, (uint16_t)flen), buf, flen);
	net_input(&N.ns, m);
}

/* MTU 600 on the path: the MSS drops to 560 and the flight goes again at
 * once in 560-byte segments; later data uses the new size. */
Test(tcp_data, frag_needed_lowers_the_mss_and_resends)
{
	fill_pattern();
	cr_expect_eq(tcp_send(A.conn, pattern, 3000), 3000);
	struct tout r;
	unsigned n = 0;
	while (tpop(&N, &r))
		n++;
	cr_assert_eq(n, 3);	/* 3 x 1000, all too big for the path */
	inj_frag_needed(600, 1040, LP, SP, ISS + 1);
	cr_expect_eq(N.ns.stats.icmp_rx_frag_needed, 1);
	cr_expect_eq(tcp_stack_stats(N.ts)->pmtu_lowered, 1);
	struct tcp_conn_info i;
	tcp_get_info(A.conn, &i);
	cr_expect_eq(i.mss, 560);
	uint32_t next = ISS + 1;
	n = 0;
	while (tpop(&N, &r)) {
		cr_expect_eq(r.seq, next);
		cr_expect_leq(r.len, 560);
		cr_expect_eq(memcmp(r.data, pattern + (r.seq - ISS - 1), r.len), 0);
		next += r.len;
		n++;
	}
	cr_expect_eq(next, ISS + 3001, "the whole flight resent at once (%u segments)", n);
	cr_expect_eq(tcp_stack_stats(N.ts)->rto_fires, 0);
	/* acked: new data is cut to the new size */
	inj(PISN + 1, ISS + 3001, TCP_ACK, NULL, 0);
	tnode_clear(&N);
	cr_expect_eq(tcp_send(A.conn, pattern, 1000), 1000);
	cr_assert(tpop(&N, &r));
	cr_expect_eq(r.len, 560);
}

/* RFC 5927 checks: a quote outside SND.UNA..SND.NXT, for other ports, with
 * an MTU not below the quoted size, or none at all, changes nothing; a
 * tiny MTU is raised to the 552 floor. */
Test(tcp_data, frag_needed_is_checked)
{
	fill_pattern();
	cr_expect_eq(tcp_send(A.conn, pattern, 2000), 2000);
	tnode_clear(&N);
	inj_frag_needed(600, 1040, LP, SP, ISS);		/* below SND.UNA */
	inj_frag_needed(600, 1040, LP, SP, ISS + 2001);		/* at SND.NXT */
	inj_frag_needed(600, 1040, LP, SP, ISS + 1000000);	/* far away */
	inj_frag_needed(600, 1040, LP, SP + 1, ISS + 1);	/* another connection */
	inj_frag_needed(600, 1040, LP + 1, SP, ISS + 1);
	inj_frag_needed(1040, 1040, LP, SP, ISS + 1);		/* was not too big */
	inj_frag_needed(0, 1040, LP, SP, ISS + 1);		/* no MTU given */
	cr_expect_eq(tcp_stack_stats(N.ts)->pmtu_rejected, 7);
	cr_expect_eq(tcp_stack_stats(N.ts)->pmtu_lowered, 0);
	struct tcp_conn_info i;
	tcp_get_info(A.conn, &i);
	cr_expect_eq(i.mss, 1000);
	cr_expect_eq(tpending(&N), 0, "nothing resent");
	/* in window, MTU 100: the floor, 552 - 40 */
	inj_frag_needed(100, 1040, LP, SP, ISS + 1001);
	tcp_get_info(A.conn, &i);
	cr_expect_eq(i.mss, 512);
	cr_expect_eq(tcp_stack_stats(N.ts)->pmtu_lowered, 1);
	/* a later one for a larger MTU does not raise it */
	inj_frag_needed(900, 1040, LP, SP, ISS + 1);
	tcp_get_info(A.conn, &i);
	cr_expect_eq(i.mss, 512);
}
