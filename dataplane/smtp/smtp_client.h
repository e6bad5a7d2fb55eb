/*
 * smtp_client.h - the outbound SMTP client engine (RFC 5321 with
 * PIPELINING, SIZE, 8BITMIME, SMTPUTF8, DSN, CHUNKING, STARTTLS and
 * ENHANCEDSTATUSCODES, as a client). Pure protocol: no TCP, no TLS, no
 * queue, no heap, no system calls, no clock reads. Bytes in, bytes out,
 * events, and per-state timeouts that the caller measures.
 *
 * One struct smtp_client_conn per connection, fixed size, owned by the
 * caller (per-lcore pool). Wiring, in the order things happen:
 *
 *   smtp_client_init(c, conf, stats)        start the TCP connect now
 *   smtp_client_connected(c)                TCP is up: wait for the greeting
 *   loop:
 *     n = smtp_client_input(c, bytes, len)  n <= len bytes consumed
 *     out: smtp_client_peek_output/consume_output (or read_output)
 *     switch (smtp_client_event(c)) ...
 *
 * Events (smtp_client_event), each pending until the caller acts:
 *   SCE_READY     greeted, EHLO (or HELO) done, STARTTLS done if the policy
 *                 wanted it: give a message (smtp_client_send) or QUIT.
 *   SCE_STARTTLS  the next hop said 220 to STARTTLS. Send any pending
 *                 output, run the TLS handshake, then call
 *                 smtp_client_tls_started() (the engine says EHLO again and
 *                 forgets what it learnt in plaintext, RFC 3207 4.2) or
 *                 smtp_client_tls_failed(). The smtp_client_input() call
 *                 that produced the event returns the count up to the end
 *                 of the 220 line: the caller DROPS the rest and any other
 *                 plaintext it holds; only bytes decrypted after the
 *                 handshake are fed afterwards.
 *   SCE_BODY      feed the body: smtp_client_body(c, data, len, last), as
 *                 often as it consumes something, while the event stays
 *                 SCE_BODY. The body is the stored message (CRLF lines).
 *   SCE_DONE      the message's results are in (the arrays given to
 *                 smtp_client_send): read them, then smtp_client_send()
 *                 the next message on this connection or smtp_client_quit().
 *   SCE_CLOSE     the session is over (QUIT answered, or a failure): send
 *                 the pending output, then close. If a message was in
 *                 flight, its results are filled as well: every recipient
 *                 that had no final reply gets the session's failure.
 *
 * Input. smtp_client_input() parses the next hop's replies (multi-line,
 * with enhanced status codes; a malformed one, a line over
 * SMTP_CLIENT_LINE_MAX or a reply over SMTP_CLIENT_REPLY_MAX octets is a
 * protocol error: 4.5.0, SCE_CLOSE) and returns the bytes it consumed. It
 * stops right after the reply that raised an event, and consumes nothing
 * while one is pending (except SCE_CLOSE, after which it discards all):
 * the caller keeps the rest (e.g. in its TCP receive queue, so the window
 * bounds it) and feeds it again once it acted on the event. One exception
 * keeps pipelined BDAT flowing: at SCE_BODY the replies to chunks already
 * written are consumed. So replies may be split anywhere and the results
 * never depend on how. A next hop should say nothing while the connection
 * is idle (SCE_READY/SCE_DONE); if it does (typically "421 ... timeout"
 * before it closes), that reply is read as the answer to what the caller
 * does next, so pending input on an idle connection is a reason to QUIT
 * or close rather than reuse it.
 *
 * Output. Commands and body bytes go into a bounded buffer
 * (SMTP_CLIENT_OUT_MAX). The engine writes a command only when it fits, so
 * a long pipelined group (RFC 2920: MAIL, every RCPT, DATA) leaves in as
 * many pieces as the buffer needs: the caller sends whatever is pending
 * after every call into the engine (consuming output lets the engine write
 * more). Nothing written ever holds a bare CR or LF: commands are built
 * from validated strings, and the body is normalised (a bare CR or LF in
 * what the caller feeds becomes CR LF; counted in bare_fixed).
 *
 * The body (SCE_BODY). Without CHUNKING: DATA; the engine dot-stuffs (a
 * line starting with "." gets another), makes sure the body ends with CR LF
 * (adds one if it does not) and ends it with ".". With CHUNKING (offered
 * and conf.chunking): BDAT chunks of up to SMTP_CLIENT_CHUNK_MAX octets,
 * framed by the engine (chunk borders do not depend on the caller's
 * pieces), the last one "BDAT n LAST"; no dot-stuffing, the same final
 * CR LF rule. smtp_client_body() returns the bytes it took (fewer than len
 * when the output buffer is full: drain it, then feed the rest). Pass
 * last=true with the final piece and keep calling (with what is left,
 * maybe 0 bytes) until the event is no longer SCE_BODY. The engine may
 * stop wanting the body early (a BDAT chunk refused, or the next hop
 * answered in the middle of DATA): the event changes; stop feeding.
 *
 * Transactions (smtp_client_send). Checked before anything is sent, in
 * this order, each failing the whole message (permanent, no conversion):
 * SMTPUTF8 message (flag, or an address with 8-bit octets) to a next hop
 * without SMTPUTF8: 5.6.7; an 8BITMIME body to one without 8BITMIME: 5.6.3;
 * SIZE offered with a limit and msg->size over it: 5.3.4. A sender that
 * cannot go into a command (control characters, too long) fails the
 * message with 5.1.7; such a recipient fails alone with 5.1.3. SIZE=, BODY=
 * and SMTPUTF8 are sent when offered. DSN parameters (RET, ENVID, NOTIFY,
 * ORCPT) only when the next hop offers DSN (RFC 3461 5.2); otherwise they
 * are dropped (counted in dsn_dropped: the caller may owe a "relayed"
 * notice, RFC 3461 5.2.2, see smtp_client_caps()). With PIPELINING (offered
 * and conf.pipelining): MAIL, the RCPTs and (DATA mode) DATA in one group;
 * without: one command at a time. Per-recipient results come from the RCPT
 * replies; the recipients a RCPT accepted get the end-of-data reply (or
 * the DATA/BDAT refusal). No recipient accepted: no DATA/BDAT is sent
 * (when pipelined, DATA is already in the group: if it still gets 354,
 * a lone "." ends it, RFC 2920 3.1). The next message may follow on the
 * same connection: after a complete transaction, MAIL directly; after a
 * failed one, RSET first (sent by the engine when the next message comes;
 * QUIT needs none).
 *
 * Site failures (smtp_client_site_failure(): they count toward the
 * destination's failed cohort and backoff, Postfix qmgr): a greeting that
 * is not 2xx, EHLO answered 4xx (421 included), HELO refused, STARTTLS
 * answered 421, a lost connection, a timeout, a protocol error (malformed
 * or over-long reply, unsolicited reply), TLS required but not offered
 * (Postfix counts that as a site failure too), a failed TLS handshake. NOT
 * site failures: any reply to MAIL, RCPT, DATA, BDAT or end of data
 * (421 included: the session ends, the message is deferred, the site is
 * not throttled).
 *
 * TLS policy (conf.tls): SCT_NONE never starts TLS; SCT_MAY starts it when
 * offered (a refused STARTTLS goes on in plaintext); SCT_ENCRYPT and
 * SCT_VERIFY require it: not offered or refused fails the session with
 * 4.7.4 (temporary, the queue retries). Certificate checks for SCT_VERIFY
 * belong to tls.c and the caller (which fails them with
 * smtp_client_tls_failed and 4.7.5).
 *
 * Timeouts (RFC 5321 4.5.3.2, Postfix's names in brackets): the caller
 * arms a timer with smtp_client_timeout_ns() after every call into the
 * engine that consumed input, took output or changed the event, and calls
 * smtp_client_timeout() when it runs out. Per state: waiting for the
 * connection t_connect (30 s), the greeting t_greeting (5 min), the EHLO/
 * HELO reply t_ehlo (5 min), STARTTLS reply and handshake t_starttls
 * (5 min), RSET t_rset (20 s), MAIL t_mail (5 min), RCPT t_rcpt (5 min),
 * DATA's 354 t_data (2 min), while the body streams (SCE_BODY) or a BDAT
 * chunk's reply is awaited t_block (3 min: the output must make progress),
 * the end-of-data (or BDAT LAST) reply t_dot (10 min), QUIT t_quit
 * (5 min). 0 = nothing expected from the next hop (SCE_READY, SCE_DONE,
 * SCE_CLOSE): the caller's own idle bound applies.
 */
#ifndef SLUICE_SMTP_CLIENT_H
#define SLUICE_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/stats.h"
#include "dataplane/smtp/smtp_parse.h"

#define SMTP_CLIENT_OUT_MAX    16384	/* output buffer per connection */
#define SMTP_CLIENT_CHUNK_MAX  16000	/* BDAT chunk octets (fits the buffer) */
#define SMTP_CLIENT_CMD_MAX    1024	/* a command line incl. CRLF (RFC 3461 5: +600) */
#define SMTP_CLIENT_LINE_MAX   1000	/* a reply line incl. CRLF (RFC: 512; leniency) */
#define SMTP_CLIENT_REPLY_MAX  8192	/* a whole multi-line reply, octets */
#define SMTP_CLIENT_RCPT_MAX   1000	/* recipients per transaction */
#define SMTP_CLIENT_TEXT_MAX   512	/* result text incl. NUL */
#define SMTP_CLIENT_HELO_MAX   255

/* Counters, one struct per lcore (connections on that lcore share it). */
#define SMTP_CLIENT_STATS(X) \
	X(sessions) X(replies) X(ehlo) X(helo_fallback) X(starttls) \
	X(tls_required) X(greet_fail) X(ehlo_fail) X(messages) X(pipelined) \
	X(bdat) X(msg_ok) X(msg_temp) X(msg_perm) X(rcpt_ok) X(rcpt_temp) \
	X(rcpt_perm) X(size_refused) X(utf8_refused) X(eightbit_refused) \
	X(addr_refused) X(dsn_passed) X(dsn_dropped) X(bytes) X(bare_fixed) \
	X(dots) X(rsets) X(quits) X(timeouts) X(lost) X(protocol_errors) \
	X(site_failures) X(closed_421)
struct smtp_client_stats { SMTP_CLIENT_STATS(STATS_FIELD) };
extern const char *const smtp_client_stat_names[];
extern const size_t smtp_client_stat_count;

enum smtp_client_tls { SCT_NONE = 0, SCT_MAY, SCT_ENCRYPT, SCT_VERIFY };

struct smtp_client_conf {
	char helo[SMTP_CLIENT_HELO_MAX + 1];	/* our EHLO/HELO name */
	uint64_t t_connect_ns, t_greeting_ns, t_ehlo_ns, t_starttls_ns,
		 t_rset_ns, t_mail_ns, t_rcpt_ns, t_data_ns, t_block_ns,
		 t_dot_ns, t_quit_ns;	/* see above; defaults from RFC 5321 4.5.3.2 */
	enum smtp_client_tls tls;	/* default SCT_MAY */
	bool pipelining, chunking;	/* use them when offered (default on) */
};
/* Defaults: helo "localhost", the timeouts above, SCT_MAY, both on. */
void smtp_client_conf_default(struct smtp_client_conf *c);
/* helo non-empty printable ASCII without spaces, every timeout >= 1 s.
 * 0, or -1 with *why set. */
int smtp_client_conf_check(const struct smtp_client_conf *c, const char **why);

/* What the next hop's EHLO reply offered (all false after HELO). */
struct smtp_client_caps {
	bool esmtp, pipelining, size, eightbit, smtputf8, dsn, chunking,
	     starttls, enhanced;
	bool xsluice;			/* another Sluice box that trusts us (xsluice.h) */
	uint64_t size_max;		/* SIZE's limit, 0 = none given */
};

/* Body flags: the same values as queue.h's enum queue_body_flags. */
enum { SMTP_CLIENT_BODY_8BITMIME = 1, SMTP_CLIENT_BODY_SMTPUTF8 = 2 };

struct smtp_client_rcpt {
	const char *addr;		/* local@domain (no angle brackets) */
	const char *orcpt;		/* RFC 3461 "type;xtext" or NULL */
	uint8_t notify;			/* SMTP_NOTIFY_* bits (smtp_parse.h), 0 = none */
};

/* One transaction; caller-owned (with the strings) until SCE_DONE or
 * SCE_CLOSE. */
struct smtp_client_msg {
	const char *sender;		/* "" = null sender <> */
	const char *envid;		/* RFC 3461 xtext or NULL */
	uint8_t ret;			/* enum smtp_ret (smtp_parse.h), 0 = none */
	uint8_t body_flags;		/* SMTP_CLIENT_BODY_* */
	unsigned nrcpt;			/* 1..SMTP_CLIENT_RCPT_MAX */
	const struct smtp_client_rcpt *rcpt;
	uint64_t size;			/* body octets as stored (CRLF lines), for SIZE */
	const char *xsluice;		/* a transfer's queue state, an xsluice_format
					 * value, sent as XSLUICE= when the next hop
					 * offers it; NULL: none */
	bool xsluice_required;		/* a transfer (sluicectl transfer): a next hop
					 * that does not offer XSLUICE gets nothing
					 * (every recipient 4.3.5), so no message
					 * moves without its history */
};

/* The outcome for one recipient, the message, or the session. */
struct smtp_client_result {
	int code;			/* the next hop's reply code; 0 = no reply
					   (decided here, lost connection, timeout) */
	char status[12];		/* "X.Y.Z" from the reply, else derived from
					   the code; its first digit is the verdict:
					   2 sent, 4 retry, 5 final failure */
	const char *stage;		/* what it answers or where it happened:
					   "greeting", "EHLO", "RCPT TO", "end of
					   DATA"... (static string), NULL if decided
					   before sending */
	char text[SMTP_CLIENT_TEXT_MAX];	/* the reply (lines joined by a
					   space) or our reason; printable
					   ASCII, no CR/LF; for logs and DSNs */
};

enum smtp_client_event {
	SCE_NONE = 0, SCE_READY, SCE_STARTTLS, SCE_BODY, SCE_DONE, SCE_CLOSE,
};

/* The connection. Internals; read it through the functions below. */
struct smtp_client_conn {
	const struct smtp_client_conf *conf;
	struct smtp_client_stats *stats;
	uint8_t state;			/* see smtp_client.c */
	enum smtp_client_event event;
	struct smtp_client_caps caps;
	bool tls;			/* TLS active */
	bool need_rset;			/* a failed transaction may be open */
	bool site_failure, failed;
	unsigned nmsg;			/* transactions started */
	struct smtp_client_result sess;	/* why the session failed */

	/* the transaction */
	const struct smtp_client_msg *msg;
	struct smtp_client_result *mres, *rres;
	bool pipe, bdat, utf8;		/* this transaction's choices */
	bool mail_sent, mail_done, mail_ok;
	bool data_sent, data_done, data_go;	/* data_go: DATA got 354 (any 3xx) */
	unsigned rcpt_next;		/* next recipient to write */
	unsigned rcpt_wait;		/* next recipient whose reply is due */
	unsigned rcpt_out;		/* RCPTs written, not answered */
	unsigned nacc, nlive;		/* accepted; not refused before sending */
	uint8_t pend;			/* a single command waiting for room */
	uint8_t rstate[SMTP_CLIENT_RCPT_MAX];	/* per recipient, see .c */

	/* the body */
	bool bol, cr;			/* at a line start; last octet out was CR */
	bool chunk_open;		/* a BDAT chunk is being filled at chunk_hdr */
	bool bdat_failed, last_sent;
	uint32_t chunk_hdr;		/* where its header goes (HDR_RESERVE octets) */
	unsigned chunks_sent, chunks_done;

	/* reply assembly */
	struct smtp_client_result cur;	/* the reply coming in */
	struct smtp_client_caps ehlo;	/* keywords of an EHLO reply coming in */
	uint32_t line_len, reply_octets, text_len;
	uint16_t reply_lines;
	char line[SMTP_CLIENT_LINE_MAX];

	/* output */
	uint32_t out_start, out_end;
	char out[SMTP_CLIENT_OUT_MAX];
};

/* conf and stats (may be NULL) are referenced, not copied. The engine
 * waits for the connection (t_connect) until smtp_client_connected(). */
void smtp_client_init(struct smtp_client_conn *c, const struct smtp_client_conf *conf,
		      struct smtp_client_stats *stats);
/* TCP is established: wait for the greeting. */
void smtp_client_connected(struct smtp_client_conn *c);

size_t smtp_client_input(struct smtp_client_conn *c, const void *data, size_t len);

/* Output: peek at the pending bytes, then consume what was sent. */
size_t smtp_client_peek_output(const struct smtp_client_conn *c, const char **p);
void smtp_client_consume_output(struct smtp_client_conn *c, size_t n);

/* The same pair with the engine as an untyped pointer: the output side of
 * a byte pump that serves more than one engine (tls_pump.h). */
size_t smtp_client_peek_output_of(void *c, const char **p);
void smtp_client_consume_output_of(void *c, size_t n);
size_t smtp_client_read_output(struct smtp_client_conn *c, void *buf, size_t cap);

enum smtp_client_event smtp_client_event(const struct smtp_client_conn *c);

/* At SCE_READY or SCE_DONE: start a transaction. res gets the message's
 * result, rres[i] recipient i's (m->nrcpt entries); both are written until
 * SCE_DONE/SCE_CLOSE. Returns 0, or -1 (not ready, or nrcpt out of range). */
int smtp_client_send(struct smtp_client_conn *c, const struct smtp_client_msg *m,
		     struct smtp_client_result *res, struct smtp_client_result *rres);

/* At SCE_BODY: the next piece of the body. Returns the bytes taken. */
size_t smtp_client_body(struct smtp_client_conn *c, const void *data, size_t len,
			bool last);

/* At SCE_READY or SCE_DONE: QUIT, then SCE_CLOSE when answered. 0 or -1. */
int smtp_client_quit(struct smtp_client_conn *c);

/* After SCE_STARTTLS: the handshake succeeded (0), or failed (the session
 * fails with 4.7.5 "why", a site failure; SCE_CLOSE, no QUIT). -1 when no
 * STARTTLS was pending. */
int smtp_client_tls_started(struct smtp_client_conn *c);
int smtp_client_tls_failed(struct smtp_client_conn *c, const char *why);

/* How long to wait for the next hop now (ns), 0 = nothing expected. */
uint64_t smtp_client_timeout_ns(const struct smtp_client_conn *c);
/* That wait ran out: 4.4.1 (connect) or 4.4.2, site failure, SCE_CLOSE. */
void smtp_client_timeout(struct smtp_client_conn *c);
/* The connection failed or was closed by the peer (why: e.g. "connection
 * refused", may be NULL). While connecting 4.4.1, else 4.4.2; a site
 * failure unless the engine was idle (SCE_READY/SCE_DONE) or quitting. */
void smtp_client_lost(struct smtp_client_conn *c, const char *why);

const struct smtp_client_caps *smtp_client_caps(const struct smtp_client_conn *c);
/* Why the session failed (NULL while it has not). */
const struct smtp_client_result *smtp_client_session_result(const struct smtp_client_conn *c);
bool smtp_client_site_failure(const struct smtp_client_conn *c);
bool smtp_client_tls_active(const struct smtp_client_conn *c);
/* Transactions started on this connection (messages-per-connection bound). */
unsigned smtp_client_messages(const struct smtp_client_conn *c);

#endif
