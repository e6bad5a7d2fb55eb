/*
 * queue_agg.h - one shard's summary in memory, so that `queue summary` and
 * `queue stat` cost O(domains), not a read of every message.
 *
 * Per destination domain (in the normal form of queue_schema.h): the
 * message parts with undone recipients for it, in four exclusive classes
 * (incoming, active, deferred, held: queue.h's queue_domain_sum), their
 * bytes, and how many arrived in each 5-minute slot (for qshape's age
 * buckets). Per shard: message parts, messages (a message spanning shards
 * counts in the shard of its lowest part), those never claimed, those held,
 * and their bytes.
 *
 * Who changes it: the shard's writer. Every index change of a record
 * (qshard_index, add or remove) notes deltas here; the deltas of a write
 * transaction wait in `pend` and are applied when it commits (qagg_commit),
 * or dropped when it aborts (qagg_discard), so the aggregate always shows a
 * committed state. At open it is built from the records (queue_recover.c).
 * Readers copy what they need under `mu`; the writer takes `mu` once per
 * commit, for the batch's deltas.
 *
 * Memory: one struct qagg_dom per domain with mail, one slot entry per
 * occupied (domain, 5-minute slot); the pending deltas of the largest
 * transaction. Out of memory, a delta is lost: counted in `lost` and the
 * summary says so (it is rebuilt at the next start).
 *
 * Pure: no LMDB, no I/O; tests/queue/test_agg.c drives it directly.
 */
#ifndef SLUICE_QUEUE_AGG_H
#define SLUICE_QUEUE_AGG_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue/queue.h"
#include "queue/queue_schema.h"

enum { QAGG_INCOMING = 0, QAGG_ACTIVE, QAGG_DEFERRED, QAGG_HELD, QAGG_CLASSES };

/* Message parts of a domain that arrived in one 5-minute slot. */
struct qagg_slot {
	uint32_t slot;		/* arrival / QSLOT_SECONDS */
	uint32_t n;
};

struct qagg_dom {
	struct qagg_dom *next;	/* hash chain */
	uint32_t hash;
	uint32_t cls[QAGG_CLASSES];
	uint64_t bytes;
	uint32_t nslot, cap;
	struct qagg_slot *slot;	/* sorted by slot */
	char name[QK_DOMAIN_MAX + 1];
};

/* One pending change (a domain's, or a message part's when name[0] is 0
 * and part is set). */
struct qagg_delta {
	int8_t sign;		/* +1 added, -1 removed */
	uint8_t cls;
	bool part;		/* a message part (the totals) */
	bool lead, untried, held;
	uint32_t slot;
	uint64_t size;
	char name[QK_DOMAIN_MAX + 1];
};

struct qagg {
	pthread_mutex_t mu;
	struct qagg_dom **tab;
	size_t mask, ndom;
	uint64_t parts, messages, untried, held, bytes;
	uint64_t lost;		/* deltas lost to a lack of memory */
	uint64_t underflows;	/* removals of what was not there (a bug) */
	/* the writer's open transaction */
	struct qagg_delta *pend;
	size_t npend, cap;
};

int qagg_init(struct qagg *a);	/* 0 or ENOMEM */
void qagg_fini(struct qagg *a);

/* A domain's parts changed: sign +1 (added) or -1 (removed), in class cls,
 * arrived at `arrival`, `size` bytes. Pending until qagg_commit. */
void qagg_note_domain(struct qagg *a, const char *dom, size_t dlen, uint64_t arrival,
		      unsigned cls, uint64_t size, int sign);
/* A message part came or went: lead (the message's lowest part), untried
 * (never claimed), held, size bytes. Pending until qagg_commit. */
void qagg_note_part(struct qagg *a, bool lead, bool untried, bool held, uint64_t size, int sign);
/* Apply the pending deltas (the transaction committed), or drop them. */
void qagg_commit(struct qagg *a);
void qagg_discard(struct qagg *a);

/* Append every domain's row to *arr (grown with realloc; *n rows, *cap
 * room), ages as of now from the middle of each 5-minute slot (so within
 * 2.5 minutes of the truth; mail of the current slot is in the first
 * bucket), oldest the start of its oldest slot. 0 or ENOMEM. */
int qagg_domains(struct qagg *a, uint64_t now, struct queue_domain_sum **arr, size_t *n,
		 size_t *cap);
/* Add this shard's totals to *t. */
void qagg_totals(struct qagg *a, struct queue_totals *t);

#endif
