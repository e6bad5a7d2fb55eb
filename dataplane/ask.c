/*
 * ask.c - an lcore's questions to the control plane. See ask.h.
 */
#include "dataplane/ask.h"

#include <stdlib.h>
#include <string.h>

#include <rte_common.h>
#include <rte_ring.h>

const char *const ask_stat_names[] = { ASK_STATS(STATS_NAME) };
const unsigned ask_stat_count = STATS_COUNT(ask_stat_names);

struct ask_port {
	struct rte_ring *to_plane, *to_lcore;
	struct ask *slots;
	unsigned nslots;
	struct ask *free;		/* lcore side */
	struct ask_stats stats;		/* lcore side (answered: counted on pick-up) */
};

/* An SP/SC ring of exactly count entries on plain memory (no EAL). */
static struct rte_ring *ring_new(unsigned count)
{
	ssize_t sz = rte_ring_get_memsize(rte_align32pow2(count + 1));
	struct rte_ring *r;

	if (sz < 0)
		return NULL;
	r = aligned_alloc(RTE_CACHE_LINE_SIZE, RTE_ALIGN_CEIL((size_t)sz, RTE_CACHE_LINE_SIZE));
	if (!r)
		return NULL;
	if (rte_ring_init(r, "ask", count, RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ) != 0) {
		free(r);
		return NULL;
	}
	return r;
}

struct ask_port *ask_port_create(unsigned nslots)
{
	struct ask_port *p = calloc(1, sizeof(*p));

	if (!p || nslots == 0)
		goto fail;
	p->nslots = nslots;
	p->slots = calloc(nslots, sizeof(*p->slots));
	p->to_plane = ring_new(nslots);
	p->to_lcore = ring_new(nslots);
	if (!p->slots || !p->to_plane || !p->to_lcore)
		goto fail;
	for (unsigned i = nslots; i-- > 0;) {
		p->slots[i].next_free = p->free;
		p->free = &p->slots[i];
	}
	return p;
fail:
	ask_port_free(p);
	return NULL;
}

void ask_port_free(struct ask_port *p)
{
	if (!p)
		return;
	free(p->to_plane);
	free(p->to_lcore);
	free(p->slots);
	free(p);
}

struct ask *ask_get(struct ask_port *p)
{
	struct ask *a = p->free;

	if (!a) {
		p->stats.no_slot++;
		return NULL;
	}
	p->free = a->next_free;
	memset(a, 0, offsetof(struct ask, next_free));
	return a;
}

void ask_post(struct ask_port *p, struct ask *a)
{
	/* Every slot fits in the ring: this cannot fail. */
	rte_ring_sp_enqueue(p->to_plane, a);
	p->stats.asked++;
}

unsigned ask_answers(struct ask_port *p, struct ask **out, unsigned max)
{
	unsigned n = rte_ring_sc_dequeue_burst(p->to_lcore, (void **)out, max, NULL);

	p->stats.answered += n;
	return n;
}

void ask_put(struct ask_port *p, struct ask *a)
{
	a->next_free = p->free;
	p->free = a;
}

const struct ask_stats *ask_port_stats(const struct ask_port *p)
{
	return &p->stats;
}

unsigned ask_take(struct ask_port *p, struct ask **out, unsigned max)
{
	return rte_ring_sc_dequeue_burst(p->to_plane, (void **)out, max, NULL);
}

void ask_answer(struct ask_port *p, struct ask *a)
{
	rte_ring_sp_enqueue(p->to_lcore, a);
}
