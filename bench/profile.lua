--- `make bench-profile`: where a sequential delete_bandwidth spends its time beyond libcurl,
-- with a token and signed with AK/SK.
--
-- 1. callgrind instruction counts per request of the floor (build/bench/floor) and of
--    client:delete_bandwidth with a token (bench/worker.lua seq) and signed with AK/SK
--    (bench/worker.lua seq-aksk), each run at N and 3N requests so that start-up cancels out:
--    per request = (I(3N) - I(N)) / 2N. Also the inclusive counts of the C layers of each Lua
--    path (binding, signer, http.c, libcurl), from callgrind_annotate. The token delete's count
--    is checked against its target: at most 1.3 times the floor's.
-- 2. The Lua pipeline's steps timed one by one (CPU µs) with a transport that answers at once,
--    for both kinds of credentials.
-- BENCH_PROFILE_N (default 2000), BENCH_FLOOR (the floor binary).
package.path = "./?.lua;" .. package.path
local nginx = require "spec.support.nginx"

local N = math.tointeger(tonumber(os.getenv("BENCH_PROFILE_N") or "2000"))
local FLOOR = os.getenv("BENCH_FLOOR") or "build/bench/floor"
local PROJECT = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
local LUA = arg[-1] or "lua5.4"
local q = nginx.shell_quote

-- The target of issue 17: a token delete costs at most this many times the floor's instructions.
local INSTRUCTIONS_TARGET = 1.3

-- The C functions whose inclusive counts are shown, outermost first (those a path never calls
-- are left out of its rows).
local LAYERS = { "l_session_request", "eip_http_perform", "curl_easy_perform", "l_signer_headers", "l_sign",
  "eip_signer_sign", "eip_sign" }

local function callgrind(out, cmd)
  local rc = os.execute(string.format("valgrind --tool=callgrind --callgrind-out-file=%s %s >/dev/null 2>&1",
    q(out), cmd))
  assert(rc, "callgrind failed: " .. cmd)
  local text = nginx.read_file(out) or ""
  return tonumber(text:match("\nsummary: (%d+)") or text:match("\ntotals: (%d+)"))
end

-- Inclusive instruction counts by function name (the first column of callgrind_annotate).
local function inclusive(out)
  local counts = {}
  local text = nginx.capture("callgrind_annotate --inclusive=yes " .. q(out) .. " 2>/dev/null")
  for line in text:gmatch("[^\n]+") do
    local count, name = line:match("^%s*([%d,]+) %b()%s+%S-:([%w_]+)")
    local n = count and tonumber((count:gsub(",", "")))
    if n and (not counts[name] or counts[name] < n) then counts[name] = n end
  end
  return counts
end

local PATHS = { "floor", "seq", "seq-aksk" }

local function instructions(url, dir)
  local per, files, layers = {}, {}, {}
  local cmds = {
    floor = function(n) return q(FLOOR) .. " " .. q(url .. "/v2.0/" .. PROJECT .. "/bandwidths/bw-") .. " " .. n end,
    seq = function(n) return q(LUA) .. " bench/worker.lua seq " .. q(url) .. " " .. n end,
    ["seq-aksk"] = function(n) return q(LUA) .. " bench/worker.lua seq-aksk " .. q(url) .. " " .. n end,
  }
  for _, name in ipairs(PATHS) do
    local cmd = cmds[name]
    files[name] = { dir .. "/" .. name .. ".1", dir .. "/" .. name .. ".3" }
    local i1 = callgrind(files[name][1], cmd(N))
    local i3 = callgrind(files[name][2], cmd(3 * N))
    per[name] = (i3 - i1) / (2 * N)
    if name ~= "floor" then
      local c1, c3 = inclusive(files[name][1]), inclusive(files[name][2])
      layers[name] = {}
      for _, fn in ipairs(LAYERS) do
        if c1[fn] and c3[fn] then layers[name][fn] = (c3[fn] - c1[fn]) / (2 * N) end
      end
    end
  end
  return per, layers
end

-- The Lua steps of one delete_bandwidth, each timed alone (CPU µs, 200000 rounds): the
-- pipeline's steps (eip.pipeline) over an instant transport, with a token and with AK/SK.
local function lua_steps()
  local eip = require "eip"
  local validate = require "eip.validate"
  local ops = require "eip.ops"
  local pipeline = require "eip.pipeline"
  local auth = require "eip.auth"
  local answer = function()
    return { status = 204, request_id = "0123456789abcdef0123456789abcdef", body = "", truncated = false,
      elapsed = 0.0001, new_connections = 0 }
  end
  local instant = { send = answer, close = function() end }
  local token = "bench-token-0123456789abcdef"
  local keys = { ak = "AKBENCH000000000000", sk = "SKBENCHsecretsecretSKBENCHsecretsecret00" }
  local endpoint = "http://127.0.0.1:9"
  local function client(creds)
    local opts = { endpoint = endpoint, project_id = PROJECT, transport = instant }
    for k, v in pairs(creds) do opts[k] = v end
    return eip.new(opts)
  end
  local function runner(provider)
    return pipeline.new{ endpoint = endpoint, host = "127.0.0.1:9", base_path = "",
      project_id = PROJECT, provider = provider, transport = instant, timeout = 30,
      connect_timeout = 10, low_speed_limit = 100, low_speed_time = 10, max_body = 1048576,
      policy = { max_attempts = 3 } }
  end
  local none = function() return nil end
  local token_runner = runner(auth.resolve({ token = token }, nil, none))
  local aksk_runner = runner(auth.resolve(keys, nil, none))
  local token_client, aksk_client = client{ token = token }, client(keys)
  local id = "3fa1e2b4-1111-2222-3333-444455556666"
  local op = ops.delete_bandwidth(PROJECT, id, false)
  local resp = answer()
  local function answered_call()
    local call = token_runner:call(op)
    call:request()
    return call
  end
  local call = answered_call()
  local rounds = 200000
  local steps = {
    { "validate.id (eip.validate)", function() validate.id("bandwidth_id", id) end },
    { "ops.delete_bandwidth (the operation)", function() ops.delete_bandwidth(PROJECT, id, false) end },
    { "call:request, token (build, authenticate, transport request)", answered_call },
    { "call:request, AK/SK (build, sign, transport request)", function() aksk_runner:call(op):request() end },
    { "response table (what the C binding builds)", answer },
    { "call:response (map, decide, result table)", function() call:response(resp) end },
    { "whole delete_bandwidth, token, instant transport", function() token_client:delete_bandwidth(id) end },
    { "whole delete_bandwidth, AK/SK, instant transport", function() aksk_client:delete_bandwidth(id) end },
  }
  local out = {}
  for i, step in ipairs(steps) do
    collectgarbage()
    local c0 = os.clock()
    for _ = 1, rounds do step[2]() end
    out[i] = { step[1], (os.clock() - c0) / rounds * 1e6 }
  end
  return out
end

local LABELS = { seq = "(b) client:delete_bandwidth, token", ["seq-aksk"] = "(b') client:delete_bandwidth, AK/SK" }

local function main()
  local dir = nginx.capture("mktemp -d")
  local fast = nginx.start{ name = "benchprofile", template = "bench/nginx.conf.in", label = "bench profile server",
    fields = { WATCHDOG_DIR = nginx.dir_of("@spec/support/openresty/watchdog.lua"), HANDLER = "return 204;" } }
  local ok, per, layers = pcall(instructions, fast.url, dir)
  fast:stop()
  os.execute("rm -rf " .. q(dir))
  if not ok then error(per, 0) end
  print(string.format("## Instructions per request (callgrind, %d vs %d requests)", N, 3 * N))
  print()
  print("| path | instructions/request | × floor |")
  print("|---|---:|---:|")
  print(string.format("| (a) floor: bare libcurl | %.0f | 1.00 |", per.floor))
  for _, name in ipairs{ "seq", "seq-aksk" } do
    print(string.format("| %s | %.0f | %.2f |", LABELS[name], per[name], per[name] / per.floor))
    print(string.format("| %s − (a): Lua + binding + http.c | %.0f | |", LABELS[name]:match("^%S+"),
      per[name] - per.floor))
    for _, fn in ipairs(LAYERS) do
      local n = layers[name][fn]
      if n then print(string.format("| %s inside %s (inclusive) | %.0f | |", LABELS[name]:match("^%S+"), fn, n)) end
    end
  end
  print()
  local ratio = per.seq / per.floor
  print(string.format("- Instructions per token delete: %.0f, %.2f× the floor's %.0f (target ≤ %.1f×): %s.",
    per.seq, ratio, per.floor, INSTRUCTIONS_TARGET, ratio <= INSTRUCTIONS_TARGET and "met" or "**missed**"))
  print(string.format("- Signing with AK/SK adds %.0f instructions per delete ((b') − (b)); (b') is %.2f× the floor.",
    per["seq-aksk"] - per.seq, per["seq-aksk"] / per.floor))
  print()
  print("## Lua steps of one call (CPU µs each, timed alone)")
  print()
  print("| step | µs |")
  print("|---|---:|")
  for _, step in ipairs(lua_steps()) do print(string.format("| %s | %.3f |", step[1], step[2])) end
end

main()
