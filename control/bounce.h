/*
 * bounce.h - the notices the scheduler owes: RFC 3464 DSNs to a message's
 * sender (bounces, delay warnings, "relayed" success reports) and double
 * bounces to the postmaster, made with dsn.h and queued durably with
 * queue_submit, from the scheduler's thread.
 *
 * The scheduler decides who is owed what (dsn_wanted, the expiry, the delay
 * warning time) and hands one notice per message per pass to bounce_send()
 * with every recipient it covers. This module decides how it goes:
 *
 *   - a sender: one DSN to it, from MAILER-DAEMON, with the null sender
 *     (DSN_KIND_REPORT); the original attached as dsn.h says (RET, the
 *     size limit);
 *   - the null sender (the message is itself a bounce; only failures
 *     count, never a bounce of a bounce):
 *       . one of ours (a DSN this box made: no client address, and its
 *         header says "X-Sluice-Report: delivery-status"): one double
 *         bounce to double_bounce_to (dsn_on_failure), or nothing when
 *         that is empty;
 *       . our own double bounce ("X-Sluice-Report: double-bounce"):
 *         dropped, never a triple bounce;
 *       . anyone else's (a bounce we relay): dropped;
 *     every drop is logged with the message's queue ID and recipients.
 *
 * Durability: a notice is queued with queue_submit; the scheduler must not
 * write the original's final results (nor its end) before the notice's
 * completion comes back from bounce_poll with QUEUE_OK. A crash between the
 * two leaves both in the queue: the original is tried again and the notice
 * made again (a duplicate, never a loss).
 *
 * What is queued: sender "", one recipient (the report's To), body_flags as
 * dsn_build says (SMTPUTF8, 8BITMIME), no RET, no NOTIFY, no ENVID, no
 * client; arrival now, expiry now + lifetime_s (bounce_lifetime); its queue
 * ID (reserved first) is the DSN's token (Message-ID, boundary).
 *
 * Bounds: max_inflight notices submitted and not yet back (each holds its
 * text and the part of the original it returns, at most about size_limit +
 * DSN_HEADERS_MAX + the text); past it bounce_send says BOUNCE_BUSY and the
 * caller asks again on a later pass.
 *
 * Log lines (Postfix's): "ID: sender non-delivery notification: DSNID",
 * "... sender delay notification: ...", "... sender delivery status
 * notification: ..." (success), "... postmaster non-delivery notification:
 * ..." (a double bounce), written when the notice is durable.
 *
 * Threading: one thread (the scheduler's) uses a struct bouncer.
 */
#ifndef SLUICE_BOUNCE_H
#define SLUICE_BOUNCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/stats.h"
#include "control/dsn.h"
#include "queue/queue.h"

struct bounce_conf {
	char hostname[DSN_HOST_MAX + 1];	/* Reporting-MTA, MAILER-DAEMON@ */
	char double_bounce_to[QUEUE_ADDR_MAX + 1];	/* "": double bounces dropped */
	uint64_t size_limit;		/* an original returned whole up to this */
	uint64_t lifetime_s;		/* what is queued expires after this */
	unsigned max_inflight;		/* notices submitted at once */
};
/* sluice.test, no double bounces, 50000, 1 d, 256. */
void bounce_conf_default(struct bounce_conf *c);

/* One recipient a notice is about. */
struct bounce_rcpt {
	const char *addr;		/* RCPT TO */
	const char *orcpt;		/* ORCPT as received, or NULL/"" */
	enum dsn_action action;
	const char *status;		/* "X.Y.Z" ("" or NULL: from the reason, else
					 * from the action) */
	const char *reason;		/* the stored reply ("host h[ip] said: 550
					 * ...") or our own text */
	uint64_t last_attempt;		/* 0: none */
	uint64_t retry_until;		/* DSN_DELAYED: Will-Retry-Until */
};

/* A notice about one message: any part of it (the envelope is in every
 * part; the body is read from its shard). */
struct bounce_notice {
	const struct queue_msg *m;
	const struct bounce_rcpt *rcpt;
	unsigned nrcpt;			/* 1 .. QUEUE_RCPT_MAX */
	uint64_t now;			/* unix seconds: Date, arrival of the notice */
	void *user;			/* back with its completion */
};

enum bounce_verdict {
	BOUNCE_QUEUED = 0,	/* submitted: its completion comes from bounce_poll */
	BOUNCE_NONE,		/* nothing to send (a drop, logged): go on at once */
	BOUNCE_BUSY,		/* max_inflight, or the queue's rings full: ask again */
	BOUNCE_FAILED,		/* cannot be made or queued (logged): the caller must
				 * not write the results it owes a notice for */
};

struct bouncer;

/* NULL with err filled (bad conf, no memory). */
struct bouncer *bounce_create(const struct bounce_conf *c, struct queue *q, char *err,
			      size_t errlen);
/* Waits (up to 10 s) for notices still with the queue, then frees. */
void bounce_destroy(struct bouncer *b);

enum bounce_verdict bounce_send(struct bouncer *b, const struct bounce_notice *n);

struct bounce_done {
	void *user;
	int status;			/* QUEUE_OK: durable */
	char id[QUEUE_ID_STR];		/* the notice's queue ID */
};
/* Notices back from the queue (at most max). */
unsigned bounce_poll(struct bouncer *b, struct bounce_done *out, unsigned max);
/* Submitted and not back yet. */
unsigned bounce_inflight(const struct bouncer *b);

/*
 * reports: DSNs to senders queued; delay_warnings / success_notices of them
 * with a delayed / a relayed or delivered recipient; double_bounces;
 * dropped: failed null-sender mail given up without a notice (a bounce we
 * relayed, our double bounce, a double bounce with no double_bounce_to);
 * failed: notices that could not be made or queued; busy: asked again
 * later; inflight: a gauge.
 */
#define BOUNCE_STATS(X) \
	X(reports) X(delay_warnings) X(success_notices) X(double_bounces) X(dropped) \
	X(failed) X(busy) X(inflight)
struct bounce_stats { BOUNCE_STATS(STATS_FIELD) };
extern const char *const bounce_stat_names[];
void bounce_stats_get(const struct bouncer *b, struct bounce_stats *out);

#endif
