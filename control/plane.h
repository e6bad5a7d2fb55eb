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
 * socket's handler takes a ticket (ctl_server_defer) and hands the request
 * over with plane_submit(); the plane answers on its own time; the main
 * loop waits on plane_reply_fd() and passes answers back to the socket with
 * plane_take_replies(). Requests and answers are bounded lists under a
 * mutex (control plane only: no lcore ever takes it).
 *
 * With a queue it also runs the delivery scheduler (control/sched.h): one
 * sched_poll per loop, and the loop sleeps no longer than sched_wake_ns
 * says. Stopping takes two steps: plane_stop before the worker lcores
 * stop (the scheduler takes back what it can and writes it), plane_free
 * after (jobs still lent to an lcore point into the scheduler's memory).
 *
 * Requests today:
 *   route lookup DOMAIN        the next hops for DOMAIN, or the failure
 *   route set DOMAIN SPEC      a static route at runtime (route.h syntax)
 *   route clear DOMAIN
 *   dns lookup NAME a|mx|ptr   one resolver lookup (PTR: NAME is an address)
 *   dns bench N cached|uncached ZONE
 *                              N lookups, timed (bench/dns-bench)
 *   flush ID | --domain D | --all
 *                              make mail due now (and, for a domain or all,
 *                              clear the destinations' backoff)
 *   dest show [KEY]            destinations in memory (dest_view and the
 *                              scheduler's own), or the one named KEY
 *   dest clear KEY             end a destination's backoff now
 *   bounce ID [--reason TEXT]  give up on a message now: its undelivered
 *                              recipients fail and its sender gets the DSN
 *                              (exim -Mg; sched_bounce_id)
 */
#ifndef SLUICE_PLANE_H
#define SLUICE_PLANE_H

#include <stdbool.h>
#include <stdio.h>

#include "control/ctl_server.h"

#define PLANE_REQ_MAX 64	/* requests waiting or in progress */

struct plane;
struct sluice_config;
struct dataplane;
struct queue;

/* Start the thread: resolver on the dataplane's hub 0, router with the
 * configured routes, and the delivery scheduler on q's mail and the
 * dataplane's delivery ports (q NULL: no delivery). NULL with err filled
 * on failure. */
struct plane *plane_start(const struct sluice_config *cfg, struct dataplane *dp,
			  struct queue *q, char *err, size_t errlen);
/* Stop the thread (the scheduler quiesces: sched_quiesce) and free the
 * resolver and router. Requests still open are dropped (their clients go
 * when the control socket closes). Before dp_halt. */
void plane_stop(struct plane *p);
/* Free the rest, the scheduler included: after dp_halt. */
void plane_free(struct plane *p);

/* Hand a request over ("route", "lookup example.com"). 0, or -1 with err
 * filled (unknown request, bad arguments, too many waiting). */
int plane_submit(struct plane *p, const char *cmd, const char *args, struct ctl_ticket t,
		 char *err, size_t errlen);

/* Readable (an eventfd) when answers wait. */
int plane_reply_fd(const struct plane *p);
/* Give every waiting answer to fn; returns how many. */
unsigned plane_take_replies(struct plane *p,
			    void (*fn)(void *user, struct ctl_ticket t, bool ok, const char *body),
			    void *user);

/* The resolver's, router's and scheduler's counters (groups dns, route,
 * sched), as stats_write writes them. A snapshot the thread refreshes
 * every loop. */
void plane_stats_write(struct plane *p, FILE *out, bool json, bool *first);

#endif
