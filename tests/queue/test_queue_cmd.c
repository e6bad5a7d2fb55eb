/*
 * test_queue_cmd.c - the operator's queue commands (control/queue_cmd.h) on
 * their thread, against a real spool of four shards: queue list's pages
 * and cursor cover every message once (one spanning four shards shown
 * once, with every part's recipients), with --domain too; the filters
 * (--sender, --rcpt, --held, --deferred, --older-than); queue show with
 * the attempt history and the headers; queue stat and summary (by
 * destination, --top, by sender domain); hold/release/delete by ID,
 * domain and all, with the queue read back after each; by AUTH user, with
 * the hold reasons (what `user resume` releases); usage and argument
 * errors refused before anything is queued.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control/queue_cmd.h"
#include "qtest.h"

static char *dir;
static struct queue *q;
static struct rte_ring *done;
static struct qcmd *w;
static uint64_t now0;

/* One answer, handed over from the queue thread. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static bool answered, answer_ok;
static json_t *answer;

static void on_done(void *user, bool ok, json_t *v)
{
	(void)user;
	pthread_mutex_lock(&mu);
	answer = v;
	answer_ok = ok;
	answered = true;
	pthread_cond_signal(&cv);
	pthread_mutex_unlock(&mu);
}

static void setup(void)
{
	struct queue_conf c;
	char err[200];
	int st;

	dir = qt_tmpdir();
	done = queue_done_ring_create(1024);
	qt_conf(&c, dir, 4);
	q = queue_open(&c, &st);
	cr_assert_not_null(q, "queue_open: %s", queue_status_str(st));
	w = qcmd_start(q, err, sizeof(err));
	cr_assert_not_null(w, "%s", err);
	now0 = (uint64_t)time(NULL);
}

static void teardown(void)
{
	qcmd_stop(w);
	queue_close(q);
	queue_done_ring_free(done);
	qt_rmtree(dir);
	free(dir);
}

TestSuite(qcmd, .init = setup, .fini = teardown, .timeout = 60);

/* Run one command (words, NULL-ended): its result (caller decrefs), ok or not. */
static json_t *run_v(bool *ok, const char *cmd, const char *sub, const char **words)
{
	char *argv[32], err[256];
	int argc = 0, rc;
	struct timespec ts;

	while (words[argc])
		argv[argc] = (char *)words[argc], argc++;
	argv[argc] = NULL;
	answered = false;
	rc = qcmd_submit(w, cmd, sub, argc, argv, on_done, NULL, err, sizeof(err));
	cr_assert_eq(rc, 0, "%s %s: submit %d %s", cmd, sub ? sub : "", rc, err);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 20;
	pthread_mutex_lock(&mu);
	while (!answered)
		cr_assert_eq(pthread_cond_timedwait(&cv, &mu, &ts), 0, "no answer in 20 s");
	pthread_mutex_unlock(&mu);
	*ok = answer_ok;
	return answer;
}

#define RUN(ok, cmd, sub, ...) run_v(ok, cmd, sub, (const char *[]){ __VA_ARGS__, NULL })
#define RUN0(ok, cmd, sub) run_v(ok, cmd, sub, (const char *[]){ NULL })

static json_t *must(const char *cmd, const char *sub, const char **words)
{
	bool ok;
	json_t *r = run_v(&ok, cmd, sub, words);
	cr_assert(ok, "%s %s failed: %s", cmd, sub ? sub : "", json_string_value(r));
	return r;
}
#define MUST(cmd, sub, ...) must(cmd, sub, (const char *[]){ __VA_ARGS__, NULL })
#define MUST0(cmd, sub) must(cmd, sub, (const char *[]){ NULL })

static uint64_t put(const char *sender, const char *rcpts, uint64_t age_s)
{
	struct qt_msg m, *mp = &m;
	uint64_t id;

	qt_msg_init(&m, rcpts, 400, age_s + 1, now0 - age_s);
	memset(m.body, 'b', 400);	/* text: the body comes back as it is */
	memcpy(m.body, "Subject: hello\r\nX-Test: 1\r\n\r\nbody\r\n", 35);
	m.sub.env.sender = sender;
	qt_submit_wait(q, done, &mp, 1);
	cr_assert_eq(m.sub.status, QUEUE_OK);
	id = m.sub.id;
	qt_msg_free(&m);
	return id;
}

static const char *ids(uint64_t id)
{
	static char s[4][QUEUE_ID_STR];
	static int k;
	k = (k + 1) % 4;
	queue_id_format(id, s[k]);
	return s[k];
}

/* Does the list result hold message id? Its row, or NULL. */
static json_t *row_of(json_t *r, uint64_t id)
{
	json_t *m;
	size_t i;
	json_array_foreach(json_object_get(r, "messages"), i, m)
		if (strcmp(json_string_value(json_object_get(m, "id")), ids(id)) == 0)
			return m;
	return NULL;
}

static long long geti(json_t *o, const char *path)
{
	char key[64];
	const char *dot;
	while ((dot = strchr(path, '.'))) {
		snprintf(key, sizeof(key), "%.*s", (int)(dot - path), path);
		o = json_object_get(o, key);
		path = dot + 1;
	}
	return json_integer_value(json_object_get(o, path));
}

Test(qcmd, list_pages_cover_every_message_once)
{
	enum { N = 40 };
	uint64_t id[N + 1];
	bool seen[N + 1] = { false };
	char rc[64], after[64] = "";
	unsigned pages = 0, total = 0;

	for (int i = 0; i < N; i++) {
		snprintf(rc, sizeof(rc), "u%d@d%d.example", i, i % 9);
		id[i] = put("s@example.org", rc, 60);
	}
	/* one message over four domains: parts in several shards */
	id[N] = put("s@example.org", "a@d0.example,b@d1.example,c@d2.example,d@d3.example", 60);
	for (;;) {
		json_t *r = after[0] ? MUST("queue", "list", "--limit", "7", "--after", after) :
				       MUST("queue", "list", "--limit", "7");
		json_t *m;
		size_t i;
		pages++;
		cr_assert_leq(json_array_size(json_object_get(r, "messages")), 7);
		json_array_foreach(json_object_get(r, "messages"), i, m) {
			const char *s = json_string_value(json_object_get(m, "id"));
			int k;
			for (k = 0; k <= N && strcmp(s, ids(id[k])) != 0; k++)
				;
			cr_assert_leq(k, N, "%s: not a message of the test", s);
			cr_assert(!seen[k], "%s listed twice", s);
			seen[k] = true;
			total++;
			if (k == N)
				cr_assert_eq(json_array_size(json_object_get(m, "recipients")), 4,
					     "the message over four shards, with all its recipients");
		}
		if (json_is_null(json_object_get(r, "next"))) {
			json_decref(r);
			break;
		}
		snprintf(after, sizeof(after), "%s", json_string_value(json_object_get(r, "next")));
		json_decref(r);
		cr_assert_lt(pages, 50, "the pages do not end");
	}
	cr_assert_eq(total, N + 1, "%u of %d listed", total, N + 1);
	/* --domain: d0.example's, in pages of 2 */
	after[0] = '\0';
	total = 0;
	for (pages = 0; pages < 20; pages++) {
		json_t *r = after[0] ? MUST("queue", "list", "--domain", "D0.example.", "--limit", "2",
					    "--after", after) :
				       MUST("queue", "list", "--domain", "D0.example.", "--limit", "2");
		total += json_array_size(json_object_get(r, "messages"));
		if (json_is_null(json_object_get(r, "next"))) {
			json_decref(r);
			break;
		}
		snprintf(after, sizeof(after), "%s", json_string_value(json_object_get(r, "next")));
		json_decref(r);
	}
	cr_assert_eq(total, 5 + 1, "d0.example: 5 of its own and the four-domain one (%u)", total);
}

Test(qcmd, list_filters)
{
	uint64_t a = put("alice@one.example", "x@d1.example", 10);
	uint64_t b = put("bob@two.example", "y@d2.example,z@d3.example", 3 * 3600);
	uint64_t c = put("", "bounce-target@d1.example", 20);
	uint32_t tok;
	json_t *r;

	r = MUST("queue", "list", "--sender", "ALICE@");
	cr_assert(row_of(r, a) && !row_of(r, b) && !row_of(r, c), "--sender, any case");
	json_decref(r);
	r = MUST("queue", "list", "--rcpt", "z@d3");
	cr_assert(!row_of(r, a) && row_of(r, b) && !row_of(r, c), "--rcpt: a part of the address");
	json_decref(r);
	r = MUST("queue", "list", "--older-than", "1h");
	cr_assert(!row_of(r, a) && row_of(r, b) && !row_of(r, c), "--older-than 1h");
	json_decref(r);
	cr_assert_eq(queue_hold(q, c), QUEUE_OK);
	r = MUST("queue", "list", "--held");
	cr_assert(!row_of(r, a) && !row_of(r, b) && row_of(r, c), "--held");
	cr_assert_str_eq(json_string_value(json_object_get(row_of(r, c), "status")), "!");
	json_decref(r);
	/* a tried and deferred: --deferred; claimed: status * */
	unsigned sh = queue_shard_of(q, "d1.example");
	cr_assert_eq(queue_claim(q, sh, a, now0, 60, &tok), QUEUE_OK);
	r = MUST("queue", "list", "--domain", "d1.example");
	cr_assert_str_eq(json_string_value(json_object_get(row_of(r, a), "status")), "*");
	json_decref(r);
	cr_assert_eq(queue_result(q, sh, a, tok, 0, QUEUE_RCPT_DEFERRED, "451 4.2.1 busy", now0),
		     QUEUE_OK);
	cr_assert_eq(queue_reschedule(q, sh, a, tok, now0 + 600), QUEUE_OK);
	r = MUST("queue", "list", "--deferred");
	cr_assert(row_of(r, a) && !row_of(r, b) && !row_of(r, c), "--deferred");
	json_decref(r);
	/* queue show: the attempt and its reply, the headers, --body */
	r = MUST("queue", "show", ids(a));
	cr_assert_eq(json_array_size(json_object_get(r, "history")), 1);
	json_t *h = json_array_get(json_object_get(r, "history"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(h, "reply")), "451 4.2.1 busy");
	cr_assert_str_eq(json_string_value(json_object_get(h, "rcpt")), "x@d1.example");
	cr_assert_str_eq(json_string_value(json_object_get(h, "state")), "deferred");
	cr_assert_str_eq(json_string_value(json_object_get(r, "headers")),
			 "Subject: hello\r\nX-Test: 1\r\n");
	cr_assert_null(json_object_get(r, "body"));
	cr_assert_str_eq(json_string_value(json_object_get(r, "sender")), "alice@one.example");
	json_decref(r);
	r = MUST("queue", "show", ids(b), "--body");
	cr_assert_eq(json_string_length(json_object_get(r, "body")), 400);
	cr_assert_eq(json_array_size(json_object_get(r, "recipients")), 2, "both parts' recipients");
	json_decref(r);
}

Test(qcmd, stat_and_summary)
{
	json_t *r, *d;
	size_t i;
	bool found = false;

	for (int k = 0; k < 5; k++)
		put("a@one.example", "r@big.example", 60);
	put("b@two.example", "r@small.example", 2 * 3600);
	put("c@two.example", "r@small.example,s@big.example", 60);
	r = MUST0("queue", "stat");
	cr_assert_eq(geti(r, "messages"), 7);
	cr_assert_eq(geti(r, "untried"), 7);
	cr_assert_eq(geti(r, "domains"), 2);
	json_decref(r);
	r = MUST0("queue", "summary");
	cr_assert_eq(geti(r, "rows"), 2);
	d = json_array_get(json_object_get(r, "domains"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(d, "domain")), "big.example",
			 "largest first");
	cr_assert_eq(geti(d, "total"), 6);
	cr_assert_eq(geti(d, "incoming"), 6);
	d = json_array_get(json_object_get(r, "domains"), 1);
	cr_assert_eq(geti(d, "total"), 2);
	cr_assert_eq(geti(d, "oldest"), (long long)(now0 - 2 * 3600), "exact oldest arrival");
	cr_assert_eq(json_integer_value(json_array_get(json_object_get(d, "age"), 5)), 1,
		     "2 h old: the 80-160 minutes bucket");
	cr_assert_eq(geti(r, "total.total"), 8);
	json_decref(r);
	r = MUST("queue", "summary", "--top", "1");
	cr_assert_eq(json_array_size(json_object_get(r, "domains")), 1);
	cr_assert_eq(geti(r, "rows"), 2);
	json_decref(r);
	r = MUST("queue", "summary", "--by", "sender-domain");
	json_array_foreach(json_object_get(r, "domains"), i, d) {
		const char *s = json_string_value(json_object_get(d, "sender_domain"));
		if (strcmp(s, "one.example") == 0)
			cr_assert_eq(geti(d, "total"), 5);
		else if (strcmp(s, "two.example") == 0)
			found = geti(d, "total") == 2;
	}
	cr_assert(found, "two.example: 2 messages (the one over two shards once)");
	json_decref(r);
}

Test(qcmd, hold_release_delete)
{
	uint64_t x[6];
	json_t *r;
	bool ok;

	for (int i = 0; i < 3; i++)
		x[i] = put("s@example.org", "r@hold.example", 60);
	x[3] = put("s@example.org", "r@keep.example", 60);
	x[4] = put("s@example.org", "r@keep.example,t@hold.example", 60);
	x[5] = put("s@example.org", "r@other.example", 60);
	r = MUST("hold", NULL, "--domain", "hold.example");
	cr_assert_eq(geti(r, "hold.messages"), 4, "three, and the one also to keep.example");
	json_decref(r);
	r = MUST0("queue", "stat");
	cr_assert_eq(geti(r, "held"), 4);
	json_decref(r);
	r = MUST("queue", "show", ids(x[4]));
	cr_assert(json_is_true(json_object_get(r, "held")), "every part held");
	json_decref(r);
	r = MUST("release", NULL, ids(x[0]), ids(x[1]));
	cr_assert_eq(geti(r, "release.messages"), 2);
	json_decref(r);
	r = MUST0("queue", "stat");
	cr_assert_eq(geti(r, "held"), 2);
	json_decref(r);
	r = MUST("delete", NULL, "--domain", "hold.example");
	cr_assert_eq(geti(r, "delete.messages"), 4);
	json_decref(r);
	r = MUST0("queue", "stat");
	cr_assert_eq(geti(r, "messages"), 2, "keep.example's and other.example's left");
	json_decref(r);
	r = RUN(&ok, "queue", "show", ids(x[4]));
	cr_assert(!ok, "deleted: every part");
	json_decref(r);
	r = MUST("delete", NULL, ids(x[0]));
	cr_assert_eq(geti(r, "delete.messages"), 0);
	cr_assert_str_eq(json_string_value(json_array_get(json_object_get(
		json_object_get(r, "delete"), "not_found"), 0)), ids(x[0]));
	json_decref(r);
	r = MUST("hold", NULL, "--all");
	cr_assert_eq(geti(r, "hold.messages"), 2);
	json_decref(r);
	r = MUST("release", NULL, "--all");
	cr_assert_eq(geti(r, "release.messages"), 2);
	json_decref(r);
	r = MUST("delete", NULL, "--all");
	cr_assert_eq(geti(r, "delete.messages"), 2);
	json_decref(r);
	r = MUST0("queue", "stat");
	cr_assert(geti(r, "messages") == 0 && geti(r, "parts") == 0);
	json_decref(r);
}

/* A message sent by an AUTH user, held with a reason (as the scheduler
 * holds for quota.h). */
static uint64_t put_user(const char *user, const char *rcpts, const char *why)
{
	struct qt_msg m, *mp = &m;
	struct queue_op op;
	uint64_t id;

	qt_msg_init(&m, rcpts, 400, 7, now0);
	m.sub.env.auth_method = "LOGIN";
	m.sub.env.auth_user = user;
	qt_submit_wait(q, done, &mp, 1);
	cr_assert_eq(m.sub.status, QUEUE_OK);
	id = m.sub.id;
	for (unsigned sh = 0; why && sh < queue_nshards(q); sh++) {
		struct queue_msg *x;
		if (queue_lookup(q, sh, id, &x) != QUEUE_OK)
			continue;
		free(x);
		op = (struct queue_op){ .op = QUEUE_OP_HOLD, .shard = sh, .id = id, .now = now0,
					.reply = why };
		queue_apply(q, &op, 1);
		cr_assert_eq(op.status, QUEUE_OK);
	}
	qt_msg_free(&m);
	return id;
}

Test(qcmd, by_user_and_hold_reason)
{
	uint64_t a1 = put_user("alice", "r@a.example,s@b.example,t@c.example",
			       "suspended: user alice suspended by the operator");
	uint64_t a2 = put_user("alice", "r@a.example", "daily quota: user alice, message 9 of 8");
	uint64_t a3 = put_user("alice", "r@b.example", NULL);
	uint64_t b1 = put_user("bob", "r@a.example", "suspended: user bob suspended by the operator");
	json_t *r, *row;

	r = MUST("queue", "list", "--held", "--user", "alice");
	cr_assert_eq(json_array_size(json_object_get(r, "messages")), 2);
	row = row_of(r, a2);
	cr_assert_not_null(row);
	cr_assert_str_eq(json_string_value(json_object_get(row, "hold_reason")),
			 "daily quota: user alice, message 9 of 8");
	cr_assert_str_eq(json_string_value(json_object_get(row, "sasl_username")), "alice");
	cr_assert_null(row_of(r, a3), "not held");
	cr_assert_null(row_of(r, b1), "bob's");
	json_decref(r);
	r = MUST("queue", "show", ids(a1));
	cr_assert_str_eq(json_string_value(json_object_get(r, "sasl_method")), "LOGIN");
	cr_assert_str_eq(json_string_value(json_object_get(r, "sasl_username")), "alice");
	json_decref(r);
	/* what user resume asks: alice's suspended mail only, every part */
	r = MUST("release", NULL, "--user", "alice", "--held-for", "suspended:");
	cr_assert_eq(geti(r, "release.messages"), 1);
	json_decref(r);
	r = MUST("queue", "show", ids(a1));
	cr_assert(json_is_false(json_object_get(r, "held")), "every part released");
	cr_assert_str_eq(json_string_value(json_object_get(r, "hold_reason")), "");
	json_decref(r);
	r = MUST("queue", "list", "--held");
	cr_assert_eq(json_array_size(json_object_get(r, "messages")), 2, "a2 and b1 stay held");
	cr_assert_not_null(row_of(r, a2));
	cr_assert_not_null(row_of(r, b1));
	json_decref(r);
	r = MUST("release", NULL, "--user", "alice");
	cr_assert_eq(geti(r, "release.messages"), 1, "the quota's one now");
	json_decref(r);
	r = MUST("hold", NULL, "--user", "alice");
	cr_assert_eq(geti(r, "hold.messages"), 3);
	json_decref(r);
	r = MUST("queue", "show", ids(a3));
	cr_assert_str_eq(json_string_value(json_object_get(r, "hold_reason")), "held by the operator");
	json_decref(r);
	/* what user suspend asks: the user's mail not held yet, with a reason */
	uint64_t a4 = put_user("alice", "r@d.example", NULL);
	r = MUST("hold", NULL, "--user", "alice", "--reason", "suspended: user alice");
	cr_assert_eq(geti(r, "hold.messages"), 1, "a4 alone: the others were held already");
	json_decref(r);
	r = MUST("queue", "show", ids(a4));
	cr_assert_str_eq(json_string_value(json_object_get(r, "hold_reason")), "suspended: user alice");
	json_decref(r);
	r = MUST("queue", "show", ids(a3));
	cr_assert_str_eq(json_string_value(json_object_get(r, "hold_reason")), "held by the operator",
			 "a held message keeps its first reason");
	json_decref(r);
}

Test(qcmd, bad_words_refused_at_once)
{
	char err[256];
	char *bogus[] = { "--bogus", NULL }, *badid[] = { "not-an-id", NULL },
	     *older[] = { "--older-than", "5 minutes", NULL }, *none[] = { NULL },
	     *lim[] = { "--limit", "5000", NULL };

	cr_assert_eq(qcmd_submit(w, "queue", "list", 1, bogus, on_done, NULL, err, sizeof(err)),
		     QCMD_USAGE);
	cr_assert_eq(qcmd_submit(w, "hold", NULL, 1, badid, on_done, NULL, err, sizeof(err)), -1);
	cr_assert(strstr(err, "not a queue ID"), "%s", err);
	cr_assert_eq(qcmd_submit(w, "queue", "list", 2, older, on_done, NULL, err, sizeof(err)),
		     -1);
	cr_assert_eq(qcmd_submit(w, "queue", "list", 2, lim, on_done, NULL, err, sizeof(err)), -1);
	cr_assert_eq(qcmd_submit(w, "delete", NULL, 0, none, on_done, NULL, err, sizeof(err)),
		     QCMD_USAGE, "delete needs a target");
	cr_assert_eq(qcmd_submit(w, "queue", "show", 0, none, on_done, NULL, err, sizeof(err)),
		     QCMD_USAGE);
	unsigned long long s;
	cr_assert(qcmd_duration("90", &s) == 0 && s == 90);
	cr_assert(qcmd_duration("5m", &s) == 0 && s == 300);
	cr_assert(qcmd_duration("2h", &s) == 0 && s == 7200);
	cr_assert(qcmd_duration("1d", &s) == 0 && s == 86400);
	cr_assert_eq(qcmd_duration("1x", &s), -1);
	cr_assert_eq(qcmd_duration("-5m", &s), -1);
	cr_assert_eq(qcmd_duration("5mm", &s), -1);
}

/* A message transferred from another box (XSLUICE): list and show give its
 * attempts there plus ours and its last error, ours once it has one. */
Test(qcmd, transferred_history_in_list_and_show)
{
	struct qt_msg m, *mp = &m;
	uint32_t tok;
	json_t *r, *row;
	uint64_t id;
	unsigned sh;

	qt_msg_init(&m, "x@t1.example", 100, 1, now0 - 60);
	m.sub.env.sender = "s@one.example";
	m.sub.env.due = now0 + 900;
	m.sub.env.prior_attempts = 4;
	m.sub.env.prior_error = "421 4.7.0 too many connections";
	qt_submit_wait(q, done, &mp, 1);
	cr_assert_eq(m.sub.status, QUEUE_OK);
	id = m.sub.id;
	qt_msg_free(&m);

	r = MUST("queue", "list", "--domain", "t1.example");
	row = row_of(r, id);
	cr_assert_not_null(row);
	cr_assert_eq(json_integer_value(json_object_get(row, "attempts")), 4);
	cr_assert_str_eq(json_string_value(json_object_get(row, "last_error")),
			 "421 4.7.0 too many connections");
	json_decref(r);
	r = MUST("queue", "show", ids(id));
	cr_assert_eq(json_integer_value(json_object_get(r, "attempts")), 4);
	cr_assert_eq(json_integer_value(json_object_get(r, "prior_attempts")), 4);
	cr_assert_eq(json_integer_value(json_object_get(r, "due")), (json_int_t)(now0 + 900),
		     "due at the carried next try");
	json_decref(r);
	/* one attempt here: 5 in all, and our reply is the last error now */
	sh = queue_shard_of(q, "t1.example");
	cr_assert_eq(queue_claim(q, sh, id, now0 + 900, 60, &tok), QUEUE_OK);
	cr_assert_eq(queue_result(q, sh, id, tok, 0, QUEUE_RCPT_DEFERRED, "451 4.2.1 busy",
				  now0 + 900), QUEUE_OK);
	cr_assert_eq(queue_reschedule(q, sh, id, tok, now0 + 1800), QUEUE_OK);
	r = MUST("queue", "show", ids(id));
	cr_assert_eq(json_integer_value(json_object_get(r, "attempts")), 5);
	cr_assert_str_eq(json_string_value(json_object_get(r, "last_error")), "451 4.2.1 busy");
	cr_assert_str_eq(json_string_value(json_object_get(r, "prior_error")),
			 "421 4.7.0 too many connections");
	json_decref(r);
}
