/*
 * prom.c - the Prometheus text exposition builder. See prom.h.
 *
 * Data structures: the families in an array in first-seen order, with a
 * small open-addressing index by name (FNV-1a) so adding stays O(1) per
 * sample however many families a scrape has; each family's samples as
 * preformatted lines ("name{labels} value\n") appended to one growing
 * buffer of its own.
 */
#include "control/prom.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct family {
	char *name;
	char *help;
	enum prom_type type;
	char *lines;		/* the samples, formatted */
	size_t len, cap;
	unsigned nsamples;
};

struct prom {
	struct family *f;
	unsigned n, cap;
	unsigned *index;	/* family + 1 by name hash; 0: empty */
	unsigned index_cap;	/* a power of two, at least 2 * cap */
	unsigned samples;
};

static uint32_t hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

struct prom *prom_new(void)
{
	return calloc(1, sizeof(struct prom));
}

void prom_free(struct prom *p)
{
	if (!p)
		return;
	for (unsigned i = 0; i < p->n; i++) {
		free(p->f[i].name);
		free(p->f[i].help);
		free(p->f[i].lines);
	}
	free(p->f);
	free(p->index);
	free(p);
}

static bool name_char(char c, bool first, bool colon)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	       (colon && c == ':') || (!first && c >= '0' && c <= '9');
}

static bool name_ok(const char *s, bool colon)
{
	size_t n = strlen(s);

	if (n == 0 || n >= PROM_TEXT_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!name_char(s[i], i == 0, colon))
			return false;
	return true;
}

bool prom_metric_name_ok(const char *s)
{
	return name_ok(s, true);
}

bool prom_label_name_ok(const char *s)
{
	return name_ok(s, false) && strncmp(s, "__", 2) != 0 && strcmp(s, "le") != 0;
}

void prom_sanitize(const char *in, char *out, size_t n)
{
	size_t o = 0;

	if (n == 0)
		return;
	if (in[0] >= '0' && in[0] <= '9' && o + 1 < n)
		out[o++] = '_';
	for (; *in && o + 1 < n; in++)
		out[o++] = name_char(*in, false, true) ? *in : '_';
	out[o] = '\0';
}

/* Append to a family's lines; false when out of memory. */
static bool put(struct family *f, const char *s, size_t len)
{
	if (f->len + len + 1 > f->cap) {
		size_t cap = f->cap ? f->cap : 256;
		char *b;
		while (f->len + len + 1 > cap)
			cap *= 2;
		b = realloc(f->lines, cap);
		if (!b)
			return false;
		f->lines = b;
		f->cap = cap;
	}
	memcpy(f->lines + f->len, s, len);
	f->len += len;
	f->lines[f->len] = '\0';
	return true;
}

static bool puts_(struct family *f, const char *s)
{
	return put(f, s, strlen(s));
}

/* A label value with \\, \" and \n escaped. */
static bool put_escaped(struct family *f, const char *v, bool quotes)
{
	for (; *v; v++) {
		const char *e = NULL;
		if (*v == '\\')
			e = "\\\\";
		else if (*v == '\n')
			e = "\\n";
		else if (*v == '"' && quotes)
			e = "\\\"";
		if (!(e ? puts_(f, e) : put(f, v, 1)))
			return false;
	}
	return true;
}

static bool grow_index(struct prom *p)
{
	unsigned cap = p->index_cap ? p->index_cap * 2 : 64;
	unsigned *ix = calloc(cap, sizeof(*ix));

	if (!ix)
		return false;
	for (unsigned i = 0; i < p->n; i++) {
		unsigned h = hash(p->f[i].name) & (cap - 1);
		while (ix[h])
			h = (h + 1) & (cap - 1);
		ix[h] = i + 1;
	}
	free(p->index);
	p->index = ix;
	p->index_cap = cap;
	return true;
}

/* The family named name: found, or made (NULL: a type clash, bad name, no
 * memory). */
static struct family *family(struct prom *p, const char *name, enum prom_type type,
			     const char *help)
{
	unsigned h;
	struct family *f;

	if (p->index_cap) {
		for (h = hash(name) & (p->index_cap - 1); p->index[h];
		     h = (h + 1) & (p->index_cap - 1)) {
			f = &p->f[p->index[h] - 1];
			if (strcmp(f->name, name) == 0)
				return f->type == type ? f : NULL;
		}
	}
	if (!prom_metric_name_ok(name) || strlen(help) >= PROM_TEXT_MAX)
		return NULL;
	if (p->n == p->cap) {
		unsigned cap = p->cap ? p->cap * 2 : 32;
		struct family *nf = realloc(p->f, cap * sizeof(*nf));
		if (!nf)
			return NULL;
		p->f = nf;
		p->cap = cap;
	}
	if (2 * (p->n + 1) > p->index_cap && !grow_index(p))
		return NULL;
	f = &p->f[p->n];
	memset(f, 0, sizeof(*f));
	f->name = strdup(name);
	f->help = strdup(help);
	f->type = type;
	if (!f->name || !f->help) {
		free(f->name);
		free(f->help);
		return NULL;
	}
	for (h = hash(name) & (p->index_cap - 1); p->index[h]; h = (h + 1) & (p->index_cap - 1))
		;
	p->index[h] = ++p->n;
	return f;
}

static bool labels_ok(const struct prom_label *l, unsigned n)
{
	if (n > PROM_LABELS_MAX)
		return false;
	for (unsigned i = 0; i < n; i++) {
		if (!prom_label_name_ok(l[i].name) || !l[i].value ||
		    strlen(l[i].value) >= PROM_TEXT_MAX)
			return false;
		for (unsigned j = 0; j < i; j++)
			if (strcmp(l[i].name, l[j].name) == 0)
				return false;
	}
	return true;
}

/* "name{a="x",b="y"" without the closing brace when le is to follow. */
static bool put_series(struct family *f, const char *name, const struct prom_label *l,
		       unsigned n, const char *le)
{
	if (!puts_(f, name))
		return false;
	if (n == 0 && !le)
		return true;
	if (!puts_(f, "{"))
		return false;
	for (unsigned i = 0; i < n; i++)
		if (!(i ? puts_(f, ",") : true) || !puts_(f, l[i].name) || !puts_(f, "=\"") ||
		    !put_escaped(f, l[i].value, true) || !puts_(f, "\""))
			return false;
	if (le && (!puts_(f, n ? ",le=\"" : "le=\"") || !puts_(f, le) || !puts_(f, "\"")))
		return false;
	return puts_(f, "}");
}

static void fmt_f64(double v, char *buf, size_t n)
{
	if (isnan(v))
		snprintf(buf, n, "NaN");
	else if (isinf(v))
		snprintf(buf, n, v > 0 ? "+Inf" : "-Inf");
	else
		snprintf(buf, n, "%.17g", v);
}

static int add(struct prom *p, const char *name, enum prom_type type, const char *help,
	       const struct prom_label *labels, unsigned n, const char *value)
{
	struct family *f;
	size_t mark;

	if (type == PROM_HISTOGRAM || !labels_ok(labels, n))
		return -1;
	f = family(p, name, type, help);
	if (!f)
		return -1;
	mark = f->len;
	if (!put_series(f, name, labels, n, NULL) || !puts_(f, " ") || !puts_(f, value) ||
	    !puts_(f, "\n")) {
		f->len = mark;
		if (f->lines)
			f->lines[mark] = '\0';
		return -1;
	}
	f->nsamples++;
	p->samples++;
	return 0;
}

int prom_add_u64(struct prom *p, const char *family, enum prom_type type, const char *help,
		 const struct prom_label *labels, unsigned nlabels, uint64_t value)
{
	char v[24];

	snprintf(v, sizeof(v), "%llu", (unsigned long long)value);
	return add(p, family, type, help, labels, nlabels, v);
}

int prom_add_f64(struct prom *p, const char *family, enum prom_type type, const char *help,
		 const struct prom_label *labels, unsigned nlabels, double value)
{
	char v[40];

	fmt_f64(value, v, sizeof(v));
	return add(p, family, type, help, labels, nlabels, v);
}

int prom_add_histogram(struct prom *p, const char *name, const char *help,
		       const struct prom_label *labels, unsigned nlabels, const double *le,
		       const uint64_t *counts, unsigned nb, uint64_t count, double sum)
{
	char series[PROM_TEXT_MAX + 16], v[40], b[40];
	struct family *f;
	size_t mark;

	if (!labels_ok(labels, nlabels) || strlen(name) + 10 >= PROM_TEXT_MAX)
		return -1;
	for (unsigned i = 0; i < nb; i++)
		if ((i && (le[i] <= le[i - 1] || counts[i] < counts[i - 1])) || counts[i] > count)
			return -1;
	f = family(p, name, PROM_HISTOGRAM, help);
	if (!f)
		return -1;
	mark = f->len;
	snprintf(series, sizeof(series), "%s_bucket", name);
	for (unsigned i = 0; i <= nb; i++) {
		if (i < nb)
			fmt_f64(le[i], b, sizeof(b));
		snprintf(v, sizeof(v), " %llu\n", (unsigned long long)(i < nb ? counts[i] : count));
		if (!put_series(f, series, labels, nlabels, i < nb ? b : "+Inf") || !puts_(f, v))
			goto fail;
	}
	snprintf(series, sizeof(series), "%s_sum", name);
	fmt_f64(sum, v, sizeof(v));
	if (!put_series(f, series, labels, nlabels, NULL) || !puts_(f, " ") || !puts_(f, v) ||
	    !puts_(f, "\n"))
		goto fail;
	snprintf(series, sizeof(series), "%s_count", name);
	snprintf(v, sizeof(v), " %llu\n", (unsigned long long)count);
	if (!put_series(f, series, labels, nlabels, NULL) || !puts_(f, v))
		goto fail;
	f->nsamples++;
	p->samples++;
	return 0;
fail:
	f->len = mark;
	if (f->lines)
		f->lines[mark] = '\0';
	return -1;
}

unsigned prom_families(const struct prom *p)
{
	return p->n;
}

unsigned prom_samples(const struct prom *p)
{
	return p->samples;
}

static const char *type_name(enum prom_type t)
{
	return t == PROM_COUNTER ? "counter" : t == PROM_GAUGE ? "gauge" : "histogram";
}

int prom_write(const struct prom *p, FILE *out)
{
	for (unsigned i = 0; i < p->n; i++) {
		const struct family *f = &p->f[i];
		fprintf(out, "# HELP %s ", f->name);
		for (const char *h = f->help; *h; h++) {
			if (*h == '\\')
				fputs("\\\\", out);
			else if (*h == '\n')
				fputs("\\n", out);
			else
				fputc(*h, out);
		}
		fprintf(out, "\n# TYPE %s %s\n", f->name, type_name(f->type));
		if (f->len)
			fwrite(f->lines, 1, f->len, out);
	}
	return ferror(out) ? -1 : 0;
}

char *prom_text(const struct prom *p, size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	int r;

	if (!f)
		return NULL;
	r = prom_write(p, f);
	if (fclose(f) != 0 || r < 0) {
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}
