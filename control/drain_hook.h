/*
 * drain_hook.h - runs the operator's drain hook ([control] drain_hook).
 *
 * `sluicectl drain` and `undrain` (control/commands.c) turn the dataplane's
 * refuse-new flag on and off (dp_smtp_set_refuse_new) and then run the
 * hook script with one argument, "drain" or "undrain", so the box leaves or
 * rejoins the MX records or the ECMP route. The script runs in a thread of
 * its own (never an lcore, never the main loop that serves the control
 * socket), with a time limit: past it the script is killed (SIGKILL). Its
 * exit status, or the signal or the timeout, is logged and counted.
 *
 * One hook at a time: while one runs, drain_hook_run refuses another (the
 * operator repeats the command), so a "drain" and an "undrain" never run
 * in the opposite order.
 *
 * Counters (stats group "drain_hook"): runs, ok (exit 0), failed (another
 * status, a signal, or the spawn failed), timeouts (killed), running (0/1).
 */
#ifndef SLUICE_DRAIN_HOOK_H
#define SLUICE_DRAIN_HOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/stats.h"

struct drain_hook;

/* NULL: no memory. */
struct drain_hook *drain_hook_new(void);
/* Waits for a hook still running (at most its timeout), then frees. */
void drain_hook_free(struct drain_hook *h);

/* Start `path arg` in the background, killed after timeout_ns. 0 started;
 * -1 with err set: one still runs, or no thread could be made. */
int drain_hook_run(struct drain_hook *h, const char *path, const char *arg, uint64_t timeout_ns,
		   char *err, size_t errlen);
/* A hook is running now. */
bool drain_hook_busy(struct drain_hook *h);
/* Wait until no hook runs (tests, shutdown). */
void drain_hook_wait(struct drain_hook *h);

void drain_hook_stats_visit(struct drain_hook *h, stats_visit_fn fn, void *user);

#endif
