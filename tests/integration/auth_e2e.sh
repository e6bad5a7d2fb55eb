#!/usr/bin/env bash
# auth_e2e.sh BUILD_DIR - submission with SMTP AUTH (RFC 4954) against the
# real daemon: [smtp] submission_port = 587 (STARTTLS, then AUTH) and
# submissions_port = 465 (TLS on connect, RFC 8314), users from a file
# made by sluice-passwd (scrypt, checked on the plane's auth worker).
#
#  - swaks --auth PLAIN and LOGIN over 587 with STARTTLS and over 465 with
#    --tlsc: good credentials relay to a domain we do not serve (250
#    queued), wrong ones get 535 5.7.8;
#  - AUTH in the clear on 587 gets 530 5.7.0 (and MAIL too); AUTH is not
#    offered on port 25; three failures in a session end it with 421;
#  - Python smtplib login() + sendmail on 587 (starttls) and 465 (SMTP_SSL);
#  - a reload reads the users file again (a bad line refuses it whole);
#  - sluicectl user list / add (only the hash is sent) / remove;
#  - counters: smtp.auth_ok / auth_failed, auth.checked from the worker;
#  - the spool: the relayed messages carry "with ESMTPSA" (RFC 3848), and
#    their records the mechanism and user (queue-dump -a);
#  - the mail log's client= line: ", sasl_method=PLAIN, sasl_username=NAME"
#    as Postfix's smtpd writes it (sluiced restarted with delivery on).
# Per-client-address rate limiting of failures across sessions is
# limits_e2e.sh's (issue 18, acceptance 4).
set -u
. "$(dirname "$0")/lib.sh"
t_setup auth "$1"
trap 'kill -KILL $(jobs -p) 2>/dev/null; t_teardown' EXIT
QD=$T_BUILD/tests/integration/queue-dump
HOST=198.18.0.2
ns() { ip netns exec "$T_NS" "$@"; }

USERS=$T_DIR/users
printf 'secret-1\n' | "$T_BUILD/control/sluice-passwd" alice >"$USERS" &&
	printf 's3cond\n' | "$T_BUILD/control/sluice-passwd" bob@isp.example >>"$USERS"
check "sluice-passwd makes the users file" test "$(grep -c '^[a-z@.]*:\$scrypt\$N=16384,r=8,p=1\$' "$USERS")" -eq 2

t_conf "[delivery]
enabled = no
[smtp]
hostname = sluice.test
mynetworks = 198.18.0.250/32
submission_port = 587
submissions_port = 465
[auth]
users = $USERS"
check "sluiced starts with submission listeners" t_start

# swk PORT TLSOPT MECH USER PASS: one message to a foreign domain.
swk() {
	ns timeout 60 swaks --server $HOST --port "$1" $2 --auth "$3" --auth-user "$4" \
		--auth-password "$5" --helo sub.test --from "${4%@*}@isp.example" \
		--to rcpt@elsewhere.example --header "Subject: auth $1 $3" 2>&1
}
queued() { printf '%s\n' "$1" | grep -q '^<[~-]  *250 2\.0\.0 Ok: queued as '; }
said() { printf '%s\n' "$1" | grep -q "^<[~-]\\*\\{0,1\\}  *$2"; }	# "<~* 535": swaks marks errors

out=$(swk 587 --tls PLAIN alice secret-1)
check "587 STARTTLS + AUTH PLAIN, right password: relayed" queued "$out"
out2=$(swk 587 --tls LOGIN bob@isp.example s3cond)
check "587 STARTTLS + AUTH LOGIN, right password: relayed" queued "$out2"
out3=$(swk 465 --tlsc PLAIN alice secret-1)
check "465 TLS on connect + AUTH PLAIN: relayed" queued "$out3"
out4=$(swk 465 --tlsc LOGIN bob@isp.example s3cond)
check "465 TLS on connect + AUTH LOGIN: relayed" queued "$out4"
for o in "$out" "$out2" "$out3" "$out4"; do
	queued "$o" || printf '%s\n' "$o" | tail -n 12 | sed 's/^/    /'
done

out=$(swk 587 --tls PLAIN alice wrong)
check "587: wrong password gets 535 5.7.8" said "$out" "535 5\.7\.8"
out=$(swk 465 --tlsc LOGIN alice wrong)
check "465: wrong password gets 535 5.7.8" said "$out" "535 5\.7\.8"
out=$(swk 587 --tls PLAIN nobody secret-1)
check "587: unknown user gets 535 5.7.8" said "$out" "535 5\.7\.8"

# In the clear, by hand: AUTH and MAIL on 587 before STARTTLS, AUTH on 25.
cat >"$T_DIR/raw.py" <<'PY'
import base64, socket, ssl, sys
host, port, what = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.create_connection((host, port), timeout=30)
f = s.makefile("rb")
def rd():
    lines = []
    while True:
        l = f.readline().decode()
        if not l:
            raise SystemExit("connection closed: " + repr(lines))
        lines.append(l.rstrip("\r\n"))
        if l[3:4] != "-":
            return lines
def cmd(c):
    s.sendall(c.encode() + b"\r\n")
    return rd()
rd()
ehlo = cmd("EHLO raw.test")
plain = base64.b64encode(b"\0alice\0secret-1").decode()
if what == "clear587":
    assert not any("AUTH" in l for l in ehlo), ehlo
    r1 = cmd("AUTH PLAIN " + plain)[-1]
    r2 = cmd("MAIL FROM:<alice@isp.example>")[-1]
    print(r1 + " | " + r2)
    ok = r1.startswith("530 5.7.0") and r2.startswith("530 5.7.0")
elif what == "port25":
    ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
    assert cmd("STARTTLS")[-1].startswith("220")
    s = ctx.wrap_socket(s); f = s.makefile("rb")
    ehlo = cmd("EHLO raw.test")
    r1 = cmd("AUTH PLAIN " + plain)[-1]
    print(" ".join(ehlo) + " | " + r1)
    ok = not any("AUTH" in l for l in ehlo) and r1.startswith("502")
elif what == "brute":
    ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
    assert cmd("STARTTLS")[-1].startswith("220")
    s = ctx.wrap_socket(s); f = s.makefile("rb")
    cmd("EHLO raw.test")
    bad = base64.b64encode(b"\0alice\0guess").decode()
    rs = [cmd("AUTH PLAIN " + bad)[-1] for _ in range(3)]
    rs.append(rd()[-1])	# then 421, unasked
    print(rs)
    ok = all(r.startswith("535 5.7.8") for r in rs[:3]) and rs[3].startswith("421 4.7.0")
    ok = ok and f.readline() == b""	# and the connection closes
sys.exit(0 if ok else 1)
PY
out=$(ns /usr/bin/python3 "$T_DIR/raw.py" $HOST 587 clear587 2>&1)
check "587 in the clear: AUTH not offered; AUTH and MAIL get 530 5.7.0 ($out)" test $? -eq 0
out=$(ns /usr/bin/python3 "$T_DIR/raw.py" $HOST 25 port25 2>&1)
check "port 25: AUTH neither offered nor taken, even under TLS ($out)" test $? -eq 0
out=$(ns /usr/bin/python3 "$T_DIR/raw.py" $HOST 587 brute 2>&1)
check "three wrong passwords in a session: 535 5.7.8 each, then 421 and close ($out)" test $? -eq 0

# Python smtplib on both ports.
cat >"$T_DIR/lib.py" <<'PY'
import smtplib, ssl, sys
host, port, user, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
if port == 465:
    c = smtplib.SMTP_SSL(host, port, context=ctx, timeout=60)
else:
    c = smtplib.SMTP(host, port, timeout=60); c.starttls(context=ctx)
c.ehlo("pylib.test")
try:
    code, text = c.login(user, pw)
except smtplib.SMTPAuthenticationError as e:
    print("login refused:", e.smtp_code, e.smtp_error.decode()); sys.exit(2)
c.sendmail(user.split("@")[0] + "@isp.example", ["far@elsewhere.example"],
           "Subject: smtplib %d\r\n\r\nhello from smtplib\r\n" % port)
print("login", code, text.decode()); c.quit()
PY
out=$(ns /usr/bin/python3 "$T_DIR/lib.py" $HOST 587 alice secret-1 2>&1)
check "smtplib starttls() + login() + sendmail on 587 ($out)" test $? -eq 0
out=$(ns /usr/bin/python3 "$T_DIR/lib.py" $HOST 465 bob@isp.example s3cond 2>&1)
check "smtplib SMTP_SSL login() + sendmail on 465 ($out)" test $? -eq 0
out=$(ns /usr/bin/python3 "$T_DIR/lib.py" $HOST 465 bob@isp.example nope 2>&1); st=$?
check "smtplib login() with a wrong password: 535 ($out)" \
	sh -c "[ $st -eq 2 ] && printf '%s' '$out' | grep -q 'refused: 535'"

# failures: 3 swaks, 3 in the brute session, and smtplib's wrong login()
# tries PLAIN then LOGIN (it goes through every mechanism offered): 8
# The users file is read again by a reload: carol can log in after it; a
# file with a bad line refuses the reload whole and the users stay.
out=$(ns /usr/bin/python3 "$T_DIR/lib.py" $HOST 587 carol c4rol 2>&1); st=$?
check "before the reload carol is unknown: 535 ($out)" test $st -eq 2
printf 'c4rol\n' | "$T_BUILD/control/sluice-passwd" carol >>"$USERS"
out=$("$T_CTL" -s "$T_SOCK" reload 2>&1)
check "sluicectl reload with carol added ($out)" test $? -eq 0
check "the auth worker took the new file (log)" \
	wait_for 30 grep -q 'reload 1: 3 AUTH user(s) from' "$T_LOG"
out=$(ns /usr/bin/python3 "$T_DIR/lib.py" $HOST 587 carol c4rol 2>&1)
check "after the reload carol logs in and relays ($out)" test $? -eq 0
cp "$USERS" "$USERS.good"
echo 'broken line' >>"$USERS"
out=$("$T_CTL" -s "$T_SOCK" reload 2>&1); st=$?
check "a users file with a bad line refuses the reload, naming the line ($out)" \
	sh -c "[ $st -ne 0 ] && printf '%s' '$out' | grep -q 'users:4: not \"name:hash\"'"
out=$(ns /usr/bin/python3 "$T_DIR/lib.py" $HOST 465 alice secret-1 2>&1)
check "the users in force are kept: alice still logs in ($out)" test $? -eq 0
cp "$USERS.good" "$USERS"

# sluicectl user list / add / remove: the file is rewritten and read again
# at once (add sends only the hash: the password is read by sluicectl).
ctl() { "$T_CTL" -s "$T_SOCK" "$@"; }
out=$(ctl user list 2>&1 | awk 'NR > 1 { print $1 }')
check "sluicectl user list: alice, bob@isp.example, carol ($(echo $out))" \
	test "$(echo $out)" = "alice bob@isp.example carol"
out=$(printf 'd4ve-pw\n' | ctl user add dave 2>&1)
check "sluicectl user add dave ($out)" test $? -eq 0
dave_line() { grep -q '^dave:[$]scrypt[$]N=16384,r=8,p=1[$]' "$USERS" && ! grep -q d4ve-pw "$USERS"; }
check "the file has dave's scrypt line, not the password" dave_line
out=$(ns /usr/bin/python3 "$T_DIR/lib.py" $HOST 587 dave d4ve-pw 2>&1)
check "dave logs in at once ($out)" test $? -eq 0
out=$(printf 'x\n' | ctl user add dave 2>&1); st=$?
check "adding dave again is refused ($out)" sh -c "[ $st -ne 0 ] && printf '%s' '$out' | grep -q 'exists already'"
out=$(ctl user remove dave 2>&1)
check "sluicectl user remove dave ($out)" test $? -eq 0
out=$(ns /usr/bin/python3 "$T_DIR/lib.py" $HOST 587 dave d4ve-pw 2>&1); st=$?
check "dave's login is refused after the removal ($out)" test $st -eq 2

# failures: 3 swaks, 3 in the brute session, and smtplib's three wrong
# login()s (bob's, carol's before the reload, dave's after his removal)
# try PLAIN then LOGIN each (smtplib goes through every mechanism
# offered): 12; good: 6 + carol + alice + dave -> 9
ok_n=$(stat smtp.auth_ok); bad_n=$(stat smtp.auth_failed); chk=$(stat auth.checked)
check "counters: smtp.auth_ok = 9 ($ok_n), smtp.auth_failed = 12 ($bad_n), auth.checked = 21 ($chk)" \
	test "$ok_n" = 9 -a "$bad_n" = 12 -a "$chk" = 21
msgs=$(stat smtp.messages)
check "nine messages taken ($msgs)" test "$msgs" = 9

check "sluiced stops cleanly" t_stop
mkdir -p "$T_DIR/bodies"
"$QD" -n 4 -s -a -b "$T_DIR/bodies" "$T_DIR/spool" >"$T_DIR/dump" 2>"$T_DIR/dump.err" ||
	measure_failed "queue-dump: $(head -c 300 "$T_DIR/dump.err")"
n=$(grep -l 'with ESMTPSA' "$T_DIR"/bodies/* 2>/dev/null | wc -l)
check "every relayed message has 'with ESMTPSA' in its Received ($n of 9)" test "$n" -eq 9
# the identity in the queue record (schema 3): swaks used PLAIN and LOGIN,
# smtplib picks PLAIN; every message has one
ids=$(awk '{ print $(NF-1) ":" $NF }' "$T_DIR/dump" | sort | uniq -c | awk '{ print $2 "=" $1 }' | tr '\n' ' ')
check "the queue records carry the AUTH identity ($ids)" \
	test "$ids" = "LOGIN:bob@isp.example=2 PLAIN:alice=4 PLAIN:bob@isp.example=1 PLAIN:carol=1 PLAIN:dave=1 "

# The mail log: a message enters it when the scheduler first takes it, so
# sluiced starts again on the same spool with delivery on (to a next hop
# that is not there: deferred) and a mail log file. Each authenticated
# message's client= line names the mechanism and the user as Postfix's
# smtpd does: "ID: client=NAME[ADDR], sasl_method=PLAIN, sasl_username=alice".
MLOG=$T_DIR/mail.log
t_conf "[smtp]
hostname = sluice.test
mynetworks = 198.18.0.250/32
submission_port = 587
submissions_port = 465
[auth]
users = $USERS
[log]
mail = $MLOG
[routes]
relayhost = [198.18.0.1]:2599"
check "sluiced starts again with delivery on and a mail log" t_start
sasl_lines() { [ "$(grep -c ': client=unknown\[198\.18\.0\.1\], sasl_method=\(PLAIN\|LOGIN\), sasl_username=' "$MLOG" 2>/dev/null)" -ge 9 ]; }
check "the mail log's client= lines carry sasl_method= and sasl_username= (9)" wait_for 30 sasl_lines
lines=$(sed -n 's/.*: client=unknown\[198\.18\.0\.1\], sasl_method=\([A-Z]*\), sasl_username=\(.*\)$/\1:\2/p' "$MLOG" |
	sort | uniq -c | awk '{ print $2 "=" $1 }' | tr '\n' ' ')
check "  ... for the same identities as the records ($lines)" test "$lines" = "$ids"
grep -m 2 'sasl_username=' "$MLOG" | sed 's/^/    /'
check "sluiced stops cleanly again" t_stop
finish
