/*
 * stats.h - named counters.
 *
 * Every counter in Sluice has a name. A module lists its counters once in an
 * X-macro and gets from it both the struct of uint64_t fields and the table
 * of names, so the two can never drift apart:
 *
 *     #define ARP_STATS(X) X(rx_request) X(rx_reply) X(drop_short)
 *     struct arp_stats { ARP_STATS(STATS_FIELD) };
 *     static const char *const arp_stat_names[] = { ARP_STATS(STATS_NAME) };
 *
 * Counters live in per-lcore or per-shard structs and are written by their
 * owner only; readers (stats dump, control socket) read them racily, which
 * is fine for monotonically increasing 64-bit values on x86-64.
 */
#ifndef SLUICE_STATS_H
#define SLUICE_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define STATS_FIELD(name) uint64_t name;
#define STATS_NAME(name)  #name,
#define STATS_COUNT(arr)  (sizeof(arr) / sizeof((arr)[0]))

/* View a stats struct (all uint64_t fields) as an array of counters. */
#define STATS_VALUES(ptr) ((const uint64_t *)(const void *)(ptr))

/*
 * Print "prefix.name value" lines for every counter (or only the non-zero
 * ones when nonzero_only). Returns the number of lines written.
 */
static inline int stats_print(FILE *out, const char *prefix,
			      const char *const *names, const uint64_t *values,
			      size_t n, int nonzero_only)
{
	int lines = 0;
	for (size_t i = 0; i < n; i++) {
		if (nonzero_only && values[i] == 0)
			continue;
		fprintf(out, "%s.%s %llu\n", prefix, names[i],
			(unsigned long long)values[i]);
		lines++;
	}
	return lines;
}

/* Add a stats struct's n counters into sum[] (summing per-lcore structs). */
static inline void stats_add(uint64_t *sum, const void *stats, size_t n)
{
	const uint64_t *v = STATS_VALUES(stats);
	for (size_t i = 0; i < n; i++)
		sum[i] += v[i];
}

/*
 * A reader of counters, called once per counter with its group ("tcp"), its
 * name ("rx_segments") and its value. Modules offer their counters as
 * *_stats_visit(..., fn, user) rather than writing any format themselves:
 * the control socket's `stats` builds a JSON object from the same walk that
 * a metrics exporter turns into its own names.
 */
typedef void (*stats_visit_fn)(void *user, const char *group, const char *name,
			       uint64_t value);

/* Give n counters of one group to fn. */
static inline void stats_visit(stats_visit_fn fn, void *user, const char *group,
			       const char *const *names, const uint64_t *values, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fn(user, group, names[i], values[i]);
}

#endif
