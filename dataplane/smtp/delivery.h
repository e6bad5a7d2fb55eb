/*
 * delivery.h - outbound SMTP on one worker lcore: the delivery service.
 *
 * The scheduler (a control thread) decides what to send, where and when;
 * each worker lcore's delivery service only carries it out: it opens (or
 * reuses) a connection to the next hop on the lcore's TCP stack, runs the
 * SMTP client engine (smtp_client.h) over it, with STARTTLS through tls.h,
 * and hands back per-recipient results. It never touches the queue, LMDB or
 * the disk, and makes no policy decision (windows, backoff, rates, retry
 * times, which recipients go together) of its own.
 *
 *   scheduler thread                                   worker lcore k
 *   dlv_submit(port, job) -- job ring (SP/SC) -------->  dlv_poll (burst loop):
 *                                                         job -> connection -> engine
 *   dlv_reap(port, ev)  <-- result ring (SP/SC) -------  result in the job slot, or
 *                                                         "idle connection K closed"
 *
 * Threading. One struct dlv_service per worker lcore, used only by that
 * lcore (dlv_poll from its burst loop; TCP callbacks from net_input and
 * tcp_tick). Its two rings are its port (struct dlv_port, from
 * dp_delivery_port()): ONE thread, the scheduler, is the only producer of
 * jobs and the only consumer of results of every port. No locks; the
 * rings' enqueue/dequeue order the slot contents (release/acquire).
 *
 * Jobs. A struct dlv_job is a slot the scheduler owns (allocated and reused
 * by it; never freed or moved while lent) and lends to the lcore: from
 * dlv_submit() until dlv_reap() gives it back, the scheduler must neither
 * write it nor free anything it points to (the body's iovecs and their
 * chunks); the lcore reads the job and writes only job->res. Every job
 * submitted comes back exactly once, with its result, unless the dataplane
 * is stopped first (dp_halt: jobs still lent are never returned; the
 * scheduler stops before the dataplane and its claims' leases cover them).
 * A job is filled with dlv_job_init() and the dlv_job_* helpers (they
 * check every bound), plus the plain fields marked "set directly".
 *
 * One job, on the lcore:
 *   1. conn_key != 0 and that connection is idle here, for the same dest
 *      and TLS policy: the transaction starts on it at once (res.reused).
 *      Otherwise (it closed meanwhile, or does not match, when it is
 *      closed) the job goes on as with conn_key 0.
 *   2. A new connection: tcp_connect to hop[0] (a source port whose replies
 *      come back to this lcore); greeting, EHLO (HELO after a 5xx),
 *      STARTTLS by the job's tls policy. A site failure before the
 *      transaction (refused, no answer within t_connect, a greeting that
 *      is not 2xx, EHLO 4xx, lost, timed out, TLS required but not
 *      offered) moves on to the next hop, in order, until one answers or
 *      none is left. A failed TLS handshake under SCT_MAY ends the job
 *      instead (res.tls_failed): the scheduler sends it again in plaintext.
 *   3. The transaction (smtp_client_send): pipelined when offered, BDAT
 *      when offered, per-recipient results from the next hop's replies.
 *      A connection that was reused and turns out dead (closed or 421
 *      before any of the body went) is replaced once by a new connection
 *      to hop[0], as Postfix does with a stale cached connection.
 *   4. The result goes back in the slot; the connection stays idle for
 *      keep_idle_ms (res.conn_key says which) or gets QUIT and is closed.
 *
 * Idle connections. Kept per lcore up to conf.max_idle (when the bound is
 * hit, the oldest idle one is closed first) and for the job's keep_idle_ms;
 * closed (QUIT, then FIN) when that runs out, when the next hop says
 * anything or closes, or when a job needs the slot. Every idle connection
 * that closes, except by being reused, is reported on the result ring as
 * an event without a slot (dlv_reap: closed_key), always after the result
 * that announced it. A close event for a key the scheduler has lent to a
 * job meanwhile (the two crossed) only means that job gets a new
 * connection: ignore it.
 *
 * Bounds. conf.max_conns connection slots per lcore (connecting, in a
 * session, or idle); a job that needs a new connection when none is free
 * closes the oldest idle one, or else waits (one job at most; nothing more
 * is taken from the ring meanwhile) for up to t_connect, then comes back
 * local with 4.3.2. The job ring holds conf.max_jobs: dlv_submit() says
 * -ENOBUFS when it is full. The result ring is sized so that the lcore can
 * never fail to post: it takes a new job only while the ring has room for
 * every result and close event the jobs and connections it holds could
 * produce, so a scheduler that stops reaping stops the lcore taking jobs,
 * and nothing is ever dropped.
 *
 * Time. The lcore's clock (the poll loop's now_ns). Every wait has a
 * deadline on the TCP stack's timer wheel (tcp_set_timer): the engine's
 * per-state timeouts (smtp_client_timeout_ns(); t_connect for the connect
 * itself), the TLS handshake (t_starttls), keep_idle_ms for an idle
 * connection. A job's clock starts when the lcore takes it from the ring.
 *
 * Memory. Everything is reserved at dlv_create (connection slots as
 * address space, made resident when first used). On the lcore: no locks,
 * no system calls, no heap, no logging above debug. The one exception is
 * OpenSSL's per-connection allocation when a STARTTLS handshake starts,
 * bounded by max_conns (as for inbound sessions, tls.h).
 */
#ifndef SLUICE_DELIVERY_H
#define SLUICE_DELIVERY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include <rte_byteorder.h>

#include "common/stats.h"
#include "dataplane/net/net_addr.h"
#include "dataplane/smtp/smtp_client.h"

struct rte_ring;
struct tcp_stack;
struct tls_ctx;
struct dlv_service;

#define DLV_RCPT_MAX     50	/* recipients per job (one transaction) */
#define DLV_HOPS_MAX     8	/* next hops per job, tried in order */
#define DLV_NAME_MAX     256	/* dest key, host names: bytes incl. NUL */
#define DLV_STRINGS_MAX  16384	/* sender, ENVID, addresses, ORCPTs, NULs incl. */
#define DLV_RELAY_MAX    300	/* "mx.example.net[192.0.2.1]:25", "mx[2001:db8::1]:25" */
#define DLV_TLS_INFO_MAX 256	/* TLS version, cipher, peer verification */
#define DLV_IOV_MAX      65536	/* body pieces per job */
#define DLV_CONNS_LIMIT  65535	/* max_conns ceiling (conn_key holds the slot) */

/* ---- configuration (start-up) ---- */

struct dlv_conf {
	unsigned max_conns;		/* connection slots per lcore, 1..DLV_CONNS_LIMIT */
	unsigned max_jobs;		/* job ring size: jobs waiting for one lcore */
	unsigned max_idle;		/* idle connections per lcore (<= max_conns; 0:
					 * never keep one) */
	struct smtp_client_conf client;	/* EHLO name, timeouts, pipelining and
					 * chunking; .tls is ignored (per job) */
	struct tls_ctx *tls;		/* client context (tls_ctx_client), shared by
					 * every lcore, outlives the services. NULL:
					 * no STARTTLS (SCT_MAY jobs go in plaintext,
					 * SCT_ENCRYPT/VERIFY ones come back local
					 * 4.7.5) */
};
/* Defaults: 256 connections, 1024 jobs, 64 idle, smtp_client_conf_default(),
 * no TLS context. */
void dlv_conf_default(struct dlv_conf *c);
/* 0, or -1 with *why set. */
int dlv_conf_check(const struct dlv_conf *c, const char **why);

/* ---- jobs and results ---- */

struct dlv_hop {
	struct net_addr addr;		/* either family, network order */
	uint16_t port;			/* host order, e.g. 25 */
	char mx[DLV_NAME_MAX];		/* its host name ("" for an address literal):
					 * for the log, SNI and verification */
};

/*
 * The result, written by the lcore into the job it lent (job->res). What
 * the scheduler does with each field:
 *
 *   rcpt[i]       recipient i's outcome (job->msg.nrcpt of them): status[0]
 *                 '2' sent, '4' deferred (keep code/status/text in the
 *                 history), '5' bounced (final). The code is the next
 *                 hop's reply, 0 when decided here (lost, timed out, not
 *                 connected, refused before sending, local).
 *   msg           the message-level (or connection-level) outcome, for
 *                 the log line of recipients without a reply of their own.
 *   local         true: the job was not tried (malformed, or no connection
 *                 slot on this lcore within t_connect, or no TCP slot or
 *                 source port, or TLS required without a TLS context).
 *                 Every recipient has msg's 4.3.x: requeue the job soon,
 *                 count nothing against the destination.
 *   site_failure  true: the destination failed as a site (every hop: no
 *                 connection, no greeting, 421, timeout, lost, TLS not
 *                 offered...): feed dest_done(site_failure) for the
 *                 cohort/dead-destination logic. False for replies to
 *                 MAIL/RCPT/DATA (even 421) and for a delivery that
 *                 succeeded on a later hop.
 *   tls_failed    a STARTTLS handshake failed (or could not be set up).
 *                 Under SCT_MAY: send the job again soon with SCT_NONE to
 *                 that destination (Postfix's plaintext fallback) and do not
 *                 count it as a dead site. Under ENCRYPT/VERIFY: a deferral
 *                 like any other (text says why, e.g. "hostname mismatch").
 *   tls           the transaction ran over TLS; tls_info says how, for the
 *                 log ("version=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384
 *                 bits=256, peer: verified (subject CN=mx.example.net)", or
 *                 "peer: unable to get local issuer certificate" under may).
 *   relay, hop    the hop that answered (TCP connected): "mx[ip]:port" and
 *                 its index in job->hop; "none" and -1 when none did. For
 *                 the log's relay=. On a reused connection, the hop it was
 *                 opened to (hop -1 if this job's list lacks it).
 *   t_conn_ns     connection setup: from the lcore taking the job to the
 *                 next hop being ready for MAIL (connect, greeting, EHLO,
 *                 TLS, failed hops included); 0 on a reused connection.
 *                 Postfix's delays "c".
 *   t_xmit_ns     from MAIL to the end of the transaction. Postfix's "d".
 *   conn_key      the connection left idle after this job (0: none; it was
 *                 closed). Add it to the inventory for (this lcore, dest,
 *                 tls policy); a later job for them may name it until a
 *                 close event for it comes.
 *   conn_messages transactions on that connection so far, this one
 *                 included (the messages-per-connection bound: set
 *                 keep_idle_ms 0 on the job that reaches it).
 *   reused        the job ran on the connection it named.
 *   peer_dsn      the next hop offered DSN. When it did not, NOTIFY/ORCPT/
 *                 RET/ENVID were not passed on: a recipient with NOTIFY=SUCCESS
 *                 that was sent is owed a "relayed" notice (RFC 3461 5.2.2).
 */
struct dlv_result {
	bool local, site_failure, tls_failed, tls, reused, peer_dsn;
	int hop;
	unsigned conn_messages;
	uint64_t conn_key;
	uint64_t t_conn_ns, t_xmit_ns;
	char relay[DLV_RELAY_MAX];
	char tls_info[DLV_TLS_INFO_MAX];
	struct smtp_client_result msg;
	struct smtp_client_result rcpt[DLV_RCPT_MAX];
};

struct dlv_job {
	/* ---- the scheduler's, set directly (the lcore never reads them) ---- */
	uint64_t id;			/* its job number */
	void *user;			/* anything it wants back */

	/* ---- set directly: where and how ---- */
	uint64_t conn_key;		/* an idle connection of THIS lcore to use
					 * (a res.conn_key it reported), 0: new */
	char dest[DLV_NAME_MAX];	/* destination key (the route's): a reused
					 * connection must have been opened for the
					 * same one */
	enum smtp_client_tls tls;	/* SCT_NONE / MAY / ENCRYPT / VERIFY */
	char tls_name[DLV_NAME_MAX];	/* the name the certificate must carry and
					 * SNI; "" = each hop's mx */
	uint32_t keep_idle_ms;		/* keep the connection idle this long after
					 * the transaction (0: QUIT) */

	/* ---- set with the helpers below ---- */
	unsigned nhops;
	struct dlv_hop hop[DLV_HOPS_MAX];
	/* The envelope: msg points into rcpt[] and strings[]. msg.size is
	 * computed by the lcore from the body. */
	struct smtp_client_msg msg;
	struct smtp_client_rcpt rcpt[DLV_RCPT_MAX];
	uint32_t strings_used;
	char strings[DLV_STRINGS_MAX];
	/* The body as stored (our Received header first, CRLF lines, not
	 * dot-stuffed): iovecs and the memory they point to are the
	 * scheduler's (its delivery arena), read-only for the lcore. */
	const struct iovec *body;
	unsigned body_iovcnt;

	/* ---- written by the lcore ---- */
	struct dlv_result res;
};

/* Scheduler side, on a job it holds. Each returns 0, or -1 (and changes
 * nothing) when a bound would be exceeded or an argument is NULL. */
/* Forget everything but id/user: no hops, no recipients, conn_key 0,
 * SCT_MAY, keep_idle_ms 0, empty dest and tls_name, no body. */
void dlv_job_init(struct dlv_job *j, uint64_t id);
/* Append a next hop (port host order; mx may be NULL or ""). */
int dlv_job_hop_addr(struct dlv_job *j, const struct net_addr *addr, uint16_t port,
		     const char *mx);
/* dlv_job_hop_addr with an IPv4 address. */
int dlv_job_hop(struct dlv_job *j, rte_be32_t addr, uint16_t port, const char *mx);
/* The envelope sender ("" = <>), ENVID (NULL = none), RET (enum smtp_ret),
 * body flags (SMTP_CLIENT_BODY_*; the queue's values). Call before the
 * recipients (or again after dlv_job_init). */
int dlv_job_sender(struct dlv_job *j, const char *sender, const char *envid, uint8_t ret,
		   uint8_t body_flags);
/* Append a recipient (orcpt NULL = none; notify SMTP_NOTIFY_* bits). -1
 * when DLV_RCPT_MAX are in or its strings do not fit: the rest go in
 * another job. */
int dlv_job_rcpt(struct dlv_job *j, const char *addr, const char *orcpt, uint8_t notify);
/* A transfer's queue state (an xsluice_format value), sent as XSLUICE=
 * and required of the next hop (smtp_client_msg.xsluice_required). Call
 * after the sender (which starts the strings over). */
int dlv_job_xsluice(struct dlv_job *j, const char *value);
/* The body (n <= DLV_IOV_MAX pieces). */
int dlv_job_body(struct dlv_job *j, const struct iovec *iov, unsigned n);

/* ---- the port: the scheduler's end of one lcore's rings ---- */

struct dlv_port {
	struct rte_ring *jobs;		/* SP/SC: struct dlv_job * */
	struct rte_ring *results;	/* SP/SC: see dlv_reap */
	unsigned worker;		/* the lcore's worker index */
	unsigned max_jobs;		/* the job ring's size */
};

/* Lend a job to the lcore. 0, or -ENOBUFS (the ring is full: keep it). */
int dlv_submit(const struct dlv_port *p, struct dlv_job *j);

/*
 * What comes back. Ring entries are job pointers (8-byte aligned: bit 0
 * clear) or close events (bit 0 set, conn_key in bits 1-63); dlv_reap
 * decodes them: job != NULL for a result (job->res), else closed_key names
 * an idle connection that closed. In the order the lcore posted them.
 */
struct dlv_event {
	struct dlv_job *job;
	uint64_t closed_key;
};
/* Take up to max events. Returns how many. */
unsigned dlv_reap(const struct dlv_port *p, struct dlv_event *ev, unsigned max);

/* ---- the lcore side ---- */

#define DLV_STATS(X) \
	X(jobs) X(jobs_bad) X(jobs_waited) X(jobs_no_slot) X(jobs_no_tcp) \
	X(jobs_no_tls) X(results) X(msg_sent) X(msg_deferred) X(msg_bounced) \
	X(site_failures) X(connects) X(connected) X(connect_refused) \
	X(connect_timeouts) X(hop_failovers) X(lost) X(timeouts) \
	X(reuse) X(reuse_missed) X(reuse_retries) X(idle_kept) X(idle_expired) \
	X(idle_evicted) X(idle_peer_closed) X(close_events) X(quits) \
	X(tls_handshakes) X(tls_failures) X(body_bytes) X(rcvbuf_overflow) \
	X(ring_full)
struct dlv_stats { DLV_STATS(STATS_FIELD) };
extern const char *const dlv_stat_names[];
extern const unsigned dlv_stat_count;

/* Start-up only (heap). The rings and slots for one lcore on ts. rcvbuf:
 * the TCP receive window per connection (the input buffer's size).
 * clock_ns: the lcore's poll-loop clock. NULL on a bad conf or no memory
 * (logged). */
struct dlv_service *dlv_create(struct tcp_stack *ts, const struct dlv_conf *conf,
			       uint32_t rcvbuf, unsigned worker, const uint64_t *clock_ns);
/* Resets every connection (no callbacks), frees the rings and slots. Jobs
 * still lent are not returned. The TCP stack may outlive it. */
void dlv_destroy(struct dlv_service *s);

/* The scheduler's end (valid until dlv_destroy). */
const struct dlv_port *dlv_get_port(const struct dlv_service *s);

/* Per burst, on the owning lcore: take jobs from the ring (deadlines run
 * from tcp_tick). Returns the work done (jobs taken or settled). */
unsigned dlv_poll(struct dlv_service *s);

const struct dlv_stats *dlv_get_stats(const struct dlv_service *s);
const struct smtp_client_stats *dlv_client_stats(const struct dlv_service *s);
/* Add this lcore's connections open (any state), idle, and jobs held
 * (taken, result not yet posted) to the three sums (racy, for stats). */
void dlv_gauges(const struct dlv_service *s, uint64_t *open, uint64_t *idle, uint64_t *jobs);

#endif
