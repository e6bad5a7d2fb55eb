/*
 * ask.h - a worker lcore asks the control plane, and gets the answer later.
 *
 * Some things an SMTP session wants are the control plane's to do: the
 * client's verified reverse name for the Received header (DNS lives on the
 * control-plane thread), the queue run an ETRN asks for (the scheduler's),
 * a line for the mail log (control/maillog.h: lcores never log).
 * An lcore never waits for them: it takes a slot from its port (a fixed
 * pool, lcore-owned free list), fills it in and posts it; the control-plane
 * thread takes it, works on it, writes the answer into the same slot and
 * posts it back; the lcore picks answers up in its poll and returns the slot.
 *
 *   lcore k:  ask_get -> fill -> ask_post ----to_plane ring----> control plane:
 *             ask_answers <----------to_lcore ring----------- ask_take, ask_answer
 *             ask_put
 *
 * Both rings are SP/SC and as large as the pool, so they never fill. No
 * locks, no syscalls, no heap on the lcore side. Who asked is named by the
 * asker's own (slot, generation) pair, so an answer for a session that has
 * ended since is recognised and dropped. The slot count bounds what can be
 * outstanding: with none free the lcore simply does without (unknown
 * reverse name, 458 to ETRN).
 */
#ifndef SLUICE_ASK_H
#define SLUICE_ASK_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_byteorder.h>

#include "common/stats.h"
#include "dataplane/net/net_addr.h"

/* A question's or answer's text: the longest mail log line (ASK_MAILLOG)
 * fits whole, smtp_service.c's NOQUEUE line at its bounds (1,656 octets,
 * asserted there). */
#define ASK_TEXT_MAX 1664

enum ask_kind {
	ASK_RDNS = 1,	/* ip (either family) -> text: the verified reverse
			 * name, "" if none */
	ASK_ETRN,	/* text: a domain to flush -> status: messages started, or -1 */
	ASK_MAILLOG,	/* text: a line for the mail log (a reject) -> nothing owed */
	ASK_AUTH,	/* text: "name\0password\0" -> status: enum auth_answer
			 * (control/auth_worker.h), text wiped */
};

struct ask {
	uint8_t kind;		/* enum ask_kind */
	uint32_t who;		/* the asker's slot (e.g. an SMTP connection) */
	uint32_t gen;		/* ... and its generation */
	struct net_addr ip;	/* ASK_RDNS */
	int status;		/* the answer's */
	char text[ASK_TEXT_MAX];	/* the question's or the answer's text */
	struct ask *next_free;	/* lcore side only */
};

#define ASK_STATS(X) X(asked) X(no_slot) X(answered)
struct ask_stats { ASK_STATS(STATS_FIELD) };
extern const char *const ask_stat_names[];
extern const unsigned ask_stat_count;

struct ask_port;

/* Start-up (heap): a port with nslots slots. NULL on failure. */
struct ask_port *ask_port_create(unsigned nslots);
/* Free it; any thread, once neither side uses it any more. */
void ask_port_free(struct ask_port *p);

/* ---- the lcore's side ---- */
/* A free slot, or NULL (counted in no_slot). */
struct ask *ask_get(struct ask_port *p);
/* Hand it to the control plane (never fails: the ring holds every slot). */
void ask_post(struct ask_port *p, struct ask *a);
/* Up to max answers (each to be given back with ask_put). */
unsigned ask_answers(struct ask_port *p, struct ask **out, unsigned max);
void ask_put(struct ask_port *p, struct ask *a);
/* More than half the slots are free: room for what can be dropped (a log
 * line for a refusal a flood may repeat) without starving questions. */
bool ask_spare(const struct ask_port *p);
const struct ask_stats *ask_port_stats(const struct ask_port *p);

/* ---- the control plane's side ---- */
/* Up to max questions. */
unsigned ask_take(struct ask_port *p, struct ask **out, unsigned max);
/* Send the answer back (fill a->status / a->text first). */
void ask_answer(struct ask_port *p, struct ask *a);

#endif
