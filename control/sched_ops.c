/*
 * sched_ops.c - the operator's commands on the scheduler (sluicectl, and
 * ETRN for flush): flush a message, a domain or everything (backoffs
 * cleared, made due now); suspend and resume a destination domain; give up
 * on a message (`bounce ID`: its undone recipients fail now, with their
 * notices); and the destinations' state for `dest show` and `stats`' top
 * list. Each runs on the scheduler's thread between passes. Internals of
 * the scheduler: see sched_int.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "control/ctl_proto.h"
#include "control/dns.h"
#include "control/sched_int.h"

/* ---- flush ------------------------------------------------------------------------------------------------ */

int sched_flush_id(struct sched *s, uint64_t id)
{
	sched_tick(s);
	s->scan_now = true;
	return queue_flush(s->e.q, id, s->now_s);
}

int sched_dest_clear(struct sched *s, const char *key)
{
	struct sdest *d;

	sched_tick(s);
	d = *sched_dest_slot(s, key);
	if (!d)
		return -1;
	dest_clear_backoff(&d->d, s->now_ns);
	sched_dest_wake(s, d);
	return 0;
}

/* Flush every message of domain (one shard): pages of IDs, one apply each. */
static int flush_ids(struct sched *s, const char *domain, unsigned *n)
{
	enum { PAGE = 1024 };
	uint64_t *ids = malloc(PAGE * sizeof(*ids)), after = 0;
	struct queue_op *ops = malloc(PAGE * sizeof(*ops));
	unsigned shard = queue_shard_of(s->e.q, domain);
	int first = QUEUE_OK;
	size_t k;

	if (!ids || !ops) {
		free(ids);
		free(ops);
		return QUEUE_IO;
	}
	do {
		int st = queue_list_domain(s->e.q, domain, after, ids, PAGE, &k);
		if (st != QUEUE_OK) {
			first = st;
			break;
		}
		for (size_t i = 0; i < k; i++)
			ops[i] = (struct queue_op){ .op = QUEUE_OP_FLUSH, .shard = shard,
						    .id = ids[i], .now = s->now_s };
		queue_apply(s->e.q, ops, k);
		for (size_t i = 0; i < k; i++)
			if (ops[i].status == QUEUE_OK)
				(*n)++;
		if (k)
			after = ids[k - 1];
	} while (k == PAGE);
	free(ids);
	free(ops);
	return first;
}

/* The answer to a flush's route lookup: the destination the domain goes
 * to (its MX destination, or the static route's/relayhost's) comes back. */
struct sflush {
	struct sched *s;
};

static void on_flush_route(void *user, const struct route_result *r)
{
	struct sflush *f = user;

	if (r->status == ROUTE_OK && r->dest[0])
		sched_dest_clear(f->s, r->dest);
	free(f);
}

int sched_flush_domain(struct sched *s, const char *domain, unsigned *n)
{
	char dom[DOMAIN_MAX + 1], addr[DOMAIN_MAX + 3];
	struct sflush *f;

	*n = 0;
	snprintf(addr, sizeof(addr), "@%s", domain);
	if (sched_addr_domain(addr, dom) == 0)
		return QUEUE_INVALID;
	sched_dest_clear(s, dom);
	f = malloc(sizeof(*f));
	if (f) {	/* static routes answer at once; MX ones from the cache or later */
		f->s = s;
		if (route_lookup(s->e.rt, dom, on_flush_route, f) < 0)
			free(f);
	}
	s->scan_now = true;
	return flush_ids(s, dom, n);
}

int sched_flush_all(struct sched *s, unsigned *n)
{
	struct queue_domain_sum *sum = NULL;
	size_t nd = 0;
	int st, first = QUEUE_OK;

	*n = 0;
	sched_tick(s);
	for (size_t i = 0; i <= s->dmask; i++)
		for (struct sdest *d = s->dtab[i]; d; d = d->hnext) {
			dest_clear_backoff(&d->d, s->now_ns);
			sched_dest_wake(s, d);
		}
	s->scan_now = true;
	st = queue_summary_ex(s->e.q, s->now_s, 0, &sum, &nd);
	if (st != QUEUE_OK)
		return st;
	for (size_t i = 0; i < nd; i++) {
		st = flush_ids(s, sum[i].domain, n);
		if (st != QUEUE_OK && first == QUEUE_OK)
			first = st;
	}
	free(sum);
	return first;
}

/* ---- the operator's suspensions ---- */

static int domain_norm(const char *domain, char dom[DOMAIN_MAX + 1])
{
	char addr[DOMAIN_MAX + 3];

	if (strlen(domain) > DOMAIN_MAX + 1 || dns_name_check(domain) < 0)
		return -1;
	snprintf(addr, sizeof(addr), "@%s", domain);
	return sched_addr_domain(addr, dom) ? 0 : -1;
}

int sched_suspend_domain(struct sched *s, const char *domain, uint64_t for_s)
{
	char dom[DOMAIN_MAX + 1];
	struct ssusp *u = NULL;

	sched_tick(s);
	if (domain_norm(domain, dom) < 0)
		return QUEUE_INVALID;
	for (unsigned i = 0; i < SCHED_SUSPEND_MAX && !u; i++)
		if (strcmp(s->susp[i].dom, dom) == 0)
			u = &s->susp[i];
	for (unsigned i = 0; i < SCHED_SUSPEND_MAX && !u; i++)
		if (!s->susp[i].dom[0] ||
		    (s->susp[i].until_s && s->susp[i].until_s <= s->now_s))
			u = &s->susp[i];
	if (!u)
		return QUEUE_NOSPACE;
	memcpy(u->dom, dom, strlen(dom) + 1);
	u->since_s = s->now_s;
	u->until_s = for_s ? s->now_s + for_s : 0;
	if (for_s)
		log_notice("sched: the operator suspends delivery to %s for %llu s", dom,
			   (unsigned long long)for_s);
	else
		log_notice("sched: the operator suspends delivery to %s until resumed", dom);
	return QUEUE_OK;
}

int sched_resume_domain(struct sched *s, const char *domain, unsigned *n)
{
	char dom[DOMAIN_MAX + 1];
	bool found = false;

	*n = 0;
	sched_tick(s);
	if (domain_norm(domain, dom) < 0)
		return QUEUE_INVALID;
	for (unsigned i = 0; i < SCHED_SUSPEND_MAX; i++)
		if (strcmp(s->susp[i].dom, dom) == 0) {
			s->susp[i].dom[0] = '\0';
			found = true;
		}
	if (!found)
		return QUEUE_NOTFOUND;
	log_notice("sched: the operator resumes delivery to %s", dom);
	return sched_flush_domain(s, dom, n);
}

unsigned sched_suspended_json(struct sched *s, json_t *arr)
{
	unsigned n = 0;

	sched_tick(s);
	for (unsigned i = 0; i < SCHED_SUSPEND_MAX; i++) {
		const struct ssusp *u = &s->susp[i];
		if (!u->dom[0] || !sched_suspension(s, u->dom))
			continue;
		if (json_array_append_new(arr, json_pack("{s:s,s:I,s:I}", "domain", u->dom, "since",
							 (json_int_t)u->since_s, "until",
							 (json_int_t)u->until_s)) == 0)
			n++;
	}
	return n;
}

/* ---- the operator's bounce ---------------------------------------------------------------------------------- */

int sched_bounce_id(struct sched *s, uint64_t id, const char *reason, unsigned *n)
{
	unsigned nshards = queue_nshards(s->e.q), nops = 0, found = 0;
	struct queue_op ops[QUEUE_SHARDS_MAX];
	const char *why = reason ? reason : "";

	*n = 0;
	sched_tick(s);
	for (unsigned sh = 0; sh < nshards; sh++) {
		struct spart *p = *sched_part_slot(s, id, sh);
		if (!p) {	/* not ours now: claimed for it, held or not due */
			ops[nops++] = (struct queue_op){ .op = QUEUE_OP_CLAIM, .shard = sh, .id = id,
							 .now = s->now_s, .lease_s = s->c.lease_s,
							 .flags = QUEUE_CLAIM_FORCE };
			continue;
		}
		found++;
		if (p->finishing || p->nstate != N_NONE || p->giveup)
			continue;	/* its last ops are made already */
		p->giveup = strdup(why);
		if (!p->giveup)
			return QUEUE_IO;
		for (unsigned i = 0; i < p->m->nrcpt; i++)
			*n += p->r[i].state <= QUEUE_RCPT_DEFERRED;
		log_info("%s: the operator gives up on it: %s", p->ids, why[0] ? why : "-");
		/* in delivery: given up when its items come back (part_finish) */
	}
	if (nops)
		queue_apply(s->e.q, ops, nops);
	for (unsigned k = 0; k < nops; k++) {
		struct claimed c = { id, ops[k].shard, ops[k].out_token };
		struct spart *p;
		if (ops[k].status == QUEUE_NOTFOUND)
			continue;
		found++;
		if (ops[k].status != QUEUE_OK)
			continue;	/* an intent, nothing undone, or someone's claim */
		p = sched_part_claimed(s, &c, why);
		if (!p)
			continue;
		for (unsigned i = 0; i < p->m->nrcpt; i++)
			*n += p->m->rcpt[i].state <= QUEUE_RCPT_DEFERRED;
		log_info("%s: the operator gives up on it: %s", p->ids, why[0] ? why : "-");
	}
	if (!found)
		return QUEUE_NOTFOUND;
	return *n ? QUEUE_OK : QUEUE_STATE;
}

/* ---- dest show ------------------------------------------------------------------------------------------------ */

static double secs_left(uint64_t until, uint64_t now)
{
	return until > now ? (double)(until - now) / 1e9 : 0;
}

/* x >= 0 rounded to `per` parts of one (10: tenths): the precision shown. */
static double rounded(double x, double per)
{
	return (double)(uint64_t)(x * per + 0.5) / per;
}

/* One destination as a JSON object (see sched.h), or NULL: out of memory. */
static json_t *dest_json(struct sched *s, struct sdest *d)
{
	struct dest_view v;
	static const char *const cls[] = { "normal", "notify" };
	json_t *o, *classes = json_object();

	dest_view(&d->d, s->now_ns, &v);
	for (int c = 0; classes && c < DEST_CLASSES; c++) {
		const struct dest_class_view *k = &v.cls[c];
		const uint64_t *sv = STATS_VALUES(&k->stats);
		json_t *kj = json_pack("{s:I,s:I,s:I,s:I,s:s,s:s,s:f,s:f}",
				       "queued", (json_int_t)d->lane[c].nitems,
				       "busy", (json_int_t)k->busy, "window", (json_int_t)k->window,
				       "limit", (json_int_t)k->limit, "message_rate", k->message_rate,
				       "connection_rate", k->connection_rate,
				       "message_rate_wait", rounded(k->message_rate_wait_ns / 1e9, 1000),
				       "connection_rate_wait",
				       rounded(k->connection_rate_wait_ns / 1e9, 1000));
		for (size_t i = 0; kj && i < sizeof(k->stats) / sizeof(uint64_t); i++)
			if (json_object_set_new(kj, dest_class_stat_names[i],
						json_integer((json_int_t)sv[i])) < 0) {
				json_decref(kj);
				kj = NULL;
			}
		if (!kj || json_object_set_new(classes, cls[c], kj) < 0) {
			json_decref(classes);
			classes = NULL;
		}
	}
	if (!classes)
		return NULL;
	o = json_pack("{s:o,s:I,s:I,s:I,s:f,s:I,s:b,s:f,s:o,s:b,s:f,s:o,s:f,s:I,s:I,s:o,s:f,"
		      "s:I,s:I,s:I,s:I,s:o}",
		      "name", ctl_json_text(v.name),
		      "queued", (json_int_t)sched_dest_nitems(d),
		      "in_flight", (json_int_t)d->lent,
		      "idle_connections", (json_int_t)d->nidle,
		      "plaintext_for", rounded(secs_left(d->plain_until_ns, s->now_ns), 10),
		      "hops", (json_int_t)d->nhops,
		      "suspended", v.suspended,
		      "suspended_for", v.suspended_until_ns ?
				rounded(secs_left(v.suspended_until_ns, s->now_ns), 10) : 0.0,
		      "suspend_reason", ctl_json_text(v.suspend_reason),
		      "dead", v.dead,
		      "dead_for", v.dead ? rounded(secs_left(v.dead_until_ns, s->now_ns), 10) : 0.0,
		      "dead_reason", ctl_json_text(v.dead_reason),
		      "fail_cohorts", rounded(v.fail_cohorts, 1000),
		      "recipients_per_transaction", (json_int_t)v.recipients_per_transaction,
		      "messages_per_connection", (json_int_t)v.messages_per_connection,
		      "last_error", ctl_json_text(v.last_error),
		      "last_error_ago", v.last_error[0] && s->now_ns > v.last_error_ns ?
				rounded((double)(s->now_ns - v.last_error_ns) / 1e9, 10) : 0.0,
		      "deaths", (json_int_t)v.stats.deaths,
		      "revivals", (json_int_t)v.stats.revivals,
		      "flushes", (json_int_t)v.stats.flushes,
		      "suspensions", (json_int_t)v.stats.suspensions,
		      "classes", classes);
	return o;
}

unsigned sched_dest_json(struct sched *s, const char *key, unsigned max, json_t *dests)
{
	unsigned n = 0;

	sched_tick(s);
	if (key) {
		struct sdest *d = *sched_dest_slot(s, key);
		if (d && json_array_append_new(dests, dest_json(s, d)) == 0)
			n++;
		return n;
	}
	for (size_t i = 0; i <= s->dmask && n < max; i++)
		for (struct sdest *d = s->dtab[i]; d && n < max; d = d->hnext)
			if (json_array_append_new(dests, dest_json(s, d)) == 0)
				n++;
	return n;
}

/* Does a rank above b (more deferred, then more queued, then by name)? */
static bool top_above(const struct sched_dest_count *a, const struct sched_dest_count *b)
{
	if (a->deferred != b->deferred)
		return a->deferred > b->deferred;
	if (a->queued != b->queued)
		return a->queued > b->queued;
	return strcmp(a->name, b->name) < 0;
}

unsigned sched_dest_top(struct sched *s, struct sched_dest_count *out, unsigned max)
{
	unsigned n = 0;

	sched_tick(s);
	for (size_t i = 0; i <= s->dmask && max; i++)
		for (struct sdest *d = s->dtab[i]; d; d = d->hnext) {
			struct sched_dest_count c = { .deferred = d->deferred, .in_flight = d->lent,
						      .dead = d->d.dead };
			unsigned k;
			for (int cl = 0; cl < DEST_CLASSES; cl++)
				c.queued += d->lane[cl].nitems;
			snprintf(c.name, sizeof(c.name), "%s", d->d.name);
			if (n == max && !top_above(&c, &out[n - 1]))
				continue;
			k = n < max ? n++ : n - 1;	/* the last one drops out */
			while (k > 0 && top_above(&c, &out[k - 1])) {
				out[k] = out[k - 1];
				k--;
			}
			out[k] = c;
		}
	return n;
}
