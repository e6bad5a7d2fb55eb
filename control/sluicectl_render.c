/*
 * sluicectl_render.c - sluicectl's renderers: each command's result as text
 * for people, and the helpers they share. See sluicectl_render.h.
 */
#include "control/sluicectl_render.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define COL_MAX 60	/* widest table column, in characters */
#define WRAP 76		/* help text is wrapped at this width */

/* ---- helpers ----------------------------------------------------------------------- */

const json_t *ctl_render_get(const json_t *v, const char *path)
{
	char key[128];

	while (v && *path) {
		size_t n = strcspn(path, ".");
		if (n >= sizeof(key))
			return NULL;
		memcpy(key, path, n);
		key[n] = '\0';
		v = json_object_get(v, key);
		path += n + (path[n] == '.');
	}
	return v;
}

/* Length of the UTF-8 sequence led by byte b (1 for anything else). */
static size_t seq_len(unsigned char b)
{
	return b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
}

/* Copy s into buf for a terminal: C0 and C1 controls and DEL become '?';
 * cut at a character boundary to fit n. */
static void terminal_text(const char *s, char *buf, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t o = 0;

	while (*u) {
		size_t k = seq_len(*u);
		for (size_t i = 1; i < k; i++)
			if (!u[i]) {	/* a sequence cut short (not from jansson) */
				k = 1;
				break;
			}
		if (o + k + 1 > n)
			break;
		if (*u < 0x20 || *u == 0x7f || (k == 2 && *u == 0xc2 && u[1] >= 0x80 &&
						 u[1] <= 0x9f)) {
			buf[o++] = '?';
			u += k;
			continue;
		}
		for (size_t i = 0; i < k; i++)
			buf[o++] = (char)u[i];
		u += k;
	}
	buf[o] = '\0';
}

const char *ctl_render_scalar(const json_t *v, char *buf, size_t n)
{
	char *dump;

	if (!n)
		return buf;
	switch (json_typeof(v)) {
	case JSON_STRING:
		terminal_text(json_string_value(v), buf, n);
		break;
	case JSON_INTEGER:
		snprintf(buf, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL:
		snprintf(buf, n, "%.15g", json_real_value(v));
		break;
	case JSON_TRUE:
		snprintf(buf, n, "yes");
		break;
	case JSON_FALSE:
		snprintf(buf, n, "no");
		break;
	case JSON_OBJECT:
	case JSON_ARRAY:
		dump = json_dumps(v, JSON_COMPACT);
		terminal_text(dump ? dump : "?", buf, n);
		free(dump);
		break;
	default:
		snprintf(buf, n, "-");
		break;
	}
	if (!v)
		snprintf(buf, n, "-");
	return buf;
}

/* Characters (not bytes) in UTF-8 text s. */
static size_t width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

/* Cut UTF-8 text s to at most max characters. */
static void cut(char *s, size_t max)
{
	size_t k = 0, chars = 0;

	while (s[k] && chars < max) {
		k += seq_len((unsigned char)s[k]);
		chars++;
	}
	s[k] = '\0';
}

/* s padded to w characters, left or right aligned. */
static void pad(FILE *out, const char *s, size_t w, bool right)
{
	size_t have = width(s);

	if (right)
		for (size_t i = have; i < w; i++)
			fputc(' ', out);
	fputs(s, out);
	if (!right)
		for (size_t i = have; i < w; i++)
			fputc(' ', out);
}

void ctl_render_table(FILE *out, const json_t *rows, const struct ctl_column *cols)
{
	size_t nc = 0, w[32], i;
	bool num[32];
	const json_t *row;
	char buf[4 * COL_MAX + 1];

	while (cols[nc].title && nc < 32)
		nc++;
	for (size_t c = 0; c < nc; c++) {
		w[c] = width(cols[c].title);
		num[c] = true;
	}
	json_array_foreach(rows, i, row)
		for (size_t c = 0; c < nc; c++) {
			const json_t *v = ctl_render_get(row, cols[c].path);
			size_t l;
			ctl_render_scalar(v, buf, sizeof(buf));
			cut(buf, COL_MAX);
			l = width(buf);
			if (l > w[c])
				w[c] = l;
			if (v && !json_is_number(v))
				num[c] = false;
		}
	for (size_t c = 0; c < nc; c++) {
		pad(out, cols[c].title, c + 1 < nc ? w[c] : 0, num[c]);
		fputs(c + 1 < nc ? "  " : "\n", out);
	}
	json_array_foreach(rows, i, row)
		for (size_t c = 0; c < nc; c++) {
			ctl_render_scalar(ctl_render_get(row, cols[c].path), buf, sizeof(buf));
			cut(buf, COL_MAX);
			pad(out, buf, c + 1 < nc ? w[c] : 0, num[c]);
			fputs(c + 1 < nc ? "  " : "\n", out);
		}
}

/* text wrapped at WRAP columns, each line indented. */
static void wrap(FILE *out, const char *text, int indent)
{
	char buf[4096];
	const char *p;
	size_t col = 0;

	terminal_text(text, buf, sizeof(buf));
	p = buf;
	while (*p) {
		size_t n = strcspn(p, " ");
		if (col && col + 1 + n > (size_t)(WRAP - indent)) {
			fputc('\n', out);
			col = 0;
		}
		if (col == 0)
			fprintf(out, "%*s", indent, "");
		else {
			fputc(' ', out);
			col++;
		}
		fwrite(p, 1, n, out);
		col += n;
		p += n;
		p += strspn(p, " ");
	}
	if (col)
		fputc('\n', out);
}

/* ---- the generic renderer ---------------------------------------------------------- */

static bool scalar(const json_t *v)
{
	return !json_is_object(v) && !json_is_array(v);
}

static void generic(FILE *out, const json_t *v, int indent);

/* An array of objects as a table of their scalar members (at most 16). */
static bool object_table(FILE *out, const json_t *a)
{
	struct ctl_column cols[17];
	const char *keys[16];
	size_t nk = 0, i;
	const json_t *row, *m;
	const char *k;

	json_array_foreach(a, i, row) {
		if (!json_is_object(row))
			return false;
		json_object_foreach((json_t *)row, k, m) {
			bool have = false;
			if (!scalar(m))
				continue;
			for (size_t j = 0; j < nk; j++)
				have |= strcmp(keys[j], k) == 0;
			if (!have && nk < 16)
				keys[nk++] = k;
		}
	}
	for (size_t j = 0; j < nk; j++)
		cols[j] = (struct ctl_column){ keys[j], keys[j] };
	cols[nk] = (struct ctl_column){ NULL, NULL };
	if (nk)
		ctl_render_table(out, a, cols);
	return true;
}

static void generic(FILE *out, const json_t *v, int indent)
{
	char buf[1024];
	const char *k;
	const json_t *m;
	size_t i, kw = 0;

	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, m)
			if (scalar(m) && width(k) > kw)
				kw = width(k) > 40 ? 40 : width(k);
		json_object_foreach((json_t *)v, k, m) {
			char key[256];
			terminal_text(k, key, sizeof(key));
			if (scalar(m) || (json_is_array(m) && json_array_size(m) == 0) ||
			    (json_is_object(m) && json_object_size(m) == 0)) {
				fprintf(out, "%*s", indent, "");
				pad(out, key, kw, false);
				fprintf(out, "  %s\n", ctl_render_scalar(m, buf, sizeof(buf)));
			} else {
				fprintf(out, "%*s%s:\n", indent, "", key);
				generic(out, m, indent + 2);
			}
		}
		return;
	}
	if (json_is_array(v)) {
		if (json_array_size(v) && object_table(out, v))
			return;
		json_array_foreach(v, i, m) {
			if (scalar(m))
				fprintf(out, "%*s%s\n", indent, "", ctl_render_scalar(m, buf, sizeof(buf)));
			else
				generic(out, m, indent);
		}
		return;
	}
	fprintf(out, "%*s%s\n", indent, "", ctl_render_scalar(v, buf, sizeof(buf)));
}

void ctl_render_generic(FILE *out, const json_t *result, int argc, char **argv)
{
	generic(out, result, 0);
}

/* ---- the commands' renderers ------------------------------------------------------- */

void ctl_render_help(FILE *out, const json_t *result, int argc, char **argv)
{
	const json_t *list = json_object_get(result, "commands"), *c;
	char usage[512], access[16];
	size_t i;

	if (argc <= 1) {	/* `help`: every command, one line each */
		fprintf(out, "commands (* for admins only; sluicectl COMMAND --help tells more):\n");
		json_array_foreach(list, i, c) {
			ctl_render_scalar(json_object_get(c, "usage"), usage, sizeof(usage));
			ctl_render_scalar(json_object_get(c, "access"), access, sizeof(access));
			fprintf(out, "  %c %s\n", strcmp(access, "admin") == 0 ? '*' : ' ', usage);
		}
		return;
	}
	json_array_foreach(list, i, c) {
		ctl_render_scalar(json_object_get(c, "usage"), usage, sizeof(usage));
		ctl_render_scalar(json_object_get(c, "access"), access, sizeof(access));
		fprintf(out, "%susage: sluicectl %s\n", i ? "\n" : "", usage);
		wrap(out, json_string_value(json_object_get(c, "help")) ?: "", 2);
		if (strcmp(access, "admin") == 0)
			fprintf(out, "  (admins only: root, or the control socket's group)\n");
	}
}

void ctl_render_stats(FILE *out, const json_t *result, int argc, char **argv)
{
	const json_t *st = json_object_get(result, "stats"), *v;
	const char *k;
	char buf[64], key[128];

	json_object_foreach((json_t *)st, k, v) {
		terminal_text(k, key, sizeof(key));
		fprintf(out, "%-40s %s\n", key, ctl_render_scalar(v, buf, sizeof(buf)));
	}
}

static void render_ping(FILE *out, const json_t *result, int argc, char **argv)
{
	fprintf(out, "pong\n");
}

static void render_version(FILE *out, const json_t *result, int argc, char **argv)
{
	char v[64], p[16];

	fprintf(out, "sluiced %s (control protocol %s)\n",
		ctl_render_scalar(json_object_get(result, "version"), v, sizeof(v)),
		ctl_render_scalar(json_object_get(result, "protocol"), p, sizeof(p)));
}

static void render_route(FILE *out, const json_t *result, int argc, char **argv)
{
	static const struct ctl_column hops[] = {
		{ "PREF", "pref" }, { "ADDRESS", "addr" }, { "PORT", "port" }, { "MX", "mx" },
		{ "TLS", "tls" }, { NULL, NULL } };
	const json_t *r = json_object_get(result, "route");
	char domain[300], status[32], dsn[16], why[512];

	ctl_render_scalar(json_object_get(r, "domain"), domain, sizeof(domain));
	if (json_is_true(json_object_get(r, "set"))) {
		fprintf(out, "%s: static route set\n", domain);
		return;
	}
	if (json_is_true(json_object_get(r, "cleared"))) {
		fprintf(out, "%s: static route removed\n", domain);
		return;
	}
	ctl_render_scalar(json_object_get(r, "status"), status, sizeof(status));
	ctl_render_scalar(json_object_get(r, "dsn"), dsn, sizeof(dsn));
	ctl_render_scalar(json_object_get(r, "why"), why, sizeof(why));
	fprintf(out, "%s: %s", domain, status);
	if (dsn[0])
		fprintf(out, " %s", dsn);
	if (why[0])
		fprintf(out, " (%s)", why);
	fputc('\n', out);
	if (json_array_size(json_object_get(r, "hops")))
		ctl_render_table(out, json_object_get(r, "hops"), hops);
}

static void render_dns(FILE *out, const json_t *result, int argc, char **argv)
{
	const json_t *d = json_object_get(result, "dns"), *rec;
	char name[300], type[8], status[32], ttl[24], why[512], buf[300], pref[16];
	size_t i;

	fprintf(out, "%s %s: %s, ttl %s",
		ctl_render_scalar(json_object_get(d, "name"), name, sizeof(name)),
		ctl_render_scalar(json_object_get(d, "type"), type, sizeof(type)),
		ctl_render_scalar(json_object_get(d, "status"), status, sizeof(status)),
		ctl_render_scalar(json_object_get(d, "ttl"), ttl, sizeof(ttl)));
	ctl_render_scalar(json_object_get(d, "why"), why, sizeof(why));
	if (why[0])
		fprintf(out, " (%s)", why);
	fputc('\n', out);
	json_array_foreach(json_object_get(d, "records"), i, rec) {
		if (json_is_object(rec))
			fprintf(out, "  %s %s\n",
				ctl_render_scalar(json_object_get(rec, "pref"), pref, sizeof(pref)),
				ctl_render_scalar(json_object_get(rec, "host"), buf, sizeof(buf)));
		else
			fprintf(out, "  %s\n", ctl_render_scalar(rec, buf, sizeof(buf)));
	}
}

static void render_flush(FILE *out, const json_t *result, int argc, char **argv)
{
	const json_t *f = json_object_get(result, "flush");
	char a[300], n[24], why[300];

	ctl_render_scalar(json_object_get(f, "messages"), n, sizeof(n));
	if (json_object_get(f, "ids")) {
		const json_t *x;
		size_t i;
		json_array_foreach(json_object_get(f, "ids"), i, x) {
			ctl_render_scalar(json_object_get(x, "id"), a, sizeof(a));
			if (json_is_true(json_object_get(x, "due")))
				fprintf(out, "%s: due now\n", a);
			else
				fprintf(out, "%s: not made due (%s)\n", a,
					ctl_render_scalar(json_object_get(x, "why"), why, sizeof(why)));
		}
	} else if (json_object_get(f, "id")) {
		ctl_render_scalar(json_object_get(f, "id"), a, sizeof(a));
		if (json_is_true(json_object_get(f, "due")))
			fprintf(out, "%s: due now\n", a);
		else
			fprintf(out, "%s: not made due (%s)\n", a,
				ctl_render_scalar(json_object_get(f, "why"), why, sizeof(why)));
	} else if (json_object_get(f, "domain")) {
		fprintf(out, "%s: %s message(s) made due, the destination's backoff ended\n",
			ctl_render_scalar(json_object_get(f, "domain"), a, sizeof(a)), n);
	} else {
		fprintf(out, "%s message(s) made due, every destination's backoff ended\n", n);
	}
}

static void render_dest_show(FILE *out, const json_t *result, int argc, char **argv)
{
	static const struct ctl_column cols[] = {
		{ "DESTINATION", "name" }, { "QUEUED", "queued" }, { "SENDING", "in_flight" },
		{ "WINDOW", "classes.normal.window" }, { "LIMIT", "classes.normal.limit" },
		{ "DEAD", "dead" }, { "FOR", "dead_for" }, { "SUSPENDED", "suspended" },
		{ "LAST ERROR", "last_error" }, { NULL, NULL } };
	const json_t *dests = json_object_get(result, "dests");

	if (json_array_size(dests) == 1) {	/* one: everything about it */
		generic(out, json_array_get(dests, 0), 0);
		return;
	}
	if (json_array_size(dests) == 0) {
		fprintf(out, "no destination in memory\n");
		return;
	}
	ctl_render_table(out, dests, cols);
}

static void render_dest_clear(FILE *out, const json_t *result, int argc, char **argv)
{
	char name[300];

	fprintf(out, "%s: backoff ended\n",
		ctl_render_scalar(ctl_render_get(result, "dest.name"), name, sizeof(name)));
}

static void render_bounce(FILE *out, const json_t *result, int argc, char **argv)
{
	char id[300], n[24], m[24];

	if (ctl_render_get(result, "bounce.domain")) {
		fprintf(out, "%s: %s message(s), %s recipient(s) given up, their senders get "
			"the DSN\n",
			ctl_render_scalar(ctl_render_get(result, "bounce.domain"), id, sizeof(id)),
			ctl_render_scalar(ctl_render_get(result, "bounce.messages"), m, sizeof(m)),
			ctl_render_scalar(ctl_render_get(result, "bounce.recipients"), n, sizeof(n)));
		return;
	}
	fprintf(out, "%s: %s recipient(s) given up, the sender gets the DSN\n",
		ctl_render_scalar(ctl_render_get(result, "bounce.id"), id, sizeof(id)),
		ctl_render_scalar(ctl_render_get(result, "bounce.recipients"), n, sizeof(n)));
}

void ctl_render_error(FILE *out, const json_t *v)
{
	const char *s = json_string_value(v), *p;
	char text[4096];	/* no escape sequence from afar reaches the terminal */

	if (!s) {
		fprintf(out, "sluicectl: %s\n", ctl_render_scalar(v, text, sizeof(text)));
		return;
	}
	for (p = s; ; ) {
		size_t n = strcspn(p, "\n");
		char line[1024];
		snprintf(line, sizeof(line), "%.*s", (int)(n < sizeof(line) - 1 ? n : sizeof(line) - 1), p);
		terminal_text(line, text, sizeof(text));
		fprintf(out, "%s%s\n", p == s ? "sluicectl: " : "", text);
		if (!p[n])
			break;
		p += n + 1;
	}
}

/* "a, b, c" of an array of strings, or "nothing". */
static void print_list(FILE *out, const json_t *a)
{
	char s[300];
	size_t i;
	const json_t *v;

	if (!json_array_size(a)) {
		fputs("nothing", out);
		return;
	}
	json_array_foreach(a, i, v)
		fprintf(out, "%s%s", i ? ", " : "", ctl_render_scalar(v, s, sizeof(s)));
}

static void render_reload(FILE *out, const json_t *result, int argc, char **argv)
{
	char file[300], gen[24];
	const json_t *restart = ctl_render_get(result, "reload.needs_restart");

	fprintf(out, "reload %s of %s applied; changed: ",
		ctl_render_scalar(ctl_render_get(result, "reload.generation"), gen, sizeof(gen)),
		ctl_render_scalar(ctl_render_get(result, "reload.file"), file, sizeof(file)));
	print_list(out, ctl_render_get(result, "reload.applied"));
	fputc('\n', out);
	if (json_array_size(restart)) {
		fputs("needs a restart (running values kept): ", out);
		print_list(out, restart);
		fputc('\n', out);
	}
}

static void render_config_check(FILE *out, const json_t *result, int argc, char **argv)
{
	char file[300];

	fprintf(out, "%s: ok\n",
		ctl_render_scalar(ctl_render_get(result, "config.file"), file, sizeof(file)));
}

/* "12/100" or "12" when there is no limit */
static const char *of_limit(const json_t *row, const char *used, const char *lim, char *buf,
			    size_t n)
{
	long long l = json_integer_value(json_object_get(row, lim));

	if (l)
		snprintf(buf, n, "%lld/%lld", json_integer_value(json_object_get(row, used)), l);
	else
		snprintf(buf, n, "%lld", json_integer_value(json_object_get(row, used)));
	return buf;
}

static void render_user(FILE *out, const json_t *result, int argc, char **argv)
{
	const json_t *names = ctl_render_get(result, "users.names"), *v;
	const json_t *list = ctl_render_get(result, "users.list");
	const json_t *rel = json_object_get(result, "release");
	char a[300], n[24], m[48], r[48];
	size_t i;

	if (list) {
		fprintf(out, "%-32s %-10s %14s %16s\n", "USER", "STATE", "MESSAGES TODAY",
			"RECIPIENTS TODAY");
		json_array_foreach(list, i, v)
			fprintf(out, "%-32s %-10s %14s %16s\n",
				ctl_render_scalar(json_object_get(v, "name"), a, sizeof(a)),
				ctl_render_scalar(json_object_get(v, "state"), n, sizeof(n)),
				of_limit(v, "messages_today", "messages_limit", m, sizeof(m)),
				of_limit(v, "recipients_today", "recipients_limit", r, sizeof(r)));
		return;
	}
	if (names) {
		json_array_foreach(names, i, v)
			fprintf(out, "%s\n", ctl_render_scalar(v, a, sizeof(a)));
		return;
	}
	if (json_object_get(result, "hold")) {	/* user suspend: its queued mail held */
		fprintf(out, "%s: suspended; %lld queued message(s) held\n",
			argc > 2 ? argv[2] : "user",
			json_integer_value(json_object_get(json_object_get(result, "hold"),
							   "messages")));
		return;
	}
	if (rel) {	/* user resume: the release of what the suspension held */
		fprintf(out, "%s: resumed; %lld held message(s) released\n",
			argc > 2 ? argv[2] : "user",
			json_integer_value(json_object_get(rel, "messages")));
		return;
	}

	fprintf(out, "%s: %s (%s user(s) now)\n",
		ctl_render_scalar(ctl_render_get(result, "user.name"), a, sizeof(a)),
		json_object_get(json_object_get(result, "user"), "added") ? "added" : "removed",
		ctl_render_scalar(ctl_render_get(result, "user.users"), n, sizeof(n)));
}

static void render_clients_top(FILE *out, const json_t *result, int argc, char **argv)
{
	const json_t *top = ctl_render_get(result, "clients.top"), *e;
	char w[24], tr[24];
	size_t i;

	fprintf(out, "window %ss, %s client(s) or user(s) tracked\n",
		ctl_render_scalar(ctl_render_get(result, "clients.limits.window_s"), w, sizeof(w)),
		ctl_render_scalar(ctl_render_get(result, "clients.tracked"), tr, sizeof(tr)));
	fprintf(out, "%-8s %-40s %6s %6s %6s %6s %7s\n", "KIND", "CLIENT", "CONN", "MSGS", "RCPTS",
		"AUTHF", "LIMIT%");
	json_array_foreach(top, i, e) {
		char k[16], cl[80], a[24], b[24], c[24], d[24];
		fprintf(out, "%-8s %-40s %6s %6s %6s %6s %6.1f%%\n",
			ctl_render_scalar(json_object_get(e, "kind"), k, sizeof(k)),
			ctl_render_scalar(json_object_get(e, "client"), cl, sizeof(cl)),
			ctl_render_scalar(json_object_get(e, "connections"), a, sizeof(a)),
			ctl_render_scalar(json_object_get(e, "messages"), b, sizeof(b)),
			ctl_render_scalar(json_object_get(e, "recipients"), c, sizeof(c)),
			ctl_render_scalar(json_object_get(e, "auth_failures"), d, sizeof(d)),
			json_number_value(json_object_get(e, "percent")));
	}
}

static void render_transfer(FILE *out, const json_t *result, int argc, char **argv)
{
	const json_t *t = json_object_get(result, "transfer");
	char to[64], a[24], b[24], c[24], d[24];

	ctl_render_scalar(json_object_get(t, "to"), to, sizeof(to));
	if (!to[0]) {
		fprintf(out, "no transfer since the start\n");
		return;
	}
	fprintf(out, "transfer to %s: %s\n", to,
		json_is_true(json_object_get(t, "active")) ? "on" : "stopped");
	fprintf(out, "moved %s message part(s) (%s recipient(s)), %s left in the queue "
		"(%s held), %s failed transfer(s)\n",
		ctl_render_scalar(json_object_get(t, "moved"), a, sizeof(a)),
		ctl_render_scalar(json_object_get(t, "recipients_moved"), b, sizeof(b)),
		ctl_render_scalar(json_object_get(t, "left"), c, sizeof(c)),
		ctl_render_scalar(json_object_get(t, "held"), d, sizeof(d)),
		ctl_render_scalar(json_object_get(t, "failed"), to, sizeof(to)));
}

/* ---- the table ----------------------------------------------------------------------- */

const struct ctl_renderer ctl_renderers[] = {
	{ "help", NULL, ctl_render_help },
	{ "ping", NULL, render_ping },
	{ "version", NULL, render_version },
	{ "stats", NULL, ctl_render_stats },
	{ "route", NULL, render_route },
	{ "dns", "lookup", render_dns },
	{ "flush", NULL, render_flush },
	{ "transfer", NULL, render_transfer },
	{ "dest", "show", render_dest_show },
	{ "dest", "clear", render_dest_clear },
	{ "bounce", NULL, render_bounce },
	{ "reload", NULL, render_reload },
	{ "config", "check", render_config_check },
	{ "user", NULL, render_user },
	{ "clients", "top", render_clients_top },
	{ NULL, NULL, NULL },
};

/* The row {name, sub} of a table, else its {name, NULL} into *family. */
static ctl_render_fn find_in(const struct ctl_renderer *t, int argc, char **argv,
			     const struct ctl_renderer **family)
{
	for (const struct ctl_renderer *r = t; argc >= 1 && r->name; r++) {
		if (strcmp(r->name, argv[0]) != 0)
			continue;
		if (!r->sub)
			*family = *family ? *family : r;
		else if (argc >= 2 && strcmp(r->sub, argv[1]) == 0)
			return r->fn;
	}
	return NULL;
}

ctl_render_fn ctl_render_find(int argc, char **argv)
{
	const struct ctl_renderer *family = NULL;
	ctl_render_fn fn = find_in(ctl_renderers_queue, argc, argv, &family);

	if (!fn)
		fn = find_in(ctl_renderers, argc, argv, &family);
	return fn ? fn : family ? family->fn : ctl_render_generic;
}
