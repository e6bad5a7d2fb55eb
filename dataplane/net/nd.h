/*
 * nd.h - IPv6 Neighbor Discovery (RFC 4861): the neighbour cache with
 * reachability states, neighbour solicitations and advertisements, and
 * the default router.
 *
 * The cache is a fixed-size open-addressing table (linear probing on a
 * hash of the address, sized once at start, never grown; a flood of
 * addresses can evict stale entries, never allocate). Entry states, as
 * RFC 4861 7.3.2:
 *   INCOMPLETE  asked (multicast NS to the solicited-node group every
 *               retrans_ns, max_probes times), frames held (bounded);
 *               no answer: the held frames are dropped and counted
 *               (nd_pending_expired), the entry removed.
 *   REACHABLE   confirmed by a solicited NA within reachable_ns.
 *   STALE       not confirmed lately (or learned unsolicited: from an NS,
 *               an RA, an unsolicited NA): frames go out, and the first
 *               one moves it to DELAY.
 *   DELAY       after delay_ns without confirmation: PROBE.
 *   PROBE       unicast NS every retrans_ns, max_probes times; then the
 *               neighbour is unreachable: removed (nd_unreachable).
 * A STALE entry unused for gc_ns is removed. No upper-layer reachability
 * hints (RFC 4861 7.3.1): a long TCP connection costs one unicast NS
 * exchange per reachable_ns + delay_ns, which is cheap and simple.
 *
 * The default router: gateway6 when configured (resolved like any
 * neighbour); otherwise the source of the last router advertisement with a
 * non-zero router lifetime, until that lifetime runs out (one router: an
 * edge relay's link has one; a second one replaces the first). RA prefix
 * information does not configure addresses (static config only).
 */
#ifndef SLUICE_ND_H
#define SLUICE_ND_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_ether.h>

struct rte_mbuf;
struct net_stack;

#define ND_PENDING_MAX 16	/* hard cap on frames held per INCOMPLETE entry */

struct nd_conf {
	unsigned entries;	/* table slots (rounded up to a power of two) */
	unsigned pending;	/* frames held per INCOMPLETE entry */
	uint64_t reachable_ns;	/* REACHABLE lasts this long (RFC: 30 s) */
	uint64_t retrans_ns;	/* between solicitations (RFC: 1 s) */
	uint64_t delay_ns;	/* DELAY before PROBE (RFC: 5 s) */
	uint64_t gc_ns;		/* unused STALE entries are removed after this */
	unsigned max_probes;	/* solicitations before giving up (RFC: 3) */
};
void nd_conf_default(struct nd_conf *c);

enum nd_state { ND_FREE = 0, ND_INCOMPLETE, ND_REACHABLE, ND_STALE, ND_DELAY, ND_PROBE };

struct nd_entry {
	uint8_t ip[16];
	uint8_t state;			/* enum nd_state */
	uint8_t probes;			/* solicitations sent in this state */
	uint16_t npending;
	struct rte_ether_addr mac;	/* valid unless INCOMPLETE */
	uint64_t timer_ns;		/* when the state's timer runs out */
	uint64_t used_ns;		/* last frame sent through it */
	struct rte_mbuf *pending[ND_PENDING_MAX];
};

struct nd_cache {
	struct nd_entry *slots;
	unsigned mask;
	unsigned used;
	struct nd_conf conf;
	/* default router learned from RAs (router_until 0: none) */
	uint8_t router[16];
	uint64_t router_until;
	uint8_t cur_hop_limit;		/* from the RA; 0: ours (64) */
};

int nd_cache_init(struct nd_cache *c, const struct nd_conf *conf);
void nd_cache_fini(struct nd_cache *c);	/* frees pending frames and the table */
struct nd_entry *nd_cache_find(struct nd_cache *c, const uint8_t ip[16]);

/*
 * Tell the cache what an NA (or, solicited = false and override = true...
 * see nd.c) said: RFC 4861 7.2.5 for an NA, 7.2.3/6.3.4 for the source
 * link-layer option of an NS or RA (create, STALE if new or changed).
 * Sends what was held once the address is known. Returns the entry or NULL.
 */
struct nd_entry *nd_learn(struct net_stack *ns, const uint8_t ip[16],
			  const struct rte_ether_addr *mac, bool is_na, bool solicited,
			  bool override);

/* Send a frame whose Ethernet header is prepended, to next hop nexthop:
 * fills the destination MAC (multicast: derived) or holds it while
 * resolving. Consumes m. */
void nd_resolve_and_send(struct net_stack *ns, struct rte_mbuf *m, const uint8_t nexthop[16]);

/* The default router (gateway6 or learned), into out; false: none. */
bool nd_default_router(const struct net_stack *ns, uint8_t out[16]);

/* Timers: state changes, probes, expiry. Call every few ms. */
void nd_tick(struct net_stack *ns);

/* Send a neighbour solicitation for target: multicast to its
 * solicited-node group, or unicast to a known MAC when mac != NULL. */
void nd_send_ns(struct net_stack *ns, const uint8_t target[16], const struct rte_ether_addr *mac);

/* ICMPv6 ND messages (icmp6.c hands them over after the checksum and the
 * hop-limit-255 check): m's data at the ICMPv6 header, len bytes. */
void nd_input_ns(struct net_stack *ns, struct rte_mbuf *m, const uint8_t src[16],
		 const uint8_t dst[16], uint32_t len);
void nd_input_na(struct net_stack *ns, struct rte_mbuf *m, const uint8_t src[16], uint32_t len);
void nd_input_ra(struct net_stack *ns, struct rte_mbuf *m, const uint8_t src[16], uint32_t len);

#endif
