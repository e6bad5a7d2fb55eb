/*
 * smtp_sasl.c - base64 and the PLAIN message for SMTP AUTH. See smtp_sasl.h.
 */
#include "dataplane/smtp/smtp_sasl.h"

#include <string.h>

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int sasl_b64_decode(const char *in, size_t len, uint8_t *out, size_t cap)
{
	size_t o = 0;

	if (len % 4)
		return -1;
	for (size_t i = 0; i < len; i += 4) {
		int v[4], pad = 0;
		uint32_t x;

		for (int k = 0; k < 4; k++) {
			char c = in[i + k];
			if (c == '=' && i + 4 == len && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			if (pad || (v[k] = b64_value(c)) < 0)
				return -1;	/* a char after '=', or not base64 */
		}
		x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
		    (uint32_t)v[3];
		if (o + 3 - (size_t)pad > cap)
			return -1;
		out[o++] = (uint8_t)(x >> 16);
		if (pad < 2)
			out[o++] = (uint8_t)(x >> 8);
		if (pad < 1)
			out[o++] = (uint8_t)x;
	}
	return (int)o;
}

static int name_ok(const uint8_t *p, size_t n)
{
	if (n == 0 || n > SMTP_AUTH_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (p[i] <= ' ' || p[i] == 0x7f || p[i] == ':')
			return 0;
	return 1;
}

int sasl_plain_split(const uint8_t *msg, size_t len, char name[SMTP_AUTH_NAME_MAX + 1],
		     char pass[SMTP_AUTH_PASS_MAX + 1], size_t *pass_len)
{
	const uint8_t *z1 = memchr(msg, 0, len), *z2, *cid, *pw;
	size_t zn, cn, pn;

	if (!z1)
		return -1;
	zn = (size_t)(z1 - msg);
	cid = z1 + 1;
	z2 = memchr(cid, 0, len - zn - 1);
	if (!z2)
		return -1;
	cn = (size_t)(z2 - cid);
	pw = z2 + 1;
	pn = len - zn - 1 - cn - 1;
	if (!name_ok(cid, cn) || pn > SMTP_AUTH_PASS_MAX || memchr(pw, 0, pn))
		return -1;
	if (zn && (zn != cn || memcmp(msg, cid, cn) != 0))
		return -1;
	memcpy(name, cid, cn);
	name[cn] = '\0';
	memcpy(pass, pw, pn);
	pass[pn] = '\0';
	*pass_len = pn;
	return 0;
}

int sasl_login_part(const uint8_t *msg, size_t len, char *out, size_t max)
{
	if (len > max || memchr(msg, 0, len))
		return -1;
	memcpy(out, msg, len);
	out[len] = '\0';
	return 0;
}
