-- The C binding when memory runs out in the middle of a call: Lua raises out of it, and what the
-- binding holds must be neither lost (a finished answer), nor leaked (malloc'd buffers), nor
-- cached half-made (a signer's lines). Each script runs in build/oom-host (test/c/oom_host.c):
-- Lua 5.4 with the core linked in and an allocator told to refuse blocks of some size.
local fixture = require "spec.support.fixture"
local host = require "spec.support.host"

local HOST = "build/oom-host"

-- Runs a Lua script in the host: its output (stdout and stderr), the exit status.
local function run(script)
  assert(io.open(HOST, "rb"), HOST .. " is missing: make test builds it (make " .. HOST .. ")"):close()
  return host.run_script(script, HOST)
end

describe("memory running out inside eip.core", function()
  local fx = fixture.emulator()
  local emu

  setup(function() emu = fx.start() end)
  teardown(fx.stop)
  before_each(fx.reset)

  it("a signer whose Host line could not be made makes it at its next call", function()
    local out, code = run([[
      local core = require "eip.core"
      local s = core.signer("EMUAK7PERMANENT00001", "u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8dKLzd")
      local host = string.rep("h", 300000)
      refuse(250000) -- the "Host: ..." line of 300 KB
      print("first", (pcall(s.headers, s, "GET", "/v2.0/p/bandwidths", nil, nil, host, nil, {}, 1700000000)))
      refuse(0)
      for i = 2, 3 do
        local lines = s:headers("GET", "/v2.0/p/bandwidths", nil, nil, host, nil, {}, 1700000000)
        print("call", i, lines[1] == "Host: " .. host, #lines)
      end
    ]])
    assert.equal(0, code, out)
    assert.matches("first\tfalse", out)
    assert.matches("call\t2\ttrue\t3", out)
    assert.matches("call\t3\ttrue\t3", out)
  end)

  it("core.sign frees its buffers when its strings cannot be made", function()
    -- Each failed call would leak about a megabyte (the buffers grow to fit a 300 KB path).
    local out, code = run([[
      local core = require "eip.core"
      local path = "/" .. string.rep("a", 300000)
      local req = { method = "GET", path = path, ak = "AK", sk = "SK",
        headers = { { "Host", "h" }, { "X-Sdk-Date", "20240101T000000Z" } } }
      assert(core.sign(req))
      collectgarbage()
      local before = heap_in_use()
      local failed = 0
      for _ = 1, 100 do
        refuse(250000)
        if not pcall(core.sign, req) then failed = failed + 1 end
        refuse(0)
      end
      collectgarbage()
      print("failed", failed, "grew_kb", (heap_in_use() - before) // 1024)
    ]])
    assert.equal(0, code, out)
    local failed, grew = out:match("failed\t(%d+)\tgrew_kb\t(%-?%d+)")
    assert.equal("100", failed, out)
    assert.is_true(tonumber(grew) < 20 * 1024, "grew by " .. grew .. " kB: " .. out)
  end)

  it("a finished transfer whose answer could not be made a table is given at the next call", function()
    emu:inject{ method = "GET", status = 200, body_size = 500000 }
    local out, code = run(([[
      local core = require "eip.core"
      local m = core.multi{}
      assert(m:start{ method = "GET", url = %q, headers = {}, timeout = 10 })
      refuse(400000) -- the body's string
      print("short", (pcall(m.next, m, 5)))
      refuse(0)
      print("pending", m:pending())
      local slot, resp = m:next(5)
      print("again", slot, resp and resp.status, resp and #resp.body)
    ]]):format(emu.url .. "/v1/" .. emu.project_id .. "/bandwidths"))
    assert.equal(0, code, out)
    assert.matches("short\tfalse", out)
    assert.matches("pending\t1", out)
    assert.matches("again\t1\t200\t500000", out)
  end)
end)
