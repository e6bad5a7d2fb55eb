/*
 * config.h - Sluice's configuration: one INI file, parsed with libinih.
 *
 * Sections: [eal] [port] [lcores] [net] [impair] [log] for what runs today,
 * and [smtp] [queue] [retry] [dest] [delivery] [routes] [dns] [tls] [auth] [limits] [quota] [control] [metrics] whose keys the
 * later layers read. Every key is listed once in config.c's table with its type,
 * bounds and default; a key not in the table is an error, as is a value out
 * of range or a line inih cannot parse. Errors carry file:line.
 *
 * The built-in default is firmware-config/sluice.conf itself, compiled into
 * the binary, so "no file" and "the shipped file" cannot drift apart.
 */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "dataplane/dataplane.h"

#define CONFIG_PATH_MAX 256
#define CONFIG_MAX_ERRORS 32
#define CONFIG_LINE_MAX 1024
#define CONFIG_KEYS_MAX 192	/* >= the rows of config.c's key table */

struct sluice_config {
	struct dp_conf dp;		/* [eal] [port] [lcores] [net] [impair] */
	int net_prefix;			/* from net.address's /N */

	struct {
		int level;		/* enum log_level */
		bool syslog;
		char mail[CONFIG_PATH_MAX];	/* the mail log: "", "syslog" or a file
						 * (control/maillog.h) */
	} log;

	struct {
		uint16_t port;
		uint16_t submission_port;	/* 587: STARTTLS + AUTH; 0: none */
		uint16_t submissions_port;	/* 465: implicit TLS + AUTH; 0: none */
		char hostname[256];
		char mynetworks[CONFIG_LINE_MAX];
		char relay_domains[CONFIG_LINE_MAX];
		uint64_t message_size_limit;
		unsigned recipient_limit;
		unsigned max_sessions, max_sessions_per_client;
		unsigned error_limit, line_length_limit, hop_limit;
		int loop_action;	/* enum smtp_loop_action: over hop_limit, or
					 * a route back to us: reject/bounce or hold */
		int bare_linefeed;	/* enum smtp_bare_policy */
		uint64_t command_timeout_ns, data_timeout_ns;
		bool starttls;
		uint64_t reverse_lookup_wait_ns;	/* 0: no reverse lookups */
		uint64_t body_memory;	/* per worker lcore */
		char postmaster[SMTP_PATH_MAX - 1];	/* where mail to Postmaster goes:
							 * a path without "<>" */
	} smtp;

	struct {
		char dir[CONFIG_PATH_MAX];
		unsigned shards;
		uint64_t map_size_max;
		int sync;		/* enum queue_sync */
	} queue;

	struct {
		char schedule[256];	/* e.g. "exponential" or "5m,10m,30m,1h" */
		uint64_t lifetime_s;
		uint64_t bounce_lifetime_s;	/* null-sender mail */
		char lifetime_per_domain[CONFIG_LINE_MAX];	/* "domain: 2d; ..." */
		uint64_t delay_warning_s;	/* 0: only NOTIFY=DELAY, after 4 h */
		char double_bounce_to[SMTP_PATH_MAX - 1];	/* "postmaster": [smtp]
							 * postmaster; "": dropped */
		uint64_t bounce_size_limit;	/* an original returned whole up to this */
		uint64_t min_backoff_s, max_backoff_s;
		uint32_t jitter_ppm;	/* +- share of each wait */
		char per_domain[CONFIG_LINE_MAX];	/* "domain: schedule; ..." (retry.h) */
	} retry;

	struct {			/* per-destination delivery policy (dest.h) */
		unsigned initial_concurrency, concurrency_limit;
		char message_rate[64], connection_rate[64];	/* rate.h text; "": unlimited */
		unsigned notify_initial_concurrency, notify_concurrency_limit;
		char notify_message_rate[64], notify_connection_rate[64];
		unsigned failed_cohort_limit;
		unsigned recipients_per_transaction, messages_per_connection;
		char per_domain[CONFIG_LINE_MAX];	/* "domain: key=value, ...; ..." */
	} dest;

	struct {			/* outbound SMTP and its scheduler (sched.h, delivery.h) */
		bool enabled;		/* no: mail is taken in and kept, never sent */
		uint64_t body_memory;	/* the scheduler's body arena */
		unsigned active_limit;	/* message parts in memory */
		unsigned scan_batch;	/* due IDs read per shard per scan */
		uint64_t claim_lease_s;
		uint64_t keep_idle_ns;	/* a connection's idle time after a message */
		unsigned max_connections, max_idle;	/* per worker lcore */
		char helo_name[256];	/* "": [smtp] hostname */
		char tls_ca_file[CONFIG_PATH_MAX];	/* CAs for tls=verify; "": none */
		int address_family;	/* enum route_af: next-hop addresses (any: IPv6
					 * too when [net] address6 is set) */
		int prefer;		/* enum route_af: first among equal MX preferences */
		uint64_t notice_hold_ns;	/* [impair] notice_hold: tests only */
		uint64_t connect_timeout_ns, greeting_timeout_ns, helo_timeout_ns,
			 starttls_timeout_ns, rset_timeout_ns, mail_timeout_ns, rcpt_timeout_ns,
			 data_init_timeout_ns, data_xfer_timeout_ns, data_done_timeout_ns,
			 quit_timeout_ns;
	} delivery;

	struct {
		char relayhost[256];	/* next hop for all mail (a route spec, route.h) */
		char file[CONFIG_PATH_MAX];	/* static routes, "domain spec" lines */
	} routes;

	struct {
		char servers[256];	/* "ip[:port],..." tried in order */
		uint64_t timeout_ns;	/* first try per server */
		unsigned attempts;
		uint64_t ttl_min_s, ttl_max_s, neg_ttl_max_s;
		unsigned cache_entries;
		uint64_t cache_memory;
	} dns;

	struct {
		char cert[CONFIG_PATH_MAX];
		char key[CONFIG_PATH_MAX];
		char ciphers[512];	/* TLS 1.2, OpenSSL syntax; ECDHE+AEAD only */
		char ciphersuites[256];	/* TLS 1.3 */
		char groups[128];	/* ECDH groups, in the server's order */
	} tls;

	struct {
		char socket[CONFIG_PATH_MAX];
		char group[64];		/* the socket's group: its members are admins */
		char read_group[64];	/* members may run read-only commands */
		unsigned mode;		/* the socket file's mode */
		char drain_hook[CONFIG_PATH_MAX];	/* run with "drain" / "undrain"
							 * (drain_hook.h); "": none */
		uint64_t drain_hook_timeout_ns;	/* killed after this */
	} control;

	struct {			/* submission AUTH (control/users.h) */
		char users[CONFIG_PATH_MAX];	/* "name:hash" lines; "": no AUTH */
	} auth;

	struct {			/* per-client rates (client_limits.h), per window;
					 * 0: no limit */
		uint64_t window_ns;
		unsigned connection_rate, message_rate, recipient_rate, auth_failure_rate;
		unsigned user_connection_rate, user_message_rate, user_recipient_rate;
		char exempt[CONFIG_LINE_MAX];	/* CIDRs, "mynetworks" */
	} limits;
	struct {			/* daily quotas (control/quota.h); 0: no limit */
		unsigned user_messages, user_recipients;	/* per AUTH user */
		unsigned client_messages, client_recipients;	/* per mynetworks address */
		char map[CONFIG_PATH_MAX];	/* overrides, "NAME MESSAGES RECIPIENTS" */
	} quota;
	struct {			/* several boxes as one relay (control/cluster.h) */
		char redis[256];	/* "host:port" or a Unix socket's path; "": off */
		char password[128];
		bool tls;
		char name[64];		/* this box; "": [smtp] hostname */
		uint64_t lease_ttl_ns;
	} cluster;

	struct {			/* the exporter (control/metrics.h) */
		char listen[64];	/* "ADDR:PORT" of the HTTP server; "": off */
		unsigned top_destinations;	/* per-destination series in a scrape */
	} metrics;

	/* Where each key was set: the line in `source` (0: not set there,
	 * the built-in default applies). Indexed like config.c's key table;
	 * see config_key_line(). For messages and "was it given" checks. */
	char source[CONFIG_PATH_MAX];
	uint16_t key_line[CONFIG_KEYS_MAX];
};

/* Errors gathered while parsing, each "file:line: message". */
struct config_errors {
	unsigned count;
	char msg[CONFIG_MAX_ERRORS][320];
};

/* The compiled-in copy of firmware-config/sluice.conf. */
extern const char config_default_text[];

/* Parse text (named `name` in messages) over the defaults. 0 when clean. */
int config_parse_string(struct sluice_config *c, const char *text, const char *name,
			struct config_errors *errs);
/* Parse a file over the defaults. 0 when clean; -1 with errors filled. */
int config_load_file(struct sluice_config *c, const char *path, struct config_errors *errs);
/* The built-in default. */
int config_load_default(struct sluice_config *c, struct config_errors *errs);

/* The line of `source` that set section.name, or 0 (not set there). */
unsigned config_key_line(const struct sluice_config *c, const char *section, const char *name);

/* Write the effective configuration as INI text (every key). */
void config_write(const struct sluice_config *c, FILE *out);

#endif
