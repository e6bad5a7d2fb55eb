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
			struct tcp_tuple t = { .laddr = net_addr_v4(tip(OUR_IP)),
					       .raddr = net_addr_v4((rte_be32_t)(trand(&rng) % 8)),
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
		struct tcp_tuple t = { net_addr_v4(tip(OUR_IP)), net_addr_v4(tip(PEER_IP)), 1, (rte_be16_t)(i + 1) };
		struct tcp_conn *c = tcp_conn_alloc(ts, &t);
		cr_assert(c);
		c->state = TCP_ESTABLISHED;
	}
	struct tcp_tuple t = { net_addr_v4(tip(OUR_IP)), net_addr_v4(tip(PEER_IP)), 2, 2 };
	cr_expect_null(tcp_conn_alloc(ts, &t));
	cr_expect_eq(tcp_stack_stats(ts)->conn_table_full, 1);
}

Test(tcp_table, wheel_far_deadlines)
{
	struct tcp_stack *ts = N.ts;
	struct tcp_tuple t = { net_addr_v4(tip(OUR_IP)), net_addr_v4(tip(PEER_IP)), 1, 1 };
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

/* An IPv6 address whose words fold (xor) to `fold`: the first three words
 * are free (from x), the fourth makes the xor come out. */
static struct net_addr v6_folding_to(uint32_t fold, uint64_t x)
{
	uint8_t b[16] = { 0xfd, 0x00, 0x00, 0x5c };
	uint32_t w[4];
	memcpy(b + 4, &x, 8);
	memcpy(w, b, 12);
	w[3] = fold ^ w[0] ^ w[1] ^ w[2];
	memcpy(b + 12, &w[3], 4);
	return net_addr_v6(b);
}

/* One table for both families: tuples whose addresses fold to the same
 * 32 bits (so they share a hash and a probe chain), an IPv4 tuple among
 * them with that very value as its address, inserted, looked up and
 * deleted at random: every lookup finds exactly its own connection. */
Test(tcp_table, families_share_the_table_without_confusion)
{
	struct tcp_stack *ts = N.ts;
	struct tcp_tuple tup[256];
	struct tcp_conn *cs[256];
	unsigned n = 0;
	uint64_t rng = 777;
	rte_be32_t peer = tip(PEER_IP);
	struct net_addr l6 = v6_folding_to(tip(OUR_IP), 1);

	for (unsigned step = 0; step < 50000; step++) {
		bool add = n == 0 || (n < 256 && trand(&rng) % 100 < 55);
		if (add) {
			struct tcp_tuple t;
			memset(&t, 0, sizeof(t));
			if (trand(&rng) % 3 == 0) {
				t.laddr = net_addr_v4(tip(OUR_IP));
				t.raddr = net_addr_v4(peer);
			} else {
				t.laddr = l6;
				t.raddr = v6_folding_to(peer, trand(&rng) % 6);
			}
			t.lport = (rte_be16_t)(trand(&rng) % 2 + 1);
			t.rport = (rte_be16_t)(trand(&rng) % 16 + 1);
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
		if (step % 499 == 0)
			for (unsigned i = 0; i < n; i++)
				cr_assert_eq(tcp_conn_lookup(ts, &tup[i]), cs[i], "step %u", step);
	}
	/* the families really did collide: an IPv4 and an IPv6 tuple with
	 * the same ports and folded addresses are two connections */
	struct tcp_tuple a, b;
	memset(&a, 0, sizeof(a));
	a.laddr = net_addr_v4(tip(OUR_IP));
	a.raddr = net_addr_v4(peer);
	a.lport = a.rport = 9999;
	b = a;
	b.laddr = l6;
	b.raddr = v6_folding_to(peer, 0);
	cr_assert_eq(net_addr_fold(&b.laddr), a.laddr.v4);
	cr_assert_eq(net_addr_fold(&b.raddr), a.raddr.v4);
	struct tcp_conn *ca = tcp_conn_alloc(ts, &a), *cb = tcp_conn_alloc(ts, &b);
	cr_assert(ca && cb && ca != cb);
	cr_expect_eq(tcp_conn_lookup(ts, &a), ca);
	cr_expect_eq(tcp_conn_lookup(ts, &b), cb);
	/* the same bytes in the other family: 198.18.0.2 vs c612:2:: */
	uint8_t l6b[16] = { 0 }, r6b[16] = { 0 };
	memcpy(l6b, &a.laddr.v4, 4);
	memcpy(r6b, &a.raddr.v4, 4);
	struct tcp_tuple d = a;
	d.laddr = net_addr_v6(l6b);
	d.raddr = net_addr_v6(r6b);
	cr_assert_null(tcp_conn_lookup(ts, &d), "an IPv6 tuple found an IPv4 connection");
	struct tcp_conn *cd = tcp_conn_alloc(ts, &d);
	cr_assert(cd && cd != ca);
	cr_expect_eq(tcp_conn_lookup(ts, &d), cd);
	cr_expect_eq(tcp_conn_lookup(ts, &a), ca);
	/* keyed hashes (ISN) cover the whole IPv6 address, not the fold */
	struct tcp_tuple c2 = b;
	c2.raddr = v6_folding_to(peer, 1);
	ts->now = N.ns.now_ns;
	cr_expect_neq(tcp_isn(ts, &b), tcp_isn(ts, &c2));
}
