/*
 * eal.h - build EAL's argument vector from the configuration and start EAL.
 *
 * The vector is made of: the program name, an --lcores map (lcore 0, the
 * main one, and lcores 1..workers, each pinned to its real CPU ID from the
 * configuration's struct cpu_plan, see cpus.h), the vdev or PCI
 * device, the file prefix, and the operator's extra arguments. Building it
 * is separate from using it so the tests can check it without EAL.
 */
#ifndef SLUICE_EAL_H
#define SLUICE_EAL_H

#include "dataplane/dataplane.h"

#define EAL_MAX_ARGS 64
#define EAL_ARG_BYTES 2048

struct eal_argv {
	int argc;
	char *argv[EAL_MAX_ARGS + 1];
	char buf[EAL_ARG_BYTES];	/* backing store of the strings */
};

/* Fill av from conf (conf->plan must be resolved). 0, -EINVAL (no plan)
 * or -E2BIG. */
int eal_build_argv(struct eal_argv *av, const char *progname, const struct dp_conf *conf);

/* rte_eal_init with a vector built into av, which must outlive EAL (it may
 * keep pointers into it). Logs the vector. 0 or -1. */
int eal_start(struct eal_argv *av, const char *progname, const struct dp_conf *conf);

#endif
