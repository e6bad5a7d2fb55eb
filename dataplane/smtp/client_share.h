/*
 * client_share.h - per-client and per-user message rates held across the
 * boxes of a cluster (issue 19), without an lcore ever talking to Redis.
 *
 * The design: each box keeps its local share of a key's limit, and Redis
 * tops it up.
 *  - An lcore takes a message for key K (a client address, or an AUTH
 *    user) from its own GCRA table (client_limits.h) with the limit divided
 *    by the cluster's size: share = ceil(limit / boxes). Those cells cost
 *    nothing remote; they are counted in K's slot here (spent, an atomic
 *    counter) and charged to Redis afterwards.
 *  - When the share is used up, the lcore takes a cell granted by Redis
 *    (grant, in K's slot, decremented with a compare-and-swap); when there
 *    is none it refuses (452, as a local limit would) and flags the slot
 *    (want).
 *  - The cluster thread (control/cluster.c), once a round (50 ms), reads
 *    every slot: it charges what was spent to K's GCRA in Redis and, for a
 *    flagged slot, asks for a batch of cells (a fifth of a second's worth
 *    of the limit, at least 1), all in one Lua script per key, pipelined
 *    with the rest of the round: one round trip per round however many
 *    messages and keys.
 * So Redis's GCRA sees every message of K on every box (the spent ones a
 * round late), a client sending through n boxes at once gets the limit in
 * total (each box's share adds up to it, and Redis, charged with the
 * shares, has nothing left to grant), and one sending through a single box
 * gets its whole limit (its share, then Redis's grants). The error: what
 * the other boxes spent in the last round before Redis was charged with it
 * (a few cells, once: a grant taken against a stale state pushes Redis's
 * TAT past the burst, which the charges then keep there).
 *
 * Redis unreachable (connected false): no grants come, each box holds K to
 * its share: the local limit divided by the last known cluster size, as
 * destinations fall back. Not in a cluster (active false): the plain local
 * limit, as before.
 *
 * The table: CS_SLOTS slots, open addressing (CS_PROBE probes) by the key's
 * hash; a slot is claimed by an lcore with a compare-and-swap on its hash,
 * then its text and limit are written and `ready` stored (release). Only
 * the cluster thread frees a slot (idle for two windows and at least 10 s,
 * nothing left to charge). A key that finds no slot (the table full of
 * busy keys) is held to its share alone and not charged (counted:
 * slots_full); an increment racing with the freeing of its slot is lost
 * (one cell). Memory: CS_SLOTS * 152 octets (about 600 KiB).
 *
 * Threads: cs_take / cs_over from any lcore (lock-free, no syscalls, no
 * allocation); the cs_* reader functions from the cluster thread alone.
 */
#ifndef SLUICE_CLIENT_SHARE_H
#define SLUICE_CLIENT_SHARE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "dataplane/smtp/client_limits.h"

#define CS_SLOTS 4096
#define CS_PROBE 8
#define CS_KEY_MAX (CL_NAME_MAX + 48)	/* "a:" address or "u:" user name, NUL */

struct cs_slot {
	_Atomic uint64_t hash;		/* the key's (never 0); 0: free */
	atomic_uint ready;		/* key, limit and window written */
	atomic_uint spent;		/* cells taken from the local share (wraps) */
	atomic_int grant;		/* cells granted by Redis, not spent */
	atomic_uint want;		/* refused for want of a cell: ask Redis */
	atomic_uint limit;		/* the key's limit per window (the cluster's) */
	_Atomic uint64_t window_ns;
	char key[CS_KEY_MAX];		/* as Redis names it */
};

struct client_share {
	atomic_bool active;		/* a cluster runs: the limits are shared */
	atomic_bool connected;		/* it reaches Redis: grants may come */
	atomic_uint boxes;		/* the cluster's size, >= 1 */
	_Atomic uint64_t slots_full;	/* keys that found no slot */
	_Atomic uint64_t granted_taken;	/* messages let through on a Redis grant */
	struct cs_slot slot[CS_SLOTS];
};

/* Zeroed, inactive, boxes 1; NULL without memory. */
struct client_share *cs_create(void);
void cs_free(struct client_share *cs);

/* The local share of limit: ceil(limit / boxes), at least 1. */
uint32_t cs_share(const struct client_share *cs, uint32_t limit);

/*
 * One message for key k (text: its name in Redis, e.g. "a:192.0.2.1" or
 * "u:alice") against limit per window_ns: as cl_take (0 allowed and
 * counted, 1 refused, nothing counted), but across the cluster when cs is
 * active: the local share from t, then a Redis grant. cs NULL or inactive,
 * or limit 0: cl_take itself.
 */
int cs_take(struct client_share *cs, struct client_limits *t, const struct cl_key *k,
	    const char *text, enum cl_kind kind, uint32_t limit, uint64_t window_ns,
	    uint64_t now_ns);
/* Would cs_take refuse now? (Nothing counted; a refusal flags the slot.) */
bool cs_over(struct client_share *cs, struct client_limits *t, const struct cl_key *k,
	     const char *text, enum cl_kind kind, uint32_t limit, uint64_t window_ns,
	     uint64_t now_ns);

/* ---- the cluster thread's side ---- */

/* What a slot has for Redis this round. */
struct cs_report {
	unsigned idx;
	uint32_t charge;		/* cells spent locally since the last report */
	bool want;			/* cells wanted */
	uint32_t limit;
	uint64_t window_ns;
	char key[CS_KEY_MAX];
};
/* The reader's private memory of the slots (cs_reader_new). */
struct cs_reader;
struct cs_reader *cs_reader_new(void);
void cs_reader_free(struct cs_reader *r);
/* Fill out with the slots that have something for Redis (at most max);
 * free the idle ones; drop grants older than keep_ns. mono_ns: the
 * reader's clock. Returns the count; *dropped += the grants dropped. */
unsigned cs_collect(struct client_share *cs, struct cs_reader *r, struct cs_report *out,
		    unsigned max, uint64_t mono_ns, uint64_t keep_ns, uint64_t *dropped);
/* Redis granted n cells to slot idx (for key, as reported). */
void cs_grant(struct client_share *cs, struct cs_reader *r, unsigned idx, const char *key,
	      uint32_t n, uint64_t mono_ns);

#endif
