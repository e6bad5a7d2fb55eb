/*
 * queue_id.h - queue IDs: unique for the life of the spool, never reused,
 * printable, sortable by arrival.
 *
 * An ID is a 64-bit counter. At open it starts above both the wall clock in
 * microseconds and the highest ID any shard has reserved; producers then take
 * IDs with one atomic increment (no lock, no system call). Writers keep a
 * reservation ahead of the counter in every shard's meta database, inside
 * their normal commits, so an ID handed out before a crash is never handed
 * out again after it. Printed as 13 Crockford base32 characters, fixed
 * width, so string order is ID order.
 */
#ifndef SLUICE_QUEUE_ID_H
#define SLUICE_QUEUE_ID_H

#include <stdint.h>

/* How far ahead of the counter writers keep the persisted reservation. */
#define QID_RESERVE      (1ull << 22)
/* Renew the reservation when the counter comes closer than this to it. */
#define QID_RESERVE_LOW  (1ull << 21)

/* First ID after an open: above the clock and above every reservation. */
uint64_t qid_first(uint64_t reserved_max, uint64_t now_us);

#endif
