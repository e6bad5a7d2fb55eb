/*
 * gen_dist.h - the random choices of sluice-gen: a small fast PRNG, message
 * size distributions and weighted lists (recipient domains, local parts,
 * the sink's per-domain outcomes).
 *
 * Pure: no EAL, no heap, no clock. Each lcore owns its own generator
 * (seeded from the run's seed and the worker number), so a run with the
 * same seed and options makes the same choices on each lcore.
 *
 * Size specs (bytes; k/K = 1024, m/M = 1048576):
 *   "10k"              fixed
 *   "1k-100k"          uniform over the range
 *   "exp:10k"          exponential with that mean (capped at 64x the mean)
 *   "1k:50,10k:40,1m:10"  weighted fixed sizes (weights are relative)
 * Weighted lists: "a.test:3,b.test:1" (a name without ":W" weighs 1).
 */
#ifndef SLUICE_GEN_DIST_H
#define SLUICE_GEN_DIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gen_rng {
	uint64_t s[2];
};
void gen_rng_seed(struct gen_rng *r, uint64_t seed);
uint64_t gen_rng_next(struct gen_rng *r);
/* uniform in [0, n) (n > 0) */
uint64_t gen_rng_below(struct gen_rng *r, uint64_t n);
/* uniform in [0, 1) */
double gen_rng_unit(struct gen_rng *r);

#define GEN_DIST_MAX 16		/* entries of a weighted size list */
#define GEN_SIZE_MAX (64ull * 1024 * 1024)

enum gen_size_kind { GEN_SIZE_FIXED = 0, GEN_SIZE_UNIFORM, GEN_SIZE_EXP, GEN_SIZE_WEIGHTED };

struct gen_size_dist {
	enum gen_size_kind kind;
	uint64_t a, b;			/* fixed: a; uniform: [a, b]; exp: mean a */
	unsigned n;			/* weighted */
	uint64_t size[GEN_DIST_MAX];
	uint32_t cum[GEN_DIST_MAX];	/* cumulative weights */
};

/* Parse a size spec. 0, or -1 with err filled. Every size must be in
 * [min, GEN_SIZE_MAX]. */
int gen_size_parse(struct gen_size_dist *d, const char *spec, uint64_t min,
		   char *err, size_t errlen);
uint64_t gen_size_sample(const struct gen_size_dist *d, struct gen_rng *r);
/* The largest size the distribution can give. */
uint64_t gen_size_max(const struct gen_size_dist *d);

/* "10k", "1m", "512": bytes. 0, or -1. */
int gen_parse_bytes(const char *s, uint64_t *out);

#define GEN_WLIST_MAX 32
#define GEN_WNAME_MAX 128

struct gen_wlist {
	unsigned n;
	char name[GEN_WLIST_MAX][GEN_WNAME_MAX];
	uint32_t cum[GEN_WLIST_MAX];
};
/* Parse "name:weight,..." (weights 1..1000000). 0, or -1 with err. */
int gen_wlist_parse(struct gen_wlist *w, const char *spec, char *err, size_t errlen);
/* A name at random by weight (the list must not be empty). */
const char *gen_wlist_pick(const struct gen_wlist *w, struct gen_rng *r);

#endif
