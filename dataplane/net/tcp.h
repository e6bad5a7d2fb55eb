/*
 * tcp.h - the user-space TCP stack: the API contract for the SMTP engines.
 *
 * One struct tcp_stack per lcore, bound to that lcore's struct net_stack.
 * Everything (connections, timers, buffers) is preallocated at init from
 * struct tcp_conf and bounded; nothing is shared with other lcores.
 *
 * Driving it: tcp_stack_create() hooks itself into ns->tcp_input, so
 * segments arrive through net_input(). The poll loop calls tcp_tick() once
 * per burst (after setting ns->now_ns) to send the ACKs held for the burst
 * (conf.ack_coalesce) and run the timer wheel (1 ms ticks).
 *
 * Connections: a listener (tcp_listen) accepts connections on a port; each
 * accepted or actively opened connection (tcp_connect) is a struct tcp_conn *
 * handle with a user pointer and a set of callbacks. Callbacks run on the
 * owning lcore from inside net_input()/tcp_tick(); they may call any function
 * of this API on any connection (tcp_send, tcp_close, tcp_abort included).
 *
 *   accept(lctx, c)      a passive connection reached ESTABLISHED. Set its
 *                        user pointer (tcp_set_user) and return true, or
 *                        return false to refuse it (it is reset).
 *   connected(c, user)   an active open completed (ESTABLISHED).
 *   data(c, user, m)     in-order received bytes, as an mbuf chain with the
 *                        headers stripped (pkt_len = byte count). The callee
 *                        owns m and frees it. The receive window only
 *                        reopens when the application calls tcp_recved()
 *                        for those bytes. m == NULL: the peer sent FIN
 *                        (end of stream); no more data will come.
 *   writable(c, user)    room appeared in the send buffer (or in the
 *                        lcore's conf.mbuf_budget) after a tcp_send that
 *                        accepted less than asked.
 *   timer(c, user)       the deadline set with tcp_set_timer() passed (one
 *                        shot; set it again from here if needed). Only
 *                        while the connection is the application's.
 *   closed(c, user, why) the connection is gone for the application; the
 *                        handle is invalid once this returns. Called exactly
 *                        once per connection that was handed to the
 *                        application (accepted or tcp_connect'ed), unless the
 *                        application called tcp_abort() itself. NORMAL comes
 *                        when both FINs are through (our side may linger in
 *                        TIME_WAIT internally; that is invisible here).
 *
 * API calls never invoke callbacks themselves (no re-entry from tcp_send,
 * tcp_close, tcp_abort, tcp_recved or tcp_connect); callbacks come only from
 * net_input() and tcp_tick(). A handle stays valid memory until the current
 * net_input()/tcp_tick() returns, so using it right after closed() or
 * tcp_abort() in the same callback is harmless (calls are no-ops).
 *
 * Sending: tcp_send() copies bytes into the connection's bounded send buffer
 * (mbufs from the stack's pool) and returns how many it took; 0 means full
 * (wait for writable). tcp_close() sends FIN after the buffered data
 * (orderly; receiving continues until the peer's FIN; called before the
 * handshake completes, the FIN follows the data once it does).
 * tcp_abort() sends RST and frees at once, with no closed() callback.
 */
#ifndef SLUICE_TCP_H
#define SLUICE_TCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <rte_byteorder.h>

#include "common/stats.h"
#include "dataplane/net/net_addr.h"

struct rte_mbuf;
struct net_stack;
struct tcp_stack;
struct tcp_conn;
struct tcp_listener;

/* Per-lcore counters (named: see tcp_stat_names). */
#define TCP_STATS(X)                                                          \
	X(seg_in) X(seg_out) X(bytes_in) X(bytes_out)                         \
	X(retransmits) X(fast_retransmits) X(rto_fires) X(sack_retransmits)   \
	X(persist_probes) X(keepalive_probes) X(delayed_acks) X(dup_acks_in)  \
	X(ooo_queued) X(ooo_dropped) X(ooo_merged)                            \
	X(drop_short) X(drop_cksum) X(drop_bad_off) X(drop_bad_opt)           \
	X(drop_no_conn) X(drop_bad_flags) X(drop_out_of_window)               \
	X(drop_bad_ack) X(drop_listen_full) X(drop_nomem) X(drop_rcv_full)    \
	X(drop_stale_ts) X(drop_bad_src)                                      \
	X(rst_in) X(rst_out) X(rst_ignored) X(challenge_acks)                 \
	X(challenge_acks_limited) X(oow_acks_limited) X(cksum_offload_ok)     \
	X(syncookies_sent) X(syncookies_validated) X(syncookies_failed)       \
	X(syncookies_no_overflow) X(syncookies_over_half_open)                \
	X(conn_opened_passive) X(conn_opened_active) X(conn_established)      \
	X(conn_closed) X(conn_reset) X(conn_timeout) X(conn_refused)          \
	X(conn_aborted) X(conn_table_full)                                    \
	X(timewait_entered) X(timewait_reuse) X(timewait_expired)             \
	X(timewait_recycled) X(sack_recoveries) X(sack_blocks_in)             \
	X(syn_retransmits) X(r1_reached) X(port_exhausted) X(tx_nombuf)      \
	X(sndbuf_budget_waits) X(app_timers)                                  \
	X(tlp_probes) X(tlp_new_data) X(tlp_recovered) X(tlp_spurious)        \
	X(pmtu_lowered) X(pmtu_rejected)

struct tcp_stats {
	TCP_STATS(STATS_FIELD)
};
extern const char *const tcp_stat_names[];
extern const unsigned tcp_stat_count;

/* Why a connection closed (the closed() callback's reason). */
enum tcp_close_reason {
	TCP_CLOSE_NORMAL = 0,	/* orderly: both FINs exchanged */
	TCP_CLOSE_RESET,	/* the peer sent RST */
	TCP_CLOSE_REFUSED,	/* RST in answer to our SYN */
	TCP_CLOSE_TIMEOUT,	/* retransmissions gave up (R2) or SYN retries */
	TCP_CLOSE_KEEPALIVE,	/* keepalive probes unanswered */
	TCP_CLOSE_NOMEM,	/* could not get buffers to go on */
};
const char *tcp_close_reason_name(enum tcp_close_reason r);

/* RFC 9293 states. */
enum tcp_state {
	TCP_CLOSED = 0, TCP_LISTEN, TCP_SYN_SENT, TCP_SYN_RCVD, TCP_ESTABLISHED,
	TCP_FIN_WAIT_1, TCP_FIN_WAIT_2, TCP_CLOSE_WAIT, TCP_CLOSING,
	TCP_LAST_ACK, TCP_TIME_WAIT,
};
const char *tcp_state_name(enum tcp_state s);

struct tcp_callbacks {
	bool (*accept)(void *lctx, struct tcp_conn *c);
	void (*connected)(struct tcp_conn *c, void *user);
	void (*data)(struct tcp_conn *c, void *user, struct rte_mbuf *m);
	void (*writable)(struct tcp_conn *c, void *user);
	void (*closed)(struct tcp_conn *c, void *user, enum tcp_close_reason why);
	void (*timer)(struct tcp_conn *c, void *user);
};

/* Active-open source-port filter (e.g. "the reply hashes to this lcore"). */
typedef bool (*tcp_port_ok_fn)(void *ctx, const struct net_addr *laddr, rte_be16_t lport,
			       const struct net_addr *raddr, rte_be16_t rport);

struct tcp_conf {
	unsigned max_conns;	/* connection slots incl. TIME_WAIT */
	unsigned max_listeners;
	unsigned backlog;	/* half-open (SYN_RCVD) per listener; then cookies */
	bool syncookies;	/* use SYN cookies when the backlog is full. A
				 * cookie ACK is only honoured within two cookie
				 * periods (128 s) of the listener's last
				 * overflow, as in Linux; otherwise it is
				 * answered as for no connection (counted in
				 * syncookies_no_overflow and drop_no_conn) */
	uint32_t sndbuf;	/* send buffer bytes per connection */
	uint32_t rcvbuf;	/* receive window bytes per connection */
	unsigned ooo_max_segs;	/* out-of-order runs held per connection
				 * (contiguous segments chain into one run) */
	uint32_t ooo_max_bytes;	/* out-of-order bytes held per lcore */
	unsigned mbuf_budget;	/* mbufs the lcore's send queues and
				 * out-of-order queues may hold in all (0:
				 * unlimited; the default). At the budget
				 * tcp_send takes no more (counted in
				 * sndbuf_budget_waits) and writable() follows
				 * once acked or freed data makes room, even for
				 * a connection whose own queue was empty; new
				 * out-of-order segments are dropped (counted in
				 * ooo_dropped; in-order data is still taken).
				 * Keeps the shared pool from running dry for
				 * RX refill, ARP and ACKs. */
	bool ack_coalesce;	/* ACKs owed for in-order data wait for the
				 * next tcp_tick() (the end of the burst): one
				 * ACK per connection per burst, as GRO gives
				 * Linux. Duplicate ACKs are never held. Off by
				 * default; the dataplane turns it on. */
	uint8_t wscale;		/* window scale we offer (0..14) */
	bool timestamps, sack;	/* offer RFC 7323 timestamps / SACK */
	bool nodelay;		/* default: no Nagle (sender SWS still applies) */
	uint64_t msl_ns;	/* TIME_WAIT lasts 2 * msl_ns */
	uint64_t rto_init_ns, rto_min_ns, rto_max_ns;
	uint64_t delack_ns;	/* delayed-ACK timer (<= 200 ms) */
	bool tlp;		/* Tail Loss Probe (RFC 8985 7): when the last
				 * segments of a flight are lost, probe after
				 * PTO = 2 * SRTT instead of waiting out the
				 * RTO (>= rto_min_ns). On by default. */
	uint64_t tlp_ack_delay_ns;	/* added to the PTO when one segment
				 * is in flight: the longest the peer may
				 * delay its ACK for it (RFC 8985's WCDelAckT;
				 * default 40 ms, Linux's delayed-ACK minimum,
				 * see tcp_timer.c) */
	uint64_t fin_wait2_ns;	/* FIN_WAIT_2 with nothing heard for this long is
				 * dropped (closed(TIMEOUT)); 0: wait forever */
	unsigned syn_retries;	/* SYN / SYN-ACK retransmissions before giving up */
	unsigned r1, r2;	/* RFC 9293 R1 (advisory) / R2 (give up) counts */
	bool keepalive;		/* default for new connections: off */
	uint64_t keepalive_idle_ns, keepalive_intvl_ns;
	unsigned keepalive_probes;
	unsigned challenge_ack_limit;	/* RFC 5961 7: challenge ACKs per second
					 * per connection, on average. Each
					 * connection draws its budget for each
					 * second at random in [limit - limit/2,
					 * limit + limit/2] (keyed by the secret),
					 * so no counter is shared between
					 * connections (CVE-2016-5696) and none is
					 * predictable. Beyond it: counted in
					 * challenge_acks_limited. 0: none sent. */
	uint64_t invalid_ratelimit_ns;	/* least gap between two ACKs one
					 * connection sends in answer to segments
					 * outside its window or failing PAWS
					 * (Linux's tcp_invalid_ratelimit): two
					 * stacks that disagree about sequence
					 * numbers cannot ping-pong ACKs at line
					 * rate. Segments with data or FIN are
					 * always answered, as in Linux (the peer
					 * needs that ACK; pure ACKs make loops).
					 * Suppressed: oow_acks_limited. 0: off. */
	uint16_t port_lo, port_hi;	/* ephemeral range (host order) */
	tcp_port_ok_fn port_ok;		/* NULL: every port is fine */
	void *port_ok_ctx;
	uint8_t secret[16];	/* keys ISNs, cookies, timestamps, hashing */
};

/* Defaults: 4096 conns, 64 listeners, backlog 256, cookies on, 64 KiB
 * buffers, wscale 7, TS+SACK on, MSL 30 s, RTO 1 s/200 ms/60 s, delack 40 ms,
 * syn_retries 6, R1 3, R2 15, keepalive off (2 h/75 s/9), 1000 challenge
 * ACKs/s per connection, ACKs to out-of-window segments 500 ms apart, ports
 * 32768-60999. The secret is zero: set it. */
void tcp_conf_default(struct tcp_conf *c);

/* Allocate everything and hook into ns (ns->tcp_input/tcp_ctx). Returns a
 * stack or NULL. Start-up only (uses the heap). */
struct tcp_stack *tcp_stack_create(struct net_stack *ns, const struct tcp_conf *conf);
/* Free every connection (no callbacks, no packets) and the stack. */
void tcp_stack_destroy(struct tcp_stack *ts);

/* Run due timers at ns->now_ns. Call once per burst. */
void tcp_tick(struct tcp_stack *ts);

const struct tcp_stats *tcp_stack_stats(const struct tcp_stack *ts);
unsigned tcp_stack_conn_count(const struct tcp_stack *ts);	/* slots in use */
/* mbufs held now in send and out-of-order queues (what conf.mbuf_budget
 * bounds); 0 once every connection is gone. */
unsigned tcp_stack_mbufs_held(const struct tcp_stack *ts);

/* Listen on a local port (network order) of the stack's address. */
struct tcp_listener *tcp_listen(struct tcp_stack *ts, rte_be16_t port,
				const struct tcp_callbacks *cb, void *lctx);
/* Stop listening; established connections stay, half-open ones are reset. */
void tcp_unlisten(struct tcp_listener *l);

/* Active open to dst:port (either family; the source is the stack's
 * address of that family). The connected() or closed() callback follows.
 * NULL: no free slot, no usable source port, or no address of dst's
 * family. */
struct tcp_conn *tcp_connect_addr(struct tcp_stack *ts, const struct net_addr *dst,
				  rte_be16_t port, const struct tcp_callbacks *cb,
				  void *user);
/* tcp_connect_addr to an IPv4 address. */
struct tcp_conn *tcp_connect(struct tcp_stack *ts, rte_be32_t dst, rte_be16_t port,
			     const struct tcp_callbacks *cb, void *user);

/* Copy up to len bytes into the send buffer; returns bytes taken (0: full
 * or not sendable in this state). Transmits what the windows allow. Less
 * than asked with tcp_send_space() > 0 means the lcore's mbuf_budget was
 * reached (writable() follows when there is room again) or the mbuf pool
 * ran dry (retry later: writable() is not promised for that). */
size_t tcp_send(struct tcp_conn *c, const void *buf, size_t len);
/* Room left in the send buffer. */
size_t tcp_send_space(const struct tcp_conn *c);
/* Tell the stack the application has consumed len received bytes. */
void tcp_recved(struct tcp_conn *c, uint32_t len);
/* Orderly close: FIN after buffered data. Data may still arrive. */
void tcp_close(struct tcp_conn *c);
/* Send RST and free now. No closed() callback. */
void tcp_abort(struct tcp_conn *c);

void tcp_set_user(struct tcp_conn *c, void *user);
/* The application's deadline for this connection, on the lcore's clock
 * (ns->now_ns; absolute ns), filed in the stack's timer wheel (1 ms
 * resolution): the timer() callback runs from tcp_tick() once it has
 * passed. 0 cancels. One per connection; setting it again replaces it. So
 * an application with many idle connections pays nothing per poll for
 * their deadlines. */
void tcp_set_timer(struct tcp_conn *c, uint64_t at_ns);
void *tcp_get_user(const struct tcp_conn *c);
void tcp_set_nodelay(struct tcp_conn *c, bool on);
void tcp_set_keepalive(struct tcp_conn *c, bool on);
enum tcp_state tcp_get_state(const struct tcp_conn *c);

/* Addresses and ports of a connection (network order). Both addresses
 * have the same family. No padding: tuples compare and hash as words. */
struct tcp_tuple {
	struct net_addr laddr, raddr;
	rte_be16_t lport, rport;
};
void tcp_get_tuple(const struct tcp_conn *c, struct tcp_tuple *t);

/* Per-connection counters and parameters, for stats and tests. */
struct tcp_conn_info {
	enum tcp_state state;
	uint32_t snd_una, snd_nxt, snd_wnd, rcv_nxt, rcv_wnd;
	uint32_t cwnd, ssthresh, mss;
	uint8_t snd_wscale, rcv_wscale;
	bool ts_ok, sack_ok;
	uint64_t srtt_ns, rto_ns;
	uint64_t retransmits, seg_in, seg_out;
	uint32_t sndq_bytes, ooo_segs;
};
void tcp_get_info(const struct tcp_conn *c, struct tcp_conn_info *info);

#endif
