/*
 * test_tcp_cookie.c - SYN cookies: the backlog fills, further SYNs get
 * cookie SYN-ACKs without any state, the final ACK creates the connection
 * with the MSS/window scale/SACK the SYN asked for; forged, stale and
 * replayed-with-wrong-tuple ACKs are refused, and so is any cookie ACK more
 * than two cookie periods after the last overflow; a flood keeps memory
 * bounded.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "tests/tcp/tcp_test.h"

static struct tnode N;
static struct tapp A;

static void setup(void)
{
	struct tcp_conf cf;
	tconf(&cf);
	cf.backlog = 2;
	tnode_init(&N, "cookie", OUR_IP, 2, &cf);
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

TestSuite(tcp_cookie, .init = setup, .fini = teardown, .timeout = 30);

static void syn(uint16_t sport, uint32_t seq, bool ts, uint16_t mss, int ws, bool sack)
{
	uint8_t o[40];
	struct tseg s = { .seq = seq, .flags = TCP_SYN, .wnd = 1000, .sport = sport, .dport = 25,
			  .opts = o,
			  .optlen = (uint8_t)topts_syn(o, mss, ws, sack, ts, 4444, 0) };
	tinject(&N, PEER_IP, &s);
}

static void fill_backlog(void)
{
	struct tout r;
	syn(1001, 1, false, 1460, -1, false);
	syn(1002, 1, false, 1460, -1, false);
	cr_assert(tpop(&N, &r));
	cr_assert(tpop(&N, &r));
	cr_assert_eq(tcp_stack_conn_count(N.ts), 2);
}

Test(tcp_cookie, round_trip_with_timestamps)
{
	fill_backlog();
	syn(2000, 5000, true, 1400, 5, true);
	struct tout r;
	cr_assert(tpop(&N, &r));
	cr_expect_eq(r.flags, TCP_SYN | TCP_ACK);
	cr_expect_eq(r.ack, 5001);
	cr_expect(r.opt.mss_ok);
	cr_expect(r.opt.ws_ok && r.opt.sack_perm && r.opt.ts_ok);
	cr_expect_eq(tcp_stack_stats(N.ts)->syncookies_sent, 1);
	cr_expect_eq(tcp_stack_conn_count(N.ts), 2, "no state for the cookie");
	uint8_t o[40];
	struct tseg a = { .seq = 5001, .ack = r.seq + 1, .flags = TCP_ACK, .wnd = 500,
			  .sport = 2000, .dport = 25, .opts = o,
			  .optlen = (uint8_t)topts_ts(o, 4445, r.opt.tsval),
			  .data = "EHLO", .len = 4 };
	tinject(&N, PEER_IP, &a);
	cr_expect_eq(tcp_stack_stats(N.ts)->syncookies_validated, 1);
	cr_assert_eq(A.accepted, 1);
	struct tcp_conn_info i;
	tcp_get_info(A.conn, &i);
	cr_expect_eq(i.state, TCP_ESTABLISHED);
	cr_expect_eq(i.mss, 1400 - 12, "MSS from the cookie table");
	cr_expect_eq(i.snd_wscale, 5, "window scale from the timestamp");
	cr_expect(i.sack_ok);
	cr_expect(i.ts_ok);
	cr_expect_eq(i.snd_wnd, 500u << 5);
	cr_expect_eq(A.rxlen, 4, "data on the final ACK is kept");
	tnode_clear(&N);
}

Test(tcp_cookie, round_trip_without_timestamps)
{
	fill_backlog();
	syn(2001, 9, false, 1000, 5, true);
	struct tout r;
	cr_assert(tpop(&N, &r));
	cr_expect(!r.opt.ws_ok && !r.opt.sack_perm && !r.opt.ts_ok,
		  "without timestamps there is nowhere to keep them");
	struct tseg a = { .seq = 10, .ack = r.seq + 1, .flags = TCP_ACK, .wnd = 500,
			  .sport = 2001, .dport = 25 };
	tinject(&N, PEER_IP, &a);
	cr_assert_eq(A.accepted, 1);
	struct tcp_conn_info i;
	tcp_get_info(A.conn, &i);
	cr_expect_eq(i.mss, 536, "largest table MSS <= 1000");
	cr_expect_eq(i.snd_wscale, 0);
	cr_expect(!i.sack_ok);
}

Test(tcp_cookie, forged_and_stale_acks_refused)
{
	fill_backlog();
	syn(2002, 77, false, 1460, -1, false);
	struct tout r;
	cr_assert(tpop(&N, &r));
	/* wrong cookie */
	struct tseg a = { .seq = 78, .ack = r.seq + 2, .flags = TCP_ACK, .wnd = 500,
			  .sport = 2002, .dport = 25 };
	tinject(&N, PEER_IP, &a);
	cr_expect_eq(tcp_stack_stats(N.ts)->syncookies_failed, 1);
	cr_assert(tpop(&N, &r) && (r.flags & TCP_RST));
	/* right cookie, other port (tuple is in the MAC) */
	syn(2003, 77, false, 1460, -1, false);
	cr_assert(tpop(&N, &r));
	a.ack = r.seq + 1;
	a.sport = 2004;
	tinject(&N, PEER_IP, &a);
	cr_expect_eq(tcp_stack_stats(N.ts)->syncookies_failed, 2);
	tnode_clear(&N);
	/* right cookie, 3 minutes later: expired (the backlog overflows
	 * again meanwhile, so the cookie itself is what is checked) */
	a.sport = 2003;
	tadvance(&N, 200 * NS_PER_SEC);
	tnode_clear(&N);
	fill_backlog();
	syn(2006, 1, false, 1460, -1, false);
	tnode_clear(&N);
	tinject(&N, PEER_IP, &a);
	cr_expect_eq(tcp_stack_stats(N.ts)->syncookies_failed, 3);
	cr_expect_eq(tcp_stack_stats(N.ts)->syncookies_no_overflow, 0);
	cr_expect_eq(A.accepted, 0);
	tnode_clear(&N);
}

/* An ACK carrying a valid cookie for (peer port sport, peer ISN 500) made
 * now, as one who guessed or computed it would send. */
static void cookie_ack(uint16_t sport)
{
	struct tcp_tuple t = { .laddr = net_addr_v4(tip(OUR_IP)), .raddr = net_addr_v4(tip(PEER_IP)),
			       .lport = rte_cpu_to_be_16(25), .rport = rte_cpu_to_be_16(sport) };
	uint16_t mss;
	N.ts->now = N.ns.now_ns;
	uint32_t ck = tcp_cookie_make(N.ts, &t, 500, 1460, &mss);
	struct tseg a = { .seq = 501, .ack = ck + 1, .flags = TCP_ACK, .wnd = 500,
			  .sport = sport, .dport = 25 };
	tinject(&N, PEER_IP, &a);
}

Test(tcp_cookie, cookie_ack_needs_a_recent_overflow)
{
	const struct tcp_stats *st = tcp_stack_stats(N.ts);
	struct tout r;
	/* the backlog never overflowed, so no cookie of ours is out: a valid
	 * one is refused as for no connection */
	cookie_ack(3000);
	cr_expect_eq(A.accepted, 0, "no overflow yet: the cookie is not ours");
	cr_expect_eq(st->syncookies_no_overflow, 1);
	cr_expect_eq(st->syncookies_validated, 0);
	cr_expect_eq(st->syncookies_failed, 0, "not even checked");
	cr_expect_eq(st->drop_no_conn, 1);
	cr_assert(tpop(&N, &r));
	cr_expect(r.flags & TCP_RST, "answered as for no connection");
	cr_expect_eq(tcp_stack_conn_count(N.ts), 0);

	/* the backlog overflows (a cookie goes out): 100 s later, within two
	 * cookie periods, a valid cookie is taken */
	fill_backlog();
	syn(2010, 1, false, 1460, -1, false);
	cr_assert(tpop(&N, &r));
	cr_expect_eq(st->syncookies_sent, 1);
	tadvance(&N, 100 * NS_PER_SEC);
	tnode_clear(&N);
	cookie_ack(3001);
	cr_expect_eq(A.accepted, 1, "within 128 s of the overflow");
	cr_expect_eq(st->syncookies_validated, 1);

	/* 129 s after that overflow: refused again */
	tadvance(&N, 29 * NS_PER_SEC);
	tnode_clear(&N);
	cookie_ack(3002);
	cr_expect_eq(A.accepted, 1, "two cookie periods after the overflow");
	cr_expect_eq(st->syncookies_no_overflow, 2);
	cr_assert(tpop(&N, &r));
	cr_expect(r.flags & TCP_RST);
	tnode_clear(&N);
}

Test(tcp_cookie, cookie_still_valid_after_a_minute)
{
	fill_backlog();
	syn(2005, 1234, false, 1460, -1, false);
	struct tout r;
	cr_assert(tpop(&N, &r));
	tadvance(&N, 60 * NS_PER_SEC);
	tnode_clear(&N);
	struct tseg a = { .seq = 1235, .ack = r.seq + 1, .flags = TCP_ACK, .wnd = 500,
			  .sport = 2005, .dport = 25 };
	tinject(&N, PEER_IP, &a);
	cr_expect_eq(A.accepted, 1);
}

Test(tcp_cookie, flood_is_bounded)
{
	for (uint32_t i = 0; i < 20000; i++) {
		syn((uint16_t)(1024 + i % 60000), i * 7919u, (i & 1) != 0, 1460, 7, true);
		tnode_clear(&N);
	}
	cr_expect_eq(tcp_stack_conn_count(N.ts), 2);
	cr_expect_geq(tcp_stack_stats(N.ts)->syncookies_sent, 19990);
}

/* The peer's SYN got a cookie (the backlog was full); its SYN again found
 * room and got a SYN-ACK from the backlog with another ISN; the peer took
 * the first answer and ACKs the cookie. That ACK completes the connection
 * (the half-open one gives way): a RST would break a connection the peer
 * already has. An ACK for neither ISN is still refused. */
Test(tcp_cookie, cookie_ack_to_a_half_open_retry_is_taken)
{
	const struct tcp_stats *st = tcp_stack_stats(N.ts);
	struct tout ck, r;

	fill_backlog();
	syn(2020, 700, false, 1460, -1, false);
	cr_assert(tpop(&N, &ck));
	cr_assert_eq(st->syncookies_sent, 1);
	for (uint16_t p = 1001; p <= 1002; p++) {	/* the backlog empties */
		struct tseg rst = { .seq = 2, .flags = TCP_RST, .sport = p, .dport = 25 };
		tinject(&N, PEER_IP, &rst);
	}
	cr_assert_eq(tcp_stack_conn_count(N.ts), 0);
	syn(2020, 700, false, 1460, -1, false);
	cr_assert(tpop(&N, &r));
	cr_assert_eq(r.flags, TCP_SYN | TCP_ACK);
	cr_assert_neq(r.seq, ck.seq, "the backlog's ISN is not the cookie");
	cr_assert_eq(tcp_stack_conn_count(N.ts), 1);

	struct tseg bad = { .seq = 701, .ack = ck.seq + 77, .flags = TCP_ACK, .wnd = 500,
			    .sport = 2020, .dport = 25 };
	tinject(&N, PEER_IP, &bad);
	cr_assert(tpop(&N, &r));
	cr_expect(r.flags & TCP_RST, "an ACK for neither answer is refused");
	cr_expect_eq(A.accepted, 0);
	tnode_clear(&N);

	struct tseg a = { .seq = 701, .ack = ck.seq + 1, .flags = TCP_ACK, .wnd = 500,
			  .sport = 2020, .dport = 25, .data = "EHLO", .len = 4 };
	tinject(&N, PEER_IP, &a);
	cr_assert_eq(A.accepted, 1, "the cookie's answer is the connection");
	cr_expect_eq(st->syncookies_over_half_open, 1);
	struct tcp_conn_info i;
	tcp_get_info(A.conn, &i);
	cr_expect_eq(i.state, TCP_ESTABLISHED);
	cr_expect_eq(A.rxlen, 4);
	cr_expect_eq(tcp_stack_conn_count(N.ts), 1, "the half-open one is gone");
	while (tpop(&N, &r))
		cr_expect(!(r.flags & TCP_RST), "no RST to the peer");
	tnode_clear(&N);
}

/* A SYN with the peer's tuple but another ISN (a flood from the peer's own
 * address) takes a backlog slot between our cookie SYN-ACK and the peer's
 * ACK: the peer's cookie ACK still completes its connection. */
Test(tcp_cookie, cookie_ack_beats_a_forged_half_open)
{
	const struct tcp_stats *st = tcp_stack_stats(N.ts);
	struct tout ck, r;

	fill_backlog();
	syn(2030, 900, false, 1460, -1, false);
	cr_assert(tpop(&N, &ck));
	for (uint16_t p = 1001; p <= 1002; p++) {
		struct tseg rst = { .seq = 2, .flags = TCP_RST, .sport = p, .dport = 25 };
		tinject(&N, PEER_IP, &rst);
	}
	syn(2030, 123456, false, 1460, -1, false);	/* the forged one */
	cr_assert(tpop(&N, &r));
	cr_assert_eq(tcp_stack_conn_count(N.ts), 1);
	tnode_clear(&N);
	struct tseg a = { .seq = 901, .ack = ck.seq + 1, .flags = TCP_ACK, .wnd = 500,
			  .sport = 2030, .dport = 25 };
	tinject(&N, PEER_IP, &a);
	cr_assert_eq(A.accepted, 1, "the peer's connection, not a RST");
	cr_expect_eq(st->syncookies_over_half_open, 1);
	while (tpop(&N, &r))
		cr_expect(!(r.flags & TCP_RST), "no RST to the peer");
	tnode_clear(&N);
}
