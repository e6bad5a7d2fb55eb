/*
 * eth.h - Ethernet demultiplexing.
 *
 * Accepts frames addressed to our MAC or broadcast (ARP), strips the header
 * and hands ARP and IPv4 on. VLAN-tagged frames, other ethertypes (IPv6,
 * LLDP...) and runts are dropped with a counter each.
 */
#ifndef SLUICE_ETH_H
#define SLUICE_ETH_H

struct rte_mbuf;
struct net_stack;

void eth_input(struct net_stack *ns, struct rte_mbuf *m);

#endif
