/*
 * bench_sock.h - socket helpers shared by the kernel-side bench tools
 * (tcp_load, kecho). Header-only: each tool is a single file otherwise.
 */
#ifndef SLUICE_BENCH_SOCK_H
#define SLUICE_BENCH_SOCK_H

#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/resource.h>

/* Raise the open-file limit towards n (up to the hard limit). */
static inline void bench_raise_nofile(rlim_t n, const char *prog)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= n)
		return;
	rl.rlim_cur = n < rl.rlim_max ? n : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		fprintf(stderr, "%s: setrlimit(RLIMIT_NOFILE): %m\n", prog);
}

/* epoll_ctl with the event's data set to `data`; -1 (reported) on failure. */
static inline int bench_ep_set(int ep, int op, int fd, uint32_t events, uint64_t data,
			       const char *prog)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };

	if (epoll_ctl(ep, op, fd, &ev) != 0) {
		fprintf(stderr, "%s: epoll_ctl: %m\n", prog);
		return -1;
	}
	return 0;
}

#endif
