/*
 * transfer_state.h - a transfer to another box that outlives a restart.
 *
 * `sluicectl transfer --to HOST[:PORT]` writes the file DIR/transfer (DIR:
 * [queue] dir, beside the drain flag, drain_state.h) holding where it goes
 * and whether held mail goes too, one line:
 *
 *     ADDRESS PORT held|unheld
 *
 * (ADDRESS: an IPv4 address, or an IPv6 one without brackets)
 *
 * `transfer --cancel` removes it. sluiced reads it when the scheduler
 * starts: a box killed or restarted in the middle of a transfer (drained:
 * the drain survives too) goes on with it, as the operator left it, and
 * says so in the log. Written atomically (common/atomic_file.h): a crash
 * leaves the old state or the new one, never a torn file.
 */
#ifndef SLUICE_TRANSFER_STATE_H
#define SLUICE_TRANSFER_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dataplane/net/net_addr.h"

#define TRANSFER_STATE_FILE "transfer"

struct transfer_state {
	struct net_addr addr;	/* the other box, either family; never zero */
	uint16_t port;		/* never 0 */
	bool include_held;
};

/* transfer --to's HOST[:PORT]: an IPv4 address, "[IPv4]", "[IPv6]" or
 * "[IPv6:IPv6]", each with an optional ":PORT" (25 without), or a bare IPv6
 * address (no port: its colons are its own). The address is never the
 * unspecified one, the port never 0. 0, or -1 with err. */
int transfer_dest_parse(const char *text, struct net_addr *to, uint16_t *port, char *err,
			size_t errlen);

/* Record a transfer now on (t), or its end (t NULL). 0, or -1 with err. */
int transfer_state_save(const char *dir, const struct transfer_state *t, char *err,
			size_t errlen);
/* 1 a transfer was on (*t filled), 0 none, -1 with err (the file is there
 * but unreadable or malformed: the caller starts no transfer and says so;
 * the operator gives `transfer --to` again). */
int transfer_state_load(const char *dir, struct transfer_state *t, char *err, size_t errlen);

#endif
