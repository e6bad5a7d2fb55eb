#!/usr/bin/python3
"""garbage.py IFACE DST_MAC SRC_IP DST_IP - send malformed frames to the
appliance from a raw socket and print, as JSON, how many of each kind went.

Each kind is aimed at one drop counter of the appliance's stack, so the test
can check that every one was seen, counted and survived. Uses only the
standard library (AF_PACKET)."""
import json
import os
import random
import socket
import struct
import sys

from pktutil import csum

iface, dst_mac, src_ip, dst_ip = sys.argv[1:5]
dmac = bytes.fromhex(dst_mac.replace(":", ""))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
smac = s.getsockname()[4][:6]
rng = random.Random(1234)


def eth(payload, etype=0x0800, dst=dmac):
    return dst + smac + struct.pack("!H", etype) + payload


def ip(payload, proto=1, ihl=5, total=None, frag=0x4000, ttl=64, src=src_ip, dst=dst_ip,
       fix=True, opts=b""):
    total = total if total is not None else ihl * 4 + len(payload)
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total, 0, frag, ttl, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst)) + opts
    if fix:
        h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + payload


def echo(data=b"x" * 32, good=True):
    h = struct.pack("!BBHHH", 8, 0, 0, 0x77, 1) + data
    c = csum(h) if good else (csum(h) ^ 0x5555)
    return h[:2] + struct.pack("!H", c) + h[4:]


kinds = {
    # (The kernel refuses to send frames shorter than an Ethernet header, so
    # runts are covered by the unit suite only.)
    "random_bytes": lambda: os.urandom(rng.randint(14, 1500)),
    "random_after_eth_ipv4": lambda: eth(os.urandom(rng.randint(0, 1400))),
    "random_after_eth_arp": lambda: eth(os.urandom(rng.randint(0, 100)), etype=0x0806),
    "eth_header_only": lambda: eth(b""),
    "ip_truncated_header": lambda: eth(ip(echo())[:12]),
    "ip_bad_checksum": lambda: eth(ip(echo(), fix=False)),
    "ip_bogus_total_length": lambda: eth(ip(echo(), total=1400)),
    "ip_total_below_ihl": lambda: eth(ip(echo(), total=8)),
    "ip_bad_ihl": lambda: eth(ip(echo(), ihl=3)),
    "ip_bad_version": lambda: eth(b"\x65" + ip(echo())[1:]),
    "ip_fragment": lambda: eth(ip(echo(), frag=0x2000)),
    "ip_ttl_zero": lambda: eth(ip(echo(), ttl=0)),
    "ip_martian_source": lambda: eth(ip(echo(), src="127.0.0.1")),
    "ip_bad_options": lambda: eth(ip(echo(), ihl=6, opts=b"\x07\x09\x04\x00")),
    "ip_unknown_proto": lambda: eth(ip(b"\0" * 20, proto=47)),
    "icmp_bad_checksum": lambda: eth(ip(echo(good=False))),
    "icmp_truncated": lambda: eth(ip(b"\x08\x00")),
    "arp_truncated": lambda: eth(b"\x00\x01\x08\x00\x06\x04", etype=0x0806),
    "arp_bad_format": lambda: eth(struct.pack("!HHBBH", 1, 0x0800, 8, 4, 1) + b"\0" * 24,
                                  etype=0x0806),
    "vlan": lambda: eth(b"\x00\x01\x08\x00" + ip(echo()), etype=0x8100),
    "ipv6": lambda: eth(b"\x60" + b"\0" * 39, etype=0x86DD),
}
count = int(os.environ.get("GARBAGE_EACH", "50"))
sent = {}
for name, make in kinds.items():
    for _ in range(count):
        s.send(make())
    sent[name] = count
print(json.dumps(sent))
