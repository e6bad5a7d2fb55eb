/*
 * icmp.h - ICMP: echo reply, nothing else.
 *
 * Echo requests to our address are answered in place (the request's buffer
 * becomes the reply). Every other type is counted and dropped: Sluice sends
 * no unreachables (TCP answers closed ports with RST) and acts on none.
 */
#ifndef SLUICE_ICMP_H
#define SLUICE_ICMP_H

struct rte_mbuf;
struct rte_ipv4_hdr;
struct net_stack;

/* m's data starts at the ICMP header; ip is the validated IPv4 header. */
void icmp_input(struct net_stack *ns, struct rte_mbuf *m, const struct rte_ipv4_hdr *ip);

#endif
