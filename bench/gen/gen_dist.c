/*
 * gen_dist.c - PRNG, size distributions, weighted lists. See gen_dist.h.
 */
#include "bench/gen/gen_dist.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* splitmix64: seeds the state of xorshift128+ */
static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void gen_rng_seed(struct gen_rng *r, uint64_t seed)
{
	r->s[0] = splitmix(&seed);
	r->s[1] = splitmix(&seed);
	if (!r->s[0] && !r->s[1])
		r->s[1] = 1;
}

uint64_t gen_rng_next(struct gen_rng *r)
{
	uint64_t a = r->s[0];
	const uint64_t b = r->s[1];

	r->s[0] = b;
	a ^= a << 23;
	r->s[1] = a ^ b ^ (a >> 17) ^ (b >> 26);
	return r->s[1] + b;
}

uint64_t gen_rng_below(struct gen_rng *r, uint64_t n)
{
	/* Lemire's multiply-shift; the bias is below 2^-64 * n: negligible here */
	return (uint64_t)(((unsigned __int128)gen_rng_next(r) * n) >> 64);
}

double gen_rng_unit(struct gen_rng *r)
{
	return (double)(gen_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

int gen_parse_bytes(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	if (*end == 'k' || *end == 'K') {
		v *= 1024;
		end++;
	} else if (*end == 'm' || *end == 'M') {
		v *= 1024 * 1024;
		end++;
	}
	if (*end)
		return -1;
	*out = v;
	return 0;
}

static int bytes_in(const char *s, uint64_t min, uint64_t *out, char *err, size_t errlen)
{
	if (gen_parse_bytes(s, out) < 0) {
		snprintf(err, errlen, "bad size \"%s\"", s);
		return -1;
	}
	if (*out < min || *out > GEN_SIZE_MAX) {
		snprintf(err, errlen, "size %s out of range [%llu, %llu]", s,
			 (unsigned long long)min, (unsigned long long)GEN_SIZE_MAX);
		return -1;
	}
	return 0;
}

int gen_size_parse(struct gen_size_dist *d, const char *spec, uint64_t min,
		   char *err, size_t errlen)
{
	char buf[512], *save = NULL, *tok, *dash;
	uint32_t total = 0;

	memset(d, 0, sizeof(*d));
	if (!spec || !*spec || strlen(spec) >= sizeof(buf)) {
		snprintf(err, errlen, "empty or too long size spec");
		return -1;
	}
	snprintf(buf, sizeof(buf), "%s", spec);
	if (strncmp(buf, "exp:", 4) == 0) {
		d->kind = GEN_SIZE_EXP;
		return bytes_in(buf + 4, min, &d->a, err, errlen);
	}
	if (strchr(buf, ':')) {
		d->kind = GEN_SIZE_WEIGHTED;
		for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			char *c = strchr(tok, ':'), *end;
			unsigned long w;
			if (!c || d->n == GEN_DIST_MAX) {
				snprintf(err, errlen, "bad weighted size \"%s\" (SIZE:WEIGHT, at most %d)",
					 tok, GEN_DIST_MAX);
				return -1;
			}
			*c = '\0';
			if (bytes_in(tok, min, &d->size[d->n], err, errlen) < 0)
				return -1;
			errno = 0;
			w = strtoul(c + 1, &end, 10);
			if (errno || *end || w == 0 || w > 1000000) {
				snprintf(err, errlen, "bad weight \"%s\"", c + 1);
				return -1;
			}
			total += (uint32_t)w;
			d->cum[d->n++] = total;
		}
		if (d->n == 0) {
			snprintf(err, errlen, "empty size list");
			return -1;
		}
		return 0;
	}
	dash = strchr(buf, '-');
	if (dash) {
		*dash = '\0';
		d->kind = GEN_SIZE_UNIFORM;
		if (bytes_in(buf, min, &d->a, err, errlen) < 0 ||
		    bytes_in(dash + 1, min, &d->b, err, errlen) < 0)
			return -1;
		if (d->b < d->a) {
			snprintf(err, errlen, "size range %s: upper bound below lower", spec);
			return -1;
		}
		return 0;
	}
	d->kind = GEN_SIZE_FIXED;
	return bytes_in(buf, min, &d->a, err, errlen);
}

uint64_t gen_size_max(const struct gen_size_dist *d)
{
	uint64_t m = 0;

	switch (d->kind) {
	case GEN_SIZE_FIXED:
		return d->a;
	case GEN_SIZE_UNIFORM:
		return d->b;
	case GEN_SIZE_EXP:
		m = d->a * 64;
		return m > GEN_SIZE_MAX ? GEN_SIZE_MAX : m;
	case GEN_SIZE_WEIGHTED:
		for (unsigned i = 0; i < d->n; i++)
			if (d->size[i] > m)
				m = d->size[i];
		return m;
	}
	return 0;
}

uint64_t gen_size_sample(const struct gen_size_dist *d, struct gen_rng *r)
{
	switch (d->kind) {
	case GEN_SIZE_FIXED:
		return d->a;
	case GEN_SIZE_UNIFORM:
		return d->a + gen_rng_below(r, d->b - d->a + 1);
	case GEN_SIZE_EXP: {
		double u = gen_rng_unit(r), v = -log(1.0 - u) * (double)d->a;
		uint64_t cap = gen_size_max(d), s = (uint64_t)v;
		return s < 1 ? 1 : s > cap ? cap : s;
	}
	case GEN_SIZE_WEIGHTED: {
		uint64_t x = gen_rng_below(r, d->cum[d->n - 1]);
		for (unsigned i = 0; i < d->n; i++)
			if (x < d->cum[i])
				return d->size[i];
		return d->size[d->n - 1];
	}
	}
	return d->a;
}

int gen_wlist_parse(struct gen_wlist *w, const char *spec, char *err, size_t errlen)
{
	char buf[GEN_WLIST_MAX * (GEN_WNAME_MAX + 12)], *save = NULL, *tok;
	uint32_t total = 0;

	memset(w, 0, sizeof(*w));
	if (!spec || !*spec || strlen(spec) >= sizeof(buf)) {
		snprintf(err, errlen, "empty or too long list");
		return -1;
	}
	snprintf(buf, sizeof(buf), "%s", spec);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *c = strrchr(tok, ':'), *end;
		unsigned long wt = 1;
		if (w->n == GEN_WLIST_MAX) {
			snprintf(err, errlen, "more than %d entries", GEN_WLIST_MAX);
			return -1;
		}
		if (c) {
			*c = '\0';
			errno = 0;
			wt = strtoul(c + 1, &end, 10);
			if (errno || *end || wt > 1000000 || c[1] == '\0') {
				snprintf(err, errlen, "bad weight \"%s\"", c + 1);
				return -1;
			}
		}
		if (!*tok || strlen(tok) >= GEN_WNAME_MAX || strpbrk(tok, " \t<>@")) {
			snprintf(err, errlen, "bad name \"%s\"", tok);
			return -1;
		}
		if (wt == 0)
			continue;	/* weight 0: listed, never chosen */
		snprintf(w->name[w->n], GEN_WNAME_MAX, "%s", tok);
		total += (uint32_t)wt;
		w->cum[w->n++] = total;
	}
	if (w->n == 0) {
		snprintf(err, errlen, "no entry with a weight above 0");
		return -1;
	}
	return 0;
}

const char *gen_wlist_pick(const struct gen_wlist *w, struct gen_rng *r)
{
	uint64_t x = gen_rng_below(r, w->cum[w->n - 1]);

	for (unsigned i = 0; i < w->n; i++)
		if (x < w->cum[i])
			return w->name[i];
	return w->name[w->n - 1];
}
