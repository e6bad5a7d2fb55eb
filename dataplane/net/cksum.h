/*
 * cksum.h - the Internet checksum over an mbuf chain.
 *
 * DPDK 22.11's rte_raw_cksum_mbuf() is wrong when a segment other than the
 * last ends at an odd offset: it byte-swaps the next segment's partial sum
 * after cutting it to 16 bits, losing its carries (later DPDK releases
 * reduce it first). A chain split at an odd byte is legal, so protocol code
 * sums chains with net_cksum_mbuf() instead.
 */
#ifndef SLUICE_NET_CKSUM_H
#define SLUICE_NET_CKSUM_H

#include <stdint.h>

#include <rte_byteorder.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

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
		part = rte_raw_cksum(rte_pktmbuf_mtod_offset(m, const void *, off), n);
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

#endif
