/*
 * xsluice.c - the XSLUICE MAIL parameter: format and parse. See xsluice.h.
 */
#include "dataplane/smtp/xsluice.h"

#include "dataplane/smtp/smtp_parse.h"

#include <string.h>

static bool bounds_ok(const struct xsluice *x)
{
	return x->arrival >= 1 && x->arrival <= XSLUICE_TIME_MAX && x->expiry <= XSLUICE_TIME_MAX &&
	       x->next_try <= XSLUICE_TIME_MAX && x->arrival <= x->expiry &&
	       x->arrival <= x->next_try && x->attempts <= XSLUICE_ATTEMPTS_MAX;
}

/* Append decimal v at out[*o]; false if it does not fit (room for NUL kept). */
static bool put_u64(char *out, size_t cap, size_t *o, uint64_t v)
{
	char tmp[21];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	if (*o + n >= cap)
		return false;
	while (n)
		out[(*o)++] = tmp[--n];
	return true;
}

int xsluice_format(const struct xsluice *x, char *out, size_t cap)
{
	const uint64_t v[4] = { x->arrival, x->attempts, x->next_try, x->expiry };
	size_t o = 0;

	if (!bounds_ok(x) || cap == 0)
		return -1;
	for (unsigned i = 0; i < 4; i++) {
		if (i) {
			if (o + 1 >= cap)
				return -1;
			out[o++] = '.';
		}
		if (!put_u64(out, cap, &o, v[i]))
			return -1;
	}
	if (x->last_error[0]) {
		char err[XSLUICE_ERR_MAX + 1];
		size_t n = 0;
		int w;

		if (o + 1 >= cap)
			return -1;
		out[o++] = '.';
		/* cut, and what is not printable becomes '?' */
		for (; n < XSLUICE_ERR_MAX && x->last_error[n]; n++) {
			unsigned char ch = (unsigned char)x->last_error[n];
			err[n] = ch < 32 || ch > 126 ? '?' : (char)ch;
		}
		err[n] = '\0';
		w = smtp_xtext_encode(err, out + o, cap - o);
		if (w < 0)
			return -1;
		o += (size_t)w;
	}
	out[o] = '\0';
	return (int)o;
}

/* A decimal number at v[*i..len), up to the next '.' or the end: no sign,
 * no leading zero (but "0"), at most 20 digits, no overflow. */
static bool get_u64(const char *v, size_t len, size_t *i, uint64_t *out)
{
	size_t start = *i;
	uint64_t n = 0;

	while (*i < len && v[*i] != '.') {
		unsigned d = (unsigned char)v[*i] - '0';
		if (d > 9 || n > (UINT64_MAX - d) / 10)
			return false;
		n = n * 10 + d;
		(*i)++;
	}
	if (*i == start || (*i - start > 1 && v[start] == '0'))
		return false;
	*out = n;
	return true;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;	/* RFC 3461: upper-case hex only */
}

int xsluice_parse(const char *v, size_t len, struct xsluice *x)
{
	uint64_t n[4];
	size_t i = 0, o = 0;

	if (len == 0 || len > XSLUICE_PARAM_MAX)
		return -1;
	for (unsigned k = 0; k < 4; k++) {
		if (k) {
			if (i >= len || v[i] != '.')
				return -1;
			i++;
		}
		if (!get_u64(v, len, &i, &n[k]))
			return -1;
	}
	if (n[1] > XSLUICE_ATTEMPTS_MAX)
		return -1;
	x->arrival = n[0];
	x->attempts = (uint32_t)n[1];
	x->next_try = n[2];
	x->expiry = n[3];
	x->last_error[0] = '\0';
	if (i < len) {	/* ".ERROR", xtext, not empty */
		if (v[i] != '.' || ++i == len)
			return -1;
		while (i < len) {
			unsigned char ch = (unsigned char)v[i];
			if (ch == '+') {
				int hi, lo;
				if (i + 3 > len)
					return -1;
				hi = hexval(v[i + 1]);
				lo = hexval(v[i + 2]);
				if (hi < 0 || lo < 0)
					return -1;
				ch = (unsigned char)(hi * 16 + lo);
				i += 3;
			} else if (ch < 33 || ch > 126 || ch == '=') {
				return -1;
			} else {
				i++;
			}
			if (ch < 32 || ch > 126 || o >= XSLUICE_ERR_MAX)
				return -1;
			x->last_error[o++] = (char)ch;
		}
		x->last_error[o] = '\0';
	}
	return bounds_ok(x) ? 0 : -1;
}
