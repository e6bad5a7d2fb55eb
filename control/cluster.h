/*
 * cluster.h - several appliances as one relay: shared limits, suspensions
 * and a registry of boxes, kept in Redis (Debian's redis-server; hiredis on
 * our side). Off unless [cluster] redis is set.
 *
 *   [cluster]
 *   redis = 127.0.0.1:6379      host:port, or the path of a Unix socket
 *   password =                  AUTH, when the server asks for one
 *   tls = no                    Debian 12's hiredis (0.14) has no TLS: refused
 *   name =                      this box's id ("" : [smtp] hostname)
 *   lease_ttl = 10s             leases and the registry entry live this long
 *
 * Who talks to Redis. One thread of its own (sluice-cluster), never an
 * lcore, never the scheduler: it owns the one hiredis connection (connect
 * and command timeouts lease_ttl/2, at most 2 s; reconnect with backoff
 * 100 ms .. 5 s) and
 * works in rounds (every 50 ms, or at once when the scheduler is short of
 * something): every command of a round is pipelined, so a round is one
 * round trip whatever it carries.
 *
 * What is in Redis (prefix "sluice:"):
 *   boxes               sorted set: member box name, score expiry (ms);
 *                       renewed every lease_ttl/3; the live ones are the
 *                       cluster (its size divides the limits in fallback)
 *   box:NAME            this box's queue summary (JSON), every second, with
 *                       a TTL of lease_ttl: `cluster queue summary` sums them
 *   lease:DEST          sorted set of connection leases: member "BOX#i",
 *                       score expiry (ms). A box's members are #0..#n-1 and
 *                       are renewed together (one expiry). At most the
 *                       destination's concurrency_limit members in all.
 *   hungry:DEST         sorted set: boxes that asked for more leases than
 *                       they got, score expiry. While another box is hungry,
 *                       a box holds no more than its share (limit / boxes,
 *                       rounded up) and closes connections above it as their
 *                       jobs end, instead of keeping them idle.
 *   rate:DEST:CLASS     GCRA theoretical arrival time (us since the epoch)
 *   suspend             hash: domain -> until (unix s, 0: until resumed)
 *   suspend:gen         counter bumped at each change; boxes poll it every
 *                       250 ms and apply the hash to their scheduler
 *   route               hash: the router's key (domain, or .parent) -> spec:
 *                       the cluster's runtime routes (`cluster route set`)
 *   route:gen           as suspend:gen; every box applies the hash with
 *                       route_set / route_clear (runtime routes: they outlive
 *                       a reload). A box's own `route set` stays its own.
 *   flush               list of "GEN DOMAIN" ("GEN *": all), the last 64
 *   client:a:ADDR, client:u:NAME   a client's or user's message-rate GCRA
 *   quota:DAY:K:NAME    hash: box -> "messages recipients" of that day
 *   flush:gen           the last GEN; boxes poll it with the other two
 *                       generations (one MGET) and flush what is newer than
 *                       what they took, as their own `flush` would
 * Shared state is Redis's. A Redis restarted empty (or flushed) is seen by
 * its generations: one a box had read (>= 1) is gone. The box then puts
 * its copy of the suspensions and routes back (HSETNX: what was set since
 * wins; a suspension whose time ran out stays ended), bumps both
 * generations, logs it and counts it (shared_restored), instead of ending
 * them everywhere. Flush requests and rate state are not restored (run
 * Redis with persistence to keep those).
 *
 * Leases (cluster_lease_lua, one atomic script per destination per round):
 * expired members are dropped, then the box's members are set to
 * min(want, limit - others) (never fewer than it holds and wants: a lease
 * in use is never taken back by the script), all with expiry now + ttl.
 * The box asks for its open connections plus a few (CLUSTER_LEASE_SPARE),
 * so a lease covers several new connections per round trip. A box that
 * dies stops renewing: its leases expire within lease_ttl and the others
 * take them.
 *
 * Rates (cluster_gcra_lua): GCRA with the destination's message_rate (per
 * class); the box takes up to a batch of cells at once (a fifth of a
 * second's worth, at least the spec's burst; the GCRA's burst in Redis too,
 * so a window of T seconds sees at most rate * T + batch cells; a box told
 * "none" asks again when half a batch has come back) and spends them locally within
 * a second (cells not spent by then are dropped: the total can only come
 * out lower). Round trips per message: about 1/batch.
 *
 * Redis unreachable: leases already granted stay this box's until they
 * would have run out (lease_ttl after their last renewal: no other box can
 * have them before), then every destination falls back to its local limits
 * divided by the last known number of boxes (connections: limit / n rounded
 * up, at least 1; rates: n times slower), logged once per outage, counted
 * (fallback_entered); when Redis answers again the box registers and leases
 * afresh and says so in the log.
 *
 * Threading: cluster_admit, cluster_note_open and cluster_sync_suspensions
 * are for the scheduler's thread (they take a mutex briefly, never wait for
 * Redis); cluster_submit for the control plane (its callback runs on the
 * cluster thread); cluster_stats_get from any thread.
 */
#ifndef SLUICE_CLUSTER_H
#define SLUICE_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/stats.h"
#include "control/dest.h"
#include "control/dns.h"
#include "control/route.h"

#define CLUSTER_NAME_MAX 64		/* a box's name, NUL included */
#define CLUSTER_ADDR_MAX 256
#define CLUSTER_DESTS_MAX 4096		/* destinations followed at once */
#define CLUSTER_LEASE_SPARE 2		/* leases asked for beyond those in use */
#define CLUSTER_KEEP_NS (1000ull * 1000 * 1000)	/* granted rate cells live this long */
#define CLUSTER_ROUTES_MAX 256		/* shared runtime routes */
#define CLUSTER_ROUTE_KEY_MAX (DNS_NAME_MAX + 2)
#define CLUSTER_ROUTE_SPEC_MAX ROUTE_SPEC_MAX

struct cluster_conf {
	char redis[CLUSTER_ADDR_MAX];	/* "host:port" or "/path"; "": off */
	char password[128];		/* "": no AUTH */
	bool tls;
	char name[CLUSTER_NAME_MAX];	/* this box */
	uint64_t lease_ttl_ns;		/* >= 1 s */
};

/* redis as host and port (port 0: host is a Unix socket's path). 0, or -1. */
int cluster_addr_parse(const char *redis, char *host, size_t hostlen, uint16_t *port);
/* 0, or -1 with *key naming the [cluster] key at fault and err filled. */
int cluster_conf_check(const struct cluster_conf *c, const char **key, char *err, size_t errlen);

/* The scripts, for the tests (KEYS and ARGV as cluster.c documents them). */
extern const char cluster_lease_lua[];
extern const char cluster_gcra_lua[];
extern const char cluster_client_lua[];
extern const char cluster_quota_lua[];

struct cluster;
struct queue;
struct client_share;

/* Start the thread (it connects in the background: a Redis that is down
 * at start is a fallback, not an error). q: whose summary is published
 * (may be NULL). NULL with err on bad conf or no memory. */
struct cluster *cluster_start(const struct cluster_conf *c, struct queue *q, char *err,
			      size_t errlen);
void cluster_stop(struct cluster *cl);

/*
 * The scheduler asks before a delivery of class cls to destination dest
 * (conf: its settings) starts: new_conn when it would open a connection,
 * open: the connections to dest this box has now (in flight + idle).
 * 0: go (a rate cell taken, the lease covers it); else how long to wait
 * (ns) before asking again: the answer is being fetched or the cluster's
 * share is used up. *keep: false when this box holds more connections than
 * its share: the connection should close after this job.
 */
uint64_t cluster_admit(struct cluster *cl, const char *dest, const struct dest_conf *conf,
		       enum dest_class cls, bool new_conn, unsigned open, uint64_t now_ns,
		       bool *keep);
/* dest's open connections changed (a job back, an idle one closed). */
void cluster_note_open(struct cluster *cl, const char *dest, unsigned open);

/* The cluster's suspensions, as last read from Redis, applied through the
 * callbacks when they changed since the last call (suspend: for_s 0 =
 * until resumed). Returns the number of changes applied. */
typedef void (*cluster_suspend_fn)(void *user, const char *domain, uint64_t for_s);
typedef void (*cluster_resume_fn)(void *user, const char *domain);
unsigned cluster_sync_suspensions(struct cluster *cl, cluster_suspend_fn sus,
				  cluster_resume_fn res, void *user);

/* Share the lcores' per-client and per-user message rates across the
 * cluster (dataplane/smtp/client_share.h: each box its share of a limit,
 * Redis's GCRA "client:KEY" charged with what was spent and granting the
 * rest in batches): activates cs (until cluster_stop) and reads it every
 * round. cs must outlive the cluster. */
void cluster_client_share(struct cluster *cl, struct client_share *cs);

/* Daily quotas across the cluster: a quota_elsewhere_fn (control/quota.h)
 * for quota_set_elsewhere, user = the cluster. Each key's day is a hash in
 * Redis (quota:DAY:KIND:NAME, field BOX: this box's counts, set each round
 * they change); the answer is the other boxes' sums as last read (once a
 * second while the key is counted), so a key that goes over on the other
 * boxes is held here from its next message on, and a key new to this box
 * gets through its first message before the others' counts are known.
 * Never waits for Redis (a mutex, briefly); Redis down: the last sums. */
void cluster_quota(void *cl, char kind, const char *name, uint64_t day, uint32_t msgs_here,
		   uint32_t rcpts_here, uint32_t *msgs_else, uint32_t *rcpts_else);

/* The cluster's runtime routes (`cluster route set/clear`), as last read
 * from Redis, applied through the callbacks when they changed since the
 * last call: set for a route new or changed, clear for one the cluster no
 * longer has (only routes this function set are ever cleared). For the
 * control plane's thread (the router's owner). The number of changes. */
typedef void (*cluster_route_set_fn)(void *user, const char *key, const char *spec);
typedef void (*cluster_route_clear_fn)(void *user, const char *key);
unsigned cluster_sync_routes(struct cluster *cl, cluster_route_set_fn set,
			     cluster_route_clear_fn clear, void *user);

/* The cluster's flushes (`cluster flush [DOMAIN]`) read since the last
 * call, each passed to fn once (domain NULL: all mail), oldest first. A
 * flush made while this box was not connected is not replayed. */
typedef void (*cluster_flush_fn)(void *user, const char *domain);
unsigned cluster_sync_flushes(struct cluster *cl, cluster_flush_fn fn, void *user);

/*
 * A `cluster ...` request (words after "cluster"): suspend DOMAIN [--for T],
 * resume DOMAIN, queue summary, boxes, flush [DOMAIN | --domain DOMAIN |
 * --all], route set DOMAIN SPEC..., route clear DOMAIN, route show. Answered on the cluster thread by
 * done(user, ok, value) (value: a new reference, the result or the error
 * text). 0, 1 (usage), or -1 with err (queue full).
 *   suspend/resume  {"cluster":{"suspend"|"resume":DOMAIN,"boxes":N}}
 *   boxes           {"boxes":[{"name","expires_in_ms","summary_age_s"}]}
 *   queue summary   {"boxes":[names],"missing":[names without a summary],
 *                    "total":{row},"domains":[{"domain","incoming","active",
 *                    "deferred","held","bytes","boxes":N}]}
 *   flush           {"cluster":{"flush":DOMAIN|"all","boxes":N}}
 *   route set/clear {"cluster":{"route":{"domain":KEY,"set":SPEC|"cleared":true},
 *                    "boxes":N}}
 *   route show      {"routes":[{"domain","route"}]} (as `route show`)
 */
#define CLUSTER_USAGE 1
typedef void (*cluster_done_fn)(void *user, bool ok, json_t *value);
int cluster_submit(struct cluster *cl, int argc, char **argv, cluster_done_fn done, void *user,
		   char *err, size_t errlen);

/*
 * Counters: rounds (round trips), commands (sent in them), redis_errors
 * (failed connects or commands), reconnects, fallback_entered (outages),
 * lease_calls, leases_granted (sum of grants), lease_waits (admits refused:
 * share used up), rate_calls, rate_cells (granted), rate_waits, rate_dropped
 * (cells that expired unspent), fallback_admits (decided locally while
 * down), suspensions_applied, routes_applied (cluster routes set or cleared
 * here), flushes_applied, flushes_dropped (more than FLUSH_RING between two
 * passes of the plane); client_calls (client keys sent to Redis),
 * client_charged (cells spent from local shares, charged), client_granted
 * (cells Redis granted), client_dropped (granted, unspent within a second),
 * client_grants_used (messages let through on a grant), client_slots_full
 * (keys that found no slot: held to their share alone), quota_counted
 * (messages whose key's day was shared), quota_calls (quota keys written
 * and read), quota_untracked (the key table full: counted here alone);
 * gauges: connected
 * (0/1), boxes, dests.
 */
#define CLUSTER_STATS(X) \
	X(rounds) X(commands) X(redis_errors) X(reconnects) X(fallback_entered) \
	X(lease_calls) X(leases_granted) X(lease_waits) X(rate_calls) X(rate_cells) \
	X(rate_waits) X(rate_dropped) X(fallback_admits) X(suspensions_applied) \
	X(routes_applied) X(flushes_applied) X(flushes_dropped) X(shared_restored) \
	X(client_calls) X(client_charged) X(client_granted) X(client_dropped) \
	X(client_grants_used) X(client_slots_full) \
	X(quota_counted) X(quota_calls) X(quota_untracked) \
	X(connected) X(boxes) X(dests)
struct cluster_stats { CLUSTER_STATS(STATS_FIELD) };
extern const char *const cluster_stat_names[];
extern const unsigned cluster_stat_count;
void cluster_stats_get(struct cluster *cl, struct cluster_stats *out);

#endif
