/*
 * test_crash.c - acceptance 2: a child process writes batches through the
 * real queue and reports every acknowledgement on a pipe; the parent SIGKILLs
 * it at a random moment, 50 times. After each kill the spool must open, and
 * every message ever acknowledged must be there with its recipients in the
 * right shards and its body byte for byte. Both durability modes are used
 * (even rounds NOMETA, odd rounds FULL), and messages span shards.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qtest.h"
#include "queue/queue.h"

#define ROUNDS 50
#define SHARDS 2
#define WINDOW 48

struct ack { uint64_t id, seed; };

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

/* Everything about a message follows from its seed. */
static size_t msg_size(uint64_t seed)
{
	uint64_t h = mix(seed);
	return (h & 3) == 0 ? 20000 + h % 12000 : 64 + h % 9000;
}

static void msg_rcpts(uint64_t seed, char *out, size_t cap)
{
	uint64_t h = mix(seed ^ 0x5555);
	if (h & 1)
		snprintf(out, cap, "u%llu@d%llu.example,v@d%llu.example",
			 (unsigned long long)(seed % 100), (unsigned long long)(h >> 1) % 6,
			 (unsigned long long)(h >> 9) % 6);
	else
		snprintf(out, cap, "u%llu@d%llu.example", (unsigned long long)(seed % 100),
			 (unsigned long long)(h >> 1) % 6);
}

static void conf_round(struct queue_conf *c, const char *dir, int round)
{
	qt_conf(c, dir, SHARDS);
	c->sync = (round & 1) ? QUEUE_SYNC_FULL : QUEUE_SYNC_NOMETA;
	c->batch_max = 32;
}

static void write_all(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(3);
		p = (const char *)p + w;
		n -= (size_t)w;
	}
}

static void child(const char *dir, int fd, int round)
{
	struct queue_conf c;
	struct queue *q;
	struct rte_ring *done = queue_done_ring_create(256);
	struct qt_msg *m = calloc(WINDOW, sizeof(*m));
	char rcpts[256];
	uint64_t seed = (uint64_t)(round + 1) << 32, seeds[WINDOW];
	int st;

	conf_round(&c, dir, round);
	q = queue_open(&c, &st);
	if (!q || !done || !m)
		_exit(2);
	for (;;) {
		unsigned sent = 0, got = 0;
		for (unsigned i = 0; i < WINDOW; i++) {
			msg_rcpts(seed, rcpts, sizeof(rcpts));
			qt_msg_init(&m[i], rcpts, msg_size(seed), seed, 1700000000 + seed % 1000);
			m[i].sub.done = done;
			seeds[i] = seed++;
			if (queue_submit(q, &m[i].sub) == QUEUE_OK)
				sent++;
			else
				qt_msg_free(&m[i]);
		}
		while (got < sent) {
			struct queue_submission *out[WINDOW];
			unsigned k = queue_done_poll(done, out, WINDOW);
			for (unsigned i = 0; i < k; i++) {
				struct qt_msg *mm = out[i]->user;
				if (out[i]->status == QUEUE_OK) {
					struct ack a = { out[i]->id, seeds[mm - m] };
					write_all(fd, &a, sizeof(a));
				}
				qt_msg_free(mm);
			}
			got += k;
		}
	}
}

static int verify(const char *dir, int round, const struct ack *acks, size_t n)
{
	struct queue_conf c;
	struct queue *q;
	uint8_t *want = malloc(40000), *got = malloc(40000);
	char rcpts[256];
	int st, bad = 0;

	conf_round(&c, dir, round);
	q = queue_open(&c, &st);
	cr_assert_not_null(q, "round %d: spool does not open after SIGKILL: %s", round,
			   queue_status_str(st));
	for (size_t i = 0; i < n && bad < 5; i++) {
		struct qt_msg m;
		size_t size = msg_size(acks[i].seed), len;
		unsigned want_shards[SHARDS] = { 0 };

		msg_rcpts(acks[i].seed, rcpts, sizeof(rcpts));
		qt_msg_init(&m, rcpts, 0, 0, 0);
		for (unsigned r = 0; r < m.sub.env.nrcpt; r++)
			want_shards[queue_shard_of(q, strchr(m.addr[r], '@') + 1)]++;
		qt_body(want, size, acks[i].seed);
		for (unsigned s = 0; s < SHARDS; s++) {
			struct queue_msg *msg;
			if (!want_shards[s])
				continue;
			st = queue_lookup(q, s, acks[i].id, &msg);
			if (st != QUEUE_OK) {
				cr_log_error("round %d: acked %016llx missing in shard %u: %s", round,
					     (unsigned long long)acks[i].id, s, queue_status_str(st));
				bad++;
				continue;
			}
			if (msg->nrcpt != want_shards[s] || msg->size != size) {
				cr_log_error("round %d: %016llx: wrong record", round,
					     (unsigned long long)acks[i].id);
				bad++;
			}
			free(msg);
			st = queue_read_body(q, s, acks[i].id, got, 40000, &len);
			if (st != QUEUE_OK || len != size || memcmp(want, got, size) != 0) {
				cr_log_error("round %d: %016llx: body damaged", round,
					     (unsigned long long)acks[i].id);
				bad++;
			}
		}
		qt_msg_free(&m);
	}
	queue_close(q);
	free(want);
	free(got);
	return bad;
}

static char *crash_dir;

static void fini(void)
{
	if (crash_dir) {
		qt_rmtree(crash_dir);
		free(crash_dir);
		crash_dir = NULL;
	}
}

Test(crash, sigkill_50_times, .fini = fini, .timeout = 240)
{
	const char *dir = crash_dir = qt_tmpdir();
	size_t cap = 1 << 16, n = 0, killed_busy = 0;
	struct ack *acks = malloc(cap * sizeof(*acks));
	unsigned rs = 12345;

	for (int round = 0; round < ROUNDS; round++) {
		int fds[2];
		pid_t pid;
		long delay_ms = 2 + rand_r(&rs) % 60;
		uint64_t deadline;
		size_t before = n;
		int status;

		cr_assert_eq(pipe(fds), 0);
		fflush(NULL);
		pid = fork();
		cr_assert_geq(pid, 0);
		if (pid == 0) {
			close(fds[0]);
			child(dir, fds[1], round);
			_exit(1);
		}
		close(fds[1]);
		/*
		 * Even rounds: the moment counts from the fork, so some kills land
		 * during open and recovery. Odd rounds: from the first acknowledgement,
		 * so the kill lands mid-stream whatever the machine's speed.
		 */
		if (round & 1) {
			struct pollfd p = { fds[0], POLLIN, 0 };
			struct ack a;
			cr_assert_eq(poll(&p, 1, 10000), 1, "round %d: no acknowledgement in 10 s", round);
			cr_assert_eq(read(fds[0], &a, sizeof(a)), (ssize_t)sizeof(a));
			if (n == cap)
				acks = realloc(acks, (cap *= 2) * sizeof(*acks));
			acks[n++] = a;
			delay_ms = rand_r(&rs) % 40;
		}
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		deadline = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + (uint64_t)delay_ms;
		for (;;) {
			struct pollfd p = { fds[0], POLLIN, 0 };
			uint64_t now;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
			if (now >= deadline)
				break;
			if (poll(&p, 1, (int)(deadline - now)) > 0) {
				struct ack a;
				ssize_t r = read(fds[0], &a, sizeof(a));
				if (r == 0)
					break;
				cr_assert_eq(r, (ssize_t)sizeof(a));
				if (n == cap)
					acks = realloc(acks, (cap *= 2) * sizeof(*acks));
				acks[n++] = a;
			}
		}
		kill(pid, SIGKILL);
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
			  "round %d: the child died on its own (status %d)", round, status);
		/* acknowledgements written before the kill are still in the pipe */
		for (;;) {
			struct ack a;
			ssize_t r = read(fds[0], &a, sizeof(a));
			if (r <= 0)
				break;
			cr_assert_eq(r, (ssize_t)sizeof(a));
			if (n == cap)
				acks = realloc(acks, (cap *= 2) * sizeof(*acks));
			acks[n++] = a;
		}
		close(fds[0]);
		killed_busy += n > before;
		cr_assert_eq(verify(dir, round, acks, n), 0, "round %d: acknowledged mail lost", round);
	}
	cr_log_info("crash: %zu acknowledged messages over %d kills, %zu kills mid-stream",
		    n, ROUNDS, killed_busy);
	cr_assert_geq(killed_busy, ROUNDS / 2, "at least half the kills must land while writing");
	free(acks);
}
