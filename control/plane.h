/*
 * plane.h - the control-plane thread.
 *
 * The main lcore's loop serves signals and the control socket and must
 * never wait on anything slow. Everything that may (DNS, routing, and with
 * delivery the scheduler) runs on this one thread instead: it owns the
 * resolver (control/dns.h, its sockets on the dataplane's hub 0) and the
 * router (control/route.h), and nothing else touches them.
 *
 * Operators' requests that need them come from the main loop: the control
 * socket's handler (control/commands.c) takes a ticket (ctl_server_defer)
 * and hands the request over with plane_submit(); the plane answers on its
 * own time with a JSON result (jansson); the main loop waits on
 * plane_reply_fd() and passes answers back to the socket with
 * plane_take_replies() (ctl_server_answer_json). Requests and answers are
 * bounded lists under a mutex (control plane only: no lcore ever takes it).
 *
 * With a queue it also runs the delivery scheduler (control/sched.h): one
 * sched_poll per loop, and the loop sleeps no longer than sched_wake_ns
 * says. Stopping takes two steps: plane_stop before the worker lcores
 * stop (the scheduler takes back what it can and writes it), plane_free
 * after (jobs still lent to an lcore point into the scheduler's memory).
 *
 * Requests today, and their results:
 *   route lookup DOMAIN        the next hops for DOMAIN, or the failure
 *                              {"route":{"domain","status","dsn","why",
 *                              "hops":[{"addr","port","pref","tls","mx"}]}}
 *   route set DOMAIN SPEC      a static route at runtime (route.h syntax)
 *                              {"route":{"domain","set":true}}
 *   route clear DOMAIN         {"route":{"domain","cleared":true}}
 *   dns lookup NAME a|aaaa|mx|ptr one resolver lookup (PTR: NAME is an address)
 *                              {"dns":{"name","type","status","ttl","why",
 *                              "records":["addr"|"name"|{"pref","host"}]}}
 *   dns bench N cached|uncached ZONE
 *                              N lookups, timed (bench/dns-bench)
 *                              {"dns_bench":{"lookups","ok","failed","cached",
 *                              "seconds","per_second"}}
 *   route show [DOMAIN]        the static routes (route_visit)
 *                              {"routes":[{"domain","route"}]}
 *   flush [ID... | --domain D | --all]
 *                              make mail due now (and, for a domain or all,
 *                              clear the destinations' backoff); no words:
 *                              all
 *                              {"flush":{"ids":[{"id","due"[,"why"]}],"messages"}},
 *                              {"flush":{"domain","messages"}},
 *                              {"flush":{"all":true,"messages"}}
 *   dest show [KEY]            destinations in memory (dest_view and the
 *                              scheduler's own), or the one named KEY
 *                              {"dests":[...]} (sched_dest_json)
 *   dest clear KEY             end a destination's backoff now
 *                              {"dest":{"name","cleared":true}}
 *   bounce ID [--reason TEXT]  give up on a message now: its undelivered
 *                              recipients fail and its sender gets the DSN
 *                              (exim -Mg; sched_bounce_id)
 *                              {"bounce":{"id","recipients"}}
 *   bounce --domain D [--reason TEXT]
 *                              the same for every message with recipients
 *                              in D, a page of IDs at a time
 *                              {"bounce":{"domain","messages","recipients"}}
 *   suspend DOMAIN [--for T]   sched_suspend_domain {"suspend":{"domain","for"}}
 *   resume DOMAIN              sched_resume_domain {"resume":{"domain","messages"}}
 *   suspend                    {"suspended":[{"domain","since","until"}]}
 *
 * The queue's commands (queue_cmd.h: queue list|summary|stat|show, hold,
 * release, delete) take a request slot here too, for the ticket, but run
 * on the queue thread the plane starts when there is a queue (with
 * delivery on or off), which answers through the same outbox.
 *
 * The mail log (maillog.h) is opened here, before the plane's threads
 * start, and closed by plane_free.
 *
 * Reloads (control/reload.h) hand the plane a struct plane_update with
 * plane_update(): the thread applies it between two passes (routes,
 * relayhost, retry and destination policies, the AUTH users file read
 * again) and frees it.
 */
#ifndef SLUICE_PLANE_H
#define SLUICE_PLANE_H

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

#include "common/stats.h"
#include "control/config.h"
#include "control/ctl_server.h"
#include "control/quota.h"

#include "control/dest.h"
#include "control/retry.h"
#include "control/route.h"

#define PLANE_REQ_MAX 64	/* requests waiting or in progress */

struct plane;
struct sluice_config;
struct dataplane;
struct queue;

/* Start the thread: resolver on the dataplane's hub 0, router with the
 * configured routes, the delivery scheduler on q's mail and the
 * dataplane's delivery ports (q NULL or [delivery] enabled = no: no
 * delivery), and the queue commands' thread (q NULL: none). NULL with err
 * filled on failure. */
struct plane *plane_start(const struct sluice_config *cfg, struct dataplane *dp,
			  struct queue *q, char *err, size_t errlen);
/* Stop the thread (the scheduler quiesces: sched_quiesce) and free the
 * resolver and router. Requests still open are dropped (their clients go
 * when the control socket closes). Before dp_halt. */
void plane_stop(struct plane *p);
/* Free the rest, the scheduler included: after dp_halt. */
void plane_free(struct plane *p);

/* Hand a request over: the command ("route"), its sub-command ("lookup",
 * or NULL) and the argc words after them (["example.com"]); the answer
 * will name ticket t. 0; PLANE_USAGE when the words do not fit the
 * command (the caller answers with its usage); or -1 with err filled
 * (a bad argument, too many requests waiting). */
#define PLANE_USAGE (-2)
int plane_submit(struct plane *p, const char *cmd, const char *sub, int argc, char **argv,
		 struct ctl_ticket t, char *err, size_t errlen);

/* A reload's share for the plane thread, every part already checked. */
struct plane_update {
	struct retry_policy retry;	/* [retry] */
	struct dest_policy dest;	/* [dest] */
	char relayhost[ROUTE_SPEC_MAX];	/* [routes] relayhost, "": MX */
	char *routes_text;		/* the routes file (malloc), NULL: none */
	char routes_name[256];		/* its name, for messages */
	char auth_users[256];		/* [auth] users, read again ("": none) */
	/* [quota]: the limits, the trusted networks they apply to
	 * ([smtp] mynetworks) and the overrides map, read again */
	struct quota_limit quota_user, quota_client;
	char quota_nets[CONFIG_LINE_MAX];
	struct quota_map quota_map;
	uint64_t gen;			/* the reload's number, for the log */
};
/* Free an update (and its routes text). */
void plane_update_free(struct plane_update *u);
/* Hand u over (the plane frees it). The thread applies it at the top of
 * its next loop: route_replace (all or nothing: on failure the old routes
 * stay and it is logged), the policies copied where the scheduler reads
 * them, sched_policy_reloaded. An update the thread has not taken yet is
 * replaced by u. */
void plane_update(struct plane *p, struct plane_update *u);
/* The gen of the last update the thread applied (0: none), and whether
 * its routes went in. */
uint64_t plane_update_applied(struct plane *p, bool *routes_ok);

/* Read the AUTH users file at path again into the auth worker (any thread
 * but the worker's; sluicectl user add/remove). 0 with the user count in
 * *users, or -1 with err (no [auth] users at start-up, or a bad file: the
 * users in force stay). */
int plane_auth_reload(struct plane *p, const char *path, unsigned *users, char *err, size_t n);

/* The quota store (quota.h: daily counts, suspensions), for the control
 * socket's `user` commands on any thread; NULL when there is no queue. */
struct quota *plane_quota(struct plane *p);

/* The [quota] policy of cfg into qs (the map read from its file). 0, or
 * -1 with err. */
int plane_quota_policy(struct quota *qs, const struct sluice_config *cfg, char *err, size_t n);

/* Readable (an eventfd) when answers wait. */
int plane_reply_fd(const struct plane *p);
/* Give every waiting answer to fn (value: the result, or the error as a
 * JSON string; fn takes the reference); returns how many. */
unsigned plane_take_replies(struct plane *p,
			    void (*fn)(void *user, struct ctl_ticket t, bool ok, json_t *value),
			    void *user);

/*
 * The scheduler's destinations with the most recipients deferred
 * (sched_dest_top), at most max (<= PLANE_TOP_MAX), for a thread other than
 * the plane's and the main one (the metrics exporter, DPDK telemetry): the
 * plane answers between two passes; the caller waits at most timeout_ms.
 * How many, or -1 (no answer in time). 0 without delivery.
 */
#define PLANE_TOP_MAX 100
struct sched_dest_count;
int plane_dest_top(struct plane *p, struct sched_dest_count *out, unsigned max,
		   unsigned timeout_ms);

/* The resolver's, router's and scheduler's counters (groups dns, route,
 * rdns, sched) to fn. A snapshot the thread refreshes every loop. */
void plane_stats_visit(struct plane *p, stats_visit_fn fn, void *user);

#endif
