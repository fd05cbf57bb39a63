--- `make bench` (its rate rows; alone: `make bench-rate`): batches against the emulator throttled
-- the way the real gateway throttles a user (429 APIGW.0308 beyond LIMIT requests in a
-- one-second window), N ids each. The ideal time is N / LIMIT seconds.
--   fixed      concurrency 32, adaptive = false: hammers, and retries what is refused
--   adaptive   concurrency 32, no rate given: the batch finds the limit itself
--   rate       rate = LIMIT: paced from the start
--   nginx x2   two nginx workers, each N/2 ids at once, sharing a lua_shared_dict bucket at LIMIT
-- Environment: BENCH_RATE_N (ids, default 1000), BENCH_RATE_LIMIT (default 100).
package.path = "./?.lua;" .. package.path
local eip = require "eip"
local core = require "eip.core"
local cjson = require "cjson"
local emulator = require "spec.support.emulator"
local launcher = require "spec.support.openresty.launcher"

local N = math.tointeger(tonumber(os.getenv("BENCH_RATE_N") or "1000"))
local LIMIT = math.tointeger(tonumber(os.getenv("BENCH_RATE_LIMIT") or "100"))
assert(N and N >= 10 and LIMIT and LIMIT >= 1, "BENCH_RATE_N and BENCH_RATE_LIMIT must be positive integers")
local IDEAL = N / LIMIT
local TARGETS = { adaptive = { ratio = 1.25, refused = 0.05 }, rate = { ratio = 1.1, refused = 0 },
  nginx = { ratio = 1.1, refused = 0 } }

local function client(emu)
  return eip.new{ endpoint = emu.url, project_id = emu.project_id, token = emu.token, timeout = 10 }
end

-- One batch through a plain client; returns { seconds, sent, refused, failed }.
local function batch(emu, opts)
  local ids = emu:create_bandwidths(N)
  emu:reset_counters()
  local c = client(emu)
  local t0 = core.monotime()
  local _, summary = c:delete_bandwidths(ids, opts)
  local seconds = core.monotime() - t0
  c:close()
  local s = emu:stats()
  return { seconds = seconds, sent = s.requests, refused = s.throttled, failed = summary.failed + summary.not_sent }
end

-- The two-worker row: the OpenResty test app's /t/shared_rate (spec/support/openresty).
local function nginx_batch(emu)
  local app = launcher.start(emu, { timeout = 10, workers = 2 })
  local ok, result = pcall(function()
    local half = math.floor(N / 2)
    local ids = { emu:create_bandwidths(half), emu:create_bandwidths(N - half) }
    emu:reset_counters()
    local function call(method, path, body)
      local resp = assert(emulator.http{ port = app.port, method = method, path = path, timeout = 10,
        body = body and cjson.encode(body) or nil, headers = body and { ["Content-Type"] = "application/json" } })
      return cjson.decode(resp.body)
    end
    local t0 = core.monotime()
    local generation = call("POST", "/t/shared_rate", { rate = LIMIT, ids = ids }).generation
    local results
    repeat
      core.sleep(0.05)
      results = call("GET", "/t/shared_rate?generation=" .. generation)
    until results["0"] and results["1"]
    local seconds = core.monotime() - t0
    local s = emu:stats()
    local failed = 0
    for _, r in pairs(results) do failed = failed + r.failed + r.not_sent end
    return { seconds = seconds, sent = s.requests, refused = s.throttled, failed = failed }
  end)
  app:stop()
  if not ok then error(result, 0) end
  return result
end

local function main()
  local emu = emulator.start()
  local ok, rows = pcall(function()
    emu:set_knobs{ throttle_rate = LIMIT }
    return {
      { "fixed concurrency 32 (adaptive = false)", nil, batch(emu, { concurrency = 32, adaptive = false }) },
      { "adaptive, no rate given", TARGETS.adaptive, batch(emu, { concurrency = 32 }) },
      { "rate = " .. LIMIT, TARGETS.rate, batch(emu, { concurrency = 32, rate = LIMIT }) },
      { "2 nginx workers, shared dict at " .. LIMIT .. "/s", TARGETS.nginx, nginx_batch(emu) },
    }
  end)
  emu:stop()
  if not ok then error(rows, 0) end
  print(string.format("## Batches against a limit of %d requests/s (%d ids: ideal %.1f s)", LIMIT, N, IDEAL))
  print()
  print("| batch | time | vs ideal | requests | refused (429) | failed ids | target |")
  print("|---|---:|---:|---:|---:|---:|---|")
  for _, row in ipairs(rows) do
    local r, t = row[3], row[2]
    local ratio, share = r.seconds / IDEAL, r.refused / math.max(1, r.sent)
    local target = "—"
    if t then
      local met = ratio <= t.ratio and share <= t.refused and r.failed == 0
      target = string.format("≤ %.2f×, ≤ %d%% refused: %s", t.ratio, t.refused * 100, met and "met" or "**missed**")
    end
    print(string.format("| %s | %.2f s | %.2f× | %d | %d (%.1f%%) | %d | %s |", row[1], r.seconds, ratio, r.sent,
      r.refused, share * 100, r.failed, target))
  end
end

main()
