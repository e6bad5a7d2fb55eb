/*
 * queue_cmd.c - the operator's queue commands (list, summary, stat, show,
 * hold, release, delete) on the "sluice-queue" thread. See queue_cmd.h.
 *
 * A request is parsed on the submitting thread into a struct qreq (its
 * words copied), waits in a FIFO (at most QCMD_WAIT_MAX) under `mu`, and
 * is run by the thread, which owns it from then on.
 */
#include "control/queue_cmd.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/log.h"
#include "control/ctl_proto.h"
#include "control/maillog.h"
#include "queue/queue.h"

#define LIST_LIMIT 100		/* messages in a page by default */
#define LIST_LIMIT_MAX 1000
#define SCAN_CHUNK 512		/* records per read transaction while listing */
#define OPS_BATCH 512		/* queue ops per queue_apply */
#define IDS_MAX 256		/* IDs named in one hold/release/delete/show */
#define HIST_MAX 2000		/* attempts shown per part */
#define HEADERS_MAX (64u << 10)	/* header bytes shown */
#define BODY_MAX (16u << 20)	/* body bytes shown (--body) */
#define EXACT_OLDEST_MAX 200	/* summary rows with an exact oldest arrival */
#define SENDER_DOMAINS_MAX 100000	/* rows of a summary by sender domain */
#define TEXT_ARG_MAX 256

enum qkind { Q_LIST, Q_SUMMARY, Q_STAT, Q_SHOW, Q_HOLD, Q_RELEASE, Q_DELETE };

struct qreq {
	enum qkind kind;
	qcmd_done_fn done;
	void *user;
	struct qreq *next;
	/* list */
	char domain[TEXT_ARG_MAX], sender[TEXT_ARG_MAX], rcpt[TEXT_ARG_MAX];
	bool held, deferred, all, body, by_sender;
	unsigned long long older_s;
	unsigned limit;
	unsigned after_shard;	/* list cursor: shard and ID (no --domain) */
	uint64_t after_id;
	/* summary */
	unsigned top;
	/* list, hold, release, delete: --user (the AUTH identity, exact) and,
	 * not for list, --held-for (a part of the hold reason) */
	char auth_user[TEXT_ARG_MAX], held_for[TEXT_ARG_MAX];
	char reason[TEXT_ARG_MAX];	/* hold --user: the hold reason to give */
	/* show, hold, release, delete */
	unsigned nids;
	uint64_t ids[IDS_MAX];
};

struct qcmd {
	struct queue *q;
	pthread_t thread;
	bool started, stop;
	atomic_bool quit;	/* stopping: long walks end early (qcmd_stop) */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct qreq *head, **tail;
	unsigned waiting;
};

static const char *const state_name[] = { "pending", "deferred", "sent", "bounced" };

static const char *rstate(unsigned s)
{
	return s < 4 ? state_name[s] : "?";
}

static json_int_t ji(uint64_t v)
{
	return v > INT64_MAX ? INT64_MAX : (json_int_t)v;
}

static void id_str(uint64_t id, char out[QUEUE_ID_STR])
{
	queue_id_format(id, out);
}

/* ---- parsing (the submitting thread) ------------------------------------------------------- */

int qcmd_duration(const char *s, unsigned long long *secs)
{
	char *end;
	unsigned long long v, mul = 1;

	if (!s || !isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	if (*end) {
		switch (*end) {
		case 's': mul = 1; break;
		case 'm': mul = 60; break;
		case 'h': mul = 3600; break;
		case 'd': mul = 86400; break;
		case 'w': mul = 7 * 86400; break;
		default: return -1;
		}
		if (end[1])
			return -1;
	}
	if (v > UINT64_MAX / mul / 2)
		return -1;
	*secs = v * mul;
	return 0;
}

static bool copy_arg(char *dst, const char *s)
{
	size_t n = strlen(s);

	if (n >= TEXT_ARG_MAX)
		return false;
	memcpy(dst, s, n + 1);
	return true;
}

/* "SHARD:ID" (the list cursor, ID as printed) or a plain ID (--domain). */
static int parse_cursor(struct qreq *r, const char *s)
{
	const char *colon = strchr(s, ':');
	char *end;
	unsigned long sh = 0;

	if (colon) {
		sh = strtoul(s, &end, 10);
		if (end != colon || sh >= QUEUE_SHARDS_MAX)
			return -1;
		s = colon + 1;
	}
	r->after_shard = (unsigned)sh;
	r->after_id = 0;
	return colon && !*s ? 0 : queue_id_parse(s, &r->after_id);
}

static int parse_list(struct qreq *r, int argc, char **argv, char *err, size_t errlen)
{
	r->limit = LIST_LIMIT;
	for (int i = 0; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(o, "--held") == 0) {
			r->held = true;
		} else if (strcmp(o, "--deferred") == 0) {
			r->deferred = true;
		} else if (!v) {
			return QCMD_USAGE;
		} else if (strcmp(o, "--domain") == 0) {
			if (!copy_arg(r->domain, v))
				return QCMD_USAGE;
			i++;
		} else if (strcmp(o, "--sender") == 0) {
			if (!copy_arg(r->sender, v))
				return QCMD_USAGE;
			i++;
		} else if (strcmp(o, "--rcpt") == 0) {
			if (!copy_arg(r->rcpt, v))
				return QCMD_USAGE;
			i++;
		} else if (strcmp(o, "--user") == 0) {
			if (!copy_arg(r->auth_user, v) || !v[0])
				return QCMD_USAGE;
			i++;
		} else if (strcmp(o, "--older-than") == 0) {
			if (qcmd_duration(v, &r->older_s) < 0) {
				snprintf(err, errlen, "queue list --older-than: '%s' is not a duration "
					 "(30s, 5m, 2h, 1d)", v);
				return -1;
			}
			i++;
		} else if (strcmp(o, "--limit") == 0) {
			char *end;
			unsigned long n = strtoul(v, &end, 10);
			if (*end || n == 0 || n > LIST_LIMIT_MAX || v[0] == '-') {
				snprintf(err, errlen, "queue list --limit: 1 to %d", LIST_LIMIT_MAX);
				return -1;
			}
			r->limit = (unsigned)n;
			i++;
		} else if (strcmp(o, "--after") == 0) {
			if (parse_cursor(r, v) < 0) {
				snprintf(err, errlen, "queue list --after: '%s' is not a cursor", v);
				return -1;
			}
			i++;
		} else {
			return QCMD_USAGE;
		}
	}
	return 0;
}

/* ID... | --domain D | --all (show: one ID [--body]). */
static int parse_targets(struct qreq *r, const char *what, int argc, char **argv, char *err,
			 size_t errlen)
{
	if (argc == 1 && strcmp(argv[0], "--all") == 0) {
		r->all = true;
		return 0;
	}
	if (argc == 2 && strcmp(argv[0], "--domain") == 0) {
		if (!copy_arg(r->domain, argv[1]) || !argv[1][0])
			return QCMD_USAGE;
		return 0;
	}
	if ((argc == 2 || argc == 4) && strcmp(argv[0], "--user") == 0) {
		if (!copy_arg(r->auth_user, argv[1]) || !argv[1][0])
			return QCMD_USAGE;
		if (argc == 4 && r->kind == Q_HOLD) {
			if (strcmp(argv[2], "--reason") != 0 || !copy_arg(r->reason, argv[3]))
				return QCMD_USAGE;
		} else if (argc == 4 && (strcmp(argv[2], "--held-for") != 0 ||
					 !copy_arg(r->held_for, argv[3]))) {
			return QCMD_USAGE;
		}
		return 0;
	}
	if (argc == 0)
		return QCMD_USAGE;
	if (argc > IDS_MAX) {
		snprintf(err, errlen, "%s: at most %d IDs at once", what, IDS_MAX);
		return -1;
	}
	for (int i = 0; i < argc; i++) {
		if (argv[i][0] == '-')
			return QCMD_USAGE;
		if (queue_id_parse(argv[i], &r->ids[r->nids]) < 0) {
			snprintf(err, errlen, "%s: '%.40s' is not a queue ID", what, argv[i]);
			return -1;
		}
		r->nids++;
	}
	return 0;
}

static int parse(struct qreq *r, const char *cmd, const char *sub, int argc, char **argv,
		 char *err, size_t errlen)
{
	if (strcmp(cmd, "queue") == 0 && sub) {
		if (strcmp(sub, "list") == 0) {
			r->kind = Q_LIST;
			return parse_list(r, argc, argv, err, errlen);
		}
		if (strcmp(sub, "stat") == 0) {
			r->kind = Q_STAT;
			return argc ? QCMD_USAGE : 0;
		}
		if (strcmp(sub, "summary") == 0) {
			r->kind = Q_SUMMARY;
			for (int i = 0; i < argc; i += 2) {	/* OPTION VALUE pairs */
				if (i + 1 >= argc)
					return QCMD_USAGE;
				if (strcmp(argv[i], "--top") == 0) {
					char *end;
					unsigned long n = strtoul(argv[i + 1], &end, 10);
					if (*end || argv[i + 1][0] == '-' || n > 1000000)
						return QCMD_USAGE;
					r->top = (unsigned)n;
				} else if (strcmp(argv[i], "--by") == 0) {
					if (strcmp(argv[i + 1], "sender-domain") == 0)
						r->by_sender = true;
					else if (strcmp(argv[i + 1], "domain") != 0)
						return QCMD_USAGE;
				} else {
					return QCMD_USAGE;
				}
			}
			return 0;
		}
		if (strcmp(sub, "show") == 0) {
			r->kind = Q_SHOW;
			if (argc == 2 && strcmp(argv[1], "--body") == 0)
				r->body = true;
			else if (argc != 1)
				return QCMD_USAGE;
			if (queue_id_parse(argv[0], &r->ids[0]) < 0) {
				snprintf(err, errlen, "queue show: '%.40s' is not a queue ID", argv[0]);
				return -1;
			}
			r->nids = 1;
			return 0;
		}
		return QCMD_USAGE;
	}
	if (strcmp(cmd, "hold") == 0)
		r->kind = Q_HOLD;
	else if (strcmp(cmd, "release") == 0)
		r->kind = Q_RELEASE;
	else if (strcmp(cmd, "delete") == 0)
		r->kind = Q_DELETE;
	else
		return QCMD_USAGE;
	return parse_targets(r, cmd, argc, argv, err, errlen);
}

bool qcmd_handles(const char *cmd, const char *sub)
{
	if (strcmp(cmd, "queue") == 0)
		return sub && (strcmp(sub, "list") == 0 || strcmp(sub, "summary") == 0 ||
			       strcmp(sub, "stat") == 0 || strcmp(sub, "show") == 0);
	return strcmp(cmd, "hold") == 0 || strcmp(cmd, "release") == 0 ||
	       strcmp(cmd, "delete") == 0;
}

int qcmd_submit(struct qcmd *w, const char *cmd, const char *sub, int argc, char **argv,
		qcmd_done_fn done, void *user, char *err, size_t errlen)
{
	struct qreq *r = calloc(1, sizeof(*r));
	int rc;

	if (!r) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	rc = parse(r, cmd, sub, argc, argv, err, errlen);
	if (rc != 0) {
		free(r);
		return rc;
	}
	r->done = done;
	r->user = user;
	pthread_mutex_lock(&w->mu);
	if (w->waiting >= QCMD_WAIT_MAX || w->stop) {
		pthread_mutex_unlock(&w->mu);
		free(r);
		snprintf(err, errlen, "%d queue requests already waiting; try again",
			 QCMD_WAIT_MAX);
		return -1;
	}
	*w->tail = r;
	w->tail = &r->next;
	w->waiting++;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	return 0;
}

/* ---- queue list ------------------------------------------------------------------------------ */

static bool contains_ci(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	if (!n)
		return true;
	for (; hay && *hay; hay++)
		if (strncasecmp(hay, needle, n) == 0)
			return true;
	return false;
}

/* Does message part m pass the list's filters? */
static bool list_match(const struct qreq *r, const struct queue_msg *m, uint64_t now)
{
	bool deferred = false, rcpt = !r->rcpt[0], undone = false;

	if (r->held && !m->held)
		return false;
	if (r->auth_user[0] && (!m->auth_user || strcmp(m->auth_user, r->auth_user) != 0))
		return false;
	if (r->older_s && (m->arrival > now || now - m->arrival < r->older_s))
		return false;
	if (r->sender[0] && !contains_ci(m->sender, r->sender))
		return false;
	for (unsigned i = 0; i < m->nrcpt; i++) {
		const struct queue_msg_rcpt *x = &m->rcpt[i];
		if (x->state > QUEUE_RCPT_DEFERRED)
			continue;
		undone = true;
		deferred |= x->state == QUEUE_RCPT_DEFERRED;
		if (!rcpt && contains_ci(x->addr, r->rcpt))
			rcpt = true;
	}
	return undone && rcpt && (!r->deferred || deferred);
}

static json_t *rcpts_json(json_t *arr, const struct queue_msg *m, bool all)
{
	for (unsigned i = 0; arr && i < m->nrcpt; i++) {
		const struct queue_msg_rcpt *x = &m->rcpt[i];
		if (!all && x->state > QUEUE_RCPT_DEFERRED)
			continue;
		if (json_array_append_new(arr, json_pack("{s:o,s:s,s:I,s:o}", "addr",
							 ctl_json_text(x->addr), "state",
							 rstate(x->state), "attempts",
							 (json_int_t)x->attempts, "reply",
							 ctl_json_text(x->reply ? x->reply : ""))) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

static json_t *list_row(const struct queue_msg *m)
{
	char ids[QUEUE_ID_STR];

	id_str(m->id, ids);
	return json_pack("{s:s,s:I,s:I,s:o,s:s,s:b,s:b,s:o,s:o,s:o,s:I,s:o}", "id", ids, "arrival",
			 ji(m->arrival), "size", ji(m->size), "sender",
			 ctl_json_text(m->sender ? m->sender : ""), "status",
			 m->held ? "!" : m->claimed ? "*" : " ", "held", m->held, "active",
			 m->claimed, "sasl_username",
			 ctl_json_text(m->auth_user ? m->auth_user : ""), "hold_reason",
			 ctl_json_text(m->held && m->hold_reason ? m->hold_reason : ""),
			 "recipients", rcpts_json(json_array(), m, false),
			 "attempts", ji(queue_msg_attempts(m)), "last_error",
			 ctl_json_text(queue_msg_last_error(m)));
}

/* The other parts of a message spanning shards: their undone recipients
 * added to the row (the part in the lowest shard made it). */
static void list_more_parts(struct queue *q, const struct queue_msg *m, json_t *row)
{
	json_t *rc = json_object_get(row, "recipients");

	for (unsigned sh = 0; sh < QUEUE_SHARDS_MAX; sh++) {
		struct queue_msg *o;
		if (!(m->shards & (1ull << sh)) || sh == m->shard)
			continue;
		json_t *more;
		if (queue_lookup(q, sh, m->id, &o) != QUEUE_OK)
			continue;
		more = rcpts_json(json_array(), o, false);	/* NULL: out of memory */
		if (more)
			json_array_extend(rc, more);
		json_decref(more);
		if (o->claimed && !m->held)
			json_object_set_new(row, "status", json_string("*"));
		free(o);
	}
}

struct list_walk {
	struct qcmd *w;
	const struct qreq *r;
	json_t *rows;
	uint64_t now;
	size_t scanned;
	bool full;
};

static int list_visit(void *user, const struct queue_msg *m)
{
	struct list_walk *lw = user;
	json_t *row;

	lw->scanned++;
	/* a message spanning shards: shown at its lowest shard only */
	if (m->shards & ((1ull << m->shard) - 1))
		return 0;
	/* a message spanning shards is judged by that part (queue_cmd.h) */
	if (!list_match(lw->r, m, lw->now))
		return 0;
	row = list_row(m);
	if (!row)
		return 1;
	if (m->shards != (1ull << m->shard))
		list_more_parts(lw->w->q, m, row);
	json_array_append_new(lw->rows, row);
	if (json_array_size(lw->rows) >= lw->r->limit) {
		lw->full = true;
		return 1;
	}
	return 0;
}

/* Without --domain: shard after shard, in ID order, LIST_SCAN_BUDGET records. */
static json_t *list_all(struct qcmd *w, const struct qreq *r, char *err, size_t errlen)
{
	struct list_walk lw = { w, r, json_array(), (uint64_t)time(NULL), 0, false };
	unsigned shard = r->after_shard, n = queue_nshards(w->q);
	uint64_t after = r->after_id, last;
	char cursor[64] = "";
	int end = 1;

	if (!lw.rows)
		return NULL;
	while (shard < n) {
		size_t budget = LIST_SCAN_BUDGET - lw.scanned;
		int st;
		if (budget > SCAN_CHUNK)
			budget = SCAN_CHUNK;
		st = queue_scan_msgs(w->q, shard, after, budget, list_visit, &lw, &last, &end);
		if (st != QUEUE_OK) {
			snprintf(err, errlen, "queue list: shard %u: %s", shard, queue_status_str(st));
			json_decref(lw.rows);
			return NULL;
		}
		after = last;
		if (end) {
			shard++;
			after = 0;
			if (lw.full)
				break;
		}
		if (lw.full || lw.scanned >= LIST_SCAN_BUDGET)
			break;
	}
	if (shard < n) {
		char ids[QUEUE_ID_STR] = "";
		if (after)
			id_str(after, ids);
		snprintf(cursor, sizeof(cursor), "%u:%s", shard, ids);
	}
	return json_pack("{s:o,s:I,s:o}", "messages", lw.rows, "scanned", (json_int_t)lw.scanned,
			 "next", cursor[0] ? json_string(cursor) : json_null());
}

/* With --domain: that domain's messages (one shard), in arrival order. */
static json_t *list_domain(struct qcmd *w, const struct qreq *r, char *err, size_t errlen)
{
	struct queue_ref refs[SCAN_CHUNK];
	struct list_walk lw = { w, r, json_array(), (uint64_t)time(NULL), 0, false };
	uint64_t after = r->after_id;
	size_t n;
	bool more = true;

	if (!lw.rows)
		return NULL;
	while (!lw.full && lw.scanned < LIST_SCAN_BUDGET) {
		int st = queue_refs_domain(w->q, r->domain, after, refs, SCAN_CHUNK, &n);
		if (st != QUEUE_OK) {
			snprintf(err, errlen, "queue list --domain %s: %s", r->domain,
				 st == QUEUE_INVALID ? "not a domain" : queue_status_str(st));
			json_decref(lw.rows);
			return NULL;
		}
		if (n < SCAN_CHUNK)
			more = false;
		for (size_t i = 0; i < n; i++) {
			struct queue_msg *m;
			unsigned sh = queue_shard_of(w->q, r->domain);
			after = refs[i].id;
			lw.scanned++;
			if (queue_lookup(w->q, sh, refs[i].id, &m) != QUEUE_OK)
				continue;	/* gone meanwhile */
			if (list_match(r, m, lw.now)) {
				json_t *row = list_row(m);
				if (row)
					json_array_append_new(lw.rows, row);
			}
			free(m);
			if (json_array_size(lw.rows) >= r->limit) {
				lw.full = true;
				more = more || i + 1 < n;
				break;
			}
			if (lw.scanned >= LIST_SCAN_BUDGET) {
				more = more || i + 1 < n;
				break;
			}
		}
		if (!more)
			break;
	}
	if (more) {
		char ids[QUEUE_ID_STR];
		id_str(after, ids);
		return json_pack("{s:o,s:I,s:s}", "messages", lw.rows, "scanned",
				 (json_int_t)lw.scanned, "next", ids);
	}
	return json_pack("{s:o,s:I,s:n}", "messages", lw.rows, "scanned", (json_int_t)lw.scanned,
			 "next");
}

/* ---- queue summary, queue stat ------------------------------------------------------------------- */

static uint64_t row_total(const struct queue_domain_sum *d)
{
	return (uint64_t)d->incoming + d->active + d->deferred + d->held;
}

static int sum_cmp(const void *a, const void *b)
{
	const struct queue_domain_sum *x = a, *y = b;
	uint64_t tx = row_total(x), ty = row_total(y);

	if (tx != ty)
		return tx > ty ? -1 : 1;
	return strcmp(x->domain, y->domain);
}

static json_t *sum_row(const char *key, const char *name, const struct queue_domain_sum *d)
{
	json_t *age = json_array();

	for (unsigned b = 0; age && b < QUEUE_AGE_BUCKETS; b++)
		json_array_append_new(age, json_integer(d->age[b]));
	return json_pack("{s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o}", key, ctl_json_text(name),
			 "total", ji(row_total(d)), "incoming", (json_int_t)d->incoming, "active",
			 (json_int_t)d->active, "deferred", (json_int_t)d->deferred, "held",
			 (json_int_t)d->held, "bytes", ji(d->bytes), "oldest", ji(d->oldest),
			 "age", age);
}

static void sum_add(struct queue_domain_sum *t, const struct queue_domain_sum *d)
{
	t->incoming += d->incoming;
	t->active += d->active;
	t->deferred += d->deferred;
	t->held += d->held;
	t->bytes += d->bytes;
	if (d->oldest && (!t->oldest || d->oldest < t->oldest))
		t->oldest = d->oldest;
	for (unsigned b = 0; b < QUEUE_AGE_BUCKETS; b++)
		t->age[b] += d->age[b];
}

static json_t *summary_json(const char *by, const char *key, struct queue_domain_sum *s, size_t n,
			    unsigned top, uint64_t now)
{
	struct queue_domain_sum total;
	json_t *rows = json_array(), *buckets = json_array();
	size_t shown = top && top < n ? top : n;

	memset(&total, 0, sizeof(total));
	for (size_t i = 0; i < n; i++)
		sum_add(&total, &s[i]);
	for (unsigned b = 0, m = 5; buckets && b + 1 < QUEUE_AGE_BUCKETS; b++, m *= 2)
		json_array_append_new(buckets, json_integer(m));
	for (size_t i = 0; rows && i < shown; i++)
		if (json_array_append_new(rows, sum_row(key, s[i].domain, &s[i])) < 0) {
			json_decref(rows);
			rows = NULL;
		}
	return json_pack("{s:s,s:I,s:o,s:o,s:I,s:o}", "by", by, "now", ji(now), "buckets", buckets,
			 "total", sum_row(key, "TOTAL", &total), "rows", (json_int_t)n, "domains",
			 rows);
}

/* By sender domain: a read of every message part (lowest shard only). */
struct by_sender {
	struct queue_domain_sum *rows;
	size_t n, cap;
	json_t *index;		/* domain -> row number */
	uint64_t now;
	bool full;
};

static int sender_visit(void *user, const struct queue_msg *m)
{
	struct by_sender *b = user;
	const char *at, *dom;
	char key[QUEUE_DOMAIN_MAX + 1];
	struct queue_domain_sum *d;
	json_t *ix;
	size_t i;
	bool deferred = false;

	if (m->shards & ((1ull << m->shard) - 1))
		return 0;	/* counted at its lowest shard */
	at = m->sender ? strrchr(m->sender, '@') : NULL;
	dom = !m->sender || !m->sender[0] ? "<>" : at ? at + 1 : m->sender;
	snprintf(key, sizeof(key), "%s", dom);
	for (char *c = key; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	ix = json_object_get(b->index, key);
	if (ix) {
		i = (size_t)json_integer_value(ix);
	} else {
		if (b->n >= SENDER_DOMAINS_MAX) {
			b->full = true;
			return 0;
		}
		if (b->n == b->cap) {
			size_t cap = b->cap ? b->cap * 2 : 256;
			void *p = realloc(b->rows, cap * sizeof(*b->rows));
			if (!p)
				return 1;
			b->rows = p;
			b->cap = cap;
		}
		i = b->n++;
		memset(&b->rows[i], 0, sizeof(b->rows[i]));
		snprintf(b->rows[i].domain, sizeof(b->rows[i].domain), "%s", key);
		json_object_set_new(b->index, key, json_integer((json_int_t)i));
	}
	d = &b->rows[i];
	for (unsigned k = 0; k < m->nrcpt; k++)
		deferred |= m->rcpt[k].state == QUEUE_RCPT_DEFERRED;
	if (m->held)
		d->held++;
	else if (m->claimed)
		d->active++;
	else if (deferred)
		d->deferred++;
	else
		d->incoming++;
	d->bytes += m->size;
	if (!d->oldest || m->arrival < d->oldest)
		d->oldest = m->arrival;
	d->age[queue_age_bucket(b->now > m->arrival ? b->now - m->arrival : 0)]++;
	return 0;
}

static json_t *summary(struct qcmd *w, const struct qreq *r, char *err, size_t errlen)
{
	uint64_t now = (uint64_t)time(NULL);
	struct queue_domain_sum *s = NULL;
	size_t n = 0;
	json_t *res;

	if (r->by_sender) {
		struct by_sender b = { NULL, 0, 0, json_object(), now, false };
		for (unsigned sh = 0; b.index && sh < queue_nshards(w->q); sh++) {
			uint64_t after = 0, last;
			int end = 0;
			while (!end) {
				int st = atomic_load(&w->quit) ? QUEUE_IO :
					 queue_scan_msgs(w->q, sh, after, SCAN_CHUNK, sender_visit,
							 &b, &last, &end);
				if (st != QUEUE_OK) {
					snprintf(err, errlen, "queue summary: shard %u: %s", sh,
						 atomic_load(&w->quit) ? "sluiced is stopping" :
						 queue_status_str(st));
					free(b.rows);
					json_decref(b.index);
					return NULL;
				}
				after = last;
			}
		}
		json_decref(b.index);
		qsort(b.rows, b.n, sizeof(*b.rows), sum_cmp);
		res = summary_json("sender-domain", "sender_domain", b.rows, b.n, r->top, now);
		if (res && b.full)
			json_object_set_new(res, "truncated", json_true());
		free(b.rows);
		return res;
	}
	int st = queue_summary_ex(w->q, now, 0, &s, &n);
	if (st != QUEUE_OK) {
		snprintf(err, errlen, "queue summary: %s", queue_status_str(st));
		return NULL;
	}
	qsort(s, n, sizeof(*s), sum_cmp);
	{
		size_t shown = r->top && r->top < n ? r->top : n;
		if (shown <= EXACT_OLDEST_MAX)
			for (size_t i = 0; i < shown; i++) {
				uint64_t a;
				if (queue_domain_oldest(w->q, s[i].domain, &a) == QUEUE_OK && a)
					s[i].oldest = a;
			}
	}
	res = summary_json("domain", "domain", s, n, r->top, now);
	free(s);
	return res;
}

static json_t *stat_json(struct qcmd *w)
{
	struct queue_totals t;

	queue_totals_get(w->q, &t);
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "messages", ji(t.messages), "untried",
			 ji(t.untried), "held", ji(t.held), "parts", ji(t.parts), "bytes",
			 ji(t.bytes), "domains", ji(t.domains));
}

/* ---- queue show ---------------------------------------------------------------------------------- */

/* The shards holding message id (from any part: each records them all). */
static int find_parts(struct queue *q, uint64_t id, struct queue_msg **first)
{
	for (unsigned sh = 0; sh < queue_nshards(q); sh++)
		if (queue_lookup(q, sh, id, first) == QUEUE_OK)
			return 0;
	return -1;
}

/* The message's text: headers (up to the blank line), and the body. */
static void show_text(struct queue *q, const struct queue_msg *m, bool body, json_t *res)
{
	size_t cap = body ? BODY_MAX : HEADERS_MAX, len = 0;
	char *buf = malloc(cap);
	size_t hl;
	const char *sep;

	if (!buf || queue_read_body(q, m->shard, m->id, buf, cap, &len) != QUEUE_OK) {
		free(buf);
		json_object_set_new(res, "headers", json_null());
		return;
	}
	if (len > cap) {
		json_object_set_new(res, "truncated", json_true());
		len = cap;
	}
	sep = NULL;
	for (size_t i = 0; i + 1 < len; i++)
		if (buf[i] == '\n' && (buf[i + 1] == '\n' ||
				       (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n'))) {
			sep = buf + i + 1;
			break;
		}
	hl = sep ? (size_t)(sep - buf) : len;
	json_object_set_new(res, "headers", ctl_json_textn(buf, hl));
	if (body)
		json_object_set_new(res, "body", ctl_json_textn(buf, len));
	free(buf);
}

static json_t *show(struct qcmd *w, const struct qreq *r, char *err, size_t errlen)
{
	struct queue_attempt *h = malloc(HIST_MAX * sizeof(*h));
	struct queue_msg *m = NULL;
	json_t *res, *rc, *hist, *shards;
	char ids[QUEUE_ID_STR];
	bool active = false, held = false;
	unsigned base = 0;

	id_str(r->ids[0], ids);
	if (!h) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (find_parts(w->q, r->ids[0], &m) < 0) {
		snprintf(err, errlen, "queue show: no message %s in the queue", ids);
		free(h);
		return NULL;
	}
	res = json_pack("{s:s,s:I,s:I,s:I,s:o,s:o,s:o,s:o,s:o,s:b}", "id", ids, "arrival",
			ji(m->arrival), "expiry", ji(m->expiry), "size", ji(m->size), "sender",
			ctl_json_text(m->sender ? m->sender : ""), "envid",
			ctl_json_text(m->envid ? m->envid : ""), "client_name",
			ctl_json_text(m->client_name ? m->client_name : ""), "client_addr",
			ctl_json_text(m->client_addr ? m->client_addr : ""), "helo",
			ctl_json_text(m->helo ? m->helo : ""), "warned", m->warned);
	if (res)
		json_object_update_new(res, json_pack("{s:o,s:o,s:o}", "sasl_method",
			ctl_json_text(m->auth_method ? m->auth_method : ""), "sasl_username",
			ctl_json_text(m->auth_user ? m->auth_user : ""), "hold_reason",
			ctl_json_text(m->held && m->hold_reason ? m->hold_reason : "")));
	if (res)	/* the history it brought from another box counts too */
		json_object_update_new(res, json_pack("{s:I,s:o,s:I,s:o,s:I}", "attempts",
			ji(queue_msg_attempts(m)), "last_error",
			ctl_json_text(queue_msg_last_error(m)), "prior_attempts",
			ji(m->prior_attempts), "prior_error",
			ctl_json_text(m->prior_error ? m->prior_error : ""), "due", ji(m->due)));
	rc = json_array();
	hist = json_array();
	shards = json_array();
	if (!res || !rc || !hist || !shards) {
		json_decref(res);
		json_decref(rc);
		json_decref(hist);
		json_decref(shards);
		free(m);
		free(h);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	show_text(w->q, m, r->body, res);
	for (unsigned sh = 0; sh < QUEUE_SHARDS_MAX; sh++) {
		struct queue_msg *p = NULL;
		size_t nh = 0;
		if (!(m->shards & (1ull << sh)))
			continue;
		if (queue_lookup(w->q, sh, r->ids[0], &p) != QUEUE_OK)
			continue;
		json_array_append_new(shards, json_integer(sh));
		active |= p->claimed;
		held |= p->held;
		for (unsigned i = 0; i < p->nrcpt; i++) {
			const struct queue_msg_rcpt *x = &p->rcpt[i];
			json_array_append_new(rc, json_pack(
				"{s:o,s:o,s:s,s:I,s:I,s:o,s:o,s:I}", "addr", ctl_json_text(x->addr),
				"orcpt", ctl_json_text(x->orcpt ? x->orcpt : ""), "state",
				rstate(x->state), "attempts", (json_int_t)x->attempts,
				"last_attempt", ji(x->last_attempt), "dsn",
				ctl_json_text(x->dsn ? x->dsn : ""), "reply",
				ctl_json_text(x->reply ? x->reply : ""), "shard", (json_int_t)sh));
		}
		if (queue_history(w->q, sh, r->ids[0], h, HIST_MAX, &nh) == QUEUE_OK)
			for (size_t k = 0; k < nh; k++)
				json_array_append_new(hist, json_pack(
					"{s:I,s:o,s:s,s:o}", "time", ji(h[k].time), "rcpt",
					ctl_json_text(h[k].rcpt < p->nrcpt ? p->rcpt[h[k].rcpt].addr : "?"),
					"state", rstate(h[k].state), "reply", ctl_json_text(h[k].reply)));
		base += p->nrcpt;
		free(p);
	}
	(void)base;
	json_object_set_new(res, "held", json_boolean(held));
	json_object_set_new(res, "active", json_boolean(active));
	json_object_set_new(res, "shards", shards);
	json_object_set_new(res, "recipients", rc);
	json_object_set_new(res, "history", hist);
	free(m);
	free(h);
	return res;
}

/* ---- hold, release, delete ------------------------------------------------------------------------ */

struct change {
	struct qcmd *w;
	enum queue_op_kind op;
	struct queue_op ops[OPS_BATCH];
	uint64_t seen[OPS_BATCH];	/* messages behind the ops (for counting) */
	unsigned nops;
	uint64_t messages;		/* messages changed (any part) */
	uint64_t last_counted;
	int first_error;
	const char *reason;		/* hold: the reason given */
};

static void change_flush(struct change *c)
{
	uint64_t prev = 0;

	if (!c->nops)
		return;
	queue_apply(c->w->q, c->ops, c->nops);
	for (unsigned i = 0; i < c->nops; i++) {
		const struct queue_op *o = &c->ops[i];
		if (o->status == QUEUE_OK) {
			/* ops of one message are adjacent: count it once */
			if (o->id != prev && o->id != c->last_counted) {
				c->messages++;
				c->last_counted = o->id;
				if (c->op == QUEUE_OP_DELETE) {
					char ids[QUEUE_ID_STR];
					id_str(o->id, ids);
					maillog(ML_POSTSUPER, "%s: removed", ids);
				}
			}
			prev = o->id;
		} else if (o->status != QUEUE_NOTFOUND && o->status != QUEUE_STATE &&
			   c->first_error == QUEUE_OK) {
			c->first_error = o->status;
		}
	}
	c->nops = 0;
}

/* --user NAME [--held-for TEXT]: the messages of one AUTH identity (at
 * their lowest shard; held ones only for a release, and only those whose
 * hold reason has TEXT in it when given; for a hold, those not held yet). */
struct by_user {
	const struct qreq *r;
	struct queue_ref refs[SCAN_CHUNK];
	size_t n;
};

static int user_visit(void *user, const struct queue_msg *m)
{
	struct by_user *b = user;

	if (m->shards & ((1ull << m->shard) - 1))
		return 0;	/* found at its lowest shard */
	if (!m->auth_user || strcmp(m->auth_user, b->r->auth_user) != 0)
		return 0;
	if ((b->r->kind == Q_RELEASE && !m->held) || (b->r->kind == Q_HOLD && m->held))
		return 0;
	if (b->r->held_for[0] && (!m->held || !m->hold_reason ||
				  !strstr(m->hold_reason, b->r->held_for)))
		return 0;
	b->refs[b->n++] = (struct queue_ref){ m->id, m->shards };
	return b->n == SCAN_CHUNK;
}

/* One op per part of message id (shards: its parts, bit i = shard i). */
static void change_add(struct change *c, uint64_t id, uint64_t shards)
{
	uint64_t now = (uint64_t)time(NULL);

	if (c->nops + (unsigned)__builtin_popcountll(shards) > OPS_BATCH)
		change_flush(c);
	for (unsigned sh = 0; sh < QUEUE_SHARDS_MAX; sh++)
		if (shards & (1ull << sh))
			c->ops[c->nops++] = (struct queue_op){ .op = c->op, .shard = sh, .id = id,
							       .now = now,
							       .reply = c->op == QUEUE_OP_HOLD ?
							       c->reason : NULL };
}

static const char *change_name(enum qkind k)
{
	return k == Q_HOLD ? "hold" : k == Q_RELEASE ? "release" : "delete";
}

static json_t *change(struct qcmd *w, const struct qreq *r, char *err, size_t errlen)
{
	struct change *c = calloc(1, sizeof(*c));
	json_t *missing = json_array(), *res;
	const char *name = change_name(r->kind);

	if (!c || !missing) {
		free(c);
		json_decref(missing);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->w = w;
	c->reason = r->reason[0] ? r->reason : "held by the operator";
	c->op = r->kind == Q_HOLD ? QUEUE_OP_HOLD : r->kind == Q_RELEASE ? QUEUE_OP_RELEASE :
				    QUEUE_OP_DELETE;
	c->first_error = QUEUE_OK;
	if (r->nids) {
		for (unsigned i = 0; i < r->nids; i++) {
			struct queue_msg *m;
			if (find_parts(w->q, r->ids[i], &m) < 0) {
				char ids[QUEUE_ID_STR];
				id_str(r->ids[i], ids);
				json_array_append_new(missing, json_string(ids));
				continue;
			}
			change_add(c, r->ids[i], m->shards);
			free(m);
		}
	} else if (r->auth_user[0]) {
		struct by_user *b = malloc(sizeof(*b));
		for (unsigned sh = 0; b && sh < queue_nshards(w->q) && !atomic_load(&w->quit);
		     sh++) {
			uint64_t after = 0, last = 0;
			int end = 0, st;
			do {
				b->r = r;
				b->n = 0;
				st = queue_scan_msgs(w->q, sh, after, SCAN_CHUNK, user_visit, b,
						     &last, &end);
				if (st != QUEUE_OK) {
					if (c->first_error == QUEUE_OK)
						c->first_error = st;
					break;
				}
				for (size_t i = 0; i < b->n; i++)
					change_add(c, b->refs[i].id, b->refs[i].shards);
				change_flush(c);
				after = last;
			} while (!end && !atomic_load(&w->quit));
		}
		if (!b && c->first_error == QUEUE_OK)
			c->first_error = QUEUE_IO;
		free(b);
	} else if (r->domain[0]) {
		struct queue_ref refs[SCAN_CHUNK];
		uint64_t after = 0;
		size_t n;
		do {
			int st = queue_refs_domain(w->q, r->domain, after, refs, SCAN_CHUNK, &n);
			if (st != QUEUE_OK) {
				snprintf(err, errlen, "%s --domain %s: %s", name, r->domain,
					 st == QUEUE_INVALID ? "not a domain" : queue_status_str(st));
				free(c);
				json_decref(missing);
				return NULL;
			}
			for (size_t i = 0; i < n; i++)
				change_add(c, refs[i].id, refs[i].shards);
			if (n)
				after = refs[n - 1].id;
			change_flush(c);
		} while (n == SCAN_CHUNK && !atomic_load(&w->quit));
	} else {
		/* --all: each shard's parts, that shard's op only */
		struct queue_ref refs[SCAN_CHUNK];
		for (unsigned sh = 0; sh < queue_nshards(w->q); sh++) {
			uint64_t after = 0;
			size_t n;
			do {
				int st = queue_refs_shard(w->q, sh, after, refs, SCAN_CHUNK, &n);
				if (st != QUEUE_OK) {
					if (c->first_error == QUEUE_OK)
						c->first_error = st;
					break;
				}
				for (size_t i = 0; i < n; i++)
					change_add(c, refs[i].id, 1ull << sh);
				if (n)
					after = refs[n - 1].id;
				change_flush(c);
			} while (n == SCAN_CHUNK && !atomic_load(&w->quit));
		}
	}
	change_flush(c);
	if (c->first_error != QUEUE_OK) {
		snprintf(err, errlen, "%s: %s (%llu message(s) done)", name,
			 queue_status_str(c->first_error), (unsigned long long)c->messages);
		free(c);
		json_decref(missing);
		return NULL;
	}
	log_notice("queue: the operator's %s of %s: %llu message(s)", name,
		   r->nids ? "IDs" : r->domain[0] ? r->domain : r->auth_user[0] ? r->auth_user :
		   "everything",
		   (unsigned long long)c->messages);
	res = json_pack("{s:{s:I,s:o}}", name, "messages", ji(c->messages), "not_found", missing);
	free(c);
	return res;
}

/* ---- the thread ----------------------------------------------------------------------------------- */

static void run_one(struct qcmd *w, struct qreq *r)
{
	char err[512] = "";
	json_t *res = NULL;

	switch (r->kind) {
	case Q_LIST:
		res = r->domain[0] ? list_domain(w, r, err, sizeof(err)) :
				     list_all(w, r, err, sizeof(err));
		break;
	case Q_SUMMARY:
		res = summary(w, r, err, sizeof(err));
		break;
	case Q_STAT:
		res = stat_json(w);
		break;
	case Q_SHOW:
		res = show(w, r, err, sizeof(err));
		break;
	case Q_HOLD:
	case Q_RELEASE:
	case Q_DELETE:
		res = change(w, r, err, sizeof(err));
		break;
	}
	if (res)
		r->done(r->user, true, res);
	else
		r->done(r->user, false, ctl_json_text(err[0] ? err : "out of memory"));
}

static void *run(void *arg)
{
	struct qcmd *w = arg;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		struct qreq *r;
		while (!w->head && !w->stop)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->stop)
			break;
		r = w->head;
		w->head = r->next;
		if (!w->head)
			w->tail = &w->head;
		pthread_mutex_unlock(&w->mu);
		run_one(w, r);
		free(r);
		pthread_mutex_lock(&w->mu);
		w->waiting--;
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

struct qcmd *qcmd_start(struct queue *q, char *err, size_t errlen)
{
	struct qcmd *w = calloc(1, sizeof(*w));

	if (!w) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	w->q = q;
	w->tail = &w->head;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	if (pthread_create(&w->thread, NULL, run, w) != 0) {
		snprintf(err, errlen, "cannot start the queue command thread");
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->mu);
		free(w);
		return NULL;
	}
	w->started = true;
	pthread_setname_np(w->thread, "sluice-queue");
	return w;
}

void qcmd_stop(struct qcmd *w)
{
	struct qreq *r;

	if (!w)
		return;
	atomic_store(&w->quit, true);
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	if (w->started)
		pthread_join(w->thread, NULL);
	while ((r = w->head)) {
		w->head = r->next;
		r->done(r->user, false, json_string("sluiced is stopping"));
		free(r);
	}
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
}
