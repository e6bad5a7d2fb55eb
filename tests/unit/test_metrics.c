/*
 * test_metrics.c - the pure parts of the metrics exporter: the Prometheus
 * text exposition (control/prom.h: names, label escaping, HELP/TYPE, one
 * family's lines together, histograms), the log-linear histogram
 * (common/histo.h), the naming table (metrics_name) and the listen address.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/histo.h"
#include "control/metrics.h"
#include "control/prom.h"

static char *text_of(struct prom *p)
{
	size_t len;
	char *t = prom_text(p, &len);

	cr_assert_not_null(t);
	cr_assert_eq(strlen(t), len);
	return t;
}

Test(prom, help_type_and_samples)
{
	struct prom *p = prom_new();
	struct prom_label l = { "lcore", "1" };
	char *t;

	cr_assert_eq(prom_add_u64(p, "sluice_x_total", PROM_COUNTER, "Things done.", &l, 1, 42), 0);
	cr_assert_eq(prom_add_u64(p, "sluice_up", PROM_GAUGE, "Up.", NULL, 0, 1), 0);
	t = text_of(p);
	cr_assert_str_eq(t, "# HELP sluice_x_total Things done.\n"
			    "# TYPE sluice_x_total counter\n"
			    "sluice_x_total{lcore=\"1\"} 42\n"
			    "# HELP sluice_up Up.\n"
			    "# TYPE sluice_up gauge\n"
			    "sluice_up 1\n");
	free(t);
	prom_free(p);
}

/* Samples of one family added between others' come out together, under
 * one HELP and one TYPE, in the order added. */
Test(prom, family_lines_together)
{
	struct prom *p = prom_new();
	struct prom_label a = { "lcore", "1" }, b = { "lcore", "2" };
	char *t;

	prom_add_u64(p, "sluice_a_total", PROM_COUNTER, "A.", &a, 1, 1);
	prom_add_u64(p, "sluice_b_total", PROM_COUNTER, "B.", &a, 1, 2);
	prom_add_u64(p, "sluice_a_total", PROM_COUNTER, "A again (ignored).", &b, 1, 3);
	prom_add_u64(p, "sluice_b_total", PROM_COUNTER, "B.", &b, 1, 4);
	cr_assert_eq(prom_families(p), 2);
	cr_assert_eq(prom_samples(p), 4);
	t = text_of(p);
	cr_assert_str_eq(t, "# HELP sluice_a_total A.\n# TYPE sluice_a_total counter\n"
			    "sluice_a_total{lcore=\"1\"} 1\nsluice_a_total{lcore=\"2\"} 3\n"
			    "# HELP sluice_b_total B.\n# TYPE sluice_b_total counter\n"
			    "sluice_b_total{lcore=\"1\"} 2\nsluice_b_total{lcore=\"2\"} 4\n");
	free(t);
	prom_free(p);
}

Test(prom, escaping)
{
	struct prom *p = prom_new();
	struct prom_label l[2] = { { "destination", "a\"b\\c\nd" }, { "x", "é" } };
	char *t;

	cr_assert_eq(prom_add_u64(p, "m", PROM_GAUGE, "back\\slash\nnewline \"quotes\" stay",
				  l, 2, 7), 0);
	t = text_of(p);
	cr_assert_str_eq(t, "# HELP m back\\\\slash\\nnewline \"quotes\" stay\n"
			    "# TYPE m gauge\n"
			    "m{destination=\"a\\\"b\\\\c\\nd\",x=\"é\"} 7\n");
	free(t);
	prom_free(p);
}

Test(prom, names_refused)
{
	struct prom *p = prom_new();
	struct prom_label le = { "le", "1" }, dunder = { "__x", "1" }, bad = { "a-b", "1" };
	struct prom_label dup[2] = { { "a", "1" }, { "a", "2" } };
	struct prom_label five[5] = { { "a", "" }, { "b", "" }, { "c", "" }, { "d", "" },
				      { "e", "" } };

	cr_assert(prom_metric_name_ok("sluice:x_1"));
	cr_assert(!prom_metric_name_ok("1x"));
	cr_assert(!prom_metric_name_ok("a-b"));
	cr_assert(!prom_metric_name_ok(""));
	cr_assert(prom_label_name_ok("shard"));
	cr_assert(!prom_label_name_ok("a:b"));
	cr_assert_eq(prom_add_u64(p, "bad-name", PROM_COUNTER, "", NULL, 0, 1), -1);
	cr_assert_eq(prom_add_u64(p, "m", PROM_COUNTER, "", &le, 1, 1), -1);
	cr_assert_eq(prom_add_u64(p, "m", PROM_COUNTER, "", &dunder, 1, 1), -1);
	cr_assert_eq(prom_add_u64(p, "m", PROM_COUNTER, "", &bad, 1, 1), -1);
	cr_assert_eq(prom_add_u64(p, "m", PROM_COUNTER, "", dup, 2, 1), -1);
	cr_assert_eq(prom_add_u64(p, "m", PROM_COUNTER, "", five, 5, 1), -1);
	/* a family keeps its type */
	cr_assert_eq(prom_add_u64(p, "m", PROM_COUNTER, "", NULL, 0, 1), 0);
	cr_assert_eq(prom_add_u64(p, "m", PROM_GAUGE, "", NULL, 0, 1), -1);
	cr_assert_eq(prom_samples(p), 1);
	prom_free(p);
}

Test(prom, sanitize)
{
	char out[32];

	prom_sanitize("impair_rx", out, sizeof(out));
	cr_assert_str_eq(out, "impair_rx");
	prom_sanitize("a.b-c d", out, sizeof(out));
	cr_assert_str_eq(out, "a_b_c_d");
	prom_sanitize("9lives", out, sizeof(out));
	cr_assert_str_eq(out, "_9lives");
	cr_assert(prom_metric_name_ok(out));
}

Test(prom, f64_values)
{
	struct prom *p = prom_new();
	char *t;

	prom_add_f64(p, "g", PROM_GAUGE, "", NULL, 0, 0.25);
	prom_add_f64(p, "h", PROM_GAUGE, "", NULL, 0, 1.0 / 0.0);
	t = text_of(p);
	cr_assert(strstr(t, "\ng 0.25\n"));
	cr_assert(strstr(t, "\nh +Inf\n"));
	free(t);
	prom_free(p);
}

Test(prom, histogram)
{
	struct prom *p = prom_new();
	struct prom_label l = { "shard", "0" };
	double le[3] = { 0.001, 0.01, 0.1 };
	uint64_t c[3] = { 1, 3, 3 }, bad[3] = { 2, 1, 3 };
	char *t;

	cr_assert_eq(prom_add_histogram(p, "lat_seconds", "Latency.", &l, 1, le, c, 3, 4, 0.5), 0);
	/* counts must not fall, nor exceed the total */
	cr_assert_eq(prom_add_histogram(p, "lat_seconds", "", &l, 1, le, bad, 3, 4, 0.5), -1);
	cr_assert_eq(prom_add_histogram(p, "lat_seconds", "", &l, 1, le, c, 3, 2, 0.5), -1);
	/* a counter of the same name is another type */
	cr_assert_eq(prom_add_u64(p, "lat_seconds", PROM_COUNTER, "", NULL, 0, 1), -1);
	t = text_of(p);
	cr_assert_str_eq(t, "# HELP lat_seconds Latency.\n# TYPE lat_seconds histogram\n"
			    "lat_seconds_bucket{shard=\"0\",le=\"0.001\"} 1\n"
			    "lat_seconds_bucket{shard=\"0\",le=\"0.01\"} 3\n"
			    "lat_seconds_bucket{shard=\"0\",le=\"0.10000000000000001\"} 3\n"
			    "lat_seconds_bucket{shard=\"0\",le=\"+Inf\"} 4\n"
			    "lat_seconds_sum{shard=\"0\"} 0.5\n"
			    "lat_seconds_count{shard=\"0\"} 4\n");
	free(t);
	prom_free(p);
}

/* Thousands of families: each keeps its samples (the index grows). */
Test(prom, many_families)
{
	struct prom *p = prom_new();
	char name[32];

	for (int round = 0; round < 2; round++)
		for (int i = 0; i < 3000; i++) {
			snprintf(name, sizeof(name), "f%d", i);
			cr_assert_eq(prom_add_u64(p, name, PROM_GAUGE, "", NULL, 0, (uint64_t)i), 0);
		}
	cr_assert_eq(prom_families(p), 3000);
	cr_assert_eq(prom_samples(p), 6000);
	prom_free(p);
}

/* ---- histogram ---- */

Test(histo, buckets_cover_every_value_in_order)
{
	uint64_t probes[] = { 0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 1000, 1023, 1024, 123456789,
			      1ull << 40, (1ull << 63) + 5, UINT64_MAX };

	cr_assert_eq(HISTO_BUCKETS, 252);
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		uint64_t v = probes[i];
		unsigned b = histo_index(v);
		cr_assert_lt(b, HISTO_BUCKETS);
		cr_assert(histo_lower(b) <= v && v <= histo_upper(b), "%llu in bucket %u [%llu, %llu]",
			  (unsigned long long)v, b, (unsigned long long)histo_lower(b),
			  (unsigned long long)histo_upper(b));
	}
	/* contiguous, increasing, at most 25% wide above the linear part */
	for (unsigned b = 1; b < HISTO_BUCKETS; b++) {
		cr_assert_eq(histo_lower(b), histo_upper(b - 1) + 1);
		if (b >= 8)
			cr_assert_leq((double)(histo_upper(b) - histo_lower(b) + 1),
				      0.25 * (double)histo_lower(b) + 1);
	}
	/* every power of two less one ends a bucket: exact counts at them */
	for (unsigned k = 2; k < 64; k++)
		cr_assert_eq(histo_upper(histo_index((1ull << k) - 1)), (1ull << k) - 1);
}

Test(histo, counts)
{
	struct histo h = { 0 };

	for (uint64_t v = 1; v <= 1000; v++)
		histo_add(&h, v * 1000);	/* 1 us .. 1 ms */
	cr_assert_eq(h.count, 1000);
	cr_assert_eq(h.sum, 1000ull * 1001 / 2 * 1000);
	cr_assert_eq(histo_count_le(&h, (1ull << 20) - 1), 1000);	/* 1.05 ms */
	/* <= 2^19 - 1 ns = 524.287 us: values 1..524 us */
	cr_assert_eq(histo_count_le(&h, (1ull << 19) - 1), 524);
	cr_assert_eq(histo_count_le(&h, 999), 0);
}

/* ---- naming ---- */

Test(metrics, names_from_the_table)
{
	struct metrics_name n;

	metrics_name("smtpd", "queue_ok", &n);
	cr_assert_str_eq(n.family, "sluice_messages_received_total");
	cr_assert_eq(n.type, PROM_COUNTER);
	cr_assert_null(n.label);
	cr_assert_not_null(n.help);
	metrics_name("tcp", "seg_out", &n);
	cr_assert_str_eq(n.family, "sluice_tcp_segments_total");
	cr_assert_str_eq(n.label, "direction");
	cr_assert_str_eq(n.value, "out");
	cr_assert_not_null(n.help, "a family's later rows share its help");
	metrics_name("sched", "rcpt_expired", &n);
	cr_assert_str_eq(n.family, "sluice_delivery_recipients_total");
	cr_assert_str_eq(n.value, "expired");
	metrics_name("gauge", "tcp_conns", &n);
	cr_assert_str_eq(n.family, "sluice_tcp_connections");
	cr_assert_eq(n.type, PROM_GAUGE);
	metrics_name("ctl", "clients", &n);
	cr_assert_eq(n.type, PROM_GAUGE);
}

Test(metrics, default_names)
{
	struct metrics_name n;

	metrics_name("dns", "cache_hits", &n);
	cr_assert_str_eq(n.family, "sluice_dns_cache_hits_total");
	cr_assert_eq(n.type, PROM_COUNTER);
	cr_assert_null(n.help);
	metrics_name("impair_rx", "dropped", &n);
	cr_assert_str_eq(n.family, "sluice_impair_rx_dropped_total");
	metrics_name("odd.group", "x-y", &n);
	cr_assert_str_eq(n.family, "sluice_odd_group_x_y_total");
	cr_assert(prom_metric_name_ok(n.family));
}

Test(metrics, listen_parse)
{
	uint32_t a;
	uint16_t port;

	cr_assert_eq(metrics_listen_parse("127.0.0.1:9925", &a, &port), 0);
	cr_assert_eq(port, 9925);
	cr_assert_eq(a, htonl(0x7f000001));
	cr_assert_eq(metrics_listen_parse("127.0.0.1", &a, &port), -1);
	cr_assert_eq(metrics_listen_parse("127.0.0.1:0", &a, &port), -1);
	cr_assert_eq(metrics_listen_parse("127.0.0.1:65536", &a, &port), -1);
	cr_assert_eq(metrics_listen_parse("localhost:80", &a, &port), -1);
	cr_assert_eq(metrics_listen_parse(":80", &a, &port), -1);
	cr_assert_eq(metrics_listen_parse("1.2.3.4:-1", &a, &port), -1);
}
