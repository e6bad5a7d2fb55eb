/*
 * client_limits.c - per-client rate limits shared by every lcore: a hashed
 * table of GCRA cells, and a top-clients table. See client_limits.h for
 * the data structure and its bounds.
 */
#include "dataplane/smtp/client_limits.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const cl_kind_names[CL_KINDS] = {
	"connections", "messages", "recipients", "auth_failures",
};

/* ---- configuration ---------------------------------------------------------- */

static bool net_add(struct cl_conf *c, uint32_t net, uint32_t mask)
{
	if (c->nexempt == CL_EXEMPT_MAX)
		return false;
	c->exempt[c->nexempt].net = net;
	c->exempt[c->nexempt].mask = mask;
	c->nexempt++;
	return true;
}

int cl_conf_exempt(struct cl_conf *c, const char *text, const struct smtp_policy *mynetworks,
		   char *err, size_t errlen)
{
	const char *p = text ? text : "";

	c->nexempt = 0;
	c->exempt_mynetworks = false;
	while (*p) {
		char tok[64], *slash;
		size_t n;
		uint32_t ip, mask = 0xffffffffu;
		unsigned long bits = 32;

		p += strspn(p, " \t,");
		n = strcspn(p, " \t,");
		if (n == 0)
			break;
		if (n >= sizeof(tok)) {
			snprintf(err, errlen, "'%.40s...' is not a CIDR", p);
			goto fail;
		}
		memcpy(tok, p, n);
		tok[n] = '\0';
		p += n;
		if (strcmp(tok, "mynetworks") == 0) {
			c->exempt_mynetworks = true;
			for (unsigned i = 0; mynetworks && i < mynetworks->nnets; i++)
				if (!net_add(c, mynetworks->nets[i].net, mynetworks->nets[i].mask)) {
					snprintf(err, errlen, "more than %d networks", CL_EXEMPT_MAX);
					goto fail;
				}
			continue;
		}
		slash = strchr(tok, '/');
		if (slash) {
			char *end;
			*slash = '\0';
			bits = strtoul(slash + 1, &end, 10);
			if (end == slash + 1 || *end || bits > 32) {
				snprintf(err, errlen, "'%s/%s' has a bad prefix length", tok, slash + 1);
				goto fail;
			}
			mask = bits ? 0xffffffffu << (32 - bits) : 0;
		}
		if (smtp_parse_ipv4(tok, &ip) < 0) {
			snprintf(err, errlen, "'%s' is not an IPv4 address", tok);
			goto fail;
		}
		if (ip & ~mask) {
			snprintf(err, errlen, "'%s/%lu' has host bits set", tok, bits);
			goto fail;
		}
		if (!net_add(c, ip, mask)) {
			snprintf(err, errlen, "more than %d networks", CL_EXEMPT_MAX);
			goto fail;
		}
	}
	return 0;
fail:
	c->nexempt = 0;
	c->exempt_mynetworks = false;
	return -1;
}

bool cl_exempt(const struct cl_conf *c, uint32_t ip)
{
	for (unsigned i = 0; i < c->nexempt; i++)
		if ((ip & c->exempt[i].mask) == c->exempt[i].net)
			return true;
	return false;
}

bool cl_conf_active(const struct cl_conf *c)
{
	for (unsigned k = 0; k < CL_KINDS; k++)
		if (c->addr[k] || c->user[k])
			return true;
	return false;
}

/* ---- the table ---------------------------------------------------------------- */

struct client_limits *cl_create(uint64_t seed)
{
	struct client_limits *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->seed = seed | 1;
	return t;
}

void cl_free(struct client_limits *t)
{
	free(t);
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xBF58476D1CE4E5B9ull;
	x ^= x >> 27;
	x *= 0x94D049BB133111EBull;
	x ^= x >> 31;
	return x;
}

struct cl_key cl_key_addr(uint32_t ip)
{
	struct cl_key k = { .hash = mix64(((uint64_t)1 << 32) | ip), .ip = ip };

	if (k.hash == 0)
		k.hash = 1;	/* 0 marks an empty top slot */
	return k;
}

/* The /64 is a full 64-bit word, so it is mixed once on its own and again
 * with a domain tag (IPv4 keys mix 2^32 | ip once, users FNV ^ 2 << 56):
 * no prefix maps onto an IPv4 key's input, and only a 64-bit collision of
 * unrelated mixes could join them. */
struct cl_key cl_key_addr6(const uint8_t ip6[16])
{
	struct cl_key k = { .v6 = true };
	uint64_t p = 0;

	memcpy(k.net6, ip6, sizeof(k.net6));
	for (unsigned i = 0; i < 8; i++)
		p = p << 8 | ip6[i];
	k.hash = mix64(mix64(p) ^ ((uint64_t)3 << 56));
	if (k.hash == 0)
		k.hash = 1;
	return k;
}

void cl_addr_text(bool v6, uint32_t ip, const uint8_t net6[8], char *buf, size_t len)
{
	uint8_t a[16] = { 0 };

	if (!v6) {
		snprintf(buf, len, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255,
			 ip & 255);
		return;
	}
	memcpy(a, net6, 8);
	if (len < CL_ADDR_TEXT || !inet_ntop(AF_INET6, a, buf, (socklen_t)len - 3)) {
		snprintf(buf, len, "?");
		return;
	}
	strcat(buf, "/64");
}

struct cl_key cl_key_user(const char *name)
{
	uint64_t h = 0xcbf29ce484222325ull;	/* FNV-1a, then mixed */
	struct cl_key k = { .user = name };

	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 0x100000001b3ull;
	k.hash = mix64(h ^ ((uint64_t)2 << 56));
	if (k.hash == 0)
		k.hash = 1;
	return k;
}

static _Atomic uint64_t *cell(const struct client_limits *t, uint64_t hash, enum cl_kind kind)
{
	uint64_t b = mix64(hash ^ t->seed) % CL_WIDTH;

	return (_Atomic uint64_t *)&t->cell[b][kind];
}

/* GCRA's interval T and how far TAT may run ahead of now (L * T). */
static void gcra_params(uint32_t limit, uint64_t window_ns, uint64_t *tn, uint64_t *tau)
{
	*tn = window_ns / limit;
	if (*tn == 0)
		*tn = 1;
	*tau = *tn * limit;
}

/* One cell: advance TAT by T if that keeps it within tau of now (or, with
 * force, in any case, capped at now + tau). True if advanced. */
static bool cell_take(_Atomic uint64_t *c, uint64_t now, uint64_t tn, uint64_t tau, bool force)
{
	uint64_t old = atomic_load_explicit(c, memory_order_relaxed), nt;

	do {
		nt = (old > now ? old : now) + tn;
		if (nt - now > tau) {
			if (!force)
				return false;
			nt = now + tau;
			if (old >= nt)
				return true;	/* full already */
		}
	} while (!atomic_compare_exchange_weak_explicit(c, &old, nt, memory_order_relaxed,
							memory_order_relaxed));
	return true;
}

static uint32_t cell_level(uint64_t tat, uint64_t now, uint64_t tn)
{
	return tat > now ? (uint32_t)((tat - now + tn - 1) / tn) : 0;
}

static void top_note(struct client_limits *t, const struct cl_key *k, enum cl_kind kind,
		     uint32_t limit, uint64_t window_ns, uint64_t now);

int cl_take(struct client_limits *t, const struct cl_key *k, enum cl_kind kind, uint32_t limit,
	    uint64_t window_ns, uint64_t now_ns)
{
	uint64_t tn, tau;
	bool ok;

	if (limit == 0 || window_ns == 0)
		return 0;
	gcra_params(limit, window_ns, &tn, &tau);
	ok = cell_take(cell(t, k->hash, kind), now_ns, tn, tau, false);
	top_note(t, k, kind, limit, window_ns, now_ns);
	return ok ? 0 : 1;
}

bool cl_over(const struct client_limits *t, const struct cl_key *k, enum cl_kind kind,
	     uint32_t limit, uint64_t window_ns, uint64_t now_ns)
{
	uint64_t tn, tau, tat;

	if (limit == 0 || window_ns == 0)
		return false;
	gcra_params(limit, window_ns, &tn, &tau);
	tat = atomic_load_explicit(cell(t, k->hash, kind), memory_order_relaxed);
	return (tat > now_ns ? tat : now_ns) + tn - now_ns > tau;
}

void cl_count(struct client_limits *t, const struct cl_key *k, enum cl_kind kind, uint32_t limit,
	      uint64_t window_ns, uint64_t now_ns)
{
	uint64_t tn, tau;

	if (limit == 0 || window_ns == 0)
		return;
	gcra_params(limit, window_ns, &tn, &tau);
	cell_take(cell(t, k->hash, kind), now_ns, tn, tau, true);
	top_note(t, k, kind, limit, window_ns, now_ns);
}

void cl_refund(struct client_limits *t, const struct cl_key *k, enum cl_kind kind,
	       uint32_t limit, uint64_t window_ns, uint64_t now_ns)
{
	_Atomic uint64_t *c = cell(t, k->hash, kind);
	uint64_t tn, tau, old, nt;

	if (limit == 0 || window_ns == 0)
		return;
	gcra_params(limit, window_ns, &tn, &tau);
	old = atomic_load_explicit(c, memory_order_relaxed);
	do {
		if (old <= now_ns)
			return;
		nt = old - tn < now_ns || old < tn ? now_ns : old - tn;
	} while (!atomic_compare_exchange_weak_explicit(c, &old, nt, memory_order_relaxed,
							memory_order_relaxed));
}

static uint32_t level_of(const struct client_limits *t, uint64_t hash, enum cl_kind kind,
			 uint32_t limit, uint64_t window_ns, uint64_t now_ns)
{
	uint64_t tn, tau;

	if (limit == 0 || window_ns == 0)
		return 0;
	gcra_params(limit, window_ns, &tn, &tau);
	return cell_level(atomic_load_explicit(cell(t, hash, kind), memory_order_relaxed), now_ns,
			  tn);
}

uint32_t cl_level(const struct client_limits *t, const struct cl_key *k, enum cl_kind kind,
		  uint32_t limit, uint64_t window_ns, uint64_t now_ns)
{
	return level_of(t, k->hash, kind, limit, window_ns, now_ns);
}

/* ---- the top-clients table -------------------------------------------------- */

static struct cl_top_slot *top_slot(const struct client_limits *t, uint64_t hash)
{
	return (struct cl_top_slot *)&t->top[(hash >> 17) % CL_TOP];
}

/* Key k had an event: make it the slot's occupant if it is busier than the
 * one there (by this kind's level). Never waits. */
static void top_note(struct client_limits *t, const struct cl_key *k, enum cl_kind kind,
		     uint32_t limit, uint64_t window_ns, uint64_t now)
{
	struct cl_top_slot *s = top_slot(t, k->hash);
	uint64_t h = atomic_load_explicit(&s->hash, memory_order_relaxed);
	size_t len;
	unsigned seq;

	if (h == k->hash)
		return;
	if (h != 0 && level_of(t, h, kind, limit, window_ns, now) >=
		      level_of(t, k->hash, kind, limit, window_ns, now))
		return;
	seq = atomic_load_explicit(&s->seq, memory_order_relaxed);
	if ((seq & 1) || !atomic_compare_exchange_strong_explicit(&s->seq, &seq, seq + 1,
								  memory_order_acquire,
								  memory_order_relaxed))
		return;		/* another lcore is writing it: skip */
	atomic_store_explicit(&s->hash, k->hash, memory_order_relaxed);
	atomic_store_explicit(&s->ip, k->ip, memory_order_relaxed);
	atomic_store_explicit(&s->what, k->user ? CL_TOP_USER : k->v6 ? CL_TOP_NET6 : CL_TOP_ADDR,
			      memory_order_relaxed);
	len = k->user ? strnlen(k->user, CL_NAME_MAX) : k->v6 ? sizeof(k->net6) : 0;
	for (unsigned w = 0, i = 0; w < sizeof(s->name) / 8; w++) {
		uint64_t word = 0;
		for (unsigned b = 0; b < 8; b++, i++) {
			unsigned char ch = 0;
			if (i < len)
				ch = k->user ? (unsigned char)k->user[i] : k->net6[i];
			word |= (uint64_t)ch << (8 * b);
		}
		atomic_store_explicit(&s->name[w], word, memory_order_relaxed);
	}
	atomic_store_explicit(&s->seq, seq + 2, memory_order_release);
}

/* A consistent copy of slot s, or false (empty, or being written). */
static bool top_read(const struct cl_top_slot *s, struct cl_top_entry *e, uint64_t *hash)
{
	unsigned s1 = atomic_load_explicit(&s->seq, memory_order_acquire), s2;
	unsigned char what;

	if (s1 & 1)
		return false;
	*hash = atomic_load_explicit(&s->hash, memory_order_relaxed);
	e->ip = atomic_load_explicit(&s->ip, memory_order_relaxed);
	what = atomic_load_explicit(&s->what, memory_order_relaxed);
	e->user = what == CL_TOP_USER;
	e->v6 = what == CL_TOP_NET6;
	for (unsigned w = 0; w < sizeof(s->name) / 8; w++) {
		uint64_t word = atomic_load_explicit(&s->name[w], memory_order_relaxed);
		for (unsigned b = 0; b < 8 && w * 8 + b < sizeof(e->name); b++)
			e->name[w * 8 + b] = (char)(word >> (8 * b));
	}
	e->name[CL_NAME_MAX] = '\0';
	if (e->v6) {
		memcpy(e->net6, e->name, sizeof(e->net6));
		e->name[0] = '\0';
	}
	atomic_thread_fence(memory_order_acquire);
	s2 = atomic_load_explicit(&s->seq, memory_order_relaxed);
	return s1 == s2 && *hash != 0;
}

static int top_cmp(const void *a, const void *b)
{
	const struct cl_top_entry *x = a, *y = b;
	uint64_t sx = 0, sy = 0;

	if (x->permille != y->permille)
		return x->permille > y->permille ? -1 : 1;
	for (unsigned k = 0; k < CL_KINDS; k++) {
		sx += x->level[k];
		sy += y->level[k];
	}
	return sx > sy ? -1 : sx < sy ? 1 : 0;
}

unsigned cl_top(const struct client_limits *t, const struct cl_conf *c, uint64_t now_ns,
		struct cl_top_entry *out, unsigned max)
{
	struct cl_top_entry *all = malloc(sizeof(*all) * CL_TOP);
	unsigned n = 0;

	if (!all)
		return 0;
	for (unsigned i = 0; i < CL_TOP; i++) {
		struct cl_top_entry *e = &all[n];
		uint64_t hash;
		bool busy = false;

		memset(e, 0, sizeof(*e));
		if (!top_read(&t->top[i], e, &hash))
			continue;
		for (unsigned k = 0; k < CL_KINDS; k++) {
			uint32_t lim = e->user ? c->user[k] : c->addr[k];
			e->level[k] = level_of(t, hash, (enum cl_kind)k, lim, c->window_ns, now_ns);
			if (lim && e->level[k]) {
				uint32_t pm = (uint32_t)((uint64_t)e->level[k] * 1000 / lim);
				if (pm > e->permille)
					e->permille = pm;
				busy = true;
			}
		}
		if (busy)
			n++;
	}
	qsort(all, n, sizeof(*all), top_cmp);
	if (n > max)
		n = max;
	memcpy(out, all, sizeof(*out) * n);
	free(all);
	return n;
}

unsigned cl_tracked(const struct client_limits *t, uint64_t now_ns)
{
	unsigned n = 0;

	for (unsigned b = 0; b < CL_WIDTH; b++)
		for (unsigned k = 0; k < CL_KINDS; k++)
			if (atomic_load_explicit(&t->cell[b][k], memory_order_relaxed) > now_ns) {
				n++;
				break;
			}
	return n;
}
