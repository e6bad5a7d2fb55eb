/*
 * dpsock.h - sockets on the dataplane for control-plane threads.
 *
 * The control plane may not open kernel sockets on the data network. A
 * dpsock is a UDP socket or a TCP connection that lives on a worker lcore's
 * stack (udp.h, tcp.h) and is driven from a control thread through rings.
 *
 *   control thread                                     worker lcore k
 *   dpsock_open/connect/send/recv/close/poll            dpsock_lcore_poll (burst loop)
 *     hub --- request ring (SP/SC, per hub and lcore) --->  runs UDP sockets and TCP
 *         <-- event ring   (SP/SC, per hub and lcore) ----  connections, posts events
 *
 * One struct dpsock_hub per client thread (the resolver has one; the
 * dataplane makes them: dp_dpsock_hub()). Every call on a hub comes from
 * that one thread. A socket is served by one lcore, picked at connect time
 * round robin among those with a free message slot.
 *
 * Messages: each (hub, lcore) pair has preallocated message slots of up to
 * DPSOCK_MSG_MAX bytes (a UDP datagram, or a chunk of a TCP stream):
 * conf.req_slots for requests (connect, data to send), conf.evt_slots for
 * events carrying data (a datagram received, stream bytes). A slot goes one
 * way and comes back empty; small messages (close, connected, error, end of
 * stream, released) travel in the ring entry itself. Both rings are sized
 * for every slot and small message that can exist, so they never fill up:
 * the control side runs out of free slots first, and that is -EAGAIN, never
 * a wait. One socket holds at most conf.sock_slots slots each way, so a
 * busy socket cannot starve the others on its lcore.
 *
 * Addresses: either family (struct net_addr); the rte_be32_t calls are the
 * IPv4 forms of the _addr ones.
 *
 * UDP: connect sets the peer (an ephemeral port whose replies hash back to
 * the serving lcore is chosen there); a socket must be connected to send.
 * Datagrams wait in the UDP socket's bounded queue on the lcore (udp.h)
 * until a slot takes them to the control side.
 *
 * TCP: connect is tcp_connect on the lcore's stack (its source port hashes
 * back too). Received bytes are copied out of the mbufs at once into the
 * connection's staging buffer on the lcore (conf.tcp_rxbuf, no smaller than
 * the stack's receive window, so the peer cannot overrun it), then into
 * event slots; tcp_recved() reopens the window only as the control side
 * consumes them. Bytes to send wait in their slots on the lcore until
 * tcp_send takes them.
 *
 * Errors: connection refused, reset, timeout (and failures on the lcore:
 * no port, no buffer) come back as DPSOCK_ERROR, and every later call on the
 * socket returns the -errno (ECONNREFUSED, ECONNRESET, ETIMEDOUT, ...),
 * after any data received before it.
 *
 * Close: dpsock_close() is immediate for the caller (the id is invalid at
 * once; it is reused only after the lcore has released everything). On the
 * lcore, a TCP connection with nothing left unsent or unread is closed in
 * order (FIN, finished by the stack); otherwise it is reset. Slots in
 * flight either way come back to their pools, received data is dropped.
 *
 * Lcore side: no locks, no syscalls, no heap, no logging above debug.
 */
#ifndef SLUICE_DPSOCK_H
#define SLUICE_DPSOCK_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <rte_byteorder.h>

#include "common/stats.h"
#include "dataplane/net/net_addr.h"

struct dpsock_hub;
struct dpsock_lcore;
struct udp_stack;
struct tcp_stack;

#define DPSOCK_MSG_MAX 4096	/* bytes per message: EDNS0's UDP payload */

/* What dpsock_poll reports for a socket (bits). */
#define DPSOCK_READABLE 1u	/* level: dpsock_recv would not give -EAGAIN */
#define DPSOCK_WRITABLE 2u	/* edge: connected, or room after -EAGAIN/short send */
#define DPSOCK_ERROR    4u	/* edge: the socket failed; calls return -errno */

/* Control-side counters, per hub (written by the hub's thread). */
#define DPSOCK_HUB_STATS(X)                                                 \
	X(opened) X(open_full) X(connects) X(connect_eagain) X(closed)      \
	X(sends) X(send_bytes) X(send_eagain) X(recvs) X(recv_bytes)        \
	X(events) X(errors) X(ring_full)
struct dpsock_hub_stats {
	DPSOCK_HUB_STATS(STATS_FIELD)
};
extern const char *const dpsock_hub_stat_names[];
extern const unsigned dpsock_hub_stat_count;

/* Lcore-side counters, per lcore over all hubs (written by the lcore). */
#define DPSOCK_LCORE_STATS(X)                                               \
	X(requests) X(udp_opens) X(tcp_opens) X(open_fail)                  \
	X(udp_tx) X(udp_tx_fail) X(udp_rx) X(tcp_tx_bytes) X(tcp_rx_bytes)  \
	X(tcp_connected) X(tcp_errors) X(rx_overflow) X(evt_slot_waits)     \
	X(ring_full) X(closes) X(close_fin) X(close_rst)
struct dpsock_lcore_stats {
	DPSOCK_LCORE_STATS(STATS_FIELD)
};
extern const char *const dpsock_lcore_stat_names[];
extern const unsigned dpsock_lcore_stat_count;

struct dpsock_conf {
	unsigned max_socks;	/* sockets per hub: ids 0..max_socks-1 */
	unsigned req_slots;	/* request slots per (hub, lcore) */
	unsigned evt_slots;	/* event slots per (hub, lcore) */
	unsigned sock_slots;	/* slots one socket may hold each way */
	unsigned tcp_max;	/* TCP connections per (hub, lcore) */
	uint32_t tcp_rxbuf;	/* staging bytes per TCP connection: at least
				 * the TCP stack's rcvbuf */
	unsigned dgram_max;	/* largest UDP payload dpsock_send takes */
};

/* Defaults: 256 sockets, 64 + 64 slots, 8 per socket, 16 TCP connections
 * of 64 KiB staging, datagrams up to 1472 bytes. */
void dpsock_conf_default(struct dpsock_conf *c);

/* ---- set-up (start-up, any thread; uses the heap) ---- */

/* A hub served by nlcores lcores (index 0..nlcores-1). NULL on a bad conf
 * or no memory. */
struct dpsock_hub *dpsock_hub_create(const struct dpsock_conf *c, unsigned nlcores);
/* Free the hub: every lcore side attached to it must be destroyed first. */
void dpsock_hub_destroy(struct dpsock_hub *h);

/* The lcore side of lcore `index` for the hubs given, on its stacks (ts may
 * be NULL: TCP connects then fail with EPROTONOSUPPORT). */
struct dpsock_lcore *dpsock_lcore_create(unsigned index, struct udp_stack *us,
					 struct tcp_stack *ts, struct dpsock_hub *const *hubs,
					 unsigned nhubs);
/* Close every socket it serves (TCP reset), detach. Before the stacks go. */
void dpsock_lcore_destroy(struct dpsock_lcore *l);

/* ---- lcore side ---- */

/* From the burst loop: take requests, move data and events. Returns the
 * work done (messages handled), 0 when idle. */
unsigned dpsock_lcore_poll(struct dpsock_lcore *l);
const struct dpsock_lcore_stats *dpsock_lcore_get_stats(const struct dpsock_lcore *l);
/* Event slots free on this lcore's side, over its hubs (a gauge). */
unsigned dpsock_lcore_free_slots(const struct dpsock_lcore *l);

/* ---- control side (the hub's thread; non-blocking, like socket calls) ---- */

/* type: SOCK_DGRAM or SOCK_STREAM. An id >= 0, or -EPROTONOSUPPORT,
 * -EMFILE (all ids in use, or still being released). */
int dpsock_open(struct dpsock_hub *h, int type);

/* Set the peer (addr, port: network order). UDP: 0 at once. TCP:
 * -EINPROGRESS, then DPSOCK_WRITABLE once connected (or DPSOCK_ERROR).
 * -EAGAIN when no lcore has a free request slot (try again), -EISCONN,
 * -EBADF, -EINVAL (zero address or port). */
int dpsock_connect_addr(struct dpsock_hub *h, int id, const struct net_addr *addr,
			rte_be16_t port);
/* dpsock_connect_addr to an IPv4 address. */
int dpsock_connect(struct dpsock_hub *h, int id, rte_be32_t addr, rte_be16_t port);

/* UDP: one datagram of the iov's bytes (-EMSGSIZE beyond dgram_max). TCP:
 * as many bytes as slots allow (also while the connection is still being
 * made). Returns the bytes taken, or -EAGAIN (no slot: DPSOCK_WRITABLE
 * follows when there is room), -ENOTCONN, -EBADF, or the socket's error. */
ssize_t dpsock_send(struct dpsock_hub *h, int id, const struct iovec *iov, int n);

/* UDP: one datagram (cut to cap; the rest is dropped), its source in *from,
 * *fport (each may be NULL). TCP: up to cap stream bytes (from/fport left
 * alone). -EAGAIN when nothing is there; 0: TCP end of stream; the socket's
 * error once the data before it is read; -EBADF. */
ssize_t dpsock_recv_addr(struct dpsock_hub *h, int id, void *buf, size_t cap,
			 struct net_addr *from, rte_be16_t *fport);
/* dpsock_recv_addr with an IPv4 source (0 for an IPv6 one). */
ssize_t dpsock_recv(struct dpsock_hub *h, int id, void *buf, size_t cap,
		    rte_be32_t *from, rte_be16_t *fport);

/* Close (see above). 0, or -EBADF. */
int dpsock_close(struct dpsock_hub *h, int id);

/*
 * Take the lcores' events; then call cb(user, id, what) once per socket
 * with something to report (DPSOCK_READABLE | DPSOCK_WRITABLE |
 * DPSOCK_ERROR; a failed socket is reported with all three, as select()
 * would show it). cb may call any dpsock function, dpsock_close included.
 * Returns the number of messages taken from the lcores.
 */
unsigned dpsock_poll(struct dpsock_hub *h, void (*cb)(void *user, int id, unsigned what),
		     void *user);

const struct dpsock_hub_stats *dpsock_hub_get_stats(const struct dpsock_hub *h);
unsigned dpsock_hub_open_count(const struct dpsock_hub *h);	/* ids not free */
/* Request slots free on the control side, over all lcores (a gauge). */
unsigned dpsock_hub_free_slots(const struct dpsock_hub *h);

#endif
