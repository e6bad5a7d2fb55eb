/*
 * retry.h - retry schedules: when a deferred message is tried again.
 *
 * A schedule is written in the configuration ([retry] schedule) as one of
 *   exponential          Postfix: wait = clamp(age, min_backoff, max_backoff)
 *   quadratic            qmail: next = birth + (floor(sqrt(age)) + 20)^2 s
 *   5m,10m,30m,1h,...    an explicit list of waits; the last one repeats
 * This module parses and checks that text; the waits themselves are
 * computed by the scheduler from a parsed schedule and an injected clock.
 */
#ifndef SLUICE_RETRY_H
#define SLUICE_RETRY_H

#include <stddef.h>
#include <stdint.h>

#define RETRY_STEPS_MAX 32
#define RETRY_STEP_MAX_S (30ull * 86400)	/* one wait at most 30 days */

enum retry_kind { RETRY_EXPONENTIAL = 0, RETRY_QUADRATIC, RETRY_LIST };

struct retry_schedule {
	enum retry_kind kind;
	unsigned nsteps;			/* RETRY_LIST */
	uint32_t step_s[RETRY_STEPS_MAX];	/* waits in seconds, each >= 1 */
};

/* Parse a schedule. 0, or -1 with err filled ("what is wrong, where"). */
int retry_schedule_parse(const char *text, struct retry_schedule *out, char *err, size_t errlen);

#endif
