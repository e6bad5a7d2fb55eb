/*
 * udp.h - UDP on one lcore's stack: sockets, input, output, port unreachable.
 *
 * One struct udp_stack per lcore, bound to that lcore's struct net_stack.
 * udp_stack_create() hooks itself into ns->udp_input, so datagrams arrive
 * through net_input(). Everything is preallocated at create from struct
 * udp_conf and bounded: socket slots, and per socket a receive queue of at
 * most rxq_dgrams datagrams and rxq_bytes payload bytes (the received mbufs
 * are queued as they are, not copied); the lcore's queues together hold at
 * most rxq_mbufs mbufs of the shared pool. A datagram that does not fit is
 * dropped and counted (drop_rxq_full). No locks, syscalls, heap or logging
 * after create.
 *
 * Both families: IPv4 through ns->udp_input, IPv6 through ns->udp_input6,
 * into one input path; sockets, queues and the pseudo-header checksum are
 * keyed by struct net_addr (net_addr.h). The rte_be32_t calls (udp_open,
 * udp_recv, udp_send) are the IPv4 forms of the _addr ones.
 *
 * Input checks, each with its counter: a header shorter than 8 bytes or a
 * length field outside 8..IP payload (drop_len; bytes beyond the UDP length
 * are cut off, as in Linux); the checksum. Checksums honour the port's RX
 * flags (ol_flags) as ipv4.c and tcp_input.c do: RTE_MBUF_F_RX_L4_CKSUM_BAD
 * drops (drop_cksum); _GOOD and _NONE are taken (cksum_offload_ok); _UNKNOWN
 * has us verify pseudo-header plus datagram in software. A zero checksum
 * field means the sender computed none (RFC 768; IPv4 only) and is taken
 * (cksum_none); over IPv6 it is dropped (drop_cksum: RFC 8200 8.1 makes
 * the UDP checksum mandatory).
 *
 * Demultiplexing: a datagram goes to the socket connected to exactly its
 * (local port, remote address, remote port), else to the unconnected socket
 * on its local port. With neither, we answer ICMP port unreachable (type 3
 * code 3, quoting the IP header and the first 8 bytes of the datagram),
 * rate-limited by a token bucket per lcore (icmp_rate per second, bursts of
 * icmp_burst: beyond it counted in unreach_limited), and never in answer to
 * a datagram sent to or from a broadcast or multicast address (see icmp.h).
 * Over IPv6 the answer is ICMPv6 port unreachable (icmp6.h), under the
 * same bucket and counters.
 *
 * Sockets: udp_open() with local port 0 picks an ephemeral port at random
 * in [port_lo, port_hi] (keyed by conf.secret: unpredictable, as DNS source
 * ports must be), unused by any other socket of this stack, for which
 * conf.port_ok(ctx, laddr, lport, raddr, rport) holds: the dataplane passes
 * steer_owns, so that replies hash back to this lcore, as TCP's active opens
 * do. A socket with a remote address is connected: it receives only from
 * that peer. An unconnected socket on a fixed port receives only what is
 * steered to its lcore: a service on a fixed port opens one on every lcore.
 *
 * Receiving: udp_recv() pulls the oldest queued datagram. The socket's
 * readable callback, when set, runs from inside net_input() when a datagram
 * is queued on an empty queue (edge-triggered: pull until -EAGAIN); it may
 * call any function of this API except udp_close() on its own socket.
 *
 * Sending: udp_send() builds UDP and IPv4 headers (through ipv4_output, ARP
 * resolution included) with the checksum computed; to an IPv6 peer the IPv6
 * header (ipv6_output, Neighbor Discovery included; source our global
 * address, or the link-local one for a link-local peer). A datagram must
 * fit one frame (we never fragment): payload up to MTU - 28 bytes (IPv6:
 * MTU - 48), else -EMSGSIZE. Without an address of the peer's family:
 * -ENETUNREACH.
 */
#ifndef SLUICE_UDP_H
#define SLUICE_UDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <rte_byteorder.h>

#include "dataplane/net/net_addr.h"

#include "common/stats.h"

struct net_stack;
struct udp_stack;
struct udp_sock;

/* Per-lcore counters (named: see udp_stat_names). rx/tx: datagrams. */
#define UDP_STATS(X)                                                        \
	X(rx) X(rx_bytes) X(tx) X(tx_bytes)                                 \
	X(drop_len) X(drop_cksum) X(drop_rxq_full) X(drop_no_port)          \
	X(cksum_offload_ok) X(cksum_none) X(rx_truncated)                   \
	X(unreach_sent) X(unreach_limited) X(unreach_suppressed)            \
	X(tx_nombuf) X(tx_too_big) X(tx_noroute)                            \
	X(sock_opened) X(sock_closed) X(sock_table_full) X(port_exhausted)  \
	X(port_in_use)

struct udp_stats {
	UDP_STATS(STATS_FIELD)
};
extern const char *const udp_stat_names[];
extern const unsigned udp_stat_count;

/* Ephemeral-port filter: true when replies to lport come back to us
 * (same signature as tcp_port_ok_fn; the dataplane passes steer_owns). */
typedef bool (*udp_port_ok_fn)(void *ctx, const struct net_addr *laddr, rte_be16_t lport,
			       const struct net_addr *raddr, rte_be16_t rport);

struct udp_conf {
	unsigned max_socks;	/* socket slots per lcore */
	unsigned rxq_dgrams;	/* datagrams queued per socket */
	uint32_t rxq_bytes;	/* payload bytes queued per socket */
	unsigned rxq_mbufs;	/* mbufs all of the lcore's queues may hold */
	uint16_t port_lo, port_hi;	/* ephemeral range (host order) */
	udp_port_ok_fn port_ok;	/* NULL: every port is fine */
	void *port_ok_ctx;
	unsigned icmp_rate;	/* port unreachables per second (0: none) */
	unsigned icmp_burst;	/* bucket depth */
	uint8_t secret[16];	/* keys the ephemeral port choice */
};

/* Defaults: 256 sockets, 64 datagrams and 256 KiB per socket, 2048 mbufs
 * in all, ports 32768-60999, 100 unreachables/s in bursts of 20. The
 * secret is zero: set it. */
void udp_conf_default(struct udp_conf *c);

/* Allocate everything and hook into ns (ns->udp_input/udp_ctx). NULL on a
 * bad conf or no memory. Start-up only (uses the heap). */
struct udp_stack *udp_stack_create(struct net_stack *ns, const struct udp_conf *conf);
/* Close every socket (queued mbufs freed), unhook, free. */
void udp_stack_destroy(struct udp_stack *us);

const struct udp_stats *udp_stack_stats(const struct udp_stack *us);
unsigned udp_stack_sock_count(const struct udp_stack *us);	/* open sockets */
unsigned udp_stack_mbufs_held(const struct udp_stack *us);	/* in receive queues */

/* Called when a datagram lands on the socket's empty receive queue. */
typedef void (*udp_readable_fn)(struct udp_sock *s, void *user);

/*
 * Open a socket on local port lport (network order; 0: ephemeral, chosen as
 * above), connected to raddr:rport when raddr is non-zero (rport must then
 * be too). A local port has at most one unconnected socket and one socket
 * per peer; they coexist (each peer's datagrams go to its own socket, the
 * rest to the unconnected one). An ephemeral port is never shared. Returns
 * 0 and *out, or -EINVAL (raddr without rport, or the reverse), -ENFILE (no
 * slot), -EADDRINUSE (that (port, peer) pair is taken), -EADDRNOTAVAIL (no
 * free ephemeral port passes port_ok).
 */
int udp_open_addr(struct udp_stack *us, rte_be16_t lport, const struct net_addr *raddr,
		  rte_be16_t rport, struct udp_sock **out);
/* udp_open_addr with an IPv4 peer (0: unconnected). */
int udp_open(struct udp_stack *us, rte_be16_t lport, rte_be32_t raddr, rte_be16_t rport,
	     struct udp_sock **out);
/* Free the socket and its queued datagrams. No callback follows. */
void udp_close(struct udp_sock *s);

void udp_set_callback(struct udp_sock *s, udp_readable_fn cb, void *user);
void *udp_get_user(const struct udp_sock *s);
rte_be16_t udp_local_port(const struct udp_sock *s);

/*
 * Take the oldest queued datagram: copies up to cap bytes into buf (the rest
 * of a longer datagram is dropped and counted in rx_truncated), sets *from
 * and *fport (each may be NULL). Returns the bytes copied, or -EAGAIN when
 * the queue is empty.
 */
int udp_recv_addr(struct udp_sock *s, void *buf, size_t cap, struct net_addr *from,
		  rte_be16_t *fport);
/* udp_recv_addr with an IPv4 source (0 for an IPv6 one). */
int udp_recv(struct udp_sock *s, void *buf, size_t cap, rte_be32_t *from, rte_be16_t *fport);
/* Datagrams waiting in the socket's receive queue. */
unsigned udp_pending(const struct udp_sock *s);

/*
 * Send one datagram made of iov[0..n-1] to dst:dport (NULL or zero and 0:
 * the connected peer; a connected socket may send only to its peer).
 * Returns the payload bytes sent (the datagram left, or waits for ARP/ND),
 * or -EDESTADDRREQ, -EISCONN (a connected socket given another
 * destination), -EMSGSIZE (beyond MTU - 28 / - 48 or one mbuf), -ENOBUFS
 * (pool empty), -ENETUNREACH (no route, or no address of dst's family).
 */
int udp_send_addr(struct udp_sock *s, const struct net_addr *dst, rte_be16_t dport,
		  const struct iovec *iov, int n);
/* udp_send_addr to an IPv4 destination (0 and 0: the connected peer). */
int udp_send(struct udp_sock *s, rte_be32_t dst, rte_be16_t dport,
	     const struct iovec *iov, int n);

/* Largest payload udp_send_addr takes on this stack to a peer of family. */
unsigned udp_max_payload_af(const struct udp_stack *us, uint8_t family);

#endif
