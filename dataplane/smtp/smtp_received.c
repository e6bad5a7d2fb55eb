/*
 * smtp_received.c - Received: header and RFC 5322 date formatting.
 */
#include "dataplane/smtp/smtp_received.h"

#include <string.h>

const char *smtp_received_proto(bool esmtp, bool tls, bool auth, bool utf8)
{
	static const char *const names[8] = {
		"ESMTP", "ESMTPA", "ESMTPS", "ESMTPSA",
		"UTF8SMTP", "UTF8SMTPA", "UTF8SMTPS", "UTF8SMTPSA",
	};
	if (!esmtp)
		return "SMTP";
	return names[(utf8 ? 4 : 0) | (tls ? 2 : 0) | (auth ? 1 : 0)];
}

/*
 * Civil date from days since 1970-01-01 (H. Hinnant's days_from_civil
 * inverse). Used instead of gmtime_r(), which takes glibc's tz lock and may
 * read /etc/localtime on first use: not for a poll-mode core.
 */
static void civil(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	uint64_t doe = (uint64_t)(z - era * 146097);
	uint64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	uint64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	uint64_t mp = (5 * doy + 2) / 153;
	*d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	*m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* Append the decimal digits of v, at least width of them (zero-padded). */
static char *put_dec(char *p, uint64_t v, unsigned width)
{
	char tmp[20];
	unsigned n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v && n < sizeof(tmp));
	while (n < width && n < sizeof(tmp))
		tmp[n++] = '0';
	while (n)
		*p++ = tmp[--n];
	return p;
}

/* Formatted by hand, not snprintf: it runs once per accepted message. */
size_t smtp_date_format(char *buf, size_t cap, uint64_t unix_s)
{
	static const char wd[7][4] = { "Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed" };
	static const char mo[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					"Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	uint64_t days = unix_s / 86400, sec = unix_s % 86400;
	int64_t y;
	unsigned m, d;
	char tmp[SMTP_DATE_MAX], *p = tmp;
	if (days > 100000000ull)
		return 0;	/* far beyond any real clock: y stays below 10^6 */
	civil((int64_t)days, &y, &m, &d);
	memcpy(p, wd[days % 7], 3);
	p += 3;
	*p++ = ',';
	*p++ = ' ';
	p = put_dec(p, d, 1);
	*p++ = ' ';
	memcpy(p, mo[m - 1], 3);
	p += 3;
	*p++ = ' ';
	p = put_dec(p, (uint64_t)y, 4);
	*p++ = ' ';
	p = put_dec(p, sec / 3600, 2);
	*p++ = ':';
	p = put_dec(p, sec / 60 % 60, 2);
	*p++ = ':';
	p = put_dec(p, sec % 60, 2);
	memcpy(p, " +0000", 6);
	p += 6;
	size_t n = (size_t)(p - tmp);
	if (n >= cap)
		return 0;
	memcpy(buf, tmp, n);
	buf[n] = '\0';
	return n;
}

struct out {
	char *b;
	size_t cap, len;
	bool over;
};

/* Append s as it is (no format: it runs once per accepted message). */
static void put(struct out *o, const char *s)
{
	size_t n = strlen(s);
	if (o->over)
		return;
	if (n >= o->cap - o->len) {
		o->over = true;
		return;
	}
	memcpy(o->b + o->len, s, n + 1);
	o->len += n;
}

/* Append s as it is, at most max octets of it. */
static void put_raw(struct out *o, const char *s, size_t max)
{
	size_t n = strnlen(s, max);
	if (o->over)
		return;
	if (n >= o->cap - o->len) {
		o->over = true;
		return;
	}
	memcpy(o->b + o->len, s, n);
	o->len += n;
	o->b[o->len] = '\0';
}

/* Append s (at most max octets) with comment-breaking characters replaced. */
static void put_clean(struct out *o, const char *s, size_t max)
{
	for (size_t i = 0; s[i] && i < max && !o->over; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 32 || c > 126 || c == '(' || c == ')' || c == '\\')
			c = '_';
		if (o->len + 1 >= o->cap) {
			o->over = true;
			return;
		}
		o->b[o->len++] = (char)c;
		o->b[o->len] = '\0';
	}
}

size_t smtp_received_format(char *buf, size_t cap, const struct smtp_received_info *ri)
{
	struct out o = { buf, cap, 0, cap == 0 };
	char date[SMTP_DATE_MAX];
	if (cap == 0 || smtp_date_format(date, sizeof(date), ri->when) == 0)
		return 0;
	buf[0] = '\0';
	put(&o, "Received: from ");
	put_clean(&o, ri->helo ? ri->helo : "", 255);
	put(&o, " (");
	put_clean(&o, ri->rdns && ri->rdns[0] ? ri->rdns : "unknown", 255);
	put(&o, " [");
	put_clean(&o, ri->ip ? ri->ip : "", 51);	/* "IPv6:" + 45 */
	put(&o, "])\r\n");
	if (ri->tls != NULL && ri->tls[0]) {
		put(&o, "\t(using ");
		put_clean(&o, ri->tls, 200);
		put(&o, ")\r\n");
	}
	put(&o, "\tby ");
	put_clean(&o, ri->hostname ? ri->hostname : "", 255);
	put(&o, " (Sluice) with ");
	put(&o, smtp_received_proto(ri->esmtp, ri->tls_active, ri->auth, ri->utf8));
	if (ri->id != NULL && ri->id[0]) {
		put(&o, " id ");
		put_clean(&o, ri->id, 64);
	}
	if (ri->rcpt != NULL) {
		put(&o, "\r\n\tfor <");
		put_raw(&o, ri->rcpt, 256);
		put(&o, ">; ");
	} else {
		put(&o, ";\r\n\t");
	}
	put(&o, date);
	put(&o, "\r\n");
	return o.over ? 0 : o.len;
}
