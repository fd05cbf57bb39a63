-- bench/stats.lua: what the benchmark scripts share, and in particular the line each timed
-- benchmark prints about the machine (host steal, the kernel's share), which tells a run on a
-- busy virtual machine from one on a quiet one.
local stats = require "bench.stats"

-- /proc/stat as Linux writes it (the aggregate line, then one per CPU, then other counters).
local function proc_stat(user, nice, system, idle, iowait, irq, softirq, steal)
  return string.format("cpu  %d %d %d %d %d %d %d %d 0 0\n", user, nice, system, idle, iowait, irq, softirq, steal)
    .. "cpu0 1 2 3 4 5 6 7 8 0 0\ncpu1 1 2 3 4 5 6 7 8 0 0\nintr 12345 0 0\nctxt 999\n"
end

describe("bench.stats", function()
  it("reads the aggregate line of /proc/stat and counts the CPUs", function()
    local c = stats.cpu_counters(proc_stat(100, 1, 50, 1000, 3, 2, 7, 9))
    assert.same({ user = 100, nice = 1, system = 50, idle = 1000, iowait = 3, irq = 2, softirq = 7, steal = 9,
      cpus = 2 }, c)
  end)

  it("returns nil for text without the aggregate line or with too few counters", function()
    assert.is_nil(stats.cpu_counters(nil))
    assert.is_nil(stats.cpu_counters(""))
    assert.is_nil(stats.cpu_counters("cpu0 1 2 3 4 5 6 7 8\n"))
    assert.is_nil(stats.cpu_counters("cpu  1 2 3 4 5 6 7\n"))
  end)

  it("says what share of the time the host took and what share of the busy time was the kernel's", function()
    local before = stats.cpu_counters(proc_stat(100, 0, 100, 1000, 0, 0, 0, 0))
    -- 1000 ticks pass: 350 user, 100 nice, 100 system, 30 irq, 20 softirq, 300 idle, 50 iowait, 50 steal.
    local after = stats.cpu_counters(proc_stat(450, 100, 200, 1300, 50, 30, 20, 50))
    local m = stats.machine(before, after)
    assert.equal(5, m.steal) -- 50 of 1000
    assert.equal(25, m.kernel) -- (100 + 30 + 20) of 600 busy
    assert.equal(60, m.busy) -- 600 of 1000
    assert.equal(2, m.cpus)
  end)

  it("has nothing to say without both readings or when no time passed", function()
    local c = stats.cpu_counters(proc_stat(1, 2, 3, 4, 5, 6, 7, 8))
    assert.is_nil(stats.machine(nil, c))
    assert.is_nil(stats.machine(c, nil))
    assert.is_nil(stats.machine(c, c))
  end)

  it("prints one line about the machine since a reading of this one's counters", function()
    local line = stats.machine_line(stats.cpu_counters(proc_stat(0, 0, 0, 0, 0, 0, 0, 0)))
    if stats.cpu_now() then
      assert.matches("^Machine during the runs %(/proc/stat%): %d+ CPUs, %d+%% busy; the host took [%d.]+%% of the "
        .. "time %(steal%); the kernel did %d+%% of the busy work%.$", line)
    else
      assert.equal("Machine: /proc/stat could not be read.", line)
    end
    assert.equal("Machine: /proc/stat could not be read.", stats.machine_line(nil))
  end)

  it("takes medians, formats rates and reads positive integers from the environment", function()
    assert.equal(3, stats.median({ 5, 1, 3 }))
    assert.equal(2.5, stats.median({ 4, 1, 2, 3 }))
    assert.equal("17 462", stats.fmt_rate(17462.4))
    assert.equal("999", stats.fmt_rate(999))
    assert.equal(7, stats.env_int("EIP_BENCH_STATS_SPEC_UNSET", "7"))
    for _, bad in ipairs{ "0", "-1", "2.5", "x", "1e40" } do
      assert.has_error(function() stats.env_int("EIP_BENCH_STATS_SPEC_UNSET", bad) end)
    end
  end)
end)
