/*
 * echo.h - a TCP echo service and a verifying echo client, for tests.
 *
 * The server echoes every byte back, with back-pressure: received bytes are
 * acknowledged to the stack (tcp_recved, reopening the window) only once
 * they are in the send buffer, so a slow reader slows the writer instead of
 * filling memory. On the peer's FIN it closes after the last byte.
 *
 * The client opens `connections` connections per lcore to a target, sends
 * `bytes` of a pseudo-random stream seeded per connection, checks every byte
 * that comes back against the same stream, and closes. It counts whole
 * verified connections, so a test can prove active opens from every lcore
 * and byte-exact transfer through loss and reordering.
 *
 * Both are off unless configured ([testsvc] in the config); nothing else in
 * Sluice depends on them.
 */
#ifndef SLUICE_ECHO_H
#define SLUICE_ECHO_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_byteorder.h>

#include "common/stats.h"

struct tcp_stack;

struct echo_conf {
	uint16_t port;			/* server port, host order; 0: off */
	rte_be32_t connect_ip;		/* client target; 0: off */
	uint16_t connect_port;		/* host order */
	unsigned connections;		/* client connections per lcore */
	uint64_t bytes;			/* bytes each client connection sends */
	unsigned max_conns;		/* echo sessions per lcore (bound) */
};

#define ECHO_STATS(X) X(accepted) X(refused_full) X(bytes_echoed) X(closed) \
	X(client_started) X(client_connect_failed) X(client_ok) X(client_failed) \
	X(client_mismatch) X(client_bytes_verified)
struct echo_stats {
	ECHO_STATS(STATS_FIELD)
};
extern const char *const echo_stat_names[];
extern const unsigned echo_stat_count;

struct echo_service;

/* Start-up only (heap). NULL when both modes are off or on failure. */
struct echo_service *echo_create(struct tcp_stack *ts, const struct echo_conf *c,
				 unsigned lcore_seed);
void echo_destroy(struct echo_service *e);

/* Start client connections (call once the lcore loop runs). */
void echo_start_clients(struct echo_service *e);

const struct echo_stats *echo_get_stats(const struct echo_service *e);

#endif
