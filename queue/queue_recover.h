/*
 * queue_recover.h - start-up recovery of one shard, before its writer runs.
 */
#ifndef SLUICE_QUEUE_RECOVER_H
#define SLUICE_QUEUE_RECOVER_H

#include "queue/queue_shard.h"

/*
 * mdb_reader_check, then every message claimed but not finished becomes due
 * at `now`; *resv gets the queue-ID reservation stored in the shard.
 */
int qrecover_shard(struct shard *sh, uint64_t now, uint64_t *resv);

#endif
