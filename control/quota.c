/*
 * quota.c - daily quotas and user suspensions, kept in an LMDB environment
 * of their own. See quota.h.
 */
#include "control/quota.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "dataplane/smtp/smtp_policy.h"
#include "queue/queue_schema.h"

const char *const quota_stat_names[] = { QUOTA_STATS(STATS_NAME) };
const unsigned quota_stat_count = sizeof(quota_stat_names) / sizeof(quota_stat_names[0]);

#define QUOTA_MAP_SIZE (256ull << 20)	/* sparse: pages are used as needed */
#define DAY_S 86400
#define MEMO_KEEP_DAYS 2
#define KEY_MAX (1 + QUOTA_NAME_MAX + 3)
#define COUNT_LEN 16

/* The limits in force: replaced whole, under mu. */
struct qpolicy {
	struct quota_limit user, client;
	struct smtp_policy nets;	/* only mynetworks is used */
	struct quota_map map;
};

struct quota {
	MDB_env *env;
	MDB_dbi db;
	MDB_txn *batch;		/* the scheduler's, between begin and commit */
	uint64_t memo_gc_day;	/* memos were dropped on this day (batch thread) */
	pthread_mutex_t mu;
	struct qpolicy *pol;	/* under mu */
	quota_elsewhere_fn elsewhere;	/* under mu: the cluster's counts */
	void *elsewhere_user;
	_Atomic uint64_t st[sizeof(struct quota_stats) / sizeof(uint64_t)];
};

enum { ST_COUNTED, ST_UNCOUNTED, ST_HELD_QUOTA, ST_HELD_SUSPENDED, ST_FOLLOWED, ST_ERRORS };

static void stat_inc(struct quota *q, unsigned i)
{
	atomic_fetch_add_explicit(&q->st[i], 1, memory_order_relaxed);
}

/* ---- the overrides map ---------------------------------------------------------- */

static int ov_cmp(const void *a, const void *b)
{
	return strcmp(((const struct quota_override *)a)->name,
		      ((const struct quota_override *)b)->name);
}

void quota_map_free(struct quota_map *m)
{
	if (!m)
		return;
	free(m->e);
	m->e = NULL;
	m->n = 0;
}

static int parse_u32(const char *s, uint32_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* A name as the map and the store take it: printable ASCII, no ':' or
 * space; "[a.b.c.d]" for a client. */
static bool name_ok(const char *s, size_t len)
{
	if (len == 0 || len > QUOTA_NAME_MAX + 2)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] <= ' ' || s[i] > '~' || s[i] == ':')
			return false;
	if (s[0] == '[') {
		char ip[20];
		uint32_t a;
		if (len < 9 || len > 17 || s[len - 1] != ']')
			return false;
		memcpy(ip, s + 1, len - 2);
		ip[len - 2] = '\0';
		return smtp_parse_ipv4(ip, &a) == 0;
	}
	return len <= QUOTA_NAME_MAX;
}

int quota_map_parse(struct quota_map *m, const char *text, const char *name, char *err,
		    size_t n)
{
	unsigned cap = 0, line = 0;
	const char *p = text;

	m->n = 0;
	m->e = NULL;
	while (p && *p) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		char buf[256], *w[4], *save = NULL;
		int nw = 0;

		line++;
		if (len >= sizeof(buf)) {
			snprintf(err, n, "%s:%u: line too long", name, line);
			goto fail;
		}
		memcpy(buf, p, len);
		buf[len] = '\0';
		p = eol ? eol + 1 : NULL;
		if (strchr(buf, '#'))
			*strchr(buf, '#') = '\0';
		for (char *t = strtok_r(buf, " \t\r", &save); t; t = strtok_r(NULL, " \t\r", &save)) {
			if (nw == 4)
				break;
			w[nw++] = t;
		}
		if (nw == 0)
			continue;
		if (nw != 3) {
			snprintf(err, n, "%s:%u: want NAME MESSAGES RECIPIENTS", name, line);
			goto fail;
		}
		if (!name_ok(w[0], strlen(w[0]))) {
			snprintf(err, n, "%s:%u: '%s' is not a user name nor [IPv4 address]", name,
				 line, w[0]);
			goto fail;
		}
		if (m->n == QUOTA_MAP_MAX) {
			snprintf(err, n, "%s:%u: more than %u entries", name, line, QUOTA_MAP_MAX);
			goto fail;
		}
		if (m->n == cap) {
			unsigned nc = cap ? cap * 2 : 64;
			struct quota_override *e = realloc(m->e, nc * sizeof(*e));
			if (!e) {
				snprintf(err, n, "%s: out of memory", name);
				goto fail;
			}
			m->e = e;
			cap = nc;
		}
		snprintf(m->e[m->n].name, sizeof(m->e[m->n].name), "%s", w[0]);
		if (parse_u32(w[1], &m->e[m->n].lim.messages) < 0 ||
		    parse_u32(w[2], &m->e[m->n].lim.recipients) < 0) {
			snprintf(err, n, "%s:%u: MESSAGES and RECIPIENTS are numbers (0: no limit)",
				 name, line);
			goto fail;
		}
		m->n++;
	}
	if (m->n)
		qsort(m->e, m->n, sizeof(m->e[0]), ov_cmp);
	for (unsigned i = 1; i < m->n; i++)
		if (strcmp(m->e[i - 1].name, m->e[i].name) == 0) {
			snprintf(err, n, "%s: '%s' is there twice", name, m->e[i].name);
			goto fail;
		}
	return 0;
fail:
	quota_map_free(m);
	return -1;
}

int quota_map_load(struct quota_map *m, const char *path, char *err, size_t n)
{
	FILE *f = fopen(path, "re");
	char *text;
	size_t len;
	int r;

	m->n = 0;
	m->e = NULL;
	if (!f) {
		snprintf(err, n, "%s: %s", path, strerror(errno));
		return -1;
	}
	text = malloc(QUOTA_MAP_FILE_MAX + 1);
	if (!text) {
		fclose(f);
		snprintf(err, n, "%s: out of memory", path);
		return -1;
	}
	len = fread(text, 1, QUOTA_MAP_FILE_MAX + 1, f);
	if (ferror(f) || len > QUOTA_MAP_FILE_MAX) {
		snprintf(err, n, "%s: %s", path, ferror(f) ? "read error" : "file too large");
		fclose(f);
		free(text);
		return -1;
	}
	fclose(f);
	text[len] = '\0';
	if (memchr(text, '\0', len)) {
		snprintf(err, n, "%s: a NUL byte in the file", path);
		free(text);
		return -1;
	}
	r = quota_map_parse(m, text, path, err, n);
	free(text);
	return r;
}

static const struct quota_limit *map_find(const struct quota_map *m, const char *name)
{
	struct quota_override key;
	const struct quota_override *e;

	if (!m->n || strlen(name) >= sizeof(key.name))
		return NULL;
	snprintf(key.name, sizeof(key.name), "%s", name);
	e = bsearch(&key, m->e, m->n, sizeof(m->e[0]), ov_cmp);
	return e ? &e->lim : NULL;
}

/* ---- the store -------------------------------------------------------------------- */

/* fsync a directory, so the entries made in it are durable. 0 or errno. */
static int dir_sync(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return errno;
	if (fsync(fd) != 0)
		rc = errno;
	close(fd);
	return rc;
}

struct quota *quota_open(const char *dir, char *err, size_t n)
{
	struct quota *q = calloc(1, sizeof(*q));
	MDB_txn *txn = NULL;
	int rc;

	if (!q) {
		snprintf(err, n, "quota: out of memory");
		return NULL;
	}
	pthread_mutex_init(&q->mu, NULL);
	q->pol = calloc(1, sizeof(*q->pol));
	if (!q->pol) {
		snprintf(err, n, "quota: out of memory");
		goto fail;
	}
	if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
		snprintf(err, n, "quota: %s: %s", dir, strerror(errno));
		goto fail;
	}
	if ((rc = mdb_env_create(&q->env)) != 0 ||
	    (rc = mdb_env_set_mapsize(q->env, QUOTA_MAP_SIZE)) != 0 ||
	    (rc = mdb_env_open(q->env, dir, MDB_NOTLS, 0640)) != 0 ||
	    (rc = mdb_txn_begin(q->env, NULL, 0, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, NULL, 0, &q->db)) != 0 || (rc = mdb_txn_commit(txn)) != 0) {
		if (txn && rc)
			mdb_txn_abort(txn);
		snprintf(err, n, "quota: %s: %s", dir, mdb_strerror(rc));
		goto fail;
	}
	{	/* the store's files, and the store in the spool, for good */
		char parent[4096];
		const char *slash = strrchr(dir, '/');
		snprintf(parent, sizeof(parent), "%.*s", slash && slash != dir ?
			 (int)(slash - dir) : 1, slash ? dir : ".");
		if ((rc = dir_sync(dir)) != 0 || (rc = dir_sync(parent)) != 0) {
			snprintf(err, n, "quota: fsync of %s or its parent: %s", dir, strerror(rc));
			goto fail;
		}
	}
	return q;
fail:
	quota_close(q);
	return NULL;
}

void quota_close(struct quota *q)
{
	if (!q)
		return;
	if (q->batch)
		mdb_txn_abort(q->batch);
	if (q->env)
		mdb_env_close(q->env);
	if (q->pol)
		quota_map_free(&q->pol->map);
	free(q->pol);
	pthread_mutex_destroy(&q->mu);
	free(q);
}

int quota_policy_set(struct quota *q, const struct quota_limit *user,
		     const struct quota_limit *client, const char *mynetworks,
		     struct quota_map *map, char *err, size_t n)
{
	struct qpolicy *np = calloc(1, sizeof(*np)), *old;

	if (!np) {
		snprintf(err, n, "quota: out of memory");
		quota_map_free(map);
		return -1;
	}
	if (smtp_policy_init(&np->nets, mynetworks, NULL) < 0) {
		snprintf(err, n, "quota: bad mynetworks '%s'", mynetworks ? mynetworks : "");
		free(np);
		quota_map_free(map);
		return -1;
	}
	np->user = *user;
	np->client = *client;
	if (map) {
		np->map = *map;
		map->e = NULL;
		map->n = 0;
	}
	pthread_mutex_lock(&q->mu);
	old = q->pol;
	q->pol = np;
	pthread_mutex_unlock(&q->mu);
	quota_map_free(&old->map);
	free(old);
	return 0;
}

static size_t key_make(uint8_t out[KEY_MAX], char kind, const char *name)
{
	size_t l = strlen(name);

	if (l > KEY_MAX - 1)
		l = KEY_MAX - 1;
	out[0] = (uint8_t)kind;
	memcpy(out + 1, name, l);
	return l + 1;
}

int quota_batch_begin(struct quota *q)
{
	int rc;

	if (q->batch)
		return 0;
	rc = mdb_txn_begin(q->env, NULL, 0, &q->batch);
	if (rc) {
		log_err("quota: cannot begin a write: %s", mdb_strerror(rc));
		q->batch = NULL;
		stat_inc(q, ST_ERRORS);
		return -1;
	}
	return 0;
}

int quota_batch_commit(struct quota *q)
{
	int rc;

	if (!q->batch)
		return 0;
	rc = mdb_txn_commit(q->batch);
	q->batch = NULL;
	if (rc) {
		log_err("quota: commit: %s (this pass's counts are lost)", mdb_strerror(rc));
		stat_inc(q, ST_ERRORS);
		return -1;
	}
	return 0;
}

/* Drop the decisions on messages older than MEMO_KEEP_DAYS (once a day). */
static void memo_gc(struct quota *q, uint64_t day)
{
	MDB_cursor *cur;
	MDB_val k = { 1, "m" }, v;
	int rc;

	if (q->memo_gc_day == day || mdb_cursor_open(q->batch, q->db, &cur) != 0)
		return;
	q->memo_gc_day = day;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size < 1 || ((const uint8_t *)k.mv_data)[0] != 'm')
			break;
		if (v.mv_size >= 8 && be64_get(v.mv_data) + MEMO_KEEP_DAYS < day)
			mdb_cursor_del(cur, 0);
	}
	mdb_cursor_close(cur);
}

/* The decision on a message spanning shards, when one was taken. */
static bool memo_get(struct quota *q, uint64_t id, enum quota_verdict *v, char *why)
{
	uint8_t kb[9];
	MDB_val k = { 9, kb }, d;

	kb[0] = 'm';
	be64_put(kb + 1, id);
	if (mdb_get(q->batch, q->db, &k, &d) != 0 || d.mv_size < 9)
		return false;
	*v = ((const uint8_t *)d.mv_data)[8] ? QUOTA_HOLD : QUOTA_PASS;
	snprintf(why, QUOTA_WHY_MAX + 1, "%.*s", (int)(d.mv_size - 9),
		 (const char *)d.mv_data + 9);
	return true;
}

static int memo_put(struct quota *q, uint64_t id, uint64_t day, enum quota_verdict v,
		    const char *why)
{
	uint8_t kb[9], vb[9 + QUOTA_WHY_MAX];
	size_t wl = strnlen(why, QUOTA_WHY_MAX);
	MDB_val k = { 9, kb }, d = { 9 + wl, vb };

	kb[0] = 'm';
	be64_put(kb + 1, id);
	be64_put(vb, day);
	vb[8] = v == QUOTA_HOLD;
	memcpy(vb + 9, why, wl);
	return mdb_put(q->batch, q->db, &k, &d, 0);
}

static bool suspended_in(struct quota *q, MDB_txn *txn, const char *user, uint64_t *since)
{
	uint8_t kb[KEY_MAX];
	MDB_val k = { key_make(kb, 's', user), kb }, d;

	if (mdb_get(txn, q->db, &k, &d) != 0)
		return false;
	if (since)
		*since = d.mv_size >= 8 ? be64_get(d.mv_data) : 0;
	return true;
}

/* The key's count for day (0 0 on another day or none). */
static int count_get(struct quota *q, MDB_txn *txn, const uint8_t *kb, size_t kl, uint64_t day,
		     uint32_t *msgs, uint32_t *rcpts)
{
	MDB_val k = { kl, (void *)kb }, d;
	int rc = mdb_get(txn, q->db, &k, &d);

	*msgs = *rcpts = 0;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return rc;
	if (d.mv_size == COUNT_LEN && be64_get(d.mv_data) == day) {
		*msgs = be32_get((const uint8_t *)d.mv_data + 8);
		*rcpts = be32_get((const uint8_t *)d.mv_data + 12);
	}
	return 0;
}

/* Which key a message counts against, and its limit; false: none. */
static bool key_of(struct quota *q, const char *user, const char *client, char *kind,
		   char name[QUOTA_NAME_MAX + 3], struct quota_limit *lim)
{
	const struct quota_limit *o;
	uint32_t ip;
	bool ok = false;

	pthread_mutex_lock(&q->mu);
	if (user && user[0]) {
		*kind = 'u';
		snprintf(name, QUOTA_NAME_MAX + 3, "%s", user);
		*lim = q->pol->user;
		ok = true;
	} else if (client && client[0] && smtp_parse_ipv4(client, &ip) == 0 &&
		   smtp_policy_trusted(&q->pol->nets, ip)) {
		*kind = 'c';
		snprintf(name, QUOTA_NAME_MAX + 3, "[%s]", client);
		*lim = q->pol->client;
		ok = true;
	}
	if (ok && (o = map_find(&q->pol->map, name)))
		*lim = *o;
	pthread_mutex_unlock(&q->mu);
	return ok;
}

enum quota_verdict quota_account(struct quota *q, uint64_t now, uint64_t id, bool multi,
				 const char *user, const char *client_addr, unsigned nrcpt,
				 char *why)
{
	uint64_t day = now / DAY_S;
	enum quota_verdict v = QUOTA_PASS;
	struct quota_limit lim;
	char kind, name[QUOTA_NAME_MAX + 3];
	uint8_t kb[KEY_MAX], vb[COUNT_LEN];
	uint32_t msgs, rcpts;
	size_t kl;
	MDB_val k, d;
	int rc;

	why[0] = '\0';
	if (!q->batch) {
		stat_inc(q, ST_ERRORS);
		return QUOTA_PASS;
	}
	memo_gc(q, day);
	if (multi && memo_get(q, id, &v, why)) {
		stat_inc(q, ST_FOLLOWED);
		return v;
	}
	if (!key_of(q, user, client_addr, &kind, name, &lim)) {
		stat_inc(q, ST_UNCOUNTED);
		return QUOTA_PASS;
	}
	if (!lim.messages && !lim.recipients) {
		/* no limit: nothing to count (no write, no sync), only a
		 * suspension to honour */
		stat_inc(q, ST_UNCOUNTED);
		if (kind == 'u' && suspended_in(q, q->batch, name, NULL)) {
			snprintf(why, QUOTA_WHY_MAX + 1, QUOTA_SUSPENDED_PREFIX " user %s suspended "
				 "by the operator", name);
			stat_inc(q, ST_HELD_SUSPENDED);
			return QUOTA_HOLD;
		}
		return QUOTA_PASS;
	}
	kl = key_make(kb, kind, name);
	if ((rc = count_get(q, q->batch, kb, kl, day, &msgs, &rcpts)) != 0)
		goto fail;
	msgs = msgs == UINT32_MAX ? msgs : msgs + 1;
	rcpts = rcpts > UINT32_MAX - nrcpt ? UINT32_MAX : rcpts + nrcpt;
	be64_put(vb, day);
	be32_put(vb + 8, msgs);
	be32_put(vb + 12, rcpts);
	k = (MDB_val){ kl, kb };
	d = (MDB_val){ COUNT_LEN, vb };
	if ((rc = mdb_put(q->batch, q->db, &k, &d, 0)) != 0)
		goto fail;
	stat_inc(q, ST_COUNTED);
	{	/* in a cluster, the other boxes' counts of the day add up */
		quota_elsewhere_fn fn;
		void *fu;
		uint32_t em = 0, er = 0;
		pthread_mutex_lock(&q->mu);
		fn = q->elsewhere;
		fu = q->elsewhere_user;
		pthread_mutex_unlock(&q->mu);
		if (fn) {
			fn(fu, kind, name, day, msgs, rcpts, &em, &er);
			msgs = msgs > UINT32_MAX - em ? UINT32_MAX : msgs + em;
			rcpts = rcpts > UINT32_MAX - er ? UINT32_MAX : rcpts + er;
		}
	}
	if (kind == 'u' && suspended_in(q, q->batch, name, NULL)) {
		snprintf(why, QUOTA_WHY_MAX + 1, QUOTA_SUSPENDED_PREFIX " user %s suspended by "
			 "the operator", name);
		v = QUOTA_HOLD;
		stat_inc(q, ST_HELD_SUSPENDED);
	} else if (lim.messages && msgs > lim.messages) {
		snprintf(why, QUOTA_WHY_MAX + 1, "daily quota: %s %s, message %u of %u a day",
			 kind == 'u' ? "user" : "client", name, msgs, lim.messages);
		v = QUOTA_HOLD;
		stat_inc(q, ST_HELD_QUOTA);
	} else if (lim.recipients && rcpts > lim.recipients) {
		snprintf(why, QUOTA_WHY_MAX + 1, "daily quota: %s %s, recipient %u of %u a day",
			 kind == 'u' ? "user" : "client", name, rcpts, lim.recipients);
		v = QUOTA_HOLD;
		stat_inc(q, ST_HELD_QUOTA);
	}
	if (multi && (rc = memo_put(q, id, day, v, why)) != 0)
		goto fail;
	return v;
fail:
	log_err("quota: %s %s: %s (the message passes)", kind == 'u' ? "user" : "client", name,
		mdb_strerror(rc));
	stat_inc(q, ST_ERRORS);
	why[0] = '\0';
	return QUOTA_PASS;
}

int quota_suspend(struct quota *q, const char *user, bool on, uint64_t now, char *err,
		  size_t n)
{
	uint8_t kb[KEY_MAX], vb[8];
	MDB_txn *txn;
	MDB_val k, d = { 8, vb };
	int rc, changed;

	if (!name_ok(user, strlen(user)) || user[0] == '[') {
		snprintf(err, n, "'%s' is not a user name", user);
		return -1;
	}
	k = (MDB_val){ key_make(kb, 's', user), kb };
	be64_put(vb, now);
	if ((rc = mdb_txn_begin(q->env, NULL, 0, &txn)) != 0) {
		snprintf(err, n, "quota store: %s", mdb_strerror(rc));
		return -1;
	}
	if (on) {
		rc = mdb_put(txn, q->db, &k, &d, MDB_NOOVERWRITE);
		changed = rc == 0;
		if (rc == MDB_KEYEXIST)
			rc = 0;
	} else {
		rc = mdb_del(txn, q->db, &k, NULL);
		changed = rc == 0;
		if (rc == MDB_NOTFOUND)
			rc = 0;
	}
	if (rc || (rc = mdb_txn_commit(txn)) != 0) {
		if (rc && txn)
			mdb_txn_abort(txn);
		snprintf(err, n, "quota store: %s", mdb_strerror(rc));
		return -1;
	}
	return changed;
}

bool quota_is_suspended(struct quota *q, const char *user, uint64_t *since)
{
	MDB_txn *txn;
	bool s;

	if (mdb_txn_begin(q->env, NULL, MDB_RDONLY, &txn) != 0)
		return false;
	s = suspended_in(q, txn, user, since);
	mdb_txn_abort(txn);
	return s;
}

int quota_usage_get(struct quota *q, uint64_t now, const char *user, const char *client_addr,
		    struct quota_usage *out)
{
	char name[QUOTA_NAME_MAX + 3];
	uint8_t kb[KEY_MAX];
	MDB_txn *txn;
	size_t kl;
	int rc;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&q->mu);
	if (user && user[0]) {
		snprintf(name, sizeof(name), "%s", user);
		out->lim = q->pol->user;
	} else {
		snprintf(name, sizeof(name), "[%s]", client_addr ? client_addr : "");
		out->lim = q->pol->client;
	}
	{
		const struct quota_limit *o = map_find(&q->pol->map, name);
		if (o)
			out->lim = *o;
	}
	pthread_mutex_unlock(&q->mu);
	kl = key_make(kb, user && user[0] ? 'u' : 'c', name);
	if (mdb_txn_begin(q->env, NULL, MDB_RDONLY, &txn) != 0)
		return -1;
	rc = count_get(q, txn, kb, kl, now / DAY_S, &out->messages, &out->recipients);
	if (user && user[0])
		out->suspended = suspended_in(q, txn, name, NULL);
	mdb_txn_abort(txn);
	return rc ? -1 : 0;
}

void quota_set_elsewhere(struct quota *q, quota_elsewhere_fn fn, void *user)
{
	pthread_mutex_lock(&q->mu);
	q->elsewhere = fn;
	q->elsewhere_user = user;
	pthread_mutex_unlock(&q->mu);
}

void quota_stats_get(struct quota *q, struct quota_stats *out)
{
	uint64_t *v = (uint64_t *)out;

	for (unsigned i = 0; i < quota_stat_count; i++)
		v[i] = atomic_load_explicit(&q->st[i], memory_order_relaxed);
}
