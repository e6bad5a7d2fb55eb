/*
 * queue.h - the contract of Sluice's LMDB spool, for the other layers.
 *
 * The spool is N shards (N from struct queue_conf); a recipient domain lives
 * in shard hash(domain) % N, and each shard is one LMDB environment written
 * by exactly one writer thread. A domain is taken in one normal form (ASCII
 * lower case, one trailing dot dropped): "EXAMPLE.com." is "example.com"
 * for the shard, list and summary, while the address is stored as given.
 *
 * Producers (dataplane lcores) call queue_submit(): no lock, no system call,
 * no heap allocation. The submission is a caller-owned struct that must stay
 * untouched (envelope strings and body iovecs included) until it comes back
 * on the caller's completion ring, which happens once every shard the message
 * touches has it in a committed, synced transaction (or has refused it).
 * Then s->status says QUEUE_OK ("250 2.0.0 Ok: queued as s->id_str") or why
 * not (QUEUE_NOSPACE -> "452 4.3.1", anything else -> "451 4.3.0").
 *
 * A message whose recipients span shards is all or nothing: its parts are
 * stored as intents (never due, never claimed), sealed in every shard once
 * all have stored theirs durably, and only then acknowledged. When a shard
 * refuses, the parts stored elsewhere are deleted before the refusal comes
 * back (the client will retry the whole message). A crash leaves no part of
 * a message that was not acknowledged: queue_open deletes every part of a
 * message with a part still unsealed. The one duplicate window is the one
 * every MTA has: all sealed, crash before the 250 reaches the client.
 *
 * Everything else (scan, claim, results, hold, list, summary...) is for the
 * control-plane thread: it may block briefly, uses short read transactions,
 * and sends its writes to the shard's writer thread, which applies them in
 * its next group commit.
 */
#ifndef SLUICE_QUEUE_H
#define SLUICE_QUEUE_H

#include <limits.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/histo.h"
#include "common/stats.h"

struct queue;
struct rte_ring;

#define QUEUE_SHARDS_MAX   64
#define QUEUE_RCPT_MAX     1000	/* recipients per message (Postfix default) */
#define QUEUE_ADDR_MAX     256	/* RFC 5321 path */
/* RFC 3461 ORCPT value ("type;xtext") as the client sent it: the 500
 * characters by which RFC 3461 section 3 lengthens a RCPT command line. The
 * SMTP parser takes no longer one (smtp_parse.h: SMTP_ORCPT_MAX is this). */
#define QUEUE_ORCPT_MAX    500
#define QUEUE_DOMAIN_MAX   255
#define QUEUE_TEXT_MAX     255	/* envid, client name/address, helo */
#define QUEUE_REPLY_MAX    512	/* one SMTP reply line */
#define QUEUE_ID_STR       14	/* 13 base32 characters + NUL */
#define QUEUE_AGE_BUCKETS  10	/* qshape: 5,10,20,...,1280, 1280+ minutes */

enum queue_status {
	QUEUE_OK = 0,
	QUEUE_NOSPACE,		/* map at its ceiling or disk full: 452 4.3.1 */
	QUEUE_BUSY,		/* shard rings full, try again: 451 4.3.0 */
	QUEUE_INVALID,		/* bad argument (too many recipients, long address...) */
	QUEUE_IO,		/* LMDB or disk error */
	QUEUE_NOTFOUND,
	QUEUE_STALE,		/* claim token does not match, or already claimed */
	QUEUE_STATE,		/* not allowed in the message's state */
	QUEUE_CLOSED,		/* queue is shutting down */
};
const char *queue_status_str(int status);

/*
 * Durability mode (see queue_shard.c for the measurements behind the default).
 * FULL: every commit syncs data and meta page; acknowledge after the commit.
 * NOMETA: MDB_NOMETASYNC, one sync per commit; a batch is acknowledged once
 * the next commit's sync (or an explicit mdb_env_sync when idle) covers its
 * meta page. Both keep the environment intact on a crash.
 */
enum queue_sync { QUEUE_SYNC_FULL = 0, QUEUE_SYNC_NOMETA = 1 };

struct queue_conf {
	char dir[PATH_MAX];	/* spool directory; shard i lives in dir/shard-i */
	unsigned shards;	/* 1..QUEUE_SHARDS_MAX */
	size_t map_size;	/* initial LMDB map size per shard, bytes */
	size_t map_max;		/* ceiling per shard: beyond it, QUEUE_NOSPACE */
	unsigned batch_max;	/* messages per write transaction */
	size_t batch_bytes;	/* body bytes per write transaction (MDB_TXN_FULL guard) */
	unsigned ring_size;	/* submissions waiting per shard (beyond: QUEUE_BUSY) */
	size_t disk_reserve;	/* bytes kept free on disk per shard for deletes */
	unsigned lease_s;	/* default claim lease */
	enum queue_sync sync;
};
void queue_conf_defaults(struct queue_conf *conf);

/* Open (creating if needed) and recover the spool, start the writers. */
struct queue *queue_open(const struct queue_conf *conf, int *status);
/* Stop the writers (after draining their rings) and close. */
void queue_close(struct queue *q);

unsigned queue_nshards(const struct queue *q);
/* The shard of a domain, in any spelling ("Example.COM." = "example.com"). */
unsigned queue_shard_of(const struct queue *q, const char *domain);

/* ---- queue IDs ---------------------------------------------------------- */

/* 64-bit IDs print as 13 Crockford base32 characters; string order = ID order. */
void queue_id_format(uint64_t id, char out[QUEUE_ID_STR]);
int queue_id_parse(const char *s, uint64_t *id);	/* 0 or -1 */

/* ---- producer side (dataplane lcores) ------------------------------------ */

enum queue_notify {		/* RFC 3461 NOTIFY, as a bit set */
	QUEUE_NOTIFY_SUCCESS = 1, QUEUE_NOTIFY_FAILURE = 2,
	QUEUE_NOTIFY_DELAY = 4, QUEUE_NOTIFY_NEVER = 8,
};
enum queue_ret { QUEUE_RET_NONE = 0, QUEUE_RET_FULL, QUEUE_RET_HDRS };

/* What the next hop must support to take the message as it came. */
enum queue_body_flags {
	QUEUE_BODY_8BITMIME = 1,	/* MAIL BODY=8BITMIME (RFC 6152) */
	QUEUE_BODY_SMTPUTF8 = 2,	/* MAIL SMTPUTF8 (RFC 6531) */
};

struct queue_rcpt_in {
	const char *addr;	/* local@domain, without angle brackets */
	const char *orcpt;	/* RFC 3461 ORCPT or NULL */
	uint8_t notify;		/* enum queue_notify bits, 0 = not given */
};

struct queue_envelope {
	const char *sender;	/* "" for the null sender */
	const char *envid;	/* RFC 3461 ENVID or NULL */
	uint8_t ret;		/* enum queue_ret */
	uint8_t body_flags;	/* enum queue_body_flags */
	const char *client_name, *client_addr, *helo;	/* may be NULL */
	/* the SMTP AUTH identity (RFC 4954): mechanism ("PLAIN", "LOGIN")
	 * and user name; NULL or "" when the client did not authenticate */
	const char *auth_method, *auth_user;
	uint64_t arrival;	/* unix seconds */
	uint64_t expiry;	/* unix seconds: give up after this */
	uint8_t held;		/* 1: stored held (not due until released), e.g.
				 * a mail loop kept for the operator */
	/* a message transferred from another box (XSLUICE): first due at
	 * `due` (0: at arrival), with its attempts there and last error
	 * (NULL or "": none; cut to QREC_PRIOR_ERR_MAX, 160 octets) */
	uint64_t due;
	uint32_t prior_attempts;
	const char *prior_error;
	uint32_t nrcpt;
	const struct queue_rcpt_in *rcpt;
};

struct queue_submission {
	/* set by the caller */
	struct queue_envelope env;
	const struct iovec *iov;	/* the body: mbuf segments or one buffer */
	unsigned iovcnt;
	struct rte_ring *done;	/* completion ring, see queue_done_ring_create */
	void *user;		/* the caller's cookie (session...) */
	uint64_t reserved_id;	/* 0, or an ID from queue_id_reserve() to use */
	/* set by queue_submit; valid from the moment it returns QUEUE_OK */
	uint64_t id;
	char id_str[QUEUE_ID_STR];
	uint64_t size;		/* body bytes */
	/* valid once the submission is back on the completion ring */
	int status;
	/* private to the queue */
	atomic_uint pending;	/* shards still to answer (in this phase) */
	atomic_int err;		/* first failure status of any shard (in this phase) */
	uint64_t shard_mask;	/* shards the recipients are in */
	_Atomic uint64_t written;	/* shards that may hold a part (to take back) */
	int phase;		/* spanning shards: write, seal or undo (queue_shard.c) */
};

/*
 * Hand a message to the writers of every shard its recipients touch. Returns
 * QUEUE_OK (the submission will come back on s->done), or QUEUE_BUSY /
 * QUEUE_INVALID / QUEUE_CLOSED at once (nothing was queued, nothing will come
 * back). Lock-free and syscall-free: safe on a poll-mode lcore.
 */
int queue_submit(struct queue *q, struct queue_submission *s);

/*
 * Take the next queue ID now, for a message not yet submitted (the SMTP
 * server prints it in the Received: header it prepends to the body). Pass it
 * as reserved_id; an ID reserved and never used is simply skipped. Lock-free.
 */
uint64_t queue_id_reserve(struct queue *q);

/*
 * A completion ring (multi-producer: several writers post to it; single
 * consumer: its lcore). Size it for the producer's submissions in flight.
 * Created on plain aligned memory: needs no EAL. Not for the hot path.
 */
struct rte_ring *queue_done_ring_create(unsigned count);
void queue_done_ring_free(struct rte_ring *r);
/* Non-blocking: take up to max finished submissions. */
unsigned queue_done_poll(struct rte_ring *r, struct queue_submission **out, unsigned max);

/* ---- control plane -------------------------------------------------------- */

enum queue_rcpt_state {
	QUEUE_RCPT_PENDING = 0,	/* not tried yet */
	QUEUE_RCPT_DEFERRED,	/* tried, temporary failure: retry */
	QUEUE_RCPT_SENT,	/* final */
	QUEUE_RCPT_BOUNCED,	/* final */
};

struct queue_due { uint64_t id; uint64_t due; };

/* Messages of one shard due at or before now, oldest due first: O(due). */
int queue_scan_due(struct queue *q, unsigned shard, uint64_t now,
		   struct queue_due *out, size_t max, size_t *n);

/*
 * Claim a due message for delivery: it will not be handed out again until
 * the lease runs out (then it is due again) or a reschedule/complete ends
 * the claim. The token must accompany results, reschedule and complete.
 */
int queue_claim(struct queue *q, unsigned shard, uint64_t id, uint64_t now,
		unsigned lease_s, uint32_t *token);
/* Record one recipient's attempt (rcpt indexes this shard's recipients). */
int queue_result(struct queue *q, unsigned shard, uint64_t id, uint32_t token,
		 unsigned rcpt, enum queue_rcpt_state state, const char *reply,
		 uint64_t now);
/* End the claim; the message is due again at `when` (if it has pending rcpts). */
int queue_reschedule(struct queue *q, unsigned shard, uint64_t id, uint32_t token,
		     uint64_t when);
/* End the claim and delete the message: every recipient must be final. */
int queue_complete(struct queue *q, unsigned shard, uint64_t id, uint32_t token);

/*
 * Many control writes at once: each op goes to its shard's writer, every
 * writer applies what it got in one group commit, and the call returns when
 * all are done, each with its own status (and token for claims). This is
 * how a busy control plane should feed results back; the single-op calls
 * above are queue_apply() with one op. ops[i].shard must be set.
 */
enum queue_op_kind {
	QUEUE_OP_CLAIM, QUEUE_OP_RESULT, QUEUE_OP_RESCHEDULE, QUEUE_OP_COMPLETE,
	QUEUE_OP_HOLD, QUEUE_OP_RELEASE, QUEUE_OP_DELETE,
	QUEUE_OP_FLUSH,		/* due at `now` if later (see queue_flush) */
	QUEUE_OP_WARN,		/* note that the delay warning went (queue_msg.warned) */
};
#define QUEUE_OP_LAST QUEUE_OP_WARN
/*
 * Holding and releasing. A held part is never due. QUEUE_OP_HOLD notes when
 * (now) and why (reply: the reason shown in `queue list --held`, kept from
 * the first hold of a part already held); QUEUE_OP_RELEASE adds the time it
 * spent held to held_s, so that a message does not expire while it is
 * held (its expiry is expiry + held_s), and clears the reason.
 */
enum queue_op_flags {
	QUEUE_CLAIM_FORCE = 1,	/* claim: held or not yet due too (the operator's
				 * "bounce it now"); never an intent, nor a
				 * part whose claim has not lapsed */
};
struct queue_op {
	enum queue_op_kind op;
	unsigned shard;
	uint64_t id;
	uint32_t token;		/* result, reschedule, complete */
	uint64_t now;		/* claim, result, release, flush */
	uint64_t when;		/* reschedule */
	unsigned lease_s;	/* claim (0: the configured default) */
	unsigned flags;		/* claim: enum queue_op_flags */
	unsigned rcpt;		/* result */
	enum queue_rcpt_state state;	/* result */
	const char *reply;	/* result; hold: the reason (or NULL) */
	const char *dsn;	/* result: its enhanced status "X.Y.Z" (or NULL),
				 * kept with the reply for a later report */
	/* out */
	int status;
	uint32_t out_token;	/* claim */
};
/* Returns QUEUE_OK when every op was carried out, else the first failing status. */
int queue_apply(struct queue *q, struct queue_op *ops, size_t n);

/* Operator actions on every shard holding the message. */
int queue_hold(struct queue *q, uint64_t id);
int queue_release(struct queue *q, uint64_t id, uint64_t now);	/* due at now */
int queue_delete(struct queue *q, uint64_t id);
/*
 * Make the message due at `now` in every shard holding it (when it was due
 * later: "flush", the operator's or ETRN's "try again now"). QUEUE_OK when
 * some shard moved or had it due already; QUEUE_STATE when every part is
 * held, claimed (in delivery), not yet sealed, or has no recipient left to
 * try (nothing changes); QUEUE_NOTFOUND.
 */
int queue_flush(struct queue *q, uint64_t id, uint64_t now);

/* One message as stored in one shard. One allocation: free with free(). */
struct queue_msg_rcpt {
	const char *addr, *orcpt, *reply;
	const char *dsn;	/* the last result's enhanced status, "" if none */
	uint8_t notify;
	uint8_t state;		/* enum queue_rcpt_state */
	uint16_t attempts;
	uint64_t last_attempt;
};
struct queue_msg {
	uint64_t id;
	unsigned shard;
	int held, claimed;
	int warned;		/* its delay warning went (QUEUE_OP_WARN) */
	uint32_t token;
	uint64_t arrival, expiry, size, due, claim_until;
	uint64_t held_at;	/* held: since when */
	uint64_t held_s;	/* time spent held before: it expires this much later */
	uint64_t shards;	/* the shards holding its parts (bit i = shard i) */
	uint8_t ret;
	uint8_t body_flags;	/* enum queue_body_flags */
	const char *sender, *envid, *client_name, *client_addr, *helo;
	const char *auth_method, *auth_user;	/* "" when it came without AUTH */
	const char *hold_reason;	/* held: why ("" when no reason was given) */
	/* its history on the box it was transferred from (XSLUICE): the
	 * delivery attempts there and the last error ("" none); 0 and ""
	 * for mail that came from a client */
	uint32_t prior_attempts;
	const char *prior_error;
	unsigned nrcpt;
	struct queue_msg_rcpt *rcpt;
};
/* Its delivery attempts in all: those on the box it came from (prior)
 * plus the most any recipient of this part had here. */
unsigned queue_msg_attempts(const struct queue_msg *m);
/* Its last error: the reply of its most recently tried recipient still
 * deferred here, else the one it brought from another box; "" none. */
const char *queue_msg_last_error(const struct queue_msg *m);
/* Lookup by ID: O(log n). */
int queue_lookup(struct queue *q, unsigned shard, uint64_t id, struct queue_msg **out);
/* Copy the body (up to cap bytes; *len gets its full size). */
int queue_read_body(struct queue *q, unsigned shard, uint64_t id, void *buf,
		    size_t cap, size_t *len);
/* The same into n buffers, filled in order (the delivery scheduler's body
 * chunks), in one short read transaction. */
int queue_read_body_iov(struct queue *q, unsigned shard, uint64_t id,
			const struct iovec *iov, unsigned n, size_t *len);

struct queue_attempt {
	uint64_t time;
	unsigned rcpt;
	uint8_t state;
	char reply[QUEUE_REPLY_MAX + 1];
};
/* Attempt history of one message in one shard, oldest first. */
int queue_history(struct queue *q, unsigned shard, uint64_t id,
		  struct queue_attempt *out, size_t max, size_t *n);

/* IDs of messages with undone recipients in domain (any spelling), in arrival
 * order, after `after` (0: from the start). */
int queue_list_domain(struct queue *q, const char *domain, uint64_t after,
		      uint64_t *ids, size_t max, size_t *n);

/* A message and the shards holding its parts (bit i = shard i). */
struct queue_ref {
	uint64_t id;
	uint64_t shards;
};
/* queue_list_domain with each message's shards (one read transaction). */
int queue_refs_domain(struct queue *q, const char *domain, uint64_t after,
		      struct queue_ref *out, size_t max, size_t *n);
/* The message parts of one shard after `after`, in ID order, with the
 * shards of each message (one read transaction). */
int queue_refs_shard(struct queue *q, unsigned shard, uint64_t after,
		     struct queue_ref *out, size_t max, size_t *n);

/*
 * Walk the message parts of one shard after `after` in ID order, at most
 * max of them: fn sees each part as a queue_msg valid only during the call
 * (the strings point into the read transaction) and returns 0 to go on, 1
 * to stop. *last: the ID of the last part fn saw (after: none). *end: the
 * shard has no part past *last. One read transaction: keep max modest.
 */
typedef int (*queue_msg_fn)(void *user, const struct queue_msg *m);
int queue_scan_msgs(struct queue *q, unsigned shard, uint64_t after, size_t max,
		    queue_msg_fn fn, void *user, uint64_t *last, int *end);

/*
 * The summary, per destination domain, counted per (message part, domain)
 * with undone recipients, in four exclusive classes:
 *   held      the part is held;
 *   active    claimed for delivery now (Postfix's active queue);
 *   deferred  a recipient of that domain was tried and deferred;
 *   incoming  waiting for its first try for that domain.
 * bytes: the message sizes; age: by arrival age in qshape's buckets, to
 * the middle of its 5-minute arrival slot (within 2.5 minutes).
 */
struct queue_domain_sum {
	char domain[QUEUE_DOMAIN_MAX + 1];	/* normal form: lower case, no trailing dot */
	uint32_t incoming, active, deferred, held;
	uint64_t bytes;
	uint64_t oldest;	/* arrival of the oldest message (unix s) */
	uint32_t age[QUEUE_AGE_BUCKETS];	/* by arrival age, 5-minute resolution */
};
/*
 * Every domain of every shard, from the shards' aggregates in memory
 * (queue_agg.c, kept by the writers at each commit): O(domains x occupied
 * 5-minute arrival slots), no LMDB read, independent of the number of
 * messages. oldest is exact when exact_oldest (one O(log n) lookup per
 * domain), else the start of its oldest 5-minute slot. *out is malloc'd.
 */
int queue_summary_ex(struct queue *q, uint64_t now, int exact_oldest,
		     struct queue_domain_sum **out, size_t *n);
/* queue_summary_ex with exact oldest arrivals. */
int queue_summary(struct queue *q, uint64_t now, struct queue_domain_sum **out, size_t *n);
/* The exact arrival of domain's oldest message with undone recipients
 * (0: none). */
int queue_domain_oldest(struct queue *q, const char *domain, uint64_t *arrival);

/* qshape's bucket for an age in seconds: under 5 minutes 0, under 10 1,
 * under 20 2, ... under 1280 8, then 9. */
unsigned queue_age_bucket(uint64_t age_s);

/*
 * The queue's totals (qmail-qstat and more), from the aggregates:
 * messages: distinct messages (a message spanning shards counts once, by
 * its part in the lowest shard); untried: of those, the ones whose part
 * there was never claimed by the scheduler (waiting for their first
 * delivery attempt: qmail's "not yet preprocessed" has no exact twin here,
 * since a message is routed when it is tried); held: messages whose part
 * there is held; parts: message parts over all shards; bytes: the
 * messages' sizes; domains: destination domains with mail.
 */
struct queue_totals {
	uint64_t messages, untried, held, parts, bytes, domains;
};
void queue_totals_get(struct queue *q, struct queue_totals *out);

/* ---- counters ------------------------------------------------------------- */

/*
 * fsyncs: fdatasync/fsync calls made on the shard's data file, counted at
 * the call (queue_fsync.c; in FULL mode LMDB writes the meta page through
 * an O_DSYNC descriptor instead of a second call). seals: parts of
 * messages spanning shards made deliverable; undos: parts taken back
 * because another shard refused the message; orphans_removed: parts
 * deleted at open, of messages never acknowledged (crash mid-way).
 */
#define QUEUE_SHARD_STATS(X) \
	X(batches) X(messages) X(bytes) X(commits) X(fsyncs) X(map_grows) \
	X(replays) X(nospace_rejects) X(io_errors) X(ctl_ops) X(completions) \
	X(seals) X(undos) X(orphans_removed)
struct queue_shard_stats { QUEUE_SHARD_STATS(STATS_FIELD) };
extern const char *const queue_shard_stat_names[];
void queue_stats(const struct queue *q, unsigned shard, struct queue_shard_stats *out);

/*
 * How long the shard's group commits take, in ns (common/histo.h): from the
 * write transaction's start to its commit's return (the sync included in
 * QUEUE_SYNC_FULL; replays after growing the map included), one value per
 * batch written. Recorded by the shard's writer thread; a copy, read racily.
 */
void queue_commit_histo(const struct queue *q, unsigned shard, struct histo *out);

/* What a shard holds now: message parts (held, claimed and unsealed ones
 * too) and those in the due index (due now or later, or claimed). O(1): one
 * short read transaction. For any thread. QUEUE_OK or QUEUE_IO. */
struct queue_depth {
	uint64_t messages, due;
};
int queue_depth(struct queue *q, unsigned shard, struct queue_depth *out);

#endif
