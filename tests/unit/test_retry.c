/*
 * test_retry.c - retry schedules: five days of each kind walked under an
 * injected clock, every attempt time checked against its closed form;
 * jitter stays within its bounds and is reproducible; per-domain overrides
 * pick the right schedule; no answer is ever earlier than now + 1 s.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "control/retry.h"

#define ARRIVAL 1700000000ull		/* unix seconds; any value would do */
#define FIVE_DAYS (5ull * 86400)

static const struct retry_conf postfix = { .min_backoff_s = 300, .max_backoff_s = 4000 };

static struct retry_schedule parse(const char *text)
{
	struct retry_schedule s;
	char err[200];

	cr_assert_eq(retry_schedule_parse(text, &s, err, sizeof(err)), 0, "%s: %s", text, err);
	return s;
}

/*
 * Walk a schedule as the scheduler would: try at arrival, then at every
 * time retry_next gives, for five days. Attempt times (seconds after
 * arrival) go to at[]; returns how many.
 */
static unsigned walk(const struct retry_schedule *s, const struct retry_conf *c,
		     uint64_t *at, unsigned max)
{
	uint64_t now = ARRIVAL;
	unsigned n = 0;

	while (now - ARRIVAL <= FIVE_DAYS) {
		cr_assert_lt(n, max, "more attempts than expected");
		at[n++] = now - ARRIVAL;
		uint64_t next = retry_next(s, c, ARRIVAL, now, n, 42);
		cr_assert_geq(next, now + 1, "attempt %u: next %llu not after now %llu", n,
			      (unsigned long long)next, (unsigned long long)now);
		now = next;
	}
	return n;
}

Test(retry, exponential_is_postfix)
{
	struct retry_schedule s = parse("exponential");
	uint64_t at[256];
	unsigned n = walk(&s, &postfix, at, 256);
	/* The waits the brief quotes: 300, 300, 600, 1200, 2400, 4000, 4000. */
	static const uint64_t first[] = { 0, 300, 600, 1200, 2400, 4800, 8800, 12800 };

	for (unsigned i = 0; i < sizeof(first) / sizeof(first[0]); i++)
		cr_assert_eq(at[i], first[i], "attempt %u at %llu, want %llu", i,
			     (unsigned long long)at[i], (unsigned long long)first[i]);
	/* Closed form: 300 * 2^(k-1) up to 4800, then every max_backoff. */
	for (unsigned k = 1; k < n; k++) {
		uint64_t want = k <= 5 ? 300ull << (k - 1) : 4800 + 4000ull * (k - 5);
		cr_assert_eq(at[k], want, "attempt %u at %llu, want %llu", k,
			     (unsigned long long)at[k], (unsigned long long)want);
	}
	/* 4800 + 4000 * (n - 6) <= five days < 4800 + 4000 * (n - 5) */
	cr_assert_eq(n, 6 + (FIVE_DAYS - 4800) / 4000, "%u attempts in five days", n);

	/* A late scheduler: the wait counts from when it actually ran. */
	cr_assert_eq(retry_next(&s, &postfix, ARRIVAL, ARRIVAL + 617, 3, 0), ARRIVAL + 617 + 617);
	cr_assert_eq(retry_next(&s, &postfix, ARRIVAL, ARRIVAL + 90000, 9, 0), ARRIVAL + 94000);
	/* An arrival stamp after now (clock stepped back): age 0. */
	cr_assert_eq(retry_next(&s, &postfix, ARRIVAL + 50, ARRIVAL, 1, 0), ARRIVAL + 300);
}

Test(retry, quadratic_is_qmail)
{
	struct retry_schedule s = parse("quadratic");
	uint64_t at[256];
	unsigned n = walk(&s, &postfix, at, 256);
	static const uint64_t first[] = { 0, 400, 1600, 3600, 6400, 10000 };

	for (unsigned i = 0; i < sizeof(first) / sizeof(first[0]); i++)
		cr_assert_eq(at[i], first[i], "attempt %u at %llu", i, (unsigned long long)at[i]);
	/* (floor(sqrt(400 k^2)) + 20)^2 = (20 k + 20)^2: attempt k at 400 k^2. */
	for (unsigned k = 0; k < n; k++)
		cr_assert_eq(at[k], 400ull * k * k, "attempt %u at %llu", k,
			     (unsigned long long)at[k]);
	cr_assert_eq(n, 33, "400 * 32^2 <= five days < 400 * 33^2, got %u attempts", n);

	/* The grid is anchored at arrival: a late run lands back on it ... */
	cr_assert_eq(retry_next(&s, &postfix, ARRIVAL, ARRIVAL + 401, 2, 0), ARRIVAL + 1600);
	cr_assert_eq(retry_next(&s, &postfix, ARRIVAL, ARRIVAL + 1599, 2, 0), ARRIVAL + 3481);
	/* ... and sqrt is exact at perfect squares and just below them. */
	cr_assert_eq(retry_next(&s, &postfix, ARRIVAL, ARRIVAL + 1700, 3, 0),
		     ARRIVAL + 61 * 61);
	cr_assert_eq(retry_next(&s, &postfix, ARRIVAL, ARRIVAL + 99999999, 3, 0),
		     ARRIVAL + (9999ull + 20) * (9999 + 20));
	cr_assert_eq(retry_next(&s, &postfix, ARRIVAL, ARRIVAL + 100000000, 3, 0),
		     ARRIVAL + (10000ull + 20) * (10000 + 20));
	/* min/max_backoff do not apply to qmail's schedule. */
	struct retry_conf tight = { .min_backoff_s = 3000, .max_backoff_s = 3000 };
	cr_assert_eq(retry_next(&s, &tight, ARRIVAL, ARRIVAL, 1, 0), ARRIVAL + 400);
}

Test(retry, list_steps_then_repeats_the_last)
{
	struct retry_schedule s = parse("5m,10m,30m,1h,2h,4h");
	static const uint64_t step[] = { 300, 600, 1800, 3600, 7200, 14400 };
	uint64_t at[256], t = 0;
	unsigned n = walk(&s, &postfix, at, 256), want_n = 1;

	cr_assert_eq(s.kind, RETRY_LIST);
	cr_assert_eq(s.nsteps, 6);
	cr_assert_eq(at[0], 0);
	for (unsigned k = 1; k < n; k++) {
		t += step[k - 1 < 5 ? k - 1 : 5];
		cr_assert_eq(at[k], t, "attempt %u at %llu, want %llu", k,
			     (unsigned long long)at[k], (unsigned long long)t);
	}
	/* 0, 300, 900, 2700, 6300, 13500, 27900, then every 4 h */
	cr_assert_eq(at[6], 27900);
	for (t = 27900; t <= FIVE_DAYS; t += 14400)
		want_n++;
	cr_assert_eq(n, want_n + 5, "%u attempts", n);
	/* attempts 0 reads as 1; past the end the last step repeats */
	cr_assert_eq(retry_next(&s, &postfix, ARRIVAL, ARRIVAL, 0, 0), ARRIVAL + 300);
	cr_assert_eq(retry_next(&s, &postfix, ARRIVAL, ARRIVAL, 65535, 0), ARRIVAL + 14400);
	/* Sun Messaging Server's default list, minutes. */
	s = parse("60m, 120m, 120m, 240m, 240m, 240m, 480m");
	cr_assert_eq(s.nsteps, 7);
	cr_assert_eq(retry_next(&s, &postfix, ARRIVAL, ARRIVAL + 5, 7, 0), ARRIVAL + 5 + 28800);
	cr_assert_eq(retry_next(&s, &postfix, ARRIVAL, ARRIVAL + 5, 2, 0), ARRIVAL + 5 + 7200);
}

Test(retry, schedule_text)
{
	struct retry_schedule s;
	char err[200], many[400] = "";
	static const char *const bad[] = {
		"", "   ", "5m,", ",5m", "5m,,10m", "0s", "31d", "5w", "5 m", "-5m", "5m;10m",
		"exponentialx", "99999999999999999999",
	};

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		cr_assert_eq(retry_schedule_parse(bad[i], &s, err, sizeof(err)), -1,
			     "'%s' accepted", bad[i]);
		cr_assert_neq(err[0], '\0', "'%s': no message", bad[i]);
	}
	for (int i = 0; i < RETRY_STEPS_MAX + 1; i++)
		strcat(many, i ? ",1m" : "1m");
	cr_assert_eq(retry_schedule_parse(many, &s, err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "more than 32"), "%s", err);
	cr_assert_eq(retry_schedule_parse("QUADRATIC", &s, err, sizeof(err)), 0);
	cr_assert_eq(s.kind, RETRY_QUADRATIC);
	cr_assert_eq(retry_schedule_parse(" 30s , 2h,1d,30d ", &s, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(s.nsteps, 4);
	cr_assert_eq(s.step_s[0], 30);
	cr_assert_eq(s.step_s[1], 7200);
	cr_assert_eq(s.step_s[2], 86400);
	cr_assert_eq(s.step_s[3], 30 * 86400);
	cr_assert_eq(retry_schedule_parse("90", &s, err, sizeof(err)), 0, "no suffix: seconds");
	cr_assert_eq(s.step_s[0], 90);
}

Test(retry, jitter_stays_within_bounds_and_is_reproducible)
{
	struct retry_schedule s = parse("exponential");
	struct retry_conf c = postfix;
	uint64_t now = ARRIVAL + 9000, lo = UINT64_MAX, hi = 0, sum = 0;
	unsigned below = 0, above = 0, distinct = 0;
	static uint16_t seen[801];
	const unsigned seeds = 20000;

	c.jitter_ppm = 100000;	/* +-10% of a 4000 s wait: 3600 .. 4400 */
	for (uint64_t seed = 0; seed < seeds; seed++) {
		uint64_t w = retry_next(&s, &c, ARRIVAL, now, 5, seed) - now;

		cr_assert(w >= 3600 && w <= 4400, "seed %llu: wait %llu", (unsigned long long)seed,
			  (unsigned long long)w);
		cr_assert_eq(retry_next(&s, &c, ARRIVAL, now, 5, seed) - now, w, "not reproducible");
		lo = w < lo ? w : lo;
		hi = w > hi ? w : hi;
		sum += w;
		below += w < 4000;
		above += w > 4000;
		if (!seen[w - 3600]++)
			distinct++;
	}
	/* Spread over the whole band, evenly: both ends reached, mean near 4000. */
	cr_assert_lt(lo, 3610, "lowest %llu", (unsigned long long)lo);
	cr_assert_gt(hi, 4390, "highest %llu", (unsigned long long)hi);
	cr_assert(sum / seeds >= 3990 && sum / seeds <= 4010, "mean %llu",
		  (unsigned long long)(sum / seeds));
	cr_assert(below > seeds * 45 / 100 && above > seeds * 45 / 100, "%u below, %u above",
		  below, above);
	cr_assert_gt(distinct, 700, "only %u distinct waits", distinct);
	/* The attempt count is part of the draw: the same message spreads too. */
	cr_assert_neq(retry_next(&s, &c, ARRIVAL, now, 5, 7), retry_next(&s, &c, ARRIVAL, now, 6, 7));

	/* Jitter applies to qmail's wait (next - now) and to list steps alike. */
	s = parse("quadratic");
	c.jitter_ppm = 500000;	/* +-50% */
	for (uint64_t seed = 0; seed < 5000; seed++) {
		uint64_t w = retry_next(&s, &c, ARRIVAL, ARRIVAL + 400, 2, seed) - (ARRIVAL + 400);
		cr_assert(w >= 600 && w <= 1800, "quadratic wait %llu", (unsigned long long)w);
	}
	s = parse("10s");
	for (uint64_t seed = 0; seed < 5000; seed++) {
		uint64_t w = retry_next(&s, &c, ARRIVAL, ARRIVAL, 1, seed) - ARRIVAL;
		cr_assert(w >= 5 && w <= 15, "list wait %llu", (unsigned long long)w);
	}
	/* No jitter: exactly the formula whatever the seed. */
	c.jitter_ppm = 0;
	for (uint64_t seed = 0; seed < 100; seed++)
		cr_assert_eq(retry_next(&s, &c, ARRIVAL, ARRIVAL, 1, seed), ARRIVAL + 10);
}

Test(retry, never_earlier_than_now_plus_one_second)
{
	struct retry_schedule kinds[4] = { parse("exponential"), parse("quadratic"), parse("1s"),
					   parse("1s,2s,30d") };
	struct retry_conf c = { .min_backoff_s = 1, .max_backoff_s = 1, .jitter_ppm = 500000 };
	uint64_t x = 88172645463325252ull;	/* xorshift64 state */

	for (unsigned i = 0; i < 200000; i++) {
		struct retry_schedule *s = &kinds[i % 4];
		uint64_t arrival, now, next;
		unsigned attempts;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		arrival = ARRIVAL + x % (10 * 86400);		/* some after now */
		now = ARRIVAL + (x >> 20) % (8 * 86400);
		attempts = (unsigned)(x >> 40) % 40;
		c.max_backoff_s = 1 + (x >> 50) % 5000;
		c.jitter_ppm = (uint32_t)((x >> 8) % (RETRY_JITTER_MAX_PPM + 1));
		next = retry_next(s, &c, arrival, now, attempts, x);
		cr_assert_geq(next, now + 1, "kind %d arrival %llu now %llu attempts %u: %llu",
			      s->kind, (unsigned long long)arrival, (unsigned long long)now,
			      attempts, (unsigned long long)next);
	}
	/* A conf that never went through retry_conf_check (no minimum, no
	 * maximum) still gives at least one second. */
	struct retry_conf zero = { 0, 0, 0 };
	struct retry_schedule empty = { .kind = RETRY_LIST, .nsteps = 0 };
	cr_assert_eq(retry_next(&kinds[0], &zero, ARRIVAL, ARRIVAL + 5, 1, 0), ARRIVAL + 6);
	cr_assert_eq(retry_next(&empty, &zero, ARRIVAL, ARRIVAL + 5, 1, 0), ARRIVAL + 6);
	/* The end of time saturates instead of wrapping to the past. */
	cr_assert_eq(retry_next(&kinds[0], &postfix, 0, UINT64_MAX - 10, 1, 0), UINT64_MAX);
	cr_assert_eq(retry_next(&kinds[1], &postfix, 0, UINT64_MAX - 10, 1, 0), UINT64_MAX);
	cr_assert_eq(retry_next(&kinds[3], &postfix, 0, UINT64_MAX - 10, 3, 0), UINT64_MAX);
}

Test(retry, per_domain_overrides)
{
	static struct retry_policy p;	/* large: off the stack */
	const char *key = NULL;
	char err[256];

	cr_assert_eq(retry_policy_init(&p, "exponential",
				       " example.com: quadratic; .example.net: 5m, 10m ;"
				       "b.example.net: 1h; .b.example.net: 2h; Upper.ORG.: 3h;",
				       &postfix, &key, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(p.n, 5);
	cr_assert_eq(retry_schedule_for(&p, "example.com")->kind, RETRY_QUADRATIC);
	cr_assert_eq(retry_schedule_for(&p, "EXAMPLE.com.")->kind, RETRY_QUADRATIC);
	/* exact entries do not cover subdomains, nor the reverse */
	cr_assert_eq(retry_schedule_for(&p, "mx.example.com"), &p.def);
	cr_assert_eq(retry_schedule_for(&p, "example.net"), &p.def);
	cr_assert_eq(retry_schedule_for(&p, "a.example.net")->step_s[1], 600);
	cr_assert_eq(retry_schedule_for(&p, "x.y.example.net")->step_s[0], 300);
	cr_assert_eq(retry_schedule_for(&p, "badexample.net"), &p.def);
	/* exact beats wildcard; the longer wildcard beats the shorter */
	cr_assert_eq(retry_schedule_for(&p, "b.example.net")->step_s[0], 3600);
	cr_assert_eq(retry_schedule_for(&p, "x.b.example.net")->step_s[0], 7200);
	cr_assert_eq(retry_schedule_for(&p, "upper.org")->step_s[0], 10800);
	cr_assert_eq(retry_schedule_for(&p, "other.org"), &p.def);
	cr_assert_eq(retry_schedule_for(&p, ""), &p.def);
	/* retry_next_for uses the domain's schedule with the shared settings */
	cr_assert_eq(retry_next_for(&p, "example.com", ARRIVAL, ARRIVAL + 400, 2, 0),
		     ARRIVAL + 1600);
	cr_assert_eq(retry_next_for(&p, "mx.example.com", ARRIVAL, ARRIVAL + 400, 2, 0),
		     ARRIVAL + 800);
	cr_assert_eq(retry_next_for(&p, "q.example.net", ARRIVAL, ARRIVAL + 400, 9, 0),
		     ARRIVAL + 1000);
	/* none at all */
	cr_assert_eq(retry_policy_init(&p, "quadratic", "", &postfix, &key, err, sizeof(err)), 0);
	cr_assert_eq(p.n, 0);
	cr_assert_eq(retry_policy_init(&p, "quadratic", NULL, &postfix, &key, err, sizeof(err)), 0);
	cr_assert_eq(retry_schedule_for(&p, "example.com")->kind, RETRY_QUADRATIC);
}

Test(retry, policy_errors_name_their_key)
{
	static struct retry_policy p;
	static const struct {
		const char *schedule, *per_domain;
		struct retry_conf conf;
		const char *key, *needle;
	} cases[] = {
		{ "sometimes", "", { 300, 4000, 0 }, "schedule", "is not a wait" },
		{ "exponential", "", { 5000, 4000, 0 }, "min_backoff", "above max_backoff" },
		{ "exponential", "", { 0, 4000, 0 }, "min_backoff", "at least 1 s" },
		{ "exponential", "", { 300, 4000, 500001 }, "jitter", "above 50%" },
		{ "exponential", "example.com quadratic", { 300, 4000, 0 }, "per_domain",
		  "is not 'domain: schedule'" },
		{ "exponential", "exa_mple.com: quadratic", { 300, 4000, 0 }, "per_domain",
		  "'exa_mple.com' is not a domain" },
		{ "exponential", "-a.com: quadratic", { 300, 4000, 0 }, "per_domain", "not a domain" },
		{ "exponential", "a..com: quadratic", { 300, 4000, 0 }, "per_domain", "not a domain" },
		{ "exponential", ".: quadratic", { 300, 4000, 0 }, "per_domain", "not a domain" },
		{ "exponential", "a.com: 5m,10y", { 300, 4000, 0 }, "per_domain",
		  "a.com: '10y' is not a wait" },
		{ "exponential", "a.com: ", { 300, 4000, 0 }, "per_domain", "a.com: empty" },
		{ "exponential", "a.com: 1h; A.com.: 2h", { 300, 4000, 0 }, "per_domain",
		  "a.com is listed twice" },
	};

	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *key = NULL;
		char err[256] = "";

		cr_assert_eq(retry_policy_init(&p, cases[i].schedule, cases[i].per_domain,
					       &cases[i].conf, &key, err, sizeof(err)), -1,
			     "case %u accepted", i);
		cr_assert_str_eq(key ? key : "(null)", cases[i].key, "case %u: key", i);
		cr_assert_not_null(strstr(err, cases[i].needle), "case %u: '%s' lacks '%s'", i, err,
				   cases[i].needle);
	}
	/* The table has a bound, and says so. */
	char text[2048] = "";
	for (int i = 0; i <= RETRY_DOMAINS_MAX; i++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), "d%d.com: 1h;", i);
	const char *key = NULL;
	char err[256];
	cr_assert_eq(retry_policy_init(&p, "exponential", text, &postfix, &key, err, sizeof(err)),
		     -1);
	cr_assert_not_null(strstr(err, "more than 64 domains"), "%s", err);
}
