/*
 * gen_pkt.h - Pktgen-DPDK command files (.pkt) for `sluice-gen flood`: the
 * parser, the per-port state the commands set, and the frames that state
 * describes.
 *
 * The same files drive Pktgen-DPDK in a lab with real NICs (bench/pktgen/
 * README.md); here, where Pktgen is not packaged, sluice-gen executes the
 * subset of its CLI they use, with Pktgen's syntax and meaning:
 *
 *   set <ports> count|size|rate|burst|sport|dport <n>
 *   set <ports> type ipv4|arp            set <ports> proto tcp|udp|icmp
 *   set <ports> src|dst mac <mac>        set <ports> src ip <a.b.c.d/nn>
 *   set <ports> dst ip <a.b.c.d>
 *   set <ports> rnd <idx> <offset> <mask>   32-char mask of 0 1 . X over
 *                                         the 32-bit word at offset (0/1:
 *                                         forced, .: kept, X: random)
 *   range <ports> src|dst ip|port start|min|max|inc <v>
 *   range <ports> src|dst mac start <mac>
 *   range <ports> size start|min|max|inc <n>     range <ports> proto tcp|udp
 *   enable|disable <ports> range|random
 *   enable|disable mac_from_arp          (dst MAC from ARP for dst ip)
 *   start <ports>    stop <ports>    delay <ms>    sleep <s>
 *   page <any>, enable|disable screen    (display only: ignored)
 *
 * <ports> is a port list ("0", "0-1", "all"); sluice-gen has one port
 * (0): commands naming only other ports are parsed and ignored. Anything
 * else is an error, with its line: a profile never half-runs here. Sizes
 * are Pktgen's (frame plus 4 octets of FCS; 64..1522); `rate` is a
 * percentage of the line rate, which sluice-gen takes from --line-rate.
 * Pktgen sends TCP segments with ACK set; the profiles make SYNs with an
 * rnd mask over the flags octet, as they would for Pktgen.
 *
 * Pure: no EAL; frames are built into a caller's buffer.
 */
#ifndef SLUICE_GEN_PKT_H
#define SLUICE_GEN_PKT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench/gen/gen_dist.h"

#define GEN_PKT_MAX_CMDS 512
#define GEN_PKT_RND_MAX 8		/* Pktgen's random mask slots */
#define GEN_PKT_MIN_SIZE 64
#define GEN_PKT_MAX_SIZE 1522

enum gen_pkt_op {
	GPO_SET = 0, GPO_RANGE, GPO_ENABLE, GPO_DISABLE, GPO_START, GPO_STOP, GPO_DELAY,
};

enum gen_pkt_field {
	GPF_COUNT = 0, GPF_SIZE, GPF_RATE, GPF_BURST, GPF_SPORT, GPF_DPORT,
	GPF_TYPE, GPF_PROTO, GPF_SRC_MAC, GPF_DST_MAC, GPF_SRC_IP, GPF_DST_IP, GPF_RND,
	GPF_RANGE, GPF_RANDOM, GPF_MACARP,	/* enable/disable features */
};

enum gen_pkt_which { GPW_START = 0, GPW_MIN, GPW_MAX, GPW_INC };
enum gen_pkt_type { GPT_IPV4 = 0, GPT_ARP };
enum gen_pkt_proto { GPP_TCP = 0, GPP_UDP, GPP_ICMP };

struct gen_pkt_cmd {
	uint8_t op;			/* enum gen_pkt_op */
	uint8_t field;			/* enum gen_pkt_field */
	uint8_t which;			/* range: enum gen_pkt_which */
	bool port0;			/* the port list includes port 0 */
	unsigned line;
	uint64_t num;			/* numbers, ms for delay, type/proto enums */
	uint32_t ip;			/* host order */
	uint8_t prefix;			/* src ip /nn */
	uint8_t mac[6];
	uint8_t rnd_idx;
	uint16_t rnd_off;
	uint32_t rnd_and, rnd_or, rnd_x;	/* word = (word & and) | or | (rand & x) */
};

struct gen_pkt_prog {
	unsigned n;
	struct gen_pkt_cmd cmd[GEN_PKT_MAX_CMDS];
};

/* Parse a whole file's text. 0, or -1 with err ("line N: ..."). */
int gen_pkt_parse(struct gen_pkt_prog *p, const char *text, char *err, size_t errlen);
/* Read and parse a file (start-up). 0 or -1 with err. */
int gen_pkt_load(struct gen_pkt_prog *p, const char *path, char *err, size_t errlen);

struct gen_pkt_range {
	uint32_t start, min, max, inc, cur;
};

struct gen_pkt_rnd {
	bool on;
	uint16_t off;
	uint32_t and_mask, or_mask, x_mask;
};

/* What port 0 sends: Pktgen's "single" settings, its range, its masks. */
struct gen_pkt_port {
	bool sending;
	bool range_on, random_on;
	bool mac_from_arp;		/* dst MAC: the one ARP gives for dst ip */
	uint8_t type, proto, range_proto;
	uint64_t count;			/* frames to send per start (0: no end) */
	uint64_t sent;			/* since the last start */
	uint32_t size;
	double rate;			/* percent of the line rate */
	unsigned burst;
	uint16_t sport, dport;
	uint8_t src_mac[6], dst_mac[6];
	uint8_t range_src_mac[6], range_dst_mac[6];
	bool range_src_mac_set, range_dst_mac_set;
	uint32_t src_ip, dst_ip;	/* host order */
	uint8_t src_prefix;
	struct gen_pkt_range r_src_ip, r_dst_ip, r_sport, r_dport, r_size;
	struct gen_pkt_rnd rnd[GEN_PKT_RND_MAX];
};

/* Pktgen's defaults: 64-octet UDP/IPv4 at 100%, burst 32, ports 1234 and
 * 5678, count 0, ranges as Pktgen starts them, no masks. */
void gen_pkt_port_default(struct gen_pkt_port *pp);

/* Apply a set/range/enable/disable/start/stop command to the port (a
 * command not for port 0 changes nothing). Delay is the caller's. */
void gen_pkt_apply(struct gen_pkt_port *pp, const struct gen_pkt_cmd *c);

/* The next frame (without FCS) into buf (cap >= GEN_PKT_MAX_SIZE); ranges
 * advance, rnd masks apply, then the IPv4 and TCP/UDP/ICMP checksums are
 * computed, as a NIC's checksum offload would - except a checksum that a
 * mask covers, which stays as the mask made it (that is how a profile
 * sends bad checksums). Returns its length. */
size_t gen_pkt_frame(struct gen_pkt_port *pp, uint8_t *buf, size_t cap, struct gen_rng *r);

#endif
