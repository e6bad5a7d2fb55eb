/*
 * test_atomic_file.c - common/atomic_file.h: after a write the file is
 * whole, with the mode asked for (the umask does not narrow it) and the
 * owner asked for, and the temporary file is gone; a stale temporary file
 * is no obstacle; an error at any step (no directory, a name too long, a
 * directory not writable, a write cut short by RLIMIT_FSIZE, a rename onto
 * a directory) is returned and said, leaves the old file as it was and no
 * temporary file behind; a removal of an absent file is no error.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/atomic_file.h"

#define NOBODY 65534

static char dir[64];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/sluice-atomic-XXXXXX");
	cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
}

static void teardown(void)
{
	char cmd[200];

	snprintf(cmd, sizeof(cmd), "chmod -R u+rwx %s; rm -rf %s", dir, dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(atomic_file, .init = setup, .fini = teardown);

/* The whole contents of path (NUL-terminated, *len octets), or NULL. */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	fputs(text, f);
	cr_assert_eq(fclose(f), 0);
}

static void assert_contents(const char *path, const char *want)
{
	size_t len;
	char *got = slurp(path, &len);

	cr_assert_not_null(got, "%s: %s", path, strerror(errno));
	cr_assert_eq(len, strlen(want), "%s: %zu octets, want %zu", path, len, strlen(want));
	cr_assert_str_eq(got, want);
	free(got);
}

static void assert_no_tmp(const char *path)
{
	char tmp[4200];
	struct stat st;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	cr_assert_eq(stat(tmp, &st), -1, "%s is left behind", tmp);
	cr_assert_eq(errno, ENOENT);
}

Test(atomic_file, the_file_is_whole_with_its_mode_and_no_temporary_is_left)
{
	static char big[300000];
	const struct atomic_file_attr attr = { .mode = 0640 };
	char path[128], err[256];
	struct stat st;

	for (size_t i = 0; i < sizeof(big) - 1; i++)
		big[i] = (char)('a' + i % 26);
	snprintf(path, sizeof(path), "%s/f", dir);
	put(path, "old contents\n");
	umask(077);	/* the mode is set, not narrowed by the umask */
	cr_assert_eq(atomic_file_write(path, big, strlen(big), &attr, err, sizeof(err)), 0,
		     "%s", err);
	assert_contents(path, big);
	assert_no_tmp(path);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0640, "mode %o", st.st_mode & 07777);

	/* a stale temporary file from a crash is overwritten, not an error */
	snprintf(err, sizeof(err), "%s/f.tmp", dir);
	put(err, "torn");
	cr_assert_eq(atomic_file_write(path, "new\n", 4, &attr, err, sizeof(err)), 0, "%s", err);
	assert_contents(path, "new\n");
	assert_no_tmp(path);

	/* an empty file is a file */
	cr_assert_eq(atomic_file_write(path, "", 0, &attr, err, sizeof(err)), 0, "%s", err);
	assert_contents(path, "");
}

Test(atomic_file, the_owner_is_given_or_kept)
{
	const struct atomic_file_attr attr = { .mode = 0600, .chown = true,
					       .uid = NOBODY, .gid = NOBODY };
	char path[128], err[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/owned", dir);
	cr_assert_eq(atomic_file_write(path, "x\n", 2, &attr, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(stat(path, &st), 0);
	if (geteuid() == 0) {
		cr_assert_eq(st.st_uid, NOBODY);
		cr_assert_eq(st.st_gid, NOBODY);
	} else {	/* not allowed to give it away (EPERM): the writer keeps it */
		cr_assert_eq(st.st_uid, geteuid());
	}
	assert_contents(path, "x\n");
}

Test(atomic_file, no_directory_is_an_error)
{
	const struct atomic_file_attr attr = { .mode = 0600 };
	char path[128], err[256];

	snprintf(path, sizeof(path), "%s/nowhere/f", dir);
	errno = 0;
	cr_assert_eq(atomic_file_write(path, "x", 1, &attr, err, sizeof(err)), -1);
	cr_assert_eq(errno, ENOENT);
	cr_assert_not_null(strstr(err, "open "), "%s", err);
	cr_assert_not_null(strstr(err, "No such file"), "%s", err);
}

Test(atomic_file, a_name_too_long_leaves_the_old_file)
{
	const struct atomic_file_attr attr = { .mode = 0600 };
	char path[8192], err[1024];
	int n;

	/* a name of 252 octets exists; its temporary name (256) is too long */
	n = snprintf(path, sizeof(path), "%s/", dir);
	memset(path + n, 'n', 252);
	path[n + 252] = '\0';
	put(path, "old\n");
	cr_assert_eq(atomic_file_write(path, "new\n", 4, &attr, err, sizeof(err)), -1);
	cr_assert_eq(errno, ENAMETOOLONG);
	cr_assert_not_null(strstr(err, "File name too long"), "%s", err);
	assert_contents(path, "old\n");

	/* a path longer than PATH_MAX: refused before anything is touched */
	memset(path, 'p', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	cr_assert_eq(atomic_file_write(path, "new\n", 4, &attr, err, sizeof(err)), -1);
	cr_assert_eq(errno, ENAMETOOLONG);
	cr_assert_not_null(strstr(err, "path too long"), "%s", err);
	cr_assert_eq(atomic_file_remove(path, err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "path too long"), "%s", err);
}

Test(atomic_file, a_directory_not_writable_leaves_the_old_file)
{
	const struct atomic_file_attr attr = { .mode = 0644 };
	char path[128], err[256];

	snprintf(path, sizeof(path), "%s/f", dir);
	put(path, "old\n");
	cr_assert_eq(chmod(path, 0644), 0);
	cr_assert_eq(chmod(dir, 0555), 0);
	/* root writes anywhere: be nobody for the calls (this test's own process) */
	bool root = geteuid() == 0;

	if (root)
		cr_assert_eq(seteuid(NOBODY), 0, "seteuid: %s", strerror(errno));
	cr_assert_eq(atomic_file_write(path, "new\n", 4, &attr, err, sizeof(err)), -1);
	cr_assert_eq(errno, EACCES);
	cr_assert_not_null(strstr(err, "Permission denied"), "%s", err);
	cr_assert_eq(atomic_file_remove(path, err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "unlink "), "%s", err);
	if (root)
		cr_assert_eq(seteuid(0), 0, "seteuid: %s", strerror(errno));
	assert_contents(path, "old\n");
	assert_no_tmp(path);
}

Test(atomic_file, a_write_cut_short_leaves_the_old_file_and_no_temporary)
{
	const struct atomic_file_attr attr = { .mode = 0600 };
	struct rlimit rl = { .rlim_cur = 10, .rlim_max = RLIM_INFINITY };
	char path[128], err[256];

	snprintf(path, sizeof(path), "%s/f", dir);
	put(path, "old\n");
	/* files of more than 10 octets: write fails with EFBIG (SIGXFSZ ignored) */
	signal(SIGXFSZ, SIG_IGN);
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
	cr_assert_eq(atomic_file_write(path, "0123456789abcdef", 16, &attr, err, sizeof(err)),
		     -1);
	cr_assert_eq(errno, EFBIG);
	cr_assert_not_null(strstr(err, "write "), "%s", err);
	assert_contents(path, "old\n");
	assert_no_tmp(path);
}

Test(atomic_file, a_rename_onto_a_directory_fails_and_leaves_it)
{
	const struct atomic_file_attr attr = { .mode = 0600 };
	char path[128], inner[160], err[256];

	snprintf(path, sizeof(path), "%s/d", dir);
	cr_assert_eq(mkdir(path, 0700), 0);
	snprintf(inner, sizeof(inner), "%s/keep", path);
	put(inner, "kept\n");
	cr_assert_eq(atomic_file_write(path, "new\n", 4, &attr, err, sizeof(err)), -1);
	cr_assert_eq(errno, EISDIR);
	cr_assert_not_null(strstr(err, "rename "), "%s", err);
	assert_contents(inner, "kept\n");
	assert_no_tmp(path);
}

Test(atomic_file, a_removal_is_durable_and_an_absent_file_is_fine)
{
	const struct atomic_file_attr attr = { .mode = 0600 };
	char path[128], err[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/f", dir);
	cr_assert_eq(atomic_file_write(path, "x", 1, &attr, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(atomic_file_remove(path, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(stat(path, &st), -1);
	cr_assert_eq(atomic_file_remove(path, err, sizeof(err)), 0, "absent: %s", err);
	/* a bare name is in the working directory */
	cr_assert_eq(chdir(dir), 0);
	cr_assert_eq(atomic_file_write("bare", "y", 1, &attr, err, sizeof(err)), 0, "%s", err);
	assert_contents("bare", "y");
	cr_assert_eq(atomic_file_remove("bare", err, sizeof(err)), 0, "%s", err);
}

/* atomic_file_read: a state file back whole, an absent one is 0, one longer
 * than the buffer holds and one that cannot be read are errors said. */
Test(atomic_file, a_small_file_is_read_back_whole)
{
	const struct atomic_file_attr attr = { .mode = 0600 };
	char path[128], err[256], buf[16];
	size_t len = 99;

	snprintf(path, sizeof(path), "%s/state", dir);
	cr_assert_eq(atomic_file_read(path, buf, sizeof(buf), &len, err, sizeof(err)), 0,
		     "absent");
	cr_assert_eq(len, 0);
	cr_assert_eq(atomic_file_write(path, "15 octets here\n", 15, &attr, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(atomic_file_read(path, buf, sizeof(buf), &len, err, sizeof(err)), 1, "%s",
		     err);
	cr_assert_eq(len, 15);
	cr_assert_str_eq(buf, "15 octets here\n");
	cr_assert_eq(atomic_file_write(path, "sixteen octets!\n", 16, &attr, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(atomic_file_read(path, buf, sizeof(buf), &len, err, sizeof(err)), -1,
		     "one octet past what the buffer holds");
	cr_assert_not_null(strstr(err, "longer than 15 octets"), "%s", err);
	cr_assert_str_eq(buf, "", "nothing half-read is left");
	cr_assert_eq(atomic_file_read(dir, buf, sizeof(buf), &len, err, sizeof(err)), -1,
		     "a directory");
	cr_assert_not_null(strstr(err, "read "), "%s", err);
}
