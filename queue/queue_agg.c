/*
 * queue_agg.c - one shard's summary in memory: per-domain classes, bytes
 * and arrival slots, and the shard's totals. See queue_agg.h.
 */
#include "queue/queue_agg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define TAB_FIRST 1024	/* hash buckets to start with (a power of two) */

unsigned queue_age_bucket(uint64_t age_s)
{
	uint64_t limit = 5 * 60;
	unsigned b = 0;

	while (b < QUEUE_AGE_BUCKETS - 1 && age_s >= limit) {
		limit *= 2;
		b++;
	}
	return b;
}

int qagg_init(struct qagg *a)
{
	memset(a, 0, sizeof(*a));
	a->tab = calloc(TAB_FIRST, sizeof(*a->tab));
	if (!a->tab)
		return ENOMEM;
	a->mask = TAB_FIRST - 1;
	pthread_mutex_init(&a->mu, NULL);
	return 0;
}

void qagg_fini(struct qagg *a)
{
	if (!a->tab)
		return;
	for (size_t i = 0; i <= a->mask; i++)
		while (a->tab[i]) {
			struct qagg_dom *d = a->tab[i];
			a->tab[i] = d->next;
			free(d->slot);
			free(d);
		}
	free(a->tab);
	free(a->pend);
	pthread_mutex_destroy(&a->mu);
	memset(a, 0, sizeof(*a));
}

/* ---- pending deltas (the writer's) ------------------------------------------- */

static struct qagg_delta *pend_add(struct qagg *a)
{
	if (a->npend == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 256;
		struct qagg_delta *p = realloc(a->pend, cap * sizeof(*p));
		if (!p) {
			a->lost++;
			return NULL;
		}
		a->pend = p;
		a->cap = cap;
	}
	return &a->pend[a->npend++];
}

void qagg_note_domain(struct qagg *a, const char *dom, size_t dlen, uint64_t arrival,
		      unsigned cls, uint64_t size, int sign)
{
	struct qagg_delta *d = pend_add(a);

	if (!d)
		return;
	d->sign = (int8_t)(sign < 0 ? -1 : 1);
	d->cls = (uint8_t)(cls < QAGG_CLASSES ? cls : QAGG_INCOMING);
	d->part = false;
	d->slot = (uint32_t)(arrival / QSLOT_SECONDS);
	d->size = size;
	q_domain_norm(d->name, dom, dlen);
}

void qagg_note_part(struct qagg *a, bool lead, bool untried, bool held, uint64_t size, int sign)
{
	struct qagg_delta *d = pend_add(a);

	if (!d)
		return;
	memset(d, 0, offsetof(struct qagg_delta, name) + 1);
	d->sign = (int8_t)(sign < 0 ? -1 : 1);
	d->part = true;
	d->lead = lead;
	d->untried = untried;
	d->held = held;
	d->size = size;
}

void qagg_discard(struct qagg *a)
{
	a->npend = 0;
}

/* ---- the table ------------------------------------------------------------------ */

static uint32_t name_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

static struct qagg_dom **dom_slot(struct qagg *a, const char *name, uint32_t h)
{
	struct qagg_dom **pp = &a->tab[h & a->mask];

	while (*pp && ((*pp)->hash != h || strcmp((*pp)->name, name) != 0))
		pp = &(*pp)->next;
	return pp;
}

static void tab_grow(struct qagg *a)
{
	size_t n = (a->mask + 1) * 2;
	struct qagg_dom **t = calloc(n, sizeof(*t));

	if (!t)
		return;		/* longer chains, still right */
	for (size_t i = 0; i <= a->mask; i++)
		while (a->tab[i]) {
			struct qagg_dom *d = a->tab[i];
			a->tab[i] = d->next;
			d->next = t[d->hash & (n - 1)];
			t[d->hash & (n - 1)] = d;
		}
	free(a->tab);
	a->tab = t;
	a->mask = n - 1;
}

/* Index of the first slot entry >= slot. */
static uint32_t slot_find(const struct qagg_dom *d, uint32_t slot)
{
	uint32_t lo = 0, hi = d->nslot;

	if (hi && d->slot[hi - 1].slot < slot)
		return hi;	/* the usual case: a new arrival, the latest slot */
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (d->slot[mid].slot < slot)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* One slot entry moves by sign: 0; 1, a removal of what is not there
 * (counted); or -1 (no memory: the delta is lost). */
static int slot_apply(struct qagg *a, struct qagg_dom *d, uint32_t slot, int sign)
{
	uint32_t i = slot_find(d, slot);

	if (i < d->nslot && d->slot[i].slot == slot) {
		if (sign > 0) {
			d->slot[i].n++;
		} else if (--d->slot[i].n == 0) {
			memmove(&d->slot[i], &d->slot[i + 1], (d->nslot - i - 1) * sizeof(d->slot[0]));
			d->nslot--;
		}
		return 0;
	}
	if (sign < 0) {
		a->underflows++;
		return 1;
	}
	if (d->nslot == d->cap) {
		uint32_t cap = d->cap ? d->cap * 2 : 4;
		struct qagg_slot *p = realloc(d->slot, cap * sizeof(*p));
		if (!p)
			return -1;
		d->slot = p;
		d->cap = cap;
	}
	memmove(&d->slot[i + 1], &d->slot[i], (d->nslot - i) * sizeof(d->slot[0]));
	d->slot[i] = (struct qagg_slot){ slot, 1 };
	d->nslot++;
	return 0;
}

static void apply_domain(struct qagg *a, const struct qagg_delta *x)
{
	uint32_t h = name_hash(x->name);
	struct qagg_dom **pp = dom_slot(a, x->name, h), *d = *pp;

	if (!d) {
		if (x->sign < 0) {
			a->underflows++;
			return;
		}
		d = calloc(1, sizeof(*d));
		if (!d) {
			a->lost++;
			return;
		}
		d->hash = h;
		memcpy(d->name, x->name, strlen(x->name) + 1);
		*pp = d;
		if (++a->ndom > 2 * (a->mask + 1)) {
			tab_grow(a);
			pp = dom_slot(a, x->name, h);
		}
	}
	switch (slot_apply(a, d, x->slot, x->sign)) {
	case 0:
		break;
	case 1:
		return;		/* not there: nothing to take away */
	default:
		a->lost++;
		return;
	}
	if (x->sign > 0) {
		d->cls[x->cls]++;
		d->bytes += x->size;
	} else {
		if (d->cls[x->cls])
			d->cls[x->cls]--;
		else
			a->underflows++;
		d->bytes = d->bytes > x->size ? d->bytes - x->size : 0;
	}
	if (d->nslot == 0) {	/* no part left: the domain goes */
		*pp = d->next;
		a->ndom--;
		free(d->slot);
		free(d);
	}
}

static void dec(uint64_t *v, uint64_t by, uint64_t *underflows)
{
	if (*v >= by)
		*v -= by;
	else {
		*v = 0;
		(*underflows)++;
	}
}

static void apply_part(struct qagg *a, const struct qagg_delta *x)
{
	if (x->sign > 0) {
		a->parts++;
		if (x->lead) {
			a->messages++;
			a->untried += x->untried;
			a->held += x->held;
			a->bytes += x->size;
		}
		return;
	}
	dec(&a->parts, 1, &a->underflows);
	if (x->lead) {
		dec(&a->messages, 1, &a->underflows);
		dec(&a->untried, x->untried, &a->underflows);
		dec(&a->held, x->held, &a->underflows);
		dec(&a->bytes, x->size, &a->underflows);
	}
}

void qagg_commit(struct qagg *a)
{
	if (!a->npend)
		return;
	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < a->npend; i++) {
		if (a->pend[i].part)
			apply_part(a, &a->pend[i]);
		else
			apply_domain(a, &a->pend[i]);
	}
	pthread_mutex_unlock(&a->mu);
	a->npend = 0;
}

/* ---- readers ---------------------------------------------------------------------- */

int qagg_domains(struct qagg *a, uint64_t now, struct queue_domain_sum **arr, size_t *n,
		 size_t *cap)
{
	int rc = 0;

	pthread_mutex_lock(&a->mu);
	if (*n + a->ndom > *cap) {
		size_t ncap = *cap ? *cap : 64;
		void *p;
		while (ncap < *n + a->ndom)
			ncap *= 2;
		p = realloc(*arr, ncap * sizeof(**arr));
		if (!p) {
			pthread_mutex_unlock(&a->mu);
			return ENOMEM;
		}
		*arr = p;
		*cap = ncap;
	}
	for (size_t i = 0; i <= a->mask; i++)
		for (const struct qagg_dom *d = a->tab[i]; d; d = d->next) {
			struct queue_domain_sum *s = &(*arr)[(*n)++];
			memset(s, 0, sizeof(*s));
			memcpy(s->domain, d->name, strlen(d->name) + 1);
			s->incoming = d->cls[QAGG_INCOMING];
			s->active = d->cls[QAGG_ACTIVE];
			s->deferred = d->cls[QAGG_DEFERRED];
			s->held = d->cls[QAGG_HELD];
			s->bytes = d->bytes;
			s->oldest = d->nslot ? (uint64_t)d->slot[0].slot * QSLOT_SECONDS : 0;
			for (uint32_t k = 0; k < d->nslot; k++) {
				/* the slot's middle: every age within 2.5 minutes (a
				 * message of this slot is under 5 minutes old) */
				uint64_t mid = (uint64_t)d->slot[k].slot * QSLOT_SECONDS +
					       QSLOT_SECONDS / 2;
				s->age[queue_age_bucket(now > mid ? now - mid : 0)] += d->slot[k].n;
			}
		}
	pthread_mutex_unlock(&a->mu);
	return rc;
}

void qagg_totals(struct qagg *a, struct queue_totals *t)
{
	pthread_mutex_lock(&a->mu);
	t->messages += a->messages;
	t->untried += a->untried;
	t->held += a->held;
	t->parts += a->parts;
	t->bytes += a->bytes;
	t->domains += a->ndom;
	pthread_mutex_unlock(&a->mu);
}
