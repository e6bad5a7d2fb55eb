/*
 * test_maillog.c - the mail log's sinks (control/maillog.h): a file gets
 * one syslog-stamped line per event, tagged sluice/PROGRAM[pid], appended
 * to what was there; the syslog sink sends one RFC 3164 datagram per event,
 * facility mail at info (<22>), to the socket named; control characters
 * from afar become blanks (one event, one line); a sink that cannot be
 * opened is an error, not a silent loss.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "control/maillog.h"

static char dir[] = "/tmp/sluice-maillog-XXXXXX";

static void setup(void)
{
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[128];
	maillog_close();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(maillog, .init = setup, .fini = teardown);

/* "Nov 30 10:20:01 HOST sluice/PROG[PID]: TEXT" */
static void check_line(const char *line, const char *host, const char *prog, const char *text)
{
	char want[512];

	cr_assert_gt(strlen(line), 16, "%s", line);
	cr_assert(line[3] == ' ' && line[6] == ' ' && line[9] == ':' && line[12] == ':' &&
		  line[15] == ' ', "a syslog stamp: %s", line);
	snprintf(want, sizeof(want), "%s%ssluice/%s[%d]: %s", host, host[0] ? " " : "", prog,
		 (int)getpid(), text);
	cr_assert_str_eq(line + 16, want);
}

Test(maillog, file_lines_stamped_tagged_appended)
{
	char path[128], err[200], line[3][512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/mail.log", dir);
	f = fopen(path, "w");
	fputs("an older line\n", f);
	fclose(f);
	cr_assert_eq(maillog_open(path, "mx.test", err, sizeof(err)), 0, "%s", err);
	maillog(ML_SMTP, "%s: to=<%s>, status=sent (250 ok)", "001ABC", "a@b.test");
	maillog(ML_SMTPD, "NOQUEUE: reject: RCPT from x[192.0.2.1]: 554 no\r\nFAKE: line");
	maillog(ML_POSTSUPER, "001ABC: removed");
	maillog_close();
	f = fopen(path, "r");
	cr_assert_not_null(f);
	cr_assert_not_null(fgets(line[0], sizeof(line[0]), f));
	cr_assert_str_eq(line[0], "an older line\n");
	for (int i = 0; i < 3; i++) {
		cr_assert_not_null(fgets(line[i], sizeof(line[i]), f), "line %d", i);
		line[i][strcspn(line[i], "\n")] = '\0';
	}
	cr_assert_null(fgets(line[0] + 500, 12, f), "three lines, no more");
	fclose(f);
	check_line(line[0], "mx.test", "smtp", "001ABC: to=<a@b.test>, status=sent (250 ok)");
	check_line(line[1], "mx.test", "smtpd",
		   "NOQUEUE: reject: RCPT from x[192.0.2.1]: 554 no  FAKE: line");
	check_line(line[2], "mx.test", "postsuper", "001ABC: removed");
	cr_assert_eq(maillog_lost(), 0);
}

/* logrotate moves the file away; a reopen makes a new one under the name,
 * and no line is lost or split: before, in the moved file; after, in the
 * new one. Syslog and the own log have nothing to reopen. */
Test(maillog, reopen_after_rotation)
{
	char sub[96], path[128], moved[160], err[256], buf[1024];
	FILE *f;

	snprintf(sub, sizeof(sub), "%s/log", dir);
	snprintf(path, sizeof(path), "%s/mail.log", sub);
	snprintf(moved, sizeof(moved), "%s/mail.log.1", dir);
	cr_assert_eq(mkdir(sub, 0700), 0);
	cr_assert_eq(maillog_reopen(err, sizeof(err)), 0, "no sink: nothing to do");
	cr_assert_eq(maillog_open(path, "mx.test", err, sizeof(err)), 0, "%s", err);
	maillog(ML_QMGR, "ABC: before");
	cr_assert_eq(rename(path, moved), 0);
	maillog(ML_QMGR, "ABC: still the old file");
	cr_assert_eq(maillog_reopen(err, sizeof(err)), 0, "%s", err);
	maillog(ML_QMGR, "ABC: after");
	f = fopen(moved, "r");
	cr_assert_not_null(f);
	cr_assert_not_null(fgets(buf, sizeof(buf), f));
	cr_expect_not_null(strstr(buf, "ABC: before"));
	cr_assert_not_null(fgets(buf, sizeof(buf), f));
	cr_expect_not_null(strstr(buf, "ABC: still the old file"));
	cr_expect_null(fgets(buf, sizeof(buf), f), "the moved file got a line after the reopen");
	fclose(f);
	f = fopen(path, "r");
	cr_assert_not_null(f, "no new file under the name");
	cr_assert_not_null(fgets(buf, sizeof(buf), f));
	cr_expect_not_null(strstr(buf, "ABC: after"));
	cr_expect_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	cr_expect_eq(maillog_lost(), 0);
	/* the directory went away: an error, and the file in use stays so */
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(rmdir(sub), 0);
	cr_expect_eq(maillog_reopen(err, sizeof(err)), -1);
	cr_expect_not_null(strstr(err, "reopen"), "%s", err);
	maillog(ML_QMGR, "ABC: into the unlinked file");
	cr_expect_eq(maillog_lost(), 0, "the old descriptor was lost");
}

Test(maillog, syslog_datagrams_facility_mail)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char where[160], err[200], buf[1024];
	int s = socket(AF_UNIX, SOCK_DGRAM, 0);
	ssize_t n;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/log", dir);
	cr_assert_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	snprintf(where, sizeof(where), "syslog:%s", sa.sun_path);
	cr_assert_eq(maillog_open(where, "mx.test", err, sizeof(err)), 0, "%s", err);
	maillog(ML_QMGR, "001ABC: from=<%s>, size=%d, nrcpt=%d (queue active)", "s@x.test", 300, 1);
	n = recv(s, buf, sizeof(buf) - 1, 0);
	cr_assert_gt(n, 4);
	buf[n] = '\0';
	cr_assert(strncmp(buf, "<22>", 4) == 0, "facility mail, info: %s", buf);
	check_line(buf + 4, "", "qmgr", "001ABC: from=<s@x.test>, size=300, nrcpt=1 (queue active)");
	close(s);
}

Test(maillog, a_sink_that_cannot_open_is_an_error)
{
	char err[200], where[160];

	snprintf(where, sizeof(where), "%s/no/such/dir/mail.log", dir);
	cr_assert_eq(maillog_open(where, "mx.test", err, sizeof(err)), -1);
	cr_assert(strstr(err, "mail log"), "%s", err);
	snprintf(where, sizeof(where), "syslog:%s/nobody-listens", dir);
	cr_assert_eq(maillog_open(where, "mx.test", err, sizeof(err)), -1);
	cr_assert(strstr(err, "syslog socket"), "%s", err);
}
