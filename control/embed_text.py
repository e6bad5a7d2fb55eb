#!/usr/bin/env python3
"""embed_text.py IN OUT SYMBOL - write a C file defining `const char SYMBOL[]`
holding IN's bytes, so a shipped text file can be compiled into a binary."""
import sys

src, dst, sym = sys.argv[1:4]
data = open(src, "rb").read()
with open(dst, "w") as f:
    f.write("/* Generated from %s by embed_text.py: do not edit. */\n" % src.split("/")[-1])
    f.write("const char %s[] =\n" % sym)
    for line in data.split(b"\n"):
        esc = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "\\%03o" % ord(c)
                      for c in line.decode("latin-1"))
        f.write('\t"%s\\n"\n' % esc)
    f.write(";\n")
