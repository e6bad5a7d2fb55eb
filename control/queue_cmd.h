/*
 * queue_cmd.h - the operator's queue commands, on a thread of their own.
 *
 * What the queue tools of qmail, Postfix and Exim do (qmail-qstat,
 * postqueue -p, qshape, postcat, postsuper -h/-H/-d), against sluiced's
 * queue while it runs: every command here reads or writes the queue
 * through its thread-safe API (queue.h: read transactions, and writes
 * through the shards' writers with queue_apply), so it runs on the
 * "sluice-queue" thread this module starts, never on the main loop (which
 * must not wait on a transaction) and never on the control-plane thread
 * (the delivery scheduler must not wait on a long listing).
 *
 * The control plane (plane.c) hands requests over with qcmd_submit() from
 * the main thread; the words are parsed there (usage errors answered at
 * once) and copied; the thread runs requests one at a time, in order, and
 * calls the request's done function with the result (a new JSON reference)
 * from its own thread: the plane's finish() is safe for that.
 *
 * Requests and their results (times: unix seconds; sizes: bytes):
 *   queue list [--domain D] [--sender S] [--rcpt R] [--held] [--deferred]
 *              [--older-than T] [--limit N] [--after CURSOR]
 *       {"messages":[{"id","arrival","size","sender","status":"*"|"!"|" ",
 *         "held","active","sasl_username","hold_reason","attempts","last_error",
 *         "recipients":[{"addr","state","attempts","reply"}]}],
 *        "scanned":N, "next":CURSOR|null}
 *       At most --limit messages (100; 1000 at most) per page, and at most
 *       LIST_SCAN_BUDGET records read per request: "next" is where the next
 *       page starts (null: no more). Without --domain the shards are walked
 *       in ID order and a message spanning shards is shown once, at its
 *       lowest shard, with the recipients of every part. --sender/--rcpt:
 *       a substring, case-insensitive; --deferred: a recipient was tried
 *       and deferred; --older-than: arrived at least T ago (30s, 5m, 2h, 1d).
 *       attempts: queue_msg_attempts (those on a box it was transferred
 *       from included); last_error: queue_msg_last_error.
 *   queue summary [--top N] [--by sender-domain]
 *       {"by":"domain"|"sender-domain","now","buckets":[5,10,...,1280],
 *        "total":{row}, "rows":N, "domains":[{"domain","total","incoming",
 *        "active","deferred","held","bytes","oldest","age":[10 counts]}]}
 *       By destination: from the shards' aggregates (queue_agg.h), rows
 *       counted per (message part, domain), largest first, the first N
 *       (all by default); oldest exact for the rows shown when they are at
 *       most 200, else the start of its 5-minute slot. By sender domain:
 *       one read of every message (O(messages)), "active", "deferred" and
 *       "held" as for destinations.
 *   queue stat
 *       {"messages","untried","held","parts","bytes","domains"}
 *       (qmail-qstat: "messages in queue", and "not yet tried")
 *   queue show ID [--body]
 *       {"id","arrival","expiry","size","sender","envid","client_name",
 *        "client_addr","helo","sasl_method","sasl_username","hold_reason",
 *        "held","active","attempts","last_error","prior_attempts",
 *        "prior_error","due","shards":[...],
 *        "recipients":[{"addr","orcpt","state","attempts","last_attempt",
 *        "dsn","reply","shard"}], "history":[{"time","rcpt","state","reply"}],
 *        "headers":"...", "body":"..." (--body)}
 *   hold ID...|--domain D|--all, release (same), delete (same)
 *       {"hold"|"release"|"delete":{"messages":N,"not_found":[IDs]}}
 *       every part of each message; hold gives the reason "held by the
 *       operator" (hold --user NAME --reason TEXT: that one, to the user's
 *       mail not held yet: `user suspend`); release makes it due now and
 *       clears the reason (release --user NAME --held-for TEXT: the user's
 *       held mail whose reason has TEXT in it: `user resume`); delete
 *       sends no DSN (postsuper -d) and logs "ID: removed" in the mail log.
 */
#ifndef SLUICE_QUEUE_CMD_H
#define SLUICE_QUEUE_CMD_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct queue;
struct qcmd;

#define QCMD_USAGE (-2)		/* the words do not fit: answer with the usage */
#define QCMD_WAIT_MAX 32	/* requests waiting at once */
#define LIST_SCAN_BUDGET 20000	/* records read by one `queue list` request */

typedef void (*qcmd_done_fn)(void *user, bool ok, json_t *value);

/* Start the thread. NULL with err filled. */
struct qcmd *qcmd_start(struct queue *q, char *err, size_t errlen);
/* Finish the request in progress, answer the waiting ones with an error,
 * join the thread and free w (NULL: nothing). */
void qcmd_stop(struct qcmd *w);

/* True when (cmd, sub) is one of this module's. */
bool qcmd_handles(const char *cmd, const char *sub);

/*
 * Parse and queue a request (the argc words after cmd and sub); done is
 * called once, later, from the thread. 0; QCMD_USAGE; or -1 with err (a
 * bad argument, too many waiting, no memory): done is not called then.
 */
int qcmd_submit(struct qcmd *w, const char *cmd, const char *sub, int argc, char **argv,
		qcmd_done_fn done, void *user, char *err, size_t errlen);

/* "30", "30s", "5m", "2h", "1d" as seconds: 0, or -1. */
int qcmd_duration(const char *s, unsigned long long *secs);

#endif
