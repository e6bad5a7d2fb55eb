/*
 * gen_hist.c - log-linear latency histogram. See gen_hist.h.
 */
#include "bench/gen/gen_hist.h"

#include <string.h>

void gen_hist_init(struct gen_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

unsigned gen_hist_bucket(uint64_t v)
{
	unsigned e, sub;

	if (v < GEN_HIST_SUB)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v);		/* 2^e <= v */
	sub = (unsigned)(v >> (e - GEN_HIST_SUB_BITS)) & (GEN_HIST_SUB - 1);
	return GEN_HIST_SUB + (e - GEN_HIST_SUB_BITS) * GEN_HIST_SUB + sub;
}

void gen_hist_bucket_range(unsigned idx, uint64_t *lo, uint64_t *hi)
{
	unsigned e, sub;
	uint64_t width;

	if (idx < GEN_HIST_SUB) {
		*lo = *hi = idx;
		return;
	}
	idx -= GEN_HIST_SUB;
	e = idx / GEN_HIST_SUB + GEN_HIST_SUB_BITS;
	sub = idx % GEN_HIST_SUB;
	width = 1ull << (e - GEN_HIST_SUB_BITS);
	*lo = (1ull << e) + sub * width;
	*hi = *lo + (width - 1);
}

void gen_hist_record(struct gen_hist *h, uint64_t v)
{
	h->b[gen_hist_bucket(v)]++;
	h->count++;
	h->sum = h->sum + v < h->sum ? UINT64_MAX : h->sum + v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

void gen_hist_merge(struct gen_hist *dst, const struct gen_hist *src)
{
	for (unsigned i = 0; i < GEN_HIST_BUCKETS; i++)
		dst->b[i] += src->b[i];
	dst->count += src->count;
	dst->sum = dst->sum + src->sum < dst->sum ? UINT64_MAX : dst->sum + src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t gen_hist_percentile(const struct gen_hist *h, double p)
{
	uint64_t rank, seen = 0, lo, hi;

	if (h->count == 0)
		return 0;
	if (p <= 0)
		return h->min;
	if (p >= 100)
		return h->max;
	rank = (uint64_t)((p / 100.0) * (double)h->count);
	if ((double)rank < (p / 100.0) * (double)h->count)
		rank++;		/* ceil */
	if (rank == 0)
		rank = 1;
	for (unsigned i = 0; i < GEN_HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			gen_hist_bucket_range(i, &lo, &hi);
			if (hi > h->max)
				hi = h->max;
			if (hi < h->min)
				hi = h->min;
			return hi;
		}
	}
	return h->max;
}

void gen_hist_summary(const struct gen_hist *h, char *buf, size_t len)
{
	snprintf(buf, len, "p50=%.1f p90=%.1f p99=%.1f p99.9=%.1f max=%.1f us n=%llu",
		 gen_hist_percentile(h, 50) / 1e3, gen_hist_percentile(h, 90) / 1e3,
		 gen_hist_percentile(h, 99) / 1e3, gen_hist_percentile(h, 99.9) / 1e3,
		 h->count ? h->max / 1e3 : 0.0, (unsigned long long)h->count);
}

void gen_hist_write_cdf(const struct gen_hist *h, FILE *out)
{
	uint64_t seen = 0, lo, hi;

	for (unsigned i = 0; i < GEN_HIST_BUCKETS; i++) {
		if (!h->b[i])
			continue;
		seen += h->b[i];
		gen_hist_bucket_range(i, &lo, &hi);
		fprintf(out, "%llu %.6f\n", (unsigned long long)hi, (double)seen / (double)h->count);
	}
}
