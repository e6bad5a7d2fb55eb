/*
 * transfer_state.c - the transfer's destination on disk, so a restart goes
 * on with it. See transfer_state.h.
 */
#include "control/transfer_state.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/atomic_file.h"

#define LINE_MAX_TS 64		/* "255.255.255.255 65535 unheld\n" and room */

static int path_of(const char *dir, char *out, size_t n, char *err, size_t errlen)
{
	int w = snprintf(out, n, "%s/%s", dir, TRANSFER_STATE_FILE);

	if (w < 0 || (size_t)w >= n || (size_t)w > ATOMIC_FILE_PATH_MAX) {
		snprintf(err, errlen, "%.64s: path too long", dir);
		return -1;
	}
	return 0;
}

int transfer_state_save(const char *dir, const struct transfer_state *t, char *err,
			size_t errlen)
{
	static const struct atomic_file_attr attr = { .mode = 0640 };
	char path[ATOMIC_FILE_PATH_MAX + 1], line[LINE_MAX_TS], ip[INET_ADDRSTRLEN];
	struct in_addr a;
	int len;

	if (path_of(dir, path, sizeof(path), err, errlen) < 0)
		return -1;
	if (!t)
		return atomic_file_remove(path, err, errlen);
	a.s_addr = t->addr;
	if (!t->addr || !t->port || !inet_ntop(AF_INET, &a, ip, sizeof(ip))) {
		snprintf(err, errlen, "transfer state: no address or port to record");
		return -1;
	}
	len = snprintf(line, sizeof(line), "%s %u %s\n", ip, (unsigned)t->port,
		       t->include_held ? "held" : "unheld");
	return atomic_file_write(path, line, (size_t)len, &attr, err, errlen);
}

/* Parse "a.b.c.d PORT held|unheld" (one line, its newline optional). */
static int parse(const char *line, struct transfer_state *t)
{
	char ip[INET_ADDRSTRLEN], word[8], extra;
	unsigned port;
	struct in_addr a;

	if (sscanf(line, "%15s %5u %7s %c", ip, &port, word, &extra) != 3 ||
	    inet_pton(AF_INET, ip, &a) != 1 || a.s_addr == 0 || port == 0 || port > 65535)
		return -1;
	if (strcmp(word, "held") != 0 && strcmp(word, "unheld") != 0)
		return -1;
	t->addr = a.s_addr;
	t->port = (uint16_t)port;
	t->include_held = word[0] == 'h';
	return 0;
}

int transfer_state_load(const char *dir, struct transfer_state *t, char *err, size_t errlen)
{
	char path[ATOMIC_FILE_PATH_MAX + 1], line[LINE_MAX_TS];
	ssize_t n;
	int fd;

	memset(t, 0, sizeof(*t));
	if (path_of(dir, path, sizeof(path), err, errlen) < 0)
		return -1;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "open %s: %s", path, strerror(errno));
		return -1;
	}
	n = read(fd, line, sizeof(line) - 1);
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "read %s: %s", path, strerror(errno));
		return -1;
	}
	line[n] = '\0';
	if (n == (ssize_t)sizeof(line) - 1 || parse(line, t) < 0) {
		memset(t, 0, sizeof(*t));
		snprintf(err, errlen, "%s: not 'ADDRESS PORT held|unheld'", path);
		return -1;
	}
	return 1;
}
