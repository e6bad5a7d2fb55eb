/*
 * test_dpsock.c - dpsock end to end without EAL: a control-side hub talks
 * through the lcore side, which runs on node a's UDP and TCP stacks; node b
 * (the other end of tests/tcp's wire) runs the services: a UDP echo and a
 * TCP echo on port 53, a TCP sink that never reads (54), and a TCP source
 * that sends a fixed pattern as fast as it may (55).
 *
 * Both sides run in this one thread, in the order the real threads would
 * interleave them: wire, lcore poll, hub poll. Checks: datagrams and streams
 * both ways byte-exact, -EAGAIN when slots run out and WRITABLE after, the
 * errors (refused, reset, timeout) as DPSOCK_ERROR and -errno after the
 * data, close with data in flight either way, the receive window held by
 * the control side's reading, two lcores, a random mix of everything; and
 * each test ends with every slot and every mbuf back and no ring ever full.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/clock.h"
#include "dataplane/dpsock.h"
#include "dataplane/net/udp.h"
#include "tests/tcp/tcp_test.h"

#define MAXS 64
#define SOURCE_BYTES (300u * 1024)

static struct twire w;
static struct udp_stack *ua, *ub;
static struct dpsock_conf dc;
static struct dpsock_hub *hub;
static struct dpsock_lcore *lc;
static struct tcp_conf tc;

/* What dpsock_poll reported, accumulated per id until a test clears it. */
static unsigned seen[MAXS];
static unsigned calls;
static int close_in_cb = -1;	/* an id the callback closes when it fires */

static void on_event(void *user, int id, unsigned what)
{
	(void)user;
	cr_assert(id >= 0 && id < MAXS, "id %d", id);
	cr_assert_neq(what, 0u, "a callback with nothing to say");
	seen[id] |= what;
	calls++;
	if (id == close_in_cb) {
		cr_assert_eq(dpsock_close(hub, id), 0);
		close_in_cb = -1;
	}
}

/* ---- node b's services ---- */

static struct udp_sock *uecho;
static rte_be16_t uecho_last_port;	/* the last sender's port */

static void uecho_readable(struct udp_sock *s, void *user)
{
	uint8_t buf[2048];
	struct net_addr from;
	rte_be16_t fport;
	int n;

	(void)user;
	while ((n = udp_recv_addr(s, buf, sizeof(buf), &from, &fport)) >= 0) {
		uecho_last_port = fport;
		struct iovec v = { buf, (size_t)n };
		cr_assert_eq(udp_send_addr(s, &from, fport, &v, 1), n);
	}
}

/* A server connection: what kind, and what it has done. */
enum svc { ECHO, SINK, SOURCE };
struct sconn {
	enum svc kind;
	struct tcp_conn *c;
	uint32_t sent;
	bool closed;
	enum tcp_close_reason why;
};
static struct sconn sconns[1024];
static unsigned nsconns;
static struct tcp_listener *l_echo, *l_sink, *l_source;
static const enum svc kinds[3] = { ECHO, SINK, SOURCE };

static uint8_t pattern(uint32_t i)
{
	return (uint8_t)(i * 7 + (i >> 9));
}

static void source_push(struct sconn *sc)
{
	uint8_t buf[4096];

	while (sc->c && sc->sent < SOURCE_BYTES) {
		uint32_t n = SOURCE_BYTES - sc->sent < sizeof(buf) ? SOURCE_BYTES - sc->sent
								    : (uint32_t)sizeof(buf);
		size_t k;
		for (uint32_t i = 0; i < n; i++)
			buf[i] = pattern(sc->sent + i);
		k = tcp_send(sc->c, buf, n);
		sc->sent += (uint32_t)k;
		if (k < n)
			return;
	}
	if (sc->c && sc->sent == SOURCE_BYTES) {
		tcp_close(sc->c);
		sc->sent++;	/* FIN queued once */
	}
}

static bool s_accept(void *lctx, struct tcp_conn *c)
{
	struct sconn *sc;

	cr_assert_lt(nsconns, 1024u);
	sc = &sconns[nsconns++];
	memset(sc, 0, sizeof(*sc));
	sc->kind = *(const enum svc *)lctx;
	sc->c = c;
	tcp_set_user(c, sc);
	if (sc->kind == SOURCE)
		source_push(sc);
	return true;
}

static void s_data(struct tcp_conn *c, void *user, struct rte_mbuf *m)
{
	struct sconn *sc = user;
	uint8_t buf[4096];

	if (!m) {
		tcp_close(c);
		return;
	}
	if (sc->kind == SINK) {		/* never reads: its window closes */
		rte_pktmbuf_free(m);
		return;
	}
	for (const struct rte_mbuf *s = m; s; s = s->next) {
		cr_assert_leq(s->data_len, sizeof(buf));
		memcpy(buf, rte_pktmbuf_mtod(s, void *), s->data_len);
		if (sc->kind == ECHO)
			cr_assert_eq(tcp_send(c, buf, s->data_len), s->data_len, "echo buffer full");
	}
	tcp_recved(c, rte_pktmbuf_pkt_len(m));
	rte_pktmbuf_free(m);
}

static void s_writable(struct tcp_conn *c, void *user)
{
	(void)c;
	struct sconn *sc = user;
	if (sc->kind == SOURCE)
		source_push(sc);
}

static void s_closed(struct tcp_conn *c, void *user, enum tcp_close_reason why)
{
	(void)c;
	struct sconn *sc = user;
	sc->closed = true;
	sc->why = why;
	sc->c = NULL;
}

static const struct tcp_callbacks s_cb = {
	.accept = s_accept, .data = s_data, .writable = s_writable, .closed = s_closed,
};

/* ---- set-up ---- */

static void build(unsigned nlcores)
{
	struct udp_conf uc;

	tconf(&tc);
	tc.syn_retries = 2;
	twire_init(&w, 11, &tc, &tc);
	udp_conf_default(&uc);
	uc.secret[3] = 9;
	ua = udp_stack_create(&w.a.ns, &uc);
	ub = udp_stack_create(&w.b.ns, &uc);
	cr_assert(ua && ub);
	cr_assert_eq(udp_open(ub, rte_cpu_to_be_16(53), 0, 0, &uecho), 0);
	udp_set_callback(uecho, uecho_readable, NULL);
	l_echo = tcp_listen(w.b.ts, rte_cpu_to_be_16(53), &s_cb, (void *)&kinds[0]);
	l_sink = tcp_listen(w.b.ts, rte_cpu_to_be_16(54), &s_cb, (void *)&kinds[1]);
	l_source = tcp_listen(w.b.ts, rte_cpu_to_be_16(55), &s_cb, (void *)&kinds[2]);
	cr_assert(l_echo && l_sink && l_source);
	nsconns = 0;
	uecho_last_port = 0;
	memset(seen, 0, sizeof(seen));
	calls = 0;
	close_in_cb = -1;
	hub = dpsock_hub_create(&dc, nlcores);
	cr_assert_not_null(hub);
	lc = dpsock_lcore_create(0, ua, w.a.ts, &hub, 1);
	cr_assert_not_null(lc);
}

static void setup(void)
{
	dpsock_conf_default(&dc);
	dc.max_socks = MAXS;
}

/* Everything home: no socket, every slot free, no ring ever full. */
static void expect_quiet(void)
{
	cr_expect_eq(dpsock_hub_open_count(hub), 0, "sockets left");
	cr_expect_eq(dpsock_hub_free_slots(hub), dc.req_slots * 1u, "request slots out");
	cr_expect_eq(dpsock_lcore_free_slots(lc), dc.evt_slots * 1u, "event slots out");
	cr_expect_eq(dpsock_hub_get_stats(hub)->ring_full, 0);
	cr_expect_eq(dpsock_lcore_get_stats(lc)->ring_full, 0);
	cr_expect_eq(dpsock_lcore_get_stats(lc)->rx_overflow, 0);
	cr_expect_eq(udp_stack_sock_count(ua), 0, "UDP sockets left on the lcore");
}

static void teardown(void)
{
	dpsock_lcore_destroy(lc);
	lc = NULL;
	dpsock_hub_destroy(hub);
	hub = NULL;
	udp_stack_destroy(ua);
	udp_stack_destroy(ub);
	ua = ub = NULL;
	cr_expect_eq(twire_fini(&w), 0, "mbufs leaked");
}

TestSuite(dpsock, .init = setup, .fini = teardown);

/* One round of both threads' work; the clock moves 1 ms. */
static void step(void)
{
	twire_pump(&w);
	dpsock_lcore_poll(lc);
	twire_pump(&w);
	dpsock_poll(hub, on_event, NULL);
	twire_advance(&w, NS_PER_MS);
}

/* Step until id has reported any of `what` (up to `ms` simulated ms). */
static bool wait_for(int id, unsigned what, unsigned ms)
{
	for (unsigned i = 0; i < ms; i++) {
		if (seen[id] & what)
			return true;
		step();
	}
	return (seen[id] & what) != 0;
}

static void settle(unsigned ms)
{
	for (unsigned i = 0; i < ms; i++)
		step();
}

static rte_be32_t b_ip(void) { return tip("198.18.0.3"); }
static rte_be16_t be16(uint16_t p) { return rte_cpu_to_be_16(p); }

static int udp_to_b(void)
{
	int id = dpsock_open(hub, SOCK_DGRAM);
	cr_assert_geq(id, 0);
	cr_assert_eq(dpsock_connect(hub, id, b_ip(), be16(53)), 0);
	return id;
}

static int tcp_to_b(uint16_t port)
{
	int id = dpsock_open(hub, SOCK_STREAM);
	cr_assert_geq(id, 0);
	cr_assert_eq(dpsock_connect(hub, id, b_ip(), be16(port)), -EINPROGRESS);
	return id;
}

Test(dpsock, udp_echo)
{
	uint8_t out[1472], in[DPSOCK_MSG_MAX];
	struct iovec v[2];
	rte_be32_t from;
	rte_be16_t fport;
	int id;

	build(1);
	id = udp_to_b();
	cr_assert_eq(dpsock_recv(hub, id, in, sizeof(in), NULL, NULL), -EAGAIN);
	v[0] = (struct iovec){ "hel", 3 };
	v[1] = (struct iovec){ "lo", 2 };
	cr_assert_eq(dpsock_send(hub, id, v, 2), 5);
	cr_assert(wait_for(id, DPSOCK_READABLE, 100));
	cr_assert_eq(dpsock_recv(hub, id, in, sizeof(in), &from, &fport), 5);
	cr_assert_eq(memcmp(in, "hello", 5), 0);
	cr_assert_eq(from, b_ip());
	cr_assert_eq(fport, be16(53));
	cr_assert_eq(dpsock_recv(hub, id, in, sizeof(in), NULL, NULL), -EAGAIN);

	/* Many, of every size up to the largest; one at a time. */
	for (unsigned len = 0; len <= sizeof(out); len += 31) {
		for (unsigned i = 0; i < len; i++)
			out[i] = (uint8_t)(i ^ len);
		v[0] = (struct iovec){ out, len };
		cr_assert_eq(dpsock_send(hub, id, v, 1), (ssize_t)len);
		seen[id] = 0;
		cr_assert(wait_for(id, DPSOCK_READABLE, 100), "len %u", len);
		cr_assert_eq(dpsock_recv(hub, id, in, sizeof(in), NULL, NULL), (ssize_t)len);
		cr_assert_eq(memcmp(in, out, len), 0);
	}
	v[0] = (struct iovec){ out, sizeof(out) + 1 };
	cr_assert_eq(dpsock_send(hub, id, v, 1), -EMSGSIZE);
	/* A short buffer cuts the datagram; the rest is gone. */
	v[0] = (struct iovec){ "0123456789", 10 };
	cr_assert_eq(dpsock_send(hub, id, v, 1), 10);
	seen[id] = 0;
	cr_assert(wait_for(id, DPSOCK_READABLE, 100));
	cr_assert_eq(dpsock_recv(hub, id, in, 4, NULL, NULL), 4);
	cr_assert_eq(dpsock_recv(hub, id, in, sizeof(in), NULL, NULL), -EAGAIN);

	cr_assert_eq(dpsock_close(hub, id), 0);
	cr_assert_eq(dpsock_send(hub, id, v, 1), -EBADF);
	settle(5);
	cr_assert_geq(dpsock_lcore_get_stats(lc)->udp_tx, 49);
	cr_assert_eq(dpsock_lcore_get_stats(lc)->udp_rx, dpsock_lcore_get_stats(lc)->udp_tx);
	expect_quiet();
}

/* The resolver may have IPv6 servers: a UDP socket and a TCP connection
 * to node b's IPv6 address (Neighbor Discovery over the wire included). */
Test(dpsock, udp_and_tcp_over_ipv6)
{
	struct net_addr b6 = tip6(3), from;
	uint8_t in[64];
	rte_be16_t fport;
	rte_be32_t from4 = 1;
	struct iovec v = { "over six", 8 };
	int id;

	build(1);
	id = dpsock_open(hub, SOCK_DGRAM);
	cr_assert_geq(id, 0);
	cr_assert_eq(dpsock_connect_addr(hub, id, &b6, be16(53)), 0);
	cr_assert_eq(dpsock_send(hub, id, &v, 1), 8);
	cr_assert(wait_for(id, DPSOCK_READABLE, 1000), "no IPv6 echo");
	cr_assert_eq(dpsock_recv_addr(hub, id, in, sizeof(in), &from, &fport), 8);
	cr_assert_eq(memcmp(in, "over six", 8), 0);
	cr_assert(net_addr_eq(&from, &b6), "the source is b's IPv6 address");
	cr_assert_eq(fport, be16(53));
	/* The IPv4 form of recv: 0 for an IPv6 source. */
	cr_assert_eq(dpsock_send(hub, id, &v, 1), 8);
	ssize_t r = -EAGAIN;
	for (unsigned spins = 0; r == -EAGAIN && spins < 2000; spins++) {
		step();
		r = dpsock_recv(hub, id, in, sizeof(in), &from4, NULL);
	}
	cr_assert_eq(r, 8);
	cr_assert_eq(from4, 0);
	dpsock_close(hub, id);

	id = dpsock_open(hub, SOCK_STREAM);
	cr_assert_geq(id, 0);
	cr_assert_eq(dpsock_connect_addr(hub, id, &b6, be16(53)), -EINPROGRESS);
	cr_assert(wait_for(id, DPSOCK_WRITABLE, 1000), "no IPv6 connection");
	cr_assert_eq(dpsock_send(hub, id, &v, 1), 8);
	size_t got = 0;
	for (unsigned spins = 0; got < 8 && spins < 2000; spins++) {
		step();
		ssize_t k = dpsock_recv(hub, id, in + got, sizeof(in) - got, NULL, NULL);
		if (k > 0)
			got += (size_t)k;
	}
	cr_assert_eq(got, 8, "TCP echo over IPv6");
	cr_assert_eq(memcmp(in, "over six", 8), 0);
	dpsock_close(hub, id);
	cr_assert_eq(dpsock_connect_addr(hub, dpsock_open(hub, SOCK_DGRAM), &(struct net_addr){ 0 },
					 be16(53)), -EINVAL);
}

Test(dpsock, tcp_echo_and_orderly_close)
{
	static uint8_t out[100 * 1000], in[sizeof(out)];
	size_t sent = 0, got = 0;
	unsigned eagains = 0;
	int id;

	for (unsigned i = 0; i < sizeof(out); i++)
		out[i] = (uint8_t)(i * 13 + (i >> 8));
	build(1);
	id = tcp_to_b(53);
	cr_assert(wait_for(id, DPSOCK_WRITABLE, 1000), "not connected");
	for (unsigned spins = 0; got < sizeof(out); spins++) {
		while (sent < sizeof(out)) {
			/* odd pieces across slot boundaries, until no room */
			size_t n = sizeof(out) - sent < 9999 ? sizeof(out) - sent : 9999;
			struct iovec v = { out + sent, n };
			ssize_t k = dpsock_send(hub, id, &v, 1);
			if (k == -EAGAIN) {
				eagains++;
				break;
			}
			cr_assert_gt(k, 0, "send: %zd", k);
			sent += (size_t)k;
		}
		step();
		for (;;) {
			ssize_t k = dpsock_recv(hub, id, in + got, 1000, NULL, NULL);
			if (k == -EAGAIN)
				break;
			cr_assert_gt(k, 0, "recv: %zd", k);
			got += (size_t)k;
		}
		cr_assert_lt(spins, 20000u, "stalled at %zu sent, %zu back", sent, got);
	}
	cr_assert_eq(memcmp(in, out, sizeof(out)), 0, "echo differs");
	cr_assert_gt(eagains, 0, "slots never ran out: the test proves little");
	cr_assert_eq(dpsock_close(hub, id), 0);
	settle(100);
	cr_assert_eq(dpsock_lcore_get_stats(lc)->close_fin, 1);
	cr_assert_eq(dpsock_lcore_get_stats(lc)->close_rst, 0);
	cr_assert_eq(nsconns, 1);
	cr_assert(sconns[0].closed);
	cr_assert_eq(sconns[0].why, TCP_CLOSE_NORMAL, "the server saw an orderly close");
	expect_quiet();
}

Test(dpsock, tcp_eof_then_zero)
{
	int id;
	uint8_t buf[64];

	build(1);
	id = tcp_to_b(53);
	cr_assert(wait_for(id, DPSOCK_WRITABLE, 1000));
	cr_assert_eq(nsconns, 1);
	cr_assert_eq(tcp_send(sconns[0].c, "bye", 3), 3);
	tcp_close(sconns[0].c);
	cr_assert(wait_for(id, DPSOCK_READABLE, 1000));
	settle(5);
	cr_assert_eq(dpsock_recv(hub, id, buf, sizeof(buf), NULL, NULL), 3, "data before EOF");
	cr_assert_eq(dpsock_recv(hub, id, buf, sizeof(buf), NULL, NULL), 0, "then EOF");
	cr_assert_eq(dpsock_recv(hub, id, buf, sizeof(buf), NULL, NULL), 0, "EOF stays");
	/* Still readable (a level) at every poll until closed. */
	seen[id] = 0;
	step();
	cr_assert(seen[id] & DPSOCK_READABLE);
	cr_assert_eq(dpsock_close(hub, id), 0);
	settle(100);
	cr_assert_eq(dpsock_lcore_get_stats(lc)->close_fin, 1);
	expect_quiet();
}

Test(dpsock, tcp_refused)
{
	uint8_t buf[16];
	struct iovec v = { "x", 1 };
	int id;

	build(1);
	id = tcp_to_b(99);	/* nobody listens: RST */
	cr_assert(wait_for(id, DPSOCK_ERROR, 1000));
	cr_assert(seen[id] & DPSOCK_READABLE && seen[id] & DPSOCK_WRITABLE,
		  "failed sockets look readable and writable too");
	cr_assert_eq(dpsock_recv(hub, id, buf, sizeof(buf), NULL, NULL), -ECONNREFUSED);
	cr_assert_eq(dpsock_send(hub, id, &v, 1), -ECONNREFUSED);
	cr_assert_eq(dpsock_recv(hub, id, buf, sizeof(buf), NULL, NULL), -ECONNREFUSED, "sticky");
	cr_assert_eq(dpsock_hub_get_stats(hub)->errors, 1);
	cr_assert_eq(dpsock_close(hub, id), 0);
	settle(5);
	expect_quiet();
}

Test(dpsock, tcp_reset_after_data)
{
	uint8_t buf[64];
	int id;

	build(1);
	id = tcp_to_b(53);
	cr_assert(wait_for(id, DPSOCK_WRITABLE, 1000));
	cr_assert_eq(tcp_send(sconns[0].c, "last words", 10), 10);
	settle(3);
	tcp_abort(sconns[0].c);	/* RST */
	sconns[0].c = NULL;
	cr_assert(wait_for(id, DPSOCK_ERROR, 1000));
	cr_assert_eq(dpsock_recv(hub, id, buf, sizeof(buf), NULL, NULL), 10, "the data first");
	cr_assert_eq(memcmp(buf, "last words", 10), 0);
	cr_assert_eq(dpsock_recv(hub, id, buf, sizeof(buf), NULL, NULL), -ECONNRESET);
	cr_assert_eq(dpsock_close(hub, id), 0);
	settle(5);
	expect_quiet();
}

Test(dpsock, tcp_timeout)
{
	uint8_t buf[16];
	int id;

	build(1);
	w.loss_pm = 1000;	/* the peer is gone */
	id = tcp_to_b(53);
	/* SYN at 0, retries at 1 s and 3 s, gives up at 7 s (tc.syn_retries 2) */
	cr_assert(wait_for(id, DPSOCK_ERROR, 20000));
	cr_assert_eq(dpsock_recv(hub, id, buf, sizeof(buf), NULL, NULL), -ETIMEDOUT);
	cr_assert_eq(dpsock_close(hub, id), 0);
	settle(5);
	expect_quiet();
}

Test(dpsock, eagain_when_slots_run_out)
{
	struct iovec v = { "q", 1 };
	int id, other, ids[MAXS];
	unsigned ok = 0;

	dc.req_slots = 4;
	dc.sock_slots = 3;
	build(1);
	id = udp_to_b();			/* the connect's slot is out too */
	other = dpsock_open(hub, SOCK_DGRAM);
	/* The socket's own bound: connect + 2 sends = 3 slots. */
	cr_assert_eq(dpsock_send(hub, id, &v, 1), 1);
	cr_assert_eq(dpsock_send(hub, id, &v, 1), 1);
	cr_assert_eq(dpsock_send(hub, id, &v, 1), -EAGAIN);
	/* The lcore's pool: one slot left, for the other socket's connect. */
	cr_assert_eq(dpsock_connect(hub, other, b_ip(), be16(53)), 0);
	cr_assert_eq(dpsock_send(hub, other, &v, 1), -EAGAIN);
	cr_assert_eq(dpsock_hub_get_stats(hub)->send_eagain, 2);
	/* Nothing is reported writable until slots come home; then both. */
	cr_assert_eq(seen[id] & DPSOCK_WRITABLE, 0);
	step();
	cr_assert(seen[id] & DPSOCK_WRITABLE);
	cr_assert(seen[other] & DPSOCK_WRITABLE);
	cr_assert_eq(dpsock_send(hub, other, &v, 1), 1);
	/* Connect, too, says -EAGAIN when no lcore has a slot. */
	{
		int third = dpsock_open(hub, SOCK_DGRAM);
		while (dpsock_send(hub, id, &v, 1) == 1)
			;
		while (dpsock_send(hub, other, &v, 1) == 1)
			;
		cr_assert_eq(dpsock_hub_free_slots(hub), 0);
		cr_assert_eq(dpsock_connect(hub, third, b_ip(), be16(53)), -EAGAIN);
		seen[third] = 0;
		step();
		cr_assert(seen[third] & DPSOCK_WRITABLE);
		cr_assert_eq(dpsock_connect(hub, third, b_ip(), be16(53)), 0);
		cr_assert_eq(dpsock_close(hub, third), 0);
	}
	/* Ids run out too. */
	cr_assert_eq(dpsock_close(hub, id), 0);
	cr_assert_eq(dpsock_close(hub, other), 0);
	settle(5);
	for (unsigned i = 0; i < MAXS; i++) {
		ids[i] = dpsock_open(hub, SOCK_DGRAM);
		ok += ids[i] >= 0;
	}
	cr_assert_eq(ok, MAXS);
	cr_assert_eq(dpsock_open(hub, SOCK_DGRAM), -EMFILE);
	cr_assert_eq(dpsock_open(hub, 99), -EPROTONOSUPPORT);
	for (unsigned i = 0; i < MAXS; i++)
		cr_assert_eq(dpsock_close(hub, ids[i]), 0, "never connected: freed at once");
	cr_assert_eq(dpsock_hub_open_count(hub), 0);
	settle(5);
	expect_quiet();
}

/* The peer floods one socket while the control side does not read: the
 * lcore hands over at most sock_slots datagrams, the rest waits in the UDP
 * socket's bounded queue, and what does not fit is dropped and counted. */
Test(dpsock, udp_receive_bounded_when_not_read)
{
	uint8_t buf[64];
	unsigned got = 0;
	int id;

	build(1);
	id = udp_to_b();
	cr_assert_eq(dpsock_send(hub, id, &(struct iovec){ "hi", 2 }, 1), 2);
	settle(3);
	cr_assert_eq(dpsock_recv(hub, id, buf, sizeof(buf), NULL, NULL), 2);
	cr_assert_neq(uecho_last_port, 0);
	/* b floods from port 53 (the socket's peer) to a's ephemeral port. */
	for (unsigned i = 0; i < 200; i++) {
		struct iovec v = { "f", 1 };
		cr_assert_eq(udp_send(uecho, tip("198.18.0.2"), uecho_last_port, &v, 1), 1);
	}
	settle(10);
	cr_assert_eq(dpsock_lcore_free_slots(lc), dc.evt_slots - dc.sock_slots,
		     "one socket holds at most sock_slots");
	cr_assert_gt(udp_stack_stats(ua)->drop_rxq_full, 0, "the queue bound held");
	for (unsigned spins = 0; got + udp_stack_stats(ua)->drop_rxq_full < 200; spins++) {
		ssize_t k = dpsock_recv(hub, id, buf, sizeof(buf), NULL, NULL);
		cr_assert_lt(spins, 1000u, "got %u", got);
		if (k == 1) {
			got++;
			continue;
		}
		cr_assert_eq(k, -EAGAIN);
		step();
	}
	cr_assert_eq(got, 64, "the UDP queue's bound (rxq_dgrams) got through");
	cr_assert_eq(dpsock_close(hub, id), 0);
	settle(5);
	expect_quiet();
}

/* Close with data in flight on the lcore: datagrams still to send and
 * replies coming in (UDP); stream bytes the sink will never take (TCP,
 * reset); stream bytes received and never read (TCP, reset). Everything
 * comes home and the peer sees the reset. */
Test(dpsock, close_with_data_in_flight)
{
	static uint8_t big[64 * 1024];
	struct iovec v = { big, sizeof(big) };
	int u, sink, src;
	size_t sent = 0;

	build(1);
	/* UDP: queries out, close before the lcore has even seen them. */
	u = udp_to_b();
	for (unsigned i = 0; i < 5; i++)
		cr_assert_eq(dpsock_send(hub, u, &(struct iovec){ "q", 1 }, 1), 1);
	cr_assert_eq(dpsock_close(hub, u), 0);

	/* TCP to the sink: fill its window, our send buffer and our slots. */
	sink = tcp_to_b(54);
	cr_assert(wait_for(sink, DPSOCK_WRITABLE, 1000));
	for (unsigned i = 0; i < 400; i++) {
		ssize_t k = dpsock_send(hub, sink, &v, 1);
		if (k > 0)
			sent += (size_t)k;
		step();
	}
	cr_assert_gt(sent, (size_t)tc.sndbuf + tc.rcvbuf, "data must be stuck in slots");
	cr_assert_lt(dpsock_hub_free_slots(hub), dc.req_slots, "slots held by the lcore");

	/* TCP from the source: let data arrive, never read it. */
	src = tcp_to_b(55);
	cr_assert(wait_for(src, DPSOCK_READABLE, 2000));
	settle(50);
	cr_assert_lt(dpsock_lcore_free_slots(lc), dc.evt_slots, "slots held by the control side");

	cr_assert_eq(dpsock_close(hub, sink), 0);
	cr_assert_eq(dpsock_close(hub, src), 0);
	cr_assert_eq(dpsock_hub_open_count(hub), 2, "ids wait for the lcore's release");
	settle(100);
	cr_assert_eq(dpsock_lcore_get_stats(lc)->close_rst, 2);
	cr_assert_eq(nsconns, 2);
	cr_assert(sconns[0].closed && sconns[0].why == TCP_CLOSE_RESET, "sink saw RST");
	cr_assert(sconns[1].closed && sconns[1].why == TCP_CLOSE_RESET, "source saw RST");
	cr_assert_eq(tcp_stack_conn_count(w.a.ts), 0);
	expect_quiet();
}

/* The receive window is the control side's reading: while it does not
 * read, the lcore takes no more than the window from the peer; then every
 * byte arrives, in order, and the stream ends. */
Test(dpsock, tcp_window_follows_the_reader)
{
	static uint8_t in[SOURCE_BYTES];
	size_t got = 0;
	bool eof = false;
	int id;

	build(1);
	id = tcp_to_b(55);
	cr_assert(wait_for(id, DPSOCK_READABLE, 2000));
	settle(500);
	cr_assert_leq(dpsock_lcore_get_stats(lc)->tcp_rx_bytes, tc.rcvbuf,
		      "took %lu bytes with nobody reading",
		      dpsock_lcore_get_stats(lc)->tcp_rx_bytes);
	cr_assert_geq(dpsock_lcore_get_stats(lc)->tcp_rx_bytes, tc.rcvbuf / 2);
	cr_assert_lt(sconns[0].sent, SOURCE_BYTES, "the source must be held back");
	for (unsigned spins = 0; !eof; spins++) {
		ssize_t k = dpsock_recv(hub, id, in + got, 777, NULL, NULL);
		cr_assert_lt(spins, 100000u, "stalled at %zu", got);
		if (k > 0) {
			got += (size_t)k;
			cr_assert_leq(got, sizeof(in));
			continue;
		}
		if (k == 0) {
			eof = true;
			break;
		}
		cr_assert_eq(k, -EAGAIN);
		step();
	}
	cr_assert_eq(got, SOURCE_BYTES);
	for (size_t i = 0; i < got; i++)
		if (in[i] != pattern((uint32_t)i))
			cr_assert_fail("byte %zu differs", i);
	cr_assert_eq(dpsock_close(hub, id), 0);
	settle(100);
	cr_assert_eq(dpsock_lcore_get_stats(lc)->close_fin, 1);
	expect_quiet();
}

Test(dpsock, close_from_the_callback)
{
	int id;

	build(1);
	id = tcp_to_b(53);
	close_in_cb = id;
	cr_assert(wait_for(id, DPSOCK_WRITABLE, 1000));
	cr_assert_eq(close_in_cb, -1, "the callback closed it");
	cr_assert_eq(dpsock_send(hub, id, &(struct iovec){ "x", 1 }, 1), -EBADF);
	settle(100);
	expect_quiet();
}

/* Two lcores: node a's stacks serve lcore 0, node b's lcore 1; each
 * socket reaches the echo on the other node. Connect picks them in turn. */
Test(dpsock, two_lcores)
{
	struct dpsock_lcore *l1;
	struct udp_sock *echo_a;
	uint8_t buf[64];
	rte_be32_t from;
	int s0, s1;

	build(2);
	l1 = dpsock_lcore_create(1, ub, w.b.ts, &hub, 1);
	cr_assert_not_null(l1);
	cr_assert_null(dpsock_lcore_create(1, ub, w.b.ts, &hub, 1), "one lcore per index");
	cr_assert_eq(udp_open(ua, rte_cpu_to_be_16(53), 0, 0, &echo_a), 0);
	udp_set_callback(echo_a, uecho_readable, NULL);
	s0 = dpsock_open(hub, SOCK_DGRAM);
	s1 = dpsock_open(hub, SOCK_DGRAM);
	cr_assert_eq(dpsock_connect(hub, s0, tip("198.18.0.3"), be16(53)), 0);	/* lcore 0 */
	cr_assert_eq(dpsock_connect(hub, s1, tip("198.18.0.2"), be16(53)), 0);	/* lcore 1 */
	cr_assert_eq(dpsock_send(hub, s0, &(struct iovec){ "zero", 4 }, 1), 4);
	cr_assert_eq(dpsock_send(hub, s1, &(struct iovec){ "one", 3 }, 1), 3);
	for (unsigned i = 0; i < 20; i++) {
		step();
		dpsock_lcore_poll(l1);
	}
	cr_assert_eq(dpsock_recv(hub, s0, buf, sizeof(buf), &from, NULL), 4);
	cr_assert_eq(from, tip("198.18.0.3"));
	cr_assert_eq(dpsock_recv(hub, s1, buf, sizeof(buf), &from, NULL), 3);
	cr_assert_eq(from, tip("198.18.0.2"));
	cr_assert_eq(dpsock_lcore_get_stats(lc)->udp_tx, 1);
	cr_assert_eq(dpsock_lcore_get_stats(l1)->udp_tx, 1);
	dpsock_close(hub, s0);
	dpsock_close(hub, s1);
	for (unsigned i = 0; i < 5; i++) {
		step();
		dpsock_lcore_poll(l1);
		dpsock_poll(hub, on_event, NULL);
	}
	cr_assert_eq(dpsock_hub_open_count(hub), 0);
	cr_assert_eq(dpsock_hub_free_slots(hub), 2 * dc.req_slots);
	cr_assert_eq(dpsock_lcore_free_slots(l1), dc.evt_slots);
	udp_close(echo_a);
	dpsock_lcore_destroy(l1);
}

/* A seeded random mix of every call on UDP and TCP sockets, with loss on
 * the wire; then everything closed. Nothing may leak, no ring may fill,
 * and every call answers within its contract. */
Test(dpsock, random_mix)
{
	uint64_t rng = 0xd1b54a32d192ed03ull;
	int ids[16];
	uint8_t buf[DPSOCK_MSG_MAX * 2];

	dc.req_slots = 16;
	dc.evt_slots = 16;
	dc.tcp_max = 4;
	build(1);
	w.loss_pm = 20;
	for (unsigned i = 0; i < 16; i++)
		ids[i] = -1;
	memset(buf, 'm', sizeof(buf));
	for (unsigned round = 0; round < 20000; round++) {
		unsigned k = (unsigned)(trand(&rng) % 16), op = (unsigned)(trand(&rng) % 100);
		int id = ids[k];
		ssize_t r;

		if (id < 0) {
			if (op < 30) {
				id = dpsock_open(hub, op < 20 ? SOCK_DGRAM : SOCK_STREAM);
				cr_assert_geq(id, 0);
				ids[k] = id;
				r = dpsock_connect(hub, id, b_ip(), be16(op < 20 ? 53 : 53 + op % 4));
				cr_assert(r == 0 || r == -EINPROGRESS || r == -EAGAIN, "connect %zd", r);
			}
		} else if (op < 45) {
			struct iovec v = { buf, 1 + trand(&rng) % 1400 };
			r = dpsock_send(hub, id, &v, 1);
			cr_assert(r > 0 || r == -EAGAIN || r == -ENOTCONN || r == -ECONNREFUSED ||
				  r == -ECONNRESET || r == -ETIMEDOUT || r == -ENOBUFS,
				  "send %zd", r);
		} else if (op < 90) {
			r = dpsock_recv(hub, id, buf, sizeof(buf), NULL, NULL);
			cr_assert(r >= 0 || r == -EAGAIN || r == -ECONNREFUSED || r == -ECONNRESET ||
				  r == -ETIMEDOUT || r == -ENOBUFS, "recv %zd", r);
		} else if (op < 97) {
			cr_assert_eq(dpsock_close(hub, id), 0);
			ids[k] = -1;
		} else {
			r = dpsock_connect(hub, id, b_ip(), be16(53));
			cr_assert(r == -EISCONN || r == 0 || r == -EINPROGRESS || r == -EAGAIN);
		}
		if (trand(&rng) % 4 == 0)
			step();
	}
	for (unsigned k = 0; k < 16; k++)
		if (ids[k] >= 0)
			cr_assert_eq(dpsock_close(hub, ids[k]), 0);
	w.loss_pm = 0;
	settle(200);
	cr_assert_gt(dpsock_lcore_get_stats(lc)->udp_rx, 100, "UDP traffic flowed");
	cr_assert_gt(dpsock_lcore_get_stats(lc)->tcp_rx_bytes, 10000, "TCP traffic flowed");
	expect_quiet();
}
