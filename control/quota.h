/*
 * quota.h - outbound abuse control: daily quotas per submission user and
 * per trusted client address, and the operator's suspension of a user.
 *
 * The scheduler asks once per message, when it first claims the message
 * (the same moment the message enters the mail log, sched.c), with the
 * identity the message came with (queue record: sasl_username, client
 * address). The message counts against one key's day:
 *   - the user it authenticated as (SMTP AUTH), when it did;
 *   - else its client address, when that is in the trusted networks
 *     ([smtp] mynetworks: unauthenticated relaying);
 *   - else nothing (mail from the world to our relay_domains is not
 *     outbound mail and has no quota).
 * A message that takes its key over the day's limit of messages or of
 * recipients is HELD (not refused: it was accepted already; not dropped):
 * the operator sees it with its reason in `queue list --held` and may
 * release it. Held messages count too (they were submitted). A key with
 * no limit (0 messages and 0 recipients) is not counted at all: with the
 * quotas off (the default) accounting writes nothing. A suspended user's
 * messages are held whatever the count, with their own reason, so that
 * `user resume` can release exactly those.
 *
 * Days are UTC days of the time the caller passes (the scheduler's
 * injected clock): a key's count starts again at 00:00 UTC.
 *
 * Storage: one LMDB environment (its own, beside the queue's shards in
 * [queue] dir/quota), so counts and suspensions survive a restart and the
 * counting of a pass costs one commit. Keys:
 *   'u' name  -> day(8) messages(4) recipients(4)   a user's day
 *   'c' addr  -> day(8) messages(4) recipients(4)   a client address's day
 *   's' name  -> since(8)                            a suspended user
 *   'm' id(8) -> day(8) verdict(1) reason            the decision on a message
 *                                                    spanning shards (its other
 *                                                    parts follow it, uncounted);
 *                                                    dropped after two days
 * Integers big-endian. Limits come from the configuration ([quota]) and an
 * overrides map (quota_map_parse), swapped in whole by quota_policy_set.
 *
 * Threads: the scheduler's thread counts (quota_batch_begin / account /
 * commit); any thread may suspend, resume and read (their own short
 * transactions; LMDB serialises writers). The policy is behind a mutex
 * (never on the packet path: the lcores never call this module).
 */
#ifndef SLUICE_QUOTA_H
#define SLUICE_QUOTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/stats.h"

#define QUOTA_NAME_MAX 64		/* a user name (USERS_NAME_MAX) or an address */
#define QUOTA_MAP_MAX 200000u		/* overrides in the map */
#define QUOTA_MAP_FILE_MAX (16u << 20)
#define QUOTA_WHY_MAX 200		/* a hold reason */
#define QUOTA_SUSPENDED_PREFIX "suspended:"	/* every suspension's reason starts so */

/* One day's allowance; 0: no limit. */
struct quota_limit {
	uint32_t messages, recipients;
};

/* An override: a user name, or a client address ("[198.18.0.7]"). */
struct quota_override {
	char name[QUOTA_NAME_MAX + 3];
	struct quota_limit lim;
};

struct quota_map {
	unsigned n;
	struct quota_override *e;	/* heap, sorted by name */
};

/*
 * The overrides map: one line per user or client address,
 *     NAME MESSAGES RECIPIENTS
 * NAME a user name as in the users file, or a client's IPv4 address in
 * brackets ("[198.18.0.7]"); MESSAGES and RECIPIENTS per day, 0 for no
 * limit. '#' comments and blank lines ignored; a name at most once.
 * 0, or -1 with err "name:line: why" and m empty.
 */
int quota_map_parse(struct quota_map *m, const char *text, const char *name, char *err,
		    size_t n);
/* Read and parse a file (at most QUOTA_MAP_FILE_MAX). */
int quota_map_load(struct quota_map *m, const char *path, char *err, size_t n);
void quota_map_free(struct quota_map *m);

struct quota;

#define QUOTA_STATS(X) \
	X(counted) X(uncounted) X(held_quota) X(held_suspended) X(followed) X(errors)
/* counted: messages counted against a key's day; uncounted: no key (not
 * outbound) or a key without limit; held_*: verdicts; followed: parts of
 * a message spanning shards that took its first part's decision. */
struct quota_stats { QUOTA_STATS(STATS_FIELD) };
extern const char *const quota_stat_names[];
extern const unsigned quota_stat_count;

/* Open (creating dir if needed). NULL with err. */
struct quota *quota_open(const char *dir, char *err, size_t n);
void quota_close(struct quota *q);

/*
 * The limits in force: the defaults per user and per client, the trusted
 * networks (an smtp_policy mynetworks list) and the overrides (map, taken
 * over: freed by the module; may be NULL). 0, or -1 with err (a bad
 * network list; nothing changes).
 */
int quota_policy_set(struct quota *q, const struct quota_limit *user,
		     const struct quota_limit *client, const char *mynetworks,
		     struct quota_map *map, char *err, size_t n);

enum quota_verdict { QUOTA_PASS = 0, QUOTA_HOLD = 1 };

/* Counting: one write transaction around the accounts of a pass. */
int quota_batch_begin(struct quota *q);
/* Commit it: 0, or -1 (logged; the counts of the batch are lost). */
int quota_batch_commit(struct quota *q);

/*
 * A message at its first claim: count it (see the top) and say whether it
 * is to be held, and why (why: QUOTA_WHY_MAX + 1 bytes, "" on a pass).
 * multi: the message spans shards (its decision is kept for its other
 * parts, which are then not counted again). Inside a batch. An error of
 * the store passes the message (logged, counted in errors): a broken
 * counter must not stop mail.
 */
enum quota_verdict quota_account(struct quota *q, uint64_t now, uint64_t id, bool multi,
				 const char *user, const char *client_addr, unsigned nrcpt,
				 char *why);

/* Suspend (on) or resume a user, durably. 1 changed, 0 already so, -1 error. */
int quota_suspend(struct quota *q, const char *user, bool on, uint64_t now, char *err,
		  size_t n);
/* Is the user suspended? (since: when, may be NULL) */
bool quota_is_suspended(struct quota *q, const char *user, uint64_t *since);

/* A key's day as of now: what it sent today and its limit. */
struct quota_usage {
	uint32_t messages, recipients;
	struct quota_limit lim;
	bool suspended;
};
/* user: a user name; else client_addr. 0, or -1 on a store error. */
int quota_usage_get(struct quota *q, uint64_t now, const char *user, const char *client_addr,
		    struct quota_usage *out);

void quota_stats_get(struct quota *q, struct quota_stats *out);

/*
 * Quotas across a cluster (control/cluster.h): set, fn is called by
 * quota_account for every message it counts, on the scheduler's thread,
 * with the key (kind 'u' user or 'c' client, name), the UTC day and this
 * box's counts of that day now; it returns what the other boxes counted
 * that day as last known (0 when unknown), and the limits apply to the
 * sum. fn must not block on the network. NULL: this box's counts alone.
 */
typedef void (*quota_elsewhere_fn)(void *user, char kind, const char *name, uint64_t day,
				   uint32_t msgs_here, uint32_t rcpts_here, uint32_t *msgs_else,
				   uint32_t *rcpts_else);
void quota_set_elsewhere(struct quota *q, quota_elsewhere_fn fn, void *user);

#endif
