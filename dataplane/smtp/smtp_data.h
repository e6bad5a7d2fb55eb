/*
 * smtp_data.h - message content framing: DATA (dot-terminated, RFC 5321
 * 4.1.1.4 / 4.5.2) and BDAT (RFC 3030, exact byte counts) as one
 * incremental state machine over arbitrary byte chunks.
 *
 * Bytes are fed in chunks split anywhere (even between CR and LF, or inside
 * the terminator). Body bytes go out through a sink callback as spans of the
 * caller's input (plus tiny static pieces for inserted CR/LF) - no copy, no
 * heap; the sink can append them to mbufs or a spool buffer.
 *
 * Rules (the SMTP smuggling defence, CVE-2023-51764/5/6):
 *  - only CR LF "." CR LF ends DATA; the first line may be "." directly
 *    (empty message). <LF>.<LF>, <LF>.<CR><LF>, <CR>.<CR> ... end nothing;
 *  - a line that starts with "." loses that dot (dot-unstuffing, DATA only);
 *  - a bare LF (not preceded by CR) or a bare CR (not followed by LF) is
 *    either recorded so the session rejects the message at its end
 *    (SMTP_BARE_REJECT -> 550 5.5.2), or normalized to CR LF in the body
 *    (SMTP_BARE_NORMALIZE). Either way it is never a line end for framing,
 *    dot-unstuffing or header parsing: only CR LF is. The stored body
 *    never holds a bare CR or LF under either policy.
 *  - text lines longer than max_line octets incl. CR LF (RFC 5321
 *    4.5.3.1.6: 1000) are recorded and the message is rejected at its end
 *    with 500 5.5.2 (we keep reading to the terminator so the session stays
 *    in sync; a 500 reply in the middle of DATA would not be seen anyway);
 *  - body bytes (after unstuffing / normalization) beyond max_size are not
 *    passed to the sink; the message is rejected at the end (552 5.3.4);
 *  - "Received:" header fields in the header section (up to the first
 *    empty line) are counted for loop detection (RFC 5321 6.3).
 *  The same checks (except dots and the terminator) apply to BDAT content.
 */
#ifndef SLUICE_SMTP_DATA_H
#define SLUICE_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum smtp_bare_policy { SMTP_BARE_REJECT = 0, SMTP_BARE_NORMALIZE };

/* Returns 0, or -1 if it cannot take the bytes (the message then gets
 * 452 4.3.1 at its end; the sink is not called again for it). */
typedef int (*smtp_sink_fn)(void *user, const void *data, size_t len);

struct smtp_data_conf {
	uint64_t max_size;		/* body octets; 0 = no limit */
	unsigned max_line;		/* text line incl. CRLF; 0 = no limit */
	enum smtp_bare_policy bare;
};

/* Why a message is refused at its end, in the order they are reported. */
enum smtp_data_verdict {
	SMTP_DV_OK = 0,
	SMTP_DV_BARE,		/* 550 5.5.2 bare CR or LF */
	SMTP_DV_LINE,		/* 500 5.5.2 line too long */
	SMTP_DV_SIZE,		/* 552 5.3.4 too big */
	SMTP_DV_SINK,		/* 452 4.3.1 sink refused (out of storage) */
};

struct smtp_data {
	struct smtp_data_conf conf;
	smtp_sink_fn sink;
	void *user;
	bool dot;		/* DATA (true) or BDAT (false) */
	uint8_t st;		/* framing state, see smtp_data.c */
	bool done;		/* DATA terminator seen */
	bool in_headers;	/* still in the header section */
	int8_t hdr_pos;		/* chars of "received:" matched on this line, -1 = no */
	bool bare_seen, line_long, too_big, sink_failed;
	uint32_t line_len;	/* octets of the current line so far */
	uint32_t line_content;	/* content octets (no CR/LF) of the current line */
	uint32_t received;	/* Received: header fields counted */
	uint64_t size;		/* body octets produced (also past max_size) */
	uint64_t raw;		/* octets consumed */
};

void smtp_data_begin(struct smtp_data *d, const struct smtp_data_conf *conf,
		     bool dot_mode, smtp_sink_fn sink, void *user);

/*
 * Feed up to n octets. DATA mode: returns how many were consumed; that is n
 * unless the terminator ended inside the chunk, then it is the count up to
 * and including the terminator's LF, and d->done is set. BDAT mode: always
 * consumes all n (the caller feeds exactly the chunk's bytes).
 */
size_t smtp_data_feed(struct smtp_data *d, const uint8_t *p, size_t n);

/* End of the BDAT LAST chunk: settles a trailing CR (a bare CR). */
void smtp_data_finish(struct smtp_data *d);

enum smtp_data_verdict smtp_data_verdict(const struct smtp_data *d);

#endif
