/*
 * test_dest.c - one destination's delivery policy under an injected clock:
 * the window grows 5 -> 20 by cohorts of successes and shrinks by one per
 * site failure; a failed cohort kills the destination for the backoff,
 * after which one probe goes; rates hold; suspension holds; the notify
 * class keeps its own window and budget; per-domain overrides apply.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "control/dest.h"

#define MS 1000000ull
#define SEC 1000000000ull
#define T0 (1000 * SEC)		/* monotonic now at the start of each test */

static const char refused[] = "connect to mx.example.com[192.0.2.1]:25: Connection refused";

/* The shipped defaults: 5 -> 20, notify 2 -> 5, one failed cohort, 300 s. */
static struct dest_conf conf(void)
{
	struct dest_conf c = {
		.cls = {
			[DEST_NORMAL] = { .initial_concurrency = 5, .concurrency_limit = 20 },
			[DEST_NOTIFY] = { .initial_concurrency = 2, .concurrency_limit = 5 },
		},
		.failed_cohort_limit = 1,
		.dead_backoff_ns = 300 * SEC,
		.recipients_per_transaction = 50,
		.messages_per_connection = 100,
	};
	const char *key = NULL;
	char err[200];

	cr_assert_eq(dest_conf_check(&c, &key, err, sizeof(err)), 0, "%s: %s", key, err);
	return c;
}

static struct rate_spec rate(const char *text)
{
	struct rate_spec s;
	char err[200];

	cr_assert_eq(rate_parse(text, &s, err, sizeof(err)), 0, "%s", err);
	return s;
}

static unsigned window(const struct dest *d, enum dest_class cls, uint64_t now)
{
	struct dest_view v;

	dest_view(d, now, &v);
	return v.cls[cls].window;
}

/* Start as many as the destination allows now; how many started. The last
 * refusal must be the window's. */
static unsigned fill(struct dest *d, enum dest_class cls, uint64_t now)
{
	struct dest_wait w;
	unsigned n = 0;

	while (dest_start(d, cls, now, n == 0, &w) == DEST_GO)
		cr_assert_lt(++n, 10000);
	cr_assert_eq(w.why, DEST_WINDOW, "refused for %s", dest_verdict_name(w.why));
	cr_assert_eq(w.until_ns, DEST_UNTIL_EVENT);
	return n;
}

/* Window after s successes with the window kept full: w needs w of them. */
static unsigned expected_window(unsigned s, unsigned initial, unsigned limit)
{
	unsigned w = initial;

	while (w < limit && s >= w) {
		s -= w;
		w++;
	}
	return w;
}

Test(dest, window_grows_5_to_20_by_cohorts_of_successes)
{
	struct dest_conf c = conf();
	static struct dest d;
	uint64_t now = T0;
	unsigned inflight = 0, successes = 0;

	dest_init(&d, "example.com", &c);
	cr_assert_eq(window(&d, DEST_NORMAL, now), 5);
	/* Keep the window full (a backlog), finish one delivery at a time. */
	for (unsigned step = 0; step < 600; step++) {
		inflight += fill(&d, DEST_NORMAL, now);
		cr_assert_eq(inflight, window(&d, DEST_NORMAL, now), "step %u", step);
		cr_assert_eq(dest_done(&d, DEST_NORMAL, now, DEST_OK, NULL), 0);
		inflight--;
		successes++;
		cr_assert_eq(window(&d, DEST_NORMAL, now), expected_window(successes, 5, 20),
			     "after %u successes", successes);
		now += 10 * MS;
	}
	/* 5 + 6 + ... + 19 = 180 successes to reach 20, and never beyond. */
	cr_assert_eq(expected_window(179, 5, 20), 19);
	cr_assert_eq(expected_window(180, 5, 20), 20);
	cr_assert_eq(window(&d, DEST_NORMAL, now), 20);
	cr_assert_eq(d.cls[DEST_NORMAL].stats.window_grown, 15);
	cr_assert_eq(d.cls[DEST_NORMAL].stats.delivered, 600);
	/* the other class never moved */
	cr_assert_eq(window(&d, DEST_NOTIFY, now), 2);
}

Test(dest, an_unused_window_does_not_grow)
{
	struct dest_conf c = conf();
	static struct dest d;
	struct dest_wait w;

	dest_init(&d, "example.com", &c);
	/* One delivery at a time, all successes: the window only grows while
	 * it is in use (window < busy + initial), so it stops at 6. */
	for (unsigned i = 0; i < 500; i++) {
		cr_assert_eq(dest_start(&d, DEST_NORMAL, T0 + i, true, &w), DEST_GO);
		cr_assert_eq(dest_done(&d, DEST_NORMAL, T0 + i, DEST_OK, NULL), 0);
	}
	cr_assert_eq(window(&d, DEST_NORMAL, T0 + 500), 6);
}

Test(dest, site_failures_shrink_the_window_never_below_one)
{
	struct dest_conf c = conf();
	static struct dest d;
	uint64_t now = T0;

	c.failed_cohort_limit = 0;	/* never dead: the window alone */
	dest_init(&d, "example.com", &c);
	cr_assert_eq(fill(&d, DEST_NORMAL, now), 5);
	for (unsigned i = 0; i < 5; i++) {
		cr_assert_eq(dest_done(&d, DEST_NORMAL, now, DEST_SITE_FAIL, refused), 0);
		cr_assert_eq(window(&d, DEST_NORMAL, now), i < 4 ? 4 - i : 1, "after %u", i + 1);
	}
	for (unsigned i = 0; i < 50; i++) {	/* and it stays at 1 */
		cr_assert_eq(fill(&d, DEST_NORMAL, now), 1);
		cr_assert_eq(dest_done(&d, DEST_NORMAL, now, DEST_SITE_FAIL, refused), 0);
	}
	cr_assert_eq(window(&d, DEST_NORMAL, now), 1);
	struct dest_view v;
	dest_view(&d, now, &v);
	cr_assert_not(v.dead, "failed_cohort_limit 0 never kills");
	cr_assert_str_eq(v.last_error, refused);
	cr_assert_eq(v.cls[DEST_NORMAL].stats.site_failures, 55);
	cr_assert_eq(v.cls[DEST_NORMAL].stats.window_shrunk, 4);

	/* A failure restarts the cohort: 4 successes of 5, a failure (window
	 * 4), then 1 success is 1 of 4, not the 5th of a cohort. */
	dest_init(&d, "example.com", &c);
	cr_assert_eq(fill(&d, DEST_NORMAL, now), 5);
	for (unsigned i = 0; i < 4; i++)
		cr_assert_eq(dest_done(&d, DEST_NORMAL, now, DEST_OK, NULL), 0);
	cr_assert_eq(window(&d, DEST_NORMAL, now), 5);
	cr_assert_eq(dest_done(&d, DEST_NORMAL, now, DEST_SITE_FAIL, refused), 0);
	cr_assert_eq(window(&d, DEST_NORMAL, now), 4);
	cr_assert_eq(fill(&d, DEST_NORMAL, now), 4);
	cr_assert_eq(dest_done(&d, DEST_NORMAL, now, DEST_OK, NULL), 0);
	cr_assert_eq(window(&d, DEST_NORMAL, now), 4, "the cohort before the failure is gone");
	for (unsigned i = 0; i < 3; i++)
		cr_assert_eq(dest_done(&d, DEST_NORMAL, now, DEST_OK, NULL), 0);
	cr_assert_eq(window(&d, DEST_NORMAL, now), 5, "a whole new cohort of 4");
}

Test(dest, replies_to_mail_rcpt_data_do_not_throttle)
{
	struct dest_conf c = conf();
	static struct dest d;
	unsigned inflight = 0;

	dest_init(&d, "example.com", &c);
	/* 4xx/5xx to MAIL/RCPT/DATA: the site answered, so it counts as a
	 * success for the window (Postfix), and is kept as the last error. */
	for (unsigned i = 0; i < 11; i++) {
		inflight += fill(&d, DEST_NORMAL, T0);
		cr_assert_eq(dest_done(&d, DEST_NORMAL, T0, DEST_OTHER_FAIL,
				       "550 5.1.1 <nobody@example.com>: no such user"), 0);
		inflight--;
	}
	cr_assert_eq(window(&d, DEST_NORMAL, T0), 7);
	struct dest_view v;
	dest_view(&d, T0 + 5, &v);
	cr_assert_not(v.dead);
	cr_assert_str_eq(v.last_error, "550 5.1.1 <nobody@example.com>: no such user");
	cr_assert_eq(v.last_error_ns, T0);
	cr_assert_eq(v.cls[DEST_NORMAL].stats.other_failures, 11);
	cr_assert_eq(v.cls[DEST_NORMAL].busy, inflight);
}

Test(dest, a_failed_cohort_kills_for_the_backoff_then_one_probe)
{
	struct dest_conf c = conf();
	static struct dest d;
	struct dest_wait w;
	struct dest_view v;
	uint64_t now = T0;

	dest_init(&d, "example.com", &c);
	cr_assert_eq(fill(&d, DEST_NORMAL, now), 5);
	cr_assert_eq(fill(&d, DEST_NOTIFY, now), 2);
	/* 1/5 + 1/4 + 1/3 = 0.78 of a cohort: alive, window 2 */
	for (unsigned i = 0; i < 3; i++)
		cr_assert_eq(dest_done(&d, DEST_NORMAL, now, DEST_SITE_FAIL, refused), 0);
	dest_view(&d, now, &v);
	cr_assert_not(v.dead);
	cr_assert_eq(v.cls[DEST_NORMAL].window, 2);
	cr_assert(v.fail_cohorts > 0.78 && v.fail_cohorts < 0.79, "%f", v.fail_cohorts);
	/* + 1/2: a whole failed cohort -> dead, both classes */
	now += 7 * SEC;
	cr_assert_eq(dest_done(&d, DEST_NORMAL, now, DEST_SITE_FAIL, refused), 0);
	for (int cls = 0; cls < DEST_CLASSES; cls++) {
		cr_assert_eq(dest_may_start(&d, cls, now, true, &w), DEST_DEAD);
		cr_assert_eq(w.until_ns, now + 300 * SEC);
		cr_assert_str_eq(w.reason, refused);
	}
	dest_view(&d, now, &v);
	cr_assert(v.dead);
	cr_assert_eq(v.dead_until_ns, now + 300 * SEC);
	cr_assert_str_eq(v.dead_reason, refused);
	cr_assert_eq(v.cls[DEST_NORMAL].window, 0);
	cr_assert_eq(v.cls[DEST_NOTIFY].window, 0);
	cr_assert_eq(v.stats.deaths, 1);
	/* Deliveries begun before the death still end; their failures do not
	 * push the backoff further, nor does time short of it. */
	cr_assert_eq(dest_done(&d, DEST_NORMAL, now + 60 * SEC, DEST_SITE_FAIL, "timeout"), 0);
	cr_assert_eq(dest_done(&d, DEST_NOTIFY, now + 60 * SEC, DEST_SITE_FAIL, "timeout"), 0);
	cr_assert_eq(dest_may_start(&d, DEST_NORMAL, now + 300 * SEC - 1, false, &w), DEST_DEAD);
	cr_assert_eq(w.until_ns, now + 300 * SEC);
	cr_assert_str_eq(w.reason, refused);
	cr_assert_eq(d.stats.deaths, 1);
	/* The backoff is over: one probe at a time. */
	now += 300 * SEC;
	dest_view(&d, now, &v);
	cr_assert_not(v.dead, "the view applies time too");
	cr_assert_eq(v.cls[DEST_NORMAL].window, 1);
	cr_assert_eq(dest_start(&d, DEST_NORMAL, now, true, &w), DEST_GO);
	cr_assert_eq(dest_may_start(&d, DEST_NORMAL, now, true, &w), DEST_WINDOW);
	cr_assert_eq(d.stats.revivals, 1);
	/* The probe succeeds: the window grows again by cohorts. */
	cr_assert_eq(dest_done(&d, DEST_NORMAL, now, DEST_OK, NULL), 0);
	cr_assert_eq(window(&d, DEST_NORMAL, now), 2);
	cr_assert_eq(fill(&d, DEST_NORMAL, now), 2);
	cr_assert_eq(dest_done(&d, DEST_NORMAL, now, DEST_OK, NULL), 0);
	cr_assert_eq(dest_done(&d, DEST_NORMAL, now, DEST_OK, NULL), 0);
	cr_assert_eq(window(&d, DEST_NORMAL, now), 3);

	/* Revived and probing with a window of 1, a failed probe is a whole
	 * failed cohort: dead again at once. */
	dest_init(&d, "example.com", &c);
	for (unsigned i = 0; i < 4; i++) {
		cr_assert_eq(dest_start(&d, DEST_NORMAL, now, true, &w), DEST_GO);
		cr_assert_eq(dest_done(&d, DEST_NORMAL, now, DEST_SITE_FAIL, refused), 0);
	}
	cr_assert_eq(dest_may_start(&d, DEST_NORMAL, now, true, &w), DEST_DEAD);
	now = w.until_ns;
	cr_assert_eq(dest_start(&d, DEST_NORMAL, now, true, &w), DEST_GO);
	cr_assert_eq(dest_done(&d, DEST_NORMAL, now + SEC, DEST_SITE_FAIL, "421 4.3.2 busy"), 0);
	cr_assert_eq(dest_may_start(&d, DEST_NORMAL, now + SEC, true, &w), DEST_DEAD);
	cr_assert_eq(w.until_ns, now + SEC + 300 * SEC);
	cr_assert_str_eq(w.reason, "421 4.3.2 busy");
	cr_assert_eq(d.stats.deaths, 2);
}

Test(dest, a_success_resets_the_failed_cohort)
{
	struct dest_conf c = conf();
	static struct dest d;
	struct dest_wait w;
	uint64_t now = T0;

	dest_init(&d, "example.com", &c);
	cr_assert_eq(fill(&d, DEST_NORMAL, now), 5);
	for (unsigned i = 0; i < 3; i++)	/* 0.78 of a cohort, window 2 */
		cr_assert_eq(dest_done(&d, DEST_NORMAL, now, DEST_SITE_FAIL, refused), 0);
	cr_assert_eq(dest_done(&d, DEST_NORMAL, now, DEST_OK, NULL), 0);
	cr_assert_eq(d.fail_cohorts, 0.0);
	cr_assert_eq(dest_done(&d, DEST_NORMAL, now, DEST_SITE_FAIL, refused), 0);	/* 1/2 */
	cr_assert_eq(dest_may_start(&d, DEST_NORMAL, now, true, &w), DEST_GO,
		     "0.5 of a cohort after the reset: alive (%s)", dest_verdict_name(w.why));
	cr_assert_eq(window(&d, DEST_NORMAL, now), 1);

	/* A larger failed_cohort_limit takes more failures in a row. */
	c.failed_cohort_limit = 3;
	dest_init(&d, "example.com", &c);
	unsigned failures = 0;
	while (dest_may_start(&d, DEST_NORMAL, now, true, &w) == DEST_GO) {
		cr_assert_eq(dest_start(&d, DEST_NORMAL, now, true, &w), DEST_GO);
		cr_assert_eq(dest_done(&d, DEST_NORMAL, now, DEST_SITE_FAIL, refused), 0);
		cr_assert_lt(++failures, 100);
	}
	/* 1/5 + 1/4 + 1/3 + 1/2 + 1 + 1 = 3.28: the sixth failure kills */
	cr_assert_eq(failures, 6);
	cr_assert_eq(w.why, DEST_DEAD);

	/* A delivery still in flight that succeeds brings a dead site back. */
	c.failed_cohort_limit = 1;
	dest_init(&d, "example.com", &c);
	cr_assert_eq(fill(&d, DEST_NORMAL, now), 5);
	for (unsigned i = 0; i < 4; i++)
		cr_assert_eq(dest_done(&d, DEST_NORMAL, now, DEST_SITE_FAIL, refused), 0);
	cr_assert_eq(dest_may_start(&d, DEST_NORMAL, now, true, &w), DEST_DEAD);
	cr_assert_eq(dest_done(&d, DEST_NORMAL, now + SEC, DEST_OK, NULL), 0);
	cr_assert_eq(dest_may_start(&d, DEST_NORMAL, now + SEC, true, &w), DEST_GO);
	cr_assert_eq(window(&d, DEST_NORMAL, now + SEC), 1);
}

Test(dest, flush_clears_the_backoff)
{
	struct dest_conf c = conf();
	static struct dest d;
	struct dest_wait w;

	dest_init(&d, "example.com", &c);
	cr_assert_eq(fill(&d, DEST_NORMAL, T0), 5);
	for (unsigned i = 0; i < 4; i++)
		cr_assert_eq(dest_done(&d, DEST_NORMAL, T0, DEST_SITE_FAIL, refused), 0);
	cr_assert_eq(dest_may_start(&d, DEST_NORMAL, T0 + SEC, true, &w), DEST_DEAD);
	dest_clear_backoff(&d, T0 + SEC);
	/* alive, window 1, which the 5th delivery still in flight fills */
	cr_assert_eq(dest_may_start(&d, DEST_NORMAL, T0 + SEC, true, &w), DEST_WINDOW);
	cr_assert_eq(dest_may_start(&d, DEST_NOTIFY, T0 + SEC, true, &w), DEST_GO);
	cr_assert_eq(window(&d, DEST_NORMAL, T0 + SEC), 1);
	cr_assert_eq(d.stats.flushes, 1);
	/* a flush of a live destination forgets its counted failures */
	cr_assert_eq(dest_done(&d, DEST_NORMAL, T0 + SEC, DEST_SITE_FAIL, refused), 0);
	cr_assert_eq(window(&d, DEST_NORMAL, T0 + SEC), 0, "the 5th in flight killed it again");
	dest_clear_backoff(&d, T0 + 2 * SEC);
	cr_assert_eq(d.fail_cohorts, 0.0);
	cr_assert_eq(dest_done(&d, DEST_NORMAL, T0, DEST_OK, NULL), -1, "nothing in flight");
	/* a class that does not exist is refused, never indexed */
	cr_assert_eq(dest_may_start(&d, (enum dest_class)7, T0 + 3 * SEC, true, &w), DEST_WINDOW);
	cr_assert_eq(dest_start(&d, DEST_CLASSES, T0 + 3 * SEC, true, &w), DEST_WINDOW);
	cr_assert_eq(dest_done(&d, DEST_CLASSES, T0 + 3 * SEC, DEST_OK, NULL), -1);
}

Test(dest, an_untried_delivery_gives_no_feedback)
{
	struct dest_conf c = conf();
	static struct dest d;
	struct dest_wait w;

	dest_init(&d, "example.com", &c);
	cr_assert_eq(fill(&d, DEST_NORMAL, T0), 5);
	/* five deliveries that never reached the site: out of flight, the
	 * window neither grows (a cohort of successes would) nor shrinks */
	for (unsigned i = 0; i < 5; i++)
		cr_assert_eq(dest_done(&d, DEST_NORMAL, T0, DEST_UNTRIED, NULL), 0);
	cr_assert_eq(window(&d, DEST_NORMAL, T0), 5);
	cr_assert_eq(d.cls[DEST_NORMAL].busy, 0);
	cr_assert_eq(d.cls[DEST_NORMAL].stats.untried, 5);
	cr_assert_eq(d.cls[DEST_NORMAL].stats.delivered, 0);
	/* nor do they reset failures counted toward death */
	cr_assert_eq(fill(&d, DEST_NORMAL, T0), 5);
	for (unsigned i = 0; i < 2; i++)	/* 1/5 + 1/4 of a cohort, window 3 */
		cr_assert_eq(dest_done(&d, DEST_NORMAL, T0, DEST_SITE_FAIL, refused), 0);
	cr_assert_eq(dest_done(&d, DEST_NORMAL, T0, DEST_UNTRIED, NULL), 0);
	cr_assert_float_eq(d.fail_cohorts, 0.45, 1e-9);
	cr_assert_eq(window(&d, DEST_NORMAL, T0), 3);
	cr_assert_eq(dest_may_start(&d, DEST_NORMAL, T0, true, &w), DEST_GO, "2 in flight of 3");
	for (unsigned i = 0; i < 2; i++)
		cr_assert_eq(dest_done(&d, DEST_NORMAL, T0, DEST_UNTRIED, NULL), 0);
	cr_assert_eq(dest_done(&d, DEST_NORMAL, T0, DEST_UNTRIED, NULL), -1, "nothing in flight");
}

/* Start greedily for `span` ns, sleeping exactly as told; deliveries end
 * at once. Returns the starts. */
static unsigned run_greedy(struct dest *d, enum dest_class cls, uint64_t t0, uint64_t span,
			   bool new_conn, enum dest_verdict expect_wait)
{
	struct dest_wait w;
	unsigned n = 0;

	for (uint64_t now = t0; now < t0 + span;) {
		if (dest_start(d, cls, now, new_conn, &w) == DEST_GO) {
			n++;
			cr_assert_eq(dest_done(d, cls, now, DEST_OK, NULL), 0);
			continue;
		}
		cr_assert_eq(w.why, expect_wait, "waiting for %s", dest_verdict_name(w.why));
		cr_assert_gt(w.until_ns, now);
		cr_assert_neq(w.until_ns, DEST_UNTIL_EVENT);
		now = w.until_ns;
	}
	return n;
}

Test(dest, message_and_connection_rates_hold)
{
	struct dest_conf c = conf();
	static struct dest d;
	struct dest_wait w;
	unsigned n;

	c.cls[DEST_NORMAL].message_rate = rate("10/s burst 3");
	dest_init(&d, "example.com", &c);
	n = run_greedy(&d, DEST_NORMAL, T0, 60 * SEC, false, DEST_RATE);
	cr_assert(n >= 600 && n <= 603, "10/s over 60 s: %u", n);
	cr_assert_eq(dest_start(&d, DEST_NORMAL, T0 + 60 * SEC, false, &w), DEST_GO);
	cr_assert_eq(dest_may_start(&d, DEST_NORMAL, T0 + 60 * SEC, false, &w), DEST_RATE);
	cr_assert_eq(w.until_ns, T0 + 60 * SEC + 100 * MS);
	cr_assert_str_eq(w.reason, "message rate limit");

	/* The connection rate binds only deliveries that open a connection. */
	c = conf();
	c.cls[DEST_NORMAL].connection_rate = rate("2/s");
	dest_init(&d, "example.com", &c);
	n = run_greedy(&d, DEST_NORMAL, T0, 30 * SEC, true, DEST_RATE);
	cr_assert(n >= 60 && n <= 61, "2 connections/s over 30 s: %u", n);
	cr_assert_eq(d.cls[DEST_NORMAL].stats.new_connections, n);
	cr_assert_eq(dest_start(&d, DEST_NORMAL, T0 + 30 * SEC, true, &w), DEST_GO);
	cr_assert_eq(dest_may_start(&d, DEST_NORMAL, T0 + 30 * SEC, true, &w), DEST_RATE);
	cr_assert_eq(w.until_ns, T0 + 30 * SEC + 500 * MS);
	cr_assert_str_eq(w.reason, "connection rate limit");
	cr_assert_eq(dest_may_start(&d, DEST_NORMAL, T0 + 30 * SEC, false, &w), DEST_GO,
		     "reusing a connection is not limited by the connection rate");

	/* The longer of two waits is the answer: no wake-up in vain. */
	c.cls[DEST_NORMAL].message_rate = rate("1/s");
	c.cls[DEST_NORMAL].connection_rate = rate("1/min");
	dest_init(&d, "example.com", &c);
	cr_assert_eq(dest_start(&d, DEST_NORMAL, T0, true, &w), DEST_GO);
	cr_assert_eq(dest_may_start(&d, DEST_NORMAL, T0, true, &w), DEST_RATE);
	cr_assert_eq(w.until_ns, T0 + 60 * SEC);
	cr_assert_eq(dest_may_start(&d, DEST_NORMAL, T0, false, &w), DEST_RATE);
	cr_assert_eq(w.until_ns, T0 + SEC);
	/* may_start only looks: asking twice takes nothing */
	cr_assert_eq(dest_may_start(&d, DEST_NORMAL, T0 + SEC, false, &w), DEST_GO);
	cr_assert_eq(dest_may_start(&d, DEST_NORMAL, T0 + SEC, false, &w), DEST_GO);
	cr_assert_eq(d.cls[DEST_NORMAL].stats.started, 1);
}

Test(dest, suspension_holds_until_resumed_or_its_time)
{
	struct dest_conf c = conf();
	static struct dest d;
	struct dest_wait w;

	dest_init(&d, "example.com", &c);
	cr_assert_eq(dest_start(&d, DEST_NORMAL, T0, true, &w), DEST_GO);
	dest_suspend(&d, T0, 0, "held for maintenance");
	for (int cls = 0; cls < DEST_CLASSES; cls++) {
		cr_assert_eq(dest_may_start(&d, cls, T0 + 86400 * SEC, false, &w), DEST_SUSPENDED);
		cr_assert_eq(w.until_ns, DEST_UNTIL_EVENT);
		cr_assert_str_eq(w.reason, "held for maintenance");
	}
	/* what was in flight may still end */
	cr_assert_eq(dest_done(&d, DEST_NORMAL, T0 + SEC, DEST_OK, NULL), 0);
	dest_resume(&d, T0 + 2 * SEC);
	cr_assert_eq(dest_may_start(&d, DEST_NORMAL, T0 + 2 * SEC, false, &w), DEST_GO);

	/* until a time: refused before it, allowed from it, without a resume */
	dest_suspend(&d, T0, T0 + 60 * SEC, NULL);
	cr_assert_eq(dest_may_start(&d, DEST_NOTIFY, T0 + 60 * SEC - 1, false, &w), DEST_SUSPENDED);
	cr_assert_eq(w.until_ns, T0 + 60 * SEC);
	cr_assert_str_eq(w.reason, "suspended by the operator");
	struct dest_view v;
	dest_view(&d, T0 + 30 * SEC, &v);
	cr_assert(v.suspended);
	cr_assert_eq(v.suspended_until_ns, T0 + 60 * SEC);
	dest_view(&d, T0 + 60 * SEC, &v);
	cr_assert_not(v.suspended);
	cr_assert_eq(dest_may_start(&d, DEST_NOTIFY, T0 + 60 * SEC, false, &w), DEST_GO);
	/* a time already past suspends nothing */
	dest_suspend(&d, T0 + 100 * SEC, T0 + 99 * SEC, NULL);
	cr_assert_eq(dest_may_start(&d, DEST_NORMAL, T0 + 100 * SEC, false, &w), DEST_GO);
	cr_assert_eq(d.stats.suspensions, 2);
}

Test(dest, the_notify_class_is_independent)
{
	struct dest_conf c = conf();
	static struct dest d;
	struct dest_wait w;

	c.cls[DEST_NORMAL].message_rate = rate("1/min");
	c.failed_cohort_limit = 0;	/* the windows alone */
	dest_init(&d, "example.com", &c);
	/* normal: its rate spent after one start */
	cr_assert_eq(dest_start(&d, DEST_NORMAL, T0, true, &w), DEST_GO);
	cr_assert_eq(dest_may_start(&d, DEST_NORMAL, T0, true, &w), DEST_RATE);
	/* notify: its own window of 2 (no rate limit), full at 2 */
	cr_assert_eq(fill(&d, DEST_NOTIFY, T0), 2);
	/* normal failures shrink normal only; notify successes grow notify only */
	cr_assert_eq(dest_done(&d, DEST_NORMAL, T0, DEST_SITE_FAIL, refused), 0);
	cr_assert_eq(window(&d, DEST_NORMAL, T0), 4);
	cr_assert_eq(window(&d, DEST_NOTIFY, T0), 2);
	cr_assert_eq(dest_done(&d, DEST_NOTIFY, T0, DEST_OK, NULL), 0);
	cr_assert_eq(dest_done(&d, DEST_NOTIFY, T0, DEST_OK, NULL), 0);
	cr_assert_eq(window(&d, DEST_NOTIFY, T0), 3);
	cr_assert_eq(window(&d, DEST_NORMAL, T0), 4);
	/* the notify window is capped at its own limit (5) */
	for (unsigned i = 0; i < 100; i++) {
		fill(&d, DEST_NOTIFY, T0);
		cr_assert_eq(dest_done(&d, DEST_NOTIFY, T0, DEST_OK, NULL), 0);
	}
	cr_assert_eq(window(&d, DEST_NOTIFY, T0), 5);
	cr_assert_eq(window(&d, DEST_NORMAL, T0), 4);
	/* a full notify window does not hold normal mail back */
	cr_assert_eq(fill(&d, DEST_NOTIFY, T0 + 60 * SEC), 1);
	cr_assert_eq(dest_may_start(&d, DEST_NOTIFY, T0 + 60 * SEC, true, &w), DEST_WINDOW);
	cr_assert_eq(dest_may_start(&d, DEST_NORMAL, T0 + 60 * SEC, true, &w), DEST_GO);
	struct dest_view v;
	dest_view(&d, T0 + 60 * SEC, &v);
	cr_assert_eq(v.cls[DEST_NOTIFY].stats.delivered, 102);
	cr_assert_eq(v.cls[DEST_NORMAL].stats.delivered, 0);
	cr_assert_eq(v.cls[DEST_NOTIFY].busy, 5);
	cr_assert_eq(v.cls[DEST_NORMAL].busy, 0);
	cr_assert_str_eq(v.cls[DEST_NORMAL].message_rate, "1/min");
	cr_assert_str_eq(v.cls[DEST_NOTIFY].message_rate, "unlimited");
	cr_assert_eq(v.cls[DEST_NOTIFY].limit, 5);
	cr_assert_eq(v.cls[DEST_NORMAL].limit, 20);
}

Test(dest, view_and_idle)
{
	struct dest_conf c = conf();
	static struct dest d;
	struct dest_wait w;
	struct dest_view v;

	c.cls[DEST_NORMAL].message_rate = rate("6/min burst 2");
	c.cls[DEST_NORMAL].connection_rate = rate("1/s");
	dest_init(&d, "mx.example.com", &c);
	cr_assert(dest_idle(&d, T0));
	cr_assert_eq(dest_start(&d, DEST_NORMAL, T0, true, &w), DEST_GO);
	cr_assert_not(dest_idle(&d, T0), "in flight");
	dest_view(&d, T0, &v);
	cr_assert_str_eq(v.name, "mx.example.com");
	cr_assert_eq(v.cls[DEST_NORMAL].busy, 1);
	cr_assert_eq(v.cls[DEST_NORMAL].window, 5);
	cr_assert_eq(v.cls[DEST_NORMAL].limit, 20);
	cr_assert_str_eq(v.cls[DEST_NORMAL].message_rate, "6/min burst 2");
	cr_assert_str_eq(v.cls[DEST_NORMAL].connection_rate, "1/s");
	cr_assert_eq(v.cls[DEST_NORMAL].message_rate_wait_ns, 0, "one of the burst is left");
	cr_assert_eq(v.cls[DEST_NORMAL].connection_rate_wait_ns, SEC);
	cr_assert_eq(v.recipients_per_transaction, 50);
	cr_assert_eq(v.messages_per_connection, 100);
	cr_assert_str_eq(v.last_error, "");
	cr_assert_eq(dest_done(&d, DEST_NORMAL, T0, DEST_OK, NULL), 0);
	cr_assert_not(dest_idle(&d, T0), "rate state not yet back to idle");
	cr_assert(dest_idle(&d, T0 + 10 * SEC));
	dest_suspend(&d, T0 + 10 * SEC, 0, NULL);
	cr_assert_not(dest_idle(&d, T0 + 20 * SEC), "suspended");
	/* counters have names */
	cr_assert_eq(sizeof(struct dest_class_stats) / sizeof(uint64_t), 8);
	cr_assert_str_eq(dest_class_stat_names[0], "started");
	cr_assert_str_eq(dest_class_stat_names[7], "window_shrunk");
	cr_assert_str_eq(dest_stat_names[0], "deaths");
}

Test(dest, per_domain_overrides)
{
	struct dest_conf c = conf();
	static struct dest_policy p;
	const char *key = NULL;
	char err[256];

	cr_assert_eq(dest_policy_init(&p, &c,
				      "example.com: concurrency_limit=2, initial_concurrency=1, "
				      "message_rate=10/min burst 2 ; .example.net: "
				      "notify_concurrency_limit = 1, notify_initial_concurrency=1,"
				      "recipients_per_transaction=10; b.example.net: "
				      "failed_cohort_limit=0, messages_per_connection=1;",
				      &key, err, sizeof(err)), 0, "%s: %s", key, err);
	cr_assert_eq(p.n, 3);
	const struct dest_conf *e = dest_conf_for(&p, "Example.COM.");
	cr_assert_eq(e->cls[DEST_NORMAL].concurrency_limit, 2);
	cr_assert_eq(e->cls[DEST_NORMAL].initial_concurrency, 1);
	cr_assert_eq(e->cls[DEST_NORMAL].message_rate.n, 10);
	cr_assert_eq(e->cls[DEST_NORMAL].message_rate.burst, 2);
	cr_assert_eq(e->cls[DEST_NOTIFY].concurrency_limit, 5, "untouched keys keep the default");
	cr_assert_eq(e->recipients_per_transaction, 50);
	e = dest_conf_for(&p, "mx.example.net");
	cr_assert_eq(e->cls[DEST_NOTIFY].concurrency_limit, 1);
	cr_assert_eq(e->recipients_per_transaction, 10);
	cr_assert_eq(e->cls[DEST_NORMAL].concurrency_limit, 20);
	e = dest_conf_for(&p, "b.example.net");
	cr_assert_eq(e->failed_cohort_limit, 0);
	cr_assert_eq(e->messages_per_connection, 1);
	cr_assert_eq(e->recipients_per_transaction, 50, "exact wins: no .example.net keys");
	cr_assert_eq(dest_conf_for(&p, "example.net"), &p.def);
	cr_assert_eq(dest_conf_for(&p, "sub.example.com"), &p.def);

	/* an override drives the state made from it */
	static struct dest d;
	dest_init(&d, "example.com", dest_conf_for(&p, "example.com"));
	cr_assert_eq(fill(&d, DEST_NORMAL, T0), 1);

	static const struct {
		const char *text, *needle;
	} bad[] = {
		{ "example.com concurrency_limit=2", "is not 'domain: key=value, ...'" },
		{ "example.com: concurrency=2", "example.com: unknown key 'concurrency'" },
		{ "example.com: concurrency_limit", "'concurrency_limit' is not key=value" },
		{ "example.com: concurrency_limit=0", "not a number in 1..1000" },
		{ "example.com: concurrency_limit=1001", "not a number in 1..1000" },
		{ "example.com: concurrency_limit=2x", "not a number" },
		{ "example.com: concurrency_limit=99999999999", "not a number" },
		{ "example.com: message_rate=fast", "message_rate: 'fast' is not a rate" },
		{ "example.com: concurrency_limit=3", "initial_concurrency: 5 is not in 1..concurrency_limit (3)" },
		{ "example.com: notify_initial_concurrency=6", "notify_initial_concurrency: 6 is not in" },
		{ "a.com: messages_per_connection=1; A.COM: messages_per_connection=2", "a.com is listed twice" },
		{ "a_b.com: messages_per_connection=1", "'a_b.com' is not a domain" },
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		key = NULL;
		err[0] = '\0';
		cr_assert_eq(dest_policy_init(&p, &c, bad[i].text, &key, err, sizeof(err)), -1,
			     "case %u accepted", i);
		cr_assert_str_eq(key ? key : "(null)", "per_domain", "case %u", i);
		cr_assert_not_null(strstr(err, bad[i].needle), "case %u: '%s' lacks '%s'", i, err,
				   bad[i].needle);
		cr_assert_eq(p.n, 0);
	}
	/* and the defaults themselves are checked, naming their key */
	c.cls[DEST_NOTIFY].initial_concurrency = 9;
	cr_assert_eq(dest_policy_init(&p, &c, NULL, &key, err, sizeof(err)), -1);
	cr_assert_str_eq(key, "notify_initial_concurrency");
	c = conf();
	c.recipients_per_transaction = 0;
	cr_assert_eq(dest_conf_check(&c, &key, err, sizeof(err)), -1);
	cr_assert_str_eq(key, "recipients_per_transaction");
	c = conf();
	c.dead_backoff_ns = 0;
	cr_assert_eq(dest_conf_check(&c, &key, err, sizeof(err)), -1);
	cr_assert_str_eq(key, "dead_backoff");
}

/* A reload: a destination takes the new limits and keeps its state; a window
 * above the new limit comes down to it, and no further start is allowed
 * until the deliveries in flight are under it. */
Test(dest, reconf_lowers_the_window_to_the_new_limit)
{
	struct dest_conf c = conf(), lower = conf();
	static struct dest d;
	struct dest_view v;
	uint64_t now = T0;
	unsigned n;

	dest_init(&d, "example.com", &c);
	cr_assert_eq(fill(&d, DEST_NORMAL, now), 5);
	lower.cls[DEST_NORMAL].initial_concurrency = 2;
	lower.cls[DEST_NORMAL].concurrency_limit = 3;
	dest_reconf(&d, &lower);
	dest_view(&d, now, &v);
	cr_assert_eq(v.cls[DEST_NORMAL].window, 3);
	cr_assert_eq(v.cls[DEST_NORMAL].limit, 3);
	cr_assert_eq(v.cls[DEST_NORMAL].busy, 5, "deliveries in flight are not touched");
	for (int i = 0; i < 3; i++)
		cr_assert_eq(dest_done(&d, DEST_NORMAL, now, DEST_OK, NULL), 0);
	/* 2 in flight: 1 more fits under 3 */
	cr_assert_eq(fill(&d, DEST_NORMAL, now), 1);
	/* successes never grow it past the new limit */
	for (n = 0; n < 200; n++) {
		cr_assert_eq(dest_done(&d, DEST_NORMAL, now, DEST_OK, NULL), 0);
		fill(&d, DEST_NORMAL, now);
	}
	cr_assert_eq(window(&d, DEST_NORMAL, now), 3);
	cr_assert_eq(d.conf.cls[DEST_NORMAL].concurrency_limit, 3);
}
