/*
 * dns_responder.h - an in-process DNS server behind the resolver's socket
 * seam (control/dns_sock.h), for the unit tests and the fuzz harness.
 *
 * It implements dns_sock_ops like dpsock does (non-blocking, -errno,
 * readiness as events from poll) and plays the DNS servers at the other
 * end: every query c-ares sends is decoded (the question name with
 * ares_expand_name) and answered from canned zone data, over UDP or TCP
 * (2-byte length framing), as an authoritative server would: CNAME chains
 * followed, NXDOMAIN or NODATA with the zone's SOA in the authority
 * section, TC set (and the records left out) when the UDP answer is larger
 * than the query's EDNS0 payload (512 without EDNS0) or the name is marked
 * for truncation. c-ares runs for real on the other side; only the wire is
 * in-process. The answers are written by a small encoder here (test code).
 */
#ifndef SLUICE_TEST_DNS_RESPONDER_H
#define SLUICE_TEST_DNS_RESPONDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control/dns_sock.h"

enum dnsr_mode {
	DNSR_ANSWER,	/* answers over UDP and TCP */
	DNSR_SILENT,	/* takes queries, never answers */
	DNSR_HOLD,	/* answers kept until dnsr_release() */
	DNSR_NO_TCP,	/* answers UDP; TCP connections fail */
};

/* DNS types and rcodes the tests name */
enum { DNSR_A = 1, DNSR_NS = 2, DNSR_CNAME = 5, DNSR_SOA = 6, DNSR_PTR = 12, DNSR_MX = 15,
       DNSR_AAAA = 28 };
enum { DNSR_NOERROR = 0, DNSR_FORMERR = 1, DNSR_SERVFAIL = 2, DNSR_NXDOMAIN = 3,
       DNSR_REFUSED = 5 };

struct dnsr;

struct dnsr *dnsr_create(void);
void dnsr_destroy(struct dnsr *z);
/* The seam to hand dns_create_ops (ctx = z). */
const struct dns_sock_ops *dnsr_ops(struct dnsr *z);

/* A server at "ip[:port]" (port 53 by default). Returns its index. */
int dnsr_server(struct dnsr *z, const char *ipport, enum dnsr_mode mode);
void dnsr_set_mode(struct dnsr *z, int server, enum dnsr_mode mode);
/* Deliver the answers a DNSR_HOLD server kept. */
void dnsr_release(struct dnsr *z, int server);

/*
 * One record. rdata as text: A "192.0.2.1"; MX "10 mx.example" ("0 ." is
 * the null MX); CNAME, PTR, NS "target.example"; SOA "mname rname serial
 * refresh retry expire minimum".
 */
void dnsr_rr(struct dnsr *z, const char *owner, int type, uint32_t ttl, const char *rdata);
/* Answer (name, type; 0: any type) with this rcode and no records. */
void dnsr_rcode(struct dnsr *z, const char *name, int type, int rcode);
/* UDP answers for name carry TC and no records. */
void dnsr_truncate(struct dnsr *z, const char *name);
/* Every UDP (tcp: TCP) reply to a query for (name, type) (NULL, 0: any)
 * is these bytes, with the query's ID written into the first two
 * (fuzzing). len 0 turns it off. */
void dnsr_raw(struct dnsr *z, const char *name, int type, bool tcp, const uint8_t *reply,
	      size_t len);
/* The next socket opens fail with -EMFILE (count of them). */
void dnsr_fail_opens(struct dnsr *z, unsigned count);
/* Like a dpsock's few message slots: at most n UDP sends are taken between
 * two polls, the rest get -EAGAIN (0: no limit). How many were refused. */
void dnsr_udp_slots(struct dnsr *z, unsigned n);
unsigned dnsr_udp_refused(const struct dnsr *z);

/* Queries received for (name, type; 0: any) over proto (SOCK_DGRAM,
 * SOCK_STREAM; 0: either) at server (-1: any). */
unsigned dnsr_queries(const struct dnsr *z, const char *name, int type, int proto, int server);
/* Sockets open now. */
unsigned dnsr_sockets_open(const struct dnsr *z);

#endif
