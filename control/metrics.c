/*
 * metrics.c - the Prometheus exporter and the DPDK telemetry commands. See
 * metrics.h.
 *
 * One scrape: a struct prom (control/prom.h) filled from the stats walks,
 * each counter named through names[] below (exact group.name rows first,
 * then the default), written out as text.
 */
#include "control/metrics.h"
#include "control/drain_hook.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>
#include <rte_telemetry.h>

#include "common/histo.h"
#include "common/log.h"
#include "control/ctl_server.h"
#include "control/plane.h"
#include "control/sched.h"
#include "dataplane/dataplane.h"
#include "queue/queue.h"

#define CTL_SNAP_MAX 64
#define HTTP_CONNECTIONS 8	/* scrapers at once */
#define HTTP_TIMEOUT_S 10

/* ---- names ------------------------------------------------------------------------- */

/*
 * Counters with a Prometheus name of their own: natural families with a
 * label (direction, status, state), the gauges (a value now, not a count
 * since start), and the headline counters. Everything else is
 * sluice_<group>_<name>_total.
 */
#define C PROM_COUNTER
#define G PROM_GAUGE
static const struct {
	const char *group, *name, *family;
	enum prom_type type;
	const char *label, *value;
	const char *help;
} names[] = {
	{ "smtpd", "queue_ok", "sluice_messages_received_total", C, NULL, NULL,
	  "Messages taken in over SMTP: durable in the queue and answered 250." },
	{ "sched", "rcpt_sent", "sluice_delivery_recipients_total", C, "status", "sent",
	  "Recipients' delivery attempts by outcome (sent, deferred, bounced, expired)." },
	{ "sched", "rcpt_deferred", "sluice_delivery_recipients_total", C, "status", "deferred", NULL },
	{ "sched", "rcpt_bounced", "sluice_delivery_recipients_total", C, "status", "bounced", NULL },
	{ "sched", "rcpt_expired", "sluice_delivery_recipients_total", C, "status", "expired", NULL },
	{ "tcp", "seg_in", "sluice_tcp_segments_total", C, "direction", "in",
	  "TCP segments received (in) and sent (out)." },
	{ "tcp", "seg_out", "sluice_tcp_segments_total", C, "direction", "out", NULL },
	{ "tcp", "bytes_in", "sluice_tcp_bytes_total", C, "direction", "in",
	  "TCP payload bytes received (in) and sent (out)." },
	{ "tcp", "bytes_out", "sluice_tcp_bytes_total", C, "direction", "out", NULL },
	{ "tcp", "rst_in", "sluice_tcp_resets_total", C, "direction", "in",
	  "TCP resets received (in) and sent (out)." },
	{ "tcp", "rst_out", "sluice_tcp_resets_total", C, "direction", "out", NULL },
	{ "net", "rx_frames", "sluice_net_frames_total", C, "direction", "in",
	  "Ethernet frames into and out of the network stacks." },
	{ "net", "tx_frames", "sluice_net_frames_total", C, "direction", "out", NULL },
	{ "net", "rx_bytes", "sluice_net_bytes_total", C, "direction", "in",
	  "Ethernet bytes into and out of the network stacks." },
	{ "net", "tx_bytes", "sluice_net_bytes_total", C, "direction", "out", NULL },
	/* "us" would read as microseconds (promtool's lint) */
	{ "net", "eth_drop_not_for_us", "sluice_net_eth_drop_not_for_this_host_total", C, NULL,
	  NULL, "Frames dropped: addressed to another host (Ethernet)." },
	{ "net", "arp_drop_not_for_us", "sluice_net_arp_drop_not_for_this_host_total", C, NULL,
	  NULL, "ARP packets dropped: about another host's address." },
	{ "net", "ip_drop_not_for_us", "sluice_net_ip_drop_not_for_this_host_total", C, NULL,
	  NULL, "IPv4 packets dropped: addressed to another host." },
	{ "net", "ip6_drop_not_for_us", "sluice_net_ip6_drop_not_for_this_host_total", C, NULL,
	  NULL, "IPv6 packets dropped: addressed to another host or group." },
	/* "ns" would read as nanoseconds */
	{ "net", "nd_rx_ns", "sluice_net_nd_rx_solicitations_total", C, NULL, NULL,
	  "Neighbor Solicitations received." },
	{ "net", "nd_tx_ns", "sluice_net_nd_tx_solicitations_total", C, NULL, NULL,
	  "Neighbor Solicitations sent." },
	{ "udp", "rx", "sluice_udp_datagrams_total", C, "direction", "in",
	  "UDP datagrams received (in) and sent (out)." },
	{ "udp", "tx", "sluice_udp_datagrams_total", C, "direction", "out", NULL },
	{ "udp", "rx_bytes", "sluice_udp_bytes_total", C, "direction", "in",
	  "UDP payload bytes received (in) and sent (out)." },
	{ "udp", "tx_bytes", "sluice_udp_bytes_total", C, "direction", "out", NULL },
	{ "port", "ipackets", "sluice_port_packets_total", C, "direction", "in",
	  "Packets through the DPDK port (its driver's counters)." },
	{ "port", "opackets", "sluice_port_packets_total", C, "direction", "out", NULL },
	{ "port", "ibytes", "sluice_port_bytes_total", C, "direction", "in",
	  "Bytes through the DPDK port (its driver's counters)." },
	{ "port", "obytes", "sluice_port_bytes_total", C, "direction", "out", NULL },
	{ "gauge", "tcp_conns", "sluice_tcp_connections", G, NULL, NULL,
	  "TCP connections held (TIME_WAIT included)." },
	{ "gauge", "tcp_mbufs_held", "sluice_tcp_mbufs_held", G, NULL, NULL,
	  "Mbufs held in TCP send and out-of-order queues." },
	{ "gauge", "udp_socks", "sluice_udp_sockets", G, NULL, NULL, "UDP sockets open." },
	{ "gauge", "udp_mbufs_held", "sluice_udp_mbufs_held", G, NULL, NULL,
	  "Mbufs held in UDP receive queues." },
	{ "gauge", "dpsock_evt_slots_free", "sluice_dpsock_event_slots_free", G, NULL, NULL,
	  "Free event slots of the lcores' dpsock service." },
	{ "gauge", "mbufs_free", "sluice_mbufs_free", G, NULL, NULL, "Free mbufs in the pool." },
	{ "gauge", "dpsock_socks", "sluice_dpsock_sockets", G, NULL, NULL,
	  "Control threads' sockets on the dataplane." },
	{ "gauge", "dpsock_req_slots_free", "sluice_dpsock_request_slots_free", G, NULL, NULL,
	  "Free request slots of the control threads' dpsock hubs." },
	{ "smtp_gauge", "sessions", "sluice_smtp_sessions", G, NULL, NULL,
	  "Inbound SMTP sessions open." },
	{ "smtp_gauge", "inflight", "sluice_smtp_messages_in_flight", G, NULL, NULL,
	  "Messages handed to the queue and not yet answered." },
	{ "smtp_gauge", "body_chunks_used", "sluice_smtp_body_chunks_used", G, NULL, NULL,
	  "16 KiB chunks of the lcores' body arenas in use." },
	{ "delivery_gauge", "conns_open", "sluice_delivery_connections", G, "state", "open",
	  "Outbound SMTP connections (open: all; idle: waiting for a next message)." },
	{ "delivery_gauge", "conns_idle", "sluice_delivery_connections", G, "state", "idle", NULL },
	{ "smtpd", "rej_conn_rate", "sluice_client_rate_refusals_total", C, "limit", "connections",
	  "Refusals by the per-client rates of [limits]: connections (421 at connect), "
	  "messages (452 to MAIL), recipients (452 to RCPT), auth_failures (421 to AUTH, "
	  "before the hash), user (an AUTH user's rates)." },
	{ "smtpd", "rej_msg_rate", "sluice_client_rate_refusals_total", C, "limit", "messages", NULL },
	{ "smtpd", "rej_rcpt_rate", "sluice_client_rate_refusals_total", C, "limit", "recipients",
	  NULL },
	{ "smtpd", "rej_auth_rate", "sluice_client_rate_refusals_total", C, "limit", "auth_failures",
	  NULL },
	{ "smtpd", "rej_user_rate", "sluice_client_rate_refusals_total", C, "limit", "user", NULL },
	{ "drain_hook", "running", "sluice_drain_hook_running", G, NULL, NULL,
	  "1 while the operator's drain hook runs." },
	{ "drain", "active", "sluice_drain_active", G, NULL, NULL,
	  "1 while the box is drained (sluicectl drain): new SMTP sessions get 421 4.3.2." },
	{ "smtpd", "refused_draining", "sluice_smtp_refused_draining_total", C, NULL, NULL,
	  "SMTP connections answered 421 4.3.2 because the box is drained." },
	{ "clients", "tracked", "sluice_clients_tracked", G, NULL, NULL,
	  "Client addresses and users with events in their [limits] allowance now (buckets "
	  "of the shared table; colliding ones count once)." },
	{ "delivery_gauge", "jobs_held", "sluice_delivery_jobs_held", G, NULL, NULL,
	  "Delivery jobs on the lcores." },
	{ "ctl", "clients", "sluice_ctl_clients", G, NULL, NULL,
	  "Clients connected to the control socket." },
	{ "ctl", "out_bytes", "sluice_ctl_reply_bytes_pending", G, NULL, NULL,
	  "Control socket reply bytes waiting to be written." },
	{ "route", "jobs", "sluice_route_lookups_in_progress", G, NULL, NULL,
	  "Route lookups in progress." },
	{ "route", "routes", "sluice_route_static_routes", G, NULL, NULL,
	  "Static routes held (routes file and route set)." },
	{ "dns", "cache_entries", "sluice_dns_cache_entries", G, NULL, NULL,
	  "Answers in the resolver's cache." },
	{ "dns", "cache_bytes", "sluice_dns_cache_bytes", G, NULL, NULL,
	  "Memory of the resolver's cache." },
	{ "dns", "queries_in_flight", "sluice_dns_queries_in_flight", G, NULL, NULL,
	  "DNS queries waiting for an answer." },
	{ "dns", "waiters", "sluice_dns_waiters", G, NULL, NULL,
	  "Lookups waiting for a query in flight." },
	{ "cluster", "connected", "sluice_cluster_connected", G, NULL, NULL,
	  "1 while this box reaches the cluster's Redis ([cluster] redis)." },
	{ "cluster", "boxes", "sluice_cluster_boxes", G, NULL, NULL,
	  "Boxes registered in the cluster, as last read." },
	{ "cluster", "dests", "sluice_cluster_destinations", G, NULL, NULL,
	  "Destinations the cluster module follows (leases, shared rates)." },
	{ "sched", "dsn_inflight", "sluice_sched_notices_in_flight", G, NULL, NULL,
	  "DSNs handed to the queue and not yet durable." },
	{ "sched", "notices_waiting", "sluice_sched_parts_waiting_for_notice", G, NULL, NULL,
	  "Message parts whose results wait for their DSN." },
	{ "sched", "xfer_active", "sluice_sched_transfer_active", G, NULL, NULL,
	  "1 while a transfer of the queue to another box is on (sluicectl transfer)." },
	{ "sched", "active", "sluice_sched_active_parts", G, NULL, NULL,
	  "Message parts in the scheduler's memory." },
	{ "sched", "queued", "sluice_sched_queued_items", G, NULL, NULL,
	  "Delivery items waiting for their destination." },
	{ "sched", "lookups", "sluice_sched_route_lookups_in_progress", G, NULL, NULL,
	  "The scheduler's route lookups in progress." },
	{ "sched", "jobs_lent", "sluice_sched_jobs_lent", G, NULL, NULL,
	  "Delivery jobs lent to the lcores." },
	{ "sched", "body_arena_bytes", "sluice_sched_body_arena_bytes", G, NULL, NULL,
	  "Bytes of the scheduler's body arena in use." },
	{ "sched", "idle_conns", "sluice_sched_idle_connections", G, NULL, NULL,
	  "Idle outbound connections in the scheduler's inventory." },
	{ "sched", "dests", "sluice_sched_destinations", G, NULL, NULL,
	  "Destinations in the scheduler's memory." },
};
#undef C
#undef G

void metrics_name(const char *group, const char *name, struct metrics_name *out)
{
	char g[64], n[64];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(names[i].group, group) == 0 && strcmp(names[i].name, name) == 0) {
			snprintf(out->family, sizeof(out->family), "%s", names[i].family);
			out->type = names[i].type;
			out->label = names[i].label;
			out->value = names[i].value;
			out->help = names[i].help;
			/* a family's later rows leave its help to the first */
			for (size_t j = 0; !out->help && j < i; j++)
				if (strcmp(names[j].family, names[i].family) == 0)
					out->help = names[j].help;
			return;
		}
	prom_sanitize(group, g, sizeof(g));
	prom_sanitize(name, n, sizeof(n));
	snprintf(out->family, sizeof(out->family), "sluice_%s_%s_total", g, n);
	out->type = PROM_COUNTER;
	out->label = out->value = NULL;
	out->help = NULL;	/* the caller says "group.name" */
}

int metrics_listen_parse(const char *s, uint32_t *addr_be, uint16_t *port)
{
	const char *colon = strrchr(s, ':');
	char ip[INET_ADDRSTRLEN];
	struct in_addr a;
	char *end;
	unsigned long p;

	if (!colon || colon == s || (size_t)(colon - s) >= sizeof(ip) || !colon[1])
		return -1;
	memcpy(ip, s, (size_t)(colon - s));
	ip[colon - s] = '\0';
	if (inet_pton(AF_INET, ip, &a) != 1)
		return -1;
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (errno || *end || p == 0 || p > 65535 || colon[1] == '-' || colon[1] == '+')
		return -1;
	*addr_be = a.s_addr;
	*port = (uint16_t)p;
	return 0;
}

/* ---- the exporter ------------------------------------------------------------------ */

struct metrics {
	struct metrics_conf conf;
	struct metrics_src src;
	struct MHD_Daemon *http;
	uint64_t ctl_snap[CTL_SNAP_MAX];	/* main thread writes, others read */
	unsigned ctl_n;
	uint64_t scrapes, scrape_failures, dest_timeouts;	/* atomics */
	uint64_t reloads_ok, reloads_refused, reload_ok_time;	/* atomics */
};

static uint64_t rd(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void inc(uint64_t *p)
{
	__atomic_fetch_add(p, 1, __ATOMIC_RELAXED);
}

/* What a stats walk adds to: the document, the labels every sample of this
 * walk carries (lcore, shard), and whether anything failed. */
struct walk {
	struct prom *p;
	struct prom_label labels[PROM_LABELS_MAX];
	unsigned nlabels;
	bool failed;
};

static void walk_add(void *user, const char *group, const char *name, uint64_t value)
{
	struct walk *w = user;
	struct metrics_name mn;
	struct prom_label l[PROM_LABELS_MAX];
	unsigned n = w->nlabels;
	char help[160];

	metrics_name(group, name, &mn);
	if (!mn.help) {
		snprintf(help, sizeof(help), "Sluice counter %s.%s (as sluicectl stats shows it).",
			 group, name);
		mn.help = help;
	}
	memcpy(l, w->labels, n * sizeof(l[0]));
	if (mn.label && n < PROM_LABELS_MAX)
		l[n++] = (struct prom_label){ mn.label, mn.value };
	if (prom_add_u64(w->p, mn.family, mn.type, mn.help, l, n, value) < 0)
		w->failed = true;
}

/* The commit histogram of one shard at power-of-two bounds, 16 us to 34 s. */
static int add_commit_histo(struct prom *p, const struct histo *h, const struct prom_label *l)
{
	enum { LO = 14, HI = 35, NB = HI - LO + 1 };
	double le[NB];
	uint64_t counts[NB], count = 0;

	for (unsigned i = 0; i < HISTO_BUCKETS; i++)
		count += h->b[i];	/* from the buckets: consistent with them */
	for (unsigned k = 0; k < NB; k++) {
		uint64_t bound = (1ull << (LO + k)) - 1;
		le[k] = (double)(bound + 1) / 1e9;
		counts[k] = histo_count_le(h, bound);
	}
	return prom_add_histogram(p, "sluice_queue_commit_seconds",
				  "Time of the queue shard's group commits, from the write "
				  "transaction's start to its commit's return (sync included).",
				  l, 1, le, counts, NB, count, (double)h->sum / 1e9);
}

static void collect_queue(struct metrics *m, struct walk *w)
{
	struct queue *q = m->src.queue;

	for (unsigned s = 0; s < queue_nshards(q); s++) {
		struct queue_shard_stats st;
		struct queue_depth dq;
		struct histo *h = malloc(sizeof(*h));
		char shard[16];

		snprintf(shard, sizeof(shard), "%u", s);
		w->labels[0] = (struct prom_label){ "shard", shard };
		w->nlabels = 1;
		queue_stats(q, s, &st);
		stats_visit(walk_add, w, "queue", queue_shard_stat_names, STATS_VALUES(&st),
			    sizeof(st) / sizeof(uint64_t));
		if (queue_depth(q, s, &dq) == QUEUE_OK) {
			if (prom_add_u64(w->p, "sluice_queue_depth", PROM_GAUGE,
					 "Message parts in the queue shard (held, in delivery and "
					 "not yet sealed ones included).", w->labels, 1,
					 dq.messages) < 0 ||
			    prom_add_u64(w->p, "sluice_queue_due", PROM_GAUGE,
					 "Message parts in the shard's due index (due now or later, "
					 "or in delivery).", w->labels, 1, dq.due) < 0)
				w->failed = true;
		} else {
			w->failed = true;
		}
		if (!h) {
			w->failed = true;
		} else {
			queue_commit_histo(q, s, h);
			if (add_commit_histo(w->p, h, w->labels) < 0)
				w->failed = true;
			free(h);
		}
	}
	w->nlabels = 0;
}

static void collect_dests(struct metrics *m, struct walk *w)
{
	unsigned max = m->conf.top_destinations;
	struct sched_dest_count *top;
	int n;

	if (max == 0)
		return;
	top = calloc(max, sizeof(*top));
	if (!top) {
		w->failed = true;
		return;
	}
	n = plane_dest_top(m->src.plane, top, max, METRICS_PLANE_WAIT_MS);
	if (n < 0)
		inc(&m->dest_timeouts);
	for (int i = 0; i < n; i++) {
		struct prom_label l = { "destination", top[i].name };
		if (prom_add_u64(w->p, "sluice_destination_deferred_total", PROM_COUNTER,
				 "Recipients deferred at the destination (a 4xx, or dead) since "
				 "the scheduler has it in memory; the top destinations only.",
				 &l, 1, top[i].deferred) < 0 ||
		    prom_add_u64(w->p, "sluice_destination_queued", PROM_GAUGE,
				 "Delivery items waiting for the destination.", &l, 1,
				 top[i].queued) < 0 ||
		    prom_add_u64(w->p, "sluice_destination_in_flight", PROM_GAUGE,
				 "Deliveries to the destination under way.", &l, 1,
				 top[i].in_flight) < 0 ||
		    prom_add_u64(w->p, "sluice_destination_dead", PROM_GAUGE,
				 "1 while the destination is dead (backing off), else 0.", &l, 1,
				 top[i].dead) < 0)
			w->failed = true;
	}
	free(top);
}

int metrics_collect(struct metrics *m, struct prom *p)
{
	struct walk w = { .p = p };
	struct prom_label ver = { "version", m->conf.version ? m->conf.version : "unknown" };

	if (prom_add_u64(p, "sluice_build_info", PROM_GAUGE,
			 "Always 1; the version of sluiced as a label.", &ver, 1, 1) < 0)
		w.failed = true;
	if (m->src.dp) {
		struct dataplane *dp = m->src.dp;
		for (unsigned i = 0; i < dp_workers(dp); i++) {
			char lc[16];
			snprintf(lc, sizeof(lc), "%u", dp_worker_lcore(dp, i));
			w.labels[0] = (struct prom_label){ "lcore", lc };
			w.nlabels = 1;
			dp_stats_visit_worker(dp, i, walk_add, &w);
		}
		w.nlabels = 0;
		dp_stats_visit_shared(dp, walk_add, &w);
	}
	if (m->src.queue)
		collect_queue(m, &w);
	if (m->src.plane) {
		plane_stats_visit(m->src.plane, walk_add, &w);
		collect_dests(m, &w);
	}
	if (m->src.drain_hook)
		drain_hook_stats_visit(m->src.drain_hook, walk_add, &w);
	{
		uint64_t v[CTL_SNAP_MAX];
		unsigned n = __atomic_load_n(&m->ctl_n, __ATOMIC_ACQUIRE);
		for (unsigned i = 0; i < n; i++)
			v[i] = rd(&m->ctl_snap[i]);
		stats_visit(walk_add, &w, "ctl", ctl_server_stat_names, v, n);
	}
	{
		struct prom_label ok = { "result", "ok" }, bad = { "result", "refused" };
		if (prom_add_u64(p, "sluice_config_reloads_total", PROM_COUNTER,
				 "Configuration reloads (sluicectl reload, SIGHUP): applied (ok) or "
				 "refused whole (refused).", &ok, 1, rd(&m->reloads_ok)) < 0 ||
		    prom_add_u64(p, "sluice_config_reloads_total", PROM_COUNTER, "", &bad, 1,
				 rd(&m->reloads_refused)) < 0 ||
		    prom_add_u64(p, "sluice_config_last_reload_success_timestamp_seconds",
				 PROM_GAUGE, "When the last reload was applied (unix time; 0: "
				 "none since start).", NULL, 0, rd(&m->reload_ok_time)) < 0)
			w.failed = true;
	}
	if (prom_add_u64(p, "sluice_metrics_scrapes_total", PROM_COUNTER,
			 "Scrapes of this exporter (before this one).", NULL, 0,
			 rd(&m->scrapes)) < 0 ||
	    prom_add_u64(p, "sluice_metrics_destination_timeouts_total", PROM_COUNTER,
			 "Scrapes whose destination list the control plane did not give in time.",
			 NULL, 0, rd(&m->dest_timeouts)) < 0)
		w.failed = true;
	inc(&m->scrapes);
	if (w.failed)
		inc(&m->scrape_failures);
	return w.failed ? -1 : 0;
}

/* The control socket's counters, in its table's order, into the snapshot. */
struct ctl_copy {
	uint64_t *v;
	unsigned i, max;
};

static void ctl_copy_one(void *user, const char *group, const char *name, uint64_t value)
{
	struct ctl_copy *c = user;

	if (c->i < c->max)
		__atomic_store_n(&c->v[c->i++], value, __ATOMIC_RELAXED);
}

void metrics_ctl_snapshot(struct metrics *m, const struct ctl_server *s)
{
	struct ctl_copy c = { m ? m->ctl_snap : NULL, 0, CTL_SNAP_MAX };

	if (!m || !s)
		return;
	ctl_server_stats_visit(s, ctl_copy_one, &c);
	__atomic_store_n(&m->ctl_n, c.i, __ATOMIC_RELEASE);
}

void metrics_reload_counted(struct metrics *m, bool ok)
{
	if (!m)
		return;
	inc(ok ? &m->reloads_ok : &m->reloads_refused);
	if (ok)
		__atomic_store_n(&m->reload_ok_time, (uint64_t)time(NULL), __ATOMIC_RELAXED);
}

/* ---- HTTP -------------------------------------------------------------------------- */

static enum MHD_Result respond(struct MHD_Connection *c, unsigned code, const char *type,
			       char *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
	enum MHD_Result ret;

	if (!r) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_len, void **req)
{
	static char not_found[] = "not found: the metrics are at /metrics\n";
	static char bad_method[] = "only GET\n";
	static char failed[] = "the scrape failed (out of memory)\n";
	struct metrics *m = cls;
	struct prom *p;
	char *text;
	size_t len;

	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return respond(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", bad_method,
			       strlen(bad_method), MHD_RESPMEM_PERSISTENT);
	if (*upload_len)	/* a GET with a body: ignore it */
		*upload_len = 0;
	if (strcmp(url, "/metrics") != 0)
		return respond(c, MHD_HTTP_NOT_FOUND, "text/plain", not_found, strlen(not_found),
			       MHD_RESPMEM_PERSISTENT);
	p = prom_new();
	if (!p)
		return respond(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain", failed,
			       strlen(failed), MHD_RESPMEM_PERSISTENT);
	/* a partial scrape is still served: what failed is counted in
	 * sluice_metrics_* and left out */
	metrics_collect(m, p);
	text = prom_text(p, &len);
	prom_free(p);
	if (!text)
		return respond(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain", failed,
			       strlen(failed), MHD_RESPMEM_PERSISTENT);
	return respond(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, len,
		       MHD_RESPMEM_MUST_FREE);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[256];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	buf[strcspn(buf, "\n")] = '\0';
	log_warn("metrics: %s", buf);
}

static int http_start(struct metrics *m, char *err, size_t errlen)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	uint32_t addr;
	uint16_t port;

	if (metrics_listen_parse(m->conf.listen, &addr, &port) < 0) {
		snprintf(err, errlen, "[metrics] listen: '%s' is not ADDRESS:PORT", m->conf.listen);
		return -1;
	}
	sa.sin_addr.s_addr = addr;
	sa.sin_port = htons(port);
	m->http = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, port,
				   NULL, NULL, on_request, m,
				   MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
				   MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
				   MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONNECTIONS,
				   MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_TIMEOUT_S,
				   MHD_OPTION_END);
	if (!m->http) {
		snprintf(err, errlen, "[metrics] listen: cannot serve HTTP on %s", m->conf.listen);
		return -1;
	}
	return 0;
}

/* ---- DPDK telemetry ---------------------------------------------------------------- */

/* The running exporter for the telemetry callbacks (which carry no context). */
static pthread_mutex_t tel_mu = PTHREAD_MUTEX_INITIALIZER;
static struct metrics *tel_m;
static bool tel_registered;

/* Every counter, summed, as `stats` has them. */
static void walk_sums(struct metrics *m, stats_visit_fn fn, void *user)
{
	if (m->src.dp)
		dp_stats_visit(m->src.dp, fn, user);
	if (m->src.queue) {
		uint64_t sum[sizeof(struct queue_shard_stats) / sizeof(uint64_t)] = { 0 };
		for (unsigned i = 0; i < queue_nshards(m->src.queue); i++) {
			struct queue_shard_stats st;
			queue_stats(m->src.queue, i, &st);
			stats_add(sum, &st, STATS_COUNT(sum));
		}
		stats_visit(fn, user, "queue", queue_shard_stat_names, sum, STATS_COUNT(sum));
	}
	if (m->src.plane)
		plane_stats_visit(m->src.plane, fn, user);
	if (m->src.drain_hook)
		drain_hook_stats_visit(m->src.drain_hook, fn, user);
	if (m->ctl_n) {
		uint64_t v[CTL_SNAP_MAX];
		unsigned n = __atomic_load_n(&m->ctl_n, __ATOMIC_ACQUIRE);
		for (unsigned i = 0; i < n; i++)
			v[i] = rd(&m->ctl_snap[i]);
		stats_visit(fn, user, "ctl", ctl_server_stat_names, v, n);
	}
}

struct tel_walk {
	struct rte_tel_data *d;
	const char *group;	/* NULL: list the groups */
	char seen[64][32];
	unsigned nseen;
};

static void tel_add(void *user, const char *group, const char *name, uint64_t value)
{
	struct tel_walk *t = user;

	if (t->group) {
		if (strcmp(group, t->group) == 0)
			rte_tel_data_add_dict_u64(t->d, name, value);
		return;
	}
	for (unsigned i = 0; i < t->nseen; i++)
		if (strcmp(t->seen[i], group) == 0)
			return;
	if (t->nseen < 64) {
		snprintf(t->seen[t->nseen++], sizeof(t->seen[0]), "%s", group);
		rte_tel_data_add_array_string(t->d, group);
	}
}

static int tel_stats(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct tel_walk *t;
	int rc = -1;

	pthread_mutex_lock(&tel_mu);
	if (tel_m && (t = calloc(1, sizeof(*t)))) {
		t->d = d;
		t->group = params && *params ? params : NULL;
		if (t->group)
			rte_tel_data_start_dict(d);
		else
			rte_tel_data_start_array(d, RTE_TEL_STRING_VAL);
		walk_sums(tel_m, tel_add, t);
		free(t);
		rc = 0;
	}
	pthread_mutex_unlock(&tel_mu);
	return rc;
}

/* The value at quantile q (0..1) of h, as the upper bound of its bucket. */
static uint64_t histo_quantile(const struct histo *h, double q)
{
	uint64_t n = 0, want, seen = 0;

	for (unsigned i = 0; i < HISTO_BUCKETS; i++)
		n += h->b[i];
	if (n == 0)
		return 0;
	want = (uint64_t)(q * (double)n + 0.5);
	if (want == 0)
		want = 1;
	for (unsigned i = 0; i < HISTO_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= want)
			return histo_upper(i);
	}
	return UINT64_MAX;
}

static int tel_queue(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct histo *h = malloc(sizeof(*h));
	int rc = -1;

	pthread_mutex_lock(&tel_mu);
	if (tel_m && tel_m->src.queue && h) {
		struct queue *q = tel_m->src.queue;
		rte_tel_data_start_dict(d);
		rte_tel_data_add_dict_u64(d, "shards", queue_nshards(q));
		for (unsigned s = 0; s < queue_nshards(q); s++) {
			struct rte_tel_data *c = rte_tel_data_alloc();
			struct queue_shard_stats st;
			struct queue_depth dq;
			char key[16];
			if (!c)
				break;
			rte_tel_data_start_dict(c);
			queue_stats(q, s, &st);
			queue_depth(q, s, &dq);
			queue_commit_histo(q, s, h);
			rte_tel_data_add_dict_u64(c, "depth", dq.messages);
			rte_tel_data_add_dict_u64(c, "due", dq.due);
			rte_tel_data_add_dict_u64(c, "messages", st.messages);
			rte_tel_data_add_dict_u64(c, "commits", st.commits);
			rte_tel_data_add_dict_u64(c, "commit_p50_us", histo_quantile(h, 0.5) / 1000);
			rte_tel_data_add_dict_u64(c, "commit_p99_us", histo_quantile(h, 0.99) / 1000);
			snprintf(key, sizeof(key), "shard%u", s);
			rte_tel_data_add_dict_container(d, key, c, 0);
		}
		rc = 0;
	}
	pthread_mutex_unlock(&tel_mu);
	free(h);
	return rc;
}

static int tel_dests(const char *cmd, const char *params, struct rte_tel_data *d)
{
	unsigned max = METRICS_TOP_DEFAULT;
	struct sched_dest_count *top;
	int n = -1;

	if (params && *params) {
		char *end;
		unsigned long v = strtoul(params, &end, 10);
		if (*end || v == 0 || v > PLANE_TOP_MAX)
			return -1;
		max = (unsigned)v;
	}
	top = calloc(max, sizeof(*top));
	if (!top)
		return -1;
	pthread_mutex_lock(&tel_mu);
	if (tel_m && tel_m->src.plane)
		n = plane_dest_top(tel_m->src.plane, top, max, METRICS_PLANE_WAIT_MS);
	pthread_mutex_unlock(&tel_mu);
	if (n >= 0) {
		rte_tel_data_start_dict(d);
		for (int i = 0; i < n; i++) {
			struct rte_tel_data *c = rte_tel_data_alloc();
			if (!c)
				break;
			rte_tel_data_start_dict(c);
			rte_tel_data_add_dict_u64(c, "deferred", top[i].deferred);
			rte_tel_data_add_dict_u64(c, "queued", top[i].queued);
			rte_tel_data_add_dict_u64(c, "in_flight", top[i].in_flight);
			rte_tel_data_add_dict_u64(c, "dead", top[i].dead);
			rte_tel_data_add_dict_container(d, top[i].name, c, 0);
		}
	}
	free(top);
	return n >= 0 ? 0 : -1;
}

static int tel_register(struct metrics *m)
{
	pthread_mutex_lock(&tel_mu);
	tel_m = m;
	pthread_mutex_unlock(&tel_mu);
	if (tel_registered)
		return 0;
	if (rte_telemetry_register_cmd("/sluice/stats", tel_stats,
				       "Sluice's counter groups; with a group (/sluice/stats,tcp) "
				       "its counters, summed over lcores and shards.") < 0 ||
	    rte_telemetry_register_cmd("/sluice/queue", tel_queue,
				       "Sluice's queue shards: depth, due, messages, commits, "
				       "group-commit latency p50/p99 (us).") < 0 ||
	    rte_telemetry_register_cmd("/sluice/dests", tel_dests,
				       "Sluice's destinations with the most deferrals: deferred, "
				       "queued, in flight, dead. Parameter: how many (20).") < 0)
		return -1;
	tel_registered = true;
	return 0;
}

/* ---- start, stop ------------------------------------------------------------------- */

struct metrics *metrics_start(const struct metrics_conf *c, const struct metrics_src *src,
			      char *err, size_t errlen)
{
	struct metrics *m = calloc(1, sizeof(*m));

	if (!m) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	m->conf = *c;
	m->src = *src;
	if (m->conf.top_destinations > PLANE_TOP_MAX)
		m->conf.top_destinations = PLANE_TOP_MAX;
	if (m->conf.listen[0] && http_start(m, err, errlen) < 0) {
		free(m);
		return NULL;
	}
	if (m->conf.telemetry && tel_register(m) < 0) {
		snprintf(err, errlen, "cannot register the /sluice/ telemetry commands");
		metrics_stop(m);
		return NULL;
	}
	return m;
}

void metrics_stop(struct metrics *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&tel_mu);
	if (tel_m == m)
		tel_m = NULL;
	pthread_mutex_unlock(&tel_mu);
	if (m->http)
		MHD_stop_daemon(m->http);
	free(m);
}
