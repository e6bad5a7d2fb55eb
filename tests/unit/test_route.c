/*
 * test_route.c - routing (control/route.c) over the real resolver and
 * c-ares, the DNS answered by the in-process responder: MX ordering per
 * RFC 5321 5.1 (preferences, seeded shuffle of equal ones, implicit MX
 * only without an MX RRset, backup-MX pruning by name and by address, null
 * MX, NXDOMAIN, SERVFAIL, timeouts, the address limit), static routes
 * (literals, [host], host:port with MX, priorities, wildcards, relayhost,
 * discard, hold, TLS policy), runtime changes, the spec syntax and its
 * errors, and the bounds.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "control/dns.h"
#include "control/dns_sock.h"
#include "control/route.h"
#include "tests/support/dns_responder.h"

struct rgot {
	unsigned calls;
	struct route_result res;
};

static void rgot_cb(void *user, const struct route_result *r)
{
	struct rgot *g = user;
	g->calls++;
	g->res = *r;
}

struct rfx {
	struct dnsr *z;
	struct dns_resolver *d;
	struct router *rt;
	struct dns_conf dc;
	struct route_conf rc;
	uint64_t now, seed;
};

#define SELF "198.18.0.2"

static void rfx_init(struct rfx *f)
{
	memset(f, 0, sizeof(*f));
	f->z = dnsr_create();
	dnsr_server(f->z, "192.0.2.53", DNSR_ANSWER);
	dns_conf_default(&f->dc);
	snprintf(f->dc.servers, sizeof(f->dc.servers), "192.0.2.53");
	route_conf_default(&f->rc);
	snprintf(f->rc.hostname, sizeof(f->rc.hostname), "sluice.test");
	f->rc.self[0] = inet_addr(SELF);
	f->rc.nself = 1;
	f->now = 5000000;
	f->seed = 42;
}

static void rfx_start(struct rfx *f)
{
	f->d = dns_create_ops(&f->dc, dnsr_ops(f->z), f->now);
	cr_assert_not_null(f->d);
	f->rt = router_create(&f->rc, f->d, f->seed);
	cr_assert_not_null(f->rt);
}

static void rfx_fini(struct rfx *f)
{
	router_destroy(f->rt);
	dns_destroy(f->d);
	dnsr_destroy(f->z);
}

/* Route domain and wait for the answer; returns route_lookup's value. */
static int route(struct rfx *f, const char *domain, struct rgot *g)
{
	int rc;

	memset(g, 0, sizeof(*g));
	rc = route_lookup(f->rt, domain, rgot_cb, g);
	cr_assert_geq(rc, 0, "%s: %d", domain, rc);
	if (rc == 0)
		cr_assert_eq(g->calls, 0, "%s: answered, but route_lookup said later", domain);
	for (int i = 0; i < 30 && g->calls == 0; i++)
		dns_poll(f->d, f->now);
	cr_assert_eq(g->calls, 1, "%s: no answer", domain);
	return rc;
}

static const char *hop_ip(const struct route_hop *h)
{
	static char buf[4][INET_ADDRSTRLEN];
	static int k;
	k = (k + 1) % 4;
	cr_assert_eq(h->family, AF_INET);
	inet_ntop(AF_INET, h->addr, buf[k], sizeof(buf[k]));
	return buf[k];
}

static void expect_hop(const struct route_result *r, unsigned i, const char *ip, uint16_t port,
		       const char *mx, uint16_t pref)
{
	cr_assert_lt(i, r->n, "hop %u of %u", i, r->n);
	cr_assert_str_eq(hop_ip(&r->hop[i]), ip, "hop %u", i);
	cr_assert_eq(r->hop[i].port, port, "hop %u port %u", i, r->hop[i].port);
	cr_assert_str_eq(r->hop[i].mx, mx, "hop %u", i);
	cr_assert_eq(r->hop[i].pref, pref, "hop %u pref %u", i, r->hop[i].pref);
}

static void expect_fail(const struct route_result *r, enum route_status st, const char *dsn)
{
	cr_assert_eq(r->status, st, "status %s (%s) want %s", route_status_name(r->status), r->why,
		     route_status_name(st));
	cr_assert_str_eq(r->dsn, dsn, "%s", r->why);
	cr_assert_eq(r->n, 0);
}

Test(route, mx_records_by_preference)
{
	struct rfx f;
	struct rgot g;

	rfx_init(&f);
	dnsr_rr(f.z, "example.com", DNSR_MX, 300, "20 b.example.com");
	dnsr_rr(f.z, "example.com", DNSR_MX, 300, "10 a.example.com");
	dnsr_rr(f.z, "example.com", DNSR_MX, 300, "30 c.example.com");
	dnsr_rr(f.z, "example.com", DNSR_A, 300, "192.0.2.99");	/* never used: MX exist */
	dnsr_rr(f.z, "a.example.com", DNSR_A, 300, "192.0.2.1");
	dnsr_rr(f.z, "b.example.com", DNSR_A, 300, "192.0.2.2");
	dnsr_rr(f.z, "c.example.com", DNSR_A, 300, "192.0.2.3");
	rfx_start(&f);
	cr_assert_eq(route(&f, "Example.com", &g), 0);
	cr_assert_eq(g.res.status, ROUTE_OK, "%s", g.res.why);
	cr_assert_eq(g.res.n, 3);
	expect_hop(&g.res, 0, "192.0.2.1", 25, "a.example.com", 10);
	expect_hop(&g.res, 1, "192.0.2.2", 25, "b.example.com", 20);
	expect_hop(&g.res, 2, "192.0.2.3", 25, "c.example.com", 30);
	cr_assert_eq(g.res.hop[0].tls, ROUTE_TLS_MAY);
	cr_assert_eq(dnsr_queries(f.z, "example.com", DNSR_A, 0, -1), 0, "the domain's A was asked");
	/* everything cached now: answered at once */
	cr_assert_eq(route(&f, "example.com", &g), 1);
	cr_assert_eq(g.res.n, 3);
	rfx_fini(&f);
}

/* Equal preferences in random order, the same for the same seed. */
Test(route, equal_preferences_shuffled_by_the_seed)
{
	struct rfx f;
	struct rgot g;
	unsigned first[3] = { 0 };
	char order[2][800];

	rfx_init(&f);
	dnsr_rr(f.z, "eq.example", DNSR_MX, 300, "10 a.eq.example");
	dnsr_rr(f.z, "eq.example", DNSR_MX, 300, "10 b.eq.example");
	dnsr_rr(f.z, "eq.example", DNSR_MX, 300, "10 c.eq.example");
	dnsr_rr(f.z, "eq.example", DNSR_MX, 300, "5 best.eq.example");
	dnsr_rr(f.z, "a.eq.example", DNSR_A, 300, "192.0.2.1");
	dnsr_rr(f.z, "b.eq.example", DNSR_A, 300, "192.0.2.2");
	dnsr_rr(f.z, "c.eq.example", DNSR_A, 300, "192.0.2.3");
	dnsr_rr(f.z, "best.eq.example", DNSR_A, 300, "192.0.2.5");
	rfx_start(&f);
	for (uint64_t seed = 1; seed <= 60; seed++) {
		router_destroy(f.rt);
		f.rt = router_create(&f.rc, f.d, seed);
		route(&f, "eq.example", &g);
		cr_assert_eq(g.res.n, 4);
		cr_assert_str_eq(g.res.hop[0].mx, "best.eq.example", "preference 5 first, always");
		first[g.res.hop[1].mx[0] - 'a']++;
	}
	for (int i = 0; i < 3; i++)
		cr_assert_gt(first[i], 5, "host %c first only %u times in 60", 'a' + i, first[i]);
	for (int k = 0; k < 2; k++) {
		router_destroy(f.rt);
		f.rt = router_create(&f.rc, f.d, 7);
		route(&f, "eq.example", &g);
		snprintf(order[k], sizeof(order[k]), "%s %s %s", g.res.hop[1].mx, g.res.hop[2].mx,
			 g.res.hop[3].mx);
	}
	cr_assert_str_eq(order[0], order[1]);
	rfx_fini(&f);
}

Test(route, implicit_mx_only_without_an_mx_rrset)
{
	struct rfx f;
	struct rgot g;

	rfx_init(&f);
	dnsr_rr(f.z, "plain.example", DNSR_SOA, 300, "ns.plain.example h.plain.example 1 2 3 4 60");
	dnsr_rr(f.z, "plain.example", DNSR_A, 300, "192.0.2.10");
	dnsr_rr(f.z, "plain.example", DNSR_A, 300, "192.0.2.11");
	rfx_start(&f);
	route(&f, "plain.example", &g);
	cr_assert_eq(g.res.status, ROUTE_OK, "%s", g.res.why);
	cr_assert_eq(g.res.n, 2);
	cr_assert_str_eq(g.res.hop[0].mx, "plain.example");
	cr_assert_eq(g.res.hop[0].pref, 0);
	rfx_fini(&f);

	/* MX records exist but name hosts without addresses: never the domain's A */
	rfx_init(&f);
	dnsr_rr(f.z, "mxnoaddr.example", DNSR_MX, 300, "10 ghost.mxnoaddr.example");
	dnsr_rr(f.z, "mxnoaddr.example", DNSR_A, 300, "192.0.2.12");
	dnsr_rr(f.z, "mxnoaddr.example", DNSR_SOA, 300, "ns.x h.x 1 2 3 4 60");
	rfx_start(&f);
	route(&f, "mxnoaddr.example", &g);
	expect_fail(&g.res, ROUTE_PERM, "5.4.4");
	cr_assert_eq(dnsr_queries(f.z, "mxnoaddr.example", DNSR_A, 0, -1), 0);
	cr_assert_eq(dnsr_queries(f.z, "ghost.mxnoaddr.example", DNSR_A, 0, -1), 1);
	rfx_fini(&f);

	/* no MX, no A */
	rfx_init(&f);
	dnsr_rr(f.z, "empty.example", DNSR_SOA, 300, "ns.x h.x 1 2 3 4 60");
	rfx_start(&f);
	route(&f, "empty.example", &g);
	expect_fail(&g.res, ROUTE_PERM, "5.4.4");
	cr_assert_not_null(strstr(g.res.why, "no MX and no address"), "%s", g.res.why);
	rfx_fini(&f);
}

Test(route, null_mx_nxdomain_servfail)
{
	struct rfx f;
	struct rgot g;

	rfx_init(&f);
	dnsr_rr(f.z, "nomail.example", DNSR_MX, 300, "0 .");
	dnsr_rr(f.z, "nomail.example", DNSR_A, 300, "192.0.2.13");
	dnsr_rr(f.z, "org.example", DNSR_SOA, 300, "ns.x h.x 1 2 3 4 60");
	dnsr_rr(f.z, "sick.example", DNSR_MX, 300, "10 mx.sick.example");
	dnsr_rcode(f.z, "sick.example", DNSR_MX, DNSR_SERVFAIL);
	rfx_start(&f);
	route(&f, "nomail.example", &g);
	expect_fail(&g.res, ROUTE_PERM, "5.1.10");
	cr_assert_not_null(strstr(g.res.why, "556 5.1.10"), "%s", g.res.why);
	cr_assert_eq(dnsr_queries(f.z, "nomail.example", DNSR_A, 0, -1), 0);
	route(&f, "nosuch.org.example", &g);
	expect_fail(&g.res, ROUTE_PERM, "5.1.2");
	route(&f, "sick.example", &g);
	expect_fail(&g.res, ROUTE_TEMP, "4.4.3");
	cr_assert_not_null(strstr(g.res.why, "SERVFAIL"), "%s", g.res.why);
	rfx_fini(&f);
}

Test(route, timeout_is_temporary)
{
	struct rfx f;
	struct rgot g = { 0 };

	rfx_init(&f);
	dnsr_set_mode(f.z, 0, DNSR_SILENT);
	rfx_start(&f);
	cr_assert_eq(route_lookup(f.rt, "slow.example", rgot_cb, &g), 0);
	dns_poll(f.d, f.now);
	cr_assert_eq(g.calls, 0);
	f.now += dns_query_budget_ms(&f.dc, 1);
	dns_poll(f.d, f.now);
	cr_assert_eq(g.calls, 1);
	expect_fail(&g.res, ROUTE_TEMP, "4.4.3");
	cr_assert_not_null(strstr(g.res.why, "timed out"), "%s", g.res.why);
	rfx_fini(&f);
}

Test(route, backup_mx_drops_its_own_preference_and_above)
{
	struct rfx f;
	struct rgot g;

	/* by name: we are mx2 */
	rfx_init(&f);
	snprintf(f.rc.hostname, sizeof(f.rc.hostname), "MX2.backup.example");
	dnsr_rr(f.z, "backup.example", DNSR_MX, 300, "10 mx1.backup.example");
	dnsr_rr(f.z, "backup.example", DNSR_MX, 300, "20 mx2.backup.example.");
	dnsr_rr(f.z, "backup.example", DNSR_MX, 300, "20 mx2b.backup.example");
	dnsr_rr(f.z, "backup.example", DNSR_MX, 300, "30 mx3.backup.example");
	dnsr_rr(f.z, "mx1.backup.example", DNSR_A, 300, "192.0.2.1");
	dnsr_rr(f.z, "mx2b.backup.example", DNSR_A, 300, "192.0.2.22");
	dnsr_rr(f.z, "mx3.backup.example", DNSR_A, 300, "192.0.2.3");
	rfx_start(&f);
	route(&f, "backup.example", &g);
	cr_assert_eq(g.res.status, ROUTE_OK, "%s", g.res.why);
	cr_assert_eq(g.res.n, 1);
	expect_hop(&g.res, 0, "192.0.2.1", 25, "mx1.backup.example", 10);
	cr_assert_eq(dnsr_queries(f.z, "mx3.backup.example", 0, 0, -1), 0, "pruned before lookups");
	rfx_fini(&f);

	/* by address: mx2's address is ours */
	rfx_init(&f);
	dnsr_rr(f.z, "backup.example", DNSR_MX, 300, "10 mx1.backup.example");
	dnsr_rr(f.z, "backup.example", DNSR_MX, 300, "20 mx2.backup.example");
	dnsr_rr(f.z, "backup.example", DNSR_MX, 300, "20 mx2b.backup.example");
	dnsr_rr(f.z, "backup.example", DNSR_MX, 300, "30 mx3.backup.example");
	dnsr_rr(f.z, "mx1.backup.example", DNSR_A, 300, "192.0.2.1");
	dnsr_rr(f.z, "mx2.backup.example", DNSR_A, 300, SELF);
	dnsr_rr(f.z, "mx2b.backup.example", DNSR_A, 300, "192.0.2.22");
	dnsr_rr(f.z, "mx3.backup.example", DNSR_A, 300, "192.0.2.3");
	rfx_start(&f);
	route(&f, "backup.example", &g);
	cr_assert_eq(g.res.status, ROUTE_OK, "%s", g.res.why);
	cr_assert_eq(g.res.n, 1);
	expect_hop(&g.res, 0, "192.0.2.1", 25, "mx1.backup.example", 10);
	rfx_fini(&f);

	/* we are the best MX: the mail would loop */
	rfx_init(&f);
	dnsr_rr(f.z, "loop.example", DNSR_MX, 300, "10 sluice.test");
	dnsr_rr(f.z, "loop.example", DNSR_MX, 300, "20 other.loop.example");
	dnsr_rr(f.z, "other.loop.example", DNSR_A, 300, "192.0.2.4");
	rfx_start(&f);
	route(&f, "loop.example", &g);
	expect_fail(&g.res, ROUTE_PERM, "5.4.6");
	cr_assert_not_null(strstr(g.res.why, "loops back to myself"), "%s", g.res.why);
	rfx_fini(&f);
}

Test(route, address_limit_and_every_address_of_a_host)
{
	struct rfx f;
	struct rgot g;
	unsigned seen = 0;

	rfx_init(&f);
	dnsr_rr(f.z, "lim.example", DNSR_MX, 300, "10 a.lim.example");
	dnsr_rr(f.z, "lim.example", DNSR_MX, 300, "20 b.lim.example");
	for (int i = 1; i <= 4; i++) {
		char a[32], b[32];
		snprintf(a, sizeof(a), "192.0.2.%d", i);
		snprintf(b, sizeof(b), "192.0.2.%d", 10 + i);
		dnsr_rr(f.z, "a.lim.example", DNSR_A, 300, a);
		dnsr_rr(f.z, "b.lim.example", DNSR_A, 300, b);
	}
	rfx_start(&f);
	route(&f, "lim.example", &g);
	cr_assert_eq(g.res.n, 5, "limit 5, got %u", g.res.n);
	for (int i = 0; i < 4; i++) {
		cr_assert_str_eq(g.res.hop[i].mx, "a.lim.example");
		seen |= 1u << (g.res.hop[i].addr[3] - 1);
	}
	cr_assert_eq(seen, 0xf, "all four addresses of the best MX");
	cr_assert_str_eq(g.res.hop[4].mx, "b.lim.example");
	rfx_fini(&f);
}

Test(route, mx_hosts_whose_lookups_fail)
{
	struct rfx f;
	struct rgot g;

	rfx_init(&f);
	dnsr_rr(f.z, "part.example", DNSR_MX, 300, "10 sick.part.example");
	dnsr_rr(f.z, "part.example", DNSR_MX, 300, "20 ok.part.example");
	dnsr_rr(f.z, "sick.part.example", DNSR_A, 300, "192.0.2.1");
	dnsr_rcode(f.z, "sick.part.example", DNSR_A, DNSR_SERVFAIL);
	dnsr_rr(f.z, "ok.part.example", DNSR_A, 300, "192.0.2.2");
	dnsr_rr(f.z, "allsick.example", DNSR_MX, 300, "10 sick.part.example");
	rfx_start(&f);
	route(&f, "part.example", &g);
	cr_assert_eq(g.res.status, ROUTE_OK, "%s", g.res.why);
	cr_assert_eq(g.res.n, 1);
	expect_hop(&g.res, 0, "192.0.2.2", 25, "ok.part.example", 20);
	route(&f, "allsick.example", &g);
	expect_fail(&g.res, ROUTE_TEMP, "4.4.3");
	rfx_fini(&f);
}

Test(route, cname_chain_and_tcp_through_the_router)
{
	struct rfx f;
	struct rgot g;

	rfx_init(&f);
	dnsr_rr(f.z, "alias.example", DNSR_CNAME, 300, "real.example");
	dnsr_rr(f.z, "real.example", DNSR_MX, 300, "10 mx.real.example");
	dnsr_rr(f.z, "mx.real.example", DNSR_CNAME, 300, "box.real.example");
	dnsr_rr(f.z, "box.real.example", DNSR_A, 300, "192.0.2.33");
	dnsr_truncate(f.z, "alias.example");
	rfx_start(&f);
	route(&f, "alias.example", &g);
	cr_assert_eq(g.res.status, ROUTE_OK, "%s", g.res.why);
	expect_hop(&g.res, 0, "192.0.2.33", 25, "mx.real.example", 10);
	cr_assert_eq(dnsr_queries(f.z, "alias.example", DNSR_MX, SOCK_STREAM, -1), 1);
	rfx_fini(&f);
}

Test(route, static_literal_host_and_mx_routes)
{
	struct rfx f;
	struct rgot g;
	char err[200];

	rfx_init(&f);
	dnsr_rr(f.z, "relay.example.net", DNSR_A, 300, "192.0.2.41");
	dnsr_rr(f.z, "relay.example.net", DNSR_MX, 300, "10 wrong.example.net");
	dnsr_rr(f.z, "mxhost.example.org", DNSR_MX, 300, "10 in.example.org");
	dnsr_rr(f.z, "in.example.org", DNSR_A, 300, "192.0.2.42");
	rfx_start(&f);
	cr_assert_eq(route_set(f.rt, "lit.example", "[192.0.2.99]:2525", err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(route_set(f.rt, "host.example", "[relay.example.net]", err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(route_set(f.rt, "viamx.example", "mxhost.example.org:587", err, sizeof(err)), 0, "%s", err);

	cr_assert_eq(route(&f, "lit.example", &g), 1, "a literal needs no DNS");
	cr_assert_eq(g.res.status, ROUTE_OK);
	expect_hop(&g.res, 0, "192.0.2.99", 2525, "192.0.2.99", 0);
	cr_assert_str_eq(g.res.dest, "[192.0.2.99]:2525", "a static route's destination: its hops");

	route(&f, "host.example", &g);
	cr_assert_eq(g.res.status, ROUTE_OK, "%s", g.res.why);
	cr_assert_eq(g.res.n, 1);
	expect_hop(&g.res, 0, "192.0.2.41", 25, "relay.example.net", 0);
	cr_assert_str_eq(g.res.dest, "[relay.example.net]:25");
	cr_assert_eq(dnsr_queries(f.z, "relay.example.net", DNSR_MX, 0, -1), 0, "[host]: no MX");
	cr_assert_eq(dnsr_queries(f.z, "host.example", 0, 0, -1), 0);

	route(&f, "viamx.example", &g);
	cr_assert_eq(g.res.status, ROUTE_OK, "%s", g.res.why);
	expect_hop(&g.res, 0, "192.0.2.42", 587, "in.example.org", 10);
	cr_assert_str_eq(g.res.dest, "mxhost.example.org:587");
	cr_assert_eq(dnsr_queries(f.z, "viamx.example", 0, 0, -1), 0);
	rfx_fini(&f);
}

Test(route, static_priorities)
{
	struct rfx f;
	struct rgot g;
	char err[200];
	unsigned firsts[2] = { 0 };

	rfx_init(&f);
	rfx_start(&f);
	cr_assert_eq(route_set(f.rt, "pri.example", "20 [192.0.2.2], 10 [192.0.2.1]:26, 30 [192.0.2.3]",
			       err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(route_set(f.rt, "listed.example", "[192.0.2.7], [192.0.2.6]", err, sizeof(err)), 0);
	route(&f, "pri.example", &g);
	cr_assert_eq(g.res.n, 3);
	cr_assert_str_eq(g.res.dest, "20 [192.0.2.2]:25, 10 [192.0.2.1]:26, 30 [192.0.2.3]:25",
			 "the key keeps the order written, not the order tried");
	expect_hop(&g.res, 0, "192.0.2.1", 26, "192.0.2.1", 10);
	expect_hop(&g.res, 1, "192.0.2.2", 25, "192.0.2.2", 20);
	expect_hop(&g.res, 2, "192.0.2.3", 25, "192.0.2.3", 30);
	route(&f, "listed.example", &g);
	cr_assert_str_eq(hop_ip(&g.res.hop[0]), "192.0.2.7", "without priorities: as written");
	cr_assert_str_eq(hop_ip(&g.res.hop[1]), "192.0.2.6");
	/* equal priorities: shuffled */
	cr_assert_eq(route_set(f.rt, "eq.example", "5 [192.0.2.8], 5 [192.0.2.9]", err, sizeof(err)), 0);
	for (int i = 0; i < 40; i++) {
		route(&f, "eq.example", &g);
		firsts[g.res.hop[0].addr[3] - 8]++;
	}
	cr_assert_gt(firsts[0], 5);
	cr_assert_gt(firsts[1], 5);
	rfx_fini(&f);
}

Test(route, wildcards_and_the_most_specific_route)
{
	struct rfx f;
	struct rgot g;
	char err[200];

	rfx_init(&f);
	dnsr_rr(f.z, "example.com", DNSR_MX, 300, "10 mx.example.com");
	dnsr_rr(f.z, "mx.example.com", DNSR_A, 300, "192.0.2.100");
	rfx_start(&f);
	cr_assert_eq(route_set(f.rt, ".example.com", "[192.0.2.1]", err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(route_set(f.rt, ".b.example.com", "[192.0.2.2]", err, sizeof(err)), 0);
	cr_assert_eq(route_set(f.rt, "exact.example.com", "[192.0.2.3]", err, sizeof(err)), 0);
	route(&f, "sub.example.com", &g);
	cr_assert_str_eq(hop_ip(&g.res.hop[0]), "192.0.2.1");
	route(&f, "x.y.example.com", &g);
	cr_assert_str_eq(hop_ip(&g.res.hop[0]), "192.0.2.1");
	route(&f, "a.b.example.com", &g);
	cr_assert_str_eq(hop_ip(&g.res.hop[0]), "192.0.2.2", "the closer parent wins");
	route(&f, "b.example.com", &g);
	cr_assert_str_eq(hop_ip(&g.res.hop[0]), "192.0.2.1", ".b.example.com is for below b");
	route(&f, "EXACT.example.com.", &g);
	cr_assert_str_eq(hop_ip(&g.res.hop[0]), "192.0.2.3", "the domain itself wins");
	route(&f, "Example.COM.", &g);
	cr_assert_str_eq(hop_ip(&g.res.hop[0]), "192.0.2.100", ".example.com is not example.com");
	cr_assert_str_eq(g.res.dest, "example.com", "an MX route's destination: the domain");
	route(&f, "notexample.com", &g);
	expect_fail(&g.res, ROUTE_PERM, "5.1.2");
	rfx_fini(&f);
}

Test(route, relayhost_discard_hold_and_tls)
{
	struct rfx f;
	struct rgot g;
	char err[200];

	rfx_init(&f);
	snprintf(f.rc.relayhost, sizeof(f.rc.relayhost), "[smart.example]:587 tls=encrypt");
	dnsr_rr(f.z, "smart.example", DNSR_A, 300, "192.0.2.25");
	rfx_start(&f);
	route(&f, "anywhere.example", &g);
	cr_assert_eq(g.res.status, ROUTE_OK, "%s", g.res.why);
	expect_hop(&g.res, 0, "192.0.2.25", 587, "smart.example", 0);
	cr_assert_eq(g.res.hop[0].tls, ROUTE_TLS_ENCRYPT);
	cr_assert_str_eq(g.res.dest, "[smart.example]:587 tls=encrypt");
	route(&f, "elsewhere.example", &g);
	cr_assert_str_eq(g.res.dest, "[smart.example]:587 tls=encrypt",
			 "every domain sent to the relayhost shares one destination");
	cr_assert_eq(dnsr_queries(f.z, "anywhere.example", 0, 0, -1), 0);
	cr_assert_eq(route_set(f.rt, "direct.example", "[192.0.2.26] tls=verify", err, sizeof(err)), 0);
	cr_assert_eq(route_set(f.rt, "plain.example", "[192.0.2.27] tls=none", err, sizeof(err)), 0);
	cr_assert_eq(route_set(f.rt, "spam.example", "discard", err, sizeof(err)), 0);
	cr_assert_eq(route_set(f.rt, ".slow.example", " hold ", err, sizeof(err)), 0);
	route(&f, "direct.example", &g);
	cr_assert_eq(g.res.hop[0].tls, ROUTE_TLS_VERIFY);
	route(&f, "plain.example", &g);
	cr_assert_eq(g.res.hop[0].tls, ROUTE_TLS_NONE);
	cr_assert_eq(route(&f, "spam.example", &g), 1);
	cr_assert_eq(g.res.status, ROUTE_DISCARD);
	cr_assert_eq(route(&f, "a.slow.example", &g), 1);
	cr_assert_eq(g.res.status, ROUTE_HOLD);
	rfx_fini(&f);
}

Test(route, runtime_set_and_clear)
{
	struct rfx f;
	struct rgot g;
	char err[200];

	rfx_init(&f);
	dnsr_rr(f.z, "rt.example", DNSR_MX, 300, "10 mx.rt.example");
	dnsr_rr(f.z, "mx.rt.example", DNSR_A, 300, "192.0.2.50");
	rfx_start(&f);
	route(&f, "rt.example", &g);
	cr_assert_str_eq(hop_ip(&g.res.hop[0]), "192.0.2.50");
	cr_assert_eq(route_set(f.rt, "RT.example.", "[192.0.2.51]", err, sizeof(err)), 0);
	route(&f, "rt.example", &g);
	cr_assert_str_eq(hop_ip(&g.res.hop[0]), "192.0.2.51");
	cr_assert_eq(route_set(f.rt, "rt.example", "[192.0.2.52]", err, sizeof(err)), 0, "replaced");
	route(&f, "rt.example", &g);
	cr_assert_str_eq(hop_ip(&g.res.hop[0]), "192.0.2.52");
	struct route_stats s;
	route_stats_get(f.rt, &s);
	cr_assert_eq(s.routes, 1);
	cr_assert_eq(route_clear(f.rt, "rt.example"), 0);
	cr_assert_eq(route_clear(f.rt, "rt.example"), -ENOENT);
	route(&f, "rt.example", &g);
	cr_assert_str_eq(hop_ip(&g.res.hop[0]), "192.0.2.50", "back to MX");
	cr_assert_eq(route_set(f.rt, "bad domain", "[192.0.2.1]", err, sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "not a domain"), "%s", err);
	cr_assert_eq(route_set(f.rt, "ok.example", "[192.0.2.1", err, sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "no closing ]"), "%s", err);
	rfx_fini(&f);
}

Test(route, static_routes_that_cannot_resolve_defer)
{
	struct rfx f;
	struct rgot g;
	char err[200];

	rfx_init(&f);
	dnsr_rr(f.z, "nomail.example", DNSR_MX, 300, "0 .");
	dnsr_rr(f.z, "x.example", DNSR_SOA, 300, "ns.x h.x 1 2 3 4 60");
	rfx_start(&f);
	cr_assert_eq(route_set(f.rt, "a.example", "[gone.x.example]", err, sizeof(err)), 0);
	cr_assert_eq(route_set(f.rt, "b.example", "nomail.example", err, sizeof(err)), 0);
	cr_assert_eq(route_set(f.rt, "c.example", "gone.x.example", err, sizeof(err)), 0);
	cr_assert_eq(route_set(f.rt, "d.example", "[" SELF "]", err, sizeof(err)), 0);
	route(&f, "a.example", &g);
	expect_fail(&g.res, ROUTE_TEMP, "4.4.4");
	route(&f, "b.example", &g);
	expect_fail(&g.res, ROUTE_TEMP, "4.4.4");
	route(&f, "c.example", &g);
	expect_fail(&g.res, ROUTE_TEMP, "4.4.4");
	route(&f, "d.example", &g);
	expect_fail(&g.res, ROUTE_TEMP, "4.4.6");
	rfx_fini(&f);
}

Test(route, spec_syntax)
{
	struct route_spec s;
	char err[200];
	static const struct {
		const char *spec, *needle;
	} bad[] = {
		{ "", "empty route" },
		{ "[192.0.2.1", "no closing ]" },
		{ "[192.0.2.1]x", "expected :port" },
		{ "[192.0.2.1]:0", "not a port" },
		{ "[192.0.2.1]:65536", "not a port" },
		{ "host.example:smtp", "not a port" },
		{ "bad_host.example", "not a host name" },
		{ "[0.0.0.0]", "not a usable address" },
		{ "[192.0.2.1], ", "empty next hop" },
		{ ", [192.0.2.1]", "empty next hop" },
		{ "10 [192.0.2.1], [192.0.2.2]", "every next hop a priority or none" },
		{ "x10 [192.0.2.1]", "not a priority" },
		{ "70000 [192.0.2.1]", "not a priority" },
		{ "[192.0.2.1] tls=always", "tls=none, may, encrypt or verify" },
		{ "tls=may", "no next hop before tls=" },
		{ "[a.example], [b.example], [c.example], [d.example], [e.example]", "more than 4" },
		{ "discard now", "not a priority" },
	};

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		cr_assert_eq(route_spec_parse(bad[i].spec, &s, err, sizeof(err)), -1, "'%s' accepted",
			     bad[i].spec);
		cr_assert_not_null(strstr(err, bad[i].needle), "'%s': '%s' lacks '%s'", bad[i].spec,
				   err, bad[i].needle);
	}
	cr_assert_eq(route_spec_parse(" 10 [Relay.Example.]:2525 , 20 backup.example tls=verify ", &s,
				      err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(s.kind, ROUTE_K_HOPS);
	cr_assert_eq(s.n, 2);
	cr_assert_str_eq(s.t[0].host, "relay.example");
	cr_assert(!s.t[0].mx);
	cr_assert_eq(s.t[0].port, 2525);
	cr_assert_eq(s.t[0].pri, 10);
	cr_assert(s.t[1].mx);
	cr_assert_eq(s.t[1].port, 0);
	cr_assert(s.tls_given);
	cr_assert_eq(s.tls, ROUTE_TLS_VERIFY);
	cr_assert_eq(route_spec_parse("192.0.2.5:26", &s, err, sizeof(err)), 0);
	cr_assert_eq(s.t[0].addr, inet_addr("192.0.2.5"));
	cr_assert(!s.t[0].mx);
}

Test(route, routes_file_text)
{
	struct rfx f;
	struct rgot g;
	char err[200];
	const char *text =
		"# static routes\n"
		"\n"
		"example.com    [192.0.2.1]:2525\n"
		"  .example.net  10 [192.0.2.2], 20 [192.0.2.3] tls=verify   \n"
		"spam.example\tdiscard\r\n";

	rfx_init(&f);
	rfx_start(&f);
	cr_assert_eq(route_load(f.rt, text, "routes", err, sizeof(err)), 3, "%s", err);
	route(&f, "example.com", &g);
	expect_hop(&g.res, 0, "192.0.2.1", 2525, "192.0.2.1", 0);
	route(&f, "a.example.net", &g);
	cr_assert_eq(g.res.n, 2);
	cr_assert_eq(g.res.hop[1].tls, ROUTE_TLS_VERIFY);
	route(&f, "spam.example", &g);
	cr_assert_eq(g.res.status, ROUTE_DISCARD);
	/* an error names its line and changes nothing */
	cr_assert_eq(route_load(f.rt, "new.example [192.0.2.9]\nbroken.example\n", "routes", err,
				sizeof(err)), -1);
	cr_assert_str_eq(err, "routes:2: broken.example: no route after the domain");
	cr_assert_eq(route_load(f.rt, "ok.example [192.0.2.9]\nb@d.example [192.0.2.9]\n", "r", err,
				sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "r:2: 'b@d.example' is not a domain"), "%s", err);
	route(&f, "new.example", &g);
	cr_assert_neq(g.res.status, ROUTE_OK, "a route from the refused file was set");
	rfx_fini(&f);
}

Test(route, bounds)
{
	struct rfx f;
	struct rgot g[3] = { 0 };
	char err[200];

	rfx_init(&f);
	f.rc.max_jobs = 2;
	f.rc.max_routes = 2;
	dnsr_set_mode(f.z, 0, DNSR_SILENT);
	rfx_start(&f);
	cr_assert_eq(route_lookup(f.rt, "a.example", rgot_cb, &g[0]), 0);
	cr_assert_eq(route_lookup(f.rt, "b.example", rgot_cb, &g[1]), 0);
	cr_assert_eq(route_lookup(f.rt, "c.example", rgot_cb, &g[2]), -ENOBUFS);
	cr_assert_eq(route_lookup(f.rt, "bad..example", rgot_cb, &g[2]), -EINVAL);
	cr_assert_eq(route_lookup(f.rt, ".example", rgot_cb, &g[2]), -EINVAL);
	cr_assert_eq(route_set(f.rt, "r1.example", "hold", err, sizeof(err)), 0);
	cr_assert_eq(route_set(f.rt, "r2.example", "hold", err, sizeof(err)), 0);
	cr_assert_eq(route_set(f.rt, "r3.example", "hold", err, sizeof(err)), -ENOSPC);
	cr_assert_not_null(strstr(err, "more than 2 routes"), "%s", err);
	/* destroyed with lookups in flight: no callback, ever */
	router_destroy(f.rt);
	f.rt = NULL;
	f.now += dns_query_budget_ms(&f.dc, 1) + 1;
	dns_poll(f.d, f.now);
	cr_assert_eq(g[0].calls + g[1].calls, 0);
	struct dns_stats ds;
	dns_stats_get(f.d, &ds);
	cr_assert_eq(ds.cancelled, 2);
	rfx_fini(&f);
}

/* The hop list is bounded across all targets. */
Test(route, at_most_route_hops_max)
{
	struct rfx f;
	struct rgot g;
	char err[200];

	rfx_init(&f);
	f.rc.mx_address_limit = 16;
	for (int i = 0; i < 16; i++) {
		char a[32];
		snprintf(a, sizeof(a), "192.0.2.%d", i + 1);
		dnsr_rr(f.z, "many.example", DNSR_A, 300, a);
		snprintf(a, sizeof(a), "198.51.100.%d", i + 1);
		dnsr_rr(f.z, "more.example", DNSR_A, 300, a);
	}
	rfx_start(&f);
	cr_assert_eq(route_set(f.rt, "x.example", "1 [many.example], 2 [more.example]", err, sizeof(err)), 0);
	route(&f, "x.example", &g);
	cr_assert_eq(g.res.n, ROUTE_HOPS_MAX);
	for (unsigned i = 0; i < g.res.n; i++)
		cr_assert_str_eq(g.res.hop[i].mx, "many.example");
	rfx_fini(&f);
}

/* A reload: the relayhost and the file's static routes become the new
 * file's; routes set at runtime stay (over the file's); a file with a bad
 * line changes nothing. */
Test(route, replace_is_all_or_nothing)
{
	struct rfx f;
	struct rgot g;
	struct route_stats s;
	char err[200];

	rfx_init(&f);
	dnsr_rr(f.z, "mx.example", DNSR_MX, 300, "10 mx1.mx.example");
	dnsr_rr(f.z, "mx1.mx.example", DNSR_A, 300, "192.0.2.60");
	rfx_start(&f);
	cr_assert_eq(route_load(f.rt, "a.example [192.0.2.61]\n", "old", err, sizeof(err)), 1, "%s",
		     err);
	cr_assert_eq(route_set(f.rt, "set.example", "[192.0.2.62]", err, sizeof(err)), 0);

	/* a bad line: nothing changes */
	cr_assert_eq(route_replace(f.rt, "", "b.example [192.0.2.63]\nc.example [192.0.2.1\n",
				   "new", err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "new:2:"), "%s", err);
	route(&f, "a.example", &g);
	cr_assert_str_eq(hop_ip(&g.res.hop[0]), "192.0.2.61");
	route(&f, "set.example", &g);
	cr_assert_str_eq(hop_ip(&g.res.hop[0]), "192.0.2.62");
	cr_assert_eq(route_replace(f.rt, "[bad", NULL, "new", err, sizeof(err)), -1);
	route(&f, "a.example", &g);
	cr_assert_str_eq(hop_ip(&g.res.hop[0]), "192.0.2.61", "a bad relayhost changes nothing");

	/* a good file: its routes only, and the new relayhost */
	cr_assert_eq(route_replace(f.rt, "[192.0.2.70]:2525", "b.example [192.0.2.63]\n", "new", err,
				   sizeof(err)), 1, "%s", err);
	route(&f, "b.example", &g);
	cr_assert_str_eq(hop_ip(&g.res.hop[0]), "192.0.2.63");
	route(&f, "a.example", &g);
	cr_assert_str_eq(hop_ip(&g.res.hop[0]), "192.0.2.70", "a.example's route is gone");
	cr_assert_eq(g.res.hop[0].port, 2525);
	route(&f, "set.example", &g);
	cr_assert_str_eq(hop_ip(&g.res.hop[0]), "192.0.2.62", "the one set at runtime stays");
	route_stats_get(f.rt, &s);
	cr_assert_eq(s.routes, 2, "the file's and the runtime one: %llu",
		     (unsigned long long)s.routes);
	/* a runtime route wins over the file's for its domain, reload after reload */
	cr_assert_eq(route_set(f.rt, "b.example", "[192.0.2.64]", err, sizeof(err)), 0);
	cr_assert_eq(route_replace(f.rt, "[192.0.2.70]:2525", "b.example [192.0.2.63]\n", "new",
				   err, sizeof(err)), 1, "%s", err);
	route(&f, "b.example", &g);
	cr_assert_str_eq(hop_ip(&g.res.hop[0]), "192.0.2.64", "runtime over the file");
	/* the runtime one cleared: the file's is back at once */
	cr_assert_eq(route_clear(f.rt, "b.example"), 0);
	route(&f, "b.example", &g);
	cr_assert_str_eq(hop_ip(&g.res.hop[0]), "192.0.2.63", "the file's, beneath it");
	/* a file's route cleared at runtime comes back with the next reload */
	cr_assert_eq(route_clear(f.rt, "b.example"), 0);
	route(&f, "b.example", &g);
	cr_assert_str_eq(hop_ip(&g.res.hop[0]), "192.0.2.70", "cleared: the relayhost");
	cr_assert_eq(route_clear(f.rt, "set.example"), 0);
	cr_assert_eq(route_replace(f.rt, "[192.0.2.70]:2525", "b.example [192.0.2.63]\n", "new",
				   err, sizeof(err)), 1, "%s", err);
	route(&f, "b.example", &g);
	cr_assert_str_eq(hop_ip(&g.res.hop[0]), "192.0.2.63");
	route(&f, "set.example", &g);
	cr_assert_str_eq(hop_ip(&g.res.hop[0]), "192.0.2.70", "a cleared runtime route is gone");
	route_stats_get(f.rt, &s);
	cr_assert_eq(s.routes, 1);

	/* no relayhost, no file: MX again */
	cr_assert_eq(route_replace(f.rt, "", NULL, "none", err, sizeof(err)), 0, "%s", err);
	route(&f, "mx.example", &g);
	cr_assert_str_eq(hop_ip(&g.res.hop[0]), "192.0.2.60");
	rfx_fini(&f);
}

/* ---- address families ---- */

/* Hop i's address as text, either family. */
static const char *hop_any(const struct route_hop *h)
{
	static char buf[4][INET6_ADDRSTRLEN];
	static int k;
	k = (k + 1) % 4;
	cr_assert(h->family == AF_INET || h->family == AF_INET6);
	inet_ntop(h->family, h->addr, buf[k], sizeof(buf[k]));
	return buf[k];
}

static void soa(struct dnsr *z, const char *zone, uint32_t ttl, uint32_t minimum)
{
	char rd[300];
	snprintf(rd, sizeof(rd), "ns.%s hostmaster.%s 1 3600 600 86400 %u", zone, zone, minimum);
	dnsr_rr(z, zone, DNSR_SOA, ttl, rd);
}

/* Two MX hosts of one preference with A and AAAA each, a backup with
 * both; dual.example's host has both; v6only.example's only AAAA. */
static void dual_zone(struct rfx *f)
{
	soa(f->z, "example", 3600, 300);
	dnsr_rr(f->z, "dual.example", DNSR_MX, 300, "10 mx1.dual.example");
	dnsr_rr(f->z, "dual.example", DNSR_MX, 300, "10 mx2.dual.example");
	dnsr_rr(f->z, "dual.example", DNSR_MX, 300, "20 backup.dual.example");
	dnsr_rr(f->z, "mx1.dual.example", DNSR_A, 300, "192.0.2.1");
	dnsr_rr(f->z, "mx1.dual.example", DNSR_AAAA, 300, "2001:db8::1");
	dnsr_rr(f->z, "mx2.dual.example", DNSR_A, 300, "192.0.2.2");
	dnsr_rr(f->z, "mx2.dual.example", DNSR_AAAA, 300, "2001:db8::2");
	dnsr_rr(f->z, "backup.dual.example", DNSR_A, 300, "192.0.2.9");
	dnsr_rr(f->z, "backup.dual.example", DNSR_AAAA, 300, "2001:db8::9");
	dnsr_rr(f->z, "v6only.example", DNSR_MX, 300, "10 mx.v6only.example");
	dnsr_rr(f->z, "mx.v6only.example", DNSR_AAAA, 300, "2001:db8:6::25");
}

/* The default (IPv4 only, as before): no AAAA query at all. */
Test(route, ipv4_only_never_asks_aaaa)
{
	struct rfx f;
	struct rgot g;

	rfx_init(&f);
	dual_zone(&f);
	rfx_start(&f);
	route(&f, "dual.example", &g);
	cr_assert_eq(g.res.status, ROUTE_OK, "%s", g.res.why);
	cr_assert_eq(g.res.n, 3);
	for (unsigned i = 0; i < g.res.n; i++)
		cr_assert_eq(g.res.hop[i].family, AF_INET);
	cr_assert_eq(dnsr_queries(f.z, "mx1.dual.example", DNSR_AAAA, 0, -1), 0);
	route(&f, "v6only.example", &g);
	expect_fail(&g.res, ROUTE_PERM, "5.4.4");
	rfx_fini(&f);
}

/* prefer ipv6: within each preference the IPv6 addresses first, then the
 * IPv4 ones (the fallback), the backup MX's after both; prefer ipv4 the
 * other way round; an IPv6-only domain routes. */
Test(route, preferred_family_first_within_each_preference)
{
	struct rfx f;
	struct rgot g;

	rfx_init(&f);
	dual_zone(&f);
	f.rc.family = ROUTE_AF_ANY;
	f.rc.prefer = ROUTE_AF_IPV6;
	f.rc.mx_address_limit = 10;
	rfx_start(&f);
	route(&f, "dual.example", &g);
	cr_assert_eq(g.res.status, ROUTE_OK, "%s", g.res.why);
	cr_assert_eq(g.res.n, 6);
	for (unsigned i = 0; i < 2; i++) {
		cr_assert_eq(g.res.hop[i].family, AF_INET6, "hop %u", i);
		cr_assert_eq(g.res.hop[i].pref, 10);
	}
	for (unsigned i = 2; i < 4; i++) {
		cr_assert_eq(g.res.hop[i].family, AF_INET, "hop %u", i);
		cr_assert_eq(g.res.hop[i].pref, 10);
	}
	cr_assert_str_eq(hop_any(&g.res.hop[4]), "2001:db8::9");
	cr_assert_str_eq(hop_any(&g.res.hop[5]), "192.0.2.9");
	cr_assert_str_eq(g.res.hop[4].mx, "backup.dual.example");
	cr_assert_eq(dnsr_queries(f.z, "mx1.dual.example", DNSR_AAAA, 0, -1), 1);
	route(&f, "v6only.example", &g);
	cr_assert_eq(g.res.status, ROUTE_OK, "%s", g.res.why);
	cr_assert_eq(g.res.n, 1);
	cr_assert_str_eq(hop_any(&g.res.hop[0]), "2001:db8:6::25");
	cr_assert_str_eq(g.res.hop[0].mx, "mx.v6only.example");
	router_destroy(f.rt);

	f.rc.prefer = ROUTE_AF_IPV4;
	f.rt = router_create(&f.rc, f.d, f.seed);
	route(&f, "dual.example", &g);
	cr_assert_eq(g.res.n, 6);
	cr_assert_eq(g.res.hop[0].family, AF_INET);
	cr_assert_eq(g.res.hop[1].family, AF_INET);
	cr_assert_eq(g.res.hop[2].family, AF_INET6);
	cr_assert_eq(g.res.hop[3].family, AF_INET6);
	cr_assert_str_eq(hop_any(&g.res.hop[4]), "192.0.2.9");
	router_destroy(f.rt);

	/* ipv6 only: no A query, IPv6 hops only. */
	f.rc.family = ROUTE_AF_IPV6;
	f.rc.prefer = ROUTE_AF_ANY;
	f.rt = router_create(&f.rc, f.d, f.seed);
	route(&f, "dual.example", &g);
	cr_assert_eq(g.res.n, 3);
	for (unsigned i = 0; i < 3; i++)
		cr_assert_eq(g.res.hop[i].family, AF_INET6, "hop %u", i);
	rfx_fini(&f);
}

/* The address limit keeps the preferred family when a host has many. */
Test(route, address_limit_keeps_the_preferred_family)
{
	struct rfx f;
	struct rgot g;
	char a[32];

	rfx_init(&f);
	dnsr_rr(f.z, "many.example", DNSR_MX, 300, "10 mx.many.example");
	for (int i = 1; i <= 5; i++) {
		snprintf(a, sizeof(a), "192.0.2.%d", i);
		dnsr_rr(f.z, "mx.many.example", DNSR_A, 300, a);
	}
	dnsr_rr(f.z, "mx.many.example", DNSR_AAAA, 300, "2001:db8::77");
	f.rc.family = ROUTE_AF_ANY;
	f.rc.prefer = ROUTE_AF_IPV6;
	f.rc.mx_address_limit = 3;
	rfx_start(&f);
	route(&f, "many.example", &g);
	cr_assert_eq(g.res.n, 3);
	cr_assert_str_eq(hop_any(&g.res.hop[0]), "2001:db8::77");
	cr_assert_eq(g.res.hop[1].family, AF_INET);
	rfx_fini(&f);
}

/* An AAAA lookup that fails while the A answer has addresses: the IPv4
 * hops still go; with no address at all the failure is temporary. */
Test(route, aaaa_failure_is_temporary_only_without_addresses)
{
	struct rfx f;
	struct rgot g;

	rfx_init(&f);
	dnsr_rr(f.z, "half.example", DNSR_MX, 300, "10 mx.half.example");
	dnsr_rr(f.z, "mx.half.example", DNSR_A, 300, "192.0.2.40");
	dnsr_rcode(f.z, "mx.half.example", DNSR_AAAA, DNSR_SERVFAIL);
	dnsr_rr(f.z, "none.example", DNSR_MX, 300, "10 mx.none.example");
	dnsr_rcode(f.z, "mx.none.example", DNSR_AAAA, DNSR_SERVFAIL);
	soa(f.z, "none.example", 3600, 300);
	f.rc.family = ROUTE_AF_ANY;
	rfx_start(&f);
	route(&f, "half.example", &g);
	cr_assert_eq(g.res.status, ROUTE_OK, "%s", g.res.why);
	cr_assert_eq(g.res.n, 1);
	cr_assert_str_eq(hop_any(&g.res.hop[0]), "192.0.2.40");
	route(&f, "none.example", &g);
	expect_fail(&g.res, ROUTE_TEMP, "4.4.3");
	rfx_fini(&f);
}

/* IPv6 literals in static routes; one of our own is a loop; a literal of
 * a family not in use gives no hop. */
Test(route, ipv6_literals_in_static_routes)
{
	struct rfx f;
	struct rgot g;
	struct route_spec sp;
	char err[200];

	rfx_init(&f);
	f.rc.family = ROUTE_AF_ANY;
	f.rc.self6_ok = true;
	inet_pton(AF_INET6, "fd00::2", f.rc.self6);
	rfx_start(&f);
	cr_assert_eq(route_spec_parse("[2001:DB8::0:25]:2525", &sp, err, sizeof(err)), 0, "%s", err);
	cr_assert(sp.t[0].v6);
	cr_assert_str_eq(sp.t[0].host, "2001:db8::25", "one spelling");
	cr_assert_eq(sp.t[0].port, 2525);
	cr_assert_eq(route_spec_parse("[IPv6:2001:db8::26]", &sp, err, sizeof(err)), 0, "%s", err);
	cr_assert(sp.t[0].v6);
	cr_assert_eq(route_spec_parse("[ff02::1]", &sp, err, sizeof(err)), -1);
	cr_assert_eq(route_spec_parse("[2001:db8::zz]", &sp, err, sizeof(err)), -1);
	cr_assert_eq(route_set(f.rt, "six.example", "[2001:db8::25]:2525, [192.0.2.7]", err,
			       sizeof(err)), 0, "%s", err);
	cr_assert_eq(route(&f, "six.example", &g), 1, "literals: answered at once");
	cr_assert_eq(g.res.n, 2);
	cr_assert_str_eq(hop_any(&g.res.hop[0]), "2001:db8::25");
	cr_assert_eq(g.res.hop[0].family, AF_INET6);
	cr_assert_eq(g.res.hop[0].port, 2525);
	cr_assert_str_eq(g.res.dest, "[2001:db8::25]:2525, [192.0.2.7]:25");
	cr_assert_eq(route_set(f.rt, "me.example", "[fd00::2]", err, sizeof(err)), 0, "%s", err);
	route(&f, "me.example", &g);
	expect_fail(&g.res, ROUTE_TEMP, "4.4.6");
	router_destroy(f.rt);
	f.rc.family = ROUTE_AF_IPV4;
	f.rt = router_create(&f.rc, f.d, f.seed);
	cr_assert_eq(route_set(f.rt, "six.example", "[2001:db8::25]", err, sizeof(err)), 0);
	route(&f, "six.example", &g);
	expect_fail(&g.res, ROUTE_TEMP, "4.4.4");
	rfx_fini(&f);
}
