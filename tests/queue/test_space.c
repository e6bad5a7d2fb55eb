/*
 * test_space.c - acceptance 3: running out of room.
 *
 * disk_full: the spool sits on an 8 MiB tmpfs this test mounts itself (we
 * run as root in CI; if the mount fails the test fails, loudly). New mail is
 * refused with QUEUE_NOSPACE, nothing acknowledged is lost, deletes keep
 * working while the disk is full, and writing resumes once they free room -
 * also across a restart.
 *
 * map_ceiling: the same story when the LMDB map reaches its configured
 * ceiling on a roomy disk; the map first grows by itself up to it.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>

#include "qtest.h"
#include "queue/queue.h"

#define WINDOW 16
#define MAXMSG 4000
#define BODY   20000

struct acked { uint64_t id, seed; int deleted; };

static char *dir;
static char mnt[512];
static int mounted;

static void fini(void)
{
	if (mounted)
		umount2(mnt, MNT_DETACH);
	mounted = 0;
	if (dir) {
		qt_rmtree(dir);
		free(dir);
		dir = NULL;
	}
}

/* Submit windows of messages until `want_nospace` refusals (or acks, when 0). */
static size_t fill(struct queue *q, struct rte_ring *done, struct acked *a, size_t *na,
		   uint64_t *seed, int stop_on_ok, size_t *refused)
{
	struct qt_msg m[WINDOW], *mp[WINDOW];
	size_t sent = 0;

	*refused = 0;
	while (sent < MAXMSG) {
		size_t ok = 0;
		for (int i = 0; i < WINDOW; i++) {
			qt_msg_init(&m[i], "u@space.example", BODY, *seed, 1700000000);
			(*seed)++;
			mp[i] = &m[i];
		}
		qt_submit_wait(q, done, mp, WINDOW);
		sent += WINDOW;
		for (int i = 0; i < WINDOW; i++) {
			if (m[i].sub.status == QUEUE_OK) {
				a[*na].id = m[i].sub.id;
				a[*na].seed = *seed - WINDOW + (uint64_t)i;
				a[*na].deleted = 0;
				(*na)++;
				ok++;
			} else {
				cr_assert_eq(m[i].sub.status, QUEUE_NOSPACE, "refusal must say no space, got %s",
					     queue_status_str(m[i].sub.status));
				(*refused)++;
			}
			qt_msg_free(&m[i]);
		}
		if (stop_on_ok ? ok > 0 : *refused >= 2 * WINDOW)
			break;
		if (stop_on_ok) {
			struct timespec ts = { 0, 50 * 1000000 };
			nanosleep(&ts, NULL);
		}
	}
	return sent;
}

static void verify(struct queue *q, const struct acked *a, size_t na)
{
	uint8_t *want = malloc(BODY), *got = malloc(BODY);
	for (size_t i = 0; i < na; i++) {
		struct queue_msg *m;
		size_t len;
		if (a[i].deleted) {
			cr_assert_eq(queue_lookup(q, 0, a[i].id, &m), QUEUE_NOTFOUND);
			continue;
		}
		cr_assert_eq(queue_lookup(q, 0, a[i].id, &m), QUEUE_OK, "acked message %zu lost", i);
		free(m);
		qt_body(want, BODY, a[i].seed);
		cr_assert_eq(queue_read_body(q, 0, a[i].id, got, BODY, &len), QUEUE_OK);
		cr_assert_eq(len, BODY);
		cr_assert_eq(memcmp(want, got, BODY), 0, "acked message %zu damaged", i);
	}
	free(want);
	free(got);
}

static void run(struct queue_conf *c, int expect_grow)
{
	struct acked *a = calloc(MAXMSG * 2, sizeof(*a));
	struct rte_ring *done = queue_done_ring_create(256);
	struct queue_shard_stats st;
	struct queue *q;
	size_t na = 0, refused, before, deleted = 0;
	uint64_t seed = 1;
	int status;

	q = queue_open(c, &status);
	cr_assert_not_null(q, "open: %s", queue_status_str(status));

	/* 1. fill until new mail is refused */
	fill(q, done, a, &na, &seed, 0, &refused);
	cr_assert_geq(refused, 2 * WINDOW, "the queue never said no space");
	cr_assert_gt(na, 50, "too few messages fitted before the refusals (%zu)", na);
	queue_stats(q, 0, &st);
	cr_assert_geq(st.nospace_rejects, refused);
	if (expect_grow)
		cr_assert_gt(st.map_grows, 0, "the map should have grown to its ceiling first");
	verify(q, a, na);

	/* 2. deletes work while full */
	for (size_t i = 0; i < na; i += 2) {
		cr_assert_eq(queue_delete(q, a[i].id), QUEUE_OK, "delete %zu while full", i);
		a[i].deleted = 1;
		deleted++;
	}

	/* 3. writing resumes by itself */
	before = na;
	for (int tries = 0; tries < 3 && na - before < 2 * WINDOW; tries++)
		fill(q, done, a, &na, &seed, 1, &refused);
	cr_assert_geq(na - before, WINDOW, "writing did not resume after deletes (%zu new)", na - before);
	verify(q, a, na);

	/* 4. and it all survives a restart */
	queue_close(q);
	q = queue_open(c, &status);
	cr_assert_not_null(q, "reopen: %s", queue_status_str(status));
	verify(q, a, na);
	queue_close(q);
	cr_log_info("space: %zu acked, %zu deleted, %zu refused in the last round",
		    na, deleted, refused);
	queue_done_ring_free(done);
	free(a);
}

TestSuite(space, .fini = fini, .timeout = 120);

Test(space, disk_full)
{
	struct queue_conf c;

	dir = qt_tmpdir();
	snprintf(mnt, sizeof(mnt), "%s/fs", dir);
	cr_assert_eq(mkdir(mnt, 0700), 0);
	if (mount("tmpfs", mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=8m,mode=0700") != 0)
		cr_assert_fail("cannot mount a tmpfs at %s: %s - this test needs root (CAP_SYS_ADMIN)",
			       mnt, strerror(errno));
	mounted = 1;
	qt_conf(&c, mnt, 1);
	snprintf(c.dir, sizeof(c.dir), "%s/spool", mnt);
	c.map_size = 1u << 20;
	c.map_max = 1ull << 30;	/* far above the disk: the disk is the limit */
	c.disk_reserve = 256u << 10;
	c.batch_max = WINDOW;
	run(&c, 0);
}

Test(space, map_ceiling)
{
	struct queue_conf c;

	dir = qt_tmpdir();
	qt_conf(&c, dir, 1);
	c.map_size = 1u << 20;
	c.map_max = 6u << 20;
	c.batch_max = WINDOW;
	run(&c, 1);
}

/*
 * A message spanning two shards, refused by one (its map is at the ceiling)
 * and stored by the other: the client is told "no space" and will retry, so
 * the stored half must be taken back, or it would be delivered twice.
 */
Test(space, multi_shard_refusal_rolls_back)
{
	struct queue_conf c;
	struct rte_ring *done = queue_done_ring_create(256);
	struct queue *q;
	char full_dom[32] = "", ok_dom[32] = "", rcpts[96];
	uint64_t seed = 1;
	int st;

	dir = qt_tmpdir();
	qt_conf(&c, dir, 2);
	c.map_size = 1u << 20;
	c.map_max = 3u << 20;
	c.batch_max = WINDOW;
	q = queue_open(&c, &st);
	cr_assert_not_null(q);
	for (unsigned d = 0; !full_dom[0] || !ok_dom[0]; d++) {
		char dom[32];
		snprintf(dom, sizeof(dom), "d%u.example", d);
		if (queue_shard_of(q, dom) == 0 && !full_dom[0])
			snprintf(full_dom, sizeof(full_dom), "%s", dom);
		if (queue_shard_of(q, dom) == 1 && !ok_dom[0])
			snprintf(ok_dom, sizeof(ok_dom), "%s", dom);
	}
	/* fill shard 0 until it refuses */
	for (int refused = 0, guard = 0; !refused; guard++) {
		struct qt_msg m, *mp = &m;
		cr_assert_lt(guard, 1000, "shard 0 never filled up");
		snprintf(rcpts, sizeof(rcpts), "u@%s", full_dom);
		qt_msg_init(&m, rcpts, BODY, seed++, 1700000000);
		qt_submit_wait(q, done, &mp, 1);
		refused = m.sub.status == QUEUE_NOSPACE;
		qt_msg_free(&m);
	}
	/* now a message for both shards */
	struct qt_msg m, *mp = &m;
	struct queue_msg *msg;
	snprintf(rcpts, sizeof(rcpts), "u@%s,v@%s", full_dom, ok_dom);
	qt_msg_init(&m, rcpts, BODY, seed++, 1700000000);
	qt_submit_wait(q, done, &mp, 1);
	cr_assert_eq(m.sub.status, QUEUE_NOSPACE);
	cr_assert_eq(queue_lookup(q, 0, m.sub.id, &msg), QUEUE_NOTFOUND);
	/* the take-back is asynchronous: give shard 1's writer a moment */
	for (int i = 0; i < 1000 && (st = queue_lookup(q, 1, m.sub.id, &msg)) == QUEUE_OK; i++) {
		free(msg);
		struct timespec ts = { 0, 5 * 1000000 };
		nanosleep(&ts, NULL);
	}
	cr_assert_eq(st, QUEUE_NOTFOUND, "shard 1 kept half of a refused message");
	/* and shard 1 still takes its own mail */
	struct qt_msg m2, *mp2 = &m2;
	snprintf(rcpts, sizeof(rcpts), "v@%s", ok_dom);
	qt_msg_init(&m2, rcpts, 100, seed++, 1700000000);
	qt_submit_wait(q, done, &mp2, 1);
	cr_assert_eq(m2.sub.status, QUEUE_OK);
	qt_msg_free(&m);
	qt_msg_free(&m2);
	queue_close(q);
	queue_done_ring_free(done);
}
