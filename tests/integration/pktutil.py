"""pktutil.py - small helpers for the test tools that craft raw frames."""
import struct


def csum(b):
    """The Internet checksum (RFC 1071) of bytes b."""
    if len(b) % 2:
        b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16:
        t = (t & 0xFFFF) + (t >> 16)
    return ~t & 0xFFFF
