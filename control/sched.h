/*
 * sched.h - the delivery scheduler: which queued message goes where, when,
 * and on which worker lcore. Postfix's qmgr is the model.
 *
 * It runs on the control-plane thread (plane.c calls sched_poll from its
 * loop, next to the resolver and router it shares), never on a worker
 * lcore, and is the only user of the delivery ports' producer and consumer
 * ends (delivery.h). One pass of sched_poll:
 *
 *  1. results: every port's result ring is reaped; each recipient's
 *     outcome becomes a QUEUE_OP_RESULT (2xx sent, 4xx deferred with the
 *     reply kept in the history, 5xx bounced), the destination gets its
 *     feedback (dest_done), an idle connection goes into the inventory;
 *     a message part whose jobs are all back is finished: QUEUE_OP_COMPLETE
 *     when every recipient is final, else QUEUE_OP_RESCHEDULE at the
 *     earliest retry time of its deferred recipients (retry_next_for, per
 *     recipient domain, attempts as stored plus this one);
 *  2. due scan: while the active set has room (active_limit message parts
 *     in memory), the due index of every shard is read (O(due)) and each
 *     due part that is not active already is claimed with a lease;
 *  3. one queue_apply for everything of the pass: results, reschedules,
 *     completions and claims go to the shards' writers together and are
 *     made durable by one group commit per shard. A part's results always
 *     precede the op that ends its claim (same shard ring, in order), so a
 *     crash can at worst deliver a message again, never lose one;
 *  4. each claimed part's undone recipients are grouped by domain and the
 *     domain routed (route_lookup, asynchronous: one lookup in progress per
 *     domain, every part waiting for that domain is served by its answer).
 *     OK: the recipients join the FIFO of the answer's destination (the
 *     domain for MX routes, the next hops of a static route or the
 *     relayhost, route_result.dest) in items of at most
 *     recipients_per_transaction (and DLV_RCPT_MAX); TEMP: deferred with
 *     the route's reason; PERM: bounced; DISCARD: final as sent
 *     ("discarded" in the log); HOLD: the part is held. A domain that is
 *     no host name is bounced (5.1.2), unless it has 8-bit octets (an
 *     internationalized name: deferred 4.4.3 until IDNA conversion exists);
 *  5. dispatch: round robin over the destinations with work, one item each
 *     per round, so one huge destination never starves the others. Each
 *     item asks its destination first (dest.h: window, rates, dead,
 *     suspended): go -> a job (an idle connection of that destination and
 *     TLS policy named when the inventory has one; the body read from the
 *     queue into chunks of the body arena, shared by the part's jobs in
 *     flight) to the least busy worker; window full -> the destination
 *     waits for one of its jobs to come back; rate or timed suspension ->
 *     it waits until then (sched_wake_ns says when); dead -> every item it
 *     holds is deferred at once, without a connection, with "delivery
 *     temporarily suspended: <reason>" (Postfix).
 *
 * Classes. A message from the null sender (a DSN or delay warning we made,
 * or a bounce we relay) travels in its destination's DEST_NOTIFY class:
 * its own FIFO, window and rates (dest.h), so a flood of bounces to a
 * destination never holds up its normal mail, nor the reverse. Each
 * destination keeps one FIFO per class; the round robin serves each
 * (destination, class) lane in turn.
 *
 * Notices (bounce.h). Each recipient outcome that owes the sender a DSN
 * (a 5xx, a route's permanent failure, an expiry, the operator's bounce:
 * "failed" unless NOTIFY says otherwise; a 2xx with NOTIFY=SUCCESS to a
 * next hop without DSN: "relayed"; a discard with NOTIFY=SUCCESS:
 * "delivered"), and each delay warning due (below), is collected per
 * message; when the part's items are all done, one notice per message per
 * pass covers every such recipient of its parts finished in that pass. The
 * notice is queued (queue_submit) and the RESULT ops of those recipients,
 * with the op that ends the claim, wait until it is durable: a crash in
 * between leaves both the notice and the original in the queue (the
 * original is tried again: at worst a second notice, never none). Mail
 * from the null sender is never bounced: bounce.h says what becomes of it.
 * A notice that cannot be queued leaves its failed recipients undone (tried
 * again after [retry] min_backoff); a success notice that cannot be queued
 * is lost (logged): the mail itself was delivered.
 *
 * Lifetime. A recipient expires at its message's arrival plus the lifetime
 * for its domain (retry_lifetime_for: [retry] lifetime_per_domain, else the
 * expiry stored at arrival, which is lifetime or bounce_lifetime), plus
 * the time the message spent held. An expired message is not tried early:
 * it gets one last attempt when its next retry is due (qmail), and a
 * deferral then is final: the recipient fails with 4.4.7 in the DSN (its
 * last reply as Diagnostic-Code), logged status=expired.
 *
 * Delay warnings. When a part finishes with recipients still undone and
 * the message has had no warning, a recipient is owed one ("delayed", with
 * Will-Retry-Until its expiry) once the message is delay_warning_s old if
 * it asked (NOTIFY=DELAY; 4 h when delay_warning_s is 0) or gave no NOTIFY
 * and delay_warning_s is set. One per message: QUEUE_OP_WARN marks every
 * shard holding it, once the warning is durable.
 *
 * Loops. A route that leads back to us (route PERM 5.4.6) bounces the
 * recipients 5.4.6, or with loop_hold holds the part for the operator.
 *
 * Special results. `local` (the lcore could not try: no connection slot,
 * no TLS context...): nothing is recorded, the destination gets no
 * feedback (DEST_UNTRIED), the part is due again after local_retry_s. A
 * failed STARTTLS handshake under `may` (tls_failed): the item goes back to
 * the head of its destination's FIFO, and that destination is sent
 * plaintext (SCT_NONE) for tls_fallback_s; not a site failure. A deferral
 * after the message's expiry is final (bounced, logged status=expired).
 *
 * Log lines (log_info, Postfix's shape, one per recipient outcome):
 *   ID: to=<r>, relay=host[ip]:port, delay=T, delays=a/b/c/d, dsn=X.Y.Z,
 *       status=sent|deferred|bounced|expired (reply)
 * (a: queue arrival to claim; b: claim to dispatch; c: connection set-up;
 * d: transmission) and "ID: removed" when a message part leaves the queue.
 *
 * Bounds: active_limit parts in memory, jobs_max jobs lent at once (slots
 * made once), body_memory bytes of body chunks (a job whose body does not
 * fit waits), scan_batch IDs per shard per scan, one route lookup per
 * domain in progress (the router's own max_jobs beyond).
 *
 * Time is injected (struct sched_clock): unix seconds for everything the
 * queue stores (claims, attempts, due times, retry schedules), monotonic ns
 * for destinations (windows, rates, backoffs) and timers. The tests walk a
 * five-day schedule in seconds.
 *
 * Threading: every function is for the one thread that owns the scheduler
 * (and its router); sched_stats_get's snapshot may be read from another.
 */
#ifndef SLUICE_SCHED_H
#define SLUICE_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "common/stats.h"
#include "control/bounce.h"
#include "control/cluster.h"
#include "control/dest.h"
#include "control/retry.h"
#include "control/route.h"
#include "dataplane/net/net_addr.h"
#include "dataplane/smtp/delivery.h"
#include "queue/queue.h"

struct quota;

#define SCHED_CHUNK (64u * 1024)	/* body arena chunk */
#define SCHED_PORTS_MAX 64		/* worker lcores */

/* The one clock interface. NULL members: the real clocks. */
struct sched_clock {
	uint64_t (*unix_s)(void *user);		/* queue stamps, retry times */
	uint64_t (*mono_ns)(void *user);	/* destinations, timers */
	void *user;
};

struct sched_conf {
	unsigned active_limit;		/* message parts in memory (Postfix's
					 * qmgr_message_active_limit: 20000) */
	unsigned scan_batch;		/* due IDs read per shard per scan */
	uint64_t scan_interval_ns;	/* between due scans while nothing new was
					 * found (a full batch: at once) */
	unsigned lease_s;		/* claim lease: past it a claim lapses */
	size_t body_memory;		/* the body arena (bytes, >= SCHED_CHUNK) */
	unsigned jobs_max;		/* jobs lent to the lcores at once */
	uint32_t keep_idle_ms;		/* a connection's idle time after a job
					 * (0: QUIT after each) */
	unsigned local_retry_s;		/* an untried job's part is due again after */
	unsigned tls_fallback_s;	/* plaintext to a destination after a
					 * failed handshake under `may` */
	unsigned quiesce_ms;		/* sched_quiesce waits this long for
					 * results of jobs in flight */
	/* notices (bounce.h): hostname, double_bounce_to, size_limit,
	 * max_inflight (lifetime_s: the retry policy's bounce_lifetime) */
	struct bounce_conf bounce;
	uint64_t delay_warning_s;	/* 0: warnings only for NOTIFY=DELAY, after
					 * SCHED_DELAY_DEFAULT_S */
	bool loop_hold;			/* a route back to us: hold, not bounce */
	uint64_t notice_hold_ns;	/* tests only ([impair] notice_hold): a notice
					 * waits this long before it is queued, and its
					 * original's results this long after it is
					 * durable (two windows for kill -9) */
};
#define SCHED_DELAY_DEFAULT_S (4 * 3600)
/* 20000 parts, 1000 per scan, 50 ms, lease 3600 s, 256 MiB, 1024 jobs,
 * idle 2000 ms, local retry 10 s, TLS fallback 3600 s, quiesce 2000 ms;
 * bounce_conf_default, no delay warnings unless asked, loops bounced. */
void sched_conf_default(struct sched_conf *c);
/* 0, or -1 with *why set. */
int sched_conf_check(const struct sched_conf *c, const char **why);

/* What the scheduler works with; all of it outlives the scheduler (see
 * sched_destroy for the order). */
struct sched_env {
	struct queue *q;
	struct router *rt;			/* route_lookup (its resolver polled
						 * by the owner's loop) */
	const struct retry_policy *retry;
	const struct dest_policy *dest;		/* per destination: dest_conf_for() of
						 * the domain (MX routes) or of the first
						 * next hop's host (static routes) */
	const struct dlv_port *ports[SCHED_PORTS_MAX];	/* one per worker lcore */
	unsigned nports;
	struct sched_clock clock;
	struct quota *quota;			/* daily quotas and suspensions
						 * (quota.h), asked at a message's first
						 * claim; NULL: none */
	struct cluster *cluster;		/* NULL: this box alone; else asked
						 * before each delivery (cluster.h:
						 * leases, shared rates) */
};

struct sched;

/* NULL with err filled on a bad conf or no memory. */
struct sched *sched_create(const struct sched_conf *c, const struct sched_env *env,
			   char *err, size_t errlen);

/*
 * Free everything. Jobs lent to the lcores point into the scheduler's
 * memory: call it only when none is lent (sched_jobs_lent() == 0) or the
 * lcores are stopped (dp_halt), and after the router is destroyed or at
 * least no longer polled (its callbacks name the scheduler's lookups).
 */
void sched_destroy(struct sched *s);

/* One pass (see the top). Returns the work done (events reaped, parts
 * claimed, jobs dispatched, ops applied); 0 when there was nothing. */
unsigned sched_poll(struct sched *s);

/* When the next pass is wanted, on the monotonic clock: now (something
 * is in flight or waiting to be written), the earliest timer, or the next
 * due scan. The owner's loop may sleep until then, no longer. */
uint64_t sched_wake_ns(const struct sched *s);

/*
 * Stop: no more scans or jobs; items not yet sent are given back (their
 * parts due at once); results of jobs in flight are taken for up to
 * quiesce_ms and written; every part with nothing lent is rescheduled.
 * Parts with jobs still lent stay claimed (queue_open makes them due at the
 * next start). Then only sched_destroy (after dp_halt) is left to do.
 */
void sched_quiesce(struct sched *s);
unsigned sched_jobs_lent(const struct sched *s);

/* ---- flush (the control plane's requests, ETRN) ---- */

/* Make message id due now in every shard (queue_flush's statuses). */
int sched_flush_id(struct sched *s, uint64_t id);
/* Every message with recipients in domain due now, and the backoff of the
 * destination the domain is routed to cleared (a static route's or the
 * relayhost's at once; an MX route's now, and again when the route lookup
 * this starts answers). *n: messages made due. QUEUE_OK or the first error. */
int sched_flush_domain(struct sched *s, const char *domain, unsigned *n);
/* Everything due now and every destination's backoff cleared. */
int sched_flush_all(struct sched *s, unsigned *n);
/* Clear one destination's backoff (dest_clear_backoff). 0, or -1: no such
 * destination in memory. */
int sched_dest_clear(struct sched *s, const char *key);
/* A reload wrote new policies where env.retry and env.dest point (on the
 * scheduler's thread, between two passes): every destination in memory
 * takes its new settings (dest_reconf); later retries use the new
 * schedules. */
void sched_policy_reloaded(struct sched *s);

/*
 * The operator gives up on message id (exim -Mg): every recipient not yet
 * delivered fails now, "cancelled by the operator: REASON" (5.0.0; reason
 * may be NULL), and its sender gets the DSN as for any failure. A part in
 * delivery is given up when its jobs come back; one held or not yet due is
 * claimed for it (QUEUE_CLAIM_FORCE). *n: the recipients given up.
 * QUEUE_OK, QUEUE_NOTFOUND, or QUEUE_STATE (nothing left to give up).
 */
int sched_bounce_id(struct sched *s, uint64_t id, const char *reason, unsigned *n);

/*
 * The operator's suspension of a destination domain (`suspend DOMAIN [--for
 * T]`): from the next claim on, its recipients are not routed but given
 * back untried (logged deferred, "delivery to DOMAIN suspended by the
 * operator", dsn 4.3.2), due again when it ends (for_s 0: until resumed;
 * they come back after min_backoff meanwhile). Items already queued at a
 * destination are given back the same way when their turn to go comes (a
 * suspension stops the domain within one pass). Other domains, even on the same next hop, are not
 * touched. At most SCHED_SUSPEND_MAX at once. QUEUE_OK, QUEUE_INVALID (not
 * a domain), QUEUE_NOSPACE (too many).
 * sched_resume_domain ends it and flushes the domain (sched_flush_domain):
 * QUEUE_OK with *n made due, or QUEUE_NOTFOUND (not suspended).
 * sched_suspended_json appends {"domain","since","until"} per suspension.
 */
#define SCHED_SUSPEND_MAX 256
int sched_suspend_domain(struct sched *s, const char *domain, uint64_t for_s);
int sched_resume_domain(struct sched *s, const char *domain, unsigned *n);
unsigned sched_suspended_json(struct sched *s, json_t *arr);

/*
 * The transfer of this box's queue to another box (`sluicectl transfer --to
 * HOST[:PORT]`, issue 19). From sched_transfer_start on, every message part
 * claimed is routed, all its undone recipients whatever their domains, to
 * the destination "[HOST]:PORT" (HOST an IPv4 address, or "IPv6:" and an
 * IPv6 address, as an RFC 5321 address literal; its own window, rates and backoff, as any
 * destination's policy for HOST), with the MAIL parameter XSLUICE
 * (xsluice.h: arrival, attempts, next try, expiry, last error), which the
 * other box must offer, else nothing is sent. Everything is made due at
 * once (sched_flush_all); held mail stays held unless include_held (then
 * it is released first). The other box's 2xx makes the recipient final as
 * sent, without any notice (no success DSN, not counted as delivered:
 * xfer_rcpt, not rcpt_sent), logged "status=transferred to=[HOST]:PORT";
 * the part is removed once all of its recipients are (queue COMPLETE, after
 * the 250: at least once, as any delivery). Any other outcome is not an
 * attempt: nothing recorded, no bounce, due again after local_retry_s. A
 * part in a delivery when the transfer starts finishes it, then is due at
 * once, and transferred. The transfer stays on (new DSNs made here go too)
 * until sched_transfer_cancel; parts in flight then finish their transfer.
 * The plane records it on disk so that a restart goes on with it
 * (transfer_state.h).
 * start: QUEUE_OK (*made_due: parts made due), QUEUE_STATE (one is on),
 * QUEUE_INVALID (no address, the unspecified one, or port 0), or the flush's error (it is on).
 * cancel: QUEUE_OK or QUEUE_NOTFOUND (none on).
 * sched_transfer_json: {"active","to","include_held","started","stopped",
 * "moved" (parts removed), "recipients_moved", "failed" (recipient
 * transfers that failed), "left" (messages in the queue), "held",
 * "released", "made_due"} of the last transfer (all 0 / "" before one).
 */
int sched_transfer_start(struct sched *s, const struct net_addr *to, uint16_t port,
			 bool include_held, uint64_t *made_due);
int sched_transfer_cancel(struct sched *s);
json_t *sched_transfer_json(struct sched *s);
/* The XSLUICE value of message part m for a transfer at `now` (its next
 * try from its history and rp's schedule, now if never tried here). 0, or
 * -1 when out of XSLUICE's bounds. */
int sched_xsluice_of(const struct queue_msg *m, const struct retry_policy *rp, uint64_t now,
		     char *out, size_t cap);

/*
 * `dest show [KEY]`: append to the JSON array dests an object for
 * destination key (NULL: every one in memory, at most max): dest_view plus
 * the scheduler's own (items queued, jobs in flight, idle connections,
 * plaintext fallback):
 *   {"name", "queued", "in_flight", "idle_connections", "plaintext_for" (s),
 *    "hops", "suspended", "suspended_for" (s), "suspend_reason", "dead",
 *    "dead_for" (s), "dead_reason", "fail_cohorts", "recipients_per_transaction",
 *    "messages_per_connection", "last_error", "last_error_ago" (s), "deaths",
 *    "revivals", "flushes", "suspensions",
 *    "classes": {"normal"|"notify": {"queued", "busy", "window", "limit", "message_rate",
 *    "connection_rate", "message_rate_wait" (s), "connection_rate_wait" (s),
 *    and dest_class_stats' counters}}}
 * Returns how many were appended (fewer than found: out of memory).
 */
unsigned sched_dest_json(struct sched *s, const char *key, unsigned max, json_t *dests);

/*
 * The max destinations in memory with the most recipients deferred (by a
 * reply, or without a connection while dead), then the most queued, into
 * out[], best first: for metrics. Their counts live with the destination
 * in memory: one forgotten when idle starts again from 0 (a counter
 * reset). O(destinations x max). Returns how many.
 */
struct sched_dest_count {
	char name[DEST_NAME_MAX];
	uint64_t deferred;		/* recipients deferred, since in memory */
	unsigned queued;		/* items waiting, both classes */
	unsigned in_flight;		/* jobs lent */
	bool dead;
};
unsigned sched_dest_top(struct sched *s, struct sched_dest_count *out, unsigned max);

/* ---- counters ---- */

/*
 * scans: due scans (all shards); due_seen: IDs they returned; claims: parts
 * claimed; claims_lost: a claim refused (held, claimed, gone meanwhile);
 * route_lookups: lookups started (one per domain in progress); route_temp/
 * perm/hold/discard: answers other than OK, per item; jobs: jobs lent;
 * results: jobs back; reused: jobs that named an idle connection; rcpt_*:
 * recipient outcomes; dead_deferred: recipients deferred by a dead
 * destination without a connection; suspended: recipients given back by a
 * suspended destination; local: untried jobs; tls_fallbacks: plaintext
 * retries; completed: parts removed; rescheduled: parts given back;
 * held: parts held by a route; applies/ops/op_errors: queue_apply calls,
 * the ops in them, ops refused; body_reads/body_bytes: bodies read into the
 * arena; body_waits/slot_waits/ring_waits: dispatch stopped for body
 * memory, a job slot, a full job ring; close_events: idle connections
 * closed by an lcore; loops_held: parts held for a route back to us;
 * given_up: recipients the operator bounced; quota_held: messages held at
 * their first claim by quota.h (over a daily quota, or a suspended user;
 * a message spanning shards once); cluster_waits: deliveries that waited
 * for the cluster (a lease or a shared rate cell, cluster.h);
 * notices_waiting: parts whose
 * results wait for their notice (gauge); xfer_rcpt: recipients another box
 * took in a transfer; xfer_moved: parts removed after that; xfer_failed:
 * recipient transfers that failed (not attempts); xfer_active: 1 while a
 * transfer is on (gauge); dsn_*: bounce.h's counters
 * (dsn_inflight a gauge). Gauges: active (parts in memory), queued (items
 * waiting for a destination), lookups (in progress), jobs_lent,
 * body_arena_bytes (in use), idle_conns (inventory), dests (in memory).
 */
#define SCHED_STATS(X) \
	X(scans) X(due_seen) X(claims) X(claims_lost) X(route_lookups) X(route_temp) \
	X(route_perm) X(route_hold) X(route_discard) X(jobs) X(results) X(reused) \
	X(rcpt_sent) X(rcpt_deferred) X(rcpt_bounced) X(rcpt_expired) X(dead_deferred) \
	X(suspended) X(local) X(tls_fallbacks) X(completed) X(rescheduled) X(held) \
	X(applies) X(ops) X(op_errors) X(body_reads) X(body_bytes) X(body_waits) \
	X(slot_waits) X(ring_waits) X(close_events) X(loops_held) X(given_up) X(quota_held) \
	X(cluster_waits) X(xfer_rcpt) X(xfer_moved) X(xfer_failed) X(xfer_active) \
	X(dsn_reports) X(dsn_delay_warnings) X(dsn_success_notices) X(dsn_double_bounces) \
	X(dsn_dropped) X(dsn_failed) X(dsn_busy) X(dsn_inflight) X(notices_waiting) \
	X(active) X(queued) X(lookups) X(jobs_lent) X(body_arena_bytes) X(idle_conns) \
	X(dests)
struct sched_stats { SCHED_STATS(STATS_FIELD) };
extern const char *const sched_stat_names[];
extern const unsigned sched_stat_count;
void sched_stats_get(const struct sched *s, struct sched_stats *out);

#endif
