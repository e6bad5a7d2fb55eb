/*
 * fuzz_ctl_request.c - libFuzzer harness: arbitrary bytes as requests to
 * the control socket (control/ctl_proto.h, control/ctl_server.h).
 *
 * Input: [mode][bytes...]. The bytes go two ways:
 *
 *  1. Line by line through the parsers: ctl_request_parse (the server's)
 *     and ctl_reply_parse (sluicectl's). What parses is encoded again and
 *     must parse back to the same thing (a request's words byte for byte, a
 *     reply's value json_equal); a request's words go through ctl_cmd_find
 *     and ctl_cmd_help; and ctl_json_textn of the raw line must be a string
 *     jansson writes and reads back unchanged.
 *
 *  2. As a client's byte stream into a real server: a socketpair adopted as
 *     a client, the bytes written in pieces cut where mode says (bits 0-3:
 *     piece size 1..106 for the first 256 bytes, 4 KB after), the clock moved 0 or 3 s a turn (bit 4: so
 *     request deadlines fire), followed by a line of 'x' past
 *     CTL_REQUEST_MAX (bit 5: the oversized path), the client shutting its
 *     side when done (bit 6) or not. The harness's table has commands that echo, defer
 *     (answered on the next turn), fail, need admin, and make large
 *     replies. Every reply line must be a well-formed reply (ctl_reply_parse);
 *     there are never more replies than lines sent plus one; and once the
 *     client is done the server must let it go within a bounded number of
 *     turns (no stall), leaving no client and no reply bytes behind.
 *
 * Any violation aborts. Seeds: corpus_ctl/ (make_corpus_ctl.py).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "control/ctl_proto.h"
#include "control/ctl_server.h"

struct ctl_ctx {
	struct ctl_server *s;
	struct ctl_ticket t;
	bool owed;
};

static int f_echo(struct ctl_ctx *c, int argc, char **argv, json_t **r)
{
	json_t *a = json_array();

	for (int i = 0; i < argc; i++)
		json_array_append_new(a, json_string(argv[i]));
	*r = a;
	return 0;
}

static int f_later(struct ctl_ctx *c, int argc, char **argv, json_t **r)
{
	if (c->owed || ctl_server_defer(c->s, &c->t) < 0)
		return -1;
	c->owed = true;
	return CTL_DEFERRED;
}

static int f_fail(struct ctl_ctx *c, int argc, char **argv, json_t **r)
{
	*r = argc ? ctl_json_text(argv[0]) : NULL;
	return argc > 1 ? CTL_USAGE : -1;
}

/* big N: N bytes (at most 1 MB) */
static int f_big(struct ctl_ctx *c, int argc, char **argv, json_t **r)
{
	size_t n = argc ? strtoul(argv[0], NULL, 10) % (1u << 20) : 0;
	char *s = malloc(n + 1);

	if (!s)
		return -1;
	memset(s, 'x', n);
	s[n] = '\0';
	*r = json_string(s);
	free(s);
	return 0;
}

static int f_help(struct ctl_ctx *c, int argc, char **argv, json_t **r);

static const struct ctl_cmd table[] = {
	{ "help", NULL, CTL_READ, f_help, "[COMMAND]", "help" },
	{ "echo", NULL, CTL_READ, f_echo, "[WORD...]", "echo" },
	{ "later", NULL, CTL_READ, f_later, "", "deferred" },
	{ "fail", NULL, CTL_READ, f_fail, "[WHY]", "fails" },
	{ "big", NULL, CTL_READ, f_big, "N", "big" },
	{ "route", "set", CTL_ADMIN, f_echo, "DOMAIN SPEC", "admin" },
	{ "route", "lookup", CTL_READ, f_echo, "DOMAIN", "read" },
	{ "queue", NULL, CTL_READ, f_echo, "", "bare family row" },
	{ "queue", "list", CTL_READ, f_echo, "", "family" },
	{ NULL, NULL, CTL_READ, NULL, NULL, NULL },
};

static int f_help(struct ctl_ctx *c, int argc, char **argv, json_t **r)
{
	return ctl_cmd_help(table, argc, argv, r);
}

static struct ctl_server *srv;
static struct ctl_ctx ctx;
static uint64_t now_ms = 1000000;

static void check_line_parsers(const char *line, size_t len)
{
	struct ctl_request rq, back;
	char err[512], *enc;
	size_t elen;
	bool ok;
	json_t *v, *v2, *j;

	if (ctl_request_parse(line, len, &rq, err, sizeof(err)) == 0) {
		int words;
		json_t *res = NULL;
		enc = ctl_request_encode(rq.argc, rq.argv, &elen, err, sizeof(err));
		if (!enc)
			abort();	/* what parsed must encode */
		if (elen == 0 || enc[elen - 1] != '\n' || memchr(enc, '\n', elen - 1))
			abort();
		if (ctl_request_parse(enc, elen - 1, &back, err, sizeof(err)) != 0 ||
		    back.argc != rq.argc)
			abort();
		for (int i = 0; i < rq.argc; i++)
			if (strcmp(back.argv[i], rq.argv[i]) != 0)
				abort();
		if (ctl_cmd_find(table, rq.argc, rq.argv, &words, err, sizeof(err)) &&
		    (words < 1 || words > 2 || words > rq.argc))
			abort();
		ctl_cmd_help(table, rq.argc, rq.argv, &res);
		if (!res)
			abort();
		json_decref(res);
		ctl_request_free(&back);
		ctl_request_free(&rq);
		free(enc);
	} else if (rq.argv || !err[0]) {
		abort();	/* a refusal says why and holds nothing */
	}

	if (ctl_reply_parse(line, len, &ok, &v, err, sizeof(err)) == 0) {
		bool ok2;
		enc = ctl_reply_encode(ok, json_incref(v), CTL_REPLY_MAX, &elen, NULL);
		if (!enc || ctl_reply_parse(enc, elen - 1, &ok2, &v2, err, sizeof(err)) != 0 ||
		    ok2 != ok || !json_equal(v, v2))
			abort();
		json_decref(v2);
		json_decref(v);
		free(enc);
	}

	j = ctl_json_textn(line, len);
	if (!j)
		abort();
	enc = json_dumps(j, JSON_ENCODE_ANY | CTL_JSON_FLAGS);
	v = enc ? json_loads(enc, JSON_DECODE_ANY, NULL) : NULL;
	if (!v || !json_equal(j, v))
		abort();
	json_decref(v);
	json_decref(j);
	free(enc);
}

static void turn(uint64_t advance)
{
	struct pollfd pfds[CTL_POLLFDS];
	unsigned n = ctl_server_pollfds(srv, pfds);

	now_ms += advance;
	if (poll(pfds, n, 0) < 0 && errno != EINTR)
		abort();
	ctl_server_service(srv, pfds, n, now_ms);
	if (ctx.owed) {	/* the deferred request's answer, a turn later */
		ctx.owed = false;
		ctl_server_answer_json(srv, ctx.t, true, json_string("later"));
	}
}

static void visit(void *user, const char *group, const char *name, uint64_t v)
{
	uint64_t *out = user;

	if (strcmp(name, "clients") == 0)
		out[0] = v;
	else if (strcmp(name, "out_bytes") == 0)
		out[1] = v;
}

/* Read what the server wrote (*bytes counts it); check each complete
 * reply line; returns how many. */
static size_t drain(int fd, char *buf, size_t *len, size_t cap, bool *eof, size_t *bytes)
{
	size_t replies = 0;
	ssize_t r;

	while ((r = recv(fd, buf + *len, cap - *len, MSG_DONTWAIT)) > 0) {
		char *nl;
		*len += (size_t)r;
		*bytes += (size_t)r;
		while ((nl = memchr(buf, '\n', *len)) != NULL) {
			bool ok;
			json_t *v;
			char err[256];
			if (ctl_reply_parse(buf, (size_t)(nl - buf), &ok, &v, err, sizeof(err)) != 0)
				abort();	/* every line the server writes is a reply */
			json_decref(v);
			replies++;
			*len -= (size_t)(nl - buf) + 1;
			memmove(buf, nl + 1, *len);
		}
		if (*len == cap)
			abort();	/* a reply over the bound */
	}
	if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
		*eof = true;
	return replies;
}

static void check_server(uint8_t mode, const uint8_t *data, size_t size)
{
	static char *rbuf;
	const size_t rcap = (1u << 20) + 4096;
	size_t piece = (mode & 0x0f) * 7 + 1, off = 0, total = size, rlen = 0, replies = 0,
	       lines = 0, got = 0;
	uint64_t advance = (mode & 0x10) ? 3000 : 0, gauges[2];
	bool eof = false, repeat = mode & 0x20, shut = mode & 0x40;
	int sv[2];

	if (!rbuf)
		rbuf = malloc(rcap);
	if (repeat) {	/* then a line past the bound, in large pieces */
		total = CTL_REQUEST_MAX + 16 + size;
		piece = 4096;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
		abort();
	if (ctl_server_adopt(srv, sv[0], now_ms) < 0)
		abort();
	while (off < total && !eof) {
		/* small pieces for the first 256 bytes, then large ones */
		size_t p = off < 256 ? piece : 4096;
		size_t n = p < total - off ? p : total - off;
		uint8_t tmp[4096];
		for (size_t i = 0; i < n && i < sizeof(tmp); i++) {
			tmp[i] = off + i < size ? data[off + i] : 'x';
			lines += tmp[i] == '\n';
		}
		if (n > sizeof(tmp))
			n = sizeof(tmp);
		ssize_t w = send(sv[1], tmp, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0)
			off += (size_t)w;
		else if (w < 0 && errno != EAGAIN)
			break;	/* the server closed: oversized, timed out */
		if (w > 0 && (size_t)w < n)	/* count only what went */
			for (size_t i = (size_t)w; i < n; i++)
				lines -= tmp[i] == '\n';
		turn(advance);
		replies += drain(sv[1], rbuf, &rlen, rcap, &eof, &got);
	}
	if (shut)
		shutdown(sv[1], SHUT_WR);
	/* the server must finish with this client: answer what it was sent
	 * (replies keep coming), then close, or time it out (idle, or a
	 * request left incomplete): never 10 turns without either */
	for (int idle = 0; idle < 10 && !eof;) {
		size_t before = got;
		turn(shut ? 0 : 20000);
		replies += drain(sv[1], rbuf, &rlen, rcap, &eof, &got);
		idle = got > before ? 0 : idle + 1;
	}
	if (!eof)
		abort();	/* the server never let the client go */
	if (replies > lines + 1)
		abort();
	close(sv[1]);
	turn(0);
	ctl_server_stats_visit(srv, visit, gauges);
	if (gauges[0] != 0 || gauges[1] != 0)
		abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct ctl_server_conf conf;
	int err;

	signal(SIGPIPE, SIG_IGN);
	log_init("fuzz_ctl", LOG_LVL_ERR, false);
	ctl_server_conf_default(&conf);
	ctx.owed = false;
	srv = ctl_server_open(&conf, table, &ctx, &err);
	if (!srv)
		abort();
	ctx.s = srv;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p, *end, *nl;

	if (size < 1)
		return 0;
	for (p = (const char *)data + 1, end = (const char *)data + size; p <= end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end;
		check_line_parsers(p, (size_t)(nl - p));
		if (nl == end)
			break;
	}
	check_server(data[0], data + 1, size - 1);
	return 0;
}
