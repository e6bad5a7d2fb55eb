#!/usr/bin/env bash
# quota_e2e.sh BUILD_DIR - outbound abuse control (issue 18, acceptance 3)
# against the real daemon, real clients (swaks with AUTH over 587) and a
# real next hop (an aiosmtpd sink in the test's namespace):
#
#  1. the identity: the mail log's client= line of an authenticated
#     message says ", sasl_method=PLAIN, sasl_username=alice" as Postfix's
#     smtpd writes it, and `queue show` has it;
#  2. a user over its daily quota ([quota] user_messages = 3): its first
#     three messages reach the next hop, the fourth is accepted (250) and
#     HELD: `queue list --held` shows it with its reason, the mail log says
#     "hold: daily quota"; `release ID` delivers it to the next hop;
#  3. a trusted client without AUTH over its own quota (client_messages):
#     held likewise, by address;
#  4. `user suspend bob`: his queued mail and his further mail are held
#     ("suspended: ..."), `user list` shows it; the suspension and alice's
#     count survive a reload and a restart; `user resume bob` releases
#     exactly what the suspension held (the quota holds stay) and it is
#     delivered; bob's limit comes from the [quota] map (10).
set -u
. "$(dirname "$0")/lib.sh"
t_setup quota "$1"
. "$(dirname "$0")/relay_lib.sh"
MLOG=$T_DIR/mail.log
USERS=$T_DIR/users
ctl() { "$T_CTL" -s "$T_SOCK" "$@"; }

printf 'pw-alice\n' | "$T_BUILD/control/sluice-passwd" alice >"$USERS" &&
	printf 'pw-bob\n' | "$T_BUILD/control/sluice-passwd" bob >>"$USERS"
check "users file made" test "$(wc -l <"$USERS")" -eq 2
cat >"$T_DIR/routes" <<ROUTES
sink.test [$KERN]
dead.test [$KERN]:2599
ROUTES
echo 'bob 10 0	# an override: ten a day' >"$T_DIR/quota.map"
t_conf "[log]
mail = $MLOG
[smtp]
hostname = sluice.test
mynetworks = $KERN/32
submission_port = 587
[auth]
users = $USERS
[quota]
user_messages = 3
client_messages = 2
map = $T_DIR/quota.map
[routes]
routes_file = $T_DIR/routes"
check "sluiced starts with [quota] user_messages = 3, client_messages = 2" t_start
check "the next hop (aiosmtpd) on $KERN:25" start_sink sink 25

# send USER N [DOMAIN]: one message as USER over 587 (STARTTLS + AUTH
# PLAIN), or without AUTH over 25 when USER is "-", to rN@DOMAIN
# (sink.test); prints the queue ID
send() {
	local out id auth=()
	if [ "$1" != - ]; then
		auth=(--port 587 --tls --auth PLAIN --auth-user "$1" --auth-password "pw-$1")
	else
		auth=(--port 25)
	fi
	out=$(ns timeout 60 swaks --server $HOST "${auth[@]}" --helo q.test \
		--from "${1/-/relay}@isp.example" --to "r$2@${3:-sink.test}" \
		--header "Subject: quota $1 $2" 2>&1)
	id=$(printf '%s\n' "$out" |
		sed -n 's/^<[~-]  *250 2\.0\.0 Ok: queued as \([0-9A-HJKMNP-TV-Z]\{13\}\)\r\{0,1\}$/\1/p')
	[ -n "$id" ] || { printf '%s\n' "$out" | tail -n 6 | sed 's/^/    /' >&2; return 1; }
	echo "$id"
}
delivered() { [ "$(sink_lines "$T_DIR/sink")" -ge "$1" ]; }
# held_list: the IDs `queue list --held` shows
held_ids() { ctl --json queue list --held | /usr/bin/python3 -c \
	'import json,sys; print(" ".join(m["id"] for m in json.load(sys.stdin)["messages"]))'; }
is_held() { held_ids | grep -qw "$1"; }
no_held() { [ -z "$(held_ids)" ]; }
mlogged() { grep -q "$1" "$MLOG"; }
has() { printf '%s\n' "$1" | grep -Eq -- "$2"; }
user_state() { ctl user list | grep -Eq -- "$1"; }

# --- 1, 2: alice, three a day ------------------------------------------------
A=()
for n in 1 2 3 4; do
	id=$(send alice $n) && A+=("$id")
done
check "alice's four messages are all accepted (250: ${A[*]})" test ${#A[@]} -eq 4
check "her first three reach the next hop" wait_for 30 delivered 3
check "the fourth is held, at its first claim" \
	wait_for 30 is_held "${A[3]:-none}"
check "  ... and not delivered ($(sink_lines "$T_DIR/sink") at the next hop)" \
	test "$(sink_lines "$T_DIR/sink")" -eq 3
list=$(ctl queue list --held 2>&1)
check "queue list --held shows why: the daily quota" \
	has "$list" '\(held: daily quota: user alice, message 4 of 3 a day\)'
check "  ... and who sent it" has "$list" 'sasl_username=alice'

printf '%s\n' "$list" | sed 's/^/    /'
check "the mail log: client=... [$KERN], sasl_method=PLAIN, sasl_username=alice (Postfix's shape)" \
	mlogged "${A[0]:-none}: client=unknown\[$KERN\], sasl_method=PLAIN, sasl_username=alice$"
check "the mail log: ${A[3]:-none}: hold: daily quota: user alice" \
	mlogged "${A[3]:-none}: hold: daily quota: user alice, message 4 of 3 a day"
show_ok() {
	ctl --json queue show "$1" | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["sasl_method"] == "PLAIN" and r["sasl_username"] == "alice", r
assert r["held"] and r["hold_reason"].startswith("daily quota"), r'
}
check "queue show has the identity and the reason" show_ok "${A[3]:-none}"
out=$(ctl release "${A[3]:-none}" 2>&1)
check "the operator releases it ($out)" test "$out" = "released: 1 message(s)"
check "  ... and it is delivered to the next hop" wait_for 30 delivered 4
check "  ... and not held again (a released message is not counted twice)" no_held
check "user list: alice active, 4 of 3 messages today" user_state '^alice +active +4/3 '
ctl user list | sed 's/^/    /'

# --- 3: a trusted client without AUTH, two a day ---------------------------------
C=()
for n in 1 2 3; do
	id=$(send - $n) && C+=("$id")
done
check "the trusted client's three messages are accepted (${C[*]})" test ${#C[@]} -eq 3
check "its first two are delivered" wait_for 30 delivered 6
check "the third is held: daily quota of client [$KERN]" wait_for 30 is_held "${C[2]:-none}"
check "  ... with that reason in the mail log" \
	mlogged "${C[2]:-none}: hold: daily quota: client \[$KERN\], message 3 of 2 a day"

# --- 4: suspend bob, reload, restart, resume ---------------------------------------
# bob has mail queued already (its next hop refuses: deferred)
D=$(send bob 0 dead.test)
deferred() { ctl --json queue list --deferred | grep -q "\"${D:-none}\""; }
check "bob's message to a dead next hop is queued, deferred ($D)" wait_for 30 deferred
out=$(ctl user suspend bob 2>&1)
check "user suspend bob holds what he has queued too ($out)" \
	test "$out" = "bob: suspended; 1 queued message(s) held"
check "  ... with the suspension's reason" has "$(ctl queue list --held --user bob)" \
	'\(held: suspended: user bob suspended by the operator\)'

out=$(ctl user suspend nobody 2>&1); st=$?
check "suspending a name not in the users file is refused ($out)" test $st -ne 0
B=()
for n in 1 2; do
	id=$(send bob $n) && B+=("$id")
done
check "bob still logs in and his two messages are accepted (${B[*]})" test ${#B[@]} -eq 2
bob_held() { is_held "${B[0]:-none}" && is_held "${B[1]:-none}"; }
check "  ... and held" wait_for 30 bob_held
check "  ... with the suspension's reason" \
	mlogged "${B[0]:-none}: hold: suspended: user bob suspended by the operator"
check "user list says bob is suspended" user_state '^bob +suspended '

out=$(ctl reload 2>&1)
check "reload ($out)" test $? -eq 0
check "  ... bob is still suspended" user_state '^bob +suspended '
check "sluiced stops" t_stop
check "sluiced starts again on the same spool" t_start
check "after the restart bob is still suspended" user_state '^bob +suspended '
check "  ... and alice's day is still counted (4/3)" user_state '^alice +active +4/3 '
id=$(send alice 5)
check "alice's fifth message of the day is held after the restart ($id)" \
	wait_for 30 is_held "${id:-none}"
out=$(ctl user resume bob 2>&1)
check "user resume bob releases what the suspension held ($out)" \
	test "$out" = "bob: resumed; 3 held message(s) released"
check "  ... and both are delivered" wait_for 30 delivered 8
held=$(held_ids)
quota_kept() { [ "$(echo $held | wc -w)" -eq 2 ] && has "$held" "${C[2]:-none}" && has "$held" "${id:-none}"; }
check "the quota holds stay held (the client's and alice's: $held)" quota_kept
id2=$(send bob 3)
check "bob's mail after the resume goes out (his 4th of the day, 10 for him in the map)" \
	wait_for 30 delivered 9
check "user list: bob 4/10" user_state '^bob +active +4/10 '
qh=$(stat quota.held_quota); qs=$(stat quota.held_suspended); qc=$(stat quota.counted)
check "counters (since the restart): quota.held_quota = 1 ($qh), held_suspended = 0 ($qs), counted = 2 ($qc)" \
	test "$qh" = 1 -a "$qs" = 0 -a "$qc" = 2
check "sluiced stops cleanly" t_stop
finish
