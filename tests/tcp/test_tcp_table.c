/*
 * test_tcp_table.c - the connection table (open addressing with
 * backward-shift deletion) against a shadow list under random inserts and
 * deletes, and the timer wheel with deadlines beyond its span.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "tests/tcp/tcp_test.h"

static struct tnode N;

static void setup(void)
{
	struct tcp_conf cf;
	tconf(&cf);
	cf.max_conns = 512;
	tnode_init(&N, "table", OUR_IP, 2, &cf);
}

static void teardown(void)
{
	cr_expect_eq(tnode_fini(&N), 0);
}

TestSuite(tcp_table, .init = setup, .fini = teardown, .timeout = 60);

Test(tcp_table, random_insert_delete_lookup)
{
	struct tcp_stack *ts = N.ts;
	struct tcp_tuple tup[512];
	struct tcp_conn *cs[512];
	unsigned n = 0;
	uint64_t rng = 12345;
	for (unsigned step = 0; step < 200000; step++) {
		bool add = n == 0 || (n < 512 && trand(&rng) % 100 < 55);
		if (add) {
			struct tcp_tuple t = { .laddr = tip(OUR_IP),
					       .raddr = (rte_be32_t)(trand(&rng) % 8),
					       .lport = (rte_be16_t)(trand(&rng) % 4 + 1),
					       .rport = (rte_be16_t)(trand(&rng) % 64 + 1) };
			bool dup = false;
			for (unsigned i = 0; i < n && !dup; i++)
				dup = memcmp(&tup[i], &t, sizeof(t)) == 0;
			cr_assert_eq(tcp_conn_lookup(ts, &t) != NULL, dup);
			if (dup)
				continue;
			struct tcp_conn *c = tcp_conn_alloc(ts, &t);
			cr_assert(c);
			c->state = TCP_ESTABLISHED;
			tup[n] = t;
			cs[n] = c;
			n++;
		} else {
			unsigned k = (unsigned)(trand(&rng) % n);
			tcp_conn_release(cs[k]);
			tcp_reap(ts);
			cr_assert_null(tcp_conn_lookup(ts, &tup[k]));
			tup[k] = tup[n - 1];
			cs[k] = cs[n - 1];
			n--;
		}
		if (step % 997 == 0)
			for (unsigned i = 0; i < n; i++)
				cr_assert_eq(tcp_conn_lookup(ts, &tup[i]), cs[i], "step %u", step);
	}
	cr_expect_eq(tcp_stack_conn_count(ts), n);
}

Test(tcp_table, full_table_refuses)
{
	struct tcp_stack *ts = N.ts;
	for (unsigned i = 0; i < 512; i++) {
		struct tcp_tuple t = { tip(OUR_IP), tip(PEER_IP), 1, (rte_be16_t)(i + 1) };
		struct tcp_conn *c = tcp_conn_alloc(ts, &t);
		cr_assert(c);
		c->state = TCP_ESTABLISHED;
	}
	struct tcp_tuple t = { tip(OUR_IP), tip(PEER_IP), 2, 2 };
	cr_expect_null(tcp_conn_alloc(ts, &t));
	cr_expect_eq(tcp_stack_stats(ts)->conn_table_full, 1);
}

Test(tcp_table, wheel_far_deadlines)
{
	struct tcp_stack *ts = N.ts;
	struct tcp_tuple t = { tip(OUR_IP), tip(PEER_IP), 1, 1 };
	struct tcp_conn *c = tcp_conn_alloc(ts, &t);
	cr_assert(c);
	c->state = TCP_TIME_WAIT;
	ts->now = N.ns.now_ns;
	c->tw_at = ts->now + 10 * NS_PER_SEC + 123;	/* > 4096 ms span */
	tcp_timer_update(c);
	for (unsigned k = 0; k < 10000; k++) {
		N.ns.now_ns += NS_PER_MS;
		tcp_tick(ts);
	}
	cr_expect_eq(tcp_stack_conn_count(ts), 1, "not before its time");
	N.ns.now_ns += NS_PER_MS;
	tcp_tick(ts);
	cr_expect_eq(tcp_stack_conn_count(ts), 0, "fires within a tick of its deadline");
	cr_expect_eq(tcp_stack_stats(ts)->timewait_expired, 1);
}
