/*
 * queue_dump.c - list every message of a stopped sluiced's spool, for the
 * integration suites.
 *
 *   queue-dump [-n SHARDS] [-s] [-b DIR] [-r FILE] [-c] SPOOL
 *
 * Opens SPOOL with queue_open (SHARDS must match the daemon's [queue] shards,
 * default 4, and the shard-N directories found in SPOOL; sluiced must not be
 * running), finds every message through the
 * per-domain summary and lists (so: messages with undone recipients, which is
 * every freshly queued one), and prints one line per message, sorted by ID:
 *
 *   ID SENDER NRCPT SIZE SHA256            (SENDER "<>" for the null sender)
 *
 * A message is stored in every shard its recipients touch: it is printed
 * once, NRCPT summed over its shards, and its bodies in the different shards
 * must be identical (else an error and exit 1).
 *
 *   -s      add a sixth column: the SHA-256 of the body without its first
 *           header field (the Received: field sluiced prepends, continuation
 *           lines included), i.e. of the message as the client sent it;
 *           "-" when the body does not start with a Received: field
 *   -b DIR  also write each body to DIR/ID.eml
 *   -r FILE also write every recipient to FILE, one line each, sorted by ID
 *           (then shard, then recipient order): "ID ADDR ORCPT NOTIFY", with
 *           ORCPT "-" when none and NOTIFY the queue_notify bits in decimal
 *   -a      add two last columns: the SASL mechanism and user name the
 *           message came with (SMTP AUTH), "- -" when none
 *   -c      print only the number of messages
 *
 * Exit 0 on success, 1 on any error (printed to stderr).
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/log.h"
#include "queue/queue.h"

static void usage(void)
{
	fprintf(stderr, "usage: queue-dump [-n SHARDS] [-s] [-a] [-b DIR] [-r FILE] [-c] SPOOL\n");
	exit(2);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void sha256_hex(const void *p, size_t n, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	if (EVP_Digest(p, n, md, &len, EVP_sha256(), NULL) != 1 || len != 32) {
		snprintf(out, 65, "error");
		return;
	}
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Length of the first header field (with its continuation lines and final
 * CRLF) when the body starts with "Received:", else 0. */
static size_t first_received_len(const char *b, size_t n)
{
	static const char name[] = "Received:";
	size_t i = 0;
	if (n < sizeof(name) - 1 || strncasecmp(b, name, sizeof(name) - 1) != 0)
		return 0;
	for (;;) {
		const char *lf = memchr(b + i, '\n', n - i);
		if (lf == NULL)
			return 0;
		i = (size_t)(lf - b) + 1;
		if (i >= n || (b[i] != ' ' && b[i] != '\t'))
			return i;	/* the next line does not continue the field */
	}
}

/* The spool's shard count as found on disk (shard-0 .. shard-K), or -1.
 * queue_open would create missing shards: check before opening. */
static int spool_shards(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int max = -1;
	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		unsigned k;
		char tail;
		if (sscanf(e->d_name, "shard-%u%c", &k, &tail) == 1 && (int)k > max)
			max = (int)k;
	}
	closedir(d);
	return max < 0 ? -1 : max + 1;
}

struct idset {
	uint64_t *v;
	size_t n, cap;
};

static int idset_add(struct idset *s, const uint64_t *ids, size_t n)
{
	if (s->n + n > s->cap) {
		size_t cap = s->cap ? s->cap : 1024;
		while (cap < s->n + n)
			cap *= 2;
		uint64_t *v = realloc(s->v, cap * sizeof(*v));
		if (v == NULL)
			return -1;
		s->v = v;
		s->cap = cap;
	}
	memcpy(s->v + s->n, ids, n * sizeof(*ids));
	s->n += n;
	return 0;
}

int main(int argc, char **argv)
{
	unsigned shards = 4;
	const char *bodydir = NULL, *rcptfile = NULL;
	FILE *rf = NULL;
	int count_only = 0, stripped = 0, with_auth = 0, opt;

	while ((opt = getopt(argc, argv, "n:b:r:csa")) != -1) {
		switch (opt) {
		case 'n': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);
			if (*end || v == 0 || v > QUEUE_SHARDS_MAX)
				usage();
			shards = (unsigned)v;
			break;
		}
		case 'b': bodydir = optarg; break;
		case 'r': rcptfile = optarg; break;
		case 'c': count_only = 1; break;
		case 's': stripped = 1; break;
		case 'a': with_auth = 1; break;
		default: usage();
		}
	}
	if (optind != argc - 1)
		usage();

	if (rcptfile != NULL && (rf = fopen(rcptfile, "w")) == NULL) {
		fprintf(stderr, "queue-dump: %s: %s\n", rcptfile, strerror(errno));
		return 1;
	}
	log_init("queue-dump", LOG_LVL_WARN, false);
	struct queue_conf conf;
	queue_conf_defaults(&conf);
	if ((size_t)snprintf(conf.dir, sizeof(conf.dir), "%s", argv[optind]) >= sizeof(conf.dir)) {
		fprintf(stderr, "queue-dump: spool path too long\n");
		return 1;
	}
	conf.shards = shards;
	int have = spool_shards(conf.dir);
	if (have < 0) {
		fprintf(stderr, "queue-dump: no spool (shard-N directories) in %s\n", conf.dir);
		return 1;
	}
	if ((unsigned)have != shards) {
		fprintf(stderr, "queue-dump: %s has %d shards, -n says %u\n", conf.dir, have, shards);
		return 1;
	}
	int st;
	struct queue *q = queue_open(&conf, &st);
	if (q == NULL) {
		fprintf(stderr, "queue-dump: queue_open %s: %s\n", conf.dir, queue_status_str(st));
		return 1;
	}

	int rc = 0;
	struct queue_domain_sum *sum = NULL;
	size_t nd = 0;
	struct idset ids = { 0 };
	uint64_t page[4096];

	st = queue_summary(q, (uint64_t)time(NULL), &sum, &nd);
	if (st != QUEUE_OK) {
		fprintf(stderr, "queue-dump: queue_summary: %s\n", queue_status_str(st));
		rc = 1;
		goto out;
	}
	for (size_t d = 0; d < nd; d++) {
		uint64_t after = 0;
		size_t n;
		do {
			st = queue_list_domain(q, sum[d].domain, after, page,
					       sizeof(page) / sizeof(page[0]), &n);
			if (st != QUEUE_OK) {
				fprintf(stderr, "queue-dump: queue_list_domain %s: %s\n",
					sum[d].domain, queue_status_str(st));
				rc = 1;
				goto out;
			}
			if (n > 0) {
				if (idset_add(&ids, page, n) != 0) {
					fprintf(stderr, "queue-dump: out of memory\n");
					rc = 1;
					goto out;
				}
				after = page[n - 1];
			}
		} while (n == sizeof(page) / sizeof(page[0]));
	}
	if (ids.n > 0)
		qsort(ids.v, ids.n, sizeof(ids.v[0]), cmp_u64);
	size_t uniq = 0;
	for (size_t i = 0; i < ids.n; i++)
		if (uniq == 0 || ids.v[uniq - 1] != ids.v[i])
			ids.v[uniq++] = ids.v[i];
	ids.n = uniq;

	if (count_only) {
		printf("%zu\n", ids.n);
		goto out;
	}

	char *buf = NULL;
	size_t bufcap = 0;
	for (size_t i = 0; i < ids.n; i++) {
		char idstr[QUEUE_ID_STR], hex[65] = "", first_hex[65] = "", rhex[65] = "-";
		char sender[QUEUE_ADDR_MAX + 3] = "", auth[2 * QUEUE_TEXT_MAX + 4] = " - -";
		unsigned nrcpt = 0, found = 0;
		size_t size = 0;
		queue_id_format(ids.v[i], idstr);
		for (unsigned sh = 0; sh < queue_nshards(q); sh++) {
			struct queue_msg *m = NULL;
			st = queue_lookup(q, sh, ids.v[i], &m);
			if (st == QUEUE_NOTFOUND)
				continue;
			if (st != QUEUE_OK) {
				fprintf(stderr, "queue-dump: %s: lookup in shard %u: %s\n",
					idstr, sh, queue_status_str(st));
				rc = 1;
				continue;
			}
			nrcpt += m->nrcpt;
			for (unsigned r = 0; rf != NULL && r < m->nrcpt; r++)
				fprintf(rf, "%s %s %s %u\n", idstr, m->rcpt[r].addr,
					m->rcpt[r].orcpt && m->rcpt[r].orcpt[0] ? m->rcpt[r].orcpt : "-",
					m->rcpt[r].notify);
			if (found == 0)
				snprintf(sender, sizeof(sender), "%s",
					 m->sender && m->sender[0] ? m->sender : "<>");
			if (found == 0 && m->auth_user && m->auth_user[0])
				snprintf(auth, sizeof(auth), " %s %s",
					 m->auth_method[0] ? m->auth_method : "-", m->auth_user);
			size_t want = m->size + 1, len = 0;
			free(m);
			for (;;) {	/* the stored size is a hint: grow until it fits */
				if (want > bufcap) {
					char *nb = realloc(buf, want);
					if (nb == NULL) {
						fprintf(stderr, "queue-dump: out of memory\n");
						rc = 1;
						goto out_buf;
					}
					buf = nb;
					bufcap = want;
				}
				st = queue_read_body(q, sh, ids.v[i], buf, bufcap, &len);
				if (st != QUEUE_OK || len <= bufcap)
					break;
				want = len;	/* *len is the full size */
			}
			if (st != QUEUE_OK) {
				fprintf(stderr, "queue-dump: %s: body in shard %u: %s\n",
					idstr, sh, queue_status_str(st));
				rc = 1;
				continue;
			}
			sha256_hex(buf, len, hex);
			if (found == 0) {
				memcpy(first_hex, hex, sizeof(hex));
				size = len;
				if (stripped) {
					size_t r = first_received_len(buf, len);
					if (r > 0)
						sha256_hex(buf + r, len - r, rhex);
				}
				if (bodydir != NULL) {
					char path[PATH_MAX];
					snprintf(path, sizeof(path), "%s/%s.eml", bodydir, idstr);
					FILE *f = fopen(path, "wb");
					if (f == NULL || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
						fprintf(stderr, "queue-dump: %s: %s\n", path, strerror(errno));
						rc = 1;
					}
				}
			} else if (strcmp(hex, first_hex) != 0) {
				fprintf(stderr, "queue-dump: %s: body in shard %u differs from the first copy\n",
					idstr, sh);
				rc = 1;
			}
			found++;
		}
		if (found == 0) {
			fprintf(stderr, "queue-dump: %s: listed but not found in any shard\n", idstr);
			rc = 1;
			continue;
		}
		if (stripped)
			printf("%s %s %u %zu %s %s%s\n", idstr, sender, nrcpt, size, first_hex, rhex,
			       with_auth ? auth : "");
		else
			printf("%s %s %u %zu %s%s\n", idstr, sender, nrcpt, size, first_hex,
			       with_auth ? auth : "");
	}
out_buf:
	free(buf);
out:
	free(ids.v);
	free(sum);
	queue_close(q);
	if (fflush(stdout) != 0)
		rc = 1;
	if (rf != NULL && fclose(rf) != 0)
		rc = 1;
	return rc;
}
