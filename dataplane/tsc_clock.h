/*
 * tsc_clock.h - TSC cycles to nanoseconds without a divide.
 *
 * The worker lcore reads its clock once per poll (lcore.c), millions of
 * times a second. d * 1e9 / hz is a 128-bit division (__udivti3, tens of
 * cycles); here the division is done once, at start-up: mult = 1e9 * 2^shift
 * / hz, with shift as large as keeps mult in 64 bits (64 for any TSC of
 * 1 GHz or more), and each reading is one 64x64->128 multiply and a shift.
 * Error: mult is rounded down by less than 1, so a reading is low by less
 * than d / 2^shift + 1 ns (under 1 ns for the first 2^54 cycles, years at
 * any real TSC rate).
 */
#ifndef SLUICE_TSC_CLOCK_H
#define SLUICE_TSC_CLOCK_H

#include <stdint.h>

struct tsc_clock {
	uint64_t mult;		/* ns per cycle, scaled by 2^shift */
	unsigned shift;		/* 0..64 */
};

/* hz: cycles per second, > 0. */
static inline void tsc_clock_init(struct tsc_clock *c, uint64_t hz)
{
	unsigned shift = 64;
	unsigned __int128 m;

	if (hz == 0)
		hz = 1;
	/* The largest shift whose multiplier fits 64 bits. */
	for (;;) {
		m = ((unsigned __int128)1000000000u << shift) / hz;
		if ((m >> 64) == 0 || shift == 0)
			break;
		shift--;
	}
	c->mult = (uint64_t)m;
	c->shift = shift;
}

/* Nanoseconds in `cycles` TSC cycles. */
static inline uint64_t tsc_clock_ns(const struct tsc_clock *c, uint64_t cycles)
{
	return (uint64_t)(((unsigned __int128)cycles * c->mult) >> c->shift);
}

#endif
