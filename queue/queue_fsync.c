/*
 * queue_fsync.c - counts the syncs LMDB really makes on each shard's data
 * file: the `fsyncs` counter, and the writer's proof that a commit synced
 * (NOMETA acknowledgements, queue_shard.c).
 *
 * LMDB syncs inside mdb_txn_commit and mdb_env_sync, on its own descriptor;
 * it skips the sync of a commit that wrote nothing; and in FULL mode it
 * writes the meta page through a second descriptor opened O_DSYNC (a
 * synchronous write, not a call). So counting per commit can only guess;
 * the exact count is at the calls. This file defines fdatasync and fsync
 * for the whole program: each calls the next definition in the lookup order
 * (libc's, or a test's LD_PRELOAD shim) and, when the descriptor is a
 * registered shard's (mdb_env_get_fd at open), adds one to that shard's
 * counter. The link exports both symbols (queue/meson.build), so the calls
 * from liblmdb.so come here. msync is not counted: LMDB uses it only with
 * MDB_WRITEMAP, which the queue never sets; nor is the O_DSYNC meta write,
 * which is not a call.
 *
 * The table of registered descriptors is the one piece of process-wide
 * mutable state in the queue, because the symbol it hooks is process-wide.
 * It is written at shard open and close and read by the wrappers; its size
 * bounds the shards open at once in one process (a shard that finds no slot
 * counts nothing, says so in the log, and stays correct: see queue_shard.c).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* RTLD_NEXT */
#endif
#include "queue/queue_shard.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <unistd.h>

#include "common/log.h"

#define QSYNC_SLOTS 256

static struct {
	atomic_int fd1;			/* fd + 1; 0: free; -1: being filled */
	uint64_t *_Atomic ctr;
} slots[QSYNC_SLOTS];

int qsync_register(int fd, uint64_t *ctr)
{
	for (unsigned i = 0; i < QSYNC_SLOTS; i++) {
		int free_ = 0;
		if (atomic_compare_exchange_strong(&slots[i].fd1, &free_, -1)) {
			atomic_store(&slots[i].ctr, ctr);
			atomic_store_explicit(&slots[i].fd1, fd + 1, memory_order_release);
			return 0;
		}
	}
	log_warn("queue: no slot to count syncs on descriptor %d (%d in use)", fd, QSYNC_SLOTS);
	return -1;
}

void qsync_unregister(int fd)
{
	for (unsigned i = 0; i < QSYNC_SLOTS; i++) {
		int want = fd + 1;
		if (atomic_compare_exchange_strong(&slots[i].fd1, &want, 0))
			return;
	}
}

static void count(int fd)
{
	for (unsigned i = 0; i < QSYNC_SLOTS; i++) {
		if (atomic_load_explicit(&slots[i].fd1, memory_order_acquire) == fd + 1) {
			uint64_t *c = atomic_load(&slots[i].ctr);
			__atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
			return;
		}
	}
}

typedef int (*sync_fn)(int);

static int call_next(const char *name, _Atomic(sync_fn) *cache, int fd)
{
	sync_fn f = atomic_load_explicit(cache, memory_order_relaxed);
	int rc;

	if (!f) {
		f = (sync_fn)dlsym(RTLD_NEXT, name);
		if (!f) {
			errno = ENOSYS;
			return -1;
		}
		atomic_store_explicit(cache, f, memory_order_relaxed);
	}
	rc = f(fd);
	count(fd);	/* a call that failed was still made: the caller sees rc */
	return rc;
}

int fdatasync(int fd)
{
	static _Atomic(sync_fn) next;
	return call_next("fdatasync", &next, fd);
}

int fsync(int fd)
{
	static _Atomic(sync_fn) next;
	return call_next("fsync", &next, fd);
}
