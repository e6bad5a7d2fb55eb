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
#include <stdio.h>

#define CTL_MAX_CLIENTS 16
#define CTL_LINE_MAX 4096

/*
 * Handle one request. cmd is the first word, args the rest (maybe "").
 * Write the reply's JSON members (without braces), e.g. "\"stats\":{...}",
 * to out and return 0; or return -1 and write a human error text to out.
 */
typedef int (*ctl_handler_fn)(void *ctx, const char *cmd, const char *args, FILE *out);

struct ctl_client {
	int fd;
	size_t len;
	char buf[CTL_LINE_MAX];
};

struct ctl_server {
	int listen_fd;
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

/* Write s as a JSON string literal (quoted, escaped). */
void ctl_json_string(FILE *out, const char *s);

#endif
