/*
 * reload.h - `sluicectl reload`, SIGHUP and `sluicectl config check`: the
 * configuration file read again, checked whole, and what may change
 * without dropping a session applied while sluiced runs.
 *
 * A reload reads the file sluiced was started with (-c FILE) and runs the
 * same checks as `sluiced --check-config` (config_load_file, then
 * config_check). Any error: the reload is refused whole, nothing is
 * applied, and the reply names every error (file:line: section.key: why).
 *
 * Otherwise each key is compared with what runs:
 *
 *   applied live:  [smtp] mynetworks relay_domains
 *                  message_size_limit recipient_limit max_sessions
 *                  max_sessions_per_client error_limit line_length_limit
 *                  hop_limit bare_linefeed command_timeout data_timeout
 *                  starttls reverse_lookup_wait; [tls] cert key (the files
 *                  are read again even when the names are the same, so a
 *                  renewed certificate goes in); [retry] schedule
 *                  per_domain min_backoff max_backoff jitter lifetime
 *                  lifetime_per_domain; [dest] every key; [routes]
 *                  relayhost routes_file (the file is read again: the
 *                  static routes become the file's, and routes set with
 *                  `route set` are gone, as after a restart); [log] level.
 *   needs restart: everything else (the port, addresses, lcores, EAL, the
 *                  queue, [delivery], [dns], [control], [metrics], [smtp]
 *                  hostname, postmaster and loop_action, [retry]
 *                  bounce_lifetime, delay_warning_time, ...), and
 *                  message_size_limit or recipient_limit above their
 *                  start-up values (each session's memory was sized by
 *                  them). These keep their running values; the reply lists
 *                  them under needs_restart and the log says so, and the
 *                  rest is still applied.
 *
 * How the live parts reach their users: the SMTP settings as a new
 * immutable snapshot the worker lcores pick up at their next burst
 * (smtp_service.h, dp_smtp_publish; sessions already open keep the
 * settings they began with, new ones get the new); routes and policies as
 * a plane_update the control-plane thread applies between two passes
 * (plane.h); the log level at once (log_set_level).
 *
 * Everything here runs on the main thread and reads only local files (the
 * configuration, the routes file, the TLS pair): no network, nothing that
 * waits on another thread.
 */
#ifndef SLUICE_RELOAD_H
#define SLUICE_RELOAD_H

#include <stdint.h>

#include <jansson.h>

#include "control/config.h"

struct dataplane;
struct plane;
struct metrics;
struct smtp_live;

/* What a reload works on. path NULL: sluiced runs on the built-in default
 * (nothing to read again: reloads are refused). */
struct reload_env {
	const char *path;
	const struct sluice_config *running;	/* as started; never changed */
	struct dataplane *dp;
	struct plane *plane;
	struct metrics *metrics;		/* NULL: not counted */
};

struct reloader;

/* NULL: no memory. running is copied as the first "in force" config. */
struct reloader *reloader_create(const struct reload_env *env);
void reloader_free(struct reloader *rl);

/*
 * Reload. 0 with *result {"reload":{"file","generation","applied":[...],
 * "needs_restart":[...]}} (applied: "section.key" of each live key whose
 * value changed, plus "routes_file", "tls" and so on read again), or -1
 * with *result a JSON string listing every error, one per line. Counted
 * in the metrics either way.
 */
int reload_run(struct reloader *rl, json_t **result);

/*
 * `config check [FILE]`: FILE (default: the running one) through the
 * same checks, nothing applied. 0 with *result {"config":{"file","ok":true}}
 * or -1 with *result a JSON string listing every error, one per line.
 */
int reload_check(struct reloader *rl, const char *file, json_t **result);

/*
 * The SMTP settings of c as a snapshot for the lcores: engine limits,
 * relay policy, the TLS server context (c's [tls] pair, or a self-signed
 * one made in the queue directory), session limits, lifetimes. Start-up
 * and reload both make it here. NULL with err filled.
 */
struct smtp_live *reload_smtp_live(const struct sluice_config *c, char *err, size_t errlen);

#endif
