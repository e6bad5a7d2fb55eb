#!/usr/bin/env bash
# tls_e2e.sh BUILD_DIR [REPORT_DIR] - the STARTTLS policy of a running
# sluiced on port 25 ([tls] ciphers/ciphersuites/groups, dataplane/smtp/tls.h)
# and its certificate reload.
#
#  1. openssl s_client -starttls smtp: TLS 1.3 and TLS 1.2 (ECDHE+AEAD) are
#     taken; TLS 1.1, a CBC or static-RSA TLS 1.2 cipher, and a P-384-only
#     client are refused; the server's order wins (AES-256 over the
#     client's preferred AES-128).
#  2. testssl.sh (Debian's testssl) against STARTTLS on 198.18.0.2:25:
#     protocols, cipher categories, forward secrecy, server preference and
#     the vulnerability checks; its JSON must hold no finding of severity
#     MEDIUM, HIGH or CRITICAL other than the certificate-trust findings a
#     test certificate must have (self-signed, so no chain of trust; no
#     OCSP/CRL URI: README "TLS" says why they are accepted).
#     TLS_E2E_FULL=1 runs testssl's full default set instead (minutes; for
#     the report kept with the note), REPORT_DIR keeps its files.
#  3. Certificate reload: the PEM files named in [tls] are replaced by
#     another pair and `sluicectl reload` is run: a new session gets the
#     new certificate (fingerprint), with no restart. A pair whose key does
#     not match is refused whole and the new certificate stays in force.
set -u
. "$(dirname "$0")/lib.sh"
t_setup tls "$1"
REPORT_DIR=${2:-}
ns() { ip netns exec "$T_NS" "$@"; }
ctl() { "$T_CTL" -s "$T_SOCK" "$@"; }
TESTSSL=$(command -v testssl || command -v testssl.sh || true)

# pair NAME: an EC P-256 certificate and key in $T_DIR/NAME.{crt,key}
pair() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
		-subj "/CN=mx-$1.sluice.test" -addext "subjectAltName=DNS:mx-$1.sluice.test" \
		-keyout "$T_DIR/$1.key" -out "$T_DIR/$1.crt" >/dev/null 2>&1
}
pair a && pair b && pair c || { fail "openssl req could not make test certificates"; finish; exit; }
cp "$T_DIR/a.crt" "$T_DIR/cert.pem"; cp "$T_DIR/a.key" "$T_DIR/key.pem"
fp() { openssl x509 -noout -fingerprint -sha256 -in "$1" | cut -d= -f2; }
FP_A=$(fp "$T_DIR/a.crt"); FP_B=$(fp "$T_DIR/b.crt")

t_conf "[delivery]
enabled = no
[tls]
cert = $T_DIR/cert.pem
key = $T_DIR/key.pem"
check "sluiced starts with [tls] cert/key" t_start

# sc ARGS...: one STARTTLS handshake (no data); prints s_client's summary
sc() {
	echo QUIT | ns timeout 20 openssl s_client -connect 198.18.0.2:25 -starttls smtp \
		-servername mx.sluice.test "$@" 2>&1
}
# sc_ok WANT ARGS...: the handshake completes and its summary holds WANT
sc_ok() {
	local want=$1 out; shift
	out=$(sc "$@")
	grep -q "^New, TLSv1.[23], Cipher is " <<<"$out" && grep -qF -- "$want" <<<"$out"
}
sc_refused() {
	local out; out=$(sc "$@")
	! grep -q "^New, TLSv1.[23], Cipher is " <<<"$out" && grep -q "CONNECTED" <<<"$out"
}
served_fp() {
	sc </dev/null | openssl x509 -noout -fingerprint -sha256 2>/dev/null | cut -d= -f2
}

# --- 1. the policy from a client's side ---------------------------------------------------
check "TLS 1.3 taken (TLS_AES_256_GCM_SHA384)" sc_ok "TLS_AES_256_GCM_SHA384" -tls1_3
check "TLS 1.2 ECDHE-ECDSA-CHACHA20-POLY1305 taken" \
	sc_ok "ECDHE-ECDSA-CHACHA20-POLY1305" -tls1_2 -cipher ECDHE-ECDSA-CHACHA20-POLY1305
check "TLS 1.1 refused" sc_refused -tls1_1 -cipher 'ALL:@SECLEVEL=0'
check "TLS 1.2 CBC cipher (ECDHE-ECDSA-AES128-SHA) refused" \
	sc_refused -tls1_2 -cipher ECDHE-ECDSA-AES128-SHA
check "TLS 1.2 CBC-SHA384 cipher refused" sc_refused -tls1_2 -cipher ECDHE-ECDSA-AES256-SHA384
check "TLS 1.2 static RSA (AES256-GCM-SHA384) refused" sc_refused -tls1_2 -cipher AES256-GCM-SHA384
check "a client with only P-384 refused" sc_refused -tls1_3 -groups P-384
check "the server's order: AES-256 over the client's AES-128 first" \
	sc_ok "ECDHE-ECDSA-AES256-GCM-SHA384" -tls1_2 \
	-cipher ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384

# --- 2. testssl.sh ------------------------------------------------------------------------
# Findings a test certificate must have: its trust and revocation data.
ACCEPT='^(cert_chain_of_trust|cert_trust|cert_ocspURL|cert_crlDistributionPoints|cert_revocation|cert_CN_mismatch|cert_caIssuers)$'
if [ -z "$TESTSSL" ]; then
	fail "testssl is not installed (firmware-config/deps.sh test installs testssl.sh)"
else
	json=$T_DIR/testssl.json
	if [ "${TLS_E2E_FULL:-0}" = 1 ]; then
		args=()
	else
		args=(--protocols --std --fs --server-preference --vulnerable --fast)
	fi
	t0=$SECONDS
	ns "$TESTSSL" --quiet --color 0 --warnings off --nodns min --openssl-timeout 10 \
		--connect-timeout 10 --starttls smtp "${args[@]}" --jsonfile "$json" \
		198.18.0.2:25 >"$T_DIR/testssl.txt" 2>&1
	echo "# testssl ran ${args[*]:-full} in $((SECONDS - t0)) s"
	summary=$(/usr/bin/python3 - "$json" "$ACCEPT" <<'PY'
import json, re, sys
try:
    rows = json.load(open(sys.argv[1]))
except Exception as e:
    print("UNREADABLE", e); sys.exit(0)
accept = re.compile(sys.argv[2])
print("ROWS", len(rows))
for r in rows:
    sev = r.get("severity", "")
    if sev in ("MEDIUM", "HIGH", "CRITICAL"):
        print("ACCEPTED" if accept.match(r["id"]) else "BAD", r["id"], sev + ":", r["finding"])
    if r["id"] in ("SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3"):
        print("PROTO", r["id"], r["finding"].split()[0] + "_" + r["finding"].split()[-1]
              if r["finding"].startswith("not") else r["id"] + " " + r["finding"].split()[0])
PY
)
	echo "$summary" | sed 's/^/# /'
	rows=$(sed -n 's/^ROWS //p' <<<"$summary")
	check "testssl produced findings (${rows:-none} rows)" test "${rows:-0}" -gt 20
	check "testssl: no MEDIUM/HIGH/CRITICAL finding beyond the test certificate's trust" \
		test -n "$rows" -a "$(grep -c '^BAD' <<<"$summary")" -eq 0
	check "testssl: TLS 1.2 and TLS 1.3 offered" \
		test "$(grep -cE '^PROTO TLS1_[23] TLS1_[23] offered' <<<"$summary")" -eq 2
	check "testssl: SSLv2, SSLv3, TLS 1.0, TLS 1.1 not offered" \
		test "$(grep -cE '^PROTO (SSLv2|SSLv3|TLS1|TLS1_1) not_offered' <<<"$summary")" -eq 4
	if [ -n "$REPORT_DIR" ]; then
		mkdir -p "$REPORT_DIR" && cp "$json" "$T_DIR/testssl.txt" "$REPORT_DIR/"
	fi
fi

# --- 3. certificate reload ----------------------------------------------------------------
check "the first certificate is served" test "$(served_fp)" = "$FP_A"
cp "$T_DIR/b.crt" "$T_DIR/cert.pem"; cp "$T_DIR/b.key" "$T_DIR/key.pem"
out=$(ctl reload 2>&1); st=$?
check "sluicectl reload with a new pair in the same files: ok (exit $st)" test $st -eq 0
check "a new session gets the new certificate without a restart" \
	wait_for 20 sh -c "[ \"\$(echo QUIT | ip netns exec $T_NS timeout 20 openssl s_client \
		-connect 198.18.0.2:25 -starttls smtp 2>/dev/null | openssl x509 -noout \
		-fingerprint -sha256 2>/dev/null | cut -d= -f2)\" = '$FP_B' ]"
check "the same process serves it (pid $T_PID alive)" kill -0 "$T_PID"
cp "$T_DIR/c.crt" "$T_DIR/cert.pem"	# key.pem is still b's: no match
out=$(ctl reload 2>&1); st=$?
refused() { [ "$st" -ne 0 ] && grep -q "nothing applied" <<<"$out"; }
check "a pair whose key does not match is refused (exit $st)" refused
check "... and the certificate in force stays the reloaded one" test "$(served_fp)" = "$FP_B"

check "sluiced stops cleanly" t_stop
finish
