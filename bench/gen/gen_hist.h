/*
 * gen_hist.h - a log-linear latency histogram (HdrHistogram's layout, fixed
 * precision): sluice-gen's connect, greeting and end-of-DATA-to-250 times.
 *
 * Values are nanoseconds (any uint64_t). Each power of two [2^e, 2^(e+1))
 * is split into GEN_HIST_SUB equal buckets, so a bucket is never wider
 * than 1/GEN_HIST_SUB of the values in it (6.25% with 16): the relative
 * error of a percentile is bounded whatever the range, and the structure
 * is a fixed array (no allocation, O(1) record, mergeable by addition).
 * Values below GEN_HIST_SUB have a bucket each (exact).
 *
 * One histogram per lcore and measure; the main thread merges them after
 * the lcores stop (or reads them racily for a running report).
 */
#ifndef SLUICE_GEN_HIST_H
#define SLUICE_GEN_HIST_H

#include <stdint.h>
#include <stdio.h>

#define GEN_HIST_SUB_BITS 4
#define GEN_HIST_SUB (1u << GEN_HIST_SUB_BITS)
/* values < SUB: one bucket each; then (64 - SUB_BITS) octaves of SUB */
#define GEN_HIST_BUCKETS (GEN_HIST_SUB + (64 - GEN_HIST_SUB_BITS) * GEN_HIST_SUB)

struct gen_hist {
	uint64_t count;
	uint64_t sum;			/* saturating */
	uint64_t min, max;
	uint64_t b[GEN_HIST_BUCKETS];
};

void gen_hist_init(struct gen_hist *h);
void gen_hist_record(struct gen_hist *h, uint64_t v);
/* dst += src */
void gen_hist_merge(struct gen_hist *dst, const struct gen_hist *src);

/* Bucket of a value, and the range [lo, hi] of values in a bucket. */
unsigned gen_hist_bucket(uint64_t v);
void gen_hist_bucket_range(unsigned idx, uint64_t *lo, uint64_t *hi);

/* The value at percentile p (0 < p <= 100): the upper bound of the bucket
 * holding the ceil(p% * count)-th smallest value, clamped to [min, max].
 * 0 when the histogram is empty. */
uint64_t gen_hist_percentile(const struct gen_hist *h, double p);

/* "p50=.. p90=.. p99=.. p99.9=.. max=.. n=.." in microseconds. */
void gen_hist_summary(const struct gen_hist *h, char *buf, size_t len);

/* The CDF as lines "upper_bound_ns cumulative_fraction" for every
 * non-empty bucket (for plots). */
void gen_hist_write_cdf(const struct gen_hist *h, FILE *out);

#endif
