/*
 * dataplane.c - wires EAL, the port and the worker lcores together. See dataplane.h.
 */
#include "dataplane/dataplane.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>

#include "common/log.h"
#include "dataplane/eal.h"
#include "dataplane/lcore.h"
#include "dataplane/port.h"

struct dataplane {
	struct dp_conf conf;
	struct eal_argv eal_argv;	/* EAL may keep pointers into it */
	struct port_info port;
	atomic_bool quit;
	bool started, stopped;
	unsigned nworkers;
	struct lcore_ctx *workers[DP_MAX_WORKERS];
};

static int setup_worker(struct dataplane *dp, struct lcore_ctx *lc, unsigned lcore_id,
			unsigned w, uint64_t tsc0)
{
	struct net_addr_conf addr = dp->conf.addr;
	int r;

	memset(lc, 0, sizeof(*lc));
	lc->lcore_id = lcore_id;
	lc->worker = w;
	lc->port_id = dp->port.port_id;
	lc->has_rxq = w < dp->port.rx_queues;
	lc->rxq = (uint16_t)w;
	lc->txq = (uint16_t)w;
	lc->idle = dp->conf.idle;
	lc->quit = &dp->quit;
	lc->tsc_hz = rte_get_tsc_hz();
	lc->tsc0 = tsc0;

	if (rte_is_zero_ether_addr(&addr.mac))
		addr.mac = dp->port.mac;
	if (addr.mtu == 0 || addr.mtu > dp->port.mtu)
		addr.mtu = dp->port.mtu;
	r = net_stack_init(&lc->ns, &addr, dp->port.pool, lcore_tx, lc, &dp->conf.arp);
	if (r < 0)
		return r;
	lc->ns.lcore = lcore_id;
	lc->impair_on = impair_conf_active(&dp->conf.impair);
	if (lc->impair_on) {
		impair_init(&lc->imp_rx, &dp->conf.impair, true, w, dp->port.pool);
		impair_init(&lc->imp_tx, &dp->conf.impair, false, w, dp->port.pool);
		log_warn("lcore %u: packet impairment ON (test only)", lcore_id);
	}
	return 0;
}

struct dataplane *dp_init(const struct dp_conf *conf, const char *progname)
{
	struct dataplane *dp;
	unsigned lcore_id, w = 0;
	uint64_t tsc0;

	if (conf->workers == 0 || conf->workers > DP_MAX_WORKERS) {
		log_err("workers must be 1..%d", DP_MAX_WORKERS);
		return NULL;
	}
	dp = calloc(1, sizeof(*dp));
	if (!dp)
		return NULL;
	dp->conf = *conf;
	atomic_init(&dp->quit, false);

	if (eal_start(&dp->eal_argv, progname, conf) < 0)
		goto fail;
	if (rte_lcore_count() < conf->workers + 1) {
		log_err("EAL gave %u lcores, need %u", rte_lcore_count(), conf->workers + 1);
		goto fail_eal;
	}
	if (port_setup(&dp->port, conf) < 0)
		goto fail_eal;
	if (dp->port.rx_queues < conf->workers)
		log_warn("port has %u RX queue(s) for %u workers: workers without a "
			 "queue serve only what is steered to them",
			 dp->port.rx_queues, conf->workers);

	tsc0 = rte_get_tsc_cycles();
	RTE_LCORE_FOREACH_WORKER(lcore_id) {
		struct lcore_ctx *lc;
		if (w == conf->workers)
			break;
		lc = rte_zmalloc_socket("lcore_ctx", sizeof(*lc), RTE_CACHE_LINE_SIZE,
					(int)rte_lcore_to_socket_id(lcore_id));
		if (!lc || setup_worker(dp, lc, lcore_id, w, tsc0) < 0) {
			log_err("lcore %u: set-up failed", lcore_id);
			rte_free(lc);
			goto fail_port;
		}
		dp->workers[w++] = lc;
	}
	dp->nworkers = w;
	return dp;

fail_port:
	for (unsigned i = 0; i < w; i++) {
		net_stack_fini(&dp->workers[i]->ns);
		rte_free(dp->workers[i]);
	}
	port_close(&dp->port);
fail_eal:
	rte_eal_cleanup();
fail:
	free(dp);
	return NULL;
}

int dp_start(struct dataplane *dp)
{
	for (unsigned i = 0; i < dp->nworkers; i++) {
		int r = rte_eal_remote_launch(lcore_main, dp->workers[i], dp->workers[i]->lcore_id);
		if (r < 0) {
			log_err("lcore %u: launch failed: %d", dp->workers[i]->lcore_id, r);
			atomic_store(&dp->quit, true);
			rte_eal_mp_wait_lcore();
			return r;
		}
	}
	dp->started = true;
	return 0;
}

void dp_stop(struct dataplane *dp)
{
	if (!dp || dp->stopped)
		return;
	dp->stopped = true;
	atomic_store(&dp->quit, true);
	if (dp->started)
		rte_eal_mp_wait_lcore();
	port_close(&dp->port);
	for (unsigned i = 0; i < dp->nworkers; i++) {
		net_stack_fini(&dp->workers[i]->ns);
		rte_free(dp->workers[i]);
	}
	rte_mempool_free(dp->port.pool);
	rte_eal_cleanup();
	free(dp);
}

/* Sum one counter group over all workers into out[]. */
static void sum_group(struct dataplane *dp, size_t off, unsigned n, uint64_t *out)
{
	memset(out, 0, n * sizeof(*out));
	for (unsigned i = 0; i < dp->nworkers; i++) {
		const uint64_t *v = (const uint64_t *)(const void *)((const char *)dp->workers[i] + off);
		for (unsigned k = 0; k < n; k++)
			out[k] += v[k];
	}
}

static void write_group(FILE *out, bool json, bool *first, const char *group,
			const char *const *names, const uint64_t *v, unsigned n)
{
	for (unsigned k = 0; k < n; k++) {
		if (json)
			fprintf(out, "%s\"%s.%s\":%llu", *first ? "" : ",", group, names[k],
				(unsigned long long)v[k]);
		else
			fprintf(out, "%s.%s %llu\n", group, names[k], (unsigned long long)v[k]);
		*first = false;
	}
}

void dp_stats_write(struct dataplane *dp, FILE *out, bool json)
{
	uint64_t v[64];
	bool first = true;
	struct rte_eth_stats es;
	static const char *const port_names[] = { "ipackets", "opackets", "ibytes",
		"obytes", "imissed", "ierrors", "oerrors", "rx_nombuf" };

	_Static_assert(sizeof(struct net_stats) / 8 <= 64, "grow v[]");
	sum_group(dp, offsetof(struct lcore_ctx, ns.stats), net_stat_count, v);
	write_group(out, json, &first, "net", net_stat_names, v, net_stat_count);
	sum_group(dp, offsetof(struct lcore_ctx, stats), lcore_stat_count, v);
	write_group(out, json, &first, "lcore", lcore_stat_names, v, lcore_stat_count);
	sum_group(dp, offsetof(struct lcore_ctx, imp_rx.stats), impair_stat_count, v);
	write_group(out, json, &first, "impair_rx", impair_stat_names, v, impair_stat_count);
	sum_group(dp, offsetof(struct lcore_ctx, imp_tx.stats), impair_stat_count, v);
	write_group(out, json, &first, "impair_tx", impair_stat_names, v, impair_stat_count);
	if (rte_eth_stats_get(dp->port.port_id, &es) == 0) {
		uint64_t pv[] = { es.ipackets, es.opackets, es.ibytes, es.obytes,
				  es.imissed, es.ierrors, es.oerrors, es.rx_nombuf };
		write_group(out, json, &first, "port", port_names, pv, 8);
	}
}
