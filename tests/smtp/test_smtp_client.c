/*
 * test_smtp_client.c - the outbound client engine against scripted next
 * hops, without TCP: greeting, EHLO and its keywords, HELO fallback,
 * pipelined and one-by-one transactions, DATA with dot-stuffing and BDAT,
 * SIZE/8BITMIME/SMTPUTF8 refusals, DSN parameters by capability, STARTTLS
 * and the TLS policies, per-recipient results, RSET and the next message,
 * QUIT, site failures, protocol errors, and every timeout per state.
 *
 * Every scenario runs twice: once with each scripted reply fed in one call
 * and the body in one piece, once with replies fed one byte per call and
 * the body in pieces of 1..7 bytes. Each run checks the exact bytes the
 * engine writes and the results; the two runs' transcripts (all output,
 * every event, all results, all counters) must then be identical.
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "dataplane/smtp/smtp_client.h"

#define TR_MAX (1u << 20)
#define OUT_CAP (1u << 20)

struct ct {
	struct smtp_client_conf conf;
	struct smtp_client_stats st;
	struct smtp_client_conn c;
	int mode;			/* 0 whole, 1 byte by byte */
	char *out;			/* output since the last check */
	size_t out_len;
	char *tr;			/* transcript of the whole run */
	size_t tr_len;
	enum smtp_client_event last_ev;
	struct smtp_client_result mres, rres[8];
};

static void tr_add(struct ct *h, const char *p, size_t n)
{
	cr_assert_lt(h->tr_len + n, TR_MAX);
	memcpy(h->tr + h->tr_len, p, n);
	h->tr_len += n;
	h->tr[h->tr_len] = '\0';
}

static void tr_printf(struct ct *h, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	tr_add(h, buf, (size_t)n);
}

/* After every call into the engine: take its output, note event changes. */
static void settle(struct ct *h)
{
	const char *p;
	size_t n;
	while ((n = smtp_client_peek_output(&h->c, &p)) > 0) {
		cr_assert_lt(h->out_len + n, OUT_CAP);
		memcpy(h->out + h->out_len, p, n);
		h->out_len += n;
		h->out[h->out_len] = '\0';
		tr_add(h, p, n);
		smtp_client_consume_output(&h->c, n);
	}
	enum smtp_client_event ev = smtp_client_event(&h->c);
	if (ev != h->last_ev) {
		tr_printf(h, "<ev %d>", (int)ev);
		h->last_ev = ev;
	}
}

static struct ct *ct_new(int mode)
{
	struct ct *h = calloc(1, sizeof(*h));
	cr_assert_not_null(h);
	h->out = malloc(OUT_CAP);
	h->tr = malloc(TR_MAX);
	cr_assert(h->out && h->tr);
	h->out[0] = h->tr[0] = '\0';
	h->mode = mode;
	smtp_client_conf_default(&h->conf);
	snprintf(h->conf.helo, sizeof(h->conf.helo), "relay.sluice.test");
	h->conf.tls = SCT_NONE;
	return h;
}

static void ct_start(struct ct *h)
{
	const char *why = NULL;
	cr_assert_eq(smtp_client_conf_check(&h->conf, &why), 0, "%s", why);
	smtp_client_init(&h->c, &h->conf, &h->st);
	cr_assert_eq(smtp_client_timeout_ns(&h->c), h->conf.t_connect_ns);
	smtp_client_connected(&h->c);
	settle(h);
}

static void ct_free(struct ct *h)
{
	free(h->out);
	free(h->tr);
	free(h);
}

/* Feed the next hop's bytes; returns how many the engine consumed. */
static size_t feed(struct ct *h, const char *s, size_t n)
{
	size_t done = 0;
	if (h->mode == 0) {
		done = smtp_client_input(&h->c, s, n);
		settle(h);
		return done;
	}
	while (done < n) {
		size_t k = smtp_client_input(&h->c, s + done, 1);
		settle(h);
		if (k == 0)
			break;
		done += k;
	}
	return done;
}

/* Feed a script that must be consumed entirely. */
static void srv(struct ct *h, const char *s)
{
	size_t n = strlen(s);
	size_t k = feed(h, s, n);
	cr_assert_eq(k, n, "consumed %zu of %zu (event %d)", k, n, smtp_client_event(&h->c));
}

/* Expect exactly this output since the last check. */
static void out_is(struct ct *h, const char *want)
{
	cr_assert_str_eq(h->out, want);
	h->out_len = 0;
	h->out[0] = '\0';
}

static void ev_is(struct ct *h, enum smtp_client_event e)
{
	cr_assert_eq(smtp_client_event(&h->c), e, "event %d, want %d",
		     smtp_client_event(&h->c), e);
}

static void send_msg(struct ct *h, const struct smtp_client_msg *m)
{
	cr_assert_leq(m->nrcpt, 8);
	cr_assert_eq(smtp_client_send(&h->c, m, &h->mres, h->rres), 0);
	settle(h);
}

/* Feed a body while the engine wants it: whole, or in pieces of 1..7. */
static void body(struct ct *h, const char *b, size_t n)
{
	size_t done = 0, piece = 1;
	ev_is(h, SCE_BODY);
	for (int guard = 0; guard < 10000000; guard++) {
		if (smtp_client_event(&h->c) != SCE_BODY)
			return;
		size_t k = h->mode == 0 ? n - done : (n - done < piece ? n - done : piece);
		bool last = done + k == n;
		size_t took = smtp_client_body(&h->c, b + done, k, last);
		settle(h);
		done += took;
		piece = piece % 7 + 1;
	}
	cr_assert_fail("body never ended");
}

static void res_dump(struct ct *h, const char *what, const struct smtp_client_result *r)
{
	tr_printf(h, "[%s %d %s %s |%s]", what, r->code, r->status, r->stage ? r->stage : "-",
		  r->text);
}

static void res_is(const struct smtp_client_result *r, int code, const char *status)
{
	cr_assert_eq(r->code, code, "code %d, want %d (%s)", r->code, code, r->text);
	cr_assert_str_eq(r->status, status, "(%s)", r->text);
	for (const char *t = r->text; *t; t++)
		cr_assert(*t >= ' ' && *t < 0x7f, "unprintable in result text");
}

typedef void (*scenario_fn)(struct ct *h);

static void run_both(scenario_fn f, void (*setup)(struct smtp_client_conf *))
{
	char *tr[2];
	for (int mode = 0; mode < 2; mode++) {
		struct ct *h = ct_new(mode);
		if (setup)
			setup(&h->conf);
		ct_start(h);
		f(h);
		res_dump(h, "msg", &h->mres);
		for (int i = 0; i < 8; i++)
			res_dump(h, "rcpt", &h->rres[i]);
		const uint64_t *v = STATS_VALUES(&h->st);
		for (size_t i = 0; i < smtp_client_stat_count; i++)
			tr_printf(h, " %s=%llu", smtp_client_stat_names[i], (unsigned long long)v[i]);
		if (smtp_client_session_result(&h->c))
			res_dump(h, "session", smtp_client_session_result(&h->c));
		tr_printf(h, " site=%d", smtp_client_site_failure(&h->c));
		tr[mode] = strdup(h->tr);
		ct_free(h);
	}
	cr_assert_str_eq(tr[0], tr[1], "whole and byte-by-byte runs differ");
	free(tr[0]);
	free(tr[1]);
}

#define SCENARIO_SETUP(name, setup) \
	static void sc_##name(struct ct *h); \
	Test(client, name) { run_both(sc_##name, setup); } \
	static void sc_##name(struct ct *h)
#define SCENARIO(name) SCENARIO_SETUP(name, NULL)

/* ---- scripts ------------------------------------------------------------- */

#define GREET "220 mx.example.net ESMTP ready\r\n"
#define EHLO_CMD "EHLO relay.sluice.test\r\n"
/* a next hop with everything but CHUNKING and STARTTLS */
#define EHLO_DATA "250-mx.example.net Hello\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n" \
	"250-8BITMIME\r\n250-SMTPUTF8\r\n250-DSN\r\n250 ENHANCEDSTATUSCODES\r\n"
/* ... and one with CHUNKING too */
#define EHLO_BDAT "250-mx.example.net\r\n250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n" \
	"250-CHUNKING\r\n250 ENHANCEDSTATUSCODES\r\n"
/* RFC 821-ish ESMTP: nothing at all */
#define EHLO_BARE "250 mx.example.net\r\n"

static void greet(struct ct *h, const char *ehlo_reply)
{
	cr_assert_eq(smtp_client_timeout_ns(&h->c), h->conf.t_greeting_ns);
	srv(h, GREET);
	out_is(h, EHLO_CMD);
	cr_assert_eq(smtp_client_timeout_ns(&h->c), h->conf.t_ehlo_ns);
	srv(h, ehlo_reply);
	ev_is(h, SCE_READY);
	cr_assert_eq(smtp_client_timeout_ns(&h->c), 0, "idle: nothing expected");
}

static const struct smtp_client_rcpt R3[] = {
	{ .addr = "a@example.net" }, { .addr = "b@example.net" }, { .addr = "c@example.net" },
};
static const struct smtp_client_msg M3 = {
	.sender = "s@sluice.test", .nrcpt = 3, .rcpt = R3, .size = 100,
};
static const struct smtp_client_rcpt R1[] = { { .addr = "a@example.net" } };
static const struct smtp_client_msg M1 = {
	.sender = "s@sluice.test", .nrcpt = 1, .rcpt = R1, .size = 10,
};

/* ---- session set-up ---------------------------------------------------- */

SCENARIO(ehlo_keywords_and_ready)
{
	greet(h, "250-mx.example.net says hi\r\n250-pipelining\r\n250-SIZE 52428800\r\n"
	      "250-8BITMIME\r\n250-SMTPUTF8\r\n250-DSN\r\n250-CHUNKING\r\n250-STARTTLS\r\n"
	      "250-AUTH PLAIN LOGIN\r\n250 ENHANCEDSTATUSCODES\r\n");
	const struct smtp_client_caps *k = smtp_client_caps(&h->c);
	cr_assert(k->esmtp && k->pipelining && k->size && k->eightbit && k->smtputf8 &&
		  k->dsn && k->chunking && k->starttls && k->enhanced);
	cr_assert_eq(k->size_max, 52428800);
	cr_assert_eq(h->st.replies, 2);
	cr_assert_null(smtp_client_session_result(&h->c));
	cr_assert_eq(smtp_client_quit(&h->c), 0);
	settle(h);
	out_is(h, "QUIT\r\n");
	cr_assert_eq(smtp_client_timeout_ns(&h->c), h->conf.t_quit_ns);
	srv(h, "221 2.0.0 Bye\r\n");
	ev_is(h, SCE_CLOSE);
	cr_assert_not(smtp_client_site_failure(&h->c));
	cr_assert_null(smtp_client_session_result(&h->c));
}

SCENARIO(ehlo_bare_has_no_extensions)
{
	greet(h, EHLO_BARE);
	const struct smtp_client_caps *k = smtp_client_caps(&h->c);
	cr_assert(k->esmtp);
	cr_assert_not(k->pipelining || k->size || k->eightbit || k->dsn || k->chunking);
}

SCENARIO(multiline_greeting_and_size_without_number)
{
	srv(h, "220-mx.example.net ESMTP\r\n220-no UCE\r\n220 ready\r\n");
	out_is(h, EHLO_CMD);
	srv(h, "250-mx\r\n250-SIZE\r\n250 SIZE x\r\n");
	ev_is(h, SCE_READY);
	cr_assert(smtp_client_caps(&h->c)->size);
	cr_assert_eq(smtp_client_caps(&h->c)->size_max, 0, "no usable number: no limit");
}

SCENARIO(helo_fallback_when_ehlo_refused)
{
	srv(h, GREET);
	out_is(h, EHLO_CMD);
	srv(h, "502 5.5.2 Error: command not recognized\r\n");
	out_is(h, "HELO relay.sluice.test\r\n");
	cr_assert_eq(smtp_client_timeout_ns(&h->c), h->conf.t_ehlo_ns);
	srv(h, "250 mx.example.net\r\n");
	ev_is(h, SCE_READY);
	cr_assert_not(smtp_client_caps(&h->c)->esmtp);
	cr_assert_eq(h->st.helo_fallback, 1);
	/* no extensions: one command at a time, no parameters */
	send_msg(h, &M1);
	out_is(h, "MAIL FROM:<s@sluice.test>\r\n");
	srv(h, "250 ok\r\n");
	out_is(h, "RCPT TO:<a@example.net>\r\n");
	srv(h, "250 ok\r\n");
	out_is(h, "DATA\r\n");
	srv(h, "354 go\r\n");
	body(h, "x\r\n", 3);
	out_is(h, "x\r\n.\r\n");
	srv(h, "250 ok\r\n");
	ev_is(h, SCE_DONE);
	res_is(&h->rres[0], 250, "2.0.0");
}

SCENARIO(helo_refused_is_a_site_failure)
{
	srv(h, GREET);
	out_is(h, EHLO_CMD);
	srv(h, "500 no\r\n");
	out_is(h, "HELO relay.sluice.test\r\n");
	srv(h, "550 5.7.1 go away\r\n");
	out_is(h, "QUIT\r\n");
	cr_assert(smtp_client_site_failure(&h->c));
	res_is(smtp_client_session_result(&h->c), 550, "5.7.1");
	srv(h, "221 bye\r\n");
	ev_is(h, SCE_CLOSE);
}

SCENARIO(greeting_421_is_a_site_failure)
{
	srv(h, "421 4.3.2 mx.example.net Service not available\r\n");
	ev_is(h, SCE_CLOSE);
	out_is(h, "");	/* the server closes: no QUIT */
	cr_assert(smtp_client_site_failure(&h->c));
	const struct smtp_client_result *r = smtp_client_session_result(&h->c);
	cr_assert_not_null(r);
	res_is(r, 421, "4.3.2");
	cr_assert_str_eq(r->stage, "greeting");
	cr_assert_str_eq(r->text, "421 4.3.2 mx.example.net Service not available");
	cr_assert_eq(h->st.greet_fail, 1);
	cr_assert_eq(h->st.site_failures, 1);
	cr_assert_eq(smtp_client_send(&h->c, &M1, &h->mres, h->rres), -1);
}

SCENARIO(greeting_554_says_quit)
{
	srv(h, "554 5.7.1 no service for you\r\n");
	out_is(h, "QUIT\r\n");
	ev_is(h, SCE_NONE);
	srv(h, "221 2.0.0 Bye\r\n");
	ev_is(h, SCE_CLOSE);
	cr_assert(smtp_client_site_failure(&h->c));
	res_is(smtp_client_session_result(&h->c), 554, "5.7.1");
}

SCENARIO(greeting_450_no_enhanced_code)
{
	srv(h, "450 busy\r\n");
	out_is(h, "QUIT\r\n");
	cr_assert(smtp_client_site_failure(&h->c));
	res_is(smtp_client_session_result(&h->c), 450, "4.0.0");
}

SCENARIO(ehlo_421_is_a_site_failure)
{
	srv(h, GREET);
	out_is(h, EHLO_CMD);
	srv(h, "421 4.7.0 too many connections\r\n");
	ev_is(h, SCE_CLOSE);
	out_is(h, "");
	cr_assert(smtp_client_site_failure(&h->c));
	res_is(smtp_client_session_result(&h->c), 421, "4.7.0");
	cr_assert_str_eq(smtp_client_session_result(&h->c)->stage, "EHLO");
	cr_assert_eq(h->st.ehlo_fail, 1);
}

/* ---- transactions ------------------------------------------------------ */

SCENARIO(pipelined_data_with_recipient_mix)
{
	greet(h, EHLO_DATA);
	send_msg(h, &M3);
	/* one group: MAIL, every RCPT, DATA (RFC 2920) */
	out_is(h, "MAIL FROM:<s@sluice.test> SIZE=100\r\nRCPT TO:<a@example.net>\r\n"
	       "RCPT TO:<b@example.net>\r\nRCPT TO:<c@example.net>\r\nDATA\r\n");
	cr_assert_eq(smtp_client_timeout_ns(&h->c), h->conf.t_mail_ns);
	srv(h, "250 2.1.0 Ok\r\n");
	cr_assert_eq(smtp_client_timeout_ns(&h->c), h->conf.t_rcpt_ns);
	srv(h, "250 2.1.5 Ok\r\n450 4.2.0 <b@example.net>: greylisted\r\n"
	    "550 5.1.1 <c@example.net>: no such user\r\n");
	cr_assert_eq(smtp_client_timeout_ns(&h->c), h->conf.t_data_ns);
	srv(h, "354 End data with <CR><LF>.<CR><LF>\r\n");
	ev_is(h, SCE_BODY);
	cr_assert_eq(smtp_client_timeout_ns(&h->c), h->conf.t_block_ns);
	body(h, "Subject: hi\r\n\r\nbody\r\n", 21);
	out_is(h, "Subject: hi\r\n\r\nbody\r\n.\r\n");
	cr_assert_eq(smtp_client_timeout_ns(&h->c), h->conf.t_dot_ns);
	srv(h, "250 2.0.0 Ok: queued as 4XyZ\r\n");
	ev_is(h, SCE_DONE);
	res_is(&h->rres[0], 250, "2.0.0");
	cr_assert_str_eq(h->rres[0].text, "250 2.0.0 Ok: queued as 4XyZ");
	cr_assert_str_eq(h->rres[0].stage, "end of DATA");
	res_is(&h->rres[1], 450, "4.2.0");
	cr_assert_str_eq(h->rres[1].stage, "RCPT TO");
	res_is(&h->rres[2], 550, "5.1.1");
	cr_assert_str_eq(h->rres[2].text, "550 5.1.1 <c@example.net>: no such user");
	res_is(&h->mres, 250, "2.0.0");
	cr_assert_eq(h->st.rcpt_ok, 1);
	cr_assert_eq(h->st.rcpt_temp, 1);
	cr_assert_eq(h->st.rcpt_perm, 1);
	cr_assert_eq(h->st.msg_ok, 1);
	cr_assert_eq(h->st.pipelined, 1);
	cr_assert_not(smtp_client_site_failure(&h->c));
}

static void no_pipelining(struct smtp_client_conf *c)
{
	c->pipelining = false;
}

SCENARIO_SETUP(unpipelined_one_command_per_reply, no_pipelining)
{
	greet(h, EHLO_DATA);
	send_msg(h, &M3);
	out_is(h, "MAIL FROM:<s@sluice.test> SIZE=100\r\n");
	srv(h, "250 2.1.0 Ok\r\n");
	out_is(h, "RCPT TO:<a@example.net>\r\n");
	srv(h, "550 5.1.1 no\r\n");
	out_is(h, "RCPT TO:<b@example.net>\r\n");
	srv(h, "250 2.1.5 Ok\r\n");
	out_is(h, "RCPT TO:<c@example.net>\r\n");
	srv(h, "251 2.1.5 will forward\r\n");
	out_is(h, "DATA\r\n");
	srv(h, "354 go\r\n");
	body(h, "hi\r\n", 4);
	out_is(h, "hi\r\n.\r\n");
	srv(h, "250 2.0.0 Ok\r\n");
	ev_is(h, SCE_DONE);
	res_is(&h->rres[0], 550, "5.1.1");
	res_is(&h->rres[1], 250, "2.0.0");
	res_is(&h->rres[2], 250, "2.0.0");
	cr_assert_eq(h->st.pipelined, 0);
}

SCENARIO(dot_stuffing_and_line_ends)
{
	static const char in[] =
		".leading dot\r\n"
		"..two dots\r\n"
		".\r\n"			/* a lone dot must not end the message */
		"mid.dle\r\n"
		"bare\nLF\r\n"		/* normalised: CR LF */
		"bare\rCR\r\n"
		"\r\n"
		".\r\n"
		"no final CRLF";
	static const char want[] =
		"..leading dot\r\n"
		"...two dots\r\n"
		"..\r\n"
		"mid.dle\r\n"
		"bare\r\nLF\r\n"
		"bare\r\nCR\r\n"
		"\r\n"
		"..\r\n"
		"no final CRLF\r\n"	/* added */
		".\r\n";
	greet(h, EHLO_DATA);
	send_msg(h, &M1);
	out_is(h, "MAIL FROM:<s@sluice.test> SIZE=10\r\nRCPT TO:<a@example.net>\r\nDATA\r\n");
	srv(h, "250 ok\r\n250 ok\r\n354 go\r\n");
	body(h, in, sizeof(in) - 1);
	out_is(h, want);
	cr_assert_eq(h->st.bare_fixed, 2);
	cr_assert_eq(h->st.dots, 4);
	srv(h, "250 2.0.0 Ok\r\n");
	ev_is(h, SCE_DONE);
}

SCENARIO(body_ending_in_cr_dot_first_and_empty)
{
	greet(h, EHLO_DATA);
	send_msg(h, &M1);
	out_is(h, "MAIL FROM:<s@sluice.test> SIZE=10\r\nRCPT TO:<a@example.net>\r\nDATA\r\n");
	srv(h, "250 ok\r\n250 ok\r\n354 go\r\n");
	body(h, ".x\r", 3);
	out_is(h, "..x\r\n.\r\n");
	srv(h, "250 ok\r\n");
	ev_is(h, SCE_DONE);
	send_msg(h, &M1);
	out_is(h, "MAIL FROM:<s@sluice.test> SIZE=10\r\nRCPT TO:<a@example.net>\r\nDATA\r\n");
	srv(h, "250 ok\r\n250 ok\r\n354 go\r\n");
	body(h, "", 0);
	out_is(h, ".\r\n");
	srv(h, "250 ok\r\n");
	ev_is(h, SCE_DONE);
	res_is(&h->rres[0], 250, "2.0.0");
}

SCENARIO(bdat_when_chunking_offered)
{
	static const char in[] = ".no stuffing\r\n.\r\nbare\nLF\r\nend";
	greet(h, EHLO_BDAT);
	send_msg(h, &M3);
	/* MAIL and the RCPTs pipelined; no DATA */
	out_is(h, "MAIL FROM:<s@sluice.test> SIZE=100\r\nRCPT TO:<a@example.net>\r\n"
	       "RCPT TO:<b@example.net>\r\nRCPT TO:<c@example.net>\r\n");
	srv(h, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 no\r\n250 2.1.5 Ok\r\n");
	ev_is(h, SCE_BODY);
	body(h, in, sizeof(in) - 1);
	/* bare LF made CR LF, CR LF added at the end; 32 octets */
	out_is(h, "BDAT 32 LAST\r\n.no stuffing\r\n.\r\nbare\r\nLF\r\nend\r\n");
	cr_assert_eq(smtp_client_timeout_ns(&h->c), h->conf.t_dot_ns);
	srv(h, "250 2.0.0 Ok: 32 octets, queued as Q1\r\n");
	ev_is(h, SCE_DONE);
	res_is(&h->rres[0], 250, "2.0.0");
	res_is(&h->rres[1], 550, "5.1.1");
	res_is(&h->rres[2], 250, "2.0.0");
	cr_assert_str_eq(h->rres[2].stage, "BDAT");
	cr_assert_eq(h->st.bdat, 1);
	cr_assert_eq(h->st.dots, 0);
}

/* A body of `n` octets of lines "line NNNNN\r\n" (n a multiple of 12). */
static char *lines(size_t n)
{
	char *b = malloc(n + 1);
	cr_assert_not_null(b);
	for (size_t i = 0; i < n; i += 12)
		snprintf(b + i, 13, "line %05zu\r\n", (i / 12) % 100000);
	return b;
}

SCENARIO(bdat_big_body_pipelined_chunks)
{
	size_t n = 12 * 4000;	/* 48000 octets: three chunks */
	char *b = lines(n);
	greet(h, EHLO_BDAT);
	send_msg(h, &M1);
	out_is(h, "MAIL FROM:<s@sluice.test> SIZE=10\r\nRCPT TO:<a@example.net>\r\n");
	srv(h, "250 ok\r\n250 ok\r\n");
	body(h, b, n);
	/* chunks of SMTP_CLIENT_CHUNK_MAX whatever the pieces were */
	char want[64];
	size_t off = 0;
	for (int k = 0; k < 3; k++) {
		size_t len = k < 2 ? SMTP_CLIENT_CHUNK_MAX : n - 2 * SMTP_CLIENT_CHUNK_MAX;
		int hl = snprintf(want, sizeof(want), "BDAT %zu%s\r\n", len, k == 2 ? " LAST" : "");
		cr_assert_eq(memcmp(h->out + off, want, (size_t)hl), 0, "chunk %d header", k);
		off += (size_t)hl;
		cr_assert_eq(memcmp(h->out + off, b + (size_t)k * SMTP_CLIENT_CHUNK_MAX, len), 0);
		off += len;
	}
	cr_assert_eq(off, h->out_len);
	out_is(h, h->out);
	/* the earlier chunks' replies come first: the block timeout applies */
	cr_assert_eq(smtp_client_timeout_ns(&h->c), h->conf.t_block_ns);
	srv(h, "250 2.0.0 16000 octets\r\n250 2.0.0 16000 octets\r\n");
	cr_assert_eq(smtp_client_timeout_ns(&h->c), h->conf.t_dot_ns);
	srv(h, "250 2.0.0 queued\r\n");
	ev_is(h, SCE_DONE);
	res_is(&h->rres[0], 250, "2.0.0");
	cr_assert_str_eq(h->rres[0].text, "250 2.0.0 queued");
	free(b);
}

SCENARIO_SETUP(bdat_unpipelined_waits_for_each_chunk, no_pipelining)
{
	size_t n = 12 * 2000;	/* 24000 octets: two chunks */
	char *b = lines(n);
	greet(h, EHLO_BDAT);
	send_msg(h, &M1);
	out_is(h, "MAIL FROM:<s@sluice.test> SIZE=10\r\n");
	srv(h, "250 ok\r\n");
	out_is(h, "RCPT TO:<a@example.net>\r\n");
	srv(h, "250 ok\r\n");
	ev_is(h, SCE_BODY);
	/* feed it all: the engine takes the first chunk, then waits */
	size_t took = smtp_client_body(&h->c, b, n, true);
	settle(h);
	cr_assert_eq(took, SMTP_CLIENT_CHUNK_MAX);
	ev_is(h, SCE_NONE);
	cr_assert_eq(smtp_client_timeout_ns(&h->c), h->conf.t_block_ns);
	cr_assert_eq(memcmp(h->out, "BDAT 16000\r\nline 00000\r\n", 24), 0);
	cr_assert_eq(h->out_len, 12 + SMTP_CLIENT_CHUNK_MAX);
	out_is(h, h->out);
	cr_assert_eq(smtp_client_body(&h->c, b + took, n - took, true), 0, "not now");
	srv(h, "250 2.0.0 16000 octets received\r\n");
	ev_is(h, SCE_BODY);
	took += smtp_client_body(&h->c, b + took, n - took, true);
	settle(h);
	cr_assert_eq(took, n);
	cr_assert_eq(memcmp(h->out, "BDAT 8000 LAST\r\n", 16), 0);
	cr_assert_eq(memcmp(h->out + 16, b + SMTP_CLIENT_CHUNK_MAX, 8000), 0);
	out_is(h, h->out);
	srv(h, "250 2.0.0 queued\r\n");
	ev_is(h, SCE_DONE);
	res_is(&h->rres[0], 250, "2.0.0");
	free(b);
}

SCENARIO_SETUP(bdat_chunk_refused, no_pipelining)
{
	size_t n = 12 * 2000;
	char *b = lines(n);
	greet(h, EHLO_BDAT);
	send_msg(h, &M1);
	srv(h, "250 ok\r\n");
	srv(h, "250 ok\r\n");
	out_is(h, "MAIL FROM:<s@sluice.test> SIZE=10\r\nRCPT TO:<a@example.net>\r\n");
	cr_assert_eq(smtp_client_body(&h->c, b, n, true), SMTP_CLIENT_CHUNK_MAX);
	settle(h);
	out_is(h, h->out);
	srv(h, "552 5.3.4 message too big\r\n");
	ev_is(h, SCE_DONE);	/* stop feeding: no more chunks (RFC 3030 2) */
	res_is(&h->rres[0], 552, "5.3.4");
	cr_assert_str_eq(h->rres[0].stage, "BDAT");
	/* the next message starts with RSET */
	send_msg(h, &M1);
	out_is(h, "RSET\r\n");
	cr_assert_eq(smtp_client_timeout_ns(&h->c), h->conf.t_rset_ns);
	srv(h, "250 2.0.0 Ok\r\n");
	out_is(h, "MAIL FROM:<s@sluice.test> SIZE=10\r\n");
	free(b);
}

static void no_chunking(struct smtp_client_conf *c)
{
	c->chunking = false;
}

SCENARIO_SETUP(chunking_switched_off_uses_data, no_chunking)
{
	greet(h, EHLO_BDAT);
	send_msg(h, &M1);
	out_is(h, "MAIL FROM:<s@sluice.test> SIZE=10\r\nRCPT TO:<a@example.net>\r\nDATA\r\n");
}

static const struct smtp_client_rcpt RDSN[] = {
	{ .addr = "a@example.net", .notify = SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE,
	  .orcpt = "rfc822;a@example.net" },
	{ .addr = "b@example.net", .notify = SMTP_NOTIFY_NEVER },
	{ .addr = "c@example.net", .notify = SMTP_NOTIFY_DELAY | SMTP_NOTIFY_FAILURE,
	  .orcpt = "bad orcpt" },
};
static const struct smtp_client_msg MDSN = {
	.sender = "s@sluice.test", .envid = "QQ123+2Bx", .ret = SMTP_RET_HDRS,
	.nrcpt = 3, .rcpt = RDSN, .size = 5000,
};

SCENARIO(dsn_parameters_when_offered)
{
	greet(h, EHLO_DATA);
	send_msg(h, &MDSN);
	out_is(h, "MAIL FROM:<s@sluice.test> SIZE=5000 RET=HDRS ENVID=QQ123+2Bx\r\n"
	       "RCPT TO:<a@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@example.net\r\n"
	       "RCPT TO:<b@example.net> NOTIFY=NEVER\r\n"
	       "RCPT TO:<c@example.net> NOTIFY=FAILURE,DELAY\r\n"	/* bad ORCPT dropped */
	       "DATA\r\n");
	cr_assert_eq(h->st.dsn_passed, 1);
}

/* A transfer's queue state goes as XSLUICE= to a box that offers it, and
 * never to a next hop that does not. */
SCENARIO(xsluice_only_when_offered)
{
	static const struct smtp_client_msg mx = {
		.sender = "s@sluice.test", .nrcpt = 1, .rcpt = RDSN, .size = 10,
		.xsluice = "1700000000.2.1700003600.1700432000.451+20busy",
	};
	greet(h, "250-box2.example.net\r\n250-PIPELINING\r\n250-SIZE\r\n250-DSN\r\n"
		 "250 XSLUICE\r\n");
	send_msg(h, &mx);
	out_is(h, "MAIL FROM:<s@sluice.test> SIZE=10 "
	       "XSLUICE=1700000000.2.1700003600.1700432000.451+20busy\r\n"
	       "RCPT TO:<a@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@example.net\r\n"
	       "DATA\r\n");
}

SCENARIO(xsluice_not_sent_unless_offered)
{
	static const struct smtp_client_msg mx = {
		.sender = "s@sluice.test", .nrcpt = 1, .rcpt = RDSN, .size = 10,
		.xsluice = "1700000000.2.1700003600.1700432000",
	};
	greet(h, EHLO_DATA);
	send_msg(h, &mx);
	out_is(h, "MAIL FROM:<s@sluice.test> SIZE=10\r\n"
	       "RCPT TO:<a@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@example.net\r\n"
	       "DATA\r\n");
}

/* A transfer requires XSLUICE: a next hop that does not offer it gets
 * nothing at all (no MAIL), each recipient a temporary 4.3.5, so no
 * message moves to another box without its history. */
SCENARIO(xsluice_required_refused_unless_offered)
{
	static const struct smtp_client_msg mx = {
		.sender = "s@sluice.test", .nrcpt = 1, .rcpt = RDSN, .size = 10,
		.xsluice = "1700000000.2.1700003600.1700432000", .xsluice_required = true,
	};
	greet(h, EHLO_DATA);
	send_msg(h, &mx);
	res_is(&h->mres, 0, "4.3.5");
	res_is(&h->rres[0], 0, "4.3.5");
	out_is(h, "");
}

SCENARIO(dsn_parameters_dropped_without_dsn)
{
	greet(h, EHLO_BDAT);
	send_msg(h, &MDSN);
	out_is(h, "MAIL FROM:<s@sluice.test> SIZE=5000\r\nRCPT TO:<a@example.net>\r\n"
	       "RCPT TO:<b@example.net>\r\nRCPT TO:<c@example.net>\r\n");
	cr_assert_eq(h->st.dsn_dropped, 1);
	cr_assert_eq(h->st.dsn_passed, 0);
}

SCENARIO(size_over_the_limit_is_not_sent)
{
	static const struct smtp_client_msg big = {
		.sender = "s@sluice.test", .nrcpt = 3, .rcpt = R3, .size = 10240001,
	};
	greet(h, EHLO_DATA);
	send_msg(h, &big);
	ev_is(h, SCE_DONE);
	out_is(h, "");
	res_is(&h->mres, 0, "5.3.4");
	cr_assert_null(h->mres.stage);
	cr_assert_str_eq(h->mres.text, "message size 10240001 exceeds size limit 10240000 of the next hop");
	for (int i = 0; i < 3; i++)
		res_is(&h->rres[i], 0, "5.3.4");
	cr_assert_eq(h->st.size_refused, 1);
	/* nothing was sent, so the next message needs no RSET */
	static const struct smtp_client_msg fits = {
		.sender = "s@sluice.test", .nrcpt = 1, .rcpt = R1, .size = 10240000,
	};
	send_msg(h, &fits);
	out_is(h, "MAIL FROM:<s@sluice.test> SIZE=10240000\r\nRCPT TO:<a@example.net>\r\nDATA\r\n");
}

SCENARIO(eightbit_needs_8bitmime_and_utf8_needs_smtputf8)
{
	static const struct smtp_client_msg m8 = {
		.sender = "s@sluice.test", .nrcpt = 1, .rcpt = R1,
		.body_flags = SMTP_CLIENT_BODY_8BITMIME,
	};
	static const struct smtp_client_msg mu = {
		.sender = "s@sluice.test", .nrcpt = 1, .rcpt = R1,
		.body_flags = SMTP_CLIENT_BODY_SMTPUTF8 | SMTP_CLIENT_BODY_8BITMIME,
	};
	static const struct smtp_client_rcpt ru[] = { { .addr = "j\xc3\xb6rg@example.net" } };
	static const struct smtp_client_msg mu_addr = {	/* not flagged, but 8-bit */
		.sender = "s@sluice.test", .nrcpt = 1, .rcpt = ru,
	};
	greet(h, EHLO_BARE);
	send_msg(h, &mu);
	res_is(&h->mres, 0, "5.6.7");
	res_is(&h->rres[0], 0, "5.6.7");
	send_msg(h, &mu_addr);
	res_is(&h->rres[0], 0, "5.6.7");
	send_msg(h, &m8);
	res_is(&h->mres, 0, "5.6.3");
	res_is(&h->rres[0], 0, "5.6.3");
	out_is(h, "");
	cr_assert_eq(h->st.utf8_refused, 2);
	cr_assert_eq(h->st.eightbit_refused, 1);
	cr_assert_eq(h->st.msg_perm, 3);
}

SCENARIO(eightbit_and_utf8_parameters_when_offered)
{
	static const struct smtp_client_rcpt ru[] = { { .addr = "j\xc3\xb6rg@example.net" } };
	static const struct smtp_client_msg mu = {
		.sender = "s@sluice.test", .nrcpt = 1, .rcpt = ru, .size = 7,
		.body_flags = SMTP_CLIENT_BODY_8BITMIME,
	};
	greet(h, EHLO_DATA);
	send_msg(h, &mu);
	out_is(h, "MAIL FROM:<s@sluice.test> SIZE=7 BODY=8BITMIME SMTPUTF8\r\n"
	       "RCPT TO:<j\xc3\xb6rg@example.net>\r\nDATA\r\n");
}

SCENARIO(bad_addresses_never_reach_the_wire)
{
	static const struct smtp_client_msg bad_sender = {
		.sender = "s@sluice.test>\r\nRCPT TO:<x@y", .nrcpt = 1, .rcpt = R1,
	};
	static const struct smtp_client_rcpt rb[] = {
		{ .addr = "a@example.net" }, { .addr = "b@ex\nample.net" }, { .addr = "" },
	};
	static const struct smtp_client_msg bad_rcpt = {
		.sender = "", .nrcpt = 3, .rcpt = rb, .size = 1,
	};
	greet(h, EHLO_DATA);
	send_msg(h, &bad_sender);
	ev_is(h, SCE_DONE);
	res_is(&h->mres, 0, "5.1.7");
	out_is(h, "");
	send_msg(h, &bad_rcpt);
	out_is(h, "MAIL FROM:<> SIZE=1\r\nRCPT TO:<a@example.net>\r\nDATA\r\n");
	res_is(&h->rres[1], 0, "5.1.3");
	res_is(&h->rres[2], 0, "5.1.3");
	srv(h, "250 ok\r\n250 ok\r\n354 go\r\n");
	body(h, "x", 1);
	srv(h, "250 2.0.0 ok\r\n");
	ev_is(h, SCE_DONE);
	res_is(&h->rres[0], 250, "2.0.0");
	res_is(&h->rres[1], 0, "5.1.3");
	cr_assert_eq(h->st.addr_refused, 3);
}

SCENARIO_SETUP(all_rejected_unpipelined_sends_no_data_then_rset, no_pipelining)
{
	greet(h, EHLO_DATA);
	send_msg(h, &M3);
	out_is(h, "MAIL FROM:<s@sluice.test> SIZE=100\r\n");
	srv(h, "250 ok\r\n");
	out_is(h, "RCPT TO:<a@example.net>\r\n");
	srv(h, "550 5.1.1 no a\r\n");
	out_is(h, "RCPT TO:<b@example.net>\r\n");
	srv(h, "450 4.2.1 later b\r\n");
	out_is(h, "RCPT TO:<c@example.net>\r\n");
	srv(h, "550 5.1.1 no c\r\n");
	out_is(h, "");	/* no DATA */
	ev_is(h, SCE_DONE);
	res_is(&h->rres[0], 550, "5.1.1");
	res_is(&h->rres[1], 450, "4.2.1");
	res_is(&h->rres[2], 550, "5.1.1");
	res_is(&h->mres, 550, "5.1.1");
	/* the next message: RSET first (a transaction is still open there) */
	send_msg(h, &M1);
	out_is(h, "RSET\r\n");
	srv(h, "250 2.0.0 Ok\r\n");
	out_is(h, "MAIL FROM:<s@sluice.test> SIZE=10\r\n");
	cr_assert_eq(h->st.rsets, 1);
}

SCENARIO(all_rejected_then_quit_needs_no_rset)
{
	greet(h, EHLO_DATA);
	send_msg(h, &M1);
	out_is(h, "MAIL FROM:<s@sluice.test> SIZE=10\r\nRCPT TO:<a@example.net>\r\nDATA\r\n");
	srv(h, "250 ok\r\n550 5.1.1 no\r\n554 5.5.1 Error: no valid recipients\r\n");
	ev_is(h, SCE_DONE);
	res_is(&h->rres[0], 550, "5.1.1");
	cr_assert_eq(smtp_client_quit(&h->c), 0);
	settle(h);
	out_is(h, "QUIT\r\n");
	srv(h, "221 bye\r\n");
	ev_is(h, SCE_CLOSE);
	cr_assert_eq(h->st.rsets, 0);
}

SCENARIO(all_rejected_pipelined_data_354_gets_a_lone_dot)
{
	greet(h, EHLO_DATA);
	send_msg(h, &M1);
	out_is(h, "MAIL FROM:<s@sluice.test> SIZE=10\r\nRCPT TO:<a@example.net>\r\nDATA\r\n");
	srv(h, "250 ok\r\n550 5.1.1 no\r\n354 go ahead anyway\r\n");
	out_is(h, ".\r\n");	/* RFC 2920 3.1 */
	ev_is(h, SCE_NONE);
	srv(h, "554 5.5.1 no valid recipients\r\n");
	ev_is(h, SCE_DONE);
	res_is(&h->rres[0], 550, "5.1.1");
	res_is(&h->mres, 550, "5.1.1");
	send_msg(h, &M1);
	out_is(h, "MAIL FROM:<s@sluice.test> SIZE=10\r\nRCPT TO:<a@example.net>\r\nDATA\r\n");
}

SCENARIO(mail_refused_pipelined)
{
	greet(h, EHLO_DATA);
	send_msg(h, &M3);
	out_is(h, "MAIL FROM:<s@sluice.test> SIZE=100\r\nRCPT TO:<a@example.net>\r\n"
	       "RCPT TO:<b@example.net>\r\nRCPT TO:<c@example.net>\r\nDATA\r\n");
	srv(h, "451 4.3.0 sender check failed\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n"
	    "503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n");
	ev_is(h, SCE_DONE);
	for (int i = 0; i < 3; i++) {
		res_is(&h->rres[i], 451, "4.3.0");
		cr_assert_str_eq(h->rres[i].stage, "MAIL FROM");
	}
	res_is(&h->mres, 451, "4.3.0");
	cr_assert_not(smtp_client_site_failure(&h->c));
}

SCENARIO(data_refused_after_accepted_recipients)
{
	greet(h, EHLO_DATA);
	send_msg(h, &M3);
	out_is(h, "MAIL FROM:<s@sluice.test> SIZE=100\r\nRCPT TO:<a@example.net>\r\n"
	       "RCPT TO:<b@example.net>\r\nRCPT TO:<c@example.net>\r\nDATA\r\n");
	srv(h, "250 ok\r\n250 ok\r\n550 5.1.1 no\r\n250 ok\r\n451 4.3.0 try later\r\n");
	ev_is(h, SCE_DONE);
	res_is(&h->rres[0], 451, "4.3.0");
	cr_assert_str_eq(h->rres[0].stage, "DATA");
	res_is(&h->rres[1], 550, "5.1.1");
	res_is(&h->rres[2], 451, "4.3.0");
	res_is(&h->mres, 451, "4.3.0");
	send_msg(h, &M1);
	out_is(h, "RSET\r\n");
}

/* Found by fuzz_smtp_client: any 3xx to DATA means "go on" (RFC 5321
 * reply classes; Postfix does the same), and no result may carry a 3xx. */
SCENARIO(data_answered_with_another_3xx)
{
	greet(h, EHLO_DATA);
	send_msg(h, &M1);
	out_is(h, "MAIL FROM:<s@sluice.test> SIZE=10\r\nRCPT TO:<a@example.net>\r\nDATA\r\n");
	srv(h, "250 ok\r\n250 ok\r\n353 send it\r\n");
	ev_is(h, SCE_BODY);
	body(h, "x\r\n", 3);
	out_is(h, "x\r\n.\r\n");
	srv(h, "250 2.0.0 ok\r\n");
	ev_is(h, SCE_DONE);
	res_is(&h->rres[0], 250, "2.0.0");
	res_is(&h->mres, 250, "2.0.0");
}

SCENARIO(second_message_on_the_same_connection)
{
	greet(h, EHLO_DATA);
	for (int k = 0; k < 3; k++) {
		send_msg(h, &M1);
		/* after a complete transaction: MAIL directly, no RSET */
		out_is(h, "MAIL FROM:<s@sluice.test> SIZE=10\r\nRCPT TO:<a@example.net>\r\nDATA\r\n");
		srv(h, "250 ok\r\n250 ok\r\n354 go\r\n");
		body(h, "m\r\n", 3);
		out_is(h, "m\r\n.\r\n");
		srv(h, k == 1 ? "554 5.7.1 spam\r\n" : "250 2.0.0 queued\r\n");
		ev_is(h, SCE_DONE);
		res_is(&h->rres[0], k == 1 ? 554 : 250, k == 1 ? "5.7.1" : "2.0.0");
	}
	cr_assert_eq(smtp_client_messages(&h->c), 3);
	cr_assert_eq(h->st.msg_ok, 2);
	cr_assert_eq(h->st.msg_perm, 1);
	cr_assert_eq(h->st.rsets, 0, "the end of data ends the transaction either way");
}

SCENARIO(rcpt_421_ends_the_session_without_site_failure)
{
	greet(h, EHLO_DATA);
	send_msg(h, &M3);
	out_is(h, "MAIL FROM:<s@sluice.test> SIZE=100\r\nRCPT TO:<a@example.net>\r\n"
	       "RCPT TO:<b@example.net>\r\nRCPT TO:<c@example.net>\r\nDATA\r\n");
	srv(h, "250 ok\r\n250 ok\r\n421 4.4.2 shutting down\r\n");
	ev_is(h, SCE_CLOSE);
	res_is(&h->rres[0], 421, "4.4.2");
	res_is(&h->rres[1], 421, "4.4.2");
	res_is(&h->rres[2], 421, "4.4.2");
	res_is(&h->mres, 421, "4.4.2");
	cr_assert_not(smtp_client_site_failure(&h->c));
	cr_assert_eq(h->st.closed_421, 1);
	cr_assert_eq(smtp_client_input(&h->c, "250 ok\r\n", 8), 8, "discarded after close");
}

SCENARIO(lost_connection_mid_transaction)
{
	greet(h, EHLO_DATA);
	send_msg(h, &M3);
	srv(h, "250 ok\r\n550 5.1.1 no\r\n");
	smtp_client_lost(&h->c, "connection reset by peer");
	settle(h);
	ev_is(h, SCE_CLOSE);
	res_is(&h->rres[0], 550, "5.1.1");
	res_is(&h->rres[1], 0, "4.4.2");
	res_is(&h->rres[2], 0, "4.4.2");
	cr_assert_str_eq(h->rres[1].text,
			 "lost connection with the next hop (at RCPT TO): connection reset by peer");
	cr_assert(smtp_client_site_failure(&h->c));
	cr_assert_eq(h->st.lost, 1);
}

SCENARIO(lost_connection_while_idle_is_not_a_site_failure)
{
	greet(h, EHLO_DATA);
	smtp_client_lost(&h->c, NULL);
	settle(h);
	ev_is(h, SCE_CLOSE);
	cr_assert_not(smtp_client_site_failure(&h->c));
}

SCENARIO(connect_refused_and_connect_timeout)
{
	/* ct_start already connected: start over for the connect phase */
	smtp_client_init(&h->c, &h->conf, &h->st);
	cr_assert_eq(smtp_client_timeout_ns(&h->c), 30 * NS_PER_SEC);
	smtp_client_lost(&h->c, "connection refused");
	settle(h);
	ev_is(h, SCE_CLOSE);
	res_is(smtp_client_session_result(&h->c), 0, "4.4.1");
	cr_assert_str_eq(smtp_client_session_result(&h->c)->text,
			 "connect to the next hop failed: connection refused");
	cr_assert(smtp_client_site_failure(&h->c));
	smtp_client_init(&h->c, &h->conf, &h->st);
	smtp_client_timeout(&h->c);
	settle(h);
	res_is(smtp_client_session_result(&h->c), 0, "4.4.1");
	cr_assert(smtp_client_site_failure(&h->c));
}

/* ---- STARTTLS ---------------------------------------------------------- */

static void tls_may(struct smtp_client_conf *c)
{
	c->tls = SCT_MAY;
}

static void tls_encrypt(struct smtp_client_conf *c)
{
	c->tls = SCT_ENCRYPT;
}

static void tls_verify(struct smtp_client_conf *c)
{
	c->tls = SCT_VERIFY;
}

#define EHLO_TLS "250-mx.example.net\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n"

SCENARIO_SETUP(starttls_flow_under_may, tls_may)
{
	srv(h, GREET);
	out_is(h, EHLO_CMD);
	srv(h, EHLO_TLS);
	out_is(h, "STARTTLS\r\n");
	cr_assert_eq(smtp_client_timeout_ns(&h->c), h->conf.t_starttls_ns);
	/* plaintext after the 220 (an injection, CVE-2011-0411 style) is not taken */
	static const char r[] = "220 2.0.0 Ready to start TLS\r\n250 injected\r\n";
	size_t k = feed(h, r, sizeof(r) - 1);
	cr_assert_eq(k, 30, "stops right after the 220 line");
	ev_is(h, SCE_STARTTLS);
	cr_assert_eq(smtp_client_input(&h->c, r + k, sizeof(r) - 1 - k), 0);
	cr_assert_eq(smtp_client_timeout_ns(&h->c), h->conf.t_starttls_ns, "handshake bound");
	cr_assert_eq(smtp_client_send(&h->c, &M1, &h->mres, h->rres), -1);
	cr_assert_eq(smtp_client_tls_started(&h->c), 0);
	settle(h);
	out_is(h, EHLO_CMD);	/* EHLO again, RFC 3207 4.2 */
	cr_assert(smtp_client_tls_active(&h->c));
	cr_assert_not(smtp_client_caps(&h->c)->pipelining, "plaintext knowledge forgotten");
	srv(h, "250-mx.example.net\r\n250-STARTTLS\r\n250 SIZE 1000\r\n");
	ev_is(h, SCE_READY);	/* no second STARTTLS */
	cr_assert_eq(smtp_client_caps(&h->c)->size_max, 1000);
	cr_assert_eq(h->st.starttls, 1);
	cr_assert_eq(smtp_client_tls_started(&h->c), -1);
}

SCENARIO_SETUP(starttls_refused_under_may_goes_on_in_plaintext, tls_may)
{
	srv(h, GREET);
	out_is(h, EHLO_CMD);
	srv(h, EHLO_TLS);
	out_is(h, "STARTTLS\r\n");
	srv(h, "454 4.7.0 TLS not available due to temporary reason\r\n");
	ev_is(h, SCE_READY);
	cr_assert_not(smtp_client_tls_active(&h->c));
	cr_assert(smtp_client_caps(&h->c)->pipelining);
}

SCENARIO_SETUP(may_without_starttls_offered_is_plaintext, tls_may)
{
	greet(h, EHLO_DATA);
	cr_assert_not(smtp_client_tls_active(&h->c));
}

SCENARIO_SETUP(encrypt_without_starttls_fails_temporarily, tls_encrypt)
{
	srv(h, GREET);
	out_is(h, EHLO_CMD);
	srv(h, EHLO_DATA);
	out_is(h, "QUIT\r\n");
	const struct smtp_client_result *r = smtp_client_session_result(&h->c);
	cr_assert_not_null(r);
	res_is(r, 0, "4.7.4");
	cr_assert_str_eq(r->text, "TLS is required, but was not offered by the next hop");
	cr_assert(smtp_client_site_failure(&h->c));
	cr_assert_eq(h->st.tls_required, 1);
	srv(h, "221 bye\r\n");
	ev_is(h, SCE_CLOSE);
}

SCENARIO_SETUP(verify_without_starttls_after_helo_fails_temporarily, tls_verify)
{
	srv(h, GREET);
	out_is(h, EHLO_CMD);
	srv(h, "500 what\r\n");
	out_is(h, "HELO relay.sluice.test\r\n");
	srv(h, "250 mx\r\n");
	out_is(h, "QUIT\r\n");
	res_is(smtp_client_session_result(&h->c), 0, "4.7.4");
}

SCENARIO_SETUP(encrypt_with_starttls_refused_fails_temporarily, tls_encrypt)
{
	srv(h, GREET);
	out_is(h, EHLO_CMD);
	srv(h, EHLO_TLS);
	out_is(h, "STARTTLS\r\n");
	srv(h, "554 5.7.0 no TLS for you\r\n");
	out_is(h, "QUIT\r\n");
	const struct smtp_client_result *r = smtp_client_session_result(&h->c);
	res_is(r, 0, "4.7.4");
	cr_assert_str_eq(r->text, "TLS is required, but the next hop refused STARTTLS: "
			 "554 5.7.0 no TLS for you");
}

SCENARIO_SETUP(tls_handshake_failure, tls_verify)
{
	srv(h, GREET);
	out_is(h, EHLO_CMD);
	srv(h, EHLO_TLS);
	out_is(h, "STARTTLS\r\n");
	srv(h, "220 go\r\n");
	ev_is(h, SCE_STARTTLS);
	cr_assert_eq(smtp_client_tls_failed(&h->c, "certificate verify failed"), 0);
	settle(h);
	ev_is(h, SCE_CLOSE);
	out_is(h, "");
	res_is(smtp_client_session_result(&h->c), 0, "4.7.5");
	cr_assert_str_eq(smtp_client_session_result(&h->c)->text,
			 "TLS handshake failed: certificate verify failed");
	cr_assert(smtp_client_site_failure(&h->c));
}

/* ---- replies ------------------------------------------------------------- */

SCENARIO(multiline_reply_text_and_enhanced_code)
{
	greet(h, EHLO_DATA);
	send_msg(h, &M1);
	out_is(h, "MAIL FROM:<s@sluice.test> SIZE=10\r\nRCPT TO:<a@example.net>\r\nDATA\r\n");
	srv(h, "250 ok\r\n550-5.7.1 Your message was rejected\r\n550-5.7.1 see https://x.test/\x01"
	    "policy\r\n550 5.7.1 (policy)\r\n554 5.5.1 no valid recipients\r\n");
	ev_is(h, SCE_DONE);
	res_is(&h->rres[0], 550, "5.7.1");
	cr_assert_str_eq(h->rres[0].text,
			 "550 5.7.1 Your message was rejected see https://x.test/?policy (policy)");
}

SCENARIO(enhanced_code_of_another_class_is_ignored)
{
	greet(h, EHLO_DATA);
	send_msg(h, &M1);
	srv(h, "250 ok\r\n450 5.1.1 odd\r\n554 no\r\n");
	res_is(&h->rres[0], 450, "4.0.0");
	cr_assert_str_eq(h->rres[0].text, "450 5.1.1 odd");
}

SCENARIO(malformed_reply_is_a_protocol_error)
{
	srv(h, GREET);
	out_is(h, EHLO_CMD);
	srv(h, "25O-mx\r\n");
	ev_is(h, SCE_CLOSE);
	res_is(smtp_client_session_result(&h->c), 0, "4.5.0");
	cr_assert_str_eq(smtp_client_session_result(&h->c)->text,
			 "protocol error: malformed reply (at EHLO)");
	cr_assert(smtp_client_site_failure(&h->c));
	cr_assert_eq(h->st.protocol_errors, 1);
}

SCENARIO(inconsistent_multiline_codes)
{
	srv(h, GREET);
	srv(h, "250-mx\r\n251 PIPELINING\r\n");
	ev_is(h, SCE_CLOSE);
	cr_assert_str_eq(smtp_client_session_result(&h->c)->text,
			 "protocol error: inconsistent multi-line reply (at EHLO)");
}

SCENARIO(over_long_line_is_a_protocol_error)
{
	static char line[1200];
	memset(line, 'x', sizeof(line) - 1);
	memcpy(line, "220 ", 4);
	size_t n = feed(h, line, sizeof(line) - 1);
	cr_assert_eq(n, sizeof(line) - 1, "taken and thrown away");
	ev_is(h, SCE_CLOSE);
	cr_assert_str_eq(smtp_client_session_result(&h->c)->text,
			 "protocol error: reply line too long (at greeting)");
}

SCENARIO(over_long_reply_is_a_protocol_error)
{
	srv(h, GREET);
	out_is(h, EHLO_CMD);
	for (int i = 0; i < 200 && smtp_client_event(&h->c) == SCE_NONE; i++)
		(void)feed(h, "250-A-KEYWORD-THAT-IS-QUITE-LONG-INDEED-0123456789\r\n", 52);
	ev_is(h, SCE_CLOSE);
	cr_assert_str_eq(smtp_client_session_result(&h->c)->text,
			 "protocol error: reply too long (at EHLO)");
}

SCENARIO(unexpected_3xx_is_a_protocol_error)
{
	greet(h, EHLO_DATA);
	send_msg(h, &M1);
	srv(h, "354 what\r\n");
	ev_is(h, SCE_CLOSE);
	res_is(&h->rres[0], 0, "4.5.0");
	cr_assert_str_eq(h->rres[0].text, "protocol error: unexpected 3xx reply (at MAIL FROM)");
}

SCENARIO(reply_with_only_the_code)
{
	srv(h, "220\r\n");
	out_is(h, EHLO_CMD);
	srv(h, "250\n");	/* a bare LF ends a reply line we read (lenient) */
	ev_is(h, SCE_READY);
}

SCENARIO(input_stops_at_events)
{
	/* a next hop that talks ahead: the engine takes up to the event */
	static const char s[] = GREET;
	srv(h, s);
	out_is(h, EHLO_CMD);
	static const char e[] = "250 mx\r\n250 2.1.0 early\r\n";
	size_t k = feed(h, e, sizeof(e) - 1);
	cr_assert_eq(k, 8);
	ev_is(h, SCE_READY);
	cr_assert_eq(smtp_client_input(&h->c, e + k, sizeof(e) - 1 - k), 0);
	/* the held reply is read as MAIL's answer */
	send_msg(h, &M1);
	out_is(h, "MAIL FROM:<s@sluice.test>\r\n");
	srv(h, e + k);
	out_is(h, "RCPT TO:<a@example.net>\r\n");
}

/* ---- timeouts -------------------------------------------------------------- */

static void odd_timeouts(struct smtp_client_conf *c)
{
	/* all different, so a wrong one is seen */
	c->t_connect_ns = 11 * NS_PER_SEC;
	c->t_greeting_ns = 12 * NS_PER_SEC;
	c->t_ehlo_ns = 13 * NS_PER_SEC;
	c->t_starttls_ns = 14 * NS_PER_SEC;
	c->t_rset_ns = 15 * NS_PER_SEC;
	c->t_mail_ns = 16 * NS_PER_SEC;
	c->t_rcpt_ns = 17 * NS_PER_SEC;
	c->t_data_ns = 18 * NS_PER_SEC;
	c->t_block_ns = 19 * NS_PER_SEC;
	c->t_dot_ns = 20 * NS_PER_SEC;
	c->t_quit_ns = 21 * NS_PER_SEC;
	c->pipelining = false;
	c->tls = SCT_MAY;
}

#define TMO(s) cr_assert_eq(smtp_client_timeout_ns(&h->c), (uint64_t)(s) * NS_PER_SEC, \
			    "timeout %llu", (unsigned long long)smtp_client_timeout_ns(&h->c))

SCENARIO_SETUP(timeout_per_state, odd_timeouts)
{
	TMO(12);
	srv(h, GREET);
	TMO(13);
	srv(h, "250-mx\r\n250-STARTTLS\r\n250 CHUNKING\r\n");
	TMO(14);
	srv(h, "220 go\r\n");
	TMO(14);
	smtp_client_tls_started(&h->c);
	settle(h);
	TMO(13);
	srv(h, "250-mx\r\n250 CHUNKING\r\n");
	TMO(0);
	send_msg(h, &M1);
	TMO(16);
	srv(h, "250 ok\r\n");
	TMO(17);
	srv(h, "250 ok\r\n");
	TMO(19);	/* SCE_BODY */
	cr_assert_eq(smtp_client_body(&h->c, "x\r\n", 3, true), 3);
	settle(h);
	TMO(20);
	srv(h, "550 5.7.1 no\r\n");
	TMO(0);
	send_msg(h, &M1);
	TMO(15);	/* RSET */
	srv(h, "250 ok\r\n");
	TMO(16);
	cr_assert_eq(smtp_client_quit(&h->c), -1, "no QUIT in the middle of a transaction");
}

SCENARIO_SETUP(timeout_data_and_quit, odd_timeouts)
{
	srv(h, GREET);
	srv(h, "250 mx\r\n");
	send_msg(h, &M1);
	srv(h, "250 ok\r\n250 ok\r\n");
	TMO(18);	/* waiting for 354 */
	srv(h, "354 go\r\n");
	TMO(19);
	body(h, "", 0);
	TMO(20);
	srv(h, "250 ok\r\n");
	cr_assert_eq(smtp_client_quit(&h->c), 0);
	settle(h);
	TMO(21);
	smtp_client_timeout(&h->c);	/* no answer to QUIT: just close */
	settle(h);
	ev_is(h, SCE_CLOSE);
	cr_assert_not(smtp_client_site_failure(&h->c));
	TMO(0);
}

/* The timeout itself, in each state that waits: 4.4.2, site failure. */
static void timeout_at(struct ct *h, int steps, const char *stage)
{
	static const char *const script[] = {
		GREET, "250-mx\r\n250 STARTTLS\r\n", "220 go\r\n", NULL /* tls */,
		"250 mx\r\n", NULL /* send */, "250 ok\r\n", "250 ok\r\n", "354 go\r\n",
		NULL /* body */,
	};
	for (int i = 0; i < steps; i++) {
		if (i == 3)
			smtp_client_tls_started(&h->c);
		else if (i == 5)
			send_msg(h, &M1);
		else if (i == 9)
			cr_assert_eq(smtp_client_body(&h->c, "x\r\n", 3, true), 3);
		else
			srv(h, script[i]);
		settle(h);
	}
	uint64_t before = h->st.timeouts;
	smtp_client_timeout(&h->c);
	settle(h);
	ev_is(h, SCE_CLOSE);
	cr_assert_eq(h->st.timeouts, before + 1);
	const struct smtp_client_result *r = smtp_client_session_result(&h->c);
	cr_assert_not_null(r);
	res_is(r, 0, "4.4.2");
	cr_assert_str_eq(r->stage, stage);
	cr_assert(smtp_client_site_failure(&h->c));
	if (steps >= 6)
		res_is(&h->rres[0], 0, "4.4.2");
}

static void tls_may_nopipe(struct smtp_client_conf *c)
{
	c->tls = SCT_MAY;
	c->pipelining = false;
}

SCENARIO_SETUP(timeout_greeting, tls_may_nopipe) { timeout_at(h, 0, "greeting"); }
SCENARIO_SETUP(timeout_ehlo, tls_may_nopipe) { timeout_at(h, 1, "EHLO"); }
SCENARIO_SETUP(timeout_starttls, tls_may_nopipe) { timeout_at(h, 2, "STARTTLS"); }
SCENARIO_SETUP(timeout_handshake, tls_may_nopipe) { timeout_at(h, 3, "TLS handshake"); }
SCENARIO_SETUP(timeout_ehlo_after_tls, tls_may_nopipe) { timeout_at(h, 4, "EHLO"); }
SCENARIO_SETUP(timeout_mail, tls_may_nopipe) { timeout_at(h, 6, "MAIL FROM"); }
SCENARIO_SETUP(timeout_rcpt, tls_may_nopipe) { timeout_at(h, 7, "RCPT TO"); }
SCENARIO_SETUP(timeout_data, tls_may_nopipe) { timeout_at(h, 8, "DATA"); }
SCENARIO_SETUP(timeout_body, tls_may_nopipe) { timeout_at(h, 9, "message body"); }
SCENARIO_SETUP(timeout_dot, tls_may_nopipe) { timeout_at(h, 10, "end of DATA"); }

Test(client, default_timeouts_are_rfc5321)
{
	struct smtp_client_conf c;
	smtp_client_conf_default(&c);
	cr_assert_eq(c.t_connect_ns, 30 * NS_PER_SEC);
	cr_assert_eq(c.t_greeting_ns, 300 * NS_PER_SEC);
	cr_assert_eq(c.t_mail_ns, 300 * NS_PER_SEC);
	cr_assert_eq(c.t_rcpt_ns, 300 * NS_PER_SEC);
	cr_assert_eq(c.t_data_ns, 120 * NS_PER_SEC);
	cr_assert_eq(c.t_block_ns, 180 * NS_PER_SEC);
	cr_assert_eq(c.t_dot_ns, 600 * NS_PER_SEC);
	cr_assert_eq(c.tls, SCT_MAY);
	cr_assert(c.pipelining && c.chunking);
	const char *why = NULL;
	cr_assert_eq(smtp_client_conf_check(&c, &why), 0);
	c.t_rcpt_ns = 1000;
	cr_assert_eq(smtp_client_conf_check(&c, &why), -1);
	cr_assert_str_eq(why, "client timeouts must be at least 1 second");
	smtp_client_conf_default(&c);
	snprintf(c.helo, sizeof(c.helo), "bad name");
	cr_assert_eq(smtp_client_conf_check(&c, &why), -1);
}

/* ---- the output bound ------------------------------------------------------ */

/* 1000 recipients with long addresses (~250 KB of commands) through the
 * 16 KiB buffer, drained a little at a time: every command goes out whole,
 * in order, pipelined, and every recipient gets its own reply. */
Test(client, long_group_through_a_small_buffer)
{
	static struct smtp_client_conf conf;
	static struct smtp_client_conn c;
	static struct smtp_client_rcpt r[SMTP_CLIENT_RCPT_MAX];
	static char addrs[SMTP_CLIENT_RCPT_MAX][256];
	static struct smtp_client_result mres, rres[SMTP_CLIENT_RCPT_MAX];
	static char out[1 << 20], want[1 << 20];
	size_t out_len = 0, want_len = 0;
	smtp_client_conf_default(&conf);
	conf.tls = SCT_NONE;
	smtp_client_init(&c, &conf, NULL);
	smtp_client_connected(&c);
	cr_assert_eq(smtp_client_input(&c, GREET EHLO_DATA, strlen(GREET EHLO_DATA)),
		     strlen(GREET EHLO_DATA));
	(void)smtp_client_read_output(&c, out, sizeof(out));
	cr_assert_eq(smtp_client_event(&c), SCE_READY);
	want_len += (size_t)snprintf(want, sizeof(want), "MAIL FROM:<s@x.test> SIZE=1\r\n");
	for (int i = 0; i < SMTP_CLIENT_RCPT_MAX; i++) {
		int n = snprintf(addrs[i], sizeof(addrs[i]), "%04d", i);
		memset(addrs[i] + n, 'r', 240 - (size_t)n);
		snprintf(addrs[i] + 240, 16, "@example.net");
		r[i].addr = addrs[i];
		want_len += (size_t)snprintf(want + want_len, sizeof(want) - want_len,
					     "RCPT TO:<%s>\r\n", addrs[i]);
	}
	want_len += (size_t)snprintf(want + want_len, sizeof(want) - want_len, "DATA\r\n");
	struct smtp_client_msg m = { .sender = "s@x.test", .nrcpt = SMTP_CLIENT_RCPT_MAX,
				     .rcpt = r, .size = 1 };
	cr_assert_eq(smtp_client_send(&c, &m, &mres, rres), 0);
	const char *p;
	size_t n;
	while ((n = smtp_client_peek_output(&c, &p)) > 0) {
		cr_assert_leq(n, SMTP_CLIENT_OUT_MAX);
		n = n > 1000 ? 1000 : n;
		memcpy(out + out_len, p, n);
		out_len += n;
		smtp_client_consume_output(&c, n);
	}
	cr_assert_eq(out_len, want_len);
	cr_assert_eq(memcmp(out, want, want_len), 0);
	cr_assert_eq(smtp_client_input(&c, "250 ok\r\n", 8), 8);
	for (int i = 0; i < SMTP_CLIENT_RCPT_MAX; i++) {
		char rep[64];
		int k = snprintf(rep, sizeof(rep), "%s %d\r\n", i % 2 ? "250 2.1.5" : "550 5.1.1", i);
		cr_assert_eq(smtp_client_input(&c, rep, (size_t)k), (size_t)k);
	}
	cr_assert_eq(smtp_client_input(&c, "354 go\r\n", 8), 8);
	cr_assert_eq(smtp_client_event(&c), SCE_BODY);
	cr_assert_eq(smtp_client_body(&c, "hi\r\n", 4, true), 4);
	cr_assert_eq(smtp_client_input(&c, "250 2.0.0 done\r\n", 16), 16);
	cr_assert_eq(smtp_client_event(&c), SCE_DONE);
	for (int i = 0; i < SMTP_CLIENT_RCPT_MAX; i++) {
		char t[32];
		snprintf(t, sizeof(t), "550 5.1.1 %d", i);
		if (i % 2)
			cr_assert_str_eq(rres[i].text, "250 2.0.0 done");
		else
			cr_assert_str_eq(rres[i].text, t);
	}
}

/* A body far bigger than the buffer, fed in one call: taken in buffer-sized
 * bites, each needing the output drained. */
Test(client, body_bigger_than_the_buffer)
{
	static struct smtp_client_conf conf;
	static struct smtp_client_conn c;
	static struct smtp_client_result mres, rres[1];
	static char out[1 << 20];
	size_t out_len = 0, n = 12 * 20000;
	char *b = lines(n);
	b[0] = '.';	/* "." at the start of the body */
	smtp_client_conf_default(&conf);
	conf.tls = SCT_NONE;
	smtp_client_init(&c, &conf, NULL);
	smtp_client_connected(&c);
	smtp_client_input(&c, GREET, strlen(GREET));
	smtp_client_input(&c, EHLO_DATA, strlen(EHLO_DATA));
	cr_assert_eq(smtp_client_send(&c, &M1, &mres, rres), 0);
	smtp_client_input(&c, "250 a\r\n250 b\r\n354 c\r\n", 21);
	out_len = smtp_client_read_output(&c, out, sizeof(out));
	out_len = 0;
	size_t done = 0, calls = 0;
	while (smtp_client_event(&c) == SCE_BODY) {
		done += smtp_client_body(&c, b + done, n - done, true);
		out_len += smtp_client_read_output(&c, out + out_len, sizeof(out) - out_len);
		calls++;
	}
	cr_assert_eq(done, n);
	cr_assert_gt(calls, n / SMTP_CLIENT_OUT_MAX);
	cr_assert_eq(out_len, n + 1 + 3);
	cr_assert_eq(out[0], '.');
	cr_assert_eq(memcmp(out + 1, b, n), 0);
	cr_assert_eq(memcmp(out + 1 + n, ".\r\n", 3), 0);
	free(b);
}
