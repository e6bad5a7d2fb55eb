/*
 * gen_msg.c - generated messages and streaming digests. See gen_msg.h.
 */
#include "bench/gen/gen_msg.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "bench/gen/gen_dist.h"

void gen_template_init(char *tpl, uint64_t seed)
{
	static const char alphabet[] =
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:-_=+";
	struct gen_rng r;

	gen_rng_seed(&r, seed);
	for (unsigned l = 0; l < GEN_TEMPLATE_LINES; l++) {
		char *p = tpl + (size_t)l * GEN_LINE;
		for (unsigned i = 0; i < GEN_LINE - 2; i++)
			p[i] = alphabet[gen_rng_below(&r, sizeof(alphabet) - 1)];
		if (l % 13 == 5)
			p[0] = '.';		/* dot-stuffing on the way */
		if (l % 29 == 7)
			p[0] = p[1] = '.';
		p[GEN_LINE - 2] = '\r';
		p[GEN_LINE - 1] = '\n';
	}
}

static void digest_update(EVP_MD_CTX *ctx, const void *p, size_t n)
{
	if (n)
		EVP_DigestUpdate(ctx, p, n);
}

int gen_msg_build(struct gen_msg *m, const char *tpl, EVP_MD_CTX *ctx, const char *id,
		  const char *run, const char *date, const char *from, const char *to,
		  const char *subject_extra, uint64_t size, uint32_t line)
{
	int n = snprintf(m->hdr, sizeof(m->hdr),
			 GEN_MARKER "%s %s\r\n"
			 "From: <%s>\r\n"
			 "To: <%s>\r\n"
			 "Subject: sluice-gen %s%s\r\n"
			 "Date: %s\r\n"
			 "Message-ID: <%s.%s@sluice-gen.test>\r\n"
			 "\r\n",
			 id, run, from, to, id, subject_extra ? subject_extra : "", date, id, run);
	uint64_t body, r;

	if (n < 0 || (size_t)n >= sizeof(m->hdr))
		return -1;
	m->hdr_len = (uint32_t)n;
	if (size < m->hdr_len)
		size = m->hdr_len;
	m->size = size;
	m->pos = 0;
	m->first_line = line % GEN_TEMPLATE_LINES;
	body = size - m->hdr_len;
	m->full_lines = body / GEN_LINE;
	r = body % GEN_LINE;
	m->tail_len = 0;
	if (r == 1) {
		/* one octet cannot be a line: the last line gets 79 */
		if (m->full_lines > 0) {
			m->full_lines--;
			r += GEN_LINE;
		} else {
			m->size--;	/* a header alone and one octet: drop it */
			r = 0;
		}
	}
	if (r >= 2) {
		const char *src = tpl + (size_t)((m->first_line + m->full_lines) % GEN_TEMPLATE_LINES) * GEN_LINE;
		for (uint64_t i = 0; i < r - 2; i++)
			m->tail[i] = src[i % (GEN_LINE - 2)];
		m->tail[r - 2] = '\r';
		m->tail[r - 1] = '\n';
		m->tail_len = (uint32_t)r;
	}
	memset(m->sha, 0, sizeof(m->sha));
	if (!ctx)
		return 0;		/* no digest asked for */
	/* the digest of everything gen_msg_next will hand out */
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	{
		struct gen_msg it = *m;
		const char *p;
		size_t k;
		while ((k = gen_msg_next(&it, tpl, &p)) > 0) {
			digest_update(ctx, p, k);
			gen_msg_consume(&it, k);
		}
	}
	EVP_DigestFinal_ex(ctx, m->sha, NULL);
	return 0;
}

size_t gen_msg_next(const struct gen_msg *m, const char *tpl, const char **p)
{
	uint64_t pos = m->pos, body_full = m->full_lines * GEN_LINE;

	if (pos >= m->size)
		return 0;
	if (pos < m->hdr_len) {
		*p = m->hdr + pos;
		return m->hdr_len - pos;
	}
	pos -= m->hdr_len;
	if (pos < body_full) {
		uint64_t line = (m->first_line + pos / GEN_LINE) % GEN_TEMPLATE_LINES;
		uint64_t off = pos % GEN_LINE;
		/* to the end of the template (or of the full lines), whichever first */
		uint64_t run_lines = GEN_TEMPLATE_LINES - line;
		uint64_t left = body_full - pos, n = run_lines * GEN_LINE - off;
		*p = tpl + line * GEN_LINE + off;
		return (size_t)(n < left ? n : left);
	}
	pos -= body_full;
	*p = m->tail + pos;
	return m->tail_len - pos;
}

void gen_msg_consume(struct gen_msg *m, size_t n)
{
	m->pos += n;
}

void gen_digest_begin(struct gen_digest *d, EVP_MD_CTX *ctx)
{
	memset(d, 0, sizeof(*d));
	d->ctx = ctx;
	d->in_header = true;
	d->bol = true;
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
}

/* Before the marker: look at the first octets of each header line. */
void gen_digest_feed(struct gen_digest *d, const void *data, size_t len)
{
	const char *p = data;
	size_t i = 0;

	if (d->found || !d->in_header) {
		digest_update(d->ctx, p, len);
		d->hashed += len;
		return;
	}
	while (i < len) {
		char c = p[i++];
		d->linelen++;
		if (d->bol) {
			d->pre[d->plen++] = c;
			if (memcmp(d->pre, GEN_MARKER, d->plen) == 0) {
				if (d->plen < GEN_MARKER_LEN)
					continue;
				d->found = true;
				digest_update(d->ctx, d->pre, GEN_MARKER_LEN);
				digest_update(d->ctx, p + i, len - i);
				d->hashed += GEN_MARKER_LEN + (len - i);
				return;
			}
			d->bol = false;	/* a line of someone else's */
		}
		if (c == '\n' && d->cr) {
			if (d->linelen == 2) {
				d->in_header = false;	/* the empty line: no marker */
				break;
			}
			d->bol = true;
			d->plen = 0;
			d->linelen = 0;
		}
		d->cr = c == '\r';
	}
	if (!d->in_header) {
		/* No marker above the body: hash the rest only and say so
		 * (marked = false); the sink counts such messages apart. */
		digest_update(d->ctx, p + i, len - i);
		d->hashed += len - i;
	}
}

void gen_digest_end(struct gen_digest *d, uint8_t out[GEN_SHA_LEN], bool *marked)
{
	EVP_DigestFinal_ex(d->ctx, out, NULL);
	*marked = d->found;
}

void gen_sha256(const void *data, size_t len, uint8_t out[GEN_SHA_LEN])
{
	EVP_Digest(data, len, out, NULL, EVP_sha256(), NULL);
}

void gen_hex(const uint8_t *b, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[b[i] >> 4];
		out[2 * i + 1] = hx[b[i] & 15];
	}
	out[2 * n] = '\0';
}
