/*
 * delivery.c - outbound SMTP on one worker lcore: jobs from the scheduler,
 * connections on the lcore's TCP stack, the client engine, results back.
 * See delivery.h for the contract with the scheduler.
 *
 * A connection slot (struct dlv_conn) moves through:
 *   FREE     on the free list (or never used: slots [hw, nconns))
 *   CONNECT  tcp_connect issued for a job's hop, waiting for ESTABLISHED
 *   SESSION  TCP is up: the engine talks (greeting, EHLO, STARTTLS, the
 *            job's transaction)
 *   IDLE     between jobs: the engine at SCE_DONE/SCE_READY, no job, on
 *            the idle list (oldest first), a deadline keep_idle_ms away
 * A slot serves one job at a time (dc->job) from CONNECT to its result;
 * moving to the next hop re-opens the same slot. When a slot is done with
 * its TCP connection it closes it (FIN, or RST after a timeout) and lets
 * go at once: the connection's user pointer becomes NULL, the stack
 * finishes the close on its own (the callbacks, seeing no user, drop what
 * still arrives), and the slot is FREE again. So a slot never waits on a
 * peer.
 *
 * Bytes move as in smtp_service.c: received bytes are copied out of the
 * mbufs into the slot's input buffer (as large as the receive window),
 * tcp_recved() only for what the engine (or TLS) consumed; under TLS they
 * are ciphertext, decrypted into `pt`; the engine's output goes to
 * tcp_send, or through tls_write into `co` and then tcp_send. pump() is the
 * one place that moves bytes and reacts to engine events.
 *
 * Why the result ring never overflows (delivery.h "Bounds"): with A jobs
 * held (taken, result not posted; the waiting one included) and I idle
 * connections, at most A results and A + I close events can still be
 * posted without taking another job. dlv_poll takes a job only while the
 * ring's free count is at least 2(A + 1) + I, and every post lowers the
 * free count by one while lowering 2A + I by at least one, so that
 * invariant (free >= 2A + I) holds from one post to the next.
 */
#include "dataplane/smtp/delivery.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <rte_mbuf.h>
#include <rte_ring.h>

#include "common/clock.h"
#include "common/ring.h"
#include "common/log.h"
#include "dataplane/net/tcp.h"
#include "dataplane/smtp/tls.h"
#include "dataplane/smtp/tls_pump.h"

const char *const dlv_stat_names[] = { DLV_STATS(STATS_NAME) };
const unsigned dlv_stat_count = STATS_COUNT(dlv_stat_names);

#define IN_SLACK      2048		/* input buffer = receive window + this */
#define JOB_BURST     32		/* jobs taken per poll at most */
#define KEY_SLOT_BITS 16		/* conn_key = generation << 16 | slot */

enum conn_state { C_FREE = 0, C_CONNECT, C_SESSION, C_IDLE };

struct dlv_conn {
	struct dlv_service *svc;
	struct tcp_conn *tcp;		/* NULL when none */
	uint8_t state;			/* enum conn_state */
	uint16_t index;			/* in svc->conns */
	bool fin_seen;			/* the next hop sent FIN */
	bool peer_gone;			/* it closed or reset (the session's end) */
	bool rst_on_close;		/* close with RST (timeouts, errors) */
	bool starttls_wait;		/* 220 to STARTTLS seen: plaintext dropped */
	uint64_t key;			/* conn_key of this use of the slot */
	uint64_t deadline_ns;		/* 0: none */
	uint64_t timer_at;		/* filed with tcp_set_timer, 0: none */
	const char *why;		/* how TCP failed (static), for the text */

	/* what it was opened for (reuse must match) and who answered */
	enum smtp_client_tls tls_policy;
	int hop_answered;		/* job's hop index that connected, -1: none */
	struct net_addr addr;		/* the hop being tried or connected */
	uint16_t port;
	char dest[DLV_NAME_MAX];
	char tls_name[DLV_NAME_MAX];	/* the job's tls_name override */
	char relay[DLV_RELAY_MAX];	/* the hop being tried or connected */
	char tls_info[DLV_TLS_INFO_MAX];

	/* the job it serves (CONNECT/SESSION); NULL when idle */
	struct dlv_job *job;
	unsigned hop;			/* hop index being tried */
	bool txn;			/* smtp_client_send done for this job */
	bool ready;			/* the engine was ready for this job */
	bool reused;			/* the job started on this idle connection */
	bool retried;			/* a stale reused one was replaced */
	bool body_started;
	bool tls_failed;		/* a handshake failed during this job */
	uint64_t t_start, t_ready, t_send;
	unsigned iov_i;			/* body position: piece and offset */
	size_t iov_off;
	struct smtp_client_msg msg;	/* job->msg with its size */

	struct dlv_conn *idle_prev, *idle_next;	/* the idle list */
	struct dlv_conn *next_free;

	/* TCP <-> engine, in the clear or through TLS (tls_pump.h): in is
	 * the slot's share of svc->inmem, pt of svc->ptmem */
	struct tls_pump tp;

	struct smtp_client_conf conf;	/* the lcore's, with this job's TLS policy */
	struct smtp_client_conn eng;
};

struct dlv_service {
	struct tcp_stack *ts;
	struct dlv_conf conf;
	const uint64_t *clock_ns;
	unsigned worker;
	struct dlv_port port;

	struct dlv_conn *conns;		/* nconns slots, [0, hw) ever used */
	unsigned nconns, hw;
	struct dlv_conn *free;
	size_t conns_len, inmem_len, ptmem_len;
	uint8_t *inmem, *ptmem;
	uint32_t in_cap;

	struct dlv_conn *idle_head, *idle_tail;	/* oldest first */
	unsigned nidle;
	unsigned nopen;			/* slots not FREE */
	unsigned nheld;			/* jobs taken, result not posted */
	struct dlv_job *waiting;	/* waits for a connection slot */
	uint64_t waiting_since;
	uint64_t gen;			/* conn_key generations */

	struct dlv_stats stats;
	struct smtp_client_stats client_stats;
};

static const struct tcp_callbacks dlv_tcp_cb;
static void pump(struct dlv_conn *dc);

static uint64_t now_ns(const struct dlv_service *s)
{
	return *s->clock_ns;
}

/* ---- configuration ------------------------------------------------------- */

void dlv_conf_default(struct dlv_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->max_conns = 256;
	c->max_jobs = 1024;
	c->max_idle = 64;
	smtp_client_conf_default(&c->client);
}

int dlv_conf_check(const struct dlv_conf *c, const char **why)
{
	const char *w = NULL;

	if (c->max_conns == 0 || c->max_conns > DLV_CONNS_LIMIT)
		w = "delivery: max_conns must be 1..65535";
	else if (c->max_jobs == 0 || c->max_jobs > (1u << 20))
		w = "delivery: max_jobs must be 1..1048576";
	else if (c->max_idle > c->max_conns)
		w = "delivery: max_idle must not exceed max_conns";
	else
		smtp_client_conf_check(&c->client, &w);	/* sets w when wrong */
	if (why)
		*why = w;
	return w ? -1 : 0;
}

/* ---- jobs (scheduler side) ------------------------------------------------ */

void dlv_job_init(struct dlv_job *j, uint64_t id)
{
	j->id = id;
	j->conn_key = 0;
	j->dest[0] = '\0';
	j->tls = SCT_MAY;
	j->tls_name[0] = '\0';
	j->keep_idle_ms = 0;
	j->nhops = 0;
	memset(&j->msg, 0, sizeof(j->msg));
	j->msg.sender = "";
	j->msg.rcpt = j->rcpt;
	j->strings_used = 0;
	j->body = NULL;
	j->body_iovcnt = 0;
}

int dlv_job_hop(struct dlv_job *j, rte_be32_t addr, uint16_t port, const char *mx)
{
	struct net_addr a = net_addr_v4(addr);

	if (addr == 0)
		memset(&a, 0, sizeof(a));	/* job_check refuses it */
	return dlv_job_hop_addr(j, &a, port, mx);
}

int dlv_job_hop_addr(struct dlv_job *j, const struct net_addr *addr, uint16_t port,
		     const char *mx)
{
	size_t n = mx ? strlen(mx) : 0;

	if (j->nhops >= DLV_HOPS_MAX || n >= DLV_NAME_MAX)
		return -1;
	j->hop[j->nhops].addr = *addr;
	j->hop[j->nhops].port = port;
	memcpy(j->hop[j->nhops].mx, mx ? mx : "", n + 1);
	j->nhops++;
	return 0;
}

/* Copy s into the job's strings; NULL when it does not fit. */
static const char *job_string(struct dlv_job *j, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p;

	if (n > DLV_STRINGS_MAX - j->strings_used)
		return NULL;
	p = j->strings + j->strings_used;
	memcpy(p, s, n);
	j->strings_used += (uint32_t)n;
	return p;
}

int dlv_job_sender(struct dlv_job *j, const char *sender, const char *envid, uint8_t ret,
		   uint8_t body_flags)
{
	uint32_t mark = j->strings_used;
	const char *s, *e = NULL;

	if (!sender || j->msg.nrcpt > 0)
		return -1;
	j->strings_used = 0;	/* the sender goes first: start over */
	s = job_string(j, sender);
	if (s && envid)
		e = job_string(j, envid);
	if (!s || (envid && !e)) {
		j->strings_used = mark;
		return -1;
	}
	j->msg.sender = s;
	j->msg.envid = e;
	j->msg.ret = ret;
	j->msg.body_flags = body_flags;
	return 0;
}

int dlv_job_xsluice(struct dlv_job *j, const char *value)
{
	const char *v;

	if (!value || !(v = job_string(j, value)))
		return -1;
	j->msg.xsluice = v;
	j->msg.xsluice_required = true;
	return 0;
}

int dlv_job_rcpt(struct dlv_job *j, const char *addr, const char *orcpt, uint8_t notify)
{
	uint32_t mark = j->strings_used;
	const char *a, *o = NULL;

	if (!addr || j->msg.nrcpt >= DLV_RCPT_MAX)
		return -1;
	a = job_string(j, addr);
	if (a && orcpt)
		o = job_string(j, orcpt);
	if (!a || (orcpt && !o)) {
		j->strings_used = mark;
		return -1;
	}
	j->rcpt[j->msg.nrcpt] = (struct smtp_client_rcpt){ a, o, notify };
	j->msg.rcpt = j->rcpt;
	j->msg.nrcpt++;
	return 0;
}

int dlv_job_body(struct dlv_job *j, const struct iovec *iov, unsigned n)
{
	if ((n > 0 && !iov) || n > DLV_IOV_MAX)
		return -1;
	j->body = iov;
	j->body_iovcnt = n;
	return 0;
}

/* ---- the port (scheduler side) ---------------------------------------------- */

int dlv_submit(const struct dlv_port *p, struct dlv_job *j)
{
	return rte_ring_sp_enqueue(p->jobs, j) == 0 ? 0 : -ENOBUFS;
}

unsigned dlv_reap(const struct dlv_port *p, struct dlv_event *ev, unsigned max)
{
	void *e[64];
	unsigned got = 0;

	while (got < max) {
		unsigned want = max - got < 64 ? max - got : 64;
		unsigned n = rte_ring_sc_dequeue_burst(p->results, e, want, NULL);
		for (unsigned i = 0; i < n; i++, got++) {
			uintptr_t v = (uintptr_t)e[i];
			if (v & 1u) {
				ev[got].job = NULL;
				ev[got].closed_key = (uint64_t)v >> 1;
			} else {
				ev[got].job = e[i];
				ev[got].closed_key = 0;
			}
		}
		if (n < want)
			break;
	}
	return got;
}

/* ---- results (lcore side) ------------------------------------------------------- */

static void result_text(struct smtp_client_result *r, int code, const char *status,
			const char *stage, const char *fmt, ...)
{
	va_list ap;

	r->code = code;
	snprintf(r->status, sizeof(r->status), "%s", status);
	r->stage = stage;
	va_start(ap, fmt);
	if (vsnprintf(r->text, sizeof(r->text), fmt, ap) < 0)
		r->text[0] = '\0';
	va_end(ap);
	for (char *t = r->text; *t; t++)	/* printable for logs and DSNs */
		if ((unsigned char)*t < ' ' || (unsigned char)*t >= 0x7f)
			*t = '?';
}

/* Post to the result ring; the invariant in the file comment makes a full
 * ring impossible (counted if it ever happens). */
static void post(struct dlv_service *s, void *entry)
{
	if (rte_ring_sp_enqueue(s->port.results, entry) != 0) {
		s->stats.ring_full++;
		log_debug("delivery: worker %u: result ring full (a bug)", s->worker);
	}
}

static void post_result(struct dlv_service *s, struct dlv_job *job)
{
	char v = job->res.msg.status[0];

	s->nheld--;
	s->stats.results++;
	if (job->res.site_failure)
		s->stats.site_failures++;
	if (v == '2')
		s->stats.msg_sent++;
	else if (v == '5')
		s->stats.msg_bounced++;
	else
		s->stats.msg_deferred++;
	post(s, job);
}

static void post_close(struct dlv_service *s, uint64_t key)
{
	s->stats.close_events++;
	post(s, (void *)(uintptr_t)(key << 1 | 1u));
}

static void result_reset(struct dlv_result *r)
{
	r->local = r->site_failure = r->tls_failed = r->tls = r->reused = r->peer_dsn = false;
	r->hop = -1;
	r->conn_messages = 0;
	r->conn_key = 0;
	r->t_conn_ns = r->t_xmit_ns = 0;
	snprintf(r->relay, sizeof(r->relay), "none");
	r->tls_info[0] = '\0';
	result_text(&r->msg, 0, "4.0.0", NULL, "no result");
}

/* Every recipient gets the message-level result. */
static void result_all(struct dlv_job *job)
{
	for (unsigned i = 0; i < job->msg.nrcpt && i < DLV_RCPT_MAX; i++)
		job->res.rcpt[i] = job->res.msg;
}

/* The job was not tried: a local reason, 4.x.x for every recipient. */
static void fail_local(struct dlv_service *s, struct dlv_job *job, const char *status,
		       const char *fmt, ...)
{
	va_list ap;
	char text[SMTP_CLIENT_TEXT_MAX];

	va_start(ap, fmt);
	if (vsnprintf(text, sizeof(text), fmt, ap) < 0)
		text[0] = '\0';
	va_end(ap);
	job->res.local = true;
	result_text(&job->res.msg, 0, status, NULL, "%s", text);
	result_all(job);
	log_debug("delivery: job %llu not tried: %s %s", (unsigned long long)job->id, status, text);
	post_result(s, job);
}

/* Distrust the job: every bound and pointer the lcore relies on. NULL when
 * fine, else why not. */
static const char *job_check(const struct dlv_service *s, const struct dlv_job *j)
{
	if (j->nhops == 0 || j->nhops > DLV_HOPS_MAX)
		return "no next hop, or too many";
	for (unsigned i = 0; i < j->nhops; i++) {
		if (net_addr_is_zero(&j->hop[i].addr) || j->hop[i].port == 0 ||
		    (j->hop[i].addr.family != NET_AF_INET && j->hop[i].addr.family != NET_AF_INET6))
			return "a next hop without address or port";
		if (!memchr(j->hop[i].mx, '\0', DLV_NAME_MAX))
			return "a next hop's name is not terminated";
	}
	if (!memchr(j->dest, '\0', DLV_NAME_MAX) || !memchr(j->tls_name, '\0', DLV_NAME_MAX))
		return "dest or tls_name is not terminated";
	if ((unsigned)j->tls > SCT_VERIFY)
		return "unknown TLS policy";
	if (j->msg.nrcpt == 0 || j->msg.nrcpt > DLV_RCPT_MAX || j->msg.rcpt != j->rcpt ||
	    !j->msg.sender)
		return "no recipient, too many, or no sender";
	for (unsigned i = 0; i < j->msg.nrcpt; i++)
		if (!j->rcpt[i].addr)
			return "a recipient without an address";
	if (j->body_iovcnt > DLV_IOV_MAX || (j->body_iovcnt && !j->body))
		return "bad body pieces";
	(void)s;
	return NULL;
}

/* ---- connection slots ------------------------------------------------------------- */

/* A free slot (touched for the first time if never used), or NULL. */
static struct dlv_conn *slot_take(struct dlv_service *s)
{
	struct dlv_conn *dc = s->free;

	if (dc) {
		s->free = dc->next_free;
	} else {
		if (s->hw == s->nconns)
			return NULL;
		dc = &s->conns[s->hw];
		dc->svc = s;
		dc->index = (uint16_t)s->hw;
		dc->tp.in = s->inmem + (size_t)s->hw * s->in_cap;
		dc->tp.pt = s->ptmem + (size_t)s->hw * TLS_PUMP_PT_MAX;
		s->hw++;
	}
	s->nopen++;
	return dc;
}

static void slot_free(struct dlv_conn *dc)
{
	struct dlv_service *s = dc->svc;

	dc->state = C_FREE;
	dc->job = NULL;
	dc->key = 0;
	dc->next_free = s->free;
	s->free = dc;
	s->nopen--;
}

static void idle_unlink(struct dlv_conn *dc)
{
	struct dlv_service *s = dc->svc;

	if (dc->idle_prev)
		dc->idle_prev->idle_next = dc->idle_next;
	else
		s->idle_head = dc->idle_next;
	if (dc->idle_next)
		dc->idle_next->idle_prev = dc->idle_prev;
	else
		s->idle_tail = dc->idle_prev;
	dc->idle_prev = dc->idle_next = NULL;
	s->nidle--;
}

static void idle_append(struct dlv_conn *dc)
{
	struct dlv_service *s = dc->svc;

	dc->idle_next = NULL;
	dc->idle_prev = s->idle_tail;
	if (s->idle_tail)
		s->idle_tail->idle_next = dc;
	else
		s->idle_head = dc;
	s->idle_tail = dc;
	s->nidle++;
}

/* ---- moving bytes ------------------------------------------------------------------ */

static bool output_pending(struct dlv_conn *dc)
{
	struct tls_pump_out o = { smtp_client_peek_output_of, smtp_client_consume_output_of,
				  &dc->eng };

	return tls_pump_output_pending(&dc->tp, &o);
}

static bool input_empty(const struct dlv_conn *dc)
{
	return tls_pump_input_empty(&dc->tp);
}

/* Did the next hop say anything (to the engine) we have not read? Under
 * TLS, ciphertext alone may be a session ticket or part of a record. */
static bool spoke(const struct dlv_conn *dc)
{
	const uint8_t *p;

	return tls_pump_readable(&dc->tp, &p) > 0;
}

/* Plaintext after the next hop's "220" to STARTTLS is dropped: it cannot
 * be told from an attacker's (RFC 3207 5, CVE-2011-0411's mirror image). */
static void drop_input(struct dlv_conn *dc)
{
	tls_pump_drop_input(&dc->tp, dc->tcp);
}

/* Engine output out: plaintext to TCP, or through TLS. True if anything
 * moved. */
static bool flush_output(struct dlv_conn *dc)
{
	struct tls_pump_out o = { smtp_client_peek_output_of, smtp_client_consume_output_of,
				  &dc->eng };
	int r = tls_pump_flush(&dc->tp, dc->tcp, &o);

	if (r < 0) {
		log_debug("delivery: TLS write to %s failed: %s", dc->relay,
			  tls_error(dc->tp.tls));
		dc->rst_on_close = true;
		smtp_client_lost(&dc->eng, "TLS write failed");
		return false;
	}
	return r > 0;
}

/* The TLS handshake failed: the engine fails the session (4.7.5). */
static void tls_fail(struct dlv_conn *dc, const char *why)
{
	dc->svc->stats.tls_failures++;
	dc->tls_failed = true;
	dc->rst_on_close = false;	/* let the alert go out */
	log_debug("delivery: TLS handshake with %s failed: %s", dc->relay, why);
	smtp_client_tls_failed(&dc->eng, why);
}

static void tls_done(struct dlv_conn *dc)
{
	char desc[128], ver[120];

	tls_describe(dc->tp.tls, desc, sizeof(desc));
	tls_verify_result(dc->tp.tls, ver, sizeof(ver));
	snprintf(dc->tls_info, sizeof(dc->tls_info), "%s, peer: %s", desc, ver);
	dc->tp.up = true;
	dc->starttls_wait = false;
	dc->svc->stats.tls_handshakes++;
	smtp_client_tls_started(&dc->eng);
}

/* Under TLS: ciphertext from the next hop through OpenSSL to the engine's
 * input, the handshake first once the next hop said 220 to STARTTLS. True
 * if anything moved. */
static bool tls_input(struct dlv_conn *dc)
{
	bool moved = false;

	while (dc->tp.tls && dc->tcp && !(dc->tp.up && dc->fin_seen)) {
		bool hs = !dc->tp.up && smtp_client_event(&dc->eng) == SCE_STARTTLS;
		char why[160];

		switch (tls_pump_input(&dc->tp, dc->tcp, hs, &moved)) {
		case TLS_PUMP_IDLE:
			return moved;
		case TLS_PUMP_UP:
			tls_done(dc);
			continue;
		case TLS_PUMP_HS_FAILED:
			/* verify: the certificate's reason says it best, if
			 * there was a certificate to judge */
			if (dc->tls_policy != SCT_VERIFY ||
			    tls_verify_result(dc->tp.tls, why, sizeof(why)) == 1 ||
			    strcmp(why, "no peer certificate") == 0)
				snprintf(why, sizeof(why), "%s", tls_error(dc->tp.tls));
			tls_fail(dc, why);
			return true;
		case TLS_PUMP_ENDED:
			/* close_notify or a bad record: nothing more will come */
			log_debug("delivery: TLS session with %s ended: %s", dc->relay,
				  tls_error(dc->tp.tls));
			dc->fin_seen = true;
			return true;
		case TLS_PUMP_FEED_FAILED:
			dc->rst_on_close = true;
			smtp_client_lost(&dc->eng, "TLS input failed");
			return true;
		}
	}
	return moved;
}

/* Input to the engine. True if it consumed anything. */
static bool feed_engine(struct dlv_conn *dc)
{
	const uint8_t *p;
	size_t avail = tls_pump_readable(&dc->tp, &p), n;

	if (avail == 0 || dc->state == C_IDLE)
		return false;
	n = smtp_client_input(&dc->eng, p, avail);
	tls_pump_consumed(&dc->tp, dc->tcp, n);
	return n > 0;
}

/* ---- deadlines ------------------------------------------------------------------------ */

/* File the slot's timer for `at` unless one is filed for earlier. */
static void timer_arm(struct dlv_conn *dc, uint64_t at)
{
	if (!dc->tcp || at == 0 || (dc->timer_at != 0 && dc->timer_at <= at))
		return;
	dc->timer_at = at;
	tcp_set_timer(dc->tcp, at);
}

static void set_deadline(struct dlv_conn *dc)
{
	struct dlv_service *s = dc->svc;
	uint64_t t;

	if (dc->state == C_IDLE)
		return;		/* idle_until is its deadline (go_idle) */
	t = smtp_client_timeout_ns(&dc->eng);
	if (t == 0)		/* a job between steps: never without a bound */
		t = s->conf.client.t_block_ns;
	/* A later deadline leaves the filed timer alone: when it fires early,
	 * on_timer files it again for the deadline then in force. */
	dc->deadline_ns = now_ns(s) + t;
	timer_arm(dc, dc->deadline_ns);
}

/* ---- connections ------------------------------------------------------------------------- */

/* "mx.example.net[192.0.2.1]:25", "mx.example.net[2001:db8::1]:25" (the
 * address alone when there is no name), as Postfix's relay= shows them. */
static void relay_format(char *out, size_t cap, const struct dlv_hop *h)
{
	char ip[NET_ADDR_STRLEN];

	net_addr_str(&h->addr, ip, sizeof(ip));
	snprintf(out, cap, "%s[%s]:%u", h->mx[0] ? h->mx : ip, ip, h->port);
}

/* Let the TCP connection go: close it (FIN after what is queued, or RST),
 * and leave it to the stack with no user. The slot keeps its state. */
static void conn_drop_tcp(struct dlv_conn *dc)
{
	if (dc->tcp) {
		struct tcp_conn *c = dc->tcp;
		if (!dc->rst_on_close)
			flush_output(dc);
		dc->tcp = NULL;
		tcp_set_timer(c, 0);
		tcp_set_user(c, NULL);
		if (dc->rst_on_close || tcp_get_state(c) == TCP_SYN_SENT)
			tcp_abort(c);
		else
			tcp_close(c);
	}
	if (dc->tp.tls) {
		tls_conn_free(dc->tp.tls);
		dc->tp.tls = NULL;
	}
	dc->deadline_ns = dc->timer_at = 0;
}

/* Open the slot's connection to hop h of its job: a fresh engine, a new
 * conn_key. 0, or -1 when the TCP stack has no slot or source port. */
static int conn_open(struct dlv_conn *dc, unsigned h)
{
	struct dlv_service *s = dc->svc;
	struct dlv_job *job = dc->job;
	const struct dlv_hop *hop = &job->hop[h];

	dc->hop = h;
	dc->state = C_CONNECT;
	dc->fin_seen = dc->peer_gone = dc->rst_on_close = false;
	dc->starttls_wait = false;
	dc->why = NULL;
	dc->tp.tls = NULL;
	tls_pump_reset(&dc->tp);
	dc->deadline_ns = dc->timer_at = 0;
	dc->tls_info[0] = '\0';
	dc->txn = dc->ready = dc->body_started = false;
	dc->hop_answered = -1;
	dc->tls_policy = job->tls;
	snprintf(dc->dest, sizeof(dc->dest), "%s", job->dest);
	snprintf(dc->tls_name, sizeof(dc->tls_name), "%s", job->tls_name);
	relay_format(dc->relay, sizeof(dc->relay), hop);
	dc->addr = hop->addr;
	dc->port = hop->port;
	dc->conf = s->conf.client;
	dc->conf.tls = job->tls;
	if (dc->conf.tls == SCT_MAY && !s->conf.tls)
		dc->conf.tls = SCT_NONE;	/* no context: opportunistic means plaintext */
	dc->key = ++s->gen << KEY_SLOT_BITS | dc->index;
	smtp_client_init(&dc->eng, &dc->conf, &s->client_stats);
	s->stats.connects++;
	dc->tcp = tcp_connect_addr(s->ts, &hop->addr, rte_cpu_to_be_16(hop->port), &dlv_tcp_cb,
				   dc);
	if (!dc->tcp)
		return -1;
	set_deadline(dc);
	return 0;
}

/* Give the job a slot and start it there (a new connection to hop 0). */
static void job_bind(struct dlv_conn *dc, struct dlv_job *job, uint64_t t_start)
{
	struct dlv_service *s = dc->svc;

	dc->job = job;
	dc->t_start = t_start;
	dc->reused = dc->retried = dc->tls_failed = false;
	if (conn_open(dc, 0) < 0) {
		s->stats.jobs_no_tcp++;
		dc->job = NULL;
		slot_free(dc);
		fail_local(s, job, "4.3.2", "no TCP connection slot or source port on this lcore");
	}
}

/* Close an idle connection (QUIT, then FIN) and report it. */
static void idle_close(struct dlv_conn *dc)
{
	struct dlv_service *s = dc->svc;
	uint64_t key = dc->key;

	idle_unlink(dc);
	if (dc->tcp && smtp_client_quit(&dc->eng) == 0)
		s->stats.quits++;
	conn_drop_tcp(dc);
	slot_free(dc);
	post_close(s, key);
}

/* A slot for a new connection: a free one, else the oldest idle one's. */
static struct dlv_conn *slot_for_job(struct dlv_service *s)
{
	struct dlv_conn *dc = slot_take(s);

	if (dc || !s->idle_head)
		return dc;
	s->stats.idle_evicted++;
	idle_close(s->idle_head);
	return slot_take(s);
}

/* Can this idle connection carry the job? */
static bool reusable(const struct dlv_conn *dc, const struct dlv_job *job)
{
	return dc->state == C_IDLE && dc->tcp && !dc->fin_seen && !spoke(dc) &&
	       !smtp_client_session_result(&dc->eng) && dc->tls_policy == job->tls &&
	       strcmp(dc->dest, job->dest) == 0 && strcmp(dc->tls_name, job->tls_name) == 0;
}

static struct dlv_conn *idle_find(struct dlv_service *s, uint64_t key)
{
	unsigned i = (unsigned)(key & ((1u << KEY_SLOT_BITS) - 1));

	if (i >= s->hw || s->conns[i].key != key || s->conns[i].state != C_IDLE)
		return NULL;
	return &s->conns[i];
}

/* A job taken from the ring. False when it must wait for a slot. */
static bool job_start(struct dlv_service *s, struct dlv_job *job, uint64_t t_start)
{
	const char *why = job_check(s, job);
	struct dlv_conn *dc;

	result_reset(&job->res);
	if (why) {
		s->stats.jobs_bad++;
		fail_local(s, job, "4.3.5", "bad delivery job: %s", why);
		return true;
	}
	if (job->tls >= SCT_ENCRYPT && !s->conf.tls) {
		s->stats.jobs_no_tls++;
		fail_local(s, job, "4.7.5", "TLS is required, but no TLS client context is set up");
		return true;
	}
	if (job->conn_key) {
		dc = idle_find(s, job->conn_key);
		if (dc && reusable(dc, job)) {
			s->stats.reuse++;
			idle_unlink(dc);
			dc->state = C_SESSION;
			dc->job = job;
			dc->t_start = t_start;
			dc->reused = true;
			dc->retried = dc->tls_failed = false;
			dc->txn = dc->body_started = false;
			dc->ready = true;
			dc->deadline_ns = 0;
			pump(dc);
			return true;
		}
		s->stats.reuse_missed++;
		if (dc)
			idle_close(dc);		/* it cannot serve: nobody will ask again */
	}
	dc = slot_for_job(s);
	if (!dc)
		return false;
	job_bind(dc, job, t_start);
	return true;
}

/* ---- the job's end --------------------------------------------------------------------- */

static void result_common(struct dlv_conn *dc)
{
	struct dlv_job *job = dc->job;
	struct dlv_result *r = &job->res;
	uint64_t now = now_ns(dc->svc);

	r->reused = dc->reused;
	r->tls_failed = r->tls_failed || dc->tls_failed;
	r->tls = smtp_client_tls_active(&dc->eng) && dc->tp.up;
	if (r->tls)
		snprintf(r->tls_info, sizeof(r->tls_info), "%s", dc->tls_info);
	r->peer_dsn = smtp_client_caps(&dc->eng)->dsn;
	r->conn_messages = smtp_client_messages(&dc->eng);
	if (dc->hop_answered >= 0) {
		r->hop = dc->hop_answered;
		snprintf(r->relay, sizeof(r->relay), "%s", dc->relay);
	}
	if (dc->reused) {	/* opened for another job: its place in this one's list */
		r->hop = -1;
		for (unsigned i = 0; i < job->nhops && r->hop < 0; i++)
			if (net_addr_eq(&job->hop[i].addr, &dc->addr) && job->hop[i].port == dc->port)
				r->hop = (int)i;
	}
	if (dc->reused)
		r->t_conn_ns = 0;
	else
		r->t_conn_ns = (dc->ready ? dc->t_ready : now) - dc->t_start;
	r->t_xmit_ns = dc->txn ? now - dc->t_send : 0;
}

/* The transaction is over and the session goes on: result, then idle or QUIT. */
static void job_done(struct dlv_conn *dc)
{
	struct dlv_service *s = dc->svc;
	struct dlv_job *job = dc->job;

	result_common(dc);
	job->res.site_failure = false;
	dc->job = NULL;
	if (job->keep_idle_ms && s->conf.max_idle && dc->tcp && !dc->fin_seen && !spoke(dc)) {
		if (s->nidle >= s->conf.max_idle) {
			s->stats.idle_evicted++;
			idle_close(s->idle_head);
		}
		dc->state = C_IDLE;
		idle_append(dc);
		s->stats.idle_kept++;
		dc->deadline_ns = now_ns(s) + (uint64_t)job->keep_idle_ms * NS_PER_MS;
		timer_arm(dc, dc->deadline_ns);
		job->res.conn_key = dc->key;
	} else {
		if (dc->tcp && smtp_client_quit(&dc->eng) == 0)
			s->stats.quits++;
		conn_drop_tcp(dc);
		slot_free(dc);
	}
	post_result(s, job);
}

/* Connect-stage failures name the hop, as Postfix's "connect to mx[ip]:25:
 * Connection refused". */
static void connect_text(struct dlv_conn *dc, struct smtp_client_result *r)
{
	char status[sizeof(r->status)];

	if (!r->stage || strcmp(r->stage, "connect") != 0)
		return;
	memcpy(status, r->status, sizeof(status));	/* result_text writes r->status */
	result_text(r, r->code, status, r->stage, "connect to %s: %s", dc->relay,
		    dc->why ? dc->why : "connection timed out");
}

/* The session ended (SCE_CLOSE). Another hop, a fresh connection, or the
 * job's result. */
static void session_over(struct dlv_conn *dc)
{
	struct dlv_service *s = dc->svc;
	struct dlv_job *job = dc->job;
	const struct smtp_client_result *sr = smtp_client_session_result(&dc->eng);
	struct smtp_client_result why;
	bool site = smtp_client_site_failure(&dc->eng);

	if (dc->state == C_IDLE) {	/* the next hop went away while idle */
		uint64_t key = dc->key;
		s->stats.idle_peer_closed++;
		idle_unlink(dc);
		conn_drop_tcp(dc);
		slot_free(dc);
		post_close(s, key);
		return;
	}
	if (!job) {
		conn_drop_tcp(dc);
		slot_free(dc);
		return;
	}
	if (sr)
		why = *sr;
	else
		result_text(&why, 0, "4.4.2", NULL, "lost connection with %s", dc->relay);
	connect_text(dc, &why);
	conn_drop_tcp(dc);

	/* A reused connection found dead before any of the body went: once,
	 * a new one (nothing was committed at the next hop). */
	if (dc->reused && !dc->retried && !dc->body_started &&
	    (dc->peer_gone || why.code == 421)) {
		s->stats.reuse_retries++;
		dc->reused = false;
		dc->retried = true;
		dc->t_start = now_ns(s);
		if (conn_open(dc, 0) == 0)
			return;
		s->stats.jobs_no_tcp++;
		dc->job = NULL;
		slot_free(dc);
		fail_local(s, job, "4.3.2", "no TCP connection slot or source port on this lcore");
		return;
	}
	/* A site failure before the transaction: the next hop, if any. */
	if (site && !dc->txn && dc->hop + 1 < job->nhops &&
	    !(dc->tls_failed && dc->tls_policy == SCT_MAY)) {
		s->stats.hop_failovers++;
		log_debug("delivery: job %llu: %s: %s %s; next hop", (unsigned long long)job->id,
			  dc->relay, why.status, why.text);
		if (dc->hop_answered >= 0) {	/* remember who answered, for relay= */
			job->res.hop = dc->hop_answered;
			snprintf(job->res.relay, sizeof(job->res.relay), "%s", dc->relay);
		}
		if (conn_open(dc, dc->hop + 1) == 0)
			return;
		s->stats.jobs_no_tcp++;
		dc->job = NULL;
		slot_free(dc);
		fail_local(s, job, "4.3.2", "no TCP connection slot or source port on this lcore");
		return;
	}
	result_common(dc);
	job->res.site_failure = site;
	if (!dc->txn) {		/* the engine never had the results: fill them */
		job->res.msg = why;
		result_all(job);
	}
	dc->job = NULL;
	slot_free(dc);
	post_result(s, job);
}

/* ---- the pump ------------------------------------------------------------------------------ */

enum { EV_IDLE = 0, EV_MOVED, EV_GONE };

/* At SCE_BODY: feed the job's body while the engine takes it. */
static bool feed_body(struct dlv_conn *dc)
{
	const struct dlv_job *job = dc->job;
	bool moved = false;

	dc->body_started = true;
	while (smtp_client_event(&dc->eng) == SCE_BODY) {
		const uint8_t *p = NULL;
		size_t len = 0, took;
		bool last;

		while (dc->iov_i < job->body_iovcnt && dc->iov_off >= job->body[dc->iov_i].iov_len) {
			dc->iov_i++;
			dc->iov_off = 0;
		}
		if (dc->iov_i < job->body_iovcnt) {
			p = (const uint8_t *)job->body[dc->iov_i].iov_base + dc->iov_off;
			len = job->body[dc->iov_i].iov_len - dc->iov_off;
		}
		last = dc->iov_i + 1 >= job->body_iovcnt;
		took = smtp_client_body(&dc->eng, p, len, last);
		if (took > 0) {
			dc->iov_off += took;
			dc->svc->stats.body_bytes += took;
			moved = true;
			continue;
		}
		/* nothing taken: the output buffer is full; make room */
		if (!flush_output(dc))
			break;	/* TCP is full too: writable() brings us back */
		moved = true;
	}
	return moved;
}

/* At SCE_STARTTLS: once our output is out, a TLS client session. */
static int start_tls(struct dlv_conn *dc)
{
	struct dlv_service *s = dc->svc;
	const char *name;

	if (dc->tp.tls)
		return EV_IDLE;	/* the handshake is under way: tls_input drives it */
	if (!dc->starttls_wait) {
		dc->starttls_wait = true;
		drop_input(dc);
	}
	if (output_pending(dc))
		return EV_IDLE;
	name = dc->tls_name[0] ? dc->tls_name : dc->job ? dc->job->hop[dc->hop].mx : "";
	dc->tp.tls = tls_conn_new(s->conf.tls);
	if (!dc->tp.tls || tls_conn_client_setup(dc->tp.tls, name, dc->tls_policy == SCT_VERIFY) < 0) {
		if (dc->tp.tls) {
			tls_conn_free(dc->tp.tls);
			dc->tp.tls = NULL;
		}
		tls_fail(dc, "cannot set up a TLS session");
		return EV_MOVED;
	}
	drop_input(dc);
	dc->tp.pt_start = dc->tp.pt_end = 0;
	return EV_MOVED;
}

static void start_txn(struct dlv_conn *dc)
{
	struct dlv_job *job = dc->job;
	uint64_t size = 0;

	for (unsigned i = 0; i < job->body_iovcnt; i++)
		size += job->body[i].iov_len;
	dc->msg = job->msg;
	dc->msg.size = size;
	dc->iov_i = 0;
	dc->iov_off = 0;
	dc->txn = true;
	dc->t_send = now_ns(dc->svc);
	if (!dc->ready) {
		dc->ready = true;
		dc->t_ready = dc->t_send;
	}
	/* checked by job_check, so it cannot refuse */
	smtp_client_send(&dc->eng, &dc->msg, &job->res.msg, job->res.rcpt);
}

/* React to the engine's pending event. */
static int handle_event(struct dlv_conn *dc)
{
	enum smtp_client_event ev = smtp_client_event(&dc->eng);

	switch (ev) {
	case SCE_READY:
	case SCE_DONE:
		if (!dc->job)
			return EV_IDLE;
		if (!dc->txn) {
			start_txn(dc);
			return EV_MOVED;
		}
		if (ev == SCE_DONE) {
			job_done(dc);
			return dc->state == C_IDLE ? EV_IDLE : EV_GONE;
		}
		return EV_IDLE;
	case SCE_STARTTLS:
		return start_tls(dc);
	case SCE_BODY:
		return feed_body(dc) ? EV_MOVED : EV_IDLE;
	case SCE_CLOSE:
		session_over(dc);
		return EV_GONE;
	default:
		return EV_IDLE;
	}
}

static void pump(struct dlv_conn *dc)
{
	bool moved = false, progress;

	do {
		int ev;
		progress = false;
		if (dc->tp.tls && tls_input(dc))
			progress = moved = true;
		if (feed_engine(dc))
			progress = moved = true;
		/* the next hop closed and every byte it sent is read: the
		 * session is lost unless it already ended */
		if (dc->fin_seen && input_empty(dc) && dc->state != C_IDLE &&
		    smtp_client_event(&dc->eng) != SCE_CLOSE &&
		    smtp_client_event(&dc->eng) != SCE_DONE) {
			dc->peer_gone = true;
			dc->why = "connection closed by the next hop";
			smtp_client_lost(&dc->eng, dc->why);
		}
		ev = handle_event(dc);
		if (ev == EV_GONE)
			return;		/* the slot is someone else's now */
		if (ev == EV_MOVED)
			progress = moved = true;
		if (flush_output(dc))
			progress = moved = true;
	} while (progress);
	if (moved || dc->deadline_ns == 0)
		set_deadline(dc);
}

/* ---- TCP callbacks ------------------------------------------------------------------------ */

/*
 * A connection the slot let go (conn_drop_tcp) keeps these callbacks with a
 * NULL user until the stack is done with it: what still arrives (the 221
 * to our QUIT) is dropped, the rest is ignored.
 */
static void on_connected(struct tcp_conn *c, void *user)
{
	struct dlv_conn *dc = user;

	(void)c;
	if (!dc)
		return;
	dc->svc->stats.connected++;
	dc->state = C_SESSION;
	dc->hop_answered = (int)dc->hop;
	smtp_client_connected(&dc->eng);
	dc->deadline_ns = 0;
	pump(dc);
}

static void on_data(struct tcp_conn *c, void *user, struct rte_mbuf *m)
{
	struct dlv_conn *dc = user;
	uint32_t len;

	if (!dc) {
		if (m) {
			tcp_recved(c, rte_pktmbuf_pkt_len(m));
			rte_pktmbuf_free(m);
		}
		return;
	}
	if (!m) {
		dc->fin_seen = true;
		if (dc->state == C_IDLE) {
			dc->svc->stats.idle_peer_closed++;
			idle_close(dc);
			return;
		}
		pump(dc);
		return;
	}
	len = rte_pktmbuf_pkt_len(m);
	if (dc->state == C_IDLE && !dc->tp.tls) {
		/* nothing is asked while idle: a "421 timeout" before it closes */
		tcp_recved(c, len);
		rte_pktmbuf_free(m);
		dc->svc->stats.idle_peer_closed++;
		idle_close(dc);
		return;
	}
	if (dc->starttls_wait && !dc->tp.tls) {
		tcp_recved(c, len);	/* plaintext after the 220: dropped */
		rte_pktmbuf_free(m);
		return;
	}
	if (!tls_pump_append(&dc->tp, dc->svc->in_cap, m)) {
		/* more than the window we offered: not a TCP we can trust */
		dc->svc->stats.rcvbuf_overflow++;
		rte_pktmbuf_free(m);
		dc->rst_on_close = true;
		dc->peer_gone = true;
		dc->why = "the next hop sent past the receive window";
		smtp_client_lost(&dc->eng, dc->why);
		pump(dc);
		return;
	}
	rte_pktmbuf_free(m);
	if (dc->state == C_IDLE) {
		/* Under TLS records may come unasked (TLS 1.3 session tickets):
		 * only plaintext, or the end of the session, means it spoke. */
		tls_input(dc);
		if (spoke(dc) || dc->fin_seen) {
			dc->svc->stats.idle_peer_closed++;
			idle_close(dc);
		}
		return;
	}
	pump(dc);
}

static void on_writable(struct tcp_conn *c, void *user)
{
	struct dlv_conn *dc = user;

	(void)c;
	if (dc && dc->state != C_IDLE)
		pump(dc);
}

static const char *close_why(enum tcp_close_reason why)
{
	switch (why) {
	case TCP_CLOSE_REFUSED: return "connection refused";
	case TCP_CLOSE_TIMEOUT: return "connection timed out";
	case TCP_CLOSE_RESET: return "connection reset by the next hop";
	case TCP_CLOSE_KEEPALIVE: return "keepalive timed out";
	case TCP_CLOSE_NOMEM: return "out of buffers";
	default: return "connection closed by the next hop";
	}
}

static void on_closed(struct tcp_conn *c, void *user, enum tcp_close_reason why)
{
	struct dlv_conn *dc = user;
	struct dlv_service *s;

	(void)c;
	if (!dc)
		return;
	s = dc->svc;
	dc->tcp = NULL;		/* invalid once we return */
	dc->timer_at = 0;
	if (dc->state == C_IDLE) {
		uint64_t key = dc->key;
		s->stats.idle_peer_closed++;
		idle_unlink(dc);
		conn_drop_tcp(dc);
		slot_free(dc);
		post_close(s, key);
		return;
	}
	if (why == TCP_CLOSE_REFUSED)
		s->stats.connect_refused++;
	else
		s->stats.lost++;
	dc->peer_gone = true;
	dc->why = close_why(why);
	drop_input(dc);
	dc->tp.pt_start = dc->tp.pt_end = 0;
	smtp_client_lost(&dc->eng, dc->why);
	pump(dc);
}

/* The slot's deadline on the TCP timer wheel. */
static void on_timer(struct tcp_conn *c, void *user)
{
	struct dlv_conn *dc = user;
	struct dlv_service *s;
	uint64_t now;

	(void)c;
	if (!dc)
		return;
	s = dc->svc;
	now = now_ns(s);
	dc->timer_at = 0;
	if (dc->state == C_FREE || dc->deadline_ns == 0)
		return;
	if (now < dc->deadline_ns) {
		timer_arm(dc, dc->deadline_ns);	/* pushed on since it was filed */
		return;
	}
	if (dc->state == C_IDLE) {
		s->stats.idle_expired++;
		idle_close(dc);
		return;
	}
	s->stats.timeouts++;
	if (dc->state == C_CONNECT) {
		s->stats.connect_timeouts++;
		dc->why = "connection timed out";
	}
	dc->rst_on_close = true;
	dc->deadline_ns = 0;
	smtp_client_timeout(&dc->eng);
	pump(dc);
}

static const struct tcp_callbacks dlv_tcp_cb = {
	.connected = on_connected,
	.data = on_data,
	.writable = on_writable,
	.closed = on_closed,
	.timer = on_timer,
};

/* ---- the service ---------------------------------------------------------------------------- */


static size_t page_round(size_t n)
{
	return (n + 4095) & ~(size_t)4095;
}

static void *big_alloc(size_t len)
{
	/* untouched pages cost nothing: only slots used become resident */
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		       -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

struct dlv_service *dlv_create(struct tcp_stack *ts, const struct dlv_conf *conf,
			       uint32_t rcvbuf, unsigned worker, const uint64_t *clock_ns)
{
	struct dlv_service *s;
	const char *why;
	unsigned nres;

	if (dlv_conf_check(conf, &why) < 0) {
		log_err("%s", why);
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->ts = ts;
	s->conf = *conf;
	s->clock_ns = clock_ns;
	s->worker = worker;
	s->nconns = conf->max_conns;
	s->in_cap = rcvbuf + IN_SLACK;
	s->conns_len = page_round((size_t)s->nconns * sizeof(struct dlv_conn));
	s->inmem_len = page_round((size_t)s->nconns * s->in_cap);
	s->ptmem_len = page_round((size_t)s->nconns * TLS_PUMP_PT_MAX);
	s->conns = big_alloc(s->conns_len);
	s->inmem = big_alloc(s->inmem_len);
	s->ptmem = big_alloc(s->ptmem_len);
	/* room for every result and close event the lcore can hold (see the
	 * file comment), plus the scheduler's lag: max_jobs */
	nres = 2 * (conf->max_conns + 1) + conf->max_idle + conf->max_jobs;
	s->port.jobs = ring_create("dlv_jobs", conf->max_jobs, RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ);
	s->port.results = ring_create("dlv_results", nres, RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ);
	s->port.worker = worker;
	s->port.max_jobs = conf->max_jobs;
	if (!s->conns || !s->inmem || !s->ptmem || !s->port.jobs || !s->port.results) {
		log_err("delivery: worker %u: out of memory for %u connections", worker, s->nconns);
		dlv_destroy(s);
		return NULL;
	}
	log_info("delivery: worker %u: %u connection slots, %u idle, %u jobs", worker,
		 s->nconns, conf->max_idle, conf->max_jobs);
	return s;
}

void dlv_destroy(struct dlv_service *s)
{
	if (!s)
		return;
	if (s->conns)
		for (unsigned i = 0; i < s->hw; i++) {
			struct dlv_conn *dc = &s->conns[i];
			if (dc->tcp)
				tcp_abort(dc->tcp);	/* no callbacks */
			dc->tcp = NULL;
			if (dc->tp.tls)
				tls_conn_free(dc->tp.tls);
			dc->tp.tls = NULL;
		}
	if (s->conns)
		munmap(s->conns, s->conns_len);
	if (s->inmem)
		munmap(s->inmem, s->inmem_len);
	if (s->ptmem)
		munmap(s->ptmem, s->ptmem_len);
	ring_destroy(s->port.jobs);
	ring_destroy(s->port.results);
	free(s);
}

const struct dlv_port *dlv_get_port(const struct dlv_service *s)
{
	return &s->port;
}

/* Room to take one more job without ever failing a post (file comment). */
static bool room_for_job(const struct dlv_service *s)
{
	return rte_ring_free_count(s->port.results) >= 2 * (s->nheld + 1) + s->nidle;
}

unsigned dlv_poll(struct dlv_service *s)
{
	unsigned work = 0;

	if (!s)
		return 0;
	if (s->waiting) {
		struct dlv_conn *dc = slot_for_job(s);
		struct dlv_job *job = s->waiting;
		if (dc) {
			s->waiting = NULL;
			job_bind(dc, job, s->waiting_since);
			work++;
		} else if (now_ns(s) - s->waiting_since >= s->conf.client.t_connect_ns) {
			s->waiting = NULL;
			s->stats.jobs_no_slot++;
			fail_local(s, job, "4.3.2",
				   "no connection slot free on this lcore (%u in use) for %llu s",
				   s->nconns,
				   (unsigned long long)(s->conf.client.t_connect_ns / NS_PER_SEC));
			work++;
		}
	}
	while (!s->waiting && work < JOB_BURST && room_for_job(s)) {
		void *e;
		if (rte_ring_sc_dequeue(s->port.jobs, &e) != 0)
			break;
		s->nheld++;
		s->stats.jobs++;
		work++;
		if (!job_start(s, e, now_ns(s))) {
			s->stats.jobs_waited++;
			s->waiting = e;
			s->waiting_since = now_ns(s);
		}
	}
	return work;
}

const struct dlv_stats *dlv_get_stats(const struct dlv_service *s)
{
	return &s->stats;
}

const struct smtp_client_stats *dlv_client_stats(const struct dlv_service *s)
{
	return &s->client_stats;
}

void dlv_gauges(const struct dlv_service *s, uint64_t *open, uint64_t *idle, uint64_t *jobs)
{
	*open += s->nopen;
	*idle += s->nidle;
	*jobs += s->nheld;
}
