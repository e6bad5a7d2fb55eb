/*
 * dpsock.c - sockets on the dataplane for control-plane threads. See dpsock.h.
 *
 * Who touches what: a hub's control half (its socket table, the free lists
 * of request slots) only the hub's thread; each pair's lcore half (its
 * socket table, the free list of event slots, staging buffers) only that
 * lcore. They meet only in the two SP/SC rings, whose enqueue and dequeue
 * order the slot contents (release/acquire).
 *
 * Ring entries are slot pointers (8-byte aligned: bit 0 clear) or small
 * messages (bit 0 set): kind in bits 1-7, socket id in bits 8-23, a value
 * (an errno) in bits 32-63.
 *
 * Why the rings never fill: on the request ring there can be at most every
 * request slot, every event slot coming back, and one close per socket id;
 * on the event ring every event slot, every request slot coming back, and
 * per socket id one each of connected, error, end of stream and released
 * (an id is reused only after its released message is taken, and each of
 * the others is sent once per use). The rings are made that large.
 */
#include "dataplane/dpsock.h"

#include <errno.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <rte_mbuf.h>
#include <rte_ring.h>

#include "common/ring.h"
#include "dataplane/net/tcp.h"
#include "dataplane/net/udp.h"

const char *const dpsock_hub_stat_names[] = { DPSOCK_HUB_STATS(STATS_NAME) };
const unsigned dpsock_hub_stat_count = STATS_COUNT(dpsock_hub_stat_names);
const char *const dpsock_lcore_stat_names[] = { DPSOCK_LCORE_STATS(STATS_NAME) };
const unsigned dpsock_lcore_stat_count = STATS_COUNT(dpsock_lcore_stat_names);

#define BURST 32

/* Slot kinds. Requests travel to the lcore and come back empty; data
 * events travel to the control side and come back empty. */
enum { M_CONNECT = 1, M_SEND, M_DATA };

/* Small messages (in the ring entry). */
enum { S_CLOSE = 1, S_CONNECTED, S_ERROR, S_EOF, S_RELEASED };

struct dpsock_msg {
	struct dpsock_msg *next;	/* list link, on whichever side holds it */
	uint8_t kind;			/* M_* */
	uint8_t type;			/* M_CONNECT: SOCK_DGRAM or SOCK_STREAM */
	uint16_t id;			/* socket */
	rte_be16_t port;		/* M_CONNECT: peer; M_DATA (UDP): source */
	struct net_addr addr;		/* either family */
	uint32_t len;			/* bytes in data */
	uint32_t off;			/* bytes of data already taken */
	uint8_t data[DPSOCK_MSG_MAX];
};

static void *small(unsigned kind, unsigned id, uint32_t val)
{
	return (void *)(uintptr_t)(1u | kind << 1 | (uint64_t)id << 8 | (uint64_t)val << 32);
}

static bool is_small(const void *e)
{
	return (uintptr_t)e & 1u;
}

static unsigned small_kind(const void *e) { return ((uintptr_t)e >> 1) & 0x7f; }
static unsigned small_id(const void *e) { return ((uintptr_t)e >> 8) & 0xffff; }
static uint32_t small_val(const void *e) { return (uint32_t)((uint64_t)(uintptr_t)e >> 32); }

/* ---- the two halves ---- */

/* A socket as the control side sees it. */
enum { C_FREE = 0, C_OPEN, C_CONNECTING, C_READY, C_CLOSING };
struct ctl_sock {
	uint8_t state;
	uint8_t type;			/* SOCK_DGRAM or SOCK_STREAM */
	uint8_t flags;			/* DPSOCK_* to report at this poll */
	bool dirty;			/* in the hub's dirty list */
	bool want_write;		/* we said -EAGAIN or took less */
	bool eof;			/* TCP: the peer's end of stream */
	int err;			/* errno once failed (sticky) */
	int pair;			/* serving lcore; -1 before connect */
	unsigned req_out;		/* request slots on the lcore side */
	struct dpsock_msg *rx_head, *rx_tail;	/* data slots to read */
};

/* A socket as the serving lcore sees it. */
enum { L_FREE = 0, L_UDP, L_TCP };
#define P_CONNECTED 1u	/* small messages owed to the control side */
#define P_ERROR 2u
#define P_EOF 4u
struct lc_sock {
	uint8_t state;
	uint8_t pend;			/* P_* */
	bool dirty;			/* in the pair's dirty list */
	uint16_t id;
	int err;
	unsigned evt_out;		/* event slots on the control side */
	struct dpsock_pair *p;
	struct udp_sock *u;		/* L_UDP; NULL if the open failed */
	struct tcp_conn *c;		/* L_TCP; NULL once gone */
	struct dpsock_msg *sq_head, *sq_tail;	/* TCP: data not yet in tcp_send */
	int st;				/* TCP: staging buffer index, -1: none */
	uint32_t st_head, st_len;	/* staged bytes: a ring in that buffer */
};

struct pair_ctl {
	struct dpsock_msg **free;	/* free request slots */
	unsigned nfree;
};

struct pair_lc {
	struct dpsock_lcore *l;		/* NULL until an lcore attaches */
	struct dpsock_msg **free;	/* free event slots */
	unsigned nfree;
	struct lc_sock *socks;		/* by id */
	uint16_t *dirty;		/* ids with something to move */
	unsigned ndirty;
	uint8_t *staging;		/* tcp_max buffers of tcp_rxbuf bytes */
	unsigned *st_free;
	unsigned nst_free;
};

/* One hub and one lcore: two rings, the slots, the two halves apart. */
struct dpsock_pair {
	struct rte_ring *req, *evt;
	struct dpsock_msg *slots;	/* req_slots + evt_slots */
	struct dpsock_hub *h;
	unsigned index;
	alignas(64) struct pair_ctl ctl;
	alignas(64) struct pair_lc lc;
};

struct dpsock_hub {
	struct dpsock_conf conf;
	unsigned npairs;
	unsigned rr;			/* next pair to try at connect */
	struct dpsock_pair *pairs;
	struct ctl_sock *socks;		/* by id */
	unsigned *free_ids;
	unsigned nfree;
	unsigned nwant;			/* sockets with want_write */
	uint16_t *dirty;		/* ids to report at this poll */
	unsigned ndirty;
	struct dpsock_hub_stats stats;
};

struct dpsock_lcore {
	unsigned index;
	struct udp_stack *us;
	struct tcp_stack *ts;
	unsigned npairs;
	struct dpsock_pair **pairs;
	struct dpsock_lcore_stats stats;
};

void dpsock_conf_default(struct dpsock_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->max_socks = 256;
	c->req_slots = 64;
	c->evt_slots = 64;
	c->sock_slots = 8;
	c->tcp_max = 16;
	c->tcp_rxbuf = 64 * 1024;
	c->dgram_max = 1472;
}

/* ---- set-up ---- */


static void pair_free(struct dpsock_pair *p)
{
	ring_destroy(p->req);
	ring_destroy(p->evt);
	free(p->slots);
	free(p->ctl.free);
	free(p->lc.free);
	free(p->lc.socks);
	free(p->lc.dirty);
	free(p->lc.staging);
	free(p->lc.st_free);
}

static int pair_init(struct dpsock_hub *h, struct dpsock_pair *p, unsigned index)
{
	const struct dpsock_conf *c = &h->conf;
	unsigned nslots = c->req_slots + c->evt_slots;

	p->h = h;
	p->index = index;
	p->req = ring_create("dpsock", nslots + c->max_socks, RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ);
	p->evt = ring_create("dpsock", nslots + 4 * c->max_socks, RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ);
	p->slots = aligned_alloc(64, RTE_ALIGN_CEIL(nslots * sizeof(*p->slots), 64));
	p->ctl.free = calloc(c->req_slots, sizeof(*p->ctl.free));
	p->lc.free = calloc(c->evt_slots, sizeof(*p->lc.free));
	p->lc.socks = calloc(c->max_socks, sizeof(*p->lc.socks));
	p->lc.dirty = calloc(c->max_socks, sizeof(*p->lc.dirty));
	p->lc.staging = malloc((size_t)c->tcp_max * c->tcp_rxbuf);
	p->lc.st_free = calloc(c->tcp_max, sizeof(*p->lc.st_free));
	if (!p->req || !p->evt || !p->slots || !p->ctl.free || !p->lc.free || !p->lc.socks ||
	    !p->lc.dirty || !p->lc.staging || !p->lc.st_free)
		return -ENOMEM;
	for (unsigned i = 0; i < c->req_slots; i++)
		p->ctl.free[p->ctl.nfree++] = &p->slots[i];
	for (unsigned i = 0; i < c->evt_slots; i++)
		p->lc.free[p->lc.nfree++] = &p->slots[c->req_slots + i];
	for (unsigned i = 0; i < c->tcp_max; i++)
		p->lc.st_free[p->lc.nst_free++] = c->tcp_max - 1 - i;
	for (unsigned i = 0; i < c->max_socks; i++) {
		p->lc.socks[i].id = (uint16_t)i;
		p->lc.socks[i].p = p;
		p->lc.socks[i].st = -1;
	}
	return 0;
}

struct dpsock_hub *dpsock_hub_create(const struct dpsock_conf *c, unsigned nlcores)
{
	struct dpsock_hub *h;

	if (nlcores == 0 || c->max_socks == 0 || c->max_socks > 0xffff || c->req_slots == 0 ||
	    c->evt_slots == 0 || c->sock_slots == 0 || c->tcp_rxbuf == 0 ||
	    c->dgram_max == 0 || c->dgram_max > DPSOCK_MSG_MAX)
		return NULL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->conf = *c;
	h->socks = calloc(c->max_socks, sizeof(*h->socks));
	h->free_ids = calloc(c->max_socks, sizeof(*h->free_ids));
	h->dirty = calloc(c->max_socks, sizeof(*h->dirty));
	h->pairs = aligned_alloc(64, RTE_ALIGN_CEIL(nlcores * sizeof(*h->pairs), 64));
	if (!h->socks || !h->free_ids || !h->dirty || !h->pairs) {
		free(h->pairs);
		h->pairs = NULL;
		dpsock_hub_destroy(h);
		return NULL;
	}
	memset(h->pairs, 0, nlcores * sizeof(*h->pairs));
	h->npairs = nlcores;
	for (unsigned i = 0; i < nlcores; i++) {
		if (pair_init(h, &h->pairs[i], i) < 0) {
			dpsock_hub_destroy(h);
			return NULL;
		}
	}
	for (unsigned i = 0; i < c->max_socks; i++)
		h->free_ids[h->nfree++] = c->max_socks - 1 - i;
	return h;
}

void dpsock_hub_destroy(struct dpsock_hub *h)
{
	if (!h)
		return;
	for (unsigned i = 0; h->pairs && i < h->npairs; i++)
		pair_free(&h->pairs[i]);
	free(h->pairs);
	free(h->socks);
	free(h->free_ids);
	free(h->dirty);
	free(h);
}

const struct dpsock_hub_stats *dpsock_hub_get_stats(const struct dpsock_hub *h)
{
	return &h->stats;
}

unsigned dpsock_hub_open_count(const struct dpsock_hub *h)
{
	return h->conf.max_socks - h->nfree;
}

unsigned dpsock_hub_free_slots(const struct dpsock_hub *h)
{
	unsigned n = 0;

	for (unsigned k = 0; k < h->npairs; k++)
		n += h->pairs[k].ctl.nfree;
	return n;
}

/* ==== control side ==== */

static struct ctl_sock *ctl_get(struct dpsock_hub *h, int id)
{
	struct ctl_sock *s;

	if (id < 0 || (unsigned)id >= h->conf.max_socks)
		return NULL;
	s = &h->socks[id];
	return s->state == C_FREE || s->state == C_CLOSING ? NULL : s;
}

static void ctl_mark(struct dpsock_hub *h, int id, unsigned flags)
{
	struct ctl_sock *s = &h->socks[id];

	s->flags |= (uint8_t)flags;
	if (!s->dirty) {
		s->dirty = true;
		h->dirty[h->ndirty++] = (uint16_t)id;
	}
}

static void ctl_want(struct dpsock_hub *h, struct ctl_sock *s)
{
	if (!s->want_write) {
		s->want_write = true;
		h->nwant++;
	}
}

static void ctl_unwant(struct dpsock_hub *h, struct ctl_sock *s)
{
	if (s->want_write) {
		s->want_write = false;
		h->nwant--;
	}
}

/* To the lcore; false (counted) only if the sizing argument is wrong. */
static bool ctl_post(struct dpsock_hub *h, struct dpsock_pair *p, void *e)
{
	if (rte_ring_sp_enqueue(p->req, e) == 0)
		return true;
	h->stats.ring_full++;
	return false;
}

static struct dpsock_msg *ctl_take_slot(struct dpsock_pair *p)
{
	return p->ctl.nfree ? p->ctl.free[--p->ctl.nfree] : NULL;
}

int dpsock_open(struct dpsock_hub *h, int type)
{
	struct ctl_sock *s;
	unsigned id;

	if (type != SOCK_DGRAM && type != SOCK_STREAM)
		return -EPROTONOSUPPORT;
	if (h->nfree == 0) {
		h->stats.open_full++;
		return -EMFILE;
	}
	id = h->free_ids[--h->nfree];
	s = &h->socks[id];
	memset(s, 0, sizeof(*s));
	s->state = C_OPEN;
	s->type = (uint8_t)type;
	s->pair = -1;
	h->stats.opened++;
	return (int)id;
}

int dpsock_connect(struct dpsock_hub *h, int id, rte_be32_t addr, rte_be16_t port)
{
	struct net_addr a = net_addr_v4(addr);

	return dpsock_connect_addr(h, id, &a, port);
}

int dpsock_connect_addr(struct dpsock_hub *h, int id, const struct net_addr *addr,
			rte_be16_t port)
{
	struct ctl_sock *s = ctl_get(h, id);
	struct dpsock_pair *p = NULL;
	struct dpsock_msg *m;

	if (!s)
		return -EBADF;
	if (s->state != C_OPEN)
		return -EISCONN;
	if (!addr || net_addr_is_zero(addr) || port == 0 ||
	    (addr->family != NET_AF_INET && addr->family != NET_AF_INET6))
		return -EINVAL;
	for (unsigned k = 0; k < h->npairs; k++) {
		struct dpsock_pair *q = &h->pairs[(h->rr + k) % h->npairs];
		if (q->ctl.nfree) {
			p = q;
			break;
		}
	}
	if (!p) {
		h->stats.connect_eagain++;
		ctl_want(h, s);
		return -EAGAIN;
	}
	m = ctl_take_slot(p);
	m->kind = M_CONNECT;
	m->type = s->type;
	m->id = (uint16_t)id;
	m->addr = *addr;
	m->port = port;
	m->len = m->off = 0;
	if (!ctl_post(h, p, m)) {
		p->ctl.free[p->ctl.nfree++] = m;
		return -EAGAIN;
	}
	h->rr = (p->index + 1) % h->npairs;
	h->stats.connects++;
	ctl_unwant(h, s);
	s->pair = (int)p->index;
	s->req_out++;
	if (s->type == SOCK_DGRAM) {
		s->state = C_READY;
		return 0;
	}
	s->state = C_CONNECTING;
	return -EINPROGRESS;
}

/* Copy len bytes from the iov starting at *at (iov index *i, offset *o). */
static void iov_copy(const struct iovec *iov, int n, int *i, size_t *o, uint8_t *dst, size_t len)
{
	while (len && *i < n) {
		size_t k = iov[*i].iov_len - *o;
		if (k > len)
			k = len;
		memcpy(dst, (const uint8_t *)iov[*i].iov_base + *o, k);
		dst += k;
		len -= k;
		*o += k;
		if (*o == iov[*i].iov_len) {
			(*i)++;
			*o = 0;
		}
	}
}

ssize_t dpsock_send(struct dpsock_hub *h, int id, const struct iovec *iov, int n)
{
	struct ctl_sock *s = ctl_get(h, id);
	struct dpsock_pair *p;
	size_t total = 0, taken = 0, o = 0;
	int i = 0;

	if (!s)
		return -EBADF;
	if (s->err)
		return -s->err;
	if (s->state == C_OPEN)
		return -ENOTCONN;
	if (n < 0)
		return -EINVAL;
	p = &h->pairs[s->pair];
	for (int k = 0; k < n; k++)
		total += iov[k].iov_len;
	h->stats.sends++;
	if (s->type == SOCK_DGRAM && total > h->conf.dgram_max)
		return -EMSGSIZE;
	/* A datagram is one slot, all or nothing (an empty one too); a
	 * stream takes as many slots as it may. */
	do {
		struct dpsock_msg *m;
		size_t len = total - taken;

		if (s->req_out >= h->conf.sock_slots || !(m = ctl_take_slot(p)))
			break;
		if (len > DPSOCK_MSG_MAX)
			len = DPSOCK_MSG_MAX;
		iov_copy(iov, n, &i, &o, m->data, len);
		m->kind = M_SEND;
		m->id = (uint16_t)id;
		m->len = (uint32_t)len;
		m->off = 0;
		if (!ctl_post(h, p, m)) {
			p->ctl.free[p->ctl.nfree++] = m;
			break;
		}
		s->req_out++;
		taken += len;
		if (s->type == SOCK_DGRAM) {
			h->stats.send_bytes += taken;
			return (ssize_t)taken;
		}
	} while (taken < total);
	/* Here a datagram was not sent, or a stream took less than all. */
	h->stats.send_bytes += taken;
	if (taken < total || s->type == SOCK_DGRAM)
		ctl_want(h, s);
	if (s->type == SOCK_DGRAM || (taken == 0 && total > 0)) {
		h->stats.send_eagain++;
		return -EAGAIN;
	}
	return (ssize_t)taken;
}

/* Give an emptied data slot back to the lcore. */
static void ctl_give_back(struct dpsock_hub *h, struct dpsock_msg *m)
{
	struct ctl_sock *s = &h->socks[m->id];
	ctl_post(h, &h->pairs[s->pair], m);
}

ssize_t dpsock_recv(struct dpsock_hub *h, int id, void *buf, size_t cap,
		    rte_be32_t *from, rte_be16_t *fport)
{
	struct net_addr a;
	ssize_t n = dpsock_recv_addr(h, id, buf, cap, from ? &a : NULL, fport);

	/* UDP from an IPv6 peer: no IPv4 form, 0 */
	if (n >= 0 && from)
		*from = a.family == NET_AF_INET ? a.v4 : 0;
	return n;
}

ssize_t dpsock_recv_addr(struct dpsock_hub *h, int id, void *buf, size_t cap,
			 struct net_addr *from, rte_be16_t *fport)
{
	struct ctl_sock *s = ctl_get(h, id);
	struct dpsock_msg *m;
	size_t got = 0;

	if (!s)
		return -EBADF;
	h->stats.recvs++;
	if (s->type == SOCK_DGRAM && (m = s->rx_head)) {
		got = m->len < cap ? m->len : cap;
		memcpy(buf, m->data, got);
		if (from)
			*from = m->addr;
		if (fport)
			*fport = m->port;
		s->rx_head = m->next;
		ctl_give_back(h, m);
		h->stats.recv_bytes += got;
		return (ssize_t)got;
	}
	while (s->type == SOCK_STREAM && (m = s->rx_head) && got < cap) {
		size_t k = m->len - m->off;
		if (k > cap - got)
			k = cap - got;
		memcpy((uint8_t *)buf + got, m->data + m->off, k);
		m->off += (uint32_t)k;
		got += k;
		if (m->off == m->len) {
			s->rx_head = m->next;
			ctl_give_back(h, m);
		}
	}
	if (got) {
		h->stats.recv_bytes += got;
		return (ssize_t)got;
	}
	if (s->err)
		return -s->err;
	if (s->eof)
		return 0;
	return -EAGAIN;
}

static void free_id(struct dpsock_hub *h, unsigned id)
{
	h->socks[id].state = C_FREE;
	h->free_ids[h->nfree++] = id;
}

int dpsock_close(struct dpsock_hub *h, int id)
{
	struct ctl_sock *s = ctl_get(h, id);
	struct dpsock_msg *m;

	if (!s)
		return -EBADF;
	h->stats.closed++;
	ctl_unwant(h, s);
	s->flags = 0;
	if (s->pair < 0) {		/* the lcores never heard of it */
		free_id(h, (unsigned)id);
		return 0;
	}
	while ((m = s->rx_head)) {	/* unread data: the slots go home */
		s->rx_head = m->next;
		ctl_give_back(h, m);
	}
	s->state = C_CLOSING;		/* until the lcore says released */
	ctl_post(h, &h->pairs[s->pair], small(S_CLOSE, (unsigned)id, 0));
	return 0;
}

/* One message from lcore p. */
static void ctl_event(struct dpsock_hub *h, struct dpsock_pair *p, void *e)
{
	struct dpsock_msg *m;
	struct ctl_sock *s;
	unsigned id;

	h->stats.events++;
	if (is_small(e)) {
		id = small_id(e);
		if (id >= h->conf.max_socks)
			return;
		s = &h->socks[id];
		if (small_kind(e) == S_RELEASED) {
			if (s->state == C_CLOSING)
				free_id(h, id);
			return;
		}
		if (s->state != C_CONNECTING && s->state != C_READY)
			return;		/* closed meanwhile */
		switch (small_kind(e)) {
		case S_CONNECTED:
			if (s->state == C_CONNECTING)
				s->state = C_READY;
			ctl_mark(h, (int)id, DPSOCK_WRITABLE);
			break;
		case S_ERROR:
			if (!s->err)
				s->err = (int)small_val(e);
			h->stats.errors++;
			ctl_mark(h, (int)id, DPSOCK_ERROR | DPSOCK_WRITABLE | DPSOCK_READABLE);
			break;
		case S_EOF:
			s->eof = true;
			ctl_mark(h, (int)id, DPSOCK_READABLE);
			break;
		default:
			break;
		}
		return;
	}
	m = e;
	s = &h->socks[m->id];
	if (m->kind == M_DATA) {
		if ((s->state != C_CONNECTING && s->state != C_READY) || s->pair != (int)p->index) {
			ctl_post(h, p, m);	/* closed meanwhile: straight back */
			return;
		}
		m->next = NULL;
		m->off = 0;
		if (s->rx_head)
			s->rx_tail->next = m;
		else
			s->rx_head = m;
		s->rx_tail = m;
		ctl_mark(h, m->id, DPSOCK_READABLE);
		return;
	}
	/* A request slot coming back. */
	p->ctl.free[p->ctl.nfree++] = m;
	if (s->state != C_FREE && s->pair == (int)p->index && s->req_out)
		s->req_out--;
}

/* Sockets that were told -EAGAIN (or took less) and now have room. */
static void ctl_wake_writers(struct dpsock_hub *h)
{
	bool any_free = false;

	for (unsigned k = 0; k < h->npairs; k++)
		any_free |= h->pairs[k].ctl.nfree > 0;
	for (unsigned id = 0; h->nwant && id < h->conf.max_socks; id++) {
		struct ctl_sock *s = &h->socks[id];
		bool room;

		if (!s->want_write)
			continue;
		room = s->pair < 0 ? any_free
				   : h->pairs[s->pair].ctl.nfree > 0 &&
				     s->req_out < h->conf.sock_slots;
		if (room) {
			ctl_unwant(h, s);
			ctl_mark(h, (int)id, DPSOCK_WRITABLE);
		}
	}
}

unsigned dpsock_poll(struct dpsock_hub *h, void (*cb)(void *user, int id, unsigned what),
		     void *user)
{
	unsigned taken = 0;

	for (unsigned k = 0; k < h->npairs; k++) {
		struct dpsock_pair *p = &h->pairs[k];
		void *e[BURST];
		unsigned n;

		/* Bounded: at most what the ring can hold per call. */
		for (unsigned round = 0; round < 64; round++) {
			n = rte_ring_sc_dequeue_burst(p->evt, e, BURST, NULL);
			for (unsigned i = 0; i < n; i++)
				ctl_event(h, p, e[i]);
			taken += n;
			if (n < BURST)
				break;
		}
	}
	if (h->nwant)
		ctl_wake_writers(h);
	/* Readable is a level: whatever recv would not answer -EAGAIN. */
	for (unsigned id = 0; id < h->conf.max_socks; id++) {
		const struct ctl_sock *s = &h->socks[id];
		if ((s->state == C_READY || s->state == C_CONNECTING) &&
		    (s->rx_head || s->err || s->eof))
			ctl_mark(h, (int)id, DPSOCK_READABLE);
	}
	for (unsigned i = 0; i < h->ndirty; i++) {
		unsigned id = h->dirty[i];
		struct ctl_sock *s = &h->socks[id];
		unsigned what = s->flags;

		s->dirty = false;
		s->flags = 0;
		if (what && (s->state == C_READY || s->state == C_CONNECTING || s->state == C_OPEN))
			cb(user, (int)id, what);
	}
	h->ndirty = 0;
	return taken;
}

/* ==== lcore side ==== */

static void lc_mark(struct dpsock_pair *p, struct lc_sock *ls)
{
	if (!ls->dirty) {
		ls->dirty = true;
		p->lc.dirty[p->lc.ndirty++] = ls->id;
	}
}

/* To the control side; false (counted) only if the sizing argument is wrong. */
static bool lc_post(struct dpsock_pair *p, void *e)
{
	if (rte_ring_sp_enqueue(p->evt, e) == 0)
		return true;
	p->lc.l->stats.ring_full++;
	return false;
}

static void lc_fail(struct lc_sock *ls, int err)
{
	if (!ls->err) {
		ls->err = err;
		ls->pend |= P_ERROR;
	}
	lc_mark(ls->p, ls);
}

/* Return every request slot still queued for tcp_send (data not sent). */
static void lc_return_sends(struct lc_sock *ls)
{
	struct dpsock_msg *m;

	while ((m = ls->sq_head)) {
		ls->sq_head = m->next;
		lc_post(ls->p, m);
	}
	ls->sq_tail = NULL;
}

/* Feed queued request slots to TCP; each fully taken goes home. */
static void lc_push_sends(struct dpsock_lcore *l, struct lc_sock *ls)
{
	struct dpsock_msg *m;

	while (ls->c && (m = ls->sq_head)) {
		size_t n = tcp_send(ls->c, m->data + m->off, m->len - m->off);
		m->off += (uint32_t)n;
		l->stats.tcp_tx_bytes += n;
		if (m->off < m->len)
			break;
		ls->sq_head = m->next;
		if (!ls->sq_head)
			ls->sq_tail = NULL;
		lc_post(ls->p, m);
	}
}

static void lc_release_staging(struct lc_sock *ls)
{
	if (ls->st >= 0) {
		ls->p->lc.st_free[ls->p->lc.nst_free++] = (unsigned)ls->st;
		ls->st = -1;
	}
	ls->st_head = ls->st_len = 0;
}

/* -- TCP callbacks; user is the lc_sock, or NULL once closed by us -- */

static void t_connected(struct tcp_conn *c, void *user)
{
	struct lc_sock *ls = user;

	(void)c;
	if (!ls)
		return;
	ls->p->lc.l->stats.tcp_connected++;
	ls->pend |= P_CONNECTED;
	lc_mark(ls->p, ls);
}

static void t_data(struct tcp_conn *c, void *user, struct rte_mbuf *m)
{
	struct lc_sock *ls = user;
	struct dpsock_pair *p;
	uint32_t len, size, at;
	uint8_t *buf;

	if (!ls) {			/* closed by us: drain and forget */
		if (m) {
			len = rte_pktmbuf_pkt_len(m);
			rte_pktmbuf_free(m);
			tcp_recved(c, len);
		}
		return;
	}
	p = ls->p;
	if (!m) {
		ls->pend |= P_EOF;
		lc_mark(p, ls);
		return;
	}
	len = rte_pktmbuf_pkt_len(m);
	size = p->h->conf.tcp_rxbuf;
	if (len > size - ls->st_len) {
		/* More than the window allows: the stack's bound broke. */
		p->lc.l->stats.rx_overflow++;
		rte_pktmbuf_free(m);
		tcp_abort(c);
		ls->c = NULL;
		lc_return_sends(ls);
		lc_fail(ls, ECONNRESET);
		return;
	}
	buf = p->lc.staging + (size_t)ls->st * size;
	at = (ls->st_head + ls->st_len) % size;
	for (const struct rte_mbuf *s = m; s; s = s->next) {
		const uint8_t *d = rte_pktmbuf_mtod(s, const uint8_t *);
		uint32_t n = s->data_len;
		while (n) {
			uint32_t k = size - at < n ? size - at : n;
			memcpy(buf + at, d, k);
			d += k;
			n -= k;
			at = (at + k) % size;
		}
	}
	ls->st_len += len;
	p->lc.l->stats.tcp_rx_bytes += len;
	rte_pktmbuf_free(m);
	lc_mark(p, ls);
}

static void t_writable(struct tcp_conn *c, void *user)
{
	struct lc_sock *ls = user;

	(void)c;
	if (ls)
		lc_push_sends(ls->p->lc.l, ls);
}

static int close_errno(enum tcp_close_reason why)
{
	switch (why) {
	case TCP_CLOSE_RESET:		return ECONNRESET;
	case TCP_CLOSE_REFUSED:		return ECONNREFUSED;
	case TCP_CLOSE_TIMEOUT:		return ETIMEDOUT;
	case TCP_CLOSE_KEEPALIVE:	return ETIMEDOUT;
	case TCP_CLOSE_NOMEM:		return ENOBUFS;
	case TCP_CLOSE_NORMAL:		break;
	}
	return 0;
}

static void t_closed(struct tcp_conn *c, void *user, enum tcp_close_reason why)
{
	struct lc_sock *ls = user;
	int err = close_errno(why);

	(void)c;
	if (!ls)
		return;
	ls->c = NULL;
	lc_return_sends(ls);
	if (err) {
		ls->p->lc.l->stats.tcp_errors++;
		lc_fail(ls, err);
	} else {			/* both FINs through: the stream ended */
		ls->pend |= P_EOF;
		lc_mark(ls->p, ls);
	}
}

static const struct tcp_callbacks lc_tcp_cb = {
	.connected = t_connected,
	.data = t_data,
	.writable = t_writable,
	.closed = t_closed,
};

static void u_readable(struct udp_sock *u, void *user)
{
	struct lc_sock *ls = user;

	(void)u;
	lc_mark(ls->p, ls);
}

/* -- requests -- */

static void lc_connect(struct dpsock_lcore *l, struct dpsock_pair *p, struct dpsock_msg *m)
{
	struct lc_sock *ls = &p->lc.socks[m->id];
	int rc;

	/* A fresh use of the id (its dirty flag may still be set: kept). */
	ls->pend = 0;
	ls->err = 0;
	ls->evt_out = 0;
	ls->u = NULL;
	ls->c = NULL;
	ls->sq_head = ls->sq_tail = NULL;
	ls->st = -1;
	ls->st_head = ls->st_len = 0;
	if (m->type == SOCK_DGRAM) {
		ls->state = L_UDP;
		rc = udp_open_addr(l->us, 0, &m->addr, m->port, &ls->u);
		if (rc < 0) {
			l->stats.open_fail++;
			lc_fail(ls, -rc);
			return;
		}
		udp_set_callback(ls->u, u_readable, ls);
		l->stats.udp_opens++;
		return;
	}
	ls->state = L_TCP;
	if (!l->ts || p->lc.nst_free == 0) {
		l->stats.open_fail++;
		lc_fail(ls, l->ts ? ENOBUFS : EPROTONOSUPPORT);
		return;
	}
	ls->st = (int)p->lc.st_free[--p->lc.nst_free];
	ls->c = tcp_connect_addr(l->ts, &m->addr, m->port, &lc_tcp_cb, ls);
	if (!ls->c) {			/* no connection slot or no source port */
		lc_release_staging(ls);
		l->stats.open_fail++;
		lc_fail(ls, ENOBUFS);
		return;
	}
	l->stats.tcp_opens++;
}

static void lc_send(struct dpsock_lcore *l, struct dpsock_pair *p, struct dpsock_msg *m)
{
	struct lc_sock *ls = &p->lc.socks[m->id];

	if (ls->state == L_UDP && ls->u) {
		struct iovec v = { m->data, m->len };
		int rc = udp_send(ls->u, 0, 0, &v, 1);
		if (rc < 0) {
			l->stats.udp_tx_fail++;
			lc_fail(ls, -rc);
		} else {
			l->stats.udp_tx++;
		}
	} else if (ls->state == L_TCP && ls->c) {
		m->next = NULL;
		if (ls->sq_tail)
			ls->sq_tail->next = m;
		else
			ls->sq_head = m;
		ls->sq_tail = m;
		lc_push_sends(l, ls);
		return;			/* home once TCP has taken it */
	}
	lc_post(p, m);
}

static void lc_close(struct dpsock_lcore *l, struct dpsock_pair *p, unsigned id)
{
	struct lc_sock *ls = &p->lc.socks[id];

	l->stats.closes++;
	if (ls->state == L_UDP && ls->u)
		udp_close(ls->u);
	if (ls->state == L_TCP && ls->c) {
		lc_push_sends(l, ls);
		if (ls->sq_head || ls->st_len || ls->evt_out) {
			/* Unsent or unread data: reset, as a socket closed
			 * with data in its receive queue does (RFC 2525). */
			tcp_abort(ls->c);
			l->stats.close_rst++;
		} else {
			tcp_set_user(ls->c, NULL);
			tcp_close(ls->c);
			l->stats.close_fin++;
		}
	}
	ls->u = NULL;
	ls->c = NULL;
	lc_return_sends(ls);
	lc_release_staging(ls);
	ls->state = L_FREE;
	ls->pend = 0;
	lc_post(p, small(S_RELEASED, id, 0));
}

/* An emptied data slot back from the control side. */
static void lc_slot_home(struct dpsock_pair *p, struct dpsock_msg *m)
{
	struct lc_sock *ls = &p->lc.socks[m->id];

	p->lc.free[p->lc.nfree++] = m;
	if (ls->state == L_FREE || ls->evt_out == 0)
		return;			/* from an earlier use of the id */
	ls->evt_out--;
	if (ls->state == L_TCP && ls->c)
		tcp_recved(ls->c, m->len);	/* consumed: reopen the window */
	lc_mark(p, ls);
}

static void lc_request(struct dpsock_lcore *l, struct dpsock_pair *p, void *e)
{
	struct dpsock_msg *m = e;

	if (is_small(e)) {
		if (small_kind(e) == S_CLOSE && small_id(e) < p->h->conf.max_socks)
			lc_close(l, p, small_id(e));
		return;
	}
	l->stats.requests++;
	switch (m->kind) {
	case M_DATA:
		lc_slot_home(p, m);
		break;
	case M_CONNECT:
		lc_connect(l, p, m);
		lc_post(p, m);
		break;
	case M_SEND:
		lc_send(l, p, m);
		break;
	default:
		break;
	}
}

/* -- moving data and events to the control side -- */

static struct dpsock_msg *lc_take_slot(struct dpsock_pair *p)
{
	return p->lc.nfree ? p->lc.free[--p->lc.nfree] : NULL;
}

static bool lc_post_small(struct lc_sock *ls, unsigned bit, unsigned kind, uint32_t val)
{
	if (!(ls->pend & bit))
		return true;
	if (!lc_post(ls->p, small(kind, ls->id, val)))
		return false;
	ls->pend &= (uint8_t)~bit;
	return true;
}

/* Post what the socket has; false when it must try again (no slot). */
static bool lc_flush(struct dpsock_lcore *l, struct dpsock_pair *p, struct lc_sock *ls,
		     unsigned *moved)
{
	unsigned limit = p->h->conf.sock_slots;
	struct dpsock_msg *m;

	if (ls->state == L_FREE)
		return true;
	if (!lc_post_small(ls, P_CONNECTED, S_CONNECTED, 0))
		return false;
	while (ls->state == L_UDP && ls->u && udp_pending(ls->u) && ls->evt_out < limit) {
		int n;
		if (!(m = lc_take_slot(p))) {
			l->stats.evt_slot_waits++;
			return false;
		}
		n = udp_recv_addr(ls->u, m->data, DPSOCK_MSG_MAX, &m->addr, &m->port);
		m->kind = M_DATA;
		m->id = ls->id;
		m->len = n > 0 ? (uint32_t)n : 0;
		m->off = 0;
		if (!lc_post(p, m)) {
			p->lc.free[p->lc.nfree++] = m;
			return false;
		}
		ls->evt_out++;
		l->stats.udp_rx++;
		(*moved)++;
	}
	while (ls->st_len && ls->evt_out < limit) {
		uint32_t size = p->h->conf.tcp_rxbuf, k, first;
		const uint8_t *buf = p->lc.staging + (size_t)ls->st * size;

		if (!(m = lc_take_slot(p))) {
			l->stats.evt_slot_waits++;
			return false;
		}
		k = ls->st_len < DPSOCK_MSG_MAX ? ls->st_len : DPSOCK_MSG_MAX;
		first = size - ls->st_head < k ? size - ls->st_head : k;
		memcpy(m->data, buf + ls->st_head, first);
		memcpy(m->data + first, buf, k - first);
		m->kind = M_DATA;
		m->id = ls->id;
		m->len = k;
		m->off = 0;
		memset(&m->addr, 0, sizeof(m->addr));
		m->port = 0;
		if (!lc_post(p, m)) {
			p->lc.free[p->lc.nfree++] = m;
			return false;
		}
		ls->st_head = (ls->st_head + k) % size;
		ls->st_len -= k;
		ls->evt_out++;
		(*moved)++;
	}
	if (ls->st_len)
		return true;		/* its own limit: a slot coming home marks it */
	if (!lc_post_small(ls, P_EOF, S_EOF, 0) ||
	    !lc_post_small(ls, P_ERROR, S_ERROR, (uint32_t)ls->err))
		return false;
	return true;
}

unsigned dpsock_lcore_poll(struct dpsock_lcore *l)
{
	unsigned work = 0;

	for (unsigned k = 0; k < l->npairs; k++) {
		struct dpsock_pair *p = l->pairs[k];
		void *e[BURST];
		unsigned n, n0, keep = 0;

		n = rte_ring_sc_dequeue_burst(p->req, e, BURST, NULL);
		for (unsigned i = 0; i < n; i++)
			lc_request(l, p, e[i]);
		work += n;
		/* Flush: lc_flush calls nothing that marks (no callbacks
		 * come from udp_recv, tcp_recved or tcp_send), so the list
		 * only shrinks; sockets that must retry stay on it. */
		n0 = p->lc.ndirty;
		for (unsigned i = 0; i < n0; i++) {
			struct lc_sock *ls = &p->lc.socks[p->lc.dirty[i]];
			ls->dirty = false;
			if (!lc_flush(l, p, ls, &work)) {
				ls->dirty = true;
				p->lc.dirty[keep++] = ls->id;
			}
		}
		p->lc.ndirty = keep;
	}
	return work;
}

const struct dpsock_lcore_stats *dpsock_lcore_get_stats(const struct dpsock_lcore *l)
{
	return &l->stats;
}

unsigned dpsock_lcore_free_slots(const struct dpsock_lcore *l)
{
	unsigned n = 0;

	for (unsigned k = 0; k < l->npairs; k++)
		n += l->pairs[k]->lc.nfree;
	return n;
}

struct dpsock_lcore *dpsock_lcore_create(unsigned index, struct udp_stack *us,
					 struct tcp_stack *ts, struct dpsock_hub *const *hubs,
					 unsigned nhubs)
{
	struct dpsock_lcore *l;

	if (!us)
		return NULL;
	for (unsigned k = 0; k < nhubs; k++)
		if (index >= hubs[k]->npairs || hubs[k]->pairs[index].lc.l)
			return NULL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->pairs = calloc(nhubs ? nhubs : 1, sizeof(*l->pairs));
	if (!l->pairs) {
		free(l);
		return NULL;
	}
	l->index = index;
	l->us = us;
	l->ts = ts;
	l->npairs = nhubs;
	for (unsigned k = 0; k < nhubs; k++) {
		l->pairs[k] = &hubs[k]->pairs[index];
		l->pairs[k]->lc.l = l;
	}
	return l;
}

void dpsock_lcore_destroy(struct dpsock_lcore *l)
{
	if (!l)
		return;
	for (unsigned k = 0; k < l->npairs; k++) {
		struct dpsock_pair *p = l->pairs[k];
		for (unsigned id = 0; id < p->h->conf.max_socks; id++) {
			struct lc_sock *ls = &p->lc.socks[id];
			if (ls->state == L_UDP && ls->u)
				udp_close(ls->u);
			if (ls->state == L_TCP && ls->c)
				tcp_abort(ls->c);
			ls->u = NULL;
			ls->c = NULL;
			ls->sq_head = ls->sq_tail = NULL;
			lc_release_staging(ls);
			ls->state = L_FREE;
		}
		p->lc.l = NULL;
	}
	free(l->pairs);
	free(l);
}
