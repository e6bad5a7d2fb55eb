/*
 * dest.h - one delivery destination's policy state: how many deliveries
 * may run at once, how fast, and whether the destination is dead or
 * suspended. The scheduler owns one struct dest per destination and asks
 * it before every delivery; worker lcores never see it.
 *
 * Concurrency (Postfix qmgr's feedback, per class):
 *  - the window starts at initial_concurrency (5) and never exceeds
 *    concurrency_limit (20);
 *  - after a cohort of successes (as many as the window) it grows by 1,
 *    but only while the window is in use (window < busy + initial), so an
 *    idle destination does not talk itself into 20 connections it never
 *    tried;
 *  - every site failure shrinks it by 1, never below 1;
 *  - "site failures" are the site's fault: connection refused or timed
 *    out, lost connection, a greeting or EHLO that is not 2xx (421
 *    included). A 4xx/5xx to MAIL, RCPT or DATA means the site works: it
 *    counts like a success for the window (DEST_OTHER_FAIL).
 * Dead destinations: each site failure adds 1/window to a failed-cohort
 * count that any success resets; when it reaches failed_cohort_limit (1: a
 * cohort's worth of failures in a row; 0: never) the destination is dead:
 * window 0 in every class for dead_backoff ([retry] min_backoff), its
 * queued mail deferred by the scheduler with "delivery temporarily
 * suspended: <reason>" without a connection each. After the backoff (or a
 * flush, or a success of a delivery still in flight) it comes back with a
 * window of 1: one probe, then growth by cohorts again.
 * Rates: message rate (deliveries started) and connection rate (new
 * connections opened) per class, GCRA (rate.h).
 * Classes: normal mail and notifications (DSNs, delay warnings) have their
 * own windows, rate budgets and counters, so bounces never slow normal mail
 * nor the reverse. Death and suspension are the site's state and apply to
 * both: a site that refuses connections refuses them to both.
 * Suspension: an operator's hold, indefinite or until a time.
 * Also carried for the scheduler: recipients per transaction (50) and
 * messages per connection (100).
 *
 * Per-domain settings ([dest] per_domain) override any of the [dest] keys:
 *   per_domain = example.com: concurrency_limit=2, message_rate=10/min;
 *                .example.net: connection_rate=1/s burst 2
 * matched like [retry] per_domain (exact, or ".domain" for any subdomain).
 *
 * Pure: no clock reads, no I/O, no heap, no threads. Times are the caller's
 * monotonic ns; every call that can change state takes `now` and first
 * applies what the passing of time did (a backoff or suspension that ran
 * out). All tables are fixed-size and allocated by the caller.
 */
#ifndef SLUICE_DEST_H
#define SLUICE_DEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/stats.h"
#include "control/domain_key.h"
#include "control/rate.h"

#define DEST_NAME_MAX 256		/* destination key, NUL included */
#define DEST_REASON_MAX 320		/* a failure's text, NUL included (truncated) */
#define DEST_CONCURRENCY_MAX 1000
#define DEST_COHORT_LIMIT_MAX 100
#define DEST_RCPTS_MAX 1000
#define DEST_MSGS_PER_CONN_MAX 100000
#define DEST_DOMAINS_MAX 64		/* per_domain entries */
#define DEST_UNTIL_EVENT UINT64_MAX	/* no time known: wait for a completion or resume */

enum dest_class { DEST_NORMAL = 0, DEST_NOTIFY, DEST_CLASSES };

/* How a delivery ended, for the feedback. */
enum dest_outcome {
	DEST_OK = 0,		/* the site took the message (per-recipient results aside) */
	DEST_SITE_FAIL,		/* the site failed (see above): counts toward death */
	DEST_OTHER_FAIL,	/* the site answered 4xx/5xx to MAIL/RCPT/DATA */
	DEST_UNTRIED,		/* the delivery never reached the site (no connection
				   slot here, TLS fallback...): no longer in flight,
				   no feedback either way */
};

/* May a delivery start? DEST_GO, or why not. */
enum dest_verdict {
	DEST_GO = 0,
	DEST_SUSPENDED,		/* until the suspension ends (DEST_UNTIL_EVENT: a resume) */
	DEST_DEAD,		/* until the backoff ends; reason: the failure that killed it */
	DEST_WINDOW,		/* the class's window is full: until a delivery finishes */
	DEST_RATE,		/* the message or connection rate: until it allows one */
};

struct dest_wait {
	enum dest_verdict why;
	uint64_t until_ns;	/* when to ask again; DEST_UNTIL_EVENT: after an event */
	const char *reason;	/* for logs and deferrals; valid until the next call on d */
};

struct dest_class_conf {
	unsigned initial_concurrency;	/* 1 .. concurrency_limit */
	unsigned concurrency_limit;	/* 1 .. DEST_CONCURRENCY_MAX */
	struct rate_spec message_rate;	/* deliveries started; n == 0: unlimited */
	struct rate_spec connection_rate;	/* new connections opened */
};

struct dest_conf {
	struct dest_class_conf cls[DEST_CLASSES];
	unsigned failed_cohort_limit;	/* 0: never dead; <= DEST_COHORT_LIMIT_MAX */
	uint64_t dead_backoff_ns;	/* how long a dead destination waits, >= 1 s */
	unsigned recipients_per_transaction;	/* 1 .. DEST_RCPTS_MAX */
	unsigned messages_per_connection;	/* 1 .. DEST_MSGS_PER_CONN_MAX */
};

/* Counters per class; names in dest_class_stat_names. */
#define DEST_CLASS_STATS(X) X(started) X(new_connections) X(delivered) X(site_failures) \
	X(other_failures) X(untried) X(window_grown) X(window_shrunk)
struct dest_class_stats { DEST_CLASS_STATS(STATS_FIELD) };
extern const char *const dest_class_stat_names[];
/* Counters per destination; names in dest_stat_names. */
#define DEST_STATS(X) X(deaths) X(revivals) X(flushes) X(suspensions)
struct dest_stats { DEST_STATS(STATS_FIELD) };
extern const char *const dest_stat_names[];

/* One class's state. */
struct dest_class_state {
	unsigned window;		/* deliveries allowed in flight; 0 while dead */
	unsigned busy;			/* deliveries in flight */
	unsigned success;		/* successes toward the next +1 (a cohort = window) */
	struct gcra message_rate, connection_rate;
	struct dest_class_stats stats;
};

/* One destination. Embed it in the scheduler's per-destination record. */
struct dest {
	char name[DEST_NAME_MAX];
	struct dest_conf conf;		/* a copy: the policy may be reloaded */
	struct dest_class_state cls[DEST_CLASSES];
	double fail_cohorts;		/* sum of 1/window over site failures since a success */
	bool dead;
	uint64_t dead_until_ns;
	char dead_reason[DEST_REASON_MAX];
	bool suspended;
	uint64_t suspended_until_ns;	/* 0: until dest_resume */
	char suspend_reason[DEST_REASON_MAX];
	char last_error[DEST_REASON_MAX];	/* the last failure of any kind, "" if none */
	uint64_t last_error_ns;
	struct dest_stats stats;
};

/* What `dest show` prints: a snapshot as of now (time's effects applied). */
struct dest_view {
	const char *name;
	bool suspended;
	uint64_t suspended_until_ns;	/* 0: indefinite */
	const char *suspend_reason;
	bool dead;
	uint64_t dead_until_ns;
	const char *dead_reason;
	double fail_cohorts;
	struct dest_class_view {
		unsigned busy, window, limit;
		char message_rate[RATE_TEXT_MAX], connection_rate[RATE_TEXT_MAX];
		uint64_t message_rate_wait_ns, connection_rate_wait_ns;	/* 0: one may go now */
		struct dest_class_stats stats;
	} cls[DEST_CLASSES];
	unsigned recipients_per_transaction, messages_per_connection;
	const char *last_error;		/* "" if none */
	uint64_t last_error_ns;
	struct dest_stats stats;
};

/* One per_domain entry. */
struct dest_override {
	struct domain_key key;		/* the domain or .parent it applies to */
	struct dest_conf conf;		/* the defaults with this entry's keys applied */
};

/* The [dest] policy: defaults and per-domain overrides; read-only once built. */
struct dest_policy {
	struct dest_conf def;
	unsigned n;
	struct dest_override o[DEST_DOMAINS_MAX];
};

/* Check a conf's bounds. 0, or -1 with err filled and *key (if key) naming
 * the [dest] key at fault. */
int dest_conf_check(const struct dest_conf *c, const char **key, char *err, size_t errlen);

/* Build a policy from checked defaults and the per_domain text (NULL or
 * empty: none). 0, or -1 with err filled and *key ("per_domain" or as
 * dest_conf_check). */
int dest_policy_init(struct dest_policy *p, const struct dest_conf *def, const char *per_domain,
		     const char **key, char *err, size_t errlen);

/* The settings for a destination domain: its override, else the defaults. */
const struct dest_conf *dest_conf_for(const struct dest_policy *p, const char *domain);

/* A fresh destination: windows at their initial size, rates idle. */
void dest_init(struct dest *d, const char *name, const struct dest_conf *c);
/* A reload: d takes c's settings and keeps its state; a window above the
 * new concurrency limit comes down to it (deliveries in flight finish),
 * and a rate that changed starts afresh. */
void dest_reconf(struct dest *d, const struct dest_conf *c);

/*
 * May a delivery of class cls start at now? new_conn: it would open a new
 * connection (no idle one to reuse), so the connection rate applies too.
 * DEST_GO, or the reason with w filled (w->why is the return value); checked
 * in this order: suspended, dead, window, rates (the longer of the two
 * waits). A cls that is not a class is never a go (DEST_WINDOW).
 * Changes nothing but what time did (a backoff or suspension running out).
 */
enum dest_verdict dest_may_start(struct dest *d, enum dest_class cls, uint64_t now_ns,
				 bool new_conn, struct dest_wait *w);

/* The same decision, and on DEST_GO the delivery is counted as started
 * (in flight, rate cells taken). */
enum dest_verdict dest_start(struct dest *d, enum dest_class cls, uint64_t now_ns,
			     bool new_conn, struct dest_wait *w);

/*
 * A delivery of class cls ended. reason: the reply or error text for
 * failures (may be NULL). 0, or -1 when no delivery of that class was in
 * flight or cls is not a class (nothing changes).
 */
int dest_done(struct dest *d, enum dest_class cls, uint64_t now_ns, enum dest_outcome o,
	      const char *reason);

/* Hold the destination until until_ns (0: until dest_resume). why may be NULL. */
void dest_suspend(struct dest *d, uint64_t now_ns, uint64_t until_ns, const char *why);
void dest_resume(struct dest *d, uint64_t now_ns);

/* Flush: end a dead destination's backoff now (it comes back with window 1)
 * and forget the failures counted toward the next death. */
void dest_clear_backoff(struct dest *d, uint64_t now_ns);

/* Snapshot for `dest show`; pointers in v point into d. */
void dest_view(const struct dest *d, uint64_t now_ns, struct dest_view *v);

/* Nothing in flight, not dead, not suspended, rates idle: forgetting d now
 * and making a fresh one later would change no decision but the window. */
bool dest_idle(const struct dest *d, uint64_t now_ns);

/* "go", "suspended", "dead", "window", "rate". */
const char *dest_verdict_name(enum dest_verdict v);

#endif
