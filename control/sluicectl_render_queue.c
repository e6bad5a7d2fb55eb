/*
 * sluicectl_render_queue.c - how sluicectl shows the queue commands'
 * results (control/queue_cmd.h, control/plane.h): queue list as postqueue
 * -p prints it, queue summary as qshape with Postfix's active/deferred/hold
 * columns, queue stat as qmail-qstat, queue show as postcat and imsimta qm
 * history together, and the changes (hold, release, delete, suspend,
 * resume, route show) in a line each.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control/sluicectl_render.h"

static const char *text(const json_t *v, char *buf, size_t n)
{
	return ctl_render_scalar(v, buf, n);
}

static long long num(const json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

/* unix seconds as "Mon Nov 30 10:20:01" (local time), "-" for 0 */
static const char *when(long long t, char *buf, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || !localtime_r(&tt, &tm) || !strftime(buf, n, "%a %b %e %H:%M:%S", &tm))
		snprintf(buf, n, "-");
	return buf;
}

/* seconds as "3d4h", "2h10m", "5m", "40s" */
static const char *age(long long s, char *buf, size_t n)
{
	if (s < 0)
		s = 0;
	if (s >= 86400)
		snprintf(buf, n, "%lldd%lldh", s / 86400, s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(buf, n, "%lldh%lldm", s / 3600, s % 3600 / 60);
	else if (s >= 60)
		snprintf(buf, n, "%lldm", s / 60);
	else
		snprintf(buf, n, "%llds", s);
	return buf;
}

/* ---- queue list ------------------------------------------------------------------------- */

void ctl_render_queue_list_page(FILE *out, const json_t *result, bool first,
				struct ctl_list_totals *t)
{
	const json_t *msgs = json_object_get(result, "messages"), *m, *r;
	char id[32], st[4], sender[600], addr[600], reply[700], tbuf[40];
	size_t i, k;

	if (first)
		fprintf(out, "-Queue ID-     --Size-- ----Arrival Time---- -Sender/Recipient-------\n");
	json_array_foreach(msgs, i, m) {
		text(json_object_get(m, "id"), id, sizeof(id));
		text(json_object_get(m, "status"), st, sizeof(st));
		text(json_object_get(m, "sender"), sender, sizeof(sender));
		fprintf(out, "%-13s%c %8lld %20.20s  %s\n", id, st[0] ? st[0] : ' ', num(m, "size"),
			when(num(m, "arrival"), tbuf, sizeof(tbuf)), sender[0] ? sender : "MAILER-DAEMON");
		text(json_object_get(m, "sasl_username"), addr, sizeof(addr));
		if (addr[0])
			fprintf(out, "%46ssasl_username=%s\n", "", addr);
		text(json_object_get(m, "hold_reason"), reply, sizeof(reply));
		if (reply[0])
			fprintf(out, "%46s(held: %s)\n", "", reply);
		text(json_object_get(m, "last_error"), reply, sizeof(reply));
		if (num(m, "attempts") > 0)
			fprintf(out, "%46sattempts=%lld%s%s\n", "", num(m, "attempts"),
				reply[0] ? " last_error=" : "", reply);
		json_array_foreach(json_object_get(m, "recipients"), k, r) {
			text(json_object_get(r, "reply"), reply, sizeof(reply));
			if (reply[0])
				fprintf(out, "%46s(%s)\n", "", reply);
			fprintf(out, "%46s%s\n", "", text(json_object_get(r, "addr"), addr,
							    sizeof(addr)));
		}
		fputc('\n', out);
		t->messages++;
		t->bytes += (uint64_t)num(m, "size");
	}
}

void ctl_render_queue_list_end(FILE *out, const struct ctl_list_totals *t)
{
	if (!t->messages)
		fprintf(out, "Mail queue is empty (for this selection)\n");
	else
		fprintf(out, "-- %llu Kbytes in %llu Request%s.\n",
			(unsigned long long)((t->bytes + 1023) / 1024),
			(unsigned long long)t->messages, t->messages == 1 ? "" : "s");
}

static void render_queue_list(FILE *out, const json_t *result, int argc, char **argv)
{
	struct ctl_list_totals t = { 0, 0 };
	char next[64];

	ctl_render_queue_list_page(out, result, true, &t);
	ctl_render_queue_list_end(out, &t);
	if (json_is_string(json_object_get(result, "next")))
		fprintf(out, "(more: --after %s)\n",
			text(json_object_get(result, "next"), next, sizeof(next)));
}

/* ---- queue summary ------------------------------------------------------------------------- */

static void summary_row(FILE *out, const json_t *row, const char *key, long long now)
{
	char name[300], size[24], old[24];
	long long b = num(row, "bytes"), oldest = num(row, "oldest");
	const json_t *ages = json_object_get(row, "age"), *a;
	size_t i;

	if (b >= 10ll << 20)
		snprintf(size, sizeof(size), "%lldM", b >> 20);
	else if (b >= 10ll << 10)
		snprintf(size, sizeof(size), "%lldK", b >> 10);
	else
		snprintf(size, sizeof(size), "%lld", b);
	fprintf(out, "%30.30s %7lld %6lld %6lld %6lld %6lld %6s %7s",
		text(json_object_get(row, key), name, sizeof(name)), num(row, "total"),
		num(row, "incoming"), num(row, "active"), num(row, "deferred"), num(row, "held"),
		size, oldest ? age(now - oldest, old, sizeof(old)) : "-");
	json_array_foreach(ages, i, a)
		fprintf(out, " %5lld", (long long)json_integer_value(a));
	fputc('\n', out);
}

static void render_queue_summary(FILE *out, const json_t *result, int argc, char **argv)
{
	const json_t *rows = json_object_get(result, "domains"), *r, *bk;
	const char *by = json_string_value(json_object_get(result, "by"));
	const char *key = by && strcmp(by, "sender-domain") == 0 ? "sender_domain" : "domain";
	long long now = num(result, "now");
	size_t i;

	fprintf(out, "%30s %7s %6s %6s %6s %6s %6s %7s", strcmp(key, "domain") == 0 ?
		"DESTINATION" : "SENDER DOMAIN", "T", "INCOM", "ACTIVE", "DEFER", "HOLD", "SIZE",
		"OLDEST");
	json_array_foreach(json_object_get(result, "buckets"), i, bk)
		fprintf(out, " %5lld", (long long)json_integer_value(bk));
	fprintf(out, " %5s\n", "more");
	summary_row(out, json_object_get(result, "total"), key, now);
	json_array_foreach(rows, i, r)
		summary_row(out, r, key, now);
	if ((long long)json_array_size(rows) < num(result, "rows"))
		fprintf(out, "(%zu of %lld rows: --top)\n", json_array_size(rows),
			num(result, "rows"));
	if (json_is_true(json_object_get(result, "truncated")))
		fprintf(out, "(too many sender domains: the rest are not counted)\n");
}

static void render_queue_stat(FILE *out, const json_t *result, int argc, char **argv)
{
	fprintf(out, "messages in queue: %lld\n", num(result, "messages"));
	fprintf(out, "messages in queue but not yet tried: %lld\n", num(result, "untried"));
	fprintf(out, "messages held: %lld\n", num(result, "held"));
	fprintf(out, "bytes: %lld in %lld part(s) over %lld destination domain(s)\n",
		num(result, "bytes"), num(result, "parts"), num(result, "domains"));
}

/* ---- queue show -------------------------------------------------------------------------- */

/* A text of many lines (headers, the message), indented, with control
 * characters (C0, DEL, C1) as '?' so nothing reaches the terminal as an
 * escape; a CR before the LF dropped. The text is UTF-8 (jansson's). */
static void block(FILE *out, const json_t *v)
{
	const unsigned char *s = (const unsigned char *)json_string_value(v);
	bool bol = true;

	for (; s && *s; s++) {
		if (bol)
			fputs("  ", out);
		bol = false;
		if (*s == '\n') {
			fputc('\n', out);
			bol = true;
		} else if (*s == '\r' && s[1] == '\n') {
			continue;
		} else if (*s < 0x20 || *s == 0x7f) {
			fputc(*s == '\t' ? '\t' : '?', out);
		} else if (*s == 0xc2 && s[1] >= 0x80 && s[1] <= 0x9f) {
			fputc('?', out);
			s++;
		} else {
			fputc(*s, out);
		}
	}
	if (!bol)
		fputc('\n', out);
}

static void render_queue_show(FILE *out, const json_t *result, int argc, char **argv)
{
	static const struct ctl_column rc[] = {
		{ "RECIPIENT", "addr" }, { "STATE", "state" }, { "TRIES", "attempts" },
		{ "DSN", "dsn" }, { "LAST REPLY", "reply" }, { NULL, NULL } };
	const json_t *h, *x;
	char a[700], b[700], tbuf[40];
	size_t i;

	fprintf(out, "*** ENVELOPE ***\n");
	fprintf(out, "queue id:   %s%s%s\n", text(json_object_get(result, "id"), a, sizeof(a)),
		json_is_true(json_object_get(result, "held")) ? " (held)" : "",
		json_is_true(json_object_get(result, "active")) ? " (in delivery)" : "");
	fprintf(out, "arrival:    %s\n", when(num(result, "arrival"), tbuf, sizeof(tbuf)));
	fprintf(out, "expires:    %s\n", when(num(result, "expiry"), tbuf, sizeof(tbuf)));
	fprintf(out, "size:       %lld\n", num(result, "size"));
	fprintf(out, "sender:     <%s>\n", text(json_object_get(result, "sender"), a, sizeof(a)));
	text(json_object_get(result, "client_name"), a, sizeof(a));
	fprintf(out, "client:     %s[%s] helo=%s\n", a[0] ? a : "unknown",
		text(json_object_get(result, "client_addr"), b, sizeof(b)),
		text(json_object_get(result, "helo"), tbuf, sizeof(tbuf)));
	text(json_object_get(result, "sasl_username"), a, sizeof(a));
	if (a[0])
		fprintf(out, "sasl:       method=%s username=%s\n",
			text(json_object_get(result, "sasl_method"), b, sizeof(b)), a);
	text(json_object_get(result, "hold_reason"), a, sizeof(a));
	if (a[0])
		fprintf(out, "held:       %s\n", a);
	fprintf(out, "attempts:   %lld", num(result, "attempts"));
	if (num(result, "prior_attempts") > 0)
		fprintf(out, " (%lld on the box it came from)", num(result, "prior_attempts"));
	fprintf(out, "\n");
	text(json_object_get(result, "last_error"), a, sizeof(a));
	if (a[0])
		fprintf(out, "last error: %s\n", a);
	fprintf(out, "\n*** RECIPIENTS ***\n");
	ctl_render_table(out, json_object_get(result, "recipients"), rc);
	fprintf(out, "\n*** HISTORY ***\n");
	h = json_object_get(result, "history");
	if (!json_array_size(h))
		fprintf(out, "  (no delivery attempt yet)\n");
	json_array_foreach(h, i, x)
		fprintf(out, "  %s  %-8s %s: %s\n", when(num(x, "time"), tbuf, sizeof(tbuf)),
			text(json_object_get(x, "state"), b, 16),
			text(json_object_get(x, "rcpt"), a, sizeof(a)),
			text(json_object_get(x, "reply"), b, sizeof(b)));
	fprintf(out, "\n*** HEADERS ***\n");
	block(out, json_object_get(result, "headers"));
	if (json_object_get(result, "body")) {
		fprintf(out, "\n*** MESSAGE ***\n");
		block(out, json_object_get(result, "body"));
	}
	if (json_is_true(json_object_get(result, "truncated")))
		fprintf(out, "(cut short)\n");
}

/* ---- changes ------------------------------------------------------------------------------ */

static void render_change(FILE *out, const json_t *result, int argc, char **argv)
{
	const char *verb = argv[0];
	const json_t *c = json_object_get(result, verb), *nf, *v;
	char id[32];
	size_t i;

	fprintf(out, "%s: %lld message(s)\n", strcmp(verb, "hold") == 0 ? "held" :
		strcmp(verb, "release") == 0 ? "released" : "deleted", num(c, "messages"));
	nf = json_object_get(c, "not_found");
	json_array_foreach(nf, i, v)
		fprintf(out, "%s: not in the queue\n", text(v, id, sizeof(id)));
}

static void render_suspend(FILE *out, const json_t *result, int argc, char **argv)
{
	static const struct ctl_column cols[] = {
		{ "DOMAIN", "domain" }, { "SINCE", "since" }, { "UNTIL", "until" }, { NULL, NULL } };
	const json_t *s = json_object_get(result, "suspend");
	char d[300], f[40];

	if (json_object_get(result, "suspended")) {
		if (!json_array_size(json_object_get(result, "suspended")))
			fprintf(out, "no domain is suspended\n");
		else
			ctl_render_table(out, json_object_get(result, "suspended"), cols);
		return;
	}
	text(json_object_get(s, "domain"), d, sizeof(d));
	if (num(s, "for"))
		fprintf(out, "%s: suspended for %s\n", d, age(num(s, "for"), f, sizeof(f)));
	else
		fprintf(out, "%s: suspended until `sluicectl resume %s`\n", d, d);
}

static void render_resume(FILE *out, const json_t *result, int argc, char **argv)
{
	const json_t *s = json_object_get(result, "resume");
	char d[300];

	fprintf(out, "%s: resumed, %lld message(s) made due\n",
		text(json_object_get(s, "domain"), d, sizeof(d)), num(s, "messages"));
}

static void render_route_show(FILE *out, const json_t *result, int argc, char **argv)
{
	static const struct ctl_column cols[] = {
		{ "DOMAIN", "domain" }, { "ROUTE", "route" }, { NULL, NULL } };
	const json_t *r = json_object_get(result, "routes");

	if (!json_array_size(r))
		fprintf(out, "no static route%s\n", argc > 2 ? " for it (relayhost or MX)" : "");
	else
		ctl_render_table(out, r, cols);
}

const struct ctl_renderer ctl_renderers_queue[] = {
	{ "queue", "list", render_queue_list },
	{ "queue", "summary", render_queue_summary },
	{ "queue", "stat", render_queue_stat },
	{ "queue", "show", render_queue_show },
	{ "hold", NULL, render_change },
	{ "release", NULL, render_change },
	{ "delete", NULL, render_change },
	{ "suspend", NULL, render_suspend },
	{ "resume", NULL, render_resume },
	{ "route", "show", render_route_show },
	{ NULL, NULL, NULL },
};
