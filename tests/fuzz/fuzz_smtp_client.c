/*
 * fuzz_smtp_client.c - libFuzzer harness: arbitrary next-hop bytes into the
 * SMTP client engine (replies, EHLO keywords, STARTTLS, pipelined groups,
 * DATA and BDAT), with a caller that does what the delivery service will:
 * two messages per connection, then QUIT.
 *
 * Input layout: [flags][split][bytes...]. flags bits 0-1: TLS policy
 * (none, may, encrypt, verify); bit 2: pipelining allowed; bit 3: chunking
 * allowed; bit 4: the TLS handshake fails; bit 5: the first message is
 * 8BITMIME; bit 6: it is SMTPUTF8; bit 7: the input ends with a lost
 * connection (else a timeout). The bytes are fed three ways - at once, as
 * two calls cut at split * len / 255, and (for short inputs) one byte per
 * call, the body then fed in pieces of 1..7 octets - each call resumed
 * after the engine's events until everything is consumed. All three must
 * produce the same output, events and results: the engine must not depend
 * on how TCP segments the stream or how the caller cuts the body.
 *
 * Invariants checked (abort on violation):
 *  - the engine never stalls: with output drained and no event pending it
 *    consumes input; at SCE_BODY it takes body bytes, writes output or
 *    changes the event;
 *  - output per peek <= SMTP_CLIENT_OUT_MAX, and the whole output stream
 *    holds no bare CR or LF;
 *  - every result has a valid status ("2|4|5.d{1,3}.d{1,3}"), a code of 0
 *    or 200..599, a NUL-terminated printable text; every recipient of a
 *    finished message has a final one;
 *  - after SCE_CLOSE every input is consumed and ignored.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/smtp/smtp_client.h"

#define CHECK(x) do { if (!(x)) abort(); } while (0)

static struct smtp_client_conn conn;
static struct smtp_client_conf conf;
static struct smtp_client_stats stats;
static uint8_t flags;
static int bytewise;		/* this run: body in small pieces */

static const struct smtp_client_rcpt rcpt0[] = {
	{ .addr = "a@example.net", .notify = SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE,
	  .orcpt = "rfc822;a@example.net" },
	{ .addr = "b@example.net", .notify = SMTP_NOTIFY_NEVER },
	{ .addr = "bad\naddress@example.net" },
};
static const struct smtp_client_rcpt rcpt1[] = { { .addr = "j\xc3\xb6rg@example.net" } };
static struct smtp_client_msg msg[2];
static char body1[20000];
static const char body0[] = ".starts with a dot\r\n.\r\nbare\nLF and bare\rCR\r\n\r\n.."
	"\r\nno final line end";
static struct smtp_client_result mres[2], rres[2][3];

struct result {
	uint64_t hash;
	size_t out_len;
	unsigned events;
};
static struct result cur;
static unsigned sent;		/* messages given this run */
static size_t body_off;
static uint8_t last_out;	/* last output octet of the run, for bare CR/LF */

static void mix(const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		cur.hash = (cur.hash ^ b[i]) * 0x100000001b3ull;
}

static void check_output(void)
{
	const char *p;
	size_t n;
	while ((n = smtp_client_peek_output(&conn, &p)) > 0) {
		CHECK(n <= SMTP_CLIENT_OUT_MAX);
		for (size_t i = 0; i < n; i++) {
			uint8_t c = (uint8_t)p[i];
			if (c == '\n')
				CHECK(last_out == '\r');
			if (last_out == '\r')
				CHECK(c == '\n');
			last_out = c;
		}
		mix(p, n);
		cur.out_len += n;
		smtp_client_consume_output(&conn, n);
	}
}

static void check_result(const struct smtp_client_result *r)
{
	CHECK(r->code == 0 || (r->code >= 200 && r->code <= 599));
	const char *s = r->status;
	CHECK(memchr(s, '\0', sizeof(r->status)) != NULL);
	CHECK(s[0] == '2' || s[0] == '4' || s[0] == '5');
	CHECK(s[1] == '.');
	size_t i = 2, d = 0;
	while (s[i] >= '0' && s[i] <= '9') { i++; d++; }
	CHECK(d >= 1 && d <= 3 && s[i] == '.');
	i++;
	d = 0;
	while (s[i] >= '0' && s[i] <= '9') { i++; d++; }
	CHECK(d >= 1 && d <= 3 && s[i] == '\0');
	CHECK(memchr(r->text, '\0', sizeof(r->text)) != NULL);
	for (const char *t = r->text; *t; t++)
		CHECK(*t >= ' ' && *t < 0x7f);
	mix(&r->code, sizeof(r->code));
	mix(r->status, strlen(r->status));
	mix(r->text, strlen(r->text));
	if (r->stage)
		mix(r->stage, strlen(r->stage));
}

/* A finished message: every result final (none left as smtp_client_send
 * initialised it). */
static void check_message(unsigned k)
{
	check_result(&mres[k]);
	CHECK(strcmp(mres[k].text, "no result") != 0);
	for (unsigned i = 0; i < msg[k].nrcpt; i++) {
		check_result(&rres[k][i]);
		CHECK(strcmp(rres[k][i].text, "no result") != 0);
	}
}

static void next_or_quit(void)
{
	if (sent < 2) {
		body_off = 0;
		CHECK(smtp_client_send(&conn, &msg[sent], &mres[sent], rres[sent]) == 0);
		sent++;
	} else {
		CHECK(smtp_client_quit(&conn) == 0);
	}
}

static void feed_body(void)
{
	const char *b = sent == 1 ? body0 : body1;
	size_t n = sent == 1 ? sizeof(body0) - 1 : sizeof(body1), piece = 1;
	while (smtp_client_event(&conn) == SCE_BODY) {
		size_t k = n - body_off;
		if (bytewise && k > piece)
			k = piece;
		piece = piece % 7 + 1;
		size_t out_before = cur.out_len;
		size_t took = smtp_client_body(&conn, b + body_off, k, body_off + k == n);
		CHECK(took <= k);
		body_off += took;
		check_output();
		CHECK(took > 0 || cur.out_len > out_before ||
		      smtp_client_event(&conn) != SCE_BODY);	/* no stall */
	}
}

/* Act on the pending event. Returns false once the session is over. */
static bool act(void)
{
	enum smtp_client_event ev = smtp_client_event(&conn);
	if (ev != SCE_NONE) {
		uint8_t e = (uint8_t)ev;
		mix(&e, 1);
		cur.events++;
	}
	switch (ev) {
	case SCE_READY:
		CHECK(sent == 0);
		next_or_quit();
		break;
	case SCE_DONE:
		CHECK(sent >= 1);
		check_message(sent - 1);
		next_or_quit();
		break;
	case SCE_BODY:
		feed_body();
		break;
	case SCE_STARTTLS:
		if (flags & 16)
			CHECK(smtp_client_tls_failed(&conn, "handshake failure") == 0);
		else
			CHECK(smtp_client_tls_started(&conn) == 0);
		break;
	case SCE_CLOSE:
		return false;
	default:
		break;
	}
	check_output();
	return true;
}

/* Feed one piece completely, acting on events. Returns false once closed. */
static bool feed(const uint8_t *d, size_t n)
{
	size_t done = 0;
	for (;;) {
		/* each action makes progress: a message given, QUIT, the body
		 * fed, the handshake answered; two messages at most */
		while (smtp_client_event(&conn) != SCE_NONE &&
		       smtp_client_event(&conn) != SCE_CLOSE)
			act();
		if (smtp_client_event(&conn) == SCE_CLOSE) {
			CHECK(smtp_client_input(&conn, d + done, n - done) == n - done);
			return false;
		}
		if (done == n)
			return true;
		size_t c = smtp_client_input(&conn, d + done, n - done);
		CHECK(c <= n - done);
		CHECK(c > 0);	/* no stall: no event was pending */
		done += c;
		check_output();
	}
}

static struct result run(const uint8_t *p, size_t n, size_t cut, size_t step)
{
	memset(&cur, 0, sizeof(cur));
	cur.hash = 0xcbf29ce484222325ull;
	sent = 0;
	last_out = 0;
	memset(mres, 0, sizeof(mres));
	memset(rres, 0, sizeof(rres));
	bytewise = step == 1;
	smtp_client_init(&conn, &conf, &stats);
	smtp_client_connected(&conn);
	bool open = feed(p, cut);
	for (size_t off = cut; open && off < n;) {
		size_t k = step == 0 || step > n - off ? n - off : step;
		open = feed(p + off, k);
		off += k;
	}
	if (open) {
		if (flags & 128)
			smtp_client_lost(&conn, "connection reset");
		else
			smtp_client_timeout(&conn);
		check_output();
	}
	CHECK(smtp_client_event(&conn) == SCE_CLOSE);
	CHECK(smtp_client_timeout_ns(&conn) == 0);
	CHECK(smtp_client_input(&conn, "250 ok\r\n", 8) == 8);
	if (smtp_client_session_result(&conn))
		check_result(smtp_client_session_result(&conn));
	/* a message in flight when it closed has its results too */
	if (sent > 0)
		check_message(sent - 1);
	CHECK(last_out != '\r');
	uint8_t site = smtp_client_site_failure(&conn);
	mix(&site, 1);
	return cur;
}

static bool same(const struct result *a, const struct result *b)
{
	return a->hash == b->hash && a->out_len == b->out_len && a->events == b->events;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	flags = data[0];
	size_t n = size - 2, cut = (size_t)data[1] * n / 255;
	const uint8_t *p = data + 2;

	smtp_client_conf_default(&conf);
	memcpy(conf.helo, "relay.fuzz.test", 16);
	conf.tls = (enum smtp_client_tls)(flags & 3);
	conf.pipelining = flags & 4;
	conf.chunking = flags & 8;
	if (body1[0] == '\0') {
		for (size_t i = 0; i < sizeof(body1); i++)
			body1[i] = i % 61 == 60 ? '\n' : (i % 61 == 59 ? '\r' : (i % 61 == 0 ? '.' : 'x'));
	}
	msg[0] = (struct smtp_client_msg){
		.sender = "s@sluice.test", .envid = "ENV+2B1", .ret = SMTP_RET_HDRS,
		.nrcpt = 3, .rcpt = rcpt0, .size = sizeof(body0) - 1,
		.body_flags = (uint8_t)(((flags & 32) ? SMTP_CLIENT_BODY_8BITMIME : 0) |
					((flags & 64) ? SMTP_CLIENT_BODY_SMTPUTF8 : 0)),
	};
	msg[1] = (struct smtp_client_msg){
		.sender = "", .nrcpt = 1, .rcpt = rcpt1, .size = sizeof(body1),
	};

	struct result whole = run(p, n, 0, 0);
	struct result split = run(p, n, cut, 0);
	CHECK(same(&whole, &split));
	if (n <= 1024) {
		struct result bytes = run(p, n, 0, 1);
		CHECK(same(&whole, &bytes));
	}
	return 0;
}
