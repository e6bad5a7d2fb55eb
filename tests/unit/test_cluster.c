/*
 * test_cluster.c - the cluster's Redis side (control/cluster.h) against a
 * real redis-server this test starts on a Unix socket of its own: the lease
 * and GCRA scripts one call at a time (with the caller's clock, so expiry
 * and rates are exact), then two cluster modules sharing one Redis as two
 * boxes would (leases, shared rate, suspensions, the registry), and the
 * fallback when Redis is unreachable. A Redis that cannot be started or
 * reached fails the test: nothing here passes without one.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>

#include "common/clock.h"
#include "common/log.h"
#include "control/cluster.h"
#include "control/dest.h"
#include "control/quota.h"
#include "control/rate.h"
#include "dataplane/smtp/client_share.h"

#define PREFIX_LEASE "sluice:lease:"

static char dir[64], sock[128];
static pid_t redis_pid;
static redisContext *rc;

static redisContext *connect_sock(void)
{
	struct timeval tv = { 1, 0 };
	redisContext *c = redisConnectUnixWithTimeout(sock, tv);

	if (c && c->err) {
		redisFree(c);
		return NULL;
	}
	return c;
}

/* A redis-server on sock (in dir), and rc connected to it. */
static void redis_spawn(void)
{
	redis_pid = fork();
	cr_assert(redis_pid >= 0);
	if (redis_pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0) {	/* not the test's output: the runner waits for it */
			dup2(null, 1);
			dup2(null, 2);
		}
		execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", sock,
		       "--save", "", "--appendonly", "no", "--dir", dir, "--logfile", "/dev/null",
		       (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 100 && !rc; i++) {
		rc = connect_sock();
		if (!rc)
			usleep(50 * 1000);
	}
	cr_assert_not_null(rc, "redis-server did not come up on %s (is redis-server installed?)",
			   sock);
}

static void redis_up(void)
{
	snprintf(dir, sizeof(dir), "/tmp/sluice-cluster-XXXXXX");
	cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
	snprintf(sock, sizeof(sock), "%s/redis.sock", dir);
	redis_spawn();
}

static void redis_down(void)
{
	if (rc)
		redisFree(rc);
	rc = NULL;
	if (redis_pid > 0) {
		kill(redis_pid, SIGKILL);
		waitpid(redis_pid, NULL, 0);
	}
	redis_pid = 0;
	unlink(sock);
	rmdir(dir);
}

TestSuite(cluster, .init = redis_up, .fini = redis_down, .timeout = 60);

/* EVAL the lease script: {granted, others, hungry others}. */
static void lease(const char *dest, const char *box, unsigned want, unsigned limit,
		  long long now_ms, long long ttl_ms, long long out[3])
{
	redisReply *r = redisCommand(rc, "EVAL %s 2 lease:%s hungry:%s %s %u %u %lld %lld",
				     cluster_lease_lua, dest, dest, box, want, limit, now_ms,
				     ttl_ms);

	cr_assert_not_null(r, "no reply");
	cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "lease script: %s",
		     r->type == REDIS_REPLY_ERROR ? r->str : "not an array");
	cr_assert_eq(r->elements, 3);
	for (int i = 0; i < 3; i++)
		out[i] = r->element[i]->integer;
	freeReplyObject(r);
}

static long long zcard(const char *key)
{
	redisReply *r = redisCommand(rc, "ZCARD %s", key);
	long long n;

	cr_assert(r && r->type == REDIS_REPLY_INTEGER);
	n = r->integer;
	freeReplyObject(r);
	return n;
}

Test(cluster, leases_share_a_limit_and_expire)
{
	long long g[3];

	lease("d", "a", 4, 10, 1000, 500, g);
	cr_assert_eq(g[0], 4, "a asked 4 of 10: %lld", g[0]);
	cr_assert_eq(g[1], 0);
	lease("d", "b", 8, 10, 1010, 500, g);
	cr_assert_eq(g[0], 6, "b gets what a left: %lld", g[0]);
	cr_assert_eq(g[1], 4);
	cr_assert_eq(zcard("lease:d"), 10, "never more members than the limit");
	/* a renews and sees b hungry */
	lease("d", "a", 4, 10, 1100, 500, g);
	cr_assert_eq(g[0], 4);
	cr_assert_eq(g[2], 1, "b asked for more than it got: a is told");
	/* a lower limit never takes back leases in use */
	lease("d", "a", 4, 2, 1120, 500, g);
	cr_assert_eq(g[0], 4, "a keeps what it holds and wants");
	/* a releases: b takes them */
	lease("d", "a", 0, 10, 1200, 500, g);
	cr_assert_eq(g[0], 0);
	lease("d", "b", 10, 10, 1210, 500, g);
	cr_assert_eq(g[0], 10);
	cr_assert_eq(g[2], 0, "nobody hungry");
	/* b dies (stops renewing): past its expiry a gets them all */
	lease("d", "a", 10, 10, 1709, 500, g);
	cr_assert_eq(g[0], 0, "b's leases still live at 1709: %lld", g[0]);
	lease("d", "a", 10, 10, 1711, 500, g);
	cr_assert_eq(g[0], 10, "b's leases expired at 1710: %lld", g[0]);
	cr_assert_eq(zcard("lease:d"), 10);
}

/* EVAL the GCRA script: {cells, wait_us}. */
static void gcra(long long t_us, unsigned burst, unsigned want, long long now_us, long long out[2])
{
	redisReply *r = redisCommand(rc, "EVAL %s 1 rate:d %lld %u %u %lld", cluster_gcra_lua,
				     t_us, burst, want, now_us);

	cr_assert_not_null(r);
	cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "gcra script: %s",
		     r->type == REDIS_REPLY_ERROR ? r->str : "not an array");
	out[0] = r->element[0]->integer;
	out[1] = r->element[1]->integer;
	freeReplyObject(r);
}

Test(cluster, gcra_grants_bursts_and_holds_the_rate)
{
	const long long t0 = 1700000000000000ll, T = 10000;	/* 100/s */
	long long g[2], total = 0;

	gcra(T, 10, 10, t0, g);
	cr_assert_eq(g[0], 10, "a full burst at once");
	gcra(T, 10, 5, t0, g);
	cr_assert_eq(g[0], 0);
	cr_assert_eq(g[1], T, "one cell in T: %lld", g[1]);
	gcra(T, 10, 10, t0 + 5 * T, g);
	cr_assert_eq(g[0], 5, "five intervals, five cells: %lld", g[0]);
	/* three boxes asking batches of 10 every 7 ms for 20 s: 100/s in all */
	for (long long t = t0 + 5 * T; t < t0 + 5 * T + 20000000; t += 7000)
		for (int box = 0; box < 3; box++) {
			gcra(T, 10, 10, t, g);
			total += g[0];
		}
	cr_assert(total >= 1980 && total <= 2010, "20 s at 100/s: %lld cells", total);
}

/* EVAL the client script: the cells granted. */
static long long client(long long t_us, unsigned limit, unsigned charge, unsigned want,
			long long now_us, unsigned reserve)
{
	redisReply *r = redisCommand(rc, "EVAL %s 1 client:x %lld %u %u %u %lld %u",
				     cluster_client_lua, t_us, limit, charge, want, now_us, reserve);
	long long n;

	cr_assert_not_null(r);
	cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "client script: %s",
		     r->type == REDIS_REPLY_ERROR ? r->str : "not an integer");
	n = r->integer;
	freeReplyObject(r);
	return n;
}

Test(cluster, client_script_charges_then_grants)
{
	const long long t0 = 1700000000000000ll, T = 500000;	/* 20 per 10 s */

	cr_assert_eq(client(T, 20, 0, 4, t0, 0), 4, "a batch from a full bucket");
	cr_assert_eq(client(T, 20, 10, 0, t0, 0), 0, "a charge alone grants nothing");
	cr_assert_eq(client(T, 20, 0, 10, t0, 2), 4, "20 - 4 - 10 - the reserve of 2 left");
	cr_assert_eq(client(T, 20, 0, 10, t0, 0), 2, "the reserve, when none is asked for");
	cr_assert_eq(client(T, 20, 0, 1, t0, 0), 0, "none left");
	cr_assert_eq(client(T, 20, 3, 0, t0, 0), 0, "charged past the burst (spent elsewhere)");
	cr_assert_eq(client(T, 20, 0, 1, t0 + 3 * T, 0), 0, "the overdraft is paid back first");
	cr_assert_eq(client(T, 20, 0, 5, t0 + 5 * T, 0), 2, "then the rate");
	cr_assert_eq(client(T, 20, 0, 5, t0 + 9 * T, 3), 1, "4 back, 3 kept back");
}

/* Two boxes' lcores (a client_share and a client_limits each) sending one
 * client's messages as fast as they can, each through its own cluster
 * module, for secs: the messages let through in all. */
static unsigned two_boxes_send(struct cluster *a, struct cluster *b, uint32_t limit,
			       uint64_t window_ns, double secs, unsigned *only_a)
{
	struct client_share *sa = cs_create(), *sb = cs_create();
	struct client_limits *ta = cl_create(1), *tb = cl_create(2);
	struct cl_key k = cl_key_addr(0xc6120001);
	uint64_t t0 = clock_mono_ns(), end = t0 + (uint64_t)(secs * 1e9);
	unsigned n = 0, na = 0;

	cr_assert(sa && sb && ta && tb);
	cluster_client_share(a, sa);
	if (b)
		cluster_client_share(b, sb);
	for (int i = 0; i < 300 && (atomic_load(&sa->boxes) != 2 ||
				    (b && atomic_load(&sb->boxes) != 2)); i++)
		usleep(10000);	/* both registered, and both have read it */
	cr_assert_eq(atomic_load(&sa->boxes), 2, "box a sees %u boxes", atomic_load(&sa->boxes));
	t0 = clock_mono_ns();
	end = t0 + (uint64_t)(secs * 1e9);
	while (clock_mono_ns() < end) {
		uint64_t now = clock_mono_ns();
		if (cs_take(sa, ta, &k, "a:198.18.200.1", CL_MSG, limit, window_ns, now) == 0)
			n++, na++;
		if (b && cs_take(sb, tb, &k, "a:198.18.200.1", CL_MSG, limit, window_ns, now) == 0)
			n++;
		usleep(2000);
	}
	cluster_stop(a);	/* before the slots go */
	if (b)
		cluster_stop(b);
	cs_free(sa);
	cs_free(sb);
	cl_free(ta);
	cl_free(tb);
	if (only_a)
		*only_a = na;
	return n;
}

/* ---- two cluster modules on one Redis --------------------------------------------- */

static struct cluster *box(const char *name, const char *redis)
{
	struct cluster_conf c = { .lease_ttl_ns = 2 * NS_PER_SEC };
	char err[256];
	struct cluster *cl;

	snprintf(c.redis, sizeof(c.redis), "%s", redis);
	snprintf(c.name, sizeof(c.name), "%s", name);
	cl = cluster_start(&c, NULL, err, sizeof(err));
	cr_assert_not_null(cl, "cluster_start: %s", err);
	return cl;
}

static struct dest_conf conf_limit(unsigned limit, const char *rate)
{
	struct dest_conf c;
	char err[128];

	memset(&c, 0, sizeof(c));
	for (int k = 0; k < DEST_CLASSES; k++) {
		c.cls[k].initial_concurrency = 1;
		c.cls[k].concurrency_limit = limit;
	}
	if (rate)
		cr_assert_eq(rate_parse(rate, &c.cls[DEST_NORMAL].message_rate, err, sizeof(err)),
			     0, "%s", err);
	return c;
}

/* Ask until a new connection is admitted (within secs): true when it was. */
static bool admit_within(struct cluster *cl, const char *dest, const struct dest_conf *c,
			 unsigned open, double secs)
{
	uint64_t end = clock_mono_ns() + (uint64_t)(secs * 1e9);
	bool keep;

	while (clock_mono_ns() < end) {
		if (cluster_admit(cl, dest, c, DEST_NORMAL, true, open, clock_mono_ns(), &keep) == 0)
			return true;
		usleep(5000);
	}
	return false;
}

static struct cluster_stats stats_of(struct cluster *cl)
{
	struct cluster_stats st;

	cluster_stats_get(cl, &st);
	return st;
}

Test(cluster, two_boxes_share_connections)
{
	struct cluster *a = box("a", sock), *b = box("b", sock);
	struct dest_conf c = conf_limit(3, NULL);
	unsigned open = 0;

	while (open < 3 && admit_within(a, "mx.test", &c, open, 5))
		open++;
	cr_assert_eq(open, 3, "box a opens 3 (the limit): %u", open);
	cr_assert(!admit_within(a, "mx.test", &c, 3, 0.5), "a 4th connection is refused");
	cr_assert(!admit_within(b, "mx.test", &c, 0, 0.5), "box b gets none while a holds 3");
	cr_assert_geq(stats_of(b).lease_waits, 1);
	/* a's connections close: b may open them */
	cluster_note_open(a, "mx.test", 0);
	cr_assert(admit_within(b, "mx.test", &c, 0, 5), "b opens one once a let go");
	cr_assert_eq(stats_of(a).connected, 1);
	cr_assert_eq(stats_of(a).boxes, 2, "both boxes registered: %llu",
		     (unsigned long long)stats_of(a).boxes);
	cluster_stop(a);
	cluster_stop(b);
}

Test(cluster, a_dead_box_frees_its_share_within_the_ttl)
{
	struct cluster *a = box("a", sock), *b = box("b", sock);
	struct dest_conf c = conf_limit(2, NULL);
	unsigned open = 0;
	uint64_t t;

	while (open < 2 && admit_within(a, "mx.test", &c, open, 5))
		open++;
	cr_assert_eq(open, 2);
	cluster_stop(a);	/* dies holding 2 leases (stop does not release them) */
	t = clock_mono_ns();
	cr_assert(!admit_within(b, "mx.test", &c, 0, 0.3));
	cr_assert(admit_within(b, "mx.test", &c, 0, 4), "b gets a's share after its TTL");
	t = clock_mono_ns() - t;
	cr_assert(t >= NS_PER_SEC, "not before the leases ran out (%llu ms)",
		  (unsigned long long)(t / NS_PER_MS));
	cluster_stop(b);
}

/* A connection the scheduler reports closed may still be closing at the
 * next hop (QUIT, FIN): its lease stays held a second before another box
 * may have it. */
Test(cluster, a_closed_connection_lease_lingers)
{
	struct cluster *a = box("a", sock), *b = box("b", sock);
	struct dest_conf c = conf_limit(1, NULL);
	uint64_t t;

	cr_assert(admit_within(a, "mx.test", &c, 0, 5));
	cluster_note_open(a, "mx.test", 1);
	cr_assert(!admit_within(b, "mx.test", &c, 0, 0.3), "a holds the one lease");
	cluster_note_open(a, "mx.test", 0);
	t = clock_mono_ns();
	cr_assert(admit_within(b, "mx.test", &c, 0, 5), "b gets it once it is free");
	t = clock_mono_ns() - t;
	cr_assert(t >= NS_PER_SEC * 9 / 10, "not while a's connection may still be closing "
		  "(%llu ms)", (unsigned long long)(t / NS_PER_MS));
	cluster_stop(a);
	cluster_stop(b);
}

/* A Redis that restarted (its leases gone) gets this box's leases back at
 * once, not at the next renewal. */
Test(cluster, a_restarted_redis_gets_the_leases_back)
{
	struct cluster *a;
	struct dest_conf c = conf_limit(5, NULL);
	struct cluster_conf cc = { .lease_ttl_ns = 30 * NS_PER_SEC };	/* renewals every 10 s */
	char err[128];
	long long n = 0;

	snprintf(cc.redis, sizeof(cc.redis), "%s", sock);
	snprintf(cc.name, sizeof(cc.name), "a");
	a = cluster_start(&cc, NULL, err, sizeof(err));
	cr_assert_not_null(a, "%s", err);
	cr_assert(admit_within(a, "mx.test", &c, 0, 5));
	cr_assert(admit_within(a, "mx.test", &c, 1, 5));
	cluster_note_open(a, "mx.test", 2);
	usleep(1200 * 1000);	/* past the demand: it holds what is open */
	cr_assert_geq(zcard(PREFIX_LEASE "mx.test"), 2, "the two in use, a spare maybe");
	/* the server dies and comes back empty, on the same socket */
	redisFree(rc);
	rc = NULL;
	kill(redis_pid, SIGKILL);
	waitpid(redis_pid, NULL, 0);
	unlink(sock);
	redis_spawn();
	for (int i = 0; i < 60 && n != 2; i++) {
		usleep(100 * 1000);
		n = zcard(PREFIX_LEASE "mx.test");
	}
	cr_assert_eq(n, 2, "the two leases in use are back within 6 s (renewal due in 10)");
	cluster_stop(a);
}

Test(cluster, shared_rate_in_bursts)
{
	struct cluster *a = box("a", sock), *b = box("b", sock);
	struct dest_conf c = conf_limit(100, "50/s");
	uint64_t t0 = clock_mono_ns(), end = t0 + 3 * NS_PER_SEC;
	unsigned n = 0;
	struct cluster_stats sa, sb;
	bool keep;

	while (clock_mono_ns() < end) {
		struct cluster *x = (n & 1) ? a : b;
		if (cluster_admit(x, "mx.test", &c, DEST_NORMAL, false, 1, clock_mono_ns(), &keep) == 0)
			n++;
		else
			usleep(1000);
	}
	sa = stats_of(a);
	sb = stats_of(b);
	/* 3 s at 50/s, a burst of 5 at the start, cells dropped unspent aside */
	cr_assert(n >= 130 && n <= 160, "two boxes took %u cells in 3 s at 50/s", n);
	cr_assert(sa.rate_calls + sb.rate_calls < n, "fewer round trips than messages: %llu for %u",
		  (unsigned long long)(sa.rate_calls + sb.rate_calls), n);
	cluster_stop(a);
	cluster_stop(b);
}

static char suspended[64];
static uint64_t suspended_for = 99;
static char resumed[64];
static void on_sus(void *u, const char *d, uint64_t for_s)
{
	snprintf(suspended, sizeof(suspended), "%s", d);
	suspended_for = for_s;
}
static void on_res(void *u, const char *d)
{
	snprintf(resumed, sizeof(resumed), "%s", d);
}

static bool answered;
static bool answer_ok;
static json_t *answer;
static void on_done(void *u, bool ok, json_t *v)
{
	answer_ok = ok;
	answer = v;
	__atomic_store_n(&answered, true, __ATOMIC_RELEASE);
}

static void ask(struct cluster *cl, int argc, char **argv)
{
	char err[128];

	answered = false;
	json_decref(answer);
	answer = NULL;
	cr_assert_eq(cluster_submit(cl, argc, argv, on_done, NULL, err, sizeof(err)), 0, "%s", err);
	for (int i = 0; i < 300 && !__atomic_load_n(&answered, __ATOMIC_ACQUIRE); i++)
		usleep(10000);
	cr_assert(answered, "no answer within 3 s");
}

Test(cluster, suspension_reaches_the_other_box)
{
	struct cluster *a = box("a", sock), *b = box("b", sock);
	char *sus[] = { "suspend", "Example.COM" }, *res[] = { "resume", "example.com" };
	char *boxes[] = { "boxes" }, *usage[] = { "suspend" };
	char err[64];
	uint64_t t;
	unsigned n = 0;

	cr_assert_eq(cluster_submit(a, 1, usage, on_done, NULL, err, sizeof(err)), CLUSTER_USAGE);
	usleep(300 * 1000);	/* both registered */
	ask(a, 2, sus);
	cr_assert(answer_ok, "%s", json_string_value(answer));
	t = clock_mono_ns();
	while (!suspended[0] && clock_mono_ns() - t < 2 * NS_PER_SEC) {
		n += cluster_sync_suspensions(b, on_sus, on_res, NULL);
		usleep(10000);
	}
	cr_assert_str_eq(suspended, "example.com");
	cr_assert_eq(suspended_for, 0, "until resumed");
	cr_assert(clock_mono_ns() - t < NS_PER_SEC, "within a second");
	cr_assert_eq(cluster_sync_suspensions(b, on_sus, on_res, NULL), 0, "applied once");
	ask(a, 2, res);
	cr_assert(answer_ok);
	t = clock_mono_ns();
	while (!resumed[0] && clock_mono_ns() - t < 2 * NS_PER_SEC) {
		cluster_sync_suspensions(b, on_sus, on_res, NULL);
		usleep(10000);
	}
	cr_assert_str_eq(resumed, "example.com");
	ask(b, 1, boxes);
	cr_assert(answer_ok);
	cr_assert_eq(json_array_size(json_object_get(answer, "boxes")), 2, "a and b registered");
	json_decref(answer);
	answer = NULL;
	cluster_stop(a);
	cluster_stop(b);
}

/* What cluster_sync_routes / cluster_sync_flushes told one box. */
struct told {
	char set[8][2][128];	/* key, spec */
	unsigned nset;
	char cleared[8][128];
	unsigned ncleared;
	char flushed[8][128];	/* "*": all */
	unsigned nflushed;
};
static void on_route_set(void *u, const char *key, const char *spec)
{
	struct told *t = u;
	cr_assert_lt(t->nset, 8);
	snprintf(t->set[t->nset][0], 128, "%s", key);
	snprintf(t->set[t->nset][1], 128, "%s", spec);
	t->nset++;
}
static void on_route_clear(void *u, const char *key)
{
	struct told *t = u;
	cr_assert_lt(t->ncleared, 8);
	snprintf(t->cleared[t->ncleared++], 128, "%s", key);
}
static void on_flush(void *u, const char *dom)
{
	struct told *t = u;
	cr_assert_lt(t->nflushed, 8);
	snprintf(t->flushed[t->nflushed++], 128, "%s", dom ? dom : "*");
}

/* Sync cl's routes and flushes into t until cond holds (within 2 s): the
 * seconds it took, or -1. */
static double sync_until(struct cluster *cl, struct told *t, bool (*cond)(const struct told *))
{
	uint64_t t0 = clock_mono_ns();

	while (clock_mono_ns() - t0 < 2 * NS_PER_SEC) {
		cluster_sync_routes(cl, on_route_set, on_route_clear, t);
		cluster_sync_flushes(cl, on_flush, t);
		if (cond(t))
			return (double)(clock_mono_ns() - t0) / 1e9;
		usleep(5000);
	}
	return -1;
}
static bool one_set(const struct told *t) { return t->nset >= 1; }
static bool two_set(const struct told *t) { return t->nset >= 2; }
static bool one_cleared(const struct told *t) { return t->ncleared >= 1; }
static bool one_flushed(const struct told *t) { return t->nflushed >= 1; }
static bool two_flushed(const struct told *t) { return t->nflushed >= 2; }

Test(cluster, routes_reach_every_box_and_a_late_one)
{
	struct cluster *a = box("a", sock), *b = box("b", sock), *c;
	char *set[] = { "route", "set", "Ex.TEST", "10", "[192.0.2.1]:2525,", "20", "[192.0.2.2]" };
	char *set2[] = { "route", "set", ".sub.test", "[192.0.2.3]" };
	char *clr[] = { "route", "clear", "ex.test" }, *show[] = { "route", "show" };
	char *bad[] = { "route", "set", "x.test", "[192.0.2.1" };
	char *bad2[] = { "route", "set", "not a domain", "[192.0.2.1]" };
	char *usage[] = { "route", "set", "x.test" };
	char err[64];
	struct told tb = { 0 }, tc = { 0 };
	double took;

	cr_assert_eq(cluster_submit(a, 3, usage, on_done, NULL, err, sizeof(err)), CLUSTER_USAGE);
	usleep(300 * 1000);	/* both connected */
	ask(a, 7, set);
	cr_assert(answer_ok, "%s", json_string_value(answer));
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(
				 answer, "cluster"), "route"), "domain")), "ex.test");
	took = sync_until(b, &tb, one_set);
	cr_assert(took >= 0, "box b never got the route");
	cr_assert(took < 1.0, "within a second: %.2f s", took);
	cr_assert_str_eq(tb.set[0][0], "ex.test");
	cr_assert_str_eq(tb.set[0][1], "10 [192.0.2.1]:2525, 20 [192.0.2.2]", "the spec's words, "
			 "joined: '%s'", tb.set[0][1]);
	cr_assert_eq(cluster_sync_routes(b, on_route_set, on_route_clear, &tb), 0, "applied once");

	/* a bad spec or domain is refused here and never reaches Redis */
	ask(a, 4, bad);
	cr_assert_not(answer_ok);
	cr_assert_not_null(strstr(json_string_value(answer), "no closing ]"), "%s",
			   json_string_value(answer));
	ask(a, 4, bad2);
	cr_assert_not(answer_ok);

	ask(a, 4, set2);
	cr_assert(answer_ok, "%s", json_string_value(answer));
	cr_assert(sync_until(b, &tb, two_set) >= 0);
	cr_assert_str_eq(tb.set[1][0], ".sub.test");
	ask(b, 2, show);
	cr_assert(answer_ok);
	cr_assert_eq(json_array_size(json_object_get(answer, "routes")), 2);

	/* a box that joins later gets the cluster's routes */
	c = box("c", sock);
	cr_assert(sync_until(c, &tc, two_set) >= 0, "the late box has %u route(s)", tc.nset);

	ask(b, 3, clr);
	cr_assert(answer_ok, "%s", json_string_value(answer));
	took = sync_until(a, &tb, one_cleared);
	took = sync_until(c, &tc, one_cleared);
	cr_assert(took >= 0 && took < 1.0, "the clear reaches c within a second: %.2f", took);
	cr_assert_str_eq(tc.cleared[0], "ex.test");
	cr_assert_eq(tc.nset, 2, "nothing set again");
	ask(b, 3, clr);
	cr_assert_not(answer_ok, "cleared twice");
	cr_assert_not_null(strstr(json_string_value(answer), "no cluster route"), "%s",
			   json_string_value(answer));
	struct cluster_stats st = stats_of(c);
	cr_assert_eq(st.routes_applied, 3, "two set, one cleared: %llu",
		     (unsigned long long)st.routes_applied);
	json_decref(answer);
	answer = NULL;
	cluster_stop(a);
	cluster_stop(b);
	cluster_stop(c);
}

Test(cluster, flushes_reach_every_box_once)
{
	struct cluster *a = box("a", sock), *b = box("b", sock), *c;
	char *all[] = { "flush" }, *dom[] = { "flush", "--domain", "Slow.TEST" };
	char *old[] = { "flush", "old.test" }, *usage[] = { "flush", "--domain" };
	char err[64];
	struct told ta = { 0 }, tb = { 0 }, tc = { 0 };
	double took;

	cr_assert_eq(cluster_submit(a, 2, usage, on_done, NULL, err, sizeof(err)), CLUSTER_USAGE);
	usleep(300 * 1000);
	ask(a, 1, all);
	cr_assert(answer_ok, "%s", json_string_value(answer));
	ask(b, 3, dom);
	cr_assert(answer_ok, "%s", json_string_value(answer));
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(answer, "cluster"),
							   "flush")), "slow.test");
	took = sync_until(b, &tb, two_flushed);
	cr_assert(took >= 0 && took < 1.0, "b flushed twice within a second: %u in %.2f s",
		  tb.nflushed, took);
	cr_assert(sync_until(a, &ta, two_flushed) >= 0);
	cr_assert_str_eq(ta.flushed[0], "*", "oldest first");
	cr_assert_str_eq(ta.flushed[1], "slow.test");
	usleep(600 * 1000);	/* polled again: nothing more */
	cluster_sync_flushes(a, on_flush, &ta);
	cr_assert_eq(ta.nflushed, 2, "each flush once: %u", ta.nflushed);
	/* a box that joins later does not replay old flushes, but takes new ones */
	c = box("c", sock);
	usleep(400 * 1000);
	cluster_sync_flushes(c, on_flush, &tc);
	cr_assert_eq(tc.nflushed, 0, "old flushes replayed: %u", tc.nflushed);
	ask(a, 2, old);
	cr_assert(answer_ok);
	cr_assert(sync_until(c, &tc, one_flushed) >= 0);
	cr_assert_str_eq(tc.flushed[0], "old.test");
	cr_assert_eq(stats_of(a).flushes_applied, 2);
	json_decref(answer);
	answer = NULL;
	cluster_stop(a);
	cluster_stop(b);
	cluster_stop(c);
}

Test(cluster, a_client_on_two_boxes_is_held_to_its_rate_in_total)
{
	struct cluster *a = box("a", sock), *b = box("b", sock);
	/* 20 per 2 s: a burst of 20, then 10/s; for 4 s: 20 + 40 = 60 in all
	 * (each box alone would let 60 through: 120) */
	unsigned n = two_boxes_send(a, b, 20, 2 * NS_PER_SEC, 4.0, NULL);

	fprintf(stderr, "# a client on two boxes: %u messages in 4 s (limit: 60)\n", n);
	cr_assert(n >= 54 && n <= 66, "two boxes let %u messages through (60 within 10%%)", n);
}

Test(cluster, a_client_on_one_box_gets_its_whole_rate)
{
	struct cluster *a = box("a", sock), *b = box("b", sock);
	unsigned na = 0;
	/* the other box registered but silent: its share comes from Redis */
	two_boxes_send(a, NULL, 20, 2 * NS_PER_SEC, 4.0, &na);
	cluster_stop(b);
	fprintf(stderr, "# a client on one box of two: %u messages in 4 s (limit: 60)\n", na);
	cr_assert(na >= 54 && na <= 66, "one box let %u through (60 within 10%%, not its share "
		  "of 30)", na);
}

/* A quota store of its own in dir/NAME: 5 messages a day per user. */
static struct quota *quota_box(const char *name)
{
	char d[128], err[256] = "";
	struct quota_limit user = { 5, 0 }, client = { 0, 0 };
	struct quota *q;

	snprintf(d, sizeof(d), "%s/%s", dir, name);
	q = quota_open(d, err, sizeof(err));
	cr_assert_not_null(q, "%s", err);
	cr_assert_eq(quota_policy_set(q, &user, &client, "198.18.0.0/24", NULL, err, sizeof(err)),
		     0, "%s", err);
	return q;
}

static enum quota_verdict qone(struct quota *q, uint64_t id, char *why)
{
	enum quota_verdict v;

	cr_assert_eq(quota_batch_begin(q), 0);
	v = quota_account(q, 1764460800 + 3600, id, false, "alice", "203.0.113.9", 1, why);
	cr_assert_eq(quota_batch_commit(q), 0);
	return v;
}

Test(cluster, a_daily_quota_counts_every_box)
{
	struct cluster *a = box("a", sock), *b = box("b", sock);
	struct quota *qa = quota_box("qa"), *qb = quota_box("qb");
	char why[QUOTA_WHY_MAX + 1];
	uint64_t id = 1;

	quota_set_elsewhere(qa, cluster_quota, a);
	quota_set_elsewhere(qb, cluster_quota, b);
	usleep(200 * 1000);	/* both connected */
	for (int i = 0; i < 3; i++)
		cr_assert_eq(qone(qa, id++, why), QUOTA_PASS, "a: message %d of 5", i + 1);
	cr_assert_eq(qone(qb, id++, why), QUOTA_PASS, "b's first: the others' count not known yet");
	usleep(1300 * 1000);	/* b wrote its 1 and read a's 3; a read b's 1 */
	cr_assert_eq(qone(qb, id++, why), QUOTA_PASS, "b: 2 here + 3 on a = 5 of 5: %s", why);
	cr_assert_eq(qone(qb, id++, why), QUOTA_HOLD, "b: 3 here + 3 on a = 6 of 5");
	cr_assert_str_eq(why, "daily quota: user alice, message 6 of 5 a day");
	usleep(1300 * 1000);
	cr_assert_eq(qone(qa, id++, why), QUOTA_HOLD, "a: 4 here + 3 on b");
	cr_assert_str_eq(why, "daily quota: user alice, message 7 of 5 a day");
	struct cluster_stats st = stats_of(b);
	cr_assert_eq(st.quota_counted, 3);
	cr_assert(st.quota_calls >= 2, "%llu", (unsigned long long)st.quota_calls);
	/* in Redis: each box's counts of the day, by box (a's 4th within a round) */
	char got[32] = "";
	for (int i = 0; i < 100 && strcmp(got, "4 4") != 0; i++) {
		redisReply *r = redisCommand(rc, "HGET sluice:quota:%llu:u:alice a",
					     (unsigned long long)((1764460800 + 3600) / 86400));
		cr_assert(r && r->type == REDIS_REPLY_STRING);
		snprintf(got, sizeof(got), "%s", r->str);
		freeReplyObject(r);
		usleep(10000);
	}
	cr_assert_str_eq(got, "4 4");
	quota_set_elsewhere(qa, NULL, NULL);
	quota_set_elsewhere(qb, NULL, NULL);
	cluster_stop(a);
	cluster_stop(b);
	quota_close(qa);
	quota_close(qb);
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "rm -rf %s/qa %s/qb", dir, dir);
	cr_assert_eq(system(cmd), 0);
}

Test(cluster, unreachable_redis_falls_back_to_the_local_share)
{
	char nowhere[160];
	struct cluster *a;
	struct dest_conf c = conf_limit(4, "20/s");
	struct cluster_stats st;
	unsigned open = 0, cells = 0;
	uint64_t end;
	bool keep;

	snprintf(nowhere, sizeof(nowhere), "%s/nobody.sock", dir);
	a = box("a", nowhere);
	usleep(200 * 1000);
	while (open < 10 && admit_within(a, "mx.test", &c, open, 0.2))
		open++;
	cr_assert_eq(open, 4, "alone (one box known): the whole local limit, %u", open);
	end = clock_mono_ns() + NS_PER_SEC;
	while (clock_mono_ns() < end)
		if (cluster_admit(a, "mx.test", &c, DEST_NORMAL, false, 1, clock_mono_ns(), &keep) == 0)
			cells++;
		else
			usleep(1000);
	/* the bound that matters is the upper one; on a loaded machine this
	 * loop may not run often enough to take every cell it could */
	cr_assert(cells >= 10 && cells <= 22, "the local rate: %u in 1 s at 20/s", cells);
	st = stats_of(a);
	cr_assert_eq(st.connected, 0);
	cr_assert_eq(st.fallback_entered, 1, "one outage, counted once: %llu",
		     (unsigned long long)st.fallback_entered);
	cr_assert_geq(st.fallback_admits, 4);
	cr_assert_geq(st.redis_errors, 1);
	cluster_stop(a);
}

/* [cluster] password: AUTH before anything else; a wrong one is an outage
 * (fallback, counted), not a box that works without the cluster silently. */
Test(cluster, auth_with_the_password)
{
	redisReply *r = redisCommand(rc, "CONFIG SET requirepass s3cret");
	struct cluster_conf c = { .lease_ttl_ns = 2 * NS_PER_SEC };
	struct cluster *good, *bad;
	char err[128];

	cr_assert(r && r->type == REDIS_REPLY_STATUS, "CONFIG SET requirepass");
	freeReplyObject(r);
	snprintf(c.redis, sizeof(c.redis), "%s", sock);
	snprintf(c.name, sizeof(c.name), "good");
	snprintf(c.password, sizeof(c.password), "s3cret");
	good = cluster_start(&c, NULL, err, sizeof(err));
	cr_assert_not_null(good, "%s", err);
	snprintf(c.name, sizeof(c.name), "bad");
	snprintf(c.password, sizeof(c.password), "wrong");
	bad = cluster_start(&c, NULL, err, sizeof(err));
	cr_assert_not_null(bad, "%s", err);
	for (int i = 0; i < 50 && !stats_of(good).connected; i++)
		usleep(100 * 1000);
	cr_assert_eq(stats_of(good).connected, 1, "the right password gets in");
	cr_assert_eq(stats_of(bad).connected, 0, "a wrong one does not");
	/* refused with WRONGPASS (a Redis error), or under load the
	 * connection reset first: an outage either way, counted once */
	for (int i = 0; i < 50 && !stats_of(bad).fallback_entered; i++)
		usleep(100 * 1000);
	cr_assert_eq(stats_of(bad).fallback_entered, 1);
	cluster_stop(good);
	cluster_stop(bad);
}

Test(cluster, config_check)
{
	struct cluster_conf c = { .lease_ttl_ns = 10 * NS_PER_SEC };
	const char *key = NULL;
	char err[256], host[64];
	uint16_t port;

	snprintf(c.name, sizeof(c.name), "box1");
	cr_assert_eq(cluster_conf_check(&c, &key, err, sizeof(err)), 0, "off: nothing to check");
	snprintf(c.redis, sizeof(c.redis), "127.0.0.1:6379");
	cr_assert_eq(cluster_conf_check(&c, &key, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(cluster_addr_parse("[::1]:6379", host, sizeof(host), &port), 0);
	cr_assert_eq(port, 6379);
	cr_assert_eq(cluster_addr_parse("/run/redis.sock", host, sizeof(host), &port), 0);
	cr_assert_eq(port, 0);
	snprintf(c.redis, sizeof(c.redis), "localhost");
	cr_assert_eq(cluster_conf_check(&c, &key, err, sizeof(err)), -1);
	cr_assert_str_eq(key, "redis");
	snprintf(c.redis, sizeof(c.redis), "127.0.0.1:70000");
	cr_assert_eq(cluster_conf_check(&c, &key, err, sizeof(err)), -1);
	snprintf(c.redis, sizeof(c.redis), "127.0.0.1:6379");
	c.tls = true;
	cr_assert_eq(cluster_conf_check(&c, &key, err, sizeof(err)), -1);
	cr_assert_str_eq(key, "tls");
	c.tls = false;
	snprintf(c.name, sizeof(c.name), "bad name");
	cr_assert_eq(cluster_conf_check(&c, &key, err, sizeof(err)), -1);
	cr_assert_str_eq(key, "name");
	snprintf(c.name, sizeof(c.name), "b1");
	c.lease_ttl_ns = NS_PER_SEC / 2;
	cr_assert_eq(cluster_conf_check(&c, &key, err, sizeof(err)), -1);
	cr_assert_str_eq(key, "lease_ttl");
}
