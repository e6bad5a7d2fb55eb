/*
 * steer.h - keep every TCP and UDP flow on the lcore that owns it.
 *
 * Ownership is decided the way a NIC's RSS does it: the Toeplitz hash of the
 * IPv4 4-tuple (TCP or UDP: ports included) with the symmetric key of port.c (so both directions of a flow
 * hash alike) indexes a 128-entry redirection table of worker numbers. With
 * a multi-queue NIC doing the same in hardware, every frame already arrives
 * at its owner and steering is a no-op. With a single-queue vdev (net_tap,
 * net_memif, af_packet) the lcore that received a frame computes the owner
 * in software and, when it is another lcore, passes the mbuf over that
 * lcore's inbox ring (MP/SC rte_ring): no locks, no shared state.
 *
 * ARP is the exception: every lcore keeps its own ARP cache, so the receiving
 * lcore answers and each other lcore gets a copy to learn from. ICMP, IP
 * fragments and other traffic is handled wherever it arrives.
 *
 * TCP active opens and UDP sockets with an ephemeral port pick a source
 * port whose reply hashes back to the opening lcore (steer_owns), the
 * technique of mTCP and Seastar.
 */
#ifndef SLUICE_STEER_H
#define SLUICE_STEER_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_byteorder.h>

#include "common/stats.h"
#include "dataplane/net/net_addr.h"

struct rte_mbuf;
struct rte_ring;

#define STEER_RETA_SIZE 128
#define STEER_LOCAL (-1)	/* handle here (not TCP/UDP, or this lcore owns it) */
#define STEER_ALL   (-2)	/* handle here and copy to every other lcore (ARP) */

/* misrouted: frames that reached an lcore's stack although another owns
 * their flow; steering makes this impossible, and tests check it stays 0. */
/* hw_hash: flows whose owner came from the device's RSS hash in the mbuf
 * instead of a software Toeplitz computation. */
#define STEER_STATS(X) X(steered_out) X(steered_in) X(ring_full_drops) \
	X(arp_copies) X(copy_nombuf) X(misrouted) X(hw_hash)
struct steer_stats {
	STEER_STATS(STATS_FIELD)
};
extern const char *const steer_stat_names[];
extern const unsigned steer_stat_count;

struct steer {
	unsigned self;			/* this lcore's worker number */
	unsigned nworkers;
	uint8_t reta[STEER_RETA_SIZE];	/* hash bucket -> worker */
	struct rte_ring *inbox;		/* frames other lcores steer to us */
	struct rte_ring **inboxes;	/* every worker's inbox, by worker number */
	bool hw_hash;			/* the port's RSS is our symmetric Toeplitz */
	struct steer_stats stats;
};

void steer_init(struct steer *s, unsigned self, unsigned nworkers,
		struct rte_ring *inbox, struct rte_ring **inboxes);

/* Take the device's RSS hash (mbuf hash.rss, flagged RTE_MBUF_F_RX_RSS_HASH)
 * instead of computing it: only when the port hashes as steer_hash does
 * (port.c configured RSS with port_rss_key over the IPv4 TCP/UDP 4-tuple).
 * A frame without the flag is hashed in software as before. */
void steer_use_hw_hash(struct steer *s, bool on);

/* Symmetric Toeplitz hash of a 4-tuple (addresses and ports in network order). */
uint32_t steer_hash(rte_be32_t saddr, rte_be32_t daddr, rte_be16_t sport, rte_be16_t dport);

/* The same over an IPv6 4-tuple (RSS's IPv6 TCP/UDP input: source, then
 * destination address, then ports; symmetric too, the key repeats every
 * 16 bits). */
uint32_t steer_hash6(const uint8_t saddr[16], const uint8_t daddr[16], rte_be16_t sport,
		     rte_be16_t dport);

/* Worker that owns the flow. */
unsigned steer_owner(const struct steer *s, rte_be32_t saddr, rte_be32_t daddr,
		     rte_be16_t sport, rte_be16_t dport);

/* Where a received Ethernet frame goes: a worker number, STEER_LOCAL or STEER_ALL. */
int steer_classify(struct steer *s, const struct rte_mbuf *m);

/* tcp_port_ok_fn and udp_port_ok_fn: true when replies to this local
 * port come back to us. */
bool steer_owns(void *steer, const struct net_addr *laddr, rte_be16_t lport,
		const struct net_addr *raddr, rte_be16_t rport);

#endif
