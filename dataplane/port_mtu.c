/*
 * port_mtu.c - frame and mbuf sizes for a port's MTU. See port_mtu.h.
 */
#include "dataplane/port_mtu.h"

#include <stdlib.h>
#include <string.h>

#include <rte_ether.h>
#include <rte_mbuf.h>

uint16_t port_mbuf_room(unsigned mtu)
{
	unsigned data;

	if (mtu <= RTE_ETHER_MTU)
		return RTE_MBUF_DEFAULT_BUF_SIZE;
	data = (mtu + PORT_FRAME_SLACK + 1023u) & ~1023u;
	if (data + RTE_PKTMBUF_HEADROOM > UINT16_MAX)
		data = (UINT16_MAX - RTE_PKTMBUF_HEADROOM) & ~1023u;
	return (uint16_t)(data + RTE_PKTMBUF_HEADROOM);
}

unsigned port_af_packet_max_mtu(const char *devargs)
{
	unsigned long framesz = PORT_AF_PACKET_FRAMESZ;
	const char *p = devargs ? devargs : "";

	/* key=value pairs separated by commas; framesz as the PMD reads it */
	while (*p) {
		size_t n = strcspn(p, ",");
		if (n >= 8 && strncmp(p, "framesz=", 8) == 0) {
			char *end = NULL;
			framesz = strtoul(p + 8, &end, 10);
			if (end != p + n || framesz > 65536)
				return 0;
		}
		p += n;
		if (*p == ',')
			p++;
	}
	if (framesz <= PORT_AF_PACKET_OVERHEAD)
		return 0;
	return (unsigned)framesz - PORT_AF_PACKET_OVERHEAD;
}
