/*
 * client_limits.h - per-client rate limits shared by every lcore, in the
 * shape of Postfix's anvil: connections, messages (MAIL commands) and
 * recipients (RCPT commands) per window, per client address and per
 * authenticated user, and failed AUTHs per client address.
 *
 * The data structure. One table for the whole appliance, written by every
 * worker lcore without a lock:
 *
 *   cell[CL_WIDTH][CL_KINDS]   _Atomic uint64_t, a GCRA state each
 *
 * A key (an IPv4 address, an IPv6 client's /64, or a user name) is hashed
 * (64 bits, each kind of key in its own domain: no IPv6 prefix can be
 * chosen to land on a given IPv4 address's key) and mapped,
 * with a seed (secret, random at start-up: a client cannot aim at another's
 * bucket), to one bucket, which holds one cell per kind of event. A cell
 * is a GCRA state (control/rate.h's algorithm): the theoretical arrival
 * time (TAT, in the lcores' clock) of the stream of events that landed in
 * it. With a limit of L events per window W, T = W / L, an event at `now`
 * moves TAT to max(TAT, now) + T and is allowed while that is no more than
 * L*T ahead of now: L events at once from idle, then one every T; idle
 * time refills the allowance at the same pace. The level of a cell,
 * ceil((TAT - now) / T), is the number of events it holds now (at most L).
 *
 * Exact under concurrency: the check and the advance are one
 * compare-and-swap on the one cell, so two lcores can never both take a
 * key's last event. A refused event changes nothing: a client that keeps
 * knocking gets exactly one more every T. Keys that share a bucket add up,
 * so a key can only be over-estimated (never let through over its limit),
 * and an innocent client is limited early only when it shares its bucket
 * with a busy one: with H clients at their limits, one in CL_WIDTH / H.
 * (A count-min sketch of several rows would make that rarer, but the
 * smaller of several rows cannot be taken with one compare-and-swap: two
 * lcores each took the last event from a different row, one round in
 * seven of test_client_limits' two-thread test.) Idle cells need no
 * cleaning (a TAT in the past is an empty bucket), so memory is fixed
 * whatever the number of clients: CL_WIDTH * CL_KINDS * 8 octets (4 MiB),
 * plus the top table below.
 *
 * The top clients (sluicectl clients top). The sketch has no keys, so a
 * small direct-mapped table (CL_TOP slots) remembers who: an event for key
 * K looks at K's slot and takes it over when the occupant's level is lower
 * than K's (heavy hitters stay, idle ones go). A slot is written under its
 * own sequence number (odd while written); a writer that finds it odd or
 * loses the race skips (display only: no lcore ever waits), and a reader
 * that sees it change skips the slot. The reader takes each key's levels
 * from the sketch.
 *
 * Time is the caller's: the lcores' common clock (ns since the dataplane
 * started), read once per poll; tests inject it.
 */
#ifndef SLUICE_CLIENT_LIMITS_H
#define SLUICE_CLIENT_LIMITS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dataplane/smtp/smtp_policy.h"

#define CL_WIDTH      131072	/* buckets */
#define CL_TOP        1024	/* slots of the top-clients table */
#define CL_NAME_MAX   64	/* a user name (= SMTP_AUTH_NAME_MAX) */
#define CL_EXEMPT_MAX 128	/* CIDRs in an exempt list */
#define CL_LIMIT_MAX  1000000u	/* events per window */

enum cl_kind { CL_CONN = 0, CL_MSG, CL_RCPT, CL_AUTHFAIL, CL_KINDS };
extern const char *const cl_kind_names[CL_KINDS];	/* "connections", ... */

/* What a key is: a client address (IPv4, or an IPv6 client's /64: one
 * subscriber's LAN, RFC 6177), or an authenticated user. */
struct cl_key {
	uint64_t hash;			/* cl_key_addr / cl_key_addr6 / cl_key_user */
	uint32_t ip;			/* host order; an IPv4 address key's */
	bool v6;			/* an IPv6 /64 key: net6 */
	uint8_t net6[8];		/* the /64, network order */
	const char *user;		/* the user key's name; NULL: an address */
};

/* The limits in force (a part of the SMTP settings snapshot). */
struct cl_conf {
	uint64_t window_ns;		/* the limits are per this; > 0 */
	uint32_t addr[CL_KINDS];	/* per client address, 0: no limit */
	uint32_t user[CL_KINDS];	/* per user (CONN, MSG, RCPT), 0: no limit */
	unsigned nexempt;		/* clients never limited (IPv4) */
	bool exempt_mynetworks;		/* "mynetworks" was named: IPv6 clients
					 * in mynetworks are exempt too */
	struct smtp_policy_net exempt[CL_EXEMPT_MAX];
};

/* Parse an exempt list: CIDRs or addresses, separated by spaces or commas;
 * the word "mynetworks" stands for the nets of `mynetworks` (may be NULL).
 * 0, or -1 with err filled (c->nexempt is then 0). */
int cl_conf_exempt(struct cl_conf *c, const char *text, const struct smtp_policy *mynetworks,
		   char *err, size_t errlen);
/* ip (host order) is in the exempt list. */
bool cl_exempt(const struct cl_conf *c, uint32_t ip);
/* Any limit set at all. */
bool cl_conf_active(const struct cl_conf *c);

enum cl_top_what { CL_TOP_ADDR = 0, CL_TOP_USER = 1, CL_TOP_NET6 = 2 };

struct cl_top_slot {
	atomic_uint seq;		/* odd: being written */
	_Atomic uint64_t hash;		/* the key's hash; 0: empty */
	atomic_uint ip;
	atomic_uchar what;		/* enum cl_top_what */
	_Atomic uint64_t name[(CL_NAME_MAX + 8) / 8];	/* a user's, NUL-terminated;
							 * CL_TOP_NET6: name[0] the /64 */
};

struct client_limits {
	uint64_t seed;
	_Atomic uint64_t cell[CL_WIDTH][CL_KINDS];
	struct cl_top_slot top[CL_TOP];
};

/* Start-up (heap, zeroed): NULL without memory. The seed should be secret. */
struct client_limits *cl_create(uint64_t seed);
void cl_free(struct client_limits *t);

/* Keys (the hash is seeded by the table's seeds at bucket time). */
struct cl_key cl_key_addr(uint32_t ip);
/* An IPv6 client's key: its /64 (the first 8 octets of ip6, network order). */
struct cl_key cl_key_addr6(const uint8_t ip6[16]);
/* An address key's text, as sluicectl shows it and Redis names it:
 * "192.0.2.1" or "2001:db8:1:2::/64", into buf (>= CL_ADDR_TEXT). */
#define CL_ADDR_TEXT 48
void cl_addr_text(bool v6, uint32_t ip, const uint8_t net6[8], char *buf, size_t len);
struct cl_key cl_key_user(const char *name);

/* One event of `kind` for key at now: 0 allowed (and counted), 1 over the
 * limit (nothing counted). limit 0: always 0, nothing counted. */
int cl_take(struct client_limits *t, const struct cl_key *k, enum cl_kind kind, uint32_t limit,
	    uint64_t window_ns, uint64_t now_ns);
/* Would one more event be refused now? (Nothing counted.) */
bool cl_over(const struct client_limits *t, const struct cl_key *k, enum cl_kind kind,
	     uint32_t limit, uint64_t window_ns, uint64_t now_ns);
/* Count one event whatever the level (a failed AUTH has happened), the
 * bucket capped at full. */
void cl_count(struct client_limits *t, const struct cl_key *k, enum cl_kind kind, uint32_t limit,
	      uint64_t window_ns, uint64_t now_ns);
/* Give back one event taken with cl_take (an AUTH attempt, charged before
 * the check, that succeeded): each cell's TAT moves back by T, not below
 * now. */
void cl_refund(struct client_limits *t, const struct cl_key *k, enum cl_kind kind,
	       uint32_t limit, uint64_t window_ns, uint64_t now_ns);
/* The events key holds now (0..limit; more only if shared). */
uint32_t cl_level(const struct client_limits *t, const struct cl_key *k, enum cl_kind kind,
		  uint32_t limit, uint64_t window_ns, uint64_t now_ns);

/* One row of the top-clients view. */
struct cl_top_entry {
	bool user;			/* name is a user's, else an address: */
	bool v6;			/* ... net6 (a /64), else ip */
	uint8_t net6[8];
	uint32_t ip;
	char name[CL_NAME_MAX + 1];
	uint32_t level[CL_KINDS];	/* events in the bucket now, 0 if no limit */
	uint32_t permille;		/* the highest level / limit, in 1/1000 */
};
/* Up to max busiest keys now (any thread; racy reads, skipped when torn),
 * by permille then total level, highest first. The count. */
unsigned cl_top(const struct client_limits *t, const struct cl_conf *c, uint64_t now_ns,
		struct cl_top_entry *out, unsigned max);
/* Buckets not idle now (an under-estimate of the clients tracked:
 * colliding keys count once). Any thread. */
unsigned cl_tracked(const struct client_limits *t, uint64_t now_ns);

#endif
