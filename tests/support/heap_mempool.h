/*
 * heap_mempool.h - an rte_mempool of mbufs that lives on the heap, for tests.
 *
 * Protocol code in dataplane/net and dataplane/smtp works on real rte_mbufs
 * (chains, refcounts, rte_pktmbuf_* helpers) but must run in Criterion and
 * libFuzzer with no EAL. rte_pktmbuf_pool_create() needs EAL's memzones, so
 * this builds the same thing by hand: a real struct rte_mempool (no per-lcore
 * cache) whose objects sit in one calloc'd block and whose ops are a plain
 * free-list registered with rte_mempool_register_ops(). Every rte_pktmbuf_*
 * call then behaves exactly as on a hardware pool.
 *
 * Single-threaded use only (tests, fuzzers).
 */
#ifndef SLUICE_HEAP_MEMPOOL_H
#define SLUICE_HEAP_MEMPOOL_H

#include <rte_mbuf.h>

/* Create a pool of n mbufs with data_room bytes each (incl. headroom). */
struct rte_mempool *heap_mempool_create(const char *name, unsigned n,
					uint16_t data_room);
void heap_mempool_free(struct rte_mempool *mp);

/* Objects currently free in the pool (to check for mbuf leaks). */
unsigned heap_mempool_avail(const struct rte_mempool *mp);

#endif
