--- `make bench`: throughput, CPU and memory of lua-eip's delete paths against a fast local
-- server, next to a bare-libcurl floor and LuaSocket; prints a Markdown table.
--
-- Three private nginx instances on 127.0.0.1 (spec/support/nginx.lua runs them; all stop at
-- the end, and a watchdog stops them if this process dies first):
--   fast  DELETE /v2.0/{project}/bandwidths/{id} -> `return 204;`
--   slow  the same after ngx.sleep(0.02) (Debian's nginx has no echo_sleep)
--   tls   fast over https (TLS 1.2/1.3, keep-alive), with a server certificate for IP
--         127.0.0.1 and DNS localhost issued by a CA made for the run with the openssl command
--         (spec/support/tls.lua, in a temp directory removed at the end). Its rows are ratios to
--         their own floor, the bare-libcurl one verifying that CA's chain and the host.
-- Every row runs in processes of its own (bench/worker.lua, build/bench/floor), so its peak RSS
-- (VmHWM) is its own; rows are interleaved over the repetitions and medians reported. The
-- connections a row opened (over TLS: its full handshakes) are nginx's stub_status "accepts"
-- after the row minus before it, less the status request itself.
-- The rows with a target and their floors are "sliced": each runs in one process for the whole
-- run, sending BENCH_SLICE requests when told (N "-"), and a repetition is N / BENCH_SLICE rounds
-- in which every sliced row of a list sends one slice, in a shuffled order. A sliced row's ratio
-- is its rate over its floor's in the same round -- runs a fraction of a second apart, where a
-- process per row and repetition put seconds between them, in which the load of a shared machine
-- moved the ratios by more than the targets' margins -- and the median over every round.
--
-- Environment: BENCH_N (requests per row, default 20000), BENCH_REPS (repetitions, default 5:
-- more narrow the medians; under 3 a median is hardly one), BENCH_SEED (the rows' shuffled
-- order: the run prints the one it used, default the time),
-- BENCH_SOCKET_N (LuaSocket requests, default min(N, 5000): one TCP connection each),
-- BENCH_LUASEC_N (LuaSec requests, default min(N, 200): one TLS handshake each),
-- BENCH_SOAK_N (ids of the batch RSS-growth run, default 100000; `make soak` covers the
-- sequential path), BENCH_SLICE (requests per slice of the sliced rows, default 500; it divides
-- BENCH_N), BENCH_FLOOR (floor binary), BENCH_ONLY=https (the HTTPS rows alone:
-- `make bench-https`).
package.path = "./?.lua;" .. package.path
local nginx = require "spec.support.nginx"
local tls = require "spec.support.tls"
local start_server = require("bench.server").start
local stats = require "bench.stats"
local core = require "eip.core"

local N = math.tointeger(tonumber(os.getenv("BENCH_N") or "20000"))
local REPS = math.tointeger(tonumber(os.getenv("BENCH_REPS") or "5"))
local SOCKET_N = math.tointeger(tonumber(os.getenv("BENCH_SOCKET_N") or tostring(math.min(N or 0, 5000))))
local LUASEC_N = math.tointeger(tonumber(os.getenv("BENCH_LUASEC_N") or tostring(math.min(N or 0, 200))))
local HTTPS_ONLY = os.getenv("BENCH_ONLY") == "https"
local SOAK_N = math.tointeger(tonumber(os.getenv("BENCH_SOAK_N") or "100000"))
local FLOOR = os.getenv("BENCH_FLOOR") or "build/bench/floor"
local SEED = math.tointeger(tonumber(os.getenv("BENCH_SEED") or "")) or os.time()
local SLICE = math.tointeger(tonumber(os.getenv("BENCH_SLICE") or tostring(math.min(N or 0, 500))))
local SLOW_IDS, SLOW_CONCURRENCY, SLOW_DELAY = 1000, 32, 0.02
assert(N and N > 0 and REPS and REPS >= 1 and SOCKET_N and SOCKET_N > 0 and LUASEC_N and LUASEC_N > 0
  and SOAK_N and SOAK_N >= 10 and SLICE and SLICE > 0 and N % SLICE == 0,
  "BENCH_N, BENCH_REPS, BENCH_SOCKET_N, BENCH_LUASEC_N, BENCH_SOAK_N and BENCH_SLICE must be positive integers, "
    .. "BENCH_SLICE a divisor of BENCH_N")

-- Issue 17's targets: token deletes at 0.95x the floor, AK/SK signed ones at 0.90x, at most
-- 10 µs of Lua+C per call; over https 0.90x the TLS floor; batches and memory as before.
local TARGETS = { sequential_ratio = 0.95, aksk_ratio = 0.90, https_ratio = 0.90, overhead_us = 10,
  batch_ratio = 1.3, rss_growth_kib = 1024 }
local q = nginx.shell_quote

-- Connections the server has accepted so far (stub_status), fetched with the curl command.
local function accepts(server)
  local cmd = "curl -sS --max-time 10 " .. (server.ca and "--cacert " .. q(server.ca) .. " " or "")
    .. q(server.url .. "/bench-status") .. " 2>&1"
  local out = nginx.capture(cmd)
  local n = out:match("server accepts handled requests%s+(%d+)")
  if not n then error("bench: `" .. cmd .. "` printed: " .. out, 0) end
  return tonumber(n)
end

-- Runs one measurement process against server; returns its key=value fields as numbers, and
-- `connections`: how many the server accepted meanwhile (the second status request's own
-- connection is not counted).
-- The fields of a measurement's line (out: what cmd printed).
local function fields_of(cmd, out)
  local fields = {}
  for k, v in (out or ""):gmatch("(%w[%w_]*)=(%S+)") do fields[k] = tonumber(v) end
  if not (fields.requests and fields.seconds) then error("bench: `" .. cmd .. "` printed: " .. tostring(out), 0) end
  if fields.failed ~= 0 then error("bench: `" .. cmd .. "`: " .. fields.failed .. " requests failed", 0) end
  return fields
end

local function measure(cmd, server)
  local before = accepts(server)
  local fields = fields_of(cmd, nginx.capture(cmd .. " 2>&1"))
  fields.connections = accepts(server) - before - 1
  return fields
end

-- The sliced rows' processes: each row's command (N "-") started with a FIFO of dir as its
-- standard input, every one before any FIFO is opened to write: a process started later would
-- inherit an earlier one's writing end, which then never saw the end of its input.
local function start_sliced(rows, dir)
  for i, row in ipairs(rows) do
    row.fifo = dir .. "/" .. i .. "-" .. row.key
    assert(os.execute("mkfifo " .. q(row.fifo)), "bench: mkfifo " .. row.fifo)
    row.proc = { out = assert(io.popen(row.cmd .. " < " .. q(row.fifo) .. " 2>&1", "r")) }
  end
  for _, row in ipairs(rows) do row.proc.input = assert(io.open(row.fifo, "w")) end
end

-- One slice of a sliced row: SLICE requests; its fields, with the connections server accepted
-- meanwhile (before: accepts before it; the status request's own not counted).
local function slice(row, server, before)
  row.proc.input:write(SLICE, "\n")
  row.proc.input:flush()
  local fields = fields_of(row.cmd, row.proc.out:read("l"))
  local after = accepts(server)
  fields.connections = after - before - 1
  return fields, after
end

-- Every input ended first, then each process waited for.
local function stop_sliced(rows)
  for _, row in ipairs(rows) do
    if row.proc and row.proc.input then row.proc.input:close() end
  end
  for _, row in ipairs(rows) do
    if row.proc then row.proc.out:close() end
    row.proc = nil
  end
end

local median = stats.median

local LUA = arg[-1] or "lua5.4"

-- server: the instance the worker talks to (its CA is the worker's BENCH_CA_FILE over https).
local function worker(mode, server, n, concurrency)
  return string.format("%s%s bench/worker.lua %s %s %s %s",
    server.ca and "BENCH_CA_FILE=" .. q(server.ca) .. " " or "", q(LUA), mode, q(server.url), n,
    concurrency or "")
end

-- n: a count, or "-" (in slices)
local function floor_cmd(server, n)
  local prefix = server.url .. "/v2.0/0a1b2c3d4e5f60718293a4b5c6d7e8f9/bandwidths/bw-"
  return q(FLOOR) .. " " .. q(prefix) .. " " .. n .. (server.ca and " " .. q(server.ca) or "")
end

-- Can this Lua load LuaSec's ssl.https (Debian's lua-sec)?
local function has_luasec()
  local ok = os.execute(q(LUA) .. " -e 'require \"ssl.https\"' >/dev/null 2>&1")
  return ok == true
end

-- Each list of rows starts with its floor: every row of the list is a ratio to it.
local function rows_for(fast)
  return {
    { key = "floor", label = "(a) floor: bare libcurl C, one reused easy handle", n = N, sliced = true,
      cmd = floor_cmd(fast, "-") },
    { key = "seq", label = "(b) `client:delete_bandwidth`, token auth", n = N, sliced = true,
      cmd = worker("seq", fast, "-") },
    { key = "aksk", label = "(b') `client:delete_bandwidth`, AK/SK signed", n = N, sliced = true,
      cmd = worker("seq-aksk", fast, "-") },
    { key = "floor_signed", label = "(a') bare libcurl C sending (b')'s header lines, fixed values (reference)",
      n = N, sliced = true, cmd = "FLOOR_SIGNED=1 " .. floor_cmd(fast, "-") },
    { key = "c1", label = "(c) `delete_bandwidths`, concurrency 1", n = N, cmd = worker("batch", fast, N, 1) },
    { key = "c8", label = "(c) `delete_bandwidths`, concurrency 8", n = N, cmd = worker("batch", fast, N, 8) },
    { key = "c32", label = "(c) `delete_bandwidths`, concurrency 32", n = N,
      cmd = worker("batch", fast, N, 32) },
    { key = "socket", label = "(d) LuaSocket `socket.http` (no keep-alive)", n = SOCKET_N,
      cmd = worker("socket", fast, SOCKET_N) },
  }
end

-- The HTTPS rows: verification on everywhere (the run's CA as the trust store, never insecure).
local function https_rows_for(secure)
  local rows = {
    { key = "floor", label = "(e) TLS floor: bare libcurl C, one reused easy handle, peer and host verified",
      n = N, sliced = true, cmd = floor_cmd(secure, "-") },
    { key = "seq", label = "(f) `client:delete_bandwidth`, `ca_file`, token auth", n = N, sliced = true,
      cmd = worker("seq", secure, "-") },
    { key = "c8", label = "(g) `delete_bandwidths`, concurrency 8", n = N, cmd = worker("batch", secure, N, 8) },
  }
  local luasec = { key = "luasec", label = "(h) LuaSec `ssl.https` (a handshake per request, chain verified)",
    n = LUASEC_N }
  if has_luasec() then
    luasec.cmd = worker("luasec", secure, LUASEC_N)
  else
    luasec.missing = "not installed (Debian: lua-sec)"
  end
  rows[#rows + 1] = luasec
  return rows
end

-- What a list of runs adds up to: requests, seconds and CPU summed, the last peak RSS.
local function total(runs)
  local t = { requests = 0, seconds = 0, cpu = 0, connections = 0 }
  for _, r in ipairs(runs) do
    t.requests, t.seconds, t.cpu = t.requests + r.requests, t.seconds + r.seconds, t.cpu + r.cpu
    t.connections, t.rss_kib = t.connections + r.connections, r.rss_kib
  end
  return t
end

-- Ratios and CPU differences against the list's floor (its first row): for a sliced row, its
-- round's against the floor's in the same round, median over every round (the range: the
-- medians of single repetitions); for another row, its repetition's against the floor's
-- repetition (the sum of its slices), median over repetitions: a busy moment of the machine, or
-- a load that drifts during the repetition, slows the floor and the row it is compared with alike.
local function summarize(rows)
  local floor = rows[1]
  local floor_rate, floor_cpu = {}, {}
  for i, f in ipairs(floor.runs) do floor_rate[i], floor_cpu[i] = f.requests / f.seconds, f.cpu / f.requests * 1e6 end
  for _, row in ipairs(rows) do
    if not row.missing then
      local rates, cpu, rss, ratios, extra, conns = {}, {}, {}, {}, {}, {}
      for i, r in ipairs(row.runs) do
        rates[i], cpu[i], rss[i] = r.requests / r.seconds, r.cpu / r.requests * 1e6, r.rss_kib
        ratios[i] = rates[i] / floor_rate[i]
        extra[i] = cpu[i] - floor_cpu[i]
        conns[i] = r.connections
      end
      row.rate, row.cpu_us, row.rss_kib = median(rates), median(cpu), median(rss)
      row.ratio, row.extra_cpu_us, row.connections = median(ratios), median(extra), median(conns)
      row.ratio_min, row.ratio_max = math.min(table.unpack(ratios)), math.max(table.unpack(ratios))
      if row.sliced then
        local all_ratios, all_extra, rep_ratios = {}, {}, {}
        for rep, rounds in ipairs(row.rounds) do
          local these = {}
          for k, r in ipairs(rounds) do
            local f = floor.rounds[rep][k]
            these[k] = (r.requests / r.seconds) / (f.requests / f.seconds)
            all_ratios[#all_ratios + 1] = these[k]
            all_extra[#all_extra + 1] = (r.cpu - f.cpu) / r.requests * 1e6
          end
          rep_ratios[rep] = median(these)
        end
        row.ratio, row.extra_cpu_us = median(all_ratios), median(all_extra)
        row.ratio_min, row.ratio_max = math.min(table.unpack(rep_ratios)), math.max(table.unpack(rep_ratios))
        row.connections = total(row.runs).connections -- (over the whole run: one process)
      end
    end
  end
end

local function shuffled(list)
  local order = {}
  for k = 1, #list do order[k] = list[k] end
  for k = #order, 2, -1 do -- (Fisher-Yates)
    local j = math.random(k)
    order[k], order[j] = order[j], order[k]
  end
  return order
end

-- One repetition of a list's sliced rows: N / SLICE rounds, a slice of each row per round in a
-- shuffled order; each row's rounds kept, and the repetition's sum as its run.
local function run_sliced(rows, server, rep)
  local sliced = {}
  for _, row in ipairs(rows) do
    if row.sliced then
      sliced[#sliced + 1] = row
      row.rounds[rep] = {}
    end
  end
  local before = accepts(server)
  for k = 1, N // SLICE do
    for _, row in ipairs(shuffled(sliced)) do
      row.rounds[rep][k], before = slice(row, server, before)
    end
  end
  for _, row in ipairs(sliced) do row.runs[rep] = total(row.rounds[rep]) end
end

-- Every row REPS times, interleaved (a slow moment of the machine hits all rows alike), in an
-- order shuffled each repetition (BENCH_SEED): a rotation kept every row's neighbours (the
-- floor after LuaSocket's thousands of closed connections in most repetitions, the token row
-- after the floor), a shuffle gives each row other neighbours from one repetition to the next.
-- The sliced rows of a list run first in each repetition, in rounds (run_sliced), their
-- processes started before the first and stopped after the last.
-- groups: { { rows = ..., server = ... }, ... }; slow: the slow server, or nil.
local function run_rows(groups, slow)
  local slow_runs = {}
  local dir, sliced = nginx.capture("mktemp -d"):gsub("%s+$", ""), {}
  for _, g in ipairs(groups) do
    for _, row in ipairs(g.rows) do
      row.runs, row.rounds = {}, {}
      if row.sliced then sliced[#sliced + 1] = row end
    end
  end
  local ok, err = pcall(function()
    start_sliced(sliced, dir)
    math.randomseed(SEED)
    for rep = 1, REPS do
      io.stderr:write(string.format("bench: repetition %d/%d\n", rep, REPS))
      for _, g in ipairs(groups) do
        run_sliced(g.rows, g.server, rep)
        for _, row in ipairs(shuffled(g.rows)) do
          if not row.missing and not row.sliced then row.runs[rep] = measure(row.cmd, g.server) end
        end
      end
      if slow then slow_runs[rep] = measure(worker("batch", slow, SLOW_IDS, SLOW_CONCURRENCY), slow) end
    end
  end)
  stop_sliced(sliced)
  os.execute("rm -rf " .. q(dir))
  if not ok then error(err, 0) end
  for _, g in ipairs(groups) do summarize(g.rows) end
  local secs = {}
  for i, r in ipairs(slow_runs) do secs[i] = r.seconds end
  return slow and median(secs)
end

local fmt_rate = stats.fmt_rate

local function verdict(ok) return ok and "met" or "**missed**" end

local function by_key(rows)
  local by = {}
  for _, row in ipairs(rows) do by[row.key] = row end
  return by
end

local function table_of(rows)
  print("| measurement | requests | requests/s | × floor ¹ | CPU µs/request | peak RSS MiB | new connections ² |")
  print("|---|---:|---:|---:|---:|---:|---:|")
  for _, row in ipairs(rows) do
    if row.missing then
      print(string.format("| %s | — | %s | | | | |", row.label, row.missing))
    else
      print(string.format("| %s | %d | %s | %s | %.1f | %.1f | %s |", row.label, row.n, fmt_rate(row.rate),
        string.format(row.ratio < 0.01 and "%.4f" or "%.2f", row.ratio), row.cpu_us, row.rss_kib / 1024,
        fmt_rate(row.connections)))
    end
  end
  print()
end

-- /proc/stat's counters when the runs began (see bench.stats: the machine).
local cpu_before

local function header(title)
  local nginx_version = nginx.capture(q(nginx.find()) .. " -v 2>&1"):match("nginx/(%S+)") or "?"
  print(string.format("## %s: %d requests per row, median of %d runs", title, N, REPS))
  print()
  print(string.format("Rows in a shuffled order each repetition (BENCH_SEED=%d gives this run's).", SEED))
  print()
  print(string.format("Server: nginx %s, 1 worker, `return 204` on 127.0.0.1. Client: %s, %s.", nginx_version,
    _VERSION, core.backend:match("^(%S+)") or core.backend))
  print()
  print(stats.machine_line(cpu_before))
  print()
end

local function footnotes()
  print(string.format("- ¹ (a), (b), (b'), (a'), (e) and (f) run in slices of %d requests, one process each for "
    .. "the whole run, their slices taking turns (%d rounds per repetition, the rows in a shuffled order in each): "
    .. "such a row's ratio is its rate over its floor's in the same round, median over all %d rounds, and its "
    .. "CPU difference to the floor likewise. Every other row: its rate over its floor's in the same "
    .. "repetition (the floor's slices of it added up), median over repetitions. So the column is not "
    .. "exactly the ratio of the rates shown, which are medians over repetitions.", SLICE, N // SLICE,
    REPS * (N // SLICE)))
  print("- ² connections the server accepted during the row (nginx's stub_status): for the sliced rows, over "
    .. "the whole run; for the others, median over repetitions. Over https each is a full TLS handshake.")
end

local function report_https(rows)
  local by = by_key(rows)
  print()
  print("### HTTPS (TLS 1.3, a CA made for the run, verification on)")
  print()
  table_of(rows)
  print(string.format("- Sequential `delete_bandwidth` over https at %.3f× the TLS floor (target ≥ %.2f×): %s "
    .. "(%.2f–%.2f×, the medians of single repetitions); %.1f µs more CPU per request than the floor ((f) minus (e)); "
    .. "%d TLS handshake(s) (new connections) for %d requests.", by.seq.ratio, TARGETS.https_ratio,
    verdict(by.seq.ratio >= TARGETS.https_ratio), by.seq.ratio_min, by.seq.ratio_max, by.seq.extra_cpu_us,
    by.seq.connections, by.seq.n))
  if by.luasec.missing then
    print("- LuaSec: " .. by.luasec.missing .. ".")
  else
    print(string.format("- LuaSec `ssl.https`: %s requests/s, %.0f connections per %d requests; "
      .. "`delete_bandwidth` does %.0f× as many requests per second on one connection.", fmt_rate(by.luasec.rate),
      by.luasec.connections, by.luasec.n, by.seq.rate / by.luasec.rate))
  end
end

local function report(rows, slow_seconds, soak)
  local by = by_key(rows)
  header("lua-eip benchmark")
  table_of(rows)
  local ratio = by.seq.ratio
  local overhead = by.seq.extra_cpu_us
  local ideal = math.ceil(SLOW_IDS / SLOW_CONCURRENCY) * SLOW_DELAY
  local growth = soak.rss_end_kib - soak.rss_warm_kib
  print(string.format("- Sequential token `delete_bandwidth` at %.3f× the floor (target ≥ %.2f×): %s.", ratio,
    TARGETS.sequential_ratio, verdict(ratio >= TARGETS.sequential_ratio)))
  print(string.format("- AK/SK signed `delete_bandwidth` at %.3f× the floor (target ≥ %.2f×): %s; %.2f× with a "
    .. "token, %.1f µs more CPU per request ((b') minus (b)). libcurl alone, sending the same header lines "
    .. "without computing them (a'), runs at %.2f× the floor: the signed request's longer head is libcurl's "
    .. "cost too (libcurl 7.88 formats every byte of a custom header through its printf).", by.aksk.ratio,
    TARGETS.aksk_ratio, verdict(by.aksk.ratio >= TARGETS.aksk_ratio), ratio, by.aksk.extra_cpu_us - overhead,
    by.floor_signed.ratio))
  print(string.format("- Lua+C overhead per call beyond libcurl's own work: %.1f µs (target ≤ %d µs): %s. "
    .. "Method: CPU time per request (user+system: os.clock, CLOCK_PROCESS_CPUTIME_ID) of (b) minus (a) "
    .. "within each round of slices, median over rounds (`make bench-profile` counts instructions instead).",
    overhead, TARGETS.overhead_us, verdict(overhead <= TARGETS.overhead_us)))
  print(string.format("- Batch of %d ids at concurrency %d against a server answering after %d ms: %.3f s; "
    .. "ideal ceil(%d/%d) × %d ms = %.3f s; %.2f× (target ≤ %.1f×): %s.", SLOW_IDS, SLOW_CONCURRENCY,
    SLOW_DELAY * 1000, slow_seconds, SLOW_IDS, SLOW_CONCURRENCY, SLOW_DELAY * 1000, ideal, slow_seconds / ideal,
    TARGETS.batch_ratio, verdict(slow_seconds / ideal <= TARGETS.batch_ratio)))
  print(string.format("- RSS growth over %d ids deleted by `delete_bandwidths` (concurrency 8, VmRSS after the "
    .. "first %d vs at the end, after a full GC): %+d KiB (target < %d KiB): %s. The sequential path has its own "
    .. "soak: `make soak`.", SOAK_N, SOAK_N // 10, growth, TARGETS.rss_growth_kib,
    verdict(growth < TARGETS.rss_growth_kib)))
  print(string.format("- Batch rows send %s ids per `delete_bandwidths` call; (d) sends %d requests, each on a new "
    .. "connection (socket.http's default).", os.getenv("BENCH_CHUNK") or "1000", SOCKET_N))
end

local function main()
  local servers, pki = {}, nil
  cpu_before = stats.cpu_now()
  local ok, err = pcall(function()
    pki = tls.make_pki()
    servers.secure = start_server("benchtls", "return 204;", pki)
    local https = { rows = https_rows_for(servers.secure), server = servers.secure }
    local t0 = core.monotime()
    if HTTPS_ONLY then
      run_rows({ https })
      header("lua-eip benchmark, HTTPS rows")
      report_https(https.rows)
      footnotes()
    else
      servers.fast = start_server("benchfast", "return 204;")
      servers.slow = start_server("benchslow", string.format("content_by_lua_block { ngx.sleep(%g) ngx.exit(204) }",
        SLOW_DELAY))
      local plain = { rows = rows_for(servers.fast), server = servers.fast }
      local slow_seconds = run_rows({ plain, https }, servers.slow)
      io.stderr:write("bench: RSS growth run\n")
      local soak = measure(worker("soak", servers.fast, SOAK_N, 8), servers.fast)
      report(plain.rows, slow_seconds, soak)
      report_https(https.rows)
      footnotes()
    end
    io.stderr:write(string.format("bench: done in %.0f s\n", core.monotime() - t0))
  end)
  for _, name in ipairs{ "fast", "slow", "secure" } do
    if servers[name] then servers[name]:stop() end
  end
  if pki then pki:remove() end
  if not ok then error(err, 0) end
end

main()
