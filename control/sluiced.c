/*
 * sluiced.c - the appliance daemon: configuration, start-up, the main lcore's
 * control loop, and shutdown.
 *
 *   sluiced [-c FILE]              run (built-in default config without -c)
 *   sluiced --check-config FILE    validate FILE, print every error, exit 0/1
 *   sluiced --print-config [-c F]  print the effective configuration
 *
 * Signals are blocked in every thread (EAL's included, which inherit the
 * mask) and read from a signalfd in the main loop, so shutdown runs as plain
 * code rather than in a handler: SIGTERM/SIGINT stop the workers after their
 * current burst, close the port and exit 0.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "common/log.h"
#include "control/config.h"
#include "control/ctl_server.h"
#include "dataplane/dataplane.h"

#define SLUICE_VERSION "0.1.0"
#define MAIN_POLL_MS 200

/* Everything the main lcore's loop works with. */
struct daemon {
	struct sluice_config cfg;
	struct dataplane *dp;
	struct ctl_server ctl;
	int sig_fd;
	int stop;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: sluiced [-c FILE]\n"
		"       sluiced --check-config FILE\n"
		"       sluiced --print-config [-c FILE]\n");
}

static int load_config(struct sluice_config *cfg, const char *path)
{
	struct config_errors errs;
	int r = path ? config_load_file(cfg, path, &errs) : config_load_default(cfg, &errs);

	for (unsigned i = 0; i < errs.count; i++)
		fprintf(stderr, "%s\n", errs.msg[i]);
	if (errs.count >= CONFIG_MAX_ERRORS)
		fprintf(stderr, "(more errors not shown)\n");
	return r;
}

static int ctl_handle(void *ctx, const char *cmd, const char *args, FILE *out)
{
	struct daemon *d = ctx;

	if (strcmp(cmd, "ping") == 0) {
		fputs("\"pong\":true", out);
		return 0;
	}
	if (strcmp(cmd, "version") == 0) {
		fputs("\"version\":\"" SLUICE_VERSION "\"", out);
		return 0;
	}
	if (strcmp(cmd, "stats") == 0) {
		fputs("\"stats\":{", out);
		dp_stats_write(d->dp, out, true);
		fputc('}', out);
		return 0;
	}
	fprintf(out, "unknown command '%s' (try: ping, version, stats)", cmd);
	(void)args;
	return -1;
}

static void main_loop(struct daemon *d)
{
	struct pollfd pfds[2 + CTL_MAX_CLIENTS];

	while (!d->stop) {
		unsigned n = 0;
		pfds[n++] = (struct pollfd){ .fd = d->sig_fd, .events = POLLIN };
		n += ctl_server_pollfds(&d->ctl, pfds + n);
		if (poll(pfds, n, MAIN_POLL_MS) < 0) {
			if (errno == EINTR)
				continue;
			log_err("main loop: poll: %s", strerror(errno));
			break;
		}
		if (pfds[0].revents) {
			struct signalfd_siginfo si;
			if (read(d->sig_fd, &si, sizeof(si)) == sizeof(si)) {
				log_notice("signal %s: stopping", strsignal((int)si.ssi_signo));
				d->stop = 1;
			}
		}
		ctl_server_service(&d->ctl, pfds + 1, n - 1);
	}
}

static int run(struct daemon *d, const char *argv0)
{
	sigset_t set;
	char ip[INET_ADDRSTRLEN];

	log_init("sluiced", (enum log_level)d->cfg.log.level, d->cfg.log.syslog);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGPIPE);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
		return 1;
	sigdelset(&set, SIGPIPE);
	d->sig_fd = signalfd(-1, &set, SFD_CLOEXEC);
	if (d->sig_fd < 0) {
		log_err("signalfd: %s", strerror(errno));
		return 1;
	}

	d->dp = dp_init(&d->cfg.dp, argv0);
	if (!d->dp)
		return 1;
	if (ctl_server_open(&d->ctl, d->cfg.control.socket, ctl_handle, d) < 0) {
		dp_stop(d->dp);
		return 1;
	}
	if (dp_start(d->dp) < 0) {
		ctl_server_close(&d->ctl);
		dp_stop(d->dp);
		return 1;
	}
	inet_ntop(AF_INET, &d->cfg.dp.addr.ip, ip, sizeof(ip));
	log_notice("sluiced %s ready: %s/%d, %u worker lcore(s), control %s", SLUICE_VERSION,
		   ip, d->cfg.net_prefix, d->cfg.dp.workers, d->cfg.control.socket);

	main_loop(d);

	ctl_server_close(&d->ctl);
	dp_stop(d->dp);
	close(d->sig_fd);
	log_notice("sluiced stopped");
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", required_argument, NULL, 'C' },
		{ "print-config", no_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = NULL, *check = NULL;
	bool print = false;
	struct daemon *d;
	int o, r;

	while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (o) {
		case 'c': path = optarg; break;
		case 'C': check = optarg; break;
		case 'P': print = true; break;
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
	r = run(d, argv[0]);
	free(d);
	return r;
}
