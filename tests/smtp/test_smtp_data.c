/*
 * test_smtp_data.c - DATA/BDAT framing: terminator, dot-unstuffing, chunk
 * splits anywhere, smuggling probes, bare CR/LF policies, line and size
 * limits, Received: counting.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/smtp/smtp_data.h"

static char body[1 << 16];
static size_t blen;
static int fail_after = -1;

static int sink(void *user, const void *d, size_t n)
{
	(void)user;
	if (fail_after >= 0 && blen + n > (size_t)fail_after)
		return -1;
	cr_assert_leq(blen + n, sizeof(body));
	memcpy(body + blen, d, n);
	blen += n;
	return 0;
}

static struct smtp_data d;

static void start(bool dot, enum smtp_bare_policy bare, uint64_t max_size, unsigned max_line)
{
	struct smtp_data_conf c = { .max_size = max_size, .max_line = max_line, .bare = bare };
	blen = 0;
	fail_after = -1;
	smtp_data_begin(&d, &c, dot, sink, NULL);
}

/* Feed s in chunks of `chunk` octets (0 = at once); returns octets consumed. */
static size_t feed(const char *s, size_t n, size_t chunk)
{
	size_t done = 0;
	if (chunk == 0)
		chunk = n ? n : 1;
	while (done < n && !d.done) {
		size_t k = n - done < chunk ? n - done : chunk;
		size_t c = smtp_data_feed(&d, (const uint8_t *)s + done, k);
		done += c;
		if (c < k)
			break;
	}
	return done;
}

#define FEEDS(s, chunk) feed(s, sizeof(s) - 1, chunk)

/* run a DATA stream in several splittings: same body, same consumed count */
static void expect_data(const char *in, size_t inlen, const char *want_body,
			size_t want_consumed, enum smtp_data_verdict want)
{
	static const size_t chunks[] = { 0, 1, 2, 3, 5, 7, 64 };
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		start(true, SMTP_BARE_REJECT, 0, 1000);
		size_t used = feed(in, inlen, chunks[i]);
		cr_expect_eq(used, want_consumed, "chunk %zu: consumed %zu want %zu",
			     chunks[i], used, want_consumed);
		cr_expect(d.done, "chunk %zu: not done", chunks[i]);
		cr_expect_eq(smtp_data_verdict(&d), want, "chunk %zu", chunks[i]);
		if (want == SMTP_DV_OK) {
			cr_expect_eq(blen, strlen(want_body), "chunk %zu: body %zu", chunks[i], blen);
			cr_expect(memcmp(body, want_body, blen) == 0, "chunk %zu body", chunks[i]);
			cr_expect_eq(d.size, blen);
		}
	}
}

Test(data, simple_message_and_trailing_input)
{
	const char in[] = "Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n";
	expect_data(in, sizeof(in) - 1, "Subject: x\r\n\r\nhello\r\n", sizeof(in) - 1 - 6,
		    SMTP_DV_OK);
}

Test(data, empty_message)
{
	const char in[] = ".\r\n";
	expect_data(in, 3, "", 3, SMTP_DV_OK);
}

Test(data, dot_unstuffing)
{
	const char in[] = "..leading dot\r\n...two\r\n.x\r\nmid.dle.\r\n..\r\n.\r\n";
	expect_data(in, sizeof(in) - 1, ".leading dot\r\n..two\r\nx\r\nmid.dle.\r\n.\r\n",
		    sizeof(in) - 1, SMTP_DV_OK);
}

Test(data, dot_cr_not_lf_is_content)
{
	/* ".\rX" at a line start: not the end; the CR is bare -> rejected */
	const char in[] = "a\r\n.\rX\r\n.\r\n";
	expect_data(in, sizeof(in) - 1, NULL, sizeof(in) - 1, SMTP_DV_BARE);
}

Test(data, smuggling_probes_never_end_the_message)
{
	static const char *const probes[] = {
		"a\n.\nMAIL FROM:<x@evil.example>\r\n",
		"a\n.\r\nMAIL FROM:<x@evil.example>\r\n",
		"a\r.\rMAIL FROM:<x@evil.example>\r\n",
		"a\r\n.\nMAIL FROM:<x@evil.example>\r\n",
		"a\r\n.\rMAIL FROM:<x@evil.example>\r\n",
		"a\r.\r\nMAIL FROM:<x@evil.example>\r\n",
		"a\n.\r\r\nMAIL FROM:<x@evil.example>\r\n",
		"a\r\r\n.\r\r\nMAIL FROM:<x@evil.example>\r\n",
	};
	for (size_t p = 0; p < sizeof(probes) / sizeof(probes[0]); p++) {
		for (size_t chunk = 0; chunk < 4; chunk++) {
			for (int pol = 0; pol < 2; pol++) {
				start(true, pol ? SMTP_BARE_NORMALIZE : SMTP_BARE_REJECT, 0, 1000);
				size_t n = strlen(probes[p]);
				cr_expect_eq(feed(probes[p], n, chunk), n, "probe %zu", p);
				cr_expect_not(d.done, "probe %zu ended the message", p);
				/* the real end still works afterwards */
				cr_expect_eq(FEEDS(".\r\n", 0), 3);
				cr_expect(d.done, "probe %zu: real end", p);
				if (pol == 0)
					cr_expect_eq(smtp_data_verdict(&d), SMTP_DV_BARE, "probe %zu", p);
				else
					cr_expect_eq(smtp_data_verdict(&d), SMTP_DV_OK, "probe %zu", p);
			}
		}
	}
}

Test(data, normalize_bare_lf_and_cr)
{
	start(true, SMTP_BARE_NORMALIZE, 0, 1000);
	FEEDS("a\nb\rc\r\n.\r\n", 1);
	cr_expect(d.done);
	cr_expect_eq(smtp_data_verdict(&d), SMTP_DV_OK);
	body[blen] = '\0';
	cr_expect_str_eq(body, "a\r\nb\r\nc\r\n");
	/* no bare CR or LF ever reaches the sink */
	start(true, SMTP_BARE_NORMALIZE, 0, 1000);
	FEEDS("\n\n\r\r\rx\n.\n\r\n.\r\n", 0);
	cr_expect(d.done);
	for (size_t i = 0; i < blen; i++) {
		if (body[i] == '\n')
			cr_expect(i > 0 && body[i - 1] == '\r', "bare LF at %zu", i);
		if (body[i] == '\r')
			cr_expect(i + 1 < blen && body[i + 1] == '\n', "bare CR at %zu", i);
	}
}

Test(data, crlf_split_across_chunks)
{
	start(true, SMTP_BARE_REJECT, 0, 1000);
	FEEDS("line one\r", 0);
	FEEDS("\nline two\r", 0);
	FEEDS("\n.", 0);
	cr_expect_not(d.done);
	FEEDS("\r", 0);
	cr_expect_not(d.done);
	cr_expect_eq(FEEDS("\nNEXT", 0), 1);
	cr_expect(d.done);
	cr_expect_eq(smtp_data_verdict(&d), SMTP_DV_OK);
	body[blen] = '\0';
	cr_expect_str_eq(body, "line one\r\nline two\r\n");
}

Test(data, line_length_limit)
{
	char in[3000];
	/* 998 + CRLF = 1000: fine */
	memset(in, 'x', 998);
	memcpy(in + 998, "\r\n.\r\n", 5);
	start(true, SMTP_BARE_REJECT, 0, 1000);
	feed(in, 1003, 0);
	cr_expect(d.done);
	cr_expect_eq(smtp_data_verdict(&d), SMTP_DV_OK);
	/* 999 + CRLF: too long, but consumed to the end */
	memset(in, 'x', 999);
	memcpy(in + 999, "\r\nmore\r\n.\r\n", 11);
	start(true, SMTP_BARE_REJECT, 0, 1000);
	cr_expect_eq(feed(in, 1010, 13), 1010);
	cr_expect(d.done);
	cr_expect_eq(smtp_data_verdict(&d), SMTP_DV_LINE);
	/* a stuffed dot does not count (RFC 5321 4.5.3.1.6): "..<998>" is
	 * 1001 octets on the wire, a 1000-octet line once unstuffed */
	in[0] = '.';
	in[1] = '.';
	memset(in + 2, 'x', 997);
	memcpy(in + 999, "\r\n.\r\n", 5);
	start(true, SMTP_BARE_REJECT, 0, 1000);
	feed(in, 1004, 0);
	cr_expect(d.done);
	cr_expect_eq(smtp_data_verdict(&d), SMTP_DV_OK);
	/* one more octet is one too many */
	in[0] = '.';
	memset(in + 1, 'x', 999);
	memcpy(in + 1000, "\r\n.\r\n", 5);
	start(true, SMTP_BARE_REJECT, 0, 1000);
	feed(in, 1005, 0);
	cr_expect_eq(smtp_data_verdict(&d), SMTP_DV_LINE);
}

/*
 * A long line ended by a bare LF under normalize: the break resets the line
 * before any CR could look at its length, so the text fast path's own check
 * is the only one that sees it (at any splitting of the input).
 */
Test(data, long_line_ended_by_bare_lf_under_normalize)
{
	static const size_t chunks[] = { 0, 1, 7, 64, 999 };
	char in[1300];
	memset(in, 'x', 1200);
	memcpy(in + 1200, "\nok\r\n.\r\n", 8);
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		start(true, SMTP_BARE_NORMALIZE, 0, 1000);
		cr_expect_eq(feed(in, 1208, chunks[i]), 1208, "chunk %zu", chunks[i]);
		cr_expect(d.done, "chunk %zu", chunks[i]);
		cr_expect_eq(smtp_data_verdict(&d), SMTP_DV_LINE, "chunk %zu", chunks[i]);
	}
	/* the same line at 998 octets is within the limit */
	memset(in, 'x', 998);
	memcpy(in + 998, "\nok\r\n.\r\n", 8);
	start(true, SMTP_BARE_NORMALIZE, 0, 1000);
	feed(in, 1006, 0);
	cr_expect(d.done);
	cr_expect_eq(smtp_data_verdict(&d), SMTP_DV_OK);
}

Test(data, size_limit_keeps_consuming)
{
	start(true, SMTP_BARE_REJECT, 10, 1000);
	const char in[] = "0123456789\r\nabc\r\n.\r\nQUIT";
	cr_expect_eq(FEEDS(in, 4), sizeof(in) - 1 - 4);
	cr_expect(d.done);
	cr_expect_eq(smtp_data_verdict(&d), SMTP_DV_SIZE);
	cr_expect_leq(blen, 10);
	cr_expect_eq(d.size, 17);
	/* exactly at the limit is fine */
	start(true, SMTP_BARE_REJECT, 5, 1000);
	FEEDS("abc\r\n.\r\n", 0);
	cr_expect_eq(smtp_data_verdict(&d), SMTP_DV_OK);
}

Test(data, sink_failure)
{
	start(true, SMTP_BARE_REJECT, 0, 1000);
	fail_after = 3;
	FEEDS("abcdef\r\n.\r\n", 0);
	cr_expect(d.done);
	cr_expect_eq(smtp_data_verdict(&d), SMTP_DV_SINK);
}

Test(data, received_headers_counted_in_header_section_only)
{
	start(true, SMTP_BARE_REJECT, 0, 1000);
	FEEDS("Received: from a\r\n\tby b\r\nRECEIVED: x\r\nreceived:y\r\n"
	      "X-Received: no\r\nReceived-SPF: no\r\n..Received: no\r\n"
	      "Subject: s\r\n\r\nReceived: body, not counted\r\n.\r\n", 3);
	cr_expect(d.done);
	cr_expect_eq(d.received, 3);
	/* ".Received:" is a stuffed header line: counted */
	start(true, SMTP_BARE_REJECT, 0, 1000);
	FEEDS(".Received: a\r\nReceived: b\r\n.\r\n", 1);
	cr_expect_eq(d.received, 2);
	/* BDAT: counted as well */
	start(false, SMTP_BARE_REJECT, 0, 1000);
	FEEDS("Received: a\r\nReceived: b\r\n\r\nReceived: c\r\n", 1);
	cr_expect_eq(d.received, 2);
}

Test(data, normalized_breaks_are_header_lines)
{
	/* stored as "X: a\r\nReceived: b\r\nReceived: c\r\n\r\nReceived: d\r\n" */
	start(true, SMTP_BARE_NORMALIZE, 0, 1000);
	FEEDS("X: a\nReceived: b\rReceived: c\r\n\nReceived: d\r\n.\r\n", 1);
	cr_expect(d.done);
	cr_expect_eq(d.received, 2);
	body[blen] = '\0';
	cr_expect_str_eq(body, "X: a\r\nReceived: b\r\nReceived: c\r\n\r\nReceived: d\r\n");
}

Test(data, bdat_mode_no_unstuffing_no_terminator)
{
	start(false, SMTP_BARE_REJECT, 0, 1000);
	const char in[] = "..dots stay\r\n.\r\nmore\r\n";
	cr_expect_eq(FEEDS(in, 0), sizeof(in) - 1);
	cr_expect_not(d.done);
	smtp_data_finish(&d);
	cr_expect_eq(smtp_data_verdict(&d), SMTP_DV_OK);
	cr_expect_eq(blen, sizeof(in) - 1);
	cr_expect(memcmp(body, in, blen) == 0);
	/* trailing CR at the end of the last chunk is bare */
	start(false, SMTP_BARE_REJECT, 0, 1000);
	FEEDS("abc\r", 0);
	smtp_data_finish(&d);
	cr_expect_eq(smtp_data_verdict(&d), SMTP_DV_BARE);
	/* but a CR that ends one chunk and the LF the next is fine */
	start(false, SMTP_BARE_REJECT, 0, 1000);
	FEEDS("abc\r", 0);
	FEEDS("\n", 0);
	smtp_data_finish(&d);
	cr_expect_eq(smtp_data_verdict(&d), SMTP_DV_OK);
	/* bare LF in BDAT content */
	start(false, SMTP_BARE_REJECT, 0, 1000);
	FEEDS("a\nb\r\n", 0);
	smtp_data_finish(&d);
	cr_expect_eq(smtp_data_verdict(&d), SMTP_DV_BARE);
}

Test(data, random_splits_match_whole)
{
	/* a message with every tricky construct, fed in random splits */
	const char in[] = "H: v\r\n\r\n..a\r\n.\rb\r\nc\nd\r\r\n..\r\n.x.\r\n\r\n.\r\nTAIL";
	char ref[256];
	size_t reflen, refused;
	start(true, SMTP_BARE_NORMALIZE, 0, 1000);
	refused = FEEDS(in, 0);
	reflen = blen;
	memcpy(ref, body, blen);
	srand(7);
	for (int round = 0; round < 500; round++) {
		start(true, SMTP_BARE_NORMALIZE, 0, 1000);
		size_t done = 0, n = sizeof(in) - 1;
		while (done < n && !d.done) {
			size_t k = 1 + (size_t)rand() % 6;
			if (k > n - done)
				k = n - done;
			done += smtp_data_feed(&d, (const uint8_t *)in + done, k);
		}
		cr_assert_eq(done, refused, "round %d", round);
		cr_assert_eq(blen, reflen, "round %d", round);
		cr_assert(memcmp(body, ref, blen) == 0, "round %d", round);
	}
}

/*
 * The scanner skips a line's text in one step (memchr to the next CR or
 * LF). Fed one octet at a time it cannot skip, so random messages fed
 * whole and octet by octet must agree on everything: body, consumed count,
 * verdict, line-limit hits, Received: count, sizes (and the body, when the
 * message is accepted: a refused one stops being stored). The alphabet is made
 * of the octets that change state; lines run up to past the limit.
 */
static const char *const pieces[] = {
	"a", "bcdefgh", "\r", "\n", "\r\n", ".", "Received: x", "R", ":",
	"\r\n\r\n", "0123456789012345678901234567890123456789",
};

static size_t random_message(char *m, size_t cap)
{
	size_t n = 0;
	while (n < cap - 64) {
		const char *s = pieces[(size_t)rand() % (sizeof(pieces) / sizeof(pieces[0]))];
		size_t k = strlen(s);
		memcpy(m + n, s, k);
		n += k;
		if (rand() % 97 == 0)
			break;
	}
	memcpy(m + n, "\r\n.\r\n", 5);
	return n + 5;
}

struct outcome {
	size_t used, blen;
	enum smtp_data_verdict v;
	uint32_t received;
	uint64_t size, raw;
	bool line_long, bare_seen;
	char body[4096];
};

static void run_one(const char *m, size_t n, size_t chunk, bool dot,
		    enum smtp_bare_policy bare, struct outcome *o)
{
	start(dot, bare, 0, 60);
	o->used = feed(m, n, chunk);
	if (!dot)
		smtp_data_finish(&d);
	o->v = smtp_data_verdict(&d);
	o->received = d.received;
	o->size = d.size;
	o->raw = d.raw;
	o->line_long = d.line_long;
	o->bare_seen = d.bare_seen;
	o->blen = blen;
	memcpy(o->body, body, blen < sizeof(o->body) ? blen : sizeof(o->body));
}

Test(data, text_fast_path_matches_octet_by_octet)
{
	static char m[4096];
	static struct outcome whole, octets;
	srand(11);
	for (int round = 0; round < 3000; round++) {
		size_t n = random_message(m, sizeof(m));
		bool dot = round % 3 != 0;
		enum smtp_bare_policy bare = round % 2 ? SMTP_BARE_NORMALIZE : SMTP_BARE_REJECT;
		run_one(m, n, 0, dot, bare, &whole);
		run_one(m, n, 1, dot, bare, &octets);
		cr_assert_eq(whole.used, octets.used, "round %d", round);
		cr_assert_eq(whole.v, octets.v, "round %d", round);
		cr_assert_eq(whole.received, octets.received, "round %d", round);
		cr_assert_eq(whole.size, octets.size, "round %d", round);
		cr_assert_eq(whole.raw, octets.raw, "round %d", round);
		cr_assert_eq(whole.line_long, octets.line_long, "round %d", round);
		cr_assert_eq(whole.bare_seen, octets.bare_seen, "round %d", round);
		if (whole.v != SMTP_DV_OK)
			continue;	/* a refused message's stored bytes are moot */
		cr_assert_eq(whole.blen, octets.blen, "round %d", round);
		cr_assert(memcmp(whole.body, octets.body, whole.blen < 4096 ? whole.blen : 4096) == 0,
			  "round %d", round);
	}
}
