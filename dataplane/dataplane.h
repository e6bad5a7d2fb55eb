/*
 * dataplane.h - the dataplane as the control layer sees it.
 *
 * dp_init() starts EAL from the configuration, sets up the port, one mbuf
 * pool per socket, and one network stack per worker lcore; dp_start()
 * launches the run-to-completion loops on the worker lcores (the main lcore
 * polls no packets: it runs the control plane); dp_stop() asks the workers
 * to finish their burst, waits for them, and closes the port.
 *
 * Everything mutable lives in the struct dataplane that dp_init returns
 * (per-lcore state inside it); nothing is global.
 */
#ifndef SLUICE_DATAPLANE_H
#define SLUICE_DATAPLANE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/stats.h"
#include "dataplane/cpus.h"
#include "dataplane/dpsock.h"
#include "dataplane/echo.h"
#include "dataplane/impair.h"
#include "dataplane/net/arp.h"
#include "dataplane/net/net_stack.h"
#include "dataplane/net/tcp.h"
#include "dataplane/net/udp.h"
#include "dataplane/smtp/delivery.h"
#include "dataplane/smtp/smtp_service.h"

#define DP_MAX_WORKERS CPUS_MAX_WORKERS
/* dpsock hubs (dpsock.h), one per control thread that needs the data
 * network: 0 the resolver's, 1 the delivery scheduler's. */
#define DP_DPSOCK_HUBS 2

enum dp_idle_policy {
	DP_IDLE_BUSY = 0,	/* spin: lowest latency, one core per lcore */
	DP_IDLE_ADAPTIVE,	/* back off to short sleeps when queues are empty */
};

struct dp_eal_conf {
	char args[512];		/* extra EAL arguments, space-separated */
	char vdev[256];		/* --vdev argument; empty for a physical port */
	char file_prefix[64];	/* --file-prefix, unique per running process */
	char pci[64];		/* PCI address to use (-a); empty with a vdev */
};

struct dp_port_conf {
	uint16_t rx_desc, tx_desc;
	unsigned mbufs;		/* mbufs per socket pool */
	unsigned mbuf_cache;
};

/*
 * An application's own work on every worker lcore, polled by the burst
 * loop after the daemon's services: bench/sluice-gen's load generator,
 * sink and flood run this way on the daemon's own stack and loop (its
 * adaptive idle included). sluiced leaves it empty.
 */
struct dp_app_lcore {
	unsigned worker, lcore_id;
	struct net_stack *ns;		/* the lcore's stack (pool, tx, addresses) */
	struct tcp_stack *tcp;
	const uint64_t *clock_ns;	/* the loop's clock (ns->now_ns) */
};
struct dp_app {
	/* dp_init, once per worker lcore, on the main thread: the lcore's
	 * state, or NULL (dp_init fails). */
	void *(*create)(void *arg, const struct dp_app_lcore *l);
	/* Every burst, on the lcore: the work done (0 lets the loop idle). */
	unsigned (*poll)(void *state);
	/* dp_stop, after the loops ended and before the stack is freed. */
	void (*destroy)(void *state);
	void *arg;
};

struct dp_conf {
	struct dp_eal_conf eal;
	struct dp_port_conf port;
	unsigned workers;		/* worker lcores (the main lcore is extra) */
	char cores[256];		/* worker CPU list ("" = choose), cpus.h */
	char main_core[16];		/* main lcore's CPU ("" = choose) */
	struct cpu_plan plan;		/* resolved from the three above (cpus_plan);
					 * plan.workers == 0: not yet resolved */
	enum dp_idle_policy idle;
	struct net_addr_conf addr;	/* mac all-zero: use the port's own */
	struct arp_conf arp;
	struct impair_conf impair;
	struct tcp_conf tcp;		/* secret and port_ok are set per lcore */
	struct udp_conf udp;		/* max_socks 0: udp_conf_default();
					 * secret and port_ok are set per lcore */
	struct dpsock_conf dpsock;	/* max_socks 0: dpsock_conf_default() */
	struct echo_conf echo;		/* test service, off by default */
	struct smtp_service_conf smtp;	/* port 0: no SMTP service */
	struct dlv_conf delivery;	/* outbound SMTP on every worker (delivery.h).
					 * max_conns 0: dlv_conf_default() with the
					 * EHLO name smtp.engine.hostname; tls NULL:
					 * dp_init makes a client context without
					 * CAs (opportunistic TLS works, `verify`
					 * never passes) */
	struct dp_app app;		/* create NULL: none (sluiced) */
};

struct dataplane;

/* Start EAL and bring the port up (stopped). NULL on failure, logged. */
struct dataplane *dp_init(const struct dp_conf *conf, const char *progname);

/* Launch the worker loops. 0 or -errno. */
int dp_start(struct dataplane *dp);

/* Graceful shutdown, step 1: every lcore stops accepting SMTP connections
 * and gives open sessions "421 4.3.2" (after answering a message the queue
 * still has). Poll dp_smtp_active() until it reaches 0 (or give up). */
void dp_drain(struct dataplane *dp);
/* SMTP connections still open plus messages still with the queue. */
unsigned dp_smtp_active(struct dataplane *dp);
/* Maintenance drain (sluicectl drain / undrain): while on, every lcore
 * answers new SMTP connections "421 4.3.2" at accept (open sessions
 * finish; delivery goes on). A flag the lcores read per accept, apart
 * from the reload snapshots, so a reload keeps it. Any thread. Shown in
 * stats as drain.active. */
void dp_smtp_set_refuse_new(struct dataplane *dp, bool on);
bool dp_smtp_refuse_new(const struct dataplane *dp);

/*
 * Reloads (smtp_service.h, struct smtp_live). dp_init takes the first
 * snapshot from conf->smtp.live (the caller still owns it if dp_init
 * fails). dp_smtp_publish makes l the one new sessions on every lcore use
 * from their next burst on, and takes ownership of it; the one it replaces
 * waits until dp_smtp_reclaim finds that every lcore has passed a burst
 * boundary since and no session still holds it, then is freed (dp_stop
 * frees whatever is left). Main thread only. publish returns l's
 * generation; reclaim how many replaced snapshots still wait.
 */
uint64_t dp_smtp_publish(struct dataplane *dp, struct smtp_live *l);
/* Counted in stats as smtp_live.published (by reloads) and smtp_live.freed. */
unsigned dp_smtp_reclaim(struct dataplane *dp);
/* The snapshot in force (main thread; NULL without SMTP). */
const struct smtp_live *dp_smtp_live(const struct dataplane *dp);

/* Write out the worker lcores' queued log lines (main lcore; they never
 * write to stderr or syslog themselves). Returns the lines written. */
unsigned dp_log_drain(struct dataplane *dp);

/* Stop the worker loops (each finishes its burst and flushes TX) and wait
 * for them; nothing is freed, so submissions still with the queue keep
 * valid memory until the queue is closed. */
void dp_halt(struct dataplane *dp);

/* dp_halt() if not done yet, then free the workers (SMTP sessions still
 * open are reset), close the port, release EAL, free dp. */
void dp_stop(struct dataplane *dp);

#define DP_ASK_SLOTS 1024	/* questions in flight per lcore (ask.h) */
/* Worker `worker`'s questions to the control plane (ask.h: reverse names,
 * ETRN): the control-plane thread takes them and answers. NULL if none. */
struct ask_port;
struct ask_port *dp_ask_port(struct dataplane *dp, unsigned worker);

/* A dpsock hub (index < DP_DPSOCK_HUBS; else NULL) for one control
 * thread: its sockets live on the worker lcores' stacks (dpsock.h). Valid
 * from dp_init to dp_stop; usable before dp_start (requests wait). */
struct dpsock_hub *dp_dpsock_hub(struct dataplane *dp, unsigned index);

/*
 * The delivery scheduler's end of worker `worker`'s delivery service
 * (delivery.h): the job ring it enqueues into (dlv_submit) and the result
 * ring it dequeues from (dlv_reap). NULL past the last worker. Threading:
 * ONE scheduler thread produces every port's jobs and consumes every
 * port's results (the rings are SP/SC). Valid from dp_init to dp_stop;
 * usable before dp_start (jobs wait in the ring). Stop the scheduler before
 * dp_halt: jobs still lent then are never returned.
 */
const struct dlv_port *dp_delivery_port(struct dataplane *dp, unsigned worker);
/* The per-client rate table the lcores share (client_limits.h; NULL:
 * none) and, in *now_ns, the lcores' clock now (what its times are in).
 * Any thread; read only. */
const struct client_limits *dp_client_limits(struct dataplane *dp, uint64_t *now_ns);
/* The message-rate slots a cluster shares (client_share.h): for the
 * cluster thread, which activates them; lives as long as the dataplane. */
struct client_share *dp_client_share(struct dataplane *dp);
/* How many worker lcores (delivery ports) there are. */
unsigned dp_workers(const struct dataplane *dp);

/* Give every counter, summed over the worker lcores, to fn (common/stats.h:
 * group "tcp", name "rx_segments", value). Reads the lcores' counters
 * racily (see common/stats.h). */
void dp_stats_visit(struct dataplane *dp, stats_visit_fn fn, void *user);
/* The same walk in two parts, for an exporter that labels per lcore: the
 * groups one worker keeps (its own values, not summed: net, tcp, smtp...
 * and the gauges of what it holds), and those no worker owns (the mbuf
 * pool, the dpsock hubs, the port). dp_stats_visit gives the sum of the
 * first over all workers, the second, and per-worker copies of a few. */
void dp_stats_visit_worker(struct dataplane *dp, unsigned worker, stats_visit_fn fn, void *user);
void dp_stats_visit_shared(struct dataplane *dp, stats_visit_fn fn, void *user);
/* Worker `worker`'s EAL lcore id (what log lines call "lcore N"). */
unsigned dp_worker_lcore(const struct dataplane *dp, unsigned worker);

#endif
