/*
 * client_share.c - message rates across the cluster: the local share, the
 * Redis grants, and the slots the cluster thread reads. See
 * client_share.h for the design and its bounds.
 */
#include "dataplane/smtp/client_share.h"

#include <stdlib.h>
#include <string.h>

#define IDLE_MIN_NS (10ull * 1000 * 1000 * 1000)	/* a slot stays at least this long */

struct client_share *cs_create(void)
{
	struct client_share *cs = calloc(1, sizeof(*cs));

	if (cs)
		atomic_store(&cs->boxes, 1);
	return cs;
}

void cs_free(struct client_share *cs)
{
	free(cs);
}

uint32_t cs_share(const struct client_share *cs, uint32_t limit)
{
	unsigned b = atomic_load_explicit(&cs->boxes, memory_order_relaxed);
	uint32_t s = (uint32_t)(((uint64_t)limit + (b ? b : 1) - 1) / (b ? b : 1));

	return s ? s : 1;
}

/* k's slot, claimed if need be (NULL: none free near its place). */
static struct cs_slot *slot_get(struct client_share *cs, const struct cl_key *k, const char *text,
				uint32_t limit, uint64_t window_ns)
{
	uint64_t h = k->hash ? k->hash : 1;

	for (unsigned p = 0; p < CS_PROBE; p++) {
		struct cs_slot *s = &cs->slot[(h + p) % CS_SLOTS];
		uint64_t cur = atomic_load_explicit(&s->hash, memory_order_acquire);
		if (cur == h) {
			if (!atomic_load_explicit(&s->ready, memory_order_acquire))
				return NULL;	/* another lcore is writing it: this once alone */
			atomic_store_explicit(&s->limit, limit, memory_order_relaxed);
			atomic_store_explicit(&s->window_ns, window_ns, memory_order_relaxed);
			return s;
		}
		if (cur != 0)
			continue;
		if (!atomic_compare_exchange_strong_explicit(&s->hash, &cur, h,
							     memory_order_acq_rel,
							     memory_order_acquire)) {
			if (cur == h)
				return NULL;	/* claimed for k by another lcore just now */
			continue;
		}
		size_t n = strlen(text);
		if (n >= sizeof(s->key))
			n = sizeof(s->key) - 1;
		memcpy(s->key, text, n);
		s->key[n] = '\0';
		atomic_store_explicit(&s->limit, limit, memory_order_relaxed);
		atomic_store_explicit(&s->window_ns, window_ns, memory_order_relaxed);
		atomic_store_explicit(&s->ready, 1, memory_order_release);
		return s;
	}
	atomic_fetch_add_explicit(&cs->slots_full, 1, memory_order_relaxed);
	return NULL;
}

static bool grant_take(struct cs_slot *s)
{
	int g = atomic_load_explicit(&s->grant, memory_order_relaxed);

	while (g > 0)
		if (atomic_compare_exchange_weak_explicit(&s->grant, &g, g - 1,
							  memory_order_relaxed,
							  memory_order_relaxed))
			return true;
	return false;
}

static bool shared(const struct client_share *cs, enum cl_kind kind, uint32_t limit)
{
	return cs && limit && kind == CL_MSG && atomic_load_explicit(&cs->active,
								      memory_order_relaxed);
}

int cs_take(struct client_share *cs, struct client_limits *t, const struct cl_key *k,
	    const char *text, enum cl_kind kind, uint32_t limit, uint64_t window_ns,
	    uint64_t now_ns)
{
	struct cs_slot *s;

	if (!shared(cs, kind, limit))
		return cl_take(t, k, kind, limit, window_ns, now_ns);
	s = slot_get(cs, k, text, limit, window_ns);
	if (cl_take(t, k, kind, cs_share(cs, limit), window_ns, now_ns) == 0) {
		if (s)
			atomic_fetch_add_explicit(&s->spent, 1, memory_order_relaxed);
		return 0;
	}
	if (s && grant_take(s)) {
		atomic_fetch_add_explicit(&cs->granted_taken, 1, memory_order_relaxed);
		return 0;
	}
	if (s)
		atomic_store_explicit(&s->want, 1, memory_order_relaxed);
	return 1;
}

bool cs_over(struct client_share *cs, struct client_limits *t, const struct cl_key *k,
	     const char *text, enum cl_kind kind, uint32_t limit, uint64_t window_ns,
	     uint64_t now_ns)
{
	struct cs_slot *s;

	if (!shared(cs, kind, limit))
		return cl_over(t, k, kind, limit, window_ns, now_ns);
	if (!cl_over(t, k, kind, cs_share(cs, limit), window_ns, now_ns))
		return false;
	s = slot_get(cs, k, text, limit, window_ns);
	if (s && atomic_load_explicit(&s->grant, memory_order_relaxed) > 0)
		return false;
	if (s)
		atomic_store_explicit(&s->want, 1, memory_order_relaxed);
	return true;
}

/* ---- the cluster thread's side ---- */

struct cs_reader {
	uint64_t hash[CS_SLOTS];	/* the key last seen in each slot */
	uint32_t reported[CS_SLOTS];	/* spent, as last reported */
	uint64_t active_ns[CS_SLOTS];	/* last spent or wanted */
	uint64_t granted_ns[CS_SLOTS];	/* the last grant */
};

struct cs_reader *cs_reader_new(void)
{
	return calloc(1, sizeof(struct cs_reader));
}

void cs_reader_free(struct cs_reader *r)
{
	free(r);
}

/* Free slot i (idle): its next key starts from zero. */
static void slot_free(struct cs_slot *s, struct cs_reader *r, unsigned i)
{
	atomic_store_explicit(&s->ready, 0, memory_order_relaxed);
	atomic_store_explicit(&s->grant, 0, memory_order_relaxed);
	atomic_store_explicit(&s->want, 0, memory_order_relaxed);
	atomic_store_explicit(&s->spent, 0, memory_order_relaxed);
	atomic_store_explicit(&s->hash, 0, memory_order_release);
	r->hash[i] = 0;
	r->reported[i] = 0;
}

unsigned cs_collect(struct client_share *cs, struct cs_reader *r, struct cs_report *out,
		    unsigned max, uint64_t mono_ns, uint64_t keep_ns, uint64_t *dropped)
{
	unsigned n = 0;

	for (unsigned i = 0; i < CS_SLOTS && n < max; i++) {
		struct cs_slot *s = &cs->slot[i];
		uint64_t h = atomic_load_explicit(&s->hash, memory_order_acquire);
		uint32_t spent, charge;
		bool want;

		if (!h || !atomic_load_explicit(&s->ready, memory_order_acquire))
			continue;
		if (r->hash[i] != h) {	/* a new key here (freed slots start at 0) */
			r->hash[i] = h;
			r->reported[i] = 0;
			r->active_ns[i] = mono_ns;
			r->granted_ns[i] = 0;
		}
		spent = atomic_load_explicit(&s->spent, memory_order_relaxed);
		charge = spent - r->reported[i];
		want = atomic_exchange_explicit(&s->want, 0, memory_order_relaxed) != 0;
		if (r->granted_ns[i] && mono_ns - r->granted_ns[i] >= keep_ns) {
			int g = atomic_exchange_explicit(&s->grant, 0, memory_order_relaxed);
			*dropped += g > 0 ? (uint64_t)g : 0;
			r->granted_ns[i] = 0;
		}
		if (!charge && !want) {
			uint64_t w = atomic_load_explicit(&s->window_ns, memory_order_relaxed) * 2;
			if (mono_ns - r->active_ns[i] >= (w > IDLE_MIN_NS ? w : IDLE_MIN_NS))
				slot_free(s, r, i);
			continue;
		}
		r->reported[i] = spent;
		r->active_ns[i] = mono_ns;
		out[n].idx = i;
		out[n].charge = charge;
		out[n].want = want;
		out[n].limit = atomic_load_explicit(&s->limit, memory_order_relaxed);
		out[n].window_ns = atomic_load_explicit(&s->window_ns, memory_order_relaxed);
		memcpy(out[n].key, s->key, sizeof(out[n].key));
		out[n].key[sizeof(out[n].key) - 1] = '\0';
		n++;
	}
	return n;
}

void cs_grant(struct client_share *cs, struct cs_reader *r, unsigned idx, const char *key,
	      uint32_t n, uint64_t mono_ns)
{
	struct cs_slot *s;

	if (idx >= CS_SLOTS || n == 0)
		return;
	s = &cs->slot[idx];
	if (!atomic_load_explicit(&s->ready, memory_order_acquire) || strcmp(s->key, key) != 0)
		return;		/* freed and taken by another key meanwhile */
	atomic_fetch_add_explicit(&s->grant, (int)n, memory_order_relaxed);
	r->granted_ns[idx] = mono_ns;
}
