-- lab.lua - shared by the Lua profiles in bench/pktgen: the lab's
-- addresses (edit here or set the environment) and a phase runner that
-- prints what Pktgen-DPDK sent and received in each phase.
--
-- Not run on its own: syn_flood.lua, arp_storm.lua, garbage_mix.lua and
-- size_sweep.lua load it with dofile (see README). Pktgen-DPDK's Lua API:
-- pktgen.set/set_mac/set_ipaddr/set_type/set_proto/rnd/start/stop/delay,
-- pktgen.portStats(portlist, "port").

local lab = {}

local function env(name, default)
	local v = os.getenv(name)
	if v == nil or v == "" then return default end
	return v
end

lab.port       = env("LAB_PORT", "0")			-- Pktgen's port facing the appliance
lab.src_mac    = env("LAB_SRC_MAC", "02:00:00:00:00:01")	-- that port's MAC
lab.dst_mac    = env("LAB_DST_MAC", "02:00:00:00:00:02")	-- the appliance's MAC
lab.src_ip     = env("LAB_SRC_IP", "198.18.0.1/24")	-- the sender, with the link's prefix
lab.dst_ip     = env("LAB_DST_IP", "198.18.0.2")		-- the appliance
lab.rate       = tonumber(env("LAB_RATE", "10"))		-- percent of line rate
lab.phase_ms   = tonumber(env("LAB_PHASE_MS", "10000"))	-- each phase's length
-- An optional command printing the appliance's counters after each phase
-- (e.g. "ssh appliance sluicectl stats"); empty: not run.
lab.stats_cmd  = env("LAB_STATS_CMD", "")

-- The port's common setup: addresses, rate, endless count, no random masks.
function lab.base(type)
	local p = lab.port
	pktgen.stop(p)
	pktgen.set(p, "count", 0)
	pktgen.set(p, "rate", lab.rate)
	pktgen.set(p, "burst", 32)
	pktgen.set_type(p, type or "ipv4")
	pktgen.set_mac(p, "src", lab.src_mac)
	pktgen.set_mac(p, "dst", lab.dst_mac)
	pktgen.set_ipaddr(p, "src", lab.src_ip)
	pktgen.set_ipaddr(p, "dst", lab.dst_ip)
	for i = 0, 31 do pktgen.rnd(p, i, 0, "off") end
end

local function port_counts()
	local s = pktgen.portStats(lab.port, "port")
	local t = s[tonumber(lab.port)] or s
	return t.opackets or 0, t.ipackets or 0
end

-- Send for ms milliseconds as set up; print what went out and came back.
function lab.phase(name, ms)
	local o0, i0 = port_counts()
	pktgen.start(lab.port)
	pktgen.delay(ms or lab.phase_ms)
	pktgen.stop(lab.port)
	pktgen.delay(500)		-- the last answers
	local o1, i1 = port_counts()
	printf("%-34s sent %12d  received %12d\n", name, o1 - o0, i1 - i0)
	if lab.stats_cmd ~= "" then
		local f = io.popen(lab.stats_cmd)
		if f then
			printf("%s\n", f:read("a") or "")
			f:close()
		end
	end
end

return lab
