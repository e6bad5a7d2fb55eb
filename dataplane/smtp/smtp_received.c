/*
 * smtp_received.c - Received: header and RFC 5322 date formatting.
 */
#include "dataplane/smtp/smtp_received.h"

#include <stdarg.h>
#include <stdio.h>
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

size_t smtp_date_format(char *buf, size_t cap, uint64_t unix_s)
{
	static const char *const wd[] = { "Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed" };
	static const char *const mo[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	uint64_t days = unix_s / 86400, sec = unix_s % 86400;
	int64_t y;
	unsigned m, d;
	if (days > 100000000ull)
		return 0;	/* far beyond any real clock */
	civil((int64_t)days, &y, &m, &d);
	int n = snprintf(buf, cap, "%s, %u %s %04lld %02u:%02u:%02u +0000",
			 wd[days % 7], d, mo[m - 1], (long long)y,
			 (unsigned)(sec / 3600), (unsigned)(sec / 60 % 60), (unsigned)(sec % 60));
	if (n < 0 || (size_t)n >= cap)
		return 0;
	return (size_t)n;
}

struct out {
	char *b;
	size_t cap, len;
	bool over;
};

static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	if (o->over)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(o->b + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->cap - o->len) {
		o->over = true;
		return;
	}
	o->len += (size_t)n;
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
	put(&o, " (Sluice) with %s",
	    smtp_received_proto(ri->esmtp, ri->tls_active, ri->auth, ri->utf8));
	if (ri->id != NULL && ri->id[0]) {
		put(&o, " id ");
		put_clean(&o, ri->id, 64);
	}
	if (ri->rcpt != NULL)
		put(&o, "\r\n\tfor <%.256s>; %s\r\n", ri->rcpt, date);
	else
		put(&o, ";\r\n\t%s\r\n", date);
	return o.over ? 0 : o.len;
}
