/*
 * sync_shim.c - an LD_PRELOAD library for tests/integration/durability.sh:
 * records, in the order they happen, what sluiced does to each shard's
 * data file and which queue IDs it acknowledges, so that
 * durability_check.py can prove each 250 was sent only after the commit
 * that stored the message had reached the disk.
 *
 *   SLUICE_SHIM_LOG=FILE LD_PRELOAD=libsync_shim.so sluiced ...
 *
 * One line per event, each written with one write(2) to FILE opened
 * O_APPEND, so the file's order is the order the events were logged in:
 *
 *   O fd dsync psize path  open of a shard's data.mdb (dsync: opened with
 *                          O_DSYNC/O_SYNC, so every write on it is durable
 *                          when it returns; psize: the page size)
 *   C fd                   close of such a descriptor
 *   D fd newfd             a duplicate of such a descriptor
 *   W fd off len [id:flags ...]
 *                          a write to data.mdb, logged once it returned;
 *                          the list is the message records (8-byte keys of
 *                          the msg database, with the record's flags byte,
 *                          or '?' when the record is on an overflow page)
 *                          found in the LMDB leaf pages it wrote
 *   S fd what / E fd what rc
 *                          a sync call begins / has returned (fdatasync,
 *                          fsync, sync_file_range; msync has no descriptor
 *                          and is logged as fd -1)
 *   P fd path              open of a directory (O_DIRECTORY)
 *   Y fd rc                an fsync of such a directory has returned
 *   A ID                   a frame about to go to the tap device carries
 *                          "250 2.0.0 Ok: queued as ID" (logged before the
 *                          frame is written)
 *   X what                 the shim could not record something: the
 *                          checker fails
 *
 * A write logged before a sync's S was complete when the sync began, so
 * that sync covers it; a 250 logged after an E went out after that sync
 * returned. Everything the checker concludes rests on those two facts.
 *
 * Wrapped: open/open64/openat/openat64 (and their _2 fortified forms),
 * close, dup/dup2/dup3/fcntl(F_DUPFD*), write, writev, pwrite, pwrite64, pwritev, pwritev64, fdatasync,
 * fsync, sync_file_range, msync. Each calls the next definition
 * (dlsym RTLD_NEXT). Only descriptors of data.mdb files and of
 * /dev/net/tun are looked at; everything else passes straight through.
 */
/* meson adds -D_FILE_OFFSET_BITS=64, which renames open to open64 and so
 * on: both names are wrapped here, each under its own name */
#undef _FILE_OFFSET_BITS
#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* RTLD_NEXT, memmem */
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "queue/queue_schema.h"	/* QREC_VERSION: every record version is read */

#define FD_MAX 65536
enum { T_NONE = 0, T_DATA = 1, T_DATA_DSYNC = 2, T_TUN = 3, T_DIR = 4 };
static _Atomic unsigned char fd_type[FD_MAX];

static atomic_int log_fd = -1;

#define NEXT(name) \
	static __typeof__(name) *next_; \
	if (!next_) \
		next_ = (__typeof__(name) *)dlsym(RTLD_NEXT, #name); \
	if (!next_) { \
		errno = ENOSYS; \
		return -1; \
	}

/* The log: opened on first use, written with the raw system call. */
static void log_line(const char *buf, size_t len)
{
	int fd = atomic_load(&log_fd);
	if (fd < 0) {
		const char *path = getenv("SLUICE_SHIM_LOG");
		int nfd, want = -1;
		if (!path)
			return;
		nfd = (int)syscall(SYS_openat, AT_FDCWD, path,
				   O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (nfd < 0)
			return;
		if (!atomic_compare_exchange_strong(&log_fd, &want, nfd)) {
			syscall(SYS_close, nfd);
			fd = want;
		} else {
			fd = nfd;
		}
	}
	while (len) {
		ssize_t w = syscall(SYS_write, fd, buf, len);
		if (w <= 0)
			return;
		buf += w;
		len -= (size_t)w;
	}
}

static void logf_(const char *fmt, ...)
{
	char b[4608];
	va_list ap;
	int n;
	va_start(ap, fmt);
	n = vsnprintf(b, sizeof(b), fmt, ap);
	va_end(ap);
	if (n > 0)
		log_line(b, (size_t)n < sizeof(b) ? (size_t)n : sizeof(b) - 1);
}

static int type_of(int fd)
{
	return fd >= 0 && fd < FD_MAX ? atomic_load_explicit(&fd_type[fd], memory_order_relaxed) : 0;
}

static void opened(int fd, const char *path, int flags)
{
	size_t l;
	int t = T_NONE;

	if (fd < 0 || fd >= FD_MAX || !path)
		return;
	l = strlen(path);
	if (l >= 9 && strcmp(path + l - 9, "/data.mdb") == 0)
		t = (flags & (O_DSYNC | O_SYNC)) ? T_DATA_DSYNC : T_DATA;
	else if (strcmp(path, "/dev/net/tun") == 0)
		t = T_TUN;
	else if (flags & O_DIRECTORY)
		t = T_DIR;
	atomic_store(&fd_type[fd], (unsigned char)t);
	if (t == T_DIR && path[0] == '/')
		logf_("P %d %s\n", fd, path);
	if (t == T_DATA || t == T_DATA_DSYNC) {
		char abs[4096] = "";
		if (path[0] != '/' && getcwd(abs, sizeof(abs) - l - 2))
			strcat(abs, "/");
		logf_("O %d %d %ld %s%s\n", fd, t == T_DATA_DSYNC, sysconf(_SC_PAGESIZE), abs, path);
	}
}

/* ---- LMDB pages: the msg database's records in a written run of pages ---- */

static uint16_t u16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);	/* LMDB stores native (x86: little) */
}

static uint64_t be64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

#define PAGEHDR 16
#define P_BRANCH 0x01
#define P_LEAF 0x02
#define P_OVERFLOW 0x04
#define P_META 0x08
#define P_LEAF2 0x20
#define F_BIGDATA 0x01
#define F_SUBDATA 0x02
#define F_DUPDATA 0x04
#define QREC_FIXED 62		/* queue/queue_schema.c: version(1)=1..QREC_VERSION flags(1) ... (v1's size) */

struct keybuf {
	char *p;
	size_t n, cap;
};

static void leaf_keys(const unsigned char *pg, size_t psize, struct keybuf *kb)
{
	unsigned lower = u16(pg + 12), nkeys;

	if (lower < PAGEHDR || lower > psize)
		return;
	nkeys = (lower - PAGEHDR) / 2;
	for (unsigned i = 0; i < nkeys; i++) {
		unsigned off = u16(pg + PAGEHDR + 2 * i);
		const unsigned char *node = pg + off;
		unsigned flags, ksize;
		size_t vsize;
		char fl[4];

		if (off + 8 + 8 > psize)
			continue;
		flags = u16(node + 4);
		ksize = u16(node + 6);
		vsize = (size_t)u16(node) | (size_t)u16(node + 2) << 16;
		if (ksize != 8 || (flags & (F_SUBDATA | F_DUPDATA)))
			continue;
		if (flags & F_BIGDATA) {
			snprintf(fl, sizeof(fl), "?");
		} else {
			const unsigned char *v = node + 8 + 8;
			if (vsize < QREC_FIXED || off + 16 + 2 > psize || v[0] < 1 || v[0] > QREC_VERSION)
				continue;	/* not a message record (a summary row...) */
			snprintf(fl, sizeof(fl), "%u", v[1]);
		}
		if (kb->cap - kb->n < 40) {
			kb->n += (size_t)snprintf(kb->p + kb->n, kb->cap - kb->n, " X");
			return;	/* cannot happen (sized by the bytes); the checker fails on X */
		}
		kb->n += (size_t)snprintf(kb->p + kb->n, kb->cap - kb->n, " %016llx:%s",
					  (unsigned long long)be64(node + 8), fl);
	}
}

/* A run of whole pages as LMDB writes them (each iovec starts at a page). */
static void scan_run(const unsigned char *p, size_t len, size_t psize, struct keybuf *kb)
{
	size_t o = 0;
	while (o + PAGEHDR <= len) {
		const unsigned char *pg = p + o;
		unsigned flags = u16(pg + 10);
		if (flags & P_OVERFLOW) {
			uint32_t n = (uint32_t)u16(pg + 12) | (uint32_t)u16(pg + 14) << 16;
			o += (n ? n : 1) * psize;
			continue;
		}
		if ((flags & (P_LEAF | P_LEAF2 | P_BRANCH | P_META)) == P_LEAF && o + psize <= len)
			leaf_keys(pg, psize, kb);
		o += psize;
	}
}

static void wrote(int fd, off_t off, const struct iovec *iov, int iovcnt, ssize_t done)
{
	size_t psize = (size_t)sysconf(_SC_PAGESIZE);
	/* a record takes more than 80 bytes of a leaf page; its entry here, < 40 */
	size_t cap = ((size_t)done / 80 + 1) * 40 + 64;
	char *buf = malloc(cap);
	struct keybuf kb = { buf, 0, cap - 2 };
	size_t left = (size_t)done;

	if (!buf) {
		logf_("X malloc failed: write of %zd bytes not analysed\n", done);
		return;
	}
	kb.n = (size_t)snprintf(buf, kb.cap, "W %d %lld %zd", fd, (long long)off, done);
	if (off >= (off_t)(2 * psize)) {	/* pages 0 and 1 are LMDB's meta pages */
		for (int i = 0; i < iovcnt && left; i++) {
			size_t l = iov[i].iov_len < left ? iov[i].iov_len : left;
			scan_run(iov[i].iov_base, l, psize, &kb);
			left -= l;
		}
	}
	buf[kb.n++] = '\n';
	log_line(buf, kb.n);
	free(buf);
}

/* ---- the 250 replies in frames to the tap device ------------------------- */

static void frame_out(const struct iovec *iov, int iovcnt)
{
	static const char pat[] = "250 2.0.0 Ok: queued as ";
	char small[4096], *f = small;
	size_t n = 0, total = 0;
	const char *p, *end;

	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	if (total > sizeof(small) && !(f = malloc(total))) {
		logf_("X malloc failed: frame of %zu bytes not searched\n", total);
		return;
	}
	for (int i = 0; i < iovcnt; i++) {
		memcpy(f + n, iov[i].iov_base, iov[i].iov_len);
		n += iov[i].iov_len;
	}
	p = f;
	end = f + n;
	while ((p = memmem(p, (size_t)(end - p), pat, sizeof(pat) - 1)) != NULL) {
		p += sizeof(pat) - 1;
		if (end - p >= 13)
			logf_("A %.13s\n", p);
	}
	if (f != small)
		free(f);
}

/* ---- the wrappers --------------------------------------------------------- */

static int open_common(int fd, const char *path, int flags)
{
	int e = errno;
	opened(fd, path, flags);
	errno = e;
	return fd;
}

static int has_mode(int flags)
{
	return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
}

int open(const char *path, int flags, ...)
{
	mode_t mode = 0;
	NEXT(open);
	if (has_mode(flags)) {
		va_list ap;
		va_start(ap, flags);
		mode = va_arg(ap, mode_t);
		va_end(ap);
	}
	return open_common(next_(path, flags, mode), path, flags);
}

int open64(const char *path, int flags, ...)
{
	mode_t mode = 0;
	NEXT(open64);
	if (has_mode(flags)) {
		va_list ap;
		va_start(ap, flags);
		mode = va_arg(ap, mode_t);
		va_end(ap);
	}
	return open_common(next_(path, flags, mode), path, flags);
}

int openat(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;
	NEXT(openat);
	if (has_mode(flags)) {
		va_list ap;
		va_start(ap, flags);
		mode = va_arg(ap, mode_t);
		va_end(ap);
	}
	return open_common(next_(dirfd, path, flags, mode), path, flags);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;
	NEXT(openat64);
	if (has_mode(flags)) {
		va_list ap;
		va_start(ap, flags);
		mode = va_arg(ap, mode_t);
		va_end(ap);
	}
	return open_common(next_(dirfd, path, flags, mode), path, flags);
}

/* glibc's fortified open (for callers compiled with _FORTIFY_SOURCE) */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);

int __open_2(const char *path, int flags)
{
	NEXT(__open_2);
	return open_common(next_(path, flags), path, flags);
}

int __open64_2(const char *path, int flags)
{
	NEXT(__open64_2);
	return open_common(next_(path, flags), path, flags);
}

int close(int fd)
{
	int t = type_of(fd);
	NEXT(close);
	if (t) {
		atomic_store(&fd_type[fd], T_NONE);
		if (t != T_TUN)
			logf_("C %d\n", fd);
	}
	return next_(fd);
}

/* A duplicate has the type of its original (net_tap dups its queue descriptors). */
static int dup_common(int from, int to)
{
	int t = type_of(from), e = errno;
	if (to >= 0 && to < FD_MAX) {
		atomic_store(&fd_type[to], (unsigned char)t);
		if (t == T_DATA || t == T_DATA_DSYNC)
			logf_("D %d %d\n", from, to);
	}
	errno = e;
	return to;
}

int dup(int fd)
{
	NEXT(dup);
	return dup_common(fd, next_(fd));
}

int dup2(int fd, int fd2)
{
	NEXT(dup2);
	return dup_common(fd, next_(fd, fd2));
}

int dup3(int fd, int fd2, int flags)
{
	NEXT(dup3);
	return dup_common(fd, next_(fd, fd2, flags));
}

int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;
	int r;
	NEXT(fcntl);
	va_start(ap, cmd);
	arg = va_arg(ap, void *);	/* int or pointer: passed on as it came */
	va_end(ap);
	r = next_(fd, cmd, arg);
	if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)
		dup_common(fd, r);
	return r;
}

static int is_data(int t)
{
	return t == T_DATA || t == T_DATA_DSYNC;
}

ssize_t write(int fd, const void *buf, size_t len)
{
	int t = type_of(fd);
	off_t off = 0;
	ssize_t r;
	struct iovec v = { (void *)buf, len };
	NEXT(write);
	if (t == T_TUN)
		frame_out(&v, 1);
	if (is_data(t))
		off = lseek(fd, 0, SEEK_CUR);
	r = next_(fd, buf, len);
	if (is_data(t) && r > 0) {
		int e = errno;
		wrote(fd, off, &v, 1, r);
		errno = e;
	}
	return r;
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
	int t = type_of(fd);
	off_t off = 0;
	ssize_t r;
	NEXT(writev);
	if (t == T_TUN)
		frame_out(iov, iovcnt);
	if (is_data(t))
		off = lseek(fd, 0, SEEK_CUR);
	r = next_(fd, iov, iovcnt);
	if (is_data(t) && r > 0) {
		int e = errno;
		wrote(fd, off, iov, iovcnt, r);
		errno = e;
	}
	return r;
}

#define PWRITE_BODY(fn) \
	int t = type_of(fd); \
	ssize_t r; \
	struct iovec v = { (void *)buf, len }; \
	NEXT(fn); \
	if (t == T_TUN) \
		frame_out(&v, 1); \
	r = next_(fd, buf, len, off); \
	if (is_data(t) && r > 0) { \
		int e = errno; \
		wrote(fd, off, &v, 1, r); \
		errno = e; \
	} \
	return r;

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off)
{
	PWRITE_BODY(pwrite)
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off_t off)
{
	PWRITE_BODY(pwrite64)
}

#define PWRITEV_BODY(fn) \
	int t = type_of(fd); \
	ssize_t r; \
	NEXT(fn); \
	if (t == T_TUN) \
		frame_out(iov, iovcnt); \
	r = next_(fd, iov, iovcnt, off); \
	if (is_data(t) && r > 0) { \
		int e = errno; \
		wrote(fd, off, iov, iovcnt, r); \
		errno = e; \
	} \
	return r;

ssize_t pwritev(int fd, const struct iovec *iov, int iovcnt, off_t off)
{
	PWRITEV_BODY(pwritev)
}

ssize_t pwritev64(int fd, const struct iovec *iov, int iovcnt, off_t off)
{
	PWRITEV_BODY(pwritev64)
}

#define SYNC_BODY(fn, what, ...) \
	int t = type_of(fd), r, e; \
	NEXT(fn); \
	if (is_data(t)) \
		logf_("S %d %s\n", fd, what); \
	r = next_(__VA_ARGS__); \
	e = errno; \
	if (is_data(t)) \
		logf_("E %d %s %d\n", fd, what, r); \
	else if (t == T_DIR) \
		logf_("Y %d %d\n", fd, r); \
	errno = e; \
	return r;

int fdatasync(int fd)
{
	SYNC_BODY(fdatasync, "fdatasync", fd)
}

int fsync(int fd)
{
	SYNC_BODY(fsync, "fsync", fd)
}

int sync_file_range(int fd, off_t off, off_t len, unsigned int flags)
{
	SYNC_BODY(sync_file_range, "sync_file_range", fd, off, len, flags)
}

int msync(void *addr, size_t len, int flags)
{
	int r, e;
	NEXT(msync);
	logf_("S -1 msync %p %zu\n", addr, len);
	r = next_(addr, len, flags);
	e = errno;
	logf_("E -1 msync %d\n", r);
	errno = e;
	return r;
}
