/*
 * test_gen.c - sluice-gen's pure parts: the log-linear histogram's error
 * bound and percentiles, size distributions and weighted lists, generated
 * messages (exact sizes, CRLF lines, digests that the sink's streaming
 * digest reproduces whatever a relay prepends and however the body is
 * split), the .pkt subset (every shipped profile parses; frames carry
 * valid checksums unless a mask covers them), the command line, and the
 * server engine's two hooks the sink uses (550 at RCPT, 554 at the end of
 * data).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "bench/gen/gen_dist.h"
#include "bench/gen/gen_hist.h"
#include "bench/gen/gen_msg.h"
#include "bench/gen/gen_opts.h"
#include "bench/gen/gen_pkt.h"
#include "dataplane/smtp/smtp_policy.h"
#include "dataplane/smtp/smtp_server.h"

/* ---- histogram ------------------------------------------------------------------ */

Test(hist, buckets_tile_the_range_and_bound_the_error)
{
	uint64_t prev_hi = 0, lo, hi;

	for (unsigned i = 0; i < GEN_HIST_BUCKETS; i++) {
		gen_hist_bucket_range(i, &lo, &hi);
		if (i > 0)
			cr_assert_eq(lo, prev_hi + 1, "bucket %u starts at %llu after %llu", i,
				     (unsigned long long)lo, (unsigned long long)prev_hi);
		cr_assert_geq(hi, lo);
		/* width at most 1/16 of the smallest value in it */
		if (lo >= GEN_HIST_SUB)
			cr_assert_leq((hi - lo + 1) * GEN_HIST_SUB, lo, "bucket %u too wide", i);
		prev_hi = hi;
	}
	cr_assert_eq(prev_hi, UINT64_MAX);
	for (uint64_t v = 0; v < 100000; v += 7) {
		gen_hist_bucket_range(gen_hist_bucket(v), &lo, &hi);
		cr_assert(v >= lo && v <= hi, "%llu not in its bucket", (unsigned long long)v);
	}
	gen_hist_bucket_range(gen_hist_bucket(UINT64_MAX), &lo, &hi);
	cr_assert_eq(hi, UINT64_MAX);
}

Test(hist, percentiles_within_the_bucket_error)
{
	static struct gen_hist h, a, b;

	gen_hist_init(&h);
	cr_assert_eq(gen_hist_percentile(&h, 99), 0, "empty: 0");
	for (uint64_t v = 1; v <= 100000; v++)
		gen_hist_record(&h, v * 1000);	/* 1 us .. 100 ms */
	struct { double p; double want; } c[] = { { 50, 50e6 }, { 90, 90e6 }, { 99, 99e6 },
						  { 99.9, 99.9e6 } };
	for (unsigned i = 0; i < 4; i++) {
		double got = (double)gen_hist_percentile(&h, c[i].p);
		cr_assert(got >= c[i].want && got <= c[i].want * (1 + 1.0 / GEN_HIST_SUB),
			  "p%g = %.0f, want %.0f (+6.25%%)", c[i].p, got, c[i].want);
	}
	cr_assert_eq(gen_hist_percentile(&h, 100), 100000 * 1000ull);
	cr_assert_eq(h.min, 1000);
	/* merging two halves is the whole */
	gen_hist_init(&a);
	gen_hist_init(&b);
	for (uint64_t v = 1; v <= 100000; v++)
		gen_hist_record(v % 2 ? &a : &b, v * 1000);
	gen_hist_merge(&a, &b);
	cr_assert_eq(memcmp(a.b, h.b, sizeof(h.b)), 0);
	cr_assert_eq(a.count, h.count);
	cr_assert_eq(a.max, h.max);
}

/* ---- distributions ------------------------------------------------------------ */

Test(dist, size_specs)
{
	struct gen_size_dist d;
	struct gen_rng r;
	char err[128];
	unsigned small = 0;

	gen_rng_seed(&r, 42);
	cr_assert_eq(gen_size_parse(&d, "10k", 0, err, sizeof(err)), 0);
	cr_assert_eq(gen_size_sample(&d, &r), 10240);
	cr_assert_eq(gen_size_parse(&d, "1k-4k", 0, err, sizeof(err)), 0);
	for (int i = 0; i < 10000; i++) {
		uint64_t s = gen_size_sample(&d, &r);
		cr_assert(s >= 1024 && s <= 4096);
	}
	cr_assert_eq(gen_size_parse(&d, "1k:90,1m:10", 0, err, sizeof(err)), 0);
	for (int i = 0; i < 10000; i++) {
		uint64_t s = gen_size_sample(&d, &r);
		cr_assert(s == 1024 || s == 1048576);
		small += s == 1024;
	}
	cr_assert(small > 8700 && small < 9300, "1k chosen %u of 10000 for weight 90%%", small);
	cr_assert_eq(gen_size_max(&d), 1048576);
	cr_assert_eq(gen_size_parse(&d, "exp:10k", 0, err, sizeof(err)), 0);
	{
		double sum = 0;
		for (int i = 0; i < 20000; i++)
			sum += (double)gen_size_sample(&d, &r);
		cr_assert(fabs(sum / 20000 - 10240) < 10240 * 0.05, "mean %.0f", sum / 20000);
	}
	cr_assert_eq(gen_size_parse(&d, "4k-1k", 0, err, sizeof(err)), -1);
	cr_assert_eq(gen_size_parse(&d, "10x", 0, err, sizeof(err)), -1);
	cr_assert_eq(gen_size_parse(&d, "1k:0", 0, err, sizeof(err)), -1);
	cr_assert_eq(gen_size_parse(&d, "100", 512, err, sizeof(err)), -1, "below the minimum");
	cr_assert_eq(gen_size_parse(&d, "", 0, err, sizeof(err)), -1);
}

Test(dist, weighted_lists)
{
	struct gen_wlist w;
	struct gen_rng r;
	char err[128];
	unsigned a = 0;

	gen_rng_seed(&r, 7);
	cr_assert_eq(gen_wlist_parse(&w, "a.test:3,b.test,c.test:0", err, sizeof(err)), 0);
	cr_assert_eq(w.n, 2, "weight 0 is never chosen");
	for (int i = 0; i < 8000; i++) {
		const char *n = gen_wlist_pick(&w, &r);
		cr_assert(!strcmp(n, "a.test") || !strcmp(n, "b.test"));
		a += !strcmp(n, "a.test");
	}
	cr_assert(a > 5700 && a < 6300, "a.test %u of 8000 for weight 3:1", a);
	cr_assert_eq(gen_wlist_parse(&w, "x:y", err, sizeof(err)), -1);
	cr_assert_eq(gen_wlist_parse(&w, "a@b", err, sizeof(err)), -1);
	cr_assert_eq(gen_wlist_parse(&w, "a:0", err, sizeof(err)), -1);
}

/* ---- messages and digests ---------------------------------------------------- */

static char tpl[GEN_TEMPLATE_LEN];

static size_t render(struct gen_msg *m, char *out, size_t cap)
{
	struct gen_msg it = *m;
	const char *p;
	size_t n, k = 0;

	while ((n = gen_msg_next(&it, tpl, &p)) > 0) {
		cr_assert_leq(k + n, cap);
		memcpy(out + k, p, n);
		k += n;
		gen_msg_consume(&it, n);
	}
	return k;
}

Test(msg, exact_sizes_crlf_lines_and_digest)
{
	static char buf[300000];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	struct gen_msg m;
	uint8_t d[GEN_SHA_LEN];
	unsigned dots = 0;

	gen_template_init(tpl, 1);
	uint64_t sizes[] = { 0, 300, 301, 302, 303, 379, 380, 381, 10240, 65536, 200000 };
	for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		cr_assert_eq(gen_msg_build(&m, tpl, ctx, "0-1", "run", "Mon, 30 Nov 2026 00:00:00 +0000",
					   "a@b.test", "c@d.test", NULL, sizes[i], 17 * i), 0);
		size_t n = render(&m, buf, sizeof(buf));
		cr_assert_eq(n, m.size);
		if (sizes[i] > m.hdr_len + 1)
			cr_assert_eq(n, sizes[i], "size %llu made %zu", (unsigned long long)sizes[i], n);
		cr_assert_eq(memcmp(buf, GEN_MARKER, GEN_MARKER_LEN), 0);
		cr_assert(n >= 2 && buf[n - 2] == '\r' && buf[n - 1] == '\n', "ends with CRLF");
		/* only CRLF ends a line, no line over 1000 octets */
		size_t ll = 0;
		for (size_t k = 0; k < n; k++) {
			if (buf[k] == '\n') {
				cr_assert(k > 0 && buf[k - 1] == '\r', "bare LF at %zu", k);
				cr_assert_leq(ll, 1000);
				ll = 0;
				if (k + 1 < n && buf[k + 1] == '.')
					dots++;
				continue;
			}
			if (buf[k] == '\r')
				cr_assert(k + 1 < n && buf[k + 1] == '\n', "bare CR at %zu", k);
			ll++;
		}
		gen_sha256(buf, n, d);
		cr_assert_eq(memcmp(d, m.sha, GEN_SHA_LEN), 0, "digest of size %llu",
			     (unsigned long long)sizes[i]);
	}
	cr_assert_gt(dots, 0, "some lines start with a dot");
	EVP_MD_CTX_free(ctx);
}

/* No context: the same message octet for octet, no digest (all zero). */
Test(msg, no_context_same_message_no_digest)
{
	static char a[20000], b[20000];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	struct gen_msg m, m0;
	static const uint8_t zero[GEN_SHA_LEN];

	gen_template_init(tpl, 5);
	cr_assert_eq(gen_msg_build(&m, tpl, ctx, "0-9", "run", "date", "a@b.test", "c@d.test",
				   NULL, 10240, 3), 0);
	cr_assert_neq(memcmp(m.sha, zero, GEN_SHA_LEN), 0, "a digest with a context");
	cr_assert_eq(gen_msg_build(&m0, tpl, NULL, "0-9", "run", "date", "a@b.test", "c@d.test",
				   NULL, 10240, 3), 0);
	cr_assert_eq(memcmp(m0.sha, zero, GEN_SHA_LEN), 0, "no digest without one");
	cr_assert_eq(m0.size, 10240);
	cr_assert_eq(render(&m, a, sizeof(a)), render(&m0, b, sizeof(b)));
	cr_assert_eq(memcmp(a, b, m.size), 0, "the same octets");
	EVP_MD_CTX_free(ctx);
}

Test(msg, sink_digest_from_the_marker_any_split)
{
	static char body[40000];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new(), *sctx = EVP_MD_CTX_new();
	struct gen_msg m;
	struct gen_digest dg;
	struct gen_rng r;
	uint8_t d[GEN_SHA_LEN];
	bool marked;
	const char *relay = "Received: from sluice-gen.test (unknown [198.18.0.1])\r\n"
			    "\tby sluice.test with ESMTP id 0123456789ABC\r\n"
			    "\tfor <c@d.test>; Mon, 30 Nov 2026 00:00:00 +0000\r\n"
			    "X-Other: X-Sluice-Gen: not at a line start\r\n";
	size_t rl = strlen(relay), n;

	gen_template_init(tpl, 3);
	gen_rng_seed(&r, 9);
	gen_msg_build(&m, tpl, ctx, "1-7", "run", "date", "a@b.test", "c@d.test", NULL, 30000, 5);
	memcpy(body, relay, rl);
	n = rl + render(&m, body + rl, sizeof(body) - rl);
	for (int round = 0; round < 200; round++) {
		size_t off = 0;
		gen_digest_begin(&dg, sctx);
		while (off < n) {
			size_t k = 1 + gen_rng_below(&r, round % 2 ? 3 : 4000);
			if (k > n - off)
				k = n - off;
			gen_digest_feed(&dg, body + off, k);
			off += k;
		}
		gen_digest_end(&dg, d, &marked);
		cr_assert(marked);
		cr_assert_eq(memcmp(d, m.sha, GEN_SHA_LEN), 0, "round %d", round);
	}
	/* one octet changed in the body: another digest */
	body[n - 100] ^= 1;
	gen_digest_begin(&dg, sctx);
	gen_digest_feed(&dg, body, n);
	gen_digest_end(&dg, d, &marked);
	cr_assert_neq(memcmp(d, m.sha, GEN_SHA_LEN), 0);
	/* no marker above the body: counted as unmarked */
	gen_digest_begin(&dg, sctx);
	gen_digest_feed(&dg, "Subject: x\r\n\r\nX-Sluice-Gen: in the body\r\n", 41);
	gen_digest_end(&dg, d, &marked);
	cr_assert(!marked);
	EVP_MD_CTX_free(ctx);
	EVP_MD_CTX_free(sctx);
}

/* ---- .pkt profiles ------------------------------------------------------------- */

static struct gen_pkt_prog prog;

Test(pkt, shipped_profiles_parse)
{
	const char *names[] = { "syn_flood", "arp_storm", "garbage_mix", "size_sweep" };
	char path[512], err[256];

	for (unsigned i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/bench/pktgen/%s.pkt", SOURCE_ROOT, names[i]);
		cr_assert_eq(gen_pkt_load(&prog, path, err, sizeof(err)), 0, "%s: %s", names[i], err);
		cr_assert_gt(prog.n, 5);
		bool start = false;
		for (unsigned k = 0; k < prog.n; k++)
			start |= prog.cmd[k].op == GPO_START;
		cr_assert(start, "%s starts the port", names[i]);
	}
}

Test(pkt, errors_name_their_line)
{
	char err[256];

	cr_assert_eq(gen_pkt_parse(&prog, "set 0 rate 10\nfoo 0\n", err, sizeof(err)), -1);
	cr_assert(strstr(err, "line 2"), "%s", err);
	cr_assert_eq(gen_pkt_parse(&prog, "set 0 rnd 0 26 XX?X\n", err, sizeof(err)), -1);
	cr_assert_eq(gen_pkt_parse(&prog, "set 0 rate 101\n", err, sizeof(err)), -1);
	cr_assert_eq(gen_pkt_parse(&prog, "set 0 size 20\n", err, sizeof(err)), -1);
	cr_assert_eq(gen_pkt_parse(&prog, "range 0 src ip top 1.2.3.4\n", err, sizeof(err)), -1);
	cr_assert_eq(gen_pkt_parse(&prog, "start 0-x\n", err, sizeof(err)), -1);
	cr_assert_eq(gen_pkt_parse(&prog, "# only a comment\n\npage range\nsleep 1\n", err,
				   sizeof(err)), 0);
	cr_assert_eq(prog.n, 1);
	cr_assert_eq(prog.cmd[0].op, GPO_DELAY);
	cr_assert_eq(prog.cmd[0].num, 1000, "sleep is seconds");
	/* commands for other ports are kept but do not touch port 0 */
	cr_assert_eq(gen_pkt_parse(&prog, "set 1 rate 5\n", err, sizeof(err)), 0);
	cr_assert(!prog.cmd[0].port0);
}

static uint16_t sum16(const uint8_t *p, size_t n, uint32_t sum)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* 0xffff when the TCP/UDP checksum (pseudo-header included) is right */
static uint16_t l4_check(const uint8_t *f, size_t len)
{
	uint8_t ph[12];
	size_t l4len = len - 34;

	memcpy(ph, f + 26, 8);
	ph[8] = 0;
	ph[9] = f[23];
	ph[10] = (uint8_t)(l4len >> 8);
	ph[11] = (uint8_t)l4len;
	return sum16(f + 34, l4len, sum16(ph, 12, 0));
}

static void run_cmds(struct gen_pkt_port *pp, const char *text)
{
	char err[256];

	cr_assert_eq(gen_pkt_parse(&prog, text, err, sizeof(err)), 0, "%s", err);
	for (unsigned i = 0; i < prog.n; i++)
		gen_pkt_apply(pp, &prog.cmd[i]);
}

Test(pkt, syn_frames_valid_checksums_random_sources)
{
	struct gen_pkt_port pp;
	struct gen_rng r;
	uint8_t f[GEN_PKT_MAX_SIZE];
	uint32_t first_src = 0;
	bool varied = false;

	gen_rng_seed(&r, 5);
	gen_pkt_port_default(&pp);
	run_cmds(&pp, "set 0 proto tcp\nset 0 size 64\nset 0 dst ip 198.18.0.2\nset 0 dport 25\n"
		      "set 0 rnd 0 46 ........00000010................\n"
		      "set 0 rnd 1 26 11000110000100100000000XXXXXXXXX\nenable 0 random\nstart 0\n");
	cr_assert(pp.sending);
	for (int i = 0; i < 100; i++) {
		size_t n = gen_pkt_frame(&pp, f, sizeof(f), &r);
		uint32_t src = (uint32_t)f[26] << 24 | f[27] << 16 | f[28] << 8 | f[29];
		cr_assert_eq(n, 60, "64 with the FCS");
		cr_assert_eq(f[12], 0x08);
		cr_assert_eq(f[23], 6);
		cr_assert_eq(f[47], 0x02, "SYN only");
		cr_assert_eq(sum16(f + 14, 20, 0), 0xffff, "IPv4 checksum");
		cr_assert_eq(l4_check(f, n), 0xffff, "TCP checksum");
		cr_assert_eq(src >> 9, 0xc6120000u >> 9, "198.18.0.0/23");
		cr_assert_eq(f[36], 0);
		cr_assert_eq(f[37], 25);
		if (i == 0)
			first_src = src;
		varied |= src != first_src;
	}
	cr_assert(varied, "random sources");
}

Test(pkt, a_mask_over_a_checksum_keeps_it_wrong)
{
	struct gen_pkt_port pp;
	struct gen_rng r;
	uint8_t f[GEN_PKT_MAX_SIZE];
	unsigned bad = 0;

	gen_rng_seed(&r, 6);
	gen_pkt_port_default(&pp);
	run_cmds(&pp, "set 0 proto udp\nset 0 size 128\nset 0 rnd 0 24 XXXXXXXXXXXXXXXX................\n"
		      "enable 0 random\nstart 0\n");
	for (int i = 0; i < 100; i++) {
		size_t n = gen_pkt_frame(&pp, f, sizeof(f), &r);
		bad += sum16(f + 14, 20, 0) != 0xffff;
		cr_assert_eq(l4_check(f, n), 0xffff, "UDP checksum still right");
	}
	cr_assert_gt(bad, 95, "IPv4 checksums left random: %u of 100 bad", bad);
}

Test(pkt, ranges_step_and_wrap)
{
	struct gen_pkt_port pp;
	struct gen_rng r;
	uint8_t f[GEN_PKT_MAX_SIZE];
	size_t n;

	gen_rng_seed(&r, 1);
	gen_pkt_port_default(&pp);
	run_cmds(&pp, "range 0 size start 64\nrange 0 size min 64\nrange 0 size max 66\n"
		      "range 0 size inc 1\nrange 0 src port start 10\nrange 0 src port min 10\n"
		      "range 0 src port max 11\nrange 0 src port inc 1\nrange 0 proto udp\n"
		      "enable 0 range\n");
	unsigned want_size[] = { 60, 61, 62, 60, 61 }, want_port[] = { 10, 11, 10, 11, 10 };
	for (int i = 0; i < 5; i++) {
		n = gen_pkt_frame(&pp, f, sizeof(f), &r);
		cr_assert_eq(n, want_size[i]);
		cr_assert_eq((unsigned)(f[34] << 8 | f[35]), want_port[i]);
		cr_assert_eq(l4_check(f, n), 0xffff);
	}
}

Test(pkt, arp_requests)
{
	struct gen_pkt_port pp;
	struct gen_rng r;
	uint8_t f[GEN_PKT_MAX_SIZE];

	gen_rng_seed(&r, 1);
	gen_pkt_port_default(&pp);
	run_cmds(&pp, "set 0 type arp\nset 0 dst mac ff:ff:ff:ff:ff:ff\nset 0 src ip 198.18.0.9/24\n"
		      "set 0 dst ip 198.18.0.2\nstart 0\n");
	cr_assert_eq(gen_pkt_frame(&pp, f, sizeof(f), &r), 60);
	cr_assert_eq(f[0], 0xff);
	cr_assert_eq(f[12], 0x08);
	cr_assert_eq(f[13], 0x06);
	cr_assert_eq(f[21], 1, "request");
	cr_assert_eq(f[31], 9);
	cr_assert_eq(f[41], 2);
}

/* ---- the command line ------------------------------------------------------------- */

Test(opts, a_client_and_its_errors)
{
	static struct gen_opts o;
	char err[256];
	char *ok[] = { "sluice-gen", "--vdev", "net_memif0", "--server", "198.18.0.2:2525",
		       "--rate", "500", "--size", "1k-2k", "--domains", "a.test:2,b.test",
		       "--per-conn", "0", "client,sink", "--fail", "b.test:rcpt-temp=10,data-perm=5",
		       "--hide", "PIPELINING,dsn", NULL };
	cr_assert_eq(gen_opts_parse(&o, 18, ok, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(o.modes, GEN_MODE_CLIENT | GEN_MODE_SINK);
	cr_assert_eq(o.server_ip, 0xc6120002);
	cr_assert_eq(o.server_port, 2525);
	cr_assert_eq(o.rate, 500);
	cr_assert_eq(o.per_conn, 0);
	cr_assert_eq(o.domains.n, 2);
	cr_assert_eq(o.nfail, 1);
	cr_assert_eq(o.fail[0].rcpt_temp, 10);
	cr_assert_eq(o.fail[0].data_perm, 5);
	cr_assert_eq(o.hide_caps, GEN_CAP_PIPELINING | GEN_CAP_DSN);
	cr_assert_eq(o.connect_timeout_s, 10, "the default connect timeout");
	char *tmo[] = { "g", "--vdev", "x", "--connect-timeout", "1.5", "client", NULL };
	cr_assert_eq(gen_opts_parse(&o, 6, tmo, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(o.connect_timeout_s, 1.5);
	char *tmo0[] = { "g", "--vdev", "x", "--connect-timeout", "0", "client", NULL };
	cr_assert_eq(gen_opts_parse(&o, 6, tmo0, err, sizeof(err)), -1, "no zero timeout");

	char *nomode[] = { "g", "--vdev", "x", NULL };
	cr_assert_eq(gen_opts_parse(&o, 3, nomode, err, sizeof(err)), -1);
	char *badmode[] = { "g", "--vdev", "x", "flood,client", NULL };
	cr_assert_eq(gen_opts_parse(&o, 4, badmode, err, sizeof(err)), -1);
	char *noprofile[] = { "g", "--vdev", "x", "flood", NULL };
	cr_assert_eq(gen_opts_parse(&o, 4, noprofile, err, sizeof(err)), -1);
	cr_assert(strstr(err, "--profile"), "%s", err);
	char *novdev[] = { "g", "client", NULL };
	cr_assert_eq(gen_opts_parse(&o, 2, novdev, err, sizeof(err)), -1);
	char *badip[] = { "g", "--vdev", "x", "--server", "300.1.1.1", "client", NULL };
	cr_assert_eq(gen_opts_parse(&o, 6, badip, err, sizeof(err)), -1);
	char *unknown[] = { "g", "--vdev", "x", "--bogus", "client", NULL };
	cr_assert_eq(gen_opts_parse(&o, 5, unknown, err, sizeof(err)), -1);
	char *badfail[] = { "g", "--vdev", "x", "--fail", "d:rcpt-temp=70,rcpt-perm=40", "sink", NULL };
	cr_assert_eq(gen_opts_parse(&o, 6, badfail, err, sizeof(err)), -1, "over 100%%");
	char *help[] = { "g", "--help", NULL };
	cr_assert_eq(gen_opts_parse(&o, 2, help, err, sizeof(err)), 1);
}

/* ---- the server engine's hooks the sink uses -------------------------------------- */

static int refuse_perm(void *user, const struct smtp_rcpt_view *v)
{
	(void)user;
	return strstr(v->addr, "permfail") ? SMTP_RCPT_REFUSE : 0;
}

static void feed(struct smtp_session *s, const char *in, char *out, size_t cap)
{
	size_t n = strlen(in), k = 0;

	while (k < n) {
		size_t took = smtp_session_input(s, in + k, n - k);
		k += took;
		if (took == 0)
			break;
	}
	size_t o = strlen(out);
	o += smtp_session_read_output(s, out + o, cap - o - 1);
	out[o] = '\0';
}

Test(engine, rcpt_refused_for_good_and_message_rejected)
{
	static struct smtp_session s;
	static struct smtp_conf conf;
	static struct smtp_policy pol;
	struct smtp_client cl = { .ip = 0xc6120001 };
	struct smtp_session_cb cb = { .rcpt = refuse_perm };
	char out[4096] = "";

	smtp_conf_default(&conf);
	snprintf(conf.hostname, sizeof(conf.hostname), "sink.test");
	cr_assert_eq(smtp_policy_init(&pol, "198.18.0.0/24", NULL), 0);
	conf.policy = &pol;
	smtp_session_init(&s, &conf, NULL, &cl, &cb);
	feed(&s, "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<permfail-1@d.test>\r\n"
		 "RCPT TO:<ok@d.test>\r\nDATA\r\n", out, sizeof(out));
	cr_assert(strstr(out, "550 5.1.1 <permfail-1@d.test>: Recipient address rejected\r\n"), "%s", out);
	cr_assert(strstr(out, "354 "), "%s", out);
	out[0] = '\0';
	feed(&s, "hello\r\n.\r\n", out, sizeof(out));
	cr_assert_eq(smtp_session_event(&s), SMTP_EV_MESSAGE);
	cr_assert_eq(smtp_session_message(&s)->nrcpt, 1);
	cr_assert_eq(smtp_session_queued(&s, SMTP_QUEUED_REJECT, NULL), 0);
	out[0] = '\0';
	feed(&s, "", out, sizeof(out));
	cr_assert_str_eq(out, "554 5.7.0 Error: transaction failed\r\n");
}
