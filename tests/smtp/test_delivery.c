/*
 * test_delivery.c - the delivery service end to end without EAL: two TCP
 * stacks back to back (tests/tcp's wire). Stack a (198.18.0.2) runs the
 * delivery service, driven as the scheduler would drive it (jobs in, results
 * and close events out through its port); stack b (198.18.0.3) is the next
 * hop: the real inbound SMTP service with a real queue in a temporary
 * directory (port 25), and scripted SMTP servers on other ports (mixed
 * replies, 421 greetings, silence, a broken STARTTLS).
 *
 * Proves: a message arrives byte for byte (DATA with dot-stuffing undone by
 * the receiver, and BDAT); per-recipient results; next-hop failover on
 * refused connections, 421 greetings and stalls; site failures; timeouts on
 * the TCP timer wheel; connection reuse with its conn_key, the idle close
 * reported, a dead reused connection replaced; STARTTLS under may (and a
 * failed handshake reported), encrypt without STARTTLS (4.7.4), verify with
 * a wrong name (4.7.5); the bounds (connections, idle, job ring, result
 * ring) give clear results; no mbuf leaks (every teardown).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rte_ring.h>

#include "common/clock.h"
#include "dataplane/smtp/delivery.h"
#include "dataplane/smtp/smtp_policy.h"
#include "dataplane/smtp/smtp_service.h"
#include "dataplane/smtp/tls.h"
#include "queue/queue.h"
#include "tests/tcp/tcp_test.h"

#define PEER "198.18.0.3"
#define EV_MAX 256
#define JOBS_MAX 32

/* ---- the wire, the service under test, the real next hop ---- */

static struct twire w;
static struct tcp_conf tc;
static struct dlv_conf dconf;
static struct dlv_service *dlv;
static const struct dlv_port *port;
static struct tls_ctx *cctx, *sctx;
static char dir[64], cert[96], key[96];

static struct queue *q;
static struct smtp_policy policy;
static struct smtp_limits limits;
static struct smtp_service_conf pconf;
static struct smtp_service *peer;

static struct dlv_event ev[EV_MAX];
static unsigned nev;
static bool reaping = true;

/* A job and the body it lends (the scheduler's memory). */
struct tjob {
	struct dlv_job j;	/* first: its address is the job's */
	struct iovec iov[8];
	char *copy;		/* the body, split into iov */
};
static struct tjob *tjobs[JOBS_MAX];
static unsigned ntjobs;

static void setup(void)
{
	char err[256];

	tconf(&tc);
	twire_init(&w, 11, &tc, &tc);
	snprintf(dir, sizeof(dir), "/tmp/dlv-test.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(cert, sizeof(cert), "%s/c.pem", dir);
	snprintf(key, sizeof(key), "%s/k.pem", dir);
	cr_assert_eq(tls_selfsigned_ensure(cert, key, "mx.test", err, sizeof(err)), 0, "%s", err);
	sctx = tls_ctx_server(cert, key, err, sizeof(err));
	cr_assert_not_null(sctx, "%s", err);
	/* the self-signed certificate is its own CA: `verify` can pass */
	cctx = tls_ctx_client(cert, err, sizeof(err));
	cr_assert_not_null(cctx, "%s", err);

	dlv_conf_default(&dconf);
	dconf.max_conns = 8;
	dconf.max_jobs = 16;
	dconf.max_idle = 4;
	snprintf(dconf.client.helo, sizeof(dconf.client.helo), "relay.test");
	dconf.client.t_connect_ns = 2 * NS_PER_SEC;
	dconf.client.t_greeting_ns = 3 * NS_PER_SEC;
	dconf.tls = cctx;

	cr_assert_eq(smtp_policy_init(&policy, "198.18.0.0/24", ""), 0);
	memset(&pconf, 0, sizeof(pconf));
	pconf.port = 25;
	smtp_conf_default(&pconf.engine);
	snprintf(pconf.engine.hostname, sizeof(pconf.engine.hostname), "mx.test");
	pconf.engine.policy = &policy;
	pconf.max_sessions = 16;
	pconf.max_per_client = 16;
	pconf.body_memory = 4u << 20;
	pconf.lifetime_s = 86400;
	smtp_limits_init(&limits, 1, 2);
	nev = 0;
	reaping = true;
	ntjobs = 0;
}

static void teardown(void)
{
	char cmd[128];

	dlv_destroy(dlv);
	dlv = NULL;
	smtp_service_destroy(peer);
	peer = NULL;
	if (q)
		queue_close(q);
	q = NULL;
	cr_expect_eq(twire_fini(&w), 0, "mbufs leaked");
	for (unsigned i = 0; i < ntjobs; i++) {
		free(tjobs[i]->copy);
		free(tjobs[i]);
	}
	tls_ctx_free(cctx);
	tls_ctx_free(sctx);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

TestSuite(delivery, .init = setup, .fini = teardown, .timeout = 60);

static void start(void)
{
	dlv = dlv_create(w.a.ts, &dconf, tc.rcvbuf, 0, &w.a.ns.now_ns);
	cr_assert_not_null(dlv);
	port = dlv_get_port(dlv);
}

/* The real inbound service on the peer, with its queue (and STARTTLS). */
static void start_peer(bool tls)
{
	struct queue_conf qc;
	int st;

	queue_conf_defaults(&qc);
	snprintf(qc.dir, sizeof(qc.dir), "%s/spool", dir);
	qc.shards = 1;
	q = queue_open(&qc, &st);
	cr_assert_not_null(q, "queue_open: %d", st);
	pconf.queue = q;
	if (tls) {
		pconf.tls = sctx;
		pconf.engine.tls_available = true;
	}
	peer = smtp_service_create(w.b.ts, &pconf, &limits, NULL, tc.rcvbuf, 1, &w.b.ns.now_ns);
	cr_assert_not_null(peer);
}

/* ---- a scripted next hop on the peer's stack ---- */

struct script;
struct sconn {
	struct script *sc;
	struct tcp_conn *c;
	bool open, closing, in_data, tls_wait, tls_junk_sent, held_dot;
	struct tls_conn *tls;	/* real STARTTLS (script.starttls_real) */
	bool tls_up, had_tls;
	char line[2048];
	size_t llen;
	char body[64 * 1024];
	size_t blen;
	char log[16384];	/* every command line, CRLF-separated */
	size_t loglen;
	unsigned msgs, ehlos, quits;
};

struct script {
	const char *greeting;	/* NULL: say nothing at all */
	const char *ehlo;	/* the whole EHLO reply */
	bool starttls_junk;	/* 220 to STARTTLS, then non-TLS bytes */
	bool starttls_real;	/* 220 to STARTTLS, then a real TLS session */
	const char *inject;	/* plaintext sent right behind that 220 */
	bool hold_greeting;	/* greet only when the test says (script_greet) */
	bool hold_dot;		/* answer "." only when the test says */
	unsigned accepted, closed;
	struct sconn conn[16];
	struct tcp_listener *l;
};

#define EHLO_PLAIN "250-mx2.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n"
#define EHLO_TLS "250-mx2.test\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 ENHANCEDSTATUSCODES\r\n"

/* Ciphertext OpenSSL has for the client, into TCP. */
static void tls_out(struct sconn *k)
{
	char buf[4096];
	size_t n;

	while ((n = tls_take(k->tls, buf, sizeof(buf))) > 0)
		cr_assert_eq(tcp_send(k->c, buf, n), n, "script: send buffer full");
}

static void say(struct sconn *k, const char *s)
{
	if (k->closing)
		return;		/* it closed its side: nothing more from it */
	if (k->tls_up) {
		cr_assert_eq(tls_write(k->tls, s, strlen(s)), (ssize_t)strlen(s));
		tls_out(k);
		return;
	}
	cr_assert_eq(tcp_send(k->c, s, strlen(s)), strlen(s), "script: send buffer full");
}

static void script_close(struct sconn *k)
{
	k->closing = true;
	tcp_close(k->c);
}

static void logline(struct sconn *k, const char *l, size_t n)
{
	if (k->loglen + n + 2 < sizeof(k->log)) {
		memcpy(k->log + k->loglen, l, n);
		memcpy(k->log + k->loglen + n, "\r\n", 2);
		k->loglen += n + 2;
		k->log[k->loglen] = '\0';
	}
}

static bool cmd_is(const char *l, const char *c)
{
	return strncasecmp(l, c, strlen(c)) == 0;
}

/* One line from the client, without CRLF. */
static void script_line(struct sconn *k, char *l, size_t n)
{
	struct script *sc = k->sc;

	l[n] = '\0';
	if (k->in_data) {
		if (n == 1 && l[0] == '.') {
			k->in_data = false;
			k->msgs++;
			if (sc->hold_dot)
				k->held_dot = true;
			else
				say(k, "250 2.0.0 Ok: queued as S1\r\n");
			return;
		}
		if (l[0] == '.') {	/* undo the dot-stuffing */
			l++;
			n--;
		}
		cr_assert_lt(k->blen + n + 2, sizeof(k->body));
		memcpy(k->body + k->blen, l, n);
		memcpy(k->body + k->blen + n, "\r\n", 2);
		k->blen += n + 2;
		return;
	}
	logline(k, l, n);
	if (cmd_is(l, "EHLO")) {
		k->ehlos++;
		say(k, sc->ehlo ? sc->ehlo : EHLO_PLAIN);
	} else if (cmd_is(l, "HELO")) {
		say(k, "250 mx2.test\r\n");
	} else if (cmd_is(l, "MAIL FROM:")) {
		say(k, "250 2.1.0 Ok\r\n");
	} else if (cmd_is(l, "RCPT TO:<ok")) {
		say(k, "250 2.1.5 Ok\r\n");
	} else if (cmd_is(l, "RCPT TO:<tmp")) {
		say(k, "450 4.2.1 Mailbox busy, try later\r\n");
	} else if (cmd_is(l, "RCPT TO:<bad")) {
		say(k, "550 5.1.1 No such user\r\n");
	} else if (cmd_is(l, "DATA")) {
		k->in_data = true;
		k->blen = 0;
		say(k, "354 End data with <CR><LF>.<CR><LF>\r\n");
	} else if (cmd_is(l, "RSET") || cmd_is(l, "NOOP")) {
		say(k, "250 2.0.0 Ok\r\n");
	} else if (cmd_is(l, "STARTTLS") && sc->starttls_junk) {
		say(k, "220 2.0.0 Ready to start TLS\r\n");
		k->tls_wait = true;
	} else if (cmd_is(l, "STARTTLS") && sc->starttls_real && !k->tls) {
		char r[512];
		snprintf(r, sizeof(r), "220 2.0.0 Ready to start TLS\r\n%s",
			 sc->inject ? sc->inject : "");
		say(k, r);	/* one segment: the injection rides with the 220 */
		k->tls = tls_conn_new(sctx);
		cr_assert_not_null(k->tls);
	} else if (cmd_is(l, "QUIT")) {
		k->quits++;
		say(k, "221 2.0.0 Bye\r\n");
		script_close(k);
	} else {
		say(k, "502 5.5.2 Error: command not recognized\r\n");
	}
}

/* Bytes from the client (plaintext, or decrypted), cut into lines. */
static void script_bytes(struct sconn *k, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n') {
			size_t len = k->llen;
			if (len > 0 && k->line[len - 1] == '\r')
				len--;
			script_line(k, k->line, len);
			k->llen = 0;
			continue;
		}
		cr_assert_lt(k->llen, sizeof(k->line) - 1, "script: line too long");
		k->line[k->llen++] = p[i];
	}
}

static bool s_accept(void *lctx, struct tcp_conn *c)
{
	struct script *sc = lctx;
	struct sconn *k;

	if (sc->accepted == 16)
		return false;
	k = &sc->conn[sc->accepted++];
	memset(k, 0, sizeof(*k));
	k->sc = sc;
	k->c = c;
	k->open = true;
	tcp_set_user(c, k);
	if (sc->greeting && !sc->hold_greeting)
		say(k, sc->greeting);
	return true;
}

static void s_data(struct tcp_conn *c, void *user, struct rte_mbuf *m)
{
	struct sconn *k = user;

	if (!m) {
		if (!k->closing)
			script_close(k);
		return;
	}
	tcp_recved(c, rte_pktmbuf_pkt_len(m));
	if (k->tls) {
		char pt[4096];
		ssize_t n;
		for (struct rte_mbuf *s = m; s; s = s->next)
			cr_assert_eq(tls_feed(k->tls, rte_pktmbuf_mtod(s, const void *),
					      rte_pktmbuf_data_len(s)),
				     (ssize_t)rte_pktmbuf_data_len(s));
		rte_pktmbuf_free(m);
		if (!k->tls_up) {
			int h = tls_handshake(k->tls);
			tls_out(k);
			cr_assert_geq(h, 0, "script: handshake: %s", tls_error(k->tls));
			k->tls_up = h == 1;
			k->had_tls |= k->tls_up;
		}
		while (k->tls_up && (n = tls_read(k->tls, pt, sizeof(pt))) > 0)
			script_bytes(k, pt, (size_t)n);
		return;
	}
	if (k->tls_wait) {
		/* the client's ClientHello: answer with something that is not TLS */
		rte_pktmbuf_free(m);
		if (!k->tls_junk_sent)
			say(k, "HTTP/1.0 400 Bad Request\r\n\r\n");
		k->tls_junk_sent = true;
		return;
	}
	for (struct rte_mbuf *s = m; s; s = s->next)
		script_bytes(k, rte_pktmbuf_mtod(s, const char *), rte_pktmbuf_data_len(s));
	rte_pktmbuf_free(m);
}

static void s_closed(struct tcp_conn *c, void *user, enum tcp_close_reason why)
{
	struct sconn *k = user;

	(void)c;
	(void)why;
	k->open = false;
	k->c = NULL;
	k->sc->closed++;
	tls_conn_free(k->tls);
	k->tls = NULL;
	k->tls_up = false;
}

static const struct tcp_callbacks script_cb = {
	.accept = s_accept, .data = s_data, .closed = s_closed,
};

static void script_listen(struct script *sc, uint16_t p)
{
	sc->l = tcp_listen(w.b.ts, rte_cpu_to_be_16(p), &script_cb, sc);
	cr_assert_not_null(sc->l);
}

/* ---- the scheduler's side ---- */

static struct tjob *tjob_new(uint64_t id)
{
	struct tjob *t = calloc(1, sizeof(*t));

	cr_assert_not_null(t);
	cr_assert_lt(ntjobs, JOBS_MAX);
	tjobs[ntjobs++] = t;
	dlv_job_init(&t->j, id);
	snprintf(t->j.dest, sizeof(t->j.dest), "y.net");
	t->j.tls = SCT_NONE;
	cr_assert_eq(dlv_job_sender(&t->j, "a@x.org", NULL, 0, 0), 0);
	return t;
}

static void tjob_hop(struct tjob *t, const char *ip, uint16_t p, const char *mx)
{
	cr_assert_eq(dlv_job_hop(&t->j, tip(ip), p, mx), 0);
}

static void tjob_rcpt(struct tjob *t, const char *addr)
{
	cr_assert_eq(dlv_job_rcpt(&t->j, addr, NULL, 0), 0);
}

/* The body, cut into `pieces` iovecs at arbitrary places. */
static void tjob_body(struct tjob *t, const char *body, size_t len, unsigned pieces)
{
	size_t off = 0;

	cr_assert_leq(pieces, 8);
	t->copy = malloc(len + 1);
	memcpy(t->copy, body, len);
	for (unsigned i = 0; i < pieces; i++) {
		size_t n = i + 1 == pieces ? len - off : len / pieces + (i * 7) % 13;
		if (n > len - off)
			n = len - off;
		t->iov[i].iov_base = t->copy + off;
		t->iov[i].iov_len = n;
		off += n;
	}
	cr_assert_eq(dlv_job_body(&t->j, t->iov, pieces), 0);
}

static void tjob_body_str(struct tjob *t, const char *body, unsigned pieces)
{
	tjob_body(t, body, strlen(body), pieces);
}

/* A job for one scripted hop on port p with these recipients. */
static struct tjob *simple_job(uint64_t id, uint16_t p, const char *const *rcpts, unsigned n)
{
	static const char body[] = "Subject: t\r\n\r\nhello\r\n";
	struct tjob *t = tjob_new(id);

	tjob_hop(t, PEER, p, "mx2.test");
	for (unsigned i = 0; i < n; i++)
		tjob_rcpt(t, rcpts[i]);
	tjob_body(t, body, sizeof(body) - 1, 1);
	return t;
}

static void submit(struct tjob *t)
{
	cr_assert_eq(dlv_submit(port, &t->j), 0);
}

/* One round: frames both ways, the lcore's poll, the peer's completions,
 * and (unless the test plays a slow scheduler) the results. */
static unsigned step(void)
{
	unsigned k = twire_pump(&w);

	k += dlv_poll(dlv);
	if (peer)
		k += smtp_service_poll(peer, w.b.ns.now_ns);
	if (reaping) {
		unsigned n = dlv_reap(port, ev + nev, EV_MAX - nev);
		nev += n;
		k += n;
	}
	return k;
}

static bool run_until(bool (*cond)(const void *), const void *arg)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		unsigned k = step();
		if (cond(arg))
			return true;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > 10)
			return false;
		if (k == 0)
			usleep(200);	/* the peer's queue writer is syncing */
	}
}

/* Let virtual time pass in steps, with everything moving. */
static void advance(uint64_t ns)
{
	for (uint64_t done = 0; done < ns; done += 100 * NS_PER_MS) {
		twire_advance(&w, 100 * NS_PER_MS);
		step();
	}
}

static bool has_result(const void *arg)
{
	for (unsigned i = 0; i < nev; i++)
		if (ev[i].job == arg)
			return true;
	return false;
}

static bool has_close(const void *arg)
{
	uint64_t want = *(const uint64_t *)arg;
	for (unsigned i = 0; i < nev; i++)
		if (!ev[i].job && ev[i].closed_key == want)
			return true;
	return false;
}

static unsigned count_results(const struct dlv_job *j)
{
	unsigned n = 0;
	for (unsigned i = 0; i < nev; i++)
		n += ev[i].job == j;
	return n;
}

static const struct dlv_result *wait_result(struct tjob *t)
{
	cr_assert(run_until(has_result, &t->j), "no result for job %llu",
		  (unsigned long long)t->j.id);
	cr_assert_eq(count_results(&t->j), 1, "a job came back twice");
	return &t->j.res;
}

/* Advance virtual time until the job's result is in (at most max_ns). */
static const struct dlv_result *wait_result_timed(struct tjob *t, uint64_t max_ns)
{
	for (uint64_t done = 0; done < max_ns && !has_result(&t->j); done += 100 * NS_PER_MS) {
		twire_advance(&w, 100 * NS_PER_MS);
		step();
	}
	cr_assert(has_result(&t->j), "no result for job %llu after %llu ms",
		  (unsigned long long)t->j.id, (unsigned long long)(max_ns / NS_PER_MS));
	return &t->j.res;
}

static uint64_t gauge(int which)
{
	uint64_t g[3] = { 0, 0, 0 };
	dlv_gauges(dlv, &g[0], &g[1], &g[2]);
	return g[which];
}

/* The one message in the peer's queue for y.net: its stored body. */
static size_t stored_body(char *buf, size_t cap)
{
	uint64_t ids[4];
	size_t n = 0, len = 0;

	cr_assert_eq(queue_list_domain(q, "y.net", 0, ids, 4, &n), QUEUE_OK);
	cr_assert_eq(n, 1, "%zu messages stored", n);
	cr_assert_eq(queue_read_body(q, 0, ids[0], buf, cap, &len), QUEUE_OK);
	cr_assert_leq(len, cap);
	return len;
}

/* ---- tests ---- */

/* A body with dot-lines, a bare "." line and one line of 998 octets. */
static size_t make_body(char *b, size_t cap, size_t lines)
{
	size_t n = 0;

	n += (size_t)snprintf(b + n, cap - n, "Subject: dots\r\nFrom: a@x.org\r\n\r\n");
	for (size_t i = 0; i < lines; i++) {
		switch (i % 5) {
		case 0: n += (size_t)snprintf(b + n, cap - n, ".leading dot %zu\r\n", i); break;
		case 1: n += (size_t)snprintf(b + n, cap - n, ".\r\n"); break;
		case 2: n += (size_t)snprintf(b + n, cap - n, "..two dots\r\n"); break;
		case 3: memset(b + n, 'x', 998); memcpy(b + n + 998, "\r\n", 2); n += 1000; break;
		default: n += (size_t)snprintf(b + n, cap - n, "plain line %zu\r\n", i); break;
		}
		cr_assert_lt(n + 1100, cap);
	}
	return n;
}

static void byte_exact(bool chunking, size_t lines, unsigned pieces)
{
	static char body[256 * 1024], got[300 * 1024];
	size_t blen = make_body(body, sizeof(body), lines), glen;
	const struct dlv_result *r;
	struct tjob *t;

	dconf.client.chunking = chunking;
	start_peer(false);
	start();
	t = tjob_new(1);
	tjob_hop(t, PEER, 25, "mx.test");
	tjob_rcpt(t, "b@y.net");
	tjob_rcpt(t, "c@y.net");
	tjob_rcpt(t, "d@y.net");
	tjob_body(t, body, blen, pieces);
	submit(t);
	r = wait_result(t);
	cr_assert_str_eq(r->msg.status, "2.0.0", "%d %s %s", r->msg.code, r->msg.status,
			 r->msg.text);
	cr_expect_eq(r->msg.code, 250);
	for (unsigned i = 0; i < 3; i++)
		cr_expect_eq(r->rcpt[i].code, 250, "rcpt %u: %s", i, r->rcpt[i].text);
	cr_expect_not(r->site_failure);
	cr_expect_not(r->local);
	cr_expect_eq(r->hop, 0);
	cr_expect_str_eq(r->relay, "mx.test[198.18.0.3]:25");
	cr_expect_eq(r->conn_key, 0, "keep_idle_ms 0: QUIT");
	cr_expect_eq(r->conn_messages, 1);
	cr_expect(r->peer_dsn);

	glen = stored_body(got, sizeof(got));
	cr_assert_gt(glen, blen);
	cr_expect(strncmp(got, "Received: ", 10) == 0);
	cr_assert_eq(memcmp(got + glen - blen, body, blen), 0, "the stored body differs");
	cr_expect_eq(dlv_get_stats(dlv)->body_bytes, blen);
	cr_expect_eq(dlv_client_stats(dlv)->bdat, chunking ? 1 : 0);
	/* QUIT went, the slot is free */
	cr_expect_eq(gauge(0), 0);
	cr_expect_eq(gauge(2), 0);
}

Test(delivery, data_is_byte_exact_with_dot_stuffing_undone)
{
	byte_exact(false, 200, 3);
	cr_expect_gt(dlv_client_stats(dlv)->dots, 0, "dot-stuffing happened");
}

Test(delivery, bdat_is_byte_exact)
{
	byte_exact(true, 1000, 7);
}

Test(delivery, mixed_recipient_results)
{
	static struct script sc = { .greeting = "220 mx2.test ESMTP\r\n" };
	static const char *const rc[] = { "ok1@y.net", "tmp1@y.net", "bad1@y.net", "ok2@y.net" };
	const struct dlv_result *r;
	struct tjob *t;

	memset(&sc.conn, 0, sizeof(sc.conn));
	sc.accepted = sc.closed = 0;
	script_listen(&sc, 2525);
	start();
	t = simple_job(1, 2525, rc, 4);
	submit(t);
	r = wait_result(t);
	cr_expect_eq(r->rcpt[0].code, 250);
	cr_expect_str_eq(r->rcpt[0].status, "2.0.0");	/* the end-of-data reply */
	cr_expect_eq(r->rcpt[1].code, 450);
	cr_expect_str_eq(r->rcpt[1].status, "4.2.1");
	cr_expect_str_eq(r->rcpt[1].text, "450 4.2.1 Mailbox busy, try later");
	cr_expect_str_eq(r->rcpt[1].stage, "RCPT TO");
	cr_expect_eq(r->rcpt[2].code, 550);
	cr_expect_str_eq(r->rcpt[2].status, "5.1.1");
	cr_expect_eq(r->rcpt[3].code, 250);
	cr_expect_eq(r->msg.code, 250);
	cr_expect_not(r->site_failure);
	cr_expect_not(r->peer_dsn);
	cr_expect_eq(sc.conn[0].msgs, 1);
	cr_expect_str_eq(sc.conn[0].body, "Subject: t\r\n\r\nhello\r\n");
	cr_expect_not_null(strstr(sc.conn[0].log, "MAIL FROM:<a@x.org>"), "%s", sc.conn[0].log);
	cr_expect_eq(dlv_get_stats(dlv)->msg_sent, 1);
	cr_expect_eq(dlv_client_stats(dlv)->rcpt_temp, 1);
	cr_expect_eq(dlv_client_stats(dlv)->rcpt_perm, 1);
}

Test(delivery, refused_first_hop_then_the_second_answers)
{
	static struct script sc = { .greeting = "220 mx2.test ESMTP\r\n" };
	static const char *const rc[] = { "ok1@y.net" };
	const struct dlv_result *r;
	struct tjob *t;

	memset(&sc.conn, 0, sizeof(sc.conn));
	sc.accepted = sc.closed = 0;
	script_listen(&sc, 2525);
	start();
	t = tjob_new(1);
	tjob_hop(t, PEER, 2600, "mx1.test");	/* nothing listens: RST */
	tjob_hop(t, PEER, 2525, "mx2.test");
	tjob_rcpt(t, rc[0]);
	tjob_body_str(t, "x\r\n", 1);
	submit(t);
	r = wait_result(t);
	cr_expect_eq(r->msg.code, 250, "%s", r->msg.text);
	cr_expect_eq(r->hop, 1);
	cr_expect_str_eq(r->relay, "mx2.test[198.18.0.3]:2525");
	cr_expect_not(r->site_failure);
	cr_expect_eq(dlv_get_stats(dlv)->connect_refused, 1);
	cr_expect_eq(dlv_get_stats(dlv)->hop_failovers, 1);
	cr_expect_eq(dlv_get_stats(dlv)->connects, 2);
	cr_expect_eq(sc.conn[0].msgs, 1);
}

/* IPv6 next hops: a refused IPv6 hop, then the next hop's family (IPv4)
 * answers (the fallback the router's address order relies on); and a
 * transaction carried over IPv6, its relay text with the IPv6 address. */
Test(delivery, ipv6_hop_refused_falls_back_then_ipv6_delivers)
{
	static struct script sc = { .greeting = "220 mx.test ESMTP\r\n" };
	const struct dlv_result *r;
	struct net_addr b6 = tip6(3);
	struct tjob *t;

	memset(&sc.conn, 0, sizeof(sc.conn));
	sc.accepted = sc.closed = 0;
	script_listen(&sc, 2525);
	start();
	t = tjob_new(1);
	cr_assert_eq(dlv_job_hop_addr(&t->j, &b6, 2600, "mx6.test"), 0);	/* RST */
	tjob_hop(t, PEER, 2525, "mx4.test");
	tjob_rcpt(t, "ok1@y.net");
	tjob_body_str(t, "x\r\n", 1);
	submit(t);
	r = wait_result(t);
	cr_expect_eq(r->msg.code, 250, "%s", r->msg.text);
	cr_expect_eq(r->hop, 1);
	cr_expect_str_eq(r->relay, "mx4.test[198.18.0.3]:2525");
	cr_expect_eq(dlv_get_stats(dlv)->connect_refused, 1);
	cr_expect_eq(dlv_get_stats(dlv)->hop_failovers, 1);

	t = tjob_new(2);
	cr_assert_eq(dlv_job_hop_addr(&t->j, &b6, 2525, "mx6.test"), 0);
	tjob_rcpt(t, "ok2@y.net");
	tjob_body_str(t, "y\r\n", 1);
	submit(t);
	r = wait_result(t);
	cr_expect_eq(r->msg.code, 250, "%s", r->msg.text);
	cr_expect_eq(r->hop, 0);
	cr_expect_str_eq(r->relay, "mx6.test[fd00:5c::3]:2525");
	cr_expect_eq(sc.accepted, 2, "one connection per family");
}

/* An IPv6 hop that never answers (no neighbour: the SYN never leaves) is
 * timed out on virtual time, then the IPv4 hop delivers in the same job. */
Test(delivery, ipv6_hop_timed_out_then_ipv4_delivers)
{
	static struct script sc = { .greeting = "220 mx4.test ESMTP\r\n" };
	const uint8_t nobody[16] = { 0xfd, 0x00, 0x00, 0x5c, [15] = 0x77 };
	struct net_addr gone = net_addr_v6(nobody);
	const struct dlv_result *r;
	struct tjob *t;

	memset(&sc.conn, 0, sizeof(sc.conn));
	sc.accepted = sc.closed = 0;
	script_listen(&sc, 2525);
	start();
	t = tjob_new(1);
	cr_assert_eq(dlv_job_hop_addr(&t->j, &gone, 25, "mx6.test"), 0);
	tjob_hop(t, PEER, 2525, "mx4.test");
	tjob_rcpt(t, "ok1@y.net");
	tjob_body_str(t, "x\r\n", 1);
	submit(t);
	for (int i = 0; i < 20; i++)
		step();
	cr_assert_not(has_result(&t->j), "waiting on the IPv6 hop");
	cr_assert_eq(sc.accepted, 0, "the IPv4 hop is not tried yet");
	r = wait_result_timed(t, 60 * 1000 * NS_PER_MS);
	cr_expect_eq(r->msg.code, 250, "%s", r->msg.text);
	cr_expect_eq(r->hop, 1);
	cr_expect_str_eq(r->relay, "mx4.test[198.18.0.3]:2525");
	cr_expect_eq(dlv_get_stats(dlv)->connect_timeouts, 1);
	cr_expect_eq(dlv_get_stats(dlv)->hop_failovers, 1);
	cr_expect_eq(sc.accepted, 1);
}

Test(delivery, refused_on_every_hop_is_a_site_failure)
{
	const struct dlv_result *r;
	struct tjob *t;

	start();
	t = tjob_new(1);
	tjob_hop(t, PEER, 2600, "mx1.test");
	tjob_hop(t, PEER, 2601, "mx2.test");
	tjob_rcpt(t, "a@y.net");
	tjob_rcpt(t, "b@y.net");
	tjob_body_str(t, "x\r\n", 1);
	submit(t);
	r = wait_result(t);
	cr_expect(r->site_failure);
	cr_expect_not(r->local);
	cr_expect_eq(r->msg.code, 0);
	cr_expect_str_eq(r->msg.status, "4.4.1");
	cr_expect_str_eq(r->msg.text, "connect to mx2.test[198.18.0.3]:2601: connection refused");
	cr_expect_str_eq(r->relay, "none");
	cr_expect_eq(r->hop, -1);
	for (unsigned i = 0; i < 2; i++)
		cr_expect_str_eq(r->rcpt[i].status, "4.4.1");
	cr_expect_eq(dlv_get_stats(dlv)->connect_refused, 2);
	cr_expect_eq(dlv_get_stats(dlv)->site_failures, 1);
	cr_expect_eq(gauge(0), 0);
}

Test(delivery, greeting_421_is_a_site_failure_and_the_next_hop_is_tried)
{
	static struct script busy = { .greeting = "421 4.3.2 mx1.test busy, try later\r\n" };
	static struct script ok = { .greeting = "220 mx2.test ESMTP\r\n" };
	static const char *const rc[] = { "ok1@y.net" };
	const struct dlv_result *r;
	struct tjob *t, *t2;

	memset(&busy.conn, 0, sizeof(busy.conn));
	memset(&ok.conn, 0, sizeof(ok.conn));
	busy.accepted = ok.accepted = busy.closed = ok.closed = 0;
	script_listen(&busy, 2524);
	script_listen(&ok, 2525);
	start();
	/* alone: the 421 is the result */
	t = simple_job(1, 2524, rc, 1);
	submit(t);
	r = wait_result(t);
	cr_expect(r->site_failure);
	cr_expect_eq(r->msg.code, 421);
	cr_expect_str_eq(r->msg.status, "4.3.2");
	cr_expect_str_eq(r->msg.stage, "greeting");
	cr_expect_str_eq(r->relay, "mx2.test[198.18.0.3]:2524", "it answered, with a 421");
	cr_expect_eq(r->rcpt[0].code, 421);
	/* with a second hop: it delivers */
	t2 = tjob_new(2);
	tjob_hop(t2, PEER, 2524, "mx1.test");
	tjob_hop(t2, PEER, 2525, "mx2.test");
	tjob_rcpt(t2, rc[0]);
	tjob_body_str(t2, "x\r\n", 1);
	submit(t2);
	r = wait_result(t2);
	cr_expect_eq(r->msg.code, 250, "%s", r->msg.text);
	cr_expect_not(r->site_failure);
	cr_expect_eq(r->hop, 1);
	cr_expect_eq(busy.accepted, 2);
	cr_expect_eq(ok.conn[0].msgs, 1);
}

Test(delivery, stalled_hops_are_timed_out)
{
	static struct script silent = { .greeting = NULL };
	const struct dlv_result *r;
	struct tjob *t;

	memset(&silent.conn, 0, sizeof(silent.conn));
	silent.accepted = silent.closed = 0;
	script_listen(&silent, 2526);
	start();
	t = tjob_new(1);
	tjob_hop(t, PEER, 2526, "mx1.test");		/* accepts, never greets */
	tjob_hop(t, "198.18.0.77", 25, "mx2.test");	/* nobody: no ARP answer */
	tjob_rcpt(t, "a@y.net");
	tjob_body_str(t, "x\r\n", 1);
	submit(t);
	for (int i = 0; i < 20; i++)
		step();
	cr_assert_eq(silent.accepted, 1);
	cr_assert_not(has_result(&t->j));
	advance(2500 * NS_PER_MS);
	cr_assert_not(has_result(&t->j), "t_greeting is 3 s");
	r = wait_result_timed(t, 3500 * NS_PER_MS);
	cr_expect(r->site_failure);
	cr_expect_str_eq(r->msg.status, "4.4.1");
	cr_expect_str_eq(r->msg.text, "connect to mx2.test[198.18.0.77]:25: connection timed out");
	cr_expect_str_eq(r->relay, "mx1.test[198.18.0.3]:2526", "the hop that answered TCP");
	cr_expect_eq(dlv_get_stats(dlv)->timeouts, 2);
	cr_expect_eq(dlv_get_stats(dlv)->connect_timeouts, 1);
	cr_expect_eq(dlv_get_stats(dlv)->hop_failovers, 1);
	cr_expect_eq(dlv_client_stats(dlv)->timeouts, 2);
	cr_expect_geq(tcp_stack_stats(w.a.ts)->app_timers, 2, "deadlines on the timer wheel");
	step();
	cr_expect_eq(silent.closed, 1, "the silent hop's connection was reset");
	cr_expect_eq(gauge(0), 0);
}

Test(delivery, timings_measure_setup_and_transmission)
{
	static struct script sc = { .greeting = "220 mx2.test ESMTP\r\n", .hold_greeting = true,
				    .hold_dot = true };
	static const char *const rc[] = { "ok1@y.net" };
	const struct dlv_result *r;
	struct tjob *t;

	memset(&sc.conn, 0, sizeof(sc.conn));
	sc.accepted = sc.closed = 0;
	script_listen(&sc, 2525);
	start();
	t = simple_job(1, 2525, rc, 1);
	submit(t);
	for (int i = 0; i < 20; i++)
		step();
	cr_assert_eq(sc.accepted, 1);
	advance(700 * NS_PER_MS);
	say(&sc.conn[0], sc.greeting);
	for (int i = 0; i < 20 && !sc.conn[0].held_dot; i++)
		step();
	cr_assert(sc.conn[0].held_dot);
	advance(400 * NS_PER_MS);
	say(&sc.conn[0], "250 2.0.0 Ok\r\n");
	r = wait_result(t);
	cr_expect_eq(r->msg.code, 250);
	cr_expect_geq(r->t_conn_ns, 700 * NS_PER_MS, "%llu", (unsigned long long)r->t_conn_ns);
	cr_expect_lt(r->t_conn_ns, 1000 * NS_PER_MS);
	cr_expect_geq(r->t_xmit_ns, 400 * NS_PER_MS, "%llu", (unsigned long long)r->t_xmit_ns);
	cr_expect_lt(r->t_xmit_ns, 700 * NS_PER_MS);
}

Test(delivery, connection_is_reused_and_its_idle_close_reported)
{
	static struct script sc = { .greeting = "220 mx2.test ESMTP\r\n" };
	static const char *const rc[] = { "ok1@y.net" };
	const struct dlv_result *r;
	struct tjob *t1, *t2;
	uint64_t k;

	memset(&sc.conn, 0, sizeof(sc.conn));
	sc.accepted = sc.closed = 0;
	script_listen(&sc, 2525);
	start();
	t1 = simple_job(1, 2525, rc, 1);
	t1->j.keep_idle_ms = 10000;
	submit(t1);
	r = wait_result(t1);
	cr_assert_eq(r->msg.code, 250);
	k = r->conn_key;
	cr_assert_neq(k, 0, "kept idle");
	cr_expect_eq(r->conn_messages, 1);
	cr_expect_not(r->reused);
	cr_expect_eq(gauge(1), 1, "one idle");

	t2 = simple_job(2, 2525, rc, 1);
	t2->j.conn_key = k;
	t2->j.keep_idle_ms = 1000;
	submit(t2);
	r = wait_result(t2);
	cr_assert_eq(r->msg.code, 250, "%s", r->msg.text);
	cr_expect(r->reused);
	cr_expect_eq(r->conn_key, k, "the same connection, idle again");
	cr_expect_eq(r->conn_messages, 2);
	cr_expect_eq(r->t_conn_ns, 0);
	cr_expect_str_eq(r->relay, "mx2.test[198.18.0.3]:2525");
	cr_expect_eq(r->hop, 0);
	cr_expect_eq(sc.accepted, 1, "one connection for both");
	cr_expect_eq(sc.conn[0].ehlos, 1);
	cr_expect_eq(sc.conn[0].msgs, 2);
	cr_expect_null(strstr(sc.conn[0].log, "RSET"), "RSET-free reuse: %s", sc.conn[0].log);
	cr_expect_eq(dlv_get_stats(dlv)->reuse, 1);

	/* the idle time runs out: QUIT, closed, reported */
	advance(700 * NS_PER_MS);
	cr_expect_not(has_close(&k), "1 s idle, not yet");
	advance(500 * NS_PER_MS);
	cr_assert(has_close(&k), "no close event for the idle connection");
	cr_expect_eq(sc.conn[0].quits, 1);
	cr_expect_eq(dlv_get_stats(dlv)->idle_expired, 1);
	cr_expect_eq(dlv_get_stats(dlv)->close_events, 1);
	cr_expect_eq(gauge(0), 0);
	cr_expect_eq(gauge(1), 0);
	/* a close event comes after the result that announced the key */
	for (unsigned i = 0; i < nev; i++)
		if (!ev[i].job) {
			cr_expect_gt(i, 1);
			cr_expect_eq(ev[i].closed_key, k);
		}
}

Test(delivery, next_hop_closing_an_idle_connection_is_reported)
{
	static struct script sc = { .greeting = "220 mx2.test ESMTP\r\n" };
	static const char *const rc[] = { "ok1@y.net" };
	const struct dlv_result *r;
	struct tjob *t1;
	uint64_t k;

	memset(&sc.conn, 0, sizeof(sc.conn));
	sc.accepted = sc.closed = 0;
	script_listen(&sc, 2525);
	start();
	t1 = simple_job(1, 2525, rc, 1);
	t1->j.keep_idle_ms = 60000;
	submit(t1);
	r = wait_result(t1);
	k = r->conn_key;
	cr_assert_neq(k, 0);
	/* its own timeout: "421", then it closes */
	say(&sc.conn[0], "421 4.4.2 mx2.test Error: timeout exceeded\r\n");
	script_close(&sc.conn[0]);
	cr_assert(run_until(has_close, &k));
	cr_expect_eq(dlv_get_stats(dlv)->idle_peer_closed, 1);
	cr_expect_eq(gauge(1), 0);
}

/* The next hop reset an idle connection just as a job was lent to it: the
 * job notices on its first command and goes over a new connection. */
Test(delivery, dead_reused_connection_is_replaced)
{
	static struct script sc = { .greeting = "220 mx2.test ESMTP\r\n" };
	static const char *const rc[] = { "ok1@y.net" };
	const struct dlv_result *r;
	struct tjob *t1, *t2;

	memset(&sc.conn, 0, sizeof(sc.conn));
	sc.accepted = sc.closed = 0;
	script_listen(&sc, 2525);
	start();
	t1 = simple_job(1, 2525, rc, 1);
	t1->j.keep_idle_ms = 60000;
	submit(t1);
	r = wait_result(t1);
	cr_assert_neq(r->conn_key, 0);
	tcp_abort(sc.conn[0].c);	/* its RST waits on the wire... */
	sc.conn[0].c = NULL;
	sc.conn[0].open = false;
	t2 = simple_job(2, 2525, rc, 1);
	t2->j.conn_key = r->conn_key;
	submit(t2);
	cr_assert_eq(dlv_poll(dlv), 1);	/* ...while MAIL goes out on the idle one */
	cr_assert_eq(dlv_get_stats(dlv)->reuse, 1);
	r = wait_result(t2);
	cr_expect_eq(r->msg.code, 250, "%s", r->msg.text);
	cr_expect_not(r->reused);
	cr_expect_not(r->site_failure);
	cr_expect_eq(dlv_get_stats(dlv)->reuse_retries, 1);
	cr_expect_eq(sc.accepted, 2);
	cr_expect_eq(sc.conn[1].msgs, 1);
}

Test(delivery, starttls_under_may)
{
	static char got[8192];
	const struct dlv_result *r;
	struct tjob *t;
	size_t n;

	start_peer(true);
	start();
	t = tjob_new(1);
	t->j.tls = SCT_MAY;
	tjob_hop(t, PEER, 25, "mx.test");
	tjob_rcpt(t, "b@y.net");
	tjob_body_str(t, "Subject: tls\r\n\r\nover TLS\r\n", 2);
	submit(t);
	r = wait_result(t);
	cr_assert_eq(r->msg.code, 250, "%s %s", r->msg.status, r->msg.text);
	cr_expect(r->tls);
	cr_expect_not(r->tls_failed);
	cr_expect_not_null(strstr(r->tls_info, "TLSv1.3"), "%s", r->tls_info);
	cr_expect_not_null(strstr(r->tls_info, "peer: "), "%s", r->tls_info);
	cr_expect_eq(dlv_get_stats(dlv)->tls_handshakes, 1);
	cr_expect_eq(smtp_service_get_stats(peer)->tls_handshakes, 1);
	n = stored_body(got, sizeof(got) - 1);
	got[n] = '\0';
	cr_expect_not_null(strstr(got, "ESMTPS"), "the peer saw TLS: %s", got);
	cr_expect_not_null(strstr(got, "over TLS\r\n"));
}

/* A TLS connection kept idle and reused: one handshake for two messages,
 * the second transaction over the same TLS session. */
Test(delivery, tls_connection_is_reused)
{
	const struct dlv_result *r;
	struct tjob *t1, *t2;
	uint64_t ids[4];
	size_t n = 0;

	start_peer(true);
	start();
	t1 = tjob_new(1);
	t1->j.tls = SCT_MAY;
	t1->j.keep_idle_ms = 30000;
	tjob_hop(t1, PEER, 25, "mx.test");
	tjob_rcpt(t1, "b@y.net");
	tjob_body_str(t1, "Subject: one\r\n\r\n1\r\n", 1);
	submit(t1);
	r = wait_result(t1);
	cr_assert_eq(r->msg.code, 250, "%s", r->msg.text);
	cr_assert(r->tls);
	cr_assert_neq(r->conn_key, 0);
	for (int i = 0; i < 50; i++)
		step();
	cr_assert_eq(gauge(1), 1, "still idle");
	t2 = tjob_new(2);
	t2->j.tls = SCT_MAY;
	t2->j.conn_key = r->conn_key;
	tjob_hop(t2, PEER, 25, "mx.test");
	tjob_rcpt(t2, "c@y.net");
	tjob_body_str(t2, "Subject: two\r\n\r\n2\r\n", 1);
	submit(t2);
	r = wait_result(t2);
	cr_assert_eq(r->msg.code, 250, "%s", r->msg.text);
	cr_expect(r->reused);
	cr_expect(r->tls);
	cr_expect_not_null(strstr(r->tls_info, "TLSv1.3"), "%s", r->tls_info);
	cr_expect_eq(r->conn_messages, 2);
	cr_expect_eq(smtp_service_get_stats(peer)->tls_handshakes, 1);
	cr_expect_eq(smtp_service_get_stats(peer)->accepted, 1);
	cr_expect_eq(dlv_get_stats(dlv)->idle_peer_closed, 0);
	cr_assert_eq(queue_list_domain(q, "y.net", 0, ids, 4, &n), QUEUE_OK);
	cr_expect_eq(n, 2);
}

Test(delivery, failed_handshake_under_may_is_reported)
{
	static struct script junk = { .greeting = "220 mx1.test ESMTP\r\n", .ehlo = EHLO_TLS,
				      .starttls_junk = true };
	static struct script ok = { .greeting = "220 mx2.test ESMTP\r\n" };
	const struct dlv_result *r;
	struct tjob *t;

	memset(&junk.conn, 0, sizeof(junk.conn));
	memset(&ok.conn, 0, sizeof(ok.conn));
	junk.accepted = ok.accepted = junk.closed = ok.closed = 0;
	script_listen(&junk, 2527);
	script_listen(&ok, 2525);
	start();
	t = tjob_new(1);
	t->j.tls = SCT_MAY;
	tjob_hop(t, PEER, 2527, "mx1.test");
	tjob_hop(t, PEER, 2525, "mx2.test");
	tjob_rcpt(t, "ok1@y.net");
	tjob_body_str(t, "x\r\n", 1);
	submit(t);
	r = wait_result(t);
	cr_expect(r->tls_failed);
	cr_expect_not(r->tls);
	cr_expect_str_eq(r->msg.status, "4.7.5", "%s", r->msg.text);
	cr_expect_not_null(strstr(r->msg.text, "TLS handshake failed"), "%s", r->msg.text);
	cr_expect_eq(r->rcpt[0].code, 0);
	cr_expect(junk.conn[0].tls_junk_sent, "the handshake was tried");
	cr_expect_eq(ok.accepted, 0, "under may the scheduler retries in plaintext, not the next hop");
	cr_expect_eq(dlv_get_stats(dlv)->tls_failures, 1);
	/* the scheduler's plaintext retry */
	t = tjob_new(2);
	t->j.tls = SCT_NONE;
	tjob_hop(t, PEER, 2527, "mx1.test");
	tjob_rcpt(t, "ok1@y.net");
	tjob_body_str(t, "x\r\n", 1);
	submit(t);
	r = wait_result(t);
	cr_expect_eq(r->msg.code, 250, "%s", r->msg.text);
	cr_expect_null(strstr(junk.conn[1].log, "STARTTLS"), "%s", junk.conn[1].log);
}

/* Plaintext a next hop (or a man in the middle) sends right behind its
 * "220" to STARTTLS must not reach TLS or the engine: the handshake and the
 * delivery go on as if it were not there. */
Test(delivery, plaintext_after_the_starttls_220_is_dropped)
{
	static struct script sc = { .greeting = "220 mx2.test ESMTP\r\n", .ehlo = EHLO_TLS,
				    .starttls_real = true,
				    .inject = "250-mx2.test\r\n250 PIPELINING\r\n" };
	const struct dlv_result *r;
	struct tjob *t;

	memset(&sc.conn, 0, sizeof(sc.conn));
	sc.accepted = sc.closed = 0;
	script_listen(&sc, 2528);
	start();
	t = tjob_new(1);
	t->j.tls = SCT_ENCRYPT;
	tjob_hop(t, PEER, 2528, "mx2.test");
	tjob_rcpt(t, "ok1@y.net");
	tjob_body_str(t, "Subject: s\r\n\r\nsecret\r\n", 1);
	submit(t);
	r = wait_result(t);
	cr_assert_eq(r->msg.code, 250, "%s %s", r->msg.status, r->msg.text);
	cr_expect(r->tls);
	cr_expect(sc.conn[0].had_tls);
	cr_expect_eq(sc.conn[0].ehlos, 2, "EHLO again over TLS");
	cr_expect_str_eq(sc.conn[0].body, "Subject: s\r\n\r\nsecret\r\n");
	cr_expect_eq(dlv_get_stats(dlv)->tls_handshakes, 1);
}

Test(delivery, encrypt_without_starttls_is_4_7_4)
{
	static struct script sc = { .greeting = "220 mx2.test ESMTP\r\n" };
	const struct dlv_result *r;
	struct tjob *t;

	memset(&sc.conn, 0, sizeof(sc.conn));
	sc.accepted = sc.closed = 0;
	script_listen(&sc, 2525);
	start();
	t = tjob_new(1);
	t->j.tls = SCT_ENCRYPT;
	tjob_hop(t, PEER, 2525, "mx2.test");
	tjob_rcpt(t, "ok1@y.net");
	tjob_body_str(t, "secret\r\n", 1);
	submit(t);
	r = wait_result(t);
	cr_expect_str_eq(r->msg.status, "4.7.4", "%s", r->msg.text);
	cr_expect_eq(r->rcpt[0].status[0], '4');
	cr_expect(r->site_failure);
	cr_expect_not(r->tls);
	cr_expect_null(strstr(sc.conn[0].log, "MAIL"), "nothing sent in plaintext: %s",
		       sc.conn[0].log);
	cr_expect_eq(sc.conn[0].msgs, 0);
	cr_expect_eq(sc.conn[0].quits, 1);
}

Test(delivery, verify_checks_the_name)
{
	static char got[8192];
	const struct dlv_result *r;
	struct tjob *t;

	start_peer(true);
	start();
	t = tjob_new(1);
	t->j.tls = SCT_VERIFY;
	snprintf(t->j.tls_name, sizeof(t->j.tls_name), "wrong.test");
	tjob_hop(t, PEER, 25, "mx.test");
	tjob_rcpt(t, "b@y.net");
	tjob_body_str(t, "x\r\n", 1);
	submit(t);
	r = wait_result(t);
	cr_expect_str_eq(r->msg.status, "4.7.5", "%s", r->msg.text);
	cr_expect_not_null(strstr(r->msg.text, "hostname mismatch"), "%s", r->msg.text);
	cr_expect(r->tls_failed);
	cr_expect_eq(r->rcpt[0].status[0], '4');
	{
		uint64_t ids[4];
		size_t n = 9;
		cr_expect_eq(queue_list_domain(q, "y.net", 0, ids, 4, &n), QUEUE_OK);
		cr_expect_eq(n, 0, "nothing was delivered");
	}

	/* the right name (the hop's mx): verified, delivered */
	t = tjob_new(2);
	t->j.tls = SCT_VERIFY;
	tjob_hop(t, PEER, 25, "mx.test");
	tjob_rcpt(t, "b@y.net");
	tjob_body_str(t, "x\r\n", 1);
	submit(t);
	r = wait_result(t);
	cr_assert_eq(r->msg.code, 250, "%s %s", r->msg.status, r->msg.text);
	cr_expect(r->tls);
	cr_expect_not_null(strstr(r->tls_info, "peer: verified (subject CN=mx.test)"), "%s",
			   r->tls_info);
	stored_body(got, sizeof(got));
}

Test(delivery, too_many_connections_waits_then_fails_locally)
{
	static struct script silent = { .greeting = NULL };
	static struct script ok = { .greeting = "220 mx2.test ESMTP\r\n" };
	static const char *const rc[] = { "ok1@y.net" };
	const struct dlv_result *r;
	struct tjob *a, *b, *c, *d;

	memset(&silent.conn, 0, sizeof(silent.conn));
	memset(&ok.conn, 0, sizeof(ok.conn));
	silent.accepted = ok.accepted = silent.closed = ok.closed = 0;
	script_listen(&silent, 2526);
	script_listen(&ok, 2525);
	dconf.max_conns = 1;
	dconf.max_idle = 1;
	dconf.client.t_greeting_ns = 5 * NS_PER_SEC;
	start();
	/* the one slot goes to a quick job; the next waits for it */
	a = simple_job(1, 2525, rc, 1);
	b = simple_job(2, 2525, rc, 1);
	submit(a);
	submit(b);
	r = wait_result(b);
	cr_expect_eq(r->msg.code, 250);
	cr_expect_eq(a->j.res.msg.code, 250);
	cr_expect_eq(dlv_get_stats(dlv)->jobs_waited, 1);

	/* a stalled job holds the slot: the next waits t_connect, then comes
	 * back local, and nothing else is taken meanwhile */
	c = simple_job(3, 2526, rc, 1);
	d = simple_job(4, 2525, rc, 1);
	submit(c);
	submit(d);
	for (int i = 0; i < 20; i++)
		step();
	cr_expect_eq(gauge(2), 2, "c in a session, d waiting");
	r = wait_result_timed(d, 2500 * NS_PER_MS);
	cr_expect(r->local);
	cr_expect_not(r->site_failure);
	cr_expect_str_eq(r->msg.status, "4.3.2");
	cr_expect_not_null(strstr(r->msg.text, "no connection slot"), "%s", r->msg.text);
	cr_expect_str_eq(r->rcpt[0].status, "4.3.2");
	cr_expect_not(has_result(&c->j));
	cr_expect_eq(dlv_get_stats(dlv)->jobs_no_slot, 1);
	r = wait_result_timed(c, 4 * NS_PER_SEC);
	cr_expect(r->site_failure);
	cr_expect_str_eq(r->msg.status, "4.4.2");
	cr_expect_eq(gauge(0), 0);
}

Test(delivery, idle_bound_closes_the_oldest_first)
{
	static struct script sc = { .greeting = "220 mx2.test ESMTP\r\n" };
	static const char *const rc[] = { "ok1@y.net" };
	const struct dlv_result *r;
	struct tjob *t1, *t2, *t3;
	uint64_t k1, k2;

	memset(&sc.conn, 0, sizeof(sc.conn));
	sc.accepted = sc.closed = 0;
	script_listen(&sc, 2525);
	dconf.max_idle = 1;
	start();
	t1 = simple_job(1, 2525, rc, 1);
	t1->j.keep_idle_ms = 60000;
	submit(t1);
	k1 = wait_result(t1)->conn_key;
	t2 = simple_job(2, 2525, rc, 1);
	snprintf(t2->j.dest, sizeof(t2->j.dest), "z.net");
	t2->j.keep_idle_ms = 60000;
	submit(t2);
	r = wait_result(t2);
	k2 = r->conn_key;
	cr_assert(k1 && k2 && k1 != k2);
	cr_assert(run_until(has_close, &k1), "the oldest idle one was not closed");
	cr_expect_eq(dlv_get_stats(dlv)->idle_evicted, 1);
	cr_expect_eq(gauge(1), 1);
	/* a key for another destination is not reused: closed, a new connection */
	t3 = simple_job(3, 2525, rc, 1);
	t3->j.conn_key = k2;	/* opened for z.net, t3 is for y.net */
	submit(t3);
	r = wait_result(t3);
	cr_expect_eq(r->msg.code, 250);
	cr_expect_not(r->reused);
	cr_expect(has_close(&k2));
	cr_expect_eq(dlv_get_stats(dlv)->reuse_missed, 1);
	cr_expect_eq(sc.accepted, 3);
}

Test(delivery, full_job_ring_refuses_and_bad_jobs_come_back_local)
{
	static struct script sc = { .greeting = "220 mx2.test ESMTP\r\n" };
	static const char *const rc[] = { "ok1@y.net" };
	struct tjob *t[3], *bad, *notls;

	memset(&sc.conn, 0, sizeof(sc.conn));
	sc.accepted = sc.closed = 0;
	script_listen(&sc, 2525);
	dconf.max_jobs = 2;
	start();
	for (unsigned i = 0; i < 3; i++)
		t[i] = simple_job(i + 1, 2525, rc, 1);
	cr_assert_eq(dlv_submit(port, &t[0]->j), 0);
	cr_assert_eq(dlv_submit(port, &t[1]->j), 0);
	cr_assert_eq(dlv_submit(port, &t[2]->j), -ENOBUFS);
	wait_result(t[0]);
	wait_result(t[1]);
	submit(t[2]);
	cr_expect_eq(wait_result(t[2])->msg.code, 250);

	bad = tjob_new(9);	/* no hop */
	tjob_rcpt(bad, "ok@y.net");
	submit(bad);
	cr_expect(wait_result(bad)->local);
	cr_expect_str_eq(bad->j.res.msg.status, "4.3.5");
	cr_expect_str_eq(bad->j.res.rcpt[0].status, "4.3.5");
	cr_expect_eq(dlv_get_stats(dlv)->jobs_bad, 1);
	dlv_destroy(dlv);

	dconf.tls = NULL;	/* no TLS context: encrypt cannot be honoured */
	start();
	notls = simple_job(10, 2525, rc, 1);
	notls->j.tls = SCT_ENCRYPT;
	submit(notls);
	cr_expect(wait_result(notls)->local);
	cr_expect_str_eq(notls->j.res.msg.status, "4.7.5");
}

/* A scheduler that does not reap: the lcore stops taking jobs before the
 * result ring could overflow; nothing is lost, each job comes back once. */
Test(delivery, unreaped_results_stop_the_lcore_not_lose_results)
{
	static struct script sc = { .greeting = "220 mx2.test ESMTP\r\n" };
	static const char *const rc[] = { "ok1@y.net" };
	struct tjob *t[12];
	unsigned submitted = 0;

	memset(&sc.conn, 0, sizeof(sc.conn));
	sc.accepted = sc.closed = 0;
	script_listen(&sc, 2525);
	dconf.max_conns = 1;
	dconf.max_idle = 0;
	dconf.max_jobs = 2;	/* result ring: 2 * (1 + 1) + 0 + 2 = 6 */
	start();
	for (unsigned i = 0; i < 12; i++)
		t[i] = simple_job(i + 1, 2525, rc, 1);
	reaping = false;
	for (int round = 0; round < 400; round++) {
		while (submitted < 12 && dlv_submit(port, &t[submitted]->j) == 0)
			submitted++;
		step();
	}
	cr_expect_lt(submitted, 12, "the job ring filled up");
	cr_expect_leq(rte_ring_count(port->results), 6);
	cr_expect_eq(dlv_get_stats(dlv)->ring_full, 0);
	reaping = true;
	for (int round = 0; round < 2000 && nev < 12; round++) {
		while (submitted < 12 && dlv_submit(port, &t[submitted]->j) == 0)
			submitted++;
		step();
	}
	cr_assert_eq(nev, 12);
	for (unsigned i = 0; i < 12; i++) {
		cr_expect_eq(count_results(&t[i]->j), 1);
		cr_expect_eq(t[i]->j.res.msg.code, 250, "%s", t[i]->j.res.msg.text);
	}
	cr_expect_eq(dlv_get_stats(dlv)->ring_full, 0);
}

Test(delivery, job_helpers_keep_their_bounds)
{
	struct tjob *t = tjob_new(1);
	char addr[64], big[600];

	for (unsigned i = 0; i < DLV_RCPT_MAX; i++) {
		snprintf(addr, sizeof(addr), "r%u@y.net", i);
		cr_assert_eq(dlv_job_rcpt(&t->j, addr, "rfc822;r@y.net", SMTP_NOTIFY_FAILURE), 0);
	}
	cr_expect_eq(dlv_job_rcpt(&t->j, "one@too.many", NULL, 0), -1);
	cr_expect_eq(t->j.msg.nrcpt, DLV_RCPT_MAX);
	cr_expect_str_eq(t->j.msg.rcpt[49].addr, "r49@y.net");
	cr_expect_str_eq(t->j.msg.rcpt[49].orcpt, "rfc822;r@y.net");
	cr_expect_eq(dlv_job_sender(&t->j, "late@x.org", NULL, 0, 0), -1, "sender first");

	/* the strings run out before the recipients do */
	dlv_job_init(&t->j, 2);
	cr_assert_eq(dlv_job_sender(&t->j, "s@x.org", "env1", SMTP_RET_HDRS, 0), 0);
	memset(big, 'o', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "rfc822;", 7);
	unsigned n = 0;
	while (dlv_job_rcpt(&t->j, "x@y.net", big, 0) == 0)
		n++;
	cr_expect_eq(n, DLV_STRINGS_MAX / (8 + sizeof(big)), "%u", n);
	uint32_t used = t->j.strings_used;
	cr_expect_eq(dlv_job_rcpt(&t->j, "x@y.net", big, 0), -1);
	cr_expect_eq(t->j.strings_used, used, "a refused recipient leaves nothing behind");
	cr_expect_eq(t->j.msg.nrcpt, n);
	cr_expect_str_eq(t->j.msg.envid, "env1");
	cr_expect_eq(t->j.msg.ret, SMTP_RET_HDRS);
	for (unsigned i = 0; i < DLV_HOPS_MAX; i++)
		cr_expect_eq(dlv_job_hop(&t->j, tip(PEER), 25, "mx"), 0);
	cr_expect_eq(dlv_job_hop(&t->j, tip(PEER), 25, "mx"), -1);
	cr_expect_eq(dlv_job_body(&t->j, NULL, 1), -1);
}
