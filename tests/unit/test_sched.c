/*
 * test_sched.c - the delivery scheduler (control/sched.c) against a real
 * queue (LMDB in a temporary directory), the real router and resolver (DNS
 * answered by the in-process responder, static routes set at run time),
 * and the real delivery ports: dlv_create's job and result rings, with the
 * test playing the worker lcores (it dequeues the jobs, writes their
 * results, posts them and idle-close events back). Time is injected: the
 * schedules below walk five days in well under a second each.
 *
 * Proves: a message goes out whole (envelope, recipients, the body as
 * stored) and leaves the queue; per-recipient outcomes (2xx sent, 4xx
 * deferred with the reply in the history, 5xx final at once); a message
 * with three domains makes one job per domain; fairness (10,000 items for
 * a slow destination, 100 for a fast one: the fast one's go within the
 * first rounds); the concurrency window is never exceeded; a dead
 * destination's queue is deferred without jobs, then one probe; retry
 * times per schedule type against the attempt history, and expiry; route
 * answers (temp, perm, discard, hold, a bad domain) and one lookup serving
 * every message waiting for a domain; untried (local) jobs and the TLS
 * plaintext fallback count nothing against the destination; connection
 * reuse from the inventory; results durable in the same apply as the end
 * of the claim, and a crash with a job out delivers again, never loses;
 * the body arena's bound; the active set's bound; flush; the operator's
 * suspension of a domain; quiesce; daily quotas and user suspensions
 * (quota.h) hold a message at its first claim, with the reason, and its
 * release by the operator delivers it without counting it again; a
 * transfer to another box moves every message at once in one transaction
 * with its XSLUICE history, removes it after the 250 without a DSN or a
 * delivery count, never counts a failed transfer as an attempt, and gives
 * mail back to its own route once cancelled.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_ring.h>

#include "common/clock.h"
#include "common/log.h"
#include "control/dns.h"
#include "control/dns_sock.h"
#include "control/quota.h"
#include "control/route.h"
#include "control/sched.h"
#include "dataplane/smtp/xsluice.h"
#include "queue/queue.h"
#include "tests/support/dns_responder.h"

#define T0 1700000000ull
#define NPORTS 2
#define SINK "192.0.2.25"
#define DSN_SINK "192.0.2.99"	/* example.org, the senders' domain, routes here */

/* ---- the fixture -------------------------------------------------------------- */

static struct { uint64_t s, ns; } clk;
static uint64_t clk_s(void *u) { (void)u; return clk.s; }
static uint64_t clk_ns(void *u) { (void)u; return clk.ns; }
static void adv(uint64_t sec) { clk.s += sec; clk.ns += sec * NS_PER_SEC; }
static void adv_to(uint64_t unix_s) { if (unix_s > clk.s) adv(unix_s - clk.s); }

struct opts {
	unsigned shards;
	const char *schedule;		/* [retry] schedule */
	const char *dest_per_domain;	/* [dest] per_domain */
	unsigned initial, limit, cohort;	/* [dest] windows, failed_cohort_limit */
	const char *lifetimes;		/* [retry] lifetime_per_domain */
	size_t map_max;			/* the queue's map ceiling (0: 1 GiB) */
	struct sched_conf sc;
};

static char dir[64];
static struct queue *q;
static struct rte_ring *done;
static struct dnsr *z;
static struct dns_resolver *dns;
static struct router *rt;
static struct retry_policy rpol;
static struct dest_policy dpol;
static struct dlv_service *svc[NPORTS];
static struct sched *s;
static struct sched_env env;

struct lent {
	struct dlv_job *j;
	unsigned w;
};
static struct lent out[8192];
static unsigned nout, fresh;

/* Notices the scheduler sent (jobs with the null sender), as the next hop
 * took them: answered 250 at once by dsn_job(). */
struct dsn_seen {
	char rcpt[QUEUE_ADDR_MAX + 1];
	char *body;
	size_t len;
	uint8_t body_flags;
	unsigned nrcpt;
};
static struct dsn_seen dsns[256];
static unsigned ndsns;
static bool dsn_keep;	/* null-sender jobs go to out[] like the others */

static void opts_default(struct opts *o)
{
	memset(o, 0, sizeof(*o));
	o->shards = 1;
	o->schedule = "exponential";
	o->dest_per_domain = "";
	o->initial = 5;
	o->limit = 20;
	o->cohort = 1;
	sched_conf_default(&o->sc);
	o->sc.scan_interval_ns = 0;
	o->sc.jobs_max = 4096;
	o->sc.body_memory = 16u << 20;
	o->sc.quiesce_ms = 50;
	snprintf(o->sc.bounce.hostname, sizeof(o->sc.bounce.hostname), "sluice.test");
}

static size_t map_max;

static void fx_open_queue(unsigned shards)
{
	struct queue_conf qc;
	int st;

	queue_conf_defaults(&qc);
	snprintf(qc.dir, sizeof(qc.dir), "%s/spool", dir);
	qc.shards = shards;
	qc.map_size = 8u << 20;
	qc.map_max = map_max ? map_max : 1ull << 30;
	if (qc.map_size > qc.map_max)
		qc.map_size = qc.map_max;
	qc.sync = QUEUE_SYNC_NOMETA;
	q = queue_open(&qc, &st);
	cr_assert_not_null(q, "queue_open: %s", queue_status_str(st));
}

static void fx_sched(const struct opts *o)
{
	char err[256];

	env.q = q;
	s = sched_create(&o->sc, &env, err, sizeof(err));
	cr_assert_not_null(s, "%s", err);
}

static void fx_start(const struct opts *o)
{
	struct retry_conf rc = { .min_backoff_s = 300, .max_backoff_s = 4000 };
	struct dest_conf dc = {
		.cls = { [DEST_NORMAL] = { o->initial, o->limit, { 0, 0, 0 }, { 0, 0, 0 } },
			 [DEST_NOTIFY] = { 2, 5, { 0, 0, 0 }, { 0, 0, 0 } } },
		.failed_cohort_limit = o->cohort,
		.dead_backoff_ns = 300 * NS_PER_SEC,
		.recipients_per_transaction = 50,
		.messages_per_connection = 100,
	};
	struct dns_conf dnc;
	struct route_conf rc2;
	struct dlv_conf dlc;
	const char *key;
	char err[256];

	log_init("test_sched", getenv("SCHED_LOG") ? LOG_LVL_INFO : LOG_LVL_WARN, false);
	clk.s = T0;
	clk.ns = 1000 * NS_PER_SEC;
	snprintf(dir, sizeof(dir), "/tmp/sched-test.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	map_max = o->map_max;
	fx_open_queue(o->shards);
	done = queue_done_ring_create(4096);
	cr_assert_not_null(done);

	z = dnsr_create();
	dnsr_server(z, "192.0.2.53", DNSR_ANSWER);
	dns_conf_default(&dnc);
	snprintf(dnc.servers, sizeof(dnc.servers), "192.0.2.53");
	dns = dns_create_ops(&dnc, dnsr_ops(z), clk.ns / NS_PER_MS);
	cr_assert_not_null(dns);
	route_conf_default(&rc2);
	snprintf(rc2.hostname, sizeof(rc2.hostname), "sluice.test");
	rt = router_create(&rc2, dns, 7);
	cr_assert_not_null(rt);

	cr_assert_eq(retry_policy_init(&rpol, o->schedule, "", &rc, &key, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(retry_lifetime_init(&rpol, 5 * 86400, 86400, o->lifetimes, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(dest_policy_init(&dpol, &dc, o->dest_per_domain, &key, err, sizeof(err)), 0,
		     "%s: %s", key, err);

	dlv_conf_default(&dlc);
	memset(&env, 0, sizeof(env));
	for (unsigned w = 0; w < NPORTS; w++) {
		/* the service's rings and slots; its TCP side is never driven */
		svc[w] = dlv_create(NULL, &dlc, 65536, w, &clk.ns);
		cr_assert_not_null(svc[w]);
		env.ports[w] = dlv_get_port(svc[w]);
	}
	env.nports = NPORTS;
	env.rt = rt;
	env.retry = &rpol;
	env.dest = &dpol;
	env.clock = (struct sched_clock){ clk_s, clk_ns, NULL };
	fx_sched(o);
	/* the notices to the senders (example.org) go to a next hop of their own,
	 * which the test's lcore answers 250 (take(): kept in dsns[]) */
	char err2[200];
	cr_assert_eq(route_set(rt, "example.org", "[" DSN_SINK "]", err2, sizeof(err2)), 0);
}

static void fx_stop(void)
{
	router_destroy(rt);
	sched_destroy(s);
	dns_destroy(dns);
	dnsr_destroy(z);
	for (unsigned i = 0; i < ndsns; i++) {
		free(dsns[i].body);
		dsns[i].body = NULL;
	}
	ndsns = 0;
	nout = fresh = 0;
	dsn_keep = false;
	for (unsigned w = 0; w < NPORTS; w++)
		dlv_destroy(svc[w]);
	queue_close(q);
	queue_done_ring_free(done);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

static void route(const char *domain, const char *spec)
{
	char err[200];
	cr_assert_eq(route_set(rt, domain, spec, err, sizeof(err)), 0, "%s", err);
}

/* ---- messages ------------------------------------------------------------------ */

/* Body bytes of message k (CRLF lines, like a stored message). */
static void body_of(uint64_t k, char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (i % 64 == 62) ? '\r' : (i % 64 == 63) ? '\n' : (char)('a' + (k + i) % 26);
}

/* A message to queue: what differs from put_body's defaults. */
struct pm {
	const char *rcpts;		/* comma-separated */
	const char *sender;		/* NULL: sender@example.org; "": the null sender */
	const char *client;		/* client address (NULL: 192.0.2.7; "": none, as
					 * the scheduler's own notices) */
	int notify;			/* -1: as put_body; else every recipient's */
	int ret;			/* -1: RET=HDRS */
	bool mail;			/* a real message: header fields, blank line, body */
	const char *head;		/* mail: extra header text (CRLF lines) */
	size_t size;
	uint64_t seed;			/* body_of's, when not mail */
	uint64_t expiry;		/* 0: arrival + 5 d */
	uint8_t body_flags;		/* enum queue_body_flags */
	const char *user;		/* the AUTH identity (NULL: none) */
};

/* Queue one message; returns its ID. */
static uint64_t put_msg(const struct pm *o)
{
	static char addr[QUEUE_RCPT_MAX][64];
	static struct queue_rcpt_in in[QUEUE_RCPT_MAX];
	struct queue_submission sub, *back;
	size_t size = o->size ? o->size : 300;
	char *body = malloc(size + 4096);
	struct iovec iov = { body, size };
	unsigned n = 0;
	int st;

	for (const char *p = o->rcpts; *p && n < QUEUE_RCPT_MAX;) {
		size_t l = strcspn(p, ",");
		snprintf(addr[n], sizeof(addr[n]), "%.*s", (int)l, p);
		in[n] = (struct queue_rcpt_in){ addr[n], n == 1 ? "rfc822;orig@example.org" : NULL,
						 n == 1 ? 2 : 0 };
		if (o->notify >= 0)
			in[n].notify = (uint8_t)o->notify;
		n++;
		p += l + (p[l] == ',');
	}
	body_of(o->seed, body, size);
	if (o->mail) {	/* a header section, then body lines, to about size octets */
		size_t h = (size_t)snprintf(body, 4096, "Subject: test message\r\n"
					    "From: <sender@example.org>\r\n%s\r\n",
					    o->head ? o->head : "");
		for (unsigned k = 0; h + 20 < size; k++)
			h += (size_t)sprintf(body + h, "body line %u\r\n", k);
		iov.iov_len = h;
	}
	memset(&sub, 0, sizeof(sub));
	sub.env.sender = o->sender ? o->sender : "sender@example.org";
	sub.env.envid = "ENV1";
	sub.env.ret = o->ret >= 0 ? (uint8_t)o->ret : QUEUE_RET_HDRS;
	sub.env.body_flags = o->body_flags;
	sub.env.client_addr = o->client ? (o->client[0] ? o->client : NULL) : "192.0.2.7";
	sub.env.helo = sub.env.client_addr ? "client.test" : NULL;
	sub.env.auth_user = o->user;
	sub.env.auth_method = o->user ? "PLAIN" : NULL;
	sub.env.arrival = clk.s;
	sub.env.expiry = o->expiry ? o->expiry : clk.s + 5 * 86400;
	sub.env.nrcpt = n;
	sub.env.rcpt = in;
	sub.iov = &iov;
	sub.iovcnt = 1;
	sub.done = done;
	while ((st = queue_submit(q, &sub)) == QUEUE_BUSY)
		nanosleep(&(struct timespec){ 0, 100000 }, NULL);
	cr_assert_eq(st, QUEUE_OK);
	while (queue_done_poll(done, &back, 1) == 0)
		nanosleep(&(struct timespec){ 0, 20000 }, NULL);
	cr_assert_eq(back->status, QUEUE_OK);
	free(body);
	return sub.id;
}

/* Queue one message (recipients comma-separated); returns its ID. */
static uint64_t put_body(const char *rcpts, size_t size, uint64_t seed)
{
	struct pm o = { .rcpts = rcpts, .notify = -1, .ret = -1, .size = size, .seed = seed };
	return put_msg(&o);
}

static uint64_t put(const char *rcpts)
{
	return put_body(rcpts, 300, 1);
}

/* "a@d.test,b@d.test,..." with n recipients at domain. */
static char *rcpt_list(unsigned n, const char *domain)
{
	char *s2 = malloc(n * 64 + 1);
	size_t len = 0;
	for (unsigned i = 0; i < n; i++)
		len += (size_t)sprintf(s2 + len, "%sr%u@%s", i ? "," : "", i, domain);
	return s2;
}

static struct queue_msg *look(uint64_t id, unsigned shard)
{
	struct queue_msg *m = NULL;
	int st = queue_lookup(q, shard, id, &m);
	return st == QUEUE_OK ? m : NULL;
}

static bool gone(uint64_t id)
{
	for (unsigned sh = 0; sh < queue_nshards(q); sh++) {
		struct queue_msg *m = look(id, sh);
		if (m) {
			free(m);
			return false;
		}
	}
	return true;
}

/* ---- the lcore's side -------------------------------------------------------------- */

static void post(unsigned w, void *e)
{
	cr_assert_eq(rte_ring_sp_enqueue(env.ports[w]->results, e), 0, "result ring full");
}

static void set(struct smtp_client_result *r, int code, const char *status, const char *stage,
		const char *text);
static char *job_body(const struct dlv_job *j, size_t *len);

/* A job with the null sender: kept in dsns[] and answered 250. */
static void dsn_job(struct dlv_job *j, unsigned w)
{
	struct dsn_seen *d = &dsns[ndsns < 256 ? ndsns : 255];
	if (ndsns < 256)
		ndsns++;
	free(d->body);
	snprintf(d->rcpt, sizeof(d->rcpt), "%s", j->msg.rcpt[0].addr);
	d->nrcpt = j->msg.nrcpt;
	d->body_flags = j->msg.body_flags;
	d->body = job_body(j, &d->len);
	memset(&j->res, 0, sizeof(j->res));
	snprintf(j->res.relay, sizeof(j->res.relay), "dsn.test[" DSN_SINK "]:25");
	set(&j->res.msg, 250, "2.0.0", "end of DATA", "250 2.0.0 Ok");
	for (unsigned k = 0; k < j->msg.nrcpt; k++) {
		/* a mailbox named reject...@ refuses what comes to it */
		if (strncmp(j->msg.rcpt[k].addr, "reject", 6) == 0)
			set(&j->res.rcpt[k], 550, "5.1.1", "RCPT TO", "550 5.1.1 no such mailbox");
		else
			set(&j->res.rcpt[k], 250, "2.0.0", "RCPT TO", "250 2.0.0 Ok");
	}
	post(w, j);
}

/* Dequeue what the job rings hold: notices answered, the rest kept in out[]. */
static void drain_rings(void)
{
	for (unsigned w = 0; w < NPORTS; w++) {
		void *e;
		while (rte_ring_sc_dequeue(env.ports[w]->jobs, &e) == 0) {
			struct dlv_job *j = e;
			if (!j->msg.sender[0] && !dsn_keep) {
				dsn_job(j, w);
				continue;
			}
			cr_assert_lt(nout, 8192);
			out[nout++] = (struct lent){ e, w };
			fresh++;
		}
	}
}

/* Take every job waiting in the job rings. Returns how many came (notices
 * aside) since the last take. */
static unsigned take(void)
{
	unsigned got;
	drain_rings();
	got = fresh;
	fresh = 0;
	return got;
}

static void set(struct smtp_client_result *r, int code, const char *status, const char *stage,
		const char *text)
{
	memset(r, 0, sizeof(*r));
	r->code = code;
	snprintf(r->status, sizeof(r->status), "%s", status);
	r->stage = stage;
	snprintf(r->text, sizeof(r->text), "%s", text);
}

/* Answer lent job i: every recipient gets (code, status, text). */
static void answer(unsigned i, int code, const char *status, const char *text)
{
	struct dlv_job *j = out[i].j;
	memset(&j->res, 0, sizeof(j->res));
	j->res.hop = code ? 0 : -1;
	snprintf(j->res.relay, sizeof(j->res.relay), code ? "mx.test[" SINK "]:25" : "none");
	set(&j->res.msg, code, status, code ? "end of DATA" : NULL, text);
	for (unsigned k = 0; k < j->msg.nrcpt; k++)
		set(&j->res.rcpt[k], code, status, code ? "RCPT TO" : NULL, text);
	j->res.t_conn_ns = 5 * NS_PER_MS;
	j->res.t_xmit_ns = 7 * NS_PER_MS;
	post(out[i].w, j);
}

static void ok(unsigned i)
{
	answer(i, 250, "2.0.0", "250 2.0.0 Ok: queued as X");
}

/* A site failure: connection refused at every hop. */
static void refused(unsigned i)
{
	struct dlv_job *j = out[i].j;
	answer(i, 0, "4.4.1", "connect to mx.test[" SINK "]:25: Connection refused");
	j->res.site_failure = true;
}

/* Drop lent job i from the list (answered). */
static void forget(unsigned i)
{
	out[i] = out[--nout];
}

static void answer_all_ok(void)
{
	while (nout) {
		ok(0);
		forget(0);
	}
}

static struct sched_stats stats(void)
{
	struct sched_stats st;
	sched_stats_get(s, &st);
	return st;
}

/* Poll until nothing happens (DNS answers, notices being written and the
 * next hop's answers to them included). */
static void settle(void)
{
	for (int i = 0; i < 5000; i++) {
		struct sched_stats st;
		unsigned w;
		dns_poll(dns, clk.ns / NS_PER_MS);
		w = sched_poll(s);
		drain_rings();
		sched_stats_get(s, &st);
		if (st.dsn_inflight || (st.notices_waiting && w == 0)) {
			nanosleep(&(struct timespec){ 0, 200000 }, NULL);	/* the writers */
			continue;
		}
		if (w == 0 && i > 1)
			break;
	}
}

/* The body of a lent job, joined. */
static char *job_body(const struct dlv_job *j, size_t *len)
{
	size_t n = 0;
	char *b;
	for (unsigned i = 0; i < j->body_iovcnt; i++)
		n += j->body[i].iov_len;
	b = malloc(n + 1);
	n = 0;
	for (unsigned i = 0; i < j->body_iovcnt; i++) {
		memcpy(b + n, j->body[i].iov_base, j->body[i].iov_len);
		n += j->body[i].iov_len;
	}
	*len = n;
	return b;
}

/* ---- tests ---------------------------------------------------------------------------- */

Test(sched, a_message_goes_out_whole_and_leaves_the_queue)
{
	struct opts o;
	opts_default(&o);
	fx_start(&o);
	route("a.test", "[" SINK "]:2525");
	uint64_t id = put_body("x@a.test,y@A.TEST.", 200000, 42);

	settle();
	cr_assert_eq(take(), 1, "one job for the two recipients of one domain");
	struct dlv_job *j = out[0].j;
	cr_assert_str_eq(j->dest, "[" SINK "]:2525");
	cr_assert_eq(j->nhops, 1);
	cr_assert_eq(j->hop[0].addr.v4, inet_addr(SINK));
	cr_assert_eq(j->hop[0].port, 2525);
	cr_assert_eq(j->tls, SCT_MAY);
	cr_assert_eq(j->conn_key, 0);
	cr_assert_eq(j->keep_idle_ms, o.sc.keep_idle_ms);
	cr_assert_str_eq(j->msg.sender, "sender@example.org");
	cr_assert_str_eq(j->msg.envid, "ENV1");
	cr_assert_eq(j->msg.ret, QUEUE_RET_HDRS);
	cr_assert_eq(j->msg.nrcpt, 2);
	cr_assert_str_eq(j->msg.rcpt[0].addr, "x@a.test");
	cr_assert_str_eq(j->msg.rcpt[1].addr, "y@A.TEST.");
	cr_assert_str_eq(j->msg.rcpt[1].orcpt, "rfc822;orig@example.org");
	cr_assert_eq(j->msg.rcpt[1].notify, 2);
	cr_assert_null(j->msg.rcpt[0].orcpt);

	size_t len;
	char *got = job_body(j, &len), *want = malloc(200000);
	body_of(42, want, 200000);
	cr_assert_eq(len, 200000);
	cr_assert_eq(memcmp(got, want, len), 0, "the body as stored, in arena chunks");
	cr_assert_eq(j->body_iovcnt, (200000 + SCHED_CHUNK - 1) / SCHED_CHUNK);
	free(got);
	free(want);
	struct sched_stats st = stats();
	cr_assert_eq(st.jobs_lent, 1);
	cr_assert_eq(st.active, 1);
	cr_assert_eq(st.body_arena_bytes, 4ull * SCHED_CHUNK);

	answer_all_ok();
	settle();
	cr_assert(gone(id), "delivered: removed from the queue");
	st = stats();
	cr_assert_eq(st.rcpt_sent, 2);
	cr_assert_eq(st.completed, 1);
	cr_assert_eq(st.active, 0);
	cr_assert_eq(st.jobs_lent, 0);
	cr_assert_eq(st.body_arena_bytes, 0, "the chunks are back");
	fx_stop();
}

Test(sched, mixed_results_per_recipient)
{
	struct opts o;
	opts_default(&o);
	fx_start(&o);
	route("m.test", "[" SINK "]");
	uint64_t id = put("a@m.test,b@m.test,c@m.test");

	settle();
	cr_assert_eq(take(), 1);
	struct dlv_job *j = out[0].j;
	ok(0);
	set(&j->res.rcpt[1], 451, "4.2.0", "RCPT TO", "451 4.2.0 mailbox busy");
	set(&j->res.rcpt[2], 550, "5.1.1", "RCPT TO", "550 5.1.1 no such user");
	forget(0);
	settle();

	struct queue_msg *m = look(id, 0);
	cr_assert_not_null(m, "one recipient is still to go");
	cr_assert_eq(m->rcpt[0].state, QUEUE_RCPT_SENT);
	cr_assert_eq(m->rcpt[1].state, QUEUE_RCPT_DEFERRED);
	cr_assert_eq(m->rcpt[2].state, QUEUE_RCPT_BOUNCED, "5xx is final at once");
	cr_assert_eq(m->rcpt[1].attempts, 1);
	cr_assert(strstr(m->rcpt[1].reply, "451 4.2.0 mailbox busy"), "%s", m->rcpt[1].reply);
	cr_assert(strstr(m->rcpt[1].reply, "in reply to RCPT TO"), "%s", m->rcpt[1].reply);
	cr_assert_not(m->claimed, "the claim ended with the results");
	cr_assert_eq(m->due, T0 + 300, "exponential: now + min_backoff for a new message");
	free(m);
	struct queue_attempt h[8];
	size_t n;
	cr_assert_eq(queue_history(q, 0, id, h, 8, &n), QUEUE_OK);
	cr_assert_eq(n, 3);

	/* nothing before the due time, then only the deferred recipient */
	adv(299);
	settle();
	cr_assert_eq(take(), 0);
	adv(1);
	settle();
	cr_assert_eq(take(), 1);
	cr_assert_eq(out[0].j->msg.nrcpt, 1);
	cr_assert_str_eq(out[0].j->msg.rcpt[0].addr, "b@m.test");
	answer_all_ok();
	settle();
	cr_assert(gone(id));
	struct sched_stats st = stats();
	cr_assert_eq(ndsns, 1, "one DSN, for the 5xx");
	cr_assert_str_eq(dsns[0].rcpt, "sender@example.org");
	cr_assert(strstr(dsns[0].body, "Final-Recipient: rfc822; c@m.test"), "%s", dsns[0].body);
	cr_assert_eq(st.rcpt_sent, 2 + 1, "a and b, and the DSN");
	cr_assert_eq(st.rcpt_deferred, 1);
	cr_assert_eq(st.rcpt_bounced, 1);
	fx_stop();
}

Test(sched, three_domains_one_job_each)
{
	struct opts o;
	opts_default(&o);
	o.shards = 4;
	fx_start(&o);
	route("d1.test", "[" SINK "]:2525");
	route("d2.test", "[" SINK "]:2525");
	route("d3.test", "[192.0.2.26]");
	uint64_t id = put("a@d1.test,b@d2.test,c@d3.test,d@d1.test");

	settle();
	cr_assert_eq(take(), 3, "one transaction per domain");
	unsigned seen = 0;
	for (unsigned i = 0; i < 3; i++) {
		const struct dlv_job *j = out[i].j;
		const char *dom = strchr(j->msg.rcpt[0].addr, '@') + 1;
		for (unsigned k = 0; k < j->msg.nrcpt; k++)
			cr_assert_str_eq(strchr(j->msg.rcpt[k].addr, '@') + 1, dom);
		if (!strcmp(dom, "d1.test")) {
			cr_assert_eq(j->msg.nrcpt, 2);
			seen |= 1;
		} else {
			seen |= !strcmp(dom, "d2.test") ? 2 : 4;
		}
	}
	cr_assert_eq(seen, 7);
	struct sched_stats st = stats();
	cr_assert_eq(st.dests, 2, "d1 and d2 share their static hops: one destination");
	answer_all_ok();
	settle();
	cr_assert(gone(id), "every part of it removed");
	fx_stop();
}

Test(sched, a_huge_destination_does_not_starve_a_small_one, .timeout = 120)
{
	struct opts o;
	opts_default(&o);
	/* 200 messages x 50 recipients, one recipient per transaction:
	 * 10,000 items for slow.test */
	o.dest_per_domain = "slow.test: recipients_per_transaction=1";
	o.sc.scan_batch = 1000;
	fx_start(&o);
	/* MX routes: each domain its own destination, per_domain by its name */
	dnsr_rr(z, "slow.test", DNSR_MX, 300, "10 mx.slow.test");
	dnsr_rr(z, "mx.slow.test", DNSR_A, 300, "192.0.2.30");
	dnsr_rr(z, "fast.test", DNSR_MX, 300, "10 mx.fast.test");
	dnsr_rr(z, "mx.fast.test", DNSR_A, 300, "192.0.2.31");
	char *l = rcpt_list(50, "slow.test");
	for (unsigned i = 0; i < 200; i++)
		put(l);
	free(l);
	uint64_t fast[100];
	for (unsigned i = 0; i < 100; i++)
		fast[i] = put("f@fast.test");

	unsigned rounds = 0, fast_done = 0, slow_max = 0, slow_out = 0;
	for (; fast_done < 100 && rounds < 200; rounds++) {
		settle();
		take();
		slow_out = 0;
		for (unsigned i = 0; i < nout;) {
			if (!strcmp(out[i].j->dest, "fast.test")) {
				ok(i);
				forget(i);
				fast_done++;
			} else {
				slow_out++;	/* the slow destination never answers */
				i++;
			}
		}
		if (slow_out > slow_max)
			slow_max = slow_out;
	}
	settle();
	cr_log_info("the 100 fast messages went in %u rounds, the slow destination at most %u "
		    "at once", rounds, slow_max);
	cr_assert_eq(fast_done, 100, "every fast message went");
	cr_assert_leq(rounds, 25, "within the first rounds (%u)", rounds);
	for (unsigned i = 0; i < 100; i++)
		cr_assert(gone(fast[i]));
	cr_assert_eq(slow_max, 5, "the slow destination held its window of 5 (%u)", slow_max);
	struct sched_stats st = stats();
	cr_assert_eq(st.queued, 10000 - 5, "the rest waits in its FIFO (%llu)",
		     (unsigned long long)st.queued);
	while (nout) {
		answer(0, 451, "4.3.0", "451 4.3.0 later");
		forget(0);
	}
	settle();
	fx_stop();
}

Test(sched, the_window_is_never_exceeded)
{
	struct opts o;
	opts_default(&o);
	o.initial = 2;
	o.limit = 4;
	fx_start(&o);
	route("w.test", "[" SINK "]");
	for (unsigned i = 0; i < 120; i++)
		put("r@w.test");
	unsigned max = 0, delivered = 0;
	for (int round = 0; round < 500 && delivered < 120; round++) {
		settle();
		take();
		if (nout > max)
			max = nout;
		cr_assert_leq(nout, 4, "in flight %u > limit", nout);
		/* answer one at a time: the window stays full */
		if (nout) {
			ok(0);
			forget(0);
			delivered++;
		}
	}
	cr_assert_eq(delivered, 120);
	cr_assert_eq(max, 4, "grew from 2 to its limit of 4 by cohorts (max %u)", max);
	settle();
	cr_assert_eq(stats().completed, 120);
	fx_stop();
}

Test(sched, a_dead_destination_is_deferred_without_jobs_then_probed)
{
	struct opts o;
	opts_default(&o);
	fx_start(&o);
	route("dead.test", "[" SINK "]");
	uint64_t ids[40];
	for (unsigned i = 0; i < 40; i++)
		ids[i] = put("r@dead.test");

	settle();
	cr_assert_eq(take(), 5, "a window's worth of connections");
	while (nout) {
		refused(0);
		forget(0);
	}
	settle();
	cr_assert_eq(take(), 0, "dead: no connection for the others");
	struct sched_stats st = stats();
	cr_assert_eq(st.dead_deferred, 35);
	cr_assert_eq(st.rcpt_deferred, 40);
	cr_assert_eq(st.active, 0, "all given back");
	struct queue_msg *m = look(ids[39], 0);
	cr_assert_not_null(m);
	cr_assert_eq(m->rcpt[0].state, QUEUE_RCPT_DEFERRED);
	cr_assert(strstr(m->rcpt[0].reply, "delivery temporarily suspended: "), "%s",
		  m->rcpt[0].reply);
	cr_assert(strstr(m->rcpt[0].reply, "Connection refused"), "%s", m->rcpt[0].reply);
	free(m);

	/* the retry time and the backoff run out together: one probe first */
	adv(300);
	settle();
	cr_assert_eq(take(), 1, "one probe after the backoff");
	ok(0);
	forget(0);
	settle();
	unsigned sent = 1;
	for (int i = 0; i < 100 && sent < 40; i++) {
		settle();
		take();
		while (nout) {
			ok(0);
			forget(0);
			sent++;
		}
	}
	cr_assert_eq(sent, 40, "alive again, the rest goes");
	settle();
	for (unsigned i = 0; i < 40; i++)
		cr_assert(gone(ids[i]));
	fx_stop();
}

/* The attempt times of a message that is always deferred, until it expires. */
static unsigned walk_schedule(uint64_t *times, unsigned max, uint64_t *id_out)
{
	route("r.test", "[" SINK "]");
	uint64_t id = put("a@r.test");
	unsigned n = 0;
	*id_out = id;
	for (;;) {
		settle();
		if (take() == 0)
			break;
		cr_assert_lt(n, max);
		times[n++] = clk.s;
		answer(0, 451, "4.7.1", "451 4.7.1 greylisted");
		forget(0);
		settle();
		struct queue_msg *m = look(id, 0);
		if (!m)
			break;	/* expired: final, and its history went with it */
		/* the stored attempt history is what happened */
		static struct queue_attempt h[256];
		size_t k;
		cr_assert_eq(queue_history(q, 0, id, h, 256, &k), QUEUE_OK);
		cr_assert_eq(k, n, "%zu attempts in the history, %u made", k, n);
		for (unsigned i = 0; i < n; i++) {
			cr_assert_eq(h[i].time, times[i], "attempt %u", i);
			cr_assert_eq(h[i].state, QUEUE_RCPT_DEFERRED);
			cr_assert(strstr(h[i].reply, "451 4.7.1 greylisted"), "%s", h[i].reply);
		}
		cr_assert_eq(m->rcpt[0].attempts, n);
		adv_to(m->due);
		free(m);
	}
	return n;
}

static void check_history(uint64_t id, const uint64_t *times, unsigned n)
{
	cr_assert_gt(n, 2);
	cr_assert_eq(times[0], T0, "the first attempt at once");
	cr_assert(gone(id), "expired: final, removed");
}

Test(sched, exponential_schedule_over_five_days)
{
	struct opts o;
	opts_default(&o);
	fx_start(&o);
	uint64_t t[256], id;
	unsigned n = walk_schedule(t, 256, &id);
	check_history(id, t, n);
	for (unsigned i = 1; i < n; i++) {
		uint64_t age = t[i - 1] - T0, wait = age < 300 ? 300 : age > 4000 ? 4000 : age;
		cr_assert_eq(t[i], t[i - 1] + wait, "attempt %u at +%llu", i,
			     (unsigned long long)(t[i] - T0));
	}
	cr_assert_geq(t[n - 1], T0 + 5 * 86400, "tried until it expired");
	cr_assert_lt(t[n - 2], T0 + 5 * 86400);
	cr_assert(gone(id), "expired: final, removed");
	struct sched_stats st = stats();
	cr_assert_eq(st.rcpt_expired, 1);
	cr_assert_eq(st.rcpt_deferred, n - 1);
	fx_stop();
}

Test(sched, quadratic_schedule_over_five_days)
{
	struct opts o;
	opts_default(&o);
	o.schedule = "quadratic";
	fx_start(&o);
	uint64_t t[256], id;
	unsigned n = walk_schedule(t, 256, &id);
	check_history(id, t, n);
	for (unsigned i = 1; i < n; i++) {
		uint64_t r = (uint64_t)floor(sqrt((double)(t[i - 1] - T0))) + 20;
		cr_assert_eq(t[i], T0 + r * r, "attempt %u", i);
	}
	cr_assert_eq(t[1] - T0, 400);
	cr_assert_eq(t[2] - T0, 1600);
	cr_assert_geq(t[n - 1], T0 + 5 * 86400);
	cr_assert(gone(id));
	fx_stop();
}

Test(sched, list_schedule_with_its_last_step_repeating)
{
	struct opts o;
	opts_default(&o);
	o.schedule = "5m,10m,30m,1h";
	fx_start(&o);
	uint64_t t[256], id;
	unsigned n = walk_schedule(t, 256, &id);
	static const uint64_t step[] = { 300, 600, 1800, 3600 };
	check_history(id, t, n);
	for (unsigned i = 1; i < n; i++)
		cr_assert_eq(t[i] - t[i - 1], step[i - 1 < 3 ? i - 1 : 3], "attempt %u", i);
	cr_assert_eq(n, 4 + (5 * 86400 - 2700 + 3599) / 3600, "attempts: %u", n);
	cr_assert(gone(id));
	fx_stop();
}

Test(sched, attempts_come_from_the_stored_state)
{
	/* a list schedule steps by attempts: a restart must not start over */
	struct opts o;
	opts_default(&o);
	o.schedule = "5m,10m,30m,1h";
	fx_start(&o);
	route("r.test", "[" SINK "]");
	uint64_t id = put("a@r.test");
	for (unsigned k = 0; k < 2; k++) {
		settle();
		cr_assert_eq(take(), 1);
		answer(0, 451, "4.7.1", "451 4.7.1 later");
		forget(0);
		settle();
		struct queue_msg *m = look(id, 0);
		adv_to(m->due);
		free(m);
	}
	/* a new scheduler on the same queue: the third wait is 30 minutes */
	sched_destroy(s);
	fx_sched(&o);
	uint64_t t3 = clk.s;
	settle();
	cr_assert_eq(take(), 1);
	answer(0, 451, "4.7.1", "451 4.7.1 later");
	forget(0);
	settle();
	struct queue_msg *m = look(id, 0);
	cr_assert_eq(m->rcpt[0].attempts, 3);
	cr_assert_eq(m->due, t3 + 1800);
	free(m);
	fx_stop();
}

Test(sched, route_answers_temp_perm_discard_hold)
{
	struct opts o;
	opts_default(&o);
	fx_start(&o);
	dnsr_rcode(z, "nx.test", 0, DNSR_NXDOMAIN);
	dnsr_rcode(z, "sf.test", 0, DNSR_SERVFAIL);
	route("spam.test", "discard");
	route("slow.test", "hold");
	uint64_t a = put("u@nx.test"), b = put("u@sf.test"), c = put("u@spam.test");
	uint64_t d = put("u@slow.test"), e = put("u@bad_domain..test");
	uint64_t f = put("u@b\xc3\xbc" "cher.test");	/* UTF-8: no IDNA yet */

	settle();
	for (int i = 0; i < 200 && stats().active; i++) {
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
		settle();
	}
	cr_assert_eq(take(), 0, "no job for any of them");
	struct sched_stats st = stats();
	cr_assert_eq(st.active, 0);
	cr_assert(gone(a), "NXDOMAIN: bounced, final");
	struct queue_msg *m = look(b, 0);
	cr_assert_not_null(m, "SERVFAIL: deferred");
	cr_assert_eq(m->rcpt[0].state, QUEUE_RCPT_DEFERRED);
	cr_assert_eq(m->rcpt[0].attempts, 1);
	free(m);
	cr_assert(gone(c), "discard: final as sent");
	m = look(d, 0);
	cr_assert_not_null(m);
	cr_assert(m->held, "hold: held");
	cr_assert_not(m->claimed);
	cr_assert_eq(m->rcpt[0].state, QUEUE_RCPT_PENDING, "held, not tried");
	free(m);
	cr_assert(gone(e), "a domain that is no host name: bounced");
	m = look(f, 0);
	cr_assert_not_null(m, "an internationalized domain: deferred, not lost");
	cr_assert_eq(m->rcpt[0].state, QUEUE_RCPT_DEFERRED);
	cr_assert(strstr(m->rcpt[0].reply, "IDNA"), "%s", m->rcpt[0].reply);
	free(m);
	cr_assert_eq(st.route_perm, 2, "NXDOMAIN and the bad domain");
	cr_assert_eq(st.route_temp, 2, "SERVFAIL and the UTF-8 domain");
	cr_assert_eq(st.route_discard, 1);
	cr_assert_eq(st.route_hold, 1);
	cr_assert_eq(st.held, 1);
	cr_assert_eq(st.rcpt_sent, 1 + 2, "the discard, and the DSNs of the two bounces");
	cr_assert_eq(st.rcpt_bounced, 2);
	cr_assert_eq(ndsns, 2);
	fx_stop();
}

Test(sched, one_lookup_serves_every_message_waiting_for_a_domain)
{
	struct opts o;
	opts_default(&o);
	fx_start(&o);
	dnsr_set_mode(z, 0, DNSR_HOLD);
	dnsr_rr(z, "mx.test", DNSR_MX, 300, "10 in.mx.test");
	dnsr_rr(z, "in.mx.test", DNSR_A, 300, SINK);
	for (unsigned i = 0; i < 50; i++)
		put("r@mx.test");
	settle();
	struct sched_stats st = stats();
	cr_assert_eq(st.active, 50);
	cr_assert_eq(st.lookups, 1, "one lookup in progress for the domain");
	cr_assert_eq(st.route_lookups, 1);
	cr_assert_eq(take(), 0);
	dnsr_release(z, 0);
	for (int i = 0; i < 100 && stats().lookups; i++) {
		settle();
		dnsr_release(z, 0);
	}
	settle();
	cr_assert_eq(take(), 5, "its answer routed them all: a window's worth out");
	cr_assert_eq(dnsr_queries(z, "mx.test", DNSR_MX, 0, -1), 1);
	cr_assert_str_eq(out[0].j->dest, "mx.test", "an MX route's destination is the domain");
	cr_assert_str_eq(out[0].j->hop[0].mx, "in.mx.test");
	cr_assert_eq(stats().queued, 45);
	answer_all_ok();
	settle();
	fx_stop();
}

Test(sched, untried_jobs_and_tls_fallback_count_nothing)
{
	struct opts o;
	opts_default(&o);
	fx_start(&o);
	route("l.test", "[" SINK "]");
	uint64_t id = put("a@l.test");
	settle();
	cr_assert_eq(take(), 1);
	answer(0, 0, "4.3.2", "no connection slot free on this lcore");
	out[0].j->res.local = true;
	forget(0);
	settle();
	struct queue_msg *m = look(id, 0);
	cr_assert_eq(m->rcpt[0].attempts, 0, "not an attempt");
	cr_assert_eq(m->due, T0 + o.sc.local_retry_s);
	free(m);

	adv(o.sc.local_retry_s);
	settle();
	cr_assert_eq(take(), 1);
	cr_assert_eq(out[0].j->tls, SCT_MAY);
	answer(0, 0, "4.7.5", "TLS handshake failed");
	out[0].j->res.tls_failed = true;
	out[0].j->res.site_failure = true;
	forget(0);
	settle();
	cr_assert_eq(take(), 1, "sent again at once");
	cr_assert_eq(out[0].j->tls, SCT_NONE, "in plaintext");
	ok(0);
	forget(0);
	settle();
	cr_assert(gone(id));
	struct sched_stats st = stats();
	cr_assert_eq(st.local, 1);
	cr_assert_eq(st.tls_fallbacks, 1);
	/* the destination saw one delivery and no failure */
	json_t *dests = json_array();
	cr_assert_eq(sched_dest_json(s, "[" SINK "]:25", 10, dests), 1);
	json_t *d = json_array_get(dests, 0), *normal = json_object_get(
		json_object_get(d, "classes"), "normal");
	char *buf = json_dumps(dests, JSON_COMPACT);
	cr_assert_eq(json_real_value(json_object_get(d, "fail_cohorts")), 0.0, "%s", buf);
	cr_assert_eq(json_integer_value(json_object_get(normal, "delivered")), 1, "%s", buf);
	cr_assert_eq(json_integer_value(json_object_get(normal, "site_failures")), 0, "%s", buf);
	cr_assert_eq(json_integer_value(json_object_get(normal, "other_failures")), 0, "%s", buf);
	cr_assert_eq(json_integer_value(json_object_get(normal, "untried")), 2, "%s", buf);
	cr_assert_eq(json_real_value(json_object_get(d, "plaintext_for")), 3600.0, "%s", buf);
	free(buf);
	json_decref(dests);
	/* later mail to it goes in plaintext too, until the fallback ends */
	put("b@l.test");
	settle();
	cr_assert_eq(take(), 1);
	cr_assert_eq(out[0].j->tls, SCT_NONE);
	ok(0);
	forget(0);
	adv(3600);
	put("c@l.test");
	settle();
	cr_assert_eq(take(), 1);
	cr_assert_eq(out[0].j->tls, SCT_MAY, "fallback over");
	answer_all_ok();
	settle();
	fx_stop();
}

Test(sched, idle_connections_are_reused_until_they_close)
{
	struct opts o;
	opts_default(&o);
	/* a static route's destination takes per_domain settings by the name
	 * of its first next hop */
	o.dest_per_domain = SINK ": messages_per_connection=3";
	fx_start(&o);
	route("c.test", "[" SINK "]");
	put("a@c.test");
	settle();
	cr_assert_eq(take(), 1);
	unsigned w = out[0].w;
	ok(0);
	out[0].j->res.conn_key = 0x5001;
	out[0].j->res.conn_messages = 1;
	forget(0);
	settle();
	cr_assert_eq(stats().idle_conns, 1);

	put("b@c.test");
	settle();
	cr_assert_eq(take(), 1);
	cr_assert_eq(out[0].w, w, "to the worker that holds the connection");
	cr_assert_eq(out[0].j->conn_key, 0x5001);
	cr_assert_eq(out[0].j->keep_idle_ms, o.sc.keep_idle_ms);
	cr_assert_eq(stats().idle_conns, 0, "lent with the job");
	cr_assert_eq(stats().reused, 1);
	ok(0);
	out[0].j->res.reused = true;
	out[0].j->res.conn_key = 0x5001;
	out[0].j->res.conn_messages = 2;
	forget(0);
	settle();

	put("c@c.test");
	settle();
	cr_assert_eq(take(), 1);
	cr_assert_eq(out[0].j->conn_key, 0x5001);
	cr_assert_eq(out[0].j->keep_idle_ms, 0, "the third message: QUIT after it");
	ok(0);
	out[0].j->res.conn_key = 0;
	forget(0);
	settle();

	/* a new one, then the lcore says it closed: no longer named */
	put("d@c.test");
	settle();
	cr_assert_eq(take(), 1);
	w = out[0].w;
	cr_assert_eq(out[0].j->conn_key, 0);
	ok(0);
	out[0].j->res.conn_key = 0x7002;
	out[0].j->res.conn_messages = 1;
	forget(0);
	settle();
	cr_assert_eq(stats().idle_conns, 1);
	post(w, (void *)(uintptr_t)((0x7002ull << 1) | 1));
	settle();
	cr_assert_eq(stats().idle_conns, 0);
	cr_assert_eq(stats().close_events, 1);
	put("e@c.test");
	settle();
	cr_assert_eq(take(), 1);
	cr_assert_eq(out[0].j->conn_key, 0);
	answer_all_ok();
	settle();
	fx_stop();
}

Test(sched, results_and_the_end_of_the_claim_go_in_one_apply)
{
	struct opts o;
	opts_default(&o);
	fx_start(&o);
	route("b.test", "[" SINK "]");
	for (unsigned i = 0; i < 50; i++)
		put("a@b.test,b@b.test");
	settle();
	cr_assert_eq(take(), 5);
	/* window 5: answer all jobs as they come, until everything is out */
	unsigned answered = 0;
	for (int i = 0; i < 200 && answered < 45; i++) {
		settle();
		take();
		while (nout > 1) {
			ok(0);
			forget(0);
			answered++;
		}
	}
	/* the last five at once: one pass writes their results and ends their
	 * claims in a single queue_apply */
	settle();
	take();
	unsigned k = nout;
	cr_assert_gt(k, 0);
	answer_all_ok();
	struct sched_stats before = stats();
	sched_poll(s);
	struct sched_stats after = stats();
	cr_assert_eq(after.applies - before.applies, 1);
	cr_assert_eq(after.ops - before.ops, 3 * k, "2 results + 1 complete per message");
	cr_assert_eq(after.completed - before.completed, k);
	fx_stop();
}

Test(sched, a_crash_with_a_job_out_delivers_again_never_loses)
{
	struct opts o;
	opts_default(&o);
	fx_start(&o);
	route("k.test", "[" SINK "]");
	uint64_t a = put("a@k.test"), b = put("b@k.test");
	settle();
	cr_assert_eq(take(), 2);
	/* b's result is in and written; a's job is still out: crash */
	unsigned ib = strcmp(out[0].j->msg.rcpt[0].addr, "b@k.test") == 0 ? 0 : 1;
	ok(ib);
	forget(ib);
	settle();
	cr_assert(gone(b));
	sched_destroy(s);	/* no quiesce: the process died */
	s = NULL;
	nout = 0;
	queue_close(q);
	fx_open_queue(1);	/* recovery: the unfinished claim is due at once */
	adv_to(clock_real_s());	/* ("at once" on the real clock) */
	fx_sched(&o);
	settle();
	cr_assert_eq(take(), 1, "a again");
	cr_assert_str_eq(out[0].j->msg.rcpt[0].addr, "a@k.test");
	answer_all_ok();
	settle();
	cr_assert(gone(a));
	cr_assert(gone(b), "b not again: its result was durable");
	fx_stop();
}

Test(sched, the_body_arena_bounds_the_bodies_out)
{
	struct opts o;
	opts_default(&o);
	o.sc.body_memory = 4 * SCHED_CHUNK;	/* two 100 KiB bodies */
	o.initial = 20;
	fx_start(&o);
	route("big.test", "[" SINK "]");
	uint64_t ids[6];
	for (unsigned i = 0; i < 6; i++)
		ids[i] = put_body("a@big.test", 100 * 1024, i);
	uint64_t three = put_body("a@x1.test,b@x2.test,c@x3.test", 1000, 9);
	route("x1.test", "[192.0.2.41]");
	route("x2.test", "[192.0.2.42]");
	route("x3.test", "[192.0.2.43]");

	unsigned max = 0, delivered = 0;
	for (int round = 0; round < 200 && delivered < 9; round++) {
		settle();
		take();
		struct sched_stats st = stats();
		cr_assert_leq(st.body_arena_bytes, 4 * SCHED_CHUNK);
		if (nout > max)
			max = nout;
		if (nout) {
			ok(0);
			forget(0);
			delivered++;
		}
	}
	settle();
	cr_assert_eq(delivered, 9);
	cr_assert_leq(max, 4, "at most two big bodies out at once (+ the small one's jobs)");
	struct sched_stats st = stats();
	cr_assert_gt(st.body_waits, 0, "jobs waited for memory");
	for (unsigned i = 0; i < 6; i++)
		cr_assert(gone(ids[i]));
	cr_assert(gone(three));
	cr_assert_eq(st.body_reads, 7, "the 3-domain message's body read once for its 3 jobs");
	fx_stop();
}

Test(sched, the_active_set_is_bounded)
{
	struct opts o;
	opts_default(&o);
	o.sc.active_limit = 10;
	fx_start(&o);
	route("n.test", "[" SINK "]");
	for (unsigned i = 0; i < 30; i++)
		put("a@n.test");
	unsigned delivered = 0;
	for (int round = 0; round < 200 && delivered < 30; round++) {
		settle();
		cr_assert_leq(stats().active, 10);
		take();
		answer_all_ok();
		delivered = (unsigned)stats().rcpt_sent;
	}
	settle();
	cr_assert_eq(stats().completed, 30);
	fx_stop();
}

Test(sched, flush_makes_due_now_and_clears_the_backoff)
{
	struct opts o;
	opts_default(&o);
	fx_start(&o);
	route("f.test", "[" SINK "]");
	uint64_t id = put("a@f.test");
	settle();
	cr_assert_eq(take(), 1);
	refused(0);	/* one in flight, one failure: a cohort of 1/5... */
	forget(0);
	settle();
	struct queue_msg *m = look(id, 0);
	cr_assert_eq(m->due, T0 + 300);
	free(m);
	cr_assert_eq(sched_flush_id(s, id), QUEUE_OK);
	settle();
	cr_assert_eq(take(), 1, "due at once");
	/* now kill it: 5 failures */
	refused(0);
	forget(0);
	for (unsigned i = 0; i < 4; i++)
		put("b@f.test");
	settle();
	take();
	while (nout) {
		refused(0);
		forget(0);
	}
	settle();
	json_t *dests = json_array();
	cr_assert_geq(sched_dest_json(s, NULL, 10, dests), 1);
	char *buf = json_dumps(dests, JSON_COMPACT);
	bool dead = false;
	for (size_t i = 0; i < json_array_size(dests); i++)
		dead |= json_is_true(json_object_get(json_array_get(dests, i), "dead"));
	cr_assert(dead, "%s", buf);
	free(buf);
	json_decref(dests);
	unsigned n = 0;
	cr_assert_eq(sched_flush_all(s, &n), QUEUE_OK);
	cr_assert_eq(n, 5, "five messages made due (%u)", n);
	settle();
	cr_assert_eq(take(), 1, "alive again: one probe");
	ok(0);
	forget(0);
	for (int i = 0; i < 50 && stats().completed < 5; i++) {
		settle();
		take();
		answer_all_ok();
	}
	cr_assert_eq(stats().completed, 5);
	/* flush --domain: by the domain's messages */
	uint64_t g = put("z@f.test");
	settle();
	take();
	answer(0, 451, "4.3.0", "451 later");
	forget(0);
	settle();
	cr_assert_eq(sched_flush_domain(s, "F.TEST.", &n), QUEUE_OK);
	cr_assert_eq(n, 1);
	settle();
	cr_assert_eq(take(), 1);
	answer_all_ok();
	settle();
	cr_assert(gone(g));
	/* flush --domain ends the backoff of the destination the domain is
	 * routed to: here a static route's ([SINK]:25), not one named f.test */
	for (unsigned i = 0; i < 5; i++)
		put("k@f.test");
	settle();
	take();
	while (nout) {
		refused(0);
		forget(0);
	}
	settle();
	cr_assert_eq(take(), 0, "dead");
	cr_assert_eq(sched_flush_domain(s, "f.test", &n), QUEUE_OK);
	cr_assert_eq(n, 5);
	settle();
	cr_assert_eq(take(), 1, "alive again: a probe");
	answer_all_ok();
	for (int i = 0; i < 50 && stats().active; i++) {
		settle();
		take();
		answer_all_ok();
	}
	cr_assert_eq(stats().completed, 11);
	fx_stop();
}

/* The operator's suspension of one destination domain: its mail is given
 * back untried (no attempt recorded), another domain on the same next hop
 * goes on; resume flushes it; a suspension --for T ends by itself. */
Test(sched, suspend_holds_one_domain_back_and_resume_flushes_it)
{
	struct opts o;
	struct queue_msg *m;
	unsigned n = 0;
	opts_default(&o);
	fx_start(&o);
	route("s.test", "[" SINK "]");
	route("t.test", "[" SINK "]");
	cr_assert_eq(sched_suspend_domain(s, "S.test.", 0), QUEUE_OK, "any spelling");
	cr_assert_eq(sched_suspend_domain(s, "not a domain", 0), QUEUE_INVALID);
	uint64_t a = put("a@s.test");
	uint64_t b = put("b@t.test");
	settle();
	cr_assert_eq(take(), 1, "t.test's alone");
	cr_assert_str_eq(out[0].j->msg.rcpt[0].addr, "b@t.test");
	answer_all_ok();
	settle();
	cr_assert(gone(b));
	cr_assert_eq(stats().suspended, 1);
	m = look(a, 0);
	cr_assert_not_null(m);
	cr_assert(m->rcpt[0].state == QUEUE_RCPT_PENDING && m->rcpt[0].attempts == 0,
		  "untried: nothing recorded");
	cr_assert_eq(m->due, clk.s + 300, "back after min_backoff meanwhile");
	free(m);
	json_t *arr = json_array();
	cr_assert_eq(sched_suspended_json(s, arr), 1);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, 0), "domain")),
			 "s.test");
	json_decref(arr);
	cr_assert_eq(sched_resume_domain(s, "s.test", &n), QUEUE_OK);
	cr_assert_eq(n, 1, "resume flushes the domain");
	settle();
	cr_assert_eq(take(), 1);
	cr_assert_str_eq(out[0].j->msg.rcpt[0].addr, "a@s.test");
	answer_all_ok();
	settle();
	cr_assert(gone(a));
	cr_assert_eq(sched_resume_domain(s, "s.test", &n), QUEUE_NOTFOUND);
	/* --for 60: given back until then, and tried when it ends */
	cr_assert_eq(sched_suspend_domain(s, "s.test", 60), QUEUE_OK);
	uint64_t c = put("c@s.test");
	settle();
	cr_assert_eq(take(), 0);
	m = look(c, 0);
	cr_assert_eq(m->due, clk.s + 60, "due when the suspension ends");
	free(m);
	adv(61);
	settle();
	cr_assert_eq(take(), 1, "the suspension ran out: tried");
	answer_all_ok();
	settle();
	cr_assert(gone(c));
	fx_stop();
}

static uint64_t put_as(const char *rcpts, const char *user)
{
	struct pm o = { .rcpts = rcpts, .notify = -1, .ret = -1, .user = user };
	return put_msg(&o);
}

Test(sched, over_its_daily_quota_a_users_mail_is_held_and_release_delivers_it)
{
	struct opts o;
	struct queue_msg *m;
	struct quota *qs;
	struct quota_limit two = { 2, 0 }, none = { 0, 0 };
	char qdir[128], err[256];
	uint64_t id[4];

	opts_default(&o);
	fx_start(&o);
	snprintf(qdir, sizeof(qdir), "%s/quota", dir);
	qs = quota_open(qdir, err, sizeof(err));
	cr_assert_not_null(qs, "%s", err);
	cr_assert_eq(quota_policy_set(qs, &two, &none, "192.0.2.0/24", NULL, err, sizeof(err)), 0);
	sched_destroy(s);	/* again, with the quotas */
	env.quota = qs;
	fx_sched(&o);
	route("q.test", "[" SINK "]");
	for (int i = 0; i < 3; i++)
		id[i] = put_as("r@q.test", "alice");
	id[3] = put_as("r@q.test", "bob");
	settle();
	cr_assert_eq(take(), 3, "alice's first two and bob's one");
	answer_all_ok();
	settle();
	cr_assert(gone(id[0]) && gone(id[1]) && gone(id[3]));
	m = look(id[2], 0);
	cr_assert_not_null(m, "the third is kept");
	cr_assert(m->held);
	cr_assert_not(m->claimed);
	cr_assert_eq(m->rcpt[0].attempts, 0, "held, not tried");
	cr_assert_str_eq(m->hold_reason, "daily quota: user alice, message 3 of 2 a day");
	free(m);
	cr_assert_eq(stats().quota_held, 1);
	/* the operator's release: delivered, not counted again */
	cr_assert_eq(queue_release(q, id[2], clk.s), QUEUE_OK);
	settle();
	cr_assert_eq(take(), 1);
	answer_all_ok();
	settle();
	cr_assert(gone(id[2]));
	cr_assert_eq(stats().quota_held, 1);
	/* a suspended user: held whatever the count, with its own reason */
	cr_assert_eq(quota_suspend(qs, "bob", true, clk.s, err, sizeof(err)), 1);
	id[0] = put_as("r@q.test", "bob");
	id[1] = put("r@q.test");	/* not authenticated, not trusted: no quota */
	settle();
	cr_assert_eq(take(), 1, "the unauthenticated one alone");
	answer_all_ok();
	settle();
	cr_assert(gone(id[1]));
	m = look(id[0], 0);
	cr_assert_not_null(m);
	cr_assert(m->held);
	cr_assert(strncmp(m->hold_reason, QUOTA_SUSPENDED_PREFIX,
			  strlen(QUOTA_SUSPENDED_PREFIX)) == 0, "%s", m->hold_reason);
	free(m);
	/* a new day (00:00 UTC on the injected clock): alice may send again */
	adv_to((clk.s / 86400 + 1) * 86400);
	id[2] = put_as("r@q.test", "alice");
	settle();
	cr_assert_eq(take(), 1, "the count started again");
	answer_all_ok();
	settle();
	cr_assert(gone(id[2]));
	fx_stop();
	quota_close(qs);
}

/* A suspension also stops mail already routed and waiting at its
 * destination (here behind a window of 1): given back untried when its
 * turn comes, not sent (a cluster suspension must stop a domain within a
 * second, whatever is queued for it). */
Test(sched, suspend_stops_mail_already_queued_at_the_destination)
{
	struct opts o;
	struct queue_msg *m;
	opts_default(&o);
	o.initial = 1;
	fx_start(&o);
	route("s.test", "[" SINK "]");
	uint64_t a = put("a@s.test");
	uint64_t b = put("b@s.test");
	settle();
	cr_assert_eq(take(), 1, "a window of one: one goes, one waits at the destination");
	uint64_t first = strcmp(out[0].j->msg.rcpt[0].addr, "a@s.test") == 0 ? a : b;
	uint64_t second = first == a ? b : a;
	cr_assert_eq(sched_suspend_domain(s, "s.test", 0), QUEUE_OK);
	answer_all_ok();
	settle();
	cr_assert(gone(first), "the one in flight finished");
	cr_assert_eq(take(), 0, "the waiting one is not sent once suspended");
	cr_assert_eq(stats().suspended, 1);
	m = look(second, 0);
	cr_assert_not_null(m);
	cr_assert(m->rcpt[0].state == QUEUE_RCPT_PENDING && m->rcpt[0].attempts == 0,
		  "untried: nothing recorded");
	cr_assert_eq(m->due, clk.s + 300, "back after min_backoff meanwhile");
	free(m);
	fx_stop();
}

Test(sched, quiesce_gives_back_what_did_not_go)
{
	struct opts o;
	opts_default(&o);
	o.initial = 1;
	fx_start(&o);
	route("qq.test", "[" SINK "]");
	uint64_t ids[4];
	for (unsigned i = 0; i < 4; i++)
		ids[i] = put("a@qq.test");
	settle();
	cr_assert_eq(take(), 1, "window 1: three wait");
	sched_quiesce(s);
	unsigned claimed = 0, due_now = 0;
	for (unsigned i = 0; i < 4; i++) {
		struct queue_msg *m = look(ids[i], 0);
		cr_assert_not_null(m);
		claimed += m->claimed;
		due_now += !m->claimed && m->due <= clk.s && m->rcpt[0].attempts == 0;
		free(m);
	}
	cr_assert_eq(claimed, 1, "the one with its job out stays claimed");
	cr_assert_eq(due_now, 3, "the others are due at once, untried");
	cr_assert_eq(sched_jobs_lent(s), 1);
	nout = 0;	/* the lcores stop (dp_halt) before the scheduler is freed */
	fx_stop();
}

/* ---- notices: DSNs, delay warnings, double bounces (issue 12) ------------------------------ */

/* DSN k as Python's email package reads it (tests/unit/dsn_fields.py). */
static char *dsn_read(unsigned k)
{
	char path[128], cmd[1024], *rd = malloc(65536);
	size_t n = 0;
	FILE *f, *p;

	cr_assert_lt(k, ndsns, "no DSN %u (%u seen)", k, ndsns);
	snprintf(path, sizeof(path), "%s/dsn%u.eml", dir, k);
	f = fopen(path, "wb");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(dsns[k].body, 1, dsns[k].len, f), dsns[k].len);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "%s %s/tests/unit/dsn_fields.py %s 2>&1", PYTHON3, SOURCE_ROOT,
		 path);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	n = fread(rd + 1, 1, 65534, p);
	rd[0] = '\n';
	rd[n + 1] = '\0';
	cr_assert_eq(pclose(p), 0, "dsn_fields.py could not read DSN %u:%s", k, rd);
	cr_assert(strstr(rd, "\nok\n"), "%s", rd);
	return rd;
}

/* Does the reading have the line "key=value"? */
static bool has(const char *reading, const char *line)
{
	char want[600];
	snprintf(want, sizeof(want), "\n%s\n", line);
	return strstr(reading, want) != NULL;
}

static void answer_one(unsigned i, int code, const char *status, const char *text)
{
	answer(i, code, status, text);
	forget(i);
}

/* The queue's messages with undone recipients in domain (one shard of it). */
static size_t queued_in(const char *domain, uint64_t *ids, size_t max)
{
	size_t n = 0;
	cr_assert_eq(queue_list_domain(q, domain, 0, ids, max, &n), QUEUE_OK);
	return n;
}

Test(bounce, expiry_tries_on_schedule_then_one_dsn_with_4_4_7_and_it_leaves)
{
	struct opts o;
	opts_default(&o);
	fx_start(&o);
	route("dead.test", "[" SINK "]");
	struct pm pm = { .rcpts = "u@dead.test", .notify = -1, .ret = QUEUE_RET_FULL,
			 .mail = true, .size = 2000 };
	uint64_t id = put_msg(&pm);
	uint64_t times[256];
	unsigned n = 0;

	for (;;) {	/* the next hop refuses every connection */
		settle();
		if (take() == 0)
			break;
		cr_assert_lt(n, 256);
		times[n++] = clk.s;
		refused(0);
		forget(0);
		settle();
		struct queue_msg *m = look(id, 0);
		if (!m)
			break;
		cr_assert_eq(ndsns, 0, "no notice before it expires (attempt %u)", n);
		adv_to(m->due);
		free(m);
	}
	cr_assert_gt(n, 20);
	cr_assert_eq(times[0], T0);
	for (unsigned i = 1; i < n; i++) {	/* on schedule: exponential */
		uint64_t age = times[i - 1] - T0, wait = age < 300 ? 300 : age > 4000 ? 4000 : age;
		cr_assert_eq(times[i], times[i - 1] + wait, "attempt %u", i);
	}
	cr_assert_lt(times[n - 2], T0 + 5 * 86400);
	cr_assert_geq(times[n - 1], T0 + 5 * 86400, "the last attempt after the lifetime");
	cr_assert(gone(id), "bounced and left the queue");
	cr_assert_eq(ndsns, 1, "exactly one DSN");
	cr_assert_str_eq(dsns[0].rcpt, "sender@example.org", "to the original sender");
	cr_assert_eq(dsns[0].nrcpt, 1);
	char *r = dsn_read(0);
	cr_assert(has(r, "ctype=multipart/report"), "%s", r);
	cr_assert(has(r, "report-type=delivery-status"), "%s", r);
	cr_assert(has(r, "from=Mail Delivery System <MAILER-DAEMON@sluice.test>"), "%s", r);
	cr_assert(has(r, "auto-submitted=auto-replied"), "%s", r);
	cr_assert(has(r, "rcpt0.Final-Recipient=rfc822; u@dead.test"), "%s", r);
	cr_assert(has(r, "rcpt0.Action=failed"), "%s", r);
	cr_assert(has(r, "rcpt0.Status=4.4.7"), "delivery time expired: %s", r);
	cr_assert(strstr(r, "\nrcpt0.Diagnostic-Code=X-Sluice; connect to mx.test[" SINK
			 "]:25: Connection refused"), "the last reply: %s", r);
	cr_assert(has(r, "msg.Original-Envelope-Id=ENV1"), "%s", r);
	cr_assert(has(r, "attached=message/rfc822"), "RET=FULL, small: the whole: %s", r);
	cr_assert(has(r, "attached.subject=test message"), "%s", r);
	free(r);
	struct sched_stats st = stats();
	cr_assert_eq(st.rcpt_expired, 1);
	cr_assert_eq(st.dsn_reports, 1);
	cr_assert_eq(st.notices_waiting, 0);
	fx_stop();
}

/* The DSN job's envelope: queued from the null sender, one recipient. */
Test(bounce, a_notice_is_queued_from_the_null_sender)
{
	struct opts o;
	opts_default(&o);
	fx_start(&o);
	route("n.test", "[" SINK "]");
	uint64_t id = put("a@n.test");
	settle();
	cr_assert_eq(take(), 1);
	answer_one(0, 550, "5.1.1", "550 5.1.1 <a@n.test>: no such user");
	settle();
	cr_assert(gone(id));
	/* look at it in the queue before it goes: a second one, kept */
	dsn_keep = true;
	uint64_t id2 = put("b@n.test");
	settle();
	cr_assert_eq(take(), 1);
	answer_one(0, 550, "5.1.1", "550 5.1.1 <b@n.test>: no such user");
	settle();
	uint64_t ids[4];
	cr_assert_eq(queued_in("example.org", ids, 4), 1, "the DSN is queued");
	struct queue_msg *m = look(ids[0], queue_shard_of(q, "example.org"));
	cr_assert_not_null(m);
	cr_assert_str_eq(m->sender, "", "from the null sender");
	cr_assert_eq(m->nrcpt, 1);
	cr_assert_str_eq(m->rcpt[0].addr, "sender@example.org");
	cr_assert_eq(m->rcpt[0].notify, 0, "no NOTIFY");
	cr_assert_eq(m->ret, QUEUE_RET_NONE);
	cr_assert_str_eq(m->client_addr, "", "made here: no client");
	cr_assert_eq(m->expiry, m->arrival + 86400, "bounce_lifetime");
	free(m);
	cr_assert(gone(id2));
	settle();
	take();	/* its job, in the notify class */
	cr_assert_eq(nout, 1);
	cr_assert_str_eq(out[0].j->msg.sender, "");
	cr_assert_str_eq(out[0].j->dest, "[" DSN_SINK "]:25");
	answer_all_ok();
	settle();
	fx_stop();
}

Test(bounce, the_qmail_rule_one_last_try_when_the_next_retry_is_due)
{
	struct opts o;
	opts_default(&o);
	o.schedule = "1h";
	o.lifetimes = "q.test: 90m";	/* per domain: expires at T0 + 5400 */
	fx_start(&o);
	route("q.test", "[" SINK "]");
	uint64_t a = put("a@q.test"), b = put("b@q.test");

	settle();
	cr_assert_eq(take(), 2);
	while (nout)
		answer_one(0, 451, "4.3.0", "451 4.3.0 try later");
	settle();
	adv(3600);
	settle();
	cr_assert_eq(take(), 2, "the second attempt at +1h");
	while (nout)
		answer_one(0, 451, "4.3.0", "451 4.3.0 try later");
	settle();
	adv(5400 - 3600 + 60);	/* expired now, but the next retry is not due */
	settle();
	cr_assert_eq(take(), 0, "no attempt at the expiry itself");
	cr_assert_eq(ndsns, 0, "and no bounce before the last attempt");
	cr_assert_not(gone(a));
	adv_to(T0 + 7200);
	settle();
	cr_assert_eq(take(), 2, "one last attempt when the retry is due");
	for (unsigned i = 0; i < 2; i++) {
		if (!strcmp(out[i].j->msg.rcpt[0].addr, "a@q.test"))
			answer(i, 451, "4.3.0", "451 4.3.0 still later");	/* temporary: final */
		else
			ok(i);	/* the last try may well succeed */
	}
	nout = 0;
	settle();
	cr_assert(gone(a) && gone(b));
	cr_assert_eq(ndsns, 1, "a bounced, b delivered");
	char *r = dsn_read(0);
	cr_assert(has(r, "rcpt0.Final-Recipient=rfc822; a@q.test"), "%s", r);
	cr_assert(has(r, "rcpt0.Status=4.4.7"), "%s", r);
	cr_assert(strstr(r, "\nrcpt0.Diagnostic-Code=smtp; 451 4.3.0 still later"), "%s", r);
	free(r);
	struct sched_stats st = stats();
	cr_assert_eq(st.rcpt_expired, 1);
	fx_stop();
}

Test(bounce, held_mail_does_not_expire_while_held)
{
	struct opts o;
	opts_default(&o);
	o.schedule = "1h";
	fx_start(&o);
	route("h.test", "[" SINK "]");
	uint64_t id = put("a@h.test");	/* expires at T0 + 5 d */
	settle();
	cr_assert_eq(take(), 1);
	answer_one(0, 451, "4.3.0", "451 4.3.0 later");
	settle();
	/* held for 10 days, from T0 + 100 */
	adv(100);
	struct queue_op op = { .op = QUEUE_OP_HOLD, .id = id, .now = clk.s };
	queue_apply(q, &op, 1);
	cr_assert_eq(op.status, QUEUE_OK);
	adv(10 * 86400);
	settle();
	cr_assert_eq(take(), 0, "held: never due");
	op = (struct queue_op){ .op = QUEUE_OP_RELEASE, .id = id, .now = clk.s };
	queue_apply(q, &op, 1);
	cr_assert_eq(op.status, QUEUE_OK);
	struct queue_msg *m = look(id, 0);
	cr_assert_eq(m->held_s, 10 * 86400);
	free(m);
	settle();
	cr_assert_eq(take(), 1, "released: due at once");
	answer_one(0, 451, "4.3.0", "451 4.3.0 later");
	settle();
	m = look(id, 0);
	cr_assert_not_null(m, "not expired: the 10 days held do not count");
	cr_assert_eq(m->rcpt[0].state, QUEUE_RCPT_DEFERRED);
	free(m);
	cr_assert_eq(ndsns, 0);
	/* its lifetime ends 5 d + 10 d after its arrival */
	adv_to(T0 + 15 * 86400 - 60);
	settle();
	take();
	while (nout)
		answer_one(0, 451, "4.3.0", "451 4.3.0 later");
	settle();
	cr_assert_not(gone(id), "a minute before its extended expiry: still tried");
	adv_to(T0 + 15 * 86400 + 3600);
	settle();
	cr_assert_eq(take(), 1);
	answer_one(0, 451, "4.3.0", "451 4.3.0 later");
	settle();
	cr_assert(gone(id), "expired once its own time (held time aside) was up");
	cr_assert_eq(ndsns, 1);
	fx_stop();
}

Test(bounce, notify_never_suppresses_and_success_says_relayed_unless_passed_on)
{
	struct opts o;
	opts_default(&o);
	fx_start(&o);
	route("s.test", "[" SINK "]");
	struct pm never = { .rcpts = "n@s.test", .notify = QUEUE_NOTIFY_NEVER, .ret = -1 };
	struct pm succ = { .rcpts = "plain@s.test,dsn@s.test",
			   .notify = QUEUE_NOTIFY_SUCCESS | QUEUE_NOTIFY_FAILURE, .ret = -1 };
	uint64_t a = put_msg(&never);
	settle();
	cr_assert_eq(take(), 1);
	answer_one(0, 550, "5.1.1", "550 5.1.1 no such user");
	settle();
	cr_assert(gone(a), "NOTIFY=NEVER: bounced...");
	cr_assert_eq(ndsns, 0, "... without a DSN");

	uint64_t b = put_msg(&succ);
	settle();
	cr_assert_eq(take(), 1);
	answer_one(0, 250, "2.0.0", "250 2.0.0 Ok: queued");	/* the hop lacks DSN */
	settle();
	cr_assert(gone(b));
	cr_assert_eq(ndsns, 1, "NOTIFY=SUCCESS to a hop without DSN: a relayed notice");
	char *r = dsn_read(0);
	cr_assert(has(r, "rcpt0.Action=relayed"), "%s", r);
	cr_assert(has(r, "rcpt1.Action=relayed"), "both recipients, one notice: %s", r);
	cr_assert(has(r, "rcpt0.Status=2.0.0"), "%s", r);
	cr_assert(has(r, "rcpt0.Remote-MTA=dns; mx.test"), "%s", r);
	cr_assert(has(r, "attached=text/rfc822-headers"), "no failure: headers only: %s", r);
	cr_assert(has(r, "subject=Successful Mail Delivery Report"), "%s", r);
	free(r);

	uint64_t c = put_msg(&succ);	/* now a hop with DSN: NOTIFY passed on */
	settle();
	cr_assert_eq(take(), 1);
	answer(0, 250, "2.0.0", "250 2.0.0 Ok: queued");
	out[0].j->res.peer_dsn = true;
	forget(0);
	settle();
	cr_assert(gone(c));
	cr_assert_eq(ndsns, 1, "passed on to the next hop: no notice of ours");
	struct sched_stats st = stats();
	cr_assert_eq(st.dsn_success_notices, 1);
	fx_stop();
}

Test(bounce, delay_warnings_once_after_4h_for_notify_delay_and_when_configured)
{
	struct opts o;
	opts_default(&o);
	o.schedule = "1h";
	fx_start(&o);
	route("d.test", "[" SINK "]");
	struct pm asked = { .rcpts = "x@d.test,y@d.test",
			    .notify = QUEUE_NOTIFY_DELAY | QUEUE_NOTIFY_FAILURE, .ret = -1,
			    .mail = true, .size = 600 };
	struct pm plain = { .rcpts = "z@d.test", .notify = 0, .ret = -1 };
	uint64_t a = put_msg(&asked), b = put_msg(&plain);
	unsigned warned_at = 0;

	for (unsigned h = 0; h <= 8; h++) {	/* an attempt an hour, all deferred */
		settle();
		cr_assert_eq(take(), 2, "hour %u", h);
		while (nout)
			answer_one(0, 451, "4.2.1", "451 4.2.1 mailbox busy");
		settle();
		if (ndsns && !warned_at)
			warned_at = h;
		adv(3600);
	}
	cr_assert_eq(warned_at, 4, "the warning goes with the first attempt 4 h after arrival");
	cr_assert_eq(ndsns, 1, "one warning, once (NOTIFY=DELAY); none without NOTIFY");
	char *r = dsn_read(0);
	cr_assert(has(r, "rcpt0.Action=delayed"), "%s", r);
	cr_assert(has(r, "rcpt1.Action=delayed"), "%s", r);
	cr_assert(has(r, "rcpt0.Status=4.2.1"), "%s", r);
	cr_assert(strstr(r, "\nrcpt0.Will-Retry-Until="), "until its expiry: %s", r);
	cr_assert(has(r, "attached=text/rfc822-headers"), "%s", r);
	cr_assert(has(r, "subject=Delayed Mail (still being retried)"), "%s", r);
	free(r);
	struct queue_msg *m = look(a, 0);
	cr_assert(m->warned, "the warning is marked on the message");
	cr_assert_eq(m->rcpt[0].state, QUEUE_RCPT_DEFERRED, "still tried");
	free(m);
	m = look(b, 0);
	cr_assert_not(m->warned);
	free(m);
	fx_stop();

	/* delay_warning_time set: recipients without NOTIFY too, NOTIFY=FAILURE not */
	opts_default(&o);
	o.schedule = "1h";
	o.sc.delay_warning_s = 3600;
	fx_start(&o);
	route("d.test", "[" SINK "]");
	struct pm fail_only = { .rcpts = "f@d.test", .notify = QUEUE_NOTIFY_FAILURE, .ret = -1 };
	put_msg(&plain);
	put_msg(&fail_only);
	for (unsigned h = 0; h <= 3; h++) {
		settle();
		take();
		while (nout)
			answer_one(0, 451, "4.2.1", "451 4.2.1 mailbox busy");
		settle();
		adv(3600);
	}
	cr_assert_eq(ndsns, 1, "one warning: the recipient that gave no NOTIFY");
	r = dsn_read(0);
	cr_assert(has(r, "rcpt0.Final-Recipient=rfc822; z@d.test"), "%s", r);
	cr_assert(has(r, "rcpt0.Action=delayed"), "%s", r);
	free(r);
	cr_assert_eq(stats().dsn_delay_warnings, 1);
	fx_stop();
}

Test(bounce, ret_hdrs_and_ret_full)
{
	struct opts o;
	opts_default(&o);
	fx_start(&o);
	route("r.test", "[" SINK "]");
	struct pm hdrs = { .rcpts = "a@r.test", .notify = -1, .ret = QUEUE_RET_HDRS, .mail = true,
			   .size = 3000 };
	struct pm full = { .rcpts = "b@r.test", .notify = -1, .ret = QUEUE_RET_FULL, .mail = true,
			   .size = 3000 };
	struct pm big = { .rcpts = "c@r.test", .notify = -1, .ret = QUEUE_RET_FULL, .mail = true,
			  .size = 200000 };
	put_msg(&hdrs);
	put_msg(&full);
	put_msg(&big);
	settle();
	cr_assert_eq(take(), 3);
	while (nout)
		answer_one(0, 550, "5.7.1", "550 5.7.1 refused");
	settle();
	cr_assert_eq(ndsns, 3);
	for (unsigned k = 0; k < 3; k++) {
		char *r = dsn_read(k);
		if (strstr(r, "rfc822; a@r.test")) {
			cr_assert(has(r, "attached=text/rfc822-headers"), "RET=HDRS: %s", r);
			cr_assert(dsns[k].len < 3000, "the body is not in it (%zu)", dsns[k].len);
		} else if (strstr(r, "rfc822; b@r.test")) {
			cr_assert(has(r, "attached=message/rfc822"), "RET=FULL: %s", r);
			cr_assert(dsns[k].len > 3000, "the whole message is in it (%zu)", dsns[k].len);
		} else {
			cr_assert(has(r, "attached=text/rfc822-headers"),
				  "RET=FULL over bounce_size_limit: the headers: %s", r);
			cr_assert(dsns[k].len < 50000);
		}
		cr_assert(has(r, "attached.subject=test message"), "%s", r);
		free(r);
	}
	fx_stop();
}

Test(bounce, null_sender_mail_that_fails_is_dropped)
{
	struct opts o;
	opts_default(&o);
	snprintf(o.sc.bounce.double_bounce_to, sizeof(o.sc.bounce.double_bounce_to),
		 "postmaster@example.org");
	fx_start(&o);
	route("z.test", "[" SINK "]");
	dsn_keep = true;	/* null-sender jobs are the test's to answer */
	/* a bounce from elsewhere that we relay, and fails */
	struct pm theirs = { .rcpts = "a@z.test", .sender = "", .notify = -1, .ret = -1 };
	uint64_t id = put_msg(&theirs);
	settle();
	cr_assert_eq(take(), 1);
	cr_assert_str_eq(out[0].j->msg.sender, "");
	answer_one(0, 550, "5.1.1", "550 5.1.1 no such user");
	settle();
	cr_assert(gone(id), "gone");
	cr_assert_eq(ndsns, 0, "no bounce of a bounce, no double bounce for someone else's");
	struct sched_stats st = stats();
	cr_assert_eq(st.dsn_dropped, 1);
	cr_assert_eq(st.rcpt_bounced, 1);
	uint64_t ids[4];
	cr_assert_eq(queued_in("example.org", ids, 4), 0, "nothing queued");
	fx_stop();
}

Test(bounce, a_dsn_that_fails_makes_one_double_bounce_and_a_failed_one_nothing)
{
	struct opts o;
	opts_default(&o);
	snprintf(o.sc.bounce.double_bounce_to, sizeof(o.sc.bounce.double_bounce_to),
		 "postmaster@example.org");
	fx_start(&o);
	route("x.test", "[" SINK "]");
	struct pm m1 = { .rcpts = "a@x.test", .sender = "reject-me@example.org", .notify = -1,
			 .ret = -1, .mail = true, .size = 500 };
	uint64_t id = put_msg(&m1);
	settle();
	cr_assert_eq(take(), 1);
	answer_one(0, 550, "5.1.1", "550 5.1.1 no such user");
	settle();	/* the DSN goes to reject-me@, which refuses it: a double bounce */
	settle();
	cr_assert(gone(id));
	cr_assert_eq(ndsns, 2, "the DSN (refused), then the double bounce");
	cr_assert_str_eq(dsns[0].rcpt, "reject-me@example.org");
	cr_assert_str_eq(dsns[1].rcpt, "postmaster@example.org");
	char *r = dsn_read(1);
	cr_assert(has(r, "x-sluice-report=double-bounce"), "%s", r);
	cr_assert(has(r, "to=postmaster@example.org"), "%s", r);
	cr_assert(has(r, "rcpt0.Final-Recipient=rfc822; reject-me@example.org"), "%s", r);
	cr_assert(has(r, "rcpt0.Action=failed"), "%s", r);
	cr_assert(has(r, "rcpt0.Status=5.1.1"), "%s", r);
	cr_assert(has(r, "attached=message/rfc822"), "the failed DSN, whole: %s", r);
	free(r);
	struct sched_stats st = stats();
	cr_assert_eq(st.dsn_double_bounces, 1);
	uint64_t ids[4];
	cr_assert_eq(queued_in("example.org", ids, 4), 0, "nothing left");
	fx_stop();

	/* a double bounce that fails: dropped, nothing more */
	opts_default(&o);
	snprintf(o.sc.bounce.double_bounce_to, sizeof(o.sc.bounce.double_bounce_to),
		 "reject-pm@example.org");
	fx_start(&o);
	route("x.test", "[" SINK "]");
	id = put_msg(&m1);
	settle();
	cr_assert_eq(take(), 1);
	answer_one(0, 550, "5.1.1", "550 5.1.1 no such user");
	for (int i = 0; i < 4; i++)
		settle();
	cr_assert(gone(id));
	cr_assert_eq(ndsns, 2, "the DSN and the double bounce, both refused; no third");
	cr_assert_str_eq(dsns[1].rcpt, "reject-pm@example.org");
	st = stats();
	cr_assert_eq(st.dsn_double_bounces, 1);
	cr_assert_eq(st.dsn_dropped, 1, "the failed double bounce: dropped");
	cr_assert_eq(queued_in("example.org", ids, 4), 0, "nothing left: no triple bounce");
	fx_stop();

	/* no double_bounce_to: a failed DSN is dropped */
	opts_default(&o);
	fx_start(&o);
	route("x.test", "[" SINK "]");
	id = put_msg(&m1);
	settle();
	cr_assert_eq(take(), 1);
	answer_one(0, 550, "5.1.1", "550 5.1.1 no such user");
	for (int i = 0; i < 4; i++)
		settle();
	cr_assert(gone(id));
	cr_assert_eq(ndsns, 1);
	cr_assert_eq(stats().dsn_dropped, 1);
	cr_assert_eq(queued_in("example.org", ids, 4), 0);
	fx_stop();
}

/* One pass as the scheduler's thread makes it (no settle). */
static void one_pass(void)
{
	dns_poll(dns, clk.ns / NS_PER_MS);
	sched_poll(s);
}

Test(bounce, the_dsn_is_durable_before_the_originals_results)
{
	struct opts o;
	opts_default(&o);
	o.sc.notice_hold_ns = 0;
	fx_start(&o);
	route("c.test", "[" SINK "]");
	uint64_t id = put("a@c.test,b@c.test");
	uint64_t ids[4];
	settle();
	cr_assert_eq(take(), 1);
	struct dlv_job *j = out[0].j;
	ok(0);
	set(&j->res.rcpt[1], 550, "5.1.1", "RCPT TO", "550 5.1.1 <b@c.test>: no such user");
	forget(0);
	one_pass();	/* the result comes back; the DSN is made and handed to the queue */
	struct sched_stats st = stats();
	cr_assert_eq(st.notices_waiting, 1, "the part waits for its notice");
	/* the queue has the DSN durable... */
	for (int i = 0; i < 5000 && queued_in("example.org", ids, 4) == 0; i++)
		nanosleep(&(struct timespec){ 0, 200000 }, NULL);
	cr_assert_eq(queued_in("example.org", ids, 4), 1, "the DSN is in the queue");
	/* ...and the original has none of its results yet: crash now */
	struct queue_msg *m = look(id, 0);
	cr_assert_not_null(m);
	cr_assert_eq(m->rcpt[1].state, QUEUE_RCPT_PENDING, "b's bounce is not written before");
	free(m);
	sched_destroy(s);	/* no quiesce: the process died */
	s = NULL;
	nout = 0;
	queue_close(q);
	fx_open_queue(1);
	adv_to(clock_real_s());
	m = look(id, 0);
	cr_assert_not_null(m, "after the crash the original is still there");
	cr_assert_eq(m->rcpt[0].state, QUEUE_RCPT_SENT, "a owed no notice: written at once");
	cr_assert_eq(m->rcpt[1].state, QUEUE_RCPT_PENDING, "b's bounce was not");
	free(m);
	cr_assert_eq(queued_in("example.org", ids, 4), 1, "and so is its DSN");
	/* a new scheduler: the original again (a duplicate DSN, never none) */
	fx_sched(&o);
	settle();
	cr_assert_eq(take(), 1);
	j = out[0].j;
	cr_assert_eq(j->msg.nrcpt, 1, "b again (a's 250 was durable)");
	cr_assert_str_eq(j->msg.rcpt[0].addr, "b@c.test");
	answer_one(0, 550, "5.1.1", "550 5.1.1 <b@c.test>: no such user");
	settle();
	cr_assert(gone(id));
	cr_assert_eq(ndsns, 2, "the first DSN and the second both delivered: b's at least once");
	for (unsigned k = 0; k < 2; k++) {
		char *r = dsn_read(k);
		cr_assert(has(r, "rcpt0.Final-Recipient=rfc822; b@c.test"), "%s", r);
		cr_assert_not(strstr(r, "a@c.test"), "only the recipient that failed: %s", r);
		free(r);
	}
	fx_stop();
}

Test(bounce, the_operator_gives_up_on_a_message)
{
	struct opts o;
	opts_default(&o);
	o.schedule = "1h";
	fx_start(&o);
	route("g.test", "[" SINK "]");
	uint64_t a = put("a@g.test,b@g.test"), held = put("h@g.test");
	unsigned n = 0;
	settle();
	cr_assert_eq(take(), 2);
	for (unsigned i = 0; i < 2; i++) {
		if (out[i].j->msg.nrcpt == 2) {
			ok(i);	/* a delivered, b deferred */
			set(&out[i].j->res.rcpt[1], 451, "4.2.0", "RCPT TO", "451 4.2.0 busy");
		} else {
			answer(i, 451, "4.2.0", "451 4.2.0 busy");
		}
	}
	nout = 0;
	settle();
	cr_assert_eq(queue_hold(q, held), QUEUE_OK);
	/* not due (an hour away), held: both given up now */
	cr_assert_eq(sched_bounce_id(s, a, "spam run", &n), QUEUE_OK);
	cr_assert_eq(n, 1, "b only: a was delivered");
	cr_assert_eq(sched_bounce_id(s, held, NULL, &n), QUEUE_OK);
	cr_assert_eq(n, 1);
	settle();
	cr_assert(gone(a) && gone(held));
	cr_assert_eq(take(), 0, "nothing sent for them");
	cr_assert_eq(ndsns, 2);
	for (unsigned k = 0; k < 2; k++) {
		char *r = dsn_read(k);
		cr_assert(has(r, "rcpt0.Action=failed"), "%s", r);
		cr_assert(has(r, "rcpt0.Status=5.0.0"), "%s", r);
		if (strstr(r, "b@g.test"))
			cr_assert(strstr(r, "cancelled by the operator: spam run"), "%s", r);
		else
			cr_assert(strstr(r, "cancelled by the operator"), "%s", r);
		cr_assert_not(strstr(r, "rfc822; a@g.test"), "a was delivered: %s", r);
		free(r);
	}
	cr_assert_eq(sched_bounce_id(s, a, NULL, &n), QUEUE_NOTFOUND);
	/* one in delivery: given up when its job comes back */
	uint64_t c = put("c@g.test");
	settle();
	cr_assert_eq(take(), 1);
	cr_assert_eq(sched_bounce_id(s, c, "stop", &n), QUEUE_OK);
	cr_assert_eq(n, 1);
	answer_one(0, 451, "4.2.0", "451 4.2.0 busy");
	settle();
	cr_assert(gone(c));
	cr_assert_eq(ndsns, 3);
	cr_assert_eq(stats().given_up, 3);
	fx_stop();
}

Test(bounce, a_route_back_to_us_bounces_5_4_6_or_is_held)
{
	struct opts o;
	opts_default(&o);
	fx_start(&o);
	dnsr_rr(z, "loop.test", DNSR_MX, 300, "10 sluice.test");	/* we are its only MX */
	uint64_t id = put("a@loop.test");
	settle();
	for (int i = 0; i < 200 && stats().active; i++) {
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
		settle();
	}
	cr_assert(gone(id), "reject: bounced");
	cr_assert_eq(ndsns, 1);
	char *r = dsn_read(0);
	cr_assert(has(r, "rcpt0.Status=5.4.6"), "%s", r);
	free(r);
	fx_stop();

	opts_default(&o);
	o.sc.loop_hold = true;
	fx_start(&o);
	dnsr_rr(z, "loop.test", DNSR_MX, 300, "10 sluice.test");
	id = put("a@loop.test");
	settle();
	for (int i = 0; i < 200 && stats().active; i++) {
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
		settle();
	}
	struct queue_msg *m = look(id, 0);
	cr_assert_not_null(m, "hold: kept");
	cr_assert(m->held, "held for the operator");
	cr_assert_eq(m->rcpt[0].state, QUEUE_RCPT_PENDING);
	free(m);
	cr_assert_eq(ndsns, 0);
	cr_assert_eq(stats().loops_held, 1);
	fx_stop();
}

Test(bounce, notices_have_their_own_window_at_a_destination)
{
	struct opts o;
	opts_default(&o);
	o.initial = 5;
	fx_start(&o);
	dsn_keep = true;	/* the notices' jobs stay out (a slow next hop) */
	route("i.test", "[" SINK "]");
	struct pm bounce = { .rcpts = "b@i.test", .sender = "", .client = "", .notify = -1,
			     .ret = -1 };
	for (unsigned i = 0; i < 20; i++)	/* a flood of notices first in line */
		put_msg(&bounce);
	for (unsigned i = 0; i < 20; i++)
		put("n@i.test");
	settle();
	take();
	unsigned notify = 0, normal = 0;
	for (unsigned i = 0; i < nout; i++) {
		if (out[i].j->msg.sender[0])
			normal++;
		else
			notify++;
	}
	cr_assert_eq(notify, 2, "the notify class: its window of 2 (%u)", notify);
	cr_assert_eq(normal, 5, "normal mail goes past them in its own window (%u)", normal);
	/* normal mail keeps flowing while no notice comes back */
	unsigned sent = 0;
	for (int round = 0; round < 100 && sent < 20; round++) {
		for (unsigned i = 0; i < nout;) {
			if (out[i].j->msg.sender[0]) {
				ok(i);
				forget(i);
				sent++;
			} else {
				i++;
			}
		}
		settle();
		take();
	}
	cr_assert_eq(sent, 20, "all normal mail delivered, the notices still out");
	struct sched_stats st = stats();
	cr_assert_eq(st.jobs_lent, 2);
	cr_assert_eq(st.queued, 18, "the other notices wait in their own FIFO");
	answer_all_ok();
	for (int round = 0; round < 50 && stats().active; round++) {
		settle();
		take();
		answer_all_ok();
	}
	cr_assert_eq(stats().active, 0);
	fx_stop();
}

/* The queue cannot take the notice (disk full): the recipient is not
 * bounced without it; it stays undone and is tried again later, and its
 * DSN goes once there is room. */
Test(bounce, a_notice_the_queue_cannot_take_leaves_the_recipient_undone)
{
	struct opts o;
	opts_default(&o);
	o.map_max = 2u << 20;
	fx_start(&o);
	route("full.test", "[" SINK "]");
	route("fill.test", "hold");
	uint64_t id = put("a@full.test");
	/* fill the spool to its ceiling with held mail */
	uint64_t fill[64];
	unsigned nfill = 0;
	for (; nfill < 64; nfill++) {
		static char big[200000];
		struct iovec iov = { big, sizeof(big) };
		struct queue_rcpt_in in = { "x@fill.test", NULL, 0 };
		struct queue_submission sub, *back;
		memset(&sub, 0, sizeof(sub));
		sub.env.sender = "f@example.org";
		sub.env.arrival = clk.s;
		sub.env.expiry = clk.s + 86400;
		sub.env.nrcpt = 1;
		sub.env.rcpt = &in;
		sub.iov = &iov;
		sub.iovcnt = 1;
		sub.done = done;
		cr_assert_eq(queue_submit(q, &sub), QUEUE_OK);
		while (queue_done_poll(done, &back, 1) == 0)
			nanosleep(&(struct timespec){ 0, 20000 }, NULL);
		if (back->status != QUEUE_OK) {
			cr_assert_eq(back->status, QUEUE_NOSPACE);
			break;
		}
		fill[nfill] = sub.id;
	}
	cr_assert_lt(nfill, 64, "the spool filled up");
	settle();
	cr_assert_eq(take(), 1);
	answer_one(0, 550, "5.1.1", "550 5.1.1 <a@full.test>: no such user");
	settle();
	struct queue_msg *m = look(id, 0);
	cr_assert_not_null(m, "no DSN, so not bounced");
	cr_assert_eq(m->rcpt[0].state, QUEUE_RCPT_DEFERRED, "the attempt written as a deferral");
	cr_assert_eq(m->rcpt[0].attempts, 1);
	cr_assert(strstr(m->rcpt[0].reply, "550 5.1.1"), "%s", m->rcpt[0].reply);
	cr_assert_eq(m->due, clk.s + 300, "tried again after min_backoff");
	free(m);
	cr_assert_eq(stats().dsn_failed, 1);
	cr_assert_eq(ndsns, 0);
	for (unsigned i = 0; i < nfill; i++)	/* room again */
		cr_assert_eq(queue_delete(q, fill[i]), QUEUE_OK);
	nanosleep(&(struct timespec){ 2, 200000000 }, NULL);	/* the writer looks again */
	adv(300);
	settle();
	cr_assert_eq(take(), 1, "tried again");
	answer_one(0, 550, "5.1.1", "550 5.1.1 <a@full.test>: no such user");
	settle();
	cr_assert(gone(id), "bounced now, with its DSN");
	cr_assert_eq(ndsns, 1);
	fx_stop();
}

/* Two domains in two shards of a 4-shard queue. */
static void two_shards(char d1[32], char d2[32])
{
	snprintf(d1, 32, "m0.test");
	for (unsigned k = 1; k < 100; k++) {
		snprintf(d2, 32, "m%u.test", k);
		if (queue_shard_of(q, d1) != queue_shard_of(q, d2))
			return;
	}
	cr_assert_fail("no two domains in two shards");
}

/* A message whose parts are in two shards: one notice per message per
 * pass covers both parts' recipients; one delay warning marks both. */
Test(bounce, one_notice_per_message_across_its_shards)
{
	struct opts o;
	char d1[32], d2[32], rc[128];
	opts_default(&o);
	o.shards = 4;
	o.schedule = "1h";
	fx_start(&o);
	two_shards(d1, d2);
	route(d1, "[" SINK "]");
	route(d2, "[" SINK "]");
	snprintf(rc, sizeof(rc), "a@%s,b@%s", d1, d2);
	uint64_t id = put(rc);
	settle();
	cr_assert_eq(take(), 2, "one job per part");
	answer(0, 550, "5.1.1", "550 5.1.1 no such user");
	answer(1, 550, "5.1.1", "550 5.1.1 no such user");
	nout = 0;
	settle();
	cr_assert(gone(id));
	cr_assert_eq(ndsns, 1, "one DSN for the message");
	char *r = dsn_read(0);
	cr_assert(strstr(r, "\nrcpt0.Final-Recipient=rfc822; a@"), "%s", r);
	cr_assert(strstr(r, "\nrcpt1.Final-Recipient=rfc822; b@"), "both parts' recipients: %s", r);
	free(r);

	/* the delay warning: one, naming both, marking both parts */
	struct pm dl = { .rcpts = rc, .notify = QUEUE_NOTIFY_DELAY | QUEUE_NOTIFY_FAILURE,
			 .ret = -1 };
	id = put_msg(&dl);
	for (unsigned h = 0; h <= 5; h++) {
		settle();
		take();
		/* the parts answer in different passes: one now, one after a settle */
		if (nout) {
			answer_one(0, 451, "4.2.1", "451 4.2.1 busy");
			settle();
		}
		while (nout)
			answer_one(0, 451, "4.2.1", "451 4.2.1 busy");
		settle();
		adv(3600);
	}
	cr_assert_eq(ndsns, 2, "one delay warning");
	r = dsn_read(1);
	cr_assert(has(r, "rcpt0.Action=delayed"), "%s", r);
	cr_assert(has(r, "rcpt1.Action=delayed"), "the other part's recipient too: %s", r);
	free(r);
	for (unsigned sh = 0; sh < 4; sh++) {
		struct queue_msg *m = look(id, sh);
		if (!m)
			continue;
		cr_assert(m->warned, "shard %u marked", sh);
		free(m);
	}
	fx_stop();
}

/* An SMTPUTF8 original: its DSN takes RFC 6533's global forms and is
 * queued to be sent with SMTPUTF8. */
Test(bounce, an_smtputf8_original_gets_a_global_dsn_sent_with_smtputf8)
{
	struct opts o;
	opts_default(&o);
	fx_start(&o);
	route("u.test", "[" SINK "]");
	struct pm pm = { .rcpts = "j\xc3\xbcrgen@u.test", .notify = -1, .ret = -1, .mail = true,
			 .size = 400, .body_flags = QUEUE_BODY_SMTPUTF8 | QUEUE_BODY_8BITMIME };
	uint64_t id = put_msg(&pm);
	settle();
	cr_assert_eq(take(), 1);
	answer_one(0, 550, "5.1.1", "550 5.1.1 no such user");
	settle();
	cr_assert(gone(id));
	cr_assert_eq(ndsns, 1);
	cr_assert(dsns[0].body_flags & QUEUE_BODY_SMTPUTF8, "sent with SMTPUTF8 (%u)",
		  dsns[0].body_flags);
	char *r = dsn_read(0);
	cr_assert(has(r, "report-type=global-delivery-status"), "%s", r);
	cr_assert(strstr(r, "\nrcpt0.Final-Recipient=utf-8; j\xc3\xbcrgen@u.test"), "%s", r);
	free(r);
	fx_stop();
}

/* A message spanning shards counts once against its user's day, with the
 * recipients of every part, and every part follows the one decision. */
Test(sched, a_message_spanning_shards_counts_once_and_is_held_whole)
{
	struct opts o;
	struct quota *qs;
	struct quota_limit lim = { 1, 3 }, none = { 0, 0 };
	struct quota_usage u;
	char qdir[128], err[256], d1[32], d2[32], rc[128];
	uint64_t a, b;

	opts_default(&o);
	o.shards = 4;
	fx_start(&o);
	snprintf(qdir, sizeof(qdir), "%s/quota", dir);
	qs = quota_open(qdir, err, sizeof(err));
	cr_assert_not_null(qs, "%s", err);
	cr_assert_eq(quota_policy_set(qs, &lim, &none, "", NULL, err, sizeof(err)), 0);
	sched_destroy(s);
	env.quota = qs;
	fx_sched(&o);
	two_shards(d1, d2);
	route(d1, "[" SINK "]");
	route(d2, "[" SINK "]");
	snprintf(rc, sizeof(rc), "x@%s,y@%s", d1, d2);
	a = put_as(rc, "carol");	/* 1 message, 2 recipients: within 1 and 3 */
	settle();
	cr_assert_eq(take(), 2, "both parts go");
	answer_all_ok();
	settle();
	cr_assert(gone(a));
	cr_assert_eq(quota_usage_get(qs, clk.s, "carol", NULL, &u), 0);
	cr_assert_eq(u.messages, 1, "counted once, not per part");
	cr_assert_eq(u.recipients, 2, "with the recipients of both parts");
	b = put_as(rc, "carol");	/* the second: over */
	settle();
	cr_assert_eq(take(), 0, "no part of it goes");
	for (unsigned sh = 0; sh < 4; sh++) {
		struct queue_msg *m;
		if (queue_lookup(q, sh, b, &m) != QUEUE_OK)
			continue;
		cr_assert(m->held, "part in shard %u held", sh);
		cr_assert_str_eq(m->hold_reason, "daily quota: user carol, message 2 of 1 a day");
		free(m);
	}
	cr_assert_eq(stats().quota_held, 1, "one message");
	cr_assert_eq(quota_usage_get(qs, clk.s, "carol", NULL, &u), 0);
	cr_assert_eq(u.messages, 2);
	fx_stop();
	quota_close(qs);
}

/* ---- the transfer to another box (sluicectl transfer) ---------------------------------- */

#define XBOX "198.51.100.7"
#define XBOX6 "2001:db8:51::7"

/* XBOX as the scheduler takes it. */
static const struct net_addr *xbox(void)
{
	static struct net_addr a;

	a = net_addr_v4(inet_addr(XBOX));
	return &a;
}

/* The lent job for message part id (its first recipient's address names
 * it here), or -1. */
static int job_for(const char *first_rcpt)
{
	for (unsigned i = 0; i < nout; i++)
		if (strcmp(out[i].j->msg.rcpt[0].addr, first_rcpt) == 0)
			return (int)i;
	return -1;
}

/*
 * A transfer routes every queued message, all its recipients whatever their
 * domains, to the other box at once (not at its next try), with XSLUICE
 * carrying its history and required of that box; the other box's 250
 * removes it without any DSN or delivery count; a failed transfer is not
 * an attempt (nothing recorded, no bounce) and is tried again; held mail
 * stays held unless --include-held; a running delivery finishes first.
 */
Test(sched, transfer_moves_every_message_to_one_box_with_its_history)
{
	struct opts o;
	opts_default(&o);
	fx_start(&o);
	route("a.test", "[" SINK "]");
	route("b.test", "[" SINK "]:2526");
	struct pm m1 = { .rcpts = "x@a.test,y@b.test", .notify = QUEUE_NOTIFY_SUCCESS |
			 QUEUE_NOTIFY_FAILURE, .ret = -1 };
	uint64_t id1 = put_msg(&m1);
	uint64_t id2 = put("z@a.test");
	uint64_t id3 = put("h@b.test");
	uint64_t id4 = put("w@b.test");
	cr_assert_eq(queue_hold(q, id3), QUEUE_OK);

	/* tried once each and deferred: due again in minutes, not now */
	settle();
	cr_assert_eq(take(), 4, "a.test: x and z; b.test: y and w");
	int k4 = job_for("w@b.test");
	cr_assert_geq(k4, 0);
	struct lent w_job = out[k4];	/* w's delivery is still running at the start */
	forget((unsigned)k4);
	while (nout) {
		answer(0, 451, "4.7.1", "451 4.7.1 greylisted");
		forget(0);
	}
	settle();
	struct queue_msg *m = look(id2, 0);
	cr_assert_eq(m->rcpt[0].attempts, 1);
	cr_assert_gt(m->due, T0 + 60, "due again in minutes");
	free(m);
	struct sched_stats before = stats();

	adv(20);
	uint64_t due;
	cr_assert_eq(sched_transfer_start(s, xbox(), 2525, false, &due), QUEUE_OK);
	cr_assert_eq(due, 3, "id1 (for each of its domains) and id2 made due; id3 held, id4 in delivery");
	cr_assert_eq(sched_transfer_start(s, xbox(), 2525, false, &due), QUEUE_STATE,
		     "one at a time");
	settle();
	cr_assert_eq(take(), 2, "one job per message, at once");
	int k1 = job_for("x@a.test"), k2 = job_for("z@a.test");
	cr_assert(k1 >= 0 && k2 >= 0);
	struct dlv_job *j = out[k1].j;
	cr_assert_str_eq(j->dest, "[" XBOX "]:2525");
	cr_assert_eq(j->nhops, 1);
	cr_assert(net_addr_eq(&j->hop[0].addr, xbox()));
	cr_assert_eq(j->hop[0].port, 2525);
	cr_assert_eq(j->msg.nrcpt, 2, "both domains in one transaction");
	cr_assert_str_eq(j->msg.rcpt[1].addr, "y@b.test");
	cr_assert_eq(j->msg.rcpt[1].notify, QUEUE_NOTIFY_SUCCESS | QUEUE_NOTIFY_FAILURE,
		     "the DSN parameters go along");
	cr_assert(j->msg.xsluice_required, "never sent without its history");
	cr_assert_not_null(j->msg.xsluice);
	struct xsluice x;
	cr_assert_eq(xsluice_parse(j->msg.xsluice, strlen(j->msg.xsluice), &x), 0, "%s",
		     j->msg.xsluice);
	cr_assert_eq(x.arrival, T0);
	cr_assert_eq(x.expiry, T0 + 5 * 86400);
	cr_assert_eq(x.attempts, 1);
	cr_assert_str_eq(x.last_error, "host mx.test[" SINK "] said: 451 4.7.1 greylisted (in "
			 "reply to RCPT TO command)");
	m = look(id1, 0);
	uint64_t want_next = retry_next_for(&rpol, "a.test", T0, T0, 1, id1);
	uint64_t want_next_b = retry_next_for(&rpol, "b.test", T0, T0, 1, id1);
	free(m);
	cr_assert_eq(x.next_try, want_next < want_next_b ? want_next : want_next_b,
		     "its next try by its own schedule, not the flush's now");

	/* the other box refuses z for now: not an attempt, no bounce */
	answer((unsigned)k2, 421, "4.3.2", "421 4.3.2 busy");
	ok((unsigned)k1);
	nout = 0;
	settle();
	cr_assert(gone(id1), "moved: removed after the other box's 250");
	m = look(id2, 0);
	cr_assert_not_null(m);
	cr_assert_eq(m->rcpt[0].attempts, 1, "a failed transfer is not an attempt");
	cr_assert_eq(m->rcpt[0].state, QUEUE_RCPT_DEFERRED);
	free(m);
	struct sched_stats st = stats();
	cr_assert_eq(st.xfer_rcpt, 2);
	cr_assert_eq(st.xfer_moved, 1);
	cr_assert_eq(st.xfer_failed, 1);
	cr_assert_eq(st.xfer_active, 1);
	cr_assert_eq(st.rcpt_sent, before.rcpt_sent, "not counted as delivered");
	cr_assert_eq(st.rcpt_deferred, before.rcpt_deferred);
	cr_assert_eq(st.rcpt_bounced, 0);
	cr_assert_eq(ndsns, 0, "no DSN: not even the NOTIFY=SUCCESS one");

	/* w's running delivery ends (deferred): transferred right after */
	out[nout++] = w_job;
	answer(0, 451, "4.7.1", "451 4.7.1 greylisted");
	forget(0);
	settle();
	adv(o.sc.local_retry_s);	/* and z is due again */
	settle();
	cr_assert_eq(take(), 2, "w after its delivery, z after local_retry_s");
	cr_assert_str_eq(out[0].j->dest, "[" XBOX "]:2525");
	cr_assert_str_eq(out[1].j->dest, "[" XBOX "]:2525");
	answer_all_ok();
	settle();
	cr_assert(gone(id2) && gone(id4));
	cr_assert_not(gone(id3), "held mail stays");
	json_t *js = sched_transfer_json(s);
	cr_assert_eq(json_integer_value(json_object_get(js, "moved")), 3);
	cr_assert_eq(json_integer_value(json_object_get(js, "failed")), 1);
	cr_assert_eq(json_integer_value(json_object_get(js, "left")), 1);
	cr_assert_str_eq(json_string_value(json_object_get(js, "to")), "[" XBOX "]:2525");
	json_decref(js);

	/* again with --include-held: the held one goes too */
	cr_assert_eq(sched_transfer_cancel(s), QUEUE_OK);
	cr_assert_eq(sched_transfer_cancel(s), QUEUE_NOTFOUND);
	cr_assert_eq(stats().xfer_active, 0);
	cr_assert_eq(sched_transfer_start(s, xbox(), 2525, true, &due), QUEUE_OK);
	settle();
	cr_assert_eq(take(), 1);
	cr_assert_str_eq(out[0].j->msg.rcpt[0].addr, "h@b.test");
	answer_all_ok();
	settle();
	cr_assert(gone(id3));
	js = sched_transfer_json(s);
	cr_assert_eq(json_integer_value(json_object_get(js, "released")), 1);
	cr_assert_eq(json_integer_value(json_object_get(js, "left")), 0);
	json_decref(js);
	cr_assert_eq(stats().rcpt_sent, before.rcpt_sent);
	fx_stop();
}

/* A box of the cluster on IPv6: the job goes to its address as an RFC
 * 5321 literal destination with one IPv6 hop; the unspecified address and
 * port 0 are refused. */
Test(sched, a_transfer_to_an_ipv6_box)
{
	struct opts o;
	uint8_t a6[16];
	struct net_addr none, to;
	uint64_t due;

	opts_default(&o);
	fx_start(&o);
	route("a.test", "[" SINK "]");
	put("z@a.test");
	cr_assert_eq(inet_pton(AF_INET6, XBOX6, a6), 1);
	to = net_addr_v6(a6);
	memset(&none, 0, sizeof(none));
	cr_expect_eq(sched_transfer_start(s, &none, 25, false, &due), QUEUE_INVALID);
	none.family = NET_AF_INET6;
	cr_expect_eq(sched_transfer_start(s, &none, 25, false, &due), QUEUE_INVALID, "::");
	cr_expect_eq(sched_transfer_start(s, &to, 0, false, &due), QUEUE_INVALID);
	cr_assert_eq(sched_transfer_start(s, &to, 2525, false, &due), QUEUE_OK);
	settle();
	cr_assert_eq(take(), 1);
	cr_assert_str_eq(out[0].j->dest, "[IPv6:" XBOX6 "]:2525");
	cr_assert_eq(out[0].j->nhops, 1);
	cr_assert(net_addr_eq(&out[0].j->hop[0].addr, &to));
	cr_assert_eq(out[0].j->hop[0].port, 2525);
	cr_assert(out[0].j->msg.xsluice_required);
	refused(0);
	forget(0);
	settle();
	cr_assert_eq(sched_transfer_cancel(s), QUEUE_OK);
	fx_stop();
}

/* Once cancelled, what is left is delivered by its own route and schedule
 * again; a failed transfer did not change its schedule's attempt count. */
Test(sched, after_a_cancelled_transfer_mail_takes_its_own_route)
{
	struct opts o;
	opts_default(&o);
	fx_start(&o);
	route("a.test", "[" SINK "]");
	uint64_t id = put("z@a.test");
	uint64_t due;

	cr_assert_eq(sched_transfer_start(s, xbox(), 25, false, &due), QUEUE_OK);
	settle();
	cr_assert_eq(take(), 1);
	cr_assert_str_eq(out[0].j->dest, "[" XBOX "]:25");
	refused(0);	/* the other box is down */
	forget(0);
	settle();
	cr_assert_eq(sched_transfer_cancel(s), QUEUE_OK);
	adv(o.sc.local_retry_s);
	settle();
	cr_assert_eq(take(), 1);
	cr_assert_str_eq(out[0].j->dest, "[" SINK "]:25", "its own route again");
	cr_assert_null(out[0].j->msg.xsluice);
	cr_assert_not(out[0].j->msg.xsluice_required);
	ok(0);
	forget(0);
	settle();
	cr_assert(gone(id));
	cr_assert_eq(stats().rcpt_sent, 1);
	fx_stop();
}
