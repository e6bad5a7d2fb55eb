/*
 * queue_recover.c - start-up recovery, before the writers run. Per shard:
 * clear stale reader slots (mdb_reader_check), make every message that was
 * claimed but not finished due at once (its delivery agent died with the
 * process), read the queue-ID reservation, and note the parts of messages
 * spanning shards that are still intents. Then across shards: every part of
 * a message with a part still an intent is deleted, since such a message
 * was never acknowledged (queue_shard.c: a 250 needs every part sealed).
 * Last, each shard's aggregate in memory (queue_agg.h) is built from what
 * is left: one read of every record.
 */
#include "queue/queue_recover.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

static int intents_add(struct qintents *f, uint64_t id, uint64_t shards, unsigned idx)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 64;
		struct qintent *v = realloc(f->v, cap * sizeof(*v));
		if (!v)
			return ENOMEM;
		f->v = v;
		f->cap = cap;
	}
	f->v[f->n++] = (struct qintent){ id, shards, 1ull << idx, 0 };
	return 0;
}

/* A full map (the writer grows it on demand, so it may be full at a crash): grow, retry. */
static int room_to_retry(struct shard *sh, int rc)
{
	return rc == MDB_MAP_FULL && sh->mapsize < sh->q->conf.map_max &&
	       qshard_grow(sh, sh->q->conf.map_max) == 0;
}

static int recover_once(struct shard *sh, uint64_t now, uint64_t *resv, struct qintents *found)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int dead = 0, rc;
	unsigned reclaimed = 0, total = 0;
	uint8_t *copy = NULL;
	size_t copy_cap = 0;

	if ((rc = mdb_reader_check(sh->env, &dead)) != 0)
		log_warn("queue: shard %u: mdb_reader_check: %s", sh->idx, mdb_strerror(rc));
	else if (dead)
		log_notice("queue: shard %u: cleared %d stale reader slots", sh->idx, dead);

	if ((rc = mdb_txn_begin(sh->env, NULL, 0, &txn)) != 0)
		return rc;
	*resv = 0;
	k.mv_size = 7;
	k.mv_data = "id_resv";
	if ((rc = mdb_get(txn, sh->meta, &k, &v)) == 0 && v.mv_size == 8)
		*resv = be64_get(v.mv_data);
	else if (rc && rc != MDB_NOTFOUND)
		goto fail;
	sh->id_resv = *resv;

	if ((rc = mdb_cursor_open(txn, sh->msg, &cur)) != 0)
		goto fail;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct qrec r;
		uint64_t id;
		uint8_t kb[8];

		uint8_t flags = qrec_peek_flags(v.mv_data, v.mv_size);

		total++;
		if (k.mv_size != 8)
			continue;
		if ((flags & QF_INTENT) &&
		    (rc = intents_add(found, be64_get(k.mv_data),
				      qrec_peek_shards(v.mv_data, v.mv_size), sh->idx)) != 0)
			break;
		/* skip the decode for unclaimed messages */
		if (!(flags & QF_CLAIMED))
			continue;
		id = be64_get(k.mv_data);
		if (copy_cap < v.mv_size) {
			uint8_t *p = realloc(copy, v.mv_size);
			if (!p) {
				rc = ENOMEM;
				break;
			}
			copy = p;
			copy_cap = v.mv_size;
		}
		memcpy(copy, v.mv_data, v.mv_size);
		if (qrec_decode(&r, copy, v.mv_size, sh->rcpt, QUEUE_RCPT_MAX) != 0) {
			log_err("%s: queue: shard %u: corrupt record left as is", qid_str(id).s, sh->idx);
			continue;
		}
		if ((rc = qshard_index(sh, txn, id, &r, 0)) != 0)
			break;
		r.flags &= (uint8_t)~QF_CLAIMED;
		r.claim_until = 0;
		r.due = now;
		if ((rc = qshard_index(sh, txn, id, &r, 1)) != 0)
			break;
		{
			size_t len = qrec_size(&r);
			uint8_t *enc = malloc(len);
			MDB_val nk = { 8, kb }, nv = { len, enc };
			if (!enc || qrec_encode(&r, enc, len) != len) {
				free(enc);
				rc = ENOMEM;
				break;
			}
			be64_put(kb, id);
			/* put via the cursor's key: the cursor stays valid */
			rc = mdb_cursor_put(cur, &nk, &nv, MDB_CURRENT);
			free(enc);
			if (rc)
				break;
		}
		reclaimed++;
	}
	mdb_cursor_close(cur);
	free(copy);
	if (rc != MDB_NOTFOUND)
		goto fail;
	if ((rc = mdb_txn_commit(txn)) != 0)
		return rc;
	log_info("queue: shard %u: recovered, %u messages, %u unfinished claims made due",
		 sh->idx, total, reclaimed);
	return 0;
fail:
	mdb_txn_abort(txn);
	return rc;
}

int qrecover_shard(struct shard *sh, uint64_t now, uint64_t *resv, struct qintents *found)
{
	size_t n0 = found->n;
	int rc;

	while ((rc = recover_once(sh, now, resv, found)) != 0 && room_to_retry(sh, rc))
		found->n = n0;
	if (rc)
		log_err("queue: shard %u: recovery failed: %s", sh->idx, mdb_strerror(rc));
	return rc;
}

static int cmp_intent(const void *a, const void *b)
{
	uint64_t x = ((const struct qintent *)a)->id, y = ((const struct qintent *)b)->id;
	return x < y ? -1 : x > y;
}

int qrecover_intents(struct queue *q, struct qintents *f)
{
	size_t n = 0;
	int rc = 0;

	if (f->n == 0) {
		free(f->v);
		f->v = NULL;
		return 0;
	}
	/* one entry per message, the shards where it is marked merged */
	qsort(f->v, f->n, sizeof(f->v[0]), cmp_intent);
	for (size_t i = 0; i < f->n; i++) {
		if (n && f->v[n - 1].id == f->v[i].id) {
			f->v[n - 1].marked |= f->v[i].marked;
			f->v[n - 1].shards |= f->v[i].shards;
		} else {
			f->v[n++] = f->v[i];
		}
	}
	f->n = n;
	/* every part, sealed or not, in every shard: none of them was acknowledged */
	for (unsigned s = 0; s < q->n && rc == 0; s++) {
		struct shard *sh = &q->shard[s];
		MDB_txn *txn;
		unsigned removed;

		do {
			removed = 0;
			for (size_t i = 0; i < f->n; i++)
				f->v[i].removed &= ~(1ull << s);
			if ((rc = mdb_txn_begin(sh->env, NULL, 0, &txn)) != 0)
				break;
			for (size_t i = 0; i < f->n; i++) {
				struct qctl c = { .op = QCTL_UNDO, .id = f->v[i].id };
				if ((rc = qwrite_ctl(sh, txn, &c)) != 0)
					break;
				if (c.status == QUEUE_OK) {
					f->v[i].removed |= 1ull << s;
					removed++;
				}
			}
			if (rc == 0)
				rc = mdb_txn_commit(txn);
			else
				mdb_txn_abort(txn);
		} while (rc && room_to_retry(sh, rc));
		if (rc)
			log_err("queue: shard %u: removing unacknowledged parts failed: %s", s,
				mdb_strerror(rc));
		else
			sh->st_c.orphans_removed += removed;
	}
	for (size_t i = 0; i < f->n; i++) {
		char sh[200], mk[200], rm[200];
		qshard_mask_str(f->v[i].shards, sh, sizeof(sh));
		qshard_mask_str(f->v[i].marked, mk, sizeof(mk));
		qshard_mask_str(f->v[i].removed, rm, sizeof(rm));
		log_notice("%s: queue: never acknowledged (shards %s, unsealed in %s): "
			   "parts removed from shards %s", qid_str(f->v[i].id).s, sh, mk, rm);
	}
	free(f->v);
	f->v = NULL;
	f->n = f->cap = 0;
	return rc;
}

#define AGG_SEED_BATCH 4096	/* records noted between commits: bounds the pending deltas */

int qrecover_agg(struct shard *sh)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	unsigned n = 0, bad = 0;
	int rc;

	qagg_discard(&sh->agg);	/* recovery's own changes: the read below sees them */
	if ((rc = mdb_txn_begin(sh->env, NULL, MDB_RDONLY, &txn)) != 0)
		return rc;
	if ((rc = mdb_cursor_open(txn, sh->msg, &cur)) != 0) {
		mdb_txn_abort(txn);
		return rc;
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct qrec r;
		if (k.mv_size != 8)
			continue;
		/* decoding points into the map: read-only, valid for the txn */
		if (qrec_decode(&r, v.mv_data, v.mv_size, sh->rcpt, QUEUE_RCPT_MAX) != 0) {
			bad++;
			continue;
		}
		qshard_agg_note(sh, &r, 1);
		if (++n % AGG_SEED_BATCH == 0)
			qagg_commit(&sh->agg);
	}
	qagg_commit(&sh->agg);
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	if (bad)
		log_warn("queue: shard %u: %u corrupt records left out of the summary", sh->idx, bad);
	if (sh->agg.lost)
		log_err("queue: shard %u: out of memory for the summary: its counts are short",
			sh->idx);
	return rc == MDB_NOTFOUND ? 0 : rc;
}
