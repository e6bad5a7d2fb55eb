/*
 * smtp_server.c - the inbound SMTP session engine (see smtp_server.h for
 * the contract with the caller).
 *
 * States (s->state) while no event is pending:
 *   INIT   greeted; EHLO/HELO required (also after STARTTLS)
 *   READY  EHLO/HELO done, no transaction
 *   MAIL   MAIL FROM accepted (RCPTs may follow)
 *   DATA   receiving DATA content (smtp_data, dot mode)
 *   BDAT   receiving the bytes of one BDAT chunk (bdat_left)
 *   DONE   QUIT/421 sent: everything else is discarded
 *   AUTH_PLAIN, AUTH_USER, AUTH_PASS  a 334 challenge is out: the next
 *          line is the client's base64 response ("*" cancels), not a command
 * An event (STARTTLS, MESSAGE, AUTH, CLOSE) stops input processing until the
 * caller acts on it.
 *
 * Error counting: every 5xx reply to a command counts; when the count
 * reaches conf.max_errors, "421 4.7.0" follows and the session closes.
 * Rejections at the end of a message (size, bare LF, hops...) do not count:
 * they are about the content, not the protocol.
 */
#include "dataplane/smtp/smtp_server.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/clock.h"

enum { ST_INIT, ST_READY, ST_MAIL, ST_DATA, ST_BDAT, ST_DONE, ST_AUTH_PLAIN, ST_AUTH_USER,
       ST_AUTH_PASS };

/* why a BDAT chunk is being discarded */
enum { BD_NONE, BD_NEED_MAIL, BD_NEED_RCPT, BD_NO_VALID_RCPT };

const char *const smtp_stat_names[] = { SMTP_STATS(STATS_NAME) };
const size_t smtp_stat_count = sizeof(smtp_stat_names) / sizeof(smtp_stat_names[0]);

#define STAT(s, f) do { if ((s)->stats) (s)->stats->f++; } while (0)
#define STAT_ADD(s, f, n) do { if ((s)->stats) (s)->stats->f += (n); } while (0)

void smtp_conf_default(struct smtp_conf *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->hostname, sizeof(c->hostname), "%s", "localhost");
	c->max_size = 10240000;
	c->max_rcpt = 1000;
	c->max_errors = 20;
	c->max_line = 1000;
	c->hop_limit = 50;
	c->bare = SMTP_BARE_REJECT;
	c->tls_available = false;
	c->timeout_cmd_ns = 300 * NS_PER_SEC;
	c->timeout_data_ns = 300 * NS_PER_SEC;
	snprintf(c->postmaster, sizeof(c->postmaster), "%s", "root@localhost");
	c->max_auth_failures = 3;
	c->policy = NULL;
}

/* Is conf.postmaster (a valid mailbox) our own postmaster? */
static bool postmaster_is_us(const struct smtp_conf *c)
{
	const char *at = strrchr(c->postmaster, '@');
	char local[SMTP_LOCAL_MAX + 1];

	if (at == NULL || (size_t)(at - c->postmaster) > SMTP_LOCAL_MAX)
		return false;
	memcpy(local, c->postmaster, (size_t)(at - c->postmaster));
	local[at - c->postmaster] = '\0';
	return smtp_policy_postmaster(local, at + 1, c->hostname);
}

int smtp_conf_check(const struct smtp_conf *c, const char **why)
{
	const char *w = NULL;
	if (c->hostname[0] == '\0')
		w = "hostname is empty";
	else if (c->max_rcpt < 100 || c->max_rcpt > SMTP_RCPT_HARD_MAX)
		w = "max_rcpt must be within 100..1000";
	else if (c->max_line != 0 && c->max_line < 1000)
		w = "max_line must be 0 (off) or at least 1000";
	else if (c->timeout_cmd_ns < NS_PER_SEC)
		w = "command timeout must be at least 1 second";
	else if (c->timeout_data_ns < NS_PER_SEC)
		w = "data timeout must be at least 1 second";
	else if (!smtp_mailbox_valid(c->postmaster))
		w = "postmaster must be a mailbox, local@domain";
	else if (postmaster_is_us(c))
		w = "postmaster must not be postmaster@hostname: it would come back to us";
	if (why != NULL)
		*why = w;
	return w ? -1 : 0;
}

/* Copy the string src into dst of cap octets (cap > 0), cut to fit and
 * always terminated: a plain bounded copy, what snprintf("%s") was used
 * for, without formatting on every transaction. */
static void copy_str(char *dst, size_t cap, const char *src)
{
	size_t n = strnlen(src, cap - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* ---- output ---------------------------------------------------------- */

static size_t out_free(const struct smtp_session *s)
{
	return SMTP_OUT_MAX - (s->out_end - s->out_start);
}

/* Append one reply line of n octets and its CRLF. Lines are bounded well
 * below the reserve kept free before each command, so this never truncates
 * in practice; if it would, the line is dropped whole rather than cut. */
static void reply_line(struct smtp_session *s, const char *p, size_t n)
{
	if (n > SMTP_LINE_MAX - 3)
		n = SMTP_LINE_MAX - 3;	/* reply lines are <= 512 (4.5.3.1.5) */
	if (n + 2 > out_free(s))
		return;
	if (s->out_end + (uint32_t)n + 2 > SMTP_OUT_MAX) {
		memmove(s->out, s->out + s->out_start, s->out_end - s->out_start);
		s->out_end -= s->out_start;
		s->out_start = 0;
	}
	memcpy(s->out + s->out_end, p, n);
	memcpy(s->out + s->out_end + n, "\r\n", 2);
	s->out_end += (uint32_t)n + 2;
}

/* Append one formatted reply line. Most replies are constant text: those
 * are copied as they are, without a trip through vsnprintf (it was 3% of a
 * worker's time per message). */
static void reply(struct smtp_session *s, const char *fmt, ...)
{
	char tmp[SMTP_LINE_MAX];
	va_list ap;

	if (strchr(fmt, '%') == NULL) {
		reply_line(s, fmt, strlen(fmt));
		return;
	}
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	reply_line(s, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

size_t smtp_session_peek_output(const struct smtp_session *s, const char **p)
{
	*p = s->out + s->out_start;
	return s->out_end - s->out_start;
}

void smtp_session_consume_output(struct smtp_session *s, size_t n)
{
	size_t have = s->out_end - s->out_start;
	if (n > have)
		n = have;
	s->out_start += (uint32_t)n;
	if (s->out_start == s->out_end)
		s->out_start = s->out_end = 0;
}

size_t smtp_session_read_output(struct smtp_session *s, void *buf, size_t cap)
{
	const char *p;
	size_t n = smtp_session_peek_output(s, &p);
	if (n > cap)
		n = cap;
	memcpy(buf, p, n);
	smtp_session_consume_output(s, n);
	return n;
}

/* ---- transaction ------------------------------------------------------- */

static void txn_reset(struct smtp_session *s)
{
	struct smtp_message *m = &s->msg;
	m->sender[0] = '\0';
	m->smtputf8 = false;
	m->body = SMTP_BODY_NONE;
	m->ret = SMTP_RET_NONE;
	m->envid[0] = '\0';
	m->declared_size = 0;
	m->has_xsluice = false;
	if (m->nrcpt > 0 && s->cb.rcpt_reset != NULL)
		s->cb.rcpt_reset(s->cb.user);
	m->nrcpt = 0;
	m->rcpt1[0] = '\0';
	m->size = 0;
	m->received_count = 0;
	m->held = false;
	copy_str(m->auth_user, sizeof(m->auth_user), s->authenticated ? s->auth_user : "");
	copy_str(m->auth_method, sizeof(m->auth_method), s->authenticated ? s->auth_method : "");
	m->arrival = 0;
	m->trace_id[0] = '\0';
	m->received_len = 0;
	m->received[0] = '\0';
	s->rcpt_tried = false;
	s->bdat_used = false;
	s->bdat_last = false;
	s->bdat_discard = BD_NONE;
	s->bdat_left = 0;
	if (s->state != ST_INIT && s->state != ST_DONE)
		s->state = ST_READY;
}

/* Keep an accepted recipient (through cb.rcpt). `given` is the address as
 * the client gave it (Received's "for"). 0, -1: no memory, or
 * SMTP_RCPT_REFUSE: the callback refuses it for good. */
static int rcpt_add(struct smtp_session *s, const char *addr, const char *orcpt,
		    uint8_t notify, const char *given)
{
	struct smtp_message *m = &s->msg;
	struct smtp_rcpt_view v = { addr, orcpt && orcpt[0] ? orcpt : NULL, notify };
	int r;

	if (s->cb.rcpt != NULL && (r = s->cb.rcpt(s->cb.user, &v)) != 0)
		return r == SMTP_RCPT_REFUSE ? r : -1;
	if (m->nrcpt++ == 0)
		copy_str(m->rcpt1, sizeof(m->rcpt1), given);
	return 0;
}

/* Mail for our postmaster: kept for conf.postmaster, with the address the
 * client gave as ORCPT unless it sent its own (RFC 3461 4.2). */
static int rcpt_postmaster(struct smtp_session *s, const struct smtp_cmd *c)
{
	char given[SMTP_LOCAL_MAX + 1 + SMTP_DOMAIN_MAX + 1], orcpt[SMTP_ORCPT_MAX + 1];
	const char *o = c->orcpt;

	/* "<Postmaster>" means the postmaster of this host: say so */
	snprintf(given, sizeof(given), "%s@%s", c->path.local,
		 c->path.domain[0] ? c->path.domain : s->conf->hostname);
	if (o[0] == '\0') {
		memcpy(orcpt, "rfc822;", 7);
		if (smtp_xtext_encode(given, orcpt + 7, sizeof(orcpt) - 7) >= 0)
			o = orcpt;
	}
	if (rcpt_add(s, s->conf->postmaster, o, c->notify, given) != 0)
		return -1;
	STAT(s, postmaster);
	return 0;
}

/* ---- session ---------------------------------------------------------- */

static void close_session(struct smtp_session *s)
{
	s->state = ST_DONE;
	s->event = SMTP_EV_CLOSE;
}

/* A 5xx reply to a command: counts towards the error limit. */
static void error_reply(struct smtp_session *s, const char *text)
{
	reply_line(s, text, strlen(text));
	s->errors++;
	if (s->conf->max_errors && s->errors >= s->conf->max_errors) {
		reply(s, "421 4.7.0 %s Error: too many errors", s->conf->hostname);
		STAT(s, err_disconnect);
		close_session(s);
	}
}

void smtp_session_init(struct smtp_session *s, const struct smtp_conf *conf,
		       struct smtp_stats *stats, const struct smtp_client *client,
		       const struct smtp_session_cb *cb)
{
	memset(s, 0, sizeof(*s));	/* once per connection, not per command */
	s->conf = conf;
	s->stats = stats;
	if (cb != NULL)
		s->cb = *cb;
	if (client != NULL)
		s->client = *client;
	s->client.rdns[sizeof(s->client.rdns) - 1] = '\0';
	uint32_t ip = s->client.ip;
	if (s->client.v6)	/* inet_ntop: RFC 5952 text, no system call */
		inet_ntop(AF_INET6, s->client.ip6, s->client_ip, sizeof(s->client_ip));
	else
		snprintf(s->client_ip, sizeof(s->client_ip), "%u.%u.%u.%u",
			 ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
	s->state = ST_INIT;
	txn_reset(s);
	STAT(s, sessions);
	reply(s, "220 %s ESMTP Sluice", conf->hostname);
}

static void do_ehlo(struct smtp_session *s, const struct smtp_cmd *c, bool esmtp)
{
	copy_str(s->helo, sizeof(s->helo), c->arg);	/* cut at 255 */
	s->esmtp = esmtp;
	s->state = ST_READY;
	txn_reset(s);
	if (!esmtp) {
		reply(s, "250 %s", s->conf->hostname);
		return;
	}
	reply(s, "250-%s", s->conf->hostname);
	reply(s, "250-PIPELINING");
	if (s->conf->max_size)
		reply(s, "250-SIZE %llu", (unsigned long long)s->conf->max_size);
	else
		reply(s, "250-SIZE");
	reply(s, "250-8BITMIME");
	reply(s, "250-ENHANCEDSTATUSCODES");
	reply(s, "250-CHUNKING");
	reply(s, "250-ETRN");
	reply(s, "250-DSN");
	if (s->conf->policy && smtp_policy_trusted(s->conf->policy, s->client.ip))
		reply(s, "250-XSLUICE");	/* transfers between boxes (xsluice.h) */
	if (s->conf->auth_available && s->tls)	/* RFC 4954 14: not in the clear */
		reply(s, "250-AUTH PLAIN LOGIN");
	if (s->conf->tls_available && !s->tls) {
		reply(s, "250-SMTPUTF8");
		reply(s, "250 STARTTLS");
	} else {
		reply(s, "250 SMTPUTF8");
	}
}

/* Tell the session's owner of a refusal for the mail log (cb.reject). */
static void note_reject(struct smtp_session *s, const char *stage, const char *text,
			const char *from, const char *to)
{
	if (s->cb.reject)
		s->cb.reject(s->cb.user, stage, text, from, to);
}

/* The caller's per-client rates (cb.rate): true if refused (replied). */
static bool rate_refused(struct smtp_session *s, const char *stage, const char *from,
			 const char *to)
{
	const char *text = s->cb.rate ? s->cb.rate(s->cb.user, stage) : NULL;

	if (!text)
		return false;
	STAT(s, rej_rate);
	reply(s, "%s", text);
	note_reject(s, stage, text, from, to);
	return true;
}

static void do_mail(struct smtp_session *s, const struct smtp_cmd *c)
{
	if (s->state == ST_INIT) {
		STAT(s, rej_sequence);
		error_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (s->state != ST_READY) {
		STAT(s, rej_sequence);
		error_reply(s, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	if (s->conf->submission && !s->tls) {
		STAT(s, rej_need_tls);
		error_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
		return;
	}
	if (s->conf->submission && !s->authenticated) {
		STAT(s, rej_auth);
		error_reply(s, "530 5.7.0 Authentication required");
		return;
	}
	if (c->has_xsluice &&
	    (!s->conf->policy || !smtp_policy_trusted(s->conf->policy, s->client.ip))) {
		STAT(s, rej_xsluice);	/* only the cluster's boxes may set queue state */
		error_reply(s, "555 5.5.4 Unsupported parameter");
		return;
	}
	if (rate_refused(s, "MAIL", c->path.addr, NULL))
		return;
	if (c->path.utf8 && !c->smtputf8) {
		STAT(s, rej_utf8);
		error_reply(s, "553 5.6.7 Error: non-ASCII address requires SMTPUTF8");
		note_reject(s, "MAIL", "553 5.6.7 Error: non-ASCII address requires SMTPUTF8",
			    c->path.addr, NULL);
		return;
	}
	if (c->has_size && s->conf->max_size && c->size > s->conf->max_size) {
		STAT(s, rej_size);
		error_reply(s, "552 5.3.4 Error: message size exceeds fixed limit");
		note_reject(s, "MAIL", "552 5.3.4 Error: message size exceeds fixed limit",
			    c->path.addr, NULL);
		return;
	}
	txn_reset(s);
	struct smtp_message *m = &s->msg;
	copy_str(m->sender, sizeof(m->sender), c->path.addr);
	m->smtputf8 = c->smtputf8;
	m->body = c->body;
	m->ret = c->ret;
	copy_str(m->envid, sizeof(m->envid), c->envid);
	m->declared_size = c->has_size ? c->size : 0;
	m->has_xsluice = c->has_xsluice;
	if (c->has_xsluice) {
		STAT(s, xsluice);
		m->xsluice = c->xsluice;
	}
	s->state = ST_MAIL;
	reply(s, "250 2.1.0 Ok");
}

static void do_rcpt(struct smtp_session *s, const struct smtp_cmd *c)
{
	if (s->state != ST_MAIL) {
		STAT(s, rej_sequence);
		error_reply(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (s->bdat_used) {
		STAT(s, rej_sequence);
		error_reply(s, "503 5.5.1 Error: RCPT after BDAT");
		return;
	}
	s->rcpt_tried = true;
	if (c->path.utf8 && !s->msg.smtputf8) {
		STAT(s, rej_utf8);
		error_reply(s, "553 5.6.7 Error: non-ASCII address requires SMTPUTF8");
		note_reject(s, "RCPT", "553 5.6.7 Error: non-ASCII address requires SMTPUTF8",
			    s->msg.sender, c->path.addr);
		return;
	}
	unsigned lim = s->conf->max_rcpt;
	if (lim == 0 || lim > SMTP_RCPT_HARD_MAX)
		lim = SMTP_RCPT_HARD_MAX;
	if (s->msg.nrcpt >= lim) {
		STAT(s, rej_rcpt_limit);
		reply(s, "452 4.5.3 Error: too many recipients");
		note_reject(s, "RCPT", "452 4.5.3 Error: too many recipients", s->msg.sender,
			    c->path.addr);
		return;
	}
	if (rate_refused(s, "RCPT", s->msg.sender, c->path.addr))
		return;
	if (!c->path.literal &&
	    smtp_policy_postmaster(c->path.local, c->path.domain, s->conf->hostname)) {
		/* RFC 5321 4.5.1: from anyone, whatever the relay policy */
		if (rcpt_postmaster(s, c) != 0) {
			STAT(s, rej_rcpt_nomem);
			reply(s, "452 4.3.1 Error: insufficient system storage");
			return;
		}
		STAT(s, recipients);
		reply(s, "250 2.1.5 Ok");
		return;
	}
	static const struct smtp_policy empty;
	const struct smtp_policy *pol = s->conf->policy ? s->conf->policy : &empty;
	if (!s->authenticated &&	/* an authenticated client relays anywhere */
	    (s->client.v6 ? smtp_policy_check6(pol, s->client.ip6, c->path.local,
					       c->path.domain, c->path.literal)
			  : smtp_policy_check(pol, s->client.ip, c->path.local, c->path.domain,
					      c->path.literal)) != SMTP_RELAY_OK) {
		STAT(s, rej_relay);
		char text[SMTP_LINE_MAX];
		snprintf(text, sizeof(text), "554 5.7.1 <%.256s>: Relay access denied",
			 c->path.addr);
		error_reply(s, text);
		note_reject(s, "RCPT", text, s->msg.sender, c->path.addr);
		return;
	}
	int r = rcpt_add(s, c->path.addr, c->orcpt, c->notify, c->path.addr);
	if (r == SMTP_RCPT_REFUSE) {
		char text[SMTP_LINE_MAX];
		STAT(s, rej_rcpt_refused);
		snprintf(text, sizeof(text), "550 5.1.1 <%.256s>: Recipient address rejected",
			 c->path.addr);
		error_reply(s, text);
		return;
	}
	if (r != 0) {
		/* RFC 5321 4.2.2 / 4.5.3.1.10: the client tries it again later */
		STAT(s, rej_rcpt_nomem);
		reply(s, "452 4.3.1 Error: insufficient system storage");
		return;
	}
	STAT(s, recipients);
	reply(s, "250 2.1.5 Ok");
}

/* Can a body start now? Returns BD_NONE or why not. */
static uint8_t body_check(const struct smtp_session *s)
{
	if (s->state != ST_MAIL)
		return BD_NEED_MAIL;
	if (s->msg.nrcpt == 0)
		return s->rcpt_tried ? BD_NO_VALID_RCPT : BD_NEED_RCPT;
	return BD_NONE;
}

static void body_refuse(struct smtp_session *s, uint8_t why)
{
	STAT(s, rej_sequence);
	if (why == BD_NEED_MAIL)
		error_reply(s, "503 5.5.1 Error: need MAIL command");
	else if (why == BD_NEED_RCPT)
		error_reply(s, "503 5.5.1 Error: need RCPT command");
	else
		error_reply(s, "554 5.5.1 Error: no valid recipients");
}

static void body_begin(struct smtp_session *s, bool dot)
{
	struct smtp_data_conf dc = {
		.max_size = s->conf->max_size,
		.max_line = s->conf->max_line,
		.bare = s->conf->bare,
	};
	smtp_data_begin(&s->data, &dc, dot, s->cb.sink, s->cb.user);
	if (s->cb.msg_begin != NULL)
		s->cb.msg_begin(s->cb.user);
}

static void do_data(struct smtp_session *s)
{
	if (s->state == ST_MAIL && s->bdat_used) {
		STAT(s, rej_sequence);
		error_reply(s, "503 5.5.1 Error: DATA after BDAT");
		return;
	}
	uint8_t why = body_check(s);
	if (why != BD_NONE) {
		body_refuse(s, why);
		return;
	}
	body_begin(s, true);
	s->state = ST_DATA;
	reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void do_bdat(struct smtp_session *s, const struct smtp_cmd *c)
{
	s->bdat_last = c->bdat_last;
	s->bdat_left = c->bdat_size;
	s->bdat_prev = s->state;
	s->bdat_chunk = c->bdat_size;
	if (s->bdat_discard == BD_NONE) {
		uint8_t why = body_check(s);
		if (why != BD_NONE) {
			s->bdat_discard = why;
		} else if (!s->bdat_used) {
			s->bdat_used = true;
			body_begin(s, false);
		}
	}
	s->state = ST_BDAT;
}

static void end_of_message(struct smtp_session *s);

/* All bytes of the current BDAT chunk are in. */
static void bdat_chunk_done(struct smtp_session *s)
{
	if (s->bdat_discard != BD_NONE) {
		uint8_t why = s->bdat_discard;
		s->bdat_discard = BD_NONE;
		s->state = s->bdat_prev;	/* back to where the BDAT found us */
		body_refuse(s, why);
		return;
	}
	if (!s->bdat_last) {
		s->state = ST_MAIL;
		reply(s, "250 2.0.0 %llu octets received",
		      (unsigned long long)s->bdat_chunk);
		return;
	}
	smtp_data_finish(&s->data);
	end_of_message(s);
}

static uint64_t now_s(const struct smtp_session *s)
{
	return s->cb.now != NULL ? s->cb.now(s->cb.user) : clock_real_s();
}


/* The trace header for the message now complete, from what the session
 * knows now (its reverse name may arrive later: smtp_session_set_rdns). */
static void build_received(struct smtp_session *s)
{
	struct smtp_message *m = &s->msg;
	char lit[sizeof(s->client_ip) + 5];
	/* RFC 5321 4.4: the TCP-info is an address literal, "IPv6:" tagged */
	snprintf(lit, sizeof(lit), "%s%s", s->client.v6 ? "IPv6:" : "", s->client_ip);
	struct smtp_received_info ri = {
		.helo = s->helo,
		.rdns = s->client.rdns,
		.ip = lit,
		.hostname = s->conf->hostname,
		.id = m->trace_id,
		.rcpt = m->nrcpt == 1 ? m->rcpt1 : NULL,
		.tls = s->tls ? s->tls_info : NULL,
		.esmtp = s->esmtp,
		.tls_active = s->tls,
		.auth = s->authenticated,
		.utf8 = m->smtputf8,
		.when = m->arrival,
	};
	m->received_len = smtp_received_format(m->received, sizeof(m->received), &ri);
}

static void end_of_message(struct smtp_session *s)
{
	struct smtp_message *m = &s->msg;
	enum smtp_data_verdict v = smtp_data_verdict(&s->data);
	s->state = ST_MAIL;	/* txn_reset below brings it to READY */
	switch (v) {
	case SMTP_DV_BARE:
		STAT(s, rej_bare);
		reply(s, "550 5.5.2 Error: bare <CR> or <LF> received in message");
		txn_reset(s);
		return;
	case SMTP_DV_LINE:
		STAT(s, rej_line);
		reply(s, "500 5.5.2 Error: message line too long");
		txn_reset(s);
		return;
	case SMTP_DV_SIZE:
		STAT(s, rej_size);
		reply(s, "552 5.3.4 Error: message too big");
		note_reject(s, "END-OF-MESSAGE", "552 5.3.4 Error: message too big", m->sender,
			    m->nrcpt ? m->rcpt1 : NULL);
		txn_reset(s);
		return;
	default:
		break;
	}
	bool loop = s->conf->hop_limit && s->data.received >= s->conf->hop_limit;
	if (loop && s->conf->loop != SMTP_LOOP_HOLD) {
		STAT(s, rej_hops);
		reply(s, "554 5.4.6 Error: too many hops");
		note_reject(s, "END-OF-MESSAGE", "554 5.4.6 Error: too many hops", m->sender,
			    m->nrcpt ? m->rcpt1 : NULL);
		txn_reset(s);
		return;
	}
	if (v == SMTP_DV_SINK) {
		STAT(s, rej_sink);
		reply(s, "452 4.3.1 Error: insufficient system storage, try again later");
		txn_reset(s);
		return;
	}
	m->size = s->data.size;
	m->received_count = s->data.received;
	m->held = loop;	/* kept for the operator: queued held */
	if (loop)
		STAT(s, held_hops);
	m->arrival = now_s(s);
	m->trace_id[0] = '\0';
	if (s->cb.trace_id != NULL &&
	    s->cb.trace_id(s->cb.user, m->trace_id, sizeof(m->trace_id)) != 0)
		m->trace_id[0] = '\0';
	m->trace_id[sizeof(m->trace_id) - 1] = '\0';
	build_received(s);
	STAT_ADD(s, bytes, m->size);
	s->event = SMTP_EV_MESSAGE;
}

int smtp_session_set_rdns(struct smtp_session *s, const char *name)
{
	snprintf(s->client.rdns, sizeof(s->client.rdns), "%s", name ? name : "");
	if (s->event != SMTP_EV_MESSAGE)
		return 0;
	build_received(s);	/* the message waits for the queue: it carries the name */
	return 1;
}

int smtp_session_queued(struct smtp_session *s, enum smtp_queue_status st,
			const char *queue_id)
{
	if (s->event != SMTP_EV_MESSAGE)
		return -1;
	s->event = SMTP_EV_NONE;
	switch (st) {
	case SMTP_QUEUED_OK:
		STAT(s, messages);
		reply(s, "250 2.0.0 Ok: queued as %.64s", queue_id ? queue_id : "");
		break;
	case SMTP_QUEUED_FULL:
		STAT(s, rej_queue);
		reply(s, "452 4.3.1 Error: insufficient system storage");
		break;
	case SMTP_QUEUED_REJECT:
		STAT(s, rej_queue);
		reply(s, "554 5.7.0 Error: transaction failed");
		break;
	default:
		STAT(s, rej_queue);
		reply(s, "451 4.3.0 Error: queue unavailable, try again later");
		break;
	}
	txn_reset(s);
	if (s->shutdown_pending) {
		reply(s, "421 4.3.2 %s Service shutting down", s->conf->hostname);
		close_session(s);
	}
	return 0;
}

static void do_starttls(struct smtp_session *s)
{
	if (!s->conf->tls_available) {
		STAT(s, rej_syntax);
		error_reply(s, "502 5.5.1 Error: command not implemented");
		return;
	}
	if (s->tls) {
		STAT(s, rej_sequence);
		error_reply(s, "503 5.5.1 Error: TLS already active");
		return;
	}
	if (s->state == ST_INIT || !s->esmtp) {
		STAT(s, rej_sequence);
		error_reply(s, "503 5.5.1 Error: send EHLO first");
		return;
	}
	if (s->state != ST_READY) {
		STAT(s, rej_sequence);
		error_reply(s, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	STAT(s, starttls);
	reply(s, "220 2.0.0 Ready to start TLS");
	/* RFC 3207 4.2: forget everything learnt from the client */
	s->state = ST_INIT;
	s->helo[0] = '\0';
	s->esmtp = false;
	txn_reset(s);
	s->line_len = 0;
	s->line_total = 0;
	s->event = SMTP_EV_STARTTLS;
}

int smtp_session_tls_started(struct smtp_session *s, const char *tls_info)
{
	if (s->event != SMTP_EV_STARTTLS)
		return -1;
	s->event = SMTP_EV_NONE;
	s->tls = true;
	s->state = ST_INIT;
	s->line_len = 0;
	s->line_total = 0;
	snprintf(s->tls_info, sizeof(s->tls_info), "%s", tls_info ? tls_info : "");
	return 0;
}

void smtp_session_tls_implicit(struct smtp_session *s, const char *tls_info)
{
	s->tls = true;
	snprintf(s->tls_info, sizeof(s->tls_info), "%s", tls_info ? tls_info : "");
}

/*
 * ETRN (RFC 1985): a client in mynetworks asks us to deliver what is queued
 * for a domain now ("ETRN example.com", or "@example.com" for it and its
 * subdomains, which we take as the domain). Not inside a transaction (503),
 * not from others (459), "#queue" names are not ours (458); a domain must
 * be a domain (501).
 */
static void do_etrn(struct smtp_session *s, const struct smtp_cmd *c)
{
	const char *d = c->arg[0] == '@' ? c->arg + 1 : c->arg;
	char ok = 1;

	if (s->state == ST_INIT) {
		STAT(s, rej_sequence);
		error_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (s->state != ST_READY && s->state != ST_DONE) {
		STAT(s, rej_sequence);
		error_reply(s, "503 5.5.1 Error: ETRN inside a mail transaction");
		return;
	}
	if (!s->conf->policy ||
	    !(s->client.v6 ? smtp_policy_trusted6(s->conf->policy, s->client.ip6)
			   : smtp_policy_trusted(s->conf->policy, s->client.ip))) {
		STAT(s, rej_etrn);
		reply(s, "459 4.7.1 %.255s: ETRN is not allowed from this client", c->arg);
		return;
	}
	if (c->arg[0] == '#') {
		STAT(s, rej_etrn);
		reply(s, "458 4.3.0 %.255s: no such queue; name a domain", c->arg);
		return;
	}
	for (const char *p = d; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
			ok = 0;
	if (!ok || !*d || strlen(d) > SMTP_DOMAIN_MAX) {
		STAT(s, rej_syntax);
		error_reply(s, "501 5.5.4 Error: ETRN wants a domain");
		return;
	}
	if (!s->cb.etrn || s->cb.etrn(s->cb.user, d) != 0) {
		STAT(s, rej_etrn);
		reply(s, "458 4.3.0 Unable to queue messages for node %s", d);
		return;
	}
	STAT(s, etrn);
	reply(s, "250 2.0.0 Queuing for node %s started", d);
}

/* ---- AUTH (RFC 4954) -------------------------------------------------- */

static void auth_wipe(struct smtp_session *s)
{
	volatile char *p = s->auth_pass;

	for (size_t i = 0; i < sizeof(s->auth_pass); i++)
		p[i] = 0;
	s->auth_pass_len = 0;
}

/* A response that cannot be a name/password: 501, back to READY. */
static void auth_malformed(struct smtp_session *s)
{
	auth_wipe(s);
	s->state = ST_READY;
	STAT(s, rej_syntax);
	error_reply(s, "501 5.5.2 Error: malformed authentication response");
}

/* The name and password are in: the caller checks them. */
static void auth_ask(struct smtp_session *s)
{
	s->state = ST_READY;
	s->event = SMTP_EV_AUTH;
}

/* PLAIN's base64 message (from the AUTH line or a response). */
static void auth_plain(struct smtp_session *s, const char *b64, size_t n)
{
	uint8_t msg[SMTP_AUTH_NAME_MAX * 2 + SMTP_AUTH_PASS_MAX + 2];
	int len = sasl_b64_decode(b64, n, msg, sizeof(msg));
	volatile uint8_t *w = msg;

	if (len < 0 || sasl_plain_split(msg, (size_t)len, s->auth_user, s->auth_pass,
					&s->auth_pass_len) < 0) {
		for (size_t i = 0; i < sizeof(msg); i++)
			w[i] = 0;
		auth_malformed(s);
		return;
	}
	for (size_t i = 0; i < sizeof(msg); i++)
		w[i] = 0;
	auth_ask(s);
}

/* One LOGIN response: the name (then ask for the password) or the password. */
static void auth_login(struct smtp_session *s, const char *b64, size_t n, bool user)
{
	uint8_t part[SMTP_AUTH_PASS_MAX + 1];
	int len = sasl_b64_decode(b64, n, part, sizeof(part));
	volatile uint8_t *w = part;
	int r;

	if (len < 0)
		r = -1;
	else if (user)
		r = sasl_login_part(part, (size_t)len, s->auth_user, SMTP_AUTH_NAME_MAX);
	else
		r = sasl_login_part(part, (size_t)len, s->auth_pass, SMTP_AUTH_PASS_MAX);
	for (size_t i = 0; i < sizeof(part); i++)
		w[i] = 0;
	if (r < 0 || (user && !s->auth_user[0])) {
		auth_malformed(s);
		return;
	}
	if (user) {
		s->state = ST_AUTH_PASS;
		reply(s, "334 UGFzc3dvcmQ6");	/* "Password:" */
		return;
	}
	s->auth_pass_len = (size_t)len;
	auth_ask(s);
}

/* A line while a 334 challenge is out. */
static void auth_response(struct smtp_session *s, const char *line, size_t n)
{
	STAT(s, commands);
	if (n == 1 && line[0] == '*') {
		auth_wipe(s);
		s->state = ST_READY;
		STAT(s, rej_auth);
		error_reply(s, "501 5.0.0 Authentication aborted");
		return;
	}
	if (s->state == ST_AUTH_PLAIN)
		auth_plain(s, line, n);
	else
		auth_login(s, line, n, s->state == ST_AUTH_USER);
}

static void do_auth(struct smtp_session *s, const struct smtp_cmd *c)
{
	const char *mech = c->arg, *sp = strchr(c->arg, ' ');
	size_t ml = sp ? (size_t)(sp - mech) : strlen(mech);
	const char *ir = sp ? sp + 1 : NULL;	/* the initial response */

	if (!s->conf->auth_available) {
		STAT(s, rej_syntax);
		error_reply(s, "502 5.5.1 Error: command not implemented");
		return;
	}
	if (!s->tls) {
		STAT(s, rej_need_tls);
		error_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
		return;
	}
	if (s->state == ST_INIT || !s->esmtp) {
		STAT(s, rej_sequence);
		error_reply(s, "503 5.5.1 Error: send EHLO first");
		return;
	}
	if (s->authenticated) {
		STAT(s, rej_sequence);
		error_reply(s, "503 5.5.1 Error: already authenticated");
		return;
	}
	if (s->state != ST_READY) {
		STAT(s, rej_sequence);
		error_reply(s, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	s->auth_user[0] = '\0';
	s->auth_method[0] = '\0';
	auth_wipe(s);
	if (ml == 5 && strncasecmp(mech, "PLAIN", 5) == 0) {
		snprintf(s->auth_method, sizeof(s->auth_method), "PLAIN");
		if (ir && !(ir[0] == '=' && ir[1] == '\0')) {
			auth_plain(s, ir, strlen(ir));
			return;
		}
		s->state = ST_AUTH_PLAIN;
		reply(s, "334 ");
	} else if (ml == 5 && strncasecmp(mech, "LOGIN", 5) == 0) {
		snprintf(s->auth_method, sizeof(s->auth_method), "LOGIN");
		if (ir) {
			s->state = ST_AUTH_USER;
			auth_login(s, ir, strlen(ir), true);
			return;
		}
		s->state = ST_AUTH_USER;
		reply(s, "334 VXNlcm5hbWU6");	/* "Username:" */
	} else {
		STAT(s, rej_auth);
		error_reply(s, "504 5.5.4 Error: unrecognized authentication type");
	}
}

void smtp_session_end(struct smtp_session *s)
{
	auth_wipe(s);
	if (s->event == SMTP_EV_AUTH)
		s->event = SMTP_EV_NONE;
	s->state = ST_DONE;
}

int smtp_session_auth_request(const struct smtp_session *s, const char **name,
			      const char **pass, size_t *pass_len)
{
	if (s->event != SMTP_EV_AUTH)
		return -1;
	*name = s->auth_user;
	*pass = s->auth_pass;
	*pass_len = s->auth_pass_len;
	return 0;
}

int smtp_session_auth_done(struct smtp_session *s, int result)
{
	if (s->event != SMTP_EV_AUTH)
		return -1;
	s->event = SMTP_EV_NONE;
	auth_wipe(s);
	if (result == 1) {
		STAT(s, auth_ok);
		s->authenticated = true;
		reply(s, "235 2.7.0 Authentication successful");
	} else if (result == 0) {
		STAT(s, auth_failed);
		s->auth_user[0] = '\0';
		s->auth_failures++;
		reply(s, "535 5.7.8 Error: authentication failed");
		if (s->conf->max_auth_failures && s->auth_failures >= s->conf->max_auth_failures) {
			STAT(s, auth_disconnect);
			reply(s, "421 4.7.0 %s Error: too many authentication failures",
			      s->conf->hostname);
			close_session(s);
		}
	} else if (result == SMTP_AUTH_RATE || result == SMTP_AUTH_RATE_USER) {
		STAT(s, auth_refused);
		s->auth_user[0] = '\0';
		if (result == SMTP_AUTH_RATE)
			reply(s, "421 4.7.0 %s Error: too many authentication failures from %s",
			      s->conf->hostname, s->client_ip);
		else
			reply(s, "421 4.7.0 %s Error: too many connections for this user",
			      s->conf->hostname);
		close_session(s);
	} else {
		STAT(s, auth_temp);
		s->auth_user[0] = '\0';
		reply(s, "454 4.7.0 Temporary authentication failure");
	}
	if (s->shutdown_pending && s->state != ST_DONE) {
		reply(s, "421 4.3.2 %s Service shutting down", s->conf->hostname);
		close_session(s);
	}
	return 0;
}

static void handle_line(struct smtp_session *s, const char *line, size_t n)
{
	struct smtp_cmd *c = &s->cmd;

	if (s->state == ST_AUTH_PLAIN || s->state == ST_AUTH_USER || s->state == ST_AUTH_PASS) {
		auth_response(s, line, n);
		return;
	}
	STAT(s, commands);
	if (smtp_parse_line(line, n, c) != SMTP_PE_OK) {
		STAT(s, rej_syntax);
		error_reply(s, c->reply);
		return;
	}
	switch (c->verb) {
	case SMTP_V_EHLO: do_ehlo(s, c, true); break;
	case SMTP_V_HELO: do_ehlo(s, c, false); break;
	case SMTP_V_MAIL: do_mail(s, c); break;
	case SMTP_V_RCPT: do_rcpt(s, c); break;
	case SMTP_V_DATA: do_data(s); break;
	case SMTP_V_BDAT: do_bdat(s, c); break;
	case SMTP_V_RSET:
		txn_reset(s);
		reply(s, "250 2.0.0 Ok");
		break;
	case SMTP_V_NOOP:
		reply(s, "250 2.0.0 Ok");
		break;
	case SMTP_V_VRFY:
		reply(s, "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery");
		break;
	case SMTP_V_HELP:
		reply(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP ETRN%s%s",
		      s->conf->tls_available && !s->tls ? " STARTTLS" : "",
		      s->conf->auth_available && s->tls ? " AUTH" : "");
		break;
	case SMTP_V_QUIT:
		reply(s, "221 2.0.0 Bye");
		close_session(s);
		break;
	case SMTP_V_STARTTLS: do_starttls(s); break;
	case SMTP_V_ETRN: do_etrn(s, c); break;
	case SMTP_V_AUTH: do_auth(s, c); break;
	default:
		STAT(s, rej_syntax);
		error_reply(s, "500 5.5.2 Error: command not recognized");
		break;
	}
}

/* Consume command bytes up to and including one LF (or all of them). */
static size_t command_bytes(struct smtp_session *s, const uint8_t *p, size_t n)
{
	const uint8_t *lf = memchr(p, '\n', n);
	size_t take = lf ? (size_t)(lf - p) + 1 : n;
	size_t body = lf ? take - 1 : take;	/* without the LF */
	size_t room = sizeof(s->line) - s->line_len;
	size_t cp = body < room ? body : room;
	memcpy(s->line + s->line_len, p, cp);
	s->line_len += (uint32_t)cp;
	s->line_total = (s->line_total + body > UINT32_MAX / 2) ? UINT32_MAX / 2
				: s->line_total + (uint32_t)body;
	if (lf == NULL)
		return take;

	/* a whole line: s->line[0..line_len) (maybe cut), line_total octets */
	uint32_t total = s->line_total + 1;	/* with the LF */
	bool crlf = s->line_len > 0 && s->line[s->line_len - 1] == '\r' &&
		    total <= SMTP_CMD_MAX;
	size_t len = s->line_len;
	s->line_len = 0;
	s->line_total = 0;
	if (total > SMTP_CMD_MAX) {
		STAT(s, commands);
		STAT(s, rej_line);
		error_reply(s, "500 5.5.2 Error: line too long");
	} else if (!crlf) {
		STAT(s, commands);
		STAT(s, rej_bare);
		error_reply(s, "500 5.5.2 Error: bare <LF> received");
	} else {
		handle_line(s, s->line, len - 1);
	}
	return take;
}

size_t smtp_session_input(struct smtp_session *s, const void *data, size_t len)
{
	const uint8_t *p = data;
	size_t i = 0;

	if (s->event == SMTP_EV_STARTTLS || s->event == SMTP_EV_CLOSE ||
	    s->state == ST_DONE)
		return len;	/* discarded: see smtp_server.h */
	while (i < len) {
		if (s->event == SMTP_EV_CLOSE)
			return len;	/* QUIT or 421: the rest is discarded */
		if (s->event == SMTP_EV_STARTTLS)
			return i;	/* just after the STARTTLS line: the caller drops the rest */
		if (s->event != SMTP_EV_NONE)
			break;
		switch (s->state) {
		case ST_DATA: {
			size_t k = smtp_data_feed(&s->data, p + i, len - i);
			i += k;
			if (s->data.done)
				end_of_message(s);
			break;
		}
		case ST_BDAT: {
			size_t k = len - i;
			if (k > s->bdat_left)
				k = (size_t)s->bdat_left;
			if (s->bdat_discard == BD_NONE)
				(void)smtp_data_feed(&s->data, p + i, k);
			i += k;
			s->bdat_left -= k;
			if (s->bdat_left == 0)
				bdat_chunk_done(s);
			break;
		}
		default:
			if (out_free(s) < SMTP_REPLY_RESERVE)
				return i;	/* drain the output first */
			i += command_bytes(s, p + i, len - i);
			/* a zero-length BDAT chunk is complete at once */
			if (s->state == ST_BDAT && s->bdat_left == 0 &&
			    s->event == SMTP_EV_NONE)
				bdat_chunk_done(s);
			break;
		}
	}
	if (s->event == SMTP_EV_CLOSE)
		return len;
	return i;
}

enum smtp_event smtp_session_event(const struct smtp_session *s)
{
	return s->event;
}

const struct smtp_message *smtp_session_message(const struct smtp_session *s)
{
	return s->event == SMTP_EV_MESSAGE ? &s->msg : NULL;
}

uint64_t smtp_session_timeout_ns(const struct smtp_session *s)
{
	if (s->event == SMTP_EV_AUTH)	/* the check is bounded too */
		return s->conf->timeout_cmd_ns;
	if (s->event != SMTP_EV_NONE || s->state == ST_DONE)
		return 0;
	if (s->state == ST_DATA || s->state == ST_BDAT)
		return s->conf->timeout_data_ns;
	return s->conf->timeout_cmd_ns;
}

void smtp_session_timeout(struct smtp_session *s)
{
	if (s->state == ST_DONE)
		return;
	STAT(s, timeouts);
	if (s->event == SMTP_EV_AUTH) {
		auth_wipe(s);
		s->event = SMTP_EV_NONE;
	}
	reply(s, "421 4.4.2 %s Error: timeout exceeded", s->conf->hostname);
	close_session(s);
}

void smtp_session_refuse(struct smtp_session *s)
{
	s->out_start = s->out_end = 0;	/* drop the 220 greeting */
	STAT(s, refused);
	reply(s, "421 4.7.0 %s Error: too many connections, try again later",
	      s->conf->hostname);
	close_session(s);
}

void smtp_session_refuse_rate(struct smtp_session *s)
{
	s->out_start = s->out_end = 0;	/* drop the 220 greeting */
	STAT(s, refused);
	reply(s, "421 4.7.0 %s Error: too many connections from %s", s->conf->hostname,
	      s->client_ip);
	close_session(s);
}

void smtp_session_refuse_drain(struct smtp_session *s)
{
	s->out_start = s->out_end = 0;	/* drop the 220 greeting */
	STAT(s, refused);
	reply(s, "421 4.3.2 %s Service not available, closing transmission channel",
	      s->conf->hostname);
	close_session(s);
}

void smtp_session_shutdown(struct smtp_session *s)
{
	if (s->state == ST_DONE)
		return;
	STAT(s, shutdowns);
	if (s->event == SMTP_EV_MESSAGE || s->event == SMTP_EV_AUTH) {
		s->shutdown_pending = true;
		return;
	}
	reply(s, "421 4.3.2 %s Service shutting down", s->conf->hostname);
	close_session(s);
}
