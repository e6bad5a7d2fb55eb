/*
 * cpus.h - which CPU each lcore runs on.
 *
 * An appliance's boot parameters set aside CPUs for the poll-mode workers
 * (isolcpus=2-5 nohz_full=2-5): the kernel keeps its own work, and every
 * process's default affinity, on the rest (the housekeeping CPUs). The
 * operator names the worker CPUs by their real IDs ([lcores] cores = 2-5);
 * the main lcore (control plane, signals, the control socket) goes on a
 * housekeeping CPU ([lcores] main_core, or the first CPU of our affinity
 * mask that is not a worker's). Without a list, `workers` lcores are put on
 * the CPUs of our affinity mask after the main lcore's, sharing them when
 * there are too few (a test box).
 *
 * Everything here is pure: the machine (online CPUs, our affinity mask) is
 * an input, read by cpus_machine(), so the plan is testable anywhere.
 */
#ifndef SLUICE_CPUS_H
#define SLUICE_CPUS_H

#include <sched.h>
#include <stdbool.h>
#include <stddef.h>

#define CPUS_MAX_WORKERS 16	/* = DP_MAX_WORKERS */

struct cpu_plan {
	int main_cpu;				/* CPU of the main lcore */
	unsigned workers;			/* worker lcores */
	int worker_cpu[CPUS_MAX_WORKERS];	/* CPU of worker w */
	bool main_shared;			/* the main lcore shares a worker's CPU */
};

/* The machine: CPUs online, and the CPUs this process may run on. 0 or -errno. */
int cpus_machine(cpu_set_t *online, cpu_set_t *allowed);

/* Parse a CPU list such as "2-5,8,10-11" (IDs < CPU_SETSIZE, ascending
 * ranges). An empty string is an empty set. 0, or -1 with err filled. */
int cpus_parse_list(const char *s, cpu_set_t *out, char *err, size_t errlen);

/* Write a set as a CPU list ("0-3,6"); "" when empty. */
void cpus_format_list(const cpu_set_t *set, char *buf, size_t len);

/*
 * Decide the plan. cores: the operator's worker CPU list ("" = none);
 * workers: the worker count (used when cores is empty; when cores is given
 * and workers_set, they must agree); main_core: "" (choose) or one CPU.
 * Every named CPU must be online. 0, or -1 with err filled and *bad_key
 * naming the [lcores] key at fault ("cores", "main_core" or "workers").
 */
int cpus_plan(const char *cores, unsigned workers, bool workers_set, const char *main_core,
	      const cpu_set_t *online, const cpu_set_t *allowed, struct cpu_plan *plan,
	      const char **bad_key, char *err, size_t errlen);

#endif
