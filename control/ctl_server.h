/*
 * ctl_server.h - the control socket: one request per line, one JSON reply.
 *
 * A Unix stream socket that sluicectl (or any script) talks to. The server
 * is polled from the main lcore's loop; it never blocks: a client that sends
 * a line over CTL_LINE_MAX, more than CTL_MAX_CLIENTS at once, or does not
 * read its reply is dropped. The commands themselves are supplied by the
 * caller as a handler, so this module knows sockets and framing only.
 */
#ifndef SLUICE_CTL_SERVER_H
#define SLUICE_CTL_SERVER_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define CTL_MAX_CLIENTS 16
#define CTL_LINE_MAX 4096

/*
 * Handle one request. cmd is the first word, args the rest (maybe "").
 * Write the reply's JSON members (without braces), e.g. "\"stats\":{...}",
 * to out and return 0; or return -1 and write a human error text to out;
 * or, for a request another thread answers (it must not block this loop),
 * take a ticket with ctl_server_defer() and return CTL_DEFERRED: the reply
 * comes later through ctl_server_answer(). The client's further requests
 * wait until then.
 */
#define CTL_DEFERRED 1
typedef int (*ctl_handler_fn)(void *ctx, const char *cmd, const char *args, FILE *out);

/* Names one deferred request: its client slot and that slot's generation
 * (a client that went away meanwhile is not answered in its successor). */
struct ctl_ticket {
	unsigned slot;
	uint64_t gen;
};

struct ctl_client {
	int fd;
	bool deferred;		/* a reply is owed through ctl_server_answer */
	uint64_t gen;		/* bumped for every connection in this slot */
	size_t len;
	char buf[CTL_LINE_MAX];
};

struct ctl_server {
	int listen_fd;
	int current;		/* slot being dispatched (for ctl_server_defer), or -1 */
	uint64_t next_gen;
	char path[256];
	ctl_handler_fn handler;
	void *ctx;
	struct ctl_client clients[CTL_MAX_CLIENTS];
};

int ctl_server_open(struct ctl_server *s, const char *path, ctl_handler_fn h, void *ctx);
void ctl_server_close(struct ctl_server *s);

/* Fill pfds with the fds to watch; returns how many (at most 1 + CTL_MAX_CLIENTS). */
unsigned ctl_server_pollfds(const struct ctl_server *s, struct pollfd *pfds);
/* Service whatever poll() reported ready. */
void ctl_server_service(struct ctl_server *s, const struct pollfd *pfds, unsigned n);

/* Inside a handler: a ticket for the request being handled. 0, or -1
 * outside a handler. The handler then returns CTL_DEFERRED. */
int ctl_server_defer(struct ctl_server *s, struct ctl_ticket *t);
/* The reply to a deferred request: ok with body = JSON members (without
 * braces), or an error with body = human text. A client that is gone is
 * silently skipped. */
void ctl_server_answer(struct ctl_server *s, struct ctl_ticket t, bool ok, const char *body);

/* Write s as a JSON string literal (quoted, escaped). */
void ctl_json_string(FILE *out, const char *s);

#endif
