/*
 * gen.h - sluice-gen's run and its per-lcore parts, as the modes see them.
 *
 * One struct gen_run per process (main thread; read-only on the lcores
 * once they run, apart from the atomics); one struct gen_lcore per worker
 * lcore, made by the dataplane's application hook (dataplane.h, struct
 * dp_app) and polled by the daemon's own burst loop, so the generator runs
 * on sluiced's stack and loop, adaptive idle included. An lcore runs the
 * client (gen_client.c), the sink (gen_sink.c) or the flood (gen_flood.c),
 * or client and sink together (one memif link to sluiced carries both its
 * inbound and its delivery traffic; see bench/README.md).
 *
 * Counters are per lcore, written only by it, read racily by the main
 * thread for the per-second report (as the daemon's stats are); the
 * histograms and digest logs are read after the lcores stop.
 */
#ifndef SLUICE_GEN_H
#define SLUICE_GEN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bench/gen/gen_dist.h"
#include "bench/gen/gen_hist.h"
#include "bench/gen/gen_msg.h"
#include "bench/gen/gen_opts.h"
#include "bench/gen/gen_pkt.h"
#include "common/stats.h"
#include "dataplane/smtp/smtp_client.h"
#include "dataplane/smtp/smtp_policy.h"
#include "dataplane/smtp/smtp_server.h"

#define GEN_MAX_LCORES 16
#define GEN_RCPT_MAX 32
#define GEN_CODES 600			/* reply codes counted: 0..599 */

#define GEN_STATS(X) \
	X(conn_started) X(conn_ok) X(conn_failed) X(conn_no_slot) X(sessions_closed) \
	X(msg_started) X(msg_ok) X(msg_temp) X(msg_perm) X(msg_lost) \
	X(rcpt_ok) X(rcpt_temp) X(rcpt_perm) X(msg_bytes) X(tls_ok) X(tls_failed) \
	X(late_starts) X(digest_overflow) X(msg_unfinished) \
	X(sink_conns) X(sink_refused_storm) X(sink_msgs) X(sink_bytes) \
	X(sink_rcpt_temp) X(sink_rcpt_perm) X(sink_data_temp) X(sink_data_perm) \
	X(sink_storm_421) X(sink_unmarked) X(sink_no_slot) X(sink_tls) X(sink_timeouts) \
	X(flood_frames) X(flood_bytes) X(flood_nombuf) X(flood_tx_full)
struct gen_stats {
	GEN_STATS(STATS_FIELD)
};
extern const char *const gen_stat_names[];
extern const unsigned gen_stat_count;

struct tls_ctx;
struct net_stack;
struct tcp_stack;
struct gen_client;
struct gen_sink;
struct gen_flood;

struct gen_run {
	const struct gen_opts *o;
	unsigned nworkers;
	char tpl[GEN_TEMPLATE_LEN];	/* message bodies are cut from it */
	char run_id[24];		/* in every marker: tells runs apart */
	char date[64];			/* the Date: of every message */
	uint64_t unix0;			/* unix seconds when the lcores' clock read 0 */
	atomic_bool go;			/* the link is up: start */
	atomic_bool stop;		/* start nothing new (duration, count, signal) */
	atomic_uint_fast64_t budget;	/* messages still to start (--count) */
	bool counted;			/* --count given */
	struct smtp_client_conf ccf;
	struct smtp_conf scf;
	struct smtp_policy pol;		/* the sink relays for everyone */
	struct smtp_stats sink_engine_stats[GEN_MAX_LCORES];
	struct tls_ctx *tls_client, *tls_server;
	struct gen_pkt_prog prog;	/* flood */
	struct gen_lcore *lc[GEN_MAX_LCORES];
};

/* A digest log: what was answered 250 (client) or received (sink). */
struct gen_diglog {
	uint64_t n, cap;
	uint8_t (*d)[GEN_SHA_LEN];
};

struct gen_lcore {
	struct gen_run *run;
	unsigned worker;
	struct net_stack *ns;
	struct tcp_stack *tcp;
	const uint64_t *now;		/* the loop's clock, ns */
	struct gen_rng rng;
	struct gen_client *client;
	struct gen_sink *sink;
	struct gen_flood *flood;
	struct gen_stats st;
	uint64_t codes[GEN_CODES];	/* final reply code of each message */
	struct gen_hist h_connect, h_greet, h_data;
	struct gen_diglog cdig, sdig;
	struct smtp_client_stats cstats;
};

/* The dp_app hooks (sluice_gen.c wires them). */
struct dp_app_lcore;
void *gen_lcore_create(void *run, const struct dp_app_lcore *al);
unsigned gen_lcore_poll(void *g);
void gen_lcore_destroy(void *g);

/* Take one message from the run's budget (--count). */
bool gen_take_budget(struct gen_run *run);
void gen_diglog_add(struct gen_lcore *g, struct gen_diglog *l, const uint8_t *d);

/* The modes (each NULL/0 when not running it). */
struct gen_client *gen_client_create(struct gen_lcore *g);
unsigned gen_client_poll(struct gen_client *c);
void gen_client_destroy(struct gen_client *c);
unsigned gen_client_active(const struct gen_client *c);	/* sessions open */
/* After the lcores stopped: messages sent with no answer yet (the drain
 * at stop ran out), now counted in msg_unfinished. */
unsigned gen_client_unfinished(struct gen_client *c);

struct gen_sink *gen_sink_create(struct gen_lcore *g);
unsigned gen_sink_poll(struct gen_sink *s);
void gen_sink_destroy(struct gen_sink *s);

struct gen_flood *gen_flood_create(struct gen_lcore *g);
unsigned gen_flood_poll(struct gen_flood *f);
void gen_flood_destroy(struct gen_flood *f);
bool gen_flood_done(const struct gen_flood *f);

#endif
