/*
 * test_transfer_state.c - the transfer's destination on disk
 * (control/transfer_state.h): a transfer is read back after a "restart"
 * with its address, port and held flag, a cancel removes it, a file that
 * is not one line "ADDRESS PORT held|unheld" is an error (no transfer is
 * started from it), and a directory that cannot be written fails the save.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "control/transfer_state.h"

static char dir[64];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/sluice-xfer-XXXXXX");
	cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
}

static void teardown(void)
{
	char cmd[200];

	snprintf(cmd, sizeof(cmd), "chmod -R u+rwx %s; rm -rf %s", dir, dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(transfer_state, .init = setup, .fini = teardown);

static void put(const char *text)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/" TRANSFER_STATE_FILE, dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

Test(transfer_state, a_transfer_outlives_a_restart_and_cancel_ends_it)
{
	struct transfer_state t = { inet_addr("198.18.2.2"), 2525, true }, got;
	char err[256], path[128];
	struct stat st;

	cr_assert_eq(transfer_state_load(dir, &got, err, sizeof(err)), 0, "never on");
	cr_assert_eq(transfer_state_save(dir, &t, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(transfer_state_load(dir, &got, err, sizeof(err)), 1, "%s", err);
	cr_expect_eq(got.addr, t.addr);
	cr_expect_eq(got.port, 2525);
	cr_expect(got.include_held);
	snprintf(path, sizeof(path), "%s/" TRANSFER_STATE_FILE ".tmp", dir);
	cr_expect_neq(stat(path, &st), 0, "no temporary file left behind");

	t.include_held = false;
	t.port = 25;
	cr_assert_eq(transfer_state_save(dir, &t, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(transfer_state_load(dir, &got, err, sizeof(err)), 1, "%s", err);
	cr_expect_eq(got.port, 25);
	cr_expect_not(got.include_held);

	cr_assert_eq(transfer_state_save(dir, NULL, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(transfer_state_load(dir, &got, err, sizeof(err)), 0, "cancelled: none");
	cr_expect_eq(transfer_state_save(dir, NULL, err, sizeof(err)), 0, "cancel twice is fine");
}

Test(transfer_state, a_malformed_file_starts_nothing)
{
	static const char *const bad[] = {
		"", "\n", "198.18.2.2\n", "198.18.2.2 25\n", "198.18.2.2 25 maybe\n",
		"198.18.2.2 0 held\n", "198.18.2.2 65536 held\n", "198.18.2.2 -1 held\n",
		"0.0.0.0 25 held\n", "box2.test 25 held\n", "198.18.2.2 25 held extra\n",
		"198.18.2.256 25 held\n",
	};
	struct transfer_state got;
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		put(bad[i]);
		err[0] = '\0';
		cr_expect_eq(transfer_state_load(dir, &got, err, sizeof(err)), -1, "'%s' taken",
			     bad[i]);
		cr_expect(strstr(err, "not 'ADDRESS PORT held|unheld'") != NULL, "%s", err);
		cr_expect_eq(got.addr, 0, "nothing half-filled");
	}
	put("198.18.2.2 25 unheld");
	cr_expect_eq(transfer_state_load(dir, &got, err, sizeof(err)), 1, "no newline is fine");
	cr_expect_eq(got.port, 25);
}

Test(transfer_state, an_unwritable_directory_fails_the_save)
{
	struct transfer_state t = { inet_addr("198.18.2.2"), 25, false };
	char err[256], sub[128];

	snprintf(sub, sizeof(sub), "%s/no/such/dir", dir);
	cr_expect_eq(transfer_state_save(sub, &t, err, sizeof(err)), -1);
	cr_expect(strstr(err, "No such file") != NULL, "%s", err);
	t.addr = 0;
	cr_expect_eq(transfer_state_save(dir, &t, err, sizeof(err)), -1, "no address");
}
