/*
 * retry.h - retry schedules: when a deferred message is tried again.
 *
 * A schedule is written in the configuration ([retry] schedule) as one of
 *   exponential          Postfix: next = now + clamp(age, min_backoff, max_backoff)
 *   quadratic            qmail: next = arrival + (floor(sqrt(age)) + 20)^2 s
 *   5m,10m,30m,1h,...    an explicit list of waits; the last one repeats
 * where age = now - arrival. Per-domain overrides ([retry] per_domain) give
 * some domains a schedule of their own:
 *   per_domain = example.com: quadratic; .example.net: 5m, 10m, 1h
 * "example.com" matches that domain only, ".example.net" any subdomain of it
 * (not example.net itself); case-insensitive, a trailing dot ignored; an
 * exact entry wins over a wildcard, a longer wildcard over a shorter one.
 *
 * Pure: no clock reads, no I/O, no heap. Times are unix seconds, the unit of
 * the queue's arrival and due stamps; the caller passes `now`, so a five-day
 * schedule is walked in microseconds in the tests. Every result is at least
 * now + 1 s. Optional jitter spreads each wait by +-jitter (a share of the
 * wait, at most 50%), drawn from a hash of the caller's seed and the attempt
 * count: the same message and attempt always get the same time.
 */
#ifndef SLUICE_RETRY_H
#define SLUICE_RETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control/domain_key.h"

#define RETRY_STEPS_MAX 32
#define RETRY_STEP_MAX_S (30ull * 86400)	/* one wait at most 30 days */
#define RETRY_DOMAINS_MAX 64			/* per_domain entries */
#define RETRY_JITTER_MAX_PPM 500000u		/* +-50% */

enum retry_kind { RETRY_EXPONENTIAL = 0, RETRY_QUADRATIC, RETRY_LIST };

struct retry_schedule {
	enum retry_kind kind;
	unsigned nsteps;			/* RETRY_LIST */
	uint32_t step_s[RETRY_STEPS_MAX];	/* waits in seconds, each >= 1 */
};

/* Settings every schedule shares ([retry] min_backoff, max_backoff, jitter). */
struct retry_conf {
	uint64_t min_backoff_s, max_backoff_s;	/* exponential's clamp; 1 <= min <= max */
	uint32_t jitter_ppm;			/* +- this share of each wait, parts per
						   million; 0: none; <= RETRY_JITTER_MAX_PPM */
};

/* One per_domain entry. */
struct retry_override {
	struct domain_key key;		/* the domain or .parent it applies to */
	struct retry_schedule s;
};

/* One lifetime_per_domain entry. */
struct retry_lifetime {
	struct domain_key key;
	uint64_t lifetime_s;
};

/* The whole [retry] policy, parsed once; read-only afterwards. */
struct retry_policy {
	struct retry_conf conf;
	struct retry_schedule def;	/* [retry] schedule */
	unsigned n;			/* overrides in use */
	struct retry_override o[RETRY_DOMAINS_MAX];
	/* How long mail is tried ([retry] lifetime, bounce_lifetime,
	 * lifetime_per_domain): see retry_lifetime_for. */
	uint64_t lifetime_s;		/* default 5 d */
	uint64_t bounce_lifetime_s;	/* null-sender mail, default 1 d */
	unsigned nlife;
	struct retry_lifetime life[RETRY_DOMAINS_MAX];
};

/* Parse a schedule. 0, or -1 with err filled ("what is wrong, where"). */
int retry_schedule_parse(const char *text, struct retry_schedule *out, char *err, size_t errlen);

/*
 * Check a retry_conf's bounds. 0, or -1 with err filled and *key (when key
 * is not NULL) naming the [retry] key at fault: "min_backoff" or "jitter".
 */
int retry_conf_check(const struct retry_conf *c, const char **key, char *err, size_t errlen);

/*
 * Build a policy from the schedule text, the per_domain text (NULL or empty:
 * none) and the shared settings. 0, or -1 with err filled, *key naming the
 * [retry] key at fault ("schedule", "per_domain", or as retry_conf_check),
 * and p unusable.
 */
int retry_policy_init(struct retry_policy *p, const char *schedule, const char *per_domain,
		      const struct retry_conf *c, const char **key, char *err, size_t errlen);

/*
 * Lifetimes: lifetime_s and bounce_lifetime_s (each >= 60 s), and the
 * per_domain text "example.com: 2d; .example.net: 12h" (NULL or empty:
 * none; each 60 s .. 365 d). retry_policy_init sets 5 d and 1 d and no
 * overrides. 0, or -1 with err filled (p's lifetimes unchanged then).
 */
#define RETRY_LIFETIME_MIN_S 60ull
#define RETRY_LIFETIME_MAX_S (365ull * 86400)
int retry_lifetime_init(struct retry_policy *p, uint64_t lifetime_s, uint64_t bounce_lifetime_s,
			const char *per_domain, char *err, size_t errlen);

/*
 * How long mail to a recipient domain is tried, from its arrival: the
 * domain's lifetime_per_domain entry, else lifetime; for mail from the null
 * sender (bounces) never longer than bounce_lifetime.
 */
uint64_t retry_lifetime_for(const struct retry_policy *p, const char *domain, bool null_sender);
/* Does the domain have a lifetime_per_domain entry? */
bool retry_lifetime_overridden(const struct retry_policy *p, const char *domain);

/* The schedule for a recipient domain: its override, else the default. */
const struct retry_schedule *retry_schedule_for(const struct retry_policy *p,
						const char *domain);

/*
 * When to try again after `attempts` attempts (the one that just failed
 * included; 0 is taken as 1), for a message that arrived at `arrival`:
 *   exponential  now + clamp(now - arrival, min_backoff, max_backoff)
 *   quadratic    arrival + (floor(sqrt(now - arrival)) + 20)^2
 *   list         now + step[min(attempts, nsteps) - 1]
 * then jitter, then at least now + 1. An arrival after now counts as age 0.
 * The result saturates at UINT64_MAX instead of wrapping.
 */
uint64_t retry_next(const struct retry_schedule *s, const struct retry_conf *c,
		    uint64_t arrival, uint64_t now, unsigned attempts, uint64_t jitter_seed);

/* retry_next with the schedule for `domain` and the policy's settings. */
uint64_t retry_next_for(const struct retry_policy *p, const char *domain, uint64_t arrival,
			uint64_t now, unsigned attempts, uint64_t jitter_seed);

#endif
