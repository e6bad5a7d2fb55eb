/*
 * gen_opts.c - sluice-gen's command line. See gen_opts.h.
 */
#include "bench/gen/gen_opts.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

void gen_opts_usage(const char *prog, void *outp)
{
	FILE *out = outp;

	fprintf(out,
"usage: %s MODE [options]     MODE: client | sink | flood | client,sink\n"
"\n"
"port and stack:\n"
"  --vdev SPEC          DPDK vdev, e.g. net_memif0,role=client,socket=/x.sock,socket-abstract=no\n"
"  --pci ADDR           a PCI port instead of a vdev\n"
"  --file-prefix NAME   EAL file prefix (default sgen<pid>)\n"
"  --eal ARGS           EAL arguments (default \"--no-huge --no-pci --no-shconf -m 512\")\n"
"  --lcores N           worker lcores (default 1)   --cores LIST  their CPUs\n"
"  --busy               busy polling (default: adaptive idle, as sluiced's)\n"
"  --ip A/NN            our address (default 198.18.0.1/24)  --gw A  gateway\n"
"  --tcp-conns N        TCP slots per lcore          --msl MS  TIME_WAIT = 2*MSL (default 1000)\n"
"  --mbufs N            mbuf pool (default 65535)\n"
"run and reports:\n"
"  --duration S         stop after S seconds (default: at --count, or a signal)\n"
"  --seed N             random choices (default 1)\n"
"  --report FILE        per-second and final reports as JSON lines\n"
"  --hist-dir DIR       latency CDFs (connect, greeting, data) as text\n"
"  --quiet              no per-second lines on stdout\n"
"  --link-wait S        wait for the link before starting (default 10)\n"
"client:\n"
"  --server A[:PORT]    where to connect (default 198.18.0.2:25)\n"
"  --concurrency N      sessions at once (default 16)\n"
"  --connect-timeout S  a connection not up in S seconds fails (default 10)\n"
"  --rate R             messages/s, open loop (default 0: closed loop)\n"
"  --count N            messages in all (default 0: no bound)\n"
"  --per-conn K         messages per connection (default 1; 0: no bound)\n"
"  --size SPEC          10k | 1k-100k | exp:10k | 1k:50,10k:40,1m:10 (default 10k)\n"
"  --rcpts N            recipients per message (default 1)\n"
"  --domains LIST       weighted recipient domains (default sink.test)\n"
"  --locals LIST        weighted local parts, sink markers included (default user)\n"
"  --from ADDR          envelope sender (default gen@sluice-gen.test)\n"
"  --helo NAME          (default sluice-gen.test)\n"
"  --no-pipelining      --no-chunking      --starttls (required; default off)\n"
"  --client-digests F   SHA-256 of every message answered 250, one per line\n"
"sink:\n"
"  --port P             listen port (default 25)\n"
"  --hostname NAME      greeting name (default sink.sluice-gen.test)\n"
"  --fail D:K=P[,K=P]   failures for domain D (* = any), K: rcpt-temp rcpt-perm\n"
"                       data-temp data-perm, P percent; repeatable\n"
"                       (local parts containing tempfail, permfail, datatemp,\n"
"                       dataperm always get that outcome)\n"
"  --storm EVERY:LEN    421 storms: LEN seconds of 421 every EVERY seconds\n"
"  --greet-delay MS     hold the greeting\n"
"  --read-rate B        read at most B bytes/s per connection\n"
"  --sink-timeout S     a session waiting S s for a command gets 421 (default 300)\n"
"  --hide CAPS          EHLO keywords not offered: PIPELINING,SIZE,8BITMIME,\n"
"                       ENHANCEDSTATUSCODES,CHUNKING,DSN,SMTPUTF8,STARTTLS,ETRN\n"
"  --tls-dir DIR        offer STARTTLS with a self-signed pair kept in DIR\n"
"  --sink-digests F     SHA-256 of every body received (from the marker line)\n"
"  --max-size B         SIZE limit (default 64m)   --sink-sessions N per lcore\n"
"flood:\n"
"  --profile FILE.pkt   Pktgen command file (bench/pktgen/)\n"
"  --line-rate PPS      frames/s that \"rate 100\" means (default 1000000)\n"
"exit status: 0; 1 an error; 2 bad usage; 3 a client run that measured nothing\n"
"(no message answered 250), lost messages (no answer at all) or left some\n"
"unanswered when the drain at stop ran out.\n",
		prog);
}

int gen_parse_ipv4(const char *s, uint32_t *ip, unsigned *prefix)
{
	unsigned a, b, c, d, p = 32;
	int n = 0;
	char tail;

	if (!s || sscanf(s, "%u.%u.%u.%u%n", &a, &b, &c, &d, &n) != 4 || a > 255 || b > 255 ||
	    c > 255 || d > 255)
		return -1;
	if (s[n] == '/') {
		if (!prefix || sscanf(s + n + 1, "%u%c", &p, &tail) != 1 || p > 32)
			return -1;
	} else if (s[n]) {
		return -1;
	}
	*ip = a << 24 | b << 16 | c << 8 | d;
	if (prefix)
		*prefix = p;
	return 0;
}

static int parse_pct(const char *s, double *out)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end || v < 0 || v > 100)
		return -1;
	*out = v;
	return 0;
}

int gen_fail_parse(struct gen_fail_rule *r, const char *spec, char *err, size_t errlen)
{
	char buf[512], *colon, *save = NULL, *t;

	memset(r, 0, sizeof(*r));
	if (strlen(spec) >= sizeof(buf) || !(colon = strchr(spec, ':'))) {
		snprintf(err, errlen, "--fail %s: DOMAIN:KIND=PCT[,KIND=PCT]", spec);
		return -1;
	}
	snprintf(buf, sizeof(buf), "%s", spec);
	colon = buf + (colon - spec);
	*colon = '\0';
	if (!buf[0] || strlen(buf) >= sizeof(r->domain)) {
		snprintf(err, errlen, "--fail %s: bad domain", spec);
		return -1;
	}
	memcpy(r->domain, buf, strlen(buf) + 1);	/* fits: checked above */
	for (t = strtok_r(colon + 1, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(t, '=');
		double *dst = NULL;
		if (eq) {
			*eq = '\0';
			if (!strcmp(t, "rcpt-temp")) dst = &r->rcpt_temp;
			else if (!strcmp(t, "rcpt-perm")) dst = &r->rcpt_perm;
			else if (!strcmp(t, "data-temp")) dst = &r->data_temp;
			else if (!strcmp(t, "data-perm")) dst = &r->data_perm;
		}
		if (!dst || parse_pct(eq + 1, dst) < 0) {
			snprintf(err, errlen, "--fail %s: KIND is rcpt-temp, rcpt-perm, data-temp or "
				 "data-perm, = a percentage", spec);
			return -1;
		}
	}
	if (r->rcpt_temp + r->rcpt_perm > 100 || r->data_temp + r->data_perm > 100) {
		snprintf(err, errlen, "--fail %s: percentages of one stage add up over 100", spec);
		return -1;
	}
	return 0;
}

int gen_caps_parse(const char *spec, unsigned *bits, char *err, size_t errlen)
{
	static const struct { const char *name; unsigned bit; } caps[] = {
		{ "PIPELINING", GEN_CAP_PIPELINING }, { "SIZE", GEN_CAP_SIZE },
		{ "8BITMIME", GEN_CAP_8BITMIME }, { "ENHANCEDSTATUSCODES", GEN_CAP_ENHANCED },
		{ "CHUNKING", GEN_CAP_CHUNKING }, { "DSN", GEN_CAP_DSN },
		{ "SMTPUTF8", GEN_CAP_SMTPUTF8 }, { "STARTTLS", GEN_CAP_STARTTLS },
		{ "ETRN", GEN_CAP_ETRN },
	};
	char buf[256], *save = NULL, *t;

	*bits = 0;
	if (strlen(spec) >= sizeof(buf)) {
		snprintf(err, errlen, "--hide: too long");
		return -1;
	}
	snprintf(buf, sizeof(buf), "%s", spec);
	for (t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		unsigned i;
		for (i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
			if (!strcasecmp(t, caps[i].name))
				break;
		if (i == sizeof(caps) / sizeof(caps[0])) {
			snprintf(err, errlen, "--hide: unknown keyword %s", t);
			return -1;
		}
		*bits |= caps[i].bit;
	}
	return 0;
}

static int num(const char *opt, const char *s, double lo, double hi, double *out,
	       char *err, size_t errlen)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || v < lo || v > hi) {
		snprintf(err, errlen, "--%s %s: a number in [%g, %g]", opt, s, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

static int copy(char *dst, size_t cap, const char *opt, const char *s, char *err, size_t errlen)
{
	if (strlen(s) >= cap) {
		snprintf(err, errlen, "--%s: too long", opt);
		return -1;
	}
	snprintf(dst, cap, "%s", s);
	return 0;
}

enum {
	O_VDEV = 256, O_PCI, O_PREFIX, O_EAL, O_LCORES, O_CORES, O_BUSY, O_IP, O_GW,
	O_TCPCONNS, O_MSL, O_MBUFS, O_DURATION, O_SEED, O_REPORT, O_HISTDIR, O_QUIET,
	O_LINKWAIT, O_SERVER, O_CONC, O_RATE, O_COUNT, O_PERCONN, O_SIZE, O_RCPTS,
	O_DOMAINS, O_LOCALS, O_FROM, O_HELO, O_NOPIPE, O_NOCHUNK, O_STARTTLS, O_CDIG,
	O_PORT, O_HOSTNAME, O_FAIL, O_STORM, O_GREET, O_READRATE, O_HIDE, O_TLSDIR,
	O_SDIG, O_MAXSIZE, O_SINKSESS, O_PROFILE, O_LINERATE, O_CONNTMO, O_SINKTMO, O_HELP,
};

static const struct option longopts[] = {
	{ "vdev", 1, 0, O_VDEV }, { "pci", 1, 0, O_PCI }, { "file-prefix", 1, 0, O_PREFIX },
	{ "eal", 1, 0, O_EAL }, { "lcores", 1, 0, O_LCORES }, { "cores", 1, 0, O_CORES },
	{ "busy", 0, 0, O_BUSY }, { "ip", 1, 0, O_IP }, { "gw", 1, 0, O_GW },
	{ "tcp-conns", 1, 0, O_TCPCONNS }, { "msl", 1, 0, O_MSL }, { "mbufs", 1, 0, O_MBUFS },
	{ "duration", 1, 0, O_DURATION }, { "seed", 1, 0, O_SEED }, { "report", 1, 0, O_REPORT },
	{ "hist-dir", 1, 0, O_HISTDIR }, { "quiet", 0, 0, O_QUIET },
	{ "link-wait", 1, 0, O_LINKWAIT }, { "server", 1, 0, O_SERVER },
	{ "concurrency", 1, 0, O_CONC }, { "rate", 1, 0, O_RATE }, { "count", 1, 0, O_COUNT },
	{ "per-conn", 1, 0, O_PERCONN }, { "size", 1, 0, O_SIZE }, { "rcpts", 1, 0, O_RCPTS },
	{ "domains", 1, 0, O_DOMAINS }, { "locals", 1, 0, O_LOCALS }, { "from", 1, 0, O_FROM },
	{ "helo", 1, 0, O_HELO }, { "no-pipelining", 0, 0, O_NOPIPE },
	{ "no-chunking", 0, 0, O_NOCHUNK }, { "starttls", 0, 0, O_STARTTLS },
	{ "client-digests", 1, 0, O_CDIG }, { "port", 1, 0, O_PORT },
	{ "hostname", 1, 0, O_HOSTNAME }, { "fail", 1, 0, O_FAIL }, { "storm", 1, 0, O_STORM },
	{ "greet-delay", 1, 0, O_GREET }, { "read-rate", 1, 0, O_READRATE },
	{ "hide", 1, 0, O_HIDE }, { "tls-dir", 1, 0, O_TLSDIR },
	{ "sink-digests", 1, 0, O_SDIG }, { "max-size", 1, 0, O_MAXSIZE },
	{ "sink-sessions", 1, 0, O_SINKSESS }, { "profile", 1, 0, O_PROFILE },
	{ "line-rate", 1, 0, O_LINERATE }, { "connect-timeout", 1, 0, O_CONNTMO },
	{ "sink-timeout", 1, 0, O_SINKTMO },
	{ "help", 0, 0, O_HELP },
	{ 0, 0, 0, 0 },
};

static void defaults(struct gen_opts *o)
{
	char e[64];

	memset(o, 0, sizeof(*o));
	snprintf(o->file_prefix, sizeof(o->file_prefix), "sgen%d", (int)getpid());
	snprintf(o->eal_args, sizeof(o->eal_args), "--no-huge --no-pci --no-shconf -m 512");
	o->lcores = 1;
	o->ip = 0xc6120001;		/* 198.18.0.1/24 */
	o->netmask = 0xffffff00;
	o->msl_ms = 1000;
	o->mbufs = 65535;
	o->seed = 1;
	o->link_wait_s = 10;
	o->server_ip = 0xc6120002;	/* 198.18.0.2:25 */
	o->server_port = 25;
	o->concurrency = 16;
	o->connect_timeout_s = 10;
	o->per_conn = 1;
	gen_size_parse(&o->size, "10k", 0, e, sizeof(e));
	o->rcpts = 1;
	gen_wlist_parse(&o->domains, "sink.test", e, sizeof(e));
	gen_wlist_parse(&o->locals, "user", e, sizeof(e));
	snprintf(o->from, sizeof(o->from), "gen@sluice-gen.test");
	snprintf(o->helo, sizeof(o->helo), "sluice-gen.test");
	o->pipelining = o->chunking = true;
	o->sink_port = 25;
	snprintf(o->hostname, sizeof(o->hostname), "sink.sluice-gen.test");
	o->max_size = 64ull * 1024 * 1024;
	o->sink_sessions = 1024;
	o->line_rate = 1000000;
}

static int parse_modes(struct gen_opts *o, const char *s, char *err, size_t errlen)
{
	char buf[64], *save = NULL, *t;

	if (strlen(s) >= sizeof(buf))
		goto bad;
	snprintf(buf, sizeof(buf), "%s", s);
	for (t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (!strcmp(t, "client"))
			o->modes |= GEN_MODE_CLIENT;
		else if (!strcmp(t, "sink"))
			o->modes |= GEN_MODE_SINK;
		else if (!strcmp(t, "flood"))
			o->modes |= GEN_MODE_FLOOD;
		else
			goto bad;
	}
	if (!o->modes || ((o->modes & GEN_MODE_FLOOD) && o->modes != GEN_MODE_FLOOD))
		goto bad;
	return 0;
bad:
	snprintf(err, errlen, "MODE is client, sink, flood or client,sink (not \"%s\")", s);
	return -1;
}

int gen_opts_parse(struct gen_opts *o, int argc, char **argv, char *err, size_t errlen)
{
	int c;
	double v;
	unsigned prefix;

	defaults(o);
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		const char *a = optarg;
		switch (c) {
		case 'h':
		case O_HELP:
			return 1;
		case O_VDEV: if (copy(o->vdev, sizeof(o->vdev), "vdev", a, err, errlen)) return -1; break;
		case O_PCI: if (copy(o->pci, sizeof(o->pci), "pci", a, err, errlen)) return -1; break;
		case O_PREFIX: if (copy(o->file_prefix, sizeof(o->file_prefix), "file-prefix", a, err, errlen)) return -1; break;
		case O_EAL: if (copy(o->eal_args, sizeof(o->eal_args), "eal", a, err, errlen)) return -1; break;
		case O_CORES: if (copy(o->cores, sizeof(o->cores), "cores", a, err, errlen)) return -1; break;
		case O_LCORES:
			if (num("lcores", a, 1, 16, &v, err, errlen)) return -1;
			o->lcores = (unsigned)v;
			break;
		case O_BUSY: o->busy = true; break;
		case O_IP:
			if (gen_parse_ipv4(a, &o->ip, &prefix) < 0 || prefix == 0) {
				snprintf(err, errlen, "--ip %s: a.b.c.d/nn", a);
				return -1;
			}
			o->netmask = prefix == 32 ? 0xffffffffu : ~(0xffffffffu >> prefix);
			if (!strchr(a, '/'))
				o->netmask = 0xffffff00;
			break;
		case O_GW:
			if (gen_parse_ipv4(a, &o->gateway, NULL) < 0) {
				snprintf(err, errlen, "--gw %s: a.b.c.d", a);
				return -1;
			}
			break;
		case O_TCPCONNS: if (num("tcp-conns", a, 16, 1 << 20, &v, err, errlen)) return -1; o->tcp_conns = (unsigned)v; break;
		case O_MSL: if (num("msl", a, 1, 600000, &v, err, errlen)) return -1; o->msl_ms = (uint64_t)v; break;
		case O_MBUFS: if (num("mbufs", a, 4096, 1 << 22, &v, err, errlen)) return -1; o->mbufs = (unsigned)v; break;
		case O_DURATION: if (num("duration", a, 0, 86400, &o->duration_s, err, errlen)) return -1; break;
		case O_SEED: if (num("seed", a, 0, 1e15, &v, err, errlen)) return -1; o->seed = (uint64_t)v; break;
		case O_REPORT: if (copy(o->report_json, sizeof(o->report_json), "report", a, err, errlen)) return -1; break;
		case O_HISTDIR: if (copy(o->hist_dir, sizeof(o->hist_dir), "hist-dir", a, err, errlen)) return -1; break;
		case O_QUIET: o->quiet = true; break;
		case O_CONNTMO: if (num("connect-timeout", a, 0.1, 600, &o->connect_timeout_s, err, errlen)) return -1; break;
		case O_SINKTMO: if (num("sink-timeout", a, 1, 3600, &o->sink_timeout_s, err, errlen)) return -1; break;
		case O_LINKWAIT: if (num("link-wait", a, 0, 600, &o->link_wait_s, err, errlen)) return -1; break;
		case O_SERVER: {
			char h[64], *colon;
			unsigned long port = 25;
			if (copy(h, sizeof(h), "server", a, err, errlen)) return -1;
			if ((colon = strchr(h, ':'))) {
				char *end;
				*colon = '\0';
				port = strtoul(colon + 1, &end, 10);
				if (*end || port == 0 || port > 65535) {
					snprintf(err, errlen, "--server %s: bad port", a);
					return -1;
				}
			}
			if (gen_parse_ipv4(h, &o->server_ip, NULL) < 0) {
				snprintf(err, errlen, "--server %s: A[:PORT] (an IPv4 address)", a);
				return -1;
			}
			o->server_port = (uint16_t)port;
			break;
		}
		case O_CONC: if (num("concurrency", a, 1, 1 << 20, &v, err, errlen)) return -1; o->concurrency = (unsigned)v; break;
		case O_RATE: if (num("rate", a, 0, 1e8, &o->rate, err, errlen)) return -1; break;
		case O_COUNT: if (num("count", a, 0, 1e12, &v, err, errlen)) return -1; o->count = (uint64_t)v; break;
		case O_PERCONN: if (num("per-conn", a, 0, 1e9, &v, err, errlen)) return -1; o->per_conn = (unsigned)v; break;
		case O_SIZE: if (gen_size_parse(&o->size, a, 0, err, errlen) < 0) return -1; break;
		case O_RCPTS: if (num("rcpts", a, 1, 1000, &v, err, errlen)) return -1; o->rcpts = (unsigned)v; break;
		case O_DOMAINS: if (gen_wlist_parse(&o->domains, a, err, errlen) < 0) return -1; break;
		case O_LOCALS: if (gen_wlist_parse(&o->locals, a, err, errlen) < 0) return -1; break;
		case O_FROM: if (copy(o->from, sizeof(o->from), "from", a, err, errlen)) return -1; break;
		case O_HELO: if (copy(o->helo, sizeof(o->helo), "helo", a, err, errlen)) return -1; break;
		case O_NOPIPE: o->pipelining = false; break;
		case O_NOCHUNK: o->chunking = false; break;
		case O_STARTTLS: o->starttls = true; break;
		case O_CDIG: if (copy(o->client_digests, sizeof(o->client_digests), "client-digests", a, err, errlen)) return -1; break;
		case O_PORT: if (num("port", a, 1, 65535, &v, err, errlen)) return -1; o->sink_port = (uint16_t)v; break;
		case O_HOSTNAME: if (copy(o->hostname, sizeof(o->hostname), "hostname", a, err, errlen)) return -1; break;
		case O_FAIL:
			if (o->nfail == GEN_FAIL_RULES) {
				snprintf(err, errlen, "--fail: at most %d", GEN_FAIL_RULES);
				return -1;
			}
			if (gen_fail_parse(&o->fail[o->nfail], a, err, errlen) < 0) return -1;
			o->nfail++;
			break;
		case O_STORM: {
			char *end;
			o->storm_every_s = strtod(a, &end);
			if (*end != ':' || o->storm_every_s <= 0 ||
			    (o->storm_len_s = strtod(end + 1, &end), *end) || o->storm_len_s <= 0 ||
			    o->storm_len_s >= o->storm_every_s) {
				snprintf(err, errlen, "--storm %s: EVERY:LEN seconds, LEN < EVERY", a);
				return -1;
			}
			break;
		}
		case O_GREET: if (num("greet-delay", a, 0, 600000, &v, err, errlen)) return -1; o->greet_delay_ms = (uint64_t)v; break;
		case O_READRATE: if (num("read-rate", a, 0, 1e10, &v, err, errlen)) return -1; o->read_rate = (uint64_t)v; break;
		case O_HIDE: if (gen_caps_parse(a, &o->hide_caps, err, errlen) < 0) return -1; break;
		case O_TLSDIR: if (copy(o->tls_dir, sizeof(o->tls_dir), "tls-dir", a, err, errlen)) return -1; break;
		case O_SDIG: if (copy(o->sink_digests, sizeof(o->sink_digests), "sink-digests", a, err, errlen)) return -1; break;
		case O_MAXSIZE:
			if (gen_parse_bytes(a, &o->max_size) < 0) {
				snprintf(err, errlen, "--max-size %s: bytes (k, m)", a);
				return -1;
			}
			break;
		case O_SINKSESS: if (num("sink-sessions", a, 1, 1 << 16, &v, err, errlen)) return -1; o->sink_sessions = (unsigned)v; break;
		case O_PROFILE: if (copy(o->profile, sizeof(o->profile), "profile", a, err, errlen)) return -1; break;
		case O_LINERATE: if (num("line-rate", a, 1, 1e9, &v, err, errlen)) return -1; o->line_rate = (uint64_t)v; break;
		default:
			snprintf(err, errlen, "unknown option or missing value: %s",
				 argv[optind - 1] ? argv[optind - 1] : "?");
			return -1;
		}
	}
	if (optind != argc - 1) {
		snprintf(err, errlen, "give one MODE (client, sink, flood or client,sink) after the options");
		if (optind < argc && argc - optind == 1)
			return -1;
		return -1;
	}
	if (parse_modes(o, argv[optind], err, errlen) < 0)
		return -1;
	if (!o->vdev[0] && !o->pci[0]) {
		snprintf(err, errlen, "--vdev or --pci is required");
		return -1;
	}
	if ((o->modes & GEN_MODE_FLOOD) && !o->profile[0]) {
		snprintf(err, errlen, "flood needs --profile FILE.pkt");
		return -1;
	}
	if ((o->modes & GEN_MODE_CLIENT) && o->concurrency < o->lcores) {
		snprintf(err, errlen, "--concurrency %u: at least one session per lcore (%u)",
			 o->concurrency, o->lcores);
		return -1;
	}
	if ((o->modes & GEN_MODE_CLIENT) && o->rcpts > 1 && o->rcpts > 1000) {
		snprintf(err, errlen, "--rcpts: at most 1000");
		return -1;
	}
	return 0;
}
