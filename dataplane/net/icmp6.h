/*
 * icmp6.h - ICMPv6 (RFC 4443): checksum, echo reply, packet too big, and
 * the hand-off of Neighbor Discovery messages to nd.c.
 *
 * Every message's checksum is verified (pseudo-header included) before
 * anything else. Echo requests to one of our unicast addresses are
 * answered in place; to a multicast group they are not (no amplification;
 * RFC 4443 4.1 makes that reply optional). "Packet too big" quoting a TCP
 * segment of ours goes to TCP (ns->tcp_pkt_too_big), which lowers that
 * connection's MSS after RFC 5927's checks, as for IPv4. NS, NA and RA
 * must come with hop limit 255 (RFC 4861: proof they were not forwarded;
 * else nd_drop_hoplimit) and code 0. Router solicitations (we are no
 * router), redirects (not acted on: one router per link, see nd.h) and
 * every other type are counted (icmp6_drop_type) and dropped. We send no
 * ICMPv6 errors: TCP answers closed ports with RST, and a UDP datagram
 * to a closed port is only counted (udp.h: the resolver's replies are
 * all the UDP we expect over IPv6, so nothing needs the error yet).
 */
#ifndef SLUICE_ICMP6_H
#define SLUICE_ICMP6_H

#include <stdint.h>

struct rte_mbuf;
struct rte_ipv6_hdr;
struct net_stack;

#define ICMP6_PKT_TOO_BIG 2
#define ICMP6_ECHO_REQUEST 128
#define ICMP6_ECHO_REPLY 129
#define ICMP6_ND_RS 133
#define ICMP6_ND_RA 134
#define ICMP6_ND_NS 135
#define ICMP6_ND_NA 136

/* m's data at the ICMPv6 header, len bytes (m's pkt_len); ip the
 * validated fixed header. Consumes m. */
void icmp6_input(struct net_stack *ns, struct rte_mbuf *m, const struct rte_ipv6_hdr *ip,
		 uint32_t len);

#endif
