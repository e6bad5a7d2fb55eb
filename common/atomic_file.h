/*
 * atomic_file.h - replace a small file so that a crash leaves the old
 * contents or the new, never a torn file.
 *
 * The one way Sluice rewrites a file that must survive a crash or a power
 * cut (the users file, the drain flag, the self-signed key and certificate):
 * write PATH.tmp, fsync it, rename it over PATH, fsync PATH's directory so
 * the rename itself is durable. Control-plane only: it blocks on the disk.
 *
 * Contract of atomic_file_write():
 *   - on success (0) PATH holds exactly the LEN octets of DATA, with the
 *     permission bits attr->mode (set with fchmod, so the umask does not
 *     narrow them) and, when attr->chown, owner attr->uid:attr->gid (a
 *     writer not allowed to give the file away, EPERM, keeps its own);
 *     PATH.tmp is gone;
 *   - on failure (-1) of any step (PATH.tmp too long, open, fchmod, fchown,
 *     write, fsync, close, rename, fsync of the directory) err holds
 *     "STEP FILE: reason" (strerror's text), errno is the step's, and
 *     PATH.tmp is gone. A failure before the rename leaves PATH as it was;
 *     only a failed fsync of the directory comes after it (PATH then has the
 *     new contents, which a power cut may still undo).
 *   - a stale PATH.tmp from an earlier crash is overwritten; two writers of
 *     one PATH at once are the caller's to prevent.
 *
 * atomic_file_remove() is its counterpart: unlink PATH (an absent PATH is
 * no error) and fsync its directory, so the removal outlives a power cut;
 * 0, or -1 with err ("unlink PATH: reason", "fsync DIR: reason").
 *
 * atomic_file_read() reads back a small state file written so: all of it
 * into buf (cap octets, NUL added, so at most cap - 1 of contents), *len
 * its length. 1 read, 0 PATH does not exist, -1 with err ("open PATH:
 * reason", "read PATH: reason", "PATH: longer than N octets").
 */
#ifndef SLUICE_ATOMIC_FILE_H
#define SLUICE_ATOMIC_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The longest PATH accepted (PATH.tmp must fit in PATH_MAX). */
#define ATOMIC_FILE_PATH_MAX 4091

/* What the new file gets besides its contents. */
struct atomic_file_attr {
	mode_t mode;	/* permission bits (07777 mask) */
	bool chown;	/* give the file uid:gid */
	uid_t uid;
	gid_t gid;
};

/* Replaces PATH by DATA (LEN octets); see the contract above. */
int atomic_file_write(const char *path, const void *data, size_t len,
		      const struct atomic_file_attr *attr, char *err, size_t errlen);

/* Removes PATH durably; see above. */
int atomic_file_remove(const char *path, char *err, size_t errlen);

/* Reads a small file whole; see above. */
int atomic_file_read(const char *path, char *buf, size_t cap, size_t *len, char *err,
		     size_t errlen);

#endif
