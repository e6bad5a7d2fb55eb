/*
 * queue_bench.c - bench/queue-bench: how fast the spool takes 10 KiB messages
 * with 1, 2 and 4 shards, next to the raw LMDB ceiling measured in the same
 * run: bare puts of the same size, in batches as large as the queue's average
 * group commit, with the same sync mode, one environment and one writer
 * thread per shard. Prints a table and the ratio queue/raw.
 *
 *   queue-bench [-n messages] [-s size] [-p producers] [-w window] [-d dir]
 *               [-m full|nometa|both] [-r repeats]
 *
 * Run it on the disk the spool will live on (-d); it writes n * size bytes
 * per run and cleans up after itself. Disks in VMs are noisy: every row runs
 * queue and raw alternately `repeats` times and reports the medians.
 */
#include <errno.h>
#include <ftw.h>
#include <lmdb.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "queue/queue.h"

struct opts {
	unsigned n, size, producers, window;
	const char *dir;
	int modes;		/* bit 0 full, bit 1 nometa */
	unsigned repeats;
	int no_raw;		/* -R: queue only (for profiling) */
	int spin;		/* -y: producers spin (sched_yield) instead of napping */
};

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_d);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct slot {
	struct queue_submission sub;
	struct queue_rcpt_in rcpt;
	struct iovec iov;
};

struct prod {
	pthread_t t;
	struct queue *q;
	const struct opts *o;
	unsigned quota, first;
	char (*rcpt)[64];	/* one address per shard */
	unsigned nshards;
	const uint8_t *body;
	unsigned failed;
};

static void *producer(void *arg)
{
	struct prod *p = arg;
	struct rte_ring *done = queue_done_ring_create(p->o->window);
	struct slot *slots = calloc(p->o->window, sizeof(*slots));
	struct slot **free_s = calloc(p->o->window, sizeof(*free_s));
	unsigned nfree = p->o->window, sent = 0, got = 0;

	for (unsigned i = 0; i < p->o->window; i++)
		free_s[i] = &slots[i];
	while (got < p->quota) {
		struct queue_submission *out[64];
		unsigned k;

		while (nfree && sent < p->quota) {
			struct slot *s = free_s[nfree - 1];
			unsigned idx = p->first + sent;
			memset(&s->sub, 0, sizeof(s->sub));
			s->rcpt.addr = p->rcpt[idx % p->nshards];
			s->iov.iov_base = (void *)p->body;
			s->iov.iov_len = p->o->size;
			s->sub.env.sender = "bench@example.net";
			s->sub.env.arrival = 1700000000;
			s->sub.env.expiry = 1700000000 + 5 * 86400;
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
		if (!k && p->o->spin) {
			sched_yield();	/* like a poll-mode lcore */
		} else if (!k) {
			/* cores are shared with the writers here: nap, don't steal their CPU */
			struct timespec ts = { 0, 20000 };
			nanosleep(&ts, NULL);
		}
	}
	queue_done_ring_free(done);
	free(slots);
	free(free_s);
	return NULL;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

static double now_s(void)
{
	return (double)clock_mono_ns() / 1e9;
}

/* Queue row: messages/s, and the average batch (messages per commit). */
static double run_queue(const struct opts *o, unsigned shards, enum queue_sync sync,
			const uint8_t *body, double *avg_batch, double *fsyncs_per_msg)
{
	char path[512];
	struct queue_conf c;
	struct queue *q;
	struct prod *p = calloc(o->producers, sizeof(*p));
	char (*rcpt)[64] = calloc(shards, sizeof(*rcpt));
	uint64_t batches = 0, msgs = 0, fsyncs = 0;
	unsigned failed = 0;
	double t0, t1;
	int st;

	snprintf(path, sizeof(path), "%s/queue-%u-%d", o->dir, shards, (int)sync);
	queue_conf_defaults(&c);
	snprintf(c.dir, sizeof(c.dir), "%s", path);
	c.shards = shards;
	c.sync = sync;
	c.map_size = 1ull << 30;
	c.map_max = 64ull << 30;
	q = queue_open(&c, &st);
	if (!q) {
		fprintf(stderr, "queue_open: %s\n", queue_status_str(st));
		exit(1);
	}
	/* one domain per shard, so the load spreads evenly */
	for (unsigned s = 0; s < shards; s++)
		for (unsigned d = 0;; d++) {
			char dom[32];
			snprintf(dom, sizeof(dom), "d%u.example", d);
			if (queue_shard_of(q, dom) == s) {
				snprintf(rcpt[s], sizeof(rcpt[s]), "user@%s", dom);
				break;
			}
		}
	t0 = now_s();
	for (unsigned i = 0; i < o->producers; i++) {
		p[i] = (struct prod){ .q = q, .o = o, .quota = o->n / o->producers,
				      .first = i, .rcpt = rcpt, .nshards = shards, .body = body };
		pthread_create(&p[i].t, NULL, producer, &p[i]);
	}
	for (unsigned i = 0; i < o->producers; i++) {
		pthread_join(p[i].t, NULL);
		failed += p[i].failed;
	}
	t1 = now_s();
	for (unsigned s = 0; s < shards; s++) {
		struct queue_shard_stats ss;
		queue_stats(q, s, &ss);
		batches += ss.batches;
		msgs += ss.messages;
		fsyncs += ss.fsyncs;
	}
	queue_close(q);
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	if (failed)
		fprintf(stderr, "warning: %u submissions failed\n", failed);
	*avg_batch = batches ? (double)msgs / (double)batches : 0;
	*fsyncs_per_msg = msgs ? (double)fsyncs / (double)msgs : 0;
	free(p);
	free(rcpt);
	return (double)(o->producers * (o->n / o->producers)) / (t1 - t0);
}

struct raw {
	pthread_t t;
	char path[512];
	unsigned n, batch, size, flags;
	const uint8_t *body;
	int rc;
};

static void *raw_writer(void *arg)
{
	struct raw *r = arg;
	MDB_env *env;
	MDB_dbi dbi;
	MDB_txn *txn;
	uint64_t key = 0;

	mkdir(r->path, 0700);
	if ((r->rc = mdb_env_create(&env)) || (r->rc = mdb_env_set_mapsize(env, 16ull << 30)) ||
	    (r->rc = mdb_env_open(env, r->path, r->flags, 0600)))
		return NULL;
	for (unsigned done = 0; done < r->n;) {
		if ((r->rc = mdb_txn_begin(env, NULL, 0, &txn)) || (r->rc = mdb_dbi_open(txn, NULL, 0, &dbi)))
			break;
		for (unsigned i = 0; i < r->batch && done < r->n; i++, done++) {
			uint8_t kb[8];
			for (int b = 0; b < 8; b++)
				kb[b] = (uint8_t)(key >> (56 - 8 * b));
			key++;
			MDB_val k = { 8, kb }, v = { r->size, (void *)r->body };
			if ((r->rc = mdb_put(txn, dbi, &k, &v, 0)))
				break;
		}
		if (r->rc || (r->rc = mdb_txn_commit(txn)))
			break;
	}
	mdb_env_close(env);
	return NULL;
}

static double run_raw(const struct opts *o, unsigned envs, unsigned batch, unsigned flags,
		      const uint8_t *body)
{
	struct raw *r = calloc(envs, sizeof(*r));
	double t0, t1;

	t0 = now_s();
	for (unsigned i = 0; i < envs; i++) {
		r[i] = (struct raw){ .n = o->n / envs, .batch = batch ? batch : 1, .size = o->size,
				     .flags = flags, .body = body };
		snprintf(r[i].path, sizeof(r[i].path), "%s/raw-%u", o->dir, i);
		pthread_create(&r[i].t, NULL, raw_writer, &r[i]);
	}
	for (unsigned i = 0; i < envs; i++) {
		pthread_join(r[i].t, NULL);
		if (r[i].rc)
			fprintf(stderr, "raw: %s\n", mdb_strerror(r[i].rc));
		nftw(r[i].path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	}
	t1 = now_s();
	free(r);
	return (double)(envs * (o->n / envs)) / (t1 - t0);
}

int main(int argc, char **argv)
{
	struct opts o = { 10000, 10240, 1, 2048, NULL, 3, 3, 0, 0 };
	char tmpl[] = "/tmp/queue-bench-XXXXXX";
	uint8_t *body;
	int c;

	while ((c = getopt(argc, argv, "n:s:p:w:d:m:r:Ryh")) != -1) {
		switch (c) {
		case 'n': o.n = (unsigned)atoi(optarg); break;
		case 's': o.size = (unsigned)atoi(optarg); break;
		case 'p': o.producers = (unsigned)atoi(optarg); break;
		case 'w': o.window = (unsigned)atoi(optarg); break;
		case 'd': o.dir = optarg; break;
		case 'r': o.repeats = (unsigned)atoi(optarg); break;
		case 'R': o.no_raw = 1; break;
		case 'y': o.spin = 1; break;
		case 'm':
			o.modes = !strcmp(optarg, "full") ? 1 : !strcmp(optarg, "nometa") ? 2 : 3;
			break;
		default:
			fprintf(stderr, "usage: %s [-n msgs] [-s size] [-p producers] [-w window] "
				"[-d dir] [-m full|nometa|both] [-r repeats] [-R] [-y]\n", argv[0]);
			return 2;
		}
	}
	if (!o.n || !o.producers || !o.window || !o.repeats || o.repeats > 15) {
		fprintf(stderr, "n, producers and window must be positive\n");
		return 2;
	}
	log_init("queue-bench", LOG_LVL_WARN, false);
	if (!o.dir) {
		if (!mkdtemp(tmpl)) {
			perror("mkdtemp");
			return 1;
		}
		o.dir = tmpl;
	}
	body = malloc(o.size);
	for (unsigned i = 0; i < o.size; i++)
		body[i] = (uint8_t)(i * 131 + 7);

	printf("queue-bench: %u messages of %u bytes per run, %u producers x %u in flight, "
	       "median of %u runs, dir %s\n", o.n, o.size, o.producers, o.window, o.repeats, o.dir);
	printf("%-7s %6s %12s %10s %12s %8s %8s\n", "sync", "shards", "queue msg/s", "avg batch",
	       "raw msg/s", "q/raw", "syncs/msg");
	for (int mode = 0; mode < 2; mode++) {
		enum queue_sync sync = mode ? QUEUE_SYNC_NOMETA : QUEUE_SYNC_FULL;
		unsigned flags = mode ? MDB_NOMETASYNC : 0;
		if (!(o.modes >> mode & 1))
			continue;
		for (unsigned shards = 1; shards <= 4; shards *= 2) {
			double qv[15], rv[15], bv[15], fv[15], batch, fpm, qr, rr;
			for (unsigned r = 0; r < o.repeats; r++) {
				qv[r] = run_queue(&o, shards, sync, body, &bv[r], &fv[r]);
				rv[r] = o.no_raw ? 1 : run_raw(&o, shards, (unsigned)(bv[r] + 0.5), flags, body);
			}
			qr = median(qv, o.repeats);
			rr = median(rv, o.repeats);
			batch = median(bv, o.repeats);
			fpm = median(fv, o.repeats);
			printf("%-7s %6u %12.0f %10.1f %12.0f %7.0f%% %8.3f\n", mode ? "nometa" : "full",
			       shards, qr, batch, rr, 100.0 * qr / rr, fpm);
			fflush(stdout);
		}
	}
	if (o.dir == tmpl)
		rmdir(tmpl);
	free(body);
	return 0;
}
