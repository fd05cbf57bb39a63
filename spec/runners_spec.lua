-- The scripts behind `make test` and `make test-matrix` (what CI runs): their last line,
-- "N passed, N failed", must sum every test that ran, count a crash or a missing summary as a
-- failure, and exit non-zero whenever anything failed. Run here on stand-ins (shell scripts
-- printing what a C test, busted or a leg prints), so each way to fail is seen on purpose.
local host = require "spec.support.host"
local nginx = require "spec.support.nginx"

local q = host.quote

describe("the test runners #once", function()
  local dir

  before_each(function() dir = nginx.capture("mktemp -d") end)
  after_each(function() os.execute("rm -rf " .. q(dir)) end)

  -- An executable script at dir/name.
  local function script(name, body)
    local path = dir .. "/" .. name
    local f = assert(io.open(path, "w"))
    f:write("#!/bin/sh\n", body, "\n")
    f:close()
    assert(host.execute("chmod +x " .. q(path)))
    return path
  end

  local function last_line(out) return out:match("([^\n]*)\n?$") end

  local function alive(pid)
    local f = io.open("/proc/" .. pid .. "/stat")
    -- (a process that ends between the open and the read leaves nothing to read)
    local state = f and (f:read("*a") or ""):match("%)%s+(%a)")
    if f then f:close() end
    return state ~= nil and state ~= "Z"
  end

  -- Waits for `n` pids in the file `pids` (what the stand-ins started), sends TERM to the
  -- runner whose pid is in the file `runner`, and returns what is still alive 10 s later.
  local function stopped(pids, n, runner)
    local function started()
      local out = {}
      for pid in (nginx.read_file(pids) or ""):gmatch("%d+") do out[#out + 1] = pid end
      return out
    end
    local deadline = os.time() + 10
    while #started() < n and os.time() < deadline do host.execute("sleep 0.05") end
    local procs = started()
    assert.equal(n, #procs, "the stand-ins and a child of each")
    runner = nginx.read_file(runner):match("%d+")
    assert(host.execute("kill -TERM " .. runner))
    procs[#procs + 1] = runner
    deadline = os.time() + 10
    local left
    repeat
      left = {}
      for _, pid in ipairs(procs) do if alive(pid) then left[#left + 1] = pid end end
      if #left > 0 then host.execute("sleep 0.05") end
    until #left == 0 or os.time() > deadline
    return left
  end

  describe("scripts/run-tests (make test)", function()
    local RUN = "bash " .. q(host.ROOT .. "/scripts/run-tests")

    local function busted(successes, failures, errors, code)
      return script("busted", string.format("echo 'specs ran'\n"
        .. "echo '%d successes / %d failures / %d errors / 0 pending : 1.5 seconds'\nexit %d",
        successes, failures, errors, code or 0))
    end

    local function run(busted_cmd, ...)
      local args = {}
      for i, a in ipairs{ ... } do args[i] = q(a) end
      -- (SPLIT_TAGS unset: make test sets it for the run this spec is part of)
      return host.run("SPLIT_TAGS= BUSTED=" .. q(busted_cmd) .. " " .. RUN .. " " .. table.concat(args, " ") .. " 2>&1")
    end

    it("sums the C tests' checks and busted's specs", function()
      local a = script("test_a", "echo 'ctest a: 10 passed, 0 failed'")
      local b = script("test_b", "echo 'ctest b: 5 passed, 0 failed'")
      local out, code = run(busted(7, 0, 0), a, b)
      assert.equal("22 passed, 0 failed", last_line(out))
      assert.equal(0, code)
    end)

    it("counts failed checks, failed specs and spec errors", function()
      local a = script("test_a", "echo 'ctest a: 8 passed, 2 failed'\nexit 1")
      local out, code = run(busted(7, 1, 3, 1), a)
      assert.equal("15 passed, 6 failed", last_line(out))
      assert.is_not.equal(0, code)
    end)

    -- Each way a run fails without saying so in a count: the C test and busted stand-ins, the
    -- closing line wanted, and what the runner must say about it.
    local SILENT_FAILURES = {
      { "a C test that crashes before its summary",
        ctest = "echo 'half a line'\nkill -KILL $$", busted = { 4, 0, 0 },
        line = "4 passed, 1 failed", says = "crashed or printed no summary" },
      { "a C test that exits non-zero while reporting no failure",
        ctest = "echo 'ctest a: 3 passed, 0 failed'\nexit 2", busted = { 1, 0, 0 },
        line = "4 passed, 1 failed" },
      { "busted ending without its summary line",
        busted_script = "echo 'lua: cannot open spec'\nexit 1",
        line = "0 passed, 1 failed", says = "busted: no summary line" },
      { "busted exiting non-zero after a clean summary", busted = { 9, 0, 0, 1 },
        line = "9 passed, 1 failed" },
    }

    -- SPLIT_TAGS: a second busted for the specs so tagged, at the same time as the first. Each
    -- stand-in half waits for the other's mark: run one after the other, neither would see it.
    local function halves(tagged_ends)
      return script("busted", string.format([[
case "$*" in
  *--exclude-tags=slow,lone*) me=rest; other=tagged ;;
  *--tags=slow,lone*) me=tagged; other=rest ;;
  *) echo "unsplit: $*"; exit 1 ;;
esac
touch %s/$me.mark
i=0
while [ ! -e %s/$other.mark ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
[ -e %s/$other.mark ] || { echo "$me ran alone"; exit 1; }
if [ $me = rest ]; then echo '6 successes / 1 failures / 0 errors / 0 pending : 1 seconds'; exit 1; fi
%s]], q(dir), q(dir), q(dir), tagged_ends))
    end

    local function run_split(busted_cmd, ...)
      local args = {}
      for i, a in ipairs{ ... } do args[i] = q(a) end
      return host.run("SPLIT_TAGS=slow,lone BUSTED=" .. q(busted_cmd) .. " " .. RUN .. " " .. table.concat(args, " ")
        .. " 2>&1")
    end

    it("runs the specs of SPLIT_TAGS in a second busted beside the first, and sums both", function()
      local a = script("test_a", "echo 'ctest a: 10 passed, 0 failed'")
      local out, code = run_split(halves("echo 'tagged specs ran'\n"
        .. "echo '3 successes / 0 failures / 2 errors / 0 pending : 1 seconds'\nexit 1"), a)
      assert.is_nil(out:find("ran alone", 1, true), out)
      assert.equal("19 passed, 3 failed", last_line(out))
      assert.matches("== the specs tagged slow,lone %(run at the same time%)\ntagged specs ran\n", out)
      assert.is_not.equal(0, code)
    end)

    it("counts a second busted that ends without its summary line as a failure", function()
      local out, code = run_split(halves("echo 'lua: cannot open spec'\nexit 1"))
      assert.matches("busted %(the specs tagged slow,lone%): no summary line %(exit 1%)", out)
      assert.equal("6 passed, 2 failed", last_line(out))
      assert.is_not.equal(0, code)
    end)

    -- Stopped (Ctrl-C, or a TERM as here: a background job here ignores SIGINT), it stops both
    -- busted runs and what they started at once, rather than wait for them to end.
    it("stops both busted runs and what they started when it is stopped", function()
      local pids = dir .. "/pids"
      local b = script("busted", "sleep 60 &\necho $$ $! >> " .. q(pids) .. "\nwait")
      assert(host.execute("SPLIT_TAGS=slow BUSTED=" .. q(b) .. " " .. RUN .. " > /dev/null 2>&1 & echo $! > "
        .. q(dir .. "/runner")))
      assert.same({}, stopped(pids, 4, dir .. "/runner"))
    end)

    for _, case in ipairs(SILENT_FAILURES) do
      it("counts " .. case[1] .. " as a failure", function()
        local n = case.busted
        local b = n and busted(n[1], n[2], n[3], n[4]) or script("busted", case.busted_script)
        local out, code = run(b, case.ctest and script("test_a", case.ctest) or nil)
        if case.says then assert.matches(case.says, out) end
        assert.equal(case.line, last_line(out))
        assert.is_not.equal(0, code)
      end)
    end
  end)

  describe("scripts/run-matrix (make test-matrix)", function()
    -- run-matrix runs the run-tests beside it: a copy of it next to a stand-in that sleeps a
    -- little (so legs overlap) and answers by the leg's interpreter name.
    local function matrix(luas, jobs)
      assert(host.execute("cp " .. q(host.ROOT .. "/scripts/run-matrix") .. " " .. q(dir .. "/run-matrix")))
      script("run-tests", [[
case $LUA in
  slow) sleep 3 ;;
  stuck) sleep 60 & echo $$ $! >> pids; wait ;;
esac
echo "leg $LUA begins"
echo "C tests given: $#"
echo "busted command: $BUSTED"
echo "split: $SPLIT_TAGS"
sleep 0.2
echo "leg $LUA ends"
case $LUA in
  bad) echo '3 passed, 2 failed'; exit 1 ;;
  crash) exit 3 ;;
  liar) echo '5 passed, 0 failed'; exit 1 ;;
  killed) kill -KILL $PPID; exit 0 ;;
  *) echo '5 passed, 0 failed' ;;
esac]])
      return host.run(string.format("env -u SPLIT_TAGS LUAS=%s FULL_LEG=full MATRIX_JOBS=%s bash %s ct1 ct2 2>&1",
        q(luas), jobs, q(dir .. "/run-matrix")))
    end

    it("sums every leg; the full leg alone gets the C tests and the specs run inside nginx", function()
      local out, code = matrix("first full other", 2)
      assert.equal("15 passed, 0 failed", last_line(out))
      assert.equal(0, code)
      assert.matches("leg full begins\nC tests given: 2\nbusted command: busted %-%-lua=full\n"
        .. "split: openresty,once\n", out)
      assert.matches("leg other begins\nC tests given: 0\nbusted command: busted %-%-lua=other "
        .. "%-%-exclude%-tags=openresty,once\nsplit: \n", out)
      assert.matches("matrix: full %(C tests, every spec%) +5 passed, 0 failed  %(%d+ s%)", out)
    end)

    it("starts the full leg first, and the next leg while it still runs", function()
      local out = matrix("first full other", 2)
      assert.matches("^== matrix: started full [^\n]*\n== matrix: started first ", out)
      -- A leg's lines are printed when it has ended: the second leg started before them.
      assert.is_true(out:find("== matrix: started first", 1, true) < out:find("leg full begins", 1, true), out)
      out = matrix("first full other", 1)
      assert.is_true(out:find("leg full begins", 1, true) < out:find("== matrix: started first", 1, true), out)
    end)

    it("prints each leg's lines together although legs run at once", function()
      local out = matrix("first full other third", 3)
      for _, leg in ipairs{ "first", "full", "other", "third" } do
        local _, begins = out:gsub("leg " .. leg .. " begins", "")
        assert.equal(1, begins, "leg " .. leg .. "'s output, once:\n" .. out)
        assert.matches("== matrix: " .. leg .. " [^\n]*\nleg " .. leg .. " begins\nC tests given: %d\nbusted command: "
          .. "[^\n]*\nsplit: [^\n]*\nleg " .. leg .. " ends\n5 passed, 0 failed\n", out)
      end
    end)

    it("counts a failing leg's failures and a leg that ends without a summary", function()
      for _, jobs in ipairs{ 1, 2, 5 } do
        local out, code = matrix("full bad crash other", jobs)
        assert.equal("13 passed, 3 failed", last_line(out), "MATRIX_JOBS=" .. jobs)
        assert.is_not.equal(0, code)
        assert.matches("matrix: crash %(every spec but #openresty, #once%) +0 passed, 1 failed", out)
      end
    end)

    it("prints each leg as it ends, not in the order legs started", function()
      -- All three at once: "other" ends seconds before "slow", which started before it.
      local out = matrix("slow full other", 3)
      assert.is_true(out:find("leg other begins", 1, true) < out:find("leg slow begins", 1, true), out)
    end)

    it("counts a leg that exits non-zero after a clean last line as failed", function()
      local out, code = matrix("full liar", 2)
      assert.equal("10 passed, 1 failed", last_line(out))
      assert.matches("matrix: liar %(every spec but #openresty, #once%) +5 passed, 1 failed", out)
      assert.is_not.equal(0, code)
    end)

    it("prints what a killed leg wrote, and counts it as failed", function()
      local out, code = matrix("full killed other", 2)
      assert.matches("== matrix: killed [^\n]*\nleg killed begins\n", out)
      assert.matches("matrix: killed %(every spec but #openresty, #once%) +0 passed, 1 failed", out)
      assert.equal("10 passed, 1 failed", last_line(out))
      assert.is_not.equal(0, code)
    end)

    it("stops every leg and what it started when it is stopped", function()
      assert(host.execute("cp " .. q(host.ROOT .. "/scripts/run-matrix") .. " " .. q(dir .. "/run-matrix")))
      matrix("full", 1) -- (writes the stand-in run-tests)
      assert(host.execute("cd " .. q(dir) .. " && env -u SPLIT_TAGS LUAS='stuck full other' MATRIX_JOBS=3 "
        .. "bash run-matrix > /dev/null 2>&1 & echo $! > " .. q(dir .. "/runner")))
      assert.same({}, stopped(dir .. "/pids", 2, dir .. "/runner"))
    end)

    it("runs one leg at a time when MATRIX_JOBS is not a positive number", function()
      local out, code = matrix("full other", "zero")
      assert.equal("10 passed, 0 failed", last_line(out))
      assert.equal(0, code)
      assert.matches("leg full ends\n5 passed, 0 failed\n== matrix: started other", out)
    end)
  end)
end)
