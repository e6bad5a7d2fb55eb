/*
 * dns.c - the resolver: cache, coalescing, and the glue to c-ares. See dns.h.
 *
 * Data structures, all owned by one struct dns_resolver:
 *  - the cache: entries (struct centry) in a chained hash table keyed by
 *    (lowercased name, type) and on an LRU list (head: most recently used).
 *    An entry is one allocation: the header, the name, then the answer
 *    packed (MX: 2-byte preference and host\0 each; A: 4 bytes each; PTR:
 *    name\0). Its size is what cache_bytes is charged.
 *  - the queries in flight (struct pending): a second hash table keyed the
 *    same way, and a FIFO by start time. Every query gets the same budget,
 *    so the FIFO's head is the first whose deadline passes. A pending holds
 *    its waiters and, once answered, its result until dns_poll hands it out
 *    (answers are never given from inside a c-ares call or dns_lookup).
 *  - the waiters: max_waiters preallocated at create, on a free list.
 *  - the sockets c-ares has open (at most a UDP and a TCP one per server).
 *    dpsock reports edges (became readable/writable); c-ares wants to be
 *    called while a socket is readable, so we keep a level per socket:
 *    readable until a recv says -EAGAIN (or c-ares stops reading it),
 *    writable from the WRITABLE event until a send says -EAGAIN.
 *
 * What c-ares 1.18.1 does to a socket (ares_process.c, ares_init.c), and
 * why none of it reaches a kernel descriptor: with socket functions set,
 * every socket(), connect(), recvfrom()/recv() and writev()/write() goes
 * through them, and configure_socket() returns at once ("do not set
 * options for user-managed sockets": no O_NONBLOCK/FD_CLOEXEC fcntl, no
 * SO_SNDBUF/SO_RCVBUF, no SO_BINDTODEVICE, no bind()); the TCP_NODELAY
 * setsockopt in open_tcp_socket() is skipped too. ares_fds()/ares_getsock()
 * and ares_process() with fd_sets would FD_SET our numbers: we never call
 * them, only ares_process_fd(). As a second guard the numbers we hand
 * c-ares are DNS_FD_BASE + id, above any descriptor the kernel gives out,
 * so a stray system call on one could only fail with EBADF. Init reads no
 * file when lookups, servers, domains, sortlist, ndots, timeout and tries
 * are all given (ARES_CONFIG_CHECK before init_by_resolv_conf), which
 * dns_create_ops does; servers then come from ares_set_servers_ports.
 * ares_query() never searches domains or reads /etc/hosts.
 *
 * c-ares 1.18.1 behaviours worth knowing: a FORMERR without an OPT record
 * in answer to an EDNS query turns EDNS off for the whole channel (answers
 * over 512 bytes then come over TCP, which works); SERVFAIL, REFUSED and
 * NOTIMP move on to the next try (next server), and when every try got
 * one the query ends as ARES_ECONNREFUSED, like unreachable servers; TC
 * (or an answer longer than the payload) retries the query over TCP; a UDP
 * reply from another address than the server's is dropped.
 */
#include "control/dns.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ares.h>
#include <ares_dns.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "control/dns_sock.h"

#define DNS_FD_BASE (1 << 30)	/* c-ares' socket number = DNS_FD_BASE + our id */
#define DNS_SOCKS_MAX (2 * DNS_SERVERS_MAX + 2)
#define DNS_DRIVE_ROUNDS 64	/* socket passes per dns_poll */
#define DNS_DGRAM_MAX 600	/* a query c-ares sends over UDP: name + EDNS0 */
#define DNS_SWEEP_BUCKETS 64	/* cache buckets checked for expiry per dns_poll */
#define DNS_HDR 12		/* fixed header */
#define DNS_QFIX 4		/* type, class after a question's name */
#define DNS_RRFIX 10		/* type, class, ttl, rdlength after an RR's name */

const char *const dns_stat_names[] = { DNS_STATS(STATS_NAME) };
const unsigned dns_stat_count = STATS_COUNT(dns_stat_names);

/* ---- data structures ---- */

struct centry {
	struct centry *hnext;		/* hash chain */
	struct centry *lprev, *lnext;	/* LRU list */
	uint64_t expires_ms;
	size_t bytes;			/* this allocation, charged to cache_bytes */
	uint32_t hash;
	uint16_t data_len;
	uint8_t type, status, n;
	char name[];			/* name\0 then the packed answer */
};

struct waiter {
	struct waiter *next;
	dns_cb cb;
	void *user;
};

struct pending {
	struct pending *hnext;		/* hash chain (in flight) */
	struct pending *fprev, *fnext;	/* FIFO by start (in flight) */
	struct pending *dnext;		/* answered, waiting to be handed out */
	struct dns_resolver *r;
	uint64_t deadline_ms;
	uint32_t hash;
	enum dns_type type;
	bool in_table;			/* in the hash table and FIFO */
	bool cares_owned;		/* c-ares will still call on_answer */
	bool queued;			/* on the done list */
	struct waiter *wfirst, *wlast;
	char name[DNS_NAME_MAX + 1];
	struct dns_result res;		/* valid once queued */
};

struct dsock {
	bool used;
	int id;				/* the seam's id; c-ares sees DNS_FD_BASE + id */
	int type;
	bool readable, writable, want_write;
	unsigned recv_calls, send_calls;
};

/*
 * UDP queries the dataplane could not take yet. c-ares writes every UDP
 * query of a server to one socket and treats -EAGAIN as that server
 * failing; a dpsock takes only a few datagrams at a time (its slots), so a
 * burst of lookups would fail. A datagram the socket refuses is copied here
 * (FIFO, max_queries entries: one per query that can be in flight) and sent
 * as slots come back; c-ares' own retry timers still cover it.
 */
struct dgram {
	int id;				/* the socket */
	uint16_t len;
	uint8_t buf[DNS_DGRAM_MAX];
};

struct dns_resolver {
	struct dns_conf conf;
	struct dns_sock_ops ops;
	struct ares_socket_functions sockf;	/* c-ares keeps a pointer to it */
	ares_channel channel;
	unsigned nservers;
	uint64_t now_ms, budget_ms;
	bool destroying;

	struct centry **ctab;
	uint32_t cmask, sweep;
	struct centry *lru_head, *lru_tail;
	unsigned centries;
	size_t cbytes;

	struct pending **ptab;
	uint32_t pmask;
	struct pending *fifo_head, *fifo_tail;
	struct pending *done_head, *done_tail;
	unsigned npending;

	struct waiter *wpool, *wfree;
	struct waiter *delivering;	/* the list being handed out now */
	unsigned nwaiters;

	struct dsock socks[DNS_SOCKS_MAX];
	struct dgram *backlog;		/* ring of max_queries */
	unsigned bl_head, bl_n;
	struct dns_stats st;
};

/* ---- small helpers ---- */

void dns_conf_default(struct dns_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->timeout_ms = 2000;
	c->attempts = 3;
	c->ttl_min = 0;
	c->ttl_max = 86400;
	c->neg_ttl_max = 3600;
	c->cache_entries = 10000;
	c->cache_bytes = 16u << 20;
	c->max_queries = 512;
	c->max_waiters = 8192;
	c->edns_payload = 1232;
}

const char *dns_status_name(enum dns_status s)
{
	static const char *const n[] = { "OK", "NXDOMAIN", "NODATA", "TEMPFAIL", "BADNAME", "NOMEM" };
	return (unsigned)s < sizeof(n) / sizeof(n[0]) ? n[s] : "?";
}

const char *dns_type_name(enum dns_type t)
{
	switch (t) {
	case DNS_T_A: return "A";
	case DNS_T_AAAA: return "AAAA";
	case DNS_T_MX: return "MX";
	case DNS_T_PTR: return "PTR";
	}
	return "?";
}

uint64_t dns_query_budget_ms(const struct dns_conf *c, unsigned nservers)
{
	/* c-ares 1.18: try k (0-based, over servers x attempts) waits
	 * timeout << (k / nservers). */
	unsigned a = c->attempts > 20 ? 20 : c->attempts;
	uint64_t rounds = (1ull << a) - 1;

	uint64_t slack = c->timeout_ms > 1000 ? c->timeout_ms : 1000;

	return (uint64_t)(nservers ? nservers : 1) * c->timeout_ms * rounds + slack;
}

int dns_servers_parse(const char *text, struct dns_server *out, unsigned max, char *err,
		      size_t errlen)
{
	const char *p = text;
	unsigned n = 0;

	while (*p) {
		char tok[64], *colon, *addr = tok;
		size_t len;
		struct in_addr a;
		struct in6_addr a6;

		p += strspn(p, " ,\t");
		len = strcspn(p, " ,\t");
		if (len == 0)
			break;
		if (len >= sizeof(tok)) {
			snprintf(err, errlen, "'%.*s...' is not ip[:port]", 20, p);
			return -1;
		}
		memcpy(tok, p, len);
		tok[len] = '\0';
		p += len;
		if (n == max) {
			snprintf(err, errlen, "more than %u servers", max);
			return -1;
		}
		out[n].port = 53;
		/* ip, ip:port, v6, [v6], [v6]:port: a bare IPv6 address has
		 * no port (its colons are its own) */
		colon = strchr(tok, ':');
		if (tok[0] == '[') {
			char *rb = strchr(tok, ']');
			if (!rb || (rb[1] && rb[1] != ':')) {
				snprintf(err, errlen, "'%s' is not [ipv6]:port", tok);
				return -1;
			}
			*rb = '\0';
			addr = tok + 1;
			colon = rb[1] ? rb + 1 : NULL;
		} else if (colon && strchr(colon + 1, ':')) {
			colon = NULL;
		}
		if (colon) {
			char *end;
			unsigned long port;
			*colon = '\0';
			errno = 0;
			port = strtoul(colon + 1, &end, 10);
			if (errno || end == colon + 1 || *end || port == 0 || port > 65535) {
				snprintf(err, errlen, "'%s' is not a port (1..65535)", colon + 1);
				return -1;
			}
			out[n].port = (uint16_t)port;
		}
		if (addr != tok || strchr(addr, ':')) {
			if (inet_pton(AF_INET6, addr, &a6) != 1 || IN6_IS_ADDR_UNSPECIFIED(&a6) ||
			    IN6_IS_ADDR_MULTICAST(&a6) || IN6_IS_ADDR_V4MAPPED(&a6)) {
				snprintf(err, errlen, "'%s' is not an IPv6 unicast address", addr);
				return -1;
			}
			out[n++].addr = net_addr_v6(a6.s6_addr);
			continue;
		}
		if (inet_pton(AF_INET, tok, &a) != 1 || a.s_addr == 0 || a.s_addr == INADDR_BROADCAST) {
			snprintf(err, errlen, "'%s' is not an IPv4 or IPv6 address", tok);
			return -1;
		}
		out[n++].addr = net_addr_v4(a.s_addr);
	}
	if (n == 0) {
		snprintf(err, errlen, "no server (ip[:port], comma-separated)");
		return -1;
	}
	return (int)n;
}

/* The lookup key: lowercased, without the trailing dot. 0 or -EINVAL. */
static int canon_name(const char *name, char out[DNS_NAME_MAX + 1])
{
	size_t len = name ? strnlen(name, DNS_NAME_MAX + 2) : 0, label = 0;

	if (len && name[len - 1] == '.')
		len--;
	if (len == 0 || len > DNS_NAME_MAX)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		char ch = name[i];
		if (ch == '.') {
			if (label == 0)
				return -EINVAL;
			label = 0;
		} else if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
			   ch == '_') {
			label++;
		} else if (ch >= 'A' && ch <= 'Z') {
			ch = (char)(ch - 'A' + 'a');
			label++;
		} else {
			return -EINVAL;
		}
		if (label > 63)
			return -EINVAL;
		if (out)
			out[i] = ch;
	}
	if (label == 0)		/* "a.b.." */
		return -EINVAL;
	if (out)
		out[len] = '\0';
	return 0;
}

int dns_name_check(const char *name)
{
	return canon_name(name, NULL);
}

void dns_ptr_name(rte_be32_t addr, char *buf, size_t n)
{
	const uint8_t *b = (const uint8_t *)&addr;

	snprintf(buf, n, "%u.%u.%u.%u.in-addr.arpa", b[3], b[2], b[1], b[0]);
}

void dns_ptr_name6(const uint8_t addr[16], char *buf, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	char out[DNS_PTR6_NAME_MAX];
	size_t k = 0;

	for (int i = 15; i >= 0; i--) {
		out[k++] = hex[addr[i] & 0xf];
		out[k++] = '.';
		out[k++] = hex[addr[i] >> 4];
		out[k++] = '.';
	}
	memcpy(out + k, "ip6.arpa", 9);
	snprintf(buf, n, "%s", out);
}

static uint32_t key_hash(const char *name, enum dns_type t)
{
	uint32_t h = 2166136261u;

	for (const char *p = name; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	return (h ^ (uint32_t)t) * 16777619u;
}

static uint32_t pow2_at_least(uint64_t n, uint32_t lo, uint32_t hi)
{
	uint32_t v = lo;

	while (v < n && v < hi)
		v <<= 1;
	return v;
}

/* RFC 2181 section 8: a TTL with the top bit set means zero. */
static uint32_t ttl_sane(uint32_t t)
{
	return t & 0x80000000u ? 0 : t;
}

static void set_why(struct dns_result *res, const char *name, enum dns_type t, const char *text)
{
	char buf[DNS_NAME_MAX + 200];

	size_t n;

	snprintf(buf, sizeof(buf), "%s/%s: %s", name, dns_type_name(t), text);
	n = strnlen(buf, sizeof(res->why) - 1);	/* cut to fit */
	memcpy(res->why, buf, n);
	res->why[n] = '\0';
}

/* ---- the cache ---- */

static size_t packed_len(const struct dns_result *res)
{
	size_t len = 0;

	if (res->status != DNS_OK)
		return 0;
	switch (res->type) {
	case DNS_T_MX:
		for (unsigned i = 0; i < res->n; i++)
			len += 2 + strlen(res->mx[i].host) + 1;
		return len;
	case DNS_T_A:
		return 4 * (size_t)res->n;
	case DNS_T_AAAA:
		return 16 * (size_t)res->n;
	case DNS_T_PTR:
		return strlen(res->name) + 1;
	}
	return 0;
}

static void pack(const struct dns_result *res, uint8_t *d)
{
	if (res->status != DNS_OK)
		return;
	switch (res->type) {
	case DNS_T_MX:
		for (unsigned i = 0; i < res->n; i++) {
			size_t hl = strlen(res->mx[i].host) + 1;
			memcpy(d, &res->mx[i].pref, 2);
			memcpy(d + 2, res->mx[i].host, hl);
			d += 2 + hl;
		}
		break;
	case DNS_T_A:
		memcpy(d, res->a, 4 * (size_t)res->n);
		break;
	case DNS_T_AAAA:
		memcpy(d, res->aaaa, 16 * (size_t)res->n);
		break;
	case DNS_T_PTR:
		memcpy(d, res->name, strlen(res->name) + 1);
		break;
	}
}

static void negative_why(struct dns_result *res, const char *name)
{
	if (res->status == DNS_NXDOMAIN)
		set_why(res, name, res->type, "no such domain (NXDOMAIN)");
	else
		set_why(res, name, res->type, "no record of this type (NODATA)");
}

static void unpack(const struct centry *e, struct dns_result *res, uint64_t now_ms)
{
	const uint8_t *d = (const uint8_t *)e->name + strlen(e->name) + 1;

	memset(res, 0, offsetof(struct dns_result, mx));
	res->status = (enum dns_status)e->status;
	res->type = (enum dns_type)e->type;
	res->ttl = (uint32_t)((e->expires_ms - now_ms + 999) / 1000);
	res->n = e->n;
	res->why[0] = '\0';
	if (res->status != DNS_OK) {
		negative_why(res, e->name);
		return;
	}
	switch (res->type) {
	case DNS_T_MX:
		for (unsigned i = 0; i < e->n; i++) {
			size_t hl;
			memcpy(&res->mx[i].pref, d, 2);
			hl = strlen((const char *)d + 2) + 1;
			memcpy(res->mx[i].host, d + 2, hl);
			d += 2 + hl;
		}
		break;
	case DNS_T_A:
		memcpy(res->a, d, 4 * (size_t)e->n);
		break;
	case DNS_T_AAAA:
		memcpy(res->aaaa, d, 16 * (size_t)e->n);
		break;
	case DNS_T_PTR:
		snprintf(res->name, sizeof(res->name), "%s", (const char *)d);
		break;
	}
}

static struct centry *cache_find(struct dns_resolver *r, const char *name, enum dns_type t,
				 uint32_t h)
{
	for (struct centry *e = r->ctab[h & r->cmask]; e; e = e->hnext)
		if (e->hash == h && e->type == t && strcmp(e->name, name) == 0)
			return e;
	return NULL;
}

static void lru_unlink(struct dns_resolver *r, struct centry *e)
{
	if (e->lprev)
		e->lprev->lnext = e->lnext;
	else
		r->lru_head = e->lnext;
	if (e->lnext)
		e->lnext->lprev = e->lprev;
	else
		r->lru_tail = e->lprev;
	e->lprev = e->lnext = NULL;
}

static void lru_push_head(struct dns_resolver *r, struct centry *e)
{
	e->lprev = NULL;
	e->lnext = r->lru_head;
	if (r->lru_head)
		r->lru_head->lprev = e;
	r->lru_head = e;
	if (!r->lru_tail)
		r->lru_tail = e;
}

static void cache_remove(struct dns_resolver *r, struct centry *e)
{
	struct centry **pp = &r->ctab[e->hash & r->cmask];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	lru_unlink(r, e);
	r->centries--;
	r->cbytes -= e->bytes;
	free(e);
}

static void cache_put(struct dns_resolver *r, const char *name, const struct dns_result *res,
		      uint32_t ttl_s)
{
	size_t nlen = strlen(name) + 1, dlen = packed_len(res);
	size_t bytes = sizeof(struct centry) + nlen + dlen;
	uint32_t h = key_hash(name, res->type);
	struct centry *e = cache_find(r, name, res->type, h);

	if (e)
		cache_remove(r, e);
	if (bytes > r->conf.cache_bytes || dlen > UINT16_MAX) {
		r->st.cache_too_big++;
		return;
	}
	while (r->lru_tail && (r->centries >= r->conf.cache_entries ||
			       r->cbytes + bytes > r->conf.cache_bytes)) {
		cache_remove(r, r->lru_tail);
		r->st.cache_evictions++;
	}
	e = malloc(bytes);
	if (!e)
		return;
	e->expires_ms = r->now_ms + (uint64_t)ttl_s * 1000;
	e->bytes = bytes;
	e->hash = h;
	e->data_len = (uint16_t)dlen;
	e->type = (uint8_t)res->type;
	e->status = (uint8_t)res->status;
	e->n = (uint8_t)res->n;
	memcpy(e->name, name, nlen);
	pack(res, (uint8_t *)e->name + nlen);
	e->hnext = r->ctab[h & r->cmask];
	r->ctab[h & r->cmask] = e;
	lru_push_head(r, e);
	r->centries++;
	r->cbytes += bytes;
	r->st.cache_inserts++;
}

/* Drop expired entries from a few buckets, resuming where the last call stopped. */
static void cache_sweep(struct dns_resolver *r)
{
	for (unsigned i = 0; i < DNS_SWEEP_BUCKETS && i <= r->cmask; i++) {
		struct centry *e = r->ctab[r->sweep & r->cmask], *next;
		for (; e; e = next) {
			next = e->hnext;
			if (e->expires_ms <= r->now_ms) {
				cache_remove(r, e);
				r->st.cache_expired++;
			}
		}
		r->sweep++;
	}
}

/* ---- waiters and queries in flight ---- */

static struct waiter *waiter_get(struct dns_resolver *r, dns_cb cb, void *user)
{
	struct waiter *w = r->wfree;

	if (!w)
		return NULL;
	r->wfree = w->next;
	w->next = NULL;
	w->cb = cb;
	w->user = user;
	r->nwaiters++;
	return w;
}

static void waiter_put(struct dns_resolver *r, struct waiter *w)
{
	w->cb = NULL;
	w->next = r->wfree;
	r->wfree = w;
	r->nwaiters--;
}

static struct pending *pending_find(struct dns_resolver *r, const char *name, enum dns_type t,
				    uint32_t h)
{
	for (struct pending *p = r->ptab[h & r->pmask]; p; p = p->hnext)
		if (p->hash == h && p->type == t && strcmp(p->name, name) == 0)
			return p;
	return NULL;
}

static void pending_unlink(struct dns_resolver *r, struct pending *p)
{
	struct pending **pp = &r->ptab[p->hash & r->pmask];

	if (!p->in_table)
		return;
	while (*pp != p)
		pp = &(*pp)->hnext;
	*pp = p->hnext;
	if (p->fprev)
		p->fprev->fnext = p->fnext;
	else
		r->fifo_head = p->fnext;
	if (p->fnext)
		p->fnext->fprev = p->fprev;
	else
		r->fifo_tail = p->fprev;
	p->in_table = false;
}

/* Free p once nobody holds it (c-ares called back, handed out). */
static void pending_release(struct dns_resolver *r, struct pending *p)
{
	if (p->cares_owned || p->queued || p->in_table)
		return;
	while (p->wfirst) {
		struct waiter *w = p->wfirst;
		p->wfirst = w->next;
		waiter_put(r, w);
	}
	r->npending--;
	free(p);
}

/* p has its result: out of the table (new lookups use the cache or a new
 * query), onto the done list for dns_poll to hand out. */
static void pending_done(struct dns_resolver *r, struct pending *p)
{
	pending_unlink(r, p);
	p->queued = true;
	p->dnext = NULL;
	if (r->done_tail)
		r->done_tail->dnext = p;
	else
		r->done_head = p;
	r->done_tail = p;
}

/* ---- the answer: what c-ares parsed, and the TTLs ---- */

/*
 * The RR headers of a reply (names skipped with ares_expand_name, the
 * fixed fields with ares_dns.h's macros; no record data is read): the
 * smallest TTL of the answer section's records of the question's type and
 * CNAMEs, and the TTL of the authority section's SOA. Stops at the first
 * thing out of bounds, keeping what it had.
 */
struct rr_walk {
	bool an_seen;		/* an answer RR of the type (or a CNAME) was found */
	uint32_t an_ttl;
	bool soa_seen;
	uint32_t soa_ttl;
};

static const unsigned char *skip_name(const unsigned char *p, const unsigned char *abuf, int alen)
{
	char *s;
	long len;

	if (ares_expand_name(p, abuf, alen, &s, &len) != ARES_SUCCESS)
		return NULL;
	ares_free_string(s);
	return p + len;
}

static void walk_reply(const unsigned char *abuf, int alen, int qtype, struct rr_walk *w)
{
	const unsigned char *p = abuf + DNS_HDR, *end = abuf + alen;
	unsigned qd, an, ns;

	memset(w, 0, sizeof(*w));
	if (alen < DNS_HDR)
		return;
	qd = DNS_HEADER_QDCOUNT(abuf);
	an = DNS_HEADER_ANCOUNT(abuf);
	ns = DNS_HEADER_NSCOUNT(abuf);
	for (unsigned i = 0; i < qd; i++) {
		p = skip_name(p, abuf, alen);
		if (!p || end - p < DNS_QFIX)
			return;
		p += DNS_QFIX;
	}
	for (unsigned i = 0; i < an + ns; i++) {
		unsigned type, len;
		uint32_t ttl;

		p = skip_name(p, abuf, alen);
		if (!p || end - p < DNS_RRFIX)
			return;
		type = DNS_RR_TYPE(p);
		ttl = ttl_sane(DNS_RR_TTL(p));
		len = DNS_RR_LEN(p);
		p += DNS_RRFIX;
		if (end - p < (long)len)
			return;
		p += len;
		if (i < an && (type == (unsigned)qtype || type == ns_t_cname)) {
			if (!w->an_seen || ttl < w->an_ttl)
				w->an_ttl = ttl;
			w->an_seen = true;
		} else if (i >= an && type == ns_t_soa && !w->soa_seen) {
			w->soa_ttl = ttl;
			w->soa_seen = true;
		}
	}
}

/*
 * The SOA MINIMUM of a negative answer. c-ares 1.18's ares_parse_soa_reply
 * looks in the answer section only, so it parses a copy whose header counts
 * the authority records as answers (the records follow each other on the
 * wire, compression pointers stay valid).
 */
static int soa_minimum(const unsigned char *abuf, int alen, uint32_t *min)
{
	struct ares_soa_reply *soa = NULL;
	unsigned an, ns;
	unsigned char *copy;
	int rc;

	if (alen < DNS_HDR)
		return -1;
	an = DNS_HEADER_ANCOUNT(abuf);
	ns = DNS_HEADER_NSCOUNT(abuf);
	if (ns == 0 || an + ns > 0xffff)
		return -1;
	copy = malloc((size_t)alen);
	if (!copy)
		return -1;
	memcpy(copy, abuf, (size_t)alen);
	DNS_HEADER_SET_ANCOUNT(copy, an + ns);
	DNS_HEADER_SET_NSCOUNT(copy, 0);
	DNS_HEADER_SET_ARCOUNT(copy, 0);
	rc = ares_parse_soa_reply(copy, alen, &soa);
	free(copy);
	if (rc != ARES_SUCCESS || !soa)
		return -1;
	*min = ttl_sane(soa->minttl);
	ares_free_data(soa);
	return 0;
}

/* Keep at most DNS_MX_MAX records: those of the lowest preferences, in answer order. */
static int fill_mx(struct dns_resolver *r, const unsigned char *abuf, int alen,
		   struct dns_result *res)
{
	struct ares_mx_reply *head = NULL;
	unsigned idx[DNS_MX_MAX], seen = 0, n = 0;
	const struct ares_mx_reply *keep[DNS_MX_MAX];
	int rc = ares_parse_mx_reply(abuf, alen, &head);

	if (rc != ARES_SUCCESS)
		return rc;
	if (!head)	/* only CNAMEs: the chain ends in a name without MX */
		return ARES_ENODATA;
	for (const struct ares_mx_reply *m = head; m; m = m->next, seen++) {
		unsigned worst = 0;
		if (strlen(m->host) >= sizeof(res->mx[0].host))
			continue;
		if (n < DNS_MX_MAX) {
			keep[n] = m;
			idx[n++] = seen;
			continue;
		}
		for (unsigned i = 1; i < n; i++)	/* the highest preference, latest */
			if (keep[i]->priority >= keep[worst]->priority)
				worst = i;
		r->st.mx_truncated++;
		if (m->priority < keep[worst]->priority) {
			memmove(&keep[worst], &keep[worst + 1], (n - worst - 1) * sizeof(keep[0]));
			memmove(&idx[worst], &idx[worst + 1], (n - worst - 1) * sizeof(idx[0]));
			keep[n - 1] = m;
			idx[n - 1] = seen;
		}
	}
	for (unsigned i = 0; i < n; i++) {	/* answer order: idx is increasing */
		res->mx[i].pref = keep[i]->priority;
		memcpy(res->mx[i].host, keep[i]->host, strlen(keep[i]->host) + 1);
	}
	res->n = n;
	ares_free_data(head);
	return n ? ARES_SUCCESS : ARES_EBADRESP;
}

static int fill_a(const unsigned char *abuf, int alen, struct dns_result *res)
{
	struct ares_addrttl at[DNS_A_MAX];
	int n = DNS_A_MAX;
	int rc = ares_parse_a_reply(abuf, alen, NULL, at, &n);

	if (rc != ARES_SUCCESS)
		return rc;
	if (n <= 0)
		return ARES_ENODATA;
	for (int i = 0; i < n; i++)
		res->a[i] = at[i].ipaddr.s_addr;
	res->n = (unsigned)n;
	return ARES_SUCCESS;
}

static int fill_aaaa(const unsigned char *abuf, int alen, struct dns_result *res)
{
	struct ares_addr6ttl at[DNS_A_MAX];
	int n = DNS_A_MAX;
	int rc = ares_parse_aaaa_reply(abuf, alen, NULL, at, &n);

	if (rc != ARES_SUCCESS)
		return rc;
	if (n <= 0)
		return ARES_ENODATA;
	for (int i = 0; i < n; i++)
		memcpy(res->aaaa[i], &at[i].ip6addr, 16);
	res->n = (unsigned)n;
	return ARES_SUCCESS;
}

static int fill_ptr(const unsigned char *abuf, int alen, struct dns_result *res)
{
	struct hostent *he = NULL;
	static const uint8_t any[4];
	int rc = ares_parse_ptr_reply(abuf, alen, any, 4, AF_INET, &he);

	if (rc != ARES_SUCCESS)
		return rc;
	if (!he->h_name || strlen(he->h_name) >= sizeof(res->name)) {
		ares_free_hostent(he);
		return ARES_EBADRESP;
	}
	memcpy(res->name, he->h_name, strlen(he->h_name) + 1);
	res->n = 1;
	ares_free_hostent(he);
	return ARES_SUCCESS;
}

static uint32_t clamp32(uint32_t v, uint32_t lo, uint32_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/*
 * Turn what c-ares gave (status, reply) into res. Returns the seconds to
 * cache it for (0: not at all).
 */
static uint32_t build_result(struct dns_resolver *r, const char *name, enum dns_type t,
			     int status, const unsigned char *abuf, int alen,
			     struct dns_result *res)
{
	const struct dns_conf *c = &r->conf;
	struct rr_walk w = { 0 };
	uint32_t min;
	int rc;

	memset(res, 0, offsetof(struct dns_result, mx));
	res->type = t;
	res->why[0] = '\0';
	if (abuf && alen > 0)
		walk_reply(abuf, alen, (int)t, &w);
	if (status == ARES_SUCCESS) {
		rc = t == DNS_T_MX ? fill_mx(r, abuf, alen, res)
		   : t == DNS_T_A ? fill_a(abuf, alen, res)
		   : t == DNS_T_AAAA ? fill_aaaa(abuf, alen, res) : fill_ptr(abuf, alen, res);
		if (rc == ARES_SUCCESS) {
			res->status = DNS_OK;
			res->ttl = clamp32(w.an_seen ? w.an_ttl : 0, c->ttl_min, c->ttl_max);
			r->st.answers_ok++;
			return res->ttl;
		}
		res->n = 0;
		if (rc != ARES_ENODATA) {
			res->status = DNS_TEMPFAIL;
			set_why(res, name, t, "malformed reply");
			r->st.answers_badreply++;
			return 0;
		}
		status = ARES_ENODATA;	/* e.g. a CNAME chain ending in no record of the type */
	}
	switch (status) {
	case ARES_ENODATA:
	case ARES_ENOTFOUND:
		res->status = status == ARES_ENOTFOUND ? DNS_NXDOMAIN : DNS_NODATA;
		negative_why(res, name);
		if (res->status == DNS_NXDOMAIN)
			r->st.answers_nxdomain++;
		else
			r->st.answers_nodata++;
		/* RFC 2308 section 5: min(SOA TTL, SOA MINIMUM); no SOA, no caching */
		if (w.soa_seen && abuf && soa_minimum(abuf, alen, &min) == 0) {
			uint32_t ttl = w.soa_ttl < min ? w.soa_ttl : min;
			if (ttl < c->ttl_min)
				ttl = c->ttl_min;
			res->ttl = ttl > c->neg_ttl_max ? c->neg_ttl_max : ttl;
		}
		return res->ttl;
	case ARES_EBADNAME:
		res->status = DNS_BADNAME;
		set_why(res, name, t, "not a valid name");
		return 0;
	case ARES_ENOMEM:
		res->status = DNS_NOMEM;
		set_why(res, name, t, "out of memory");
		return 0;
	case ARES_ESERVFAIL:
		set_why(res, name, t, "server failure (SERVFAIL)");
		break;
	case ARES_EREFUSED:
		set_why(res, name, t, "query refused (REFUSED)");
		break;
	case ARES_ETIMEOUT:
		set_why(res, name, t, "no answer from the DNS servers (timed out)");
		break;
	case ARES_ECONNREFUSED:
		/* c-ares 1.18 ends here after SERVFAIL/REFUSED from every try, too */
		set_why(res, name, t, "no usable answer from the DNS servers "
			"(SERVFAIL, REFUSED or unreachable)");
		break;
	case ARES_EFORMERR:
	case ARES_EBADRESP:
		r->st.answers_badreply++;
		set_why(res, name, t, "malformed reply");
		break;
	default:
		set_why(res, name, t, ares_strerror(status));
		break;
	}
	res->status = DNS_TEMPFAIL;
	r->st.answers_tempfail++;
	return 0;
}

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct pending *p = arg;
	struct dns_resolver *r = p->r;
	struct dns_result late;
	struct dns_result *res;
	uint32_t ttl;

	p->cares_owned = false;
	if (r->destroying) {	/* ARES_EDESTRUCTION from dns_destroy */
		pending_unlink(r, p);
		pending_release(r, p);
		return;
	}
	/* Answered after our deadline gave its waiters TEMPFAIL: cache it still. */
	res = p->in_table ? &p->res : &late;
	if (!p->in_table)
		r->st.late_answers++;
	ttl = build_result(r, p->name, p->type, status, abuf, alen, res);
	if (ttl > 0)
		cache_put(r, p->name, res, ttl);
	if (p->in_table)
		pending_done(r, p);
	else
		pending_release(r, p);
}

/* ---- c-ares' socket functions, over the seam ---- */

static struct dsock *sock_of_fd(struct dns_resolver *r, ares_socket_t fd)
{
	if (fd < DNS_FD_BASE)
		return NULL;
	for (unsigned i = 0; i < DNS_SOCKS_MAX; i++)
		if (r->socks[i].used && r->socks[i].id == fd - DNS_FD_BASE)
			return &r->socks[i];
	return NULL;
}

static struct dsock *sock_of_id(struct dns_resolver *r, int id)
{
	for (unsigned i = 0; i < DNS_SOCKS_MAX; i++)
		if (r->socks[i].used && r->socks[i].id == id)
			return &r->socks[i];
	return NULL;
}

static ares_socket_t cs_socket(int af, int type, int proto, void *user)
{
	struct dns_resolver *r = user;
	struct dsock *s = NULL;
	int id;

	(void)proto;
	type &= 0xf;	/* no SOCK_NONBLOCK/SOCK_CLOEXEC meaning here */
	if ((af != AF_INET && af != AF_INET6) || (type != SOCK_DGRAM && type != SOCK_STREAM)) {
		errno = EAFNOSUPPORT;
		r->st.sock_open_failures++;
		return ARES_SOCKET_BAD;
	}
	for (unsigned i = 0; i < DNS_SOCKS_MAX && !s; i++)
		if (!r->socks[i].used)
			s = &r->socks[i];
	if (!s) {
		errno = EMFILE;
		r->st.sock_open_failures++;
		return ARES_SOCKET_BAD;
	}
	id = r->ops.open(r->ops.ctx, type);
	if (id < 0 || id >= INT32_MAX - DNS_FD_BASE) {
		if (id >= 0)
			r->ops.close(r->ops.ctx, id);
		errno = id < 0 ? -id : EMFILE;
		r->st.sock_open_failures++;
		return ARES_SOCKET_BAD;
	}
	memset(s, 0, sizeof(*s));
	s->used = true;
	s->id = id;
	s->type = type;
	r->st.sock_opens++;
	return DNS_FD_BASE + id;
}

static int cs_close(ares_socket_t fd, void *user)
{
	struct dns_resolver *r = user;
	struct dsock *s = sock_of_fd(r, fd);

	if (!s) {
		errno = EBADF;
		return -1;
	}
	for (unsigned i = 0; i < r->bl_n; i++) {	/* its queries go with it */
		struct dgram *d = &r->backlog[(r->bl_head + i) % r->conf.max_queries];
		if (d->id == s->id)
			d->id = -1;
	}
	r->ops.close(r->ops.ctx, s->id);
	s->used = false;
	r->st.sock_closes++;
	return 0;
}

static int cs_connect(ares_socket_t fd, const struct sockaddr *sa, ares_socklen_t len, void *user)
{
	struct dns_resolver *r = user;
	struct dsock *s = sock_of_fd(r, fd);
	const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;
	struct net_addr a;
	uint16_t port;
	int rc;

	if (!s) {
		errno = EBADF;
		return -1;
	}
	if (sa->sa_family == AF_INET && len >= (ares_socklen_t)sizeof(*sin)) {
		a = net_addr_v4(sin->sin_addr.s_addr);
		port = sin->sin_port;
	} else if (sa->sa_family == AF_INET6 && len >= (ares_socklen_t)sizeof(*sin6)) {
		a = net_addr_v6(sin6->sin6_addr.s6_addr);
		port = sin6->sin6_port;
	} else {
		errno = EAFNOSUPPORT;
		return -1;
	}
	rc = r->ops.connect(r->ops.ctx, s->id, &a, port);
	if (rc < 0) {
		errno = -rc;	/* -EINPROGRESS for TCP: c-ares waits for writable */
		return -1;
	}
	return 0;
}

static ares_ssize_t cs_recvfrom(ares_socket_t fd, void *buf, size_t len, int flags,
				struct sockaddr *from, ares_socklen_t *fromlen, void *user)
{
	struct dns_resolver *r = user;
	struct dsock *s = sock_of_fd(r, fd);
	struct net_addr addr;
	uint16_t port = 0;
	ssize_t n;

	(void)flags;
	if (!s) {
		errno = EBADF;
		return -1;
	}
	s->recv_calls++;
	memset(&addr, 0, sizeof(addr));
	n = r->ops.recv(r->ops.ctx, s->id, buf, len, &addr, &port);
	if (n < 0) {
		if (n == -EAGAIN)
			s->readable = false;
		errno = (int)-n;
		return -1;
	}
	/* c-ares matches the source against the server it asked */
	if (from && fromlen && addr.family == NET_AF_INET6 &&
	    *fromlen >= (ares_socklen_t)sizeof(struct sockaddr_in6)) {
		struct sockaddr_in6 sin6;
		memset(&sin6, 0, sizeof(sin6));
		sin6.sin6_family = AF_INET6;
		memcpy(sin6.sin6_addr.s6_addr, addr.v6, 16);
		sin6.sin6_port = port;
		memcpy(from, &sin6, sizeof(sin6));
		*fromlen = sizeof(sin6);
	} else if (from && fromlen && *fromlen >= (ares_socklen_t)sizeof(struct sockaddr_in)) {
		struct sockaddr_in sin;
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = addr.v4;
		sin.sin_port = port;
		memcpy(from, &sin, sizeof(sin));
		*fromlen = sizeof(sin);
	}
	return n;
}

/* Keep a datagram the socket refused; its length (taken), or -1/EAGAIN. */
static ares_ssize_t backlog_put(struct dns_resolver *r, struct dsock *s,
				const struct iovec *iov, int n)
{
	struct dgram *d;
	size_t len = 0;

	for (int i = 0; i < n; i++)
		len += iov[i].iov_len;
	if (r->bl_n == r->conf.max_queries || len > DNS_DGRAM_MAX) {
		r->st.udp_backlog_full++;
		errno = EAGAIN;
		return -1;
	}
	d = &r->backlog[(r->bl_head + r->bl_n++) % r->conf.max_queries];
	d->id = s->id;
	d->len = (uint16_t)len;
	len = 0;
	for (int i = 0; i < n; i++) {
		memcpy(d->buf + len, iov[i].iov_base, iov[i].iov_len);
		len += iov[i].iov_len;
	}
	r->st.udp_deferred++;
	return (ares_ssize_t)len;
}

/* Send what waits, in order, until the dataplane refuses again. */
static void backlog_flush(struct dns_resolver *r)
{
	while (r->bl_n) {
		struct dgram *d = &r->backlog[r->bl_head];
		struct iovec iov = { d->buf, d->len };
		ssize_t sent = 0;

		if (d->id >= 0 && sock_of_id(r, d->id)) {	/* else closed since: dropped */
			sent = r->ops.send(r->ops.ctx, d->id, &iov, 1);
			if (sent == -EAGAIN)
				return;
		}
		r->bl_head = (r->bl_head + 1) % r->conf.max_queries;
		r->bl_n--;
	}
}

static ares_ssize_t cs_sendv(ares_socket_t fd, const struct iovec *iov, int n, void *user)
{
	struct dns_resolver *r = user;
	struct dsock *s = sock_of_fd(r, fd);
	ssize_t sent;

	if (!s) {
		errno = EBADF;
		return -1;
	}
	s->send_calls++;
	if (s->type == SOCK_DGRAM && r->bl_n)
		sent = -EAGAIN;		/* keep the order: after those waiting */
	else
		sent = r->ops.send(r->ops.ctx, s->id, iov, n);
	if (sent == -EAGAIN && s->type == SOCK_DGRAM)
		return backlog_put(r, s, iov, n);
	if (sent < 0) {
		if (sent == -EAGAIN)
			s->writable = false;
		errno = (int)-sent;
		return -1;
	}
	return sent;
}

/* c-ares says what it waits for on a socket: write interest = TCP data queued. */
static void cs_state(void *user, ares_socket_t fd, int readable, int writable)
{
	struct dns_resolver *r = user;
	struct dsock *s = sock_of_fd(r, fd);

	(void)readable;
	if (s)
		s->want_write = writable != 0;
}

static void on_sock_event(void *user, int id, unsigned what)
{
	struct dns_resolver *r = user;
	struct dsock *s = sock_of_id(r, id);

	r->st.sock_events++;
	if (!s) {
		r->st.sock_stale_events++;	/* closed since */
		return;
	}
	if (what & (DNS_SOCK_READABLE | DNS_SOCK_ERROR))
		s->readable = true;
	if (what & (DNS_SOCK_WRITABLE | DNS_SOCK_ERROR))
		s->writable = true;
}

/* Call c-ares for every socket ready, as long as it keeps reading or writing. */
static void drive_sockets(struct dns_resolver *r)
{
	for (unsigned round = 0; round < DNS_DRIVE_ROUNDS; round++) {
		bool progress = false;

		for (unsigned i = 0; i < DNS_SOCKS_MAX; i++) {
			struct dsock *s = &r->socks[i];
			int id = s->id;
			unsigned calls;

			if (s->used && s->writable && s->want_write) {
				calls = s->send_calls;
				ares_process_fd(r->channel, ARES_SOCKET_BAD, DNS_FD_BASE + id);
				if (s->used && s->id == id && s->send_calls != calls)
					progress = true;
			}
			if (s->used && s->id == id && s->readable) {
				calls = s->recv_calls;
				ares_process_fd(r->channel, DNS_FD_BASE + id, ARES_SOCKET_BAD);
				if (s->used && s->id == id) {
					if (s->recv_calls == calls)
						s->readable = false;	/* c-ares is not reading it */
					else
						progress = true;
				}
			}
		}
		if (!progress)
			break;
	}
}

/* ---- the API ---- */

struct dns_resolver *dns_create_ops(const struct dns_conf *c, const struct dns_sock_ops *ops,
				    uint64_t now_ms)
{
	struct dns_server srv[DNS_SERVERS_MAX];
	struct ares_addr_port_node nodes[DNS_SERVERS_MAX];
	struct ares_options o;
	struct dns_resolver *r;
	char err[128], lookups[] = "b";
	int ns, mask, rc;

	ns = dns_servers_parse(c->servers, srv, DNS_SERVERS_MAX, err, sizeof(err));
	if (ns < 0) {
		log_err("dns: servers '%s': %s", c->servers, err);
		return NULL;
	}
	if (!ops || !ops->open || !ops->connect || !ops->send || !ops->recv || !ops->close ||
	    !ops->poll || c->timeout_ms == 0 || c->attempts == 0 || c->cache_entries == 0 ||
	    c->cache_bytes == 0 || c->max_queries == 0 || c->max_waiters == 0 ||
	    c->ttl_min > c->ttl_max) {
		log_err("dns: resolver configuration refused (zero bound or ttl_min > ttl_max)");
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->conf = *c;
	r->ops = *ops;
	r->now_ms = now_ms;
	r->nservers = (unsigned)ns;
	r->budget_ms = dns_query_budget_ms(c, (unsigned)ns);
	r->cmask = pow2_at_least(c->cache_entries, 16, 1u << 20) - 1;
	r->pmask = pow2_at_least(2ull * c->max_queries, 16, 1u << 20) - 1;
	r->ctab = calloc((size_t)r->cmask + 1, sizeof(*r->ctab));
	r->ptab = calloc((size_t)r->pmask + 1, sizeof(*r->ptab));
	r->wpool = calloc(c->max_waiters, sizeof(*r->wpool));
	r->backlog = calloc(c->max_queries, sizeof(*r->backlog));
	if (!r->ctab || !r->ptab || !r->wpool || !r->backlog)
		goto fail;
	for (unsigned i = 0; i < c->max_waiters; i++) {
		r->wpool[i].next = r->wfree;
		r->wfree = &r->wpool[i];
	}

	/* Every option that would otherwise come from /etc/resolv.conf. */
	memset(&o, 0, sizeof(o));
	o.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES | (c->edns_payload ? ARES_FLAG_EDNS : 0);
	o.timeout = (int)c->timeout_ms;
	o.tries = (int)c->attempts;
	o.ndots = 1;
	o.udp_port = 53;
	o.tcp_port = 53;
	o.servers = NULL;
	o.nservers = 0;
	o.domains = NULL;
	o.ndomains = 0;
	o.lookups = lookups;
	o.sortlist = NULL;
	o.nsort = 0;
	o.sock_state_cb = cs_state;
	o.sock_state_cb_data = r;
	o.ednspsz = (int)c->edns_payload;
	mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_NDOTS |
	       ARES_OPT_UDP_PORT | ARES_OPT_TCP_PORT | ARES_OPT_SERVERS | ARES_OPT_DOMAINS |
	       ARES_OPT_LOOKUPS | ARES_OPT_SORTLIST | ARES_OPT_SOCK_STATE_CB | ARES_OPT_NOROTATE |
	       (c->edns_payload ? ARES_OPT_EDNSPSZ : 0);
	rc = ares_init_options(&r->channel, &o, mask);
	if (rc != ARES_SUCCESS) {
		log_err("dns: c-ares: %s", ares_strerror(rc));
		r->channel = NULL;
		goto fail;
	}
	r->sockf.asocket = cs_socket;
	r->sockf.aclose = cs_close;
	r->sockf.aconnect = cs_connect;
	r->sockf.arecvfrom = cs_recvfrom;
	r->sockf.asendv = cs_sendv;
	ares_set_socket_functions(r->channel, &r->sockf, r);
	for (int i = 0; i < ns; i++) {
		memset(&nodes[i], 0, sizeof(nodes[i]));
		nodes[i].next = i + 1 < ns ? &nodes[i + 1] : NULL;
		if (net_addr_is_v6(&srv[i].addr)) {
			nodes[i].family = AF_INET6;
			memcpy(&nodes[i].addr.addr6, srv[i].addr.v6, 16);
		} else {
			nodes[i].family = AF_INET;
			nodes[i].addr.addr4.s_addr = srv[i].addr.v4;
		}
		nodes[i].udp_port = srv[i].port;
		nodes[i].tcp_port = srv[i].port;
	}
	rc = ares_set_servers_ports(r->channel, nodes);
	if (rc != ARES_SUCCESS) {
		log_err("dns: c-ares servers: %s", ares_strerror(rc));
		goto fail;
	}
	return r;
fail:
	dns_destroy(r);
	return NULL;
}

void dns_destroy(struct dns_resolver *r)
{
	struct pending *p;

	if (!r)
		return;
	r->destroying = true;
	if (r->channel)
		ares_destroy(r->channel);	/* on_answer(ARES_EDESTRUCTION) for each query */
	while ((p = r->fifo_head)) {		/* never given to c-ares (it failed to init) */
		p->cares_owned = false;
		pending_unlink(r, p);
		pending_release(r, p);
	}
	while ((p = r->done_head)) {
		r->done_head = p->dnext;
		p->queued = false;
		p->cares_owned = false;
		pending_release(r, p);
	}
	while (r->lru_head)
		cache_remove(r, r->lru_head);
	free(r->ctab);
	free(r->ptab);
	free(r->wpool);
	free(r->backlog);
	free(r);
}

static void answer_from_cache(struct dns_resolver *r, const struct centry *e, dns_cb cb, void *user)
{
	struct dns_result res;

	unpack(e, &res, r->now_ms);
	if (res.status == DNS_OK)
		r->st.cache_hits++;
	else
		r->st.cache_neg_hits++;
	cb(user, &res);
}

int dns_lookup(struct dns_resolver *r, const char *name, enum dns_type t, dns_cb cb, void *user)
{
	char key[DNS_NAME_MAX + 1];
	struct centry *e;
	struct pending *p;
	struct waiter *w;
	uint32_t h;

	r->st.lookups++;
	if (!cb || (t != DNS_T_A && t != DNS_T_AAAA && t != DNS_T_MX && t != DNS_T_PTR) ||
	    canon_name(name, key) < 0) {
		r->st.bad_names++;
		return -EINVAL;
	}
	h = key_hash(key, t);
	e = cache_find(r, key, t, h);
	if (e && e->expires_ms <= r->now_ms) {
		cache_remove(r, e);
		r->st.cache_expired++;
		e = NULL;
	}
	if (e) {
		lru_unlink(r, e);
		lru_push_head(r, e);
		answer_from_cache(r, e, cb, user);
		return 1;
	}
	p = pending_find(r, key, t, h);
	if (!p && r->npending >= r->conf.max_queries) {
		r->st.queries_full++;
		return -EAGAIN;
	}
	w = waiter_get(r, cb, user);
	if (!w) {
		r->st.waiters_full++;
		return -ENOBUFS;
	}
	if (p) {
		if (p->wlast)
			p->wlast->next = w;
		else
			p->wfirst = w;	/* all its waiters were cancelled */
		p->wlast = w;
		r->st.coalesced++;
		return 0;
	}
	r->st.cache_misses++;
	p = calloc(1, sizeof(*p));
	if (!p) {
		waiter_put(r, w);
		return -ENOMEM;
	}
	p->r = r;
	p->hash = h;
	p->type = t;
	memcpy(p->name, key, strlen(key) + 1);
	p->deadline_ms = r->now_ms + r->budget_ms;
	p->wfirst = p->wlast = w;
	p->hnext = r->ptab[h & r->pmask];
	r->ptab[h & r->pmask] = p;
	p->fprev = r->fifo_tail;
	if (r->fifo_tail)
		r->fifo_tail->fnext = p;
	else
		r->fifo_head = p;
	r->fifo_tail = p;
	p->in_table = true;
	p->cares_owned = true;
	r->npending++;
	r->st.queries++;
	/* May call on_answer at once (no socket, bad name): it only queues. */
	ares_query(r->channel, key, ns_c_in, (int)t, on_answer, p);
	return 0;
}

/* Hand out the answers queued before this call (not those queued by the
 * callbacks themselves: they wait for the next poll). */
static void deliver(struct dns_resolver *r)
{
	struct pending *last = r->done_tail, *p;

	while (last && (p = r->done_head)) {
		r->done_head = p->dnext;
		if (!r->done_head)
			r->done_tail = NULL;
		p->queued = false;
		r->delivering = p->wfirst;
		p->wfirst = p->wlast = NULL;
		while (r->delivering) {
			struct waiter *w = r->delivering;
			dns_cb cb = w->cb;
			void *user = w->user;

			r->delivering = w->next;
			waiter_put(r, w);
			cb(user, &p->res);
		}
		pending_release(r, p);
		if (p == last)
			break;
	}
}

void dns_poll(struct dns_resolver *r, uint64_t now_ms)
{
	if (now_ms > r->now_ms)
		r->now_ms = now_ms;
	r->ops.poll(r->ops.ctx, on_sock_event, r);
	backlog_flush(r);
	drive_sockets(r);
	backlog_flush(r);
	ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);	/* c-ares' timeouts */
	while (r->fifo_head && r->fifo_head->deadline_ms <= r->now_ms) {
		struct pending *p = r->fifo_head;

		memset(&p->res, 0, offsetof(struct dns_result, mx));
		p->res.type = p->type;
		p->res.status = DNS_TEMPFAIL;
		set_why(&p->res, p->name, p->type, "no answer from the DNS servers (timed out)");
		r->st.deadlines++;
		r->st.answers_tempfail++;
		pending_done(r, p);	/* c-ares keeps it until it calls back */
	}
	deliver(r);
	cache_sweep(r);
}

static unsigned cancel_list(struct dns_resolver *r, struct waiter **head, struct waiter **tail,
			    dns_cb cb, void *user)
{
	unsigned n = 0;
	struct waiter *prev = NULL;

	for (struct waiter **pp = head; *pp;) {
		struct waiter *w = *pp;
		if (w->cb == cb && w->user == user) {
			*pp = w->next;
			if (tail && *tail == w)
				*tail = prev;
			waiter_put(r, w);
			n++;
		} else {
			prev = w;
			pp = &w->next;
		}
	}
	return n;
}

unsigned dns_cancel(struct dns_resolver *r, dns_cb cb, void *user)
{
	unsigned n = cancel_list(r, &r->delivering, NULL, cb, user);

	for (struct pending *p = r->fifo_head; p; p = p->fnext)
		n += cancel_list(r, &p->wfirst, &p->wlast, cb, user);
	for (struct pending *p = r->done_head; p; p = p->dnext)
		n += cancel_list(r, &p->wfirst, &p->wlast, cb, user);
	r->st.cancelled += n;
	return n;
}

void dns_stats_get(const struct dns_resolver *r, struct dns_stats *out)
{
	*out = r->st;
	out->cache_entries = r->centries;
	out->cache_bytes = r->cbytes;
	out->queries_in_flight = r->npending;
	out->waiters = r->nwaiters;
}
