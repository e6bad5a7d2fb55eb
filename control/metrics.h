/*
 * metrics.h - Sluice's counters for monitoring systems: Prometheus text
 * exposition over HTTP on a management address, and DPDK telemetry.
 *
 * HTTP. `[metrics] listen = 127.0.0.1:9925` (empty: off) is served by
 * libmicrohttpd on a thread of its own (MHD_USE_INTERNAL_POLLING_THREAD),
 * through the kernel's network stack: a management interface, never the
 * DPDK port (config_check refuses the appliance's own [net] address).
 * GET /metrics answers the exposition (control/prom.h); anything else 404.
 *
 * What a scrape holds. Every counter `sluicectl stats` shows, walked
 * through the same visitors (common/stats.h) and named by one table here
 * (metrics_name): a few families get Prometheus names and labels of their
 * own (sluice_messages_received_total, sluice_tcp_segments_total
 * {direction="in"|"out"}, sluice_delivery_recipients_total{status=...},
 * gauges such as sluice_tcp_connections), every other counter is
 * sluice_<group>_<name>_total. Worker lcores' counters carry an
 * lcore="<EAL lcore id>" label (dp_stats_visit_worker: each lcore's own
 * values), the queue's a shard="<i>" label, with per shard the depth
 * (sluice_queue_depth, sluice_queue_due: queue_depth) and the group-commit
 * latency histogram (sluice_queue_commit_seconds: queue_commit_histo, at
 * power-of-two bucket bounds from 16 us to 34 s). The scheduler's top
 * destinations by deferrals ([metrics] top_destinations of them; asked of
 * the control-plane thread, at most METRICS_PLANE_WAIT_MS) give
 * sluice_destination_deferred_total, sluice_destination_queued,
 * sluice_destination_in_flight and sluice_destination_dead with a
 * destination="<key>" label. sluice_build_info, and the exporter's own
 * sluice_metrics_scrapes_total.
 *
 * Thread safety. The exporter's thread reads the worker lcores' counters
 * racily, 64-bit word by word, as the main thread's `stats` does (see
 * common/stats.h); the queue's through queue_stats / queue_depth (a short
 * read transaction) / queue_commit_histo; the plane's from the snapshot it
 * refreshes every loop; the control socket's (which only the main thread
 * may touch) from a copy the main thread makes with
 * metrics_ctl_snapshot() every loop. It takes no lcore's lock (there are
 * none) and calls nothing an lcore runs.
 *
 * DPDK telemetry. The same counters are registered with
 * rte_telemetry_register_cmd, so `dpdk-telemetry.py -f FILE_PREFIX` lists
 * and reads them:
 *   /sluice/stats          the counter groups (net, tcp, smtp, queue, ...)
 *   /sluice/stats,GROUP    that group's counters, summed (as `stats`)
 *   /sluice/queue          per shard: depth, due, commits, commit latency
 *                          p50/p99 (us)
 *   /sluice/dests[,N]      the top N (20) destinations by deferrals
 * DPDK's callbacks carry no context pointer: the one running exporter is
 * kept in a static pointer under a mutex, set by metrics_start and cleared
 * by metrics_stop (the commands then answer an error; DPDK has no way to
 * unregister them).
 */
#ifndef SLUICE_METRICS_H
#define SLUICE_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/stats.h"
#include "control/prom.h"

#define METRICS_PLANE_WAIT_MS 1000
#define METRICS_TOP_DEFAULT 20

struct dataplane;
struct queue;
struct plane;
struct ctl_server;

struct metrics_conf {
	char listen[64];		/* "ADDR:PORT"; "": no HTTP server */
	unsigned top_destinations;	/* destinations in a scrape (<= PLANE_TOP_MAX) */
	const char *version;		/* sluice_build_info{version} */
	bool telemetry;			/* register the /sluice/ telemetry commands */
};

/* Where the counters are (any may be NULL: left out). */
struct drain_hook;

struct metrics_src {
	struct dataplane *dp;
	struct queue *queue;
	struct plane *plane;
	struct drain_hook *drain_hook;	/* may be NULL */
};

/* How a (group, name) counter of the stats walk is exported. */
struct metrics_name {
	char family[160];
	enum prom_type type;		/* PROM_COUNTER or PROM_GAUGE */
	const char *label, *value;	/* one label of its own, or NULL */
	const char *help;
};
/* The family, type, label and help of counter group.name (the table, else
 * sluice_<group>_<name>_total, a counter). Pure. */
void metrics_name(const char *group, const char *name, struct metrics_name *out);

/* "ADDR:PORT" -> an IPv4 address and port. 0 or -1. Pure. */
int metrics_listen_parse(const char *s, uint32_t *addr_be, uint16_t *port);

struct metrics;

/*
 * Start the exporter: the HTTP server when c->listen is set, the telemetry
 * commands when c->telemetry. src is copied. NULL with err on failure
 * (the address cannot be bound...).
 */
struct metrics *metrics_start(const struct metrics_conf *c, const struct metrics_src *src,
			      char *err, size_t errlen);
/* Stop serving (the HTTP thread is joined) and free. NULL is fine. */
void metrics_stop(struct metrics *m);

/* Main thread, every loop: copy the control socket's counters for the
 * exporter (the server may only be touched by its own thread). */
void metrics_ctl_snapshot(struct metrics *m, const struct ctl_server *s);

/* Fill p with one scrape (what GET /metrics answers). 0 or -1. For tests
 * and the HTTP handler. */
int metrics_collect(struct metrics *m, struct prom *p);

/* Count a configuration reload (sluice_config_reloads_total{result}, and
 * the time of the last good one). Main thread. */
void metrics_reload_counted(struct metrics *m, bool ok);

#endif
