/*
 * sched_xfer.c - the transfer to another box (`sluicectl transfer --to
 * HOST[:PORT]`, struct sxfer): while it is on, every part routed goes, all
 * its undone recipients in one item, to that box with XSLUICE (its queue
 * history), whatever their domains; the other box's 2xx removes it here,
 * anything else is not an attempt. Its start makes every queued message
 * due (and, --include-held, releases the held ones). Internals of the
 * scheduler: see sched_int.h.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "control/sched_int.h"
#include "dataplane/smtp/xsluice.h"

/*
 * Recipient i of a part being transferred came out as o. The other box's
 * 2xx: final here (a RESULT op as sent, so the part can be completed and
 * removed), no notice of any kind, logged "status=transferred to=[HOST]".
 * Anything else is not a delivery attempt of the message: nothing is
 * recorded, nothing bounces, and the recipient is due again after
 * local_retry_s (the transfer, or its own schedule once the transfer ended).
 */
void sched_xfer_record(struct sched *s, struct spart *p, unsigned i, const struct outcome *o)
{
	struct srcpt *r = &p->r[i];
	char status[sizeof("transferred to=") + sizeof(s->xfer.key)];

	snprintf(status, sizeof(status), "transferred to=%s", s->xfer.key);
	if (o->state != QUEUE_RCPT_SENT) {
		char text[TEXT_MAX];
		struct outcome f = *o;
		r->next_s = s->now_s + s->c.local_retry_s;
		s->st.xfer_failed++;
		s->xfer.failed++;
		sched_textf(text, sizeof(text), "transfer to %s failed, not an attempt: %s",
			    s->xfer.key, o->text);
		f.text = text;
		sched_log_status(s, p, i, &f, "deferred", o->dsn ? o->dsn : "4.0.0");
		return;
	}
	r->state = QUEUE_RCPT_SENT;
	r->next_s = 0;
	r->at = s->now_s;
	r->note = NOTE_NONE;
	snprintf(r->dsn, sizeof(r->dsn), "%s", o->dsn ? o->dsn : "2.0.0");
	s->st.xfer_rcpt++;
	s->xfer.rcpt_moved++;
	if (!p->broken)
		sched_result_op(s, p, i, QUEUE_RCPT_SENT, o->text);
	sched_log_status(s, p, i, o, status, r->dsn);
}

/* A transfer is on: every undone recipient of p, whatever its domain, in
 * one item to the transfer's box (cut into transactions as any route's). */
void sched_xfer_route(struct sched *s, struct spart *p)
{
	struct route_result r = { .status = ROUTE_OK, .n = 1 };
	struct sitem *it;
	unsigned n = 0;

	p->xfer = true;
	p->open = 1;	/* held while it is routed */
	for (unsigned i = 0; i < p->m->nrcpt; i++)
		n += p->r[i].state <= QUEUE_RCPT_DEFERRED;
	it = n ? sched_item_new(p, n) : NULL;
	if (n && !it) {
		log_err("%s: out of memory to transfer it", p->ids);
		p->broken = true;
	}
	if (it) {
		n = 0;
		for (unsigned i = 0; i < p->m->nrcpt; i++)
			if (p->r[i].state <= QUEUE_RCPT_DEFERRED)
				it->rcpt[n++] = (uint16_t)i;
		snprintf(r.dest, sizeof(r.dest), "%s", s->xfer.key);
		if (net_addr_is_v6(&s->xfer.addr)) {
			r.hop[0].family = AF_INET6;
			memcpy(r.hop[0].addr, s->xfer.addr.v6, 16);
		} else {
			r.hop[0].family = AF_INET;
			memcpy(r.hop[0].addr, &s->xfer.addr.v4, 4);
		}
		r.hop[0].port = s->xfer.port;
		r.hop[0].tls = ROUTE_TLS_MAY;
		snprintf(r.hop[0].mx, sizeof(r.hop[0].mx), "%s", s->xfer.key);
		sched_route_item(s, it, &r);
	}
	if (--p->open == 0)
		sched_part_finish(s, p);
}

/*
 * The XSLUICE value of part p (xsluice.h): its arrival, its attempts (those
 * it brought included), its next try as its own retry schedule gives it
 * after its last attempt here (now when it was never tried here), its
 * expiry (pushed back by the time it spent held, as here) and its last
 * error. 0, or -1 when a value is out of XSLUICE's bounds.
 */
int sched_xsluice_of(const struct queue_msg *m, const struct retry_policy *rp, uint64_t now,
		     char *out, size_t cap)
{
	struct xsluice x = { .arrival = m->arrival, .expiry = m->expiry + m->held_s };
	unsigned att = queue_msg_attempts(m);
	uint64_t next = 0;

	for (unsigned i = 0; i < m->nrcpt; i++) {
		const struct queue_msg_rcpt *r = &m->rcpt[i];
		char dom[DOMAIN_MAX + 1];
		uint64_t t;
		if (r->state != QUEUE_RCPT_DEFERRED || !r->attempts)
			continue;
		sched_addr_domain(r->addr, dom);
		t = retry_next_for(rp, dom, m->arrival, r->last_attempt,
				   r->attempts + m->prior_attempts, m->id);
		if (!next || t < next)
			next = t;
	}
	x.next_try = next ? next : now;
	if (x.next_try < x.arrival)
		x.next_try = x.arrival;
	if (x.expiry < x.arrival)
		x.expiry = x.arrival;
	x.attempts = att > XSLUICE_ATTEMPTS_MAX ? XSLUICE_ATTEMPTS_MAX : att;
	snprintf(x.last_error, sizeof(x.last_error), "%s", queue_msg_last_error(m));
	return xsluice_format(&x, out, cap) < 0 ? -1 : 0;
}

/* A transfer job: XSLUICE with p's history, required of the next hop. */
void sched_xfer_job(struct sched *s, struct dlv_job *j, const struct spart *p)
{
	char v[XSLUICE_PARAM_MAX + 1];

	if (sched_xsluice_of(p->m, s->e.retry, s->now_s, v, sizeof(v)) < 0 ||
	    dlv_job_xsluice(j, v) < 0) {
		/* cannot happen with a record's values; never sent without it */
		log_err("%s: cannot state its queue history for the transfer", p->ids);
		j->msg.xsluice = NULL;
	}
	j->msg.xsluice_required = true;
}

/* ---- the transfer to another box ---- */

/* A page of release_held's: the RELEASE ops of one shard's held parts. */
struct held_page {
	struct queue_op *ops;
	size_t n;
	unsigned sh;
	uint64_t now;
};

/* queue_scan_msgs' visitor for release_held: a RELEASE op per held part. */
static int held_collect(void *user, const struct queue_msg *m)
{
	struct held_page *c = user;

	if (m->held)
		c->ops[c->n++] = (struct queue_op){ .op = QUEUE_OP_RELEASE, .shard = c->sh,
						    .id = m->id, .now = c->now };
	return 0;
}

/* Release every held part (for a transfer --include-held): pages of the
 * shard's parts, the held ones released in one apply per page. */
static int release_held(struct sched *s, uint64_t *n)
{
	enum { PAGE = 1024 };
	struct queue_op *ops = malloc(PAGE * sizeof(*ops));
	unsigned nshards = queue_nshards(s->e.q);
	int first = QUEUE_OK;

	if (!ops)
		return QUEUE_IO;
	for (unsigned sh = 0; sh < nshards; sh++) {
		uint64_t after = 0;
		int end = 0;
		while (!end) {
			struct held_page c = { ops, 0, sh, s->now_s };
			int st = queue_scan_msgs(s->e.q, sh, after, PAGE, held_collect, &c, &after,
						 &end);
			if (st != QUEUE_OK) {
				if (first == QUEUE_OK)
					first = st;
				break;
			}
			if (c.n)
				queue_apply(s->e.q, ops, c.n);
			for (size_t i = 0; i < c.n; i++)
				*n += ops[i].status == QUEUE_OK;
		}
	}
	free(ops);
	return first;
}

int sched_transfer_start(struct sched *s, const struct net_addr *to, uint16_t port,
			 bool include_held, uint64_t *made_due)
{
	char ip[NET_ADDR_STRLEN];
	bool v6 = net_addr_is_v6(to);
	unsigned n = 0;
	int st;

	*made_due = 0;
	if (s->xfer.on)
		return QUEUE_STATE;
	if ((to->family != NET_AF_INET && !v6) || net_addr_is_zero(to) || !port)
		return QUEUE_INVALID;
	net_addr_str(to, ip, sizeof(ip));
	sched_tick(s);
	memset(&s->xfer, 0, sizeof(s->xfer));
	s->xfer.addr = *to;
	s->xfer.port = port;
	s->xfer.include_held = include_held;
	snprintf(s->xfer.key, sizeof(s->xfer.key), "[%s%s]:%u", v6 ? "IPv6:" : "", ip, port);
	s->xfer.started_s = s->now_s;
	s->xfer.on = true;
	if (include_held && (st = release_held(s, &s->xfer.released)) != QUEUE_OK)
		log_err("transfer: releasing the held mail: %s", queue_status_str(st));
	/* at once, whatever each message's next try (the XSLUICE value
	 * carries it, from its history); held mail stays held */
	st = sched_flush_all(s, &n);
	s->xfer.made_due = n;
	*made_due = n;
	log_notice("transfer: every queued message goes to %s now (%u made due%s)", s->xfer.key,
		   n, include_held ? ", held mail released" : ", held mail stays");
	return st == QUEUE_OK ? QUEUE_OK : st;
}

int sched_transfer_cancel(struct sched *s)
{
	if (!s->xfer.on)
		return QUEUE_NOTFOUND;
	sched_tick(s);
	s->xfer.on = false;
	s->xfer.stopped_s = s->now_s;
	log_notice("transfer to %s cancelled: %llu message parts moved, %llu recipient "
		   "transfers failed; what is left keeps its own schedule (parts in flight "
		   "finish their transfer)", s->xfer.key, (unsigned long long)s->xfer.moved,
		   (unsigned long long)s->xfer.failed);
	return QUEUE_OK;
}

json_t *sched_transfer_json(struct sched *s)
{
	struct queue_totals t;

	queue_totals_get(s->e.q, &t);
	return json_pack("{s:b,s:s,s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "active", s->xfer.on,
			 "to", s->xfer.key, "include_held", s->xfer.include_held, "started",
			 (json_int_t)s->xfer.started_s, "stopped", (json_int_t)s->xfer.stopped_s,
			 "moved", (json_int_t)s->xfer.moved, "recipients_moved",
			 (json_int_t)s->xfer.rcpt_moved, "failed", (json_int_t)s->xfer.failed,
			 "left", (json_int_t)t.messages, "held", (json_int_t)t.held,
			 "released", (json_int_t)s->xfer.released, "made_due",
			 (json_int_t)s->xfer.made_due);
}
