/*
 * test_churn.c - acceptance 4: 200,000 messages of mixed sizes go through
 * the queue (insert, claim, per-recipient result, complete) with completions
 * in random order, at a steady depth; the data file must stay within 1.5x
 * of its size at the same depth before the churn (free pages are reused,
 * fragmentation stays bounded).
 *
 * The spool sits on a tmpfs the test mounts (root in CI; failing to mount
 * fails the test): what is measured is LMDB's page reuse, which is the same
 * on any filesystem, and without disk syncs the run fits the CI budget.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "qtest.h"
#include "queue/queue.h"

#define TOTAL 200000
#define DEPTH 3000
#define ROUND 100
#define T0    1700000000ull

struct live { uint64_t id; unsigned nrcpt; };

static uint64_t rng = 88172645463325252ull;
static char mnt[512];
static char *churn_dir;

static void fini(void)
{
	if (mnt[0])
		umount2(mnt, MNT_DETACH);
	mnt[0] = 0;
	if (churn_dir) {
		qt_rmtree(churn_dir);
		free(churn_dir);
		churn_dir = NULL;
	}
}

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Mixed sizes: half small, a third mid-size, the rest big (overflow pages). */
static size_t pick_size(void)
{
	uint64_t r = rnd() % 100;
	if (r < 50)
		return 200 + rnd() % 1800;
	if (r < 85)
		return 2000 + rnd() % 10000;
	return 12000 + rnd() % 20000;
}

static void insert(struct queue *q, struct rte_ring *done, struct live *lv, size_t *n,
		   size_t count, uint64_t *seed)
{
	struct qt_msg *m = calloc(count, sizeof(*m));
	struct qt_msg **mp = calloc(count, sizeof(*mp));

	for (size_t i = 0; i < count; i++) {
		unsigned d = (unsigned)(rnd() % 50);
		char rcpts[128];
		if (rnd() & 1)
			snprintf(rcpts, sizeof(rcpts), "a@d%u.example", d);
		else
			snprintf(rcpts, sizeof(rcpts), "a@d%u.example,b@d%u.example", d, d);
		qt_msg_init(&m[i], rcpts, pick_size(), (*seed)++, T0);
		mp[i] = &m[i];
	}
	qt_submit_wait(q, done, mp, count);
	for (size_t i = 0; i < count; i++) {
		cr_assert_eq(m[i].sub.status, QUEUE_OK, "insert: %s", queue_status_str(m[i].sub.status));
		lv[*n].id = m[i].sub.id;
		lv[*n].nrcpt = m[i].sub.env.nrcpt;
		(*n)++;
		qt_msg_free(&m[i]);
	}
	free(m);
	free(mp);
}

/* Deliver and delete `count` random live messages, in random order. */
static void deliver(struct queue *q, struct live *lv, size_t *n, size_t count)
{
	struct queue_op *ops = calloc(count * 3, sizeof(*ops));	/* claims, then up to 2 results each */
	struct live *pick = calloc(count, sizeof(*pick));
	size_t nops = 0;

	for (size_t i = 0; i < count; i++) {
		size_t j = rnd() % *n;
		pick[i] = lv[j];
		lv[j] = lv[--(*n)];
		ops[i] = (struct queue_op){ .op = QUEUE_OP_CLAIM, .id = pick[i].id, .now = T0 };
	}
	cr_assert_eq(queue_apply(q, ops, count), QUEUE_OK, "claims");
	for (size_t i = 0; i < count; i++) {
		uint32_t tok = ops[i].out_token;
		for (unsigned r = 0; r < pick[i].nrcpt; r++)
			ops[count + nops++] = (struct queue_op){
				.op = QUEUE_OP_RESULT, .id = pick[i].id, .token = tok, .rcpt = r,
				.state = (rnd() % 10) ? QUEUE_RCPT_SENT : QUEUE_RCPT_BOUNCED,
				.reply = "250 2.0.0 Ok: queued as 4Xyz", .now = T0 + 1 };
	}
	/* results arrive out of order */
	for (size_t i = nops; i > 1; i--) {
		size_t j = rnd() % i;
		struct queue_op t = ops[count + i - 1];
		ops[count + i - 1] = ops[count + j];
		ops[count + j] = t;
	}
	/* tokens go with ids: keep them for the completes */
	uint32_t *tok = calloc(count, sizeof(*tok));
	for (size_t i = 0; i < count; i++)
		tok[i] = ops[i].out_token;
	cr_assert_eq(queue_apply(q, ops + count, nops), QUEUE_OK, "results");
	for (size_t i = 0; i < count; i++)
		ops[i] = (struct queue_op){ .op = QUEUE_OP_COMPLETE, .id = pick[i].id, .token = tok[i] };
	cr_assert_eq(queue_apply(q, ops, count), QUEUE_OK, "completes");
	free(tok);
	free(ops);
	free(pick);
}

Test(churn, two_hundred_thousand, .fini = fini, .timeout = 600)
{
	const char *dir = churn_dir = qt_tmpdir();
	struct rte_ring *done = queue_done_ring_create(1024);
	struct live *lv = calloc(DEPTH + ROUND, sizeof(*lv));
	struct queue_conf c;
	struct queue *q;
	size_t n = 0, inserted = 0;
	uint64_t seed = 1, s0, s1;
	int st;

	snprintf(mnt, sizeof(mnt), "%s/fs", dir);
	cr_assert_eq(mkdir(mnt, 0700), 0);
	if (mount("tmpfs", mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=512m,mode=0700") != 0)
		cr_assert_fail("cannot mount a tmpfs at %s: %s - this test needs root (CAP_SYS_ADMIN)",
			       mnt, strerror(errno));
	qt_conf(&c, mnt, 1);
	c.map_size = 64u << 20;
	c.batch_max = 256;
	q = queue_open(&c, &st);
	cr_assert_not_null(q);

	insert(q, done, lv, &n, DEPTH, &seed);
	inserted = DEPTH;
	s0 = qt_data_size(mnt, 0);
	cr_assert_gt(s0, 0);
	while (inserted < TOTAL) {
		size_t k = TOTAL - inserted < ROUND ? TOTAL - inserted : ROUND;
		deliver(q, lv, &n, k);
		insert(q, done, lv, &n, k, &seed);
		inserted += k;
	}
	cr_assert_eq(n, DEPTH);
	s1 = qt_data_size(mnt, 0);
	cr_log_info("churn: %zu messages, depth %d: data file %llu -> %llu bytes (%.2fx)",
		    inserted, DEPTH, (unsigned long long)s0, (unsigned long long)s1,
		    (double)s1 / (double)s0);
	cr_assert_leq(s1 * 2, s0 * 3, "data file grew from %llu to %llu bytes",
		      (unsigned long long)s0, (unsigned long long)s1);

	/* the indexes agree with what is live */
	struct queue_domain_sum *sum;
	size_t nd, total = 0;
	cr_assert_eq(queue_summary(q, T0, &sum, &nd), QUEUE_OK);
	for (size_t i = 0; i < nd; i++)
		total += sum[i].incoming + sum[i].active + sum[i].deferred + sum[i].held;
	free(sum);
	cr_assert_eq(total, DEPTH, "one (message, domain) pair per live message");
	struct queue_due *due = calloc(DEPTH + 1, sizeof(*due));
	cr_assert_eq(queue_scan_due(q, 0, T0, due, DEPTH + 1, &nd), QUEUE_OK);
	cr_assert_eq(nd, DEPTH);
	free(due);

	queue_close(q);
	queue_done_ring_free(done);
	free(lv);
	cr_assert_eq(umount2(mnt, MNT_DETACH), 0);
	mnt[0] = 0;
}
