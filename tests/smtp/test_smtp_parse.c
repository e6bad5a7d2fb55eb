/*
 * test_smtp_parse.c - the command parser: every verb, every parameter,
 * path syntax and limits, malformed input, with the exact replies.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "dataplane/smtp/smtp_parse.h"

static struct smtp_cmd c;

static enum smtp_perr P(const char *s)
{
	return smtp_parse_line(s, strlen(s), &c);
}

/* parse must fail with this exact reply line */
#define FAILS(line, rep) do { \
	cr_expect_neq(P(line), SMTP_PE_OK, "%s", line); \
	cr_expect_str_eq(c.reply ? c.reply : "(none)", rep, "%s", line); \
} while (0)
#define OK(line) cr_expect_eq(P(line), SMTP_PE_OK, "%s: %s", line, c.reply ? c.reply : "")

Test(parse, every_verb_case_insensitive)
{
	static const struct { const char *line; enum smtp_verb v; } t[] = {
		{ "EHLO a.example", SMTP_V_EHLO }, { "ehlo a.example", SMTP_V_EHLO },
		{ "HELO a.example", SMTP_V_HELO }, { "MAIL FROM:<a@b.example>", SMTP_V_MAIL },
		{ "mail from:<a@b.example>", SMTP_V_MAIL },
		{ "RCPT TO:<a@b.example>", SMTP_V_RCPT }, { "Rcpt To:<a@b.example>", SMTP_V_RCPT },
		{ "DATA", SMTP_V_DATA }, { "data", SMTP_V_DATA },
		{ "BDAT 10", SMTP_V_BDAT }, { "RSET", SMTP_V_RSET }, { "NOOP", SMTP_V_NOOP },
		{ "QUIT", SMTP_V_QUIT }, { "VRFY postmaster", SMTP_V_VRFY },
		{ "HELP", SMTP_V_HELP }, { "STARTTLS", SMTP_V_STARTTLS },
		{ "starttls", SMTP_V_STARTTLS },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		OK(t[i].line);
		cr_expect_eq(c.verb, t[i].v, "%s", t[i].line);
		cr_expect_str_neq(smtp_verb_name(c.verb), "UNKNOWN");
	}
}

Test(parse, unknown_and_empty)
{
	FAILS("", "500 5.5.2 Error: command not recognized");
	FAILS("MAILFROM:<a@b>", "500 5.5.2 Error: command not recognized");
	FAILS("GET / HTTP/1.1", "500 5.5.2 Error: command not recognized");
	FAILS(" NOOP", "500 5.5.2 Error: command not recognized");
	cr_expect_eq(c.err, SMTP_PE_UNKNOWN);
	/* known but not offered: 502 (RFC 5321 4.2.4) */
	FAILS("EXPN list", "502 5.5.1 Error: command not implemented");
	FAILS("expn", "502 5.5.1 Error: command not implemented");
	FAILS("TURN", "502 5.5.1 Error: command not implemented");
	FAILS("ATRN example.com", "502 5.5.1 Error: command not implemented");
	FAILS("ETRN", "501 5.5.4 Syntax error in parameters or arguments");
	/* AUTH is parsed (the session decides whether it is offered) */
	FAILS("AUTH", "501 5.5.4 Syntax error in parameters or arguments");
	OK("AUTH PLAIN AGZvbwBiYXI=");
	cr_expect_eq(c.verb, SMTP_V_AUTH);
	cr_expect_str_eq(c.arg, "PLAIN AGZvbwBiYXI=");
}

Test(parse, bad_characters)
{
	FAILS("NOOP\tx", "500 5.5.2 Error: bad character in command");
	FAILS("NOOP\rQUIT", "500 5.5.2 Error: bad character in command");
	FAILS("NOOP\nQUIT", "500 5.5.2 Error: bad character in command");
	FAILS("NOOP \x7f", "500 5.5.2 Error: bad character in command");
	FAILS("EHLO h\xc3\xa9.example", "500 5.5.2 Error: bad character in command");
	FAILS("\xff\xfe", "500 5.5.2 Error: bad character in command");
	cr_expect_neq(smtp_parse_line("NOOP\0QUIT", 9, &c), SMTP_PE_OK);
	cr_expect_eq(c.err, SMTP_PE_BADCHAR);
}

Test(parse, ehlo_helo_argument)
{
	OK("EHLO client.example");
	cr_expect_str_eq(c.arg, "client.example");
	OK("HELO [192.0.2.1]");
	cr_expect_str_eq(c.arg, "[192.0.2.1]");
	OK("EHLO  spaced.example  ");
	cr_expect_str_eq(c.arg, "spaced.example");
	FAILS("EHLO", "501 5.5.4 Syntax error in parameters or arguments");
	FAILS("EHLO ", "501 5.5.4 Syntax error in parameters or arguments");
	FAILS("HELO", "501 5.5.4 Syntax error in parameters or arguments");
	FAILS("EHLO two words", "501 5.5.4 Syntax error in parameters or arguments");
	char big[300] = "EHLO ";
	memset(big + 5, 'a', 256);
	big[261] = '\0';
	FAILS(big, "501 5.5.4 Syntax error in parameters or arguments");
	big[260] = '\0';	/* 255 octets: fine */
	OK(big);
}

Test(parse, commands_without_arguments)
{
	OK("DATA");
	OK("DATA ");	/* trailing space tolerated */
	OK("RSET");
	OK("QUIT");
	OK("STARTTLS");
	FAILS("DATA now", "501 5.5.4 Syntax error in parameters or arguments");
	FAILS("RSET x", "501 5.5.4 Syntax error in parameters or arguments");
	FAILS("QUIT x", "501 5.5.4 Syntax error in parameters or arguments");
	FAILS("STARTTLS x", "501 5.5.4 Syntax error in parameters or arguments");
}

Test(parse, noop_help_vrfy)
{
	OK("NOOP");
	OK("NOOP anything at all");
	cr_expect_str_eq(c.arg, "anything at all");
	OK("HELP");
	OK("HELP MAIL");
	cr_expect_str_eq(c.arg, "MAIL");
	OK("VRFY user");
	cr_expect_str_eq(c.arg, "user");
	FAILS("VRFY", "501 5.5.4 Syntax error in parameters or arguments");
}

Test(parse, mail_basic_and_null_sender)
{
	OK("MAIL FROM:<alice@example.com>");
	cr_expect_str_eq(c.path.addr, "alice@example.com");
	cr_expect_str_eq(c.path.local, "alice");
	cr_expect_str_eq(c.path.domain, "example.com");
	cr_expect_not(c.path.null);
	OK("MAIL FROM:<>");
	cr_expect(c.path.null);
	cr_expect_str_eq(c.path.addr, "");
	OK("MAIL FROM: <alice@example.com>");	/* common client quirk */
	OK("MAIL FROM:<a@b.example>  SIZE=10   BODY=8BITMIME  ");
	FAILS("MAIL <a@b.example>", "501 5.5.4 Syntax error in parameters or arguments");
	FAILS("MAIL TO:<a@b.example>", "501 5.5.4 Syntax error in parameters or arguments");
	FAILS("MAIL", "501 5.5.4 Syntax error in parameters or arguments");
	FAILS("MAIL FROM:", "501 5.1.7 Bad sender address syntax");
	FAILS("MAIL FROM:alice@example.com", "501 5.1.7 Bad sender address syntax");
	FAILS("MAIL FROM:<alice@example.com", "501 5.1.7 Bad sender address syntax");
	FAILS("MAIL FROM:<alice>", "501 5.1.7 Bad sender address syntax");
	FAILS("MAIL FROM:<alice@example.com>SIZE=1", "501 5.1.7 Bad sender address syntax");
	FAILS("MAIL FROM:<<a@b.example>>", "501 5.1.7 Bad sender address syntax");
}

Test(parse, rcpt_basic)
{
	OK("RCPT TO:<bob@example.org>");
	cr_expect_str_eq(c.path.addr, "bob@example.org");
	FAILS("RCPT TO:<>", "501 5.1.3 Bad recipient address syntax");
	FAILS("RCPT FROM:<a@b.example>", "501 5.5.4 Syntax error in parameters or arguments");
	FAILS("RCPT TO:bob@example.org", "501 5.1.3 Bad recipient address syntax");
	FAILS("RCPT TO:<bob@>", "501 5.1.3 Bad recipient address syntax");
	FAILS("RCPT TO:<@example.org>", "501 5.1.3 Bad recipient address syntax");
	FAILS("RCPT TO:<bob@example.org> junk", "555 5.5.4 Unsupported parameter");
}

/* RFC 5321 4.1.1.3: "RCPT TO:<Postmaster>" is the one path without a
 * domain; the word in any case, RCPT only, parameters allowed. */
Test(parse, rcpt_postmaster_without_domain)
{
	OK("RCPT TO:<Postmaster>");
	cr_expect(c.path.postmaster);
	cr_expect_str_eq(c.path.local, "Postmaster");
	cr_expect_str_eq(c.path.domain, "");
	cr_expect_str_eq(c.path.addr, "Postmaster");
	OK("rcpt to:<pOSTMASTER> NOTIFY=FAILURE ORCPT=rfc822;postmaster+40x.example");
	cr_expect(c.path.postmaster);
	cr_expect_str_eq(c.path.addr, "pOSTMASTER");
	cr_expect_eq(c.notify, SMTP_NOTIFY_FAILURE);
	OK("RCPT TO: <postmaster>");
	OK("RCPT TO:<postmaster@mx.example>");
	cr_expect_not(c.path.postmaster, "with a domain it is an ordinary path");
	cr_expect_str_eq(c.path.domain, "mx.example");
	FAILS("RCPT TO:<Postmasters>", "501 5.1.3 Bad recipient address syntax");
	FAILS("RCPT TO:<Postmaste>", "501 5.1.3 Bad recipient address syntax");
	FAILS("RCPT TO:<Postmaster@>", "501 5.1.3 Bad recipient address syntax");
	FAILS("RCPT TO:<Postmaster>x", "501 5.1.3 Bad recipient address syntax");
	FAILS("RCPT TO:<\"Postmaster\">", "501 5.1.3 Bad recipient address syntax");
	FAILS("MAIL FROM:<Postmaster>", "501 5.1.7 Bad sender address syntax");
}

Test(parse, mailbox_valid_and_xtext_encode)
{
	char x[32];
	cr_expect(smtp_mailbox_valid("noc@isp.example"));
	cr_expect(smtp_mailbox_valid("root@localhost"));
	cr_expect(smtp_mailbox_valid("\"a b\"@isp.example"));
	cr_expect(smtp_mailbox_valid("noc@[192.0.2.1]"));
	cr_expect_not(smtp_mailbox_valid(""));
	cr_expect_not(smtp_mailbox_valid("root"));
	cr_expect_not(smtp_mailbox_valid("Postmaster"));
	cr_expect_not(smtp_mailbox_valid("<noc@isp.example>"));
	cr_expect_not(smtp_mailbox_valid("noc@isp.example x"));
	cr_expect_not(smtp_mailbox_valid("noc@isp.example> NOTIFY=NEVER"));
	cr_expect_not(smtp_mailbox_valid("@a.example:noc@isp.example"));
	cr_expect_not(smtp_mailbox_valid("n\xc3\xb6c@isp.example"));
	cr_expect_not(smtp_mailbox_valid("noc@isp..example"));
	/* 254 characters is the most a path allows without its brackets */
	char m[300];
	memset(m, 'l', 64);
	m[64] = '@';
	for (size_t k = 65; k < 255; k++)
		m[k] = (k - 65) % 50 == 49 ? '.' : 'd';
	m[255] = '\0';
	cr_expect_not(smtp_mailbox_valid(m), "255 characters");
	m[254] = '\0';
	cr_expect(smtp_mailbox_valid(m), "254 characters");
	cr_expect_eq(smtp_xtext_encode("a+b=c d\x01", x, sizeof(x)), 16);
	cr_expect_str_eq(x, "a+2Bb+3Dc+20d+01");
	cr_expect_eq(smtp_xtext_encode("Postmaster@mx", x, sizeof(x)), 13);
	cr_expect_str_eq(x, "Postmaster@mx");
	cr_expect_eq(smtp_xtext_encode("abc", x, 3), -1, "no room for the NUL");
	cr_expect_eq(smtp_xtext_encode("a+", x, 3), -1);
}

Test(parse, local_part_syntax)
{
	OK("RCPT TO:<first.last+tag@example.org>");
	OK("RCPT TO:<!#$%&'*+-/=?^_`{|}~@example.org>");
	OK("RCPT TO:<\"john doe\"@example.org>");
	cr_expect_str_eq(c.path.local, "\"john doe\"");
	OK("RCPT TO:<\"a\\\"b\"@example.org>");
	OK("RCPT TO:<\"a@b\"@example.org>");
	FAILS("RCPT TO:<.a@example.org>", "501 5.1.3 Bad recipient address syntax");
	FAILS("RCPT TO:<a.@example.org>", "501 5.1.3 Bad recipient address syntax");
	FAILS("RCPT TO:<a..b@example.org>", "501 5.1.3 Bad recipient address syntax");
	FAILS("RCPT TO:<a b@example.org>", "501 5.1.3 Bad recipient address syntax");
	FAILS("RCPT TO:<a(b@example.org>", "501 5.1.3 Bad recipient address syntax");
	FAILS("RCPT TO:<\"unterminated@example.org>", "501 5.1.3 Bad recipient address syntax");
}

Test(parse, domain_syntax)
{
	OK("RCPT TO:<a@x>");
	OK("RCPT TO:<a@a-b.c0.example>");
	FAILS("RCPT TO:<a@-ab.example>", "501 5.1.3 Bad recipient address syntax");
	FAILS("RCPT TO:<a@ab-.example>", "501 5.1.3 Bad recipient address syntax");
	FAILS("RCPT TO:<a@a_b.example>", "501 5.1.3 Bad recipient address syntax");
	FAILS("RCPT TO:<a@a..example>", "501 5.1.3 Bad recipient address syntax");
	FAILS("RCPT TO:<a@example.>", "501 5.1.3 Bad recipient address syntax");
	FAILS("RCPT TO:<a@.example>", "501 5.1.3 Bad recipient address syntax");
	char l[200];
	char lab[70];
	memset(lab, 'a', 63);
	lab[63] = '\0';
	snprintf(l, sizeof(l), "RCPT TO:<x@%s.example>", lab);
	OK(l);
	lab[63] = 'a';
	lab[64] = '\0';
	snprintf(l, sizeof(l), "RCPT TO:<x@%s.example>", lab);
	FAILS(l, "501 5.1.3 Bad recipient address syntax");
}

Test(parse, address_literals)
{
	OK("RCPT TO:<a@[192.0.2.1]>");
	cr_expect(c.path.literal);
	cr_expect_str_eq(c.path.domain, "[192.0.2.1]");
	OK("RCPT TO:<a@[IPv6:2001:db8::1]>");
	cr_expect(c.path.literal);
	OK("RCPT TO:<a@example.org>");
	cr_expect_not(c.path.literal);
	FAILS("RCPT TO:<a@[192.0.2]>", "501 5.1.3 Bad recipient address syntax");
	FAILS("RCPT TO:<a@[300.0.2.1]>", "501 5.1.3 Bad recipient address syntax");
	FAILS("RCPT TO:<a@[IPv6:zz::1]>", "501 5.1.3 Bad recipient address syntax");
	FAILS("RCPT TO:<a@[]>", "501 5.1.3 Bad recipient address syntax");
	FAILS("RCPT TO:<a@[192.0.2.1>", "501 5.1.3 Bad recipient address syntax");
	FAILS("RCPT TO:<a@[tag:foo]>", "501 5.1.3 Bad recipient address syntax");
}

Test(parse, source_route_ignored)
{
	OK("RCPT TO:<@relay1.example,@relay2.example:user@final.example>");
	cr_expect_str_eq(c.path.addr, "user@final.example");
	OK("MAIL FROM:<@a.example:u@b.example>");
	cr_expect_str_eq(c.path.addr, "u@b.example");
	FAILS("RCPT TO:<@relay1.example user@final.example>", "501 5.1.3 Bad recipient address syntax");
	FAILS("RCPT TO:<@:user@final.example>", "501 5.1.3 Bad recipient address syntax");
}

Test(parse, path_length_limits)
{
	char l[600], local[80], dom[300];
	/* local part: 64 ok, 65 too long */
	memset(local, 'l', 64);
	local[64] = '\0';
	snprintf(l, sizeof(l), "RCPT TO:<%s@example.org>", local);
	OK(l);
	local[64] = 'l';
	local[65] = '\0';
	snprintf(l, sizeof(l), "RCPT TO:<%s@example.org>", local);
	FAILS(l, "501 5.1.3 Path too long");
	snprintf(l, sizeof(l), "MAIL FROM:<%s@example.org>", local);
	FAILS(l, "501 5.1.7 Path too long");
	/* whole path "<...>" = 256 ok, 257 too long: 64 + 1 + domain + 2 */
	memset(local, 'l', 64);
	local[64] = '\0';
	size_t dl = 256 - 2 - 65;	/* 189 */
	size_t k = 0;
	while (k < dl) {
		size_t lab = dl - k > 63 ? 60 : dl - k;
		memset(dom + k, 'd', lab);
		k += lab;
		if (k < dl) {
			dom[k - 1] = '.';
		}
	}
	dom[dl] = '\0';
	snprintf(l, sizeof(l), "RCPT TO:<%s@%s>", local, dom);
	OK(l);
	cr_expect_eq(strlen(c.path.addr), 254);
	snprintf(l, sizeof(l), "RCPT TO:<%s@%sx>", local, dom);
	FAILS(l, "501 5.1.3 Path too long");
	cr_expect_eq(c.err, SMTP_PE_PATHLEN);
}

Test(parse, utf8_addresses)
{
	OK("MAIL FROM:<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.example> SMTPUTF8");
	cr_expect(c.path.utf8);
	cr_expect(c.smtputf8);
	OK("RCPT TO:<j\xc3\xb6rg@m\xc3\xbcnchen.example>");
	cr_expect(c.path.utf8);
	OK("RCPT TO:<\"\xc3\xa9t\xc3\xa9\"@example.org>");
	cr_expect(c.path.utf8);
	OK("RCPT TO:<plain@example.org>");
	cr_expect_not(c.path.utf8);
	/* malformed UTF-8 */
	FAILS("RCPT TO:<\xc3\x28@example.org>", "501 5.1.3 Bad recipient address syntax");
	FAILS("RCPT TO:<\xc0\x80@example.org>", "501 5.1.3 Bad recipient address syntax");
	FAILS("RCPT TO:<a@\xed\xa0\x80.example>", "501 5.1.3 Bad recipient address syntax");
	/* 8-bit in a parameter */
	FAILS("MAIL FROM:<a@b.example> ENVID=\xc3\xa9", "501 5.5.4 Bad parameter value");
}

Test(parse, utf8_validator)
{
	cr_expect(smtp_utf8_valid((const uint8_t *)"abc", 3));
	cr_expect(smtp_utf8_valid((const uint8_t *)"\xf0\x9f\x98\x80", 4));
	cr_expect_not(smtp_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4));
	cr_expect_not(smtp_utf8_valid((const uint8_t *)"\xe0\x80\xaf", 3));
	cr_expect_not(smtp_utf8_valid((const uint8_t *)"\xe2\x82", 2));
	cr_expect_not(smtp_utf8_valid((const uint8_t *)"\x80", 1));
	cr_expect_not(smtp_utf8_valid((const uint8_t *)"\xf8\x88\x80\x80\x80", 5));
}

Test(parse, mail_size)
{
	OK("MAIL FROM:<a@b.example> SIZE=1000");
	cr_expect(c.has_size);
	cr_expect_eq(c.size, 1000);
	OK("MAIL FROM:<a@b.example> size=0");
	cr_expect(c.has_size);
	OK("MAIL FROM:<a@b.example> SIZE=18446744073709551615");
	cr_expect_eq(c.size, UINT64_MAX);
	FAILS("MAIL FROM:<a@b.example> SIZE=18446744073709551616", "501 5.5.4 Bad parameter value");
	FAILS("MAIL FROM:<a@b.example> SIZE=", "501 5.5.4 Bad parameter value");
	FAILS("MAIL FROM:<a@b.example> SIZE", "501 5.5.4 Bad parameter value");
	FAILS("MAIL FROM:<a@b.example> SIZE=12k", "501 5.5.4 Bad parameter value");
	FAILS("MAIL FROM:<a@b.example> SIZE=-1", "501 5.5.4 Bad parameter value");
	FAILS("MAIL FROM:<a@b.example> SIZE=1 SIZE=2", "501 5.5.4 Bad parameter value");
	FAILS("RCPT TO:<a@b.example> SIZE=1", "555 5.5.4 Unsupported parameter");
}

Test(parse, mail_body)
{
	OK("MAIL FROM:<a@b.example> BODY=7BIT");
	cr_expect_eq(c.body, SMTP_BODY_7BIT);
	OK("MAIL FROM:<a@b.example> BODY=8bitmime");
	cr_expect_eq(c.body, SMTP_BODY_8BITMIME);
	OK("MAIL FROM:<a@b.example>");
	cr_expect_eq(c.body, SMTP_BODY_NONE);
	FAILS("MAIL FROM:<a@b.example> BODY=BINARYMIME", "501 5.5.4 Bad parameter value");
	FAILS("MAIL FROM:<a@b.example> BODY", "501 5.5.4 Bad parameter value");
	FAILS("MAIL FROM:<a@b.example> BODY=7BIT BODY=7BIT", "501 5.5.4 Bad parameter value");
}

Test(parse, mail_smtputf8)
{
	OK("MAIL FROM:<a@b.example> SMTPUTF8");
	cr_expect(c.smtputf8);
	OK("MAIL FROM:<a@b.example> smtputf8 BODY=8BITMIME");
	cr_expect(c.smtputf8);
	FAILS("MAIL FROM:<a@b.example> SMTPUTF8=yes", "501 5.5.4 Bad parameter value");
	FAILS("RCPT TO:<a@b.example> SMTPUTF8", "555 5.5.4 Unsupported parameter");
}

Test(parse, mail_ret_envid)
{
	OK("MAIL FROM:<a@b.example> RET=FULL ENVID=QQ314159");
	cr_expect_eq(c.ret, SMTP_RET_FULL);
	cr_expect_str_eq(c.envid, "QQ314159");
	OK("MAIL FROM:<a@b.example> ret=hdrs");
	cr_expect_eq(c.ret, SMTP_RET_HDRS);
	OK("MAIL FROM:<a@b.example> ENVID=a+2Bb+3Dc");
	cr_expect_str_eq(c.envid, "a+2Bb+3Dc");
	FAILS("MAIL FROM:<a@b.example> RET=BOTH", "501 5.5.4 Bad parameter value");
	FAILS("MAIL FROM:<a@b.example> RET", "501 5.5.4 Bad parameter value");
	FAILS("MAIL FROM:<a@b.example> ENVID=a+2b", "501 5.5.4 Bad parameter value");
	FAILS("MAIL FROM:<a@b.example> ENVID=a+", "501 5.5.4 Bad parameter value");
	FAILS("MAIL FROM:<a@b.example> ENVID=a=b", "501 5.5.4 Bad parameter value");
	FAILS("MAIL FROM:<a@b.example> ENVID=", "501 5.5.4 Bad parameter value");
	FAILS("MAIL FROM:<a@b.example> RET=FULL RET=HDRS", "501 5.5.4 Bad parameter value");
	char l[300], v[120];
	memset(v, 'e', 100);
	v[100] = '\0';
	snprintf(l, sizeof(l), "MAIL FROM:<a@b.example> ENVID=%s", v);
	OK(l);
	snprintf(l, sizeof(l), "MAIL FROM:<a@b.example> ENVID=%se", v);
	FAILS(l, "501 5.5.4 Bad parameter value");
	FAILS("RCPT TO:<a@b.example> RET=FULL", "555 5.5.4 Unsupported parameter");
	FAILS("RCPT TO:<a@b.example> ENVID=x", "555 5.5.4 Unsupported parameter");
}

Test(parse, unknown_parameters)
{
	FAILS("MAIL FROM:<a@b.example> AUTH=<>", "555 5.5.4 Unsupported parameter");
	FAILS("MAIL FROM:<a@b.example> FOO", "555 5.5.4 Unsupported parameter");
	FAILS("MAIL FROM:<a@b.example> NOTIFY=NEVER", "555 5.5.4 Unsupported parameter");
	FAILS("MAIL FROM:<a@b.example> ORCPT=rfc822;a@b", "555 5.5.4 Unsupported parameter");
	FAILS("MAIL FROM:<a@b.example> =x", "501 5.5.4 Bad parameter value");
	FAILS("MAIL FROM:<a@b.example> SI_ZE=1", "501 5.5.4 Bad parameter value");
}

Test(parse, rcpt_notify)
{
	OK("RCPT TO:<a@b.example> NOTIFY=NEVER");
	cr_expect_eq(c.notify, SMTP_NOTIFY_NEVER);
	OK("RCPT TO:<a@b.example> NOTIFY=SUCCESS,FAILURE,DELAY");
	cr_expect_eq(c.notify, SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY);
	OK("RCPT TO:<a@b.example> notify=delay,failure");
	cr_expect_eq(c.notify, SMTP_NOTIFY_DELAY | SMTP_NOTIFY_FAILURE);
	OK("RCPT TO:<a@b.example>");
	cr_expect_eq(c.notify, 0);
	FAILS("RCPT TO:<a@b.example> NOTIFY=NEVER,SUCCESS", "501 5.5.4 Bad parameter value");
	FAILS("RCPT TO:<a@b.example> NOTIFY=SUCCESS,SUCCESS", "501 5.5.4 Bad parameter value");
	FAILS("RCPT TO:<a@b.example> NOTIFY=SUCCESS,", "501 5.5.4 Bad parameter value");
	FAILS("RCPT TO:<a@b.example> NOTIFY=,SUCCESS", "501 5.5.4 Bad parameter value");
	FAILS("RCPT TO:<a@b.example> NOTIFY=", "501 5.5.4 Bad parameter value");
	FAILS("RCPT TO:<a@b.example> NOTIFY=SOMETIMES", "501 5.5.4 Bad parameter value");
	FAILS("RCPT TO:<a@b.example> NOTIFY=NEVER NOTIFY=NEVER", "501 5.5.4 Bad parameter value");
}

Test(parse, rcpt_orcpt)
{
	OK("RCPT TO:<a@b.example> ORCPT=rfc822;orig+40x.example");
	cr_expect_str_eq(c.orcpt, "rfc822;orig+40x.example");
	OK("RCPT TO:<a@b.example> ORCPT=RFC822;a@b NOTIFY=FAILURE");
	cr_expect_eq(c.notify, SMTP_NOTIFY_FAILURE);
	OK("RCPT TO:<a@b.example> ORCPT=utf-8;a@b");
	FAILS("RCPT TO:<a@b.example> ORCPT=x400;a@b", "501 5.5.4 Bad parameter value");
	FAILS("RCPT TO:<a@b.example> ORCPT=rfc822", "501 5.5.4 Bad parameter value");
	FAILS("RCPT TO:<a@b.example> ORCPT=rfc822;", "501 5.5.4 Bad parameter value");
	FAILS("RCPT TO:<a@b.example> ORCPT=rfc822;a+zz", "501 5.5.4 Bad parameter value");
	FAILS("RCPT TO:<a@b.example> ORCPT=rfc822;a ORCPT=rfc822;b", "501 5.5.4 Bad parameter value");
}

Test(parse, xtext)
{
	cr_expect(smtp_xtext_valid("abc", 3));
	cr_expect(smtp_xtext_valid("a+2B", 4));
	cr_expect_not(smtp_xtext_valid("a+2", 3));
	cr_expect_not(smtp_xtext_valid("a+g0", 4));
	cr_expect_not(smtp_xtext_valid("a b", 3));
	cr_expect_not(smtp_xtext_valid("a=b", 3));
	cr_expect(smtp_xtext_valid("", 0));
}

Test(parse, bdat)
{
	OK("BDAT 100");
	cr_expect_eq(c.bdat_size, 100);
	cr_expect_not(c.bdat_last);
	OK("BDAT 0 LAST");
	cr_expect_eq(c.bdat_size, 0);
	cr_expect(c.bdat_last);
	OK("bdat 5 last");
	cr_expect(c.bdat_last);
	FAILS("BDAT", "501 5.5.4 Syntax error in parameters or arguments");
	FAILS("BDAT x", "501 5.5.4 Syntax error in parameters or arguments");
	FAILS("BDAT -1", "501 5.5.4 Syntax error in parameters or arguments");
	FAILS("BDAT 5 FIRST", "501 5.5.4 Syntax error in parameters or arguments");
	FAILS("BDAT 5 LAST x", "501 5.5.4 Syntax error in parameters or arguments");
	FAILS("BDAT 18446744073709551616", "501 5.5.4 Syntax error in parameters or arguments");
	FAILS("BDAT 1.5", "501 5.5.4 Syntax error in parameters or arguments");
}

/* RFC 3461 section 3: ORCPT may be 500 characters and lengthens RCPT by as
 * much; the longest RCPT (256-octet path, NOTIFY, 500-character ORCPT)
 * parses, and the queue takes an ORCPT as long as the parser does. */
Test(parse, rcpt_orcpt_500_characters)
{
	char path[SMTP_PATH_MAX + 1], orcpt[SMTP_ORCPT_MAX + 2], l[SMTP_CMD_MAX + 16];
	int n;

	cr_assert_eq(SMTP_ORCPT_MAX, 500);
	cr_assert_eq(SMTP_ORCPT_MAX, QUEUE_ORCPT_MAX, "one limit for parser and queue");
	/* "<" + 64 + "@" + 63 "." 63 "." 61 + ">" = 256 */
	n = snprintf(path, sizeof(path), "<%.64s@%.63s.%.63s.%.61s>",
		     "llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllll",
		     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		     "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
		     "ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc");
	cr_assert_eq(n, SMTP_PATH_MAX);
	memcpy(orcpt, "rfc822;", 7);
	memset(orcpt + 7, 'o', SMTP_ORCPT_MAX - 7);
	orcpt[SMTP_ORCPT_MAX] = '\0';
	n = snprintf(l, sizeof(l), "RCPT TO:%s NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=%s", path, orcpt);
	cr_assert_leq(n, SMTP_CMD_MAX - 2);
	cr_assert_gt(n, SMTP_LINE_MAX - 2, "longer than RFC 5321's 512");
	cr_expect_eq(smtp_parse_line(l, (size_t)n, &c), SMTP_PE_OK, "%s", c.reply);
	cr_expect_eq(strlen(c.orcpt), SMTP_ORCPT_MAX);
	cr_expect_str_eq(c.orcpt, orcpt);
	cr_expect_eq(strlen(c.path.addr), SMTP_PATH_MAX - 2);
	/* one more is too long */
	memcpy(orcpt + SMTP_ORCPT_MAX, "o", 2);
	snprintf(l, sizeof(l), "RCPT TO:<a@b.example> ORCPT=%s", orcpt);
	FAILS(l, "501 5.5.4 Bad parameter value");
}

Test(parse, oversize_line_refused)
{
	char l[SMTP_CMD_MAX + 8];
	memset(l, 'x', sizeof(l));
	memcpy(l, "NOOP ", 5);
	cr_expect_eq(SMTP_CMD_MAX, 1012);
	cr_expect_eq(smtp_parse_line(l, SMTP_CMD_MAX - 2, &c), SMTP_PE_OK);
	cr_expect_eq(strlen(c.arg), SMTP_CMD_MAX - 2 - 5);
	cr_expect_neq(smtp_parse_line(l, SMTP_CMD_MAX - 1, &c), SMTP_PE_OK);
}

/* ---- XSLUICE (xsluice.h): a transferred message's queue state ---------------------- */

Test(xsluice, format_parse_round_trip)
{
	struct xsluice in = { .arrival = 1764500000, .next_try = 1764503600,
			      .expiry = 1764932000, .attempts = 7 }, out;
	char buf[XSLUICE_PARAM_MAX + 1];
	int n;

	snprintf(in.last_error, sizeof(in.last_error),
		 "host 198.18.0.1 said: 451 4.2.1 a=b +plus (in reply to RCPT TO command)");
	n = xsluice_format(&in, buf, sizeof(buf));
	cr_assert_gt(n, 0);
	cr_expect_eq(strncmp(buf, "1764500000.7.1764503600.1764932000.host+20198.18.0.1", 52), 0,
		     "%s", buf);
	cr_expect_null(strchr(buf, '='), "%s", buf);
	cr_expect_null(strchr(buf, ' '), "%s", buf);
	cr_assert_eq(xsluice_parse(buf, (size_t)n, &out), 0, "%s", buf);
	cr_expect_eq(out.arrival, in.arrival);
	cr_expect_eq(out.next_try, in.next_try);
	cr_expect_eq(out.expiry, in.expiry);
	cr_expect_eq(out.attempts, in.attempts);
	cr_expect_str_eq(out.last_error, in.last_error);
	/* no last error: four numbers, nothing after */
	in.last_error[0] = '\0';
	in.attempts = 0;
	n = xsluice_format(&in, buf, sizeof(buf));
	cr_expect_str_eq(buf, "1764500000.0.1764503600.1764932000");
	cr_assert_eq(xsluice_parse(buf, (size_t)n, &out), 0);
	cr_expect_str_eq(out.last_error, "");
	cr_expect_eq(out.attempts, 0);
	/* through the MAIL parser */
	snprintf(buf, sizeof(buf), "MAIL FROM:<a@b.example> RET=HDRS XSLUICE=%s ENVID=e1",
		 "1764500000.3.1764503600.1764932000.451+204.2.1+20busy");
	OK(buf);
	cr_expect(c.has_xsluice);
	cr_expect_eq(c.xsluice.attempts, 3);
	cr_expect_str_eq(c.xsluice.last_error, "451 4.2.1 busy");
	cr_expect_eq(c.ret, SMTP_RET_HDRS);
	OK("MAIL FROM:<a@b.example>");
	cr_expect_not(c.has_xsluice);
}

Test(xsluice, bounds)
{
	struct xsluice x = { .arrival = 100, .next_try = 100, .expiry = 100, .attempts = 65535 };
	char buf[XSLUICE_PARAM_MAX + 1], big[400];
#define BAD(v) cr_expect_eq(xsluice_parse(v, strlen(v), &x), -1, "%s", v)
#define GOOD(v) cr_expect_eq(xsluice_parse(v, strlen(v), &x), 0, "%s", v)
	GOOD("1.0.1.1");
	GOOD("100.65535.200.300");
	GOOD("253402300799.1.253402300799.253402300799");
	GOOD("1.1.1.1.x.y.z");			/* '.' inside the error */
	BAD("100.65536.200.300");		/* attempts over uint16 */
	BAD("0.1.1.1");				/* no arrival */
	BAD("253402300800.1.253402300800.253402300800");	/* past year 9999 */
	BAD("300.1.400.200");			/* expiry before arrival */
	BAD("300.1.200.400");			/* next try before arrival */
	BAD("100.1.200");			/* three numbers */
	BAD("100..200.300");
	BAD("0100.1.200.300");			/* leading zero */
	BAD("-1.1.200.300");
	BAD("99999999999999999999999.1.2.3");	/* overflow */
	BAD("100.1.200.300.");			/* empty error */
	BAD("100.1.200.300.a+2");		/* truncated hex */
	BAD("100.1.200.300.a+2b");		/* lower-case hex */
	BAD("100.1.200.300.a+0Ab");		/* a control octet */
	BAD("100.1.200.300 ");
	BAD("");
	/* the error's decoded length: XSLUICE_ERR_MAX at most */
	memset(big, 'e', sizeof(big));
	memcpy(big, "1.1.1.1.", 8);
	big[8 + XSLUICE_ERR_MAX] = '\0';
	GOOD(big);
	big[8 + XSLUICE_ERR_MAX] = 'e';
	big[9 + XSLUICE_ERR_MAX] = '\0';
	BAD(big);
	/* format refuses what parse would refuse, and a short buffer */
	x = (struct xsluice){ .arrival = 300, .next_try = 400, .expiry = 200 };
	cr_expect_eq(xsluice_format(&x, buf, sizeof(buf)), -1);
	x = (struct xsluice){ .arrival = 300, .next_try = 400, .expiry = 500, .attempts = 70000 };
	cr_expect_eq(xsluice_format(&x, buf, sizeof(buf)), -1);
	x.attempts = 1;
	cr_expect_eq(xsluice_format(&x, buf, 10), -1);
	cr_expect_eq(xsluice_format(&x, buf, sizeof(buf)), 13);
	cr_expect_str_eq(buf, "300.1.400.500");
	/* a long error is cut to XSLUICE_ERR_MAX, control octets become '?' */
	memset(x.last_error, '=', sizeof(x.last_error) - 1);
	x.last_error[sizeof(x.last_error) - 1] = '\0';
	x.last_error[0] = '\n';
	cr_assert_gt(xsluice_format(&x, buf, sizeof(buf)), 0);
	cr_assert_eq(xsluice_parse(buf, strlen(buf), &x), 0, "%s", buf);
	cr_expect_eq(strlen(x.last_error), XSLUICE_ERR_MAX);
	cr_expect_eq(x.last_error[0], '?');
	/* the MAIL parser: bad values 501, no value 501 */
	FAILS("MAIL FROM:<a@b.example> XSLUICE=300.1.400.200", "501 5.5.4 Bad parameter value");
	FAILS("MAIL FROM:<a@b.example> XSLUICE", "501 5.5.4 Bad parameter value");
	FAILS("MAIL FROM:<a@b.example> XSLUICE=1.1.1.1 XSLUICE=1.1.1.1",
	      "501 5.5.4 Bad parameter value");
	FAILS("RCPT TO:<a@b.example> XSLUICE=1.1.1.1", "555 5.5.4 Unsupported parameter");
#undef BAD
#undef GOOD
}
