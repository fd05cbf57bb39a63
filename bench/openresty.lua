--- `make bench-openresty` (and the last part of `make bench`): lua-eip inside nginx, next to
-- the floor nginx itself sets for the same exchange. Prints a Markdown table.
--
-- Two private nginx instances on 127.0.0.1 (spec/support/nginx.lua runs them; both stop at the
-- end, and a watchdog stops them if this process dies first):
--   upstream  bench/nginx.conf.in: DELETE /v2.0/{project}/bandwidths/{id} -> 204 (any other
--             method -> 405, so a row that sent something else shows non-2xx answers)
--   front     bench/openresty.conf.in, one worker:
--               /eip/<id>    client:delete_bandwidth(id): token auth, cosocket transport
--               /proxy/<id>  proxy_pass + proxy_method DELETE through upstream {} keepalive,
--                            the same header lines as lua-eip's (proxy_set_header): the floor
--               /cosocket/<id>  the same request over a pooled cosocket in a few lines of Lua,
--                            only the status read: what any Lua handler pays, for reference
--               /bare/<id>   the same with Host only, for reference
-- wrk (same threads, connections and duration for every row) loads the front;
-- the rows are interleaved over the repetitions (their order turning), each row's rate is
-- divided by the proxy row's of the same repetition, and medians are reported. The front worker's CPU
-- time per request (from /proc) is reported too: it is what lua-eip adds, less noisy than the
-- rates on a shared machine.
--
-- Environment: BENCH_OR_SECONDS (per run, default 5), BENCH_OR_CONNECTIONS (default 16),
-- BENCH_OR_THREADS (wrk threads, default 1), BENCH_OR_REPS (default 5), BENCH_WRK (default wrk).
package.path = "./?.lua;" .. package.path
local nginx = require "spec.support.nginx"
local stats = require "bench.stats"
local front_of = require "bench.front"

local env_int = stats.env_int

local SECONDS = env_int("BENCH_OR_SECONDS", "5")
local CONNECTIONS = env_int("BENCH_OR_CONNECTIONS", "16")
local THREADS = env_int("BENCH_OR_THREADS", "1")
local REPS = env_int("BENCH_OR_REPS", "5")
local WARMUP_SECONDS = 2
local TARGET = 0.8

local median = stats.median

local fmt_rate = stats.fmt_rate

-- utime + stime of a process, in seconds (clock ticks of /proc/<pid>/stat).
local TICK = tonumber(nginx.capture("getconf CLK_TCK")) or 100
local function cpu_seconds(pid)
  local stat = assert(nginx.read_file("/proc/" .. pid .. "/stat"), "no process " .. pid)
  local rest = stat:match("%)%s+(.*)$")
  local fields = {}
  for f in rest:gmatch("%S+") do fields[#fields + 1] = f end
  -- After the command: state is field 3 of stat, utime 14 and stime 15 (here 12 and 13).
  return (tonumber(fields[12]) + tonumber(fields[13])) / TICK
end

-- The worker of a one-worker nginx.
local function worker_pid(inst)
  local pids = nginx.capture("pgrep -P " .. string.format("%d", inst.pid))
  local pid = tonumber(pids:match("^(%d+)$"))
  if not pid then error("bench: expected one worker under nginx " .. inst.pid .. ", found: " .. pids, 0) end
  return pid
end

-- One wrk run against url with this benchmark's settings: requests/s and requests.
local function wrk(url, seconds, script)
  return front_of.wrk(url, seconds, script, THREADS, CONNECTIONS)
end

local function start()
  local up = front_of.upstream()
  local ok, front = pcall(nginx.start, {
    name = "benchfront", template = front_of.TEMPLATE, label = "bench front (lua-eip, proxy_pass)",
    fields = front_of.fields(up.port),
  })
  if not ok then
    up:stop()
    error(front, 0)
  end
  return up, front
end

local function run(front)
  local script = front_of.script(front.prefix)
  local rows = {}
  for i, r in ipairs(front_of.ROWS) do
    rows[i] = { key = r.key, label = r.label, url = front.url .. r.path .. front_of.ID }
  end
  local worker = worker_pid(front)
  for _, row in ipairs(rows) do
    row.rates, row.cpu = {}, {}
    wrk(row.url, WARMUP_SECONDS, script) -- LuaJIT's traces, the keep-alive pools
  end
  for rep = 1, REPS do
    io.stderr:write(string.format("bench-openresty: repetition %d/%d\n", rep, REPS))
    for k = 0, #rows - 1 do -- each repetition starts with the next row
      local row = rows[(rep + k - 1) % #rows + 1]
      local cpu0 = cpu_seconds(worker)
      local rate, requests = wrk(row.url, SECONDS, script)
      row.rates[rep], row.cpu[rep] = rate, (cpu_seconds(worker) - cpu0) / requests * 1e6
    end
  end
  for _, row in ipairs(rows) do
    local ratios = {}
    for rep = 1, REPS do ratios[rep] = row.rates[rep] / rows[2].rates[rep] end
    row.rate, row.cpu_us, row.ratio = median(row.rates), median(row.cpu), median(ratios)
  end
  return rows, rows[1].ratio
end

local function report(rows, ratio, cpu_before)
  local version = nginx.capture(nginx.shell_quote(nginx.find()) .. " -v 2>&1"):match("nginx/(%S+)") or "?"
  print(string.format("## lua-eip inside nginx: %d runs of %d s each per row, medians", REPS, SECONDS))
  print()
  print(string.format("Front: nginx %s, 1 worker; upstream: nginx, 1 worker, `return 204`; both on 127.0.0.1. "
    .. "Load: `wrk -t%d -c%d -d%ds`, DELETE.", version, THREADS, CONNECTIONS, SECONDS))
  print()
  print(stats.machine_line(cpu_before))
  print()
  print("| measurement | requests/s | × proxy_pass ¹ | front worker CPU µs/request |")
  print("|---|---:|---:|---:|")
  for _, row in ipairs(rows) do
    print(string.format("| %s | %s | %.2f | %.1f |", row.label, fmt_rate(row.rate), row.ratio, row.cpu_us))
  end
  print()
  print(string.format("- lua-eip at %.3f× nginx's own proxy module (target ≥ %.2f×): %s.", ratio, TARGET,
    ratio >= TARGET and "met" or "**missed**"))
  local by = {}
  for _, row in ipairs(rows) do by[row.key] = row end
  print(string.format("- The few lines of cosocket Lua reach %.2f× proxy_pass: that gap is ngx_lua's (a request "
    .. "coroutine, the cosocket calls), for any Lua handler. lua-eip does %.2f× their requests per second and "
    .. "adds %.1f µs of worker CPU per request to theirs (validation, the pipeline, the whole answer parsed, "
    .. "the result).", by.cosocket.ratio, by.eip.rate / by.cosocket.rate, by.eip.cpu_us - by.cosocket.cpu_us))
  print("- The proxy_pass row sends the upstream what lua-eip sends (request line, Host, User-Agent, "
    .. "Content-Type, Accept, X-Auth-Token), so both leave it the same work.")
  print("- ¹ the rate over the proxy_pass row's in the same repetition, median over repetitions. CPU: the "
    .. "front worker's user+system time over the requests of a run, median over runs.")
end

local function main()
  local up, front = start()
  local ok, err = pcall(function()
    local cpu_before = stats.cpu_now()
    local rows, ratio = run(front)
    report(rows, ratio, cpu_before)
    local log = front:log_tail(5)
    if log:find("%[error%]") or log:find("%[warn%]") then
      io.stderr:write("bench-openresty: the front nginx logged:\n", log, "\n")
    end
  end)
  front:stop()
  up:stop()
  if not ok then error(err, 0) end
end

main()
