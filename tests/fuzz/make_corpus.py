#!/usr/bin/env python3
"""Write seed inputs for fuzz_net_input into corpus/: record streams
([op][len lo][len hi][frame]) of a SYN with options, an ACK with data, a FIN,
a RST, and out-of-order data; UDP datagrams to the echo, to closed ports, with
a zero checksum, with bad lengths; ICMP "fragmentation needed" quoting
TCP segments of ours; IPv6: echo with the NA that resolves the peer, an
NS for our address, an RA, TCP with a "packet too big", extension
headers. Checksums and addresses are fixed up by the
harness (op bit 0), so only the TCP or UDP part matters here."""
import os
import struct

def frame(sport, dport, seq, ack, flags, opts=b"", data=b"", wnd=65535):
    while len(opts) % 4:
        opts += b"\x01"
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack,
                      ((20 + len(opts)) // 4) << 4, flags, wnd, 0, 0) + opts + data
    ip = b"\x45\x00" + struct.pack("!H", 20 + len(tcp)) + b"\x00" * 16
    eth = b"\x00" * 12 + b"\x08\x00"
    return eth + ip + tcp

def udp_frame(sport, dport, data=b"", cksum=1, ulen=None):
    """A UDP frame; the harness fixes the checksum unless it is 0."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(data) if ulen is None else ulen,
                      cksum) + data
    ip = b"\x45\x00" + struct.pack("!H", 20 + len(udp)) + b"\x00" * 5 + b"\x11" + b"\x00" * 10
    eth = b"\x00" * 12 + b"\x08\x00"
    return eth + ip + udp

def icmp_frag_needed(mtu, sport, dport, seq, qlen=1500):
    """ICMP type 3 code 4 quoting a TCP segment of ours (the harness fixes
    the checksums and the quoted addresses)."""
    quote = b"\x45\x00" + struct.pack("!H", qlen) + b"\x00" * 5 + b"\x06" + b"\x00" * 10
    quote += struct.pack("!HHI", sport, dport, seq)
    icmp = struct.pack("!BBHHH", 3, 4, 0, 0, mtu) + quote
    ip = b"\x45\x00" + struct.pack("!H", 20 + len(icmp)) + b"\x00" * 5 + b"\x01" + b"\x00" * 10
    return b"\x00" * 12 + b"\x08\x00" + ip + icmp

OUR6 = bytes([0xfd, 0, 0, 0x5c] + [0] * 11 + [2])
SN6 = bytes([0xff, 2] + [0] * 9 + [1, 0xff, 0, 0, 2])       # our solicited-node group
ALL6 = bytes([0xff, 2] + [0] * 13 + [1])
def v6(nh, payload, hops=64, dst=OUR6, ext=b""):
    """An IPv6 frame (the harness fixes addresses and the ICMPv6/TCP
    checksum; the hop limit is kept)."""
    ip = struct.pack("!IHBB", 6 << 28, len(ext) + len(payload), nh, hops) + b"\x00" * 16 + dst
    return b"\x00" * 12 + b"\x86\xdd" + ip + ext + payload

def icmp6(t, code, body):
    return bytes([t, code, 0, 0]) + body

PEER_MAC = bytes([2, 0, 0, 0, 0, 9])
def tcp6(sport, dport, seq, ack, flags, opts=b"", data=b""):
    return frame(sport, dport, seq, ack, flags, opts, data)[34:]

def rec(op, f):
    return bytes([op]) + struct.pack("<H", len(f)) + f

SYN_OPTS = (b"\x02\x04\x05\xb4" + b"\x04\x02" + b"\x08\x0a" + struct.pack("!II", 100, 0)
            + b"\x01\x03\x03\x07")
seeds = {
    "v6_echo": rec(1, v6(58, icmp6(128, 0, b"\x12\x34\x00\x01" + b"ping6")))
        + rec(1, v6(58, icmp6(136, 0, struct.pack("!I", 0x60000000)
              + bytes([0xfd, 0, 0, 0x5c] + [0] * 11 + [9]) + b"\x02\x01" + PEER_MAC), hops=255)),
    "v6_ns": rec(1, v6(58, icmp6(135, 0, b"\x00" * 4 + OUR6 + b"\x01\x01" + PEER_MAC),
                       hops=255, dst=SN6)),
    "v6_ra": rec(1, v6(58, icmp6(134, 0, bytes([64, 0]) + struct.pack("!HII", 1800, 0, 0)
                       + b"\x01\x01" + PEER_MAC), hops=255, dst=ALL6)),
    "v6_tcp": rec(1, v6(6, tcp6(40000, 25, 1000, 0, 0x02, SYN_OPTS)))
        + rec(3, v6(6, tcp6(40000, 25, 1001, 0, 0x10, data=b"HELO x\r\n")))
        + rec(1, v6(58, icmp6(2, 0, struct.pack("!I", 1280)
              + struct.pack("!IHBB", 6 << 28, 1452, 6, 64) + b"\x00" * 32
              + struct.pack("!HHI", 25, 40000, 0)))),
    "v6_ext": rec(1, v6(58, icmp6(128, 0, b"\x00\x01\x00\x02"),
                        ext=bytes([60, 0, 1, 4, 0, 0, 0, 0]), dst=OUR6)[:14] +
                  struct.pack("!IHBB", 6 << 28, 16, 0, 64) + b"\x00" * 16 + OUR6
                  + bytes([58, 0, 1, 4, 0, 0, 0, 0]) + icmp6(128, 0, b"\x00\x01\x00\x02")),
    "syn": rec(1, frame(40000, 25, 1000, 0, 0x02, SYN_OPTS)),
    "syn_ack_data_fin": rec(1, frame(40000, 25, 1000, 0, 0x02, SYN_OPTS))
        + rec(3, frame(40000, 25, 1001, 0, 0x10, data=b"HELO x\r\n"))
        + rec(1, frame(40000, 25, 1009, 0, 0x11)),
    "rst": rec(1, frame(40000, 25, 1000, 0, 0x02)) + rec(1, frame(40000, 25, 1001, 0, 0x04)),
    "ooo": rec(1, frame(40000, 25, 1000, 0, 0x02))
        + rec(1, frame(40000, 25, 1101, 0, 0x10, data=b"B" * 50))
        + rec(1, frame(40000, 25, 1001, 0, 0x10, data=b"A" * 100)),
    "synack_active": rec(1, frame(2525, 32768, 5000, 0, 0x12, SYN_OPTS)),
    "timers": rec(1, frame(40000, 25, 1000, 0, 0x02)) + rec(0xFF, b""),
    "udp_query": rec(1, udp_frame(40000, 53, b"\x12\x34\x01\x00" + b"\x00" * 8))
        + rec(1, udp_frame(5353, 32769, b"answer")),
    "udp_closed_ports": rec(1, udp_frame(40000, 9, b"x")) + rec(3, udp_frame(40000, 10, b"y"))
        + rec(0x41, udp_frame(40000, 11, b"z")),
    "udp_zero_cksum_reopen": rec(1, udp_frame(40000, 53, b"no sum", cksum=0))
        + rec(1, udp_frame(40000, 53, b"Close")),
    "icmp_frag_needed": rec(1, frame(40000, 25, 1000, 0, 0x02, SYN_OPTS))
        + rec(1, frame(40000, 25, 1001, 0, 0x10, data=b"HELO x\r\n"))
        + rec(1, icmp_frag_needed(1280, 25, 40000, 0))
        + rec(1, icmp_frag_needed(0, 25, 40000, 1))
        + rec(1, icmp_frag_needed(300, 32768, 2525, 12345, 600)),
    "udp_bad_len": rec(1, udp_frame(40000, 53, b"abcd", ulen=7))
        + rec(1, udp_frame(40000, 53, b"abcd", ulen=200)),
}
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
