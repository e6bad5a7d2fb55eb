/*
 * cpus.c - which CPU each lcore runs on. See cpus.h.
 */
#include "dataplane/cpus.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ONLINE_PATH "/sys/devices/system/cpu/online"

int cpus_parse_list(const char *s, cpu_set_t *out, char *err, size_t errlen)
{
	const char *p = s;

	CPU_ZERO(out);
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0')
		return 0;
	for (;;) {
		char *end;
		unsigned long lo, hi;

		if (*p < '0' || *p > '9')
			goto bad;
		lo = strtoul(p, &end, 10);
		hi = lo;
		p = end;
		if (*p == '-') {
			p++;
			if (*p < '0' || *p > '9')
				goto bad;
			hi = strtoul(p, &end, 10);
			p = end;
		}
		if (hi < lo) {
			snprintf(err, errlen, "'%s': range %lu-%lu runs backwards", s, lo, hi);
			return -1;
		}
		if (hi >= CPU_SETSIZE) {
			snprintf(err, errlen, "'%s': CPU %lu is beyond %d", s, hi, CPU_SETSIZE - 1);
			return -1;
		}
		for (unsigned long c = lo; c <= hi; c++)
			CPU_SET(c, out);
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0' || *p == '\n')
			return 0;
		if (*p != ',')
			goto bad;
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
	}
bad:
	snprintf(err, errlen, "'%s' is not a CPU list like 2-5,8", s);
	return -1;
}

void cpus_format_list(const cpu_set_t *set, char *buf, size_t len)
{
	size_t n = 0;

	if (len)
		buf[0] = '\0';
	for (int c = 0; c < CPU_SETSIZE && n < len; c++) {
		int e = c;
		if (!CPU_ISSET(c, set))
			continue;
		while (e + 1 < CPU_SETSIZE && CPU_ISSET(e + 1, set))
			e++;
		n += (size_t)snprintf(buf + n, len - n, e > c ? "%s%d-%d" : "%s%d",
				      n ? "," : "", c, e);
		c = e;
	}
}

int cpus_machine(cpu_set_t *online, cpu_set_t *allowed)
{
	char line[4096], err[128];
	FILE *f;

	if (sched_getaffinity(0, sizeof(*allowed), allowed) < 0)
		return -errno;
	f = fopen(ONLINE_PATH, "r");
	if (!f) {
		/* No sysfs (a container): the CPUs we may use are all we know. */
		*online = *allowed;
		return 0;
	}
	if (!fgets(line, sizeof(line), f)) {
		fclose(f);
		return -EIO;
	}
	fclose(f);
	if (cpus_parse_list(line, online, err, sizeof(err)) < 0)
		return -EINVAL;
	return 0;
}

/* The n-th CPU (0-based) of a set, or -1. */
static int nth_cpu(const cpu_set_t *set, unsigned n)
{
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, set) && n-- == 0)
			return c;
	return -1;
}

/* Every CPU of set must be online; else name the first one that is not. */
static int check_online(const cpu_set_t *set, const cpu_set_t *online, char *err, size_t errlen)
{
	char list[256];

	for (int c = 0; c < CPU_SETSIZE; c++) {
		if (!CPU_ISSET(c, set) || CPU_ISSET(c, online))
			continue;
		cpus_format_list(online, list, sizeof(list));
		snprintf(err, errlen, "CPU %d is not on this machine (online: %s)", c, list);
		return -1;
	}
	return 0;
}

int cpus_plan(const char *cores, unsigned workers, bool workers_set, const char *main_core,
	      const cpu_set_t *online, const cpu_set_t *allowed, struct cpu_plan *plan,
	      const char **bad_key, char *err, size_t errlen)
{
	cpu_set_t wset, mset, rest;
	unsigned nlist, nallowed = (unsigned)CPU_COUNT(allowed);

	memset(plan, 0, sizeof(*plan));
	*bad_key = "cores";
	if (cpus_parse_list(cores, &wset, err, errlen) < 0 ||
	    check_online(&wset, online, err, errlen) < 0)
		return -1;
	*bad_key = "main_core";
	if (cpus_parse_list(main_core, &mset, err, errlen) < 0 ||
	    check_online(&mset, online, err, errlen) < 0)
		return -1;
	if (CPU_COUNT(&mset) > 1) {
		snprintf(err, errlen, "must be one CPU, not '%s'", main_core);
		return -1;
	}
	*bad_key = "cores";
	nlist = (unsigned)CPU_COUNT(&wset);
	if (nlist) {
		if (nlist > CPUS_MAX_WORKERS) {
			snprintf(err, errlen, "%u CPUs listed; at most %d workers",
				 nlist, CPUS_MAX_WORKERS);
			return -1;
		}
		if (workers_set && workers != nlist) {
			snprintf(err, errlen, "lists %u CPUs but workers = %u "
				 "(drop workers: the list decides)", nlist, workers);
			return -1;
		}
		workers = nlist;
		for (unsigned w = 0; w < workers; w++)
			plan->worker_cpu[w] = nth_cpu(&wset, w);
	}
	if (workers == 0 || workers > CPUS_MAX_WORKERS) {
		*bad_key = "workers";
		snprintf(err, errlen, "must be 1..%d", CPUS_MAX_WORKERS);
		return -1;
	}
	if (nallowed == 0) {
		snprintf(err, errlen, "this process may run on no CPU at all");
		return -1;
	}
	plan->workers = workers;

	/* The main lcore: the one named, else the first CPU we may run on
	 * that no worker uses (a housekeeping CPU), else the first we may. */
	if (CPU_COUNT(&mset)) {
		plan->main_cpu = nth_cpu(&mset, 0);
		if (CPU_ISSET(plan->main_cpu, &wset)) {
			*bad_key = "main_core";
			snprintf(err, errlen, "CPU %d is also in lcores.cores", plan->main_cpu);
			return -1;
		}
	} else {
		CPU_XOR(&rest, allowed, &wset);
		CPU_AND(&rest, &rest, allowed);
		plan->main_cpu = CPU_COUNT(&rest) ? nth_cpu(&rest, 0) : nth_cpu(allowed, 0);
	}
	if (nlist == 0) {
		/* Workers on the CPUs we may run on after the main lcore's,
		 * round robin; with a single CPU, everything shares it. */
		CPU_ZERO(&mset);
		CPU_SET(plan->main_cpu, &mset);
		CPU_XOR(&rest, allowed, &mset);
		CPU_AND(&rest, &rest, allowed);
		for (unsigned w = 0; w < workers; w++)
			plan->worker_cpu[w] = CPU_COUNT(&rest)
				? nth_cpu(&rest, w % (unsigned)CPU_COUNT(&rest))
				: plan->main_cpu;
	}
	for (unsigned w = 0; w < workers; w++)
		if (plan->worker_cpu[w] == plan->main_cpu)
			plan->main_shared = true;
	return 0;
}
