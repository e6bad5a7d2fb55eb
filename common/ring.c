/*
 * ring.c - DPDK rings on plain memory. See ring.h.
 */
#include "common/ring.h"

#include <stdlib.h>

#include <rte_common.h>
#include <rte_ring.h>

struct rte_ring *ring_create(const char *name, unsigned count, unsigned flags)
{
	ssize_t sz = rte_ring_get_memsize((flags & RING_F_EXACT_SZ) ?
					  rte_align32pow2(count + 1) : count);
	struct rte_ring *r;

	if (sz < 0)
		return NULL;
	r = aligned_alloc(RTE_CACHE_LINE_SIZE, RTE_ALIGN_CEIL((size_t)sz, RTE_CACHE_LINE_SIZE));
	if (!r)
		return NULL;
	if (rte_ring_init(r, name, count, flags) != 0) {
		free(r);
		return NULL;
	}
	return r;
}

void ring_destroy(struct rte_ring *r)
{
	free(r);
}
