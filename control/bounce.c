/*
 * bounce.c - making and queueing the notices the scheduler owes. See
 * bounce.h.
 *
 * Each notice in flight is one struct bjob: the queue submission (which
 * the queue's writers read until it comes back on our completion ring),
 * its one recipient, the DSN's text (dsn_build's buffer) and the leading
 * octets of the original it returns (the iovecs point into both). It is
 * freed when its completion has been taken.
 */
#include "control/bounce.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "control/maillog.h"

const char *const bounce_stat_names[] = { BOUNCE_STATS(STATS_NAME) };

#define TEXT_FIRST(n) (DSN_FIXED_TEXT_MAX + (size_t)(n) * 1024)	/* most fit */
#define DESTROY_WAIT_MS 10000

enum bkind { BK_FAILURE, BK_DELAY, BK_SUCCESS, BK_DOUBLE };

struct bjob {
	struct queue_submission sub;
	struct queue_rcpt_in rcpt;
	char to[DSN_ADDR_MAX + 1];
	char orig_id[QUEUE_ID_STR];
	enum bkind kind;
	void *user;
	char *text;
	void *orig;
};

struct bouncer {
	struct bounce_conf c;
	struct queue *q;
	struct rte_ring *done;
	unsigned inflight;
	struct bounce_stats st;
};

void bounce_conf_default(struct bounce_conf *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->hostname, sizeof(c->hostname), "sluice.test");
	c->size_limit = DSN_SIZE_LIMIT_DEFAULT;
	c->lifetime_s = 86400;
	c->max_inflight = 256;
}

struct bouncer *bounce_create(const struct bounce_conf *c, struct queue *q, char *err,
			      size_t errlen)
{
	struct bouncer *b;

	if (!q || !c->hostname[0] || c->max_inflight == 0 || c->max_inflight > 65536 ||
	    c->lifetime_s == 0) {
		snprintf(err, errlen, "bounce: a queue, a host name and 1..65536 notices in "
			 "flight needed");
		return NULL;
	}
	b = calloc(1, sizeof(*b));
	if (!b) {
		snprintf(err, errlen, "bounce: out of memory");
		return NULL;
	}
	b->c = *c;
	b->q = q;
	b->done = queue_done_ring_create(c->max_inflight);
	if (!b->done) {
		snprintf(err, errlen, "bounce: no completion ring for %u notices", c->max_inflight);
		free(b);
		return NULL;
	}
	return b;
}

static void bjob_free(struct bjob *j)
{
	free((void *)j->sub.iov);
	free(j->text);
	free(j->orig);
	free(j);
}

void bounce_destroy(struct bouncer *b)
{
	struct queue_submission *got[64];
	struct timespec ms = { 0, 1000000 };
	unsigned waited = 0;

	if (!b)
		return;
	/* the writers still read what is in flight and post it back here */
	while (b->inflight && waited < DESTROY_WAIT_MS) {
		unsigned n = queue_done_poll(b->done, got, 64);
		for (unsigned i = 0; i < n; i++) {
			bjob_free((struct bjob *)got[i]);
			b->inflight--;
		}
		if (n == 0) {
			nanosleep(&ms, NULL);
			waited++;
		}
	}
	if (b->inflight) {	/* never freed under a writer's feet */
		log_err("bounce: %u notice(s) still with the queue after %d ms: left as they are",
			b->inflight, DESTROY_WAIT_MS);
		return;
	}
	queue_done_ring_free(b->done);
	free(b);
}

unsigned bounce_inflight(const struct bouncer *b)
{
	return b->inflight;
}

void bounce_stats_get(const struct bouncer *b, struct bounce_stats *out)
{
	*out = b->st;
	out->inflight = b->inflight;
}

/* ---- making one ---------------------------------------------------------------------- */

/* Read the original's first `need` octets (of m->size). NULL (logged) on failure. */
static void *read_orig(struct bouncer *b, const struct queue_msg *m, const char *ids,
		       uint64_t need, size_t *got)
{
	size_t cap = need ? (size_t)need : 1, len = 0;
	void *buf = malloc(cap);
	int st;

	*got = 0;
	if (!buf)
		return NULL;
	if (need == 0)
		return buf;
	st = queue_read_body(b->q, m->shard, m->id, buf, cap, &len);
	if (st != QUEUE_OK) {
		log_err("%s: cannot read the message for its notice: %s", ids,
			queue_status_str(st));
		free(buf);
		return NULL;
	}
	*got = len < cap ? len : cap;
	return buf;
}

/* dsn_build into a buffer grown to what it needs. */
static int build(const struct dsn_report *r, struct dsn_out *out, char **text)
{
	size_t cap = TEXT_FIRST(r->nrcpt);
	int rc;

	for (int tries = 0; tries < 2; tries++) {
		*text = malloc(cap);
		if (!*text)
			return DSN_ENOSPC;
		rc = dsn_build(r, *text, cap, out);
		if (rc != DSN_ENOSPC)
			return rc;
		free(*text);
		*text = NULL;
		cap = out->need;
	}
	return DSN_ENOSPC;
}

/* Is this null-sender message one of ours (a DSN this box made)? */
static bool ours(const struct queue_msg *m)
{
	return (!m->client_addr || !m->client_addr[0]) && (!m->helo || !m->helo[0]);
}

static void log_drop(const struct bounce_notice *n, const char *ids, const char *why)
{
	for (unsigned i = 0; i < n->nrcpt; i++)
		log_info("%s: to=<%s>, from=<>, status=dropped (%s)", ids, n->rcpt[i].addr, why);
}

enum bounce_verdict bounce_send(struct bouncer *b, const struct bounce_notice *n)
{
	const struct queue_msg *m = n->m;
	struct dsn_rcpt *dr = NULL;
	struct dsn_reply *rp = NULL;
	struct dsn_report r;
	struct dsn_out out;
	struct bjob *j = NULL;
	char ids[QUEUE_ID_STR], token[QUEUE_ID_STR];
	uint64_t resv, need;
	size_t got = 0;
	bool null_sender = !m->sender || !m->sender[0];
	int rc;

	queue_id_format(m->id, ids);
	if (n->nrcpt == 0 || n->nrcpt > QUEUE_RCPT_MAX) {
		log_err("%s: a notice about %u recipients", ids, n->nrcpt);
		b->st.failed++;
		return BOUNCE_FAILED;
	}
	if (b->inflight >= b->c.max_inflight) {
		b->st.busy++;
		return BOUNCE_BUSY;
	}
	memset(&r, 0, sizeof(r));
	r.kind = DSN_KIND_REPORT;
	if (null_sender) {
		/* never a bounce of a bounce: at most one double bounce */
		enum dsn_on_fail f;
		char head[4096];
		size_t hl = 0;

		if (!ours(m)) {
			log_drop(n, ids, "a bounce from elsewhere failed: no bounce of a bounce");
			b->st.dropped++;
			return BOUNCE_NONE;
		}
		if (queue_read_body(b->q, m->shard, m->id, head, sizeof(head), &hl) != QUEUE_OK)
			hl = 0;
		f = dsn_on_failure("", head, hl < sizeof(head) ? hl : sizeof(head));
		if (f == DSN_FAIL_DROP) {
			log_drop(n, ids, "a double bounce failed: dropped, never a triple bounce");
			b->st.dropped++;
			return BOUNCE_NONE;
		}
		if (!b->c.double_bounce_to[0]) {
			log_drop(n, ids, "a notice failed and double_bounce_to is empty");
			b->st.dropped++;
			return BOUNCE_NONE;
		}
		r.kind = DSN_KIND_DOUBLE_BOUNCE;
		r.postmaster = b->c.double_bounce_to;
	}
	dr = calloc(n->nrcpt, sizeof(*dr));
	rp = calloc(n->nrcpt, sizeof(*rp));
	j = calloc(1, sizeof(*j));
	if (!dr || !rp || !j)
		goto fail;
	resv = queue_id_reserve(b->q);
	queue_id_format(resv, token);
	for (unsigned i = 0; i < n->nrcpt; i++) {
		const struct bounce_rcpt *br = &n->rcpt[i];
		dsn_reply_parse(br->reason, &rp[i]);
		dr[i].addr = br->addr;
		dr[i].orcpt = br->orcpt && br->orcpt[0] ? br->orcpt : NULL;
		dr[i].action = br->action;
		dr[i].status = br->status && dsn_status_valid(br->status) ? br->status :
			       rp[i].status[0] ? rp[i].status : NULL;
		dr[i].remote_mta = rp[i].remote_mta[0] ? rp[i].remote_mta : NULL;
		dr[i].diag = rp[i].diag[0] ? rp[i].diag : NULL;
		dr[i].reason = br->reason;
		dr[i].last_attempt = br->last_attempt;
		dr[i].retry_until = br->action == DSN_DELAYED ? br->retry_until : 0;
		if (br->action == DSN_DELAYED)
			j->kind = BK_DELAY;
		else if (br->action != DSN_FAILED && j->kind != BK_DELAY)
			j->kind = BK_SUCCESS;
	}
	for (unsigned i = 0; i < n->nrcpt; i++)	/* a failure says the most */
		if (n->rcpt[i].action == DSN_FAILED)
			j->kind = BK_FAILURE;
	if (r.kind == DSN_KIND_DOUBLE_BOUNCE)
		j->kind = BK_DOUBLE;
	r.reporting_mta = b->c.hostname;
	r.token = token;
	r.now = n->now;
	r.env.sender = m->sender ? m->sender : "";
	r.env.envid = m->envid && m->envid[0] ? m->envid : NULL;
	r.env.ret = m->ret;
	r.env.body_flags = m->body_flags;
	r.env.arrival = m->arrival;
	r.env.queue_id = ids;
	r.rcpt = dr;
	r.nrcpt = n->nrcpt;
	r.orig_size = m->size;
	r.size_limit = b->c.size_limit;
	need = dsn_original_need(&r);
	if (need > m->size)
		need = m->size;
	j->orig = read_orig(b, m, ids, need, &got);
	if (!j->orig)
		goto fail;
	r.orig = j->orig;
	r.orig_len = got;
	rc = build(&r, &out, &j->text);
	if (rc != DSN_OK) {
		log_err("%s: cannot make its notice: %s", ids, dsn_strerror(rc));
		goto fail;
	}
	snprintf(j->to, sizeof(j->to), "%s", out.to);
	snprintf(j->orig_id, sizeof(j->orig_id), "%s", ids);
	j->user = n->user;
	j->rcpt.addr = j->to;
	j->sub.env.sender = "";
	j->sub.env.body_flags = (uint8_t)(((out.flags & DSN_OUT_SMTPUTF8) ? QUEUE_BODY_SMTPUTF8 : 0) |
					  ((out.flags & DSN_OUT_8BITMIME) ? QUEUE_BODY_8BITMIME : 0));
	j->sub.env.arrival = n->now;
	j->sub.env.expiry = n->now + b->c.lifetime_s;
	j->sub.env.nrcpt = 1;
	j->sub.env.rcpt = &j->rcpt;
	/* out.iov (into j->text and j->orig) lives on this stack: the
	 * submission gets its own copy */
	{
		struct iovec *iov = malloc(out.iovcnt * sizeof(*iov));
		if (!iov)
			goto fail;
		memcpy(iov, out.iov, out.iovcnt * sizeof(*iov));
		j->sub.iov = iov;
	}
	j->sub.iovcnt = out.iovcnt;
	j->sub.done = b->done;
	j->sub.user = j;
	j->sub.reserved_id = resv;
	rc = queue_submit(b->q, &j->sub);
	if (rc != QUEUE_OK) {
		if (rc == QUEUE_BUSY) {
			b->st.busy++;
			bjob_free(j);
			free(dr);
			free(rp);
			return BOUNCE_BUSY;
		}
		log_err("%s: the queue refused its notice: %s", ids, queue_status_str(rc));
		goto fail;
	}
	b->inflight++;
	free(dr);
	free(rp);
	return BOUNCE_QUEUED;
fail:
	if (!dr || !rp || !j)
		log_err("%s: out of memory for its notice", ids);
	if (j)
		bjob_free(j);
	free(dr);
	free(rp);
	b->st.failed++;
	return BOUNCE_FAILED;
}

unsigned bounce_poll(struct bouncer *b, struct bounce_done *out, unsigned max)
{
	struct queue_submission *got[64];
	unsigned n, k = 0;
	static const char *const what[] = {
		[BK_FAILURE] = "sender non-delivery notification",
		[BK_DELAY] = "sender delay notification",
		[BK_SUCCESS] = "sender delivery status notification",
		[BK_DOUBLE] = "postmaster non-delivery notification",
	};

	while (k < max) {
		unsigned want = max - k < 64 ? max - k : 64;
		n = queue_done_poll(b->done, got, want);
		for (unsigned i = 0; i < n; i++) {
			struct bjob *j = got[i]->user;
			out[k].user = j->user;
			out[k].status = j->sub.status;
			snprintf(out[k].id, sizeof(out[k].id), "%s", j->sub.id_str);
			if (j->sub.status == QUEUE_OK) {
				maillog(ML_BOUNCE, "%s: %s: %s", j->orig_id, what[j->kind],
					j->sub.id_str);
				switch (j->kind) {
				case BK_FAILURE: b->st.reports++; break;
				case BK_DELAY: b->st.reports++; b->st.delay_warnings++; break;
				case BK_SUCCESS: b->st.reports++; b->st.success_notices++; break;
				case BK_DOUBLE: b->st.double_bounces++; break;
				}
			} else {
				log_err("%s: its %s could not be queued: %s", j->orig_id, what[j->kind],
					queue_status_str(j->sub.status));
				b->st.failed++;
			}
			bjob_free(j);
			b->inflight--;
			k++;
		}
		if (n < want)
			break;
	}
	return k;
}
