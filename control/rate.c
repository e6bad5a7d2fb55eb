/*
 * rate.c - GCRA rate limits: parsing and the take/peek decision. See rate.h.
 */
#include "control/rate.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define NS_SEC 1000000000ull

static const struct {
	const char *name;
	uint64_t ns;
} units[] = {
	{ "s", NS_SEC }, { "sec", NS_SEC }, { "second", NS_SEC },
	{ "m", 60 * NS_SEC }, { "min", 60 * NS_SEC }, { "minute", 60 * NS_SEC },
	{ "h", 3600 * NS_SEC }, { "hour", 3600 * NS_SEC },
	{ "d", 86400 * NS_SEC }, { "day", 86400 * NS_SEC },
};

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* Decimal digits into *out (at most 10 of them). Characters used, 0 if none. */
static size_t parse_num(const char *p, uint64_t *out)
{
	size_t i = 0;

	*out = 0;
	while (isdigit((unsigned char)p[i]) && i < 11)
		*out = *out * 10 + (uint64_t)(p[i++] - '0');
	return isdigit((unsigned char)p[i]) ? 0 : i;
}

static int fail(char *err, size_t errlen, const char *text, const char *why)
{
	snprintf(err, errlen, "'%.40s' is not a rate like 100/s, 20/min or 5/s burst 10: %s",
		 text, why);
	return -1;
}

int rate_parse(const char *text, struct rate_spec *out, char *err, size_t errlen)
{
	const char *p = skip_ws(text);
	uint64_t n, burst = 1, period = 0, t;
	size_t len;

	memset(out, 0, sizeof(*out));
	if (*p == '\0' || strncasecmp(p, "unlimited", 9) == 0) {
		if (*p && *skip_ws(p + 9) != '\0')
			return fail(err, errlen, text, "text after 'unlimited'");
		return 0;
	}
	len = parse_num(p, &n);
	if (len == 0)
		return fail(err, errlen, text, "no count");
	if (n == 0)
		return fail(err, errlen, text, "a count of 0 (leave it empty for no limit)");
	if (n > 1000000000)
		return fail(err, errlen, text, "a count above 1000000000");
	p = skip_ws(p + len);
	if (*p != '/')
		return fail(err, errlen, text, "no '/unit'");
	p = skip_ws(p + 1);
	len = 0;
	while (isalpha((unsigned char)p[len]))
		len++;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strlen(units[i].name) == len && strncasecmp(p, units[i].name, len) == 0)
			period = units[i].ns;
	if (period == 0)
		return fail(err, errlen, text, "the unit is s, min, h or d");
	p = skip_ws(p + len);
	if (strncasecmp(p, "burst", 5) == 0 && (p[5] == ' ' || p[5] == '\t')) {
		p = skip_ws(p + 5);
		len = parse_num(p, &burst);
		if (len == 0 || burst == 0 || burst > RATE_BURST_MAX)
			return fail(err, errlen, text, "burst is a count from 1 to 1000000");
		p = skip_ws(p + len);
	}
	if (*p != '\0')
		return fail(err, errlen, text, "unexpected text at the end");
	t = period / n;
	if (t < RATE_MIN_INTERVAL_NS)
		return fail(err, errlen, text, "faster than 1000000/s");
	if (burst > RATE_MAX_TOLERANCE_NS / t)
		return fail(err, errlen, text, "the burst spans more than 7 days");
	out->n = (uint32_t)n;
	out->burst = (uint32_t)burst;
	out->period_ns = period;
	return 0;
}

void rate_format(const struct rate_spec *s, char *buf, size_t len)
{
	const char *unit = s->period_ns == NS_SEC ? "s" : s->period_ns == 60 * NS_SEC ? "min"
			 : s->period_ns == 3600 * NS_SEC ? "h" : "d";

	if (s->n == 0)
		snprintf(buf, len, "unlimited");
	else if (s->burst > 1)
		snprintf(buf, len, "%u/%s burst %u", s->n, unit, s->burst);
	else
		snprintf(buf, len, "%u/%s", s->n, unit);
}

void rate_init(struct gcra *g, const struct rate_spec *s)
{
	memset(g, 0, sizeof(*g));
	if (s->n == 0)
		return;
	g->t_ns = s->period_ns / s->n;
	g->burst = s->burst ? s->burst : 1;
	g->tau_ns = g->t_ns * g->burst;
}

/* The TAT after taking n at now, or 0 when refused (*wait says how long). */
static uint64_t decide(const struct gcra *g, uint64_t now_ns, unsigned n, uint64_t *wait)
{
	uint64_t tat, new_tat;

	*wait = 0;
	if (g->t_ns == 0 || n == 0)
		return g->tat_ns > now_ns ? g->tat_ns : now_ns;
	if (n > g->burst) {
		*wait = RATE_NEVER;
		return 0;
	}
	tat = g->tat_ns > now_ns ? g->tat_ns : now_ns;
	new_tat = tat + (uint64_t)n * g->t_ns;		/* n * T <= tau: no overflow */
	if (new_tat - now_ns > g->tau_ns) {
		*wait = new_tat - g->tau_ns - now_ns;
		return 0;
	}
	return new_tat;
}

uint64_t rate_take(struct gcra *g, uint64_t now_ns, unsigned n)
{
	uint64_t wait, tat = decide(g, now_ns, n, &wait);

	if (wait == 0 && g->t_ns != 0)
		g->tat_ns = tat;
	return wait;
}

uint64_t rate_peek(const struct gcra *g, uint64_t now_ns, unsigned n)
{
	uint64_t wait;

	decide(g, now_ns, n, &wait);
	return wait;
}

uint64_t rate_idle_at(const struct gcra *g)
{
	return g->tat_ns;
}
