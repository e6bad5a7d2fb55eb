/*
 * sluicectl.c - the operator's CLI: sends one request to sluiced's control
 * socket and shows the reply, as text for people or as JSON (--json).
 *
 *   sluicectl [-s SOCKET] [--json] [-t SECONDS] [--cluster] COMMAND [ARGS...]
 *   sluicectl COMMAND [SUB-COMMAND] --help     usage and help, from sluiced
 *   sluicectl help                             every command
 *
 * The request is the command line's words (control/ctl_proto.h); the
 * commands, their usage and their help live in sluiced's table
 * (control/commands.c), which `help` returns, so this program knows no
 * command but how to show its result (control/sluicectl_render.h).
 *
 * --cluster (before the command, or among its words: `queue summary
 * --cluster`) sends "cluster COMMAND ARGS...": the box this socket belongs to
 * carries it to every box registered in Redis (control/cluster.h): suspend,
 * resume, flush, route, queue summary (merged), boxes.
 *
 * --json prints the reply's result as one line of JSON (the shape each
 * command documents); an error goes to stderr as text either way.
 *
 * `queue list` (without --json or --after) follows the pages: it asks
 * again with "--after NEXT" until the server says there is no more, and
 * prints them as one listing. `delete` asks on the terminal first unless
 * --yes is given (the word is not sent); without a terminal and without
 * --yes it refuses (exit 2).
 *
 * Exit status: 0 when sluiced answered ok, 1 when it answered an error
 * (refusals and usage errors it found included), 2 on usage errors found
 * here, 3 when sluiced could not be reached or its reply could not be
 * read.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "control/ctl_proto.h"
#include "control/sluicectl_render.h"
#include "control/users.h"

#define DEFAULT_SOCKET "/run/sluice/control.sock"
#define TIMEOUT_S 10	/* default: how long a reply may keep us waiting */

static void usage(FILE *out)
{
	fprintf(out, "usage: sluicectl [-s SOCKET] [--json] [-t SECONDS] [--cluster] COMMAND [ARGS...]\n"
		     "       sluicectl COMMAND [SUB-COMMAND] --help\n"
		     "  -s, --socket SOCKET   sluiced's control socket (default %s,\n"
		     "                        or $SLUICE_CONTROL_SOCKET)\n"
		     "  -j, --json            print the result as JSON, for scripts\n"
		     "  -t, --timeout SECONDS give up when the reply takes longer (default %d)\n"
		     "  -C, --cluster         to every box of the cluster (suspend, resume,\n"
		     "                        flush, route, queue summary, boxes)\n"
		     "exit status: 0 ok, 1 sluiced answered an error, 2 usage, 3 unreachable\n",
		DEFAULT_SOCKET, TIMEOUT_S);
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "sluicectl: socket path too long: %s\n", path);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "sluicectl: cannot reach sluiced at %s: %s\n", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Send the whole request. 0, or -1: the server closed (it may have said
 * why: read its reply all the same). */
static int send_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

/*
 * Read one reply line (at most CTL_REPLY_MAX bytes) within timeout_ms of
 * the last byte. The line without its newline (caller frees), or NULL
 * (said why on stderr).
 */
static char *read_reply(int fd, int timeout_ms, size_t *len_out)
{
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap);

	while (buf) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;
		char *nl;
		int pr = poll(&p, 1, timeout_ms);

		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0) {
			fprintf(stderr, "sluicectl: no reply within %d s\n", timeout_ms / 1000);
			break;
		}
		if (len + 1 >= cap) {
			char *nb;
			if (cap >= CTL_REPLY_MAX) {
				fprintf(stderr, "sluicectl: reply over %u bytes\n", CTL_REPLY_MAX);
				break;
			}
			nb = realloc(buf, cap *= 2);
			if (!nb)
				break;
			buf = nb;
		}
		r = read(fd, buf + len, cap - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			fprintf(stderr, "sluicectl: connection closed before a whole reply%s%s\n",
				r < 0 ? ": " : "", r < 0 ? strerror(errno) : "");
			break;
		}
		nl = memchr(buf + len, '\n', (size_t)r);
		len += (size_t)r;
		if (nl) {
			*nl = '\0';
			*len_out = (size_t)(nl - buf);
			return buf;
		}
	}
	free(buf);
	return NULL;
}

/* Ask sluiced: 0 with *ok and *value (a new reference), or 3 (unreachable, or
 * no readable reply; said why). */
static int ask(const char *path, int argc, char **argv, int timeout_ms, bool *ok, json_t **value)
{
	char err[256], *req, *line;
	size_t len;
	int fd;

	req = ctl_request_encode(argc, argv, &len, err, sizeof(err));
	if (!req) {
		fprintf(stderr, "sluicectl: %s\n", err);
		return 2;
	}
	fd = connect_to(path);
	if (fd < 0) {
		free(req);
		return 3;
	}
	if (send_all(fd, req, len) < 0)
		fprintf(stderr, "sluicectl: sluiced closed the connection: %s\n", strerror(errno));
	free(req);
	line = read_reply(fd, timeout_ms, &len);
	close(fd);
	if (!line)
		return 3;
	if (ctl_reply_parse(line, len, ok, value, err, sizeof(err)) < 0) {
		fprintf(stderr, "sluicectl: %s\n", err);
		free(line);
		return 3;
	}
	free(line);
	return 0;
}

#define LIST_PAGES_MAX 100000	/* pages of one `queue list` (a bound, not a limit met) */

/* `queue list` page after page (see the top). */
static int list_pages(const char *path, int nwords, char **words, int timeout_ms)
{
	struct ctl_list_totals t = { 0, 0 };
	char **w = calloc((size_t)nwords + 3, sizeof(*w)), cursor[64];
	bool ok;
	json_t *value = NULL;
	int r = 0;

	if (!w) {
		fprintf(stderr, "sluicectl: out of memory\n");
		return 3;
	}
	memcpy(w, words, (size_t)nwords * sizeof(*w));
	for (unsigned page = 0; page < LIST_PAGES_MAX; page++) {
		const json_t *next;
		int n = nwords;
		if (page) {
			w[n++] = "--after";
			w[n++] = cursor;
		}
		r = ask(path, n, w, timeout_ms, &ok, &value);
		if (r)
			break;
		if (!ok) {
			char text[4096];
			fprintf(stderr, "sluicectl: %s\n", ctl_render_scalar(value, text, sizeof(text)));
			json_decref(value);
			r = 1;
			break;
		}
		ctl_render_queue_list_page(stdout, value, page == 0, &t);
		next = json_object_get(value, "next");
		if (!json_is_string(next) || strlen(json_string_value(next)) >= sizeof(cursor)) {
			json_decref(value);
			ctl_render_queue_list_end(stdout, &t);
			break;
		}
		snprintf(cursor, sizeof(cursor), "%s", json_string_value(next));
		json_decref(value);
	}
	free(w);
	if (fflush(stdout) != 0 || ferror(stdout))
		return 3;
	return r;
}

/* `delete`: --yes taken out of the words, else a yes from the terminal.
 * 0 to go on, 2 to stop. */
static int delete_confirm(int *nwords, char **words)
{
	char line[16];
	FILE *tty;
	int k = 0;
	bool yes = false;

	for (int i = 0; i < *nwords; i++) {
		if (strcmp(words[i], "--yes") == 0 || strcmp(words[i], "-y") == 0)
			yes = true;
		else
			words[k++] = words[i];
	}
	*nwords = k;
	words[k] = NULL;
	if (yes)
		return 0;
	tty = fopen("/dev/tty", "r+");
	if (!tty) {
		fprintf(stderr, "sluicectl: delete sends no DSN and cannot be undone; no terminal "
			"to ask: give --yes\n");
		return 2;
	}
	fprintf(tty, "delete");
	for (int i = 1; i < k; i++)
		fprintf(tty, " %s", words[i]);
	fprintf(tty, ": the mail is gone for good and nobody is told. Delete? [y/N] ");
	fflush(tty);
	if (!fgets(line, sizeof(line), tty) || (line[0] != 'y' && line[0] != 'Y')) {
		fclose(tty);
		fprintf(stderr, "sluicectl: nothing deleted\n");
		return 2;
	}
	fclose(tty);
	return 0;
}

static bool is_help(const char *w)
{
	return strcmp(w, "--help") == 0 || strcmp(w, "-h") == 0;
}

/* `user add NAME`: read the password (stdin's first line); the words to
 * send, with its scrypt hash (users.h) as the fourth, or NULL (said on
 * stderr). */
static char **user_hash(char **words)
{
	static char hash[USERS_HASH_TEXT_MAX], pass[USERS_PASS_MAX + 3];
	static char *w4[5];
	char err[256];
	size_t len;

	if (isatty(STDIN_FILENO))
		fprintf(stderr, "password for %s (one line): ", words[2]);
	if (!fgets(pass, sizeof(pass), stdin)) {
		fprintf(stderr, "sluicectl: user add: no password on stdin\n");
		return NULL;
	}
	len = strcspn(pass, "\r\n");
	if (len == 0 || len > USERS_PASS_MAX) {
		OPENSSL_cleanse(pass, sizeof(pass));
		fprintf(stderr, "sluicectl: user add: a password is 1..%d octets\n", USERS_PASS_MAX);
		return NULL;
	}
	if (users_hash_make(pass, len, 0, 0, 0, hash, sizeof(hash), err, sizeof(err)) < 0) {
		OPENSSL_cleanse(pass, sizeof(pass));
		fprintf(stderr, "sluicectl: user add: %s\n", err);
		return NULL;
	}
	OPENSSL_cleanse(pass, sizeof(pass));
	for (int i = 0; i < 3; i++)
		w4[i] = words[i];
	w4[3] = hash;
	w4[4] = NULL;
	return w4;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "cluster", no_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = getenv("SLUICE_CONTROL_SOCKET");
	bool json = false, help = false, ok = false, cluster = false;
	long timeout_s = TIMEOUT_S;
	char *help_argv[3] = { "help", NULL, NULL }, **words, *end;
	int nwords, o, r;
	json_t *value = NULL;

	if (!path)
		path = DEFAULT_SOCKET;
	while ((o = getopt_long(argc, argv, "+s:jt:hC", opts, NULL)) != -1) {
		switch (o) {
		case 's': path = optarg; break;
		case 'j': json = true; break;
		case 't':
			timeout_s = strtol(optarg, &end, 10);
			if (*end || timeout_s < 1 || timeout_s > 86400) {
				fprintf(stderr, "sluicectl: --timeout takes 1..86400 seconds\n");
				return 2;
			}
			break;
		case 'h': help = true; break;
		case 'C': cluster = true; break;
		default: usage(stderr); return 2;
		}
	}
	words = argv + optind;
	nwords = argc - optind;
	for (int i = 1; i < nwords; i++)	/* `queue summary --cluster` says it too */
		if (strcmp(words[i], "--cluster") == 0) {
			memmove(&words[i], &words[i + 1], (size_t)(nwords - i) * sizeof(*words));
			nwords--;
			cluster = true;
			break;
		}
	if (cluster && nwords > 0) {	/* "cluster" before the words, in the slot
					 * before them (an option's, or argv[0]) */
		words = argv + optind - 1;
		words[0] = "cluster";
		nwords++;
	}
	for (int i = 0; i < nwords; i++)
		help |= is_help(words[i]);
	if (nwords == 0 && !help) {
		usage(stderr);
		return 2;
	}
	if (help) {
		/* `sluicectl [COMMAND [SUB]] --help`: the table's rows, from sluiced */
		int n = 1;
		for (int i = 0; i < nwords && n < 3; i++)
			if (!is_help(words[i]))
				help_argv[n++] = words[i];
		if (n == 1)
			usage(stdout);
		words = help_argv;
		nwords = n;
	}
	if (!help && nwords >= 1 && strcmp(words[0], "delete") == 0 &&
	    (r = delete_confirm(&nwords, words)) != 0)
		return r;
	if (!help && !json && nwords >= 2 && strcmp(words[0], "queue") == 0 &&
	    strcmp(words[1], "list") == 0) {
		bool after = false;
		for (int i = 2; i < nwords; i++)
			after |= strcmp(words[i], "--after") == 0;
		if (!after)
			return list_pages(path, nwords, words, (int)timeout_s * 1000);
	}
	if (!help && nwords == 3 && strcmp(words[0], "user") == 0 &&
	    strcmp(words[1], "add") == 0) {
		/* the password never leaves this process: its hash does */
		if (!(words = user_hash(words)))
			return 2;
		nwords = 4;
	}
	r = ask(path, nwords, words, (int)timeout_s * 1000, &ok, &value);
	if (r) {
		if (help && nwords == 1)
			return 0;	/* the options were printed; the commands need sluiced */
		return r;
	}
	if (!ok) {
		ctl_render_error(stderr, value);
		json_decref(value);
		return 1;
	}
	if (json) {
		char *s = json_dumps(value, CTL_JSON_FLAGS | JSON_ENCODE_ANY);
		if (!s) {
			json_decref(value);
			fprintf(stderr, "sluicectl: out of memory\n");
			return 3;
		}
		printf("%s\n", s);
		free(s);
	} else {
		ctl_render_find(nwords, words)(stdout, value, nwords, words);
	}
	json_decref(value);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "sluicectl: writing the output: %s\n", strerror(errno));
		return 3;
	}
	return 0;
}
