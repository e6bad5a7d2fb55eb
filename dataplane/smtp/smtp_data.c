/*
 * smtp_data.c - DATA/BDAT framing state machine (see smtp_data.h).
 *
 * The scanner walks the input once. Body bytes that pass through unchanged
 * are collected as a "run" [run, i) of the input and handed to the sink in
 * one call; the run is cut where a byte is dropped (a stuffing dot, the
 * terminator) or where a CR/LF is inserted (normalization), and at the end
 * of the chunk. A held "." or ".\r" at a line start is not in any run: the
 * state remembers it, so nothing is ever copied.
 */
#include "dataplane/smtp/smtp_data.h"

#include <string.h>

enum {
	ST_BOL,		/* at the start of a line (after CR LF or at the start) */
	ST_DOT,		/* BOL "." seen and held (DATA only) */
	ST_DOTCR,	/* BOL "." CR seen and held (DATA only) */
	ST_TEXT,	/* inside a line */
	ST_CR,		/* inside a line, the last octet was CR (already emitted) */
	ST_END,		/* DATA terminator consumed */
};

static const char hdr_name[] = "received:";

void smtp_data_begin(struct smtp_data *d, const struct smtp_data_conf *conf,
		     bool dot_mode, smtp_sink_fn sink, void *user)
{
	memset(d, 0, sizeof(*d));
	d->conf = *conf;
	d->sink = sink;
	d->user = user;
	d->dot = dot_mode;
	d->st = ST_BOL;
	d->in_headers = true;
	d->hdr_pos = 0;
}

static void emit(struct smtp_data *d, const void *p, size_t n)
{
	if (n == 0)
		return;
	d->size += n;
	if (d->conf.max_size && d->size > d->conf.max_size) {
		d->too_big = true;
		return;
	}
	if (d->too_big || d->sink_failed || d->bare_seen || d->line_long)
		return;	/* the message is refused anyway: stop storing it */
	if (d->sink != NULL && d->sink(d->user, p, n) != 0)
		d->sink_failed = true;
}

static void line_octet(struct smtp_data *d)
{
	d->line_len++;
	if (d->conf.max_line && d->line_len > d->conf.max_line)
		d->line_long = true;
}

static void new_line(struct smtp_data *d)
{
	d->line_len = 0;
	d->line_content = 0;
	d->hdr_pos = d->in_headers ? 0 : -1;
}

/* A content octet (not CR/LF, not a dropped dot). */
static void content(struct smtp_data *d, uint8_t c)
{
	line_octet(d);
	d->line_content++;
	if (d->hdr_pos >= 0) {
		uint8_t l = (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
		if (l == (uint8_t)hdr_name[d->hdr_pos]) {
			d->hdr_pos++;
			if (hdr_name[d->hdr_pos] == '\0') {
				d->received++;
				d->hdr_pos = -1;
			}
		} else {
			d->hdr_pos = -1;
		}
	}
}

/*
 * A run of k content octets inside a line, past the Received: matcher:
 * what k calls of content() would do, at once.
 */
static void content_span(struct smtp_data *d, size_t k)
{
	uint64_t len = (uint64_t)d->line_len + k;

	d->line_len = len > UINT32_MAX ? UINT32_MAX : (uint32_t)len;
	if (d->conf.max_line && d->line_len > d->conf.max_line)
		d->line_long = true;
	len = (uint64_t)d->line_content + k;
	d->line_content = len > UINT32_MAX ? UINT32_MAX : (uint32_t)len;
}

/* Index of the first c in p[from, n), or n. */
static size_t next_of(const uint8_t *p, size_t from, size_t n, int c)
{
	const uint8_t *q = memchr(p + from, c, n - from);

	return q != NULL ? (size_t)(q - p) : n;
}

static const char s_cr[] = "\r", s_lf[] = "\n";

/*
 * A normalized bare CR or LF: a line break in the stored message (not for
 * framing or dot-unstuffing, which only CR LF drives). The header parser
 * follows the stored message, so a Received: field after a bare LF is
 * counted and an empty stored line ends the header section.
 */
static void stored_break(struct smtp_data *d)
{
	if (d->line_content == 0)
		d->in_headers = false;
	new_line(d);
}

/*
 * A bare CR or LF just before p[i] (CR) or at p[i] (LF). Under normalize:
 * store the run so far and complete the pair with `fill` (LF after a CR,
 * CR before an LF), so the next run starts at i. Under reject: remember it
 * (the message gets 550 5.5.2 at its end) and store nothing new. Returns
 * where the next run of stored bytes starts.
 */
static size_t bare_break(struct smtp_data *d, const uint8_t *p, size_t run, size_t i,
			 const char *fill)
{
	if (d->conf.bare == SMTP_BARE_NORMALIZE) {
		emit(d, p + run, i - run);
		emit(d, fill, 1);
		stored_break(d);
		return i;
	}
	d->bare_seen = true;
	d->line_len = 0;
	d->hdr_pos = -1;
	return run;
}

size_t smtp_data_feed(struct smtp_data *d, const uint8_t *p, size_t n)
{
	size_t i = 0, run = 0;
	/* The next CR and LF at or after i, found with memchr and kept until
	 * i passes them, so the text fast path costs O(n) over the chunk. */
	size_t next_cr = 0, next_lf = 0;
	bool scanned = false;

	if (d->st == ST_END)
		return 0;
	while (i < n) {
		uint8_t c = p[i];
		switch (d->st) {
		case ST_BOL:
			if (c == '.' && d->dot) {
				/* not counted: RFC 5321 4.5.3.1.6 excludes the
				 * dot duplicated for transparency */
				emit(d, p + run, i - run);
				d->st = ST_DOT;
				i++;
				run = i;
				continue;
			}
			goto text;
		case ST_DOT:
			if (c == '\r') {
				/* maybe the terminator: hold the CR too */
				d->st = ST_DOTCR;
				i++;
				run = i;
				continue;
			}
			/* the stuffing dot is dropped; the line goes on */
			run = i;
			goto text;
		case ST_DOTCR:
			if (c == '\n') {
				d->st = ST_END;
				d->done = true;
				i++;
				d->raw += i;
				return i;
			}
			/* "." CR x: the dot was stuffing, the CR was real */
			emit(d, s_cr, 1);
			line_octet(d);
			d->st = ST_CR;
			run = i;
			continue;	/* re-dispatch x in ST_CR */
		case ST_CR:
			if (c == '\n') {
				bool empty = d->line_content == 0;
				line_octet(d);
				i++;
				if (empty)
					d->in_headers = false;
				new_line(d);
				d->st = ST_BOL;
				continue;
			}
			/* the previous CR was bare */
			run = bare_break(d, p, run, i, s_lf);
			d->st = ST_TEXT;
			continue;	/* re-dispatch c in ST_TEXT */
		case ST_TEXT:
		text:
			if (d->hdr_pos < 0 && c != '\r' && c != '\n') {
				/* The body's common case: skip to the line's
				 * end in one step instead of octet by octet. */
				if (!scanned || next_cr < i)
					next_cr = next_of(p, i, n, '\r');
				if (!scanned || next_lf < i)
					next_lf = next_of(p, i, n, '\n');
				scanned = true;
				size_t end = next_cr < next_lf ? next_cr : next_lf;
				content_span(d, end - i);
				d->st = ST_TEXT;
				i = end;
				continue;
			}
			if (c == '\r') {
				line_octet(d);
				d->st = ST_CR;
			} else if (c == '\n') {
				/* bare LF: never a line end for framing */
				run = bare_break(d, p, run, i, s_cr);
				d->st = ST_TEXT;
			} else {
				content(d, c);
				d->st = ST_TEXT;
			}
			i++;
			continue;
		default:
			return i;
		}
	}
	emit(d, p + run, i - run);	/* empty when a "." or ".\r" is held */
	d->raw += n;
	return n;
}

void smtp_data_finish(struct smtp_data *d)
{
	if (d->st == ST_CR) {
		if (d->conf.bare == SMTP_BARE_NORMALIZE)
			emit(d, s_lf, 1);
		else
			d->bare_seen = true;
		d->st = ST_TEXT;
	}
}

enum smtp_data_verdict smtp_data_verdict(const struct smtp_data *d)
{
	if (d->bare_seen)
		return SMTP_DV_BARE;
	if (d->line_long)
		return SMTP_DV_LINE;
	if (d->too_big)
		return SMTP_DV_SIZE;
	if (d->sink_failed)
		return SMTP_DV_SINK;
	return SMTP_DV_OK;
}
