/*
 * log.c - line-at-a-time logging to stderr and syslog, directly or through
 * a thread's log ring. See log.h.
 */
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/*
 * Logger settings. Written only by log_init() during start-up, before any
 * worker thread exists; read-only afterwards, so no synchronisation needed,
 * except the level, which a reload may change (log_set_level): an atomic
 * read relaxed (a line or two at the old level is harmless).
 */
static struct {
	char ident[32];
	_Atomic int level;
	bool use_syslog;
} log_cfg = { "sluice", LOG_LVL_INFO, false };

static const char *const level_names[] = {
	[LOG_LVL_ERR] = "err",	   [LOG_LVL_WARN] = "warn",
	[LOG_LVL_NOTICE] = "notice", [LOG_LVL_INFO] = "info",
	[LOG_LVL_DEBUG] = "debug",
};

static const int syslog_prio[] = {
	[LOG_LVL_ERR] = LOG_ERR,       [LOG_LVL_WARN] = LOG_WARNING,
	[LOG_LVL_NOTICE] = LOG_NOTICE, [LOG_LVL_INFO] = LOG_INFO,
	[LOG_LVL_DEBUG] = LOG_DEBUG,
};

void log_init(const char *ident, enum log_level level, bool use_syslog)
{
	snprintf(log_cfg.ident, sizeof(log_cfg.ident), "%s", ident ? ident : "sluice");
	atomic_store_explicit(&log_cfg.level, (int)level, memory_order_relaxed);
	log_cfg.use_syslog = use_syslog;
	if (use_syslog)
		openlog(log_cfg.ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

int log_level_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(name, level_names[i]) == 0)
			return (int)i;
	return -1;
}

const char *log_level_name(enum log_level level)
{
	return (unsigned)level <= LOG_LVL_DEBUG ? level_names[level] : "?";
}

bool log_enabled(enum log_level level)
{
	return (int)level <= atomic_load_explicit(&log_cfg.level, memory_order_relaxed);
}

void log_set_level(enum log_level level)
{
	atomic_store_explicit(&log_cfg.level, (int)level, memory_order_relaxed);
}

enum log_level log_get_level(void)
{
	return (enum log_level)atomic_load_explicit(&log_cfg.level, memory_order_relaxed);
}

const char *const log_ring_stat_names[] = { LOG_RING_STATS(STATS_NAME) };
const unsigned log_ring_stat_count = STATS_COUNT(log_ring_stat_names);

/* The ring the calling thread logs into, if it bound one. */
static _Thread_local struct log_ring *bound_ring;

/* Write one finished line: "TIME ident[pid]: level: " prefix body. */
static void emit(enum log_level level, const struct timespec *ts, const char *prefix,
		 const char *body)
{
	char line[LOG_LINE_MAX];
	struct tm tm;
	size_t n;
	int r;

	if (log_cfg.use_syslog)
		syslog(syslog_prio[level], "%s%s", prefix, body);
	gmtime_r(&ts->tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	r = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s[%d]: %s: %s%s",
		     ts->tv_nsec / 1000000, log_cfg.ident, (int)getpid(),
		     level_names[level], prefix, body);
	if (r > 0)
		n += (size_t)r;
	if (n >= sizeof(line) - 1) {	/* truncated: mark it */
		n = sizeof(line) - 1;
		memcpy(line + n - 3, "...", 3);
	}
	line[n++] = '\n';
	/* One write per line: lines from different threads never interleave. */
	if (write(STDERR_FILENO, line, n) < 0) {
		/* Nowhere left to report a failing stderr. */
	}
}

/* Format into the bound ring's next slot: no system call, never blocks. */
static void ring_put(struct log_ring *r, enum log_level level, const char *fmt, va_list ap)
{
	unsigned head = atomic_load_explicit(&r->head, memory_order_relaxed);
	unsigned tail = atomic_load_explicit(&r->tail, memory_order_acquire);
	struct log_rec *rec;
	struct timespec ts;
	int n;

	if (head - tail >= LOG_RING_SLOTS) {
		r->stats.dropped++;
		return;
	}
	rec = &r->rec[head & (LOG_RING_SLOTS - 1)];
	clock_gettime(CLOCK_REALTIME, &ts);
	rec->ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	rec->level = (uint8_t)level;
	n = vsnprintf(rec->text, sizeof(rec->text), fmt, ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(rec->text)) {
		n = sizeof(rec->text) - 1;
		memcpy(rec->text + n - 3, "...", 3);
	}
	rec->len = (uint16_t)n;
	r->stats.lines++;
	atomic_store_explicit(&r->head, head + 1, memory_order_release);
}

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char body[LOG_LINE_MAX];
	struct timespec ts;

	if (!log_enabled(level))
		return;
	if (bound_ring) {
		ring_put(bound_ring, level, fmt, ap);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	vsnprintf(body, sizeof(body), fmt, ap);
	emit(level, &ts, "", body);
}

struct log_ring *log_ring_create(unsigned id)
{
	struct log_ring *r = aligned_alloc(64, (sizeof(*r) + 63) & ~(size_t)63);

	if (!r)
		return NULL;
	memset(r, 0, sizeof(*r));
	atomic_init(&r->head, 0);
	atomic_init(&r->tail, 0);
	r->id = id;
	return r;
}

void log_ring_free(struct log_ring *r)
{
	free(r);
}

void log_ring_bind(struct log_ring *r)
{
	bound_ring = r;
}

unsigned log_ring_drain(struct log_ring *r, unsigned max)
{
	unsigned tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	unsigned head = atomic_load_explicit(&r->head, memory_order_acquire);
	uint64_t dropped = r->stats.dropped;
	char prefix[32];
	unsigned n = 0;

	snprintf(prefix, sizeof(prefix), "lcore %u: ", r->id);
	for (; tail != head && n < max; tail++, n++) {
		const struct log_rec *rec = &r->rec[tail & (LOG_RING_SLOTS - 1)];
		struct timespec ts = { (time_t)(rec->ns / 1000000000ull),
				       (long)(rec->ns % 1000000000ull) };
		emit((enum log_level)rec->level, &ts, prefix, rec->text);
		atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
	}
	if (dropped > r->dropped_told) {
		char body[96];
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		snprintf(body, sizeof(body), "%llu log line(s) dropped: the ring was full",
			 (unsigned long long)(dropped - r->dropped_told));
		emit(LOG_LVL_WARN, &ts, prefix, body);
		r->dropped_told = dropped;
		n++;
	}
	return n;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}
