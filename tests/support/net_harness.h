/*
 * net_harness.h - a network stack wired to a capture list, for tests.
 *
 * Builds one struct net_stack on a heap mempool (no EAL) whose tx hook
 * appends frames to an array the test inspects, plus helpers to craft
 * Ethernet/ARP/IPv4/ICMP frames. Used by the unit suites and fuzzers.
 */
#ifndef SLUICE_NET_HARNESS_H
#define SLUICE_NET_HARNESS_H

#include <stdint.h>

#include <rte_arp.h>
#include <rte_ether.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

#include "dataplane/net/net_stack.h"

#define HARNESS_MAX_TX 256

struct net_harness {
	struct rte_mempool *pool;
	struct net_stack ns;
	unsigned ntx;
	struct rte_mbuf *tx[HARNESS_MAX_TX];
};

/* Our side: 198.18.0.2/24, gw 198.18.0.1, MAC 02:00:00:00:00:02. */
extern const struct rte_ether_addr harness_our_mac;
extern const struct rte_ether_addr harness_peer_mac;	/* 02:00:00:00:00:01 */
rte_be32_t harness_ip(const char *dotted);

void harness_init(struct net_harness *h, const struct arp_conf *arp);
/* Frees captured frames and the stack; checks no mbuf leaked (returns the
 * number of mbufs still out of the pool: 0 means clean). */
unsigned harness_fini(struct net_harness *h);
void harness_clear_tx(struct net_harness *h);

/* An mbuf holding a copy of bytes. */
struct rte_mbuf *harness_frame(struct net_harness *h, const void *bytes, uint16_t len);

/* Build an IPv4 frame to us from src with proto and payload; checksum right. */
uint16_t harness_build_ipv4(uint8_t *buf, rte_be32_t src, rte_be32_t dst, uint8_t proto,
			    const void *payload, uint16_t plen);
/* Build an ICMP echo request frame (ident, seq, payload of plen bytes). */
uint16_t harness_build_echo(uint8_t *buf, rte_be32_t src, uint16_t seq, uint16_t plen);
/* Build an ARP frame. */
uint16_t harness_build_arp(uint8_t *buf, uint16_t op, const struct rte_ether_addr *sha,
			   rte_be32_t sip, rte_be32_t tip, const struct rte_ether_addr *eth_dst);

#endif
