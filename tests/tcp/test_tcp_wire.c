/*
 * test_tcp_wire.c - two whole stacks back to back (each a net_stack with
 * ARP/IPv4 and a tcp_stack; each one's tx hook feeds the other's net_input
 * through a queue pumped here), with seeded loss, duplication and
 * reordering. Clients send a pattern, servers echo it, both close; every
 * byte must come back intact and in order, both sides must see an orderly
 * close, and no mbuf may leak. This is the end-to-end check of the state
 * machine, retransmission, recovery, reassembly and windows together.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/net/ipv6.h"
#include "tests/tcp/tcp_test.h"

struct side {
	struct tcp_conn *c;
	uint8_t *rx;
	size_t rxlen, cap;
	const uint8_t *tx;	/* client: the pattern; server: its own rx */
	size_t txlen, sent;
	bool echo, eof, fin_sent, closed;
	enum tcp_close_reason reason;
	bool hold;		/* don't consume (window closes) */
	size_t held;
};

#define MAXC 64
static struct side srv[MAXC];
static unsigned nsrv;

static bool s_accept(void *lctx, struct tcp_conn *c)
{
	(void)lctx;
	if (nsrv == MAXC)
		return false;
	struct side *s = &srv[nsrv++];
	s->c = c;
	s->echo = true;
	tcp_set_user(c, s);
	return true;
}

static void s_data(struct tcp_conn *c, void *user, struct rte_mbuf *m)
{
	struct side *s = user;
	if (!m) {
		s->eof = true;
		return;
	}
	uint32_t len = m->pkt_len;
	cr_assert_leq(s->rxlen + len, s->cap, "more data than was sent");
	for (struct rte_mbuf *g = m; g; g = g->next) {
		memcpy(s->rx + s->rxlen, rte_pktmbuf_mtod(g, void *), g->data_len);
		s->rxlen += g->data_len;
	}
	rte_pktmbuf_free(m);
	if (s->echo)
		s->txlen = s->rxlen;
	if (s->hold)
		s->held += len;
	else
		tcp_recved(c, len);
}

static void s_closed(struct tcp_conn *c, void *user, enum tcp_close_reason why)
{
	(void)c;
	struct side *s = user;
	s->closed = true;
	s->reason = why;
	s->c = NULL;
}

static void s_connected(struct tcp_conn *c, void *user)
{
	(void)c;
	(void)user;
}

static const struct tcp_callbacks side_cb = {
	.accept = s_accept, .connected = s_connected, .data = s_data,
	.closed = s_closed,
};

/* Push what the side has to send; close when done. */
static void push(struct side *s)
{
	if (!s->c || s->closed)
		return;
	while (s->sent < s->txlen) {
		size_t n = tcp_send(s->c, s->tx + s->sent, s->txlen - s->sent);
		if (n == 0)
			break;
		s->sent += n;
	}
	bool done = s->echo ? (s->eof && s->sent == s->txlen) : s->sent == s->txlen;
	if (done && !s->fin_sent) {
		s->fin_sent = true;
		tcp_close(s->c);
	}
}

static uint8_t *make_pattern(size_t len, uint64_t seed)
{
	uint8_t *p = malloc(len);
	uint64_t r = seed | 1;
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(trand(&r) >> 24);
	return p;
}

struct run {
	unsigned nconn;
	size_t bytes;
	unsigned loss_pm, dup_pm, reorder_pm;
	uint64_t seed;
	uint32_t sndbuf, rcvbuf;
	uint64_t max_sim_ns;
	bool server_holds;	/* servers stop reading for a while */
	bool v6;		/* over IPv6 (fd00:5c::2 -> ::3), ND included */
};

static void run_echo(const struct run *rp)
{
	struct twire w;
	struct tcp_conf ca, cb;
	tconf(&ca);
	tconf(&cb);
	ca.sndbuf = cb.sndbuf = rp->sndbuf ? rp->sndbuf : 64 * 1024;
	ca.rcvbuf = cb.rcvbuf = rp->rcvbuf ? rp->rcvbuf : 64 * 1024;
	cb.secret[0] ^= 0x5a;
	twire_init(&w, rp->seed, &ca, &cb);
	w.loss_pm = rp->loss_pm;
	w.dup_pm = rp->dup_pm;
	w.reorder_pm = rp->reorder_pm;
	memset(srv, 0, sizeof(srv));
	nsrv = 0;
	cr_assert(tcp_listen(w.b.ts, rte_cpu_to_be_16(25), &side_cb, NULL));
	struct side cli[MAXC];
	memset(cli, 0, sizeof(cli));
	uint8_t *pat[MAXC];
	for (unsigned i = 0; i < rp->nconn; i++) {
		pat[i] = make_pattern(rp->bytes, rp->seed * 1000 + i);
		cli[i].tx = pat[i];
		cli[i].txlen = rp->bytes;
		cli[i].cap = rp->bytes;
		cli[i].rx = malloc(rp->bytes);
		struct net_addr dst = rp->v6 ? tip6(3) : net_addr_v4(tip("198.18.0.3"));
		cli[i].c = tcp_connect_addr(w.a.ts, &dst, rte_cpu_to_be_16(25),
					    &side_cb, &cli[i]);
		cr_assert(cli[i].c);
	}
	for (unsigned i = 0; i < MAXC; i++) {
		srv[i].cap = rp->bytes;
		srv[i].rx = malloc(rp->bytes);
		srv[i].tx = srv[i].rx;
		srv[i].hold = rp->server_holds;
	}
	uint64_t t = 0;
	for (; t < rp->max_sim_ns; t += NS_PER_MS) {
		for (unsigned i = 0; i < rp->nconn; i++)
			push(&cli[i]);
		for (unsigned i = 0; i < nsrv; i++) {
			push(&srv[i]);
			/* a server that held its data lets go after 2 s */
			if (srv[i].hold && t > 2 * NS_PER_SEC && srv[i].c) {
				srv[i].hold = false;
				tcp_recved(srv[i].c, (uint32_t)srv[i].held);
			}
		}
		twire_pump(&w);
		twire_advance(&w, NS_PER_MS);
		unsigned done = 0;
		for (unsigned i = 0; i < rp->nconn; i++)
			done += cli[i].closed;
		for (unsigned i = 0; i < nsrv; i++)
			done += srv[i].closed;
		if (done == 2 * rp->nconn)
			break;
		if (t + NS_PER_MS >= rp->max_sim_ns)
			break;
	}
	cr_expect_lt(t, rp->max_sim_ns, "finished within simulated time");
	for (unsigned i = 0; i < 2 * MAXC; i++) {
		struct side *sd = i < MAXC ? &cli[i] : &srv[i - MAXC];
		if (!sd->c || sd->closed)
			continue;
		struct tcp_conn_info in;
		tcp_get_info(sd->c, &in);
		cr_log_info("stuck %s %u: %s una %u nxt %u swnd %u rnxt %u rwnd %u cwnd %u "
			    "sq %u ooo %u rto %llu sent %zu/%zu rx %zu eof %d",
			    i < MAXC ? "cli" : "srv", i % MAXC, tcp_state_name(in.state),
			    in.snd_una, in.snd_nxt, in.snd_wnd, in.rcv_nxt, in.rcv_wnd, in.cwnd,
			    in.sndq_bytes, in.ooo_segs, (unsigned long long)in.rto_ns,
			    sd->sent, sd->txlen, sd->rxlen, sd->eof);
		if (getenv("TCP_WIRE_DEBUG")) {
			stats_print(stderr, "A", tcp_stat_names,
				    STATS_VALUES(tcp_stack_stats(w.a.ts)), tcp_stat_count, 1);
			stats_print(stderr, "B", tcp_stat_names,
				    STATS_VALUES(tcp_stack_stats(w.b.ts)), tcp_stat_count, 1);
			stats_print(stderr, "netA", net_stat_names,
				    STATS_VALUES(&w.a.ns.stats), net_stat_count, 1);
			stats_print(stderr, "netB", net_stat_names,
				    STATS_VALUES(&w.b.ns.stats), net_stat_count, 1);
		}
	}
	cr_expect_eq(nsrv, rp->nconn);
	for (unsigned i = 0; i < rp->nconn; i++) {
		cr_expect(cli[i].closed, "client %u closed", i);
		cr_expect_eq(cli[i].reason, TCP_CLOSE_NORMAL, "client %u: %s", i,
			     tcp_close_reason_name(cli[i].reason));
		cr_expect(cli[i].eof);
		cr_expect_eq(cli[i].rxlen, rp->bytes, "client %u echoed %zu", i, cli[i].rxlen);
		cr_expect_eq(memcmp(cli[i].rx, pat[i], rp->bytes), 0, "client %u data", i);
	}
	if (rp->v6) {
		/* the neighbours found each other by ND, not by a shortcut */
		cr_expect_gt(w.a.ns.stats.nd_tx_ns, 0);
		cr_expect_gt(w.b.ns.stats.nd_tx_na, 0);
		cr_expect_gt(w.b.ns.stats.ip6_rx, 0);
		cr_expect_eq(w.b.ns.stats.ip_rx, 0, "no IPv4 at all");
	}
	for (unsigned i = 0; i < nsrv; i++) {
		cr_expect(srv[i].closed);
		cr_expect_eq(srv[i].reason, TCP_CLOSE_NORMAL);
		cr_expect_eq(srv[i].rxlen, rp->bytes);
	}
	const struct tcp_stats *sa = tcp_stack_stats(w.a.ts), *sb = tcp_stack_stats(w.b.ts);
	cr_log_info("seed %llu: %u conns x %zu B, sim %llu ms, lost %llu dup %llu reord %llu; "
		    "A rexmit %llu fr %llu rto %llu ooo %llu; B rexmit %llu fr %llu rto %llu ooo %llu",
		    (unsigned long long)rp->seed, rp->nconn, rp->bytes,
		    (unsigned long long)(t / NS_PER_MS), (unsigned long long)w.lost,
		    (unsigned long long)w.duped, (unsigned long long)w.reordered,
		    (unsigned long long)sa->retransmits, (unsigned long long)sa->fast_retransmits,
		    (unsigned long long)sa->rto_fires, (unsigned long long)sa->ooo_queued,
		    (unsigned long long)sb->retransmits, (unsigned long long)sb->fast_retransmits,
		    (unsigned long long)sb->rto_fires, (unsigned long long)sb->ooo_queued);
	if (rp->loss_pm)
		cr_expect_gt(sa->retransmits + sb->retransmits, 0);
	/* TIME_WAIT on the active closer only */
	cr_expect_eq(tcp_stack_conn_count(w.b.ts), 0);
	cr_expect_eq(tcp_stack_conn_count(w.a.ts), rp->nconn);
	twire_advance(&w, 61 * NS_PER_SEC);
	cr_expect_eq(tcp_stack_conn_count(w.a.ts), 0, "TIME_WAIT expired");
	unsigned leaked = twire_fini(&w);
	cr_expect_eq(leaked, 0, "mbufs leaked: %u", leaked);
	for (unsigned i = 0; i < rp->nconn; i++) {
		free(pat[i]);
		free(cli[i].rx);
	}
	for (unsigned i = 0; i < MAXC; i++)
		free(srv[i].rx);
}

TestSuite(tcp_wire, .timeout = 120);

Test(tcp_wire, clean_bulk_echo)
{
	struct run r = { .nconn = 1, .bytes = 4u << 20, .seed = 1,
			 .max_sim_ns = 60 * NS_PER_SEC };
	run_echo(&r);
}

Test(tcp_wire, clean_bulk_echo_ipv6)
{
	struct run r = { .nconn = 2, .bytes = 4u << 20, .seed = 2, .v6 = true,
			 .max_sim_ns = 60 * NS_PER_SEC };
	run_echo(&r);
}

Test(tcp_wire, lossy_bulk_echo_ipv6)
{
	for (uint64_t seed = 21; seed < 24; seed++) {
		struct run r = { .nconn = 2, .bytes = 1u << 20, .seed = seed, .v6 = true,
				 .loss_pm = 20, .dup_pm = 10, .reorder_pm = 10,
				 .max_sim_ns = 120 * NS_PER_SEC };
		run_echo(&r);
	}
}

Test(tcp_wire, lossy_bulk_echo)
{
	for (uint64_t seed = 11; seed < 15; seed++) {
		struct run r = { .nconn = 1, .bytes = 1u << 20, .seed = seed,
				 .loss_pm = 20, .dup_pm = 10, .reorder_pm = 10,
				 .max_sim_ns = 120 * NS_PER_SEC };
		run_echo(&r);
	}
}

Test(tcp_wire, heavy_loss)
{
	struct run r = { .nconn = 2, .bytes = 256u << 10, .seed = 99, .loss_pm = 100,
			 .dup_pm = 20, .reorder_pm = 50, .max_sim_ns = 600 * NS_PER_SEC };
	run_echo(&r);
}

Test(tcp_wire, many_connections_lossy)
{
	struct run r = { .nconn = 48, .bytes = 64u << 10, .seed = 7, .loss_pm = 20,
			 .dup_pm = 10, .reorder_pm = 10, .max_sim_ns = 600 * NS_PER_SEC };
	run_echo(&r);
}

Test(tcp_wire, small_buffers_and_stalled_reader)
{
	struct run r = { .nconn = 3, .bytes = 300u << 10, .seed = 5, .loss_pm = 10,
			 .sndbuf = 6000, .rcvbuf = 5000, .server_holds = true,
			 .max_sim_ns = 600 * NS_PER_SEC };
	run_echo(&r);
}

/* Many seeds, loss from 0.5% to 15%, 1 to 4 connections: shakes out rare
 * interleavings of loss, duplicates and reordering. */
Test(tcp_wire, seed_sweep)
{
	/* TCP_WIRE_SEED=n [TCP_WIRE_SIM_S=s]: run one seed (for debugging) */
	uint64_t lo = 100, hi = 140, sim = 900;
	if (getenv("TCP_WIRE_SEED")) {
		lo = strtoull(getenv("TCP_WIRE_SEED"), NULL, 10);
		hi = lo + 1;
	}
	if (getenv("TCP_WIRE_SIM_S"))
		sim = strtoull(getenv("TCP_WIRE_SIM_S"), NULL, 10);
	for (uint64_t seed = lo; seed < hi; seed++) {
		struct run r = { .nconn = 1 + (unsigned)(seed % 4), .bytes = 128u << 10,
				 .seed = seed, .loss_pm = 5 + (unsigned)(seed * 37 % 150),
				 .dup_pm = (unsigned)(seed % 3) * 10,
				 .reorder_pm = (unsigned)(seed % 5) * 10,
				 .max_sim_ns = sim * NS_PER_SEC };
		run_echo(&r);
	}
}

/* ICMPv6 "packet too big" (from a router fd00:5c::1) quoting a's segment
 * with sequence number seq, into a's stack. */
static void inject_ptb(struct twire *w, const struct tcp_tuple *t, uint32_t seq, uint32_t mtu)
{
	uint8_t f[14 + 40 + 8 + 40 + 20];
	uint8_t router[16] = { 0xfd, 0x00, 0x00, 0x5c, [15] = 1 };
	struct rte_ether_hdr *eh = (struct rte_ether_hdr *)f;
	struct rte_ipv6_hdr *ip = (struct rte_ipv6_hdr *)(eh + 1);
	uint8_t *ic = (uint8_t *)(ip + 1);
	struct rte_ipv6_hdr *q = (struct rte_ipv6_hdr *)(ic + 8);
	uint8_t *th = (uint8_t *)(q + 1);

	memset(f, 0, sizeof(f));
	eh->dst_addr = w->a.ns.addr.mac;
	eh->src_addr = w->b.ns.addr.mac;
	eh->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6);
	ip->vtc_flow = rte_cpu_to_be_32(6u << 28);
	ip->payload_len = rte_cpu_to_be_16(8 + 40 + 20);
	ip->proto = IPPROTO_ICMPV6;
	ip->hop_limits = 64;
	memcpy(ip->src_addr, router, 16);
	memcpy(ip->dst_addr, t->laddr.v6, 16);
	ic[0] = 2;	/* packet too big */
	uint32_t be = rte_cpu_to_be_32(mtu);
	memcpy(ic + 4, &be, 4);
	q->vtc_flow = rte_cpu_to_be_32(6u << 28);
	q->payload_len = rte_cpu_to_be_16(1452);	/* a 1492-byte datagram */
	q->proto = IPPROTO_TCP;
	q->hop_limits = 64;
	memcpy(q->src_addr, t->laddr.v6, 16);
	memcpy(q->dst_addr, t->raddr.v6, 16);
	memcpy(th, &t->lport, 2);
	memcpy(th + 2, &t->rport, 2);
	be = rte_cpu_to_be_32(seq);
	memcpy(th + 4, &be, 4);
	uint32_t sum = ipv6_addr_sum(ip->src_addr, ip->dst_addr) +
		       rte_cpu_to_be_16(IPPROTO_ICMPV6) + rte_cpu_to_be_16(8 + 40 + 20);
	sum += rte_raw_cksum(ic, 8 + 40 + 20);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	uint16_t ck = (uint16_t)~sum;
	memcpy(ic + 2, &ck, 2);
	struct rte_mbuf *m = rte_pktmbuf_alloc(w->a.pool);
	cr_assert(m);
	memcpy(rte_pktmbuf_append(m, sizeof(f)), f, sizeof(f));
	net_input(&w->a.ns, m);
}

/* Path MTU over IPv6: a "packet too big" quoting an unacknowledged
 * segment lowers the MSS to fit (1280 - 60 - 12 with timestamps, never
 * below IPv6's minimum MTU); one quoting a sequence number outside the
 * flight is ignored (RFC 5927); the data still arrives intact. */
Test(tcp_wire, packet_too_big_lowers_mss_ipv6)
{
	struct twire w;
	struct tcp_conf ca, cb;
	tconf(&ca);
	tconf(&cb);
	twire_init(&w, 5, &ca, &cb);
	memset(srv, 0, sizeof(srv));
	nsrv = 0;
	cr_assert(tcp_listen(w.b.ts, rte_cpu_to_be_16(25), &side_cb, NULL));
	size_t len = 256 * 1024;
	uint8_t *pat = make_pattern(len, 77);
	struct side cli;
	memset(&cli, 0, sizeof(cli));
	cli.tx = pat;
	cli.txlen = len;
	cli.cap = len;
	cli.rx = malloc(len);
	srv[0].cap = len;
	srv[0].rx = malloc(len);
	srv[0].tx = srv[0].rx;
	struct net_addr dst = tip6(3);
	cli.c = tcp_connect_addr(w.a.ts, &dst, rte_cpu_to_be_16(25), &side_cb, &cli);
	cr_assert(cli.c);
	for (int i = 0; i < 50 && tcp_get_state(cli.c) != TCP_ESTABLISHED; i++) {
		twire_pump(&w);
		twire_advance(&w, NS_PER_MS);
	}
	cr_assert_eq(tcp_get_state(cli.c), TCP_ESTABLISHED);
	struct tcp_conn_info in;
	tcp_get_info(cli.c, &in);
	cr_expect_eq(in.mss, 1500 - 60 - 12, "MSS for IPv6 with timestamps");
	push(&cli);	/* a flight in the air, not yet acknowledged */
	tcp_get_info(cli.c, &in);
	cr_assert(in.snd_nxt != in.snd_una);
	struct tcp_tuple t;
	tcp_get_tuple(cli.c, &t);

	inject_ptb(&w, &t, in.snd_una - 1000, 1280);	/* not in flight */
	cr_expect_eq(tcp_stack_stats(w.a.ts)->pmtu_rejected, 1);
	tcp_get_info(cli.c, &in);
	cr_expect_eq(in.mss, 1500 - 60 - 12, "unchanged");
	inject_ptb(&w, &t, in.snd_una, 1000);		/* below 1280: 1280 */
	cr_expect_eq(tcp_stack_stats(w.a.ts)->pmtu_lowered, 1);
	cr_expect_eq(w.a.ns.stats.icmp6_rx_too_big, 2);
	tcp_get_info(cli.c, &in);
	cr_expect_eq(in.mss, 1280 - 60 - 12);

	for (int i = 0; i < 60000 && !(cli.closed && srv[0].closed); i++) {
		push(&cli);
		for (unsigned k = 0; k < nsrv; k++)
			push(&srv[k]);
		twire_pump(&w);
		twire_advance(&w, NS_PER_MS);
	}
	cr_expect(cli.closed && cli.eof);
	cr_expect_eq(cli.rxlen, len);
	cr_expect_eq(memcmp(cli.rx, pat, len), 0, "echoed intact after the MSS change");
	twire_advance(&w, 61 * NS_PER_SEC);
	cr_expect_eq(twire_fini(&w), 0);
	free(pat);
	free(cli.rx);
	free(srv[0].rx);
}
