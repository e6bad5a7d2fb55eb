/*
 * sched_int.h - the delivery scheduler's own structures and the functions
 * its files share: sched.c (claims, routing, dispatch, results, the apply,
 * create and destroy), sched_notice.c (which outcome owes a notice, and
 * the notices: delay warnings, bounces, success DSNs), sched_xfer.c (the
 * transfer to another box) and sched_ops.c (the operator's commands:
 * flush, suspend, bounce, dest show). Not a contract for anyone else: the
 * scheduler's interface is sched.h; nothing outside control/sched*.c
 * includes this file. Everything here runs on the scheduler's one thread.
 *
 * Data structures (all owned by the one thread, no locks):
 *  - the active set: struct spart per claimed message part (one shard's
 *    part of a message), in a hash table by (ID, shard); it holds the
 *    queue_msg looked up after the claim, each recipient's state as known
 *    now (struct srcpt), how many items of it are still open and how many
 *    jobs lent, and its body in the arena while any job of it is lent;
 *  - items (struct sitem): some recipients of one part for one domain,
 *    first waiting for the domain's route (in a struct slookup, one per
 *    domain in progress, in a hash table by domain), then, cut to a
 *    transaction's size, in their destination's FIFO, then in a job;
 *  - destinations (struct sdest, hash table by key): dest.h's state, the
 *    hops of the latest route answer, the idle connections, and one lane
 *    per class (struct slane: normal mail, notifications): its FIFO and
 *    where it waits: in the ready ring (round robin over lanes), on the
 *    timer list (rate, timed suspension), for a job of its class to come
 *    back (window), or nowhere (nothing queued);
 *  - idle connections (struct sidle): per destination, and in a hash table
 *    by (worker, conn_key) for the lcores' close events;
 *  - job slots (struct sjob, made once, mmap'd) on a free list; the body
 *    arena: body_memory bytes in SCHED_CHUNK chunks on a free stack;
 *  - the op buffer: every queue op of the pass, with its part and reply
 *    text, applied by one queue_apply;
 *  - notices: parts whose results wait for a notice (bounce.h) are on the
 *    notices list until it is submitted, then named by their struct
 *    sgroup (one per notice, one message) until it is durable.
 * A part leaves the active set only after the apply that carried its last
 * op (the buffer points at it until then).
 */
#ifndef SLUICE_SCHED_INT_H
#define SLUICE_SCHED_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <rte_byteorder.h>

#include "control/sched.h"

#define DOMAIN_MAX 255
#define TEXT_MAX QUEUE_REPLY_MAX

/* ---- structures ------------------------------------------------------------ */

struct srcpt {
	uint8_t state;			/* enum queue_rcpt_state as known now */
	uint16_t attempts;		/* stored, plus this claim's */
	uint64_t next_s;		/* undone: due again at (0: not set) */
	/* a notice this claim's outcome owes (NOTE_NONE or a dsn_action + 1),
	 * and its RESULT op, which waits until the notice is durable */
	uint8_t note;
	bool op_held;			/* the RESULT op below waits */
	uint8_t op_state;
	char dsn[12];			/* the outcome's enhanced status */
	char *reply;			/* the outcome's text (op reply), when kept */
	char *reason;			/* ... as the notice says it (2xx: with the host) */
	uint64_t at;			/* when */
};
#define NOTE_NONE 0
#define NOTE(a) ((uint8_t)((a) + 1))

struct spart {
	struct spart *hnext;		/* active set */
	struct spart *lnext;		/* the finishing list */
	struct queue_msg *m;
	char ids[QUEUE_ID_STR];
	uint32_t token;
	uint64_t claimed_s, claimed_ns;
	unsigned open;			/* items not finished (+1 while routing) */
	unsigned lent;			/* jobs lent */
	bool hold;			/* a route, a loop or a quota said hold */
	char *hold_why;			/* ... why (heap), or NULL */
	bool finishing;			/* its last ops are in the buffer */
	bool broken;			/* an op failed: no more ops, just drop it */
	bool body_loaded;
	bool warn;			/* a delay warning is owed (in its notice) */
	bool xfer;			/* routed to the transfer's box (struct sxfer) */
	uint8_t nstate;			/* N_*: where its notice is */
	unsigned nnote;			/* recipients owing a notice */
	char *giveup;			/* the operator gave up: the reason */
	struct spart *nnext;		/* the notices list, or the held list */
	uint64_t release_ns;		/* notice_hold: made / results written then */
	unsigned body_refs, nbody;
	struct iovec *body;
	struct srcpt *r;
};

enum { N_NONE = 0, N_WAIT, N_SENT, N_HELD };

struct sdest;

struct sitem {
	struct sitem *next;
	struct spart *p;
	struct sdest *d;		/* once routed */
	unsigned n;
	uint16_t rcpt[];		/* indexes into p->m->rcpt */
};

struct sidle {
	struct sidle *hnext;		/* by (worker, key) */
	struct sidle *prev, *next;	/* its destination's, newest first */
	struct sdest *d;
	unsigned worker;
	uint64_t key;
	enum smtp_client_tls tls;
	unsigned messages;
};

enum { R_IDLE = 0, R_READY, R_WINDOW, R_TIMER };

/* One class of a destination: its FIFO and where it waits. */
struct slane {
	struct sdest *d;
	enum dest_class cls;
	struct sitem *head, *tail;
	unsigned nitems;
	uint8_t rs;			/* R_*: where it waits */
	struct slane *prev, *next;	/* ready ring or timer list */
	uint64_t wake_ns;		/* R_TIMER */
};

struct sdest {
	struct sdest *hnext;
	struct dest d;			/* d.name is the key */
	struct slane lane[DEST_CLASSES];
	unsigned lent;
	unsigned nhops;
	struct dlv_hop hop[DLV_HOPS_MAX];
	enum smtp_client_tls tls;
	uint64_t plain_until_ns;	/* TLS fallback under may */
	char fail_dsn[12];		/* status of the last site failure */
	struct sidle *idle;
	unsigned nidle;
	uint64_t deferred;		/* recipients deferred here (sched_dest_top) */
};

struct slookup {
	struct slookup *hnext;
	struct slookup *rnext;		/* the retry list */
	struct sched *s;
	struct sitem *head, *tail;	/* waiting for the answer */
	bool running;			/* route_lookup took it */
	bool retry;			/* on the retry list */
	char domain[DOMAIN_MAX + 1];
};

struct sjob {
	struct dlv_job j;		/* first: lent to the lcore */
	struct sched *s;
	struct sitem *it;
	struct sjob *next_free;
	unsigned worker;
	enum dest_class cls;
	enum smtp_client_tls tls;
	uint64_t dispatched_ns;
};

/* One notice in flight: the parts (of one message) whose results wait. */
struct sgroup {
	uint64_t id;
	uint64_t warn_shards;		/* other shards to mark warned once durable */
	unsigned n;
	struct spart *p[];
};

struct opbuf {
	struct queue_op *op;
	struct spart **part;		/* whose op (NULL: a claim) */
	uint32_t *text;			/* reply offset in txt, UINT32_MAX: none */
	size_t n, cap;
	char *txt;
	size_t tlen, tcap;
};

/* A destination domain the operator suspended (`suspend DOMAIN [--for T]`):
 * its recipients are given back untried, not routed, until it ends. */
struct ssusp {
	char dom[DOMAIN_MAX + 1];	/* normal form (addr_domain); "" : a free slot */
	uint64_t since_s;
	uint64_t until_s;		/* unix s; 0: until resumed */
};

/*
 * The transfer (`sluicectl transfer --to HOST[:PORT]`): while on, every part
 * routed goes, all its undone recipients in one item, to the destination
 * key ("[HOST]:PORT") whatever their domains, with XSLUICE; its outcome is
 * never an attempt (xfer_record). Counters of this transfer (the stats'
 * xfer_* count every transfer since the start).
 */
struct sxfer {
	bool on;
	bool include_held;
	struct net_addr addr;		/* the other box, either family */
	uint16_t port;
	char key[64];			/* "[a.b.c.d]:port" or "[IPv6:...]:port":
					 * its destination */
	uint64_t started_s, stopped_s;
	uint64_t moved;			/* parts removed after the other box's 250 */
	uint64_t rcpt_moved;		/* recipients the other box took */
	uint64_t failed;		/* recipients whose transfer failed (tried again) */
	uint64_t released;		/* held parts released for it (--include-held) */
	uint64_t made_due;		/* parts made due at its start */
};

struct claimed {
	uint64_t id;
	unsigned shard;
	uint32_t token;
};

struct sched {
	struct sched_conf c;
	struct sched_env e;
	uint64_t now_s, now_ns;		/* this pass's time */
	bool stopping;
	bool quota_batch;		/* a quota batch is open (apply: new claims) */

	struct spart **ptab;		/* active set */
	size_t pmask;
	unsigned nactive;
	struct spart *finishing;

	struct slookup **ltab;		/* lookups by domain */
	size_t lmask;
	unsigned nlookups;
	struct slookup *retry;

	struct sdest **dtab;		/* destinations by key */
	size_t dmask;
	unsigned ndests, nready;
	struct slane *ring;		/* the ready ring's cursor */
	struct slane *timers;

	struct bouncer *bn;		/* notices (bounce.h) */
	struct spart *notices;		/* parts waiting for their notice to be made */
	struct spart *nheld;		/* durable, results held (notice_hold) */
	unsigned nwaiting;		/* parts whose results wait for a notice */

	struct sidle **itab;		/* idle connections by (worker, key) */
	size_t imask;
	unsigned nidle;

	struct sjob *jobs;		/* jobs_max slots, mmap'd */
	size_t jobs_len;
	struct sjob *jfree;
	unsigned lent;
	unsigned port_lent[SCHED_PORTS_MAX];
	uint64_t jobseq;

	uint8_t *arena;			/* body chunks, mmap'd */
	size_t arena_len, nchunks, ncfree;
	uint32_t *cfree;

	struct opbuf ob;
	struct claimed *cl;		/* claims of the last apply */
	size_t ncl, clcap;
	struct queue_due *due;

	uint64_t last_scan_ns, last_gc_ns;
	bool scan_now;
	unsigned shard_rr;
	unsigned queued;

	struct ssusp susp[SCHED_SUSPEND_MAX];	/* the operator's suspensions */
	struct sxfer xfer;			/* the transfer to another box */

	struct sched_stats st;
};

/* A recipient's outcome, as record() takes it. */
struct outcome {
	enum queue_rcpt_state state;
	const char *dsn;		/* "4.4.1" */
	const char *text;		/* for the history and the log */
	const char *relay;		/* "none" when no hop answered */
	uint64_t dispatched_ns;		/* 0: not dispatched (delays b up to now) */
	double c, d;			/* delays c and d, seconds */
	bool record;			/* a RESULT op (an attempt); false: log only */
	bool peer_dsn;			/* 2xx: the next hop took DSN (NOTIFY passed on) */
	bool discarded;			/* 2xx: a discard route */
};

static inline bool null_sender(const struct spart *p)
{
	return !p->m->sender || !p->m->sender[0];
}

/* ---- sched.c ---- */

/* This pass's time (s->now_s, s->now_ns) from the clock. */
void sched_tick(struct sched *s);
/* The domain of an address, in normal form (lower case, no trailing dot),
 * into out; its length, 0 when the address has none. */
size_t sched_addr_domain(const char *addr, char out[DOMAIN_MAX + 1]);
/* snprintf that may cut (every text here has a bound and may be cut). */
void sched_textf(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Append an op of part p (NULL: a claim's) to this pass's buffer (reply
 * copied); NULL when out of memory (logged). */
struct queue_op *sched_ob_add(struct sched *s, struct spart *p, enum queue_op_kind kind,
			      unsigned shard, uint64_t id, const char *reply);
/* Append recipient i's RESULT op: state, its dsn (p->r[i].dsn), text. */
void sched_result_op(struct sched *s, struct spart *p, unsigned i, enum queue_rcpt_state state,
		     const char *text);
/* The mail log line of recipient i's outcome o, with this status and dsn. */
void sched_log_status(struct sched *s, const struct spart *p, unsigned i,
		      const struct outcome *o, const char *status, const char *dsn);
/* When recipient i of p expires (unix s; 0: never). */
uint64_t sched_rcpt_expiry(const struct sched *s, const struct spart *p, unsigned i);
/* The part's last ops (held RESULT ops, the warning mark, complete or
 * reschedule); it is freed after the apply that carries them. */
void sched_part_close(struct sched *s, struct spart *p, bool warned);
/* Every item of p is done: its notice, if it owes one, else its last ops. */
void sched_part_finish(struct sched *s, struct spart *p);
/* An item of p for n recipients (filled by the caller); NULL: no memory. */
struct sitem *sched_item_new(struct spart *p, unsigned n);
/* An item's route answer: to its destination's lane, or its failure. */
void sched_route_item(struct sched *s, struct sitem *it, const struct route_result *r);
/* Where part (id, shard) of the active set is, or would be linked (*slot
 * NULL: not active). */
struct spart **sched_part_slot(struct sched *s, uint64_t id, unsigned shard);
/* After a claim: the part into the active set, and on its way (given up
 * at once when giveup is not NULL). Returns it, or NULL. */
struct spart *sched_part_claimed(struct sched *s, const struct claimed *c, const char *giveup);
/* Where destination key is, or would be linked (*slot NULL: none). */
struct sdest **sched_dest_slot(struct sched *s, const char *key);
/* Both lanes of d (the site's state changed: a flush, a backoff cleared). */
void sched_dest_wake(struct sched *s, struct sdest *d);
/* Items queued at d, both classes. */
unsigned sched_dest_nitems(const struct sdest *d);
/* The operator's suspension of domain dom (normal form), or NULL; one
 * that ran out is dropped here. */
const struct ssusp *sched_suspension(struct sched *s, const char *dom);

/* ---- sched_notice.c ---- */

/* Is recipient i of p owed a delay warning now? */
bool sched_delay_due(const struct sched *s, const struct spart *p, unsigned i);
/* The notice final outcome o (state st) of recipient i owes: NOTE_NONE or
 * NOTE(dsn_action). */
uint8_t sched_note_for(const struct spart *p, unsigned i, enum queue_rcpt_state st,
		       const struct outcome *o);
/* Completions of the notices in flight; how many. */
unsigned sched_notices_poll(struct sched *s);
/* Parts held by notice_hold whose time has come: their last ops. */
void sched_notices_release(struct sched *s);
/* The parts waiting for a notice: one notice per message made and queued;
 * how many parts. */
unsigned sched_notices_flush(struct sched *s);

/* ---- sched_xfer.c ---- */

/* Recipient i of a part being transferred came out as o. */
void sched_xfer_record(struct sched *s, struct spart *p, unsigned i, const struct outcome *o);
/* A transfer is on: p's undone recipients, in one item, to its box. */
void sched_xfer_route(struct sched *s, struct spart *p);
/* Job j carries p to the transfer's box: XSLUICE required. */
void sched_xfer_job(struct sched *s, struct dlv_job *j, const struct spart *p);

#endif
