/*
 * smtp_service.h - inbound SMTP on one lcore: the session engine
 * (smtp_server.h) wired to the lcore's TCP stack, to TLS, and to the queue.
 *
 * One struct smtp_service per worker lcore, used only by that lcore. It
 * listens on the SMTP port of the lcore's TCP stack and runs one
 * smtp_session per connection from a preallocated pool:
 *
 *   TCP data --copy--> input buffer --(TLS: decrypt)--> smtp_session_input
 *   engine replies --(TLS: encrypt)--> tcp_send
 *   body bytes (engine sink) --> fixed-size chunks of the lcore's body arena
 *   recipients (engine cb.rcpt) --> 1 KiB of the connection's, then chunks
 *                                   of the same arena
 *   end of message --> queue_submit (Received header + chunks as iovecs)
 *   completion ring --> smtp_session_queued --> "250 2.0.0 Ok: queued as ID"
 *
 * Bounds. Received bytes are copied out of the mbufs at once (so the mbuf
 * pool never holds application data), into a per-connection buffer as large
 * as the TCP receive window; tcp_recved() is called only for bytes the
 * engine (or TLS) consumed, so the window is what bounds a client that
 * sends faster than we process. Bodies live in the arena until the queue
 * has them durable; when it is exhausted the message gets 452 4.3.1. So do
 * recipients (the RCPT that finds no room gets 452 4.3.1 and the client
 * sends it again later), so a transaction of many long ORCPTs costs arena
 * memory, not a worst-case buffer in every session. The
 * session slots bound connections per lcore: no more than the lcore's TCP
 * stack can hold (conf.lcore_conns), reserved as address space and made
 * resident only when first used; the shared struct smtp_limits bounds
 * sessions in total and per client address across all lcores (421 4.7.0).
 *
 * Reverse names. With an ask port and conf.rdns_wait_ns, every accepted
 * connection asks the control plane for the client's verified reverse name
 * (ask.h); the answer fills the session's client name. A message complete
 * before it came waits for it at most rdns_wait_ns from the connect (the
 * Received header is then made again with the name, or says "unknown");
 * nothing else in the session waits for it.
 *
 * Time. Each connection has a deadline from smtp_session_timeout_ns(),
 * pushed forward by every byte in or out, on the TCP stack's timer wheel
 * (tcp_set_timer; so tcp_tick() runs them, at no cost per idle session):
 * 421 4.4.2, and a reset if even that cannot be sent before the next
 * deadline. A TLS handshake gets the command timeout; a connection whose
 * message is with the queue has none.
 *
 * Submission. With submission_port / submissions_port the service listens
 * there too; sessions accepted there run the live snapshot's engine_sub
 * (AUTH required before MAIL), on 465 under TLS from the first byte. An
 * AUTH's name and password go to the control plane as an ASK_AUTH (its
 * auth worker runs the hash, never this lcore); the session waits for the
 * answer with the command timeout; no ask slot free: 454 4.7.0.
 *
 * Rates. With a client_limits table (smtp_limits.clients) and the
 * snapshot's rates ([limits]), a connection is counted against its
 * address at accept (over: 421 4.7.0, no session slot taken), MAIL and
 * RCPT against the address and the AUTH user (engine cb.rate: 452 4.7.1,
 * 452 4.5.3), and every AUTH attempt against the address's failure rate
 * before it is asked (over: 421 4.7.0, the auth worker never sees it;
 * given back when it succeeds). Refusals go to the mail log as ASK_MAILLOG
 * lines while the ask port has slots to spare.
 *
 * Shutdown. smtp_service_drain() stops listening and gives every session
 * "421 4.3.2" (after its pending message is answered); smtp_service_active()
 * reaches 0 once every connection is closed and no submission is in flight.
 */
#ifndef SLUICE_SMTP_SERVICE_H
#define SLUICE_SMTP_SERVICE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/stats.h"
#include "dataplane/smtp/client_limits.h"
#include "dataplane/smtp/client_share.h"
#include "dataplane/smtp/smtp_policy.h"
#include "dataplane/smtp/smtp_server.h"

struct tcp_stack;
struct queue;
struct tls_ctx;
struct smtp_service;
struct smtp_service_conf;

#define SMTP_BODY_CHUNK   (16 * 1024)	/* arena chunk: one iovec of a body */
#define SMTP_LIMIT_BUCKETS 4096		/* per-client counters, per row */

/*
 * Session counts shared by every lcore (lock-free). Per client address: a
 * count-min sketch of two rows (two independent hashes of the address); a
 * client's count is the smaller of its two counters, so it can only be
 * over-estimated, and only when both of its buckets are shared.
 */
struct smtp_limits {
	atomic_uint total;
	uint32_t seed[2];
	atomic_uint per_client[2][SMTP_LIMIT_BUCKETS];
	struct client_limits *clients;	/* per-client rates (client_limits.h), set
					 * by the owner; NULL: no rate limits */
	struct client_share *share;	/* message rates across a cluster
					 * (client_share.h), set by the owner;
					 * NULL or inactive: this box's alone */
	atomic_bool refuse_new;		/* the box is drained for maintenance
					 * (sluicectl drain): every new session gets
					 * "421 4.3.2 ... Service not available";
					 * open ones finish. Read per accept
					 * (relaxed), written by the control side */
};
void smtp_limits_init(struct smtp_limits *l, uint32_t seed0, uint32_t seed1);

/*
 * What a reload may change (sluicectl reload, SIGHUP), as one immutable
 * snapshot, published RCU-like without a lock on the packet path:
 *
 *  - the control side builds a new snapshot and stores it in the slot
 *    (smtp_live_slot.cur, release) with the next generation number;
 *  - each lcore loads the slot once per burst (smtp_service_poll, acquire)
 *    and then stores the generation it now uses in its service's `seen`:
 *    its quiescent point, after which it takes no new reference to an older
 *    snapshot;
 *  - a session keeps the snapshot it was accepted under for its whole life
 *    (as a Postfix smtpd keeps the configuration it started with): the
 *    lcore counts it in `sessions` at accept and uncounts it at release;
 *  - the control side frees a replaced snapshot once every lcore's seen is
 *    at least the generation that replaced it and its sessions count is 0
 *    (dp_smtp_reclaim).
 * So a session opened before a reload keeps its limits and stays up; the
 * next one gets the new ones. engine.max_rcpt and engine.max_size may not
 * exceed the start-up conf's (the per-session memory was sized by those).
 */
struct smtp_live {
	struct smtp_conf engine;	/* engine.policy == &policy */
	struct smtp_conf engine_sub;	/* the submission listeners': engine with
					 * submission set and AUTH offered when
					 * engine.auth_available; policy too */
	struct smtp_policy policy;	/* mynetworks, relay_domains */
	struct tls_ctx *tls;		/* NULL: no STARTTLS */
	bool own_tls;			/* tls is freed with the snapshot */
	unsigned max_sessions;		/* in total, all lcores */
	unsigned max_per_client;	/* per client address, all lcores */
	uint64_t lifetime_s, bounce_lifetime_s;	/* as in smtp_service_conf */
	uint64_t rdns_wait_ns;
	struct cl_conf rates;		/* per-client rate limits ([limits]) */
	uint64_t gen;			/* set by the publisher: 1, 2, ... */
	atomic_uint sessions;		/* sessions accepted under it, still open */
	struct smtp_live *retired_next;	/* the publisher's list of replaced ones */
};

/* Where lcores find the current snapshot. */
struct smtp_live_slot {
	_Atomic(struct smtp_live *) cur;
};

/* A snapshot of conf's settings (engine, its policy copied in, tls,
 * max_sessions, max_per_client, lifetimes, rdns_wait_ns); own_tls: the
 * snapshot takes conf->tls over. NULL: no memory. */
struct smtp_live *smtp_live_new(const struct smtp_service_conf *conf, bool own_tls);
/* Free a snapshot (and its TLS context if it owns it; NULL: nothing). */
void smtp_live_free(struct smtp_live *l);

struct smtp_service_conf {
	uint16_t port;			/* host order; 0: no SMTP service */
	uint16_t submission_port;	/* RFC 6409 (587): STARTTLS, then AUTH,
					 * before MAIL; 0: none */
	uint16_t submissions_port;	/* RFC 8314 (465): TLS from the first
					 * byte, AUTH before MAIL; 0: none. Both
					 * need tls and engine.auth_available */
	struct smtp_conf engine;	/* engine.policy must outlive the service */
	unsigned max_sessions;		/* in total, all lcores */
	unsigned lcore_conns;		/* connections one lcore's TCP stack holds
					 * ([tcp] max_conns); bounds its slots.
					 * 0: unknown, slots for max_sessions */
	unsigned max_per_client;	/* per client address, all lcores */
	uint64_t body_memory;		/* arena bytes per lcore */
	uint64_t lifetime_s;		/* queue expiry = arrival + this */
	uint64_t bounce_lifetime_s;	/* ... for mail from the null sender (0: lifetime_s) */
	struct queue *queue;		/* NULL: every message gets 451 4.3.0 */
	struct tls_ctx *tls;		/* NULL: no STARTTLS */
	struct smtp_live *live;		/* the first snapshot (the dataplane owns it
					 * from dp_init on): sessions take their
					 * engine settings, policy, TLS, session
					 * limits, lifetimes and rdns wait from the
					 * slot's snapshot, not from the fields
					 * above, which size the service */
	uint64_t rdns_wait_ns;		/* the client's reverse name: asked at
					 * connect (smtp_service_set_asks), and a
					 * message waits at most this long after
					 * the connect for it before its Received
					 * header is final. 0: not asked */
	struct cl_conf rates;		/* per-client rate limits (client_limits.h):
					 * connections at accept (421 4.7.0), MAIL
					 * (452 4.7.1), RCPT (452 4.5.3) per client
					 * address and per AUTH user, failed AUTHs
					 * per address (421 4.7.0 before the hash);
					 * all 0: none */
};

#define SMTP_SERVICE_STATS(X) \
	X(accepted) X(refused_total) X(refused_client) X(refused_no_slot) \
	X(closed) X(resets) X(timeouts) X(timeout_aborts) \
	X(tls_handshakes) X(tls_failures) X(body_nomem) X(rcpt_nomem) X(rcvbuf_overflow) \
	X(queue_submitted) X(queue_ok) X(queue_nospace) X(queue_failed) \
	X(queue_refused) X(rdns_asked) X(rdns_named) X(rdns_unknown) X(rdns_late) \
	X(rdns_waited) X(auth_asked) X(auth_no_slot) X(auth_late) \
	X(rej_conn_rate) X(rej_msg_rate) X(rej_rcpt_rate) X(rej_auth_rate) X(rej_user_rate) \
	X(auth_fail_counted) X(rate_log_skipped) X(refused_draining)
struct smtp_service_stats { SMTP_SERVICE_STATS(STATS_FIELD) };
extern const char *const smtp_service_stat_names[];
extern const unsigned smtp_service_stat_count;

/* Start-up only (heap). limits is shared by every lcore's service; live is
 * the slot reloads publish to (NULL: the service's settings are conf's,
 * for good: a snapshot of its own, smtp_live_new(conf, false)). NULL
 * when conf->port is 0 or on failure (logged). rcvbuf: the TCP receive
 * window per connection (the input buffer's size). clock_ns: the lcore's
 * poll-loop clock (read for deadlines). */
struct smtp_service *smtp_service_create(struct tcp_stack *ts, const struct smtp_service_conf *conf,
					 struct smtp_limits *limits, struct smtp_live_slot *live,
					 uint32_t rcvbuf, unsigned lcore_id, const uint64_t *clock_ns);
/* The generation of the snapshot this lcore uses (its last quiescent
 * point). Readable from any thread (acquire). */
uint64_t smtp_service_live_seen(const struct smtp_service *svc);
/* The port through which this lcore asks the control plane for clients'
 * reverse names (dataplane/ask.h). NULL: none asked. Set before traffic. */
struct ask_port;
void smtp_service_set_asks(struct smtp_service *svc, struct ask_port *asks);

/* Stops listening and resets open connections (no callbacks), then frees.
 * Submissions still with the queue must have come back, or the queue be
 * closed, before: they point into the service's memory. */
void smtp_service_destroy(struct smtp_service *svc);

/* Per burst, on the owning lcore: take queue completions (deadlines run
 * from tcp_tick). Returns the number handled (work done, for idling). */
unsigned smtp_service_poll(struct smtp_service *svc, uint64_t now_ns);

/* Begin shutdown (on the owning lcore; once). */
void smtp_service_drain(struct smtp_service *svc);

/* Connections open plus submissions in flight. Readable from any thread. */
unsigned smtp_service_active(const struct smtp_service *svc);

const struct smtp_service_stats *smtp_service_get_stats(const struct smtp_service *svc);
const struct smtp_stats *smtp_service_engine_stats(const struct smtp_service *svc);
/* Add this lcore's open sessions, submissions in flight and body chunks in
 * use to the three sums (racy reads, for stats). */
void smtp_service_gauges(const struct smtp_service *svc, uint64_t *sessions, uint64_t *inflight,
			 uint64_t *chunks_used);
/* This lcore's session slots, and how many were ever used (made resident). */
void smtp_service_slots(const struct smtp_service *svc, unsigned *slots, unsigned *touched);

#endif
