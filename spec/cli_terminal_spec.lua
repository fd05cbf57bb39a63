-- The eip command in a real terminal (tmux), as an operator uses it: the progress line at the
-- bottom while results scroll above it, the failures listed again at the end, Ctrl-C during a
-- batch, and the question --drain asks before it creates new bills.
local fixture = require "spec.support.fixture"
local terminal = require "spec.support.terminal"
local socket = require "socket"
local host = require "spec.support.host"
-- A drain nobody is asked to confirm: the terms of the new bandwidths given, never defaults.
local DRAIN_YES = "--drain --yes --size 1 --charge-mode bandwidth"

local ROOT = host.ROOT
local EIP = host.lua .. " " .. ROOT .. "/bin/eip"

describe("eip command in a terminal", function()
  local fx = fixture.emulator()
  local emu, term

  setup(function() emu = fx.start() end)
  teardown(fx.stop)
  before_each(fx.reset)
  after_each(function()
    if term then term:stop() end
    term = nil
  end)

  local function start(args, size)
    term = terminal.start(EIP .. " " .. args, { cwd = ROOT, width = size and size[1], height = size and size[2],
      env = { EIP_ENDPOINT = emu.url, OS_AUTH_TOKEN = emu.token, HUAWEICLOUD_SDK_PROJECT_ID = emu.project_id } })
    return term
  end

  local function lines_of(screen)
    local out = {}
    for l in (screen .. "\n"):gmatch("(.-)\n") do out[#out + 1] = l end
    while out[#out] == "" do out[#out] = nil end
    return out
  end

  local BAR = "^%[[#.]+%]  %d+/%d+  %d+%%  "

  local function create(n, fields) return emu:create_bandwidths(n, fields) end

  -- Waits until the emulator has seen `n` API requests.
  local function requests_seen(n)
    local deadline = socket.gettime() + 10
    while emu:stats().requests < n do
      assert(socket.gettime() < deadline, "the command sent fewer than " .. n .. " requests")
      socket.sleep(0.02)
    end
  end

  it("keeps the progress line at the bottom while results scroll above it, then lists the failures", function()
    local ids = create(30)
    local full = { emu:create_bandwidth{ size = 1, publicip_ids = { "eip-a" } },
      emu:create_bandwidth{ size = 1, publicip_ids = { "eip-b" } } }
    ids[#ids + 1], ids[#ids + 2], ids[#ids + 3] = full[1], "9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f", full[2]
    emu:inject{ method = "DELETE", action = "slow", delay = 0.15, times = -1 }
    local t = start("delete-bandwidth --concurrency 2 " .. table.concat(ids, " "), { 80, 24 })
    -- Screenshots while it runs, as a person would glance at it: from the first that shows the
    -- line (it waits a second) until the summary shows.
    local shots, bar_at_bottom, missed = 0, 0, {}
    while not t:ended() do
      local screen = t:screen()
      local l = lines_of(screen)
      local bottom = l[#l] or ""
      if bottom:find("bandwidth%(s%):") then break end
      if bottom:find(BAR) then
        bar_at_bottom = bar_at_bottom + 1
      elseif bar_at_bottom > 0 then
        missed[#missed + 1] = screen
      end
      if bar_at_bottom > 0 then shots = shots + 1 end
      socket.sleep(0.05)
    end
    assert.equal(1, t:wait_exit(10))
    assert.is_true(bar_at_bottom >= 3, bar_at_bottom .. " screenshots with the line at the bottom")
    assert.is_true(bar_at_bottom >= 0.9 * shots, string.format("the line was at the bottom in %d of %d "
      .. "screenshots; one without it:\n%s", bar_at_bottom, shots, missed[1] or ""))
    local final = lines_of(t:screen())
    for _, line in ipairs(final) do
      assert.is_true(#line <= 80, #line .. " columns: " .. line)
      assert.is_nil(line:find(BAR), "the line is erased at the end")
    end
    local n = #final
    assert.matches("^33 bandwidth%(s%): 30 deleted, 0 missing, 3 failed  %(", final[n])
    local screen = table.concat(final, "\n")
    local recap = screen:match("\nFailed %(3%):\n(.*)\n33 bandwidth")
    assert.is_string(recap, screen)
    assert.matches(full[1]:gsub("%p", "%%%0") .. "  409 VPC%.0304  1 attempt\n    Conflict: deleteBandwidth error",
      recap)
    assert.matches("9f1c2d3e%-4b5a%-4c6d%-8e7f%-0a1b2c3d4e5f  404 VPC%.0306  1 attempt\n    Not Found: No Eip", recap)
    assert.matches(full[2]:gsub("%p", "%%%0") .. "  409 VPC%.0304", recap)
  end)

  it("redraws the progress line at a steady rate, also while nothing finishes", function()
    local ids = create(4)
    emu:inject{ method = "DELETE", action = "slow", delay = 6 }
    local t = start("delete-bandwidth " .. table.concat(ids, " "), { 80, 24 })
    requests_seen(1) -- the first request goes alone: 6 s during which nothing finishes
    -- The line while nothing has finished, and its clock: the first one seen, then a later one
    -- (it was drawn again), whenever the screen is looked at within those 6 s.
    local IDLE = "%[%.+%]  0/4  0%%  0%.0/s  0 failed  0:0(%d)$"
    local function idle_line(after)
      local deadline = socket.gettime() + 10
      while true do
        local l = lines_of(t:screen())
        local clock = tonumber((l[#l] or ""):match(IDLE))
        if clock and clock > after then return l[#l], clock end
        assert(socket.gettime() < deadline, "no progress line past 0:0" .. after .. " with nothing finished:\n"
          .. t:screen())
        socket.sleep(0.05)
      end
    end
    local first, clock = idle_line(0)
    assert.matches(BAR, first)
    idle_line(clock) -- its clock runs: it was drawn again
    assert.equal(0, t:wait_exit(20))
    assert.matches("4 bandwidth%(s%): 4 deleted", t:screen())
  end)

  -- A terminal narrower than 20 columns (a split pane) was taken for one of 80: the line wrapped,
  -- and each redraw left rows of it on the screen.
  it("takes a narrow terminal's width as it is", function()
    local probe = string.format("package.path = 'lua/?.lua;' .. package.path; package.cpath = '%s;' .. package.cpath; "
      .. "io.write('columns=', require('eip.cli.progress').columns(), ';')", host.cpath)
    term = terminal.start(host.lua .. " -e " .. host.quote(probe), { cwd = ROOT, width = 15, height = 5 })
    assert.equal(0, term:wait_exit(5))
    assert.matches("columns=15;", term:screen())
  end)

  -- Made narrower while the line is shown: until its width is looked at again (each second), the
  -- line was drawn as wide as before, and each redraw wrapped and left a row of it behind. (The
  -- terminal's own rewrap of the line on screen when it narrows may leave one.)
  it("leaves no rows of the progress line behind when the terminal narrows", function()
    local ids = create(6)
    emu:inject{ method = "DELETE", action = "slow", delay = 0.25, times = -1 }
    local t = start("delete-bandwidth --concurrency 1 " .. table.concat(ids, " "), { 100, 40 })
    local deadline = socket.gettime() + 5
    while not t:screen():find("%]  %d/6  ") do
      assert(socket.gettime() < deadline, "no progress line:\n" .. t:screen())
      socket.sleep(0.02)
    end
    t:resize(40, 40)
    assert.equal(0, t:wait_exit(10))
    local rows = 0
    for _, l in ipairs(lines_of(t:screen())) do
      if l:find("^%[[#.]+%]") then rows = rows + 1 end
    end
    assert.is_true(rows <= 1, rows .. " rows of the progress line left:\n" .. t:screen())
  end)

  -- TERM=dumb (Emacs' shell and compilation buffers, some CI consoles) does not interpret escape
  -- sequences: the line's erase sequences showed as text. No progress line there.
  it("draws no progress line on a dumb terminal", function()
    local ids = create(5)
    emu:inject{ method = "DELETE", action = "slow", delay = 0.3, times = -1 }
    term = terminal.start(EIP .. " delete-bandwidth --concurrency 1 " .. table.concat(ids, " "), { cwd = ROOT,
      env = { EIP_ENDPOINT = emu.url, OS_AUTH_TOKEN = emu.token, HUAWEICLOUD_SDK_PROJECT_ID = emu.project_id,
        TERM = "dumb" } })
    local seen = nil
    while not term:ended() do
      local screen = term:screen()
      seen = seen or screen:match("%[[#.]+%]  %d/5[^\n]*")
      socket.sleep(0.05)
    end
    assert.equal(0, term:wait_exit(5))
    assert.is_nil(seen, "a progress line on a dumb terminal")
    assert.matches("5 bandwidth%(s%): 5 deleted", term:screen())
  end)

  -- stdout that fails (a full disk) while the line is drawn on stderr's terminal: the message
  -- and the results that go to stderr from then on start on a line of their own (they once
  -- followed the line's text, which stayed on the screen). (A pipe's reader that goes away is
  -- one such failure, but with stdout a pipe no line is drawn: see below.)
  it("erases the progress line before results go to stderr once stdout fails #once", function()
    local ids = create(14)
    -- (the first result, the first write, after the line was drawn)
    emu:inject{ method = "DELETE", action = "slow", delay = 1.3 }
    local t = start("delete-bandwidth --concurrency 1 " .. table.concat(ids, " ") .. " >/dev/full", { 160, 40 })
    t:wait_for("cannot write to stdout", 20)
    t:wait_exit(20)
    local seen = 0
    for _, l in ipairs(lines_of(t:screen())) do
      assert.is_nil(l:find("%]  %d+/14  .*%S.*eip: ") or l:find("~[%d:]+ left.+%S"), "glued to the line: " .. l)
      if l:find("^eip: cannot write to stdout") then seen = seen + 1 end
    end
    assert.equal(1, seen, t:screen())
  end)

  -- stdout a pipe to a reader that writes to the terminal (`| tee log`): the reader's lines came
  -- in the middle of the progress line ("... ~0:01 leftdeleted ..."), which no erasing of ours
  -- can keep out of their way (the reader writes when it reads). No line is drawn then.
  it("draws no progress line when stdout is a pipe, whose reader's lines would land in it #once", function()
    local ids = create(7)
    emu:inject{ method = "DELETE", action = "slow", delay = 0.2, times = -1 }
    local t = start("delete-bandwidth --concurrency 1 " .. table.concat(ids, " ") .. " | tee /dev/null", { 100, 40 })
    assert.equal(0, t:wait_exit(20))
    local screen, results = t:screen(), 0
    for _, l in ipairs(lines_of(screen)) do
      assert.is_nil(l:find("%[[#.]+%]  %d+/7"), "the progress line: " .. l)
      if l:find("^deleted  %S+  204 +%d+ ms$") then results = results + 1 end
    end
    assert.equal(7, results, screen)
  end)

  -- --progress: the caller says the pipe's reader writes nothing to the terminal (`| gzip > f`).
  it("draws the progress line with stdout a pipe when --progress asks for it #once", function()
    local ids = create(5)
    emu:inject{ method = "DELETE", action = "slow", delay = 0.3, times = -1 }
    local t = start("delete-bandwidth --progress --concurrency 1 " .. table.concat(ids, " ") .. " | cat > /dev/null",
      { 100, 40 })
    local seen = nil
    while not t:ended() do
      seen = seen or t:screen():match("%[[#.]+%]  %d/5[^\n]*")
      socket.sleep(0.05)
    end
    assert.equal(0, t:wait_exit(5))
    assert.is_not_nil(seen, "no progress line: " .. t:screen())
    assert.matches("5 bandwidth%(s%): 5 deleted", t:screen())
  end)

  it("Ctrl-C stops sending, lets what is in flight finish, prints the summary and exits 130", function()
    local ids = create(20)
    emu:reset_counters()
    emu:inject{ method = "DELETE", times = -1, status = 204, delay = 0.3 }
    local t = start("delete-bandwidth --concurrency 2 --no-progress " .. table.concat(ids, " "))
    requests_seen(3) -- the probe, then two at a time
    t:send("C-c")
    assert.equal(130, t:wait_exit(10))
    local screen = t:screen()
    local deleted, not_sent = screen:match("20 bandwidth%(s%): (%d+) deleted, 0 missing, 0 failed, (%d+) not sent")
    assert.is_not_nil(deleted, screen)
    assert.equal(20, tonumber(deleted) + tonumber(not_sent))
    assert.is_true(tonumber(not_sent) > 0, screen)
    assert.matches("interrupted: " .. not_sent .. " id%(s%) not sent", screen)
    assert.matches("NOT SENT", screen)
    assert.equal(20 - tonumber(not_sent), emu:stats().requests, "no id marked not sent was sent")
    assert.is_nil(screen:find("internal error", 1, true), screen)
  end)

  it("Ctrl-C during --wait ends the waiting at once: no more reads", function()
    emu:set_knobs{ deleted_visible_for = 30 }
    local ids = create(6)
    emu:reset_counters()
    local t = start("delete-bandwidth --no-progress --wait-timeout 60 " .. table.concat(ids, " "))
    local function gets() return fixture.count_requests(emu, "GET") end
    requests_seen(7) -- the six deletes, then the first read of the wait
    -- Reads come 0.5, 1, 2, 5 s apart: one may still go out while the key travels, not two.
    local before = gets()
    t:send("C-c")
    assert.equal(130, t:wait_exit(10))
    assert.is_true(gets() <= before + 1, "reads after Ctrl-C: " .. (gets() - before))
    assert.matches("6 bandwidth%(s%): 6 deleted", t:screen())
  end)

  it("a second Ctrl-C aborts the requests in flight", function()
    local ids = create(6)
    for i = 2, 6 do emu:inject{ method = "DELETE", path = emu:delete_path(ids[i]), action = "hang" } end
    emu:reset_counters()
    local t = start("delete-bandwidth --concurrency 3 --no-progress " .. table.concat(ids, " "))
    requests_seen(4) -- the probe, then three that hang
    t:send("C-c")
    -- Time for the first to be taken (two signals pending at once are one), nothing to wait for
    -- on the screen: the batch now only waits for the hung requests.
    socket.sleep(1)
    t:send("C-c")
    assert.equal(130, t:wait_exit(10))
    local screen = t:screen()
    -- (aborted in flight: each may have been carried out)
    assert.matches("6 bandwidth%(s%): 1 deleted, 0 missing, 3 failed %(3 may have acted%), 2 not sent", screen)
    assert.matches("aborted while in flight", screen)
  end)

  it("Ctrl-C after an authentication stop still exits 130, and says both", function()
    local ids = create(6)
    -- (the 401 after 0.5 s: the two slow ones have gone out by then; a stop holds back a request
    -- still connecting, and one that was would be not sent)
    emu:inject{ method = "DELETE", path = emu:delete_path(ids[2]), status = 401, delay = 0.5,
      body = { error_msg = "Incorrect token", error_code = "APIGW.0307" } }
    for i = 3, 4 do emu:inject{ method = "DELETE", path = emu:delete_path(ids[i]), action = "slow", delay = 3 } end
    emu:reset_counters()
    local t = start("delete-bandwidth --concurrency 3 --no-progress " .. table.concat(ids, " "))
    requests_seen(4) -- the probe, then three: one refused, two slow ones (3 s: Ctrl-C comes meanwhile)
    socket.sleep(1) -- (the 401 answered: the batch stopped for it before the Ctrl-C)
    t:send("C-c")
    assert.equal(130, t:wait_exit(10))
    local screen = t:screen()
    assert.matches("6 bandwidth%(s%): 3 deleted, 0 missing, 1 failed, 2 not sent", screen)
    assert.matches("stopped after an authentication failure", screen)
    assert.matches("interrupted: 2 id%(s%) not sent", screen)
  end)

  -- A drain's remove calls make bills: Ctrl-C must stop them as it stops a batch's deletes.
  -- The API requests the emulator saw, as "METHOD last-path-part".
  local function api_calls()
    local out = {}
    for _, r in ipairs(emu:requests()) do
      if not r.uri:find("^/__emulator") then out[#out + 1] = r.method .. " " .. r.uri:match("[^/]+$") end
    end
    return out
  end

  it("--drain: Ctrl-C while the show is in flight sends no remove and no delete, and exits 130", function()
    local a = emu:create_bandwidth{ size = 5, publicip_ids = { "eip-1", "eip-2" } }
    local b = emu:create_bandwidth{ size = 5, publicip_ids = { "eip-3" } }
    emu:inject{ method = "GET", action = "slow", delay = 3 }
    emu:reset_counters()
    local t = start("delete-bandwidth " .. DRAIN_YES .. " " .. a .. " " .. b)
    requests_seen(1) -- the show, answered in 3 s: Ctrl-C comes meanwhile
    t:send("C-c")
    assert.equal(130, t:wait_exit(10))
    local screen = t:screen()
    assert.same({ "GET " .. a }, api_calls())
    assert.same({ 2, 1 }, { #emu:get_bandwidth(a).publicip_info, #emu:get_bandwidth(b).publicip_info })
    assert.matches("FAILED +" .. a:gsub("%p", "%%%0") .. " +interrupted +0/2 moved", screen)
    assert.matches("NOT SENT " .. b:gsub("%p", "%%%0") .. " +interrupted", screen)
    assert.matches("nothing was moved or deleted", screen)
    assert.matches("2 bandwidth%(s%): 0 deleted, 0 missing, 1 failed, 1 not sent", screen)
  end)

  -- A Retry-After of 10 s: Ctrl-C ends the wait at once and sends nothing more (it used to send
  -- the retry at once, and then the delete). The 503 may have moved the EIPs: uncertain.
  it("--drain: Ctrl-C during a remove's Retry-After ends it at once: no retry, no delete", function()
    local a = emu:create_bandwidth{ size = 5, publicip_ids = { "eip-1", "eip-2" } }
    local b = emu:create_bandwidth{ size = 5, publicip_ids = { "eip-3" } }
    emu:inject{ method = "POST", path = "/remove$", status = 503, headers = { ["Retry-After"] = "10" }, times = 2,
      body = { code = "VPC.0302", message = "Neutron error" } }
    emu:reset_counters()
    local t = start("delete-bandwidth " .. DRAIN_YES .. " " .. a .. " " .. b)
    requests_seen(2) -- the show, the remove answered 503
    t:send("C-c")
    assert.equal(130, t:wait_exit(5))
    local screen = t:screen()
    assert.same({ "GET " .. a, "POST remove" }, api_calls())
    assert.same({ 2, 1 }, { #emu:get_bandwidth(a).publicip_info, #emu:get_bandwidth(b).publicip_info })
    assert.matches(a:gsub("%p", "%%%0") .. " uncertain %(2%): eip%-1 eip%-2", screen)
    assert.matches("interrupted after 1 attempt", screen)
    assert.matches("FAILED%? +" .. a:gsub("%p", "%%%0") .. " +interrupted +0/2 moved", screen)
    assert.matches("2 bandwidth%(s%): 0 deleted, 0 missing, 1 failed %(1 may have acted%), 1 not sent", screen)
  end)

  it("--drain shows the plan and asks; yes drains and deletes", function()
    local id = emu:create_bandwidth{ size = 10, name = "bw-ask", publicip_ids = { "eip-1", "eip-2" } }
    local t = start("delete-bandwidth --drain --size 3 --charge-mode traffic " .. id)
    local screen = t:wait_for("Type yes to go on:")
    assert.matches("Drain and delete shared bandwidth " .. id:gsub("%p", "%%%0") .. " %(bw%-ask, 10 Mbit/s%)", screen)
    assert.matches("It holds 2 EIP%(s%); each becomes a NEW pay%-per%-use bandwidth of 3 Mbit/s billed by "
      .. "traffic", screen)
    assert.matches("eip%-1", screen)
    t:send("yes", "Enter")
    assert.equal(0, t:wait_exit(10))
    assert.matches("drained  " .. id:gsub("%p", "%%%0"), t:screen())
    assert.is_nil(emu:get_bandwidth(id))
  end)

  -- Nothing to move is no new bill: a plain delete is not asked about, nor is this one (it was
  -- asked, "It holds 0 EIP(s); each becomes a NEW ... bandwidth"). Only the two reads and the
  -- delete are sent.
  it("--drain of a bandwidth holding no EIP says so and deletes it without asking", function()
    local id = emu:create_bandwidth{ size = 10, name = "bw-empty", publicip_ids = {} }
    emu:reset_counters()
    local t = start("delete-bandwidth --drain " .. id)
    assert.equal(0, t:wait_exit(10))
    local screen = t:screen()
    assert.matches("Deleting shared bandwidth " .. id:gsub("%p", "%%%0") .. " %(bw%-empty, 10 Mbit/s%): it holds no "
      .. "EIP, nothing is moved, no bandwidth is made%.", screen)
    assert.not_matches("Type yes", screen)
    assert.matches("deleted  " .. id:gsub("%p", "%%%0"), screen)
    assert.same({ "GET " .. id, "GET " .. id, "DELETE " .. id }, api_calls())
    assert.is_nil(emu:get_bandwidth(id))
  end)

  -- Server text in the question: escapes could clear the screen, or hide the billing warning
  -- right before "Type yes"; a secret echoed in a name must not show either.
  it("--drain asks without the server's escapes or secrets in the question", function()
    local id = emu:create_bandwidth{ size = 10, name = "web", publicip_ids = { "eip-1" } }
    emu:inject{ method = "GET", status = 200, body = { bandwidth = { id = id, name = "web\27[2J\27[H\r" .. emu.token,
      share_type = "WHOLE", size = 10, status = "NORMAL", publicip_info = {
        { publicip_id = "eip-1", publicip_address = "1.2.3.4\r\27[2KX" .. emu.token },
        { publicip_id = "eip-2", publicip_address = "198.51.100.9" } } } } }
    local t = start("delete-bandwidth --drain " .. id)
    local screen = t:wait_for("Type yes to go on:")
    assert.is_nil(screen:find(emu.token, 1, true), "the token is on the screen")
    assert.matches("Drain and delete shared bandwidth " .. id:gsub("%p", "%%%0")
      .. " %(web %[2J %[H <redacted>, 10 Mbit/s%)%?\n  It holds 2 EIP%(s%); each becomes a NEW pay%-per%-use "
      .. "bandwidth of 1 Mbit/s billed by bandwidth:\n    eip%-1  %-\n    eip%-2  198%.51%.100%.9\nType yes", screen)
    t:send("no", "Enter")
    assert.equal(1, t:wait_exit(10))
    assert.is_nil(t:screen():find(emu.token, 1, true), "the token is on the screen")
    assert.equal(1, #emu:get_bandwidth(id).publicip_info)
  end)

  -- The answer ended without a newline (Ctrl-D, Ctrl-C): what comes next starts on a line of its
  -- own, not after "Type yes to go on: ". Ctrl-C is an interruption, as during the drain's show
  -- (exit 130): it once read as the user's refusal, "refused: not_confirmed".
  for _, key in ipairs{ "C-d", "C-c" } do
    it("--drain answered with " .. key .. " leaves the question on a line of its own", function()
      local id = emu:create_bandwidth{ size = 10, publicip_ids = { "eip-1" } }
      local t = start("delete-bandwidth --drain " .. id)
      t:wait_for("Type yes to go on:")
      t:send(key)
      assert.equal(key == "C-c" and 130 or 1, t:wait_exit(10))
      local screen = t:screen()
      assert.matches("\nFAILED +" .. id:gsub("%p", "%%%0"), screen)
      assert.is_nil(screen:find("go on: %^?C?FAILED"), screen)
      assert.equal(1, #emu:get_bandwidth(id).publicip_info)
      if key == "C-c" then
        assert.matches("FAILED +" .. id:gsub("%p", "%%%0") .. " +interrupted +0/1 moved", screen)
        assert.matches("interrupted at the confirmation: nothing was moved or deleted", screen)
        assert.is_nil(screen:find("not_confirmed", 1, true), screen)
      else
        assert.matches("refused: not_confirmed", screen)
      end
    end)
  end

  -- (#once: the time is Lua's whatever the version. The operator takes a second: counted, the line
  -- says 1 s or more; the drain's own calls, a few milliseconds, stay below it on a loaded machine.)
  it("--drain's time on its line leaves out the time the question waited for its answer #once", function()
    local id = emu:create_bandwidth{ size = 10, publicip_ids = { "eip-1" } }
    local t = start("delete-bandwidth --drain " .. id)
    t:wait_for("Type yes to go on:")
    socket.sleep(1) -- (the operator reads the question)
    t:send("yes", "Enter")
    assert.equal(0, t:wait_exit(10))
    local screen = t:screen()
    local amount, unit = screen:match("\ndrained +" .. id:gsub("%p", "%%%0") .. " +204 +1 EIP +([%d.]+) (m?s)\n")
    assert.is_string(unit, screen)
    assert.is_true(unit == "ms" and tonumber(amount) < 1000, amount .. " " .. unit .. ": the answer's wait counted")
  end)

  it("--drain answered no changes nothing", function()
    local id = emu:create_bandwidth{ size = 10, publicip_ids = { "eip-1" } }
    emu:reset_counters()
    local t = start("delete-bandwidth --drain " .. id)
    t:wait_for("Type yes to go on:")
    t:send("n", "Enter")
    assert.equal(1, t:wait_exit(10))
    assert.matches("was not drained", t:screen())
    assert.equal(1, emu:stats().requests)
    assert.equal(1, #emu:get_bandwidth(id).publicip_info)
  end)
end)
