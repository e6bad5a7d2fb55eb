/*
 * test_config.c - the INI configuration: the shipped file equals the built-in
 * default, good values land where they belong, and every kind of mistake is
 * reported with file:line and rejected.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "control/config.h"
#include "dataplane/eal.h"
#include "queue/queue.h"

#ifndef SOURCE_ROOT
#error "SOURCE_ROOT must point at the source tree"
#endif

static char *write_tmp(const char *text)
{
	static char path[64];
	strcpy(path, "/tmp/sluice-conf-XXXXXX");
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

/* Text of config_write() for a config. */
static char *dump(const struct sluice_config *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	config_write(c, f);
	fclose(f);
	return buf;
}

Test(config, shipped_file_equals_builtin_default)
{
	struct sluice_config a, b;
	struct config_errors e;

	cr_assert_eq(config_load_default(&a, &e), 0, "%s", e.count ? e.msg[0] : "");
	cr_assert_eq(config_load_file(&b, SOURCE_ROOT "/firmware-config/sluice.conf", &e), 0,
		     "%s", e.count ? e.msg[0] : "");
	char *da = dump(&a), *db = dump(&b);
	cr_assert_str_eq(da, db);
	free(da);
	free(db);
	/* And it says what make run promises. */
	cr_assert_eq(a.dp.addr.ip, inet_addr("198.18.0.2"));
	cr_assert_eq(a.dp.addr.netmask, inet_addr("255.255.255.0"));
	cr_assert_eq(a.dp.idle, DP_IDLE_ADAPTIVE);
	cr_assert_str_eq(a.smtp.mynetworks, "198.18.0.0/24");
	cr_assert_eq(impair_conf_active(&a.dp.impair), false, "impairment must be off by default");
}

Test(config, values_land_in_the_struct)
{
	struct sluice_config c;
	struct config_errors e;
	const char *text =
		"[lcores]\nworkers = 2\nidle = busy\n"
		"[net]\naddress = 10.9.8.7/16\ngateway = 10.9.0.1\nmac = 02:aa:bb:cc:dd:ee\n"
		"arp_timeout = 2m\narp_retry = 250ms\n"
		"[impair]\nrx_drop = 2%\ntx_dup = 1500\n"
		"[log]\nlevel = debug\nsyslog = yes\n"
		"[queue]\nmap_size_max = 2g\nsync = nometa\n"
		"[smtp]\nbare_linefeed = normalize\ncommand_timeout = 2s\nbody_memory = 16m\n"
		"[retry]\nlifetime = 4d\n";
	char *path = write_tmp(text);

	cr_assert_eq(config_load_file(&c, path, &e), 0, "%s", e.count ? e.msg[0] : "");
	unlink(path);
	cr_assert_eq(c.queue.sync, QUEUE_SYNC_NOMETA);
	cr_assert_eq(c.smtp.bare_linefeed, SMTP_BARE_NORMALIZE);
	cr_assert_eq(c.smtp.command_timeout_ns, 2 * NS_PER_SEC);
	cr_assert_eq(c.smtp.body_memory, 16u << 20);
	cr_assert_eq(c.dp.workers, 2);
	cr_assert_eq(c.dp.idle, DP_IDLE_BUSY);
	cr_assert_eq(c.dp.addr.ip, inet_addr("10.9.8.7"));
	cr_assert_eq(c.dp.addr.netmask, inet_addr("255.255.0.0"));
	cr_assert_eq(c.net_prefix, 16);
	cr_assert_eq(c.dp.addr.gateway, inet_addr("10.9.0.1"));
	cr_assert_eq(c.dp.addr.mac.addr_bytes[1], 0xaa);
	cr_assert_eq(c.dp.arp.reachable_ns, 120 * NS_PER_SEC);
	cr_assert_eq(c.dp.arp.retry_ns, 250 * NS_PER_MS);
	cr_assert_eq(c.dp.impair.rx.drop, 20000);
	cr_assert_eq(c.dp.impair.tx.dup, 1500);
	cr_assert_eq(c.log.level, LOG_LVL_DEBUG);
	cr_assert(c.log.syslog);
	cr_assert_eq(c.queue.map_size_max, 2ull << 30);
	cr_assert_eq(c.retry.lifetime_s, 4 * 86400);
	/* Untouched keys keep the default. */
	cr_assert_eq(c.dp.port.rx_desc, 1024);
}

struct bad_case {
	const char *text;
	int line;
	const char *needle;
};

Test(config, every_kind_of_error_is_reported_with_its_line)
{
	static const struct bad_case cases[] = {
		{ "[net]\nadress = 1.2.3.4/24\n", 2, "unknown key 'adress' in [net]" },
		{ "# c\n[nett]\naddress = 1.2.3.4/24\n", 3, "unknown section [nett]" },
		{ "[lcores]\nworkers = two\n", 2, "not a number" },
		{ "[lcores]\nworkers = 0\n", 2, "out of range" },
		{ "[lcores]\nworkers = 99\n", 2, "out of range" },
		{ "[lcores]\nworkers = -1\n", 2, "not a number" },
		{ "[lcores]\nidle = lazy\n", 2, "busy or adaptive" },
		{ "[smtp]\nbare_linefeed = strip\n", 2, "'strip' is not reject or normalize" },
		{ "[queue]\nsync = never\n", 2, "'never' is not full or nometa" },
		{ "[smtp]\nrecipient_limit = 99\n", 2, "out of range" },
		{ "[smtp]\ncommand_timeout = 500ms\n", 2, "out of range" },
		{ "[net]\naddress = 1.2.3.4\n", 2, "address/prefix" },
		{ "[net]\naddress = 1.2.3.400/24\n", 2, "not an IPv4 address" },
		{ "[net]\naddress = 1.2.3.4/33\n", 2, "address/prefix" },
		{ "[net]\ngateway = gw\n", 2, "not an IPv4 address" },
		{ "[net]\nmac = 01:00:5e:00:00:01\n", 2, "unicast MAC" },
		{ "[net]\narp_timeout = 5 fortnights\n", 2, "duration" },
		{ "[impair]\nrx_drop = 150%\n", 2, "rate" },
		{ "[log]\nsyslog = maybe\n", 2, "yes/no" },
		{ "[log]\nlevel = loud\n", 2, "err, warn" },
		{ "[queue]\nmap_size_max = 3t\n", 2, "size" },
		{ "\n\n[net]\nthis line has no equals sign\n", 4, "syntax error" },
		{ "[net\n", 1, "syntax error" },
		{ "[eal]\nfile_prefix = 0123456789012345678901234567890123456789012345678901234567890123456789\n",
		  2, "longer than" },
	};
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sluice_config c;
		struct config_errors e;
		char *path = write_tmp(cases[i].text);
		char want[128];

		cr_assert_eq(config_load_file(&c, path, &e), -1, "case %u accepted", i);
		cr_assert_eq(e.count, 1, "case %u: %u errors (%s)", i, e.count, e.msg[0]);
		snprintf(want, sizeof(want), "%s:%d: ", path, cases[i].line);
		cr_assert_eq(strncmp(e.msg[0], want, strlen(want)), 0,
			     "case %u: '%s' does not start with '%s'", i, e.msg[0], want);
		cr_assert_not_null(strstr(e.msg[0], cases[i].needle),
				   "case %u: '%s' lacks '%s'", i, e.msg[0], cases[i].needle);
		unlink(path);
	}
}

/* [smtp] postmaster: a mailbox (local@domain) or the file is refused; the
 * shipped default is explicit. */
Test(config, smtp_postmaster_is_a_mailbox)
{
	static const char *const bad[] = {
		"root", "Postmaster", "<noc@isp.example>", "noc@isp.example x", "noc@",
		"@isp.example", "noc@isp..example", "n\xc3\xb6" "c@isp.example",
		"noc@isp.example> NOTIFY=NEVER", "",
	};
	struct sluice_config c;
	struct config_errors e;
	char text[512], *path;

	cr_assert_eq(config_load_default(&c, &e), 0);
	cr_expect_str_eq(c.smtp.postmaster, "root@localhost");
	path = write_tmp("[smtp]\npostmaster = noc@isp.example\n");
	cr_assert_eq(config_load_file(&c, path, &e), 0, "%s", e.count ? e.msg[0] : "");
	unlink(path);
	cr_expect_str_eq(c.smtp.postmaster, "noc@isp.example");
	{
		char *d = dump(&c);
		cr_expect_not_null(strstr(d, "\npostmaster = noc@isp.example\n"));
		free(d);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "[smtp]\npostmaster = %s\n", bad[i]);
		path = write_tmp(text);
		cr_expect_eq(config_load_file(&c, path, &e), -1, "'%s' accepted", bad[i]);
		cr_expect(e.count == 1 && strstr(e.msg[0], ":2: smtp.postmaster: ") &&
			  strstr(e.msg[0], "is not a mailbox"), "'%s': %s", bad[i],
			  e.count ? e.msg[0] : "no error");
		unlink(path);
	}
}

Test(config, all_errors_are_reported_not_just_the_first)
{
	struct sluice_config c;
	struct config_errors e;
	char *path = write_tmp("[lcores]\nworkers = x\n[net]\nbogus = 1\nnot a line\n[port]\nrx_desc = 1\n");

	cr_assert_eq(config_load_file(&c, path, &e), -1);
	cr_assert_eq(e.count, 4, "got %u errors", e.count);
	cr_assert_not_null(strstr(e.msg[0], ":2: "));
	cr_assert_not_null(strstr(e.msg[1], ":4: "));
	cr_assert_not_null(strstr(e.msg[2], ":5: "));
	cr_assert_not_null(strstr(e.msg[3], ":7: "));
	unlink(path);
}

Test(config, oversized_line_and_missing_file)
{
	struct sluice_config c;
	struct config_errors e;
	char *text = malloc(CONFIG_LINE_MAX + 64);
	strcpy(text, "[smtp]\nmynetworks = ");
	size_t n = strlen(text);
	memset(text + n, '1', CONFIG_LINE_MAX);
	strcpy(text + n + CONFIG_LINE_MAX, "\n[lcores]\nworkers = 1\n");
	char *path = write_tmp(text);
	cr_assert_eq(config_load_file(&c, path, &e), -1);
	unlink(path);
	cr_assert_eq(e.count, 1);
	cr_assert_not_null(strstr(e.msg[0], ":2: line longer than"), "%s", e.msg[0]);
	free(text);

	cr_assert_eq(config_load_file(&c, "/nonexistent/sluice.conf", &e), -1);
	cr_assert_not_null(strstr(e.msg[0], "No such file"));
}

Test(eal_argv, built_from_config)
{
	struct sluice_config c;
	struct config_errors e;
	struct eal_argv av;

	cr_assert_eq(config_load_default(&c, &e), 0);
	c.dp.workers = 2;
	cr_assert_eq(eal_build_argv(&av, "sluiced", &c.dp, 2), 0);
	char line[1024] = "";
	for (int i = 0; i < av.argc; i++) {
		strcat(line, i ? " " : "");
		strcat(line, av.argv[i]);
	}
	cr_assert_str_eq(line, "sluiced --lcores 0@0,1@1,2@1 --vdev net_tap0,iface=sl0 "
			       "--file-prefix sluice --no-huge --no-pci --no-shconf -m 512 "
			       "--log-level=lib.eal:warning");
	cr_assert_null(av.argv[av.argc]);

	/* Too many words is refused, not truncated. */
	memset(c.dp.eal.args, 0, sizeof(c.dp.eal.args));
	for (int i = 0; i < 100; i++)
		strcat(c.dp.eal.args, "-x ");
	cr_assert_eq(eal_build_argv(&av, "sluiced", &c.dp, 2), -E2BIG);
}
