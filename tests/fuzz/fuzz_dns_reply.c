/*
 * fuzz_dns_reply.c - libFuzzer harness: arbitrary bytes as a DNS server's
 * reply, through c-ares (its parsers, TC handling, TCP retry), our glue
 * (the RR-header walk for TTLs, the SOA of negative answers, the MX
 * selection), the cache (packing an answer and reading it back) and, in
 * route mode, the router (ordering, pruning, the address limit).
 *
 * Input layout: [mode][split][bytes...]. mode bits 0-1: what is asked for
 * "fuzz.example" (or its PTR name): A, MX, PTR, or a route lookup (MX
 * then the A records of the MX hosts, which the in-process server answers
 * from its zone: mx1..mx3.fuzz.example exist, mx3 is "us" by name and by
 * address). Bit 2: AAAA instead of A (mode 4), and for a route, A and
 * AAAA of the MX hosts with IPv6 first (mode 7; mx3 is us by its IPv6
 * address too).
 * bytes[0, split * len / 255) is the UDP reply, the rest the reply over
 * TCP should c-ares retry there (empty: the zone answers). The responder
 * writes the query's ID into the first two bytes of a reply; the question
 * must match the query for c-ares to take it (the seeds have it right).
 *
 * Invariants (abort on violation):
 *  - every lookup is answered exactly once, by the deadline at the latest;
 *  - a result's strings are terminated within their arrays, n within the
 *    bounds, OK means n > 0, the TTL within [ttl_min, ttl_max] (positive)
 *    or <= neg_ttl_max (negative), nothing cached for TEMPFAIL;
 *  - the same lookup again, when answered from the cache, gives the same
 *    records;
 *  - routes: OK has hops (each with a port, never one of our addresses),
 *    failures have none and a dsn of class 4 or 5 matching TEMP/PERM; the
 *    MX preferences of the hops never go down.
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/dns.h"
#include "control/dns_sock.h"
#include "control/route.h"
#include "tests/support/dns_responder.h"

#define CHECK(x) do { if (!(x)) abort(); } while (0)
#define FUZZ_NAME "fuzz.example"
#define FUZZ_PTR "9.2.0.192.in-addr.arpa"

struct seen {
	unsigned calls;
	struct dns_result r;
};

struct rseen {
	unsigned calls;
	struct route_result r;
};

static struct dns_conf dconf;

static void on_dns(void *user, const struct dns_result *r)
{
	struct seen *s = user;
	s->calls++;
	s->r = *r;
}

static void on_route(void *user, const struct route_result *r)
{
	struct rseen *s = user;
	s->calls++;
	s->r = *r;
}

static void check_dns(const struct dns_result *r, enum dns_type t, bool cached)
{
	CHECK((unsigned)r->status <= DNS_NOMEM);
	CHECK(r->type == t);
	CHECK(strnlen(r->why, sizeof(r->why)) < sizeof(r->why));
	if (r->status != DNS_OK) {
		CHECK(r->n == 0);
		CHECK(r->status == DNS_NXDOMAIN || r->status == DNS_NODATA
		      ? r->ttl <= dconf.neg_ttl_max : r->ttl == 0);
		return;
	}
	CHECK(r->n > 0);
	CHECK(r->ttl <= dconf.ttl_max && r->ttl >= (cached ? 1 : dconf.ttl_min));
	switch (t) {
	case DNS_T_MX:
		CHECK(r->n <= DNS_MX_MAX);
		for (unsigned i = 0; i < r->n; i++)
			CHECK(strnlen(r->mx[i].host, sizeof(r->mx[i].host)) < sizeof(r->mx[i].host));
		break;
	case DNS_T_A:
	case DNS_T_AAAA:
		CHECK(r->n <= DNS_A_MAX);
		break;
	case DNS_T_PTR:
		CHECK(r->n == 1 && strnlen(r->name, sizeof(r->name)) < sizeof(r->name));
		break;
	}
}

static bool same_records(const struct dns_result *a, const struct dns_result *b)
{
	if (a->status != b->status || a->n != b->n)
		return false;
	for (unsigned i = 0; i < a->n && a->status == DNS_OK; i++) {
		if (a->type == DNS_T_MX && (a->mx[i].pref != b->mx[i].pref ||
					    strcmp(a->mx[i].host, b->mx[i].host) != 0))
			return false;
		if (a->type == DNS_T_A && a->a[i] != b->a[i])
			return false;
		if (a->type == DNS_T_AAAA && memcmp(a->aaaa[i], b->aaaa[i], 16) != 0)
			return false;
	}
	return a->type != DNS_T_PTR || a->status != DNS_OK || strcmp(a->name, b->name) == 0;
}

static void check_route(const struct route_result *r, const struct route_conf *rc)
{
	CHECK((unsigned)r->status <= ROUTE_HOLD);
	CHECK(strnlen(r->why, sizeof(r->why)) < sizeof(r->why));
	CHECK(strnlen(r->dsn, sizeof(r->dsn)) < sizeof(r->dsn));
	if (r->status != ROUTE_OK) {
		CHECK(r->n == 0);
		if (r->status == ROUTE_TEMP || r->status == ROUTE_PERM)
			CHECK(r->dsn[0] == (r->status == ROUTE_TEMP ? '4' : '5') && r->dsn[1] == '.');
		return;
	}
	CHECK(r->n > 0 && r->n <= ROUTE_HOPS_MAX);
	for (unsigned i = 0; i < r->n; i++) {
		rte_be32_t a;
		memcpy(&a, r->hop[i].addr, 4);
		if (r->hop[i].family == AF_INET6)	/* only when asked for, never us */
			CHECK(rc->family != ROUTE_AF_IPV4 &&
			      memcmp(r->hop[i].addr, rc->self6, 16) != 0);
		else
			CHECK(r->hop[i].family == AF_INET && rc->family != ROUTE_AF_IPV6 &&
			      a != rc->self[0]);
		CHECK(r->hop[i].port != 0);
		CHECK(strnlen(r->hop[i].mx, sizeof(r->hop[i].mx)) < sizeof(r->hop[i].mx));
		if (i)
			CHECK(r->hop[i].pref >= r->hop[i - 1].pref);
	}
}

/* Poll until the lookup is answered; past the responder's round trips,
 * jump the injected clock over the deadline. */
static void drive(struct dns_resolver *d, uint64_t *now, const unsigned *calls)
{
	for (int i = 0; i < 8 && *calls == 0; i++)
		dns_poll(d, *now);
	for (int k = 0; k < 4 && *calls == 0; k++) {
		*now += dns_query_budget_ms(&dconf, 1) + 1;
		for (int i = 0; i < 8 && *calls == 0; i++)
			dns_poll(d, *now);
	}
	CHECK(*calls == 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* mode 3 and 7: a route (7: A and AAAA, IPv6 first); 4: AAAA */
	static const enum dns_type types[] = { DNS_T_A, DNS_T_MX, DNS_T_PTR, DNS_T_MX,
					       DNS_T_AAAA, DNS_T_MX, DNS_T_PTR, DNS_T_MX };
	struct dnsr *z;
	struct dns_resolver *d;
	struct router *rt = NULL;
	struct route_conf rc;
	uint64_t now = 1000000;
	size_t udp_len;
	unsigned mode;
	const char *name;
	enum dns_type t;

	if (size < 2 || size > 8192)
		return 0;
	mode = data[0] & 7;
	t = types[mode];
	name = t == DNS_T_PTR ? FUZZ_PTR : FUZZ_NAME;
	udp_len = (size - 2) * data[1] / 255;
	z = dnsr_create();
	dnsr_server(z, "192.0.2.53", DNSR_ANSWER);
	dnsr_rr(z, "mx1.fuzz.example", DNSR_A, 300, "192.0.2.1");
	dnsr_rr(z, "mx1.fuzz.example", DNSR_A, 300, "192.0.2.11");
	dnsr_rr(z, "mx2.fuzz.example", DNSR_A, 60, "192.0.2.2");
	dnsr_rr(z, "mx3.fuzz.example", DNSR_A, 0, "198.18.0.2");	/* us */
	dnsr_rr(z, "fuzz.example", DNSR_A, 30, "192.0.2.9");
	dnsr_rr(z, "mx1.fuzz.example", DNSR_AAAA, 300, "2001:db8::1");
	dnsr_rr(z, "mx2.fuzz.example", DNSR_AAAA, 60, "2001:db8::2");
	dnsr_rr(z, "mx3.fuzz.example", DNSR_AAAA, 0, "fd00::2");	/* us */
	dnsr_raw(z, name, (int)t, false, data + 2, udp_len);
	dnsr_raw(z, name, (int)t, true, data + 2 + udp_len, size - 2 - udp_len);

	dns_conf_default(&dconf);
	strcpy(dconf.servers, "192.0.2.53");
	dconf.timeout_ms = 100;
	dconf.attempts = 1;
	dconf.ttl_min = 5;
	dconf.ttl_max = 3600;
	dconf.neg_ttl_max = 600;
	dconf.cache_entries = 16;
	dconf.cache_bytes = 8192;
	d = dns_create_ops(&dconf, dnsr_ops(z), now);
	CHECK(d);
	if ((mode & 3) == 3) {
		struct rseen a = { 0 }, b = { 0 };
		route_conf_default(&rc);
		strcpy(rc.hostname, "mx3.fuzz.example");
		rc.self[0] = inet_addr("198.18.0.2");
		rc.nself = 1;
		rc.mx_address_limit = 3;
		if (mode & 4) {
			rc.family = ROUTE_AF_ANY;
			rc.prefer = ROUTE_AF_IPV6;
			rc.self6_ok = true;
			inet_pton(AF_INET6, "fd00::2", rc.self6);
		}
		rt = router_create(&rc, d, 1);
		CHECK(rt);
		int r = route_lookup(rt, name, on_route, &a);
		CHECK(r == 0 || r == 1);
		if (r == 0)
			drive(d, &now, &a.calls);
		CHECK(a.calls == 1);
		check_route(&a.r, &rc);
		if (getenv("FUZZ_DNS_DEBUG"))	/* what a seed does */
			fprintf(stderr, "route %s: %s %s n=%u %s\n", name, route_status_name(a.r.status),
				a.r.dsn, a.r.n, a.r.why);
		r = route_lookup(rt, name, on_route, &b);
		CHECK(r == 0 || r == 1);
		if (r == 0)
			drive(d, &now, &b.calls);
		check_route(&b.r, &rc);
		router_destroy(rt);
	} else {
		struct seen a = { 0 }, b = { 0 };
		struct dns_stats st;
		CHECK(dns_lookup(d, name, t, on_dns, &a) == 0);
		CHECK(a.calls == 0);
		drive(d, &now, &a.calls);
		check_dns(&a.r, t, false);
		if (getenv("FUZZ_DNS_DEBUG"))
			fprintf(stderr, "%s/%s: %s n=%u ttl=%u %s\n", name, dns_type_name(t),
				dns_status_name(a.r.status), a.r.n, a.r.ttl, a.r.why);
		dns_stats_get(d, &st);
		if (a.r.status == DNS_TEMPFAIL)
			CHECK(st.cache_entries == 0);
		int r = dns_lookup(d, name, t, on_dns, &b);
		CHECK(r == 0 || r == 1);
		if (r == 1)	/* from the cache: the same records */
			CHECK(b.calls == 1 && same_records(&a.r, &b.r));
		else
			drive(d, &now, &b.calls);
		check_dns(&b.r, t, r == 1);
	}
	dns_destroy(d);
	CHECK(dnsr_sockets_open(z) == 0);
	dnsr_destroy(z);
	return 0;
}
