/*
 * smtp_server.h - the inbound SMTP session engine (RFC 5321 with
 * PIPELINING, SIZE, 8BITMIME, ENHANCEDSTATUSCODES, CHUNKING, DSN, SMTPUTF8,
 * STARTTLS). Pure protocol: no TCP, no TLS, no queue, no heap, no system
 * calls, no clock reads unless the caller gives no clock callback.
 *
 * One struct smtp_session per connection, fixed size, owned by the caller
 * (per-lcore pool). Wiring, in the order things happen:
 *
 *   smtp_session_init(s, conf, stats, &client, &cb)     greeting queued
 *   loop:
 *     n = smtp_session_input(s, bytes, len)   n <= len bytes consumed
 *     out: smtp_session_peek_output/consume_output (or read_output)
 *     switch (smtp_session_event(s)) ...
 *
 * Input. smtp_session_input() consumes what it can and returns the count.
 * It stops early (n < len) when the engine has to wait: an event is pending
 * (MESSAGE: until smtp_session_queued), or the output buffer is nearly full
 * (drain it, then feed the rest again). The caller keeps the unconsumed
 * bytes (e.g. leaves the mbufs in its receive queue and calls tcp_recved()
 * only for consumed bytes, so the TCP window does the bounding) and feeds
 * them again later - pipelined input is never lost. After QUIT/421 the
 * engine consumes and discards everything. STARTTLS (RFC 3207,
 * CVE-2011-0411): the call returns the count up to the end of the STARTTLS
 * line; the caller must DROP the rest and any other plaintext it still
 * holds (it was sent before the 220 and must not be acted upon), so only
 * bytes received after the 220 reach TLS. Plaintext fed while the event is
 * pending is consumed and discarded.
 *
 * Output. Replies are appended to a bounded buffer (SMTP_OUT_MAX) in
 * command order as soon as each command is processed. PIPELINING (RFC
 * 2920) flush rule: the caller sends the buffered replies once input ran
 * dry, i.e. after each smtp_session_input() call that consumed everything
 * it had (or stopped early) - so the replies of one pipelined group leave in
 * one segment.
 *
 * Recipients. The engine does not keep them: each accepted RCPT goes to
 * cb.rcpt, which stores it in memory of the caller's (the service: chunks
 * of its per-lcore arena, the body's pool) or says there is none (452
 * 4.3.1, RFC 5321 "insufficient system storage": the client sends that
 * recipient again in a later transaction). cb.rcpt_reset says when the
 * transaction is over and its recipients may go. So the session struct
 * stays small however many recipients (up to conf.max_rcpt) with long
 * ORCPTs a transaction has.
 *
 * Postmaster (RFC 5321 4.5.1, 4.1.1.3). RCPT TO:<Postmaster> and
 * postmaster@<conf.hostname> (any case) are accepted from every client,
 * whatever the relay policy, and kept as a recipient conf.postmaster (the
 * relay has no mailbox of its own) with the address the client gave as its
 * ORCPT (RFC 3461 4.2: "rfc822;Postmaster@<hostname>" for the domainless
 * form), unless the client sent an ORCPT, which is kept unchanged.
 *
 * Events (smtp_session_event):
 *   SMTP_EV_STARTTLS  the "220 2.0.0 Ready to start TLS" reply is in the
 *                     output: send it, then run the TLS handshake; feed
 *                     decrypted bytes afterwards. Call smtp_session_tls_started()
 *                     on success (the session is back to "EHLO required",
 *                     every earlier state forgotten); close on failure.
 *   SMTP_EV_MESSAGE   a message is complete and acceptable. Its body has
 *                     gone through cb.sink (after cb.msg_begin); the
 *                     envelope and the Received header are in
 *                     smtp_session_message(). Store it durably, then call
 *                     smtp_session_queued(): only then the 250 (or 451/452)
 *                     reply is produced and input processing resumes.
 *   SMTP_EV_AUTH      AUTH PLAIN/LOGIN (RFC 4954, over TLS only) has a name
 *                     and password: smtp_session_auth_request() gives them;
 *                     have them checked elsewhere (never on the lcore: a hash
 *                     costs milliseconds), then smtp_session_auth_done().
 *                     Input waits meanwhile; smtp_session_timeout_ns() is the
 *                     command timeout, after which 421 and close.
 *   SMTP_EV_CLOSE     QUIT answered, too many errors, timeout or shutdown:
 *                     send the output, then close the connection.
 *
 * Timeouts (RFC 5321 4.5.3.2) are measured by the caller:
 * smtp_session_timeout_ns() says how long the engine may wait for input in
 * its current state (0 = no input expected: an event is pending), and
 * smtp_session_timeout() queues "421 4.4.2 ..." and raises SMTP_EV_CLOSE.
 */
#ifndef SLUICE_SMTP_SERVER_H
#define SLUICE_SMTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/stats.h"
#include "dataplane/smtp/smtp_data.h"
#include "dataplane/smtp/smtp_parse.h"
#include "dataplane/smtp/smtp_policy.h"
#include "dataplane/smtp/smtp_received.h"
#include "dataplane/smtp/smtp_sasl.h"

#define SMTP_OUT_MAX        4096	/* reply buffer per session */
#define SMTP_REPLY_RESERVE  1024	/* stop reading commands below this much room */
#define SMTP_RCPT_HARD_MAX  1000	/* compile-time cap of conf.max_rcpt */
#define SMTP_TLS_INFO_MAX   160
#define SMTP_ID_MAX         64

/* Counters, one struct per lcore (sessions on that lcore share it). */
#define SMTP_STATS(X) \
	X(sessions) X(commands) X(messages) X(recipients) X(bytes) \
	X(rej_syntax) X(rej_sequence) X(rej_relay) X(rej_utf8) X(rej_size) \
	X(rej_rcpt_limit) X(rej_line) X(rej_bare) X(rej_hops) X(rej_sink) \
	X(rej_queue) X(err_disconnect) X(timeouts) X(shutdowns) X(starttls) \
	X(refused) X(rej_rcpt_nomem) X(postmaster) X(etrn) X(rej_etrn) X(held_hops) \
	X(rej_rcpt_refused) X(auth_ok) X(auth_failed) X(auth_temp) X(rej_auth) \
	X(rej_need_tls) X(auth_disconnect) X(rej_rate) X(auth_refused) X(xsluice) X(rej_xsluice)
struct smtp_stats { SMTP_STATS(STATS_FIELD) };
extern const char *const smtp_stat_names[];
extern const size_t smtp_stat_count;

/* A message with hop_limit Received: fields or more (a mail loop, RFC 5321
 * 6.3): refused 554 5.4.6, or taken and queued held for the operator (Sun
 * Messaging Server's .HELD), visible and releasable. */
enum smtp_loop_action { SMTP_LOOP_REJECT = 0, SMTP_LOOP_HOLD };

struct smtp_conf {
	char hostname[SMTP_DOMAIN_MAX + 1];	/* greeting, EHLO, Received */
	uint64_t max_size;	/* message octets, 0 = unlimited; default 10240000 */
	unsigned max_rcpt;	/* per message, >= 100, <= SMTP_RCPT_HARD_MAX; default 1000 */
	unsigned max_errors;	/* 5xx replies before 421 4.7.0; default 20 */
	unsigned max_line;	/* text line incl. CRLF; default 1000 */
	unsigned hop_limit;	/* Received: headers; >= this many -> 554 5.4.6; default 50 */
	enum smtp_loop_action loop;	/* over hop_limit: reject (default) or hold */
	enum smtp_bare_policy bare;	/* default SMTP_BARE_REJECT */
	bool tls_available;	/* offer STARTTLS */
	bool auth_available;	/* offer AUTH PLAIN LOGIN (RFC 4954), over TLS only */
	bool submission;	/* a submission listener (RFC 6409/8314): MAIL needs
				 * TLS (530 5.7.0) and then AUTH (530 5.7.0) */
	unsigned max_auth_failures;	/* 535s before 421 and close; default 3 */
	uint64_t timeout_cmd_ns;	/* waiting for a command; default 5 min */
	uint64_t timeout_data_ns;	/* waiting for DATA/BDAT bytes; default 5 min */
	/* where mail to our postmaster goes; default "root@localhost" */
	char postmaster[SMTP_PATH_MAX + 1];
	const struct smtp_policy *policy;	/* NULL relays nothing */
};
void smtp_conf_default(struct smtp_conf *c);
/* Validate a configuration before use: hostname set, 100 <= max_rcpt <=
 * SMTP_RCPT_HARD_MAX (RFC 5321 4.5.3.1.8), max_line 0 or >= 1000 (4.5.3.1.6),
 * timeouts >= 1 s (RFC 5321 4.5.3.2.7 asks servers for at least 5 minutes;
 * shorter ones are for tests and are warned about by the daemon),
 * postmaster a mailbox (smtp_mailbox_valid) that is not our own postmaster
 * (that would be a loop). Returns 0, or -1 with *why set. Start-up only. */
int smtp_conf_check(const struct smtp_conf *c, const char **why);

struct smtp_client {
	uint32_t ip;		/* IPv4, host byte order (when !v6) */
	char rdns[SMTP_DOMAIN_MAX + 1];	/* verified reverse name or "" */
	bool v6;		/* the client came over IPv6: ip6 */
	uint8_t ip6[16];	/* network order */
};

struct smtp_rcpt_view {
	const char *addr;	/* local@domain */
	const char *orcpt;	/* RFC 3461 "type;xtext" or NULL */
	uint8_t notify;		/* SMTP_NOTIFY_* bits (= queue_notify), 0 = none */
};

struct smtp_session_cb {
	smtp_sink_fn sink;		/* body bytes (may be NULL: discarded) */
	void (*msg_begin)(void *user);	/* a new body starts: reset the sink */
	/* An accepted recipient, to keep for the message: copy what v points
	 * to (valid during the call only). 0, or -1 when there is no memory
	 * for it (the RCPT gets 452 4.3.1 and does not count), or
	 * SMTP_RCPT_REFUSE to refuse it for good (550 5.1.1, counted as an
	 * error; sluice-gen's sink injects failures this way). NULL:
	 * counted, not kept. */
	int (*rcpt)(void *user, const struct smtp_rcpt_view *v);
	/* The transaction that had recipients is over (MAIL, RSET, EHLO,
	 * STARTTLS, a refused body, the message answered): forget them. */
	void (*rcpt_reset)(void *user);
	/* ID for the Received header (optional: returns 0 and writes a
	 * NUL-terminated ID, e.g. a queue ID reserved in advance) */
	int (*trace_id)(void *user, char *buf, size_t cap);
	uint64_t (*now)(void *user);	/* unix seconds; NULL = clock_real_s() */
	/* ETRN (RFC 1985) from a trusted client: start delivering what is
	 * queued for domain. 0: started (250), -1: cannot now (458). NULL:
	 * ETRN answers 458. */
	int (*etrn)(void *user, const char *domain);
	/* A refusal of the kind Postfix logs as "NOQUEUE: reject:" (relay
	 * denied, too many recipients, too large, SMTPUTF8 needed, too many
	 * hops): stage "MAIL", "RCPT" or "END-OF-MESSAGE", the reply sent, the
	 * sender and recipient (NULL when none yet). Strings valid during the
	 * call only. NULL: not wanted. */
	void (*reject)(void *user, const char *stage, const char *reply, const char *from,
		       const char *to);
	/* Per-client rates (client_limits.h): at MAIL (stage "MAIL") and
	 * RCPT ("RCPT"), after the sequence checks, count the event, or
	 * refuse it with the reply returned (a 4xx line without CRLF, valid
	 * until the next call; 452 4.7.1 for mail, 452 4.5.3 for recipients):
	 * sent as is, not counted as an error, logged through cb.reject.
	 * NULL (or no callback): go on. */
	const char *(*rate)(void *user, const char *stage);
	void *user;
};

enum smtp_event {
	SMTP_EV_NONE = 0, SMTP_EV_STARTTLS, SMTP_EV_MESSAGE, SMTP_EV_CLOSE, SMTP_EV_AUTH,
};

enum smtp_queue_status {
	SMTP_QUEUED_OK = 0,	/* 250 2.0.0 Ok: queued as ID */
	SMTP_QUEUED_TEMP,	/* 451 4.3.0 queue unavailable */
	SMTP_QUEUED_FULL,	/* 452 4.3.1 insufficient storage */
	SMTP_QUEUED_REJECT,	/* 554 5.7.0 transaction failed (a sink's refusal) */
};

/* cb.rcpt's answer for a recipient refused for good (550 5.1.1). */
#define SMTP_RCPT_REFUSE 1

/* The transaction: envelope, then (after the body) the trace header. */
struct smtp_message {
	char sender[SMTP_PATH_MAX + 1];	/* "" = null sender */
	bool smtputf8;
	enum smtp_body body;
	enum smtp_ret ret;		/* = enum queue_ret */
	char envid[SMTP_ENVID_MAX + 1];	/* "" = none */
	uint64_t declared_size;		/* MAIL SIZE=, 0 = none */
	unsigned nrcpt;			/* recipients accepted (kept by cb.rcpt) */
	char rcpt1[SMTP_PATH_MAX + 1];	/* the first one, for Received's "for" */
	uint64_t size;			/* body octets passed to the sink */
	unsigned received_count;	/* Received: fields in the body's header */
	bool held;			/* over hop_limit, loop = hold: queue it held */
	char auth_user[SMTP_AUTH_NAME_MAX + 1];	/* the AUTH identity, "" none */
	char auth_method[8];		/* its mechanism ("PLAIN", "LOGIN"), "" none */
	uint64_t arrival;		/* unix seconds */
	bool has_xsluice;		/* a transferred message: the first box's
					 * queue state (xsluice.h), from MAIL */
	struct xsluice xsluice;
	char trace_id[SMTP_ID_MAX];
	size_t received_len;
	char received[SMTP_RECEIVED_MAX];	/* CRLF-terminated, prepend to body */
};

struct smtp_session {
	const struct smtp_conf *conf;
	struct smtp_stats *stats;
	struct smtp_session_cb cb;
	struct smtp_client client;
	char client_ip[46];	/* text: dotted quad or RFC 5952 IPv6 */

	uint8_t state;		/* see smtp_server.c */
	enum smtp_event event;
	bool esmtp;		/* greeted with EHLO (not HELO) */
	bool tls;		/* TLS active */
	bool rcpt_tried;	/* a RCPT was seen in this transaction */
	bool bdat_used;		/* this transaction uses BDAT */
	bool bdat_last;		/* the current chunk is the LAST one */
	bool shutdown_pending;
	uint8_t bdat_discard;	/* != 0: chunk bytes are thrown away, then this error */
	uint8_t bdat_prev;	/* state before the BDAT command */
	bool authenticated;	/* AUTH succeeded: relays anywhere */
	uint8_t auth_failures;	/* 535s so far */
	size_t auth_pass_len;
	char auth_user[SMTP_AUTH_NAME_MAX + 1];	/* during and after AUTH */
	char auth_method[8];	/* the mechanism being used or used, "" none */
	char auth_pass[SMTP_AUTH_PASS_MAX + 1];	/* until smtp_session_auth_done */
	unsigned errors;
	uint64_t bdat_left;	/* bytes of the current chunk still to come */
	uint64_t bdat_chunk;	/* size of the current chunk */
	char helo[SMTP_DOMAIN_MAX + 1];
	char tls_info[SMTP_TLS_INFO_MAX];

	/* command line assembly */
	uint32_t line_total;	/* octets of the current line incl. CR (saturating) */
	uint32_t line_len;	/* octets stored */
	char line[SMTP_CMD_MAX];

	/* output */
	uint32_t out_start, out_end;
	char out[SMTP_OUT_MAX];

	struct smtp_data data;
	struct smtp_cmd cmd;		/* scratch: keeps big structs off the stack */
	struct smtp_message msg;
};

/* conf, stats (may be NULL) and cb are referenced, not copied (cb is copied). */
void smtp_session_init(struct smtp_session *s, const struct smtp_conf *conf,
		       struct smtp_stats *stats, const struct smtp_client *client,
		       const struct smtp_session_cb *cb);

size_t smtp_session_input(struct smtp_session *s, const void *data, size_t len);

/* Output: peek at the pending bytes, then consume what was sent. */
size_t smtp_session_peek_output(const struct smtp_session *s, const char **p);
void smtp_session_consume_output(struct smtp_session *s, size_t n);
/* Convenience: copy out up to cap bytes and consume them. */
size_t smtp_session_read_output(struct smtp_session *s, void *buf, size_t cap);

enum smtp_event smtp_session_event(const struct smtp_session *s);

/* Valid while the event is SMTP_EV_MESSAGE. */
const struct smtp_message *smtp_session_message(const struct smtp_session *s);

/* Answer the pending message. queue_id is printed in the 250 reply.
 * Returns 0, or -1 if no message was pending. */
int smtp_session_queued(struct smtp_session *s, enum smtp_queue_status st,
			const char *queue_id);

/* After SMTP_EV_STARTTLS and a good handshake. tls_info ("TLSv1.3 with
 * cipher ...") goes into the Received header. Returns 0, or -1 if no
 * STARTTLS was pending. */
int smtp_session_tls_started(struct smtp_session *s, const char *tls_info);

/* Valid while the event is SMTP_EV_AUTH: the identity and password to
 * check. 0, or -1 if no AUTH is pending. */
int smtp_session_auth_request(const struct smtp_session *s, const char **name,
			      const char **pass, size_t *pass_len);
/* The check's answer: 1 good (235 2.7.0; the session may relay anywhere
 * and its messages carry the identity), 0 wrong (535 5.7.8; after
 * conf.max_auth_failures of them, 421 4.7.0 and close), -1 could not check
 * (454 4.7.0), SMTP_AUTH_RATE not checked because the client address is
 * over its rate of failures (421 4.7.0 and close), SMTP_AUTH_RATE_USER
 * good but the user is over its connection rate (421 4.7.0 and close, not
 * authenticated). The password is wiped. 0, or -1 if no AUTH was pending. */
#define SMTP_AUTH_RATE      (-2)
#define SMTP_AUTH_RATE_USER (-3)
int smtp_session_auth_done(struct smtp_session *s, int result);

/* The connection is gone: forget any AUTH in progress and wipe its
 * password (a client that leaves mid-AUTH). Its answer is then refused. */
void smtp_session_end(struct smtp_session *s);

/* Implicit TLS (RFC 8314, port 465): the handshake that came before any
 * SMTP is done. The greeting already queued goes out under TLS; the session
 * counts as TLS from the start (AUTH offered). Right after init only. */
void smtp_session_tls_implicit(struct smtp_session *s, const char *tls_info);

/* The client's verified reverse name arrived (or "" for none). When a
 * message is waiting for the queue (SMTP_EV_MESSAGE), its Received header
 * is made again with it: returns 1 then, else 0. */
int smtp_session_set_rdns(struct smtp_session *s, const char *name);

/* How long to wait for input now (ns); 0 = no input expected. */
uint64_t smtp_session_timeout_ns(const struct smtp_session *s);
/* The wait ran out: 421 4.4.2, then SMTP_EV_CLOSE. */
void smtp_session_timeout(struct smtp_session *s);
/* Right after init, for a connection over the per-client or total session
 * limit (counted by the caller): the greeting is replaced by "421 4.7.0",
 * then SMTP_EV_CLOSE. */
void smtp_session_refuse(struct smtp_session *s);
/* The same for a client over its connection rate (client_limits.h):
 * "421 4.7.0 ... too many connections from ADDR". */
void smtp_session_refuse_rate(struct smtp_session *s);
/* The box is drained for maintenance (sluicectl drain): the greeting is
 * replaced by "421 4.3.2 HOST Service not available, closing transmission
 * channel" (RFC 5321 4.2.3), then SMTP_EV_CLOSE. */
void smtp_session_refuse_drain(struct smtp_session *s);
/* Service shutting down: 421 4.3.2, then SMTP_EV_CLOSE (deferred until
 * smtp_session_queued() if a message is waiting for the queue). */
void smtp_session_shutdown(struct smtp_session *s);

#endif
