-- garbage_mix.lua - malformed and unwanted frames, one kind a phase: the
-- Lua counterpart of garbage_mix.pkt, with per-phase counts.
--
-- Run as syn_flood.lua. Each kind must be dropped or answered by its
-- counter on the appliance (net.ip_drop_cksum, net.ip_drop_len,
-- tcp.drop_cksum, tcp.rst_out, net.icmp_tx_unreach (rate-limited),
-- net.icmp_tx_echo_reply) while SMTP goes on being served.
package.path = package.path .. ";?.lua;test/?.lua;app/?.lua;"
require "Pktgen"
local lab = dofile((os.getenv("SLUICE_PKTGEN") or "bench/pktgen") .. "/lab.lua")
local p = lab.port

local phases = {
	{ "bad IPv4 header checksums", "udp", 128, { { 24, "XXXXXXXXXXXXXXXX................" } } },
	{ "IPv4 total lengths that lie", "udp", 128, { { 16, "XXXXXXXXXXXXXXXX................" } } },
	{ "TCP to port 25, bad checksums", "tcp", 96, { { 48, "................XXXXXXXXXXXXXXXX" } } },
	{ "TCP random flags, random ports", "tcp", 96, { { 46, "........XXXXXXXX................" },
						      { 34, "XXXXXXXXXXXXXXXX................" } } },
	{ "UDP to random closed ports", "udp", 256, { { 34, "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX" } } },
	{ "ICMP echo requests", "icmp", 512, {} },
}

for _, ph in ipairs(phases) do
	lab.base("ipv4")
	pktgen.set_proto(p, ph[2])
	pktgen.set(p, "size", ph[3])
	pktgen.set(p, "sport", 41000)
	pktgen.set(p, "dport", ph[2] == "tcp" and 25 or 9)
	for i, m in ipairs(ph[4]) do pktgen.rnd(p, i - 1, m[1], m[2]) end
	lab.phase(ph[1])
end
lab.base("ipv4")
