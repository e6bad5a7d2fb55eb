/*
 * test_port_mtu.c - the frame and mbuf arithmetic of a jumbo MTU
 * (dataplane/port_mtu.h): a frame of the MTU fits one mbuf of the room
 * given for it, and net_af_packet's MTU follows its framesz devarg.
 */
#include <criterion/criterion.h>

#include <rte_ether.h>
#include <rte_mbuf.h>

#include "dataplane/port_mtu.h"

/* What of the room a frame can use. */
static unsigned data_of(unsigned mtu) { return port_mbuf_room(mtu) - RTE_PKTMBUF_HEADROOM; }

Test(port_mtu, standard_mtu_keeps_the_stock_room)
{
	cr_assert_eq(port_mbuf_room(0), RTE_MBUF_DEFAULT_BUF_SIZE);
	cr_assert_eq(port_mbuf_room(576), RTE_MBUF_DEFAULT_BUF_SIZE);
	cr_assert_eq(port_mbuf_room(1500), RTE_MBUF_DEFAULT_BUF_SIZE);
}

Test(port_mtu, every_mtu_frame_fits_one_mbuf)
{
	/* [net] mtu takes 576..9000: a whole frame (Ethernet, a VLAN tag)
	 * fits, and so does what net_af_packet's rx queue set-up asks of a
	 * ring frame of the framesz netns.sh gives it (mtu + 80 rounded up
	 * to 1 KiB), which in turn holds the frame. */
	for (unsigned mtu = 576; mtu <= 9000; mtu++) {
		unsigned framesz = (mtu + PORT_AF_PACKET_OVERHEAD + 1023u) & ~1023u;
		cr_assert_geq(port_af_packet_max_mtu(mtu <= 1968 ? "" : "framesz=9216"), mtu);
		cr_assert_geq(data_of(mtu), mtu + RTE_ETHER_HDR_LEN + RTE_VLAN_HLEN, "mtu %u", mtu);
		cr_assert_geq(data_of(mtu), framesz - 32u, "mtu %u: framesz %u", mtu, framesz);
	}
	/* and no more than a KiB spare beyond that */
	cr_assert_eq(port_mbuf_room(9000), RTE_PKTMBUF_HEADROOM + 9216);
	cr_assert_eq(port_mbuf_room(1501), RTE_PKTMBUF_HEADROOM + 2048);
}

Test(port_mtu, af_packet_mtu_follows_framesz)
{
	/* the PMD's default 2048-octet frames: 1968, above the standard MTU */
	cr_assert_eq(port_af_packet_max_mtu(NULL), 1968);
	cr_assert_eq(port_af_packet_max_mtu(""), 1968);
	cr_assert_eq(port_af_packet_max_mtu("iface=v0a,qpairs=1"), 1968);
	cr_assert_eq(port_af_packet_max_mtu("iface=v0a,qpairs=1,framesz=9216,blocksz=36864,framecnt=512"),
		     9216 - 80);
	cr_assert_geq(port_af_packet_max_mtu("framesz=9088"), 9000);
	cr_assert_lt(port_af_packet_max_mtu("framesz=9072"), 9000);
	cr_assert_eq(port_af_packet_max_mtu("framesz=80"), 0);
	/* a key that only ends in framesz is not it */
	cr_assert_eq(port_af_packet_max_mtu("xframesz=9088"), 1968);
	/* not a number, or nothing: no MTU at all rather than a guess */
	cr_assert_eq(port_af_packet_max_mtu("framesz=9k"), 0);
	cr_assert_eq(port_af_packet_max_mtu("framesz="), 0);
	cr_assert_eq(port_af_packet_max_mtu("framesz=64"), 0);
}
