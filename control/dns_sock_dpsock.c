/*
 * dns_sock_dpsock.c - the resolver's sockets are dpsocks: UDP sockets and
 * TCP connections on a worker lcore's stack, driven from this (control)
 * thread over the hub's rings (dataplane/dpsock.h). This is the production
 * implementation of dns_sock.h's seam, and where dns_create() lives.
 *
 * control/meson.build compiles this file only once dataplane/dpsock.h
 * exists.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "control/dns.h"
#include "control/dns_sock.h"
#include "dataplane/dpsock.h"

static int dp_open(void *ctx, int type)
{
	return dpsock_open(ctx, type);
}

static int dp_connect(void *ctx, int id, const struct net_addr *addr, uint16_t port)
{
	return dpsock_connect_addr(ctx, id, addr, (rte_be16_t)port);
}

static ssize_t dp_send(void *ctx, int id, const struct iovec *iov, int n)
{
	return dpsock_send(ctx, id, iov, n);
}

static ssize_t dp_recv(void *ctx, int id, void *buf, size_t cap, struct net_addr *from,
		       uint16_t *fport)
{
	rte_be16_t p = 0;
	ssize_t n;

	memset(from, 0, sizeof(*from));
	n = dpsock_recv_addr(ctx, id, buf, cap, from, &p);
	*fport = p;
	return n;
}

static int dp_close(void *ctx, int id)
{
	return dpsock_close(ctx, id);
}

/* dpsock's event bits to the seam's, whatever their values. */
struct dp_poll_ctx {
	dns_sock_event_fn cb;
	void *user;
};

static void dp_event(void *user, int id, unsigned what)
{
	struct dp_poll_ctx *pc = user;
	unsigned w = 0;

	if (what & DPSOCK_READABLE)
		w |= DNS_SOCK_READABLE;
	if (what & DPSOCK_WRITABLE)
		w |= DNS_SOCK_WRITABLE;
	if (what & DPSOCK_ERROR)
		w |= DNS_SOCK_ERROR;
	pc->cb(pc->user, id, w);
}

static unsigned dp_poll(void *ctx, dns_sock_event_fn cb, void *user)
{
	struct dp_poll_ctx pc = { cb, user };

	return dpsock_poll(ctx, dp_event, &pc);
}

struct dns_resolver *dns_create(const struct dns_conf *c, struct dpsock_hub *hub, uint64_t now_ms)
{
	const struct dns_sock_ops ops = {
		.ctx = hub,
		.open = dp_open,
		.connect = dp_connect,
		.send = dp_send,
		.recv = dp_recv,
		.close = dp_close,
		.poll = dp_poll,
	};

	if (!hub) {
		errno = EINVAL;
		return NULL;
	}
	return dns_create_ops(c, &ops, now_ms);
}
