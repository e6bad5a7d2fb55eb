/*
 * arp.h - ARP: answer requests for our address, resolve next hops.
 *
 * The cache is a fixed-size open-addressing table (linear probing on a hash
 * of the IPv4 address), sized once at start and never grown: a flood of
 * bogus addresses can evict, never allocate. An entry is INCOMPLETE while we
 * wait for a reply (holding a bounded queue of frames to send once it comes,
 * and re-asking every retry_ns up to max_retries times) or REACHABLE for
 * reachable_ns after the last reply heard, after which it ages out.
 *
 * The cache functions are pure (no I/O): they tell the caller what to send
 * or release. arp_input/arp_resolve in arp.c do the packet work.
 */
#ifndef SLUICE_ARP_H
#define SLUICE_ARP_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_byteorder.h>
#include <rte_ether.h>

struct rte_mbuf;
struct net_stack;

#define ARP_PENDING_MAX 16	/* hard cap on frames held per unresolved address */

struct arp_conf {
	unsigned entries;	/* table slots (rounded up to a power of two) */
	unsigned pending;	/* frames held per INCOMPLETE entry, <= ARP_PENDING_MAX */
	uint64_t reachable_ns;	/* lifetime of a learned mapping */
	uint64_t retry_ns;	/* interval between requests while unresolved */
	unsigned max_retries;	/* requests before giving up and dropping pending */
};

/* Defaults: 1024 entries, 8 pending, 5 min lifetime, 1 s retry, 3 tries. */
void arp_conf_default(struct arp_conf *c);

enum arp_state { ARP_FREE = 0, ARP_INCOMPLETE, ARP_REACHABLE };

struct arp_entry {
	rte_be32_t ip;
	uint8_t state;			/* enum arp_state */
	uint8_t retries;		/* requests sent while INCOMPLETE */
	uint16_t npending;
	struct rte_ether_addr mac;	/* valid when REACHABLE */
	uint64_t expire_ns;		/* REACHABLE: ages out; INCOMPLETE: next retry */
	struct rte_mbuf *pending[ARP_PENDING_MAX];
};

struct arp_cache {
	struct arp_entry *slots;
	unsigned mask;			/* slots - 1 */
	unsigned used;
	struct arp_conf conf;
};

int arp_cache_init(struct arp_cache *c, const struct arp_conf *conf);
/* Frees every pending frame (rte_pktmbuf_free) and the table. */
void arp_cache_fini(struct arp_cache *c);

/* The entry for ip, or NULL. */
struct arp_entry *arp_cache_find(struct arp_cache *c, rte_be32_t ip);

/*
 * Learn ip -> mac (from a reply, or a request addressed to us). Creates the
 * entry when `create` (else only refreshes an existing one). Returns the
 * entry, or NULL when not created or the table is full. The caller sends the
 * entry's pending frames (arp_entry_take_pending) once it is REACHABLE.
 */
struct arp_entry *arp_cache_learn(struct arp_cache *c, rte_be32_t ip,
				  const struct rte_ether_addr *mac,
				  uint64_t now_ns, bool create);

/*
 * Get or make an INCOMPLETE entry for ip (for an outgoing frame). NULL when
 * the table is full of live entries.
 */
struct arp_entry *arp_cache_get_incomplete(struct arp_cache *c, rte_be32_t ip,
					   uint64_t now_ns);

/* Queue a frame on an INCOMPLETE entry; false when its queue is full. */
bool arp_entry_hold(struct arp_cache *c, struct arp_entry *e, struct rte_mbuf *m);

/* Move the held frames out (into out[], up to ARP_PENDING_MAX). */
unsigned arp_entry_take_pending(struct arp_entry *e, struct rte_mbuf **out);

/*
 * Age the table at now_ns. For each INCOMPLETE entry due a retry, calls
 * resend(ctx, ip); for each that ran out of retries, frees its pending
 * frames (counting them in *expired) and removes it. REACHABLE entries past
 * their lifetime are removed. Returns the number of entries removed.
 */
unsigned arp_cache_age(struct arp_cache *c, uint64_t now_ns,
		       void (*resend)(void *ctx, rte_be32_t ip), void *ctx,
		       uint64_t *expired);

/* Packet side (arp.c). */
void arp_input(struct net_stack *ns, struct rte_mbuf *m);
/* Learn from a copy of an ARP packet that another lcore received and
 * answers: updates the cache (and sends what waited), never replies. */
void arp_snoop(struct net_stack *ns, struct rte_mbuf *m);
/* Send a frame whose Ethernet header is prepended and whose next hop is
 * nexthop: fills the destination MAC, or holds it while resolving. Consumes m. */
void arp_resolve_and_send(struct net_stack *ns, struct rte_mbuf *m, rte_be32_t nexthop);
void arp_send_request(struct net_stack *ns, rte_be32_t target);

#endif
