/*
 * test_drain_state.c - the drain flag on disk (control/drain_state.h): a
 * drain is read back after a "restart" with its time, an undrain removes
 * it, a stale temporary file changes nothing, an unreadable state is an
 * error (the caller starts drained), and a directory that cannot be
 * written fails the save.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "control/drain_state.h"

static char dir[64];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/sluice-drain-XXXXXX");
	cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
}

static void teardown(void)
{
	char cmd[200];

	snprintf(cmd, sizeof(cmd), "chmod -R u+rwx %s; rm -rf %s", dir, dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(drain_state, .init = setup, .fini = teardown);

Test(drain_state, a_drain_outlives_a_restart_and_undrain_ends_it)
{
	char err[256], path[128];
	uint64_t since = 7;
	struct stat st;

	cr_assert_eq(drain_state_load(dir, &since, err, sizeof(err)), 0, "never drained");
	cr_assert_eq(since, 0);
	cr_assert_eq(drain_state_save(dir, true, 1764500000, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(drain_state_load(dir, &since, err, sizeof(err)), 1);
	cr_assert_eq(since, 1764500000);
	snprintf(path, sizeof(path), "%s/" DRAIN_STATE_FILE ".tmp", dir);
	cr_assert_neq(stat(path, &st), 0, "no temporary file left behind");
	/* drained again (a second drain): the same answer */
	cr_assert_eq(drain_state_save(dir, true, 1764500001, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(drain_state_load(dir, &since, err, sizeof(err)), 1);
	cr_assert_eq(since, 1764500001);
	cr_assert_eq(drain_state_save(dir, false, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(drain_state_load(dir, &since, err, sizeof(err)), 0, "undrained");
	cr_assert_eq(drain_state_save(dir, false, 0, err, sizeof(err)), 0, "undrain twice is fine");
}

Test(drain_state, a_torn_temporary_file_is_not_the_state)
{
	char err[256], path[128];
	uint64_t since;
	FILE *f;

	snprintf(path, sizeof(path), "%s/" DRAIN_STATE_FILE ".tmp", dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("12", f);
	fclose(f);
	cr_assert_eq(drain_state_load(dir, &since, err, sizeof(err)), 0,
		     "a crash before the rename leaves the old state");
}

Test(drain_state, errors_are_said)
{
	char err[256], path[128];
	uint64_t since;

	if (geteuid() != 0) {	/* root writes anywhere: the mode test is for others */
		cr_assert_eq(chmod(dir, 0500), 0);
		cr_assert_eq(drain_state_save(dir, true, 1, err, sizeof(err)), -1);
		cr_assert_not_null(strstr(err, "Permission denied"), "%s", err);
		cr_assert_eq(chmod(dir, 0700), 0);
	}
	snprintf(path, sizeof(path), "%s/nowhere", dir);
	cr_assert_eq(drain_state_save(path, true, 1, err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "No such file"), "%s", err);
	/* the state is a directory: unreadable, an error (the caller starts drained) */
	snprintf(path, sizeof(path), "%s/" DRAIN_STATE_FILE, dir);
	cr_assert_eq(mkdir(path, 0700), 0);
	cr_assert_eq(drain_state_load(dir, &since, err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "read"), "%s", err);
}
