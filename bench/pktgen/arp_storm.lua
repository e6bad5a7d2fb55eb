-- arp_storm.lua - broadcast ARP requests for the appliance's address from
-- random senders on its link, at rising rates: the Lua counterpart of
-- arp_storm.pkt.
--
-- Run as syn_flood.lua. The appliance answers each and learns each sender
-- in a bounded cache: watch net.arp_rx_request, net.arp_cache_full, and
-- that SMTP sessions from the real neighbours still complete.
package.path = package.path .. ";?.lua;test/?.lua;app/?.lua;"
require "Pktgen"
local lab = dofile((os.getenv("SLUICE_PKTGEN") or "bench/pktgen") .. "/lab.lua")
local p = lab.port

lab.base("arp")
pktgen.set(p, "size", 64)
pktgen.set_mac(p, "dst", "ff:ff:ff:ff:ff:ff")
-- random sender MAC (Ethernet source at 8, ARP sender hardware address at
-- 24) and sender address within the /24 (offset 28)
pktgen.rnd(p, 0, 8, "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX")
pktgen.rnd(p, 1, 24, "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX")
pktgen.rnd(p, 2, 28, "110001100001001000000000XXXXXXXX")

for _, rate in ipairs({ 1, 10, 100 }) do
	pktgen.set(p, "rate", rate)
	lab.phase(string.format("ARP storm at %d%% of line rate", rate))
end
lab.base("ipv4")
