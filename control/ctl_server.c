/*
 * ctl_server.c - control socket framing, limits, access and dispatch. See
 * ctl_server.h.
 *
 * A client slot goes
 *   free -> reading (a request line arrives in `in`)
 *        -> dispatched: answered at once, or deferred (a ticket is out)
 *        -> writing (the reply waits in `out` until the socket takes it)
 *        -> reading ... -> free
 * One request at a time: the next line is taken only once the reply is
 * written, so `in` and `out` are each one message (bounded), and a client
 * that sends faster than it reads is held back by its own socket buffer.
 * A slot marked `closing` (refused, oversized, timed out) writes its last
 * reply and is closed.
 */
#include "control/ctl_server.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"

#define PEER_GROUPS_MAX 1024	/* supplementary groups we look at */
#define REFUSAL_LOGS 10		/* log lines about refused peers per minute */

const char *const ctl_server_stat_names[] = { CTL_SERVER_STATS(STATS_NAME) };
const unsigned ctl_server_stat_count = STATS_COUNT(ctl_server_stat_names);

struct client {
	int fd;			/* -1: the slot is free */
	bool deferred;		/* a ticket is out: answer through ctl_server_answer_json */
	bool eof;		/* the peer shut its side: no more requests */
	bool closing;		/* close once `out` is written */
	uint64_t serial;	/* the deferred request's (its ticket's) */
	struct ctl_peer peer;
	uint64_t idle_since_ms;	/* connected, or last reply written */
	uint64_t req_start_ms;	/* first byte of the line being read (in_len > 0) */
	uint64_t out_since_ms;	/* reply queued, or the socket last took some */
	size_t in_len;
	char *in;		/* CTL_REQUEST_MAX bytes: one request line */
	char *out;		/* the reply being written (malloc'd), or NULL */
	size_t out_len, out_off;
};

struct ctl_server {
	int listen_fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct ctl_server_conf conf;
	const struct ctl_cmd *table;
	struct ctl_ctx *ctx;
	uint64_t now_ms;	/* as of the last ctl_server_service */
	uint64_t next_serial;
	/* the dispatch in progress (ctl_server_defer, ctl_server_answer_json) */
	int current;		/* its slot, or -1 */
	uint64_t cur_serial;
	bool cur_deferred, cur_answered;
	/* refused peers are logged at most REFUSAL_LOGS times a minute */
	uint64_t refusal_window_ms;
	unsigned refusal_logs;
	struct ctl_server_stats st;
	struct client clients[CTL_MAX_CLIENTS];
};

/* ---- the command table ---------------------------------------------------------- */

/* The sub-commands of family `name`, "a, b, c", into buf. */
static void subs_list(const struct ctl_cmd *t, const char *name, char *buf, size_t n)
{
	size_t used = 0;

	buf[0] = '\0';
	for (; t->name; t++)
		if (t->sub && strcmp(t->name, name) == 0 && used < n) {
			int w = snprintf(buf + used, n - used, "%s%s", used ? ", " : "", t->sub);
			if (w > 0)
				used += (size_t)w;
		}
}

const struct ctl_cmd *ctl_cmd_find(const struct ctl_cmd *table, int argc, char *const *argv,
				   int *words, char *err, size_t errlen)
{
	const struct ctl_cmd *bare = NULL, *t;
	bool known = false, family = false;
	char subs[256];

	if (argc < 1) {
		snprintf(err, errlen, "empty request");
		return NULL;
	}
	for (t = table; t->name; t++) {
		if (strcmp(t->name, argv[0]) != 0)
			continue;
		known = true;
		if (!t->sub)
			bare = t;
		else if (argc >= 2 && strcmp(t->sub, argv[1]) == 0) {
			*words = 2;
			return t;
		} else
			family = true;
	}
	if (bare) {
		*words = 1;
		return bare;
	}
	if (!known) {
		snprintf(err, errlen, "unknown command '%.64s' (sluicectl help lists them)", argv[0]);
		return NULL;
	}
	subs_list(table, argv[0], subs, sizeof(subs));
	if (argc < 2)
		snprintf(err, errlen, "'%.64s' needs one of: %s", argv[0], subs);
	else
		snprintf(err, errlen, "unknown command '%.64s %.64s' (%.64s takes: %s)", argv[0],
			 argv[1], argv[0], subs);
	(void)family;
	return NULL;
}

/* "route set DOMAIN NEXTHOP": the row's words and usage. */
static void usage_line(const struct ctl_cmd *t, char *buf, size_t n)
{
	snprintf(buf, n, "%s%s%s%s%s", t->name, t->sub ? " " : "", t->sub ? t->sub : "",
		 t->usage && t->usage[0] ? " " : "", t->usage ? t->usage : "");
}

int ctl_cmd_help(const struct ctl_cmd *table, int argc, char **argv, json_t **result)
{
	json_t *list = json_array();
	const struct ctl_cmd *t;
	bool one = false;

	if (argc >= 2)	/* "help route set": that row alone, if the family has it */
		for (t = table; t->name; t++)
			if (t->sub && !strcmp(t->name, argv[0]) && !strcmp(t->sub, argv[1]))
				one = true;
	for (t = table; list && t->name; t++) {
		char usage[512], words[160];
		if (argc >= 1 && strcmp(t->name, argv[0]) != 0)
			continue;
		if (one && (!t->sub || strcmp(t->sub, argv[1]) != 0))
			continue;
		usage_line(t, usage, sizeof(usage));
		snprintf(words, sizeof(words), "%s%s%s", t->name, t->sub ? " " : "",
			 t->sub ? t->sub : "");
		if (json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:s}", "command", words,
							  "access", t->access == CTL_ADMIN ?
							  "admin" : "read", "usage", usage,
							  "help", t->help ? t->help : "")) < 0) {
			json_decref(list);
			list = NULL;
		}
	}
	if (!list) {
		*result = json_string("out of memory");
		return -1;
	}
	if (argc >= 1 && json_array_size(list) == 0) {
		json_decref(list);
		*result = json_sprintf("unknown command '%.64s' (sluicectl help lists them)",
				       argv[0]);
		return -1;
	}
	*result = json_pack("{s:o}", "commands", list);
	return *result ? 0 : -1;
}

/* ---- access ---------------------------------------------------------------------- */

void ctl_server_conf_default(struct ctl_server_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->mode = 0660;
	c->group = CTL_NO_GROUP;
	c->read_group = CTL_NO_GROUP;
	c->request_timeout_ms = 10000;
	c->idle_timeout_ms = 60000;
	c->send_timeout_ms = 10000;
}

static bool in_groups(gid_t g, gid_t gid, const gid_t *groups, unsigned n)
{
	if (g == CTL_NO_GROUP)
		return false;
	if (gid == g)
		return true;
	for (unsigned i = 0; i < n; i++)
		if (groups[i] == g)
			return true;
	return false;
}

int ctl_access_level(const struct ctl_server_conf *c, uid_t uid, gid_t gid,
		     const gid_t *groups, unsigned n, enum ctl_access *level)
{
	if (uid == 0 || uid == geteuid() || in_groups(c->group, gid, groups, n)) {
		*level = CTL_ADMIN;
		return 0;
	}
	if (in_groups(c->read_group, gid, groups, n)) {
		*level = CTL_READ;
		return 0;
	}
	return -1;
}

/* The peer's credentials and supplementary groups; 0 or -errno. */
static int peer_read(int fd, struct ucred *cr, gid_t *groups, unsigned *n)
{
	socklen_t len = sizeof(*cr);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cr, &len) < 0)
		return -errno;
	len = (socklen_t)(PEER_GROUPS_MAX * sizeof(gid_t));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0) {
		/* ERANGE: more groups than we look at; ENOPROTOOPT: a kernel
		 * before 4.13. Either way the primary gid still counts. */
		*n = 0;
		return 0;
	}
	*n = (unsigned)(len / sizeof(gid_t));
	return 0;
}

/* ---- clients ---------------------------------------------------------------------- */

static void client_close(struct ctl_server *s, struct client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->in);
	free(c->out);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	(void)s;
}

static bool client_busy(const struct client *c)
{
	return c->deferred || c->closing || c->out_off < c->out_len;
}

/* Write what the socket takes of the pending reply. */
static void flush(struct ctl_server *s, struct client *c)
{
	while (c->fd >= 0 && c->out_off < c->out_len) {
		ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			c->out_off += (size_t)w;
			c->out_since_ms = s->now_ms;
			s->st.bytes_out += (uint64_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			s->st.out_waits++;
			return;		/* POLLOUT says when to go on */
		}
		log_info("control: uid %u pid %d went away before its reply was written",
			 c->peer.uid, c->peer.pid);
		client_close(s, c);
		return;
	}
	if (c->fd < 0)
		return;
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_off = 0;
	c->idle_since_ms = s->now_ms;
	if (c->in_len)
		c->req_start_ms = s->now_ms;	/* the next line's clock starts now */
	if (c->closing)
		client_close(s, c);
}

/* Queue a reply (takes value's reference) and start writing it. */
static void reply(struct ctl_server *s, struct client *c, bool ok, json_t *value)
{
	size_t len;
	bool too_large;
	char *line = ctl_reply_encode(ok, value, CTL_REPLY_MAX, &len, &too_large), *nb;

	if (too_large) {
		s->st.replies_too_large++;
		log_warn("control: a reply for uid %u was over %u bytes; an error was sent instead",
			 c->peer.uid, CTL_REPLY_MAX);
	}
	if (!line || c->fd < 0) {
		if (!line)
			log_err("control: out of memory for a reply; closing the connection");
		free(line);
		client_close(s, c);
		return;
	}
	if (c->out_off == c->out_len) {
		free(c->out);
		c->out = line;
		c->out_len = len;
		c->out_off = 0;
	} else {	/* after the reply being written (the refusals' line) */
		nb = realloc(c->out, c->out_len + len);
		if (!nb) {
			free(line);
			client_close(s, c);
			return;
		}
		memcpy(nb + c->out_len, line, len);
		free(line);
		c->out = nb;
		c->out_len += len;
	}
	c->out_since_ms = s->now_ms;
	flush(s, c);
}

static void reply_error(struct ctl_server *s, struct client *c, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void reply_error(struct ctl_server *s, struct client *c, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	reply(s, c, false, ctl_json_text(text));
}

/* A one-line error to a socket that is not (or no longer) a client: the
 * reply to its first request, written at once (a fresh socket's buffer
 * holds it) or not at all; then closed. */
static void refuse(int fd, const char *text)
{
	size_t len;
	char *line = ctl_reply_encode(false, ctl_json_text(text), CTL_REPLY_MAX, &len, NULL);

	if (line && send(fd, line, len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_debug("control: refusal not sent: %s", strerror(errno));
	free(line);
	close(fd);
}

static bool refusal_log_ok(struct ctl_server *s)
{
	if (s->now_ms - s->refusal_window_ms >= 60000) {
		s->refusal_window_ms = s->now_ms;
		s->refusal_logs = 0;
	}
	return s->refusal_logs++ < REFUSAL_LOGS;
}

/* The words of a request, joined and cut to fit buf (for log lines). */
static void words_text(int argc, char **argv, char *buf, size_t n)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int i = 0; i < argc && used + 1 < n; i++) {
		int w = snprintf(buf + used, n - used, "%s%s", i ? " " : "", argv[i]);
		if (w < 0)
			break;
		used += (size_t)w;
	}
	for (size_t i = 0; buf[i]; i++)	/* one log line, whatever was sent */
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
			buf[i] = '?';
}

static void dispatch(struct ctl_server *s, struct client *c, const char *line, size_t len)
{
	struct ctl_request rq;
	const struct ctl_cmd *cmd;
	json_t *result = NULL;
	char err[512], usage[512];
	int words = 0, r;

	if (ctl_request_parse(line, len, &rq, err, sizeof(err)) < 0) {
		s->st.bad_requests++;
		reply_error(s, c, "%s", err);
		return;
	}
	cmd = ctl_cmd_find(s->table, rq.argc, rq.argv, &words, err, sizeof(err));
	if (!cmd) {
		s->st.bad_requests++;
		reply_error(s, c, "%s", err);
		ctl_request_free(&rq);
		return;
	}
	usage_line(cmd, usage, sizeof(usage));
	if (cmd->access > c->peer.level) {
		s->st.denied++;
		reply_error(s, c, "'%s%s%s' changes the appliance and needs an admin (root or the "
			    "socket's group); uid %u gid %u may run read-only commands only",
			    cmd->name, cmd->sub ? " " : "", cmd->sub ? cmd->sub : "",
			    c->peer.uid, c->peer.gid);
		ctl_request_free(&rq);
		return;
	}
	if (cmd->access == CTL_ADMIN) {
		char text[256];
		words_text(rq.argc, rq.argv, text, sizeof(text));
		log_notice("control: uid %u pid %d: %s", c->peer.uid, c->peer.pid, text);
	}
	s->st.requests++;
	s->current = (int)(c - s->clients);
	s->cur_serial = ++s->next_serial;
	s->cur_deferred = s->cur_answered = false;
	r = cmd->fn(s->ctx, rq.argc - words, rq.argv + words, &result);
	s->current = -1;
	ctl_request_free(&rq);
	if (c->fd < 0) {	/* answered inside the handler, and the client went */
		json_decref(result);
		return;
	}
	if (r == CTL_DEFERRED) {
		json_decref(result);
		if (!s->cur_deferred)
			reply_error(s, c, "internal error: '%s' answered nothing", usage);
		else if (!s->cur_answered)
			s->st.deferred++;
		return;
	}
	if (s->cur_deferred && c->deferred) {
		c->deferred = false;	/* a ticket taken, then answered here: it is void */
		s->cur_answered = false;
	}
	if (s->cur_answered) {	/* answered through its ticket already */
		json_decref(result);
		return;
	}
	if (r == 0) {
		reply(s, c, true, result);
	} else if (r == CTL_USAGE) {
		json_decref(result);
		s->st.bad_requests++;
		reply_error(s, c, "usage: %s", usage);
	} else {
		reply(s, c, false, result);
	}
}

/* Take the requests waiting in `in`, one at a time, while nothing is owed. */
static void pump(struct ctl_server *s, struct client *c)
{
	while (c->fd >= 0 && !client_busy(c)) {
		char *nl = memchr(c->in, '\n', c->in_len);
		size_t len, used;

		if (nl) {
			len = (size_t)(nl - c->in);
			used = len + 1;
		} else if (c->in_len >= CTL_REQUEST_MAX) {
			s->st.oversized++;
			c->in_len = 0;
			c->closing = true;
			reply_error(s, c, "request over %u bytes: closing the connection",
				    CTL_REQUEST_MAX);
			return;
		} else if (c->eof && c->in_len) {
			len = used = c->in_len;	/* the last line, without its newline */
		} else if (c->eof) {
			client_close(s, c);
			return;
		} else {
			return;
		}
		if (len && c->in[len - 1] == '\r')
			len--;
		dispatch(s, c, c->in, len);
		if (c->fd < 0)
			return;
		memmove(c->in, c->in + used, c->in_len - used);
		c->in_len -= used;
		c->req_start_ms = s->now_ms;
	}
}

static void client_read(struct ctl_server *s, struct client *c)
{
	ssize_t r = recv(c->fd, c->in + c->in_len, CTL_REQUEST_MAX - c->in_len, MSG_DONTWAIT);

	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (r < 0) {
		client_close(s, c);
		return;
	}
	if (r == 0) {
		c->eof = true;
	} else {
		if (c->in_len == 0)
			c->req_start_ms = s->now_ms;
		c->in_len += (size_t)r;
	}
	pump(s, c);
}

/*
 * Make room: close the client idle or trickling a request for longest (at
 * least CTL_EVICT_AGE_MS), never one owed or being sent a reply. Its slot,
 * or -1.
 */
static int evict(struct ctl_server *s)
{
	int best = -1;
	uint64_t best_t = 0;

	for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
		struct client *c = &s->clients[i];
		uint64_t t;
		if (c->fd < 0 || client_busy(c))
			continue;
		t = c->in_len ? c->req_start_ms : c->idle_since_ms;
		if (s->now_ms - t < CTL_EVICT_AGE_MS)
			continue;
		if (best < 0 || t < best_t) {
			best = i;
			best_t = t;
		}
	}
	if (best < 0)
		return -1;
	s->st.evicted++;
	log_info("control: closing uid %u pid %d's connection (%s) to make room",
		 s->clients[best].peer.uid, s->clients[best].peer.pid,
		 s->clients[best].in_len ? "a request still incomplete" : "idle");
	if (s->clients[best].in_len)
		refuse(s->clients[best].fd, "closed to make room for another client: the request "
		       "was not complete");
	else
		close(s->clients[best].fd);
	s->clients[best].fd = -1;
	client_close(s, &s->clients[best]);
	return best;
}

static int client_take(struct ctl_server *s, int fd)
{
	gid_t *groups = malloc(PEER_GROUPS_MAX * sizeof(gid_t));
	struct ucred cr;
	enum ctl_access level;
	unsigned ng = 0;
	int slot = -1, r;
	char text[256];

	if (!groups) {
		close(fd);
		return -1;
	}
	r = peer_read(fd, &cr, groups, &ng);
	if (r < 0) {
		free(groups);
		log_warn("control: cannot read a peer's credentials: %s", strerror(-r));
		close(fd);
		return -1;
	}
	r = ctl_access_level(&s->conf, cr.uid, cr.gid, groups, ng, &level);
	free(groups);
	if (r < 0) {
		s->st.refused_peer++;
		if (refusal_log_ok(s))
			log_notice("control: refused uid %u gid %u pid %d: not root, not in the "
				   "control group or the read-only group", cr.uid, cr.gid, cr.pid);
		snprintf(text, sizeof(text), "uid %u gid %u may not use sluiced's control socket "
			 "(allowed: root, the socket's group, the read-only group)", cr.uid, cr.gid);
		refuse(fd, text);
		return -1;
	}
	for (int i = 0; i < CTL_MAX_CLIENTS && slot < 0; i++)
		if (s->clients[i].fd < 0)
			slot = i;
	if (slot < 0)
		slot = evict(s);
	if (slot < 0) {
		s->st.refused_busy++;
		if (refusal_log_ok(s))
			log_notice("control: %d clients connected and all busy: refused pid %d",
				   CTL_MAX_CLIENTS, cr.pid);
		snprintf(text, sizeof(text), "busy: %d control clients are connected and none "
			 "can be let go; try again", CTL_MAX_CLIENTS);
		refuse(fd, text);
		return -1;
	}
	struct client *c = &s->clients[slot];
	c->in = malloc(CTL_REQUEST_MAX);
	if (!c->in) {
		refuse(fd, "out of memory");
		c->fd = -1;
		return -1;
	}
	c->fd = fd;
	c->peer = (struct ctl_peer){ .pid = cr.pid, .uid = cr.uid, .gid = cr.gid, .level = level };
	c->idle_since_ms = s->now_ms;
	s->st.accepted++;
	return 0;
}

int ctl_server_adopt(struct ctl_server *s, int fd, uint64_t now_ms)
{
	int fl = fcntl(fd, F_GETFL);

	s->now_ms = now_ms;
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		close(fd);
		return -1;
	}
	return client_take(s, fd);
}

/* ---- deadlines ------------------------------------------------------------------- */

static void expire(struct ctl_server *s)
{
	for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
		struct client *c = &s->clients[i];
		uint64_t now = s->now_ms;

		if (c->fd < 0 || c->deferred)
			continue;
		if (c->out_off < c->out_len) {
			if (now - c->out_since_ms >= s->conf.send_timeout_ms) {
				s->st.send_timeouts++;
				log_info("control: uid %u pid %d took no reply byte for %llu ms: "
					 "closed", c->peer.uid, c->peer.pid,
					 (unsigned long long)(now - c->out_since_ms));
				client_close(s, c);
			}
		} else if (c->in_len) {
			if (now - c->req_start_ms >= s->conf.request_timeout_ms) {
				s->st.request_timeouts++;
				log_info("control: uid %u pid %d did not finish a request in %llu ms: "
					 "closed", c->peer.uid, c->peer.pid,
					 (unsigned long long)s->conf.request_timeout_ms);
				c->in_len = 0;
				c->closing = true;
				reply_error(s, c, "request not complete within %llu ms: closing the "
					    "connection",
					    (unsigned long long)s->conf.request_timeout_ms);
			}
		} else if (now - c->idle_since_ms >= s->conf.idle_timeout_ms) {
			s->st.idle_timeouts++;
			client_close(s, c);
		}
	}
}

/* ---- the server ------------------------------------------------------------------- */

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

/* The socket's directory, made if missing: 0750 with the control group
 * (members must reach the socket), 0755 when others may connect. */
static void make_dir(const struct ctl_server_conf *c, const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)], *slash;
	mode_t mode = (c->mode & 0007) ? 0755 : 0750;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return;
	*slash = '\0';
	if (mkdir(dir, mode) < 0) {
		if (errno != EEXIST)
			log_warn("control socket: mkdir %s: %s", dir, strerror(errno));
		return;
	}
	if (c->group != CTL_NO_GROUP && chown(dir, (uid_t)-1, c->group) < 0)
		log_warn("control socket: chown %s: %s", dir, strerror(errno));
}

/* Listen on c->path with its mode and group. 0 or -errno (logged). */
static int listen_on(struct ctl_server *s, const struct ctl_server_conf *c)
{
	struct sockaddr_un sa;
	int r, fd;

	if (strlen(c->path) >= sizeof(sa.sun_path)) {
		log_err("control socket path too long: %s", c->path);
		return -ENAMETOOLONG;
	}
	snprintf(s->path, sizeof(s->path), "%s", c->path);
	make_dir(c, c->path);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, c->path, strlen(c->path) + 1);
	r = socket_take_over(&sa);
	if (r == 1) {
		log_err("control socket %s answers: another sluiced is running; not starting",
			c->path);
		return -EADDRINUSE;
	}
	if (r < 0) {
		log_err("control socket %s: %s; not removing it", c->path, strerror(-r));
		return r;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Linux makes the file with the socket's own mode (less the umask):
	 * owner-only until the group and the mode are set below. */
	if (fchmod(fd, 0600) < 0)
		log_debug("control socket: fchmod: %s", strerror(errno));
	/* Two daemons starting at once: the second bind fails (EADDRINUSE). */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    (c->group != CTL_NO_GROUP && chown(c->path, (uid_t)-1, c->group) < 0) ||
	    chmod(c->path, c->mode) < 0 || listen(fd, 64) < 0) {
		int e = errno;
		log_err("control socket %s: %s", c->path, strerror(e));
		close(fd);
		return -e;
	}
	s->listen_fd = fd;
	log_info("control socket listening on %s (mode %04o)", c->path, c->mode);
	return 0;
}

struct ctl_server *ctl_server_open(const struct ctl_server_conf *conf, const struct ctl_cmd *table,
				   struct ctl_ctx *ctx, int *err)
{
	struct ctl_server *s = calloc(1, sizeof(*s));

	if (!s) {
		*err = -ENOMEM;
		return NULL;
	}
	s->listen_fd = -1;
	s->current = -1;
	s->conf = *conf;
	s->table = table;
	s->ctx = ctx;
	for (unsigned i = 0; i < CTL_MAX_CLIENTS; i++)
		s->clients[i].fd = -1;
	if (conf->path) {
		*err = listen_on(s, conf);
		if (*err < 0) {
			free(s);
			return NULL;
		}
	}
	s->conf.path = NULL;	/* the caller's; s->path is ours */
	return s;
}

void ctl_server_close(struct ctl_server *s)
{
	if (!s)
		return;
	for (unsigned i = 0; i < CTL_MAX_CLIENTS; i++)
		client_close(s, &s->clients[i]);
	if (s->listen_fd >= 0) {
		close(s->listen_fd);
		unlink(s->path);
	}
	free(s);
}

unsigned ctl_server_pollfds(const struct ctl_server *s, struct pollfd *pfds)
{
	unsigned n = 0;

	if (s->listen_fd >= 0)
		pfds[n++] = (struct pollfd){ .fd = s->listen_fd, .events = POLLIN };
	for (unsigned i = 0; i < CTL_MAX_CLIENTS; i++) {
		const struct client *c = &s->clients[i];
		short ev = 0;
		if (c->fd < 0)
			continue;
		if (c->out_off < c->out_len)
			ev = POLLOUT;
		else if (!c->deferred && !c->closing && !c->eof && c->in_len < CTL_REQUEST_MAX)
			ev = POLLIN;
		/* events 0 (deferred): poll still reports POLLHUP, a peer gone */
		pfds[n++] = (struct pollfd){ .fd = c->fd, .events = ev };
	}
	return n;
}

static void accept_all(struct ctl_server *s)
{
	int fd;

	while ((fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
		client_take(s, fd);
	if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
		log_warn("control socket: accept: %s", strerror(errno));
}

void ctl_server_service(struct ctl_server *s, const struct pollfd *pfds, unsigned n,
			uint64_t now_ms)
{
	s->now_ms = now_ms;
	for (unsigned i = 0; i < n; i++) {
		short re = pfds[i].revents;
		if (!re || pfds[i].fd < 0)
			continue;
		if (pfds[i].fd == s->listen_fd) {
			accept_all(s);
			continue;
		}
		for (unsigned k = 0; k < CTL_MAX_CLIENTS; k++) {
			struct client *c = &s->clients[k];
			if (c->fd != pfds[i].fd)
				continue;
			if (re & (POLLERR | POLLNVAL)) {
				client_close(s, c);
			} else if ((re & POLLHUP) && c->deferred) {
				client_close(s, c);	/* gone: its answer will be dropped */
			} else {
				if (re & POLLOUT)
					flush(s, c);
				if (c->fd >= 0 && (re & (POLLIN | POLLHUP)) && !client_busy(c))
					client_read(s, c);
				if (c->fd >= 0)
					pump(s, c);	/* lines left once a reply went out */
			}
			break;
		}
	}
	/* lines left waiting by an answer given inside another's handler */
	for (unsigned k = 0; k < CTL_MAX_CLIENTS; k++)
		if (s->clients[k].fd >= 0 && s->clients[k].in_len)
			pump(s, &s->clients[k]);
	expire(s);
}

/* ---- deferred answers ------------------------------------------------------------- */

int ctl_server_defer(struct ctl_server *s, struct ctl_ticket *t)
{
	struct client *c;

	if (s->current < 0)
		return -1;
	c = &s->clients[s->current];
	c->deferred = true;
	c->serial = s->cur_serial;
	s->cur_deferred = true;
	t->slot = (unsigned)s->current;
	t->serial = s->cur_serial;
	return 0;
}

void ctl_server_answer_json(struct ctl_server *s, struct ctl_ticket t, bool ok, json_t *value)
{
	struct client *c = t.slot < CTL_MAX_CLIENTS ? &s->clients[t.slot] : NULL;

	if (!c || c->fd < 0 || !c->deferred || c->serial != t.serial) {
		s->st.stale_answers++;	/* the client left; the slot may be another's */
		json_decref(value);
		return;
	}
	c->deferred = false;
	if (s->current == (int)t.slot && s->cur_serial == t.serial)
		s->cur_answered = true;
	reply(s, c, ok, value);
	if (c->fd >= 0 && s->current < 0)
		pump(s, c);
}

void ctl_server_answer_error(struct ctl_server *s, struct ctl_ticket t, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	ctl_server_answer_json(s, t, false, ctl_json_text(text));
}

const struct ctl_peer *ctl_server_peer(const struct ctl_server *s)
{
	return s->current < 0 ? NULL : &s->clients[s->current].peer;
}

void ctl_server_stats_visit(const struct ctl_server *s, stats_visit_fn fn, void *user)
{
	struct ctl_server_stats st = s->st;

	st.clients = st.out_bytes = 0;
	for (unsigned i = 0; i < CTL_MAX_CLIENTS; i++)
		if (s->clients[i].fd >= 0) {
			st.clients++;
			st.out_bytes += s->clients[i].out_len - s->clients[i].out_off;
		}
	stats_visit(fn, user, "ctl", ctl_server_stat_names, STATS_VALUES(&st),
		    ctl_server_stat_count);
}
