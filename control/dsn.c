/*
 * dsn.c - the RFC 3464 delivery status notification builder: the report's
 * text written into the caller's buffer, the original referenced in place.
 * See dsn.h for the contract (what is attached, folding, the boundary).
 *
 * Layout of the work: the attachment is decided and scanned first (clean?
 * 8-bit? its hash seeds the boundary); then the whole text is generated
 * through a bounded writer that counts what it could not write (so a short
 * buffer yields the size needed); then the boundary is checked against
 * everything and, on a collision, the text is generated again with a new
 * one. Every string from the caller goes through add_clean() or one of the
 * RFC encoders before it reaches the output, and every line through fold().
 */
#include "control/dsn.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define SOFT_COL 78		/* fold header fields and text near here */
#define HARD_COL 998		/* RFC 5322 2.1.1: octets per line, CRLF excluded */
#define WSP_RUN_MAX 16		/* longer runs of whitespace in inputs are cut */
#define ADDR_CUT 1024		/* address octets taken from an input string */
#define ENVID_CUT (2 * QUEUE_TEXT_MAX)
#define ORCPT_CUT (2 * QUEUE_ORCPT_MAX)
#define SCRATCH (16 * 1024)	/* one composed value: >= 6 * ADDR_CUT + 64 and
				   DSN_VALUE_MAX + what surrounds it */
#define FNV_OFF 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

/* ---- the bounded writer --------------------------------------------------- */

/*
 * Appends into p[0..cap). len counts every octet asked for, written or not:
 * once a write does not fit, nothing more is written (len > cap from then
 * on) and len ends as the size needed. bnd counts the boundary's
 * occurrences written (the check compares it with what the text holds).
 */
struct wb {
	char *p;
	size_t cap, len;
	unsigned bnd;
};

static void put(struct wb *w, const void *s, size_t n)
{
	if (w->len <= w->cap && n <= w->cap - w->len)
		memcpy(w->p + w->len, s, n);
	w->len += n;
}

static void putch(struct wb *w, char c)
{
	put(w, &c, 1);
}

static void putstr(struct wb *w, const char *s)
{
	put(w, s, strlen(s));
}

static void crlf(struct wb *w)
{
	put(w, "\r\n", 2);
}

/* The written part (len may be past cap only after an overflow). */
static size_t wlen(const struct wb *w)
{
	return w->len < w->cap ? w->len : w->cap;
}

/* ---- characters ------------------------------------------------------------ */

static bool wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static bool cont(unsigned char c)
{
	return (c & 0xC0) == 0x80;
}

/* Length of the valid UTF-8 sequence (RFC 3629) at p, n octets left; 0 if invalid. */
static size_t u8len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		return n >= 2 && cont(p[1]) ? 2 : 0;
	if (c >= 0xE0 && c <= 0xEF) {
		if (n < 3 || !cont(p[1]) || !cont(p[2]))
			return 0;
		if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] > 0x9F))
			return 0;	/* overlong; surrogate */
		return 3;
	}
	if (c >= 0xF0 && c <= 0xF4) {
		if (n < 4 || !cont(p[1]) || !cont(p[2]) || !cont(p[3]))
			return 0;
		if ((c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] > 0x8F))
			return 0;	/* overlong; above U+10FFFF */
		return 4;
	}
	return 0;
}

static uint32_t u8cp(const unsigned char *p, size_t k)
{
	switch (k) {
	case 1: return p[0];
	case 2: return (uint32_t)(p[0] & 0x1F) << 6 | (p[1] & 0x3F);
	case 3: return (uint32_t)(p[0] & 0x0F) << 12 | (uint32_t)(p[1] & 0x3F) << 6 |
		       (p[2] & 0x3F);
	default: return (uint32_t)(p[0] & 0x07) << 18 | (uint32_t)(p[1] & 0x3F) << 12 |
			(uint32_t)(p[2] & 0x3F) << 6 | (p[3] & 0x3F);
	}
}

/* UTF-8 encoding of code point u (valid, not a surrogate) into out[4]. */
static size_t u8put(uint32_t u, unsigned char *out)
{
	if (u < 0x80) {
		out[0] = (unsigned char)u;
		return 1;
	}
	if (u < 0x800) {
		out[0] = (unsigned char)(0xC0 | u >> 6);
		out[1] = (unsigned char)(0x80 | (u & 0x3F));
		return 2;
	}
	if (u < 0x10000) {
		out[0] = (unsigned char)(0xE0 | u >> 12);
		out[1] = (unsigned char)(0x80 | (u >> 6 & 0x3F));
		out[2] = (unsigned char)(0x80 | (u & 0x3F));
		return 3;
	}
	out[0] = (unsigned char)(0xF0 | u >> 18);
	out[1] = (unsigned char)(0x80 | (u >> 12 & 0x3F));
	out[2] = (unsigned char)(0x80 | (u >> 6 & 0x3F));
	out[3] = (unsigned char)(0x80 | (u & 0x3F));
	return 4;
}

static bool has_8bit(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

/* Printable ASCII and space only (what a field may carry as it is). */
static bool printable(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] > 0x7E)
			return false;
	return true;
}

/* Valid UTF-8 without controls. */
static bool utf8_text(const unsigned char *p, size_t n)
{
	for (size_t i = 0, k; i < n; i += k) {
		if (p[i] < 0x20 || p[i] == 0x7F || !(k = u8len(p + i, n - i)))
			return false;
	}
	return true;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* ---- cleaning and folding -------------------------------------------------------- */

/*
 * Append s (at most max octets of it) as text fit for a field or a line:
 * controls, CR and LF become spaces, whitespace runs are cut to
 * WSP_RUN_MAX, leading and trailing whitespace dropped; octets above 127
 * are kept when utf8 and part of valid UTF-8, else become '?'.
 */
static void add_clean(struct wb *w, const char *s, size_t max, bool utf8)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = s ? strnlen(s, max) : 0, i = 0, start = w->len, run = 0;

	while (i < n && p[i] <= 0x20)
		i++;
	while (i < n) {
		unsigned char c = p[i] < 0x20 || p[i] == 0x7F ? ' ' : p[i];
		size_t k;

		if (c == ' ') {
			if (++run <= WSP_RUN_MAX)
				putch(w, ' ');
			i++;
			continue;
		}
		run = 0;
		k = c < 0x80 ? 1 : utf8 ? u8len(p + i, n - i) : 0;
		if (k)
			put(w, p + i, k);
		else
			putch(w, '?');
		i += k ? k : 1;
	}
	while (w->len > start && w->len <= w->cap && w->p[w->len - 1] == ' ')
		w->len--;
}

/*
 * Write v (clean: no CR, LF or controls) from column col on, breaking
 * lines. Before a whitespace run when the next word would pass SOFT_COL:
 * header mode (indent NULL) starts the next line with that run, so
 * unfolding gives v back; text mode replaces the run with CRLF + indent.
 * Inside a word that cannot fit HARD_COL: CRLF + SP (or indent) is
 * inserted at a UTF-8 character boundary. Returns the column after.
 */
static size_t fold(struct wb *w, size_t col, const char *v, size_t n, const char *indent)
{
	size_t ilen = indent ? strlen(indent) : 1, i = 0;
	bool word_on_line = false;

	while (i < n) {
		size_t ws = i, we, wsl, wl;
		const char *p;

		while (i < n && wsp((unsigned char)v[i]))
			i++;
		we = i;
		while (i < n && !wsp((unsigned char)v[i]))
			i++;
		wsl = we - ws;
		wl = i - we;
		if (wsl && ((word_on_line && col + wsl + wl > SOFT_COL) || col + wsl >= HARD_COL)) {
			crlf(w);
			if (indent) {
				putstr(w, indent);
				col = ilen;
			} else {
				put(w, v + ws, wsl);
				col = wsl;
			}
			word_on_line = false;
		} else {
			put(w, v + ws, wsl);
			col += wsl;
		}
		for (p = v + we; col + wl > HARD_COL;) {
			size_t take = HARD_COL - col;

			while (take > 0 && cont((unsigned char)p[take]))
				take--;
			put(w, p, take);
			crlf(w);
			putstr(w, indent ? indent : " ");
			col = ilen;
			p += take;
			wl -= take;
		}
		put(w, p, wl);
		col += wl;
		if (wl)
			word_on_line = true;
	}
	return col;
}

/* "Name: value" folded, CRLF. */
static void field(struct wb *w, const char *name, const char *v, size_t n)
{
	putstr(w, name);
	put(w, ": ", 2);
	fold(w, strlen(name) + 2, v, n, NULL);
	crlf(w);
}

/* A paragraph of the human part: wrapped, continuation lines indented. */
static void text_line(struct wb *w, const char *v, size_t n, const char *indent)
{
	fold(w, 0, v, n, indent);
	crlf(w);
}

/* ---- RFC 3461 xtext, RFC 6533 utf-8 addresses ---------------------------------------- */

/* xtext: "+HH" is the octet HH. -1 when a '+' is not followed by two hex digits. */
static int xtext_decode(const unsigned char *s, size_t n, unsigned char *out, size_t *len)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] != '+') {
			out[o++] = s[i];
			continue;
		}
		if (i + 2 >= n || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
			return -1;
		out[o++] = (unsigned char)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
		i += 2;
	}
	*len = o;
	return 0;
}

/*
 * utf-8-addr-xtext / utf-8-addr-unitext to the mailbox: "\x{HEX}" is the
 * code point HEX, other octets stay (raw UTF-8 must be valid). out holds at
 * least 4 * n octets. -1 when malformed.
 */
static int uxtext_decode(const unsigned char *s, size_t n, unsigned char *out, size_t *len)
{
	size_t o = 0;

	for (size_t i = 0; i < n;) {
		if (s[i] == '\\' && i + 3 < n && s[i + 1] == 'x' && s[i + 2] == '{') {
			uint32_t u = 0;
			size_t j = i + 3, digits = 0;

			for (; j < n && s[j] != '}'; j++, digits++) {
				if (hexval(s[j]) < 0 || digits >= 6)
					return -1;
				u = u << 4 | (uint32_t)hexval(s[j]);
			}
			if (j >= n || digits < 2 || u == 0 || u > 0x10FFFF ||
			    (u >= 0xD800 && u <= 0xDFFF))
				return -1;
			o += u8put(u, out + o);
			i = j + 1;
			continue;
		}
		size_t k = u8len(s + i, n - i);

		if (!k || s[i] < 0x20 || s[i] == 0x7F)
			return -1;
		memcpy(out + o, s + i, k);
		o += k;
		i += k;
	}
	*len = o;
	return 0;
}

/*
 * A mailbox as RFC 6533 utf-8-addr-unitext (ascii_only: utf-8-addr-xtext):
 * QCHARs as they are; other ASCII (controls, space, '\', '+', '=') as
 * \x{HH}; other code points raw (unitext) or as \x{HEX} (xtext); invalid
 * UTF-8 as \x{FFFD}.
 */
static void add_utf8addr(struct wb *w, const unsigned char *p, size_t n, bool ascii_only)
{
	char e[16];

	for (size_t i = 0; i < n;) {
		unsigned char c = p[i];
		size_t k;

		if (c < 0x80) {
			if (c > 0x20 && c < 0x7F && c != '\\' && c != '+' && c != '=') {
				putch(w, (char)c);
			} else {
				snprintf(e, sizeof(e), "\\x{%02X}", c);
				putstr(w, e);
			}
			i++;
			continue;
		}
		k = u8len(p + i, n - i);
		if (!k) {
			putstr(w, "\\x{FFFD}");
			i++;
			continue;
		}
		if (ascii_only) {
			snprintf(e, sizeof(e), "\\x{%X}", (unsigned)u8cp(p + i, k));
			putstr(w, e);
		} else {
			put(w, p + i, k);
		}
		i += k;
	}
}

/* "rfc822; addr", or "utf-8; " and the RFC 6533 form when addr is not
 * printable ASCII. */
static void add_address(struct wb *w, const char *addr, bool global)
{
	size_t n = strnlen(addr, ADDR_CUT);

	if (printable((const unsigned char *)addr, n)) {
		putstr(w, "rfc822; ");
		put(w, addr, n);
	} else {
		putstr(w, "utf-8; ");
		add_utf8addr(w, (const unsigned char *)addr, n, !global);
	}
}

/* address-type = atom (RFC 3464): letters, digits and "-", 1..32 of them. */
static bool addr_type_ok(const char *s, size_t n)
{
	if (n == 0 || n > 32)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-'))
			return false;
	}
	return true;
}

/*
 * The ORCPT for Original-Recipient (typed: "type; address") or for the
 * human part (the address alone): xtext decoded; a utf-8 one decoded
 * further and written in the form the report allows; as received (cleaned)
 * when it does not decode or decodes to controls.
 */
static void add_orcpt(struct wb *w, const char *orcpt, bool global, bool typed)
{
	unsigned char dec[ORCPT_CUT + 1], mb[4 * ORCPT_CUT + 4];
	size_t n = strnlen(orcpt, ORCPT_CUT), tl, dl, ml;
	const char *semi = memchr(orcpt, ';', n);
	const unsigned char *x;

	if (!semi || !addr_type_ok(orcpt, (size_t)(semi - orcpt))) {
		if (typed)
			putstr(w, "unknown; ");
		add_clean(w, orcpt, n, false);
		return;
	}
	tl = (size_t)(semi - orcpt);
	x = (const unsigned char *)semi + 1;
	if (xtext_decode(x, n - tl - 1, dec, &dl) < 0)
		goto as_received;
	if (tl == 5 && strncasecmp(orcpt, "utf-8", 5) == 0) {
		if (uxtext_decode(dec, dl, mb, &ml) < 0)
			goto as_received;
		if (typed)
			putstr(w, "utf-8; ");
		add_utf8addr(w, mb, ml, !global);
		return;
	}
	if (printable(dec, dl)) {
		if (typed) {
			put(w, orcpt, tl);
			put(w, "; ", 2);
		}
		put(w, dec, dl);
		return;
	}
	if (utf8_text(dec, dl)) {	/* not ASCII: RFC 6533's type for it */
		if (typed)
			putstr(w, "utf-8; ");
		add_utf8addr(w, dec, dl, !global);
		return;
	}
as_received:
	if (typed) {
		put(w, orcpt, tl);
		put(w, "; ", 2);
	}
	add_clean(w, (const char *)x, n - tl - 1, false);
}

/* ENVID for Original-Envelope-Id: xtext decoded when that gives text. */
static void add_envid(struct wb *w, const char *envid, bool global)
{
	unsigned char dec[ENVID_CUT + 1];
	size_t n = strnlen(envid, ENVID_CUT), dl;

	if (xtext_decode((const unsigned char *)envid, n, dec, &dl) == 0 &&
	    (printable(dec, dl) || (global && utf8_text(dec, dl)))) {
		dec[dl] = '\0';
		add_clean(w, (const char *)dec, dl, global);
		return;
	}
	add_clean(w, envid, n, false);
}

/* ---- dates ----------------------------------------------------------------------------- */

/* RFC 5322 date-time in UTC: "Tue, 14 Nov 2023 22:13:20 +0000". */
static void fmt_date(uint64_t t, char *out, size_t n)
{
	static const char *const day[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t tt = (time_t)(t > 253402300799ull ? 253402300799ull : t);	/* 9999-12-31 */
	struct tm tm;

	if (!gmtime_r(&tt, &tm)) {
		snprintf(out, n, "Thu, 1 Jan 1970 00:00:00 +0000");
		return;
	}
	snprintf(out, n, "%s, %d %s %04d %02d:%02d:%02d +0000", day[tm.tm_wday], tm.tm_mday,
		 mon[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static void date_field(struct wb *w, const char *name, uint64_t t)
{
	char d[64];

	fmt_date(t, d, sizeof(d));
	field(w, name, d, strlen(d));
}

/* ---- what is attached ------------------------------------------------------------------ */

static bool any_action(const struct dsn_report *r, enum dsn_action a)
{
	for (unsigned i = 0; i < r->nrcpt; i++)
		if (r->rcpt[i].action == a)
			return true;
	return false;
}

/* The rules want the whole message (before the size limit). */
static bool want_full(const struct dsn_report *r)
{
	if (r->kind == DSN_KIND_DOUBLE_BOUNCE)
		return true;
	return any_action(r, DSN_FAILED) && r->env.ret != QUEUE_RET_HDRS;
}

enum dsn_attach dsn_attach_plan(const struct dsn_report *r)
{
	if (r->orig_size == 0)
		return DSN_ATTACH_NONE;
	return want_full(r) && r->orig_size <= r->size_limit ? DSN_ATTACH_FULL
							     : DSN_ATTACH_HEADERS;
}

uint64_t dsn_original_need(const struct dsn_report *r)
{
	switch (dsn_attach_plan(r)) {
	case DSN_ATTACH_FULL:
		return r->orig_size;
	case DSN_ATTACH_HEADERS:	/* the section, and what follows it */
		return r->orig_size < DSN_HEADERS_MAX + 2 ? r->orig_size : DSN_HEADERS_MAX + 2;
	default:
		return 0;
	}
}

/*
 * The header section at the start of p (n octets held of a message of
 * total): its length through its last field's CRLF, at most max octets,
 * cut after a whole field when longer (*cut). 0 when there is none.
 */
static size_t header_section(const unsigned char *p, size_t n, uint64_t total, size_t max,
			     bool *cut)
{
	size_t win = n < max + 2 ? n : max + 2;

	*cut = false;
	if (n >= 2 && p[0] == '\r' && p[1] == '\n')
		return 0;
	for (size_t i = 0; i + 4 <= win; i++)
		if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n')
			return i + 2;
	if (n == total && total <= max)
		return (size_t)total;	/* no body: all of it is header */
	*cut = true;
	for (size_t j = (win < max ? win : max); j >= 2; j--)	/* j: the cut */
		if (p[j - 2] == '\r' && p[j - 1] == '\n' && j < n && !wsp(p[j]))
			return j;
	return 0;
}

/*
 * One pass over what would be attached: is it clean RFC 5322 text (CRLF
 * only, no NUL, lines of at most 998 octets)? any 8-bit octet? and its
 * FNV-1a hash (the boundary's seed).
 */
struct scan {
	bool clean, eight;
	uint64_t hash;
};

static struct scan scan(const unsigned char *p, size_t n)
{
	struct scan s = { .clean = true, .hash = FNV_OFF };
	size_t line = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];

		s.hash = (s.hash ^ c) * FNV_PRIME;
		if (c == '\r') {
			if (i + 1 >= n || p[i + 1] != '\n')
				s.clean = false;
		} else if (c == '\n') {
			if (i == 0 || p[i - 1] != '\r')
				s.clean = false;
			line = 0;
		} else {
			if (c == 0)
				s.clean = false;
			if (c & 0x80)
				s.eight = true;
			if (++line > HARD_COL)
				s.clean = false;
		}
	}
	return s;
}

/* ---- the report ------------------------------------------------------------------------ */

struct ctx {
	const struct dsn_report *r;
	bool global;		/* RFC 6533 forms */
	enum dsn_attach att;
	bool over_limit, unclean, eight;	/* eight: the attachment has 8-bit octets */
	const unsigned char *slice;	/* what is attached */
	size_t slice_len;
	const char *to;
	char boundary[DSN_BOUNDARY_MAX + 1];
	char msgid[DSN_MSGID_MAX + 1];
	char scratch[SCRATCH];	/* one value being composed */
};

static struct wb sb(struct ctx *c)
{
	return (struct wb){ .p = c->scratch, .cap = sizeof(c->scratch) };
}

static const char *const action_name[DSN_ACTIONS] = {
	"failed", "delayed", "delivered", "relayed", "expanded",
};

static const char *const action_text[DSN_ACTIONS] = {
	"Your message could not be delivered to the recipients below. This is a "
	"permanent error: the mail system has given up on them.",
	"Your message has not yet been delivered to the recipients below. The mail "
	"system is still trying; there is no need to send it again. You will be told "
	"if it gives up.",
	"Your message was delivered to the recipients below.",
	"Your message was passed on to the recipients below through a system that does "
	"not report on delivery: no further notice about them will come.",
	"Your message was delivered to the recipients below, which are lists or "
	"aliases: it was passed on to their members.",
};

static const char *const action_default[DSN_ACTIONS] = {
	"delivery failed", "not delivered yet", "delivered", "relayed", "expanded",
};

static const char *status_of(const struct dsn_rcpt *rc)
{
	static const char *const def[DSN_ACTIONS] = {
		"5.0.0", "4.0.0", "2.0.0", "2.0.0", "2.0.0",
	};

	return rc->status && dsn_status_valid(rc->status) ? rc->status : def[rc->action];
}

static const char *subject(const struct dsn_report *r)
{
	if (r->kind == DSN_KIND_DOUBLE_BOUNCE)
		return "Postmaster Copy: Undelivered Mail";
	if (any_action(r, DSN_FAILED))
		return "Undelivered Mail Returned to Sender";
	if (any_action(r, DSN_DELAYED))
		return "Delayed Mail (still being retried)";
	return "Successful Mail Delivery Report";
}

/* A reply code: three digits (2-5 first) then space, '-' or the end. */
static bool looks_smtp(const char *s)
{
	return s[0] >= '2' && s[0] <= '5' && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' &&
	       s[2] <= '9' && (s[3] == ' ' || s[3] == '-' || s[3] == '\0');
}

static void gen_header(struct ctx *c, struct wb *w)
{
	const struct dsn_report *r = c->r;
	struct wb v = sb(c);
	char d[64];

	fmt_date(r->now, d, sizeof(d));
	field(w, "Date", d, strlen(d));
	putstr(w, "From: Mail Delivery System <MAILER-DAEMON@");
	putstr(w, r->reporting_mta);
	putstr(w, ">\r\n");
	putch(&v, '<');
	add_clean(&v, c->to, DSN_ADDR_MAX, c->global);
	putch(&v, '>');
	field(w, "To", v.p, wlen(&v));
	putstr(w, "Subject: ");
	putstr(w, subject(r));
	crlf(w);
	field(w, "Message-ID", c->msgid, strlen(c->msgid));
	putstr(w, "Auto-Submitted: auto-replied\r\n");
	putstr(w, r->kind == DSN_KIND_DOUBLE_BOUNCE ? "X-Sluice-Report: double-bounce\r\n"
						    : "X-Sluice-Report: delivery-status\r\n");
	putstr(w, "MIME-Version: 1.0\r\n");
	putstr(w, "Content-Type: multipart/report; report-type=");
	putstr(w, c->global ? "global-delivery-status" : "delivery-status");
	putstr(w, ";\r\n\tboundary=\"");
	putstr(w, c->boundary);
	w->bnd++;
	putstr(w, "\"\r\n");
	putstr(w, c->global || c->eight ? "Content-Transfer-Encoding: 8bit\r\n"
					: "Content-Transfer-Encoding: 7bit\r\n");
	crlf(w);
	putstr(w, "This is a MIME-encapsulated message.\r\n");
}

static void delimiter(struct ctx *c, struct wb *w, bool last)
{
	putstr(w, "\r\n--");
	putstr(w, c->boundary);
	w->bnd++;
	putstr(w, last ? "--\r\n" : "\r\n");
}

/*
 * "<addr> (originally <orcpt>): reason", the ORCPT only when it names
 * another address; a delay adds "Delivery will be tried until ...".
 */
static void human_rcpt(struct ctx *c, struct wb *w, const struct dsn_rcpt *rc)
{
	struct wb v = sb(c);
	const char *why = rc->reason && rc->reason[0] ? rc->reason
			: rc->diag && rc->diag[0] ? rc->diag : action_default[rc->action];
	char d[64], ob[8 * ORCPT_CUT + 16];
	struct wb o = { .p = ob, .cap = sizeof(ob) };
	size_t al = strnlen(rc->addr, ADDR_CUT);

	putch(&v, '<');
	add_clean(&v, rc->addr, ADDR_CUT, c->global);
	putch(&v, '>');
	if (rc->orcpt && rc->orcpt[0]) {
		add_orcpt(&o, rc->orcpt, c->global, false);
		if (wlen(&o) != al || strncasecmp(ob, rc->addr, al) != 0) {
			putstr(&v, " (originally <");
			put(&v, ob, wlen(&o));
			putstr(&v, ">)");
		}
	}
	putstr(&v, ": ");
	add_clean(&v, why, DSN_VALUE_MAX, c->global);
	text_line(w, v.p, wlen(&v), "    ");
	if (rc->action == DSN_DELAYED && rc->retry_until) {
		fmt_date(rc->retry_until, d, sizeof(d));
		v = sb(c);
		putstr(&v, "    Delivery will be tried until ");
		putstr(&v, d);
		putch(&v, '.');
		text_line(w, v.p, wlen(&v), "    ");
	}
}

static void human_attachment_note(struct ctx *c, struct wb *w)
{
	char t[200];

	switch (c->att) {
	case DSN_ATTACH_FULL:
		snprintf(t, sizeof(t), "The message is attached.");
		break;
	case DSN_ATTACH_HEADERS:
		if (c->over_limit)
			snprintf(t, sizeof(t), "The message is larger than %llu octets: only "
				 "its headers are attached.",
				 (unsigned long long)c->r->size_limit);
		else if (c->unclean)
			snprintf(t, sizeof(t), "Only its headers are attached: the message "
				 "is not in a form that can be returned whole.");
		else
			snprintf(t, sizeof(t), "Its headers are attached.");
		break;
	default:
		snprintf(t, sizeof(t), "%s", c->unclean ? "It is not attached: it is not in "
			 "a form that can be returned." : c->r->orig_size == 0 ? "It is not "
			 "attached: it is empty." : "It is not attached: it has no header "
			 "section.");
		break;
	}
	text_line(w, t, strlen(t), "");
}

static void gen_human(struct ctx *c, struct wb *w)
{
	const struct dsn_report *r = c->r;
	struct wb v = sb(c);
	char d[64];

	putstr(&v, "This is the mail system at host ");
	putstr(&v, r->reporting_mta);
	putstr(&v, ".");
	text_line(w, v.p, wlen(&v), "");
	crlf(w);
	if (r->kind == DSN_KIND_DOUBLE_BOUNCE) {
		static const char db[] = "The delivery status notification (or other "
			"message without a return address) described below could not be "
			"delivered. Nothing more will be sent about it.";
		text_line(w, db, sizeof(db) - 1, "");
		crlf(w);
	}
	for (int a = 0; a < DSN_ACTIONS; a++) {
		if (!any_action(r, (enum dsn_action)a))
			continue;
		if (r->kind != DSN_KIND_DOUBLE_BOUNCE) {
			text_line(w, action_text[a], strlen(action_text[a]), "");
			crlf(w);
		}
		for (unsigned i = 0; i < r->nrcpt; i++)
			if (r->rcpt[i].action == (enum dsn_action)a)
				human_rcpt(c, w, &r->rcpt[i]);
		crlf(w);
	}
	v = sb(c);
	putstr(&v, "The message:");
	if (r->env.queue_id && r->env.queue_id[0]) {
		putstr(&v, " queue ID ");
		add_clean(&v, r->env.queue_id, QUEUE_TEXT_MAX, false);
		putch(&v, ',');
	}
	putstr(&v, " from <");
	add_clean(&v, r->env.sender, ADDR_CUT, c->global);
	putch(&v, '>');
	if (r->env.arrival) {
		fmt_date(r->env.arrival, d, sizeof(d));
		putstr(&v, ", arrived ");
		putstr(&v, d);
	}
	putch(&v, '.');
	text_line(w, v.p, wlen(&v), "    ");
	crlf(w);
	human_attachment_note(c, w);
}

static void gen_status_rcpt(struct ctx *c, struct wb *w, const struct dsn_rcpt *rc)
{
	struct wb v;
	const char *st = status_of(rc);

	if (rc->orcpt && rc->orcpt[0]) {
		v = sb(c);
		add_orcpt(&v, rc->orcpt, c->global, true);
		field(w, "Original-Recipient", v.p, wlen(&v));
	}
	v = sb(c);
	add_address(&v, rc->addr, c->global);
	field(w, "Final-Recipient", v.p, wlen(&v));
	field(w, "Action", action_name[rc->action], strlen(action_name[rc->action]));
	field(w, "Status", st, strlen(st));
	if (rc->remote_mta && rc->remote_mta[0]) {
		v = sb(c);
		putstr(&v, "dns; ");
		add_clean(&v, rc->remote_mta, DSN_HOST_MAX + 64, c->global);
		field(w, "Remote-MTA", v.p, wlen(&v));
	}
	if (rc->diag && rc->diag[0]) {
		size_t tl = rc->diag_type ? strlen(rc->diag_type) : 0;

		v = sb(c);
		if (rc->diag_type && addr_type_ok(rc->diag_type, tl))
			put(&v, rc->diag_type, tl);
		else
			putstr(&v, looks_smtp(rc->diag) ? "smtp" : "X-Sluice");
		putstr(&v, "; ");
		add_clean(&v, rc->diag, DSN_VALUE_MAX, c->global);
		field(w, "Diagnostic-Code", v.p, wlen(&v));
	}
	if (rc->last_attempt)
		date_field(w, "Last-Attempt-Date", rc->last_attempt);
	if (rc->action == DSN_DELAYED && rc->retry_until)
		date_field(w, "Will-Retry-Until", rc->retry_until);
}

static void gen_status(struct ctx *c, struct wb *w)
{
	const struct dsn_report *r = c->r;
	struct wb v = sb(c);

	putstr(&v, "dns; ");
	putstr(&v, r->reporting_mta);
	field(w, "Reporting-MTA", v.p, wlen(&v));
	if (r->env.queue_id && r->env.queue_id[0]) {
		v = sb(c);
		add_clean(&v, r->env.queue_id, QUEUE_TEXT_MAX, false);
		field(w, "X-Sluice-Queue-ID", v.p, wlen(&v));
	}
	if (r->env.sender && r->env.sender[0]) {
		v = sb(c);
		add_address(&v, r->env.sender, c->global);
		field(w, "X-Sluice-Sender", v.p, wlen(&v));
	}
	if (r->env.envid && r->env.envid[0]) {
		v = sb(c);
		add_envid(&v, r->env.envid, c->global);
		field(w, "Original-Envelope-Id", v.p, wlen(&v));
	}
	if (r->env.arrival)
		date_field(w, "Arrival-Date", r->env.arrival);
	for (unsigned i = 0; i < r->nrcpt; i++) {
		crlf(w);
		gen_status_rcpt(c, w, &r->rcpt[i]);
	}
}

static void gen_part3_header(struct ctx *c, struct wb *w)
{
	bool full = c->att == DSN_ATTACH_FULL;
	const char *type = c->global ? (full ? "message/global" : "message/global-headers")
			   : (full ? "message/rfc822" : "text/rfc822-headers");
	bool failed = c->r->kind == DSN_KIND_DOUBLE_BOUNCE || any_action(c->r, DSN_FAILED);

	putstr(w, "Content-Description: ");
	putstr(w, failed ? (full ? "Undelivered Message" : "Undelivered Message Headers")
		  : (full ? "Message" : "Message Headers"));
	putstr(w, "\r\nContent-Type: ");
	putstr(w, type);
	crlf(w);
	if (c->eight)
		putstr(w, "Content-Transfer-Encoding: 8bit\r\n");
	crlf(w);
}

/* The whole text; returns where the original goes (the end when nothing does). */
static size_t generate(struct ctx *c, struct wb *w)
{
	size_t at;

	gen_header(c, w);
	delimiter(c, w, false);
	putstr(w, "Content-Description: Notification\r\n");
	putstr(w, c->global ? "Content-Type: text/plain; charset=utf-8\r\n"
			      "Content-Transfer-Encoding: 8bit\r\n"
			    : "Content-Type: text/plain; charset=us-ascii\r\n");
	crlf(w);
	gen_human(c, w);
	delimiter(c, w, false);
	putstr(w, "Content-Description: Delivery report\r\n");
	putstr(w, c->global ? "Content-Type: message/global-delivery-status\r\n"
			      "Content-Transfer-Encoding: 8bit\r\n"
			    : "Content-Type: message/delivery-status\r\n");
	crlf(w);
	gen_status(c, w);
	if (c->att != DSN_ATTACH_NONE) {
		delimiter(c, w, false);
		gen_part3_header(c, w);
	}
	at = w->len;
	delimiter(c, w, true);
	return at;
}

/* ---- the boundary ---------------------------------------------------------------------- */

static uint64_t mix64(uint64_t x)	/* splitmix64's finalizer */
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * FNV_PRIME;
	return h;
}

static size_t count(const char *hay, size_t n, const char *needle)
{
	size_t k = strlen(needle), found = 0;
	const char *p = hay, *end = hay + n;

	while ((size_t)(end - p) >= k && (p = memmem(p, (size_t)(end - p), needle, k))) {
		found++;
		p += k;
	}
	return found;
}

/* ---- entry points ---------------------------------------------------------------------- */

static bool host_ok(const char *h)
{
	size_t n = h ? strnlen(h, DSN_HOST_MAX + 1) : 0;

	if (n == 0 || n > DSN_HOST_MAX || h[0] == '.' || h[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)h[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '-'))
			return false;
	}
	return true;
}

static bool token_ok(const char *t)
{
	size_t n = t ? strnlen(t, DSN_TOKEN_MAX + 1) : 0;

	if (n == 0 || n > DSN_TOKEN_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)t[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* An envelope address fit for RCPT TO: no controls, not too long. */
static bool env_addr_ok(const char *a, size_t max)
{
	size_t n = strnlen(a, max + 1);

	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)a[i] < 0x20 || a[i] == 0x7F)
			return false;
	return true;
}

static int check_input(const struct dsn_report *r, struct dsn_out *out)
{
	if (!r->rcpt || r->nrcpt == 0 || r->nrcpt > QUEUE_RCPT_MAX ||
	    !host_ok(r->reporting_mta) || !token_ok(r->token))
		return DSN_EINVAL;
	for (unsigned i = 0; i < r->nrcpt; i++)
		if (!r->rcpt[i].addr || !r->rcpt[i].addr[0] ||
		    (unsigned)r->rcpt[i].action >= DSN_ACTIONS)
			return DSN_EINVAL;
	if (r->kind == DSN_KIND_REPORT) {
		if (!r->env.sender || !env_addr_ok(r->env.sender, QUEUE_ADDR_MAX))
			return DSN_EINVAL;	/* never a DSN to the null sender */
		snprintf(out->to, sizeof(out->to), "%s", r->env.sender);
	} else if (r->kind == DSN_KIND_DOUBLE_BOUNCE) {
		if (!r->postmaster || !env_addr_ok(r->postmaster, QUEUE_ADDR_MAX))
			return DSN_EINVAL;
		snprintf(out->to, sizeof(out->to), strchr(r->postmaster, '@') ? "%s" : "%s@%s",
			 r->postmaster, r->reporting_mta);
	} else {
		return DSN_EINVAL;
	}
	if (dsn_original_need(r) > r->orig_len || (r->orig_len && !r->orig))
		return DSN_EINVAL;
	return DSN_OK;
}

/* Decide and scan the attachment: c->att, slice, eight, over_limit,
 * unclean, headers_cut; returns the content hash. */
static uint64_t choose_attachment(struct ctx *c, struct dsn_out *out)
{
	const struct dsn_report *r = c->r;
	const unsigned char *p = r->orig;
	size_t have = r->orig_len < r->orig_size ? r->orig_len : (size_t)r->orig_size;
	struct scan s = { .clean = true, .hash = FNV_OFF };
	bool cut;

	c->att = dsn_attach_plan(r);
	c->over_limit = c->att == DSN_ATTACH_HEADERS && want_full(r);
	if (c->att == DSN_ATTACH_FULL) {
		c->slice = p;
		c->slice_len = (size_t)r->orig_size;
		s = scan(p, c->slice_len);
		if (!s.clean) {
			c->unclean = true;
			c->att = DSN_ATTACH_HEADERS;
		}
	}
	if (c->att == DSN_ATTACH_HEADERS) {
		c->slice = p;
		c->slice_len = header_section(p, have, r->orig_size, DSN_HEADERS_MAX, &cut);
		out->headers_cut = cut;
		s = scan(p, c->slice_len);
		if (c->slice_len == 0 || !s.clean) {
			c->unclean = c->unclean || c->slice_len > 0 || cut;
			c->att = DSN_ATTACH_NONE;
		}
	}
	if (c->att == DSN_ATTACH_NONE) {
		c->slice = NULL;
		c->slice_len = 0;
		s.eight = false;
	}
	c->eight = s.eight;
	return s.hash;
}

static bool needs_global(const struct dsn_report *r)
{
	if ((r->env.body_flags & QUEUE_BODY_SMTPUTF8) || has_8bit(r->env.sender))
		return true;
	if (r->kind == DSN_KIND_DOUBLE_BOUNCE && has_8bit(r->postmaster))
		return true;
	for (unsigned i = 0; i < r->nrcpt; i++)
		if (has_8bit(r->rcpt[i].addr) || has_8bit(r->rcpt[i].orcpt))
			return true;
	return false;
}

int dsn_build(const struct dsn_report *r, char *buf, size_t cap, struct dsn_out *out)
{
	struct ctx c = { .r = r };
	uint64_t h;
	char stamp[32];
	struct tm tm;
	time_t now;
	int err;

	memset(out, 0, sizeof(*out));
	if ((err = check_input(r, out)) != DSN_OK)
		return err;
	c.to = out->to;
	c.global = needs_global(r);
	h = choose_attachment(&c, out);
	now = (time_t)(r->now > 253402300799ull ? 253402300799ull : r->now);
	if (!gmtime_r(&now, &tm))
		return DSN_EINVAL;
	snprintf(stamp, sizeof(stamp), "%04d%02d%02d%02d%02d%02d", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	snprintf(c.msgid, sizeof(c.msgid), "<%s.%s@%s>", stamp, r->token, r->reporting_mta);

	for (unsigned t = 0; t < DSN_BOUNDARY_TRIES; t++) {
		struct wb w = { .p = buf, .cap = cap };
		size_t at;

		snprintf(c.boundary, sizeof(c.boundary), "=_%s.%016llx", r->token,
			 (unsigned long long)mix64(h + t));
		at = generate(&c, &w);
		if (w.len > cap) {
			out->need = w.len;
			return DSN_ENOSPC;
		}
		if (count(buf, w.len, c.boundary) == w.bnd &&
		    (!c.slice_len || !memmem(c.slice, c.slice_len, c.boundary,
					     strlen(c.boundary)))) {
			out->need = w.len;
			out->iov[0] = (struct iovec){ buf, at };
			out->iovcnt = 1;
			if (c.slice_len) {
				out->iov[1] = (struct iovec){ (void *)c.slice, c.slice_len };
				out->iov[2] = (struct iovec){ buf + at, w.len - at };
				out->iovcnt = 3;
			} else {
				out->iov[0].iov_len = w.len;
			}
			out->size = w.len + c.slice_len;
			out->flags = (c.global ? DSN_OUT_SMTPUTF8 | DSN_OUT_8BITMIME : 0) |
				     (c.eight ? DSN_OUT_8BITMIME : 0);
			out->attached = c.att;
			out->over_limit = c.over_limit;
			out->unclean = c.unclean;
			snprintf(out->boundary, sizeof(out->boundary), "%s", c.boundary);
			snprintf(out->message_id, sizeof(out->message_id), "%s", c.msgid);
			return DSN_OK;
		}
		h = fnv(h, buf, w.len);	/* the next one depends on all of it */
	}
	memset(out, 0, sizeof(*out));
	return DSN_EBOUNDARY;
}

size_t dsn_text_max(unsigned nrcpt)
{
	return DSN_FIXED_TEXT_MAX + (size_t)nrcpt * DSN_RCPT_TEXT_MAX;
}

bool dsn_wanted(const char *sender, uint8_t notify, enum dsn_action action)
{
	if (!sender || !sender[0] || (notify & QUEUE_NOTIFY_NEVER))
		return false;
	if (notify == 0)
		return action == DSN_FAILED;
	switch (action) {
	case DSN_FAILED: return notify & QUEUE_NOTIFY_FAILURE;
	case DSN_DELAYED: return notify & QUEUE_NOTIFY_DELAY;
	case DSN_DELIVERED:
	case DSN_RELAYED:
	case DSN_EXPANDED: return notify & QUEUE_NOTIFY_SUCCESS;
	}
	return false;
}

/* Does the header section of head say "X-Sluice-Report: double-bounce"? */
static bool is_double_bounce(const char *head, size_t len)
{
	static const char name[] = "x-sluice-report:";
	const size_t nl = sizeof(name) - 1;
	size_t i = 0;

	while (i < len) {
		size_t e = i;

		while (e < len && head[e] != '\n')
			e++;
		size_t l = e > i && head[e - 1] == '\r' ? e - 1 - i : e - i;	/* line length */
		if (l == 0)
			break;	/* end of the header section */
		if (l >= nl && strncasecmp(head + i, name, nl) == 0) {
			size_t a = i + nl, b = i + l;

			while (a < b && wsp((unsigned char)head[a]))
				a++;
			while (b > a && wsp((unsigned char)head[b - 1]))
				b--;
			if (b - a == 13 && strncasecmp(head + a, "double-bounce", 13) == 0)
				return true;
		}
		i = e + 1;
	}
	return false;
}

enum dsn_on_fail dsn_on_failure(const char *sender, const void *head, size_t len)
{
	if (sender && sender[0])
		return DSN_FAIL_REPORT;
	if (head && is_double_bounce(head, len))
		return DSN_FAIL_DROP;
	return DSN_FAIL_DOUBLE_BOUNCE;
}

void dsn_reply_parse(const char *reason, struct dsn_reply *out)
{
	const char *said, *rest, *tail, *p;
	size_t hl, n;

	memset(out, 0, sizeof(*out));
	if (!reason)
		return;
	rest = reason;
	if (strncmp(reason, "host ", 5) == 0 && (said = strstr(reason + 5, " said: "))) {
		hl = (size_t)(said - reason - 5);
		p = memchr(reason + 5, '[', hl);
		if (p)
			hl = (size_t)(p - reason - 5);
		if (hl <= DSN_HOST_MAX) {
			memcpy(out->remote_mta, reason + 5, hl);
			out->remote_mta[hl] = '\0';
		}
		rest = said + 7;
	}
	n = strlen(rest);
	/* the last " (in reply to ... command)" is ours, not the reply's */
	for (tail = NULL, p = rest; (p = strstr(p, " (in reply to ")); p++)
		tail = p;
	if (rest != reason && tail && n >= 9 && strcmp(rest + n - 9, " command)") == 0)
		n = (size_t)(tail - rest);
	if (n > QUEUE_REPLY_MAX)
		n = QUEUE_REPLY_MAX;
	memcpy(out->diag, rest, n);
	out->diag[n] = '\0';
	if (looks_smtp(out->diag) && out->diag[3] != '\0') {
		const char *st = out->diag + 4;
		size_t sl = strcspn(st, " ");

		if (sl < sizeof(out->status)) {
			memcpy(out->status, st, sl);
			out->status[sl] = '\0';
			if (!dsn_status_valid(out->status) || out->status[0] != out->diag[0])
				out->status[0] = '\0';
		}
	}
}

const char *dsn_action_str(enum dsn_action a)
{
	return (unsigned)a < DSN_ACTIONS ? action_name[a] : "?";
}

bool dsn_status_valid(const char *s)
{
	int part = 0, digits = 0;

	if (!s || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return false;
	for (s += 2; ; s++) {
		if (*s >= '0' && *s <= '9') {
			if (++digits > 3)
				return false;
		} else if ((*s == '.' && part == 0) || (*s == '\0' && part == 1)) {
			if (digits == 0)
				return false;
			if (*s == '\0')
				return true;
			part++;
			digits = 0;
		} else {
			return false;
		}
	}
}

const char *dsn_strerror(int err)
{
	switch (err) {
	case DSN_OK: return "ok";
	case DSN_EINVAL: return "invalid input";
	case DSN_ENOSPC: return "buffer too small";
	case DSN_EBOUNDARY: return "no boundary free of the content";
	default: return "unknown error";
	}
}
