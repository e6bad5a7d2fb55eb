-- syn_flood.lua - TCP SYNs from random sources at the appliance's SMTP
-- port, at rising rates: the Lua counterpart of syn_flood.pkt.
--
-- Run: pktgen -l 0-2 -n 4 -a PCI -- -P -m "[1:2].0" -f bench/pktgen/syn_flood.lua
-- (with LAB_* set as in lab.lua). During each step, start SMTP sessions to
-- the appliance from another host: they must complete. Watch on the
-- appliance: tcp.syncookies_sent, tcp.drop_listen_full, net.ip_tx_noroute.
package.path = package.path .. ";?.lua;test/?.lua;app/?.lua;"
require "Pktgen"
local lab = dofile((os.getenv("SLUICE_PKTGEN") or "bench/pktgen") .. "/lab.lua")
local p = lab.port

lab.base("ipv4")
pktgen.set_proto(p, "tcp")
pktgen.set(p, "size", 64)
pktgen.set(p, "sport", 40000)
pktgen.set(p, "dport", 25)
-- every segment a SYN (the flags octet, frame offset 47, in the word at
-- 46); sources random within the sender's /23 (offset 26) and ports (34)
pktgen.rnd(p, 0, 46, "........00000010................")
pktgen.rnd(p, 1, 26, "11000110000100100000000XXXXXXXXX")
pktgen.rnd(p, 2, 34, "XXXXXXXXXXXXXXXX................")

for _, rate in ipairs({ 1, 5, 10, 25, 50, 100 }) do
	pktgen.set(p, "rate", rate)
	lab.phase(string.format("SYN flood at %d%% of line rate", rate))
end
lab.base("ipv4")
