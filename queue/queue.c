/*
 * queue.c - the queue as a whole: configuration defaults, open/close, the
 * producers' submit path, and the control-plane write operations (which are
 * requests to the shard writers). See queue.h for the contract.
 */
#include "queue/queue.h"
#include "queue/queue_id.h"
#include "queue/queue_recover.h"
#include "queue/queue_shard.h"

#include <errno.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <rte_ring.h>

#include "common/clock.h"
#include "common/log.h"

const char *queue_status_str(int status)
{
	static const char *const names[] = {
		[QUEUE_OK] = "ok", [QUEUE_NOSPACE] = "no space",
		[QUEUE_BUSY] = "busy", [QUEUE_INVALID] = "invalid",
		[QUEUE_IO] = "i/o error", [QUEUE_NOTFOUND] = "not found",
		[QUEUE_STALE] = "stale claim", [QUEUE_STATE] = "wrong state",
		[QUEUE_CLOSED] = "closed",
	};
	if (status < 0 || (size_t)status >= sizeof(names) / sizeof(names[0]))
		return "?";
	return names[status];
}

void queue_conf_defaults(struct queue_conf *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->dir, sizeof(c->dir), "/var/spool/sluice");
	c->shards = 4;
	c->map_size = 256ull << 20;
	c->map_max = 64ull << 30;
	c->batch_max = 512;
	c->batch_bytes = 32ull << 20;	/* ~8k dirty pages: far under MDB_TXN_FULL (~128k) */
	c->ring_size = 4096;
	c->disk_reserve = 4u << 20;
	c->lease_s = 600;
	c->sync = QUEUE_SYNC_FULL;	/* measured: see queue_shard.c */
}

unsigned queue_nshards(const struct queue *q)
{
	return q->n;
}

unsigned queue_shard_of(const struct queue *q, const char *domain)
{
	return q_domain_hash(domain, strlen(domain)) % q->n;	/* any spelling */
}

void queue_totals_get(struct queue *q, struct queue_totals *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < q->n; i++)
		qagg_totals(&q->shard[i].agg, out);
}

void queue_stats(const struct queue *q, unsigned shard, struct queue_shard_stats *out)
{
	if (shard < q->n)
		*out = q->shard[shard].st_c;
	else
		memset(out, 0, sizeof(*out));
}

void queue_commit_histo(const struct queue *q, unsigned shard, struct histo *out)
{
	if (shard < q->n)
		*out = q->shard[shard].commit_ns;
	else
		memset(out, 0, sizeof(*out));
}

int queue_depth(struct queue *q, unsigned shard, struct queue_depth *out)
{
	struct shard *sh;
	MDB_txn *txn;
	MDB_stat ms, ds;
	int rc;

	memset(out, 0, sizeof(*out));
	if (shard >= q->n)
		return QUEUE_INVALID;
	sh = &q->shard[shard];
	if (qshard_read_begin(sh, &txn) != 0)
		return QUEUE_IO;
	rc = mdb_stat(txn, sh->msg, &ms);
	if (rc == 0)
		rc = mdb_stat(txn, sh->due, &ds);
	qshard_read_end(sh, txn);
	if (rc != 0)
		return QUEUE_IO;
	out->messages = ms.ms_entries;
	out->due = ds.ms_entries;
	return QUEUE_OK;
}

struct queue *queue_open(const struct queue_conf *conf, int *status)
{
	struct queue *q;
	uint64_t resv_max = 0, now = clock_real_s();
	int rc = 0;

	*status = QUEUE_INVALID;
	if (conf->shards == 0 || conf->shards > QUEUE_SHARDS_MAX || conf->batch_max == 0 ||
	    conf->ring_size < 2 || conf->map_size == 0 || conf->map_max < conf->map_size ||
	    conf->batch_bytes == 0)
		return NULL;
	if (mkdir(conf->dir, 0700) != 0 && errno != EEXIST) {
		log_err("queue: mkdir %s: %s", conf->dir, strerror(errno));
		*status = QUEUE_IO;
		return NULL;
	}
	q = calloc(1, sizeof(*q));
	if (!q) {
		*status = QUEUE_IO;
		return NULL;
	}
	q->conf = *conf;
	q->n = conf->shards;
	for (unsigned i = 0; i < q->n && rc == 0; i++)
		rc = qshard_open(q, &q->shard[i], i);
	{
		struct qintents found = { 0 };
		for (unsigned i = 0; i < q->n && rc == 0; i++) {
			uint64_t resv = 0;
			rc = qrecover_shard(&q->shard[i], now, &resv, &found);
			if (resv > resv_max)
				resv_max = resv;
		}
		if (rc == 0)
			rc = qrecover_intents(q, &found);	/* needs every shard: after the loop */
		free(found.v);
		for (unsigned i = 0; i < q->n && rc == 0; i++)
			rc = qrecover_agg(&q->shard[i]);
	}
	if (rc) {
		*status = qshard_status(rc) == QUEUE_NOSPACE ? QUEUE_NOSPACE : QUEUE_IO;
		for (unsigned i = 0; i < q->n; i++)
			qshard_close(&q->shard[i]);
		free(q);
		return NULL;
	}
	{
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		atomic_store(&q->next_id, qid_first(resv_max, (uint64_t)ts.tv_sec * 1000000ull +
							       (uint64_t)ts.tv_nsec / 1000));
	}
	for (unsigned i = 0; i < q->n; i++) {
		if (qshard_start(&q->shard[i]) != 0) {
			queue_close(q);
			*status = QUEUE_IO;
			return NULL;
		}
	}
	log_info("queue: opened %s, %u shards, sync=%s", conf->dir, q->n,
		 conf->sync == QUEUE_SYNC_NOMETA ? "nometa" : "full");
	*status = QUEUE_OK;
	return q;
}

void queue_close(struct queue *q)
{
	if (!q)
		return;
	atomic_store(&q->closing, 1);
	for (unsigned i = 0; i < q->n; i++)
		qshard_stop(&q->shard[i]);
	for (unsigned i = 0; i < q->n; i++)
		qshard_close(&q->shard[i]);
	free(q);
}

/* ---- producers ----------------------------------------------------------------- */

static int str_ok(const char *s, size_t max)
{
	return !s || strnlen(s, max + 1) <= max;
}

int queue_submit(struct queue *q, struct queue_submission *s)
{
	uint64_t mask = 0, size = 0;
	unsigned taken = 0;

	if (atomic_load_explicit(&q->closing, memory_order_relaxed))
		return QUEUE_CLOSED;
	if (!s->done || s->env.nrcpt == 0 || s->env.nrcpt > QUEUE_RCPT_MAX || !s->env.rcpt ||
	    (s->iovcnt && !s->iov) || !str_ok(s->env.sender, QUEUE_ADDR_MAX) ||
	    !str_ok(s->env.envid, QUEUE_TEXT_MAX) || !str_ok(s->env.client_name, QUEUE_TEXT_MAX) ||
	    !str_ok(s->env.client_addr, QUEUE_TEXT_MAX) || !str_ok(s->env.helo, QUEUE_TEXT_MAX) ||
	    !str_ok(s->env.auth_method, QUEUE_TEXT_MAX) || !str_ok(s->env.auth_user, QUEUE_TEXT_MAX))
		return QUEUE_INVALID;
	for (unsigned i = 0; i < s->env.nrcpt; i++) {
		size_t dl;
		const char *d;
		if (!s->env.rcpt[i].addr || !str_ok(s->env.rcpt[i].addr, QUEUE_ADDR_MAX) ||
		    !str_ok(s->env.rcpt[i].orcpt, QUEUE_ORCPT_MAX))
			return QUEUE_INVALID;
		d = q_addr_domain(s->env.rcpt[i].addr, &dl);
		if (q_domain_len(d, dl) > QUEUE_DOMAIN_MAX)
			return QUEUE_INVALID;
		mask |= 1ull << (q_domain_hash(d, dl) % q->n);
	}
	for (unsigned i = 0; i < s->iovcnt; i++)
		size += s->iov[i].iov_len;

	/* reserve a ring slot in every shard first, so the enqueues cannot fail */
	for (unsigned i = 0; i < q->n; i++) {
		if (!(mask >> i & 1))
			continue;
		if (atomic_fetch_sub(&q->shard[i].credits, 1) <= 0) {
			atomic_fetch_add(&q->shard[i].credits, 1);
			for (unsigned j = 0; j < i; j++)
				if (mask >> j & 1)
					atomic_fetch_add(&q->shard[j].credits, 1);
			return QUEUE_BUSY;
		}
		taken++;
	}
	s->id = s->reserved_id ? s->reserved_id : atomic_fetch_add(&q->next_id, 1);
	queue_id_format(s->id, s->id_str);
	s->size = size;
	s->status = QUEUE_OK;
	s->shard_mask = mask;
	s->phase = QSUB_WRITE;
	atomic_store(&s->written, 0);
	atomic_store(&s->err, QUEUE_OK);
	atomic_store(&s->pending, taken);
	if (taken > 1)
		atomic_fetch_add(&q->multi_inflight, 1);
	for (unsigned i = 0; i < q->n; i++)
		if (mask >> i & 1)
			while (rte_ring_mp_enqueue(q->shard[i].in, s) != 0)
				;	/* cannot happen: a slot was reserved */
	return QUEUE_OK;
}

uint64_t queue_id_reserve(struct queue *q)
{
	return atomic_fetch_add(&q->next_id, 1);
}

/* ---- control-plane writes ---------------------------------------------------------- */

#define APPLY_CHUNK 1024	/* requests in flight per call: bounds the memory */

int queue_apply(struct queue *q, struct queue_op *ops, size_t n)
{
	struct qctl *c;
	sem_t done;
	int first = QUEUE_OK;

	if (n == 0)
		return QUEUE_OK;
	c = calloc(n < APPLY_CHUNK ? n : APPLY_CHUNK, sizeof(*c));
	if (!c || sem_init(&done, 0, 0) != 0) {
		free(c);
		return QUEUE_IO;
	}
	for (size_t base = 0; base < n; base += APPLY_CHUNK) {
		size_t m = n - base < APPLY_CHUNK ? n - base : APPLY_CHUNK, posted = 0;

		for (size_t i = 0; i < m; i++) {
			struct queue_op *o = &ops[base + i];
			struct qctl *r = &c[i];

			memset(r, 0, sizeof(*r));
			r->op = (enum qctl_op)o->op;
			r->id = o->id;
			r->token = o->token;
			r->now = o->now;
			r->when = o->when;
			r->lease_s = o->lease_s ? o->lease_s : q->conf.lease_s;
			r->rcpt = o->rcpt;
			r->flags = o->flags;
			r->state = (uint8_t)o->state;
			snprintf(r->reply, sizeof(r->reply), "%s", o->reply ? o->reply : "");
			/* only a well-formed status is kept: "X.Y.Z", digits */
			if (o->dsn && strlen(o->dsn) < sizeof(r->dsn) &&
			    strspn(o->dsn, "0123456789.") == strlen(o->dsn))
				snprintf(r->dsn, sizeof(r->dsn), "%s", o->dsn);
			r->done = &done;
			if (o->shard >= q->n || o->op > QUEUE_OP_LAST)
				r->status = QUEUE_INVALID;
			else if ((r->status = qshard_ctl_post(&q->shard[o->shard], r)) == QUEUE_OK) {
				posted++;
				continue;
			}
			r->done = NULL;	/* not posted: status already final */
		}
		for (size_t i = 0; i < posted; i++)
			while (sem_wait(&done) != 0 && errno == EINTR)
				;
		for (size_t i = 0; i < m; i++) {
			ops[base + i].status = c[i].status;
			ops[base + i].out_token = c[i].out_token;
			if (c[i].status != QUEUE_OK && first == QUEUE_OK)
				first = c[i].status;
		}
	}
	sem_destroy(&done);
	free(c);
	return first;
}

static int op_one(struct queue *q, struct queue_op *o)
{
	queue_apply(q, o, 1);
	return o->status;
}

int queue_claim(struct queue *q, unsigned shard, uint64_t id, uint64_t now,
		unsigned lease_s, uint32_t *token)
{
	struct queue_op o = { .op = QUEUE_OP_CLAIM, .shard = shard, .id = id, .now = now,
			      .lease_s = lease_s };
	int st = op_one(q, &o);
	if (st == QUEUE_OK)
		*token = o.out_token;
	return st;
}

int queue_result(struct queue *q, unsigned shard, uint64_t id, uint32_t token,
		 unsigned rcpt, enum queue_rcpt_state state, const char *reply, uint64_t now)
{
	struct queue_op o = { .op = QUEUE_OP_RESULT, .shard = shard, .id = id, .token = token,
			      .rcpt = rcpt, .state = state, .reply = reply, .now = now };
	return op_one(q, &o);
}

int queue_reschedule(struct queue *q, unsigned shard, uint64_t id, uint32_t token,
		     uint64_t when)
{
	struct queue_op o = { .op = QUEUE_OP_RESCHEDULE, .shard = shard, .id = id,
			      .token = token, .when = when };
	return op_one(q, &o);
}

int queue_complete(struct queue *q, unsigned shard, uint64_t id, uint32_t token)
{
	struct queue_op o = { .op = QUEUE_OP_COMPLETE, .shard = shard, .id = id, .token = token };
	return op_one(q, &o);
}

/* Apply an operator action to every shard; OK if any shard had the message. */
static int op_all(struct queue *q, enum queue_op_kind op, uint64_t id, uint64_t now)
{
	struct queue_op o[QUEUE_SHARDS_MAX];
	int found = 0, err = QUEUE_OK;

	for (unsigned i = 0; i < q->n; i++)
		o[i] = (struct queue_op){ .op = op, .shard = i, .id = id, .now = now };
	queue_apply(q, o, q->n);
	for (unsigned i = 0; i < q->n; i++) {
		if (o[i].status == QUEUE_OK)
			found = 1;
		else if (o[i].status != QUEUE_NOTFOUND)
			err = o[i].status;
	}
	if (err != QUEUE_OK)
		return err;
	return found ? QUEUE_OK : QUEUE_NOTFOUND;
}

int queue_hold(struct queue *q, uint64_t id)
{
	return op_all(q, QUEUE_OP_HOLD, id, clock_real_s());
}

int queue_release(struct queue *q, uint64_t id, uint64_t now)
{
	return op_all(q, QUEUE_OP_RELEASE, id, now);
}

int queue_delete(struct queue *q, uint64_t id)
{
	return op_all(q, QUEUE_OP_DELETE, id, 0);
}

int queue_flush(struct queue *q, uint64_t id, uint64_t now)
{
	struct queue_op o[QUEUE_SHARDS_MAX];
	int found = 0, moved = 0;

	for (unsigned i = 0; i < q->n; i++)
		o[i] = (struct queue_op){ .op = QUEUE_OP_FLUSH, .shard = i, .id = id, .now = now };
	queue_apply(q, o, q->n);
	for (unsigned i = 0; i < q->n; i++) {
		if (o[i].status == QUEUE_OK)
			moved = 1;
		else if (o[i].status == QUEUE_STATE)
			found = 1;
		else if (o[i].status != QUEUE_NOTFOUND)
			return o[i].status;
	}
	return moved ? QUEUE_OK : found ? QUEUE_STATE : QUEUE_NOTFOUND;
}
