/*
 * ask.c - an lcore's questions to the control plane. See ask.h.
 */
#include "dataplane/ask.h"

#include <stdlib.h>
#include <string.h>

#include <rte_common.h>
#include <rte_ring.h>

#include "common/ring.h"

const char *const ask_stat_names[] = { ASK_STATS(STATS_NAME) };
const unsigned ask_stat_count = STATS_COUNT(ask_stat_names);

struct ask_port {
	struct rte_ring *to_plane, *to_lcore;
	struct ask *slots;
	unsigned nslots;
	struct ask *free;		/* lcore side */
	unsigned nfree;			/* ... how many */
	struct ask_stats stats;		/* lcore side (answered: counted on pick-up) */
};


struct ask_port *ask_port_create(unsigned nslots)
{
	struct ask_port *p = calloc(1, sizeof(*p));

	if (!p || nslots == 0)
		goto fail;
	p->nslots = nslots;
	p->slots = calloc(nslots, sizeof(*p->slots));
	p->to_plane = ring_create("ask", nslots, RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ);
	p->to_lcore = ring_create("ask", nslots, RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ);
	if (!p->slots || !p->to_plane || !p->to_lcore)
		goto fail;
	for (unsigned i = nslots; i-- > 0;) {
		p->slots[i].next_free = p->free;
		p->free = &p->slots[i];
	}
	p->nfree = nslots;
	return p;
fail:
	ask_port_free(p);
	return NULL;
}

void ask_port_free(struct ask_port *p)
{
	if (!p)
		return;
	ring_destroy(p->to_plane);
	ring_destroy(p->to_lcore);
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
	p->nfree--;
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
	p->nfree++;
}

bool ask_spare(const struct ask_port *p)
{
	return p->nfree > p->nslots / 2;
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
