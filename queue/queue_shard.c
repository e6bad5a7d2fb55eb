/*
 * queue_shard.c - one shard: its LMDB environment and its writer thread.
 *
 * The writer is the only thread that writes the environment (what it writes
 * is in queue_write.c). It takes every submission and control request
 * waiting on its rings, applies them in one write transaction (group
 * commit), makes it durable, and only then posts the completions. A message
 * whose recipients span shards is stored, sealed or taken back in phases
 * that go through every shard it touches (see "completions" below). On MDB_MAP_FULL it aborts, grows the map (no transaction is
 * open in the process then: readers take maplock) and replays the batch, up
 * to the configured ceiling. At the ceiling, or when the disk is full, the
 * batch's messages are refused with QUEUE_NOSPACE and the control requests
 * are replayed alone, so deletes and results keep working; messages are
 * tried again once deletes have freed room (or after a pause).
 *
 * Durability: plain synchronous commits (QUEUE_SYNC_FULL) by default, each
 * batch acknowledged right after its commit returns. Chosen by measurement
 * with bench/queue-bench on the build machine (2 vCPUs, ext4 on virtio,
 * 10 KiB bodies, medians of 3-5 runs, msg/s, queue | raw LMDB ceiling):
 *
 *   in flight   mode     1 shard        2 shards       4 shards
 *   2048        FULL     30.1k | 37.5k  43.0k | 39.4k  33.7k | 35.8k
 *   2048        NOMETA   26.1k | 34.9k  33.5k | 34.0k  33.3k | 46.7k
 *   4096        FULL     45.3k | 48.8k  54.0k | 50.2k  48.1k | 40.2k
 *   4096        NOMETA   35.1k | 39.9k  35.6k | 30.8k  30.2k | 29.4k
 *   256         FULL     32.5k | 46.9k  32.4k | 42.7k  26.7k | 38.4k
 *   256         NOMETA   33.0k | 46.6k  31.3k | 42.5k  25.9k | 33.3k
 *
 * At the batch sizes group commit reaches under load (200-500 messages per
 * commit) the meta page's extra flush is lost in the data flush, and
 * MDB_NOMETASYNC bought nothing measurable here (run-to-run noise on this
 * shared disk is +-20%), while it costs latency: a batch can only be
 * acknowledged once the next commit's sync (or an extra mdb_env_sync when
 * idle) has flushed its meta page. It stays available (conf.sync) for disks
 * where the second flush is expensive; both modes are crash-tested. Both
 * are crash-safe: MDB_NOMETASYNC skips only the meta page's own flush, LMDB
 * keeps the previous snapshot intact, and a crash can undo only the last
 * commit, which is never acknowledged before the next sync. MDB_NOSYNC and
 * MDB_WRITEMAP are never used.
 */
#include "queue/queue_shard.h"
#include "queue/queue_id.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <rte_ring.h>

#include "common/clock.h"
#include "common/ring.h"
#include "common/log.h"

#define CTL_RING_SIZE 4096
#define CTL_BURST     1024
#define MAP_GROW_MIN  (64ull << 20)

const char *const queue_shard_stat_names[] = { QUEUE_SHARD_STATS(STATS_NAME) };

int qshard_status(int rc)
{
	switch (rc) {
	case 0: return QUEUE_OK;
	case MDB_NOTFOUND: return QUEUE_NOTFOUND;
	case MDB_MAP_FULL: case ENOSPC: case EDQUOT: return QUEUE_NOSPACE;
	default: return QUEUE_IO;
	}
}

/* fsync a directory, so the entries created in it are durable. 0 or errno. */
static int dir_sync(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return errno;
	if (fsync(fd) != 0)
		rc = errno;
	close(fd);
	return rc;
}

/* ---- rings on our own memory (no EAL) ------------------------------------ */


struct rte_ring *queue_done_ring_create(unsigned count)
{
	static atomic_uint seq;
	char name[RTE_RING_NAMESIZE];
	snprintf(name, sizeof(name), "qdone%u", atomic_fetch_add(&seq, 1));
	return ring_create(name, count, RING_F_SC_DEQ | RING_F_EXACT_SZ);
}

void queue_done_ring_free(struct rte_ring *r)
{
	ring_destroy(r);
}

unsigned queue_done_poll(struct rte_ring *r, struct queue_submission **out, unsigned max)
{
	return rte_ring_sc_dequeue_burst(r, (void **)out, max, NULL);
}

/* ---- environment ---------------------------------------------------------- */

static int dbi_open(MDB_txn *txn, const char *name, MDB_dbi *dbi)
{
	int rc = mdb_dbi_open(txn, name, MDB_CREATE, dbi);
	if (rc)
		log_err("queue: mdb_dbi_open %s: %s", name, mdb_strerror(rc));
	return rc;
}

static void reserve_make(struct shard *sh)
{
	int fd;

	if (sh->q->conf.disk_reserve == 0) {
		sh->reserve_present = 1;
		return;
	}
	fd = open(sh->reserve_path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (posix_fallocate(fd, 0, (off_t)sh->q->conf.disk_reserve) == 0) {
		sh->reserve_present = 1;
	} else {
		if (ftruncate(fd, 0) != 0)
			log_warn("queue: shard %u: cannot trim %s", sh->idx, sh->reserve_path);
	}
	close(fd);
}

static void reserve_drop(struct shard *sh)
{
	if (!sh->reserve_present || sh->q->conf.disk_reserve == 0)
		return;
	if (unlink(sh->reserve_path) == 0 || errno == ENOENT) {
		sh->reserve_present = 0;
		log_warn("queue: shard %u: disk full, released the %zu-byte reserve for deletes",
			 sh->idx, sh->q->conf.disk_reserve);
	}
}

int qshard_open(struct queue *q, struct shard *sh, unsigned idx)
{
	const struct queue_conf *c = &q->conf;
	unsigned flags = MDB_NOTLS | MDB_NOSUBDIR;
	char file[PATH_MAX + 16];
	MDB_envinfo info;
	MDB_txn *txn;
	char name[RTE_RING_NAMESIZE];
	int rc;

	sh->q = q;
	sh->idx = idx;
	sh->sync_fd = -1;
	if ((rc = qagg_init(&sh->agg)) != 0)
		return rc;
	if (snprintf(sh->path, sizeof(sh->path), "%s/shard-%u", c->dir, idx) >= (int)sizeof(sh->path))
		return ENAMETOOLONG;
	if (mkdir(sh->path, 0700) != 0 && errno != EEXIST) {
		rc = errno;
		log_err("queue: mkdir %s: %s", sh->path, strerror(rc));
		return rc;
	}
	snprintf(file, sizeof(file), "%s/data.mdb", sh->path);
	snprintf(sh->reserve_path, sizeof(sh->reserve_path), "%s/reserve", sh->path);
	if (c->sync == QUEUE_SYNC_NOMETA)
		flags |= MDB_NOMETASYNC;

	if ((rc = mdb_env_create(&sh->env)) != 0)
		return rc;
	if ((rc = mdb_env_set_maxdbs(sh->env, 8)) != 0 ||
	    (rc = mdb_env_set_maxreaders(sh->env, 126)) != 0 ||
	    (rc = mdb_env_set_mapsize(sh->env, c->map_size)) != 0 ||
	    (rc = mdb_env_open(sh->env, file, flags, 0600)) != 0) {
		log_err("queue: open %s: %s", file, mdb_strerror(rc));
		mdb_env_close(sh->env);
		sh->env = NULL;
		return rc;
	}
	{
		mdb_filehandle_t fd;
		if (mdb_env_get_fd(sh->env, &fd) == 0 && qsync_register(fd, &sh->st_c.fsyncs) == 0)
			sh->sync_fd = fd;
	}
	mdb_env_info(sh->env, &info);
	sh->mapsize = info.me_mapsize;
	{
		MDB_stat ms;
		if ((rc = mdb_env_stat(sh->env, &ms)) != 0)
			return rc;
		sh->chunk = ms.ms_psize - 16;	/* PAGEHDRSZ: one overflow page */
	}

	if ((rc = mdb_txn_begin(sh->env, NULL, 0, &txn)) != 0)
		return rc;
	if ((rc = dbi_open(txn, "msg", &sh->msg)) || (rc = dbi_open(txn, "body", &sh->body)) ||
	    (rc = dbi_open(txn, "due", &sh->due)) || (rc = dbi_open(txn, "dom", &sh->dom)) ||
	    (rc = dbi_open(txn, "sum", &sh->sum)) || (rc = dbi_open(txn, "hist", &sh->hist)) ||
	    (rc = dbi_open(txn, "meta", &sh->meta)) ||
	    (rc = mdb_drop(txn, sh->sum, 0))) {	/* retired (queue_schema.h): empty it */
		mdb_txn_abort(txn);
		return rc;
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		return rc;
	/* The directory entries of shard-N, data.mdb and lock.mdb must be on
	 * disk too before anything is acknowledged: a power cut right after a
	 * first start must not lose the file that holds the mail. */
	if ((rc = dir_sync(sh->path)) != 0 || (rc = dir_sync(c->dir)) != 0) {
		log_err("queue: fsync of directory %s: %s", rc == 0 ? c->dir : sh->path,
			strerror(rc));
		return rc;
	}

	pthread_rwlock_init(&sh->maplock, NULL);
	snprintf(name, sizeof(name), "qin%u_%p", idx, (void *)q);
	sh->in = ring_create(name, c->ring_size, RING_F_SC_DEQ | RING_F_EXACT_SZ);
	snprintf(name, sizeof(name), "qctl%u_%p", idx, (void *)q);
	sh->ctl = ring_create(name, CTL_RING_SIZE, RING_F_SC_DEQ);
	sh->subs = calloc(c->batch_max, sizeof(*sh->subs));
	sh->st = calloc(c->batch_max, sizeof(*sh->st));
	sh->prev = calloc(c->batch_max, sizeof(*sh->prev));
	sh->prev_st = calloc(c->batch_max, sizeof(*sh->prev_st));
	sh->rcpt = calloc(QUEUE_RCPT_MAX, sizeof(*sh->rcpt));
	if (!sh->in || !sh->ctl || !sh->subs || !sh->st || !sh->prev || !sh->prev_st || !sh->rcpt)
		return ENOMEM;
	atomic_store(&sh->credits, (int)c->ring_size);
	reserve_make(sh);
	return 0;
}

void qshard_close(struct shard *sh)
{
	struct qctl *c;

	/* requests posted after this writer stopped */
	while (sh->ctl && rte_ring_sc_dequeue(sh->ctl, (void **)&c) == 0) {
		c->status = QUEUE_CLOSED;
		sem_post(c->done);
	}
	if (sh->sync_fd >= 0)
		qsync_unregister(sh->sync_fd);
	if (sh->env)
		mdb_env_close(sh->env);
	sh->env = NULL;
	if (sh->in || sh->ctl)
		pthread_rwlock_destroy(&sh->maplock);
	ring_destroy(sh->in);
	ring_destroy(sh->ctl);
	free(sh->subs);
	free(sh->st);
	free(sh->prev);
	free(sh->prev_st);
	free(sh->rcpt);
	free(sh->rbuf);
	free(sh->obuf);
	qagg_fini(&sh->agg);
	memset(sh, 0, sizeof(*sh));
}

int qshard_read_begin(struct shard *sh, MDB_txn **txn)
{
	int rc;
	pthread_rwlock_rdlock(&sh->maplock);
	rc = mdb_txn_begin(sh->env, NULL, MDB_RDONLY, txn);
	if (rc)
		pthread_rwlock_unlock(&sh->maplock);
	return rc;
}

void qshard_read_end(struct shard *sh, MDB_txn *txn)
{
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&sh->maplock);
}

int qshard_ctl_post(struct shard *sh, struct qctl *c)
{
	if (atomic_load(&sh->q->closing) || !sh->started)
		return QUEUE_CLOSED;
	c->status = QUEUE_IO;
	while (rte_ring_mp_enqueue(sh->ctl, c) != 0) {
		struct timespec ts = { 0, 100000 };
		nanosleep(&ts, NULL);	/* writer busy: the control thread may wait */
	}
	return QUEUE_OK;
}

/* ---- completions ------------------------------------------------------------------
 *
 * A message in one shard is done when that shard has answered. A message
 * whose recipients span shards is all or nothing, through phases; each
 * phase is answered by every shard concerned, and the last one to answer
 * moves the message on:
 *
 *   WRITE  every shard stores its part as an intent (QF_INTENT, with the
 *          set of shards in the record): not due, cannot be claimed;
 *   SEAL   all stored theirs durably: every shard clears the mark, and once
 *          every seal is durable the submission comes back QUEUE_OK (250);
 *   UNDO   some shard refused (in WRITE or SEAL): the shards that may hold
 *          a part delete it, then the submission comes back with the
 *          refusal (the client retries the whole message).
 *
 * So every part of an acknowledged message is sealed, and a message with a
 * part still marked was never acknowledged: recovery deletes all its parts
 * (queue_recover.c). Why seal rather than check at recovery that all parts
 * are present: once acknowledged, a part is deleted when its recipients are
 * done, so "a sibling is missing" does not tell a crash mid-write from a
 * delivered sibling; the mark does.
 *
 * Each phase goes to the shards through their `in` rings, in the slot the
 * message reserved at queue_submit: a message spanning shards gives its
 * slots back only when it is done. So moving on can neither fail nor wait,
 * nothing is allocated, and the undo cannot be lost (the old fire-and-forget
 * delete over the control ring was dropped when that ring was full). The
 * cost is one more commit per shard before the 250, for such messages only.
 */

/* The message is done: give back its slots, post it to its producer. */
static void sub_finish(struct shard *sh, struct queue_submission *s, int st)
{
	struct queue *q = sh->q;
	int multi = qsub_multi(s);

	s->status = st;
	if (st == QUEUE_OK)
		log_debug("%s: queued, size=%llu", s->id_str, (unsigned long long)s->size);
	if (multi)
		for (unsigned i = 0; i < q->n; i++)
			if (s->shard_mask >> i & 1)
				atomic_fetch_add(&q->shard[i].credits, 1);
	while (rte_ring_mp_enqueue(s->done, s) != 0) {
		struct timespec ts = { 0, 50000 };
		nanosleep(&ts, NULL);	/* the producer's ring is too small: wait for it */
	}
	/* s belongs to its producer again: not touched from here on */
	sh->st_c.completions++;
	if (multi)
		atomic_fetch_sub(&q->multi_inflight, 1);
}

void qshard_mask_str(uint64_t mask, char *out, size_t cap)
{
	size_t n = 0;
	out[0] = 0;
	for (unsigned i = 0; i < 64 && n < cap; i++)
		if (mask >> i & 1)
			n += (size_t)snprintf(out + n, cap - n, "%s%u", n ? "," : "", i);
	if (!out[0])
		snprintf(out, cap, "none");
}

static void complete_one(struct shard *sh, struct queue_submission *s, int st)
{
	struct queue *q = sh->q;
	uint64_t next;
	int zero = 0, err;

	if (s->phase == QSUB_WRITE && (st == QUEUE_OK || st == QUEUE_IO))
		atomic_fetch_or(&s->written, 1ull << sh->idx);	/* IO: may be committed */
	if (st != QUEUE_OK)
		atomic_compare_exchange_strong(&s->err, &zero, st);
	if (atomic_fetch_sub(&s->pending, 1) != 1)
		return;
	/* the last shard to answer this phase */
	err = atomic_load(&s->err);
	if (!qsub_multi(s)) {
		sub_finish(sh, s, err);
		return;
	}
	if (s->phase == QSUB_UNDO) {
		sub_finish(sh, s, s->status);
		return;
	}
	if (err == QUEUE_OK) {
		if (s->phase == QSUB_SEAL) {
			sub_finish(sh, s, QUEUE_OK);
			return;
		}
		s->phase = QSUB_SEAL;
		next = s->shard_mask;
	} else {
		char l1[200], l2[200];
		s->status = err;	/* what the producer gets once the parts are back */
		next = atomic_load(&s->written);
		qshard_mask_str(s->shard_mask, l1, sizeof(l1));
		qshard_mask_str(next, l2, sizeof(l2));
		log_info("%s: queue: refused by a shard (%s) while %s: taking back the parts "
			 "(shards %s of %s)", s->id_str, queue_status_str(err),
			 s->phase == QSUB_WRITE ? "storing" : "sealing", l2, l1);
		if (!next) {
			sub_finish(sh, s, err);
			return;
		}
		s->phase = QSUB_UNDO;
	}
	atomic_store(&s->err, QUEUE_OK);
	atomic_store(&s->pending, (unsigned)__builtin_popcountll(next));
	for (unsigned i = 0; i < q->n; i++)
		if (next >> i & 1)
			while (rte_ring_mp_enqueue(q->shard[i].in, s) != 0)
				;	/* cannot happen: the message holds a slot there */
}

static void ack_prev(struct shard *sh)
{
	for (unsigned i = 0; i < sh->n_prev; i++)
		complete_one(sh, sh->prev[i], sh->prev_st[i]);
	sh->n_prev = 0;
}

/* NOMETA, idle: sync so the last batch's meta page is durable, then acknowledge. */
static void sync_prev(struct shard *sh)
{
	int rc = mdb_env_sync(sh->env, 1);
	if (rc) {
		log_err("queue: shard %u: mdb_env_sync: %s", sh->idx, mdb_strerror(rc));
		sh->st_c.io_errors++;
		for (unsigned i = 0; i < sh->n_prev; i++)
			if (sh->prev_st[i] == QUEUE_OK)
				sh->prev_st[i] = QUEUE_IO;
	}
	ack_prev(sh);
}

/* ---- the batch -------------------------------------------------------------------- */

int qshard_grow(struct shard *sh, size_t limit)
{
	size_t want = sh->mapsize * 2;
	int rc;

	if (want < sh->mapsize + MAP_GROW_MIN)
		want = sh->mapsize + MAP_GROW_MIN;
	if (want > limit)
		want = limit;
	pthread_rwlock_wrlock(&sh->maplock);
	rc = mdb_env_set_mapsize(sh->env, want);
	pthread_rwlock_unlock(&sh->maplock);
	if (rc) {
		log_err("queue: shard %u: mdb_env_set_mapsize %zu: %s", sh->idx, want, mdb_strerror(rc));
		return -1;
	}
	log_info("queue: shard %u: map grown from %zu to %zu bytes", sh->idx, sh->mapsize, want);
	sh->mapsize = want;
	sh->st_c.map_grows++;
	return 0;
}

/* Ceiling for transactions carrying new messages: the last eighth is kept for deletes. */
static size_t msg_ceiling(const struct shard *sh)
{
	size_t max = sh->q->conf.map_max;
	return max - max / 8;
}

/* In no-space mode: is it time to try new messages again? */
static int msgs_allowed(struct shard *sh, size_t batch_bytes)
{
	uint64_t now = clock_mono_ns();
	struct statvfs vfs;

	if (sh->nospace == NOSPACE_NONE)
		return 1;
	if (sh->freed_bytes >= batch_bytes || now - sh->nospace_try_ns > 2 * NS_PER_S)
		return 1;
	if (sh->nospace == NOSPACE_DISK && statvfs(sh->path, &vfs) == 0 &&
	    (uint64_t)vfs.f_bavail * vfs.f_frsize >
		    sh->q->conf.disk_reserve + 2 * batch_bytes + (1u << 20))
		return 1;
	return 0;
}

static void enter_nospace(struct shard *sh, int kind)
{
	if (sh->nospace == NOSPACE_NONE)
		log_warn("queue: shard %u: %s, refusing new messages", sh->idx,
			 kind == NOSPACE_MAP ? "map at its ceiling" : "disk full");
	sh->nospace = kind;
	sh->nospace_try_ns = clock_mono_ns();
	sh->freed_bytes = 0;
	if (kind == NOSPACE_DISK)
		reserve_drop(sh);
}

static int disk_low(struct shard *sh)
{
	struct statvfs vfs;
	return statvfs(sh->path, &vfs) == 0 &&
	       (uint64_t)vfs.f_bavail * vfs.f_frsize < sh->q->conf.batch_bytes + (4u << 20);
}

/* Body bytes a submission brings to this transaction (seal and undo: none). */
static size_t sub_bytes(const struct queue_submission *s)
{
	return s->phase == QSUB_WRITE ? s->size : 0;
}

/* One write transaction. *nmsg gets the number of messages written. */
static int txn_batch(struct shard *sh, struct queue_submission **subs, unsigned n,
		     struct qctl **ctls, unsigned nc, unsigned *nmsg)
{
	MDB_txn *txn;
	uint64_t maxid = 0;
	int rc;

	*nmsg = 0;
	if ((rc = mdb_txn_begin(sh->env, NULL, 0, &txn)) != 0)
		return rc;
	for (unsigned i = 0; i < n; i++) {
		struct queue_submission *s = subs[i];
		if (sh->st[i] != QUEUE_OK)
			continue;
		if (s->phase != QSUB_WRITE) {
			struct qctl c = { .op = s->phase == QSUB_SEAL ? QCTL_SEAL : QCTL_UNDO,
					  .id = s->id };
			if ((rc = qwrite_ctl(sh, txn, &c)) != 0)
				goto fail;
			sh->st[i] = c.status;
			continue;
		}
		if ((rc = qwrite_message(sh, txn, s, &sh->st[i])) != 0)
			goto fail;
		if (sh->st[i] == QUEUE_OK) {
			(*nmsg)++;
			if (s->id > maxid)
				maxid = s->id;
		}
	}
	for (unsigned i = 0; i < nc; i++)
		if ((rc = qwrite_ctl(sh, txn, ctls[i])) != 0)
			goto fail;
	/* keep the ID reservation ahead of the producers' counter */
	{
		uint64_t next = atomic_load(&sh->q->next_id);
		if (maxid >= next)
			next = maxid + 1;
		if (next + QID_RESERVE_LOW > sh->id_resv) {
			uint8_t vb[8];
			MDB_val k = { 7, "id_resv" }, v = { 8, vb };
			be64_put(vb, next + QID_RESERVE);
			if ((rc = mdb_put(txn, sh->meta, &k, &v, 0)) != 0)
				goto fail;
		}
		rc = mdb_txn_commit(txn);
		if (rc == 0 && next + QID_RESERVE_LOW > sh->id_resv)
			sh->id_resv = next + QID_RESERVE;
		if (rc == 0)
			qagg_commit(&sh->agg);	/* what readers see: committed states */
		else
			qagg_discard(&sh->agg);
		return rc;
	}
fail:
	mdb_txn_abort(txn);
	qagg_discard(&sh->agg);
	return rc;
}

/*
 * One batch: new messages, seals and undos of messages spanning shards, and
 * control requests. In no-space mode new messages are refused; seals and
 * undos go with the control requests (they need little room and give it back).
 */
static void run_batch(struct shard *sh, struct queue_submission **subs, unsigned n,
		      struct qctl **ctls, unsigned nc)
{
	size_t bytes = 0;
	unsigned nmsg = 0, nwrite = 0;
	int allow, rc, fail_ctl = QUEUE_OK;
	int ctl_retry = 0;
	uint64_t syncs = __atomic_load_n(&sh->st_c.fsyncs, __ATOMIC_RELAXED);
	uint64_t t0 = clock_mono_ns();

	for (unsigned i = 0; i < n; i++) {
		bytes += sub_bytes(subs[i]);
		nwrite += subs[i]->phase == QSUB_WRITE;
	}
	allow = nwrite ? msgs_allowed(sh, bytes) : 1;
	for (;;) {
		for (unsigned i = 0; i < n; i++)
			sh->st[i] = allow || subs[i]->phase != QSUB_WRITE ? QUEUE_OK : QUEUE_NOSPACE;
		if (!allow && nc == 0 && nwrite == n)
			break;		/* nothing to write */
		rc = txn_batch(sh, subs, n, ctls, nc, &nmsg);
		if (rc == 0) {
			if (nmsg && sh->nospace) {
				log_notice("queue: shard %u: space available again, accepting messages",
					   sh->idx);
				sh->nospace = NOSPACE_NONE;
			}
			if (!sh->reserve_present && !sh->nospace)
				reserve_make(sh);
			break;
		}
		int with_msgs = allow && nwrite > 0;
		if (rc == MDB_MAP_FULL) {
			size_t limit = with_msgs ? msg_ceiling(sh) : sh->q->conf.map_max;
			sh->st_c.replays++;
			if (sh->mapsize < limit && qshard_grow(sh, limit) == 0)
				continue;
			if (with_msgs) {
				enter_nospace(sh, NOSPACE_MAP);
				allow = 0;
				continue;
			}
			fail_ctl = QUEUE_NOSPACE;
			break;
		}
		if (rc == ENOSPC || rc == EDQUOT || (rc == EIO && disk_low(sh))) {
			sh->st_c.replays++;
			if (with_msgs) {
				enter_nospace(sh, NOSPACE_DISK);
				allow = 0;
				continue;
			}
			if (!ctl_retry++ && sh->reserve_present) {
				reserve_drop(sh);
				continue;
			}
			fail_ctl = QUEUE_NOSPACE;
			break;
		}
		log_err("queue: shard %u: write transaction failed: %s", sh->idx, mdb_strerror(rc));
		sh->st_c.io_errors++;
		for (unsigned i = 0; i < n; i++)
			sh->st[i] = QUEUE_IO;
		fail_ctl = QUEUE_IO;
		nmsg = 0;
		break;
	}

	for (unsigned i = 0; i < n; i++) {
		if (subs[i]->phase != QSUB_WRITE) {
			if (fail_ctl != QUEUE_OK)
				sh->st[i] = fail_ctl;
			else if (sh->st[i] == QUEUE_OK && subs[i]->phase == QSUB_SEAL)
				sh->st_c.seals++;
			else if (sh->st[i] == QUEUE_OK)
				sh->st_c.undos++;
		} else if (sh->st[i] == QUEUE_NOSPACE) {
			sh->st_c.nospace_rejects++;
		}
	}
	if (nmsg) {
		sh->st_c.batches++;
		sh->st_c.messages += nmsg;
		sh->st_c.bytes += bytes;
	}
	if (fail_ctl == QUEUE_OK && (nmsg || nc || n > nwrite)) {
		sh->st_c.commits++;
		histo_add(&sh->commit_ns, clock_mono_ns() - t0);
	}
	for (unsigned i = 0; i < nc; i++) {
		if (fail_ctl != QUEUE_OK)
			ctls[i]->status = fail_ctl;
		sh->st_c.ctl_ops++;
		sem_post(ctls[i]->done);
	}

	if (sh->q->conf.sync == QUEUE_SYNC_FULL) {
		for (unsigned i = 0; i < n; i++)
			complete_one(sh, subs[i], sh->st[i]);
		return;
	}
	/*
	 * NOMETA: a sync made by this batch (the commit's data sync, after the
	 * previous commit's meta page was written) made the previous batch
	 * durable. An empty commit syncs nothing: counted at the call
	 * (queue_fsync.c), so this is known, not assumed. Were the count ever
	 * missing, the previous batch would wait for sync_prev: later, not less
	 * safe.
	 */
	if (__atomic_load_n(&sh->st_c.fsyncs, __ATOMIC_RELAXED) != syncs)
		ack_prev(sh);
	for (unsigned i = 0; i < n; i++) {
		if (sh->st[i] != QUEUE_OK) {
			complete_one(sh, subs[i], sh->st[i]);
			continue;
		}
		if (sh->n_prev == sh->q->conf.batch_max)
			sync_prev(sh);
		sh->prev[sh->n_prev] = subs[i];
		sh->prev_st[sh->n_prev++] = QUEUE_OK;
	}
}

/*
 * Producers make no system calls, so nothing can wake the writer: it polls.
 * Yield first, then nap longer the longer the rings stay empty: 20 us naps
 * for ~10 ms, 200 us naps for ~0.2 s, then 1 ms (an idle shard then costs
 * ~1000 wake-ups/s; the first message after a long idle waits <= 1 ms more,
 * small next to the commit's sync).
 */
static void idle_wait(unsigned *idle)
{
	struct timespec ts = { 0, 0 };

	if (*idle < 64) {
		(*idle)++;
		sched_yield();
		return;
	}
	ts.tv_nsec = *idle < 200 ? 20000 : *idle < 1000 ? 200000 : 1000000;
	if (*idle < 1000)
		(*idle)++;
	nanosleep(&ts, NULL);
}

static void *writer_main(void *arg)
{
	struct shard *sh = arg;
	const struct queue_conf *c = &sh->q->conf;
	struct qctl *ctls[CTL_BURST];
	unsigned idle = 0;

	for (;;) {
		unsigned n = rte_ring_sc_dequeue_burst(sh->in, (void **)sh->subs, c->batch_max, NULL);
		unsigned nc = rte_ring_sc_dequeue_burst(sh->ctl, (void **)ctls, CTL_BURST, NULL);
		unsigned i = 0;
		int freed = 0;

		/* slots come back now, but those of messages spanning shards when done */
		for (unsigned k = 0; k < n; k++)
			freed += !qsub_multi(sh->subs[k]);
		if (freed)
			atomic_fetch_add(&sh->credits, freed);
		if (n == 0 && nc == 0) {
			if (sh->n_prev) {
				sync_prev(sh);
				continue;
			}
			/* stop once no message spanning shards may still need this writer */
			if (atomic_load(&sh->stop) && atomic_load(&sh->q->multi_inflight) == 0)
				break;
			idle_wait(&idle);
			continue;
		}
		idle = 0;
		/* split by bytes so one transaction stays well under MDB_TXN_FULL */
		do {
			unsigned j = i;
			size_t bytes = 0;
			while (j < n && (j == i || bytes + sub_bytes(sh->subs[j]) <= c->batch_bytes))
				bytes += sub_bytes(sh->subs[j++]);
			run_batch(sh, sh->subs + i, j - i, ctls, nc);
			nc = 0;
			i = j;
		} while (i < n);
	}
	if (sh->n_prev)
		sync_prev(sh);
	return NULL;
}

int qshard_start(struct shard *sh)
{
	int rc = pthread_create(&sh->thread, NULL, writer_main, sh);
	if (rc == 0) {
		char name[16];
		snprintf(name, sizeof(name), "sluice-qw%u", sh->idx);
		pthread_setname_np(sh->thread, name);	/* in top -H, ps -L */
		sh->started = 1;
	}
	return rc;
}

void qshard_stop(struct shard *sh)
{
	if (!sh->started)
		return;
	atomic_store(&sh->stop, 1);
	pthread_join(sh->thread, NULL);
	sh->started = 0;
}
