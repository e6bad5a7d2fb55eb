/*
 * test_rate.c - GCRA rate limits under an injected clock: a 100/s limit
 * over 30 simulated seconds lets 3000 through give or take the burst, by a
 * greedy poller and by a caller that sleeps exactly the answer; cells are
 * evenly spaced; a burst goes at once and refills at the rate while idle;
 * the limit text is parsed strictly.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "control/rate.h"

#define MS 1000000ull
#define SEC 1000000000ull

static struct rate_spec spec(const char *text)
{
	struct rate_spec s;
	char err[200];

	cr_assert_eq(rate_parse(text, &s, err, sizeof(err)), 0, "'%s': %s", text, err);
	return s;
}

static struct gcra limit(const char *text)
{
	struct rate_spec s = spec(text);
	struct gcra g;

	rate_init(&g, &s);
	return g;
}

/* Ask every `step` ns for 30 s from t0; count what passes; check that no
 * one-second window holds more than per_sec + burst. */
static unsigned poll_30s(struct gcra *g, uint64_t t0, uint64_t step, unsigned per_sec,
			 unsigned burst)
{
	static uint64_t granted[40000];
	unsigned n = 0;

	for (uint64_t t = t0; t < t0 + 30 * SEC; t += step) {
		uint64_t w = rate_take(g, t, 1);

		if (w == 0) {
			cr_assert_lt(n, 40000);
			granted[n++] = t;
		} else {
			cr_assert_neq(w, RATE_NEVER);
			/* the answer is exact: refused just before, granted at it */
			cr_assert_neq(rate_peek(g, t + w - 1, 1), 0);
			cr_assert_eq(rate_peek(g, t + w, 1), 0);
		}
	}
	for (unsigned i = 0, j = 0; i < n; i++) {	/* sliding one-second window */
		while (granted[j] + SEC <= granted[i])
			j++;
		cr_assert_leq(i - j + 1, per_sec + burst, "%u in the second before %llu ns",
			      i - j + 1, (unsigned long long)granted[i]);
	}
	return n;
}

Test(rate, hundred_per_second_for_thirty_seconds)
{
	static const unsigned bursts[] = { 1, 10, 100 };

	for (unsigned i = 0; i < 3; i++) {
		char text[48];
		struct gcra g;
		unsigned n;

		snprintf(text, sizeof(text), "100/s burst %u", bursts[i]);
		/* a greedy caller asking every millisecond */
		g = limit(text);
		n = poll_30s(&g, 5 * SEC, MS, 100, bursts[i]);
		cr_assert(n >= 3000 && n <= 3000 + bursts[i], "%s, polled: %u in 30 s", text, n);
		/* ... and every 0.7 ms, off the 10 ms grid: a burst of 2 or more
		 * absorbs the asker's lateness; with burst 1 a late ask loses
		 * its slot (strict spacing), so the rate sinks toward one per
		 * T + 0.7 ms but never rises above one per T. */
		g = limit(text);
		n = poll_30s(&g, 123, 700000, 100, bursts[i]);
		if (bursts[i] > 1)
			cr_assert(n >= 2999 && n <= 3000 + bursts[i], "%s, polled off-grid: %u",
				  text, n);
		else
			cr_assert(n >= 30 * SEC / (10 * MS + 700000) && n <= 3000,
				  "%s, polled off-grid: %u", text, n);

		/* a caller that waits exactly what it is told */
		g = limit(text);
		n = 0;
		for (uint64_t t = 0; t < 30 * SEC;) {
			uint64_t w = rate_take(&g, t, 1);
			cr_assert_neq(w, RATE_NEVER);
			if (w == 0)
				n++;
			t += w;
		}
		cr_assert(n >= 3000 && n <= 3000 + bursts[i], "%s, event-driven: %u", text, n);
	}
}

Test(rate, cells_are_evenly_spaced)
{
	struct gcra g = limit("100/s");
	uint64_t t = 777, last = 0;
	unsigned n = 0;

	/* Event-driven: every grant exactly T = 10 ms after the one before. */
	while (n < 500) {
		cr_assert_lt(t, 10 * SEC, "500 grants take 5 s, not 10");
		uint64_t w = rate_take(&g, t, 1);
		if (w == 0) {
			if (n++)
				cr_assert_eq(t - last, 10 * MS, "grant %u after %llu ns", n,
					     (unsigned long long)(t - last));
			last = t;
			continue;	/* ask again at the same instant: refused */
		}
		cr_assert_leq(w, 10 * MS);
		t += w;
	}
	/* Polled: never closer than T, however often asked. */
	g = limit("100/s");
	last = 0;
	n = 0;
	for (t = 0; t < 5 * SEC; t += 37 * 1000) {
		if (rate_take(&g, t, 1) == 0) {
			if (n++)
				cr_assert_geq(t - last, 10 * MS);
			last = t;
		}
	}
	cr_assert(n >= 499 && n <= 500, "%u in 5 s", n);
	/* A rate that does not divide the unit: 7/s for 30 s. */
	g = limit("7/s");
	n = 0;
	for (t = 0; t < 30 * SEC; t += MS)
		n += rate_take(&g, t, 1) == 0;
	cr_assert(n >= 210 && n <= 211, "7/s: %u in 30 s", n);
	/* Per minute, per hour, per day. */
	g = limit("6/min");
	n = 0;
	for (t = 0; t < 600 * SEC; t += SEC)
		n += rate_take(&g, t, 1) == 0;
	cr_assert_eq(n, 60, "6/min: %u in 10 min", n);
	g = limit("2/h");
	cr_assert_eq(rate_take(&g, 0, 1), 0);
	cr_assert_eq(rate_take(&g, 1, 1), 1800 * SEC - 1);
	g = limit("1/d");
	cr_assert_eq(rate_take(&g, 0, 1), 0);
	cr_assert_eq(rate_take(&g, 3600 * SEC, 1), 23 * 3600 * SEC);
}

Test(rate, burst_goes_at_once_then_refills_while_idle)
{
	struct gcra g = limit("100/s burst 20");
	const uint64_t t0 = 42 * SEC;

	for (unsigned i = 0; i < 20; i++)
		cr_assert_eq(rate_take(&g, t0, 1), 0, "cell %u of the burst refused", i);
	cr_assert_eq(rate_take(&g, t0, 1), 10 * MS, "the 21st waits one interval");
	cr_assert_eq(rate_take(&g, t0 + 4 * MS, 1), 6 * MS);
	/* idle 35 ms: 3 cells came back (not 4: the 4th is 5 ms away) */
	for (unsigned i = 0; i < 3; i++)
		cr_assert_eq(rate_take(&g, t0 + 35 * MS, 1), 0, "refilled cell %u", i);
	cr_assert_eq(rate_take(&g, t0 + 35 * MS, 1), 5 * MS);
	/* idle long enough: the whole burst, and no more however long the idle */
	uint64_t t1 = t0 + 3600 * SEC;
	cr_assert_leq(rate_idle_at(&g), t1);
	for (unsigned i = 0; i < 20; i++)
		cr_assert_eq(rate_take(&g, t1, 1), 0, "after an hour, cell %u", i);
	cr_assert_eq(rate_take(&g, t1, 1), 10 * MS);
	cr_assert_gt(rate_idle_at(&g), t1, "a spent burst is not idle");
	cr_assert_eq(rate_idle_at(&g), t1 + 200 * MS);
}

Test(rate, several_cells_peek_and_unlimited)
{
	struct gcra g = limit("10/s burst 5");

	cr_assert_eq(rate_peek(&g, 0, 5), 0);
	cr_assert_eq(rate_peek(&g, 0, 5), 0, "peek takes nothing");
	cr_assert_eq(rate_take(&g, 0, 3), 0);
	cr_assert_eq(rate_take(&g, 0, 3), 100 * MS, "2 left; 3 needs one more interval");
	cr_assert_eq(rate_take(&g, 0, 2), 0);
	cr_assert_eq(rate_take(&g, 0, 6), RATE_NEVER, "more than the burst can never pass");
	cr_assert_eq(rate_take(&g, 0, 0), 0, "nothing asked, nothing refused");
	cr_assert_eq(rate_take(&g, 500 * MS, 5), 0);

	struct rate_spec none = spec("");
	rate_init(&g, &none);
	for (uint64_t t = 0; t < 100000; t++)
		cr_assert_eq(rate_take(&g, 7, 1000), 0);
	cr_assert_eq(rate_idle_at(&g), 0);
	g = limit("unlimited");
	cr_assert_eq(rate_take(&g, 0, 1u << 30), 0);
}

Test(rate, text)
{
	static const struct {
		const char *text;
		uint32_t n, burst;
		uint64_t period;
		const char *back;
	} good[] = {
		{ "100/s", 100, 1, SEC, "100/s" },
		{ " 5 / sec ", 5, 1, SEC, "5/s" },
		{ "7/Second", 7, 1, SEC, "7/s" },
		{ "6/min burst 3", 6, 3, 60 * SEC, "6/min burst 3" },
		{ "10/m", 10, 1, 60 * SEC, "10/min" },
		{ "20/minute", 20, 1, 60 * SEC, "20/min" },
		{ "3600/h", 3600, 1, 3600 * SEC, "3600/h" },
		{ "1/HOUR burst 2", 1, 2, 3600 * SEC, "1/h burst 2" },
		{ "2/d", 2, 1, 86400 * SEC, "2/d" },
		{ "1000000/s burst 1000000", 1000000, 1000000, SEC, "1000000/s burst 1000000" },
		{ "1/d burst 7", 1, 7, 86400 * SEC, "1/d burst 7" },
		{ "100/s\tburst\t4", 100, 4, SEC, "100/s burst 4" },
		{ "", 0, 0, 0, "unlimited" },
		{ "unlimited", 0, 0, 0, "unlimited" },
	};
	static const char *const bad[] = {
		"abc", "100", "100/", "100/x", "100/ms", "0/s", "-1/s", "1.5/s", "100/s burst",
		"100/s burst 0", "100/s burst x", "100/s burst 1000001", "100/s extra", "100/sburst 2",
		"2000000/s", "99999999999/s", "1000000001/d", "1/d burst 8", "unlimited foo", "/s",
		"100//s", "100 per s",
	};
	char err[200], buf[RATE_TEXT_MAX];
	struct rate_spec s, again;

	for (unsigned i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		s = spec(good[i].text);
		cr_assert_eq(s.n, good[i].n, "'%s'", good[i].text);
		cr_assert_eq(s.burst, good[i].burst, "'%s'", good[i].text);
		cr_assert_eq(s.period_ns, good[i].period, "'%s'", good[i].text);
		rate_format(&s, buf, sizeof(buf));
		cr_assert_str_eq(buf, good[i].back);
		again = spec(buf);
		cr_assert_eq(memcmp(&s, &again, sizeof(s)), 0, "'%s' does not read back", buf);
	}
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		cr_assert_eq(rate_parse(bad[i], &s, err, sizeof(err)), -1, "'%s' accepted", bad[i]);
		cr_assert_not_null(strstr(err, "is not a rate like 100/s"), "'%s': '%s'", bad[i],
				   err);
	}
	/* the message says what is wrong */
	rate_parse("0/s", &s, err, sizeof(err));
	cr_assert_not_null(strstr(err, "leave it empty for no limit"), "%s", err);
	rate_parse("100/fortnight", &s, err, sizeof(err));
	cr_assert_not_null(strstr(err, "the unit is s, min, h or d"), "%s", err);
	rate_parse("1/d burst 8", &s, err, sizeof(err));
	cr_assert_not_null(strstr(err, "more than 7 days"), "%s", err);
}
