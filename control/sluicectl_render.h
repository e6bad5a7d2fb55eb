/*
 * sluicectl_render.h - how sluicectl shows a command's result to people.
 *
 * One renderer per command (or per family), found by the request's words
 * in the table ctl_renderers (sluicectl_render.c): the row {name, sub}
 * first, then {name, NULL}. To add one: write the function (here, or in a
 * file of its own such as sluicectl_render_queue.c, listed in sluicectl's
 * sources in control/meson.build), declare it below, add its row. A
 * command without a renderer is shown by ctl_render_generic, which prints
 * any result readably. `sluicectl --json` bypasses renderers: the result
 * is printed as JSON, one line, as the server sent it.
 *
 * Renderers print text from the daemon, which may carry what a remote
 * server or a message's sender put there: ctl_render_scalar (and so the
 * table helpers) replace control characters, so no escape sequence reaches
 * the operator's terminal. Print strings through it.
 */
#ifndef SLUICE_SLUICECTL_RENDER_H
#define SLUICE_SLUICECTL_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

/* argv: the request's words (argv[0] the command); result: the reply's. */
typedef void (*ctl_render_fn)(FILE *out, const json_t *result, int argc, char **argv);

struct ctl_renderer {
	const char *name;	/* the command */
	const char *sub;	/* its sub-command, or NULL: the whole family */
	ctl_render_fn fn;
};

/* Ends with a row whose name is NULL. */
extern const struct ctl_renderer ctl_renderers[];

/* The renderer for a request's words: ctl_render_generic when none. */
ctl_render_fn ctl_render_find(int argc, char **argv);

/* Any JSON value: objects as "key  value" lines (nested ones indented),
 * arrays of objects as tables, other arrays one value per line. */
void ctl_render_generic(FILE *out, const json_t *result, int argc, char **argv);

/* ---- helpers for renderers ---- */

/* The member at a dotted path ("classes.normal.window") of v, or NULL. */
const json_t *ctl_render_get(const json_t *v, const char *path);
/* A scalar as text for a terminal: strings without their quotes, with
 * control characters as '?'; numbers; true/false; null and NULL as "-";
 * an array or object as compact JSON. Cut to fit n. Returns buf. */
const char *ctl_render_scalar(const json_t *v, char *buf, size_t n);
/* An error reply's text: "sluicectl: " and its first line, then each
 * further line on its own (a refused reload lists every error), all
 * through the terminal filter. */
void ctl_render_error(FILE *out, const json_t *v);

/* A column of ctl_render_table: its title and the path of its value in
 * each row. A list ends with a NULL title. */
struct ctl_column {
	const char *title;
	const char *path;
};
/* rows (an array of objects) as a table, columns as wide as their widest
 * value (at most 60 characters), numbers right-aligned. */
void ctl_render_table(FILE *out, const json_t *rows, const struct ctl_column *cols);

/* The queue commands' renderers (sluicectl_render_queue.c), a second
 * table ctl_render_find also reads. */
extern const struct ctl_renderer ctl_renderers_queue[];

/* `queue list` a page at a time (sluicectl follows the pages): the
 * header on the first, then each message; the totals at the end. */
struct ctl_list_totals {
	unsigned long long messages, bytes;
};
void ctl_render_queue_list_page(FILE *out, const json_t *result, bool first,
				struct ctl_list_totals *t);
void ctl_render_queue_list_end(FILE *out, const struct ctl_list_totals *t);

/* Renderers of the commands sluiced has today (sluicectl_render.c). */
void ctl_render_help(FILE *out, const json_t *result, int argc, char **argv);
void ctl_render_stats(FILE *out, const json_t *result, int argc, char **argv);

#endif
