/*
 * impair.h - seeded packet impairment for tests: drop, duplicate, reorder,
 * corrupt, on RX and on TX.
 *
 * There is no netem on the test machines, so loss and disorder come from
 * here. Off by default (all rates zero); when on, the poll loop passes each
 * RX burst through impair_burst() before the stack sees it, and each TX
 * burst before the port does. Rates are in parts per million; the PRNG is
 * xorshift64* seeded from config, one state per lcore and direction, so a
 * run is repeatable for a given seed and traffic order.
 *
 * push_drop_every drops every Nth TCP segment with PSH, deterministically.
 *
 * Reordering holds one packet back and releases it after the next one (or
 * after hold_ns when traffic stops). Corruption flips one random bit in the
 * frame past the Ethernet header, so checksums must catch it (it clears the
 * port's RX checksum verdicts in ol_flags, which the stack would trust).
 */
#ifndef SLUICE_IMPAIR_H
#define SLUICE_IMPAIR_H

#include <stdbool.h>
#include <stdint.h>

#include "common/stats.h"

struct rte_mbuf;
struct rte_mempool;

#define IMPAIR_PPM 1000000u

struct impair_rates {
	uint32_t drop, dup, reorder, corrupt;	/* each in ppm */
	/* Not random: drop every Nth IPv4 TCP segment with PSH set (our stack
	 * sets it on the last segment of what is queued: an SMTP reply's only
	 * segment), to lose the tail of every Nth exchange. 0: off. */
	uint32_t push_drop_every;
};

struct impair_conf {
	uint64_t seed;
	struct impair_rates rx, tx;
	uint64_t hold_ns;	/* longest a reordered packet is held */
};

#define IMPAIR_STATS(X) X(dropped) X(duplicated) X(reordered) X(corrupted) X(dup_nombuf)
struct impair_stats {
	IMPAIR_STATS(STATS_FIELD)
};
extern const char *const impair_stat_names[];
extern const unsigned impair_stat_count;

/* One direction's state on one lcore. */
struct impair {
	struct impair_rates rates;
	uint64_t rng;
	struct rte_mbuf *held;		/* packet kept back for reordering */
	uint64_t held_since_ns;
	uint64_t hold_ns;
	struct rte_mempool *pool;	/* for duplicates */
	uint32_t push_seen;		/* PSH segments since the last drop */
	struct impair_stats stats;
};

/* True when any rate of either direction is non-zero. */
bool impair_conf_active(const struct impair_conf *c);

/* stream distinguishes lcores/directions so each gets its own sequence. */
void impair_init(struct impair *im, const struct impair_conf *c, bool rx,
		 uint64_t stream, struct rte_mempool *pool);

/*
 * Impair a burst in place: pkts[0..n) in, returns the new count (up to max,
 * which must leave room for duplicates and a released held packet).
 * Dropped packets are freed; duplicates come from im->pool.
 */
uint16_t impair_burst(struct impair *im, struct rte_mbuf **pkts, uint16_t n,
		      uint16_t max, uint64_t now_ns);

/* Release a held packet when traffic has stopped for hold_ns (else NULL). */
struct rte_mbuf *impair_release(struct impair *im, uint64_t now_ns, bool force);

/* Parse "2%", "0.5%" or a plain ppm integer into ppm; -1 on error. */
int64_t impair_parse_rate(const char *s);

#endif
