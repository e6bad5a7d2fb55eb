/*
 * test_tcp_budget.c - conf.mbuf_budget: the per-lcore bound on mbufs held
 * in send queues. Two stacks back to back (tcp_test.h wire); the clients on
 * stack A drive tcp_send only from connected()/writable(), so a connection
 * the budget stopped makes progress only if writable() really comes (also
 * when its own send queue was empty and no ACK is due for it). The held
 * count must never pass the budget, must return to exactly 0 on every
 * teardown path (acked, close, abort, peer RST, timeout, destroy), and no
 * mbuf may leak.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "tests/tcp/tcp_test.h"

#define BMAXC 8

struct bside {
	struct tcp_conn *c;
	struct tcp_stack *ts;
	const uint8_t *tx;
	size_t txlen, sent;
	uint8_t *rx;
	size_t rxlen, cap;
	bool waiting;		/* tcp_send took less than asked */
	bool empty_stall;	/* ... while our own send queue was empty */
	bool fin_sent, eof, closed, hold;
	enum tcp_close_reason reason;
	unsigned writable, empty_wakes;
	bool no_close;		/* don't close when all is sent */
};

static struct bside bsrv[BMAXC];
static unsigned nbsrv;
static bool in_send;		/* inside tcp_send: no callback may run */
static unsigned cur_budget;

static void bpush(struct bside *s)
{
	if (!s->c || s->closed || s->fin_sent)
		return;
	while (s->sent < s->txlen) {
		size_t want = s->txlen - s->sent;
		in_send = true;
		size_t n = tcp_send(s->c, s->tx + s->sent, want);
		in_send = false;
		if (cur_budget)
			cr_assert_leq(tcp_stack_mbufs_held(s->c->ts), cur_budget);
		s->sent += n;
		if (n < want) {
			struct tcp_conn_info in;
			tcp_get_info(s->c, &in);
			s->waiting = true;
			s->empty_stall = in.sndq_bytes == 0;
			return;	/* wait for writable() */
		}
	}
	if (!s->no_close) {
		s->fin_sent = true;
		tcp_close(s->c);
	}
}

static bool b_accept(void *lctx, struct tcp_conn *c)
{
	(void)lctx;
	if (nbsrv == BMAXC)
		return false;
	struct bside *s = &bsrv[nbsrv++];
	s->c = c;
	tcp_set_user(c, s);
	return true;
}

static void b_connected(struct tcp_conn *c, void *user)
{
	(void)c;
	bpush(user);
}

static void b_writable(struct tcp_conn *c, void *user)
{
	(void)c;
	struct bside *s = user;
	cr_assert(!in_send, "writable() from inside tcp_send");
	s->writable++;
	if (s->empty_stall)
		s->empty_wakes++;
	s->waiting = s->empty_stall = false;
	bpush(s);
}

static void b_data(struct tcp_conn *c, void *user, struct rte_mbuf *m)
{
	struct bside *s = user;
	if (!m) {
		s->eof = true;
		if (!s->fin_sent && !s->tx) {	/* a sink: close at EOF */
			s->fin_sent = true;
			tcp_close(c);
		}
		return;
	}
	uint32_t len = m->pkt_len;
	cr_assert_leq(s->rxlen + len, s->cap, "more data than was sent");
	for (struct rte_mbuf *g = m; g; g = g->next) {
		memcpy(s->rx + s->rxlen, rte_pktmbuf_mtod(g, void *), g->data_len);
		s->rxlen += g->data_len;
	}
	rte_pktmbuf_free(m);
	if (!s->hold)
		tcp_recved(c, len);
}

static void b_closed(struct tcp_conn *c, void *user, enum tcp_close_reason why)
{
	(void)c;
	struct bside *s = user;
	s->closed = true;
	s->reason = why;
	s->c = NULL;
}

static const struct tcp_callbacks bside_cb = {
	.accept = b_accept, .connected = b_connected, .data = b_data,
	.writable = b_writable, .closed = b_closed,
};

static uint8_t *bpattern(size_t len, uint64_t seed)
{
	uint8_t *p = malloc(len);
	uint64_t r = seed | 1;
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(trand(&r) >> 24);
	return p;
}

static struct twire W;
static unsigned budget_b;	/* mbuf_budget of the receiving stack B */
static uint64_t b_ooo_queued, b_ooo_dropped;	/* over run_transfer calls */
static struct bside cli[BMAXC];
static uint8_t *pat[BMAXC];

static void wire_up(unsigned budget, unsigned loss_pm, uint64_t seed, unsigned r2)
{
	struct tcp_conf ca, cb;
	tconf(&ca);
	tconf(&cb);
	ca.mbuf_budget = budget;
	cur_budget = budget;
	if (r2)
		ca.r2 = r2;
	cb.secret[0] ^= 0x5a;
	cb.mbuf_budget = budget_b;
	twire_init(&W, seed, &ca, &cb);
	W.loss_pm = loss_pm;
	memset(bsrv, 0, sizeof(bsrv));
	memset(cli, 0, sizeof(cli));
	memset(pat, 0, sizeof(pat));
	nbsrv = 0;
	cr_assert(tcp_listen(W.b.ts, rte_cpu_to_be_16(25), &bside_cb, NULL));
}

static void start_clients(unsigned n, size_t bytes)
{
	for (unsigned i = 0; i < n; i++) {
		free(pat[i]);
		memset(&cli[i], 0, sizeof(cli[i]));
		pat[i] = bpattern(bytes, 77 + i);
		cli[i].tx = pat[i];
		cli[i].txlen = bytes;
		cli[i].c = tcp_connect(W.a.ts, tip("198.18.0.3"), rte_cpu_to_be_16(25),
				       &bside_cb, &cli[i]);
		cr_assert(cli[i].c);
	}
	for (unsigned i = 0; i < BMAXC; i++) {
		if (bsrv[i].rx)
			continue;
		bsrv[i].cap = bytes;
		bsrv[i].rx = malloc(bytes);
	}
}

/* The server side of a client connection. */
static struct bside *srv_of(const struct bside *cl)
{
	struct tcp_tuple v;
	tcp_get_tuple(cl->c, &v);
	for (unsigned i = 0; i < nbsrv; i++) {
		if (!bsrv[i].c)
			continue;
		struct tcp_tuple t;
		tcp_get_tuple(bsrv[i].c, &t);
		if (t.rport == v.lport)
			return &bsrv[i];
	}
	return NULL;
}

static void wire_down(void)
{
	unsigned leaked = twire_fini(&W);
	cr_expect_eq(leaked, 0, "mbufs leaked: %u", leaked);
	for (unsigned i = 0; i < BMAXC; i++) {
		free(pat[i]);
		free(bsrv[i].rx);
	}
}

static unsigned held(void) { return tcp_stack_mbufs_held(W.a.ts); }

static unsigned chain_len(const struct rte_mbuf *m)
{
	unsigned n = 0;
	for (; m; m = m->next)
		n++;
	return n;
}

/* The counters against the queues themselves: every live connection's
 * send-queue chain and out-of-order entries, counted segment by segment. */
static void check_exact(struct tcp_stack *ts)
{
	unsigned sq = 0, ooo = 0;
	for (unsigned i = 0; i < ts->conf.max_conns; i++) {
		const struct tcp_conn *c = &ts->conns[i];
		if (!c->ts || c->zombie) {
			continue;
		}
		unsigned n = chain_len(c->sq_head);
		cr_assert_eq(n, c->sq_mbufs, "conn %u: %u mbufs queued, %u counted", i, n,
			     c->sq_mbufs);
		sq += n;
		for (unsigned k = 0; k < c->nooo; k++)
			ooo += chain_len(c->ooo[k].m);
	}
	cr_assert_eq(sq, ts->sq_mbufs, "send queues hold %u, counted %u", sq, ts->sq_mbufs);
	cr_assert_eq(ooo, ts->ooo_mbufs, "OOO holds %u, counted %u", ooo, ts->ooo_mbufs);
}


/* One ms of simulated time; checks the bound and the exact counts. */
static void step(unsigned budget)
{
	twire_pump(&W);
	cr_assert_leq(held(), budget, "held %u > budget %u", held(), budget);
	check_exact(W.a.ts);
	check_exact(W.b.ts);
	if (budget_b)
		cr_assert_leq(tcp_stack_mbufs_held(W.b.ts), budget_b);
	twire_advance(&W, NS_PER_MS);
	cr_assert_leq(held(), budget, "held %u > budget %u", held(), budget);
	check_exact(W.a.ts);
	check_exact(W.b.ts);
}

static void run_transfer(unsigned nconn, size_t bytes, unsigned budget, unsigned loss_pm,
			 uint64_t seed)
{
	wire_up(budget, loss_pm, seed, 0);
	start_clients(nconn, bytes);
	uint64_t t = 0, max = 600 * NS_PER_SEC;
	for (; t < max; t += NS_PER_MS) {
		step(budget);
		unsigned done = 0;
		for (unsigned i = 0; i < nconn; i++)
			done += cli[i].closed + bsrv[i].closed;
		if (done == 2 * nconn)
			break;
	}
	cr_expect_lt(t, max, "finished within simulated time");
	const struct tcp_stats *sa = tcp_stack_stats(W.a.ts);
	cr_expect_gt(sa->sndbuf_budget_waits, 0, "the budget was reached");
	unsigned empty_wakes = 0, wakes = 0;
	cr_expect_eq(nbsrv, nconn);
	for (unsigned i = 0; i < nconn; i++) {
		cr_expect(cli[i].closed, "client %u closed", i);
		cr_expect_eq(cli[i].reason, TCP_CLOSE_NORMAL, "client %u: %s", i,
			     tcp_close_reason_name(cli[i].reason));
		cr_expect_eq(cli[i].sent, bytes, "client %u sent %zu", i, cli[i].sent);
		empty_wakes += cli[i].empty_wakes;
		wakes += cli[i].writable;
	}
	/* servers are accepted in SYN order = client order (one listener) */
	for (unsigned i = 0; i < nbsrv; i++) {
		cr_expect(bsrv[i].eof);
		cr_expect(bsrv[i].closed);
		cr_expect_eq(bsrv[i].rxlen, bytes, "server %u got %zu", i, bsrv[i].rxlen);
		bool match = false;
		for (unsigned k = 0; k < nconn && !match; k++)
			match = bsrv[i].rxlen == bytes && memcmp(bsrv[i].rx, pat[k], bytes) == 0;
		cr_expect(match, "server %u data intact", i);
	}
	cr_log_info("budget %u: %u conns x %zu B, sim %llu ms, waits %llu, writable %u "
		    "(%u with an empty own queue), lost %llu, rexmit %llu",
		    budget, nconn, bytes, (unsigned long long)(t / NS_PER_MS),
		    (unsigned long long)sa->sndbuf_budget_waits, wakes, empty_wakes,
		    (unsigned long long)W.lost, (unsigned long long)sa->retransmits);
	cr_expect_gt(wakes, 0);
	cr_expect_gt(empty_wakes, 0, "writable() for a connection with an empty queue");
	if (loss_pm)
		cr_expect_gt(sa->retransmits, 0);
	const struct tcp_stats *sb = tcp_stack_stats(W.b.ts);
	b_ooo_queued += sb->ooo_queued;
	b_ooo_dropped += sb->ooo_dropped;
	cr_log_info("receiver budget %u: ooo queued %llu dropped %llu", budget_b,
		    (unsigned long long)sb->ooo_queued, (unsigned long long)sb->ooo_dropped);
	cr_expect_eq(held(), 0, "all acked: nothing held");
	cr_expect_eq(tcp_stack_mbufs_held(W.b.ts), 0, "receiver: nothing held");
	twire_advance(&W, 61 * NS_PER_SEC);
	cr_expect_eq(tcp_stack_conn_count(W.a.ts), 0);
	cr_expect_eq(held(), 0);
	wire_down();
}

TestSuite(tcp_budget, .timeout = 120);

Test(tcp_budget, stall_and_resume_clean)
{
	run_transfer(4, 200u << 10, 8, 0, 1);
}

Test(tcp_budget, stall_and_resume_lossy)
{
	for (uint64_t seed = 21; seed < 24; seed++)
		run_transfer(6, 100u << 10, 12, 30, seed);
}

/* The receiver has a budget too: its out-of-order queues fill with what
 * loss leaves behind holes and count against it; out-of-order segments
 * past it are dropped, in-order data is still taken, so all arrives. */
Test(tcp_budget, receiver_ooo_at_budget)
{
	budget_b = 10;
	for (uint64_t seed = 31; seed < 34; seed++) {
		run_transfer(4, 100u << 10, 16, 50, seed);
	}
	budget_b = 0;
	cr_expect_gt(b_ooo_queued, 0, "the receiver queued out-of-order data");
	cr_expect_gt(b_ooo_dropped, 0, "the receiver dropped at its budget");
}

Test(tcp_budget, unlimited_by_default)
{
	struct tcp_conf c;
	tcp_conf_default(&c);
	cr_expect_eq(c.mbuf_budget, 0);
	wire_up(0, 0, 3, 0);
	start_clients(2, 64u << 10);
	for (int i = 0; i < 20000; i++) {
		twire_pump(&W);
		twire_advance(&W, NS_PER_MS);
		if (cli[0].closed && cli[1].closed && bsrv[0].closed && bsrv[1].closed)
			break;
	}
	cr_expect_eq(tcp_stack_stats(W.a.ts)->sndbuf_budget_waits, 0);
	cr_expect(cli[0].closed && cli[1].closed);
	cr_expect_eq(held(), 0);
	wire_down();
}

/* Fill the budget with connections whose peers do not read (windows close,
 * data stays queued), then tear them down by every path; the count must
 * drop by exactly each connection's share and end at 0. */
Test(tcp_budget, teardown_paths_return_count)
{
	const unsigned budget = 64;
	wire_up(budget, 0, 5, 3);
	start_clients(6, 256u << 10);
	for (unsigned i = 0; i < 6; i++)
		cli[i].no_close = true;
	for (unsigned i = 0; i < BMAXC; i++)
		bsrv[i].hold = true;	/* receive windows close */
	for (int i = 0; i < 500; i++)
		step(budget);
	cr_assert_eq(nbsrv, 6);
	cr_expect_eq(held(), budget, "the budget is full: %u", held());
	cr_expect_gt(tcp_stack_stats(W.a.ts)->sndbuf_budget_waits, 0);
	unsigned total = 0, share[6];
	for (unsigned i = 0; i < 6; i++) {
		cr_assert(cli[i].c);
		share[i] = cli[i].c->sq_mbufs;
		total += share[i];
	}
	cr_expect_eq(total, held(), "per-connection counts add up");

	/* 1. tcp_abort with data queued */
	unsigned before = held();
	tcp_abort(cli[0].c);
	cli[0].c = NULL;
	cli[0].closed = true;
	cr_expect_eq(held(), before - share[0], "abort returns its mbufs");

	/* 2. the peer resets: closed(RESET) */
	struct bside *vs = srv_of(&cli[1]);
	cr_assert(vs);
	tcp_abort(vs->c);
	vs->c = NULL;
	vs->closed = true;
	twire_pump(&W);
	cr_expect(cli[1].closed, "client 1 reset");
	cr_expect_eq(cli[1].reason, TCP_CLOSE_RESET);
	/* the room the abort/reset made went to waiting connections (their
	 * writable() fired from net_input/tcp_tick and they queued more) */
	cr_expect_leq(held(), budget);
	total = 0;
	for (unsigned i = 2; i < 6; i++)
		total += cli[i].c->sq_mbufs;
	cr_expect_eq(total, held(), "per-connection counts add up");

	/* 3. the peers read again; tcp_close with data queued drains to 0 */
	for (unsigned i = 0; i < nbsrv; i++) {
		if (bsrv[i].c && bsrv[i].hold) {
			bsrv[i].hold = false;
			tcp_recved(bsrv[i].c, (uint32_t)bsrv[i].rxlen);
		}
	}
	cli[2].no_close = false;
	for (int i = 0; i < 10000; i++) {
		step(budget);
		if (cli[2].closed && cli[3].sent == cli[3].txlen &&
		    cli[4].sent == cli[4].txlen && cli[5].sent == cli[5].txlen && held() == 0)
			break;
	}
	cr_expect(cli[2].closed, "client 2 closed after draining");
	cr_expect_eq(cli[2].reason, TCP_CLOSE_NORMAL);
	cr_expect_eq(cli[2].sent, 256u << 10);
	cr_expect_eq(held(), 0);

	/* 4. retransmission timeout (R2) with data queued: the wire goes dead */
	W.loss_pm = 1000;
	for (unsigned i = 3; i < 6; i++) {
		cr_assert(cli[i].c && !cli[i].closed);
		cr_expect_eq(tcp_send(cli[i].c, pat[i], 10000), 10000);
	}
	cr_expect_eq(held(), 15, "3 x 10000 B in 2048 B mbufs: %u", held());
	for (int i = 0; i < 400 && !(cli[3].closed && cli[4].closed && cli[5].closed); i++) {
		twire_pump(&W);
		twire_advance(&W, NS_PER_SEC);
	}
	for (unsigned i = 3; i < 6; i++) {
		cr_expect(cli[i].closed, "client %u timed out", i);
		cr_expect_eq(cli[i].reason, TCP_CLOSE_TIMEOUT);
	}
	cr_expect_eq(held(), 0, "every path returned its mbufs: %u held", held());
	cr_expect_eq(W.a.ts->bw_head, NULL, "no waiter left");

	/* 5. destroy with data queued: no leak (checked in wire_down) */
	W.loss_pm = 0;
	twire_advance(&W, 61 * NS_PER_SEC);
	start_clients(2, 64u << 10);
	for (unsigned i = 0; i < 2; i++)
		cli[i].no_close = true;
	for (unsigned i = 0; i < BMAXC; i++)
		bsrv[i].hold = true;
	for (int i = 0; i < 50; i++)
		step(budget);
	cr_expect_gt(held(), 0);
	wire_down();
}
