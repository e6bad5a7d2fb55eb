/*
 * queue_scan.c - the read side for the control plane: due scan, lookup by ID,
 * body, attempt history, list by domain or shard, the per-domain summary
 * (from the aggregates in memory, queue_agg.h). Each call is one short read
 * transaction; nothing is held across calls.
 */
#include "queue/queue_shard.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define SCAN_STATUS(rc) ((rc) == MDB_NOTFOUND ? QUEUE_OK : qshard_status(rc))

int queue_scan_due(struct queue *q, unsigned shard, uint64_t now,
		   struct queue_due *out, size_t max, size_t *n)
{
	struct shard *sh;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	*n = 0;
	if (shard >= q->n)
		return QUEUE_INVALID;
	sh = &q->shard[shard];
	if ((rc = qshard_read_begin(sh, &txn)) != 0)
		return qshard_status(rc);
	if ((rc = mdb_cursor_open(txn, sh->due, &cur)) == 0) {
		for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && *n < max;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			uint64_t when, id;
			if (k.mv_size != QK_DUE_LEN)
				continue;
			qk_due_parse(k.mv_data, &when, &id);
			if (when > now)
				break;	/* sorted by time: the rest is not due */
			out[*n].id = id;
			out[*n].due = when;
			(*n)++;
		}
		mdb_cursor_close(cur);
	}
	qshard_read_end(sh, txn);
	return rc == 0 ? QUEUE_OK : SCAN_STATUS(rc);
}

unsigned queue_msg_attempts(const struct queue_msg *m)
{
	unsigned most = 0;

	for (unsigned i = 0; i < m->nrcpt; i++)
		if (m->rcpt[i].attempts > most)
			most = m->rcpt[i].attempts;
	return m->prior_attempts + most;
}

const char *queue_msg_last_error(const struct queue_msg *m)
{
	const struct queue_msg_rcpt *last = NULL;

	for (unsigned i = 0; i < m->nrcpt; i++) {
		const struct queue_msg_rcpt *r = &m->rcpt[i];
		if (r->state == QUEUE_RCPT_DEFERRED && r->reply && r->reply[0] &&
		    (!last || r->last_attempt > last->last_attempt))
			last = r;
	}
	if (last)
		return last->reply;
	return m->prior_error ? m->prior_error : "";
}

/* Copy a decoded record into one malloc'd queue_msg. */
static struct queue_msg *msg_copy(const struct qrec *r, uint64_t id, unsigned shard)
{
	const char *strs[9] = { r->sender, r->envid, r->client_name, r->client_addr, r->helo,
				r->auth_method, r->auth_user, r->hold_reason, r->prior_error };
	size_t need = sizeof(struct queue_msg) + r->nrcpt * sizeof(struct queue_msg_rcpt);
	struct queue_msg *m;
	char *p;

	for (int i = 0; i < 9; i++)
		need += strlen(strs[i]) + 1;
	for (unsigned i = 0; i < r->nrcpt; i++)
		need += strlen(r->rcpt[i].addr) + strlen(r->rcpt[i].orcpt) +
			strlen(r->rcpt[i].reply) + strlen(r->rcpt[i].dsn) + 4;
	m = calloc(1, need);
	if (!m)
		return NULL;
	m->rcpt = (struct queue_msg_rcpt *)(m + 1);
	p = (char *)(m->rcpt + r->nrcpt);
#define COPY(dst, src) do { size_t l_ = strlen(src) + 1; memcpy(p, src, l_); dst = p; p += l_; } while (0)
	COPY(m->sender, r->sender);
	COPY(m->envid, r->envid);
	COPY(m->client_name, r->client_name);
	COPY(m->client_addr, r->client_addr);
	COPY(m->helo, r->helo);
	COPY(m->auth_method, r->auth_method);
	COPY(m->auth_user, r->auth_user);
	COPY(m->hold_reason, r->hold_reason);
	COPY(m->prior_error, r->prior_error);
	m->prior_attempts = r->prior_attempts;
	for (unsigned i = 0; i < r->nrcpt; i++) {
		COPY(m->rcpt[i].addr, r->rcpt[i].addr);
		COPY(m->rcpt[i].orcpt, r->rcpt[i].orcpt);
		COPY(m->rcpt[i].reply, r->rcpt[i].reply);
		COPY(m->rcpt[i].dsn, r->rcpt[i].dsn);
		m->rcpt[i].notify = r->rcpt[i].notify;
		m->rcpt[i].state = r->rcpt[i].state;
		m->rcpt[i].attempts = r->rcpt[i].attempts;
		m->rcpt[i].last_attempt = r->rcpt[i].last_attempt;
	}
#undef COPY
	m->id = id;
	m->shard = shard;
	m->held = !!(r->flags & QF_HELD);
	m->claimed = !!(r->flags & QF_CLAIMED);
	m->warned = !!(r->flags & QF_WARNED);
	m->held_at = r->held_at;
	m->held_s = r->held_s;
	m->shards = r->shards ? r->shards : 1ull << shard;
	m->token = r->token;
	m->arrival = r->arrival;
	m->expiry = r->expiry;
	m->size = r->size;
	m->due = r->due;
	m->claim_until = r->claim_until;
	m->ret = r->ret;
	m->body_flags = r->body_flags;
	m->nrcpt = r->nrcpt;
	return m;
}

int queue_lookup(struct queue *q, unsigned shard, uint64_t id, struct queue_msg **out)
{
	struct shard *sh;
	struct qrec_rcpt *rcpt;
	struct qrec r;
	MDB_txn *txn;
	uint8_t kb[8];
	MDB_val k = { 8, kb }, v;
	int rc, st;

	*out = NULL;
	if (shard >= q->n)
		return QUEUE_INVALID;
	sh = &q->shard[shard];
	rcpt = malloc(QUEUE_RCPT_MAX * sizeof(*rcpt));
	if (!rcpt)
		return QUEUE_IO;
	qk_id(kb, id);
	if ((rc = qshard_read_begin(sh, &txn)) != 0) {
		free(rcpt);
		return qshard_status(rc);
	}
	rc = mdb_get(txn, sh->msg, &k, &v);
	if (rc) {
		st = qshard_status(rc);
	} else if (qrec_decode(&r, v.mv_data, v.mv_size, rcpt, QUEUE_RCPT_MAX) != 0) {
		log_err("%s: queue: shard %u: corrupt record", qid_str(id).s, shard);
		st = QUEUE_IO;
	} else {
		*out = msg_copy(&r, id, shard);
		st = *out ? QUEUE_OK : QUEUE_IO;
	}
	qshard_read_end(sh, txn);
	free(rcpt);
	return st;
}

int queue_read_body(struct queue *q, unsigned shard, uint64_t id, void *buf,
		    size_t cap, size_t *len)
{
	struct iovec iov = { buf, cap };

	return queue_read_body_iov(q, shard, id, &iov, 1, len);
}

int queue_read_body_iov(struct queue *q, unsigned shard, uint64_t id,
			const struct iovec *iov, unsigned niov, size_t *len)
{
	struct shard *sh;
	MDB_txn *txn;
	MDB_cursor *cur;
	uint8_t kb[QK_BODY_LEN];
	MDB_val k = { qk_body(kb, id, 0), kb }, v;
	uint32_t want = 0;
	int rc, found = 0;
	unsigned vi = 0;	/* the buffer being filled, and how far */
	size_t voff = 0;

	*len = 0;
	if (shard >= q->n)
		return QUEUE_INVALID;
	sh = &q->shard[shard];
	if ((rc = qshard_read_begin(sh, &txn)) != 0)
		return qshard_status(rc);
	if ((rc = mdb_cursor_open(txn, sh->body, &cur)) == 0) {
		for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			if (k.mv_size != QK_BODY_LEN || be64_get(k.mv_data) != id)
				break;
			if (be32_get((const uint8_t *)k.mv_data + 8) != want++) {
				log_err("%s: queue: shard %u: body has a missing chunk", qid_str(id).s, shard);
				rc = EIO;
				break;
			}
			found = 1;
			for (size_t off = 0; off < v.mv_size && vi < niov;) {
				size_t room = iov[vi].iov_len - voff, take = v.mv_size - off;
				if (take > room)
					take = room;
				memcpy((uint8_t *)iov[vi].iov_base + voff,
				       (const uint8_t *)v.mv_data + off, take);
				off += take;
				voff += take;
				if (voff == iov[vi].iov_len) {
					vi++;
					voff = 0;
				}
			}
			*len += v.mv_size;
		}
		mdb_cursor_close(cur);
	}
	qshard_read_end(sh, txn);
	if (rc == MDB_NOTFOUND || rc == 0)
		return found ? QUEUE_OK : QUEUE_NOTFOUND;
	return qshard_status(rc);
}

int queue_history(struct queue *q, unsigned shard, uint64_t id,
		  struct queue_attempt *out, size_t max, size_t *n)
{
	struct shard *sh;
	MDB_txn *txn;
	MDB_cursor *cur;
	uint8_t kb[QK_HIST_LEN];
	MDB_val k = { qk_hist(kb, id, 0), kb }, v;
	int rc;

	*n = 0;
	if (shard >= q->n)
		return QUEUE_INVALID;
	sh = &q->shard[shard];
	if ((rc = qshard_read_begin(sh, &txn)) != 0)
		return qshard_status(rc);
	if ((rc = mdb_cursor_open(txn, sh->hist, &cur)) == 0) {
		for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && *n < max;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			struct qhist h;
			if (k.mv_size != QK_HIST_LEN || be64_get(k.mv_data) != id)
				break;
			if (qhist_decode(&h, v.mv_data, v.mv_size) != 0)
				continue;
			out[*n].time = h.time;
			out[*n].rcpt = h.rcpt;
			out[*n].state = h.state;
			snprintf(out[*n].reply, sizeof(out[*n].reply), "%s", h.reply);
			(*n)++;
		}
		mdb_cursor_close(cur);
	}
	qshard_read_end(sh, txn);
	return rc == 0 ? QUEUE_OK : SCAN_STATUS(rc);
}

int queue_list_domain(struct queue *q, const char *domain, uint64_t after,
		      uint64_t *ids, size_t max, size_t *n)
{
	size_t dl = strlen(domain);
	struct shard *sh;
	MDB_txn *txn;
	MDB_cursor *cur;
	uint8_t kb[QK_DOM_MAX];
	size_t plen;
	MDB_val k, v;
	int rc;

	*n = 0;
	if (q_domain_len(domain, dl) > QUEUE_DOMAIN_MAX)
		return QUEUE_INVALID;
	if (after == UINT64_MAX)
		return QUEUE_OK;	/* nothing sorts after the last ID */
	sh = &q->shard[queue_shard_of(q, domain)];
	plen = qk_dom_prefix(kb, domain, dl);
	k.mv_size = qk_dom(kb, domain, dl, after ? after + 1 : 0);
	k.mv_data = kb;
	if ((rc = qshard_read_begin(sh, &txn)) != 0)
		return qshard_status(rc);
	if ((rc = mdb_cursor_open(txn, sh->dom, &cur)) == 0) {
		for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && *n < max;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			if (k.mv_size != plen + 8 || memcmp(k.mv_data, kb, plen) != 0)
				break;
			ids[(*n)++] = be64_get((const uint8_t *)k.mv_data + plen);
		}
		mdb_cursor_close(cur);
	}
	qshard_read_end(sh, txn);
	return rc == 0 ? QUEUE_OK : SCAN_STATUS(rc);
}

/* The shards of a message part's record (itself when it spans none). */
static uint64_t part_shards(const MDB_val *v, unsigned shard)
{
	uint64_t m = qrec_peek_shards(v->mv_data, v->mv_size);

	return m ? m : 1ull << shard;
}

int queue_refs_domain(struct queue *q, const char *domain, uint64_t after,
		      struct queue_ref *out, size_t max, size_t *n)
{
	size_t dl = strlen(domain);
	unsigned shard;
	struct shard *sh;
	MDB_txn *txn;
	MDB_cursor *cur;
	uint8_t kb[QK_DOM_MAX], ib[8];
	size_t plen;
	MDB_val k, v;
	int rc;

	*n = 0;
	if (q_domain_len(domain, dl) > QUEUE_DOMAIN_MAX)
		return QUEUE_INVALID;
	if (after == UINT64_MAX)
		return QUEUE_OK;
	shard = queue_shard_of(q, domain);
	sh = &q->shard[shard];
	plen = qk_dom_prefix(kb, domain, dl);
	k.mv_size = qk_dom(kb, domain, dl, after ? after + 1 : 0);
	k.mv_data = kb;
	if ((rc = qshard_read_begin(sh, &txn)) != 0)
		return qshard_status(rc);
	if ((rc = mdb_cursor_open(txn, sh->dom, &cur)) == 0) {
		for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && *n < max;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			MDB_val mk = { 8, ib }, mv;
			if (k.mv_size != plen + 8 || memcmp(k.mv_data, kb, plen) != 0)
				break;
			memcpy(ib, (const uint8_t *)k.mv_data + plen, 8);
			out[*n].id = be64_get(ib);
			out[*n].shards = mdb_get(txn, sh->msg, &mk, &mv) == 0 ?
					 part_shards(&mv, shard) : 1ull << shard;
			(*n)++;
		}
		mdb_cursor_close(cur);
	}
	qshard_read_end(sh, txn);
	return rc == 0 ? QUEUE_OK : SCAN_STATUS(rc);
}

int queue_refs_shard(struct queue *q, unsigned shard, uint64_t after,
		     struct queue_ref *out, size_t max, size_t *n)
{
	struct shard *sh;
	MDB_txn *txn;
	MDB_cursor *cur;
	uint8_t kb[8];
	MDB_val k = { 8, kb }, v;
	int rc;

	*n = 0;
	if (shard >= q->n)
		return QUEUE_INVALID;
	if (after == UINT64_MAX)
		return QUEUE_OK;
	sh = &q->shard[shard];
	qk_id(kb, after ? after + 1 : 0);
	if ((rc = qshard_read_begin(sh, &txn)) != 0)
		return qshard_status(rc);
	if ((rc = mdb_cursor_open(txn, sh->msg, &cur)) == 0) {
		for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && *n < max;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			if (k.mv_size != 8)
				continue;
			out[*n].id = be64_get(k.mv_data);
			out[*n].shards = part_shards(&v, shard);
			(*n)++;
		}
		mdb_cursor_close(cur);
	}
	qshard_read_end(sh, txn);
	return rc == 0 ? QUEUE_OK : SCAN_STATUS(rc);
}

/* A decoded record as a queue_msg whose strings point into it (no copy). */
static void msg_view(const struct qrec *r, uint64_t id, unsigned shard, struct queue_msg *m,
		     struct queue_msg_rcpt *rcpt)
{
	memset(m, 0, sizeof(*m));
	m->id = id;
	m->shard = shard;
	m->held = !!(r->flags & QF_HELD);
	m->claimed = !!(r->flags & QF_CLAIMED);
	m->warned = !!(r->flags & QF_WARNED);
	m->token = r->token;
	m->arrival = r->arrival;
	m->expiry = r->expiry;
	m->size = r->size;
	m->due = r->due;
	m->claim_until = r->claim_until;
	m->held_at = r->held_at;
	m->held_s = r->held_s;
	m->shards = r->shards ? r->shards : 1ull << shard;
	m->ret = r->ret;
	m->body_flags = r->body_flags;
	m->sender = r->sender;
	m->envid = r->envid;
	m->client_name = r->client_name;
	m->client_addr = r->client_addr;
	m->helo = r->helo;
	m->auth_method = r->auth_method;
	m->auth_user = r->auth_user;
	m->hold_reason = r->hold_reason;
	m->prior_attempts = r->prior_attempts;
	m->prior_error = r->prior_error;
	m->nrcpt = r->nrcpt;
	m->rcpt = rcpt;
	for (unsigned i = 0; i < r->nrcpt; i++) {
		rcpt[i].addr = r->rcpt[i].addr;
		rcpt[i].orcpt = r->rcpt[i].orcpt;
		rcpt[i].reply = r->rcpt[i].reply;
		rcpt[i].dsn = r->rcpt[i].dsn;
		rcpt[i].notify = r->rcpt[i].notify;
		rcpt[i].state = r->rcpt[i].state;
		rcpt[i].attempts = r->rcpt[i].attempts;
		rcpt[i].last_attempt = r->rcpt[i].last_attempt;
	}
}

int queue_scan_msgs(struct queue *q, unsigned shard, uint64_t after, size_t max,
		    queue_msg_fn fn, void *user, uint64_t *last, int *end)
{
	struct qrec_rcpt *rr;
	struct queue_msg_rcpt *mr;
	struct shard *sh;
	MDB_txn *txn;
	MDB_cursor *cur;
	uint8_t kb[8];
	MDB_val k = { 8, kb }, v;
	size_t seen = 0;
	int rc, stop = 0;

	*last = after;
	*end = 1;
	if (shard >= q->n)
		return QUEUE_INVALID;
	if (after == UINT64_MAX || max == 0) {
		*end = after == UINT64_MAX;
		return QUEUE_OK;
	}
	sh = &q->shard[shard];
	rr = malloc(QUEUE_RCPT_MAX * sizeof(*rr));
	mr = malloc(QUEUE_RCPT_MAX * sizeof(*mr));
	if (!rr || !mr) {
		free(rr);
		free(mr);
		return QUEUE_IO;
	}
	qk_id(kb, after + 1);
	if ((rc = qshard_read_begin(sh, &txn)) != 0) {
		free(rr);
		free(mr);
		return qshard_status(rc);
	}
	if ((rc = mdb_cursor_open(txn, sh->msg, &cur)) == 0) {
		for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			struct qrec r;
			struct queue_msg m;
			uint64_t id;
			if (seen == max || stop) {
				*end = 0;	/* there is more */
				break;
			}
			if (k.mv_size != 8)
				continue;
			id = be64_get(k.mv_data);
			seen++;
			*last = id;
			if (qrec_decode(&r, v.mv_data, v.mv_size, rr, QUEUE_RCPT_MAX) != 0) {
				log_err("%s: queue: shard %u: corrupt record", qid_str(id).s, shard);
				continue;
			}
			msg_view(&r, id, shard, &m, mr);
			stop = fn(user, &m);
		}
		mdb_cursor_close(cur);
	}
	qshard_read_end(sh, txn);
	free(rr);
	free(mr);
	return rc == 0 ? QUEUE_OK : SCAN_STATUS(rc);
}

/* Arrival of the oldest message of a domain: first dom entry, then its record. */
static uint64_t domain_oldest(struct shard *sh, MDB_txn *txn, const char *dom, size_t dl)
{
	uint8_t kb[QK_DOM_MAX], ib[8];
	size_t plen = qk_dom_prefix(kb, dom, dl);
	MDB_val k = { plen, kb }, v;
	MDB_cursor *cur;
	uint64_t arrival = 0;

	if (mdb_cursor_open(txn, sh->dom, &cur) != 0)
		return 0;
	if (mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) == 0 && k.mv_size == plen + 8 &&
	    memcmp(k.mv_data, kb, plen) == 0) {
		memcpy(ib, (const uint8_t *)k.mv_data + plen, 8);
		k.mv_size = 8;
		k.mv_data = ib;
		if (mdb_get(txn, sh->msg, &k, &v) == 0 && v.mv_size >= 22)
			arrival = be64_get((const uint8_t *)v.mv_data + 14);
	}
	mdb_cursor_close(cur);
	return arrival;
}

int queue_domain_oldest(struct queue *q, const char *domain, uint64_t *arrival)
{
	size_t dl = strlen(domain);
	struct shard *sh;
	MDB_txn *txn;
	int rc;

	*arrival = 0;
	if (q_domain_len(domain, dl) > QUEUE_DOMAIN_MAX)
		return QUEUE_INVALID;
	sh = &q->shard[queue_shard_of(q, domain)];
	if ((rc = qshard_read_begin(sh, &txn)) != 0)
		return qshard_status(rc);
	*arrival = domain_oldest(sh, txn, domain, dl);
	qshard_read_end(sh, txn);
	return QUEUE_OK;
}

int queue_summary_ex(struct queue *q, uint64_t now, int exact_oldest,
		     struct queue_domain_sum **out, size_t *n)
{
	struct queue_domain_sum *arr = NULL;
	size_t cap = 0;

	*out = NULL;
	*n = 0;
	for (unsigned s = 0; s < q->n; s++) {
		size_t first = *n;
		struct shard *sh = &q->shard[s];
		MDB_txn *txn;

		if (qagg_domains(&sh->agg, now, &arr, n, &cap) != 0) {
			free(arr);
			*n = 0;
			return QUEUE_IO;
		}
		if (!exact_oldest || first == *n)
			continue;
		/* every domain of a shard lives in that shard: one read txn */
		if (qshard_read_begin(sh, &txn) != 0)
			continue;	/* the slot's start stands */
		for (size_t i = first; i < *n; i++) {
			uint64_t a = domain_oldest(sh, txn, arr[i].domain, strlen(arr[i].domain));
			if (a)
				arr[i].oldest = a;
		}
		qshard_read_end(sh, txn);
	}
	*out = arr;
	return QUEUE_OK;
}

int queue_summary(struct queue *q, uint64_t now, struct queue_domain_sum **out, size_t *n)
{
	return queue_summary_ex(q, now, 1, out, n);
}
