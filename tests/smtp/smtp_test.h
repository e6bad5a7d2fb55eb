/*
 * smtp_test.h - helpers for the SMTP engine suites: a session with its
 * config, policy, counters, a sink that collects the body, and drivers that
 * feed a script in chunks of any size and collect every reply.
 */
#ifndef SLUICE_SMTP_TEST_H
#define SLUICE_SMTP_TEST_H

#include <stdbool.h>
#include <stddef.h>

#include "dataplane/smtp/smtp_server.h"

#define TH_BODY_MAX (24u << 20)
#define TH_OUT_MAX (1u << 20)

/* A recipient as the engine handed it to cb.rcpt. */
struct th_rcpt {
	char addr[SMTP_PATH_MAX + 1];
	char orcpt[SMTP_ORCPT_MAX + 1];
	bool has_orcpt;
	uint8_t notify;
};

struct th {
	struct smtp_conf conf;
	struct smtp_policy pol;
	struct smtp_stats st;
	struct smtp_session s;
	char *body;		/* TH_BODY_MAX */
	size_t body_len;
	unsigned begins;	/* msg_begin calls */
	bool sink_fail;
	struct th_rcpt *rcpts;	/* SMTP_RCPT_HARD_MAX: cb.rcpt's store */
	unsigned nrcpts;
	unsigned rcpt_room;	/* cb.rcpt fails past this many (default: all fit) */
	unsigned rcpt_resets;	/* cb.rcpt_reset calls */
	char *out;		/* TH_OUT_MAX, NUL-terminated */
	size_t out_len;
	unsigned messages;	/* MESSAGE events answered by th_run */
	bool auto_queue;	/* th_run answers MESSAGE events with OK */
	unsigned qseq;
	unsigned etrns;		/* cb.etrn calls */
	char etrn[256];		/* the last domain it was given */
	int etrn_ret;		/* what cb.etrn returns */
	unsigned rejects;	/* cb.reject calls */
	char reject[1024];	/* the last: "STAGE|REPLY|FROM|TO" ("-" for NULL) */
};

/* Fresh harness: client ip (dotted quad), mynetworks, relay_domains. */
struct th *th_new(const char *ip, const char *mynetworks, const char *relay_domains);
/* Re-init the session after changing h->conf. */
void th_restart(struct th *h);
void th_free(struct th *h);

/* Feed n bytes in chunks of `chunk` (0 = all at once), draining output
 * after every input call. Stops when the engine consumes nothing (event
 * pending). Returns the bytes consumed. */
size_t th_feed(struct th *h, const void *d, size_t n, size_t chunk);
size_t th_feeds(struct th *h, const char *s);	/* whole string at once */

/* Feed everything, answering MESSAGE events (queued OK, "Q<n>") and
 * STARTTLS events (tls_started) as they come. */
void th_run(struct th *h, const char *d, size_t n, size_t chunk);

/* Recipient i kept through cb.rcpt, as a view (valid until the next
 * reset); 0, or -1 past the last. */
int th_rcpt(const struct th *h, unsigned i, struct smtp_rcpt_view *v);

void th_drain(struct th *h);
void th_clear(struct th *h);	/* forget the collected output */

/* The index-th reply line (0-based) of the collected output, without
 * CRLF, into buf; returns buf or NULL. */
const char *th_line(const struct th *h, unsigned index, char *buf, size_t cap);
unsigned th_nlines(const struct th *h);
/* Does the collected output contain this reply line prefix, on a line? */
bool th_has(const struct th *h, const char *prefix);

#define EHLO "EHLO client.example\r\n"
#define LOCAL_IP "198.18.0.9"
#define OUTSIDE_IP "203.0.113.7"
#define MYNET "198.18.0.0/24"

#endif
