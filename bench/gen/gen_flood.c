/*
 * gen_flood.c - sluice-gen's flood mode: stateless frames from a Pktgen
 * command file (gen_pkt.h), at the rate the file sets.
 *
 * Each lcore runs the whole program on its own copy of the port state and
 * sends its share of the rate (rate% of --line-rate, split over the
 * lcores). `delay`/`sleep` suspend the program, not the sending; the run
 * ends when the program has run out and the port is stopped (or at
 * --duration). With `enable mac_from_arp`, frames wait until ARP has
 * resolved the destination address and carry that MAC (on this rig the
 * profile's own dst MAC is a lab's, not sluiced's).
 *
 * Frames come from the stack's pool and leave through the lcore's TX
 * burst (net_tx_frame): no allocation, no system call.
 */
#include <stdlib.h>
#include <string.h>

#include <rte_mbuf.h>

#include "bench/gen/gen.h"
#include "dataplane/net/arp.h"
#include "dataplane/net/net_stack.h"

#define FLOOD_BURST 32
#define ARP_RETRY_NS (200 * 1000000ull)

struct gen_flood {
	struct gen_lcore *g;
	struct gen_pkt_port port;
	unsigned pc;			/* next command */
	uint64_t wake_ns;		/* a delay runs until then */
	double tokens;
	uint64_t last_ns, arp_sent_ns;
	bool mac_ok;
	uint8_t mac[6];
	bool done;
};

/* Run commands until a delay or the end. */
static void run_program(struct gen_flood *f, uint64_t t)
{
	const struct gen_pkt_prog *p = &f->g->run->prog;

	while (f->pc < p->n && t >= f->wake_ns) {
		const struct gen_pkt_cmd *c = &p->cmd[f->pc++];
		if (c->op == GPO_DELAY) {
			f->wake_ns = t + c->num * 1000000ull;
			break;
		}
		gen_pkt_apply(&f->port, c);
		if (c->op == GPO_START)
			f->tokens = 0;
	}
}

/* mac_from_arp: the destination's MAC, asking for it while unknown. */
static bool resolve(struct gen_flood *f, uint64_t t)
{
	struct net_stack *ns = f->g->ns;
	rte_be32_t ip = rte_cpu_to_be_32(f->port.dst_ip);
	struct arp_entry *e = arp_cache_find(&ns->arp, ip);

	if (e && e->state == ARP_REACHABLE) {
		memcpy(f->mac, e->mac.addr_bytes, 6);
		f->mac_ok = true;
		return true;
	}
	if (!f->arp_sent_ns || t - f->arp_sent_ns > ARP_RETRY_NS) {
		if (arp_cache_get_incomplete(&ns->arp, ip, t))
			arp_send_request(ns, ip);
		f->arp_sent_ns = t;
	}
	return false;
}

unsigned gen_flood_poll(struct gen_flood *f)
{
	struct gen_lcore *g = f->g;
	const struct gen_opts *o = g->run->o;
	uint64_t t = *g->now;
	unsigned sent = 0, n;
	double pps;

	if (!atomic_load_explicit(&g->run->go, memory_order_relaxed) || f->done) {
		f->last_ns = t;
		return 0;
	}
	run_program(f, t);
	if (atomic_load_explicit(&g->run->stop, memory_order_relaxed))
		f->port.sending = false;
	if (!f->port.sending) {
		f->last_ns = t;
		if (f->pc >= g->run->prog.n)
			f->done = true;
		return 0;
	}
	if (f->port.mac_from_arp && !f->mac_ok && !resolve(f, t)) {
		f->last_ns = t;
		return 0;
	}
	pps = f->port.rate / 100.0 * (double)o->line_rate / g->run->nworkers;
	f->tokens += (double)(t - f->last_ns) * pps / 1e9;
	f->last_ns = t;
	if (f->tokens > f->port.burst)
		f->tokens = f->port.burst;
	n = f->tokens >= 1 ? (unsigned)f->tokens : 0;
	if (n > FLOOD_BURST)
		n = FLOOD_BURST;
	for (unsigned i = 0; i < n; i++) {
		struct rte_mbuf *m;
		uint8_t *buf;
		size_t len;

		if (f->port.count && f->port.sent >= f->port.count) {
			f->port.sending = false;
			break;
		}
		m = rte_pktmbuf_alloc(g->ns->pool);
		if (!m) {
			g->st.flood_nombuf++;
			break;
		}
		buf = rte_pktmbuf_mtod(m, uint8_t *);
		len = gen_pkt_frame(&f->port, buf, rte_pktmbuf_tailroom(m), &g->rng);
		if (f->port.mac_from_arp)
			memcpy(buf, f->mac, 6);
		m->data_len = (uint16_t)len;
		m->pkt_len = (uint32_t)len;
		net_tx_frame(g->ns, m);
		f->tokens -= 1;
		f->port.sent++;
		g->st.flood_frames++;
		g->st.flood_bytes += len;
		sent++;
	}
	return sent;
}

bool gen_flood_done(const struct gen_flood *f)
{
	return !f || f->done;
}

struct gen_flood *gen_flood_create(struct gen_lcore *g)
{
	struct gen_flood *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->g = g;
	gen_pkt_port_default(&f->port);
	return f;
}

void gen_flood_destroy(struct gen_flood *f)
{
	free(f);
}
