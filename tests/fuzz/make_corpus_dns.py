#!/usr/bin/env python3
"""Write seed inputs for fuzz_dns_reply into corpus_dns/: [mode][split][udp
reply][tcp reply] with well-formed replies for the questions the harness
asks (fuzz.example A/MX, its PTR name, a route lookup): answer sets,
NXDOMAIN and NODATA with an SOA, null MX, SERVFAIL, CNAME chains,
compression pointers, an OPT record, and a truncated UDP reply followed by
the full one over TCP. The harness writes the query ID into each reply."""
import os
import struct

A, NS, CNAME, SOA, PTR, MX, OPT = 1, 2, 5, 6, 12, 15, 41
NAME = "fuzz.example"
PTRNAME = "9.2.0.192.in-addr.arpa"


def wire(name):
    out = b""
    for label in name.strip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def rr(owner, rtype, ttl, rdata, compress=False):
    o = b"\xc0\x0c" if compress else wire(owner)
    return o + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata


def soa(zone, ttl, minimum):
    rd = wire("ns." + zone) + wire("hostmaster." + zone) + struct.pack("!IIIII", 1, 3600, 600, 86400, minimum)
    return rr(zone, SOA, ttl, rd)


def reply(qname, qtype, answers=(), authority=(), additional=(), rcode=0, tc=False):
    flags = 0x8180 | rcode | (0x0200 if tc else 0)
    h = struct.pack("!HHHHHH", 0, flags, 1, len(answers), len(authority), len(additional))
    q = wire(qname) + struct.pack("!HH", qtype, 1)
    return h + q + b"".join(answers) + b"".join(authority) + b"".join(additional)


def seed(mode, udp, tcp=b""):
    n = len(udp) + len(tcp)
    split = 255
    if tcp:
        split = -(-len(udp) * 255 // n)
        while n * split // 255 > len(udp):
            split -= 1
        assert n * split // 255 == len(udp), "cannot split"
    return bytes([mode, split]) + udp + tcp


def mx(pref, host):
    return struct.pack("!H", pref) + wire(host)


mx_set = [rr(NAME, MX, 300, mx(10, "mx1.fuzz.example"), True),
          rr(NAME, MX, 200, mx(10, "mx2.fuzz.example"), True),
          rr(NAME, MX, 300, mx(20, "mx3.fuzz.example"), True)]
opt = b"\x00" + struct.pack("!HHIH", OPT, 1232, 0, 0)
seeds = {
    "a_two": seed(0, reply(NAME, A, [rr(NAME, A, 300, bytes([192, 0, 2, 1]), True),
                                     rr(NAME, A, 60, bytes([192, 0, 2, 2]))])),
    "a_cname": seed(0, reply(NAME, A, [rr(NAME, CNAME, 30, wire("mx1.fuzz.example")),
                                       rr("mx1.fuzz.example", A, 300, bytes([192, 0, 2, 1]))])),
    "a_nxdomain": seed(0, reply(NAME, A, authority=[soa("example", 3600, 300)], rcode=3)),
    "a_nodata": seed(0, reply(NAME, A, authority=[soa("fuzz.example", 100, 900)])),
    "a_tc_tcp": seed(0, reply(NAME, A, tc=True),
                     reply(NAME, A, [rr(NAME, A, 300, bytes([192, 0, 2, 7]), True)])),
    "a_opt": seed(0, reply(NAME, A, [rr(NAME, A, 0, bytes([192, 0, 2, 3]), True)], additional=[opt])),
    "mx_set": seed(1, reply(NAME, MX, mx_set)),
    "mx_null": seed(1, reply(NAME, MX, [rr(NAME, MX, 300, mx(0, "."), True)])),
    "mx_nxdomain": seed(1, reply(NAME, MX, authority=[soa("example", 86400, 7200)], rcode=3)),
    "mx_servfail": seed(1, reply(NAME, MX, rcode=2)),
    "mx_tc_tcp": seed(1, reply(NAME, MX, tc=True), reply(NAME, MX, mx_set)),
    "mx_cname": seed(1, reply(NAME, MX, [rr(NAME, CNAME, 600, wire("mid.example")),
                                         rr("mid.example", CNAME, 30, wire("real.example")),
                                         rr("real.example", MX, 300, mx(5, "mx1.fuzz.example"))])),
    "ptr": seed(2, reply(PTRNAME, PTR, [rr(PTRNAME, PTR, 300, wire("host.fuzz.example"), True)])),
    "route_mx": seed(3, reply(NAME, MX, mx_set)),
    "route_null": seed(3, reply(NAME, MX, [rr(NAME, MX, 300, mx(0, "."), True)])),
    "route_nodata": seed(3, reply(NAME, MX, authority=[soa("fuzz.example", 100, 60)])),
    "route_self": seed(3, reply(NAME, MX, [rr(NAME, MX, 300, mx(10, "mx3.fuzz.example"), True),
                                           rr(NAME, MX, 300, mx(20, "mx1.fuzz.example"), True)])),
}
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus_dns")
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
