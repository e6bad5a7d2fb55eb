/*
 * tcp_test.h - helpers for the TCP suites: a stack on a heap pool whose tx
 * hook captures frames, a segment crafter, a parser of what the stack sent,
 * an application that records callbacks, and a two-stack "wire" with seeded
 * loss/reordering/duplication. No EAL.
 */
#ifndef SLUICE_TCP_TEST_H
#define SLUICE_TCP_TEST_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_mbuf.h>

#include "common/clock.h"
#include "dataplane/net/net_stack.h"
#include "dataplane/net/tcp.h"
#include "dataplane/net/tcp_int.h"

#define TNODE_POOL 4096
#define TNODE_MAX_TX 4096
#define T0_NS (1000ull * 1000 * 1000 * 1000)	/* clock start: 1000 s */

struct tnode {
	struct rte_mempool *pool;
	struct net_stack ns;
	struct tcp_stack *ts;
	struct rte_mbuf *tx[TNODE_MAX_TX];
	unsigned ntx;
	unsigned tx_dropped;
};

/* The crafted peer in single-stack tests. */
#define PEER_IP "198.18.0.9"
#define OUR_IP "198.18.0.2"

rte_be32_t tip(const char *dotted);
/* Every node also has fd00:5c::<mac_last>/64; this is node mac_last's. */
static inline struct net_addr tip6(uint8_t mac_last)
{
	uint8_t a[16] = { 0xfd, 0x00, 0x00, 0x5c, [15] = mac_last };
	return net_addr_v6(a);
}
void tnode_init(struct tnode *n, const char *name, const char *ip, uint8_t mac_last,
		const struct tcp_conf *conf);
/* Destroys everything; returns mbufs not back in the pool (0 = no leak). */
unsigned tnode_fini(struct tnode *n);
void tnode_learn(struct tnode *n, const char *ip, uint8_t mac_last);
void tnode_clear(struct tnode *n);
void tconf(struct tcp_conf *c);	/* defaults with a fixed secret */
/* Advance the clock by ns and run timers. */
void tadvance(struct tnode *n, uint64_t ns);

struct tseg {
	uint32_t seq, ack;
	uint8_t flags;
	uint16_t wnd;
	uint16_t sport, dport;	/* host order */
	const uint8_t *opts;
	uint8_t optlen;		/* multiple of 4 unless testing malformed */
	const void *data;
	uint16_t len;
	bool bad_cksum;
	bool partial_cksum;	/* only the pseudo-header sum in the checksum
				 * field, as a kernel leaves it for offload
				 * (CHECKSUM_PARTIAL) */
	uint64_t ol_flags;	/* the mbuf's RX flags, as a port would set */
	uint8_t doff_override;	/* raw data offset nibble, 0: computed */
};
void tinject(struct tnode *n, const char *src, const struct tseg *s);

struct tout {
	uint32_t seq, ack;
	uint8_t flags;
	uint16_t wnd;
	uint16_t sport, dport;
	struct tcp_opts opt;
	uint16_t len;
	uint8_t data[2048];
	rte_be32_t dst;
};
/* Pop the oldest captured TCP segment; false when none. */
bool tpop(struct tnode *n, struct tout *o);
unsigned tpending(const struct tnode *n);

/* Option bytes builders for crafted SYNs. */
unsigned topts_syn(uint8_t *p, uint16_t mss, int ws, bool sack, bool ts, uint32_t tsval,
		   uint32_t tsecr);
unsigned topts_ts(uint8_t *p, uint32_t tsval, uint32_t tsecr);

/* An application that records what it is told. */
struct tapp {
	struct tcp_conn *conn;
	int accepted, connected, eof, closed, writable;
	enum tcp_close_reason reason;
	uint8_t *rx;
	size_t rxlen, rxcap;
	bool manual_recved;	/* don't call tcp_recved (window closes) */
	bool refuse;
	bool close_on_eof;
	unsigned data_calls;
	unsigned timers;		/* timer() callbacks */
	uint64_t timer_rearm_ns;	/* timer(): set again this far ahead (0: no) */
};
extern const struct tcp_callbacks tapp_cb;
void tapp_init(struct tapp *a, size_t rxcap);
void tapp_fini(struct tapp *a);

/* Two stacks wired back to back through a lossy queue. */
struct twire {
	struct tnode a, b;
	uint64_t rng;
	unsigned loss_pm, dup_pm, reorder_pm;	/* per mille */
	uint64_t delivered, lost, duped, reordered;
};
void twire_init(struct twire *w, uint64_t seed, const struct tcp_conf *ca,
		const struct tcp_conf *cb);
unsigned twire_fini(struct twire *w);
/* Move frames both ways (impaired); returns frames moved. */
unsigned twire_pump(struct twire *w);
/* Advance both clocks and run timers. */
void twire_advance(struct twire *w, uint64_t ns);
uint64_t trand(uint64_t *s);

#endif
