/*
 * sched.c - the delivery scheduler. See sched.h for what a pass does.
 *
 * The work is split over four files sharing sched_int.h (where the data
 * structures are defined and explained): this one (claims, routing,
 * dispatch, results, the apply, create and destroy), sched_notice.c (the
 * notices an outcome owes: bounces, DSNs, delay warnings), sched_xfer.c
 * (the transfer to another box) and sched_ops.c (the operator's commands:
 * flush, suspend and resume, bounce, dest show).
 */
#include "control/sched_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>

#include <arpa/inet.h>
#include <rte_ring.h>

#include "common/clock.h"
#include "common/log.h"
#include "control/ctl_proto.h"
#include "control/dsn.h"
#include "control/maillog.h"
#include "control/quota.h"

const char *const sched_stat_names[] = { SCHED_STATS(STATS_NAME) };
const unsigned sched_stat_count = STATS_COUNT(sched_stat_names);

#define REAP_BURST 256		/* events taken from a port at a time */
#define REAP_MAX 4096		/* events per port per pass */
#define DISPATCH_MAX 4096	/* jobs lent per pass */
#define GC_INTERVAL_NS NS_PER_SEC
#define LENT_WAKE_NS (250 * NS_PER_US)	/* results come over rings: look again this soon */

/* ---- small helpers ------------------------------------------------------------ */

void sched_tick(struct sched *s)
{
	const struct sched_clock *k = &s->e.clock;

	s->now_s = k->unix_s ? k->unix_s(k->user) : clock_real_s();
	s->now_ns = k->mono_ns ? k->mono_ns(k->user) : clock_mono_ns();
}

static uint64_t hash_bytes(const void *p, size_t n, uint64_t h)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

static uint64_t hash_str(const char *s)
{
	return hash_bytes(s, strlen(s), 0xcbf29ce484222325ull);
}

static uint64_t hash_u64(uint64_t a, uint64_t b)
{
	uint64_t h = a * 0x9e3779b97f4a7c15ull ^ (b + 0x632be59bd9b4e019ull);
	h ^= h >> 31;
	h *= 0xbf58476d1ce4e5b9ull;
	return h ^ (h >> 29);
}

/* The domain of an address, in normal form (lower case, no trailing dot),
 * into out; its length, 0 when the address has none. */
size_t sched_addr_domain(const char *addr, char out[DOMAIN_MAX + 1])
{
	const char *at = strrchr(addr, '@');
	size_t n;

	out[0] = '\0';
	if (!at || !at[1])
		return 0;
	at++;
	n = strlen(at);
	if (n > 1 && at[n - 1] == '.')
		n--;
	if (n > DOMAIN_MAX)
		n = DOMAIN_MAX;
	for (size_t i = 0; i < n; i++)
		out[i] = (at[i] >= 'A' && at[i] <= 'Z') ? (char)(at[i] + 32) : at[i];
	out[n] = '\0';
	return n;
}

/* snprintf that may cut (every text here has a bound and may be cut). */
void sched_textf(char *out, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vsnprintf(out, n, fmt, ap) < 0)
		out[0] = '\0';
	va_end(ap);
}

/* Postfix's delay figures: two significant digits below 10 s, whole seconds above. */
static void fmt_delay(char *buf, size_t n, double v)
{
	if (v < 0)
		v = 0;
	if (v < 10)
		snprintf(buf, n, "%.2g", v);
	else
		snprintf(buf, n, "%.0f", v);
}

/* "host mx[1.2.3.4] said: 550 5.1.1 ... (in reply to RCPT TO command)", or
 * the text alone when no reply came. */
static void reason_text(const struct smtp_client_result *r, const char *relay, char *out,
			size_t n)
{
	char host[DLV_RELAY_MAX];
	const char *colon;

	if (r->code == 0) {
		snprintf(out, n, "%s", r->text[0] ? r->text : "no reply");
		return;
	}
	snprintf(host, sizeof(host), "%s", relay);
	colon = strrchr(host, ':');
	if (colon && strchr(host, ']') && colon > strchr(host, ']'))
		host[colon - host] = '\0';	/* mx[ip] without :port */
	if (r->stage)
		sched_textf(out, n, "host %s said: %s (in reply to %s command)", host, r->text,
			    r->stage);
	else
		sched_textf(out, n, "host %s said: %s", host, r->text);
}

/* ---- the op buffer ----------------------------------------------------------------- */

static int ob_grow(struct opbuf *b)
{
	size_t cap = b->cap ? b->cap * 2 : 1024;
	struct queue_op *op = realloc(b->op, cap * sizeof(*op));
	struct spart **part;
	uint32_t *text;

	if (!op)
		return -1;
	b->op = op;
	part = realloc(b->part, cap * sizeof(*part));
	if (!part)
		return -1;
	b->part = part;
	text = realloc(b->text, cap * sizeof(*text));
	if (!text)
		return -1;
	b->text = text;
	b->cap = cap;
	return 0;
}

/* Append an op (reply copied); NULL when out of memory (logged). */
struct queue_op *sched_ob_add(struct sched *s, struct spart *p, enum queue_op_kind kind,
			      unsigned shard, uint64_t id, const char *reply)
{
	struct opbuf *b = &s->ob;
	struct queue_op *o;

	if (b->n == b->cap && ob_grow(b) < 0)
		goto oom;
	b->text[b->n] = UINT32_MAX;
	if (reply) {
		size_t len = strnlen(reply, TEXT_MAX);
		if (b->tlen + len + 1 > b->tcap) {
			size_t cap = b->tcap ? b->tcap * 2 : 65536;
			char *t;
			while (cap < b->tlen + len + 1)
				cap *= 2;
			t = realloc(b->txt, cap);
			if (!t)
				goto oom;
			b->txt = t;
			b->tcap = cap;
		}
		memcpy(b->txt + b->tlen, reply, len);
		b->txt[b->tlen + len] = '\0';
		b->text[b->n] = (uint32_t)b->tlen;
		b->tlen += len + 1;
	}
	o = &b->op[b->n];
	memset(o, 0, sizeof(*o));
	o->op = kind;
	o->shard = shard;
	o->id = id;
	o->now = s->now_s;
	b->part[b->n] = p;
	b->n++;
	return o;
oom:
	log_err("sched: out of memory for queue ops");
	if (p)
		p->broken = true;	/* its claim lapses; the message is tried again */
	return NULL;
}

/* Append recipient i's RESULT op: state, its dsn (p->r[i].dsn), text. */
void sched_result_op(struct sched *s, struct spart *p, unsigned i, enum queue_rcpt_state state,
		     const char *text)
{
	struct queue_op *op = sched_ob_add(s, p, QUEUE_OP_RESULT, p->m->shard, p->m->id, text);

	if (op) {
		op->token = p->token;
		op->rcpt = i;
		op->state = state;
		op->dsn = p->r[i].dsn;
	}
}

static void body_drop(struct sched *s, struct spart *p);

/* ---- the active set --------------------------------------------------------------- */

struct spart **sched_part_slot(struct sched *s, uint64_t id, unsigned shard)
{
	struct spart **pp = &s->ptab[hash_u64(id, shard) & s->pmask];

	while (*pp && ((*pp)->m->id != id || (*pp)->m->shard != shard))
		pp = &(*pp)->hnext;
	return pp;
}

static void rcpt_texts_free(struct spart *p)
{
	for (unsigned i = 0; i < p->m->nrcpt; i++) {
		free(p->r[i].reply);
		free(p->r[i].reason);
		p->r[i].reply = p->r[i].reason = NULL;
	}
}

static void part_free(struct sched *s, struct spart *p)
{
	struct spart **pp = sched_part_slot(s, p->m->id, p->m->shard);

	if (*pp == p) {
		*pp = p->hnext;
		s->nactive--;
	}
	if (p->body_loaded)	/* (only if a job could not start after all) */
		body_drop(s, p);
	rcpt_texts_free(p);
	free(p->hold_why);
	free(p->giveup);
	free(p->r);
	free(p->m);
	free(p);
}

/* The class a part's mail travels in: the null sender's is notification. */
static enum dest_class part_class(const struct spart *p)
{
	return p->m->sender && p->m->sender[0] ? DEST_NORMAL : DEST_NOTIFY;
}

/* ---- the body arena ---------------------------------------------------------------- */

static void body_drop(struct sched *s, struct spart *p)
{
	for (unsigned i = 0; i < p->nbody; i++)
		s->cfree[s->ncfree++] =
			(uint32_t)(((uint8_t *)p->body[i].iov_base - s->arena) / SCHED_CHUNK);
	free(p->body);
	p->body = NULL;
	p->nbody = 0;
	p->body_loaded = false;
}

/* The part's body in the arena: 1, 0 (no room now), -1 (cannot be read). */
static int body_get(struct sched *s, struct spart *p)
{
	size_t size = p->m->size, need = (size + SCHED_CHUNK - 1) / SCHED_CHUNK, len = 0;
	int st;

	if (p->body_loaded)
		return 1;
	if (need > s->nchunks)
		return -1;	/* bigger than the whole arena: never */
	if (need > s->ncfree)
		return 0;
	p->body = need ? calloc(need, sizeof(*p->body)) : NULL;
	if (need && !p->body)
		return 0;
	for (size_t i = 0; i < need; i++) {
		uint32_t c = s->cfree[--s->ncfree];
		p->body[i].iov_base = s->arena + (size_t)c * SCHED_CHUNK;
		p->body[i].iov_len = i + 1 < need ? SCHED_CHUNK : size - i * SCHED_CHUNK;
	}
	p->nbody = (unsigned)need;
	st = queue_read_body_iov(s->e.q, p->m->shard, p->m->id, p->body, p->nbody, &len);
	if (st != QUEUE_OK || len != size) {
		log_err("%s: cannot read the body (%s, %zu of %zu bytes)", p->ids,
			queue_status_str(st), len, size);
		body_drop(s, p);
		return -1;
	}
	p->body_loaded = true;
	s->st.body_reads++;
	s->st.body_bytes += size;
	return 1;
}

static void body_put(struct sched *s, struct spart *p)
{
	if (p->body_refs && --p->body_refs == 0)
		body_drop(s, p);
}

/* ---- destinations: where their lanes wait ------------------------------------------------ */

static void ring_add(struct sched *s, struct slane *l)
{
	if (!s->ring) {
		l->prev = l->next = l;
		s->ring = l;
	} else {	/* before the cursor: last in this round */
		l->next = s->ring;
		l->prev = s->ring->prev;
		l->prev->next = l;
		s->ring->prev = l;
	}
	l->rs = R_READY;
	s->nready++;
}

static void ring_del(struct sched *s, struct slane *l)
{
	if (l->next == l) {
		s->ring = NULL;
	} else {
		l->prev->next = l->next;
		l->next->prev = l->prev;
		if (s->ring == l)
			s->ring = l->next;
	}
	l->prev = l->next = NULL;
	l->rs = R_IDLE;
	s->nready--;
}

static void timer_del(struct sched *s, struct slane *l)
{
	if (l->prev)
		l->prev->next = l->next;
	else
		s->timers = l->next;
	if (l->next)
		l->next->prev = l->prev;
	l->prev = l->next = NULL;
	l->rs = R_IDLE;
}

/* Out of whatever it waits in. */
static void lane_unwait(struct sched *s, struct slane *l)
{
	if (l->rs == R_READY)
		ring_del(s, l);
	else if (l->rs == R_TIMER)
		timer_del(s, l);
	l->rs = R_IDLE;
}

static void timer_add(struct sched *s, struct slane *l, uint64_t when)
{
	lane_unwait(s, l);
	l->wake_ns = when;
	l->prev = NULL;
	l->next = s->timers;
	if (s->timers)
		s->timers->prev = l;
	s->timers = l;
	l->rs = R_TIMER;
}

/* Something changed for a lane (an item came, a job came back): into the
 * ready ring when it has work and is not waiting for a timer. */
static void lane_wake(struct sched *s, struct slane *l)
{
	if (l->head && (l->rs == R_IDLE || l->rs == R_WINDOW)) {
		l->rs = R_IDLE;
		ring_add(s, l);
	}
}

/* Both lanes of d (the site's state changed: a flush, a backoff cleared). */
void sched_dest_wake(struct sched *s, struct sdest *d)
{
	for (int c = 0; c < DEST_CLASSES; c++) {
		if (d->lane[c].rs == R_TIMER)
			timer_del(s, &d->lane[c]);
		lane_wake(s, &d->lane[c]);
	}
}

unsigned sched_dest_nitems(const struct sdest *d)
{
	return d->lane[DEST_NORMAL].nitems + d->lane[DEST_NOTIFY].nitems;
}

/* ---- destinations: the table ---------------------------------------------------------- */

struct sdest **sched_dest_slot(struct sched *s, const char *key)
{
	struct sdest **pp = &s->dtab[hash_str(key) & s->dmask];

	while (*pp && strcmp((*pp)->d.name, key) != 0)
		pp = &(*pp)->hnext;
	return pp;
}

static void dtab_grow(struct sched *s)
{
	size_t n = (s->dmask + 1) * 2;
	struct sdest **t = calloc(n, sizeof(*t));

	if (!t)
		return;		/* longer chains, still right */
	for (size_t i = 0; i <= s->dmask; i++)
		while (s->dtab[i]) {
			struct sdest *d = s->dtab[i];
			s->dtab[i] = d->hnext;
			d->hnext = t[hash_str(d->d.name) & (n - 1)];
			t[hash_str(d->d.name) & (n - 1)] = d;
		}
	free(s->dtab);
	s->dtab = t;
	s->dmask = n - 1;
}

/* The name per_domain settings are matched against: the domain (MX
 * routes), else the first next hop's host ("10 [a.example]:25, ..." ->
 * "a.example"). */
static void policy_name(const char *key, char *out, size_t n)
{
	const char *p = key;
	size_t len = strspn(key, "0123456789");

	if (len && key[len] == ' ')	/* a priority */
		p = key + len + 1;
	if (*p == '[')
		p++;
	len = strcspn(p, "]:, ");
	snprintf(out, n, "%.*s", (int)len, p);
}

static struct sdest *dest_get(struct sched *s, const char *key)
{
	struct sdest **pp = sched_dest_slot(s, key), *d;
	char pname[DEST_NAME_MAX];

	if (*pp)
		return *pp;
	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	policy_name(key, pname, sizeof(pname));
	dest_init(&d->d, key, dest_conf_for(s->e.dest, pname));
	for (int c = 0; c < DEST_CLASSES; c++) {
		d->lane[c].d = d;
		d->lane[c].cls = (enum dest_class)c;
	}
	snprintf(d->fail_dsn, sizeof(d->fail_dsn), "4.4.1");
	d->hnext = NULL;
	*pp = d;
	if (++s->ndests > 2 * (s->dmask + 1))
		dtab_grow(s);
	return d;
}

/* ---- idle connections ------------------------------------------------------------------ */

static struct sidle **idle_slot(struct sched *s, unsigned worker, uint64_t key)
{
	struct sidle **pp = &s->itab[hash_u64(key, worker) & s->imask];

	while (*pp && ((*pp)->worker != worker || (*pp)->key != key))
		pp = &(*pp)->hnext;
	return pp;
}

static void idle_unlink(struct sched *s, struct sidle *c)
{
	struct sidle **pp = idle_slot(s, c->worker, c->key);
	struct sdest *d = c->d;

	if (*pp == c)
		*pp = c->hnext;
	if (c->prev)
		c->prev->next = c->next;
	else
		d->idle = c->next;
	if (c->next)
		c->next->prev = c->prev;
	d->nidle--;
	s->nidle--;
	free(c);
}

static void idle_add(struct sched *s, struct sdest *d, unsigned worker, uint64_t key,
		     enum smtp_client_tls tls, unsigned messages)
{
	struct sidle **pp = idle_slot(s, worker, key), *c;

	if (*pp)	/* reported twice (cannot happen): keep the newer facts */
		idle_unlink(s, *pp);
	c = calloc(1, sizeof(*c));
	if (!c)
		return;	/* the lcore closes it after keep_idle: only a lost reuse */
	c->d = d;
	c->worker = worker;
	c->key = key;
	c->tls = tls;
	c->messages = messages;
	pp = idle_slot(s, worker, key);
	*pp = c;
	c->next = d->idle;
	if (d->idle)
		d->idle->prev = c;
	d->idle = c;
	d->nidle++;
	s->nidle++;
}

/* An idle connection of d opened with this TLS policy, on a worker whose
 * job ring has room; the newest first. */
static struct sidle *idle_find(struct sched *s, struct sdest *d, enum smtp_client_tls tls)
{
	for (struct sidle *c = d->idle; c; c = c->next)
		if (c->tls == tls && rte_ring_free_count(s->e.ports[c->worker]->jobs) > 0)
			return c;
	return NULL;
}

/* ---- recipients' outcomes ----------------------------------------------------------------- */

/* The log line of recipient i's outcome o, with this status and dsn. */
void sched_log_status(struct sched *s, const struct spart *p, unsigned i,
		      const struct outcome *o, const char *status, const char *dsn)
{
	char a[16], b[16], c[16], d[16], t[16];
	double da = p->claimed_s > p->m->arrival ? (double)(p->claimed_s - p->m->arrival) : 0;
	uint64_t until = o->dispatched_ns ? o->dispatched_ns : s->now_ns;
	double db = until > p->claimed_ns ? (double)(until - p->claimed_ns) / 1e9 : 0;

	fmt_delay(t, sizeof(t), da + db + o->c + o->d);
	fmt_delay(a, sizeof(a), da);
	fmt_delay(b, sizeof(b), db);
	fmt_delay(c, sizeof(c), o->c);
	fmt_delay(d, sizeof(d), o->d);
	maillog(ML_SMTP, "%s: to=<%s>, relay=%s, delay=%s, delays=%s/%s/%s/%s, dsn=%s, status=%s (%s)",
		 p->ids, p->m->rcpt[i].addr, o->relay, t, a, b, c, d, dsn, status, o->text);
}

static void log_outcome(struct sched *s, const struct spart *p, unsigned i,
			const struct outcome *o, enum queue_rcpt_state st, bool expired)
{
	const char *status = st == QUEUE_RCPT_SENT ? "sent" : st == QUEUE_RCPT_BOUNCED ?
			     (expired ? "expired" : "bounced") : "deferred";

	sched_log_status(s, p, i, o, status, expired ? "4.4.7" : o->dsn);
}

/* When recipient i of p expires (unix s): its domain's lifetime from the
 * arrival (lifetime_per_domain), else the expiry stored at arrival; plus
 * the time the message spent held. 0: never. */
uint64_t sched_rcpt_expiry(const struct sched *s, const struct spart *p, unsigned i)
{
	const struct queue_msg *m = p->m;
	char dom[DOMAIN_MAX + 1];
	uint64_t t = m->expiry;

	sched_addr_domain(m->rcpt[i].addr, dom);
	if (retry_lifetime_overridden(s->e.retry, dom))
		t = m->arrival + retry_lifetime_for(s->e.retry, dom, null_sender(p));
	return t ? t + m->held_s : 0;
}

static void keep_text(char **dst, const char *text)
{
	free(*dst);
	*dst = strdup(text ? text : "");	/* NULL (no memory): the notice says less */
}

/* Recipient i of p came out as o: its state, a RESULT op (or one held for
 * the notice it owes), the log line. */
static void record(struct sched *s, struct spart *p, unsigned i, const struct outcome *o)
{
	struct srcpt *r = &p->r[i];
	enum queue_rcpt_state st = o->state;
	bool expired = false;
	char dom[DOMAIN_MAX + 1];
	const char *dsn = o->dsn;
	uint64_t exp;

	if (!o->record) {	/* not an attempt: due again soon */
		r->next_s = s->now_s + s->c.local_retry_s;
		log_outcome(s, p, i, o, QUEUE_RCPT_DEFERRED, false);
		return;
	}
	if (p->xfer) {		/* moved to another box, or not: never an attempt */
		sched_xfer_record(s, p, i, o);
		return;
	}
	if (st == QUEUE_RCPT_DEFERRED && (exp = sched_rcpt_expiry(s, p, i)) && s->now_s >= exp) {
		st = QUEUE_RCPT_BOUNCED;	/* lifetime over: temporary counts as final */
		expired = true;
		dsn = "4.4.7";			/* delivery time expired (RFC 3463) */
	}
	r->state = (uint8_t)st;
	r->attempts++;
	r->next_s = 0;
	r->at = s->now_s;
	snprintf(r->dsn, sizeof(r->dsn), "%s", dsn ? dsn : "");
	if (st == QUEUE_RCPT_DEFERRED) {
		sched_addr_domain(p->m->rcpt[i].addr, dom);
		/* the attempts on a box it was transferred from count too */
		r->next_s = retry_next_for(s->e.retry, dom, p->m->arrival, s->now_s,
					   r->attempts + p->m->prior_attempts, p->m->id);
	}
	switch (st) {
	case QUEUE_RCPT_SENT: s->st.rcpt_sent++; break;
	case QUEUE_RCPT_BOUNCED:
		if (expired)
			s->st.rcpt_expired++;
		else
			s->st.rcpt_bounced++;
		break;
	default: s->st.rcpt_deferred++; break;
	}
	r->note = st == QUEUE_RCPT_DEFERRED ? NOTE_NONE : sched_note_for(p, i, st, o);
	if (r->note != NOTE_NONE) {
		char host[TEXT_MAX];
		/* the result waits for the notice: never a final result without it */
		r->op_held = true;
		r->op_state = (uint8_t)st;
		keep_text(&r->reply, o->text);
		if (st == QUEUE_RCPT_SENT && strcmp(o->relay, "none") != 0) {
			struct smtp_client_result fake = { .code = 250 };
			snprintf(fake.text, sizeof(fake.text), "%s", o->text);
			reason_text(&fake, o->relay, host, sizeof(host));
			keep_text(&r->reason, host);
		} else {
			keep_text(&r->reason, o->text);
		}
		p->nnote++;
	} else {
		if (st == QUEUE_RCPT_DEFERRED && sched_delay_due(s, p, i))
			keep_text(&r->reason, o->text);	/* for the delay warning */
		if (!p->broken)
			sched_result_op(s, p, i, st, o->text);
	}
	log_outcome(s, p, i, o, st, expired);
}

/* Every recipient of it came out as o. */
/* Count a recipient of d that came out deferred (sched_dest_top). */
static void dest_count(struct sdest *d, const struct spart *p, unsigned i)
{
	if (d && p->r[i].state == QUEUE_RCPT_DEFERRED)
		d->deferred++;
}

static void record_item(struct sched *s, struct sitem *it, const struct outcome *o)
{
	for (unsigned k = 0; k < it->n; k++) {
		record(s, it->p, it->rcpt[k], o);
		if (o->record)
			dest_count(it->d, it->p, it->rcpt[k]);
	}
}

/* The operator gave up on p: recipient i fails now. */
static void give_up(struct sched *s, struct spart *p, unsigned i)
{
	char text[TEXT_MAX];
	struct outcome o = { .state = QUEUE_RCPT_BOUNCED, .dsn = "5.0.0", .text = text,
			     .relay = "none", .record = true };

	sched_textf(text, sizeof(text), "cancelled by the operator%s%s", p->giveup[0] ? ": " : "",
		    p->giveup);
	s->st.given_up++;
	record(s, p, i, &o);
}

/* ---- parts: the end of a claim ------------------------------------------------------------- */

/* Hold the part when its claim ends, for this reason (the first one
 * given; out of memory: held without one). */
static void part_hold(struct spart *p, const char *why)
{
	p->hold = true;
	if (!p->hold_why && why)
		p->hold_why = strdup(why);
}

/* The part's last ops: the RESULT ops held for its notice, the delay
 * warning mark, then the end of the claim (complete, or hold and
 * reschedule). It is freed after the apply that carries them. */
void sched_part_close(struct sched *s, struct spart *p, bool warned)
{
	uint64_t when = UINT64_MAX;
	bool undone = false;
	struct queue_op *op;

	p->finishing = true;
	p->nstate = N_NONE;
	p->lnext = s->finishing;
	s->finishing = p;
	if (p->broken)
		return;
	for (unsigned i = 0; i < p->m->nrcpt; i++) {
		struct srcpt *r = &p->r[i];
		if (!r->op_held)
			continue;
		r->op_held = false;
		sched_result_op(s, p, i, (enum queue_rcpt_state)r->op_state, r->reply);
	}
	if (warned)
		sched_ob_add(s, p, QUEUE_OP_WARN, p->m->shard, p->m->id, NULL);
	for (unsigned i = 0; i < p->m->nrcpt; i++) {
		const struct srcpt *r = &p->r[i];
		uint64_t t;
		if (r->state > QUEUE_RCPT_DEFERRED)
			continue;
		undone = true;
		t = r->next_s ? r->next_s : s->now_s + s->c.local_retry_s;
		if (s->xfer.on && !p->xfer)
			t = s->now_s;	/* its delivery ended during a transfer: moved now */
		if (t < when)
			when = t;
	}
	if (!undone) {
		if ((op = sched_ob_add(s, p, QUEUE_OP_COMPLETE, p->m->shard, p->m->id, NULL)))
			op->token = p->token;
		return;
	}
	if (p->hold)
		sched_ob_add(s, p, QUEUE_OP_HOLD, p->m->shard, p->m->id, p->hold_why);
	if ((op = sched_ob_add(s, p, QUEUE_OP_RESCHEDULE, p->m->shard, p->m->id, NULL))) {
		op->token = p->token;
		op->when = when;
	}
}

/* Every item of p is done. Given up: what is left fails. A delay warning
 * due? Then the notice first, if one is owed, else the last ops now. */
void sched_part_finish(struct sched *s, struct spart *p)
{
	if (!p->broken && p->giveup)
		for (unsigned i = 0; i < p->m->nrcpt; i++)
			if (p->r[i].state <= QUEUE_RCPT_DEFERRED)
				give_up(s, p, i);
	if (!p->broken && !p->giveup && !p->xfer)	/* the other box warns, if anyone */
		for (unsigned i = 0; i < p->m->nrcpt; i++)
			if (p->r[i].state <= QUEUE_RCPT_DEFERRED && sched_delay_due(s, p, i))
				p->warn = true;
	if (p->broken || (!p->nnote && !p->warn)) {
		sched_part_close(s, p, false);
		return;
	}
	p->nstate = N_WAIT;
	p->release_ns = s->now_ns + s->c.notice_hold_ns;	/* tests: a window before it */
	p->nnext = s->notices;
	s->notices = p;
	s->nwaiting++;
}

static void item_done(struct sched *s, struct sitem *it)
{
	struct spart *p = it->p;

	free(it);
	if (--p->open == 0)
		sched_part_finish(s, p);
}

struct sitem *sched_item_new(struct spart *p, unsigned n)
{
	struct sitem *it = malloc(sizeof(*it) + n * sizeof(it->rcpt[0]));

	if (!it)
		return NULL;
	it->next = NULL;
	it->p = p;
	it->d = NULL;
	it->n = n;
	p->open++;
	return it;
}

/* Give the item back untried: its recipients due again at `when`. */
static void item_give_back(struct sched *s, struct sitem *it, uint64_t when)
{
	for (unsigned k = 0; k < it->n; k++) {
		struct srcpt *r = &it->p->r[it->rcpt[k]];
		if (!r->next_s || r->next_s > when)
			r->next_s = when;
	}
	item_done(s, it);
}

/* ---- routing ---------------------------------------------------------------------------------- */

static enum smtp_client_tls tls_of(enum route_tls t)
{
	switch (t) {
	case ROUTE_TLS_NONE: return SCT_NONE;
	case ROUTE_TLS_ENCRYPT: return SCT_ENCRYPT;
	case ROUTE_TLS_VERIFY: return SCT_VERIFY;
	default: return SCT_MAY;
	}
}

/* Into the FIFO of d's lane for the item's class; returns the lane. */
static struct slane *dest_push(struct sched *s, struct sdest *d, struct sitem *it, bool head)
{
	struct slane *l = &d->lane[part_class(it->p)];

	it->d = d;
	if (head) {
		it->next = l->head;
		l->head = it;
		if (!l->tail)
			l->tail = it;
	} else {
		it->next = NULL;
		if (l->tail)
			l->tail->next = it;
		else
			l->head = it;
		l->tail = it;
	}
	l->nitems++;
	s->queued++;
	return l;
}

static struct sitem *lane_pop(struct sched *s, struct slane *l)
{
	struct sitem *it = l->head;

	if (!it)
		return NULL;
	l->head = it->next;
	if (!l->head)
		l->tail = NULL;
	it->next = NULL;
	l->nitems--;
	s->queued--;
	return it;
}

/* An item's route answer. */
void sched_route_item(struct sched *s, struct sitem *it, const struct route_result *r)
{
	struct outcome o = { .relay = "none", .record = true };
	char text[TEXT_MAX];
	struct sdest *d;
	unsigned per;

	if (it->p->giveup) {	/* the operator gave up meanwhile: see part_finish */
		item_done(s, it);
		return;
	}
	switch (r->status) {
	case ROUTE_OK: {
		unsigned usable = 0;	/* the router filtered by address family */
		for (unsigned h = 0; h < r->n; h++)
			usable += r->hop[h].family == AF_INET || r->hop[h].family == AF_INET6;
		d = usable && r->dest[0] ? dest_get(s, r->dest) : NULL;
		if (!d) {	/* no memory, or no address at all */
			o.state = QUEUE_RCPT_DEFERRED;
			o.dsn = usable ? "4.3.0" : "4.4.4";
			o.text = usable ? "out of memory for a destination" :
				 "no usable address for any next hop";
			o.record = !usable;
			record_item(s, it, &o);
			item_done(s, it);
			return;
		}
		d->nhops = 0;
		for (unsigned h = 0; h < r->n && d->nhops < DLV_HOPS_MAX; h++) {
			if (r->hop[h].family == AF_INET) {
				rte_be32_t a;
				memcpy(&a, r->hop[h].addr, 4);
				d->hop[d->nhops].addr = net_addr_v4(a);
			} else if (r->hop[h].family == AF_INET6) {
				d->hop[d->nhops].addr = net_addr_v6(r->hop[h].addr);
			} else {
				continue;
			}
			d->hop[d->nhops].port = r->hop[h].port;
			snprintf(d->hop[d->nhops].mx, DLV_NAME_MAX, "%s", r->hop[h].mx);
			d->nhops++;
		}
		d->tls = tls_of(r->hop[0].tls);
		per = d->d.conf.recipients_per_transaction;
		if (per > DLV_RCPT_MAX)
			per = DLV_RCPT_MAX;
		while (it->n > per) {	/* cut into transactions */
			struct sitem *rest = sched_item_new(it->p, it->n - per);
			if (!rest)
				break;	/* too large an item: dlv_job_rcpt cuts it later */
			memcpy(rest->rcpt, it->rcpt + per, rest->n * sizeof(it->rcpt[0]));
			it->n = per;
			dest_push(s, d, it, false);
			it = rest;
		}
		lane_wake(s, dest_push(s, d, it, false));
		return;
	}
	case ROUTE_PERM:
		if (s->c.loop_hold && strcmp(r->dsn, "5.4.6") == 0) {
			/* the route leads back to us: kept for the operator */
			part_hold(it->p, "mail loop: the route leads back to this host");
			s->st.loops_held++;
			log_notice("%s: held: %s (a mail loop, loop_action = hold)", it->p->ids,
				   r->why[0] ? r->why : "the route leads back to this host");
			break;
		}
		/* fall through */
	case ROUTE_TEMP:
		o.state = r->status == ROUTE_TEMP ? QUEUE_RCPT_DEFERRED : QUEUE_RCPT_BOUNCED;
		o.dsn = r->dsn[0] ? r->dsn : r->status == ROUTE_TEMP ? "4.4.3" : "5.1.2";
		snprintf(text, sizeof(text), "%s", r->why[0] ? r->why : "no route");
		o.text = text;
		if (r->status == ROUTE_TEMP)
			s->st.route_temp++;
		else
			s->st.route_perm++;
		record_item(s, it, &o);
		break;
	case ROUTE_DISCARD:
		o.state = QUEUE_RCPT_SENT;
		o.dsn = "2.0.0";
		o.text = "discarded";
		o.discarded = true;
		s->st.route_discard++;
		record_item(s, it, &o);
		break;
	case ROUTE_HOLD:
		part_hold(it->p, "held by its route");
		s->st.route_hold++;
		break;
	}
	item_done(s, it);
}

static struct slookup **lookup_slot(struct sched *s, const char *domain)
{
	struct slookup **pp = &s->ltab[hash_str(domain) & s->lmask];

	while (*pp && strcmp((*pp)->domain, domain) != 0)
		pp = &(*pp)->hnext;
	return pp;
}

static void lookup_unlink(struct sched *s, struct slookup *l)
{
	struct slookup **pp = lookup_slot(s, l->domain);

	if (*pp == l)
		*pp = l->hnext;
	if (l->retry)
		for (struct slookup **rp = &s->retry; *rp; rp = &(*rp)->rnext)
			if (*rp == l) {
				*rp = l->rnext;
				break;
			}
	s->nlookups--;
}

/* route_cb: the answer serves every item waiting for the domain. */
static void on_route(void *user, const struct route_result *r)
{
	struct slookup *l = user;
	struct sched *s = l->s;
	struct sitem *it = l->head;

	lookup_unlink(s, l);
	free(l);
	while (it) {
		struct sitem *next = it->next;
		sched_route_item(s, it, r);
		it = next;
	}
}

/* Ask the router (again). The lookup may be answered and gone on return. */
static void lookup_start(struct sched *s, struct slookup *l)
{
	int rc;

	s->st.route_lookups++;
	rc = route_lookup(s->e.rt, l->domain, on_route, l);
	if (rc == 1)
		return;		/* answered and freed */
	if (rc == 0) {
		l->running = true;
		return;
	}
	if (rc == -ENOBUFS || rc == -ENOMEM) {	/* the router is full: next pass */
		if (!l->retry) {
			l->retry = true;
			l->rnext = s->retry;
			s->retry = l;
		}
		return;
	}
	/* not a host name: malformed (final), or an internationalized name
	 * the router cannot look up before IDNA conversion exists (kept) */
	struct route_result bad = { .status = ROUTE_PERM };
	bool utf8 = false;
	for (const char *c = l->domain; *c; c++)
		utf8 |= (unsigned char)*c >= 0x80;
	if (utf8) {
		bad.status = ROUTE_TEMP;
		snprintf(bad.dsn, sizeof(bad.dsn), "4.4.3");
		sched_textf(bad.why, sizeof(bad.why), "cannot route the internationalized domain "
			    "'%.150s' yet (no IDNA conversion)", l->domain);
	} else {
		snprintf(bad.dsn, sizeof(bad.dsn), "5.1.2");
		snprintf(bad.why, sizeof(bad.why), "bad destination domain '%.150s'", l->domain);
	}
	on_route(l, &bad);
}

/* Route item (recipients of one domain): wait for the lookup in progress
 * for that domain, or start one. */
static void lookup_add(struct sched *s, const char *domain, struct sitem *it)
{
	struct slookup **pp = lookup_slot(s, domain), *l = *pp;

	if (!l) {
		l = calloc(1, sizeof(*l));
		if (!l) {
			struct outcome o = { .state = QUEUE_RCPT_DEFERRED, .dsn = "4.3.0",
					     .text = "out of memory for a route lookup",
					     .relay = "none" };
			record_item(s, it, &o);
			item_done(s, it);
			return;
		}
		l->s = s;
		snprintf(l->domain, sizeof(l->domain), "%s", domain);
		*pp = l;
		s->nlookups++;
		l->head = l->tail = it;
		lookup_start(s, l);
		return;
	}
	if (l->tail)
		l->tail->next = it;
	else
		l->head = it;
	l->tail = it;
}

struct rdom {
	const char *dom;
	size_t len;
	uint16_t i;
};

static int rdom_cmp(const void *a, const void *b)
{
	const struct rdom *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = strncasecmp(x->dom, y->dom, n);

	if (c)
		return c;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return (int)x->i - (int)y->i;
}

/* The operator's suspension of domain dom (normal form), or NULL; one
 * that ran out is dropped here. */
const struct ssusp *sched_suspension(struct sched *s, const char *dom)
{
	for (unsigned i = 0; i < SCHED_SUSPEND_MAX; i++) {
		struct ssusp *u = &s->susp[i];
		if (!u->dom[0] || strcmp(u->dom, dom) != 0)
			continue;
		if (u->until_s && u->until_s <= s->now_s) {
			log_notice("sched: the suspension of %s ran out", u->dom);
			u->dom[0] = '\0';
			return NULL;
		}
		return u;
	}
	return NULL;
}

/* Recipients of a suspended domain: given back untried, due when the
 * suspension ends (or after min_backoff when it has no end: `resume`
 * flushes them), logged deferred as for a suspended destination. */
static void item_suspended(struct sched *s, struct sitem *it, const struct ssusp *u)
{
	char text[TEXT_MAX];
	struct outcome o = { .state = QUEUE_RCPT_DEFERRED, .dsn = "4.3.2", .text = text,
			     .relay = "none", .record = false };
	uint64_t when = u->until_s ? u->until_s : s->now_s + s->e.retry->conf.min_backoff_s;

	snprintf(text, sizeof(text), "delivery to %s suspended by the operator", u->dom);
	s->st.suspended += it->n;
	for (unsigned k = 0; k < it->n; k++)
		log_outcome(s, it->p, it->rcpt[k], &o, QUEUE_RCPT_DEFERRED, false);
	item_give_back(s, it, when);
}

/* A claimed part: its undone recipients grouped by domain, each group routed. */
static void part_route(struct sched *s, struct spart *p)
{
	struct rdom *g;
	unsigned n = 0;

	if (p->giveup) {	/* the operator's bounce: nothing is routed */
		sched_part_finish(s, p);
		return;
	}
	if (s->xfer.on) {	/* moved to another box, whatever its domains */
		sched_xfer_route(s, p);
		return;
	}
	g = malloc(p->m->nrcpt * sizeof(*g) + 1);
	p->open = 1;	/* held while the groups are made (answers may come at once) */
	if (!g) {
		log_err("%s: out of memory to route it", p->ids);
		p->broken = true;
	}
	for (unsigned i = 0; g && i < p->m->nrcpt; i++) {
		const char *a = p->m->rcpt[i].addr, *at = strrchr(a, '@');
		if (p->r[i].state > QUEUE_RCPT_DEFERRED)
			continue;
		g[n].dom = at ? at + 1 : "";
		g[n].len = strlen(g[n].dom);
		if (g[n].len > 1 && g[n].dom[g[n].len - 1] == '.')
			g[n].len--;
		g[n].i = (uint16_t)i;
		n++;
	}
	if (n)
		qsort(g, n, sizeof(*g), rdom_cmp);
	for (unsigned a = 0; a < n;) {
		unsigned b = a + 1;
		char dom[DOMAIN_MAX + 1];
		struct sitem *it;

		while (b < n && rdom_cmp(&(struct rdom){ g[a].dom, g[a].len, g[b].i }, &g[b]) == 0)
			b++;
		it = sched_item_new(p, b - a);
		if (!it) {
			log_err("%s: out of memory to route it", p->ids);
			p->broken = true;
			break;
		}
		for (unsigned k = a; k < b; k++)
			it->rcpt[k - a] = g[k].i;
		if (sched_addr_domain(p->m->rcpt[g[a].i].addr, dom) == 0) {
			struct outcome o = { .state = QUEUE_RCPT_BOUNCED, .dsn = "5.1.3",
					     .text = "bad address syntax (no domain)",
					     .relay = "none", .record = true };
			record_item(s, it, &o);
			item_done(s, it);
		} else {
			const struct ssusp *u = sched_suspension(s, dom);
			if (u)
				item_suspended(s, it, u);
			else
				lookup_add(s, dom, it);
		}
		a = b;
	}
	free(g);
	if (--p->open == 0)
		sched_part_finish(s, p);
}

/* A message's first claim: its day's count (quota.h), for the user it
 * authenticated as or its trusted client. True: hold it (over its daily
 * quota, or the user is suspended). A message spanning shards counts once,
 * with the recipients of every part; its other parts follow the decision. */
static bool part_quota(struct sched *s, struct spart *p)
{
	const struct queue_msg *m = p->m;
	bool multi = __builtin_popcountll(m->shards) > 1;
	char why[QUOTA_WHY_MAX + 1];
	unsigned nrcpt = m->nrcpt;

	if (!s->e.quota || !s->quota_batch)
		return false;
	for (unsigned sh = 0; multi && sh < QUEUE_SHARDS_MAX; sh++) {
		struct queue_msg *o;
		if (!(m->shards & (1ull << sh)) || sh == m->shard ||
		    queue_lookup(s->e.q, sh, m->id, &o) != QUEUE_OK)
			continue;
		nrcpt += o->nrcpt;
		free(o);
	}
	if (quota_account(s->e.quota, s->now_s, m->id, multi, m->auth_user, m->client_addr,
			  nrcpt, why) != QUOTA_HOLD)
		return false;
	part_hold(p, why);
	if (!(m->shards & ((1ull << m->shard) - 1))) {	/* once a message: its lowest part */
		s->st.quota_held++;
		log_notice("%s: held: %s", p->ids, why);
		maillog(ML_QMGR, "%s: hold: %s", p->ids, why);
	}
	return true;
}

/* After a claim: the part into the active set, and on its way (given up
 * at once when giveup is not NULL). Returns it, or NULL. */
struct spart *sched_part_claimed(struct sched *s, const struct claimed *c, const char *giveup)
{
	struct queue_msg *m = NULL;
	struct spart *p;
	int st = queue_lookup(s->e.q, c->shard, c->id, &m);

	if (st != QUEUE_OK) {	/* gone meanwhile (deleted): its claim lapses */
		log_warn("sched: claimed message part %llx in shard %u: lookup: %s",
			 (unsigned long long)c->id, c->shard, queue_status_str(st));
		s->st.claims_lost++;
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (p) {
		p->r = calloc(m->nrcpt ? m->nrcpt : 1, sizeof(*p->r));
		p->giveup = giveup ? strdup(giveup) : NULL;
	}
	if (!p || !p->r || (giveup && !p->giveup)) {
		log_err("sched: out of memory for a claimed message part");
		if (p) {
			free(p->r);
			free(p);
		}
		free(m);
		return NULL;	/* the lease lapses: tried again then */
	}
	p->m = m;
	p->token = c->token;
	queue_id_format(m->id, p->ids);
	p->claimed_s = s->now_s;
	p->claimed_ns = s->now_ns;
	for (unsigned i = 0; i < m->nrcpt; i++) {
		p->r[i].state = m->rcpt[i].state;
		p->r[i].attempts = m->rcpt[i].attempts;
	}
	*sched_part_slot(s, m->id, m->shard) = p;
	if (c->token == 1 && !(m->shards & ((1ull << m->shard) - 1))) {
		/* its first claim, at its lowest shard: the message enters the
		 * mail log (maillog.h; Postfix's qmgr logs from= likewise) */
		if (m->client_addr && m->client_addr[0] && m->auth_user && m->auth_user[0])
			/* as Postfix's smtpd logs an authenticated client */
			maillog(ML_SMTPD, "%s: client=%s[%s], sasl_method=%s, sasl_username=%s",
				p->ids,
				m->client_name && m->client_name[0] ? m->client_name : "unknown",
				m->client_addr, m->auth_method && m->auth_method[0] ?
				m->auth_method : "unknown", m->auth_user);
		else if (m->client_addr && m->client_addr[0])
			maillog(ML_SMTPD, "%s: client=%s[%s]", p->ids,
				m->client_name && m->client_name[0] ? m->client_name : "unknown",
				m->client_addr);
		maillog(ML_QMGR, "%s: from=<%s>, size=%llu, nrcpt=%u (queue active)", p->ids,
			m->sender ? m->sender : "", (unsigned long long)m->size, m->nrcpt);
	}
	s->nactive++;
	s->st.claims++;
	if (c->token == 1 && !giveup && !s->xfer.on && part_quota(s, p)) {
		sched_part_finish(s, p);	/* held at once: nothing is routed */
		return p;
	}
	part_route(s, p);
	return p;
}

/* ---- the apply ---------------------------------------------------------------------------------- */

static const char *op_name(enum queue_op_kind k)
{
	static const char *const n[] = { "claim", "result", "reschedule", "complete", "hold",
					 "release", "delete", "flush", "warn" };
	return (unsigned)k <= QUEUE_OP_LAST ? n[k] : "?";
}

/* Write the pass's ops in one queue_apply; then free the finished parts and
 * take up the new claims. Returns the ops applied. */
static unsigned apply(struct sched *s)
{
	struct opbuf *b = &s->ob;
	size_t n = b->n;
	struct spart *fin;

	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		b->op[i].reply = b->text[i] == UINT32_MAX ? NULL : b->txt + b->text[i];
		b->op[i].status = QUEUE_IO;	/* unless the queue says otherwise */
	}
	queue_apply(s->e.q, b->op, n);
	s->st.applies++;
	s->st.ops += n;
	s->ncl = 0;
	for (size_t i = 0; i < n; i++) {
		struct queue_op *o = &b->op[i];
		struct spart *p = b->part[i];

		if (o->op == QUEUE_OP_CLAIM) {
			if (o->status != QUEUE_OK) {
				s->st.claims_lost++;
				continue;
			}
			if (s->ncl < s->clcap)	/* sized for every claim of a scan */
				s->cl[s->ncl++] = (struct claimed){ o->id, o->shard, o->out_token };
			continue;
		}
		if (o->op == QUEUE_OP_WARN && o->status == QUEUE_NOTFOUND)
			continue;	/* that part was done meanwhile: nothing to mark */
		if (o->status != QUEUE_OK) {
			char ids[QUEUE_ID_STR];
			queue_id_format(o->id, ids);
			log_err("%s: queue %s (shard %u) refused: %s", ids, op_name(o->op), o->shard,
				queue_status_str(o->status));
			s->st.op_errors++;
			if (p)
				p->broken = true;
			continue;
		}
		if (o->op == QUEUE_OP_COMPLETE) {
			s->st.completed++;
			if (p && p->xfer) {
				s->st.xfer_moved++;
				s->xfer.moved++;
			}
			maillog(ML_QMGR, "%s: removed", p ? p->ids : "?");
		} else if (o->op == QUEUE_OP_RESCHEDULE) {
			s->st.rescheduled++;
		} else if (o->op == QUEUE_OP_HOLD) {
			s->st.held++;
			log_info("%s: held by its route", p ? p->ids : "?");
		}
	}
	b->n = 0;
	b->tlen = 0;
	fin = s->finishing;
	s->finishing = NULL;
	while (fin) {
		struct spart *next = fin->lnext;
		part_free(s, fin);
		fin = next;
	}
	/* the new claims' quota counts: one commit for all of them */
	s->quota_batch = s->e.quota && s->ncl && !s->stopping &&
			 quota_batch_begin(s->e.quota) == 0;
	for (size_t i = 0; i < s->ncl; i++) {
		struct queue_op *o;
		if (!s->stopping) {
			sched_part_claimed(s, &s->cl[i], NULL);
			continue;
		}
		/* stopping: end the claim at once, due now (next apply) */
		o = sched_ob_add(s, NULL, QUEUE_OP_RESCHEDULE, s->cl[i].shard, s->cl[i].id, NULL);
		if (o) {
			o->token = s->cl[i].token;
			o->when = s->now_s;
		}
	}
	if (s->quota_batch)
		quota_batch_commit(s->e.quota);
	s->quota_batch = false;
	s->ncl = 0;
	return (unsigned)n;
}

/* ---- the due scan ----------------------------------------------------------------------------------- */

static unsigned scan(struct sched *s)
{
	unsigned nshards = queue_nshards(s->e.q), room, found = 0, claims = 0;
	bool full = false;

	if (s->stopping || s->nactive >= s->c.active_limit)
		return 0;
	if (!s->scan_now && s->now_ns - s->last_scan_ns < s->c.scan_interval_ns &&
	    s->last_scan_ns)
		return 0;
	room = s->c.active_limit - s->nactive;
	s->last_scan_ns = s->now_ns;
	s->scan_now = false;
	s->st.scans++;
	for (unsigned k = 0; k < nshards && room; k++) {
		unsigned shard = (s->shard_rr + k) % nshards;
		size_t n = 0, want = s->c.scan_batch;
		int st = queue_scan_due(s->e.q, shard, s->now_s, s->due, want, &n);

		if (st != QUEUE_OK) {
			log_err("sched: due scan of shard %u: %s", shard, queue_status_str(st));
			continue;
		}
		found += (unsigned)n;
		if (n == want)
			full = true;
		for (size_t i = 0; i < n && room; i++) {
			struct queue_op *o;
			if (*sched_part_slot(s, s->due[i].id, shard))
				continue;	/* ours already (a lease ran out) */
			o = sched_ob_add(s, NULL, QUEUE_OP_CLAIM, shard, s->due[i].id, NULL);
			if (!o)
				break;
			o->lease_s = s->c.lease_s;
			room--;
			claims++;
		}
	}
	s->shard_rr = (s->shard_rr + 1) % nshards;
	s->st.due_seen += found;
	s->scan_now = full;	/* more is due: look again at once */
	return claims;
}

/* ---- dispatch ------------------------------------------------------------------------------------- */

/* The worker for a new connection: fewest jobs lent, job ring not full; -1: none. */
static int pick_worker(struct sched *s)
{
	int best = -1;

	for (unsigned w = 0; w < s->e.nports; w++) {
		if (rte_ring_free_count(s->e.ports[w]->jobs) == 0)
			continue;
		if (best < 0 || s->port_lent[w] < s->port_lent[best])
			best = (int)w;
	}
	return best;
}

/* Every queued item of d (both classes: death is the site's) deferred now,
 * without a connection (dead). */
static void dest_defer_all(struct sched *s, struct sdest *d, const char *why)
{
	char text[TEXT_MAX];
	struct outcome o = { .state = QUEUE_RCPT_DEFERRED, .dsn = d->fail_dsn, .text = text,
			     .relay = "none", .record = true };
	struct sitem *it;

	snprintf(text, sizeof(text), "delivery temporarily suspended: %s", why);
	for (int c = 0; c < DEST_CLASSES; c++) {
		lane_unwait(s, &d->lane[c]);
		while ((it = lane_pop(s, &d->lane[c]))) {
			s->st.dead_deferred += it->n;
			record_item(s, it, &o);
			item_done(s, it);
		}
	}
}

/* Every queued item of d given back untried (suspended): due at `until`. */
static void dest_give_back(struct sched *s, struct sdest *d, uint64_t until_ns, const char *why)
{
	uint64_t when = s->now_s + s->e.retry->conf.min_backoff_s;
	char text[TEXT_MAX];
	struct outcome o = { .state = QUEUE_RCPT_DEFERRED, .dsn = "4.4.0", .text = text,
			     .relay = "none", .record = false };
	struct sitem *it;

	if (until_ns != DEST_UNTIL_EVENT && until_ns > s->now_ns)
		when = s->now_s + (until_ns - s->now_ns + NS_PER_SEC - 1) / NS_PER_SEC;
	snprintf(text, sizeof(text), "delivery suspended: %s", why);
	for (int c = 0; c < DEST_CLASSES; c++) {
		lane_unwait(s, &d->lane[c]);
		while ((it = lane_pop(s, &d->lane[c]))) {
			s->st.suspended += it->n;
			for (unsigned k = 0; k < it->n; k++)
				log_outcome(s, it->p, it->rcpt[k], &o, QUEUE_RCPT_DEFERRED, false);
			item_give_back(s, it, when);
		}
	}
}

enum { TRY_NONE, TRY_SENT, TRY_STOP };

/* Fill job j for item it (maybe fewer recipients: the rest goes back). */
static void job_fill(struct sched *s, struct sjob *sj, struct sdest *d, struct sitem *it,
		     struct sidle *idle, enum smtp_client_tls tls)
{
	struct dlv_job *j = &sj->j;
	const struct queue_msg *m = it->p->m;
	unsigned k, msgs = idle ? idle->messages : 0;

	dlv_job_init(j, ++s->jobseq);
	j->user = sj;
	j->conn_key = idle ? idle->key : 0;
	snprintf(j->dest, sizeof(j->dest), "%s", d->d.name);
	j->tls = tls;
	j->keep_idle_ms = msgs + 1 >= d->d.conf.messages_per_connection ? 0 : s->c.keep_idle_ms;
	for (unsigned h = 0; h < d->nhops; h++)
		dlv_job_hop_addr(j, &d->hop[h].addr, d->hop[h].port, d->hop[h].mx);
	dlv_job_sender(j, m->sender, m->envid && m->envid[0] ? m->envid : NULL, m->ret,
		       m->body_flags);
	if (it->p->xfer)	/* its history goes with it, or it does not go */
		sched_xfer_job(s, j, it->p);
	for (k = 0; k < it->n; k++) {
		const struct queue_msg_rcpt *r = &m->rcpt[it->rcpt[k]];
		if (dlv_job_rcpt(j, r->addr, r->orcpt && r->orcpt[0] ? r->orcpt : NULL,
				 r->notify) < 0)
			break;
	}
	if (k < it->n && k > 0) {	/* the strings are full: the rest in another job */
		struct sitem *rest = sched_item_new(it->p, it->n - k);
		if (rest) {
			memcpy(rest->rcpt, it->rcpt + k, rest->n * sizeof(it->rcpt[0]));
			it->n = k;
			dest_push(s, d, rest, true);
		}
	}
	dlv_job_body(j, it->p->body, it->p->nbody);
	sj->it = it;
	sj->tls = tls;
	sj->dispatched_ns = s->now_ns;
}

/* An item whose domain the operator suspended after it was routed (here or
 * in the cluster): given back as at routing. true when it was. */
static bool item_domain_suspended(struct sched *s, struct slane *l, struct sitem *it)
{
	char dom[DOMAIN_MAX + 1];
	const struct ssusp *u;

	if (!sched_addr_domain(it->p->m->rcpt[it->rcpt[0]].addr, dom))
		return false;
	u = sched_suspension(s, dom);
	if (!u)
		return false;
	lane_pop(s, l);
	item_suspended(s, it, u);
	return true;
}

/* The cluster hears of d's open connections (in flight + idle). */
static void cluster_note(struct sched *s, const struct sdest *d)
{
	if (s->e.cluster)
		cluster_note_open(s->e.cluster, d->d.name, d->lent + d->nidle);
}

/* One item of lane l, if its destination and the resources allow. */
static int try_one(struct sched *s, struct slane *l)
{
	struct sitem *it = l->head;
	struct sdest *d = l->d;
	enum smtp_client_tls tls = d->tls;
	struct sidle *idle;
	struct dest_wait w;
	struct sjob *sj;
	int worker, b;
	bool keep = true;

	if (!it) {
		lane_unwait(s, l);
		return TRY_NONE;
	}
	if (it->p->giveup) {	/* the operator gave up on it: not sent */
		lane_pop(s, l);
		item_done(s, it);
		return TRY_NONE;
	}
	if (!it->p->xfer && item_domain_suspended(s, l, it))
		return TRY_NONE;
	if (!s->jfree) {
		s->st.slot_waits++;
		return TRY_STOP;
	}
	if (tls == SCT_MAY && s->now_ns < d->plain_until_ns)
		tls = SCT_NONE;
	idle = idle_find(s, d, tls);
	switch (dest_may_start(&d->d, l->cls, s->now_ns, idle == NULL, &w)) {
	case DEST_GO:
		break;
	case DEST_WINDOW:
		lane_unwait(s, l);
		l->rs = R_WINDOW;	/* until a job of its class comes back */
		return TRY_NONE;
	case DEST_RATE:
		timer_add(s, l, w.until_ns);
		return TRY_NONE;
	case DEST_SUSPENDED:
		dest_give_back(s, d, w.until_ns, w.reason);
		return TRY_NONE;
	case DEST_DEAD:
		dest_defer_all(s, d, w.reason);
		return TRY_NONE;
	}
	worker = idle ? (int)idle->worker : pick_worker(s);
	if (worker < 0) {
		s->st.ring_waits++;
		return TRY_STOP;
	}
	b = body_get(s, it->p);
	if (b == 0) {
		s->st.body_waits++;
		return TRY_STOP;
	}
	if (b < 0) {	/* unreadable: not an attempt, due again soon */
		struct outcome o = { .state = QUEUE_RCPT_DEFERRED, .dsn = "4.3.0",
				     .text = "cannot read the message body from the queue",
				     .relay = "none" };
		lane_pop(s, l);
		record_item(s, it, &o);
		item_done(s, it);
		return TRY_NONE;
	}
	if (s->e.cluster) {	/* the cluster's lease and rate cell (cluster.h) */
		uint64_t cw = cluster_admit(s->e.cluster, d->d.name, &d->d.conf, l->cls,
					    idle == NULL, d->lent + d->nidle, s->now_ns, &keep);
		if (cw) {
			s->st.cluster_waits++;
			timer_add(s, l, s->now_ns + cw);
			return TRY_NONE;
		}
	}
	if (dest_start(&d->d, l->cls, s->now_ns, idle == NULL, &w) != DEST_GO)
		return TRY_NONE;	/* cannot happen: may_start said go */
	sj = s->jfree;
	s->jfree = sj->next_free;
	lane_pop(s, l);
	job_fill(s, sj, d, it, idle, tls);
	if (!keep)	/* above this box's share of the cluster: close it after */
		sj->j.keep_idle_ms = 0;
	sj->worker = (unsigned)worker;
	sj->cls = l->cls;
	if (idle) {
		s->st.reused++;
		idle_unlink(s, idle);	/* lent with the job */
	}
	it->p->body_refs++;
	it->p->lent++;
	d->lent++;
	s->lent++;
	s->port_lent[worker]++;
	s->st.jobs++;
	if (dlv_submit(s->e.ports[worker], &sj->j) < 0) {	/* checked: cannot happen */
		log_err("sched: worker %d: job ring full after all", worker);
		abort();
	}
	if (!l->head)
		lane_unwait(s, l);
	return TRY_SENT;
}

/* Round robin over the ready lanes, one item each per round. */
static unsigned dispatch(struct sched *s)
{
	unsigned sent = 0;
	bool progress = true;

	if (s->stopping)
		return 0;
	while (s->ring && progress && sent < DISPATCH_MAX) {
		unsigned round = s->nready;
		progress = false;
		for (unsigned k = 0; k < round && s->ring; k++) {
			struct slane *l = s->ring;
			int r;
			s->ring = l->next;	/* the cursor moves on first */
			r = try_one(s, l);
			if (r == TRY_STOP)
				return sent;
			if (r == TRY_SENT) {
				sent++;
				progress = true;
			}
		}
	}
	return sent;
}

/* ---- results -------------------------------------------------------------------------------------- */

static void job_free(struct sched *s, struct sjob *sj)
{
	sj->it = NULL;
	sj->next_free = s->jfree;
	s->jfree = sj;
}

static void on_result(struct sched *s, unsigned worker, struct dlv_job *j)
{
	struct sjob *sj = j->user;
	struct sitem *it = sj->it;
	struct spart *p = it->p;
	struct sdest *d = it->d;
	const struct dlv_result *res = &j->res;
	double c = (double)res->t_conn_ns / 1e9, x = (double)res->t_xmit_ns / 1e9;
	char text[TEXT_MAX], reason[TEXT_MAX];

	s->st.results++;
	s->lent--;
	s->port_lent[worker]--;
	d->lent--;
	p->lent--;
	body_put(s, p);
	if (res->conn_key)
		idle_add(s, d, worker, res->conn_key, sj->tls, res->conn_messages);

	if (res->tls_failed && sj->tls == SCT_MAY) {
		/* Postfix: the next try of that destination goes in plaintext */
		dest_done(&d->d, sj->cls, s->now_ns, DEST_UNTRIED, NULL);
		d->plain_until_ns = s->now_ns + (uint64_t)s->c.tls_fallback_s * NS_PER_SEC;
		s->st.tls_fallbacks++;
		log_info("%s: TLS with %s failed (%s): sending without TLS for %u s", p->ids,
			 res->relay, res->msg.text, s->c.tls_fallback_s);
		dest_push(s, d, it, true);
	} else if (res->local) {
		struct outcome o = { .state = QUEUE_RCPT_DEFERRED, .text = res->msg.text,
				     .relay = res->relay[0] ? res->relay : "none",
				     .dispatched_ns = sj->dispatched_ns, .c = c, .d = x };
		o.dsn = res->msg.status[0] ? res->msg.status : "4.3.0";
		dest_done(&d->d, sj->cls, s->now_ns, DEST_UNTRIED, NULL);
		s->st.local++;
		record_item(s, it, &o);
		item_done(s, it);
	} else {
		enum dest_outcome fb = DEST_OTHER_FAIL;
		const char *relay = res->relay[0] ? res->relay : "none";

		reason_text(&res->msg, relay, reason, sizeof(reason));
		if (res->site_failure) {
			fb = DEST_SITE_FAIL;
			snprintf(d->fail_dsn, sizeof(d->fail_dsn), "%s",
				 res->msg.status[0] ? res->msg.status : "4.4.1");
		} else {
			for (unsigned k = 0; k < it->n && k < j->msg.nrcpt; k++)
				if (res->rcpt[k].status[0] == '2')
					fb = DEST_OK;
		}
		dest_done(&d->d, sj->cls, s->now_ns, fb, reason);
		for (unsigned k = 0; k < it->n; k++) {
			const struct smtp_client_result *r = k < j->msg.nrcpt ? &res->rcpt[k]
						     : &res->msg;
			struct outcome o = { .relay = relay, .dispatched_ns = sj->dispatched_ns,
					     .c = c, .d = x, .record = true, .text = text,
					     .peer_dsn = res->peer_dsn };
			o.state = r->status[0] == '2' ? QUEUE_RCPT_SENT :
				  r->status[0] == '5' ? QUEUE_RCPT_BOUNCED : QUEUE_RCPT_DEFERRED;
			o.dsn = r->status[0] ? r->status : "4.0.0";
			if (o.state == QUEUE_RCPT_SENT)
				snprintf(text, sizeof(text), "%s", r->text);
			else
				reason_text(r, relay, text, sizeof(text));
			record(s, p, it->rcpt[k], &o);
			dest_count(d, p, it->rcpt[k]);
		}
		item_done(s, it);
	}
	lane_wake(s, &d->lane[sj->cls]);
	cluster_note(s, d);
	job_free(s, sj);
}

static unsigned reap(struct sched *s)
{
	struct dlv_event ev[REAP_BURST];
	unsigned total = 0;

	for (unsigned w = 0; w < s->e.nports; w++) {
		unsigned got = 0, n;
		do {
			n = dlv_reap(s->e.ports[w], ev, REAP_BURST);
			for (unsigned i = 0; i < n; i++) {
				if (ev[i].job) {
					on_result(s, w, ev[i].job);
					continue;
				}
				struct sidle *c = *idle_slot(s, w, ev[i].closed_key);
				s->st.close_events++;
				if (c) {	/* else lent to a job meanwhile: the two crossed */
					struct sdest *cd = c->d;
					idle_unlink(s, c);
					cluster_note(s, cd);
				}
			}
			got += n;
		} while (n == REAP_BURST && got < REAP_MAX);
		total += got;
	}
	return total;
}

/* ---- timers, retries, housekeeping ------------------------------------------------------------------ */

static void timers(struct sched *s)
{
	struct slane *l = s->timers;

	while (l) {
		struct slane *next = l->next;
		if (l->wake_ns <= s->now_ns) {
			timer_del(s, l);
			lane_wake(s, l);
		}
		l = next;
	}
}

static void lookups_retry(struct sched *s)
{
	struct slookup *l = s->retry;

	s->retry = NULL;
	while (l) {
		struct slookup *next = l->rnext;
		l->retry = false;
		l->rnext = NULL;
		lookup_start(s, l);
		l = next;
	}
}

static void dest_free(struct sched *s, struct sdest **pp)
{
	struct sdest *d = *pp;

	*pp = d->hnext;
	s->ndests--;
	free(d);
}

/* Forget destinations that would decide nothing differently when made anew. */
static void gc(struct sched *s)
{
	if (s->now_ns - s->last_gc_ns < GC_INTERVAL_NS)
		return;
	s->last_gc_ns = s->now_ns;
	for (size_t i = 0; i <= s->dmask; i++) {
		struct sdest **pp = &s->dtab[i];
		while (*pp) {
			struct sdest *d = *pp;
			if (d->lane[0].rs == R_IDLE && d->lane[1].rs == R_IDLE &&
			    !sched_dest_nitems(d) && !d->lent && !d->idle &&
			    s->now_ns >= d->plain_until_ns &&
			    dest_idle(&d->d, s->now_ns))
				dest_free(s, pp);
			else
				pp = &d->hnext;
		}
	}
}

unsigned sched_poll(struct sched *s)
{
	unsigned work = 0;

	sched_tick(s);
	work += reap(s);
	work += sched_notices_poll(s);
	sched_notices_release(s);
	timers(s);
	/* What waits already claimed goes out on the windows the results just
	 * opened, before this pass blocks in its group commit (dispatching
	 * other claimed work needs nothing from it). */
	work += dispatch(s);
	lookups_retry(s);
	work += scan(s);
	work += sched_notices_flush(s);
	work += apply(s);
	work += dispatch(s);
	gc(s);
	return work;
}

uint64_t sched_wake_ns(const struct sched *s)
{
	uint64_t now = s->now_ns, t = s->last_scan_ns + s->c.scan_interval_ns;

	if (s->ob.n || (s->scan_now && !s->stopping && s->nactive < s->c.active_limit))
		return now;
	if (s->lent || s->ring || s->notices || bounce_inflight(s->bn))
		t = t < now + LENT_WAKE_NS ? t : now + LENT_WAKE_NS;
	for (const struct slane *l = s->timers; l; l = l->next)
		if (l->wake_ns < t)
			t = l->wake_ns;
	for (const struct spart *p = s->nheld; p; p = p->nnext)
		if (p->release_ns < t)
			t = p->release_ns;
	return t < now ? now : t;
}

/* ---- stop ---------------------------------------------------------------------------------------------- */

void sched_quiesce(struct sched *s)
{
	struct timespec ms = { 0, 1000000 };
	uint64_t t0 = clock_mono_ns();

	sched_tick(s);
	s->stopping = true;
	/* what waits for a destination or a route goes back untried, due now */
	for (size_t i = 0; i <= s->dmask; i++)
		for (struct sdest *d = s->dtab[i]; d; d = d->hnext)
			for (int c = 0; c < DEST_CLASSES; c++) {
				struct sitem *it;
				lane_unwait(s, &d->lane[c]);
				while ((it = lane_pop(s, &d->lane[c])))
					item_give_back(s, it, s->now_s);
			}
	for (size_t i = 0; i <= s->lmask; i++)
		for (struct slookup *l = s->ltab[i]; l; l = l->hnext) {
			struct sitem *it = l->head;
			l->head = l->tail = NULL;	/* an answer, if any, finds none */
			while (it) {
				struct sitem *next = it->next;
				item_give_back(s, it, s->now_s);
				it = next;
			}
		}
	/* results of jobs in flight and the notices they owe, for a while
	 * (real time: the lcores and the queue's writers run) */
	for (;;) {
		sched_tick(s);
		reap(s);
		sched_notices_poll(s);
		sched_notices_release(s);
		sched_notices_flush(s);
		apply(s);
		if ((!s->lent && !s->notices && !bounce_inflight(s->bn)) ||
		    clock_mono_ns() - t0 >= (uint64_t)s->c.quiesce_ms * NS_PER_MS)
			break;
		nanosleep(&ms, NULL);
	}
	apply(s);
	if (s->lent)
		log_notice("sched: stopped with %u job(s) still out; their messages are due "
			   "again at the next start", s->lent);
	if (s->nwaiting)
		log_notice("sched: stopped with %u message part(s) waiting for their notice; "
			   "they are tried again at the next start", s->nwaiting);
}

unsigned sched_jobs_lent(const struct sched *s)
{
	return s->lent;
}

void sched_policy_reloaded(struct sched *s)
{
	char pname[DEST_NAME_MAX];
	unsigned n = 0;

	for (size_t i = 0; i <= s->dmask; i++)
		for (struct sdest *d = s->dtab[i]; d; d = d->hnext) {
			policy_name(d->d.name, pname, sizeof(pname));
			dest_reconf(&d->d, dest_conf_for(s->e.dest, pname));
			n++;
		}
	log_info("delivery: new retry and destination policies; %u destination(s) updated", n);
}

/* ---- stats, create, destroy ---------------------------------------------------------------------------------- */

void sched_stats_get(const struct sched *s, struct sched_stats *out)
{
	*out = s->st;
	out->active = s->nactive;
	out->queued = s->queued;
	out->lookups = s->nlookups;
	out->jobs_lent = s->lent;
	out->body_arena_bytes = (s->nchunks - s->ncfree) * (uint64_t)SCHED_CHUNK;
	out->idle_conns = s->nidle;
	out->dests = s->ndests;
	out->notices_waiting = s->nwaiting;
	out->xfer_active = s->xfer.on;
	if (s->bn) {
		struct bounce_stats b;
		bounce_stats_get(s->bn, &b);
		out->dsn_reports = b.reports;
		out->dsn_delay_warnings = b.delay_warnings;
		out->dsn_success_notices = b.success_notices;
		out->dsn_double_bounces = b.double_bounces;
		out->dsn_dropped = b.dropped;
		out->dsn_failed = b.failed;
		out->dsn_busy = b.busy;
		out->dsn_inflight = b.inflight;
	}
}

void sched_conf_default(struct sched_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->active_limit = 20000;
	c->scan_batch = 1000;
	c->scan_interval_ns = 50 * NS_PER_MS;
	c->lease_s = 3600;
	c->body_memory = 256u << 20;
	c->jobs_max = 1024;
	c->keep_idle_ms = 2000;
	c->local_retry_s = 10;
	c->tls_fallback_s = 3600;
	c->quiesce_ms = 2000;
	bounce_conf_default(&c->bounce);
}

int sched_conf_check(const struct sched_conf *c, const char **why)
{
	const char *w = NULL;

	if (c->active_limit == 0 || c->active_limit > 1000000)
		w = "sched: active_limit must be 1..1000000";
	else if (c->scan_batch == 0 || c->scan_batch > 100000)
		w = "sched: scan_batch must be 1..100000";
	else if (c->lease_s < 60)
		w = "sched: the claim lease must be at least 60 s";
	else if (c->body_memory < SCHED_CHUNK || c->body_memory / SCHED_CHUNK > UINT32_MAX)
		w = "sched: body_memory must be at least one chunk (64 KiB)";
	else if (c->jobs_max == 0 || c->jobs_max > (1u << 20))
		w = "sched: jobs_max must be 1..1048576";
	else if (c->bounce.max_inflight == 0 || c->bounce.max_inflight > 65536)
		w = "sched: notices in flight must be 1..65536";
	else if (!c->bounce.hostname[0])
		w = "sched: notices need our host name";
	if (why)
		*why = w;
	return w ? -1 : 0;
}

static size_t pow2_at_least(size_t n)
{
	size_t p = 64;

	while (p < n)
		p *= 2;
	return p;
}

struct sched *sched_create(const struct sched_conf *c, const struct sched_env *env,
			   char *err, size_t errlen)
{
	struct sched *s;
	const char *why;
	size_t ps;

	if (sched_conf_check(c, &why) < 0) {
		snprintf(err, errlen, "%s", why);
		return NULL;
	}
	if (!env->q || !env->rt || !env->retry || !env->dest || env->nports == 0 ||
	    env->nports > SCHED_PORTS_MAX) {
		snprintf(err, errlen, "sched: queue, router, policies and 1..%d ports needed",
			 SCHED_PORTS_MAX);
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "sched: out of memory");
		return NULL;
	}
	s->c = *c;
	s->e = *env;
	ps = pow2_at_least((size_t)c->active_limit * 2);
	s->ptab = calloc(ps, sizeof(*s->ptab));
	s->pmask = ps - 1;
	s->ltab = calloc(1024, sizeof(*s->ltab));
	s->lmask = 1023;
	s->dtab = calloc(1024, sizeof(*s->dtab));
	s->dmask = 1023;
	s->itab = calloc(1024, sizeof(*s->itab));
	s->imask = 1023;
	s->clcap = c->active_limit;
	s->cl = calloc(s->clcap, sizeof(*s->cl));
	s->due = calloc(c->scan_batch, sizeof(*s->due));
	/* slots and chunks as address space: resident only once used */
	s->jobs_len = (((size_t)c->jobs_max * sizeof(struct sjob)) + 4095) & ~(size_t)4095;
	s->jobs = mmap(NULL, s->jobs_len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	s->nchunks = c->body_memory / SCHED_CHUNK;
	s->arena_len = s->nchunks * SCHED_CHUNK;
	s->arena = mmap(NULL, s->arena_len, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	s->cfree = malloc(s->nchunks * sizeof(*s->cfree));
	if (s->jobs == MAP_FAILED)
		s->jobs = NULL;
	if (s->arena == MAP_FAILED)
		s->arena = NULL;
	{
		struct bounce_conf bc = c->bounce;
		bc.lifetime_s = env->retry->bounce_lifetime_s ? env->retry->bounce_lifetime_s
							      : 86400;
		s->bn = bounce_create(&bc, env->q, err, errlen);
		if (!s->bn) {
			sched_destroy(s);
			return NULL;
		}
	}
	if (!s->ptab || !s->ltab || !s->dtab || !s->itab || !s->cl || !s->due || !s->jobs ||
	    !s->arena || !s->cfree) {
		snprintf(err, errlen, "sched: out of memory (%u parts, %u jobs, %zu body bytes)",
			 c->active_limit, c->jobs_max, c->body_memory);
		sched_destroy(s);
		return NULL;
	}
	for (size_t i = 0; i < s->nchunks; i++)
		s->cfree[i] = (uint32_t)(s->nchunks - 1 - i);
	s->ncfree = s->nchunks;
	for (unsigned i = c->jobs_max; i-- > 0;) {
		s->jobs[i].s = s;
		s->jobs[i].next_free = s->jfree;
		s->jfree = &s->jobs[i];
	}
	sched_tick(s);
	return s;
}

void sched_destroy(struct sched *s)
{
	if (!s)
		return;
	if (s->bn) {	/* notices with the queue: their groups come back to be freed */
		struct timespec ms = { 0, 1000000 };
		struct bounce_done d[64];
		for (unsigned waited = 0; bounce_inflight(s->bn) && waited < 10000;) {
			unsigned n = bounce_poll(s->bn, d, 64);
			for (unsigned i = 0; i < n; i++)
				free(d[i].user);
			if (n == 0) {
				nanosleep(&ms, NULL);
				waited++;
			}
		}
		bounce_destroy(s->bn);
	}
	if (s->dtab)
		for (size_t i = 0; i <= s->dmask; i++)
			while (s->dtab[i]) {
				struct sdest *d = s->dtab[i];
				struct sitem *it;
				while (d->idle)
					idle_unlink(s, d->idle);
				for (int c = 0; c < DEST_CLASSES; c++)
					while ((it = lane_pop(s, &d->lane[c])))
						free(it);
				dest_free(s, &s->dtab[i]);
			}
	if (s->ltab)
		for (size_t i = 0; i <= s->lmask; i++)
			while (s->ltab[i]) {
				struct slookup *l = s->ltab[i];
				struct sitem *it = l->head;
				s->ltab[i] = l->hnext;
				while (it) {
					struct sitem *next = it->next;
					free(it);
					it = next;
				}
				free(l);
			}
	if (s->jobs && s->lent)	/* items of jobs never returned */
		for (unsigned i = 0; i < s->c.jobs_max; i++)
			if (s->jobs[i].it) {
				free(s->jobs[i].it);
				s->jobs[i].it = NULL;
			}
	if (s->ptab)
		for (size_t i = 0; i <= s->pmask; i++)
			while (s->ptab[i]) {
				struct spart *p = s->ptab[i];
				s->ptab[i] = p->hnext;
				free(p->body);
				rcpt_texts_free(p);
				free(p->giveup);
				free(p->r);
				free(p->m);
				free(p);
			}
	free(s->ob.op);
	free(s->ob.part);
	free(s->ob.text);
	free(s->ob.txt);
	free(s->cl);
	free(s->due);
	free(s->ptab);
	free(s->ltab);
	free(s->dtab);
	free(s->itab);
	free(s->cfree);
	if (s->jobs)
		munmap(s->jobs, s->jobs_len);
	if (s->arena)
		munmap(s->arena, s->arena_len);
	free(s);
}
