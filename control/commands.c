/*
 * commands.c - the control socket's commands and their table. See
 * commands.h.
 */
#include "control/commands.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "control/plane.h"
#include "control/reload.h"
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
	json_t *names;

	if (argc)
		return CTL_USAGE;
	if (!path)
		return -1;
	if (users_load(&u, path, err, sizeof(err)) < 0) {
		*result = ctl_json_text(err);
		return -1;
	}
	names = json_array();
	for (unsigned i = 0; names && i < u.n; i++)
		if (json_array_append_new(names, json_string(u.e[i].name)) < 0) {
			json_decref(names);
			names = NULL;
		}
	users_free(&u);
	if (!names)
		return -1;
	*result = json_pack("{s:{s:s,s:o}}", "users", "file", path, "names", names);
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

/* ---- the table ---------------------------------------------------------------------- */

const struct ctl_cmd ctl_commands[] = {
	{ "help", NULL, CTL_READ, cmd_help, "[COMMAND [SUB-COMMAND]]",
	  "The commands, their usage and what they do (all, a family's, or one)." },
	{ "ping", NULL, CTL_READ, cmd_ping, "",
	  "Check that sluiced answers on its control socket." },
	{ "version", NULL, CTL_READ, cmd_version, "",
	  "sluiced's version and the control protocol's." },
	{ "stats", NULL, CTL_READ, cmd_stats, "",
	  "Every counter, summed over the worker lcores and queue shards, as group.name: "
	  "net, tcp, smtp, queue, sched, dns, route, ctl (this socket) and the others." },
	{ "route", "lookup", CTL_READ, cmd_route_lookup, "DOMAIN",
	  "Where mail for DOMAIN would go now: a static route, the relayhost or its MX hosts, "
	  "with their addresses, ports, preferences and TLS policy; or why it cannot go." },
	{ "route", "set", CTL_ADMIN, cmd_route_set, "DOMAIN SPEC",
	  "Route DOMAIN by SPEC from now on, as a routes_file line would (until `route clear` "
	  "or a restart). SPEC: discard, hold, or next hops \"[PRIORITY] TARGET[:PORT]\" "
	  "separated by commas, [TARGET] used as is, TARGET looked up as an MX, with an "
	  "optional last word tls=none|may|encrypt|verify." },
	{ "route", "clear", CTL_ADMIN, cmd_route_clear, "DOMAIN",
	  "Remove DOMAIN's static route: it is routed by the relayhost or MX again." },
	{ "route", "show", CTL_READ, cmd_route_show, "[DOMAIN]",
	  "The static routes in force (routes_file and `route set`), or the one DOMAIN "
	  "takes: {\"routes\":[{\"domain\",\"route\"}]}." },
	{ "dns", "lookup", CTL_READ, cmd_dns_lookup, "NAME a|mx|ptr",
	  "One lookup through sluiced's resolver and cache (ptr: NAME is an IPv4 address)." },
	{ "dns", "bench", CTL_ADMIN, cmd_dns_bench, "N cached|uncached ZONE",
	  "Time N A lookups under ZONE through the resolver: distinct names (uncached) or one "
	  "name N times (cached). For bench/dns-bench." },
	{ "flush", NULL, CTL_ADMIN, cmd_flush, "[ID... | --domain DOMAIN | --all]",
	  "Make mail due now: messages by ID, a domain's, or all (no argument: all); for a "
	  "domain or all, the destinations' backoff ends too (postqueue -f / -s / -i, "
	  "exim -M / -R, qmail's SIGALRM). Held mail stays held." },
	{ "queue", "list", CTL_READ, cmd_queue_list,
	  "[--domain D] [--sender S] [--rcpt R] [--held] [--deferred] [--older-than T] "
	  "[--limit N] [--after CURSOR]",
	  "The queue's messages, a page at a time, like postqueue -p / exim -bp / "
	  "qmail-qread: ID, status (* in delivery, ! held), size, arrival, sender, "
	  "undelivered recipients with their last reply. --sender/--rcpt match a part of "
	  "the address; T is 30s, 5m, 2h, 1d. sluicectl follows the pages (\"next\")." },
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
	{ "hold", NULL, CTL_ADMIN, cmd_hold, "ID... | --domain DOMAIN | --all",
	  "Hold messages (postsuper -h, exim -Mf): never tried until released; the time "
	  "held does not count toward their lifetime." },
	{ "release", NULL, CTL_ADMIN, cmd_release, "ID... | --domain DOMAIN | --all",
	  "Release held messages (postsuper -H, exim -Mt): due at once." },
	{ "delete", NULL, CTL_ADMIN, cmd_delete, "ID... | --domain DOMAIN | --all",
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
	{ "user", "list", CTL_READ, cmd_user_list, "",
	  "The submission users ([auth] users) by name." },
	{ "user", "add", CTL_ADMIN, cmd_user_add, "NAME",
	  "Add a submission user: sluicectl reads the password from stdin (its first line) "
	  "and sends only its scrypt hash; the users file is rewritten (atomically) and read "
	  "again at once. A name there already is refused." },
	{ "user", "remove", CTL_ADMIN, cmd_user_remove, "NAME",
	  "Remove a submission user from the users file; it is read again at once (sessions "
	  "already authenticated keep going)." },
	{ NULL, NULL, CTL_READ, NULL, NULL, NULL },
};
