/*
 * route.c - static routes, the relayhost, and MX routing. See route.h.
 *
 * Data structures:
 *  - the static routes: a chained hash table of struct rentry, keyed by
 *    the domain as route_domain_parse writes it (".example.com" for a
 *    wildcard), each with its parsed spec.
 *  - a job per route_lookup in progress: the spec it started with (its
 *    targets in the order they will be tried), and per target the state of
 *    its lookups: the MX lookup (MX targets) and up to DNS_MX_MAX
 *    candidates (an MX host, the implicit MX, or a [host]) each with its A
 *    lookup. job->pending counts the lookups outstanding, plus one while
 *    route_lookup is still starting them, so an answer from the cache
 *    (delivered before dns_lookup returns) cannot finish the job early.
 *    When it drops to zero the result is assembled and handed out.
 * The RNG (xorshift64*) is the router's, seeded at create: the same seed
 * and the same lookups give the same order.
 */
#include "control/route.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

const char *const route_stat_names[] = { ROUTE_STATS(STATS_NAME) };
const unsigned route_stat_count = STATS_COUNT(route_stat_names);

struct rentry {
	struct rentry *next;
	uint32_t hash;
	char key[DNS_NAME_MAX + 2];
	bool runtime;			/* set by route_set (an operator, or the
					 * cluster): kept by route_replace */
	bool has_file;			/* runtime over a routes file's: ... */
	struct route_spec file;		/* ... this one, back at route_clear */
	struct route_spec spec;
};

struct job;

/* An MX host (or the implicit MX, or a [host]) and its addresses. */
struct cand {
	struct job *job;
	uint8_t ti;			/* its target */
	bool self;			/* it is us (name or address) */
	uint8_t waiting;		/* its A/AAAA lookups outstanding */
	uint8_t answered;		/* its A/AAAA lookups answered */
	uint16_t pref;
	enum dns_status status;		/* of its lookups: a failure beats OK
					 * beats none (see cand_status) */
	unsigned naddr;
	struct net_addr addr[2 * DNS_A_MAX];	/* A then AAAA answers */
	char name[256];
};

struct tstate {
	struct job *job;
	uint8_t ti;
	bool waiting;			/* its MX lookup is outstanding */
	bool implicit;			/* no MX RRset: the host's own A records */
	enum route_status fail;		/* ROUTE_OK, or why this target has no hop */
	char dsn[10];
	char why[200];
	unsigned ncand;
	struct cand cand[DNS_MX_MAX];
};

struct job {
	struct job *prev, *next;	/* the router's jobs in progress */
	struct router *rt;
	route_cb cb;
	void *user;
	bool is_static;			/* static route or relayhost: failures are TEMP */
	unsigned pending;
	char domain[DNS_NAME_MAX + 1];
	char dest[ROUTE_DEST_MAX];	/* route_result.dest */
	struct route_spec spec;
	struct tstate t[ROUTE_TARGETS_MAX];
};

struct router {
	struct route_conf conf;
	struct dns_resolver *dns;
	uint64_t rng;
	struct route_spec relay;	/* relay.n == 0: none */
	struct rentry **tab;
	uint32_t mask;
	unsigned nroutes, njobs;
	struct job *jobs;
	struct route_stats st;
};

void route_conf_default(struct route_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->mx_address_limit = 5;
	c->port = 25;
	c->tls = ROUTE_TLS_MAY;
	c->max_routes = 10000;
	c->max_jobs = 1024;
	c->family = ROUTE_AF_IPV4;
	c->prefer = ROUTE_AF_ANY;
}

const char *route_af_name(enum route_af a)
{
	static const char *const n[] = { "any", "ipv4", "ipv6" };
	return (unsigned)a < 3 ? n[a] : "?";
}

int route_af_parse(const char *text, enum route_af *out)
{
	for (unsigned i = 0; i < 3; i++)
		if (strcmp(text, route_af_name((enum route_af)i)) == 0) {
			*out = (enum route_af)i;
			return 0;
		}
	return -1;
}

const char *route_tls_name(enum route_tls t)
{
	static const char *const n[] = { "none", "may", "encrypt", "verify" };
	return (unsigned)t < 4 ? n[t] : "?";
}

const char *route_status_name(enum route_status s)
{
	static const char *const n[] = { "ok", "temp", "perm", "discard", "hold" };
	return (unsigned)s < 5 ? n[s] : "?";
}

/* ---- parsing ---- */

static int parse_tls(const char *v, enum route_tls *out)
{
	for (int i = ROUTE_TLS_NONE; i <= ROUTE_TLS_VERIFY; i++)
		if (strcmp(v, route_tls_name((enum route_tls)i)) == 0) {
			*out = (enum route_tls)i;
			return 0;
		}
	return -1;
}

static void lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static int parse_u16(const char *s, size_t len, uint16_t *out, unsigned min)
{
	unsigned long v = 0;

	if (len == 0 || len > 5)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v < min || v > 65535)
		return -1;
	*out = (uint16_t)v;
	return 0;
}

/* "[PRI ]TARGET[:PORT]" (already trimmed, len > 0) */
static int parse_hop(const char *s, size_t len, struct route_target *t, bool *has_pri,
		     char *err, size_t errlen)
{
	const char *sp = memchr(s, ' ', len), *host, *colon;
	size_t hlen, rest;
	bool bracket = false;
	char buf[DNS_NAME_MAX + 2];
	struct in_addr a;

	memset(t, 0, sizeof(*t));
	*has_pri = false;
	if (!sp)
		sp = memchr(s, '\t', len);
	if (sp) {
		size_t plen = (size_t)(sp - s);
		if (parse_u16(s, plen, &t->pri, 0) < 0) {
			snprintf(err, errlen, "'%.*s' is not a priority (0..65535)", (int)plen, s);
			return -1;
		}
		*has_pri = true;
		while (sp < s + len && (*sp == ' ' || *sp == '\t'))
			sp++;
		len -= (size_t)(sp - s);
		s = sp;
	}
	if (s[0] == '[') {
		const char *close = memchr(s, ']', len);
		if (!close) {
			snprintf(err, errlen, "'%.*s': no closing ]", (int)len, s);
			return -1;
		}
		bracket = true;
		host = s + 1;
		hlen = (size_t)(close - host);
		colon = close + 1;
		rest = len - (size_t)(colon - s);
		if (rest && *colon != ':') {
			snprintf(err, errlen, "'%.*s': expected :port after ]", (int)len, s);
			return -1;
		}
	} else {
		host = s;
		colon = memchr(s, ':', len);
		hlen = colon ? (size_t)(colon - s) : len;
		rest = colon ? len - hlen : 0;
	}
	if (rest) {
		if (parse_u16(colon + 1, rest - 1, &t->port, 1) < 0) {
			snprintf(err, errlen, "'%.*s' is not a port (1..65535)", (int)(rest - 1), colon + 1);
			return -1;
		}
	}
	if (hlen == 0 || hlen > DNS_NAME_MAX) {
		snprintf(err, errlen, "'%.*s' is not a host", (int)len, s);
		return -1;
	}
	memcpy(buf, host, hlen);
	buf[hlen] = '\0';
	if (bracket && strchr(buf, ':')) {	/* [2001:db8::1] or [IPv6:2001:db8::1] */
		const char *v = strncasecmp(buf, "IPv6:", 5) == 0 ? buf + 5 : buf;
		struct in6_addr a6;
		if (inet_pton(AF_INET6, v, &a6) != 1 || IN6_IS_ADDR_UNSPECIFIED(&a6) ||
		    IN6_IS_ADDR_MULTICAST(&a6) || IN6_IS_ADDR_V4MAPPED(&a6)) {
			snprintf(err, errlen, "'%s' is not a usable IPv6 address", buf);
			return -1;
		}
		t->v6 = true;
		memcpy(t->addr6, &a6, 16);
		inet_ntop(AF_INET6, &a6, t->host, sizeof(t->host));	/* one spelling */
		return 0;
	}
	if (inet_pton(AF_INET, buf, &a) == 1) {
		if (a.s_addr == 0 || a.s_addr == INADDR_BROADCAST) {
			snprintf(err, errlen, "'%s' is not a usable address", buf);
			return -1;
		}
		t->addr = a.s_addr;
	} else if (dns_name_check(buf) < 0 || strchr(buf, '_')) {
		snprintf(err, errlen, "'%s' is not a host name or IPv4 address", buf);
		return -1;
	} else {
		t->mx = !bracket;
		if (buf[hlen - 1] == '.')
			buf[hlen - 1] = '\0';
		lower(buf);
	}
	memcpy(t->host, buf, strlen(buf) + 1);
	return 0;
}

int route_spec_parse(const char *spec, struct route_spec *out, char *err, size_t errlen)
{
	char buf[ROUTE_SPEC_MAX];
	size_t len;
	char *s = buf, *tls;
	unsigned with_pri = 0;

	memset(out, 0, sizeof(*out));
	while (*spec == ' ' || *spec == '\t')
		spec++;
	len = strlen(spec);
	while (len && (spec[len - 1] == ' ' || spec[len - 1] == '\t' || spec[len - 1] == '\r'))
		len--;
	if (len == 0) {
		snprintf(err, errlen, "empty route");
		return -1;
	}
	if (len >= sizeof(buf)) {
		snprintf(err, errlen, "route longer than %zu characters", sizeof(buf) - 1);
		return -1;
	}
	memcpy(buf, spec, len);
	buf[len] = '\0';
	if (strcmp(buf, "discard") == 0 || strcmp(buf, "hold") == 0) {
		out->kind = buf[0] == 'd' ? ROUTE_K_DISCARD : ROUTE_K_HOLD;
		return 0;
	}
	/* the last word may be tls=POLICY */
	tls = strrchr(buf, ' ');
	if (!tls || strrchr(buf, '\t') > tls)
		tls = strrchr(buf, '\t');
	tls = tls ? tls + 1 : buf;
	if (strncmp(tls, "tls=", 4) == 0) {
		if (parse_tls(tls + 4, &out->tls) < 0) {
			snprintf(err, errlen, "'%s' is not tls=none, may, encrypt or verify", tls);
			return -1;
		}
		out->tls_given = true;
		*tls = '\0';
	}
	while (*s) {
		size_t n;
		char *comma = strchr(s, ',');
		bool has_pri;

		n = comma ? (size_t)(comma - s) : strlen(s);
		while (n && (*s == ' ' || *s == '\t'))
			s++, n--;
		while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
			n--;
		if (n == 0) {
			snprintf(err, errlen, "empty next hop");
			return -1;
		}
		if (out->n == ROUTE_TARGETS_MAX) {
			snprintf(err, errlen, "more than %d next hops", ROUTE_TARGETS_MAX);
			return -1;
		}
		if (parse_hop(s, n, &out->t[out->n], &has_pri, err, errlen) < 0)
			return -1;
		with_pri += has_pri;
		out->n++;
		if (!comma)
			break;
		s = comma + 1;
		if (!*s) {
			snprintf(err, errlen, "empty next hop");
			return -1;
		}
	}
	if (out->n == 0) {
		snprintf(err, errlen, "no next hop before tls=");
		return -1;
	}
	if (with_pri && with_pri != out->n) {
		snprintf(err, errlen, "give every next hop a priority or none");
		return -1;
	}
	out->pri_given = with_pri != 0;
	return 0;
}

int route_domain_parse(const char *domain, char key[DNS_NAME_MAX + 2], char *err, size_t errlen)
{
	const char *d = domain[0] == '.' ? domain + 1 : domain;
	size_t len = strlen(d);

	if (dns_name_check(d) < 0 || strchr(d, '_') || len == 0) {
		snprintf(err, errlen, "'%s' is not a domain or .domain", domain);
		return -1;
	}
	if (d[len - 1] == '.')
		len--;
	key[0] = '.';
	memcpy(key + (d != domain), d, len);
	key[len + (d != domain)] = '\0';
	lower(key);
	return 0;
}

int route_line_parse(const char *line, char key[DNS_NAME_MAX + 2], struct route_spec *spec,
		     char *err, size_t errlen)
{
	char dom[DNS_NAME_MAX + 3];
	size_t n;

	while (*line == ' ' || *line == '\t')
		line++;
	if (*line == '\0' || *line == '#' || *line == '\r' || *line == '\n')
		return 0;
	n = strcspn(line, " \t\r\n");
	if (n >= sizeof(dom)) {
		snprintf(err, errlen, "'%.40s...' is not a domain", line);
		return -1;
	}
	memcpy(dom, line, n);
	dom[n] = '\0';
	if (route_domain_parse(dom, key, err, errlen) < 0)
		return -1;
	line += n;
	if (line[strspn(line, " \t\r\n")] == '\0') {
		snprintf(err, errlen, "%s: no route after the domain", dom);
		return -1;
	}
	return route_spec_parse(line, spec, err, errlen) < 0 ? -1 : 1;
}

/* ---- the static routes ---- */

static uint32_t str_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

static struct rentry **rentry_slot(struct router *rt, const char *key, uint32_t h)
{
	struct rentry **pp = &rt->tab[h & rt->mask];

	while (*pp && !((*pp)->hash == h && strcmp((*pp)->key, key) == 0))
		pp = &(*pp)->next;
	return pp;
}

static int route_put(struct router *rt, const char *key, const struct route_spec *spec,
		     bool runtime)
{
	uint32_t h = str_hash(key);
	struct rentry **pp = rentry_slot(rt, key, h), *e = *pp;

	if (!e) {
		if (rt->nroutes >= rt->conf.max_routes)
			return -ENOSPC;
		e = calloc(1, sizeof(*e));
		if (!e)
			return -ENOMEM;
		e->hash = h;
		memcpy(e->key, key, strlen(key) + 1);
		e->next = rt->tab[h & rt->mask];
		rt->tab[h & rt->mask] = e;
		rt->nroutes++;
	} else if (runtime && !e->runtime) {	/* over the file's: kept beneath */
		e->file = e->spec;
		e->has_file = true;
	} else if (!runtime && e->runtime) {	/* the file's, beneath a runtime one */
		e->file = *spec;
		e->has_file = true;
		return 0;
	}
	e->spec = *spec;
	e->runtime = runtime;
	return 0;
}

int route_set(struct router *rt, const char *domain, const char *spec, char *err, size_t n)
{
	char key[DNS_NAME_MAX + 2];
	struct route_spec s;
	int rc;

	if (route_domain_parse(domain, key, err, n) < 0 || route_spec_parse(spec, &s, err, n) < 0)
		return -EINVAL;
	rc = route_put(rt, key, &s, true);
	if (rc == -ENOSPC)
		snprintf(err, n, "more than %u routes", rt->conf.max_routes);
	else if (rc < 0)
		snprintf(err, n, "out of memory");
	return rc;
}

int route_clear(struct router *rt, const char *domain)
{
	char key[DNS_NAME_MAX + 2], err[8];
	struct rentry **pp, *e;

	if (route_domain_parse(domain, key, err, sizeof(err)) < 0)
		return -ENOENT;
	pp = rentry_slot(rt, key, str_hash(key));
	e = *pp;
	if (!e)
		return -ENOENT;
	if (e->runtime && e->has_file) {	/* the file's route is back */
		e->spec = e->file;
		e->runtime = e->has_file = false;
		return 0;
	}
	*pp = e->next;
	free(e);
	rt->nroutes--;
	return 0;
}

static void spec_key(const struct route_spec *s, uint16_t defport, char *out, size_t n);
static const struct rentry *route_find(struct router *rt, const char *domain);

static void spec_text(const struct router *rt, const struct route_spec *s, char *out, size_t n)
{
	if (s->kind == ROUTE_K_DISCARD)
		snprintf(out, n, "discard");
	else if (s->kind == ROUTE_K_HOLD)
		snprintf(out, n, "hold");
	else
		spec_key(s, rt->conf.port, out, n);
}

unsigned route_visit(struct router *rt, const char *domain,
		     void (*fn)(void *user, const char *key, const char *spec), void *user)
{
	char text[ROUTE_DEST_MAX + 32];
	unsigned n = 0;

	if (domain) {
		const struct rentry *e = route_find(rt, domain);
		if (!e)
			return 0;
		spec_text(rt, &e->spec, text, sizeof(text));
		fn(user, e->key, text);
		return 1;
	}
	for (uint32_t i = 0; i <= rt->mask; i++)
		for (const struct rentry *e = rt->tab[i]; e; e = e->next) {
			spec_text(rt, &e->spec, text, sizeof(text));
			fn(user, e->key, text);
			n++;
		}
	return n;
}

int route_load(struct router *rt, const char *text, const char *name, char *err, size_t n)
{
	char key[DNS_NAME_MAX + 2], e[200], line[1024];
	struct route_spec spec;
	int set = 0;

	for (int pass = 0; pass < 2; pass++) {	/* check everything, then set */
		const char *p = text;
		unsigned lineno = 0;

		while (*p) {
			size_t len = strcspn(p, "\n");
			int rc;

			lineno++;
			if (len >= sizeof(line)) {
				snprintf(err, n, "%s:%u: line longer than %zu characters", name, lineno,
					 sizeof(line) - 1);
				return -1;
			}
			memcpy(line, p, len);
			line[len] = '\0';
			p += len + (p[len] == '\n');
			rc = route_line_parse(line, key, &spec, e, sizeof(e));
			if (rc < 0) {
				snprintf(err, n, "%s:%u: %s", name, lineno, e);
				return -1;
			}
			if (rc == 0 || pass == 0)
				continue;
			rc = route_put(rt, key, &spec, false);
			if (rc < 0) {
				snprintf(err, n, "%s:%u: %s", name, lineno,
					 rc == -ENOSPC ? "too many routes" : "out of memory");
				return -1;
			}
			set++;
		}
	}
	return set;
}

/* The route for domain (a key): itself, then ".parent" from the closest up. */
static const struct rentry *route_find(struct router *rt, const char *domain)
{
	char key[DNS_NAME_MAX + 2];
	const char *d = domain;
	struct rentry *e = *rentry_slot(rt, domain, str_hash(domain));

	if (e)
		return e;
	while ((d = strchr(d, '.')) != NULL) {
		snprintf(key, sizeof(key), "%s", d);
		e = *rentry_slot(rt, key, str_hash(key));
		if (e)
			return e;
		d++;
	}
	return NULL;
}

/* ---- the router ---- */

static uint64_t rng_next(struct router *rt)
{
	rt->rng ^= rt->rng >> 12;
	rt->rng ^= rt->rng << 25;
	rt->rng ^= rt->rng >> 27;
	return rt->rng * 2685821657736338717ull;
}

static unsigned rng_below(struct router *rt, unsigned n)
{
	return (unsigned)(rng_next(rt) % n);
}

int route_replace(struct router *rt, const char *relayhost, const char *text, const char *name,
		  char *err, size_t n)
{
	struct route_conf c = rt->conf;
	struct router *fresh;
	struct router tmp;
	int r = 0;

	snprintf(c.relayhost, sizeof(c.relayhost), "%s", relayhost ? relayhost : "");
	fresh = router_create(&c, rt->dns, rt->rng);
	if (!fresh) {
		snprintf(err, n, "relayhost '%s' does not parse, or no memory", c.relayhost);
		return -1;
	}
	if (text && (r = route_load(fresh, text, name, err, n)) < 0) {
		router_destroy(fresh);
		return -1;
	}
	/* the routes set at runtime stay, over the file's: an operator's
	 * `route set` (or the cluster's) outlives a reload */
	for (uint32_t i = 0; i <= rt->mask; i++)
		for (const struct rentry *e = rt->tab[i]; e; e = e->next) {
			int rc = e->runtime ? route_put(fresh, e->key, &e->spec, true) : 0;
			if (rc < 0) {
				snprintf(err, n, "%s: the routes set at runtime do not fit beside "
					 "the file's (%s)", name,
					 rc == -ENOSPC ? "max_routes" : "out of memory");
				router_destroy(fresh);
				return -1;
			}
		}
	/* swap the tables and the relayhost; fresh has no jobs, so
	 * destroying it frees only the old table */
	tmp = *rt;
	rt->relay = fresh->relay;
	rt->tab = fresh->tab;
	rt->mask = fresh->mask;
	rt->nroutes = fresh->nroutes;
	memcpy(rt->conf.relayhost, c.relayhost, sizeof(c.relayhost));
	fresh->tab = tmp.tab;
	fresh->mask = tmp.mask;
	fresh->nroutes = tmp.nroutes;
	router_destroy(fresh);
	return r;
}

struct router *router_create(const struct route_conf *c, struct dns_resolver *dns, uint64_t seed)
{
	struct router *rt;
	char err[200];

	if (!dns || c->max_routes == 0 || c->max_jobs == 0 || c->mx_address_limit == 0 ||
	    c->port == 0 || c->nself > ROUTE_SELF_MAX)
		return NULL;
	rt = calloc(1, sizeof(*rt));
	if (!rt)
		return NULL;
	rt->conf = *c;
	lower(rt->conf.hostname);
	rt->dns = dns;
	rt->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
	if (c->relayhost[0] && route_spec_parse(c->relayhost, &rt->relay, err, sizeof(err)) < 0) {
		free(rt);
		return NULL;
	}
	for (rt->mask = 64; rt->mask < c->max_routes && rt->mask < (1u << 20); rt->mask <<= 1)
		;
	rt->tab = calloc(rt->mask, sizeof(*rt->tab));
	rt->mask--;
	if (!rt->tab) {
		free(rt);
		return NULL;
	}
	return rt;
}

static void on_mx(void *user, const struct dns_result *r);
static void on_a(void *user, const struct dns_result *r);
static void on_aaaa(void *user, const struct dns_result *r);

static void job_free(struct router *rt, struct job *j)
{
	if (j->prev)
		j->prev->next = j->next;
	else
		rt->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	rt->njobs--;
	free(j);
}

void router_destroy(struct router *rt)
{
	if (!rt)
		return;
	while (rt->jobs) {
		struct job *j = rt->jobs;
		for (unsigned i = 0; i < j->spec.n; i++) {
			struct tstate *t = &j->t[i];
			if (t->waiting)
				dns_cancel(rt->dns, on_mx, t);
			for (unsigned k = 0; k < t->ncand; k++)
				if (t->cand[k].waiting) {
					dns_cancel(rt->dns, on_a, &t->cand[k]);
					dns_cancel(rt->dns, on_aaaa, &t->cand[k]);
				}
		}
		job_free(rt, j);
	}
	for (uint32_t i = 0; i <= rt->mask; i++)
		while (rt->tab[i]) {
			struct rentry *e = rt->tab[i];
			rt->tab[i] = e->next;
			free(e);
		}
	free(rt->tab);
	free(rt);
}

static bool is_self_addr(const struct router *rt, const struct net_addr *a)
{
	if (net_addr_is_v6(a))
		return rt->conf.self6_ok && memcmp(a->v6, rt->conf.self6, 16) == 0;
	for (unsigned i = 0; i < rt->conf.nself; i++)
		if (rt->conf.self[i] == a->v4)
			return true;
	return false;
}

static bool want_v4(const struct router *rt)
{
	return rt->conf.family != ROUTE_AF_IPV6;
}

static bool want_v6(const struct router *rt)
{
	return rt->conf.family != ROUTE_AF_IPV4;
}

static void target_fail(struct tstate *t, enum route_status st, const char *dsn, const char *fmt,
			...) __attribute__((format(printf, 4, 5)));

static void target_fail(struct tstate *t, enum route_status st, const char *dsn, const char *fmt,
			...)
{
	va_list ap;

	if (t->fail != ROUTE_OK)
		return;
	t->fail = st;
	snprintf(t->dsn, sizeof(t->dsn), "%s", dsn);
	va_start(ap, fmt);
	vsnprintf(t->why, sizeof(t->why), fmt, ap);
	va_end(ap);
}

/* Sort by preference (stable), then shuffle each run of equal preferences. */
static void order_cands(struct router *rt, struct cand *c, unsigned n)
{
	for (unsigned i = 1; i < n; i++) {
		struct cand x = c[i];
		unsigned k = i;
		while (k > 0 && c[k - 1].pref > x.pref) {
			c[k] = c[k - 1];
			k--;
		}
		c[k] = x;
	}
	for (unsigned s = 0; s < n;) {
		unsigned e = s + 1;
		while (e < n && c[e].pref == c[s].pref)
			e++;
		for (unsigned i = e - 1; i > s; i--) {
			unsigned k = s + rng_below(rt, i - s + 1);
			struct cand x = c[i];
			c[i] = c[k];
			c[k] = x;
		}
		s = e;
	}
}

static void finish(struct job *j);

static void job_release(struct job *j)
{
	if (--j->pending == 0)
		finish(j);
}

/* Fold one lookup's status into the candidate's: a temporary failure
 * wins (no address may then be for want of an answer), then OK, then
 * NODATA/NXDOMAIN. */
static void cand_status(struct cand *c, enum dns_status st)
{
	bool fail = st == DNS_TEMPFAIL || st == DNS_NOMEM;
	bool have_fail = c->answered && (c->status == DNS_TEMPFAIL || c->status == DNS_NOMEM);

	if (!c->answered || fail || (!have_fail && st == DNS_OK))
		c->status = st;
	c->answered++;
}

/* Start one address lookup (A or AAAA) of a candidate. */
static void cand_lookup_type(struct job *j, struct cand *c, enum dns_type type, dns_cb cb)
{
	int rc;

	c->waiting++;
	j->pending++;
	rc = dns_lookup(j->rt->dns, c->name, type, cb, c);
	if (rc < 0) {
		struct tstate *t = &j->t[c->ti];
		c->waiting--;
		cand_status(c, rc == -EINVAL ? DNS_NXDOMAIN : DNS_TEMPFAIL);
		if (rc != -EINVAL && !t->why[0])
			snprintf(t->why, sizeof(t->why), "%.150s/%s: resolver busy", c->name,
				 dns_type_name(type));
		j->pending--;
	}
}

/* Start the address lookups of a candidate: A, AAAA or both (conf.family). */
static void cand_lookup(struct job *j, struct cand *c)
{
	if (want_v4(j->rt))
		cand_lookup_type(j, c, DNS_T_A, on_a);
	if (want_v6(j->rt))
		cand_lookup_type(j, c, DNS_T_AAAA, on_aaaa);
}

/* Candidates of target t from an MX answer (or the implicit MX). */
static void mx_candidates(struct job *j, struct tstate *t, const struct dns_result *r)
{
	struct router *rt = j->rt;
	unsigned n = 0;
	int self_pref = -1;

	for (unsigned i = 0; i < r->n && n < DNS_MX_MAX; i++) {
		struct cand *c = &t->cand[n];
		size_t hl = strlen(r->mx[i].host);

		if (hl == 0)
			continue;	/* "." among real MX records: not a host */
		memset(c, 0, sizeof(*c));
		c->job = j;
		c->ti = t->ti;
		c->pref = r->mx[i].pref;
		memcpy(c->name, r->mx[i].host, hl + 1);
		if (c->name[hl - 1] == '.')
			c->name[hl - 1] = '\0';
		lower(c->name);
		c->self = rt->conf.hostname[0] && strcmp(c->name, rt->conf.hostname) == 0;
		if (c->self && (self_pref < 0 || c->pref < self_pref))
			self_pref = c->pref;
		n++;
	}
	if (n == 0) {	/* only "." (RFC 7505) */
		rt->st.null_mx++;
		if (j->is_static)
			target_fail(t, ROUTE_TEMP, "4.4.4", "%s has a null MX: no mail host", t->job->spec.t[t->ti].host);
		else
			target_fail(t, ROUTE_PERM, "5.1.10",
				    "556 5.1.10 Domain %s does not accept mail (null MX)", j->domain);
		return;
	}
	/* A backup MX: drop our own preference and everything above it. */
	if (self_pref >= 0) {
		unsigned k = 0;
		for (unsigned i = 0; i < n; i++)
			if (t->cand[i].pref < self_pref)
				t->cand[k++] = t->cand[i];
			else
				rt->st.self_pruned++;
		n = k;
		if (n == 0) {
			rt->st.loops++;
			target_fail(t, j->is_static ? ROUTE_TEMP : ROUTE_PERM,
				    j->is_static ? "4.4.6" : "5.4.6",
				    "mail for %s loops back to myself (best MX %s)",
				    t->job->spec.t[t->ti].host, rt->conf.hostname);
			return;
		}
	}
	order_cands(rt, t->cand, n);
	t->ncand = n;
	for (unsigned i = 0; i < n; i++)
		cand_lookup(j, &t->cand[i]);
}

static void implicit_mx(struct job *j, struct tstate *t)
{
	struct cand *c = &t->cand[0];

	j->rt->st.implicit_mx++;
	t->implicit = true;
	memset(c, 0, sizeof(*c));
	c->job = j;
	c->ti = t->ti;
	snprintf(c->name, sizeof(c->name), "%s", j->spec.t[t->ti].host);
	t->ncand = 1;
	cand_lookup(j, c);
}

static void on_mx(void *user, const struct dns_result *r)
{
	struct tstate *t = user;
	struct job *j = t->job;
	const char *host = j->spec.t[t->ti].host;
	bool st = j->is_static;

	t->waiting = false;
	switch (r->status) {
	case DNS_OK:
		mx_candidates(j, t, r);
		break;
	case DNS_NODATA:	/* no MX RRset: the host itself */
		implicit_mx(j, t);
		break;
	case DNS_NXDOMAIN:
	case DNS_BADNAME:
		target_fail(t, st ? ROUTE_TEMP : ROUTE_PERM, st ? "4.4.4" : "5.1.2",
			    "Host or domain name not found: %s", r->why);
		break;
	default:
		target_fail(t, ROUTE_TEMP, "4.4.3", "DNS lookup of %s failed: %s", host, r->why);
		break;
	}
	job_release(j);
}

static void on_addr(struct cand *c, const struct dns_result *r)
{
	struct job *j = c->job;
	unsigned n = r->n > DNS_A_MAX ? DNS_A_MAX : r->n;

	c->waiting--;
	cand_status(c, r->status);
	if (r->status == DNS_OK) {
		for (unsigned i = 0; i < n && c->naddr < 2 * DNS_A_MAX; i++)
			c->addr[c->naddr++] = r->type == DNS_T_AAAA ? net_addr_v6(r->aaaa[i])
								     : net_addr_v4(r->a[i]);
	} else if (r->status != DNS_NXDOMAIN && r->status != DNS_NODATA) {
		struct tstate *t = &j->t[c->ti];
		if (!t->why[0])	/* remember why, in case no host has an address */
			snprintf(t->why, sizeof(t->why), "%s", r->why);
	}
	job_release(j);
}

static void on_a(void *user, const struct dns_result *r)
{
	on_addr(user, r);
}

static void on_aaaa(void *user, const struct dns_result *r)
{
	on_addr(user, r);
}

static void hop_add(struct route_result *res, const struct job *j, const struct route_target *tg,
		    const struct cand *c, const struct net_addr *a)
{
	struct route_hop *h = &res->hop[res->n++];

	memset(h, 0, sizeof(*h));
	if (net_addr_is_v6(a)) {
		h->family = AF_INET6;
		memcpy(h->addr, a->v6, 16);
	} else {
		h->family = AF_INET;
		memcpy(h->addr, &a->v4, 4);
	}
	h->port = tg->port ? tg->port : j->rt->conf.port;
	h->tls = j->spec.tls_given ? j->spec.tls : j->rt->conf.tls;
	h->pref = tg->mx ? c->pref : tg->pri;
	snprintf(h->mx, sizeof(h->mx), "%s", c->name);
}

/* Is a of the preferred family (conf.prefer)? */
static bool preferred(const struct router *rt, bool v6)
{
	return rt->conf.prefer == (v6 ? ROUTE_AF_IPV6 : ROUTE_AF_IPV4);
}

/* The preferred family first, each family's order kept (a stable
 * partition; nothing to do without a preference). */
static void prefer_family(const struct router *rt, struct net_addr *a, unsigned n)
{
	struct net_addr tmp[2 * DNS_A_MAX];
	unsigned k = 0;

	if (rt->conf.prefer == ROUTE_AF_ANY || n > 2 * DNS_A_MAX)
		return;
	for (unsigned i = 0; i < n; i++)
		if (preferred(rt, net_addr_is_v6(&a[i])))
			tmp[k++] = a[i];
	for (unsigned i = 0; i < n; i++)
		if (!preferred(rt, net_addr_is_v6(&a[i])))
			tmp[k++] = a[i];
	memcpy(a, tmp, n * sizeof(*a));
}

/* The same over res's hops from first on, within each run of equal
 * preference: hosts of one MX preference are one choice (as Postfix's
 * smtp_address_preference), a less preferred MX still comes later. */
static void prefer_family_hops(const struct router *rt, struct route_result *res, unsigned first)
{
	struct route_hop tmp[ROUTE_HOPS_MAX];

	if (rt->conf.prefer == ROUTE_AF_ANY)
		return;
	for (unsigned s = first; s < res->n;) {
		unsigned e = s + 1, k = 0;
		while (e < res->n && res->hop[e].pref == res->hop[s].pref)
			e++;
		for (unsigned i = s; i < e; i++)
			if (preferred(rt, res->hop[i].family == AF_INET6))
				tmp[k++] = res->hop[i];
		for (unsigned i = s; i < e; i++)
			if (!preferred(rt, res->hop[i].family == AF_INET6))
				tmp[k++] = res->hop[i];
		memcpy(&res->hop[s], tmp, k * sizeof(tmp[0]));
		s = e;
	}
}

/* Target t's hops into res: its candidates in order, each one's addresses
 * shuffled, at most mx_address_limit in all; an address of ours prunes its
 * candidate and every later one of the same or a higher preference. */
static void target_hops(struct job *j, struct tstate *t, struct route_result *res)
{
	struct router *rt = j->rt;
	const struct route_target *tg = &j->spec.t[t->ti];
	unsigned added = 0, first = res->n;
	bool temp = false, self_seen = false;
	int self_pref = -1;

	for (unsigned i = 0; i < t->ncand; i++)
		for (unsigned k = 0; k < t->cand[i].naddr; k++)
			if (is_self_addr(rt, &t->cand[i].addr[k]) &&
			    (self_pref < 0 || t->cand[i].pref < self_pref))
				self_pref = t->cand[i].pref;
	for (unsigned i = 0; i < t->ncand; i++) {
		struct cand *c = &t->cand[i];

		if (self_pref >= 0 && c->pref >= self_pref && tg->mx) {
			rt->st.self_pruned++;
			self_seen = true;
			continue;
		}
		if (c->status == DNS_TEMPFAIL || c->status == DNS_NOMEM)
			temp = true;
		for (unsigned k = c->naddr; k > 1; k--) {
			unsigned x = rng_below(rt, k);
			struct net_addr a = c->addr[k - 1];
			c->addr[k - 1] = c->addr[x];
			c->addr[x] = a;
		}
		prefer_family(rt, c->addr, c->naddr);	/* before the cap */
		for (unsigned k = 0; k < c->naddr; k++) {
			if (is_self_addr(rt, &c->addr[k])) {	/* a [host] that is us */
				self_seen = true;
				continue;
			}
			if (added == rt->conf.mx_address_limit || res->n == ROUTE_HOPS_MAX) {
				rt->st.addresses_capped++;
				continue;
			}
			hop_add(res, j, tg, c, &c->addr[k]);
			added++;
		}
	}
	prefer_family_hops(rt, res, first);
	if (res->n > first || t->fail != ROUTE_OK)
		return;
	if (self_seen) {
		rt->st.loops++;
		target_fail(t, j->is_static ? ROUTE_TEMP : ROUTE_PERM, j->is_static ? "4.4.6" : "5.4.6",
			    "mail for %s loops back to myself", tg->host);
	} else if (temp) {
		char why[200];
		snprintf(why, sizeof(why), "%s", t->why);
		target_fail(t, ROUTE_TEMP, "4.4.3", "DNS lookup failed: %s", why);
	} else if (!tg->mx) {
		target_fail(t, ROUTE_TEMP, "4.4.4", "Host or domain name not found: %s has no address",
			    tg->host);
	} else if (t->implicit) {
		target_fail(t, j->is_static ? ROUTE_TEMP : ROUTE_PERM, j->is_static ? "4.4.4" : "5.4.4",
			    "%s has no MX and no address record", tg->host);
	} else {
		target_fail(t, j->is_static ? ROUTE_TEMP : ROUTE_PERM, j->is_static ? "4.4.4" : "5.4.4",
			    "no mail host for %s has an address", tg->host);
	}
}

static void finish(struct job *j)
{
	struct router *rt = j->rt;
	struct route_result res;
	const struct tstate *fail = NULL;

	memset(&res, 0, offsetof(struct route_result, hop));
	for (unsigned i = 0; i < j->spec.n && res.n < ROUTE_HOPS_MAX; i++) {
		target_hops(j, &j->t[i], &res);
		if (j->t[i].fail != ROUTE_OK && (!fail || (fail->fail == ROUTE_PERM &&
							   j->t[i].fail == ROUTE_TEMP)))
			fail = &j->t[i];	/* a TEMP reason beats a PERM one */
	}
	if (res.n) {
		res.status = ROUTE_OK;
		memcpy(res.dest, j->dest, sizeof(res.dest));
		rt->st.ok++;
	} else if (fail) {
		res.status = fail->fail;
		snprintf(res.dsn, sizeof(res.dsn), "%s", fail->dsn);
		snprintf(res.why, sizeof(res.why), "%s", fail->why);
	} else {
		res.status = ROUTE_TEMP;
		snprintf(res.dsn, sizeof(res.dsn), "4.4.3");
		snprintf(res.why, sizeof(res.why), "no next hop for %.150s", j->domain);
	}
	if (res.status == ROUTE_TEMP)
		rt->st.temp++;
	else if (res.status == ROUTE_PERM)
		rt->st.perm++;
	j->cb(j->user, &res);
	job_free(rt, j);
}

static void answer_now(route_cb cb, void *user, enum route_status st)
{
	struct route_result res;

	memset(&res, 0, offsetof(struct route_result, hop));
	res.status = st;
	cb(user, &res);
}

/* Targets with priorities: by priority, equal ones shuffled. */
static void order_targets(struct router *rt, struct route_spec *s)
{
	for (unsigned i = 1; i < s->n; i++) {
		struct route_target x = s->t[i];
		unsigned k = i;
		while (k > 0 && s->t[k - 1].pri > x.pri) {
			s->t[k] = s->t[k - 1];
			k--;
		}
		s->t[k] = x;
	}
	for (unsigned a = 0; a < s->n;) {
		unsigned b = a + 1;
		while (b < s->n && s->t[b].pri == s->t[a].pri)
			b++;
		for (unsigned i = b - 1; i > a; i--) {
			unsigned k = a + rng_below(rt, i - a + 1);
			struct route_target x = s->t[i];
			s->t[i] = s->t[k];
			s->t[k] = x;
		}
		a = b;
	}
}

/* A static spec's destination key: its targets as written (in the order
 * written, not the order of this lookup), brackets and ports explicit. */
static void spec_key(const struct route_spec *s, uint16_t defport, char *out, size_t n)
{
	size_t len = 0;

	out[0] = '\0';
	for (unsigned i = 0; i < s->n && len < n; i++) {
		const struct route_target *t = &s->t[i];
		char pri[8] = "";
		int w;

		if (s->pri_given)
			snprintf(pri, sizeof(pri), "%u ", t->pri);
		w = snprintf(out + len, n - len, "%s%s%s%s%s:%u", i ? ", " : "", pri,
			     t->mx ? "" : "[", t->host, t->mx ? "" : "]",
			     t->port ? t->port : defport);
		len += w > 0 ? (size_t)w : 0;
	}
	if (s->tls_given && len < n)
		snprintf(out + len, n - len, " tls=%s", route_tls_name(s->tls));
}

int route_lookup(struct router *rt, const char *domain, route_cb cb, void *user)
{
	char key[DNS_NAME_MAX + 2], err[64];
	const struct rentry *e;
	const struct route_spec *spec = NULL;
	struct job *j;

	rt->st.lookups++;
	if (!cb || domain[0] == '.' || route_domain_parse(domain, key, err, sizeof(err)) < 0)
		return -EINVAL;
	e = route_find(rt, key);
	if (e) {
		spec = &e->spec;
		rt->st.static_routes++;
	} else if (rt->relay.n || rt->relay.kind != ROUTE_K_HOPS) {
		spec = &rt->relay;
		rt->st.relayhost++;
	} else {
		rt->st.mx_routes++;
	}
	if (spec && spec->kind != ROUTE_K_HOPS) {
		if (spec->kind == ROUTE_K_DISCARD)
			rt->st.discard++;
		else
			rt->st.hold++;
		answer_now(cb, user, spec->kind == ROUTE_K_DISCARD ? ROUTE_DISCARD : ROUTE_HOLD);
		return 1;
	}
	if (rt->njobs >= rt->conf.max_jobs) {
		rt->st.jobs_full++;
		return -ENOBUFS;
	}
	j = malloc(sizeof(*j));
	if (!j)
		return -ENOMEM;
	memset(j, 0, offsetof(struct job, t));
	j->rt = rt;
	j->cb = cb;
	j->user = user;
	memcpy(j->domain, key, strlen(key) + 1);	/* no leading dot: <= DNS_NAME_MAX */
	if (spec) {
		j->is_static = true;
		spec_key(spec, rt->conf.port, j->dest, sizeof(j->dest));
		j->spec = *spec;
		if (j->spec.pri_given)
			order_targets(rt, &j->spec);
	} else {	/* MX of the domain */
		memcpy(j->dest, key, strlen(key) + 1);
		j->spec.n = 1;
		memcpy(j->spec.t[0].host, key, strlen(key) + 1);
		j->spec.t[0].mx = true;
	}
	j->next = rt->jobs;
	if (rt->jobs)
		rt->jobs->prev = j;
	rt->jobs = j;
	rt->njobs++;
	j->pending = 1;	/* held while starting */
	for (unsigned i = 0; i < j->spec.n; i++) {
		struct tstate *t = &j->t[i];
		const struct route_target *tg = &j->spec.t[i];

		memset(t, 0, offsetof(struct tstate, cand));
		t->job = j;
		t->ti = (uint8_t)i;
		if (tg->addr || tg->v6) {	/* a literal: the hop itself */
			bool use = tg->v6 ? want_v6(rt) : want_v4(rt);
			memset(&t->cand[0], 0, sizeof(t->cand[0]));
			t->cand[0].job = j;
			t->cand[0].ti = (uint8_t)i;
			t->cand[0].pref = tg->pri;
			t->cand[0].naddr = use;	/* none of a family not in use */
			t->cand[0].addr[0] = tg->v6 ? net_addr_v6(tg->addr6) : net_addr_v4(tg->addr);
			snprintf(t->cand[0].name, sizeof(t->cand[0].name), "%s", tg->host);
			t->ncand = 1;
		} else if (tg->mx) {
			int rc;
			t->waiting = true;
			j->pending++;
			rc = dns_lookup(rt->dns, tg->host, DNS_T_MX, on_mx, t);
			if (rc < 0) {
				t->waiting = false;
				j->pending--;
				target_fail(t, ROUTE_TEMP, "4.4.3", "DNS lookup of %s failed: %s",
					    tg->host, rc == -EINVAL ? "not a host name" : "resolver busy");
			}
		} else {		/* [host]: its A records */
			struct cand *c = &t->cand[0];
			memset(c, 0, sizeof(*c));
			c->job = j;
			c->ti = (uint8_t)i;
			c->pref = tg->pri;
			snprintf(c->name, sizeof(c->name), "%s", tg->host);
			t->ncand = 1;
			cand_lookup(j, c);
		}
	}
	if (--j->pending == 0) {
		finish(j);
		return 1;
	}
	return 0;
}

void route_stats_get(const struct router *rt, struct route_stats *out)
{
	*out = rt->st;
	out->jobs = rt->njobs;
	out->routes = rt->nroutes;
}
