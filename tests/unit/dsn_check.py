#!/usr/bin/python3
"""dsn_check.py - checks one delivery status notification made by
control/dsn.c against what test_dsn.c expects of it, with Python's email
package as the independent reader.

    dsn_check.py DSN_FILE EXPECT_JSON

The DSN is read with email.message_from_bytes(policy=policy.default) and must
be a multipart/report; report-type=delivery-status (or global-delivery-status)
with a text/plain part, a message/delivery-status (or global) part whose
per-message and per-recipient fields are what the expectations say (and carry
the fields RFC 3464 requires), and the original attached as the expected type.
The raw octets are checked as well: CRLF line ends only, no NUL, no line over
998 octets, the boundary nowhere but at its delimiters, 8-bit octets only where
a part says 8bit, UTF-8 in the header only when SMTPUTF8 is expected. The
delivery-status fields are also parsed from the raw octets (unfolded by hand)
and must agree with what the email package read.

Exit 0 and "dsn_check: ok ..." when every check passed; 1 and one "dsn_check:
FAIL ..." line per failed check; 2 and "dsn_check: ERROR ..." when the check
could not run (unreadable input, parse error, exception).
"""
import email
import email.parser
import email.utils
import json
import re
import sys
from email import policy

failures = []


def fail(what):
    failures.append(what)


def expect_eq(what, got, want):
    if got != want:
        fail(f"{what}: got {got!r}, want {want!r}")


def text_of(value):
    """A header value as text: surrogate-escaped octets back to UTF-8."""
    s = str(value)
    try:
        return s.encode("utf-8", "surrogateescape").decode("utf-8")
    except UnicodeError:
        return s


def match_value(what, got, want):
    """want: a string (exact), or {"epoch": N}, {"re": R}, {"nospace": S}."""
    if got is None:
        fail(f"{what}: missing")
        return
    if isinstance(want, str):
        expect_eq(what, got, want)
    elif "epoch" in want:
        try:
            t = int(email.utils.parsedate_to_datetime(got).timestamp())
        except (TypeError, ValueError) as e:
            fail(f"{what}: {got!r} is not a date ({e})")
            return
        expect_eq(what + " (epoch)", t, want["epoch"])
    elif "re" in want:
        if not re.fullmatch(want["re"], got):
            fail(f"{what}: {got!r} does not match {want['re']!r}")
    elif "nospace" in want:
        expect_eq(what + " (whitespace removed)", re.sub(r"\s", "", got),
                  re.sub(r"\s", "", want["nospace"]))
    else:
        raise ValueError(f"bad expectation for {what}: {want!r}")


# ---- raw octets -------------------------------------------------------------

def check_raw(raw, exp):
    if b"\0" in raw:
        fail("raw: a NUL octet")
    for m in re.finditer(rb"\r(?!\n)|(?<!\r)\n", raw):
        fail(f"raw: bare CR or LF at offset {m.start()}")
        break
    if not raw.endswith(b"\r\n"):
        fail("raw: does not end with CRLF")
    for n, line in enumerate(raw.split(b"\r\n")):
        if len(line) > 998:
            fail(f"raw: line {n + 1} has {len(line)} octets (> 998)")
            break
    head = raw.split(b"\r\n\r\n", 1)[0]
    if not exp.get("smtputf8") and any(c >= 0x80 for c in head):
        fail("raw: 8-bit octets in the header without SMTPUTF8")


def split_raw_parts(raw, boundary):
    """The raw parts (headers, body) between the delimiters."""
    delim = b"\r\n--" + boundary.encode()
    pieces = raw.split(delim)
    parts = []
    for piece in pieces[1:]:
        if piece.startswith(b"--"):
            break
        if not piece.startswith(b"\r\n"):
            fail("raw: a delimiter line with something after the boundary")
            continue
        piece = piece[2:]
        if b"\r\n\r\n" in piece:
            h, b = piece.split(b"\r\n\r\n", 1)
        else:
            h, b = piece, b""
        parts.append((h, b))
    if not pieces[-1].startswith(b"--"):
        fail("raw: no closing delimiter")
    return parts


def raw_fields(block):
    """Fields of one header-like block, unfolded by hand: [(name, value)]."""
    out = []
    text = re.sub(rb"\r\n(?=[ \t])", b"", block)
    for line in text.split(b"\r\n"):
        if not line:
            continue
        if b":" not in line:
            fail(f"raw delivery-status: not a field: {line[:60]!r}")
            continue
        name, value = line.split(b":", 1)
        out.append((name.decode("ascii", "replace"),
                    value.decode("utf-8", "replace").strip()))
    return out


def raw_blocks(body):
    body = body.rstrip(b"\r\n")
    return [raw_fields(b) for b in re.split(rb"\r\n\r\n+", body) if b.strip()]


# ---- the parsed message -------------------------------------------------------

def ds_blocks(part):
    """The delivery-status blocks as email.message.Message objects."""
    if part.get_content_type() == "message/delivery-status":
        return list(part.get_payload())
    # message/global-delivery-status: the email package takes it for a
    # message (per-message fields as its header, the rest as its body)
    inner = part.get_payload(0)
    body = inner.get_payload(decode=True).decode("utf-8")
    blocks = [inner]
    for chunk in re.split(r"(?:\r?\n){2,}", body.strip("\r\n")):
        if chunk.strip():
            blocks.append(email.message_from_string(chunk + "\r\n", policy=policy.default))
    return blocks


def check_fields(what, block, want, absent, raw_block):
    got = {k: text_of(v) for k, v in block.items()}
    rawd = dict(raw_block) if raw_block is not None else None
    for name, value in want.items():
        match_value(f"{what} {name}", got.get(name), value)
    for name in absent:
        if name in got:
            fail(f"{what}: {name} present ({got[name]!r}), want absent")
    if rawd is not None:
        if sorted(rawd) != sorted(got):
            fail(f"{what}: raw fields {sorted(rawd)} != parsed {sorted(got)}")
        for k, v in got.items():
            if k in rawd and " ".join(rawd[k].split()) != " ".join(v.split()):
                fail(f"{what} {k}: raw {rawd[k]!r} != parsed {v!r}")
    return got


STATUS_RE = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")
ACTIONS = {"failed", "delayed", "delivered", "relayed", "expanded"}


def check_status_part(part, raw_body, exp, rtype):
    want_type = "message/global-delivery-status" if rtype == "global-delivery-status" \
        else "message/delivery-status"
    expect_eq("part 2 type", part.get_content_type(), want_type)
    blocks = ds_blocks(part)
    rblocks = raw_blocks(raw_body) if raw_body is not None else [None] * len(blocks)
    if len(rblocks) != len(blocks):
        fail(f"delivery-status: {len(rblocks)} raw blocks, {len(blocks)} parsed")
        rblocks = [None] * len(blocks)
    if not blocks:
        fail("delivery-status: empty")
        return
    pm = check_fields("per-message", blocks[0], exp.get("per_message", {}),
                      exp.get("per_message_absent", []), rblocks[0])
    if not pm.get("Reporting-MTA", "").startswith("dns;"):
        fail(f"per-message: Reporting-MTA {pm.get('Reporting-MTA')!r} (required, dns;)")
    if len(blocks) < 2:
        fail("delivery-status: no per-recipient block")
    want_rcpts = exp.get("recipients")
    if want_rcpts is None:
        want_rcpts = [{}] * (len(blocks) - 1)
    expect_eq("recipient blocks", len(blocks) - 1, len(want_rcpts))
    for i, (blk, want) in enumerate(zip(blocks[1:], want_rcpts)):
        want = dict(want)
        absent = want.pop("absent", [])
        got = check_fields(f"recipient {i + 1}", blk, want, absent, rblocks[i + 1])
        for req in ("Final-Recipient", "Action", "Status"):
            if req not in got:
                fail(f"recipient {i + 1}: {req} missing (required)")
        if got.get("Action") not in ACTIONS:
            fail(f"recipient {i + 1}: Action {got.get('Action')!r}")
        if not STATUS_RE.fullmatch(got.get("Status", "")):
            fail(f"recipient {i + 1}: Status {got.get('Status')!r} is not X.Y.Z")
        if "Will-Retry-Until" in got and got.get("Action") != "delayed":
            fail(f"recipient {i + 1}: Will-Retry-Until on a {got.get('Action')} report")
        for f in ("Final-Recipient", "Original-Recipient", "Remote-MTA", "Diagnostic-Code"):
            if f in got and ";" not in got[f]:
                fail(f"recipient {i + 1}: {f} {got[f]!r} has no type")


def check_attached(part, raw_body, exp):
    want = exp.get("attached")
    if want is None:
        return
    expect_eq("part 3 type", part.get_content_type(), want)
    if part.is_multipart():  # message/*: the email package parsed it
        hdrs = part.get_payload(0)
    else:
        hdrs = email.parser.HeaderParser(policy=policy.default).parsestr(
            text_of(part.get_payload()))
    for name, value in exp.get("attached_headers", {}).items():
        match_value(f"attached {name}", text_of(hdrs[name]) if hdrs[name] is not None
                    else None, value)
    if exp.get("attached_is_report"):
        inner = part.get_payload(0)
        expect_eq("attached message type", inner.get_content_type(), "multipart/report")
    ar = exp.get("attached_raw")
    if ar is not None and raw_body is not None:
        with open(ar["file"], "rb") as f:
            want_bytes = f.read(ar["len"])
        if len(want_bytes) != ar["len"]:
            raise OSError(f"{ar['file']}: short")
        if raw_body != want_bytes:
            n = next((i for i, (a, b) in enumerate(zip(raw_body, want_bytes)) if a != b),
                     min(len(raw_body), len(want_bytes)))
            fail(f"attached octets differ from the original at {n} "
                 f"(got {len(raw_body)} octets, want {len(want_bytes)})")


def check(raw, exp):
    check_raw(raw, exp)
    msg = email.message_from_bytes(raw, policy=policy.default)
    for p in msg.walk():
        if p.defects:
            fail(f"{p.get_content_type()}: defects {p.defects}")
    expect_eq("type", msg.get_content_type(), "multipart/report")
    rtype = msg.get_param("report-type")
    expect_eq("report-type", rtype, exp.get("report_type", "delivery-status"))
    boundary = msg.get_boundary()
    if not boundary:
        fail("no boundary")
        return
    if "boundary" in exp:
        expect_eq("boundary", boundary, exp["boundary"])
    parts = list(msg.iter_parts())
    nparts = 3 if exp.get("attached") else 2
    expect_eq("parts", len(parts), nparts)
    # the boundary: in the Content-Type parameter and the delimiters, nowhere else
    expect_eq("boundary occurrences", raw.count(boundary.encode()), 1 + len(parts) + 1)
    raw_parts = split_raw_parts(raw, boundary)
    expect_eq("raw parts", len(raw_parts), len(parts))
    if len(raw_parts) != len(parts):
        raw_parts = [(None, None)] * len(parts)
    # the header
    h = exp.get("header", {})
    name, addr = email.utils.parseaddr(text_of(msg["From"]))
    expect_eq("From name", name, "Mail Delivery System")
    if "from" in h:
        expect_eq("From address", addr, h["from"])
    if "to" in h:
        expect_eq("To address", email.utils.parseaddr(text_of(msg["To"]))[1], h["to"])
    for k in ("Subject", "Message-ID", "Auto-Submitted", "X-Sluice-Report", "MIME-Version",
              "Date"):
        if k in h:
            match_value(k, text_of(msg[k]) if msg[k] is not None else None, h[k])
    for k in h.get("absent", []):
        if msg[k] is not None:
            fail(f"header {k} present: {msg[k]!r}")
    expect_eq("Auto-Submitted", text_of(msg["Auto-Submitted"]), "auto-replied")
    cte = (text_of(msg["Content-Transfer-Encoding"] or "7bit")).lower()
    expect_eq("top Content-Transfer-Encoding", cte, "8bit" if exp.get("eightbit") else "7bit")
    # 8-bit octets only in parts that say 8bit
    for i, (ph, pb) in enumerate(raw_parts):
        if pb is None:
            continue
        says8 = re.search(rb"(?im)^content-transfer-encoding:\s*8bit", ph) is not None
        if any(c >= 0x80 for c in pb) and not says8:
            fail(f"part {i + 1}: 8-bit octets without Content-Transfer-Encoding: 8bit")
        if not exp.get("smtputf8") and i < 2 and any(c >= 0x80 for c in ph + pb):
            fail(f"part {i + 1}: 8-bit octets in a non-SMTPUTF8 report")
    if len(parts) < 2:
        return
    # part 1: the human part
    expect_eq("part 1 type", parts[0].get_content_type(), "text/plain")
    human = text_of(parts[0].get_content())
    flat = " ".join(human.split())
    for s in exp.get("human", []):
        if " ".join(s.split()) not in flat:
            fail(f"human part lacks {s!r}")
    for s in exp.get("human_absent", []):
        if " ".join(s.split()) in flat:
            fail(f"human part has {s!r}")
    squeezed = re.sub(r"\s", "", human)
    for s in exp.get("human_nospace", []):
        if re.sub(r"\s", "", s) not in squeezed:
            fail(f"human part lacks {s[:40]!r}... (whitespace ignored)")
    # part 2: the delivery status
    check_status_part(parts[1], raw_parts[1][1], exp, rtype)
    if "part2_max_line" in exp and raw_parts[1][1] is not None:
        longest = max(len(line) for line in raw_parts[1][1].split(b"\r\n"))
        if longest > exp["part2_max_line"]:
            fail(f"part 2: a line of {longest} octets (> {exp['part2_max_line']})")
    if len(parts) > 2:
        check_attached(parts[2], raw_parts[2][1], exp)
    return len(exp.get("recipients", [])), rtype


def main():
    if len(sys.argv) != 3:
        print("usage: dsn_check.py DSN_FILE EXPECT_JSON")
        return 2
    try:
        with open(sys.argv[1], "rb") as f:
            raw = f.read()
        with open(sys.argv[2], encoding="utf-8") as f:
            exp = json.load(f)
        if not raw:
            raise ValueError("empty DSN file")
        res = check(raw, exp)
    except Exception as e:  # could not check: that is not a pass
        print(f"dsn_check: ERROR {type(e).__name__}: {e}")
        return 2
    for f in failures:
        print(f"dsn_check: FAIL {f}")
    if failures:
        return 1
    n, rtype = res if res else (0, "?")
    print(f"dsn_check: ok ({n} recipients, {rtype}, attached {exp.get('attached')}, "
          f"{len(raw)} octets)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
