/*
 * retry.c - retry schedules: parsing, per-domain overrides, and the time of
 * the next attempt. See retry.h.
 */
#include "control/retry.h"
#include "control/domain_key.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* One duration: digits then s, m, h or d (no suffix: seconds). 0 or -1. */
static int parse_step(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0, mul = 1;
	size_t i = 0;

	if (len == 0 || !isdigit((unsigned char)s[0]))
		return -1;
	for (; i < len && isdigit((unsigned char)s[i]); i++) {
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > RETRY_STEP_MAX_S)
			return -1;
	}
	if (i < len) {
		if (i + 1 != len)
			return -1;
		switch (s[i]) {
		case 's': mul = 1; break;
		case 'm': mul = 60; break;
		case 'h': mul = 3600; break;
		case 'd': mul = 86400; break;
		default: return -1;
		}
	}
	*out = v * mul;
	return 0;
}

int retry_schedule_parse(const char *text, struct retry_schedule *out, char *err, size_t errlen)
{
	const char *p = text;

	memset(out, 0, sizeof(*out));
	while (*p == ' ' || *p == '\t')
		p++;
	if (strcasecmp(p, "exponential") == 0) {
		out->kind = RETRY_EXPONENTIAL;
		return 0;
	}
	if (strcasecmp(p, "quadratic") == 0) {
		out->kind = RETRY_QUADRATIC;
		return 0;
	}
	if (*p == '\0') {
		snprintf(err, errlen, "empty (exponential, quadratic, or a list like 5m,10m,1h)");
		return -1;
	}
	out->kind = RETRY_LIST;
	for (;;) {
		size_t len = strcspn(p, ", \t");
		uint64_t v;

		if (parse_step(p, len, &v) < 0 || v == 0 || v > RETRY_STEP_MAX_S) {
			snprintf(err, errlen, "'%.*s' is not a wait like 30s, 5m, 1h or 2d "
				 "(1 s .. 30 d); schedule is exponential, quadratic or a list",
				 (int)(len > 40 ? 40 : len), p);
			return -1;
		}
		if (out->nsteps == RETRY_STEPS_MAX) {
			snprintf(err, errlen, "more than %d waits in the list", RETRY_STEPS_MAX);
			return -1;
		}
		out->step_s[out->nsteps++] = (uint32_t)v;
		p += len;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			return 0;
		if (*p != ',') {
			snprintf(err, errlen, "expected ',' at '%.20s'", p);
			return -1;
		}
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
	}
}

/* Name the key at fault (if asked) and fail. */
static int bad_key(const char **key, const char *k)
{
	if (key)
		*key = k;
	return -1;
}

int retry_conf_check(const struct retry_conf *c, const char **key, char *err, size_t errlen)
{
	if (c->min_backoff_s < 1) {
		snprintf(err, errlen, "must be at least 1 s");
		return bad_key(key, "min_backoff");
	}
	if (c->min_backoff_s > c->max_backoff_s) {
		snprintf(err, errlen, "%llus is above max_backoff (%llus)",
			 (unsigned long long)c->min_backoff_s, (unsigned long long)c->max_backoff_s);
		return bad_key(key, "min_backoff");
	}
	if (c->jitter_ppm > RETRY_JITTER_MAX_PPM) {
		snprintf(err, errlen, "%g%% is above 50%%", c->jitter_ppm / 10000.0);
		return bad_key(key, "jitter");
	}
	return 0;
}

/* ---- per-domain overrides ---- */



/* One "domain: schedule" entry of [retry] per_domain into p->o. */
static int add_override(void *ctx, const struct domain_key *k, const char *sched, size_t len,
			char *err, size_t errlen)
{
	struct retry_policy *p = ctx;
	struct retry_override *o = &p->o[p->n];
	char buf[1024];

	if (len >= sizeof(buf)) {
		snprintf(err, errlen, "schedule too long");
		return -1;
	}
	memcpy(buf, sched, len);
	buf[len] = '\0';
	if (retry_schedule_parse(buf, &o->s, err, errlen) < 0)
		return -1;
	o->key = *k;
	p->n++;
	return 0;
}

/* "domain: schedule; domain: schedule ..." into p->o. 0 or -1. */
static int parse_overrides(struct retry_policy *p, const char *text, char *err, size_t errlen)
{
	return domain_key_list(text, RETRY_DOMAINS_MAX, "schedule", add_override, p,
			       err, errlen) < 0 ? -1 : 0;
}

int retry_policy_init(struct retry_policy *p, const char *schedule, const char *per_domain,
		      const struct retry_conf *c, const char **key, char *err, size_t errlen)
{
	memset(p, 0, sizeof(*p));
	p->lifetime_s = 5 * 86400;
	p->bounce_lifetime_s = 86400;
	if (retry_schedule_parse(schedule, &p->def, err, errlen) < 0)
		return bad_key(key, "schedule");
	if (retry_conf_check(c, key, err, errlen) < 0)
		return -1;
	p->conf = *c;
	if (per_domain && parse_overrides(p, per_domain, err, errlen) < 0) {
		p->n = 0;
		return bad_key(key, "per_domain");
	}
	return 0;
}

/* ---- lifetimes ---- */

struct life_ctx {
	struct retry_lifetime *v;
	unsigned n;
};

/* One "domain: 2d" entry of lifetime_per_domain. */
static int add_lifetime(void *ctx, const struct domain_key *k, const char *text, size_t len,
			char *err, size_t errlen)
{
	struct life_ctx *c = ctx;
	uint64_t v;

	if (parse_step(text, len, &v) < 0 || v < RETRY_LIFETIME_MIN_S ||
	    v > RETRY_LIFETIME_MAX_S) {
		snprintf(err, errlen, "'%.*s' is not a lifetime like 12h or 3d (1m .. 365d)",
			 (int)(len > 40 ? 40 : len), text);
		return -1;
	}
	c->v[c->n].key = *k;
	c->v[c->n].lifetime_s = v;
	c->n++;
	return 0;
}

int retry_lifetime_init(struct retry_policy *p, uint64_t lifetime_s, uint64_t bounce_lifetime_s,
			const char *per_domain, char *err, size_t errlen)
{
	struct retry_lifetime v[RETRY_DOMAINS_MAX];
	struct life_ctx c = { v, 0 };

	if (lifetime_s < RETRY_LIFETIME_MIN_S || lifetime_s > RETRY_LIFETIME_MAX_S ||
	    bounce_lifetime_s < RETRY_LIFETIME_MIN_S || bounce_lifetime_s > RETRY_LIFETIME_MAX_S) {
		snprintf(err, errlen, "lifetimes must be 1m .. 365d");
		return -1;
	}
	if (per_domain && domain_key_list(per_domain, RETRY_DOMAINS_MAX, "lifetime",
					  add_lifetime, &c, err, errlen) < 0)
		return -1;
	p->lifetime_s = lifetime_s;
	p->bounce_lifetime_s = bounce_lifetime_s;
	memcpy(p->life, v, c.n * sizeof(v[0]));
	p->nlife = c.n;
	return 0;
}

static const struct retry_lifetime *lifetime_entry(const struct retry_policy *p,
						   const char *domain)
{
	const struct retry_lifetime *best = NULL;
	unsigned score = 0;

	for (unsigned i = 0; domain && i < p->nlife; i++) {
		unsigned m = domain_key_match(&p->life[i].key, domain);
		if (m > score) {
			score = m;
			best = &p->life[i];
		}
	}
	return best;
}

uint64_t retry_lifetime_for(const struct retry_policy *p, const char *domain, bool null_sender)
{
	const struct retry_lifetime *e = lifetime_entry(p, domain);
	uint64_t t = e ? e->lifetime_s : p->lifetime_s;

	if (null_sender && t > p->bounce_lifetime_s)
		t = p->bounce_lifetime_s;
	return t;
}

bool retry_lifetime_overridden(const struct retry_policy *p, const char *domain)
{
	return lifetime_entry(p, domain) != NULL;
}

const struct retry_schedule *retry_schedule_for(const struct retry_policy *p,
						const char *domain)
{
	const struct retry_override *best = NULL;
	unsigned score = 0;

	for (unsigned i = 0; i < p->n; i++) {
		unsigned m = domain_key_match(&p->o[i].key, domain);
		if (m > score) {
			score = m;
			best = &p->o[i];
		}
	}
	return best ? &best->s : &p->def;
}

/* ---- the next attempt ---- */

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t sat_mul(uint64_t a, uint64_t b)
{
	return b && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

/* floor(sqrt(x)), exactly (digit by digit, no floating point). */
static uint64_t isqrt(uint64_t x)
{
	uint64_t r = 0, bit = 1ull << 62;

	while (bit > x)
		bit >>= 2;
	while (bit) {
		if (x >= r + bit) {
			x -= r + bit;
			r = (r >> 1) + bit;
		} else {
			r >>= 1;
		}
		bit >>= 2;
	}
	return r;
}

/* SplitMix64's finalizer: a well-mixed 64-bit value from any input. */
static uint64_t mix64(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* wait +- up to ppm/1e6 of it, uniformly, from the seed. */
static uint64_t jitter(uint64_t wait, uint32_t ppm, uint64_t seed, unsigned attempts)
{
	uint64_t span, h;

	if (ppm == 0 || wait == 0)
		return wait;
	if (ppm > RETRY_JITTER_MAX_PPM)
		ppm = RETRY_JITTER_MAX_PPM;
	span = (wait / 1000000) * ppm + (wait % 1000000) * ppm / 1000000;	/* <= wait/2 */
	if (span == 0)
		return wait;
	h = mix64(seed ^ mix64(attempts));
	return sat_add(wait - span, h % (2 * span + 1));
}

uint64_t retry_next(const struct retry_schedule *s, const struct retry_conf *c,
		    uint64_t arrival, uint64_t now, unsigned attempts, uint64_t jitter_seed)
{
	uint64_t age = now > arrival ? now - arrival : 0, wait, next;
	unsigned idx;

	switch (s->kind) {
	case RETRY_QUADRATIC: {
		uint64_t root = isqrt(age) + 20;

		next = sat_add(arrival > now ? now : arrival, sat_mul(root, root));
		wait = next - now;	/* > 0: (floor(sqrt(age)) + 20)^2 > age */
		break;
	}
	case RETRY_LIST:
		idx = attempts == 0 ? 0 : attempts - 1;
		if (s->nsteps == 0)
			wait = c->min_backoff_s;	/* not from the parser */
		else
			wait = s->step_s[idx < s->nsteps ? idx : s->nsteps - 1];
		break;
	case RETRY_EXPONENTIAL:
	default:
		wait = age < c->min_backoff_s ? c->min_backoff_s : age;
		if (wait > c->max_backoff_s)
			wait = c->max_backoff_s;
		break;
	}
	wait = jitter(wait, c->jitter_ppm, jitter_seed, attempts);
	return sat_add(now, wait < 1 ? 1 : wait);
}

uint64_t retry_next_for(const struct retry_policy *p, const char *domain, uint64_t arrival,
			uint64_t now, unsigned attempts, uint64_t jitter_seed)
{
	return retry_next(retry_schedule_for(p, domain), &p->conf, arrival, now, attempts,
			  jitter_seed);
}
