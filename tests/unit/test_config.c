/*
 * test_config.c - the INI configuration: the shipped file equals the built-in
 * default, good values land where they belong, and every kind of mistake is
 * reported with file:line and rejected.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "control/cluster.h"
#include "control/config.h"
#include "control/config_check.h"
#include "dataplane/cpus.h"
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
		"address6 = 2001:db8:5c::7/56\ngateway6 = fe80::1\n"
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
	static const uint8_t a6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x5c, [15] = 7 };
	static const uint8_t g6[16] = { 0xfe, 0x80, [15] = 1 };
	cr_assert(c.dp.addr.ip6_ok);
	cr_assert_eq(memcmp(c.dp.addr.ip6, a6, 16), 0);
	cr_assert_eq(c.dp.addr.prefix6, 56);
	cr_assert_eq(memcmp(c.dp.addr.gateway6, g6, 16), 0);
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
		{ "[net]\naddress6 = 2001:db8::1\n", 2, "address/prefix" },
		{ "[net]\naddress6 = 2001:db8::1/129\n", 2, "address/prefix" },
		{ "[net]\naddress6 = fe80::1/64\n", 2, "global or unique-local" },
		{ "[net]\naddress6 = 2001:db8::zz/64\n", 2, "global or unique-local" },
		{ "[net]\ngateway6 = ff02::1\n", 2, "unicast IPv6" },
		{ "[net]\nmac = 01:00:5e:00:00:01\n", 2, "unicast MAC" },
		{ "[net]\narp_timeout = 5 fortnights\n", 2, "duration" },
		{ "[impair]\nrx_drop = 150%\n", 2, "rate" },
		{ "[log]\nsyslog = maybe\n", 2, "yes/no" },
		{ "[log]\nlevel = loud\n", 2, "err, warn" },
		{ "[queue]\nmap_size_max = 3t\n", 2, "size" },
		{ "[retry]\njitter = 101%\n", 2, "rate" },
		{ "[dest]\nconcurrency_limit = 1001\n", 2, "out of range 1..1000" },
		{ "[dest]\ninitial_concurrency = 0\n", 2, "out of range" },
		{ "[dest]\nfailed_cohort_limit = 101\n", 2, "out of range 0..100" },
		{ "[dest]\nrecipients_per_transaction = 0\n", 2, "out of range 1..1000" },
		{ "[dest]\nmessages_per_connection = many\n", 2, "not a number" },
		{ "[dest]\nconcurrency = 5\n", 2, "unknown key 'concurrency' in [dest]" },
		{ "\n\n[net]\nthis line has no equals sign\n", 4, "syntax error" },
		{ "[net\n", 1, "syntax error" },
		{ "[eal]\nfile_prefix = 0123456789012345678901234567890123456789012345678901234567890123456789\n",
		  2, "longer than" },
		{ "[dns]\ntimeout = 5ms\n", 2, "out of range" },
		{ "[dns]\ntimeout = 2m\n", 2, "out of range" },
		{ "[dns]\ntimeout = soon\n", 2, "duration" },
		{ "[dns]\nattempts = 0\n", 2, "out of range" },
		{ "[dns]\nattempts = 11\n", 2, "out of range" },
		{ "[dns]\nattempts = few\n", 2, "not a number" },
		{ "[dns]\nttl_min = 2d\n", 2, "out of range" },
		{ "[dns]\nttl_min = -1\n", 2, "duration" },
		{ "[dns]\nttl_max = 0\n", 2, "out of range" },
		{ "[dns]\nttl_max = 8d\n", 2, "out of range" },
		{ "[dns]\nneg_ttl_max = 2d\n", 2, "out of range" },
		{ "[dns]\nneg_ttl_max = 1y\n", 2, "duration" },
		{ "[dns]\ncache_entries = 8\n", 2, "out of range" },
		{ "[dns]\ncache_entries = 2000000\n", 2, "out of range" },
		{ "[dns]\ncache_memory = 1k\n", 2, "out of range" },
		{ "[dns]\ncache_memory = 2g\n", 2, "out of range" },
		{ "[dns]\ncache_memory = lots\n", 2, "size" },
		{ "[dns]\nresolv_conf = /etc/resolv.conf\n", 2, "unknown key 'resolv_conf' in [dns]" },
		{ "[dns]\nservers = 192.0.2.1,192.0.2.2,192.0.2.3,192.0.2.4,192.0.2.5,192.0.2.6,192.0.2.7,"
		  "192.0.2.8,192.0.2.9,192.0.2.10,192.0.2.11,192.0.2.12,192.0.2.13,192.0.2.14,192.0.2.15,"
		  "192.0.2.16,192.0.2.17,192.0.2.18,192.0.2.19,192.0.2.20,192.0.2.21,192.0.2.22,"
		  "192.0.2.23,192.0.2.24,192.0.2.25\n", 2, "longer than 255" },
		{ "\n[routes]\nroutes_file = /etc/sluice/0123456789012345678901234567890123456789"
		  "01234567890123456789012345678901234567890123456789012345678901234567890123456789"
		  "01234567890123456789012345678901234567890123456789012345678901234567890123456789"
		  "01234567890123456789012345678901234567890123456789\n", 3, "longer than" },
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

/* A machine for the CPU plan: online CPUs and our affinity mask as lists. */
static struct config_machine machine(const char *online, const char *allowed)
{
	struct config_machine m;
	char err[128];

	cr_assert_eq(cpus_parse_list(online, &m.online, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(cpus_parse_list(allowed, &m.allowed, err, sizeof(err)), 0, "%s", err);
	return m;
}

static char *argv_line(const struct eal_argv *av)
{
	static char line[1024];
	line[0] = '\0';
	for (int i = 0; i < av->argc; i++) {
		strcat(line, i ? " " : "");
		strcat(line, av->argv[i]);
	}
	return line;
}

/* The lcore map uses real CPU IDs: with isolcpus=2-5 our affinity mask is
 * {0,1} and `cores = 2-5` must put the workers on 2..5, not on CPU 1 beside
 * the kernel (what a count-based map over the mask's size did). */
Test(eal_argv, lcores_on_the_named_cpus)
{
	struct sluice_config c;
	struct config_errors e;
	struct eal_argv av;
	struct config_machine m = machine("0-7", "0-1");
	char *path = write_tmp("[lcores]\ncores = 2-5\n");

	cr_assert_eq(config_load_file(&c, path, &e), 0, "%s", e.msg[0]);
	unlink(path);
	cr_assert_eq(config_check(&c, &m, &e), 0, "%s", e.msg[0]);
	cr_assert_eq(c.dp.workers, 4);
	cr_assert_eq(eal_build_argv(&av, "sluiced", &c.dp), 0);
	cr_assert_str_eq(argv_line(&av), "sluiced --lcores 0@0,1@2,2@3,3@4,4@5 --vdev net_tap0,iface=sl0 "
					 "--file-prefix sluice --no-huge --no-pci --no-shconf -m 512 "
					 "--log-level=lib.eal:warning");
	cr_assert_null(av.argv[av.argc]);

	/* An explicit housekeeping CPU for the main lcore. */
	strcpy(c.dp.main_core, "1");
	cr_assert_eq(config_check(&c, &m, &e), 0, "%s", e.msg[0]);
	cr_assert_eq(eal_build_argv(&av, "sluiced", &c.dp), 0);
	cr_assert_not_null(strstr(argv_line(&av), "--lcores 0@1,1@2,2@3,3@4,4@5 "));

	/* Too many words is refused, not truncated. */
	memset(c.dp.eal.args, 0, sizeof(c.dp.eal.args));
	for (int i = 0; i < 100; i++)
		strcat(c.dp.eal.args, "-x ");
	cr_assert_eq(eal_build_argv(&av, "sluiced", &c.dp), -E2BIG);
	/* No plan resolved: refused, never a guess. */
	memset(&c.dp.plan, 0, sizeof(c.dp.plan));
	cr_assert_eq(eal_build_argv(&av, "sluiced", &c.dp), -EINVAL);
}

/* Without a list, workers go on the CPUs we may run on, by their IDs. */
Test(eal_argv, lcores_from_the_affinity_mask)
{
	static const struct {
		const char *allowed;
		unsigned workers;
		const char *want;
	} cases[] = {
		{ "0-1", 1, "0@0,1@1" },	/* this test box */
		{ "0-1", 2, "0@0,1@1,2@1" },	/* more workers than CPUs: shared */
		{ "4,6", 1, "0@4,1@6" },	/* taskset -c 4,6: never CPU 0 or 1 */
		{ "3", 2, "0@3,1@3,2@3" },	/* one CPU: everything on it */
		{ "0-3", 3, "0@0,1@1,2@2,3@3" },
	};
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sluice_config c;
		struct config_errors e;
		struct eal_argv av;
		struct config_machine m = machine("0-7", cases[i].allowed);
		char want[64];

		cr_assert_eq(config_load_default(&c, &e), 0);
		c.dp.workers = cases[i].workers;
		cr_assert_eq(config_check(&c, &m, &e), 0, "case %u: %s", i, e.msg[0]);
		cr_assert_eq(eal_build_argv(&av, "sluiced", &c.dp), 0);
		snprintf(want, sizeof(want), "--lcores %s ", cases[i].want);
		cr_assert_not_null(strstr(argv_line(&av), want), "case %u: %s", i, argv_line(&av));
	}
}

Test(cpus, list_syntax)
{
	cpu_set_t s;
	char err[128], out[64];

	cr_assert_eq(cpus_parse_list("2-5, 8,10-11", &s, err, sizeof(err)), 0);
	cpus_format_list(&s, out, sizeof(out));
	cr_assert_str_eq(out, "2-5,8,10-11");
	cr_assert_eq(cpus_parse_list("", &s, err, sizeof(err)), 0);
	cr_assert_eq(CPU_COUNT(&s), 0);
	cr_assert_eq(cpus_parse_list("0-63\n", &s, err, sizeof(err)), 0);	/* sysfs style */
	cr_assert_eq(CPU_COUNT(&s), 64);
	cr_assert_eq(cpus_parse_list("5-2", &s, err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "backwards"));
	cr_assert_eq(cpus_parse_list("2-", &s, err, sizeof(err)), -1);
	cr_assert_eq(cpus_parse_list("a", &s, err, sizeof(err)), -1);
	cr_assert_eq(cpus_parse_list("1;2", &s, err, sizeof(err)), -1);
	cr_assert_eq(cpus_parse_list("99999", &s, err, sizeof(err)), -1);
	cr_assert_eq(cpus_parse_list("-1", &s, err, sizeof(err)), -1);
}

/* config_check: what start-up would refuse, with file:line. */
Test(config_check, refuses_what_startup_would)
{
	static const struct bad_case cases[] = {
		{ "[lcores]\ncores = 2-9\n", 2, "lcores.cores: CPU 8 is not on this machine (online: 0-7)" },
		{ "[lcores]\ncores = 2-5\nworkers = 2\n", 2, "lists 4 CPUs but workers = 2" },
		{ "[lcores]\ncores = 2-3\nmain_core = 3\n", 3, "main_core: CPU 3 is also in" },
		{ "[lcores]\nmain_core = 1,2\n", 2, "main_core: must be one CPU" },
		{ "[lcores]\nmain_core = 9\n", 2, "main_core: CPU 9 is not on this machine" },
		{ "[lcores]\ncores = two\n", 2, "not a CPU list" },
		{ "[smtp]\nmynetworks = 10.0.0.0/8, 192.0.2.1/24\n", 2, "'192.0.2.1/24' is not a network" },
		{ "[smtp]\nmynetworks = 0.0.0.0/0\n", 2, "'0.0.0.0/0' is not a network" },
		{ "[smtp]\nrelay_domains = example.com bad_domain!\n", 2, "'bad_domain!' is not a domain" },
		{ "\n[smtp]\nhostname = -bad-.example\n", 3, "not a host name" },
		{ "[smtp]\nhostname =\n", 2, "not a host name" },
		{ "[retry]\nschedule = 5m,10x,1h\n", 2, "'10x' is not a wait" },
		{ "[retry]\nschedule = sometimes\n", 2, "is not a wait" },
		{ "[retry]\nmin_backoff = 2h\nmax_backoff = 1h\n", 2, "above max_backoff" },
		{ "[retry]\njitter = 60%\n", 2, "retry.jitter: 60% is above 50%" },
		{ "[retry]\nper_domain = example.com quadratic\n", 2,
		  "retry.per_domain: 'example.com quadratic' is not 'domain: schedule'" },
		{ "[retry]\n\nper_domain = a.com: 5m, 1y\n", 3, "a.com: '1y' is not a wait" },
		{ "[dest]\nmessage_rate = fast\n", 2, "dest.message_rate: 'fast' is not a rate" },
		{ "[dest]\nnotify_connection_rate = 0/s\n", 2, "leave it empty for no limit" },
		{ "[dest]\nconnection_rate = 100/s burst 0\n", 2, "burst is a count" },
		{ "[dest]\ninitial_concurrency = 30\n", 2,
		  "dest.initial_concurrency: 30 is not in 1..concurrency_limit (20)" },
		{ "[dest]\nconcurrency_limit = 3\n", 0,
		  "dest.initial_concurrency: 5 is not in 1..concurrency_limit (3)" },
		{ "[dest]\nnotify_initial_concurrency = 6\n", 2,
		  "6 is not in 1..notify_concurrency_limit (5)" },
		{ "[dest]\nper_domain = example.com: concurrency_limit=0\n", 2,
		  "dest.per_domain: example.com: concurrency_limit: '0' is not a number in 1..1000" },
		{ "[dest]\nper_domain = .example.net: message_rate=1/fortnight\n", 2,
		  "the unit is s, min, h or d" },
		{ "[tls]\ncert = /nonexistent/cert.pem\nkey = /nonexistent/key.pem\n", 2, "cert" },
		{ "[tls]\ncert = /nonexistent/cert.pem\n", 0, "go together" },
		{ "[tls]\nciphers = AES128-SHA\n", 2, "tls.ciphers: 'AES128-SHA': ciphers: AES128-SHA is not ECDHE with an AEAD" },
		{ "[tls]\nciphers = HIGH\n", 2, "is not ECDHE with an AEAD" },
		{ "[tls]\nciphers = no-such-cipher\n", 2, "tls.ciphers: 'no-such-cipher'" },
		{ "[tls]\n\nciphersuites = TLS_AES_128_CCM_9\n", 3, "tls.ciphersuites: " },
		{ "[tls]\ngroups = X25519:P-999\n", 2, "tls.groups: 'X25519:P-999'" },
		{ "[queue]\ndir = spool\n", 2, "not an absolute path" },
		{ "[queue]\ndir = /nonexistent/a/spool\n", 2, "/nonexistent/a does not exist" },
		{ "[control]\nsocket = /nonexistent/a/b.sock\n", 2, "does not exist" },
		{ "[delivery]\naddress_family = ipv6\n", 2,
		  "delivery.address_family: ipv6 needs [net] address6" },
		{ "[dns]\nservers =\n", 2, "dns.servers: no server" },
		{ "[dns]\nservers = ns1.example\n", 2, "dns.servers: 'ns1.example' is not an IPv4 or IPv6 address" },
		{ "[dns]\nservers = 192.0.2.1:99999\n", 2, "'99999' is not a port" },
		{ "[dns]\nservers = 192.0.2.1:0\n", 2, "'0' is not a port" },
		{ "[dns]\nservers = 1.1.1.1 2.2.2.2 3.3.3.3 4.4.4.4 5.5.5.5\n", 2, "more than 4 servers" },
		{ "[dns]\nttl_min = 2h\nttl_max = 1h\n", 2, "dns.ttl_min: 7200s is above ttl_max (3600s)" },
		{ "[routes]\nrelayhost = [smart.example\n", 2, "routes.relayhost: '[smart.example': no closing ]" },
		{ "[routes]\nrelayhost = smart.example tls=sometimes\n", 2, "tls=none, may, encrypt or verify" },
		{ "[routes]\nrelayhost = 10 [a.example], [b.example]\n", 2, "a priority or none" },
		{ "[routes]\nroutes_file = routes\n", 2, "'routes' is not an absolute path" },
		{ "[routes]\nroutes_file = /nonexistent/routes\n", 2, "/nonexistent/routes: No such file" },
		{ "[delivery]\nhelo_name = not_a_host\n", 2, "delivery.helo_name: 'not_a_host' is not a host name" },
		{ "[delivery]\nmax_connections = 10\nmax_idle = 11\n", 3,
		  "delivery.max_idle: 11 is more than max_connections (10)" },
		{ "[delivery]\nbody_memory = 8m\n", 2, "cannot hold the largest message" },
		{ "[delivery]\ntls_ca_file = ca.pem\n", 2, "'ca.pem' is not an absolute path" },
		{ "[delivery]\ntls_ca_file = /nonexistent/ca.pem\n", 2, "delivery.tls_ca_file: " },
		{ "[smtp]\nsubmission_port = 587\n", 2,
		  "smtp.submission_port: needs [auth] users" },
		{ "[smtp]\nsubmissions_port = 25\n", 2,
		  "smtp.submissions_port: 25 is already another listener's" },
		{ "[smtp]\nsubmission_port = 587\nsubmissions_port = 587\n", 3,
		  "smtp.submissions_port: 587 is already another listener's" },
		{ "[smtp]\nstarttls = no\nsubmission_port = 587\n", 3,
		  "smtp.submission_port: needs TLS (starttls = yes)" },
		{ "[auth]\nusers = /nonexistent/users\n", 2, "auth.users: /nonexistent/users: No such file" },
		{ "[limits]\nexempt = mynetworks 10.0.0.1/8\n", 2,
		  "limits.exempt: '10.0.0.1/8' has host bits set" },
		{ "[limits]\nexempt = clients.example\n", 2,
		  "limits.exempt: 'clients.example' is not an IPv4 address" },
		{ "[quota]\nmap = quota\n", 2, "quota.map: 'quota' is not an absolute path" },
		{ "[quota]\nmap = /nonexistent/quota\n", 2, "quota.map: /nonexistent/quota: No such file" },
	};
	struct config_machine m = machine("0-7", "0-1");

	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sluice_config c;
		struct config_errors e;
		char *path = write_tmp(cases[i].text);
		char want[128];

		cr_assert_eq(config_load_file(&c, path, &e), 0, "case %u: parse: %s", i, e.msg[0]);
		cr_assert_eq(config_check(&c, &m, &e), -1, "case %u accepted", i);
		cr_assert_geq(e.count, 1);
		snprintf(want, sizeof(want), "%s:", path);
		if (cases[i].line)
			snprintf(want, sizeof(want), "%s:%d: ", path, cases[i].line);
		cr_assert_eq(strncmp(e.msg[0], want, strlen(want)), 0,
			     "case %u: '%s' does not start with '%s'", i, e.msg[0], want);
		cr_assert_not_null(strstr(e.msg[0], cases[i].needle),
				   "case %u: '%s' lacks '%s'", i, e.msg[0], cases[i].needle);
		unlink(path);
	}
}

/* The delivery policies start-up builds: from the shipped defaults, and
 * from a file that sets every kind of key. */
Test(config_check, delivery_policies)
{
	static struct retry_policy rp;
	static struct dest_policy dp;
	struct sluice_config c;
	struct config_errors e;
	struct config_machine m = machine("0-1", "0-1");
	const char *key = NULL;
	char err[256];

	cr_assert_eq(config_load_default(&c, &e), 0);
	cr_assert_eq(config_retry_policy(&c, &rp, &key, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(rp.def.kind, RETRY_EXPONENTIAL);
	cr_assert_eq(rp.conf.min_backoff_s, 300);
	cr_assert_eq(rp.conf.max_backoff_s, 4000);
	cr_assert_eq(rp.conf.jitter_ppm, 0);
	cr_assert_eq(rp.n, 0);
	cr_assert_eq(config_dest_policy(&c, &dp, &key, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(dp.def.cls[DEST_NORMAL].initial_concurrency, 5);
	cr_assert_eq(dp.def.cls[DEST_NORMAL].concurrency_limit, 20);
	cr_assert_eq(dp.def.cls[DEST_NORMAL].message_rate.n, 0, "unlimited by default");
	cr_assert_eq(dp.def.cls[DEST_NORMAL].connection_rate.n, 0);
	cr_assert_eq(dp.def.cls[DEST_NOTIFY].initial_concurrency, 2);
	cr_assert_eq(dp.def.cls[DEST_NOTIFY].concurrency_limit, 5);
	cr_assert_eq(dp.def.failed_cohort_limit, 1);
	cr_assert_eq(dp.def.dead_backoff_ns, 300 * NS_PER_SEC, "[retry] min_backoff");
	cr_assert_eq(dp.def.recipients_per_transaction, 50);
	cr_assert_eq(dp.def.messages_per_connection, 100);
	cr_assert_eq(dp.n, 0);

	const char *text =
		"[retry]\nschedule = 5m, 10m, 1h\nmin_backoff = 60s\njitter = 10%\n"
		"per_domain = example.com: quadratic; .example.net: 1h\n"
		"[dest]\nconcurrency_limit = 30\ninitial_concurrency = 10\n"
		"message_rate = 100/s burst 5\nconnection_rate = 10/min\n"
		"notify_message_rate = 1/s\nfailed_cohort_limit = 0\n"
		"recipients_per_transaction = 100\nmessages_per_connection = 1000\n"
		"per_domain = example.com: concurrency_limit=2, initial_concurrency=1\n";
	char *path = write_tmp(text);
	cr_assert_eq(config_load_file(&c, path, &e), 0, "%s", e.msg[0]);
	unlink(path);
	strcpy(c.queue.dir, "/tmp");
	cr_assert_eq(config_check(&c, &m, &e), 0, "%s", e.msg[0]);
	cr_assert_eq(config_retry_policy(&c, &rp, &key, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(rp.def.kind, RETRY_LIST);
	cr_assert_eq(rp.def.nsteps, 3);
	cr_assert_eq(rp.conf.jitter_ppm, 100000);
	cr_assert_eq(rp.n, 2);
	cr_assert_eq(retry_schedule_for(&rp, "example.com")->kind, RETRY_QUADRATIC);
	cr_assert_eq(retry_schedule_for(&rp, "mx.example.net")->step_s[0], 3600);
	cr_assert_eq(config_dest_policy(&c, &dp, &key, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(dp.def.cls[DEST_NORMAL].concurrency_limit, 30);
	cr_assert_eq(dp.def.cls[DEST_NORMAL].initial_concurrency, 10);
	cr_assert_eq(dp.def.cls[DEST_NORMAL].message_rate.n, 100);
	cr_assert_eq(dp.def.cls[DEST_NORMAL].message_rate.burst, 5);
	cr_assert_eq(dp.def.cls[DEST_NORMAL].connection_rate.period_ns, 60 * NS_PER_SEC);
	cr_assert_eq(dp.def.cls[DEST_NOTIFY].message_rate.n, 1);
	cr_assert_eq(dp.def.failed_cohort_limit, 0);
	cr_assert_eq(dp.def.dead_backoff_ns, 60 * NS_PER_SEC);
	cr_assert_eq(dp.def.recipients_per_transaction, 100);
	cr_assert_eq(dp.def.messages_per_connection, 1000);
	cr_assert_eq(dest_conf_for(&dp, "example.com")->cls[DEST_NORMAL].concurrency_limit, 2);
	cr_assert_eq(dest_conf_for(&dp, "example.com")->cls[DEST_NORMAL].message_rate.n, 100,
		     "overrides start from the [dest] defaults");
}

/* [delivery]: the delivery service's and the scheduler's settings. */
Test(config_check, delivery_section)
{
	struct sluice_config c;
	struct config_errors e;
	struct config_machine m = machine("0-3", "0-3");
	struct dlv_conf d;
	struct sched_conf sc;

	cr_assert_eq(config_load_default(&c, &e), 0);
	cr_assert(c.delivery.enabled, "a relay relays");
	config_delivery(&c, &d);
	cr_assert_str_eq(d.client.helo, "sluice.test", "the EHLO name is [smtp] hostname");
	cr_assert_eq(d.max_conns, 256);
	cr_assert_eq(d.max_idle, 64);
	cr_assert_eq(d.client.t_connect_ns, 30 * NS_PER_SEC);
	cr_assert_eq(d.client.t_greeting_ns, 300 * NS_PER_SEC);
	cr_assert_eq(d.client.t_data_ns, 120 * NS_PER_SEC);
	cr_assert_eq(d.client.t_block_ns, 180 * NS_PER_SEC);
	cr_assert_eq(d.client.t_dot_ns, 600 * NS_PER_SEC);
	cr_assert_null(d.tls);
	config_sched(&c, &sc);
	cr_assert_eq(sc.active_limit, 20000);
	cr_assert_eq(sc.scan_batch, 1000);
	cr_assert_eq(sc.lease_s, 3600);
	cr_assert_eq(sc.body_memory, 256u << 20);
	cr_assert_eq(sc.keep_idle_ms, 2000);

	const char *text =
		"[lcores]\nworkers = 2\n"
		"[delivery]\nenabled = no\nbody_memory = 64m\nactive_limit = 500\nscan_batch = 50\n"
		"claim_lease = 10m\nkeep_idle = 500ms\nmax_connections = 100\nmax_idle = 0\n"
		"helo_name = out.example.net\nconnect_timeout = 5s\ngreeting_timeout = 6s\n"
		"helo_timeout = 7s\nstarttls_timeout = 8s\nrset_timeout = 9s\nmail_timeout = 10s\n"
		"rcpt_timeout = 11s\ndata_init_timeout = 12s\ndata_xfer_timeout = 13s\n"
		"data_done_timeout = 14s\nquit_timeout = 15s\n";
	char *path = write_tmp(text);
	cr_assert_eq(config_load_file(&c, path, &e), 0, "%s", e.msg[0]);
	unlink(path);
	strcpy(c.queue.dir, "/tmp");
	cr_assert_eq(config_check(&c, &m, &e), 0, "%s", e.msg[0]);
	cr_assert_not(c.delivery.enabled);
	config_delivery(&c, &d);
	cr_assert_str_eq(d.client.helo, "out.example.net");
	cr_assert_eq(d.max_conns, 100);
	cr_assert_eq(d.max_idle, 0);
	uint64_t want[] = { 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };
	uint64_t got[] = { d.client.t_connect_ns, d.client.t_greeting_ns, d.client.t_ehlo_ns,
			   d.client.t_starttls_ns, d.client.t_rset_ns, d.client.t_mail_ns,
			   d.client.t_rcpt_ns, d.client.t_data_ns, d.client.t_block_ns,
			   d.client.t_dot_ns, d.client.t_quit_ns };
	for (unsigned i = 0; i < 11; i++)
		cr_assert_eq(got[i], want[i] * NS_PER_SEC, "timeout %u", i);
	config_sched(&c, &sc);
	cr_assert_eq(sc.active_limit, 500);
	cr_assert_eq(sc.scan_batch, 50);
	cr_assert_eq(sc.lease_s, 600);
	cr_assert_eq(sc.body_memory, 64u << 20);
	cr_assert_eq(sc.keep_idle_ms, 500);
	cr_assert_eq(sc.jobs_max, 2 * (100 + 64), "every connection of every worker, and some");
}

/* Lifetimes, notices and loops ([retry], [smtp] loop_action, [impair]
 * notice_hold): defaults, values, and what is refused. */
Test(config_check, bounce_settings)
{
	static struct retry_policy rp;
	struct sluice_config c;
	struct config_errors e;
	struct config_machine m = machine("0-1", "0-1");
	struct sched_conf sc;
	struct smtp_conf ec;
	const char *key = NULL;
	char err[256];

	cr_assert_eq(config_load_default(&c, &e), 0);
	cr_assert_eq(c.retry.lifetime_s, 5 * 86400);
	cr_assert_eq(c.retry.bounce_lifetime_s, 86400);
	cr_assert_eq(c.retry.delay_warning_s, 0, "off unless NOTIFY=DELAY asks");
	cr_assert_str_eq(c.retry.double_bounce_to, "postmaster");
	cr_assert_eq(c.smtp.loop_action, SMTP_LOOP_REJECT);
	cr_assert_eq(c.delivery.notice_hold_ns, 0);
	cr_assert_eq(config_retry_policy(&c, &rp, &key, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(rp.lifetime_s, 5 * 86400);
	cr_assert_eq(rp.bounce_lifetime_s, 86400);
	cr_assert_eq(rp.nlife, 0);
	config_sched(&c, &sc);
	cr_assert_str_eq(sc.bounce.hostname, "sluice.test");
	cr_assert_str_eq(sc.bounce.double_bounce_to, "root@localhost", "[smtp] postmaster");
	cr_assert_eq(sc.bounce.size_limit, 50000);
	cr_assert_eq(sc.bounce.lifetime_s, 86400);
	cr_assert_not(sc.loop_hold);
	config_smtp_engine(&c, &ec);
	cr_assert_eq(ec.loop, SMTP_LOOP_REJECT);

	const char *text =
		"[smtp]\nloop_action = hold\npostmaster = noc@isp.example\n"
		"[retry]\nlifetime = 3d\nbounce_lifetime = 6h\n"
		"lifetime_per_domain = slow.example: 7d; .example.net: 12h\n"
		"delay_warning_time = 2h\ndouble_bounce_to = dbl@isp.example\n"
		"bounce_size_limit = 100k\n"
		"[impair]\nnotice_hold = 500ms\n";
	char *path = write_tmp(text);
	cr_assert_eq(config_load_file(&c, path, &e), 0, "%s", e.msg[0]);
	unlink(path);
	strcpy(c.queue.dir, "/tmp");
	cr_assert_eq(config_check(&c, &m, &e), 0, "%s", e.msg[0]);
	cr_assert_eq(config_retry_policy(&c, &rp, &key, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(rp.nlife, 2);
	cr_assert_eq(retry_lifetime_for(&rp, "slow.example", false), 7 * 86400);
	cr_assert_eq(retry_lifetime_for(&rp, "slow.example", true), 6 * 3600,
		     "bounces: never longer than bounce_lifetime");
	cr_assert_eq(retry_lifetime_for(&rp, "mx.example.net", false), 12 * 3600);
	cr_assert_eq(retry_lifetime_for(&rp, "example.net", false), 3 * 86400, ".x: subdomains");
	cr_assert_eq(retry_lifetime_for(&rp, "other.example", true), 6 * 3600);
	cr_assert(retry_lifetime_overridden(&rp, "SLOW.example."));
	cr_assert_not(retry_lifetime_overridden(&rp, "other.example"));
	config_sched(&c, &sc);
	cr_assert_str_eq(sc.bounce.double_bounce_to, "dbl@isp.example");
	cr_assert_eq(sc.bounce.size_limit, 100 * 1024);
	cr_assert_eq(sc.bounce.lifetime_s, 6 * 3600);
	cr_assert_eq(sc.delay_warning_s, 2 * 3600);
	cr_assert(sc.loop_hold);
	cr_assert_eq(sc.notice_hold_ns, 500 * NS_PER_MS);
	config_smtp_engine(&c, &ec);
	cr_assert_eq(ec.loop, SMTP_LOOP_HOLD);
	/* empty: double bounces are dropped */
	cr_assert_eq(config_load_default(&c, &e), 0);
	strcpy(c.retry.double_bounce_to, "");
	config_sched(&c, &sc);
	cr_assert_str_eq(sc.bounce.double_bounce_to, "");

	static const struct { const char *text, *needle; } bad[] = {
		{ "[smtp]\nloop_action = bounce\n", "is not reject or hold" },
		{ "[retry]\nlifetime_per_domain = a.example: 30s\n", "lifetime_per_domain" },
		{ "[retry]\nlifetime_per_domain = a.example 2d\n", "lifetime_per_domain" },
		{ "[retry]\nlifetime_per_domain = a.example: forever\n", "lifetime_per_domain" },
		{ "[retry]\ndouble_bounce_to = not a mailbox\n", "double_bounce_to" },
		{ "[retry]\nbounce_lifetime = 10s\n", "bounce_lifetime" },
		{ "[retry]\ndelay_warning_time = 31d\n", "delay_warning_time" },
		{ "[impair]\nnotice_hold = 2m\n", "notice_hold" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		path = write_tmp(bad[i].text);
		int r = config_load_file(&c, path, &e);
		unlink(path);
		if (r == 0) {
			strcpy(c.queue.dir, "/tmp");
			r = config_check(&c, &m, &e);
		}
		cr_assert_neq(r, 0, "accepted: %s", bad[i].text);
		cr_assert(strstr(e.msg[0], bad[i].needle), "%s: %s", bad[i].text, e.msg[0]);
	}
}

/* Every line of the routes file is checked, each error with its line. */
Test(config_check, routes_file_lines)
{
	struct sluice_config c;
	struct config_errors e;
	struct config_machine m = machine("0-1", "0-1");
	char routes[64], conf[128];

	snprintf(routes, sizeof(routes), "%s", write_tmp(
		"# routes\n"
		"example.com   [192.0.2.1]:2525\n"
		"bad_domain!   [192.0.2.1]\n"
		".example.net  10 [a.example.net], 20 b.example.net tls=verify\n"
		"example.org\n"
		"example.edu   [192.0.2.1]:port\n"));
	snprintf(conf, sizeof(conf), "[routes]\nroutes_file = %s\n[queue]\ndir = /tmp\n", routes);
	char *path = write_tmp(conf);
	cr_assert_eq(config_load_file(&c, path, &e), 0, "%s", e.msg[0]);
	cr_assert_eq(config_check(&c, &m, &e), -1);
	cr_assert_eq(e.count, 3, "%u errors: %s", e.count, e.msg[0]);
	char want[200];
	snprintf(want, sizeof(want), ":2: routes.routes_file: %s:3: 'bad_domain!' is not a domain", routes);
	cr_assert_not_null(strstr(e.msg[0], want), "%s", e.msg[0]);
	snprintf(want, sizeof(want), "%s:5: example.org: no route after the domain", routes);
	cr_assert_not_null(strstr(e.msg[1], want), "%s", e.msg[1]);
	snprintf(want, sizeof(want), "%s:6: 'port' is not a port", routes);
	cr_assert_not_null(strstr(e.msg[2], want), "%s", e.msg[2]);
	unlink(routes);
	unlink(path);
}

/* What the daemon will hand the resolver and the router. */
Test(config_check, dns_and_route_settings)
{
	struct sluice_config c;
	struct config_errors e;
	struct dns_conf d;
	struct route_conf r;
	char *path = write_tmp("[dns]\nservers = 192.0.2.1, 192.0.2.2:5353\ntimeout = 1500ms\n"
			       "attempts = 4\nttl_min = 1m\nttl_max = 2h\nneg_ttl_max = 10m\n"
			       "cache_entries = 500\ncache_memory = 1m\n"
			       "[routes]\nrelayhost = [smart.example]:587 tls=encrypt\n"
			       "[smtp]\nhostname = mx.example.net\n");

	cr_assert_eq(config_load_file(&c, path, &e), 0, "%s", e.msg[0]);
	unlink(path);
	config_dns(&c, &d);
	cr_assert_str_eq(d.servers, "192.0.2.1, 192.0.2.2:5353");
	cr_assert_eq(d.timeout_ms, 1500);
	cr_assert_eq(d.attempts, 4);
	cr_assert_eq(d.ttl_min, 60);
	cr_assert_eq(d.ttl_max, 7200);
	cr_assert_eq(d.neg_ttl_max, 600);
	cr_assert_eq(d.cache_entries, 500);
	cr_assert_eq(d.cache_bytes, 1u << 20);
	config_route(&c, &r);
	cr_assert_str_eq(r.hostname, "mx.example.net");
	cr_assert_str_eq(r.relayhost, "[smart.example]:587 tls=encrypt");
	cr_assert_eq(r.nself, 1);
	cr_assert_eq(r.self[0], inet_addr("198.18.0.2"));
	/* the shipped defaults */
	cr_assert_eq(config_load_default(&c, &e), 0);
	config_dns(&c, &d);
	cr_assert_str_eq(d.servers, "198.18.0.1");
	cr_assert_eq(d.timeout_ms, 2000);
	cr_assert_eq(d.attempts, 2);
	cr_assert_eq(d.ttl_max, 86400);
	cr_assert_eq(d.neg_ttl_max, 3600);
	cr_assert_str_eq(c.routes.file, "");
	/* the shipped address families: any, no order; IPv4 only without an
	 * IPv6 address to send from */
	config_route(&c, &r);
	cr_assert_eq(r.family, c.dp.addr.ip6_ok ? ROUTE_AF_ANY : ROUTE_AF_IPV4);
	cr_assert_eq(r.prefer, ROUTE_AF_ANY);
}

/* [delivery] address_family and prefer reach the router; ipv6 needs an
 * IPv6 address. */
Test(config_check, delivery_address_family)
{
	struct sluice_config c;
	struct config_errors e;
	struct route_conf r;
	char *path = write_tmp("[net]\naddress6 = fd00::2/64\n"
			       "[delivery]\naddress_family = any\nprefer = ipv6\n");

	cr_assert_eq(config_load_file(&c, path, &e), 0, "%s", e.msg[0]);
	unlink(path);
	config_route(&c, &r);
	cr_assert_eq(r.family, ROUTE_AF_ANY);
	cr_assert_eq(r.prefer, ROUTE_AF_IPV6);
	cr_assert(r.self6_ok);
	path = write_tmp("[delivery]\nprefer = ipv7\n");
	cr_assert_neq(config_load_file(&c, path, &e), 0);
	unlink(path);
}

/* [control]: the socket's mode (octal), its groups by name or number, and
 * the combinations start-up would refuse. */
Test(config_check, control_socket_access)
{
	struct sluice_config c;
	struct config_errors e;
	struct config_machine m = machine("0-1", "0-1");
	struct ctl_server_conf s;
	char err[256];

	cr_assert_eq(config_load_default(&c, &e), 0);
	cr_assert_eq(c.control.mode, 0660, "the default mode");
	config_control(&c, &s, err, sizeof(err));
	cr_assert_eq(s.mode, 0660);
	cr_assert_eq(s.group, CTL_NO_GROUP, "no group by default: root only");
	cr_assert_eq(s.read_group, CTL_NO_GROUP);

	char *path = write_tmp("[control]\ngroup = root\nread_group = 61112\nmode = 0666\n"
			       "[queue]\ndir = /tmp/sluice-check-spool\n");
	cr_assert_eq(config_load_file(&c, path, &e), 0, "%s", e.msg[0]);
	unlink(path);
	cr_assert_eq(c.control.mode, 0666);
	cr_assert_eq(config_check(&c, &m, &e), 0, "%s", e.msg[0]);
	cr_assert_eq(config_control(&c, &s, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(s.group, 0, "group by name");
	cr_assert_eq(s.read_group, 61112, "group by number");
	char *text = dump(&c);
	cr_assert(strstr(text, "mode = 0666\n"), "written back in octal");
	free(text);

	/* not octal, too large */
	path = write_tmp("[control]\nmode = 0689\n");
	cr_assert_eq(config_load_file(&c, path, &e), -1);
	cr_assert(strstr(e.msg[0], ":2: control.mode: '0689' is not a file mode in octal"), "%s",
		  e.msg[0]);
	unlink(path);
	path = write_tmp("[control]\nmode = 01777\n");
	cr_assert_eq(config_load_file(&c, path, &e), -1);
	unlink(path);

	/* no such group; a read_group the mode keeps out; the same group twice;
	 * a group the mode keeps out */
	path = write_tmp("[control]\ngroup = no-such-group-here\nread_group = 5\nmode = 0660\n"
			 "[queue]\ndir = /tmp/sluice-check-spool\n");
	cr_assert_eq(config_load_file(&c, path, &e), 0);
	unlink(path);
	cr_assert_eq(config_check(&c, &m, &e), -1);
	cr_assert_eq(e.count, 2, "%u: %s / %s", e.count, e.msg[0], e.msg[1]);
	cr_assert(strstr(e.msg[0], ":2: control.group: no group 'no-such-group-here'"), "%s",
		  e.msg[0]);
	cr_assert(strstr(e.msg[1], "does not let read_group '5' connect"), "%s", e.msg[1]);
	path = write_tmp("[control]\ngroup = 7\nread_group = 7\nmode = 0606\n"
			 "[queue]\ndir = /tmp/sluice-check-spool\n");
	cr_assert_eq(config_load_file(&c, path, &e), 0);
	unlink(path);
	cr_assert_eq(config_check(&c, &m, &e), -1);
	cr_assert_eq(e.count, 2, "%u: %s / %s", e.count, e.msg[0], e.msg[1]);
	cr_assert(strstr(e.msg[0], "0606 does not let group '7' connect"), "%s", e.msg[0]);
	cr_assert(strstr(e.msg[1], "'7' is the admins' group too"), "%s", e.msg[1]);
}

/* [cluster]: an address hiredis can use, no TLS (Debian's hiredis has
 * none), a name (else [smtp] hostname), lease_ttl of at least 1 s. */
Test(config_check, cluster_section)
{
	struct sluice_config c;
	struct config_errors e;
	struct config_machine m = machine("0-1", "0-1");
	struct cluster_conf k;

	char *path = write_tmp("[smtp]\nhostname = mx1.example\n[cluster]\n"
			       "redis = 127.0.0.1:6379\nlease_ttl = 5s\n"
			       "[queue]\ndir = /tmp/sluice-check-spool\n");
	cr_assert_eq(config_load_file(&c, path, &e), 0, "%s", e.msg[0]);
	unlink(path);
	cr_assert_eq(config_check(&c, &m, &e), 0, "%s", e.msg[0]);
	config_cluster(&c, &k);
	cr_assert_str_eq(k.name, "mx1.example", "the hostname when no name is given");
	cr_assert_eq(k.lease_ttl_ns, 5 * NS_PER_SEC);

	path = write_tmp("[cluster]\nredis = redis-host\ntls = yes\nname = bad name\n"
			 "[queue]\ndir = /tmp/sluice-check-spool\n");
	cr_assert_eq(config_load_file(&c, path, &e), 0, "%s", e.msg[0]);
	unlink(path);
	cr_assert_eq(config_check(&c, &m, &e), -1);
	cr_assert(strstr(e.msg[e.count - 1], ":2: cluster.redis: 'redis-host' is neither HOST:PORT"),
		  "%s", e.msg[e.count - 1]);
	c.cluster.redis[0] = '\0';
	e.count = 0;
	cr_assert_eq(config_check(&c, &m, &e), 0, "no redis: the rest is not looked at");
	strcpy(c.cluster.redis, "/run/redis/redis.sock");
	cr_assert_eq(config_check(&c, &m, &e), -1);
	cr_assert(strstr(e.msg[e.count - 1], ":3: cluster.tls: Debian 12's hiredis (0.14) has no TLS"),
		  "%s", e.msg[e.count - 1]);
	c.cluster.tls = false;
	e.count = 0;
	cr_assert_eq(config_check(&c, &m, &e), -1);
	cr_assert(strstr(e.msg[0], "cluster.name: 'bad name'"), "%s", e.msg[0]);

	path = write_tmp("[cluster]\nlease_ttl = 500ms\n");
	cr_assert_eq(config_load_file(&c, path, &e), -1, "under 1 s");
	unlink(path);
}

Test(config_check, shipped_file_passes)
{
	struct sluice_config c;
	struct config_errors e;
	struct config_machine m = machine("0-1", "0-1");

	cr_assert_eq(config_load_file(&c, SOURCE_ROOT "/firmware-config/sluice.conf", &e), 0);
	strcpy(c.queue.dir, "/tmp/sluice-check-spool");	/* /var/spool may be absent here */
	cr_assert_eq(config_check(&c, &m, &e), 0, "%s", e.msg[0]);
	cr_assert_eq(c.dp.plan.workers, 1);
	cr_assert_eq(c.dp.plan.main_cpu, 0);
	cr_assert_eq(c.dp.plan.worker_cpu[0], 1);
}

/* A long value (here 70 networks in mynetworks, ~900 characters) fits in a
 * line of up to CONFIG_LINE_MAX; libinih's default buffer held 198. */
Test(config, long_lines_up_to_the_limit)
{
	struct sluice_config c;
	struct config_errors e;
	char text[CONFIG_LINE_MAX + 64] = "[smtp]\nmynetworks = ";
	struct config_machine m = machine("0-1", "0-1");

	for (int i = 0; i < 70; i++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), "%s10.%d.0.0/16",
			 i ? ", " : "", i);
	strcat(text, "\n");
	cr_assert_gt(strlen(text), 900);
	char *path = write_tmp(text);
	cr_assert_eq(config_load_file(&c, path, &e), 0, "%s", e.msg[0]);
	strcpy(c.queue.dir, "/tmp/sluice-check-spool");
	cr_assert_eq(config_check(&c, &m, &e), 0, "%s", e.msg[0]);
	cr_assert_not_null(strstr(c.smtp.mynetworks, "10.69.0.0/16"));
	unlink(path);
}
