/*
 * clock.h - time sources shared by every layer.
 *
 * clock_mono_ns() is for timeouts and intervals (never jumps); clock_real_s()
 * is wall time for arrival stamps, logs and Received: headers. The dataplane
 * uses its own TSC-based clock on the packet path; these are for the rest.
 */
#ifndef SLUICE_CLOCK_H
#define SLUICE_CLOCK_H

#include <stdint.h>
#include <time.h>

#define NS_PER_US 1000ull
#define NS_PER_MS 1000000ull
#define NS_PER_SEC 1000000000ull  /* not NS_PER_S: DPDK defines that as an int */

static inline uint64_t clock_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

static inline uint64_t clock_real_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec;
}

#endif
