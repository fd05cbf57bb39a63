--- `make bench-openresty-profile`: the nginx rows of `make bench-openresty` counted rather
-- than timed. User-space instructions per request of the front nginx (one process: master_process
-- off) run under callgrind and loaded by wrk with the same settings as the timed rows, for
-- lua-eip's delete, the few-lines cosocket reference and proxy_pass. Prints a Markdown table.
--
-- Per row and per nginx start: two runs of the front, a short and a long one (each after the
-- same warm-up), and the difference of their totals over the difference of their requests, so
-- that starting, warming up and stopping cancel out. LuaJIT forms its traces anew at every start,
-- and the count moves with them: each row is started BENCH_ORP_STARTS times (default 3) and the
-- median reported, with the others beside it.
--
-- Environment: BENCH_ORP_STARTS (default 3), BENCH_ORP_SHORT and BENCH_ORP_LONG (seconds of
-- load, default 3 and 9), BENCH_OR_CONNECTIONS (default 16), BENCH_WRK (default wrk).
package.path = "./?.lua;" .. package.path
local nginx = require "spec.support.nginx"
local server = require "bench.server"
local stats = require "bench.stats"

local env_int = stats.env_int

local STARTS = env_int("BENCH_ORP_STARTS", "3")
local SHORT = env_int("BENCH_ORP_SHORT", "3")
local LONG = env_int("BENCH_ORP_LONG", "9")
local CONNECTIONS = env_int("BENCH_OR_CONNECTIONS", "16")
local WRK = os.getenv("BENCH_WRK") or "wrk"
local WARMUP_SECONDS = 3
assert(LONG > SHORT, "BENCH_ORP_LONG must be longer than BENCH_ORP_SHORT")

local PROJECT = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
local TOKEN = "bench-token-0123456789abcdef"
local ID = "bw-bench-0001"
local USER_AGENT = "lua-eip/" .. require("eip.core")._VERSION

-- nginx under valgrind starts and stops slowly, and callgrind writes its counts at the exit.
nginx.START_TIMEOUT = 60
nginx.STOP_TIMEOUT = 120

local ROWS = {
  { path = "/eip/", label = "lua-eip `client:delete_bandwidth` (cosocket transport, token auth)" },
  { path = "/proxy/", label = "nginx `proxy_pass`, `upstream {}` with `keepalive`, the same header lines (floor)" },
  { path = "/cosocket/",
    label = "a cosocket in a few lines of Lua, the same request, only the status read (reference)" },
}

-- The front's config: bench/openresty.conf.in as the timed rows use it, in one process.
local function front_config(upstream_port)
  return function(fields)
    for k, v in pairs{ REPO = server.REPO, UPSTREAM_PORT = tostring(upstream_port), PROJECT = PROJECT,
        TOKEN = TOKEN, USER_AGENT = USER_AGENT } do
      fields[k] = v
    end
    local text = nginx.render(assert(nginx.read_file("bench/openresty.conf.in")), fields)
    local one, n = text:gsub("\nworker_processes 1;\n", "\nworker_processes 1;\nmaster_process off;\n", 1)
    assert(n == 1, "bench/openresty.conf.in: no 'worker_processes 1;' line")
    return one
  end
end

-- wrk for `seconds` against url; returns the requests it made, after checking every answer.
local function load(url, seconds, script)
  local cmd = string.format("%s -t1 -c%d -d%ds -s %s %s 2>&1", nginx.shell_quote(WRK), CONNECTIONS, seconds,
    nginx.shell_quote(script), nginx.shell_quote(url))
  local out = nginx.capture(cmd)
  local requests = tonumber(out:match("(%d+) requests in"))
  if not requests or requests == 0 or out:match("Non%-2xx") or out:match("Socket errors") then
    error("bench: `" .. cmd .. "` printed:\n" .. out, 0)
  end
  return requests
end

-- The instruction total of a callgrind output file.
local function total(file)
  local text = assert(nginx.read_file(file), "bench: callgrind wrote no " .. file)
  return assert(tonumber(text:match("\nsummary: (%d+)") or text:match("\ntotals: (%d+)")),
    "bench: no total in " .. file)
end

-- One run of the front under callgrind with `seconds` of load: instructions, requests.
local function run(dir, upstream_port, path, seconds, script)
  local out = string.format("%s/callgrind.%d", dir, seconds)
  os.remove(out)
  local front = nginx.start{ name = "benchprof", label = "bench front under callgrind",
    config = front_config(upstream_port),
    wrapper = { "valgrind", "--tool=callgrind", "--smc-check=all-non-file", "--callgrind-out-file=" .. out } }
  local ok, requests = pcall(function()
    load(front.url .. path .. ID, WARMUP_SECONDS, script) -- LuaJIT's traces, the keep-alive pools
    return load(front.url .. path .. ID, seconds, script)
  end)
  local log = not ok and front:log_tail(20)
  front:stop() -- QUIT: callgrind writes the file as nginx exits
  if not ok then error(tostring(requests) .. "\nthe front's log:\n" .. log, 0) end
  return total(out), requests
end

local function main()
  assert(nginx.capture("command -v valgrind") ~= "", "bench: valgrind not found (apt-get install valgrind)")
  local dir = nginx.capture("mktemp -d")
  local script = dir .. "/delete.lua"
  nginx.write_file(script, 'wrk.method = "DELETE"\n')
  local up = server.start("benchup", "if ($request_method != DELETE) { return 405; } return 204;")
  local ok, err = pcall(function()
    for _, row in ipairs(ROWS) do
      row.counts = {}
      for start = 1, STARTS do
        io.stderr:write(string.format("bench-openresty-profile: %s start %d/%d\n", row.path, start, STARTS))
        local short_total, short_n = run(dir, up.port, row.path, SHORT, script)
        local long_total, long_n = run(dir, up.port, row.path, LONG, script)
        assert(long_n > short_n, "bench: the long run made no more requests than the short one")
        row.counts[start] = (long_total - short_total) / (long_n - short_n)
      end
      row.median = stats.median(row.counts)
    end
  end)
  up:stop()
  os.execute("rm -rf " .. nginx.shell_quote(dir))
  if not ok then error(err, 0) end

  local floor = ROWS[2].median
  print(string.format("## Inside nginx, counted: user-space instructions per request (callgrind, %d starts per row)",
    STARTS))
  print()
  print(string.format("Front: one nginx process (master_process off) under callgrind, loaded by `wrk -t1 -c%d`;"
    .. " per start, a %d s run minus a %d s run. The kernel's work is not counted.", CONNECTIONS, LONG, SHORT))
  print()
  print("| measurement | instructions/request (median) | × proxy_pass | each start |")
  print("|---|---:|---:|---|")
  for _, row in ipairs(ROWS) do
    local each = {}
    for i, c in ipairs(row.counts) do each[i] = string.format("%.1fk", c / 1000) end
    print(string.format("| %s | %.0f | %.2f | %s |", row.label, row.median, row.median / floor,
      table.concat(each, ", ")))
  end
end

main()
