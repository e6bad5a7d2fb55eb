/*
 * commands.c - the control socket's commands and their table. See
 * commands.h.
 */
#include "control/commands.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "control/drain_hook.h"
#include "control/drain_state.h"
#include "control/plane.h"
#include "control/quota.h"
#include "control/reload.h"
#include "control/transfer_state.h"
#include "control/users.h"
#include "dataplane/dataplane.h"
#include "queue/queue.h"

/* ---- answered at once -------------------------------------------------------------- */

static int cmd_help(struct ctl_ctx *c, int argc, char **argv, json_t **result)
{
	return ctl_cmd_help(ctl_commands, argc, argv, result);
}

static int cmd_ping(struct ctl_ctx *c, int argc, char **argv, json_t **result)
{
	if (argc)
		return CTL_USAGE;
	*result = json_pack("{s:b}", "pong", 1);
	return *result ? 0 : -1;
}

static int cmd_version(struct ctl_ctx *c, int argc, char **argv, json_t **result)
{
	if (argc)
		return CTL_USAGE;
	*result = json_pack("{s:s,s:i}", "version", c->version, "protocol", CTL_PROTOCOL);
	return *result ? 0 : -1;
}

/* The counters as members "group.name": N of one JSON object. */
struct stats_obj {
	json_t *obj;
	bool failed;
};

static void stats_add_member(void *user, const char *group, const char *name, uint64_t v)
{
	struct stats_obj *so = user;
	char key[128];

	snprintf(key, sizeof(key), "%s.%s", group, name);
	if (json_object_set_new(so->obj, key,
				json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v)) < 0)
		so->failed = true;
}

/* The queue's counters, summed over its shards. */
static void queue_stats_visit(struct queue *q, stats_visit_fn fn, void *user)
{
	uint64_t sum[sizeof(struct queue_shard_stats) / sizeof(uint64_t)] = { 0 };

	for (unsigned i = 0; i < queue_nshards(q); i++) {
		struct queue_shard_stats st;
		queue_stats(q, i, &st);
		stats_add(sum, &st, STATS_COUNT(sum));
	}
	stats_visit(fn, user, "queue", queue_shard_stat_names, sum, STATS_COUNT(sum));
}

static int cmd_stats(struct ctl_ctx *c, int argc, char **argv, json_t **result)
{
	struct stats_obj so = { json_object(), false };

	if (argc) {
		json_decref(so.obj);
		return CTL_USAGE;
	}
	if (!so.obj)
		return -1;
	if (c->dp)
		dp_stats_visit(c->dp, stats_add_member, &so);
	if (c->queue)
		queue_stats_visit(c->queue, stats_add_member, &so);
	if (c->plane)
		plane_stats_visit(c->plane, stats_add_member, &so);
	ctl_server_stats_visit(c->server, stats_add_member, &so);
	if (c->drain_hook)
		drain_hook_stats_visit(c->drain_hook, stats_add_member, &so);
	if (so.failed) {
		json_decref(so.obj);
		return -1;
	}
	*result = json_pack("{s:o}", "stats", so.obj);
	return *result ? 0 : -1;
}

/* ---- configuration (reload.h) ------------------------------------------------------- */

static int cmd_reload(struct ctl_ctx *c, int argc, char **argv, json_t **result)
{
	if (argc)
		return CTL_USAGE;
	if (!c->reload) {
		*result = json_string("sluiced is still starting");
		return -1;
	}
	return reload_run(c->reload, result);
}

static int cmd_config_check(struct ctl_ctx *c, int argc, char **argv, json_t **result)
{
	if (argc > 1)
		return CTL_USAGE;
	if (!c->reload) {
		*result = json_string("sluiced is still starting");
		return -1;
	}
	return reload_check(c->reload, argc ? argv[0] : NULL, result);
}

/* ---- maintenance drain (drain_hook.h) -------------------------------------------------- */

/* drain / undrain: the lcores' refuse-new flag, then the hook in the
 * background. Refused while the last hook still runs, so hooks never run
 * out of order; the flag is left as it was then. */
static int set_drain(struct ctl_ctx *c, bool on, int argc, json_t **result)
{
	const char *hook = c->cfg ? c->cfg->control.drain_hook : "";
	char err[256];
	bool was;

	if (argc)
		return CTL_USAGE;
	if (!c->dp) {
		*result = json_string("sluiced is still starting");
		return -1;
	}
	if (hook[0] && c->drain_hook && drain_hook_busy(c->drain_hook)) {
		*result = json_string("the drain hook still runs: try again when it ends");
		return -1;
	}
	was = dp_smtp_refuse_new(c->dp);
	dp_smtp_set_refuse_new(c->dp, on);
	if (on && !was)
		c->drained_since_s = clock_real_s();
	else if (!on)
		c->drained_since_s = 0;
	if (on)
		log_notice("drain: new SMTP sessions get 421 4.3.2 from now on (open ones finish, "
			   "delivery goes on)%s", was ? " (already drained)" : "");
	else
		log_notice("undrain: accepting new SMTP sessions again%s",
			   was ? "" : " (was not drained)");
	/* kept across a restart: the file in the spool (drain_state.h) */
	if (c->cfg && c->cfg->queue.dir[0] &&
	    drain_state_save(c->cfg->queue.dir, on, c->drained_since_s, err, sizeof(err)) < 0)
		log_err("%s: not kept across a restart: %s", on ? "drain" : "undrain", err);
	if (hook[0]) {
		if (!c->drain_hook ||
		    drain_hook_run(c->drain_hook, hook, on ? "drain" : "undrain",
				   c->cfg->control.drain_hook_timeout_ns, err, sizeof(err)) < 0) {
			*result = json_sprintf("%s: the SMTP service is %s, but %s",
					       on ? "drain" : "undrain",
					       on ? "drained" : "accepting",
					       c->drain_hook ? err : "no hook runner");
			return -1;
		}
	}
	*result = json_pack("{s:{s:b,s:b,s:o}}", "drain", "draining", on, "was", was, "hook",
			    hook[0] ? json_string(hook) : json_null());
	return *result ? 0 : -1;
}

/* status: what the box is doing, in one answer: its version, and whether
 * it is drained (since when; also after a restart). */
static int cmd_status(struct ctl_ctx *c, int argc, char **argv, json_t **result)
{
	bool drained;

	if (argc)
		return CTL_USAGE;
	drained = c->dp ? dp_smtp_refuse_new(c->dp) : c->drained_since_s != 0;
	*result = json_pack("{s:{s:s,s:s,s:b,s:o}}", "status", "version", c->version, "smtp",
			    drained ? "drained: new sessions get 421 4.3.2" : "accepting",
			    "draining", drained, "drained_since",
			    drained && c->drained_since_s ? json_integer((json_int_t)
							     c->drained_since_s) : json_null());
	return *result ? 0 : -1;
}

static int cmd_drain(struct ctl_ctx *c, int argc, char **argv, json_t **result)
{
	return set_drain(c, true, argc, result);
}

static int cmd_undrain(struct ctl_ctx *c, int argc, char **argv, json_t **result)
{
	return set_drain(c, false, argc, result);
}

/* ---- per-client rates ([limits], client_limits.h) ------------------------------------- */

/* clients top [N]: the busiest client addresses and users now, from the
 * table the lcores share (racy reads of atomics: never waits for them). */
static int cmd_clients_top(struct ctl_ctx *c, int argc, char **argv, json_t **result)
{
	const struct client_limits *t;
	const struct smtp_live *live;
	struct cl_top_entry *top;
	uint64_t now;
	long n = 20;
	unsigned got;
	json_t *arr, *lim;

	if (argc > 1)
		return CTL_USAGE;
	if (argc == 1) {
		char *end;
		n = strtol(argv[0], &end, 10);
		if (*end || n < 1 || n > CL_TOP)
			return CTL_USAGE;
	}
	if (!c->dp || !(live = dp_smtp_live(c->dp)) || !(t = dp_client_limits(c->dp, &now))) {
		*result = json_string("no SMTP service");
		return -1;
	}
	top = calloc((size_t)n, sizeof(*top));
	if (!top)
		return -1;
	got = cl_top(t, &live->rates, now, top, (unsigned)n);
	arr = json_array();
	for (unsigned i = 0; arr && i < got; i++) {
		char ip[CL_ADDR_TEXT];
		json_t *e;
		cl_addr_text(top[i].v6, top[i].ip, top[i].net6, ip, sizeof(ip));
		e = json_pack("{s:s,s:s,s:i,s:i,s:i,s:i,s:f}", "kind",
			      top[i].user ? "user" : "address", "client",
			      top[i].user ? top[i].name : ip,
			      "connections", (json_int_t)top[i].level[CL_CONN],
			      "messages", (json_int_t)top[i].level[CL_MSG],
			      "recipients", (json_int_t)top[i].level[CL_RCPT],
			      "auth_failures", (json_int_t)top[i].level[CL_AUTHFAIL],
			      "percent", top[i].permille / 10.0);
		if (!e || json_array_append_new(arr, e) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	free(top);
	lim = json_pack("{s:I,s:i,s:i,s:i,s:i,s:i,s:i,s:i}",
			"window_s", (json_int_t)(live->rates.window_ns / NS_PER_SEC),
			"connection_rate", (json_int_t)live->rates.addr[CL_CONN],
			"message_rate", (json_int_t)live->rates.addr[CL_MSG],
			"recipient_rate", (json_int_t)live->rates.addr[CL_RCPT],
			"auth_failure_rate", (json_int_t)live->rates.addr[CL_AUTHFAIL],
			"user_connection_rate", (json_int_t)live->rates.user[CL_CONN],
			"user_message_rate", (json_int_t)live->rates.user[CL_MSG],
			"user_recipient_rate", (json_int_t)live->rates.user[CL_RCPT]);
	if (!arr || !lim) {
		json_decref(arr);
		json_decref(lim);
		return -1;
	}
	*result = json_pack("{s:{s:o,s:i,s:o}}", "clients", "limits", lim, "tracked",
			    (json_int_t)cl_tracked(t, now), "top", arr);
	return *result ? 0 : -1;
}

/* ---- submission users ([auth] users, users.h) ----------------------------------------- */

/* The file in force, or NULL with *result set. */
static const char *users_path(struct ctl_ctx *c, json_t **result)
{
	if (!c->cfg || !c->cfg->auth.users[0] || !c->plane) {
		*result = json_string("no [auth] users file: AUTH is off");
		return NULL;
	}
	return c->cfg->auth.users;
}

static int cmd_user_list(struct ctl_ctx *c, int argc, char **argv, json_t **result)
{
	const char *path = users_path(c, result);
	struct users u;
	char err[320];
	json_t *names, *list;
	uint64_t now = clock_real_s();

	if (argc)
		return CTL_USAGE;
	if (!path)
		return -1;
	if (users_load(&u, path, err, sizeof(err)) < 0) {
		*result = ctl_json_text(err);
		return -1;
	}
	names = json_array();
	list = json_array();
	for (unsigned i = 0; names && list && i < u.n; i++) {
		struct quota_usage q = { 0 };
		uint64_t since = 0;
		if (plane_quota(c->plane)) {
			quota_usage_get(plane_quota(c->plane), now, u.e[i].name, NULL, &q);
			if (q.suspended)
				quota_is_suspended(plane_quota(c->plane), u.e[i].name, &since);
		}
		if (json_array_append_new(names, json_string(u.e[i].name)) < 0 ||
		    json_array_append_new(list, json_pack(
			    "{s:s,s:s,s:I,s:I,s:I,s:I,s:I}", "name", u.e[i].name, "state",
			    q.suspended ? "suspended" : "active", "since", (json_int_t)since,
			    "messages_today", (json_int_t)q.messages, "recipients_today",
			    (json_int_t)q.recipients, "messages_limit", (json_int_t)q.lim.messages,
			    "recipients_limit", (json_int_t)q.lim.recipients)) < 0) {
			json_decref(names);
			names = NULL;
		}
	}
	users_free(&u);
	if (!names || !list) {
		json_decref(names);
		json_decref(list);
		return -1;
	}
	*result = json_pack("{s:{s:s,s:o,s:o}}", "users", "file", path, "names", names, "list",
			    list);
	return *result ? 0 : -1;
}

/* add NAME HASH (sluicectl made HASH from the password it read) / remove NAME */
static int user_set(struct ctl_ctx *c, const char *name, const char *hash, json_t **result)
{
	const char *path = users_path(c, result);
	char err[320];
	unsigned n = 0, m = 0;

	if (!path)
		return -1;
	if (users_file_set(path, name, hash, &n, err, sizeof(err)) < 0 ||
	    plane_auth_reload(c->plane, path, &m, err, sizeof(err)) < 0) {
		*result = ctl_json_text(err);
		return -1;
	}
	*result = json_pack("{s:{s:s,s:b,s:i}}", "user", "name", name,
			    hash ? "added" : "removed", 1, "users", (json_int_t)m);
	return *result ? 0 : -1;
}

static int cmd_user_add(struct ctl_ctx *c, int argc, char **argv, json_t **result)
{
	struct users_hash h;
	char err[200];

	if (argc != 2)
		return CTL_USAGE;
	if (users_hash_parse(argv[1], &h, err, sizeof(err)) < 0) {
		*result = ctl_json_text(err);
		return -1;
	}
	return user_set(c, argv[0], argv[1], result);
}

static int cmd_user_remove(struct ctl_ctx *c, int argc, char **argv, json_t **result)
{
	if (argc != 1)
		return CTL_USAGE;
	return user_set(c, argv[0], NULL, result);
}

static int plane_forward(struct ctl_ctx *c, const char *cmd, const char *sub, int argc,
			 char **argv, json_t **result);

/* suspend NAME: its mail is held (quota.h), until resume. */
static int cmd_user_suspend(struct ctl_ctx *c, int argc, char **argv, json_t **result)
{
	const char *path = users_path(c, result);
	struct quota *qs = plane_quota(c->plane);
	struct users u;
	char err[320], why[QUOTA_WHY_MAX + 1], *words[4];
	bool known;
	int r;

	if (argc != 1)
		return CTL_USAGE;
	if (!path)
		return -1;
	if (!qs) {
		*result = json_string("no queue: no quota store to keep a suspension in");
		return -1;
	}
	if (users_load(&u, path, err, sizeof(err)) < 0) {
		*result = ctl_json_text(err);
		return -1;
	}
	known = users_find(&u, argv[0]) != NULL;
	users_free(&u);
	if (!known) {
		*result = json_pack("s+", "no such user: ", argv[0]);
		return -1;
	}
	r = quota_suspend(qs, argv[0], true, clock_real_s(), err, sizeof(err));
	if (r < 0) {
		*result = ctl_json_text(err);
		return -1;
	}
	log_notice("user %s suspended by the operator%s", argv[0], r ? "" : " (already was)");
	/* and what it queued already, not yet held: held with the same
	 * reason (the queue thread answers, with the hold's count) */
	snprintf(why, sizeof(why), QUOTA_SUSPENDED_PREFIX " user %s suspended by the operator",
		 argv[0]);
	words[0] = "--user";
	words[1] = argv[0];
	words[2] = "--reason";
	words[3] = why;
	return plane_forward(c, "hold", NULL, 4, words, result);
}

/* resume NAME: the suspension ends, and what it held is released (by the
 * queue thread: the answer is the release's). */
static int cmd_user_resume(struct ctl_ctx *c, int argc, char **argv, json_t **result)
{
	struct quota *qs = plane_quota(c->plane);
	char err[320], *words[4];
	int r;

	if (argc != 1)
		return CTL_USAGE;
	if (!qs) {
		*result = json_string("no queue: no quota store to keep a suspension in");
		return -1;
	}
	r = quota_suspend(qs, argv[0], false, clock_real_s(), err, sizeof(err));
	if (r < 0) {
		*result = ctl_json_text(err);
		return -1;
	}
	log_notice("user %s resumed by the operator%s", argv[0], r ? "" : " (was not suspended)");
	words[0] = "--user";
	words[1] = argv[0];
	words[2] = "--held-for";
	words[3] = QUOTA_SUSPENDED_PREFIX;
	return plane_forward(c, "release", NULL, 4, words, result);
}

/* ---- answered by the control-plane thread ------------------------------------------ */

/* Hand cmd [sub] ARGS to the plane with a ticket (plane.h). */
static int plane_forward(struct ctl_ctx *c, const char *cmd, const char *sub, int argc,
			 char **argv, json_t **result)
{
	struct ctl_ticket t;
	char err[256];
	int r;

	if (!c->plane || ctl_server_defer(c->server, &t) < 0) {
		*result = json_string("the control plane is not running");
		return -1;
	}
	r = plane_submit(c->plane, cmd, sub, argc, argv, t, err, sizeof(err));
	if (r == PLANE_USAGE)
		return CTL_USAGE;
	if (r < 0) {
		*result = ctl_json_text(err);
		return -1;
	}
	return CTL_DEFERRED;
}

#define PLANE_CMD(fn, cmd, sub)                                                        \
	static int fn(struct ctl_ctx *c, int argc, char **argv, json_t **result)       \
	{                                                                              \
		return plane_forward(c, cmd, sub, argc, argv, result);                 \
	}
PLANE_CMD(cmd_route_lookup, "route", "lookup")
PLANE_CMD(cmd_route_set, "route", "set")
PLANE_CMD(cmd_route_clear, "route", "clear")
PLANE_CMD(cmd_dns_lookup, "dns", "lookup")
PLANE_CMD(cmd_dns_bench, "dns", "bench")
PLANE_CMD(cmd_flush, "flush", NULL)
PLANE_CMD(cmd_dest_show, "dest", "show")
PLANE_CMD(cmd_dest_clear, "dest", "clear")
PLANE_CMD(cmd_bounce, "bounce", NULL)
PLANE_CMD(cmd_route_show, "route", "show")
PLANE_CMD(cmd_suspend, "suspend", NULL)
PLANE_CMD(cmd_resume, "resume", NULL)
/* the queue's: the plane hands them to the queue thread (queue_cmd.h) */
PLANE_CMD(cmd_queue_list, "queue", "list")
PLANE_CMD(cmd_queue_summary, "queue", "summary")
PLANE_CMD(cmd_queue_stat, "queue", "stat")
PLANE_CMD(cmd_queue_show, "queue", "show")
PLANE_CMD(cmd_hold, "hold", NULL)
PLANE_CMD(cmd_release, "release", NULL)
PLANE_CMD(cmd_delete, "delete", NULL)
/* the cluster's: the plane hands them to the cluster thread (cluster.h) */
PLANE_CMD(cmd_cluster_suspend, "cluster", "suspend")
PLANE_CMD(cmd_cluster_resume, "cluster", "resume")
PLANE_CMD(cmd_cluster_queue, "cluster", "queue")
PLANE_CMD(cmd_cluster_boxes, "cluster", "boxes")
PLANE_CMD(cmd_cluster_flush, "cluster", "flush")
PLANE_CMD(cmd_cluster_route, "cluster", "route")

/* transfer --to's HOST is this box's own [net] address or address6 (a
 * HOST that does not parse is plane.c's to refuse, with the reason). */
static bool transfer_to_self(const struct ctl_ctx *c, const char *to)
{
	struct net_addr a, self4, self6;
	uint16_t port;
	char err[160];

	if (!c->cfg || transfer_dest_parse(to, &a, &port, err, sizeof(err)) < 0)
		return false;	/* never the unspecified address */
	self4 = net_addr_v4(c->cfg->dp.addr.ip);
	self6 = net_addr_v6(c->cfg->dp.addr.ip6);
	return net_addr_eq(&a, &self4) || net_addr_eq(&a, &self6);
}

/* transfer --to HOST[:PORT]: only a drained box moves its queue (the other
 * box must not get mail this one still takes in), and never to itself (its
 * drained listener refuses every part: the transfer would never end);
 * status and --cancel always. The scheduler's (plane.c, sched.h). */
static int cmd_transfer(struct ctl_ctx *c, int argc, char **argv, json_t **result)
{
	if (argc >= 1 && strcmp(argv[0], "--to") == 0) {
		if (!c->dp) {
			*result = json_string("sluiced is still starting");
			return -1;
		}
		if (!dp_smtp_refuse_new(c->dp)) {
			*result = json_string("transfer: the box is not drained: run `sluicectl "
					      "drain` first (new mail must stop coming in)");
			return -1;
		}
		if (argc >= 2 && transfer_to_self(c, argv[1])) {
			*result = json_string("transfer --to: that address is this box itself "
					      "([net] address or address6): name another box of "
					      "the cluster");
			return -1;
		}
	}
	return plane_forward(c, "transfer", NULL, argc, argv, result);
}

/* ---- the table ---------------------------------------------------------------------- */

const struct ctl_cmd ctl_commands[] = {
	{ "help", NULL, CTL_READ, cmd_help, "[COMMAND [SUB-COMMAND]]",
	  "The commands, their usage and what they do (all, a family's, or one)." },
	{ "ping", NULL, CTL_READ, cmd_ping, "",
	  "Check that sluiced answers on its control socket." },
	{ "drain", NULL, CTL_ADMIN, cmd_drain, "",
	  "Maintenance: new SMTP sessions get \"421 4.3.2 Service not available\" (open ones "
	  "finish; delivery goes on), then [control] drain_hook runs with \"drain\" to take "
	  "the box out of the MX/ECMP set. Kept across reloads and restarts (the file "
	  "drained in [queue] dir; a box restarted drained says so in its log and `status`, "
	  "and does not run the hook again); stats: drain.active." },
	{ "status", NULL, CTL_READ, cmd_status, "",
	  "What the box is doing: its version, and whether it is drained (and since when, "
	  "unix seconds): {\"status\":{\"version\",\"smtp\",\"draining\",\"drained_since\"}}." },
	{ "undrain", NULL, CTL_ADMIN, cmd_undrain, "",
	  "End a drain: accept new SMTP sessions again, then run [control] drain_hook with "
	  "\"undrain\"." },
	{ "transfer", NULL, CTL_ADMIN, cmd_transfer,
	  "[status] | --to HOST[:PORT] [--include-held] | --cancel",
	  "Move this drained box's queue to another Sluice box (HOST an IPv4 or IPv6 "
	  "address, [2001:db8::2]:PORT with a port; port 25 by default): every message "
	  "goes there at once, whatever its domains, with its arrival, expiry, attempts "
	  "and last error (XSLUICE, which HOST offers to its mynetworks), and is removed "
	  "once HOST answered 250; no DSN, not a delivery. A "
	  "failed transfer is not an attempt: tried again. Held mail stays held unless "
	  "--include-held. No argument or status: progress (moved, left, failed); --cancel "
	  "stops it. Refused unless the box is drained." },
	{ "version", NULL, CTL_READ, cmd_version, "",
	  "sluiced's version and the control protocol's." },
	{ "stats", NULL, CTL_READ, cmd_stats, "",
	  "Every counter, summed over the worker lcores and queue shards, as group.name: "
	  "net, tcp, smtp, queue, sched, dns, route, ctl (this socket) and the others." },
	{ "route", "lookup", CTL_READ, cmd_route_lookup, "DOMAIN",
	  "Where mail for DOMAIN would go now: a static route, the relayhost or its MX hosts, "
	  "with their addresses, ports, preferences and TLS policy; or why it cannot go." },
	{ "route", "set", CTL_ADMIN, cmd_route_set, "DOMAIN SPEC",
	  "Route DOMAIN by SPEC from now on, as a routes_file line would, over the file's "
	  "(until `route clear` or a restart; kept across reloads). SPEC: discard, hold, or "
	  "next hops \"[PRIORITY] TARGET[:PORT]\" separated by commas, [TARGET] used as "
	  "is, TARGET looked up as an MX, with an optional last word "
	  "tls=none|may|encrypt|verify." },
	{ "route", "clear", CTL_ADMIN, cmd_route_clear, "DOMAIN",
	  "Remove DOMAIN's static route: it is routed by the relayhost or MX again (a route "
	  "set at runtime over a routes_file one: the file's is back; a routes_file route "
	  "cleared comes back at the next reload)." },
	{ "route", "show", CTL_READ, cmd_route_show, "[DOMAIN]",
	  "The static routes in force (routes_file and `route set`), or the one DOMAIN "
	  "takes: {\"routes\":[{\"domain\",\"route\"}]}." },
	{ "dns", "lookup", CTL_READ, cmd_dns_lookup, "NAME a|aaaa|mx|ptr",
	  "One lookup through sluiced's resolver and cache (ptr: NAME is an IPv4 address)." },
	{ "dns", "bench", CTL_ADMIN, cmd_dns_bench, "N cached|uncached ZONE",
	  "Time N A lookups under ZONE through the resolver: distinct names (uncached) or one "
	  "name N times (cached). For bench/dns-bench." },
	{ "flush", NULL, CTL_ADMIN, cmd_flush, "[ID... | --domain DOMAIN | --all]",
	  "Make mail due now: messages by ID, a domain's, or all (no argument: all); for a "
	  "domain or all, the destinations' backoff ends too (postqueue -f / -s / -i, "
	  "exim -M / -R, qmail's SIGALRM). Held mail stays held." },
	{ "queue", "list", CTL_READ, cmd_queue_list,
	  "[--domain D] [--sender S] [--rcpt R] [--user NAME] [--held] [--deferred] "
	  "[--older-than T] [--limit N] [--after CURSOR]",
	  "The queue's messages, a page at a time, like postqueue -p / exim -bp / "
	  "qmail-qread: ID, status (* in delivery, ! held), size, arrival, sender, "
	  "undelivered recipients with their last reply. --sender/--rcpt match a part of "
	  "the address; --user: sent by that AUTH user; --held rows say why they are held; "
	  "T is 30s, 5m, 2h, 1d. sluicectl follows the pages (\"next\")." },
	{ "queue", "summary", CTL_READ, cmd_queue_summary, "[--top N] [--by sender-domain]",
	  "Per destination domain (or sender domain): messages incoming (not yet tried), "
	  "active, deferred, held, bytes, oldest, and by age in qshape's buckets (5, 10, "
	  "20 ... 1280, 1280+ minutes), largest first, the first N." },
	{ "queue", "stat", CTL_READ, cmd_queue_stat, "",
	  "qmail-qstat's two numbers (messages in the queue, not yet tried) and more: held, "
	  "message parts, bytes, destination domains." },
	{ "queue", "show", CTL_READ, cmd_queue_show, "ID [--body]",
	  "One message (postcat -q, exim -Mvh/-Mvl, imsimta qm history): envelope, headers, "
	  "each recipient's state and last reply, every delivery attempt with its reply; "
	  "--body prints the message." },
	{ "hold", NULL, CTL_ADMIN, cmd_hold,
	  "ID... | --domain DOMAIN | --user NAME [--reason TEXT] | --all",
	  "Hold messages (postsuper -h, exim -Mf): never tried until released; the time "
	  "held does not count toward their lifetime." },
	{ "release", NULL, CTL_ADMIN, cmd_release,
	  "ID... | --domain DOMAIN | --user NAME [--held-for TEXT] | --all",
	  "Release held messages (postsuper -H, exim -Mt): due at once. --user: the held "
	  "mail of one AUTH user (--held-for: only that whose hold reason has TEXT in it, "
	  "e.g. \"daily quota\")." },
	{ "delete", NULL, CTL_ADMIN, cmd_delete,
	  "ID... | --domain DOMAIN | --user NAME [--held-for TEXT] | --all",
	  "Delete messages without a DSN (postsuper -d, exim -Mrm, qmail's queue-repair). "
	  "sluicectl asks first unless --yes." },
	{ "cluster", "suspend", CTL_ADMIN, cmd_cluster_suspend, "DOMAIN [--for T]",
	  "Suspend DOMAIN on every box of the cluster (Redis): each box applies it within "
	  "a second, as its own `suspend`. sluicectl --cluster suspend says the same." },
	{ "cluster", "resume", CTL_ADMIN, cmd_cluster_resume, "DOMAIN",
	  "End a cluster suspension of DOMAIN on every box." },
	{ "cluster", "queue", CTL_READ, cmd_cluster_queue, "summary",
	  "The queue summary of every live box, summed by destination domain (each box "
	  "publishes its own every second; \"missing\" lists boxes without one)." },
	{ "cluster", "boxes", CTL_READ, cmd_cluster_boxes, "",
	  "The boxes registered in the cluster and when their registration runs out." },
	{ "cluster", "flush", CTL_ADMIN, cmd_cluster_flush, "[DOMAIN | --domain DOMAIN | --all]",
	  "Flush DOMAIN (or all mail) on every box of the cluster: each box does its own "
	  "`flush --domain DOMAIN` (or `flush --all`) within a second. sluicectl --cluster "
	  "flush says the same." },
	{ "cluster", "route", CTL_ADMIN, cmd_cluster_route,
	  "set DOMAIN SPEC | clear DOMAIN | show",
	  "The cluster's runtime routes, kept in Redis: set (as `route set`) or clear DOMAIN's "
	  "on every box within a second, or show them. Each box applies them as runtime "
	  "routes (kept across reloads; a box that joins later gets them too). A box's own "
	  "`route set` stays its own. sluicectl --cluster route ... says the same." },
	{ "suspend", NULL, CTL_ADMIN, cmd_suspend, "[DOMAIN [--for T]]",
	  "Stop delivering to DOMAIN (all of it or for T: 30m, 2h, 1d) while the rest goes "
	  "on: its mail stays queued, logged deferred (4.3.2), not tried. No argument: the "
	  "suspensions in force." },
	{ "resume", NULL, CTL_ADMIN, cmd_resume, "DOMAIN",
	  "End DOMAIN's suspension and flush its mail." },
	{ "dest", "show", CTL_READ, cmd_dest_show, "[DESTINATION]",
	  "The scheduler's destinations (next hops) in memory, or one: mail queued and in "
	  "flight, concurrency window and limit, rates, backoff, last error." },
	{ "dest", "clear", CTL_ADMIN, cmd_dest_clear, "DESTINATION",
	  "End a destination's backoff now: it is tried at once." },
	{ "bounce", NULL, CTL_ADMIN, cmd_bounce, "ID | --domain DOMAIN [--reason TEXT]",
	  "Give up on message ID, or every message to DOMAIN, now (exim -Mg, postsuper -r "
	  "with a bounce): the undelivered recipients fail, with \"cancelled by the "
	  "operator: TEXT\", and each sender gets the DSN." },
	{ "reload", NULL, CTL_ADMIN, cmd_reload, "",
	  "Read the configuration file again and, when all of it passes the checks of "
	  "sluiced --check-config, apply what can change without dropping a session: relay "
	  "policy, SMTP limits, TLS certificates, routes, retry and destination policies, log "
	  "level (new sessions get the new settings; open ones keep theirs). Keys that need a "
	  "restart are listed and keep their running values. A file with errors is refused "
	  "whole, every error named. SIGHUP does the same." },
	{ "config", "check", CTL_ADMIN, cmd_config_check, "[FILE]",
	  "Check FILE (default: the running configuration's file) as sluiced --check-config "
	  "and reload would, applying nothing; every error is listed." },
	{ "clients", "top", CTL_READ, cmd_clients_top, "[N]",
	  "The N (20) busiest client addresses and AUTH users now by the [limits] rates: the "
	  "events each holds in its allowance (connections, messages, recipients, failed "
	  "AUTHs) and how near its limit it is (percent; 100: refused until it slows down)." },
	{ "user", "list", CTL_READ, cmd_user_list, "",
	  "The submission users ([auth] users) by name, each with its state (active or "
	  "suspended) and today's messages and recipients against its daily quota "
	  "([quota], 0: no limit)." },
	{ "user", "add", CTL_ADMIN, cmd_user_add, "NAME",
	  "Add a submission user: sluicectl reads the password from stdin (its first line) "
	  "and sends only its scrypt hash; the users file is rewritten (atomically) and read "
	  "again at once. A name there already is refused." },
	{ "user", "suspend", CTL_ADMIN, cmd_user_suspend, "NAME",
	  "Suspend a submission user: it may still log in, but every message it sends from "
	  "now on is accepted and held (\"suspended: ...\" in queue list --held), for the "
	  "operator to look at, and so is its mail already queued (not what is being "
	  "delivered at this instant). Kept across reloads and restarts. To lock it out as "
	  "well, remove it (or give it a new password)." },
	{ "user", "resume", CTL_ADMIN, cmd_user_resume, "NAME",
	  "End a user's suspension and release the messages the suspension held (those "
	  "held over a daily quota stay held)." },
	{ "user", "remove", CTL_ADMIN, cmd_user_remove, "NAME",
	  "Remove a submission user from the users file; it is read again at once (sessions "
	  "already authenticated keep going)." },
	{ NULL, NULL, CTL_READ, NULL, NULL, NULL },
};
