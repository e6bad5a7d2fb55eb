/*
 * test_agg.c - the shard's summary in memory (queue/queue_agg.h), on its
 * own: qshape's age buckets at their edges; per-domain classes, bytes and
 * 5-minute slots under adds and removes; nothing visible before a commit
 * and nothing left of a discarded transaction; a domain gone once its last
 * part goes; removals of what is not there counted, never negative; the
 * table growing past thousands of domains; the totals (messages counted by
 * their lead part, untried, held, bytes).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue/queue_agg.h"

#define T0 1700000100ull	/* a slot boundary: 1700000100 = 5666667 * 300 */

static struct qagg a;

static void setup(void)
{
	cr_assert_eq(qagg_init(&a), 0);
}

static void teardown(void)
{
	qagg_fini(&a);
}

TestSuite(agg, .init = setup, .fini = teardown);

/* The rows now: *n of them (free the result). */
static struct queue_domain_sum *rows(uint64_t now, size_t *n)
{
	struct queue_domain_sum *arr = NULL;
	size_t cap = 0;

	*n = 0;
	cr_assert_eq(qagg_domains(&a, now, &arr, n, &cap), 0);
	return arr;
}

static const struct queue_domain_sum *row(const struct queue_domain_sum *r, size_t n,
					  const char *d)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(r[i].domain, d) == 0)
			return &r[i];
	return NULL;
}

static void dom(const char *d, uint64_t arrival, unsigned cls, uint64_t size, int sign)
{
	qagg_note_domain(&a, d, strlen(d), arrival, cls, size, sign);
}

Test(agg, age_buckets_at_their_edges)
{
	/* 5, 10, 20, 40, 80, 160, 320, 640, 1280 minutes, then 1280+ */
	static const uint64_t edge_min[] = { 5, 10, 20, 40, 80, 160, 320, 640, 1280 };

	cr_assert_eq(queue_age_bucket(0), 0);
	for (unsigned b = 0; b < 9; b++) {
		cr_assert_eq(queue_age_bucket(edge_min[b] * 60 - 1), b, "just under %llu min",
			     (unsigned long long)edge_min[b]);
		cr_assert_eq(queue_age_bucket(edge_min[b] * 60), b + 1, "at %llu min",
			     (unsigned long long)edge_min[b]);
	}
	cr_assert_eq(queue_age_bucket(30 * 86400), 9, "a month: 1280+");
	cr_assert_eq(queue_age_bucket(UINT64_MAX), 9);
}

Test(agg, adds_and_removes_per_domain)
{
	struct queue_domain_sum *r;
	const struct queue_domain_sum *x;
	size_t n;

	dom("Example.COM.", T0, QAGG_INCOMING, 100, 1);	/* normal form: one domain */
	dom("example.com", T0 + 60, QAGG_DEFERRED, 200, 1);
	dom("example.com", T0 - 3 * 3600, QAGG_HELD, 300, 1);	/* an older slot, out of order */
	dom("other.test", T0, QAGG_ACTIVE, 50, 1);
	r = rows(T0, &n);
	cr_assert_eq(n, 0, "nothing before the commit");
	free(r);
	qagg_commit(&a);

	r = rows(T0 + 600, &n);
	cr_assert_eq(n, 2);
	x = row(r, n, "example.com");
	cr_assert_not_null(x);
	cr_assert(x->incoming == 1 && x->deferred == 1 && x->held == 1 && x->active == 0);
	cr_assert_eq(x->bytes, 600);
	cr_assert_eq(x->oldest, T0 - 3 * 3600, "the start of the oldest slot");
	cr_assert_eq(x->age[1], 2, "10 and 9 minutes old, their slot's middle 7.5: the 5-10 "
		     "bucket (T0 and T0+60 share a slot)");
	cr_assert_eq(x->age[6], 1, "3 h 10 min: 160-320");
	x = row(r, n, "other.test");
	cr_assert(x && x->active == 1 && x->bytes == 50);
	free(r);

	/* a transaction that aborts leaves nothing */
	dom("example.com", T0, QAGG_INCOMING, 100, -1);
	dom("new.test", T0, QAGG_INCOMING, 1, 1);
	qagg_discard(&a);
	qagg_commit(&a);
	r = rows(T0, &n);
	cr_assert_eq(n, 2);
	cr_assert_null(row(r, n, "new.test"));
	cr_assert_eq(row(r, n, "example.com")->incoming, 1);
	free(r);

	/* a part moves class (remove + add in one transaction) */
	dom("example.com", T0, QAGG_INCOMING, 100, -1);
	dom("example.com", T0, QAGG_ACTIVE, 100, 1);
	qagg_commit(&a);
	r = rows(T0, &n);
	x = row(r, n, "example.com");
	cr_assert(x->incoming == 0 && x->active == 1 && x->bytes == 600);
	free(r);

	/* the last part of a domain goes: so does the domain */
	dom("other.test", T0, QAGG_ACTIVE, 50, -1);
	qagg_commit(&a);
	r = rows(T0, &n);
	cr_assert_eq(n, 1);
	cr_assert_null(row(r, n, "other.test"));
	free(r);
	cr_assert_eq(a.underflows, 0);

	/* removing what is not there: counted, nothing goes below zero */
	dom("nowhere.test", T0, QAGG_INCOMING, 10, -1);
	dom("example.com", T0 + 86400, QAGG_INCOMING, 10, -1);	/* a slot it never had */
	qagg_commit(&a);
	cr_assert_eq(a.underflows, 2);
	r = rows(T0, &n);
	cr_assert_eq(n, 1);
	x = row(r, n, "example.com");
	cr_assert(x->incoming == 0 && x->active == 1 && x->deferred == 1 && x->held == 1);
	free(r);
}

Test(agg, many_domains_and_slots)
{
	enum { D = 5000, PER = 7 };
	struct queue_domain_sum *r;
	char name[64];
	size_t n;
	uint64_t total = 0;

	for (unsigned d = 0; d < D; d++) {
		snprintf(name, sizeof(name), "d%u.example", d);
		for (unsigned k = 0; k < PER; k++)	/* newest first: inserts in front */
			dom(name, T0 - (uint64_t)k * 1800, QAGG_INCOMING, 10, 1);
	}
	qagg_commit(&a);
	cr_assert_eq(a.ndom, D);
	cr_assert_gt(a.mask + 1, 1024, "the table grew");
	r = rows(T0, &n);
	cr_assert_eq(n, D);
	for (size_t i = 0; i < n; i++) {
		uint32_t sum = 0;
		for (int b = 0; b < QUEUE_AGE_BUCKETS; b++)
			sum += r[i].age[b];
		cr_assert_eq(sum, PER);
		cr_assert_eq(r[i].incoming, PER);
		cr_assert_eq(r[i].oldest, T0 - (PER - 1) * 1800ull);
		total += r[i].bytes;
	}
	cr_assert_eq(total, (uint64_t)D * PER * 10);
	free(r);
	/* remove all but the newest of each: one slot left, ages 0 */
	for (unsigned d = 0; d < D; d++) {
		snprintf(name, sizeof(name), "d%u.example", d);
		for (unsigned k = 1; k < PER; k++)
			dom(name, T0 - (uint64_t)k * 1800, QAGG_INCOMING, 10, -1);
	}
	qagg_commit(&a);
	r = rows(T0 + 60, &n);
	cr_assert_eq(n, D);
	for (size_t i = 0; i < n; i++)
		cr_assert(r[i].incoming == 1 && r[i].age[0] == 1 && r[i].oldest == T0);
	free(r);
	cr_assert_eq(a.underflows, 0);
}

Test(agg, totals)
{
	struct queue_totals t = { 0 };

	qagg_note_part(&a, true, true, false, 1000, 1);	/* a message, never claimed */
	qagg_note_part(&a, true, false, true, 500, 1);	/* held, tried before */
	qagg_note_part(&a, false, true, false, 1000, 1);	/* another shard's part: not a message */
	dom("x.test", T0, QAGG_INCOMING, 1000, 1);
	qagg_commit(&a);
	qagg_totals(&a, &t);
	cr_assert_eq(t.parts, 3);
	cr_assert_eq(t.messages, 2);
	cr_assert_eq(t.untried, 1);
	cr_assert_eq(t.held, 1);
	cr_assert_eq(t.bytes, 1500);
	cr_assert_eq(t.domains, 1);
	/* the first is claimed: no longer untried */
	qagg_note_part(&a, true, true, false, 1000, -1);
	qagg_note_part(&a, true, false, false, 1000, 1);
	qagg_commit(&a);
	memset(&t, 0, sizeof(t));
	qagg_totals(&a, &t);
	cr_assert(t.messages == 2 && t.untried == 0 && t.parts == 3);
}
