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
 * the body arena's bound; the active set's bound; flush; quiesce.
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
#include "control/route.h"
#include "control/sched.h"
#include "queue/queue.h"
#include "tests/support/dns_responder.h"

#define T0 1700000000ull
#define NPORTS 2
#define SINK "192.0.2.25"

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
}

static void fx_open_queue(unsigned shards)
{
	struct queue_conf qc;
	int st;

	queue_conf_defaults(&qc);
	snprintf(qc.dir, sizeof(qc.dir), "%s/spool", dir);
	qc.shards = shards;
	qc.map_size = 8u << 20;
	qc.map_max = 1ull << 30;
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
}

static void fx_stop(void)
{
	router_destroy(rt);
	sched_destroy(s);
	dns_destroy(dns);
	dnsr_destroy(z);
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

/* Queue one message (recipients comma-separated); returns its ID. */
static uint64_t put_body(const char *rcpts, size_t size, uint64_t seed)
{
	static char addr[QUEUE_RCPT_MAX][64];
	static struct queue_rcpt_in in[QUEUE_RCPT_MAX];
	struct queue_submission sub, *back;
	char *body = malloc(size + 1);
	struct iovec iov = { body, size };
	unsigned n = 0;
	int st;

	for (const char *p = rcpts; *p && n < QUEUE_RCPT_MAX;) {
		size_t l = strcspn(p, ",");
		snprintf(addr[n], sizeof(addr[n]), "%.*s", (int)l, p);
		in[n] = (struct queue_rcpt_in){ addr[n], n == 1 ? "rfc822;orig@example.org" : NULL,
						 n == 1 ? 2 : 0 };
		n++;
		p += l + (p[l] == ',');
	}
	body_of(seed, body, size);
	memset(&sub, 0, sizeof(sub));
	sub.env.sender = "sender@example.org";
	sub.env.envid = "ENV1";
	sub.env.ret = QUEUE_RET_HDRS;
	sub.env.arrival = clk.s;
	sub.env.expiry = clk.s + 5 * 86400;
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

struct lent {
	struct dlv_job *j;
	unsigned w;
};
static struct lent out[8192];
static unsigned nout;

/* Take every job waiting in the job rings. Returns how many came. */
static unsigned take(void)
{
	unsigned got = 0;
	for (unsigned w = 0; w < NPORTS; w++) {
		void *e;
		while (rte_ring_sc_dequeue(env.ports[w]->jobs, &e) == 0) {
			cr_assert_lt(nout, 8192);
			out[nout++] = (struct lent){ e, w };
			got++;
		}
	}
	return got;
}

static void post(unsigned w, void *e)
{
	cr_assert_eq(rte_ring_sp_enqueue(env.ports[w]->results, e), 0, "result ring full");
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

/* Poll until nothing happens (DNS answers included). */
static void settle(void)
{
	for (int i = 0; i < 50; i++) {
		dns_poll(dns, clk.ns / NS_PER_MS);
		if (sched_poll(s) == 0 && i > 1)
			break;
	}
}

static struct sched_stats stats(void)
{
	struct sched_stats st;
	sched_stats_get(s, &st);
	return st;
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
	cr_assert_eq(j->hop[0].addr, inet_addr(SINK));
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
	cr_assert_eq(st.rcpt_sent, 2);
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
	cr_assert_eq(st.rcpt_sent, 1);
	cr_assert_eq(st.rcpt_bounced, 2);
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
