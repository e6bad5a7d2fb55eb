/*
 * cksum.h - the Internet checksum over an mbuf chain.
 *
 * DPDK 22.11's rte_raw_cksum_mbuf() is wrong when a segment other than the
 * last ends at an odd offset: it byte-swaps the next segment's partial sum
 * after cutting it to 16 bits, losing its carries (later DPDK releases
 * reduce it first). A chain split at an odd byte is legal, so protocol code
 * sums chains with net_cksum_mbuf() instead.
 *
 * Its rte_raw_cksum() is also slow where it matters: a loop over 16-bit
 * words that gcc -O2 does not vectorize, two octets a step. TCP sums every
 * segment it sends and every one it receives on a port without checksum
 * offload (net_af_packet, net_tap): at a 9000-octet MTU that loop was
 * seg_input's whole cost and most of seg_send's in a bulk profile.
 * net_raw_cksum() gives the same value 16 octets a step.
 */
#ifndef SLUICE_NET_CKSUM_H
#define SLUICE_NET_CKSUM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <rte_byteorder.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

#include "dataplane/net/ipv6.h"

/*
 * rte_raw_cksum(buf, len), the same value: 32-bit words as they lie in
 * memory added into two 64-bit sums (no carry lost below 2^32 words), then
 * folded. A 32-bit word is its two 16-bit halves times 1 and 2^16, and
 * 2^16 is 1 modulo 0xffff, so the fold equals the sum of the 16-bit words
 * (RFC 1071 2(B): byte-order and word-size independence); the odd last
 * octet is added as rte_raw_cksum adds it.
 */
static inline uint16_t net_raw_cksum(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint64_t a = 0, b = 0;
	uint32_t w[4];
	uint16_t h;

	for (; len >= 16; p += 16, len -= 16) {
		memcpy(w, p, 16);
		a += w[0];
		b += w[1];
		a += w[2];
		b += w[3];
	}
	a += b;
	for (; len >= 4; p += 4, len -= 4) {
		memcpy(w, p, 4);
		a += w[0];
	}
	if (len >= 2) {
		memcpy(&h, p, 2);
		a += h;
		p += 2;
		len -= 2;
	}
	if (len) {
		h = 0;
		memcpy(&h, p, 1);
		a += h;
	}
	while (a >> 16)
		a = (a & 0xffff) + (a >> 16);
	return (uint16_t)a;
}

/*
 * Raw (not complemented) 16-bit one's-complement sum of len bytes from
 * offset off, as 16-bit words lie in memory (as rte_raw_cksum gives it).
 * Returns 0 and *sum, or -1 when the chain is shorter than off + len.
 */
static inline int net_cksum_mbuf(const struct rte_mbuf *m, uint32_t off, uint32_t len,
				 uint16_t *sum)
{
	uint64_t acc = 0;
	uint32_t done = 0;

	if (off + len > rte_pktmbuf_pkt_len(m))
		return -1;
	while (m && off >= rte_pktmbuf_data_len(m)) {
		off -= rte_pktmbuf_data_len(m);
		m = m->next;
	}
	while (done < len) {
		uint32_t n;
		uint16_t part;

		if (!m)
			return -1;
		n = rte_pktmbuf_data_len(m) - off;
		if (n > len - done)
			n = len - done;
		part = net_raw_cksum(rte_pktmbuf_mtod_offset(m, const void *, off), n);
		/* A part that starts at an odd offset of the whole has its
		 * bytes in the other halves of the words: swap its (reduced)
		 * sum. */
		acc += (done & 1) ? rte_bswap16(part) : part;
		done += n;
		off = 0;
		m = m->next;
	}
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	*sum = (uint16_t)acc;
	return 0;
}

/*
 * A frame handed to the port with TX checksum offload requested
 * (RTE_MBUF_F_TX_IP_CKSUM, RTE_MBUF_F_TX_TCP_CKSUM or _UDP_CKSUM, with
 * l2_len and l3_len set and the pseudo-header sum in the L4 field):
 * compute those checksums here instead and clear the requests. For code
 * that must change a frame after the stack built it and before the port
 * sees it (impair.c's corruption, which the port would otherwise cover
 * with a fresh, valid checksum). Returns 0, or -1 when the frame is too
 * short for what its flags say (left as it was).
 */
static inline int net_tx_cksum_finish(struct rte_mbuf *m)
{
	uint64_t f = m->ol_flags, l4 = f & RTE_MBUF_F_TX_L4_MASK;
	struct rte_ipv4_hdr *ip;
	uint32_t off, len, sum;
	uint16_t raw, *field;

	if (!(f & RTE_MBUF_F_TX_IP_CKSUM) && l4 != RTE_MBUF_F_TX_TCP_CKSUM &&
	    l4 != RTE_MBUF_F_TX_UDP_CKSUM)
		return 0;
	if (m->l3_len < sizeof(*ip) ||
	    rte_pktmbuf_data_len(m) < (uint32_t)m->l2_len + m->l3_len + 8)
		return -1;
	ip = rte_pktmbuf_mtod_offset(m, struct rte_ipv4_hdr *, m->l2_len);
	off = (uint32_t)m->l2_len + m->l3_len;
	if (f & RTE_MBUF_F_TX_IPV6) {
		/* IPv6 (no header checksum): the fixed header, then L4 */
		const struct rte_ipv6_hdr *ip6 = (const struct rte_ipv6_hdr *)ip;
		if (m->l3_len != sizeof(*ip6) || (f & RTE_MBUF_F_TX_IP_CKSUM))
			return -1;
		len = rte_be_to_cpu_16(ip6->payload_len);
		if (off + len > rte_pktmbuf_pkt_len(m))
			return -1;
		if (l4 == RTE_MBUF_F_TX_TCP_CKSUM || l4 == RTE_MBUF_F_TX_UDP_CKSUM) {
			uint32_t at = off + (l4 == RTE_MBUF_F_TX_TCP_CKSUM ? 16 : 6);
			if (at + 2 > rte_pktmbuf_data_len(m) || at + 2 > off + len)
				return -1;
			field = rte_pktmbuf_mtod_offset(m, uint16_t *, at);
			*field = 0;
			if (net_cksum_mbuf(m, off, len, &raw) != 0)
				return -1;
			sum = (uint32_t)raw + ipv6_addr_sum(ip6->src_addr, ip6->dst_addr) +
			      rte_cpu_to_be_16(ip6->proto) + rte_cpu_to_be_16((uint16_t)len);
			while (sum >> 16)
				sum = (sum & 0xffff) + (sum >> 16);
			*field = (uint16_t)~sum;
			if (*field == 0 && l4 == RTE_MBUF_F_TX_UDP_CKSUM)
				*field = 0xffff;
		}
		m->ol_flags &= ~RTE_MBUF_F_TX_L4_MASK;
		return 0;
	}
	len = rte_be_to_cpu_16(ip->total_length);
	if (len < m->l3_len || off + (len - m->l3_len) > rte_pktmbuf_pkt_len(m))
		return -1;
	len -= m->l3_len;
	if (l4 == RTE_MBUF_F_TX_TCP_CKSUM || l4 == RTE_MBUF_F_TX_UDP_CKSUM) {
		uint32_t at = off + (l4 == RTE_MBUF_F_TX_TCP_CKSUM ? 16 : 6);
		if (at + 2 > rte_pktmbuf_data_len(m) || at + 2 > off + len)
			return -1;
		field = rte_pktmbuf_mtod_offset(m, uint16_t *, at);
		*field = 0;
		if (net_cksum_mbuf(m, off, len, &raw) != 0)
			return -1;
		sum = (uint32_t)raw + rte_ipv4_phdr_cksum(ip, 0);
		sum = (sum & 0xffff) + (sum >> 16);
		sum = (sum & 0xffff) + (sum >> 16);
		*field = (uint16_t)~sum;
		if (*field == 0 && l4 == RTE_MBUF_F_TX_UDP_CKSUM)
			*field = 0xffff;	/* 0 would mean "none" */
	}
	if (f & RTE_MBUF_F_TX_IP_CKSUM) {
		ip->hdr_checksum = 0;
		ip->hdr_checksum = rte_ipv4_cksum(ip);
	}
	m->ol_flags &= ~(RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_L4_MASK);
	return 0;
}

#endif
