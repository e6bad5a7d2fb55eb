/*
 * plane.c - the control-plane thread: the resolver, the router, and the
 * operators' requests for them. See plane.h.
 *
 * Requests live in a fixed pool (PLANE_REQ_MAX). One moves through
 *   free -> inbox (main thread queued it) -> running (the plane started it;
 *   a resolver or router callback will finish it) -> outbox (answered) ->
 *   free (the main thread took the answer).
 * The inbox, outbox and free list are guarded by one mutex; running
 * requests belong to the plane thread alone.
 */
#include "control/plane.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/crypto.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/stats.h"
#include "control/auth_worker.h"
#include "control/cluster.h"
#include "control/config.h"
#include "control/config_check.h"
#include "control/ctl_proto.h"
#include "control/dns.h"
#include "control/maillog.h"
#include "control/queue_cmd.h"
#include "control/route.h"
#include "dataplane/ask.h"
#include "control/sched.h"
#include "control/transfer_state.h"
#include "dataplane/dataplane.h"
#include "queue/queue.h"

#define IDLE_WAIT_MS 50		/* nothing in flight: wake this often */
#define BUSY_WAIT_MS 2		/* lookups in flight: their answers come over rings */
#define ARG_MAX 600

enum req_kind { REQ_ROUTE_LOOKUP, REQ_ROUTE_SET, REQ_ROUTE_CLEAR, REQ_DNS_LOOKUP, REQ_DNS_BENCH,
		REQ_FLUSH_ID, REQ_FLUSH_DOMAIN, REQ_FLUSH_ALL, REQ_DEST_SHOW, REQ_DEST_CLEAR,
		REQ_BOUNCE, REQ_BOUNCE_DOMAIN, REQ_SUSPEND, REQ_RESUME, REQ_SUSPEND_SHOW,
		REQ_ROUTE_SHOW, REQ_QUEUE, REQ_TRANSFER, REQ_TRANSFER_CANCEL,
		REQ_TRANSFER_STATUS };

#define DEST_SHOW_MAX 1000	/* destinations in one `dest show` answer */

#define BENCH_MAX 1000000u	/* lookups in one bench */
#define BENCH_WINDOW 256	/* lookups in flight at once */

/*
 * `dns bench N cached|uncached ZONE`: N A lookups through the resolver,
 * BENCH_WINDOW at a time, timed on the plane's clock. uncached asks a
 * distinct name each time (b<i>.ZONE: every one a query on the wire);
 * cached asks one name N times (all but the first from the cache). For
 * bench/dns-bench; one bench at a time.
 */
struct bench {
	struct plane_req *req;		/* NULL: none running */
	unsigned total, started, done, ok, failed;
	bool cached;
	char zone[200];
	uint64_t t0_ns;
};

struct plane_req {
	enum req_kind kind;
	struct ctl_ticket ticket;
	char a[ARG_MAX];		/* domain or name */
	char b[ARG_MAX];		/* spec, or the DNS type */
	enum dns_type dtype;
	bool ok;
	json_t *reply;			/* the result, or the error (a JSON string) */
	struct plane *p;
	struct plane_req *next;
};

/*
 * Reverse names for the lcores' SMTP sessions (ask.h ASK_RDNS): PTR of the
 * address, then A of that name, which must list the address again
 * (forward-confirmed, as Postfix's "verified" name); anything else answers
 * "" (unknown). After a temporary DNS failure, questions are answered ""
 * at once for RDNS_BACKOFF_MS, so sessions do not each wait out a dead
 * server.
 */
#define RDNS_JOBS 4096
#define RDNS_BACKOFF_MS (30 * 1000)

#define RDNS_STATS(X) X(asked) X(named) X(unverified) X(failed) X(skipped) X(busy)
struct rdns_stats { RDNS_STATS(STATS_FIELD) };
static const char *const rdns_stat_names[] = { RDNS_STATS(STATS_NAME) };

struct rdns_job {
	struct plane *p;
	struct ask_port *port;
	struct ask *a;			/* NULL: the job is free */
	char name[256];
};

struct plane {
	pthread_t thread;
	bool started;
	atomic_bool stop;
	int wake_fd;			/* main -> plane: requests wait */
	int reply_fd;			/* plane -> main: answers wait */

	struct dns_resolver *dns;	/* plane thread only */
	struct router *rt;		/* plane thread only */
	struct sched *sched;		/* plane thread only; NULL: no delivery */
	struct qcmd *qcmd;		/* the queue commands' thread; NULL: no queue */
	struct retry_policy retry;	/* the scheduler's policies (read-only) */
	struct dest_policy dest;

	pthread_mutex_t mu;
	struct plane_update *update;	/* under mu: a reload's, not yet taken */
	_Atomic uint64_t update_done;	/* gen of the last one applied */
	atomic_bool update_routes_ok;
	struct plane_req *inbox, *outbox, *freelist;
	struct plane_req pool[PLANE_REQ_MAX];

	struct bench bench;		/* plane thread only */
	struct dataplane *dp;
	struct queue *q;		/* NULL: none */
	char qdir[CONFIG_PATH_MAX];	/* [queue] dir: the transfer's state file */
	unsigned nworkers;
	struct rdns_job rdns[RDNS_JOBS];	/* plane thread only */
	uint64_t rdns_quiet_until;	/* ms: answer "" without asking DNS */
	struct rdns_stats rdns_st;
	struct quota *quota;		/* quota.h's store; NULL: no queue */
	struct auth_worker *auth;	/* NULL: no [auth] users, AUTH answers bad */
	struct auth_worker_stats auth_snap;
	struct cluster *cl;		/* [cluster]: its own thread; NULL: alone */

	/* the destinations with most deferrals, for other threads
	 * (plane_dest_top): asked and answered by generation under top_mu */
	pthread_mutex_t top_mu;
	pthread_cond_t top_cv;
	uint64_t top_asked, top_done;
	unsigned ntop;
	struct sched_dest_count top[PLANE_TOP_MAX];

	/* counters as of the last loop, for the main thread (racy reads) */
	struct dns_stats dns_snap;
	struct route_stats route_snap;
	struct sched_stats sched_snap;
};

/* ---- lists ------------------------------------------------------------- */

static void push(struct plane_req **list, struct plane_req *r)
{
	struct plane_req **pp = list;

	while (*pp)
		pp = &(*pp)->next;	/* keep order: lists are short */
	r->next = NULL;
	*pp = r;
}

static void signal_fd(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("plane: eventfd write: %s", strerror(errno));
}

static void drain_fd(int fd)
{
	uint64_t v;

	while (read(fd, &v, sizeof(v)) == sizeof(v))
		;
}

/* A request is answered (reply: a new reference, NULL when out of memory):
 * to the outbox, and tell the main loop. */
static void finish(struct plane_req *r, bool ok, json_t *reply)
{
	struct plane *p = r->p;

	r->ok = ok && reply;
	r->reply = reply ? reply : json_string("out of memory");
	pthread_mutex_lock(&p->mu);
	push(&p->outbox, r);
	pthread_mutex_unlock(&p->mu);
	signal_fd(p->reply_fd);
}

static void finish_error(struct plane_req *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* A failed request: the error text (made UTF-8 if it is not). */
static void finish_error(struct plane_req *r, const char *fmt, ...)
{
	char s[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s, sizeof(s), fmt, ap);
	va_end(ap);
	finish(r, false, ctl_json_text(s));
}

/* ---- answers: each request's result, a JSON object (plane.h) ------------------ */

/* Append v (a new reference) to the array *a; false, with *a dropped and
 * NULL, when either is NULL (out of memory). */
static bool append(json_t **a, json_t *v)
{
	if (json_array_append_new(*a, v) == 0)
		return true;
	json_decref(*a);
	*a = NULL;
	return false;
}

static void route_answer(void *user, const struct route_result *res)
{
	struct plane_req *r = user;
	char ip[INET6_ADDRSTRLEN];
	json_t *hops = json_array();

	for (unsigned i = 0; hops && i < res->n; i++) {
		const struct route_hop *h = &res->hop[i];
		inet_ntop(h->family == AF_INET6 ? AF_INET6 : AF_INET, h->addr, ip, sizeof(ip));
		if (!append(&hops, json_pack("{s:s,s:I,s:I,s:s,s:o}", "addr", ip,
					    "port", (json_int_t)h->port, "pref", (json_int_t)h->pref,
					    "tls", route_tls_name(h->tls), "mx", ctl_json_text(h->mx))))
			break;
	}
	finish(r, true, hops ? json_pack("{s:{s:o,s:s,s:o,s:o,s:o}}", "route",
					 "domain", ctl_json_text(r->a),
					 "status", route_status_name(res->status),
					 "dsn", ctl_json_text(res->dsn), "why", ctl_json_text(res->why),
					 "hops", hops) : NULL);
}

static void dns_answer(void *user, const struct dns_result *res)
{
	struct plane_req *r = user;
	char ip[INET6_ADDRSTRLEN];
	json_t *recs = json_array();

	for (unsigned i = 0; recs && i < res->n; i++) {
		json_t *v = NULL;
		switch (res->type) {
		case DNS_T_MX:
			v = json_pack("{s:I,s:o}", "pref", (json_int_t)res->mx[i].pref,
				      "host", ctl_json_text(res->mx[i].host));
			break;
		case DNS_T_A:
			inet_ntop(AF_INET, &res->a[i], ip, sizeof(ip));
			v = json_string(ip);
			break;
		case DNS_T_AAAA:
			inet_ntop(AF_INET6, res->aaaa[i], ip, sizeof(ip));
			v = json_string(ip);
			break;
		case DNS_T_PTR:
			v = ctl_json_text(res->name);
			break;
		}
		if (!append(&recs, v))
			break;
	}
	if (recs && res->type == DNS_T_PTR && res->n == 0 && res->status == DNS_OK)
		append(&recs, ctl_json_text(res->name));
	finish(r, true, recs ? json_pack("{s:{s:o,s:s,s:s,s:I,s:o,s:o}}", "dns",
					 "name", ctl_json_text(r->a),
					 "type", dns_type_name(res->type),
					 "status", dns_status_name(res->status),
					 "ttl", (json_int_t)res->ttl, "why", ctl_json_text(res->why),
					 "records", recs) : NULL);
}

/* ---- the resolver bench ---------------------------------------------------- */

static void bench_fill(struct plane *p);

static void bench_answer(void *user, const struct dns_result *res)
{
	struct plane *p = user;
	struct bench *b = &p->bench;

	b->done++;
	if (res->status == DNS_OK)
		b->ok++;
	else
		b->failed++;
	if (b->done == b->total) {
		uint64_t ns = clock_mono_ns() - b->t0_ns;
		struct plane_req *r = b->req;
		b->req = NULL;
		finish(r, true, json_pack("{s:{s:I,s:I,s:I,s:b,s:f,s:f}}", "dns_bench",
					  "lookups", (json_int_t)b->total, "ok", (json_int_t)b->ok,
					  "failed", (json_int_t)b->failed, "cached", b->cached,
					  "seconds", (double)(ns / 1000) / 1e6,
					  "per_second", ns ? (double)(uint64_t)(b->total * 1e10 /
							(double)ns) / 10 : 0.0));
	}
}

/* Keep BENCH_WINDOW lookups in flight (answers from the cache come at once). */
static void bench_fill(struct plane *p)
{
	struct bench *b = &p->bench;
	char name[256];

	while (b->req && b->started < b->total && b->started - b->done < BENCH_WINDOW) {
		int rc;
		if (b->cached)
			snprintf(name, sizeof(name), "cached.%s", b->zone);
		else
			snprintf(name, sizeof(name), "b%u.%s", b->started, b->zone);
		b->started++;
		rc = dns_lookup(p->dns, name, DNS_T_A, bench_answer, p);
		if (rc == -EAGAIN || rc == -ENOBUFS) {
			b->started--;	/* the resolver is full: on the next loop */
			return;
		}
		if (rc < 0) {
			struct dns_result fail = { .status = DNS_BADNAME };
			bench_answer(p, &fail);
		}
	}
}

/* ---- reverse names for the lcores ---------------------------------------- */

static void rdns_done(struct rdns_job *j, const char *name)
{
	snprintf(j->a->text, sizeof(j->a->text), "%s", name);
	j->a->status = name[0] ? 0 : -1;
	ask_answer(j->port, j->a);
	j->a = NULL;
}

static void rdns_failed(struct rdns_job *j, const struct dns_result *res)
{
	if (res->status == DNS_TEMPFAIL) {
		j->p->rdns_quiet_until = clock_mono_ns() / NS_PER_MS + RDNS_BACKOFF_MS;
		j->p->rdns_st.failed++;
	} else {
		j->p->rdns_st.unverified++;
	}
	rdns_done(j, "");
}

/* The name's A (AAAA for an IPv6 client) must hold the client's address. */
static void rdns_a(void *user, const struct dns_result *res)
{
	struct rdns_job *j = user;
	const struct net_addr *ip = &j->a->ip;

	if (res->status == DNS_OK)
		for (unsigned i = 0; i < res->n; i++)
			if (net_addr_is_v6(ip) ? res->type == DNS_T_AAAA &&
						 memcmp(res->aaaa[i], ip->v6, 16) == 0
					       : res->type == DNS_T_A && res->a[i] == ip->v4) {
				j->p->rdns_st.named++;
				rdns_done(j, j->name);
				return;
			}
	rdns_failed(j, res);
}

static void rdns_ptr(void *user, const struct dns_result *res)
{
	struct rdns_job *j = user;

	if (res->status != DNS_OK || !res->name[0]) {
		rdns_failed(j, res);
		return;
	}
	snprintf(j->name, sizeof(j->name), "%s", res->name);
	if (dns_lookup(j->p->dns, j->name, net_addr_is_v6(&j->a->ip) ? DNS_T_AAAA : DNS_T_A,
		       rdns_a, j) < 0) {
		j->p->rdns_st.unverified++;
		rdns_done(j, "");
	}
}

static void rdns_start(struct plane *p, struct ask_port *port, struct ask *a)
{
	struct rdns_job *j = NULL;
	char ptr[DNS_PTR6_NAME_MAX];

	p->rdns_st.asked++;
	for (unsigned i = 0; i < RDNS_JOBS && !j; i++)
		if (!p->rdns[i].a)
			j = &p->rdns[i];
	if (!j || clock_mono_ns() / NS_PER_MS < p->rdns_quiet_until) {
		if (j)
			p->rdns_st.skipped++;
		else
			p->rdns_st.busy++;
		a->text[0] = '\0';
		a->status = -1;
		ask_answer(port, a);
		return;
	}
	j->p = p;
	j->port = port;
	j->a = a;
	if (net_addr_is_v6(&a->ip))
		dns_ptr_name6(a->ip.v6, ptr, sizeof(ptr));
	else
		dns_ptr_name(a->ip.v4, ptr, sizeof(ptr));
	if (dns_lookup(p->dns, ptr, DNS_T_PTR, rdns_ptr, j) < 0) {
		p->rdns_st.busy++;
		rdns_done(j, "");
	}
}

/* The lcores' questions. */
static void take_asks(struct plane *p)
{
	struct ask *got[64];

	for (unsigned w = 0; w < p->nworkers; w++) {
		struct ask_port *port = dp_ask_port(p->dp, w);
		unsigned n = port ? ask_take(port, got, 64) : 0;

		for (unsigned i = 0; i < n; i++) {
			if (got[i]->kind == ASK_RDNS) {
				rdns_start(p, port, got[i]);
			} else if (got[i]->kind == ASK_AUTH) {
				/* scrypt: the auth worker's, never this thread's */
				if (!p->auth) {
					OPENSSL_cleanse(got[i]->text, sizeof(got[i]->text));
					got[i]->status = AUTH_BAD;
					ask_answer(port, got[i]);
				} else if (auth_worker_submit(p->auth, got[i], port) < 0) {
					ask_answer(port, got[i]);	/* AUTH_TEMP */
				}
			} else if (got[i]->kind == ASK_ETRN && p->sched) {
				/* ETRN (RFC 1985): the domain's queue run, now */
				unsigned due = 0;
				got[i]->text[sizeof(got[i]->text) - 1] = '\0';
				got[i]->status = sched_flush_domain(p->sched, got[i]->text, &due) ==
						 QUEUE_OK ? (int)due : -1;
				log_info("ETRN %s: %u message(s) made due", got[i]->text, due);
				ask_answer(port, got[i]);
			} else if (got[i]->kind == ASK_MAILLOG) {
				/* a worker's line for the mail log (a reject) */
				got[i]->text[sizeof(got[i]->text) - 1] = '\0';
				maillog(ML_SMTPD, "%s", got[i]->text);
				ask_answer(port, got[i]);
			} else {
				got[i]->status = -1;	/* not a question we take */
				ask_answer(port, got[i]);
			}
		}
	}
}

/* The auth worker's answers, back to the lcores that asked. */
static void auth_answers(struct plane *p)
{
	struct ask *a[64];
	void *port[64];
	unsigned n;

	if (!p->auth)
		return;
	while ((n = auth_worker_done(p->auth, a, port, 64)) > 0)
		for (unsigned i = 0; i < n; i++)
			ask_answer(port[i], a[i]);
	auth_worker_stats_get(p->auth, &p->auth_snap);
}

/* ---- delivery requests -------------------------------------------------------- */

static void flush_request(struct plane *p, struct plane_req *r)
{
	unsigned n = 0;
	uint64_t id;
	int st;

	switch (r->kind) {
	case REQ_FLUSH_ID: {
		/* a = the IDs, blank-separated (checked by parse_request) */
		json_t *ids = json_array();
		char *save = NULL, *w;
		if (!ids) {
			finish(r, false, NULL);
			return;
		}
		for (w = strtok_r(r->a, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
			json_t *row;
			queue_id_parse(w, &id);
			st = sched_flush_id(p->sched, id);
			if (st == QUEUE_OK)
				row = json_pack("{s:s,s:b}", "id", w, "due", 1);
			else
				row = json_pack("{s:s,s:b,s:s}", "id", w, "due", 0, "why",
						st == QUEUE_STATE ? "held, in delivery, or nothing "
						"left to send" : queue_status_str(st));
			n += st == QUEUE_OK;
			json_array_append_new(ids, row);
		}
		finish(r, true, json_pack("{s:{s:o,s:I}}", "flush", "ids", ids, "messages",
					  (json_int_t)n));
		return;
	}
	case REQ_FLUSH_DOMAIN:
		st = sched_flush_domain(p->sched, r->a, &n);
		if (st == QUEUE_OK)
			finish(r, true, json_pack("{s:{s:o,s:I}}", "flush", "domain",
						  ctl_json_text(r->a), "messages", (json_int_t)n));
		else
			finish_error(r, "flush --domain %s: %s", r->a, queue_status_str(st));
		return;
	default:
		st = sched_flush_all(p->sched, &n);
		if (st == QUEUE_OK)
			finish(r, true, json_pack("{s:{s:b,s:I}}", "flush", "all", 1,
						  "messages", (json_int_t)n));
		else
			finish_error(r, "flush --all: %s (%u made due)", queue_status_str(st), n);
		return;
	}
}

/* `bounce ID [--reason TEXT]`: a = ID, b = the reason (may be empty). */
static void bounce_request(struct plane *p, struct plane_req *r)
{
	unsigned n = 0;
	uint64_t id;
	int st;

	queue_id_parse(r->a, &id);	/* checked by parse_request */
	st = sched_bounce_id(p->sched, id, r->b[0] ? r->b : NULL, &n);
	if (st == QUEUE_OK)
		finish(r, true, json_pack("{s:{s:o,s:I}}", "bounce", "id", ctl_json_text(r->a),
					  "recipients", (json_int_t)n));
	else if (st == QUEUE_STATE)
		finish_error(r, "bounce %s: nothing left to bounce (delivered, or not yet "
			     "accepted)", r->a);
	else
		finish_error(r, "bounce %s: %s", r->a, queue_status_str(st));
}

/* `bounce --domain D [--reason TEXT]`: every message with recipients in D,
 * a page of IDs at a time (sched_bounce_id each: the scheduler's own). */
static void bounce_domain_request(struct plane *p, struct plane_req *r)
{
	enum { PAGE = 256 };
	uint64_t ids[PAGE], after = 0;
	unsigned msgs = 0, rcpts = 0;
	size_t k;

	do {
		int st = queue_list_domain(p->q, r->a, after, ids, PAGE, &k);
		if (st != QUEUE_OK) {
			finish_error(r, "bounce --domain %s: %s", r->a, queue_status_str(st));
			return;
		}
		for (size_t i = 0; i < k; i++) {
			unsigned n = 0;
			if (sched_bounce_id(p->sched, ids[i], r->b[0] ? r->b : NULL, &n) == QUEUE_OK) {
				msgs++;
				rcpts += n;
			}
		}
		if (k)
			after = ids[k - 1];
	} while (k == PAGE);
	finish(r, true, json_pack("{s:{s:o,s:I,s:I}}", "bounce", "domain", ctl_json_text(r->a),
				  "messages", (json_int_t)msgs, "recipients", (json_int_t)rcpts));
}

/* suspend DOMAIN [--for T] (b = seconds, "" none), resume DOMAIN, suspend. */
static void suspend_request(struct plane *p, struct plane_req *r)
{
	unsigned n = 0;
	json_t *arr;
	int st;

	switch (r->kind) {
	case REQ_SUSPEND:
		st = sched_suspend_domain(p->sched, r->a, strtoull(r->b, NULL, 10));
		if (st == QUEUE_OK)
			finish(r, true, json_pack("{s:{s:o,s:I}}", "suspend", "domain",
						  ctl_json_text(r->a), "for",
						  (json_int_t)strtoull(r->b, NULL, 10)));
		else
			finish_error(r, "suspend %s: %s", r->a, st == QUEUE_INVALID ?
				     "not a domain" : "too many suspensions");
		return;
	case REQ_RESUME:
		st = sched_resume_domain(p->sched, r->a, &n);
		if (st == QUEUE_OK)
			finish(r, true, json_pack("{s:{s:o,s:I}}", "resume", "domain",
						  ctl_json_text(r->a), "messages", (json_int_t)n));
		else
			finish_error(r, "resume %s: %s", r->a, st == QUEUE_NOTFOUND ?
				     "it is not suspended" : queue_status_str(st));
		return;
	default:
		arr = json_array();
		if (arr)
			sched_suspended_json(p->sched, arr);
		finish(r, arr != NULL, arr ? json_pack("{s:o}", "suspended", arr) : NULL);
		return;
	}
}

/* transfer --to (a = address, b = port, then " held" with --include-held),
 * --cancel, status (sched.h: sched_transfer_*). */
static void transfer_request(struct plane *p, struct plane_req *r)
{
	struct transfer_state xs;
	char err[256];
	uint64_t due = 0;
	int st;

	switch (r->kind) {
	case REQ_TRANSFER:	/* a: the address parse_request checked and wrote */
		if (transfer_dest_parse(r->a, &xs.addr, &xs.port, err, sizeof(err)) < 0)
			memset(&xs.addr, 0, sizeof(xs.addr));	/* refused below */
		xs.port = (uint16_t)strtoul(r->b, NULL, 10);
		xs.include_held = strstr(r->b, "held") != NULL;
		st = sched_transfer_start(p->sched, &xs.addr, xs.port, xs.include_held, &due);
		if (st == QUEUE_STATE) {
			finish_error(r, "transfer: one is on already (transfer --cancel first)");
			return;
		}
		if (st == QUEUE_INVALID) {
			finish_error(r, "transfer: '%s' is not an address to send to", r->a);
			return;
		}
		/* on from here: a restart goes on with it (transfer_state.h) */
		if (transfer_state_save(p->qdir, &xs, err, sizeof(err)) < 0)
			log_err("transfer: %s: a restart would not go on with it", err);
		if (st != QUEUE_OK)
			finish_error(r, "transfer: started, but making the mail due: %s",
				     queue_status_str(st));
		else
			finish(r, true, json_pack("{s:o}", "transfer", sched_transfer_json(p->sched)));
		return;
	case REQ_TRANSFER_CANCEL:
		if (sched_transfer_cancel(p->sched) != QUEUE_OK) {
			finish_error(r, "transfer --cancel: no transfer is on");
			return;
		}
		if (transfer_state_save(p->qdir, NULL, err, sizeof(err)) < 0)
			log_err("transfer --cancel: %s: a restart would start it again", err);
		/* its state now */
		finish(r, true, json_pack("{s:o}", "transfer", sched_transfer_json(p->sched)));
		return;
	default:
		finish(r, true, json_pack("{s:o}", "transfer", sched_transfer_json(p->sched)));
		return;
	}
}

static void route_show_one(void *user, const char *key, const char *spec)
{
	json_array_append_new(user, json_pack("{s:o,s:o}", "domain", ctl_json_text(key), "route",
					      ctl_json_text(spec)));
}

static void dest_request(struct plane *p, struct plane_req *r)
{
	json_t *dests;

	if (r->kind == REQ_DEST_CLEAR) {
		if (sched_dest_clear(p->sched, r->a) < 0)
			finish_error(r, "dest clear: no destination '%s' in memory", r->a);
		else
			finish(r, true, json_pack("{s:{s:o,s:b}}", "dest", "name",
						  ctl_json_text(r->a), "cleared", 1));
		return;
	}
	dests = json_array();
	if (!dests) {
		finish(r, false, NULL);
		return;
	}
	if (sched_dest_json(p->sched, r->a[0] ? r->a : NULL, DEST_SHOW_MAX, dests) == 0 &&
	    r->a[0]) {
		json_decref(dests);
		finish_error(r, "dest show: no destination '%s' in memory", r->a);
		return;
	}
	finish(r, true, json_pack("{s:o}", "dests", dests));
}

/* plane_dest_top's question, if one waits: the scheduler's top list. */
static void top_answer(struct plane *p)
{
	uint64_t asked;

	pthread_mutex_lock(&p->top_mu);
	asked = p->top_asked;
	if (asked != p->top_done) {
		p->ntop = p->sched ? sched_dest_top(p->sched, p->top, PLANE_TOP_MAX) : 0;
		p->top_done = asked;
		pthread_cond_broadcast(&p->top_cv);
	}
	pthread_mutex_unlock(&p->top_mu);
}

/* ---- the thread ------------------------------------------------------------ */

static void start_request(struct plane *p, struct plane_req *r)
{
	char err[256];
	int rc;

	switch (r->kind) {
	case REQ_FLUSH_ID:
	case REQ_FLUSH_DOMAIN:
	case REQ_FLUSH_ALL:
	case REQ_DEST_SHOW:
	case REQ_DEST_CLEAR:
	case REQ_BOUNCE:
	case REQ_BOUNCE_DOMAIN:
	case REQ_SUSPEND:
	case REQ_RESUME:
	case REQ_SUSPEND_SHOW:
	case REQ_TRANSFER:
	case REQ_TRANSFER_CANCEL:
	case REQ_TRANSFER_STATUS:
		if (!p->sched) {
			finish_error(r, "delivery is not running (no queue, or [delivery] enabled "
				     "= no)");
			return;
		}
		if (r->kind >= REQ_TRANSFER)
			transfer_request(p, r);
		else if (r->kind == REQ_BOUNCE)
			bounce_request(p, r);
		else if (r->kind == REQ_BOUNCE_DOMAIN)
			bounce_domain_request(p, r);
		else if (r->kind >= REQ_SUSPEND)
			suspend_request(p, r);
		else if (r->kind >= REQ_DEST_SHOW)
			dest_request(p, r);
		else
			flush_request(p, r);
		return;
	case REQ_ROUTE_LOOKUP:
		rc = route_lookup(p->rt, r->a, route_answer, r);
		if (rc < 0)
			finish_error(r, "route lookup %s: %s", r->a,
				    rc == -EINVAL ? "not a domain" : "too many lookups in progress");
		return;
	case REQ_ROUTE_SET:
		if (route_set(p->rt, r->a, r->b, err, sizeof(err)) < 0)
			finish_error(r, "route set %s: %s", r->a, err);
		else
			finish(r, true, json_pack("{s:{s:o,s:b}}", "route", "domain",
						  ctl_json_text(r->a), "set", 1));
		return;
	case REQ_QUEUE:
		return;		/* the queue thread's (qcmd_submit) */
	case REQ_ROUTE_SHOW: {
		json_t *arr = json_array();
		if (!arr) {
			finish(r, false, NULL);
			return;
		}
		route_visit(p->rt, r->a[0] ? r->a : NULL, route_show_one, arr);
		finish(r, true, json_pack("{s:o}", "routes", arr));
		return;
	}
	case REQ_ROUTE_CLEAR:
		if (route_clear(p->rt, r->a) < 0)
			finish_error(r, "route clear %s: no static route for it", r->a);
		else
			finish(r, true, json_pack("{s:{s:o,s:b}}", "route", "domain",
						  ctl_json_text(r->a), "cleared", 1));
		return;
	case REQ_DNS_BENCH:
		if (p->bench.req) {
			finish_error(r, "dns bench: one is running already");
			return;
		}
		memset(&p->bench, 0, sizeof(p->bench));
		p->bench.req = r;
		p->bench.total = (unsigned)strtoul(r->b, NULL, 10);
		p->bench.cached = strncmp(r->b + strcspn(r->b, " "), " cached", 7) == 0;
		snprintf(p->bench.zone, sizeof(p->bench.zone), "%.199s", r->a);
		p->bench.t0_ns = clock_mono_ns();
		bench_fill(p);
		return;
	case REQ_DNS_LOOKUP:
		rc = dns_lookup(p->dns, r->a, r->dtype, dns_answer, r);
		if (rc < 0)
			finish_error(r, "dns lookup %s: %s", r->a,
				    rc == -EINVAL ? "not a host name" : "resolver busy, try again");
		return;
	}
}

/* ---- reloads ---- */

void plane_update_free(struct plane_update *u)
{
	if (!u)
		return;
	free(u->routes_text);
	quota_map_free(&u->quota_map);
	free(u);
}

void plane_update(struct plane *p, struct plane_update *u)
{
	struct plane_update *old;

	pthread_mutex_lock(&p->mu);
	old = p->update;
	p->update = u;
	pthread_mutex_unlock(&p->mu);
	plane_update_free(old);
	signal_fd(p->wake_fd);
}

uint64_t plane_update_applied(struct plane *p, bool *routes_ok)
{
	if (routes_ok)
		*routes_ok = atomic_load(&p->update_routes_ok);
	return atomic_load(&p->update_done);
}

/* On the plane thread, between two passes: nothing of the router or the
 * scheduler is in use. */
static void take_update(struct plane *p)
{
	struct plane_update *u;
	char err[256];
	int n;
	bool ok = true;

	pthread_mutex_lock(&p->mu);
	u = p->update;
	p->update = NULL;
	pthread_mutex_unlock(&p->mu);
	if (!u)
		return;
	n = route_replace(p->rt, u->relayhost, u->routes_text, u->routes_name, err, sizeof(err));
	if (n < 0) {
		log_err("reload %llu: routes not changed: %s", (unsigned long long)u->gen, err);
		ok = false;
	} else {
		log_info("reload %llu: relayhost '%s', %d static route(s)%s%s",
			 (unsigned long long)u->gen, u->relayhost, n,
			 u->routes_text ? " from " : "", u->routes_text ? u->routes_name : "");
	}
	if (p->sched) {
		p->retry = u->retry;
		p->dest = u->dest;
		sched_policy_reloaded(p->sched);
	}
	if (p->auth && u->auth_users[0]) {
		unsigned users = 0;
		if (auth_worker_reload(p->auth, u->auth_users, &users, err, sizeof(err)) < 0)
			log_err("reload %llu: AUTH users not changed: %s",
				(unsigned long long)u->gen, err);
		else
			log_info("reload %llu: %u AUTH user(s) from %s", (unsigned long long)u->gen,
				 users, u->auth_users);
	}
	if (p->quota) {
		if (quota_policy_set(p->quota, &u->quota_user, &u->quota_client, u->quota_nets,
				     &u->quota_map, err, sizeof(err)) < 0)
			log_err("reload %llu: quotas not changed: %s", (unsigned long long)u->gen,
				err);
		else
			log_info("reload %llu: daily quotas: user %u messages %u recipients, "
				 "client %u messages %u recipients (0: none)",
				 (unsigned long long)u->gen, u->quota_user.messages,
				 u->quota_user.recipients, u->quota_client.messages,
				 u->quota_client.recipients);
	}
	atomic_store(&p->update_routes_ok, ok);
	atomic_store(&p->update_done, u->gen);
	plane_update_free(u);
}

/* The cluster's suspensions, applied to this box's scheduler. */
static void cluster_suspend(void *user, const char *domain, uint64_t for_s)
{
	if (sched_suspend_domain(user, domain, for_s) != QUEUE_OK)
		log_err("cluster: cannot suspend %s here (not a domain, or too many)", domain);
}

static void cluster_resume(void *user, const char *domain)
{
	unsigned n;

	sched_resume_domain(user, domain, &n);	/* not suspended here: nothing to do */
}

/* The cluster's runtime routes, applied to this box's router (as
 * runtime routes: they outlive a reload). */
static void cluster_route_set(void *user, const char *key, const char *spec)
{
	char err[200];

	if (route_set(user, key, spec, err, sizeof(err)) < 0)
		log_err("cluster: cannot set the route of %s here: %s", key, err);
	else
		log_notice("cluster: route of %s set here: %s", key, spec);
}

static void cluster_route_clear(void *user, const char *key)
{
	if (route_clear(user, key) == 0)
		log_notice("cluster: route of %s cleared here", key);
}

/* The cluster's flushes, applied to this box's scheduler. */
static void cluster_flush(void *user, const char *domain)
{
	unsigned n = 0;
	int st = domain ? sched_flush_domain(user, domain, &n) : sched_flush_all(user, &n);

	if (st != QUEUE_OK)
		log_err("cluster: flush of %s here: %s", domain ? domain : "all mail",
			queue_status_str(st));
	else
		log_notice("cluster: flush of %s here: %u message(s) due now",
			   domain ? domain : "all mail", n);
}

static void *run(void *arg)
{
	struct plane *p = arg;

	while (!atomic_load(&p->stop)) {
		struct plane_req *in;
		struct pollfd pfd = { .fd = p->wake_fd, .events = POLLIN };
		struct timespec ts;
		bool busy;
		uint64_t wait;

		pthread_mutex_lock(&p->mu);
		in = p->inbox;
		p->inbox = NULL;
		pthread_mutex_unlock(&p->mu);
		while (in) {
			struct plane_req *next = in->next;
			start_request(p, in);
			in = next;
		}
		take_update(p);
		take_asks(p);
		auth_answers(p);
		top_answer(p);
		dns_poll(p->dns, clock_mono_ns() / NS_PER_MS);
		bench_fill(p);
		if (p->sched && p->cl)	/* the cluster's suspensions, when they changed */
			cluster_sync_suspensions(p->cl, cluster_suspend, cluster_resume, p->sched);
		if (p->cl)	/* its routes and flushes */
			cluster_sync_routes(p->cl, cluster_route_set, cluster_route_clear, p->rt);
		if (p->sched && p->cl)
			cluster_sync_flushes(p->cl, cluster_flush, p->sched);
		if (p->sched) {
			sched_poll(p->sched);
			sched_stats_get(p->sched, &p->sched_snap);
		}
		dns_stats_get(p->dns, &p->dns_snap);
		route_stats_get(p->rt, &p->route_snap);
		busy = p->dns_snap.queries_in_flight > 0 || p->bench.req;
		wait = (busy ? BUSY_WAIT_MS : IDLE_WAIT_MS) * NS_PER_MS;
		if (p->sched) {	/* no later than the scheduler wants its next pass: to
				 * the ns, or a rate limit loses what rounding costs */
			uint64_t now = clock_mono_ns(), wake = sched_wake_ns(p->sched);
			uint64_t ns = wake > now ? wake - now : 0;
			if (ns < wait)
				wait = ns;
		}
		ts.tv_sec = (time_t)(wait / NS_PER_SEC);
		ts.tv_nsec = (long)(wait % NS_PER_SEC);
		if (ppoll(&pfd, 1, &ts, NULL) > 0)
			drain_fd(p->wake_fd);
	}
	if (p->sched) {
		sched_quiesce(p->sched);
		sched_stats_get(p->sched, &p->sched_snap);
	}
	return NULL;
}

/* ---- the main thread's side ---------------------------------------------------- */

/* A transfer that was on when the box stopped goes on (transfer_state.h).
 * Before the plane's thread runs: the scheduler is still this thread's. */
static void transfer_resume(struct plane *p)
{
	struct transfer_state xs;
	char err[256], ip[NET_ADDR_STRLEN];
	uint64_t due = 0;
	int rc = transfer_state_load(p->qdir, &xs, err, sizeof(err));

	if (rc < 0)
		log_err("transfer: %s: no transfer started; give `sluicectl transfer --to` again",
			err);
	if (rc <= 0)
		return;
	net_addr_str(&xs.addr, ip, sizeof(ip));
	rc = sched_transfer_start(p->sched, &xs.addr, xs.port, xs.include_held, &due);
	if (rc != QUEUE_OK && rc != QUEUE_STATE)
		log_err("transfer: going on with the one to %s port %u after the restart: %s", ip,
			(unsigned)xs.port, queue_status_str(rc));
	else
		log_notice("transfer: the one to %s port %u was on when this box stopped: it goes "
			   "on (%llu made due)", ip, (unsigned)xs.port, (unsigned long long)due);
}

/* The scheduler on q and the dataplane's delivery ports. 0 or -1 with err. */
static int sched_start(struct plane *p, const struct sluice_config *cfg, struct dataplane *dp,
		       struct queue *q, char *err, size_t errlen)
{
	struct sched_conf sc;
	struct sched_env env;
	const char *key = NULL;

	memset(&env, 0, sizeof(env));
	if (config_retry_policy(cfg, &p->retry, &key, err, errlen) < 0 ||
	    config_dest_policy(cfg, &p->dest, &key, err, errlen) < 0)
		return -1;	/* cannot happen: config_check built them */
	config_sched(cfg, &sc);
	env.q = q;
	env.rt = p->rt;
	env.retry = &p->retry;
	env.dest = &p->dest;
	env.cluster = p->cl;
	env.nports = dp_workers(dp);
	if (env.nports > SCHED_PORTS_MAX) {
		snprintf(err, errlen, "delivery: %u workers, the scheduler serves %d", env.nports,
			 SCHED_PORTS_MAX);
		return -1;
	}
	for (unsigned w = 0; w < env.nports; w++)
		env.ports[w] = dp_delivery_port(dp, w);
	env.quota = p->quota;
	p->sched = sched_create(&sc, &env, err, errlen);
	if (!p->sched)
		return -1;
	transfer_resume(p);
	log_info("delivery: scheduler on %u worker(s): %u message parts in memory, %zu MiB of "
		 "bodies, %u jobs at once", env.nports, sc.active_limit, sc.body_memory >> 20,
		 sc.jobs_max);
	if (sc.notice_hold_ns)
		log_warn("delivery: [impair] notice_hold is set: DSNs and their originals' "
			 "results are held back (tests only)");
	return 0;
}

struct plane *plane_start(const struct sluice_config *cfg, struct dataplane *dp,
			  struct queue *q, char *err, size_t errlen)
{
	struct plane *p = calloc(1, sizeof(*p));
	struct dns_conf dc;
	struct route_conf rc;
	uint64_t seed = 0;
	int n;

	if (!p) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	p->reply_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	pthread_mutex_init(&p->mu, NULL);
	pthread_mutex_init(&p->top_mu, NULL);
	{
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&p->top_cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	for (unsigned i = 0; i < PLANE_REQ_MAX; i++) {
		p->pool[i].p = p;
		push(&p->freelist, &p->pool[i]);
	}
	if (p->wake_fd < 0 || p->reply_fd < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	config_dns(cfg, &dc);
	p->dns = dns_create(&dc, dp_dpsock_hub(dp, 0), clock_mono_ns() / NS_PER_MS);
	if (!p->dns) {
		snprintf(err, errlen, "resolver: cannot start with servers '%s'", dc.servers);
		goto fail;
	}
	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = clock_mono_ns();
	config_route(cfg, &rc);
	p->rt = router_create(&rc, p->dns, seed);
	if (!p->rt) {
		snprintf(err, errlen, "router: bad relayhost '%s'", rc.relayhost);
		goto fail;
	}
	n = config_routes_load(cfg, p->rt, err, errlen);
	if (n < 0)
		goto fail;
	if (n > 0)
		log_info("routes: %d static route(s) from %s", n, cfg->routes.file);
	p->dp = dp;
	p->nworkers = dp_workers(dp);
	p->q = q;
	snprintf(p->qdir, sizeof(p->qdir), "%s", cfg->queue.dir);
	if (maillog_open(cfg->log.mail, cfg->smtp.hostname, err, errlen) < 0)
		goto fail;
	if (q) {	/* the quota store beside the queue's shards */
		char dir[CONFIG_PATH_MAX + 8];
		snprintf(dir, sizeof(dir), "%s/quota", cfg->queue.dir);
		if (!(p->quota = quota_open(dir, err, errlen)) ||
		    plane_quota_policy(p->quota, cfg, err, errlen) < 0)
			goto fail;
	}
	if (cfg->cluster.redis[0]) {
		struct cluster_conf cc;
		config_cluster(cfg, &cc);
		p->cl = cluster_start(&cc, q, err, errlen);
		if (!p->cl)
			goto fail;
		if (dp && dp_client_share(dp))	/* [limits] message rates, cluster-wide */
			cluster_client_share(p->cl, dp_client_share(dp));
		if (p->quota)	/* [quota] daily quotas, cluster-wide */
			quota_set_elsewhere(p->quota, cluster_quota, p->cl);
	}
	if (q && cfg->delivery.enabled && sched_start(p, cfg, dp, q, err, errlen) < 0)
		goto fail;
	if (q && !(p->qcmd = qcmd_start(q, err, errlen)))
		goto fail;
	if (cfg->auth.users[0]) {
		p->auth = auth_worker_start(cfg->auth.users, p->wake_fd, err, errlen);
		if (!p->auth)
			goto fail;
		log_info("auth: password checks on their own thread, users from %s",
			 cfg->auth.users);
	}
	atomic_init(&p->stop, false);
	if (pthread_create(&p->thread, NULL, run, p) != 0) {
		snprintf(err, errlen, "cannot start the control-plane thread");
		goto fail;
	}
	p->started = true;
	pthread_setname_np(p->thread, "sluice-plane");
	return p;
fail:
	plane_stop(p);
	plane_free(p);
	return NULL;
}

void plane_stop(struct plane *p)
{
	if (!p)
		return;
	if (p->started) {
		atomic_store(&p->stop, true);
		signal_fd(p->wake_fd);
		pthread_join(p->thread, NULL);
		p->started = false;
	}
	qcmd_stop(p->qcmd);	/* its answers still go to the outbox */
	p->qcmd = NULL;
	if (p->quota)	/* nothing counts through the cluster any more */
		quota_set_elsewhere(p->quota, NULL, NULL);
	cluster_stop(p->cl);	/* the scheduler no longer asks it: the thread ended */
	p->cl = NULL;
	auth_worker_stop(p->auth);
	p->auth = NULL;
	/* the router first: its lookups in progress name the scheduler's */
	if (p->rt)
		router_destroy(p->rt);
	p->rt = NULL;
	if (p->dns)
		dns_destroy(p->dns);
	p->dns = NULL;
}

void plane_free(struct plane *p)
{
	if (!p)
		return;
	plane_stop(p);
	sched_destroy(p->sched);
	quota_close(p->quota);
	for (unsigned i = 0; i < PLANE_REQ_MAX; i++)
		json_decref(p->pool[i].reply);
	if (p->wake_fd >= 0)
		close(p->wake_fd);
	if (p->reply_fd >= 0)
		close(p->reply_fd);
	plane_update_free(p->update);
	pthread_mutex_destroy(&p->mu);
	pthread_mutex_destroy(&p->top_mu);
	pthread_cond_destroy(&p->top_cv);
	free(p);
	maillog_close();
}

/* Copy word w into an argument buffer; false when it does not fit. */
static bool arg(char *dst, const char *w)
{
	size_t n = strlen(w);

	if (n >= ARG_MAX)
		return false;
	memcpy(dst, w, n + 1);
	return true;
}

/* Words argv[0..argc) joined by blanks into dst; false when they do not fit. */
static bool args_joined(char *dst, int argc, char **argv)
{
	size_t n = 0;

	dst[0] = '\0';
	for (int i = 0; i < argc; i++) {
		int w = snprintf(dst + n, ARG_MAX - n, "%s%s", i ? " " : "", argv[i]);
		if (w < 0 || (size_t)w >= ARG_MAX - n)
			return false;
		n += (size_t)w;
	}
	return true;
}

/*
 * Parse a request (command cmd, sub-command sub or NULL, and the argc words
 * after them) into r: 0, PLANE_USAGE (the words do not fit the command),
 * or -1 with err.
 */
static int parse_request(struct plane_req *r, const char *cmd, const char *sub, int argc,
			 char **argv, char *err, size_t errlen)
{
	const char *verb = sub ? sub : "";

	for (int i = 0; i < argc; i++)
		if (strlen(argv[i]) >= ARG_MAX) {
			snprintf(err, errlen, "argument %d is over %d bytes", i + 1, ARG_MAX - 1);
			return -1;
		}
	r->a[0] = r->b[0] = '\0';
	if (strcmp(cmd, "route") == 0) {
		if (strcmp(verb, "lookup") == 0 && argc == 1 && arg(r->a, argv[0])) {
			r->kind = REQ_ROUTE_LOOKUP;
			return 0;
		}
		if (strcmp(verb, "show") == 0 && argc <= 1 && (!argc || arg(r->a, argv[0]))) {
			r->kind = REQ_ROUTE_SHOW;
			return 0;
		}
		/* route set DOMAIN SPEC: a spec may hold blanks ("[a]:25 tls=verify") */
		if (strcmp(verb, "set") == 0 && argc >= 2 && arg(r->a, argv[0]) &&
		    args_joined(r->b, argc - 1, argv + 1)) {
			r->kind = REQ_ROUTE_SET;
			return 0;
		}
		if (strcmp(verb, "clear") == 0 && argc == 1 && arg(r->a, argv[0])) {
			r->kind = REQ_ROUTE_CLEAR;
			return 0;
		}
		return PLANE_USAGE;
	}
	if (strcmp(cmd, "dns") == 0 && strcmp(verb, "bench") == 0) {
		/* dns bench N cached|uncached ZONE: a = ZONE, b = "N cached" */
		unsigned long count;
		char *end;
		if (argc != 3)
			return PLANE_USAGE;
		count = strtoul(argv[0], &end, 10);
		if (count == 0 || count > BENCH_MAX || *end || argv[0][0] == '-' ||
		    !arg(r->a, argv[2]) || dns_name_check(r->a) < 0 ||
		    (strcmp(argv[1], "cached") != 0 && strcmp(argv[1], "uncached") != 0)) {
			snprintf(err, errlen, "usage: dns bench N cached|uncached ZONE (N <= %u)",
				 BENCH_MAX);
			return -1;
		}
		snprintf(r->b, ARG_MAX, "%lu %.16s", count, argv[1]);
		r->kind = REQ_DNS_BENCH;
		return 0;
	}
	if (strcmp(cmd, "dns") == 0) {
		if (strcmp(verb, "lookup") != 0 || argc != 2 || !arg(r->a, argv[0]) ||
		    !arg(r->b, argv[1]))
			return PLANE_USAGE;
		r->kind = REQ_DNS_LOOKUP;
		if (strcasecmp(r->b, "a") == 0) {
			r->dtype = DNS_T_A;
		} else if (strcasecmp(r->b, "aaaa") == 0) {
			r->dtype = DNS_T_AAAA;
		} else if (strcasecmp(r->b, "mx") == 0) {
			r->dtype = DNS_T_MX;
		} else if (strcasecmp(r->b, "ptr") == 0) {
			struct in_addr a;
			if (inet_pton(AF_INET, r->a, &a) != 1) {
				snprintf(err, errlen, "dns lookup %s ptr: not an IPv4 address", r->a);
				return -1;
			}
			r->dtype = DNS_T_PTR;
			dns_ptr_name(a.s_addr, r->a, sizeof(r->a));
		} else {
			snprintf(err, errlen, "dns lookup: type '%s' is not a, mx or ptr", r->b);
			return -1;
		}
		return 0;
	}
	if (strcmp(cmd, "flush") == 0) {
		uint64_t id;
		if (argc == 0 || (argc == 1 && strcmp(argv[0], "--all") == 0)) {
			r->kind = REQ_FLUSH_ALL;
			return 0;
		}
		if (argc == 2 && strcmp(argv[0], "--domain") == 0 && arg(r->a, argv[1])) {
			if (dns_name_check(r->a) < 0) {
				snprintf(err, errlen, "flush --domain: '%s' is not a domain", r->a);
				return -1;
			}
			r->kind = REQ_FLUSH_DOMAIN;
			return 0;
		}
		/* flush ID...: a = the IDs joined (as many as fit ARG_MAX) */
		for (int i = 0; i < argc; i++) {
			if (argv[i][0] == '-')
				return PLANE_USAGE;
			if (queue_id_parse(argv[i], &id) < 0) {
				snprintf(err, errlen, "flush: '%.40s' is not a queue ID", argv[i]);
				return -1;
			}
		}
		if (!args_joined(r->a, argc, argv)) {
			snprintf(err, errlen, "flush: too many IDs at once");
			return -1;
		}
		r->kind = REQ_FLUSH_ID;
		return 0;
	}
	if (strcmp(cmd, "suspend") == 0 || strcmp(cmd, "resume") == 0) {
		/* suspend DOMAIN [--for T] (b = T in seconds), resume DOMAIN, suspend */
		bool susp = cmd[0] == 's';
		unsigned long long secs = 0;
		if (susp && argc == 0) {
			r->kind = REQ_SUSPEND_SHOW;
			return 0;
		}
		if (!(argc == 1 || (susp && argc == 3 && strcmp(argv[1], "--for") == 0)) ||
		    argv[0][0] == '-' || !arg(r->a, argv[0]))
			return PLANE_USAGE;
		if (dns_name_check(r->a) < 0) {
			snprintf(err, errlen, "%s: '%s' is not a domain", cmd, r->a);
			return -1;
		}
		if (argc == 3 && (qcmd_duration(argv[2], &secs) < 0 || secs == 0)) {
			snprintf(err, errlen, "suspend --for: '%.40s' is not a duration (30s, 5m, "
				 "2h, 1d)", argv[2]);
			return -1;
		}
		snprintf(r->b, ARG_MAX, "%llu", secs);
		r->kind = susp ? REQ_SUSPEND : REQ_RESUME;
		return 0;
	}
	if (strcmp(cmd, "transfer") == 0) {
		/* transfer [status] | --cancel | --to HOST[:PORT] [--include-held]:
		 * a = the address (either family), b = "PORT" or "PORT held" */
		struct net_addr to;
		char host[ARG_MAX];
		uint16_t port;
		if (argc == 0 || (argc == 1 && strcmp(argv[0], "status") == 0)) {
			r->kind = REQ_TRANSFER_STATUS;
			return 0;
		}
		if (argc == 1 && strcmp(argv[0], "--cancel") == 0) {
			r->kind = REQ_TRANSFER_CANCEL;
			return 0;
		}
		if (!(argc == 2 || (argc == 3 && strcmp(argv[2], "--include-held") == 0)) ||
		    strcmp(argv[0], "--to") != 0 || !arg(host, argv[1]))
			return PLANE_USAGE;
		if (transfer_dest_parse(host, &to, &port, err, errlen) < 0)
			return -1;
		net_addr_str(&to, r->a, ARG_MAX);
		snprintf(r->b, ARG_MAX, "%u%s", (unsigned)port, argc == 3 ? " held" : "");
		r->kind = REQ_TRANSFER;
		return 0;
	}
	if (strcmp(cmd, "bounce") == 0 && argc >= 2 && strcmp(argv[0], "--domain") == 0) {
		/* bounce --domain D [--reason TEXT] */
		if ((argc != 2 && (argc < 4 || strcmp(argv[2], "--reason") != 0)) ||
		    !arg(r->a, argv[1]) || (argc >= 4 && !args_joined(r->b, argc - 3, argv + 3)))
			return PLANE_USAGE;
		if (dns_name_check(r->a) < 0) {
			snprintf(err, errlen, "bounce --domain: '%s' is not a domain", r->a);
			return -1;
		}
		r->kind = REQ_BOUNCE_DOMAIN;
		return 0;
	}
	if (strcmp(cmd, "bounce") == 0) {
		/* bounce ID [--reason TEXT]: a = ID, b = TEXT (the words joined) */
		uint64_t id;
		if (argc != 1 && (argc < 3 || strcmp(argv[1], "--reason") != 0))
			return PLANE_USAGE;
		if (argv[0][0] == '-' || !arg(r->a, argv[0]) ||
		    (argc >= 3 && !args_joined(r->b, argc - 2, argv + 2)))
			return PLANE_USAGE;
		if (queue_id_parse(r->a, &id) < 0) {
			snprintf(err, errlen, "bounce: '%s' is not a queue ID", r->a);
			return -1;
		}
		r->kind = REQ_BOUNCE;
		return 0;
	}
	if (strcmp(cmd, "dest") == 0) {
		/* a key may hold blanks ("10 [a]:25, 20 [b]:25"): all the words */
		if (strcmp(verb, "show") == 0 && args_joined(r->a, argc, argv)) {
			r->kind = REQ_DEST_SHOW;
			return 0;
		}
		if (strcmp(verb, "clear") == 0 && argc >= 1 && args_joined(r->a, argc, argv)) {
			r->kind = REQ_DEST_CLEAR;
			return 0;
		}
		return PLANE_USAGE;
	}
	snprintf(err, errlen, "the control plane has no '%s' requests", cmd);
	return -1;
}

/* A queue command's answer, from the queue thread (finish is safe there). */
static void qcmd_done(void *user, bool ok, json_t *value)
{
	finish(user, ok, value);
}

int plane_submit(struct plane *p, const char *cmd, const char *sub, int argc, char **argv,
		 struct ctl_ticket t, char *err, size_t errlen)
{
	struct plane_req *r;
	int rc;

	pthread_mutex_lock(&p->mu);
	r = p->freelist;
	if (r)
		p->freelist = r->next;
	pthread_mutex_unlock(&p->mu);
	if (!r) {
		snprintf(err, errlen, "%d requests already waiting for the control plane; "
			 "try again", PLANE_REQ_MAX);
		return -1;
	}
	json_decref(r->reply);
	r->reply = NULL;
	r->ticket = t;
	if (strcmp(cmd, "cluster") == 0) {
		/* the cluster thread answers it: finish() from there */
		char *words[20];	/* a route's spec is several */
		r->kind = REQ_QUEUE;
		rc = -1;
		if (!p->cl)
			snprintf(err, errlen, "this box is in no cluster ([cluster] redis is not set)");
		else if (!sub || argc > 18)
			rc = PLANE_USAGE;
		else {
			words[0] = (char *)sub;
			for (int i = 0; i < argc; i++)
				words[i + 1] = argv[i];
			rc = cluster_submit(p->cl, argc + 1, words, qcmd_done, r, err, errlen);
			if (rc == CLUSTER_USAGE)
				rc = PLANE_USAGE;
		}
		if (rc != 0) {
			pthread_mutex_lock(&p->mu);
			push(&p->freelist, r);
			pthread_mutex_unlock(&p->mu);
		}
		return rc;
	}
	if (qcmd_handles(cmd, sub)) {
		/* the queue thread answers it: finish() from there */
		r->kind = REQ_QUEUE;
		rc = p->qcmd ? qcmd_submit(p->qcmd, cmd, sub, argc, argv, qcmd_done, r, err, errlen) :
			       (snprintf(err, errlen, "sluiced has no queue"), -1);
		if (rc == QCMD_USAGE)
			rc = PLANE_USAGE;
		if (rc < 0) {
			pthread_mutex_lock(&p->mu);
			push(&p->freelist, r);
			pthread_mutex_unlock(&p->mu);
		}
		return rc;
	}
	rc = parse_request(r, cmd, sub, argc, argv, err, errlen);
	if (rc < 0) {
		pthread_mutex_lock(&p->mu);
		push(&p->freelist, r);
		pthread_mutex_unlock(&p->mu);
		return rc;
	}
	pthread_mutex_lock(&p->mu);
	push(&p->inbox, r);
	pthread_mutex_unlock(&p->mu);
	signal_fd(p->wake_fd);
	return 0;
}

int plane_reply_fd(const struct plane *p)
{
	return p->reply_fd;
}

unsigned plane_take_replies(struct plane *p,
			    void (*fn)(void *user, struct ctl_ticket t, bool ok, json_t *value),
			    void *user)
{
	struct plane_req *out, *r;
	unsigned n = 0;

	drain_fd(p->reply_fd);
	pthread_mutex_lock(&p->mu);
	out = p->outbox;
	p->outbox = NULL;
	pthread_mutex_unlock(&p->mu);
	while (out) {
		r = out;
		out = out->next;
		fn(user, r->ticket, r->ok, r->reply);	/* takes the reference */
		r->reply = NULL;
		n++;
		pthread_mutex_lock(&p->mu);
		push(&p->freelist, r);
		pthread_mutex_unlock(&p->mu);
	}
	return n;
}

int plane_auth_reload(struct plane *p, const char *path, unsigned *users, char *err, size_t n)
{
	if (!p->auth) {
		snprintf(err, n, "no [auth] users file at start-up: no AUTH to change");
		return -1;
	}
	return auth_worker_reload(p->auth, path, users, err, n);
}

void plane_stats_visit(struct plane *p, stats_visit_fn fn, void *user)
{
	stats_visit(fn, user, "dns", dns_stat_names, STATS_VALUES(&p->dns_snap), dns_stat_count);
	stats_visit(fn, user, "route", route_stat_names, STATS_VALUES(&p->route_snap),
		    route_stat_count);
	stats_visit(fn, user, "rdns", rdns_stat_names, STATS_VALUES(&p->rdns_st),
		    STATS_COUNT(rdns_stat_names));
	if (p->sched)
		stats_visit(fn, user, "sched", sched_stat_names, STATS_VALUES(&p->sched_snap),
			    sched_stat_count);
	if (p->auth)
		stats_visit(fn, user, "auth", auth_worker_stat_names, STATS_VALUES(&p->auth_snap),
			    auth_worker_stat_count);
	if (p->quota) {
		struct quota_stats qs;
		quota_stats_get(p->quota, &qs);
		stats_visit(fn, user, "quota", quota_stat_names, STATS_VALUES(&qs),
			    quota_stat_count);
	}
	if (p->cl) {
		struct cluster_stats cs;
		cluster_stats_get(p->cl, &cs);
		stats_visit(fn, user, "cluster", cluster_stat_names, STATS_VALUES(&cs),
			    cluster_stat_count);
	}
}

struct quota *plane_quota(struct plane *p)
{
	return p ? p->quota : NULL;
}

int plane_quota_policy(struct quota *qs, const struct sluice_config *cfg, char *err, size_t n)
{
	struct quota_limit user = { cfg->quota.user_messages, cfg->quota.user_recipients };
	struct quota_limit client = { cfg->quota.client_messages, cfg->quota.client_recipients };
	struct quota_map m = { 0, NULL };

	if (cfg->quota.map[0] && quota_map_load(&m, cfg->quota.map, err, n) < 0)
		return -1;
	return quota_policy_set(qs, &user, &client, cfg->smtp.mynetworks, &m, err, n);
}

int plane_dest_top(struct plane *p, struct sched_dest_count *out, unsigned max,
		   unsigned timeout_ms)
{
	struct timespec until;
	uint64_t gen;
	int rc = 0;
	unsigned n;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&p->top_mu);
	gen = ++p->top_asked;
	pthread_mutex_unlock(&p->top_mu);
	signal_fd(p->wake_fd);
	pthread_mutex_lock(&p->top_mu);
	while (p->top_done < gen && rc == 0)
		rc = pthread_cond_timedwait(&p->top_cv, &p->top_mu, &until);
	if (p->top_done < gen) {
		pthread_mutex_unlock(&p->top_mu);
		return -1;
	}
	n = p->ntop < max ? p->ntop : max;
	memcpy(out, p->top, n * sizeof(*out));
	pthread_mutex_unlock(&p->top_mu);
	return (int)n;
}
