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
