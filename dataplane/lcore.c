/*
 * lcore.c - the worker lcore's burst loop and idle policy. See lcore.h.
 */
#include "dataplane/lcore.h"

#include <string.h>
#include <time.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_pause.h>

#include "common/log.h"

const char *const lcore_stat_names[] = { LCORE_STATS(STATS_NAME) };
const unsigned lcore_stat_count = STATS_COUNT(lcore_stat_names);

static uint64_t lcore_now_ns(const struct lcore_ctx *lc)
{
	uint64_t d = rte_get_tsc_cycles() - lc->tsc0;
	return (uint64_t)(((unsigned __int128)d * 1000000000u) / lc->tsc_hz);
}

void lcore_flush_tx(struct lcore_ctx *lc)
{
	struct rte_mbuf **pkts = lc->txbuf;
	uint16_t n = lc->ntx, sent;
	struct rte_mbuf *tmp[LCORE_TXBUF * 2 + 1];

	if (lc->impair_on) {
		struct rte_mbuf *held;
		memcpy(tmp, lc->txbuf, n * sizeof(*tmp));
		n = impair_burst(&lc->imp_tx, tmp, n, LCORE_TXBUF * 2, lc->ns.now_ns);
		held = impair_release(&lc->imp_tx, lc->ns.now_ns, false);
		if (held)
			tmp[n++] = held;
		pkts = tmp;
	}
	lc->ntx = 0;
	if (n == 0)
		return;
	sent = rte_eth_tx_burst(lc->port_id, lc->txq, pkts, n);
	lc->stats.tx_bursts++;
	if (sent < n) {
		/* The ring is full: the peer's TCP recovers what we drop here. */
		lc->stats.tx_full_drops += n - sent;
		rte_pktmbuf_free_bulk(pkts + sent, n - sent);
	}
}

void lcore_tx(void *ctx, struct rte_mbuf *m)
{
	struct lcore_ctx *lc = ctx;

	if (lc->ntx == LCORE_TXBUF)
		lcore_flush_tx(lc);
	lc->txbuf[lc->ntx++] = m;
}

static void idle(struct lcore_ctx *lc, unsigned empty)
{
	struct timespec ts = { 0, 0 };

	if (lc->idle == DP_IDLE_BUSY || empty < LCORE_IDLE_SPIN)
		return;
	if (empty < LCORE_IDLE_PAUSE) {
		rte_pause();
		return;
	}
	if (empty < LCORE_IDLE_DEEP) {
		ts.tv_nsec = 100 * 1000;
		lc->stats.naps++;
	} else {
		ts.tv_nsec = 1000 * 1000;
		lc->stats.deep_naps++;
	}
	nanosleep(&ts, NULL);
}

int lcore_main(void *arg)
{
	struct lcore_ctx *lc = arg;
	struct rte_mbuf *pkts[LCORE_BURST * 2 + 1];
	uint64_t next_tick = 0;
	unsigned empty = 0;

	log_info("lcore %u: worker %u polling port %u rxq %d txq %u (%s idle)",
		 lc->lcore_id, lc->worker, lc->port_id, lc->has_rxq ? lc->rxq : -1,
		 lc->txq, lc->idle == DP_IDLE_BUSY ? "busy" : "adaptive");

	while (!atomic_load_explicit(lc->quit, memory_order_relaxed)) {
		uint16_t n = 0;

		lc->ns.now_ns = lcore_now_ns(lc);
		lc->stats.polls++;
		if (lc->has_rxq)
			n = rte_eth_rx_burst(lc->port_id, lc->rxq, pkts, LCORE_BURST);
		if (lc->impair_on) {
			struct rte_mbuf *held;
			n = impair_burst(&lc->imp_rx, pkts, n, LCORE_BURST * 2, lc->ns.now_ns);
			held = impair_release(&lc->imp_rx, lc->ns.now_ns, false);
			if (held)
				pkts[n++] = held;
		}
		for (uint16_t i = 0; i < n; i++)
			net_input(&lc->ns, pkts[i]);
		if (n)
			lc->stats.rx_bursts++;

		if (lc->ns.now_ns >= next_tick) {
			net_tick(&lc->ns);
			next_tick = lc->ns.now_ns + LCORE_TICK_NS;
		}
		if (lc->ntx || lc->imp_tx.held)
			lcore_flush_tx(lc);

		if (n == 0) {
			lc->stats.empty_polls++;
			idle(lc, ++empty);
		} else {
			empty = 0;
		}
	}
	/* Drain: what is queued goes out; held impairment packets are freed. */
	lcore_flush_tx(lc);
	if (lc->impair_on) {
		rte_pktmbuf_free(impair_release(&lc->imp_rx, 0, true));
		rte_pktmbuf_free(impair_release(&lc->imp_tx, 0, true));
	}
	log_info("lcore %u: worker %u stopped", lc->lcore_id, lc->worker);
	return 0;
}
