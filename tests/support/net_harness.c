/*
 * net_harness.c - capture-wired network stack and frame builders. See the header.
 */
#include "tests/support/net_harness.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/heap_mempool.h"

#define HARNESS_POOL 4096

const struct rte_ether_addr harness_our_mac = { { 0x02, 0, 0, 0, 0, 0x02 } };
const struct rte_ether_addr harness_peer_mac = { { 0x02, 0, 0, 0, 0, 0x01 } };

rte_be32_t harness_ip(const char *dotted)
{
	struct in_addr a;
	if (inet_pton(AF_INET, dotted, &a) != 1)
		abort();
	return a.s_addr;
}

static void capture(void *ctx, struct rte_mbuf *m)
{
	struct net_harness *h = ctx;
	if (h->ntx == HARNESS_MAX_TX) {
		rte_pktmbuf_free(m);
		return;
	}
	h->tx[h->ntx++] = m;
}

void harness_init(struct net_harness *h, const struct arp_conf *arp)
{
	struct net_addr_conf a = {
		.mac = harness_our_mac,
		.ip = harness_ip("198.18.0.2"),
		.netmask = harness_ip("255.255.255.0"),
		.gateway = harness_ip("198.18.0.1"),
		.mtu = 1500,
	};
	struct arp_conf def;

	memset(h, 0, sizeof(*h));
	if (!arp) {
		arp_conf_default(&def);
		arp = &def;
	}
	h->pool = heap_mempool_create("harness", HARNESS_POOL,
				      RTE_MBUF_DEFAULT_BUF_SIZE);
	if (!h->pool || net_stack_init(&h->ns, &a, h->pool, capture, h, arp) < 0)
		abort();
}

void harness_clear_tx(struct net_harness *h)
{
	for (unsigned i = 0; i < h->ntx; i++)
		rte_pktmbuf_free(h->tx[i]);
	h->ntx = 0;
}

unsigned harness_fini(struct net_harness *h)
{
	unsigned out;

	harness_clear_tx(h);
	net_stack_fini(&h->ns);
	out = HARNESS_POOL - heap_mempool_avail(h->pool);
	heap_mempool_free(h->pool);
	return out;
}

struct rte_mbuf *harness_frame(struct net_harness *h, const void *bytes, uint16_t len)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(h->pool);
	char *p;
	if (!m)
		abort();
	p = rte_pktmbuf_append(m, len);
	if (!p)
		abort();
	memcpy(p, bytes, len);
	return m;
}

uint16_t harness_build_ipv4(uint8_t *buf, rte_be32_t src, rte_be32_t dst, uint8_t proto,
			    const void *payload, uint16_t plen)
{
	struct rte_ether_hdr *eh = (struct rte_ether_hdr *)buf;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eh + 1);

	eh->dst_addr = harness_our_mac;
	eh->src_addr = harness_peer_mac;
	eh->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	memset(ip, 0, sizeof(*ip));
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->total_length = rte_cpu_to_be_16((uint16_t)(sizeof(*ip) + plen));
	ip->time_to_live = 64;
	ip->next_proto_id = proto;
	ip->src_addr = src;
	ip->dst_addr = dst;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	memcpy(ip + 1, payload, plen);
	return (uint16_t)(sizeof(*eh) + sizeof(*ip) + plen);
}

uint16_t harness_build_echo(uint8_t *buf, rte_be32_t src, uint16_t seq, uint16_t plen)
{
	uint8_t icmp[2048];
	struct rte_icmp_hdr *ih = (struct rte_icmp_hdr *)icmp;

	memset(ih, 0, sizeof(*ih));
	ih->icmp_type = RTE_IP_ICMP_ECHO_REQUEST;
	ih->icmp_ident = rte_cpu_to_be_16(0x1234);
	ih->icmp_seq_nb = rte_cpu_to_be_16(seq);
	for (uint16_t i = 0; i < plen; i++)
		icmp[sizeof(*ih) + i] = (uint8_t)(i * 7 + seq);
	ih->icmp_cksum = (uint16_t)~rte_raw_cksum(icmp, sizeof(*ih) + plen);
	return harness_build_ipv4(buf, src, harness_ip("198.18.0.2"), IPPROTO_ICMP, icmp,
				  (uint16_t)(sizeof(*ih) + plen));
}

uint16_t harness_build_arp(uint8_t *buf, uint16_t op, const struct rte_ether_addr *sha,
			   rte_be32_t sip, rte_be32_t tip, const struct rte_ether_addr *eth_dst)
{
	struct rte_ether_hdr *eh = (struct rte_ether_hdr *)buf;
	struct rte_arp_hdr *ah = (struct rte_arp_hdr *)(eh + 1);

	eh->dst_addr = *eth_dst;
	eh->src_addr = *sha;
	eh->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP);
	ah->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
	ah->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	ah->arp_hlen = 6;
	ah->arp_plen = 4;
	ah->arp_opcode = rte_cpu_to_be_16(op);
	ah->arp_data.arp_sha = *sha;
	ah->arp_data.arp_sip = sip;
	memset(&ah->arp_data.arp_tha, 0, 6);
	ah->arp_data.arp_tip = tip;
	return (uint16_t)(sizeof(*eh) + sizeof(*ah));
}
