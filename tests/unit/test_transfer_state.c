/*
 * test_transfer_state.c - the transfer's destination on disk
 * (control/transfer_state.h): a transfer is read back after a "restart"
 * with its address (either family), port and held flag, a cancel removes
 * it, a file that is not one line "ADDRESS PORT held|unheld" is an error
 * (no transfer is started from it), and a directory that cannot be
 * written fails the save.
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
	struct transfer_state t = { net_addr_v4(inet_addr("198.18.2.2")), 2525, true }, got;
	char err[256], path[128];
	struct stat st;

	cr_assert_eq(transfer_state_load(dir, &got, err, sizeof(err)), 0, "never on");
	cr_assert_eq(transfer_state_save(dir, &t, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(transfer_state_load(dir, &got, err, sizeof(err)), 1, "%s", err);
	cr_expect(net_addr_eq(&got.addr, &t.addr));
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

Test(transfer_state, an_ipv6_box_is_kept_as_well)
{
	uint8_t a6[16];
	struct transfer_state t, got;
	char err[256], path[128], line[96] = "";
	FILE *f;

	cr_assert_eq(inet_pton(AF_INET6, "2001:db8:2::2", a6), 1);
	t = (struct transfer_state){ net_addr_v6(a6), 25, false };
	cr_assert_eq(transfer_state_save(dir, &t, err, sizeof(err)), 0, "%s", err);
	snprintf(path, sizeof(path), "%s/" TRANSFER_STATE_FILE, dir);
	f = fopen(path, "r");
	cr_assert_not_null(f);
	cr_assert_not_null(fgets(line, sizeof(line), f));
	fclose(f);
	cr_expect_str_eq(line, "2001:db8:2::2 25 unheld\n");
	cr_assert_eq(transfer_state_load(dir, &got, err, sizeof(err)), 1, "%s", err);
	cr_expect(net_addr_is_v6(&got.addr));
	cr_expect(net_addr_eq(&got.addr, &t.addr));
	put("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 65535 held\n");
	cr_expect_eq(transfer_state_load(dir, &got, err, sizeof(err)), 1,
		     "the longest text form: %s", err);
	cr_expect_eq(got.port, 65535);
}

Test(transfer_state, a_malformed_file_starts_nothing)
{
	static const char *const bad[] = {
		"", "\n", "198.18.2.2\n", "198.18.2.2 25\n", "198.18.2.2 25 maybe\n",
		"198.18.2.2 0 held\n", "198.18.2.2 65536 held\n", "198.18.2.2 -1 held\n",
		"0.0.0.0 25 held\n", "box2.test 25 held\n", "198.18.2.2 25 held extra\n",
		"198.18.2.256 25 held\n", ":: 25 held\n", "2001:db8::2::1 25 held\n",
		"[2001:db8::2] 25 held\n",
	};
	struct transfer_state got;
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		put(bad[i]);
		err[0] = '\0';
		cr_expect_eq(transfer_state_load(dir, &got, err, sizeof(err)), -1, "'%s' taken",
			     bad[i]);
		cr_expect(strstr(err, "not 'ADDRESS PORT held|unheld'") != NULL, "%s", err);
		cr_expect(net_addr_is_zero(&got.addr), "nothing half-filled");
	}
	put("198.18.2.2 25 unheld");
	cr_expect_eq(transfer_state_load(dir, &got, err, sizeof(err)), 1, "no newline is fine");
	cr_expect_eq(got.port, 25);
}

Test(transfer_state, an_unwritable_directory_fails_the_save)
{
	struct transfer_state t = { net_addr_v4(inet_addr("198.18.2.2")), 25, false };
	char err[256], sub[128];

	snprintf(sub, sizeof(sub), "%s/no/such/dir", dir);
	cr_expect_eq(transfer_state_save(sub, &t, err, sizeof(err)), -1);
	cr_expect(strstr(err, "No such file") != NULL, "%s", err);
	memset(&t.addr, 0, sizeof(t.addr));
	cr_expect_eq(transfer_state_save(dir, &t, err, sizeof(err)), -1, "no address");
}

/* transfer --to's HOST[:PORT], every form an operator may type, and what
 * is refused with its reason. */
Test(transfer_state, the_destination_forms)
{
	static const struct {
		const char *text, *addr;
		unsigned port;
	} good[] = {
		{ "198.18.2.2", "198.18.2.2", 25 },
		{ "198.18.2.2:2525", "198.18.2.2", 2525 },
		{ "[198.18.2.2]", "198.18.2.2", 25 },
		{ "[198.18.2.2]:587", "198.18.2.2", 587 },
		{ "2001:db8::2", "2001:db8::2", 25 },
		{ "[2001:db8::2]", "2001:db8::2", 25 },
		{ "[2001:db8::2]:2525", "2001:db8::2", 2525 },
		{ "[IPv6:2001:db8::2]:2525", "2001:db8::2", 2525 },
		{ "[ipv6:2001:DB8::2]", "2001:db8::2", 25 },
	};
	static const struct {
		const char *text, *why;
	} bad[] = {
		{ "box2.test", "not an IP address" },
		{ "0.0.0.0", "not an IP address" },
		{ "::", "not an IP address" },
		{ "[::]:25", "not an IP address" },
		{ "198.18.2.2:0", "not a port" },
		{ "198.18.2.2:65536", "not a port" },
		{ "198.18.2.2:", "not a port" },
		{ "198.18.2.2:25x", "not a port" },
		{ "[2001:db8::2]:", "not a port" },
		{ "[2001:db8::2", "is not [ADDRESS]" },
		{ "[2001:db8::2]25", "is not [ADDRESS]" },
		{ "2001:db8::2:25:1:2:3:4:5", "not an IP address" },
		{ "[IPv6:198.18.2.2]x", "is not [ADDRESS]" },
	};
	char err[256], text[NET_ADDR_STRLEN], longest[200];
	struct net_addr to;
	uint16_t port;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		cr_expect_eq(transfer_dest_parse(good[i].text, &to, &port, err, sizeof(err)), 0,
			     "%s: %s", good[i].text, err);
		cr_expect_str_eq(net_addr_str(&to, text, sizeof(text)), good[i].addr, "%s",
				 good[i].text);
		cr_expect_eq(port, good[i].port, "%s", good[i].text);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		cr_expect_eq(transfer_dest_parse(bad[i].text, &to, &port, err, sizeof(err)), -1,
			     "%s taken", bad[i].text);
		cr_expect(strstr(err, bad[i].why) != NULL, "%s: %s", bad[i].text, err);
		cr_expect(net_addr_is_zero(&to) && port == 0, "%s: nothing half-filled",
			  bad[i].text);
	}
	memset(longest, '1', sizeof(longest) - 1);
	longest[sizeof(longest) - 1] = '\0';
	cr_expect_eq(transfer_dest_parse(longest, &to, &port, err, sizeof(err)), -1);
	cr_expect(strstr(err, "too long") != NULL, "%s", err);
}
