/*
 * atomic_file.c - replace a file by write, fsync, rename, fsync of the
 * directory. See atomic_file.h for the contract.
 */
#include "common/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Says "STEP FILE: reason" in err, keeping errno for the caller. */
static int fail(const char *step, const char *file, char *err, size_t errlen)
{
	int e = errno ? errno : EIO;

	snprintf(err, errlen, "%s %s: %s", step, file, strerror(e));
	errno = e;
	return -1;
}

/* Writes all LEN octets (a short write is retried; no progress is EIO). */
static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			return -1;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* fsyncs the directory that holds PATH ("." for a bare name). */
static int sync_dir_of(const char *path, char *err, size_t errlen)
{
	char dir[ATOMIC_FILE_PATH_MAX + 1];
	const char *slash = strrchr(path, '/');
	int fd, rc;

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return fail("open", dir, err, errlen);
	rc = fsync(fd);
	if (rc < 0) {
		fail("fsync", dir, err, errlen);
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* Writes DATA to the open temporary file fd with its mode and owner. */
static int fill(int fd, const char *tmp, const void *data, size_t len,
		const struct atomic_file_attr *attr, char *err, size_t errlen)
{
	if (fchmod(fd, attr->mode & 07777) < 0)
		return fail("fchmod", tmp, err, errlen);
	if (attr->chown && fchown(fd, attr->uid, attr->gid) < 0 && errno != EPERM)
		return fail("fchown", tmp, err, errlen);
	if (write_all(fd, data, len) < 0)
		return fail("write", tmp, err, errlen);
	if (fsync(fd) < 0)
		return fail("fsync", tmp, err, errlen);
	return 0;
}

int atomic_file_write(const char *path, const void *data, size_t len,
		      const struct atomic_file_attr *attr, char *err, size_t errlen)
{
	char tmp[ATOMIC_FILE_PATH_MAX + 8];
	int fd, w, e;

	w = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (w < 0 || strlen(path) > ATOMIC_FILE_PATH_MAX) {
		snprintf(err, errlen, "%.64s...: path too long", path);
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, attr->mode & 07777);
	if (fd < 0)
		return fail("open", tmp, err, errlen);
	if (fill(fd, tmp, data, len, attr, err, errlen) < 0) {
		e = errno;
		close(fd);
		unlink(tmp);
		errno = e;
		return -1;
	}
	if (close(fd) < 0) {
		fail("close", tmp, err, errlen);
		e = errno;
		unlink(tmp);
		errno = e;
		return -1;
	}
	if (rename(tmp, path) < 0) {
		fail("rename", tmp, err, errlen);
		e = errno;
		unlink(tmp);
		errno = e;
		return -1;
	}
	return sync_dir_of(path, err, errlen);
}

int atomic_file_remove(const char *path, char *err, size_t errlen)
{
	if (strlen(path) > ATOMIC_FILE_PATH_MAX) {
		snprintf(err, errlen, "%.64s...: path too long", path);
		errno = ENAMETOOLONG;
		return -1;
	}
	if (unlink(path) < 0 && errno != ENOENT)
		return fail("unlink", path, err, errlen);
	return sync_dir_of(path, err, errlen);
}

int atomic_file_read(const char *path, char *buf, size_t cap, size_t *len, char *err,
		     size_t errlen)
{
	size_t got = 0;
	int fd;

	*len = 0;
	if (cap)
		buf[0] = '\0';
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return fail("open", path, err, errlen);
	}
	for (;;) {	/* to the end, or one octet past what buf may hold */
		ssize_t r = cap > got ? read(fd, buf + got, cap - got) : 0;
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fail("read", path, err, errlen);
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	if (cap == 0 || got > cap - 1) {
		snprintf(err, errlen, "%s: longer than %zu octets", path, cap ? cap - 1 : 0);
		if (cap)
			buf[0] = '\0';
		return -1;
	}
	buf[got] = '\0';
	*len = got;
	return 1;
}
