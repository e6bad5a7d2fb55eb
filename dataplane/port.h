/*
 * port.h - bring one ethdev port up: queues, mbuf pool, link.
 *
 * One RX and one TX queue per worker lcore (fewer RX queues only when the
 * device has fewer). Hardware RSS, where the device has it, uses the
 * symmetric Toeplitz key so both directions of a flow land on one queue.
 * Whatever the device does, each worker re-checks ownership in software
 * (steer.h) and passes frames of flows it does not own to their owner, so a
 * device that spreads flows by another hash (the kernel's tun does) or not
 * at all still keeps each flow on one lcore. Each worker has its own TX
 * queue, so transmit needs no lock.
 *
 * Offloads: whatever of these the device offers is turned on and recorded
 * in port_info: RX IPv4/TCP/UDP checksum verdicts (the stack skips its own
 * check on GOOD, ipv4.h), the RSS hash in the mbuf (steer.h uses it instead
 * of software Toeplitz when our key is the device's), TX IPv4/TCP/UDP
 * checksums (the stack leaves them to the device, net_stack.h).
 */
#ifndef SLUICE_PORT_H
#define SLUICE_PORT_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_ether.h>

#include "dataplane/dataplane.h"

struct rte_mempool;

struct port_info {
	uint16_t port_id;
	uint16_t rx_queues, tx_queues;
	struct rte_ether_addr mac;
	struct rte_mempool *pool;	/* on the port's socket */
	uint16_t mtu;
	bool rss_hw;			/* device RSS with port_rss_key, hash in mbufs */
	uint64_t rx_offloads;		/* RTE_ETH_RX_OFFLOAD_* enabled */
	uint64_t tx_offloads;		/* RTE_ETH_TX_OFFLOAD_* enabled */
};

/* Symmetric Toeplitz key (0x6d5a repeated): hash(a,b) == hash(b,a). */
extern const uint8_t port_rss_key[40];

/* Configure and start the first available port for `workers` lcores. */
int port_setup(struct port_info *pi, const struct dp_conf *conf);
void port_close(struct port_info *pi);

#endif
