/*
 * config_check.h - everything about a configuration that start-up would
 * refuse, checked in one place.
 *
 * config.c checks each key on its own (type, range, syntax). This module
 * checks what needs several keys or the machine: the CPU plan ([lcores]
 * cores/main_core/workers against the CPUs online), relay policy
 * (mynetworks, relay_domains), the SMTP engine's limits and hostname, the
 * retry schedules and per-destination policy, the delivery service and its
 * scheduler ([delivery]: EHLO name, CA file, memory), the DNS servers and TTL
 * bounds, the relayhost and every line of the routes file, TLS files, the
 * queue and control socket paths, the control socket's groups and mode.
 * Both `sluiced --check-config` (the unit's ExecStartPre) and start-up call
 * config_check(), so a file that passes the check cannot then be refused by
 * the daemon for something the check could have seen.
 *
 * It also resolves what start-up uses: the CPU plan (cfg->dp.plan, and
 * cfg->dp.workers from it), the SMTP engine settings, and the retry and
 * per-destination policies (built by the same code the check runs).
 */
#ifndef SLUICE_CONFIG_CHECK_H
#define SLUICE_CONFIG_CHECK_H

#include <sched.h>

#include "control/config.h"
#include "control/ctl_server.h"
#include "control/dest.h"
#include "control/retry.h"
#include "control/dns.h"
#include "control/route.h"
#include "control/sched.h"
#include "dataplane/smtp/delivery.h"
#include "dataplane/smtp/smtp_server.h"

/* The machine the configuration is checked against (tests inject one). */
struct config_machine {
	cpu_set_t online;	/* CPUs online */
	cpu_set_t allowed;	/* CPUs this process may run on */
};
/* Read this machine. 0 or -errno. */
int config_machine_read(struct config_machine *m);

/*
 * Check c against m (NULL: this machine), appending "file:line: key:
 * message" errors to errs, and resolve c->dp.plan and c->dp.workers.
 * 0 when clean, -1 with errors.
 */
int config_check(struct sluice_config *c, const struct config_machine *m,
		 struct config_errors *errs);

/* The SMTP engine settings of c (policy left NULL: the caller owns it). */
void config_smtp_engine(const struct sluice_config *c, struct smtp_conf *e);

/* The per-client rate limits of c ([limits]); mynetworks stands for
 * "mynetworks" in the exempt list (may be NULL). 0, or -1 with err. */
int config_client_limits(const struct sluice_config *c, const struct smtp_policy *mynetworks,
			 struct cl_conf *out, char *err, size_t errlen);

/* The retry policy of c ([retry]). 0, or -1 with err filled and *key
 * naming the [retry] key at fault. */
int config_retry_policy(const struct sluice_config *c, struct retry_policy *p,
			const char **key, char *err, size_t errlen);

/* Where double bounces go ([retry] double_bounce_to; "postmaster": [smtp]
 * postmaster): a mailbox, or "" (they are dropped). */
const char *config_double_bounce_to(const struct sluice_config *c);

/* The per-destination policy of c ([dest], and [retry] min_backoff as the
 * dead-destination backoff). 0, or -1 with err filled and *key naming the
 * [dest] key at fault. */
int config_dest_policy(const struct sluice_config *c, struct dest_policy *p,
		       const char **key, char *err, size_t errlen);
/* The delivery service's settings of c ([delivery]; the EHLO name [smtp]
 * hostname when helo_name is empty). tls is left NULL: the caller makes
 * the client context (tls_ctx_client with [delivery] tls_ca_file). */
void config_delivery(const struct sluice_config *c, struct dlv_conf *d);
/* The scheduler's settings of c ([delivery]); jobs_max from the workers
 * and their connections (c->dp.workers as config_check resolved it). */
void config_sched(const struct sluice_config *c, struct sched_conf *s);
/* The resolver's settings of c ([dns]). */
void config_dns(const struct sluice_config *c, struct dns_conf *d);
/* [cluster] (cluster.h); name defaults to [smtp] hostname. */
struct cluster_conf;
void config_cluster(const struct sluice_config *c, struct cluster_conf *k);
/* The router's settings of c: [routes] relayhost, our host name
 * ([smtp] hostname) and address ([net] address), for backup-MX pruning. */
void config_route(const struct sluice_config *c, struct route_conf *r);
/* The control socket's settings of c ([control]: path, mode, the groups by
 * id). 0, or -1 with err: a group that does not exist. */
int config_control(const struct sluice_config *c, struct ctl_server_conf *s, char *err,
		   size_t errlen);
/* Load [routes] routes_file into rt (nothing when it is empty). The number
 * of routes, or -1 with err. */
int config_routes_load(const struct sluice_config *c, struct router *rt, char *err, size_t n);
/* The routes file's text (malloc, at most 4 MiB, no NUL), or NULL with err
 * (err "" when [routes] routes_file is empty). */
char *config_routes_text(const struct sluice_config *c, char *err, size_t n);

#endif
