/*
 * sluicectl.c - the operator's CLI: sends one request to sluiced's control
 * socket and shows the reply, as a table for people or raw JSON (--json).
 *
 *   sluicectl [-s SOCKET] [--json] COMMAND [ARGS...]
 *
 * Exit status: 0 when sluiced answered ok, 1 when it answered an error,
 * 2 on usage errors, 3 when sluiced could not be reached.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define DEFAULT_SOCKET "/run/sluice/control.sock"
#define REPLY_MAX (16u << 20)	/* bound on a reply we will buffer */
#define TIMEOUT_MS 10000

static void usage(FILE *out)
{
	fprintf(out, "usage: sluicectl [-s SOCKET] [--json] COMMAND [ARGS...]\n"
		     "commands: ping, version, stats, route lookup DOMAIN, route set DOMAIN SPEC,\n"
		     "          route clear DOMAIN, dns lookup NAME a|mx|ptr,\n"
		     "          flush ID|--domain DOMAIN|--all, dest show [DEST], dest clear DEST,\n"
		     "          bounce ID [--reason TEXT]\n");
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

/* Read one reply line (up to REPLY_MAX) with a timeout. Caller frees. */
static char *read_reply(int fd)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);

	while (buf) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;
		char *nl;

		if (poll(&p, 1, TIMEOUT_MS) <= 0) {
			fprintf(stderr, "sluicectl: no reply within %d s\n", TIMEOUT_MS / 1000);
			break;
		}
		if (len + 1 >= cap) {
			char *nb;
			if (cap >= REPLY_MAX) {
				fprintf(stderr, "sluicectl: reply larger than %u bytes\n", REPLY_MAX);
				break;
			}
			nb = realloc(buf, cap *= 2);
			if (!nb)
				break;
			buf = nb;
		}
		r = read(fd, buf + len, cap - 1 - len);
		if (r <= 0) {
			fprintf(stderr, "sluicectl: connection closed before a full reply\n");
			break;
		}
		len += (size_t)r;
		buf[len] = '\0';
		nl = memchr(buf, '\n', len);
		if (nl) {
			*nl = '\0';
			return buf;
		}
	}
	free(buf);
	return NULL;
}

/*
 * Show a flat JSON object's members as "name  value" rows. The replies of
 * sluiced are {"ok":true,"key":{"a.b":1,...}} or {"ok":false,"error":"..."};
 * this walks that shape only.
 */
static void print_table(const char *json)
{
	const char *p = json;
	int depth = 0;

	while (*p) {
		if (*p == '{') { depth++; p++; continue; }
		if (*p == '}') { depth--; p++; continue; }
		if (*p == '"') {
			const char *k = ++p;
			size_t kl;
			while (*p && *p != '"') p += (*p == '\\' && p[1]) ? 2 : 1;
			kl = (size_t)(p - k);
			if (*p) p++;
			if (*p != ':') continue;
			p++;
			if (*p == '{') {
				if (!(kl == 2 && !strncmp(k, "ok", 2)))
					printf("%.*s:\n", (int)kl, k);
				continue;
			}
			{
				const char *v = p;
				if (*p == '"') {
					p++;
					while (*p && *p != '"') p += (*p == '\\' && p[1]) ? 2 : 1;
					if (*p) p++;
				} else {
					while (*p && *p != ',' && *p != '}') p++;
				}
				if (!(kl == 2 && !strncmp(k, "ok", 2)))
					printf("%s%-32.*s %.*s\n", depth > 1 ? "  " : "", (int)kl, k,
					       (int)(p - v), v);
			}
			continue;
		}
		p++;
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = getenv("SLUICE_CONTROL_SOCKET");
	char req[4096];
	size_t n = 0;
	int json = 0, o, fd, ok;
	char *reply;

	if (!path)
		path = DEFAULT_SOCKET;
	while ((o = getopt_long(argc, argv, "+s:jh", opts, NULL)) != -1) {
		switch (o) {
		case 's': path = optarg; break;
		case 'j': json = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	for (int i = optind; i < argc; i++) {
		int w = snprintf(req + n, sizeof(req) - n, "%s%s", i > optind ? " " : "", argv[i]);
		if (w < 0 || (size_t)w >= sizeof(req) - n - 1 || strpbrk(argv[i], "\r\n")) {
			fprintf(stderr, "sluicectl: request too long or contains a newline\n");
			return 2;
		}
		n += (size_t)w;
	}
	req[n++] = '\n';

	fd = connect_to(path);
	if (fd < 0)
		return 3;
	if (write(fd, req, n) != (ssize_t)n) {
		fprintf(stderr, "sluicectl: send failed: %s\n", strerror(errno));
		close(fd);
		return 3;
	}
	reply = read_reply(fd);
	close(fd);
	if (!reply)
		return 3;
	ok = strncmp(reply, "{\"ok\":true", 10) == 0;
	if (json)
		printf("%s\n", reply);
	else if (ok)
		print_table(reply);
	else
		fprintf(stderr, "sluicectl: %s\n", reply);
	free(reply);
	return ok ? 0 : 1;
}
