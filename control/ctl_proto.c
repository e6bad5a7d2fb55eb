/*
 * ctl_proto.c - the control socket's wire format. See ctl_proto.h.
 *
 * jansson does the JSON (parsing, UTF-8 validation, escaping); this file
 * checks the shape of requests and replies and keeps them within bounds.
 */
#include "control/ctl_proto.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- text that may not be UTF-8 ------------------------------------------------ */

/*
 * Length of the valid UTF-8 sequence at s (n bytes available), or 0. The
 * rules are jansson's (RFC 3629): no overlong forms, no surrogates, nothing
 * past U+10FFFF, and no NUL (which the client's parser would refuse).
 */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t len;

	if (s[0] == 0)
		return 0;
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;	/* a continuation byte, 0xc0/0xc1, or 0xf5.. */
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

json_t *ctl_json_textn(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	unsigned char *buf;
	size_t i = 0, o = 0, k;
	json_t *j;

	if (!s)
		return json_string("");
	while (i < n && (k = utf8_seq(u + i, n - i)) != 0)
		i += k;
	if (i == n)
		return json_stringn(s, n);
	buf = malloc(n * 3 + 1);	/* every byte may become U+FFFD */
	if (!buf)
		return NULL;
	for (i = 0; i < n;) {
		k = utf8_seq(u + i, n - i);
		if (k) {
			memcpy(buf + o, u + i, k);
			o += k;
			i += k;
		} else {
			memcpy(buf + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		}
	}
	j = json_stringn((const char *)buf, o);
	free(buf);
	return j;
}

json_t *ctl_json_text(const char *s)
{
	return ctl_json_textn(s, s ? strlen(s) : 0);
}

/* ---- requests -------------------------------------------------------------------- */

int ctl_request_parse(const char *line, size_t len, struct ctl_request *rq, char *err,
		      size_t errlen)
{
	json_error_t je;
	json_t *root, *av;
	size_t n, bytes = 0;
	char *p;

	rq->argc = 0;
	rq->argv = NULL;
	if (len >= CTL_REQUEST_MAX) {
		snprintf(err, errlen, "request over %u bytes", CTL_REQUEST_MAX);
		return -1;
	}
	root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		snprintf(err, errlen, "request is not JSON: %s (at byte %d)", je.text, je.position);
		return -1;
	}
	av = json_object_get(root, "argv");
	if (!json_is_object(root) || json_object_size(root) != 1 || !json_is_array(av)) {
		json_decref(root);
		snprintf(err, errlen, "a request is {\"argv\":[\"COMMAND\",...]} and nothing else");
		return -1;
	}
	n = json_array_size(av);
	if (n == 0 || n > CTL_ARGV_MAX) {
		json_decref(root);
		snprintf(err, errlen, "argv holds %zu words (1 to %d)", n, CTL_ARGV_MAX);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *w = json_array_get(av, i);
		if (!json_is_string(w)) {
			json_decref(root);
			snprintf(err, errlen, "argv[%zu] is not a string", i);
			return -1;
		}
		if (json_string_length(w) > CTL_WORD_MAX) {
			json_decref(root);
			snprintf(err, errlen, "argv[%zu] is over %d bytes", i, CTL_WORD_MAX);
			return -1;
		}
		/* without JSON_ALLOW_NUL jansson refuses "\u0000": strlen is the length */
		bytes += json_string_length(w) + 1;
	}
	rq->argv = malloc((n + 1) * sizeof(char *) + bytes);
	if (!rq->argv) {
		json_decref(root);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	p = (char *)(rq->argv + n + 1);
	for (size_t i = 0; i < n; i++) {
		json_t *w = json_array_get(av, i);
		size_t l = json_string_length(w);
		memcpy(p, json_string_value(w), l + 1);
		rq->argv[i] = p;
		p += l + 1;
	}
	rq->argv[n] = NULL;
	rq->argc = (int)n;
	json_decref(root);
	return 0;
}

void ctl_request_free(struct ctl_request *rq)
{
	free(rq->argv);
	rq->argv = NULL;
	rq->argc = 0;
}

/* json_dumps with a trailing newline, or NULL. */
static char *dump_line(const json_t *j, size_t *len)
{
	char *s = json_dumps(j, CTL_JSON_FLAGS), *line;
	size_t n;

	if (!s)
		return NULL;
	n = strlen(s);
	line = realloc(s, n + 2);
	if (!line) {
		free(s);
		return NULL;
	}
	line[n] = '\n';
	line[n + 1] = '\0';
	*len = n + 1;
	return line;
}

char *ctl_request_encode(int argc, char *const *argv, size_t *len, char *err, size_t errlen)
{
	json_t *av, *root;
	char *line;

	if (argc < 1 || argc > CTL_ARGV_MAX) {
		snprintf(err, errlen, "a request has 1 to %d words", CTL_ARGV_MAX);
		return NULL;
	}
	av = json_array();
	for (int i = 0; av && i < argc; i++) {
		json_t *w;
		if (strlen(argv[i]) > CTL_WORD_MAX) {
			snprintf(err, errlen, "word %d is over %d bytes", i + 1, CTL_WORD_MAX);
			json_decref(av);
			return NULL;
		}
		w = json_string(argv[i]);
		if (!w) {
			snprintf(err, errlen, "'%.64s' is not UTF-8 text", argv[i]);
			json_decref(av);
			return NULL;
		}
		if (json_array_append_new(av, w) < 0) {
			json_decref(av);
			av = NULL;
		}
	}
	root = av ? json_pack("{s:o}", "argv", av) : NULL;
	line = root ? dump_line(root, len) : NULL;
	json_decref(root);
	if (!line) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (*len > CTL_REQUEST_MAX) {
		snprintf(err, errlen, "the request is over %u bytes", CTL_REQUEST_MAX);
		free(line);
		return NULL;
	}
	return line;
}

/* ---- replies ---------------------------------------------------------------------- */

/* A growing buffer that refuses to pass `max` bytes (json_dump_callback). */
struct bounded {
	char *buf;
	size_t len, cap, max;
	bool over;
};

static int bounded_put(const char *data, size_t size, void *user)
{
	struct bounded *b = user;

	if (b->len + size > b->max) {
		b->over = true;
		return -1;
	}
	if (b->len + size + 2 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *nb;
		while (cap < b->len + size + 2)
			cap *= 2;
		nb = realloc(b->buf, cap);
		if (!nb)
			return -1;
		b->buf = nb;
		b->cap = cap;
	}
	memcpy(b->buf + b->len, data, size);
	b->len += size;
	return 0;
}

char *ctl_reply_encode(bool ok, json_t *value, size_t max, size_t *len, bool *too_large)
{
	/* the JSON text gets max - 1 bytes: the newline is the last */
	struct bounded b = { .max = max > 1 ? max - 1 : 0 };
	json_t *root;

	if (too_large)
		*too_large = false;
	if (ok) {
		root = json_pack("{s:b,s:o}", "ok", 1, "result", value ? value : json_null());
	} else {
		if (!json_is_string(value)) {
			json_decref(value);
			value = json_string("failed");
		}
		root = json_pack("{s:b,s:o}", "ok", 0, "error", value);
	}
	if (!root)
		return NULL;
	if (json_dump_callback(root, bounded_put, &b, CTL_JSON_FLAGS) < 0) {
		json_decref(root);
		free(b.buf);
		if (!b.over)
			return NULL;
		if (too_large)
			*too_large = true;
		root = json_pack("{s:b,s:o}", "ok", 0, "error",
				 json_sprintf("the reply is over the control socket's limit of "
					      "%zu bytes", max));
		memset(&b, 0, sizeof(b));
		b.max = SIZE_MAX / 2;
		if (!root || json_dump_callback(root, bounded_put, &b, CTL_JSON_FLAGS) < 0) {
			json_decref(root);
			free(b.buf);
			return NULL;
		}
	}
	json_decref(root);
	if (!b.buf)
		return NULL;
	/* bounded_put keeps two spare bytes: the newline and a NUL */
	b.buf[b.len++] = '\n';
	b.buf[b.len] = '\0';
	*len = b.len;
	return b.buf;
}

int ctl_reply_parse(const char *line, size_t len, bool *ok, json_t **value, char *err,
		    size_t errlen)
{
	json_error_t je;
	json_t *root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je), *okj, *v;

	*value = NULL;
	if (!root) {
		snprintf(err, errlen, "reply is not JSON: %s (at byte %d)", je.text, je.position);
		return -1;
	}
	okj = json_object_get(root, "ok");
	if (!json_is_boolean(okj)) {
		json_decref(root);
		snprintf(err, errlen, "reply without \"ok\"");
		return -1;
	}
	*ok = json_is_true(okj);
	v = json_object_get(root, *ok ? "result" : "error");
	if (!*ok && !json_is_string(v)) {
		json_decref(root);
		snprintf(err, errlen, "error reply without an \"error\" text");
		return -1;
	}
	*value = v ? json_incref(v) : json_null();
	json_decref(root);
	return 0;
}
