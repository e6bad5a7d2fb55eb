/*
 * qtest.h - helpers shared by the queue suites: scratch spool directories,
 * deterministic bodies, and a submit-and-wait loop playing the producer.
 */
#ifndef SLUICE_QTEST_H
#define SLUICE_QTEST_H

#include <stddef.h>
#include <stdint.h>

#include "queue/queue.h"

/* mkdtemp under /tmp; returns a static-free malloc'd path. */
char *qt_tmpdir(void);
/* rm -r a directory tree made by the tests. */
void qt_rmtree(const char *path);

/* Fill buf with len bytes derived from seed (the same seed gives the same bytes). */
void qt_body(uint8_t *buf, size_t len, uint64_t seed);

/* A test message: up to 8 recipients, one body buffer. */
struct qt_msg {
	struct queue_submission sub;
	struct queue_rcpt_in rcpt[8];
	char addr[8][64];
	struct iovec iov;
	uint8_t *body;
};
/* Build a message with the given recipients ("a@x,b@y"), body size and seed. */
void qt_msg_init(struct qt_msg *m, const char *rcpts, size_t size, uint64_t seed,
		 uint64_t arrival);
void qt_msg_free(struct qt_msg *m);

/* Submit n messages (retrying on QUEUE_BUSY) and wait for all completions. */
void qt_submit_wait(struct queue *q, struct rte_ring *done, struct qt_msg **m, size_t n);

/* A queue config for tests in dir (1 MiB map, small batches, NOMETA). */
void qt_conf(struct queue_conf *c, const char *dir, unsigned shards);

/* Size in bytes of shard i's data file. */
uint64_t qt_data_size(const char *dir, unsigned shard);

#endif
