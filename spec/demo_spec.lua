-- make demo, as the README shows it: the emulator starts, a shared bandwidth is created and
-- deleted (204), the second delete shows the structured 404, and nothing is left running.
local host = require "spec.support.host"

describe("make demo (scripts/demo)", function()
  it("deletes a bandwidth, then shows the structured 404, and stops the emulator (" .. host.lua .. ")", function()
    local f = assert(io.popen("LUA=" .. host.lua .. " bash scripts/demo 2>&1; echo \"exit=$?\""))
    local out = f:read("*a")
    f:close()
    assert.matches("exit=0\n$", out)
    assert.matches("deleted [%x-]+: 204 No Content %(request%-id %x+", out)
    assert.matches("%-> 404 Not Found %(VPC%.0306: No Eip bandwidth exist with id%.%) request%-id=%x+", out)
    assert.matches("code%s+VPC%.0306", out)
    assert.matches("retryable%s+false", out)
    -- The README shows this output: the same lines, ids, ports, request ids and times aside.
    local readme = assert(io.open("README.md")):read("*a")
    local shown = assert(readme:match("`make demo` prints:\n\n```\n(.-)```"), "no make demo block in the README")
    local function shape(text)
      text = text:gsub("%x+%-%x+%-%x+%-%x+%-%x+", "ID"):gsub("%f[%w]%x%x%x%x%x%x%x%x+%f[%W]", "HEX")
      text = text:gsub("127%.0%.0%.1:%d+", "ADDR"):gsub("[%d.]+ ms", "T ms")
      text = text:gsub("it: %S+ examples/", "it: LUA examples/") -- the interpreter of this run
      local lines = {}
      for line in text:gmatch("[^\n]+") do
        if line:find("^== ") or line:find("^%s") or line:find("^deleted ") or line:find("^eip: ") then
          lines[#lines + 1] = line
        end
      end
      return table.concat(lines, "\n")
    end
    assert.equal(shape(shown), shape(out))
    local endpoint = out:match("endpoint (http://127%.0%.0%.1:%d+)")
    assert.is_string(endpoint)
    local port = endpoint:match(":(%d+)$")
    local socket = require "socket"
    local s = socket.tcp()
    s:settimeout(1)
    local connected = s:connect("127.0.0.1", tonumber(port))
    s:close()
    assert.is_nil(connected, "the emulator still answers on " .. endpoint)
  end)
end)

-- The example a user copies into a script: its exit status tells deleted, refused, unknown and
-- interrupted apart, as its header says.
describe("examples/delete_bandwidth.lua", function()
  local fixture = require "spec.support.fixture"
  local fx = fixture.emulator()
  local emu
  setup(function() emu = fx.start() end)
  teardown(fx.stop)
  before_each(fx.reset)

  -- Runs the example for `id` (`signal`: sent to it after 1 s): its output and exit status.
  local function example(id, signal)
    local run = string.format("EIP_ENDPOINT=%s EIP_PROJECT_ID=%s OS_AUTH_TOKEN=%s %s examples/delete_bandwidth.lua %s",
      emu.url, emu.project_id, emu.token, host.lua_command, host.quote(id))
    if signal then
      run = string.format("%s & p=$!; sleep 1; kill -%s $p; wait $p", run, signal)
    end
    local f = assert(io.popen("(" .. run .. ") 2>&1; echo \"exit=$?\""))
    local out = f:read("*a")
    f:close()
    return out, tonumber(out:match("exit=(%d+)\n$"))
  end

  it("exits 1 for a refusal, 0 for a lost answer whose retry found it gone, 2 for a bad id", function()
    local busy = emu:create_bandwidth{ size = 5, publicip_ids = { "eip-1" } }
    local out, code = example(busy)
    assert.equal(1, code, out)
    assert.matches("409 Conflict", out)
    local lost = emu:create_bandwidth{ size = 5 }
    emu:inject{ method = "DELETE", path = emu:delete_path(lost), action = "lose_answer", times = 1 }
    out, code = example(lost)
    assert.equal(0, code, out)
    assert.matches("gone " .. lost, out, 1, true)
    assert.is_nil(emu:get_bandwidth(lost))
    out, code = example("not an id")
    assert.equal(2, code, out)
  end)

  it("ends at once on SIGTERM while the delete is in flight: 143, and says it may have acted", function()
    local id = emu:create_bandwidth{ size = 5 }
    emu:inject{ method = "DELETE", path = emu:delete_path(id), action = "slow", delay = 5 }
    local t0 = require("eip.core").monotime()
    local out, code = example(id, "TERM")
    assert.equal(143, code, out)
    assert.matches("kind%s+interrupted", out)
    assert.matches("may have been carried out", out)
    assert.is_nil(out:find("traceback", 1, true), out)
    -- (not after the answer's 5 s)
    assert.is_true(require("eip.core").monotime() - t0 < 4.5, out)
  end)
end)
