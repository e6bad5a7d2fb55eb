/*
 * gen_lcore.c - one sluice-gen lcore: the modes it runs, its counters,
 * histograms and digest logs. See gen.h.
 */
#include <stdlib.h>
#include <string.h>

#include "bench/gen/gen.h"
#include "dataplane/dataplane.h"

const char *const gen_stat_names[] = { GEN_STATS(STATS_NAME) };
const unsigned gen_stat_count = STATS_COUNT(gen_stat_names);

#define DIGLOG_MAX (4u << 20)		/* digests kept per lcore and side */

bool gen_take_budget(struct gen_run *run)
{
	uint_fast64_t b;

	if (!run->counted)
		return true;
	b = atomic_load_explicit(&run->budget, memory_order_relaxed);
	while (b > 0)
		if (atomic_compare_exchange_weak(&run->budget, &b, b - 1))
			return true;
	return false;
}

void gen_diglog_add(struct gen_lcore *g, struct gen_diglog *l, const uint8_t *d)
{
	if (!l->d)
		return;			/* not asked for */
	if (l->n == l->cap) {
		g->st.digest_overflow++;
		return;
	}
	memcpy(l->d[l->n++], d, GEN_SHA_LEN);
}

static int diglog_init(struct gen_diglog *l, uint64_t cap)
{
	l->n = 0;
	l->cap = cap;
	l->d = calloc(cap, GEN_SHA_LEN);
	return l->d ? 0 : -1;
}

void *gen_lcore_create(void *runp, const struct dp_app_lcore *al)
{
	struct gen_run *run = runp;
	const struct gen_opts *o = run->o;
	struct gen_lcore *g;

	if (al->worker >= GEN_MAX_LCORES)
		return NULL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->run = run;
	g->worker = al->worker;
	g->ns = al->ns;
	g->tcp = al->tcp;
	g->now = al->clock_ns;
	gen_rng_seed(&g->rng, o->seed * 1000003u + al->worker);
	gen_hist_init(&g->h_connect);
	gen_hist_init(&g->h_greet);
	gen_hist_init(&g->h_data);
	if (o->client_digests[0]) {
		uint64_t cap = o->count ? o->count : DIGLOG_MAX;
		if (diglog_init(&g->cdig, cap < DIGLOG_MAX ? cap : DIGLOG_MAX) < 0)
			goto fail;
	}
	if (o->sink_digests[0] && diglog_init(&g->sdig, DIGLOG_MAX) < 0)
		goto fail;
	if ((o->modes & GEN_MODE_CLIENT) && !(g->client = gen_client_create(g)))
		goto fail;
	if ((o->modes & GEN_MODE_SINK) && !(g->sink = gen_sink_create(g)))
		goto fail;
	if ((o->modes & GEN_MODE_FLOOD) && !(g->flood = gen_flood_create(g)))
		goto fail;
	run->lc[al->worker] = g;
	return g;
fail:
	gen_lcore_destroy(g);
	return NULL;
}

unsigned gen_lcore_poll(void *p)
{
	struct gen_lcore *g = p;
	unsigned n = 0;

	if (g->client)
		n += gen_client_poll(g->client);
	if (g->sink)
		n += gen_sink_poll(g->sink);
	if (g->flood)
		n += gen_flood_poll(g->flood);
	return n;
}

void gen_lcore_destroy(void *p)
{
	struct gen_lcore *g = p;

	if (!g)
		return;
	gen_client_destroy(g->client);
	gen_sink_destroy(g->sink);
	gen_flood_destroy(g->flood);
	g->client = NULL;
	g->sink = NULL;
	g->flood = NULL;
	/* the digest logs and histograms stay until the process writes them:
	 * sluice_gen.c frees them (gen_lcore_free) */
}
