/*
 * smtp_test.c - helpers for the SMTP engine suites (see smtp_test.h).
 */
#include "tests/smtp/smtp_test.h"

#include <stdio.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

static int sink(void *user, const void *data, size_t len)
{
	struct th *h = user;
	if (h->sink_fail)
		return -1;
	if (len > TH_BODY_MAX - h->body_len)
		return -1;
	memcpy(h->body + h->body_len, data, len);
	h->body_len += len;
	return 0;
}

static void msg_begin(void *user)
{
	struct th *h = user;
	h->begins++;
	h->body_len = 0;
}

static int rcpt_keep(void *user, const struct smtp_rcpt_view *v)
{
	struct th *h = user;
	struct th_rcpt *r;
	if (h->nrcpts >= h->rcpt_room || h->nrcpts >= SMTP_RCPT_HARD_MAX)
		return -1;
	r = &h->rcpts[h->nrcpts++];
	if (strlen(v->addr) > SMTP_PATH_MAX ||
	    (v->orcpt != NULL && strlen(v->orcpt) > SMTP_ORCPT_MAX))
		abort();	/* the engine hands over only what the parser bounds */
	snprintf(r->addr, sizeof(r->addr), "%s", v->addr);
	r->has_orcpt = v->orcpt != NULL;
	snprintf(r->orcpt, sizeof(r->orcpt), "%s", v->orcpt ? v->orcpt : "");
	r->notify = v->notify;
	return 0;
}

static void rcpt_reset(void *user)
{
	struct th *h = user;
	h->nrcpts = 0;
	h->rcpt_resets++;
}

int th_rcpt(const struct th *h, unsigned i, struct smtp_rcpt_view *v)
{
	if (i >= h->nrcpts)
		return -1;
	v->addr = h->rcpts[i].addr;
	v->orcpt = h->rcpts[i].has_orcpt ? h->rcpts[i].orcpt : NULL;
	v->notify = h->rcpts[i].notify;
	return 0;
}

static uint64_t fixed_now(void *user)
{
	(void)user;
	return 1795379165;	/* Sun, 22 Nov 2026 20:26:05 +0000 */
}

static int trace_id(void *user, char *buf, size_t cap)
{
	struct th *h = user;
	snprintf(buf, cap, "T%u", h->qseq + 1);
	return 0;
}

static void reject(void *user, const char *stage, const char *text, const char *from,
		   const char *to)
{
	struct th *h = user;
	h->rejects++;
	snprintf(h->reject, sizeof(h->reject), "%s|%s|%s|%s", stage, text, from ? from : "-",
		 to ? to : "-");
}

static int etrn(void *user, const char *domain)
{
	struct th *h = user;
	h->etrns++;
	snprintf(h->etrn, sizeof(h->etrn), "%s", domain);
	return h->etrn_ret;
}

void th_restart(struct th *h)
{
	struct smtp_client cl = { 0 };
	struct smtp_session_cb cb = {
		.sink = sink, .msg_begin = msg_begin, .trace_id = trace_id,
		.rcpt = rcpt_keep, .rcpt_reset = rcpt_reset, .now = fixed_now,
		.etrn = etrn, .reject = reject, .user = h,
	};
	cl.ip = h->s.client.ip;
	cl.v6 = h->s.client.v6;
	memcpy(cl.ip6, h->s.client.ip6, 16);
	h->nrcpts = 0;
	smtp_session_init(&h->s, &h->conf, &h->st, &cl, &cb);
	th_drain(h);
}

struct th *th_new(const char *ip, const char *mynetworks, const char *relay_domains)
{
	struct th *h = calloc(1, sizeof(*h));
	if (h == NULL)
		abort();
	h->body = malloc(TH_BODY_MAX);
	h->out = malloc(TH_OUT_MAX);
	h->rcpts = calloc(SMTP_RCPT_HARD_MAX, sizeof(*h->rcpts));
	if (h->body == NULL || h->out == NULL || h->rcpts == NULL)
		abort();
	h->rcpt_room = SMTP_RCPT_HARD_MAX;
	h->out[0] = '\0';
	smtp_conf_default(&h->conf);
	snprintf(h->conf.hostname, sizeof(h->conf.hostname), "mx.sluice.test");
	if (smtp_policy_init(&h->pol, mynetworks, relay_domains) != 0)
		abort();
	h->conf.policy = &h->pol;
	uint32_t a = 0;
	if (strchr(ip, ':')) {	/* an IPv6 client */
		if (inet_pton(AF_INET6, ip, h->s.client.ip6) != 1)
			abort();
		h->s.client.v6 = true;
	} else if (smtp_parse_ipv4(ip, &a) != 0) {
		abort();
	}
	h->s.client.ip = a;
	h->auto_queue = true;
	th_restart(h);
	return h;
}

void th_free(struct th *h)
{
	free(h->body);
	free(h->out);
	free(h->rcpts);
	free(h);
}

void th_drain(struct th *h)
{
	const char *p;
	size_t n;
	while ((n = smtp_session_peek_output(&h->s, &p)) > 0) {
		if (n > TH_OUT_MAX - 1 - h->out_len)
			abort();
		memcpy(h->out + h->out_len, p, n);
		h->out_len += n;
		h->out[h->out_len] = '\0';
		smtp_session_consume_output(&h->s, n);
	}
}

void th_clear(struct th *h)
{
	h->out_len = 0;
	h->out[0] = '\0';
}

size_t th_feed(struct th *h, const void *d, size_t n, size_t chunk)
{
	const char *p = d;
	size_t done = 0;
	if (chunk == 0)
		chunk = n ? n : 1;
	while (done < n) {
		size_t k = n - done < chunk ? n - done : chunk;
		size_t c = smtp_session_input(&h->s, p + done, k);
		th_drain(h);
		done += c;
		if (c == 0)
			break;
	}
	return done;
}

size_t th_feeds(struct th *h, const char *s)
{
	return th_feed(h, s, strlen(s), 0);
}

void th_run(struct th *h, const char *d, size_t n, size_t chunk)
{
	size_t done = 0;
	for (int guard = 0; guard < 1000000; guard++) {
		done += th_feed(h, d + done, n - done, chunk);
		enum smtp_event ev = smtp_session_event(&h->s);
		if (ev == SMTP_EV_MESSAGE && h->auto_queue) {
			char id[32];
			snprintf(id, sizeof(id), "Q%u", ++h->qseq);
			h->messages++;
			smtp_session_queued(&h->s, SMTP_QUEUED_OK, id);
			th_drain(h);
			continue;
		}
		if (ev == SMTP_EV_STARTTLS) {
			smtp_session_tls_started(&h->s, "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)");
			continue;
		}
		if (done >= n || ev != SMTP_EV_NONE)
			return;
	}
	abort();
}

unsigned th_nlines(const struct th *h)
{
	unsigned n = 0;
	for (size_t i = 0; i + 1 < h->out_len + 1 && i < h->out_len; i++)
		if (h->out[i] == '\n')
			n++;
	return n;
}

const char *th_line(const struct th *h, unsigned index, char *buf, size_t cap)
{
	const char *p = h->out, *end = h->out + h->out_len;
	for (unsigned k = 0; k < index; k++) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		if (lf == NULL)
			return NULL;
		p = lf + 1;
	}
	const char *lf = memchr(p, '\n', (size_t)(end - p));
	if (lf == NULL)
		return NULL;
	size_t len = (size_t)(lf - p);
	if (len > 0 && p[len - 1] == '\r')
		len--;
	if (len >= cap)
		len = cap - 1;
	memcpy(buf, p, len);
	buf[len] = '\0';
	return buf;
}

bool th_has(const struct th *h, const char *prefix)
{
	size_t pl = strlen(prefix);
	const char *p = h->out, *end = h->out + h->out_len;
	while (p < end) {
		if ((size_t)(end - p) >= pl && memcmp(p, prefix, pl) == 0)
			return true;
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		if (lf == NULL)
			break;
		p = lf + 1;
	}
	return false;
}
