/*
 * queue_schema.c - encoding and decoding of shard keys and records. No LMDB
 * here: pure byte layout, so it is testable on its own. See queue_schema.h.
 */
#include "queue/queue_schema.h"

#include <string.h>

void qk_id(uint8_t out[8], uint64_t id)
{
	be64_put(out, id);
}

size_t qk_due(uint8_t out[QK_DUE_LEN], uint64_t when, uint64_t id)
{
	be64_put(out, when);
	be64_put(out + 8, id);
	return QK_DUE_LEN;
}

void qk_due_parse(const uint8_t *key, uint64_t *when, uint64_t *id)
{
	*when = be64_get(key);
	*id = be64_get(key + 8);
}

static unsigned char ascii_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

size_t q_domain_len(const char *dom, size_t len)
{
	/* "x." -> "x", "." -> "", but "x.." stays: normalising twice changes nothing */
	if (len > 0 && dom[len - 1] == '.' && (len == 1 || dom[len - 2] != '.'))
		len--;
	return len;
}

size_t q_domain_norm(char out[QK_DOMAIN_MAX + 1], const char *dom, size_t len)
{
	len = q_domain_len(dom, len);
	if (len > QK_DOMAIN_MAX)
		len = QK_DOMAIN_MAX;
	for (size_t i = 0; i < len; i++)
		out[i] = (char)ascii_lower((unsigned char)dom[i]);
	out[len] = 0;
	return len;
}

int q_domain_eq(const char *a, size_t al, const char *b, size_t bl)
{
	al = q_domain_len(a, al);
	bl = q_domain_len(b, bl);
	if (al != bl)
		return 0;
	for (size_t i = 0; i < al; i++)
		if (ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i]))
			return 0;
	return 1;
}

/* Copy a domain as keys hold it (q_domain_norm), clipped to 255 bytes. */
static size_t put_domain(uint8_t *out, const char *dom, size_t dlen)
{
	char n[QK_DOMAIN_MAX + 1];
	size_t l = q_domain_norm(n, dom, dlen);
	memcpy(out, n, l);
	return l;
}

size_t qk_dom_prefix(uint8_t out[QK_DOM_MAX], const char *dom, size_t dlen)
{
	size_t n = put_domain(out, dom, dlen);
	out[n++] = 0;
	return n;
}

size_t qk_dom(uint8_t out[QK_DOM_MAX], const char *dom, size_t dlen, uint64_t id)
{
	size_t n = qk_dom_prefix(out, dom, dlen);
	be64_put(out + n, id);
	return n + 8;
}

size_t qk_sum(uint8_t out[QK_SUM_MAX], const char *dom, size_t dlen, uint32_t slot)
{
	size_t n = qk_dom_prefix(out, dom, dlen);
	be32_put(out + n, slot);
	return n + 4;
}

size_t qk_hist(uint8_t out[QK_HIST_LEN], uint64_t id, uint32_t seq)
{
	be64_put(out, id);
	be32_put(out + 8, seq);
	return QK_HIST_LEN;
}

size_t qk_body(uint8_t out[QK_BODY_LEN], uint64_t id, uint32_t chunk)
{
	be64_put(out, id);
	be32_put(out + 8, chunk);
	return QK_BODY_LEN;
}

const char *q_addr_domain(const char *addr, size_t *len)
{
	const char *at = addr ? strrchr(addr, '@') : NULL;
	if (!at) {
		*len = 0;
		return "";
	}
	*len = strlen(at + 1);
	return at + 1;
}

uint32_t q_domain_hash(const char *dom, size_t len)
{
	uint32_t h = 2166136261u;
	len = q_domain_len(dom, len);
	for (size_t i = 0; i < len; i++) {
		h ^= ascii_lower((unsigned char)dom[i]);
		h *= 16777619u;
	}
	return h;
}

/* ---- message record --------------------------------------------------------
 *
 * version(1) flags(1) ret(1) body_flags(1) nrcpt(2) token(4) hist_seq(4)
 * arrival(8) expiry(8) size(8) due(8) claim_until(8) shards(8)
 * [version 2: held_at(8) held_s(8)]
 * str sender, envid, client_name, client_addr, helo
 * [version 3: str auth_method, auth_user, hold_reason]
 * [version 4: prior_attempts(4) str prior_error]
 * per recipient: state(1) notify(1) attempts(2) last_attempt(8)
 *                str addr, orcpt, reply [version 2: str dsn]
 * where str = len(2) bytes NUL
 *
 * Records are written as version 2; version 1 records (a spool from before
 * the bounce work) are read as having never been held and no stored
 * enhanced status; version 1 and 2 records as having come without AUTH and
 * held with no reason; version 1 to 3 records as having no history from
 * another box (prior_attempts 0, prior_error ""). Each is written back as
 * version 4 when next changed.
 */
#define QREC_FIXED_V1 62
#define QREC_FIXED 78
#define QRCPT_FIXED 12

static size_t str_size(const char *s)
{
	return 2 + (s ? strlen(s) : 0) + 1;
}

size_t qrec_size(const struct qrec *r)
{
	size_t n = QREC_FIXED + str_size(r->sender) + str_size(r->envid) +
		   str_size(r->client_name) + str_size(r->client_addr) + str_size(r->helo) +
		   str_size(r->auth_method) + str_size(r->auth_user) + str_size(r->hold_reason) +
		   4 + str_size(r->prior_error);
	for (unsigned i = 0; i < r->nrcpt; i++)
		n += QRCPT_FIXED + str_size(r->rcpt[i].addr) + str_size(r->rcpt[i].orcpt) +
		     str_size(r->rcpt[i].reply) + str_size(r->rcpt[i].dsn);
	return n;
}

static uint8_t *str_put(uint8_t *p, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	p[0] = (uint8_t)(n >> 8);
	p[1] = (uint8_t)n;
	if (n)
		memcpy(p + 2, s, n);
	p[2 + n] = 0;
	return p + 3 + n;
}

size_t qrec_encode(const struct qrec *r, uint8_t *buf, size_t cap)
{
	size_t need = qrec_size(r);
	uint8_t *p = buf;

	if (need > cap)
		return 0;
	/* every string must fit its 16-bit length */
	if (str_size(r->sender) > 65537 || str_size(r->envid) > 65537 ||
	    str_size(r->client_name) > 65537 || str_size(r->client_addr) > 65537 ||
	    str_size(r->helo) > 65537 || str_size(r->auth_method) > 65537 ||
	    str_size(r->auth_user) > 65537 || str_size(r->hold_reason) > 65537 ||
	    str_size(r->prior_error) > QREC_PRIOR_ERR_MAX + 3)
		return 0;
	for (unsigned i = 0; i < r->nrcpt; i++)
		if (str_size(r->rcpt[i].addr) > 65537 || str_size(r->rcpt[i].orcpt) > 65537 ||
		    str_size(r->rcpt[i].reply) > 65537 || str_size(r->rcpt[i].dsn) > 65537)
			return 0;

	p[0] = QREC_VERSION;
	p[1] = r->flags;
	p[2] = r->ret;
	p[3] = r->body_flags;	/* was padding (0) before it had a use */
	p[4] = (uint8_t)(r->nrcpt >> 8);
	p[5] = (uint8_t)r->nrcpt;
	be32_put(p + 6, r->token);
	be32_put(p + 10, r->hist_seq);
	be64_put(p + 14, r->arrival);
	be64_put(p + 22, r->expiry);
	be64_put(p + 30, r->size);
	be64_put(p + 38, r->due);
	be64_put(p + 46, r->claim_until);
	be64_put(p + 54, r->shards);	/* was reserved (0): 0 = one shard */
	be64_put(p + 62, r->held_at);
	be64_put(p + 70, r->held_s);
	p += QREC_FIXED;
	p = str_put(p, r->sender);
	p = str_put(p, r->envid);
	p = str_put(p, r->client_name);
	p = str_put(p, r->client_addr);
	p = str_put(p, r->helo);
	p = str_put(p, r->auth_method);
	p = str_put(p, r->auth_user);
	p = str_put(p, r->hold_reason);
	be32_put(p, r->prior_attempts);
	p = str_put(p + 4, r->prior_error);
	for (unsigned i = 0; i < r->nrcpt; i++) {
		const struct qrec_rcpt *c = &r->rcpt[i];
		p[0] = c->state;
		p[1] = c->notify;
		p[2] = (uint8_t)(c->attempts >> 8);
		p[3] = (uint8_t)c->attempts;
		be64_put(p + 4, c->last_attempt);
		p += QRCPT_FIXED;
		p = str_put(p, c->addr);
		p = str_put(p, c->orcpt);
		p = str_put(p, c->reply);
		p = str_put(p, c->dsn);
	}
	return (size_t)(p - buf);
}

/* Read one string; NULL when it runs past the end or lacks its NUL. */
static const char *str_get(const uint8_t **pp, const uint8_t *end)
{
	const uint8_t *p = *pp;
	size_t n;

	if (end - p < 3)
		return NULL;
	n = (size_t)p[0] << 8 | p[1];
	if ((size_t)(end - p) < 3 + n || p[2 + n] != 0 || memchr(p + 2, 0, n))
		return NULL;
	*pp = p + 3 + n;
	return (const char *)p + 2;
}

int qrec_decode(struct qrec *r, const uint8_t *buf, size_t len,
		struct qrec_rcpt *rcpt, size_t rcpt_cap)
{
	const uint8_t *p = buf, *end = buf + len;
	int v2, v3, v4;

	if (len < QREC_FIXED_V1 || p[0] < 1 || p[0] > QREC_VERSION)
		return -1;
	v2 = p[0] >= 2;	/* held times, stored statuses */
	v3 = p[0] >= 3;	/* AUTH identity, hold reason */
	v4 = p[0] >= 4;	/* history from another box */
	if (v2 && len < QREC_FIXED)
		return -1;
	memset(r, 0, sizeof(*r));
	r->flags = p[1];
	r->ret = p[2];
	r->body_flags = p[3];
	r->nrcpt = (uint16_t)(p[4] << 8 | p[5]);
	r->token = be32_get(p + 6);
	r->hist_seq = be32_get(p + 10);
	r->arrival = be64_get(p + 14);
	r->expiry = be64_get(p + 22);
	r->size = be64_get(p + 30);
	r->due = be64_get(p + 38);
	r->claim_until = be64_get(p + 46);
	r->shards = be64_get(p + 54);
	if (v2) {
		r->held_at = be64_get(p + 62);
		r->held_s = be64_get(p + 70);
	}
	if (r->nrcpt > rcpt_cap)
		return -1;
	p += v2 ? QREC_FIXED : QREC_FIXED_V1;
	if (!(r->sender = str_get(&p, end)) || !(r->envid = str_get(&p, end)) ||
	    !(r->client_name = str_get(&p, end)) || !(r->client_addr = str_get(&p, end)) ||
	    !(r->helo = str_get(&p, end)))
		return -1;
	if (v3) {
		if (!(r->auth_method = str_get(&p, end)) || !(r->auth_user = str_get(&p, end)) ||
		    !(r->hold_reason = str_get(&p, end)))
			return -1;
	} else {
		r->auth_method = r->auth_user = r->hold_reason = "";
	}
	r->prior_error = "";
	if (v4) {
		if (end - p < 4)
			return -1;
		r->prior_attempts = be32_get(p);
		p += 4;
		if (!(r->prior_error = str_get(&p, end)) ||
		    strlen(r->prior_error) > QREC_PRIOR_ERR_MAX)
			return -1;
	}
	r->rcpt = rcpt;
	for (unsigned i = 0; i < r->nrcpt; i++) {
		struct qrec_rcpt *c = &rcpt[i];
		if (end - p < QRCPT_FIXED)
			return -1;
		c->state = p[0];
		c->notify = p[1];
		c->attempts = (uint16_t)(p[2] << 8 | p[3]);
		c->last_attempt = be64_get(p + 4);
		p += QRCPT_FIXED;
		if (!(c->addr = str_get(&p, end)) || !(c->orcpt = str_get(&p, end)) ||
		    !(c->reply = str_get(&p, end)))
			return -1;
		c->dsn = v2 ? str_get(&p, end) : "";
		if (!c->dsn)
			return -1;
		if (c->state > 3)
			return -1;
	}
	return p == end ? 0 : -1;
}

uint8_t qrec_peek_flags(const uint8_t *buf, size_t len)
{
	return len >= QREC_FIXED_V1 ? buf[1] : 0;
}

uint64_t qrec_peek_shards(const uint8_t *buf, size_t len)
{
	return len >= QREC_FIXED_V1 ? be64_get(buf + 54) : 0;
}

int qrec_in_due(const struct qrec *r)
{
	if (r->flags & (QF_HELD | QF_INTENT))
		return 0;
	for (unsigned i = 0; i < r->nrcpt; i++)
		if (r->rcpt[i].state <= 1)	/* pending or deferred */
			return 1;
	return 0;
}

uint64_t qrec_due_key_time(const struct qrec *r)
{
	return (r->flags & QF_CLAIMED) ? r->claim_until : r->due;
}

/* ---- history and summary -------------------------------------------------- */

size_t qhist_encode(const struct qhist *h, uint8_t *buf, size_t cap)
{
	size_t n = h->reply ? strlen(h->reply) : 0;
	if (n > 65535 || cap < 11 + 3 + n)
		return 0;
	be64_put(buf, h->time);
	buf[8] = (uint8_t)(h->rcpt >> 8);
	buf[9] = (uint8_t)h->rcpt;
	buf[10] = h->state;
	return (size_t)(str_put(buf + 11, h->reply) - buf);
}

int qhist_decode(struct qhist *h, const uint8_t *buf, size_t len)
{
	const uint8_t *p = buf + 11;
	if (len < 14)
		return -1;
	h->time = be64_get(buf);
	h->rcpt = (uint16_t)(buf[8] << 8 | buf[9]);
	h->state = buf[10];
	h->reply = str_get(&p, buf + len);
	return h->reply && p == buf + len ? 0 : -1;
}

void qsum_encode(const struct qsum *s, uint8_t out[QSUM_LEN])
{
	be32_put(out, s->active);
	be32_put(out + 4, s->deferred);
	be32_put(out + 8, s->held);
}

void qsum_decode(struct qsum *s, const uint8_t *in)
{
	s->active = be32_get(in);
	s->deferred = be32_get(in + 4);
	s->held = be32_get(in + 8);
}
