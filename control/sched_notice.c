/*
 * sched_notice.c - the scheduler's notices (see bounce.h for how one is
 * made and queued): which final outcome owes one (a bounce, a success DSN
 * after RFC 3461's NOTIFY) and when an undone recipient is owed a delay
 * warning; then, each pass, one notice per message for the parts whose
 * results wait for it, and, once it is durable (or never will be), those
 * parts' last ops. A part's RESULT ops wait for its notice, so a final
 * result is never written without the notice it owes. Internals of the
 * scheduler: see sched_int.h.
 */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "control/dsn.h"
#include "control/sched_int.h"

/* After how long in the queue recipient i is owed a delay warning; 0: never. */
static uint64_t delay_after(const struct sched *s, const struct spart *p, unsigned i)
{
	uint8_t n = p->m->rcpt[i].notify;

	if (null_sender(p) || p->m->warned || (n & QUEUE_NOTIFY_NEVER))
		return 0;
	if (n & QUEUE_NOTIFY_DELAY)
		return s->c.delay_warning_s ? s->c.delay_warning_s : SCHED_DELAY_DEFAULT_S;
	if (n == 0 && s->c.delay_warning_s)	/* no NOTIFY: the operator's choice */
		return s->c.delay_warning_s;
	return 0;
}

bool sched_delay_due(const struct sched *s, const struct spart *p, unsigned i)
{
	uint64_t w = delay_after(s, p, i);

	return w && s->now_s >= p->m->arrival + w;
}

/* The notice a final outcome owes (NOTE_NONE: none). */
uint8_t sched_note_for(const struct spart *p, unsigned i, enum queue_rcpt_state st,
		       const struct outcome *o)
{
	uint8_t n = p->m->rcpt[i].notify;

	if (st == QUEUE_RCPT_BOUNCED) {
		if (null_sender(p))	/* bounce.h decides: double bounce or drop */
			return NOTE(DSN_FAILED);
		return dsn_wanted(p->m->sender, n, DSN_FAILED) ? NOTE(DSN_FAILED) : NOTE_NONE;
	}
	if (st != QUEUE_RCPT_SENT || !dsn_wanted(p->m->sender, n, DSN_RELAYED))
		return NOTE_NONE;
	if (o->discarded)
		return NOTE(DSN_DELIVERED);
	return o->peer_dsn ? NOTE_NONE : NOTE(DSN_RELAYED);	/* passed on: theirs to say */
}

/* ---- notices ------------------------------------------------------------------------------------ */

/* The notice of g is back (ok: durable) or will never be: each part's last
 * ops go out (or, with notice_hold, after a while). Not durable: its failed
 * recipients stay undone (tried again soon), the others' results are
 * written; a delivered recipient's success notice is lost (logged). */
static void notice_done(struct sched *s, struct sgroup *g, bool ok)
{
	for (unsigned k = 0; k < g->n; k++) {
		struct spart *p = g->p[k];
		bool warned = ok && p->warn;

		s->nwaiting--;
		if (!ok) {
			for (unsigned i = 0; i < p->m->nrcpt; i++) {
				struct srcpt *r = &p->r[i];
				if (!r->op_held)
					continue;
				if (r->op_state == QUEUE_RCPT_SENT) {
					log_err("%s: to=<%s>: its success notice is lost (it could "
						"not be queued)", p->ids, p->m->rcpt[i].addr);
					continue;
				}
				/* no final result without its notice: the attempt is
				 * written as a deferral */
				r->op_state = QUEUE_RCPT_DEFERRED;
				r->state = QUEUE_RCPT_DEFERRED;
				r->next_s = s->now_s + s->e.retry->conf.min_backoff_s;
				log_warn("%s: to=<%s>: its notice could not be queued: kept, tried "
					 "again in %llu s", p->ids, p->m->rcpt[i].addr,
					 (unsigned long long)s->e.retry->conf.min_backoff_s);
			}
		}
		p->warn = warned;
		if (ok && s->c.notice_hold_ns && !s->stopping) {
			p->nstate = N_HELD;
			p->release_ns = s->now_ns + s->c.notice_hold_ns;
			p->nnext = s->nheld;
			s->nheld = p;
			s->nwaiting++;
			continue;
		}
		sched_part_close(s, p, warned);
	}
	if (ok)
		for (unsigned sh = 0; sh < queue_nshards(s->e.q); sh++)
			if (g->warn_shards >> sh & 1)
				sched_ob_add(s, NULL, QUEUE_OP_WARN, sh, g->id, NULL);
	free(g);
}

/* Parts held by notice_hold whose time has come. */
void sched_notices_release(struct sched *s)
{
	struct spart **pp = &s->nheld;

	while (*pp) {
		struct spart *p = *pp;
		if (p->release_ns > s->now_ns && !s->stopping) {
			pp = &p->nnext;
			continue;
		}
		*pp = p->nnext;
		s->nwaiting--;
		sched_part_close(s, p, p->warn);
	}
}

/* Completions of the notices in flight. */
unsigned sched_notices_poll(struct sched *s)
{
	struct bounce_done d[64];
	unsigned n, total = 0;

	do {
		n = bounce_poll(s->bn, d, 64);
		for (unsigned i = 0; i < n; i++)
			notice_done(s, d[i].user, d[i].status == QUEUE_OK);
		total += n;
	} while (n == 64);
	return total;
}

static int part_id_cmp(const void *a, const void *b)
{
	const struct spart *x = *(struct spart *const *)a, *y = *(struct spart *const *)b;

	if (x->m->id != y->m->id)
		return x->m->id < y->m->id ? -1 : 1;
	return (int)x->m->shard - (int)y->m->shard;
}

/* A recipient a notice is about, from what this claim saw of it (or, for a
 * delay, what the queue keeps). */
static void notice_rcpt(const struct sched *s, const struct spart *p, unsigned i,
			enum dsn_action a, struct bounce_rcpt *br)
{
	const struct srcpt *r = &p->r[i];
	const struct queue_msg_rcpt *q = &p->m->rcpt[i];
	bool seen = r->at != 0;	/* an outcome in this claim */

	br->addr = q->addr;
	br->orcpt = q->orcpt;
	br->action = a;
	br->status = seen && r->dsn[0] ? r->dsn : q->dsn;
	br->reason = r->reason ? r->reason : seen && r->reply ? r->reply : q->reply;
	br->last_attempt = seen ? r->at : q->last_attempt;
	br->retry_until = a == DSN_DELAYED ? sched_rcpt_expiry(s, p, i) : 0;
}

/*
 * A delay warning about the message of p: the other shards' parts (looked
 * up now) add their undone recipients that are owed one, and are marked
 * once it is durable (g->warn_shards). A part already warned (one warning
 * per message) cancels it: false.
 */
static bool delay_others(struct sched *s, struct spart **grp, unsigned n, struct sgroup *g,
			 struct bounce_rcpt *br, unsigned *nr, unsigned cap, struct queue_msg **keep,
			 unsigned *nkeep)
{
	uint64_t mine = 0, all = grp[0]->m->shards;

	for (unsigned k = 0; k < n; k++)
		mine |= 1ull << grp[k]->m->shard;
	for (unsigned sh = 0; sh < queue_nshards(s->e.q); sh++) {
		struct queue_msg *m = NULL;
		struct spart tmp;
		if (!(all >> sh & 1))
			continue;
		if (queue_lookup(s->e.q, sh, g->id, &m) != QUEUE_OK)
			continue;	/* gone meanwhile: nothing owed there */
		if (m->warned) {
			free(m);
			return false;
		}
		if (mine >> sh & 1) {
			free(m);
			continue;
		}
		g->warn_shards |= 1ull << sh;
		memset(&tmp, 0, sizeof(tmp));
		tmp.m = m;
		for (unsigned i = 0; i < m->nrcpt && *nr < cap; i++) {
			struct srcpt r0 = { 0 };
			if (m->rcpt[i].state > QUEUE_RCPT_DEFERRED || !sched_delay_due(s, &tmp, i))
				continue;
			tmp.r = &r0;	/* nothing seen in this claim: the queue's word */
			br[*nr].addr = m->rcpt[i].addr;
			br[*nr].orcpt = m->rcpt[i].orcpt;
			br[*nr].action = DSN_DELAYED;
			br[*nr].status = m->rcpt[i].dsn;
			br[*nr].reason = m->rcpt[i].reply;
			br[*nr].last_attempt = m->rcpt[i].last_attempt;
			br[*nr].retry_until = m->expiry ? m->expiry + m->held_s : 0;
			(*nr)++;
		}
		keep[(*nkeep)++] = m;	/* its strings are in the notice */
	}
	return true;
}

/* One notice for parts grp[0..n) (one message): made and queued, or not. */
static void notice_group(struct sched *s, struct spart **grp, unsigned n)
{
	struct sgroup *g = malloc(sizeof(*g) + n * sizeof(g->p[0]));
	unsigned cap = QUEUE_RCPT_MAX, nr = 0, nkeep = 0;
	struct bounce_rcpt *br = calloc(cap, sizeof(*br));
	struct queue_msg *keep[QUEUE_SHARDS_MAX];
	bool warn = false;
	enum bounce_verdict v;

	if (!g || !br) {
		log_err("%s: out of memory for its notice", grp[0]->ids);
		free(br);
		if (g) {
			g->n = 0;
			free(g);
		}
		for (unsigned k = 0; k < n; k++) {	/* next pass */
			grp[k]->nnext = s->notices;
			s->notices = grp[k];
		}
		return;
	}
	g->id = grp[0]->m->id;
	g->warn_shards = 0;
	g->n = n;
	for (unsigned k = 0; k < n; k++) {
		struct spart *p = grp[k];
		g->p[k] = p;
		p->nstate = N_SENT;
		warn |= p->warn;
		for (unsigned i = 0; i < p->m->nrcpt && nr < cap; i++) {
			const struct srcpt *r = &p->r[i];
			if (r->op_held && r->note != NOTE_NONE)
				notice_rcpt(s, p, i, (enum dsn_action)(r->note - 1), &br[nr++]);
			else if (p->warn && r->state <= QUEUE_RCPT_DEFERRED &&
				 sched_delay_due(s, p, i))
				notice_rcpt(s, p, i, DSN_DELAYED, &br[nr++]);
		}
	}
	if (warn && !delay_others(s, grp, n, g, br, &nr, cap, keep, &nkeep)) {
		/* warned already (another part's pass): no second warning */
		unsigned w = 0;
		for (unsigned k = 0; k < n; k++)
			grp[k]->warn = false;
		for (unsigned i = 0; i < nr; i++)
			if (br[i].action != DSN_DELAYED)
				br[w++] = br[i];
		nr = w;
		g->warn_shards = 0;
	}
	if (nr == 0) {
		v = BOUNCE_NONE;
	} else {
		struct bounce_notice bn = { .m = grp[0]->m, .rcpt = br, .nrcpt = nr,
					    .now = s->now_s, .user = g };
		v = bounce_send(s->bn, &bn);
	}
	for (unsigned k = 0; k < nkeep; k++)
		free(keep[k]);
	free(br);
	switch (v) {
	case BOUNCE_QUEUED:
		break;
	case BOUNCE_NONE:
		notice_done(s, g, true);
		break;
	case BOUNCE_FAILED:
		notice_done(s, g, false);
		break;
	case BOUNCE_BUSY:	/* next pass */
		for (unsigned k = 0; k < n; k++) {
			grp[k]->nstate = N_WAIT;
			grp[k]->nnext = s->notices;
			s->notices = grp[k];
		}
		free(g);
		break;
	}
}

/* The parts waiting for a notice: one per message, queued (with
 * notice_hold, once they have waited that long: tests only). */
unsigned sched_notices_flush(struct sched *s)
{
	struct spart **v, *p, **pp;
	unsigned n = 0, done = 0;

	for (p = s->notices; p; p = p->nnext)
		n++;
	if (n == 0)
		return 0;
	v = malloc(n * sizeof(*v));
	if (!v)
		return 0;	/* next pass */
	n = 0;
	for (pp = &s->notices; (p = *pp);) {
		if (p->release_ns > s->now_ns && !s->stopping) {
			pp = &p->nnext;
			continue;
		}
		*pp = p->nnext;
		v[n++] = p;
	}
	qsort(v, n, sizeof(*v), part_id_cmp);
	for (unsigned a = 0; a < n;) {
		unsigned b = a + 1;
		while (b < n && v[b]->m->id == v[a]->m->id)
			b++;
		notice_group(s, v + a, b - a);
		done += b - a;
		a = b;
	}
	free(v);
	return done;
}
