/*
 * drain_state.h - a maintenance drain that outlives a restart.
 *
 * `sluicectl drain` writes the file DIR/drained (DIR: [queue] dir, the
 * spool, which an upgrade keeps) holding the time of the drain (unix
 * seconds, one line); `undrain` removes it. sluiced reads it at start-up,
 * before the SMTP service accepts anything: a box restarted while drained
 * comes up refusing new sessions (421 4.3.2), says so in the log and in
 * `status`, and stays out of the MX/ECMP set (the hook is not run again:
 * it already ran with "drain"). Written atomically (a temporary file,
 * fsync, rename, fsync of the directory), so a crash leaves the old state
 * or the new one, never a torn file.
 */
#ifndef SLUICE_DRAIN_STATE_H
#define SLUICE_DRAIN_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DRAIN_STATE_FILE "drained"

/* Record the drain (on: since since_s) or its end. 0, or -1 with err. */
int drain_state_save(const char *dir, bool on, uint64_t since_s, char *err, size_t errlen);
/* 1 drained (*since_s: when; 0 if the file says nothing readable), 0 not,
 * -1 with err (the file is there but cannot be read: treated as drained
 * by the caller, the safe side). */
int drain_state_load(const char *dir, uint64_t *since_s, char *err, size_t errlen);

#endif
