/*
 * steer.c - software flow steering by symmetric Toeplitz hash. See steer.h.
 */
#include "dataplane/steer.h"

#include <string.h>

#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_thash.h>

#include "dataplane/port.h"

const char *const steer_stat_names[] = { STEER_STATS(STATS_NAME) };
const unsigned steer_stat_count = STATS_COUNT(steer_stat_names);

void steer_init(struct steer *s, unsigned self, unsigned nworkers,
		struct rte_ring *inbox, struct rte_ring **inboxes)
{
	memset(s, 0, sizeof(*s));
	s->self = self;
	s->nworkers = nworkers ? nworkers : 1;
	s->inbox = inbox;
	s->inboxes = inboxes;
	/* Round-robin table, as NICs fill theirs by default. */
	for (unsigned i = 0; i < STEER_RETA_SIZE; i++)
		s->reta[i] = (uint8_t)(i % s->nworkers);
}

void steer_use_hw_hash(struct steer *s, bool on)
{
	s->hw_hash = on;
}

uint32_t steer_hash(rte_be32_t saddr, rte_be32_t daddr, rte_be16_t sport, rte_be16_t dport)
{
	struct rte_ipv4_tuple t;

	t.src_addr = rte_be_to_cpu_32(saddr);
	t.dst_addr = rte_be_to_cpu_32(daddr);
	t.sport = rte_be_to_cpu_16(sport);
	t.dport = rte_be_to_cpu_16(dport);
	return rte_softrss((uint32_t *)&t, RTE_THASH_V4_L4_LEN, port_rss_key);
}

uint32_t steer_hash6(const uint8_t saddr[16], const uint8_t daddr[16], rte_be16_t sport,
		     rte_be16_t dport)
{
	struct rte_ipv6_tuple t;
	uint32_t *src = (uint32_t *)t.src_addr, *dst = (uint32_t *)t.dst_addr;

	/* rte_softrss takes host-order words, as rte_thash_load_v6_addrs
	 * lays them out */
	for (unsigned i = 0; i < 4; i++) {
		rte_be32_t a, b;
		memcpy(&a, saddr + 4 * i, 4);
		memcpy(&b, daddr + 4 * i, 4);
		src[i] = rte_be_to_cpu_32(a);
		dst[i] = rte_be_to_cpu_32(b);
	}
	t.sport = rte_be_to_cpu_16(sport);
	t.dport = rte_be_to_cpu_16(dport);
	return rte_softrss((uint32_t *)&t, RTE_THASH_V6_L4_LEN, port_rss_key);
}

unsigned steer_owner(const struct steer *s, rte_be32_t saddr, rte_be32_t daddr,
		     rte_be16_t sport, rte_be16_t dport)
{
	return s->reta[steer_hash(saddr, daddr, sport, dport) % STEER_RETA_SIZE];
}

/*
 * IPv6: TCP and UDP right after the fixed header are steered by
 * steer_hash6 (the device's hash is not used for IPv6: it may hash
 * extension-header variants differently). Neighbor Discovery (ICMPv6
 * 133-137) goes to every worker, as ARP does: each lcore has its own
 * neighbour cache. Everything else (extension headers, echo, errors) is
 * handled where it lands.
 */
static int classify6(struct steer *s, const struct rte_mbuf *m,
		     const struct rte_ipv6_hdr *ip, uint32_t len)
{
	const rte_be16_t *ports;
	unsigned owner;

	(void)m;
	if (len < sizeof(*ip) + 4)
		return STEER_LOCAL;
	if (ip->proto == IPPROTO_ICMPV6) {
		uint8_t type = *((const uint8_t *)(ip + 1));
		return type >= 133 && type <= 137 ? STEER_ALL : STEER_LOCAL;
	}
	if (ip->proto != IPPROTO_TCP && ip->proto != IPPROTO_UDP)
		return STEER_LOCAL;
	ports = (const rte_be16_t *)(ip + 1);
	owner = s->reta[steer_hash6(ip->src_addr, ip->dst_addr, ports[0], ports[1]) %
			STEER_RETA_SIZE];
	return owner == s->self ? STEER_LOCAL : (int)owner;
}

int steer_classify(struct steer *s, const struct rte_mbuf *m)
{
	const struct rte_ether_hdr *eh;
	const struct rte_ipv4_hdr *ip;
	const rte_be16_t *ports;
	unsigned ihl, owner;
	uint32_t len = rte_pktmbuf_data_len(m);

	if (s->nworkers == 1 || len < sizeof(*eh))
		return STEER_LOCAL;
	eh = rte_pktmbuf_mtod(m, const struct rte_ether_hdr *);
	if (eh->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP))
		return STEER_ALL;
	if (eh->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6))
		return classify6(s, m, (const struct rte_ipv6_hdr *)(eh + 1), len - sizeof(*eh));
	if (eh->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) ||
	    len < sizeof(*eh) + sizeof(*ip))
		return STEER_LOCAL;
	ip = (const struct rte_ipv4_hdr *)(eh + 1);
	ihl = (ip->version_ihl & 0xf) * 4u;
	/* Malformed, neither TCP nor UDP, or a fragment (only the first one
	 * carries the ports; ipv4.c drops them all): the local stack validates
	 * and counts it. */
	if ((ip->next_proto_id != IPPROTO_TCP && ip->next_proto_id != IPPROTO_UDP) ||
	    ihl < sizeof(*ip) || len < sizeof(*eh) + ihl + 4 ||
	    (rte_be_to_cpu_16(ip->fragment_offset) &
	     (RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)))
		return STEER_LOCAL;
	if (s->hw_hash && (m->ol_flags & RTE_MBUF_F_RX_RSS_HASH)) {
		/* The device computed the same hash (steer_use_hw_hash). */
		s->stats.hw_hash++;
		owner = s->reta[m->hash.rss % STEER_RETA_SIZE];
	} else {
		/* TCP and UDP headers both start with the source and destination ports. */
		ports = (const rte_be16_t *)((const uint8_t *)ip + ihl);
		owner = steer_owner(s, ip->src_addr, ip->dst_addr, ports[0], ports[1]);
	}
	return owner == s->self ? STEER_LOCAL : (int)owner;
}

bool steer_owns(void *steer, const struct net_addr *laddr, rte_be16_t lport,
		const struct net_addr *raddr, rte_be16_t rport)
{
	const struct steer *s = steer;
	/* The reply's tuple is (raddr, laddr, rport, lport); the key is symmetric. */
	if (net_addr_is_v6(laddr))
		return s->reta[steer_hash6(raddr->v6, laddr->v6, rport, lport) %
			       STEER_RETA_SIZE] == s->self;
	return steer_owner(s, raddr->v4, laddr->v4, rport, lport) == s->self;
}
