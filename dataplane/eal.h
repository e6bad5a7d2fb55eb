/*
 * eal.h - build EAL's argument vector from the configuration and start EAL.
 *
 * The vector is made of: the program name, an --lcores map (main lcore 0 and
 * one lcore per worker, spread over the CPUs we may run on), the vdev or PCI
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

/* Fill av. ncpus is how many CPUs to map lcores onto. 0 or -E2BIG. */
int eal_build_argv(struct eal_argv *av, const char *progname,
		   const struct dp_conf *conf, unsigned ncpus);

/* rte_eal_init with a vector built into av, which must outlive EAL (it may
 * keep pointers into it). Logs the vector. 0 or -1. */
int eal_start(struct eal_argv *av, const char *progname, const struct dp_conf *conf);

#endif
