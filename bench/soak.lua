-- Soak test (`make soak`): many delete_bandwidth calls through one client against the EIP
-- emulator, watching this process's resident set size for growth.
--
--   lua5.4 bench/soak.lua [calls] [max_growth_kib]     (from the repository root)
--
-- The emulator answers every DELETE with 204 through one `times = -1` injection rule, so no
-- bandwidth has to be created per call. VmRSS is sampled every 10 % of the calls (after a
-- full garbage collection, so uncollected Lua garbage does not count as growth); the growth
-- reported is from the first sample (call 10,000 by default: by then every buffer and the
-- keep-alive connection have reached their steady size) to the last. The script fails when
-- that growth exceeds max_growth_kib (default 1024).
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
package.cpath = "build/lua5.4/?.so;" .. package.cpath

local eip = require "eip"
local emulator = require "spec.support.emulator"

local CALLS = math.tointeger(tonumber(arg[1] or "100000"))
local MAX_GROWTH_KIB = tonumber(arg[2] or "1024")
local STEP = CALLS // 10
local BANDWIDTH_ID = "3fa1e2b4-1111-2222-3333-444455556666"

local function rss_kib()
  local f = assert(io.open("/proc/self/status", "r"))
  local text = f:read("*a")
  f:close()
  return tonumber(text:match("VmRSS:%s*(%d+)%s*kB"))
end

local function soak(emu)
  emu:inject{ method = "DELETE", status = 204, times = -1 }
  local client = eip.new{ endpoint = emu.url, project_id = emu.project_id, token = emu.token, timeout = 5 }
  local samples, started = {}, os.clock()
  for i = 1, CALLS do
    local res = client:delete_bandwidth(BANDWIDTH_ID)
    if res.status ~= 204 then
      error("call " .. i .. ": unexpected status " .. tostring(res.status))
    end
    if i % STEP == 0 then
      collectgarbage("collect")
      samples[#samples + 1] = { calls = i, rss = rss_kib(), lua = collectgarbage("count") }
      print(string.format("%7d calls  VmRSS %6d KiB  Lua heap %8.1f KiB", i, samples[#samples].rss,
        samples[#samples].lua))
    end
  end
  client:close()
  return samples, os.clock() - started
end

local function main()
  local emu = emulator.start()
  local ok, samples, cpu = pcall(soak, emu)
  local stats = ok and emu:stats() or nil
  emu:stop()
  if not ok then
    io.stderr:write("soak: ", tostring(samples), "\n")
    os.exit(1)
  end
  local first, last = samples[1], samples[#samples]
  local growth = last.rss - first.rss
  print(string.format("soak: %d calls, %.1f s CPU, %d requests seen by the emulator over %d connection(s)",
    CALLS, cpu, stats.requests, stats.connections))
  print(string.format("soak: VmRSS growth from call %d to call %d: %d KiB (limit %d KiB)",
    first.calls, last.calls, growth, MAX_GROWTH_KIB))
  if growth > MAX_GROWTH_KIB then
    os.exit(1)
  end
end

main()
