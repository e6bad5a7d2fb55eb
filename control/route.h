/*
 * route.h - where mail for a domain goes: the next hops, in order.
 *
 * The delivery scheduler asks route_lookup(domain) and gets an ordered
 * list of (address, port, TLS policy, MX name), or a temporary or
 * permanent failure with an enhanced status code, or "discard"/"hold".
 *
 * Static routes come first (a routes file, and route_set at runtime):
 *
 *   example.com     [192.0.2.10]:2525            no MX lookup: this address
 *   example.net     [relay.example.net]          no MX lookup: the host's A records
 *   example.org     mx.example.org:587           MX lookup of mx.example.org
 *   .example.com    [hub.example.com] tls=verify every subdomain (not example.com)
 *   example.edu     10 [a.example], 10 [b.example], 20 [c.example]:2525
 *   spam.example    discard
 *   slow.example    hold
 *
 * A spec is "discard", "hold", or next hops separated by commas, each
 * "[PRIORITY] TARGET[:PORT]", with an optional last word tls=POLICY
 * (none, may, encrypt, verify) for all of them. TARGET in brackets (a name,
 * an IPv4 address, an IPv6 address as [2001:db8::1] or [IPv6:2001:db8::1])
 * is used as is; a name without brackets is looked up as an MX (implicit
 * MX: its A records); an IPv4 address without brackets is that address.
 *
 * Address families (conf.family, conf.prefer; [delivery] address_family
 * and prefer, as Postfix's inet_protocols and smtp_address_preference):
 * a host's A records (ROUTE_AF_IPV4), AAAA records (ROUTE_AF_IPV6) or both
 * (ROUTE_AF_ANY) are looked up; an address literal of a family not in use
 * gives no hop. Among hops of equal preference the preferred family goes
 * first (ROUTE_AF_ANY: the shuffled order), so the delivery, which tries
 * the hops in order, falls back to the other family only when every
 * address of the preferred one has failed. Lower priorities are tried first and equal ones in
 * random order; without priorities the hops go in the order written
 * (give every hop a priority or none). The most specific route wins: the
 * domain itself, then ".parent" entries from the closest parent up. A
 * domain without a static route goes to the relayhost if one is set (same
 * spec syntax), else to its MX records (RFC 5321 section 5.1):
 *  - MX records by preference, equal preferences in random order (the RNG
 *    is seeded: tests pass a seed), each MX host's A records (in random
 *    order) after the next; at most mx_address_limit addresses in all;
 *  - no MX RRset (NODATA): the domain's own A records (implicit MX); never
 *    the domain's A records when MX records exist;
 *  - an MX host that is us (our host name, or one of our addresses): that
 *    MX and every one at or above its preference are dropped (we are a
 *    backup MX); nothing left: PERM 5.4.6 (mail loops back to us);
 *  - a null MX ("MX 0 .", RFC 7505): PERM 5.1.10 (556); NXDOMAIN: PERM
 *    5.1.2; SERVFAIL, timeouts: TEMP 4.4.3; no MX host with an address:
 *    PERM 5.4.4 if every lookup was definite, else TEMP 4.4.3.
 * A static route or the relayhost that cannot be resolved is TEMP (4.4.3,
 * 4.4.4 or 4.4.6 for a loop): a configuration mistake defers mail, it
 * never bounces it.
 */
#ifndef SLUICE_ROUTE_H
#define SLUICE_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/stats.h"
#include "control/dns.h"

enum route_tls { ROUTE_TLS_NONE, ROUTE_TLS_MAY, ROUTE_TLS_ENCRYPT, ROUTE_TLS_VERIFY };
enum route_status { ROUTE_OK, ROUTE_TEMP, ROUTE_PERM, ROUTE_DISCARD, ROUTE_HOLD };

#define ROUTE_HOPS_MAX 16
#define ROUTE_TARGETS_MAX 4	/* next hops written in one static route */
#define ROUTE_SELF_MAX 8
#define ROUTE_SPEC_MAX 512
#define ROUTE_DEST_MAX 256	/* a destination key, NUL included */

enum route_af { ROUTE_AF_ANY, ROUTE_AF_IPV4, ROUTE_AF_IPV6 };

struct route_hop {
	uint8_t family;		/* AF_INET or AF_INET6 */
	uint8_t addr[16];	/* network order; IPv4 in the first 4 bytes */
	uint16_t port;		/* host order */
	enum route_tls tls;
	uint16_t pref;		/* MX preference; a static [target]'s priority */
	char mx[256];		/* MX host name, or the static target as written */
};

struct route_result {
	enum route_status status;
	char dsn[10];		/* enhanced status for TEMP/PERM, e.g. "5.1.10" */
	char why[200];
	/*
	 * The destination key (ROUTE_OK): what the scheduler keeps one
	 * concurrency window, backoff and connection cache for, as Postfix
	 * keys its queues by next hop. An MX route: the domain (normal form).
	 * A static route or the relayhost: its next hops in one normal
	 * spelling, "[relay.example]:25" or "10 [a.example]:25, 20 mx.b:587
	 * tls=verify", so every domain routed to the same hops shares one
	 * destination (truncated past ROUTE_DEST_MAX - 1 characters).
	 */
	char dest[ROUTE_DEST_MAX];
	unsigned n;
	struct route_hop hop[ROUTE_HOPS_MAX];
};
typedef void (*route_cb)(void *user, const struct route_result *r);

struct route_conf {
	char hostname[256];		/* our name: an MX naming it is us */
	rte_be32_t self[ROUTE_SELF_MAX];	/* our addresses */
	unsigned nself;
	bool self6_ok;
	uint8_t self6[16];		/* our IPv6 address (self6_ok) */
	enum route_af family;		/* which addresses: A, AAAA or both */
	enum route_af prefer;		/* first among equal preferences (ANY: no order) */
	char relayhost[ROUTE_SPEC_MAX];	/* spec for domains without a route; "": MX */
	unsigned mx_address_limit;	/* addresses per lookup (Postfix: 5) */
	uint16_t port;			/* when a spec gives none: 25 */
	enum route_tls tls;		/* when a spec gives none: may */
	unsigned max_routes;		/* static routes held */
	unsigned max_jobs;		/* route lookups in progress */
};
/* port 25, tls may, mx_address_limit 5, 10000 routes, 1024 jobs, no relayhost,
 * IPv4 only (family ROUTE_AF_IPV4: sluiced sets ANY when it has an IPv6
 * address), no preference. */
void route_conf_default(struct route_conf *c);

/* A parsed spec. */
struct route_target {
	char host[DNS_NAME_MAX + 1];	/* name, or the address as written */
	rte_be32_t addr;		/* an IPv4 literal; 0 for a name */
	bool v6;			/* an IPv6 literal, in addr6 */
	uint8_t addr6[16];
	uint16_t port;			/* 0: the default */
	uint16_t pri;
	bool mx;			/* no brackets around a name: MX lookup */
};
enum route_kind { ROUTE_K_HOPS, ROUTE_K_DISCARD, ROUTE_K_HOLD };
struct route_spec {
	enum route_kind kind;
	bool tls_given, pri_given;
	enum route_tls tls;
	unsigned n;
	struct route_target t[ROUTE_TARGETS_MAX];
};

/* Parse a spec. 0, or -1 with err ("what, where"). */
int route_spec_parse(const char *spec, struct route_spec *out, char *err, size_t errlen);
/* A route's domain: "example.com" or ".example.com" (subdomains), into
 * key (lowercased, no trailing dot). 0 or -1 with err. */
int route_domain_parse(const char *domain, char key[DNS_NAME_MAX + 2], char *err, size_t errlen);
/* One line of a routes file: "DOMAIN SPEC", blank, or a # comment.
 * 1 (a route: key and spec filled), 0 (nothing), -1 with err. */
int route_line_parse(const char *line, char key[DNS_NAME_MAX + 2], struct route_spec *spec,
		     char *err, size_t errlen);
const char *route_tls_name(enum route_tls t);
const char *route_status_name(enum route_status s);
const char *route_af_name(enum route_af a);	/* "any", "ipv4", "ipv6" */
/* "any", "ipv4", "ipv6" into *out: 0, or -1. */
int route_af_parse(const char *text, enum route_af *out);

struct router;
/* NULL if c->relayhost does not parse or on allocation failure. */
struct router *router_create(const struct route_conf *c, struct dns_resolver *dns, uint64_t seed);
/* Cancels its lookups at the resolver; their callbacks never come. Destroy
 * the router before its resolver, and not from inside a route_cb. */
void router_destroy(struct router *rt);

/*
 * Route domain. Answered at once (cb called before the return, which is
 * 1: a static address, discard/hold, everything cached) or later from
 * dns_poll (returns 0). -EINVAL for a domain that is not a host name,
 * -ENOBUFS when max_jobs lookups are in progress.
 */
int route_lookup(struct router *rt, const char *domain, route_cb cb, void *user);

/* Set (add or replace) or clear a static route at runtime; lookups already
 * in progress keep what they started with. A route set here is a runtime
 * route: route_replace (a reload) keeps it, over the file's. Clearing a
 * runtime route set over a file's route brings the file's back; clearing
 * a file's route lasts until the next reload reads the file again.
 * route_set: 0, or -EINVAL/-ENOSPC with err. route_clear: 0 or -ENOENT. */
int route_set(struct router *rt, const char *domain, const char *spec, char *err, size_t n);
int route_clear(struct router *rt, const char *domain);
/* The static routes (`route show`): fn(user, key, spec as text) for each,
 * or only for domain's own (its key, or the ".parent" one that covers it)
 * when domain is not NULL. Returns how many. */
unsigned route_visit(struct router *rt, const char *domain,
		     void (*fn)(void *user, const char *key, const char *spec), void *user);
/* Load a routes file's text (name for messages) over the current routes.
 * The number of routes set, or -1 with err "name:line: ..." (nothing set). */
int route_load(struct router *rt, const char *text, const char *name, char *err, size_t n);
/* A reload: the relayhost spec ("": MX) and the file's static routes
 * replaced by text's (NULL: none); the routes set at runtime (route_set)
 * are kept, over the file's for the same domain; lookups in progress keep
 * what they started with. All or nothing: the number of the file's routes,
 * or -1 with err and the router as it was. */
int route_replace(struct router *rt, const char *relayhost, const char *text, const char *name,
		  char *err, size_t n);

#define ROUTE_STATS(X) \
	X(lookups) X(static_routes) X(relayhost) X(mx_routes) X(discard) X(hold) X(ok) \
	X(temp) X(perm) X(null_mx) X(implicit_mx) X(loops) X(self_pruned) \
	X(addresses_capped) X(jobs_full) X(jobs) X(routes)
struct route_stats { ROUTE_STATS(STATS_FIELD) };
extern const char *const route_stat_names[];
extern const unsigned route_stat_count;
/* Counters; jobs and routes are gauges. */
void route_stats_get(const struct router *rt, struct route_stats *out);

#endif
