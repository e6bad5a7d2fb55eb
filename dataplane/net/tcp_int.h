/*
 * tcp_int.h - internals shared by the tcp_*.c files (not for the SMTP
 * engines: they use tcp.h). Connection and stack structs, sequence-number
 * arithmetic, the parsed-segment struct, and the cross-module functions.
 */
#ifndef SLUICE_TCP_INT_H
#define SLUICE_TCP_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <rte_byteorder.h>
#include <rte_mbuf.h>

#include "common/clock.h"
#include "dataplane/net/net_stack.h"
#include "dataplane/net/tcp.h"

/* Sequence-space comparisons (RFC 1982 style, mod 2^32). */
#define SEQ_LT(a, b)  ((int32_t)((uint32_t)(a) - (uint32_t)(b)) < 0)
#define SEQ_LEQ(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) <= 0)
#define SEQ_GT(a, b)  ((int32_t)((uint32_t)(a) - (uint32_t)(b)) > 0)
#define SEQ_GEQ(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) >= 0)

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_URG 0x20

#define TCP_HDR_LEN 20
#define TCP_OPT_MAX 40
#define TCP_DEFAULT_MSS 536	/* RFC 9293: assume this when no MSS option */
#define TCP_MAX_WSCALE 14
#define TCP_MAX_SACK 4
#define TCP_MAX_WIN 65535u
#define TCP_SB_MAX 8		/* SACK scoreboard ranges per connection */
#define TCP_DUPTHRESH 3

/* Parsed options of one segment. */
struct tcp_opts {
	bool mss_ok, ws_ok, sack_perm, ts_ok;
	uint16_t mss;
	uint8_t ws;
	uint32_t tsval, tsecr;
	uint8_t nsack;
	struct { uint32_t start, end; } sack[TCP_MAX_SACK];
};

/* Option parse result. */
enum tcp_opt_result { TCP_OPT_OK = 0, TCP_OPT_MALFORMED };

/* Parse the option bytes of a segment (syn: MSS/WS/SACK-perm honoured). */
enum tcp_opt_result tcp_opt_parse(const uint8_t *p, unsigned len, bool syn,
				  struct tcp_opts *o);

/* What to put in an outgoing segment's options. */
struct tcp_opt_out {
	bool syn;		/* SYN options: MSS always, WS/SACK-perm as set */
	uint16_t mss;
	bool ws_ok, sack_perm, ts_ok;
	uint8_t ws;
	uint32_t tsval, tsecr;
	uint8_t nsack;
	struct { uint32_t start, end; } sack[TCP_MAX_SACK];
};
/* Write options into p (room for TCP_OPT_MAX); returns length (multiple of 4). */
unsigned tcp_opt_build(uint8_t *p, const struct tcp_opt_out *o);

/* A received segment, after header parsing. */
struct tcp_seg {
	uint32_t seq, ack;
	uint32_t len;		/* payload bytes (m's pkt_len) */
	uint16_t wnd;		/* raw window field */
	uint8_t flags;
	struct tcp_opts opt;
	struct net_addr saddr, daddr;
	rte_be16_t sport, dport;
};

/* Out-of-order segment held for reassembly. */
struct tcp_ooo {
	uint32_t seq, len;	/* len excludes FIN */
	bool fin;
	uint16_t nmb;		/* mbufs of m, counted in ts->ooo_mbufs */
	struct rte_mbuf *m;	/* NULL when len == 0 (a bare FIN) */
};

struct tcp_wheel_link {
	struct tcp_conn *next, *prev;
	uint64_t at;		/* deadline it is filed under; 0: not filed */
	unsigned slot;
};

struct tcp_conn {
	struct tcp_stack *ts;
	struct tcp_tuple t;
	uint8_t state;			/* enum tcp_state */
	struct tcp_listener *lst;	/* passive, until accepted */
	const struct tcp_callbacks *cb;
	struct tcp_callbacks cbs;	/* copy owned by the connection */
	void *user;
	uint32_t idx;			/* slot in ts->conns */

	/* flags */
	bool app;		/* handed to the application (closed() owed) */
	bool passive;
	bool user_closed;	/* tcp_close called: FIN after snd_end */
	bool fin_rcvd;
	bool ts_ok, sack_ok, ws_ok;
	bool nodelay, keepalive;
	bool want_writable;
	bool ack_now;		/* send an ACK before leaving input */
	bool in_recovery;
	bool rtt_active;
	bool zombie;
	bool cookie;		/* created from a SYN cookie */
	bool in_input;		/* a segment for it is being processed */
	bool out_deferred;	/* tcp_send/tcp_close during input: output at its end */
	bool ack_lazy;		/* this segment's ACK may wait for the burst's end */
	bool ack_queued;	/* in ts->ackq */
	bool sack_recovery;	/* in_recovery driven by the SACK scoreboard */

	/* send side */
	uint32_t iss, snd_una, snd_nxt, snd_max, snd_end;
	uint32_t snd_wnd, max_sndwnd, snd_wl1, snd_wl2;
	uint8_t snd_wscale, rcv_wscale;
	uint16_t mss;		/* send MSS (payload bytes per segment, excl. TS) */
	uint16_t peer_mss;
	struct rte_mbuf *sq_head, *sq_tail;	/* send queue of data mbufs */
	uint32_t sq_off;	/* offset of snd_una's byte in sq_head */
	uint32_t sq_len;	/* bytes queued from snd_una to snd_end */
	uint32_t sq_mbufs;	/* mbufs in the send queue (in ts->sq_mbufs) */
	bool budget_wait;	/* on ts->bw list: tcp_send hit mbuf_budget */
	struct tcp_conn *bw_next, *bw_prev;

	/* congestion control (tcp_cc.c) */
	uint32_t cwnd, ssthresh, recover;
	uint32_t dupacks;
	/* SACK scoreboard (RFC 6675): SACKed ranges above snd_una, sorted,
	 * disjoint; high_rxt is the highest retransmitted seq in recovery */
	struct { uint32_t s, e; } sb[TCP_SB_MAX];
	unsigned nsb;
	uint32_t high_rxt;

	/* RTT / RTO (RFC 6298) */
	uint64_t srtt, rttvar, rto;	/* ns */
	uint32_t rtt_seq;
	uint64_t rtt_start;
	unsigned nrexmit;	/* consecutive timeouts (R1/R2) */
	/* Tail Loss Probe (tcp_timer.c): rexmt_at holds a PTO, not an RTO;
	 * a probe is out (until an ACK covers tlp_end, the snd_max it was
	 * sent at); it retransmitted old data (else it was new data) */
	bool pto_armed, tlp_out, tlp_rexmit, tlp_dsack;
	uint32_t tlp_end, tlp_seq;	/* tlp_seq: first byte the probe resent */
	unsigned persist_shift, keep_probes;

	/* receive side */
	uint32_t irs, rcv_nxt, rcv_adv;	/* rcv_adv: right edge advertised */
	uint32_t rcv_user;	/* bytes delivered, not yet tcp_recved() */
	uint32_t rcv_unacked;	/* in-order bytes since our last ACK */
	uint32_t ts_recent, ts_off;
	uint32_t ts_rto;	/* our TSval when the last RTO fired */
	uint64_t ts_recent_ns;
	uint32_t last_ack_sent;
	uint16_t rcv_mss;	/* largest segment seen (for delayed ACK) */
	struct tcp_ooo *ooo;	/* ooo_max_segs entries (from ts->ooo_pool) */
	unsigned nooo;
	uint32_t last_ooo_seq;	/* most recent out-of-order arrival */

	/* timers: absolute ns, 0 = off */
	uint64_t rexmt_at, persist_at, delack_at, keep_at, tw_at;
	uint64_t app_at;	/* the application's deadline (tcp_set_timer) */
	uint64_t last_rcv_ns;
	struct tcp_wheel_link wl;

	/* RFC 5961 7 challenge ACKs: this connection's own budget, drawn at
	 * random for each second (no counter shared with other connections:
	 * CVE-2016-5696) */
	uint64_t chack_sec;	/* second + 1 the budget is for; 0: none drawn */
	uint32_t chack_left;	/* challenge ACKs still allowed in it */
	/* conf.invalid_ratelimit_ns: when we last answered a segment outside
	 * the window or failing PAWS (0: never) */
	uint64_t oow_ack_ns;

	struct tcp_conn *zombie_next;
	struct tcp_conn *tw_next, *tw_prev;	/* TIME_WAIT list, oldest first */
	uint64_t stat_rexmit, stat_in, stat_out;
};

struct tcp_listener {
	struct tcp_stack *ts;
	rte_be16_t port;
	bool used;
	struct tcp_callbacks cb;
	void *lctx;
	unsigned half_open;
	/* SYN cookies: when the backlog last overflowed (a cookie went out);
	 * a cookie ACK is only taken within two cookie periods of it */
	bool overflowed;
	uint64_t overflow_ns;
};

/* Timer wheel (tcp_timer.c): one deadline per connection. */
struct tcp_wheel {
	struct tcp_conn **slots;	/* list heads */
	unsigned mask;
	uint64_t tick_ns;
	uint64_t cur;			/* last tick processed */
};

struct tcp_stack {
	struct net_stack *ns;
	struct tcp_conf conf;
	struct tcp_stats stats;
	uint64_t now;			/* ns->now_ns at entry */

	struct tcp_conn *conns;
	uint32_t *free_idx;
	unsigned nfree;
	unsigned used;			/* slots in use (incl. zombies) */
	uint32_t *ht;			/* open addressing: conn idx + 1, 0 empty */
	unsigned ht_mask;
	struct tcp_ooo *ooo_pool;
	uint32_t ooo_bytes;		/* held in all OOO queues */
	unsigned sq_mbufs;		/* mbufs held in all send queues */
	unsigned ooo_mbufs;		/* mbufs held in all OOO queues */
	/* connections stopped by conf.mbuf_budget, oldest first */
	struct tcp_conn *bw_head, *bw_tail;
	struct tcp_conn *zombies;
	struct tcp_conn *tw_head, *tw_tail;	/* TIME_WAIT, oldest first */

	struct tcp_listener *lst;

	struct tcp_wheel wheel;

	uint64_t k0, k1;		/* siphash key from conf.secret */
	uint16_t next_port;

	/* conf.ack_coalesce: connections owing an ACK at the next tcp_tick */
	struct tcp_conn **ackq;
	unsigned nackq;
};
#define TCP_ACKQ_MAX 256

/* The words a keyed hash of t covers (its addresses in full, then the
 * ports) into buf (room for TCP_TUPLE_KEY_MAX); returns how many: 3 for
 * IPv4 (the same words as before IPv6 existed), 9 for IPv6. */
#define TCP_TUPLE_KEY_MAX 9
static inline unsigned tcp_tuple_key(const struct tcp_tuple *t, uint32_t *buf)
{
	unsigned n;
	if (t->laddr.family == NET_AF_INET6) {
		memcpy(buf, t->laddr.v6, 16);
		memcpy(buf + 4, t->raddr.v6, 16);
		n = 8;
	} else {
		buf[0] = t->laddr.v4;
		buf[1] = t->raddr.v4;
		n = 2;
	}
	buf[n++] = (uint32_t)t->lport << 16 | t->rport;
	return n;
}

/* tcp_conn.c */
uint64_t tcp_siphash(uint64_t k0, uint64_t k1, const void *data, size_t len);
uint32_t tcp_tuple_hash32(const struct tcp_stack *ts, const struct tcp_tuple *t,
			  uint32_t salt);
struct tcp_conn *tcp_conn_lookup(struct tcp_stack *ts, const struct tcp_tuple *t);
struct tcp_conn *tcp_conn_alloc(struct tcp_stack *ts, const struct tcp_tuple *t);
/* Unhash, stop timers, free buffers; the slot is reused after tcp_reap(). */
void tcp_conn_release(struct tcp_conn *c);
void tcp_reap(struct tcp_stack *ts);
uint32_t tcp_isn(struct tcp_stack *ts, const struct tcp_tuple *t);
uint32_t tcp_ts_now(const struct tcp_conn *c);
/* Tell the application the connection is gone (once), then release it. */
void tcp_conn_drop(struct tcp_conn *c, enum tcp_close_reason why);
void tcp_enter_timewait(struct tcp_conn *c);
/* Initialise the send/receive parameters of a new connection. */
void tcp_conn_setup(struct tcp_conn *c);
struct tcp_listener *tcp_listener_find(struct tcp_stack *ts, rte_be16_t port);
void tcp_sq_free_acked(struct tcp_conn *c, uint32_t n);
/* Free every OOO entry of c (with its byte and mbuf accounting). */
void tcp_ooo_free_all(struct tcp_conn *c);
/* conf.mbuf_budget: room for another mbuf (send or OOO queue)? */
static inline bool tcp_budget_room(const struct tcp_stack *ts)
{
	return ts->conf.mbuf_budget == 0 ||
	       ts->sq_mbufs + ts->ooo_mbufs < ts->conf.mbuf_budget;
}
/* File c on the budget-wait list (once). */
void tcp_budget_wait(struct tcp_conn *c);
void tcp_budget_unwait(struct tcp_conn *c);
/* Fire writable() for budget-waiting connections while there is room
 * (bounded). Only from net_input()/tcp_tick(). */
void tcp_budget_wake(struct tcp_stack *ts);

/* tcp_input.c */
void tcp_input_l4(void *ctx, struct rte_mbuf *m, const struct rte_ipv4_hdr *ip);
/* ICMP "fragmentation needed" for one of our segments (net_frag_needed_fn). */
void tcp_frag_needed_l4(void *ctx, uint16_t mtu, const struct rte_ipv4_hdr *quoted,
			const uint8_t *l4);
/* TCP over IPv6 (ns->tcp_input6) and ICMPv6 packet too big
 * (ns->tcp_pkt_too_big). */
void tcp_input6_l4(void *ctx, struct rte_mbuf *m, const struct rte_ipv6_hdr *ip);
void tcp_pkt_too_big_l4(void *ctx, uint32_t mtu, const struct rte_ipv6_hdr *quoted,
			const uint8_t *l4);
/* The smallest path MTU believed (Linux's min_pmtu): a forged ICMP cannot
 * shrink segments below 552 - 40 bytes of payload. */
#define TCP_PMTU_MIN 552

/* tcp_output.c */
void tcp_output(struct tcp_conn *c);
/* One segment of new data if the peer's window allows (not cwnd); returns
 * the sequence space sent. For SACK recovery. */
uint32_t tcp_send_new(struct tcp_conn *c);
/* As tcp_output, ignoring sender SWS avoidance (persist override). */
void tcp_output_force(struct tcp_conn *c);
void tcp_send_ack(struct tcp_conn *c);
void tcp_send_syn(struct tcp_conn *c);		/* SYN or SYN-ACK by state */
void tcp_send_rst_conn(struct tcp_conn *c);
void tcp_send_keepalive(struct tcp_conn *c);
/* Send one segment of queued data [seq, seq+len) (+FIN if it ends there);
 * len may be cut to fit the options. Returns the sequence space sent. */
uint32_t tcp_xmit_data(struct tcp_conn *c, uint32_t seq, uint32_t len, bool rexmit);
/* A header-only segment with no connection (RST, cookie SYN-ACK). */
void tcp_send_ctl(struct tcp_stack *ts, const struct tcp_tuple *t, uint32_t seq,
		  uint32_t ack, uint8_t flags, uint16_t wnd,
		  const struct tcp_opt_out *o);
void tcp_send_rst_for(struct tcp_stack *ts, const struct tcp_seg *s);
uint32_t tcp_rcv_window(const struct tcp_conn *c);	/* bytes we can take now */
/* MSS we announce on a connection of this family (the MTU less the IP
 * and TCP headers, bounded by the mbuf size). */
#define TCP_V4_HDRS 40u		/* IPv4 + TCP headers, no options */
#define TCP_V6_HDRS 60u		/* IPv6 + TCP headers, no options */
uint16_t tcp_our_mss(const struct tcp_stack *ts, uint8_t family);

/* tcp_timer.c */
int tcp_wheel_init(struct tcp_wheel *w, unsigned slots, uint64_t tick_ns, uint64_t now);
void tcp_wheel_fini(struct tcp_wheel *w);
/* Re-file c under the earliest of its deadlines (or unfile). */
void tcp_timer_update(struct tcp_conn *c);
void tcp_timer_cancel(struct tcp_conn *c);
void tcp_timer_run(struct tcp_stack *ts);
/* Arm the retransmission timer: a PTO when a Tail Loss Probe may go
 * (conf.tlp, synchronized, not in recovery, no probe or timeout pending),
 * else the RTO. */
void tcp_arm_rexmt(struct tcp_conn *c);
/* An ACK (cumulative ack, SACK blocks in s) while a probe is out: ends the
 * probe's episode once ack covers tlp_end; a probe that repaired a loss
 * (no D-SACK said it was a duplicate) gets the congestion response. */
void tcp_tlp_ack(struct tcp_conn *c, const struct tcp_seg *s);

/* tcp_cc.c */
void tcp_cc_init(struct tcp_conn *c);
/* A new cumulative ACK acked `acked` bytes; returns true if handled by
 * recovery (partial ACK retransmitted). */
void tcp_cc_ack(struct tcp_conn *c, uint32_t ack, uint32_t acked);
void tcp_cc_dupack(struct tcp_conn *c, const struct tcp_seg *s);
void tcp_cc_timeout(struct tcp_conn *c);
/* A Tail Loss Probe repaired a loss: reduce the window once. */
void tcp_cc_tlp_repaired(struct tcp_conn *c);
void tcp_rtt_sample(struct tcp_conn *c, uint64_t rtt_ns);
/* Merge the SACK blocks of an ACK into the scoreboard (after snd_una moved). */
void tcp_cc_sack_update(struct tcp_conn *c, const struct tcp_seg *s);
void tcp_sb_clear(struct tcp_conn *c);
/* After an ACK was processed: enter or continue SACK recovery. */
void tcp_cc_sack_after_ack(struct tcp_conn *c);
/* If seq lies in a SACKed range, the end of that range; else seq. */
uint32_t tcp_sb_skip(const struct tcp_conn *c, uint32_t seq);
/* Start of the first SACKed range above seq (or limit if none before it). */
uint32_t tcp_sb_next(const struct tcp_conn *c, uint32_t seq, uint32_t limit);

/* tcp_syncookie.c */
#define TCP_COOKIE_PERIOD_NS (64ull * NS_PER_SEC)	/* cookies live 2 periods */
/* l's backlog overflowed now: a cookie SYN-ACK is about to go out. */
void tcp_cookie_overflow(struct tcp_stack *ts, struct tcp_listener *l);
/* Did l overflow within the last two cookie periods? Only then can a cookie
 * ACK answer a cookie we sent (Linux: tcp_synq_no_recent_overflow). */
bool tcp_cookie_recent_overflow(const struct tcp_stack *ts, const struct tcp_listener *l);
uint32_t tcp_cookie_make(struct tcp_stack *ts, const struct tcp_tuple *t,
			 uint32_t peer_isn, uint16_t mss, uint16_t *mss_used);
/* Encode wscale/SACK in the low bits of a timestamp value. */
uint32_t tcp_cookie_tsval(uint32_t now_ts, uint8_t ws, bool ws_ok, bool sack);
/* On the final ACK: returns false if invalid; fills mss. */
bool tcp_cookie_check(struct tcp_stack *ts, const struct tcp_tuple *t,
		      uint32_t peer_isn, uint32_t cookie, uint16_t *mss);
void tcp_cookie_ts_decode(uint32_t tsecr, bool *ws_ok, uint8_t *ws, bool *sack);

static inline uint32_t tcp_min32(uint32_t a, uint32_t b) { return a < b ? a : b; }
static inline uint32_t tcp_max32(uint32_t a, uint32_t b) { return a > b ? a : b; }

/* True in states where a connection has exchanged SYNs. */
static inline bool tcp_synced(const struct tcp_conn *c)
{
	return c->state >= TCP_ESTABLISHED;
}

#endif
