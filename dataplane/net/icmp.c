/*
 * icmp.c - ICMP echo reply. See icmp.h.
 */
#include "dataplane/net/icmp.h"

#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

#include "dataplane/net/ipv4.h"
#include "dataplane/net/net_stack.h"

/* Internet checksum over a possibly multi-segment mbuf from offset 0. */
static uint16_t mbuf_cksum(const struct rte_mbuf *m)
{
	uint16_t ck = 0;
	if (rte_raw_cksum_mbuf(m, 0, rte_pktmbuf_pkt_len(m), &ck) < 0)
		return 0xffff;
	return ck;
}

void icmp_input(struct net_stack *ns, struct rte_mbuf *m, const struct rte_ipv4_hdr *ip)
{
	struct rte_icmp_hdr *ih;
	rte_be32_t src = ip->src_addr;

	ns->stats.icmp_rx++;
	if (rte_pktmbuf_data_len(m) < sizeof(*ih)) {
		ns->stats.icmp_drop_short++;
		goto drop;
	}
	if (mbuf_cksum(m) != 0xffff) {
		ns->stats.icmp_drop_cksum++;
		goto drop;
	}
	ih = rte_pktmbuf_mtod(m, struct rte_icmp_hdr *);
	if (ih->icmp_type != RTE_IP_ICMP_ECHO_REQUEST || ih->icmp_code != 0) {
		ns->stats.icmp_drop_type++;
		goto drop;
	}
	ns->stats.icmp_rx_echo++;

	/* Turn the request into the reply in place: type 0, fresh checksum. */
	ih->icmp_type = RTE_IP_ICMP_ECHO_REPLY;
	ih->icmp_cksum = 0;
	ih->icmp_cksum = (uint16_t)~mbuf_cksum(m);
	if (ih->icmp_cksum == 0)
		ih->icmp_cksum = 0xffff;

	/* Reuse the buffer: drop what is before the ICMP header, output
	 * prepends fresh IPv4 and Ethernet headers into the headroom. */
	if (ipv4_output(ns, m, src, IPPROTO_ICMP) == 0)
		ns->stats.icmp_tx_echo_reply++;
	return;
drop:
	rte_pktmbuf_free(m);
}
