/*
 * test_smtp_service.c - the SMTP service end to end without EAL: two TCP
 * stacks back to back (tests/tcp's wire), the service on one with a real
 * LMDB queue in a temporary directory, a scripted client on the other.
 *
 * Checks what only the wiring can get wrong: 250 only after the queue has
 * the message, and the stored body is the Received header plus exactly
 * what was sent; body memory exhaustion (452 4.3.1); the per-client session
 * limit (421 4.7.0); timeouts (421 4.4.2); shutdown (421 4.3.2); a client
 * that resets while its message is with the queue; no mbuf leaks.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "dataplane/ask.h"
#include "dataplane/smtp/smtp_policy.h"
#include "dataplane/smtp/smtp_service.h"
#include "dataplane/smtp/tls.h"
#include "queue/queue.h"
#include "tests/tcp/tcp_test.h"

#define CLIENTS 4

static struct twire w;
static struct queue *q;
static char dir[64];
static struct smtp_policy policy;
static struct smtp_limits limits;
static struct smtp_service_conf conf;
static struct smtp_service *svc;
static struct tapp cl[CLIENTS];

static void setup(void)
{
	struct tcp_conf tc;
	struct queue_conf qc;
	int st;

	tconf(&tc);
	twire_init(&w, 7, &tc, &tc);
	snprintf(dir, sizeof(dir), "/tmp/smtp-svc-test.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	queue_conf_defaults(&qc);
	snprintf(qc.dir, sizeof(qc.dir), "%s/spool", dir);
	qc.shards = 1;
	q = queue_open(&qc, &st);
	cr_assert_not_null(q, "queue_open: %d", st);

	/* The client (198.18.0.3) may relay: mynetworks. */
	cr_assert_eq(smtp_policy_init(&policy, "198.18.0.0/24", ""), 0);
	memset(&conf, 0, sizeof(conf));
	conf.port = 25;
	smtp_conf_default(&conf.engine);
	snprintf(conf.engine.hostname, sizeof(conf.engine.hostname), "mx.test");
	conf.engine.policy = &policy;
	conf.max_sessions = 16;
	conf.max_per_client = 16;
	conf.body_memory = 4u << 20;
	conf.lifetime_s = 86400;
	conf.queue = q;
	smtp_limits_init(&limits, 1, 2);
	for (unsigned i = 0; i < CLIENTS; i++) {
		tapp_init(&cl[i], 256 * 1024);
		cl[i].close_on_eof = true;	/* answer the server's FIN */
	}
}

/* Reopen the queue with a map this small (bytes), for the "full" case. */
static void small_queue(size_t map)
{
	struct queue_conf qc;
	int st;

	queue_close(q);
	queue_conf_defaults(&qc);
	snprintf(qc.dir, sizeof(qc.dir), "%s/small", dir);
	qc.shards = 1;
	qc.map_size = qc.map_max = map;
	q = queue_open(&qc, &st);
	cr_assert_not_null(q, "queue_open: %d", st);
	conf.queue = q;
}

static void teardown(void)
{
	char cmd[128];

	smtp_service_destroy(svc);
	svc = NULL;
	if (q)
		queue_close(q);
	q = NULL;
	cr_expect_eq(twire_fini(&w), 0, "mbufs leaked");
	for (unsigned i = 0; i < CLIENTS; i++)
		tapp_fini(&cl[i]);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

static void start(void)
{
	svc = smtp_service_create(w.a.ts, &conf, &limits, NULL, 64 * 1024, 0, &w.a.ns.now_ns);
	cr_assert_not_null(svc);
}

/* Move frames and completions until cond holds (or 10 s of wall time). */
static bool run_until(bool (*cond)(void *), void *arg)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		unsigned k = twire_pump(&w);
		k += smtp_service_poll(svc, w.a.ns.now_ns);
		if (cond(arg))
			return true;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > 10)
			return false;
		if (k == 0)
			usleep(200);	/* the queue's writer is syncing */
	}
}

struct more { const struct tapp *c; size_t before; };

/* A final reply to DATA (250 or 4xx/5xx) arrived after `before`. */
static bool got_answer(void *arg)
{
	const struct more *m = arg;
	const char *p = (const char *)m->c->rx + m->before;
	size_t n = m->c->rxlen - m->before;
	return memmem(p, n, "250 2.0.0 ", 10) || memmem(p, n, "452 ", 4) ||
	       memmem(p, n, "451 ", 4);
}

static bool run_until_more(const struct tapp *c, size_t before);

static bool has_text(void *arg)
{
	const char **a = arg;
	const struct tapp *c = (const struct tapp *)a[0];
	return memmem(c->rx, c->rxlen, a[1], strlen(a[1])) != NULL;
}

static bool wait_text(struct tapp *c, const char *text)
{
	const char *a[2] = { (const char *)c, text };
	return run_until(has_text, a);
}

static bool run_until_more(const struct tapp *c, size_t before)
{
	struct more m = { c, before };
	return run_until(got_answer, &m);
}

static void connect_client(struct tapp *c)
{
	cr_assert_not_null(tcp_connect(w.b.ts, tip("198.18.0.2"), rte_cpu_to_be_16(25),
				       &tapp_cb, c));
	cr_assert(wait_text(c, "220 mx.test ESMTP"), "no greeting");
}

/* Send everything, pumping while the send buffer is full. */
static void send_all(struct tapp *c, const void *buf, size_t len)
{
	const char *p = buf;
	for (unsigned spins = 0; len > 0; spins++) {
		size_t n = tcp_send(c->conn, p, len);
		p += n;
		len -= n;
		if (len) {
			twire_pump(&w);
			smtp_service_poll(svc, w.a.ns.now_ns);
		}
		cr_assert_lt(spins, 100000u, "send stalled");
	}
}

static void send_str(struct tapp *c, const char *s)
{
	send_all(c, s, strlen(s));
}

/* The queue ID in "250 2.0.0 Ok: queued as ID". */
static uint64_t queued_id(const struct tapp *c)
{
	const char *k = "queued as ";
	const char *p = memmem(c->rx, c->rxlen, k, strlen(k));
	char id[QUEUE_ID_STR];
	uint64_t v;

	cr_assert_not_null(p);
	memcpy(id, p + strlen(k), QUEUE_ID_STR - 1);
	id[QUEUE_ID_STR - 1] = '\0';
	cr_assert_eq(queue_id_parse(id, &v), 0, "bad ID %s", id);
	return v;
}

TestSuite(smtp_service, .init = setup, .fini = teardown, .timeout = 60);

Test(smtp_service, message_is_queued_byte_exact)
{
	static const char body[] = "Subject: hello\r\n\r\nline one\r\n..dot\r\nlast\r\n";
	static const char stored[] = "Subject: hello\r\n\r\nline one\r\n.dot\r\nlast\r\n";
	struct queue_msg *m;
	char buf[4096], idstr[QUEUE_ID_STR];
	size_t len;
	uint64_t id;

	start();
	connect_client(&cl[0]);
	send_str(&cl[0], "EHLO client.test\r\nMAIL FROM:<a@x.org>\r\n"
			 "RCPT TO:<b@y.net>\r\nDATA\r\n");
	cr_assert(wait_text(&cl[0], "354 "));
	send_str(&cl[0], body);
	send_str(&cl[0], ".\r\n");
	cr_assert(wait_text(&cl[0], "250 2.0.0 Ok: queued as "));
	id = queued_id(&cl[0]);
	queue_id_format(id, idstr);

	/* durable before 250: the queue has it now */
	cr_assert_eq(queue_lookup(q, 0, id, &m), QUEUE_OK);
	cr_expect_str_eq(m->sender, "a@x.org");
	cr_expect_eq(m->nrcpt, 1);
	cr_expect_str_eq(m->rcpt[0].addr, "b@y.net");
	cr_expect_str_eq(m->client_addr, "198.18.0.3");
	cr_expect_str_eq(m->helo, "client.test");
	free(m);
	cr_assert_eq(queue_read_body(q, 0, id, buf, sizeof(buf) - 1, &len), QUEUE_OK);
	buf[len] = '\0';
	cr_expect(strncmp(buf, "Received: from client.test", 26) == 0, "%s", buf);
	cr_expect_not_null(strstr(buf, idstr), "Received lacks the queue ID: %s", buf);
	cr_assert_geq(len, sizeof(stored) - 1);
	cr_expect_str_eq(buf + len - (sizeof(stored) - 1), stored);

	send_str(&cl[0], "QUIT\r\n");
	cr_assert(wait_text(&cl[0], "221 2.0.0"));
	twire_advance(&w, 100 * NS_PER_MS);
	twire_pump(&w);
	cr_expect_eq(smtp_service_active(svc), 0);
	cr_expect_eq(smtp_service_get_stats(svc)->queue_ok, 1);
}

Test(smtp_service, body_memory_exhausted_is_452)
{
	size_t big = 200 * 1024;
	char *body = malloc(big);

	conf.body_memory = 8 * SMTP_BODY_CHUNK;	/* 128 KiB for the whole lcore */
	start();
	for (size_t i = 0; i < big; i += 100) {
		memset(body + i, 'a' + (int)(i / 100 % 26), 98);
		memcpy(body + i + 98, "\r\n", 2);
	}
	connect_client(&cl[0]);
	send_str(&cl[0], "EHLO c.test\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.net>\r\nDATA\r\n");
	cr_assert(wait_text(&cl[0], "354 "));
	send_all(&cl[0], body, big);
	send_str(&cl[0], ".\r\n");
	cr_assert(wait_text(&cl[0], "452 4.3.1 "));
	cr_expect_eq(smtp_service_get_stats(svc)->body_nomem, 1);
	/* the memory came back: a small message goes through */
	send_str(&cl[0], "MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.net>\r\nDATA\r\n");
	send_str(&cl[0], "small\r\n.\r\n");
	cr_assert(wait_text(&cl[0], "250 2.0.0 Ok: queued as "));
	free(body);
}

Test(smtp_service, per_client_limit_is_421)
{
	/* the client is not in mynetworks here, so its limit applies */
	cr_assert_eq(smtp_policy_init(&policy, "10.0.0.0/8", "y.net"), 0);
	conf.max_per_client = 2;
	start();
	connect_client(&cl[0]);
	connect_client(&cl[1]);
	cr_assert_not_null(tcp_connect(w.b.ts, tip("198.18.0.2"), rte_cpu_to_be_16(25),
				       &tapp_cb, &cl[2]));
	cr_assert(wait_text(&cl[2], "421 4.7.0 "));
	cr_expect_eq(smtp_service_get_stats(svc)->refused_client, 1);
	/* one leaves: the next is welcome */
	send_str(&cl[0], "QUIT\r\n");
	cr_assert(wait_text(&cl[0], "221 "));
	twire_pump(&w);
	cr_assert_not_null(tcp_connect(w.b.ts, tip("198.18.0.2"), rte_cpu_to_be_16(25),
				       &tapp_cb, &cl[3]));
	cr_assert(wait_text(&cl[3], "220 mx.test ESMTP"));
}

Test(smtp_service, idle_client_times_out)
{
	conf.engine.timeout_cmd_ns = 2 * NS_PER_SEC;
	start();
	connect_client(&cl[0]);
	send_str(&cl[0], "EHLO c.test\r\n");
	cr_assert(wait_text(&cl[0], "250 "));
	for (int i = 0; i < 12; i++) {
		twire_advance(&w, 250 * NS_PER_MS);
		twire_pump(&w);
		smtp_service_poll(svc, w.a.ns.now_ns);
	}
	cr_assert(wait_text(&cl[0], "421 4.4.2 "));
	cr_expect_eq(smtp_service_get_stats(svc)->timeouts, 1);
}

/* Resident set of this process, bytes. */
static size_t rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long size = 0, res = 0;

	cr_assert_not_null(f);
	cr_assert_eq(fscanf(f, "%lu %lu", &size, &res), 2);
	fclose(f);
	return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

/* [smtp] max_sessions is for all lcores: one lcore gets no more slots than
 * its TCP stack has connections, and none is touched before it is used. */
Test(smtp_service, slots_follow_the_tcp_stack_and_cost_nothing_until_used)
{
	unsigned slots, touched;
	size_t before;

	conf.max_sessions = 100000;
	conf.max_per_client = 100000;
	conf.lcore_conns = 256;		/* tconf()'s max_conns */
	before = rss_bytes();
	start();
	cr_expect_lt(rss_bytes() - before, 16u << 20, "creating the service made %zu KiB resident",
		     (rss_bytes() - before) >> 10);
	smtp_service_slots(svc, &slots, &touched);
	cr_expect_eq(slots, 256 + 64, "TCP connections + zombie room");
	cr_expect_eq(touched, 0);
	connect_client(&cl[0]);
	connect_client(&cl[1]);
	smtp_service_slots(svc, &slots, &touched);
	cr_expect_eq(touched, 2);
	send_str(&cl[0], "QUIT\r\n");
	cr_assert(wait_text(&cl[0], "221 "));
	twire_advance(&w, 100 * NS_PER_MS);
	twire_pump(&w);
	connect_client(&cl[2]);
	smtp_service_slots(svc, &slots, &touched);
	cr_expect_eq(touched, 2, "a released slot is used again before a new one");
	smtp_service_destroy(svc);

	/* fewer sessions than TCP connections: the sessions decide */
	conf.max_sessions = 40;
	start();
	smtp_service_slots(svc, &slots, &touched);
	cr_expect_eq(slots, 40 + 10 + 16);
}

/* Deadlines live on the TCP timer wheel: tcp_tick() alone times a session
 * out, nothing has to poll (or walk) the sessions. */
Test(smtp_service, deadlines_run_from_the_tcp_timer_wheel)
{
	conf.engine.timeout_cmd_ns = 2 * NS_PER_SEC;
	start();
	connect_client(&cl[0]);
	send_str(&cl[0], "EHLO c.test\r\n");
	cr_assert(wait_text(&cl[0], "250 "));
	for (int i = 0; i < 7; i++) {		/* 1.75 s: not yet */
		twire_advance(&w, 250 * NS_PER_MS);
		twire_pump(&w);
	}
	cr_expect_null(memmem(cl[0].rx, cl[0].rxlen, "421 ", 4));
	send_str(&cl[0], "NOOP\r\n");	/* a command: 2 s from now */
	twire_pump(&w);
	for (int i = 0; i < 7; i++) {
		twire_advance(&w, 250 * NS_PER_MS);
		twire_pump(&w);
	}
	cr_expect_null(memmem(cl[0].rx, cl[0].rxlen, "421 ", 4), "the deadline moved with the NOOP");
	for (int i = 0; i < 2; i++) {
		twire_advance(&w, 250 * NS_PER_MS);
		twire_pump(&w);
	}
	cr_expect_not_null(memmem(cl[0].rx, cl[0].rxlen, "421 4.4.2 ", 10), "%.*s",
			   (int)cl[0].rxlen, cl[0].rx);
	cr_expect_eq(smtp_service_get_stats(svc)->timeouts, 1);
	cr_expect_geq(tcp_stack_stats(w.a.ts)->app_timers, 1);
}

/* A client that stops reading: the 421 4.4.2 cannot leave, so the next
 * deadline resets the connection (and frees its slot). */
Test(smtp_service, unsendable_timeout_reply_ends_in_a_reset)
{
	static char noops[10000 * 6];

	for (size_t i = 0; i < sizeof(noops); i += 6)
		memcpy(noops + i, "NOOP\r\n", 6);
	conf.engine.timeout_cmd_ns = 2 * NS_PER_SEC;
	start();
	cl[0].manual_recved = true;	/* its window closes and stays shut */
	connect_client(&cl[0]);
	send_all(&cl[0], noops, sizeof(noops));
	for (int i = 0; i < 40 && !cl[0].closed; i++) {
		twire_advance(&w, NS_PER_SEC);
		twire_pump(&w);
	}
	cr_expect_eq(smtp_service_get_stats(svc)->timeouts, 1);
	cr_expect_eq(smtp_service_get_stats(svc)->timeout_aborts, 1);
	cr_expect_eq(cl[0].closed, 1);
	cr_expect_eq(cl[0].reason, TCP_CLOSE_RESET);
	cr_expect_eq(smtp_service_active(svc), 0);
}

Test(smtp_service, drain_says_421_4_3_2)
{
	start();
	connect_client(&cl[0]);
	send_str(&cl[0], "EHLO c.test\r\nMAIL FROM:<a@x.org>\r\n");
	cr_assert(wait_text(&cl[0], "250 2.1.0"));
	smtp_service_drain(svc);
	cr_assert(wait_text(&cl[0], "421 4.3.2 "));
	/* no new sessions while draining */
	cr_assert_not_null(tcp_connect(w.b.ts, tip("198.18.0.2"), rte_cpu_to_be_16(25),
				       &tapp_cb, &cl[1]));
	twire_pump(&w);
	cr_expect_eq(cl[1].connected, 0);
}

Test(smtp_service, reset_while_queued)
{
	struct queue_msg *m;

	start();
	connect_client(&cl[0]);
	send_str(&cl[0], "EHLO c.test\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.net>\r\nDATA\r\n");
	cr_assert(wait_text(&cl[0], "354 "));
	send_str(&cl[0], "gone\r\n.\r\n");
	twire_pump(&w);		/* the message reaches the queue... */
	tcp_abort(cl[0].conn);	/* ...and the client resets before the answer */
	cl[0].conn = NULL;
	twire_pump(&w);
	cr_expect_eq(smtp_service_active(svc), 1, "the session must wait for the queue");
	for (int i = 0; i < 5000 && smtp_service_active(svc); i++) {
		smtp_service_poll(svc, w.a.ns.now_ns);
		usleep(1000);
	}
	cr_expect_eq(smtp_service_active(svc), 0);
	cr_expect_eq(smtp_service_get_stats(svc)->queue_ok, 1);
	/* stored all the same: SMTP may deliver a message twice, never lose one */
	{
		uint64_t ids[4];
		size_t n = 0;
		cr_assert_eq(queue_list_domain(q, "y.net", 0, ids, 4, &n), QUEUE_OK);
		cr_assert_eq(n, 1);
		cr_assert_eq(queue_lookup(q, 0, ids[0], &m), QUEUE_OK);
		free(m);
	}
}

/* A server TLS context on a fresh self-signed pair; STARTTLS offered. */
static struct tls_ctx *tls_on(void)
{
	char cert[96], key[96], err[256];
	struct tls_ctx *ctx;

	snprintf(cert, sizeof(cert), "%s/c.pem", dir);
	snprintf(key, sizeof(key), "%s/k.pem", dir);
	cr_assert_eq(tls_selfsigned_ensure(cert, key, "mx.test", err, sizeof(err)), 0, "%s", err);
	ctx = tls_ctx_server(cert, key, err, sizeof(err));
	cr_assert_not_null(ctx, "%s", err);
	conf.tls = ctx;
	conf.engine.tls_available = true;
	return ctx;
}

static bool saw_eof(void *arg)
{
	return ((const struct tapp *)arg)->eof > 0;
}

Test(smtp_service, failed_tls_handshake_closes)
{
	struct tls_ctx *ctx = tls_on();

	start();
	connect_client(&cl[0]);
	send_str(&cl[0], "EHLO c.test\r\nSTARTTLS\r\n");
	cr_assert(wait_text(&cl[0], "220 2.0.0 Ready to start TLS\r\n"));
	send_str(&cl[0], "this is not a ClientHello\r\n");
	cr_assert(run_until(saw_eof, &cl[0]), "the server kept the connection");
	cr_expect_eq(smtp_service_get_stats(svc)->tls_failures, 1);
	cr_expect_eq(smtp_service_get_stats(svc)->tls_handshakes, 0);
	smtp_service_destroy(svc);
	svc = NULL;
	tls_ctx_free(ctx);
}

Test(smtp_service, starttls_drops_pipelined_plaintext_and_times_out)
{
	struct tls_ctx *ctx = tls_on();

	conf.engine.timeout_cmd_ns = 2 * NS_PER_SEC;
	start();
	connect_client(&cl[0]);
	/* CVE-2011-0411: the MAIL sent with STARTTLS must not be acted upon */
	send_str(&cl[0], "EHLO c.test\r\nSTARTTLS\r\nMAIL FROM:<evil@x.org>\r\n");
	cr_assert(wait_text(&cl[0], "220 2.0.0 Ready to start TLS\r\n"));
	twire_pump(&w);
	cr_expect_null(memmem(cl[0].rx, cl[0].rxlen, "2.1.0", 5), "plaintext MAIL was answered");
	/* no ClientHello ever comes: the handshake is bounded too */
	for (int i = 0; i < 40 && smtp_service_active(svc); i++) {
		twire_advance(&w, NS_PER_SEC);
		twire_pump(&w);
		smtp_service_poll(svc, w.a.ns.now_ns);
	}
	cr_expect_eq(smtp_service_active(svc), 0, "a silent TLS client holds its session");
	smtp_service_destroy(svc);
	svc = NULL;
	tls_ctx_free(ctx);
}

Test(smtp_service, dsn_and_body_type_are_stored)
{
	struct queue_msg *m;
	uint64_t id;

	start();
	connect_client(&cl[0]);
	send_str(&cl[0], "EHLO c.test\r\n"
			 "MAIL FROM:<a@x.org> RET=HDRS ENVID=env+2Bid BODY=8BITMIME SMTPUTF8\r\n"
			 "RCPT TO:<b@y.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@y.net\r\n"
			 "RCPT TO:<c@y.net> NOTIFY=NEVER\r\n"
			 "DATA\r\n");
	cr_assert(wait_text(&cl[0], "354 "));
	send_str(&cl[0], "Subject: dsn\r\n\r\n8bit \xc3\xa9t\xc3\xa9\r\n.\r\n");
	cr_assert(wait_text(&cl[0], "250 2.0.0 Ok: queued as "));
	id = queued_id(&cl[0]);
	cr_assert_eq(queue_lookup(q, 0, id, &m), QUEUE_OK);
	cr_expect_eq(m->ret, QUEUE_RET_HDRS);
	cr_expect_str_eq(m->envid, "env+2Bid");
	cr_expect_eq(m->body_flags, QUEUE_BODY_8BITMIME | QUEUE_BODY_SMTPUTF8);
	cr_assert_eq(m->nrcpt, 2);
	cr_expect_eq(m->rcpt[0].notify, QUEUE_NOTIFY_SUCCESS | QUEUE_NOTIFY_FAILURE);
	cr_expect_str_eq(m->rcpt[0].orcpt, "rfc822;b@y.net");
	cr_expect_eq(m->rcpt[1].notify, QUEUE_NOTIFY_NEVER);
	free(m);
}

/* A message over the hop limit with loop_action = hold is queued held (a
 * mail loop kept for the operator); mail from the null sender gets
 * bounce_lifetime, other mail lifetime. */
/* sluicectl drain (dp_smtp_set_refuse_new): a session open before the flag
 * goes on and queues its message; a new one gets 421 4.3.2 at once and
 * takes no session slot; cleared, new sessions are greeted again. */
Test(smtp_service, refuse_new_is_421_and_open_sessions_finish)
{
	start();
	connect_client(&cl[0]);
	send_str(&cl[0], "EHLO c.test\r\nMAIL FROM:<a@x.org>\r\n");
	cr_assert(wait_text(&cl[0], "250 2.1.0"));
	atomic_store(&limits.refuse_new, true);
	cr_assert_not_null(tcp_connect(w.b.ts, tip("198.18.0.2"), rte_cpu_to_be_16(25),
				       &tapp_cb, &cl[1]));
	cr_assert(wait_text(&cl[1],
			    "421 4.3.2 mx.test Service not available, closing transmission channel\r\n"));
	cr_expect_eq(smtp_service_get_stats(svc)->refused_draining, 1);
	cr_expect_eq(smtp_service_get_stats(svc)->accepted, 1, "the refused one took no slot");
	send_str(&cl[0], "RCPT TO:<b@y.net>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n");
	cr_assert(wait_text(&cl[0], "250 2.0.0 Ok: queued as "));
	atomic_store(&limits.refuse_new, false);
	connect_client(&cl[2]);
	cr_assert(wait_text(&cl[2], "220 "));
	cr_expect_eq(smtp_service_get_stats(svc)->refused_draining, 1);
}

/* XSLUICE from a trusted client (the test's client is in mynetworks): the
 * record keeps the first box's arrival and expiry, not now + lifetime, its
 * attempts there and last error, and is due at its next try there. */
Test(smtp_service, xsluice_arrival_and_expiry_are_stored)
{
	struct queue_msg *m;
	uint64_t id;

	start();
	connect_client(&cl[0]);
	send_str(&cl[0], "EHLO c.test\r\nMAIL FROM:<a@x.org> XSLUICE=1700000000.5.1700003600."
			 "1700432000.451+20busy\r\nRCPT TO:<b@y.net>\r\nDATA\r\n");
	cr_assert(wait_text(&cl[0], "354 "));
	send_str(&cl[0], "Subject: moved\r\n\r\nbody\r\n.\r\n");
	cr_assert(wait_text(&cl[0], "250 2.0.0 Ok: queued as "));
	id = queued_id(&cl[0]);
	cr_assert_eq(queue_lookup(q, 0, id, &m), QUEUE_OK);
	cr_expect_eq(m->arrival, 1700000000);
	cr_expect_eq(m->expiry, 1700432000);
	cr_expect_eq(m->due, 1700003600, "due at the carried next try");
	cr_expect_eq(m->prior_attempts, 5);
	cr_expect_str_eq(m->prior_error, "451 busy");
	free(m);
}

Test(smtp_service, loops_are_queued_held_and_bounces_get_their_own_lifetime)
{
	struct queue_msg *m;
	uint64_t id;
	char hops[60 * 80 + 1] = "";

	conf.engine.loop = SMTP_LOOP_HOLD;
	conf.bounce_lifetime_s = 3600;
	for (int i = 0; i < 55; i++)
		strcat(hops, "Received: from a.example by b.example; Sun, 22 Nov 2026 20:00:00 +0000\r\n");
	start();
	connect_client(&cl[0]);
	send_str(&cl[0], "EHLO c.test\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.net>\r\nDATA\r\n");
	cr_assert(wait_text(&cl[0], "354 "));
	send_str(&cl[0], hops);
	send_str(&cl[0], "Subject: loop\r\n\r\nbody\r\n.\r\n");
	cr_assert(wait_text(&cl[0], "250 2.0.0 Ok: queued as "));
	id = queued_id(&cl[0]);
	cr_assert_eq(queue_lookup(q, 0, id, &m), QUEUE_OK);
	cr_expect(m->held, "over hop_limit: held");
	cr_expect_eq(m->held_at, m->arrival);
	cr_expect_eq(m->expiry, m->arrival + 86400, "lifetime");
	free(m);
	struct queue_due due[4];
	size_t n;
	cr_assert_eq(queue_scan_due(q, 0, UINT64_MAX / 2, due, 4, &n), QUEUE_OK);
	cr_expect_eq(n, 0, "held: never due");

	connect_client(&cl[1]);
	send_str(&cl[1], "EHLO c.test\r\nMAIL FROM:<>\r\nRCPT TO:<b@y.net>\r\nDATA\r\n");
	cr_assert(wait_text(&cl[1], "354 "));
	send_str(&cl[1], "Subject: a bounce\r\n\r\nbody\r\n.\r\n");
	cr_assert(wait_text(&cl[1], "250 2.0.0 Ok: queued as "));
	id = queued_id(&cl[1]);
	cr_assert_eq(queue_lookup(q, 0, id, &m), QUEUE_OK);
	cr_expect_not(m->held);
	cr_expect_str_eq(m->sender, "");
	cr_expect_eq(m->expiry, m->arrival + 3600, "bounce_lifetime");
	free(m);
}

/* RFC 3461: a 500-character ORCPT makes a RCPT line longer than 512
 * octets; it is accepted and the queue stores it whole (no 451 4.3.0). */
Test(smtp_service, orcpt_of_500_characters_is_stored)
{
	char orcpt[SMTP_ORCPT_MAX + 1], l[SMTP_CMD_MAX];
	struct queue_msg *m;

	memcpy(orcpt, "rfc822;", 7);
	for (unsigned i = 7; i < SMTP_ORCPT_MAX; i++)
		orcpt[i] = (char)('A' + i % 26);
	orcpt[SMTP_ORCPT_MAX] = '\0';
	snprintf(l, sizeof(l), "RCPT TO:<b@y.net> NOTIFY=SUCCESS ORCPT=%s\r\n", orcpt);
	start();
	connect_client(&cl[0]);
	send_str(&cl[0], "EHLO c.test\r\nMAIL FROM:<a@x.org> ENVID=e1\r\n");
	send_str(&cl[0], l);
	send_str(&cl[0], "DATA\r\n");
	cr_assert(wait_text(&cl[0], "354 "), "%.*s", (int)cl[0].rxlen, cl[0].rx);
	send_str(&cl[0], "Subject: long orcpt\r\n\r\nx\r\n.\r\n");
	cr_assert(wait_text(&cl[0], "250 2.0.0 Ok: queued as "), "%.*s", (int)cl[0].rxlen,
		  cl[0].rx);
	cr_assert_eq(queue_lookup(q, 0, queued_id(&cl[0]), &m), QUEUE_OK);
	cr_assert_eq(m->nrcpt, 1);
	cr_expect_str_eq(m->rcpt[0].addr, "b@y.net");
	cr_expect_str_eq(m->rcpt[0].orcpt, orcpt);
	cr_expect_eq(m->rcpt[0].notify, QUEUE_NOTIFY_SUCCESS);
	free(m);
}

static uint64_t chunks_used(void)
{
	uint64_t a = 0, b = 0, c = 0;
	smtp_service_gauges(svc, &a, &b, &c);
	return c;
}

/* RCPT n of a transaction with a 500-character ORCPT. */
static void long_rcpt(char *l, size_t cap, unsigned n)
{
	char orcpt[SMTP_ORCPT_MAX + 1];
	int k = snprintf(orcpt, sizeof(orcpt), "rfc822;b%u+40y.net", n);
	memset(orcpt + k, 'z', SMTP_ORCPT_MAX - (size_t)k);
	orcpt[SMTP_ORCPT_MAX] = '\0';
	snprintf(l, cap, "RCPT TO:<b%u@y.net> NOTIFY=FAILURE ORCPT=%s\r\n", n, orcpt);
}

/* recipient_limit recipients, each with a 500-character ORCPT: all taken
 * and stored (a 32 KiB per-session arena said 452 4.5.3 after ~40). */
Test(smtp_service, max_rcpt_recipients_with_long_orcpts_are_stored)
{
	char l[SMTP_CMD_MAX];
	struct queue_msg *m;
	unsigned n = conf.engine.max_rcpt;

	cr_assert_eq(n, 1000);
	start();
	connect_client(&cl[0]);
	send_str(&cl[0], "EHLO c.test\r\nMAIL FROM:<a@x.org>\r\n");
	for (unsigned i = 0; i < n; i++) {
		long_rcpt(l, sizeof(l), i);
		send_str(&cl[0], l);
	}
	send_str(&cl[0], "DATA\r\n");
	cr_assert(wait_text(&cl[0], "354 "));
	cr_expect_null(memmem(cl[0].rx, cl[0].rxlen, "452 ", 4), "%.*s", (int)cl[0].rxlen,
		       cl[0].rx);
	cr_expect_gt(chunks_used(), 1, "the recipients are in the arena");
	send_str(&cl[0], "Subject: many\r\n\r\nx\r\n.\r\n");
	cr_assert(wait_text(&cl[0], "250 2.0.0 Ok: queued as "));
	cr_assert_eq(queue_lookup(q, 0, queued_id(&cl[0]), &m), QUEUE_OK);
	cr_assert_eq(m->nrcpt, n);
	for (unsigned i = 0; i < n; i++) {
		char want[32];
		snprintf(want, sizeof(want), "b%u@y.net", i);
		cr_expect_str_eq(m->rcpt[i].addr, want);
		cr_expect_eq(strlen(m->rcpt[i].orcpt), SMTP_ORCPT_MAX);
		snprintf(want, sizeof(want), "rfc822;b%u+40y.net", i);
		cr_expect(strncmp(m->rcpt[i].orcpt, want, strlen(want)) == 0, "%s", m->rcpt[i].orcpt);
		cr_expect_eq(m->rcpt[i].notify, QUEUE_NOTIFY_FAILURE);
	}
	free(m);
	cr_expect_eq(chunks_used(), 0, "answered: recipients and body chunks are back");
}

/* The arena (bodies and recipients) runs out: the RCPT that finds no room
 * gets 452 4.3.1 (insufficient system storage; the client sends it again
 * later), never "too many recipients"; RSET gives the memory back. */
Test(smtp_service, no_arena_for_a_recipient_is_452_4_3_1)
{
	char l[SMTP_CMD_MAX];
	unsigned ok = 0, nomem = 0;

	conf.body_memory = 3 * SMTP_BODY_CHUNK;
	start();
	connect_client(&cl[0]);
	/* a few ordinary recipients fit the connection's own room */
	send_str(&cl[0], "EHLO c.test\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.net>\r\n"
			 "RCPT TO:<c@y.net>\r\nRSET\r\n");
	cr_assert(wait_text(&cl[0], "250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok"));
	cr_expect_eq(chunks_used(), 0);
	send_str(&cl[0], "MAIL FROM:<a@x.org>\r\n");
	cr_assert(wait_text(&cl[0], "250 2.0.0 Ok\r\n250 2.1.0 Ok"));
	cl[0].rxlen = 0;
	for (unsigned i = 0; i < 120; i++) {
		long_rcpt(l, sizeof(l), i);
		send_str(&cl[0], l);
	}
	send_str(&cl[0], "NOOP\r\n");
	cr_assert(wait_text(&cl[0], "250 2.0.0 Ok\r\n"));
	for (const char *p = (const char *)cl[0].rx, *e = p + cl[0].rxlen; p < e;) {
		const char *lf = memchr(p, '\n', (size_t)(e - p));
		cr_assert_not_null(lf);
		if (strncmp(p, "250 2.1.5 ", 10) == 0)
			ok++;
		else if (strncmp(p, "452 4.3.1 ", 10) == 0)
			nomem++;
		else
			cr_assert(strncmp(p, "250 2.0.0 Ok", 12) == 0, "%.*s", (int)(lf - p), p);
		p = lf + 1;
	}
	cr_expect_gt(ok, 80, "three chunks hold some 90 such recipients");
	cr_expect_eq(ok + nomem, 120);
	cr_expect_gt(nomem, 0);
	cr_expect_eq(smtp_service_get_stats(svc)->rcpt_nomem, nomem);
	cr_expect_eq(chunks_used(), 3);
	send_str(&cl[0], "RSET\r\n");
	cr_assert(wait_text(&cl[0], "250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n"));
	cr_expect_eq(chunks_used(), 0);
	send_str(&cl[0], "MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.net>\r\nDATA\r\n");
	cr_assert(wait_text(&cl[0], "354 "));
	send_str(&cl[0], "x\r\n.\r\n");
	cr_assert(wait_text(&cl[0], "250 2.0.0 Ok: queued as "));
}

Test(smtp_service, queue_full_is_452_and_no_queue_is_451)
{
	char *body = malloc(64 * 1024 + 8);
	bool full = false;

	for (size_t i = 0; i < 64 * 1024; i += 64) {
		memset(body + i, 'q', 62);
		memcpy(body + i + 62, "\r\n", 2);
	}
	strcpy(body + 64 * 1024, ".\r\n");
	small_queue(2u << 20);
	start();
	connect_client(&cl[0]);
	send_str(&cl[0], "EHLO c.test\r\n");
	for (int i = 0; i < 64 && !full; i++) {
		size_t before = cl[0].rxlen;
		send_str(&cl[0], "MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.net>\r\nDATA\r\n");
		cr_assert(wait_text(&cl[0], "354 "));
		send_str(&cl[0], body);
		cr_assert(run_until_more(&cl[0], before), "no answer to message %d", i);
		full = memmem(cl[0].rx + before, cl[0].rxlen - before, "452 4.3.1 ", 10) != NULL;
		cl[0].rxlen = 0;	/* look at the next answers only */
	}
	cr_expect(full, "a 2 MiB spool never said 452 4.3.1");
	cr_expect_geq(smtp_service_get_stats(svc)->queue_nospace, 1);
	smtp_service_destroy(svc);

	/* no queue at all: 451 4.3.0 */
	conf.queue = NULL;
	start();
	connect_client(&cl[1]);
	send_str(&cl[1], "EHLO c.test\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.net>\r\nDATA\r\n");
	cr_assert(wait_text(&cl[1], "354 "));
	send_str(&cl[1], "x\r\n.\r\n");
	cr_expect(wait_text(&cl[1], "451 4.3.0 "));
	free(body);
}

/* ---- reverse names through the ask port ------------------------------------ */

static struct ask_port *asks;

/* Play the control plane: take the lcore's questions. */
static unsigned take_questions(struct ask **out, unsigned max)
{
	unsigned n = 0;

	for (int i = 0; i < 200 && n == 0; i++) {
		twire_pump(&w);
		smtp_service_poll(svc, w.a.ns.now_ns);
		n = ask_take(asks, out, max);
	}
	return n;
}

/* EHLO .. DATA .. body ., and read the message stored. */
static void send_message(struct tapp *c)
{
	send_str(c, "EHLO client.test\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.net>\r\nDATA\r\n");
	cr_assert(wait_text(c, "354 "));
	send_str(c, "Subject: r\r\n\r\nbody\r\n.\r\n");
}

/* The stored body's first line (the start of our Received header). */
static bool first_line_is(const char *buf, const char *want)
{
	size_t n = strcspn(buf, "\r\n");
	return n == strlen(want) && strncmp(buf, want, n) == 0;
}

static void stored_body(struct tapp *c, char *buf, size_t cap)
{
	size_t len;
	cr_assert_eq(queue_read_body(q, 0, queued_id(c), buf, cap - 1, &len), QUEUE_OK);
	buf[len < cap - 1 ? len : cap - 1] = '\0';
}

/* The message waits for the name (no 250 before it), then its Received
 * header carries it. */
Test(smtp_service, message_waits_for_the_reverse_name)
{
	struct ask *a[4];
	char buf[4096];

	conf.rdns_wait_ns = 5 * NS_PER_SEC;
	start();
	asks = ask_port_create(8);
	smtp_service_set_asks(svc, asks);
	connect_client(&cl[0]);
	cr_assert_eq(take_questions(a, 4), 1, "one question per connection");
	cr_expect_eq(a[0]->kind, ASK_RDNS);
	cr_expect_eq(a[0]->ip.family, NET_AF_INET);
	cr_expect_eq(a[0]->ip.v4, tip("198.18.0.3"));
	send_message(&cl[0]);
	for (int i = 0; i < 200; i++) {
		twire_pump(&w);
		smtp_service_poll(svc, w.a.ns.now_ns);
	}
	cr_expect_null(memmem(cl[0].rx, cl[0].rxlen, "250 2.0.0 Ok: queued", 20),
		       "answered before the name came");
	snprintf(a[0]->text, sizeof(a[0]->text), "client.example.org");
	ask_answer(asks, a[0]);
	cr_assert(wait_text(&cl[0], "250 2.0.0 Ok: queued as "));
	stored_body(&cl[0], buf, sizeof(buf));
	cr_expect(first_line_is(buf, "Received: from client.test (client.example.org [198.18.0.3])"),
		  "%.120s", buf);
	cr_expect_eq(smtp_service_get_stats(svc)->rdns_named, 1);
	smtp_service_destroy(svc);
	svc = NULL;
	ask_port_free(asks);
}

/* No answer within the bound: the message goes with "unknown"; the late
 * answer is recognised as late and its slot comes back. */
Test(smtp_service, late_reverse_name_is_not_waited_for)
{
	struct ask *a[4];
	char buf[4096];

	conf.rdns_wait_ns = 2 * NS_PER_SEC;
	start();
	asks = ask_port_create(8);
	smtp_service_set_asks(svc, asks);
	connect_client(&cl[0]);
	cr_assert_eq(take_questions(a, 4), 1);
	send_message(&cl[0]);
	for (int i = 0; i < 50; i++)
		twire_pump(&w);
	twire_advance(&w, 2 * NS_PER_SEC + 10 * NS_PER_MS);	/* the bound passes */
	cr_assert(wait_text(&cl[0], "250 2.0.0 Ok: queued as "));
	stored_body(&cl[0], buf, sizeof(buf));
	cr_expect(first_line_is(buf, "Received: from client.test (unknown [198.18.0.3])"),
		  "%.120s", buf);
	cr_expect_eq(smtp_service_get_stats(svc)->rdns_waited, 1);
	snprintf(a[0]->text, sizeof(a[0]->text), "too.late.example");
	ask_answer(asks, a[0]);
	for (int i = 0; i < 10; i++)
		smtp_service_poll(svc, w.a.ns.now_ns);
	cr_expect_eq(smtp_service_get_stats(svc)->rdns_late, 1);
	cr_expect_eq(ask_port_stats(asks)->answered, 1, "the slot came back");
	smtp_service_destroy(svc);
	svc = NULL;
	ask_port_free(asks);
}

/* No free slot: the session does without (and says unknown) at once. */
Test(smtp_service, no_question_slot_means_unknown_without_waiting)
{
	struct ask *held;
	char buf[4096];

	conf.rdns_wait_ns = 5 * NS_PER_SEC;
	start();
	asks = ask_port_create(1);
	smtp_service_set_asks(svc, asks);
	held = ask_get(asks);		/* the only slot */
	cr_assert_not_null(held);
	connect_client(&cl[0]);
	send_message(&cl[0]);
	cr_assert(wait_text(&cl[0], "250 2.0.0 Ok: queued as "));
	stored_body(&cl[0], buf, sizeof(buf));
	cr_expect(first_line_is(buf, "Received: from client.test (unknown [198.18.0.3])"),
		  "%.120s", buf);
	cr_expect_eq(ask_port_stats(asks)->no_slot, 1);
	ask_put(asks, held);
	smtp_service_destroy(svc);
	svc = NULL;
	ask_port_free(asks);
}

/* ---- reloads: settings snapshots (smtp_live) ---- */

struct live_sessions { struct smtp_live *l; unsigned want; };

static bool live_sessions_are(void *arg)
{
	const struct live_sessions *ls = arg;
	return atomic_load(&ls->l->sessions) == ls->want;
}

/*
 * A reload publishes a new snapshot in the slot: the lcore takes it at its
 * next burst (smtp_service_poll; its seen generation says so, the
 * publisher's quiescent point), new sessions get its limits, a session
 * opened before keeps the ones it began with, and the old snapshot's
 * session count (what the publisher waits on to free it) falls to 0 when
 * that session ends.
 */
Test(smtp_service, reload_new_sessions_new_settings_old_keep_theirs)
{
	struct smtp_live_slot slot;
	struct smtp_live *l1, *l2;
	struct live_sessions ls;

	conf.engine.max_size = 20000;
	l1 = smtp_live_new(&conf, false);
	cr_assert_not_null(l1);
	l1->gen = 1;
	atomic_init(&slot.cur, l1);
	svc = smtp_service_create(w.a.ts, &conf, &limits, &slot, 64 * 1024, 0, &w.a.ns.now_ns);
	cr_assert_not_null(svc);
	connect_client(&cl[0]);
	send_str(&cl[0], "EHLO a.test\r\n");
	cr_assert(wait_text(&cl[0], "250-SIZE 20000\r\n"));
	cr_expect_eq(atomic_load(&l1->sessions), 1);

	conf.engine.max_size = 10000;
	l2 = smtp_live_new(&conf, false);
	cr_assert_not_null(l2);
	l2->gen = 2;
	atomic_store(&slot.cur, l2);
	cr_expect_eq(smtp_service_live_seen(svc), 1, "not before a burst boundary");
	smtp_service_poll(svc, w.a.ns.now_ns);
	cr_expect_eq(smtp_service_live_seen(svc), 2, "the burst boundary takes the new one");

	connect_client(&cl[1]);
	send_str(&cl[1], "EHLO b.test\r\n");
	cr_assert(wait_text(&cl[1], "250-SIZE 10000\r\n"), "a new session gets the new limit");
	cr_expect_eq(atomic_load(&l2->sessions), 1);
	cr_expect_eq(atomic_load(&l1->sessions), 1);

	send_str(&cl[1], "MAIL FROM:<a@x.org> SIZE=15000\r\n");
	cr_assert(wait_text(&cl[1], "552 5.3.4"), "the new limit is enforced");
	send_str(&cl[0], "MAIL FROM:<a@x.org> SIZE=15000\r\n");
	cr_assert(wait_text(&cl[0], "250 2.1.0"), "the session opened before keeps its limit");
	cr_expect_null(memmem(cl[0].rx, cl[0].rxlen, "552", 3));

	send_str(&cl[0], "QUIT\r\n");
	cr_assert(wait_text(&cl[0], "221 2.0.0"));
	twire_advance(&w, 100 * NS_PER_MS);
	ls = (struct live_sessions){ l1, 0 };
	cr_assert(run_until(live_sessions_are, &ls), "the old snapshot is still held: %u",
		  atomic_load(&l1->sessions));
	cr_expect_eq(atomic_load(&l2->sessions), 1);

	smtp_service_destroy(svc);	/* resets cl[1]: its hold goes too */
	svc = NULL;
	cr_expect_eq(atomic_load(&l2->sessions), 0);
	smtp_live_free(l1);
	smtp_live_free(l2);
}

/* The per-client rates (client_limits.h) wired in: a connection over
 * connection_rate gets 421 4.7.0 at once, a MAIL over message_rate 452
 * 4.7.1; both counted. The clock is the lcore's (the wire's, here). */
Test(smtp_service, connection_and_message_rates)
{
	char err[64];

	limits.clients = cl_create(42);
	cr_assert_not_null(limits.clients);
	conf.rates.window_ns = 60 * NS_PER_SEC;
	conf.rates.addr[CL_CONN] = 2;
	conf.rates.addr[CL_MSG] = 1;
	cr_assert_eq(cl_conf_exempt(&conf.rates, "10.0.0.0/8", NULL, err, sizeof(err)), 0);
	start();
	connect_client(&cl[0]);
	connect_client(&cl[1]);
	cr_assert_not_null(tcp_connect(w.b.ts, tip("198.18.0.2"), rte_cpu_to_be_16(25),
				       &tapp_cb, &cl[2]));
	cr_assert(wait_text(&cl[2], "421 4.7.0 mx.test Error: too many connections from "
				    "198.18.0.3"));
	cr_expect_eq(smtp_service_get_stats(svc)->rej_conn_rate, 1);
	cr_expect_eq(smtp_service_get_stats(svc)->accepted, 2, "the refused one holds no slot");
	send_message(&cl[0]);
	cr_assert(wait_text(&cl[0], "250 2.0.0 Ok: queued as "));
	cl[0].rxlen = 0;
	send_str(&cl[0], "MAIL FROM:<a@x.org>\r\n");
	cr_assert(wait_text(&cl[0], "452 4.7.1 Error: too much mail from 198.18.0.3"));
	cr_expect_eq(smtp_service_get_stats(svc)->rej_msg_rate, 1);
	/* a window later the client has its allowance again */
	w.a.ns.now_ns += 60 * NS_PER_SEC;
	cl[0].rxlen = 0;
	send_str(&cl[0], "MAIL FROM:<a@x.org>\r\n");
	cr_assert(wait_text(&cl[0], "250 2.1.0 Ok"));
	smtp_service_destroy(svc);
	svc = NULL;
	cl_free(limits.clients);
	limits.clients = NULL;
}

/* A connection flood over its rate logs its refusals only while more than
 * half of the lcore's question slots are free: the rest stay for reverse
 * names and AUTH. */
Test(smtp_service, rate_refusal_lines_leave_slots_for_questions)
{
	struct ask *a[8];
	unsigned n;

	limits.clients = cl_create(7);
	cr_assert_not_null(limits.clients);
	conf.rates.window_ns = 60 * NS_PER_SEC;
	conf.rates.addr[CL_CONN] = 1;
	start();
	asks = ask_port_create(4);
	cr_assert_not_null(asks);
	smtp_service_set_asks(svc, asks);
	connect_client(&cl[0]);
	for (int i = 1; i < 4; i++) {
		cr_assert_not_null(tcp_connect(w.b.ts, tip("198.18.0.2"), rte_cpu_to_be_16(25),
					       &tapp_cb, &cl[i]));
		cr_assert(wait_text(&cl[i], "421 4.7.0 mx.test Error: too many connections"));
	}
	cr_expect_eq(smtp_service_get_stats(svc)->rej_conn_rate, 3);
	n = ask_take(asks, a, 8);
	cr_expect_eq(n, 2, "two lines logged, then the reserve: %u", n);
	for (unsigned i = 0; i < n; i++) {
		cr_expect_eq(a[i]->kind, ASK_MAILLOG);
		cr_expect(strstr(a[i]->text, "warning: Connection rate limit exceeded: 1 from "
				 "unknown[198.18.0.3] for service smtp") != NULL, "%s", a[i]->text);
		ask_answer(asks, a[i]);
	}
	cr_expect_eq(smtp_service_get_stats(svc)->rate_log_skipped, 1);
	smtp_service_destroy(svc);
	svc = NULL;
	ask_port_free(asks);
	asks = NULL;
	cl_free(limits.clients);
	limits.clients = NULL;
}

/* Fill out[0..len) with dot-separated labels of 63 'c' at most: a domain
 * of exactly len octets. */
static void long_domain(char *out, size_t len, char c)
{
	for (size_t i = 0; i < len; i++)
		out[i] = (i + 1) % 64 == 0 ? '.' : c;
	out[len] = '\0';
}

/* The NOQUEUE line at its longest (a reverse name and a HELO of 255
 * octets, sender and recipient of 254, the relay refusal quoting the
 * recipient) reaches the mail log whole: the ask's text holds the longest
 * line the format can make. */
Test(smtp_service, the_longest_noqueue_line_is_logged_whole)
{
	char name[256], helo[256], from[255], to[255], cmd[1024], text[600], want[2048];
	struct ask *a[4];

	cr_assert_eq(smtp_policy_init(&policy, "10.0.0.0/8", "y.net"), 0);	/* no relay */
	long_domain(name, 255, 'n');
	long_domain(helo, 255, 'h');
	memset(from, 'f', 64);
	from[64] = '@';
	long_domain(from + 65, 189, 's');
	memset(to, 't', 64);
	to[64] = '@';
	long_domain(to + 65, 189, 'r');
	conf.rdns_wait_ns = 5 * NS_PER_SEC;
	start();
	asks = ask_port_create(8);
	smtp_service_set_asks(svc, asks);
	connect_client(&cl[0]);
	cr_assert_eq(take_questions(a, 4), 1);
	cr_assert_eq(a[0]->kind, ASK_RDNS);
	snprintf(a[0]->text, sizeof(a[0]->text), "%s", name);
	ask_answer(asks, a[0]);
	snprintf(cmd, sizeof(cmd), "EHLO %s\r\n", helo);
	send_str(&cl[0], cmd);
	cr_assert(wait_text(&cl[0], "250 "));
	snprintf(cmd, sizeof(cmd), "MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\n", from, to);
	send_str(&cl[0], cmd);
	cr_assert(wait_text(&cl[0], "554 5.7.1 "));
	cr_assert_eq(take_questions(a, 4), 1);
	cr_assert_eq(a[0]->kind, ASK_MAILLOG);
	snprintf(text, sizeof(text), "554 5.7.1 <%s>: Relay access denied", to);
	snprintf(want, sizeof(want), "NOQUEUE: reject: RCPT from %s[198.18.0.3]: %s; "
		 "from=<%s> to=<%s> proto=ESMTP helo=<%s>", name, text, from, to, helo);
	cr_assert_gt(strlen(want), 1300);
	cr_expect_str_eq(a[0]->text, want);
	ask_answer(asks, a[0]);
	smtp_service_destroy(svc);
	svc = NULL;
	ask_port_free(asks);
	asks = NULL;
}
