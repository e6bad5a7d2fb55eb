/*
 * test_tcp_state.c - the state machine driven by crafted segments: handshake
 * variants (passive, active, simultaneous, SYN with and without options),
 * every close path, RST acceptance and RFC 5961 challenge ACKs, SYN in a
 * synchronized state, TIME_WAIT expiry and RFC 6191 reuse.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "tests/tcp/tcp_test.h"

#define SP 40000	/* peer port */
#define LP 25		/* our port */

static struct tnode N;
static struct tapp A;

static void setup(void)
{
	tnode_init(&N, "state", OUR_IP, 2, NULL);
	tnode_learn(&N, PEER_IP, 9);
	tapp_init(&A, 1 << 20);
}

static void teardown(void)
{
	unsigned leaked = tnode_fini(&N);
	tapp_fini(&A);
	cr_expect_eq(leaked, 0, "mbufs leaked: %u", leaked);
}

TestSuite(tcp_state, .init = setup, .fini = teardown, .timeout = 30);

static void inj(uint32_t seq, uint32_t ack, uint8_t flags, const void *data, uint16_t len,
		const uint8_t *opts, uint8_t olen)
{
	struct tseg s = { .seq = seq, .ack = ack, .flags = flags, .wnd = 65535,
			  .sport = SP, .dport = LP, .opts = opts, .optlen = olen,
			  .data = data, .len = len };
	tinject(&N, PEER_IP, &s);
}

/* Passive open with all options; returns our ISS. Peer ISN 1000. */
static uint32_t open_passive(bool with_ts)
{
	uint8_t o[40];
	cr_assert(tcp_listen(N.ts, rte_cpu_to_be_16(LP), &tapp_cb, &A));
	unsigned ol = topts_syn(o, 1460, 7, true, with_ts, 5000, 0);
	inj(1000, 0, TCP_SYN, NULL, 0, o, (uint8_t)ol);
	struct tout r;
	cr_assert(tpop(&N, &r));
	cr_assert_eq(r.flags, TCP_SYN | TCP_ACK);
	cr_assert_eq(r.ack, 1001);
	uint32_t iss = r.seq;
	ol = with_ts ? topts_ts(o, 5001, r.opt.tsval) : 0;
	inj(1001, iss + 1, TCP_ACK, NULL, 0, o, (uint8_t)ol);
	cr_assert_eq(A.accepted, 1);
	cr_assert(A.conn);
	cr_assert_eq(tcp_get_state(A.conn), TCP_ESTABLISHED);
	cr_assert_eq(tpending(&N), 0);
	return iss;
}

Test(tcp_state, passive_open_all_options)
{
	uint8_t o[40];
	cr_assert(tcp_listen(N.ts, rte_cpu_to_be_16(LP), &tapp_cb, &A));
	unsigned ol = topts_syn(o, 1400, 9, true, true, 777, 0);
	inj(1000, 0, TCP_SYN, NULL, 0, o, (uint8_t)ol);
	struct tout r;
	cr_assert(tpop(&N, &r));
	cr_expect_eq(r.flags, TCP_SYN | TCP_ACK);
	cr_expect_eq(r.ack, 1001);
	cr_expect(r.opt.mss_ok);
	cr_expect_eq(r.opt.mss, 1460);
	cr_expect(r.opt.ws_ok);
	cr_expect_eq(r.opt.ws, 7);
	cr_expect(r.opt.sack_perm);
	cr_expect(r.opt.ts_ok);
	cr_expect_eq(r.opt.tsecr, 777);
	cr_expect_eq(A.accepted, 0);
	ol = topts_ts(o, 778, r.opt.tsval);
	inj(1001, r.seq + 1, TCP_ACK, NULL, 0, o, (uint8_t)ol);
	cr_assert_eq(A.accepted, 1);
	struct tcp_conn_info i;
	tcp_get_info(A.conn, &i);
	cr_expect_eq(i.state, TCP_ESTABLISHED);
	cr_expect_eq(i.mss, 1400 - 12);
	cr_expect_eq(i.snd_wscale, 9);
	cr_expect_eq(i.rcv_wscale, 7);
	cr_expect(i.ts_ok);
	cr_expect(i.sack_ok);
	cr_expect_eq(i.snd_wnd, 65535u << 9);
	/* data in both directions (no PSH: the ACK may wait for our reply) */
	inj(1001, r.seq + 1, TCP_ACK, "HELO x\r\n", 8, o, (uint8_t)topts_ts(o, 779, r.opt.tsval));
	cr_expect_eq(A.rxlen, 8);
	cr_expect_eq(memcmp(A.rx, "HELO x\r\n", 8), 0);
	cr_expect_eq(tcp_send(A.conn, "250 ok\r\n", 8), 8);
	struct tout d;
	cr_assert(tpop(&N, &d));
	cr_expect_eq(d.len, 8);
	cr_expect_eq(d.seq, r.seq + 1);
	cr_expect_eq(d.ack, 1009);	/* the ACK rides on the data */
	cr_expect(d.opt.ts_ok);
	cr_expect_eq(d.opt.tsecr, 779);
	/* PSH ends the peer's write: ACK at once, so a Nagle sender is not
	 * held for the delayed-ACK time when we have nothing to say */
	inj(1009, r.seq + 9, TCP_ACK | TCP_PSH, "x", 1, o, (uint8_t)topts_ts(o, 780, r.opt.tsval));
	cr_assert(tpop(&N, &d));
	cr_expect_eq(d.len, 0);
	cr_expect_eq(d.ack, 1010);
}

Test(tcp_state, syn_without_options)
{
	cr_assert(tcp_listen(N.ts, rte_cpu_to_be_16(LP), &tapp_cb, &A));
	inj(1000, 0, TCP_SYN, NULL, 0, NULL, 0);
	struct tout r;
	cr_assert(tpop(&N, &r));
	cr_expect_eq(r.flags, TCP_SYN | TCP_ACK);
	cr_expect(r.opt.mss_ok, "MSS is always sent in a SYN");
	cr_expect(!r.opt.ws_ok);
	cr_expect(!r.opt.ts_ok);
	cr_expect(!r.opt.sack_perm);
	cr_expect_leq(r.wnd, 65535);
	inj(1001, r.seq + 1, TCP_ACK, NULL, 0, NULL, 0);
	cr_assert_eq(A.accepted, 1);
	struct tcp_conn_info i;
	tcp_get_info(A.conn, &i);
	cr_expect_eq(i.mss, 536, "536 when the peer sent no MSS");
	cr_expect_eq(i.snd_wscale, 0);
	cr_expect_eq(i.rcv_wscale, 0);
	cr_expect(!i.ts_ok);
	cr_expect(!i.sack_ok);
}

Test(tcp_state, syn_each_option_alone)
{
	cr_assert(tcp_listen(N.ts, rte_cpu_to_be_16(LP), &tapp_cb, &A));
	uint8_t o[40];
	struct tout r;
	/* window scale only */
	inj(1000, 0, TCP_SYN, NULL, 0, o, (uint8_t)topts_syn(o, 0, 3, false, false, 0, 0));
	cr_assert(tpop(&N, &r));
	cr_expect(r.opt.ws_ok && !r.opt.ts_ok && !r.opt.sack_perm);
	/* SACK only (another peer port) */
	struct tseg s = { .seq = 5, .flags = TCP_SYN, .wnd = 1000, .sport = SP + 1, .dport = LP,
			  .opts = o, .optlen = (uint8_t)topts_syn(o, 1200, -1, true, false, 0, 0) };
	tinject(&N, PEER_IP, &s);
	cr_assert(tpop(&N, &r));
	cr_expect(!r.opt.ws_ok && !r.opt.ts_ok && r.opt.sack_perm);
	/* timestamps only */
	s.sport = SP + 2;
	s.optlen = (uint8_t)topts_syn(o, 0, -1, false, true, 42, 0);
	tinject(&N, PEER_IP, &s);
	cr_assert(tpop(&N, &r));
	cr_expect(!r.opt.ws_ok && r.opt.ts_ok && !r.opt.sack_perm);
	cr_expect_eq(r.opt.tsecr, 42);
	/* window scale above 14 is clamped to 14 */
	s.sport = SP + 3;
	s.optlen = (uint8_t)topts_syn(o, 0, 20, false, false, 0, 0);
	tinject(&N, PEER_IP, &s);
	cr_assert(tpop(&N, &r));
	s.seq = 6;
	s.ack = r.seq + 1;
	s.flags = TCP_ACK;
	s.optlen = 0;
	tinject(&N, PEER_IP, &s);
	cr_assert(A.conn);
	struct tcp_conn_info i;
	tcp_get_info(A.conn, &i);
	cr_expect_eq(i.snd_wscale, 14, "RFC 7323: shifts above 14 are taken as 14");
	tnode_clear(&N);
}

Test(tcp_state, duplicate_syn_resends_synack)
{
	cr_assert(tcp_listen(N.ts, rte_cpu_to_be_16(LP), &tapp_cb, &A));
	inj(1000, 0, TCP_SYN, NULL, 0, NULL, 0);
	struct tout r1, r2;
	cr_assert(tpop(&N, &r1));
	inj(1000, 0, TCP_SYN, NULL, 0, NULL, 0);
	cr_assert(tpop(&N, &r2));
	cr_expect_eq(r2.flags, TCP_SYN | TCP_ACK);
	cr_expect_eq(r2.seq, r1.seq);
	cr_expect_eq(tcp_stack_conn_count(N.ts), 1);
}

Test(tcp_state, synack_retransmit_and_give_up)
{
	cr_assert(tcp_listen(N.ts, rte_cpu_to_be_16(LP), &tapp_cb, &A));
	inj(1000, 0, TCP_SYN, NULL, 0, NULL, 0);
	struct tout r;
	cr_assert(tpop(&N, &r));
	uint64_t gap = NS_PER_SEC;
	for (unsigned k = 0; k < 6; k++) {
		tadvance(&N, gap - 1000);
		cr_expect_eq(tpending(&N), 0, "not before RTO (k=%u)", k);
		tadvance(&N, 1000 + NS_PER_MS);
		cr_assert(tpop(&N, &r), "SYN-ACK retransmit %u", k);
		cr_expect_eq(r.flags, TCP_SYN | TCP_ACK);
		gap *= 2;
	}
	tadvance(&N, gap + NS_PER_MS);
	cr_expect_eq(tpending(&N), 0);
	cr_expect_eq(tcp_stack_conn_count(N.ts), 0, "half-open dropped after syn_retries");
}

static uint32_t open_active(struct tcp_conn **cp, bool ts)
{
	*cp = tcp_connect(N.ts, tip(PEER_IP), rte_cpu_to_be_16(SP), &tapp_cb, &A);
	cr_assert(*cp);
	struct tout r;
	cr_assert(tpop(&N, &r));
	cr_assert_eq(r.flags, TCP_SYN);
	cr_expect(r.opt.mss_ok && r.opt.ws_ok && r.opt.sack_perm && r.opt.ts_ok);
	cr_expect_eq(r.dport, SP);
	cr_expect_geq(r.sport, 32768);
	uint8_t o[40];
	unsigned ol = topts_syn(o, 1460, 2, true, ts, 9000, r.opt.tsval);
	struct tseg s = { .seq = 7000, .ack = r.seq + 1, .flags = TCP_SYN | TCP_ACK,
			  .wnd = 29200, .sport = SP, .dport = r.sport, .opts = o,
			  .optlen = (uint8_t)ol };
	tinject(&N, PEER_IP, &s);
	cr_assert_eq(A.connected, 1);
	struct tout a;
	cr_assert(tpop(&N, &a));
	cr_expect_eq(a.flags, TCP_ACK);
	cr_expect_eq(a.ack, 7001);
	cr_expect_eq(a.seq, r.seq + 1);
	return r.sport;
}

Test(tcp_state, active_open)
{
	struct tcp_conn *c;
	open_active(&c, true);
	struct tcp_conn_info i;
	tcp_get_info(c, &i);
	cr_expect_eq(i.state, TCP_ESTABLISHED);
	cr_expect_eq(i.snd_wnd, 29200, "SYN-ACK window is not scaled");
	cr_expect_eq(i.snd_wscale, 2);
	cr_expect_eq(i.mss, 1460 - 12);
}

Test(tcp_state, active_open_refused)
{
	struct tcp_conn *c = tcp_connect(N.ts, tip(PEER_IP), rte_cpu_to_be_16(SP), &tapp_cb, &A);
	cr_assert(c);
	tcp_set_user(c, &A);
	struct tout r;
	cr_assert(tpop(&N, &r));
	/* RST without an acceptable ACK is ignored */
	struct tseg s = { .seq = 0, .ack = r.seq + 5, .flags = TCP_RST | TCP_ACK,
			  .sport = SP, .dport = r.sport };
	tinject(&N, PEER_IP, &s);
	cr_expect_eq(A.closed, 0);
	s.ack = r.seq + 1;
	tinject(&N, PEER_IP, &s);
	cr_expect_eq(A.closed, 1);
	cr_expect_eq(A.reason, TCP_CLOSE_REFUSED);
	cr_expect_eq(tcp_stack_conn_count(N.ts), 0);
}

Test(tcp_state, active_open_bad_ack_gets_rst)
{
	struct tcp_conn *c = tcp_connect(N.ts, tip(PEER_IP), rte_cpu_to_be_16(SP), &tapp_cb, &A);
	cr_assert(c);
	struct tout r;
	cr_assert(tpop(&N, &r));
	struct tseg s = { .seq = 50, .ack = r.seq + 100, .flags = TCP_SYN | TCP_ACK,
			  .wnd = 1000, .sport = SP, .dport = r.sport };
	tinject(&N, PEER_IP, &s);
	struct tout x;
	cr_assert(tpop(&N, &x));
	cr_expect_eq(x.flags, TCP_RST);
	cr_expect_eq(x.seq, r.seq + 100);
	cr_expect_eq(tcp_get_state(c), TCP_SYN_SENT);
}

Test(tcp_state, syn_retries_give_up)
{
	struct tcp_conn *c = tcp_connect(N.ts, tip(PEER_IP), rte_cpu_to_be_16(SP), &tapp_cb, &A);
	cr_assert(c);
	tcp_set_user(c, &A);
	uint64_t gap = NS_PER_SEC;
	unsigned syns = 0;
	for (unsigned k = 0; k < 8; k++) {
		tadvance(&N, gap + NS_PER_MS);
		gap *= 2;
		struct tout r;
		while (tpop(&N, &r))
			syns++;
	}
	cr_expect_eq(syns, 7, "the SYN and 6 retries");
	cr_expect_eq(A.closed, 1);
	cr_expect_eq(A.reason, TCP_CLOSE_TIMEOUT);
}

Test(tcp_state, simultaneous_open)
{
	struct tcp_conn *c = tcp_connect(N.ts, tip(PEER_IP), rte_cpu_to_be_16(SP), &tapp_cb, &A);
	cr_assert(c);
	struct tout syn;
	cr_assert(tpop(&N, &syn));
	/* the peer's own SYN crosses ours */
	uint8_t o[40];
	struct tseg s = { .seq = 3000, .flags = TCP_SYN, .wnd = 8000, .sport = SP,
			  .dport = syn.sport, .opts = o,
			  .optlen = (uint8_t)topts_syn(o, 1000, -1, false, false, 0, 0) };
	tinject(&N, PEER_IP, &s);
	struct tout sa;
	cr_assert(tpop(&N, &sa));
	cr_expect_eq(sa.flags, TCP_SYN | TCP_ACK);
	cr_expect_eq(sa.seq, syn.seq, "same ISS");
	cr_expect_eq(sa.ack, 3001);
	cr_expect_eq(tcp_get_state(c), TCP_SYN_RCVD);
	/* the peer's SYN-ACK to our SYN */
	struct tseg s2 = { .seq = 3000, .ack = syn.seq + 1, .flags = TCP_SYN | TCP_ACK,
			   .wnd = 8000, .sport = SP, .dport = syn.sport, .opts = o,
			   .optlen = (uint8_t)topts_syn(o, 1000, -1, false, false, 0, 0) };
	tinject(&N, PEER_IP, &s2);
	cr_expect_eq(tcp_get_state(c), TCP_ESTABLISHED);
	cr_expect_eq(A.connected, 1);
	struct tcp_conn_info i;
	tcp_get_info(c, &i);
	cr_expect_eq(i.mss, 1000);
}

Test(tcp_state, active_close_full_path)
{
	uint32_t iss = open_passive(false);
	struct tcp_conn *c = A.conn;
	tcp_close(c);
	struct tout f;
	cr_assert(tpop(&N, &f));
	cr_expect_eq(f.flags, TCP_FIN | TCP_ACK);
	cr_expect_eq(f.seq, iss + 1);
	cr_expect_eq(tcp_get_state(c), TCP_FIN_WAIT_1);
	inj(1001, iss + 2, TCP_ACK, NULL, 0, NULL, 0);
	cr_expect_eq(tcp_get_state(c), TCP_FIN_WAIT_2);
	/* half-closed: data still flows to us */
	inj(1001, iss + 2, TCP_ACK, "late", 4, NULL, 0);
	cr_expect_eq(A.rxlen, 4);
	inj(1005, iss + 2, TCP_FIN | TCP_ACK, NULL, 0, NULL, 0);
	cr_expect_eq(A.eof, 1);
	cr_expect_eq(A.closed, 1);
	cr_expect_eq(A.reason, TCP_CLOSE_NORMAL);
	struct tout a;
	cr_assert(tpop(&N, &a));
	cr_expect_eq(a.flags, TCP_ACK);
	cr_expect_eq(a.ack, 1006);
	cr_expect_eq(tcp_stack_stats(N.ts)->timewait_entered, 1);
	cr_expect_eq(tcp_stack_conn_count(N.ts), 1, "TIME_WAIT holds the slot");
	/* a retransmitted FIN in TIME_WAIT is ACKed again */
	inj(1005, iss + 2, TCP_FIN | TCP_ACK, NULL, 0, NULL, 0);
	cr_assert(tpop(&N, &a));
	cr_expect_eq(a.ack, 1006);
	/* 2*MSL later it is gone */
	tadvance(&N, 59 * NS_PER_SEC);
	cr_expect_eq(tcp_stack_conn_count(N.ts), 1);
	tadvance(&N, 2 * NS_PER_SEC);
	cr_expect_eq(tcp_stack_conn_count(N.ts), 0);
	cr_expect_eq(tcp_stack_stats(N.ts)->timewait_expired, 1);
}

Test(tcp_state, active_close_fin_and_ack_together)
{
	uint32_t iss = open_passive(false);
	struct tcp_conn *c = A.conn;
	tcp_close(c);
	tnode_clear(&N);
	/* FIN_WAIT_1 -> TIME_WAIT directly: FIN that also acks ours */
	inj(1001, iss + 2, TCP_FIN | TCP_ACK, NULL, 0, NULL, 0);
	cr_expect_eq(A.closed, 1);
	cr_expect_eq(A.reason, TCP_CLOSE_NORMAL);
	cr_expect_eq(tcp_stack_stats(N.ts)->timewait_entered, 1);
}

Test(tcp_state, passive_close)
{
	uint32_t iss = open_passive(false);
	struct tcp_conn *c = A.conn;
	inj(1001, iss + 1, TCP_FIN | TCP_ACK, NULL, 0, NULL, 0);
	cr_expect_eq(A.eof, 1);
	cr_expect_eq(tcp_get_state(c), TCP_CLOSE_WAIT);
	struct tout a;
	cr_assert(tpop(&N, &a));
	cr_expect_eq(a.ack, 1002);
	/* we may still send */
	cr_expect_eq(tcp_send(c, "221 bye\r\n", 9), 9);
	cr_assert(tpop(&N, &a));
	cr_expect_eq(a.len, 9);
	tcp_close(c);
	cr_expect_eq(tcp_get_state(c), TCP_LAST_ACK);
	cr_assert(tpop(&N, &a));
	cr_expect(a.flags & TCP_FIN);
	cr_expect_eq(a.seq, iss + 10);
	inj(1002, iss + 11, TCP_ACK, NULL, 0, NULL, 0);
	cr_expect_eq(A.closed, 1);
	cr_expect_eq(A.reason, TCP_CLOSE_NORMAL);
	cr_expect_eq(tcp_stack_conn_count(N.ts), 0, "no TIME_WAIT on the passive side");
}

Test(tcp_state, close_from_eof_callback_sends_one_fin)
{
	uint32_t iss = open_passive(false);
	A.close_on_eof = true;
	inj(1001, iss + 1, TCP_FIN | TCP_ACK, NULL, 0, NULL, 0);
	struct tout a;
	cr_assert(tpop(&N, &a));
	cr_expect_eq(a.flags, TCP_FIN | TCP_ACK, "FIN carries the ACK of theirs");
	cr_expect_eq(a.ack, 1002);
	cr_expect_eq(tcp_get_state(A.conn), TCP_LAST_ACK);
}

Test(tcp_state, simultaneous_close)
{
	uint32_t iss = open_passive(false);
	struct tcp_conn *c = A.conn;
	tcp_close(c);
	tnode_clear(&N);
	/* their FIN crosses ours: it does not ack our FIN */
	inj(1001, iss + 1, TCP_FIN | TCP_ACK, NULL, 0, NULL, 0);
	cr_expect_eq(tcp_get_state(c), TCP_CLOSING);
	struct tout a;
	cr_assert(tpop(&N, &a));
	cr_expect_eq(a.ack, 1002);
	inj(1002, iss + 2, TCP_ACK, NULL, 0, NULL, 0);
	cr_expect_eq(A.closed, 1);
	cr_expect_eq(tcp_stack_stats(N.ts)->timewait_entered, 1);
}

Test(tcp_state, fin_retransmitted_until_acked)
{
	uint32_t iss = open_passive(false);
	tcp_close(A.conn);
	struct tout f;
	cr_assert(tpop(&N, &f));
	tadvance(&N, NS_PER_SEC + NS_PER_MS);
	cr_assert(tpop(&N, &f));
	cr_expect_eq(f.flags, TCP_FIN | TCP_ACK);
	cr_expect_eq(f.seq, iss + 1);
}

Test(tcp_state, rst_exact_resets)
{
	uint32_t iss = open_passive(false);
	inj(1001, iss + 1, TCP_RST, NULL, 0, NULL, 0);
	cr_expect_eq(A.closed, 1);
	cr_expect_eq(A.reason, TCP_CLOSE_RESET);
	cr_expect_eq(tpending(&N), 0, "no reply to RST");
	cr_expect_eq(tcp_stack_conn_count(N.ts), 0);
}

Test(tcp_state, rst_in_window_draws_challenge_ack)
{
	uint32_t iss = open_passive(false);
	inj(1001 + 100, iss + 1, TCP_RST, NULL, 0, NULL, 0);
	cr_expect_eq(A.closed, 0);
	struct tout a;
	cr_assert(tpop(&N, &a));
	cr_expect_eq(a.flags, TCP_ACK);
	cr_expect_eq(a.ack, 1001);
	cr_expect_eq(tcp_stack_stats(N.ts)->challenge_acks, 1);
	/* out of window: silently ignored */
	inj(1001 + 1000000, iss + 1, TCP_RST, NULL, 0, NULL, 0);
	cr_expect_eq(tpending(&N), 0);
	cr_expect_eq(A.closed, 0);
	cr_expect_eq(tcp_get_state(A.conn), TCP_ESTABLISHED);
}

Test(tcp_state, challenge_acks_rate_limited)
{
	struct tcp_conf cf;
	tconf(&cf);
	cf.challenge_ack_limit = 3;
	tnode_fini(&N);
	tnode_init(&N, "state2", OUR_IP, 2, &cf);
	tnode_learn(&N, PEER_IP, 9);
	uint32_t iss = open_passive(false);
	for (int i = 0; i < 10; i++)
		inj(1001 + 10 + (uint32_t)i, iss + 1, TCP_RST, NULL, 0, NULL, 0);
	/* the budget is drawn in [limit - limit/2, limit + limit/2] (see
	 * test_tcp_harden.c for its per-connection randomness) */
	uint64_t sent = tcp_stack_stats(N.ts)->challenge_acks;
	cr_expect(sent >= 2 && sent <= 4, "sent %llu", (unsigned long long)sent);
	cr_expect_eq(tpending(&N), sent);
	cr_expect_eq(tcp_stack_stats(N.ts)->challenge_acks_limited, 10 - sent);
	tnode_clear(&N);
	tadvance(&N, NS_PER_SEC);
	inj(1001 + 50, iss + 1, TCP_RST, NULL, 0, NULL, 0);
	cr_expect_eq(tcp_stack_stats(N.ts)->challenge_acks, sent + 1, "new second, new budget");
}

Test(tcp_state, syn_in_established_draws_challenge_ack)
{
	uint32_t iss = open_passive(false);
	inj(5555, 0, TCP_SYN, NULL, 0, NULL, 0);
	struct tout a;
	cr_assert(tpop(&N, &a));
	cr_expect_eq(a.flags, TCP_ACK);
	cr_expect_eq(a.ack, 1001);
	cr_expect_eq(a.seq, iss + 1);
	cr_expect_eq(tcp_get_state(A.conn), TCP_ESTABLISHED);
}

Test(tcp_state, rst_in_each_state)
{
	/* SYN_RCVD (passive): back to listen, nothing told */
	cr_assert(tcp_listen(N.ts, rte_cpu_to_be_16(LP), &tapp_cb, &A));
	inj(1000, 0, TCP_SYN, NULL, 0, NULL, 0);
	struct tout r;
	cr_assert(tpop(&N, &r));
	inj(1001, 0, TCP_RST, NULL, 0, NULL, 0);
	cr_expect_eq(tcp_stack_conn_count(N.ts), 0);
	cr_expect_eq(A.closed, 0);
	/* FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT, CLOSING, LAST_ACK */
	enum tcp_state want[] = { TCP_FIN_WAIT_1, TCP_FIN_WAIT_2, TCP_CLOSE_WAIT,
				  TCP_CLOSING, TCP_LAST_ACK };
	for (unsigned k = 0; k < 5; k++) {
		struct tseg s = { .seq = 1000, .flags = TCP_SYN, .wnd = 65535,
				  .sport = (uint16_t)(SP + 10 + k), .dport = LP };
		A.accepted = 0;
		A.closed = 0;
		tinject(&N, PEER_IP, &s);
		cr_assert(tpop(&N, &r));
		uint32_t iss = r.seq;
		s.seq = 1001; s.ack = iss + 1; s.flags = TCP_ACK;
		tinject(&N, PEER_IP, &s);
		cr_assert_eq(A.accepted, 1);
		struct tcp_conn *c = A.conn;
		switch (want[k]) {
		case TCP_FIN_WAIT_1:
			tcp_close(c);
			break;
		case TCP_FIN_WAIT_2:
			tcp_close(c);
			s.ack = iss + 2;
			tinject(&N, PEER_IP, &s);
			break;
		case TCP_CLOSE_WAIT:
			s.flags = TCP_FIN | TCP_ACK;
			tinject(&N, PEER_IP, &s);
			s.seq++;
			break;
		case TCP_CLOSING:
			tcp_close(c);
			s.flags = TCP_FIN | TCP_ACK;
			tinject(&N, PEER_IP, &s);
			s.seq++;
			break;
		case TCP_LAST_ACK:
			s.flags = TCP_FIN | TCP_ACK;
			tinject(&N, PEER_IP, &s);
			s.seq++;
			tcp_close(c);
			break;
		default:
			break;
		}
		cr_assert_eq(tcp_get_state(c), want[k], "k=%u state %s", k,
			     tcp_state_name(tcp_get_state(c)));
		tnode_clear(&N);
		s.flags = TCP_RST;
		s.ack = 0;
		tinject(&N, PEER_IP, &s);
		cr_expect_eq(A.closed, 1, "k=%u", k);
		cr_expect_eq(A.reason, TCP_CLOSE_RESET);
		cr_expect_eq(tpending(&N), 0);
	}
	cr_expect_eq(tcp_stack_conn_count(N.ts), 0);
}

Test(tcp_state, rst_ignored_in_time_wait)
{
	uint32_t iss = open_passive(false);
	tcp_close(A.conn);
	inj(1001, iss + 2, TCP_FIN | TCP_ACK, NULL, 0, NULL, 0);
	cr_expect_eq(tcp_stack_stats(N.ts)->timewait_entered, 1);
	inj(1002, 0, TCP_RST, NULL, 0, NULL, 0);
	cr_expect_eq(tcp_stack_conn_count(N.ts), 1, "RFC 1337: no TIME_WAIT assassination");
}

Test(tcp_state, no_listener_rst)
{
	struct tseg s = { .seq = 77, .flags = TCP_SYN, .wnd = 1000, .sport = SP, .dport = 26 };
	tinject(&N, PEER_IP, &s);
	struct tout r;
	cr_assert(tpop(&N, &r));
	cr_expect_eq(r.flags, TCP_RST | TCP_ACK);
	cr_expect_eq(r.ack, 78);
	cr_expect_eq(r.seq, 0);
	s.flags = TCP_ACK;
	s.ack = 4242;
	tinject(&N, PEER_IP, &s);
	cr_assert(tpop(&N, &r));
	cr_expect_eq(r.flags, TCP_RST);
	cr_expect_eq(r.seq, 4242);
	s.flags = TCP_RST;
	tinject(&N, PEER_IP, &s);
	cr_expect_eq(tpending(&N), 0, "never RST a RST");
}

Test(tcp_state, abort_sends_rst)
{
	uint32_t iss = open_passive(false);
	tcp_abort(A.conn);
	struct tout r;
	cr_assert(tpop(&N, &r));
	cr_expect(r.flags & TCP_RST);
	cr_expect_eq(r.seq, iss + 1);
	cr_expect_eq(A.closed, 0, "no callback for our own abort");
	tcp_tick(N.ts);
	cr_expect_eq(tcp_stack_conn_count(N.ts), 0);
}

Test(tcp_state, refuse_in_accept)
{
	A.refuse = true;
	cr_assert(tcp_listen(N.ts, rte_cpu_to_be_16(LP), &tapp_cb, &A));
	inj(1000, 0, TCP_SYN, NULL, 0, NULL, 0);
	struct tout r;
	cr_assert(tpop(&N, &r));
	inj(1001, r.seq + 1, TCP_ACK, NULL, 0, NULL, 0);
	cr_assert(tpop(&N, &r));
	cr_expect(r.flags & TCP_RST);
	cr_expect_eq(tcp_stack_conn_count(N.ts), 0);
}

Test(tcp_state, time_wait_reuse_rfc6191)
{
	uint32_t iss = open_passive(true);
	tcp_close(A.conn);
	uint8_t o[40];
	inj(1001, iss + 2, TCP_FIN | TCP_ACK, NULL, 0, o, (uint8_t)topts_ts(o, 6000, 0));
	cr_assert_eq(tcp_stack_stats(N.ts)->timewait_entered, 1);
	tnode_clear(&N);
	/* older timestamp: not a new incarnation; gets an ACK, no reuse */
	inj(900000, 0, TCP_SYN, NULL, 0, o, (uint8_t)topts_syn(o, 1460, 7, true, true, 5999, 0));
	cr_expect_eq(tcp_stack_stats(N.ts)->timewait_reuse, 0);
	tnode_clear(&N);
	/* newer timestamp: reopened at once, ISS above the old snd_nxt */
	inj(900000, 0, TCP_SYN, NULL, 0, o, (uint8_t)topts_syn(o, 1460, 7, true, true, 7000, 0));
	cr_expect_eq(tcp_stack_stats(N.ts)->timewait_reuse, 1);
	struct tout r;
	cr_assert(tpop(&N, &r));
	cr_expect_eq(r.flags, TCP_SYN | TCP_ACK);
	cr_expect_eq(r.ack, 900001);
	cr_expect(SEQ_GT(r.seq, iss + 2));
	inj(900001, r.seq + 1, TCP_ACK, NULL, 0, o, (uint8_t)topts_ts(o, 7001, r.opt.tsval));
	cr_expect_eq(A.accepted, 2);
}

Test(tcp_state, time_wait_reuse_by_seq_without_ts)
{
	uint32_t iss = open_passive(false);
	tcp_close(A.conn);
	inj(1001, iss + 2, TCP_FIN | TCP_ACK, NULL, 0, NULL, 0);
	tnode_clear(&N);
	inj(500, 0, TCP_SYN, NULL, 0, NULL, 0);	/* old seq: no */
	cr_expect_eq(tcp_stack_stats(N.ts)->timewait_reuse, 0);
	inj(100000, 0, TCP_SYN, NULL, 0, NULL, 0);
	cr_expect_eq(tcp_stack_stats(N.ts)->timewait_reuse, 1);
}

Test(tcp_state, keepalive_probes_then_drop)
{
	struct tcp_conf cf;
	tconf(&cf);
	cf.keepalive = true;
	cf.keepalive_idle_ns = 10 * NS_PER_SEC;
	cf.keepalive_intvl_ns = NS_PER_SEC;
	cf.keepalive_probes = 3;
	tnode_fini(&N);
	tnode_init(&N, "ka", OUR_IP, 2, &cf);
	tnode_learn(&N, PEER_IP, 9);
	uint32_t iss = open_passive(false);
	tadvance(&N, 10 * NS_PER_SEC + NS_PER_MS);
	struct tout r;
	cr_assert(tpop(&N, &r));
	cr_expect_eq(r.seq, iss, "probe is snd_una - 1");
	cr_expect_eq(r.len, 0);
	/* answered: idle timer restarts */
	inj(1001, iss + 1, TCP_ACK, NULL, 0, NULL, 0);
	tadvance(&N, 5 * NS_PER_SEC);
	cr_expect_eq(tpending(&N), 0);
	for (int i = 0; i < 4; i++)
		tadvance(&N, 6 * NS_PER_SEC);
	cr_expect_eq(A.closed, 1);
	cr_expect_eq(A.reason, TCP_CLOSE_KEEPALIVE);
}

Test(tcp_state, keepalive_off_by_default)
{
	open_passive(false);
	tadvance(&N, 3 * 3600 * NS_PER_SEC);
	cr_expect_eq(tpending(&N), 0);
	cr_expect_eq(tcp_get_state(A.conn), TCP_ESTABLISHED);
}

Test(tcp_state, time_wait_recycled_when_table_full)
{
	struct tcp_conf cf;
	tconf(&cf);
	cf.max_conns = 2;
	tnode_fini(&N);
	tnode_init(&N, "twfull", OUR_IP, 2, &cf);
	tnode_learn(&N, PEER_IP, 9);
	/* two connections, both actively closed by us into TIME_WAIT */
	uint32_t iss = open_passive(false);
	tcp_close(A.conn);
	inj(1001, iss + 2, TCP_FIN | TCP_ACK, NULL, 0, NULL, 0);
	struct tseg s = { .seq = 1000, .flags = TCP_SYN, .wnd = 65535, .sport = SP + 1, .dport = LP };
	tinject(&N, PEER_IP, &s);
	struct tout r;
	tnode_clear(&N);
	cr_expect_eq(tcp_stack_conn_count(N.ts), 2);
	/* the table is full: a third SYN recycles the TIME_WAIT slot rather
	 * than being refused (the backlog still has room) */
	s.sport = SP + 2;
	tinject(&N, PEER_IP, &s);
	cr_assert(tpop(&N, &r));
	cr_expect_eq(r.flags, TCP_SYN | TCP_ACK);
	cr_expect_eq(tcp_stack_stats(N.ts)->timewait_recycled, 1);
	cr_expect_eq(tcp_stack_conn_count(N.ts), 2);
}

static unsigned port_ok_calls;
static bool only_port_multiple_of_7(void *ctx, const struct net_addr *la, rte_be16_t lp,
				    const struct net_addr *ra, rte_be16_t rp)
{
	(void)ctx;
	(void)la;
	(void)ra;
	(void)rp;
	port_ok_calls++;
	return rte_be_to_cpu_16(lp) % 7 == 0;
}

Test(tcp_state, active_open_port_filter)
{
	struct tcp_conf cf;
	tconf(&cf);
	cf.port_ok = only_port_multiple_of_7;
	tnode_fini(&N);
	tnode_init(&N, "portok", OUR_IP, 2, &cf);
	tnode_learn(&N, PEER_IP, 9);
	uint16_t prev = 0;
	for (int k = 0; k < 20; k++) {
		struct tcp_conn *c = tcp_connect(N.ts, tip(PEER_IP), rte_cpu_to_be_16(SP),
						 &tapp_cb, &A);
		cr_assert(c);
		struct tcp_tuple t;
		tcp_get_tuple(c, &t);
		uint16_t p = rte_be_to_cpu_16(t.lport);
		cr_expect_eq(p % 7, 0, "port %u", p);
		cr_expect_geq(p, 32768);
		cr_expect_leq(p, 60999);
		cr_expect_neq(p, prev);
		prev = p;
	}
	cr_expect_geq(port_ok_calls, 20);
	cr_expect_eq(tcp_stack_conn_count(N.ts), 20);
	tnode_clear(&N);
}

Test(tcp_state, port_range_exhaustion)
{
	struct tcp_conf cf;
	tconf(&cf);
	cf.port_lo = 40000;
	cf.port_hi = 40003;
	tnode_fini(&N);
	tnode_init(&N, "ports", OUR_IP, 2, &cf);
	tnode_learn(&N, PEER_IP, 9);
	for (int k = 0; k < 4; k++)
		cr_assert(tcp_connect(N.ts, tip(PEER_IP), rte_cpu_to_be_16(SP), &tapp_cb, &A));
	cr_expect_null(tcp_connect(N.ts, tip(PEER_IP), rte_cpu_to_be_16(SP), &tapp_cb, &A));
	cr_expect_eq(tcp_stack_stats(N.ts)->port_exhausted, 1);
	/* another destination port: the same source ports are free again */
	cr_expect(tcp_connect(N.ts, tip(PEER_IP), rte_cpu_to_be_16(SP + 1), &tapp_cb, &A));
	tnode_clear(&N);
}

Test(tcp_state, isn_rfc6528)
{
	struct tcp_tuple a = { net_addr_v4(tip(OUR_IP)), net_addr_v4(tip(PEER_IP)),
			       rte_cpu_to_be_16(25), rte_cpu_to_be_16(1) };
	struct tcp_tuple b = a;
	b.rport = rte_cpu_to_be_16(2);
	N.ts->now = N.ns.now_ns;
	uint32_t ia = tcp_isn(N.ts, &a), ib = tcp_isn(N.ts, &b);
	cr_expect_neq(ia, ib, "keyed by the 4-tuple");
	N.ts->now += 4000 * 1000;	/* 4 ms */
	uint32_t ia2 = tcp_isn(N.ts, &a);
	cr_expect_eq(ia2 - ia, 1000, "advances one per 4 us");
	/* another secret, another sequence space */
	struct tcp_conf cf;
	tconf(&cf);
	cf.secret[3] ^= 1;
	struct tnode M;
	tnode_init(&M, "isn2", OUR_IP, 2, &cf);
	M.ts->now = N.ts->now;
	cr_expect_neq(tcp_isn(M.ts, &a), ia2);
	cr_expect_eq(tnode_fini(&M), 0);
}

Test(tcp_state, unlisten_resets_half_open)
{
	struct tcp_listener *l = tcp_listen(N.ts, rte_cpu_to_be_16(LP), &tapp_cb, &A);
	cr_assert(l);
	cr_expect_null(tcp_listen(N.ts, rte_cpu_to_be_16(LP), &tapp_cb, &A), "port taken");
	inj(1000, 0, TCP_SYN, NULL, 0, NULL, 0);
	struct tout r;
	cr_assert(tpop(&N, &r));
	tcp_unlisten(l);
	cr_assert(tpop(&N, &r));
	cr_expect(r.flags & TCP_RST);
	tcp_tick(N.ts);
	cr_expect_eq(tcp_stack_conn_count(N.ts), 0);
	inj(2000, 0, TCP_SYN, NULL, 0, NULL, 0);
	cr_assert(tpop(&N, &r));
	cr_expect(r.flags & TCP_RST, "no listener: RST");
}

Test(tcp_state, paws_drops_old_timestamp)
{
	uint32_t iss = open_passive(true);
	uint8_t o[40];
	inj(1001, iss + 1, TCP_ACK, "abc", 3, o, (uint8_t)topts_ts(o, 6000, 0));
	cr_expect_eq(A.rxlen, 3);
	tnode_clear(&N);
	/* a segment whose timestamp went backwards is an old duplicate */
	inj(1004, iss + 1, TCP_ACK, "def", 3, o, (uint8_t)topts_ts(o, 5000, 0));
	cr_expect_eq(A.rxlen, 3);
	cr_expect_eq(tcp_stack_stats(N.ts)->drop_stale_ts, 1);
	struct tout r;
	cr_assert(tpop(&N, &r));
	cr_expect_eq(r.ack, 1004);
	cr_expect_eq(r.opt.tsecr, 6000, "echo the latest valid timestamp");
	/* but an RST is not subject to PAWS */
	inj(1004, 0, TCP_RST, NULL, 0, o, (uint8_t)topts_ts(o, 1, 0));
	cr_expect_eq(A.closed, 1);
	cr_expect_eq(A.reason, TCP_CLOSE_RESET);
}

Test(tcp_state, data_on_syn_not_acked)
{
	cr_assert(tcp_listen(N.ts, rte_cpu_to_be_16(LP), &tapp_cb, &A));
	inj(1000, 0, TCP_SYN, "early", 5, NULL, 0);
	struct tout r;
	cr_assert(tpop(&N, &r));
	cr_expect_eq(r.ack, 1001, "SYN data is not taken: the peer resends it");
	inj(1001, r.seq + 1, TCP_ACK, "early", 5, NULL, 0);
	cr_expect_eq(A.rxlen, 5);
	cr_expect_eq(memcmp(A.rx, "early", 5), 0);
}

Test(tcp_state, close_before_established_sends_data_then_fin)
{
	struct tcp_conn *c = tcp_connect(N.ts, tip(PEER_IP), rte_cpu_to_be_16(SP), &tapp_cb, &A);
	cr_assert(c);
	struct tout syn;
	cr_assert(tpop(&N, &syn));
	cr_expect_eq(tcp_send(c, "QUIT\r\n", 6), 6);
	tcp_close(c);
	cr_expect_eq(tpending(&N), 0);
	struct tseg s = { .seq = 7000, .ack = syn.seq + 1, .flags = TCP_SYN | TCP_ACK,
			  .wnd = 1000, .sport = SP, .dport = syn.sport };
	tinject(&N, PEER_IP, &s);
	struct tout r;
	bool saw_data = false, saw_fin = false;
	while (tpop(&N, &r)) {
		if (r.len == 6)
			saw_data = true;
		if (r.flags & TCP_FIN) {
			saw_fin = true;
			cr_expect_eq(r.seq + r.len, syn.seq + 7);
		}
	}
	cr_expect(saw_data && saw_fin);
	cr_expect_eq(tcp_get_state(c), TCP_FIN_WAIT_1);
}

/* tcp_set_timer: the application's deadline fires once from the wheel, can
 * be moved, re-armed from its own callback and cancelled, and never fires
 * for a connection that is no longer the application's. */
Test(tcp_state, app_timer)
{
	open_passive(true);
	struct tcp_conn *c = A.conn;
	uint64_t t0 = N.ns.now_ns;

	tcp_set_timer(c, t0 + 50 * NS_PER_MS);
	tadvance(&N, 49 * NS_PER_MS);
	cr_expect_eq(A.timers, 0);
	tadvance(&N, 2 * NS_PER_MS);
	cr_expect_eq(A.timers, 1, "fired at its deadline");
	tadvance(&N, 1000 * NS_PER_MS);
	cr_expect_eq(A.timers, 1, "one shot");

	/* moved later before it fires: only the new deadline counts */
	tcp_set_timer(c, N.ns.now_ns + 10 * NS_PER_MS);
	tcp_set_timer(c, N.ns.now_ns + 30 * NS_PER_MS);
	tadvance(&N, 20 * NS_PER_MS);
	cr_expect_eq(A.timers, 1);
	tadvance(&N, 11 * NS_PER_MS);
	cr_expect_eq(A.timers, 2);

	/* far beyond one turn of the wheel (4096 ms) */
	tcp_set_timer(c, N.ns.now_ns + 10 * NS_PER_SEC);
	for (int i = 0; i < 9; i++)
		tadvance(&N, NS_PER_SEC);
	cr_expect_eq(A.timers, 2);
	tadvance(&N, NS_PER_SEC + NS_PER_MS);
	cr_expect_eq(A.timers, 3);

	/* re-armed from the callback */
	A.timer_rearm_ns = 5 * NS_PER_MS;
	tcp_set_timer(c, N.ns.now_ns + NS_PER_MS);
	for (int i = 0; i < 10; i++)
		tadvance(&N, 6 * NS_PER_MS);
	cr_expect_geq(A.timers, 3 + 9);
	A.timer_rearm_ns = 0;
	tadvance(&N, 10 * NS_PER_MS);
	unsigned fired = A.timers;

	/* cancelled */
	tcp_set_timer(c, N.ns.now_ns + 5 * NS_PER_MS);
	tcp_set_timer(c, 0);
	tadvance(&N, 20 * NS_PER_MS);
	cr_expect_eq(A.timers, fired);
	cr_expect_eq(tcp_stack_stats(N.ts)->app_timers, fired);

	/* aborted: nothing more */
	tcp_set_timer(c, N.ns.now_ns + 5 * NS_PER_MS);
	tcp_abort(c);
	tnode_clear(&N);
	tadvance(&N, 20 * NS_PER_MS);
	cr_expect_eq(A.timers, fired);
}
