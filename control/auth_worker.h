/*
 * auth_worker.h - SMTP AUTH password checks on a thread of their own.
 *
 * A check is one scrypt (users.h): tens of milliseconds of CPU and 16 MiB.
 * No poll-mode lcore may spend that, nor the control-plane thread (DNS and
 * the delivery scheduler run there). So the lcore asks the control plane
 * (ask.h, ASK_AUTH), the plane hands the question on to this worker, the
 * worker answers into the same ask, and the plane posts it back:
 *
 *   lcore --ask ring--> plane: auth_worker_submit --todo ring--> worker
 *                                                               users_verify
 *   lcore <--ask ring-- plane: auth_worker_done  <--done ring-- worker
 *
 * Both rings are SP/SC rte_rings (ring.h) of AUTH_WORKER_JOBS entries, and
 * the jobs a fixed pool owned by the submitting thread: bounded, lock-free.
 * A full pool is answered at once with AUTH_TEMP (454 4.7.0 to the client).
 * The worker sleeps on an eventfd when it has nothing to do and signals the
 * submitter's wake_fd (if any) when it has answers.
 *
 * The question (ask.text): "name\0password\0". The answer: ask.status one
 * of enum auth_answer; the text is wiped (OPENSSL_cleanse) either way.
 *
 * The users table is the worker's own; auth_worker_reload() reads a new
 * file on the caller's thread and hands it over under a mutex the worker
 * takes between two checks (neither side is an lcore).
 */
#ifndef SLUICE_AUTH_WORKER_H
#define SLUICE_AUTH_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "common/stats.h"

#define AUTH_WORKER_JOBS 1024	/* checks waiting or in progress */

enum auth_answer {
	AUTH_TEMP = -1,		/* could not check now (busy, no memory) */
	AUTH_BAD = 0,		/* wrong name or password */
	AUTH_GOOD = 1,
};

#define AUTH_WORKER_STATS(X) X(checked) X(good) X(bad) X(busy) X(errors) X(reloads)
struct auth_worker_stats { AUTH_WORKER_STATS(STATS_FIELD) };
extern const char *const auth_worker_stat_names[];
extern const unsigned auth_worker_stat_count;

struct ask;
struct auth_worker;

/* Start the thread with the users of path ("" none: every check is
 * AUTH_BAD). wake_fd: an eventfd to write when answers wait (-1: none).
 * NULL with err. */
struct auth_worker *auth_worker_start(const char *path, int wake_fd, char *err, size_t n);
/* Stop and join the thread, free everything (answers not yet taken are
 * lost: their asks belong to ports being freed too). NULL is fine. */
void auth_worker_stop(struct auth_worker *w);

/* Submitter's thread: hand over a (tag: the caller's, e.g. the ask's port).
 * 0, or -1 when every job is in use (a->status is then AUTH_TEMP, the text
 * wiped, and the caller answers it itself). */
int auth_worker_submit(struct auth_worker *w, struct ask *a, void *tag);
/* Submitter's thread: up to max checked asks and their tags. */
unsigned auth_worker_done(struct auth_worker *w, struct ask **a, void **tag, unsigned max);

/* Any thread but the worker's: read path and swap it in for the next
 * checks. 0 with the user count in *users, or -1 with err (the old table
 * stays). */
int auth_worker_reload(struct auth_worker *w, const char *path, unsigned *users, char *err,
		       size_t n);

/* Racy snapshot, for stats. */
void auth_worker_stats_get(const struct auth_worker *w, struct auth_worker_stats *st);

#endif
