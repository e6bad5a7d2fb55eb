/*
 * test_dsn.c - the DSN builder (control/dsn.c): every DSN a test makes is
 * written out through its iovec list and read back by Python's email package
 * (tests/unit/dsn_check.py), which must find a multipart/report with the
 * expected header, the delivery-status fields RFC 3464 requires with the
 * right values and Status codes, and the original attached as the right
 * type, its octets unchanged; a check that could not run fails the test.
 * Covered: every field, RET=FULL/HDRS/none, the size limit with a 20 MB
 * original (cut to its headers, read no further than needed; or attached
 * whole by reference, not copied), RFC 6533 global forms for UTF-8, ORCPT
 * and ENVID xtext, long diagnostics folded, header injection, the boundary
 * against content that quotes it, unclean originals, the double bounce,
 * NOTIFY (RFC 3461), the failure policy, small buffers and bad input. The
 * checker itself is shown to refuse wrong expectations and broken DSNs.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "control/dsn.h"

#ifndef SOURCE_ROOT
#error "SOURCE_ROOT must point at the source tree"
#endif
#ifndef PYTHON3
#define PYTHON3 "/usr/bin/python3"
#endif
#define CHECKER SOURCE_ROOT "/tests/unit/dsn_check.py"

#define HOST "mx1.sluice.test"
#define NOW 1700000000ull		/* Tue, 14 Nov 2023 22:13:20 +0000 */
#define ARRIVAL (NOW - 30 * 3600ull)
#define LAST (NOW - 60)
#define UNTIL (ARRIVAL + 5 * 86400ull)
#define TOKEN "0C4N7XW3Q2B1A"
#define MB (1024u * 1024u)

static char buf[8 * MB];		/* the builder's output buffer */

/* ---- a JSON writer for the expectations ------------------------------------------- */

struct js {
	char *p;
	size_t len, cap;
	bool comma;
};

static void js_raw(struct js *j, const char *s, size_t n)
{
	if (j->len + n + 1 > j->cap) {
		j->cap = (j->len + n + 1) * 2;
		j->p = realloc(j->p, j->cap);
		cr_assert_not_null(j->p);
	}
	memcpy(j->p + j->len, s, n);
	j->len += n;
	j->p[j->len] = '\0';
}

static void js_q(struct js *j, const char *s)
{
	js_raw(j, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char e[8];

		if (c == '"' || c == '\\') {
			e[0] = '\\';
			e[1] = (char)c;
			js_raw(j, e, 2);
		} else if (c < 0x20) {
			snprintf(e, sizeof(e), "\\u%04x", c);
			js_raw(j, e, 6);
		} else {
			js_raw(j, s, 1);
		}
	}
	js_raw(j, "\"", 1);
}

static void js_key(struct js *j, const char *k)
{
	if (j->comma)
		js_raw(j, ",", 1);
	j->comma = false;
	if (k) {
		js_q(j, k);
		js_raw(j, ":", 1);
	}
}

static void js_open(struct js *j, const char *k, char c)
{
	js_key(j, k);
	js_raw(j, &c, 1);
	j->comma = false;
}

static void js_close(struct js *j, char c)
{
	js_raw(j, &c, 1);
	j->comma = true;
}

static void js_str(struct js *j, const char *k, const char *v)
{
	js_key(j, k);
	js_q(j, v);
	j->comma = true;
}

static void js_int(struct js *j, const char *k, unsigned long long v)
{
	char n[32];

	js_key(j, k);
	snprintf(n, sizeof(n), "%llu", v);
	js_raw(j, n, strlen(n));
	j->comma = true;
}

static void js_bool(struct js *j, const char *k, bool v)
{
	js_key(j, k);
	js_raw(j, v ? "true" : "false", v ? 4 : 5);
	j->comma = true;
}

static void js_null(struct js *j, const char *k)
{
	js_key(j, k);
	js_raw(j, "null", 4);
	j->comma = true;
}

/* "k": {"epoch": t} - a date field that must parse to t */
static void js_epoch(struct js *j, const char *k, uint64_t t)
{
	js_open(j, k, '{');
	js_int(j, "epoch", t);
	js_close(j, '}');
}

static void js_nospace(struct js *j, const char *k, const char *v)
{
	js_open(j, k, '{');
	js_str(j, "nospace", v);
	js_close(j, '}');
}

/* A list of strings (NULL-terminated). */
static void js_list(struct js *j, const char *k, ...)
{
	va_list ap;

	js_open(j, k, '[');
	va_start(ap, k);
	for (const char *s; (s = va_arg(ap, const char *));)
		js_str(j, NULL, s);
	va_end(ap);
	js_close(j, ']');
}

/* ---- temp files and the checker ------------------------------------------------------ */

static char tmpdir[] = "/tmp/test_dsn.XXXXXX";

static void setup(void)
{
	cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	cr_expect_eq(system(cmd), 0);
}

TestSuite(dsn, .init = setup, .fini = teardown);

static void write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	cr_assert_eq(fwrite(p, 1, n, f), n);
	cr_assert_eq(fclose(f), 0);
}

/* Write the DSN as a sender would: its iovec list, in order. */
static void write_dsn(const char *path, const struct dsn_out *o)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	size_t total = 0;

	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	for (unsigned i = 0; i < o->iovcnt; i++) {
		const char *p = o->iov[i].iov_base;
		size_t left = o->iov[i].iov_len;

		while (left) {
			ssize_t n = write(fd, p, left);

			cr_assert_gt(n, 0, "write: %s", strerror(errno));
			p += n;
			left -= (size_t)n;
			total += (size_t)n;
		}
	}
	cr_assert_eq(close(fd), 0);
	cr_assert_eq(total, o->size, "iov adds up to %zu, size says %llu", total,
		     (unsigned long long)o->size);
}

/* Concatenate the DSN into one malloc'd buffer (for tests that read it). */
static char *flatten(const struct dsn_out *o)
{
	char *m = malloc(o->size + 1);
	size_t at = 0;

	cr_assert_not_null(m);
	for (unsigned i = 0; i < o->iovcnt; i++) {
		memcpy(m + at, o->iov[i].iov_base, o->iov[i].iov_len);
		at += o->iov[i].iov_len;
	}
	m[at] = '\0';
	return m;
}

static unsigned seq;

/* Run the checker on a DSN file and expectations; its exit status and output. */
static int run_checker(const char *dsn, const char *exp, char *outp, size_t outn)
{
	char cmd[1024];
	FILE *p;
	size_t n = 0;
	int st;

	snprintf(cmd, sizeof(cmd), "'%s' '%s' '%s' '%s' 2>&1", PYTHON3, CHECKER, dsn, exp);
	p = popen(cmd, "r");
	cr_assert_not_null(p, "popen: %s", strerror(errno));
	while (n + 1 < outn) {
		size_t k = fread(outp + n, 1, outn - 1 - n, p);

		if (k == 0)
			break;
		n += k;
	}
	outp[n] = '\0';
	st = pclose(p);
	cr_assert(WIFEXITED(st), "checker did not exit: %d", st);
	return WEXITSTATUS(st);
}

/* The DSN must pass every check the expectations ask for. */
static void python_ok(const struct dsn_out *o, struct js *j)
{
	char dsn[256], exp[256], out[16384];
	int rc;

	snprintf(dsn, sizeof(dsn), "%s/dsn-%u.eml", tmpdir, ++seq);
	snprintf(exp, sizeof(exp), "%s/dsn-%u.json", tmpdir, seq);
	write_dsn(dsn, o);
	write_file(exp, j->p, j->len);
	rc = run_checker(dsn, exp, out, sizeof(out));
	cr_assert_eq(rc, 0, "dsn_check failed (exit %d):\n%s", rc, out);
	cr_assert_not_null(strstr(out, "dsn_check: ok"), "no verdict from the checker:\n%s", out);
	free(j->p);
	memset(j, 0, sizeof(*j));
}

/* ---- inputs ------------------------------------------------------------------------------ */

static const char orig_head[] =
	"Received: from client.example.org (client.example.org [192.0.2.7])\r\n"
	"\tby mx1.sluice.test (Sluice) with ESMTPS id 0C4N7XW3Q2B0Z\r\n"
	"\tfor <bob@example.net>; Mon, 13 Nov 2023 16:13:20 +0000\r\n"
	"From: Alice <alice@example.org>\r\n"
	"To: Bob <bob@example.net>\r\n"
	"Subject: quarterly figures\r\n"
	"Message-ID: <q3-figures@example.org>\r\n"
	"\r\n";

/* A stored original of exactly size octets (>= the head): the head, then
 * lines of text. malloc'd. */
static char *make_orig(size_t size)
{
	size_t h = sizeof(orig_head) - 1, at = h;
	char *m = malloc(size + 1);

	cr_assert_not_null(m);
	cr_assert_geq(size, h + 2);
	memcpy(m, orig_head, h);
	while (at < size) {
		size_t left = size - at, n = left > 78 ? 78 : left;

		for (size_t i = 0; i + 2 < n; i++)
			m[at + i] = (char)('a' + (at + i) % 26);
		if (n >= 2) {
			m[at + n - 2] = '\r';
			m[at + n - 1] = '\n';
		} else {
			m[at] = '\n';	/* never: sizes are chosen so */
		}
		if (n > 2)
			m[at] = 'L';
		at += n;
	}
	m[size] = '\0';
	return m;
}

static struct dsn_rcpt failed_rcpt(void)
{
	return (struct dsn_rcpt){
		.addr = "bob@example.net",
		.orcpt = "rfc822;Bob+2BFigures@example.net",
		.action = DSN_FAILED,
		.status = "5.1.1",
		.remote_mta = "mx.example.net",
		.diag = "550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown",
		.reason = "host mx.example.net[198.51.100.25] said: 550 5.1.1 "
			  "<bob@example.net>: Recipient address rejected: User unknown "
			  "(in reply to RCPT TO command)",
		.last_attempt = LAST,
	};
}

static struct dsn_report report(const struct dsn_rcpt *rc, unsigned n, const char *orig,
				size_t len)
{
	return (struct dsn_report){
		.kind = DSN_KIND_REPORT,
		.reporting_mta = HOST,
		.token = TOKEN,
		.now = NOW,
		.env = { .sender = "alice@example.org", .envid = "Q3+2Bfigures-42",
			 .ret = QUEUE_RET_NONE, .arrival = ARRIVAL, .queue_id = "0C4N7XW3Q2B0Z" },
		.rcpt = rc,
		.nrcpt = n,
		.orig = orig,
		.orig_len = len,
		.orig_size = len,
		.size_limit = DSN_SIZE_LIMIT_DEFAULT,
	};
}

static void expect_attached_raw(struct js *j, const void *p, size_t len);

/* What any DSN built from r must show the checker: the report type, the
 * envelope recipient in To, Reporting-MTA, each recipient's Action and
 * Status (as given when valid, else by the action), the attachment's type
 * and octets. */
static void check_generic(const struct dsn_report *r, const struct dsn_out *o)
{
	static const char *const def[DSN_ACTIONS] = { "5.0.0", "4.0.0", "2.0.0", "2.0.0",
						       "2.0.0" };
	bool global = o->flags & DSN_OUT_SMTPUTF8;
	struct js j = { 0 };
	char from[300], mta[300];

	snprintf(from, sizeof(from), "MAILER-DAEMON@%s", r->reporting_mta);
	snprintf(mta, sizeof(mta), "dns; %s", r->reporting_mta);

	js_open(&j, NULL, '{');
	js_str(&j, "report_type", global ? "global-delivery-status" : "delivery-status");
	js_bool(&j, "smtputf8", global);
	js_bool(&j, "eightbit", o->flags != 0);
	js_str(&j, "boundary", o->boundary);
	js_open(&j, "header", '{');
	js_str(&j, "to", o->to);
	js_str(&j, "from", from);
	js_str(&j, "Message-ID", o->message_id);
	js_epoch(&j, "Date", r->now);
	js_close(&j, '}');
	js_open(&j, "per_message", '{');
	js_str(&j, "Reporting-MTA", mta);
	js_close(&j, '}');
	js_open(&j, "recipients", '[');
	for (unsigned i = 0; i < r->nrcpt; i++) {
		const struct dsn_rcpt *rc = &r->rcpt[i];

		js_open(&j, NULL, '{');
		js_str(&j, "Action", dsn_action_str(rc->action));
		js_str(&j, "Status", dsn_status_valid(rc->status) ? rc->status : def[rc->action]);
		js_close(&j, '}');
	}
	js_close(&j, ']');
	if (o->attached == DSN_ATTACH_NONE)
		js_null(&j, "attached");
	else
		js_str(&j, "attached", o->attached == DSN_ATTACH_FULL
			   ? (global ? "message/global" : "message/rfc822")
			   : (global ? "message/global-headers" : "text/rfc822-headers"));
	if (o->attached != DSN_ATTACH_NONE && o->iov[1].iov_len <= MB)
		expect_attached_raw(&j, o->iov[1].iov_base, o->iov[1].iov_len);
	js_close(&j, '}');
	python_ok(o, &j);
}

static double secs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Build into buf; every DSN built is read back by the checker. Returns how
 * long dsn_build took, seconds. */
static double build_ok(const struct dsn_report *r, struct dsn_out *o)
{
	double t0 = secs(), t1;
	int rc = dsn_build(r, buf, sizeof(buf), o);

	t1 = secs();
	cr_assert_eq(rc, DSN_OK, "dsn_build: %s", dsn_strerror(rc));
	cr_assert_geq(o->iovcnt, 1);
	check_generic(r, o);
	return t1 - t0;
}

/* The expectations every report to alice shares. */
static void expect_common(struct js *j, const struct dsn_out *o, const char *subject)
{
	js_open(j, NULL, '{');
	js_open(j, "header", '{');
	js_str(j, "from", "MAILER-DAEMON@" HOST);
	js_str(j, "to", "alice@example.org");
	js_str(j, "Subject", subject);
	js_str(j, "Message-ID", o->message_id);
	js_str(j, "X-Sluice-Report", "delivery-status");
	js_str(j, "MIME-Version", "1.0");
	js_epoch(j, "Date", NOW);
	js_close(j, '}');
	js_str(j, "boundary", o->boundary);
}

static void expect_per_message(struct js *j)
{
	js_open(j, "per_message", '{');
	js_str(j, "Reporting-MTA", "dns; " HOST);
	js_str(j, "X-Sluice-Queue-ID", "0C4N7XW3Q2B0Z");
	js_str(j, "X-Sluice-Sender", "rfc822; alice@example.org");
	js_str(j, "Original-Envelope-Id", "Q3+figures-42");
	js_epoch(j, "Arrival-Date", ARRIVAL);
	js_close(j, '}');
}

/* A file holding the first len octets of p, for the byte-exact comparison. */
static void expect_attached_raw(struct js *j, const void *p, size_t len)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/orig-%u.bin", tmpdir, ++seq);
	write_file(path, p, len);
	js_open(j, "attached_raw", '{');
	js_str(j, "file", path);
	js_int(j, "len", len);
	js_close(j, '}');
}

/* ---- every field ------------------------------------------------------------------------ */

Test(dsn, failed_report_has_every_field)
{
	char *orig = make_orig(4000);
	struct dsn_rcpt rc[2] = { failed_rcpt(), {
		.addr = "carol@example.com", .action = DSN_FAILED, .status = "5.4.4",
		.diag = "Host or domain name not found. Name service error for "
			"name=example.com type=MX: Host not found",
		.last_attempt = LAST - 5,
	} };
	struct dsn_report r = report(rc, 2, orig, 4000);
	struct dsn_out o;
	struct js j = { 0 };

	build_ok(&r, &o);
	cr_assert_eq(o.iovcnt, 3);
	cr_assert_eq(o.iov[1].iov_base, (void *)orig, "the original is referenced, not copied");
	cr_assert_eq(o.iov[1].iov_len, 4000);
	cr_assert_eq(o.attached, DSN_ATTACH_FULL);
	cr_assert_eq(o.flags, 0);
	cr_assert_str_eq(o.to, "alice@example.org");
	cr_assert_str_eq(o.message_id, "<20231114221320." TOKEN "@" HOST ">");
	cr_assert_eq(strncmp(o.boundary, "=_" TOKEN ".", strlen(TOKEN) + 3), 0, "%s", o.boundary);

	expect_common(&j, &o, "Undelivered Mail Returned to Sender");
	js_str(&j, "report_type", "delivery-status");
	js_bool(&j, "smtputf8", false);
	js_bool(&j, "eightbit", false);
	expect_per_message(&j);
	js_open(&j, "recipients", '[');
	js_open(&j, NULL, '{');
	js_str(&j, "Original-Recipient", "rfc822; Bob+Figures@example.net");
	js_str(&j, "Final-Recipient", "rfc822; bob@example.net");
	js_str(&j, "Action", "failed");
	js_str(&j, "Status", "5.1.1");
	js_str(&j, "Remote-MTA", "dns; mx.example.net");
	js_str(&j, "Diagnostic-Code", "smtp; 550 5.1.1 <bob@example.net>: Recipient address "
		   "rejected: User unknown");
	js_epoch(&j, "Last-Attempt-Date", LAST);
	js_list(&j, "absent", "Will-Retry-Until", NULL);
	js_close(&j, '}');
	js_open(&j, NULL, '{');
	js_str(&j, "Final-Recipient", "rfc822; carol@example.com");
	js_str(&j, "Action", "failed");
	js_str(&j, "Status", "5.4.4");
	js_str(&j, "Diagnostic-Code", "X-Sluice; Host or domain name not found. Name service "
		   "error for name=example.com type=MX: Host not found");
	js_epoch(&j, "Last-Attempt-Date", LAST - 5);
	js_list(&j, "absent", "Original-Recipient", "Remote-MTA", "Will-Retry-Until", NULL);
	js_close(&j, '}');
	js_close(&j, ']');
	js_list(&j, "human", "This is the mail system at host " HOST ".",
		"<bob@example.net> (originally <Bob+Figures@example.net>): host "
		"mx.example.net[198.51.100.25] said: 550 5.1.1 <bob@example.net>: Recipient "
		"address rejected: User unknown (in reply to RCPT TO command)",
		"<carol@example.com>: Host or domain name not found.",
		"queue ID 0C4N7XW3Q2B0Z", "The message is attached.", NULL);
	js_str(&j, "attached", "message/rfc822");
	js_open(&j, "attached_headers", '{');
	js_str(&j, "Subject", "quarterly figures");
	js_str(&j, "Message-ID", "<q3-figures@example.org>");
	js_close(&j, '}');
	expect_attached_raw(&j, orig, 4000);
	js_close(&j, '}');
	python_ok(&o, &j);
	free(orig);
}

/* The exact text of the top of the message, as the contract in dsn.h says. */
Test(dsn, header_block_is_as_specified)
{
	char *orig = make_orig(600);
	struct dsn_rcpt rc = failed_rcpt();
	struct dsn_report r = report(&rc, 1, orig, 600);
	struct dsn_out o;
	char want[1024];

	build_ok(&r, &o);
	snprintf(want, sizeof(want),
		 "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
		 "From: Mail Delivery System <MAILER-DAEMON@" HOST ">\r\n"
		 "To: <alice@example.org>\r\n"
		 "Subject: Undelivered Mail Returned to Sender\r\n"
		 "Message-ID: <20231114221320." TOKEN "@" HOST ">\r\n"
		 "Auto-Submitted: auto-replied\r\n"
		 "X-Sluice-Report: delivery-status\r\n"
		 "MIME-Version: 1.0\r\n"
		 "Content-Type: multipart/report; report-type=delivery-status;\r\n"
		 "\tboundary=\"%s\"\r\n"
		 "Content-Transfer-Encoding: 7bit\r\n"
		 "\r\n", o.boundary);
	cr_assert_eq(strncmp(buf, want, strlen(want)), 0, "got:\n%.*s", (int)strlen(want), buf);
	free(orig);
}

/* ---- RET and the size limit ---------------------------------------------------------- */

Test(dsn, ret_full_and_default_return_the_message)
{
	char *orig = make_orig(3000);
	struct dsn_rcpt rc = failed_rcpt();

	for (int ret = QUEUE_RET_NONE; ret <= QUEUE_RET_FULL; ret++) {
		struct dsn_report r = report(&rc, 1, orig, 3000);
		struct dsn_out o;
		struct js j = { 0 };

		r.env.ret = (uint8_t)ret;
		cr_assert_eq(dsn_attach_plan(&r), DSN_ATTACH_FULL);
		cr_assert_eq(dsn_original_need(&r), 3000);
		build_ok(&r, &o);
		cr_assert_eq(o.attached, DSN_ATTACH_FULL, "ret %d", ret);
		expect_common(&j, &o, "Undelivered Mail Returned to Sender");
		js_str(&j, "attached", "message/rfc822");
		expect_attached_raw(&j, orig, 3000);
		js_list(&j, "human", "The message is attached.", NULL);
		js_close(&j, '}');
		python_ok(&o, &j);
	}
	free(orig);
}

Test(dsn, ret_hdrs_returns_the_header_section)
{
	char *orig = make_orig(3000);
	struct dsn_rcpt rc = failed_rcpt();
	struct dsn_report r = report(&rc, 1, orig, 3000);
	struct dsn_out o;
	struct js j = { 0 };
	size_t hl = sizeof(orig_head) - 1 - 2;	/* through the last field's CRLF */

	r.env.ret = QUEUE_RET_HDRS;
	cr_assert_eq(dsn_attach_plan(&r), DSN_ATTACH_HEADERS);
	build_ok(&r, &o);
	cr_assert_eq(o.attached, DSN_ATTACH_HEADERS);
	cr_assert_not(o.over_limit);
	cr_assert_eq(o.iov[1].iov_base, (void *)orig);
	cr_assert_eq(o.iov[1].iov_len, hl);
	expect_common(&j, &o, "Undelivered Mail Returned to Sender");
	js_str(&j, "attached", "text/rfc822-headers");
	js_open(&j, "attached_headers", '{');
	js_str(&j, "Subject", "quarterly figures");
	js_close(&j, '}');
	expect_attached_raw(&j, orig, hl);
	js_list(&j, "human", "Its headers are attached.", NULL);
	js_close(&j, '}');
	python_ok(&o, &j);
	free(orig);
}

Test(dsn, over_the_limit_only_headers)
{
	char *orig = make_orig(5000);
	struct dsn_rcpt rc = failed_rcpt();
	struct dsn_report r = report(&rc, 1, orig, 5000);
	struct dsn_out o;
	struct js j = { 0 };

	r.env.ret = QUEUE_RET_FULL;
	r.size_limit = 4999;
	build_ok(&r, &o);
	cr_assert_eq(o.attached, DSN_ATTACH_HEADERS);
	cr_assert(o.over_limit);
	expect_common(&j, &o, "Undelivered Mail Returned to Sender");
	js_str(&j, "attached", "text/rfc822-headers");
	expect_attached_raw(&j, orig, sizeof(orig_head) - 3);
	js_list(&j, "human", "The message is larger than 4999 octets: only its headers "
		"are attached.", NULL);
	js_close(&j, '}');
	python_ok(&o, &j);

	r.size_limit = 5000;	/* at the limit: whole */
	build_ok(&r, &o);
	cr_assert_eq(o.attached, DSN_ATTACH_FULL);
	cr_assert_not(o.over_limit);
	free(orig);
}

/* 20 MB over the default limit (Postfix's 50000): headers only, read no
 * further than dsn_original_need(), same output either way. */
Test(dsn, twenty_mb_original_cut_to_its_headers)
{
	const size_t size = 20 * MB;
	char *orig = make_orig(size), *prefix, *first;
	struct dsn_rcpt rc = failed_rcpt();
	struct dsn_report r = report(&rc, 1, orig, size);
	struct dsn_out o;
	struct js j = { 0 };
	uint64_t need;
	double t;

	need = dsn_original_need(&r);
	cr_assert_eq(need, DSN_HEADERS_MAX + 2, "need %llu", (unsigned long long)need);
	t = build_ok(&r, &o);
	cr_log_info("20 MB original, headers only: built in %.3f ms, DSN %llu octets",
		    t * 1e3, (unsigned long long)o.size);
	cr_assert_eq(o.attached, DSN_ATTACH_HEADERS);
	cr_assert(o.over_limit);
	cr_assert_lt(o.size, 16384, "a DSN of %llu octets", (unsigned long long)o.size);
	cr_assert_eq(o.iov[1].iov_base, (void *)orig);
	first = flatten(&o);

	/* the caller that reads only what is needed gets the same DSN */
	prefix = malloc(need);
	cr_assert_not_null(prefix);
	memcpy(prefix, orig, need);
	r.orig = prefix;
	r.orig_len = need;
	build_ok(&r, &o);
	cr_assert_eq(o.iov[1].iov_base, (void *)prefix);
	{
		char *second = flatten(&o);

		cr_assert_str_eq(second, first);
		free(second);
	}
	r.orig_len = need - 1;	/* less than needed: refused */
	cr_assert_eq(dsn_build(&r, buf, sizeof(buf), &o), DSN_EINVAL);
	r.orig_len = need;

	build_ok(&r, &o);
	expect_common(&j, &o, "Undelivered Mail Returned to Sender");
	js_str(&j, "attached", "text/rfc822-headers");
	js_open(&j, "attached_headers", '{');
	js_str(&j, "Subject", "quarterly figures");
	js_close(&j, '}');
	expect_attached_raw(&j, orig, sizeof(orig_head) - 3);
	js_list(&j, "human", "The message is larger than 50000 octets", NULL);
	js_close(&j, '}');
	python_ok(&o, &j);
	free(first);
	free(prefix);
	free(orig);
}

/* 20 MB under a larger limit: attached whole, by reference; octets intact. */
Test(dsn, twenty_mb_original_returned_whole_without_a_copy, .timeout = 120)
{
	const size_t size = 20 * MB;
	char *orig = make_orig(size);
	struct dsn_rcpt rc = failed_rcpt();
	struct dsn_report r = report(&rc, 1, orig, size);
	struct dsn_out o;
	struct js j = { 0 };
	double t;

	r.size_limit = 32 * MB;
	t = build_ok(&r, &o);
	cr_log_info("20 MB original returned whole: built in %.3f ms, text %zu octets",
		    t * 1e3, o.need);
	cr_assert_eq(o.attached, DSN_ATTACH_FULL);
	cr_assert_eq(o.iov[1].iov_base, (void *)orig);
	cr_assert_eq(o.iov[1].iov_len, size);
	cr_assert_lt(o.need, 16384, "the builder wrote %zu octets itself", o.need);
	expect_common(&j, &o, "Undelivered Mail Returned to Sender");
	js_str(&j, "attached", "message/rfc822");
	expect_attached_raw(&j, orig, size);
	js_close(&j, '}');
	python_ok(&o, &j);
	free(orig);
}

/* A header section over DSN_HEADERS_MAX is cut after a whole field. */
Test(dsn, huge_header_section_cut_at_a_field)
{
	size_t n = 0, cap = 200000;
	char *orig = malloc(cap);
	struct dsn_rcpt rc = failed_rcpt();
	struct dsn_report r;
	struct dsn_out o;
	struct js j = { 0 };

	cr_assert_not_null(orig);
	n += (size_t)sprintf(orig + n, "Subject: many fields\r\n");
	for (int i = 0; n < 100000; i++)
		n += (size_t)sprintf(orig + n, "X-Trace-%05d: hop %d via relay%d.example\r\n"
				     "\tcontinued\r\n", i, i, i);
	n += (size_t)sprintf(orig + n, "\r\nbody\r\n");
	r = report(&rc, 1, orig, n);
	r.env.ret = QUEUE_RET_HDRS;
	build_ok(&r, &o);
	cr_assert_eq(o.attached, DSN_ATTACH_HEADERS);
	cr_assert(o.headers_cut);
	cr_assert_leq(o.iov[1].iov_len, DSN_HEADERS_MAX);
	cr_assert_gt(o.iov[1].iov_len, DSN_HEADERS_MAX - 100);
	cr_assert_eq(memcmp(orig + o.iov[1].iov_len - 2, "\r\n", 2), 0);
	cr_assert_eq(strncmp(orig + o.iov[1].iov_len, "X-Trace-", 8), 0, "cut inside a field");
	expect_common(&j, &o, "Undelivered Mail Returned to Sender");
	js_str(&j, "attached", "text/rfc822-headers");
	js_open(&j, "attached_headers", '{');
	js_str(&j, "Subject", "many fields");
	js_close(&j, '}');
	expect_attached_raw(&j, orig, o.iov[1].iov_len);
	js_close(&j, '}');
	python_ok(&o, &j);
	free(orig);
}

/* ---- other actions --------------------------------------------------------------------- */

Test(dsn, delayed_report_has_will_retry_until_and_headers_only)
{
	char *orig = make_orig(3000);
	struct dsn_rcpt rc = {
		.addr = "bob@example.net", .action = DSN_DELAYED, .status = "4.4.1",
		.remote_mta = "mx.example.net",
		.diag = "connect to mx.example.net[198.51.100.25]:25: Connection timed out",
		.last_attempt = LAST, .retry_until = UNTIL,
	};
	struct dsn_report r = report(&rc, 1, orig, 3000);
	struct dsn_out o;
	struct js j = { 0 };

	r.env.ret = QUEUE_RET_FULL;	/* a delay warning returns headers only */
	build_ok(&r, &o);
	cr_assert_eq(o.attached, DSN_ATTACH_HEADERS);
	cr_assert_not(o.over_limit);
	expect_common(&j, &o, "Delayed Mail (still being retried)");
	expect_per_message(&j);
	js_open(&j, "recipients", '[');
	js_open(&j, NULL, '{');
	js_str(&j, "Final-Recipient", "rfc822; bob@example.net");
	js_str(&j, "Action", "delayed");
	js_str(&j, "Status", "4.4.1");
	js_str(&j, "Remote-MTA", "dns; mx.example.net");
	js_str(&j, "Diagnostic-Code", "X-Sluice; connect to mx.example.net[198.51.100.25]:25: "
		   "Connection timed out");
	js_epoch(&j, "Last-Attempt-Date", LAST);
	js_epoch(&j, "Will-Retry-Until", UNTIL);
	js_close(&j, '}');
	js_close(&j, ']');
	js_list(&j, "human", "has not yet been delivered",
		"<bob@example.net>: connect to mx.example.net[198.51.100.25]:25: Connection "
		"timed out Delivery will be tried until Sat, 18 Nov 2023 16:13:20 +0000.", NULL);
	js_str(&j, "attached", "text/rfc822-headers");
	js_close(&j, '}');
	python_ok(&o, &j);
	free(orig);
}

Test(dsn, success_reports_delivered_relayed_expanded)
{
	char *orig = make_orig(1500);
	struct dsn_rcpt rc[3] = {
		{ .addr = "bob@example.net", .action = DSN_DELIVERED, .status = "2.0.0",
		  .remote_mta = "mx.example.net", .diag = "250 2.0.0 Ok: queued as 4SVq1",
		  .last_attempt = LAST, .retry_until = UNTIL },
		{ .addr = "dave@old.example", .action = DSN_RELAYED, .status = "2.0.0",
		  .remote_mta = "mx.old.example", .diag = "250 ok", .last_attempt = LAST },
		{ .addr = "team@example.net", .action = DSN_EXPANDED, .last_attempt = LAST },
	};
	struct dsn_report r = report(rc, 3, orig, 1500);
	struct dsn_out o;
	struct js j = { 0 };

	build_ok(&r, &o);
	cr_assert_eq(o.attached, DSN_ATTACH_HEADERS);
	expect_common(&j, &o, "Successful Mail Delivery Report");
	js_open(&j, "recipients", '[');
	js_open(&j, NULL, '{');
	js_str(&j, "Action", "delivered");
	js_str(&j, "Status", "2.0.0");
	js_str(&j, "Diagnostic-Code", "smtp; 250 2.0.0 Ok: queued as 4SVq1");
	js_list(&j, "absent", "Will-Retry-Until", NULL);	/* delayed only */
	js_close(&j, '}');
	js_open(&j, NULL, '{');
	js_str(&j, "Final-Recipient", "rfc822; dave@old.example");
	js_str(&j, "Action", "relayed");
	js_str(&j, "Remote-MTA", "dns; mx.old.example");
	js_close(&j, '}');
	js_open(&j, NULL, '{');
	js_str(&j, "Final-Recipient", "rfc822; team@example.net");
	js_str(&j, "Action", "expanded");
	js_str(&j, "Status", "2.0.0");	/* none given: by the action */
	js_list(&j, "absent", "Diagnostic-Code", "Remote-MTA", NULL);
	js_close(&j, '}');
	js_close(&j, ']');
	js_list(&j, "human", "Your message was delivered to the recipients below.",
		"<bob@example.net>: 250 2.0.0 Ok: queued as 4SVq1",
		"through a system that does not report on delivery",
		"<team@example.net>: expanded", NULL);
	js_str(&j, "attached", "text/rfc822-headers");
	js_close(&j, '}');
	python_ok(&o, &j);
	free(orig);
}

Test(dsn, status_codes_kept_or_derived)
{
	char *orig = make_orig(800);
	struct dsn_rcpt rc[4] = {
		{ .addr = "a@example.net", .action = DSN_FAILED, .status = "4.4.7",
		  .diag = "delivery time expired" },
		{ .addr = "b@example.net", .action = DSN_FAILED, .status = "5.1" },
		{ .addr = "c@example.net", .action = DSN_DELAYED, .status = "x.y.z" },
		{ .addr = "d@example.net", .action = DSN_FAILED, .status = "5.7.26" },
	};
	struct dsn_report r = report(rc, 4, orig, 800);
	struct dsn_out o;
	struct js j = { 0 };

	build_ok(&r, &o);
	expect_common(&j, &o, "Undelivered Mail Returned to Sender");
	js_open(&j, "recipients", '[');
	js_open(&j, NULL, '{');
	js_str(&j, "Status", "4.4.7");	/* expired: failed with a 4.x.x */
	js_str(&j, "Action", "failed");
	js_str(&j, "Diagnostic-Code", "X-Sluice; delivery time expired");
	js_close(&j, '}');
	js_open(&j, NULL, '{');
	js_str(&j, "Status", "5.0.0");
	js_close(&j, '}');
	js_open(&j, NULL, '{');
	js_str(&j, "Status", "4.0.0");
	js_close(&j, '}');
	js_open(&j, NULL, '{');
	js_str(&j, "Status", "5.7.26");
	js_close(&j, '}');
	js_close(&j, ']');
	js_str(&j, "attached", "message/rfc822");
	js_close(&j, '}');
	python_ok(&o, &j);
	free(orig);

	cr_assert(dsn_status_valid("2.0.0"));
	cr_assert(dsn_status_valid("5.123.456"));
	cr_assert_not(dsn_status_valid("3.0.0"));
	cr_assert_not(dsn_status_valid("5.1"));
	cr_assert_not(dsn_status_valid("5.1.1.1"));
	cr_assert_not(dsn_status_valid("5.1234.1"));
	cr_assert_not(dsn_status_valid("5..1"));
	cr_assert_not(dsn_status_valid("5.1.1 "));
	cr_assert_not(dsn_status_valid(NULL));
}

/* ---- UTF-8 ------------------------------------------------------------------------------ */

static const char utf8_head[] =
	"Received: from client.example.org (client.example.org [192.0.2.7])\r\n"
	"\tby mx1.sluice.test (Sluice) with UTF8SMTPS id 0C4N7XW3Q2B0Y\r\n"
	"\tfor <δοκιμή@παράδειγμα.δοκιμή>; Mon, 13 Nov 2023 16:13:20 +0000\r\n"
	"From: Jörg <jörg@bücher.example>\r\n"
	"To: δοκιμή@παράδειγμα.δοκιμή\r\n"
	"Subject: Grüße aus Köln\r\n"
	"\r\n"
	"Schöne Grüße, 你好.\r\n";

Test(dsn, smtputf8_original_gets_the_global_forms)
{
	struct dsn_rcpt rc[2] = {
		{ .addr = "δοκιμή@παράδειγμα.δοκιμή",
		  .orcpt = "utf-8;\\x{3B4}\\x{3BF}\\x{3BA}\\x{3B9}\\x{3BC}\\x{3AE}@"
			   "\\x{3C0}\\x{3B1}\\x{3C1}\\x{3AC}\\x{3B4}\\x{3B5}\\x{3B9}\\x{3B3}"
			   "\\x{3BC}\\x{3B1}.\\x{3B4}\\x{3BF}\\x{3BA}\\x{3B9}\\x{3BC}\\x{3AE}",
		  .action = DSN_FAILED, .status = "5.1.1", .remote_mta = "mx.παράδειγμα.δοκιμή",
		  .diag = "550 5.1.1 <δοκιμή@παράδειγμα.δοκιμή>: unknown user",
		  .last_attempt = LAST },
		{ .addr = "plain@example.net", .orcpt = "utf-8;用户@例子.广告",
		  .action = DSN_FAILED, .status = "5.2.2", .diag = "552 5.2.2 mailbox full" },
	};
	struct dsn_report r = report(rc, 2, utf8_head, sizeof(utf8_head) - 1);
	struct dsn_out o;
	struct js j = { 0 };

	r.env.sender = "jörg@bücher.example";
	r.env.body_flags = QUEUE_BODY_SMTPUTF8 | QUEUE_BODY_8BITMIME;
	build_ok(&r, &o);
	cr_assert_eq(o.flags, DSN_OUT_SMTPUTF8 | DSN_OUT_8BITMIME);
	cr_assert_eq(o.attached, DSN_ATTACH_FULL);
	cr_assert_str_eq(o.to, "jörg@bücher.example");

	js_open(&j, NULL, '{');
	js_open(&j, "header", '{');
	js_str(&j, "to", "jörg@bücher.example");
	js_str(&j, "Subject", "Undelivered Mail Returned to Sender");
	js_close(&j, '}');
	js_str(&j, "report_type", "global-delivery-status");
	js_bool(&j, "smtputf8", true);
	js_bool(&j, "eightbit", true);
	js_open(&j, "per_message", '{');
	js_str(&j, "Reporting-MTA", "dns; " HOST);
	js_str(&j, "X-Sluice-Sender", "utf-8; jörg@bücher.example");
	js_close(&j, '}');
	js_open(&j, "recipients", '[');
	js_open(&j, NULL, '{');
	js_str(&j, "Original-Recipient", "utf-8; δοκιμή@παράδειγμα.δοκιμή");
	js_str(&j, "Final-Recipient", "utf-8; δοκιμή@παράδειγμα.δοκιμή");
	js_str(&j, "Action", "failed");
	js_str(&j, "Status", "5.1.1");
	js_str(&j, "Remote-MTA", "dns; mx.παράδειγμα.δοκιμή");
	js_str(&j, "Diagnostic-Code", "smtp; 550 5.1.1 <δοκιμή@παράδειγμα.δοκιμή>: unknown user");
	js_close(&j, '}');
	js_open(&j, NULL, '{');
	js_str(&j, "Original-Recipient", "utf-8; 用户@例子.广告");
	js_str(&j, "Final-Recipient", "rfc822; plain@example.net");
	js_str(&j, "Status", "5.2.2");
	js_close(&j, '}');
	js_close(&j, ']');
	js_list(&j, "human", "<δοκιμή@παράδειγμα.δοκιμή>: 550 5.1.1 <δοκιμή@παράδειγμα.δοκιμή>: "
		"unknown user", "<plain@example.net> (originally <用户@例子.广告>): 552 5.2.2",
		"from <jörg@bücher.example>", NULL);
	js_list(&j, "human_absent", "(originally <δοκιμή", NULL);	/* the same address */
	js_str(&j, "attached", "message/global");
	js_open(&j, "attached_headers", '{');
	js_str(&j, "Subject", "Grüße aus Köln");
	js_close(&j, '}');
	expect_attached_raw(&j, utf8_head, sizeof(utf8_head) - 1);
	js_close(&j, '}');
	python_ok(&o, &j);

	/* headers only: message/global-headers */
	r.env.ret = QUEUE_RET_HDRS;
	build_ok(&r, &o);
	js_open(&j, NULL, '{');
	js_str(&j, "report_type", "global-delivery-status");
	js_bool(&j, "smtputf8", true);
	js_bool(&j, "eightbit", true);
	js_open(&j, "recipients", '[');
	js_open(&j, NULL, '{');
	js_str(&j, "Status", "5.1.1");
	js_close(&j, '}');
	js_open(&j, NULL, '{');
	js_str(&j, "Status", "5.2.2");
	js_close(&j, '}');
	js_close(&j, ']');
	js_str(&j, "attached", "message/global-headers");
	js_open(&j, "attached_headers", '{');
	js_str(&j, "Subject", "Grüße aus Köln");
	js_close(&j, '}');
	js_close(&j, '}');
	python_ok(&o, &j);
}

/* SMTPUTF8 with ASCII addresses (UTF-8 in the content only): the global forms
 * all the same, since the returned message needs them. */
Test(dsn, smtputf8_flag_alone_gets_the_global_forms)
{
	struct dsn_rcpt rc = failed_rcpt();
	struct dsn_report r = report(&rc, 1, utf8_head, sizeof(utf8_head) - 1);
	struct dsn_out o;
	struct js j = { 0 };

	r.env.body_flags = QUEUE_BODY_SMTPUTF8;
	build_ok(&r, &o);
	cr_assert_eq(o.flags, DSN_OUT_SMTPUTF8 | DSN_OUT_8BITMIME);
	expect_common(&j, &o, "Undelivered Mail Returned to Sender");
	js_str(&j, "report_type", "global-delivery-status");
	js_bool(&j, "smtputf8", true);
	js_bool(&j, "eightbit", true);
	js_open(&j, "recipients", '[');
	js_open(&j, NULL, '{');
	js_str(&j, "Final-Recipient", "rfc822; bob@example.net");
	js_str(&j, "Original-Recipient", "rfc822; Bob+Figures@example.net");
	js_close(&j, '}');
	js_close(&j, ']');
	js_str(&j, "attached", "message/global");
	expect_attached_raw(&j, utf8_head, sizeof(utf8_head) - 1);
	js_close(&j, '}');
	python_ok(&o, &j);
}

/* Not SMTPUTF8: UTF-8 ORCPTs stay 7-bit (RFC 6533 utf-8-addr-xtext), and
 * so does a reply text with 8-bit octets. */
Test(dsn, utf8_orcpt_in_an_ascii_report_stays_ascii)
{
	char *orig = make_orig(700);
	struct dsn_rcpt rc[3] = {
		{ .addr = "joerg@example.com", .orcpt = "utf-8;j\\x{F6}rg@example.com",
		  .action = DSN_FAILED, .status = "5.1.1", .diag = "550 caf\xc3\xa9 closed" },
		{ .addr = "joerg2@example.com", .orcpt = "rfc822;j+C3+B6rg+2Bx@example.com",
		  .action = DSN_FAILED, .status = "5.1.1" },
		{ .addr = "x@example.com", .orcpt = "rfc822;bad+ZZxtext@example.com",
		  .action = DSN_FAILED, .status = "5.1.1" },
	};
	struct dsn_report r = report(rc, 3, orig, 700);
	struct dsn_out o;
	struct js j = { 0 };

	build_ok(&r, &o);
	cr_assert_eq(o.flags, 0);
	expect_common(&j, &o, "Undelivered Mail Returned to Sender");
	js_str(&j, "report_type", "delivery-status");
	js_bool(&j, "smtputf8", false);
	js_open(&j, "recipients", '[');
	js_open(&j, NULL, '{');
	js_str(&j, "Original-Recipient", "utf-8; j\\x{F6}rg@example.com");
	js_str(&j, "Diagnostic-Code", "smtp; 550 caf?? closed");	/* 7-bit report */
	js_close(&j, '}');
	js_open(&j, NULL, '{');	/* xtext decoded to UTF-8: RFC 6533's type, 7-bit form */
	js_str(&j, "Original-Recipient", "utf-8; j\\x{F6}rg\\x{2B}x@example.com");
	js_close(&j, '}');
	js_open(&j, NULL, '{');	/* malformed xtext: as received */
	js_str(&j, "Original-Recipient", "rfc822; bad+ZZxtext@example.com");
	js_close(&j, '}');
	js_close(&j, ']');
	js_str(&j, "attached", "message/rfc822");
	js_close(&j, '}');
	python_ok(&o, &j);
	free(orig);
}

/* 8-bit body without SMTPUTF8: message/rfc822 in 8bit, BODY=8BITMIME. */
Test(dsn, eight_bit_original_marks_the_part_8bit)
{
	static const char orig[] = "Subject: caf\xc3\xa9\r\nFrom: a@example.org\r\n\r\n"
				   "na\xc3\xafve caf\xc3\xa9 body\r\n";
	struct dsn_rcpt rc = failed_rcpt();
	struct dsn_report r = report(&rc, 1, orig, sizeof(orig) - 1);
	struct dsn_out o;
	struct js j = { 0 };

	r.env.body_flags = QUEUE_BODY_8BITMIME;
	build_ok(&r, &o);
	cr_assert_eq(o.flags, DSN_OUT_8BITMIME);
	expect_common(&j, &o, "Undelivered Mail Returned to Sender");
	js_bool(&j, "smtputf8", false);	/* 8-bit only in the attached part */
	js_bool(&j, "eightbit", true);
	js_str(&j, "attached", "message/rfc822");
	expect_attached_raw(&j, orig, sizeof(orig) - 1);
	js_close(&j, '}');
	python_ok(&o, &j);
}

/* ---- folding, encoding, injection ---------------------------------------------------- */

Test(dsn, long_diagnostic_folded_and_unfolds_exactly)
{
	char *orig = make_orig(900);
	char diag[1800], blob[2001], huge[5001];
	size_t n = (size_t)snprintf(diag, sizeof(diag), "550-5.7.1 ");
	struct dsn_rcpt rc[3] = { failed_rcpt(), failed_rcpt(), failed_rcpt() };
	struct dsn_report r;
	struct dsn_out o;
	struct js j = { 0 };
	char want[2000], want2[2100], want3[DSN_VALUE_MAX + 32];

	for (int i = 0; n < 1500; i++)
		n += (size_t)snprintf(diag + n, sizeof(diag) - n, "policy%03d rejected; ", i);
	diag[n - 1] = '\0';	/* no trailing space */
	for (int i = 0; i < 2000; i++)
		blob[i] = (char)('A' + i % 26);
	blob[2000] = '\0';
	for (int i = 0; i < 5000; i++)
		huge[i] = (char)('a' + i % 26);
	huge[5000] = '\0';
	rc[0].diag = diag;
	rc[0].reason = NULL;
	rc[1].addr = "eve@example.net";
	rc[1].diag = blob;
	rc[1].reason = NULL;
	rc[2].addr = "mallory@example.net";
	rc[2].diag = huge;
	rc[2].reason = NULL;
	r = report(rc, 3, orig, 900);
	build_ok(&r, &o);
	expect_common(&j, &o, "Undelivered Mail Returned to Sender");
	snprintf(want, sizeof(want), "smtp; %s", diag);
	snprintf(want2, sizeof(want2), "X-Sluice; %s", blob);
	snprintf(want3, sizeof(want3), "X-Sluice; %.*s", DSN_VALUE_MAX, huge);
	js_open(&j, "recipients", '[');
	js_open(&j, NULL, '{');
	js_str(&j, "Diagnostic-Code", want);	/* exact after unfolding */
	js_close(&j, '}');
	js_open(&j, NULL, '{');
	js_nospace(&j, "Diagnostic-Code", want2);	/* split: spaces inserted */
	js_close(&j, '}');
	js_open(&j, NULL, '{');
	js_nospace(&j, "Diagnostic-Code", want3);	/* cut to DSN_VALUE_MAX */
	js_close(&j, '}');
	js_close(&j, ']');
	js_list(&j, "human", diag, NULL);
	js_list(&j, "human_nospace", blob, NULL);
	js_str(&j, "attached", "message/rfc822");
	js_close(&j, '}');
	python_ok(&o, &j);

	/* without the unbreakable one, no line of part 2 passes 78 octets */
	r.nrcpt = 1;
	build_ok(&r, &o);
	expect_common(&j, &o, "Undelivered Mail Returned to Sender");
	js_int(&j, "part2_max_line", 78);
	js_open(&j, "recipients", '[');
	js_open(&j, NULL, '{');
	js_str(&j, "Diagnostic-Code", want);
	js_close(&j, '}');
	js_close(&j, ']');
	js_str(&j, "attached", "message/rfc822");
	js_close(&j, '}');
	python_ok(&o, &j);
	free(orig);
}

Test(dsn, no_header_injection_from_inputs)
{
	char *orig = make_orig(900);
	struct dsn_rcpt rc = {
		.addr = "bob@example.net\r\nBcc: victim@example.com",
		.action = DSN_FAILED, .status = "5.1.1",
		.remote_mta = "mx.example.net\r\nX-Evil: 1",
		.diag = "550 bad\r\nBcc: victim@example.com\r\n\r\nInjected\x01\x7f",
		.last_attempt = LAST,
	};
	struct dsn_report r = report(&rc, 1, orig, 900);
	struct dsn_out o;
	struct js j = { 0 };

	r.env.envid = "id\r\nX-Evil: 2";
	r.env.queue_id = "Q\nX-Evil: 3";
	build_ok(&r, &o);
	expect_common(&j, &o, "Undelivered Mail Returned to Sender");
	js_open(&j, "per_message", '{');
	js_str(&j, "Original-Envelope-Id", "id  X-Evil: 2");
	js_str(&j, "X-Sluice-Queue-ID", "Q X-Evil: 3");
	js_close(&j, '}');
	js_list(&j, "per_message_absent", "X-Evil", NULL);
	js_open(&j, "recipients", '[');
	js_open(&j, NULL, '{');
	js_str(&j, "Final-Recipient", "utf-8; bob@example.net\\x{0D}\\x{0A}Bcc:\\x{20}victim@example.com");
	js_str(&j, "Remote-MTA", "dns; mx.example.net  X-Evil: 1");
	js_str(&j, "Diagnostic-Code", "smtp; 550 bad  Bcc: victim@example.com    Injected");
	js_list(&j, "absent", "X-Evil", "Bcc", NULL);
	js_close(&j, '}');
	js_close(&j, ']');
	js_str(&j, "attached", "message/rfc822");
	js_close(&j, '}');
	{
		struct js *jj = &j;	/* the top header has no Bcc either */
		char *m = flatten(&o);
		char *end = strstr(m, "\r\n\r\n");

		cr_assert_not_null(end);
		*end = '\0';
		cr_assert_null(strstr(m, "\nBcc"), "%s", m);
		free(m);
		python_ok(&o, jj);
	}

	r.env.sender = "alice@example.org\r\nBcc: x@y";	/* an envelope address with CRLF */
	cr_assert_eq(dsn_build(&r, buf, sizeof(buf), &o), DSN_EINVAL);
	free(orig);
}

/* ---- the boundary ------------------------------------------------------------------- */

Test(dsn, boundary_quoted_by_the_content_is_replaced)
{
	char *orig = make_orig(1200);
	struct dsn_rcpt rc = failed_rcpt();
	struct dsn_report r = report(&rc, 1, orig, 1200);
	struct dsn_out o;
	struct js j = { 0 };
	char first[DSN_BOUNDARY_MAX + 1], diag[300], human[400];

	build_ok(&r, &o);
	snprintf(first, sizeof(first), "%s", o.boundary);
	/* a reply that quotes exactly that boundary, even as a delimiter line */
	snprintf(diag, sizeof(diag), "550 5.7.1 rejected --%s-- --%s", first, first);
	rc.diag = diag;
	rc.reason = NULL;
	build_ok(&r, &o);
	cr_assert_str_neq(o.boundary, first, "the colliding boundary was kept");
	expect_common(&j, &o, "Undelivered Mail Returned to Sender");
	js_open(&j, "recipients", '[');
	js_open(&j, NULL, '{');
	snprintf(human, sizeof(human), "smtp; %s", diag);
	js_str(&j, "Diagnostic-Code", human);
	js_close(&j, '}');
	js_close(&j, ']');
	js_list(&j, "human", diag, NULL);
	js_str(&j, "attached", "message/rfc822");
	js_close(&j, '}');
	python_ok(&o, &j);
	free(orig);
}

/* The boundary depends on the content: an original full of would-be
 * boundaries (the token's, earlier DSNs') does not contain the one used. */
Test(dsn, boundary_not_in_the_original)
{
	char orig[8192];
	size_t n = (size_t)snprintf(orig, sizeof(orig), "Subject: boundaries\r\n\r\n");
	struct dsn_rcpt rc = failed_rcpt();
	struct dsn_report r;
	struct dsn_out o;
	struct js j = { 0 };

	for (unsigned i = 0; i < 100; i++)
		n += (size_t)snprintf(orig + n, sizeof(orig) - n, "--=_%s.%016x\r\n", TOKEN,
				      i * 0x9e3779b9u);
	r = report(&rc, 1, orig, n);
	build_ok(&r, &o);
	cr_assert_null(memmem(orig, n, o.boundary, strlen(o.boundary)));
	expect_common(&j, &o, "Undelivered Mail Returned to Sender");
	js_str(&j, "attached", "message/rfc822");
	expect_attached_raw(&j, orig, n);
	js_close(&j, '}');
	python_ok(&o, &j);
}

/* ---- originals that are not clean ------------------------------------------------- */

Test(dsn, unclean_original_attaches_less_but_the_dsn_stays_clean)
{
	static const char bare_lf[] = "Subject: bare\r\nFrom: a@example.org\r\n\r\n"
				      "line one\nline two\r\n";
	char long_hdr[3000];
	struct dsn_rcpt rc = failed_rcpt();
	struct dsn_report r = report(&rc, 1, bare_lf, sizeof(bare_lf) - 1);
	struct dsn_out o;
	struct js j = { 0 };
	size_t n;

	build_ok(&r, &o);
	cr_assert_eq(o.attached, DSN_ATTACH_HEADERS);
	cr_assert(o.unclean);
	expect_common(&j, &o, "Undelivered Mail Returned to Sender");
	js_str(&j, "attached", "text/rfc822-headers");
	expect_attached_raw(&j, bare_lf, 36);
	js_list(&j, "human", "Only its headers are attached", NULL);
	js_close(&j, '}');
	python_ok(&o, &j);

	/* a header line over 998 octets: nothing can be attached */
	n = (size_t)snprintf(long_hdr, sizeof(long_hdr), "Subject: ");
	memset(long_hdr + n, 'x', 1500);
	n += 1500;
	n += (size_t)snprintf(long_hdr + n, sizeof(long_hdr) - n, "\r\n\r\nbody\r\n");
	r = report(&rc, 1, long_hdr, n);
	build_ok(&r, &o);
	cr_assert_eq(o.attached, DSN_ATTACH_NONE);
	cr_assert(o.unclean);
	cr_assert_eq(o.iovcnt, 1);
	expect_common(&j, &o, "Undelivered Mail Returned to Sender");
	js_null(&j, "attached");
	js_list(&j, "human", "It is not attached: it is not in a form that can be returned.",
		NULL);
	js_close(&j, '}');
	python_ok(&o, &j);

	/* an empty original: nothing attached, said so */
	r = report(&rc, 1, NULL, 0);
	build_ok(&r, &o);
	cr_assert_eq(o.attached, DSN_ATTACH_NONE);
	cr_assert_not(o.unclean);
	expect_common(&j, &o, "Undelivered Mail Returned to Sender");
	js_null(&j, "attached");
	js_list(&j, "human", "It is not attached: it is empty.", NULL);
	js_close(&j, '}');
	python_ok(&o, &j);
}

/* ---- the double bounce ------------------------------------------------------------- */

Test(dsn, double_bounce_to_postmaster_with_the_failed_dsn)
{
	char *orig = make_orig(2000), *first;
	struct dsn_rcpt rc = failed_rcpt();
	struct dsn_report r = report(&rc, 1, orig, 2000);
	struct dsn_out o1, o;
	struct js j = { 0 };
	struct dsn_rcpt back = {
		.addr = "alice@example.org", .action = DSN_FAILED, .status = "5.1.1",
		.remote_mta = "mx.example.org",
		.diag = "550 5.1.1 <alice@example.org>: no such user", .last_attempt = NOW + 600,
	};
	static char buf1[65536];
	struct dsn_report db = {
		.kind = DSN_KIND_DOUBLE_BOUNCE, .reporting_mta = HOST, .token = "0C4N7XW3Q2B2C",
		.postmaster = "postmaster", .now = NOW + 600,
		.env = { .sender = "", .arrival = NOW, .queue_id = TOKEN },
		.rcpt = &back, .nrcpt = 1, .size_limit = DSN_SIZE_LIMIT_DEFAULT,
	};

	cr_assert_eq(dsn_build(&r, buf1, sizeof(buf1), &o1), DSN_OK);
	check_generic(&r, &o1);
	first = flatten(&o1);
	db.orig = first;
	db.orig_len = db.orig_size = o1.size;
	cr_assert_eq(dsn_attach_plan(&db), DSN_ATTACH_FULL);
	build_ok(&db, &o);
	cr_assert_str_eq(o.to, "postmaster@" HOST);
	cr_assert_eq(o.attached, DSN_ATTACH_FULL);
	cr_assert_str_neq(o.boundary, o1.boundary);

	js_open(&j, NULL, '{');
	js_open(&j, "header", '{');
	js_str(&j, "to", "postmaster@" HOST);
	js_str(&j, "Subject", "Postmaster Copy: Undelivered Mail");
	js_str(&j, "X-Sluice-Report", "double-bounce");
	js_epoch(&j, "Date", NOW + 600);
	js_close(&j, '}');
	js_open(&j, "per_message", '{');
	js_str(&j, "Reporting-MTA", "dns; " HOST);
	js_str(&j, "X-Sluice-Queue-ID", TOKEN);
	js_epoch(&j, "Arrival-Date", NOW);
	js_close(&j, '}');
	js_list(&j, "per_message_absent", "X-Sluice-Sender", "Original-Envelope-Id", NULL);
	js_open(&j, "recipients", '[');
	js_open(&j, NULL, '{');
	js_str(&j, "Final-Recipient", "rfc822; alice@example.org");
	js_str(&j, "Action", "failed");
	js_str(&j, "Status", "5.1.1");
	js_str(&j, "Diagnostic-Code", "smtp; 550 5.1.1 <alice@example.org>: no such user");
	js_close(&j, '}');
	js_close(&j, ']');
	js_list(&j, "human", "could not be delivered. Nothing more will be sent about it.",
		"from <>", NULL);
	js_str(&j, "attached", "message/rfc822");
	js_bool(&j, "attached_is_report", true);
	js_open(&j, "attached_headers", '{');
	js_str(&j, "Subject", "Undelivered Mail Returned to Sender");
	js_close(&j, '}');
	expect_attached_raw(&j, first, o1.size);
	js_close(&j, '}');
	python_ok(&o, &j);

	/* what a failure of each leads to */
	{
		char *m = flatten(&o);

		cr_assert_eq(dsn_on_failure("", first, o1.size), DSN_FAIL_DOUBLE_BOUNCE);
		cr_assert_eq(dsn_on_failure("", m, o.size), DSN_FAIL_DROP);
		cr_assert_eq(dsn_on_failure("alice@example.org", m, o.size), DSN_FAIL_REPORT);
		free(m);
	}
	free(first);
	free(orig);
}

Test(dsn, failure_policy_never_loops)
{
	static const char dbl[] = "Subject: x\r\nx-sluice-report:   Double-Bounce  \r\n\r\n";
	static const char in_body[] = "Subject: x\r\n\r\nX-Sluice-Report: double-bounce\r\n";
	static const char other[] = "X-Sluice-Report: delivery-status\r\n\r\n";

	cr_assert_eq(dsn_on_failure("a@b", NULL, 0), DSN_FAIL_REPORT);
	cr_assert_eq(dsn_on_failure("", NULL, 0), DSN_FAIL_DOUBLE_BOUNCE);
	cr_assert_eq(dsn_on_failure(NULL, NULL, 0), DSN_FAIL_DOUBLE_BOUNCE);
	cr_assert_eq(dsn_on_failure("", dbl, sizeof(dbl) - 1), DSN_FAIL_DROP);
	cr_assert_eq(dsn_on_failure("", in_body, sizeof(in_body) - 1), DSN_FAIL_DOUBLE_BOUNCE,
		     "the marker counts in the header section only");
	cr_assert_eq(dsn_on_failure("", other, sizeof(other) - 1), DSN_FAIL_DOUBLE_BOUNCE);
}

/* ---- NOTIFY (RFC 3461) ------------------------------------------------------------------- */

Test(dsn, notify_decides_who_gets_a_dsn)
{
	const uint8_t S = QUEUE_NOTIFY_SUCCESS, F = QUEUE_NOTIFY_FAILURE, D = QUEUE_NOTIFY_DELAY,
		      N = QUEUE_NOTIFY_NEVER;
	struct { uint8_t notify; bool want[DSN_ACTIONS]; } t[] = {
		/*            failed delayed delivered relayed expanded */
		{ 0,         { true, false, false, false, false } },	/* default: FAILURE */
		{ N,         { false, false, false, false, false } },
		{ F,         { true, false, false, false, false } },
		{ D,         { false, true, false, false, false } },
		{ S,         { false, false, true, true, true } },
		{ S | F,     { true, false, true, true, true } },
		{ S | F | D, { true, true, true, true, true } },
		{ F | D,     { true, true, false, false, false } },
		{ N | F,     { false, false, false, false, false } },	/* NEVER wins */
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		for (int a = 0; a < DSN_ACTIONS; a++) {
			cr_assert_eq(dsn_wanted("alice@example.org", t[i].notify,
						(enum dsn_action)a), t[i].want[a],
				     "notify %#x, %s", t[i].notify,
				     dsn_action_str((enum dsn_action)a));
			cr_assert_not(dsn_wanted("", t[i].notify, (enum dsn_action)a),
				      "a DSN to the null sender");
			cr_assert_not(dsn_wanted(NULL, t[i].notify, (enum dsn_action)a));
		}
}

/* ---- the stored reply ------------------------------------------------------------------- */

/* The scheduler's reason texts (control/sched.c reason_text) split for the
 * report, and a report built from them. */
Test(dsn, stored_reply_split_into_remote_mta_diag_status)
{
	static const struct { const char *in, *mta, *diag, *status; } t[] = {
		{ "host mx.example.net[198.51.100.25] said: 550 5.1.1 <bob@example.net>: "
		  "Recipient address rejected: User unknown (in reply to RCPT TO command)",
		  "mx.example.net", "550 5.1.1 <bob@example.net>: Recipient address rejected: "
		  "User unknown", "5.1.1" },
		{ "host mx.example.net[198.51.100.25] said: 452 4.2.2 Over quota (in reply to "
		  "end of DATA command)", "mx.example.net", "452 4.2.2 Over quota", "4.2.2" },
		{ "host [192.0.2.1] said: 554 no (in reply to MAIL FROM command)", "",
		  "554 no", "" },
		{ "host mx.example.net[198.51.100.25] said: 421 4.4.2 bye", "mx.example.net",
		  "421 4.4.2 bye", "4.4.2" },
		{ "host mx.example.net[198.51.100.25] said: 550 see (in reply to X command) "
		  "(in reply to RCPT TO command)", "mx.example.net",
		  "550 see (in reply to X command)", "" },
		{ "host mx.example.net[198.51.100.25] said: 550 4.1.1 mismatched (in reply to "
		  "RCPT TO command)", "mx.example.net", "550 4.1.1 mismatched", "" },
		{ "connect to mx.example.net[198.51.100.25]:25: Connection refused", "",
		  "connect to mx.example.net[198.51.100.25]:25: Connection refused", "" },
		{ "host mx6.example.net[2001:db8::25]:25 said: 550 5.1.1 <bob@example.net>: "
		  "unknown (in reply to RCPT TO command)", "mx6.example.net",
		  "550 5.1.1 <bob@example.net>: unknown", "5.1.1" },	/* an IPv6 relay */
		{ "connect to mx6.example.net[2001:db8::25]:25: Connection refused", "",
		  "connect to mx6.example.net[2001:db8::25]:25: Connection refused", "" },
		{ "no reply", "", "no reply", "" },
		{ "550 5.7.1 (in reply to RCPT TO command)", "",
		  "550 5.7.1 (in reply to RCPT TO command)", "5.7.1" },
		{ NULL, "", "", "" },
	};
	struct dsn_reply rp;
	char *orig = make_orig(800);
	struct dsn_rcpt rc = failed_rcpt();
	struct dsn_report r;
	struct dsn_out o;
	struct js j = { 0 };

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		dsn_reply_parse(t[i].in, &rp);
		cr_assert_str_eq(rp.remote_mta, t[i].mta, "%s", t[i].in);
		cr_assert_str_eq(rp.diag, t[i].diag, "%s", t[i].in);
		cr_assert_str_eq(rp.status, t[i].status, "%s", t[i].in);
	}
	dsn_reply_parse(t[0].in, &rp);
	rc = (struct dsn_rcpt){ .addr = "bob@example.net", .action = DSN_FAILED,
		.status = rp.status, .remote_mta = rp.remote_mta, .diag = rp.diag,
		.reason = t[0].in };
	r = report(&rc, 1, orig, 800);
	build_ok(&r, &o);
	expect_common(&j, &o, "Undelivered Mail Returned to Sender");
	js_open(&j, "recipients", '[');
	js_open(&j, NULL, '{');
	js_str(&j, "Status", "5.1.1");
	js_str(&j, "Remote-MTA", "dns; mx.example.net");
	js_str(&j, "Diagnostic-Code", "smtp; 550 5.1.1 <bob@example.net>: Recipient address "
		   "rejected: User unknown");
	js_close(&j, '}');
	js_close(&j, ']');
	js_list(&j, "human", t[0].in, NULL);
	js_str(&j, "attached", "message/rfc822");
	js_close(&j, '}');
	python_ok(&o, &j);
	free(orig);
}

/* ---- the buffer and bad input ------------------------------------------------------------- */

Test(dsn, small_buffer_says_how_much_is_needed)
{
	char *orig = make_orig(3000), *want, *got;
	struct dsn_rcpt rc = failed_rcpt();
	struct dsn_report r = report(&rc, 1, orig, 3000);
	struct dsn_out o;
	char *small;
	size_t need;

	build_ok(&r, &o);
	want = flatten(&o);
	need = o.need;
	cr_assert_eq(dsn_build(&r, buf, 100, &o), DSN_ENOSPC);
	cr_assert_eq(o.need, need);
	cr_assert_eq(o.iovcnt, 0);
	cr_assert_eq(dsn_build(&r, buf, need - 1, &o), DSN_ENOSPC);
	small = malloc(need);	/* exactly that much: ASan sees any overrun */
	cr_assert_not_null(small);
	cr_assert_eq(dsn_build(&r, small, need, &o), DSN_OK);
	check_generic(&r, &o);
	got = flatten(&o);
	cr_assert_str_eq(got, want);
	free(got);
	free(want);
	free(small);
	free(orig);
}

/* The worst input there is (longest host, token, addresses of octets that
 * expand most, ORCPTs, ENVID, texts at their cut, a delay on each) stays
 * within dsn_text_max(), and the DSN stays clean. */
Test(dsn, worst_case_text_fits_dsn_text_max)
{
	static char host[DSN_HOST_MAX + 1], sender[QUEUE_ADDR_MAX + 1], envid[2 * QUEUE_TEXT_MAX + 1],
		addr[3][1100], orcpt[3][1100], text[DSN_VALUE_MAX + 100], remote[400];
	char token[DSN_TOKEN_MAX + 1], *orig = make_orig(600);
	struct dsn_rcpt rc[3];
	struct dsn_report r;
	struct dsn_out o;
	size_t n;

	for (size_t i = 0; i < DSN_HOST_MAX; i++)
		host[i] = i % 60 == 59 ? '.' : 'h';
	memset(token, 'T', DSN_TOKEN_MAX);
	token[DSN_TOKEN_MAX] = '\0';
	memset(sender, 'S', QUEUE_ADDR_MAX);
	sender[3] = '\\';	/* escaped as \x{5C} */
	for (size_t i = 0; i + 3 <= 2 * QUEUE_TEXT_MAX; i += 3)
		memcpy(envid + i, "+C3", 3);	/* decodes to invalid UTF-8: as received */
	memset(text, 'w', sizeof(text) - 1);
	for (size_t i = 7; i < sizeof(text) - 1; i += 8)
		text[i] = ' ';
	memset(remote, 'r', sizeof(remote) - 1);
	/* the addresses: invalid UTF-8 (8 octets each as \x{FFFD}), '=' (6),
	 * multi-octet characters */
	memset(addr[0], 0xFF, sizeof(addr[0]) - 1);
	memset(addr[1], '=', sizeof(addr[1]) - 1);
	for (size_t i = 0; i + 2 < sizeof(addr[2]); i += 2)
		memcpy(addr[2] + i, "\xce\xb4", 2);
	for (int k = 0; k < 3; k++) {
		n = (size_t)snprintf(orcpt[k], sizeof(orcpt[k]), k == 0 ? "utf-8;" : "rfc822;");
		while (n + 6 < 2 * QUEUE_ORCPT_MAX) {	/* "\x{20}" x 166: 6 octets each */
			memcpy(orcpt[k] + n, k == 0 ? "\\x{20}" : "+2B+3D", 6);
			n += 6;
		}
		orcpt[k][n] = '\0';
		rc[k] = (struct dsn_rcpt){ .addr = addr[k], .orcpt = orcpt[k],
			.action = DSN_DELAYED, .status = "4.123.456", .remote_mta = remote,
			.diag_type = "abcdefghijklmnopqrstuvwxyzabcdef", .diag = text,
			.reason = text, .last_attempt = LAST, .retry_until = UNTIL };
	}
	r = report(rc, 3, orig, 600);
	r.reporting_mta = host;
	r.token = token;
	r.env.sender = sender;
	r.env.envid = envid;
	r.env.queue_id = text;
	for (unsigned k = 1; k <= 3; k++) {
		r.nrcpt = k;
		cr_assert_eq(dsn_build(&r, buf, dsn_text_max(k), &o), DSN_OK, "%u recipients", k);
		cr_log_info("worst case, %u recipients: %zu octets of text (bound %zu)", k, o.need,
			    dsn_text_max(k));
		check_generic(&r, &o);
	}
	free(orig);
}

Test(dsn, bad_input_is_refused)
{
	char *orig = make_orig(500);
	struct dsn_rcpt rc = failed_rcpt(), noaddr = failed_rcpt();
	struct dsn_report r;
	struct dsn_out o;

	noaddr.addr = "";
#define REFUSED(mod) do { \
		r = report(&rc, 1, orig, 500); \
		mod; \
		cr_assert_eq(dsn_build(&r, buf, sizeof(buf), &o), DSN_EINVAL, #mod); \
		cr_assert_eq(o.iovcnt, 0); \
	} while (0)
	REFUSED(r.env.sender = "");		/* never a DSN to the null sender */
	REFUSED(r.env.sender = NULL);
	REFUSED(r.nrcpt = 0);
	REFUSED(r.rcpt = NULL);
	REFUSED(r.rcpt = &noaddr);
	REFUSED(r.nrcpt = QUEUE_RCPT_MAX + 1);
	REFUSED(r.token = "");
	REFUSED(r.token = "has space");
	REFUSED(r.token = "0123456789012345678901234567890123");
	REFUSED(r.reporting_mta = "mx1.sluice.test\r\nX: y");
	REFUSED(r.reporting_mta = NULL);
	REFUSED(r.kind = DSN_KIND_DOUBLE_BOUNCE);	/* no postmaster */
	REFUSED(r.orig_len = 499);			/* full needs all 500 */
	REFUSED(r.orig = NULL);
	REFUSED(rc.action = (enum dsn_action)7);
#undef REFUSED
	free(orig);
}

/* ---- the checker refuses what is wrong ----------------------------------------------- */

/* A check that passes everything proves nothing: the checker must say FAIL
 * for a wrong expectation and for a broken DSN, and ERROR for garbage. */
Test(dsn, checker_refuses_wrong_expectations_and_broken_dsns)
{
	char *orig = make_orig(1000), *m;
	struct dsn_rcpt rc = failed_rcpt();
	struct dsn_report r = report(&rc, 1, orig, 1000);
	struct dsn_out o;
	char dsn[256], exp[256], out[16384], *p;
	struct js j = { 0 };
	int rc_;

	build_ok(&r, &o);
	snprintf(dsn, sizeof(dsn), "%s/self.eml", tmpdir);
	snprintf(exp, sizeof(exp), "%s/self.json", tmpdir);
	write_dsn(dsn, &o);

	/* a wrong Status */
	js_open(&j, NULL, '{');
	js_open(&j, "recipients", '[');
	js_open(&j, NULL, '{');
	js_str(&j, "Status", "5.1.2");
	js_close(&j, '}');
	js_close(&j, ']');
	js_str(&j, "attached", "message/rfc822");
	js_close(&j, '}');
	write_file(exp, j.p, j.len);
	rc_ = run_checker(dsn, exp, out, sizeof(out));
	cr_assert_eq(rc_, 1, "exit %d:\n%s", rc_, out);
	cr_assert_not_null(strstr(out, "FAIL recipient 1 Status: got '5.1.1', want '5.1.2'"), "%s",
			   out);

	/* the right expectation passes on the same file */
	j.len = 0;
	j.comma = false;
	js_open(&j, NULL, '{');
	js_open(&j, "recipients", '[');
	js_open(&j, NULL, '{');
	js_str(&j, "Status", "5.1.1");
	js_close(&j, '}');
	js_close(&j, ']');
	js_str(&j, "attached", "message/rfc822");
	js_close(&j, '}');
	write_file(exp, j.p, j.len);
	rc_ = run_checker(dsn, exp, out, sizeof(out));
	cr_assert_eq(rc_, 0, "exit %d:\n%s", rc_, out);

	/* a bare LF put into the DSN's human part */
	m = flatten(&o);
	p = strstr(m, "This is the mail system");
	cr_assert_not_null(p);
	p[4] = '\n';
	write_file(dsn, m, o.size);
	rc_ = run_checker(dsn, exp, out, sizeof(out));
	cr_assert_eq(rc_, 1, "exit %d:\n%s", rc_, out);
	cr_assert_not_null(strstr(out, "bare CR or LF"), "%s", out);

	/* the boundary quoted inside a part */
	free(m);
	m = flatten(&o);
	p = strstr(m, "This is the mail system");
	memcpy(p, o.boundary, strlen(o.boundary));
	write_file(dsn, m, o.size);
	rc_ = run_checker(dsn, exp, out, sizeof(out));
	cr_assert_eq(rc_, 1, "exit %d:\n%s", rc_, out);
	cr_assert_not_null(strstr(out, "boundary occurrences"), "%s", out);

	/* not a report at all */
	write_file(dsn, "Subject: hi\r\n\r\nhello\r\n", 22);
	rc_ = run_checker(dsn, exp, out, sizeof(out));
	cr_assert_eq(rc_, 1, "exit %d:\n%s", rc_, out);
	cr_assert_not_null(strstr(out, "FAIL type: got 'text/plain', want 'multipart/report'"),
			   "%s", out);

	/* an empty file and bad JSON cannot be checked: ERROR, exit 2 */
	write_file(dsn, "", 0);
	rc_ = run_checker(dsn, exp, out, sizeof(out));
	cr_assert_eq(rc_, 2, "exit %d:\n%s", rc_, out);
	write_dsn(dsn, &o);
	write_file(exp, "{", 1);
	rc_ = run_checker(dsn, exp, out, sizeof(out));
	cr_assert_eq(rc_, 2, "exit %d:\n%s", rc_, out);
	free(m);
	free(j.p);
	free(orig);
}
