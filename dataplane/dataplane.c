/*
 * dataplane.c - wires EAL, the port and the worker lcores together. See dataplane.h.
 */
#include "dataplane/dataplane.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_errno.h>
#include <rte_malloc.h>
#include <rte_ring.h>

#include "common/log.h"
#include "dataplane/eal.h"
#include "dataplane/lcore.h"
#include "dataplane/port.h"
#include "dataplane/smtp/tls.h"

#define DP_INBOX_SIZE 4096	/* steered frames waiting per lcore */

struct dataplane {
	struct dp_conf conf;		/* udp and dpsock: defaults filled in */
	uint8_t secret[16];		/* keys TCP ISNs and SYN cookies */
	uint8_t udp_secret[16];		/* keys UDP ephemeral ports */
	struct rte_ring *inboxes[DP_MAX_WORKERS];
	struct eal_argv eal_argv;	/* EAL may keep pointers into it */
	struct port_info port;
	atomic_bool quit;
	atomic_bool drain;		/* SMTP winding down (dp_drain) */
	bool started, halted, stopped;
	struct smtp_limits limits;	/* SMTP session counts, all lcores */
	struct smtp_live_slot live;	/* the SMTP settings in force (reloads) */
	struct smtp_live *retired;	/* replaced snapshots not yet freed */
	uint64_t live_gen;		/* the last published generation */
	uint64_t tsc0;			/* the lcores' clock starts here */
	uint64_t live_st[2];		/* smtp_live.published, .freed (main
					 * thread; read racily by stats) */
	unsigned nworkers;
	struct lcore_ctx *workers[DP_MAX_WORKERS];
	struct dpsock_hub *hubs[DP_DPSOCK_HUBS];
	struct tls_ctx *tls_client;	/* made here when conf.delivery.tls is NULL */
};

/*
 * How many of the pool's mbufs one lcore's TCP may hold in send and
 * out-of-order queues: its share of the pool less what the lcore needs to
 * keep moving even when every send buffer is full - RX descriptors to
 * refill, a TX burst, its steering inbox, the mempool cache, the datagrams
 * its UDP sockets may queue, and frames for ARP, ACKs and SYN-ACKs. Without it, busy connections under loss drain the
 * pool and the lcore can no longer receive the ACKs that would free it.
 */
static unsigned tcp_mbuf_budget(const struct dp_conf *conf)
{
	unsigned share = conf->port.mbufs / conf->workers;
	unsigned reserve = conf->port.rx_desc + conf->port.tx_desc + DP_INBOX_SIZE +
			   2 * conf->port.mbuf_cache + 2 * LCORE_TXBUF + 1024 +
			   conf->udp.rxq_mbufs;

	return share > 2 * reserve ? share - reserve : share / 2;
}

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
	lc->drain = &dp->drain;
	lc->tsc_hz = rte_get_tsc_hz();
	lc->tsc0 = tsc0;
	tsc_clock_init(&lc->clock, lc->tsc_hz);

	if (rte_is_zero_ether_addr(&addr.mac))
		addr.mac = dp->port.mac;
	if (addr.mtu == 0 || addr.mtu > dp->port.mtu)
		addr.mtu = dp->port.mtu;
	lc->log = log_ring_create(lcore_id);
	if (!lc->log)
		return -ENOMEM;
	r = net_stack_init(&lc->ns, &addr, dp->port.pool, lcore_tx, lc, &dp->conf.arp);
	if (r < 0)
		return r;
	lc->ns.lcore = lcore_id;
	lc->ns.tx_ip_cksum = (dp->port.tx_offloads & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM) != 0;
	lc->ns.tx_tcp_cksum = (dp->port.tx_offloads & RTE_ETH_TX_OFFLOAD_TCP_CKSUM) != 0;
	steer_init(&lc->steer, w, dp->conf.workers, dp->inboxes[w], dp->inboxes);
	steer_use_hw_hash(&lc->steer, dp->port.rss_hw);

	{
		struct tcp_conf tc = dp->conf.tcp;
		memcpy(tc.secret, dp->secret, sizeof(tc.secret));
		tc.port_ok = steer_owns;
		tc.port_ok_ctx = &lc->steer;
		tc.mbuf_budget = tcp_mbuf_budget(&dp->conf);
		tc.ack_coalesce = true;	/* tcp_tick runs after every burst */
		lc->tcp = tcp_stack_create(&lc->ns, &tc);
		if (!lc->tcp) {
			log_err("lcore %u: TCP stack set-up failed", lcore_id);
			return -ENOMEM;
		}
	}
	{
		struct udp_conf uc = dp->conf.udp;
		memcpy(uc.secret, dp->udp_secret, sizeof(uc.secret));
		uc.secret[0] ^= (uint8_t)w;	/* each lcore its own sequence */
		uc.port_ok = steer_owns;
		uc.port_ok_ctx = &lc->steer;
		lc->udp = udp_stack_create(&lc->ns, &uc);
		if (!lc->udp) {
			log_err("lcore %u: UDP stack set-up failed", lcore_id);
			return -ENOMEM;
		}
		lc->dpsock = dpsock_lcore_create(w, lc->udp, lc->tcp, dp->hubs, DP_DPSOCK_HUBS);
		if (!lc->dpsock) {
			log_err("lcore %u: dpsock set-up failed", lcore_id);
			return -ENOMEM;
		}
	}
	if (dp->conf.echo.port || dp->conf.echo.connect_ip) {
		lc->echo = echo_create(lc->tcp, &dp->conf.echo, w + 1);
		if (!lc->echo)
			return -ENOMEM;
		log_warn("lcore %u: test echo service on (port %u, client %u conns)",
			 lcore_id, dp->conf.echo.port,
			 dp->conf.echo.connect_ip ? dp->conf.echo.connections : 0);
	}
	lc->asks = ask_port_create(DP_ASK_SLOTS);
	if (!lc->asks)
		return -ENOMEM;
	if (dp->conf.smtp.port) {
		lc->smtp = smtp_service_create(lc->tcp, &dp->conf.smtp, &dp->limits, &dp->live,
					       dp->conf.tcp.rcvbuf, lcore_id, &lc->ns.now_ns);
		if (!lc->smtp)
			return -ENOMEM;
		smtp_service_set_asks(lc->smtp, lc->asks);
	}
	lc->dlv = dlv_create(lc->tcp, &dp->conf.delivery, dp->conf.tcp.rcvbuf, w, &lc->ns.now_ns);
	if (!lc->dlv) {
		log_err("lcore %u: delivery set-up failed", lcore_id);
		return -ENOMEM;
	}
	if (dp->conf.app.create) {
		struct dp_app_lcore al = { w, lcore_id, &lc->ns, lc->tcp, &lc->ns.now_ns };
		lc->app = dp->conf.app.create(dp->conf.app.arg, &al);
		if (!lc->app) {
			log_err("lcore %u: application set-up failed", lcore_id);
			return -ENOMEM;
		}
		lc->app_poll = dp->conf.app.poll;
	}
	lc->impair_on = impair_conf_active(&dp->conf.impair);
	if (lc->impair_on) {
		impair_init(&lc->imp_rx, &dp->conf.impair, true, w, dp->port.pool);
		impair_init(&lc->imp_tx, &dp->conf.impair, false, w, dp->port.pool);
		log_warn("lcore %u: packet impairment ON (test only)", lcore_id);
	}
	return 0;
}

static void free_worker(struct dataplane *dp, struct lcore_ctx *lc)
{
	if (!lc)
		return;
	if (lc->app && dp->conf.app.destroy)
		dp->conf.app.destroy(lc->app);	/* its connections go before the stack */
	lc->app = NULL;
	echo_destroy(lc->echo);
	/* Resets whatever SMTP sessions are left; the RSTs go out while the
	 * port is still up (dp_stop closes it after the workers are freed). */
	smtp_service_destroy(lc->smtp);
	dlv_destroy(lc->dlv);		/* resets its connections */
	dpsock_lcore_destroy(lc->dpsock);	/* resets its TCP connections */
	ask_port_free(lc->asks);	/* the plane stopped before the workers were freed */
	if (lc->ntx)
		lcore_flush_tx(lc);
	if (lc->tcp)
		tcp_stack_destroy(lc->tcp);
	udp_stack_destroy(lc->udp);
	net_stack_fini(&lc->ns);
	if (lc->log) {
		log_ring_drain(lc->log, LOG_RING_SLOTS);
		log_ring_free(lc->log);
	}
	rte_free(lc);
}

static void free_hubs(struct dataplane *dp)
{
	for (unsigned i = 0; i < DP_DPSOCK_HUBS; i++) {
		dpsock_hub_destroy(dp->hubs[i]);
		dp->hubs[i] = NULL;
	}
}

/*
 * The UDP and dpsock configurations, defaults where the caller left them
 * zero; a dpsock TCP connection's staging must hold the stack's whole
 * receive window, and a datagram must fit the MTU.
 */
static void conf_fill(struct dp_conf *c, uint16_t port_mtu)
{
	unsigned mtu = c->addr.mtu && c->addr.mtu <= port_mtu ? c->addr.mtu : port_mtu;

	if (c->udp.max_socks == 0)
		udp_conf_default(&c->udp);
	if (c->dpsock.max_socks == 0) {
		dpsock_conf_default(&c->dpsock);
		/* The resolver writes every UDP query of a server to one
		 * socket: with dpsock's default of 8 slots per socket it got
		 * about 8 queries out per pass of its loop (3.8k lookups/s
		 * measured by bench/dns-bench); 64 let it reach dnsmasq's own
		 * rate (9.6k/s). 256 + 256 slots of 4 KiB per hub and lcore. */
		c->dpsock.req_slots = 256;
		c->dpsock.evt_slots = 256;
		c->dpsock.sock_slots = 64;
	}
	if (c->dpsock.tcp_rxbuf < c->tcp.rcvbuf)
		c->dpsock.tcp_rxbuf = c->tcp.rcvbuf;
	if (mtu > 28 && c->dpsock.dgram_max > mtu - 28)
		c->dpsock.dgram_max = mtu - 28;
	if (c->delivery.max_conns == 0) {
		struct tls_ctx *tls = c->delivery.tls;
		dlv_conf_default(&c->delivery);
		c->delivery.tls = tls;
		if (c->smtp.engine.hostname[0])
			snprintf(c->delivery.client.helo, sizeof(c->delivery.client.helo), "%s",
				 c->smtp.engine.hostname);
	}
}

static void free_rings(struct dataplane *dp)
{
	for (unsigned i = 0; i < DP_MAX_WORKERS; i++) {
		struct rte_mbuf *m;
		if (!dp->inboxes[i])
			continue;
		while (rte_ring_dequeue(dp->inboxes[i], (void **)&m) == 0)
			rte_pktmbuf_free(m);
		rte_ring_free(dp->inboxes[i]);
		dp->inboxes[i] = NULL;
	}
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
	if (conf->smtp.live) {
		conf->smtp.live->gen = dp->live_gen = 1;
		atomic_init(&conf->smtp.live->sessions, 0);
		conf->smtp.live->retired_next = NULL;
	}
	atomic_init(&dp->live.cur, conf->smtp.live);
	atomic_init(&dp->quit, false);
	atomic_init(&dp->drain, false);

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

	if (getrandom(dp->secret, sizeof(dp->secret), 0) != sizeof(dp->secret) ||
	    getrandom(dp->udp_secret, sizeof(dp->udp_secret), 0) != sizeof(dp->udp_secret)) {
		log_err("getrandom: %s", strerror(errno));
		goto fail_port;
	}
	conf_fill(&dp->conf, dp->port.mtu);
	if (!dp->conf.delivery.tls) {
		char err[256];
		dp->tls_client = tls_ctx_client(NULL, err, sizeof(err));
		if (!dp->tls_client) {
			log_err("delivery: TLS client context: %s", err);
			goto fail_port;
		}
		dp->conf.delivery.tls = dp->tls_client;
	}
	for (unsigned i = 0; i < DP_DPSOCK_HUBS; i++) {
		dp->hubs[i] = dpsock_hub_create(&dp->conf.dpsock, conf->workers);
		if (!dp->hubs[i]) {
			log_err("dpsock hub %u: set-up failed", i);
			goto fail_port;
		}
	}
	for (unsigned i = 0; i < conf->workers; i++) {
		char name[RTE_RING_NAMESIZE];
		snprintf(name, sizeof(name), "steer_in_%u", i);
		dp->inboxes[i] = rte_ring_create(name, DP_INBOX_SIZE, rte_socket_id(),
						 RING_F_SC_DEQ);
		if (!dp->inboxes[i]) {
			log_err("ring %s: %s", name, rte_strerror(rte_errno));
			goto fail_port;
		}
	}
	{
		uint32_t seeds[2];
		memcpy(seeds, dp->secret, sizeof(seeds));
		uint64_t cseeds[2];
		smtp_limits_init(&dp->limits, seeds[0], seeds[1]);
		memcpy(cseeds, dp->secret, sizeof(cseeds));
		dp->limits.clients = cl_create(cseeds[0] ^ cseeds[1] ^ 0x6a09e667f3bcc908ull);
		dp->limits.share = cs_create();	/* inactive until a cluster runs */
		if (!dp->limits.clients || !dp->limits.share) {
			log_err("smtp: no memory for the per-client rate table");
			goto fail_port;
		}
	}
	tsc0 = dp->tsc0 = rte_get_tsc_cycles();
	RTE_LCORE_FOREACH_WORKER(lcore_id) {
		struct lcore_ctx *lc;
		if (w == conf->workers)
			break;
		lc = rte_zmalloc_socket("lcore_ctx", sizeof(*lc), RTE_CACHE_LINE_SIZE,
					(int)rte_lcore_to_socket_id(lcore_id));
		if (!lc)
			goto fail_port;
		if (setup_worker(dp, lc, lcore_id, w, tsc0) < 0) {
			log_err("lcore %u: set-up failed", lcore_id);
			free_worker(dp, lc);
			goto fail_port;
		}
		dp->workers[w++] = lc;
	}
	dp->nworkers = w;
	/* the services read snapshots through dp->live: a reload frees the
	 * first one, so keep no pointer into it */
	dp->conf.smtp.live = NULL;
	dp->conf.smtp.tls = NULL;
	dp->conf.smtp.engine.policy = NULL;
	return dp;

fail_port:
	for (unsigned i = 0; i < w; i++)
		free_worker(dp, dp->workers[i]);
	cl_free(dp->limits.clients);
	cs_free(dp->limits.share);
	free_hubs(dp);
	free_rings(dp);
	tls_ctx_free(dp->tls_client);
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

void dp_drain(struct dataplane *dp)
{
	atomic_store(&dp->drain, true);
}

unsigned dp_smtp_active(struct dataplane *dp)
{
	unsigned n = 0;

	for (unsigned i = 0; i < dp->nworkers; i++)
		n += smtp_service_active(dp->workers[i]->smtp);
	return n;
}

struct ask_port *dp_ask_port(struct dataplane *dp, unsigned worker)
{
	return worker < dp->nworkers ? dp->workers[worker]->asks : NULL;
}

struct dpsock_hub *dp_dpsock_hub(struct dataplane *dp, unsigned index)
{
	return index < DP_DPSOCK_HUBS ? dp->hubs[index] : NULL;
}

const struct dlv_port *dp_delivery_port(struct dataplane *dp, unsigned worker)
{
	return worker < dp->nworkers && dp->workers[worker]->dlv ?
	       dlv_get_port(dp->workers[worker]->dlv) : NULL;
}

void dp_smtp_set_refuse_new(struct dataplane *dp, bool on)
{
	atomic_store_explicit(&dp->limits.refuse_new, on, memory_order_relaxed);
}

bool dp_smtp_refuse_new(const struct dataplane *dp)
{
	return atomic_load_explicit(&((struct dataplane *)dp)->limits.refuse_new,
				    memory_order_relaxed);
}

const struct client_limits *dp_client_limits(struct dataplane *dp, uint64_t *now_ns)
{
	struct tsc_clock c;

	tsc_clock_init(&c, rte_get_tsc_hz());
	*now_ns = tsc_clock_ns(&c, rte_get_tsc_cycles() - dp->tsc0);
	return dp->limits.clients;
}

struct client_share *dp_client_share(struct dataplane *dp)
{
	return dp->limits.share;
}

unsigned dp_workers(const struct dataplane *dp)
{
	return dp->nworkers;
}

unsigned dp_log_drain(struct dataplane *dp)
{
	unsigned n = 0;

	for (unsigned i = 0; i < dp->nworkers; i++)
		n += log_ring_drain(dp->workers[i]->log, LOG_RING_SLOTS);
	return n;
}

void dp_halt(struct dataplane *dp)
{
	if (!dp || dp->halted)
		return;
	dp->halted = true;
	atomic_store(&dp->quit, true);
	if (dp->started)
		rte_eal_mp_wait_lcore();
}

/* ---- SMTP settings snapshots (smtp_service.h) ---- */

static void live_free_all(struct dataplane *dp)
{
	while (dp->retired) {
		struct smtp_live *l = dp->retired;
		dp->retired = l->retired_next;
		smtp_live_free(l);
	}
	smtp_live_free(atomic_load(&dp->live.cur));
	atomic_store(&dp->live.cur, NULL);
}

uint64_t dp_smtp_publish(struct dataplane *dp, struct smtp_live *l)
{
	struct smtp_live *old = atomic_load_explicit(&dp->live.cur, memory_order_relaxed);

	l->gen = ++dp->live_gen;
	dp->live_st[0]++;
	atomic_init(&l->sessions, 0);
	l->retired_next = NULL;
	atomic_store_explicit(&dp->live.cur, l, memory_order_release);
	if (old) {
		old->retired_next = dp->retired;
		dp->retired = old;
	}
	return l->gen;
}

/* The oldest generation some worker lcore may still take new references
 * from: the smallest seen. */
static uint64_t live_min_seen(struct dataplane *dp)
{
	uint64_t min = UINT64_MAX;

	for (unsigned i = 0; i < dp->nworkers; i++) {
		struct smtp_service *svc = dp->workers[i] ? dp->workers[i]->smtp : NULL;
		uint64_t seen;
		if (!svc)
			continue;
		seen = smtp_service_live_seen(svc);
		if (seen < min)
			min = seen;
	}
	return min;
}

unsigned dp_smtp_reclaim(struct dataplane *dp)
{
	struct smtp_live **pp = &dp->retired;
	uint64_t min;
	unsigned left = 0;

	if (!dp->retired)
		return 0;
	min = live_min_seen(dp);
	while (*pp) {
		struct smtp_live *l = *pp;
		/* every lcore uses a later one (so takes no new reference to
		 * l), and no session holds l: nothing can read it again */
		if (min > l->gen &&
		    atomic_load_explicit(&l->sessions, memory_order_acquire) == 0) {
			*pp = l->retired_next;
			smtp_live_free(l);
			dp->live_st[1]++;
			continue;
		}
		left++;
		pp = &l->retired_next;
	}
	return left;
}

const struct smtp_live *dp_smtp_live(const struct dataplane *dp)
{
	return atomic_load_explicit(&dp->live.cur, memory_order_relaxed);
}

void dp_stop(struct dataplane *dp)
{
	if (!dp || dp->stopped)
		return;
	dp->stopped = true;
	dp_halt(dp);
	for (unsigned i = 0; i < dp->nworkers; i++)
		free_worker(dp, dp->workers[i]);
	free_hubs(dp);
	live_free_all(dp);
	cl_free(dp->limits.clients);
	cs_free(dp->limits.share);
	tls_ctx_free(dp->tls_client);
	port_close(&dp->port);
	free_rings(dp);
	rte_mempool_free(dp->port.pool);
	rte_eal_cleanup();
	free(dp);
}

/* Sum one counter group over workers [w0, w1) into out[]. */
static void sum_group(struct dataplane *dp, unsigned w0, unsigned w1, size_t off, unsigned n,
		      uint64_t *out)
{
	memset(out, 0, n * sizeof(*out));
	for (unsigned i = w0; i < w1; i++)
		stats_add(out, (const char *)dp->workers[i] + off, n);
}

/* Every group the worker lcores keep, summed over workers [w0, w1): their
 * counters, and the gauges of what they hold. */
static void visit_lcores(struct dataplane *dp, unsigned w0, unsigned w1, stats_visit_fn fn,
			 void *user)
{
	uint64_t v[128];

	_Static_assert(sizeof(struct net_stats) / 8 <= 128 &&
		       sizeof(struct tcp_stats) / 8 <= 128 &&
		       sizeof(struct udp_stats) / 8 <= 128 &&
		       sizeof(struct dpsock_lcore_stats) / 8 <= 128, "grow v[]");
	sum_group(dp, w0, w1, offsetof(struct lcore_ctx, ns.stats), net_stat_count, v);
	stats_visit(fn, user, "net", net_stat_names, v, net_stat_count);
	sum_group(dp, w0, w1, offsetof(struct lcore_ctx, stats), lcore_stat_count, v);
	stats_visit(fn, user, "lcore", lcore_stat_names, v, lcore_stat_count);
	sum_group(dp, w0, w1, offsetof(struct lcore_ctx, imp_rx.stats), impair_stat_count, v);
	stats_visit(fn, user, "impair_rx", impair_stat_names, v, impair_stat_count);
	sum_group(dp, w0, w1, offsetof(struct lcore_ctx, imp_tx.stats), impair_stat_count, v);
	stats_visit(fn, user, "impair_tx", impair_stat_names, v, impair_stat_count);
	memset(v, 0, sizeof(v));
	for (unsigned i = w0; i < w1; i++)
		stats_add(v, &dp->workers[i]->log->stats, log_ring_stat_count);
	stats_visit(fn, user, "log", log_ring_stat_names, v, log_ring_stat_count);
	memset(v, 0, sizeof(v));
	for (unsigned i = w0; i < w1; i++)
		stats_add(v, ask_port_stats(dp->workers[i]->asks), ask_stat_count);
	stats_visit(fn, user, "ask", ask_stat_names, v, ask_stat_count);
	sum_group(dp, w0, w1, offsetof(struct lcore_ctx, steer.stats), steer_stat_count, v);
	stats_visit(fn, user, "steer", steer_stat_names, v, steer_stat_count);
	memset(v, 0, sizeof(v));
	for (unsigned i = w0; i < w1; i++)
		stats_add(v, tcp_stack_stats(dp->workers[i]->tcp), tcp_stat_count);
	stats_visit(fn, user, "tcp", tcp_stat_names, v, tcp_stat_count);
	memset(v, 0, sizeof(v));
	for (unsigned i = w0; i < w1; i++)
		stats_add(v, udp_stack_stats(dp->workers[i]->udp), udp_stat_count);
	stats_visit(fn, user, "udp", udp_stat_names, v, udp_stat_count);
	memset(v, 0, sizeof(v));
	for (unsigned i = w0; i < w1; i++)
		stats_add(v, dpsock_lcore_get_stats(dp->workers[i]->dpsock),
			  dpsock_lcore_stat_count);
	stats_visit(fn, user, "dpsock", dpsock_lcore_stat_names, v,
		    dpsock_lcore_stat_count);
	{
		static const char *const gauge_names[] = { "tcp_conns", "tcp_mbufs_held",
			"udp_socks", "udp_mbufs_held", "dpsock_evt_slots_free" };
		uint64_t g[5] = { 0 };
		for (unsigned i = w0; i < w1; i++) {
			g[0] += tcp_stack_conn_count(dp->workers[i]->tcp);
			g[1] += tcp_stack_mbufs_held(dp->workers[i]->tcp);
			g[2] += udp_stack_sock_count(dp->workers[i]->udp);
			g[3] += udp_stack_mbufs_held(dp->workers[i]->udp);
			g[4] += dpsock_lcore_free_slots(dp->workers[i]->dpsock);
		}
		stats_visit(fn, user, "gauge", gauge_names, g, 5);
	}
	if (dp->workers[0] && dp->workers[0]->smtp) {
		static const char *const smtp_gauge_names[] = { "sessions", "inflight",
								"body_chunks_used" };
		uint64_t g[3] = { 0, 0, 0 };
		_Static_assert(sizeof(struct smtp_stats) / 8 <= 128 &&
			       sizeof(struct smtp_service_stats) / 8 <= 128, "grow v[]");
		memset(v, 0, sizeof(v));
		for (unsigned i = w0; i < w1; i++)
			stats_add(v, smtp_service_engine_stats(dp->workers[i]->smtp), smtp_stat_count);
		stats_visit(fn, user, "smtp", smtp_stat_names, v, smtp_stat_count);
		memset(v, 0, sizeof(v));
		for (unsigned i = w0; i < w1; i++) {
			stats_add(v, smtp_service_get_stats(dp->workers[i]->smtp),
				  smtp_service_stat_count);
			smtp_service_gauges(dp->workers[i]->smtp, &g[0], &g[1], &g[2]);
		}
		stats_visit(fn, user, "smtpd", smtp_service_stat_names, v,
			    smtp_service_stat_count);
		stats_visit(fn, user, "smtp_gauge", smtp_gauge_names, g, 3);
	}
	if (dp->nworkers && dp->workers[0]->dlv) {
		static const char *const dlv_gauge_names[] = { "conns_open", "conns_idle",
							       "jobs_held" };
		uint64_t g[3] = { 0, 0, 0 };
		_Static_assert(sizeof(struct dlv_stats) / 8 <= 128 &&
			       sizeof(struct smtp_client_stats) / 8 <= 128, "grow v[]");
		memset(v, 0, sizeof(v));
		for (unsigned i = w0; i < w1; i++) {
			stats_add(v, dlv_get_stats(dp->workers[i]->dlv), dlv_stat_count);
			dlv_gauges(dp->workers[i]->dlv, &g[0], &g[1], &g[2]);
		}
		stats_visit(fn, user, "delivery", dlv_stat_names, v, dlv_stat_count);
		memset(v, 0, sizeof(v));
		for (unsigned i = w0; i < w1; i++)
			stats_add(v, dlv_client_stats(dp->workers[i]->dlv), smtp_client_stat_count);
		stats_visit(fn, user, "smtp_client", smtp_client_stat_names, v,
			    smtp_client_stat_count);
		stats_visit(fn, user, "delivery_gauge", dlv_gauge_names, g, 3);
	}
	if (dp->workers[0] && dp->workers[0]->echo) {
		memset(v, 0, sizeof(v));
		for (unsigned i = w0; i < w1; i++)
			stats_add(v, echo_get_stats(dp->workers[i]->echo), echo_stat_count);
		stats_visit(fn, user, "echo", echo_stat_names, v, echo_stat_count);
	}
}

/* What no one lcore owns: the mbuf pool, the dpsock hubs, the port. */
static void visit_shared(struct dataplane *dp, stats_visit_fn fn, void *user)
{
	uint64_t v[128];
	struct rte_eth_stats es;
	static const char *const port_names[] = { "ipackets", "opackets", "ibytes",
		"obytes", "imissed", "ierrors", "oerrors", "rx_nombuf" };
	static const char *const gauge_names[] = { "mbufs_free", "dpsock_socks",
		"dpsock_req_slots_free" };
	uint64_t g[3] = { rte_mempool_avail_count(dp->port.pool), 0, 0 };

	_Static_assert(sizeof(struct dpsock_hub_stats) / 8 <= 128, "grow v[]");
	memset(v, 0, sizeof(v));
	for (unsigned i = 0; i < DP_DPSOCK_HUBS; i++)
		stats_add(v, dpsock_hub_get_stats(dp->hubs[i]), dpsock_hub_stat_count);
	stats_visit(fn, user, "dpsock_hub", dpsock_hub_stat_names, v,
		    dpsock_hub_stat_count);
	for (unsigned i = 0; i < DP_DPSOCK_HUBS; i++) {
		g[1] += dpsock_hub_open_count(dp->hubs[i]);
		g[2] += dpsock_hub_free_slots(dp->hubs[i]);
	}
	stats_visit(fn, user, "gauge", gauge_names, g, 3);
	if (dp->limits.clients) {	/* per-client rates: clients busy now */
		static const char *const cl_names[] = { "tracked" };
		uint64_t now, cv[1];
		dp_client_limits(dp, &now);
		cv[0] = cl_tracked(dp->limits.clients, now);
		stats_visit(fn, user, "clients", cl_names, cv, 1);
	}
	{	/* maintenance drain (dp_smtp_set_refuse_new): 1 while on */
		static const char *const drain_names[] = { "active" };
		uint64_t dv[1] = { dp_smtp_refuse_new(dp) };
		stats_visit(fn, user, "drain", drain_names, dv, 1);
	}
	{	/* reloads' SMTP snapshots: published - freed - 0 or 1 still wait */
		static const char *const live_names[] = { "published", "freed" };
		uint64_t lv[2] = { dp->live_st[0], dp->live_st[1] };
		stats_visit(fn, user, "smtp_live", live_names, lv, 2);
	}
	if (rte_eth_stats_get(dp->port.port_id, &es) == 0) {
		uint64_t pv[] = { es.ipackets, es.opackets, es.ibytes, es.obytes,
				  es.imissed, es.ierrors, es.oerrors, es.rx_nombuf };
		stats_visit(fn, user, "port", port_names, pv, 8);
	}
}

void dp_stats_visit(struct dataplane *dp, stats_visit_fn fn, void *user)
{
	visit_lcores(dp, 0, dp->nworkers, fn, user);
	visit_shared(dp, fn, user);
	/* Per lcore too, as groups of their own: tests check that every
	 * lcore did its share. */
	for (unsigned i = 0; i < dp->nworkers; i++) {
		char g[32];
		if (dp->workers[i]->echo) {
			snprintf(g, sizeof(g), "echo%u", i);
			stats_visit(fn, user, g, echo_stat_names,
				    STATS_VALUES(echo_get_stats(dp->workers[i]->echo)), echo_stat_count);
		}
		snprintf(g, sizeof(g), "steer%u", i);
		stats_visit(fn, user, g, steer_stat_names,
			    STATS_VALUES(&dp->workers[i]->steer.stats), steer_stat_count);
	}
}

void dp_stats_visit_worker(struct dataplane *dp, unsigned worker, stats_visit_fn fn, void *user)
{
	if (worker < dp->nworkers)
		visit_lcores(dp, worker, worker + 1, fn, user);
}

void dp_stats_visit_shared(struct dataplane *dp, stats_visit_fn fn, void *user)
{
	visit_shared(dp, fn, user);
}

unsigned dp_worker_lcore(const struct dataplane *dp, unsigned worker)
{
	return worker < dp->nworkers ? dp->workers[worker]->lcore_id : 0;
}
