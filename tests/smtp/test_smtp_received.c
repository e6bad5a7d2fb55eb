/*
 * test_smtp_received.c - the Received: header (RFC 5321 4.4, RFC 3848
 * protocol names) and the RFC 5322 date.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dataplane/smtp/smtp_received.h"

static char buf[SMTP_RECEIVED_MAX];

Test(received, date_format)
{
	char d[SMTP_DATE_MAX];
	cr_expect_gt(smtp_date_format(d, sizeof(d), 1795379165), 0);
	cr_expect_str_eq(d, "Sun, 22 Nov 2026 20:26:05 +0000");
	smtp_date_format(d, sizeof(d), 0);
	cr_expect_str_eq(d, "Thu, 1 Jan 1970 00:00:00 +0000");
	smtp_date_format(d, sizeof(d), 951782400);	/* leap day */
	cr_expect_str_eq(d, "Tue, 29 Feb 2000 00:00:00 +0000");
	cr_expect_eq(smtp_date_format(d, 10, 0), 0);
	smtp_date_format(d, sizeof(d), 4107542399ull);	/* 2100 is not a leap year */
	cr_expect_str_eq(d, "Sun, 28 Feb 2100 23:59:59 +0000");
	smtp_date_format(d, sizeof(d), 4107542400ull);
	cr_expect_str_eq(d, "Mon, 1 Mar 2100 00:00:00 +0000");
	/* agrees with gmtime_r for a day every ~11 days over 200 years */
	for (uint64_t t = 0; t < 6311433600ull; t += 999999) {
		char want[64];
		struct tm tm;
		time_t tt = (time_t)t;
		gmtime_r(&tt, &tm);
		strftime(want, sizeof(want), "%a, %-d %b %Y %H:%M:%S +0000", &tm);
		smtp_date_format(d, sizeof(d), t);
		cr_assert_str_eq(d, want, "t=%llu", (unsigned long long)t);
	}
}

Test(received, protocol_names)
{
	cr_expect_str_eq(smtp_received_proto(false, false, false, false), "SMTP");
	cr_expect_str_eq(smtp_received_proto(true, false, false, false), "ESMTP");
	cr_expect_str_eq(smtp_received_proto(true, true, false, false), "ESMTPS");
	cr_expect_str_eq(smtp_received_proto(true, false, true, false), "ESMTPA");
	cr_expect_str_eq(smtp_received_proto(true, true, true, false), "ESMTPSA");
	cr_expect_str_eq(smtp_received_proto(true, false, false, true), "UTF8SMTP");
	cr_expect_str_eq(smtp_received_proto(true, true, false, true), "UTF8SMTPS");
	cr_expect_str_eq(smtp_received_proto(true, true, true, true), "UTF8SMTPSA");
}

Test(received, plain_one_recipient)
{
	struct smtp_received_info ri = {
		.helo = "client.example", .rdns = "host.client.example", .ip = "192.0.2.1",
		.hostname = "mx.sluice.test", .id = "0ABCDEFGHJKMN", .rcpt = "bob@example.org",
		.esmtp = true, .when = 1795379165,
	};
	size_t n = smtp_received_format(buf, sizeof(buf), &ri);
	cr_expect_eq(n, strlen(buf));
	cr_expect_str_eq(buf,
		"Received: from client.example (host.client.example [192.0.2.1])\r\n"
		"\tby mx.sluice.test (Sluice) with ESMTP id 0ABCDEFGHJKMN\r\n"
		"\tfor <bob@example.org>; Sun, 22 Nov 2026 20:26:05 +0000\r\n");
}

Test(received, tls_unknown_rdns_many_recipients)
{
	struct smtp_received_info ri = {
		.helo = "evil(host)\\", .rdns = "", .ip = "203.0.113.7",
		.hostname = "mx.sluice.test", .id = NULL, .rcpt = NULL,
		.tls = "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
		.esmtp = true, .tls_active = true, .when = 1795379165,
	};
	smtp_received_format(buf, sizeof(buf), &ri);
	cr_expect_str_eq(buf,
		"Received: from evil_host__ (unknown [203.0.113.7])\r\n"
		"\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 _256/256 bits_)\r\n"
		"\tby mx.sluice.test (Sluice) with ESMTPS;\r\n"
		"\tSun, 22 Nov 2026 20:26:05 +0000\r\n");
}

Test(received, bounded_with_maximal_fields_and_too_small_buffer)
{
	char helo[256], rdns[256], host[256], rcpt[257];
	memset(helo, 'h', 255); helo[255] = '\0';
	memset(rdns, 'r', 255); rdns[255] = '\0';
	memset(host, 'm', 255); host[255] = '\0';
	memset(rcpt, 'x', 254); rcpt[254] = '\0';
	rcpt[10] = '@';
	struct smtp_received_info ri = {
		.helo = helo, .rdns = rdns, .ip = "255.255.255.255", .hostname = host,
		.id = "0123456789012345678901234567890123456789012345678901234567890123",
		.rcpt = rcpt, .tls = "TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)",
		.esmtp = true, .tls_active = true, .utf8 = true, .when = 4102444800ull,
	};
	size_t n = smtp_received_format(buf, sizeof(buf), &ri);
	cr_expect_gt(n, 0);
	cr_expect_lt(n, SMTP_RECEIVED_MAX);
	/* every line <= 998 octets, CRLF-terminated, continuation lines start with TAB */
	const char *p = buf;
	int line = 0;
	while (*p) {
		const char *e = strstr(p, "\r\n");
		cr_assert_not_null(e);
		cr_expect_leq(e - p, 998);
		if (line++ > 0)
			cr_expect_eq(*p, '\t');
		cr_expect_null(memchr(p, '\n', (size_t)(e - p)));
		p = e + 2;
	}
	cr_expect_eq(line, 4);
	cr_expect_not_null(strstr(buf, " with UTF8SMTPS id "));
	cr_expect_eq(smtp_received_format(buf, 100, &ri), 0);
}

Test(received, recipient_cut_at_256_octets)
{
	char rcpt[400];
	memset(rcpt, 'y', sizeof(rcpt) - 1);
	rcpt[sizeof(rcpt) - 1] = '\0';
	struct smtp_received_info ri = {
		.helo = "c", .rdns = "r", .ip = "192.0.2.1", .hostname = "mx",
		.rcpt = rcpt, .esmtp = true, .when = 0,
	};
	char want[SMTP_RECEIVED_MAX];
	int n = snprintf(want, sizeof(want),
			 "Received: from c (r [192.0.2.1])\r\n\tby mx (Sluice) with ESMTP\r\n"
			 "\tfor <%.256s>; Thu, 1 Jan 1970 00:00:00 +0000\r\n", rcpt);
	cr_assert_gt(n, 256);
	cr_expect_eq(smtp_received_format(buf, sizeof(buf), &ri), (size_t)n);
	cr_expect_str_eq(buf, want);
	/* one octet short of the whole header: nothing, never a cut header */
	cr_expect_eq(smtp_received_format(buf, (size_t)n, &ri), 0);
	cr_expect_eq(smtp_received_format(buf, (size_t)n + 1, &ri), (size_t)n);
}
