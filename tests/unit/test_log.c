/*
 * test_log.c - logging from a poll-mode lcore: a thread bound to a log ring
 * writes nothing itself (no system call, never blocks); its lines come out
 * only when another thread drains the ring, in order, prefixed with the
 * ring's id, with their own timestamps; a full ring drops and counts, and
 * the drain says how many were dropped.
 */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

static char out_path[64];
static int saved_stderr = -1;

/* Point stderr at a fresh temporary file. */
static void capture(void)
{
	int fd;

	strcpy(out_path, "/tmp/sluice-log-XXXXXX");
	fd = mkstemp(out_path);
	cr_assert_geq(fd, 0);
	saved_stderr = dup(STDERR_FILENO);
	cr_assert_geq(dup2(fd, STDERR_FILENO), 0);
	close(fd);
}

static void restore(void)
{
	if (saved_stderr >= 0) {
		dup2(saved_stderr, STDERR_FILENO);
		close(saved_stderr);
		saved_stderr = -1;
	}
	unlink(out_path);
}

static char *captured(void)
{
	static char buf[1 << 20];
	int fd = open(out_path, O_RDONLY);
	ssize_t n;

	cr_assert_geq(fd, 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static unsigned count(const char *hay, const char *needle)
{
	unsigned n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

struct job {
	struct log_ring *ring;
	unsigned lines;
};

static void *lcore_thread(void *arg)
{
	struct job *j = arg;

	log_ring_bind(j->ring);
	for (unsigned i = 0; i < j->lines; i++)
		log_info("smtp: client %u said something %s", i, i % 2 ? "odd" : "even");
	log_debug("below the threshold: never queued");
	log_ring_bind(NULL);
	return NULL;
}

TestSuite(log_ring, .init = capture, .fini = restore);

Test(log_ring, lines_wait_for_the_drain)
{
	struct job j = { log_ring_create(7), 100 };
	pthread_t t;

	log_init("test", LOG_LVL_INFO, false);
	cr_assert_not_null(j.ring);
	pthread_create(&t, NULL, lcore_thread, &j);
	pthread_join(t, NULL);

	cr_expect_str_eq(captured(), "", "the lcore thread wrote to stderr itself");
	cr_expect_eq(j.ring->stats.lines, 100);
	cr_expect_eq(j.ring->stats.dropped, 0);

	cr_assert_eq(log_ring_drain(j.ring, 1000), 100);
	char *text = captured();
	cr_expect_eq(count(text, "lcore 7: smtp: client "), 100, "%s", text);
	cr_expect_eq(count(text, "below the threshold"), 0);
	/* in order */
	char *a = strstr(text, "client 3 said"), *b = strstr(text, "client 42 said");
	cr_expect(a && b && a < b);
	cr_expect_eq(count(text, "test["), 100);
	cr_expect_eq(count(text, ": info: lcore 7: "), 100);
	/* nothing more to drain */
	cr_expect_eq(log_ring_drain(j.ring, 1000), 0);
	log_ring_free(j.ring);
}

Test(log_ring, full_ring_drops_and_says_so)
{
	struct job j = { log_ring_create(3), LOG_RING_SLOTS + 10 };
	pthread_t t;

	log_init("test", LOG_LVL_INFO, false);
	pthread_create(&t, NULL, lcore_thread, &j);
	pthread_join(t, NULL);	/* returns: a full ring never blocks the lcore */
	cr_expect_eq(j.ring->stats.lines, LOG_RING_SLOTS);
	cr_expect_eq(j.ring->stats.dropped, 10);
	cr_expect_str_eq(captured(), "");

	/* drained in parts; the drop report comes once */
	unsigned n = log_ring_drain(j.ring, 100);
	cr_expect_eq(n, 100 + 1);
	n = log_ring_drain(j.ring, 1000);
	cr_expect_eq(n, LOG_RING_SLOTS - 100);
	char *text = captured();
	cr_expect_eq(count(text, "lcore 3: smtp: client "), LOG_RING_SLOTS);
	cr_expect_eq(count(text, "lcore 3: 10 log line(s) dropped"), 1, "%s", text);
	/* room again */
	j.lines = 5;
	pthread_create(&t, NULL, lcore_thread, &j);
	pthread_join(t, NULL);
	cr_expect_eq(log_ring_drain(j.ring, 1000), 5);
	log_ring_free(j.ring);
}

Test(log_ring, long_lines_are_cut_not_overrun)
{
	struct log_ring *r = log_ring_create(1);
	char big[4000];

	log_init("test", LOG_LVL_INFO, false);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_ring_bind(r);
	log_warn("%s", big);
	log_ring_bind(NULL);
	cr_assert_eq(log_ring_drain(r, 10), 1);
	char *text = captured();
	cr_expect_not_null(strstr(text, "xxx...\n"));
	cr_expect_lt(strlen(text), LOG_REC_TEXT + 100);
	log_ring_free(r);
}

Test(log_ring, unbound_threads_write_directly)
{
	log_init("test", LOG_LVL_INFO, false);
	log_notice("from the main thread");
	cr_expect_eq(count(captured(), "notice: from the main thread"), 1);
}
