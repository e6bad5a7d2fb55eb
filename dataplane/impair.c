/*
 * impair.c - seeded packet impairment for tests. See impair.h.
 */
#include "dataplane/impair.h"

#include <stdlib.h>
#include <string.h>

#include <rte_ether.h>
#include <rte_mbuf.h>

#include "dataplane/net/cksum.h"

const char *const impair_stat_names[] = { IMPAIR_STATS(STATS_NAME) };
const unsigned impair_stat_count = STATS_COUNT(impair_stat_names);

static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;	/* xorshift64* */
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static bool roll(struct impair *im, uint32_t ppm)
{
	return ppm && (uint32_t)(rng_next(&im->rng) % IMPAIR_PPM) < ppm;
}

bool impair_conf_active(const struct impair_conf *c)
{
	const struct impair_rates *r[2] = { &c->rx, &c->tx };
	for (int i = 0; i < 2; i++)
		if (r[i]->drop || r[i]->dup || r[i]->reorder || r[i]->corrupt ||
		    r[i]->push_drop_every)
			return true;
	return false;
}

void impair_init(struct impair *im, const struct impair_conf *c, bool rx,
		 uint64_t stream, struct rte_mempool *pool)
{
	memset(im, 0, sizeof(*im));
	im->rates = rx ? c->rx : c->tx;
	/* splitmix-style scramble so nearby seeds/streams diverge; never 0 */
	im->rng = (c->seed + 0x9E3779B97F4A7C15ull * (stream * 2 + (rx ? 1 : 2))) | 1;
	im->hold_ns = c->hold_ns ? c->hold_ns : 1000000;	/* 1 ms */
	im->pool = pool;
}

static void corrupt(struct impair *im, struct rte_mbuf *m)
{
	uint32_t len = rte_pktmbuf_data_len(m);
	uint32_t off;
	uint8_t *p;

	if (len <= sizeof(struct rte_ether_hdr))
		return;
	/* On TX the port may be asked to compute checksums (net_stack.h):
	 * it would cover the flipped bit with a valid one. Compute them now,
	 * as the frame stands, so the corruption reaches the peer as such. */
	if (net_tx_cksum_finish(m) != 0)
		return;
	off = sizeof(struct rte_ether_hdr) +
	      (uint32_t)(rng_next(&im->rng) % (len - sizeof(struct rte_ether_hdr)));
	p = rte_pktmbuf_mtod_offset(m, uint8_t *, off);
	*p ^= (uint8_t)(1u << (rng_next(&im->rng) % 8));
	/* the port's checksum verdicts no longer hold: the stack trusts GOOD
	 * and NONE, so back to UNKNOWN and a software check */
	m->ol_flags &= ~(RTE_MBUF_F_RX_IP_CKSUM_MASK | RTE_MBUF_F_RX_L4_CKSUM_MASK);
	im->stats.corrupted++;
}

/* An untagged IPv4 TCP frame with PSH set (headers in the first segment)? */
static bool tcp_push(const struct rte_mbuf *m)
{
	const uint8_t *p = rte_pktmbuf_mtod(m, const uint8_t *);
	uint32_t len = rte_pktmbuf_data_len(m), ihl;

	if (len < 14 + 20 + 20 || p[12] != 0x08 || p[13] != 0x00 || p[14 + 9] != 6)
		return false;
	ihl = (uint32_t)(p[14] & 0x0f) * 4;
	return ihl >= 20 && len >= 14 + ihl + 14 && (p[14 + ihl + 13] & 0x08);
}

uint16_t impair_burst(struct impair *im, struct rte_mbuf **pkts, uint16_t n,
		      uint16_t max, uint64_t now_ns)
{
	struct rte_mbuf *out[n * 2 + 1];	/* n <= burst size: small */
	uint16_t k = 0;

	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i];

		if (im->rates.push_drop_every && tcp_push(m) &&
		    ++im->push_seen >= im->rates.push_drop_every) {
			im->push_seen = 0;
			rte_pktmbuf_free(m);
			im->stats.dropped++;
			continue;
		}
		if (roll(im, im->rates.drop)) {
			rte_pktmbuf_free(m);
			im->stats.dropped++;
			continue;
		}
		if (roll(im, im->rates.corrupt))
			corrupt(im, m);
		if (!im->held && roll(im, im->rates.reorder)) {
			im->held = m;	/* goes out after the next packet */
			im->held_since_ns = now_ns;
			im->stats.reordered++;
			continue;
		}
		out[k++] = m;
		if (roll(im, im->rates.dup)) {
			struct rte_mbuf *d = im->pool ? rte_pktmbuf_copy(m, im->pool, 0, UINT32_MAX) : NULL;
			if (d) {
				out[k++] = d;
				im->stats.duplicated++;
			} else {
				im->stats.dup_nombuf++;
			}
		}
		if (im->held) {
			out[k++] = im->held;
			im->held = NULL;
		}
	}
	/* Never return more than the caller has room for. */
	while (k > max) {
		rte_pktmbuf_free(out[--k]);
		im->stats.dropped++;
	}
	memcpy(pkts, out, k * sizeof(*pkts));
	return k;
}

struct rte_mbuf *impair_release(struct impair *im, uint64_t now_ns, bool force)
{
	struct rte_mbuf *m = im->held;

	if (!m || (!force && now_ns - im->held_since_ns < im->hold_ns))
		return NULL;
	im->held = NULL;
	return m;
}

int64_t impair_parse_rate(const char *s)
{
	char *end;
	double v;

	if (!s || !*s)
		return -1;
	v = strtod(s, &end);
	if (end == s)
		return -1;
	if (*end == '%') {
		if (end[1] != '\0' || v < 0 || v > 100)
			return -1;
		return (int64_t)(v * (IMPAIR_PPM / 100) + 0.5);
	}
	if (*end != '\0' || v < 0 || v > IMPAIR_PPM || v != (double)(int64_t)v)
		return -1;
	return (int64_t)v;
}
