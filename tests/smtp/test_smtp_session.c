/*
 * test_smtp_session.c - the session engine end to end, without TCP: every
 * command, sequence errors, pipelining order and chunking independence,
 * BDAT, STARTTLS, limits with their exact replies, smuggling through a
 * whole session, relay decisions, the durable-250 rule, timeouts, shutdown,
 * the refusals handed to the mail log (cb.reject) and the errors that are not.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/smtp/smtp_test.h"

static struct th *h;

static void fin(void)
{
	if (h != NULL)
		th_free(h);
	h = NULL;
}

/* expect the collected output to be exactly `want`, then clear it */
#define OUT_IS(want) do { \
	cr_expect_str_eq(h->out, want); \
	th_clear(h); \
} while (0)

static void local_session(void)
{
	h = th_new(LOCAL_IP, MYNET, "example.com");
}

static void greeted(void)
{
	local_session();
	th_feeds(h, EHLO);
	th_clear(h);
}

TestSuite(session, .fini = fin);

Test(session, greeting)
{
	local_session();
	OUT_IS("220 mx.sluice.test ESMTP Sluice\r\n");
	cr_expect_eq(h->st.sessions, 1);
	cr_expect_eq(smtp_session_event(&h->s), SMTP_EV_NONE);
}

Test(session, ehlo_extensions)
{
	local_session();
	th_clear(h);
	th_feeds(h, EHLO);
	OUT_IS("250-mx.sluice.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
	       "250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250-ETRN\r\n"
	       "250-DSN\r\n250-XSLUICE\r\n250 SMTPUTF8\r\n");
	h->conf.tls_available = true;
	h->conf.max_size = 1000;
	th_restart(h);
	th_clear(h);
	th_feeds(h, "ehlo x\r\n");
	OUT_IS("250-mx.sluice.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n"
	       "250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250-ETRN\r\n"
	       "250-DSN\r\n250-XSLUICE\r\n250-SMTPUTF8\r\n250 STARTTLS\r\n");
}

Test(session, helo_then_transaction)
{
	static const char in[] = "HELO old.example\r\nMAIL FROM:<a@b.example>\r\n"
		"RCPT TO:<c@d.example>\r\nDATA\r\nhi\r\n.\r\n";
	local_session();
	th_clear(h);
	th_run(h, in, sizeof(in) - 1, 0);
	OUT_IS("250 mx.sluice.test\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
	       "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued as Q1\r\n");
	cr_expect_eq(h->messages, 1);
}

Test(session, simple_commands)
{
	greeted();
	th_feeds(h, "NOOP\r\nNOOP hello\r\nVRFY bob\r\nHELP\r\nRSET\r\nQUIT\r\nNOOP\r\n");
	OUT_IS("250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n"
	       "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery\r\n"
	       "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP ETRN\r\n"
	       "250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n");
	cr_expect_eq(smtp_session_event(&h->s), SMTP_EV_CLOSE);
	/* after QUIT everything is discarded */
	cr_expect_eq(smtp_session_input(&h->s, "NOOP\r\n", 6), 6);
	th_drain(h);
	cr_expect_eq(h->out_len, 0);
	cr_expect_eq(smtp_session_timeout_ns(&h->s), 0);
}

Test(session, sequence_errors)
{
	local_session();
	th_clear(h);
	th_feeds(h, "MAIL FROM:<a@b.example>\r\n");
	OUT_IS("503 5.5.1 Error: send HELO/EHLO first\r\n");
	th_feeds(h, EHLO);
	th_clear(h);
	th_feeds(h, "RCPT TO:<c@d.example>\r\nDATA\r\nBDAT 0 LAST\r\n"
		    "MAIL FROM:<a@b.example>\r\nMAIL FROM:<a@b.example>\r\nDATA\r\n"
		    "RCPT TO:<c@gmail.example>\r\n");
	OUT_IS("503 5.5.1 Error: need MAIL command\r\n"
	       "503 5.5.1 Error: need MAIL command\r\n"
	       "503 5.5.1 Error: need MAIL command\r\n"
	       "250 2.1.0 Ok\r\n"
	       "503 5.5.1 Error: nested MAIL command\r\n"
	       "503 5.5.1 Error: need RCPT command\r\n"
	       "250 2.1.5 Ok\r\n");
	cr_expect_eq(h->st.rej_sequence, 6);
}

Test(session, data_with_no_valid_recipient_is_554)
{
	h = th_new(OUTSIDE_IP, MYNET, "example.com");
	th_feeds(h, EHLO);
	th_clear(h);
	th_feeds(h, "MAIL FROM:<a@b.example>\r\nRCPT TO:<x@gmail.example>\r\nDATA\r\n");
	OUT_IS("250 2.1.0 Ok\r\n554 5.7.1 <x@gmail.example>: Relay access denied\r\n"
	       "554 5.5.1 Error: no valid recipients\r\n");
}

Test(session, unknown_and_malformed_commands)
{
	greeted();
	th_feeds(h, "FOO\r\nMAIL FROM:<bad\r\nRCPT TO:<x>\r\nEHLO\r\n\r\nEXPN staff\r\n");
	OUT_IS("500 5.5.2 Error: command not recognized\r\n"
	       "501 5.1.7 Bad sender address syntax\r\n"
	       "501 5.1.3 Bad recipient address syntax\r\n"
	       "501 5.5.4 Syntax error in parameters or arguments\r\n"
	       "500 5.5.2 Error: command not recognized\r\n"
	       "502 5.5.1 Error: command not implemented\r\n");
	cr_expect_eq(h->st.rej_syntax, 6);
}

static const char one_msg[] =
	"MAIL FROM:<alice@example.org> RET=HDRS ENVID=E+2B1 BODY=8BITMIME SIZE=100\r\n"
	"RCPT TO:<bob@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob+40example.com\r\n"
	"RCPT TO:<carol@example.com>\r\n"
	"DATA\r\n"
	"Subject: hi\r\n\r\n..dot\r\nbody\r\n.\r\n";

Test(session, message_waits_for_the_queue)
{
	greeted();
	size_t n = strlen(one_msg);
	const char *tail = "NOOP\r\nQUIT\r\n";
	char in[1024];
	snprintf(in, sizeof(in), "%s%s", one_msg, tail);
	size_t used = th_feed(h, in, strlen(in), 0);
	cr_expect_eq(used, n, "input stops right after the terminator");
	OUT_IS("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
	       "354 End data with <CR><LF>.<CR><LF>\r\n");
	cr_assert_eq(smtp_session_event(&h->s), SMTP_EV_MESSAGE);
	/* more input while waiting: nothing consumed, nothing answered */
	cr_expect_eq(smtp_session_input(&h->s, tail, strlen(tail)), 0);
	th_drain(h);
	cr_expect_eq(h->out_len, 0);
	cr_expect_eq(smtp_session_timeout_ns(&h->s), 0);

	const struct smtp_message *m = smtp_session_message(&h->s);
	cr_assert_not_null(m);
	cr_expect_str_eq(m->sender, "alice@example.org");
	cr_expect_eq(m->ret, SMTP_RET_HDRS);
	cr_expect_str_eq(m->envid, "E+2B1");
	cr_expect_eq(m->body, SMTP_BODY_8BITMIME);
	cr_expect_eq(m->declared_size, 100);
	cr_expect_eq(m->nrcpt, 2);
	struct smtp_rcpt_view v;
	cr_assert_eq(th_rcpt(h, 0, &v), 0);
	cr_expect_str_eq(v.addr, "bob@example.com");
	cr_expect_str_eq(v.orcpt, "rfc822;bob+40example.com");
	cr_expect_eq(v.notify, SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE);
	cr_assert_eq(th_rcpt(h, 1, &v), 0);
	cr_expect_str_eq(v.addr, "carol@example.com");
	cr_expect_null(v.orcpt);
	cr_expect_eq(v.notify, 0);
	cr_expect_eq(th_rcpt(h, 2, &v), -1);
	cr_expect_eq(h->begins, 1);
	h->body[h->body_len] = '\0';
	cr_expect_str_eq(h->body, "Subject: hi\r\n\r\n.dot\r\nbody\r\n");
	cr_expect_eq(m->size, h->body_len);
	cr_expect_eq(m->arrival, 1795379165);
	cr_expect_str_eq(m->received,
		"Received: from client.example (unknown [198.18.0.9])\r\n"
		"\tby mx.sluice.test (Sluice) with ESMTP id T1;\r\n"
		"\tSun, 22 Nov 2026 20:26:05 +0000\r\n");
	cr_expect_eq(m->received_len, strlen(m->received));

	cr_expect_eq(smtp_session_queued(&h->s, SMTP_QUEUED_OK, "0ABC"), 0);
	cr_expect_eq(smtp_session_queued(&h->s, SMTP_QUEUED_OK, "0ABC"), -1);
	cr_expect_null(smtp_session_message(&h->s));
	th_drain(h);
	OUT_IS("250 2.0.0 Ok: queued as 0ABC\r\n");
	th_feed(h, tail, strlen(tail), 0);
	OUT_IS("250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n");
	cr_expect_eq(h->st.messages, 1);
	cr_expect_eq(h->st.recipients, 2);
}

Test(session, queue_failures)
{
	greeted();
	th_feeds(h, "MAIL FROM:<>\r\nRCPT TO:<a@x.example>\r\nDATA\r\nx\r\n.\r\n");
	cr_assert_eq(smtp_session_event(&h->s), SMTP_EV_MESSAGE);
	cr_expect_str_eq(smtp_session_message(&h->s)->sender, "");
	cr_expect_not_null(strstr(smtp_session_message(&h->s)->received, "\tfor <a@x.example>; "));
	smtp_session_queued(&h->s, SMTP_QUEUED_TEMP, NULL);
	th_feeds(h, "MAIL FROM:<>\r\nRCPT TO:<a@x.example>\r\nDATA\r\nx\r\n.\r\n");
	cr_assert_eq(smtp_session_event(&h->s), SMTP_EV_MESSAGE);
	smtp_session_queued(&h->s, SMTP_QUEUED_FULL, NULL);
	th_drain(h);
	cr_expect(th_has(h, "451 4.3.0 Error: queue unavailable, try again later\r\n"));
	cr_expect(th_has(h, "452 4.3.1 Error: insufficient system storage\r\n"));
	cr_expect_eq(h->st.rej_queue, 2);
	cr_expect_eq(h->st.messages, 0);
}

Test(session, pipelined_group_replies_in_order)
{
	h = th_new(OUTSIDE_IP, MYNET, "example.com");
	th_feeds(h, EHLO);
	th_clear(h);
	const char in[] =
		"MAIL FROM:<a@b.example>\r\n"
		"RCPT TO:<one@example.com>\r\n"
		"RCPT TO:<two@elsewhere.example>\r\n"
		"RCPT TO:<three@example.com>\r\n"
		"RCPT TO:<four@[192.0.2.1]>\r\n"
		"DATA\r\n"
		"body\r\n.\r\n"
		"MAIL FROM:<c@d.example>\r\n"
		"RSET\r\n"
		"NOOP\r\n"
		"QUIT\r\n";
	th_run(h, in, sizeof(in) - 1, 0);
	OUT_IS("250 2.1.0 Ok\r\n"
	       "250 2.1.5 Ok\r\n"
	       "554 5.7.1 <two@elsewhere.example>: Relay access denied\r\n"
	       "250 2.1.5 Ok\r\n"
	       "554 5.7.1 <four@[192.0.2.1]>: Relay access denied\r\n"
	       "354 End data with <CR><LF>.<CR><LF>\r\n"
	       "250 2.0.0 Ok: queued as Q1\r\n"
	       "250 2.1.0 Ok\r\n"
	       "250 2.0.0 Ok\r\n"
	       "250 2.0.0 Ok\r\n"
	       "221 2.0.0 Bye\r\n");
	cr_expect_eq(h->st.rej_relay, 2);
}

/* A long script with every kind of command, error, DATA and BDAT. */
static const char script[] =
	"EHLO client.example\r\n"
	"NOOP\r\nHELP\r\nVRFY x\r\nFOO bar\r\n"
	"MAIL FROM:<a@b.example> SIZE=50 BODY=7BIT\r\n"
	"RCPT TO:<r1@example.com> NOTIFY=NEVER\r\n"
	"RCPT TO:<r2@anywhere.example>\r\n"
	"DATA\r\n"
	"Received: from x\r\nSubject: s\r\n\r\n..stuffed\r\nline\r\n.\r\n"
	"MAIL FROM:<>\r\nRCPT TO:<r3@example.com>\r\n"
	"BDAT 13\r\nline 1\r\n.\r\n\r\n"
	"DATA\r\n"
	"BDAT 11 LAST\r\nline 2\r\n.\r\n"
	"RSET\r\n"
	"BDAT 6\r\nQUIT\r\n"
	"MAIL FROM:<a@b.example>\r\nRCPT TO:<x@example.com>\r\nDATA\r\n"
	"bad\nline\r\n.\r\n"
	"MAIL FROM:<a@b.example>\r\nRCPT TO:<x@example.com>\r\nBDAT 0 LAST\r\n"
	"NOOP\rQUIT\r\n"
	"QUIT\r\n";

static void run_script(size_t chunk, char **out, char **body, unsigned *msgs)
{
	th_run(h, script, sizeof(script) - 1, chunk);
	*out = strdup(h->out);
	*body = malloc(h->body_len + 1);
	memcpy(*body, h->body, h->body_len);
	(*body)[h->body_len] = '\0';
	*msgs = h->messages;
}

Test(session, split_anywhere_gives_identical_output)
{
	char *ref_out, *ref_body, *out, *body;
	unsigned ref_msgs, msgs;
	local_session();
	th_clear(h);
	run_script(0, &ref_out, &ref_body, &ref_msgs);
	cr_expect_eq(ref_msgs, 3);
	cr_expect_str_eq(ref_out,
		"250-mx.sluice.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
		"250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250-ETRN\r\n"
		"250-DSN\r\n250-XSLUICE\r\n250 SMTPUTF8\r\n"
		"250 2.0.0 Ok\r\n"
		"214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP ETRN\r\n"
		"252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery\r\n"
		"500 5.5.2 Error: command not recognized\r\n"
		"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
		"354 End data with <CR><LF>.<CR><LF>\r\n"
		"250 2.0.0 Ok: queued as Q1\r\n"
		"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
		"250 2.0.0 13 octets received\r\n"
		"503 5.5.1 Error: DATA after BDAT\r\n"
		"250 2.0.0 Ok: queued as Q2\r\n"
		"250 2.0.0 Ok\r\n"
		"503 5.5.1 Error: need MAIL command\r\n"
		"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
		"550 5.5.2 Error: bare <CR> or <LF> received in message\r\n"
		"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
		"250 2.0.0 Ok: queued as Q3\r\n"
		"500 5.5.2 Error: bad character in command\r\n"
		"221 2.0.0 Bye\r\n");
	static const size_t chunks[] = { 1, 2, 3, 7, 13, 64 };
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		fin();
		local_session();
		th_clear(h);
		run_script(chunks[i], &out, &body, &msgs);
		cr_expect_str_eq(out, ref_out, "chunk %zu", chunks[i]);
		cr_expect_str_eq(body, ref_body, "chunk %zu", chunks[i]);
		cr_expect_eq(msgs, ref_msgs, "chunk %zu", chunks[i]);
		free(out);
		free(body);
	}
	free(ref_out);
	free(ref_body);
}

Test(session, enhanced_status_codes_on_every_reply)
{
	char *out, *body;
	unsigned msgs;
	h = th_new(OUTSIDE_IP, MYNET, "example.com");
	run_script(0, &out, &body, &msgs);
	free(out);
	free(body);
	char line[600];
	unsigned n = th_nlines(h);
	cr_expect_gt(n, 20);
	for (unsigned i = 0; i < n; i++) {
		cr_assert_not_null(th_line(h, i, line, sizeof(line)));
		cr_expect(strlen(line) >= 4 && line[0] >= '2' && line[0] <= '5' &&
			  (line[3] == ' ' || line[3] == '-'), "malformed: %s", line);
		/* exempt: the greeting (line 0) and the EHLO reply (lines 1-9) */
		if (i <= 9 || line[0] == '3')
			continue;
		char cls = 0;
		int a = 0, b = 0, sp = 0;
		cr_expect_eq(sscanf(line + 4, "%c.%d.%d%n", &cls, &a, &b, &sp), 3, "no code: %s", line);
		cr_expect_eq(cls, line[0], "class mismatch: %s", line);
		cr_expect_eq(line[4 + sp], ' ', "%s", line);
	}
}

Test(session, bdat_chunks)
{
	greeted();
	const char in[] = "MAIL FROM:<a@b.example>\r\nRCPT TO:<c@example.com>\r\n"
			  "BDAT 7\r\nhello\r\nBDAT 0\r\nbdat 13 LAST\r\n.\r\nworld.\r\n\r\n";
	th_feed(h, in, sizeof(in) - 1, 0);
	OUT_IS("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 7 octets received\r\n"
	       "250 2.0.0 0 octets received\r\n");
	cr_assert_eq(smtp_session_event(&h->s), SMTP_EV_MESSAGE);
	h->body[h->body_len] = '\0';
	cr_expect_str_eq(h->body, "hello\r\n.\r\nworld.\r\n\r\n");
	cr_expect_eq(smtp_session_message(&h->s)->size, 20);
	smtp_session_queued(&h->s, SMTP_QUEUED_OK, "B1");
	th_drain(h);
	OUT_IS("250 2.0.0 Ok: queued as B1\r\n");
	/* BDAT 0 LAST alone is an empty message */
	th_feeds(h, "MAIL FROM:<a@b.example>\r\nRCPT TO:<c@example.com>\r\nBDAT 0 LAST\r\n");
	cr_expect_eq(smtp_session_event(&h->s), SMTP_EV_MESSAGE);
	cr_expect_eq(smtp_session_message(&h->s)->size, 0);
}

Test(session, bdat_without_transaction_discards_its_bytes)
{
	greeted();
	/* the chunk holds commands: they must not run */
	th_feeds(h, "BDAT 18\r\nRSET\r\nQUIT\r\nNOOP\r\nNOOP\r\n");
	OUT_IS("503 5.5.1 Error: need MAIL command\r\n250 2.0.0 Ok\r\n");
	cr_expect_eq(smtp_session_event(&h->s), SMTP_EV_NONE);
	th_feeds(h, "MAIL FROM:<a@b.example>\r\nBDAT 6 LAST\r\nQUIT\r\nNOOP\r\n");
	OUT_IS("250 2.1.0 Ok\r\n503 5.5.1 Error: need RCPT command\r\n250 2.0.0 Ok\r\n");
	/* the transaction is still open: RCPT works */
	th_feeds(h, "RCPT TO:<c@example.com>\r\n");
	OUT_IS("250 2.1.5 Ok\r\n");
	th_feeds(h, "BDAT x\r\n");
	OUT_IS("501 5.5.4 Syntax error in parameters or arguments\r\n");
}

Test(session, data_after_bdat_and_rcpt_after_bdat)
{
	greeted();
	th_feeds(h, "MAIL FROM:<a@b.example>\r\nRCPT TO:<c@example.com>\r\nBDAT 3\r\nabc"
		    "DATA\r\nRCPT TO:<d@example.com>\r\nBDAT 2 LAST\r\n\r\n");
	OUT_IS("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 3 octets received\r\n"
	       "503 5.5.1 Error: DATA after BDAT\r\n503 5.5.1 Error: RCPT after BDAT\r\n");
	cr_assert_eq(smtp_session_event(&h->s), SMTP_EV_MESSAGE);
	cr_expect_eq(smtp_session_message(&h->s)->size, 5);
	cr_expect_eq(smtp_session_message(&h->s)->nrcpt, 1);
}

Test(session, starttls_discards_pipelined_plaintext)
{
	local_session();
	h->conf.tls_available = true;
	th_restart(h);
	th_feeds(h, EHLO);
	th_clear(h);
	const char in[] = "STARTTLS\r\nMAIL FROM:<inject@evil.example>\r\nRCPT TO:<x@example.com>\r\n";
	/* consumed up to the end of the STARTTLS line: the rest is for the caller to drop */
	cr_expect_eq(smtp_session_input(&h->s, in, sizeof(in) - 1), 10);
	th_drain(h);
	OUT_IS("220 2.0.0 Ready to start TLS\r\n");
	cr_assert_eq(smtp_session_event(&h->s), SMTP_EV_STARTTLS);
	/* more plaintext before the handshake: discarded too */
	cr_expect_eq(smtp_session_input(&h->s, "NOOP\r\n", 6), 6);
	th_drain(h);
	cr_expect_eq(h->out_len, 0);
	cr_expect_eq(smtp_session_tls_started(&h->s, "TLSv1.3 with cipher TLS_AES_128_GCM_SHA256"), 0);
	cr_expect_eq(smtp_session_tls_started(&h->s, "x"), -1);
	cr_expect_eq(smtp_session_event(&h->s), SMTP_EV_NONE);
	/* state was reset: EHLO again, and no STARTTLS offered now */
	th_feeds(h, "MAIL FROM:<a@b.example>\r\nSTARTTLS\r\nEHLO again.example\r\n");
	OUT_IS("503 5.5.1 Error: send HELO/EHLO first\r\n503 5.5.1 Error: TLS already active\r\n"
	       "250-mx.sluice.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
	       "250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250-ETRN\r\n"
	       "250-DSN\r\n250-XSLUICE\r\n250 SMTPUTF8\r\n");
	th_feeds(h, "MAIL FROM:<a@b.example>\r\nRCPT TO:<x@example.com>\r\nDATA\r\nx\r\n.\r\n");
	cr_assert_eq(smtp_session_event(&h->s), SMTP_EV_MESSAGE);
	cr_expect_str_eq(smtp_session_message(&h->s)->received,
		"Received: from again.example (unknown [198.18.0.9])\r\n"
		"\t(using TLSv1.3 with cipher TLS_AES_128_GCM_SHA256)\r\n"
		"\tby mx.sluice.test (Sluice) with ESMTPS id T1\r\n"
		"\tfor <x@example.com>; Sun, 22 Nov 2026 20:26:05 +0000\r\n");
	cr_expect_eq(h->st.starttls, 1);
}

Test(session, starttls_refusals)
{
	greeted();
	th_feeds(h, "STARTTLS\r\n");
	OUT_IS("502 5.5.1 Error: command not implemented\r\n");
	h->conf.tls_available = true;
	th_restart(h);
	th_clear(h);
	th_feeds(h, "STARTTLS\r\nHELO x.example\r\nSTARTTLS\r\nEHLO x.example\r\n");
	th_clear(h);
	th_feeds(h, "MAIL FROM:<a@b.example>\r\nSTARTTLS\r\nSTARTTLS now\r\n");
	OUT_IS("250 2.1.0 Ok\r\n503 5.5.1 Error: MAIL transaction in progress\r\n"
	       "501 5.5.4 Syntax error in parameters or arguments\r\n");
	th_restart(h);
	th_clear(h);
	th_feeds(h, "STARTTLS\r\n");
	OUT_IS("503 5.5.1 Error: send EHLO first\r\n");
	th_feeds(h, "HELO x.example\r\nSTARTTLS\r\n");
	OUT_IS("250 mx.sluice.test\r\n503 5.5.1 Error: send EHLO first\r\n");
}

Test(session, size_limits)
{
	local_session();
	h->conf.max_size = 20;
	th_restart(h);
	th_feeds(h, EHLO);
	th_clear(h);
	th_feeds(h, "MAIL FROM:<a@b.example> SIZE=21\r\nMAIL FROM:<a@b.example> SIZE=20\r\n"
		    "RCPT TO:<c@example.com>\r\nDATA\r\n");
	OUT_IS("552 5.3.4 Error: message size exceeds fixed limit\r\n250 2.1.0 Ok\r\n"
	       "250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
	th_feeds(h, "0123456789\r\n0123456789\r\n.\r\nNOOP\r\n");
	OUT_IS("552 5.3.4 Error: message too big\r\n250 2.0.0 Ok\r\n");
	cr_expect_eq(smtp_session_event(&h->s), SMTP_EV_NONE);
	/* BDAT: reported at LAST */
	th_feeds(h, "MAIL FROM:<a@b.example>\r\nRCPT TO:<c@example.com>\r\n"
		    "BDAT 15\r\n012345678901234BDAT 15 LAST\r\n012345678901234");
	OUT_IS("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 15 octets received\r\n"
	       "552 5.3.4 Error: message too big\r\n");
	cr_expect_eq(h->st.rej_size, 3);
}

Test(session, recipient_limit)
{
	greeted();
	cr_expect_eq(h->conf.max_rcpt, 1000);
	h->conf.max_rcpt = 100;
	th_feeds(h, "MAIL FROM:<a@b.example>\r\n");
	char l[64];
	for (int i = 0; i < 101; i++) {
		snprintf(l, sizeof(l), "RCPT TO:<r%d@example.com>\r\n", i);
		th_feeds(h, l);
	}
	cr_expect_eq(th_nlines(h), 102);
	char line[128];
	cr_expect_str_eq(th_line(h, 100, line, sizeof(line)), "250 2.1.5 Ok");
	cr_expect_str_eq(th_line(h, 101, line, sizeof(line)), "452 4.5.3 Error: too many recipients");
	th_clear(h);
	th_feeds(h, "DATA\r\nx\r\n.\r\n");
	cr_assert_eq(smtp_session_event(&h->s), SMTP_EV_MESSAGE);
	cr_expect_eq(smtp_session_message(&h->s)->nrcpt, 100);
	struct smtp_rcpt_view v;
	cr_assert_eq(th_rcpt(h, 99, &v), 0);
	cr_expect_str_eq(v.addr, "r99@example.com");
	/* no "for" clause with many recipients */
	cr_expect_null(strstr(smtp_session_message(&h->s)->received, "for <"));
	cr_expect_eq(h->st.rej_rcpt_limit, 1);
}

Test(session, command_line_limit)
{
	greeted();
	char l[SMTP_CMD_MAX + 200];
	/* SMTP_CMD_MAX - 2 octets + CRLF: accepted (RFC 5321's 512 + RFC 3461's 500) */
	memcpy(l, "NOOP ", 5);
	memset(l + 5, 'x', SMTP_CMD_MAX - 2 - 5);
	memcpy(l + SMTP_CMD_MAX - 2, "\r\n", 2);
	th_feed(h, l, SMTP_CMD_MAX, 0);
	OUT_IS("250 2.0.0 Ok\r\n");
	/* one more: too long, and the rest of the line is not a command */
	memset(l + 5, 'x', SMTP_CMD_MAX - 1 - 5);
	memcpy(l + SMTP_CMD_MAX - 1, "\r\n", 2);
	th_feed(h, l, SMTP_CMD_MAX + 1, 0);
	OUT_IS("500 5.5.2 Error: line too long\r\n");
	memset(l, 'y', SMTP_CMD_MAX + 100);
	memcpy(l + SMTP_CMD_MAX + 90, "QUIT\r\n", 6);
	th_feed(h, l, SMTP_CMD_MAX + 96, 1);
	OUT_IS("500 5.5.2 Error: line too long\r\n");
	cr_expect_eq(smtp_session_event(&h->s), SMTP_EV_NONE);
	cr_expect_eq(h->st.rej_line, 2);
}

/* RFC 3461: a RCPT with a 500-character ORCPT is longer than 512 octets;
 * it is accepted, and the ORCPT reaches the message as sent. */
Test(session, rcpt_with_500_character_orcpt)
{
	char orcpt[SMTP_ORCPT_MAX + 1], l[SMTP_CMD_MAX];
	greeted();
	memcpy(orcpt, "rfc822;", 7);
	for (unsigned i = 7; i < SMTP_ORCPT_MAX; i++)
		orcpt[i] = (char)('a' + i % 26);
	orcpt[SMTP_ORCPT_MAX] = '\0';
	snprintf(l, sizeof(l), "RCPT TO:<bob@example.com> NOTIFY=FAILURE ORCPT=%s\r\n", orcpt);
	cr_assert_gt(strlen(l), SMTP_LINE_MAX);
	th_feeds(h, "MAIL FROM:<a@example.org> ENVID=e1 RET=HDRS\r\n");
	th_feeds(h, l);
	th_feeds(h, "DATA\r\nx\r\n.\r\n");
	OUT_IS("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
	cr_assert_eq(smtp_session_event(&h->s), SMTP_EV_MESSAGE);
	struct smtp_rcpt_view v;
	cr_assert_eq(th_rcpt(h, 0, &v), 0);
	cr_expect_str_eq(v.addr, "bob@example.com");
	cr_assert_not_null(v.orcpt);
	cr_expect_str_eq(v.orcpt, orcpt);
	cr_expect_eq(v.notify, SMTP_NOTIFY_FAILURE);
	cr_expect_eq(h->st.rej_line, 0);
}

/* The engine keeps no recipients itself: as many as max_rcpt, each with a
 * 500-character ORCPT, all reach cb.rcpt (the session struct had a 32 KiB
 * arena that said "452 4.5.3 too many recipients" after ~40 of them). */
Test(session, max_rcpt_recipients_with_long_orcpts)
{
	char orcpt[SMTP_ORCPT_MAX + 1], l[SMTP_CMD_MAX];
	greeted();
	cr_assert_eq(h->conf.max_rcpt, SMTP_RCPT_HARD_MAX);
	memcpy(orcpt, "rfc822;", 7);
	memset(orcpt + 7, 'q', SMTP_ORCPT_MAX - 7);
	orcpt[SMTP_ORCPT_MAX] = '\0';
	th_feeds(h, "MAIL FROM:<a@example.org>\r\n");
	for (unsigned i = 0; i < SMTP_RCPT_HARD_MAX; i++) {
		snprintf(orcpt + 7, 5, "%04u", i);
		orcpt[11] = 'q';
		snprintf(l, sizeof(l), "RCPT TO:<r%u@example.com> ORCPT=%s\r\n", i, orcpt);
		th_feeds(h, l);
	}
	cr_expect_eq(th_nlines(h), 1 + SMTP_RCPT_HARD_MAX);
	cr_expect_not(th_has(h, "452 "), "%.200s", strstr(h->out, "452 "));
	th_clear(h);
	th_feeds(h, "DATA\r\nx\r\n.\r\n");
	cr_assert_eq(smtp_session_event(&h->s), SMTP_EV_MESSAGE);
	cr_expect_eq(smtp_session_message(&h->s)->nrcpt, SMTP_RCPT_HARD_MAX);
	cr_assert_eq(h->nrcpts, SMTP_RCPT_HARD_MAX);
	for (unsigned i = 0; i < SMTP_RCPT_HARD_MAX; i += 111) {
		struct smtp_rcpt_view v;
		char want[32];
		cr_assert_eq(th_rcpt(h, i, &v), 0);
		snprintf(want, sizeof(want), "r%u@example.com", i);
		cr_expect_str_eq(v.addr, want);
		cr_assert_not_null(v.orcpt);
		cr_expect_eq(strlen(v.orcpt), SMTP_ORCPT_MAX);
		snprintf(want, sizeof(want), "rfc822;%04u", i);
		cr_expect(strncmp(v.orcpt, want, 11) == 0, "%.20s", v.orcpt);
	}
	cr_expect_eq(sizeof(struct smtp_message) < 4096, 1, "the session keeps no recipients");
}

/* No memory for a recipient: that RCPT gets 452 4.3.1 (RFC 5321 4.5.3.1.10:
 * the client sends it again later), does not count, is no protocol error;
 * the ones kept go with the message; the next transaction starts empty. */
Test(session, no_memory_for_a_recipient_is_452_4_3_1)
{
	greeted();
	h->rcpt_room = 2;
	th_feeds(h, "MAIL FROM:<a@example.org>\r\nRCPT TO:<r1@example.com>\r\n"
		    "RCPT TO:<r2@example.com>\r\nRCPT TO:<r3@example.com>\r\n");
	OUT_IS("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
	       "452 4.3.1 Error: insufficient system storage\r\n");
	cr_expect_eq(h->st.rej_rcpt_nomem, 1);
	cr_expect_eq(h->st.rej_rcpt_limit, 0);
	cr_expect_eq(h->s.errors, 0, "a 4xx is not a protocol error");
	th_run(h, "DATA\r\nx\r\n.\r\n", strlen("DATA\r\nx\r\n.\r\n"), 0);
	cr_expect_eq(h->messages, 1);
	/* answered: the recipients were let go */
	cr_expect_eq(h->rcpt_resets, 1);
	cr_expect_eq(h->nrcpts, 0);
	th_clear(h);
	h->rcpt_room = SMTP_RCPT_HARD_MAX;
	th_feeds(h, "MAIL FROM:<a@example.org>\r\nRCPT TO:<r3@example.com>\r\nRSET\r\n");
	OUT_IS("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok\r\n");
	cr_expect_eq(h->rcpt_resets, 2, "RSET lets the recipients go");
	/* no memory for any: DATA finds no valid recipient */
	h->rcpt_room = 0;
	th_feeds(h, "MAIL FROM:<a@example.org>\r\nRCPT TO:<r1@example.com>\r\nDATA\r\n");
	OUT_IS("250 2.1.0 Ok\r\n452 4.3.1 Error: insufficient system storage\r\n"
	       "554 5.5.1 Error: no valid recipients\r\n");
}

Test(session, bare_lf_and_cr_in_commands)
{
	greeted();
	th_feeds(h, "NOOP\nQUIT\nNOOP\r\n");
	OUT_IS("500 5.5.2 Error: bare <LF> received\r\n500 5.5.2 Error: bare <LF> received\r\n"
	       "250 2.0.0 Ok\r\n");
	th_feeds(h, "NOOP\rQUIT\r\n");
	OUT_IS("500 5.5.2 Error: bad character in command\r\n");
	cr_expect_eq(smtp_session_event(&h->s), SMTP_EV_NONE);
	th_feeds(h, "\r\n");
	OUT_IS("500 5.5.2 Error: command not recognized\r\n");
}

Test(session, text_line_limit_in_data)
{
	greeted();
	char l[1200];
	th_feeds(h, "MAIL FROM:<a@b.example>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n");
	th_clear(h);
	memset(l, 'x', 999);
	memcpy(l + 999, "\r\n.\r\n", 5);
	th_feed(h, l, 1004, 0);
	OUT_IS("500 5.5.2 Error: message line too long\r\n");
	cr_expect_eq(smtp_session_event(&h->s), SMTP_EV_NONE);
}

Test(session, too_many_errors_disconnects)
{
	greeted();
	h->conf.max_errors = 3;
	th_feeds(h, "FOO\r\nBAR\r\nNOOP\r\nBAZ\r\nNOOP\r\n");
	OUT_IS("500 5.5.2 Error: command not recognized\r\n500 5.5.2 Error: command not recognized\r\n"
	       "250 2.0.0 Ok\r\n500 5.5.2 Error: command not recognized\r\n"
	       "421 4.7.0 mx.sluice.test Error: too many errors\r\n");
	cr_expect_eq(smtp_session_event(&h->s), SMTP_EV_CLOSE);
	cr_expect_eq(h->st.err_disconnect, 1);
}

static void hops(int n, const char *want)
{
	fin();
	greeted();
	th_feeds(h, "MAIL FROM:<a@b.example>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n");
	th_clear(h);
	for (int i = 0; i < n; i++)
		th_feeds(h, "Received: from hop.example by hop.example; Sun, 22 Nov 2026 20:00:00 +0000\r\n");
	th_feeds(h, "Subject: loop\r\n\r\nReceived: in the body does not count\r\n.\r\n");
	if (want == NULL) {
		cr_expect_eq(smtp_session_event(&h->s), SMTP_EV_MESSAGE, "%d hops", n);
		cr_expect_eq(smtp_session_message(&h->s)->received_count, (unsigned)n);
	} else {
		cr_expect_str_eq(h->out, want, "%d hops", n);
		cr_expect_eq(smtp_session_event(&h->s), SMTP_EV_NONE);
	}
}

Test(session, hop_count_limit)
{
	hops(0, NULL);
	cr_expect_not(smtp_session_message(&h->s)->held);
	hops(49, NULL);
	cr_expect_not(smtp_session_message(&h->s)->held);
	hops(50, "554 5.4.6 Error: too many hops\r\n");
	hops(80, "554 5.4.6 Error: too many hops\r\n");
	cr_expect_eq(h->st.rej_hops, 1);
}

/* loop_action = hold: a message over the hop limit is taken, to be queued
 * held (Sun's .HELD), instead of 554 5.4.6; the next one is not held. */
Test(session, hop_count_limit_with_loop_action_hold)
{
	for (int n = 49; n <= 51; n++) {
		fin();
		greeted();
		h->conf.loop = SMTP_LOOP_HOLD;
		th_restart(h);
		th_feeds(h, EHLO);
		th_feeds(h, "MAIL FROM:<a@b.example>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n");
		th_clear(h);
		for (int i = 0; i < n; i++)
			th_feeds(h, "Received: from hop.example by hop.example; "
				 "Sun, 22 Nov 2026 20:00:00 +0000\r\n");
		th_feeds(h, "Subject: loop\r\n\r\nbody\r\n.\r\n");
		cr_assert_eq(smtp_session_event(&h->s), SMTP_EV_MESSAGE, "%d hops: taken", n);
		cr_expect_eq(smtp_session_message(&h->s)->held, n >= 50, "%d hops", n);
		cr_expect_eq(h->st.rej_hops, 0);
		cr_expect_eq(h->st.held_hops, n >= 50 ? 1u : 0u);
		smtp_session_queued(&h->s, SMTP_QUEUED_OK, "0123456789ABC");
		th_feeds(h, "MAIL FROM:<a@b.example>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n"
			 "Subject: next\r\n\r\nbody\r\n.\r\n");
		cr_assert_eq(smtp_session_event(&h->s), SMTP_EV_MESSAGE);
		cr_expect_not(smtp_session_message(&h->s)->held, "the next message is not held");
	}
}

static const char smuggle[] =
	"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n"
	"Subject: one\r\n\r\nfirst\n.\n"
	"MAIL FROM:<admin@bank.example>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n"
	"Subject: smuggled\r\n\r\nsecond\r\n.\r\n"
	"NOOP\r\n";

Test(session, smuggling_probe_reject_policy)
{
	static const char *const seps[] = { "\n.\n", "\n.\r\n", "\r.\r", "\r\n.\n", "\r.\r\n", "\n.\r" };
	for (size_t k = 0; k < sizeof(seps) / sizeof(seps[0]); k++) {
		char in[600];
		snprintf(in, sizeof(in),
			 "MAIL FROM:<a@b.example>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n"
			 "Subject: one\r\n\r\nfirst%s"
			 "MAIL FROM:<admin@bank.example>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n"
			 "Subject: smuggled\r\n\r\nsecond\r\n.\r\nNOOP\r\n", seps[k]);
		for (size_t chunk = 0; chunk < 3; chunk++) {
			fin();
			greeted();
			th_run(h, in, strlen(in), chunk);
			cr_expect_str_eq(h->out,
				"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
				"550 5.5.2 Error: bare <CR> or <LF> received in message\r\n"
				"250 2.0.0 Ok\r\n", "separator %zu chunk %zu", k, chunk);
			cr_expect_eq(h->messages, 0);
		}
	}
	cr_expect_eq(h->st.rej_bare, 1);
}

Test(session, smuggling_probe_normalize_policy)
{
	local_session();
	h->conf.bare = SMTP_BARE_NORMALIZE;
	th_restart(h);
	th_feeds(h, EHLO);
	th_clear(h);
	th_run(h, smuggle, sizeof(smuggle) - 1, 0);
	/* one message, which contains the would-be second one as text */
	cr_expect_eq(h->messages, 1);
	cr_expect_str_eq(h->out,
		"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
		"250 2.0.0 Ok: queued as Q1\r\n250 2.0.0 Ok\r\n");
	h->body[h->body_len] = '\0';
	cr_expect_str_eq(h->body,
		"Subject: one\r\n\r\nfirst\r\n.\r\n"
		"MAIL FROM:<admin@bank.example>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n"
		"Subject: smuggled\r\n\r\nsecond\r\n");
}

Test(session, relay_policy_in_session)
{
	h = th_new(OUTSIDE_IP, MYNET, "example.com .example.net");
	th_feeds(h, EHLO);
	th_clear(h);
	th_feeds(h, "MAIL FROM:<a@b.example>\r\n"
		    "RCPT TO:<ok@example.com>\r\nRCPT TO:<ok@sub.example.net>\r\n"
		    "RCPT TO:<no@example.net>\r\nRCPT TO:<no@gmail.example>\r\n"
		    "RCPT TO:<no%gmail.example@example.com>\r\nRCPT TO:<no@[198.18.0.2]>\r\n"
		    "RCPT TO:<@example.com:no@gmail.example>\r\n");
	OUT_IS("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
	       "554 5.7.1 <no@example.net>: Relay access denied\r\n"
	       "554 5.7.1 <no@gmail.example>: Relay access denied\r\n"
	       "554 5.7.1 <no%gmail.example@example.com>: Relay access denied\r\n"
	       "554 5.7.1 <no@[198.18.0.2]>: Relay access denied\r\n"
	       "554 5.7.1 <no@gmail.example>: Relay access denied\r\n");
	fin();
	/* inside mynetworks: anything, literals included */
	greeted();
	th_feeds(h, "MAIL FROM:<a@b.example>\r\nRCPT TO:<x@gmail.example>\r\nRCPT TO:<y@[192.0.2.1]>\r\n");
	OUT_IS("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n");
	fin();
	/* no policy at all: nothing relays, not even from loopback */
	h = th_new("127.0.0.1", "", "");
	h->conf.policy = NULL;
	th_feeds(h, EHLO);
	th_clear(h);
	th_feeds(h, "MAIL FROM:<a@b.example>\r\nRCPT TO:<x@example.com>\r\n");
	OUT_IS("250 2.1.0 Ok\r\n554 5.7.1 <x@example.com>: Relay access denied\r\n");
}

/* RFC 5321 4.5.1 / 4.1.1.3: <Postmaster> and postmaster@<hostname> from a
 * client outside mynetworks are accepted and kept for conf.postmaster, the
 * address the client used becoming the ORCPT (RFC 3461 4.2) unless it sent
 * one; postmaster at another domain is still relaying. */
Test(session, postmaster_from_anyone_goes_to_the_configured_address)
{
	struct smtp_rcpt_view v;
	h = th_new(OUTSIDE_IP, MYNET, "example.com");
	snprintf(h->conf.postmaster, sizeof(h->conf.postmaster), "noc@isp.example");
	th_restart(h);
	th_feeds(h, EHLO);
	th_clear(h);
	th_feeds(h, "MAIL FROM:<a@b.example>\r\n"
		    "RCPT TO:<Postmaster>\r\n"
		    "RCPT TO:<postmaster@MX.Sluice.Test> NOTIFY=FAILURE\r\n"
		    "RCPT TO:<POSTMASTER> ORCPT=rfc822;abuse+40b.example\r\n"
		    "RCPT TO:<postmaster@other.example>\r\n"
		    "RCPT TO:<postmaster@[198.18.0.2]>\r\n"
		    "RCPT TO:<noc@isp.example>\r\n");
	OUT_IS("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
	       "554 5.7.1 <postmaster@other.example>: Relay access denied\r\n"
	       "554 5.7.1 <postmaster@[198.18.0.2]>: Relay access denied\r\n"
	       "554 5.7.1 <noc@isp.example>: Relay access denied\r\n");
	cr_expect_eq(h->st.postmaster, 3);
	cr_assert_eq(h->nrcpts, 3);
	cr_assert_eq(th_rcpt(h, 0, &v), 0);
	cr_expect_str_eq(v.addr, "noc@isp.example");
	cr_expect_str_eq(v.orcpt, "rfc822;Postmaster@mx.sluice.test");
	cr_expect_eq(v.notify, 0);
	cr_assert_eq(th_rcpt(h, 1, &v), 0);
	cr_expect_str_eq(v.addr, "noc@isp.example");
	cr_expect_str_eq(v.orcpt, "rfc822;postmaster@MX.Sluice.Test");
	cr_expect_eq(v.notify, SMTP_NOTIFY_FAILURE);
	cr_assert_eq(th_rcpt(h, 2, &v), 0);
	cr_expect_str_eq(v.orcpt, "rfc822;abuse+40b.example", "the client's ORCPT is kept");
	static const char data[] = "DATA\r\nSubject: hi\r\n\r\nx\r\n.\r\n";
	th_run(h, data, strlen(data), 0);
	cr_expect_eq(h->messages, 1);
	cr_expect(th_has(h, "250 2.0.0 Ok: queued as Q1"), "%s", h->out);
	fin();

	/* one recipient: the Received field names the address as it was used */
	h = th_new(OUTSIDE_IP, MYNET, "");
	th_feeds(h, EHLO "MAIL FROM:<a@b.example>\r\nRCPT TO:<postmaster>\r\nDATA\r\nx\r\n.\r\n");
	cr_assert_eq(smtp_session_event(&h->s), SMTP_EV_MESSAGE);
	cr_expect_not_null(strstr(smtp_session_message(&h->s)->received,
				  "\tfor <postmaster@mx.sluice.test>; "),
			   "%s", smtp_session_message(&h->s)->received);
	cr_assert_eq(th_rcpt(h, 0, &v), 0);
	cr_expect_str_eq(v.addr, "root@localhost", "the default");
	fin();

	/* inside mynetworks too: our postmaster is ours, not relayed */
	greeted();
	th_feeds(h, "MAIL FROM:<a@b.example>\r\nRCPT TO:<postmaster@mx.sluice.test>\r\n");
	cr_assert_eq(th_rcpt(h, 0, &v), 0);
	cr_expect_str_eq(v.addr, "root@localhost");
}

Test(session, postmaster_conf_is_checked)
{
	struct smtp_conf c;
	const char *why = NULL;
	smtp_conf_default(&c);
	cr_expect_str_eq(c.postmaster, "root@localhost");
	snprintf(c.hostname, sizeof(c.hostname), "mx.isp.example");
	snprintf(c.postmaster, sizeof(c.postmaster), "noc@isp.example");
	cr_expect_eq(smtp_conf_check(&c, &why), 0, "%s", why);
	snprintf(c.postmaster, sizeof(c.postmaster), "noc");
	cr_expect_eq(smtp_conf_check(&c, &why), -1);
	cr_expect_not_null(why);
	c.postmaster[0] = '\0';
	cr_expect_eq(smtp_conf_check(&c, NULL), -1);
	snprintf(c.postmaster, sizeof(c.postmaster), "PostMaster@MX.isp.example");
	cr_expect_eq(smtp_conf_check(&c, &why), -1, "a loop");
	cr_expect_not_null(strstr(why, "come back"));
	snprintf(c.postmaster, sizeof(c.postmaster), "postmaster@isp.example");
	cr_expect_eq(smtp_conf_check(&c, NULL), 0, "another domain's postmaster is fine");
}

Test(session, smtputf8)
{
	greeted();
	th_feeds(h, "MAIL FROM:<j\xc3\xb6rg@example.org>\r\n"
		    "MAIL FROM:<a@b.example>\r\nRCPT TO:<m\xc3\xbc@example.com>\r\nRSET\r\n"
		    "MAIL FROM:<j\xc3\xb6rg@example.org> SMTPUTF8\r\nRCPT TO:<m\xc3\xbc@example.com>\r\n"
		    "DATA\r\nSubject: \xc3\xa9\r\n\r\nx\r\n.\r\n");
	OUT_IS("553 5.6.7 Error: non-ASCII address requires SMTPUTF8\r\n250 2.1.0 Ok\r\n"
	       "553 5.6.7 Error: non-ASCII address requires SMTPUTF8\r\n250 2.0.0 Ok\r\n"
	       "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
	cr_assert_eq(smtp_session_event(&h->s), SMTP_EV_MESSAGE);
	const struct smtp_message *m = smtp_session_message(&h->s);
	cr_expect(m->smtputf8);
	cr_expect_not_null(strstr(m->received, " with UTF8SMTP id T1"));
	cr_expect_eq(h->st.rej_utf8, 2);
}

Test(session, sink_failure_is_452)
{
	greeted();
	h->sink_fail = true;
	th_feeds(h, "MAIL FROM:<a@b.example>\r\nRCPT TO:<c@example.com>\r\nDATA\r\nx\r\n.\r\n");
	cr_expect(th_has(h, "452 4.3.1 Error: insufficient system storage, try again later\r\n"));
	cr_expect_eq(smtp_session_event(&h->s), SMTP_EV_NONE);
}

Test(session, output_backpressure_never_loses_replies)
{
	greeted();
	static char in[600 * 6 + 1];
	for (int i = 0; i < 600; i++)
		memcpy(in + i * 6, "NOOP\r\n", 6);
	size_t n = smtp_session_input(&h->s, in, 3600);
	cr_expect_lt(n, 3600, "the engine must stop when its output is nearly full");
	cr_expect_gt(n, 0);
	/* nothing consumed until the output is drained */
	cr_expect_eq(smtp_session_input(&h->s, in + n, 3600 - n), 0);
	th_drain(h);
	th_feed(h, in + n, 3600 - n, 0);
	cr_expect_eq(th_nlines(h), 600);
	cr_expect_eq(h->out_len, 600 * 14);
}

Test(session, timeouts_per_state)
{
	greeted();
	cr_expect_eq(smtp_session_timeout_ns(&h->s), 300ull * 1000000000ull);
	h->conf.timeout_data_ns = 180ull * 1000000000ull;
	th_feeds(h, "MAIL FROM:<a@b.example>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n");
	cr_expect_eq(smtp_session_timeout_ns(&h->s), 180ull * 1000000000ull);
	th_feeds(h, ".\r\n");
	cr_expect_eq(smtp_session_timeout_ns(&h->s), 0);	/* waiting for the queue */
	smtp_session_queued(&h->s, SMTP_QUEUED_OK, "X");
	cr_expect_eq(smtp_session_timeout_ns(&h->s), 300ull * 1000000000ull);
	th_drain(h);
	th_clear(h);
	smtp_session_timeout(&h->s);
	th_drain(h);
	OUT_IS("421 4.4.2 mx.sluice.test Error: timeout exceeded\r\n");
	cr_expect_eq(smtp_session_event(&h->s), SMTP_EV_CLOSE);
	cr_expect_eq(h->st.timeouts, 1);
}

Test(session, shutdown)
{
	greeted();
	smtp_session_shutdown(&h->s);
	th_drain(h);
	OUT_IS("421 4.3.2 mx.sluice.test Service shutting down\r\n");
	cr_expect_eq(smtp_session_event(&h->s), SMTP_EV_CLOSE);
	fin();
	/* with a message waiting for the queue: its answer first */
	greeted();
	th_feeds(h, "MAIL FROM:<a@b.example>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n.\r\n");
	th_clear(h);
	smtp_session_shutdown(&h->s);
	th_drain(h);
	cr_expect_eq(h->out_len, 0);
	cr_expect_eq(smtp_session_event(&h->s), SMTP_EV_MESSAGE);
	smtp_session_queued(&h->s, SMTP_QUEUED_OK, "Z9");
	th_drain(h);
	OUT_IS("250 2.0.0 Ok: queued as Z9\r\n421 4.3.2 mx.sluice.test Service shutting down\r\n");
	cr_expect_eq(smtp_session_event(&h->s), SMTP_EV_CLOSE);
}

Test(session, counters_have_names)
{
	cr_expect_eq(smtp_stat_count, sizeof(struct smtp_stats) / sizeof(uint64_t));
	cr_expect_str_eq(smtp_stat_names[0], "sessions");
	greeted();
	th_run(h, one_msg, sizeof(one_msg) - 1, 0);
	cr_expect_eq(h->st.messages, 1);
	cr_expect_eq(h->st.bytes, h->body_len);
	cr_expect_geq(h->st.commands, 5);
}

Test(session, refused_connection)
{
	local_session();
	th_clear(h);
	smtp_session_refuse(&h->s);
	th_drain(h);
	OUT_IS("421 4.7.0 mx.sluice.test Error: too many connections, try again later\r\n");
	cr_expect_eq(smtp_session_event(&h->s), SMTP_EV_CLOSE);
	cr_expect_eq(smtp_session_input(&h->s, EHLO, strlen(EHLO)), strlen(EHLO));
	th_drain(h);
	cr_expect_eq(h->out_len, 0);
	cr_expect_eq(h->st.refused, 1);
}

/* sluicectl drain: the greeting is replaced by RFC 5321's 421 4.3.2 and
 * nothing the client sends after it is answered. */
Test(session, refused_drained)
{
	local_session();
	th_clear(h);
	smtp_session_refuse_drain(&h->s);
	th_drain(h);
	OUT_IS("421 4.3.2 mx.sluice.test Service not available, closing transmission channel\r\n");
	cr_expect_eq(smtp_session_event(&h->s), SMTP_EV_CLOSE);
	cr_expect_eq(smtp_session_input(&h->s, EHLO, strlen(EHLO)), strlen(EHLO));
	th_drain(h);
	cr_expect_eq(h->out_len, 0);
	cr_expect_eq(h->st.refused, 1);
}

/* XSLUICE (xsluice.h): offered and accepted only inside mynetworks; the
 * message keeps the first box's state; outside: 555 as any unknown one. */
Test(session, xsluice_trusted_only)
{
	const char *mail = "MAIL FROM:<a@b.example> XSLUICE=1764500000.4.1764503600.1764932000."
			   "451+204.2.1+20busy\r\n";

	local_session();
	th_feeds(h, EHLO);
	cr_expect_not_null(strstr(h->out, "250-XSLUICE\r\n"), "%s", h->out);
	th_clear(h);
	th_feeds(h, mail);
	OUT_IS("250 2.1.0 Ok\r\n");
	cr_expect(h->s.msg.has_xsluice);
	cr_expect_eq(h->s.msg.xsluice.arrival, 1764500000);
	cr_expect_eq(h->s.msg.xsluice.expiry, 1764932000);
	cr_expect_eq(h->s.msg.xsluice.attempts, 4);
	cr_expect_str_eq(h->s.msg.xsluice.last_error, "451 4.2.1 busy");
	cr_expect_eq(h->st.xsluice, 1);
	th_feeds(h, "RSET\r\n");
	cr_expect_not(h->s.msg.has_xsluice);
	fin();

	h = th_new(OUTSIDE_IP, MYNET, "example.com");
	th_feeds(h, EHLO);
	cr_expect_null(strstr(h->out, "XSLUICE"), "%s", h->out);
	th_clear(h);
	th_feeds(h, mail);
	OUT_IS("555 5.5.4 Unsupported parameter\r\n");
	cr_expect_not(h->s.msg.has_xsluice);
	cr_expect_eq(h->st.rej_xsluice, 1);
	cr_expect_eq(h->st.xsluice, 0);
}

Test(session, conf_check)
{
	struct smtp_conf c;
	const char *why = NULL;
	smtp_conf_default(&c);
	cr_expect_eq(smtp_conf_check(&c, &why), 0);
	cr_expect_null(why);
	c.max_rcpt = 99;
	cr_expect_eq(smtp_conf_check(&c, &why), -1);
	cr_expect_not_null(why);
	smtp_conf_default(&c);
	c.max_rcpt = SMTP_RCPT_HARD_MAX + 1;
	cr_expect_eq(smtp_conf_check(&c, NULL), -1);
	smtp_conf_default(&c);
	c.max_line = 500;
	cr_expect_eq(smtp_conf_check(&c, NULL), -1);
	smtp_conf_default(&c);
	c.hostname[0] = '\0';
	cr_expect_eq(smtp_conf_check(&c, NULL), -1);
	smtp_conf_default(&c);
	c.timeout_cmd_ns = 1;
	cr_expect_eq(smtp_conf_check(&c, NULL), -1);
}

/* ETRN (RFC 1985): mynetworks may ask for a domain's queue run; nobody else. */
Test(session, etrn_from_mynetworks_starts_a_queue_run)
{
	greeted();
	th_feeds(h, "ETRN example.org\r\nETRN @sub.example.net\r\n");
	OUT_IS("250 2.0.0 Queuing for node example.org started\r\n"
	       "250 2.0.0 Queuing for node sub.example.net started\r\n");
	cr_expect_eq(h->etrns, 2);
	cr_expect_str_eq(h->etrn, "sub.example.net");
	th_clear(h);
	th_feeds(h, "ETRN #outq\r\nETRN bad_domain!\r\nETRN\r\n");
	OUT_IS("458 4.3.0 #outq: no such queue; name a domain\r\n"
	       "501 5.5.4 Error: ETRN wants a domain\r\n"
	       "501 5.5.4 Syntax error in parameters or arguments\r\n");
	th_clear(h);
	h->etrn_ret = -1;	/* the control plane cannot take it now */
	th_feeds(h, "ETRN example.org\r\n");
	OUT_IS("458 4.3.0 Unable to queue messages for node example.org\r\n");
	th_clear(h);
	th_feeds(h, "MAIL FROM:<a@b.example>\r\nETRN example.org\r\n");
	OUT_IS("250 2.1.0 Ok\r\n503 5.5.1 Error: ETRN inside a mail transaction\r\n");
	cr_expect_eq(h->etrns, 3, "not called for refused ETRNs");
}

Test(session, etrn_from_outside_mynetworks_is_459)
{
	h = th_new("203.0.113.9", MYNET, "example.com");
	th_feeds(h, EHLO);
	th_clear(h);
	th_feeds(h, "ETRN example.com\r\n");
	OUT_IS("459 4.7.1 example.com: ETRN is not allowed from this client\r\n");
	cr_expect_eq(h->etrns, 0);
}

/* The refusals Postfix logs as "NOQUEUE: reject:" reach cb.reject with
 * their stage, reply, sender and recipient; sequence and syntax errors do
 * not. */
Test(session, policy_refusals_go_to_the_mail_log_errors_do_not)
{
	h = th_new(OUTSIDE_IP, MYNET, "example.com");
	th_feeds(h, EHLO);
	th_feeds(h, "RCPT TO:<c@d.example>\r\nFOO\r\nMAIL FROM:<bad\r\n");
	cr_expect_eq(h->rejects, 0, "sequence and syntax errors are not logged as rejects");
	th_feeds(h, "MAIL FROM:<a@b.example>\r\nRCPT TO:<x@gmail.example>\r\n");
	cr_expect_eq(h->rejects, 1);
	cr_expect_str_eq(h->reject, "RCPT|554 5.7.1 <x@gmail.example>: Relay access denied|"
				    "a@b.example|x@gmail.example");
	th_feeds(h, "RSET\r\n");
	h->conf.max_size = 1000;
	th_feeds(h, "MAIL FROM:<big@b.example> SIZE=5000\r\n");
	cr_expect_eq(h->rejects, 2);
	cr_expect_str_eq(h->reject, "MAIL|552 5.3.4 Error: message size exceeds fixed limit|"
				    "big@b.example|-");
}

/* A client over IPv6: mynetworks' IPv6 CIDR lets it relay, the Received
 * line names it as an RFC 5321 IPv6 address literal, and an IPv6 client
 * outside mynetworks is refused relaying like any other. */
Test(session, ipv6_client_relays_and_is_traced_as_ipv6_literal)
{
	static const char in[] = "EHLO v6.example\r\nMAIL FROM:<a@b.example>\r\n"
		"RCPT TO:<c@d.example>\r\nDATA\r\nhi\r\n.\r\n";
	h = th_new("fd00:5c::9", "198.18.0.0/24 fd00:5c::/64", "example.com");
	cr_expect_str_eq(h->s.client_ip, "fd00:5c::9");
	th_clear(h);
	th_feed(h, in, sizeof(in) - 1, 0);
	cr_expect(strstr(h->out, "250 2.1.5 Ok"), "%s", h->out);
	cr_assert_eq(smtp_session_event(&h->s), SMTP_EV_MESSAGE);
	const struct smtp_message *m = smtp_session_message(&h->s);
	cr_assert_not_null(m);
	cr_expect(strstr(m->received, "Received: from v6.example (unknown [IPv6:fd00:5c::9])\r\n") ==
		  m->received, "%s", m->received);
	th_free(h);
	h = th_new("2001:db8::1", "198.18.0.0/24 fd00:5c::/64", "example.com");
	th_clear(h);
	th_run(h, in, sizeof(in) - 1, 0);
	cr_expect(strstr(h->out, "554 5.7.1"), "%s", h->out);
	cr_expect_eq(h->messages, 0);
}
