--- What the benchmark scripts (bench/run.lua, bench/openresty.lua, bench/openresty_profile.lua)
-- share: the median of a list, a rate for a Markdown table, a positive integer from the
-- environment, and what the machine was doing during a run. The benchmarks run under Lua 5.4;
-- this module loads under every interpreter of the test matrix, whose specs test it.
local M = {}

--- The positive integer in environment variable `name` (a string `default` when unset).
function M.env_int(name, default)
  local v = tonumber(os.getenv(name) or default)
  assert(v and v > 0 and v < 2 ^ 31 and v == math.floor(v), name .. " must be a positive integer")
  return math.floor(v)
end

local unpack_ = table.unpack or unpack -- luacheck: ignore 113 143 (table.unpack: 5.2+; unpack: 5.1, LuaJIT)

--- The median of a list of numbers.
function M.median(list)
  local s = { unpack_(list) }
  table.sort(s)
  local m = math.floor(#s / 2)
  return #s % 2 == 1 and s[m + 1] or (s[m] + s[m + 1]) / 2
end

-- 17462.4 -> "17 462"
function M.fmt_rate(x)
  return (tostring(math.floor(x + 0.5)):reverse():gsub("(%d%d%d)", "%1 "):reverse():gsub("^ ", ""))
end

-- The machine ------------------------------------------------------------------------------
--
-- The timed ratios move with the state of the machine, not only with the code (see the README's
-- Benchmark section): on a virtual machine the host may take some of its time (steal), and the
-- kernel's loopback work may cost more than the processes' own. Each timed benchmark reads the
-- kernel's CPU counters before and after its runs and says what they show, so that a run can be
-- told from one made on a quieter machine.

--- The counters of the first (all CPUs) line of /proc/stat's text: { user, nice, system, idle,
-- iowait, irq, softirq, steal } in clock ticks, and cpus (the number of cpuN lines); nil when
-- the text has no such line.
function M.cpu_counters(text)
  local fields = {}
  local line = text and text:match("^cpu%s+([^\n]*)")
  if not line then return nil end
  for v in line:gmatch("%d+") do fields[#fields + 1] = tonumber(v) end
  if #fields < 8 then return nil end
  local cpus = 0
  for _ in text:gmatch("\ncpu%d+ ") do cpus = cpus + 1 end
  return { user = fields[1], nice = fields[2], system = fields[3], idle = fields[4], iowait = fields[5],
    irq = fields[6], softirq = fields[7], steal = fields[8], cpus = cpus }
end

--- The counters now (nil where /proc/stat cannot be read).
function M.cpu_now()
  local f = io.open("/proc/stat", "r")
  if not f then return nil end
  local text = f:read("*a")
  f:close()
  return M.cpu_counters(text)
end

--- What the machine did between two readings of cpu_counters: { steal, kernel, busy } as
-- percentages (steal: of all the time; kernel: system, irq and softirq time of the busy time;
-- busy: of all the time, steal excluded) and cpus; nil when either reading is missing or no
-- time passed.
function M.machine(before, after)
  if not (before and after) then return nil end
  local d = {}
  for _, k in ipairs{ "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal" } do
    d[k] = after[k] - before[k]
  end
  local kernel = d.system + d.irq + d.softirq
  local busy = d.user + d.nice + kernel
  local all = busy + d.idle + d.iowait + d.steal
  if all <= 0 then return nil end
  return { steal = 100 * d.steal / all, kernel = busy > 0 and 100 * kernel / busy or 0,
    busy = 100 * busy / all, cpus = after.cpus }
end

--- A sentence for a benchmark's report: what the machine did since `before` (cpu_now()'s).
function M.machine_line(before)
  local m = M.machine(before, M.cpu_now())
  if not m then return "Machine: /proc/stat could not be read." end
  return string.format("Machine during the runs (/proc/stat): %d CPUs, %.0f%% busy; the host took %.1f%% of "
    .. "the time (steal); the kernel did %.0f%% of the busy work.", m.cpus, m.busy, m.steal, m.kernel)
end

return M
