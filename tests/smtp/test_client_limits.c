/*
 * test_client_limits.c - the shared per-client rate table
 * (dataplane/smtp/client_limits.h) with an injected clock: the limit is
 * exact at a window's edge, the allowance refills at the limit's pace,
 * clients and users are counted apart, two threads hammering one key (two
 * "lcores") never get more than the limit through, 100,000 distinct
 * clients neither grow the table nor push a quiet client over, exempt
 * lists parse and match, the top-clients view names the busiest, and an
 * IPv6 client is counted by its /64, apart from every IPv4 address.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "dataplane/smtp/client_limits.h"

#define SEC 1000000000ull
#define W   (60 * SEC)

static struct client_limits *t;

static void setup(void)
{
	t = cl_create(0x1234567887654321ull);
	cr_assert_not_null(t);
}

static void teardown(void)
{
	cl_free(t);
}

static uint32_t ip4(unsigned a, unsigned b, unsigned c, unsigned d)
{
	return (uint32_t)a << 24 | (uint32_t)b << 16 | (uint32_t)c << 8 | d;
}

TestSuite(client_limits, .init = setup, .fini = teardown);

Test(client_limits, exactly_the_limit_then_one_per_interval)
{
	struct cl_key k = cl_key_addr(ip4(203, 0, 113, 7));
	uint64_t now = 5 * SEC;
	unsigned ok = 0;

	for (int i = 0; i < 100; i++)
		ok += cl_take(t, &k, CL_MSG, 30, W, now) == 0;
	cr_expect_eq(ok, 30, "a burst gets exactly the limit: %u", ok);
	cr_expect(cl_over(t, &k, CL_MSG, 30, W, now));
	cr_expect_eq(cl_level(t, &k, CL_MSG, 30, W, now), 30);
	/* T = 2 s: one nanosecond short of it, still over; at it, one more */
	cr_expect_eq(cl_take(t, &k, CL_MSG, 30, W, now + 2 * SEC - 1), 1);
	cr_expect_eq(cl_take(t, &k, CL_MSG, 30, W, now + 2 * SEC), 0);
	cr_expect_eq(cl_take(t, &k, CL_MSG, 30, W, now + 2 * SEC), 1);
	/* a refused event counts nothing: knocking every 100 ms for a window
	 * gets one every T, 30 in all, not fewer */
	ok = 0;
	for (uint64_t at = now + 2 * SEC + 100000000ull; at <= now + 2 * SEC + W;
	     at += 100000000ull)
		ok += cl_take(t, &k, CL_MSG, 30, W, at) == 0;
	cr_expect_eq(ok, 30, "one per interval over a window: %u", ok);
	/* a window of silence refills the whole allowance */
	cr_expect_eq(cl_level(t, &k, CL_MSG, 30, W, now + 4 * W), 0);
	ok = 0;
	for (int i = 0; i < 40; i++)
		ok += cl_take(t, &k, CL_MSG, 30, W, now + 4 * W) == 0;
	cr_expect_eq(ok, 30);
}

Test(client_limits, zero_is_off)
{
	struct cl_key k = cl_key_addr(ip4(203, 0, 113, 8));

	for (int i = 0; i < 10000; i++)
		cr_assert_eq(cl_take(t, &k, CL_CONN, 0, W, 1), 0);
	cr_expect_not(cl_over(t, &k, CL_CONN, 0, W, 1));
	cr_expect_eq(cl_tracked(t, 1), 0, "a limit of 0 keeps no state");
}

Test(client_limits, kinds_clients_and_users_apart)
{
	struct cl_key a = cl_key_addr(ip4(198, 51, 100, 1));
	struct cl_key b = cl_key_addr(ip4(198, 51, 100, 2));
	struct cl_key u = cl_key_user("alice");
	struct cl_key v = cl_key_user("alicf");

	for (int i = 0; i < 10; i++)
		cr_assert_eq(cl_take(t, &a, CL_RCPT, 10, W, SEC), 0);
	cr_expect_eq(cl_take(t, &a, CL_RCPT, 10, W, SEC), 1);
	cr_expect_eq(cl_take(t, &a, CL_MSG, 10, W, SEC), 0, "another kind is apart");
	cr_expect_eq(cl_take(t, &b, CL_RCPT, 10, W, SEC), 0, "another client is apart");
	for (int i = 0; i < 5; i++)
		cr_assert_eq(cl_take(t, &u, CL_MSG, 5, W, SEC), 0);
	cr_expect_eq(cl_take(t, &u, CL_MSG, 5, W, SEC), 1);
	cr_expect_eq(cl_take(t, &v, CL_MSG, 5, W, SEC), 0, "another user is apart");
	cr_expect_neq(cl_key_user("alice").hash, cl_key_addr(0).hash);
}

Test(client_limits, failures_counted_then_refused_before_asking)
{
	struct cl_key k = cl_key_addr(ip4(192, 0, 2, 66));

	for (int i = 0; i < 3; i++) {
		cr_expect_not(cl_over(t, &k, CL_AUTHFAIL, 3, W, SEC));
		cl_count(t, &k, CL_AUTHFAIL, 3, W, SEC);
	}
	cr_expect(cl_over(t, &k, CL_AUTHFAIL, 3, W, SEC));
	/* counting past full stays capped at full: one interval frees one */
	for (int i = 0; i < 50; i++)
		cl_count(t, &k, CL_AUTHFAIL, 3, W, SEC);
	cr_expect(cl_over(t, &k, CL_AUTHFAIL, 3, W, SEC + W / 3 - 1));
	cr_expect_not(cl_over(t, &k, CL_AUTHFAIL, 3, W, SEC + W / 3));
}

#define HAMMER_ROUNDS 2000
#define HAMMER_LIMIT  100

struct hammer {
	atomic_uint *arrived;		/* per round, both threads meet here */
	unsigned ok[HAMMER_ROUNDS];
};

static void *hammer_run(void *arg)
{
	struct hammer *h = arg;

	for (unsigned r = 0; r < HAMMER_ROUNDS; r++) {
		struct cl_key k = cl_key_addr(ip4(203, 0, 113, 0) + r);
		atomic_fetch_add(h->arrived, 1);
		while (atomic_load(h->arrived) < 2 * (r + 1))
			;	/* start each key together */
		for (int i = 0; i < 2 * HAMMER_LIMIT; i++)
			/* a window apart: a key sharing a bucket with an
			 * earlier round's finds it idle */
			h->ok[r] += cl_take(t, &k, CL_CONN, HAMMER_LIMIT, W, 7 * SEC + r * 2 * W) == 0;
	}
	return NULL;
}

/* Two lcores on one key at the same instant, round after round: the check
 * and the advance of a cell are one compare-and-swap, so exactly the limit
 * gets through each time, never one more. */
Test(client_limits, two_lcores_hammering_one_key)
{
	atomic_uint arrived = 0;
	static struct hammer h[2];
	pthread_t th[2];
	unsigned over = 0, total = 0;

	memset(h, 0, sizeof(h));
	for (int i = 0; i < 2; i++) {
		h[i].arrived = &arrived;
		cr_assert_eq(pthread_create(&th[i], NULL, hammer_run, &h[i]), 0);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	for (unsigned r = 0; r < HAMMER_ROUNDS; r++) {
		unsigned n = h[0].ok[r] + h[1].ok[r];
		total += n;
		over += n != HAMMER_LIMIT;
	}
	cr_expect_eq(over, 0, "%u of %u rounds let other than %u through (%u in all)", over,
		     HAMMER_ROUNDS, HAMMER_LIMIT, total);
}

/* 100,000 distinct clients with a few events each: the table does not grow
 * (it is one fixed block), and a client that sent nothing is not pushed
 * near its limit by the crowd it shares its bucket with. */
Test(client_limits, bounded_memory_many_clients)
{
	struct cl_key quiet = cl_key_addr(ip4(192, 0, 2, 1));
	unsigned refused = 0;

	cr_expect_eq(sizeof(*t) <= (size_t)5 << 20, 1, "the table is %zu octets", sizeof(*t));
	for (uint32_t i = 0; i < 100000; i++) {
		struct cl_key k = cl_key_addr(ip4(10, 0, 0, 0) + i);
		for (int j = 0; j < 3; j++)
			refused += cl_take(t, &k, CL_MSG, 60, W, SEC);
	}
	cr_expect_eq(refused, 0, "%u refused among 100,000 clients of 3 messages, limit 60",
		     refused);
	cr_expect_lt(cl_level(t, &quiet, CL_MSG, 60, W, SEC), 30,
		     "a quiet client's estimate stays far below the limit");
	cr_expect_gt(cl_tracked(t, SEC), CL_WIDTH / 2);
	cr_expect_eq(cl_tracked(t, SEC + W), 0, "all idle a window later");
}

Test(client_limits, exempt_lists)
{
	struct smtp_policy pol;
	struct cl_conf c = { 0 };
	char err[128];

	cr_assert_eq(smtp_policy_init(&pol, "198.18.0.0/24 10.1.0.0/16", NULL), 0);
	cr_assert_eq(cl_conf_exempt(&c, "mynetworks, 192.0.2.7 203.0.113.0/25", &pol, err,
				    sizeof(err)), 0, "%s", err);
	cr_expect_eq(c.nexempt, 4);
	cr_expect(c.exempt_mynetworks, "IPv6 clients in mynetworks are exempt too");
	cr_expect(cl_exempt(&c, ip4(198, 18, 0, 200)));
	cr_expect(cl_exempt(&c, ip4(10, 1, 9, 9)));
	cr_expect(cl_exempt(&c, ip4(192, 0, 2, 7)));
	cr_expect_not(cl_exempt(&c, ip4(192, 0, 2, 8)));
	cr_expect(cl_exempt(&c, ip4(203, 0, 113, 127)));
	cr_expect_not(cl_exempt(&c, ip4(203, 0, 113, 128)));
	cr_assert_eq(cl_conf_exempt(&c, "", &pol, err, sizeof(err)), 0);
	cr_expect_eq(c.nexempt, 0);
	cr_expect_not(c.exempt_mynetworks);
	cr_expect_not(cl_exempt(&c, ip4(198, 18, 0, 1)));
	cr_assert_eq(cl_conf_exempt(&c, "192.0.2.7", &pol, err, sizeof(err)), 0);
	cr_expect_not(c.exempt_mynetworks, "an IPv4 list alone exempts no IPv6 client");
	cr_expect_eq(cl_conf_exempt(&c, "10.0.0.1/8", NULL, err, sizeof(err)), -1);
	cr_expect(strstr(err, "host bits") != NULL, "%s", err);
	cr_expect_eq(cl_conf_exempt(&c, "10.0.0.0/33", NULL, err, sizeof(err)), -1);
	cr_expect_eq(cl_conf_exempt(&c, "example.com", NULL, err, sizeof(err)), -1);
	cr_expect_eq(c.nexempt, 0, "a bad list exempts no one");
}

Test(client_limits, top_names_the_busiest)
{
	struct cl_conf c = { .window_ns = W };
	struct cl_top_entry top[8];
	struct cl_key heavy = cl_key_addr(ip4(203, 0, 113, 5));
	struct cl_key user = cl_key_user("mallory");
	unsigned n;

	c.addr[CL_MSG] = 100;
	c.user[CL_MSG] = 50;
	for (uint32_t i = 0; i < 5000; i++) {
		struct cl_key k = cl_key_addr(ip4(10, 9, 0, 0) + i);
		cl_take(t, &k, CL_MSG, 100, W, SEC);
	}
	for (int i = 0; i < 80; i++)
		cl_take(t, &heavy, CL_MSG, 100, W, SEC);
	for (int i = 0; i < 50; i++)
		cl_take(t, &user, CL_MSG, 50, W, SEC);
	n = cl_top(t, &c, SEC, top, 8);
	cr_assert_geq(n, 2);
	cr_expect(top[0].user, "the user at 100%% of its limit comes first");
	cr_expect_str_eq(top[0].name, "mallory");
	cr_expect_eq(top[0].level[CL_MSG], 50);
	cr_expect_eq(top[0].permille, 1000);
	cr_expect_not(top[1].user);
	cr_expect_eq(top[1].ip, ip4(203, 0, 113, 5));
	cr_expect_geq(top[1].level[CL_MSG], 80);
	cr_expect_eq(cl_top(t, &c, SEC + W, top, 8), 0, "nobody is busy a window later");
}

/* An IPv6 client is counted by its /64, in a key domain of its own: two
 * addresses of one /64 share their allowance, another /64 does not, and a
 * prefix chosen so that its 32-bit fold (the old key: the two words of the
 * /64 XORed with 0x5c5c5c5c) is an IPv4 client's address no longer drains
 * that client's allowance. The top view names it as its /64. */
Test(client_limits, ipv6_counted_by_slash64_apart_from_ipv4)
{
	static const uint8_t a1[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1 };
	static const uint8_t a2[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 0xfe, 0, 0, 0, 0, 0, 0, 9 };
	static const uint8_t b1[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1 };
	struct cl_conf c = { .window_ns = W };
	struct cl_key k1 = cl_key_addr6(a1), k2 = cl_key_addr6(a2), kb = cl_key_addr6(b1);
	uint32_t fold = (0x20010db8u ^ 0x00010002u ^ 0x5c5c5c5cu);
	struct cl_key v4 = cl_key_addr(fold);
	struct cl_top_entry top[4];
	char text[CL_ADDR_TEXT];
	unsigned n;

	cr_expect(k1.v6 && k1.hash == k2.hash, "one /64, one key");
	cr_expect_neq(k1.hash, kb.hash, "another /64, another key");
	cr_expect_neq(k1.hash, v4.hash, "the /64 is not the IPv4 address it folds to");
	for (int i = 0; i < 10; i++)
		cr_assert_eq(cl_take(t, i & 1 ? &k2 : &k1, CL_MSG, 10, W, SEC), 0);
	cr_expect_eq(cl_take(t, &k1, CL_MSG, 10, W, SEC), 1, "the /64 is at its limit");
	cr_expect_eq(cl_level(t, &kb, CL_MSG, 10, W, SEC), 0);
	cr_expect_eq(cl_level(t, &v4, CL_MSG, 10, W, SEC), 0,
		     "the IPv4 client %u.%u.%u.%u keeps its whole allowance", fold >> 24,
		     (fold >> 16) & 255, (fold >> 8) & 255, fold & 255);
	cr_expect_eq(cl_take(t, &v4, CL_MSG, 10, W, SEC), 0);

	c.addr[CL_MSG] = 10;
	n = cl_top(t, &c, SEC, top, 4);
	cr_assert_geq(n, 1);
	cr_expect(top[0].v6 && !top[0].user, "the top entry is the /64");
	cl_addr_text(top[0].v6, top[0].ip, top[0].net6, text, sizeof(text));
	cr_expect_str_eq(text, "2001:db8:1:2::/64");
	cl_addr_text(false, ip4(192, 0, 2, 1), NULL, text, sizeof(text));
	cr_expect_str_eq(text, "192.0.2.1");
}
