/*
 * port_mtu.h - how large the port's frames may be, and how large its mbufs
 * must be for them: the arithmetic of a jumbo MTU, kept apart from port.c
 * so that it can be tested without EAL.
 *
 * Every frame the port receives lands in one mbuf (no RX scatter: the
 * stack reads headers from the first segment and TCP sizes its segments to
 * one mbuf), so the pool's data room follows the MTU: the stock 2 KiB up to
 * MTU 1500, more above (9000 takes 9 KiB rooms; the pool's memory grows by
 * the same factor, so a jumbo setup wants fewer mbufs: README, [port]).
 *
 * net_af_packet is the one port whose real limit the ethdev API does not
 * give: it reports a 1518-octet frame limit whatever its ring can hold,
 * and its true limit is the ring's frame size (devarg framesz, 2048 by
 * default), which must hold the kernel's TPACKET_V2 header and padding
 * before the frame and the frame itself: the kernel puts the Ethernet
 * header 66 octets in, so the IP header at 80, and cuts what does not fit.
 */
#ifndef SLUICE_PORT_MTU_H
#define SLUICE_PORT_MTU_H

#include <stdint.h>

/* Octets of a frame beyond its IP MTU that the mbuf must also hold:
 * Ethernet header (14), one VLAN tag (4), and the slack a net_af_packet
 * ring frame of a matching framesz may carry past that (rx queue set-up
 * requires framesz - 32 to fit the room). */
#define PORT_FRAME_SLACK 128u
/* net_af_packet (DPDK 22.11, TPACKET_V2): the default ring frame size, and
 * where in a ring frame the IP header lands (netoff: TPACKET_ALIGN(52 +
 * 16); the kernel keeps macoff + snaplen <= framesz, macoff = netoff - 14). */
#define PORT_AF_PACKET_FRAMESZ 2048u
#define PORT_AF_PACKET_OVERHEAD 80u

/* The data room (RTE_PKTMBUF_HEADROOM included) the pool's mbufs need for
 * frames of an IP MTU of mtu octets: RTE_MBUF_DEFAULT_BUF_SIZE up to 1500
 * (and for 0, the port's default), else headroom plus mtu +
 * PORT_FRAME_SLACK rounded up to 1 KiB. */
uint16_t port_mbuf_room(unsigned mtu);

/* The largest IP MTU a net_af_packet port with these device arguments
 * ("iface=veth0,qpairs=1,framesz=9216,...") can move whole:
 * framesz - PORT_AF_PACKET_OVERHEAD. 0 when framesz is given but is not a
 * number or leaves no room. */
unsigned port_af_packet_max_mtu(const char *devargs);

#endif
