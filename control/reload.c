/*
 * reload.c - configuration reloads and checks while sluiced runs. See
 * reload.h.
 */
#include "control/reload.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "control/config_check.h"
#include "control/maillog.h"
#include "control/metrics.h"
#include "control/plane.h"
#include "dataplane/dataplane.h"
#include "dataplane/smtp/smtp_policy.h"
#include "dataplane/smtp/smtp_service.h"
#include "dataplane/smtp/tls.h"

struct reloader {
	struct reload_env env;
	struct sluice_config running;	/* as started */
	struct sluice_config cur;	/* in force: the last reload applied */
	uint64_t gen;			/* reloads applied */
};

/*
 * The keys a reload applies while sluiced runs ("section.key"); every
 * other key needs a restart. reload.h says why each is here.
 */
static const char *const live_keys[] = {
	"smtp.mynetworks", "smtp.relay_domains", "smtp.message_size_limit",
	"smtp.recipient_limit", "smtp.max_sessions", "smtp.max_sessions_per_client",
	"smtp.error_limit", "smtp.line_length_limit", "smtp.hop_limit", "smtp.bare_linefeed",
	"smtp.command_timeout", "smtp.data_timeout", "smtp.starttls",
	"smtp.reverse_lookup_wait",
	"tls.cert", "tls.key", "tls.ciphers", "tls.ciphersuites", "tls.groups",
	"retry.schedule", "retry.per_domain", "retry.min_backoff", "retry.max_backoff",
	"retry.jitter", "retry.lifetime", "retry.lifetime_per_domain",
	"dest.*",
	"routes.relayhost", "routes.routes_file",
	"quota.*",
	"log.level",
	"limits.*",
	NULL,
};

static bool key_live(const char *sk)
{
	for (const char *const *k = live_keys; *k; k++) {
		size_t n = strlen(*k);
		if (n > 2 && strcmp(*k + n - 2, ".*") == 0 ? strncmp(sk, *k, n - 1) == 0
							  : strcmp(sk, *k) == 0)
			return true;
	}
	return false;
}

/* ---- reading and checking ---- */

/* The file through the checks --check-config makes. c is filled either way. */
static int load_checked(const char *path, struct sluice_config *c, struct config_errors *errs)
{
	memset(errs, 0, sizeof(*errs));
	if (config_load_file(c, path, errs) < 0)
		return -1;
	return config_check(c, NULL, errs);
}

/* "N error(s) in FILE, nothing applied:\n" and every error on its own line. */
static json_t *errors_json(const char *what, const char *path, const struct config_errors *errs)
{
	size_t cap = 256 + (size_t)errs->count * (sizeof(errs->msg[0]) + 1);
	char *s = malloc(cap);
	size_t len;
	json_t *j;

	if (!s)
		return json_string("out of memory");
	len = (size_t)snprintf(s, cap, "%u error(s) in %s%s", errs->count, path, what);
	for (unsigned i = 0; i < errs->count && len < cap; i++)
		len += (size_t)snprintf(s + len, cap - len, "\n%s", errs->msg[i]);
	if (errs->count >= CONFIG_MAX_ERRORS && len < cap)
		snprintf(s + len, cap - len, "\n(more errors not shown)");
	j = ctl_json_text(s);
	free(s);
	return j;
}

/* ---- what changed ---- */

/* One config as "key = value" lines in the key table's order (config_write
 * writes every key, so line i of two configs is the same key). */
struct cfg_lines {
	char *buf;
	size_t len;
	unsigned n;
	char *line[CONFIG_KEYS_MAX + 64];
	char section[CONFIG_KEYS_MAX + 64][32];
};

static int cfg_lines(const struct sluice_config *c, struct cfg_lines *out)
{
	FILE *f = open_memstream(&out->buf, &out->len);
	char sec[32] = "";
	char *p, *save = NULL;

	if (!f)
		return -1;
	config_write(c, f);
	if (fclose(f) != 0)
		return -1;
	out->n = 0;
	for (p = strtok_r(out->buf, "\n", &save); p; p = strtok_r(NULL, "\n", &save)) {
		if (p[0] == '[') {
			snprintf(sec, sizeof(sec), "%.*s", (int)strcspn(p + 1, "]"), p + 1);
			continue;
		}
		if (out->n >= sizeof(out->line) / sizeof(out->line[0]))
			return -1;
		snprintf(out->section[out->n], sizeof(out->section[0]), "%s", sec);
		out->line[out->n++] = p;
	}
	return 0;
}

/* "section.key" of a "key = value" line. */
static void line_key(const struct cfg_lines *l, unsigned i, char *out, size_t n)
{
	snprintf(out, n, "%s.%.*s", l->section[i], (int)strcspn(l->line[i], " ="), l->line[i]);
}

/* ---- the SMTP snapshot ---- */

struct smtp_live *reload_smtp_live(const struct sluice_config *c, char *err, size_t errlen)
{
	struct smtp_service_conf sc;
	struct smtp_policy *pol = malloc(sizeof(*pol));
	struct smtp_live *l;
	const char *why;

	if (!pol) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	memset(&sc, 0, sizeof(sc));
	if (smtp_policy_init(pol, c->smtp.mynetworks, c->smtp.relay_domains) < 0) {
		snprintf(err, errlen, "bad mynetworks or relay_domains (a CIDR or domain is "
			 "malformed, or 0.0.0.0/0 would make an open relay)");
		free(pol);
		return NULL;
	}
	config_smtp_engine(c, &sc.engine);
	sc.engine.policy = pol;
	if (smtp_conf_check(&sc.engine, &why) < 0) {
		snprintf(err, errlen, "%s", why);
		free(pol);
		return NULL;
	}
	sc.max_sessions = c->smtp.max_sessions;
	sc.max_per_client = c->smtp.max_sessions_per_client;
	sc.lifetime_s = c->retry.lifetime_s;
	sc.bounce_lifetime_s = c->retry.bounce_lifetime_s;
	sc.rdns_wait_ns = c->smtp.reverse_lookup_wait_ns;
	if (config_client_limits(c, pol, &sc.rates, err, errlen) < 0) {
		free(pol);
		return NULL;
	}
	if (c->smtp.starttls) {
		char cert[CONFIG_PATH_MAX + 32], key[CONFIG_PATH_MAX + 32];
		if (c->tls.cert[0] || c->tls.key[0]) {
			snprintf(cert, sizeof(cert), "%s", c->tls.cert);
			snprintf(key, sizeof(key), "%s", c->tls.key);
		} else {
			snprintf(cert, sizeof(cert), "%s/selfsigned.crt", c->queue.dir);
			snprintf(key, sizeof(key), "%s/selfsigned.key", c->queue.dir);
			if (tls_selfsigned_ensure(cert, key, c->smtp.hostname, err, errlen) < 0) {
				free(pol);
				return NULL;
			}
		}
		sc.tls = tls_ctx_server(cert, key, err, errlen);
		if (!sc.tls || tls_ctx_policy(sc.tls, &(struct tls_policy){ c->tls.ciphers,
				c->tls.ciphersuites, c->tls.groups }, err, errlen) < 0) {
			tls_ctx_free(sc.tls);
			free(pol);
			return NULL;
		}
		sc.engine.tls_available = true;
	}
	l = smtp_live_new(&sc, true);
	free(pol);
	if (!l) {
		tls_ctx_free(sc.tls);
		snprintf(err, errlen, "out of memory");
	}
	return l;
}

/* ---- the reloader ---- */

struct reloader *reloader_create(const struct reload_env *env)
{
	struct reloader *rl = calloc(1, sizeof(*rl));

	if (!rl)
		return NULL;
	rl->env = *env;
	rl->running = *env->running;
	rl->cur = *env->running;
	return rl;
}

void reloader_free(struct reloader *rl)
{
	free(rl);
}

int reload_check(struct reloader *rl, const char *file, json_t **result)
{
	struct sluice_config *c = malloc(sizeof(*c));
	struct config_errors *errs = malloc(sizeof(*errs));
	const char *path = file ? file : rl->env.path;
	int r = -1;

	if (!path) {
		*result = json_string("sluiced runs on its built-in default (no -c FILE): "
				      "name a FILE to check");
		goto out;
	}
	if (!c || !errs) {
		*result = json_string("out of memory");
		goto out;
	}
	if (load_checked(path, c, errs) < 0) {
		*result = errors_json("", path, errs);
		goto out;
	}
	*result = json_pack("{s:{s:o,s:b}}", "config", "file", ctl_json_text(path), "ok", 1);
	r = *result ? 0 : -1;
out:
	free(c);
	free(errs);
	return r;
}

/* Keys that cannot change live and differ from what runs, into restart;
 * the limits that may only go down are put back to their start-up values
 * in nc when over them. */
static int sort_changes(struct reloader *rl, struct sluice_config *nc, json_t *applied,
			json_t *restart)
{
	struct cfg_lines *run = calloc(1, sizeof(*run)), *cur = calloc(1, sizeof(*cur)),
			 *nl = calloc(1, sizeof(*nl));
	const struct sluice_config *st = &rl->running;
	int r = -1;

	/* memory sized at start-up: a session has room for no more */
	if (nc->smtp.recipient_limit > st->smtp.recipient_limit) {
		json_array_append_new(restart, json_string("smtp.recipient_limit"));
		nc->smtp.recipient_limit = st->smtp.recipient_limit;
	}
	if (st->smtp.message_size_limit && (nc->smtp.message_size_limit == 0 ||
					    nc->smtp.message_size_limit >
					    st->smtp.message_size_limit)) {
		json_array_append_new(restart, json_string("smtp.message_size_limit"));
		nc->smtp.message_size_limit = st->smtp.message_size_limit;
	}
	if (!run || !cur || !nl || cfg_lines(st, run) < 0 || cfg_lines(&rl->cur, cur) < 0 ||
	    cfg_lines(nc, nl) < 0 || run->n != nl->n || cur->n != nl->n)
		goto out;
	for (unsigned i = 0; i < nl->n; i++) {
		char sk[96];
		line_key(nl, i, sk, sizeof(sk));
		if (key_live(sk)) {
			if (strcmp(cur->line[i], nl->line[i]) != 0)
				json_array_append_new(applied, json_string(sk));
		} else if (strcmp(run->line[i], nl->line[i]) != 0) {
			json_array_append_new(restart, json_string(sk));
		}
	}
	r = 0;
out:
	if (run)
		free(run->buf);
	if (cur)
		free(cur->buf);
	if (nl)
		free(nl->buf);
	free(run);
	free(cur);
	free(nl);
	return r;
}

/* Keys that need a restart but feed what a reload builds (the SMTP
 * snapshot, the retry policy): their running values, so that a changed one
 * is only reported, never half applied. */
static void keep_running(const struct sluice_config *st, struct sluice_config *nc)
{
	memcpy(nc->smtp.hostname, st->smtp.hostname, sizeof(nc->smtp.hostname));
	memcpy(nc->smtp.postmaster, st->smtp.postmaster, sizeof(nc->smtp.postmaster));
	nc->smtp.loop_action = st->smtp.loop_action;
	nc->smtp.port = st->smtp.port;
	/* the listeners and the auth worker are made at start-up; the users
	 * file they name is read again by every reload (plane_update) */
	nc->smtp.submission_port = st->smtp.submission_port;
	nc->smtp.submissions_port = st->smtp.submissions_port;
	memcpy(nc->auth.users, st->auth.users, sizeof(nc->auth.users));
	nc->retry.bounce_lifetime_s = st->retry.bounce_lifetime_s;
	memcpy(nc->queue.dir, st->queue.dir, sizeof(nc->queue.dir));
}

/* The plane's share of nc. NULL with err. */
static struct plane_update *plane_share(const struct sluice_config *nc, char *err, size_t n)
{
	struct plane_update *u = calloc(1, sizeof(*u));
	const char *key = NULL;

	if (!u) {
		snprintf(err, n, "out of memory");
		return NULL;
	}
	if (config_retry_policy(nc, &u->retry, &key, err, n) < 0 ||
	    config_dest_policy(nc, &u->dest, &key, err, n) < 0) {
		free(u);
		return NULL;	/* config_check built them: cannot happen */
	}
	snprintf(u->relayhost, sizeof(u->relayhost), "%s", nc->routes.relayhost);
	snprintf(u->routes_name, sizeof(u->routes_name), "%s", nc->routes.file);
	snprintf(u->auth_users, sizeof(u->auth_users), "%s", nc->auth.users);
	u->quota_user = (struct quota_limit){ nc->quota.user_messages, nc->quota.user_recipients };
	u->quota_client = (struct quota_limit){ nc->quota.client_messages,
						nc->quota.client_recipients };
	snprintf(u->quota_nets, sizeof(u->quota_nets), "%s", nc->smtp.mynetworks);
	if (nc->quota.map[0] && quota_map_load(&u->quota_map, nc->quota.map, err, n) < 0) {
		free(u->routes_text);
		free(u);
		return NULL;
	}
	if (nc->routes.file[0]) {
		u->routes_text = config_routes_text(nc, err, n);
		if (!u->routes_text) {
			plane_update_free(u);
			return NULL;
		}
	}
	return u;
}

/* Refused: counted, logged, every error in the reply. */
static int refuse(struct reloader *rl, json_t *why, json_t **result)
{
	const char *t = json_string_value(why);

	log_err("reload refused, nothing applied");
	while (t && *t) {	/* every error on a line of its own */
		size_t n = strcspn(t, "\n");
		log_err("reload refused: %.*s", (int)n, t);
		t += n + (t[n] == '\n');
	}
	if (rl->env.metrics)
		metrics_reload_counted(rl->env.metrics, false);
	*result = why;
	return -1;
}

int reload_run(struct reloader *rl, json_t **result)
{
	struct sluice_config *nc = NULL;
	struct config_errors *errs = NULL;
	struct smtp_live *live = NULL;
	struct plane_update *u = NULL;
	json_t *applied = json_array(), *restart = json_array();
	char err[320];
	uint64_t gen;
	int r = -1;

	if (!applied || !restart) {
		r = refuse(rl, json_string("out of memory"), result);
		goto out;
	}
	if (!rl->env.path) {
		r = refuse(rl, json_string("sluiced runs on its built-in default (no -c FILE): "
					   "there is no file to read again"), result);
		goto out;
	}
	nc = malloc(sizeof(*nc));
	errs = malloc(sizeof(*errs));
	if (!nc || !errs) {
		r = refuse(rl, json_string("out of memory"), result);
		goto out;
	}
	if (load_checked(rl->env.path, nc, errs) < 0) {
		r = refuse(rl, errors_json(", nothing applied:", rl->env.path, errs), result);
		goto out;
	}
	if (sort_changes(rl, nc, applied, restart) < 0) {
		r = refuse(rl, json_string("out of memory comparing the configurations"), result);
		goto out;
	}
	keep_running(&rl->running, nc);
	/* Build everything before applying anything: a TLS pair or routes
	 * file that cannot be read refuses the reload whole. */
	if (rl->running.smtp.port && !(live = reload_smtp_live(nc, err, sizeof(err)))) {
		char m[400];
		snprintf(m, sizeof(m), "%s: smtp/tls: %s, nothing applied", rl->env.path, err);
		r = refuse(rl, ctl_json_text(m), result);
		goto out;
	}
	u = plane_share(nc, err, sizeof(err));
	if (!u) {
		char m[400];
		snprintf(m, sizeof(m), "%s: routes: %s, nothing applied", rl->env.path, err);
		r = refuse(rl, ctl_json_text(m), result);
		goto out;
	}

	/* apply */
	gen = ++rl->gen;
	u->gen = gen;
	if (live)
		dp_smtp_publish(rl->env.dp, live);
	live = NULL;
	if (rl->env.plane)
		plane_update(rl->env.plane, u);
	else
		plane_update_free(u);
	u = NULL;
	log_set_level((enum log_level)nc->log.level);
	if (maillog_reopen(err, sizeof(err)) < 0)	/* a rotated mail log */
		log_warn("reload %llu: %s; still writing to the old file",
			 (unsigned long long)gen, err);
	rl->cur = *nc;
	if (rl->env.metrics)
		metrics_reload_counted(rl->env.metrics, true);
	{
		char *a = json_dumps(applied, JSON_COMPACT), *s = json_dumps(restart, JSON_COMPACT);
		log_notice("reload %llu of %s: applied; changed %s%s%s",
			   (unsigned long long)gen, rl->env.path, a ? a : "?",
			   json_array_size(restart) ? ", needs a restart (running values kept) " : "",
			   json_array_size(restart) ? (s ? s : "?") : "");
		free(a);
		free(s);
	}
	*result = json_pack("{s:{s:o,s:I,s:O,s:O}}", "reload", "file", ctl_json_text(rl->env.path),
			    "generation", (json_int_t)gen, "applied", applied, "needs_restart",
			    restart);
	r = *result ? 0 : -1;
out:
	json_decref(applied);
	json_decref(restart);
	smtp_live_free(live);
	plane_update_free(u);
	free(nc);
	free(errs);
	return r;
}
