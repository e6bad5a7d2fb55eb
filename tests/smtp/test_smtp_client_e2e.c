/*
 * test_smtp_client_e2e.c - the client engine against the inbound session
 * engine, in-process: each one's output is the other's input, moved in
 * segments of 1, 13 or any size, and the bodies fed to the client in
 * pieces of 1, 1000 or all. Proves the two engines agree on the protocol:
 * every message arrives byte for byte as the client was given it (a bare
 * CR or LF made CR LF, a CR LF added at the end when missing), with its
 * envelope and DSN parameters; recipients the server refuses come back
 * with the server's reply; DATA and BDAT, pipelined and not, over
 * STARTTLS, several messages per connection, and SIZE refusals on both
 * sides.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/smtp/smtp_client.h"
#include "tests/smtp/smtp_test.h"

#define NMSG_MAX 8
#define WIRE_MAX (4u << 20)

struct stored {			/* what the server handed to its "queue" */
	char *body;
	size_t len;
	char sender[SMTP_PATH_MAX + 1];
	unsigned nrcpt;
	char rcpt[4][SMTP_PATH_MAX + 1];
	char orcpt[4][SMTP_ORCPT_MAX + 1];
	uint8_t notify[4];
	enum smtp_ret ret;
	char envid[SMTP_ENVID_MAX + 1];
	bool smtputf8;
	enum smtp_body btype;
};

struct pair {
	struct th *srv;
	struct smtp_client_conf cconf;
	struct smtp_client_stats cst;
	struct smtp_client_conn cli;
	char *c2s, *s2c;	/* bytes in flight each way */
	size_t c2s_len, c2s_off, s2c_len, s2c_off;
	size_t seg;		/* bytes moved per input call, 0 = all */
	size_t piece;		/* body bytes per smtp_client_body call, 0 = all */
	/* the messages to send */
	unsigned nmsg, next;
	const struct smtp_client_msg *msg[NMSG_MAX];
	const char *body[NMSG_MAX];
	size_t blen[NMSG_MAX];
	size_t boff;
	struct smtp_client_result mres[NMSG_MAX], rres[NMSG_MAX][4];
	unsigned done;
	/* what arrived */
	unsigned nstored;
	struct stored st[NMSG_MAX];
	bool closed_cli, closed_srv;
	unsigned tls_srv, tls_cli;
};

static struct pair *pair_new(const char *ip, size_t seg, size_t piece)
{
	struct pair *p = calloc(1, sizeof(*p));
	cr_assert_not_null(p);
	p->srv = th_new(ip, MYNET, "example.com");
	p->c2s = malloc(WIRE_MAX);
	p->s2c = malloc(WIRE_MAX);
	cr_assert(p->c2s && p->s2c);
	p->seg = seg;
	p->piece = piece;
	smtp_client_conf_default(&p->cconf);
	snprintf(p->cconf.helo, sizeof(p->cconf.helo), "relay.sluice.test");
	p->cconf.tls = SCT_NONE;
	return p;
}

static void pair_free(struct pair *p)
{
	for (unsigned i = 0; i < p->nstored; i++)
		free(p->st[i].body);
	free(p->c2s);
	free(p->s2c);
	th_free(p->srv);
	free(p);
}

static void add_msg(struct pair *p, const struct smtp_client_msg *m, const char *body, size_t n)
{
	cr_assert_lt(p->nmsg, NMSG_MAX);
	p->msg[p->nmsg] = m;
	p->body[p->nmsg] = body;
	p->blen[p->nmsg] = n;
	p->nmsg++;
}

static void store(struct pair *p)
{
	const struct smtp_message *m = smtp_session_message(&p->srv->s);
	cr_assert_not_null(m);
	cr_assert_lt(p->nstored, NMSG_MAX);
	struct stored *s = &p->st[p->nstored++];
	s->len = p->srv->body_len;
	s->body = malloc(s->len + 1);
	memcpy(s->body, p->srv->body, s->len);
	snprintf(s->sender, sizeof(s->sender), "%s", m->sender);
	s->nrcpt = m->nrcpt;
	for (unsigned i = 0; i < m->nrcpt && i < 4; i++) {
		struct smtp_rcpt_view v;
		cr_assert_eq(th_rcpt(p->srv, i, &v), 0);
		snprintf(s->rcpt[i], sizeof(s->rcpt[i]), "%s", v.addr);
		snprintf(s->orcpt[i], sizeof(s->orcpt[i]), "%s", v.orcpt ? v.orcpt : "");
		s->notify[i] = v.notify;
	}
	s->ret = m->ret;
	snprintf(s->envid, sizeof(s->envid), "%s", m->envid);
	s->smtputf8 = m->smtputf8;
	s->btype = m->body;
}

/* The client's next move at READY/DONE: the next message, or QUIT. */
static void next_or_quit(struct pair *p)
{
	if (p->next < p->nmsg) {
		unsigned k = p->next++;
		p->boff = 0;
		cr_assert_eq(smtp_client_send(&p->cli, p->msg[k], &p->mres[k], p->rres[k]), 0);
	} else {
		cr_assert_eq(smtp_client_quit(&p->cli), 0);
	}
}

static bool client_events(struct pair *p)
{
	switch (smtp_client_event(&p->cli)) {
	case SCE_READY:
		next_or_quit(p);
		return true;
	case SCE_DONE:
		p->done++;
		next_or_quit(p);
		return true;
	case SCE_STARTTLS:
		/* nothing may be in flight from the server: it waits for TLS */
		cr_assert_eq(p->s2c_off, p->s2c_len);
		p->tls_cli++;
		cr_assert_eq(smtp_client_tls_started(&p->cli), 0);
		return true;
	case SCE_BODY: {
		unsigned k = p->next - 1;
		size_t left = p->blen[k] - p->boff;
		size_t n = p->piece && p->piece < left ? p->piece : left;
		size_t took = smtp_client_body(&p->cli, p->body[k] + p->boff, n, n == left);
		const char *o;
		p->boff += took;
		/* 0 taken is fine when a full chunk was closed: output to send */
		return took > 0 || smtp_client_peek_output(&p->cli, &o) > 0 ||
		       smtp_client_event(&p->cli) != SCE_BODY;
	}
	case SCE_CLOSE:
		p->closed_cli = true;
		return false;
	default:
		return false;
	}
}

static bool server_events(struct pair *p)
{
	switch (smtp_session_event(&p->srv->s)) {
	case SMTP_EV_MESSAGE:
		store(p);
		cr_assert_eq(smtp_session_queued(&p->srv->s, SMTP_QUEUED_OK, "Q"), 0);
		return true;
	case SMTP_EV_STARTTLS:	/* handled in run(), after its 220 left */
		return false;
	case SMTP_EV_CLOSE:
		p->closed_srv = true;
		return false;
	default:
		return false;
	}
}

/* Move bytes both ways until neither side has anything left to do. */
static void run(struct pair *p)
{
	const char *o;
	size_t n;
	smtp_client_init(&p->cli, &p->cconf, &p->cst);
	smtp_client_connected(&p->cli);
	/* the harness took the server's greeting already: put it on the wire */
	cr_assert_gt(p->srv->out_len, 0);
	memcpy(p->s2c, p->srv->out, p->srv->out_len);
	p->s2c_len = p->srv->out_len;
	th_clear(p->srv);
	for (int guard = 0; guard < 50000000; guard++) {
		bool moved = false;
		/* client -> wire */
		while ((n = smtp_client_peek_output(&p->cli, &o)) > 0) {
			cr_assert_lt(p->c2s_len + n, WIRE_MAX);
			memcpy(p->c2s + p->c2s_len, o, n);
			p->c2s_len += n;
			smtp_client_consume_output(&p->cli, n);
			moved = true;
		}
		/* wire -> server */
		if (p->c2s_off < p->c2s_len && !p->closed_srv) {
			size_t k = p->c2s_len - p->c2s_off;
			if (p->seg && k > p->seg)
				k = p->seg;
			size_t c = smtp_session_input(&p->srv->s, p->c2s + p->c2s_off, k);
			p->c2s_off += c;
			moved = moved || c > 0;
		}
		/* server -> wire, then its events (after its output: STARTTLS) */
		while ((n = smtp_session_peek_output(&p->srv->s, &o)) > 0) {
			cr_assert_lt(p->s2c_len + n, WIRE_MAX);
			memcpy(p->s2c + p->s2c_len, o, n);
			p->s2c_len += n;
			smtp_session_consume_output(&p->srv->s, n);
			moved = true;
		}
		if (smtp_session_event(&p->srv->s) == SMTP_EV_STARTTLS) {
			/* the server side of the handshake: plaintext it holds is dropped */
			cr_assert_eq(p->c2s_off, p->c2s_len, "client talked after STARTTLS");
			p->tls_srv++;
			cr_assert_eq(smtp_session_tls_started(&p->srv->s, "TLSv1.3 test"), 0);
			moved = true;
		}
		moved = server_events(p) || moved;
		/* wire -> client */
		if (p->s2c_off < p->s2c_len && !p->closed_cli) {
			size_t k = p->s2c_len - p->s2c_off;
			if (p->seg && k > p->seg)
				k = p->seg;
			size_t c = smtp_client_input(&p->cli, p->s2c + p->s2c_off, k);
			p->s2c_off += c;
			moved = moved || c > 0;
		}
		moved = client_events(p) || moved;
		if (!moved)
			break;
	}
	cr_assert(p->closed_cli, "client session over (event %d)", smtp_client_event(&p->cli));
	cr_assert(p->closed_srv, "server session over");
	cr_assert_eq(p->c2s_off, p->c2s_len);
	cr_assert_eq(p->s2c_off, p->s2c_len);
	cr_assert_null(smtp_client_session_result(&p->cli));
	/* what the client wrote never has a bare CR or LF */
	for (size_t i = 0; i < p->c2s_len; i++) {
		if (p->c2s[i] == '\n')
			cr_assert(i > 0 && p->c2s[i - 1] == '\r', "bare LF at %zu", i);
		if (p->c2s[i] == '\r')
			cr_assert(i + 1 < p->c2s_len && p->c2s[i + 1] == '\n', "bare CR at %zu", i);
	}
}

/* The body the next hop must store: line ends normalised, CRLF at the end. */
static size_t expected(const char *b, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (b[i] == '\r' && i + 1 < n && b[i + 1] == '\n') {
			out[o++] = '\r';
			out[o++] = '\n';
			i++;
		} else if (b[i] == '\r' || b[i] == '\n') {
			out[o++] = '\r';
			out[o++] = '\n';
		} else {
			out[o++] = b[i];
		}
	}
	if (o > 0 && !(o >= 2 && out[o - 2] == '\r' && out[o - 1] == '\n')) {
		out[o++] = '\r';
		out[o++] = '\n';
	}
	return o;
}

static void check_stored(const struct stored *s, const char *b, size_t n)
{
	char *want = malloc(2 * n + 3);
	size_t wl = expected(b, n, want);
	cr_assert_eq(s->len, wl, "stored %zu octets, want %zu", s->len, wl);
	cr_assert_eq(memcmp(s->body, want, wl), 0, "body differs");
	free(want);
}

/* A body with what breaks naive relays: lines of dots, the terminator
 * inside, a line starting ".\r\n", bare line ends, long lines, no final
 * CRLF. Deterministic. */
static char *tricky(size_t n, unsigned seed, size_t *len)
{
	static const char *const pieces[] = {
		".\r\n", "..\r\n", "\r\n.\r\n", ".hidden line\r\n", "plain text line\r\n",
		"\r\n", "From: a@b\r\n", "bare\nLF\r\n", "bare\rCR\r\n", "x.\r\n",
		"\r\n..\r\n", ". \r\n",
	};
	char *b = malloc(n + 64);
	size_t o = 0;
	uint32_t x = seed * 2654435761u + 1;
	while (o < n) {
		x = x * 1103515245u + 12345u;
		const char *s = pieces[(x >> 16) % (sizeof(pieces) / sizeof(pieces[0]))];
		size_t k = strlen(s);
		if ((x >> 8) % 5 == 0) {	/* a long line */
			size_t l = 100 + (x >> 4) % 800;
			if (o + l + 2 > n)
				break;
			memset(b + o, 'a' + (char)(x % 26), l);
			b[o] = '.';
			o += l;
			memcpy(b + o, "\r\n", 2);
			o += 2;
			continue;
		}
		if (o + k > n)
			break;
		memcpy(b + o, s, k);
		o += k;
	}
	memcpy(b + o, "no final line end", 17);
	o += 17;
	*len = o;
	return b;
}

static const struct smtp_client_rcpt RCPT3[] = {
	{ .addr = "one@example.com", .notify = SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_DELAY,
	  .orcpt = "rfc822;one@example.com" },
	{ .addr = "other@elsewhere.example" },	/* not relayed for an outsider: 554 */
	{ .addr = "two@example.com", .notify = SMTP_NOTIFY_NEVER },
};

static void three_messages(size_t seg, size_t piece, bool chunking, bool pipelining, bool tls)
{
	struct pair *p = pair_new(OUTSIDE_IP, seg, piece);
	p->cconf.chunking = chunking;
	p->cconf.pipelining = pipelining;
	if (tls) {
		p->srv->conf.tls_available = true;
		th_clear(p->srv);
		th_restart(p->srv);
		p->cconf.tls = SCT_ENCRYPT;
	}
	struct smtp_client_msg m[3];
	size_t blen[3];
	char *b[3];
	for (int i = 0; i < 3; i++) {
		b[i] = tricky(i == 1 ? 200000 : 3000, (unsigned)i + 1, &blen[i]);
		m[i] = (struct smtp_client_msg){
			.sender = i == 2 ? "" : "sender@sluice.test",
			.envid = "ID+2B1", .ret = SMTP_RET_FULL,
			.nrcpt = 3, .rcpt = RCPT3, .size = blen[i],
			.body_flags = i == 1 ? SMTP_CLIENT_BODY_8BITMIME : 0,
		};
		add_msg(p, &m[i], b[i], blen[i]);
	}
	static const char empty[] = "";
	struct smtp_client_msg me = { .sender = "s@sluice.test", .nrcpt = 1, .rcpt = RCPT3 };
	add_msg(p, &me, empty, 0);
	run(p);
	cr_assert_eq(p->done, 4);
	cr_assert_eq(p->nstored, 4);
	cr_assert_eq(p->tls_srv > 0, tls);
	cr_assert_eq(smtp_client_tls_active(&p->cli), tls);
	for (int i = 0; i < 3; i++) {
		const struct stored *s = &p->st[i];
		check_stored(s, b[i], blen[i]);
		cr_assert_str_eq(s->sender, m[i].sender);
		cr_assert_eq(s->nrcpt, 2);
		cr_assert_str_eq(s->rcpt[0], "one@example.com");
		cr_assert_str_eq(s->rcpt[1], "two@example.com");
		cr_assert_eq(s->notify[0], SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_DELAY);
		cr_assert_str_eq(s->orcpt[0], "rfc822;one@example.com");
		cr_assert_eq(s->notify[1], SMTP_NOTIFY_NEVER);
		cr_assert_eq(s->ret, SMTP_RET_FULL);
		cr_assert_str_eq(s->envid, "ID+2B1");
		cr_assert_eq(s->btype, i == 1 ? SMTP_BODY_8BITMIME : SMTP_BODY_NONE);
		cr_assert_eq(p->rres[i][0].code, 250, "%s", p->rres[i][0].text);
		cr_assert_str_eq(p->rres[i][0].text, "250 2.0.0 Ok: queued as Q");
		cr_assert_eq(p->rres[i][1].code, 554);
		cr_assert_str_eq(p->rres[i][1].status, "5.7.1");
		cr_assert_str_eq(p->rres[i][1].text,
				 "554 5.7.1 <other@elsewhere.example>: Relay access denied");
		cr_assert_eq(p->rres[i][2].code, 250);
		cr_assert_eq(p->mres[i].code, 250);
	}
	cr_assert_eq(p->st[3].len, 0, "the empty body stays empty");
	cr_assert_eq(p->cst.msg_ok, 4);
	cr_assert_eq(p->cst.rcpt_perm, 3);
	cr_assert_eq(p->cst.bdat, chunking ? 4 : 0);
	cr_assert_eq(p->cst.pipelined, pipelining ? 4 : 0);
	cr_assert_gt(p->cst.bare_fixed, 0);
	cr_assert_eq(p->srv->st.rej_bare, 0, "no bare line end reached the server");
	cr_assert_eq(p->cst.rsets, 0);
	for (int i = 0; i < 3; i++)
		free(b[i]);
	pair_free(p);
}

Test(client_e2e, data_pipelined_whole) { three_messages(0, 0, false, true, false); }
Test(client_e2e, data_pipelined_bytes) { three_messages(1, 1, false, true, false); }
Test(client_e2e, data_unpipelined_seg13) { three_messages(13, 1000, false, false, false); }
Test(client_e2e, bdat_pipelined_whole) { three_messages(0, 0, true, true, false); }
Test(client_e2e, bdat_pipelined_bytes) { three_messages(1, 7, true, true, false); }
Test(client_e2e, bdat_unpipelined_seg13) { three_messages(13, 1000, true, false, false); }
Test(client_e2e, starttls_data) { three_messages(0, 1000, false, true, true); }
Test(client_e2e, starttls_bdat_bytes) { three_messages(1, 1, true, true, true); }

/* SIZE: refused by the client before sending when the server's limit is
 * known; a message whose declared size lies is refused by the server at
 * its end (552), and the connection goes on. */
Test(client_e2e, size_limits_on_both_sides)
{
	struct pair *p = pair_new(LOCAL_IP, 0, 0);
	p->srv->conf.max_size = 5000;
	th_clear(p->srv);
	th_restart(p->srv);
	size_t n;
	char *b = tricky(8000, 9, &n);
	static const struct smtp_client_rcpt r[] = { { .addr = "x@anywhere.example" } };
	struct smtp_client_msg declared = { .sender = "s@sluice.test", .nrcpt = 1, .rcpt = r,
					    .size = n };
	struct smtp_client_msg lying = declared;
	lying.size = 100;
	struct smtp_client_msg fine = declared;
	fine.size = 10;
	add_msg(p, &declared, b, n);
	add_msg(p, &lying, b, n);
	add_msg(p, &fine, "hello\r\n", 7);
	run(p);
	cr_assert_eq(p->done, 3);
	cr_assert_eq(p->mres[0].code, 0);
	cr_assert_str_eq(p->mres[0].status, "5.3.4");
	cr_assert_eq(p->rres[1][0].code, 552);
	cr_assert_str_eq(p->rres[1][0].status, "5.3.4");
	cr_assert_eq(p->rres[2][0].code, 250);
	cr_assert_eq(p->nstored, 1);
	check_stored(&p->st[0], "hello\r\n", 7);
	cr_assert_eq(p->srv->st.rej_size, 1);
	cr_assert_eq(p->cst.size_refused, 1);
	free(b);
	pair_free(p);
}

/* SMTPUTF8 end to end: the parameter goes out, the server takes the
 * 8-bit address, and the stored envelope says so. */
Test(client_e2e, smtputf8_message)
{
	struct pair *p = pair_new(LOCAL_IP, 1, 1);
	static const struct smtp_client_rcpt r[] = { { .addr = "j\xc3\xb6rg@example.com" } };
	struct smtp_client_msg m = { .sender = "s\xc3\xa9@sluice.test", .nrcpt = 1, .rcpt = r,
				     .size = 9, .body_flags = SMTP_CLIENT_BODY_SMTPUTF8 };
	add_msg(p, &m, "caf\xc3\xa9\r\n", 7);
	run(p);
	cr_assert_eq(p->nstored, 1);
	cr_assert(p->st[0].smtputf8);
	cr_assert_str_eq(p->st[0].rcpt[0], "j\xc3\xb6rg@example.com");
	cr_assert_str_eq(p->st[0].sender, "s\xc3\xa9@sluice.test");
	check_stored(&p->st[0], "caf\xc3\xa9\r\n", 7);
	pair_free(p);
}
