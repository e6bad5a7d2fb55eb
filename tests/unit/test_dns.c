/*
 * test_dns.c - the resolver (control/dns.c): c-ares 1.18 for real, its
 * sockets answered by an in-process DNS server (tests/support/dns_responder)
 * from canned zones. Answers of every shape (MX sets, no MX, null MX,
 * NXDOMAIN, SERVFAIL, truncated then TCP, CNAME chains, TTL 0), the cache
 * on an injected clock (TTLs, clamping, negative caching per RFC 2308,
 * LRU bounds on entries and bytes), coalescing, the bounds on waiters and
 * queries, deadlines, server failover, and the rule that an answer is
 * never handed out from inside dns_lookup.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "common/clock.h"
#include "control/dns.h"
#include "control/dns_sock.h"
#include "tests/support/dns_responder.h"

struct got {
	unsigned calls;
	struct dns_result res;
};

static void got_cb(void *user, const struct dns_result *r)
{
	struct got *g = user;
	g->calls++;
	g->res = *r;
}

struct fx {
	struct dnsr *z;
	struct dns_resolver *r;
	struct dns_conf c;
	uint64_t now;
	bool own_servers;	/* else one answering server at NS1 */
};

#define NS1 "192.0.2.53"
#define NS2 "192.0.2.54"

static void fx_init(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	f->z = dnsr_create();
	dns_conf_default(&f->c);
	snprintf(f->c.servers, sizeof(f->c.servers), "%s", NS1);
	f->now = 1000000;
}

static void fx_start(struct fx *f)
{
	if (!f->own_servers)
		dnsr_server(f->z, NS1, DNSR_ANSWER);
	f->r = dns_create_ops(&f->c, dnsr_ops(f->z), f->now);
	cr_assert_not_null(f->r, "resolver refused its configuration");
}

static void fx_fini(struct fx *f)
{
	dns_destroy(f->r);
	cr_assert_eq(dnsr_sockets_open(f->z), 0, "the resolver left sockets open");
	dnsr_destroy(f->z);
}

/* Poll until g has its answer (the responder answers at once: a few polls). */
static void settle(struct fx *f, struct got *g)
{
	for (int i = 0; i < 20 && g->calls == 0; i++)
		dns_poll(f->r, f->now);
}

/* A lookup that must go to the servers (returns 0) and then be answered. */
static void ask(struct fx *f, const char *name, enum dns_type t, struct got *g)
{
	memset(g, 0, sizeof(*g));
	cr_assert_eq(dns_lookup(f->r, name, t, got_cb, g), 0, "%s: expected a query", name);
	cr_assert_eq(g->calls, 0, "%s: answered from inside dns_lookup", name);
	settle(f, g);
	cr_assert_eq(g->calls, 1, "%s: no answer", name);
}

/* A lookup that must be answered from the cache (returns 1, cb already called). */
static void cached(struct fx *f, const char *name, enum dns_type t, struct got *g)
{
	memset(g, 0, sizeof(*g));
	cr_assert_eq(dns_lookup(f->r, name, t, got_cb, g), 1, "%s: expected a cache hit", name);
	cr_assert_eq(g->calls, 1);
}

static void soa(struct dnsr *z, const char *zone, uint32_t ttl, uint32_t minimum)
{
	char rd[300];
	snprintf(rd, sizeof(rd), "ns.%s hostmaster.%s 1 3600 600 86400 %u", zone, zone, minimum);
	dnsr_rr(z, zone, DNSR_SOA, ttl, rd);
}

static rte_be32_t ip(const char *s)
{
	return inet_addr(s);
}

static struct dns_stats stats(struct fx *f)
{
	struct dns_stats s;
	dns_stats_get(f->r, &s);
	return s;
}

Test(dns, mx_sets_in_answer_order_with_their_preferences)
{
	struct fx f;
	struct got g;

	fx_init(&f);
	soa(f.z, "example.com", 3600, 300);
	dnsr_rr(f.z, "example.com", DNSR_MX, 300, "20 b.mx.example.com");
	dnsr_rr(f.z, "example.com", DNSR_MX, 200, "10 a.mx.example.com");
	dnsr_rr(f.z, "example.com", DNSR_MX, 300, "10 c.mx.example.com");
	dnsr_rr(f.z, "example.com", DNSR_MX, 300, "30 d.mx.example.com");
	fx_start(&f);
	ask(&f, "Example.COM.", DNS_T_MX, &g);
	cr_assert_eq(g.res.status, DNS_OK, "%s", g.res.why);
	cr_assert_eq(g.res.n, 4);
	cr_assert_eq(g.res.mx[0].pref, 20);
	cr_assert_str_eq(g.res.mx[0].host, "b.mx.example.com");
	cr_assert_eq(g.res.mx[1].pref, 10);
	cr_assert_str_eq(g.res.mx[1].host, "a.mx.example.com");
	cr_assert_eq(g.res.mx[2].pref, 10);
	cr_assert_str_eq(g.res.mx[2].host, "c.mx.example.com");
	cr_assert_eq(g.res.mx[3].pref, 30);
	cr_assert_eq(g.res.ttl, 200, "the RRset's TTL is its smallest: %u", g.res.ttl);
	cr_assert_eq(dnsr_queries(f.z, "example.com", DNSR_MX, SOCK_DGRAM, 0), 1);
	/* the same set from the cache, however the name is written */
	cached(&f, "example.com", DNS_T_MX, &g);
	cr_assert_eq(g.res.n, 4);
	cr_assert_str_eq(g.res.mx[3].host, "d.mx.example.com");
	cr_assert_eq(dnsr_queries(f.z, "example.com", 0, 0, -1), 1);
	fx_fini(&f);
}

Test(dns, no_mx_is_nodata_and_cached_per_rfc2308)
{
	struct fx f;
	struct got g;

	fx_init(&f);
	soa(f.z, "example.net", 900, 120);	/* min(SOA TTL 900, MINIMUM 120) = 120 */
	dnsr_rr(f.z, "example.net", DNSR_A, 300, "192.0.2.7");
	fx_start(&f);
	ask(&f, "example.net", DNS_T_MX, &g);
	cr_assert_eq(g.res.status, DNS_NODATA, "%s", dns_status_name(g.res.status));
	cr_assert_eq(g.res.n, 0);
	cr_assert_eq(g.res.ttl, 120);
	cr_assert_not_null(strstr(g.res.why, "example.net/MX"), "%s", g.res.why);
	f.now += 119 * 1000;
	dns_poll(f.r, f.now);
	cached(&f, "example.net", DNS_T_MX, &g);
	cr_assert_eq(g.res.status, DNS_NODATA);
	cr_assert_eq(g.res.ttl, 1);
	f.now += 1000;
	dns_poll(f.r, f.now);
	ask(&f, "example.net", DNS_T_MX, &g);	/* expired: asked again */
	cr_assert_eq(dnsr_queries(f.z, "example.net", DNSR_MX, 0, -1), 2);
	cr_assert_eq(stats(&f).cache_neg_hits, 1);
	fx_fini(&f);
}

Test(dns, null_mx_comes_through_as_an_empty_host)
{
	struct fx f;
	struct got g;

	fx_init(&f);
	dnsr_rr(f.z, "nomail.example", DNSR_MX, 300, "0 .");
	fx_start(&f);
	ask(&f, "nomail.example", DNS_T_MX, &g);
	cr_assert_eq(g.res.status, DNS_OK);
	cr_assert_eq(g.res.n, 1);
	cr_assert_eq(g.res.mx[0].pref, 0);
	cr_assert_str_eq(g.res.mx[0].host, "");
	fx_fini(&f);
}

Test(dns, nxdomain_cached_negatively_with_the_cap)
{
	struct fx f;
	struct got g;

	fx_init(&f);
	f.c.neg_ttl_max = 600;
	soa(f.z, "example.org", 86400, 7200);	/* 7200 capped to 600 */
	fx_start(&f);
	ask(&f, "nosuch.example.org", DNS_T_MX, &g);
	cr_assert_eq(g.res.status, DNS_NXDOMAIN, "%s", dns_status_name(g.res.status));
	cr_assert_eq(g.res.ttl, 600);
	cr_assert_not_null(strstr(g.res.why, "NXDOMAIN"), "%s", g.res.why);
	f.now += 599 * 1000;
	dns_poll(f.r, f.now);
	cached(&f, "nosuch.example.org", DNS_T_MX, &g);
	cr_assert_eq(g.res.status, DNS_NXDOMAIN);
	f.now += 1000;
	dns_poll(f.r, f.now);
	ask(&f, "nosuch.example.org", DNS_T_MX, &g);
	cr_assert_eq(dnsr_queries(f.z, "nosuch.example.org", 0, 0, -1), 2);
	fx_fini(&f);
}

Test(dns, negative_answer_without_soa_is_not_cached)
{
	struct fx f;
	struct got g;

	fx_init(&f);
	fx_start(&f);
	ask(&f, "gone.example", DNS_T_A, &g);
	cr_assert_eq(g.res.status, DNS_NXDOMAIN);
	cr_assert_eq(g.res.ttl, 0);
	ask(&f, "gone.example", DNS_T_A, &g);
	cr_assert_eq(dnsr_queries(f.z, "gone.example", 0, 0, -1), 2);
	fx_fini(&f);
}

Test(dns, servfail_is_temporary_and_never_cached)
{
	struct fx f;
	struct got g;

	fx_init(&f);
	dnsr_rr(f.z, "broken.example", DNSR_MX, 300, "10 mx.broken.example");
	dnsr_rcode(f.z, "broken.example", 0, DNSR_SERVFAIL);
	fx_start(&f);
	ask(&f, "broken.example", DNS_T_MX, &g);
	cr_assert_eq(g.res.status, DNS_TEMPFAIL, "%s", dns_status_name(g.res.status));
	cr_assert_not_null(strstr(g.res.why, "SERVFAIL"), "%s", g.res.why);
	cr_assert_eq(g.res.ttl, 0);
	/* each of the 3 attempts got its SERVFAIL */
	unsigned q = dnsr_queries(f.z, "broken.example", DNSR_MX, 0, -1);
	cr_assert_eq(q, 3, "%u queries", q);
	ask(&f, "broken.example", DNS_T_MX, &g);
	cr_assert_eq(g.res.status, DNS_TEMPFAIL);
	cr_assert_gt(dnsr_queries(f.z, "broken.example", DNSR_MX, 0, -1), q, "SERVFAIL was cached");
	cr_assert_eq(stats(&f).answers_tempfail, 2);
	fx_fini(&f);
}

Test(dns, truncated_answer_is_asked_again_over_tcp)
{
	struct fx f;
	struct got g;

	fx_init(&f);
	dnsr_rr(f.z, "tc.example", DNSR_MX, 300, "10 mx1.tc.example");
	dnsr_rr(f.z, "tc.example", DNSR_MX, 300, "20 mx2.tc.example");
	dnsr_truncate(f.z, "tc.example");
	fx_start(&f);
	ask(&f, "tc.example", DNS_T_MX, &g);
	cr_assert_eq(g.res.status, DNS_OK, "%s", g.res.why);
	cr_assert_eq(g.res.n, 2);
	cr_assert_str_eq(g.res.mx[1].host, "mx2.tc.example");
	cr_assert_eq(dnsr_queries(f.z, "tc.example", DNSR_MX, SOCK_DGRAM, -1), 1);
	cr_assert_eq(dnsr_queries(f.z, "tc.example", DNSR_MX, SOCK_STREAM, -1), 1);
	fx_fini(&f);
}

/* An answer larger than our EDNS0 payload: the server truncates, TCP gets it all. */
Test(dns, answer_larger_than_the_payload_comes_over_tcp)
{
	struct fx f;
	struct got g;
	char host[128];

	fx_init(&f);
	for (int i = 0; i < 16; i++) {
		snprintf(host, sizeof(host), "%d %02d-a-rather-long-mail-exchanger-name-for-padding.big.example",
			 10 + i, i);
		dnsr_rr(f.z, "big.example", DNSR_MX, 300, host);
	}
	fx_start(&f);
	ask(&f, "big.example", DNS_T_MX, &g);
	cr_assert_eq(g.res.status, DNS_OK, "%s", g.res.why);
	cr_assert_eq(g.res.n, 16);
	cr_assert_eq(g.res.mx[15].pref, 25);
	cr_assert_eq(dnsr_queries(f.z, "big.example", DNSR_MX, SOCK_STREAM, -1), 1);
	fx_fini(&f);
}

Test(dns, cname_chain_followed_ttl_is_the_chains_smallest)
{
	struct fx f;
	struct got g;

	fx_init(&f);
	dnsr_rr(f.z, "alias.example", DNSR_CNAME, 600, "mid.example");
	dnsr_rr(f.z, "mid.example", DNSR_CNAME, 30, "real.example");
	dnsr_rr(f.z, "real.example", DNSR_MX, 300, "5 mx.real.example");
	dnsr_rr(f.z, "real.example", DNSR_A, 300, "192.0.2.80");
	fx_start(&f);
	ask(&f, "alias.example", DNS_T_MX, &g);
	cr_assert_eq(g.res.status, DNS_OK, "%s", g.res.why);
	cr_assert_eq(g.res.n, 1);
	cr_assert_str_eq(g.res.mx[0].host, "mx.real.example");
	cr_assert_eq(g.res.ttl, 30);
	ask(&f, "alias.example", DNS_T_A, &g);
	cr_assert_eq(g.res.status, DNS_OK, "%s", g.res.why);
	cr_assert_eq(g.res.a[0], ip("192.0.2.80"));
	cr_assert_eq(g.res.ttl, 30);
	fx_fini(&f);
}

/* AAAA: every address (16 bytes each, in answer order) through the cache
 * and back, its TTL counted down; A and AAAA of one name are kept apart;
 * a name with only A records is NODATA for AAAA. */
Test(dns, aaaa_records_cached_as_16_bytes_each)
{
	struct fx f;
	struct got g;
	uint8_t want[3][16];
	const char *text[3] = { "2001:db8::25", "2001:db8:1::1", "fd00:0:0:ffff::abcd" };

	fx_init(&f);
	soa(f.z, "example", 3600, 120);
	for (int i = 0; i < 3; i++) {
		dnsr_rr(f.z, "mx6.example", DNSR_AAAA, 300, text[i]);
		cr_assert_eq(inet_pton(AF_INET6, text[i], want[i]), 1);
	}
	dnsr_rr(f.z, "mx6.example", DNSR_A, 300, "192.0.2.25");
	dnsr_rr(f.z, "only4.example", DNSR_A, 300, "192.0.2.26");
	fx_start(&f);
	ask(&f, "mx6.example", DNS_T_AAAA, &g);
	cr_assert_eq(g.res.status, DNS_OK, "%s", g.res.why);
	cr_assert_eq(g.res.type, DNS_T_AAAA);
	cr_assert_eq(g.res.n, 3);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(memcmp(g.res.aaaa[i], want[i], 16), 0, "address %d", i);
	cr_assert_eq(g.res.ttl, 300);
	/* From the cache, 100 s later: the same bytes, 200 s left. */
	f.now += 100 * 1000;
	dns_poll(f.r, f.now);
	cached(&f, "mx6.example", DNS_T_AAAA, &g);
	cr_assert_eq(g.res.n, 3);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(memcmp(g.res.aaaa[i], want[i], 16), 0, "cached address %d", i);
	cr_assert_eq(g.res.ttl, 200);
	/* The A record of the same name is its own entry. */
	ask(&f, "mx6.example", DNS_T_A, &g);
	cr_assert_eq(g.res.n, 1);
	cr_assert_eq(g.res.a[0], ip("192.0.2.25"));
	cached(&f, "mx6.example", DNS_T_AAAA, &g);
	cr_assert_eq(g.res.n, 3);
	ask(&f, "only4.example", DNS_T_AAAA, &g);
	cr_assert_eq(g.res.status, DNS_NODATA, "%s", dns_status_name(g.res.status));
	cr_assert_str_eq(dns_type_name(DNS_T_AAAA), "AAAA");
	fx_fini(&f);
}

/* A chain to a name without the type: NODATA, cached from the target zone's SOA. */
Test(dns, cname_chain_to_nothing_is_nodata)
{
	struct fx f;
	struct got g;

	fx_init(&f);
	soa(f.z, "target.example", 3600, 60);
	dnsr_rr(f.z, "alias.example", DNSR_CNAME, 600, "host.target.example");
	dnsr_rr(f.z, "host.target.example", DNSR_A, 300, "192.0.2.81");
	fx_start(&f);
	ask(&f, "alias.example", DNS_T_MX, &g);
	cr_assert_eq(g.res.status, DNS_NODATA, "%s", dns_status_name(g.res.status));
	cr_assert_eq(g.res.ttl, 60);
	fx_fini(&f);
}

Test(dns, ttl_zero_is_not_cached_unless_a_floor_says_so)
{
	struct fx f;
	struct got g;

	fx_init(&f);
	dnsr_rr(f.z, "zero.example", DNSR_A, 0, "192.0.2.9");
	fx_start(&f);
	ask(&f, "zero.example", DNS_T_A, &g);
	cr_assert_eq(g.res.status, DNS_OK);
	cr_assert_eq(g.res.ttl, 0);
	ask(&f, "zero.example", DNS_T_A, &g);	/* asked again */
	cr_assert_eq(dnsr_queries(f.z, "zero.example", 0, 0, -1), 2);
	fx_fini(&f);

	fx_init(&f);
	f.c.ttl_min = 60;
	dnsr_rr(f.z, "zero.example", DNSR_A, 0, "192.0.2.9");
	fx_start(&f);
	ask(&f, "zero.example", DNS_T_A, &g);
	cr_assert_eq(g.res.ttl, 60);
	cached(&f, "zero.example", DNS_T_A, &g);
	cr_assert_eq(g.res.a[0], ip("192.0.2.9"));
	fx_fini(&f);
}

Test(dns, ttl_ceiling_and_the_top_bit)
{
	struct fx f;
	struct got g;

	fx_init(&f);
	f.c.ttl_max = 3600;
	dnsr_rr(f.z, "long.example", DNSR_A, 1000000, "192.0.2.10");
	dnsr_rr(f.z, "neg.example", DNSR_A, 0x80000001u, "192.0.2.11");	/* RFC 2181: 0 */
	fx_start(&f);
	ask(&f, "long.example", DNS_T_A, &g);
	cr_assert_eq(g.res.ttl, 3600);
	ask(&f, "neg.example", DNS_T_A, &g);
	cr_assert_eq(g.res.ttl, 0);
	fx_fini(&f);
}

Test(dns, cache_expires_on_the_injected_clock)
{
	struct fx f;
	struct got g;

	fx_init(&f);
	dnsr_rr(f.z, "clock.example", DNSR_A, 300, "192.0.2.12");
	fx_start(&f);
	ask(&f, "clock.example", DNS_T_A, &g);
	f.now += 100 * 1000;
	dns_poll(f.r, f.now);
	cached(&f, "clock.example", DNS_T_A, &g);
	cr_assert_eq(g.res.ttl, 200, "the TTL left: %u", g.res.ttl);
	f.now += 199999;
	dns_poll(f.r, f.now);
	cached(&f, "clock.example", DNS_T_A, &g);
	cr_assert_eq(g.res.ttl, 1);
	f.now += 1;	/* 300 s exactly */
	dns_poll(f.r, f.now);
	ask(&f, "clock.example", DNS_T_A, &g);
	cr_assert_eq(dnsr_queries(f.z, "clock.example", 0, 0, -1), 2);
	/* and dns_poll's sweep (a few buckets per call) drops expired entries
	 * nobody asks for */
	f.now += 301 * 1000;
	for (int i = 0; i < 1000 && stats(&f).cache_entries; i++)
		dns_poll(f.r, f.now);
	cr_assert_eq(stats(&f).cache_entries, 0);
	cr_assert_eq(stats(&f).cache_bytes, 0);
	fx_fini(&f);
}

Test(dns, one_query_for_a_hundred_lookups)
{
	struct fx f;
	static struct got g[100];

	fx_init(&f);
	dnsr_rr(f.z, "busy.example", DNSR_MX, 300, "10 mx.busy.example");
	fx_start(&f);
	memset(g, 0, sizeof(g));
	for (int i = 0; i < 100; i++) {
		cr_assert_eq(dns_lookup(f.r, "busy.example", DNS_T_MX, got_cb, &g[i]), 0);
		cr_assert_eq(g[i].calls, 0);
	}
	cr_assert_eq(stats(&f).queries_in_flight, 1);
	cr_assert_eq(stats(&f).waiters, 100);
	settle(&f, &g[99]);
	for (int i = 0; i < 100; i++) {
		cr_assert_eq(g[i].calls, 1, "waiter %d: %u calls", i, g[i].calls);
		cr_assert_eq(g[i].res.status, DNS_OK);
		cr_assert_str_eq(g[i].res.mx[0].host, "mx.busy.example");
	}
	cr_assert_eq(dnsr_queries(f.z, "busy.example", 0, 0, -1), 1, "one query on the wire");
	cr_assert_eq(stats(&f).queries, 1);
	cr_assert_eq(stats(&f).coalesced, 99);
	cr_assert_eq(stats(&f).waiters, 0);
	cr_assert_eq(stats(&f).queries_in_flight, 0);
	fx_fini(&f);
}

Test(dns, lru_bound_on_entries)
{
	struct fx f;
	struct got g;
	char name[64];

	fx_init(&f);
	f.c.cache_entries = 3;
	for (int i = 1; i <= 4; i++) {
		snprintf(name, sizeof(name), "h%d.example", i);
		dnsr_rr(f.z, name, DNSR_A, 300, "192.0.2.20");
	}
	fx_start(&f);
	ask(&f, "h1.example", DNS_T_A, &g);
	ask(&f, "h2.example", DNS_T_A, &g);
	ask(&f, "h3.example", DNS_T_A, &g);
	cached(&f, "h1.example", DNS_T_A, &g);	/* h1 used: h2 is now the oldest */
	ask(&f, "h4.example", DNS_T_A, &g);
	cr_assert_eq(stats(&f).cache_entries, 3);
	cr_assert_eq(stats(&f).cache_evictions, 1);
	cached(&f, "h1.example", DNS_T_A, &g);
	cached(&f, "h3.example", DNS_T_A, &g);
	cached(&f, "h4.example", DNS_T_A, &g);
	ask(&f, "h2.example", DNS_T_A, &g);	/* the one evicted */
	fx_fini(&f);
}

Test(dns, lru_bound_on_bytes)
{
	struct fx f;
	struct got g;
	char name[64];
	struct dns_stats s;

	fx_init(&f);
	f.c.cache_bytes = 400;	/* about three small A entries */
	for (int i = 1; i <= 6; i++) {
		snprintf(name, sizeof(name), "b%d.example", i);
		dnsr_rr(f.z, name, DNSR_A, 300, "192.0.2.21");
	}
	dnsr_rr(f.z, "many.example", DNSR_A, 300, "192.0.2.1");
	fx_start(&f);
	for (int i = 1; i <= 6; i++) {
		snprintf(name, sizeof(name), "b%d.example", i);
		ask(&f, name, DNS_T_A, &g);
		s = stats(&f);
		cr_assert_leq(s.cache_bytes, 400, "cache holds %llu bytes", (unsigned long long)s.cache_bytes);
	}
	cr_assert_gt(s.cache_evictions, 0);
	cr_assert_lt(s.cache_entries, 6);
	ask(&f, "b1.example", DNS_T_A, &g);	/* the oldest went */
	fx_fini(&f);

	/* an entry larger than the whole bound is answered but not kept */
	fx_init(&f);
	f.c.cache_bytes = 100;
	dnsr_rr(f.z, "big.example", DNSR_MX, 300, "10 a-long-exchanger-name-number-one.big.example");
	dnsr_rr(f.z, "big.example", DNSR_MX, 300, "20 a-long-exchanger-name-number-two.big.example");
	fx_start(&f);
	ask(&f, "big.example", DNS_T_MX, &g);
	cr_assert_eq(g.res.n, 2);
	cr_assert_eq(stats(&f).cache_too_big, 1);
	cr_assert_eq(stats(&f).cache_entries, 0);
	fx_fini(&f);
}

Test(dns, waiters_and_queries_are_bounded)
{
	struct fx f;
	static struct got g[12], h[4];

	fx_init(&f);
	f.c.max_waiters = 10;
	f.c.max_queries = 2;
	dnsr_rr(f.z, "w.example", DNSR_A, 300, "192.0.2.30");
	dnsr_rr(f.z, "x.example", DNSR_A, 300, "192.0.2.31");
	fx_start(&f);
	memset(g, 0, sizeof(g));
	for (int i = 0; i < 10; i++)
		cr_assert_eq(dns_lookup(f.r, "w.example", DNS_T_A, got_cb, &g[i]), 0);
	cr_assert_eq(dns_lookup(f.r, "w.example", DNS_T_A, got_cb, &g[10]), -ENOBUFS);
	cr_assert_eq(dns_lookup(f.r, "x.example", DNS_T_A, got_cb, &g[10]), -ENOBUFS,
		     "the new query would need an 11th waiter");
	cr_assert_eq(stats(&f).waiters_full, 2);
	settle(&f, &g[9]);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(g[i].calls, 1, "waiter %d", i);
	cr_assert_eq(g[10].calls, 0);
	cr_assert_eq(stats(&f).waiters, 0, "every waiter back in the pool");
	/* two queries at most */
	memset(h, 0, sizeof(h));
	cr_assert_eq(dns_lookup(f.r, "y.example", DNS_T_A, got_cb, &h[0]), 0);
	cr_assert_eq(dns_lookup(f.r, "z.example", DNS_T_A, got_cb, &h[1]), 0);
	cr_assert_eq(dns_lookup(f.r, "v.example", DNS_T_A, got_cb, &h[2]), -EAGAIN);
	cr_assert_eq(dns_lookup(f.r, "z.example", DNS_T_A, got_cb, &h[3]), 0, "joins, no new query");
	cr_assert_eq(stats(&f).queries_full, 1);
	cr_assert_eq(stats(&f).queries_in_flight, 2);
	fx_fini(&f);	/* lookups still in flight: dropped, no leak (LSan) */
}

Test(dns, bad_names_are_refused_without_a_callback)
{
	struct fx f;
	struct got g = { 0 };
	char longname[300];
	static const char *const bad[] = {
		"", ".", "a..b", ".lead.example", "sp ace.example", "semi;colon", "a.b..",
		"0123456789012345678901234567890123456789012345678901234567890123.example",
	};

	fx_init(&f);
	fx_start(&f);
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(dns_lookup(f.r, bad[i], DNS_T_A, got_cb, &g), -EINVAL, "'%s'", bad[i]);
	memset(longname, 'a', sizeof(longname));
	for (int i = 50; i < 299; i += 51)
		longname[i] = '.';
	longname[299] = '\0';
	cr_assert_eq(dns_lookup(f.r, longname, DNS_T_A, got_cb, &g), -EINVAL);
	cr_assert_eq(dns_lookup(f.r, "ok.example", (enum dns_type)16, got_cb, &g), -EINVAL);
	cr_assert_eq(dns_lookup(f.r, "ok.example", DNS_T_A, NULL, &g), -EINVAL);
	cr_assert_eq(g.calls, 0);
	cr_assert_eq(dns_name_check("_dmarc.Example.com."), 0);
	cr_assert_eq(stats(&f).queries, 0);
	fx_fini(&f);
}

Test(dns, ptr_lookup)
{
	struct fx f;
	struct got g;
	char name[64];

	fx_init(&f);
	dns_ptr_name(ip("198.18.0.1"), name, sizeof(name));
	cr_assert_str_eq(name, "1.0.18.198.in-addr.arpa");
	dnsr_rr(f.z, name, DNSR_PTR, 300, "client.example.net");
	fx_start(&f);
	ask(&f, name, DNS_T_PTR, &g);
	cr_assert_eq(g.res.status, DNS_OK, "%s", g.res.why);
	cr_assert_str_eq(g.res.name, "client.example.net");
	cached(&f, name, DNS_T_PTR, &g);
	cr_assert_str_eq(g.res.name, "client.example.net");
	fx_fini(&f);
}

Test(dns, at_most_the_bound_of_records)
{
	struct fx f;
	struct got g;
	char rd[64];

	fx_init(&f);
	for (int i = 0; i < 20; i++) {
		snprintf(rd, sizeof(rd), "192.0.2.%d", 100 + i);
		dnsr_rr(f.z, "a20.example", DNSR_A, 300, rd);
		/* preferences 40, 39, ... 21: the 16 kept are the lowest, in answer order */
		snprintf(rd, sizeof(rd), "%d mx%02d.example", 40 - i, i);
		dnsr_rr(f.z, "mx20.example", DNSR_MX, 300, rd);
	}
	fx_start(&f);
	ask(&f, "a20.example", DNS_T_A, &g);
	cr_assert_eq(g.res.n, DNS_A_MAX);
	ask(&f, "mx20.example", DNS_T_MX, &g);
	cr_assert_eq(g.res.n, DNS_MX_MAX);
	for (unsigned i = 0; i < DNS_MX_MAX; i++) {
		char want[32];
		snprintf(want, sizeof(want), "mx%02u.example", i + 4);
		cr_assert_str_eq(g.res.mx[i].host, want);
		cr_assert_eq(g.res.mx[i].pref, 36 - i);
	}
	cached(&f, "mx20.example", DNS_T_MX, &g);
	cr_assert_eq(g.res.n, DNS_MX_MAX);
	cr_assert_str_eq(g.res.mx[15].host, "mx19.example");
	cr_assert_gt(stats(&f).mx_truncated, 0);
	fx_fini(&f);
}

/* Our own deadline, on the injected clock: a silent server gives TEMPFAIL. */
Test(dns, deadline_on_the_injected_clock)
{
	struct fx f;
	struct got g = { 0 };

	fx_init(&f);
	f.own_servers = true;
	dnsr_server(f.z, NS1, DNSR_SILENT);
	fx_start(&f);
	cr_assert_eq(dns_lookup(f.r, "silent.example", DNS_T_A, got_cb, &g), 0);
	uint64_t budget = dns_query_budget_ms(&f.c, 1);
	cr_assert_eq(budget, 2000ull * 7 + 2000);
	f.now += budget - 1;
	dns_poll(f.r, f.now);
	cr_assert_eq(g.calls, 0);
	f.now += 1;
	dns_poll(f.r, f.now);
	cr_assert_eq(g.calls, 1);
	cr_assert_eq(g.res.status, DNS_TEMPFAIL);
	cr_assert_not_null(strstr(g.res.why, "timed out"), "%s", g.res.why);
	cr_assert_eq(stats(&f).deadlines, 1);
	/* a new lookup is a new query (c-ares still has the old one) */
	memset(&g, 0, sizeof(g));
	cr_assert_eq(dns_lookup(f.r, "silent.example", DNS_T_A, got_cb, &g), 0);
	cr_assert_eq(stats(&f).queries_in_flight, 2);
	fx_fini(&f);
}

/* An answer after the deadline is not lost: it fills the cache. */
Test(dns, late_answer_after_the_deadline_is_cached)
{
	struct fx f;
	struct got g = { 0 };
	int s;

	fx_init(&f);
	f.own_servers = true;
	s = dnsr_server(f.z, NS1, DNSR_HOLD);
	dnsr_rr(f.z, "late.example", DNSR_A, 300, "192.0.2.40");
	fx_start(&f);
	cr_assert_eq(dns_lookup(f.r, "late.example", DNS_T_A, got_cb, &g), 0);
	dns_poll(f.r, f.now);
	f.now += dns_query_budget_ms(&f.c, 1);
	dns_poll(f.r, f.now);
	cr_assert_eq(g.res.status, DNS_TEMPFAIL);
	dnsr_release(f.z, s);
	dns_poll(f.r, f.now);
	cr_assert_eq(stats(&f).late_answers, 1);
	cr_assert_eq(stats(&f).queries_in_flight, 0);
	cached(&f, "late.example", DNS_T_A, &g);
	cr_assert_eq(g.res.a[0], ip("192.0.2.40"));
	fx_fini(&f);
}

/* c-ares' own timeouts (its clock is real): the second server answers. */
Test(dns, second_server_when_the_first_is_silent)
{
	struct fx f;
	struct got g = { 0 };

	fx_init(&f);
	snprintf(f.c.servers, sizeof(f.c.servers), "%s, %s:5353", NS1, NS2);
	f.c.timeout_ms = 50;
	f.c.attempts = 2;
	f.own_servers = true;
	dnsr_server(f.z, NS1, DNSR_SILENT);
	f.own_servers = true;
	dnsr_server(f.z, NS2 ":5353", DNSR_ANSWER);
	dnsr_rr(f.z, "failover.example", DNSR_A, 300, "192.0.2.50");
	f.now = clock_mono_ns() / NS_PER_MS;
	fx_start(&f);
	cr_assert_eq(dns_lookup(f.r, "failover.example", DNS_T_A, got_cb, &g), 0);
	uint64_t start = f.now;
	while (g.calls == 0 && f.now - start < 5000) {
		struct timespec ts = { 0, 2 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		f.now = clock_mono_ns() / NS_PER_MS;
		dns_poll(f.r, f.now);
	}
	cr_assert_eq(g.calls, 1, "no answer within 5 s");
	cr_assert_eq(g.res.status, DNS_OK, "%s", g.res.why);
	cr_assert_eq(g.res.a[0], ip("192.0.2.50"));
	cr_assert_eq(dnsr_queries(f.z, "failover.example", DNSR_A, SOCK_DGRAM, 0), 1);
	cr_assert_eq(dnsr_queries(f.z, "failover.example", DNSR_A, SOCK_DGRAM, 1), 1);
	cr_assert_geq(f.now - start, 50, "answered before the first server's timeout");
	fx_fini(&f);
}

/* Every server silent: c-ares times out within the budget, before our deadline. */
Test(dns, all_servers_silent_temporary_failure_within_the_budget)
{
	struct fx f;
	struct got g = { 0 };

	fx_init(&f);
	snprintf(f.c.servers, sizeof(f.c.servers), "%s,%s", NS1, NS2);
	f.c.timeout_ms = 40;
	f.c.attempts = 2;
	f.own_servers = true;
	dnsr_server(f.z, NS1, DNSR_SILENT);
	f.own_servers = true;
	dnsr_server(f.z, NS2, DNSR_SILENT);
	f.now = clock_mono_ns() / NS_PER_MS;
	fx_start(&f);
	uint64_t budget = dns_query_budget_ms(&f.c, 2), start = f.now;
	cr_assert_eq(budget, 2 * 40 * 3 + 1000, "c-ares' 240 ms and 1 s of slack");
	cr_assert_eq(dns_lookup(f.r, "dead.example", DNS_T_MX, got_cb, &g), 0);
	while (g.calls == 0 && f.now - start < 5000) {
		struct timespec ts = { 0, 2 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		f.now = clock_mono_ns() / NS_PER_MS;
		dns_poll(f.r, f.now);
	}
	cr_assert_eq(g.calls, 1);
	cr_assert_eq(g.res.status, DNS_TEMPFAIL);
	cr_assert_not_null(strstr(g.res.why, "timed out"), "%s", g.res.why);
	cr_assert_eq(stats(&f).deadlines, 0, "c-ares' own timeouts ended it, not our deadline");
	cr_assert_geq(f.now - start, 240, "took %llu ms", (unsigned long long)(f.now - start));
	cr_assert_lt(f.now - start, budget, "took %llu ms", (unsigned long long)(f.now - start));
	cr_assert_eq(dnsr_queries(f.z, "dead.example", 0, SOCK_DGRAM, 0), 2, "2 attempts at server 1");
	cr_assert_eq(dnsr_queries(f.z, "dead.example", 0, SOCK_DGRAM, 1), 2, "2 attempts at server 2");
	fx_fini(&f);
}

/* A TCP connection that fails: c-ares gives up on it, the lookup fails temporarily. */
Test(dns, truncated_answer_and_tcp_refused)
{
	struct fx f;
	struct got g;

	fx_init(&f);
	f.c.attempts = 1;
	f.own_servers = true;
	dnsr_server(f.z, NS1, DNSR_NO_TCP);
	dnsr_rr(f.z, "notcp.example", DNSR_A, 300, "192.0.2.60");
	dnsr_truncate(f.z, "notcp.example");
	fx_start(&f);
	ask(&f, "notcp.example", DNS_T_A, &g);
	cr_assert_eq(g.res.status, DNS_TEMPFAIL, "%s", dns_status_name(g.res.status));
	fx_fini(&f);
}

/* Even when c-ares fails inside ares_query (no socket), the answer waits for dns_poll. */
Test(dns, never_answered_from_inside_dns_lookup)
{
	struct fx f;
	struct got g = { 0 };

	fx_init(&f);
	dnsr_rr(f.z, "nosock.example", DNSR_A, 300, "192.0.2.61");
	fx_start(&f);
	dnsr_fail_opens(f.z, 100);
	cr_assert_eq(dns_lookup(f.r, "nosock.example", DNS_T_A, got_cb, &g), 0);
	cr_assert_eq(g.calls, 0);
	dns_poll(f.r, f.now);
	cr_assert_eq(g.calls, 1);
	cr_assert_eq(g.res.status, DNS_TEMPFAIL, "%s", dns_status_name(g.res.status));
	cr_assert_gt(stats(&f).sock_open_failures, 0);
	dnsr_fail_opens(f.z, 0);
	ask(&f, "nosock.example", DNS_T_A, &g);
	cr_assert_eq(g.res.status, DNS_OK);
	fx_fini(&f);
}

static void cancel_other(void *user, const struct dns_result *r);

struct canceller {
	struct dns_resolver *r;
	struct got *victim;
	unsigned calls;
};

static void cancel_other(void *user, const struct dns_result *r)
{
	struct canceller *c = user;
	(void)r;
	c->calls++;
	cr_assert_eq(dns_cancel(c->r, got_cb, c->victim), 1);
}

Test(dns, cancelled_waiters_are_never_called)
{
	struct fx f;
	struct got a = { 0 }, b = { 0 }, c = { 0 };
	struct canceller k;

	fx_init(&f);
	dnsr_rr(f.z, "c.example", DNSR_A, 300, "192.0.2.70");
	fx_start(&f);
	cr_assert_eq(dns_lookup(f.r, "c.example", DNS_T_A, got_cb, &a), 0);
	cr_assert_eq(dns_lookup(f.r, "c.example", DNS_T_A, got_cb, &b), 0);
	cr_assert_eq(dns_cancel(f.r, got_cb, &a), 1);
	/* a waiter cancelled by an earlier waiter's callback, during the hand-out */
	k.r = f.r;
	k.victim = &c;
	k.calls = 0;
	cr_assert_eq(dns_lookup(f.r, "c.example", DNS_T_A, cancel_other, &k), 0);
	cr_assert_eq(dns_lookup(f.r, "c.example", DNS_T_A, got_cb, &c), 0);
	settle(&f, &b);
	cr_assert_eq(a.calls, 0);
	cr_assert_eq(b.calls, 1);
	cr_assert_eq(k.calls, 1);
	cr_assert_eq(c.calls, 0);
	cr_assert_eq(stats(&f).waiters, 0);
	fx_fini(&f);
}

Test(dns, servers_text)
{
	struct dns_server s[DNS_SERVERS_MAX];
	char err[128];

	cr_assert_eq(dns_servers_parse("192.0.2.1, 192.0.2.2:5353", s, DNS_SERVERS_MAX, err, sizeof(err)), 2);
	cr_assert_eq(s[0].addr.family, NET_AF_INET);
	cr_assert_eq(s[0].addr.v4, ip("192.0.2.1"));
	cr_assert_eq(s[0].port, 53);
	cr_assert_eq(s[1].port, 5353);
	cr_assert_eq(dns_servers_parse("", s, 4, err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "no server"));
	cr_assert_eq(dns_servers_parse("dns.example", s, 4, err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "not an IPv4 or IPv6 address"));
	cr_assert_eq(dns_servers_parse("192.0.2.1:0", s, 4, err, sizeof(err)), -1);
	cr_assert_eq(dns_servers_parse("192.0.2.1:70000", s, 4, err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "not a port"));
	cr_assert_eq(dns_servers_parse("1.1.1.1,2.2.2.2,3.3.3.3,4.4.4.4,5.5.5.5", s, 4, err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "more than 4"));
}

/* ip6.arpa names (RFC 3596 2.5), and a PTR lookup of one. */
Test(dns, ipv6_reverse_names)
{
	struct fx f;
	struct got g;
	uint8_t a[16];
	char name[DNS_PTR6_NAME_MAX];

	cr_assert_eq(inet_pton(AF_INET6, "2001:db8::567:89ab", a), 1);
	dns_ptr_name6(a, name, sizeof(name));
	cr_assert_str_eq(name, "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
	cr_assert_eq(strlen(name), DNS_PTR6_NAME_MAX - 1);
	cr_assert_eq(dns_name_check(name), 0);
	fx_init(&f);
	dnsr_rr(f.z, name, DNSR_PTR, 300, "client6.example");
	fx_start(&f);
	ask(&f, name, DNS_T_PTR, &g);
	cr_assert_eq(g.res.status, DNS_OK, "%s", g.res.why);
	cr_assert_str_eq(g.res.name, "client6.example");
	fx_fini(&f);
}

/* IPv6 servers: bare, bracketed, bracketed with a port, beside IPv4. */
Test(dns, servers_text_ipv6)
{
	struct dns_server s[DNS_SERVERS_MAX];
	char err[128];
	const uint8_t fd53[16] = { 0xfd, 0x00, [15] = 0x53 };

	cr_assert_eq(dns_servers_parse("fd00::53, [fd00::53], [fd00::53]:5353,192.0.2.1:54", s,
				       DNS_SERVERS_MAX, err, sizeof(err)), 4, "%s", err);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(s[i].addr.family, NET_AF_INET6, "server %d", i);
		cr_assert_eq(memcmp(s[i].addr.v6, fd53, 16), 0, "server %d", i);
	}
	cr_assert_eq(s[0].port, 53);
	cr_assert_eq(s[1].port, 53);
	cr_assert_eq(s[2].port, 5353);
	cr_assert_eq(s[3].addr.family, NET_AF_INET);
	cr_assert_eq(s[3].port, 54);
	/* Bad forms, each refused with a reason. */
	cr_assert_eq(dns_servers_parse("[fd00::53", s, 4, err, sizeof(err)), -1);
	cr_assert_eq(dns_servers_parse("[fd00::53]x", s, 4, err, sizeof(err)), -1);
	cr_assert_eq(dns_servers_parse("[fd00::53]:0", s, 4, err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "not a port"));
	cr_assert_eq(dns_servers_parse("[192.0.2.1]", s, 4, err, sizeof(err)), -1);
	cr_assert_eq(dns_servers_parse("::", s, 4, err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "not an IPv6 unicast"));
	cr_assert_eq(dns_servers_parse("ff02::1", s, 4, err, sizeof(err)), -1);
	cr_assert_eq(dns_servers_parse("fd00::zz", s, 4, err, sizeof(err)), -1);
}

/* A lookup through an IPv6 server, over UDP; the first (IPv4) server is
 * silent so c-ares must move to the IPv6 one and accept its answer (the
 * source address handed back must match the server it asked). */
Test(dns, lookup_through_an_ipv6_server)
{
	struct fx f;
	struct got g = { 0 };

	fx_init(&f);
	snprintf(f.c.servers, sizeof(f.c.servers), "%s, [fd00::53]:5353", NS1);
	f.c.timeout_ms = 50;
	f.c.attempts = 2;
	f.own_servers = true;
	dnsr_server(f.z, NS1, DNSR_SILENT);
	dnsr_server(f.z, "[fd00::53]:5353", DNSR_ANSWER);
	dnsr_rr(f.z, "six.example", DNSR_A, 300, "192.0.2.66");
	f.now = clock_mono_ns() / NS_PER_MS;
	fx_start(&f);
	cr_assert_eq(dns_lookup(f.r, "six.example", DNS_T_A, got_cb, &g), 0);
	uint64_t start = f.now;
	while (g.calls == 0 && f.now - start < 5000) {
		struct timespec ts = { 0, 2 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		f.now = clock_mono_ns() / NS_PER_MS;
		dns_poll(f.r, f.now);
	}
	cr_assert_eq(g.calls, 1, "no answer within 5 s");
	cr_assert_eq(g.res.status, DNS_OK, "%s", g.res.why);
	cr_assert_eq(g.res.a[0], ip("192.0.2.66"));
	cr_assert_eq(dnsr_queries(f.z, "six.example", DNSR_A, SOCK_DGRAM, 1), 1,
		     "asked the IPv6 server once");
	fx_fini(&f);
}

/* The dataplane takes only a few datagrams at a time (a dpsock's slots);
 * c-ares writes every UDP query of a server to one socket and would count
 * -EAGAIN as the server failing. 300 distinct lookups at once through 4
 * slots per poll: every one answered, none failed, in a bounded backlog. */
Test(dns, a_burst_of_queries_waits_for_the_dataplanes_slots)
{
	static struct got g[300];
	char name[64];
	struct fx f;
	struct dns_stats st;
	unsigned answered = 0, ok = 0;

	fx_init(&f);
	fx_start(&f);
	dnsr_udp_slots(f.z, 4);
	for (unsigned i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "h%u.burst.example", i);
		dnsr_rr(f.z, name, DNSR_A, 300, "192.0.2.90");
	}
	for (unsigned i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "h%u.burst.example", i);
		memset(&g[i], 0, sizeof(g[i]));
		cr_assert_eq(dns_lookup(f.r, name, DNS_T_A, got_cb, &g[i]), 0);
	}
	for (int round = 0; round < 400 && answered < 300; round++) {
		dns_poll(f.r, f.now);
		answered = 0;
		for (unsigned i = 0; i < 300; i++)
			answered += g[i].calls;
	}
	for (unsigned i = 0; i < 300; i++)
		ok += g[i].calls == 1 && g[i].res.status == DNS_OK;
	dns_stats_get(f.r, &st);
	cr_expect_eq(ok, 300, "%u of 300 answered OK", ok);
	cr_expect_gt(dnsr_udp_refused(f.z), 0, "the slots really ran out");
	cr_expect_gt(st.udp_deferred, 0);
	cr_expect_eq(st.udp_backlog_full, 0);
	for (unsigned i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "h%u.burst.example", i);
		cr_expect_eq(dnsr_queries(f.z, name, DNSR_A, SOCK_DGRAM, -1), 1, "%s: one query", name);
	}
	fx_fini(&f);
}
