#!/usr/bin/env python3
"""Write seed inputs for fuzz_users into corpus_users/: users files as
sluice-passwd and `sluicectl user add` write them (comments, blank lines,
several users, the default and other scrypt costs) and the shapes the parser
must refuse (a name twice, no hash, a bad base64 salt, N not a power of
two, cost over the memory bound, a long line, a name with a space)."""
import base64
import os

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "corpus_users")
os.makedirs(out, exist_ok=True)

SALT = base64.b64encode(b"salt" * 4).decode()   # 16 bytes, as sluice-passwd makes
KEY = base64.b64encode(b"key!" * 8).decode()     # 32 bytes
H = f"$scrypt$N=16384,r=8,p=1${SALT}${KEY}"

seeds = {
    "one": f"alice:{H}\n",
    "several": f"# users\n\nalice:{H}\nbob@example.com:$scrypt$N=1024,r=1,p=1${SALT}${KEY}\n"
               f"carol:$scrypt$N=65536,r=8,p=2${SALT}${KEY}\n",
    "no_newline": f"alice:{H}",
    "twice": f"alice:{H}\nalice:{H}\n",
    "no_hash": "alice:\n",
    "no_colon": "alice\n",
    "bad_salt": f"alice:$scrypt$N=16384,r=8,p=1$!!!!${KEY}\n",
    "n_not_pow2": f"alice:$scrypt$N=10000,r=8,p=1${SALT}${KEY}\n",
    "too_costly": f"alice:$scrypt$N=1048576,r=32,p=16${SALT}${KEY}\n",
    "long_line": "alice:" + "$" * 600 + "\n",
    "space_name": f"al ice:{H}\n",
    "crlf": f"alice:{H}\r\nbob:{H}\r\n",
}
for name, text in seeds.items():
    with open(os.path.join(out, name), "w") as f:
        f.write(text)
