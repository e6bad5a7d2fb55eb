/*
 * lcore.c - the worker lcore's burst loop and idle policy. See lcore.h.
 */
#include "dataplane/lcore.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_pause.h>
#include <rte_ring.h>

#include "common/log.h"

const char *const lcore_stat_names[] = { LCORE_STATS(STATS_NAME) };
const unsigned lcore_stat_count = STATS_COUNT(lcore_stat_names);

/* Once per poll: a multiply and a shift, no divide (tsc_clock.h). */
static uint64_t lcore_now_ns(const struct lcore_ctx *lc)
{
	return tsc_clock_ns(&lc->clock, rte_get_tsc_cycles() - lc->tsc0);
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

/* Give a copy of an ARP frame to every other lcore (each has its own cache). */
static void copy_to_others(struct lcore_ctx *lc, struct rte_mbuf *m)
{
	struct steer *s = &lc->steer;

	for (unsigned w = 0; w < s->nworkers; w++) {
		struct rte_mbuf *c;
		if (w == s->self)
			continue;
		c = rte_pktmbuf_copy(m, lc->ns.pool, 0, UINT32_MAX);
		if (!c) {
			s->stats.copy_nombuf++;
			continue;
		}
		if (rte_ring_enqueue(s->inboxes[w], c) != 0) {
			s->stats.ring_full_drops++;
			rte_pktmbuf_free(c);
			continue;
		}
		s->stats.arp_copies++;
	}
}

/* Received frames: to their owner's inbox, or into our own stack. */
static void dispatch(struct lcore_ctx *lc, struct rte_mbuf **pkts, uint16_t n)
{
	for (uint16_t i = 0; i < n; i++) {
		int to = steer_classify(&lc->steer, pkts[i]);

		if (to >= 0) {
			if (rte_ring_enqueue(lc->steer.inboxes[to], pkts[i]) == 0) {
				lc->steer.stats.steered_out++;
			} else {
				/* Owner is not keeping up: TCP recovers the loss. */
				lc->steer.stats.ring_full_drops++;
				rte_pktmbuf_free(pkts[i]);
			}
			continue;
		}
		if (to == STEER_ALL)
			copy_to_others(lc, pkts[i]);
		net_input(&lc->ns, pkts[i]);
	}
}

/* Frames other lcores steered to us: flows we own, and ARP copies. */
static uint16_t take_inbox(struct lcore_ctx *lc)
{
	struct rte_mbuf *pkts[LCORE_BURST];
	unsigned n;

	if (!lc->steer.inbox)
		return 0;
	n = rte_ring_dequeue_burst(lc->steer.inbox, (void **)pkts, LCORE_BURST, NULL);
	for (unsigned i = 0; i < n; i++) {
		const struct rte_ether_hdr *eh = rte_pktmbuf_mtod(pkts[i], const struct rte_ether_hdr *);
		lc->steer.stats.steered_in++;
		/* copies for every lcore: ARP and IPv6 Neighbor Discovery */
		int to = eh->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP) ? STEER_ALL
			 : steer_classify(&lc->steer, pkts[i]);
		if (to == STEER_ALL) {
			net_input_copy(&lc->ns, pkts[i]);
			continue;
		}
		if (to != STEER_LOCAL)
			lc->steer.stats.misrouted++;
		net_input(&lc->ns, pkts[i]);
	}
	return (uint16_t)n;
}

int lcore_main(void *arg)
{
	struct lcore_ctx *lc = arg;
	struct rte_mbuf *pkts[LCORE_BURST * 2 + 1];
	uint64_t next_tick = 0;
	unsigned empty = 0;
	bool clients_started = false;

	/*
	 * net_tap signals arriving frames with SIGIO (its rx burst reads the
	 * tap only after one). The daemon blocks it everywhere else, so it
	 * lands here, on a thread that is running (or napping: the signal
	 * cuts the nap short, which is what we want) instead of waking the
	 * control thread for every frame.
	 */
	{
		sigset_t io;
		sigemptyset(&io);
		sigaddset(&io, SIGIO);
		if (pthread_sigmask(SIG_UNBLOCK, &io, NULL) != 0)
			log_warn("lcore %u: cannot unblock SIGIO: net_tap may stall", lc->lcore_id);
	}
	/* From here on this thread never writes a log line itself: lines go
	 * into its ring and the main lcore writes them out (dp_log_drain). */
	log_ring_bind(lc->log);
	log_info("worker %u polling port %u rxq %d txq %u (%s idle)",
		 lc->worker, lc->port_id, lc->has_rxq ? lc->rxq : -1,
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
		if (n)
			lc->stats.rx_bursts++;
		dispatch(lc, pkts, n);
		n += take_inbox(lc);
		if (lc->smtp) {
			if (!lc->drained && atomic_load_explicit(lc->drain, memory_order_relaxed)) {
				smtp_service_drain(lc->smtp);
				lc->drained = true;
			}
			n += smtp_service_poll(lc->smtp, lc->ns.now_ns);
		}
		if (lc->dpsock)
			n += dpsock_lcore_poll(lc->dpsock);
		if (lc->dlv)
			n += dlv_poll(lc->dlv);
		if (lc->app)
			n += lc->app_poll(lc->app);

		if (!clients_started) {
			echo_start_clients(lc->echo);
			clients_started = true;
		}
		if (lc->tcp)
			tcp_tick(lc->tcp);
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
	log_info("worker %u stopped", lc->worker);
	log_ring_bind(NULL);
	return 0;
}
