/*
 * queue_recover.c - start-up recovery of one shard, before its writer runs:
 * clear stale reader slots (mdb_reader_check), make every message that was
 * claimed but not finished due at once (its delivery agent died with the
 * process), and read the queue-ID reservation.
 */
#include "queue/queue_recover.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

int qrecover_shard(struct shard *sh, uint64_t now, uint64_t *resv)
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

		total++;
		/* flags sit at byte 1: skip the decode for unclaimed messages */
		if (v.mv_size < 2 || !(((const uint8_t *)v.mv_data)[1] & QF_CLAIMED))
			continue;
		if (k.mv_size != 8)
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
	log_err("queue: shard %u: recovery failed: %s", sh->idx, mdb_strerror(rc));
	mdb_txn_abort(txn);
	return rc;
}
