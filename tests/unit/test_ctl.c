/*
 * test_ctl.c - the control socket without a daemon: the wire format
 * (control/ctl_proto.h), the command table and access levels, and the
 * server's framing and limits (control/ctl_server.h) driven through real
 * sockets (socketpairs adopted as clients, and a listening socket for the
 * tests with other users) and its own poll/service functions, on a clock
 * the test moves.
 *
 * The server gets a command table of its own here: commands that echo
 * their words, make a reply of a given size, defer, fail, or need admin.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "control/ctl_proto.h"
#include "control/ctl_server.h"

/* ---- the test's commands ------------------------------------------------------------ */

struct ctl_ctx {
	struct ctl_server *s;
	struct ctl_ticket ticket;	/* the last `later` request's */
	unsigned deferred;
};

static int c_echo(struct ctl_ctx *c, int argc, char **argv, json_t **result)
{
	json_t *a = json_array();

	for (int i = 0; i < argc; i++)
		json_array_append_new(a, json_string(argv[i]));
	*result = json_pack("{s:o}", "words", a);
	return 0;
}

/* big N: a result whose JSON text is about N bytes */
static int c_big(struct ctl_ctx *c, int argc, char **argv, json_t **result)
{
	size_t n;
	char *s;

	if (argc != 1)
		return CTL_USAGE;
	n = strtoul(argv[0], NULL, 10);
	s = malloc(n + 1);
	for (size_t i = 0; i < n; i++)
		s[i] = (char)('a' + i % 26);
	s[n] = '\0';
	*result = json_pack("{s:s}", "big", s);
	free(s);
	return 0;
}

static int c_later(struct ctl_ctx *c, int argc, char **argv, json_t **result)
{
	if (ctl_server_defer(c->s, &c->ticket) < 0)
		return -1;
	c->deferred++;
	return CTL_DEFERRED;
}

/* at once: takes a ticket and answers through it before returning */
static int c_now(struct ctl_ctx *c, int argc, char **argv, json_t **result)
{
	struct ctl_ticket t;

	if (ctl_server_defer(c->s, &t) < 0)
		return -1;
	ctl_server_answer_json(c->s, t, true, json_string("answered inside"));
	return CTL_DEFERRED;
}

/* takes a ticket, then fails at once (plane_submit refusing the request) */
static int c_defer_fail(struct ctl_ctx *c, int argc, char **argv, json_t **result)
{
	if (ctl_server_defer(c->s, &c->ticket) < 0)
		return -1;
	*result = json_string("refused after the ticket");
	return -1;
}

static int c_fail(struct ctl_ctx *c, int argc, char **argv, json_t **result)
{
	*result = json_string("it failed on purpose");
	return -1;
}

static int c_admin(struct ctl_ctx *c, int argc, char **argv, json_t **result)
{
	*result = json_true();
	return 0;
}

static const struct ctl_cmd table[] = {
	{ "help", NULL, CTL_READ, NULL, "", "" },	/* fn set in setup (needs the table) */
	{ "echo", NULL, CTL_READ, c_echo, "[WORD...]", "Echo the words." },
	{ "big", NULL, CTL_READ, c_big, "N", "A reply of N bytes." },
	{ "later", NULL, CTL_READ, c_later, "", "Answered later." },
	{ "now", NULL, CTL_READ, c_now, "", "Answered through a ticket at once." },
	{ "fail", NULL, CTL_READ, c_fail, "", "Fails." },
	{ "dfail", NULL, CTL_READ, c_defer_fail, "", "Takes a ticket, then fails." },
	{ "fam", "one", CTL_READ, c_echo, "X", "Family member one." },
	{ "fam", "two", CTL_ADMIN, c_admin, "", "Family member two, admins only." },
	{ "admin", NULL, CTL_ADMIN, c_admin, "", "Admins only." },
	{ NULL, NULL, CTL_READ, NULL, NULL, NULL },
};

static int c_help(struct ctl_ctx *c, int argc, char **argv, json_t **result)
{
	return ctl_cmd_help(table, argc, argv, result);
}

/* ---- the server, driven by hand ------------------------------------------------------- */

static struct ctl_server *srv;
static struct ctl_ctx ctx;
static uint64_t now_ms = 1000000;
static struct ctl_cmd tab[sizeof(table) / sizeof(table[0])];

static void open_server(const struct ctl_server_conf *conf)
{
	int err = 0;

	memcpy(tab, table, sizeof(table));
	tab[0].fn = c_help;
	memset(&ctx, 0, sizeof(ctx));
	srv = ctl_server_open(conf, tab, &ctx, &err);
	cr_assert_not_null(srv, "open: %s", strerror(-err));
	ctx.s = srv;
}

static void setup(void)
{
	struct ctl_server_conf conf;

	signal(SIGPIPE, SIG_IGN);
	ctl_server_conf_default(&conf);
	open_server(&conf);
}

static void teardown(void)
{
	ctl_server_close(srv);
	srv = NULL;
}

/* One poll (no waiting) and service, the clock moved by advance_ms first. */
static void turn(uint64_t advance_ms)
{
	struct pollfd pfds[CTL_POLLFDS];
	unsigned n;

	now_ms += advance_ms;
	n = ctl_server_pollfds(srv, pfds);
	if (poll(pfds, n, 0) < 0)
		cr_assert_fail("poll: %s", strerror(errno));
	ctl_server_service(srv, pfds, n, now_ms);
}

/* A client: the other end of a socketpair the server adopted, the
 * server's end with a send buffer of sndbuf bytes (0: the default). */
static int client_buf(int sndbuf)
{
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	if (sndbuf)
		cr_assert_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
	cr_assert_eq(ctl_server_adopt(srv, sv[0], now_ms), 0);
	return sv[1];
}

static int client(void)
{
	return client_buf(0);
}

static void say(int fd, const char *text)
{
	size_t len = strlen(text);

	cr_assert_eq(write(fd, text, len), (ssize_t)len);
}

/*
 * Read one reply line from fd, servicing the server in between (reading
 * at most `chunk` bytes at a time, 0: what there is), and nothing past its
 * newline (peeked first). The line (caller frees) or NULL: EOF before a
 * whole line, or nothing for 2000 turns.
 */
static char *read_line(int fd, size_t chunk)
{
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap);

	for (int idle = 0; idle < 2000;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		turn(0);
		if (poll(&p, 1, 1) <= 0) {
			idle++;
			continue;
		}
		if (len + (chunk ? chunk : 65536) + 2 > cap) {
			cap *= 2;
			buf = realloc(buf, cap);
		}
		size_t want = chunk ? chunk : cap - 1 - len;
		ssize_t r = recv(fd, buf + len, want, MSG_PEEK);
		if (r <= 0) {
			free(buf);
			return NULL;
		}
		char *nl = memchr(buf + len, '\n', (size_t)r);
		if (nl)
			r = nl - (buf + len) + 1;
		cr_assert_eq(recv(fd, buf + len, (size_t)r, 0), r);
		idle = 0;
		len += (size_t)r;
		if (nl) {
			buf[len - 1] = '\0';
			return buf;
		}
	}
	free(buf);
	return NULL;
}

/* The reply to one line: *ok and the value (caller decrefs). */
static json_t *ask_fd(int fd, const char *line, bool *ok)
{
	char err[256], *reply;
	json_t *v = NULL;

	if (line)
		say(fd, line);
	reply = read_line(fd, 0);
	cr_assert_not_null(reply, "a reply to %s", line ? line : "(nothing)");
	cr_assert_eq(ctl_reply_parse(reply, strlen(reply), ok, &v, err, sizeof(err)), 0,
		     "%s: %s", err, reply);
	free(reply);
	return v;
}

/* After the server closed its end: read() sees EOF (servicing meanwhile). */
static bool closed_by_server(int fd)
{
	char b[4096];

	for (int i = 0; i < 2000; i++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		turn(0);
		if (poll(&p, 1, 1) > 0) {
			ssize_t r = read(fd, b, sizeof(b));
			if (r <= 0)
				return true;
		}
	}
	return false;
}

struct stat_query {
	const char *name;
	uint64_t v;
	bool found;
};

static void stat_visit(void *user, const char *group, const char *n, uint64_t v)
{
	struct stat_query *q = user;

	if (strcmp(n, q->name) == 0 && strcmp(group, "ctl") == 0) {
		q->v = v;
		q->found = true;
	}
}

/* The server's counter ctl.NAME. */
static uint64_t stat_of(const char *name)
{
	struct stat_query q = { name, 0, false };

	ctl_server_stats_visit(srv, stat_visit, &q);
	cr_assert(q.found, "counter ctl.%s", name);
	return q.v;
}

/* ---- the wire format ------------------------------------------------------------------ */

Test(proto, request_round_trip_utf8_and_control_characters)
{
	/* a UTF-8 domain (IDN, CJK, emoji) and control characters, escape
	 * sequences and quotes: all come back byte for byte */
	char *words[] = { "dns", "lookup", "bücher.例え.jp", "tab\there\x01\x1b[2J\"\\/\x7f",
			  "😀", NULL };
	char err[256], *line;
	size_t len;
	struct ctl_request rq;

	line = ctl_request_encode(5, words, &len, err, sizeof(err));
	cr_assert_not_null(line, "%s", err);
	cr_assert_eq(line[len - 1], '\n');
	for (size_t i = 0; i + 1 < len; i++)
		cr_assert((unsigned char)line[i] >= 0x20,
			  "no raw control character in the line (byte %zu: %02x)", i,
			  (unsigned char)line[i]);
	cr_assert(strstr(line, "bücher.例え.jp"), "UTF-8 is sent as UTF-8: %s", line);
	cr_assert(strstr(line, "\\t") && strstr(line, "\\u0001") && strstr(line, "\\u001B"),
		  "control characters escaped: %s", line);
	cr_assert_eq(ctl_request_parse(line, len - 1, &rq, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(rq.argc, 5);
	for (int i = 0; i < 5; i++)
		cr_assert_str_eq(rq.argv[i], words[i]);
	cr_assert_null(rq.argv[5]);
	ctl_request_free(&rq);
	free(line);
}

Test(proto, reply_round_trip_utf8_and_control_characters)
{
	const char *text = "relay=mx.bücher.example said: 550 \x1b]0;pwned\x07 \"no\"\r\n";
	json_t *v = json_pack("{s:s,s:i,s:f}", "why", text, "n", 42, "r", 0.1), *got;
	char err[256], *line;
	size_t len;
	bool ok, too_large;

	line = ctl_reply_encode(true, v, CTL_REPLY_MAX, &len, &too_large);
	cr_assert_not_null(line);
	cr_assert_not(too_large);
	cr_assert_eq(memchr(line, '\n', len), line + len - 1, "one newline, at the end");
	cr_assert(strstr(line, "\"r\":0.1"), "reals as written: %s", line);
	cr_assert_eq(ctl_reply_parse(line, len - 1, &ok, &got, err, sizeof(err)), 0, "%s", err);
	cr_assert(ok);
	cr_assert_str_eq(json_string_value(json_object_get(got, "why")), text);
	cr_assert_eq(json_integer_value(json_object_get(got, "n")), 42);
	json_decref(got);
	free(line);

	line = ctl_reply_encode(false, json_string("bücher: \x01 no"), CTL_REPLY_MAX, &len, NULL);
	cr_assert_eq(ctl_reply_parse(line, len - 1, &ok, &got, err, sizeof(err)), 0, "%s", err);
	cr_assert_not(ok);
	cr_assert_str_eq(json_string_value(got), "bücher: \x01 no");
	json_decref(got);
	free(line);
}

Test(proto, malformed_requests_are_refused_with_a_reason)
{
	static const struct { const char *line; const char *why; } bad[] = {
		{ "", "not JSON" },
		{ "ping", "not JSON" },
		{ "{\"argv\":[\"ping\"]", "not JSON" },
		{ "{\"argv\":[\"ping\"]} x", "not JSON" },
		{ "[\"ping\"]", "nothing else" },
		{ "{\"argv\":\"ping\"}", "nothing else" },
		{ "{\"argv\":[\"ping\"],\"x\":1}", "nothing else" },
		{ "{\"argv\":[\"ping\"],\"argv\":[\"stats\"]}", "not JSON" },	/* duplicate */
		{ "{\"argv\":[]}", "0 words" },
		{ "{\"argv\":[\"ping\",1]}", "argv[1] is not a string" },
		{ "{\"argv\":[null]}", "argv[0] is not a string" },
		{ "{\"argv\":[\"a\\u0000b\"]}", "not JSON" },	/* NUL */
		{ "{\"argv\":[\"\xff\xfe\"]}", "not JSON" },	/* not UTF-8 */
		{ "{\"argv\":[\"\xc0\xaf\"]}", "not JSON" },	/* overlong */
		{ "{\"argv\":[\"\\ud800\"]}", "not JSON" },	/* lone surrogate */
		{ "{\"argv\":[\"a\nb\"]}", "not JSON" },	/* raw control character */
	};
	struct ctl_request rq;
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		cr_assert_eq(ctl_request_parse(bad[i].line, strlen(bad[i].line), &rq, err,
					       sizeof(err)), -1, "refused: %s", bad[i].line);
		cr_assert(strstr(err, bad[i].why), "'%s': '%s' says '%s'", bad[i].line, err,
			  bad[i].why);
		cr_assert_null(rq.argv);
	}
}

Test(proto, bounds_on_words_and_lines)
{
	struct ctl_request rq;
	char err[256], *line, *words[CTL_ARGV_MAX + 1], *long_word;
	size_t len;

	for (int i = 0; i <= CTL_ARGV_MAX; i++)
		words[i] = "w";
	line = ctl_request_encode(CTL_ARGV_MAX, words, &len, err, sizeof(err));
	cr_assert_not_null(line, "%d words fit: %s", CTL_ARGV_MAX, err);
	cr_assert_eq(ctl_request_parse(line, len - 1, &rq, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(rq.argc, CTL_ARGV_MAX);
	ctl_request_free(&rq);
	free(line);
	cr_assert_null(ctl_request_encode(CTL_ARGV_MAX + 1, words, &len, err, sizeof(err)));

	/* one more word than allowed, written by hand: refused by the server's parser */
	char *many = malloc(16 + 4 * (CTL_ARGV_MAX + 1));
	strcpy(many, "{\"argv\":[");
	for (int i = 0; i <= CTL_ARGV_MAX; i++)
		strcat(many, i ? ",\"w\"" : "\"w\"");
	strcat(many, "]}");
	cr_assert_eq(ctl_request_parse(many, strlen(many), &rq, err, sizeof(err)), -1);
	cr_assert(strstr(err, "1 to 256"), "%s", err);
	free(many);

	long_word = malloc(CTL_WORD_MAX + 2);
	memset(long_word, 'x', CTL_WORD_MAX + 1);
	long_word[CTL_WORD_MAX + 1] = '\0';
	words[0] = long_word;
	cr_assert_null(ctl_request_encode(1, words, &len, err, sizeof(err)));
	cr_assert(strstr(err, "over 4096 bytes"), "%s", err);
	long_word[CTL_WORD_MAX] = '\0';	/* exactly the limit: fine */
	line = ctl_request_encode(1, words, &len, err, sizeof(err));
	cr_assert_not_null(line, "%s", err);
	cr_assert_eq(ctl_request_parse(line, len - 1, &rq, err, sizeof(err)), 0, "%s", err);
	ctl_request_free(&rq);
	free(line);
	free(long_word);

	/* a line over CTL_REQUEST_MAX is refused whatever it holds */
	char *huge = malloc(CTL_REQUEST_MAX + 1);
	memset(huge, ' ', CTL_REQUEST_MAX);
	memcpy(huge, "{\"argv\":[\"ping\"]}", 17);
	cr_assert_eq(ctl_request_parse(huge, CTL_REQUEST_MAX, &rq, err, sizeof(err)), -1);
	cr_assert(strstr(err, "over 65536 bytes"), "%s", err);
	free(huge);
}

Test(proto, a_reply_over_the_limit_becomes_an_error)
{
	char *s = malloc(2001), *line, err[256];
	json_t *v;
	size_t len;
	bool ok, too_large;

	memset(s, 'x', 2000);
	s[2000] = '\0';
	line = ctl_reply_encode(true, json_string(s), 1000, &len, &too_large);
	cr_assert_not_null(line);
	cr_assert(too_large);
	cr_assert_leq(len, 1000);
	cr_assert_eq(ctl_reply_parse(line, len - 1, &ok, &v, err, sizeof(err)), 0, "%s", err);
	cr_assert_not(ok);
	cr_assert(strstr(json_string_value(v), "over the control socket's limit of 1000 bytes"),
		  "%s", json_string_value(v));
	json_decref(v);
	free(line);
	free(s);
}

Test(proto, text_that_is_not_utf8_is_made_so)
{
	json_t *j = ctl_json_text("ok \xff bytes \xc3\x28 and \xe2\x82 end \xf0\x9f\x98\x80");

	cr_assert_not_null(j);
	cr_assert_str_eq(json_string_value(j),
			 "ok \xef\xbf\xbd bytes \xef\xbf\xbd( and \xef\xbf\xbd\xef\xbf\xbd end "
			 "\xf0\x9f\x98\x80");
	json_decref(j);
	j = ctl_json_textn("a\0b", 3);	/* NUL, which the client's parser would refuse */
	cr_assert_str_eq(json_string_value(j), "a\xef\xbf\xbd" "b");
	json_decref(j);
	j = ctl_json_text("plain");
	cr_assert_str_eq(json_string_value(j), "plain");
	json_decref(j);
	j = ctl_json_text(NULL);
	cr_assert_str_eq(json_string_value(j), "");
	json_decref(j);
}

/* ---- the command table, access levels ------------------------------------------------- */

Test(table, commands_and_families_are_found_by_their_words)
{
	char *a1[] = { "echo", "x", NULL }, *a2[] = { "fam", "two", NULL }, *a3[] = { "fam", NULL },
	     *a4[] = { "fam", "three", NULL }, *a5[] = { "nope", NULL };
	char err[256];
	int words;
	const struct ctl_cmd *c;

	c = ctl_cmd_find(table, 2, a1, &words, err, sizeof(err));
	cr_assert(c && c->fn == c_echo && words == 1);
	c = ctl_cmd_find(table, 2, a2, &words, err, sizeof(err));
	cr_assert(c && c->fn == c_admin && words == 2);
	cr_assert_null(ctl_cmd_find(table, 1, a3, &words, err, sizeof(err)));
	cr_assert_str_eq(err, "'fam' needs one of: one, two");
	cr_assert_null(ctl_cmd_find(table, 2, a4, &words, err, sizeof(err)));
	cr_assert_str_eq(err, "unknown command 'fam three' (fam takes: one, two)");
	cr_assert_null(ctl_cmd_find(table, 1, a5, &words, err, sizeof(err)));
	cr_assert(strstr(err, "unknown command 'nope'"), "%s", err);

	/* a family's row without a sub-command takes what the others do not */
	static const struct ctl_cmd t2[] = {
		{ "q", "list", CTL_READ, c_echo, "", "" },
		{ "q", NULL, CTL_READ, c_fail, "", "" },
		{ NULL, NULL, CTL_READ, NULL, NULL, NULL },
	};
	char *b1[] = { "q", NULL }, *b2[] = { "q", "list", NULL }, *b3[] = { "q", "x", NULL };
	cr_assert_eq(ctl_cmd_find(t2, 1, b1, &words, err, sizeof(err))->fn, c_fail);
	cr_assert_eq(words, 1);
	cr_assert_eq(ctl_cmd_find(t2, 2, b2, &words, err, sizeof(err))->fn, c_echo);
	cr_assert_eq(words, 2);
	cr_assert_eq(ctl_cmd_find(t2, 2, b3, &words, err, sizeof(err))->fn, c_fail);
	cr_assert_eq(words, 1);
}

Test(table, help_lists_rows_from_the_table)
{
	char *all[] = { NULL }, *fam[] = { "fam", NULL }, *two[] = { "fam", "two", NULL },
	     *nope[] = { "nope", NULL };
	json_t *r = NULL;

	cr_assert_eq(ctl_cmd_help(table, 0, all, &r), 0);
	cr_assert_eq(json_array_size(json_object_get(r, "commands")), 10);
	json_decref(r);
	cr_assert_eq(ctl_cmd_help(table, 1, fam, &r), 0);
	cr_assert_eq(json_array_size(json_object_get(r, "commands")), 2);
	json_decref(r);
	cr_assert_eq(ctl_cmd_help(table, 2, two, &r), 0);
	json_t *c = json_array_get(json_object_get(r, "commands"), 0);
	cr_assert_eq(json_array_size(json_object_get(r, "commands")), 1);
	cr_assert_str_eq(json_string_value(json_object_get(c, "command")), "fam two");
	cr_assert_str_eq(json_string_value(json_object_get(c, "access")), "admin");
	cr_assert_str_eq(json_string_value(json_object_get(c, "usage")), "fam two");
	json_decref(r);
	cr_assert_eq(ctl_cmd_help(table, 1, nope, &r), -1);
	cr_assert(strstr(json_string_value(r), "unknown command 'nope'"));
	json_decref(r);
}

Test(table, access_levels)
{
	struct ctl_server_conf c;
	enum ctl_access lvl;
	gid_t sup[] = { 5, 1234 };

	ctl_server_conf_default(&c);
	cr_assert_eq(ctl_access_level(&c, 0, 0, NULL, 0, &lvl), 0, "root");
	cr_assert_eq(lvl, CTL_ADMIN);
	cr_assert_eq(ctl_access_level(&c, 65534, 65534, NULL, 0, &lvl), -1,
		     "no groups configured: nobody is refused");
	c.group = 1234;
	c.read_group = 4321;
	cr_assert_eq(ctl_access_level(&c, 1000, 1234, NULL, 0, &lvl), 0);
	cr_assert_eq(lvl, CTL_ADMIN, "primary group is the control group");
	cr_assert_eq(ctl_access_level(&c, 1000, 100, sup, 2, &lvl), 0);
	cr_assert_eq(lvl, CTL_ADMIN, "a supplementary group is the control group");
	cr_assert_eq(ctl_access_level(&c, 1000, 4321, NULL, 0, &lvl), 0);
	cr_assert_eq(lvl, CTL_READ, "the read-only group");
	gid_t sup2[] = { 7, 4321 };
	cr_assert_eq(ctl_access_level(&c, 1000, 100, sup2, 2, &lvl), 0);
	cr_assert_eq(lvl, CTL_READ, "read-only by a supplementary group");
	cr_assert_eq(ctl_access_level(&c, 1000, 100, NULL, 0, &lvl), -1, "in neither group");
	cr_assert_eq(ctl_access_level(&c, 1000, 100, (gid_t[]){ 5, 6 }, 2, &lvl), -1);
}

/* ---- the server: framing ------------------------------------------------------------------ */

TestSuite(server, .init = setup, .fini = teardown);

Test(server, answers_requests_in_order_pipelined_or_not)
{
	int fd = client();
	bool ok;
	json_t *v;

	v = ask_fd(fd, "{\"argv\":[\"echo\",\"a\",\"b\"]}\n", &ok);
	cr_assert(ok);
	cr_assert_str_eq(json_string_value(json_array_get(json_object_get(v, "words"), 1)), "b");
	json_decref(v);
	/* three requests in one write ("\r\n" too): three replies, in order */
	say(fd, "{\"argv\":[\"echo\",\"1\"]}\n{\"argv\":[\"fail\"]}\r\n{\"argv\":[\"echo\",\"3\"]}\n");
	for (int i = 1; i <= 3; i++) {
		v = ask_fd(fd, NULL, &ok);
		if (i == 2) {
			cr_assert_not(ok);
			cr_assert_str_eq(json_string_value(v), "it failed on purpose");
		} else {
			cr_assert(ok);
			cr_assert_eq(atoi(json_string_value(json_array_get(
				json_object_get(v, "words"), 0))), i);
		}
		json_decref(v);
	}
	cr_assert_eq(stat_of("requests"), 4);
	close(fd);
}

Test(server, malformed_lines_get_an_error_and_the_connection_goes_on)
{
	static const char *bad[] = { "garbage\n", "{\"argv\":[]}\n", "{\"argv\":[1]}\n",
				     "\n", "{\"argv\":[\"nope\"]}\n", "{\"argv\":[\"big\"]}\n",
				     "{\"argv\":[\"\xff\"]}\n", "[[[[[[[[[[[[[[[[[[\n" };
	int fd = client();
	bool ok;
	json_t *v;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = ask_fd(fd, bad[i], &ok);
		cr_assert_not(ok, "refused: %s", bad[i]);
		cr_assert(json_string_length(v) > 0);
		json_decref(v);
	}
	v = ask_fd(fd, "{\"argv\":[\"big\"]}\n", &ok);
	cr_assert_str_eq(json_string_value(v), "usage: big N", "the row's usage");
	json_decref(v);
	v = ask_fd(fd, "{\"argv\":[\"echo\",\"still here\"]}\n", &ok);
	cr_assert(ok, "the connection still works");
	json_decref(v);
	cr_assert_eq(stat_of("bad_requests"), sizeof(bad) / sizeof(bad[0]) + 1);
	close(fd);
}

Test(server, a_deeply_nested_line_is_refused_not_a_crash)
{
	/* 60,000 '[': jansson stops at its depth limit; the server stays */
	size_t n = 60000;
	char *line = malloc(n + 2);
	int fd = client();
	bool ok;

	memset(line, '[', n);
	line[n] = '\n';
	line[n + 1] = '\0';
	json_t *v = ask_fd(fd, line, &ok);
	cr_assert_not(ok);
	cr_assert(strstr(json_string_value(v), "depth"), "%s", json_string_value(v));
	json_decref(v);
	free(line);
	close(fd);
}

Test(server, an_oversized_request_gets_an_error_and_is_closed)
{
	int fd = client();
	size_t n = CTL_REQUEST_MAX + 100, off = 0;
	char *junk = malloc(n);
	bool ok;

	memset(junk, 'x', n);
	/* write while servicing: the server reads as it comes */
	fcntl(fd, F_SETFL, O_NONBLOCK);
	while (off < n) {
		ssize_t w = write(fd, junk + off, n - off);
		if (w > 0)
			off += (size_t)w;
		turn(0);
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 0) > 0)
			break;	/* the server answered before we finished */
	}
	fcntl(fd, F_SETFL, 0);
	json_t *v = ask_fd(fd, NULL, &ok);
	cr_assert_not(ok);
	cr_assert(strstr(json_string_value(v), "request over 65536 bytes"), "%s",
		  json_string_value(v));
	json_decref(v);
	cr_assert(closed_by_server(fd));
	cr_assert_eq(stat_of("oversized"), 1);
	cr_assert_eq(stat_of("clients"), 0);
	free(junk);
	close(fd);
}

Test(server, slow_loris_gets_an_error_at_the_deadline_and_is_closed)
{
	int fd = client();
	const char *req = "{\"argv\":[\"echo\"]}";
	bool ok;

	/* a byte every 2 s: each is progress, but the request is not done in 10 s */
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(write(fd, req + i, 1), 1);
		turn(0);
		turn(2000 - 1);
		cr_assert_eq(stat_of("clients"), 1, "not closed before the deadline");
	}
	turn(5);
	json_t *v = ask_fd(fd, NULL, &ok);
	cr_assert_not(ok);
	cr_assert(strstr(json_string_value(v), "request not complete within 10000 ms"), "%s",
		  json_string_value(v));
	json_decref(v);
	cr_assert(closed_by_server(fd));
	cr_assert_eq(stat_of("request_timeouts"), 1);
	close(fd);
}

Test(server, the_deadline_is_per_request_not_per_connection)
{
	int fd = client();
	bool ok;

	/* a connection used for a long time, one quick request at a time */
	for (int i = 0; i < 20; i++) {
		turn(5000);
		json_t *v = ask_fd(fd, "{\"argv\":[\"echo\"]}\n", &ok);
		cr_assert(ok, "request %d", i);
		json_decref(v);
	}
	cr_assert_eq(stat_of("request_timeouts"), 0);
	cr_assert_eq(stat_of("idle_timeouts"), 0);
	close(fd);
}

Test(server, an_idle_connection_is_closed)
{
	int fd = client();

	turn(59000);
	cr_assert_eq(stat_of("clients"), 1);
	turn(1000);
	cr_assert(closed_by_server(fd));
	cr_assert_eq(stat_of("idle_timeouts"), 1);
	close(fd);
}

Test(server, a_request_without_newline_at_eof_is_answered)
{
	int fd = client();
	bool ok;

	say(fd, "{\"argv\":[\"echo\",\"last\"]}");
	shutdown(fd, SHUT_WR);
	json_t *v = ask_fd(fd, NULL, &ok);
	cr_assert(ok);
	json_decref(v);
	cr_assert(closed_by_server(fd));
	close(fd);
}

Test(server, a_client_that_half_closes_still_gets_its_replies)
{
	int fd = client();
	bool ok;

	say(fd, "{\"argv\":[\"echo\",\"1\"]}\n{\"argv\":[\"big\",\"300000\"]}\n");
	shutdown(fd, SHUT_WR);
	json_t *v = ask_fd(fd, NULL, &ok);
	cr_assert(ok);
	json_decref(v);
	v = ask_fd(fd, NULL, &ok);
	cr_assert(ok);
	cr_assert_eq(strlen(json_string_value(json_object_get(v, "big"))), 300000);
	json_decref(v);
	cr_assert(closed_by_server(fd));
	close(fd);
}

/* ---- the server: large replies ------------------------------------------------------------ */

Test(server, a_large_reply_reaches_a_slow_reader_whole)
{
	/* 4 MB through a socket that holds a few KB: the reply must be
	 * written as the reader takes it (it was dropped on EAGAIN before) */
	int fd = client_buf(4096);
	size_t n = 4u << 20;
	bool ok;
	char err[256], *line;
	char req[64];
	snprintf(req, sizeof(req), "{\"argv\":[\"big\",\"%zu\"]}\n", n);
	say(fd, req);
	line = read_line(fd, 1000);	/* 1000 bytes a time, servicing in between */
	cr_assert_not_null(line, "the whole reply arrived");
	json_t *v;
	cr_assert_eq(ctl_reply_parse(line, strlen(line), &ok, &v, err, sizeof(err)), 0, "%s", err);
	cr_assert(ok);
	const char *big = json_string_value(json_object_get(v, "big"));
	cr_assert_eq(strlen(big), n);
	for (size_t i = 0; i < n; i += 4099)
		cr_assert_eq(big[i], 'a' + i % 26);
	json_decref(v);
	free(line);
	cr_assert_gt(stat_of("out_waits"), 0, "the reply waited for the socket (POLLOUT)");
	/* and the connection is usable after it */
	v = ask_fd(fd, "{\"argv\":[\"echo\"]}\n", &ok);
	cr_assert(ok);
	json_decref(v);
	close(fd);
}

Test(server, a_reader_that_stops_reading_is_dropped_after_the_send_timeout)
{
	int fd = client();

	say(fd, "{\"argv\":[\"big\",\"4000000\"]}\n");
	turn(0);
	cr_assert_gt(stat_of("out_bytes"), 0, "a reply waits");
	turn(9999);
	cr_assert_eq(stat_of("clients"), 1);
	turn(1);
	cr_assert_eq(stat_of("clients"), 0);
	cr_assert_eq(stat_of("out_bytes"), 0);
	cr_assert_eq(stat_of("send_timeouts"), 1);
	close(fd);
}

Test(server, a_reply_over_the_limit_is_an_error_not_a_crash)
{
	int fd = client();
	bool ok;
	char req[64];

	snprintf(req, sizeof(req), "{\"argv\":[\"big\",\"%u\"]}\n", CTL_REPLY_MAX);
	json_t *v = ask_fd(fd, req, &ok);
	cr_assert_not(ok);
	cr_assert(strstr(json_string_value(v), "over the control socket's limit"), "%s",
		  json_string_value(v));
	json_decref(v);
	cr_assert_eq(stat_of("replies_too_large"), 1);
	close(fd);
}

/* ---- the server: deferred answers ------------------------------------------------------------ */

Test(server, a_deferred_request_is_answered_through_its_ticket)
{
	int fd = client();
	bool ok;

	say(fd, "{\"argv\":[\"later\"]}\n{\"argv\":[\"echo\",\"next\"]}\n");
	for (int i = 0; i < 10; i++)
		turn(0);
	cr_assert_eq(ctx.deferred, 1);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	cr_assert_eq(poll(&p, 1, 0), 0, "no reply yet; the next request waits");
	turn(60000 * 5);	/* no deadline runs while the answer is owed */
	cr_assert_eq(stat_of("clients"), 1);
	ctl_server_answer_json(srv, ctx.ticket, true, json_string("done"));
	json_t *v = ask_fd(fd, NULL, &ok);
	cr_assert(ok);
	cr_assert_str_eq(json_string_value(v), "done");
	json_decref(v);
	v = ask_fd(fd, NULL, &ok);	/* then the next request */
	cr_assert(ok);
	json_decref(v);
	/* the ticket is spent: answering it again does nothing */
	ctl_server_answer_json(srv, ctx.ticket, true, json_string("again"));
	cr_assert_eq(stat_of("stale_answers"), 1);
	v = ask_fd(fd, "{\"argv\":[\"now\"]}\n", &ok);
	cr_assert(ok);
	cr_assert_str_eq(json_string_value(v), "answered inside");
	json_decref(v);
	close(fd);
}

Test(server, a_ticket_taken_then_an_error_returned_is_void)
{
	int fd = client();
	bool ok;

	json_t *v = ask_fd(fd, "{\"argv\":[\"dfail\"]}\n", &ok);
	cr_assert_not(ok);
	cr_assert_str_eq(json_string_value(v), "refused after the ticket");
	json_decref(v);
	/* the ticket answers nothing now, not even the next deferred request */
	say(fd, "{\"argv\":[\"later\"]}\n");
	turn(0);
	struct ctl_ticket later = ctx.ticket;
	cr_assert_eq(ctx.deferred, 1);
	struct ctl_ticket old = { later.slot, later.serial - 1 };
	ctl_server_answer_json(srv, old, true, json_string("stale"));
	cr_assert_eq(stat_of("stale_answers"), 1);
	ctl_server_answer_json(srv, later, true, json_string("right"));
	v = ask_fd(fd, NULL, &ok);
	cr_assert_str_eq(json_string_value(v), "right");
	json_decref(v);
	close(fd);
}

Test(server, an_answer_for_a_client_that_left_is_dropped)
{
	int fd = client();

	say(fd, "{\"argv\":[\"later\"]}\n");
	turn(0);
	cr_assert_eq(ctx.deferred, 1);
	close(fd);
	turn(0);	/* POLLHUP on the deferred client: its slot is freed */
	cr_assert_eq(stat_of("clients"), 0);
	/* a new client takes the slot; the old ticket must not answer it */
	int fd2 = client();
	say(fd2, "{\"argv\":[\"later\"]}\n");
	turn(0);
	struct ctl_ticket second = ctx.ticket;
	cr_assert_eq(ctx.deferred, 2);
	struct ctl_ticket old = { second.slot, second.serial - 1 };
	ctl_server_answer_json(srv, old, true, json_string("stale"));
	cr_assert_eq(stat_of("stale_answers"), 1);
	ctl_server_answer_json(srv, second, true, json_string("yours"));
	bool ok;
	json_t *v = ask_fd(fd2, NULL, &ok);
	cr_assert_str_eq(json_string_value(v), "yours");
	json_decref(v);
	close(fd2);
}

/* ---- the server: more clients than slots ------------------------------------------------------- */

Test(server, one_client_too_many_gets_a_busy_error)
{
	int fds[CTL_MAX_CLIENTS], sv[2];
	char buf[512];

	for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
		fds[i] = client();
		say(fds[i], "{\"argv\":[\"later\"]}\n");	/* all owed an answer */
	}
	turn(10000);
	cr_assert_eq(ctx.deferred, CTL_MAX_CLIENTS);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_assert_eq(ctl_server_adopt(srv, sv[0], now_ms), -1);
	ssize_t r = read(sv[1], buf, sizeof(buf) - 1);
	cr_assert_gt(r, 0);
	buf[r] = '\0';
	cr_assert(strstr(buf, "{\"ok\":false,\"error\":\"busy: 16 control clients"), "%s", buf);
	cr_assert_eq(read(sv[1], buf, sizeof(buf)), 0, "then closed");
	close(sv[1]);
	cr_assert_eq(stat_of("refused_busy"), 1);
	for (int i = 0; i < CTL_MAX_CLIENTS; i++)
		close(fds[i]);
}

Test(server, stalled_clients_are_evicted_to_let_an_operator_in)
{
	int fds[CTL_MAX_CLIENTS];
	bool ok;

	/* every slot trickling a request (the slowest started first) */
	for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
		fds[i] = client();
		say(fds[i], "{\"argv\":");
		turn(100);
	}
	turn(CTL_EVICT_AGE_MS);
	int fd = client();	/* room was made */
	json_t *v = ask_fd(fd, "{\"argv\":[\"echo\"]}\n", &ok);
	cr_assert(ok);
	json_decref(v);
	cr_assert_eq(stat_of("evicted"), 1);
	/* the one evicted is the oldest, told why */
	v = ask_fd(fds[0], NULL, &ok);
	cr_assert_not(ok);
	cr_assert(strstr(json_string_value(v), "closed to make room"), "%s", json_string_value(v));
	json_decref(v);
	for (int i = 0; i < CTL_MAX_CLIENTS; i++)
		close(fds[i]);
	close(fd);
}

/* ---- access, with real other users ------------------------------------------------------------- */

/*
 * In a child running as uid/gid 65534: connect to path, send each request,
 * write each reply line to the pipe. The parent services the server.
 */
static char *as_nobody(const char *path, gid_t gid, const char *const *reqs, unsigned n)
{
	int pp[2];
	pid_t pid;
	char *out = calloc(1, 65536);
	size_t len = 0;

	cr_assert_eq(pipe(pp), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		char buf[4096];
		int fd;
		close(pp[0]);
		if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(65534) < 0)
			_exit(10);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			dprintf(pp[1], "connect: %s\n", strerror(errno));
			_exit(11);
		}
		for (unsigned i = 0; i < n; i++) {
			size_t got = 0;
			if (send(fd, reqs[i], strlen(reqs[i]), MSG_NOSIGNAL) < 0)
				dprintf(pp[1], "send: %s\n", strerror(errno));
			while (got < sizeof(buf) - 1) {	/* a whole line, or EOF */
				ssize_t r = read(fd, buf + got, sizeof(buf) - 1 - got);
				if (r <= 0)
					break;
				got += (size_t)r;
				if (memchr(buf, '\n', got))
					break;
			}
			if (!got) {
				dprintf(pp[1], "EOF\n");
				break;
			}
			if (write(pp[1], buf, got) < 0)
				_exit(12);
		}
		_exit(0);
	}
	close(pp[1]);
	fcntl(pp[0], F_SETFL, O_NONBLOCK);
	for (;;) {
		int st;
		struct pollfd pfds[CTL_POLLFDS];
		unsigned k = ctl_server_pollfds(srv, pfds);
		poll(pfds, k, 5);
		ctl_server_service(srv, pfds, k, now_ms);
		ssize_t r = read(pp[0], out + len, 65535 - len);
		if (r > 0)
			len += (size_t)r;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			while ((r = read(pp[0], out + len, 65535 - len)) > 0)
				len += (size_t)r;
			cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d: %s", st,
				  out);
			break;
		}
	}
	close(pp[0]);
	return out;
}

static char sock_dir[64], sock_path[96];

static void open_listening(gid_t read_group)
{
	struct ctl_server_conf conf;

	signal(SIGPIPE, SIG_IGN);
	snprintf(sock_dir, sizeof(sock_dir), "/tmp/test_ctl.XXXXXX");
	cr_assert_not_null(mkdtemp(sock_dir));
	chmod(sock_dir, 0755);
	snprintf(sock_path, sizeof(sock_path), "%s/control.sock", sock_dir);
	ctl_server_conf_default(&conf);
	conf.path = sock_path;
	conf.mode = 0666;	/* everyone may connect: SO_PEERCRED decides */
	conf.read_group = read_group;
	open_server(&conf);
}

static void close_listening(void)
{
	teardown();
	rmdir(sock_dir);
}

Test(access, a_peer_in_no_allowed_group_is_refused_with_a_reason)
{
	static const char *const reqs[] = { "{\"argv\":[\"echo\"]}\n" };
	struct stat st;

	open_listening(CTL_NO_GROUP);
	cr_assert_eq(stat(sock_path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0666, "the socket's mode is the configured one");
	char *out = as_nobody(sock_path, 65534, reqs, 1);
	cr_assert(strstr(out, "{\"ok\":false,\"error\":\"uid 65534 gid 65534 may not use "
			 "sluiced's control socket"), "%s", out);
	cr_assert_eq(stat_of("refused_peer"), 1);
	cr_assert_eq(stat_of("accepted"), 0);
	free(out);
	close_listening();
}

Test(access, the_read_only_group_may_read_but_not_change)
{
	static const char *const reqs[] = {
		"{\"argv\":[\"echo\",\"hi\"]}\n", "{\"argv\":[\"admin\"]}\n",
		"{\"argv\":[\"fam\",\"two\"]}\n", "{\"argv\":[\"fam\",\"one\",\"x\"]}\n" };

	open_listening(65534);
	char *out = as_nobody(sock_path, 65534, reqs, 4);
	char *l2 = strchr(out, '\n') + 1, *l3 = strchr(l2, '\n') + 1, *l4 = strchr(l3, '\n') + 1;
	cr_assert(strncmp(out, "{\"ok\":true,\"result\":{\"words\":[\"hi\"]}}\n", 38) == 0, "%s",
		  out);
	cr_assert(strncmp(l2, "{\"ok\":false,\"error\":\"'admin' changes the appliance", 45) == 0,
		  "%s", l2);
	cr_assert(strstr(l2, "uid 65534 gid 65534 may run read-only commands only"), "%s", l2);
	cr_assert(strncmp(l3, "{\"ok\":false,\"error\":\"'fam two' changes", 38) == 0, "%s", l3);
	cr_assert(strncmp(l4, "{\"ok\":true", 10) == 0, "%s", l4);
	cr_assert_eq(stat_of("denied"), 2);
	free(out);
	close_listening();
}

Test(access, a_stale_socket_file_is_taken_over_a_live_one_is_not)
{
	struct ctl_server_conf conf;
	int err = 0;

	open_listening(CTL_NO_GROUP);
	ctl_server_conf_default(&conf);
	conf.path = sock_path;
	cr_assert_null(ctl_server_open(&conf, tab, &ctx, &err), "a second server on a live socket");
	cr_assert_eq(err, -EADDRINUSE);
	/* a socket file nobody listens on (a crash) */
	teardown();
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	open_server(&conf);
	close_listening();
}
