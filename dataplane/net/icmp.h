/*
 * icmp.h - ICMP: echo reply, and destination unreachable for UDP.
 *
 * Echo requests to our address are answered in place (the request's buffer
 * becomes the reply). Destination unreachable "fragmentation needed"
 * (type 3 code 4, RFC 1191) quoting a TCP segment of ours goes to TCP
 * (ns->tcp_frag_needed), which lowers that connection's MSS after RFC
 * 5927's checks (tcp_input.c). Every other type received is counted and
 * dropped: we act on no other ICMP error (TCP has its own timeouts, the
 * resolver its own retries; RFC 5927 advises against resetting
 * connections on hard errors anyway).
 *
 * We send one error: destination unreachable, for UDP datagrams to a port
 * with no socket (udp.c; TCP answers closed ports with RST). It quotes the
 * offending datagram's IP header and the first 8 bytes after it (RFC 792),
 * and is sent at most as often as the caller's token bucket allows. Never in
 * answer to (RFC 1122 3.2.2, RFC 1812 4.3.2.7): an ICMP message; a datagram
 * to a broadcast or multicast address, IP or link layer; a datagram whose
 * source is not one host (zero, loopback, broadcast, our subnet's broadcast,
 * multicast, class E); a fragment other than the first.
 */
#ifndef SLUICE_ICMP_H
#define SLUICE_ICMP_H

#include <stdbool.h>
#include <stdint.h>

struct rte_mbuf;
struct rte_ipv4_hdr;
struct net_stack;

/* m's data starts at the ICMP header; ip is the validated IPv4 header. */
void icmp_input(struct net_stack *ns, struct rte_mbuf *m, const struct rte_ipv4_hdr *ip);

/*
 * Token bucket for ICMP errors: per_sec messages per second on average,
 * at most burst at once; time in ns on the stack's clock. per_sec 0: none.
 * One per lcore (the caller's state): no counter shared between lcores.
 */
struct icmp_bucket {
	uint64_t cost_ns;	/* credit one message costs (1 s / per_sec) */
	uint64_t cap_ns;	/* credit limit (burst * cost) */
	uint64_t credit_ns;
	uint64_t last_ns;	/* when credit was last brought up to date */
};
void icmp_bucket_init(struct icmp_bucket *b, unsigned per_sec, unsigned burst,
		      uint64_t now_ns);
/* Take one message's credit at now_ns: true when there was enough. */
bool icmp_bucket_take(struct icmp_bucket *b, uint64_t now_ns);

#define ICMP_UNREACH_PORT 3	/* destination unreachable codes */
#define ICMP_UNREACH_PROTO 2
#define ICMP_UNREACH_NEEDFRAG 4	/* "fragmentation needed and DF set" */

/*
 * Answer the datagram m (data at its L4 header, as an L4 handler gets it;
 * ip its validated IPv4 header, in the same buffer) with destination
 * unreachable `code`. Returns 0 when sent (or waiting for ARP), -EPERM when
 * the rules above forbid an answer (the bucket untouched), -EAGAIN when the
 * bucket is empty, -ENOBUFS or -ENETUNREACH. m is not consumed.
 */
int icmp_send_unreach(struct net_stack *ns, struct icmp_bucket *b, const struct rte_mbuf *m,
		      const struct rte_ipv4_hdr *ip, uint8_t code);

#endif
