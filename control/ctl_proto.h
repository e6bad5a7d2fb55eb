/*
 * ctl_proto.h - the control socket's wire format, shared by sluiced (the
 * server, control/ctl_server.h) and sluicectl (the client).
 *
 * One request per line, one reply per line, each a JSON object (RFC 8259,
 * UTF-8), read and written with jansson on both sides:
 *
 *   request  {"argv":["route","set","example.com","[192.0.2.1]:25"]}\n
 *   reply    {"ok":true,"result":<any JSON value>}\n
 *            {"ok":false,"error":"human text"}\n
 *
 * A request is a command line as its words and nothing else: the object
 * has the one member "argv", an array of 1..CTL_ARGV_MAX strings, each at
 * most CTL_WORD_MAX bytes of UTF-8 without NUL; a line is at most
 * CTL_REQUEST_MAX bytes, its newline included ("\r\n" is accepted). JSON
 * text escapes every control character inside strings, so a newline always
 * ends a message. Replies come in the order of the requests; a connection
 * may carry any number of them. A reply line is at most CTL_REPLY_MAX
 * bytes: a larger result is replaced by an error reply saying so.
 *
 * The reply's result is the command's own JSON value (its shape is part of
 * each command's contract, documented with the command); sluicectl prints
 * it as is with --json.
 */
#ifndef SLUICE_CTL_PROTO_H
#define SLUICE_CTL_PROTO_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define CTL_PROTOCOL 1			/* `version` reports it */
#define CTL_REQUEST_MAX (64u << 10)	/* bytes in a request line, newline included */
#define CTL_ARGV_MAX 256		/* words in a request */
#define CTL_WORD_MAX 4096		/* bytes in one word */
#define CTL_REPLY_MAX (32u << 20)	/* bytes in a reply line, newline included */

/* How replies are written: compact (no newline inside), UTF-8 as is, keys
 * in the order they were set, reals with 15 significant digits (0.1 stays
 * "0.1"). */
#define CTL_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* A parsed request: argc words, argv[argc] == NULL; one allocation. */
struct ctl_request {
	int argc;
	char **argv;
};

/*
 * Parse one request line: len bytes (its newline, or "\r\n", already
 * removed; NUL not needed). 0 with rq filled (ctl_request_free it), or -1
 * with a human reason in err: not JSON, not UTF-8, not an object with just
 * "argv", argv empty or not all strings, over CTL_ARGV_MAX words or a word
 * over CTL_WORD_MAX bytes, or over CTL_REQUEST_MAX bytes.
 */
int ctl_request_parse(const char *line, size_t len, struct ctl_request *rq, char *err,
		      size_t errlen);
void ctl_request_free(struct ctl_request *rq);

/*
 * The request line for argc words (newline included; *len its length), as
 * a malloc'd string, or NULL with err: no words, too many or too long, a
 * word that is not UTF-8, the line over CTL_REQUEST_MAX, or no memory.
 */
char *ctl_request_encode(int argc, char *const *argv, size_t *len, char *err, size_t errlen);

/*
 * The reply line (newline included; *len its length) as a malloc'd string.
 * Takes value's reference: ok, the result (NULL: null); not ok, the error
 * (a JSON string; NULL or anything else: "failed"). A line over max bytes
 * becomes an error reply saying how large it would have been and the limit
 * (*too_large set when given). NULL only when out of memory.
 */
char *ctl_reply_encode(bool ok, json_t *value, size_t max, size_t *len, bool *too_large);

/*
 * Parse one reply line (without its newline). 0 with *ok and *value (a new
 * reference: the result, or the error string), or -1 with err: not a reply.
 */
int ctl_reply_parse(const char *line, size_t len, bool *ok, json_t **value, char *err,
		    size_t errlen);

/*
 * A JSON string from C text that may not be UTF-8 (names from DNS, a next
 * hop's reply, message headers): each byte that does not start a valid
 * UTF-8 sequence becomes U+FFFD. For every string a command puts in its
 * result that it did not make itself: json_string() refuses such text and
 * returns NULL. NULL s gives "". NULL only when out of memory.
 */
json_t *ctl_json_text(const char *s);
json_t *ctl_json_textn(const char *s, size_t n);

#endif
