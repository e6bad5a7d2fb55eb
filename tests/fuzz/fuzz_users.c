/*
 * fuzz_users.c - libFuzzer harness: arbitrary bytes as the submission
 * users file ([auth] users, control/users.h), the one parser issue 18 added.
 *
 * The input, cut at its first NUL (the file reader refuses a NUL anyway),
 * goes through users_parse. On success every entry must keep the file's
 * promises: 1..USERS_NAME_MAX printable octets other than ':', sorted and
 * unique (so users_find finds each one, and only it), the scrypt parameters
 * within their bounds (N a power of two in 2^10..2^20, r 1..32, p 1..16,
 * 128*N*r*p within USERS_SCRYPT_MEM_MAX, salt 8..64 and key 16..64 octets).
 * On failure the table must be empty and the error must name the file.
 * Each line after the first ':' also goes through users_hash_parse on its
 * own, which must agree with the same bounds. No scrypt is computed: a
 * password check costs tens of milliseconds by design.
 *
 * Any violation aborts. Seeds: corpus_users/ (make_corpus_users.py).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "control/users.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static void check_hash(const struct users_hash *h)
{
	CHECK(h->N >= 1024 && h->N <= (1u << 20) && (h->N & (h->N - 1)) == 0);
	CHECK(h->r >= 1 && h->r <= 32 && h->p >= 1 && h->p <= 16);
	CHECK(128ull * h->N * h->r * h->p <= USERS_SCRYPT_MEM_MAX);
	CHECK(h->salt_len >= 8 && h->salt_len <= USERS_SALT_MAX);
	CHECK(h->key_len >= 16 && h->key_len <= USERS_KEY_MAX);
}

static void check_table(const struct users *u)
{
	CHECK(u->n <= USERS_MAX);
	for (unsigned i = 0; i < u->n; i++) {
		const struct users_entry *e = &u->e[i];
		size_t len = strnlen(e->name, sizeof(e->name));
		CHECK(len >= 1 && len <= USERS_NAME_MAX);
		for (size_t k = 0; k < len; k++)
			CHECK(e->name[k] > ' ' && e->name[k] < 0x7f && e->name[k] != ':');
		if (i > 0)
			CHECK(strcmp(u->e[i - 1].name, e->name) < 0);
		CHECK(users_find(u, e->name) == e);
		CHECK(e->line >= 1);
		check_hash(&e->h);
	}
	CHECK(users_find(u, "") == NULL);
}

/* Each line's text after its first ':' as a hash on its own. */
static void each_hash(const char *text)
{
	char hash[USERS_LINE_MAX + 1], err[256];
	struct users_hash h;

	for (const char *p = text; *p;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		const char *colon = memchr(p, ':', len);
		if (colon != NULL) {
			size_t k = len - (size_t)(colon + 1 - p);
			if (k < sizeof(hash)) {
				memcpy(hash, colon + 1, k);
				hash[k] = '\0';
				err[0] = '\0';
				if (users_hash_parse(hash, &h, err, sizeof(err)) == 0)
					check_hash(&h);
				else
					CHECK(err[0] != '\0');
			}
		}
		if (!nl)
			break;
		p = nl + 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	char err[512];
	struct users u;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';	/* a NUL ends the text */
	err[0] = '\0';
	if (users_parse(&u, text, "fuzz.users", err, sizeof(err)) == 0) {
		check_table(&u);
		users_free(&u);
	} else {
		CHECK(u.n == 0);
		CHECK(strncmp(err, "fuzz.users", 10) == 0);
	}
	each_hash(text);
	free(text);
	return 0;
}
