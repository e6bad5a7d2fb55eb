/*
 * eth.c - Ethernet input. See eth.h.
 */
#include "dataplane/net/eth.h"

#include <rte_ether.h>
#include <rte_mbuf.h>

#include "dataplane/net/arp.h"
#include "dataplane/net/ipv4.h"
#include "dataplane/net/ipv6.h"
#include "dataplane/net/net_stack.h"

void eth_input(struct net_stack *ns, struct rte_mbuf *m)
{
	const struct rte_ether_hdr *eh;
	uint16_t type;

	/* Protocol code reads headers from the first segment only. */
	if (rte_pktmbuf_data_len(m) < sizeof(*eh)) {
		ns->stats.eth_drop_short++;
		rte_pktmbuf_free(m);
		return;
	}
	eh = rte_pktmbuf_mtod(m, const struct rte_ether_hdr *);
	/* IPv6 multicast (33:33:...: solicited-node, all-nodes) is let
	 * through to ipv6.c, which takes only our groups. */
	if (!rte_is_same_ether_addr(&eh->dst_addr, &ns->addr.mac) &&
	    !rte_is_broadcast_ether_addr(&eh->dst_addr) &&
	    !(eh->dst_addr.addr_bytes[0] == 0x33 && eh->dst_addr.addr_bytes[1] == 0x33 &&
	      eh->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6))) {
		ns->stats.eth_drop_not_for_us++;
		rte_pktmbuf_free(m);
		return;
	}
	type = rte_be_to_cpu_16(eh->ether_type);
	rte_pktmbuf_adj(m, sizeof(*eh));
	switch (type) {
	case RTE_ETHER_TYPE_ARP:
		arp_input(ns, m);
		return;
	case RTE_ETHER_TYPE_IPV4:
		if (rte_is_broadcast_ether_addr(&eh->dst_addr)) {
			/* We own no broadcast service: IP broadcast is noise. */
			ns->stats.eth_drop_not_for_us++;
			break;
		}
		ipv4_input(ns, m);
		return;
	case RTE_ETHER_TYPE_IPV6:
		if (!ns->addr.ip6_ok) {
			/* no address6: IPv6 is off, an ethertype we do not
			 * speak (link-local included) */
			ns->stats.eth_drop_ethertype++;
			break;
		}
		if (rte_is_broadcast_ether_addr(&eh->dst_addr)) {
			ns->stats.eth_drop_not_for_us++;	/* IPv6 has no broadcast */
			break;
		}
		ipv6_input(ns, m);
		return;
	case RTE_ETHER_TYPE_VLAN:
	case RTE_ETHER_TYPE_QINQ:
		ns->stats.eth_drop_vlan++;
		break;
	default:
		ns->stats.eth_drop_ethertype++;
		break;
	}
	rte_pktmbuf_free(m);
}
