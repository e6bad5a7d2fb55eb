/*
 * drain_hook.c - runs the operator's drain hook in a thread of its own,
 * with a time limit. See drain_hook.h.
 */
#include "control/drain_hook.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"

#define HOOK_POLL_NS (20 * 1000 * 1000)	/* how often the runner checks the child */

extern char **environ;

/*
 * One per sluiced. The mutex guards every field; the runner thread is
 * detached, and `busy` says one runs (drain_hook_wait waits on `idle`).
 */
struct drain_hook {
	pthread_mutex_t lock;
	pthread_cond_t idle;
	bool busy;
	/* the run in progress (copied in by drain_hook_run) */
	char path[4096];
	char arg[16];
	uint64_t timeout_ns;
	/* counters */
	uint64_t runs, ok, failed, timeouts;
};

struct drain_hook *drain_hook_new(void)
{
	struct drain_hook *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	if (pthread_mutex_init(&h->lock, NULL) != 0) {
		free(h);
		return NULL;
	}
	if (pthread_cond_init(&h->idle, NULL) != 0) {
		pthread_mutex_destroy(&h->lock);
		free(h);
		return NULL;
	}
	return h;
}

void drain_hook_wait(struct drain_hook *h)
{
	pthread_mutex_lock(&h->lock);
	while (h->busy)
		pthread_cond_wait(&h->idle, &h->lock);
	pthread_mutex_unlock(&h->lock);
}

void drain_hook_free(struct drain_hook *h)
{
	if (!h)
		return;
	drain_hook_wait(h);
	pthread_cond_destroy(&h->idle);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

bool drain_hook_busy(struct drain_hook *h)
{
	bool b;

	pthread_mutex_lock(&h->lock);
	b = h->busy;
	pthread_mutex_unlock(&h->lock);
	return b;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* Wait for pid until deadline; kill it past that. Returns the wait status,
 * *timed_out set when it had to be killed; -1: waitpid failed. */
static int wait_child(pid_t pid, uint64_t deadline, bool *timed_out)
{
	struct timespec nap = { 0, HOOK_POLL_NS };
	int status;

	*timed_out = false;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return status;
		if (r < 0 && errno != EINTR)
			return -1;
		if (mono_ns() >= deadline && !*timed_out) {
			*timed_out = true;
			kill(pid, SIGKILL);
		}
		nanosleep(&nap, NULL);
	}
}

static void *runner(void *arg)
{
	struct drain_hook *h = arg;
	char *argv[3] = { h->path, h->arg, NULL };
	posix_spawn_file_actions_t fa;
	bool timed_out = false, good = false;
	pid_t pid;
	int r, status = -1;

	/* stdin from /dev/null; stdout and stderr are sluiced's (its log) */
	r = posix_spawn_file_actions_init(&fa);
	if (r == 0) {
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
		r = posix_spawn(&pid, h->path, &fa, NULL, argv, environ);
		posix_spawn_file_actions_destroy(&fa);
	}
	if (r != 0) {
		log_err("drain hook %s %s: cannot run it: %s", h->path, h->arg, strerror(r));
	} else {
		status = wait_child(pid, mono_ns() + h->timeout_ns, &timed_out);
		if (status < 0)
			log_err("drain hook %s %s: waitpid: %s", h->path, h->arg, strerror(errno));
		else if (timed_out)
			log_err("drain hook %s %s: still running after %llu ms: killed", h->path,
				h->arg, (unsigned long long)(h->timeout_ns / 1000000));
		else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			good = true;
		else if (WIFEXITED(status))
			log_err("drain hook %s %s: exit status %d", h->path, h->arg,
				WEXITSTATUS(status));
		else if (WIFSIGNALED(status))
			log_err("drain hook %s %s: killed by signal %d", h->path, h->arg,
				WTERMSIG(status));
		if (good)
			log_notice("drain hook %s %s: exit status 0", h->path, h->arg);
	}
	pthread_mutex_lock(&h->lock);
	if (good)
		h->ok++;
	else
		h->failed++;
	if (timed_out)
		h->timeouts++;
	h->busy = false;
	pthread_cond_broadcast(&h->idle);
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

int drain_hook_run(struct drain_hook *h, const char *path, const char *arg, uint64_t timeout_ns,
		   char *err, size_t errlen)
{
	pthread_attr_t at;
	pthread_t t;
	int r;

	if (strlen(path) >= sizeof(h->path) || strlen(arg) >= sizeof(h->arg)) {
		snprintf(err, errlen, "drain hook path too long");
		return -1;
	}
	pthread_mutex_lock(&h->lock);
	if (h->busy) {
		pthread_mutex_unlock(&h->lock);
		snprintf(err, errlen, "the drain hook still runs (%s %s): try again when it ends",
			 h->path, h->arg);
		return -1;
	}
	h->busy = true;
	h->runs++;
	snprintf(h->path, sizeof(h->path), "%s", path);
	snprintf(h->arg, sizeof(h->arg), "%s", arg);
	h->timeout_ns = timeout_ns;
	pthread_mutex_unlock(&h->lock);

	r = pthread_attr_init(&at);
	if (r == 0) {
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		r = pthread_create(&t, &at, runner, h);
		pthread_attr_destroy(&at);
	}
	if (r != 0) {
		pthread_mutex_lock(&h->lock);
		h->busy = false;
		h->failed++;
		pthread_cond_broadcast(&h->idle);
		pthread_mutex_unlock(&h->lock);
		snprintf(err, errlen, "cannot start the drain hook's thread: %s", strerror(r));
		return -1;
	}
	log_notice("drain hook %s %s: started (time limit %llu ms)", path, arg,
		   (unsigned long long)(timeout_ns / 1000000));
	return 0;
}

void drain_hook_stats_visit(struct drain_hook *h, stats_visit_fn fn, void *user)
{
	static const char *const names[] = { "runs", "ok", "failed", "timeouts", "running" };
	uint64_t v[5];

	pthread_mutex_lock(&h->lock);
	v[0] = h->runs;
	v[1] = h->ok;
	v[2] = h->failed;
	v[3] = h->timeouts;
	v[4] = h->busy;
	pthread_mutex_unlock(&h->lock);
	stats_visit(fn, user, "drain_hook", names, v, 5);
}
