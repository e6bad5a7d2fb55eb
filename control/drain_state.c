/*
 * drain_state.c - the drain flag on disk, so a restart keeps it. See
 * drain_state.h.
 */
#include "control/drain_state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PATH_MAX_DS 4200

static int path_of(const char *dir, const char *name, char *out, size_t n)
{
	int w = snprintf(out, n, "%s/%s", dir, name);
	return w < 0 || (size_t)w >= n ? -1 : 0;
}

static int sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

int drain_state_save(const char *dir, bool on, uint64_t since_s, char *err, size_t errlen)
{
	char path[PATH_MAX_DS], tmp[PATH_MAX_DS], line[32];
	int fd, len;

	if (path_of(dir, DRAIN_STATE_FILE, path, sizeof(path)) < 0 ||
	    path_of(dir, DRAIN_STATE_FILE ".tmp", tmp, sizeof(tmp)) < 0) {
		snprintf(err, errlen, "%s: path too long", dir);
		return -1;
	}
	if (!on) {
		if (unlink(path) < 0 && errno != ENOENT) {
			snprintf(err, errlen, "unlink %s: %s", path, strerror(errno));
			return -1;
		}
		if (sync_dir(dir) < 0) {
			snprintf(err, errlen, "fsync %s: %s", dir, strerror(errno));
			return -1;
		}
		return 0;
	}
	len = snprintf(line, sizeof(line), "%llu\n", (unsigned long long)since_s);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0) {
		snprintf(err, errlen, "open %s: %s", tmp, strerror(errno));
		return -1;
	}
	if (write(fd, line, (size_t)len) != len || fsync(fd) < 0) {
		snprintf(err, errlen, "write %s: %s", tmp, strerror(errno ? errno : EIO));
		close(fd);
		unlink(tmp);
		return -1;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0 || sync_dir(dir) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

int drain_state_load(const char *dir, uint64_t *since_s, char *err, size_t errlen)
{
	char path[PATH_MAX_DS], line[32];
	ssize_t n;
	int fd;

	*since_s = 0;
	if (path_of(dir, DRAIN_STATE_FILE, path, sizeof(path)) < 0) {
		snprintf(err, errlen, "%s: path too long", dir);
		return -1;
	}
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
	*since_s = strtoull(line, NULL, 10);
	return 1;
}
