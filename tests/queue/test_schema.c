/*
 * test_schema.c - the byte layout of the spool: records round-trip, damaged
 * records are refused, records of the first layout (version 1) are still
 * read, and so are those of the second (version 2, before the AUTH identity
 * and the hold reason) and the third (version 3, before the history a
 * transferred message brings from another box), keys sort the way the indexes need, queue IDs print sortably and
 * parse back, domains hash case-insensitively.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "queue/queue.h"
#include "queue/queue_id.h"
#include "queue/queue_schema.h"

static void sample(struct qrec *r, struct qrec_rcpt *rc)
{
	memset(r, 0, sizeof(*r));
	memset(rc, 0, 3 * sizeof(*rc));
	r->flags = QF_HELD;
	r->ret = 2;
	r->nrcpt = 3;
	r->token = 0xdeadbeef;
	r->hist_seq = 7;
	r->arrival = 1700000000;
	r->expiry = 1700432000;
	r->size = 123456789012ull;
	r->due = 1700000300;
	r->claim_until = 1700000900;
	r->sender = "";
	r->envid = "QQ314159";
	r->body_flags = QUEUE_BODY_8BITMIME | QUEUE_BODY_SMTPUTF8;
	r->client_name = "mx.example.com";
	r->client_addr = "2001:db8::1";
	r->helo = "helo.example.com";
	r->held_at = 1700000050;
	r->held_s = 3600;
	r->auth_method = "PLAIN";
	r->auth_user = "alice@isp.example";
	r->hold_reason = "daily quota: user alice@isp.example, 101 of 100 messages";
	r->prior_attempts = 70000;	/* more than a recipient's 16 bits */
	r->prior_error = "451 4.7.1 greylisted, try again in 5 minutes";
	r->rcpt = rc;
	rc[0] = (struct qrec_rcpt){ "a@x.example", "", "", 0, 0, 0, 0, "" };
	rc[1] = (struct qrec_rcpt){ "b@y.example", "rfc822;b@y.example", "421 4.7.0 try later",
				    1, 6, 3, 1700000200, "4.7.0" };
	rc[2] = (struct qrec_rcpt){ "c@X.example", "", "250 2.0.0 ok", 2, 1, 1, 1700000100,
				    "2.0.0" };
}

static uint8_t *put_str(uint8_t *p, const char *s)
{
	size_t n = strlen(s);
	p[0] = (uint8_t)(n >> 8);
	p[1] = (uint8_t)n;
	memcpy(p + 2, s, n);
	p[2 + n] = 0;
	return p + 3 + n;
}

/* The first layout (version 1), written as the queue wrote it before there
 * were held times and stored statuses: 62 fixed octets, three strings per
 * recipient. */
static size_t encode_v1(const struct qrec *r, uint8_t *buf)
{
	uint8_t *p = buf;

	p[0] = 1;
	p[1] = r->flags;
	p[2] = r->ret;
	p[3] = r->body_flags;
	p[4] = (uint8_t)(r->nrcpt >> 8);
	p[5] = (uint8_t)r->nrcpt;
	be32_put(p + 6, r->token);
	be32_put(p + 10, r->hist_seq);
	be64_put(p + 14, r->arrival);
	be64_put(p + 22, r->expiry);
	be64_put(p + 30, r->size);
	be64_put(p + 38, r->due);
	be64_put(p + 46, r->claim_until);
	be64_put(p + 54, r->shards);
	p += 62;
	p = put_str(p, r->sender);
	p = put_str(p, r->envid);
	p = put_str(p, r->client_name);
	p = put_str(p, r->client_addr);
	p = put_str(p, r->helo);
	for (unsigned i = 0; i < r->nrcpt; i++) {
		p[0] = r->rcpt[i].state;
		p[1] = r->rcpt[i].notify;
		p[2] = (uint8_t)(r->rcpt[i].attempts >> 8);
		p[3] = (uint8_t)r->rcpt[i].attempts;
		be64_put(p + 4, r->rcpt[i].last_attempt);
		p += 12;
		p = put_str(p, r->rcpt[i].addr);
		p = put_str(p, r->rcpt[i].orcpt);
		p = put_str(p, r->rcpt[i].reply);
	}
	return (size_t)(p - buf);
}

/* The second layout (version 2), written before the AUTH identity and the
 * hold reason: 78 fixed octets, five envelope strings, four per recipient. */
static size_t encode_v2(const struct qrec *r, uint8_t *buf)
{
	uint8_t *p = buf;

	p[0] = 2;
	p[1] = r->flags;
	p[2] = r->ret;
	p[3] = r->body_flags;
	p[4] = (uint8_t)(r->nrcpt >> 8);
	p[5] = (uint8_t)r->nrcpt;
	be32_put(p + 6, r->token);
	be32_put(p + 10, r->hist_seq);
	be64_put(p + 14, r->arrival);
	be64_put(p + 22, r->expiry);
	be64_put(p + 30, r->size);
	be64_put(p + 38, r->due);
	be64_put(p + 46, r->claim_until);
	be64_put(p + 54, r->shards);
	be64_put(p + 62, r->held_at);
	be64_put(p + 70, r->held_s);
	p += 78;
	p = put_str(p, r->sender);
	p = put_str(p, r->envid);
	p = put_str(p, r->client_name);
	p = put_str(p, r->client_addr);
	p = put_str(p, r->helo);
	for (unsigned i = 0; i < r->nrcpt; i++) {
		p[0] = r->rcpt[i].state;
		p[1] = r->rcpt[i].notify;
		p[2] = (uint8_t)(r->rcpt[i].attempts >> 8);
		p[3] = (uint8_t)r->rcpt[i].attempts;
		be64_put(p + 4, r->rcpt[i].last_attempt);
		p += 12;
		p = put_str(p, r->rcpt[i].addr);
		p = put_str(p, r->rcpt[i].orcpt);
		p = put_str(p, r->rcpt[i].reply);
		p = put_str(p, r->rcpt[i].dsn);
	}
	return (size_t)(p - buf);
}

/* The third layout (version 3), written before the history of a transferred
 * message: version 2 plus three envelope strings (AUTH identity, hold reason). */
static size_t encode_v3(const struct qrec *r, uint8_t *buf)
{
	uint8_t *p = buf, tmp[1024];
	size_t len = encode_v2(r, tmp), head = 78;

	/* the five envelope strings of version 2 */
	for (int i = 0; i < 5; i++)
		head += 3 + ((size_t)tmp[head] << 8 | tmp[head + 1]);
	memcpy(p, tmp, head);
	p[0] = 3;
	p += head;
	p = put_str(p, r->auth_method);
	p = put_str(p, r->auth_user);
	p = put_str(p, r->hold_reason);
	memcpy(p, tmp + head, len - head);	/* the recipients as in version 2 */
	return (size_t)(p - buf) + len - head;
}

Test(schema, record_roundtrip)
{
	struct qrec r, d;
	struct qrec_rcpt rc[3], drc[3];
	uint8_t buf[1024];
	size_t len;

	sample(&r, rc);
	len = qrec_encode(&r, buf, sizeof(buf));
	cr_assert_eq(len, qrec_size(&r));
	cr_assert_eq(qrec_decode(&d, buf, len, drc, 3), 0);
	cr_assert_eq(d.flags, QF_HELD);
	cr_assert_eq(d.ret, 2);
	cr_assert_eq(d.body_flags, QUEUE_BODY_8BITMIME | QUEUE_BODY_SMTPUTF8);
	cr_assert_eq(d.nrcpt, 3);
	cr_assert_eq(d.token, 0xdeadbeef);
	cr_assert_eq(d.hist_seq, 7);
	cr_assert_eq(d.arrival, 1700000000);
	cr_assert_eq(d.expiry, 1700432000);
	cr_assert_eq(d.size, 123456789012ull);
	cr_assert_eq(d.due, 1700000300);
	cr_assert_eq(d.claim_until, 1700000900);
	cr_assert_str_eq(d.sender, "");
	cr_assert_str_eq(d.envid, "QQ314159");
	cr_assert_str_eq(d.client_addr, "2001:db8::1");
	cr_assert_str_eq(d.helo, "helo.example.com");
	for (int i = 0; i < 3; i++) {
		cr_assert_str_eq(d.rcpt[i].addr, rc[i].addr);
		cr_assert_str_eq(d.rcpt[i].orcpt, rc[i].orcpt);
		cr_assert_str_eq(d.rcpt[i].reply, rc[i].reply);
		cr_assert_eq(d.rcpt[i].state, rc[i].state);
		cr_assert_eq(d.rcpt[i].notify, rc[i].notify);
		cr_assert_eq(d.rcpt[i].attempts, rc[i].attempts);
		cr_assert_eq(d.rcpt[i].last_attempt, rc[i].last_attempt);
		cr_assert_str_eq(d.rcpt[i].dsn, rc[i].dsn);
	}
	cr_assert_eq(d.held_at, 1700000050);
	cr_assert_eq(d.held_s, 3600);
	cr_assert_str_eq(d.auth_method, "PLAIN");
	cr_assert_str_eq(d.auth_user, "alice@isp.example");
	cr_assert_str_eq(d.hold_reason, "daily quota: user alice@isp.example, 101 of 100 messages");
	cr_assert_eq(d.prior_attempts, 70000);
	cr_assert_str_eq(d.prior_error, "451 4.7.1 greylisted, try again in 5 minutes");
	/* byte-identical when re-encoded */
	uint8_t buf2[1024];
	cr_assert_eq(qrec_encode(&d, buf2, sizeof(buf2)), len);
	cr_assert_eq(memcmp(buf, buf2, len), 0);
	/* integers are big-endian at fixed offsets */
	cr_assert_eq(buf[0], QREC_VERSION);
	cr_assert_eq(be64_get(buf + 14), 1700000000);
}

Test(schema, record_rejects_damage)
{
	struct qrec r, d;
	struct qrec_rcpt rc[3], drc[3];
	uint8_t buf[1024];
	size_t len;

	sample(&r, rc);
	len = qrec_encode(&r, buf, sizeof(buf));
	cr_assert_eq(qrec_encode(&r, buf, len - 1), 0, "encode must respect cap");
	for (size_t cut = 0; cut < len; cut++)
		cr_assert_neq(qrec_decode(&d, buf, cut, drc, 3), 0, "truncated at %zu", cut);
	cr_assert_neq(qrec_decode(&d, buf, len, drc, 2), 0, "more recipients than room");
	buf[0] = 99;
	cr_assert_neq(qrec_decode(&d, buf, len, drc, 3), 0, "unknown version");
	buf[0] = QREC_VERSION;
	/* break a NUL terminator: the sender's (first string, empty) */
	buf[78 + 2] = 'x';
	cr_assert_neq(qrec_decode(&d, buf, len, drc, 3), 0, "missing NUL");
}

Test(schema, version_1_records_are_still_read)
{
	struct qrec r, d;
	struct qrec_rcpt rc[3], drc[3];
	uint8_t buf[1024], buf2[1024];
	size_t len;

	sample(&r, rc);
	len = encode_v1(&r, buf);
	cr_assert_eq(qrec_decode(&d, buf, len, drc, 3), 0, "a version 1 record decodes");
	cr_assert_eq(d.flags, QF_HELD);
	cr_assert_eq(d.token, 0xdeadbeef);
	cr_assert_eq(d.arrival, 1700000000);
	cr_assert_eq(d.expiry, 1700432000);
	cr_assert_eq(d.claim_until, 1700000900);
	cr_assert_str_eq(d.helo, "helo.example.com");
	cr_assert_eq(d.held_at, 0, "no held time in version 1");
	cr_assert_eq(d.held_s, 0);
	for (int i = 0; i < 3; i++) {
		cr_assert_str_eq(d.rcpt[i].addr, rc[i].addr);
		cr_assert_str_eq(d.rcpt[i].reply, rc[i].reply);
		cr_assert_eq(d.rcpt[i].state, rc[i].state);
		cr_assert_eq(d.rcpt[i].last_attempt, rc[i].last_attempt);
		cr_assert_str_eq(d.rcpt[i].dsn, "", "no stored status in version 1");
	}
	for (size_t cut = 0; cut < len; cut++)
		cr_assert_neq(qrec_decode(&d, buf, cut, drc, 3), 0, "v1 truncated at %zu", cut);
	cr_assert_str_eq(d.auth_user, "", "no AUTH identity in version 1");
	/* written back as the version of today */
	cr_assert_eq(qrec_decode(&d, buf, len, drc, 3), 0);
	size_t len2 = qrec_encode(&d, buf2, sizeof(buf2));
	cr_assert_gt(len2, len);
	cr_assert_eq(buf2[0], QREC_VERSION);
	cr_assert_eq(qrec_decode(&r, buf2, len2, rc, 3), 0);
	cr_assert_eq(r.expiry, 1700432000);
	cr_assert_str_eq(r.rcpt[1].reply, "421 4.7.0 try later");
}

Test(schema, due_keys_sort_by_time_then_id)
{
	uint64_t times[] = { 5, 1700000000, 255, 256, 1ull << 40, 0, 65535, 65536 };
	uint8_t keys[8][QK_DUE_LEN];
	for (int i = 0; i < 8; i++)
		qk_due(keys[i], times[i], 1000 - i);
	for (int i = 0; i < 8; i++)
		for (int j = 0; j < 8; j++) {
			int c = memcmp(keys[i], keys[j], QK_DUE_LEN);
			if (times[i] < times[j])
				cr_assert_lt(c, 0, "%llu vs %llu", (unsigned long long)times[i],
					     (unsigned long long)times[j]);
		}
	uint8_t a[QK_DUE_LEN], b[QK_DUE_LEN];
	qk_due(a, 100, 1);
	qk_due(b, 100, 2);
	cr_assert_lt(memcmp(a, b, QK_DUE_LEN), 0);
	uint64_t w, id;
	qk_due_parse(b, &w, &id);
	cr_assert_eq(w, 100);
	cr_assert_eq(id, 2);
}

Test(schema, domain_keys)
{
	uint8_t k1[QK_DOM_MAX], k2[QK_DOM_MAX], p[QK_DOM_MAX];
	size_t l1 = qk_dom(k1, "Example.COM", 11, 5);
	size_t l2 = qk_dom(k2, "example.com", 11, 6);
	size_t pl = qk_dom_prefix(p, "EXAMPLE.com", 11);
	cr_assert_eq(l1, 11 + 1 + 8);
	cr_assert_eq(l2, l1);
	cr_assert_eq(memcmp(k1, k2, 12), 0, "domains are lower-cased in keys");
	cr_assert_lt(memcmp(k1, k2, l1), 0);
	cr_assert_eq(pl, 12);
	cr_assert_eq(memcmp(p, k1, pl), 0);
	/* "a.com" entries must not mix with "a.com.evil" ones: the NUL ends the domain */
	uint8_t k3[QK_DOM_MAX];
	qk_dom(k3, "example.com.evil", 16, 1);
	cr_assert_neq(memcmp(p, k3, pl), 0);
	/* long domains are clipped, never overflow */
	char longd[400];
	memset(longd, 'a', sizeof(longd));
	cr_assert_eq(qk_dom(k1, longd, sizeof(longd), 1), 255 + 1 + 8);
	uint8_t s[QK_SUM_MAX];
	size_t sl = qk_sum(s, "x.org", 5, 0x01020304);
	cr_assert_eq(sl, 10);
	cr_assert_eq(be32_get(s + 6), 0x01020304);
}

Test(schema, history_and_summary_values)
{
	struct qhist h = { 1700000000, 3, 2, "550 5.1.1 no such user" }, d;
	uint8_t buf[600];
	size_t len = qhist_encode(&h, buf, sizeof(buf));
	cr_assert_gt(len, 0);
	cr_assert_eq(qhist_decode(&d, buf, len), 0);
	cr_assert_eq(d.time, h.time);
	cr_assert_eq(d.rcpt, 3);
	cr_assert_eq(d.state, 2);
	cr_assert_str_eq(d.reply, h.reply);
	cr_assert_neq(qhist_decode(&d, buf, len - 1), 0);

	struct qsum s = { 1, 70000, 3 }, t;
	uint8_t v[QSUM_LEN];
	qsum_encode(&s, v);
	qsum_decode(&t, v);
	cr_assert(t.active == 1 && t.deferred == 70000 && t.held == 3);
}

Test(schema, addr_domain_and_hash)
{
	size_t l;
	const char *d = q_addr_domain("user@Sub.Example.org", &l);
	cr_assert_eq(l, 15);
	cr_assert_eq(strncmp(d, "Sub.Example.org", l), 0);
	d = q_addr_domain("\"odd@local\"@example.net", &l);
	cr_assert_eq(strncmp(d, "example.net", l), 0);
	d = q_addr_domain("postmaster", &l);
	cr_assert_eq(l, 0);
	cr_assert_eq(q_domain_hash("EXAMPLE.org", 11), q_domain_hash("example.ORG", 11));
	cr_assert_neq(q_domain_hash("example.org", 11), q_domain_hash("example.net", 11));
	/* one trailing dot (the root) is the same domain */
	cr_assert_eq(q_domain_hash("Example.ORG.", 12), q_domain_hash("example.org", 11));
	uint8_t a[QK_DOM_MAX], b[QK_DOM_MAX];
	size_t al = qk_dom(a, "EXAMPLE.org.", 12, 77), bl = qk_dom(b, "example.org", 11, 77);
	cr_assert_eq(al, bl, "dom keys of both spellings have one length");
	cr_assert_eq(memcmp(a, b, al), 0, "and the same bytes");
	al = qk_sum(a, "example.ORG.", 12, 5);
	bl = qk_sum(b, "Example.org", 11, 5);
	cr_assert(al == bl && memcmp(a, b, al) == 0, "sum keys too");
}

Test(schema, queue_id_format_parse_order)
{
	char a[QUEUE_ID_STR], b[QUEUE_ID_STR];
	uint64_t ids[] = { 0, 1, 31, 32, 1700000000123456ull, 1700000000123457ull,
			   UINT64_MAX - 1, UINT64_MAX };
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		uint64_t back;
		queue_id_format(ids[i], a);
		cr_assert_eq(strlen(a), QUEUE_ID_STR - 1);
		for (size_t j = 0; a[j]; j++)
			cr_assert(strchr("0123456789ABCDEFGHJKMNPQRSTVWXYZ", a[j]), "printable base32");
		cr_assert_eq(queue_id_parse(a, &back), 0);
		cr_assert_eq(back, ids[i]);
		if (i > 0) {
			queue_id_format(ids[i - 1], b);
			cr_assert_lt(strcmp(b, a), 0, "string order is ID order");
		}
	}
	uint64_t x;
	cr_assert_neq(queue_id_parse("", &x), 0);
	cr_assert_neq(queue_id_parse("0000000000000U", &x), 0, "too long");
	cr_assert_neq(queue_id_parse("000000000000U", &x), 0, "U is not Crockford");
	cr_assert_neq(queue_id_parse("G000000000000", &x), 0, "65th bit");
	cr_assert_eq(queue_id_parse("0000000000olI", &x), 0, "o/l/I read as 0/1/1");
	cr_assert_eq(x, 32 + 1);
	/* start value after open: above the clock and above the reservation */
	cr_assert_eq(qid_first(100, 50), 101);
	cr_assert_eq(qid_first(100, 500), 500);
}

Test(schema, version_2_records_are_still_read)
{
	struct qrec r, d;
	struct qrec_rcpt rc[3], drc[3];
	uint8_t buf[1024], buf2[1024];
	size_t len, len2;

	sample(&r, rc);
	len = encode_v2(&r, buf);
	cr_assert_eq(qrec_decode(&d, buf, len, drc, 3), 0, "a version 2 record decodes");
	cr_assert_eq(d.flags, QF_HELD);
	cr_assert_eq(d.held_at, 1700000050);
	cr_assert_eq(d.held_s, 3600);
	cr_assert_str_eq(d.helo, "helo.example.com");
	cr_assert_str_eq(d.auth_method, "", "no AUTH identity in version 2");
	cr_assert_str_eq(d.auth_user, "");
	cr_assert_str_eq(d.hold_reason, "", "no hold reason in version 2");
	for (int i = 0; i < 3; i++) {
		cr_assert_str_eq(d.rcpt[i].addr, rc[i].addr);
		cr_assert_str_eq(d.rcpt[i].dsn, rc[i].dsn);
	}
	for (size_t cut = 0; cut < len; cut++)
		cr_assert_neq(qrec_decode(&d, buf, cut, drc, 3), 0, "v2 truncated at %zu", cut);
	/* written back as version 3, with an identity now */
	cr_assert_eq(qrec_decode(&d, buf, len, drc, 3), 0);
	d.auth_method = "LOGIN";
	d.auth_user = "bob";
	len2 = qrec_encode(&d, buf2, sizeof(buf2));
	cr_assert_gt(len2, len);
	cr_assert_eq(buf2[0], QREC_VERSION);
	cr_assert_eq(qrec_decode(&r, buf2, len2, rc, 3), 0);
	cr_assert_str_eq(r.auth_method, "LOGIN");
	cr_assert_str_eq(r.auth_user, "bob");
	cr_assert_str_eq(r.rcpt[1].reply, "421 4.7.0 try later");
}

Test(schema, version_3_records_are_still_read)
{
	struct qrec r, d;
	struct qrec_rcpt rc[3], drc[3];
	uint8_t buf[1024], buf2[1024];
	size_t len, len2;

	sample(&r, rc);
	len = encode_v3(&r, buf);
	cr_assert_eq(qrec_decode(&d, buf, len, drc, 3), 0, "a version 3 record decodes");
	cr_assert_eq(d.flags, QF_HELD);
	cr_assert_eq(d.due, 1700000300);
	cr_assert_str_eq(d.auth_user, "alice@isp.example");
	cr_assert_str_eq(d.hold_reason, r.hold_reason);
	cr_assert_eq(d.prior_attempts, 0, "no history from another box in version 3");
	cr_assert_str_eq(d.prior_error, "");
	for (int i = 0; i < 3; i++) {
		cr_assert_str_eq(d.rcpt[i].addr, rc[i].addr);
		cr_assert_eq(d.rcpt[i].attempts, rc[i].attempts);
		cr_assert_str_eq(d.rcpt[i].dsn, rc[i].dsn);
	}
	for (size_t cut = 0; cut < len; cut++)
		cr_assert_neq(qrec_decode(&d, buf, cut, drc, 3), 0, "v3 truncated at %zu", cut);
	/* written back as version 4, with a history now */
	cr_assert_eq(qrec_decode(&d, buf, len, drc, 3), 0);
	d.prior_attempts = 3;
	d.prior_error = "421 4.3.2 busy";
	len2 = qrec_encode(&d, buf2, sizeof(buf2));
	cr_assert_eq(len2, len + 4 + 3 + strlen("421 4.3.2 busy"));
	cr_assert_eq(buf2[0], 4);
	cr_assert_eq(qrec_decode(&r, buf2, len2, rc, 3), 0);
	cr_assert_eq(r.prior_attempts, 3);
	cr_assert_str_eq(r.prior_error, "421 4.3.2 busy");
	cr_assert_str_eq(r.rcpt[1].reply, "421 4.7.0 try later");
}

/* The carried last error is bounded: longer is refused at encoding and at
 * decoding (a damaged or forged record). */
Test(schema, prior_error_is_bounded)
{
	struct qrec r, d;
	struct qrec_rcpt rc[3], drc[3];
	uint8_t buf[2048];
	char err[QREC_PRIOR_ERR_MAX + 2];
	size_t len;

	sample(&r, rc);
	memset(err, 'e', sizeof(err) - 1);
	err[QREC_PRIOR_ERR_MAX] = 0;
	r.prior_error = err;
	len = qrec_encode(&r, buf, sizeof(buf));
	cr_assert_gt(len, 0, "%d octets fit", QREC_PRIOR_ERR_MAX);
	cr_assert_eq(qrec_decode(&d, buf, len, drc, 3), 0);
	cr_assert_eq(strlen(d.prior_error), QREC_PRIOR_ERR_MAX);
	err[QREC_PRIOR_ERR_MAX] = 'e';
	err[QREC_PRIOR_ERR_MAX + 1] = 0;
	cr_assert_eq(qrec_encode(&r, buf, sizeof(buf)), 0, "one more does not");
}
