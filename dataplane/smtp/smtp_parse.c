/*
 * smtp_parse.c - SMTP command line parsing into a fixed-size struct.
 * See smtp_parse.h for the grammar decisions. No heap, no global state.
 */
#include "dataplane/smtp/smtp_parse.h"

#include <arpa/inet.h>
#include <string.h>

static const struct {
	const char *name;
	enum smtp_verb verb;
} verbs[] = {
	{ "EHLO", SMTP_V_EHLO }, { "HELO", SMTP_V_HELO }, { "MAIL", SMTP_V_MAIL },
	{ "RCPT", SMTP_V_RCPT }, { "DATA", SMTP_V_DATA }, { "BDAT", SMTP_V_BDAT },
	{ "RSET", SMTP_V_RSET }, { "NOOP", SMTP_V_NOOP }, { "QUIT", SMTP_V_QUIT },
	{ "VRFY", SMTP_V_VRFY }, { "HELP", SMTP_V_HELP },
	{ "STARTTLS", SMTP_V_STARTTLS }, { "ETRN", SMTP_V_ETRN },
	{ "AUTH", SMTP_V_AUTH },
};

const char *smtp_verb_name(enum smtp_verb v)
{
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (verbs[i].verb == v)
			return verbs[i].name;
	return "UNKNOWN";
}

static int lc(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

/* Case-insensitive compare of n bytes of s with the NUL-terminated word. */
static bool ieq(const char *s, size_t n, const char *word)
{
	size_t wl = strlen(word);
	if (n != wl)
		return false;
	for (size_t i = 0; i < n; i++)
		if (lc((unsigned char)s[i]) != lc((unsigned char)word[i]))
			return false;
	return true;
}

static bool is_alpha(int c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
static bool is_digit(int c) { return c >= '0' && c <= '9'; }
static bool is_letdig(int c) { return is_alpha(c) || is_digit(c); }

/* RFC 5322 atext */
static bool is_atext(int c)
{
	return is_letdig(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static enum smtp_perr fail(struct smtp_cmd *c, enum smtp_perr e)
{
	static const char *const msg[] = {
		[SMTP_PE_OK] = NULL,
		[SMTP_PE_UNKNOWN] = "500 5.5.2 Error: command not recognized",
		[SMTP_PE_BADCHAR] = "500 5.5.2 Error: bad character in command",
		[SMTP_PE_SYNTAX] = "501 5.5.4 Syntax error in parameters or arguments",
		[SMTP_PE_SENDER] = "501 5.1.7 Bad sender address syntax",
		[SMTP_PE_RCPT] = "501 5.1.3 Bad recipient address syntax",
		[SMTP_PE_PATHLEN] = "501 5.1.3 Path too long",
		[SMTP_PE_PARAM_UNKNOWN] = "555 5.5.4 Unsupported parameter",
		[SMTP_PE_PARAM_BAD] = "501 5.5.4 Bad parameter value",
		[SMTP_PE_NOTIMPL] = "502 5.5.1 Error: command not implemented",
	};
	c->err = e;
	c->reply = msg[e];
	if (e == SMTP_PE_PATHLEN && c->verb == SMTP_V_MAIL)
		c->reply = "501 5.1.7 Path too long";
	return e;
}

bool smtp_utf8_valid(const uint8_t *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		uint8_t b = s[i];
		if (b < 0x80) {
			i++;
			continue;
		}
		size_t n;
		uint32_t cp, min;
		if ((b & 0xE0) == 0xC0) { n = 1; cp = b & 0x1F; min = 0x80; }
		else if ((b & 0xF0) == 0xE0) { n = 2; cp = b & 0x0F; min = 0x800; }
		else if ((b & 0xF8) == 0xF0) { n = 3; cp = b & 0x07; min = 0x10000; }
		else return false;
		if (len - i - 1 < n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += n + 1;
	}
	return true;
}

static bool is_hexup(int c) { return is_digit(c) || (c >= 'A' && c <= 'F'); }

bool smtp_xtext_valid(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '+') {
			if (len - i < 3 || !is_hexup(s[i + 1]) || !is_hexup(s[i + 2]))
				return false;
			i += 2;
		} else if (c < 33 || c > 126 || c == '=') {
			return false;
		}
	}
	return true;
}

int smtp_xtext_encode(const char *s, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		bool plain = ch >= 33 && ch <= 126 && ch != '+' && ch != '=';
		if (o + (plain ? 1 : 3) >= cap)
			return -1;
		if (plain) {
			out[o++] = (char)ch;
		} else {
			out[o++] = '+';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		}
	}
	if (o >= cap)
		return -1;
	out[o] = '\0';
	return (int)o;
}

/*
 * Domain (sub-domain *("." sub-domain)) or address literal at p[0..n).
 * Stops at the first octet that cannot continue it; *used gets its length.
 * Returns false on bad syntax. Non-ASCII octets (U-labels) set *utf8.
 */
static bool parse_domain(const char *p, size_t n, size_t *used, bool *literal, bool *utf8)
{
	size_t i = 0;
	*literal = false;
	if (n > 0 && p[0] == '[') {
		const char *end = memchr(p, ']', n);
		if (end == NULL)
			return false;
		size_t ll = (size_t)(end - p) - 1;
		char tmp[64];
		if (ll == 0 || ll >= sizeof(tmp))
			return false;
		memcpy(tmp, p + 1, ll);
		tmp[ll] = '\0';
		unsigned char buf[16];
		if (ll > 5 && ieq(tmp, 5, "IPv6:")) {
			if (inet_pton(AF_INET6, tmp + 5, buf) != 1)
				return false;
		} else if (inet_pton(AF_INET, tmp, buf) != 1) {
			return false;
		}
		*literal = true;
		*used = ll + 2;
		return true;
	}
	for (;;) {
		/* one label: let-dig [ldh-str], octets >= 0x80 allowed (U-label) */
		size_t start = i;
		while (i < n) {
			unsigned char c = (unsigned char)p[i];
			if (c >= 0x80)
				*utf8 = true;
			else if (!is_letdig(c) && c != '-')
				break;
			i++;
		}
		size_t ll = i - start;
		if (ll == 0 || ll > 63 || p[start] == '-' || p[i - 1] == '-')
			return false;
		if (i < n && p[i] == '.' && i + 1 < n &&
		    (is_letdig(p[i + 1]) || (unsigned char)p[i + 1] >= 0x80)) {
			i++;
			continue;
		}
		break;
	}
	*used = i;
	return true;
}

/*
 * Path "<...>" at p[0..n). On success *used is its length (incl. ">").
 */
static enum smtp_perr parse_path(struct smtp_cmd *c, const char *p, size_t n, size_t *used)
{
	enum smtp_perr bad = c->verb == SMTP_V_MAIL ? SMTP_PE_SENDER : SMTP_PE_RCPT;
	struct smtp_path *pa = &c->path;
	size_t i = 1;
	bool lit = false, u8 = false;

	if (n < 2 || p[0] != '<')
		return bad;
	if (p[1] == '>') {
		if (c->verb != SMTP_V_MAIL)
			return bad;
		pa->null = true;
		*used = 2;
		return SMTP_PE_OK;
	}
	/* RFC 5321 4.1.1.3: "RCPT TO:<Postmaster>", the only domainless path */
	if (c->verb == SMTP_V_RCPT && n >= 12 && p[11] == '>' && ieq(p + 1, 10, "postmaster")) {
		pa->postmaster = true;
		memcpy(pa->local, p + 1, 10);
		pa->local[10] = '\0';
		memcpy(pa->addr, p + 1, 10);
		pa->addr[10] = '\0';
		*used = 12;
		return SMTP_PE_OK;
	}
	/* source route: "@dom" *("," "@dom") ":", accepted and ignored */
	if (p[i] == '@') {
		for (;;) {
			size_t du;
			i++;
			if (!parse_domain(p + i, n - i, &du, &lit, &u8))
				return bad;
			i += du;
			if (i < n && p[i] == ',' && i + 1 < n && p[i + 1] == '@') {
				i++;
				continue;
			}
			if (i >= n || p[i] != ':')
				return bad;
			i++;
			break;
		}
	}
	/* local part */
	size_t ls = i;
	if (i < n && p[i] == '"') {
		i++;
		for (;;) {
			if (i >= n)
				return bad;
			unsigned char ch = (unsigned char)p[i];
			if (ch == '"')
				break;
			if (ch == '\\') {
				if (i + 1 >= n || (unsigned char)p[i + 1] < 32 ||
				    (unsigned char)p[i + 1] > 126)
					return bad;
				i += 2;
				continue;
			}
			if (ch >= 0x80)
				u8 = true;
			else if (ch < 32 || ch > 126)
				return bad;
			i++;
		}
		i++;	/* closing quote */
	} else {
		for (;;) {
			size_t as = i;
			while (i < n && (is_atext((unsigned char)p[i]) ||
					 (unsigned char)p[i] >= 0x80)) {
				if ((unsigned char)p[i] >= 0x80)
					u8 = true;
				i++;
			}
			if (i == as)
				return bad;
			if (i < n && p[i] == '.') {
				i++;
				continue;
			}
			break;
		}
	}
	size_t llen = i - ls;
	if (i >= n || p[i] != '@')
		return bad;
	i++;
	size_t ds = i, du;
	if (!parse_domain(p + i, n - i, &du, &lit, &u8))
		return bad;
	i += du;
	if (i >= n || p[i] != '>')
		return bad;
	i++;
	if (llen > SMTP_LOCAL_MAX || du > SMTP_DOMAIN_MAX || i > SMTP_PATH_MAX)
		return SMTP_PE_PATHLEN;
	if (u8 && !smtp_utf8_valid((const uint8_t *)p + ls, ds + du - ls))
		return bad;
	memcpy(pa->local, p + ls, llen);
	pa->local[llen] = '\0';
	memcpy(pa->domain, p + ds, du);
	pa->domain[du] = '\0';
	memcpy(pa->addr, p + ls, ds + du - ls);
	pa->addr[ds + du - ls] = '\0';
	pa->literal = lit;
	pa->utf8 = u8;
	*used = i;
	return SMTP_PE_OK;
}

static bool parse_u64(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	if (n == 0 || n > 20)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return false;
		uint64_t d = (uint64_t)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/* NOTIFY=NEVER | SUCCESS,FAILURE,DELAY (any non-empty set, no repeats) */
static bool parse_notify(const char *v, size_t n, uint8_t *bits)
{
	uint8_t b = 0;
	size_t i = 0;
	if (ieq(v, n, "NEVER")) {
		*bits = SMTP_NOTIFY_NEVER;
		return true;
	}
	while (i < n) {
		const char *comma = memchr(v + i, ',', n - i);
		size_t wl = comma ? (size_t)(comma - (v + i)) : n - i;
		uint8_t one;
		if (ieq(v + i, wl, "SUCCESS")) one = SMTP_NOTIFY_SUCCESS;
		else if (ieq(v + i, wl, "FAILURE")) one = SMTP_NOTIFY_FAILURE;
		else if (ieq(v + i, wl, "DELAY")) one = SMTP_NOTIFY_DELAY;
		else return false;
		if (b & one)
			return false;
		b |= one;
		i += wl;
		if (comma) {
			i++;
			if (i >= n)
				return false;	/* trailing comma */
		}
	}
	*bits = b;
	return b != 0;
}

/* ORCPT=addr-type ";" xtext, addr-type "rfc822" or "utf-8" (RFC 6533) */
static bool parse_orcpt(const char *v, size_t n)
{
	const char *semi = memchr(v, ';', n);
	if (semi == NULL || n > SMTP_ORCPT_MAX)
		return false;
	size_t tl = (size_t)(semi - v);
	if (!ieq(v, tl, "rfc822") && !ieq(v, tl, "utf-8"))
		return false;
	return n - tl - 1 > 0 && smtp_xtext_valid(semi + 1, n - tl - 1);
}

/* One esmtp-param "KEY[=VALUE]" of a MAIL or RCPT line. */
static enum smtp_perr one_param(struct smtp_cmd *c, const char *k, size_t kl,
				const char *v, size_t vl, bool hasv, unsigned *seen)
{
	bool mail = c->verb == SMTP_V_MAIL;
	unsigned bit;
	for (size_t i = 0; i < kl; i++)
		if (!is_letdig(k[i]) && !(i > 0 && k[i] == '-'))
			return SMTP_PE_PARAM_BAD;
	for (size_t i = 0; i < vl; i++)
		if ((unsigned char)v[i] < 33 || (unsigned char)v[i] > 126 || v[i] == '=')
			return SMTP_PE_PARAM_BAD;
	if (hasv && vl == 0)
		return SMTP_PE_PARAM_BAD;

	if (mail && ieq(k, kl, "SIZE")) {
		bit = 1;
		if (!hasv || !parse_u64(v, vl, &c->size))
			return SMTP_PE_PARAM_BAD;
		c->has_size = true;
	} else if (mail && ieq(k, kl, "BODY")) {
		bit = 2;
		if (hasv && ieq(v, vl, "7BIT"))
			c->body = SMTP_BODY_7BIT;
		else if (hasv && ieq(v, vl, "8BITMIME"))
			c->body = SMTP_BODY_8BITMIME;
		else
			return SMTP_PE_PARAM_BAD;
	} else if (mail && ieq(k, kl, "SMTPUTF8")) {
		bit = 4;
		if (hasv)
			return SMTP_PE_PARAM_BAD;
		c->smtputf8 = true;
	} else if (mail && ieq(k, kl, "RET")) {
		bit = 8;
		if (hasv && ieq(v, vl, "FULL"))
			c->ret = SMTP_RET_FULL;
		else if (hasv && ieq(v, vl, "HDRS"))
			c->ret = SMTP_RET_HDRS;
		else
			return SMTP_PE_PARAM_BAD;
	} else if (mail && ieq(k, kl, "ENVID")) {
		bit = 16;
		if (!hasv || vl > SMTP_ENVID_MAX || !smtp_xtext_valid(v, vl))
			return SMTP_PE_PARAM_BAD;
		memcpy(c->envid, v, vl);
		c->envid[vl] = '\0';
	} else if (mail && ieq(k, kl, "XSLUICE")) {
		bit = 128;	/* a transferred message's queue state (xsluice.h) */
		if (!hasv || xsluice_parse(v, vl, &c->xsluice) < 0)
			return SMTP_PE_PARAM_BAD;
		c->has_xsluice = true;
	} else if (!mail && ieq(k, kl, "NOTIFY")) {
		bit = 32;
		if (!hasv || !parse_notify(v, vl, &c->notify))
			return SMTP_PE_PARAM_BAD;
	} else if (!mail && ieq(k, kl, "ORCPT")) {
		bit = 64;
		if (!hasv || !parse_orcpt(v, vl))
			return SMTP_PE_PARAM_BAD;
		memcpy(c->orcpt, v, vl);
		c->orcpt[vl] = '\0';
	} else {
		return SMTP_PE_PARAM_UNKNOWN;
	}
	if (*seen & bit)
		return SMTP_PE_PARAM_BAD;	/* duplicate */
	*seen |= bit;
	return SMTP_PE_OK;
}

static enum smtp_perr parse_params(struct smtp_cmd *c, const char *p, size_t n)
{
	unsigned seen = 0;
	size_t i = 0;
	while (i < n) {
		if (p[i] == ' ') {
			i++;
			continue;
		}
		size_t s = i;
		while (i < n && p[i] != ' ')
			i++;
		const char *eq = memchr(p + s, '=', i - s);
		size_t kl = eq ? (size_t)(eq - (p + s)) : i - s;
		if (kl == 0)
			return SMTP_PE_PARAM_BAD;
		const char *v = eq ? eq + 1 : p + i;
		size_t vl = eq ? (size_t)(p + i - v) : 0;
		enum smtp_perr e = one_param(c, p + s, kl, v, vl, eq != NULL, &seen);
		if (e != SMTP_PE_OK)
			return e;
	}
	return SMTP_PE_OK;
}

/* MAIL FROM:<path> [params] / RCPT TO:<path> [params]; p is after the verb's SP */
static enum smtp_perr parse_mail_rcpt(struct smtp_cmd *c, const char *p, size_t n)
{
	const char *kw = c->verb == SMTP_V_MAIL ? "FROM:" : "TO:";
	size_t kwl = strlen(kw), i, used;
	if (n < kwl || !ieq(p, kwl, kw))
		return SMTP_PE_SYNTAX;
	i = kwl;
	while (i < n && p[i] == ' ')
		i++;
	enum smtp_perr e = parse_path(c, p + i, n - i, &used);
	if (e != SMTP_PE_OK)
		return e;
	i += used;
	if (i < n && p[i] != ' ')
		return c->verb == SMTP_V_MAIL ? SMTP_PE_SENDER : SMTP_PE_RCPT;
	for (size_t k = i; k < n; k++)
		if ((unsigned char)p[k] >= 0x80)
			return SMTP_PE_PARAM_BAD;
	return parse_params(c, p + i, n - i);
}

enum smtp_perr smtp_parse_line(const char *line, size_t len, struct smtp_cmd *c)
{
	memset(c, 0, sizeof(*c));
	if (len > SMTP_CMD_MAX - 2)
		return fail(c, SMTP_PE_SYNTAX);
	bool eight = false;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)line[i];
		if (ch < 32 || ch == 127)
			return fail(c, SMTP_PE_BADCHAR);
		if (ch >= 0x80)
			eight = true;
	}
	size_t vl = 0;
	while (vl < len && line[vl] != ' ')
		vl++;
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (ieq(line, vl, verbs[i].name))
			c->verb = verbs[i].verb;
	if (c->verb == SMTP_V_UNKNOWN) {
		/* RFC 5321 4.2.4: 502 for commands we know but do not offer */
		static const char *const known[] = {
			"EXPN", "TURN", "ATRN", "SEND", "SOML", "SAML", "BURL",
		};
		for (size_t i = 0; !eight && i < sizeof(known) / sizeof(known[0]); i++)
			if (ieq(line, vl, known[i]))
				return fail(c, SMTP_PE_NOTIMPL);
		return fail(c, eight ? SMTP_PE_BADCHAR : SMTP_PE_UNKNOWN);
	}
	if (eight && c->verb != SMTP_V_MAIL && c->verb != SMTP_V_RCPT)
		return fail(c, SMTP_PE_BADCHAR);

	/* the argument: after one SP; trailing spaces dropped */
	const char *a = line + vl;
	size_t an = len - vl;
	if (an > 0) {
		a++;
		an--;
	}
	while (an > 0 && a[an - 1] == ' ')
		an--;
	/* leading spaces tolerated except for MAIL/RCPT (checked there) */
	const char *t = a;
	size_t tn = an;
	while (tn > 0 && *t == ' ') {
		t++;
		tn--;
	}

	enum smtp_perr e = SMTP_PE_OK;
	switch (c->verb) {
	case SMTP_V_EHLO:
	case SMTP_V_HELO:
		if (tn == 0 || memchr(t, ' ', tn) != NULL || tn > SMTP_DOMAIN_MAX)
			e = SMTP_PE_SYNTAX;
		else
			memcpy(c->arg, t, tn);
		break;
	case SMTP_V_DATA:
	case SMTP_V_RSET:
	case SMTP_V_QUIT:
	case SMTP_V_STARTTLS:
		if (tn != 0)
			e = SMTP_PE_SYNTAX;
		break;
	case SMTP_V_ETRN:	/* RFC 1985: a node, "@domain" or "#queue" */
	case SMTP_V_AUTH:	/* RFC 4954: mechanism [initial-response] */
	case SMTP_V_VRFY:
		if (tn == 0)
			e = SMTP_PE_SYNTAX;
		/* fallthrough */
	case SMTP_V_NOOP:
	case SMTP_V_HELP:
		memcpy(c->arg, t, tn);
		break;
	case SMTP_V_BDAT: {
		const char *sp = memchr(t, ' ', tn);
		size_t nl = sp ? (size_t)(sp - t) : tn;
		if (!parse_u64(t, nl, &c->bdat_size)) {
			e = SMTP_PE_SYNTAX;
		} else if (sp != NULL) {
			const char *l = sp;
			size_t ln = tn - nl;
			while (ln > 0 && *l == ' ') {
				l++;
				ln--;
			}
			if (ieq(l, ln, "LAST"))
				c->bdat_last = true;
			else
				e = SMTP_PE_SYNTAX;
		}
		break;
	}
	case SMTP_V_MAIL:
	case SMTP_V_RCPT:
		e = parse_mail_rcpt(c, t, tn);
		break;
	default:
		e = SMTP_PE_UNKNOWN;
	}
	if (e != SMTP_PE_OK)
		return fail(c, e);
	return SMTP_PE_OK;
}

bool smtp_mailbox_valid(const char *addr)
{
	struct smtp_cmd c;
	char line[SMTP_CMD_MAX];
	int n = snprintf(line, sizeof(line), "RCPT TO:<%s>", addr);

	if (n < 0 || (size_t)n >= sizeof(line) || addr[0] == '@')
		return false;	/* too long, or a source route */
	return smtp_parse_line(line, (size_t)n, &c) == SMTP_PE_OK && !c.path.postmaster &&
	       !c.path.utf8 && strcmp(c.path.addr, addr) == 0;
}
