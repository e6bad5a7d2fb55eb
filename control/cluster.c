/*
 * cluster.c - shared limits, suspensions and the registry of boxes in
 * Redis, on a thread of their own. See cluster.h for what is kept where.
 *
 * Two sides meet in struct cluster under one mutex:
 *  - the scheduler's thread (cluster_admit, cluster_note_open,
 *    cluster_sync_suspensions) reads the grants and writes its demand;
 *  - the cluster thread, in rounds: under the mutex it notes what to ask
 *    (leases to renew or change, rate cells wanted, registry, suspension
 *    poll, summary), then without the mutex sends it all pipelined and
 *    reads the replies, then under the mutex writes the answers back.
 * Operators' requests (cluster_submit) queue in a small ring under the same
 * mutex and are served between rounds with plain blocking commands.
 *
 * The destination table is open addressing with linear probing over
 * CLUSTER_DESTS_MAX slots; idle entries (no connection, no lease, no cells,
 * unused for a minute) are dropped by rebuilding the table once a minute.
 */
#include "control/cluster.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "common/clock.h"
#include "common/log.h"
#include "control/rate.h"
#include "control/quota.h"
#include "control/route.h"
#include "dataplane/smtp/client_share.h"
#include "queue/queue.h"

const char *const cluster_stat_names[] = { CLUSTER_STATS(STATS_NAME) };
const unsigned cluster_stat_count = STATS_COUNT(cluster_stat_names);

#define PREFIX "sluice:"
#define ROUND_NS (50ull * NS_PER_MS)		/* between rounds when nothing is asked */
#define SUSPEND_POLL_NS (250ull * NS_PER_MS)
#define SUMMARY_NS (1000ull * NS_PER_MS)
#define GC_NS (60ull * NS_PER_SEC)
#define IO_TIMEOUT_MS 2000		/* connect and command timeout: lease_ttl/2, at most this */
#define BACKOFF_MIN_NS (100ull * NS_PER_MS)
#define BACKOFF_MAX_NS (5ull * NS_PER_SEC)
#define DEMAND_NS NS_PER_SEC			/* spare leases kept this long after a want */
#define LINGER_NS NS_PER_SEC			/* a closed connection's lease is kept this
						 * long: its QUIT and FIN may still be on
						 * the way when the lcore says it is done */
#define HUNGRY_RETRY_NS (250ull * NS_PER_MS)	/* got fewer than asked: ask again after */
#define WAIT_LEASE_NS (20ull * NS_PER_MS)	/* admit: ask again after */
#define WAIT_RATE_MIN_NS (5ull * NS_PER_MS)
#define REQ_MAX 16				/* operators' requests waiting */
#define SUSPEND_MAX 256
#define FLUSH_KEEP 64				/* flush requests kept in Redis */
#define QUOTA_KEYS_MAX 4096			/* quota keys followed at once */
#define QUOTA_REFRESH_NS NS_PER_SEC		/* a key's others' counts read again after */
#define QUOTA_IDLE_NS (120ull * NS_PER_SEC)	/* a key not counted since: forgotten */
#define FLUSH_RING 64				/* read, not yet applied here */
#define SUMMARY_DOMAINS_MAX 1000		/* rows a box publishes */
#define ROUND_OPS_MAX (2 * CLUSTER_DESTS_MAX + DEST_CLASSES * CLUSTER_DESTS_MAX + CS_SLOTS + \
		       QUOTA_KEYS_MAX + 8)

/*
 * KEYS[1] lease set, KEYS[2] hungry set; ARGV box, want, limit, now_ms (0:
 * the server's clock), ttl_ms. Returns {granted, others, hungry others}.
 * The box's members are BOX#0..BOX#n-1, all with one expiry.
 */
const char cluster_lease_lua[] =
	"local box, want, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])\n"
	"local now, ttl = tonumber(ARGV[4]), tonumber(ARGV[5])\n"
	"if now == 0 then local t = redis.call('TIME'); now = t[1] * 1000 + math.floor(t[2] / 1000) end\n"
	"redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
	"local names = {}\n"
	"local n = math.max(want, limit, 1)\n"
	"if n > 1000 then n = 1000 end\n"
	"for i = 0, n - 1 do names[i + 1] = box .. '#' .. i end\n"
	"local sc = redis.call('ZMSCORE', KEYS[1], unpack(names))\n"
	"local mine = 0\n"
	"while mine < n and sc[mine + 1] do mine = mine + 1 end\n"
	"local others = redis.call('ZCARD', KEYS[1]) - mine\n"
	"local free = limit - others\n"
	"if free < 0 then free = 0 end\n"
	"local target = want\n"
	"if target > free then target = math.max(free, math.min(want, mine)) end\n"
	"local exp = now + ttl\n"
	"if target > 0 then\n"
	"  local args = {}\n"
	"  for i = 0, target - 1 do args[2 * i + 1] = exp; args[2 * i + 2] = names[i + 1] end\n"
	"  redis.call('ZADD', KEYS[1], unpack(args))\n"
	"  redis.call('PEXPIRE', KEYS[1], 2 * ttl)\n"
	"end\n"
	"if mine > target then redis.call('ZREM', KEYS[1], unpack(names, target + 1, mine)) end\n"
	"local h = redis.call('ZRANGEBYSCORE', KEYS[2], now, '+inf')\n"
	"local hungry = 0\n"
	"for _, b in ipairs(h) do if b ~= box then hungry = hungry + 1 end end\n"
	"if target < want then\n"
	"  redis.call('ZADD', KEYS[2], exp, box)\n"
	"  redis.call('PEXPIRE', KEYS[2], 2 * ttl)\n"
	"elseif #h > hungry then redis.call('ZREM', KEYS[2], box) end\n"
	"return {target, others, hungry}\n";

/*
 * KEYS[1] the TAT; ARGV interval_us (T), burst, want, now_us (0: the
 * server's clock). Takes up to want cells: n = min(want, (now + burst*T -
 * max(TAT, now)) / T). Returns {n, wait_us (when n == 0: until one cell)}.
 */
const char cluster_gcra_lua[] =
	"local T, burst, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
	"local now = tonumber(ARGV[4])\n"
	"if now == 0 then local t = redis.call('TIME'); now = t[1] * 1000000 + t[2] end\n"
	"local tau = T * burst\n"
	"local tat = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
	"if tat < now then tat = now end\n"
	"local n = math.floor((now + tau - tat) / T)\n"
	"if n > want then n = want end\n"
	"if n < 0 then n = 0 end\n"
	"if n > 0 then\n"
	"  tat = tat + n * T\n"
	"  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.floor((tat - now) / 1000) + 1000)\n"
	"  return {n, 0}\n"
	"end\n"
	"return {0, tat + T - tau - now}\n";

/*
 * A client's (or user's) message rate (dataplane/smtp/client_share.h):
 * KEYS[1] its TAT; ARGV interval_us (T = window / limit), limit (the
 * burst), charge, want, now_us (0: the server's clock), reserve. The cells
 * spent from the boxes' local shares are charged first, whatever the level
 * (they are gone), then up to want cells are granted as cluster_gcra_lua
 * grants them, but for `reserve` cells kept back: what the other boxes may
 * have spent from their shares and not charged yet (a round's worth).
 * Without it a client flooding every box gets a grant at each lag of a
 * charge behind its refill, a steady excess; with it, grants come only
 * from what the shares leave unused. Returns the cells granted.
 */
const char cluster_client_lua[] =
	"local T, burst = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
	"local charge, want, now = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])\n"
	"if now == 0 then local t = redis.call('TIME'); now = t[1] * 1000000 + t[2] end\n"
	"local tat = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
	"if tat < now then tat = now end\n"
	"tat = tat + charge * T\n"
	"local n = 0\n"
	"if want > 0 then\n"
	"  n = math.floor((now + T * burst - tat) / T) - tonumber(ARGV[6])\n"
	"  if n > want then n = want end\n"
	"  if n < 0 then n = 0 end\n"
	"  tat = tat + n * T\n"
	"end\n"
	"redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.floor((tat - now) / 1000) + 1000)\n"
	"return n\n";

/*
 * A daily quota's day across the boxes: KEYS[1] the hash
 * quota:DAY:KIND:NAME, field BOX -> "messages recipients" (this box's
 * counts of the day: set, not added, so a lost reply or a repeat changes
 * nothing); ARGV box, messages, recipients. Expires after two days.
 * Returns the other boxes' sums {messages, recipients}.
 */
const char cluster_quota_lua[] =
	"redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. ARGV[3])\n"
	"redis.call('EXPIRE', KEYS[1], 172800)\n"
	"local all = redis.call('HGETALL', KEYS[1])\n"
	"local m, r = 0, 0\n"
	"for i = 1, #all, 2 do\n"
	"  if all[i] ~= ARGV[1] then\n"
	"    local a, b = string.match(all[i + 1], '^(%d+) (%d+)$')\n"
	"    if a then m = m + tonumber(a); r = r + tonumber(b) end\n"
	"  end\n"
	"end\n"
	"return {m, r}\n";

/* KEYS[1] the boxes; ARGV name, ttl_ms. Registers, returns the live count. */
static const char registry_lua[] =
	"local t = redis.call('TIME')\n"
	"local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
	"redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])\n"
	"redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
	"return redis.call('ZCARD', KEYS[1])\n";

/* KEYS[1] the boxes: the live ones with their expiry in ms from now. */
static const char live_lua[] =
	"local t = redis.call('TIME')\n"
	"local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
	"local r = redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf', 'WITHSCORES')\n"
	"for i = 2, #r, 2 do r[i] = tostring(tonumber(r[i]) - now) end\n"
	"return r\n";

/* KEYS[1] the flush list, KEYS[2] its generation; ARGV the domain ("*":
 * all). Appends "GEN DOMAIN", keeps the last FLUSH_KEEP, returns GEN: one
 * script, so a box that sees the generation finds its entry. */
static const char flush_lua[] =
	"local g = redis.call('INCR', KEYS[2])\n"
	"redis.call('RPUSH', KEYS[1], g .. ' ' .. ARGV[1])\n"
	"redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)\n"
	"return g\n";

enum { SCRIPT_LEASE, SCRIPT_GCRA, SCRIPT_REGISTRY, SCRIPT_LIVE, SCRIPT_FLUSH, SCRIPT_CLIENT,
       SCRIPT_QUOTA, SCRIPTS };
static const char *const scripts[SCRIPTS] = { cluster_lease_lua, cluster_gcra_lua, registry_lua,
					      live_lua, flush_lua, cluster_client_lua,
					      cluster_quota_lua };

/* One class's shared message rate at this box. */
struct crate {
	struct rate_spec spec;		/* n == 0: none */
	unsigned tokens;		/* cells granted, not spent */
	uint64_t tokens_until_ns;	/* they are dropped then */
	uint64_t next_ask_ns;		/* Redis said: none before then */
	bool wanted;			/* admit found none: ask */
	struct gcra local;		/* fallback: the rate / boxes */
	unsigned local_boxes;		/* what local was made for (0: not made) */
};

/* One destination as the cluster sees it. */
struct cdest {
	bool used;
	char name[DEST_NAME_MAX];
	unsigned limit;			/* concurrency_limit: connections in the cluster */
	unsigned open;			/* this box's connections (in flight + idle) */
	unsigned open_hi;		/* before the last closes ... */
	uint64_t open_hi_ns;		/* ... until then + LINGER_NS: counted as open */
	unsigned granted;		/* leases held (as of the last answer) */
	unsigned asked;			/* want sent in this round (UINT_MAX: none) */
	bool contended;			/* another box is hungry */
	bool lease_valid;		/* granted is from Redis */
	uint64_t lease_until_ns;	/* when those leases run out unless renewed */
	uint64_t demand_ns;		/* a new connection was last wanted then */
	uint64_t renew_ns;		/* the leases' next renewal */
	uint64_t retry_ns;		/* got fewer than asked: ask again then */
	uint64_t used_ns;		/* last admit or note */
	struct crate rate[DEST_CLASSES];
};

/* An operator's request (a route's spec, blanks and all, is one word). */
struct creq {
	int argc;
	char words[4][CLUSTER_ROUTE_SPEC_MAX];
	cluster_done_fn done;
	void *user;
};

struct csusp {
	char dom[256];
	uint64_t until_s;		/* 0: until resumed */
};

/* A daily quota key's day, as this box follows it (cluster_quota). */
struct cquota {
	bool used;
	char kind;			/* 'u' user, 'c' client */
	char name[QUOTA_NAME_MAX + 3];
	uint64_t day;			/* UTC day */
	uint32_t here_m, here_r;	/* this box's counts (from its store) */
	uint32_t sent_m, sent_r;	/* as last written to Redis */
	uint32_t else_m, else_r;	/* the other boxes', as last read */
	uint64_t read_ns;		/* last read (0: never) */
	uint64_t used_ns;		/* last counted */
};

/* A shared runtime route: the router's key ("example.com", ".example.com")
 * and its spec as route_set takes it. */
struct croute {
	char key[CLUSTER_ROUTE_KEY_MAX];
	char spec[CLUSTER_ROUTE_SPEC_MAX];
};

/* What one pipelined command in a round is for. OP_GENS reads the three
 * generations (suspensions, routes, flushes) with one MGET; the others
 * follow only when one changed. */
enum op_kind { OP_REGISTRY, OP_LEASE, OP_RATE, OP_GENS, OP_SUSPEND_ALL, OP_SUMMARY,
	       OP_ROUTE_ALL, OP_FLUSH_LIST, OP_CLIENT, OP_QUOTA };
#define WANT_SUSP 1u
#define WANT_ROUTES 2u
#define WANT_FLUSH 4u
#define WANT_RESTORE 8u		/* Redis lost the shared state: put ours back */
struct rop {
	enum op_kind kind;
	unsigned idx;			/* cdest */
	unsigned cls;
	unsigned want;
};

struct cluster {
	struct cluster_conf c;
	char host[CLUSTER_ADDR_MAX];
	uint16_t port;
	struct queue *q;
	pthread_t thread;
	bool started;
	atomic_bool stop;

	/* the cluster thread's alone */
	redisContext *rc;
	char sha[SCRIPTS][48];
	uint64_t next_connect_ns, backoff_ns;
	uint64_t next_registry_ns, next_suspend_ns, next_summary_ns, next_gc_ns;
	long long suspend_gen;		/* last seen; -1: none */
	long long route_gen;		/* last seen; -1: none */
	bool suspend_seen, route_seen;	/* a generation was read once (kept across
					 * reconnects: its loss means Redis lost
					 * the state, restore_shared) */
	long long flush_gen;		/* the last flush taken (-1: none yet: the
					 * first reading only sets it, old flushes
					 * are not replayed) */
	bool ever_down;			/* an outage is in progress (logged once) */
	struct rop *ops;
	unsigned nops;
	struct cs_reader *csr;		/* the client slots as last read */
	char why[300];			/* an operator's request's error, for serve() */
	struct cs_report *creports;	/* CS_SLOTS: this round's (OP_CLIENT idx) */
	char *summary;			/* the JSON to publish this round */

	struct client_share *cs;	/* the lcores' message-rate slots (set once,
					 * by cluster_client_share); NULL: none */

	/* under mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool kick;			/* the scheduler wants a round now */
	bool connected;
	bool tried;			/* the first connect has been tried: until then
					 * admit waits rather than falls back */
	unsigned boxes;			/* last known, >= 1 */
	struct cdest *tab, *tab2;	/* CLUSTER_DESTS_MAX each (tab2: for the rebuild) */
	unsigned ndests;
	struct creq req[REQ_MAX];
	unsigned req_head, req_n;
	struct csusp susp[SUSPEND_MAX];	/* as read from Redis */
	unsigned nsusp;
	uint64_t susp_gen;		/* bumped when susp changed */
	uint64_t susp_applied;		/* the gen the scheduler applied */
	struct csusp applied[SUSPEND_MAX];	/* what the scheduler was told */
	unsigned napplied;
	struct cquota *quotas, *quotas2;	/* QUOTA_KEYS_MAX each, open addressing
						 * (quotas2: for the rebuild) */
	unsigned nquotas;
	struct croute *routes;		/* CLUSTER_ROUTES_MAX, as read from Redis */
	unsigned nroutes;
	uint64_t routes_gen, routes_applied;	/* as susp_gen, susp_applied */
	struct croute *rapplied, *rtmp;	/* the plane's: what it was told; scratch */
	unsigned nrapplied;
	char flushes[FLUSH_RING][256];	/* read, not yet applied ("": all) */
	unsigned flush_head, flush_n;
	struct cluster_stats st;
};

static void op_add(struct cluster *cl, enum op_kind k, unsigned idx, unsigned cls, unsigned want);
static redisReply *command(struct cluster *cl, const char **err, int argc, const char **argv);

/* ---- configuration ------------------------------------------------------------ */

int cluster_addr_parse(const char *redis, char *host, size_t hostlen, uint16_t *port)
{
	const char *colon;
	char *end;
	unsigned long p;

	if (!redis[0] || strlen(redis) >= hostlen)
		return -1;
	if (redis[0] == '/') {
		snprintf(host, hostlen, "%s", redis);
		*port = 0;
		return 0;
	}
	colon = strrchr(redis, ':');
	if (!colon || colon == redis)
		return -1;
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || p == 0 || p > 65535)
		return -1;
	snprintf(host, hostlen, "%.*s", (int)(colon - redis), redis);
	*port = (uint16_t)p;
	return 0;
}

int cluster_conf_check(const struct cluster_conf *c, const char **key, char *err, size_t errlen)
{
	char host[CLUSTER_ADDR_MAX];
	uint16_t port;

	if (!c->redis[0])
		return 0;
	if (cluster_addr_parse(c->redis, host, sizeof(host), &port) < 0) {
		*key = "redis";
		snprintf(err, errlen, "'%s' is neither HOST:PORT (127.0.0.1:6379) nor the path of a "
			 "Unix socket", c->redis);
		return -1;
	}
	if (c->tls) {
		*key = "tls";
		snprintf(err, errlen, "Debian 12's hiredis (0.14) has no TLS: reach Redis over a "
			 "Unix socket, loopback or a tunnel (stunnel), and set tls = no");
		return -1;
	}
	if (!c->name[0]) {
		*key = "name";
		snprintf(err, errlen, "this box needs a name (or [smtp] hostname)");
		return -1;
	}
	for (const char *p = c->name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_')) {
			*key = "name";
			snprintf(err, errlen, "'%s': a box's name is letters, digits, '-', '.', '_'",
				 c->name);
			return -1;
		}
	if (c->lease_ttl_ns < NS_PER_SEC || c->lease_ttl_ns > 600 * NS_PER_SEC) {
		*key = "lease_ttl";
		snprintf(err, errlen, "from 1s to 10m");
		return -1;
	}
	return 0;
}

/* ---- the destination table ------------------------------------------------------ */

static uint64_t hash_name(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

/* dest's entry in tab, made if make (NULL: not there / full). Under mu. */
static struct cdest *find(struct cdest *tab, const char *name, bool make, unsigned *ndests)
{
	size_t i = hash_name(name) & (CLUSTER_DESTS_MAX - 1);

	for (unsigned k = 0; k < CLUSTER_DESTS_MAX; k++, i = (i + 1) & (CLUSTER_DESTS_MAX - 1)) {
		struct cdest *e = &tab[i];
		if (!e->used) {
			if (!make || *ndests >= CLUSTER_DESTS_MAX * 3 / 4)
				return NULL;
			memset(e, 0, sizeof(*e));
			e->used = true;
			snprintf(e->name, sizeof(e->name), "%s", name);
			e->asked = UINT32_MAX;
			(*ndests)++;
			return e;
		}
		if (strcmp(e->name, name) == 0)
			return e;
	}
	return NULL;
}
_Static_assert((CLUSTER_DESTS_MAX & (CLUSTER_DESTS_MAX - 1)) == 0, "a power of two");

static bool dest_idle_here(const struct cdest *e, uint64_t now)
{
	if (e->open || e->granted || now - e->used_ns < GC_NS)
		return false;
	for (int c = 0; c < DEST_CLASSES; c++)
		if (e->rate[c].tokens)
			return false;
	return true;
}

/* Drop idle entries: rebuild into tab2 and swap. Under mu. */
static void gc(struct cluster *cl, uint64_t now)
{
	unsigned n = 0;

	memset(cl->tab2, 0, CLUSTER_DESTS_MAX * sizeof(*cl->tab2));
	for (unsigned i = 0; i < CLUSTER_DESTS_MAX; i++) {
		struct cdest *e = &cl->tab[i], *f;
		if (!e->used || dest_idle_here(e, now))
			continue;
		f = find(cl->tab2, e->name, true, &n);
		if (f)
			*f = *e;
	}
	struct cdest *t = cl->tab;
	cl->tab = cl->tab2;
	cl->tab2 = t;
	cl->ndests = n;
}

/* ---- the scheduler's side ---------------------------------------------------------- */

static unsigned share_of(unsigned limit, unsigned boxes)
{
	unsigned s = (limit + boxes - 1) / (boxes ? boxes : 1);
	return s ? s : 1;
}

/* The scheduler's count of open connections: a drop leaves the previous
 * count standing for LINGER_NS (the connections may still be closing). */
static void open_set(struct cdest *e, unsigned open, uint64_t now)
{
	if (open < e->open) {
		if (now - e->open_hi_ns >= LINGER_NS || e->open_hi < e->open)
			e->open_hi = e->open;
		e->open_hi_ns = now;
	}
	e->open = open;
}

/* Connections to count against the leases: open, or more while some linger. */
static unsigned open_held(const struct cdest *e, uint64_t now)
{
	if (e->open_hi > e->open && now - e->open_hi_ns < LINGER_NS)
		return e->open_hi;
	return e->open;
}

static void kick(struct cluster *cl)
{
	if (!cl->kick) {
		cl->kick = true;
		pthread_cond_signal(&cl->cv);
	}
}

/* The connection side of cluster_admit. 0 or the wait. Under mu. */
static uint64_t admit_conn(struct cluster *cl, struct cdest *e, bool new_conn, unsigned open,
			   uint64_t now, bool *keep)
{
	unsigned share = share_of(e->limit, cl->boxes), cap;

	open_set(e, open, now);
	if (new_conn)	/* closing ones count until they are surely gone */
		open = open_held(e, now);

	if (e->lease_valid && (cl->connected || now < e->lease_until_ns)) {
		/* ours until they run out, even while Redis does not answer */
		cap = e->granted;
		if (open > cap || (e->contended && open > share))
			*keep = false;
	} else if (cl->connected) {
		cap = 0;		/* not asked yet: ask first */
	} else {
		cap = share;		/* fallback: our share of the limit */
		if (open > cap)
			*keep = false;
	}
	if (!new_conn)
		return 0;
	e->demand_ns = now;
	if (open < cap) {
		if (!cl->connected)
			cl->st.fallback_admits++;
		return 0;
	}
	cl->st.lease_waits++;
	if (cl->connected)
		kick(cl);
	return WAIT_LEASE_NS;
}

/* The rate side: 0 and a cell spent, or the wait. Under mu. */
static uint64_t admit_rate(struct cluster *cl, struct cdest *e, const struct rate_spec *spec,
			   struct crate *r, uint64_t now)
{
	if (spec->n == 0)
		return 0;
	if (memcmp(&r->spec, spec, sizeof(*spec)) != 0) {	/* new, or reloaded */
		r->spec = *spec;
		r->tokens = 0;
		r->local_boxes = 0;
	}
	if (!cl->connected) {
		uint64_t w;
		if (r->local_boxes != cl->boxes) {
			struct rate_spec s = *spec;
			s.period_ns *= cl->boxes;
			rate_init(&r->local, &s);
			r->local_boxes = cl->boxes;
		}
		w = rate_take(&r->local, now, 1);
		if (w == 0) {
			cl->st.fallback_admits++;
			return 0;
		}
		cl->st.rate_waits++;
		return w == RATE_NEVER ? NS_PER_SEC : w;
	}
	if (r->tokens && now >= r->tokens_until_ns) {
		cl->st.rate_dropped += r->tokens;
		r->tokens = 0;
	}
	if (r->tokens) {
		r->tokens--;
		return 0;
	}
	cl->st.rate_waits++;
	if (!r->wanted) {
		r->wanted = true;
		kick(cl);
	}
	return r->next_ask_ns > now + WAIT_RATE_MIN_NS ? r->next_ask_ns - now : WAIT_RATE_MIN_NS;
}

uint64_t cluster_admit(struct cluster *cl, const char *dest, const struct dest_conf *conf,
		       enum dest_class cls, bool new_conn, unsigned open, uint64_t now_ns,
		       bool *keep)
{
	struct cdest *e;
	uint64_t w;

	*keep = true;
	if ((unsigned)cls >= DEST_CLASSES)
		return 0;
	pthread_mutex_lock(&cl->mu);
	if (!cl->tried) {	/* starting: the first answer is on its way */
		pthread_mutex_unlock(&cl->mu);
		return WAIT_LEASE_NS;
	}
	e = find(cl->tab, dest, true, &cl->ndests);
	if (!e) {	/* the table is full: decided here alone */
		cl->st.fallback_admits++;
		pthread_mutex_unlock(&cl->mu);
		return 0;
	}
	e->used_ns = now_ns;
	e->limit = conf->cls[DEST_NORMAL].concurrency_limit;
	w = admit_conn(cl, e, new_conn, open, now_ns, keep);
	if (w == 0)
		w = admit_rate(cl, e, &conf->cls[cls].message_rate, &e->rate[cls], now_ns);
	pthread_mutex_unlock(&cl->mu);
	return w;
}

void cluster_note_open(struct cluster *cl, const char *dest, unsigned open)
{
	struct cdest *e;

	pthread_mutex_lock(&cl->mu);
	e = find(cl->tab, dest, false, &cl->ndests);
	if (e && e->open != open) {
		e->used_ns = clock_mono_ns();
		open_set(e, open, e->used_ns);
	}
	pthread_mutex_unlock(&cl->mu);
}

unsigned cluster_sync_suspensions(struct cluster *cl, cluster_suspend_fn sus,
				  cluster_resume_fn res, void *user)
{
	struct csusp now[SUSPEND_MAX];
	unsigned n, changes = 0;
	uint64_t t = clock_real_s();

	pthread_mutex_lock(&cl->mu);
	if (cl->susp_applied == cl->susp_gen) {
		pthread_mutex_unlock(&cl->mu);
		return 0;
	}
	n = cl->nsusp;
	memcpy(now, cl->susp, n * sizeof(now[0]));
	cl->susp_applied = cl->susp_gen;
	pthread_mutex_unlock(&cl->mu);

	/* resumed: applied before, not now */
	for (unsigned i = 0; i < cl->napplied; i++) {
		bool still = false;
		for (unsigned k = 0; k < n && !still; k++)
			still = strcmp(now[k].dom, cl->applied[i].dom) == 0;
		if (!still) {
			res(user, cl->applied[i].dom);
			changes++;
		}
	}
	/* new or changed */
	for (unsigned k = 0; k < n; k++) {
		bool same = false;
		for (unsigned i = 0; i < cl->napplied && !same; i++)
			same = strcmp(now[k].dom, cl->applied[i].dom) == 0 &&
			       now[k].until_s == cl->applied[i].until_s;
		if (same)
			continue;
		if (now[k].until_s && now[k].until_s <= t)
			continue;	/* ran out already */
		sus(user, now[k].dom, now[k].until_s ? now[k].until_s - t : 0);
		changes++;
	}
	memcpy(cl->applied, now, n * sizeof(now[0]));
	cl->napplied = n;
	pthread_mutex_lock(&cl->mu);
	cl->st.suspensions_applied += changes;
	pthread_mutex_unlock(&cl->mu);
	return changes;
}

unsigned cluster_sync_routes(struct cluster *cl, cluster_route_set_fn set,
			     cluster_route_clear_fn clear, void *user)
{
	struct croute *now = cl->rtmp;
	unsigned n, changes = 0;

	pthread_mutex_lock(&cl->mu);
	if (cl->routes_applied == cl->routes_gen) {
		pthread_mutex_unlock(&cl->mu);
		return 0;
	}
	n = cl->nroutes;
	memcpy(now, cl->routes, n * sizeof(now[0]));
	cl->routes_applied = cl->routes_gen;
	pthread_mutex_unlock(&cl->mu);

	for (unsigned i = 0; i < cl->nrapplied; i++) {	/* cleared in the cluster */
		bool still = false;
		for (unsigned k = 0; k < n && !still; k++)
			still = strcmp(now[k].key, cl->rapplied[i].key) == 0;
		if (!still) {
			clear(user, cl->rapplied[i].key);
			changes++;
		}
	}
	for (unsigned k = 0; k < n; k++) {	/* new or changed */
		bool same = false;
		for (unsigned i = 0; i < cl->nrapplied && !same; i++)
			same = strcmp(now[k].key, cl->rapplied[i].key) == 0 &&
			       strcmp(now[k].spec, cl->rapplied[i].spec) == 0;
		if (same)
			continue;
		set(user, now[k].key, now[k].spec);
		changes++;
	}
	memcpy(cl->rapplied, now, n * sizeof(now[0]));
	cl->nrapplied = n;
	pthread_mutex_lock(&cl->mu);
	cl->st.routes_applied += changes;
	pthread_mutex_unlock(&cl->mu);
	return changes;
}

unsigned cluster_sync_flushes(struct cluster *cl, cluster_flush_fn fn, void *user)
{
	char dom[256];
	unsigned changes = 0;

	for (;;) {
		pthread_mutex_lock(&cl->mu);
		if (!cl->flush_n) {
			cl->st.flushes_applied += changes;
			pthread_mutex_unlock(&cl->mu);
			return changes;
		}
		memcpy(dom, cl->flushes[cl->flush_head], sizeof(dom));
		cl->flush_head = (cl->flush_head + 1) % FLUSH_RING;
		cl->flush_n--;
		pthread_mutex_unlock(&cl->mu);
		fn(user, dom[0] ? dom : NULL);
		changes++;
	}
}

void cluster_client_share(struct cluster *cl, struct client_share *cs)
{
	pthread_mutex_lock(&cl->mu);
	cl->cs = cs;
	atomic_store(&cs->boxes, cl->boxes);
	atomic_store(&cs->connected, cl->connected);
	atomic_store(&cs->active, true);
	pthread_mutex_unlock(&cl->mu);
	log_info("cluster: per-client and per-user message rates are shared (local share "
		 "+ Redis grants)");
}

/* kind+name's entry in tab (made if make; NULL: not there or full). Under mu. */
static struct cquota *quota_find(struct cquota *tab, char kind, const char *name, bool make,
				 unsigned *n)
{
	size_t i = (hash_name(name) ^ (uint8_t)kind) & (QUOTA_KEYS_MAX - 1);

	for (unsigned k = 0; k < QUOTA_KEYS_MAX; k++, i = (i + 1) & (QUOTA_KEYS_MAX - 1)) {
		struct cquota *e = &tab[i];
		if (!e->used) {
			if (!make || *n >= QUOTA_KEYS_MAX * 3 / 4)
				return NULL;
			memset(e, 0, sizeof(*e));
			e->used = true;
			e->kind = kind;
			snprintf(e->name, sizeof(e->name), "%s", name);
			(*n)++;
			return e;
		}
		if (e->kind == kind && strcmp(e->name, name) == 0)
			return e;
	}
	return NULL;
}
_Static_assert((QUOTA_KEYS_MAX & (QUOTA_KEYS_MAX - 1)) == 0, "a power of two");

void cluster_quota(void *user, char kind, const char *name, uint64_t day, uint32_t msgs_here,
		   uint32_t rcpts_here, uint32_t *msgs_else, uint32_t *rcpts_else)
{
	struct cluster *cl = user;
	struct cquota *e;

	*msgs_else = *rcpts_else = 0;
	pthread_mutex_lock(&cl->mu);
	e = quota_find(cl->quotas, kind, name, true, &cl->nquotas);
	if (!e) {
		cl->st.quota_untracked++;
	} else {
		if (e->day != day) {	/* a new day (or a new key): from nothing */
			e->day = day;
			e->sent_m = e->sent_r = e->else_m = e->else_r = 0;
			e->read_ns = 0;
		}
		e->here_m = msgs_here;
		e->here_r = rcpts_here;
		e->used_ns = clock_mono_ns();
		*msgs_else = e->else_m;
		*rcpts_else = e->else_r;
		cl->st.quota_counted++;
	}
	pthread_mutex_unlock(&cl->mu);
}

/* Under mu: this round's quota keys (a count changed here, or the others'
 * are a second old on a key counted in the last 10 s); idle keys dropped
 * by rebuilding the table. */
static void plan_quotas(struct cluster *cl, uint64_t now)
{
	bool idle = false;

	for (unsigned i = 0; i < QUOTA_KEYS_MAX; i++) {
		struct cquota *e = &cl->quotas[i];
		if (!e->used)
			continue;
		if (now - e->used_ns >= QUOTA_IDLE_NS && e->here_m == e->sent_m &&
		    e->here_r == e->sent_r) {
			idle = true;
			continue;
		}
		if (e->here_m != e->sent_m || e->here_r != e->sent_r ||
		    (now - e->used_ns < 10 * NS_PER_SEC && now - e->read_ns >= QUOTA_REFRESH_NS)) {
			e->sent_m = e->here_m;
			e->sent_r = e->here_r;
			op_add(cl, OP_QUOTA, i, 0, 0);
		}
	}
	if (!idle || cl->nops)	/* a rebuild moves entries: not while ops name them */
		return;
	unsigned n = 0;
	memset(cl->quotas2, 0, QUOTA_KEYS_MAX * sizeof(*cl->quotas2));
	for (unsigned i = 0; i < QUOTA_KEYS_MAX; i++) {
		struct cquota *e = &cl->quotas[i], *f;
		if (!e->used || now - e->used_ns >= QUOTA_IDLE_NS)
			continue;
		if ((f = quota_find(cl->quotas2, e->kind, e->name, true, &n)))
			*f = *e;
	}
	struct cquota *t = cl->quotas;
	cl->quotas = cl->quotas2;
	cl->quotas2 = t;
	cl->nquotas = n;
}

void cluster_stats_get(struct cluster *cl, struct cluster_stats *out)
{
	pthread_mutex_lock(&cl->mu);
	*out = cl->st;
	if (cl->cs) {
		out->client_slots_full = atomic_load(&cl->cs->slots_full);
		out->client_grants_used = atomic_load(&cl->cs->granted_taken);
	}
	out->connected = cl->connected;
	out->boxes = cl->boxes;
	out->dests = cl->ndests;
	pthread_mutex_unlock(&cl->mu);
}

/* ---- the connection ------------------------------------------------------------------- */

static void disconnect(struct cluster *cl, const char *reason)
{
	char why[160];
	bool was;

	snprintf(why, sizeof(why), "%s", reason && reason[0] ? reason : "connection lost");
	if (cl->rc) {
		redisFree(cl->rc);
		cl->rc = NULL;
	}
	pthread_mutex_lock(&cl->mu);
	was = cl->connected;
	cl->connected = false;
	if (cl->cs)	/* no grants: each box holds a client to its share */
		atomic_store(&cl->cs->connected, false);
	cl->tried = true;
	cl->st.redis_errors++;
	if (was || !cl->ever_down)
		cl->st.fallback_entered++;
	pthread_mutex_unlock(&cl->mu);
	if (!cl->ever_down) {
		log_warn("cluster: redis %s unreachable (%s): local limits divided by %u box(es) "
			 "until it answers", cl->c.redis, why, cl->boxes);
		cl->ever_down = true;
	}
}

/* A reply that is an error or missing: its text. */
static const char *reply_error(const redisReply *r, const redisContext *c)
{
	if (!r)
		return c && c->errstr[0] ? c->errstr : "no reply";
	if (r->type == REDIS_REPLY_ERROR)
		return r->str;
	return NULL;
}

/* Connect, AUTH, load the scripts. 0, or -1 (disconnected, backoff set). */
static int connect_redis(struct cluster *cl)
{
	uint64_t io_ms = cl->c.lease_ttl_ns / NS_PER_MS / 2;
	struct timeval tv;
	uint64_t now = clock_mono_ns();
	redisReply *r;
	const char *e;

	if (now < cl->next_connect_ns)
		return -1;
	if (io_ms > IO_TIMEOUT_MS)
		io_ms = IO_TIMEOUT_MS;
	tv.tv_sec = (time_t)(io_ms / 1000);
	tv.tv_usec = (suseconds_t)(io_ms % 1000) * 1000;
	cl->rc = cl->port ? redisConnectWithTimeout(cl->host, cl->port, tv) :
			    redisConnectUnixWithTimeout(cl->host, tv);
	if (!cl->rc || cl->rc->err)
		goto fail;
	if (redisSetTimeout(cl->rc, tv) != REDIS_OK)
		goto fail;
	if (cl->c.password[0]) {
		r = redisCommand(cl->rc, "AUTH %s", cl->c.password);
		e = reply_error(r, cl->rc);
		if (e) {
			log_err("cluster: redis %s refused AUTH: %s", cl->c.redis, e);
			freeReplyObject(r);
			goto fail;
		}
		freeReplyObject(r);
	}
	for (int i = 0; i < SCRIPTS; i++) {
		r = redisCommand(cl->rc, "SCRIPT LOAD %s", scripts[i]);
		if (reply_error(r, cl->rc) || r->type != REDIS_REPLY_STRING ||
		    r->len >= (int)sizeof(cl->sha[i])) {
			if (r && r->type == REDIS_REPLY_ERROR)
				log_err("cluster: redis %s: SCRIPT LOAD: %s", cl->c.redis, r->str);
			freeReplyObject(r);
			goto fail;
		}
		memcpy(cl->sha[i], r->str, (size_t)r->len + 1);
		freeReplyObject(r);
	}
	cl->backoff_ns = BACKOFF_MIN_NS;
	cl->next_registry_ns = cl->next_suspend_ns = cl->next_summary_ns = 0;
	cl->suspend_gen = cl->route_gen = cl->flush_gen = -1;
	pthread_mutex_lock(&cl->mu);
	for (unsigned i = 0; i < CLUSTER_DESTS_MAX; i++)	/* renew them all now: a
								 * restarted Redis knows none */
		cl->tab[i].renew_ns = cl->tab[i].retry_ns = 0;
	for (unsigned i = 0; i < QUOTA_KEYS_MAX; i++)	/* written again: Redis may
							 * have lost them */
		cl->quotas[i].sent_m = cl->quotas[i].sent_r = UINT32_MAX;
	cl->connected = true;
	cl->tried = true;
	cl->st.reconnects++;
	if (cl->cs)
		atomic_store(&cl->cs->connected, true);
	pthread_mutex_unlock(&cl->mu);
	if (cl->ever_down)
		log_notice("cluster: redis %s answers again: shared limits resume", cl->c.redis);
	else
		log_info("cluster: box %s on redis %s", cl->c.name, cl->c.redis);
	cl->ever_down = false;
	return 0;
fail:
	disconnect(cl, cl->rc && cl->rc->errstr[0] ? cl->rc->errstr : "cannot connect");
	cl->next_connect_ns = now + cl->backoff_ns;
	cl->backoff_ns = cl->backoff_ns * 2 > BACKOFF_MAX_NS ? BACKOFF_MAX_NS : cl->backoff_ns * 2;
	return -1;
}

/* ---- rounds ---------------------------------------------------------------------------- */

static void op_add(struct cluster *cl, enum op_kind k, unsigned idx, unsigned cls, unsigned want)
{
	cl->ops[cl->nops++] = (struct rop){ .kind = k, .idx = idx, .cls = cls, .want = want };
}

/* The rate cells to ask for at once: a fifth of a second's worth, at least
 * the burst, at most 1000 (also the GCRA burst in Redis). */
static unsigned rate_batch(const struct rate_spec *s)
{
	double per_s = (double)s->n * 1e9 / (double)s->period_ns;
	unsigned b = (unsigned)ceil(per_s / 5);

	if (b < s->burst)
		b = s->burst;
	return b > 1000 ? 1000 : b ? b : 1;
}

/* The cells a client key asks for at once: a fifth of a second's worth of
 * its limit, at least 1, at most the limit and 1000. */
static unsigned client_batch(const struct cs_report *c)
{
	double per_s = (double)c->limit * 1e9 / (double)(c->window_ns ? c->window_ns : 1);
	unsigned b = (unsigned)ceil(per_s / 5);

	if (b > c->limit)
		b = c->limit;
	return b > 1000 ? 1000 : b ? b : 1;
}

/* The cells Redis keeps back from grants (cluster_client_lua): the other
 * boxes' spending of a round trip and a round, 200 ms of the rate, plus
 * one; less than half the limit. */
static unsigned client_reserve(const struct cs_report *c)
{
	double per_s = (double)c->limit * 1e9 / (double)(c->window_ns ? c->window_ns : 1);
	unsigned r = (unsigned)ceil(per_s / 5) + 1;

	return r < c->limit / 2 ? r : c->limit / 2;
}

/* Under mu: what this round asks for each destination. Leases: when the
 * wanted number differs from the one held, or the renewal is due; a box
 * that got fewer than it asked asks again after WAIT_LEASE_NS * 5 at the
 * soonest. Rates: cells when admit found none. */
static void plan_dests(struct cluster *cl, uint64_t now)
{
	for (unsigned i = 0; i < CLUSTER_DESTS_MAX; i++) {
		struct cdest *e = &cl->tab[i];
		unsigned cap, want;
		bool need;
		if (!e->used)
			continue;
		unsigned held = open_held(e, now);
		cap = e->contended ? share_of(e->limit, cl->boxes) : e->limit;
		want = held;
		if (e->demand_ns && now - e->demand_ns < DEMAND_NS) {
			unsigned w = held + CLUSTER_LEASE_SPARE;
			if (w > cap)
				w = cap;
			if (w > want)
				want = w;
		}
		/* a round trip only for a lease more, a surplus beyond the spare,
		 * the last ones let go, or the renewal */
		if (!e->lease_valid)
			need = want > 0;
		else if (want > e->granted)
			need = now >= e->retry_ns;
		else
			need = e->granted > want + CLUSTER_LEASE_SPARE ||
			       (want == 0 && e->granted > 0) || (e->granted && now >= e->renew_ns);
		if (need) {
			e->asked = want;
			op_add(cl, OP_LEASE, i, 0, want);
		}
		for (unsigned c = 0; c < DEST_CLASSES; c++) {
			struct crate *r = &e->rate[c];
			if (!r->wanted || r->spec.n == 0 || now < r->next_ask_ns)
				continue;
			op_add(cl, OP_RATE, i, c, rate_batch(&r->spec));
		}
	}
}

/* Queue one command of the round; a failure (no memory) fails the round. */
static void append_cmd(struct cluster *cl, int argc, const char **argv, bool *failed)
{
	if (redisAppendCommandArgv(cl->rc, argc, argv, NULL) != REDIS_OK)
		*failed = true;
}

/* Queue the round's commands (ops) to be sent pipelined: 0, or -1 (one
 * could not be queued: the round is abandoned). */
static int send_ops(struct cluster *cl)
{
	bool failed = false;
	char key[DEST_NAME_MAX + 64], k2[DEST_NAME_MAX + 64], a1[32], a2[32], a3[32], a4[32];
	char a5[32];
	char ttl[32];

	snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)(cl->c.lease_ttl_ns / NS_PER_MS));
	for (unsigned k = 0; k < cl->nops; k++) {
		const struct rop *o = &cl->ops[k];
		const struct cdest *e = &cl->tab[o->idx];
		switch (o->kind) {
		case OP_REGISTRY: {
			const char *v[] = { "EVALSHA", cl->sha[SCRIPT_REGISTRY], "1", PREFIX "boxes",
					    cl->c.name, ttl };
			append_cmd(cl, 6, v, &failed);
			break;
		}
		case OP_LEASE: {
			snprintf(key, sizeof(key), PREFIX "lease:%s", e->name);
			snprintf(k2, sizeof(k2), PREFIX "hungry:%s", e->name);
			snprintf(a1, sizeof(a1), "%u", o->want);
			snprintf(a2, sizeof(a2), "%u", e->limit);
			const char *v[] = { "EVALSHA", cl->sha[SCRIPT_LEASE], "2", key, k2, cl->c.name,
					    a1, a2, "0", ttl };
			append_cmd(cl, 10, v, &failed);
			break;
		}
		case OP_RATE: {
			const struct rate_spec *s = &e->rate[o->cls].spec;
			uint64_t t_us = s->period_ns / 1000 / s->n;
			unsigned burst = rate_batch(s);
			snprintf(key, sizeof(key), PREFIX "rate:%s:%u", e->name, o->cls);
			snprintf(a1, sizeof(a1), "%llu", (unsigned long long)(t_us ? t_us : 1));
			snprintf(a2, sizeof(a2), "%u", burst);
			snprintf(a3, sizeof(a3), "%u", o->want);
			snprintf(a4, sizeof(a4), "0");
			const char *v[] = { "EVALSHA", cl->sha[SCRIPT_GCRA], "1", key, a1, a2, a3, a4 };
			append_cmd(cl, 8, v, &failed);
			break;
		}
		case OP_GENS: {
			const char *v[] = { "MGET", PREFIX "suspend:gen", PREFIX "route:gen",
					    PREFIX "flush:gen" };
			append_cmd(cl, 4, v, &failed);
			break;
		}
		case OP_ROUTE_ALL: {
			const char *v[] = { "HGETALL", PREFIX "route" };
			append_cmd(cl, 2, v, &failed);
			break;
		}
		case OP_FLUSH_LIST: {
			const char *v[] = { "LRANGE", PREFIX "flush", "0", "-1" };
			append_cmd(cl, 4, v, &failed);
			break;
		}
		case OP_QUOTA: {
			const struct cquota *q = &cl->quotas[o->idx];
			snprintf(key, sizeof(key), PREFIX "quota:%llu:%c:%s",
				 (unsigned long long)q->day, q->kind, q->name);
			snprintf(a1, sizeof(a1), "%u", q->sent_m);
			snprintf(a2, sizeof(a2), "%u", q->sent_r);
			const char *v[] = { "EVALSHA", cl->sha[SCRIPT_QUOTA], "1", key, cl->c.name,
					    a1, a2 };
			append_cmd(cl, 7, v, &failed);
			break;
		}
		case OP_CLIENT: {
			const struct cs_report *c = &cl->creports[o->idx];
			uint64_t t_us = c->window_ns / 1000 / (c->limit ? c->limit : 1);
			snprintf(key, sizeof(key), PREFIX "client:%s", c->key);
			snprintf(a1, sizeof(a1), "%llu", (unsigned long long)(t_us ? t_us : 1));
			snprintf(a2, sizeof(a2), "%u", c->limit);
			snprintf(a3, sizeof(a3), "%u", c->charge);
			snprintf(a4, sizeof(a4), "%u", o->want);
			snprintf(a5, sizeof(a5), "%u", client_reserve(c));
			const char *v[] = { "EVALSHA", cl->sha[SCRIPT_CLIENT], "1", key, a1, a2, a3,
					    a4, "0", a5 };
			append_cmd(cl, 10, v, &failed);
			break;
		}
		case OP_SUSPEND_ALL: {
			const char *v[] = { "HGETALL", PREFIX "suspend" };
			append_cmd(cl, 2, v, &failed);
			break;
		}
		case OP_SUMMARY: {
			snprintf(key, sizeof(key), PREFIX "box:%s", cl->c.name);
			const char *v[] = { "SET", key, cl->summary, "PX", ttl };
			append_cmd(cl, 5, v, &failed);
			break;
		}
		}
	}
	return failed ? -1 : 0;
}

static long long int_at(const redisReply *r, size_t i)
{
	if (!r || r->type != REDIS_REPLY_ARRAY || i >= r->elements ||
	    r->element[i]->type != REDIS_REPLY_INTEGER)
		return -1;
	return r->element[i]->integer;
}

/* Under mu: one reply of the round. false: the reply makes no sense. */
static bool take_reply(struct cluster *cl, const struct rop *o, redisReply *r, uint64_t now,
		       unsigned *want)
{
	struct cdest *e = &cl->tab[o->idx];

	switch (o->kind) {
	case OP_REGISTRY:
		if (r->type != REDIS_REPLY_INTEGER || r->integer < 1)
			return false;
		cl->boxes = (unsigned)r->integer;
		if (cl->cs)
			atomic_store(&cl->cs->boxes, cl->boxes);
		return true;
	case OP_LEASE: {
		long long g = int_at(r, 0), hungry = int_at(r, 2);
		if (g < 0 || hungry < 0)
			return false;
		cl->st.lease_calls++;
		cl->st.leases_granted += (uint64_t)g;
		if (e->used && e->asked == o->want) {
			e->granted = (unsigned)g;
			e->contended = hungry > 0;
			e->lease_valid = true;
			e->renew_ns = now + cl->c.lease_ttl_ns / 3;
			e->lease_until_ns = now + cl->c.lease_ttl_ns;
			e->retry_ns = (unsigned)g < o->want ? now + HUNGRY_RETRY_NS : 0;
		}
		return true;
	}
	case OP_RATE: {
		long long n = int_at(r, 0), wait_us = int_at(r, 1);
		struct crate *rt = &e->rate[o->cls];
		if (n < 0 || wait_us < 0)
			return false;
		cl->st.rate_calls++;
		cl->st.rate_cells += (uint64_t)n;
		if (!e->used)
			return true;
		if (n > 0) {	/* a small grant: the next ask waits for half a batch */
			unsigned half = rate_batch(&rt->spec) / 2;
			rt->tokens += (unsigned)n;
			rt->tokens_until_ns = now + CLUSTER_KEEP_NS;
			rt->wanted = false;
			rt->next_ask_ns = (unsigned)n < half ?
				now + (half - (unsigned)n) * (rt->spec.period_ns / rt->spec.n) : 0;
		} else {	/* none left: ask when half a batch has come back */
			uint64_t t_ns = rt->spec.period_ns / rt->spec.n;
			rt->next_ask_ns = now + (uint64_t)wait_us * 1000 +
					  (rate_batch(&rt->spec) / 2) * t_ns;
		}
		return true;
	}
	case OP_GENS: {
		long long g[3] = { 0, 0, 0 };
		bool nil[3] = { false, false, false };
		if (r->type != REDIS_REPLY_ARRAY || r->elements != 3)
			return false;
		for (int i = 0; i < 3; i++) {
			if (r->element[i]->type == REDIS_REPLY_STRING)
				g[i] = strtoll(r->element[i]->str, NULL, 10);
			else if (r->element[i]->type == REDIS_REPLY_NIL)
				nil[i] = true;
			else
				return false;
		}
		/* A generation this box read once (the first change INCRs it) is gone:
		 * Redis lost its data (restarted empty, flushed), not a change
		 * of the operators'. Applying the empty hashes would end every
		 * suspension and route on every box: put this box's copy back
		 * instead (restore_shared), and read it again after that. */
		if ((nil[0] && cl->suspend_seen) || (nil[1] && cl->route_seen)) {
			*want |= WANT_RESTORE;
			g[0] = cl->suspend_gen;
			g[1] = cl->route_gen;
		}
		cl->suspend_seen |= !nil[0];
		cl->route_seen |= !nil[1];
		if (g[0] != cl->suspend_gen) {
			cl->suspend_gen = g[0];
			*want |= WANT_SUSP;
		}
		if (g[1] != cl->route_gen) {
			cl->route_gen = g[1];
			*want |= WANT_ROUTES;
		}
		if (cl->flush_gen < 0 || g[2] < cl->flush_gen)
			cl->flush_gen = g[2];	/* (re)started: from now on */
		else if (g[2] != cl->flush_gen)
			*want |= WANT_FLUSH;
		return true;
	}
	case OP_ROUTE_ALL: {
		unsigned n = 0;
		if (r->type != REDIS_REPLY_ARRAY)
			return false;
		for (size_t i = 0; i + 1 < r->elements && n < CLUSTER_ROUTES_MAX; i += 2) {
			if (r->element[i]->type != REDIS_REPLY_STRING ||
			    r->element[i + 1]->type != REDIS_REPLY_STRING ||
			    r->element[i]->len >= CLUSTER_ROUTE_KEY_MAX ||
			    r->element[i + 1]->len >= CLUSTER_ROUTE_SPEC_MAX)
				continue;
			memcpy(cl->routes[n].key, r->element[i]->str, r->element[i]->len + 1);
			memcpy(cl->routes[n].spec, r->element[i + 1]->str,
			       r->element[i + 1]->len + 1);
			n++;
		}
		cl->nroutes = n;
		cl->routes_gen++;
		return true;
	}
	case OP_FLUSH_LIST: {
		long long top = cl->flush_gen;
		if (r->type != REDIS_REPLY_ARRAY)
			return false;
		for (size_t i = 0; i < r->elements; i++) {	/* "GEN DOMAIN", oldest first */
			char *sp;
			long long g;
			if (r->element[i]->type != REDIS_REPLY_STRING)
				continue;
			g = strtoll(r->element[i]->str, &sp, 10);
			if (*sp != ' ' || g <= cl->flush_gen)
				continue;
			if (g > top)
				top = g;
			if (cl->flush_n == FLUSH_RING) {
				cl->st.flushes_dropped++;
				continue;
			}
			snprintf(cl->flushes[(cl->flush_head + cl->flush_n) % FLUSH_RING], 256, "%s",
				 strcmp(sp + 1, "*") == 0 ? "" : sp + 1);
			cl->flush_n++;
		}
		cl->flush_gen = top;
		return true;
	}
	case OP_SUSPEND_ALL: {
		unsigned n = 0;
		if (r->type != REDIS_REPLY_ARRAY)
			return false;
		for (size_t i = 0; i + 1 < r->elements && n < SUSPEND_MAX; i += 2) {
			if (r->element[i]->type != REDIS_REPLY_STRING ||
			    r->element[i + 1]->type != REDIS_REPLY_STRING)
				continue;
			snprintf(cl->susp[n].dom, sizeof(cl->susp[n].dom), "%s", r->element[i]->str);
			cl->susp[n].until_s = strtoull(r->element[i + 1]->str, NULL, 10);
			n++;
		}
		cl->nsusp = n;
		cl->susp_gen++;
		return true;
	}
	case OP_SUMMARY:
		return r->type == REDIS_REPLY_STATUS;
	case OP_QUOTA: {
		struct cquota *q = &cl->quotas[o->idx];
		long long m = int_at(r, 0), n = int_at(r, 1);
		if (m < 0 || n < 0)
			return false;
		cl->st.quota_calls++;
		if (q->used) {
			q->else_m = m > UINT32_MAX ? UINT32_MAX : (uint32_t)m;
			q->else_r = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
			q->read_ns = now;
		}
		return true;
	}
	case OP_CLIENT: {
		const struct cs_report *c = &cl->creports[o->idx];
		if (r->type != REDIS_REPLY_INTEGER || r->integer < 0)
			return false;
		cl->st.client_calls++;
		cl->st.client_charged += c->charge;
		cl->st.client_granted += (uint64_t)r->integer;
		if (cl->cs)
			cs_grant(cl->cs, cl->csr, c->idx, c->key, (uint32_t)r->integer, now);
		return true;
	}
	}
	return false;
}

/* This box's summary as JSON {"name","at","domains":[[d,inc,act,def,held,bytes]..]}
 * (malloc'd), or NULL. */
static char *summary_text(struct cluster *cl)
{
	struct queue_domain_sum *s = NULL;
	size_t n = 0;
	json_t *doms, *o;
	char *txt;

	if (!cl->q)
		return NULL;
	if (queue_summary_ex(cl->q, clock_real_s(), 0, &s, &n) != QUEUE_OK)
		return NULL;
	doms = json_array();
	for (size_t i = 0; doms && i < n && i < SUMMARY_DOMAINS_MAX; i++)
		json_array_append_new(doms, json_pack("[s,I,I,I,I,I]", s[i].domain,
						      (json_int_t)s[i].incoming,
						      (json_int_t)s[i].active,
						      (json_int_t)s[i].deferred,
						      (json_int_t)s[i].held, (json_int_t)s[i].bytes));
	free(s);
	o = json_pack("{s:s,s:I,s:o}", "name", cl->c.name, "at", (json_int_t)clock_real_s(),
		      "domains", doms ? doms : json_array());
	txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return txt;
}

/* This round's client keys: what the lcores spent from their shares since
 * the last round (charged), and cells for those refused (client_share.h). */
static void plan_clients(struct cluster *cl, struct client_share *cs, uint64_t now)
{
	uint64_t dropped = 0;
	unsigned n = cs_collect(cs, cl->csr, cl->creports, CS_SLOTS, now, CLUSTER_KEEP_NS,
				&dropped);

	for (unsigned i = 0; i < n; i++)
		op_add(cl, OP_CLIENT, i, 0, cl->creports[i].want ? client_batch(&cl->creports[i]) : 0);
	if (dropped) {
		pthread_mutex_lock(&cl->mu);
		cl->st.client_dropped += dropped;
		pthread_mutex_unlock(&cl->mu);
	}
}

/* After a round whose generations changed: read the suspensions, routes
 * or flushes they cover, in one more pipelined round trip. */
static void follow_gens(struct cluster *cl, unsigned want, uint64_t now)
{
	const char *err = NULL;
	unsigned ignored = 0, n;

	cl->nops = 0;
	if (want & WANT_SUSP)
		op_add(cl, OP_SUSPEND_ALL, 0, 0, 0);
	if (want & WANT_ROUTES)
		op_add(cl, OP_ROUTE_ALL, 0, 0, 0);
	if (want & WANT_FLUSH)
		op_add(cl, OP_FLUSH_LIST, 0, 0, 0);
	n = cl->nops;
	if (send_ops(cl) < 0) {
		disconnect(cl, "out of memory for a round");
		return;
	}
	for (unsigned k = 0; k < n && !err; k++) {
		void *rv = NULL;
		if (redisGetReply(cl->rc, &rv) != REDIS_OK || !rv) {
			err = cl->rc->errstr[0] ? cl->rc->errstr : "no reply";
			break;
		}
		pthread_mutex_lock(&cl->mu);
		if (!take_reply(cl, &cl->ops[k], rv, now, &ignored))
			err = "an unexpected reply";
		pthread_mutex_unlock(&cl->mu);
		freeReplyObject(rv);
	}
	pthread_mutex_lock(&cl->mu);
	cl->st.rounds++;
	cl->st.commands += n;
	pthread_mutex_unlock(&cl->mu);
	if (err) {
		disconnect(cl, err);
		cl->next_connect_ns = clock_mono_ns() + cl->backoff_ns;
	}
}

/*
 * Redis lost the cluster's suspensions and routes (a restart without
 * persistence): put back this box's copy of them, as last read, then bump
 * both generations so every box reads the result. HSETNX: whatever an
 * operator or another box set since is kept (boxes that restore at once
 * write the same values). A suspension whose time ran out stays ended.
 * Blocking commands, between rounds, as an operator's request.
 */
static void restore_shared(struct cluster *cl)
{
	struct csusp *s = malloc(sizeof(*s) * SUSPEND_MAX);
	struct croute *rt = malloc(sizeof(*rt) * CLUSTER_ROUTES_MAX);
	uint64_t now_s = clock_real_s();
	unsigned ns, nr, put_s = 0, put_r = 0;
	const char *err = NULL;
	char until[32];

	if (!s || !rt) {
		log_err("cluster: redis lost the shared suspensions and routes; no memory to "
			"restore them");
		free(s);
		free(rt);
		return;
	}
	pthread_mutex_lock(&cl->mu);
	ns = cl->nsusp;
	memcpy(s, cl->susp, sizeof(*s) * ns);
	nr = cl->nroutes;
	memcpy(rt, cl->routes, sizeof(*rt) * nr);
	pthread_mutex_unlock(&cl->mu);
	for (unsigned i = 0; i < ns && !err; i++) {
		redisReply *r;
		if (s[i].until_s && s[i].until_s <= now_s)
			continue;
		snprintf(until, sizeof(until), "%llu", (unsigned long long)s[i].until_s);
		const char *v[] = { "HSETNX", PREFIX "suspend", s[i].dom, until };
		if ((r = command(cl, &err, 4, v))) {
			put_s++;
			freeReplyObject(r);
		}
	}
	for (unsigned i = 0; i < nr && !err; i++) {
		const char *v[] = { "HSETNX", PREFIX "route", rt[i].key, rt[i].spec };
		redisReply *r = command(cl, &err, 4, v);
		if (r) {
			put_r++;
			freeReplyObject(r);
		}
	}
	for (unsigned i = 0; i < 2 && !err; i++) {
		const char *v[] = { "INCR", i ? PREFIX "route:gen" : PREFIX "suspend:gen" };
		redisReply *r = command(cl, &err, 2, v);
		if (r)
			freeReplyObject(r);
	}
	free(s);
	free(rt);
	if (err) {
		log_err("cluster: redis lost the shared suspensions and routes; restoring them "
			"failed (%s): tried again at the next poll", err);
		return;
	}
	pthread_mutex_lock(&cl->mu);
	cl->st.shared_restored++;
	pthread_mutex_unlock(&cl->mu);
	cl->next_suspend_ns = 0;	/* read the result at the next round */
	log_notice("cluster: redis had lost the shared suspensions and routes (restarted "
		   "empty?): %u suspension(s) and %u route(s) put back from this box's copy",
		   put_s, put_r);
}

/* One round: plan, send, read, apply. */
static void round_once(struct cluster *cl)
{
	uint64_t now = clock_mono_ns();
	unsigned want = 0;
	const char *err = NULL;
	unsigned nplanned;
	struct client_share *cs;

	free(cl->summary);
	cl->summary = NULL;
	cl->nops = 0;
	if (now >= cl->next_registry_ns) {
		op_add(cl, OP_REGISTRY, 0, 0, 0);
		cl->next_registry_ns = now + cl->c.lease_ttl_ns / 3;
	}
	if (now >= cl->next_suspend_ns) {
		op_add(cl, OP_GENS, 0, 0, 0);
		cl->next_suspend_ns = now + SUSPEND_POLL_NS;
	}
	if (now >= cl->next_summary_ns) {
		cl->summary = summary_text(cl);
		if (cl->summary)
			op_add(cl, OP_SUMMARY, 0, 0, 0);
		cl->next_summary_ns = now + SUMMARY_NS;
	}
	pthread_mutex_lock(&cl->mu);
	cl->kick = false;
	if (now >= cl->next_gc_ns) {
		gc(cl, now);
		cl->next_gc_ns = now + GC_NS;
	}
	plan_dests(cl, now);
	plan_quotas(cl, now);
	cs = cl->cs;
	pthread_mutex_unlock(&cl->mu);
	if (cs)
		plan_clients(cl, cs, now);
	if (cl->nops == 0)
		return;
	if (send_ops(cl) < 0) {
		disconnect(cl, "out of memory for a round");
		cl->next_connect_ns = clock_mono_ns() + cl->backoff_ns;
		return;
	}
	nplanned = cl->nops;
	for (unsigned k = 0; k < nplanned && !err; k++) {
		void *rv = NULL;
		redisReply *r;
		if (redisGetReply(cl->rc, &rv) != REDIS_OK || !rv) {
			err = cl->rc->errstr[0] ? cl->rc->errstr : "no reply";
			break;
		}
		r = rv;
		pthread_mutex_lock(&cl->mu);
		if (r->type == REDIS_REPLY_ERROR || !take_reply(cl, &cl->ops[k], r, now, &want))
			err = r->type == REDIS_REPLY_ERROR ? "an error reply" : "an unexpected reply";
		pthread_mutex_unlock(&cl->mu);
		if (r->type == REDIS_REPLY_ERROR)
			log_err("cluster: redis %s: %s", cl->c.redis, r->str);
		freeReplyObject(r);
	}
	pthread_mutex_lock(&cl->mu);
	cl->st.rounds++;
	cl->st.commands += nplanned;
	pthread_mutex_unlock(&cl->mu);
	if (err) {
		disconnect(cl, err);
		cl->next_connect_ns = clock_mono_ns() + cl->backoff_ns;
		return;
	}
	if (want & WANT_RESTORE)
		restore_shared(cl);
	want &= ~WANT_RESTORE;
	if (want && cl->rc)	/* a generation changed: read what it covers (a
				 * second round trip, rare) */
		follow_gens(cl, want, now);
}

/* ---- operators' requests ------------------------------------------------------------------ */

static bool domain_ok(const char *d)
{
	size_t n = strlen(d);

	if (n == 0 || n > 253 || d[0] == '.' || d[0] == '-')
		return false;
	for (; *d; d++)
		if (!((*d >= 'a' && *d <= 'z') || (*d >= '0' && *d <= '9') || *d == '.' ||
		      *d == '-'))
			return false;
	return true;
}

static uint64_t duration_s(const char *t)
{
	char *end;
	unsigned long long v = strtoull(t, &end, 10);

	if (end == t)
		return 0;
	switch (*end) {
	case '\0': case 's': return end[0] && end[1] ? 0 : v;
	case 'm': return end[1] ? 0 : v * 60;
	case 'h': return end[1] ? 0 : v * 3600;
	case 'd': return end[1] ? 0 : v * 86400;
	default: return 0;
	}
}

/* A blocking command; its reply or NULL (err set, disconnected). */
static redisReply *command(struct cluster *cl, const char **err, int argc, const char **argv)
{
	redisReply *r;

	if (!cl->rc && connect_redis(cl) < 0) {
		*err = "redis is unreachable";
		return NULL;
	}
	r = redisCommandArgv(cl->rc, argc, argv, NULL);
	pthread_mutex_lock(&cl->mu);
	cl->st.rounds++;
	cl->st.commands++;
	pthread_mutex_unlock(&cl->mu);
	if (!r) {
		*err = "redis is unreachable";
		disconnect(cl, cl->rc->errstr[0] ? cl->rc->errstr : "no reply");
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		*err = "redis answered an error";
		log_err("cluster: redis %s: %s", cl->c.redis, r->str);
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

/* The live boxes with their expiry (ms from now): an array reply or NULL. */
static redisReply *live_boxes(struct cluster *cl, const char **err)
{
	const char *v[] = { "EVALSHA", NULL, "1", PREFIX "boxes" };
	redisReply *r;

	if (!cl->rc && connect_redis(cl) < 0) {
		*err = "redis is unreachable";
		return NULL;
	}
	v[1] = cl->sha[SCRIPT_LIVE];
	r = command(cl, err, 4, v);
	if (r && r->type != REDIS_REPLY_ARRAY) {
		freeReplyObject(r);
		*err = "unexpected reply";
		return NULL;
	}
	return r;
}

static json_t *req_suspend(struct cluster *cl, const struct creq *q, const char **err)
{
	bool resume = strcmp(q->words[0], "resume") == 0;
	const char *dom = q->words[1];
	char until[32];
	redisReply *r, *b;
	size_t nb;

	if (!domain_ok(dom)) {
		*err = "not a domain (lower case, as in the queue)";
		return NULL;
	}
	if (resume) {
		const char *v[] = { "HDEL", PREFIX "suspend", dom };
		r = command(cl, err, 3, v);
	} else {
		uint64_t for_s = q->argc == 4 ? duration_s(q->words[3]) : 0;
		if (q->argc == 4 && !for_s) {
			*err = "--for T: a duration like 30s, 10m, 2h, 1d";
			return NULL;
		}
		snprintf(until, sizeof(until), "%llu",
			 (unsigned long long)(for_s ? clock_real_s() + for_s : 0));
		const char *v[] = { "HSET", PREFIX "suspend", dom, until };
		r = command(cl, err, 4, v);
	}
	if (!r)
		return NULL;
	if (resume && r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
		freeReplyObject(r);
		*err = "it is not suspended in the cluster";
		return NULL;
	}
	freeReplyObject(r);
	{
		const char *v[] = { "INCR", PREFIX "suspend:gen" };
		r = command(cl, err, 2, v);
		if (!r)
			return NULL;
		freeReplyObject(r);
	}
	b = live_boxes(cl, err);
	if (!b)
		return NULL;
	nb = b->elements / 2;
	freeReplyObject(b);
	cl->next_suspend_ns = 0;	/* this box too, at the next round */
	log_notice("cluster: the operator %s %s on every box (%zu live)",
		   resume ? "resumes" : "suspends", dom, nb);
	return json_pack("{s:{s:s,s:I}}", "cluster", resume ? "resume" : "suspend", dom,
			 "boxes", (json_int_t)nb);
}

/* The number of live boxes (for the answers), or -1 with err. */
static long long live_count(struct cluster *cl, const char **err)
{
	redisReply *b = live_boxes(cl, err);
	long long n;

	if (!b)
		return -1;
	n = (long long)(b->elements / 2);
	freeReplyObject(b);
	return n;
}

/* route set DOMAIN SPEC | route clear DOMAIN | route show: the hash
 * "route" (the router's key -> spec) and its generation, which every box
 * polls with the suspensions' and applies with route_set/route_clear. The
 * domain and the spec are checked here as `route set` would, so a bad one
 * never reaches the other boxes. */
static json_t *req_route(struct cluster *cl, const struct creq *q, const char **err)
{
	char key[DNS_NAME_MAX + 2], e[200];
	struct route_spec spec;
	redisReply *r;
	long long nb;

	if (strcmp(q->words[1], "show") == 0) {
		const char *v[] = { "HGETALL", PREFIX "route" };
		json_t *arr = json_array();
		if (!arr || !(r = command(cl, err, 2, v))) {
			json_decref(arr);
			return NULL;
		}
		for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
			if (r->element[i]->type == REDIS_REPLY_STRING &&
			    r->element[i + 1]->type == REDIS_REPLY_STRING)
				json_array_append_new(arr, json_pack("{s:s,s:s}", "domain",
								     r->element[i]->str, "route",
								     r->element[i + 1]->str));
		freeReplyObject(r);
		return json_pack("{s:o}", "routes", arr);
	}
	if (route_domain_parse(q->words[2], key, e, sizeof(e)) < 0 ||
	    (strcmp(q->words[1], "set") == 0 &&
	     route_spec_parse(q->words[3], &spec, e, sizeof(e)) < 0)) {
		snprintf(cl->why, sizeof(cl->why), "%s", e);
		*err = cl->why;
		return NULL;
	}
	if (strcmp(q->words[1], "set") == 0) {
		const char *v[] = { "HSET", PREFIX "route", key, q->words[3] };
		r = command(cl, err, 4, v);
	} else {
		const char *v[] = { "HDEL", PREFIX "route", key };
		r = command(cl, err, 3, v);
		if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
			freeReplyObject(r);
			*err = "no cluster route for it";
			return NULL;
		}
	}
	if (!r)
		return NULL;
	freeReplyObject(r);
	{
		const char *v[] = { "INCR", PREFIX "route:gen" };
		if (!(r = command(cl, err, 2, v)))
			return NULL;
		freeReplyObject(r);
	}
	if ((nb = live_count(cl, err)) < 0)
		return NULL;
	cl->next_suspend_ns = 0;	/* this box too, at the next round */
	log_notice("cluster: the operator %s the route of %s on every box (%lld live)%s%s",
		   q->words[1][0] == 's' ? "sets" : "clears", key, nb,
		   q->words[1][0] == 's' ? ": " : "", q->words[1][0] == 's' ? q->words[3] : "");
	return q->words[1][0] == 's' ?
		json_pack("{s:{s:{s:s,s:s},s:I}}", "cluster", "route", "domain", key, "set",
			  q->words[3], "boxes", (json_int_t)nb) :
		json_pack("{s:{s:{s:s,s:b},s:I}}", "cluster", "route", "domain", key, "cleared",
			  1, "boxes", (json_int_t)nb);
}

/* flush [DOMAIN]: appended to the list "flush" by flush_lua; every box
 * polls its generation and flushes the domain (or all) as its own `flush`
 * would. */
static json_t *req_flush(struct cluster *cl, const struct creq *q, const char **err)
{
	const char *dom = q->argc == 2 ? q->words[1] : "*";
	const char *v[] = { "EVALSHA", cl->sha[SCRIPT_FLUSH], "2", PREFIX "flush",
			    PREFIX "flush:gen", dom, NULL };
	char keep[16];
	redisReply *r;
	long long nb;

	if (q->argc == 2 && !domain_ok(dom)) {
		*err = "not a domain (lower case, as in the queue)";
		return NULL;
	}
	if (!cl->rc && connect_redis(cl) < 0) {
		*err = "redis is unreachable";
		return NULL;
	}
	v[1] = cl->sha[SCRIPT_FLUSH];
	snprintf(keep, sizeof(keep), "%d", FLUSH_KEEP);
	v[6] = keep;
	if (!(r = command(cl, err, 7, v)))
		return NULL;
	freeReplyObject(r);
	if ((nb = live_count(cl, err)) < 0)
		return NULL;
	cl->next_suspend_ns = 0;
	log_notice("cluster: the operator flushes %s on every box (%lld live)",
		   q->argc == 2 ? dom : "all mail", nb);
	return json_pack("{s:{s:s,s:I}}", "cluster", "flush", q->argc == 2 ? dom : "all",
			 "boxes", (json_int_t)nb);
}

static json_t *req_boxes(struct cluster *cl, const char **err)
{
	redisReply *b = live_boxes(cl, err);
	json_t *arr;

	if (!b)
		return NULL;
	arr = json_array();
	for (size_t i = 0; arr && i + 1 < b->elements; i += 2)
		if (b->element[i]->type == REDIS_REPLY_STRING)
			json_array_append_new(arr, json_pack("{s:s,s:I}", "name",
							     b->element[i]->str, "expires_in_ms",
							     (json_int_t)strtoll(b->element[i + 1]->str ?
									     b->element[i + 1]->str : "0",
									     NULL, 10)));
	freeReplyObject(b);
	return arr ? json_pack("{s:o}", "boxes", arr) : NULL;
}

/* Add one published summary (JSON text) into the totals by domain. */
static void summary_add(json_t *bydom, json_t *total, const char *txt)
{
	static const char *const f[] = { "incoming", "active", "deferred", "held", "bytes" };
	json_t *o = json_loads(txt, 0, NULL), *doms = o ? json_object_get(o, "domains") : NULL;
	size_t i;
	json_t *row;

	json_array_foreach(doms, i, row) {
		const char *d = json_string_value(json_array_get(row, 0));
		json_t *acc;
		if (!d)
			continue;
		acc = json_object_get(bydom, d);
		if (!acc) {
			acc = json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I}", "domain", d, "incoming",
					(json_int_t)0, "active", (json_int_t)0, "deferred",
					(json_int_t)0, "held", (json_int_t)0, "bytes", (json_int_t)0,
					"boxes", (json_int_t)0);
			if (!acc || json_object_set_new(bydom, d, acc) < 0)
				continue;
		}
		for (int k = 0; k < 5; k++) {
			json_int_t v = json_integer_value(json_array_get(row, (size_t)k + 1));
			json_object_set_new(acc, f[k], json_integer(
				json_integer_value(json_object_get(acc, f[k])) + v));
			json_object_set_new(total, f[k], json_integer(
				json_integer_value(json_object_get(total, f[k])) + v));
		}
		json_object_set_new(acc, "boxes", json_integer(
			json_integer_value(json_object_get(acc, "boxes")) + 1));
	}
	json_decref(o);
}

static json_t *req_summary(struct cluster *cl, const char **err)
{
	redisReply *b = live_boxes(cl, err), *m;
	const char **argv;
	json_t *names, *missing, *bydom, *total, *doms, *v;
	size_t nb, k;
	const char *key;

	if (!b)
		return NULL;
	nb = b->elements / 2;
	argv = calloc(nb + 1, sizeof(*argv));
	names = json_array();
	missing = json_array();
	bydom = json_object();
	total = json_pack("{s:I,s:I,s:I,s:I,s:I}", "incoming", (json_int_t)0, "active",
			  (json_int_t)0, "deferred", (json_int_t)0, "held", (json_int_t)0, "bytes",
			  (json_int_t)0);
	doms = json_array();
	if (!argv || !names || !missing || !bydom || !total || !doms) {
		*err = "out of memory";
		goto out;
	}
	argv[0] = "MGET";
	for (k = 0; k < nb; k++) {
		size_t kl = strlen(b->element[2 * k]->str) + sizeof(PREFIX "box:");
		char *kk = malloc(kl);
		if (!kk)
			break;
		snprintf(kk, kl, PREFIX "box:%s", b->element[2 * k]->str);
		argv[k + 1] = kk;
		json_array_append_new(names, json_string(b->element[2 * k]->str));
	}
	if (k < nb || nb == 0) {
		*err = nb ? "out of memory" : "no box is registered";
		nb = k;
		goto out;
	}
	m = command(cl, err, (int)nb + 1, argv);
	if (!m)
		goto out;
	for (k = 0; k < nb && k < m->elements; k++) {
		if (m->element[k]->type == REDIS_REPLY_STRING)
			summary_add(bydom, total, m->element[k]->str);
		else
			json_array_append_new(missing, json_string(b->element[2 * k]->str));
	}
	freeReplyObject(m);
	json_object_foreach(bydom, key, v)
		json_array_append(doms, v);
	json_decref(bydom);
	bydom = NULL;
	for (k = 1; k <= nb; k++)
		free((void *)argv[k]);
	free(argv);
	freeReplyObject(b);
	return json_pack("{s:o,s:o,s:o,s:o}", "boxes", names, "missing", missing, "total", total,
			 "domains", doms);
out:
	for (k = 1; argv && k <= nb; k++)
		free((void *)argv[k]);
	free(argv);
	freeReplyObject(b);
	json_decref(names);
	json_decref(missing);
	json_decref(bydom);
	json_decref(total);
	json_decref(doms);
	return NULL;
}

static void serve(struct cluster *cl, struct creq *q)
{
	const char *err = "usage";
	json_t *res = NULL;
	char text[700];

	if (strcmp(q->words[0], "suspend") == 0 || strcmp(q->words[0], "resume") == 0)
		res = req_suspend(cl, q, &err);
	else if (strcmp(q->words[0], "boxes") == 0)
		res = req_boxes(cl, &err);
	else if (strcmp(q->words[0], "route") == 0)
		res = req_route(cl, q, &err);
	else if (strcmp(q->words[0], "flush") == 0)
		res = req_flush(cl, q, &err);
	else
		res = req_summary(cl, &err);
	if (res) {
		q->done(q->user, true, res);
		return;
	}
	snprintf(text, sizeof(text), "cluster %.16s: %.300s", q->words[0], err);
	q->done(q->user, false, json_string(text));
}

/* argv as the request's words: flush's forms made one ("flush" or "flush
 * D"), a route's spec joined into one word. false: usage. */
static bool req_words(struct creq *q, int argc, char **argv)
{
	int n = argc;
	bool ok = argc >= 1;

	if (ok && strcmp(argv[0], "suspend") == 0)
		ok = argc == 2 || (argc == 4 && strcmp(argv[2], "--for") == 0);
	else if (ok && strcmp(argv[0], "resume") == 0)
		ok = argc == 2;
	else if (ok && strcmp(argv[0], "boxes") == 0)
		ok = argc == 1;
	else if (ok && strcmp(argv[0], "queue") == 0)
		ok = argc == 2 && strcmp(argv[1], "summary") == 0;
	else if (ok && strcmp(argv[0], "flush") == 0) {
		if (argc == 2 && strcmp(argv[1], "--all") == 0)
			n = 1;
		else if (argc == 3 && strcmp(argv[1], "--domain") == 0)
			argv[1] = argv[2], n = 2;
		else
			ok = argc == 1 || (argc == 2 && argv[1][0] != '-');
	} else if (ok && strcmp(argv[0], "route") == 0) {
		ok = argc >= 2 && ((strcmp(argv[1], "show") == 0 && argc == 2) ||
				   (strcmp(argv[1], "clear") == 0 && argc == 3) ||
				   (strcmp(argv[1], "set") == 0 && argc >= 4));
		if (ok && argc > 4) {	/* the spec's words, as one */
			size_t len = 0;
			q->words[3][0] = '\0';
			for (int i = 3; i < argc && ok; i++) {
				int w = snprintf(q->words[3] + len, sizeof(q->words[3]) - len,
						 "%s%s", i > 3 ? " " : "", argv[i]);
				ok = w >= 0 && (size_t)w < sizeof(q->words[3]) - len;
				len += (size_t)w;
			}
			n = 4;
		}
	} else
		ok = false;
	if (n > 4)
		ok = false;
	for (int i = 0; ok && i < n; i++) {
		if (i == 3 && argc > 4)
			break;	/* joined above */
		ok = strlen(argv[i]) < sizeof(q->words[0]);
		if (ok)
			snprintf(q->words[i], sizeof(q->words[i]), "%s", argv[i]);
	}
	q->argc = n;
	return ok;
}

int cluster_submit(struct cluster *cl, int argc, char **argv, cluster_done_fn done, void *user,
		   char *err, size_t errlen)
{
	struct creq *q;

	pthread_mutex_lock(&cl->mu);
	if (cl->req_n == REQ_MAX) {
		pthread_mutex_unlock(&cl->mu);
		snprintf(err, errlen, "%d cluster requests already waiting; try again", REQ_MAX);
		return -1;
	}
	q = &cl->req[(cl->req_head + cl->req_n) % REQ_MAX];
	if (!req_words(q, argc, argv)) {
		pthread_mutex_unlock(&cl->mu);
		return CLUSTER_USAGE;
	}
	/* the domain, as the queue keeps it */
	int d = strcmp(q->words[0], "route") == 0 ? 2 : 1;
	for (char *p = q->words[d]; q->argc > d && *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	q->done = done;
	q->user = user;
	cl->req_n++;
	cl->kick = true;
	pthread_cond_signal(&cl->cv);
	pthread_mutex_unlock(&cl->mu);
	return 0;
}

/* ---- the thread ------------------------------------------------------------------------------ */

static void *run(void *arg)
{
	struct cluster *cl = arg;
	sigset_t pipe;

	/* a Redis that died under a write: EPIPE here, not the process killed */
	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe, NULL);

	while (!atomic_load(&cl->stop)) {
		struct timespec ts;
		uint64_t wake;

		for (;;) {	/* the operators' requests first */
			struct creq q;
			pthread_mutex_lock(&cl->mu);
			if (!cl->req_n) {
				pthread_mutex_unlock(&cl->mu);
				break;
			}
			q = cl->req[cl->req_head];
			cl->req_head = (cl->req_head + 1) % REQ_MAX;
			cl->req_n--;
			pthread_mutex_unlock(&cl->mu);
			serve(cl, &q);
		}
		if (cl->rc || connect_redis(cl) == 0)
			round_once(cl);
		wake = clock_mono_ns() + (cl->rc ? ROUND_NS : BACKOFF_MIN_NS);
		ts.tv_sec = (time_t)(wake / NS_PER_SEC);
		ts.tv_nsec = (long)(wake % NS_PER_SEC);
		pthread_mutex_lock(&cl->mu);
		while (!cl->kick && !atomic_load(&cl->stop) &&
		       pthread_cond_timedwait(&cl->cv, &cl->mu, &ts) == 0)
			;
		pthread_mutex_unlock(&cl->mu);
	}
	return NULL;
}

struct cluster *cluster_start(const struct cluster_conf *c, struct queue *q, char *err,
			      size_t errlen)
{
	struct cluster *cl;
	const char *key = NULL;
	pthread_condattr_t ca;

	if (cluster_conf_check(c, &key, err, errlen) < 0)
		return NULL;
	cl = calloc(1, sizeof(*cl));
	if (!cl) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	cl->c = *c;
	cl->q = q;
	cl->boxes = 1;
	cl->backoff_ns = BACKOFF_MIN_NS;
	cl->suspend_gen = cl->route_gen = cl->flush_gen = -1;
	cluster_addr_parse(c->redis, cl->host, sizeof(cl->host), &cl->port);
	cl->tab = calloc(CLUSTER_DESTS_MAX, sizeof(*cl->tab));
	cl->tab2 = calloc(CLUSTER_DESTS_MAX, sizeof(*cl->tab2));
	cl->ops = calloc(ROUND_OPS_MAX, sizeof(*cl->ops));
	cl->routes = calloc(CLUSTER_ROUTES_MAX, sizeof(*cl->routes));
	cl->rapplied = calloc(CLUSTER_ROUTES_MAX, sizeof(*cl->rapplied));
	cl->rtmp = calloc(CLUSTER_ROUTES_MAX, sizeof(*cl->rtmp));
	cl->csr = cs_reader_new();
	cl->quotas = calloc(QUOTA_KEYS_MAX, sizeof(*cl->quotas));
	cl->quotas2 = calloc(QUOTA_KEYS_MAX, sizeof(*cl->quotas2));
	cl->creports = calloc(CS_SLOTS, sizeof(*cl->creports));
	if (!cl->tab || !cl->tab2 || !cl->ops || !cl->routes || !cl->rapplied || !cl->rtmp ||
	    !cl->csr || !cl->creports || !cl->quotas || !cl->quotas2) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	pthread_mutex_init(&cl->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&cl->cv, &ca);
	pthread_condattr_destroy(&ca);
	cl->next_gc_ns = clock_mono_ns() + GC_NS;
	atomic_init(&cl->stop, false);
	if (pthread_create(&cl->thread, NULL, run, cl) != 0) {
		snprintf(err, errlen, "cannot start the cluster thread");
		pthread_mutex_destroy(&cl->mu);
		pthread_cond_destroy(&cl->cv);
		goto fail;
	}
	cl->started = true;
	pthread_setname_np(cl->thread, "sluice-cluster");
	log_info("cluster: box %s, redis %s, leases for %llu ms", c->name, c->redis,
		 (unsigned long long)(c->lease_ttl_ns / NS_PER_MS));
	return cl;
fail:
	free(cl->tab);
	free(cl->tab2);
	free(cl->ops);
	free(cl->routes);
	free(cl->rapplied);
	free(cl->rtmp);
	cs_reader_free(cl->csr);
	free(cl->creports);
	free(cl->quotas);
	free(cl->quotas2);
	free(cl);
	return NULL;
}

void cluster_stop(struct cluster *cl)
{
	if (!cl)
		return;
	if (cl->started) {
		pthread_mutex_lock(&cl->mu);
		atomic_store(&cl->stop, true);
		pthread_cond_signal(&cl->cv);
		pthread_mutex_unlock(&cl->mu);
		pthread_join(cl->thread, NULL);
		if (cl->cs)	/* the lcores go back to this box's own limits */
			atomic_store(&cl->cs->active, false);
		/* requests nobody will serve: answered */
		while (cl->req_n) {
			struct creq *q = &cl->req[cl->req_head];
			q->done(q->user, false, json_string("sluiced is stopping"));
			cl->req_head = (cl->req_head + 1) % REQ_MAX;
			cl->req_n--;
		}
		pthread_mutex_destroy(&cl->mu);
		pthread_cond_destroy(&cl->cv);
	}
	if (cl->rc)
		redisFree(cl->rc);
	free(cl->summary);
	free(cl->tab);
	free(cl->tab2);
	free(cl->ops);
	free(cl->routes);
	free(cl->rapplied);
	free(cl->rtmp);
	cs_reader_free(cl->csr);
	free(cl->creports);
	free(cl->quotas);
	free(cl->quotas2);
	free(cl);
}
