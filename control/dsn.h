/*
 * dsn.h - delivery status notifications (RFC 3464, RFC 3461, RFC 6533):
 * the message a bounce, a delay warning or a success report is made of.
 *
 * Pure: no I/O, no threads, no heap, no clock (the caller passes `now`).
 * dsn_build() writes a complete RFC 5322 message, to be queued with the
 * null sender (MAIL FROM:<>) to out->to:
 *
 *   Date, From: Mail Delivery System <MAILER-DAEMON@host>, To, Subject,
 *   Message-ID, Auto-Submitted: auto-replied (RFC 3834), X-Sluice-Report,
 *   MIME-Version, Content-Type: multipart/report;
 *   report-type=delivery-status; boundary="..."
 *     1. text/plain: what happened, per recipient with the reply;
 *     2. message/delivery-status: per message Reporting-MTA,
 *        X-Sluice-Queue-ID, X-Sluice-Sender, Original-Envelope-Id,
 *        Arrival-Date; per recipient Original-Recipient, Final-Recipient,
 *        Action, Status, Remote-MTA, Diagnostic-Code, Last-Attempt-Date,
 *        Will-Retry-Until (delayed only);
 *     3. the original: message/rfc822 (whole) or text/rfc822-headers.
 *
 * An SMTPUTF8 original (or any address that is not ASCII) gets RFC 6533's
 * global forms: report-type=global-delivery-status, message/global-
 * delivery-status, message/global or message/global-headers, the "utf-8"
 * address type; the DSN then carries UTF-8 in its header and must be sent
 * with SMTPUTF8 (out->flags & DSN_OUT_SMTPUTF8). A part with 8-bit octets
 * is declared "Content-Transfer-Encoding: 8bit" and the DSN must be sent
 * with BODY=8BITMIME (DSN_OUT_8BITMIME).
 *
 * OUTPUT: an iovec list, so that the original is never copied. The text
 * the builder writes (header, parts 1 and 2, part 3's header, the closing
 * boundary) goes into the caller's bounded buffer; the original is
 * referenced where the caller holds it:
 *   iov[0] = buf (header .. part 3's header)   iov[1] = the original's
 *   slice (points into r->orig)                iov[2] = buf (closing)
 * (one entry only when nothing is attached). Write them out in order; buf
 * and r->orig must outlive that. A buffer too small gives DSN_ENOSPC with
 * out->need set: call again with that much (or size buf by dsn_text_max()).
 *
 * FOR THE SCHEDULER (how the pieces fit the queue):
 *   - token: a queue ID reserved for the DSN (queue_id_reserve, formatted);
 *     env: the original's queue_msg (sender, envid, ret, body_flags,
 *     arrival, its ID string); orig: dsn_original_need() octets read with
 *     queue_read_body(cap = that), orig_size = queue_msg.size.
 *   - rcpt: one DSN per message per pass, the recipients dsn_wanted() says
 *     yes to: BOUNCED -> DSN_FAILED (4.4.7 when expired), a delay warning ->
 *     DSN_DELAYED (retry_until = the expiry), SENT -> DSN_DELIVERED, or
 *     DSN_RELAYED when the next hop took it without the DSN extension.
 *     dsn_reply_parse() splits the stored reply into remote_mta, diag and
 *     status; pass the stored reply itself as the reason.
 *   - queue it: queue_submission.iov/iovcnt = out->iov/iovcnt as they are,
 *     sender "", one recipient out->to, body_flags from out->flags
 *     (DSN_OUT_SMTPUTF8 -> QUEUE_BODY_SMTPUTF8, DSN_OUT_8BITMIME ->
 *     QUEUE_BODY_8BITMIME), no RET, no NOTIFY.
 *   - when a message fails for good, dsn_on_failure() says whether to
 *     report, double-bounce or drop. A double bounce: kind
 *     DSN_KIND_DOUBLE_BOUNCE, postmaster from the configuration, env and
 *     orig: the failed DSN's, rcpt: its recipient with the reply it got.
 *
 * WHAT IS ATTACHED (RFC 3461 4.3, Postfix's bounce_size_limit):
 *   - a report with a "failed" recipient: RET=HDRS -> the header section;
 *     RET=FULL or no RET -> the whole message when its size is at most
 *     r->size_limit, else the header section (out->over_limit);
 *   - a report without failures (delayed, delivered, relayed, expanded):
 *     the header section only;
 *   - a double bounce: the failed DSN whole, within the limit, else its
 *     header section.
 * The header section is cut at a field boundary to DSN_HEADERS_MAX octets.
 * What is attached is referenced as it is, so it must already be what
 * RFC 5322 allows: CRLF line ends only, no NUL, no line over 998 octets
 * (the SMTP server stores nothing else). A message that is not is
 * attached as its header section if that is clean, else not at all
 * (out->unclean). The caller need not hold the whole original:
 * dsn_original_need() says how many leading octets to read (for a 20 MB
 * message over the limit, its header section at most).
 *
 * THE OUTPUT IS ALWAYS CLEAN, whatever the input: CRLF line ends only, no
 * line over 998 octets, no NUL. Header fields and delivery-status fields
 * are folded at whitespace near 78 columns (lossless when unfolded); a run
 * with no whitespace that cannot fit on a line is split with CRLF SP (the
 * one lossy case: unfolding leaves a space there). CR, LF and controls in
 * input strings become spaces (no header injection); in the non-global
 * form octets above 127 become '?', in the global form invalid UTF-8 does.
 * Diagnostic and reason texts are cut to DSN_VALUE_MAX octets.
 *
 * THE BOUNDARY is "=_" TOKEN "." 16 hex digits of a hash of the attached
 * content, so that the content cannot contain it except by solving a fixed
 * point; it is then checked: it must occur nowhere in the attached
 * original and only where the builder put it in the generated text. A
 * collision (a reply text quoting it, say) makes a new one from a hash of
 * everything generated; after DSN_BOUNDARY_TRIES, DSN_EBOUNDARY.
 *
 * ORCPT and ENVID are RFC 3461 xtext: Original-Recipient gets "type;
 * decoded address" (RFC 3464 2.3.1), Original-Envelope-Id the decoded
 * ENVID. A utf-8 ORCPT (RFC 6533 utf-8-addr-xtext / unitext) is decoded
 * and written as utf-8-addr-unitext in the global form, utf-8-addr-xtext
 * otherwise. A value that does not decode, or that decodes to controls,
 * is written as received.
 */
#ifndef SLUICE_DSN_H
#define SLUICE_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "queue/queue.h"	/* QUEUE_NOTIFY_*, QUEUE_RET_*, QUEUE_BODY_* */

#define DSN_TOKEN_MAX      32		/* [A-Za-z0-9_-], the caller's unique token */
#define DSN_HOST_MAX       255		/* reporting MTA: [A-Za-z0-9.-] */
#define DSN_ADDR_MAX       (QUEUE_ADDR_MAX + 1 + DSN_HOST_MAX)	/* out->to */
#define DSN_BOUNDARY_MAX   (2 + DSN_TOKEN_MAX + 1 + 16)	/* "=_" token "." hex16 */
#define DSN_MSGID_MAX      (1 + 14 + 1 + DSN_TOKEN_MAX + 1 + DSN_HOST_MAX + 1)
#define DSN_BOUNDARY_TRIES 16
#define DSN_HEADERS_MAX    (64 * 1024)	/* attached header section, octets */
#define DSN_VALUE_MAX      2048		/* diagnostic / reason text, octets */
#define DSN_SIZE_LIMIT_DEFAULT 50000	/* Postfix's bounce_size_limit */
#define DSN_IOV_MAX        3
/* Bounds of the text dsn_build writes into buf, whatever the input: see
 * dsn_text_max(). A typical recipient takes about 600 octets, the rest 2 KiB. */
#define DSN_FIXED_TEXT_MAX (16 * 1024)
#define DSN_RCPT_TEXT_MAX  (32 * 1024)

/* RFC 3464 2.3.3 Action. */
enum dsn_action {
	DSN_FAILED = 0, DSN_DELAYED, DSN_DELIVERED, DSN_RELAYED, DSN_EXPANDED,
};
#define DSN_ACTIONS 5

enum dsn_kind {
	DSN_KIND_REPORT = 0,	/* to the original's sender */
	DSN_KIND_DOUBLE_BOUNCE,	/* to the postmaster, about a DSN that failed */
};

enum dsn_attach { DSN_ATTACH_NONE = 0, DSN_ATTACH_HEADERS, DSN_ATTACH_FULL };

enum dsn_out_flags {
	DSN_OUT_SMTPUTF8 = 1,	/* send with MAIL ... SMTPUTF8 (RFC 6531) */
	DSN_OUT_8BITMIME = 2,	/* send with BODY=8BITMIME (RFC 6152) */
};

enum dsn_err {
	DSN_OK = 0,
	DSN_EINVAL = -1,	/* a required input missing or malformed */
	DSN_ENOSPC = -2,	/* buf too small: out->need says how much */
	DSN_EBOUNDARY = -3,	/* no boundary the content does not contain */
};
const char *dsn_strerror(int err);

/* One recipient the report is about. Strings are NUL-terminated; NULL or
 * "" means absent unless said otherwise. */
struct dsn_rcpt {
	const char *addr;	/* final recipient (RCPT TO), required */
	const char *orcpt;	/* RFC 3461 ORCPT "type;xtext" as received */
	enum dsn_action action;
	const char *status;	/* "X.Y.Z"; invalid or absent: 5.0.0 / 4.0.0 /
				   2.0.0 by action. "failed" may be 4.4.7. */
	const char *remote_mta;	/* the next hop's host name (Remote-MTA: dns;) */
	const char *diag_type;	/* Diagnostic-Code type; NULL: "smtp" when diag
				   starts with a reply code, else "X-Sluice" */
	const char *diag;	/* the reply ("550 5.1.1 <a@b>: no such user")
				   or our reason; NULL: no Diagnostic-Code */
	const char *reason;	/* for the human part; NULL: diag */
	uint64_t last_attempt;	/* unix seconds, 0: no Last-Attempt-Date */
	uint64_t retry_until;	/* delayed: Will-Retry-Until, unix s; 0: none */
};

/* The original message's envelope, as the queue keeps it. */
struct dsn_envelope {
	const char *sender;	/* "" = null sender */
	const char *envid;	/* RFC 3461 ENVID (xtext) or NULL */
	uint8_t ret;		/* enum queue_ret */
	uint8_t body_flags;	/* enum queue_body_flags; SMTPUTF8 -> global forms */
	uint64_t arrival;	/* unix seconds: Arrival-Date (0: none) */
	const char *queue_id;	/* its queue ID (X-Sluice-Queue-ID) or NULL */
};

struct dsn_report {
	enum dsn_kind kind;
	const char *reporting_mta;	/* our host name: From, Reporting-MTA */
	const char *token;	/* unique per DSN (its queue ID, say): the
				   Message-ID and the boundary derive from it */
	const char *postmaster;	/* double bounce: the recipient; without "@"
				   it is qualified with reporting_mta */
	uint64_t now;		/* unix seconds: Date */
	struct dsn_envelope env;
	const struct dsn_rcpt *rcpt;	/* in the order they are reported */
	unsigned nrcpt;			/* 1..QUEUE_RCPT_MAX */
	/* the original as stored (our Received: first): its first orig_len
	 * octets (at least dsn_original_need()), of orig_size in all */
	const void *orig;
	size_t orig_len;
	uint64_t orig_size;
	uint64_t size_limit;	/* RET=FULL returns at most this: else headers */
};

struct dsn_out {
	struct iovec iov[DSN_IOV_MAX];	/* the message, in order */
	unsigned iovcnt;
	uint64_t size;			/* octets of the message (sum of iov) */
	size_t need;			/* octets of buf used (or needed: ENOSPC) */
	unsigned flags;			/* enum dsn_out_flags */
	enum dsn_attach attached;	/* what part 3 holds */
	bool over_limit;		/* full asked for, headers sent: too big */
	bool headers_cut;		/* the header section was cut short */
	bool unclean;			/* the original is not clean RFC 5322 text:
					   attached less than the rules say */
	char to[DSN_ADDR_MAX + 1];	/* the envelope recipient (sender <>) */
	char boundary[DSN_BOUNDARY_MAX + 1];
	char message_id[DSN_MSGID_MAX + 1];	/* "<...>" */
};

/*
 * Build the DSN. DSN_OK, or DSN_EINVAL (no recipient or one without addr,
 * a report to the null sender, bad token or host name, orig_len short of
 * dsn_original_need()), DSN_ENOSPC (out->need set), DSN_EBOUNDARY. On an
 * error out->iovcnt is 0.
 */
int dsn_build(const struct dsn_report *r, char *buf, size_t cap, struct dsn_out *out);

/* A buffer this large never gets DSN_ENOSPC for nrcpt recipients. */
size_t dsn_text_max(unsigned nrcpt);

/* What part 3 will be by the rules above (before the content is checked). */
enum dsn_attach dsn_attach_plan(const struct dsn_report *r);

/* How many leading octets of the original dsn_build needs in r->orig
 * (uses kind, env.ret, rcpt actions, orig_size, size_limit). */
uint64_t dsn_original_need(const struct dsn_report *r);

/*
 * RFC 3461 NOTIFY: does this recipient's event get a DSN? Never for the
 * null sender; NEVER suppresses; no NOTIFY (0) means FAILURE only;
 * FAILURE -> failed, DELAY -> delayed, SUCCESS -> delivered, relayed and
 * expanded. notify is a set of QUEUE_NOTIFY_* bits.
 */
bool dsn_wanted(const char *sender, uint8_t notify, enum dsn_action action);

/*
 * A message failed for good: what now? (Never a bounce loop.)
 *   DSN_FAIL_REPORT         a sender: report to it (dsn_wanted per recipient)
 *   DSN_FAIL_DOUBLE_BOUNCE  null sender: one double bounce to the postmaster
 *   DSN_FAIL_DROP           null sender and itself a double bounce (its
 *                           header says X-Sluice-Report: double-bounce):
 *                           drop it and log
 * head/len: the message's first octets (its header section; may be NULL).
 */
enum dsn_on_fail { DSN_FAIL_REPORT = 0, DSN_FAIL_DOUBLE_BOUNCE, DSN_FAIL_DROP };
enum dsn_on_fail dsn_on_failure(const char *sender, const void *head, size_t len);

/*
 * The recipient's last reply as the queue keeps it (queue_msg_rcpt.reply),
 * in the scheduler's (Postfix's) shape, "host mx.example.net[192.0.2.1]
 * said: 550 5.1.1 <a@b>: no such user (in reply to RCPT TO command)", split
 * for the report: remote_mta "mx.example.net", diag "550 5.1.1 <a@b>: no
 * such user", status "5.1.1" (the reply's enhanced code; "" without one:
 * dsn_build then derives it from the action). Any other text (no reply:
 * "connect to ...: Connection refused") is the diag whole, without a host.
 * NULL gives all three empty.
 */
struct dsn_reply {
	char remote_mta[DSN_HOST_MAX + 1];
	char diag[QUEUE_REPLY_MAX + 1];
	char status[12];
};
void dsn_reply_parse(const char *reason, struct dsn_reply *out);

const char *dsn_action_str(enum dsn_action a);	/* "failed", ... */
/* "X.Y.Z": class 2, 4 or 5, subject 1-3 digits, detail 1-3 digits. */
bool dsn_status_valid(const char *s);

#endif
