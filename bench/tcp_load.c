/*
 * tcp_load.c - kernel-socket TCP load client for bench/tcp-bench (issue 3,
 * acceptance 6). It drives any TCP echo server, so the same client measures
 * sluiced's stack behind a tap and the kernel's own stack over a veth pair.
 *
 *   tcp_load bulk HOST PORT BYTES
 *       One connection: send BYTES of a deterministic pseudo-random stream
 *       while reading the echo back. Reports MB/s each way and checks that
 *       the byte count and a position-dependent checksum of what came back
 *       equal those of what was sent.
 *   tcp_load cps HOST PORT COUNT CONCURRENCY
 *       COUNT connections, at most CONCURRENCY at once: each opens, sends
 *       64 bytes, reads the 64 back (content checked) and closes. Reports
 *       connections per second, latency percentiles and failures.
 *
 * Prints one JSON line on stdout; exits 0 only when everything verified.
 * Every wait is bounded: no progress on a bulk connection for IDLE_TIMEOUT_MS,
 * a cps connection older than CONN_TIMEOUT_MS, or the whole run exceeding
 * RUN_TIMEOUT_S is a failure. Nonblocking sockets, one epoll set.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_sock.h"

#define IDLE_TIMEOUT_MS 10000	/* bulk: longest wait without progress */
#define CONN_TIMEOUT_MS 10000	/* cps: longest life of one connection */
#define RUN_TIMEOUT_S 600	/* whole run */
#define BULK_CHUNK (256u * 1024u)	/* bytes per write/read call */
#define BULK_MAX_BYTES (64ull << 30)
#define CPS_MSG 64u	/* bytes each cps connection echoes */
#define CPS_MAX_COUNT 10000000ul
#define CPS_MAX_CONC 16384u
#define MAX_EVENTS 256
#define TICK_MS 50	/* cps: how often deadlines are checked */

/* ---- time -------------------------------------------------------------- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
		perror("tcp_load: clock_gettime");
		exit(2);
	}
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- the stream and its checksum --------------------------------------- */

/* Word w of the bulk stream (splitmix64 of the word index). */
static uint64_t stream_word(uint64_t w)
{
	uint64_t x = w * 0x9E3779B97F4A7C15ull + 0x5151ull;

	x ^= x >> 30;
	x *= 0xBF58476D1CE4E5B9ull;
	x ^= x >> 27;
	x *= 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

/* Fill buf with stream bytes [off, off + len); off must be a multiple of 8. */
static void stream_fill(uint8_t *buf, uint64_t off, size_t len)
{
	uint64_t w = off / 8;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8, w++) {
		uint64_t x = stream_word(w);
		memcpy(buf + i, &x, 8);
	}
	if (i < len) {
		uint64_t x = stream_word(w);
		memcpy(buf + i, &x, len - i);
	}
}

/*
 * Position-dependent checksum over 8-byte words of the stream (independent of
 * how the stream is cut into reads): h = rotl(h ^ word, 23) * odd constant.
 */
struct csum {
	uint64_t h;
	uint8_t part[8];
	unsigned npart;
};

static void csum_word(struct csum *c, uint64_t w)
{
	uint64_t x = c->h ^ w;

	c->h = ((x << 23) | (x >> 41)) * 0x100000001B3ull;
}

static void csum_add(struct csum *c, const uint8_t *p, size_t len)
{
	uint64_t w;

	while (c->npart > 0 && c->npart < 8 && len > 0) {
		c->part[c->npart++] = *p++;
		len--;
	}
	if (c->npart == 8) {
		memcpy(&w, c->part, 8);
		csum_word(c, w);
		c->npart = 0;
	}
	for (; len >= 8; p += 8, len -= 8) {
		memcpy(&w, p, 8);
		csum_word(c, w);
	}
	memcpy(c->part, p, len);
	c->npart = (unsigned)len;
}

static uint64_t csum_final(const struct csum *c)
{
	struct csum t = *c;
	uint64_t w = 0;

	if (t.npart > 0) {
		memcpy(&w, t.part, t.npart);
		csum_word(&t, w ^ ((uint64_t)t.npart << 56));
	}
	return t.h;
}

/* ---- sockets ----------------------------------------------------------- */

static int parse_target(const char *host, const char *port, struct sockaddr_in *sa)
{
	char *end = NULL;
	unsigned long p;

	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	if (inet_pton(AF_INET, host, &sa->sin_addr) != 1) {
		fprintf(stderr, "tcp_load: bad IPv4 address '%s'\n", host);
		return -1;
	}
	errno = 0;
	p = strtoul(port, &end, 10);
	if (errno || !end || *end || p == 0 || p > 65535) {
		fprintf(stderr, "tcp_load: bad port '%s'\n", port);
		return -1;
	}
	sa->sin_port = htons((uint16_t)p);
	return 0;
}

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end = NULL;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || !end || *end || v < lo || v > hi) {
		fprintf(stderr, "tcp_load: '%s' is not a number in [%" PRIu64 ", %" PRIu64 "]\n",
			s, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

/* Start a nonblocking connect; returns the fd, or -1 (errno kept). */
static int start_connect(const struct sockaddr_in *sa)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;

	if (fd < 0)
		return -1;
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
	    (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0 &&
	     errno != EINPROGRESS)) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* After EPOLLOUT on a connecting socket: 0 if connected, else the error. */
static int connect_result(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		return errno;
	return err;
}

static void raise_nofile(rlim_t n)
{
	bench_raise_nofile(n, "tcp_load");
}

static int ep_set(int ep, int op, int fd, uint32_t events, uint64_t data)
{
	return bench_ep_set(ep, op, fd, events, data, "tcp_load");
}

/* ---- bulk -------------------------------------------------------------- */

struct bulk {
	int fd, ep;
	uint64_t total;
	uint64_t sent, rcvd;
	uint8_t *txbuf, *rxbuf;
	size_t txlen, txoff;	/* bytes of txbuf filled, and already written */
	struct csum csent, crcvd;
	uint64_t t0, t_sent, t_rcvd, t_progress;
	bool connected, want_out;
	const char *err;
};

/* Write as much as the socket takes; refills txbuf from the stream. */
static int bulk_write(struct bulk *b)
{
	while (b->sent < b->total) {
		ssize_t n;

		if (b->txoff == b->txlen) {
			uint64_t left = b->total - b->sent;
			b->txlen = left < BULK_CHUNK ? (size_t)left : BULK_CHUNK;
			b->txoff = 0;
			stream_fill(b->txbuf, b->sent, b->txlen);
			csum_add(&b->csent, b->txbuf, b->txlen);
		}
		n = write(b->fd, b->txbuf + b->txoff, b->txlen - b->txoff);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			b->err = strerror(errno);
			return -1;
		}
		b->txoff += (size_t)n;
		b->sent += (uint64_t)n;
		b->t_progress = now_ns();
	}
	if (!b->t_sent)
		b->t_sent = now_ns();
	return 0;
}

static int bulk_read(struct bulk *b)
{
	for (;;) {
		ssize_t n = read(b->fd, b->rxbuf, BULK_CHUNK);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			b->err = strerror(errno);
			return -1;
		}
		if (n == 0) {
			b->err = "server closed before echoing everything";
			return -1;
		}
		if (b->rcvd + (uint64_t)n > b->total) {
			b->err = "server echoed more bytes than were sent";
			return -1;
		}
		csum_add(&b->crcvd, b->rxbuf, (size_t)n);
		b->rcvd += (uint64_t)n;
		b->t_progress = now_ns();
		if (b->rcvd == b->total) {
			b->t_rcvd = b->t_progress;
			return 0;
		}
	}
}

/* Handle one readiness report; 1 when done, 0 to go on, -1 on error. */
static int bulk_event(struct bulk *b, uint32_t ev)
{
	if (!b->connected) {
		int e = connect_result(b->fd);
		if (e != 0) {
			b->err = strerror(e);
			return -1;
		}
		b->connected = true;
		b->t0 = b->t_progress = now_ns();
	}
	if ((ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) && bulk_read(b) < 0)
		return -1;
	if ((ev & EPOLLOUT) && bulk_write(b) < 0)
		return -1;
	if (b->want_out && b->sent == b->total) {
		b->want_out = false;
		if (ep_set(b->ep, EPOLL_CTL_MOD, b->fd, EPOLLIN, 0) < 0) {
			b->err = "epoll_ctl failed";
			return -1;
		}
	}
	return b->rcvd == b->total ? 1 : 0;
}

static int bulk_loop(struct bulk *b)
{
	uint64_t run_end = now_ns() + (uint64_t)RUN_TIMEOUT_S * 1000000000ull;

	b->t_progress = now_ns();
	for (;;) {
		struct epoll_event evs[4];
		int n = epoll_wait(b->ep, evs, 4, 100);
		uint64_t t;

		if (n < 0 && errno != EINTR) {
			b->err = strerror(errno);
			return -1;
		}
		for (int i = 0; i < n; i++) {
			int r = bulk_event(b, evs[i].events);
			if (r != 0)
				return r < 0 ? -1 : 0;
		}
		t = now_ns();
		if (t - b->t_progress > (uint64_t)IDLE_TIMEOUT_MS * 1000000ull) {
			b->err = b->connected ? "no progress within the idle timeout"
					      : "connect timed out";
			return -1;
		}
		if (t > run_end) {
			b->err = "run timeout";
			return -1;
		}
	}
}

static double mbps(uint64_t bytes, uint64_t t0, uint64_t t1)
{
	return t1 > t0 ? (double)bytes / 1e6 / ((double)(t1 - t0) / 1e9) : 0.0;
}

static void bulk_report(const struct bulk *b, const struct sockaddr_in *sa, bool ok)
{
	char host[INET_ADDRSTRLEN] = "?";
	uint64_t cs = csum_final(&b->csent), cr = csum_final(&b->crcvd);
	uint64_t end = b->t_rcvd ? b->t_rcvd : now_ns();

	if (!inet_ntop(AF_INET, &sa->sin_addr, host, sizeof(host)))
		snprintf(host, sizeof(host), "?");
	printf("{\"mode\":\"bulk\",\"host\":\"%s\",\"port\":%u,\"bytes\":%" PRIu64
	       ",\"sent\":%" PRIu64 ",\"received\":%" PRIu64
	       ",\"checksum_sent\":\"%016" PRIx64 "\",\"checksum_received\":\"%016" PRIx64
	       "\",\"seconds\":%.3f,\"tx_MBps\":%.1f,\"rx_MBps\":%.1f,\"ok\":%s",
	       host, ntohs(sa->sin_port), b->total, b->sent, b->rcvd, cs, cr,
	       b->t0 ? (double)(end - b->t0) / 1e9 : 0.0,
	       b->t_sent ? mbps(b->sent, b->t0, b->t_sent) : 0.0,
	       b->t_rcvd ? mbps(b->rcvd, b->t0, b->t_rcvd) : 0.0,
	       ok ? "true" : "false");
	if (!ok)
		printf(",\"error\":\"%s\"", b->err ? b->err : "checksum mismatch");
	printf("}\n");
}

static int run_bulk(const struct sockaddr_in *sa, uint64_t total)
{
	struct bulk b = { .fd = -1, .ep = -1, .total = total, .want_out = true };
	bool ok = false;

	b.txbuf = malloc(BULK_CHUNK);
	b.rxbuf = malloc(BULK_CHUNK);
	b.ep = epoll_create1(EPOLL_CLOEXEC);
	if (!b.txbuf || !b.rxbuf || b.ep < 0) {
		fprintf(stderr, "tcp_load: out of memory or epoll_create1 failed\n");
		goto out;
	}
	b.fd = start_connect(sa);
	if (b.fd < 0) {
		b.err = strerror(errno);
		goto done;
	}
	if (ep_set(b.ep, EPOLL_CTL_ADD, b.fd, EPOLLIN | EPOLLOUT, 0) < 0) {
		b.err = "epoll_ctl failed";
		goto done;
	}
	if (bulk_loop(&b) == 0)
		ok = b.sent == total && b.rcvd == total &&
		     csum_final(&b.csent) == csum_final(&b.crcvd);
done:
	bulk_report(&b, sa, ok);
	if (!ok)
		fprintf(stderr, "tcp_load: bulk failed: %s\n", b.err ? b.err : "checksum mismatch");
out:
	if (b.fd >= 0)
		close(b.fd);
	if (b.ep >= 0)
		close(b.ep);
	free(b.txbuf);
	free(b.rxbuf);
	return ok ? 0 : 1;
}

/* ---- cps --------------------------------------------------------------- */

enum cstate { C_FREE, C_CONNECTING, C_WAIT_ECHO };

struct cconn {
	int fd;
	enum cstate st;
	uint64_t id;	/* connection number: seeds its 64 bytes */
	uint64_t t0;
	unsigned got;
	uint8_t rx[CPS_MSG];
};

struct cps {
	int ep;
	struct sockaddr_in sa;
	uint64_t count, conc;
	uint64_t started, done, ok, failed, active;
	struct cconn *conns;
	uint32_t *free_slots;	/* stack of free slot numbers */
	uint64_t nfree;
	uint32_t *lat_us;	/* latency of each successful connection */
	uint64_t fail_connect, fail_io, fail_data, fail_timeout, fail_socket;
	char first_err[128];
};

static void cps_msg(uint64_t id, uint8_t *buf)
{
	for (unsigned i = 0; i < CPS_MSG; i += 8) {
		uint64_t x = stream_word(id * (CPS_MSG / 8) + i / 8);
		memcpy(buf + i, &x, 8);
	}
}

static void cps_note_err(struct cps *p, uint64_t *counter, const char *what, int e)
{
	(*counter)++;
	if (!p->first_err[0])
		snprintf(p->first_err, sizeof(p->first_err), "%s%s%s", what,
			 e ? ": " : "", e ? strerror(e) : "");
}

/* Close slot c; ok tells whether it completed its echo. */
static void cps_finish(struct cps *p, struct cconn *c, bool ok)
{
	if (close(c->fd) != 0 && ok) {
		ok = false;
		cps_note_err(p, &p->fail_io, "close", errno);
	}
	if (ok) {
		uint64_t us = (now_ns() - c->t0) / 1000;
		p->lat_us[p->ok++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
	} else {
		p->failed++;
	}
	c->fd = -1;
	c->st = C_FREE;
	p->done++;
	p->active--;
	p->free_slots[p->nfree++] = (uint32_t)(c - p->conns);
}

/* Open connection number p->started in slot c (taken off the free stack). */
static void cps_open(struct cps *p, struct cconn *c)
{
	c->id = p->started++;
	c->t0 = now_ns();
	c->got = 0;
	c->fd = start_connect(&p->sa);
	p->active++;
	if (c->fd < 0) {
		cps_note_err(p, &p->fail_socket, "socket/connect", errno);
		p->failed++;
		p->done++;
		p->active--;
		c->st = C_FREE;
		p->free_slots[p->nfree++] = (uint32_t)(c - p->conns);
		return;
	}
	c->st = C_CONNECTING;
	if (ep_set(p->ep, EPOLL_CTL_ADD, c->fd, EPOLLOUT, (uint64_t)(c - p->conns)) < 0) {
		cps_note_err(p, &p->fail_socket, "epoll_ctl", errno);
		cps_finish(p, c, false);
	}
}

static void cps_fill(struct cps *p)
{
	while (p->nfree > 0 && p->started < p->count)
		cps_open(p, &p->conns[p->free_slots[--p->nfree]]);
}

static void cps_connected(struct cps *p, struct cconn *c)
{
	uint8_t msg[CPS_MSG];
	int e = connect_result(c->fd);
	ssize_t n;

	if (e != 0) {
		cps_note_err(p, &p->fail_connect, "connect", e);
		cps_finish(p, c, false);
		return;
	}
	cps_msg(c->id, msg);
	n = write(c->fd, msg, sizeof(msg));
	if (n != (ssize_t)sizeof(msg)) {
		cps_note_err(p, &p->fail_io, n < 0 ? "write" : "write: short", n < 0 ? errno : 0);
		cps_finish(p, c, false);
		return;
	}
	c->st = C_WAIT_ECHO;
	if (ep_set(p->ep, EPOLL_CTL_MOD, c->fd, EPOLLIN, (uint64_t)(c - p->conns)) < 0) {
		cps_note_err(p, &p->fail_io, "epoll_ctl", errno);
		cps_finish(p, c, false);
	}
}

static void cps_readable(struct cps *p, struct cconn *c)
{
	uint8_t want[CPS_MSG];
	ssize_t n = read(c->fd, c->rx + c->got, CPS_MSG - c->got);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		if (n == 0)
			cps_note_err(p, &p->fail_io, "read: closed before the echo", 0);
		else
			cps_note_err(p, &p->fail_io, "read", errno);
		cps_finish(p, c, false);
		return;
	}
	c->got += (unsigned)n;
	if (c->got < CPS_MSG)
		return;
	cps_msg(c->id, want);
	if (memcmp(want, c->rx, CPS_MSG) != 0) {
		cps_note_err(p, &p->fail_data, "echo content differs", 0);
		cps_finish(p, c, false);
		return;
	}
	cps_finish(p, c, true);
}

static void cps_event(struct cps *p, const struct epoll_event *ev)
{
	struct cconn *c = &p->conns[ev->data.u64];

	if (c->st == C_CONNECTING)
		cps_connected(p, c);
	else if (c->st == C_WAIT_ECHO)
		cps_readable(p, c);
}

static void cps_expire(struct cps *p, uint64_t t)
{
	for (uint64_t i = 0; i < p->conc; i++) {
		struct cconn *c = &p->conns[i];
		if (c->st != C_FREE && t - c->t0 > (uint64_t)CONN_TIMEOUT_MS * 1000000ull) {
			cps_note_err(p, &p->fail_timeout,
				     c->st == C_CONNECTING ? "connect timeout" : "echo timeout",
				     ETIMEDOUT);
			cps_finish(p, c, false);
		}
	}
}

static int cps_loop(struct cps *p)
{
	uint64_t run_end = now_ns() + (uint64_t)RUN_TIMEOUT_S * 1000000000ull;
	uint64_t next_tick = now_ns() + (uint64_t)TICK_MS * 1000000ull;

	cps_fill(p);
	while (p->done < p->count) {
		struct epoll_event evs[MAX_EVENTS];
		int n = epoll_wait(p->ep, evs, MAX_EVENTS, TICK_MS);
		uint64_t t;

		if (n < 0 && errno != EINTR) {
			perror("tcp_load: epoll_wait");
			return -1;
		}
		for (int i = 0; i < n; i++)
			cps_event(p, &evs[i]);
		t = now_ns();
		if (t >= next_tick) {
			cps_expire(p, t);
			next_tick = t + (uint64_t)TICK_MS * 1000000ull;
		}
		if (t > run_end) {
			fprintf(stderr, "tcp_load: cps run timeout\n");
			return -1;
		}
		cps_fill(p);
	}
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static double pct_ms(const struct cps *p, double q)
{
	uint64_t i;

	if (p->ok == 0)
		return 0.0;
	i = (uint64_t)(q * (double)(p->ok - 1));
	return p->lat_us[i] / 1000.0;
}

static void cps_report(struct cps *p, double secs)
{
	char host[INET_ADDRSTRLEN] = "?";

	if (!inet_ntop(AF_INET, &p->sa.sin_addr, host, sizeof(host)))
		snprintf(host, sizeof(host), "?");
	qsort(p->lat_us, p->ok, sizeof(p->lat_us[0]), cmp_u32);
	printf("{\"mode\":\"cps\",\"host\":\"%s\",\"port\":%u,\"count\":%" PRIu64
	       ",\"concurrency\":%" PRIu64 ",\"ok\":%" PRIu64 ",\"failed\":%" PRIu64
	       ",\"seconds\":%.3f,\"cps\":%.1f,\"lat_ms_p50\":%.3f,\"lat_ms_p99\":%.3f"
	       ",\"lat_ms_max\":%.3f,\"fail_socket\":%" PRIu64 ",\"fail_connect\":%" PRIu64
	       ",\"fail_io\":%" PRIu64 ",\"fail_data\":%" PRIu64 ",\"fail_timeout\":%" PRIu64,
	       host, ntohs(p->sa.sin_port), p->count, p->conc, p->ok, p->failed, secs,
	       secs > 0 ? (double)p->ok / secs : 0.0, pct_ms(p, 0.50), pct_ms(p, 0.99),
	       pct_ms(p, 1.0), p->fail_socket, p->fail_connect, p->fail_io, p->fail_data,
	       p->fail_timeout);
	if (p->first_err[0])
		printf(",\"first_error\":\"%s\"", p->first_err);
	printf(",\"ok_all\":%s}\n", p->failed == 0 && p->ok == p->count ? "true" : "false");
}

static int run_cps(const struct sockaddr_in *sa, uint64_t count, uint64_t conc)
{
	struct cps p = { .ep = -1, .sa = *sa, .count = count, .conc = conc };
	uint64_t t0;
	int r, rc = 1;

	p.conns = calloc(conc, sizeof(*p.conns));
	p.free_slots = calloc(conc, sizeof(*p.free_slots));
	p.lat_us = calloc(count, sizeof(*p.lat_us));
	p.ep = epoll_create1(EPOLL_CLOEXEC);
	if (!p.conns || !p.free_slots || !p.lat_us || p.ep < 0) {
		fprintf(stderr, "tcp_load: out of memory or epoll_create1 failed\n");
		goto out;
	}
	for (uint64_t i = 0; i < conc; i++) {
		p.conns[i].fd = -1;
		p.free_slots[p.nfree++] = (uint32_t)(conc - 1 - i);
	}
	t0 = now_ns();
	r = cps_loop(&p);
	cps_report(&p, (double)(now_ns() - t0) / 1e9);
	if (r == 0 && p.failed == 0 && p.ok == count)
		rc = 0;
	else
		fprintf(stderr, "tcp_load: cps: %" PRIu64 " of %" PRIu64 " failed (first: %s)\n",
			p.failed + (count - p.done), count, p.first_err[0] ? p.first_err : "-");
out:
	for (uint64_t i = 0; p.conns && i < conc; i++)
		if (p.conns[i].fd >= 0)
			close(p.conns[i].fd);
	if (p.ep >= 0)
		close(p.ep);
	free(p.conns);
	free(p.free_slots);
	free(p.lat_us);
	return rc;
}

/* ---- main -------------------------------------------------------------- */

static int usage(void)
{
	fprintf(stderr, "usage: tcp_load bulk HOST PORT BYTES\n"
			"       tcp_load cps HOST PORT COUNT CONCURRENCY\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa;
	uint64_t a, b;

	if (argc < 2)
		return usage();
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
		perror("tcp_load: signal");
		return 2;
	}
	if (strcmp(argv[1], "bulk") == 0 && argc == 5) {
		if (parse_target(argv[2], argv[3], &sa) < 0 ||
		    parse_u64(argv[4], 1, BULK_MAX_BYTES, &a) < 0)
			return 2;
		return run_bulk(&sa, a);
	}
	if (strcmp(argv[1], "cps") == 0 && argc == 6) {
		if (parse_target(argv[2], argv[3], &sa) < 0 ||
		    parse_u64(argv[4], 1, CPS_MAX_COUNT, &a) < 0 ||
		    parse_u64(argv[5], 1, CPS_MAX_CONC, &b) < 0)
			return 2;
		raise_nofile((rlim_t)b + 64);
		return run_cps(&sa, a, b < a ? b : a);
	}
	return usage();
}
