/*
 * dns_sock.h - the sockets the resolver hands to c-ares, as a seam.
 *
 * c-ares never opens a kernel socket here: its socket functions
 * (ares_set_socket_functions) call through this table. In production the
 * table is dns_sock_dpsock.c's, whose functions are the dpsock API (UDP
 * sockets and TCP connections on a worker lcore's stack, driven over
 * rings). The unit tests and the fuzz harness use another implementation
 * (tests/support/dns_responder.c) that answers the queries c-ares sends
 * from canned zone data in the same process; c-ares itself runs for real
 * either way.
 *
 * The functions have dpsock's shape: non-blocking, -errno on failure, and
 * readiness reported by poll() as events, one call per socket that became
 * readable, writable (a TCP connection established, room to send again)
 * or failed. Addresses (struct net_addr, either family) and ports are in
 * network byte order.
 */
#ifndef SLUICE_DNS_SOCK_H
#define SLUICE_DNS_SOCK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "control/dns.h"

/* Event bits handed to the poll callback (dns_sock_dpsock.c maps DPSOCK_*). */
#define DNS_SOCK_READABLE 1u
#define DNS_SOCK_WRITABLE 2u
#define DNS_SOCK_ERROR    4u

typedef void (*dns_sock_event_fn)(void *user, int id, unsigned what);

struct dns_sock_ops {
	void *ctx;	/* first argument of every function: the hub */
	/* type SOCK_DGRAM or SOCK_STREAM; an id >= 0 or -errno */
	int (*open)(void *ctx, int type);
	/* UDP: 0 (sets the peer). TCP: -EINPROGRESS, then WRITABLE or ERROR */
	int (*connect)(void *ctx, int id, const struct net_addr *addr, uint16_t port);
	/* bytes taken, or -EAGAIN, -ENOTCONN, -ECONNRESET ... */
	ssize_t (*send)(void *ctx, int id, const struct iovec *iov, int n);
	/* one datagram (UDP) or stream bytes (TCP); -EAGAIN: nothing; 0: TCP EOF */
	ssize_t (*recv)(void *ctx, int id, void *buf, size_t cap, struct net_addr *from,
			uint16_t *fport);
	int (*close)(void *ctx, int id);
	/* report the events that arrived; returns the number of events */
	unsigned (*poll)(void *ctx, dns_sock_event_fn cb, void *user);
};

/*
 * A resolver whose sockets are ops (copied). dns_create() is this with the
 * dpsock table over a hub.
 */
struct dns_resolver *dns_create_ops(const struct dns_conf *c, const struct dns_sock_ops *ops,
				    uint64_t now_ms);

#endif
