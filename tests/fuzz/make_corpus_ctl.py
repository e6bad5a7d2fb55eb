#!/usr/bin/env python3
"""Write seed inputs for fuzz_ctl_request into corpus_ctl/: [mode][bytes]
with the requests sluicectl sends (every command shape of the harness's
table, UTF-8 and escaped control characters, pipelined lines, "\\r\\n"),
replies as sluiced writes them, and the malformed shapes the server must
refuse (not JSON, wrong members, non-string words, NUL, bad UTF-8, deep
nesting, an unterminated last line). The mode byte varies the piece size,
the clock, the oversized repetition and the half-close (see the harness)."""
import json
import os

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "corpus_ctl")
os.makedirs(out, exist_ok=True)


def req(*words):
    return (json.dumps({"argv": list(words)}, ensure_ascii=False) + "\n").encode()


seeds = {
    "echo": (0x40, req("echo", "a", "b")),
    "help": (0x41, req("help") + req("help", "route") + req("help", "route", "set")),
    "later_then_echo": (0x42, req("later") + req("echo", "next")),
    "big": (0x43, req("big", "300000")),
    "family": (0x44, req("route", "set", "example.com", "[192.0.2.1]:25 tls=verify")
               + req("route") + req("route", "frob") + req("queue") + req("queue", "list")),
    "fail_usage": (0x45, req("fail") + req("fail", "why") + req("fail", "a", "b")),
    "utf8": (0x46, req("echo", "bücher.例え.jp", "😀", "tab\there\x01\x1b[2J\"\\")),
    "crlf_pipelined": (0x0f, b'{"argv":["echo","1"]}\r\n{"argv":["echo","2"]}\r\n'),
    "unterminated": (0x40, b'{"argv":["echo","last"]}'),
    "slow_partial": (0x10, b'{"argv":["ec'),
    "oversized": (0x20, b"x" * 64),
    "not_json": (0x47, b"ping\n\n{\n[1,2]\n\"s\"\n"),
    "wrong_shape": (0x48, b'{"argv":[]}\n{"argv":"x"}\n{"argv":[1]}\n{"argv":["a"],"b":1}\n'
                    b'{"argv":["a"],"argv":["b"]}\n'),
    "nul_bad_utf8": (0x49, b'{"argv":["a\\u0000b"]}\n{"argv":["\xff\xfe"]}\n'
                     b'{"argv":["\\ud800"]}\n{"argv":["\xc0\xaf"]}\n'),
    "deep": (0x4a, b"[" * 3000 + b"\n"),
    "replies": (0x4b, b'{"ok":true,"result":{"stats":{"net.rx":1}}}\n'
                b'{"ok":false,"error":"no"}\n{"ok":true}\n{"ok":1}\n'),
}
for name, (mode, body) in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(bytes([mode]) + body)
