/*
 * gen_client.c - sluice-gen's client mode: SMTP sessions on the lcore's
 * TCP stack, driven by the daemon's own SMTP client engine (smtp_client.h),
 * STARTTLS through tls.h, as the delivery service does it (delivery.c),
 * but with no scheduler: the load is the generator's own.
 *
 * Slots: concurrency / lcores sessions per lcore. Closed loop: every free
 * slot opens a connection at once and each connection sends messages
 * back to back (up to --per-conn). Open loop (--rate): tokens accrue at
 * the lcore's share of the rate; each one starts a message on an idle
 * connection, or opens one; with no slot free the start is dropped and
 * counted (late_starts): the server fell behind the offered load.
 *
 * Latencies (per lcore histograms): connect (tcp_connect to established),
 * greeting (established to the first octet of the 220), data (the last
 * body octet taken by the engine to its end-of-data reply: the server's
 * durable-queue path). A message answered 250 has its digest logged.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <rte_mbuf.h>

#include "bench/gen/gen.h"
#include "common/log.h"
#include "dataplane/net/tcp.h"
#include "dataplane/smtp/tls.h"
#include "dataplane/smtp/tls_pump.h"

#define IN_CAP       (64 * 1024 + 2048)
#define TOKEN_BURST  32.0

enum { S_FREE = 0, S_CONNECTING, S_SESSION, S_CLOSING };

struct cslot {
	struct gen_client *cl;
	struct tcp_conn *tcp;
	uint8_t state;
	bool greeted, fin_seen, fin_sent, starttls_wait;
	bool msg_active, body_done, want_msg;
	unsigned msgs;			/* transactions on this connection */
	uint64_t t_open, t_conn, t_dot;
	/* Timers are lazy: deadline is when the current wait runs out (the
	 * connect, or the engine's wait from the last event on), timer_at
	 * what TCP holds; a timer that went off before the deadline (armed
	 * for an earlier wait) only re-arms. 0: none. */
	uint64_t deadline, timer_at;
	struct tls_pump tp;		/* in: IN_CAP, pt: TLS_PUMP_PT_MAX (heap) */
	EVP_MD_CTX *md;
	struct gen_msg m;
	struct smtp_client_msg msg;
	struct smtp_client_rcpt rcpt[GEN_RCPT_MAX];
	char addr[GEN_RCPT_MAX][GEN_WNAME_MAX * 2 + 32];
	struct smtp_client_result res, rres[GEN_RCPT_MAX];
	struct smtp_client_conn eng;
};

struct gen_client {
	struct gen_lcore *g;
	unsigned nslots, active;
	struct cslot *slots;
	uint64_t seq;			/* messages built on this lcore */
	double rate, tokens;		/* open loop: this lcore's share */
	uint64_t last_ns;
	unsigned next_slot;
	bool swept;			/* idle sessions told to QUIT at stop */
	bool resolved;			/* a connection got through: the next hop's
					 * MAC is known, the rest may open at once */
};

static void pump(struct cslot *s);

static uint64_t now(const struct cslot *s)
{
	return *s->cl->g->now;
}

/* ---- messages ------------------------------------------------------------------ */

static void msg_prepare(struct cslot *s)
{
	struct gen_client *cl = s->cl;
	struct gen_lcore *g = cl->g;
	const struct gen_opts *o = g->run->o;
	uint64_t seq = cl->seq++;
	char id[48];
	unsigned n = o->rcpts;

	snprintf(id, sizeof(id), "%u-%llu", g->worker, (unsigned long long)seq);
	for (unsigned i = 0; i < n; i++) {
		snprintf(s->addr[i], sizeof(s->addr[i]), "%s-%s-%u@%s",
			 gen_wlist_pick(&o->locals, &g->rng), id, i,
			 gen_wlist_pick(&o->domains, &g->rng));
		s->rcpt[i].addr = s->addr[i];
		s->rcpt[i].orcpt = NULL;
		s->rcpt[i].notify = 0;
	}
	/* the digest only when it is logged (--client-digests) */
	gen_msg_build(&s->m, g->run->tpl, g->cdig.d ? s->md : NULL, id, g->run->run_id, g->run->date, o->from,
		      s->addr[0], NULL, gen_size_sample(&o->size, &g->rng),
		      (uint32_t)gen_rng_below(&g->rng, GEN_TEMPLATE_LINES));
	memset(&s->msg, 0, sizeof(s->msg));
	s->msg.sender = o->from;
	s->msg.nrcpt = n;
	s->msg.rcpt = s->rcpt;
	s->msg.size = s->m.size;
}

static void msg_send(struct cslot *s)
{
	msg_prepare(s);
	if (smtp_client_send(&s->eng, &s->msg, &s->res, s->rres) < 0) {
		s->cl->g->st.msg_lost++;	/* cannot happen at READY/DONE */
		return;
	}
	s->msg_active = true;
	s->body_done = false;
	s->want_msg = false;
	s->cl->g->st.msg_started++;
}

/* The transaction is over (DONE, or CLOSE with it in flight). */
static void msg_result(struct cslot *s)
{
	struct gen_lcore *g = s->cl->g;
	int code = s->res.code;
	char v = s->res.status[0];

	s->msg_active = false;
	s->msgs++;
	g->codes[code >= 0 && code < GEN_CODES ? code : 0]++;
	for (unsigned i = 0; i < s->msg.nrcpt; i++) {
		char r = s->rres[i].status[0];
		if (r == '2')
			g->st.rcpt_ok++;
		else if (r == '5')
			g->st.rcpt_perm++;
		else
			g->st.rcpt_temp++;
	}
	if (v == '2' && code >= 200 && code < 300) {
		g->st.msg_ok++;
		g->st.msg_bytes += s->m.size;
		if (s->body_done)
			gen_hist_record(&g->h_data, now(s) - s->t_dot);
		gen_diglog_add(g, &g->cdig, s->m.sha);
	} else if (code == 0) {
		g->st.msg_lost++;
	} else if (v == '5') {
		g->st.msg_perm++;
	} else {
		g->st.msg_temp++;
	}
}

/* ---- bytes ---------------------------------------------------------------------- */

static bool output_pending(struct cslot *s)
{
	struct tls_pump_out o = { smtp_client_peek_output_of, smtp_client_consume_output_of,
				  &s->eng };

	return tls_pump_output_pending(&s->tp, &o);
}

static void drop_input(struct cslot *s)
{
	tls_pump_drop_input(&s->tp, s->tcp);
}

static bool flush_output(struct cslot *s)
{
	struct tls_pump_out o = { smtp_client_peek_output_of, smtp_client_consume_output_of,
				  &s->eng };
	int r = tls_pump_flush(&s->tp, s->tcp, &o);

	if (r < 0) {
		smtp_client_lost(&s->eng, "TLS write failed");
		return false;
	}
	return r > 0;
}

static bool tls_input(struct cslot *s)
{
	bool moved = false;

	while (s->tp.tls && s->tcp) {
		bool hs = !s->tp.up && smtp_client_event(&s->eng) == SCE_STARTTLS;

		switch (tls_pump_input(&s->tp, s->tcp, hs, &moved)) {
		case TLS_PUMP_IDLE:
			return moved;
		case TLS_PUMP_UP:
			s->starttls_wait = false;
			s->cl->g->st.tls_ok++;
			smtp_client_tls_started(&s->eng);
			continue;
		case TLS_PUMP_HS_FAILED:
			s->cl->g->st.tls_failed++;
			smtp_client_tls_failed(&s->eng, tls_error(s->tp.tls));
			return true;
		case TLS_PUMP_ENDED:
			s->fin_seen = true;
			return true;
		case TLS_PUMP_FEED_FAILED:
			smtp_client_lost(&s->eng, "TLS input failed");
			return true;
		}
	}
	return moved;
}

static bool feed_engine(struct cslot *s)
{
	const uint8_t *p;
	size_t avail = tls_pump_readable(&s->tp, &p), n;

	if (avail == 0)
		return false;
	n = smtp_client_input(&s->eng, p, avail);
	tls_pump_consumed(&s->tp, s->tcp, n);
	return n > 0;
}

static bool feed_body(struct cslot *s)
{
	bool moved = false;

	while (smtp_client_event(&s->eng) == SCE_BODY) {
		const char *p = NULL;
		size_t len = gen_msg_next(&s->m, s->cl->g->run->tpl, &p), took;
		bool last = s->m.pos + len >= s->m.size;

		took = smtp_client_body(&s->eng, p, len, last);
		if (took > 0) {
			gen_msg_consume(&s->m, took);
			moved = true;
			continue;
		}
		if (len == 0 && smtp_client_event(&s->eng) != SCE_BODY)
			break;
		if (!flush_output(s))
			break;		/* TCP is full: writable() brings us back */
		moved = true;
	}
	if (smtp_client_event(&s->eng) != SCE_BODY && !s->body_done && s->msg_active) {
		s->body_done = true;
		s->t_dot = now(s);
	}
	return moved;
}

static bool start_tls(struct cslot *s)
{
	struct gen_run *run = s->cl->g->run;

	if (s->tp.tls)
		return false;
	if (!s->starttls_wait) {
		s->starttls_wait = true;
		drop_input(s);
	}
	if (output_pending(s))
		return false;
	s->tp.tls = run->tls_client ? tls_conn_new(run->tls_client) : NULL;
	if (!s->tp.tls || tls_conn_client_setup(s->tp.tls, "", false) < 0) {
		if (s->tp.tls) {
			tls_conn_free(s->tp.tls);
			s->tp.tls = NULL;
		}
		s->cl->g->st.tls_failed++;
		smtp_client_tls_failed(&s->eng, "cannot set up a TLS session");
		return true;
	}
	drop_input(s);
	s->tp.pt_start = s->tp.pt_end = 0;
	return true;
}

/* ---- the session ---------------------------------------------------------------- */

static bool more_on_this_conn(struct cslot *s)
{
	const struct gen_opts *o = s->cl->g->run->o;

	if (atomic_load_explicit(&s->cl->g->run->stop, memory_order_relaxed))
		return false;
	return o->per_conn == 0 || s->msgs < o->per_conn;
}

static void slot_close(struct cslot *s)
{
	if (s->state != S_CLOSING) {
		s->state = S_CLOSING;
		s->cl->g->st.sessions_closed++;
	}
}

/* React to the engine's event. True if something moved. */
static bool handle_event(struct cslot *s)
{
	struct gen_client *cl = s->cl;

	switch (smtp_client_event(&s->eng)) {
	case SCE_READY:
	case SCE_DONE:
		if (s->msg_active)
			msg_result(s);
		if (!more_on_this_conn(s)) {
			smtp_client_quit(&s->eng);
			return true;
		}
		if (cl->rate > 0) {
			if (s->want_msg) {
				msg_send(s);
				return true;
			}
			return false;	/* idle: a token will start the next */
		}
		if (s->msgs > 0 && !gen_take_budget(cl->g->run)) {
			smtp_client_quit(&s->eng);
			return true;
		}
		msg_send(s);
		return true;
	case SCE_STARTTLS:
		return start_tls(s);
	case SCE_BODY:
		return feed_body(s);
	case SCE_CLOSE:
		if (s->msg_active)
			msg_result(s);
		slot_close(s);
		return false;
	default:
		return false;
	}
}

/* TCP's timer at s->deadline, unless one already goes off before it. */
static void arm_timer(struct cslot *s)
{
	if (!s->tcp || (s->timer_at && s->timer_at <= s->deadline))
		return;
	s->timer_at = s->deadline;
	tcp_set_timer(s->tcp, s->timer_at);
}

/* After an event: the engine's wait (or the idle bound) from now on. */
static void set_deadline(struct cslot *s)
{
	uint64_t t = smtp_client_timeout_ns(&s->eng);

	if (t == 0)
		t = 300ull * 1000000000ull;	/* idle: the server's own timeout rules */
	s->deadline = now(s) + t;
	arm_timer(s);
}

static void pump(struct cslot *s)
{
	bool progress;

	if (!s->tcp)
		return;
	do {
		progress = false;
		if (s->state == S_SESSION) {
			if (s->tp.tls && tls_input(s))
				progress = true;
			if (feed_engine(s))
				progress = true;
			if (s->fin_seen && s->tp.in_start == s->tp.in_end && s->tp.pt_start == s->tp.pt_end &&
			    smtp_client_event(&s->eng) != SCE_CLOSE) {
				smtp_client_lost(&s->eng, "connection closed by the server");
				progress = true;
			}
			if (handle_event(s))
				progress = true;
		}
		if (flush_output(s))
			progress = true;
	} while (progress && s->tcp);
	if (!s->tcp)
		return;
	if (s->state == S_CLOSING && !s->fin_sent && !output_pending(s)) {
		tcp_close(s->tcp);
		s->fin_sent = true;
	}
	set_deadline(s);
}

/* ---- TCP callbacks ------------------------------------------------------------------ */

static void slot_free(struct cslot *s)
{
	if (s->tp.tls) {
		tls_conn_free(s->tp.tls);
		s->tp.tls = NULL;
	}
	s->tcp = NULL;
	s->state = S_FREE;
	s->cl->active--;
}

static void on_connected(struct tcp_conn *c, void *user)
{
	struct cslot *s = user;

	(void)c;
	s->cl->g->st.conn_ok++;
	s->cl->resolved = true;
	s->t_conn = now(s);
	gen_hist_record(&s->cl->g->h_connect, s->t_conn - s->t_open);
	s->state = S_SESSION;
	smtp_client_connected(&s->eng);
	pump(s);
}

static void on_data(struct tcp_conn *c, void *user, struct rte_mbuf *m)
{
	struct cslot *s = user;
	uint32_t len;

	if (!m) {
		s->fin_seen = true;
		pump(s);
		return;
	}
	len = rte_pktmbuf_pkt_len(m);
	if (!s->greeted) {
		s->greeted = true;
		gen_hist_record(&s->cl->g->h_greet, now(s) - s->t_conn);
	}
	if (s->state != S_SESSION || (s->starttls_wait && !s->tp.tls)) {
		tcp_recved(c, len);
		rte_pktmbuf_free(m);
		return;
	}
	if (!tls_pump_append(&s->tp, IN_CAP, m)) {
		rte_pktmbuf_free(m);
		smtp_client_lost(&s->eng, "the server sent past the receive window");
		pump(s);
		return;
	}
	rte_pktmbuf_free(m);
	pump(s);
}

static void on_writable(struct tcp_conn *c, void *user)
{
	(void)c;
	pump(user);
}

static void on_closed(struct tcp_conn *c, void *user, enum tcp_close_reason why)
{
	struct cslot *s = user;

	(void)c;
	if (s->state == S_CONNECTING) {
		s->cl->g->st.conn_failed++;
		if (s->want_msg || s->cl->rate == 0)
			s->cl->g->st.msg_lost++;	/* the message it was opened for */
	} else if (s->state == S_SESSION) {
		smtp_client_lost(&s->eng, tcp_close_reason_name(why));
		if (s->msg_active)
			msg_result(s);
		slot_close(s);
	}
	slot_free(s);
}

static void on_timer(struct tcp_conn *c, void *user)
{
	struct cslot *s = user;

	s->timer_at = 0;
	if (now(s) < s->deadline) {
		arm_timer(s);		/* an earlier wait's timer: this one still runs */
		return;
	}
	if (s->state == S_CONNECTING) {
		tcp_abort(c);
		s->cl->g->st.conn_failed++;
		s->cl->g->st.msg_lost++;
		slot_free(s);
		return;
	}
	if (s->state == S_CLOSING) {
		tcp_abort(c);		/* the server never closed */
		slot_free(s);
		return;
	}
	if (smtp_client_timeout_ns(&s->eng) != 0) {
		smtp_client_timeout(&s->eng);
		pump(s);
		return;
	}
	set_deadline(s);
}

static const struct tcp_callbacks client_cb = {
	.connected = on_connected,
	.data = on_data,
	.writable = on_writable,
	.closed = on_closed,
	.timer = on_timer,
};

/* Open a connection in a free slot. False when none is free, TCP has no
 * room, or the lcore's first connection is not up yet. */
static bool slot_open(struct gen_client *cl, bool for_rate)
{
	struct gen_lcore *g = cl->g;
	const struct gen_opts *o = g->run->o;
	struct cslot *s = NULL;

	/* Until the first connection is up, one at a time: the others' SYNs
	 * would wait for ARP in a pending queue of a few frames, and those it
	 * dropped would go out again only at the 1 s retransmission. */
	if (!cl->resolved && cl->active > 0)
		return false;
	for (unsigned i = 0; i < cl->nslots; i++) {
		unsigned k = (cl->next_slot + i) % cl->nslots;
		if (cl->slots[k].state == S_FREE) {
			s = &cl->slots[k];
			cl->next_slot = k + 1;
			break;
		}
	}
	if (!s)
		return false;
	s->greeted = s->fin_seen = s->fin_sent = s->starttls_wait = false;
	s->msg_active = s->body_done = false;
	s->want_msg = for_rate;
	s->msgs = 0;
	tls_pump_reset(&s->tp);
	s->timer_at = s->deadline = 0;
	smtp_client_init(&s->eng, &g->run->ccf, &g->cstats);
	s->t_open = *g->now;
	s->tcp = tcp_connect(g->tcp, rte_cpu_to_be_32(o->server_ip), rte_cpu_to_be_16(o->server_port),
			     &client_cb, s);
	if (!s->tcp) {
		g->st.conn_no_slot++;
		return false;
	}
	s->state = S_CONNECTING;
	cl->active++;
	g->st.conn_started++;
	s->deadline = s->t_open + g->run->ccf.t_connect_ns;
	arm_timer(s);
	return true;
}

/* Open loop: one message, on an idle connection or a new one. */
static bool rate_start(struct gen_client *cl)
{
	for (unsigned i = 0; i < cl->nslots; i++) {
		struct cslot *s = &cl->slots[i];
		enum smtp_client_event ev;
		if (s->state != S_SESSION || s->msg_active || s->want_msg)
			continue;
		ev = smtp_client_event(&s->eng);
		if ((ev == SCE_READY || ev == SCE_DONE) && more_on_this_conn(s)) {
			s->want_msg = true;
			pump(s);
			return true;
		}
	}
	return slot_open(cl, true);
}

unsigned gen_client_poll(struct gen_client *cl)
{
	struct gen_lcore *g = cl->g;
	struct gen_run *run = g->run;
	unsigned work = 0;
	uint64_t t = *g->now;

	if (!atomic_load_explicit(&run->go, memory_order_relaxed)) {
		cl->last_ns = t;
		return 0;
	}
	if (atomic_load_explicit(&run->stop, memory_order_relaxed)) {
		/* idle connections (open loop) say QUIT once */
		if (!cl->swept) {
			cl->swept = true;
			for (unsigned i = 0; i < cl->nslots; i++)
				if (cl->slots[i].state == S_SESSION && !cl->slots[i].msg_active)
					pump(&cl->slots[i]);
		}
		return 0;
	}
	if (cl->rate > 0) {
		cl->tokens += (double)(t - cl->last_ns) * cl->rate / 1e9;
		if (cl->tokens > TOKEN_BURST)
			cl->tokens = TOKEN_BURST;
		cl->last_ns = t;
		while (cl->tokens >= 1.0) {
			cl->tokens -= 1.0;
			if (!gen_take_budget(run))
				break;
			if (rate_start(cl))
				work++;
			else
				g->st.late_starts++;
		}
		return work;
	}
	while (cl->active < cl->nslots) {
		if (!gen_take_budget(run))
			break;
		if (!slot_open(cl, false)) {
			atomic_fetch_add(&run->budget, run->counted ? 1 : 0);
			break;
		}
		work++;
	}
	return work;
}

unsigned gen_client_active(const struct gen_client *cl)
{
	return cl ? cl->active : 0;
}

unsigned gen_client_unfinished(struct gen_client *cl)
{
	unsigned n = 0;

	for (unsigned i = 0; cl && i < cl->nslots; i++)
		if (cl->slots[i].state != S_FREE && cl->slots[i].msg_active)
			n++;
	if (cl)
		cl->g->st.msg_unfinished += n;
	return n;
}

struct gen_client *gen_client_create(struct gen_lcore *g)
{
	const struct gen_opts *o = g->run->o;
	unsigned nw = g->run->nworkers;
	struct gen_client *cl = calloc(1, sizeof(*cl));

	if (!cl)
		return NULL;
	cl->g = g;
	cl->nslots = o->concurrency / nw + (g->worker < o->concurrency % nw ? 1 : 0);
	cl->rate = o->rate / nw;
	cl->slots = calloc(cl->nslots, sizeof(*cl->slots));
	if (!cl->slots)
		goto fail;
	for (unsigned i = 0; i < cl->nslots; i++) {
		struct cslot *s = &cl->slots[i];
		s->cl = cl;
		s->tp.in = malloc(IN_CAP);
		s->tp.pt = o->starttls ? malloc(TLS_PUMP_PT_MAX) : NULL;
		s->md = EVP_MD_CTX_new();
		if (!s->tp.in || (o->starttls && !s->tp.pt) || !s->md)
			goto fail;
	}
	return cl;
fail:
	gen_client_destroy(cl);
	return NULL;
}

void gen_client_destroy(struct gen_client *cl)
{
	if (!cl)
		return;
	for (unsigned i = 0; cl->slots && i < cl->nslots; i++) {
		struct cslot *s = &cl->slots[i];
		if (s->tp.tls)
			tls_conn_free(s->tp.tls);
		free(s->tp.in);
		free(s->tp.pt);
		EVP_MD_CTX_free(s->md);
	}
	free(cl->slots);
	free(cl);
}
