/*
 * dns_responder.c - an in-process DNS server behind the resolver's socket
 * seam. See dns_responder.h. Test code: bounded tables, aborts on misuse.
 */
#include "tests/support/dns_responder.h"

#include <arpa/inet.h>
#include <ares.h>
#include <ares_dns.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define ZONE_MAX 512
#define SERVERS_MAX 4
#define SOCKS_MAX 32
#define QLOG_MAX 8192
#define DGRAMS_MAX 16
#define MSG_MAX 65535
#define STREAM_MAX (1 << 18)
#define OVERRIDES_MAX 64

struct rr {
	char owner[256];
	int type;
	uint32_t ttl;
	uint16_t rdlen;
	uint8_t rdata[600];
	char target[256];	/* CNAME: the name it points to */
};

struct server {
	struct net_addr addr;
	uint16_t port;		/* network order */
	enum dnsr_mode mode;
};

struct dgram {
	size_t len;
	uint8_t *data;
};

struct rsock {
	bool used;
	int type;
	int server;		/* -1: nobody there */
	bool connecting, connected, failed;
	unsigned events;	/* to report at the next poll */
	unsigned ndg;		/* UDP: datagrams waiting */
	struct dgram dg[DGRAMS_MAX];
	uint8_t *in;		/* TCP: bytes from us to the server, partial frames */
	size_t in_len;
	uint8_t *out;		/* TCP: bytes from the server to us */
	size_t out_len;
	/* answers a DNSR_HOLD server kept */
	unsigned nheld;
	struct dgram held[DGRAMS_MAX];
};

struct qlog {
	char name[256];
	int type, proto, server;
};

struct override {
	char name[256];
	int type, rcode;
	bool truncate;
};

struct dnsr {
	struct dns_sock_ops ops;
	unsigned nservers, nzone, nover, nq, fail_opens;
	unsigned udp_slots;	/* UDP sends taken per poll (0: no limit) */
	unsigned udp_taken;	/* since the last poll */
	unsigned udp_refused;	/* sends answered -EAGAIN */
	struct server srv[SERVERS_MAX];
	struct rr zone[ZONE_MAX];
	struct override over[OVERRIDES_MAX];
	struct rsock s[SOCKS_MAX];
	struct qlog q[QLOG_MAX];
	uint8_t *raw[2];
	size_t raw_len[2];
	char raw_name[256];	/* "": any */
	int raw_type;		/* 0: any */
};

#define CHECK(x) do { if (!(x)) { fprintf(stderr, "dns_responder: %s failed\n", #x); abort(); } } while (0)

/* ---- the encoder (test side) ---- */

/* "a.b.c" or "." into wire labels; returns the length. */
static size_t name_wire(const char *name, uint8_t *out)
{
	size_t o = 0;
	const char *s = name;

	while (*s && strcmp(s, ".") != 0) {
		const char *dot = strchr(s, '.');
		size_t l = dot ? (size_t)(dot - s) : strlen(s);
		CHECK(l > 0 && l < 64);
		out[o++] = (uint8_t)l;
		memcpy(out + o, s, l);
		o += l;
		s += l;
		if (*s == '.')
			s++;
	}
	out[o++] = 0;
	return o;
}

static void put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p + 2, v & 0xffff);
}

static void canon(const char *in, char *out)
{
	size_t n = strlen(in);

	CHECK(n < 256);
	for (size_t i = 0; i < n; i++)
		out[i] = (char)((in[i] >= 'A' && in[i] <= 'Z') ? in[i] - 'A' + 'a' : in[i]);
	if (n > 1 && out[n - 1] == '.')
		n--;
	out[n] = '\0';
}

void dnsr_rr(struct dnsr *z, const char *owner, int type, uint32_t ttl, const char *rdata)
{
	struct rr *r;
	char a[256], b[256];
	unsigned pref;
	uint32_t v[5];

	CHECK(z->nzone < ZONE_MAX);
	r = &z->zone[z->nzone++];
	memset(r, 0, sizeof(*r));
	canon(owner, r->owner);
	r->type = type;
	r->ttl = ttl;
	switch (type) {
	case DNSR_A:
		CHECK(inet_pton(AF_INET, rdata, r->rdata) == 1);
		r->rdlen = 4;
		break;
	case DNSR_AAAA:
		CHECK(inet_pton(AF_INET6, rdata, r->rdata) == 1);
		r->rdlen = 16;
		break;
	case DNSR_MX:
		CHECK(sscanf(rdata, "%u %255s", &pref, a) == 2);
		put16(r->rdata, pref);
		r->rdlen = (uint16_t)(2 + name_wire(a, r->rdata + 2));
		break;
	case DNSR_CNAME:
	case DNSR_PTR:
	case DNSR_NS:
		r->rdlen = (uint16_t)name_wire(rdata, r->rdata);
		canon(rdata, r->target);
		break;
	case DNSR_SOA:
		CHECK(sscanf(rdata, "%255s %255s %u %u %u %u %u", a, b, &v[0], &v[1], &v[2], &v[3],
			     &v[4]) == 7);
		r->rdlen = (uint16_t)name_wire(a, r->rdata);
		r->rdlen = (uint16_t)(r->rdlen + name_wire(b, r->rdata + r->rdlen));
		for (int i = 0; i < 5; i++, r->rdlen += 4)
			put32(r->rdata + r->rdlen, v[i]);
		break;
	default:
		CHECK(!"type the responder knows");
	}
}

void dnsr_rcode(struct dnsr *z, const char *name, int type, int rcode)
{
	struct override *o;

	CHECK(z->nover < OVERRIDES_MAX);
	o = &z->over[z->nover++];
	memset(o, 0, sizeof(*o));
	canon(name, o->name);
	o->type = type;
	o->rcode = rcode;
}

void dnsr_truncate(struct dnsr *z, const char *name)
{
	struct override *o;

	CHECK(z->nover < OVERRIDES_MAX);
	o = &z->over[z->nover++];
	memset(o, 0, sizeof(*o));
	canon(name, o->name);
	o->rcode = -1;
	o->truncate = true;
}

void dnsr_raw(struct dnsr *z, const char *name, int type, bool tcp, const uint8_t *reply,
	      size_t len)
{
	z->raw_type = type;
	if (name)
		canon(name, z->raw_name);
	else
		z->raw_name[0] = '\0';
	free(z->raw[tcp]);
	z->raw[tcp] = NULL;
	z->raw_len[tcp] = 0;
	if (len) {
		z->raw[tcp] = malloc(len);
		CHECK(z->raw[tcp]);
		memcpy(z->raw[tcp], reply, len);
		z->raw_len[tcp] = len;
	}
}

void dnsr_fail_opens(struct dnsr *z, unsigned count)
{
	z->fail_opens = count;
}

void dnsr_udp_slots(struct dnsr *z, unsigned n)
{
	z->udp_slots = n;
}

unsigned dnsr_udp_refused(const struct dnsr *z)
{
	return z->udp_refused;
}

/* A reply under construction. */
struct msg {
	uint8_t b[MSG_MAX];
	size_t len;
	unsigned an, ns;
};

static void add_rr(struct msg *m, const struct rr *r, const char *qname)
{
	size_t need = 2 + 256 + 10 + r->rdlen;

	CHECK(m->len + need < sizeof(m->b));
	if (strcasecmp(r->owner, qname) == 0) {	/* compressed: points at the question */
		put16(m->b + m->len, 0xc000 | 12);
		m->len += 2;
	} else {
		m->len += name_wire(r->owner, m->b + m->len);
	}
	put16(m->b + m->len, (unsigned)r->type);
	put16(m->b + m->len + 2, 1);
	put32(m->b + m->len + 4, r->ttl);
	put16(m->b + m->len + 8, r->rdlen);
	memcpy(m->b + m->len + 10, r->rdata, r->rdlen);
	m->len += 10 + r->rdlen;
}

static bool name_exists(const struct dnsr *z, const char *name)
{
	for (unsigned i = 0; i < z->nzone; i++)
		if (strcmp(z->zone[i].owner, name) == 0)
			return true;
	return false;
}

static const struct rr *soa_for(const struct dnsr *z, const char *name)
{
	for (const char *d = name; d; d = strchr(d, '.') ? strchr(d, '.') + 1 : NULL)
		for (unsigned i = 0; i < z->nzone; i++)
			if (z->zone[i].type == DNSR_SOA && strcmp(z->zone[i].owner, d) == 0)
				return &z->zone[i];
	return NULL;
}

/*
 * Answer the query q (len n) over proto into m. Returns false when there
 * is nothing to answer (not a query we can read).
 */
static bool answer(struct dnsr *z, const uint8_t *q, size_t n, int proto, int server,
		   struct msg *m)
{
	char *qname = NULL, cur[256], key[256];
	long nl;
	const uint8_t *p;
	int qtype, rcode = DNSR_NOERROR;
	unsigned payload = 512, found = 0;
	bool truncate = false;
	size_t qend;

	if (n < 12 || DNS_HEADER_QR(q) || DNS_HEADER_QDCOUNT(q) != 1)
		return false;
	if (ares_expand_name(q + 12, q, (int)n, &qname, &nl) != ARES_SUCCESS)
		return false;
	p = q + 12 + nl;
	if (p + 4 > q + n) {
		ares_free_string(qname);
		return false;
	}
	qtype = DNS_QUESTION_TYPE(p);
	qend = (size_t)(p + 4 - q);
	canon(qname, key);
	ares_free_string(qname);
	/* an OPT record (EDNS0) in the additional section: its class is the payload */
	if (DNS_HEADER_ARCOUNT(q) >= 1 && qend + 11 <= n && q[qend] == 0 &&
	    DNS_RR_TYPE(q + qend + 1) == 41)
		payload = DNS_RR_CLASS(q + qend + 1) < 512 ? 512 : DNS_RR_CLASS(q + qend + 1);
	CHECK(z->nq < QLOG_MAX);
	snprintf(z->q[z->nq].name, sizeof(z->q[0].name), "%s", key);
	z->q[z->nq].type = qtype;
	z->q[z->nq].proto = proto;
	z->q[z->nq].server = server;
	z->nq++;

	if (z->raw[proto == SOCK_STREAM] && (!z->raw_name[0] || strcmp(z->raw_name, key) == 0) &&
	    (!z->raw_type || z->raw_type == qtype)) {
		size_t rl = z->raw_len[proto == SOCK_STREAM];
		CHECK(rl <= sizeof(m->b));
		memcpy(m->b, z->raw[proto == SOCK_STREAM], rl);
		if (rl >= 2)
			memcpy(m->b, q, 2);	/* the query's ID */
		m->len = rl;
		return true;
	}

	memcpy(m->b, q, qend);	/* header and question */
	m->len = qend;
	m->an = m->ns = 0;
	for (unsigned i = 0; i < z->nover; i++) {
		const struct override *o = &z->over[i];
		if (strcmp(o->name, key) != 0)
			continue;
		if (o->truncate && proto == SOCK_DGRAM)
			truncate = true;
		if (o->rcode >= 0 && (o->type == 0 || o->type == qtype))
			rcode = o->rcode;
	}
	snprintf(cur, sizeof(cur), "%s", key);
	if (rcode == DNSR_NOERROR) {
		for (unsigned hop = 0; hop < 8; hop++) {
			const struct rr *cname = NULL;
			found = 0;
			for (unsigned i = 0; i < z->nzone; i++) {
				const struct rr *r = &z->zone[i];
				if (strcmp(r->owner, cur) != 0)
					continue;
				if (r->type == qtype) {
					add_rr(m, r, key);
					m->an++;
					found++;
				} else if (r->type == DNSR_CNAME) {
					cname = r;
				}
			}
			if (found || !cname)
				break;
			add_rr(m, cname, key);
			m->an++;
			snprintf(cur, sizeof(cur), "%s", cname->target);
		}
		if (!found) {
			const struct rr *soa = soa_for(z, cur);
			if (!name_exists(z, cur))
				rcode = DNSR_NXDOMAIN;
			if (soa) {
				add_rr(m, soa, key);
				m->ns++;
			}
		}
	}
	m->b[2] = (uint8_t)(0x80 | (q[2] & 0x79) | 0x04);	/* QR, opcode, AA, RD */
	m->b[3] = (uint8_t)(0x80 | (rcode & 0xf));		/* RA, rcode */
	if (proto == SOCK_DGRAM && (truncate || m->len > payload)) {
		m->b[2] |= 0x02;	/* TC: the records are left out */
		m->len = qend;
		m->an = m->ns = 0;
	}
	DNS_HEADER_SET_ANCOUNT(m->b, m->an);
	DNS_HEADER_SET_NSCOUNT(m->b, m->ns);
	DNS_HEADER_SET_ARCOUNT(m->b, 0);
	return true;
}

/* ---- the sockets ---- */

static struct dnsr *Z(void *ctx)
{
	return ctx;
}

static struct rsock *sock(struct dnsr *z, int id)
{
	CHECK(id >= 0 && id < SOCKS_MAX && z->s[id].used);
	return &z->s[id];
}

static int r_open(void *ctx, int type)
{
	struct dnsr *z = Z(ctx);

	CHECK(type == SOCK_DGRAM || type == SOCK_STREAM);
	if (z->fail_opens) {
		z->fail_opens--;
		return -EMFILE;
	}
	for (int i = 0; i < SOCKS_MAX; i++)
		if (!z->s[i].used) {
			memset(&z->s[i], 0, sizeof(z->s[i]));
			z->s[i].used = true;
			z->s[i].type = type;
			z->s[i].server = -1;
			return i;
		}
	return -EMFILE;
}

static int r_connect(void *ctx, int id, const struct net_addr *addr, uint16_t port)
{
	struct dnsr *z = Z(ctx);
	struct rsock *s = sock(z, id);

	for (unsigned i = 0; i < z->nservers; i++)
		if (net_addr_eq(&z->srv[i].addr, addr) && z->srv[i].port == port)
			s->server = (int)i;
	if (s->type == SOCK_DGRAM) {
		s->connected = true;
		return 0;
	}
	s->connecting = true;
	if (s->server < 0 || z->srv[s->server].mode == DNSR_NO_TCP)
		s->failed = true;
	s->events |= s->failed ? DNS_SOCK_ERROR : DNS_SOCK_WRITABLE;
	return -EINPROGRESS;
}

static void deliver_reply(struct dnsr *z, struct rsock *s, const struct msg *m)
{
	enum dnsr_mode mode = z->srv[s->server].mode;
	struct dgram d;

	if (mode == DNSR_SILENT)
		return;
	d.len = m->len + (s->type == SOCK_STREAM ? 2 : 0);
	d.data = malloc(d.len);
	CHECK(d.data);
	if (s->type == SOCK_STREAM) {
		put16(d.data, (unsigned)m->len);
		memcpy(d.data + 2, m->b, m->len);
	} else {
		memcpy(d.data, m->b, m->len);
	}
	if (mode == DNSR_HOLD) {
		CHECK(s->nheld < DGRAMS_MAX);
		s->held[s->nheld++] = d;
		return;
	}
	if (s->type == SOCK_DGRAM) {
		if (s->ndg == DGRAMS_MAX) {	/* a full receive queue drops */
			free(d.data);
			return;
		}
		s->dg[s->ndg++] = d;
	} else {
		CHECK(s->out_len + d.len <= STREAM_MAX);
		s->out = realloc(s->out, s->out_len + d.len);
		CHECK(s->out);
		memcpy(s->out + s->out_len, d.data, d.len);
		s->out_len += d.len;
		free(d.data);
	}
	s->events |= DNS_SOCK_READABLE;
}

static ssize_t r_send(void *ctx, int id, const struct iovec *iov, int n)
{
	struct dnsr *z = Z(ctx);
	struct rsock *s = sock(z, id);
	static struct msg m;
	size_t total = 0;

	if (s->type == SOCK_STREAM && (!s->connected || s->failed))
		return s->failed ? -ECONNREFUSED : -ENOTCONN;
	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;
	if (s->type == SOCK_DGRAM) {
		uint8_t buf[4096];
		size_t o = 0;
		if (z->udp_slots && z->udp_taken >= z->udp_slots) {
			z->udp_refused++;
			return -EAGAIN;	/* as a dpsock with no slot free */
		}
		z->udp_taken++;
		CHECK(total <= sizeof(buf));
		for (int i = 0; i < n; i++) {
			memcpy(buf + o, iov[i].iov_base, iov[i].iov_len);
			o += iov[i].iov_len;
		}
		if (s->server >= 0 && answer(z, buf, o, SOCK_DGRAM, s->server, &m))
			deliver_reply(z, s, &m);
		return (ssize_t)total;
	}
	CHECK(s->in_len + total <= STREAM_MAX);
	s->in = realloc(s->in, s->in_len + total);
	CHECK(s->in);
	for (int i = 0; i < n; i++) {
		memcpy(s->in + s->in_len, iov[i].iov_base, iov[i].iov_len);
		s->in_len += iov[i].iov_len;
	}
	while (s->in_len >= 2) {	/* whole frames */
		size_t fl = (size_t)s->in[0] << 8 | s->in[1];
		if (s->in_len < 2 + fl)
			break;
		if (answer(z, s->in + 2, fl, SOCK_STREAM, s->server, &m))
			deliver_reply(z, s, &m);
		memmove(s->in, s->in + 2 + fl, s->in_len - 2 - fl);
		s->in_len -= 2 + fl;
	}
	return (ssize_t)total;
}

static ssize_t r_recv(void *ctx, int id, void *buf, size_t cap, struct net_addr *from,
		      uint16_t *fport)
{
	struct dnsr *z = Z(ctx);
	struct rsock *s = sock(z, id);
	size_t n;

	if (s->server >= 0) {
		*from = z->srv[s->server].addr;
		*fport = z->srv[s->server].port;
	}
	if (s->type == SOCK_DGRAM) {
		if (s->ndg == 0)
			return -EAGAIN;
		n = s->dg[0].len < cap ? s->dg[0].len : cap;	/* the rest of it is lost */
		memcpy(buf, s->dg[0].data, n);
		free(s->dg[0].data);
		memmove(&s->dg[0], &s->dg[1], --s->ndg * sizeof(s->dg[0]));
		return (ssize_t)n;
	}
	if (s->failed)
		return -ECONNREFUSED;
	if (!s->connected)
		return -ENOTCONN;
	if (s->out_len == 0)
		return -EAGAIN;
	n = s->out_len < cap ? s->out_len : cap;
	memcpy(buf, s->out, n);
	memmove(s->out, s->out + n, s->out_len - n);
	s->out_len -= n;
	return (ssize_t)n;
}

static void sock_free(struct rsock *s)
{
	for (unsigned i = 0; i < s->ndg; i++)
		free(s->dg[i].data);
	for (unsigned i = 0; i < s->nheld; i++)
		free(s->held[i].data);
	free(s->in);
	free(s->out);
	memset(s, 0, sizeof(*s));
}

static int r_close(void *ctx, int id)
{
	sock_free(sock(Z(ctx), id));
	return 0;
}

static unsigned r_poll(void *ctx, dns_sock_event_fn cb, void *user)
{
	struct dnsr *z = Z(ctx);
	unsigned n = 0;

	z->udp_taken = 0;	/* the slots come back */
	for (int i = 0; i < SOCKS_MAX; i++) {
		struct rsock *s = &z->s[i];
		unsigned ev = s->events;

		if (!s->used || !ev)
			continue;
		s->events = 0;
		if (s->connecting && (ev & DNS_SOCK_WRITABLE)) {
			s->connecting = false;
			s->connected = true;
		}
		cb(user, i, ev);
		n++;
	}
	return n;
}

void dnsr_release(struct dnsr *z, int server)
{
	for (int i = 0; i < SOCKS_MAX; i++) {
		struct rsock *s = &z->s[i];
		enum dnsr_mode keep = z->srv[server].mode;

		if (!s->used || s->server != server)
			continue;
		z->srv[server].mode = DNSR_ANSWER;
		for (unsigned k = 0; k < s->nheld; k++) {
			struct msg *m = malloc(sizeof(*m));
			size_t off = s->type == SOCK_STREAM ? 2 : 0;
			CHECK(m);
			m->len = s->held[k].len - off;
			memcpy(m->b, s->held[k].data + off, m->len);
			deliver_reply(z, s, m);
			free(m);
			free(s->held[k].data);
		}
		s->nheld = 0;
		z->srv[server].mode = keep;
	}
}

/* ---- set-up and questions ---- */

struct dnsr *dnsr_create(void)
{
	struct dnsr *z = calloc(1, sizeof(*z));

	CHECK(z);
	z->ops.ctx = z;
	z->ops.open = r_open;
	z->ops.connect = r_connect;
	z->ops.send = r_send;
	z->ops.recv = r_recv;
	z->ops.close = r_close;
	z->ops.poll = r_poll;
	return z;
}

void dnsr_destroy(struct dnsr *z)
{
	if (!z)
		return;
	for (int i = 0; i < SOCKS_MAX; i++)
		if (z->s[i].used)
			sock_free(&z->s[i]);
	free(z->raw[0]);
	free(z->raw[1]);
	free(z);
}

const struct dns_sock_ops *dnsr_ops(struct dnsr *z)
{
	return &z->ops;
}

int dnsr_server(struct dnsr *z, const char *ipport, enum dnsr_mode mode)
{
	char ip[64];
	const char *colon = strchr(ipport, ':');
	struct server *s;
	struct in_addr a4;
	struct in6_addr a6;

	CHECK(z->nservers < SERVERS_MAX);
	s = &z->srv[z->nservers];
	if (ipport[0] == '[') {		/* [v6]:port */
		const char *rb = strchr(ipport, ']');
		CHECK(rb);
		snprintf(ip, sizeof(ip), "%.*s", (int)(rb - ipport - 1), ipport + 1);
		CHECK(inet_pton(AF_INET6, ip, &a6) == 1);
		s->addr = net_addr_v6(a6.s6_addr);
		colon = rb[1] == ':' ? rb + 1 : NULL;
	} else {
		snprintf(ip, sizeof(ip), "%.*s", colon ? (int)(colon - ipport) : (int)strlen(ipport),
			 ipport);
		CHECK(inet_pton(AF_INET, ip, &a4) == 1);
		s->addr = net_addr_v4(a4.s_addr);
	}
	s->port = htons(colon ? (uint16_t)atoi(colon + 1) : 53);
	s->mode = mode;
	return (int)z->nservers++;
}

void dnsr_set_mode(struct dnsr *z, int server, enum dnsr_mode mode)
{
	CHECK(server >= 0 && (unsigned)server < z->nservers);
	z->srv[server].mode = mode;
}

unsigned dnsr_queries(const struct dnsr *z, const char *name, int type, int proto, int server)
{
	char key[256];
	unsigned n = 0;

	canon(name, key);
	for (unsigned i = 0; i < z->nq; i++)
		if (strcmp(z->q[i].name, key) == 0 && (!type || z->q[i].type == type) &&
		    (!proto || z->q[i].proto == proto) && (server < 0 || z->q[i].server == server))
			n++;
	return n;
}

unsigned dnsr_sockets_open(const struct dnsr *z)
{
	unsigned n = 0;

	for (int i = 0; i < SOCKS_MAX; i++)
		n += z->s[i].used;
	return n;
}
