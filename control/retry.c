/*
 * retry.c - retry schedules: parsing and checking. See retry.h.
 */
#include "control/retry.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* One duration: digits then s, m, h or d (no suffix: seconds). 0 or -1. */
static int parse_step(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0, mul = 1;
	size_t i = 0;

	if (len == 0 || !isdigit((unsigned char)s[0]))
		return -1;
	for (; i < len && isdigit((unsigned char)s[i]); i++) {
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > RETRY_STEP_MAX_S)
			return -1;
	}
	if (i < len) {
		if (i + 1 != len)
			return -1;
		switch (s[i]) {
		case 's': mul = 1; break;
		case 'm': mul = 60; break;
		case 'h': mul = 3600; break;
		case 'd': mul = 86400; break;
		default: return -1;
		}
	}
	*out = v * mul;
	return 0;
}

int retry_schedule_parse(const char *text, struct retry_schedule *out, char *err, size_t errlen)
{
	const char *p = text;

	memset(out, 0, sizeof(*out));
	while (*p == ' ' || *p == '\t')
		p++;
	if (strcasecmp(p, "exponential") == 0) {
		out->kind = RETRY_EXPONENTIAL;
		return 0;
	}
	if (strcasecmp(p, "quadratic") == 0) {
		out->kind = RETRY_QUADRATIC;
		return 0;
	}
	if (*p == '\0') {
		snprintf(err, errlen, "empty (exponential, quadratic, or a list like 5m,10m,1h)");
		return -1;
	}
	out->kind = RETRY_LIST;
	for (;;) {
		size_t len = strcspn(p, ", \t");
		uint64_t v;

		if (parse_step(p, len, &v) < 0 || v == 0 || v > RETRY_STEP_MAX_S) {
			snprintf(err, errlen, "'%.*s' is not a wait like 30s, 5m, 1h or 2d "
				 "(1 s .. 30 d); schedule is exponential, quadratic or a list",
				 (int)(len > 40 ? 40 : len), p);
			return -1;
		}
		if (out->nsteps == RETRY_STEPS_MAX) {
			snprintf(err, errlen, "more than %d waits in the list", RETRY_STEPS_MAX);
			return -1;
		}
		out->step_s[out->nsteps++] = (uint32_t)v;
		p += len;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			return 0;
		if (*p != ',') {
			snprintf(err, errlen, "expected ',' at '%.20s'", p);
			return -1;
		}
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
	}
}
