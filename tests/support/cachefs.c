/*
 * cachefs.c - a FUSE filesystem that plays a disk with a volatile write
 * cache, for the power-cut test (tests/integration/durability.sh).
 *
 *   cachefs BACKING MOUNTPOINT
 *
 * Files and directories are those of BACKING (the "disk"). A write to a
 * file is kept in this process's memory (the "cache") until the file is
 * synced (fsync, fdatasync; or the write came through a descriptor opened
 * O_DSYNC/O_SYNC, which makes that write alone durable); only then does it
 * reach BACKING. Reads see the cache over the disk, so the program on top
 * (LMDB: pwrite, writev, a read-only shared mmap of the data file, a
 * shared writable mmap of the lock file) runs as on a real filesystem.
 * SIGKILL this process and the writes not synced are gone, exactly those:
 * BACKING then is what a disk would hold after the power went. (The page
 * cache of a real disk may write back some unsynced data early; losing all
 * of it is the worst case, the one a missing sync cannot survive.)
 *
 * Simplifications, none of which can make a missing data sync pass:
 * directory operations, truncate and fallocate go to BACKING at once (as
 * if metadata were journalled synchronously); files are cached by page.
 *
 * Why FUSE and not a loop device: the kernel here has no device-mapper
 * (no dm-flakey), and a loop device cannot be frozen without flushing:
 * fsfreeze syncs the filesystem (the unsynced data would survive), and a
 * read-only flag on a loop device with a writer only warns, so a copy of
 * its backing file taken while the dead program's dirty pages keep being
 * written back is torn. Killing this process loses the cache atomically.
 *
 * A whole-file FSYNC request on a descriptor opened O_DSYNC/O_SYNC is not
 * taken as a sync of the file: the kernel sends one after every write on
 * such a descriptor (generic_write_sync) and it cannot carry the range, so
 * honouring it would let LMDB's synchronous meta-page write flush the data
 * pages a faulty program never synced. Such writes are written through.
 *
 * Runs single-threaded (no locks needed) in the foreground until unmounted
 * or killed.
 */
#define FUSE_USE_VERSION 31
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <unistd.h>

#define PG 4096
#define NBUCKET 4096
#define NODES_MAX 1024

/* A cached (unsynced) page of a file. */
struct page {
	uint64_t no;
	struct page *next;
	unsigned char d[PG];
};

/* A file, by its backing inode (so renames and unlinks keep it). */
struct node {
	dev_t dev;
	ino_t ino;
	int bfd;		/* backing file, O_RDWR */
	int refs;		/* open handles */
	off_t size;		/* as the program sees it: disk size, grown by cached writes */
	size_t npages;
	struct page *b[NBUCKET];
};

struct handle {
	struct node *n;
	int dsync;
};

static char root[PATH_MAX];
static struct node *nodes[NODES_MAX];

static int bpath(char *out, const char *path)
{
	if (snprintf(out, PATH_MAX, "%s%s", root, path) >= PATH_MAX)
		return -ENAMETOOLONG;
	return 0;
}

#define BPATH(var, path) \
	char var[PATH_MAX]; \
	if (bpath(var, path) < 0) \
		return -ENAMETOOLONG;

static struct node *node_find(dev_t dev, ino_t ino)
{
	for (int i = 0; i < NODES_MAX; i++)
		if (nodes[i] && nodes[i]->dev == dev && nodes[i]->ino == ino)
			return nodes[i];
	return NULL;
}

static struct page *page_get(struct node *n, uint64_t no)
{
	for (struct page *p = n->b[no % NBUCKET]; p; p = p->next)
		if (p->no == no)
			return p;
	return NULL;
}

/* The page, cached: read from the disk first when it was not. */
static struct page *page_make(struct node *n, uint64_t no)
{
	struct page *p = page_get(n, no);
	ssize_t r;

	if (p)
		return p;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->no = no;
	r = pread(n->bfd, p->d, PG, (off_t)(no * PG));
	if (r < 0) {
		free(p);
		return NULL;
	}
	p->next = n->b[no % NBUCKET];
	n->b[no % NBUCKET] = p;
	n->npages++;
	return p;
}

static void node_drop(struct node *n)
{
	for (int i = 0; i < NODES_MAX; i++) {
		if (nodes[i] == n) {
			nodes[i] = NULL;
			break;
		}
	}
	for (int i = 0; i < NBUCKET; i++) {
		while (n->b[i]) {
			struct page *p = n->b[i];
			n->b[i] = p->next;
			free(p);
		}
	}
	close(n->bfd);
	free(n);
}

/* The node of an open backing descriptor (takes fd, or closes it if known). */
static struct node *node_of(int fd, int *err)
{
	struct stat st;
	struct node *n;

	if (fstat(fd, &st) != 0) {
		*err = -errno;
		close(fd);
		return NULL;
	}
	if ((n = node_find(st.st_dev, st.st_ino)) != NULL) {
		close(fd);
		return n;
	}
	n = calloc(1, sizeof(*n));
	if (!n) {
		*err = -ENOMEM;
		close(fd);
		return NULL;
	}
	n->dev = st.st_dev;
	n->ino = st.st_ino;
	n->bfd = fd;
	n->size = st.st_size;
	for (int i = 0; i < NODES_MAX; i++) {
		if (!nodes[i]) {
			nodes[i] = n;
			return n;
		}
	}
	*err = -ENFILE;
	close(fd);
	free(n);
	return NULL;
}

/* The cache of n reaches the disk ("the file is synced"). */
static int node_flush(struct node *n)
{
	for (int i = 0; i < NBUCKET; i++) {
		while (n->b[i]) {
			struct page *p = n->b[i];
			off_t off = (off_t)(p->no * PG);
			if (off < n->size) {
				size_t len = n->size - off < PG ? (size_t)(n->size - off) : PG;
				if (pwrite(n->bfd, p->d, len, off) != (ssize_t)len)
					return -EIO;
			}
			n->b[i] = p->next;
			free(p);
			n->npages--;
		}
	}
	return 0;
}

static void node_truncate(struct node *n, off_t size)
{
	for (int i = 0; i < NBUCKET; i++) {
		struct page **pp = &n->b[i];
		while (*pp) {
			struct page *p = *pp;
			off_t off = (off_t)(p->no * PG);
			if (off >= size) {
				*pp = p->next;
				free(p);
				n->npages--;
				continue;
			}
			if (off + PG > size)
				memset(p->d + (size - off), 0, (size_t)(off + PG - size));
			pp = &p->next;
		}
	}
	n->size = size;
}

static struct handle *H(struct fuse_file_info *fi)
{
	return fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
}

/* ---- operations ------------------------------------------------------------ */

static void *c_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	(void)conn;
	cfg->hard_remove = 1;	/* unlink for real: open files live on by handle */
	cfg->nullpath_ok = 1;
	cfg->kernel_cache = 1;	/* every write goes through this mount: the cache is coherent */
	return NULL;
}

static int c_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	struct handle *h = H(fi);
	struct node *n;

	if (h) {
		if (fstat(h->n->bfd, st) != 0)
			return -errno;
		st->st_size = h->n->size;
		return 0;
	}
	BPATH(b, path);
	if (lstat(b, st) != 0)
		return -errno;
	if (S_ISREG(st->st_mode) && (n = node_find(st->st_dev, st->st_ino)) != NULL)
		st->st_size = n->size;
	return 0;
}

static int c_access(const char *path, int mask)
{
	BPATH(b, path);
	return access(b, mask) == 0 ? 0 : -errno;
}

static int c_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
		     struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	DIR *d;
	struct dirent *e;
	(void)off; (void)fi; (void)flags;
	BPATH(b, path);
	if (!(d = opendir(b)))
		return -errno;
	while ((e = readdir(d)) != NULL)
		if (fill(buf, e->d_name, NULL, 0, 0))
			break;
	closedir(d);
	return 0;
}

static int c_mkdir(const char *path, mode_t mode)
{
	BPATH(b, path);
	return mkdir(b, mode) == 0 ? 0 : -errno;
}

static int c_rmdir(const char *path)
{
	BPATH(b, path);
	return rmdir(b) == 0 ? 0 : -errno;
}

static int c_unlink(const char *path)
{
	struct stat st;
	struct node *n;
	BPATH(b, path);
	if (lstat(b, &st) != 0)
		return -errno;
	if (unlink(b) != 0)
		return -errno;
	n = node_find(st.st_dev, st.st_ino);
	if (n && n->refs == 0 && st.st_nlink <= 1)
		node_drop(n);	/* nobody can reach it any more */
	return 0;
}

static int c_rename(const char *from, const char *to, unsigned int flags)
{
	if (flags)
		return -EINVAL;
	BPATH(a, from);
	BPATH(b, to);
	return rename(a, b) == 0 ? 0 : -errno;
}

static int c_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct handle *h = H(fi);
	if (h)
		return fchmod(h->n->bfd, mode) == 0 ? 0 : -errno;
	BPATH(b, path);
	return chmod(b, mode) == 0 ? 0 : -errno;
}

static int c_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	struct handle *h = H(fi);
	if (h)
		return fchown(h->n->bfd, uid, gid) == 0 ? 0 : -errno;
	BPATH(b, path);
	return lchown(b, uid, gid) == 0 ? 0 : -errno;
}

static int c_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	struct handle *h = H(fi);
	if (h)
		return futimens(h->n->bfd, tv) == 0 ? 0 : -errno;
	BPATH(b, path);
	return utimensat(AT_FDCWD, b, tv, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
}

static int c_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	struct handle *h = H(fi);
	struct node *n = h ? h->n : NULL;
	if (!n) {
		struct stat st;
		BPATH(b, path);
		if (lstat(b, &st) != 0)
			return -errno;
		n = node_find(st.st_dev, st.st_ino);
		if (!n)
			return truncate(b, size) == 0 ? 0 : -errno;
	}
	if (ftruncate(n->bfd, size) != 0)
		return -errno;
	node_truncate(n, size);
	return 0;
}

static int do_open(const char *path, int create, mode_t mode, struct fuse_file_info *fi)
{
	int fd, err = 0;
	struct node *n;
	struct handle *h;
	BPATH(b, path);

	fd = open(b, O_RDWR | O_CLOEXEC | (create ? O_CREAT | (fi->flags & O_EXCL) : 0), mode);
	if (fd < 0)
		return -errno;
	if (!(n = node_of(fd, &err)))
		return err;
	if (!(h = calloc(1, sizeof(*h))))
		return -ENOMEM;
	if (fi->flags & O_TRUNC) {
		if (ftruncate(n->bfd, 0) != 0) {
			free(h);
			return -errno;
		}
		node_truncate(n, 0);
	}
	h->n = n;
	h->dsync = (fi->flags & O_DSYNC) != 0;	/* O_SYNC includes O_DSYNC */
	n->refs++;
	fi->fh = (uintptr_t)h;
	fi->keep_cache = 1;
	return 0;
}

static int c_open(const char *path, struct fuse_file_info *fi)
{
	return do_open(path, 0, 0, fi);
}

static int c_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	return do_open(path, 1, mode, fi);
}

static int c_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct node *n = H(fi)->n;
	size_t done = 0;
	(void)path;

	if (off >= n->size)
		return 0;
	if ((off_t)size > n->size - off)
		size = (size_t)(n->size - off);
	while (done < size) {
		off_t o = off + (off_t)done;
		uint64_t no = (uint64_t)o / PG;
		size_t in = (size_t)(o % PG), l = PG - in;
		struct page *p = page_get(n, no);
		if (l > size - done)
			l = size - done;
		if (p) {
			memcpy(buf + done, p->d + in, l);
		} else {
			ssize_t r = pread(n->bfd, buf + done, l, o);
			if (r < 0)
				return -errno;
			if ((size_t)r < l)
				memset(buf + done + r, 0, l - (size_t)r);	/* past the disk's end */
		}
		done += l;
	}
	return (int)size;
}

static int c_write(const char *path, const char *buf, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	struct handle *h = H(fi);
	struct node *n = h->n;
	size_t done = 0;
	(void)path;

	if (h->dsync && pwrite(n->bfd, buf, size, off) != (ssize_t)size)
		return -EIO;	/* written through: durable when this returns */
	while (done < size) {
		off_t o = off + (off_t)done;
		uint64_t no = (uint64_t)o / PG;
		size_t in = (size_t)(o % PG), l = PG - in;
		struct page *p;
		if (l > size - done)
			l = size - done;
		p = h->dsync ? page_get(n, no) : page_make(n, no);
		if (!p && !h->dsync)
			return -ENOMEM;
		if (p)
			memcpy(p->d + in, buf + done, l);	/* dsync: keep the cached copy current */
		done += l;
	}
	if (off + (off_t)size > n->size)
		n->size = off + (off_t)size;
	return (int)size;
}

static int c_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	struct handle *h = H(fi);
	(void)path; (void)datasync;
	if (h->dsync)
		return 0;	/* see the comment atop: its writes went through already */
	return node_flush(h->n);
}

static int c_release(const char *path, struct fuse_file_info *fi)
{
	struct handle *h = H(fi);
	struct node *n = h->n;
	(void)path;
	free(h);
	if (--n->refs == 0 && n->npages == 0)
		node_drop(n);	/* closing is no sync: cached pages keep the node */
	return 0;
}

static int c_statfs(const char *path, struct statvfs *st)
{
	(void)path;
	return statvfs(root, st) == 0 ? 0 : -errno;
}

static int c_fallocate(const char *path, int mode, off_t off, off_t len, struct fuse_file_info *fi)
{
	struct node *n = H(fi)->n;
	(void)path;
	if (fallocate(n->bfd, mode, off, len) != 0)
		return -errno;
	if (!(mode & FALLOC_FL_KEEP_SIZE) && off + len > n->size)
		n->size = off + len;
	return 0;
}

static const struct fuse_operations ops = {
	.init = c_init,
	.getattr = c_getattr,
	.access = c_access,
	.readdir = c_readdir,
	.mkdir = c_mkdir,
	.rmdir = c_rmdir,
	.unlink = c_unlink,
	.rename = c_rename,
	.chmod = c_chmod,
	.chown = c_chown,
	.utimens = c_utimens,
	.truncate = c_truncate,
	.open = c_open,
	.create = c_create,
	.read = c_read,
	.write = c_write,
	.fsync = c_fsync,
	.release = c_release,
	.statfs = c_statfs,
	.fallocate = c_fallocate,
};

int main(int argc, char **argv)
{
	char *fargv[] = { argv[0], NULL, "-f", "-s", "-o", "fsname=cachefs,subtype=cachefs", NULL };

	if (argc != 3) {
		fprintf(stderr, "usage: cachefs BACKING MOUNTPOINT\n");
		return 2;
	}
	if (!realpath(argv[1], root)) {
		perror(argv[1]);
		return 1;
	}
	if (strcmp(root, "/") == 0)
		root[0] = 0;	/* paths from FUSE start with '/' */
	fargv[1] = argv[2];
	return fuse_main(6, fargv, &ops, NULL);
}
