-- The eip command in a real terminal (tmux), as an operator uses it: Ctrl-C during a batch, and
-- the question --drain asks before it creates new bills.
local fixture = require "spec.support.fixture"
local terminal = require "spec.support.terminal"
local socket = require "socket"
local host = require "spec.support.host"

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

  local function start(args)
    term = terminal.start(EIP .. " " .. args, { cwd = ROOT, env = {
      EIP_ENDPOINT = emu.url, OS_AUTH_TOKEN = emu.token, HUAWEICLOUD_SDK_PROJECT_ID = emu.project_id } })
    return term
  end

  local function create(n, fields)
    local ids = {}
    for i = 1, n do ids[i] = emu:create_bandwidth(fields or { size = 1 }) end
    return ids
  end

  -- Waits until the emulator has seen `n` API requests.
  local function requests_seen(n)
    local deadline = socket.gettime() + 10
    while emu:stats().requests < n do
      assert(socket.gettime() < deadline, "the command sent fewer than " .. n .. " requests")
      socket.sleep(0.02)
    end
  end

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

  it("a second Ctrl-C aborts the requests in flight", function()
    local ids = create(6)
    for i = 2, 6 do emu:inject{ method = "DELETE", path = ids[i]:gsub("%p", "%%%0") .. "$", action = "hang" } end
    emu:reset_counters()
    local t = start("delete-bandwidth --concurrency 3 --no-progress " .. table.concat(ids, " "))
    requests_seen(4) -- the probe, then three that hang
    t:send("C-c")
    socket.sleep(0.2)
    t:send("C-c")
    assert.equal(130, t:wait_exit(10))
    local screen = t:screen()
    assert.matches("6 bandwidth%(s%): 1 deleted, 0 missing, 3 failed, 2 not sent", screen)
    assert.matches("aborted while in flight", screen)
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
    assert.matches("deleted  " .. id:gsub("%p", "%%%0"), t:screen())
    assert.is_nil(emu:get_bandwidth(id))
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
