/*
 * rate.h - rate limits by GCRA, the generic cell rate algorithm (as
 * KumoMTA's throttles and redis-cell use it).
 *
 * A limit is written "N/unit", unit one of s, min, h, d (also sec, second,
 * m, minute, hour, day), optionally followed by "burst B": "100/s",
 * "6/min burst 3". Empty or "unlimited" means no limit. Without a burst the
 * cells are evenly spaced (burst 1): one every unit/N.
 *
 * GCRA keeps one number per limit, the theoretical arrival time (TAT): the
 * instant at which the stream would be exactly on schedule. A request for n
 * cells at `now` moves it to max(TAT, now) + n*T, T = unit/N, and is allowed
 * when that is no further than burst*T ahead of now; otherwise it is refused
 * and the answer is how long until it would be allowed. So at most B cells
 * go at once, then one every T; idle time refills the burst at the same pace.
 * Over a span D from idle, at most B + D/T cells pass.
 *
 * Pure: no clock reads, no heap; times are the caller's monotonic ns.
 */
#ifndef SLUICE_RATE_H
#define SLUICE_RATE_H

#include <stddef.h>
#include <stdint.h>

#define RATE_NEVER UINT64_MAX		/* more cells than the burst: never at once */
#define RATE_BURST_MAX 1000000u
#define RATE_MIN_INTERVAL_NS 1000ull	/* at most 1,000,000 cells per second */
#define RATE_MAX_TOLERANCE_NS (7ull * 86400 * 1000000000)	/* burst * T <= 7 days */
#define RATE_TEXT_MAX 48		/* rate_format's longest text + NUL */

/* A parsed limit. n == 0: unlimited. */
struct rate_spec {
	uint32_t n;			/* cells per period */
	uint32_t burst;			/* cells at once, >= 1 */
	uint64_t period_ns;		/* 1 s, 1 min, 1 h or 1 d */
};

/* One limit's state. */
struct gcra {
	uint64_t t_ns;			/* emission interval T = period / n; 0: unlimited */
	uint64_t tau_ns;		/* burst * T: how far TAT may run ahead of now */
	uint64_t tat_ns;		/* theoretical arrival time */
	uint32_t burst;
};

/* Parse "N/unit [burst B]". 0, or -1 with err filled. */
int rate_parse(const char *text, struct rate_spec *out, char *err, size_t errlen);

/* "100/s", "6/min burst 3" or "unlimited" (at most RATE_TEXT_MAX - 1 chars). */
void rate_format(const struct rate_spec *s, char *buf, size_t len);

/* A fresh limit (full burst available). s must come from rate_parse. */
void rate_init(struct gcra *g, const struct rate_spec *s);

/* Take n cells at now_ns: 0 when allowed (and taken), else the ns to wait
 * before they would be (nothing taken), RATE_NEVER when n > burst. */
uint64_t rate_take(struct gcra *g, uint64_t now_ns, unsigned n);

/* What rate_take would answer, without taking. */
uint64_t rate_peek(const struct gcra *g, uint64_t now_ns, unsigned n);

/* The first instant at which a full burst is available again (<= now: idle). */
uint64_t rate_idle_at(const struct gcra *g);

#endif
