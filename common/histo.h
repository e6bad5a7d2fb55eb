/*
 * histo.h - a log-linear histogram of 64-bit values (latencies in ns).
 *
 * HdrHistogram's layout with 4 linear sub-buckets per power of two: values
 * 0..3 have a bucket each; above, the value's highest set bit picks the
 * octave and the next HISTO_SUB_BITS bits the sub-bucket. So every bucket
 * is at most 25% wide relative to its lower bound, over the whole 64-bit
 * range, in HISTO_BUCKETS counters (2 KiB), with no configuration and no
 * value out of range.
 *
 *   histo_index(v)      the bucket of v
 *   histo_upper(i)      the largest value bucket i holds (its `le`)
 *   histo_count_le(h,x) how many values are <= x, exactly when x is a
 *                       bucket's upper bound (every power of two less 1 is)
 *
 * One writer (the thread that measures) calls histo_add; other threads read
 * the struct racily, word by word, as common/stats.h allows: count and sum
 * may lag the buckets by a value, so exporters count from the buckets.
 */
#ifndef SLUICE_HISTO_H
#define SLUICE_HISTO_H

#include <stdint.h>

#define HISTO_SUB_BITS 2
#define HISTO_SUB (1u << HISTO_SUB_BITS)
#define HISTO_BUCKETS ((64 - HISTO_SUB_BITS + 1) * HISTO_SUB)	/* 252 */

struct histo {
	uint64_t count;			/* values added */
	uint64_t sum;			/* their sum (wraps after 584 years of ns) */
	uint64_t b[HISTO_BUCKETS];
};

static inline unsigned histo_index(uint64_t v)
{
	unsigned msb, shift;

	if (v < HISTO_SUB)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	shift = msb - HISTO_SUB_BITS;
	return (shift + 1) * HISTO_SUB + (unsigned)((v >> shift) & (HISTO_SUB - 1));
}

/* The smallest value of bucket i. */
static inline uint64_t histo_lower(unsigned i)
{
	unsigned shift;

	if (i < HISTO_SUB)
		return i;
	shift = i / HISTO_SUB - 1;
	return (uint64_t)(HISTO_SUB + i % HISTO_SUB) << shift;
}

/* The largest value of bucket i (i < HISTO_BUCKETS). */
static inline uint64_t histo_upper(unsigned i)
{
	return i + 1 < HISTO_BUCKETS ? histo_lower(i + 1) - 1 : UINT64_MAX;
}

static inline void histo_add(struct histo *h, uint64_t v)
{
	h->b[histo_index(v)]++;
	h->count++;
	h->sum += v;
}

/* Values <= x (exact when x is some bucket's upper bound, else the count
 * up to the bucket below the one holding x). */
static inline uint64_t histo_count_le(const struct histo *h, uint64_t x)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < HISTO_BUCKETS && histo_upper(i) <= x; i++)
		n += h->b[i];
	return n;
}

#endif
