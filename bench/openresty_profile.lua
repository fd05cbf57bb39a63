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
local stats = require "bench.stats"
local front_of = require "bench.front"

local env_int = stats.env_int

local STARTS = env_int("BENCH_ORP_STARTS", "3")
local SHORT = env_int("BENCH_ORP_SHORT", "3")
local LONG = env_int("BENCH_ORP_LONG", "9")
local CONNECTIONS = env_int("BENCH_OR_CONNECTIONS", "16")
local WARMUP_SECONDS = 3
assert(LONG > SHORT, "BENCH_ORP_LONG must be longer than BENCH_ORP_SHORT")

-- nginx under valgrind starts and stops slowly, and callgrind writes its counts at the exit.
nginx.START_TIMEOUT = 60
nginx.STOP_TIMEOUT = 120

-- lua-eip, the floor and the reference (the timed rows' first three).
local ROWS = {}
for i = 1, 3 do ROWS[i] = { path = front_of.ROWS[i].path, label = front_of.ROWS[i].label } end

-- The front's config: bench/openresty.conf.in as the timed rows use it, in one process.
local function front_config(upstream_port)
  return function(fields)
    for k, v in pairs(front_of.fields(upstream_port)) do fields[k] = v end
    local text = nginx.render(assert(nginx.read_file(front_of.TEMPLATE)), fields)
    local one, n = text:gsub("\nworker_processes 1;\n", "\nworker_processes 1;\nmaster_process off;\n", 1)
    assert(n == 1, "bench/openresty.conf.in: no 'worker_processes 1;' line")
    return one
  end
end

-- wrk for `seconds` against url, as the timed rows load it; returns the requests it made. Under
-- callgrind the first requests, while LuaJIT records and compiles its traces, can take longer
-- than wrk's default 2 s: an answer counts as lost only after ANSWER_TIMEOUT seconds.
local ANSWER_TIMEOUT = 60
local function load(url, seconds, script)
  local _, requests = front_of.wrk(url, seconds, script, 1, CONNECTIONS, ANSWER_TIMEOUT)
  return requests
end

-- The instruction total of a callgrind output file.
local function total(file)
  local text = assert(nginx.read_file(file), "bench: callgrind wrote no " .. file)
  return assert(tonumber(text:match("\nsummary: (%d+)") or text:match("\ntotals: (%d+)")),
    "bench: no total in " .. file)
end

-- One run of the front under callgrind with `seconds` of load: instructions, requests. Both
-- count the warm-up: under callgrind it makes from a hundred to over a thousand requests, as
-- the machine's load allows, and its requests left out of the count (while their
-- instructions were in the total) moved a row's figure by up to a third from one start to the
-- next (35.7k to 52.4k instructions per delete for the same code).
local function run(dir, upstream_port, path, seconds, script)
  local out = string.format("%s/callgrind.%d", dir, seconds)
  os.remove(out)
  local front = nginx.start{ name = "benchprof", label = "bench front under callgrind",
    config = front_config(upstream_port),
    wrapper = { "valgrind", "--tool=callgrind", "--smc-check=all-non-file", "--callgrind-out-file=" .. out } }
  local ok, requests = pcall(function()
    local warm = load(front.url .. path .. front_of.ID, WARMUP_SECONDS, script) -- LuaJIT's traces, the pools
    return warm + load(front.url .. path .. front_of.ID, seconds, script)
  end)
  local log = not ok and front:log_tail(20)
  front:stop() -- QUIT: callgrind writes the file as nginx exits
  if not ok then error(tostring(requests) .. "\nthe front's log:\n" .. log, 0) end
  return total(out), requests
end

local function main()
  assert(nginx.capture("command -v valgrind") ~= "", "bench: valgrind not found (apt-get install valgrind)")
  local dir = nginx.capture("mktemp -d")
  local script = front_of.script(dir)
  local up = front_of.upstream()
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
