/*
 * log.c - line-at-a-time logging to stderr and syslog. See log.h.
 */
#include "common/log.h"

#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/*
 * Logger settings. Written only by log_init() during start-up, before any
 * worker thread exists; read-only afterwards, so no synchronisation needed.
 */
static struct {
	char ident[32];
	enum log_level level;
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
	log_cfg.level = level;
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
	return level <= log_cfg.level;
}

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	struct timespec ts;
	struct tm tm;
	size_t n;
	int r;

	if (!log_enabled(level))
		return;

	if (log_cfg.use_syslog) {
		va_list ap2;
		va_copy(ap2, ap);
		vsyslog(syslog_prio[level], fmt, ap2);
		va_end(ap2);
	}

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	r = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s[%d]: %s: ",
		     ts.tv_nsec / 1000000, log_cfg.ident, (int)getpid(),
		     level_names[level]);
	if (r > 0)
		n += (size_t)r;
	if (n < sizeof(line)) {
		r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		if (r > 0)
			n += (size_t)r;
	}
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

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}
