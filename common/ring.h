/*
 * ring.h - DPDK rings on plain memory, for code that runs without EAL.
 *
 * rte_ring needs no EAL when it is initialised on memory of our own
 * (rte_ring_init); the queue, the lcores' control rings (ask, dpsock,
 * delivery) and their unit tests all make rings this way. RING_F_EXACT_SZ
 * rings hold exactly `count` entries (on the next power of two above it).
 */
#ifndef SLUICE_RING_H
#define SLUICE_RING_H

struct rte_ring;

/* A ring of count entries with the rte_ring flags given (RING_F_SP_ENQ,
 * RING_F_SC_DEQ, RING_F_EXACT_SZ...). NULL on failure. Start-up only. */
struct rte_ring *ring_create(const char *name, unsigned count, unsigned flags);
/* Free a ring made by ring_create (NULL is fine). */
void ring_destroy(struct rte_ring *r);

#endif
