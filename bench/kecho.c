/*
 * kecho.c - kernel-socket TCP echo server: the kernel-vs-kernel baseline that
 * bench/tcp-bench runs over a veth pair against sluiced's echo service.
 *
 *   kecho ADDR PORT [MAX_CONNS]
 *
 * One thread, nonblocking sockets, one level-triggered epoll set. Each
 * connection has a bounded buffer; while it holds data the socket would not
 * take, the connection stops reading (back-pressure reaches the peer through
 * TCP flow control). On the peer's FIN the rest is flushed and the connection
 * closed, as sluiced's echo service does. Connections beyond MAX_CONNS
 * (default 4096) are accepted and closed at once. Prints "kecho: listening on
 * ADDR:PORT" when ready; runs until SIGTERM or SIGINT.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_sock.h"

#define BUF_BYTES (256u * 1024u)	/* per-connection echo buffer */
#define MAX_EVENTS 256
#define DEFAULT_MAX_CONNS 4096u
#define LIMIT_MAX_CONNS 65536u
#define LISTEN_ID UINT64_MAX	/* epoll data of the listening socket */

struct kconn {
	int fd;
	bool reading;	/* EPOLLIN wanted (buffer empty) */
	bool eof;	/* peer sent FIN */
	size_t len, off;	/* bytes in buf, bytes of them already written */
	uint8_t *buf;
};

struct server {
	int lfd, ep;
	unsigned max_conns;
	struct kconn *conns;
	unsigned *free_slots;
	unsigned nfree;
	unsigned long long accepted, refused, closed, errors;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void raise_nofile(rlim_t n)
{
	bench_raise_nofile(n, "kecho");
}

static int ep_set(int ep, int op, int fd, uint32_t events, uint64_t data)
{
	return bench_ep_set(ep, op, fd, events, data, "kecho");
}

static void conn_close(struct server *s, unsigned i)
{
	struct kconn *k = &s->conns[i];

	if (close(k->fd) != 0)
		s->errors++;
	k->fd = -1;
	k->len = k->off = 0;
	s->closed++;
	s->free_slots[s->nfree++] = i;
}

/* Write what is buffered; returns -1 on error, else 0 (maybe still pending). */
static int conn_flush(struct kconn *k)
{
	while (k->off < k->len) {
		ssize_t n = write(k->fd, k->buf + k->off, k->len - k->off);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		k->off += (size_t)n;
	}
	k->len = k->off = 0;
	return 0;
}

/* Read one buffer's worth and echo it; -1 on error. */
static int conn_read(struct kconn *k)
{
	ssize_t n = read(k->fd, k->buf, BUF_BYTES);

	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if (n == 0) {
		k->eof = true;
		return 0;
	}
	k->len = (size_t)n;
	k->off = 0;
	return conn_flush(k);
}

/* Readiness on connection i: echo, apply back-pressure, close when done. */
static void conn_event(struct server *s, unsigned i, uint32_t ev)
{
	struct kconn *k = &s->conns[i];
	bool want_in;

	if (k->len > k->off && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && conn_flush(k) < 0)
		goto fail;
	if (k->len == k->off && !k->eof && (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) &&
	    conn_read(k) < 0)
		goto fail;
	if (k->eof && k->len == k->off) {
		conn_close(s, i);
		return;
	}
	want_in = k->len == k->off;
	if (want_in != k->reading) {
		k->reading = want_in;
		if (ep_set(s->ep, EPOLL_CTL_MOD, k->fd, want_in ? EPOLLIN : EPOLLOUT, i) < 0)
			goto fail;
	}
	return;
fail:
	s->errors++;
	conn_close(s, i);
}

static void accept_one(struct server *s, int fd)
{
	int one = 1;
	unsigned i;

	if (s->nfree == 0) {
		s->refused++;
		if (close(fd) != 0)
			s->errors++;
		return;
	}
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
		s->errors++;
	i = s->free_slots[--s->nfree];
	s->conns[i].fd = fd;
	/* a slot's buffer is allocated on its first use and kept for reuse */
	if (!s->conns[i].buf && !(s->conns[i].buf = malloc(BUF_BYTES))) {
		fprintf(stderr, "kecho: out of memory for a connection buffer\n");
		s->errors++;
		conn_close(s, i);
		return;
	}
	s->conns[i].reading = true;
	s->conns[i].eof = false;
	s->accepted++;
	if (ep_set(s->ep, EPOLL_CTL_ADD, fd, EPOLLIN, i) < 0) {
		s->errors++;
		conn_close(s, i);
	}
}

static void accept_all(struct server *s)
{
	for (;;) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
				perror("kecho: accept4");
				s->errors++;
			}
			return;
		}
		accept_one(s, fd);
	}
}

static int listen_on(struct server *s, const char *addr, const char *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	char *end = NULL;
	unsigned long p = strtoul(port, &end, 10);
	int one = 1;

	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1 || !end || *end || p == 0 || p > 65535) {
		fprintf(stderr, "kecho: bad address '%s' or port '%s'\n", addr, port);
		return -1;
	}
	sa.sin_port = htons((uint16_t)p);
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->lfd < 0 ||
	    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(s->lfd, 4096) != 0) {
		fprintf(stderr, "kecho: cannot listen on %s:%s: %s\n", addr, port, strerror(errno));
		return -1;
	}
	return ep_set(s->ep, EPOLL_CTL_ADD, s->lfd, EPOLLIN, LISTEN_ID);
}

static int server_init(struct server *s, unsigned max_conns)
{
	s->max_conns = max_conns;
	s->conns = calloc(max_conns, sizeof(*s->conns));
	for (unsigned i = 0; s->conns && i < max_conns; i++)
		s->conns[i].fd = -1;
	s->free_slots = calloc(max_conns, sizeof(*s->free_slots));
	s->ep = epoll_create1(EPOLL_CLOEXEC);
	if (!s->conns || !s->free_slots || s->ep < 0) {
		fprintf(stderr, "kecho: out of memory or epoll_create1 failed\n");
		return -1;
	}
	for (unsigned i = 0; i < max_conns; i++)
		s->free_slots[s->nfree++] = max_conns - 1 - i;
	return 0;
}

static int serve(struct server *s)
{
	while (!stop) {
		struct epoll_event evs[MAX_EVENTS];
		int n = epoll_wait(s->ep, evs, MAX_EVENTS, 200);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("kecho: epoll_wait");
			return -1;
		}
		for (int i = 0; i < n; i++) {
			uint64_t id = evs[i].data.u64;
			if (id == LISTEN_ID)
				accept_all(s);
			else if (s->conns[id].fd >= 0)
				conn_event(s, (unsigned)id, evs[i].events);
		}
	}
	return 0;
}

static void server_free(struct server *s)
{
	for (unsigned i = 0; s->conns && i < s->max_conns; i++) {
		if (s->conns[i].fd >= 0 && close(s->conns[i].fd) != 0)
			s->errors++;
		free(s->conns[i].buf);
	}
	if (s->lfd >= 0 && close(s->lfd) != 0)
		s->errors++;
	if (s->ep >= 0 && close(s->ep) != 0)
		s->errors++;
	free(s->conns);
	free(s->free_slots);
}

int main(int argc, char **argv)
{
	struct server s = { .lfd = -1, .ep = -1 };
	unsigned long max = DEFAULT_MAX_CONNS;
	struct sigaction sa = { .sa_handler = on_signal };
	int rc;

	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: kecho ADDR PORT [MAX_CONNS]\n");
		return 2;
	}
	if (argc == 4) {
		char *end = NULL;
		max = strtoul(argv[3], &end, 10);
		if (!end || *end || max == 0 || max > LIMIT_MAX_CONNS) {
			fprintf(stderr, "kecho: MAX_CONNS must be 1..%u\n", LIMIT_MAX_CONNS);
			return 2;
		}
	}
	if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0 ||
	    signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
		perror("kecho: sigaction");
		return 1;
	}
	raise_nofile((rlim_t)max + 64);
	if (server_init(&s, (unsigned)max) < 0 || listen_on(&s, argv[1], argv[2]) < 0) {
		server_free(&s);
		return 1;
	}
	printf("kecho: listening on %s:%s\n", argv[1], argv[2]);
	fflush(stdout);
	rc = serve(&s) < 0 ? 1 : 0;
	server_free(&s);
	fprintf(stderr, "kecho: accepted %llu, refused %llu, closed %llu, errors %llu\n",
		s.accepted, s.refused, s.closed, s.errors);
	return rc;
}
