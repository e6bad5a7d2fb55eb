/*
 * config.c - the INI parser and the table of every configuration key.
 *
 * One row per key: section, name, type, where it lives in struct
 * sluice_config, and bounds. Parsing looks the key up in the table, checks
 * the value, and stores it; config_write walks the same table, so the two
 * can never disagree about what a key means.
 */
#include "control/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <ini.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/clock.h"
#include "common/log.h"
#include "control/dest.h"
#include "control/route.h"
#include "queue/queue.h"

enum key_type {
	K_STR,		/* char[size] */
	K_UINT,		/* unsigned integer of `size` bytes, in [min, max] */
	K_BOOL,
	K_SIZE,		/* bytes, with k/m/g suffix, uint64_t */
	K_DUR_NS,	/* duration with ms/s/m/h/d suffix, stored as ns, uint64_t */
	K_DUR_S,	/* duration stored as seconds, uint64_t */
	K_RATE,		/* "2%" or ppm, uint32_t */
	K_ENUM,		/* one of key.names; stored as its index (an enum) */
	K_LOGLEVEL,	/* err..debug, int */
	K_CIDR,		/* a.b.c.d/N: our address and netmask */
	K_IPV4,		/* a.b.c.d, rte_be32_t; empty means 0 */
	K_CIDR6,	/* IPv6 address/N: our IPv6 address and prefix (empty: none) */
	K_IPV6,		/* an IPv6 address, uint8_t[16]; empty means :: (none) */
	K_MAC,		/* xx:xx:xx:xx:xx:xx; empty means the port's own */
	K_MAILBOX,	/* local@domain as an SMTP path may carry it, char[size] */
	K_MODE,		/* a file mode in octal (0660), unsigned, at most max */
};

struct key {
	const char *section, *name;
	enum key_type type;
	size_t off, size;
	uint64_t min, max;
	const char *const *names;	/* K_ENUM: value i is names[i]; NULL-ended */
};

/* K_ENUM words, in the order of the enums they stand for. */
static const char *const idle_names[] = { "busy", "adaptive", NULL };	/* dp_idle_policy */
static const char *const bare_names[] = { "reject", "normalize", NULL };	/* smtp_bare_policy */
static const char *const sync_names[] = { "full", "nometa", NULL };	/* queue_sync */
static const char *const loop_names[] = { "reject", "hold", NULL };	/* smtp_loop_action */
static const char *const af_names[] = { "any", "ipv4", "ipv6", NULL };	/* route_af */
_Static_assert(DP_IDLE_BUSY == 0 && DP_IDLE_ADAPTIVE == 1 && SMTP_BARE_REJECT == 0 &&
	       SMTP_BARE_NORMALIZE == 1 && QUEUE_SYNC_FULL == 0 && QUEUE_SYNC_NOMETA == 1 &&
	       SMTP_LOOP_REJECT == 0 && SMTP_LOOP_HOLD == 1 && ROUTE_AF_ANY == 0 &&
	       ROUTE_AF_IPV4 == 1 && ROUTE_AF_IPV6 == 2,
	       "K_ENUM name tables follow the enums");

#define F(field) offsetof(struct sluice_config, field), sizeof(((struct sluice_config *)0)->field)

static const struct key keys[] = {
	{ "eal", "args", K_STR, F(dp.eal.args), 0, 0, NULL },
	{ "eal", "vdev", K_STR, F(dp.eal.vdev), 0, 0, NULL },
	{ "eal", "pci", K_STR, F(dp.eal.pci), 0, 0, NULL },
	{ "eal", "file_prefix", K_STR, F(dp.eal.file_prefix), 0, 0, NULL },
	{ "port", "rx_desc", K_UINT, F(dp.port.rx_desc), 64, 16384, NULL },
	{ "port", "tx_desc", K_UINT, F(dp.port.tx_desc), 64, 16384, NULL },
	{ "port", "mbufs", K_UINT, F(dp.port.mbufs), 1023, 4194303, NULL },
	{ "port", "mbuf_cache", K_UINT, F(dp.port.mbuf_cache), 0, 512, NULL },
	{ "lcores", "workers", K_UINT, F(dp.workers), 1, DP_MAX_WORKERS, NULL },
	{ "lcores", "cores", K_STR, F(dp.cores), 0, 0, NULL },
	{ "lcores", "main_core", K_STR, F(dp.main_core), 0, 0, NULL },
	{ "lcores", "idle", K_ENUM, F(dp.idle), 0, 0, idle_names },
	{ "net", "address", K_CIDR, F(dp.addr.ip), 0, 0, NULL },
	{ "net", "gateway", K_IPV4, F(dp.addr.gateway), 0, 0, NULL },
	{ "net", "address6", K_CIDR6, F(dp.addr.ip6), 0, 0, NULL },
	{ "net", "gateway6", K_IPV6, F(dp.addr.gateway6), 0, 0, NULL },
	{ "net", "mac", K_MAC, F(dp.addr.mac), 0, 0, NULL },
	{ "net", "mtu", K_UINT, F(dp.addr.mtu), 576, 9000, NULL },
	{ "net", "arp_entries", K_UINT, F(dp.arp.entries), 16, 1u << 20, NULL },
	{ "net", "arp_pending", K_UINT, F(dp.arp.pending), 1, ARP_PENDING_MAX, NULL },
	{ "net", "arp_timeout", K_DUR_NS, F(dp.arp.reachable_ns), NS_PER_SEC, 86400 * NS_PER_SEC, NULL },
	{ "net", "arp_retry", K_DUR_NS, F(dp.arp.retry_ns), 10 * NS_PER_MS, 60 * NS_PER_SEC, NULL },
	{ "net", "arp_retries", K_UINT, F(dp.arp.max_retries), 1, 20, NULL },
	{ "tcp", "max_conns", K_UINT, F(dp.tcp.max_conns), 16, 1u << 22, NULL },
	{ "tcp", "backlog", K_UINT, F(dp.tcp.backlog), 1, 1u << 20, NULL },
	{ "tcp", "syncookies", K_BOOL, F(dp.tcp.syncookies), 0, 0, NULL },
	{ "tcp", "sndbuf", K_SIZE, F(dp.tcp.sndbuf), 4096, 64u << 20, NULL },
	{ "tcp", "rcvbuf", K_SIZE, F(dp.tcp.rcvbuf), 4096, 64u << 20, NULL },
	{ "tcp", "wscale", K_UINT, F(dp.tcp.wscale), 0, 14, NULL },
	{ "tcp", "timestamps", K_BOOL, F(dp.tcp.timestamps), 0, 0, NULL },
	{ "tcp", "sack", K_BOOL, F(dp.tcp.sack), 0, 0, NULL },
	{ "tcp", "msl", K_DUR_NS, F(dp.tcp.msl_ns), NS_PER_MS, 600 * NS_PER_SEC, NULL },
	{ "tcp", "delayed_ack", K_DUR_NS, F(dp.tcp.delack_ns), NS_PER_MS, 200 * NS_PER_MS, NULL },
	{ "tcp", "keepalive", K_BOOL, F(dp.tcp.keepalive), 0, 0, NULL },
	{ "tcp", "tail_loss_probe", K_BOOL, F(dp.tcp.tlp), 0, 0, NULL },
	{ "tcp", "tlp_ack_delay", K_DUR_NS, F(dp.tcp.tlp_ack_delay_ns), 0, 200 * NS_PER_MS, NULL },
	{ "impair", "seed", K_UINT, F(dp.impair.seed), 0, UINT64_MAX, NULL },
	{ "impair", "rx_drop", K_RATE, F(dp.impair.rx.drop), 0, 0, NULL },
	{ "impair", "rx_dup", K_RATE, F(dp.impair.rx.dup), 0, 0, NULL },
	{ "impair", "rx_reorder", K_RATE, F(dp.impair.rx.reorder), 0, 0, NULL },
	{ "impair", "rx_corrupt", K_RATE, F(dp.impair.rx.corrupt), 0, 0, NULL },
	{ "impair", "tx_drop", K_RATE, F(dp.impair.tx.drop), 0, 0, NULL },
	{ "impair", "tx_dup", K_RATE, F(dp.impair.tx.dup), 0, 0, NULL },
	{ "impair", "tx_reorder", K_RATE, F(dp.impair.tx.reorder), 0, 0, NULL },
	{ "impair", "tx_corrupt", K_RATE, F(dp.impair.tx.corrupt), 0, 0, NULL },
	{ "impair", "tx_push_drop_every", K_UINT, F(dp.impair.tx.push_drop_every), 0, 1000000, NULL },
	{ "impair", "hold", K_DUR_NS, F(dp.impair.hold_ns), 0, NS_PER_SEC, NULL },
	{ "impair", "notice_hold", K_DUR_NS, F(delivery.notice_hold_ns), 0, 60 * NS_PER_SEC, NULL },
	{ "testsvc", "echo_port", K_UINT, F(dp.echo.port), 0, 65535, NULL },
	{ "testsvc", "echo_connect_ip", K_IPV4, F(dp.echo.connect_ip), 0, 0, NULL },
	{ "testsvc", "echo_connect_port", K_UINT, F(dp.echo.connect_port), 0, 65535, NULL },
	{ "testsvc", "echo_connections", K_UINT, F(dp.echo.connections), 0, 100000, NULL },
	{ "testsvc", "echo_bytes", K_SIZE, F(dp.echo.bytes), 0, 1ull << 40, NULL },
	{ "testsvc", "echo_max_conns", K_UINT, F(dp.echo.max_conns), 1, 1u << 20, NULL },
	{ "log", "level", K_LOGLEVEL, F(log.level), 0, 0, NULL },
	{ "log", "syslog", K_BOOL, F(log.syslog), 0, 0, NULL },
	{ "log", "mail", K_STR, F(log.mail), 0, 0, NULL },
	{ "smtp", "port", K_UINT, F(smtp.port), 0, 65535, NULL },
	{ "smtp", "submission_port", K_UINT, F(smtp.submission_port), 0, 65535, NULL },
	{ "smtp", "submissions_port", K_UINT, F(smtp.submissions_port), 0, 65535, NULL },
	{ "smtp", "hostname", K_STR, F(smtp.hostname), 0, 0, NULL },
	{ "smtp", "mynetworks", K_STR, F(smtp.mynetworks), 0, 0, NULL },
	{ "smtp", "relay_domains", K_STR, F(smtp.relay_domains), 0, 0, NULL },
	{ "smtp", "message_size_limit", K_SIZE, F(smtp.message_size_limit), 1024, 1ull << 31, NULL },
	{ "smtp", "recipient_limit", K_UINT, F(smtp.recipient_limit), 100, SMTP_RCPT_HARD_MAX, NULL },
	{ "smtp", "max_sessions", K_UINT, F(smtp.max_sessions), 1, 100000, NULL },
	{ "smtp", "max_sessions_per_client", K_UINT, F(smtp.max_sessions_per_client), 1, 100000, NULL },
	{ "smtp", "error_limit", K_UINT, F(smtp.error_limit), 1, 1000, NULL },
	{ "smtp", "line_length_limit", K_UINT, F(smtp.line_length_limit), 1000, 1u << 20, NULL },
	{ "smtp", "hop_limit", K_UINT, F(smtp.hop_limit), 1, 1000, NULL },
	{ "smtp", "loop_action", K_ENUM, F(smtp.loop_action), 0, 0, loop_names },
	{ "smtp", "bare_linefeed", K_ENUM, F(smtp.bare_linefeed), 0, 0, bare_names },
	{ "smtp", "command_timeout", K_DUR_NS, F(smtp.command_timeout_ns), NS_PER_SEC, 3600 * NS_PER_SEC, NULL },
	{ "smtp", "data_timeout", K_DUR_NS, F(smtp.data_timeout_ns), NS_PER_SEC, 3600 * NS_PER_SEC, NULL },
	{ "smtp", "starttls", K_BOOL, F(smtp.starttls), 0, 0, NULL },
	{ "smtp", "reverse_lookup_wait", K_DUR_NS, F(smtp.reverse_lookup_wait_ns), 0, 10 * NS_PER_SEC, NULL },
	{ "smtp", "body_memory", K_SIZE, F(smtp.body_memory), 1u << 20, 1ull << 40, NULL },
	{ "smtp", "postmaster", K_MAILBOX, F(smtp.postmaster), 0, 0, NULL },
	{ "queue", "dir", K_STR, F(queue.dir), 0, 0, NULL },
	{ "queue", "shards", K_UINT, F(queue.shards), 1, 64, NULL },
	{ "queue", "map_size_max", K_SIZE, F(queue.map_size_max), 1u << 20, 1ull << 44, NULL },
	{ "queue", "sync", K_ENUM, F(queue.sync), 0, 0, sync_names },
	{ "retry", "schedule", K_STR, F(retry.schedule), 0, 0, NULL },
	{ "retry", "lifetime", K_DUR_S, F(retry.lifetime_s), 60, 365 * 86400, NULL },
	{ "retry", "bounce_lifetime", K_DUR_S, F(retry.bounce_lifetime_s), 60, 365 * 86400, NULL },
	{ "retry", "lifetime_per_domain", K_STR, F(retry.lifetime_per_domain), 0, 0, NULL },
	{ "retry", "delay_warning_time", K_DUR_S, F(retry.delay_warning_s), 0, 30 * 86400, NULL },
	{ "retry", "double_bounce_to", K_STR, F(retry.double_bounce_to), 0, 0, NULL },
	{ "retry", "bounce_size_limit", K_SIZE, F(retry.bounce_size_limit), 1024, 1ull << 30, NULL },
	{ "retry", "min_backoff", K_DUR_S, F(retry.min_backoff_s), 1, 86400, NULL },
	{ "retry", "max_backoff", K_DUR_S, F(retry.max_backoff_s), 1, 7 * 86400, NULL },
	{ "retry", "jitter", K_RATE, F(retry.jitter_ppm), 0, 0, NULL },
	{ "retry", "per_domain", K_STR, F(retry.per_domain), 0, 0, NULL },
	{ "dest", "initial_concurrency", K_UINT, F(dest.initial_concurrency), 1, DEST_CONCURRENCY_MAX, NULL },
	{ "dest", "concurrency_limit", K_UINT, F(dest.concurrency_limit), 1, DEST_CONCURRENCY_MAX, NULL },
	{ "dest", "message_rate", K_STR, F(dest.message_rate), 0, 0, NULL },
	{ "dest", "connection_rate", K_STR, F(dest.connection_rate), 0, 0, NULL },
	{ "dest", "notify_initial_concurrency", K_UINT, F(dest.notify_initial_concurrency), 1, DEST_CONCURRENCY_MAX, NULL },
	{ "dest", "notify_concurrency_limit", K_UINT, F(dest.notify_concurrency_limit), 1, DEST_CONCURRENCY_MAX, NULL },
	{ "dest", "notify_message_rate", K_STR, F(dest.notify_message_rate), 0, 0, NULL },
	{ "dest", "notify_connection_rate", K_STR, F(dest.notify_connection_rate), 0, 0, NULL },
	{ "dest", "failed_cohort_limit", K_UINT, F(dest.failed_cohort_limit), 0, DEST_COHORT_LIMIT_MAX, NULL },
	{ "dest", "recipients_per_transaction", K_UINT, F(dest.recipients_per_transaction), 1, DEST_RCPTS_MAX, NULL },
	{ "dest", "messages_per_connection", K_UINT, F(dest.messages_per_connection), 1, DEST_MSGS_PER_CONN_MAX, NULL },
	{ "dest", "per_domain", K_STR, F(dest.per_domain), 0, 0, NULL },
	{ "delivery", "enabled", K_BOOL, F(delivery.enabled), 0, 0, NULL },
	{ "delivery", "body_memory", K_SIZE, F(delivery.body_memory), 1u << 20, 1ull << 40, NULL },
	{ "delivery", "active_limit", K_UINT, F(delivery.active_limit), 1, 1000000, NULL },
	{ "delivery", "scan_batch", K_UINT, F(delivery.scan_batch), 1, 100000, NULL },
	{ "delivery", "claim_lease", K_DUR_S, F(delivery.claim_lease_s), 60, 7 * 86400, NULL },
	{ "delivery", "keep_idle", K_DUR_NS, F(delivery.keep_idle_ns), 0, 300 * NS_PER_SEC, NULL },
	{ "delivery", "max_connections", K_UINT, F(delivery.max_connections), 1, DLV_CONNS_LIMIT, NULL },
	{ "delivery", "max_idle", K_UINT, F(delivery.max_idle), 0, DLV_CONNS_LIMIT, NULL },
	{ "delivery", "helo_name", K_STR, F(delivery.helo_name), 0, 0, NULL },
	{ "delivery", "tls_ca_file", K_STR, F(delivery.tls_ca_file), 0, 0, NULL },
	{ "delivery", "address_family", K_ENUM, F(delivery.address_family), 0, 0, af_names },
	{ "delivery", "prefer", K_ENUM, F(delivery.prefer), 0, 0, af_names },
	{ "delivery", "connect_timeout", K_DUR_NS, F(delivery.connect_timeout_ns), NS_PER_SEC, 3600 * NS_PER_SEC, NULL },
	{ "delivery", "greeting_timeout", K_DUR_NS, F(delivery.greeting_timeout_ns), NS_PER_SEC, 3600 * NS_PER_SEC, NULL },
	{ "delivery", "helo_timeout", K_DUR_NS, F(delivery.helo_timeout_ns), NS_PER_SEC, 3600 * NS_PER_SEC, NULL },
	{ "delivery", "starttls_timeout", K_DUR_NS, F(delivery.starttls_timeout_ns), NS_PER_SEC, 3600 * NS_PER_SEC, NULL },
	{ "delivery", "rset_timeout", K_DUR_NS, F(delivery.rset_timeout_ns), NS_PER_SEC, 3600 * NS_PER_SEC, NULL },
	{ "delivery", "mail_timeout", K_DUR_NS, F(delivery.mail_timeout_ns), NS_PER_SEC, 3600 * NS_PER_SEC, NULL },
	{ "delivery", "rcpt_timeout", K_DUR_NS, F(delivery.rcpt_timeout_ns), NS_PER_SEC, 3600 * NS_PER_SEC, NULL },
	{ "delivery", "data_init_timeout", K_DUR_NS, F(delivery.data_init_timeout_ns), NS_PER_SEC, 3600 * NS_PER_SEC, NULL },
	{ "delivery", "data_xfer_timeout", K_DUR_NS, F(delivery.data_xfer_timeout_ns), NS_PER_SEC, 3600 * NS_PER_SEC, NULL },
	{ "delivery", "data_done_timeout", K_DUR_NS, F(delivery.data_done_timeout_ns), NS_PER_SEC, 3600 * NS_PER_SEC, NULL },
	{ "delivery", "quit_timeout", K_DUR_NS, F(delivery.quit_timeout_ns), NS_PER_SEC, 3600 * NS_PER_SEC, NULL },
	{ "routes", "relayhost", K_STR, F(routes.relayhost), 0, 0, NULL },
	{ "routes", "routes_file", K_STR, F(routes.file), 0, 0, NULL },
	{ "dns", "servers", K_STR, F(dns.servers), 0, 0, NULL },
	{ "dns", "timeout", K_DUR_NS, F(dns.timeout_ns), 10 * NS_PER_MS, 60 * NS_PER_SEC, NULL },
	{ "dns", "attempts", K_UINT, F(dns.attempts), 1, 10, NULL },
	{ "dns", "ttl_min", K_DUR_S, F(dns.ttl_min_s), 0, 86400, NULL },
	{ "dns", "ttl_max", K_DUR_S, F(dns.ttl_max_s), 1, 7 * 86400, NULL },
	{ "dns", "neg_ttl_max", K_DUR_S, F(dns.neg_ttl_max_s), 0, 86400, NULL },
	{ "dns", "cache_entries", K_UINT, F(dns.cache_entries), 16, 1u << 20, NULL },
	{ "dns", "cache_memory", K_SIZE, F(dns.cache_memory), 64u << 10, 1u << 30, NULL },
	{ "cluster", "redis", K_STR, F(cluster.redis), 0, 0, NULL },
	{ "cluster", "password", K_STR, F(cluster.password), 0, 0, NULL },
	{ "cluster", "tls", K_BOOL, F(cluster.tls), 0, 0, NULL },
	{ "cluster", "name", K_STR, F(cluster.name), 0, 0, NULL },
	{ "cluster", "lease_ttl", K_DUR_NS, F(cluster.lease_ttl_ns), NS_PER_SEC, 600 * NS_PER_SEC, NULL },
	{ "tls", "cert", K_STR, F(tls.cert), 0, 0, NULL },
	{ "tls", "key", K_STR, F(tls.key), 0, 0, NULL },
	{ "tls", "ciphers", K_STR, F(tls.ciphers), 0, 0, NULL },
	{ "tls", "ciphersuites", K_STR, F(tls.ciphersuites), 0, 0, NULL },
	{ "tls", "groups", K_STR, F(tls.groups), 0, 0, NULL },
	{ "control", "socket", K_STR, F(control.socket), 0, 0, NULL },
	{ "control", "group", K_STR, F(control.group), 0, 0, NULL },
	{ "control", "read_group", K_STR, F(control.read_group), 0, 0, NULL },
	{ "control", "mode", K_MODE, F(control.mode), 0, 0777, NULL },
	{ "control", "drain_hook", K_STR, F(control.drain_hook), 0, 0, NULL },
	{ "control", "drain_hook_timeout", K_DUR_NS, F(control.drain_hook_timeout_ns), 100 * NS_PER_MS,
	  3600 * NS_PER_SEC, NULL },
	{ "auth", "users", K_STR, F(auth.users), 0, 0, NULL },
	{ "limits", "window", K_DUR_NS, F(limits.window_ns), NS_PER_SEC, 3600 * NS_PER_SEC, NULL },
	{ "limits", "connection_rate", K_UINT, F(limits.connection_rate), 0, CL_LIMIT_MAX, NULL },
	{ "limits", "message_rate", K_UINT, F(limits.message_rate), 0, CL_LIMIT_MAX, NULL },
	{ "limits", "recipient_rate", K_UINT, F(limits.recipient_rate), 0, CL_LIMIT_MAX, NULL },
	{ "limits", "auth_failure_rate", K_UINT, F(limits.auth_failure_rate), 0, CL_LIMIT_MAX, NULL },
	{ "limits", "user_connection_rate", K_UINT, F(limits.user_connection_rate), 0, CL_LIMIT_MAX, NULL },
	{ "limits", "user_message_rate", K_UINT, F(limits.user_message_rate), 0, CL_LIMIT_MAX, NULL },
	{ "limits", "user_recipient_rate", K_UINT, F(limits.user_recipient_rate), 0, CL_LIMIT_MAX, NULL },
	{ "limits", "exempt", K_STR, F(limits.exempt), 0, 0, NULL },
	{ "quota", "user_messages", K_UINT, F(quota.user_messages), 0, UINT32_MAX, NULL },
	{ "quota", "user_recipients", K_UINT, F(quota.user_recipients), 0, UINT32_MAX, NULL },
	{ "quota", "client_messages", K_UINT, F(quota.client_messages), 0, UINT32_MAX, NULL },
	{ "quota", "client_recipients", K_UINT, F(quota.client_recipients), 0, UINT32_MAX, NULL },
	{ "quota", "map", K_STR, F(quota.map), 0, 0, NULL },
	{ "metrics", "listen", K_STR, F(metrics.listen), 0, 0, NULL },
	{ "metrics", "top_destinations", K_UINT, F(metrics.top_destinations), 0, 100, NULL },
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))
_Static_assert(NKEYS <= CONFIG_KEYS_MAX, "raise CONFIG_KEYS_MAX");

static const struct key *key_find(const char *section, const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

static bool section_known(const char *section)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].section, section) == 0)
			return true;
	return false;
}

/* ---- value parsers: 0 on success, else an error text in err ---- */

static int parse_u64(const char *v, uint64_t *out)
{
	char *end;
	unsigned long long x;

	if (*v == '-' || *v == '\0')
		return -1;
	errno = 0;
	x = strtoull(v, &end, 0);
	if (errno || end == v)
		return -1;
	*out = x;
	return (int)(end - v);	/* characters consumed */
}

static int parse_scaled(const char *v, uint64_t *out, bool duration_ns)
{
	uint64_t x, mul = 1;
	int n = parse_u64(v, &x);
	const char *suf;

	if (n < 0)
		return -1;
	suf = v + n;
	if (duration_ns) {
		if (strcmp(suf, "ms") == 0) mul = NS_PER_MS;
		else if (strcmp(suf, "s") == 0 || *suf == '\0') mul = NS_PER_SEC;
		else if (strcmp(suf, "m") == 0) mul = 60 * NS_PER_SEC;
		else if (strcmp(suf, "h") == 0) mul = 3600 * NS_PER_SEC;
		else if (strcmp(suf, "d") == 0) mul = 86400 * NS_PER_SEC;
		else return -1;
	} else {
		if (*suf == '\0') mul = 1;
		else if (strcasecmp(suf, "k") == 0) mul = 1ull << 10;
		else if (strcasecmp(suf, "m") == 0) mul = 1ull << 20;
		else if (strcasecmp(suf, "g") == 0) mul = 1ull << 30;
		else return -1;
	}
	if (x > UINT64_MAX / mul)
		return -1;
	*out = x * mul;
	return 0;
}

static int store_uint(void *p, size_t size, uint64_t v)
{
	switch (size) {
	case 1: *(uint8_t *)p = (uint8_t)v; return 0;
	case 2: *(uint16_t *)p = (uint16_t)v; return 0;
	case 4: *(uint32_t *)p = (uint32_t)v; return 0;
	case 8: *(uint64_t *)p = v; return 0;
	}
	return -1;
}

static uint64_t load_uint(const void *p, size_t size)
{
	switch (size) {
	case 1: return *(const uint8_t *)p;
	case 2: return *(const uint16_t *)p;
	case 4: return *(const uint32_t *)p;
	default: return *(const uint64_t *)p;
	}
}

static int parse_value(struct sluice_config *c, const struct key *k, const char *v,
		       char *err, size_t errlen)
{
	void *p = (char *)c + k->off;
	uint64_t x;
	struct in_addr a;

	switch (k->type) {
	case K_STR:
		if (strlen(v) >= k->size) {
			snprintf(err, errlen, "value longer than %zu characters", k->size - 1);
			return -1;
		}
		memcpy(p, v, strlen(v) + 1);
		return 0;
	case K_UINT:
		if (parse_u64(v, &x) < 0 || v[parse_u64(v, &x)] != '\0') {
			snprintf(err, errlen, "'%s' is not a number", v);
			return -1;
		}
		goto range;
	case K_SIZE:
	case K_DUR_NS:
	case K_DUR_S:
		if (parse_scaled(v, &x, k->type != K_SIZE) < 0) {
			snprintf(err, errlen, "'%s' is not a %s", v,
				 k->type == K_SIZE ? "size (N, Nk, Nm, Ng)"
						   : "duration (Nms, Ns, Nm, Nh, Nd)");
			return -1;
		}
		if (k->type == K_DUR_S)
			x /= NS_PER_SEC;
		goto range;
	case K_BOOL:
		if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "on") || !strcmp(v, "1"))
			*(bool *)p = true;
		else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "off") || !strcmp(v, "0"))
			*(bool *)p = false;
		else {
			snprintf(err, errlen, "'%s' is not yes/no", v);
			return -1;
		}
		return 0;
	case K_RATE: {
		int64_t ppm = impair_parse_rate(v);
		if (ppm < 0) {
			snprintf(err, errlen, "'%s' is not a rate (0%%..100%%, or ppm)", v);
			return -1;
		}
		*(uint32_t *)p = (uint32_t)ppm;
		return 0;
	}
	case K_ENUM: {
		char list[128] = "";
		for (unsigned i = 0; k->names[i]; i++) {
			if (strcmp(v, k->names[i]) == 0)
				return store_uint(p, k->size, i);
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
				 i ? (k->names[i + 1] ? ", " : " or ") : "", k->names[i]);
		}
		snprintf(err, errlen, "'%s' is not %s", v, list);
		return -1;
	}
	case K_LOGLEVEL: {
		int lvl = log_level_parse(v);
		if (lvl < 0) {
			snprintf(err, errlen, "'%s' is not err, warn, notice, info or debug", v);
			return -1;
		}
		*(int *)p = lvl;
		return 0;
	}
	case K_CIDR: {
		char buf[32];
		const char *slash = strchr(v, '/');
		uint64_t plen;
		if (!slash || (size_t)(slash - v) >= sizeof(buf) ||
		    parse_u64(slash + 1, &plen) < 0 || slash[1 + parse_u64(slash + 1, &plen)] != '\0' ||
		    plen < 1 || plen > 32) {
			snprintf(err, errlen, "'%s' is not an address/prefix like 198.18.0.2/24", v);
			return -1;
		}
		memcpy(buf, v, (size_t)(slash - v));
		buf[slash - v] = '\0';
		if (inet_pton(AF_INET, buf, &a) != 1 || a.s_addr == 0) {
			snprintf(err, errlen, "'%s' is not an IPv4 address", buf);
			return -1;
		}
		c->dp.addr.ip = a.s_addr;
		c->dp.addr.netmask = htonl(plen == 32 ? 0xffffffffu : ~(0xffffffffu >> plen));
		c->net_prefix = (int)plen;
		return 0;
	}
	case K_CIDR6: {
		char buf[INET6_ADDRSTRLEN];
		struct in6_addr a6;
		const char *slash = strchr(v, '/');
		uint64_t plen;
		if (*v == '\0') {
			c->dp.addr.ip6_ok = false;
			memset(c->dp.addr.ip6, 0, 16);
			return 0;
		}
		if (!slash || (size_t)(slash - v) >= sizeof(buf) ||
		    parse_u64(slash + 1, &plen) < 0 || slash[1 + parse_u64(slash + 1, &plen)] != '\0' ||
		    plen < 1 || plen > 128) {
			snprintf(err, errlen, "'%s' is not an address/prefix like 2001:db8::1/64", v);
			return -1;
		}
		memcpy(buf, v, (size_t)(slash - v));
		buf[slash - v] = '\0';
		if (inet_pton(AF_INET6, buf, &a6) != 1 || IN6_IS_ADDR_UNSPECIFIED(&a6) ||
		    IN6_IS_ADDR_MULTICAST(&a6) || IN6_IS_ADDR_LOOPBACK(&a6) ||
		    IN6_IS_ADDR_LINKLOCAL(&a6) || IN6_IS_ADDR_V4MAPPED(&a6)) {
			snprintf(err, errlen, "'%s' is not a global or unique-local IPv6 address", buf);
			return -1;
		}
		memcpy(c->dp.addr.ip6, &a6, 16);
		c->dp.addr.prefix6 = (uint8_t)plen;
		c->dp.addr.ip6_ok = true;
		return 0;
	}
	case K_IPV6: {
		struct in6_addr a6;
		if (*v == '\0') {
			memset(p, 0, 16);
			return 0;
		}
		if (inet_pton(AF_INET6, v, &a6) != 1 || IN6_IS_ADDR_MULTICAST(&a6) ||
		    IN6_IS_ADDR_UNSPECIFIED(&a6)) {
			snprintf(err, errlen, "'%s' is not a unicast IPv6 address", v);
			return -1;
		}
		memcpy(p, &a6, 16);
		return 0;
	}
	case K_IPV4:
		if (*v == '\0') {
			*(uint32_t *)p = 0;
			return 0;
		}
		if (inet_pton(AF_INET, v, &a) != 1) {
			snprintf(err, errlen, "'%s' is not an IPv4 address", v);
			return -1;
		}
		*(uint32_t *)p = a.s_addr;
		return 0;
	case K_MAILBOX:
		if (strlen(v) >= k->size || !smtp_mailbox_valid(v)) {
			snprintf(err, errlen, "'%.64s' is not a mailbox (local@domain, ASCII, "
				 "at most %zu characters)", v, k->size - 1);
			return -1;
		}
		memcpy(p, v, strlen(v) + 1);
		return 0;
	case K_MODE: {
		char *end;
		unsigned long m;
		if (*v < '0' || *v > '7' || (m = strtoul(v, &end, 8), *end) || m > k->max) {
			snprintf(err, errlen, "'%s' is not a file mode in octal (0000..%04llo)", v,
				 (unsigned long long)k->max);
			return -1;
		}
		return store_uint(p, k->size, m);
	}
	case K_MAC:
		if (*v == '\0') {
			memset(p, 0, RTE_ETHER_ADDR_LEN);
			return 0;
		}
		if (rte_ether_unformat_addr(v, p) < 0 ||
		    !rte_is_unicast_ether_addr(p)) {
			snprintf(err, errlen, "'%s' is not a unicast MAC address", v);
			return -1;
		}
		return 0;
	}
	snprintf(err, errlen, "internal: unknown key type");
	return -1;
range:
	if (x < k->min || x > k->max) {
		snprintf(err, errlen, "%llu is out of range %llu..%llu", (unsigned long long)x,
			 (unsigned long long)k->min, (unsigned long long)k->max);
		return -1;
	}
	return store_uint(p, k->size, x);
}

/* ---- inih glue ---- */

struct parse_state {
	struct sluice_config *cfg;
	struct config_errors *errs;
	const char *name;	/* file name for messages */
	const char *cur;	/* reader cursor in the text */
	int line;		/* line number of the line last handed to inih */
};

static void add_error(struct parse_state *st, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void add_error(struct parse_state *st, int line, const char *fmt, ...)
{
	va_list ap;
	size_t n;
	char *m;

	if (st->errs->count >= CONFIG_MAX_ERRORS)
		return;
	m = st->errs->msg[st->errs->count++];
	n = (size_t)snprintf(m, sizeof(st->errs->msg[0]), "%s:%d: ", st->name, line);
	if (n >= sizeof(st->errs->msg[0]))
		return;
	va_start(ap, fmt);
	vsnprintf(m + n, sizeof(st->errs->msg[0]) - n, fmt, ap);
	va_end(ap);
}

/* A line is blank, a comment, "[section]" or "key = value". */
static bool line_shape_ok(const char *s)
{
	size_t n;

	while (*s == ' ' || *s == '\t')
		s++;
	n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		n--;
	if (n == 0 || *s == '#' || *s == ';')
		return true;
	if (*s == '[')
		return s[n - 1] == ']' && n > 2;
	return *s != '=' && memchr(s, '=', n) != NULL;
}

/* inih reader: one line per call from the in-memory text, counting lines. */
static char *read_line(char *str, int num, void *stream)
{
	struct parse_state *st = stream;
	const char *nl;
	size_t len;

	if (*st->cur == '\0')
		return NULL;
	st->line++;
	nl = strchr(st->cur, '\n');
	len = nl ? (size_t)(nl - st->cur) : strlen(st->cur);
	if (len + 2 > (size_t)num) {
		add_error(st, st->line, "line longer than %d characters", num - 2);
		str[0] = '\0';	/* hand inih a blank line in its place */
	} else {
		memcpy(str, st->cur, len);
		str[len] = '\0';
		if (!line_shape_ok(str)) {
			add_error(st, st->line, "syntax error (expected [section] or key = value)");
			str[0] = '\0';
		}
	}
	st->cur += len + (nl ? 1 : 0);
	return str;
}

static int handle(void *user, const char *section, const char *name, const char *value)
{
	struct parse_state *st = user;
	const struct key *k;
	char err[200];

	if (!name)	/* a section header alone */
		return 1;
	if (!section_known(section)) {
		add_error(st, st->line, "unknown section [%s]", section);
		return 0;
	}
	k = key_find(section, name);
	if (!k) {
		add_error(st, st->line, "unknown key '%s' in [%s]", name, section);
		return 0;
	}
	if (!value)
		value = "";
	if (parse_value(st->cfg, k, value, err, sizeof(err)) < 0) {
		add_error(st, st->line, "%s.%s: %s", section, name, err);
		return 0;
	}
	st->cfg->key_line[k - keys] = (uint16_t)(st->line > UINT16_MAX ? UINT16_MAX : st->line);
	return 1;
}

int config_parse_string(struct sluice_config *c, const char *text, const char *name,
			struct config_errors *errs)
{
	struct parse_state st = { c, errs, name, text, 0 };
	int r;

	snprintf(c->source, sizeof(c->source), "%s", name);
	memset(c->key_line, 0, sizeof(c->key_line));

	/* Library settings, the same on every call: heap line buffer of our
	 * size, no continuation lines (an indented line is a mistake here). */
	ini_use_stack = false;
	ini_max_line = CONFIG_LINE_MAX;
	/* The heap buffer starts (and, without realloc, stays) at this size:
	 * left at its default of 200, lines over 198 characters were refused. */
	ini_initial_alloc = CONFIG_LINE_MAX;
	ini_allow_realloc = false;
	ini_allow_multiline = false;
	ini_stop_on_first_error = false;

	r = ini_parse_stream(read_line, &st, handle, &st);
	/* read_line screens syntax and handle() reports its own errors, so
	 * inih finding fault where we found none is a shape we did not foresee. */
	if (r > 0 && errs->count == 0)
		add_error(&st, r, "syntax error (expected [section] or key = value)");
	if (r < 0)
		add_error(&st, 0, "out of memory");
	return errs->count ? -1 : 0;
}

int config_load_default(struct sluice_config *c, struct config_errors *errs)
{
	memset(c, 0, sizeof(*c));
	/* The stack's tuning beyond the keys in the table keeps its own defaults. */
	tcp_conf_default(&c->dp.tcp);
	memset(errs, 0, sizeof(*errs));
	return config_parse_string(c, config_default_text, "(built-in default)", errs);
}

int config_load_file(struct sluice_config *c, const char *path, struct config_errors *errs)
{
	FILE *f;
	char *text;
	long len;
	int r;

	if (config_load_default(c, errs) < 0)
		return -1;
	f = fopen(path, "r");
	if (!f) {
		snprintf(errs->msg[errs->count++], sizeof(errs->msg[0]), "%s: %s", path,
			 strerror(errno));
		return -1;
	}
	if (fseek(f, 0, SEEK_END) < 0 || (len = ftell(f)) < 0 || len > (1 << 20) ||
	    fseek(f, 0, SEEK_SET) < 0) {
		fclose(f);
		snprintf(errs->msg[errs->count++], sizeof(errs->msg[0]),
			 "%s: unreadable or larger than 1 MiB", path);
		return -1;
	}
	text = malloc((size_t)len + 1);
	if (!text || fread(text, 1, (size_t)len, f) != (size_t)len) {
		free(text);
		fclose(f);
		snprintf(errs->msg[errs->count++], sizeof(errs->msg[0]), "%s: read failed", path);
		return -1;
	}
	text[len] = '\0';
	fclose(f);
	if (strlen(text) != (size_t)len) {
		free(text);
		snprintf(errs->msg[errs->count++], sizeof(errs->msg[0]), "%s: contains a NUL byte", path);
		return -1;
	}
	r = config_parse_string(c, text, path, errs);
	free(text);
	return r;
}

unsigned config_key_line(const struct sluice_config *c, const char *section, const char *name)
{
	const struct key *k = key_find(section, name);

	return k ? c->key_line[k - keys] : 0;
}

/* ---- writer ---- */

static void write_duration(FILE *out, uint64_t ns)
{
	if (ns % NS_PER_SEC)
		fprintf(out, "%llums", (unsigned long long)(ns / NS_PER_MS));
	else
		fprintf(out, "%llus", (unsigned long long)(ns / NS_PER_SEC));
}

void config_write(const struct sluice_config *c, FILE *out)
{
	const char *section = "";
	char ip[INET_ADDRSTRLEN];

	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		const void *p = (const char *)c + k->off;

		if (strcmp(section, k->section) != 0) {
			fprintf(out, "%s[%s]\n", i ? "\n" : "", k->section);
			section = k->section;
		}
		fprintf(out, "%s = ", k->name);
		switch (k->type) {
		case K_STR:
		case K_MAILBOX: fputs((const char *)p, out); break;
		case K_UINT:
		case K_SIZE: fprintf(out, "%llu", (unsigned long long)load_uint(p, k->size)); break;
		case K_DUR_NS: write_duration(out, *(const uint64_t *)p); break;
		case K_DUR_S: fprintf(out, "%llus", (unsigned long long)*(const uint64_t *)p); break;
		case K_BOOL: fputs(*(const bool *)p ? "yes" : "no", out); break;
		case K_RATE: fprintf(out, "%u", *(const uint32_t *)p); break;
		case K_MODE: fprintf(out, "%04llo", (unsigned long long)load_uint(p, k->size)); break;
		case K_ENUM: fputs(k->names[load_uint(p, k->size)], out); break;
		case K_LOGLEVEL: fputs(log_level_name(*(const int *)p), out); break;
		case K_CIDR:
			inet_ntop(AF_INET, &c->dp.addr.ip, ip, sizeof(ip));
			fprintf(out, "%s/%d", ip, c->net_prefix);
			break;
		case K_CIDR6:
			if (c->dp.addr.ip6_ok) {
				char ip6[INET6_ADDRSTRLEN];
				inet_ntop(AF_INET6, c->dp.addr.ip6, ip6, sizeof(ip6));
				fprintf(out, "%s/%u", ip6, c->dp.addr.prefix6);
			}
			break;
		case K_IPV6: {
			static const uint8_t z[16];
			if (memcmp(p, z, 16) != 0) {
				char ip6[INET6_ADDRSTRLEN];
				inet_ntop(AF_INET6, p, ip6, sizeof(ip6));
				fputs(ip6, out);
			}
			break;
		}
		case K_IPV4:
			if (*(const uint32_t *)p) {
				inet_ntop(AF_INET, p, ip, sizeof(ip));
				fputs(ip, out);
			}
			break;
		case K_MAC:
			if (!rte_is_zero_ether_addr(p))
				fprintf(out, RTE_ETHER_ADDR_PRT_FMT, RTE_ETHER_ADDR_BYTES((const struct rte_ether_addr *)p));
			break;
		}
		fputc('\n', out);
	}
}
