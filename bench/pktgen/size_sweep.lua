-- size_sweep.lua - UDP to the appliance's discard port and TCP to its SMTP
-- port at each frame size from 64 to 1518 octets in steps, then ICMP
-- echo: the Lua counterpart of size_sweep.pkt, with a line per size.
--
-- Run as syn_flood.lua. Every length the link allows must be taken: watch
-- net.rx_frames against what Pktgen sent, net.icmp_tx_unreach (UDP,
-- rate-limited) and tcp.rst_out (TCP, no connection).
package.path = package.path .. ";?.lua;test/?.lua;app/?.lua;"
require "Pktgen"
local lab = dofile((os.getenv("SLUICE_PKTGEN") or "bench/pktgen") .. "/lab.lua")
local p = lab.port
local sizes = { 64, 65, 128, 256, 511, 512, 1024, 1280, 1500, 1514, 1518 }

for _, proto in ipairs({ "udp", "tcp" }) do
	lab.base("ipv4")
	pktgen.set_proto(p, proto)
	pktgen.set(p, "sport", 20000)
	pktgen.set(p, "dport", proto == "tcp" and 25 or 9)
	pktgen.rnd(p, 0, 34, "XXXXXXXXXXXXXXXX................")	-- a new source port each
	for _, size in ipairs(sizes) do
		pktgen.set(p, "size", size)
		lab.phase(string.format("%s, %4d-octet frames", proto, size), lab.phase_ms // 4)
	end
end
lab.base("ipv4")
pktgen.set_proto(p, "icmp")
pktgen.set(p, "size", 512)
lab.phase("ICMP echo, 512 octets")
