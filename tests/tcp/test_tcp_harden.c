/*
 * test_tcp_harden.c - defences against blind in-window attacks and ACK
 * storms, driven by crafted segments: the RFC 5961 challenge-ACK budget is
 * per connection and random (CVE-2016-5696: one connection's challenge
 * ACKs must tell nothing about another's); ACKs answering out-of-window or
 * PAWS-failing segments are rate-limited per connection
 * (conf.invalid_ratelimit_ns).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "tests/tcp/tcp_test.h"

#define LP 25		/* our port */
#define PEER_ISN 1000u

static struct tnode N;
static struct tapp A;

static void start(const struct tcp_conf *cf)
{
	tnode_init(&N, "harden", OUR_IP, 2, cf);
	tnode_learn(&N, PEER_IP, 9);
	cr_assert(tcp_listen(N.ts, rte_cpu_to_be_16(LP), &tapp_cb, &A));
}

static void stop(void)
{
	unsigned leaked = tnode_fini(&N);
	cr_expect_eq(leaked, 0, "mbufs leaked: %u", leaked);
}

static void setup(void)
{
	tapp_init(&A, 1 << 16);
	start(NULL);
}

static void teardown(void)
{
	stop();
	tapp_fini(&A);
}

TestSuite(tcp_harden, .init = setup, .fini = teardown, .timeout = 60);

/* Restart the stack with conf changed by the caller. */
static void restart_with(const struct tcp_conf *cf)
{
	stop();
	start(cf);
}

/* Passive open from peer port sport (peer ISN PEER_ISN), with timestamps
 * (peer TSval 5000, then 5001) or without; returns our snd_nxt, the ACK
 * the peer would send. */
static uint32_t open_ts(uint16_t sport, bool ts, struct tcp_conn **cp)
{
	uint8_t o[40];
	struct tseg s = { .seq = PEER_ISN, .flags = TCP_SYN, .wnd = 65535, .sport = sport,
			  .dport = LP, .opts = o,
			  .optlen = ts ? (uint8_t)topts_syn(o, 1460, -1, false, true, 5000, 0) : 0 };
	tinject(&N, PEER_IP, &s);
	struct tout r;
	cr_assert(tpop(&N, &r));
	cr_assert_eq(r.flags, TCP_SYN | TCP_ACK);
	cr_assert_eq(r.opt.ts_ok, ts);
	s.seq = PEER_ISN + 1;
	s.ack = r.seq + 1;
	s.flags = TCP_ACK;
	s.optlen = ts ? (uint8_t)topts_ts(o, 5001, r.opt.tsval) : 0;
	A.conn = NULL;
	tinject(&N, PEER_IP, &s);
	cr_assert(A.conn, "port %u accepted", sport);
	cr_assert_eq(tcp_get_state(A.conn), TCP_ESTABLISHED);
	cr_assert_eq(tpending(&N), 0);
	if (cp)
		*cp = A.conn;
	return r.seq + 1;
}

static uint32_t open_from(uint16_t sport, struct tcp_conn **cp)
{
	return open_ts(sport, false, cp);
}

/* n in-window RSTs (not at rcv_nxt, so none resets) to the connection from
 * sport; returns how many challenge ACKs came back. */
static unsigned rst_flood(uint16_t sport, uint32_t ack, unsigned n)
{
	unsigned acks = 0;
	for (unsigned i = 0; i < n; i++) {
		struct tseg s = { .seq = PEER_ISN + 11 + i, .ack = ack, .flags = TCP_RST,
				  .wnd = 65535, .sport = sport, .dport = LP };
		tinject(&N, PEER_IP, &s);
		struct tout o;
		while (tpop(&N, &o)) {
			cr_assert_eq(o.flags, TCP_ACK);
			cr_assert_eq(o.dport, sport, "the challenge goes to the RST's connection");
			cr_assert_eq(o.ack, PEER_ISN + 1);
			acks++;
		}
	}
	return acks;
}

static void conf_limit(struct tcp_conf *cf, unsigned limit)
{
	tconf(cf);
	cf->challenge_ack_limit = limit;
}

Test(tcp_harden, challenge_budget_is_per_connection)
{
	struct tcp_conf cf;
	conf_limit(&cf, 10);
	restart_with(&cf);
	uint32_t ax = open_from(40000, NULL);
	uint32_t ay = open_from(40001, NULL);
	/* X is flooded: it answers only within its own budget, [5, 15] */
	unsigned nx = rst_flood(40000, ax, 100);
	cr_expect_geq(nx, 5);
	cr_expect_leq(nx, 15);
	const struct tcp_stats *st = tcp_stack_stats(N.ts);
	cr_expect_eq(st->challenge_acks, nx);
	cr_expect_eq(st->challenge_acks_limited, 100 - nx);
	/* X's exhausted budget takes nothing from Y's, in the same second */
	unsigned ny = rst_flood(40001, ay, 100);
	cr_expect_geq(ny, 5, "Y still answers after X used its budget (got %u)", ny);
	cr_expect_leq(ny, 15);
	cr_expect_eq(st->challenge_acks, nx + ny);
	cr_expect_eq(st->challenge_acks_limited, 200 - nx - ny);
	cr_expect_eq(tcp_stack_conn_count(N.ts), 2, "no in-window RST reset anything");

	/* The same two connections at the same instant, X left alone this
	 * time: Y gets exactly as many. What Y shows is independent of X. */
	restart_with(&cf);
	open_from(40000, NULL);
	uint32_t ay2 = open_from(40001, NULL);
	cr_expect_eq(ay2, ay, "same instant, same ISS");
	unsigned ny2 = rst_flood(40001, ay2, 100);
	cr_expect_eq(ny2, ny, "Y's count does not depend on X's traffic (%u vs %u)", ny2, ny);
}

Test(tcp_harden, challenge_budget_is_random)
{
	struct tcp_conf cf;
	conf_limit(&cf, 10);
	restart_with(&cf);
	enum { NC = 16, NS = 8 };
	uint32_t ack[NC];
	unsigned got[NC], seen[16] = { 0 }, distinct = 0, sum = 0;
	for (unsigned i = 0; i < NC; i++)
		ack[i] = open_from((uint16_t)(41000 + i), NULL);
	for (unsigned i = 0; i < NC; i++) {
		got[i] = rst_flood((uint16_t)(41000 + i), ack[i], 40);
		cr_expect_geq(got[i], 5, "conn %u: %u", i, got[i]);
		cr_expect_leq(got[i], 15, "conn %u: %u", i, got[i]);
		sum += got[i];
		if (got[i] < 16 && !seen[got[i]]++)
			distinct++;
	}
	cr_expect_geq(distinct, 3, "budgets differ across connections (%u values)", distinct);
	cr_expect(sum >= 7 * NC && sum <= 13 * NC, "mean near the limit: %u/%u", sum, NC);
	/* and across seconds for one connection */
	memset(seen, 0, sizeof(seen));
	distinct = 0;
	for (unsigned k = 0; k < NS; k++) {
		tadvance(&N, NS_PER_SEC);
		tnode_clear(&N);
		unsigned n = rst_flood(41000, ack[0], 40);
		cr_expect_geq(n, 5, "second %u: %u", k, n);
		cr_expect_leq(n, 15, "second %u: %u", k, n);
		if (n < 16 && !seen[n]++)
			distinct++;
	}
	cr_expect_geq(distinct, 2, "budgets differ across seconds (%u values)", distinct);
}

Test(tcp_harden, challenge_limit_zero_sends_none)
{
	struct tcp_conf cf;
	conf_limit(&cf, 0);
	restart_with(&cf);
	uint32_t a = open_from(40000, NULL);
	cr_expect_eq(rst_flood(40000, a, 5), 0);
	cr_expect_eq(tcp_stack_stats(N.ts)->challenge_acks_limited, 5);
}

/* A segment to the connection from sport; returns the segments that came
 * back, checking each is a bare ACK of rcv_nxt = expect_ack. */
static unsigned poke(uint16_t sport, uint32_t seq, uint32_t ack, uint8_t flags,
		     const char *data, uint32_t expect_ack)
{
	struct tseg s = { .seq = seq, .ack = ack, .flags = flags, .wnd = 65535,
			  .sport = sport, .dport = LP, .data = data,
			  .len = data ? (uint16_t)strlen(data) : 0 };
	tinject(&N, PEER_IP, &s);
	unsigned n = 0;
	struct tout o;
	while (tpop(&N, &o)) {
		cr_assert_eq(o.flags, TCP_ACK);
		cr_assert_eq(o.dport, sport);
		cr_assert_eq(o.len, 0);
		cr_assert_eq(o.ack, expect_ack);
		n++;
	}
	return n;
}

#define FAR (PEER_ISN + 1 + 300000u)	/* beyond the 64 KiB window */

Test(tcp_harden, out_of_window_acks_rate_limited)
{
	const struct tcp_stats *st = tcp_stack_stats(N.ts);
	uint32_t ax = open_from(40000, NULL);
	uint32_t ay = open_from(40001, NULL);
	/* a burst of pure ACKs outside the window: one answer */
	unsigned acks = 0;
	for (unsigned i = 0; i < 10; i++)
		acks += poke(40000, FAR + i, ax, TCP_ACK, NULL, PEER_ISN + 1);
	cr_expect_eq(acks, 1, "one ACK for the burst, got %u", acks);
	cr_expect_eq(st->drop_out_of_window, 10);
	cr_expect_eq(st->oow_acks_limited, 9);
	/* per connection: Y's first is answered all the same */
	cr_expect_eq(poke(40001, FAR, ay, TCP_ACK, NULL, PEER_ISN + 1), 1);
	/* 499 ms after X's answer still none; at 500 ms the next */
	tadvance(&N, 499 * NS_PER_MS);
	cr_assert_eq(tpending(&N), 0);
	cr_expect_eq(poke(40000, FAR, ax, TCP_ACK, NULL, PEER_ISN + 1), 0);
	tadvance(&N, NS_PER_MS);
	cr_expect_eq(poke(40000, FAR, ax, TCP_ACK, NULL, PEER_ISN + 1), 1);
	cr_expect_eq(poke(40000, FAR, ax, TCP_ACK, NULL, PEER_ISN + 1), 0);
	/* one ACK per 500 ms over a long burst: 10 s of 100 segments/s */
	acks = 0;
	for (unsigned i = 0; i < 1000; i++) {
		tadvance(&N, 10 * NS_PER_MS);
		acks += poke(40000, FAR, ax, TCP_ACK, NULL, PEER_ISN + 1);
	}
	cr_expect_eq(acks, 20, "one per 500 ms over 10 s, got %u", acks);
	/* out-of-window SYNs count as pure too */
	cr_expect_eq(poke(40000, FAR, 0, TCP_SYN, NULL, PEER_ISN + 1), 0);
	/* old data and an old FIN are answered every time, as in Linux:
	 * the peer retransmitting them needs that ACK, and they cannot be
	 * part of an ACK loop */
	uint64_t limited = st->oow_acks_limited;
	cr_expect_eq(poke(40000, PEER_ISN + 1 - 100, ax, TCP_ACK, "old data", PEER_ISN + 1), 1);
	cr_expect_eq(poke(40000, PEER_ISN + 1 - 100, ax, TCP_ACK, "old data", PEER_ISN + 1), 1);
	cr_expect_eq(poke(40000, PEER_ISN, ax, TCP_ACK | TCP_FIN, NULL, PEER_ISN + 1), 1);
	cr_expect_eq(st->oow_acks_limited, limited);
	cr_expect_eq(tcp_stack_conn_count(N.ts), 2);
}

Test(tcp_harden, paws_acks_rate_limited)
{
	const struct tcp_stats *st = tcp_stack_stats(N.ts);
	uint32_t a = open_ts(40000, true, NULL);
	uint8_t o[40];
	/* data with TSval 6000 (PSH: answered at once) */
	struct tseg s = { .seq = PEER_ISN + 1, .ack = a, .flags = TCP_ACK | TCP_PSH,
			  .wnd = 65535, .sport = 40000, .dport = LP, .opts = o,
			  .optlen = (uint8_t)topts_ts(o, 6000, 0), .data = "abc", .len = 3 };
	tinject(&N, PEER_IP, &s);
	cr_expect_eq(A.rxlen, 3);
	tnode_clear(&N);
	/* pure ACKs whose timestamps went back: one answer */
	s.seq = PEER_ISN + 4;
	s.flags = TCP_ACK;
	s.len = 0;
	s.optlen = (uint8_t)topts_ts(o, 5500, 0);
	for (unsigned i = 0; i < 5; i++)
		tinject(&N, PEER_IP, &s);
	cr_expect_eq(st->drop_stale_ts, 5);
	cr_expect_eq(tpending(&N), 1);
	cr_expect_eq(st->oow_acks_limited, 4);
	tnode_clear(&N);
	tadvance(&N, 500 * NS_PER_MS);
	tinject(&N, PEER_IP, &s);
	cr_expect_eq(tpending(&N), 1, "500 ms later: answered again");
	tnode_clear(&N);
}

Test(tcp_harden, out_of_window_limit_zero_answers_all)
{
	struct tcp_conf cf;
	tconf(&cf);
	cf.invalid_ratelimit_ns = 0;
	restart_with(&cf);
	uint32_t a = open_from(40000, NULL);
	unsigned acks = 0;
	for (unsigned i = 0; i < 10; i++)
		acks += poke(40000, FAR, a, TCP_ACK, NULL, PEER_ISN + 1);
	cr_expect_eq(acks, 10);
	cr_expect_eq(tcp_stack_stats(N.ts)->oow_acks_limited, 0);
}
