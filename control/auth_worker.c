/*
 * auth_worker.c - SMTP AUTH password checks on their own thread. See
 * auth_worker.h.
 */
#include "control/auth_worker.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <rte_ring.h>

#include "common/log.h"
#include "common/ring.h"
#include "control/users.h"
#include "dataplane/ask.h"

const char *const auth_worker_stat_names[] = { AUTH_WORKER_STATS(STATS_NAME) };
const unsigned auth_worker_stat_count = sizeof(auth_worker_stat_names) / sizeof(char *);

/* One check in flight: the ask and the submitter's tag. */
struct job {
	struct ask *a;
	void *tag;
	struct job *next_free;		/* submitter's side only */
};

struct auth_worker {
	pthread_t thread;
	bool started;
	atomic_bool stop;
	int wake_fd;			/* the submitter's (not ours) */
	int sleep_fd;			/* ours: new jobs */
	struct rte_ring *todo, *done;	/* SP/SC each */
	struct job *free;		/* submitter's side */
	struct job jobs[AUTH_WORKER_JOBS];

	struct users users;		/* worker thread only */
	pthread_mutex_t mu;
	struct users *next;		/* under mu: a reload's table, not yet taken */

	/* written by the worker (checked...errors) or the submitter (busy) or
	 * the reloader (reloads); read racily for stats */
	_Atomic uint64_t st[sizeof(struct auth_worker_stats) / sizeof(uint64_t)];
};

enum { ST_CHECKED, ST_GOOD, ST_BAD, ST_BUSY, ST_ERRORS, ST_RELOADS };

static void bump(struct auth_worker *w, int i)
{
	atomic_fetch_add_explicit(&w->st[i], 1, memory_order_relaxed);
}

static void signal_fd(int fd)
{
	uint64_t one = 1;

	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_debug("auth: eventfd write: %s", strerror(errno));
}

static void drain_fd(int fd)
{
	uint64_t v;

	while (read(fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
		;
}

/* The question's name and password, inside a->text. */
static int question(struct ask *a, const char **name, const char **pass, size_t *pass_len)
{
	size_t nl = strnlen(a->text, sizeof(a->text)), pl;

	if (nl == 0 || nl >= sizeof(a->text) - 1)
		return -1;
	pl = strnlen(a->text + nl + 1, sizeof(a->text) - nl - 1);
	if (nl + 1 + pl >= sizeof(a->text))
		return -1;
	*name = a->text;
	*pass = a->text + nl + 1;
	*pass_len = pl;
	return 0;
}

static void check(struct auth_worker *w, struct ask *a)
{
	const char *name, *pass;
	size_t pl;
	int r = -1;

	if (question(a, &name, &pass, &pl) == 0)
		r = users_verify(&w->users, name, pass, pl);
	else
		r = 0;	/* a malformed question is a wrong password */
	OPENSSL_cleanse(a->text, sizeof(a->text));
	bump(w, ST_CHECKED);
	if (r == 1) {
		a->status = AUTH_GOOD;
		bump(w, ST_GOOD);
	} else if (r == 0) {
		a->status = AUTH_BAD;
		bump(w, ST_BAD);
	} else {
		a->status = AUTH_TEMP;
		bump(w, ST_ERRORS);
	}
}

static void take_reload(struct auth_worker *w)
{
	struct users *u;

	pthread_mutex_lock(&w->mu);
	u = w->next;
	w->next = NULL;
	pthread_mutex_unlock(&w->mu);
	if (!u)
		return;
	users_free(&w->users);
	w->users = *u;
	free(u);
}

static void *run(void *arg)
{
	struct auth_worker *w = arg;

	while (!atomic_load(&w->stop)) {
		void *obj;

		take_reload(w);
		if (rte_ring_sc_dequeue(w->todo, &obj) == 0) {
			struct job *j = obj;

			check(w, j->a);
			/* never full: it holds every job */
			while (rte_ring_sp_enqueue(w->done, j) != 0)
				;
			signal_fd(w->wake_fd);
			continue;
		}
		struct pollfd pfd = { .fd = w->sleep_fd, .events = POLLIN };
		if (poll(&pfd, 1, 100) > 0)
			drain_fd(w->sleep_fd);
	}
	return NULL;
}

struct auth_worker *auth_worker_start(const char *path, int wake_fd, char *err, size_t n)
{
	struct auth_worker *w = calloc(1, sizeof(*w));

	if (!w) {
		snprintf(err, n, "no memory");
		return NULL;
	}
	w->wake_fd = wake_fd;
	w->sleep_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	pthread_mutex_init(&w->mu, NULL);
	w->todo = ring_create("auth_todo", AUTH_WORKER_JOBS,
			      RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ);
	w->done = ring_create("auth_done", AUTH_WORKER_JOBS,
			      RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ);
	if (w->sleep_fd < 0 || !w->todo || !w->done) {
		snprintf(err, n, "auth worker: no memory or eventfd");
		goto fail;
	}
	for (unsigned i = 0; i < AUTH_WORKER_JOBS; i++) {
		w->jobs[i].next_free = w->free;
		w->free = &w->jobs[i];
	}
	if (path && path[0] && users_load(&w->users, path, err, n) < 0)
		goto fail;
	if (pthread_create(&w->thread, NULL, run, w) != 0) {
		snprintf(err, n, "auth worker: cannot start its thread");
		goto fail;
	}
	w->started = true;
	pthread_setname_np(w->thread, "sluice-auth");	/* in top -H, ps -L */
	return w;
fail:
	auth_worker_stop(w);
	return NULL;
}

void auth_worker_stop(struct auth_worker *w)
{
	if (!w)
		return;
	if (w->started) {
		atomic_store(&w->stop, true);
		signal_fd(w->sleep_fd);
		pthread_join(w->thread, NULL);
	}
	if (w->next) {
		users_free(w->next);
		free(w->next);
	}
	users_free(&w->users);
	ring_destroy(w->todo);
	ring_destroy(w->done);
	if (w->sleep_fd >= 0)
		close(w->sleep_fd);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

int auth_worker_submit(struct auth_worker *w, struct ask *a, void *tag)
{
	struct job *j = w->free;

	if (!j) {
		OPENSSL_cleanse(a->text, sizeof(a->text));
		a->status = AUTH_TEMP;
		bump(w, ST_BUSY);
		return -1;
	}
	w->free = j->next_free;
	j->a = a;
	j->tag = tag;
	/* never full: it holds every job */
	while (rte_ring_sp_enqueue(w->todo, j) != 0)
		;
	signal_fd(w->sleep_fd);
	return 0;
}

unsigned auth_worker_done(struct auth_worker *w, struct ask **a, void **tag, unsigned max)
{
	void *objs[64];
	unsigned n, got = 0;

	while (got < max) {
		unsigned want = max - got < 64 ? max - got : 64;

		n = rte_ring_sc_dequeue_burst(w->done, objs, want, NULL);
		for (unsigned i = 0; i < n; i++) {
			struct job *j = objs[i];

			a[got] = j->a;
			tag[got] = j->tag;
			got++;
			j->next_free = w->free;
			w->free = j;
		}
		if (n < want)
			break;
	}
	return got;
}

int auth_worker_reload(struct auth_worker *w, const char *path, unsigned *users, char *err,
		       size_t n)
{
	struct users *u = calloc(1, sizeof(*u)), *old;

	if (!u) {
		snprintf(err, n, "no memory");
		return -1;
	}
	if (path[0] && users_load(u, path, err, n) < 0) {
		free(u);
		return -1;
	}
	*users = u->n;
	pthread_mutex_lock(&w->mu);
	old = w->next;
	w->next = u;
	pthread_mutex_unlock(&w->mu);
	if (old) {
		users_free(old);
		free(old);
	}
	bump(w, ST_RELOADS);
	signal_fd(w->sleep_fd);
	return 0;
}

void auth_worker_stats_get(const struct auth_worker *w, struct auth_worker_stats *st)
{
	uint64_t *out = (uint64_t *)st;

	for (unsigned i = 0; i < auth_worker_stat_count; i++)
		out[i] = atomic_load_explicit(&w->st[i], memory_order_relaxed);
}
