/*
 * fuzz_smtp_session.c - libFuzzer harness: arbitrary bytes into an SMTP
 * session engine (commands, DATA, BDAT, STARTTLS, queue answers).
 *
 * Input layout: [flags][split][bytes...]. flags bit 0: TLS (and AUTH,
 * answered good/bad/temp by the name's length) available; bit 7: a
 * submission session (MAIL needs TLS and AUTH);
 * bit 1: bare CR/LF normalized (else rejected); bit 2: small limits (size
 * 64, 2 recipients, 3 errors, hop limit 2); bits 3-4: how the queue answers
 * (ok / 451 / 452); bit 5: the client is inside mynetworks. The bytes are
 * fed three ways - at once, as two input calls cut at split * len / 255,
 * and (for short inputs) one byte per call - each call resumed after events
 * until everything is consumed. All three must produce the same replies and
 * the same message bodies: the engine must not depend on how TCP segments
 * the stream.
 *
 * Invariants checked (abort on violation):
 *  - the engine never stalls: with output drained and no event pending,
 *    it consumes input;
 *  - output per drain <= SMTP_OUT_MAX; every reply line is 3 digits, then
 *    SP or '-', CRLF-terminated, <= 512 octets incl. CRLF, class 2-5;
 *  - under the normalize policy no complete message body holds a bare CR
 *    or LF; a message body is never larger than the size limit;
 *  - smtp_session_message() is non-NULL exactly while the event is MESSAGE;
 *  - every recipient handed to cb.rcpt is a non-empty address and an ORCPT
 *    within SMTP_ORCPT_MAX, and a message has exactly the recipients kept
 *    since the last cb.rcpt_reset (bit 6 of flags: room for only 3, so the
 *    452 4.3.1 path runs too).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/smtp/smtp_server.h"

static struct smtp_session sess;
static struct smtp_conf conf;
static struct smtp_policy pol;
static struct smtp_stats stats;
static uint8_t body[1 << 16];
static size_t body_len;
static bool body_overflow;
static uint8_t flags;
static unsigned nrcpt_kept;	/* through cb.rcpt since the last reset */
static uint64_t rcpt_hash;

/* what one run produced, to compare the runs */
struct result {
	size_t out_len;
	uint64_t out_hash, body_hash;
	unsigned messages;
};
static struct result cur;

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

#define CHECK(x) do { if (!(x)) abort(); } while (0)

static int sink(void *user, const void *d, size_t n)
{
	(void)user;
	if (n > sizeof(body) - body_len) {
		body_overflow = true;
		return 0;
	}
	memcpy(body + body_len, d, n);
	body_len += n;
	return 0;
}

static void msg_begin(void *user)
{
	(void)user;
	body_len = 0;
	body_overflow = false;
}

static int rcpt(void *user, const struct smtp_rcpt_view *v)
{
	(void)user;
	CHECK(v->addr != NULL && v->addr[0] != '\0' && strlen(v->addr) <= SMTP_PATH_MAX);
	CHECK(v->orcpt == NULL || (v->orcpt[0] != '\0' && strlen(v->orcpt) <= SMTP_ORCPT_MAX));
	CHECK(nrcpt_kept < SMTP_RCPT_HARD_MAX);
	if ((flags & 64) && nrcpt_kept >= 3)
		return -1;
	nrcpt_kept++;
	rcpt_hash = fnv(rcpt_hash, v->addr, strlen(v->addr) + 1);
	if (v->orcpt)
		rcpt_hash = fnv(rcpt_hash, v->orcpt, strlen(v->orcpt));
	rcpt_hash = fnv(rcpt_hash, &v->notify, 1);
	return 0;
}

static void rcpt_reset(void *user)
{
	(void)user;
	CHECK(nrcpt_kept > 0);	/* only a transaction that had some */
	nrcpt_kept = 0;
}

static uint64_t now(void *user)
{
	(void)user;
	return 1795379165;
}

static void check_output(void)
{
	const char *p;
	size_t n = smtp_session_peek_output(&sess, &p);
	CHECK(n <= SMTP_OUT_MAX);
	size_t i = 0;
	while (i < n) {
		const char *lf = memchr(p + i, '\n', n - i);
		CHECK(lf != NULL);
		size_t len = (size_t)(lf - (p + i)) + 1;
		CHECK(len >= 6 && len <= 512);
		const char *l = p + i;
		CHECK(l[0] >= '2' && l[0] <= '5');
		CHECK(l[1] >= '0' && l[1] <= '9' && l[2] >= '0' && l[2] <= '9');
		CHECK(l[3] == ' ' || l[3] == '-');
		CHECK(l[len - 2] == '\r');
		for (size_t k = 0; k < len - 2; k++)
			CHECK(l[k] != '\r' && l[k] != '\n');
		i += len;
	}
	cur.out_len += n;
	cur.out_hash = fnv(cur.out_hash, p, n);
	smtp_session_consume_output(&sess, n);
}

static void check_message(void)
{
	const struct smtp_message *m = smtp_session_message(&sess);
	CHECK(m != NULL);
	CHECK(m->nrcpt >= 1);
	cur.messages++;
	cur.body_hash = fnv(cur.body_hash, body, body_len);
	cur.body_hash = fnv(cur.body_hash, m->received, m->received_len);
	CHECK(m->received_len > 0 && m->received_len == strlen(m->received));
	if (conf.max_size)
		CHECK(m->size <= conf.max_size);
	if (!body_overflow) {
		CHECK(m->size == body_len);
		if (conf.bare == SMTP_BARE_NORMALIZE)
			for (size_t k = 0; k < body_len; k++) {
				if (body[k] == '\n')
					CHECK(k > 0 && body[k - 1] == '\r');
				if (body[k] == '\r')
					CHECK(k + 1 < body_len && body[k + 1] == '\n');
			}
	}
	CHECK(m->nrcpt == nrcpt_kept);
	CHECK(m->rcpt1[0] != '\0');
	cur.body_hash = fnv(cur.body_hash, &rcpt_hash, sizeof(rcpt_hash));
}

/* Feed one piece completely, acting on events. Returns false once closed. */
static bool feed(const uint8_t *d, size_t n)
{
	size_t done = 0;
	for (;;) {
		size_t c = smtp_session_input(&sess, d + done, n - done);
		CHECK(c <= n - done);
		done += c;
		check_output();
		enum smtp_event ev = smtp_session_event(&sess);
		CHECK((ev == SMTP_EV_MESSAGE) == (smtp_session_message(&sess) != NULL));
		switch (ev) {
		case SMTP_EV_CLOSE:
			return false;
		case SMTP_EV_MESSAGE: {
			check_message();
			static const enum smtp_queue_status st[4] = {
				SMTP_QUEUED_OK, SMTP_QUEUED_TEMP, SMTP_QUEUED_FULL, SMTP_QUEUED_OK,
			};
			CHECK(smtp_session_queued(&sess, st[(flags >> 3) & 3], "0QUEUEID") == 0);
			check_output();
			break;
		}
		case SMTP_EV_STARTTLS:
			CHECK(smtp_session_tls_started(&sess, "TLSv1.3 with cipher X") == 0);
			break;
		case SMTP_EV_AUTH: {	/* AUTH PLAIN/LOGIN: answered by the name's length */
			const char *name, *pass;
			size_t pl, nl;
			CHECK(smtp_session_auth_request(&sess, &name, &pass, &pl) == 0);
			nl = strlen(name);
			CHECK(nl >= 1 && nl <= SMTP_AUTH_NAME_MAX && pl <= SMTP_AUTH_PASS_MAX);
			CHECK(smtp_session_input(&sess, "NOOP\r\n", 6) == 0);	/* waits */
			CHECK(smtp_session_auth_done(&sess, (int)(nl % 3) - 1) == 0);
			CHECK(sess.auth_pass[0] == '\0');
			check_output();
			break;
		}
		default:
			if (done == n)
				return true;
			CHECK(c > 0);	/* no stall */
			break;
		}
		if (done == n && smtp_session_event(&sess) == SMTP_EV_NONE)
			return true;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One run over the input, fed in pieces: cut (0 = none), then `step`
 * octets per call (0 = the rest at once). */
static struct result run(const uint8_t *p, size_t n, size_t cut, size_t step)
{
	memset(&cur, 0, sizeof(cur));
	cur.out_hash = cur.body_hash = 0xcbf29ce484222325ull;
	struct smtp_client cl = { .ip = (flags & 32) ? 0xC6120009u : 0xCB007107u };
	struct smtp_session_cb cb = { .sink = sink, .msg_begin = msg_begin, .rcpt = rcpt,
				      .rcpt_reset = rcpt_reset, .now = now };
	body_len = 0;
	nrcpt_kept = 0;
	rcpt_hash = 0xcbf29ce484222325ull;
	smtp_session_init(&sess, &conf, &stats, &cl, &cb);
	check_output();
	bool open = feed(p, cut);
	for (size_t off = cut; open && off < n;) {
		size_t k = step == 0 || step > n - off ? n - off : step;
		open = feed(p + off, k);
		off += k;
	}
	smtp_session_timeout(&sess);
	check_output();
	return cur;
}

static bool same(const struct result *a, const struct result *b)
{
	return a->out_len == b->out_len && a->out_hash == b->out_hash &&
	       a->body_hash == b->body_hash && a->messages == b->messages;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	flags = data[0];
	size_t n = size - 2, cut = (size_t)data[1] * n / 255;
	const uint8_t *p = data + 2;

	smtp_conf_default(&conf);
	memcpy(conf.hostname, "mx.fuzz.test", 13);
	conf.tls_available = flags & 1;
	conf.auth_available = flags & 1;	/* AUTH once TLS is up */
	conf.submission = (flags & 128) != 0;
	conf.bare = (flags & 2) ? SMTP_BARE_NORMALIZE : SMTP_BARE_REJECT;
	if (flags & 4) {
		conf.max_size = 64;
		conf.max_rcpt = 2;
		conf.max_errors = 3;
		conf.hop_limit = 2;
	}
	if (pol.nnets == 0 && smtp_policy_init(&pol, "198.18.0.0/24", "example.com .example.net") != 0)
		abort();
	conf.policy = &pol;

	struct result whole = run(p, n, 0, 0);
	struct result split = run(p, n, cut, 0);
	CHECK(same(&whole, &split));
	if (n <= 1024) {
		struct result bytes = run(p, n, 0, 1);
		CHECK(same(&whole, &bytes));
	}
	return 0;
}
