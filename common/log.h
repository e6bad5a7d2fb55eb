/*
 * log.h - one line per event, to stderr and optionally syslog.
 *
 * Every process of Sluice logs through this module. A line is built in a
 * bounded stack buffer and written with a single write(2), so lines from
 * several threads never interleave. The level and sinks are set once by
 * log_init() before any thread starts and only read afterwards, but for
 * the level, which a reload may change (log_set_level).
 *
 * Message lines about a queued message start with its queue ID, as Postfix
 * does ("ID: to=<...>, status=sent (...)"), so operators' log tools work.
 *
 * Poll-mode lcores must never block, and a write(2) to a slow stderr or a
 * blocking syslog would. A thread that has bound a struct log_ring
 * (log_ring_bind: each worker lcore binds its own) does no system call to
 * log: the line is formatted into the next slot of its ring (a bounded
 * single-producer single-consumer ring; full: the line is dropped and
 * counted) and the main thread writes it out later with log_ring_drain(),
 * prefixed with the ring's id ("lcore 1: ..."). Timestamps are taken when
 * the line is logged (clock_gettime, a vDSO call).
 */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/stats.h"

enum log_level {
	LOG_LVL_ERR = 0,
	LOG_LVL_WARN,
	LOG_LVL_NOTICE,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};

#define LOG_LINE_MAX 1024	/* longer lines are truncated with "..." */

/* Set identity, threshold and sinks. Call once, before threads start. */
void log_init(const char *ident, enum log_level level, bool use_syslog);

/* A reload's new threshold (any thread; lcores see it at their next line),
 * and the one in force. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Parse "err|warn|notice|info|debug"; returns -1 on an unknown name. */
int log_level_parse(const char *name);
const char *log_level_name(enum log_level level);

/* True when a message at this level would be written (cheap check for hot paths). */
bool log_enabled(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap);

/* ---- per-thread log rings (poll-mode lcores) ---- */

#define LOG_RING_SLOTS 256	/* lines waiting per ring (a power of two) */
#define LOG_REC_TEXT   480	/* a queued line's text; longer ones are cut with "..." */

#define LOG_RING_STATS(X) X(lines) X(dropped)
struct log_ring_stats { LOG_RING_STATS(STATS_FIELD) };
extern const char *const log_ring_stat_names[];
extern const unsigned log_ring_stat_count;

struct log_rec {
	uint64_t ns;		/* CLOCK_REALTIME when logged */
	uint8_t level;
	uint16_t len;
	char text[LOG_REC_TEXT];
};

/*
 * One thread's ring. head is written by the producer (the bound thread)
 * only, tail by the consumer (the draining thread) only; stats by the
 * producer (read racily).
 */
struct log_ring {
	_Alignas(64) atomic_uint head;	/* next slot to fill */
	_Alignas(64) atomic_uint tail;	/* next slot to write out */
	uint64_t dropped_told;		/* consumer: drops already reported */
	unsigned id;			/* printed as "lcore <id>: " */
	struct log_ring_stats stats;
	struct log_rec rec[LOG_RING_SLOTS];
};

/* Start-up only (heap). NULL on failure. */
struct log_ring *log_ring_create(unsigned id);
void log_ring_free(struct log_ring *r);
/* From now on the calling thread's lines go into r (NULL: back to direct). */
void log_ring_bind(struct log_ring *r);
/* Write out up to max waiting lines (and a line about drops); any thread,
 * one at a time per ring. Returns the lines written. */
unsigned log_ring_drain(struct log_ring *r, unsigned max);

#define log_err(...)    log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...)   log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_LVL_NOTICE, __VA_ARGS__)
#define log_info(...)   log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)  do { if (log_enabled(LOG_LVL_DEBUG)) \
				log_msg(LOG_LVL_DEBUG, __VA_ARGS__); } while (0)

#endif
