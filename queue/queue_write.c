/*
 * queue_write.c - what a shard's writer does inside its write transaction:
 * store a new message (record, body chunks, indexes), apply a control
 * request (claim, result, reschedule, complete, hold, release, delete, flush,
 * warn; and the writer's own seal and undo of a message spanning shards), and keep
 * the due and domain indexes, and the summary in memory (queue_agg.h), in
 * step with every record. Only
 * the writer thread calls these; the transaction and replay logic are in
 * queue_shard.c.
 *
 * Bodies are cut into chunks of exactly one page's payload (page size minus
 * LMDB's 16-byte page header). Each chunk is an overflow value of one page,
 * so freeing and reusing space never needs a contiguous run of free pages
 * (LMDB searches its free list for such runs, which gets slow and leaves
 * holes when deletes come in random order). The tail chunk, when small,
 * sits inline in a leaf page. Measured with tests/queue/test_churn.c (depth
 * 3000, mixed sizes, random-order completions): the data file settles at
 * 1.31x its pre-churn size after 200k messages and 1.33x after 600k. What
 * remains is mostly LMDB's rule that pages freed by a transaction can be
 * reused only two transactions later, so the file keeps one round of
 * deletes in reserve.
 */
#include "queue/queue_shard.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

static int buf_reserve(uint8_t **buf, size_t *cap, size_t need)
{
	uint8_t *p;
	if (*cap >= need)
		return 0;
	p = realloc(*buf, need);
	if (!p)
		return ENOMEM;
	*buf = p;
	*cap = need;
	return 0;
}

/* ---- indexes ---------------------------------------------------------------- */

/* The class of a record's undone recipients of one domain (queue_agg.h). */
static unsigned agg_class(const struct qrec *r, int deferred)
{
	if (r->flags & QF_HELD)
		return QAGG_HELD;
	if (r->flags & QF_CLAIMED)
		return QAGG_ACTIVE;
	return deferred ? QAGG_DEFERRED : QAGG_INCOMING;
}

/* The first recipient of each domain with undone recipients: *deferred
 * when one of that domain's undone recipients was deferred. 0: not the
 * first of its domain (or done). */
static int domain_first(const struct qrec *r, unsigned i, int *deferred)
{
	size_t dl, ol;
	const char *d = q_addr_domain(r->rcpt[i].addr, &dl);

	*deferred = 0;
	if (r->rcpt[i].state > QUEUE_RCPT_DEFERRED)
		return 0;
	for (unsigned j = 0; j < r->nrcpt; j++) {
		const char *o = q_addr_domain(r->rcpt[j].addr, &ol);
		if (r->rcpt[j].state > QUEUE_RCPT_DEFERRED || !q_domain_eq(d, dl, o, ol))
			continue;
		if (j < i)
			return 0;
		if (r->rcpt[j].state == QUEUE_RCPT_DEFERRED)
			*deferred = 1;
	}
	return 1;
}

void qshard_agg_note(struct shard *sh, const struct qrec *r, int add)
{
	int sign = add ? 1 : -1, deferred;
	bool lead = !r->shards || (unsigned)__builtin_ctzll(r->shards) == sh->idx;

	qagg_note_part(&sh->agg, lead, r->token == 0 && !(r->flags & QF_CLAIMED),
		       !!(r->flags & QF_HELD), r->size, sign);
	for (unsigned i = 0; i < r->nrcpt; i++) {
		size_t dl;
		const char *d = q_addr_domain(r->rcpt[i].addr, &dl);
		if (domain_first(r, i, &deferred))
			qagg_note_domain(&sh->agg, d, dl, r->arrival, agg_class(r, deferred),
					 r->size, sign);
	}
}

int qshard_index(struct shard *sh, MDB_txn *txn, uint64_t id, const struct qrec *r, int add)
{
	uint8_t kb[QK_DOM_MAX];
	MDB_val k, v = { 0, "" };
	int rc;

	if (qrec_in_due(r)) {
		k.mv_size = qk_due(kb, qrec_due_key_time(r), id);
		k.mv_data = kb;
		rc = add ? mdb_put(txn, sh->due, &k, &v, 0) : mdb_del(txn, sh->due, &k, NULL);
		if (rc == MDB_NOTFOUND && !add)
			log_warn("%s: queue: shard %u: due entry missing", qid_str(id).s, sh->idx);
		else if (rc)
			return rc;
	}
	qshard_agg_note(sh, r, add);
	for (unsigned i = 0; i < r->nrcpt; i++) {
		size_t dl;
		const char *d = q_addr_domain(r->rcpt[i].addr, &dl);
		int deferred;

		if (!domain_first(r, i, &deferred))
			continue;
		k.mv_size = qk_dom(kb, d, dl, id);
		k.mv_data = kb;
		rc = add ? mdb_put(txn, sh->dom, &k, &v, 0) : mdb_del(txn, sh->dom, &k, NULL);
		if (rc && !(rc == MDB_NOTFOUND && !add))
			return rc;
	}
	return 0;
}

/* ---- writing a message -------------------------------------------------------- */

/* Put one submission's part for this shard. Returns an LMDB error (fatal to the txn). */
int qwrite_message(struct shard *sh, MDB_txn *txn, struct queue_submission *s, int *st)
{
	struct qrec r = { 0 };
	uint8_t kb[8];
	MDB_val k = { 8, kb }, v;
	size_t len;
	int rc;

	r.arrival = s->env.arrival;
	r.expiry = s->env.expiry;
	r.size = s->size;
	r.due = s->env.due ? s->env.due : s->env.arrival;
	r.prior_attempts = s->env.prior_attempts;
	r.prior_error = s->env.prior_error;
	r.ret = s->env.ret;
	r.body_flags = s->env.body_flags;
	r.sender = s->env.sender;
	r.envid = s->env.envid;
	r.client_name = s->env.client_name;
	r.client_addr = s->env.client_addr;
	r.helo = s->env.helo;
	r.auth_method = s->env.auth_method;
	r.auth_user = s->env.auth_user;
	r.rcpt = sh->rcpt;
	if (qsub_multi(s)) {	/* an intent until every shard has its part: see queue_shard.c */
		r.flags = QF_INTENT;
		r.shards = s->shard_mask;
	}
	if (s->env.held) {	/* kept for the operator (a mail loop): never due until released */
		r.flags |= QF_HELD;
		r.held_at = s->env.arrival;
		r.hold_reason = "mail loop (over hop_limit)";
	}
	for (unsigned i = 0; i < s->env.nrcpt; i++) {
		size_t dl;
		const char *d = q_addr_domain(s->env.rcpt[i].addr, &dl);
		if (q_domain_hash(d, dl) % sh->q->n != sh->idx)
			continue;
		memset(&sh->rcpt[r.nrcpt], 0, sizeof(sh->rcpt[0]));
		sh->rcpt[r.nrcpt].addr = s->env.rcpt[i].addr;
		sh->rcpt[r.nrcpt].orcpt = s->env.rcpt[i].orcpt;
		sh->rcpt[r.nrcpt].notify = s->env.rcpt[i].notify;
		r.nrcpt++;
	}
	len = qrec_size(&r);
	if (buf_reserve(&sh->rbuf, &sh->rbuf_cap, len) || qrec_encode(&r, sh->rbuf, len) != len) {
		*st = QUEUE_INVALID;
		return 0;
	}
	qk_id(kb, s->id);
	v.mv_size = len;
	v.mv_data = sh->rbuf;
	rc = mdb_put(txn, sh->msg, &k, &v, MDB_NOOVERWRITE);
	if (rc == MDB_KEYEXIST) {
		log_err("%s: queue: shard %u: duplicate queue ID", s->id_str, sh->idx);
		*st = QUEUE_INVALID;
		return 0;
	}
	if (rc)
		return rc;
	/* the body, chunk by chunk, gathered straight from the caller's iovecs */
	{
		unsigned seg = 0;
		size_t seg_off = 0, left = s->size;
		uint32_t ci = 0;
		uint8_t bk[QK_BODY_LEN];

		do {
			size_t clen = left < sh->chunk ? left : sh->chunk;
			MDB_val ck = { qk_body(bk, s->id, ci++), bk }, cv = { clen, NULL };
			if ((rc = mdb_put(txn, sh->body, &ck, &cv, MDB_RESERVE)) != 0)
				return rc;
			for (size_t done = 0; done < clen;) {
				size_t n = s->iov[seg].iov_len - seg_off;
				if (n > clen - done)
					n = clen - done;
				memcpy((uint8_t *)cv.mv_data + done,
				       (const uint8_t *)s->iov[seg].iov_base + seg_off, n);
				done += n;
				seg_off += n;
				if (seg_off == s->iov[seg].iov_len) {
					seg++;
					seg_off = 0;
				}
			}
			left -= clen;
		} while (left > 0);
	}
	return qshard_index(sh, txn, s->id, &r, 1);
}

/* ---- control requests ------------------------------------------------------------ */


/* Delete every key of dbi that starts with id(8) (body chunks, history). */
static int del_range(MDB_txn *txn, MDB_dbi dbi, uint64_t id)
{
	uint8_t kb[QK_BODY_LEN];
	MDB_val k = { qk_body(kb, id, 0), kb }, v;
	MDB_cursor *cur;
	int rc;

	if ((rc = mdb_cursor_open(txn, dbi, &cur)) != 0)
		return rc;
	for (;;) {
		/* seek afresh each time: no reliance on cursor state after a delete */
		k.mv_size = qk_body(kb, id, 0);
		k.mv_data = kb;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc || k.mv_size != QK_BODY_LEN || be64_get(k.mv_data) != id)
			break;
		if ((rc = mdb_cursor_del(cur, 0)) != 0)
			break;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int delete_all(struct shard *sh, MDB_txn *txn, uint64_t id, const struct qrec *r)
{
	uint8_t kb[8];
	MDB_val k = { 8, kb };
	int rc;

	if ((rc = qshard_index(sh, txn, id, r, 0)) != 0)
		return rc;
	qk_id(kb, id);
	if ((rc = mdb_del(txn, sh->msg, &k, NULL)) != 0)
		return rc;
	if ((rc = del_range(txn, sh->body, id)) != 0 || (rc = del_range(txn, sh->hist, id)) != 0)
		return rc;
	sh->freed_bytes += r->size + 256;
	return 0;
}

static int claim_ok(const struct qrec *r, const struct qctl *c)
{
	return (r->flags & QF_CLAIMED) && r->token == c->token;
}

/* Apply one control request. Sets c->status; returns an LMDB error fatal to the txn. */
int qwrite_ctl(struct shard *sh, MDB_txn *txn, struct qctl *c)
{
	uint8_t kb[QK_HIST_LEN];
	MDB_val k = { 8, kb }, v;
	struct qrec r;
	size_t len;
	int rc, undone = 0;

	c->status = QUEUE_OK;
	qk_id(kb, c->id);
	rc = mdb_get(txn, sh->msg, &k, &v);
	if (rc == MDB_NOTFOUND) {
		c->status = QUEUE_NOTFOUND;
		return 0;
	}
	if (rc)
		return rc;
	/* decode a private copy: puts may move the page the value sits on */
	if (buf_reserve(&sh->obuf, &sh->obuf_cap, v.mv_size))
		return ENOMEM;
	memcpy(sh->obuf, v.mv_data, v.mv_size);
	if (qrec_decode(&r, sh->obuf, v.mv_size, sh->rcpt, QUEUE_RCPT_MAX) != 0) {
		log_err("%s: queue: shard %u: corrupt record", qid_str(c->id).s, sh->idx);
		c->status = QUEUE_IO;
		return 0;
	}
	for (unsigned i = 0; i < r.nrcpt; i++)
		undone += r.rcpt[i].state <= QUEUE_RCPT_DEFERRED;

	/* validate before touching anything */
	switch (c->op) {
	case QCTL_CLAIM:
		/* an intent may be a part of a message the client must retry;
		 * a forced claim (the operator's bounce) takes held and not yet
		 * due parts too */
		if ((r.flags & QF_INTENT) || !undone)
			c->status = QUEUE_STATE;
		else if ((r.flags & QF_HELD) && !(c->flags & QUEUE_CLAIM_FORCE))
			c->status = QUEUE_STATE;
		else if ((r.flags & QF_CLAIMED) && r.claim_until > c->now)
			c->status = QUEUE_STALE;
		else if (!(r.flags & QF_CLAIMED) && r.due > c->now &&
			 !(c->flags & QUEUE_CLAIM_FORCE))
			c->status = QUEUE_STATE;
		break;
	case QCTL_RESULT:
		if (!claim_ok(&r, c))
			c->status = QUEUE_STALE;
		else if (c->rcpt >= r.nrcpt || c->state < QUEUE_RCPT_DEFERRED ||
			 c->state > QUEUE_RCPT_BOUNCED)
			c->status = QUEUE_INVALID;
		else if (r.rcpt[c->rcpt].state > QUEUE_RCPT_DEFERRED)
			c->status = QUEUE_STATE;
		break;
	case QCTL_RESCHEDULE:
		if (!claim_ok(&r, c))
			c->status = QUEUE_STALE;
		break;
	case QCTL_COMPLETE:
		if (!claim_ok(&r, c))
			c->status = QUEUE_STALE;
		else if (undone)
			c->status = QUEUE_STATE;
		break;
	case QCTL_FLUSH:
		if ((r.flags & (QF_HELD | QF_CLAIMED | QF_INTENT)) || !undone)
			c->status = QUEUE_STATE;
		else if (r.due <= c->now)
			return 0;	/* due already: nothing to write */
		break;
	default:
		break;
	}
	if (c->status != QUEUE_OK)
		return 0;
	if (c->op == QCTL_SEAL && !(r.flags & QF_INTENT))
		return 0;	/* sealed already */
	if (c->op == QCTL_COMPLETE || c->op == QCTL_DELETE || c->op == QCTL_UNDO)
		return delete_all(sh, txn, c->id, &r);

	if ((rc = qshard_index(sh, txn, c->id, &r, 0)) != 0)
		return rc;
	switch (c->op) {
	case QCTL_CLAIM:
		r.flags |= QF_CLAIMED;
		r.token++;
		r.claim_until = c->now + c->lease_s;
		c->out_token = r.token;
		break;
	case QCTL_RESULT: {
		struct qrec_rcpt *rc_ = &r.rcpt[c->rcpt];
		struct qhist h = { c->now, (uint16_t)c->rcpt, c->state, c->reply };
		uint8_t hb[QUEUE_REPLY_MAX + 32];
		MDB_val hk = { qk_hist(kb, c->id, r.hist_seq), kb }, hv;

		rc_->state = c->state;
		rc_->attempts++;
		rc_->last_attempt = c->now;
		rc_->reply = c->reply;
		rc_->dsn = c->dsn;
		hv.mv_size = qhist_encode(&h, hb, sizeof(hb));
		hv.mv_data = hb;
		if (hv.mv_size == 0)
			return EINVAL;
		if ((rc = mdb_put(txn, sh->hist, &hk, &hv, 0)) != 0)
			return rc;
		r.hist_seq++;
		qk_id(kb, c->id);	/* kb is the message key again */
		break;
	}
	case QCTL_RESCHEDULE:
		r.flags &= (uint8_t)~QF_CLAIMED;
		r.claim_until = 0;
		r.due = c->when;
		break;
	case QCTL_HOLD:
		if (!(r.flags & QF_HELD)) {
			r.held_at = c->now;
			r.hold_reason = c->reply;	/* the first hold's reason stays */
		}
		r.flags |= QF_HELD;
		break;
	case QCTL_WARN:
		r.flags |= QF_WARNED;
		break;
	case QCTL_SEAL:
		r.flags &= (uint8_t)~QF_INTENT;
		break;
	case QCTL_FLUSH:
		r.due = c->now;
		break;
	case QCTL_RELEASE:
		if (r.flags & QF_HELD) {
			/* held mail does not expire while held: the time counts */
			if (r.held_at && c->now > r.held_at)
				r.held_s += c->now - r.held_at;
			r.held_at = 0;
			r.hold_reason = "";
			r.flags &= (uint8_t)~QF_HELD;
			if (!(r.flags & QF_CLAIMED))
				r.due = c->now;
		}
		break;
	default:
		break;
	}
	if ((rc = qshard_index(sh, txn, c->id, &r, 1)) != 0)
		return rc;
	len = qrec_size(&r);
	if (buf_reserve(&sh->rbuf, &sh->rbuf_cap, len) || qrec_encode(&r, sh->rbuf, len) != len)
		return ENOMEM;
	k.mv_size = 8;
	k.mv_data = kb;
	v.mv_size = len;
	v.mv_data = sh->rbuf;
	return mdb_put(txn, sh->msg, &k, &v, 0);
}

