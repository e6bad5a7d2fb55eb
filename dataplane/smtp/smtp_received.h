/*
 * smtp_received.h - the trace header a relay prepends (RFC 5321 4.4) and the
 * RFC 5322 date it carries.
 *
 *   Received: from HELO (RDNS [IP])
 *   	(using TLS-DETAILS)
 *   	by HOSTNAME (Sluice) with PROTO id ID
 *   	for <RCPT>; Sun, 22 Nov 2026 20:46:05 +0000
 *
 * One clause per line, continuation lines start with a TAB (folded the way
 * Postfix folds it, so operators' tools read it). RDNS is "unknown" when the
 * client has no verified reverse name (Postfix's convention). The "(using
 * ...)" line is present only with TLS details, "id" only with an ID, "for"
 * only with exactly one recipient (more would leak the envelope). PROTO is
 * from RFC 3848 / RFC 6531: SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA, UTF8SMTP,
 * UTF8SMTPS, UTF8SMTPA, UTF8SMTPSA. Characters that would break the comment
 * syntax (parentheses, backslash, controls, non-ASCII) in HELO, RDNS and TLS
 * details are replaced by '_'. The date is UTC, from the time passed in.
 */
#ifndef SLUICE_SMTP_RECEIVED_H
#define SLUICE_SMTP_RECEIVED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTP_RECEIVED_MAX 1536	/* bounded: every part has a maximum length */
#define SMTP_DATE_MAX 40

struct smtp_received_info {
	const char *helo;	/* as given by the client */
	const char *rdns;	/* NULL or "" = unknown */
	const char *ip;		/* "192.0.2.1" */
	const char *hostname;	/* ours */
	const char *id;		/* NULL = no id clause */
	const char *rcpt;	/* NULL = no for clause */
	const char *tls;	/* NULL = no TLS comment */
	bool esmtp, tls_active, auth, utf8;
	uint64_t when;		/* unix seconds */
};

/* "ESMTPS" etc. */
const char *smtp_received_proto(bool esmtp, bool tls, bool auth, bool utf8);

/* RFC 5322 date-time, UTC: "Sun, 22 Nov 2026 20:46:05 +0000". Returns the
 * length, or 0 if cap is too small. */
size_t smtp_date_format(char *buf, size_t cap, uint64_t unix_s);

/* The whole header, CRLF-terminated. Returns the length (< cap), or 0 if
 * it does not fit (never with cap >= SMTP_RECEIVED_MAX and inputs within
 * the SMTP limits). */
size_t smtp_received_format(char *buf, size_t cap, const struct smtp_received_info *ri);

#endif
