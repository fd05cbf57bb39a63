-- make test-live (scripts/live-check.lua) is for the real cloud; here it is pointed at the
-- emulator to prove it: it needs the opt-in, skips without credentials, names what it creates,
-- and always deletes it (on success, on failure, on Ctrl-C).
local fixture = require "spec.support.fixture"
local nginx = require "spec.support.nginx"
local host = require "spec.support.host"
local socket = require "socket"

local ROOT = nginx.capture("pwd")
local q = nginx.shell_quote

describe("make test-live, pointed at the emulator", function()
  local fx = fixture.emulator()
  local emu, dir

  setup(function()
    emu = fx.start()
    dir = nginx.capture("mktemp -d")
  end)
  teardown(function()
    fx.stop()
    os.execute("rm -rf " .. q(dir))
  end)
  before_each(fx.reset)

  -- The command line of the script with only `vars` in its environment (false: left out).
  local function command(vars)
    local all = { PATH = os.getenv("PATH"), HOME = dir, LUA_PATH = ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;",
      LUA_CPATH = ROOT .. "/" .. host.cpath .. ";;", EIP_LIVE = "1", EIP_ENDPOINT = emu.url,
      OS_AUTH_TOKEN = emu.token, HUAWEICLOUD_SDK_PROJECT_ID = emu.project_id }
    for k, v in pairs(vars or {}) do all[k] = v or nil end
    local env = {}
    for k, v in pairs(all) do env[#env + 1] = k .. "=" .. q(v) end
    return string.format("env -i %s %s %s/scripts/live-check.lua", table.concat(env, " "), host.lua, q(ROOT))
  end

  local function run(vars)
    local text, code = host.run(command(vars) .. " 2>&1")
    return code, text
  end

  it("refuses to run without EIP_LIVE=1", function()
    local code, out = run{ EIP_LIVE = false }
    assert.equal(2, code)
    assert.matches("set EIP_LIVE=1", out)
    assert.equal(0, emu:stats().requests)
  end)

  it("is skipped with a message when no credentials are found", function()
    local code, out = run{ OS_AUTH_TOKEN = false, EIP_METADATA_URL = "http://127.0.0.1:" .. host.closed_port() }
    assert.equal(0, code, out)
    assert.matches("skipped: credentials not found", out)
    assert.equal(0, emu:stats().requests)
  end)

  it("creates, shows, deletes, waits for 404 and deletes again; nothing is left", function()
    emu:set_knobs{ deleted_visible_for = 1 }
    local code, out = run()
    assert.equal(0, code, out)
    assert.matches("creates lua%-eip%-live%-%d+: a 5 Mbit/s pay%-per%-use shared bandwidth, billed by bandwidth", out)
    for _, what in ipairs{ "create", "show", "delete, wait until it reads 404", "delete again %(missing_ok%)" } do
      assert.matches("ok    " .. what, out)
    end
    assert.matches("every step passed", out)
    assert.equal(0, #emu:bandwidths())
  end)

  -- A create whose answer was lost (the service made the bandwidth, the connection closed before
  -- its answer) made a billed bandwidth all the same: found by its name, and deleted.
  it("finds and deletes the bandwidth of a create whose answer was lost", function()
    emu:inject{ method = "POST", action = "lose_answer" }
    local code, out = run()
    assert.equal(1, code, out)
    assert.matches("FAIL  create", out)
    assert.matches("clean%-up: the create's answer was lost, but [%x%-]+ is named lua%-eip%-live%-%d+", out)
    assert.matches("clean%-up: [%x%-]+ deleted", out)
    assert.equal(0, #emu:bandwidths())
  end)

  -- A create the service refused (a 4xx) made nothing: nothing is looked for.
  it("looks for nothing after a create the service refused", function()
    emu:inject{ method = "POST", status = 400, body = { code = "EIP.7901", message = "Input param is invalid." } }
    local code, out = run()
    assert.equal(1, code, out)
    assert.matches("FAIL  create", out)
    assert.not_matches("clean%-up", out)
    for _, r in ipairs(emu:requests()) do assert.equal("POST", r.method) end
  end)

  it("refuses an EIP_LIVE_SIZE that is no whole number, sending nothing", function()
    for _, size in ipairs{ "abc", "5.5", "" .. 2 ^ 40 } do
      local code, out = run{ EIP_LIVE_SIZE = size }
      assert.equal(2, code, out)
      assert.matches("EIP_LIVE_SIZE must be", out)
      assert.not_matches("traceback", out)
    end
    assert.equal(0, emu:stats().requests)
  end)

  it("deletes what it created when a step fails", function()
    emu:inject{ method = "GET", status = 500, times = 3, body = { code = "VPC.0302", message = "Neutron Error." } }
    local code, out = run()
    assert.equal(1, code, out)
    assert.matches("FAIL  show", out)
    assert.matches("clean%-up: [%x%-]+ deleted", out)
    assert.equal(0, #emu:bandwidths())
  end)

  -- The scripts spawn started: each one still running when its case ends (a failed assertion) is
  -- killed, as it would otherwise go on deleting for up to two minutes.
  local spawned = {}
  after_each(function()
    for i = #spawned, 1, -1 do
      if nginx.alive(spawned[i]) then
        os.execute(string.format("kill -KILL %d 2>/dev/null", spawned[i]))
        nginx.wait_until(socket.gettime() + 5, function() return not nginx.alive(spawned[i]) end)
      end
      spawned[i] = nil
    end
  end)

  -- The script started in the background: its pid, a function that reads its output so far and
  -- one that reads its exit code (nil while it runs). Each run has files of its own: the shell
  -- around an earlier run writes its code a moment after that run has ended (under load, after
  -- the next case has begun), and a shared file would have this run read as ended, its output
  -- cut where it then was.
  local runs = 0
  local function spawn(vars)
    runs = runs + 1
    local base = dir .. "/run" .. runs
    local pidfile, codefile, outfile = base .. ".pid", base .. ".code", base .. ".out"
    os.execute(string.format("(sh -c 'echo $$ > %s; exec %s' > %s 2>&1; echo $? > %s) &", q(pidfile),
      command(vars):gsub("'", "'\\''"), q(outfile), q(codefile)))
    local function output() return nginx.read_file(outfile) or "" end
    local function exit_code() return tonumber((nginx.read_file(codefile) or ""):match("%d+")) end
    local deadline = socket.gettime() + 10
    while not (nginx.read_file(pidfile) or ""):match("%d+") do
      assert(socket.gettime() < deadline, "the check did not start")
      socket.sleep(0.02)
    end
    local pid = tonumber(nginx.read_file(pidfile):match("%d+"))
    spawned[#spawned + 1] = pid
    return pid, output, exit_code
  end

  -- Polls until done() (10 s at most); `what` names it when it does not come.
  local function until_true(done, what, output)
    assert(nginx.wait_until(socket.gettime() + 10, done), what .. ": " .. output())
  end

  local function sent(method)
    return function()
      for _, r in ipairs(emu:requests()) do if r.method == method then return true end end
    end
  end

  it("ends on Ctrl-C, deleting what it created", function()
    emu:set_knobs{ deleted_visible_for = 60 } -- Ctrl-C comes while it waits for the 404
    local pid, output = spawn()
    until_true(sent("DELETE"), "nothing was deleted", output) -- deleted: now it waits
    os.execute("kill -INT " .. pid)
    until_true(function() return not nginx.alive(pid) end, "the check did not end", output)
    local out = output()
    assert.matches("test%-live: interrupted", out)
    assert.matches("clean%-up: [%x%-]+ already gone", out)
    assert.equal(0, #emu:bandwidths())
  end)

  -- Ctrl-C while it looks for what a create whose answer was lost made (each list refused here,
  -- so it looks again after a pause): the run was interrupted, whatever the search found.
  it("ends as interrupted (130) on Ctrl-C in the search after a create whose answer was lost", function()
    emu:inject{ method = "POST", action = "lose_answer" }
    emu:inject{ method = "GET", status = 400, times = 3, body = { code = "VPC.0301", message = "Invalid." } }
    local pid, output, exit_code = spawn()
    until_true(sent("GET"), "it never looked", output) -- the first look failed: now it pauses
    os.execute("kill -INT " .. pid)
    os.execute("kill -INT " .. pid) -- (the second gives the clean-up up)
    until_true(function() return exit_code() ~= nil end, "the check did not end", output)
    local out = output()
    assert.matches("CLEAN%-UP FAILED: the create may have made a bandwidth named lua%-eip%-live%-%d+", out)
    assert.matches("test%-live: interrupted", out)
    assert.equal(130, exit_code(), out)
  end)

  -- The real service shows a new bandwidth CREATING for a while, and may refuse to delete it
  -- meanwhile (the emulator's creating_for: 409 VPC.0512, busy).
  describe("with a new bandwidth CREATING for a while #once", function()
    -- (CREATING for 1.5 s: the script shows it again after 2 s, and its first show, sent right
    -- after the create, must come while it still reads CREATING, however loaded the machine)
    it("waits until it reads NORMAL, then passes", function()
      emu:set_knobs{ creating_for = 1.5 }
      local code, out = run()
      assert.equal(0, code, out)
      assert.matches("ok    show until it reads NORMAL", out)
      local took = tonumber(out:match("[%x%-]+: NORMAL after ([%d.]+) s"))
      assert(took and took >= 1, out)
      assert.matches("ok    delete, wait until it reads 404", out)
      assert.matches("every step passed", out)
      assert.equal(0, #emu:bandwidths())
    end)

    it("deletes it when a step fails while it is CREATING, trying again while it is busy", function()
      emu:set_knobs{ creating_for = 2.5 }
      emu:inject{ method = "GET", status = 400, body = { code = "VPC.0301", message = "Invalid bandwidth." } }
      local code, out = run()
      assert.equal(1, code, out)
      assert.matches("FAIL  show", out)
      assert.matches("clean%-up: [%x%-]+ not deleted yet: [^\n]*409[^\n]*VPC%.0512[^\n]*; trying again every 2 s "
        .. "for up to 120 s", out)
      assert.matches("clean%-up: [%x%-]+ deleted", out)
      assert.not_matches("by hand", out)
      assert.equal(0, #emu:bandwidths())
    end)

    it("deletes it after a Ctrl-C in the wait for NORMAL; a second Ctrl-C gives up, saying so", function()
      emu:set_knobs{ creating_for = 1.5 }
      local pid, output = spawn()
      until_true(sent("GET"), "it was never shown", output) -- shown (CREATING): now it waits
      os.execute("kill -INT " .. pid)
      until_true(function() return not nginx.alive(pid) end, "the check did not end", output)
      local out = output()
      assert.matches("FAIL  show until it reads NORMAL", out)
      assert.matches("clean%-up: [%x%-]+ deleted", out)
      assert.matches("test%-live: interrupted", out)
      assert.equal(0, #emu:bandwidths())

      emu:reset()
      emu:set_knobs{ creating_for = 60 }
      pid, output = spawn()
      until_true(sent("GET"), "it was never shown", output)
      os.execute("kill -INT " .. pid)
      until_true(function() return output():find("trying again", 1, true) end, "the clean-up did not try again", output)
      os.execute("kill -INT " .. pid)
      until_true(function() return not nginx.alive(pid) end, "the check did not end", output)
      out = output()
      local id = assert(emu:bandwidths()[1], "it is left, said").id
      assert.matches("CLEAN%-UP FAILED: delete " .. id:gsub("%-", "%%-") .. " by hand: gave up on Ctrl%-C; "
        .. "the last answer: [^\n]*VPC%.0512", out)
      assert.matches("test%-live: interrupted", out)
    end)
  end)
end)
