/*
 * eal.c - EAL argument vector and start-up. See eal.h.
 */
#include "dataplane/eal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_eal.h>
#include <rte_errno.h>

#include "common/log.h"

static int push(struct eal_argv *av, size_t *used, const char *s)
{
	size_t len = strlen(s) + 1;
	if (av->argc >= EAL_MAX_ARGS || *used + len > sizeof(av->buf))
		return -E2BIG;
	memcpy(av->buf + *used, s, len);
	av->argv[av->argc++] = av->buf + *used;
	av->argv[av->argc] = NULL;
	*used += len;
	return 0;
}

int eal_build_argv(struct eal_argv *av, const char *progname, const struct dp_conf *conf)
{
	char tmp[512], args[sizeof(conf->eal.args)], *save = NULL, *tok;
	const struct cpu_plan *p = &conf->plan;
	size_t used = 0, n = 0;
	int r = 0;

	memset(av, 0, sizeof(*av));
	if (p->workers == 0 || p->workers != conf->workers)
		return -EINVAL;
	r |= push(av, &used, progname);

	/* lcore 0 is the main lcore; lcore w runs worker w-1; each on its CPU. */
	n = (size_t)snprintf(tmp, sizeof(tmp), "0@%d", p->main_cpu);
	for (unsigned w = 1; w <= p->workers && n < sizeof(tmp); w++)
		n += (size_t)snprintf(tmp + n, sizeof(tmp) - n, ",%u@%d", w, p->worker_cpu[w - 1]);
	if (n >= sizeof(tmp))
		return -E2BIG;
	r |= push(av, &used, "--lcores");
	r |= push(av, &used, tmp);

	if (conf->eal.vdev[0]) {
		r |= push(av, &used, "--vdev");
		r |= push(av, &used, conf->eal.vdev);
	}
	if (conf->eal.pci[0]) {
		r |= push(av, &used, "-a");
		r |= push(av, &used, conf->eal.pci);
	}
	if (conf->eal.file_prefix[0]) {
		r |= push(av, &used, "--file-prefix");
		r |= push(av, &used, conf->eal.file_prefix);
	}
	snprintf(args, sizeof(args), "%s", conf->eal.args);
	for (tok = strtok_r(args, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save))
		r |= push(av, &used, tok);
	return r ? -E2BIG : 0;
}

int eal_start(struct eal_argv *av, const char *progname, const struct dp_conf *conf)
{
	char line[EAL_ARG_BYTES + EAL_MAX_ARGS];
	size_t n = 0;
	int r = eal_build_argv(av, progname, conf);

	if (r == -EINVAL) {
		log_err("EAL: no CPU plan for %u workers (config_check resolves it)", conf->workers);
		return -1;
	}
	if (r < 0) {
		log_err("EAL arguments too long (more than %d words or %d bytes)",
			EAL_MAX_ARGS, EAL_ARG_BYTES);
		return -1;
	}
	if (conf->plan.main_shared)
		log_warn("the main lcore shares CPU %d with a worker (too few CPUs)",
			 conf->plan.main_cpu);
	line[0] = '\0';
	for (int i = 0; i < av->argc && n < sizeof(line); i++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s", i ? " " : "", av->argv[i]);
	log_info("starting EAL: %s", line);
	if (rte_eal_init(av->argc, av->argv) < 0) {
		log_err("EAL init failed: %s", rte_strerror(rte_errno));
		return -1;
	}
	return 0;
}
