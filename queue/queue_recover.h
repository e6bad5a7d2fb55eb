/*
 * queue_recover.h - start-up recovery of the shards, before their writers run.
 */
#ifndef SLUICE_QUEUE_RECOVER_H
#define SLUICE_QUEUE_RECOVER_H

#include "queue/queue_shard.h"

/* Parts still marked as intents (QF_INTENT), found by qrecover_shard. */
struct qintent {
	uint64_t id;
	uint64_t shards;	/* the message's shard set, as recorded */
	uint64_t marked;	/* shards where a part is still an intent */
	uint64_t removed;	/* shards a part was deleted from */
};
struct qintents {
	struct qintent *v;
	size_t n, cap;
};

/*
 * mdb_reader_check, then every message claimed but not finished becomes due
 * at `now`; *resv gets the queue-ID reservation stored in the shard; every
 * part still marked as an intent is added to *found.
 */
int qrecover_shard(struct shard *sh, uint64_t now, uint64_t *resv, struct qintents *found);

/*
 * A message spanning shards with a part still marked was never
 * acknowledged (see queue_shard.c): delete all its parts, in every shard,
 * and log each such message with its queue ID. Called once every shard has
 * been through qrecover_shard. Frees found->v.
 */
int qrecover_intents(struct queue *q, struct qintents *found);

/* (qrecover_agg, in queue_shard.h: the aggregate built from the records,
 * after the two above.) */

#endif
