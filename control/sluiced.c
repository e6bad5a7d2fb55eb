/*
 * sluiced.c - the appliance daemon: configuration, start-up, the main lcore's
 * control loop, and shutdown.
 *
 *   sluiced [-c FILE] [--user NAME] run (built-in default config without -c);
 *                                  with --user, become NAME once started
 *   sluiced --check-config FILE    validate FILE, print every error, exit 0/1
 *   sluiced --print-config [-c F]  print the effective configuration
 *
 * Signals are blocked in every thread (EAL's included, which inherit the
 * mask) and read from a signalfd in the main loop, so shutdown runs as plain
 * code rather than in a handler: SIGTERM/SIGINT stop the workers after their
 * current burst, close the port and exit 0; SIGHUP reloads the
 * configuration as `sluicectl reload` does (control/reload.h). A second sluiced whose control
 * socket answers refuses to start before it touches the port or the spool. SIGIO, which net_tap uses to
 * say "frames are waiting", is left to the worker lcores, which are awake
 * anyway: delivered to the main thread it cost a wake-up per frame.
 *
 * --user NAME (the appliance's unit): EAL needs root's capabilities to take
 * the NIC and the hugepages; nothing after start-up does. Once every thread
 * runs and every file and socket is open, sluiced gives the spool to NAME
 * and becomes NAME (drop_privileges), which leaves it no capability.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "common/clock.h"
#include "common/log.h"
#include "control/config.h"
#include "control/commands.h"
#include "control/drain_hook.h"
#include "control/drain_state.h"
#include "control/config_check.h"
#include "control/ctl_server.h"
#include "control/metrics.h"
#include "control/plane.h"
#include "control/reload.h"
#include "dataplane/dataplane.h"
#include "dataplane/smtp/smtp_policy.h"
#include "dataplane/smtp/tls.h"
#include "queue/queue.h"

#define SLUICE_VERSION "0.1.0"
#define MAIN_POLL_MS 50	/* also how long lcores' log lines may wait */
#define DRAIN_WAIT_MS 5000	/* SMTP sessions get this long to say goodbye */

/* Everything the main lcore's loop works with. */
struct daemon {
	struct sluice_config cfg;
	struct dataplane *dp;
	struct ctl_server *ctl;
	struct ctl_ctx ctl_ctx;		/* what the commands work with (commands.h) */
	struct queue *queue;
	struct tls_ctx *tls;
	struct tls_ctx *tls_client;	/* outbound STARTTLS ([delivery] tls_ca_file) */
	struct plane *plane;		/* resolver, router, delivery scheduler: the
					 * control-plane thread */
	struct smtp_policy policy;	/* read by every lcore's SMTP sessions */
	struct metrics *metrics;	/* Prometheus and DPDK telemetry (metrics.h) */
	struct reloader *reload;	/* reload, SIGHUP, config check (reload.h) */
	struct drain_hook *drain_hook;	/* sluicectl drain's hook (drain_hook.h) */
	struct smtp_live *live;		/* the first SMTP settings snapshot, until
					 * dp_init takes it */
	const char *path;		/* -c FILE; NULL: the built-in default */
	int sig_fd;
	int stop;
	const char *user;	/* --user: whom to become once started, or NULL */
	uid_t uid;		/* ... that user's IDs (looked up before start-up) */
	gid_t gid;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: sluiced [-c FILE] [--user NAME]\n"
		"       sluiced --check-config FILE\n"
		"       sluiced --print-config [-c FILE]\n");
}

/* Parse and check (config_check: the same checks --check-config makes). */
static int load_config(struct sluice_config *cfg, const char *path)
{
	struct config_errors errs;
	int r = path ? config_load_file(cfg, path, &errs) : config_load_default(cfg, &errs);

	if (r == 0)
		r = config_check(cfg, NULL, &errs);

	for (unsigned i = 0; i < errs.count; i++)
		fprintf(stderr, "%s\n", errs.msg[i]);
	if (errs.count >= CONFIG_MAX_ERRORS)
		fprintf(stderr, "(more errors not shown)\n");
	return r;
}

static void plane_answer(void *user, struct ctl_ticket t, bool ok, json_t *value)
{
	struct daemon *d = user;

	ctl_server_answer_json(d->ctl, t, ok, value);
}

/*
 * The SMTP service's pieces that live outside the dataplane: relay policy,
 * engine limits, the queue, and the TLS context (with a self-signed pair
 * made on first start when none is configured). Fills d->cfg.dp.smtp.
 */
static int smtp_setup(struct daemon *d)
{
	const struct sluice_config *c = &d->cfg;
	struct smtp_service_conf *sc = &d->cfg.dp.smtp;
	struct queue_conf qc;
	const char *why;
	char err[256];
	int st;

	memset(sc, 0, sizeof(*sc));
	sc->port = c->smtp.port;
	sc->submission_port = c->smtp.submission_port;
	sc->submissions_port = c->smtp.submissions_port;
	if (sc->port == 0) {
		log_notice("smtp: port 0: no SMTP service");
		return 0;
	}
	if (smtp_policy_init(&d->policy, c->smtp.mynetworks, c->smtp.relay_domains) < 0) {
		log_err("smtp: bad mynetworks or relay_domains (a CIDR or domain is malformed, "
			"or 0.0.0.0/0 would make an open relay)");
		return -1;
	}
	config_smtp_engine(c, &sc->engine);
	sc->engine.policy = &d->policy;
	if (smtp_conf_check(&sc->engine, &why) < 0) {
		log_err("smtp: %s", why);
		return -1;
	}
	if (c->smtp.command_timeout_ns < 300 * NS_PER_SEC)
		log_warn("smtp: command_timeout is below RFC 5321's 5 minutes (tests only)");
	if (strcmp(c->smtp.postmaster, "root@localhost") == 0)
		log_warn("smtp: mail to Postmaster is kept for root@localhost, which no route "
			 "reaches: set [smtp] postmaster to a mailbox someone reads");
	sc->max_sessions = c->smtp.max_sessions;
	sc->max_per_client = c->smtp.max_sessions_per_client;
	/* no lcore holds more sessions than its TCP stack connections */
	sc->lcore_conns = c->dp.tcp.max_conns;
	sc->body_memory = c->smtp.body_memory;
	sc->lifetime_s = c->retry.lifetime_s;
	sc->bounce_lifetime_s = c->retry.bounce_lifetime_s;
	sc->rdns_wait_ns = c->smtp.reverse_lookup_wait_ns;

	queue_conf_defaults(&qc);
	snprintf(qc.dir, sizeof(qc.dir), "%s", c->queue.dir);
	qc.shards = c->queue.shards;
	qc.sync = (enum queue_sync)c->queue.sync;
	if (c->queue.map_size_max)
		qc.map_max = c->queue.map_size_max;
	if (qc.map_size > qc.map_max)
		qc.map_size = qc.map_max;
	d->queue = queue_open(&qc, &st);
	if (!d->queue) {
		log_err("queue: cannot open %s: %s", qc.dir, queue_status_str(st));
		return -1;
	}
	sc->queue = d->queue;

	/* What sessions read, and reloads replace (reload.h): engine limits,
	 * policy and TLS again, as a snapshot the lcores share; after the
	 * queue, whose directory holds the self-signed pair. */
	d->live = reload_smtp_live(c, err, sizeof(err));
	if (!d->live) {
		log_err("smtp: %s", err);
		return -1;
	}
	sc->live = d->live;
	/* the snapshot made the TLS context (reload_smtp_live) and owns it */
	sc->tls = d->live->tls;
	sc->engine.tls_available = d->live->engine.tls_available;
	return 0;
}

/* The delivery service's settings ([delivery]) and its TLS client context,
 * with the CA file tls=verify routes check against. Fills d->cfg.dp.delivery. */
static int delivery_setup(struct daemon *d)
{
	const char *ca = d->cfg.delivery.tls_ca_file;
	char err[256];

	config_delivery(&d->cfg, &d->cfg.dp.delivery);
	d->tls_client = tls_ctx_client(ca[0] ? ca : NULL, err, sizeof(err));
	if (!d->tls_client) {
		log_err("delivery: TLS client context: %s", err);
		return -1;
	}
	d->cfg.dp.delivery.tls = d->tls_client;
	return 0;
}

static void smtp_teardown(struct daemon *d)
{
	if (d->queue)
		queue_close(d->queue);
	d->queue = NULL;
	tls_ctx_free(d->tls);
	d->tls = NULL;
	smtp_live_free(d->live);	/* still ours: dp_init never took it */
	d->live = NULL;
}

/* Say 421 4.3.2 to open sessions and let the queue answer what it has. */
/* A box stopped while drained comes up drained (drain_state.h): the flag
 * is set before the lcores accept anything; the hook is not run again. An
 * unreadable state file counts as drained: the safe side. */
static void drain_restore(struct daemon *d)
{
	char err[256];
	uint64_t since = 0;
	int rc;

	if (!d->cfg.queue.dir[0])
		return;
	rc = drain_state_load(d->cfg.queue.dir, &since, err, sizeof(err));
	if (rc == 0)
		return;
	if (rc < 0)
		log_err("drain: %s: starting drained to be safe", err);
	dp_smtp_set_refuse_new(d->dp, true);
	d->ctl_ctx.drained_since_s = since ? since : clock_real_s();
	log_notice("drain: this box was drained when it stopped (since %llu, %s/%s): new SMTP "
		   "sessions get 421 4.3.2 until `sluicectl undrain`", (unsigned long long)since,
		   d->cfg.queue.dir, DRAIN_STATE_FILE);
}

static void drain_smtp(struct daemon *d)
{
	unsigned left = 0;

	if (!d->cfg.dp.smtp.port)
		return;
	dp_drain(d->dp);
	for (int waited = 0; waited < DRAIN_WAIT_MS; waited += 20) {
		left = dp_smtp_active(d->dp);
		if (left == 0)
			break;
		poll(NULL, 0, 20);
		dp_log_drain(d->dp);
	}
	if (left)
		log_notice("smtp: %u session(s) still open after %d ms; closing anyway",
			   left, DRAIN_WAIT_MS);
}

/*
 * One signal from the signalfd. TERM/INT stop the daemon. HUP is the
 * operator's "reload": the same as `sluicectl reload` (reload.h), its
 * outcome in the log.
 */
static void take_signal(struct daemon *d)
{
	struct signalfd_siginfo si;

	if (read(d->sig_fd, &si, sizeof(si)) != sizeof(si))
		return;
	if (si.ssi_signo == SIGHUP) {
		json_t *res = NULL;
		log_notice("signal %s from pid %u: reloading the configuration",
			   strsignal((int)si.ssi_signo), si.ssi_pid);
		if (d->reload)
			reload_run(d->reload, &res);	/* it logs what happened */
		json_decref(res);
		return;
	}
	log_notice("signal %s: stopping", strsignal((int)si.ssi_signo));
	d->stop = 1;
}

static void main_loop(struct daemon *d)
{
	struct pollfd pfds[2 + CTL_POLLFDS];

	while (!d->stop) {
		unsigned n = 0;
		pfds[n++] = (struct pollfd){ .fd = d->sig_fd, .events = POLLIN };
		pfds[n++] = (struct pollfd){ .fd = plane_reply_fd(d->plane), .events = POLLIN };
		n += ctl_server_pollfds(d->ctl, pfds + n);
		if (poll(pfds, n, MAIN_POLL_MS) < 0) {
			if (errno == EINTR)
				continue;
			log_err("main loop: poll: %s", strerror(errno));
			break;
		}
		if (pfds[0].revents)
			take_signal(d);
		if (pfds[1].revents)
			plane_take_replies(d->plane, plane_answer, d);
		dp_log_drain(d->dp);
		ctl_server_service(d->ctl, pfds + 2, n - 2, clock_mono_ns() / NS_PER_MS);
		metrics_ctl_snapshot(d->metrics, d->ctl);
		dp_smtp_reclaim(d->dp);		/* snapshots reloads replaced */
	}
}

/*
 * Give PATH and what it holds, two levels down (the spool: shard
 * directories and their files), to uid:gid. The queue creates and removes
 * its disk reserve in the shard directories at run time, after the drop.
 */
static int chown_tree(const char *path, uid_t uid, gid_t gid, int depth)
{
	char sub[CONFIG_PATH_MAX + 256];
	struct dirent *e;
	DIR *dir;
	int r = 0;

	if (lchown(path, uid, gid) < 0) {
		log_err("--user: chown %s: %s", path, strerror(errno));
		return -1;
	}
	if (depth == 0 || !(dir = opendir(path)))
		return 0;	/* not a directory (or the last level) */
	while (r == 0 && (e = readdir(dir))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name) >= (int)sizeof(sub)) {
			log_err("--user: path too long under %s", path);
			r = -1;
		} else {
			struct stat st;
			bool sub_dir = e->d_type == DT_DIR ||
				       (e->d_type == DT_UNKNOWN && lstat(sub, &st) == 0 && S_ISDIR(st.st_mode));
			r = chown_tree(sub, uid, gid, sub_dir ? depth - 1 : 0);
		}
	}
	closedir(dir);
	return r;
}

/*
 * Become d->user for good. setresuid() and setresgid() change every thread
 * of the process (glibc applies them to all), and a process whose user IDs
 * all leave 0 loses every capability; no_new_privs keeps any exec from
 * getting one back.
 */
static int drop_privileges(struct daemon *d)
{
	if (chown_tree(d->cfg.queue.dir, d->uid, d->gid, 2) < 0)
		return -1;
	if (setgroups(0, NULL) < 0 || setresgid(d->gid, d->gid, d->gid) < 0 ||
	    setresuid(d->uid, d->uid, d->uid) < 0) {
		log_err("--user %s: cannot become uid %u gid %u: %s", d->user, (unsigned)d->uid,
			(unsigned)d->gid, strerror(errno));
		return -1;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		log_err("--user: PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
		return -1;
	}
	log_notice("running as %s (uid %u), without capabilities", d->user, (unsigned)d->uid);
	return 0;
}

static int run(struct daemon *d, const char *argv0)
{
	sigset_t set;
	char ip[INET_ADDRSTRLEN];
	int failed = 0;

	log_init("sluiced", (enum log_level)d->cfg.log.level, d->cfg.log.syslog);
	if (d->user) {
		struct passwd *pw = getpwnam(d->user);
		if (!pw || pw->pw_uid == 0) {
			log_err("--user %s: %s", d->user, pw ? "is root" : "no such user");
			return 1;
		}
		d->uid = pw->pw_uid;
		d->gid = pw->pw_gid;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGPIPE);
	sigaddset(&set, SIGIO);		/* only worker lcores take it: lcore.c */
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
		return 1;
	sigdelset(&set, SIGPIPE);
	sigdelset(&set, SIGIO);
	d->sig_fd = signalfd(-1, &set, SFD_CLOEXEC);
	if (d->sig_fd < 0) {
		log_err("signalfd: %s", strerror(errno));
		return 1;
	}

	/* The control socket first: if another sluiced answers on it, this
	 * one must not touch the port or the spool. Requests wait in its
	 * backlog until the main loop runs; the commands find the dataplane,
	 * queue and plane in ctl_ctx once they are made. */
	{
		struct ctl_server_conf cc;
		char err[256];
		int e;
		if (config_control(&d->cfg, &cc, err, sizeof(err)) < 0) {
			log_err("control socket: %s", err);
			close(d->sig_fd);
			return 1;
		}
		d->ctl_ctx = (struct ctl_ctx){ .cfg = &d->cfg, .version = SLUICE_VERSION };
		d->ctl = ctl_server_open(&cc, ctl_commands, &d->ctl_ctx, &e);
		if (!d->ctl) {
			close(d->sig_fd);
			return 1;
		}
		d->ctl_ctx.server = d->ctl;
	}
	if (smtp_setup(d) < 0 || delivery_setup(d) < 0) {
		ctl_server_close(d->ctl);
		smtp_teardown(d);
		tls_ctx_free(d->tls_client);
		return 1;
	}
	d->ctl_ctx.queue = d->queue;
	d->dp = dp_init(&d->cfg.dp, argv0);
	if (!d->dp) {
		ctl_server_close(d->ctl);
		smtp_teardown(d);
		return 1;
	}
	d->live = NULL;		/* the dataplane's now (dp_init) */
	drain_restore(d);	/* before the first session can be accepted */
	if (dp_start(d->dp) < 0) {
		ctl_server_close(d->ctl);
		dp_stop(d->dp);
		smtp_teardown(d);
		return 1;
	}
	{
		char err[320];
		if (!d->cfg.delivery.enabled)
			log_notice("delivery: [delivery] enabled = no: mail is kept, not sent");
		d->plane = plane_start(&d->cfg, d->dp, d->queue, err, sizeof(err));
		if (!d->plane) {
			log_err("control plane: %s", err);
			ctl_server_close(d->ctl);
			dp_stop(d->dp);
			smtp_teardown(d);
			tls_ctx_free(d->tls_client);
			return 1;
		}
	}
	d->ctl_ctx.dp = d->dp;
	d->ctl_ctx.plane = d->plane;
	d->drain_hook = drain_hook_new();	/* before metrics, which export its counters */
	if (!d->drain_hook)
		log_err("drain hook: out of memory: drain and undrain will not run it");
	d->ctl_ctx.drain_hook = d->drain_hook;
	{
		struct metrics_conf mc = { .top_destinations = d->cfg.metrics.top_destinations,
					   .version = SLUICE_VERSION, .telemetry = true };
		struct metrics_src ms = { d->dp, d->queue, d->plane, d->drain_hook };
		char err[320];
		snprintf(mc.listen, sizeof(mc.listen), "%s", d->cfg.metrics.listen);
		d->metrics = metrics_start(&mc, &ms, err, sizeof(err));
		if (!d->metrics) {
			log_err("metrics: %s", err);
			ctl_server_close(d->ctl);
			plane_stop(d->plane);
			dp_halt(d->dp);
			plane_free(d->plane);
			smtp_teardown(d);
			dp_stop(d->dp);
			tls_ctx_free(d->tls_client);
			return 1;
		}
		if (mc.listen[0])
			log_notice("metrics: Prometheus exposition at http://%s/metrics", mc.listen);
	}
	{
		struct reload_env re = { .path = d->path, .running = &d->cfg, .dp = d->dp,
					 .plane = d->plane, .metrics = d->metrics };
		d->reload = reloader_create(&re);
		if (!d->reload)
			log_err("reload: out of memory: reloads will be refused");
		d->ctl_ctx.reload = d->reload;
	}
	if (d->user && drop_privileges(d) < 0) {
		d->stop = 1;	/* shut down at once, the usual way */
		failed = 1;
	}
	inet_ntop(AF_INET, &d->cfg.dp.addr.ip, ip, sizeof(ip));
	if (!failed)
		log_notice("sluiced %s ready: %s/%d, %u worker lcore(s), control %s", SLUICE_VERSION,
		   ip, d->cfg.net_prefix, d->cfg.dp.workers, d->cfg.control.socket);

	main_loop(d);

	drain_smtp(d);
	d->ctl_ctx.reload = NULL;
	reloader_free(d->reload);
	d->reload = NULL;
	metrics_stop(d->metrics);	/* it reads the plane, queue and dataplane */
	d->metrics = NULL;
	ctl_server_close(d->ctl);
	d->ctl_ctx.drain_hook = NULL;
	drain_hook_free(d->drain_hook);	/* waits for a hook still running */
	d->drain_hook = NULL;
	/* The plane uses the lcores (its DNS sockets are theirs, delivery jobs
	 * run on them): stop it first; the scheduler writes what came back. */
	plane_stop(d->plane);
	/* Workers stop first, then the queue (it finishes what it was given;
	 * the sessions' memory it points into is freed only after), then the
	 * rest. Delivery jobs still lent point into the scheduler: it goes
	 * once the workers are stopped. */
	dp_halt(d->dp);
	dp_log_drain(d->dp);
	plane_free(d->plane);
	d->plane = NULL;
	smtp_teardown(d);
	dp_stop(d->dp);
	tls_ctx_free(d->tls_client);
	close(d->sig_fd);
	log_notice("sluiced stopped");
	return failed;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", required_argument, NULL, 'C' },
		{ "print-config", no_argument, NULL, 'P' },
		{ "user", required_argument, NULL, 'u' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = NULL, *check = NULL, *user = NULL;
	bool print = false;
	struct daemon *d;
	int o, r;

	while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (o) {
		case 'c': path = optarg; break;
		case 'C': check = optarg; break;
		case 'P': print = true; break;
		case 'u': user = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	d = calloc(1, sizeof(*d));
	if (!d)
		return 1;
	d->user = user;
	if (check) {
		r = load_config(&d->cfg, check);
		if (r == 0)
			printf("%s: ok\n", check);
		free(d);
		return r == 0 ? 0 : 1;
	}
	if (load_config(&d->cfg, path) < 0) {
		free(d);
		return 1;
	}
	if (print) {
		config_write(&d->cfg, stdout);
		free(d);
		return 0;
	}
	d->path = path;
	r = run(d, argv[0]);
	free(d);
	return r;
}
