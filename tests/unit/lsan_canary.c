/*
 * lsan_canary.c - proof that LeakSanitizer runs in the ASan tree. It leaks
 * on purpose and exits 0; meson registers it (ASan builds only) as a test
 * that must fail. If leak checking were off for the suites without EAL, it
 * would exit 0 and the suite would report an unexpected pass.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *volatile sink;

int main(void)
{
	char *p = malloc(4096);

	if (!p)
		return 2;
	memset(p, 0x5a, 4096);
	sink = p;
	sink = NULL;	/* the only pointer is gone: a definite leak */
	puts("leaked 4096 bytes; LeakSanitizer must fail this process");
	return 0;
}
