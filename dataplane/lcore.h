/*
 * lcore.h - one worker lcore: its state and its run-to-completion loop.
 *
 * The loop, per iteration: read the clock once, receive a burst from the
 * lcore's RX queue, pass it through impairment (tests only), steer each
 * frame to the lcore that owns its flow (steer.h) or hand it to this lcore's
 * network stack, take in what other lcores steered here, serve the control
 * threads' sockets (dpsock.h), take the scheduler's delivery jobs
 * (delivery.h), run the TCP timer wheel, transmit what the stack queued,
 * run the slower stack timers every LCORE_TICK_NS, and when nothing
 * arrived, idle according to policy.
 *
 * Adaptive idle (after DPDK's l3fwd-power): the first LCORE_IDLE_SPIN empty
 * polls spin, the next until LCORE_IDLE_PAUSE pause the CPU, then the loop
 * sleeps 100 us per poll, and after LCORE_IDLE_DEEP empty polls 1 ms. Any
 * packet resets it. So a quiet appliance uses almost no CPU and a test on a
 * 2-core machine is not starved, while a loaded one never sleeps.
 */
#ifndef SLUICE_LCORE_H
#define SLUICE_LCORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/log.h"
#include "common/stats.h"
#include "dataplane/ask.h"
#include "dataplane/dataplane.h"
#include "dataplane/dpsock.h"
#include "dataplane/echo.h"
#include "dataplane/impair.h"
#include "dataplane/net/net_stack.h"
#include "dataplane/net/tcp.h"
#include "dataplane/net/udp.h"
#include "dataplane/smtp/delivery.h"
#include "dataplane/smtp/smtp_service.h"
#include "dataplane/steer.h"
#include "dataplane/tsc_clock.h"

#define LCORE_BURST 32
#define LCORE_TXBUF 64			/* frames queued before a forced flush */
#define LCORE_TICK_NS (10 * 1000000ull)	/* stack timers every 10 ms */
#define LCORE_IDLE_SPIN 64
#define LCORE_IDLE_PAUSE 512
#define LCORE_IDLE_DEEP 2000		/* ~0.2 s of 100 us naps, then 1 ms */

#define LCORE_STATS(X) X(polls) X(empty_polls) X(naps) X(deep_naps) \
	X(tx_bursts) X(tx_full_drops) X(rx_bursts)
struct lcore_stats {
	LCORE_STATS(STATS_FIELD)
};
extern const char *const lcore_stat_names[];
extern const unsigned lcore_stat_count;

struct lcore_ctx {
	unsigned lcore_id;
	unsigned worker;		/* 0..workers-1 */
	uint16_t port_id;
	uint16_t rxq;			/* valid when has_rxq */
	uint16_t txq;
	bool has_rxq;
	enum dp_idle_policy idle;
	const atomic_bool *quit;	/* set by the main lcore to stop */
	const atomic_bool *drain;	/* set by the main lcore: wind SMTP down */
	bool drained;

	uint64_t tsc_hz;
	uint64_t tsc0;
	struct tsc_clock clock;		/* cycles since tsc0 -> ns */

	struct net_stack ns;
	struct tcp_stack *tcp;
	struct udp_stack *udp;
	struct dpsock_lcore *dpsock;	/* control threads' sockets served here */
	struct ask_port *asks;		/* this lcore's questions to the control plane */
	struct steer steer;
	struct echo_service *echo;	/* test service; NULL when off */
	struct smtp_service *smtp;	/* NULL when off */
	struct dlv_service *dlv;	/* outbound SMTP: the scheduler's jobs */
	struct log_ring *log;		/* this lcore's log lines (common/log.h) */
	void *app;			/* dp_conf.app's per-lcore state, NULL: none */
	unsigned (*app_poll)(void *app);
	struct rte_mbuf *txbuf[LCORE_TXBUF];
	uint16_t ntx;

	bool impair_on;
	struct impair imp_rx, imp_tx;

	struct lcore_stats stats;
};

/* The worker entry point for rte_eal_remote_launch(); arg is a lcore_ctx. */
int lcore_main(void *arg);

/* The stack's tx hook: queue a frame on this lcore's TX buffer. */
void lcore_tx(void *ctx, struct rte_mbuf *m);

/* Transmit everything queued (with TX impairment when on). */
void lcore_flush_tx(struct lcore_ctx *lc);

#endif
