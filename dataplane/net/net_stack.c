/*
 * net_stack.c - per-lcore stack set-up, frame entry point, timers. See net_stack.h.
 */
#include "dataplane/net/net_stack.h"

#include <string.h>

#include "dataplane/net/eth.h"
#include "dataplane/net/ipv6.h"

const char *const net_stat_names[] = { NET_STATS(STATS_NAME) };
const unsigned net_stat_count = STATS_COUNT(net_stat_names);

int net_stack_init(struct net_stack *ns, const struct net_addr_conf *addr,
		   struct rte_mempool *pool, net_tx_fn tx, void *tx_ctx,
		   const struct arp_conf *arp)
{
	memset(ns, 0, sizeof(*ns));
	ns->addr = *addr;
	if (ns->addr.mtu == 0)
		ns->addr.mtu = RTE_ETHER_MTU;
	ns->pool = pool;
	ns->tx = tx;
	ns->tx_ctx = tx_ctx;
	ipv6_link_local(&ns->addr.mac, ns->ll6);
	int rc = arp_cache_init(&ns->arp, arp);
	if (rc != 0)
		return rc;
	/* The neighbour cache is bounded as the ARP cache is. */
	struct nd_conf nc;
	nd_conf_default(&nc);
	nc.entries = arp->entries;
	nc.pending = arp->pending;
	rc = nd_cache_init(&ns->nd, &nc);
	if (rc != 0)
		arp_cache_fini(&ns->arp);
	return rc;
}

void net_stack_fini(struct net_stack *ns)
{
	nd_cache_fini(&ns->nd);
	arp_cache_fini(&ns->arp);
}

void net_input(struct net_stack *ns, struct rte_mbuf *m)
{
	ns->stats.rx_frames++;
	ns->stats.rx_bytes += rte_pktmbuf_pkt_len(m);
	eth_input(ns, m);
}

void net_input_copy(struct net_stack *ns, struct rte_mbuf *m)
{
	const struct rte_ether_hdr *eh;

	if (rte_pktmbuf_data_len(m) >= sizeof(*eh)) {
		eh = rte_pktmbuf_mtod(m, const struct rte_ether_hdr *);
		if (eh->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP)) {
			rte_pktmbuf_adj(m, sizeof(*eh));
			arp_snoop(ns, m);
			return;
		}
		if (eh->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6)) {
			/* ND: the same path, learning only (nd_snoop: no
			 * answer goes out; the receiving lcore answers) */
			ns->nd_snoop = true;
			eth_input(ns, m);
			ns->nd_snoop = false;
			return;
		}
	}
	rte_pktmbuf_free(m);
}

static void resend_request(void *ctx, rte_be32_t ip)
{
	arp_send_request(ctx, ip);
}

void net_tick(struct net_stack *ns)
{
	arp_cache_age(&ns->arp, ns->now_ns, resend_request, ns,
		      &ns->stats.arp_pending_expired);
	nd_tick(ns);
}

void net_tx_frame(struct net_stack *ns, struct rte_mbuf *m)
{
	ns->stats.tx_frames++;
	ns->stats.tx_bytes += rte_pktmbuf_pkt_len(m);
	ns->tx(ns->tx_ctx, m);
}
