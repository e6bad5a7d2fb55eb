/*
 * sluice_passwd.c - make one line of the submission users' file
 * ([auth] users, users.h):
 *
 *     sluice-passwd [-N cost] [-r blocksize] [-p parallelism] NAME < password
 *
 * reads the password as the first line of stdin (no echo games: pipe it in
 * or type it; a trailing CR/LF is not part of it) and prints
 * "NAME:$scrypt$N=..,r=..,p=..$salt$key". Append that to the file and
 * `sluicectl reload` (or restart). Exit 0, or 1 with a message on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "control/users.h"

static int usage(void)
{
	fprintf(stderr, "usage: sluice-passwd [-N cost] [-r blocksize] [-p parallelism] NAME "
		"< password\n");
	return 1;
}

int main(int argc, char **argv)
{
	char pass[USERS_PASS_MAX + 3], out[USERS_HASH_TEXT_MAX], err[256], line[600];
	unsigned long N = 0, r = 0, p = 0;
	struct users u;
	const char *name;
	size_t len;
	int opt;

	while ((opt = getopt(argc, argv, "N:r:p:")) != -1) {
		char *end;
		unsigned long v = strtoul(optarg, &end, 10);

		if (*end || !*optarg)
			return usage();
		if (opt == 'N')
			N = v;
		else if (opt == 'r')
			r = v;
		else if (opt == 'p')
			p = v;
		else
			return usage();
	}
	if (optind != argc - 1)
		return usage();
	name = argv[optind];
	if (!fgets(pass, sizeof(pass), stdin)) {
		fprintf(stderr, "sluice-passwd: no password on stdin\n");
		return 1;
	}
	len = strcspn(pass, "\r\n");
	if (len > USERS_PASS_MAX) {
		fprintf(stderr, "sluice-passwd: a password is at most %d octets\n", USERS_PASS_MAX);
		return 1;
	}
	if (users_hash_make(pass, len, N, (uint32_t)r, (uint32_t)p, out, sizeof(out), err,
			    sizeof(err)) < 0) {
		OPENSSL_cleanse(pass, sizeof(pass));
		fprintf(stderr, "sluice-passwd: %s\n", err);
		return 1;
	}
	OPENSSL_cleanse(pass, sizeof(pass));
	/* the line must parse as the daemon will parse it (checks the name too) */
	snprintf(line, sizeof(line), "%s:%s\n", name, out);
	if (users_parse(&u, line, "NAME", err, sizeof(err)) < 0) {
		fprintf(stderr, "sluice-passwd: %s\n", err);
		return 1;
	}
	users_free(&u);
	fputs(line, stdout);
	return fflush(stdout) == 0 ? 0 : 1;
}
