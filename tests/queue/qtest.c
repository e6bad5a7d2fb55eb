/*
 * qtest.c - helpers shared by the queue suites. See qtest.h.
 */
#define _XOPEN_SOURCE 700
#include "qtest.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

char *qt_tmpdir(void)
{
	char *p = strdup("/tmp/sluice-qtest-XXXXXX");
	if (!p || !mkdtemp(p)) {
		perror("mkdtemp");
		abort();
	}
	return p;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

void qt_rmtree(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void qt_body(uint8_t *buf, size_t len, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (uint8_t)x;
	}
}

void qt_msg_init(struct qt_msg *m, const char *rcpts, size_t size, uint64_t seed,
		 uint64_t arrival)
{
	const char *p = rcpts;
	unsigned n = 0;

	memset(m, 0, sizeof(*m));
	while (*p && n < 8) {
		size_t l = strcspn(p, ",");
		snprintf(m->addr[n], sizeof(m->addr[n]), "%.*s", (int)l, p);
		m->rcpt[n].addr = m->addr[n];
		m->rcpt[n].notify = QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY;
		m->rcpt[n].orcpt = (n & 1) ? "rfc822;orig@example.org" : NULL;
		n++;
		p += l;
		if (*p == ',')
			p++;
	}
	m->body = malloc(size ? size : 1);
	qt_body(m->body, size, seed);
	m->iov.iov_base = m->body;
	m->iov.iov_len = size;
	m->sub.env.sender = "sender@example.net";
	m->sub.env.envid = "ENV123";
	m->sub.env.ret = QUEUE_RET_HDRS;
	m->sub.env.client_name = "client.example.net";
	m->sub.env.client_addr = "192.0.2.7";
	m->sub.env.helo = "client.example.net";
	m->sub.env.arrival = arrival;
	m->sub.env.expiry = arrival + 5 * 86400;
	m->sub.env.nrcpt = n;
	m->sub.env.rcpt = m->rcpt;
	m->sub.iov = &m->iov;
	m->sub.iovcnt = 1;
	m->sub.user = m;
}

void qt_msg_free(struct qt_msg *m)
{
	free(m->body);
	m->body = NULL;
}

void qt_submit_wait(struct queue *q, struct rte_ring *done, struct qt_msg **m, size_t n)
{
	size_t got = 0;
	struct queue_submission *out[64];

	for (size_t i = 0; i < n; i++) {
		int st;
		m[i]->sub.done = done;
		while ((st = queue_submit(q, &m[i]->sub)) == QUEUE_BUSY) {
			unsigned k = queue_done_poll(done, out, 64);
			got += k;
			if (!k) {
				struct timespec ts = { 0, 100000 };
				nanosleep(&ts, NULL);
			}
		}
		if (st != QUEUE_OK) {
			fprintf(stderr, "queue_submit: %s\n", queue_status_str(st));
			abort();
		}
	}
	while (got < n) {
		unsigned k = queue_done_poll(done, out, 64);
		got += k;
		if (!k) {
			struct timespec ts = { 0, 100000 };
			nanosleep(&ts, NULL);
		}
	}
}

void qt_conf(struct queue_conf *c, const char *dir, unsigned shards)
{
	queue_conf_defaults(c);
	snprintf(c->dir, sizeof(c->dir), "%s/spool", dir);
	c->shards = shards;
	c->map_size = 1u << 20;
	c->map_max = 1ull << 30;
	c->batch_max = 128;
	c->ring_size = 1024;
	c->disk_reserve = 64u << 10;
}

uint64_t qt_data_size(const char *dir, unsigned shard)
{
	char path[4200];
	struct stat st;
	snprintf(path, sizeof(path), "%s/spool/shard-%u/data.mdb", dir, shard);
	return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}
