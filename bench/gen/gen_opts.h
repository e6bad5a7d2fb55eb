/*
 * gen_opts.h - sluice-gen's command line: what to run and how.
 *
 *   sluice-gen MODE [options]      MODE: client, sink, flood, or client,sink
 *
 * Parsed into struct gen_opts without touching EAL (so the parser is unit
 * tested); sluice_gen.c turns it into the dataplane's configuration. See
 * usage() in gen_opts.c (sluice-gen --help) for every option.
 */
#ifndef SLUICE_GEN_OPTS_H
#define SLUICE_GEN_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench/gen/gen_dist.h"

#define GEN_PATH_MAX 512
#define GEN_FAIL_RULES 16

enum { GEN_MODE_CLIENT = 1, GEN_MODE_SINK = 2, GEN_MODE_FLOOD = 4 };

/* The sink's failure injection for one domain ("*": any), percentages. */
struct gen_fail_rule {
	char domain[GEN_WNAME_MAX];
	double rcpt_temp, rcpt_perm, data_temp, data_perm;
};

/* EHLO keywords the sink can hide. */
enum {
	GEN_CAP_PIPELINING = 1, GEN_CAP_SIZE = 2, GEN_CAP_8BITMIME = 4,
	GEN_CAP_ENHANCED = 8, GEN_CAP_CHUNKING = 16, GEN_CAP_DSN = 32,
	GEN_CAP_SMTPUTF8 = 64, GEN_CAP_STARTTLS = 128, GEN_CAP_ETRN = 256,
};

struct gen_opts {
	unsigned modes;			/* GEN_MODE_* bits */

	/* EAL, port, stack */
	char vdev[256];			/* = dp_eal_conf's */
	char pci[64];
	char file_prefix[64];
	char eal_args[512];
	unsigned lcores;		/* worker lcores */
	char cores[128];
	bool busy;			/* idle policy busy (default adaptive) */
	uint32_t ip, netmask, gateway;	/* host order */
	unsigned tcp_conns;		/* TCP slots per lcore (0: derived) */
	uint64_t msl_ms;		/* our TIME_WAIT = 2 * msl */
	unsigned mbufs;

	/* run */
	double duration_s;		/* 0: until count / a signal */
	uint64_t seed;
	char report_json[GEN_PATH_MAX];	/* per-second and final JSON lines */
	char hist_dir[GEN_PATH_MAX];	/* CDFs of the latencies */
	bool quiet;
	double link_wait_s;		/* wait this long for the link */

	/* client */
	uint32_t server_ip;
	uint16_t server_port;
	unsigned concurrency;		/* sessions at once, whole process */
	double connect_timeout_s;	/* a connection not up by then fails */
	double rate;			/* messages/s, whole process; 0: closed loop */
	uint64_t count;			/* messages, whole process; 0: no bound */
	unsigned per_conn;		/* messages per connection; 0: no bound */
	struct gen_size_dist size;
	unsigned rcpts;
	struct gen_wlist domains, locals;
	char from[256];
	char helo[256];
	bool pipelining, chunking, starttls;
	char client_digests[GEN_PATH_MAX];

	/* sink */
	uint16_t sink_port;
	char hostname[256];
	unsigned nfail;
	struct gen_fail_rule fail[GEN_FAIL_RULES];
	double storm_every_s, storm_len_s;	/* 421 storms; 0: none */
	uint64_t greet_delay_ms;
	double sink_timeout_s;		/* a session idle this long: 421 (0: 300 s) */
	uint64_t read_rate;		/* bytes/s per connection; 0: no limit */
	unsigned hide_caps;		/* GEN_CAP_* */
	char tls_dir[GEN_PATH_MAX];	/* STARTTLS with a self-signed pair there */
	char sink_digests[GEN_PATH_MAX];
	uint64_t max_size;
	unsigned sink_sessions;		/* session slots per lcore */

	/* flood */
	char profile[GEN_PATH_MAX];
	uint64_t line_rate;		/* frames/s that "rate 100" means */
};

/* Defaults, then argv. 0 ok; 1: --help was asked (usage printed to out);
 * -1: error in err. */
int gen_opts_parse(struct gen_opts *o, int argc, char **argv, char *err, size_t errlen);
void gen_opts_usage(const char *prog, void *out /* FILE * */);

/* "a.b.c.d[/nn]" -> host order. 0 or -1. */
int gen_parse_ipv4(const char *s, uint32_t *ip, unsigned *prefix);
/* "DOMAIN:kind=pct,..." into a rule. 0 or -1 with err. */
int gen_fail_parse(struct gen_fail_rule *r, const char *spec, char *err, size_t errlen);
/* "PIPELINING,DSN" -> GEN_CAP_* bits. 0 or -1 with err. */
int gen_caps_parse(const char *spec, unsigned *bits, char *err, size_t errlen);

#endif
