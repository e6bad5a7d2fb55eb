/*
 * commands.h - the commands sluiced's control socket serves.
 *
 * ctl_commands is the table control/ctl_server.h dispatches on: one row per
 * command (name, sub-command, access, handler, usage, help). To add a
 * command: write its handler (in this file's .c, or a file of its own for a
 * family, e.g. commands_queue.c, declared here), add its row to
 * ctl_commands, and, for people, a renderer in control/sluicectl_render.c.
 * `sluicectl help` and `sluicectl CMD --help` read the table from the
 * server, so the row is the one place a command is described.
 *
 * Handlers run on the main thread (the one that polls the socket and reads
 * signals): they answer at once from what that thread may read without
 * waiting (counters, configuration), or take a ticket (ctl_server_defer),
 * hand the work to the thread that owns it (the control plane, a queue
 * worker) and return CTL_DEFERRED; the answer comes back to the main loop
 * and goes out through ctl_server_answer_json.
 *
 * Results (the "result" of the reply, what `sluicectl --json` prints):
 *   help [COMMAND [SUB]]  {"commands":[{"command","access","usage","help"}]}
 *   ping                  {"pong":true}
 *   version               {"version":"0.1.0","protocol":1}
 *   stats                 {"stats":{"group.name":N,...}}: every counter
 *   route, dns, flush, dest, bounce, suspend, resume: see control/plane.h
 *   queue list|summary|stat|show, hold, release, delete: control/queue_cmd.h
 *                         (the plane hands them to the queue thread)
 *   reload                {"reload":{"file","generation","applied":[..],
 *                         "needs_restart":[..]}}; refused: the error lists
 *                         every problem, one per line (control/reload.h)
 *   config check [FILE]   {"config":{"file","ok":true}}; else the errors
 *   drain, undrain        {"drain":{"draining":B,"was":B,"hook":"PATH"|null}}
 *                         (refused while the previous hook still runs)
 */
#ifndef SLUICE_COMMANDS_H
#define SLUICE_COMMANDS_H

#include "control/ctl_server.h"

struct dataplane;
struct plane;
struct queue;
struct reloader;
struct sluice_config;

/* What the handlers work with; sluiced fills it before the server opens
 * and keeps it for the server's life. Members may be NULL until made
 * (plane, dp) or when the service is off (queue). */
struct ctl_ctx {
	struct ctl_server *server;	/* for ctl_server_defer / _answer_json */
	const struct sluice_config *cfg;
	struct dataplane *dp;
	struct queue *queue;
	struct plane *plane;
	struct reloader *reload;	/* reload, config check (reload.h) */
	struct drain_hook *drain_hook;	/* drain, undrain (drain_hook.h) */
	uint64_t drained_since_s;	/* drained then (unix s; 0: not drained), kept
					 * in [queue] dir across restarts (drain_state.h) */
	const char *version;
};

extern const struct ctl_cmd ctl_commands[];

#endif
