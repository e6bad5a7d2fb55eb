/*
 * test_smtp_auth.c - SMTP AUTH (RFC 4954) in the session engine: offered
 * and taken only under TLS (530 5.7.0 in the clear); PLAIN with and without
 * an initial response, LOGIN in two steps, "*" cancels; the engine raises
 * SMTP_EV_AUTH with the decoded name and password and waits, consuming
 * nothing, until the answer; good -> 235 and relaying anywhere with ESMTPSA
 * in Received and the identity on the message; wrong -> 535 5.7.8 and 421
 * after max_auth_failures; temp -> 454; a submission listener wants TLS
 * and AUTH before MAIL; implicit TLS offers AUTH at once; base64 and PLAIN
 * splitting are strict. The per-client rates' replies (cb.rate at MAIL and
 * RCPT, SMTP_AUTH_RATE and _USER, smtp_session_refuse_rate): 452 4.7.1,
 * 452 4.5.3 not counted as errors, 421 4.7.0 and close.
 */
#include <criterion/criterion.h>

#include <string.h>

#include "dataplane/smtp/smtp_sasl.h"
#include "smtp_test.h"

static struct th *auth_th(bool submission)
{
	struct th *h = th_new(OUTSIDE_IP, "198.18.0.0/24", "example.com");

	h->conf.tls_available = true;
	h->conf.auth_available = true;
	h->conf.submission = submission;
	th_restart(h);
	h->auto_queue = true;
	return h;
}

/* EHLO, STARTTLS (answered by th_run), EHLO again. */
static void tls_up(struct th *h)
{
	th_feeds(h, EHLO "STARTTLS\r\n");
	cr_assert_eq(smtp_session_event(&h->s), SMTP_EV_STARTTLS);
	cr_assert_eq(smtp_session_tls_started(&h->s, "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384"), 0);
	th_feeds(h, EHLO);
	cr_assert(h->s.tls);
}

static void expect_auth(struct th *h, const char *name, const char *pass)
{
	const char *n, *p;
	size_t pl;

	cr_assert_eq(smtp_session_event(&h->s), SMTP_EV_AUTH);
	cr_assert_eq(smtp_session_auth_request(&h->s, &n, &p, &pl), 0);
	cr_assert_str_eq(n, name);
	cr_assert_eq(pl, strlen(pass));
	cr_assert(memcmp(p, pass, pl) == 0);
}

Test(smtp_auth, not_offered_nor_taken_in_the_clear)
{
	struct th *h = auth_th(false);

	th_feeds(h, EHLO);
	cr_assert(!th_has(h, "250-AUTH"), "AUTH offered in the clear: %s", h->out);
	cr_assert(th_has(h, "250 STARTTLS"));
	th_clear(h);
	th_feeds(h, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
	cr_assert(th_has(h, "530 5.7.0 Must issue a STARTTLS command first"), "%s", h->out);
	cr_assert_eq(smtp_session_event(&h->s), SMTP_EV_NONE);
	cr_assert_eq(h->st.rej_need_tls, 1);
	th_free(h);
}

Test(smtp_auth, plain_initial_response_good_relays_anywhere)
{
	struct th *h = auth_th(false);
	const char *rest = "MAIL FROM:<alice@isp.example>\r\nRCPT TO:<bob@elsewhere.example>\r\n"
			   "DATA\r\nSubject: hi\r\n\r\nhello\r\n.\r\n";
	size_t n;

	tls_up(h);
	cr_assert(th_has(h, "250-AUTH PLAIN LOGIN"), "%s", h->out);
	th_clear(h);
	/* "\0alice\0secret", then pipelined commands that must wait */
	{
		char line[512];
		snprintf(line, sizeof(line), "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n%s", rest);
		n = th_feeds(h, line);
		cr_assert_eq(n, strlen("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"),
			     "input went on past AUTH before its answer");
	}
	expect_auth(h, "alice", "secret");
	cr_assert_eq(h->out_len, 0, "a reply before the check: %s", h->out);
	cr_assert_gt(smtp_session_timeout_ns(&h->s), 0, "an AUTH wait without a timeout");
	cr_assert_eq(smtp_session_auth_done(&h->s, 1), 0);
	cr_assert_eq(h->s.auth_pass[0], '\0', "password not wiped");
	th_drain(h);
	cr_assert(th_has(h, "235 2.7.0 Authentication successful"), "%s", h->out);
	h->auto_queue = false;
	th_run(h, rest, strlen(rest), 0);
	cr_assert(th_has(h, "250 2.1.5 Ok"), "authenticated relay refused: %s", h->out);
	cr_assert_eq(smtp_session_event(&h->s), SMTP_EV_MESSAGE);
	cr_assert(strstr(h->s.msg.received, "with ESMTPSA"), "%s", h->s.msg.received);
	cr_assert_str_eq(smtp_session_message(&h->s)->auth_user, "alice");
	cr_assert_str_eq(smtp_session_message(&h->s)->auth_method, "PLAIN");
	smtp_session_queued(&h->s, SMTP_QUEUED_OK, "Q1");
	th_drain(h);
	cr_assert(th_has(h, "250 2.0.0 Ok: queued as Q1"), "%s", h->out);
	cr_assert_eq(h->st.auth_ok, 1);
	th_free(h);
}

/* The mechanism goes with the identity into the message (the queue record,
 * the mail log's sasl_method=); a failed AUTH leaves neither. */
Test(smtp_auth, login_identity_and_mechanism_reach_the_message)
{
	struct th *h = auth_th(false);
	const char *rest = "MAIL FROM:<bob@isp.example>\r\nRCPT TO:<x@elsewhere.example>\r\n"
			   "DATA\r\nSubject: hi\r\n\r\nhello\r\n.\r\n";

	tls_up(h);
	th_clear(h);
	th_feeds(h, "AUTH PLAIN Ym9iAGJvYgBodW50ZXIy\r\n");	/* "bob\0bob\0hunter2" */
	expect_auth(h, "bob", "hunter2");
	smtp_session_auth_done(&h->s, 0);	/* wrong: nothing kept */
	th_drain(h);
	cr_assert(th_has(h, "535 5.7.8"), "%s", h->out);
	th_clear(h);
	th_feeds(h, "AUTH LOGIN Ym9i\r\n");
	cr_assert(th_has(h, "334 UGFzc3dvcmQ6"), "%s", h->out);
	th_feeds(h, "aHVudGVyMg==\r\n");
	expect_auth(h, "bob", "hunter2");
	smtp_session_auth_done(&h->s, 1);
	th_drain(h);
	cr_assert(th_has(h, "235 2.7.0"), "%s", h->out);
	h->auto_queue = false;
	th_run(h, rest, strlen(rest), 0);
	cr_assert_eq(smtp_session_event(&h->s), SMTP_EV_MESSAGE, "%s", h->out);
	cr_assert_str_eq(smtp_session_message(&h->s)->auth_user, "bob");
	cr_assert_str_eq(smtp_session_message(&h->s)->auth_method, "LOGIN");
	smtp_session_queued(&h->s, SMTP_QUEUED_OK, "Q2");
	th_free(h);
}

Test(smtp_auth, unauthenticated_relay_still_refused)
{
	struct th *h = auth_th(false);
	const char *s = "MAIL FROM:<a@b.example>\r\nRCPT TO:<bob@elsewhere.example>\r\n";

	tls_up(h);
	th_run(h, s, strlen(s), 0);
	cr_assert(th_has(h, "554 5.7.1"), "%s", h->out);
	th_free(h);
}

Test(smtp_auth, plain_with_challenge_and_login_steps)
{
	struct th *h = auth_th(false);

	tls_up(h);
	th_clear(h);
	th_feeds(h, "AUTH PLAIN\r\n");
	cr_assert(th_has(h, "334 "), "%s", h->out);
	/* authzid = authcid is allowed */
	th_feeds(h, "Ym9iAGJvYgBodW50ZXIy\r\n");	/* "bob\0bob\0hunter2" */
	expect_auth(h, "bob", "hunter2");
	smtp_session_auth_done(&h->s, 0);
	th_drain(h);
	cr_assert(th_has(h, "535 5.7.8 Error: authentication failed"), "%s", h->out);
	cr_assert_eq(h->st.auth_failed, 1);
	th_clear(h);

	th_feeds(h, "AUTH LOGIN\r\n");
	cr_assert(th_has(h, "334 VXNlcm5hbWU6"), "%s", h->out);
	th_feeds(h, "Ym9i\r\n");
	cr_assert(th_has(h, "334 UGFzc3dvcmQ6"), "%s", h->out);
	th_feeds(h, "aHVudGVyMg==\r\n");
	expect_auth(h, "bob", "hunter2");
	smtp_session_auth_done(&h->s, -1);
	th_drain(h);
	cr_assert(th_has(h, "454 4.7.0 Temporary authentication failure"), "%s", h->out);
	th_clear(h);

	/* LOGIN with the name as initial response; then cancel */
	th_feeds(h, "AUTH LOGIN Ym9i\r\n");
	cr_assert(th_has(h, "334 UGFzc3dvcmQ6"), "%s", h->out);
	th_feeds(h, "*\r\n");
	cr_assert(th_has(h, "501 5.0.0 Authentication aborted"), "%s", h->out);
	cr_assert_eq(smtp_session_event(&h->s), SMTP_EV_NONE);
	th_clear(h);

	th_feeds(h, "AUTH CRAM-MD5\r\n");
	cr_assert(th_has(h, "504 5.5.4"), "%s", h->out);
	th_feeds(h, "AUTH PLAIN !!!!\r\n");
	cr_assert(th_has(h, "501 5.5.2"), "%s", h->out);
	/* an authzid other than the authcid: refused */
	th_feeds(h, "AUTH PLAIN ZXZlAGJvYgBodW50ZXIy\r\n");	/* "eve\0bob\0hunter2" */
	cr_assert_eq(smtp_session_event(&h->s), SMTP_EV_NONE);
	th_free(h);
}

Test(smtp_auth, repeated_failures_close_with_421)
{
	struct th *h = auth_th(false);

	h->conf.max_auth_failures = 3;
	tls_up(h);
	for (int i = 0; i < 3; i++) {
		th_feeds(h, "AUTH PLAIN AGFsaWNlAHdyb25n\r\n");
		expect_auth(h, "alice", "wrong");
		smtp_session_auth_done(&h->s, 0);
		th_drain(h);
	}
	cr_assert(th_has(h, "421 4.7.0"), "%s", h->out);
	cr_assert_eq(smtp_session_event(&h->s), SMTP_EV_CLOSE);
	cr_assert_eq(h->st.auth_failed, 3);
	cr_assert_eq(h->st.auth_disconnect, 1);
	th_free(h);
}

Test(smtp_auth, submission_wants_tls_then_auth_before_mail)
{
	struct th *h = auth_th(true);
	const char *s = EHLO "MAIL FROM:<a@b.example>\r\n";

	th_run(h, s, strlen(s), 0);
	cr_assert(th_has(h, "530 5.7.0 Must issue a STARTTLS command first"), "%s", h->out);
	th_clear(h);
	tls_up(h);
	th_clear(h);
	th_feeds(h, "MAIL FROM:<a@b.example>\r\n");
	cr_assert(th_has(h, "530 5.7.0 Authentication required"), "%s", h->out);
	th_feeds(h, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
	smtp_session_auth_done(&h->s, 1);
	th_clear(h);
	th_feeds(h, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
	cr_assert(th_has(h, "503 5.5.1 Error: already authenticated"), "%s", h->out);
	th_feeds(h, "MAIL FROM:<a@b.example>\r\n");
	cr_assert(th_has(h, "250 2.1.0 Ok"), "%s", h->out);
	th_free(h);
}

Test(smtp_auth, implicit_tls_offers_auth_at_once)
{
	struct th *h = auth_th(true);

	smtp_session_tls_implicit(&h->s, "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384");
	th_feeds(h, EHLO);
	cr_assert(th_has(h, "250-AUTH PLAIN LOGIN"), "%s", h->out);
	cr_assert(!th_has(h, "250 STARTTLS") && !th_has(h, "250-STARTTLS"), "%s", h->out);
	th_free(h);
}

Test(smtp_auth, timeout_while_checking_closes)
{
	struct th *h = auth_th(false);

	tls_up(h);
	th_feeds(h, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
	cr_assert_eq(smtp_session_event(&h->s), SMTP_EV_AUTH);
	smtp_session_timeout(&h->s);
	th_drain(h);
	cr_assert(th_has(h, "421 4.4.2"), "%s", h->out);
	cr_assert_eq(smtp_session_event(&h->s), SMTP_EV_CLOSE);
	cr_assert_eq(h->s.auth_pass[0], '\0');
	cr_assert_eq(smtp_session_auth_done(&h->s, 1), -1, "a late answer was taken");
	th_free(h);
}

Test(smtp_auth, sasl_pieces_are_strict)
{
	uint8_t out[64];
	char name[SMTP_AUTH_NAME_MAX + 1], pass[SMTP_AUTH_PASS_MAX + 1];
	size_t pl;

	cr_assert_eq(sasl_b64_decode("aGk=", 4, out, sizeof(out)), 2);
	cr_assert_eq(sasl_b64_decode("aGk", 3, out, sizeof(out)), -1);
	cr_assert_eq(sasl_b64_decode("a=Gk", 4, out, sizeof(out)), -1);
	cr_assert_eq(sasl_b64_decode("aG k", 4, out, sizeof(out)), -1);
	cr_assert_eq(sasl_b64_decode("aGVsbG8=", 8, out, 4), -1);
	cr_assert_eq(sasl_b64_decode("", 0, out, sizeof(out)), 0);
	cr_assert_eq(sasl_plain_split((const uint8_t *)"\0a\0p", 4, name, pass, &pl), 0);
	cr_assert_str_eq(name, "a");
	cr_assert_eq(pl, 1);
	cr_assert_eq(sasl_plain_split((const uint8_t *)"\0\0p", 3, name, pass, &pl), -1);
	cr_assert_eq(sasl_plain_split((const uint8_t *)"a\0p", 3, name, pass, &pl), -1);
	cr_assert_eq(sasl_plain_split((const uint8_t *)"\0a b\0p", 6, name, pass, &pl), -1);
	cr_assert_eq(sasl_plain_split((const uint8_t *)"\0a\0p\0q", 6, name, pass, &pl), -1);
}

Test(smtp_auth, without_users_auth_is_not_a_command)
{
	struct th *h = th_new(OUTSIDE_IP, "198.18.0.0/24", "example.com");

	h->conf.tls_available = true;
	th_restart(h);
	smtp_session_tls_implicit(&h->s, "TLSv1.3");
	th_feeds(h, EHLO "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
	cr_assert(!th_has(h, "250-AUTH"), "%s", h->out);
	cr_assert(th_has(h, "502 5.5.1"), "%s", h->out);
	cr_assert_eq(smtp_session_event(&h->s), SMTP_EV_NONE);
	th_free(h);
}

Test(smtp_auth, a_client_leaving_mid_auth_leaves_no_password)
{
	struct th *h = auth_th(false);

	tls_up(h);
	th_feeds(h, "AUTH LOGIN\r\n" "Ym9i\r\n" "aHVudGVyMg==\r\n");
	expect_auth(h, "bob", "hunter2");
	smtp_session_end(&h->s);
	cr_assert_eq(h->s.auth_pass[0], '\0');
	cr_assert_eq(h->s.auth_pass_len, 0);
	cr_assert_eq(smtp_session_auth_done(&h->s, 1), -1, "an answer after the end was taken");
	cr_assert(!h->s.authenticated);
	th_free(h);
}

/* ---- per-client rates (cb.rate, SMTP_AUTH_RATE*, refuse_rate) ---------------------- */

/* cb.rate for the tests: refuses a stage once `allow` of it have passed. */
static struct {
	unsigned mail, rcpt, allow_mail, allow_rcpt;
} rt;

static const char *test_rate(void *user, const char *stage)
{
	(void)user;
	if (strcmp(stage, "MAIL") == 0)
		return ++rt.mail > rt.allow_mail ? "452 4.7.1 Error: too much mail from 203.0.113.7"
						   : NULL;
	cr_assert_str_eq(stage, "RCPT");
	return ++rt.rcpt > rt.allow_rcpt ? "452 4.5.3 Error: too many recipients from 203.0.113.7"
					 : NULL;
}

static struct th *rate_th(unsigned allow_mail, unsigned allow_rcpt)
{
	struct th *h = th_new(OUTSIDE_IP, "203.0.113.0/24", "example.com");

	memset(&rt, 0, sizeof(rt));
	rt.allow_mail = allow_mail;
	rt.allow_rcpt = allow_rcpt;
	h->s.cb.rate = test_rate;
	h->auto_queue = true;
	return h;
}

/* Over the message rate: 452 4.7.1 to MAIL, logged as a reject, not counted
 * as an error (the session stays), and the next MAIL is asked again. */
Test(smtp_rate, mail_refused_by_the_rate)
{
	struct th *h = rate_th(2, 100);
	const char *m = "MAIL FROM:<s@a.example>\r\nRCPT TO:<r@b.example>\r\nDATA\r\n"
			"Subject: x\r\n\r\nx\r\n.\r\n";
	char buf[256];

	th_feeds(h, EHLO);
	for (int i = 0; i < 2; i++)
		th_run(h, m, strlen(m), 0);
	cr_expect_eq(h->messages, 2, "two messages within the rate: %u", h->messages);
	th_feeds(h, "MAIL FROM:<s@a.example>\r\n");
	cr_expect(th_has(h, "452 4.7.1 Error: too much mail from 203.0.113.7"), "%s", h->out);
	cr_expect_eq(h->st.rej_rate, 1);
	cr_expect_eq(h->s.errors, 0, "the 452 is no error: %u", h->s.errors);
	cr_expect_eq(h->rejects, 1);
	snprintf(buf, sizeof(buf), "MAIL|452 4.7.1 Error: too much mail from 203.0.113.7|s@a.example|-");
	cr_expect_str_eq(h->reject, buf);
	cr_expect_eq(rt.mail, 3, "every MAIL asked the rate");
	rt.allow_mail = 10;	/* the client slowed down: its next MAIL goes */
	th_clear(h);
	th_run(h, m, strlen(m), 0);
	cr_expect_eq(h->messages, 3, "%s", h->out);
	th_free(h);
}

/* Over the recipient rate: 452 4.5.3 to that RCPT only; the others of the
 * transaction stay. */
Test(smtp_rate, rcpt_refused_by_the_rate)
{
	struct th *h = rate_th(10, 2);
	const struct smtp_message *msg;
	const char *m = "MAIL FROM:<s@a.example>\r\nRCPT TO:<r1@b.example>\r\n"
			"RCPT TO:<r2@b.example>\r\nRCPT TO:<r3@b.example>\r\nDATA\r\n"
			"Subject: x\r\n\r\nx\r\n.\r\n";

	th_feeds(h, EHLO);
	h->auto_queue = false;
	th_run(h, m, strlen(m), 0);
	cr_expect(th_has(h, "452 4.5.3 Error: too many recipients from 203.0.113.7"), "%s", h->out);
	msg = smtp_session_message(&h->s);
	cr_assert_not_null(msg, "the message with its two recipients: %s", h->out);
	cr_expect_eq(msg->nrcpt, 2, "the two recipients within the rate are kept: %u",
		     msg->nrcpt);
	cr_expect_eq(h->st.rej_rate, 1);
	cr_expect_eq(h->s.errors, 0);
	th_free(h);
}

/* An AUTH refused because the address failed too often (checked before
 * the hash) and a good one refused by the user's connection rate: 421
 * 4.7.0 and close, never authenticated. */
Test(smtp_rate, auth_refused_by_the_rates)
{
	int results[2] = { SMTP_AUTH_RATE, SMTP_AUTH_RATE_USER };
	const char *text[2] = { "421 4.7.0 mx.sluice.test Error: too many authentication failures "
				"from 203.0.113.7",
				"421 4.7.0 mx.sluice.test Error: too many connections for this user" };

	for (int i = 0; i < 2; i++) {
		struct th *h = auth_th(true);
		tls_up(h);
		th_clear(h);
		th_feeds(h, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
		expect_auth(h, "alice", "secret");
		cr_assert_eq(smtp_session_auth_done(&h->s, results[i]), 0);
		th_drain(h);
		cr_expect(th_has(h, text[i]), "%s", h->out);
		cr_expect(!th_has(h, "235"), "%s", h->out);
		cr_expect_not(h->s.authenticated);
		cr_expect_eq(h->s.auth_pass[0], '\0', "password not wiped");
		cr_expect_eq(smtp_session_event(&h->s), SMTP_EV_CLOSE);
		cr_expect_eq(h->st.auth_refused, 1);
		th_free(h);
	}
}

Test(smtp_rate, connection_refused_by_the_rate)
{
	struct th *h = th_new(OUTSIDE_IP, NULL, NULL);
	char line[256];

	th_clear(h);
	smtp_session_refuse_rate(&h->s);
	th_drain(h);
	cr_expect_eq(th_nlines(h), 1, "%s", h->out);
	cr_expect_str_eq(th_line(h, 0, line, sizeof(line)),
			 "421 4.7.0 mx.sluice.test Error: too many connections from 203.0.113.7");
	cr_expect_eq(smtp_session_event(&h->s), SMTP_EV_CLOSE);
	th_free(h);
}
