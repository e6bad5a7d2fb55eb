/*
 * dest.c - per-destination delivery policy: concurrency feedback, dead
 * destinations, rates, suspension, classes; and the [dest] per-domain
 * overrides. See dest.h.
 */
#include "control/dest.h"
#include "control/domain_key.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

const char *const dest_class_stat_names[] = { DEST_CLASS_STATS(STATS_NAME) };
const char *const dest_stat_names[] = { DEST_STATS(STATS_NAME) };

/* The [dest] keys of each class's settings. */
static const char *const key_limit[DEST_CLASSES] = {
	"concurrency_limit", "notify_concurrency_limit" };
static const char *const key_initial[DEST_CLASSES] = {
	"initial_concurrency", "notify_initial_concurrency" };

/* ---- settings ---- */

/* Name the key at fault (if asked) and fail. */
static int bad_key(const char **key, const char *k)
{
	if (key)
		*key = k;
	return -1;
}

int dest_conf_check(const struct dest_conf *c, const char **key, char *err, size_t errlen)
{
	for (int i = 0; i < DEST_CLASSES; i++) {
		const struct dest_class_conf *cc = &c->cls[i];

		if (cc->concurrency_limit < 1 || cc->concurrency_limit > DEST_CONCURRENCY_MAX) {
			snprintf(err, errlen, "%u is out of range 1..%d", cc->concurrency_limit,
				 DEST_CONCURRENCY_MAX);
			return bad_key(key, key_limit[i]);
		}
		if (cc->initial_concurrency < 1 || cc->initial_concurrency > cc->concurrency_limit) {
			snprintf(err, errlen, "%u is not in 1..%s (%u)", cc->initial_concurrency,
				 key_limit[i], cc->concurrency_limit);
			return bad_key(key, key_initial[i]);
		}
	}
	if (c->failed_cohort_limit > DEST_COHORT_LIMIT_MAX) {
		snprintf(err, errlen, "%u is out of range 0..%d", c->failed_cohort_limit,
			 DEST_COHORT_LIMIT_MAX);
		return bad_key(key, "failed_cohort_limit");
	}
	if (c->dead_backoff_ns < 1000000000ull) {
		snprintf(err, errlen, "the dead-destination backoff must be at least 1 s");
		return bad_key(key, "dead_backoff");
	}
	if (c->recipients_per_transaction < 1 || c->recipients_per_transaction > DEST_RCPTS_MAX) {
		snprintf(err, errlen, "%u is out of range 1..%d", c->recipients_per_transaction,
			 DEST_RCPTS_MAX);
		return bad_key(key, "recipients_per_transaction");
	}
	if (c->messages_per_connection < 1 ||
	    c->messages_per_connection > DEST_MSGS_PER_CONN_MAX) {
		snprintf(err, errlen, "%u is out of range 1..%d", c->messages_per_connection,
			 DEST_MSGS_PER_CONN_MAX);
		return bad_key(key, "messages_per_connection");
	}
	return 0;
}

/* The keys a per_domain entry may set: the [dest] keys of the same names. */
enum okey_type { OK_UINT, OK_RATE };
static const struct okey {
	const char *name;
	enum okey_type type;
	size_t off;
	unsigned min, max;
} okeys[] = {
#define O(name, type, field, min, max) { name, type, offsetof(struct dest_conf, field), min, max }
	O("initial_concurrency", OK_UINT, cls[DEST_NORMAL].initial_concurrency, 1, DEST_CONCURRENCY_MAX),
	O("concurrency_limit", OK_UINT, cls[DEST_NORMAL].concurrency_limit, 1, DEST_CONCURRENCY_MAX),
	O("message_rate", OK_RATE, cls[DEST_NORMAL].message_rate, 0, 0),
	O("connection_rate", OK_RATE, cls[DEST_NORMAL].connection_rate, 0, 0),
	O("notify_initial_concurrency", OK_UINT, cls[DEST_NOTIFY].initial_concurrency, 1, DEST_CONCURRENCY_MAX),
	O("notify_concurrency_limit", OK_UINT, cls[DEST_NOTIFY].concurrency_limit, 1, DEST_CONCURRENCY_MAX),
	O("notify_message_rate", OK_RATE, cls[DEST_NOTIFY].message_rate, 0, 0),
	O("notify_connection_rate", OK_RATE, cls[DEST_NOTIFY].connection_rate, 0, 0),
	O("failed_cohort_limit", OK_UINT, failed_cohort_limit, 0, DEST_COHORT_LIMIT_MAX),
	O("recipients_per_transaction", OK_UINT, recipients_per_transaction, 1, DEST_RCPTS_MAX),
	O("messages_per_connection", OK_UINT, messages_per_connection, 1, DEST_MSGS_PER_CONN_MAX),
#undef O
};



/* "key=value" into c. 0 or -1 with err. */
static int apply_pair(struct dest_conf *c, const char *pair, size_t len, char *err, size_t errlen)
{
	const char *eq = memchr(pair, '=', len), *name, *val;
	size_t klen, vlen;
	char buf[128], rerr[160];
	const struct okey *k = NULL;

	if (!eq) {
		snprintf(err, errlen, "'%.*s' is not key=value", (int)(len > 60 ? 60 : len), pair);
		return -1;
	}
	klen = (size_t)(eq - pair);
	vlen = len - klen - 1;
	name = domain_key_trim(pair, &klen);
	val = domain_key_trim(eq + 1, &vlen);
	for (size_t i = 0; i < sizeof(okeys) / sizeof(okeys[0]); i++)
		if (strlen(okeys[i].name) == klen && strncmp(okeys[i].name, name, klen) == 0)
			k = &okeys[i];
	if (!k) {
		snprintf(err, errlen, "unknown key '%.*s'", (int)(klen > 40 ? 40 : klen), name);
		return -1;
	}
	if (vlen >= sizeof(buf)) {
		snprintf(err, errlen, "%s: value too long", k->name);
		return -1;
	}
	memcpy(buf, val, vlen);
	buf[vlen] = '\0';
	if (k->type == OK_RATE) {
		if (rate_parse(buf, (struct rate_spec *)((char *)c + k->off), rerr, sizeof(rerr)) < 0) {
			snprintf(err, errlen, "%s: %s", k->name, rerr);
			return -1;
		}
		return 0;
	}
	{
		unsigned long v = 0;
		size_t i = 0;

		while (i < vlen && isdigit((unsigned char)buf[i]) && v <= 0xffffffffu)
			v = v * 10 + (unsigned long)(buf[i++] - '0');
		if (i == 0 || i != vlen || v < k->min || v > k->max) {
			snprintf(err, errlen, "%s: '%s' is not a number in %u..%u", k->name, buf,
				 k->min, k->max);
			return -1;
		}
		*(unsigned *)((char *)c + k->off) = (unsigned)v;
	}
	return 0;
}

/* One "domain: k=v, k=v" entry of [dest] per_domain into p->o: the
 * defaults, then the pairs over them. */
static int add_override(void *ctx, const struct domain_key *k, const char *pairs, size_t rest,
			char *err, size_t errlen)
{
	struct dest_policy *p = ctx;
	struct dest_override *o = &p->o[p->n];
	const char *ckey = NULL;
	char cerr[200];

	o->key = *k;
	o->conf = p->def;
	while (rest) {
		size_t plen = strcspn(pairs, ","), tlen;
		const char *pair;

		if (plen > rest)
			plen = rest;
		tlen = plen;
		pair = domain_key_trim(pairs, &tlen);
		if (tlen && apply_pair(&o->conf, pair, tlen, err, errlen) < 0)
			return -1;
		pairs += plen;
		rest -= plen;
		if (rest) {	/* the comma */
			pairs++;
			rest--;
		}
	}
	if (dest_conf_check(&o->conf, &ckey, cerr, sizeof(cerr)) < 0) {
		snprintf(err, errlen, "%s: %s", ckey, cerr);
		return -1;
	}
	p->n++;
	return 0;
}

/* "domain: k=v, k=v; domain: ..." into p->o. 0 or -1. */
static int parse_overrides(struct dest_policy *p, const char *text, char *err, size_t errlen)
{
	return domain_key_list(text, DEST_DOMAINS_MAX, "key=value, ...", add_override, p,
			       err, errlen) < 0 ? -1 : 0;
}

int dest_policy_init(struct dest_policy *p, const struct dest_conf *def, const char *per_domain,
		     const char **key, char *err, size_t errlen)
{
	memset(p, 0, sizeof(*p));
	if (dest_conf_check(def, key, err, errlen) < 0)
		return -1;
	p->def = *def;
	if (per_domain && parse_overrides(p, per_domain, err, errlen) < 0) {
		p->n = 0;
		return bad_key(key, "per_domain");
	}
	return 0;
}

const struct dest_conf *dest_conf_for(const struct dest_policy *p, const char *domain)
{
	const struct dest_override *best = NULL;
	unsigned score = 0;

	for (unsigned i = 0; i < p->n; i++) {
		unsigned m = domain_key_match(&p->o[i].key, domain);
		if (m > score) {
			score = m;
			best = &p->o[i];
		}
	}
	return best ? &best->conf : &p->def;
}

/* ---- state ---- */

static void copy_reason(char *dst, const char *src)
{
	snprintf(dst, DEST_REASON_MAX, "%s", src && *src ? src : "unknown error");
}

void dest_init(struct dest *d, const char *name, const struct dest_conf *c)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->conf = *c;
	for (int i = 0; i < DEST_CLASSES; i++) {
		struct dest_class_state *k = &d->cls[i];

		k->window = c->cls[i].initial_concurrency;
		rate_init(&k->message_rate, &c->cls[i].message_rate);
		rate_init(&k->connection_rate, &c->cls[i].connection_rate);
	}
}

void dest_reconf(struct dest *d, const struct dest_conf *c)
{
	for (int i = 0; i < DEST_CLASSES; i++) {
		struct dest_class_state *k = &d->cls[i];
		const struct dest_class_conf *o = &d->conf.cls[i], *nc = &c->cls[i];

		if (k->window > nc->concurrency_limit)
			k->window = nc->concurrency_limit;
		if (memcmp(&o->message_rate, &nc->message_rate, sizeof(nc->message_rate)) != 0)
			rate_init(&k->message_rate, &nc->message_rate);
		if (memcmp(&o->connection_rate, &nc->connection_rate,
			   sizeof(nc->connection_rate)) != 0)
			rate_init(&k->connection_rate, &nc->connection_rate);
	}
	d->conf = *c;
}

/* Back from the dead (backoff over, flush, or a success): one probe. */
static void revive(struct dest *d)
{
	d->dead = false;
	d->dead_until_ns = 0;
	d->fail_cohorts = 0;
	for (int i = 0; i < DEST_CLASSES; i++) {
		d->cls[i].window = 1;
		d->cls[i].success = 0;
	}
	d->stats.revivals++;
}

static void die(struct dest *d, uint64_t now_ns, const char *reason)
{
	d->dead = true;
	d->dead_until_ns = now_ns + d->conf.dead_backoff_ns;
	copy_reason(d->dead_reason, reason);
	for (int i = 0; i < DEST_CLASSES; i++) {
		d->cls[i].window = 0;
		d->cls[i].success = 0;
	}
	d->stats.deaths++;
}

/* Apply what time did: a suspension or a backoff that ran out. */
static void settle(struct dest *d, uint64_t now_ns)
{
	if (d->suspended && d->suspended_until_ns && now_ns >= d->suspended_until_ns)
		d->suspended = false;
	if (d->dead && now_ns >= d->dead_until_ns)
		revive(d);
}

static enum dest_verdict wait_for(struct dest_wait *w, enum dest_verdict why, uint64_t until,
				  const char *reason)
{
	w->why = why;
	w->until_ns = until;
	w->reason = reason;
	return why;
}

/* The decision, on settled state. */
static enum dest_verdict decide(struct dest *d, enum dest_class cls, uint64_t now_ns,
				bool new_conn, struct dest_wait *w)
{
	struct dest_class_state *k;
	uint64_t mw, cw, wait;

	if ((unsigned)cls >= DEST_CLASSES)	/* a caller's bug: never a go */
		return wait_for(w, DEST_WINDOW, DEST_UNTIL_EVENT, "no such class");
	k = &d->cls[cls];
	if (d->suspended)
		return wait_for(w, DEST_SUSPENDED, d->suspended_until_ns ? d->suspended_until_ns
			       : DEST_UNTIL_EVENT, d->suspend_reason);
	if (d->dead)
		return wait_for(w, DEST_DEAD, d->dead_until_ns, d->dead_reason);
	if (k->busy >= k->window)
		return wait_for(w, DEST_WINDOW, DEST_UNTIL_EVENT, "concurrency window full");
	mw = rate_peek(&k->message_rate, now_ns, 1);
	cw = new_conn ? rate_peek(&k->connection_rate, now_ns, 1) : 0;
	wait = mw > cw ? mw : cw;
	if (wait)
		return wait_for(w, DEST_RATE, wait >= UINT64_MAX - now_ns ? DEST_UNTIL_EVENT
			       : now_ns + wait, mw >= cw ? "message rate limit"
			       : "connection rate limit");
	return wait_for(w, DEST_GO, now_ns, "");
}

enum dest_verdict dest_may_start(struct dest *d, enum dest_class cls, uint64_t now_ns,
				 bool new_conn, struct dest_wait *w)
{
	settle(d, now_ns);
	return decide(d, cls, now_ns, new_conn, w);
}

enum dest_verdict dest_start(struct dest *d, enum dest_class cls, uint64_t now_ns,
			     bool new_conn, struct dest_wait *w)
{
	struct dest_class_state *k;
	enum dest_verdict v;

	settle(d, now_ns);
	v = decide(d, cls, now_ns, new_conn, w);
	if (v != DEST_GO)
		return v;
	k = &d->cls[cls];
	/* decide() peeked both: the takes cannot be refused now. */
	rate_take(&k->message_rate, now_ns, 1);
	if (new_conn) {
		rate_take(&k->connection_rate, now_ns, 1);
		k->stats.new_connections++;
	}
	k->busy++;
	k->stats.started++;
	return DEST_GO;
}

/* The site answered: reset the failed cohorts, grow by cohorts. */
static void positive(struct dest *d, struct dest_class_state *k, const struct dest_class_conf *cc)
{
	d->fail_cohorts = 0;
	if (d->dead) {
		revive(d);
		return;
	}
	if (k->window >= cc->concurrency_limit || k->window >= k->busy + cc->initial_concurrency)
		return;
	if (++k->success >= k->window) {
		k->success = 0;
		k->window++;
		k->stats.window_grown++;
	}
}

/* The site failed: count toward death, else shrink by one. */
static void negative(struct dest *d, struct dest_class_state *k, uint64_t now_ns, const char *reason)
{
	if (d->dead)
		return;		/* a delivery begun before the death: already counted */
	d->fail_cohorts += 1.0 / (k->window ? k->window : 1);
	if (d->conf.failed_cohort_limit > 0 &&
	    d->fail_cohorts >= (double)d->conf.failed_cohort_limit - 1e-9) {
		die(d, now_ns, reason);
		return;
	}
	k->success = 0;
	if (k->window > 1) {
		k->window--;
		k->stats.window_shrunk++;
	}
}

int dest_done(struct dest *d, enum dest_class cls, uint64_t now_ns, enum dest_outcome o,
	      const char *reason)
{
	struct dest_class_state *k;

	if ((unsigned)cls >= DEST_CLASSES)
		return -1;
	k = &d->cls[cls];
	settle(d, now_ns);
	if (k->busy == 0)
		return -1;
	switch (o) {
	case DEST_OK:
		k->stats.delivered++;
		positive(d, k, &d->conf.cls[cls]);
		break;
	case DEST_OTHER_FAIL:
		k->stats.other_failures++;
		copy_reason(d->last_error, reason);
		d->last_error_ns = now_ns;
		positive(d, k, &d->conf.cls[cls]);
		break;
	case DEST_UNTRIED:
		k->stats.untried++;
		break;
	case DEST_SITE_FAIL:
	default:
		k->stats.site_failures++;
		copy_reason(d->last_error, reason);
		d->last_error_ns = now_ns;
		negative(d, k, now_ns, reason);
		break;
	}
	k->busy--;
	return 0;
}

void dest_suspend(struct dest *d, uint64_t now_ns, uint64_t until_ns, const char *why)
{
	settle(d, now_ns);
	d->suspended = until_ns == 0 || until_ns > now_ns;
	d->suspended_until_ns = until_ns;
	snprintf(d->suspend_reason, sizeof(d->suspend_reason), "%s",
		 why && *why ? why : "suspended by the operator");
	if (d->suspended)
		d->stats.suspensions++;
}

void dest_resume(struct dest *d, uint64_t now_ns)
{
	settle(d, now_ns);
	d->suspended = false;
	d->suspended_until_ns = 0;
}

void dest_clear_backoff(struct dest *d, uint64_t now_ns)
{
	settle(d, now_ns);
	if (d->dead)
		revive(d);
	d->fail_cohorts = 0;
	d->stats.flushes++;
}

void dest_view(const struct dest *d, uint64_t now_ns, struct dest_view *v)
{
	bool revived = d->dead && now_ns >= d->dead_until_ns;

	memset(v, 0, sizeof(*v));
	v->name = d->name;
	v->suspended = d->suspended && !(d->suspended_until_ns && now_ns >= d->suspended_until_ns);
	v->suspended_until_ns = v->suspended ? d->suspended_until_ns : 0;
	v->suspend_reason = v->suspended ? d->suspend_reason : "";
	v->dead = d->dead && !revived;
	v->dead_until_ns = v->dead ? d->dead_until_ns : 0;
	v->dead_reason = v->dead ? d->dead_reason : "";
	v->fail_cohorts = revived ? 0 : d->fail_cohorts;
	for (int i = 0; i < DEST_CLASSES; i++) {
		const struct dest_class_state *k = &d->cls[i];
		struct dest_class_view *cv = &v->cls[i];

		cv->busy = k->busy;
		cv->window = revived ? 1 : k->window;
		cv->limit = d->conf.cls[i].concurrency_limit;
		rate_format(&d->conf.cls[i].message_rate, cv->message_rate, sizeof(cv->message_rate));
		rate_format(&d->conf.cls[i].connection_rate, cv->connection_rate,
			    sizeof(cv->connection_rate));
		cv->message_rate_wait_ns = rate_peek(&k->message_rate, now_ns, 1);
		cv->connection_rate_wait_ns = rate_peek(&k->connection_rate, now_ns, 1);
		cv->stats = k->stats;
	}
	v->recipients_per_transaction = d->conf.recipients_per_transaction;
	v->messages_per_connection = d->conf.messages_per_connection;
	v->last_error = d->last_error;
	v->last_error_ns = d->last_error_ns;
	v->stats = d->stats;
}

bool dest_idle(const struct dest *d, uint64_t now_ns)
{
	if ((d->dead && now_ns < d->dead_until_ns) ||
	    (d->suspended && !(d->suspended_until_ns && now_ns >= d->suspended_until_ns)))
		return false;
	for (int i = 0; i < DEST_CLASSES; i++)
		if (d->cls[i].busy || rate_idle_at(&d->cls[i].message_rate) > now_ns ||
		    rate_idle_at(&d->cls[i].connection_rate) > now_ns)
			return false;
	return true;
}

const char *dest_verdict_name(enum dest_verdict v)
{
	switch (v) {
	case DEST_GO: return "go";
	case DEST_SUSPENDED: return "suspended";
	case DEST_DEAD: return "dead";
	case DEST_WINDOW: return "window";
	case DEST_RATE: return "rate";
	}
	return "?";
}
