/*
 * maillog.c - the mail log's sinks: a file, the syslog socket, or sluiced's
 * own log. See maillog.h.
 */
#include "control/maillog.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

#define ML_LINE_MAX 2048
#define SYSLOG_MAIL_INFO ((2 << 3) | 6)	/* facility mail (2), severity info (6) */

static const char *const prog_name[] = { "smtpd", "qmgr", "smtp", "bounce", "postsuper" };

/* Set by maillog_open before the threads that log start; read-only after
 * (as log.c's configuration). */
static struct {
	enum { ML_OWN, ML_FILE, ML_SYSLOG } kind;
	int fd;
	char host[64];
	char path[PATH_MAX];	/* ML_FILE: its name, for maillog_reopen */
	atomic_uint_fast64_t lost;
} ml = { ML_OWN, -1, "", "", 0 };

int maillog_open(const char *where, const char *host, char *err, unsigned long errlen)
{
	maillog_close();
	snprintf(ml.host, sizeof(ml.host), "%s", host && host[0] ? host : "localhost");
	ml.host[strcspn(ml.host, " ")] = '\0';
	if (!where || !where[0])
		return 0;
	if (strcmp(where, "syslog") == 0 || strncmp(where, "syslog:", 7) == 0) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = "/dev/log" };
		const char *path = where[6] == ':' ? where + 7 : "/dev/log";
		if (strlen(path) >= sizeof(sa.sun_path)) {
			snprintf(err, errlen, "mail log: syslog socket path too long: %s", path);
			return -1;
		}
		memcpy(sa.sun_path, path, strlen(path) + 1);
		ml.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (ml.fd < 0 || connect(ml.fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			snprintf(err, errlen, "mail log: syslog socket %s: %s", path, strerror(errno));
			if (ml.fd >= 0)
				close(ml.fd);
			ml.fd = -1;
			return -1;
		}
		ml.kind = ML_SYSLOG;
		return 0;
	}
	if (strlen(where) >= sizeof(ml.path)) {
		snprintf(err, errlen, "mail log: path too long: %s", where);
		return -1;
	}
	ml.fd = open(where, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (ml.fd < 0) {
		snprintf(err, errlen, "mail log: %s: %s", where, strerror(errno));
		return -1;
	}
	memcpy(ml.path, where, strlen(where) + 1);
	ml.kind = ML_FILE;
	return 0;
}

int maillog_reopen(char *err, unsigned long errlen)
{
	int fd;

	if (ml.kind != ML_FILE)
		return 0;
	fd = open(ml.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0) {
		snprintf(err, errlen, "mail log: reopen %s: %s", ml.path, strerror(errno));
		return -1;
	}
	/* dup3 keeps O_CLOEXEC on the descriptor the writers use */
	if (dup3(fd, ml.fd, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "mail log: reopen %s: %s", ml.path, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

void maillog_close(void)
{
	if (ml.fd >= 0)
		close(ml.fd);
	ml.fd = -1;
	ml.kind = ML_OWN;
}

uint64_t maillog_lost(void)
{
	return atomic_load(&ml.lost);
}

void maillog(enum maillog_prog prog, const char *fmt, ...)
{
	char line[ML_LINE_MAX], stamp[32];
	struct tm tm;
	time_t now;
	va_list ap;
	int n, h;
	ssize_t w;

	va_start(ap, fmt);
	if (ml.kind == ML_OWN) {
		log_vmsg(LOG_LVL_INFO, fmt, ap);
		va_end(ap);
		return;
	}
	now = time(NULL);
	localtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm);
	if (ml.kind == ML_SYSLOG)
		h = snprintf(line, sizeof(line), "<%d>%s sluice/%s[%d]: ", SYSLOG_MAIL_INFO, stamp,
			     prog_name[prog], (int)getpid());
	else
		h = snprintf(line, sizeof(line), "%s %s sluice/%s[%d]: ", stamp, ml.host,
			     prog_name[prog], (int)getpid());
	n = vsnprintf(line + h, sizeof(line) - (size_t)h - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(line) - (size_t)h - 1)
		n = (int)(sizeof(line) - (size_t)h - 2);
	n += h;
	for (int i = h; i < n; i++)	/* one line: no control characters from afar */
		if ((unsigned char)line[i] < 0x20)
			line[i] = ' ';
	if (ml.kind == ML_FILE)
		line[n++] = '\n';
	w = ml.kind == ML_FILE ? write(ml.fd, line, (size_t)n) :
				 send(ml.fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (w != n)
		atomic_fetch_add(&ml.lost, 1);
}
