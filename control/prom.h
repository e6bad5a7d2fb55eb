/*
 * prom.h - a Prometheus text exposition (format 0.0.4), built in memory.
 *
 * The metrics exporter (control/metrics.c) adds samples family by family in
 * whatever order its sources give them (per lcore, per shard); the document
 * keeps one family per name, in the order first seen, with its samples in
 * the order added, and writes each family once: "# HELP", "# TYPE", then
 * its samples, as the format requires (a family's lines together, one TYPE
 * line per family). Pure: no I/O but the FILE it writes to.
 *
 * Names are checked (metric [a-zA-Z_:][a-zA-Z0-9_:]*, label
 * [a-zA-Z_][a-zA-Z0-9_]*, no label named "le" or starting "__"); label
 * values and HELP text are escaped as the format says (\\, \", \n in label
 * values; \\ and \n in HELP). A family added again with another type is
 * refused. A histogram is given as cumulative counts at increasing upper
 * bounds; the +Inf bucket, _sum and _count are written from what is given.
 *
 * Bounds: at most PROM_LABELS_MAX labels per sample, PROM_TEXT_MAX bytes per
 * name, label value or help text (longer ones are refused).
 */
#ifndef SLUICE_PROM_H
#define SLUICE_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PROM_LABELS_MAX 4
#define PROM_TEXT_MAX 512

enum prom_type { PROM_COUNTER, PROM_GAUGE, PROM_HISTOGRAM };

struct prom_label {
	const char *name, *value;
};

struct prom;

struct prom *prom_new(void);
void prom_free(struct prom *p);

/* Is s a valid metric name / label name? */
bool prom_metric_name_ok(const char *s);
bool prom_label_name_ok(const char *s);

/* One sample of a counter or gauge family (created with help on first use).
 * 0, or -1: a bad name or label, another type than before, too many labels,
 * out of memory. */
int prom_add_u64(struct prom *p, const char *family, enum prom_type type, const char *help,
		 const struct prom_label *labels, unsigned nlabels, uint64_t value);
int prom_add_f64(struct prom *p, const char *family, enum prom_type type, const char *help,
		 const struct prom_label *labels, unsigned nlabels, double value);

/* One histogram series: counts[i] values <= le[i] (cumulative, le
 * increasing), count values in all (the +Inf bucket), sum their sum. */
int prom_add_histogram(struct prom *p, const char *family, const char *help,
		       const struct prom_label *labels, unsigned nlabels, const double *le,
		       const uint64_t *counts, unsigned nb, uint64_t count, double sum);

/* Families and samples added so far. */
unsigned prom_families(const struct prom *p);
unsigned prom_samples(const struct prom *p);

/* Write the exposition. 0, or -1 on a write error. */
int prom_write(const struct prom *p, FILE *out);
/* The exposition as one malloc'd string (*len its length), or NULL. */
char *prom_text(const struct prom *p, size_t *len);

/* "abc_def" from any text: every character not valid in a metric name
 * becomes '_' (a leading digit gets a '_' before it). Into out (n bytes). */
void prom_sanitize(const char *in, char *out, size_t n);

#endif
