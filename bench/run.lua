--- `make bench`: throughput, CPU and memory of lua-eip's delete paths against a fast local
-- server, next to a bare-libcurl floor and LuaSocket; prints a Markdown table.
--
-- Two private nginx instances on 127.0.0.1 (spec/support/nginx.lua runs them; both stop at
-- the end, and a watchdog stops them if this process dies first):
--   fast  DELETE /v2.0/{project}/bandwidths/{id} -> `return 204;`
--   slow  the same after ngx.sleep(0.02) (Debian's nginx has no echo_sleep)
-- Every measurement runs in its own process (bench/worker.lua, build/bench/floor), so its peak
-- RSS (VmHWM) is its own; rows are interleaved over the repetitions and medians reported.
--
-- Environment: BENCH_N (requests per row, default 20000), BENCH_REPS (3..5, default 5),
-- BENCH_SOCKET_N (LuaSocket requests, default min(N, 5000): one TCP connection each),
-- BENCH_SOAK_N (ids of the batch RSS-growth run, default 100000; `make soak` covers the
-- sequential path), BENCH_FLOOR (floor binary).
package.path = "./?.lua;" .. package.path
local nginx = require "spec.support.nginx"
local stats = require "bench.stats"
local core = require "eip.core"

local N = math.tointeger(tonumber(os.getenv("BENCH_N") or "20000"))
local REPS = math.tointeger(tonumber(os.getenv("BENCH_REPS") or "5"))
local SOCKET_N = math.tointeger(tonumber(os.getenv("BENCH_SOCKET_N") or tostring(math.min(N or 0, 5000))))
local SOAK_N = math.tointeger(tonumber(os.getenv("BENCH_SOAK_N") or "100000"))
local FLOOR = os.getenv("BENCH_FLOOR") or "build/bench/floor"
local SLOW_IDS, SLOW_CONCURRENCY, SLOW_DELAY = 1000, 32, 0.02
assert(N and N > 0 and REPS and REPS >= 1 and SOCKET_N and SOCKET_N > 0 and SOAK_N and SOAK_N >= 10,
  "BENCH_N, BENCH_REPS, BENCH_SOCKET_N and BENCH_SOAK_N must be positive integers")

local TARGETS = { sequential_ratio = 0.90, overhead_us = 10, batch_ratio = 1.3, rss_growth_kib = 1024 }

local function start_server(name, handler)
  return nginx.start{
    name = name, template = "bench/nginx.conf.in", label = "bench " .. name .. " server",
    fields = { WATCHDOG_DIR = nginx.dir_of("@spec/support/openresty/watchdog.lua"), HANDLER = handler },
  }
end

-- Runs one measurement process; returns its key=value fields as numbers.
local function measure(cmd)
  local out = nginx.capture(cmd .. " 2>&1")
  local fields = {}
  for k, v in out:gmatch("(%w[%w_]*)=(%S+)") do fields[k] = tonumber(v) end
  if not (fields.requests and fields.seconds) then error("bench: `" .. cmd .. "` printed: " .. out, 0) end
  if fields.failed ~= 0 then error("bench: `" .. cmd .. "`: " .. fields.failed .. " requests failed", 0) end
  return fields
end

local median = stats.median

local function worker(mode, url, n, concurrency)
  return string.format("%s bench/worker.lua %s %s %d %s", nginx.shell_quote(arg[-1] or "lua5.4"), mode,
    nginx.shell_quote(url), n, concurrency or "")
end

local function rows_for(fast)
  local prefix = fast.url .. "/v2.0/0a1b2c3d4e5f60718293a4b5c6d7e8f9/bandwidths/bw-"
  return {
    { key = "floor", label = "(a) floor: bare libcurl C, one reused easy handle", n = N,
      cmd = nginx.shell_quote(FLOOR) .. " " .. nginx.shell_quote(prefix) .. " " .. N },
    { key = "seq", label = "(b) `client:delete_bandwidth`, token auth", n = N, cmd = worker("seq", fast.url, N) },
    { key = "aksk", label = "(b') `client:delete_bandwidth`, AK/SK signed", n = N,
      cmd = worker("seq-aksk", fast.url, N) },
    { key = "c1", label = "(c) `delete_bandwidths`, concurrency 1", n = N, cmd = worker("batch", fast.url, N, 1) },
    { key = "c8", label = "(c) `delete_bandwidths`, concurrency 8", n = N, cmd = worker("batch", fast.url, N, 8) },
    { key = "c32", label = "(c) `delete_bandwidths`, concurrency 32", n = N,
      cmd = worker("batch", fast.url, N, 32) },
    { key = "socket", label = "(d) LuaSocket `socket.http` (no keep-alive)", n = SOCKET_N,
      cmd = worker("socket", fast.url, SOCKET_N) },
  }
end

-- Every row REPS times, interleaved (a slow moment of the machine hits all rows alike).
local function run_rows(rows, slow)
  local slow_runs = {}
  for _, row in ipairs(rows) do row.runs = {} end
  for rep = 1, REPS do
    io.stderr:write(string.format("bench: repetition %d/%d\n", rep, REPS))
    for _, row in ipairs(rows) do row.runs[rep] = measure(row.cmd) end
    slow_runs[rep] = measure(worker("batch", slow.url, SLOW_IDS, SLOW_CONCURRENCY))
  end
  -- Ratios and CPU differences are taken within a repetition (the rows of one repetition run
  -- back to back), then the median over repetitions: a busy moment of the machine slows the
  -- floor and the row it is compared with alike.
  local floor_runs = rows[1].runs
  for _, row in ipairs(rows) do
    local rates, cpu, rss, ratios, extra = {}, {}, {}, {}, {}
    for i, r in ipairs(row.runs) do
      local f = floor_runs[i]
      rates[i], cpu[i], rss[i] = r.requests / r.seconds, r.cpu / r.requests * 1e6, r.rss_kib
      ratios[i] = rates[i] / (f.requests / f.seconds)
      extra[i] = cpu[i] - f.cpu / f.requests * 1e6
    end
    row.rate, row.cpu_us, row.rss_kib = median(rates), median(cpu), median(rss)
    row.ratio, row.extra_cpu_us = median(ratios), median(extra)
  end
  local secs = {}
  for i, r in ipairs(slow_runs) do secs[i] = r.seconds end
  return median(secs)
end

local fmt_rate = stats.fmt_rate

local function verdict(ok) return ok and "met" or "**missed**" end

local function report(rows, slow_seconds, soak)
  local by = {}
  for _, row in ipairs(rows) do by[row.key] = row end
  local nginx_version = nginx.capture(nginx.shell_quote(nginx.find()) .. " -v 2>&1"):match("nginx/(%S+)") or "?"
  print(string.format("## lua-eip benchmark: %d requests per row, median of %d runs", N, REPS))
  print()
  print(string.format("Server: nginx %s, 1 worker, `return 204` on 127.0.0.1. Client: %s, %s.", nginx_version,
    _VERSION, core.backend:match("^(%S+)") or core.backend))
  print()
  print("| measurement | requests | requests/s | × floor ¹ | CPU µs/request | peak RSS MiB |")
  print("|---|---:|---:|---:|---:|---:|")
  for _, row in ipairs(rows) do
    print(string.format("| %s | %d | %s | %.2f | %.1f | %.1f |", row.label, row.n, fmt_rate(row.rate),
      row.ratio, row.cpu_us, row.rss_kib / 1024))
  end
  print()
  local ratio = by.seq.ratio
  local overhead = by.seq.extra_cpu_us
  local ideal = math.ceil(SLOW_IDS / SLOW_CONCURRENCY) * SLOW_DELAY
  local growth = soak.rss_end_kib - soak.rss_warm_kib
  print(string.format("- Sequential `delete_bandwidth` at %.2f× the floor (target ≥ %.2f×): %s.", ratio,
    TARGETS.sequential_ratio, verdict(ratio >= TARGETS.sequential_ratio)))
  print(string.format("- AK/SK signing: %.2f× the floor against %.2f× with a token; %.1f µs more CPU per "
    .. "request ((b') minus (b)).", by.aksk.ratio, ratio, by.aksk.extra_cpu_us - overhead))
  print(string.format("- Lua+C overhead per call beyond libcurl's own work: %.1f µs (target ≤ %d µs): %s. "
    .. "Method: CPU time per request (user+system: os.clock, CLOCK_PROCESS_CPUTIME_ID) of (b) minus (a) "
    .. "within each repetition, median over repetitions (`make bench-profile` counts instructions instead).",
    overhead, TARGETS.overhead_us, verdict(overhead <= TARGETS.overhead_us)))
  print(string.format("- Batch of %d ids at concurrency %d against a server answering after %d ms: %.3f s; "
    .. "ideal ceil(%d/%d) × %d ms = %.3f s; %.2f× (target ≤ %.1f×): %s.", SLOW_IDS, SLOW_CONCURRENCY,
    SLOW_DELAY * 1000, slow_seconds, SLOW_IDS, SLOW_CONCURRENCY, SLOW_DELAY * 1000, ideal, slow_seconds / ideal,
    TARGETS.batch_ratio, verdict(slow_seconds / ideal <= TARGETS.batch_ratio)))
  print(string.format("- RSS growth over %d ids deleted by `delete_bandwidths` (concurrency 8, VmRSS after the "
    .. "first %d vs at the end, after a full GC): %+d KiB (target < %d KiB): %s. The sequential path has its own "
    .. "soak: `make soak`.", SOAK_N, SOAK_N // 10, growth, TARGETS.rss_growth_kib,
    verdict(growth < TARGETS.rss_growth_kib)))
  print("- ¹ each row's rate over the floor's in the same repetition, median over repetitions (so the "
    .. "column is not exactly the ratio of the medians).")
  print(string.format("- Batch rows send %s ids per `delete_bandwidths` call; (d) sends %d requests, each on a new "
    .. "connection (socket.http's default).", os.getenv("BENCH_CHUNK") or "1000", SOCKET_N))
end

local function main()
  local fast = start_server("benchfast", "return 204;")
  local slow = start_server("benchslow", string.format("content_by_lua_block { ngx.sleep(%g) ngx.exit(204) }",
    SLOW_DELAY))
  local ok, err = pcall(function()
    local rows = rows_for(fast)
    local t0 = core.monotime()
    local slow_seconds = run_rows(rows, slow)
    io.stderr:write("bench: RSS growth run\n")
    local soak = measure(worker("soak", fast.url, SOAK_N, 8))
    report(rows, slow_seconds, soak)
    io.stderr:write(string.format("bench: done in %.0f s\n", core.monotime() - t0))
  end)
  fast:stop()
  slow:stop()
  if not ok then error(err, 0) end
end

main()
