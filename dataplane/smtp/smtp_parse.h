/*
 * smtp_parse.h - SMTP command line parsing (RFC 5321 4.1, with the
 * parameters of RFC 1870 SIZE, 6152 8BITMIME, 3461 DSN, 6531 SMTPUTF8 and
 * 3030 BDAT).
 *
 * smtp_parse_line() takes ONE command line without its CRLF and fills a
 * struct smtp_cmd made only of fixed-size fields (no heap, no pointers into
 * the input: the caller's line buffer may be reused at once). Line framing
 * (SMTP_CMD_MAX, "only CRLF ends a line") is the session's job; any CR, LF
 * or NUL still inside the line is rejected here as a bad character.
 *
 * Line length. RFC 5321 4.5.3.1.4 allows 512 octets and lets extensions
 * raise it; RFC 3461 section 3 raises RCPT by 500 (NOTIFY and an ORCPT of
 * up to 500 characters) and MAIL by 100 (RET, ENVID), and SIZE, BODY and
 * SMTPUTF8 add a few dozen more to MAIL. One limit serves every command:
 * 512 + 500, the largest line any extension we offer allows. Longer lines
 * get "500 5.5.2 line too long" from the session.
 *
 * On error, cmd->err is set and cmd->reply is the full reply line (without
 * CRLF) to send, e.g. "501 5.1.3 Bad recipient address syntax".
 *
 * Decisions (lenient where real clients need it, strict where it matters):
 *  - verbs and keywords are case-insensitive; "MAIL FROM: <a@b>" (space
 *    after the colon) and several spaces between parameters are accepted,
 *    as are trailing spaces;
 *  - paths follow RFC 5321 4.1.2 exactly: dot-atom or quoted local part
 *    (<= 64), domain of LDH labels (<= 63 each, <= 255) or an address
 *    literal ([IPv4] or [IPv6:...]), whole path including the angle
 *    brackets <= 256. A source route ("@a,@b:") is accepted and ignored;
 *  - RCPT TO:<Postmaster> (any case, no domain: RFC 5321 4.1.1.3) is the
 *    one path without a domain: path.postmaster is set, domain is "" and
 *    local and addr hold the word as written;
 *  - octets >= 0x80 in a path must be valid UTF-8; the path is then marked
 *    utf8 and the session requires SMTPUTF8 for it (553 5.6.7);
 *  - EHLO/HELO take one argument of printable ASCII (no check that it is a
 *    real domain: clients send all sorts, and the name is only recorded).
 */
#ifndef SLUICE_SMTP_PARSE_H
#define SLUICE_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dataplane/smtp/xsluice.h"

#include "queue/queue.h"

#define SMTP_LINE_MAX     512	/* RFC 5321 command or reply line incl. CRLF
				 * (4.5.3.1.4, 4.5.3.1.5) */
#define SMTP_LOCAL_MAX    64	/* local part (4.5.3.1.1) */
#define SMTP_DOMAIN_MAX   255	/* domain (4.5.3.1.2) */
#define SMTP_PATH_MAX     256	/* path incl. "<" ">" (4.5.3.1.3) */
#define SMTP_ENVID_MAX    100	/* RFC 3461 4.4 */
#define SMTP_ORCPT_MAX    QUEUE_ORCPT_MAX	/* RFC 3461 section 3: 500; the
						 * queue stores what we accept */
/* command line we accept, incl. CRLF: see "Line length" above */
#define SMTP_CMD_MAX      (SMTP_LINE_MAX + SMTP_ORCPT_MAX)

enum smtp_verb {
	SMTP_V_UNKNOWN = 0, SMTP_V_EHLO, SMTP_V_HELO, SMTP_V_MAIL, SMTP_V_RCPT,
	SMTP_V_DATA, SMTP_V_BDAT, SMTP_V_RSET, SMTP_V_NOOP, SMTP_V_QUIT,
	SMTP_V_VRFY, SMTP_V_HELP, SMTP_V_STARTTLS, SMTP_V_ETRN, SMTP_V_AUTH,
};
const char *smtp_verb_name(enum smtp_verb v);

enum smtp_perr {
	SMTP_PE_OK = 0,
	SMTP_PE_UNKNOWN,	/* 500 5.5.2 command not recognized */
	SMTP_PE_BADCHAR,	/* 500 5.5.2 NUL/control/CR/LF/8-bit where not allowed */
	SMTP_PE_SYNTAX,		/* 501 5.5.4 arguments */
	SMTP_PE_SENDER,		/* 501 5.1.7 bad MAIL FROM path */
	SMTP_PE_RCPT,		/* 501 5.1.3 bad RCPT TO path */
	SMTP_PE_PATHLEN,	/* 501 5.1.7 / 5.1.3 path, local part or domain too long */
	SMTP_PE_PARAM_UNKNOWN,	/* 555 5.5.4 unsupported parameter */
	SMTP_PE_PARAM_BAD,	/* 501 5.5.4 bad or duplicate parameter value */
	SMTP_PE_NOTIMPL,	/* 502 5.5.1 known verb we do not offer (EXPN, AUTH...) */
};

/* RFC 3461 NOTIFY bits: same values as queue.h's enum queue_notify. */
enum { SMTP_NOTIFY_SUCCESS = 1, SMTP_NOTIFY_FAILURE = 2,
       SMTP_NOTIFY_DELAY = 4, SMTP_NOTIFY_NEVER = 8 };
/* RFC 3461 RET: same values as queue.h's enum queue_ret. */
enum smtp_ret { SMTP_RET_NONE = 0, SMTP_RET_FULL, SMTP_RET_HDRS };
enum smtp_body { SMTP_BODY_NONE = 0, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME };

struct smtp_path {
	bool null;		/* "<>" (MAIL only) */
	bool postmaster;	/* "<Postmaster>" without a domain (RCPT only) */
	bool literal;		/* domain is an address literal "[...]" */
	bool utf8;		/* non-ASCII octets somewhere in the address */
	char local[SMTP_LOCAL_MAX + 1];		/* as written (quotes kept) */
	char domain[SMTP_DOMAIN_MAX + 1];	/* as written, "[...]" for literals */
	char addr[SMTP_PATH_MAX + 1];		/* "local@domain", "" for <> */
};

struct smtp_cmd {
	enum smtp_verb verb;
	enum smtp_perr err;
	const char *reply;	/* static reply line when err != OK */

	/* EHLO/HELO domain, VRFY/HELP/NOOP argument (may be empty), ETRN node,
	 * AUTH "mechanism [initial-response]" */
	char arg[SMTP_CMD_MAX];

	/* MAIL / RCPT */
	struct smtp_path path;

	/* MAIL parameters */
	bool has_size;
	uint64_t size;
	enum smtp_body body;
	bool smtputf8;
	enum smtp_ret ret;
	char envid[SMTP_ENVID_MAX + 1];		/* xtext as received, "" = none */
	bool has_xsluice;			/* XSLUICE= (xsluice.h): valid and in
						 * bounds; the session refuses it from
						 * clients outside mynetworks */
	struct xsluice xsluice;

	/* RCPT parameters */
	uint8_t notify;				/* SMTP_NOTIFY_* bits, 0 = none */
	char orcpt[SMTP_ORCPT_MAX + 1];		/* "type;xtext" as received, "" = none */

	/* BDAT */
	uint64_t bdat_size;
	bool bdat_last;
};

/*
 * Parse one command line (no CRLF). Returns cmd->err. Never reads past
 * len; len > SMTP_CMD_MAX - 2 is answered "line too long" by the session
 * before it gets here (and is a syntax error here).
 */
enum smtp_perr smtp_parse_line(const char *line, size_t len, struct smtp_cmd *cmd);

/* Validate RFC 3461 xtext (used for ENVID and the ORCPT address). */
bool smtp_xtext_valid(const char *s, size_t len);
/* Encode s as xtext into out (cap octets, NUL included). Returns the
 * length, or -1 if it does not fit. */
int smtp_xtext_encode(const char *s, char *out, size_t cap);

/* Is addr a mailbox as a RCPT path may carry it: local@domain by the rules
 * above, ASCII, no source route, <= SMTP_PATH_MAX with the brackets? For
 * configuration (it parses a whole command: not for the packet path). */
bool smtp_mailbox_valid(const char *addr);

/* Validate UTF-8 (RFC 3629: no overlongs, no surrogates, <= U+10FFFF). */
bool smtp_utf8_valid(const uint8_t *s, size_t len);

#endif
