/*
 * test_client_share.c - message rates across a cluster, the lcores' side
 * and the cluster thread's reader (dataplane/smtp/client_share.h), with an
 * injected clock: inactive it is the local limit; active, each box holds a
 * key to its share of the limit, then to the cells granted; refusals flag
 * the slot; the reader reports what was spent once, frees idle slots,
 * drops old grants; only MAIL (messages) is shared.
 */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "dataplane/smtp/client_share.h"

#define SEC 1000000000ull

static struct client_share *cs;
static struct client_limits *t;
static struct cs_reader *rd;

static void setup(void)
{
	cs = cs_create();
	t = cl_create(42);
	rd = cs_reader_new();
	cr_assert(cs && t && rd);
}

static void teardown(void)
{
	cs_free(cs);
	cl_free(t);
	cs_reader_free(rd);
}

TestSuite(client_share, .init = setup, .fini = teardown);

/* Messages from key allowed at `now` in a burst (until the first refusal). */
static unsigned burst(const struct cl_key *k, const char *text, uint32_t limit, uint64_t now)
{
	unsigned n = 0;

	while (n < 1000 && cs_take(cs, t, k, text, CL_MSG, limit, 10 * SEC, now) == 0)
		n++;
	return n;
}

Test(client_share, inactive_is_the_local_limit)
{
	struct cl_key k = cl_key_addr(0xc0000201);

	cr_assert_eq(burst(&k, "a:192.0.2.1", 20, SEC), 20);
	cr_assert_eq(cs->slot[k.hash % CS_SLOTS].hash, 0, "no slot taken while inactive");
}

Test(client_share, a_box_holds_its_share_then_the_grants)
{
	struct cl_key k = cl_key_addr(0xc0000202);
	struct cs_report rep[4];
	uint64_t dropped = 0;
	unsigned n;

	atomic_store(&cs->active, true);
	atomic_store(&cs->boxes, 3);
	cr_assert_eq(cs_share(cs, 20), 7, "ceil(20 / 3)");
	cr_assert_eq(burst(&k, "a:192.0.2.2", 20, SEC), 7, "the share alone");
	cr_assert(cs_over(cs, t, &k, "a:192.0.2.2", CL_MSG, 20, 10 * SEC, SEC));
	/* the reader: 7 spent, cells wanted; the same spent never twice */
	n = cs_collect(cs, rd, rep, 4, 100, SEC, &dropped);
	cr_assert_eq(n, 1);
	cr_assert_eq(rep[0].charge, 7);
	cr_assert(rep[0].want);
	cr_assert_str_eq(rep[0].key, "a:192.0.2.2");
	cr_assert_eq(rep[0].limit, 20);
	cr_assert_eq(rep[0].window_ns, 10 * SEC);
	cr_assert_eq(cs_collect(cs, rd, rep, 4, 200, SEC, &dropped), 0, "nothing new");
	/* Redis grants 4: four more, then refused and wanted again */
	cs_grant(cs, rd, rep[0].idx, "a:192.0.2.2", 4, 300);
	cr_assert_not(cs_over(cs, t, &k, "a:192.0.2.2", CL_MSG, 20, 10 * SEC, SEC));
	cr_assert_eq(burst(&k, "a:192.0.2.2", 20, SEC), 4);
	cr_assert_eq(atomic_load(&cs->granted_taken), 4);
	n = cs_collect(cs, rd, rep, 4, 400, SEC, &dropped);
	cr_assert_eq(n, 1);
	cr_assert_eq(rep[0].charge, 0, "granted cells are not charged again");
	cr_assert(rep[0].want);
	/* a grant for a key no longer in the slot is not given to another */
	cs_grant(cs, rd, rep[0].idx, "a:192.0.2.99", 4, 500);
	cr_assert_eq(atomic_load(&cs->slot[rep[0].idx].grant), 0);
	/* unspent grants are dropped after keep */
	cs_grant(cs, rd, rep[0].idx, "a:192.0.2.2", 5, 500);
	cs_collect(cs, rd, rep, 4, 500 + SEC, SEC, &dropped);
	cr_assert_eq(dropped, 5);
	cr_assert_eq(atomic_load(&cs->slot[rep[0].idx].grant), 0);
}

Test(client_share, redis_down_is_the_share_and_recipients_are_local)
{
	struct cl_key k = cl_key_addr(0xc0000203);

	atomic_store(&cs->active, true);
	atomic_store(&cs->boxes, 2);
	cr_assert_eq(burst(&k, "a:192.0.2.3", 20, SEC), 10, "half of 20 with two boxes");
	/* 10 s later the share is full again: 10 more, not 20 */
	cr_assert_eq(burst(&k, "a:192.0.2.3", 20, 11 * SEC), 10);
	/* recipients are this box's own, whole */
	unsigned r = 0;
	while (r < 100 && cs_take(cs, t, &k, "a:192.0.2.3", CL_RCPT, 20, 10 * SEC, SEC) == 0)
		r++;
	cr_assert_eq(r, 20);
}

Test(client_share, idle_slots_are_freed_and_users_have_their_own)
{
	struct cl_key ka = cl_key_addr(0xc0000204), ku = cl_key_user("alice");
	struct cs_report rep[4];
	uint64_t dropped = 0;

	atomic_store(&cs->active, true);
	cr_assert_eq(cs_take(cs, t, &ka, "a:192.0.2.4", CL_MSG, 5, SEC, SEC), 0);
	cr_assert_eq(cs_take(cs, t, &ku, "u:alice", CL_MSG, 5, SEC, SEC), 0);
	cr_assert_eq(cs_collect(cs, rd, rep, 4, 1000, SEC, &dropped), 2);
	/* idle for less than 10 s: kept; more: freed */
	cr_assert_eq(cs_collect(cs, rd, rep, 4, 1000 + 5 * SEC, SEC, &dropped), 0);
	cr_assert_neq(atomic_load(&cs->slot[rep[0].idx].hash), 0);
	cs_collect(cs, rd, rep, 4, 1000 + 11 * SEC, SEC, &dropped);
	for (unsigned i = 0; i < CS_SLOTS; i++)
		cr_assert_eq(atomic_load(&cs->slot[i].hash), 0, "slot %u still taken", i);
	/* a freed slot's next key starts from nothing */
	cr_assert_eq(cs_take(cs, t, &ka, "a:192.0.2.4", CL_MSG, 5, SEC, 20 * SEC), 0);
	cr_assert_eq(cs_collect(cs, rd, rep, 4, 1000 + 12 * SEC, SEC, &dropped), 1);
	cr_assert_eq(rep[0].charge, 1);
}

Test(client_share, a_full_neighbourhood_is_counted)
{
	struct cl_key k = cl_key_addr(0xc0000205);
	char text[32];

	atomic_store(&cs->active, true);
	for (unsigned p = 0; p < CS_PROBE; p++)	/* other keys in all of k's places */
		atomic_store(&cs->slot[(k.hash + p) % CS_SLOTS].hash, k.hash + 1000 + p);
	snprintf(text, sizeof(text), "a:192.0.2.5");
	cr_assert_eq(cs_take(cs, t, &k, text, CL_MSG, 5, SEC, SEC), 0, "its share still holds");
	cr_assert_eq(atomic_load(&cs->slots_full), 1);
}
