/*
 * drain_state.c - the drain flag on disk, so a restart keeps it. See
 * drain_state.h.
 */
#include "control/drain_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/atomic_file.h"

#define PATH_MAX_DS 4200

static int path_of(const char *dir, const char *name, char *out, size_t n)
{
	int w = snprintf(out, n, "%s/%s", dir, name);
	return w < 0 || (size_t)w >= n ? -1 : 0;
}

int drain_state_save(const char *dir, bool on, uint64_t since_s, char *err, size_t errlen)
{
	static const struct atomic_file_attr attr = { .mode = 0640 };
	char path[PATH_MAX_DS], line[32];
	int len;

	if (path_of(dir, DRAIN_STATE_FILE, path, sizeof(path)) < 0 ||
	    strlen(path) > ATOMIC_FILE_PATH_MAX) {
		snprintf(err, errlen, "%s: path too long", dir);
		return -1;
	}
	if (!on) {
		return atomic_file_remove(path, err, errlen);
	}
	len = snprintf(line, sizeof(line), "%llu\n", (unsigned long long)since_s);
	return atomic_file_write(path, line, (size_t)len, &attr, err, errlen);
}

int drain_state_load(const char *dir, uint64_t *since_s, char *err, size_t errlen)
{
	char path[PATH_MAX_DS], line[32];
	size_t n;
	int rc;

	*since_s = 0;
	if (path_of(dir, DRAIN_STATE_FILE, path, sizeof(path)) < 0) {
		snprintf(err, errlen, "%s: path too long", dir);
		return -1;
	}
	rc = atomic_file_read(path, line, sizeof(line), &n, err, errlen);
	if (rc <= 0)
		return rc;
	*since_s = strtoull(line, NULL, 10);
	return 1;
}
