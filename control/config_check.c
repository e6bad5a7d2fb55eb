/*
 * config_check.c - whole-configuration checks and derived settings. See
 * config_check.h.
 */
#include "control/config_check.h"

#include <errno.h>
#include <grp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/clock.h"
#include "control/cluster.h"
#include "control/metrics.h"
#include "control/retry.h"
#include "control/quota.h"
#include "control/users.h"
#include "dataplane/cpus.h"
#include "dataplane/smtp/smtp_policy.h"
#include "dataplane/smtp/tls.h"

static void add_error(const struct sluice_config *c, struct config_errors *errs,
		      const char *section, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* "source:line: section.name: message", line 0 when the key came from the
 * built-in default (the message then names the default). */
static void add_error(const struct sluice_config *c, struct config_errors *errs,
		      const char *section, const char *name, const char *fmt, ...)
{
	char *m;
	size_t cap = sizeof(errs->msg[0]);
	int n;
	va_list ap;

	if (errs->count >= CONFIG_MAX_ERRORS)
		return;
	m = errs->msg[errs->count++];
	n = snprintf(m, cap, "%s:%u: %s.%s: ", c->source,
		     config_key_line(c, section, name), section, name);
	if (n < 0 || (size_t)n >= cap)
		return;
	va_start(ap, fmt);
	vsnprintf(m + n, cap - (size_t)n, fmt, ap);
	va_end(ap);
}

int config_machine_read(struct config_machine *m)
{
	return cpus_machine(&m->online, &m->allowed);
}

static void check_cpus(struct sluice_config *c, const struct config_machine *m,
		       struct config_errors *errs)
{
	char err[256];
	const char *key = "cores";
	bool workers_set = config_key_line(c, "lcores", "workers") != 0;

	if (cpus_plan(c->dp.cores, c->dp.workers, workers_set, c->dp.main_core, &m->online,
		      &m->allowed, &c->dp.plan, &key, err, sizeof(err)) < 0) {
		add_error(c, errs, "lcores", key, "%s", err);
		return;
	}
	c->dp.workers = c->dp.plan.workers;
}

/* Each entry alone, so the message can name the one that is wrong. */
static void check_policy_list(const struct sluice_config *c, struct config_errors *errs,
			      const char *name, const char *list, bool nets,
			      struct smtp_policy *scratch)
{
	const char *p = list;
	char tok[300];
	unsigned before = errs->count;

	while (*p) {
		size_t n;
		p += strspn(p, " ,\t\n");
		n = strcspn(p, " ,\t\n");
		if (n == 0)
			break;
		snprintf(tok, sizeof(tok), "%.*s", (int)(n < sizeof(tok) - 1 ? n : sizeof(tok) - 1), p);
		if (smtp_policy_init(scratch, nets ? tok : NULL, nets ? NULL : tok) < 0)
			add_error(c, errs, "smtp", name, nets
				  ? "'%s' is not a network like 192.0.2.0/24 (no host bits, not /0)"
				  : "'%s' is not a domain or .domain", tok);
		p += n;
	}
	/* and all together (the counts are bounded) */
	if (smtp_policy_init(scratch, nets ? list : NULL, nets ? NULL : list) < 0 &&
	    errs->count == before)
		add_error(c, errs, "smtp", name, "too many entries (at most %d)",
			  nets ? SMTP_POLICY_MAX_NETS : SMTP_POLICY_MAX_DOMAINS);
}

/* A host name: dot-separated labels of letters, digits and hyphens. */
static bool hostname_ok(const char *h)
{
	size_t len = strlen(h), label = 0;

	if (len == 0 || len > 253 || h[0] == '.' || h[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = h[i];
		if (ch == '.') {
			if (label == 0 || h[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-'))
			return false;
		if ((label == 0 && ch == '-') || ++label > 63)
			return false;
	}
	return h[len - 1] != '-';
}

void config_smtp_engine(const struct sluice_config *c, struct smtp_conf *e)
{
	smtp_conf_default(e);
	snprintf(e->hostname, sizeof(e->hostname), "%s", c->smtp.hostname);
	e->max_size = c->smtp.message_size_limit;
	e->max_rcpt = c->smtp.recipient_limit;
	e->max_errors = c->smtp.error_limit;
	e->max_line = c->smtp.line_length_limit;
	e->hop_limit = c->smtp.hop_limit;
	e->loop = (enum smtp_loop_action)c->smtp.loop_action;
	e->bare = (enum smtp_bare_policy)c->smtp.bare_linefeed;
	e->timeout_cmd_ns = c->smtp.command_timeout_ns;
	e->timeout_data_ns = c->smtp.data_timeout_ns;
	snprintf(e->postmaster, sizeof(e->postmaster), "%s", c->smtp.postmaster);
	e->auth_available = c->auth.users[0] != '\0';	/* submission listeners only */
	e->policy = NULL;
}

int config_client_limits(const struct sluice_config *c, const struct smtp_policy *mynetworks,
			 struct cl_conf *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	out->window_ns = c->limits.window_ns;
	out->addr[CL_CONN] = c->limits.connection_rate;
	out->addr[CL_MSG] = c->limits.message_rate;
	out->addr[CL_RCPT] = c->limits.recipient_rate;
	out->addr[CL_AUTHFAIL] = c->limits.auth_failure_rate;
	out->user[CL_CONN] = c->limits.user_connection_rate;
	out->user[CL_MSG] = c->limits.user_message_rate;
	out->user[CL_RCPT] = c->limits.user_recipient_rate;
	return cl_conf_exempt(out, c->limits.exempt, mynetworks, err, errlen);
}

/* [limits]: the exempt list parses (with mynetworks for "mynetworks"). */
static void check_limits(const struct sluice_config *c, struct config_errors *errs,
			 const struct smtp_policy *mynetworks)
{
	struct cl_conf *cc = malloc(sizeof(*cc));
	char err[160];

	if (!cc) {
		add_error(c, errs, "limits", "exempt", "out of memory");
		return;
	}
	if (config_client_limits(c, mynetworks, cc, err, sizeof(err)) < 0)
		add_error(c, errs, "limits", "exempt", "%s", err);
	free(cc);
}

static void check_smtp(const struct sluice_config *c, struct config_errors *errs)
{
	struct smtp_policy *scratch;
	struct smtp_conf e;
	const char *why;

	if (c->smtp.port == 0)
		return;
	if (!hostname_ok(c->smtp.hostname))
		add_error(c, errs, "smtp", "hostname", "'%s' is not a host name like mx.example.net",
			  c->smtp.hostname);
	scratch = malloc(sizeof(*scratch));
	if (!scratch) {
		add_error(c, errs, "smtp", "mynetworks", "out of memory");
		return;
	}
	check_policy_list(c, errs, "mynetworks", c->smtp.mynetworks, true, scratch);
	check_policy_list(c, errs, "relay_domains", c->smtp.relay_domains, false, scratch);
	if (smtp_policy_init(scratch, c->smtp.mynetworks, NULL) < 0)
		scratch->nnets = 0;	/* reported above */
	check_limits(c, errs, scratch);
	free(scratch);
	config_smtp_engine(c, &e);
	if (smtp_conf_check(&e, &why) < 0)
		add_error(c, errs, "smtp", "hostname", "%s", why);
}

int config_retry_policy(const struct sluice_config *c, struct retry_policy *p,
			const char **key, char *err, size_t errlen)
{
	struct retry_conf rc = {
		.min_backoff_s = c->retry.min_backoff_s,
		.max_backoff_s = c->retry.max_backoff_s,
		.jitter_ppm = c->retry.jitter_ppm,
	};

	if (retry_policy_init(p, c->retry.schedule, c->retry.per_domain, &rc, key, err, errlen) < 0)
		return -1;
	if (retry_lifetime_init(p, c->retry.lifetime_s, c->retry.bounce_lifetime_s,
				c->retry.lifetime_per_domain, err, errlen) < 0) {
		*key = "lifetime_per_domain";
		return -1;
	}
	return 0;
}

const char *config_double_bounce_to(const struct sluice_config *c)
{
	return strcmp(c->retry.double_bounce_to, "postmaster") == 0 ? c->smtp.postmaster
								     : c->retry.double_bounce_to;
}

int config_dest_policy(const struct sluice_config *c, struct dest_policy *p,
		       const char **key, char *err, size_t errlen)
{
	struct dest_conf d = {
		.cls = {
			[DEST_NORMAL] = { .initial_concurrency = c->dest.initial_concurrency,
					  .concurrency_limit = c->dest.concurrency_limit },
			[DEST_NOTIFY] = { .initial_concurrency = c->dest.notify_initial_concurrency,
					  .concurrency_limit = c->dest.notify_concurrency_limit },
		},
		.failed_cohort_limit = c->dest.failed_cohort_limit,
		.dead_backoff_ns = c->retry.min_backoff_s * NS_PER_SEC,
		.recipients_per_transaction = c->dest.recipients_per_transaction,
		.messages_per_connection = c->dest.messages_per_connection,
	};
	const struct {
		const char *key, *text;
		struct rate_spec *out;
	} rates[] = {
		{ "message_rate", c->dest.message_rate, &d.cls[DEST_NORMAL].message_rate },
		{ "connection_rate", c->dest.connection_rate, &d.cls[DEST_NORMAL].connection_rate },
		{ "notify_message_rate", c->dest.notify_message_rate,
		  &d.cls[DEST_NOTIFY].message_rate },
		{ "notify_connection_rate", c->dest.notify_connection_rate,
		  &d.cls[DEST_NOTIFY].connection_rate },
	};

	memset(p, 0, sizeof(*p));
	for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++)
		if (rate_parse(rates[i].text, rates[i].out, err, errlen) < 0) {
			*key = rates[i].key;
			return -1;
		}
	return dest_policy_init(p, &d, c->dest.per_domain, key, err, errlen);
}

/* The policies are large (per-domain tables): on the heap for the check. */
static void check_delivery(const struct sluice_config *c, struct config_errors *errs)
{
	struct retry_policy *rp = malloc(sizeof(*rp));
	struct dest_policy *dp = malloc(sizeof(*dp));
	const char *key = "schedule";
	char err[256];

	if (!rp || !dp) {
		add_error(c, errs, "retry", "schedule", "out of memory");
		goto out;
	}
	if (config_retry_policy(c, rp, &key, err, sizeof(err)) < 0)
		add_error(c, errs, "retry", key, "%s", err);
	if (c->retry.double_bounce_to[0] && strcmp(c->retry.double_bounce_to, "postmaster") != 0 &&
	    !smtp_mailbox_valid(c->retry.double_bounce_to))
		add_error(c, errs, "retry", "double_bounce_to", "'%.64s' is not postmaster, a "
			  "mailbox (local@domain) or empty (drop double bounces)",
			  c->retry.double_bounce_to);
	key = "per_domain";
	if (config_dest_policy(c, dp, &key, err, sizeof(err)) < 0) {
		if (strcmp(key, "dead_backoff") == 0)
			add_error(c, errs, "retry", "min_backoff", "%s", err);
		else
			add_error(c, errs, "dest", key, "%s", err);
	}
out:
	free(rp);
	free(dp);
}

void config_delivery(const struct sluice_config *c, struct dlv_conf *d)
{
	dlv_conf_default(d);
	d->max_conns = c->delivery.max_connections;
	d->max_idle = c->delivery.max_idle;
	snprintf(d->client.helo, sizeof(d->client.helo), "%s",
		 c->delivery.helo_name[0] ? c->delivery.helo_name : c->smtp.hostname);
	d->client.t_connect_ns = c->delivery.connect_timeout_ns;
	d->client.t_greeting_ns = c->delivery.greeting_timeout_ns;
	d->client.t_ehlo_ns = c->delivery.helo_timeout_ns;
	d->client.t_starttls_ns = c->delivery.starttls_timeout_ns;
	d->client.t_rset_ns = c->delivery.rset_timeout_ns;
	d->client.t_mail_ns = c->delivery.mail_timeout_ns;
	d->client.t_rcpt_ns = c->delivery.rcpt_timeout_ns;
	d->client.t_data_ns = c->delivery.data_init_timeout_ns;
	d->client.t_block_ns = c->delivery.data_xfer_timeout_ns;
	d->client.t_dot_ns = c->delivery.data_done_timeout_ns;
	d->client.t_quit_ns = c->delivery.quit_timeout_ns;
	d->tls = NULL;
}

void config_sched(const struct sluice_config *c, struct sched_conf *s)
{
	unsigned workers = c->dp.workers ? c->dp.workers : 1;

	sched_conf_default(s);
	s->active_limit = c->delivery.active_limit;
	s->scan_batch = c->delivery.scan_batch;
	s->lease_s = (unsigned)c->delivery.claim_lease_s;
	s->body_memory = (size_t)c->delivery.body_memory;
	s->keep_idle_ms = (uint32_t)(c->delivery.keep_idle_ns / NS_PER_MS);
	/* every connection busy, and a few more waiting in each job ring */
	s->jobs_max = workers * (c->delivery.max_connections + 64);
	if (s->jobs_max > (1u << 20))
		s->jobs_max = 1u << 20;
	/* notices: our name, where double bounces go, what they return */
	snprintf(s->bounce.hostname, sizeof(s->bounce.hostname), "%s", c->smtp.hostname);
	snprintf(s->bounce.double_bounce_to, sizeof(s->bounce.double_bounce_to), "%s",
		 config_double_bounce_to(c));
	s->bounce.size_limit = c->retry.bounce_size_limit;
	s->bounce.lifetime_s = c->retry.bounce_lifetime_s;
	s->delay_warning_s = c->retry.delay_warning_s;
	s->loop_hold = c->smtp.loop_action == SMTP_LOOP_HOLD;
	s->notice_hold_ns = c->delivery.notice_hold_ns;
}

/* [delivery]: what the delivery service and the scheduler would refuse. */
static void check_outbound(const struct sluice_config *c, struct config_errors *errs)
{
	struct dlv_conf d;
	struct sched_conf s;
	const char *why;
	char err[256];

	if (c->delivery.helo_name[0] && !hostname_ok(c->delivery.helo_name))
		add_error(c, errs, "delivery", "helo_name", "'%s' is not a host name like "
			  "mx.example.net", c->delivery.helo_name);
	if (c->delivery.max_idle > c->delivery.max_connections)
		add_error(c, errs, "delivery", "max_idle", "%u is more than max_connections (%u)",
			  c->delivery.max_idle, c->delivery.max_connections);
	if (c->smtp.port && c->delivery.body_memory < c->smtp.message_size_limit + (1u << 20))
		add_error(c, errs, "delivery", "body_memory", "%llu bytes cannot hold the largest "
			  "message ([smtp] message_size_limit %llu, plus 1m)",
			  (unsigned long long)c->delivery.body_memory,
			  (unsigned long long)c->smtp.message_size_limit);
	if (c->delivery.address_family == ROUTE_AF_IPV6 && !c->dp.addr.ip6_ok)
		add_error(c, errs, "delivery", "address_family", "ipv6 needs [net] address6");
	config_delivery(c, &d);
	if (dlv_conf_check(&d, &why) < 0 && c->delivery.max_idle <= c->delivery.max_connections)
		add_error(c, errs, "delivery", "helo_name", "%s", why);
	config_sched(c, &s);
	if (sched_conf_check(&s, &why) < 0)
		add_error(c, errs, "delivery", "active_limit", "%s", why);
	if (c->delivery.tls_ca_file[0]) {
		struct tls_ctx *t;
		if (c->delivery.tls_ca_file[0] != '/') {
			add_error(c, errs, "delivery", "tls_ca_file", "'%s' is not an absolute path",
				  c->delivery.tls_ca_file);
			return;
		}
		t = tls_ctx_client(c->delivery.tls_ca_file, err, sizeof(err));
		if (!t)
			add_error(c, errs, "delivery", "tls_ca_file", "%s", err);
		tls_ctx_free(t);
	}
}

void config_dns(const struct sluice_config *c, struct dns_conf *d)
{
	dns_conf_default(d);
	snprintf(d->servers, sizeof(d->servers), "%s", c->dns.servers);
	d->timeout_ms = (unsigned)(c->dns.timeout_ns / NS_PER_MS);
	d->attempts = c->dns.attempts;
	d->ttl_min = (uint32_t)c->dns.ttl_min_s;
	d->ttl_max = (uint32_t)c->dns.ttl_max_s;
	d->neg_ttl_max = (uint32_t)c->dns.neg_ttl_max_s;
	d->cache_entries = c->dns.cache_entries;
	d->cache_bytes = (size_t)c->dns.cache_memory;
}

static void check_dns(const struct sluice_config *c, struct config_errors *errs)
{
	struct dns_server s[DNS_SERVERS_MAX];
	char err[160];

	if (dns_servers_parse(c->dns.servers, s, DNS_SERVERS_MAX, err, sizeof(err)) < 0)
		add_error(c, errs, "dns", "servers", "%s", err);
	if (c->dns.ttl_min_s > c->dns.ttl_max_s)
		add_error(c, errs, "dns", "ttl_min", "%llus is above ttl_max (%llus)",
			  (unsigned long long)c->dns.ttl_min_s, (unsigned long long)c->dns.ttl_max_s);
}

void config_route(const struct sluice_config *c, struct route_conf *r)
{
	route_conf_default(r);
	snprintf(r->hostname, sizeof(r->hostname), "%s", c->smtp.hostname);
	snprintf(r->relayhost, sizeof(r->relayhost), "%s", c->routes.relayhost);
	r->self[0] = c->dp.addr.ip;
	r->nself = c->dp.addr.ip ? 1 : 0;
	/* any: AAAA too only when we have an IPv6 address to send from */
	r->family = (enum route_af)c->delivery.address_family;
	if (r->family == ROUTE_AF_ANY && !c->dp.addr.ip6_ok)
		r->family = ROUTE_AF_IPV4;
	r->prefer = (enum route_af)c->delivery.prefer;
	r->self6_ok = c->dp.addr.ip6_ok;
	memcpy(r->self6, c->dp.addr.ip6, 16);
}

/* A routes file's text (NULL with err: unreadable, too big, a NUL byte). */
static char *routes_text(const char *path, char *err, size_t n)
{
	FILE *f = fopen(path, "r");
	char *text;
	long len;

	if (!f) {
		snprintf(err, n, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) < 0 || (len = ftell(f)) < 0 || len > (4 << 20) ||
	    fseek(f, 0, SEEK_SET) < 0) {
		fclose(f);
		snprintf(err, n, "%s: unreadable or larger than 4 MiB", path);
		return NULL;
	}
	text = malloc((size_t)len + 1);
	if (!text || fread(text, 1, (size_t)len, f) != (size_t)len) {
		free(text);
		fclose(f);
		snprintf(err, n, "%s: read failed", path);
		return NULL;
	}
	fclose(f);
	text[len] = '\0';
	if (strlen(text) != (size_t)len) {
		free(text);
		snprintf(err, n, "%s: contains a NUL byte", path);
		return NULL;
	}
	return text;
}

char *config_routes_text(const struct sluice_config *c, char *err, size_t n)
{
	if (!c->routes.file[0]) {
		if (n)
			err[0] = '\0';
		return NULL;
	}
	return routes_text(c->routes.file, err, n);
}

int config_routes_load(const struct sluice_config *c, struct router *rt, char *err, size_t n)
{
	char *text;
	int r;

	if (!c->routes.file[0])
		return 0;
	text = routes_text(c->routes.file, err, n);
	if (!text)
		return -1;
	r = route_load(rt, text, c->routes.file, err, n);
	free(text);
	return r;
}

/* The relayhost, and every line of the routes file on its own. */
static void check_routes(const struct sluice_config *c, struct config_errors *errs)
{
	struct route_conf rc;
	struct route_spec spec;
	char err[256], key[DNS_NAME_MAX + 2], *text, *p;
	unsigned lineno = 0, routes = 0;

	if (c->routes.relayhost[0] &&
	    route_spec_parse(c->routes.relayhost, &spec, err, sizeof(err)) < 0)
		add_error(c, errs, "routes", "relayhost", "%s", err);
	if (!c->routes.file[0])
		return;
	if (c->routes.file[0] != '/') {
		add_error(c, errs, "routes", "routes_file", "'%s' is not an absolute path",
			  c->routes.file);
		return;
	}
	text = routes_text(c->routes.file, err, sizeof(err));
	if (!text) {
		add_error(c, errs, "routes", "routes_file", "%s", err);
		return;
	}
	route_conf_default(&rc);
	for (p = text; *p;) {
		size_t len = strcspn(p, "\n");
		char save = p[len];
		int r;

		lineno++;
		p[len] = '\0';
		r = route_line_parse(p, key, &spec, err, sizeof(err));
		if (r < 0)
			add_error(c, errs, "routes", "routes_file", "%s:%u: %s", c->routes.file,
				  lineno, err);
		routes += r > 0;
		p[len] = save;
		p += len + (save == '\n');
	}
	if (routes > rc.max_routes)
		add_error(c, errs, "routes", "routes_file", "%s: %u routes, more than %u",
			  c->routes.file, routes, rc.max_routes);
	free(text);
}

/* The directory that will hold path must exist (we create one level only). */
static void check_parent(const struct sluice_config *c, struct config_errors *errs,
			 const char *section, const char *name, const char *path, bool is_dir)
{
	char dir[CONFIG_PATH_MAX];
	char *slash;
	struct stat st;

	if (path[0] != '/') {
		add_error(c, errs, section, name, "'%s' is not an absolute path", path);
		return;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	if (is_dir && stat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			add_error(c, errs, section, name, "%s is not a directory", path);
		return;
	}
	slash = strrchr(dir, '/');
	if (slash == dir)
		return;		/* in / */
	*slash = '\0';
	if (!is_dir) {		/* a socket: its directory is made if its parent is there */
		if (stat(dir, &st) == 0)
			return;
		slash = strrchr(dir, '/');
		if (slash == dir)
			return;
		*slash = '\0';
	}
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		add_error(c, errs, section, name, "directory %s does not exist", dir);
}

/* [tls] ciphers, ciphersuites, groups, each through OpenSSL on a context
 * of its own (any certificate will do: the self-signed pair of a scratch
 * context is not needed, tls_ctx_policy works on a client context too). */
static void check_tls_policy(const struct sluice_config *c, struct config_errors *errs)
{
	static const struct { const char *name; size_t off; } lists[] = {
		{ "ciphers", offsetof(struct sluice_config, tls.ciphers) },
		{ "ciphersuites", offsetof(struct sluice_config, tls.ciphersuites) },
		{ "groups", offsetof(struct sluice_config, tls.groups) },
	};
	char err[256];

	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		struct tls_policy p = { 0 };
		const char *v = (const char *)c + lists[i].off;
		struct tls_ctx *t;

		if (i == 0) p.ciphers = v;
		if (i == 1) p.ciphersuites = v;
		if (i == 2) p.groups = v;
		if (!(t = tls_ctx_client(NULL, err, sizeof(err)))) {
			add_error(c, errs, "tls", lists[i].name, "%s", err);
			continue;
		}
		if (tls_ctx_policy(t, &p, err, sizeof(err)) < 0)
			add_error(c, errs, "tls", lists[i].name, "'%s': %s", v, err);
		tls_ctx_free(t);
	}
}

static void check_tls(const struct sluice_config *c, struct config_errors *errs)
{
	struct tls_ctx *t;
	char err[256];

	if (c->smtp.port == 0 || !c->smtp.starttls)
		return;
	check_tls_policy(c, errs);
	if (!c->tls.cert[0] && !c->tls.key[0])
		return;		/* self-signed in the queue directory */
	if (!c->tls.cert[0] || !c->tls.key[0]) {
		add_error(c, errs, "tls", c->tls.cert[0] ? "key" : "cert",
			  "cert and key go together (both empty: a self-signed pair)");
		return;
	}
	t = tls_ctx_server(c->tls.cert, c->tls.key, err, sizeof(err));
	if (!t) {
		add_error(c, errs, "tls", "cert", "%s", err);
		return;
	}
	tls_ctx_free(t);
}

/* A group by name or number; empty: CTL_NO_GROUP. 0, or -1: no such group. */
static int group_id(const char *name, gid_t *gid)
{
	struct group gr, *res = NULL;
	char buf[4096], *end;
	unsigned long n;

	if (!name[0]) {
		*gid = CTL_NO_GROUP;
		return 0;
	}
	if (name[0] >= '0' && name[0] <= '9') {
		n = strtoul(name, &end, 10);
		if (*end || n >= CTL_NO_GROUP)
			return -1;
		*gid = (gid_t)n;
		return 0;
	}
	if (getgrnam_r(name, &gr, buf, sizeof(buf), &res) != 0 || !res)
		return -1;
	*gid = res->gr_gid;
	return 0;
}

int config_control(const struct sluice_config *c, struct ctl_server_conf *s, char *err,
		   size_t errlen)
{
	ctl_server_conf_default(s);
	s->path = c->control.socket;
	s->mode = c->control.mode;
	if (group_id(c->control.group, &s->group) < 0) {
		snprintf(err, errlen, "[control] group: no group '%s'", c->control.group);
		return -1;
	}
	if (group_id(c->control.read_group, &s->read_group) < 0) {
		snprintf(err, errlen, "[control] read_group: no group '%s'", c->control.read_group);
		return -1;
	}
	return 0;
}

static void check_control(const struct sluice_config *c, struct config_errors *errs)
{
	const char *g = c->control.group, *rg = c->control.read_group;
	unsigned mode = c->control.mode;
	struct ctl_server_conf s;

	check_parent(c, errs, "control", "socket", c->control.socket, false);
	if (group_id(g, &s.group) < 0) {
		add_error(c, errs, "control", "group", "no group '%s' on this machine", g);
		s.group = CTL_NO_GROUP;
	}
	if (group_id(rg, &s.read_group) < 0) {
		add_error(c, errs, "control", "read_group", "no group '%s' on this machine", rg);
		s.read_group = CTL_NO_GROUP;
	}
	if (s.group != CTL_NO_GROUP && (mode & 0060) != 0060)
		add_error(c, errs, "control", "mode", "%04o does not let group '%s' connect "
			  "(it needs 0060: e.g. 0660)", mode, g);
	if (s.read_group != CTL_NO_GROUP && (mode & 0006) != 0006)
		add_error(c, errs, "control", "mode", "%04o does not let read_group '%s' connect: "
			  "with a read_group the socket must be open to others (0666), and the "
			  "peer check keeps out who is in neither group", mode, rg);
	if (s.read_group != CTL_NO_GROUP && s.read_group == s.group)
		add_error(c, errs, "control", "read_group", "'%s' is the admins' group too", rg);
}

/* [auth] users: an absolute path to a file every line of which parses
 * (users.h); the first bad line is named. */
static void check_auth(const struct sluice_config *c, struct config_errors *errs)
{
	struct users u;
	char err[300];
	const char *sub[2] = { "submission_port", "submissions_port" };
	unsigned port[2] = { c->smtp.submission_port, c->smtp.submissions_port };

	bool clash[2] = { false, false };

	for (int i = 0; i < 2; i++)	/* first the listeners that cannot be */
		if (port[i] && (port[i] == c->smtp.port || (i == 1 && port[1] == port[0]))) {
			add_error(c, errs, "smtp", sub[i], "%u is already another listener's",
				  port[i]);
			clash[i] = true;
		}
	for (int i = 0; i < 2; i++) {
		if (!port[i] || clash[i])
			continue;
		if (c->smtp.port == 0)
			add_error(c, errs, "smtp", sub[i], "needs the SMTP service (port)");
		else if (!c->smtp.starttls)
			add_error(c, errs, "smtp", sub[i], "needs TLS (starttls = yes): AUTH is "
				  "taken over TLS only");
		else if (!c->auth.users[0])
			add_error(c, errs, "smtp", sub[i], "needs [auth] users: a submission "
				  "listener takes mail from authenticated clients only");
	}

	if (!c->auth.users[0])
		return;
	if (c->auth.users[0] != '/') {
		add_error(c, errs, "auth", "users", "'%s' is not an absolute path", c->auth.users);
		return;
	}
	if (users_load(&u, c->auth.users, err, sizeof(err)) < 0) {
		add_error(c, errs, "auth", "users", "%s", err);
		return;
	}
	users_free(&u);
}

/* [quota] map: an absolute path to a file every line of which parses
 * (quota.h); the first bad line is named. */
static void check_quota(const struct sluice_config *c, struct config_errors *errs)
{
	struct quota_map m;
	char err[300];

	if (!c->quota.map[0])
		return;
	if (c->quota.map[0] != '/') {
		add_error(c, errs, "quota", "map", "'%s' is not an absolute path", c->quota.map);
		return;
	}
	if (quota_map_load(&m, c->quota.map, err, sizeof(err)) < 0) {
		add_error(c, errs, "quota", "map", "%s", err);
		return;
	}
	quota_map_free(&m);
}

/* [metrics] listen: ADDRESS:PORT of this host, not the DPDK port's. */
static void check_metrics(const struct sluice_config *c, struct config_errors *errs)
{
	uint32_t addr;
	uint16_t port;

	if (!c->metrics.listen[0])
		return;
	if (metrics_listen_parse(c->metrics.listen, &addr, &port) < 0) {
		add_error(c, errs, "metrics", "listen", "'%s' is not ADDRESS:PORT like "
			  "127.0.0.1:9925", c->metrics.listen);
		return;
	}
	if (addr == c->dp.addr.ip)
		add_error(c, errs, "metrics", "listen", "%s is the appliance's own address "
			  "([net] address, the DPDK port): metrics are served on a management "
			  "address of the host", c->metrics.listen);
}

void config_cluster(const struct sluice_config *c, struct cluster_conf *k)
{
	memset(k, 0, sizeof(*k));
	snprintf(k->redis, sizeof(k->redis), "%s", c->cluster.redis);
	snprintf(k->password, sizeof(k->password), "%s", c->cluster.password);
	k->tls = c->cluster.tls;
	snprintf(k->name, sizeof(k->name), "%.*s", (int)sizeof(k->name) - 1,
		 c->cluster.name[0] ? c->cluster.name : c->smtp.hostname);
	k->lease_ttl_ns = c->cluster.lease_ttl_ns;
}

/* [cluster]: an address hiredis can use, no TLS (Debian's hiredis has none), a name. */
static void check_cluster(const struct sluice_config *c, struct config_errors *errs)
{
	struct cluster_conf k;
	const char *key = "redis";
	char err[256];

	config_cluster(c, &k);
	if (cluster_conf_check(&k, &key, err, sizeof(err)) < 0)
		add_error(c, errs, "cluster", key, "%s", err);
}

int config_check(struct sluice_config *c, const struct config_machine *m,
		 struct config_errors *errs)
{
	struct config_machine here;
	unsigned before = errs->count;

	if (!m) {
		int r = config_machine_read(&here);
		if (r < 0) {
			add_error(c, errs, "lcores", "cores", "cannot read this machine's CPUs: %s",
				  strerror(-r));
			return -1;
		}
		m = &here;
	}
	check_cpus(c, m, errs);
	check_smtp(c, errs);
	check_delivery(c, errs);
	check_outbound(c, errs);
	check_dns(c, errs);
	check_routes(c, errs);
	check_tls(c, errs);
	check_parent(c, errs, "queue", "dir", c->queue.dir, true);
	check_control(c, errs);
	check_metrics(c, errs);
	check_auth(c, errs);
	check_quota(c, errs);
	check_cluster(c, errs);
	return errs->count > before ? -1 : 0;
}
