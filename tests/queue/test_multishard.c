/*
 * test_multishard.c - a message whose recipients span shards is stored by
 * every shard's writer on its own, and must never be delivered in part when
 * the client was not told 250:
 *
 *  - a part stored while another shard has not answered yet is not due and
 *    cannot be claimed;
 *  - when one shard refuses, the parts the others stored are taken back,
 *    even when the stored shard's control ring is full at that moment (the
 *    old fire-and-forget delete was then dropped: "orphan part kept");
 *  - a crash between the shards' commits leaves no part behind after
 *    reopen, nor does a crash after some shards sealed and others did not;
 *  - a complete message survives restarts in every shard, also after one of
 *    its parts has been delivered and completed.
 *
 * Writers are held still deterministically: a writer posting to a
 * completion ring with one slot, which nobody polls, waits there (see
 * complete_one) and takes nothing else from its rings until it is polled.
 * White box: the rings are looked at through queue_shard.h.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <rte_ring.h>

#include "qtest.h"
#include "queue/queue.h"
#include "queue/queue_shard.h"

#define T0 1700000000ull
#define FAR (T0 + 100 * 86400)

static char *dir;
static struct queue *q;
static struct rte_ring *done;
static char dom[2][32];		/* a domain in shard 0 and one in shard 1 */

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void nap(void)
{
	struct timespec ts = { 0, 1000000 };
	nanosleep(&ts, NULL);
}

/*
 * Checks that also run in the forked children of the crash tests, which
 * must not report to Criterion: there a failure is an exit status.
 */
static int in_child;
#define CHECK(cond, ...) do { \
	if (in_child) { \
		if (!(cond)) \
			_exit(5); \
	} else { \
		cr_assert(cond, __VA_ARGS__); \
	} \
} while (0)

/* Wait up to 30 s for a condition; fail the test (with what) if it never holds. */
#define WAIT_FOR(cond, what) do { \
	uint64_t until_ = now_ms() + 30000; \
	while (!(cond)) { \
		CHECK(now_ms() < until_, "waited 30 s for %s", what); \
		nap(); \
	} \
} while (0)

static void open_q(enum queue_sync sync)
{
	struct queue_conf c;
	int st;
	qt_conf(&c, dir, 2);
	c.sync = sync;
	q = queue_open(&c, &st);
	CHECK(q != NULL, "queue_open: %s", queue_status_str(st));
}

static void setup(void)
{
	dir = qt_tmpdir();
	done = queue_done_ring_create(64);
	open_q(QUEUE_SYNC_FULL);
	dom[0][0] = dom[1][0] = 0;
	for (unsigned i = 0; !dom[0][0] || !dom[1][0]; i++) {
		char d[32];
		snprintf(d, sizeof(d), "d%u.example", i);
		if (!dom[queue_shard_of(q, d)][0])
			snprintf(dom[queue_shard_of(q, d)], sizeof(dom[0]), "%s", d);
	}
}

static void teardown(void)
{
	queue_close(q);
	queue_done_ring_free(done);
	qt_rmtree(dir);
	free(dir);
}

TestSuite(multishard, .init = setup, .fini = teardown, .timeout = 120);

/* Wait for one submission on ring r. */
static struct queue_submission *wait_done(struct rte_ring *r)
{
	struct queue_submission *s = NULL;
	WAIT_FOR(queue_done_poll(r, &s, 1) == 1, "a completion");
	return s;
}

static int in_due(unsigned shard, uint64_t id)
{
	struct queue_due due[256];
	size_t n;
	int st = queue_scan_due(q, shard, FAR, due, 256, &n);
	CHECK(st == QUEUE_OK, "scan: %s", queue_status_str(st));
	for (size_t i = 0; i < n; i++)
		if (due[i].id == id)
			return 1;
	return 0;
}

static int present(unsigned shard, uint64_t id)
{
	struct queue_msg *m;
	int st = queue_lookup(q, shard, id, &m);
	CHECK(st == QUEUE_OK || st == QUEUE_NOTFOUND, "lookup: %s", queue_status_str(st));
	free(m);
	return st == QUEUE_OK;
}

/* A message to one recipient in each shard. */
static void two_shard_msg(struct qt_msg *m, uint64_t seed)
{
	char rcpts[128];
	snprintf(rcpts, sizeof(rcpts), "a@%s,b@%s", dom[0], dom[1]);
	qt_msg_init(m, rcpts, 3000, seed, T0);
	m->sub.done = done;
}

/* A complete two-shard message, acknowledged. */
static uint64_t put_whole(uint64_t seed)
{
	struct qt_msg m, *mp = &m;
	uint64_t id;
	two_shard_msg(&m, seed);
	qt_submit_wait(q, done, &mp, 1);
	CHECK(m.sub.status == QUEUE_OK, "whole message: %s", queue_status_str(m.sub.status));
	id = m.sub.id;
	qt_msg_free(&m);
	return id;
}

/* Both parts of a whole message are there, intact, and can be claimed. */
static void check_whole(uint64_t id, uint64_t seed)
{
	uint8_t want[3000], got[3100];
	size_t len;
	qt_body(want, sizeof(want), seed);
	for (unsigned s = 0; s < 2; s++) {
		uint32_t tok;
		cr_assert(present(s, id), "part in shard %u missing", s);
		cr_assert_eq(queue_read_body(q, s, id, got, sizeof(got), &len), QUEUE_OK);
		cr_assert(len == sizeof(want) && memcmp(want, got, len) == 0, "body in shard %u", s);
		cr_assert(in_due(s, id), "whole message not due in shard %u", s);
		cr_assert_eq(queue_claim(q, s, id, FAR, 60, &tok), QUEUE_OK, "claim in shard %u", s);
		cr_assert_eq(queue_reschedule(q, s, id, tok, T0), QUEUE_OK);
	}
}

/*
 * Hold shard's writer: two messages to its domain whose completion ring has
 * one slot. Returns once the first was posted and the second taken from the
 * shard's ring: the writer then waits on the completion ring.
 */
struct stall {
	struct rte_ring *ring;
	struct qt_msg m[2];
	unsigned got;
};

static void stall(struct stall *st, unsigned shard, uint64_t seed)
{
	char r[64];
	snprintf(r, sizeof(r), "stall@%s", dom[shard]);
	st->ring = queue_done_ring_create(1);
	st->got = 0;
	for (int k = 0; k < 2; k++) {
		qt_msg_init(&st->m[k], r, 100, seed + (uint64_t)k, T0);
		st->m[k].sub.done = st->ring;
		CHECK(queue_submit(q, &st->m[k].sub) == QUEUE_OK, "submit");
	}
	WAIT_FOR(rte_ring_count(st->ring) == 1 && rte_ring_count(q->shard[shard].in) == 0,
		 "the writer to stall");
}

/* Poll what is there (non-blocking); returns 1 once both came back. */
static int unstall_poll(struct stall *st)
{
	struct queue_submission *s;
	while (st->got < 2 && queue_done_poll(st->ring, &s, 1) == 1)
		st->got++;
	return st->got == 2;
}

static void unstall(struct stall *st)
{
	WAIT_FOR(unstall_poll(st), "the stalled writer's completions");
	for (int k = 0; k < 2; k++)
		qt_msg_free(&st->m[k]);
	queue_done_ring_free(st->ring);
}

/* A part stored while the other shard has not answered is not deliverable. */
Test(multishard, part_in_flight_is_not_claimable)
{
	struct stall s1;
	struct qt_msg m;
	uint32_t tok;

	stall(&s1, 1, 100);
	two_shard_msg(&m, 7);
	cr_assert_eq(queue_submit(q, &m.sub), QUEUE_OK);
	WAIT_FOR(present(0, m.sub.id), "shard 0's part");
	/* shard 1 has not written its part: no 250 yet, and shard 0's part must wait */
	cr_assert(!in_due(0, m.sub.id), "an unacknowledged part is due in shard 0");
	cr_assert_neq(queue_claim(q, 0, m.sub.id, FAR, 60, &tok), QUEUE_OK,
		      "an unacknowledged part was handed out for delivery");
	unstall(&s1);
	cr_assert_eq(wait_done(done), &m.sub);
	cr_assert_eq(m.sub.status, QUEUE_OK);
	check_whole(m.sub.id, 7);
	qt_msg_free(&m);
}

struct flood { pthread_t t; struct queue_op ops[1024]; };

static void *flood_main(void *p)
{
	struct flood *f = p;
	queue_apply(q, f->ops, 1024);	/* IDs nobody has: each answers not found */
	return NULL;
}

/*
 * Shard 1 refuses a message shard 0 has stored, while shard 0's control
 * ring is full: the part must still be taken back, never delivered.
 * Shard 1 refuses because the ID is already one of its messages (x, with
 * reserved_id), which must come out of this untouched.
 */
Test(multishard, refused_elsewhere_with_full_control_ring)
{
	enum { FLOODS = 5 };
	struct flood *fl = calloc(FLOODS, sizeof(*fl));
	struct stall s0, s1;
	struct qt_msg x, *xp = &x, m;
	struct shard *sh0 = &q->shard[0];
	char xr[64];
	uint32_t tok;

	snprintf(xr, sizeof(xr), "x@%s", dom[1]);
	qt_msg_init(&x, xr, 500, 3, T0);
	qt_submit_wait(q, done, &xp, 1);
	cr_assert_eq(x.sub.status, QUEUE_OK);

	stall(&s1, 1, 200);
	two_shard_msg(&m, 8);
	m.sub.reserved_id = x.sub.id;
	cr_assert_eq(queue_submit(q, &m.sub), QUEUE_OK);
	WAIT_FOR(present(0, m.sub.id), "shard 0's part");
	stall(&s0, 0, 300);	/* shard 0 answered for m, now holds still */

	for (int i = 0; i < FLOODS; i++) {
		for (int k = 0; k < 1024; k++)
			fl[i].ops[k] = (struct queue_op){ .op = QUEUE_OP_HOLD, .shard = 0,
							  .id = 1000 + (uint64_t)k };
		cr_assert_eq(pthread_create(&fl[i].t, NULL, flood_main, &fl[i]), 0);
	}
	WAIT_FOR(rte_ring_free_count(sh0->ctl) == 0, "shard 0's control ring to fill");

	/* shard 1 goes on: refuses m (duplicate ID) while shard 0's ring is full */
	WAIT_FOR(unstall_poll(&s1), "shard 1's completions");
	{
		/* give shard 1 time to refuse and post what it posts */
		uint64_t t = now_ms() + 300;
		while (now_ms() < t)
			nap();
	}
	cr_assert_eq(rte_ring_free_count(sh0->ctl), 0, "shard 0's control ring stayed full");
	unstall(&s1);
	unstall(&s0);
	cr_assert_eq(wait_done(done), &m.sub);
	cr_assert_neq(m.sub.status, QUEUE_OK, "a refused part must fail the message");
	for (int i = 0; i < FLOODS; i++)
		pthread_join(fl[i].t, NULL);

	cr_assert_neq(queue_claim(q, 0, m.sub.id, FAR, 60, &tok), QUEUE_OK,
		      "the part the client was told to retry can be delivered");
	cr_assert(!present(0, m.sub.id), "the refused message's part was kept in shard 0");
	cr_assert(present(1, x.sub.id), "the message that owned the ID in shard 1 is gone");

	/* and after a restart: still gone, x and a later whole message intact */
	uint64_t whole = put_whole(9);
	queue_close(q);
	open_q(QUEUE_SYNC_FULL);
	cr_assert(!present(0, m.sub.id), "the part is back after reopen");
	cr_assert(present(1, x.sub.id), "x (same ID, shard 1) lost at reopen");
	check_whole(whole, 9);
	qt_msg_free(&m);
	qt_msg_free(&x);
	free(fl);
}

/* ---- crashes between the shards' commits (SIGKILL of a child) ------------ */

static void put_id(int fd, uint64_t id)
{
	if (write(fd, &id, sizeof(id)) != sizeof(id))
		_exit(3);
}

/*
 * The child: one whole message, then one whose shard-1 part can never be
 * written (shard 1 held still) or, with seal_one, whose parts are both
 * written and sealed in shard 0 only. Reports the two IDs, then waits for
 * the kill.
 */
static void child(int fd, enum queue_sync sync, int seal_one)
{
	struct stall s0, s1;
	struct qt_msg m;

	in_child = 1;
	open_q(sync);
	put_id(fd, put_whole(11));
	two_shard_msg(&m, 12);
	if (!seal_one) {
		stall(&s1, 1, 400);
		CHECK(queue_submit(q, &m.sub) == QUEUE_OK, "submit");
		WAIT_FOR(present(0, m.sub.id), "shard 0's part");
	} else {
		stall(&s0, 0, 500);
		CHECK(queue_submit(q, &m.sub) == QUEUE_OK, "submit");
		WAIT_FOR(present(1, m.sub.id), "shard 1's part");
		stall(&s1, 1, 600);
		unstall(&s0);	/* shard 0 writes its part (the last) and seals it */
		WAIT_FOR(in_due(0, m.sub.id), "shard 0's part to be sealed");
	}
	put_id(fd, m.sub.id);
	for (;;)
		pause();
}

static void crash_between(enum queue_sync sync, int seal_one)
{
	int fds[2], status;
	uint64_t whole, part;
	pid_t pid;

	queue_close(q);	/* the child opens the spool on its own */
	q = NULL;
	cr_assert_eq(pipe(fds), 0);
	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(fds[0]);
		child(fds[1], sync, seal_one);
		_exit(1);
	}
	close(fds[1]);
	cr_assert_eq(read(fds[0], &whole, sizeof(whole)), (ssize_t)sizeof(whole), "child failed");
	cr_assert_eq(read(fds[0], &part, sizeof(part)), (ssize_t)sizeof(part), "child failed");
	kill(pid, SIGKILL);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	close(fds[0]);

	open_q(sync);
	cr_assert(!present(0, part), "shard 0 kept a part of a message never acknowledged");
	cr_assert(!present(1, part), "shard 1 kept a part of a message never acknowledged");
	cr_assert(!in_due(0, part) && !in_due(1, part));
	check_whole(whole, 11);
	/* and the next restart finds nothing more to do */
	queue_close(q);
	open_q(sync);
	check_whole(whole, 11);
}

Test(multishard, crash_between_shard_commits_full)
{
	crash_between(QUEUE_SYNC_FULL, 0);
}

Test(multishard, crash_between_shard_commits_nometa)
{
	crash_between(QUEUE_SYNC_NOMETA, 0);
}

Test(multishard, crash_after_one_shard_sealed)
{
	crash_between(QUEUE_SYNC_FULL, 1);
}

/*
 * One part delivered and completed (gone from its shard), the other still
 * queued: that one is a whole message's part, not an orphan. It stays
 * claimable, and a restart keeps it.
 */
Test(multishard, completed_part_leaves_the_other_deliverable)
{
	uint64_t id = put_whole(13);
	uint32_t tok;

	cr_assert_eq(queue_claim(q, 0, id, FAR, 60, &tok), QUEUE_OK);
	cr_assert_eq(queue_result(q, 0, id, tok, 0, QUEUE_RCPT_SENT, "250 ok", FAR), QUEUE_OK);
	cr_assert_eq(queue_complete(q, 0, id, tok), QUEUE_OK);
	cr_assert(!present(0, id));
	cr_assert(in_due(1, id));
	queue_close(q);
	open_q(QUEUE_SYNC_FULL);
	cr_assert(present(1, id), "the undelivered part was removed at reopen");
	cr_assert(in_due(1, id));
	cr_assert_eq(queue_claim(q, 1, id, FAR, 60, &tok), QUEUE_OK);
}
