/*
 * queue_fill.c - bench/queue-depth's filler: a deep spool made fast, straight
 * through the queue's API (no SMTP), for sluiced to open afterwards.
 *
 *   queue-fill -d DIR [-n messages] [-D domains] [-s shards] [-z size]
 *              [-p producers] [-a spread_seconds]
 *
 * n messages (1,000,000) of `size` bytes (300) to one recipient each,
 * round-robin over D domains (10,000: d0.example ... ), arrivals spread
 * evenly over the last `spread` seconds (86400: qshape's buckets all get
 * some), sync=nometa. Prints the rate. The spool is left for sluiced
 * ([queue] dir = DIR, shards = the same).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "queue/queue.h"

#define WINDOW 512

struct opts {
	const char *dir;
	unsigned n, domains, shards, size, producers, spread;
};

struct slot {
	struct queue_submission sub;
	struct queue_rcpt_in rcpt;
	struct iovec iov;
	char addr[64];
};

struct prod {
	pthread_t t;
	struct queue *q;
	const struct opts *o;
	unsigned first, step, quota;
	const uint8_t *body;
	uint64_t now;
	unsigned failed;
};

static void *producer(void *arg)
{
	struct prod *p = arg;
	struct rte_ring *done = queue_done_ring_create(WINDOW);
	struct slot *slots = calloc(WINDOW, sizeof(*slots));
	struct slot **free_s = calloc(WINDOW, sizeof(*free_s));
	unsigned nfree = WINDOW, sent = 0, got = 0;

	if (!done || !slots || !free_s) {
		fprintf(stderr, "queue-fill: out of memory\n");
		exit(1);
	}
	for (unsigned i = 0; i < WINDOW; i++)
		free_s[i] = &slots[i];
	while (got < p->quota) {
		struct queue_submission *out[64];
		unsigned k;

		while (nfree && sent < p->quota) {
			struct slot *s = free_s[nfree - 1];
			unsigned idx = p->first + sent * p->step;
			memset(&s->sub, 0, sizeof(s->sub));
			snprintf(s->addr, sizeof(s->addr), "u%u@d%u.example", idx, idx % p->o->domains);
			s->rcpt = (struct queue_rcpt_in){ .addr = s->addr };
			s->iov.iov_base = (void *)p->body;
			s->iov.iov_len = p->o->size;
			s->sub.env.sender = "bench@sender.example";
			s->sub.env.arrival = p->now - (uint64_t)idx * p->o->spread / p->o->n;
			s->sub.env.expiry = s->sub.env.arrival + 5 * 86400;
			s->sub.env.nrcpt = 1;
			s->sub.env.rcpt = &s->rcpt;
			s->sub.iov = &s->iov;
			s->sub.iovcnt = 1;
			s->sub.done = done;
			s->sub.user = s;
			if (queue_submit(p->q, &s->sub) != QUEUE_OK)
				break;	/* busy: collect completions first */
			nfree--;
			sent++;
		}
		k = queue_done_poll(done, out, 64);
		for (unsigned i = 0; i < k; i++) {
			if (out[i]->status != QUEUE_OK)
				p->failed++;
			free_s[nfree++] = out[i]->user;
		}
		got += k;
		if (!k) {
			struct timespec ts = { 0, 50000 };
			nanosleep(&ts, NULL);
		}
	}
	queue_done_ring_free(done);
	free(slots);
	free(free_s);
	return NULL;
}

int main(int argc, char **argv)
{
	struct opts o = { NULL, 1000000, 10000, 4, 300, 2, 86400 };
	struct queue_conf c;
	struct queue *q;
	struct prod *p;
	uint8_t *body;
	unsigned failed = 0;
	double t0, t1;
	int st, opt;

	while ((opt = getopt(argc, argv, "d:n:D:s:z:p:a:")) != -1) {
		switch (opt) {
		case 'd': o.dir = optarg; break;
		case 'n': o.n = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'D': o.domains = (unsigned)strtoul(optarg, NULL, 10); break;
		case 's': o.shards = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'z': o.size = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'p': o.producers = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'a': o.spread = (unsigned)strtoul(optarg, NULL, 10); break;
		default:
			fprintf(stderr, "usage: queue-fill -d DIR [-n N] [-D domains] [-s shards] "
				"[-z size] [-p producers] [-a spread_s]\n");
			return 2;
		}
	}
	if (!o.dir || !o.n || !o.domains || !o.shards || !o.producers || o.size < 16) {
		fprintf(stderr, "queue-fill: -d DIR needed; n, D, s, p > 0; size >= 16\n");
		return 2;
	}
	body = malloc(o.size);
	p = calloc(o.producers, sizeof(*p));
	if (!body || !p)
		return 1;
	memset(body, 'x', o.size);
	memcpy(body, "Subject: depth\r\n\r\n", 18 < o.size ? 18 : o.size);
	queue_conf_defaults(&c);
	snprintf(c.dir, sizeof(c.dir), "%s", o.dir);
	c.shards = o.shards;
	c.sync = QUEUE_SYNC_NOMETA;
	c.map_size = 1ull << 30;
	c.map_max = 64ull << 30;
	q = queue_open(&c, &st);
	if (!q) {
		fprintf(stderr, "queue-fill: queue_open %s: %s\n", o.dir, queue_status_str(st));
		return 1;
	}
	t0 = (double)clock_mono_ns() / 1e9;
	for (unsigned i = 0; i < o.producers; i++) {
		p[i] = (struct prod){ .q = q, .o = &o, .first = i, .step = o.producers,
				      .quota = o.n / o.producers + (i < o.n % o.producers),
				      .body = body, .now = (uint64_t)time(NULL) };
		pthread_create(&p[i].t, NULL, producer, &p[i]);
	}
	for (unsigned i = 0; i < o.producers; i++) {
		pthread_join(p[i].t, NULL);
		failed += p[i].failed;
	}
	t1 = (double)clock_mono_ns() / 1e9;
	queue_close(q);
	printf("queue-fill: %u messages over %u domains in %u shards: %.1f s, %.0f msg/s, "
	       "%u failed\n", o.n, o.domains, o.shards, t1 - t0, o.n / (t1 - t0), failed);
	free(body);
	free(p);
	return failed ? 1 : 0;
}
