/*
 * test_tsc_clock.c - the divide-free TSC-to-nanoseconds conversion agrees
 * with the exact 128-bit division (cycles * 1e9 / hz) to within 1 ns, for
 * TSC rates from 1 MHz to 5 GHz (odd ones included) and readings from 0 to
 * 2^50 cycles (days at these rates), and never runs ahead of it.
 */
#include <criterion/criterion.h>

#include "dataplane/tsc_clock.h"

static uint64_t exact(uint64_t cycles, uint64_t hz)
{
	return (uint64_t)(((unsigned __int128)cycles * 1000000000u) / hz);
}

static const uint64_t rates[] = {
	1000000, 25000000, 999999937, 1000000000, 1999999999, 2095078000,
	2400000000u, 2893437000u, 3000000000u, 3700000001u, 5000000000u,
};

Test(tsc_clock, matches_exact_division)
{
	for (unsigned i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
		struct tsc_clock c;
		uint64_t hz = rates[i], x = 0x9e3779b97f4a7c15u;

		tsc_clock_init(&c, hz);
		for (unsigned k = 0; k < 200000; k++) {
			uint64_t d, want, got;
			x ^= x << 13; x ^= x >> 7; x ^= x << 17;	/* xorshift */
			/* Spread over every magnitude up to 2^50. */
			d = k < 64 ? (uint64_t)k : x >> (14 + k % 50);
			want = exact(d, hz);
			got = tsc_clock_ns(&c, d);
			cr_assert(got <= want && want - got <= 1,
				  "hz %lu, %lu cycles: %lu ns, exact %lu", (unsigned long)hz,
				  (unsigned long)d, (unsigned long)got, (unsigned long)want);
		}
	}
}

Test(tsc_clock, one_second_is_one_second)
{
	for (unsigned i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
		struct tsc_clock c;
		tsc_clock_init(&c, rates[i]);
		cr_assert_geq(tsc_clock_ns(&c, rates[i]), 999999999u, "hz %lu",
			      (unsigned long)rates[i]);
		cr_assert_leq(tsc_clock_ns(&c, rates[i]), 1000000000u);
		cr_assert_eq(tsc_clock_ns(&c, 0), 0);
	}
}
