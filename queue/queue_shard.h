/*
 * queue_shard.h - internals shared by the queue's files: the queue and shard
 * structs, control requests, and the index maintenance used by the writer
 * and by recovery. Not for other layers (they use queue.h).
 */
#ifndef SLUICE_QUEUE_SHARD_H
#define SLUICE_QUEUE_SHARD_H

#include <lmdb.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>

#include "queue/queue.h"
#include "queue/queue_agg.h"
#include "queue/queue_schema.h"

enum qctl_op {		/* same values as enum queue_op_kind, then the writer's own */
	QCTL_CLAIM = QUEUE_OP_CLAIM, QCTL_RESULT = QUEUE_OP_RESULT,
	QCTL_RESCHEDULE = QUEUE_OP_RESCHEDULE, QCTL_COMPLETE = QUEUE_OP_COMPLETE,
	QCTL_HOLD = QUEUE_OP_HOLD, QCTL_RELEASE = QUEUE_OP_RELEASE,
	QCTL_DELETE = QUEUE_OP_DELETE, QCTL_FLUSH = QUEUE_OP_FLUSH,
	QCTL_WARN = QUEUE_OP_WARN,
	QCTL_SEAL,		/* clear QF_INTENT: the part becomes deliverable */
	QCTL_UNDO,		/* take back a part (a delete that never fails the caller) */
};

/* Phases of a submission whose recipients span shards (see queue_shard.c). */
enum qsub_phase { QSUB_WRITE = 0, QSUB_SEAL, QSUB_UNDO };

static inline int qsub_multi(const struct queue_submission *s)
{
	return __builtin_popcountll(s->shard_mask) > 1;
}

/* A write request from the control plane, applied by the shard's writer. */
struct qctl {
	enum qctl_op op;
	uint64_t id;
	uint64_t now, when;
	uint32_t token;
	unsigned lease_s, rcpt, flags;
	uint8_t state;
	char reply[QUEUE_REPLY_MAX + 1];
	char dsn[16];		/* result: enhanced status */
	/* results */
	int status;
	uint32_t out_token;
	sem_t *done;		/* posted when applied (shared by a queue_apply call) */
};

enum { NOSPACE_NONE = 0, NOSPACE_MAP, NOSPACE_DISK };

struct shard {
	struct queue *q;
	unsigned idx;
	char path[PATH_MAX];
	char reserve_path[PATH_MAX + 16];
	MDB_env *env;
	int sync_fd;		/* registered with qsync_register, or -1 */
	MDB_dbi msg, body, due, dom, sum, hist, meta;
	size_t chunk;		/* body bytes per chunk: one overflow page */

	struct rte_ring *in;	/* submissions (MP/SC) */
	struct rte_ring *ctl;	/* control requests (MP/SC) */
	atomic_int credits;	/* free slots of `in`, reserved by producers */

	pthread_t thread;
	int started;
	atomic_int stop;
	pthread_rwlock_t maplock;	/* readers vs mdb_env_set_mapsize */
	size_t mapsize;
	uint64_t id_resv;	/* reservation persisted in meta */

	int nospace;		/* NOSPACE_* */
	uint64_t nospace_try_ns;
	uint64_t freed_bytes;	/* since the last failed attempt */
	int reserve_present;

	/* NOMETA mode: the last committed batch, waiting for the next sync */
	struct queue_submission **prev;
	int *prev_st;
	unsigned n_prev;

	/* writer scratch */
	struct queue_submission **subs;
	int *st;
	uint8_t *rbuf, *obuf;
	size_t rbuf_cap, obuf_cap;
	struct qrec_rcpt *rcpt;	/* QUEUE_RCPT_MAX */

	struct qagg agg;	/* the summary in memory (queue_agg.h) */
	struct queue_shard_stats st_c;
	struct histo commit_ns;	/* the writer's group commits (queue.h) */
};

struct queue {
	struct queue_conf conf;
	unsigned n;
	_Atomic uint64_t next_id;
	atomic_int closing;
	atomic_int multi_inflight;	/* submissions spanning shards not done yet */
	struct shard shard[QUEUE_SHARDS_MAX];
};

/* The printable queue ID for log lines: "ID: ..." as Postfix does. */
struct qid_str { char s[QUEUE_ID_STR]; };
static inline struct qid_str qid_str(uint64_t id)
{
	struct qid_str r;
	queue_id_format(id, r.s);
	return r;
}

/* Open the environment and its databases (no writer yet). */
int qshard_open(struct queue *q, struct shard *sh, unsigned idx);
int qshard_start(struct shard *sh);
void qshard_stop(struct shard *sh);
void qshard_close(struct shard *sh);

/* queue_write.c: inside the writer's transaction. Both return an LMDB error
 * that is fatal to the transaction; a refusal goes to *st / c->status. */
int qwrite_message(struct shard *sh, MDB_txn *txn, struct queue_submission *s, int *st);
int qwrite_ctl(struct shard *sh, MDB_txn *txn, struct qctl *c);

/* Add (add=1) or remove (add=0) a record's due and dom entries, and
 * note the change for the aggregate (applied when the transaction commits:
 * qagg_commit, or dropped: qagg_discard). */
int qshard_index(struct shard *sh, MDB_txn *txn, uint64_t id, const struct qrec *r, int add);
/* Just the aggregate's part of that (building it at open). */
void qshard_agg_note(struct shard *sh, const struct qrec *r, int add);
/* Build the aggregate from the shard's records (open, before the writer). */
int qrecover_agg(struct shard *sh);

/*
 * Grow the map towards limit (no transaction of this process may be open on
 * the shard: readers are kept out by maplock). Returns 0 when it grew.
 */
int qshard_grow(struct shard *sh, size_t limit);

/*
 * queue_fsync.c: count the fdatasync/fsync calls made on fd (the shard's
 * data file, from mdb_env_get_fd) into *ctr. Register returns -1 when the
 * table is full (nothing is counted then).
 */
int qsync_register(int fd, uint64_t *ctr);
void qsync_unregister(int fd);

/* "0,2,5" for a set of shards ("none" when empty), for log lines. */
void qshard_mask_str(uint64_t mask, char *out, size_t cap);

/* Post a control request to a shard writer (it posts c->done when applied). */
int qshard_ctl_post(struct shard *sh, struct qctl *c);

/* Start/end a short read transaction (takes the map lock for reading). */
int qshard_read_begin(struct shard *sh, MDB_txn **txn);
void qshard_read_end(struct shard *sh, MDB_txn *txn);

/* Map an LMDB / errno code to a queue status. */
int qshard_status(int rc);

#endif
