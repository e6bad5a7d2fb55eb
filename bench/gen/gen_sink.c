/*
 * gen_sink.c - sluice-gen's sink mode: a smart next hop on the lcore's TCP
 * stack, running the daemon's own SMTP server engine (smtp_server.h) but
 * storing nothing: every body is counted and hashed (gen_msg.h) and its
 * digest logged, so a test can prove each message answered 250 upstream
 * arrived here exactly once, byte for byte.
 *
 * Faults on demand (KumoMTA's smart sink is the model): per domain, a
 * percentage of recipients refused 452 4.3.1 or 550 5.1.1 at RCPT and of
 * messages refused 451 or 554 at the end of data; local parts carrying a
 * marker (tempfail, permfail, datatemp, dataperm) always get theirs; 421
 * storms (new sessions get 421 4.7.0, sessions under way 421 4.3.2);
 * a held greeting; slow reading (at most --read-rate bytes/s); EHLO
 * keywords hidden by rewriting the EHLO reply on its way out; STARTTLS
 * with a self-signed pair.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <rte_mbuf.h>

#include "bench/gen/gen.h"
#include "dataplane/net/tcp.h"
#include "dataplane/smtp/tls.h"
#include "dataplane/smtp/tls_pump.h"

#define IN_CAP       (64 * 1024 + 2048)
#define OB_CAP       (SMTP_OUT_MAX * 2)
#define NS_SEC     1000000000ull

enum { K_FREE = 0, K_OPEN, K_CLOSING };

struct sslot {
	struct gen_sink *sk;
	struct tcp_conn *tcp;
	uint8_t state;
	bool fin_seen, fin_sent, starttls_wait, storm_hit, timed_out;
	bool data_temp, data_perm;	/* the message's fate at the end of data */
	uint64_t t_accept, greet_at, consumed;
	/* Timers are lazy (as the client's): deadline is when the session's
	 * current wait runs out (the last event + the engine's timeout),
	 * timer_at what TCP holds, the earliest of that, the held greeting
	 * and read pacing. A timer that goes off before the deadline times
	 * nothing out. 0: none. */
	uint64_t deadline, timer_at;
	struct tls_pump tp;		/* in: IN_CAP, pt: TLS_PUMP_PT_MAX (heap) */
	/* hidden EHLO keywords: the engine's replies through a filter */
	char ob[OB_CAP];
	uint32_t ob_start, ob_ready, ob_end;	/* [start, ready) may go out */
	char line[1024];
	uint32_t line_len;
	int32_t last_kept;		/* ob offset of the last kept "250-" line, -1 */
	EVP_MD_CTX *md;
	struct gen_digest dig;
	struct smtp_session s;
};

struct gen_sink {
	struct gen_lcore *g;
	struct tcp_listener *lst;
	unsigned nslots;
	struct sslot *slots;
	unsigned next_slot;
	uint64_t t0;
};

static uint64_t now(const struct sslot *k)
{
	return *k->sk->g->now;
}

static bool storming(const struct gen_sink *sk)
{
	const struct gen_opts *o = sk->g->run->o;
	uint64_t every, len;

	if (o->storm_every_s <= 0)
		return false;
	every = (uint64_t)(o->storm_every_s * 1e9);
	len = (uint64_t)(o->storm_len_s * 1e9);
	return (*sk->g->now - sk->t0) % every >= every - len;	/* the end of each period */
}

/* ---- the engine's callbacks ------------------------------------------------------- */

static bool chance(struct sslot *k, double pct)
{
	return pct > 0 && gen_rng_unit(&k->sk->g->rng) * 100.0 < pct;
}

static const struct gen_fail_rule *rule_for(const struct gen_opts *o, const char *domain)
{
	const struct gen_fail_rule *any = NULL;

	for (unsigned i = 0; i < o->nfail; i++) {
		if (!strcasecmp(o->fail[i].domain, domain))
			return &o->fail[i];
		if (!strcmp(o->fail[i].domain, "*"))
			any = &o->fail[i];
	}
	return any;
}

static int on_rcpt(void *user, const struct smtp_rcpt_view *v)
{
	struct sslot *k = user;
	struct gen_lcore *g = k->sk->g;
	const char *at = strrchr(v->addr, '@');
	char local[SMTP_PATH_MAX + 1];
	const struct gen_fail_rule *r;
	size_t n = at ? (size_t)(at - v->addr) : strlen(v->addr);

	if (n >= sizeof(local))
		n = sizeof(local) - 1;
	memcpy(local, v->addr, n);
	local[n] = '\0';
	r = rule_for(g->run->o, at ? at + 1 : "");
	if (strstr(local, "permfail") || (r && chance(k, r->rcpt_perm))) {
		g->st.sink_rcpt_perm++;
		return SMTP_RCPT_REFUSE;
	}
	if (strstr(local, "tempfail") || (r && chance(k, r->rcpt_temp))) {
		g->st.sink_rcpt_temp++;
		return -1;	/* 452 4.3.1 */
	}
	if (strstr(local, "dataperm") || (r && chance(k, r->data_perm)))
		k->data_perm = true;
	else if (strstr(local, "datatemp") || (r && chance(k, r->data_temp)))
		k->data_temp = true;
	return 0;
}

static void on_rcpt_reset(void *user)
{
	struct sslot *k = user;

	k->data_temp = k->data_perm = false;
}

static void on_msg_begin(void *user)
{
	struct sslot *k = user;

	gen_digest_begin(&k->dig, k->md);
}

static int on_body(void *user, const void *data, size_t len)
{
	struct sslot *k = user;

	gen_digest_feed(&k->dig, data, len);
	return 0;
}

static uint64_t on_now(void *user)
{
	struct sslot *k = user;

	return k->sk->g->run->unix0 + now(k) / NS_SEC;
}

/* ---- output, through the EHLO filter when keywords are hidden ------------------------- */

static bool hidden(unsigned caps, const char *kw, size_t n)
{
	static const struct { const char *name; unsigned bit; } t[] = {
		{ "PIPELINING", GEN_CAP_PIPELINING }, { "SIZE", GEN_CAP_SIZE },
		{ "8BITMIME", GEN_CAP_8BITMIME }, { "ENHANCEDSTATUSCODES", GEN_CAP_ENHANCED },
		{ "CHUNKING", GEN_CAP_CHUNKING }, { "DSN", GEN_CAP_DSN },
		{ "SMTPUTF8", GEN_CAP_SMTPUTF8 }, { "STARTTLS", GEN_CAP_STARTTLS },
		{ "ETRN", GEN_CAP_ETRN },
	};
	for (unsigned i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		size_t l = strlen(t[i].name);
		if ((caps & t[i].bit) && n >= l && !strncasecmp(kw, t[i].name, l) &&
		    (n == l || kw[l] == ' '))
			return true;
	}
	return false;
}

/* One complete reply line (CRLF included) into ob, or not. */
static void filter_line(struct sslot *k, const char *l, uint32_t n)
{
	unsigned caps = k->sk->g->run->o->hide_caps;
	bool ehlo_kw = n >= 6 && !memcmp(l, "250", 3) && (l[3] == '-' || l[3] == ' ') &&
		       k->last_kept >= 0;	/* a line after the first of a 250 reply */
	bool final = n >= 4 && l[3] == ' ';

	if (ehlo_kw && hidden(caps, l + 4, n - 6)) {
		if (final) {
			k->ob[k->last_kept + 3] = ' ';	/* the previous line ends it now */
			k->last_kept = -1;
			k->ob_ready = k->ob_end;
		}
		return;
	}
	if (k->ob_end + n > OB_CAP)
		return;		/* cannot happen: ob drains before the engine refills */
	if (n >= 4 && !memcmp(l, "250-", 4))
		k->last_kept = (int32_t)k->ob_end;
	memcpy(k->ob + k->ob_end, l, n);
	k->ob_end += n;
	if (final || n < 4 || l[3] != '-') {
		k->last_kept = -1;
		k->ob_ready = k->ob_end;	/* a whole reply: it may go */
	}
}

/* The engine's pending output into ob, line by line. */
static void filter_output(struct sslot *k)
{
	const char *p;
	size_t n;

	if (k->ob_start == k->ob_end) {
		k->ob_start = k->ob_ready = k->ob_end = 0;
	}
	while ((n = smtp_session_peek_output(&k->s, &p)) > 0) {
		if (k->ob_end + sizeof(k->line) > OB_CAP)
			break;		/* let ob drain first */
		for (size_t i = 0; i < n; i++) {
			if (k->line_len < sizeof(k->line))
				k->line[k->line_len++] = p[i];
			if (p[i] == '\n') {
				filter_line(k, k->line, k->line_len);
				k->line_len = 0;
			}
		}
		smtp_session_consume_output(&k->s, n);
	}
}

/* What may go out now: engine output directly, or the filtered ob. */
static size_t out_peek(void *eng, const char **p)
{
	struct sslot *k = eng;

	if (!k->sk->g->run->o->hide_caps)
		return smtp_session_peek_output(&k->s, p);
	filter_output(k);
	*p = k->ob + k->ob_start;
	return k->ob_ready - k->ob_start;
}

static void out_consume(void *eng, size_t n)
{
	struct sslot *k = eng;

	if (!k->sk->g->run->o->hide_caps)
		smtp_session_consume_output(&k->s, n);
	else
		k->ob_start += (uint32_t)n;
}

static bool output_pending(struct sslot *k)
{
	struct tls_pump_out o = { out_peek, out_consume, k };

	return tls_pump_output_pending(&k->tp, &o);
}

static void drop_input(struct sslot *k)
{
	tls_pump_drop_input(&k->tp, k->tcp);
}

static bool flush_output(struct sslot *k)
{
	struct tls_pump_out o = { out_peek, out_consume, k };
	int r;

	if (!k->tcp || now(k) < k->greet_at)
		return false;	/* the greeting is held */
	r = tls_pump_flush(&k->tp, k->tcp, &o);
	if (r < 0) {
		k->state = K_CLOSING;
		return false;
	}
	return r > 0;
}

static bool tls_input(struct sslot *k)
{
	bool moved = false;
	char info[SMTP_TLS_INFO_MAX];

	while (k->state == K_OPEN && k->tp.tls) {
		switch (tls_pump_input(&k->tp, k->tcp, true, &moved)) {
		case TLS_PUMP_IDLE:
			return moved;
		case TLS_PUMP_UP:
			tls_describe(k->tp.tls, info, sizeof(info));
			k->starttls_wait = false;
			k->sk->g->st.sink_tls++;
			smtp_session_tls_started(&k->s, info);
			continue;
		case TLS_PUMP_HS_FAILED:
		case TLS_PUMP_ENDED:
		case TLS_PUMP_FEED_FAILED:
			k->state = K_CLOSING;
			return true;
		}
	}
	return moved;
}

static void timer_arm(struct sslot *k, uint64_t at)
{
	if (!k->tcp || at == 0 || (k->timer_at && k->timer_at <= at))
		return;
	k->timer_at = at;
	tcp_set_timer(k->tcp, at);
}

/* Input to the engine, no faster than --read-rate. */
static bool feed_engine(struct sslot *k)
{
	const uint8_t *p;
	uint64_t rate = k->sk->g->run->o->read_rate;
	size_t n, avail = tls_pump_readable(&k->tp, &p);

	if (avail == 0 || smtp_session_event(&k->s) != SMTP_EV_NONE)
		return false;
	if (rate) {
		uint64_t allowed = (now(k) - k->t_accept) * rate / NS_SEC + 1;
		if (allowed <= k->consumed) {
			timer_arm(k, now(k) + 10 * 1000000ull);
			return false;
		}
		if (avail > allowed - k->consumed)
			avail = allowed - k->consumed;
	}
	n = smtp_session_input(&k->s, p, avail);
	k->consumed += n;
	tls_pump_consumed(&k->tp, k->tcp, n);
	return n > 0;
}

/* End of data: the outcome the recipients asked for; a 250 logs the digest. */
static void message_done(struct sslot *k)
{
	struct gen_lcore *g = k->sk->g;
	uint8_t d[GEN_SHA_LEN];
	bool marked;

	gen_digest_end(&k->dig, d, &marked);
	if (k->data_perm) {
		g->st.sink_data_perm++;
		smtp_session_queued(&k->s, SMTP_QUEUED_REJECT, NULL);
		return;
	}
	if (k->data_temp) {
		g->st.sink_data_temp++;
		smtp_session_queued(&k->s, SMTP_QUEUED_TEMP, NULL);
		return;
	}
	g->st.sink_msgs++;
	g->st.sink_bytes += smtp_session_message(&k->s)->size;
	if (!marked)
		g->st.sink_unmarked++;
	gen_diglog_add(g, &g->sdig, d);
	smtp_session_queued(&k->s, SMTP_QUEUED_OK, "SINK");
}

static bool handle_event(struct sslot *k)
{
	struct gen_run *run = k->sk->g->run;

	switch (smtp_session_event(&k->s)) {
	case SMTP_EV_MESSAGE:
		message_done(k);
		return true;
	case SMTP_EV_STARTTLS:
		if (k->tp.tls)
			return false;
		if (!k->starttls_wait) {
			k->starttls_wait = true;
			drop_input(k);
		}
		if (output_pending(k))
			return false;
		k->tp.tls = tls_conn_new(run->tls_server);
		if (!k->tp.tls) {
			k->state = K_CLOSING;
			return true;
		}
		drop_input(k);
		k->tp.pt_start = k->tp.pt_end = 0;
		return true;
	case SMTP_EV_CLOSE:
		if (k->state != K_OPEN)
			return false;
		k->state = K_CLOSING;
		return true;
	default:
		return false;
	}
}

static void set_deadline(struct sslot *k)
{
	uint64_t t = smtp_session_timeout_ns(&k->s);

	if (now(k) < k->greet_at)
		timer_arm(k, k->greet_at);
	if (t == 0)
		t = k->sk->g->run->scf.timeout_cmd_ns;
	k->deadline = now(k) + t;
	timer_arm(k, k->deadline);
}

static void pump(struct sslot *k)
{
	bool progress;

	if (!k->tcp)
		return;
	if (k->state == K_OPEN && !k->storm_hit && storming(k->sk)) {
		k->storm_hit = true;
		k->sk->g->st.sink_storm_421++;
		smtp_session_shutdown(&k->s);
	}
	do {
		progress = false;
		if (k->state == K_OPEN) {
			if (k->tp.tls && tls_input(k))
				progress = true;
			if (feed_engine(k))
				progress = true;
			if (handle_event(k))
				progress = true;
		}
		if (flush_output(k))
			progress = true;
	} while (progress && k->tcp);
	if (k->state == K_OPEN && k->fin_seen && k->tp.in_start == k->tp.in_end &&
	    k->tp.pt_start == k->tp.pt_end)
		k->state = K_CLOSING;
	if (k->state == K_CLOSING && !k->fin_sent && !output_pending(k)) {
		tcp_close(k->tcp);
		k->fin_sent = true;
	}
	set_deadline(k);
}

/* ---- TCP ---------------------------------------------------------------------------------- */

static void slot_free(struct sslot *k)
{
	if (k->tp.tls) {
		tls_conn_free(k->tp.tls);
		k->tp.tls = NULL;
	}
	k->tcp = NULL;
	k->state = K_FREE;
}

static void on_data(struct tcp_conn *c, void *user, struct rte_mbuf *m)
{
	struct sslot *k = user;
	uint32_t len;

	if (!m) {
		k->fin_seen = true;
		pump(k);
		return;
	}
	len = rte_pktmbuf_pkt_len(m);
	if (k->state != K_OPEN || (k->starttls_wait && !k->tp.tls)) {
		tcp_recved(c, len);
		rte_pktmbuf_free(m);
		return;
	}
	if (!tls_pump_append(&k->tp, IN_CAP, m)) {
		rte_pktmbuf_free(m);
		tcp_abort(c);
		slot_free(k);
		return;
	}
	rte_pktmbuf_free(m);
	pump(k);
}

static void on_writable(struct tcp_conn *c, void *user)
{
	(void)c;
	pump(user);
}

static void on_closed(struct tcp_conn *c, void *user, enum tcp_close_reason why)
{
	(void)c;
	(void)why;
	slot_free(user);
}

static void on_timer(struct tcp_conn *c, void *user)
{
	struct sslot *k = user;
	uint64_t t = now(k);

	k->timer_at = 0;
	if (k->state == K_CLOSING && k->fin_sent) {
		if (k->timed_out) {
			tcp_abort(c);
			slot_free(k);
			return;
		}
		k->timed_out = true;
		timer_arm(k, t + 30 * NS_SEC);
		return;
	}
	if (k->state == K_OPEN && smtp_session_timeout_ns(&k->s) && t >= k->deadline &&
	    !k->timed_out && k->tp.in_start == k->tp.in_end) {
		/* the wait really ran out: not a timer armed for an earlier
		 * wait, nor the greeting or read pacing (the session's age
		 * says nothing: one older than the timeout may be busy) */
		k->sk->g->st.sink_timeouts++;
		k->timed_out = true;
		smtp_session_timeout(&k->s);
	}
	pump(k);
}

static bool on_accept(void *lctx, struct tcp_conn *c);

static const struct tcp_callbacks sink_cb = {
	.accept = on_accept,
	.data = on_data,
	.writable = on_writable,
	.closed = on_closed,
	.timer = on_timer,
};

static bool on_accept(void *lctx, struct tcp_conn *c)
{
	struct gen_sink *sk = lctx;
	struct gen_lcore *g = sk->g;
	const struct gen_opts *o = g->run->o;
	struct sslot *k = NULL;
	struct tcp_tuple tu;
	struct smtp_client cl;
	struct smtp_session_cb cb = {
		.sink = on_body, .msg_begin = on_msg_begin, .rcpt = on_rcpt,
		.rcpt_reset = on_rcpt_reset, .now = on_now,
	};

	for (unsigned i = 0; i < sk->nslots; i++) {
		unsigned j = (sk->next_slot + i) % sk->nslots;
		if (sk->slots[j].state == K_FREE) {
			k = &sk->slots[j];
			sk->next_slot = j + 1;
			break;
		}
	}
	if (!k) {
		g->st.sink_no_slot++;
		return false;
	}
	tcp_get_tuple(c, &tu);
	memset(&cl, 0, sizeof(cl));
	cl.ip = rte_be_to_cpu_32(tu.raddr.v4);
	k->tcp = c;
	k->state = K_OPEN;
	k->fin_seen = k->fin_sent = k->starttls_wait = k->timed_out = false;
	k->data_temp = k->data_perm = false;
	tls_pump_reset(&k->tp);
	k->ob_start = k->ob_ready = k->ob_end = k->line_len = 0;
	k->last_kept = -1;
	k->timer_at = k->deadline = 0;
	k->consumed = 0;
	k->t_accept = *g->now;
	k->greet_at = k->t_accept + o->greet_delay_ms * 1000000ull;
	cb.user = k;
	tcp_set_user(c, k);
	gen_digest_begin(&k->dig, k->md);
	smtp_session_init(&k->s, &g->run->scf, &g->run->sink_engine_stats[g->worker], &cl, &cb);
	g->st.sink_conns++;
	k->storm_hit = storming(sk);
	if (k->storm_hit) {
		g->st.sink_refused_storm++;
		smtp_session_refuse(&k->s);
	}
	pump(k);
	return true;
}

unsigned gen_sink_poll(struct gen_sink *sk)
{
	(void)sk;
	return 0;	/* everything happens in the TCP callbacks */
}

struct gen_sink *gen_sink_create(struct gen_lcore *g)
{
	const struct gen_opts *o = g->run->o;
	struct gen_sink *sk = calloc(1, sizeof(*sk));

	if (!sk)
		return NULL;
	sk->g = g;
	sk->t0 = *g->now;
	sk->nslots = o->sink_sessions;
	sk->slots = calloc(sk->nslots, sizeof(*sk->slots));
	if (!sk->slots)
		goto fail;
	for (unsigned i = 0; i < sk->nslots; i++) {
		struct sslot *k = &sk->slots[i];
		k->sk = sk;
		k->tp.in = malloc(IN_CAP);
		k->tp.pt = g->run->tls_server ? malloc(TLS_PUMP_PT_MAX) : NULL;
		k->md = EVP_MD_CTX_new();
		if (!k->tp.in || (g->run->tls_server && !k->tp.pt) || !k->md)
			goto fail;
	}
	sk->lst = tcp_listen(g->tcp, rte_cpu_to_be_16(o->sink_port), &sink_cb, sk);
	if (!sk->lst)
		goto fail;
	return sk;
fail:
	gen_sink_destroy(sk);
	return NULL;
}

void gen_sink_destroy(struct gen_sink *sk)
{
	if (!sk)
		return;
	for (unsigned i = 0; sk->slots && i < sk->nslots; i++) {
		if (sk->slots[i].tp.tls)
			tls_conn_free(sk->slots[i].tp.tls);
		free(sk->slots[i].tp.in);
		free(sk->slots[i].tp.pt);
		EVP_MD_CTX_free(sk->slots[i].md);
	}
	free(sk->slots);
	free(sk);
}
