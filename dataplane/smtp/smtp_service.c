/*
 * smtp_service.c - inbound SMTP on one lcore: sessions on the TCP stack,
 * STARTTLS, bodies in the lcore's arena, messages to the queue. See
 * smtp_service.h for the data path and its bounds.
 *
 * A connection (struct smtp_conn) moves through:
 *   OPEN     the engine runs; input is fed, replies are sent
 *   CLOSING  the engine is done (QUIT, 421, client FIN): the last replies
 *            are flushed, then tcp_close(); freed on the closed() callback
 *   ZOMBIE   TCP is gone but the queue still holds a submission that points
 *            into this connection (envelope, body chunks): freed when the
 *            completion comes back
 *
 * Everything happens on the owning lcore, from TCP callbacks (inside
 * net_input/tcp_tick) and from smtp_service_poll(); pump() is the one place
 * that moves bytes and reacts to engine events.
 *
 * Memory. The slots (struct smtp_conn and its buffers) are reserved as
 * address space for as many connections as this lcore's TCP stack can hold
 * (conf.lcore_conns, or what conf.max_sessions asks if that is fewer), and
 * touched only when first used: `hw` slots have ever been handed out, and
 * freed ones go on a free list. So the memory resident is what the busiest
 * moment needed, not max_sessions times a session.
 *
 * Time. A connection's deadline (deadline_ns) moves with every byte; the
 * TCP timer wheel holds one timer per connection (timer_at) that is filed
 * again only when the deadline comes closer, and re-armed for the deadline
 * when it fires early. Nothing walks the slots.
 */
#include "dataplane/smtp/smtp_service.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include <rte_mbuf.h>
#include <rte_ring.h>

#include "common/clock.h"
#include "common/log.h"
#include "dataplane/ask.h"
#include "dataplane/net/tcp.h"
#include "dataplane/smtp/tls.h"
#include "dataplane/smtp/tls_pump.h"
#include "queue/queue.h"

const char *const smtp_service_stat_names[] = { SMTP_SERVICE_STATS(STATS_NAME) };
const unsigned smtp_service_stat_count = STATS_COUNT(smtp_service_stat_names);

#define IN_SLACK        2048		/* input buffer = receive window + this */
#define DONE_BURST      32
#define CLOSE_GRACE_NS  (30 * NS_PER_SEC)	/* after a timeout's 421 */
/* Slots beyond the TCP stack's connections: for ZOMBIEs (TCP gone, the
 * queue still holding the submission), each there for one commit. */
#define ZOMBIE_SLOTS    64
/* Recipients live in the connection's own RCPT_INLINE octets (a few
 * ordinary ones), then in arena chunks: the longest one (path and ORCPT,
 * NULs included), how many fit a chunk, and the chunks SMTP_RCPT_HARD_MAX
 * of them can need. */
#define RCPT_INLINE     1024
#define RCPT_REC_MAX    (SMTP_PATH_MAX - 1 + SMTP_ORCPT_MAX + 1)
#define RCPT_PER_CHUNK  (SMTP_BODY_CHUNK / RCPT_REC_MAX)
#define RCPT_CHUNKS_MAX ((SMTP_RCPT_HARD_MAX + RCPT_PER_CHUNK - 1) / RCPT_PER_CHUNK)
_Static_assert(RCPT_CHUNKS_MAX <= UINT8_MAX, "smtp_conn.nrch is a uint8_t");

enum conn_state { CONN_FREE = 0, CONN_OPEN, CONN_CLOSING, CONN_ZOMBIE };

struct smtp_conn {
	struct smtp_service *svc;
	struct tcp_conn *tcp;		/* NULL once TCP is gone */
	uint8_t state;			/* enum conn_state */
	bool fin_seen;			/* the client sent FIN */
	bool fin_sent;			/* tcp_close() called */
	bool inflight;			/* sub is with the queue */
	bool counted;			/* holds slots in smtp_limits */
	bool timed_out;
	bool starttls_wait;		/* 220 going out; plaintext is dropped */
	uint32_t ip;			/* IPv4 client, host order; IPv6: 0 */
	struct cl_key akey;		/* the client's address key for the
					 * limits: its IPv4 address or IPv6 /64 */
	bool trusted;			/* the client is inside mynetworks */
	uint64_t deadline_ns;		/* 0: none */
	uint64_t timer_at;		/* filed with tcp_set_timer, 0: none */
	uint32_t gen;			/* bumped per connection in this slot */
	bool rdns_pending;		/* asked the reverse name, no answer yet */
	bool auth_pending;		/* an ASK_AUTH is out, no answer yet */
	bool auth_charged;		/* ... charged to the failure rate */
	uint64_t rdns_until;		/* a message waits for it until then */
	struct smtp_live *live;		/* the settings it was accepted under,
					 * counted in live->sessions; NULL: none */

	/* TCP <-> engine, in the clear or through TLS (tls_pump.h): in is
	 * the slot's share of svc->inmem, pt of svc->ptmem */
	struct tls_pump tp;

	/* the body: iov[0] is the Received header, iov[1..] arena chunks */
	struct iovec *iov;
	unsigned niov;
	/* the recipients: their strings packed into rin, then into arena
	 * chunks rch[0..nrch) (rch_used octets of the last region in use),
	 * rcpt[] pointing into them; rcpt[] has conf.engine.max_rcpt slots,
	 * touched only as used */
	struct queue_rcpt_in *rcpt;
	unsigned nrcpt;
	uint32_t rch_used;
	uint8_t nrch;
	uint32_t rch[RCPT_CHUNKS_MAX];
	char rin[RCPT_INLINE];
	struct queue_submission sub;

	struct smtp_conn *next_free;
	struct smtp_session s;
};

struct smtp_service {
	struct tcp_stack *ts;
	struct smtp_service_conf conf;	/* sizes; settings come from live */
	struct smtp_limits *limits;
	struct smtp_live_slot *slot;	/* where reloads publish snapshots */
	struct smtp_live_slot own_slot;	/* ... without a publisher: conf's */
	struct smtp_live *live;		/* this lcore's current snapshot */
	_Atomic uint64_t live_seen;	/* live->gen, stored at each pick-up */
	const uint64_t *clock_ns;	/* the lcore's poll clock */
	unsigned lcore_id;
	struct tcp_listener *listener;
	struct tcp_listener *listener_sub, *listener_subs;	/* 587, 465 */
	struct rte_ring *done;		/* queue completions for this lcore */
	struct ask_port *asks;		/* reverse names; NULL: not asked */

	unsigned nconns, nopen;		/* slots; open or zombie connections */
	unsigned hw;			/* slots ever used: conns[0..hw) */
	unsigned ninflight;		/* submissions with the queue */
	struct smtp_conn *conns;
	struct smtp_conn *free;		/* released slots below hw */
	uint32_t in_cap;
	uint8_t *inmem, *ptmem;
	unsigned iov_cap;
	struct iovec *iovmem;
	struct queue_rcpt_in *rcptmem;

	/* body arena: nchunks chunks of SMTP_BODY_CHUNK, a stack of free ones */
	uint8_t *arena;
	size_t arena_len;
	uint32_t nchunks, nfree;
	uint32_t *free_chunks;

	char rate_reply[128];		/* cb.rate's answer (engine copies it) */
	char share_key[CS_KEY_MAX];	/* a rate key as Redis names it (client_share.h) */
	bool draining;
	atomic_uint active;
	struct smtp_service_stats stats;
	struct smtp_stats engine_stats;
};

/* ---- shared session limits ------------------------------------------- */

void smtp_limits_init(struct smtp_limits *l, uint32_t seed0, uint32_t seed1)
{
	atomic_init(&l->total, 0);
	atomic_init(&l->refuse_new, false);
	l->seed[0] = seed0;
	l->seed[1] = seed1 ^ 0x5bd1e995u;
	for (unsigned r = 0; r < 2; r++)
		for (unsigned i = 0; i < SMTP_LIMIT_BUCKETS; i++)
			atomic_init(&l->per_client[r][i], 0);
}

static unsigned limit_bucket(const struct smtp_limits *l, unsigned row, const struct cl_key *k)
{
	uint64_t x = (k->hash ^ l->seed[row]) * 0x9E3779B97F4A7C15ull;
	x ^= x >> 31;
	x *= 0xBF58476D1CE4E5B9ull;
	x ^= x >> 29;
	return (unsigned)(x % SMTP_LIMIT_BUCKETS);
}

/* Take a session slot for the client k: 0, or 1 (over the total) / 2 (over per client).
 * Clients in mynetworks are exempt from the per-client limit (as Postfix's
 * smtpd_client_event_limit_exceptions = $mynetworks), not from the total. */
static int limits_take(struct smtp_service *svc, const struct cl_key *k, bool trusted)
{
	struct smtp_limits *l = svc->limits;
	unsigned b0 = limit_bucket(l, 0, k), b1 = limit_bucket(l, 1, k);
	unsigned c0, c1;

	if (atomic_fetch_add(&l->total, 1) + 1 > svc->live->max_sessions) {
		atomic_fetch_sub(&l->total, 1);
		return 1;
	}
	c0 = atomic_fetch_add(&l->per_client[0][b0], 1) + 1;
	c1 = atomic_fetch_add(&l->per_client[1][b1], 1) + 1;
	if ((c0 < c1 ? c0 : c1) > svc->live->max_per_client && !trusted) {
		atomic_fetch_sub(&l->per_client[0][b0], 1);
		atomic_fetch_sub(&l->per_client[1][b1], 1);
		atomic_fetch_sub(&l->total, 1);
		return 2;
	}
	return 0;
}

static void limits_put(struct smtp_service *svc, const struct cl_key *k)
{
	struct smtp_limits *l = svc->limits;

	atomic_fetch_sub(&l->per_client[0][limit_bucket(l, 0, k)], 1);
	atomic_fetch_sub(&l->per_client[1][limit_bucket(l, 1, k)], 1);
	atomic_fetch_sub(&l->total, 1);
}

/* ---- body arena ---------------------------------------------------------- */

/* The arena's chunks serve bodies and recipients alike: a stack of free ones. */
static uint8_t *chunk_take(struct smtp_service *svc)
{
	if (svc->nfree == 0)
		return NULL;
	return svc->arena + (size_t)svc->free_chunks[--svc->nfree] * SMTP_BODY_CHUNK;
}

static uint32_t chunk_index(const struct smtp_service *svc, const void *p)
{
	return (uint32_t)((size_t)((const uint8_t *)p - svc->arena) / SMTP_BODY_CHUNK);
}

static void chunk_put(struct smtp_service *svc, uint32_t idx)
{
	svc->free_chunks[svc->nfree++] = idx;
}

static void body_release(struct smtp_conn *sc)
{
	struct smtp_service *svc = sc->svc;

	for (unsigned i = 1; i < sc->niov; i++)
		chunk_put(svc, chunk_index(svc, sc->iov[i].iov_base));
	sc->niov = 1;
}

static void rcpt_release(struct smtp_conn *sc)
{
	for (unsigned i = 0; i < sc->nrch; i++)
		chunk_put(sc->svc, sc->rch[i]);
	sc->nrch = 0;
	sc->rch_used = 0;
	sc->nrcpt = 0;
}

/* The engine's cb.rcpt: strings into rin or arena chunks, a queue_rcpt_in
 * for it. */
static int on_rcpt(void *user, const struct smtp_rcpt_view *v)
{
	struct smtp_conn *sc = user;
	struct smtp_service *svc = sc->svc;
	size_t al = strlen(v->addr) + 1, ol = v->orcpt ? strlen(v->orcpt) + 1 : 0;
	size_t cap = sc->nrch ? SMTP_BODY_CHUNK : RCPT_INLINE;
	uint8_t *p;

	if (sc->nrcpt >= svc->conf.engine.max_rcpt || al + ol > SMTP_BODY_CHUNK)
		return -1;	/* the engine's limits keep us from here */
	if (sc->rch_used + al + ol > cap) {
		if (sc->nrch == RCPT_CHUNKS_MAX || (p = chunk_take(svc)) == NULL) {
			svc->stats.rcpt_nomem++;
			return -1;	/* 452 4.3.1 for this RCPT */
		}
		sc->rch[sc->nrch++] = chunk_index(svc, p);
		sc->rch_used = 0;
	}
	p = sc->nrch ? svc->arena + (size_t)sc->rch[sc->nrch - 1] * SMTP_BODY_CHUNK
		     : (uint8_t *)sc->rin;
	p += sc->rch_used;
	memcpy(p, v->addr, al);
	if (ol)
		memcpy(p + al, v->orcpt, ol);
	sc->rcpt[sc->nrcpt++] = (struct queue_rcpt_in){
		(const char *)p, ol ? (const char *)p + al : NULL, v->notify,
	};
	sc->rch_used += (uint32_t)(al + ol);
	return 0;
}

static void on_rcpt_reset(void *user)
{
	rcpt_release(user);
}

static void on_msg_begin(void *user)
{
	body_release(user);
}

/* The engine's sink: body bytes into arena chunks. */
static int on_body(void *user, const void *data, size_t len)
{
	struct smtp_conn *sc = user;
	struct smtp_service *svc = sc->svc;
	const uint8_t *p = data;

	while (len > 0) {
		struct iovec *last = &sc->iov[sc->niov - 1];
		size_t n;

		if (sc->niov == 1 || last->iov_len == SMTP_BODY_CHUNK) {
			uint8_t *c = sc->niov < svc->iov_cap ? chunk_take(svc) : NULL;
			if (c == NULL) {
				svc->stats.body_nomem++;
				body_release(sc);
				return -1;	/* 452 4.3.1 at the end of the message */
			}
			last = &sc->iov[sc->niov++];
			last->iov_base = c;
			last->iov_len = 0;
		}
		n = SMTP_BODY_CHUNK - last->iov_len;
		if (n > len)
			n = len;
		memcpy((uint8_t *)last->iov_base + last->iov_len, p, n);
		last->iov_len += n;
		p += n;
		len -= n;
	}
	return 0;
}

/* The Received header carries the queue ID: reserve it before submitting. */
static int on_trace_id(void *user, char *buf, size_t cap)
{
	struct smtp_conn *sc = user;
	struct queue *q = sc->svc->conf.queue;

	if (!q || cap < QUEUE_ID_STR)
		return -1;
	sc->sub.reserved_id = queue_id_reserve(q);
	queue_id_format(sc->sub.reserved_id, buf);
	return 0;
}

/* ---- connection lifetime -------------------------------------------------- */

static void publish_active(struct smtp_service *svc)
{
	atomic_store_explicit(&svc->active, svc->nopen, memory_order_relaxed);
}

/* The session no longer uses its snapshot: the publisher may free it once
 * no session does and every lcore has moved on (release: the session's
 * reads of it come before). */
static void live_put(struct smtp_conn *sc)
{
	if (sc->live)
		atomic_fetch_sub_explicit(&sc->live->sessions, 1, memory_order_release);
	sc->live = NULL;
}

static void conn_release(struct smtp_conn *sc)
{
	struct smtp_service *svc = sc->svc;

	smtp_session_end(&sc->s);	/* no password left behind in the slot */
	if (sc->tp.tls) {
		tls_conn_free(sc->tp.tls);
		sc->tp.tls = NULL;
	}
	body_release(sc);
	rcpt_release(sc);
	if (sc->counted)
		limits_put(svc, &sc->akey);
	sc->counted = false;
	live_put(sc);
	sc->state = CONN_FREE;
	sc->next_free = svc->free;
	svc->free = sc;
	svc->nopen--;
	svc->stats.closed++;
	publish_active(svc);
}

/* TCP is gone (or we reset it): free now, or once the queue answers. */
static void conn_gone(struct smtp_conn *sc)
{
	sc->tcp = NULL;
	if (sc->inflight)
		sc->state = CONN_ZOMBIE;
	else
		conn_release(sc);
}

static void conn_abort(struct smtp_conn *sc)
{
	if (sc->tcp)
		tcp_abort(sc->tcp);
	sc->svc->stats.resets++;
	conn_gone(sc);
}

static size_t out_peek(void *eng, const char **p)
{
	return smtp_session_peek_output(eng, p);
}

static void out_consume(void *eng, size_t n)
{
	smtp_session_consume_output(eng, n);
}

static struct tls_pump_out engine_out(struct smtp_conn *sc)
{
	return (struct tls_pump_out){ out_peek, out_consume, &sc->s };
}

static bool output_pending(struct smtp_conn *sc)
{
	struct tls_pump_out o = engine_out(sc);

	return tls_pump_output_pending(&sc->tp, &o);
}

static bool input_empty(const struct smtp_conn *sc)
{
	return tls_pump_input_empty(&sc->tp);
}

/* Plaintext the client sent before our "220 Ready to start TLS" is dropped
 * (RFC 3207 5, CVE-2011-0411). */
static void drop_input(struct smtp_conn *sc)
{
	tls_pump_drop_input(&sc->tp, sc->tcp);
}

/* ---- moving bytes ------------------------------------------------------------ */

/* Engine replies out: plaintext to TCP, or through TLS. True if anything moved. */
static bool flush_output(struct smtp_conn *sc)
{
	struct tls_pump_out o = engine_out(sc);
	int r = tls_pump_flush(&sc->tp, sc->tcp, &o);

	if (r < 0) {
		log_debug("smtp: TLS write to %s failed: %s", sc->s.client_ip,
			  tls_error(sc->tp.tls));
		conn_abort(sc);
		return false;
	}
	return r > 0;
}

/* The handshake is done: STARTTLS's, or port 465's before any SMTP. */
static void tls_up(struct smtp_conn *sc)
{
	struct smtp_service *svc = sc->svc;
	char info[SMTP_TLS_INFO_MAX];

	tls_describe(sc->tp.tls, info, sizeof(info));
	sc->starttls_wait = false;
	svc->stats.tls_handshakes++;
	if (smtp_session_event(&sc->s) == SMTP_EV_STARTTLS)
		smtp_session_tls_started(&sc->s, info);
	else	/* port 465: TLS before any SMTP */
		smtp_session_tls_implicit(&sc->s, info);
}

/* Under TLS: ciphertext from the client through OpenSSL to the engine's
 * input, driving the handshake first. True if anything moved. */
static bool tls_input(struct smtp_conn *sc)
{
	bool moved = false;

	while (sc->state == CONN_OPEN) {
		switch (tls_pump_input(&sc->tp, sc->tcp, true, &moved)) {
		case TLS_PUMP_IDLE:
			return moved;
		case TLS_PUMP_UP:
			tls_up(sc);
			continue;
		case TLS_PUMP_HS_FAILED:
			sc->svc->stats.tls_failures++;
			log_info("smtp: TLS handshake with %s failed: %s", sc->s.client_ip,
				 tls_error(sc->tp.tls));
			/* send the alert, if OpenSSL made one, and close */
			sc->state = CONN_CLOSING;
			return true;
		case TLS_PUMP_ENDED:
			/* close_notify or a bad record: nothing more to read */
			log_debug("smtp: TLS session with %s ended: %s", sc->s.client_ip,
				  tls_error(sc->tp.tls));
			sc->state = CONN_CLOSING;
			return true;
		case TLS_PUMP_FEED_FAILED:
			conn_abort(sc);
			return false;
		}
	}
	return moved;
}

/* Input to the engine. True if it consumed anything. */
static bool feed_engine(struct smtp_conn *sc)
{
	const uint8_t *p;
	size_t avail = tls_pump_readable(&sc->tp, &p), n;

	if (avail == 0 || smtp_session_event(&sc->s) != SMTP_EV_NONE)
		return false;
	n = smtp_session_input(&sc->s, p, avail);
	tls_pump_consumed(&sc->tp, sc->tcp, n);
	return n > 0;
}

/* ---- the queue ------------------------------------------------------------------ */

static void answer(struct smtp_conn *sc, enum smtp_queue_status st, const char *id)
{
	body_release(sc);
	smtp_session_queued(&sc->s, st, id);
}

static void submit(struct smtp_conn *sc)
{
	struct smtp_service *svc = sc->svc;
	const struct smtp_message *m = smtp_session_message(&sc->s);
	struct queue_submission *sub = &sc->sub;
	uint64_t rid = sub->reserved_id;
	int r;

	if (!svc->conf.queue || m->nrcpt == 0 || m->nrcpt != sc->nrcpt) {
		svc->stats.queue_refused++;
		answer(sc, SMTP_QUEUED_TEMP, NULL);
		return;
	}
	memset(sub, 0, sizeof(*sub));
	sub->env.sender = m->sender;
	sub->env.envid = m->envid[0] ? m->envid : NULL;
	sub->env.ret = (uint8_t)m->ret;
	sub->env.body_flags = (uint8_t)((m->body == SMTP_BODY_8BITMIME ? QUEUE_BODY_8BITMIME : 0) |
					(m->smtputf8 ? QUEUE_BODY_SMTPUTF8 : 0));
	sub->env.client_name = sc->s.client.rdns[0] ? sc->s.client.rdns : NULL;
	sub->env.client_addr = sc->s.client_ip;
	sub->env.helo = sc->s.helo;
	sub->env.auth_method = m->auth_method;	/* "" unless AUTH succeeded */
	sub->env.auth_user = m->auth_user;
	sub->env.arrival = m->arrival;
	sub->env.expiry = m->arrival + (m->sender[0] || !sc->live->bounce_lifetime_s ?
					sc->live->lifetime_s : sc->live->bounce_lifetime_s);
	if (m->has_xsluice) {	/* transferred from another box: its queue state there */
		sub->env.arrival = m->xsluice.arrival;
		sub->env.expiry = m->xsluice.expiry;
		sub->env.due = m->xsluice.next_try;	/* not at once: when it was due there */
		sub->env.prior_attempts = m->xsluice.attempts;
		sub->env.prior_error = m->xsluice.last_error;
	}
	sub->env.held = m->held;	/* a mail loop kept for the operator (loop_action = hold) */
	sub->env.nrcpt = m->nrcpt;
	sub->env.rcpt = sc->rcpt;
	sc->iov[0].iov_base = (void *)(uintptr_t)m->received;
	sc->iov[0].iov_len = m->received_len;
	sub->iov = sc->iov;
	sub->iovcnt = sc->niov;
	sub->done = svc->done;
	sub->user = sc;
	sub->reserved_id = rid;
	r = queue_submit(svc->conf.queue, sub);
	if (r != QUEUE_OK) {
		svc->stats.queue_refused++;
		log_warn("smtp: queue refused a message from %s: %s", sc->s.client_ip,
			 queue_status_str(r));
		answer(sc, SMTP_QUEUED_TEMP, NULL);
		return;
	}
	sc->inflight = true;
	svc->ninflight++;
	svc->stats.queue_submitted++;
}

static void pump(struct smtp_conn *sc);

static unsigned take_completions(struct smtp_service *svc)
{
	struct queue_submission *done[DONE_BURST];
	unsigned n = queue_done_poll(svc->done, done, DONE_BURST);

	for (unsigned i = 0; i < n; i++) {
		struct smtp_conn *sc = done[i]->user;
		enum smtp_queue_status st;

		sc->inflight = false;
		svc->ninflight--;
		if (done[i]->status == QUEUE_OK) {
			svc->stats.queue_ok++;
			st = SMTP_QUEUED_OK;
			if (done[i]->env.held)
				log_notice("%s: held: over hop_limit Received: header fields, a "
					   "mail loop (loop_action = hold); from=<%s> client=%s",
					   done[i]->id_str, done[i]->env.sender, sc->s.client_ip);
			log_debug("smtp: %s: from=<%s> nrcpt=%u size=%llu client=%s%s%s",
				  done[i]->id_str, done[i]->env.sender, done[i]->env.nrcpt,
				  (unsigned long long)done[i]->size, sc->s.client_ip,
				  sc->s.authenticated ? " sasl_username=" : "",
				  sc->s.authenticated ? sc->s.auth_user : "");
		} else if (done[i]->status == QUEUE_NOSPACE) {
			svc->stats.queue_nospace++;
			st = SMTP_QUEUED_FULL;
		} else {
			svc->stats.queue_failed++;
			st = SMTP_QUEUED_TEMP;
			log_warn("smtp: %s: queue failed: %s", done[i]->id_str,
				 queue_status_str(done[i]->status));
		}
		if (sc->state == CONN_ZOMBIE) {
			conn_release(sc);
			continue;
		}
		answer(sc, st, done[i]->id_str);
		pump(sc);
	}
	return n;
}

/* ---- per-client rates (client_limits.h) ------------------------------------------ */

/* The rates apply to this session (a table, and a client not exempt). */
static struct client_limits *rates_for(const struct smtp_conn *sc)
{
	struct client_limits *t = sc->svc->limits->clients;

	bool exempt = sc->s.client.v6 ? sc->live->rates.exempt_mynetworks && sc->trusted
			     : cl_exempt(&sc->live->rates, sc->ip);

	return t && !exempt ? t : NULL;
}

static const char *service_name(const struct smtp_conn *sc)
{
	return sc->s.conf->submission ? "submission" : "smtp";
}

/* A rate refusal's line for the mail log (ask.h ASK_MAILLOG). A flood
 * repeats them as fast as it connects, so they take a slot only while
 * more than half are free: the questions (reverse names, AUTH) keep the
 * rest. Skipped lines are counted (rate_log_skipped). */
static void maillog_line(struct smtp_conn *sc, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void maillog_line(struct smtp_conn *sc, const char *fmt, ...)
{
	struct smtp_service *svc = sc->svc;
	struct ask *a;
	va_list ap;

	if (!svc->asks)
		return;
	if (!ask_spare(svc->asks) || !(a = ask_get(svc->asks))) {
		svc->stats.rate_log_skipped++;
		return;
	}
	a->kind = ASK_MAILLOG;
	a->who = (uint32_t)(sc - svc->conns);
	a->gen = sc->gen;
	va_start(ap, fmt);
	vsnprintf(a->text, sizeof(a->text), fmt, ap);
	va_end(ap);
	ask_post(svc->asks, a);
}

/* A new connection from the client: over its connection rate? (counted if not) */
static bool conn_rate_over(struct smtp_conn *sc)
{
	struct client_limits *t = rates_for(sc);
	const struct cl_conf *rc = &sc->live->rates;
	const struct cl_key k = sc->akey;

	if (!t || cl_take(t, &k, CL_CONN, rc->addr[CL_CONN], rc->window_ns,
			  *sc->svc->clock_ns) == 0)
		return false;
	sc->svc->stats.rej_conn_rate++;
	maillog_line(sc, "warning: Connection rate limit exceeded: %u from unknown[%s] for "
		     "service %s", cl_level(t, &k, CL_CONN, rc->addr[CL_CONN], rc->window_ns,
					    *sc->svc->clock_ns), sc->s.client_ip,
		     service_name(sc));
	return true;
}

/* An AUTH about to be checked: each attempt is charged to the address's
 * failure rate before the hash (so parallel sessions cannot slip more
 * attempts past it than it holds), and given back if it succeeds. True:
 * the address is over, refuse without asking the auth worker. */
static bool auth_rate_over(struct smtp_conn *sc)
{
	struct client_limits *t = rates_for(sc);
	const struct cl_conf *rc = &sc->live->rates;
	const struct cl_key k = sc->akey;

	sc->auth_charged = false;
	if (!t || !rc->addr[CL_AUTHFAIL])
		return false;
	if (cl_take(t, &k, CL_AUTHFAIL, rc->addr[CL_AUTHFAIL], rc->window_ns,
		    *sc->svc->clock_ns) == 0) {
		sc->auth_charged = true;
		return false;
	}
	maillog_line(sc, "warning: Authentication failure rate limit exceeded: %u from "
		     "unknown[%s] for service %s", rc->addr[CL_AUTHFAIL], sc->s.client_ip,
		     service_name(sc));
	return true;
}

/* The auth worker's answer for this session: a failure stays charged to
 * the address; anything else is given back, and a success counts against
 * the user's connection rate. The answer to give the engine. */
static int auth_rate_answer(struct smtp_conn *sc, int status)
{
	struct client_limits *t = rates_for(sc);
	const struct cl_conf *rc = &sc->live->rates;
	uint64_t now = *sc->svc->clock_ns;

	if (!t)
		return status;
	if (sc->auth_charged) {
		const struct cl_key k = sc->akey;
		if (status == 0)
			sc->svc->stats.auth_fail_counted++;
		else
			cl_refund(t, &k, CL_AUTHFAIL, rc->addr[CL_AUTHFAIL], rc->window_ns, now);
		sc->auth_charged = false;
	}
	if (status == 1 && sc->s.auth_user[0]) {
		struct cl_key k = cl_key_user(sc->s.auth_user);
		if (cl_take(t, &k, CL_CONN, rc->user[CL_CONN], rc->window_ns, now)) {
			bool printable = true;	/* a LOGIN name may hold any octet but NUL */
			for (const char *p = sc->s.auth_user; *p; p++)
				printable &= *p > ' ' && *p < 0x7f;
			sc->svc->stats.rej_user_rate++;
			maillog_line(sc, "warning: Connection rate limit exceeded: %u for "
				     "sasl_username=%s from unknown[%s] for service %s",
				     rc->user[CL_CONN], printable ? sc->s.auth_user : "(unprintable)",
				     sc->s.client_ip, service_name(sc));
			return SMTP_AUTH_RATE_USER;
		}
	}
	return status;
}

/* The engine's cb.rate, at MAIL and RCPT: the user's rate (when
 * authenticated), then the address's. A refusal's reply, or NULL. */
static const char *on_rate(void *user, const char *stage)
{
	struct smtp_conn *sc = user;
	struct smtp_service *svc = sc->svc;
	struct client_limits *t = rates_for(sc);
	const struct cl_conf *rc = &sc->live->rates;
	bool mail = stage[0] == 'M';
	enum cl_kind kind = mail ? CL_MSG : CL_RCPT;
	uint64_t now = *svc->clock_ns;
	bool authed = sc->s.authenticated && sc->s.auth_user[0];
	struct cl_key ka, ku;

	if (!t)
		return NULL;
	if (authed) {
		ku = cl_key_user(sc->s.auth_user);
		snprintf(svc->share_key, sizeof(svc->share_key), "u:%s", sc->s.auth_user);
		if (cs_over(svc->limits->share, t, &ku, svc->share_key, kind, rc->user[kind],
			    rc->window_ns, now)) {
			svc->stats.rej_user_rate++;
			snprintf(svc->rate_reply, sizeof(svc->rate_reply), "%s",
				 mail ? "452 4.7.1 Error: too much mail from this user"
				      : "452 4.5.3 Error: too many recipients from this user");
			return svc->rate_reply;
		}
	}
	ka = sc->akey;
	memcpy(svc->share_key, "a:", 2);	/* an IPv6 client's /64, as the table counts it */
	cl_addr_text(ka.v6, ka.ip, ka.net6, svc->share_key + 2, sizeof(svc->share_key) - 2);
	if (cs_take(svc->limits->share, t, &ka, svc->share_key, kind, rc->addr[kind],
		    rc->window_ns, now)) {
		if (mail)
			svc->stats.rej_msg_rate++;
		else
			svc->stats.rej_rcpt_rate++;
		snprintf(svc->rate_reply, sizeof(svc->rate_reply),
			 mail ? "452 4.7.1 Error: too much mail from %s"
			      : "452 4.5.3 Error: too many recipients from %s", sc->s.client_ip);
		return svc->rate_reply;
	}
	if (authed) {
		snprintf(svc->share_key, sizeof(svc->share_key), "u:%s", sc->s.auth_user);
		(void)cs_take(svc->limits->share, t, &ku, svc->share_key, kind, rc->user[kind],
			      rc->window_ns, now);
	}
	return NULL;
}

/* ---- the pump -------------------------------------------------------------------- */

static void timer_arm(struct smtp_conn *sc, uint64_t at);

/* The session has a name and password: the control plane's auth worker
 * checks them (ask.h ASK_AUTH). True if answered at once (no slot). */
static bool auth_ask(struct smtp_conn *sc)
{
	struct smtp_service *svc = sc->svc;
	const char *name, *pass;
	size_t nl, pl;
	struct ask *a;

	if (sc->auth_pending || smtp_session_auth_request(&sc->s, &name, &pass, &pl) < 0)
		return false;
	if (auth_rate_over(sc)) {
		/* the address failed too often: refused before the hash, so a
		 * brute force never floods the auth worker */
		svc->stats.rej_auth_rate++;
		smtp_session_auth_done(&sc->s, SMTP_AUTH_RATE);	/* 421 4.7.0 */
		return true;
	}
	nl = strlen(name);
	if (!svc->asks || nl + 1 + pl + 1 > sizeof(a->text) || !(a = ask_get(svc->asks))) {
		svc->stats.auth_no_slot++;
		smtp_session_auth_done(&sc->s, auth_rate_answer(sc, -1));	/* 454 4.7.0 */
		return true;
	}
	a->kind = ASK_AUTH;
	a->who = (uint32_t)(sc - svc->conns);
	a->gen = sc->gen;
	memcpy(a->text, name, nl + 1);
	memcpy(a->text + nl + 1, pass, pl);
	a->text[nl + 1 + pl] = '\0';
	ask_post(svc->asks, a);
	sc->auth_pending = true;
	svc->stats.auth_asked++;
	return false;
}

/* React to the engine's pending event. True if something changed. */
static bool handle_event(struct smtp_conn *sc)
{
	switch (smtp_session_event(&sc->s)) {
	case SMTP_EV_MESSAGE:
		if (sc->inflight)
			return false;
		if (sc->rdns_pending && *sc->svc->clock_ns < sc->rdns_until) {
			/* its Received header wants the client's name: wait
			 * for the answer (rdns_answers) or the bound (on_timer) */
			timer_arm(sc, sc->rdns_until);
			return false;
		}
		submit(sc);
		return true;
	case SMTP_EV_STARTTLS:
		if (sc->tp.tls)
			return false;	/* handshake under way: tls_input drives it */
		if (!sc->starttls_wait) {
			sc->starttls_wait = true;
			drop_input(sc);
		}
		if (output_pending(sc))
			return false;	/* the 220 is not all in TCP yet */
		sc->tp.tls = tls_conn_new(sc->live->tls);
		if (!sc->tp.tls) {
			sc->svc->stats.tls_failures++;
			log_warn("smtp: no TLS session for %s", sc->s.client_ip);
			conn_abort(sc);
			return false;
		}
		drop_input(sc);
		sc->tp.pt_start = sc->tp.pt_end = 0;
		return true;
	case SMTP_EV_CLOSE:
		if (sc->state != CONN_OPEN)
			return false;
		sc->state = CONN_CLOSING;
		return true;
	case SMTP_EV_AUTH:
		return auth_ask(sc);
	default:
		return false;
	}
}

/* File the connection's timer for `at` if none is filed for earlier. */
static void timer_arm(struct smtp_conn *sc, uint64_t at)
{
	if (!sc->tcp || at == 0 || (sc->timer_at != 0 && sc->timer_at <= at))
		return;
	sc->timer_at = at;
	tcp_set_timer(sc->tcp, at);
}

static void set_deadline(struct smtp_conn *sc)
{
	uint64_t t = smtp_session_timeout_ns(&sc->s);

	if (sc->timed_out)
		return;
	/* Only the queue may keep a session waiting without a limit; a TLS
	 * handshake or a last flush that stalls gets the command timeout. */
	if (t == 0 && !sc->inflight)
		t = sc->live->engine.timeout_cmd_ns;
	/* A later deadline leaves the filed timer alone: when it fires early,
	 * on_timer files it again for the deadline then in force. */
	sc->deadline_ns = t ? *sc->svc->clock_ns + t : 0;
	timer_arm(sc, sc->deadline_ns);
}

static void pump(struct smtp_conn *sc)
{
	bool moved = false, progress;

	if (!sc->tcp)
		return;
	do {
		progress = false;
		if (sc->state == CONN_OPEN) {
			if (sc->tp.tls && tls_input(sc))
				progress = moved = true;
			if (!sc->tcp)
				return;
			if (feed_engine(sc))
				progress = moved = true;
			if (handle_event(sc))
				progress = true;
			if (!sc->tcp)
				return;
		}
		if (flush_output(sc))
			progress = moved = true;
		if (!sc->tcp)
			return;
	} while (progress);

	if (sc->state == CONN_OPEN && sc->fin_seen && input_empty(sc) && !sc->inflight &&
	    smtp_session_event(&sc->s) != SMTP_EV_MESSAGE)
		sc->state = CONN_CLOSING;	/* the client left: answer what it sent, close */
	if (sc->state == CONN_CLOSING && !sc->fin_sent && !output_pending(sc)) {
		tcp_close(sc->tcp);
		sc->fin_sent = true;
		/* The session is over even if the client never closes its side:
		 * its slots under the limits are free now (the struct waits for
		 * TCP's closed(), bounded by FIN_WAIT_2's timeout). */
		if (sc->counted)
			limits_put(sc->svc, &sc->akey);
		sc->counted = false;
	}
	if (moved || sc->deadline_ns == 0)
		set_deadline(sc);
}

/* ---- TCP callbacks --------------------------------------------------------------- */

static void on_data(struct tcp_conn *c, void *user, struct rte_mbuf *m)
{
	struct smtp_conn *sc = user;
	uint32_t len;

	if (!m) {
		sc->fin_seen = true;
		pump(sc);
		return;
	}
	len = rte_pktmbuf_pkt_len(m);
	if (sc->state != CONN_OPEN || (sc->starttls_wait && !sc->tp.tls)) {
		/* after QUIT/421, or plaintext sent before our 220: dropped */
		tcp_recved(c, len);
		rte_pktmbuf_free(m);
		return;
	}
	if (!tls_pump_append(&sc->tp, sc->svc->in_cap, m)) {
		/* more than the window we offered: not a TCP we can trust */
		sc->svc->stats.rcvbuf_overflow++;
		log_warn("smtp: %s sent past the receive window; resetting", sc->s.client_ip);
		rte_pktmbuf_free(m);
		conn_abort(sc);
		return;
	}
	rte_pktmbuf_free(m);
	pump(sc);
}

static void on_writable(struct tcp_conn *c, void *user)
{
	(void)c;
	pump(user);
}

static void on_closed(struct tcp_conn *c, void *user, enum tcp_close_reason why)
{
	struct smtp_conn *sc = user;

	(void)c;
	if (why != TCP_CLOSE_NORMAL) {
		sc->svc->stats.resets++;
		log_debug("smtp: connection from %s closed: %s", sc->s.client_ip,
			  tcp_close_reason_name(why));
	}
	conn_gone(sc);
}

/* The connection's deadline on the TCP timer wheel: 421 4.4.2 when it
 * passes, a reset when the next one does too (the 421 could not be sent,
 * or the client never closed). */
static void on_timer(struct tcp_conn *c, void *user)
{
	struct smtp_conn *sc = user;
	struct smtp_service *svc = sc->svc;
	uint64_t now = *svc->clock_ns;

	(void)c;
	sc->timer_at = 0;
	if (sc->rdns_pending && now >= sc->rdns_until) {
		/* the reverse name is late: the message goes on without it */
		sc->rdns_pending = false;
		if (smtp_session_event(&sc->s) == SMTP_EV_MESSAGE)
			svc->stats.rdns_waited++;
		pump(sc);
		if (!sc->tcp)
			return;
	}
	if ((sc->state != CONN_OPEN && sc->state != CONN_CLOSING) || sc->deadline_ns == 0)
		return;		/* waiting for the queue: no deadline */
	if (now < sc->deadline_ns) {
		timer_arm(sc, sc->deadline_ns);	/* pushed on since it was filed */
		return;
	}
	if (sc->timed_out || sc->state == CONN_CLOSING) {
		svc->stats.timeout_aborts++;
		log_info("smtp: %s: no progress after the timeout; resetting", sc->s.client_ip);
		conn_abort(sc);
		return;
	}
	svc->stats.timeouts++;
	sc->timed_out = true;
	sc->deadline_ns = now + CLOSE_GRACE_NS;
	timer_arm(sc, sc->deadline_ns);
	smtp_session_timeout(&sc->s);
	pump(sc);
}

static bool on_accept(void *lctx, struct tcp_conn *c);

static const struct tcp_callbacks smtp_tcp_cb = {
	.accept = on_accept,
	.data = on_data,
	.writable = on_writable,
	.closed = on_closed,
	.timer = on_timer,
};

/* A slot for a new connection: a released one, or the next never used
 * (its memory is touched for the first time now). NULL: all in use. */
static struct smtp_conn *conn_get(struct smtp_service *svc)
{
	struct smtp_conn *sc = svc->free;

	if (sc) {
		svc->free = sc->next_free;
		return sc;
	}
	if (svc->hw == svc->nconns)
		return NULL;
	sc = &svc->conns[svc->hw];
	sc->svc = svc;
	sc->tp.in = svc->inmem + (size_t)svc->hw * svc->in_cap;
	sc->tp.pt = svc->ptmem + (size_t)svc->hw * TLS_PUMP_PT_MAX;
	sc->iov = svc->iovmem + (size_t)svc->hw * svc->iov_cap;
	sc->rcpt = svc->rcptmem + (size_t)svc->hw * svc->conf.engine.max_rcpt;
	svc->hw++;
	return sc;
}

/* Ask the control plane for the client's reverse name (ask.h). */
static void rdns_ask(struct smtp_conn *sc)
{
	struct smtp_service *svc = sc->svc;
	struct ask *a;

	if (!svc->asks || sc->live->rdns_wait_ns == 0 || !(a = ask_get(svc->asks)))
		return;		/* no slot: the name stays unknown */
	a->kind = ASK_RDNS;
	a->who = (uint32_t)(sc - svc->conns);
	a->gen = sc->gen;
	/* IPv6: the full address (its /64 is only the limits' key) */
	a->ip = sc->s.client.v6 ? net_addr_v6(sc->s.client.ip6)
				: net_addr_v4(rte_cpu_to_be_32(sc->ip));
	ask_post(svc->asks, a);
	sc->rdns_pending = true;
	sc->rdns_until = *svc->clock_ns + sc->live->rdns_wait_ns;
	svc->stats.rdns_asked++;
}

/* ETRN from a trusted client: the control plane starts the domain's queue
 * run (fire and forget: the answer only brings the slot back). */
static int on_etrn(void *user, const char *domain)
{
	struct smtp_conn *sc = user;
	struct smtp_service *svc = sc->svc;
	struct ask *a;

	if (!svc->asks || !(a = ask_get(svc->asks)))
		return -1;
	a->kind = ASK_ETRN;
	a->who = (uint32_t)(sc - svc->conns);
	a->gen = sc->gen;
	snprintf(a->text, sizeof(a->text), "%s", domain);
	ask_post(svc->asks, a);
	return 0;
}

/* A refusal for the mail log, in Postfix's words ("NOQUEUE: reject: RCPT
 * from name[ip]: 554 ...; from=<s> to=<r> proto=ESMTP helo=<h>"): a line
 * the control plane writes (ask.h ASK_MAILLOG; lcores never log). No slot:
 * the line is lost (ask's no_slot counts it), the refusal is counted all
 * the same (smtp.rej_*). Each field is cut at its protocol bound (a stage
 * name, a reply line without its CRLF, a domain for the name and the HELO,
 * a path for sender and recipient, an IPv6 address's text), so the longest
 * line, NOQUEUE_LINE_MAX, is known, and ask.h's text holds it whole. */
#define NOQUEUE_STAGE_MAX 16			/* "END-OF-MESSAGE" */
#define NOQUEUE_TEXT_MAX (SMTP_LINE_MAX - 2)	/* a reply line, no CRLF */
#define NOQUEUE_IP_MAX 45			/* INET6_ADDRSTRLEN - 1 */
#define NOQUEUE_WORDS "NOQUEUE: reject:  from []: ; from=<> to=<> proto=ESMTP helo=<>"
#define NOQUEUE_LINE_MAX (sizeof(NOQUEUE_WORDS) + NOQUEUE_STAGE_MAX + 2 * SMTP_DOMAIN_MAX + \
			  NOQUEUE_IP_MAX + NOQUEUE_TEXT_MAX + 2 * SMTP_PATH_MAX)
_Static_assert(NOQUEUE_LINE_MAX <= ASK_TEXT_MAX, "ask.h's text holds the longest NOQUEUE line");
static void on_reject(void *user, const char *stage, const char *text, const char *from,
		      const char *to)
{
	struct smtp_conn *sc = user;
	struct smtp_service *svc = sc->svc;
	const char *name = sc->s.client.rdns[0] ? sc->s.client.rdns : "unknown";
	struct ask *a;

	if (!svc->asks || !(a = ask_get(svc->asks)))
		return;
	a->kind = ASK_MAILLOG;
	a->who = (uint32_t)(sc - svc->conns);
	a->gen = sc->gen;
	snprintf(a->text, sizeof(a->text),
		 "NOQUEUE: reject: %.*s from %.*s[%.*s]: %.*s; from=<%.*s>%s%.*s%s proto=%s "
		 "helo=<%.*s>",
		 NOQUEUE_STAGE_MAX, stage, SMTP_DOMAIN_MAX, name, NOQUEUE_IP_MAX, sc->s.client_ip,
		 NOQUEUE_TEXT_MAX, text, SMTP_PATH_MAX, from ? from : "", to ? " to=<" : "",
		 SMTP_PATH_MAX, to ? to : "", to ? ">" : "", sc->s.helo[0] ? "ESMTP" : "SMTP",
		 SMTP_DOMAIN_MAX, sc->s.helo);
	ask_post(svc->asks, a);
}

/* The control plane's answers: names for the sessions that still wait. */
static unsigned rdns_answers(struct smtp_service *svc)
{
	struct ask *got[DONE_BURST];
	unsigned n;

	if (!svc->asks)
		return 0;
	n = ask_answers(svc->asks, got, DONE_BURST);
	for (unsigned i = 0; i < n; i++) {
		struct ask *a = got[i];
		struct smtp_conn *sc = a->who < svc->hw ? &svc->conns[a->who] : NULL;

		if (a->kind == ASK_AUTH) {
			if (!sc || sc->gen != a->gen || !sc->auth_pending || sc->state != CONN_OPEN ||
			    smtp_session_event(&sc->s) != SMTP_EV_AUTH) {
				svc->stats.auth_late++;		/* timed out, or gone */
				if (sc && sc->gen == a->gen)
					sc->auth_pending = false;
			} else {
				sc->auth_pending = false;
				smtp_session_auth_done(&sc->s, auth_rate_answer(sc, a->status == 1 ? 1 :
							       a->status == 0 ? 0 : -1));
				pump(sc);
			}
			memset(a->text, 0, sizeof(a->text));
			ask_put(svc->asks, a);
			continue;
		}
		if (a->kind != ASK_RDNS) {
			ask_put(svc->asks, a);	/* ETRN, MAILLOG: nothing owed */
			continue;
		}
		if (!sc || sc->gen != a->gen || !sc->rdns_pending || sc->state != CONN_OPEN) {
			svc->stats.rdns_late++;		/* gave up on it, or gone */
		} else {
			sc->rdns_pending = false;
			a->text[sizeof(a->text) - 1] = '\0';
			if (a->text[0])
				svc->stats.rdns_named++;
			else
				svc->stats.rdns_unknown++;
			smtp_session_set_rdns(&sc->s, a->text);
			pump(sc);
		}
		ask_put(svc->asks, a);
	}
	return n;
}

static bool on_accept(void *lctx, struct tcp_conn *c)
{
	struct smtp_service *svc = lctx;
	struct smtp_conn *sc;
	struct tcp_tuple t;
	struct smtp_client client = { 0 };
	struct smtp_session_cb cb = {
		.sink = on_body, .msg_begin = on_msg_begin, .trace_id = on_trace_id,
		.rcpt = on_rcpt, .rcpt_reset = on_rcpt_reset, .etrn = on_etrn,
		.reject = on_reject, .rate = on_rate,
	};
	uint16_t lport;
	bool sub;
	int over;

	if (svc->draining || !(sc = conn_get(svc))) {
		svc->stats.refused_no_slot++;
		return false;	/* reset: not even room to say 421 */
	}
	svc->nopen++;
	publish_active(svc);

	tcp_get_tuple(c, &t);
	sc->tcp = c;
	sc->state = CONN_OPEN;
	sc->fin_seen = sc->fin_sent = sc->inflight = sc->counted = false;
	sc->timed_out = sc->starttls_wait = false;
	if (net_addr_is_v6(&t.raddr)) {
		/* Per-client limits count an IPv6 client by its /64 (one
		 * subscriber's LAN, RFC 6177), a key of its own kind. */
		client.v6 = true;
		memcpy(client.ip6, t.raddr.v6, 16);
		sc->ip = 0;
		sc->akey = cl_key_addr6(client.ip6);
	} else {
		sc->ip = rte_be_to_cpu_32(t.raddr.v4);
		sc->akey = cl_key_addr(sc->ip);
	}
	sc->deadline_ns = sc->timer_at = 0;
	sc->tp.tls = NULL;
	tls_pump_reset(&sc->tp);
	sc->niov = 1;
	sc->nrcpt = sc->nrch = 0;
	sc->rch_used = 0;
	sc->sub.reserved_id = 0;
	sc->gen++;
	sc->rdns_pending = false;
	sc->auth_pending = false;
	sc->auth_charged = false;
	tcp_set_user(c, sc);

	client.ip = client.v6 ? 0 : sc->ip;
	sc->trusted = client.v6 ? smtp_policy_trusted6(&svc->live->policy, client.ip6)
				: smtp_policy_trusted(&svc->live->policy, sc->ip);
	cb.user = sc;
	sc->live = svc->live;
	atomic_fetch_add_explicit(&sc->live->sessions, 1, memory_order_relaxed);
	lport = rte_be_to_cpu_16(t.lport);
	sub = lport && (lport == svc->conf.submission_port || lport == svc->conf.submissions_port);
	smtp_session_init(&sc->s, sub ? &sc->live->engine_sub : &sc->live->engine,
			  &svc->engine_stats, &client, &cb);
	if (lport && lport == svc->conf.submissions_port) {
		/* RFC 8314: TLS first; the greeting waits for the handshake */
		sc->tp.tls = sc->live->tls ? tls_conn_new(sc->live->tls) : NULL;
		if (!sc->tp.tls) {	/* no memory: 421 in the clear, and close */
			svc->stats.tls_failures++;
			smtp_session_refuse(&sc->s);
			pump(sc);
			return true;
		}
	}
	if (atomic_load_explicit(&svc->limits->refuse_new, memory_order_relaxed)) {
		svc->stats.refused_draining++;	/* drained: 421 4.3.2, not counted */
		smtp_session_refuse_drain(&sc->s);
		pump(sc);
		return true;
	}
	if (conn_rate_over(sc)) {
		smtp_session_refuse_rate(&sc->s);	/* 421 4.7.0, not counted */
		pump(sc);
		return true;
	}
	over = limits_take(svc, &sc->akey, sc->trusted);
	if (over == 0) {
		sc->counted = true;
		svc->stats.accepted++;
		rdns_ask(sc);
	} else {
		if (over == 1)
			svc->stats.refused_total++;
		else
			svc->stats.refused_client++;
		smtp_session_refuse(&sc->s);
	}
	pump(sc);
	return true;
}

/* ---- service ------------------------------------------------------------------------ */

/* Slots for one lcore: every session may land here (plus a quarter for
 * connections closed on our side whose client has not closed yet, and a
 * few to say 421 with), but never more than the lcore's TCP stack can hold
 * connections, plus room for zombies. The total is smtp_limits' job. */
static unsigned slots_for(const struct smtp_service_conf *conf)
{
	uint64_t n = (uint64_t)conf->max_sessions + conf->max_sessions / 4 + 16;

	if (conf->lcore_conns && n > (uint64_t)conf->lcore_conns + ZOMBIE_SLOTS)
		n = (uint64_t)conf->lcore_conns + ZOMBIE_SLOTS;
	return (unsigned)n;
}

static void *big_alloc(size_t len)
{
	/* Untouched pages cost nothing: only what sessions use becomes resident. */
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		       -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static size_t page_round(size_t n)
{
	return (n + 4095) & ~(size_t)4095;
}

struct smtp_service *smtp_service_create(struct tcp_stack *ts, const struct smtp_service_conf *conf,
					 struct smtp_limits *limits, struct smtp_live_slot *live,
					 uint32_t rcvbuf, unsigned lcore_id, const uint64_t *clock_ns)
{
	struct smtp_service *svc;
	uint64_t max_size = conf->engine.max_size;
	const char *why;

	if (conf->port == 0)
		return NULL;
	if (live && !atomic_load(&live->cur)) {
		log_err("smtp: lcore %u: no settings snapshot", lcore_id);
		return NULL;
	}
	if (smtp_conf_check(&conf->engine, &why) < 0) {
		log_err("smtp: %s", why);
		return NULL;
	}
	svc = calloc(1, sizeof(*svc));
	if (!svc)
		return NULL;
	svc->ts = ts;
	svc->conf = *conf;
	svc->limits = limits;
	if (!live) {
		struct smtp_live *own = smtp_live_new(conf, false);
		if (!own) {
			free(svc);
			return NULL;
		}
		own->gen = 1;
		atomic_init(&svc->own_slot.cur, own);
		live = &svc->own_slot;
	}
	svc->slot = live;
	svc->live = atomic_load_explicit(&live->cur, memory_order_acquire);
	/* settings come from the snapshots from now on: keep no pointer a
	 * reload may free */
	svc->conf.tls = NULL;
	svc->conf.live = NULL;
	svc->conf.engine.policy = NULL;
	atomic_init(&svc->live_seen, svc->live->gen);
	svc->clock_ns = clock_ns;
	svc->lcore_id = lcore_id;
	svc->nconns = slots_for(conf);
	svc->in_cap = rcvbuf + IN_SLACK;
	svc->nchunks = (uint32_t)(conf->body_memory / SMTP_BODY_CHUNK);
	if (max_size == 0 || max_size > (uint64_t)svc->nchunks * SMTP_BODY_CHUNK)
		max_size = (uint64_t)svc->nchunks * SMTP_BODY_CHUNK;
	svc->iov_cap = (unsigned)(max_size / SMTP_BODY_CHUNK) + 3;
	svc->arena_len = page_round((size_t)svc->nchunks * SMTP_BODY_CHUNK);

	svc->conns = big_alloc(page_round(svc->nconns * sizeof(struct smtp_conn)));
	svc->inmem = big_alloc(page_round((size_t)svc->nconns * svc->in_cap));
	svc->ptmem = big_alloc(page_round((size_t)svc->nconns * TLS_PUMP_PT_MAX));
	svc->iovmem = big_alloc(page_round((size_t)svc->nconns * svc->iov_cap * sizeof(struct iovec)));
	svc->rcptmem = big_alloc(page_round((size_t)svc->nconns * conf->engine.max_rcpt *
					    sizeof(struct queue_rcpt_in)));
	svc->arena = svc->nchunks ? big_alloc(svc->arena_len) : NULL;
	svc->free_chunks = calloc(svc->nchunks ? svc->nchunks : 1, sizeof(uint32_t));
	svc->done = queue_done_ring_create(svc->nconns);
	if (!svc->conns || !svc->inmem || !svc->ptmem || !svc->iovmem || !svc->rcptmem ||
	    (svc->nchunks && !svc->arena) || !svc->free_chunks || !svc->done) {
		log_err("smtp: lcore %u: out of memory for %u sessions", lcore_id, svc->nconns);
		smtp_service_destroy(svc);
		return NULL;
	}
	for (uint32_t i = 0; i < svc->nchunks; i++)
		svc->free_chunks[i] = svc->nchunks - 1 - i;
	svc->nfree = svc->nchunks;
	/* no slot is touched here: conn_get() prepares each on first use */
	atomic_init(&svc->active, 0);
	svc->listener = tcp_listen(ts, rte_cpu_to_be_16(conf->port), &smtp_tcp_cb, svc);
	if (!svc->listener) {
		log_err("smtp: lcore %u: cannot listen on port %u", lcore_id, conf->port);
		smtp_service_destroy(svc);
		return NULL;
	}
	if (conf->submission_port) {
		svc->listener_sub = tcp_listen(ts, rte_cpu_to_be_16(conf->submission_port),
					       &smtp_tcp_cb, svc);
		if (!svc->listener_sub) {
			log_err("smtp: lcore %u: cannot listen on port %u", lcore_id,
				conf->submission_port);
			smtp_service_destroy(svc);
			return NULL;
		}
	}
	if (conf->submissions_port) {
		svc->listener_subs = tcp_listen(ts, rte_cpu_to_be_16(conf->submissions_port),
						&smtp_tcp_cb, svc);
		if (!svc->listener_subs) {
			log_err("smtp: lcore %u: cannot listen on port %u", lcore_id,
				conf->submissions_port);
			smtp_service_destroy(svc);
			return NULL;
		}
	}
	log_info("smtp: lcore %u: %u session slots (max_sessions %u, TCP connections %u), "
		 "%u arena chunks of %u KiB", lcore_id, svc->nconns, conf->max_sessions,
		 conf->lcore_conns, svc->nchunks, SMTP_BODY_CHUNK / 1024);
	return svc;
}

void smtp_service_destroy(struct smtp_service *svc)
{
	if (!svc)
		return;
	/* The TCP stack may outlive us: leave it nothing that points here. */
	if (svc->listener)
		tcp_unlisten(svc->listener);
	if (svc->listener_sub)
		tcp_unlisten(svc->listener_sub);
	if (svc->listener_subs)
		tcp_unlisten(svc->listener_subs);
	if (svc->conns)
		for (unsigned i = 0; i < svc->hw; i++) {
			struct smtp_conn *sc = &svc->conns[i];
			if (sc->tcp)
				tcp_abort(sc->tcp);
			if (sc->tp.tls)
				tls_conn_free(sc->tp.tls);
			live_put(sc);
		}
	if (svc->conns)
		munmap(svc->conns, page_round(svc->nconns * sizeof(struct smtp_conn)));
	if (svc->inmem)
		munmap(svc->inmem, page_round((size_t)svc->nconns * svc->in_cap));
	if (svc->ptmem)
		munmap(svc->ptmem, page_round((size_t)svc->nconns * TLS_PUMP_PT_MAX));
	if (svc->iovmem)
		munmap(svc->iovmem, page_round((size_t)svc->nconns * svc->iov_cap * sizeof(struct iovec)));
	if (svc->rcptmem)
		munmap(svc->rcptmem, page_round((size_t)svc->nconns * svc->conf.engine.max_rcpt *
						sizeof(struct queue_rcpt_in)));
	if (svc->arena)
		munmap(svc->arena, svc->arena_len);
	free(svc->free_chunks);
	if (svc->done)
		queue_done_ring_free(svc->done);
	if (svc->slot == &svc->own_slot)
		smtp_live_free(atomic_load(&svc->own_slot.cur));
	free(svc);
}

void smtp_service_set_asks(struct smtp_service *svc, struct ask_port *asks)
{
	svc->asks = asks;
}

/* The burst boundary: take the snapshot a reload may have published, then
 * say so (the quiescent point the publisher waits for). */
static void live_pickup(struct smtp_service *svc)
{
	struct smtp_live *l = atomic_load_explicit(&svc->slot->cur, memory_order_acquire);

	if (l == svc->live)
		return;
	svc->live = l;
	atomic_store_explicit(&svc->live_seen, l->gen, memory_order_release);
}

unsigned smtp_service_poll(struct smtp_service *svc, uint64_t now_ns)
{
	(void)now_ns;	/* deadlines run on the TCP timer wheel (on_timer) */
	if (!svc)
		return 0;
	live_pickup(svc);
	return take_completions(svc) + rdns_answers(svc);
}

uint64_t smtp_service_live_seen(const struct smtp_service *svc)
{
	return atomic_load_explicit(&svc->live_seen, memory_order_acquire);
}

struct smtp_live *smtp_live_new(const struct smtp_service_conf *conf, bool own_tls)
{
	struct smtp_live *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->engine = conf->engine;
	if (conf->engine.policy)
		l->policy = *conf->engine.policy;
	l->engine.policy = &l->policy;	/* an empty policy relays nothing */
	l->engine_sub = l->engine;
	l->engine_sub.submission = true;
	l->engine.auth_available = false;	/* AUTH on the submission ports only */
	l->tls = conf->tls;
	l->own_tls = own_tls;
	l->max_sessions = conf->max_sessions;
	l->max_per_client = conf->max_per_client;
	l->lifetime_s = conf->lifetime_s;
	l->bounce_lifetime_s = conf->bounce_lifetime_s;
	l->rdns_wait_ns = conf->rdns_wait_ns;
	l->rates = conf->rates;
	atomic_init(&l->sessions, 0);
	return l;
}

void smtp_live_free(struct smtp_live *l)
{
	if (!l)
		return;
	if (l->own_tls)
		tls_ctx_free(l->tls);
	free(l);
}

void smtp_service_drain(struct smtp_service *svc)
{
	if (!svc || svc->draining)
		return;
	svc->draining = true;
	if (svc->listener) {
		tcp_unlisten(svc->listener);
		svc->listener = NULL;
	}
	if (svc->listener_sub) {
		tcp_unlisten(svc->listener_sub);
		svc->listener_sub = NULL;
	}
	if (svc->listener_subs) {
		tcp_unlisten(svc->listener_subs);
		svc->listener_subs = NULL;
	}
	for (unsigned i = 0; i < svc->hw; i++) {	/* once, at shutdown */
		struct smtp_conn *sc = &svc->conns[i];
		if (sc->state != CONN_OPEN)
			continue;
		smtp_session_shutdown(&sc->s);
		pump(sc);
	}
}

unsigned smtp_service_active(const struct smtp_service *svc)
{
	return svc ? atomic_load_explicit(&svc->active, memory_order_relaxed) : 0;
}

const struct smtp_service_stats *smtp_service_get_stats(const struct smtp_service *svc)
{
	return &svc->stats;
}

const struct smtp_stats *smtp_service_engine_stats(const struct smtp_service *svc)
{
	return &svc->engine_stats;
}

void smtp_service_gauges(const struct smtp_service *svc, uint64_t *sessions, uint64_t *inflight,
			 uint64_t *chunks_used)
{
	*sessions += svc->nopen;
	*inflight += svc->ninflight;
	*chunks_used += svc->nchunks - svc->nfree;
}

void smtp_service_slots(const struct smtp_service *svc, unsigned *slots, unsigned *touched)
{
	*slots = svc->nconns;
	*touched = svc->hw;
}
