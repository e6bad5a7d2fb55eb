/*
 * ctl_server.h - the control socket: framing, limits, access, dispatch.
 *
 * A Unix stream socket that sluicectl (or any script) talks to, in the wire
 * format of control/ctl_proto.h: one JSON request per line, one JSON reply
 * per line. It is polled from the main thread's loop and never blocks it.
 *
 * Commands. The caller supplies a table of struct ctl_cmd (sluiced's is
 * control/commands.c). A request's first word names the command, and for a
 * family ("route", "dest", "queue") its second word the sub-command. The
 * handler gets the words after those, and answers either at once (its
 * return value and *result) or later: it takes a ticket with
 * ctl_server_defer(), hands the work to a thread of its own (nothing slow
 * runs on the loop: the queue, DNS, the scheduler belong to other threads),
 * returns CTL_DEFERRED, and that thread's answer comes back to the loop,
 * which passes it to ctl_server_answer_json(). A connection's next request
 * is read only once its reply is written. The server is not thread-safe:
 * every call is made on the thread that polls it.
 *
 * Access. Every connection's peer is read with SO_PEERCRED (uid, gid, pid)
 * and SO_PEERGROUPS (its supplementary groups) when it connects:
 *   admin:     uid 0, the daemon's own uid, or a member of `group` (the
 *              socket file's group): may run every command;
 *   read-only: a member of `read_group`: commands marked CTL_READ only;
 *   anyone else gets one error reply and is disconnected.
 * The socket file is made with `mode` (0660) and `group`, a first fence;
 * SO_PEERCRED is the check that counts. A refused command is an error reply
 * naming what the peer may do. Commands that change anything (routes,
 * flushes, destinations, the queue, reload) are CTL_ADMIN and logged with
 * the peer's uid and pid.
 *
 * Limits. At most CTL_MAX_CLIENTS connections. When all are taken, a new one
 * makes room by evicting the connection that has been idle or trickling a
 * request longest (at least CTL_EVICT_AGE_MS), so stalled clients cannot
 * lock operators out; when none can go (all owed or being sent a reply),
 * the new one gets a "busy" error reply and is closed. A
 * request over CTL_REQUEST_MAX bytes gets an error reply and the connection
 * is closed; one that is not JSON or not a request gets an error reply (the
 * next line is read normally). A request must be complete request_timeout_ms
 * after its first byte (slow-loris), else an error reply and close; an idle
 * connection is closed after idle_timeout_ms; a reply the client does not
 * take (no byte accepted for send_timeout_ms) is dropped with the
 * connection. Replies are buffered per client (at most CTL_REPLY_MAX bytes)
 * and written as the socket takes them (POLLOUT): a large reply is never
 * cut by a full socket buffer. Counted in ctl.* (ctl_server_stats_visit).
 */
#ifndef SLUICE_CTL_SERVER_H
#define SLUICE_CTL_SERVER_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "common/stats.h"
#include "control/ctl_proto.h"

#define CTL_MAX_CLIENTS 16
#define CTL_POLLFDS (1 + CTL_MAX_CLIENTS)	/* most pollfds ctl_server_pollfds fills */
#define CTL_EVICT_AGE_MS 1000

/* ---- the command table: the contract for who adds commands ---- */

/* Who may run a command: CTL_READ, anyone allowed on the socket; CTL_ADMIN,
 * admins only (root, the daemon's uid, `group`). */
enum ctl_access { CTL_READ, CTL_ADMIN };

/* The daemon's things the handlers work with (control/commands.h defines
 * sluiced's; the server never looks inside). */
struct ctl_ctx;

/* Handler results besides 0 (answered, ok) and -1 (answered, error). */
#define CTL_DEFERRED 1		/* a ticket was taken: the answer comes later */
#define CTL_USAGE (-2)		/* bad arguments: the server answers "usage: ..." */

/*
 * A command's handler. argv holds the argc words after the command's name
 * (and sub-command), argv[argc] == NULL; argc may be 0. Return
 *   0             the result in *result (a new reference; NULL means null),
 *   -1            failed: *result a JSON string saying why (a new
 *                 reference; NULL: "failed"),
 *   CTL_USAGE     the arguments are wrong: the reply is the row's usage
 *                 (*result, if set, is dropped),
 *   CTL_DEFERRED  after ctl_server_defer(): the answer comes through
 *                 ctl_server_answer_json() (*result, if set, is dropped).
 * Runs on the main thread: it must not block (no queue transaction, no DNS,
 * nothing that waits); hand such work to another thread and defer.
 */
typedef int (*ctl_cmd_fn)(struct ctl_ctx *c, int argc, char **argv, json_t **result);

/*
 * One row of a command table; a table ends with a row whose name is NULL.
 * Rows with a sub are a family: "route set" is {"route", "set", ...}; a
 * family may also have one row with sub NULL, run when the second word is
 * none of the family's (e.g. "queue" alone). usage is the arguments after
 * the words ("DOMAIN NEXTHOP", "" for none); help says what the command
 * does and what its result holds, in a few lines (`sluicectl CMD --help`
 * prints both, from this table, through the `help` command).
 */
struct ctl_cmd {
	const char *name;
	const char *sub;
	enum ctl_access access;
	ctl_cmd_fn fn;
	const char *usage;
	const char *help;
};

/*
 * The row for a request's words: *words is how many of argv it used (1 or
 * 2). NULL with a human reason in err ("unknown command 'x'", "'route'
 * needs one of: lookup, set, clear").
 */
const struct ctl_cmd *ctl_cmd_find(const struct ctl_cmd *table, int argc, char *const *argv,
				   int *words, char *err, size_t errlen);

/*
 * The `help [COMMAND [SUB]]` command over a table: *result is
 * {"commands":[{"command":"route set","access":"admin"|"read",
 * "usage":"route set DOMAIN NEXTHOP","help":"..."}...]}: every row, or the
 * rows of COMMAND, or the one row COMMAND SUB. -1 when COMMAND is unknown.
 */
int ctl_cmd_help(const struct ctl_cmd *table, int argc, char **argv, json_t **result);

/* ---- the server ---- */

#define CTL_NO_GROUP ((gid_t)-1)

struct ctl_server_conf {
	const char *path;		/* the socket; NULL: no listening socket
					 * (clients come through ctl_server_adopt) */
	unsigned mode;			/* the socket file's mode (0660) */
	gid_t group;			/* the file's group and the admins' group;
					 * CTL_NO_GROUP: the daemon's group, no admin
					 * group (root and the daemon's uid only) */
	gid_t read_group;		/* read-only peers; CTL_NO_GROUP: none */
	uint64_t request_timeout_ms;	/* a request line, from its first byte (10 s) */
	uint64_t idle_timeout_ms;	/* a connection with nothing going on (60 s) */
	uint64_t send_timeout_ms;	/* a reply the client does not take (10 s) */
};
void ctl_server_conf_default(struct ctl_server_conf *c);

/* A peer as SO_PEERCRED saw it, and what it may do. */
struct ctl_peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	enum ctl_access level;
};

/*
 * What a peer may do: 0 with *level, or -1 (not allowed at all). uid and
 * gid as SO_PEERCRED gives them, groups[n] its supplementary groups.
 */
int ctl_access_level(const struct ctl_server_conf *c, uid_t uid, gid_t gid,
		     const gid_t *groups, unsigned n, enum ctl_access *level);

/* Names one deferred request: its client slot and the request's serial
 * (an answer for a client that went away, or for an earlier request, is
 * dropped). */
struct ctl_ticket {
	unsigned slot;
	uint64_t serial;
};

struct ctl_server;

/*
 * Listen on conf->path (a stale socket file left by a crash is taken over;
 * a live one means another sluiced runs: -EADDRINUSE), with the file's
 * mode and group; commands from table (kept, not copied), handlers called
 * with ctx. NULL with *err = -errno on failure (logged).
 */
struct ctl_server *ctl_server_open(const struct ctl_server_conf *conf, const struct ctl_cmd *table,
				   struct ctl_ctx *ctx, int *err);
/* Close every connection and the socket (its file is removed), free s. */
void ctl_server_close(struct ctl_server *s);

/* Take a connected socket as a client (the peer check as for accepted
 * ones). 0, or -1 (refused or no room: fd is closed). */
int ctl_server_adopt(struct ctl_server *s, int fd, uint64_t now_ms);

/* Fill pfds with the fds to watch (at most CTL_POLLFDS); returns how many. */
unsigned ctl_server_pollfds(const struct ctl_server *s, struct pollfd *pfds);
/* Service what poll() reported in pfds[0..n) (other fds in it are
 * skipped), and expire deadlines as of now_ms (monotonic). Call at least
 * every 100 ms or so: the loop's poll timeout. */
void ctl_server_service(struct ctl_server *s, const struct pollfd *pfds, unsigned n,
			uint64_t now_ms);

/*
 * Inside a handler: a ticket for the request being handled; the handler
 * then returns CTL_DEFERRED. 0, or -1 outside a handler.
 */
int ctl_server_defer(struct ctl_server *s, struct ctl_ticket *t);
/*
 * The answer to a deferred request, from the main thread (the thread that
 * polls the server): ok with the result, or an error with a JSON string.
 * Takes value's reference (as ctl_reply_encode). A ticket whose client is
 * gone is skipped. May be called inside the handler itself, before it
 * returns CTL_DEFERRED.
 */
void ctl_server_answer_json(struct ctl_server *s, struct ctl_ticket t, bool ok, json_t *value);
/* An error answer from printf-style text. */
void ctl_server_answer_error(struct ctl_server *s, struct ctl_ticket t, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Inside a handler: the peer of the request being handled, or NULL. */
const struct ctl_peer *ctl_server_peer(const struct ctl_server *s);

/*
 * accepted: connections taken; refused_peer: peers SO_PEERCRED did not
 * allow; refused_busy: connections answered "busy"; evicted: connections
 * closed to make room; requests: requests dispatched; bad_requests: lines
 * that were not a request (not JSON, wrong shape, unknown command, usage);
 * denied: commands over the peer's access; oversized: lines over
 * CTL_REQUEST_MAX; request_timeouts / idle_timeouts / send_timeouts:
 * connections closed by those deadlines; deferred: requests answered
 * later; stale_answers: answers whose client was gone; replies_too_large:
 * results over CTL_REPLY_MAX; bytes_out: reply bytes written; out_waits:
 * times a reply waited for the client's socket to take more. Gauges:
 * clients (connected now), out_bytes (reply bytes waiting to be written).
 */
#define CTL_SERVER_STATS(X) \
	X(accepted) X(refused_peer) X(refused_busy) X(evicted) X(requests) X(bad_requests) \
	X(denied) X(oversized) X(request_timeouts) X(idle_timeouts) X(send_timeouts) \
	X(deferred) X(stale_answers) X(replies_too_large) X(bytes_out) X(out_waits) \
	X(clients) X(out_bytes)
struct ctl_server_stats { CTL_SERVER_STATS(STATS_FIELD) };
extern const char *const ctl_server_stat_names[];
extern const unsigned ctl_server_stat_count;
/* The counters above, as group "ctl". */
void ctl_server_stats_visit(const struct ctl_server *s, stats_visit_fn fn, void *user);

#endif
