#!/usr/bin/env bash
# gen_flood.sh - every Pktgen profile shipped in bench/pktgen/ through
# `sluice-gen flood` against sluiced over net_memif (issue 14, acceptance
# 4): each profile's frames reach the appliance and move the counters its
# kind must move, and after each flood SMTP sessions still complete.
set -u
. "$(dirname "$0")/lib.sh"
t_setup gen-flood "$1"
. "$(dirname "$0")/gen_lib.sh"
PKT=$(cd "$(dirname "$0")/../../bench/pktgen" && pwd)
RATE=${GEN_FLOOD_LINE_RATE:-100000}	# "rate 1" = 1000 frames/s

gen_conf "[delivery]
enabled = no"
check "sluiced starts on a memif port" gen_start_sluiced

# the counter each profile must move on the appliance
declare -A want=(
	[syn_flood]="tcp.syncookies_sent net.ip_tx_noroute"
	[arp_storm]="net.arp_rx_request"
	[garbage_mix]="net.ip_drop_cksum net.ip_drop_len tcp.drop_cksum net.icmp_tx_echo_reply"
	[size_sweep]="net.icmp_tx_unreach tcp.rst_out"
)
n=0
for f in "$PKT"/*.pkt; do
	p=$(basename "$f" .pkt)
	n=$((n + 1))
	declare -A before=()
	rx0=$(stat net.rx_frames)
	for c in ${want[$p]:-net.rx_frames}; do before[$c]=$(stat "$c"); done
	gen_run "flood-$p" flood --profile "$f" --line-rate "$RATE" --duration 30
	gen_wait "$GEN_PID" 60; st=$?
	check "$p: sluice-gen flood ran the profile (status $st)" [ "$st" -eq 0 ]
	fr=$(gen_field "flood-$p" flood_frames)
	check "$p: frames sent ($fr)" [ "${fr:-0}" -gt 100 ] 2>/dev/null
	rx1=$(stat net.rx_frames)
	check "$p: the appliance received them ($((rx1 - rx0)) frames)" \
		[ $((rx1 - rx0)) -ge $((fr / 2)) ] 2>/dev/null
	for c in ${want[$p]:-net.rx_frames}; do
		v=$(stat "$c")
		check "$p: $c moved (${before[$c]} -> $v)" [ "$v" -gt "${before[$c]}" ] 2>/dev/null
	done
	check "$p: sluiced survived" kill -0 "$T_PID"
	gen_run "after-$p" client --count 20 --concurrency 4 --size 4k
	gen_wait "$GEN_PID" 90; st=$?
	ok_n=$(gen_field "after-$p" msg_ok)
	check "$p: afterwards 20 SMTP sessions complete (status $st, $ok_n x 250)" \
		[ "$st" -eq 0 -a "$ok_n" = 20 ]
done
check "all four profiles were found and run ($n)" [ "$n" -eq 4 ]
finish
