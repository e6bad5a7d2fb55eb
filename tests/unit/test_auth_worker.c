/*
 * test_auth_worker.c - password checks off the submitter's thread: good,
 * wrong and unknown users get their answers through the rings with the
 * question wiped; handing over a batch of full-cost checks takes the
 * submitter microseconds while the checks themselves take the worker tens
 * of milliseconds each (so an lcore, through the plane, never waits); with
 * every job in use the next is answered AUTH_TEMP at once; a reload changes
 * the answers, and a bad file keeps the old users.
 */
#include <criterion/criterion.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "control/auth_worker.h"
#include "control/users.h"
#include "dataplane/ask.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A users file with name:password pairs at cost N. */
static char *users_file(uint64_t N, const char *const *pairs, unsigned n)
{
	static char path[64];
	char h[USERS_HASH_TEXT_MAX], err[200];
	FILE *f;
	int fd;

	strcpy(path, "/tmp/sluice-authw-XXXXXX");
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	f = fdopen(fd, "w");
	for (unsigned i = 0; i < n; i++) {
		cr_assert_eq(users_hash_make(pairs[2 * i + 1], strlen(pairs[2 * i + 1]), N, 8, 1, h,
					     sizeof(h), err, sizeof(err)), 0, "%s", err);
		fprintf(f, "%s:%s\n", pairs[2 * i], h);
	}
	fclose(f);
	return path;
}

static void question(struct ask *a, const char *name, const char *pass)
{
	memset(a, 0, sizeof(*a));
	a->kind = ASK_AUTH;
	memcpy(a->text, name, strlen(name) + 1);
	memcpy(a->text + strlen(name) + 1, pass, strlen(pass) + 1);
	a->status = 99;
}

/* Wait (bounded: 60 s) until n answers came; returns them in order of arrival. */
static void collect(struct auth_worker *w, int wake, struct ask **a, void **tag, unsigned n)
{
	unsigned got = 0;
	uint64_t until = now_ns() + 60ull * 1000000000ull;

	while (got < n) {
		struct pollfd pfd = { .fd = wake, .events = POLLIN };
		uint64_t v;

		cr_assert_lt(now_ns(), until, "only %u of %u answers in 60 s", got, n);
		got += auth_worker_done(w, a + got, tag + got, n - got);
		if (got < n && poll(&pfd, 1, 200) > 0)
			cr_assert_eq(read(wake, &v, sizeof(v)), (ssize_t)sizeof(v));
	}
}

static bool wiped(const struct ask *a)
{
	for (size_t i = 0; i < sizeof(a->text); i++)
		if (a->text[i])
			return false;
	return true;
}

Test(auth_worker, answers_good_bad_unknown_and_wipes)
{
	static const char *const pairs[] = { "alice", "wonderland", "bob@example.com", "hunter2" };
	char err[300];
	int wake = eventfd(0, EFD_NONBLOCK);
	struct auth_worker *w = auth_worker_start(users_file(1024, pairs, 2), wake, err,
						  sizeof(err));
	struct ask q[5], *a[5];
	void *tag[5];

	cr_assert_not_null(w, "%s", err);
	question(&q[0], "alice", "wonderland");
	question(&q[1], "alice", "Wonderland");
	question(&q[2], "bob@example.com", "hunter2");
	question(&q[3], "carol", "wonderland");
	memset(&q[4], 0, sizeof(q[4]));	/* malformed: no name */
	for (unsigned i = 0; i < 5; i++)
		cr_assert_eq(auth_worker_submit(w, &q[i], &q[i]), 0);
	collect(w, wake, a, tag, 5);
	for (unsigned i = 0; i < 5; i++) {
		cr_assert_eq(a[i], tag[i], "the tag travels with its ask");
		cr_assert(wiped(a[i]), "question %ld not wiped", (long)(a[i] - q));
	}
	cr_assert_eq(q[0].status, AUTH_GOOD);
	cr_assert_eq(q[1].status, AUTH_BAD);
	cr_assert_eq(q[2].status, AUTH_GOOD);
	cr_assert_eq(q[3].status, AUTH_BAD);
	cr_assert_eq(q[4].status, AUTH_BAD);

	struct auth_worker_stats st;
	auth_worker_stats_get(w, &st);
	cr_assert_eq(st.checked, 5);
	cr_assert_eq(st.good, 2);
	cr_assert_eq(st.bad, 3);
	auth_worker_stop(w);
	close(wake);
}

Test(auth_worker, submitting_never_waits_for_the_hash)
{
	static const char *const pairs[] = { "alice", "wonderland" };
	char err[300];
	int wake = eventfd(0, EFD_NONBLOCK);
	/* the shipped cost: N=16384, r=8 */
	struct auth_worker *w = auth_worker_start(users_file(16384, pairs, 1), wake, err,
						  sizeof(err));
	enum { N = 10 };
	struct ask q[N], *a[N];
	void *tag[N];
	uint64_t t0, t_submit, t_all;

	cr_assert_not_null(w, "%s", err);
	for (unsigned i = 0; i < N; i++)
		question(&q[i], "alice", i % 2 ? "wrong" : "wonderland");
	t0 = now_ns();
	for (unsigned i = 0; i < N; i++)
		cr_assert_eq(auth_worker_submit(w, &q[i], NULL), 0);
	t_submit = now_ns() - t0;
	collect(w, wake, a, tag, N);
	t_all = now_ns() - t0;
	for (unsigned i = 0; i < N; i++)
		cr_assert_eq(q[i].status, i % 2 ? AUTH_BAD : AUTH_GOOD, "ask %u", i);
	cr_log_info("%d full-cost checks: handed over in %.3f ms, answered in %.1f ms", N,
		    t_submit / 1e6, t_all / 1e6);
	/* each scrypt costs milliseconds: the handing over must cost far less */
	cr_assert_gt(t_all, 10 * t_submit, "submit %lu ns vs all %lu ns",
		     (unsigned long)t_submit, (unsigned long)t_all);
	cr_assert_gt(t_all, (uint64_t)N * 1000000ull, "%d scrypts in under %d ms?", N, N);
	auth_worker_stop(w);
	close(wake);
}

Test(auth_worker, a_full_pool_answers_temp_at_once)
{
	static const char *const pairs[] = { "alice", "wonderland" };
	char err[300];
	struct auth_worker *w = auth_worker_start(users_file(1024, pairs, 1), -1, err,
						  sizeof(err));
	struct ask *q = calloc(AUTH_WORKER_JOBS + 1, sizeof(*q)), *a[64];
	void *tag[64];
	unsigned back = 0;
	uint64_t until;

	cr_assert_not_null(w, "%s", err);
	for (unsigned i = 0; i < AUTH_WORKER_JOBS; i++) {
		question(&q[i], "alice", "x");
		cr_assert_eq(auth_worker_submit(w, &q[i], NULL), 0, "job %u", i);
	}
	question(&q[AUTH_WORKER_JOBS], "alice", "wonderland");
	cr_assert_eq(auth_worker_submit(w, &q[AUTH_WORKER_JOBS], NULL), -1);
	cr_assert_eq(q[AUTH_WORKER_JOBS].status, AUTH_TEMP);
	cr_assert(wiped(&q[AUTH_WORKER_JOBS]));
	/* every job comes back (no wake fd: poll the ring) and is usable again */
	until = now_ns() + 120ull * 1000000000ull;
	while (back < AUTH_WORKER_JOBS) {
		cr_assert_lt(now_ns(), until, "%u of %u back", back, AUTH_WORKER_JOBS);
		back += auth_worker_done(w, a, tag, 64);
		usleep(1000);
	}
	question(&q[0], "alice", "wonderland");
	cr_assert_eq(auth_worker_submit(w, &q[0], NULL), 0);
	while (auth_worker_done(w, a, tag, 1) == 0)
		usleep(1000);
	cr_assert_eq(q[0].status, AUTH_GOOD);
	struct auth_worker_stats st;
	auth_worker_stats_get(w, &st);
	cr_assert_eq(st.busy, 1);
	auth_worker_stop(w);
	free(q);
}

Test(auth_worker, reload_swaps_the_users)
{
	static const char *const v1[] = { "alice", "one" };
	static const char *const v2[] = { "alice", "two", "bob", "three" };
	char err[300], p1[64], p2[64], bad[64];
	int wake = eventfd(0, EFD_NONBLOCK);
	struct auth_worker *w;
	struct ask q[3], *a[3];
	void *tag[3];
	unsigned n;
	FILE *f;

	snprintf(p1, sizeof(p1), "%s", users_file(1024, v1, 1));
	snprintf(p2, sizeof(p2), "%s", users_file(1024, v2, 2));
	snprintf(bad, sizeof(bad), "%s", users_file(1024, v2, 0));
	f = fopen(bad, "w");
	fputs("garbage\n", f);
	fclose(f);
	w = auth_worker_start(p1, wake, err, sizeof(err));
	cr_assert_not_null(w, "%s", err);

	cr_assert_eq(auth_worker_reload(w, bad, &n, err, sizeof(err)), -1);
	cr_assert(strstr(err, ":1: not \"name:hash\""), "%s", err);
	question(&q[0], "alice", "one");
	auth_worker_submit(w, &q[0], NULL);
	collect(w, wake, a, tag, 1);
	cr_assert_eq(q[0].status, AUTH_GOOD, "a bad reload kept the old users");

	cr_assert_eq(auth_worker_reload(w, p2, &n, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(n, 2);
	question(&q[0], "alice", "one");
	question(&q[1], "alice", "two");
	question(&q[2], "bob", "three");
	for (unsigned i = 0; i < 3; i++)
		auth_worker_submit(w, &q[i], NULL);
	collect(w, wake, a, tag, 3);
	cr_assert_eq(q[0].status, AUTH_BAD);
	cr_assert_eq(q[1].status, AUTH_GOOD);
	cr_assert_eq(q[2].status, AUTH_GOOD);
	auth_worker_stop(w);
	unlink(p1);
	unlink(p2);
	unlink(bad);
	close(wake);
}
