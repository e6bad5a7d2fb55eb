/*
 * dns.h - the resolver: c-ares over dataplane sockets, with a cache.
 *
 * One resolver per control thread that needs DNS (the router's). c-ares
 * 1.18 does the DNS protocol (queries, parsing, retries over the servers,
 * EDNS0, TCP when an answer is truncated); its sockets are dpsocks, UDP
 * and TCP on a worker lcore's stack, never a kernel socket (dns_sock.h).
 * Servers come from the configuration only: neither /etc/resolv.conf nor
 * /etc/hosts is ever read, and names are never completed with a search
 * domain.
 *
 * In front of c-ares sits a cache and a table of queries in flight:
 *  - positive answers are kept for their TTL (the smallest in the answer,
 *    CNAMEs included), clamped to [ttl_min, ttl_max];
 *  - NXDOMAIN and NODATA answers are kept per RFC 2308 section 5: for the
 *    smaller of the authority section's SOA TTL and its MINIMUM field,
 *    raised to ttl_min and capped at neg_ttl_max; without an SOA they are
 *    not kept. Temporary failures are never kept;
 *  - the cache is bounded by entries and by bytes; past either bound the
 *    least recently used entry goes;
 *  - one query is in flight per (name, type): every lookup of it while it
 *    is in flight waits for that one answer (coalescing). The queries in
 *    flight and the waiters are bounded too.
 * Time is injected: dns_poll(now_ms) sets the clock every TTL, expiry and
 * deadline is measured on (c-ares times its retransmissions on its own
 * monotonic clock; each query also has a deadline on ours, see
 * dns_query_budget_ms). Everything runs on the calling thread: no locks,
 * no threads, no blocking call.
 */
#ifndef SLUICE_DNS_H
#define SLUICE_DNS_H

#include <stddef.h>
#include <stdint.h>

#include <rte_byteorder.h>

#include "common/stats.h"
#include "dataplane/net/net_addr.h"

#define DNS_SERVERS_MAX 4
#define DNS_NAME_MAX 253	/* a name in text form, no trailing dot */
#define DNS_MX_MAX 16
#define DNS_A_MAX 16

struct dns_conf {
	char servers[256];	/* "ip[:port],ip[:port]" ([dns] servers), tried in order */
	unsigned timeout_ms;	/* first try per server; doubled on each round */
	unsigned attempts;	/* rounds over the servers */
	uint32_t ttl_min, ttl_max;	/* clamp positive TTLs (s) */
	uint32_t neg_ttl_max;	/* cap negative caching (s), RFC 2308 */
	unsigned cache_entries;	/* bound on cached answers; LRU beyond */
	size_t cache_bytes;	/* bound on their memory */
	unsigned max_queries;	/* distinct (name, type) in flight */
	unsigned max_waiters;	/* lookups waiting on queries in flight */
	unsigned edns_payload;	/* EDNS0 UDP payload we advertise; 0: no EDNS0.
				 * Our stack does not reassemble fragments:
				 * keep it <= MTU - 28 (default 1232) */
};

/* Defaults: no servers; timeout 2000 ms, 3 attempts, TTLs 0..86400 s,
 * negative 3600 s, 10000 entries, 16 MiB, 512 queries, 8192 waiters. */
void dns_conf_default(struct dns_conf *c);

enum dns_status {
	DNS_OK,		/* n > 0 records */
	DNS_NXDOMAIN,	/* the name does not exist */
	DNS_NODATA,	/* the name exists, no record of that type */
	DNS_TEMPFAIL,	/* SERVFAIL, timeout, unreachable servers, bad reply */
	DNS_BADNAME,	/* c-ares refused the name */
	DNS_NOMEM,
};
enum dns_type { DNS_T_A = 1, DNS_T_PTR = 12, DNS_T_MX = 15, DNS_T_AAAA = 28 };

struct dns_mx {
	uint16_t pref;
	char host[256];		/* "" for the null MX "." (RFC 7505) */
};

struct dns_result {
	enum dns_status status;
	enum dns_type type;
	uint32_t ttl;		/* seconds left, after clamping (0: not cached) */
	unsigned n;
	struct dns_mx mx[DNS_MX_MAX];	/* DNS_T_MX, in answer order (route.c sorts);
					 * past DNS_MX_MAX the lowest preferences */
	rte_be32_t a[DNS_A_MAX];	/* DNS_T_A */
	uint8_t aaaa[DNS_A_MAX][16];	/* DNS_T_AAAA (cached as 16 bytes each) */
	char name[256];			/* DNS_T_PTR */
	char why[128];			/* human text for logs and DSNs */
};
typedef void (*dns_cb)(void *user, const struct dns_result *r);

struct dns_server {
	struct net_addr addr;	/* either family */
	uint16_t port;		/* host order */
};

struct dpsock_hub;
struct dns_resolver;

/*
 * A resolver whose sockets live on the dataplane (hub: dp_dpsock_hub()).
 * NULL when c conflicts (bad servers, zero bounds) or on allocation failure.
 */
struct dns_resolver *dns_create(const struct dns_conf *c, struct dpsock_hub *hub, uint64_t now_ms);
/* Drops every waiter without calling it. Not from inside a dns_cb. */
void dns_destroy(struct dns_resolver *r);

/*
 * Look name up. From the cache at once (cb called before the return,
 * which is 1), or queued (returns 0; cb is called from a later dns_poll,
 * never from inside dns_lookup). One query in flight per (name, type):
 * every waiter gets the one answer. -EINVAL for a name that is not a host
 * name (dns_name_check), -ENOBUFS when the waiters are all taken, -EAGAIN
 * when a new query is needed and max_queries are in flight. The cache is
 * read at the time of the last dns_poll (or dns_create).
 */
int dns_lookup(struct dns_resolver *r, const char *name, enum dns_type t, dns_cb cb, void *user);

/* Drive it: socket events, c-ares timeouts, our deadlines, answers to the
 * waiters, cache expiry. now_ms is a monotonic clock (injected in tests). */
void dns_poll(struct dns_resolver *r, uint64_t now_ms);

/* Forget the waiters (cb, user) (their callbacks will not come). Returns how many. */
unsigned dns_cancel(struct dns_resolver *r, dns_cb cb, void *user);

/*
 * The longest a lookup can wait for its answer: what c-ares may spend over
 * all servers and attempts (timeout x servers x (2^attempts - 1)), plus one
 * timeout (at least 1 s) of slack. Past it the waiters get DNS_TEMPFAIL
 * "timed out" whatever c-ares does.
 */
uint64_t dns_query_budget_ms(const struct dns_conf *c, unsigned nservers);

/* "a.b.c.d[:port]" separated by commas/blanks into out[]. Returns the count
 * (>= 1) or -1 with err filled. */
int dns_servers_parse(const char *text, struct dns_server *out, unsigned max, char *err,
		      size_t errlen);

/* 0 if name (letters, digits, '-', '_', dots; labels 1..63, <= 253 in all,
 * one trailing dot allowed) can be looked up, else -EINVAL. */
int dns_name_check(const char *name);

/* "d.c.b.a.in-addr.arpa" for the PTR lookup of addr. */
void dns_ptr_name(rte_be32_t addr, char *buf, size_t n);
/* The ip6.arpa name of an IPv6 address (RFC 3596 2.5: 32 nibbles, least
 * significant first); buf of at least DNS_PTR6_NAME_MAX bytes. */
#define DNS_PTR6_NAME_MAX 73	/* 64 + "ip6.arpa" + NUL */
void dns_ptr_name6(const uint8_t addr[16], char *buf, size_t n);

const char *dns_status_name(enum dns_status s);
const char *dns_type_name(enum dns_type t);

/* Counters; the last four are gauges (what is held now). */
#define DNS_STATS(X) \
	X(lookups) X(bad_names) X(cache_hits) X(cache_neg_hits) X(cache_misses) \
	X(coalesced) X(waiters_full) X(queries_full) X(queries) X(answers_ok) \
	X(answers_nxdomain) X(answers_nodata) X(answers_tempfail) X(answers_badreply) \
	X(mx_truncated) X(deadlines) X(late_answers) X(cache_inserts) X(cache_evictions) \
	X(cache_expired) X(cache_too_big) X(sock_opens) X(sock_open_failures) \
	X(sock_closes) X(sock_events) X(sock_stale_events) X(cancelled) \
	X(udp_deferred) X(udp_backlog_full) \
	X(cache_entries) X(cache_bytes) X(queries_in_flight) X(waiters)
struct dns_stats { DNS_STATS(STATS_FIELD) };
extern const char *const dns_stat_names[];
extern const unsigned dns_stat_count;
void dns_stats_get(const struct dns_resolver *r, struct dns_stats *out);

#endif
