/*
 * smtp_client.c - the outbound SMTP client engine (see smtp_client.h for
 * the contract with the caller).
 *
 * States (c->state):
 *   CONNECT    waiting for the TCP connection (smtp_client_connected)
 *   GREETING   waiting for the 220
 *   EHLO/HELO  the command is written (or pending, c->pend), its reply due
 *   STARTTLS   STARTTLS written, its 220 due
 *   TLS        SCE_STARTTLS: the caller runs the handshake
 *   READY      no transaction: SCE_READY or SCE_DONE pending
 *   RSET       RSET before the next transaction (after a failed one)
 *   TXN        MAIL / RCPT... / DATA written and answered (see txn_step)
 *   BODY       SCE_BODY, or (BDAT) waiting for a chunk's reply
 *   DOT        end of data written ("." or BDAT LAST), its reply due
 *   QUIT       QUIT written, its reply due
 *   CLOSED     SCE_CLOSE
 *
 * Single commands (EHLO, HELO, STARTTLS, RSET, QUIT, a lone ".") wait in
 * c->pend until the output buffer has room; the commands of a transaction
 * are written by txn_pump() from the transaction's counters. pump() runs
 * after every call that may have freed room or changed what is due, so the
 * output buffer bounds memory and never loses a command.
 *
 * Replies are assembled line by line (c->line, bounded) into c->cur: code,
 * enhanced status, text; EHLO keywords are collected as their lines come
 * (c->ehlo). Only the line being read is kept, so the bound on a whole
 * reply (SMTP_CLIENT_REPLY_MAX) is a count, not a buffer.
 */
#include "dataplane/smtp/smtp_client.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "dataplane/smtp/smtp_parse.h"

enum {
	ST_CONNECT, ST_GREETING, ST_EHLO, ST_HELO, ST_STARTTLS, ST_TLS, ST_READY,
	ST_RSET, ST_TXN, ST_BODY, ST_DOT, ST_QUIT, ST_CLOSED,
};

/* a single command waiting for room in the output buffer */
enum { P_NONE, P_EHLO, P_HELO, P_STARTTLS, P_RSET, P_QUIT, P_DOT };

/* per-recipient state within a transaction (rstate[]): the low bits say
 * where it stands, RS_WRITTEN that a RCPT went out for it (so replies are
 * matched to the right recipients even after MAIL was refused) */
enum { RS_TODO, RS_SENT, RS_ACC, RS_FINAL };
#define RS_WRITTEN 0x80
#define RS(c, i) ((c)->rstate[i] & 0x7f)

#define HDR_RESERVE 32	/* "BDAT 18446744073709551615 LAST\r\n" */

const char *const smtp_client_stat_names[] = { SMTP_CLIENT_STATS(STATS_NAME) };
const size_t smtp_client_stat_count =
	sizeof(smtp_client_stat_names) / sizeof(smtp_client_stat_names[0]);

#define STAT(c, f) do { if ((c)->stats) (c)->stats->f++; } while (0)
#define STAT_ADD(c, f, n) do { if ((c)->stats) (c)->stats->f += (n); } while (0)

void smtp_client_conf_default(struct smtp_client_conf *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->helo, sizeof(c->helo), "%s", "localhost");
	c->t_connect_ns = 30 * NS_PER_SEC;
	c->t_greeting_ns = 300 * NS_PER_SEC;
	c->t_ehlo_ns = 300 * NS_PER_SEC;
	c->t_starttls_ns = 300 * NS_PER_SEC;
	c->t_rset_ns = 20 * NS_PER_SEC;
	c->t_mail_ns = 300 * NS_PER_SEC;
	c->t_rcpt_ns = 300 * NS_PER_SEC;
	c->t_data_ns = 120 * NS_PER_SEC;
	c->t_block_ns = 180 * NS_PER_SEC;
	c->t_dot_ns = 600 * NS_PER_SEC;
	c->t_quit_ns = 300 * NS_PER_SEC;
	c->tls = SCT_MAY;
	c->pipelining = true;
	c->chunking = true;
}

int smtp_client_conf_check(const struct smtp_client_conf *c, const char **why)
{
	const char *w = NULL;
	const uint64_t t[] = {
		c->t_connect_ns, c->t_greeting_ns, c->t_ehlo_ns, c->t_starttls_ns,
		c->t_rset_ns, c->t_mail_ns, c->t_rcpt_ns, c->t_data_ns, c->t_block_ns,
		c->t_dot_ns, c->t_quit_ns,
	};
	size_t n = strnlen(c->helo, sizeof(c->helo));
	if (n == 0 || n == sizeof(c->helo))
		w = "helo name is empty or too long";
	for (size_t i = 0; w == NULL && i < n; i++)
		if ((unsigned char)c->helo[i] <= ' ' || (unsigned char)c->helo[i] >= 0x7f)
			w = "helo name must be printable ASCII without spaces";
	for (size_t i = 0; w == NULL && i < sizeof(t) / sizeof(t[0]); i++)
		if (t[i] < NS_PER_SEC)
			w = "client timeouts must be at least 1 second";
	if (w == NULL && c->tls > SCT_VERIFY)
		w = "unknown TLS policy";
	if (why != NULL)
		*why = w;
	return w ? -1 : 0;
}

/* ---- output ------------------------------------------------------------ */

static uint32_t out_free(const struct smtp_client_conn *c)
{
	return SMTP_CLIENT_OUT_MAX - (c->out_end - c->out_start);
}

static void out_compact(struct smtp_client_conn *c)
{
	if (c->out_start == 0)
		return;
	memmove(c->out, c->out + c->out_start, c->out_end - c->out_start);
	c->out_end -= c->out_start;
	c->out_start = 0;
}

/* Append n bytes whole, or nothing (false). Never while a chunk is open. */
static bool out_put(struct smtp_client_conn *c, const char *p, size_t n)
{
	if (n > out_free(c))
		return false;
	if (c->out_end + n > SMTP_CLIENT_OUT_MAX)
		out_compact(c);
	memcpy(c->out + c->out_end, p, n);
	c->out_end += (uint32_t)n;
	return true;
}

/*
 * Write one command line (CRLF added) if it fits; false when it does not
 * (nothing written: pump() tries again once output was taken). The
 * arguments were validated by smtp_client_send(); the check for CR, LF and
 * NUL here is the last line of defence against a bare line end going out.
 */
static bool cmd(struct smtp_client_conn *c, const char *fmt, ...)
{
	char tmp[SMTP_CLIENT_CMD_MAX];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp) - 2 || memchr(tmp, '\r', (size_t)n) ||
	    memchr(tmp, '\n', (size_t)n) || strlen(tmp) != (size_t)n)
		return false;
	if ((size_t)n + 2 > out_free(c))
		return false;
	tmp[n++] = '\r';
	tmp[n++] = '\n';
	return out_put(c, tmp, (size_t)n);
}

size_t smtp_client_peek_output(const struct smtp_client_conn *c, const char **p)
{
	*p = c->out + c->out_start;
	return (c->chunk_open ? c->chunk_hdr : c->out_end) - c->out_start;
}

static void pump(struct smtp_client_conn *c);

void smtp_client_consume_output(struct smtp_client_conn *c, size_t n)
{
	const char *p;
	size_t have = smtp_client_peek_output(c, &p);
	if (n > have)
		n = have;
	c->out_start += (uint32_t)n;
	if (c->out_start == c->out_end)
		c->out_start = c->out_end = 0;
	pump(c);
}

size_t smtp_client_peek_output_of(void *c, const char **p)
{
	return smtp_client_peek_output(c, p);
}

void smtp_client_consume_output_of(void *c, size_t n)
{
	smtp_client_consume_output(c, n);
}

size_t smtp_client_read_output(struct smtp_client_conn *c, void *buf, size_t cap)
{
	const char *p;
	size_t n = smtp_client_peek_output(c, &p);
	if (n > cap)
		n = cap;
	memcpy(buf, p, n);
	smtp_client_consume_output(c, n);
	return n;
}

/* ---- results ----------------------------------------------------------- */

static void result_set(struct smtp_client_result *r, int code, const char *status,
		       const char *stage, const char *fmt, ...)
{
	va_list ap;
	r->code = code;
	snprintf(r->status, sizeof(r->status), "%s", status);
	r->stage = stage;
	va_start(ap, fmt);
	int n = vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
	if (n < 0)
		r->text[0] = '\0';
	/* our own texts quote the caller's strings: keep them printable */
	for (char *t = r->text; *t; t++)
		if ((unsigned char)*t < ' ' || (unsigned char)*t >= 0x7f)
			*t = '?';
}

/* An open BDAT chunk that must not go out (the transaction failed). */
static void chunk_drop(struct smtp_client_conn *c)
{
	if (c->chunk_open) {
		c->out_end = c->chunk_hdr;
		c->chunk_open = false;
	}
}

static bool in_txn(const struct smtp_client_conn *c)
{
	return c->msg != NULL;
}

/* The transaction is over (results final): count it, forget the message. */
static void txn_close(struct smtp_client_conn *c)
{
	const struct smtp_client_msg *m = c->msg;
	if (m == NULL)
		return;
	char v = c->mres->status[0];
	if (v == '2')
		STAT(c, msg_ok);
	else if (v == '5')
		STAT(c, msg_perm);
	else
		STAT(c, msg_temp);
	for (unsigned i = 0; i < m->nrcpt; i++) {
		char r = c->rres[i].status[0];
		if (r == '2')
			STAT(c, rcpt_ok);
		else if (r == '5')
			STAT(c, rcpt_perm);
		else
			STAT(c, rcpt_temp);
	}
	c->msg = NULL;
	chunk_drop(c);
}

/* Every recipient without a final result gets r; so does the message. */
static void txn_fail_all(struct smtp_client_conn *c, const struct smtp_client_result *r)
{
	for (unsigned i = 0; i < c->msg->nrcpt; i++)
		if (RS(c, i) != RS_FINAL) {
			c->rres[i] = *r;
			c->rstate[i] = (uint8_t)((c->rstate[i] & RS_WRITTEN) | RS_FINAL);
		}
	*c->mres = *r;
}

/* Transaction done, the session goes on: SCE_DONE. */
static void txn_done(struct smtp_client_conn *c, bool need_rset)
{
	c->need_rset = need_rset;
	txn_close(c);
	c->state = ST_READY;
	c->event = SCE_DONE;
}

/*
 * The session cannot go on. A message in flight gets r for every recipient
 * still open. quit: the next hop is still in step with us (say QUIT and
 * wait for its answer); else close at once.
 */
static void session_fail(struct smtp_client_conn *c, const struct smtp_client_result *r,
			 bool site, bool quit)
{
	c->sess = *r;
	c->failed = true;
	if (site && !c->site_failure) {
		c->site_failure = true;
		STAT(c, site_failures);
	}
	if (in_txn(c)) {
		txn_fail_all(c, r);
		txn_close(c);
	}
	chunk_drop(c);
	if (quit) {
		STAT(c, quits);
		c->pend = P_QUIT;
		c->state = ST_QUIT;
		c->event = SCE_NONE;
	} else {
		c->pend = P_NONE;
		c->state = ST_CLOSED;
		c->event = SCE_CLOSE;
	}
}

static const char *stage_now(const struct smtp_client_conn *c)
{
	switch (c->state) {
	case ST_CONNECT: return "connect";
	case ST_GREETING: return "greeting";
	case ST_EHLO: return "EHLO";
	case ST_HELO: return "HELO";
	case ST_STARTTLS: return "STARTTLS";
	case ST_TLS: return "TLS handshake";
	case ST_RSET: return "RSET";
	case ST_TXN:
		if (c->mail_sent && !c->mail_done)
			return "MAIL FROM";
		if (c->rcpt_out > 0)
			return "RCPT TO";
		return c->data_sent ? "DATA" : "MAIL FROM";
	case ST_BODY: return c->bdat ? "BDAT" : "message body";
	case ST_DOT: return c->bdat ? "BDAT" : "end of DATA";
	case ST_QUIT: return "QUIT";
	default: return "idle";
	}
}

static void protocol_error(struct smtp_client_conn *c, const char *what)
{
	struct smtp_client_result r;
	STAT(c, protocol_errors);
	result_set(&r, 0, "4.5.0", stage_now(c), "protocol error: %s (at %s)", what,
		   stage_now(c));
	session_fail(c, &r, true, false);
}

/* ---- transactions ------------------------------------------------------ */

static bool addr_ok(const char *a, bool allow_empty)
{
	if (a == NULL)
		return false;
	size_t n = strnlen(a, SMTP_PATH_MAX);
	if (n > SMTP_PATH_MAX - 2 || (n == 0 && !allow_empty))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)a[i] < ' ' || a[i] == 0x7f)
			return false;
	return true;
}

static bool has_8bit(const char *a)
{
	for (; a && *a; a++)
		if ((unsigned char)*a >= 0x80)
			return true;
	return false;
}

/* RFC 3461 4.2 ORCPT: addr-type ";" xtext, bounded. */
static bool orcpt_ok(const char *o)
{
	const char *semi = o ? strchr(o, ';') : NULL;
	if (semi == NULL || semi == o || strnlen(o, SMTP_ORCPT_MAX + 1) > SMTP_ORCPT_MAX)
		return false;
	for (const char *p = o; p < semi; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			return false;
	return smtp_xtext_valid(semi + 1, strlen(semi + 1));
}

static bool envid_ok(const char *e)
{
	size_t n = e ? strnlen(e, SMTP_ENVID_MAX + 1) : 0;
	return n > 0 && n <= SMTP_ENVID_MAX && smtp_xtext_valid(e, n);
}

static bool write_mail(struct smtp_client_conn *c)
{
	const struct smtp_client_msg *m = c->msg;
	char size[32] = "", ret[16] = "", envid[SMTP_ENVID_MAX + 8] = "";
	if (c->caps.size)
		snprintf(size, sizeof(size), " SIZE=%llu", (unsigned long long)m->size);
	if (c->caps.dsn && m->ret == SMTP_RET_FULL)
		snprintf(ret, sizeof(ret), " RET=FULL");
	else if (c->caps.dsn && m->ret == SMTP_RET_HDRS)
		snprintf(ret, sizeof(ret), " RET=HDRS");
	if (c->caps.dsn && envid_ok(m->envid))
		snprintf(envid, sizeof(envid), " ENVID=%s", m->envid);
	bool eight = (m->body_flags & (SMTP_CLIENT_BODY_8BITMIME | SMTP_CLIENT_BODY_SMTPUTF8)) &&
		     c->caps.eightbit;
	bool xs = c->caps.xsluice && m->xsluice && m->xsluice[0];
	return cmd(c, "MAIL FROM:<%s>%s%s%s%s%s%s%s", m->sender, size,
		   eight ? " BODY=8BITMIME" : "", c->utf8 ? " SMTPUTF8" : "", ret, envid,
		   xs ? " XSLUICE=" : "", xs ? m->xsluice : "");
}

static bool write_rcpt(struct smtp_client_conn *c, unsigned i)
{
	const struct smtp_client_rcpt *r = &c->msg->rcpt[i];
	char notify[48] = "", orcpt[SMTP_ORCPT_MAX + 8] = "";
	if (c->caps.dsn && r->notify) {
		if (r->notify & SMTP_NOTIFY_NEVER)
			snprintf(notify, sizeof(notify), " NOTIFY=NEVER");
		else
			snprintf(notify, sizeof(notify), " NOTIFY=%s%s%s%s%s",
				 r->notify & SMTP_NOTIFY_SUCCESS ? "SUCCESS" : "",
				 (r->notify & SMTP_NOTIFY_SUCCESS) &&
				 (r->notify & (SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY)) ? "," : "",
				 r->notify & SMTP_NOTIFY_FAILURE ? "FAILURE" : "",
				 (r->notify & SMTP_NOTIFY_FAILURE) &&
				 (r->notify & SMTP_NOTIFY_DELAY) ? "," : "",
				 r->notify & SMTP_NOTIFY_DELAY ? "DELAY" : "");
	}
	if (c->caps.dsn && orcpt_ok(r->orcpt))
		snprintf(orcpt, sizeof(orcpt), " ORCPT=%s", r->orcpt);
	return cmd(c, "RCPT TO:<%s>%s%s", r->addr, notify, orcpt);
}

static unsigned outstanding(const struct smtp_client_conn *c)
{
	return (c->mail_sent && !c->mail_done) + c->rcpt_out +
	       (c->data_sent && !c->data_done);
}

/* Write what the transaction can send now (all of it when pipelining,
 * one command per reply otherwise), as far as the buffer takes it. */
static void txn_pump(struct smtp_client_conn *c)
{
	const struct smtp_client_msg *m = c->msg;
	for (;;) {
		if (!c->pipe && outstanding(c) > 0)
			return;
		if (c->mail_done && !c->mail_ok)
			return;
		if (!c->mail_sent) {
			if (!write_mail(c))
				return;
			c->mail_sent = true;
			continue;
		}
		while (c->rcpt_next < m->nrcpt && c->rstate[c->rcpt_next] != RS_TODO)
			c->rcpt_next++;
		if (c->rcpt_next < m->nrcpt) {
			if (!write_rcpt(c, c->rcpt_next))
				return;
			c->rstate[c->rcpt_next++] = RS_SENT | RS_WRITTEN;
			c->rcpt_out++;
			continue;
		}
		if (!c->bdat && !c->data_sent) {
			if (c->rcpt_out == 0 && c->nacc == 0)
				return;	/* every recipient refused: no DATA */
			if (!cmd(c, "DATA"))
				return;
			c->data_sent = true;
			continue;
		}
		return;
	}
}

static bool write_pending(struct smtp_client_conn *c)
{
	bool ok = true;
	switch (c->pend) {
	case P_EHLO: ok = cmd(c, "EHLO %s", c->conf->helo); break;
	case P_HELO: ok = cmd(c, "HELO %s", c->conf->helo); break;
	case P_STARTTLS: ok = cmd(c, "STARTTLS"); break;
	case P_RSET: ok = cmd(c, "RSET"); break;
	case P_QUIT: ok = cmd(c, "QUIT"); break;
	case P_DOT: ok = cmd(c, "."); break;
	default: break;
	}
	if (ok)
		c->pend = P_NONE;
	return ok;
}

static void pump(struct smtp_client_conn *c)
{
	if (c->chunk_open)
		return;
	if (c->pend != P_NONE && !write_pending(c))
		return;
	if (c->state == ST_TXN)
		txn_pump(c);
}

static void body_start(struct smtp_client_conn *c)
{
	c->state = ST_BODY;
	c->event = SCE_BODY;
	c->bol = true;
	c->cr = false;
	c->chunk_open = false;
	c->chunks_sent = c->chunks_done = 0;
	c->last_sent = false;
	c->bdat_failed = false;
}

/* After each reply in TXN, with nothing else outstanding: what next. A
 * transaction that ends here had no body (nobody accepted, MAIL or DATA
 * refused): its message result is the reply that decided it. */
static void txn_step(struct smtp_client_conn *c)
{
	if (outstanding(c) > 0)
		return;
	if (c->mail_done && !c->mail_ok) {
		if (c->data_sent && c->data_go) {
			c->pend = P_DOT;	/* RFC 2920 3.1: 354 anyway, end it */
			c->state = ST_DOT;
			pump(c);
			return;
		}
		txn_done(c, true);
		return;
	}
	while (c->rcpt_next < c->msg->nrcpt && c->rstate[c->rcpt_next] != RS_TODO)
		c->rcpt_next++;
	if (c->rcpt_next < c->msg->nrcpt) {
		txn_pump(c);	/* more recipients to write */
		return;
	}
	if (c->bdat) {
		if (c->nacc > 0)
			body_start(c);
		else
			txn_done(c, true);
		return;
	}
	if (!c->data_sent) {
		if (c->nacc == 0)
			txn_done(c, true);
		else
			txn_pump(c);
		return;
	}
	/* DATA answered */
	if (!c->data_go) {
		txn_done(c, true);	/* refused: the recipients have its reply */
		return;
	}
	if (c->nacc > 0) {
		body_start(c);
		return;
	}
	c->pend = P_DOT;	/* 354 with nobody accepted: a lone "." ends it */
	c->state = ST_DOT;
	pump(c);
}

static void on_mail(struct smtp_client_conn *c, const struct smtp_client_result *r)
{
	c->mail_done = true;
	c->mail_ok = r->code / 100 == 2;
	if (!c->mail_ok)
		txn_fail_all(c, r);	/* every recipient gets MAIL's refusal */
	txn_step(c);
}

static void on_rcpt(struct smtp_client_conn *c, const struct smtp_client_result *r)
{
	unsigned i = c->rcpt_wait;
	while (i < c->msg->nrcpt && !(c->rstate[i] & RS_WRITTEN))
		i++;
	c->rcpt_wait = i + 1;
	c->rcpt_out--;
	/* after a refused MAIL the recipients are final already: ignore it */
	if (i < c->msg->nrcpt && RS(c, i) == RS_SENT) {
		c->rres[i] = *r;
		if (r->code / 100 == 2) {
			c->rstate[i] = RS_ACC | RS_WRITTEN;
			c->nacc++;
		} else {
			c->rstate[i] = RS_FINAL | RS_WRITTEN;
			if (c->nacc == 0)
				*c->mres = *r;	/* so far nobody: this decides */
		}
	}
	txn_step(c);
}

static void on_data(struct smtp_client_conn *c, const struct smtp_client_result *r)
{
	c->data_done = true;
	c->data_go = r->code / 100 == 3;	/* 354; any 3xx is "go on" (as Postfix) */
	if (!c->data_go && c->mail_ok && c->nacc > 0) {
		for (unsigned i = 0; i < c->msg->nrcpt; i++)
			if (RS(c, i) == RS_ACC) {
				c->rres[i] = *r;
				c->rstate[i] = RS_FINAL | RS_WRITTEN;
			}
		*c->mres = *r;
	}
	txn_step(c);
}

/* The end-of-data reply (or BDAT LAST's): for every accepted recipient. */
static void on_final(struct smtp_client_conn *c, const struct smtp_client_result *r)
{
	for (unsigned i = 0; i < c->msg->nrcpt; i++)
		if (RS(c, i) == RS_ACC) {
			c->rres[i] = *r;
			c->rstate[i] = RS_FINAL | RS_WRITTEN;
		}
	*c->mres = *r;
}

/* A reply to a BDAT chunk (in BODY or DOT). */
static void on_bdat(struct smtp_client_conn *c, const struct smtp_client_result *r)
{
	c->chunks_done++;
	bool all = c->chunks_done == c->chunks_sent;
	if (r->code / 100 != 2 && !c->bdat_failed) {
		/* RFC 3030 2: the transaction failed; send no more chunks */
		c->bdat_failed = true;
		on_final(c, r);
		chunk_drop(c);
		if (c->state == ST_BODY)
			c->event = SCE_NONE;
	}
	if (!all)
		return;
	if (c->bdat_failed) {
		txn_done(c, true);
		return;
	}
	if (c->last_sent) {
		on_final(c, r);
		txn_done(c, false);
		return;
	}
	c->event = SCE_BODY;	/* unpipelined: the next chunk may go */
}

/* ---- replies ----------------------------------------------------------- */

/* "d.ddd.ddd" at s (class must be cls), followed by a space or the end.
 * Returns its length, 0 if none. */
static size_t parse_status(const char *s, size_t n, char cls)
{
	size_t i = 0;
	if (n < 5 || s[0] != cls || s[1] != '.')
		return 0;
	i = 2;
	for (int part = 0; part < 2; part++) {
		size_t d = 0;
		while (i < n && s[i] >= '0' && s[i] <= '9' && d < 4) {
			i++;
			d++;
		}
		if (d == 0 || d > 3)
			return 0;
		if (part == 0) {
			if (i >= n || s[i] != '.')
				return 0;
			i++;
		}
	}
	if (i < n && s[i] != ' ')
		return 0;
	return i;
}

static void text_add(struct smtp_client_conn *c, const char *s, size_t n)
{
	for (size_t i = 0; i < n && c->text_len < sizeof(c->cur.text) - 1; i++) {
		unsigned char ch = (unsigned char)s[i];
		c->cur.text[c->text_len++] = (ch < ' ' || ch >= 0x7f) ? '?' : (char)ch;
	}
	c->cur.text[c->text_len] = '\0';
}

static bool kw(const char *s, size_t n, const char *name)
{
	size_t k = strlen(name);
	if (n < k || (n > k && s[k] != ' '))
		return false;
	for (size_t i = 0; i < k; i++) {
		char ch = s[i];
		if (ch >= 'a' && ch <= 'z')
			ch = (char)(ch - 32);
		if (ch != name[i])
			return false;
	}
	return true;
}

/* One EHLO keyword line (after "250-" / "250 "). */
static void ehlo_keyword(struct smtp_client_conn *c, const char *s, size_t n)
{
	struct smtp_client_caps *e = &c->ehlo;
	if (kw(s, n, "PIPELINING"))
		e->pipelining = true;
	else if (kw(s, n, "8BITMIME"))
		e->eightbit = true;
	else if (kw(s, n, "SMTPUTF8"))
		e->smtputf8 = true;
	else if (kw(s, n, "DSN"))
		e->dsn = true;
	else if (kw(s, n, "XSLUICE"))
		e->xsluice = true;
	else if (kw(s, n, "CHUNKING"))
		e->chunking = true;
	else if (kw(s, n, "STARTTLS"))
		e->starttls = true;
	else if (kw(s, n, "ENHANCEDSTATUSCODES"))
		e->enhanced = true;
	else if (kw(s, n, "SIZE")) {
		uint64_t v = 0;
		bool ok = n > 5;
		for (size_t i = 5; i < n; i++) {
			if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - 9) / 10) {
				ok = false;
				break;
			}
			v = v * 10 + (uint64_t)(s[i] - '0');
		}
		e->size = true;
		e->size_max = ok ? v : 0;	/* no (usable) number: no fixed limit */
	}
}

static void reply_reset(struct smtp_client_conn *c)
{
	c->reply_octets = 0;
	c->reply_lines = 0;
	c->text_len = 0;
	memset(&c->cur, 0, sizeof(c->cur));
	memset(&c->ehlo, 0, sizeof(c->ehlo));
}

static void after_hello(struct smtp_client_conn *c)
{
	if (!c->tls && c->conf->tls != SCT_NONE) {
		if (c->caps.starttls) {
			c->pend = P_STARTTLS;
			c->state = ST_STARTTLS;
			return;
		}
		if (c->conf->tls >= SCT_ENCRYPT) {
			struct smtp_client_result r;
			STAT(c, tls_required);
			result_set(&r, 0, "4.7.4", c->caps.esmtp ? "EHLO" : "HELO",
				   "TLS is required, but was not offered by the next hop");
			session_fail(c, &r, true, true);
			return;
		}
	}
	c->state = ST_READY;
	c->event = SCE_READY;
}

static void on_greeting(struct smtp_client_conn *c, const struct smtp_client_result *r)
{
	if (r->code / 100 == 2) {
		c->pend = P_EHLO;
		c->state = ST_EHLO;
		STAT(c, ehlo);
		return;
	}
	STAT(c, greet_fail);
	session_fail(c, r, true, r->code != 421);
}

static void on_ehlo(struct smtp_client_conn *c, const struct smtp_client_result *r)
{
	if (r->code / 100 == 2) {
		c->caps = c->ehlo;
		c->caps.esmtp = true;
		after_hello(c);
	} else if (r->code / 100 == 5) {
		STAT(c, helo_fallback);	/* RFC 5321 3.2: try HELO */
		c->pend = P_HELO;
		c->state = ST_HELO;
	} else {
		STAT(c, ehlo_fail);
		session_fail(c, r, true, r->code != 421);
	}
}

static void on_helo(struct smtp_client_conn *c, const struct smtp_client_result *r)
{
	if (r->code / 100 == 2) {
		memset(&c->caps, 0, sizeof(c->caps));
		after_hello(c);
		return;
	}
	STAT(c, ehlo_fail);
	session_fail(c, r, true, r->code != 421);
}

static void on_starttls(struct smtp_client_conn *c, const struct smtp_client_result *r)
{
	if (r->code / 100 == 2) {
		STAT(c, starttls);
		c->state = ST_TLS;
		c->event = SCE_STARTTLS;
		return;
	}
	if (r->code == 421) {
		session_fail(c, r, true, false);
		return;
	}
	if (c->conf->tls == SCT_MAY) {
		c->caps.starttls = false;	/* refused: go on in plaintext */
		after_hello(c);
		return;
	}
	struct smtp_client_result f;
	STAT(c, tls_required);
	result_set(&f, 0, "4.7.4", "STARTTLS",
		   "TLS is required, but the next hop refused STARTTLS: %s", r->text);
	session_fail(c, &f, true, true);
}

static void on_rset(struct smtp_client_conn *c, const struct smtp_client_result *r)
{
	if (r->code / 100 == 2) {
		c->need_rset = false;
		c->state = ST_TXN;
		txn_pump(c);
		return;
	}
	/* the connection is out of use; the message was not tried: retry */
	struct smtp_client_result t = *r;
	if (t.status[0] == '5')
		t.status[0] = '4';
	session_fail(c, &t, false, r->code != 421);
}

/* A reply when nothing was asked (a 421 before closing, or garbage). */
static void unsolicited(struct smtp_client_conn *c, const struct smtp_client_result *r)
{
	if (r->code == 421) {
		STAT(c, closed_421);
		session_fail(c, r, false, false);
		return;
	}
	protocol_error(c, "unexpected reply");
}

static void reply_complete(struct smtp_client_conn *c)
{
	struct smtp_client_result r = c->cur;
	int cls = r.code / 100;
	STAT(c, replies);
	if (r.status[0] == '\0')
		snprintf(r.status, sizeof(r.status), "%c.0.0", (char)('0' + cls));
	r.stage = stage_now(c);

	bool want_354 = c->state == ST_TXN && c->mail_sent && c->mail_done &&
			c->rcpt_out == 0 && c->data_sent && !c->data_done;
	if (c->state == ST_QUIT) {
		c->state = ST_CLOSED;
		c->event = SCE_CLOSE;
		return;
	}
	if (cls == 3 && !want_354) {
		protocol_error(c, "unexpected 3xx reply");
		return;
	}
	if (want_354 && cls == 2) {
		protocol_error(c, "2xx reply to DATA");
		return;
	}
	if (r.code == 421 && c->state >= ST_READY) {
		/* RFC 5321 3.8: the server is closing; not a site failure here */
		STAT(c, closed_421);
		session_fail(c, &r, false, false);
		return;
	}
	switch (c->state) {
	case ST_GREETING: on_greeting(c, &r); break;
	case ST_EHLO: on_ehlo(c, &r); break;
	case ST_HELO: on_helo(c, &r); break;
	case ST_STARTTLS: on_starttls(c, &r); break;
	case ST_RSET: on_rset(c, &r); break;
	case ST_TXN:
		if (c->mail_sent && !c->mail_done)
			on_mail(c, &r);
		else if (c->rcpt_out > 0)
			on_rcpt(c, &r);
		else if (c->data_sent && !c->data_done)
			on_data(c, &r);
		else
			unsolicited(c, &r);
		break;
	case ST_BODY:
		if (c->chunks_done < c->chunks_sent)
			on_bdat(c, &r);
		else
			unsolicited(c, &r);
		break;
	case ST_DOT:
		if (c->bdat) {
			on_bdat(c, &r);
		} else if (c->mail_ok && c->nacc > 0) {
			on_final(c, &r);
			txn_done(c, false);
		} else {
			txn_done(c, false);	/* the lone "." was answered */
		}
		break;
	default:
		unsolicited(c, &r);
		break;
	}
	pump(c);
}

/* A whole reply line is in c->line (without its LF). */
static void line_done(struct smtp_client_conn *c)
{
	const char *l = c->line;
	size_t n = c->line_len;
	c->line_len = 0;
	if (n > 0 && l[n - 1] == '\r')
		n--;
	if (n < 3 || l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '9' ||
	    l[2] < '0' || l[2] > '9' || (n > 3 && l[3] != ' ' && l[3] != '-')) {
		protocol_error(c, "malformed reply");
		return;
	}
	int code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
	bool more = n > 3 && l[3] == '-';
	const char *t = n > 3 ? l + 4 : l + 3;
	size_t tn = n > 3 ? n - 4 : 0;
	if (c->reply_lines == 0) {
		char num[8];
		c->cur.code = code;
		snprintf(num, sizeof(num), "%d", code);
		text_add(c, num, strlen(num));
		size_t sl = (code / 100 != 3) ? parse_status(t, tn, l[0]) : 0;
		if (sl > 0)
			snprintf(c->cur.status, sizeof(c->cur.status), "%.*s", (int)sl, t);
	} else {
		if (code != c->cur.code) {
			protocol_error(c, "inconsistent multi-line reply");
			return;
		}
		/* continuation lines repeat the enhanced code: keep it once */
		size_t sl = c->cur.status[0] ? strlen(c->cur.status) : 0;
		if (sl > 0 && tn >= sl && memcmp(t, c->cur.status, sl) == 0 &&
		    (tn == sl || t[sl] == ' ')) {
			t += sl;
			tn -= sl;
			if (tn > 0) {
				t++;
				tn--;
			}
		}
		if (c->state == ST_EHLO && code / 100 == 2)
			ehlo_keyword(c, n > 3 ? l + 4 : l + 3, n > 3 ? n - 4 : 0);
	}
	if (tn > 0) {
		text_add(c, " ", 1);
		text_add(c, t, tn);
	}
	c->reply_lines++;
	if (!more) {
		reply_complete(c);
		reply_reset(c);
	}
}

/* Does the pending event stop input? (see "Input" in smtp_client.h) */
static bool event_blocks(const struct smtp_client_conn *c)
{
	if (c->event == SCE_NONE)
		return false;
	/* pipelined BDAT: replies to the chunks written are read meanwhile */
	return !(c->event == SCE_BODY && c->bdat && c->chunks_done < c->chunks_sent);
}

size_t smtp_client_input(struct smtp_client_conn *c, const void *data, size_t len)
{
	const uint8_t *p = data;
	size_t i = 0;

	if (c->state == ST_CLOSED)
		return len;	/* discarded: see smtp_client.h */
	if (event_blocks(c))
		return 0;
	if (c->state == ST_CONNECT)
		c->state = ST_GREETING;	/* bytes mean the connection is up */
	while (i < len) {
		const uint8_t *lf = memchr(p + i, '\n', len - i);
		size_t take = lf ? (size_t)(lf - (p + i)) + 1 : len - i;
		size_t body = lf ? take - 1 : take;
		if (body > sizeof(c->line) - 1 - c->line_len) {
			protocol_error(c, "reply line too long");
			return len;
		}
		memcpy(c->line + c->line_len, p + i, body);
		c->line_len += (uint32_t)body;
		c->reply_octets += (uint32_t)take;
		i += take;
		if (c->reply_octets > SMTP_CLIENT_REPLY_MAX) {
			protocol_error(c, "reply too long");
			return len;
		}
		if (lf == NULL)
			break;
		line_done(c);
		if (c->state == ST_CLOSED)
			return len;
		if (event_blocks(c))
			return i;	/* act on the event, then feed the rest */
	}
	pump(c);
	return i;
}

enum smtp_client_event smtp_client_event(const struct smtp_client_conn *c)
{
	return c->event;
}

/* ---- the caller's calls -------------------------------------------------- */

void smtp_client_init(struct smtp_client_conn *c, const struct smtp_client_conf *conf,
		      struct smtp_client_stats *stats)
{
	/* the big buffers need no clearing: out/line are written before read */
	memset(c, 0, offsetof(struct smtp_client_conn, line));
	c->out_start = c->out_end = 0;
	c->conf = conf;
	c->stats = stats;
	c->state = ST_CONNECT;
	c->event = SCE_NONE;
	STAT(c, sessions);
}

void smtp_client_connected(struct smtp_client_conn *c)
{
	if (c->state == ST_CONNECT)
		c->state = ST_GREETING;
}

/* The whole message fails before anything is sent. */
static void msg_refuse(struct smtp_client_conn *c, const char *status, const char *fmt, ...)
{
	struct smtp_client_result r;
	char text[SMTP_CLIENT_TEXT_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	result_set(&r, 0, status, NULL, "%s", text);
	txn_fail_all(c, &r);
	txn_done(c, c->need_rset);
}

int smtp_client_send(struct smtp_client_conn *c, const struct smtp_client_msg *m,
		     struct smtp_client_result *res, struct smtp_client_result *rres)
{
	if ((c->event != SCE_READY && c->event != SCE_DONE) || m == NULL || res == NULL ||
	    rres == NULL || m->nrcpt == 0 || m->nrcpt > SMTP_CLIENT_RCPT_MAX || m->rcpt == NULL)
		return -1;
	c->msg = m;
	c->mres = res;
	c->rres = rres;
	c->nmsg++;
	STAT(c, messages);
	c->event = SCE_NONE;
	c->mail_sent = c->mail_done = c->mail_ok = c->data_sent = c->data_done = false;
	c->data_go = false;
	c->rcpt_next = c->rcpt_wait = c->rcpt_out = c->nacc = c->nlive = 0;
	c->pipe = c->caps.pipelining && c->conf->pipelining;
	c->bdat = c->caps.chunking && c->conf->chunking;
	result_set(res, 0, "4.0.0", NULL, "no result");
	for (unsigned i = 0; i < m->nrcpt; i++) {
		c->rstate[i] = RS_TODO;
		result_set(&rres[i], 0, "4.0.0", NULL, "no result");
	}

	c->utf8 = (m->body_flags & SMTP_CLIENT_BODY_SMTPUTF8) || has_8bit(m->sender);
	for (unsigned i = 0; i < m->nrcpt; i++)
		c->utf8 = c->utf8 || has_8bit(m->rcpt[i].addr);
	if (!addr_ok(m->sender, true)) {
		STAT(c, addr_refused);
		msg_refuse(c, "5.1.7", "bad sender address syntax");
		return 0;
	}
	if (m->xsluice_required && (!c->caps.xsluice || !m->xsluice || !m->xsluice[0])) {
		msg_refuse(c, "4.3.5", "a transfer needs XSLUICE, not offered by the next hop "
			   "(is this box in its mynetworks?)");
		return 0;
	}
	if (c->utf8 && !c->caps.smtputf8) {
		STAT(c, utf8_refused);
		msg_refuse(c, "5.6.7", "SMTPUTF8 is required, but was not offered by the next hop");
		return 0;
	}
	if ((m->body_flags & SMTP_CLIENT_BODY_8BITMIME) && !c->caps.eightbit) {
		STAT(c, eightbit_refused);
		msg_refuse(c, "5.6.3", "8-bit content, but the next hop does not offer 8BITMIME");
		return 0;
	}
	if (c->caps.size && c->caps.size_max && m->size > c->caps.size_max) {
		STAT(c, size_refused);
		msg_refuse(c, "5.3.4", "message size %llu exceeds size limit %llu of the next hop",
			   (unsigned long long)m->size, (unsigned long long)c->caps.size_max);
		return 0;
	}
	bool dsn_asked = m->ret || (m->envid && m->envid[0]);
	for (unsigned i = 0; i < m->nrcpt; i++) {
		const struct smtp_client_rcpt *r = &m->rcpt[i];
		dsn_asked = dsn_asked || r->notify || (r->orcpt && r->orcpt[0]);
		if (addr_ok(r->addr, false)) {
			c->nlive++;
			continue;
		}
		STAT(c, addr_refused);
		result_set(&rres[i], 0, "5.1.3", NULL, "bad recipient address syntax");
		c->rstate[i] = RS_FINAL;
		*res = rres[i];
	}
	if (c->nlive == 0) {
		txn_done(c, c->need_rset);
		return 0;
	}
	if (dsn_asked) {
		if (c->caps.dsn)
			STAT(c, dsn_passed);
		else
			STAT(c, dsn_dropped);
	}
	if (c->pipe)
		STAT(c, pipelined);
	if (c->bdat)
		STAT(c, bdat);
	if (c->need_rset) {
		STAT(c, rsets);
		c->pend = P_RSET;
		c->state = ST_RSET;
	} else {
		c->state = ST_TXN;
	}
	pump(c);
	return 0;
}

/*
 * Copy body bytes into the output buffer at out_end, up to the index lim:
 * runs of plain bytes with one memcpy each (no line buffer: the only copy
 * is from the caller's body into the output), a stuffing dot before a "."
 * at a line start (DATA only), and every bare CR or LF made CR LF. Returns
 * the input bytes taken. Where it stops depends only on the bytes and lim,
 * never on how the body was cut into pieces.
 */
static size_t body_copy(struct smtp_client_conn *c, const uint8_t *p, size_t n, uint32_t lim)
{
	uint32_t o = c->out_end;
	size_t i = 0;
	while (i < n && o < lim) {
		uint8_t ch = p[i];
		if (c->cr) {
			c->cr = false;
			c->bol = true;
			c->out[o++] = '\n';
			if (ch == '\n')
				i++;
			else
				STAT(c, bare_fixed);	/* CR x: x starts a new line */
			continue;
		}
		if (ch == '\r') {
			c->out[o++] = '\r';
			c->cr = true;
			c->bol = false;
			i++;
			continue;
		}
		if (ch == '\n') {
			if (lim - o < 2)
				break;
			STAT(c, bare_fixed);
			c->out[o++] = '\r';
			c->out[o++] = '\n';
			c->bol = true;
			i++;
			continue;
		}
		if (c->bol && !c->bdat && ch == '.') {
			if (lim - o < 2)
				break;
			c->out[o++] = '.';
			STAT(c, dots);
		}
		c->bol = false;
		size_t k = n - i;
		if (k > lim - o)
			k = lim - o;
		const uint8_t *e1 = memchr(p + i, '\r', k), *e2 = memchr(p + i, '\n', k);
		const uint8_t *e = e1 && (!e2 || e1 < e2) ? e1 : e2;
		size_t run = e ? (size_t)(e - (p + i)) : k;
		memcpy(c->out + o, p + i, run);
		o += (uint32_t)run;
		i += run;
	}
	STAT_ADD(c, bytes, o - c->out_end);
	c->out_end = o;
	return i;
}

/* Octets the body still needs at its end so that it ends with CR LF. */
static uint32_t body_fix_len(const struct smtp_client_conn *c)
{
	return c->cr ? 1 : (c->bol ? 0 : 2);
}

static void body_fix(struct smtp_client_conn *c)
{
	if (c->cr)
		c->out[c->out_end++] = '\n';
	else if (!c->bol) {
		c->out[c->out_end++] = '\r';
		c->out[c->out_end++] = '\n';
	}
	c->cr = false;
	c->bol = true;
}

static size_t body_data(struct smtp_client_conn *c, const uint8_t *p, size_t len, bool last)
{
	if (c->out_end + 2 > SMTP_CLIENT_OUT_MAX)
		out_compact(c);
	size_t i = body_copy(c, p, len, SMTP_CLIENT_OUT_MAX);
	if (i < len || !last)
		return i;
	out_compact(c);
	if (SMTP_CLIENT_OUT_MAX - c->out_end < body_fix_len(c) + 3)
		return i;	/* drain, then call again with nothing left */
	body_fix(c);
	memcpy(c->out + c->out_end, ".\r\n", 3);
	c->out_end += 3;
	c->state = ST_DOT;
	c->event = SCE_NONE;
	return i;
}

static void chunk_open(struct smtp_client_conn *c)
{
	out_compact(c);
	c->chunk_hdr = c->out_end;
	c->out_end += HDR_RESERVE;
	c->chunk_open = true;
}

/* Write the chunk's header just before its data and make it visible. */
static void chunk_close(struct smtp_client_conn *c, bool last)
{
	char hdr[HDR_RESERVE + 1];
	uint32_t data = c->chunk_hdr + HDR_RESERVE;
	uint32_t len = c->out_end - data;
	c->chunk_open = false;
	if (len == 0 && !last) {
		c->out_end = c->chunk_hdr;	/* nothing to send */
		return;
	}
	int h = snprintf(hdr, sizeof(hdr), "BDAT %u%s\r\n", len, last ? " LAST" : "");
	uint32_t gap = HDR_RESERVE - (uint32_t)h;
	memcpy(c->out + data - h, hdr, (size_t)h);
	if (c->out_start == c->chunk_hdr) {
		c->out_start += gap;
	} else {
		memmove(c->out + c->out_start + gap, c->out + c->out_start,
			c->chunk_hdr - c->out_start);
		c->out_start += gap;
	}
	c->chunks_sent++;
	if (last) {
		c->last_sent = true;
		c->state = ST_DOT;
		c->event = SCE_NONE;
	} else if (!c->pipe) {
		c->event = SCE_NONE;	/* RFC 3030 2: wait for its reply */
	}
}

static size_t body_bdat(struct smtp_client_conn *c, const uint8_t *p, size_t len, bool last)
{
	size_t i = 0;
	while (c->event == SCE_BODY) {
		if (!c->chunk_open) {
			if (i == len && !last)
				break;
			/* a whole chunk must fit, so chunk borders depend
			 * on the body only, not on when output was taken */
			if (out_free(c) < HDR_RESERVE + SMTP_CLIENT_CHUNK_MAX)
				break;	/* drain first */
			chunk_open(c);
		}
		uint32_t lim = c->chunk_hdr + HDR_RESERVE + SMTP_CLIENT_CHUNK_MAX;
		if (lim > SMTP_CLIENT_OUT_MAX)
			lim = SMTP_CLIENT_OUT_MAX;
		i += body_copy(c, p + i, len - i, lim);
		if (i < len) {
			chunk_close(c, false);	/* full */
			continue;
		}
		if (!last)
			break;	/* keep the chunk open for the next piece */
		if (lim - c->out_end < body_fix_len(c)) {
			chunk_close(c, false);
			continue;
		}
		body_fix(c);
		chunk_close(c, true);
	}
	return i;
}

size_t smtp_client_body(struct smtp_client_conn *c, const void *data, size_t len, bool last)
{
	if (c->event != SCE_BODY || c->state != ST_BODY)
		return 0;
	if (data == NULL)
		len = 0;
	return c->bdat ? body_bdat(c, data, len, last) : body_data(c, data, len, last);
}

int smtp_client_quit(struct smtp_client_conn *c)
{
	if (c->event != SCE_READY && c->event != SCE_DONE)
		return -1;
	STAT(c, quits);
	c->event = SCE_NONE;
	c->state = ST_QUIT;
	c->pend = P_QUIT;
	pump(c);
	return 0;
}

int smtp_client_tls_started(struct smtp_client_conn *c)
{
	if (c->event != SCE_STARTTLS)
		return -1;
	c->event = SCE_NONE;
	c->tls = true;
	memset(&c->caps, 0, sizeof(c->caps));	/* RFC 3207 4.2 */
	c->line_len = 0;
	reply_reset(c);
	c->state = ST_EHLO;
	c->pend = P_EHLO;
	STAT(c, ehlo);
	pump(c);
	return 0;
}

int smtp_client_tls_failed(struct smtp_client_conn *c, const char *why)
{
	struct smtp_client_result r;
	if (c->event != SCE_STARTTLS)
		return -1;
	result_set(&r, 0, "4.7.5", "TLS handshake", "TLS handshake failed: %s",
		   why ? why : "unknown error");
	session_fail(c, &r, true, false);
	return 0;
}

uint64_t smtp_client_timeout_ns(const struct smtp_client_conn *c)
{
	const struct smtp_client_conf *f = c->conf;
	switch (c->state) {
	case ST_CONNECT: return f->t_connect_ns;
	case ST_GREETING: return f->t_greeting_ns;
	case ST_EHLO:
	case ST_HELO: return f->t_ehlo_ns;
	case ST_STARTTLS:
	case ST_TLS: return f->t_starttls_ns;
	case ST_RSET: return f->t_rset_ns;
	case ST_TXN:
		if (c->mail_sent && !c->mail_done)
			return f->t_mail_ns;
		if (c->rcpt_out > 0)
			return f->t_rcpt_ns;
		if (c->data_sent && !c->data_done)
			return f->t_data_ns;
		return f->t_block_ns;	/* commands waiting for the output to drain */
	case ST_BODY: return f->t_block_ns;
	case ST_DOT:
		if (c->bdat && c->chunks_done + 1 < c->chunks_sent)
			return f->t_block_ns;	/* earlier chunks' replies first */
		return f->t_dot_ns;
	case ST_QUIT: return f->t_quit_ns;
	default: return 0;
	}
}

void smtp_client_timeout(struct smtp_client_conn *c)
{
	struct smtp_client_result r;
	if (c->state == ST_CLOSED)
		return;
	if (c->state == ST_QUIT || c->state == ST_READY) {
		c->state = ST_CLOSED;	/* nothing was at stake */
		c->event = SCE_CLOSE;
		return;
	}
	STAT(c, timeouts);
	if (c->state == ST_CONNECT)
		result_set(&r, 0, "4.4.1", "connect", "connection to the next hop timed out");
	else
		result_set(&r, 0, "4.4.2", stage_now(c),
			   "conversation with the next hop timed out (at %s)", stage_now(c));
	session_fail(c, &r, true, false);
}

void smtp_client_lost(struct smtp_client_conn *c, const char *why)
{
	struct smtp_client_result r;
	const char *sep = why && *why ? ": " : "";
	if (c->state == ST_CLOSED)
		return;
	if (c->state == ST_QUIT) {
		c->state = ST_CLOSED;
		c->event = SCE_CLOSE;
		return;
	}
	STAT(c, lost);
	if (c->state == ST_CONNECT)
		result_set(&r, 0, "4.4.1", "connect", "connect to the next hop failed%s%s",
			   sep, why ? why : "");
	else
		result_set(&r, 0, "4.4.2", stage_now(c),
			   "lost connection with the next hop (at %s)%s%s", stage_now(c),
			   sep, why ? why : "");
	session_fail(c, &r, c->state != ST_READY, false);
}

const struct smtp_client_caps *smtp_client_caps(const struct smtp_client_conn *c)
{
	return &c->caps;
}

const struct smtp_client_result *smtp_client_session_result(const struct smtp_client_conn *c)
{
	return c->failed ? &c->sess : NULL;
}

bool smtp_client_site_failure(const struct smtp_client_conn *c)
{
	return c->site_failure;
}

bool smtp_client_tls_active(const struct smtp_client_conn *c)
{
	return c->tls;
}

unsigned smtp_client_messages(const struct smtp_client_conn *c)
{
	return c->nmsg;
}
