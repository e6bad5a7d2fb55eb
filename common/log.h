/*
 * log.h - one line per event, to stderr and optionally syslog.
 *
 * Every process of Sluice logs through this module. A line is built in a
 * bounded stack buffer and written with a single write(2), so lines from
 * several threads never interleave. The level and sinks are set once by
 * log_init() before any thread starts and only read afterwards.
 *
 * Message lines about a queued message start with its queue ID, as Postfix
 * does ("ID: to=<...>, status=sent (...)"), so operators' log tools work.
 */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include <stdarg.h>
#include <stdbool.h>

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

/* Parse "err|warn|notice|info|debug"; returns -1 on an unknown name. */
int log_level_parse(const char *name);
const char *log_level_name(enum log_level level);

/* True when a message at this level would be written (cheap check for hot paths). */
bool log_enabled(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap);

#define log_err(...)    log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...)   log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_LVL_NOTICE, __VA_ARGS__)
#define log_info(...)   log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)  do { if (log_enabled(LOG_LVL_DEBUG)) \
				log_msg(LOG_LVL_DEBUG, __VA_ARGS__); } while (0)

#endif
