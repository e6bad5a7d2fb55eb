/*
 * sluice_gen.c - sluice-gen: a DPDK SMTP load generator, smart sink and
 * flood tool on Sluice's own stack (issue 14). See bench/README.md for the
 * topologies and gen.h for how the parts fit.
 *
 * The main thread: parse the command line, start the dataplane (EAL, the
 * port, one stack per worker lcore, the daemon's burst loop) with
 * sluice-gen's lcore parts as its application (dataplane.h, dp_app), wait
 * for the link, let the lcores go, print a line a second (and a JSON line
 * to --report), stop on --duration, --count or a signal, and write the
 * final report, the latency CDFs and the digest logs.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <rte_ethdev.h>

#include "bench/gen/gen.h"
#include "common/log.h"
#include "dataplane/cpus.h"
#include "dataplane/dataplane.h"
#include "dataplane/smtp/tls.h"

#define TICK_NS (100 * 1000000ull)
#define DRAIN_S 15.0		/* sessions get this long to finish at stop */
#define SERIES_MAX 86400

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Sum of every lcore's counters (racy reads while they run). */
/* SLUICE_GEN_STATS: the stack's counters, one "group.name value" a line */
static void stats_line(void *user, const char *group, const char *name, uint64_t value)
{
	fprintf(user, "%s.%s %llu\n", group, name, (unsigned long long)value);
}

static void totals(struct gen_run *run, struct gen_stats *t, uint64_t *codes)
{
	memset(t, 0, sizeof(*t));
	if (codes)
		memset(codes, 0, GEN_CODES * sizeof(*codes));
	for (unsigned i = 0; i < run->nworkers; i++) {
		struct gen_lcore *g = run->lc[i];
		if (!g)
			continue;
		stats_add((uint64_t *)(void *)t, &g->st, gen_stat_count);
		if (codes)
			for (unsigned c = 0; c < GEN_CODES; c++)
				codes[c] += g->codes[c];
	}
}

static unsigned clients_active(struct gen_run *run)
{
	unsigned n = 0;

	for (unsigned i = 0; i < run->nworkers; i++)
		if (run->lc[i])
			n += gen_client_active(run->lc[i]->client);
	return n;
}

static bool floods_done(struct gen_run *run)
{
	for (unsigned i = 0; i < run->nworkers; i++)
		if (run->lc[i] && !gen_flood_done(run->lc[i]->flood))
			return false;
	return true;
}

static int link_wait(double secs)
{
	double end = mono_s() + secs;
	uint16_t pid;

	RTE_ETH_FOREACH_DEV(pid) break;
	do {
		struct rte_eth_link l;
		if (rte_eth_link_get_nowait(pid, &l) == 0 && l.link_status == RTE_ETH_LINK_UP)
			return 0;
		usleep(20000);
	} while (mono_s() < end);
	return -1;
}

static void hist_json(FILE *f, const char *name, const struct gen_hist *h)
{
	fprintf(f, "\"%s\":{\"n\":%llu,\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,"
		"\"p999_us\":%.1f,\"max_us\":%.1f,\"mean_us\":%.1f}", name,
		(unsigned long long)h->count, gen_hist_percentile(h, 50) / 1e3,
		gen_hist_percentile(h, 90) / 1e3, gen_hist_percentile(h, 99) / 1e3,
		gen_hist_percentile(h, 99.9) / 1e3, h->count ? h->max / 1e3 : 0.0,
		h->count ? (double)h->sum / (double)h->count / 1e3 : 0.0);
}

static int write_digests(const char *path, struct gen_run *run, bool sink)
{
	FILE *f = fopen(path, "w");
	char hex[2 * GEN_SHA_LEN + 1];

	if (!f) {
		fprintf(stderr, "sluice-gen: %s: %s\n", path, strerror(errno));
		return -1;
	}
	for (unsigned i = 0; i < run->nworkers; i++) {
		const struct gen_diglog *l = sink ? &run->lc[i]->sdig : &run->lc[i]->cdig;
		for (uint64_t k = 0; k < l->n; k++) {
			gen_hex(l->d[k], GEN_SHA_LEN, hex);
			fprintf(f, "%s\n", hex);
		}
	}
	if (fclose(f) != 0) {
		fprintf(stderr, "sluice-gen: %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int write_cdf(const char *dir, const char *name, const struct gen_hist *h)
{
	char path[GEN_PATH_MAX + 64];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.cdf", dir, name);
	if (!(f = fopen(path, "w")) ) {
		fprintf(stderr, "sluice-gen: %s: %s\n", path, strerror(errno));
		return -1;
	}
	gen_hist_write_cdf(h, f);
	return fclose(f);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The median per-second rate, first and last seconds left out. */
static double steady(const double *s, unsigned n)
{
	static double tmp[SERIES_MAX];

	if (n <= 2)
		return n ? s[n - 1] : 0;
	memcpy(tmp, s + 1, (n - 2) * sizeof(double));
	qsort(tmp, n - 2, sizeof(double), cmp_double);
	return tmp[(n - 2) / 2];
}

static void make_conf(const struct gen_opts *o, struct dp_conf *c, struct gen_run *run)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->eal.args, sizeof(c->eal.args), "%s", o->eal_args);
	snprintf(c->eal.vdev, sizeof(c->eal.vdev), "%s", o->vdev);
	snprintf(c->eal.pci, sizeof(c->eal.pci), "%s", o->pci);
	snprintf(c->eal.file_prefix, sizeof(c->eal.file_prefix), "%s", o->file_prefix);
	c->port.rx_desc = 1024;
	c->port.tx_desc = 1024;
	c->port.mbufs = o->mbufs;
	c->port.mbuf_cache = 256;
	c->workers = o->lcores;
	snprintf(c->cores, sizeof(c->cores), "%s", o->cores);
	c->idle = o->busy ? DP_IDLE_BUSY : DP_IDLE_ADAPTIVE;
	c->addr.ip = rte_cpu_to_be_32(o->ip);
	c->addr.netmask = rte_cpu_to_be_32(o->netmask);
	c->addr.gateway = rte_cpu_to_be_32(o->gateway);
	c->addr.mtu = 1500;
	arp_conf_default(&c->arp);
	tcp_conf_default(&c->tcp);
	c->tcp.max_conns = o->tcp_conns ? o->tcp_conns :
		(o->concurrency / o->lcores + 1) * 4 + o->sink_sessions * 2 + 1024;
	c->tcp.msl_ns = o->msl_ms * 1000000ull;
	c->tcp.port_lo = 1024;
	c->tcp.port_hi = 65535;
	c->app.create = gen_lcore_create;
	c->app.poll = gen_lcore_poll;
	c->app.destroy = gen_lcore_destroy;
	c->app.arg = run;
}

static int plan(struct dp_conf *c)
{
	cpu_set_t online, allowed;
	const char *bad;
	char err[256];

	if (cpus_machine(&online, &allowed) < 0 ||
	    cpus_plan(c->cores, c->workers, true, "", &online, &allowed, &c->plan, &bad,
		      err, sizeof(err)) < 0) {
		fprintf(stderr, "sluice-gen: lcores: %s\n", err);
		return -1;
	}
	return 0;
}

static int run_setup(struct gen_run *run, const struct gen_opts *o)
{
	char err[256];
	time_t now = time(NULL);
	struct tm tm;
	uint64_t rnd;

	run->o = o;
	run->nworkers = o->lcores;
	gen_template_init(run->tpl, o->seed);
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (uint64_t)now;
	snprintf(run->run_id, sizeof(run->run_id), "%016llx", (unsigned long long)rnd);
	gmtime_r(&now, &tm);
	strftime(run->date, sizeof(run->date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	run->unix0 = (uint64_t)now;
	run->counted = o->count > 0;
	atomic_init(&run->budget, o->count);
	atomic_init(&run->go, false);
	atomic_init(&run->stop, false);

	smtp_client_conf_default(&run->ccf);
	snprintf(run->ccf.helo, sizeof(run->ccf.helo), "%s", o->helo);
	run->ccf.tls = o->starttls ? SCT_ENCRYPT : SCT_NONE;
	run->ccf.pipelining = o->pipelining;
	run->ccf.chunking = o->chunking;
	run->ccf.t_connect_ns = (uint64_t)(o->connect_timeout_s * 1e9);
	if (o->starttls && !(run->tls_client = tls_ctx_client(NULL, err, sizeof(err)))) {
		fprintf(stderr, "sluice-gen: TLS client context: %s\n", err);
		return -1;
	}

	smtp_conf_default(&run->scf);
	snprintf(run->scf.hostname, sizeof(run->scf.hostname), "%s", o->hostname);
	run->scf.max_size = o->max_size;
	if (o->sink_timeout_s > 0)
		run->scf.timeout_cmd_ns = (uint64_t)(o->sink_timeout_s * 1e9);
	/* the sink takes mail from anyone for anywhere: it is a test next hop */
	if (smtp_policy_init(&run->pol, "0.0.0.0/1 128.0.0.0/1", NULL) < 0) {
		fprintf(stderr, "sluice-gen: sink policy\n");
		return -1;
	}
	run->scf.policy = &run->pol;
	if (o->tls_dir[0] && !(o->hide_caps & GEN_CAP_STARTTLS)) {
		char cert[GEN_PATH_MAX + 16], key[GEN_PATH_MAX + 16];
		snprintf(cert, sizeof(cert), "%s/sink.crt", o->tls_dir);
		snprintf(key, sizeof(key), "%s/sink.key", o->tls_dir);
		if (tls_selfsigned_ensure(cert, key, o->hostname, err, sizeof(err)) < 0 ||
		    !(run->tls_server = tls_ctx_server(cert, key, err, sizeof(err)))) {
			fprintf(stderr, "sluice-gen: sink TLS: %s\n", err);
			return -1;
		}
		run->scf.tls_available = true;
	}
	if ((o->modes & GEN_MODE_FLOOD) && gen_pkt_load(&run->prog, o->profile, err, sizeof(err)) < 0) {
		fprintf(stderr, "sluice-gen: %s\n", err);
		return -1;
	}
	return 0;
}

struct second {
	double t, conn, msg, bytes, sink_msg, frames;
};

int main(int argc, char **argv)
{
	static struct gen_opts o;
	static struct gen_run run;
	static struct second ser[SERIES_MAX];
	static double msg_s[SERIES_MAX], conn_s[SERIES_MAX], sink_s[SERIES_MAX];
	struct dp_conf conf;
	struct dataplane *dp;
	char err[512];
	sigset_t sigs;
	FILE *rep = NULL;
	int r, status = 0;
	double t_go, t_stop = 0, t_last, t_end;
	unsigned nsec = 0;
	struct gen_stats prev, cur;
	uint64_t codes[GEN_CODES];
	bool stopping = false;

	r = gen_opts_parse(&o, argc, argv, err, sizeof(err));
	if (r == 1) {
		gen_opts_usage(argv[0], stdout);
		return 0;
	}
	if (r < 0) {
		fprintf(stderr, "sluice-gen: %s (--help for usage)\n", err);
		return 2;
	}
	log_init("sluice-gen", LOG_LVL_WARN, false);
	if (run_setup(&run, &o) < 0)
		return 1;
	if (o.report_json[0] && !(rep = fopen(o.report_json, "w"))) {
		fprintf(stderr, "sluice-gen: %s: %s\n", o.report_json, strerror(errno));
		return 1;
	}
	make_conf(&o, &conf, &run);
	if (plan(&conf) < 0)
		return 1;
	/* signals reach the main thread only (sigtimedwait below) */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	dp = dp_init(&conf, argv[0]);
	if (!dp)
		return 1;
	if (dp_start(dp) < 0) {
		dp_stop(dp);
		return 1;
	}
	if (link_wait(o.link_wait_s) < 0) {
		fprintf(stderr, "sluice-gen: the link did not come up in %.0f s\n", o.link_wait_s);
		status = 1;
		goto out;
	}
	t_go = t_last = mono_s();
	atomic_store(&run.go, true);
	memset(&prev, 0, sizeof(prev));
	if (!o.quiet)
		printf("# t  conn/s  msg/s  MB/s  ok temp perm lost  sink_msg/s  frames/s  active\n");
	for (;;) {
		struct timespec ts = { 0, (long)TICK_NS };
		siginfo_t si;
		double t;
		int sig = sigtimedwait(&sigs, &si, &ts);

		dp_log_drain(dp);
		t = mono_s();
		if (sig > 0 && !stopping) {
			stopping = true;
			t_stop = t;
			atomic_store(&run.stop, true);
		} else if (sig > 0) {
			break;		/* a second signal: go now */
		}
		if (t - t_last >= 1.0 && nsec < SERIES_MAX) {
			double dt = t - t_last;
			totals(&run, &cur, NULL);
			ser[nsec].t = t - t_go;
			ser[nsec].conn = (cur.conn_ok - prev.conn_ok) / dt;
			ser[nsec].msg = (cur.msg_ok - prev.msg_ok) / dt;
			ser[nsec].bytes = (cur.msg_bytes - prev.msg_bytes) / dt;
			ser[nsec].sink_msg = (cur.sink_msgs - prev.sink_msgs) / dt;
			ser[nsec].frames = (cur.flood_frames - prev.flood_frames) / dt;
			if (!o.quiet)
				printf("%5.1f %7.0f %7.0f %6.2f  %llu %llu %llu %llu  %7.0f  %8.0f  %u\n",
				       ser[nsec].t, ser[nsec].conn, ser[nsec].msg, ser[nsec].bytes / 1e6,
				       (unsigned long long)cur.msg_ok, (unsigned long long)cur.msg_temp,
				       (unsigned long long)cur.msg_perm, (unsigned long long)cur.msg_lost,
				       ser[nsec].sink_msg, ser[nsec].frames, clients_active(&run));
			if (rep) {
				fprintf(rep, "{\"t\":%.2f,\"conn_s\":%.1f,\"msg_s\":%.1f,\"bytes_s\":%.0f,"
					"\"sink_msg_s\":%.1f,\"frames_s\":%.0f,\"msg_ok\":%llu,"
					"\"msg_temp\":%llu,\"msg_perm\":%llu,\"msg_lost\":%llu,"
					"\"msg_started\":%llu,\"sink_msgs\":%llu,\"flood_frames\":%llu,"
					"\"active\":%u}\n", ser[nsec].t, ser[nsec].conn, ser[nsec].msg,
					ser[nsec].bytes, ser[nsec].sink_msg, ser[nsec].frames,
					(unsigned long long)cur.msg_ok, (unsigned long long)cur.msg_temp,
					(unsigned long long)cur.msg_perm, (unsigned long long)cur.msg_lost,
					(unsigned long long)cur.msg_started, (unsigned long long)cur.sink_msgs,
					(unsigned long long)cur.flood_frames, clients_active(&run));
				fflush(rep);
			}
			fflush(stdout);
			nsec++;
			prev = cur;
			t_last = t;
		}
		if (!stopping && o.duration_s > 0 && t - t_go >= o.duration_s) {
			stopping = true;
			t_stop = t;
			atomic_store(&run.stop, true);
		}
		/* the client alone: done once its budget is spent and sessions ended */
		if (!stopping && o.modes == GEN_MODE_CLIENT && run.counted &&
		    atomic_load(&run.budget) == 0 && clients_active(&run) == 0) {
			stopping = true;
			t_stop = t;
			atomic_store(&run.stop, true);
		}
		if (!stopping && o.modes == GEN_MODE_FLOOD && floods_done(&run)) {
			stopping = true;
			t_stop = t;
			atomic_store(&run.stop, true);
		}
		if (stopping && (clients_active(&run) == 0 || t - t_stop > DRAIN_S))
			break;
	}
	t_end = mono_s();
	dp_halt(dp);
	dp_log_drain(dp);
	/* the lcores are stopped: what the drain left unanswered is counted */
	for (unsigned i = 0; i < run.nworkers; i++)
		if (run.lc[i])
			gen_client_unfinished(run.lc[i]->client);

	/* ---- the final report ---- */
	{
		struct gen_hist hc, hg, hd;
		double el = (t_stop ? t_stop : t_end) - t_go;
		char s1[160], s2[160], s3[160];

		totals(&run, &cur, codes);
		gen_hist_init(&hc);
		gen_hist_init(&hg);
		gen_hist_init(&hd);
		for (unsigned i = 0; i < run.nworkers; i++) {
			gen_hist_merge(&hc, &run.lc[i]->h_connect);
			gen_hist_merge(&hg, &run.lc[i]->h_greet);
			gen_hist_merge(&hd, &run.lc[i]->h_data);
		}
		/* a client run that ended on its own: up to the last answer */
		if (el <= 0)
			el = 1e-9;
		for (unsigned i = 0; i < nsec; i++) {
			msg_s[i] = ser[i].msg;
			conn_s[i] = ser[i].conn;
			sink_s[i] = ser[i].sink_msg;
		}
		gen_hist_summary(&hc, s1, sizeof(s1));
		gen_hist_summary(&hg, s2, sizeof(s2));
		gen_hist_summary(&hd, s3, sizeof(s3));
		printf("sluice-gen: %.2f s, %u lcore(s)\n", el, run.nworkers);
		if (o.modes & GEN_MODE_CLIENT) {
			printf("  connections %llu ok, %llu failed; %.1f conn/s\n",
			       (unsigned long long)cur.conn_ok, (unsigned long long)cur.conn_failed,
			       cur.conn_ok / el);
			printf("  messages %llu started, %llu ok (250), %llu 4xx, %llu 5xx, %llu lost; "
			       "%.1f msg/s (steady %.1f), %.2f MB/s\n",
			       (unsigned long long)cur.msg_started, (unsigned long long)cur.msg_ok,
			       (unsigned long long)cur.msg_temp, (unsigned long long)cur.msg_perm,
			       (unsigned long long)cur.msg_lost, cur.msg_ok / el, steady(msg_s, nsec),
			       cur.msg_bytes / el / 1e6);
			printf("  replies:");
			for (unsigned c = 0; c < GEN_CODES; c++)
				if (codes[c])
					printf(" %u=%llu", c, (unsigned long long)codes[c]);
			printf("\n  connect  %s\n  greeting %s\n  data     %s\n", s1, s2, s3);
			if (cur.late_starts)
				printf("  late starts (open loop, no slot): %llu\n",
				       (unsigned long long)cur.late_starts);
			if (cur.msg_unfinished)
				printf("  unfinished (no answer when the %.0f s drain ran out): %llu\n",
				       DRAIN_S, (unsigned long long)cur.msg_unfinished);
			/* a load figure is only worth what was measured: a run in
			 * which nothing was accepted, or messages went unanswered,
			 * must not read as success to a script */
			if (cur.msg_ok == 0) {
				fprintf(stderr, "sluice-gen: no message was answered 250\n");
				status = 3;
			} else if (cur.msg_lost) {
				fprintf(stderr, "sluice-gen: %llu message(s) lost (no answer)\n",
					(unsigned long long)cur.msg_lost);
				status = 3;
			} else if (cur.msg_unfinished) {
				fprintf(stderr, "sluice-gen: %llu message(s) unfinished (no answer "
					"when the drain ran out)\n", (unsigned long long)cur.msg_unfinished);
				status = 3;
			}
		}
		if (o.modes & GEN_MODE_SINK)
			printf("  sink: %llu sessions, %llu messages (%.1f/s), %llu bytes; rcpt 4xx %llu, "
			       "5xx %llu; data 4xx %llu, 5xx %llu; 421 storms %llu+%llu; unmarked %llu; "
			       "timed out %llu\n",
			       (unsigned long long)cur.sink_conns, (unsigned long long)cur.sink_msgs,
			       cur.sink_msgs / el, (unsigned long long)cur.sink_bytes,
			       (unsigned long long)cur.sink_rcpt_temp, (unsigned long long)cur.sink_rcpt_perm,
			       (unsigned long long)cur.sink_data_temp, (unsigned long long)cur.sink_data_perm,
			       (unsigned long long)cur.sink_refused_storm, (unsigned long long)cur.sink_storm_421,
			       (unsigned long long)cur.sink_unmarked, (unsigned long long)cur.sink_timeouts);
		if (o.modes & GEN_MODE_FLOOD)
			printf("  flood: %llu frames, %llu bytes (%.0f frames/s), %llu no mbuf\n",
			       (unsigned long long)cur.flood_frames, (unsigned long long)cur.flood_bytes,
			       cur.flood_frames / el, (unsigned long long)cur.flood_nombuf);
		if (cur.digest_overflow)
			printf("  WARNING: %llu digests not logged (log full)\n",
			       (unsigned long long)cur.digest_overflow);
		if (rep) {
			fprintf(rep, "{\"final\":true,\"elapsed_s\":%.3f,\"lcores\":%u,", el, run.nworkers);
			for (unsigned i = 0; i < gen_stat_count; i++)
				fprintf(rep, "\"%s\":%llu,", gen_stat_names[i],
					(unsigned long long)STATS_VALUES(&cur)[i]);
			fprintf(rep, "\"msg_s\":%.2f,\"msg_s_steady\":%.2f,\"conn_s\":%.2f,"
				"\"conn_s_steady\":%.2f,\"sink_msg_s\":%.2f,\"sink_msg_s_steady\":%.2f,"
				"\"bytes_s\":%.0f,\"codes\":{",
				cur.msg_ok / el, steady(msg_s, nsec), cur.conn_ok / el, steady(conn_s, nsec),
				cur.sink_msgs / el, steady(sink_s, nsec), cur.msg_bytes / el);
			bool first = true;
			for (unsigned c = 0; c < GEN_CODES; c++)
				if (codes[c]) {
					fprintf(rep, "%s\"%u\":%llu", first ? "" : ",", c,
						(unsigned long long)codes[c]);
					first = false;
				}
			fprintf(rep, "},");
			hist_json(rep, "connect", &hc);
			fputc(',', rep);
			hist_json(rep, "greeting", &hg);
			fputc(',', rep);
			hist_json(rep, "data", &hd);
			fprintf(rep, "}\n");
			if (fclose(rep) != 0)
				status = 1;
		}
		if (o.hist_dir[0] && (write_cdf(o.hist_dir, "connect", &hc) < 0 ||
				      write_cdf(o.hist_dir, "greeting", &hg) < 0 ||
				      write_cdf(o.hist_dir, "data", &hd) < 0))
			status = 1;
		if (o.client_digests[0] && write_digests(o.client_digests, &run, false) < 0)
			status = 1;
		if (o.sink_digests[0] && write_digests(o.sink_digests, &run, true) < 0)
			status = 1;
		if (getenv("SLUICE_GEN_STATS")) {
			FILE *f = fopen(getenv("SLUICE_GEN_STATS"), "w");
			if (f) {
				dp_stats_visit(dp, stats_line, f);
				fclose(f);
			}
		}
	}
out:
	dp_stop(dp);
	for (unsigned i = 0; i < run.nworkers; i++) {
		if (!run.lc[i])
			continue;
		free(run.lc[i]->cdig.d);
		free(run.lc[i]->sdig.d);
		free(run.lc[i]);
	}
	tls_ctx_free(run.tls_client);
	tls_ctx_free(run.tls_server);
	fflush(stdout);
	return status;
}
