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
 * every other type are counted (icmp6_drop_type) and dropped. The one
 * ICMPv6 error we send: destination unreachable, port unreachable (type
 * 1 code 4, RFC 4443 3.1) for a UDP datagram to a closed port, quoting as
 * much of it as fits the minimum MTU, rate-limited by the caller's
 * bucket, never about a datagram from the unspecified or a multicast
 * address, or to a multicast one (RFC 4443 2.4 e). TCP answers closed
 * ports with RST.
 */
#ifndef SLUICE_ICMP6_H
#define SLUICE_ICMP6_H

#include <stdint.h>

struct rte_mbuf;
struct rte_ipv6_hdr;
struct net_stack;

#define ICMP6_DST_UNREACH 1
#define ICMP6_UNREACH_PORT 4	/* its code for a closed port */
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

struct icmp_bucket;
/*
 * Answer the datagram m (data at its upper-layer header, as ipv6.c hands
 * it on; ip its fixed header, in m's first segment before the data) with
 * destination unreachable, port unreachable. 0 when sent (or waiting for
 * Neighbor Discovery), -EPERM when the rules above forbid it (the bucket
 * untouched), -EAGAIN when the bucket is empty, -ENOBUFS, -ENETUNREACH.
 * m is not consumed.
 */
int icmp6_send_port_unreach(struct net_stack *ns, struct icmp_bucket *b,
			    const struct rte_mbuf *m, const struct rte_ipv6_hdr *ip);

#endif
