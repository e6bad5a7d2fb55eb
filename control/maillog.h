/*
 * maillog.h - the mail log: one line per mail event in Postfix's shape, so
 * pflogsumm (run with --syslog-name=sluice) and operators' habits work.
 *
 *   ID: client=name[addr]                                  (sluice/smtpd)
 *   ID: from=<s>, size=N, nrcpt=N (queue active)           (sluice/qmgr)
 *   ID: to=<r>, relay=host[ip]:port, delay=T, delays=a/b/c/d, dsn=X.Y.Z,
 *       status=sent|deferred|bounced|expired (reply)       (sluice/smtp)
 *   ID: sender non-delivery notification: NEWID             (sluice/bounce)
 *   ID: removed                                            (sluice/qmgr, or
 *                                                           sluice/postsuper
 *                                                           for the operator's
 *                                                           delete)
 *   NOQUEUE: reject: RCPT from name[addr]: 554 5.7.1 ...; from=<s> to=<r>
 *       proto=ESMTP helo=<h>                               (sluice/smtpd: an
 *                                                           lcore's refusal,
 *                                                           handed over in an
 *                                                           ask slot, ask.h)
 *
 * Where (`[log] mail`): "syslog" - to the local syslog socket (/dev/log;
 * "syslog:PATH" names another), RFC 3164 lines of facility mail, tag
 * sluice/PROGRAM[pid], as Postfix's daemons log; a path
 * - appended to that file, each line stamped as syslog would
 * ("Nov 30 10:20:01 host sluice/smtp[123]: ..."); "" (the default) - into
 * sluiced's own log at level info, as before.
 *
 * Written by control-side threads only (the control plane's scheduler, the
 * queue command thread), never by a worker lcore: one write(2) or send(2)
 * per line, so lines of several threads never interleave. The sink is set
 * once by maillog_open() before those threads start and only read after
 * (maillog_reopen changes the file under the descriptor, not the sink).
 * A line that cannot be written is counted (maillog_lost), not retried.
 */
#ifndef SLUICE_MAILLOG_H
#define SLUICE_MAILLOG_H

#include <stdint.h>

enum maillog_prog { ML_SMTPD, ML_QMGR, ML_SMTP, ML_BOUNCE, ML_POSTSUPER };

/* Open the sink (see above); host names the machine in file lines. 0, or
 * -1 with err (the file cannot be opened for appending). */
int maillog_open(const char *where, const char *host, char *err, unsigned long errlen);
void maillog_close(void);

/* After the file was rotated away (logrotate, newsyslog): open the file
 * sink's path again and put it on the same descriptor with dup2(2), in one
 * step, so a thread writing meanwhile writes its whole line to the old file
 * or to the new one. Called on every reload (sluicectl reload, SIGHUP), as
 * `postfix reload` serves logrotate's postrotate. 0 (nothing to do for the
 * other sinks), or -1 with err (the old file stays in use). */
int maillog_reopen(char *err, unsigned long errlen);

void maillog(enum maillog_prog prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Lines that could not be written. */
uint64_t maillog_lost(void);

#endif
