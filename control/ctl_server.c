/*
 * ctl_server.c - control socket framing and dispatch. See ctl_server.h.
 */
#include "control/ctl_server.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"

void ctl_json_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(out, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			fprintf(out, "\\u%04x", ch);
		else
			fputc(ch, out);
	}
	fputc('"', out);
}

/*
 * Is a socket at sa's path answering? 1: yes (another daemon owns it);
 * 0: nothing there, or a stale socket file left by a crash (removed);
 * -errno: the path holds something we must not remove (not a socket), or
 * cannot be probed.
 */
static int socket_take_over(const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, r, e;

	if (lstat(sa->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -ENOTSOCK;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	e = errno;
	close(fd);
	if (r == 0 || e == EAGAIN || e == EINPROGRESS)
		return 1;	/* accepted, or its backlog is full: alive */
	if (e != ECONNREFUSED)
		return -e;
	if (unlink(sa->sun_path) < 0 && errno != ENOENT)
		return -errno;
	log_notice("control socket %s: removed a stale socket (nobody listening)", sa->sun_path);
	return 0;
}

int ctl_server_open(struct ctl_server *s, const char *path, ctl_handler_fn h, void *ctx)
{
	int r;

	struct sockaddr_un sa;
	char dir[sizeof(s->path)], *slash;

	memset(s, 0, sizeof(*s));
	s->listen_fd = -1;
	s->current = -1;
	for (unsigned i = 0; i < CTL_MAX_CLIENTS; i++)
		s->clients[i].fd = -1;
	if (strlen(path) >= sizeof(sa.sun_path) || strlen(path) >= sizeof(s->path)) {
		log_err("control socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	snprintf(s->path, sizeof(s->path), "%s", path);
	s->handler = h;
	s->ctx = ctx;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0750) < 0 && errno != EEXIST)
			log_warn("control socket: mkdir %s: %s", dir, strerror(errno));
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	r = socket_take_over(&sa);
	if (r == 1) {
		log_err("control socket %s answers: another sluiced is running; not starting", path);
		return -EADDRINUSE;
	}
	if (r < 0) {
		log_err("control socket %s: %s; not removing it", path, strerror(-r));
		return r;
	}
	s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->listen_fd < 0)
		return -errno;
	/* Two daemons starting at once: the second bind fails (EADDRINUSE). */
	if (bind(s->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(path, 0660) < 0 || listen(s->listen_fd, 16) < 0) {
		int e = errno;
		log_err("control socket %s: %s", path, strerror(e));
		close(s->listen_fd);
		s->listen_fd = -1;
		return -e;
	}
	log_info("control socket listening on %s", path);
	return 0;
}

static void client_close(struct ctl_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->len = 0;
	c->deferred = false;
}

void ctl_server_close(struct ctl_server *s)
{
	for (unsigned i = 0; i < CTL_MAX_CLIENTS; i++)
		client_close(&s->clients[i]);
	if (s->listen_fd >= 0) {
		close(s->listen_fd);
		unlink(s->path);
	}
	s->listen_fd = -1;
}

unsigned ctl_server_pollfds(const struct ctl_server *s, struct pollfd *pfds)
{
	unsigned n = 0;

	if (s->listen_fd >= 0)
		pfds[n++] = (struct pollfd){ .fd = s->listen_fd, .events = POLLIN };
	/* A client owed a deferred reply is not read: its next request waits. */
	for (unsigned i = 0; i < CTL_MAX_CLIENTS; i++)
		if (s->clients[i].fd >= 0 && !s->clients[i].deferred)
			pfds[n++] = (struct pollfd){ .fd = s->clients[i].fd, .events = POLLIN };
	return n;
}

/* Send the whole reply or give up on the client (it is not reading). */
static void send_reply(struct ctl_client *c, const char *buf, size_t len)
{
	while (len) {
		ssize_t w = send(c->fd, buf, len, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			log_warn("control client dropped while sending its reply");
			client_close(c);
			return;
		}
		buf += w;
		len -= (size_t)w;
	}
}

/* The framed reply: {"ok":true,BODY} or {"ok":false,"error":"BODY"}. */
static void reply(struct ctl_client *c, bool ok, const char *body, size_t blen)
{
	char *out = NULL;
	size_t olen = 0;
	FILE *f = open_memstream(&out, &olen);

	if (!f) {
		client_close(c);
		return;
	}
	if (ok) {
		fprintf(f, "{\"ok\":true%s", blen ? "," : "");
		fwrite(body, 1, blen, f);
		fputs("}\n", f);
	} else {
		fputs("{\"ok\":false,\"error\":", f);
		ctl_json_string(f, body);
		fputs("}\n", f);
	}
	fclose(f);
	send_reply(c, out, olen);
	free(out);
}

int ctl_server_defer(struct ctl_server *s, struct ctl_ticket *t)
{
	if (s->current < 0)
		return -1;
	s->clients[s->current].deferred = true;
	t->slot = (unsigned)s->current;
	t->gen = s->clients[s->current].gen;
	return 0;
}

void ctl_server_answer(struct ctl_server *s, struct ctl_ticket t, bool ok, const char *body)
{
	struct ctl_client *c;

	if (t.slot >= CTL_MAX_CLIENTS)
		return;
	c = &s->clients[t.slot];
	if (c->fd < 0 || c->gen != t.gen || !c->deferred)
		return;		/* the client left; another may use the slot now */
	c->deferred = false;
	reply(c, ok, body, strlen(body));
}

static void dispatch(struct ctl_server *s, struct ctl_client *c, char *line)
{
	char *body = NULL, *cmd, *args;
	size_t blen = 0;
	FILE *bo = open_memstream(&body, &blen);
	int r;

	if (!bo) {
		client_close(c);
		return;
	}
	while (*line == ' ' || *line == '\t')
		line++;
	cmd = line;
	args = cmd + strcspn(cmd, " \t");
	if (*args)
		*args++ = '\0';
	while (*args == ' ' || *args == '\t')
		args++;

	s->current = (int)(c - s->clients);
	r = *cmd ? s->handler(s->ctx, cmd, args, bo) : -1;
	s->current = -1;
	if (!*cmd)
		fputs("empty request", bo);
	fclose(bo);
	if (r != CTL_DEFERRED)
		reply(c, r == 0, body, blen);
	free(body);
}

static void client_read(struct ctl_server *s, struct ctl_client *c)
{
	ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, MSG_DONTWAIT);
	char *nl;

	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		client_close(c);
		return;
	}
	c->len += (size_t)r;
	c->buf[c->len] = '\0';
	while (c->fd >= 0 && !c->deferred && (nl = memchr(c->buf, '\n', c->len)) != NULL) {
		size_t used = (size_t)(nl - c->buf) + 1;
		*nl = '\0';
		if (nl > c->buf && nl[-1] == '\r')
			nl[-1] = '\0';
		dispatch(s, c, c->buf);
		if (c->fd < 0)
			return;
		memmove(c->buf, c->buf + used, c->len - used);
		c->len -= used;
	}
	if (c->len >= sizeof(c->buf) - 1) {
		log_warn("control client sent a line over %d bytes: dropped", CTL_LINE_MAX);
		client_close(c);
	}
}

void ctl_server_service(struct ctl_server *s, const struct pollfd *pfds, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		if (!pfds[i].revents)
			continue;
		if (pfds[i].fd == s->listen_fd) {
			int fd;
			while ((fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
				unsigned k;
				for (k = 0; k < CTL_MAX_CLIENTS && s->clients[k].fd >= 0; k++)
					;
				if (k == CTL_MAX_CLIENTS) {
					log_warn("control socket: more than %d clients, refusing one",
						 CTL_MAX_CLIENTS);
					close(fd);
					continue;
				}
				s->clients[k].fd = fd;
				s->clients[k].len = 0;
				s->clients[k].deferred = false;
				s->clients[k].gen = ++s->next_gen;
			}
			continue;
		}
		for (unsigned k = 0; k < CTL_MAX_CLIENTS; k++)
			if (s->clients[k].fd == pfds[i].fd) {
				client_read(s, &s->clients[k]);
				break;
			}
	}
}
